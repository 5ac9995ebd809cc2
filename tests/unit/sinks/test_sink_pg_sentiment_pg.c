/* The PostgreSQL sink's sentiment alerts against a real, throwaway server: a ticker's windows of
 * articles build a baseline in the batch transactions that write them; a window whose volume
 * and negative share rise far above it raises one alert, once it has enough articles, naming
 * them all (those of earlier batches too); a later article of that window grows it; a key without
 * enough history and the quiet windows raise none; an alert an analyst resolved does not come
 * back. Run through tests/lib/with_pg.sh. */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sink_pg.h"
#include "test.h"
#include "test_pg.h"

#define T0 1699999980000LL /* the start of window 0 (a multiple of the width) */
#define WIDTH 60000LL

static PGconn *admin;

static const char *q(const char *sql)
{
    return test_pg_value(admin, sql);
}

static long q_long(const char *sql)
{
    return test_pg_long(admin, sql);
}

static const char *const aapl[] = {"AAPL"};
static char ids[64][16];
static int64_t next_offset;

/* Article number i (its id a<i>) about AAPL, published at second `at_s` of window w. */
static sink_article_row_t article(int i, int w, int at_s, const char *sentiment,
                                  const char *topic_label)
{
    sink_article_row_t a;
    memset(&a, 0, sizeof a);
    snprintf(ids[i], sizeof ids[i], "a%02d", i);
    a.article_id = ids[i];
    a.published_time_ms = T0 + w * WIDTH + at_s * 1000LL;
    a.source = "wire";
    a.headline = "headline";
    a.tickers = aapl;
    a.n_tickers = 1;
    a.sentiment = sentiment;
    a.topic_label = topic_label;
    a.model_version = sentiment ? "m1" : NULL;
    return a;
}

/* Writes n articles as one batch at the next offsets of partition 0. */
static int write_articles(sink_pg_t *pg, sink_article_row_t *arts, size_t n,
                          sink_alert_changes_t *ch, char *err, size_t errlen)
{
    static const sink_sentiment_rules_t rules = {
        .window_ms = WIDTH, .history = 5, .z = 4, .min_articles = 5, .by_ticker = 1, .by_topic = 1};
    for (size_t i = 0; i < n; i++)
        arts[i].at = (sink_coords_t){"t.news", 0, next_offset + (int64_t)i, -1};
    sink_offset_advance_t adv = {"t.news", 0, next_offset ? next_offset : SINK_PG_OFFSET_NONE,
                                 next_offset + (int64_t)n};
    sink_batch_t b = {.group = "g",
                      .instance_id = "test",
                      .rows = {.articles = arts, .n_articles = n},
                      .sentiment = &rules,
                      .alert_changes = ch,
                      .offsets = &adv,
                      .n_offsets = 1};
    int rc = sink_pg_write(pg, &b, err, errlen);
    if (rc == SINK_PG_OK)
        next_offset += (int64_t)n;
    return rc;
}

