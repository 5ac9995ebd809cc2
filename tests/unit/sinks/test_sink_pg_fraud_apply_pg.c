/* vigil.alerts_fraud_apply (migration 0008, set-based) against the loop it replaced (migration
 * 0005, kept in the embedded migrations and created here under another name), on a real,
 * throwaway server. Random batches of hits for a few users, with event times out of order and
 * tied, gaps on both sides of the grouping gap, tied scores, missing explanations, and alerts
 * acknowledged or resolved between batches: each batch is applied by the loop and rolled back,
 * then by the new function and committed, and both must leave the same alerts (every column but
 * the wall-clock ones) and return the same rows. Run through tests/lib/with_pg.sh. */
#include <libpq-fe.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "sink_migrations.h"
#include "sink_pg.h"
#include "test.h"
#include "test_pg.h"

#define USERS 6
#define ROUNDS 80
#define GAP_MS 60000

static PGconn *conn;
static uint64_t rng = 0x9e3779b97f4a7c15u;

static unsigned rnd(unsigned n)
{
    rng = rng * 6364136223846793005u + 1442695040888963407u;
    return (unsigned)(rng >> 33) % n;
}

/* The loop of migration 0005, created as ref.alerts_fraud_apply_loop. */
static int create_reference(void)
{
    const char *start = "CREATE FUNCTION vigil.alerts_fraud_apply(", *end = "\n$$;\n";
    const char *sql = NULL;
    for (int i = 0; i < sink_migrations_count; i++)
        if (sink_migrations[i].version == 5)
            sql = sink_migrations[i].sql;
    const char *a = sql ? strstr(sql, start) : NULL, *b = a ? strstr(a, end) : NULL;
    if (!b)
        return 0;
    const char *name = "CREATE FUNCTION ref.alerts_fraud_apply_loop(";
    size_t body = (size_t)(b + strlen(end) - (a + strlen(start)));
    char *text = malloc(strlen(name) + body + 1);
    if (!text)
        return 0;
    snprintf(text, strlen(name) + body + 1, "%s%.*s", name, (int)body, a + strlen(start));
    int ok = test_pg_exec(conn, "CREATE SCHEMA ref") == 0 && test_pg_exec(conn, text) == 0;
    free(text);
    return ok;
}

/* Each user's history: 150 scored events 2 s apart with 4 features, spanning the hits' times,
 * so the baseline's cut-off (the alert's first event) and its LIMIT 100 both matter. */
static int insert_history(int64_t t0)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "INSERT INTO vigil.risk_scores (topic, partition, kafka_offset, event_id, event_type,"
             " user_id, event_time, score, features)"
             " SELECT 'h', 0, u * 1000 + k, 'h' || u || '-' || k, 'PURCHASE', 'u' || u,"
             " timestamptz 'epoch' + (%lld + k * 2000) * interval '1 millisecond', 0.1,"
             " ARRAY[k, u, (k * 7) %% 5, k %% 3]::real[]"
             " FROM generate_series(0, %d) u, generate_series(0, 149) k",
             (long long)t0, USERS - 1);
    return test_pg_exec(conn, sql) == 0;
}

/* A random batch of hits as alerts_fraud_apply takes them, into b; offsets continue from *off.
 * Each draw is its own statement, so the batches are the same whatever order a compiler
 * evaluates arguments in. */
static void batch_json(json_buf_t *b, int64_t t0, int round, int64_t *off)
{
    static const char *sev[] = {"low", "medium", "high", "critical"};
    int n = 1 + (int)rnd(30);
    json_buf_reset(b);
    json_buf_puts(b, "[");
    for (int i = 0; i < n; i++, (*off)++) {
        /* 10 s steps: ties in time; a spread of 150 s around a moving base: out of order, and
         * gaps both under and over the 60 s grouping gap. */
        int64_t ms = t0 + round * 20000 + ((int64_t)rnd(15) - 5) * 10000;
        unsigned u = rnd(USERS), k = rnd(4), explained = rnd(10) >= 3, value = rnd(9),
                 second = rnd(2), score = rnd(4), s = rnd(4), model = rnd(3), part = rnd(2);
        json_buf_printf(b,
                        "%s{\"entity\":\"u%u\",\"event_id\":\"e%lld\",\"event_ms\":%lld,"
                        "\"score\":%.2f,\"severity\":\"%s\",\"model_version\":\"m%u\","
                        "\"topic\":\"t\",\"part\":%u,\"off\":%lld,\"explanation\":",
                        i ? "," : "", u, (long long)*off, (long long)ms, 0.8 + 0.05 * score, sev[s],
                        model, part, (long long)*off);
        if (!explained) {
            json_buf_puts(b, "null}");
            continue;
        }
        json_buf_printf(b,
                        "{\"method\":\"input x gradient\",\"features\":[{\"name\":\"f%u\","
                        "\"index\":%u,\"value\":%u,\"contribution\":0.5}%s]}}",
                        k, k, value,
                        second ? ",{\"name\":\"f0\",\"index\":0,\"value\":1,\"contribution\":0.25}"
                               : "");
    }
    json_buf_puts(b, "]");
}