int main(void)
{
    char err[1024] = "", sql[1024];
    const char *conninfo = getenv("VIGIL_TEST_CONNINFO");
    sink_alert_changes_t ch;
    sink_article_row_t arts[16];

    if (!conninfo) {
        fprintf(stderr, "VIGIL_TEST_CONNINFO is not set: run through tests/lib/with_pg.sh\n");
        return 1;
    }
    admin = PQconnectdb(conninfo);
    sink_pg_t *pg = sink_pg_new(conninfo, err, sizeof err);
    CHECK_MSG(pg && PQstatus(admin) == CONNECTION_OK, "%s", err);
    if (!pg)
        return TEST_DONE();
    CHECK_MSG(sink_pg_migrate(pg, err, sizeof err) == SINK_PG_OK, "%s", err);
    const int32_t part = 0;
    int64_t stored = 0;
    CHECK(sink_pg_offsets_load(pg, "g", "t.news", &part, 1, &stored, err, sizeof err) ==
          SINK_PG_OK);

    /* The baseline: one neutral article a window in windows 0..9, none with a topic. */
    for (int w = 0; w < 10; w++)
        arts[w] = article(w, w, 10, "neutral", NULL);
    CHECK_MSG(write_articles(pg, arts, 10, &ch, err, sizeof err) == SINK_PG_OK, "%s", err);
    CHECK(q_long("SELECT count(*) FROM vigil.alerts") == 0);
    CHECK(q_long("SELECT sum(articles) FROM vigil.sentiment_windows WHERE key = 'AAPL'") == 10);

    /* Window 10: four negative articles (one unscored), below min_articles: no alert yet. The
     * burst's topic has no history, so it never alerts. */
    arts[0] = article(10, 10, 5, "negative", "Legal | Regulation");
    arts[1] = article(11, 10, 6, "negative", "Legal | Regulation");
    arts[2] = article(12, 10, 7, NULL, NULL);
    arts[3] = article(13, 10, 8, "negative", "Legal | Regulation");
    CHECK_MSG(write_articles(pg, arts, 4, &ch, err, sizeof err) == SINK_PG_OK, "%s", err);
    CHECK(q_long("SELECT count(*) FROM vigil.alerts") == 0);
    CHECK_STR(q("SELECT articles || ' ' || scored || ' ' || negative FROM vigil.sentiment_windows "
                "WHERE key = 'AAPL' AND window_start = to_timestamp(1700000580)"),
              "4 3 3");

    /* Four more: eight in the window against a baseline of one a window. One alert, medium
     * (z = (8 - 1) / 1 = 7: at least 4, below 8), naming all eight articles in time order. */
    for (int i = 0; i < 4; i++)
        arts[i] = article(14 + i, 10, 20 + i, "negative", "Legal | Regulation");
    CHECK_MSG(write_articles(pg, arts, 4, &ch, err, sizeof err) == SINK_PG_OK, "%s", err);
    CHECK(ch.raised[SINK_ALERT_SENTIMENT][1] == 1 && ch.raised[SINK_ALERT_FRAUD][1] == 0);
    char id[64], where[128];
    snprintf(id, sizeof id, "sentiment:ticker:AAPL:%lld", T0 + 10 * WIDTH);
    snprintf(where, sizeof where, "FROM vigil.alerts WHERE alert_id = '%s'", id);
    snprintf(sql, sizeof sql,
             "SELECT severity || ' ' || event_count || ' ' || first_event_id || ' ' || "
             "last_event_id || ' ' || array_to_string(event_ids, ',') || ' ' || revision %s",
             where);
    CHECK_STR(q(sql), "medium 8 a10 a17 a10,a11,a12,a13,a14,a15,a16,a17 1");
    snprintf(sql, sizeof sql,
             "SELECT (explanation->>'z_volume') || ' ' || (explanation->>'signal') || ' ' || "
             "(explanation->'baseline'->>'mean_articles') || ' ' || entity %s",
             where);
    CHECK_STR(q(sql), "7.000 volume 1.000 ticker:AAPL");
    CHECK(q_long("SELECT count(*) FROM vigil.alerts") == 1);

    /* A late article of the same window grows it, and nine is z = 8: high. */
    arts[0] = article(18, 10, 1, "negative", NULL);
    CHECK_MSG(write_articles(pg, arts, 1, &ch, err, sizeof err) == SINK_PG_OK, "%s", err);
    CHECK(ch.updated[SINK_ALERT_SENTIMENT][2] == 1 && ch.raised[SINK_ALERT_SENTIMENT][2] == 0);
    snprintf(sql, sizeof sql,
             "SELECT event_count || ' ' || first_event_id || ' ' || revision || ' ' || severity %s",
             where);
    CHECK_STR(q(sql), "9 a18 2 high");

    /* Resolved by an analyst, it is not grown again, and its window raises no new alert. */
    sink_alert_t *a = NULL;
    CHECK_MSG(sink_pg_alert_set_status(pg, id, "resolved", "analyst", "manual", &a, err,
                                       sizeof err) == SINK_PG_OK,
              "%s", err);
    sink_pg_alerts_free(a, 1);
    arts[0] = article(19, 10, 30, "negative", NULL);
    CHECK_MSG(write_articles(pg, arts, 1, &ch, err, sizeof err) == SINK_PG_OK, "%s", err);
    CHECK(q_long("SELECT count(*) FROM vigil.alerts") == 1);
    snprintf(sql, sizeof sql, "SELECT event_count %s", where);
    CHECK(q_long(sql) == 9);

    /* A ticker too long to be a key (its alert id would be in every NOTIFY payload): the
     * article is written, and counts for no key but AAPL. */
    static char huge[5001];
    memset(huge, 'X', sizeof huge - 1);
    const char *const both[] = {"AAPL", huge};
    arts[0] = article(21, 11, 10, "neutral", NULL);
    arts[0].tickers = both;
    arts[0].n_tickers = 2;
    CHECK_MSG(write_articles(pg, arts, 1, &ch, err, sizeof err) == SINK_PG_OK, "%s", err);
    CHECK(q_long("SELECT count(*) FROM vigil.sentiment_windows WHERE length(key) > 32") == 0);

    /* A quiet window after the burst: nothing. */
    arts[0] = article(20, 11, 30, "neutral", NULL);
    CHECK_MSG(write_articles(pg, arts, 1, &ch, err, sizeof err) == SINK_PG_OK, "%s", err);
    CHECK(q_long("SELECT count(*) FROM vigil.alerts") == 1);

    sink_pg_free(pg);
    PQfinish(admin);
    return TEST_DONE();
}