/* Runs sql with $1 the hits and returns the single text value it gives (malloc'd), or NULL. */
static char *value_of(const char *sql, const char *hits)
{
    const char *params[1] = {hits};
    PGresult *res =
        PQexecParams(conn, sql, hits ? 1 : 0, NULL, hits ? params : NULL, NULL, NULL, 0);
    char *v = NULL;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        v = strdup(PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
    else
        fprintf(stderr, "failed: %.200s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    return v;
}

/* Everything about the alerts that the apply function decides (not the wall-clock columns). */
static const char snapshot_sql[] =
    "SELECT coalesce(string_agg(concat_ws('|', alert_id, kind, entity, severity, status, revision,"
    " event_count, first_event_id, first_event_time, last_event_id, last_event_time, max_score,"
    " event_ids::text, explanation::text, model_version, topic, partition, kafka_offset),"
    " E'\\n' ORDER BY alert_id), '') FROM vigil.alerts";

/* Applies hits with fn in a transaction, then commits or rolls back; *rows and *state get what
 * it returned and the alerts it left (malloc'd). */
static int apply(const char *fn, const char *hits, int commit, char **rows, char **state)
{
    char sql[512];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(string_agg(alert_id || ' ' || severity || ' ' || raised, ',' "
             "ORDER BY alert_id), '') FROM %s($1::jsonb, %d)",
             fn, GAP_MS);
    if (test_pg_exec(conn, "BEGIN") != 0)
        return 0;
    *rows = value_of(sql, hits);
    *state = value_of(snapshot_sql, NULL);
    return test_pg_exec(conn, commit ? "COMMIT" : "ROLLBACK") == 0 && *rows && *state;
}

/* The first line where a and b differ, to stderr. */
static void show_difference(const char *what, const char *a, const char *b)
{
    size_t i = 0, line = 0;
    while (a[i] && a[i] == b[i])
        i++;
    while (line < i && a[i - line - 1] != '\n' && a[i - line - 1] != ',')
        line++;
    fprintf(stderr, "%s differ at: loop '%.300s' / set '%.300s'\n", what, a + i - line,
            b + i - line);
}

int main(void)
{
    const char *conninfo = getenv("VIGIL_TEST_CONNINFO");
    char err[1024] = "";
    json_buf_t hits = {0};
    const int64_t t0 = 1700000000000;
    int64_t off = 0;

    if (!conninfo) {
        fprintf(stderr, "VIGIL_TEST_CONNINFO is not set: run through tests/lib/with_pg.sh\n");
        return 1;
    }
    conn = PQconnectdb(conninfo);
    sink_pg_t *pg = sink_pg_new(conninfo, err, sizeof err);
    CHECK_MSG(pg && PQstatus(conn) == CONNECTION_OK, "%s", err);
    if (!pg)
        return TEST_DONE();
    CHECK_MSG(sink_pg_migrate(pg, err, sizeof err) == SINK_PG_OK, "%s", err);
    CHECK(create_reference());
    CHECK(insert_history(t0 - 100000));

    int same = 0;
    for (int r = 0; r < ROUNDS; r++) {
        char *rows_loop = NULL, *state_loop = NULL, *rows_set = NULL, *state_set = NULL;
        batch_json(&hits, t0, r, &off);
        CHECK(!hits.failed);
        CHECK(apply("ref.alerts_fraud_apply_loop", hits.p, 0, &rows_loop, &state_loop));
        CHECK(apply("vigil.alerts_fraud_apply", hits.p, 1, &rows_set, &state_set));
        if (rows_loop && rows_set && state_loop && state_set) {
            int eq_rows = strcmp(rows_loop, rows_set) == 0,
                eq_state = strcmp(state_loop, state_set) == 0;
            if (!eq_rows)
                show_difference("returned rows", rows_loop, rows_set);
            if (!eq_state)
                show_difference("alerts", state_loop, state_set);
            CHECK_MSG(eq_rows && eq_state, "round %d: the batch %.500s", r, hits.p);
            same += eq_rows && eq_state;
        }
        free(rows_loop);
        free(state_loop);
        free(rows_set);
        free(state_set);
        /* An analyst acts between batches now and then: a hit must not grow a resolved alert,
         * and may grow an acknowledged one. */
        if (r % 7 == 3)
            CHECK(test_pg_exec(
                      conn, "UPDATE vigil.alerts SET status = 'resolved' WHERE alert_id = "
                            "(SELECT min(alert_id) FROM vigil.alerts WHERE status = 'open')") == 0);
        if (r % 5 == 1)
            CHECK(test_pg_exec(conn,
                               "UPDATE vigil.alerts SET status = 'acknowledged' WHERE "
                               "alert_id = (SELECT max(alert_id) FROM vigil.alerts WHERE status = "
                               "'open')") == 0);
    }
    CHECK_MSG(same == ROUNDS, "%d of %d batches gave the same alerts", same, ROUNDS);
    /* The batches went down the paths that matter: alerts grown across batches, several alerts
     * of one user raised in one batch, first events replaced by earlier ones, alerts without an
     * explanation, baselines cut at 100 events, resolved alerts. */
    CHECK(test_pg_long(conn, "SELECT count(*) FROM vigil.alerts WHERE revision > 1") > 10);
    CHECK(test_pg_long(conn,
                       "SELECT count(*) FROM (SELECT 1 FROM vigil.alerts GROUP BY entity, "
                       "raised_at HAVING count(*) > 1) x") > 0); /* one transaction, one now() */
    CHECK(test_pg_long(conn, "SELECT count(*) FROM vigil.alerts WHERE first_event_id <> "
                             "event_ids[1]") > 0);
    CHECK(test_pg_long(conn, "SELECT count(*) FROM vigil.alerts WHERE explanation IS NULL") > 0);
    CHECK(test_pg_long(conn, "SELECT count(*) FROM vigil.alerts WHERE "
                             "(explanation->>'entity_events')::int = 100") > 0);
    CHECK(test_pg_long(conn, "SELECT count(*) FROM vigil.alerts WHERE status = 'resolved'") > 0);
    json_buf_free(&hits);
    sink_pg_free(pg);
    PQfinish(conn);
    return TEST_DONE();
}
