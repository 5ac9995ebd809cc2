/* The PostgreSQL sink's alerts against a real, throwaway server: a batch's alert-worthy rows raise
 * and grow alerts in its transaction (grouped per user within the gap, explained, with the
 * entity's baseline), one NOTIFY per alert changed and none for a batch rolled back (fenced), a
 * payload that stays under PostgreSQL's limit whatever the entity, a refused explanation, an
 * analyst's ack and resolve (labels), and the quiet period. Run through tests/lib/with_pg.sh. */
#include <libpq-fe.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sink_pg.h"
#include "test.h"
#include "test_pg.h"

static PGconn *admin, *listener;

static const char *q(const char *sql)
{
    return test_pg_value(admin, sql);
}

static long q_long(const char *sql)
{
    return test_pg_long(admin, sql);
}

/* The notifications that arrive until the marker the admin connection sends now: since
 * notifications reach a listener in commit order, all of those committed before are in. Each
 * payload goes into got[] (up to cap); returns how many, or -1 when the marker did not come
 * within 30 s. */
static int notifications(char got[][8192], int cap)
{
    PGresult *res = PQexec(admin, "NOTIFY vigil_alerts, 'marker'");
    int sent = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (!sent)
        return -1;
    int n = 0;
    time_t deadline = time(NULL) + 30;
    while (time(NULL) < deadline) {
        struct pollfd p = {.fd = PQsocket(listener), .events = POLLIN};
        poll(&p, 1, 1000);
        if (!PQconsumeInput(listener))
            return -1;
        PGnotify *nt;
        while ((nt = PQnotifies(listener)) != NULL) {
            int marker = strcmp(nt->extra, "marker") == 0;
            if (!marker && n < cap)
                snprintf(got[n], sizeof got[n], "%s", nt->extra);
            n += !marker;
            PQfreemem(nt);
            if (marker)
                return n;
        }
    }
    return -1;
}

static sink_risk_row_t row(int64_t offset, const char *event_id, const char *user, float score,
                           const char *severity, const char *explanation)
{
    sink_risk_row_t r;
    memset(&r, 0, sizeof r);
    r.at = (sink_coords_t){"t.alerts", 0, offset, -1};
    r.event_id = event_id;
    r.event_type = "PURCHASE";
    r.user_id = user;
    r.event_time_ms = 1700000000000 + offset * 1000; /* a second apart */
    r.score = score;
    r.model_version = "m1";
    r.alert_severity = severity;
    r.alert_explanation = explanation;
    return r;
}

static int write_rows(sink_pg_t *pg, const sink_risk_row_t *rows, size_t n, int64_t expected,
                      sink_alert_changes_t *ch, char *err, size_t errlen)
{
    sink_offset_advance_t adv = {"t.alerts", 0, expected, rows[n - 1].at.offset + 1};
    sink_batch_t b = {.group = "g",
                      .instance_id = "test",
                      .rows = {.risk = rows, .n_risk = n},
                      .alert_group_gap_ms = 60000,
                      .alert_changes = ch,
                      .offsets = &adv,
                      .n_offsets = 1};
    return sink_pg_write(pg, &b, err, errlen);
}

static const char explain[] =
    "{\"method\":\"input x gradient\",\"features\":[{\"name\":\"f0\",\"index\":0,\"value\":5,"
    "\"contribution\":2.5}]}";

int main(void)
{
    static char got[16][8192];
    char err[1024] = "", long_user[10001];
    const char *conninfo = getenv("VIGIL_TEST_CONNINFO");
    sink_alert_changes_t ch;
    int64_t next = 0;
    const int32_t part = 0;

    if (!conninfo) {
        fprintf(stderr, "VIGIL_TEST_CONNINFO is not set: run through tests/lib/with_pg.sh\n");
        return 1;
    }
    admin = PQconnectdb(conninfo);
    listener = PQconnectdb(conninfo);
    sink_pg_t *pg = sink_pg_new(conninfo, err, sizeof err);
    CHECK_MSG(pg && PQstatus(admin) == CONNECTION_OK && PQstatus(listener) == CONNECTION_OK, "%s",
              err);
    if (!pg)
        return TEST_DONE();
    CHECK_MSG(sink_pg_migrate(pg, err, sizeof err) == SINK_PG_OK, "%s", err);
    PGresult *listen = PQexec(listener, "LISTEN vigil_alerts");
    CHECK(PQresultStatus(listen) == PGRES_COMMAND_OK);
    PQclear(listen);
    CHECK(sink_pg_offsets_load(pg, "g", "t.alerts", &part, 1, &next, err, sizeof err) ==
          SINK_PG_OK);
    memset(long_user, 'x', sizeof long_user - 1);
    long_user[sizeof long_user - 1] = '\0';

    /* History of u1 for its baseline: two unalerted events with features. */
    const float f_a[2] = {1, 7}, f_b[2] = {3, 9};
    sink_risk_row_t hist[2] = {row(0, "h0", "u1", 0.1f, NULL, NULL),
                               row(1, "h1", "u1", 0.2f, NULL, NULL)};
    hist[0].features = f_a;
    hist[1].features = f_b;
    hist[0].n_features = hist[1].n_features = 2;
    CHECK(write_rows(pg, hist, 2, SINK_PG_OFFSET_NONE, &ch, err, sizeof err) == SINK_PG_OK);
    CHECK(ch.raised[SINK_ALERT_FRAUD][2] == 0 && ch.updated[SINK_ALERT_FRAUD][2] == 0);

    /* One batch: u1 twice (one alert of two events, severity rising), the long user once. */
    sink_risk_row_t b1[4] = {row(2, "e2", "u1", 0.91f, "high", explain),
                             row(3, "e3", "u1", 0.5f, NULL, NULL),
                             row(4, "e4", "u1", 0.98f, "critical", explain),
                             row(5, "e5", long_user, 0.85f, "medium", NULL)};
    CHECK_MSG(write_rows(pg, b1, 4, 2, &ch, err, sizeof err) == SINK_PG_OK, "%s", err);
    CHECK(ch.raised[SINK_ALERT_FRAUD][3] == 1 && ch.raised[SINK_ALERT_FRAUD][1] == 1 &&
          ch.updated[SINK_ALERT_FRAUD][2] == 0 && ch.updated[SINK_ALERT_FRAUD][3] == 0);
    CHECK_STR(q("SELECT event_count || ' ' || severity || ' ' || first_event_id || ' ' || "
                "last_event_id || ' ' || revision || ' ' || max_score FROM vigil.alerts "
                "WHERE alert_id = 'fraud:t.alerts:0:2'"),
              "2 critical e2 e4 1 0.98");
    /* The entity's own mean of feature 0 over its earlier events: (1 + 3) / 2. */
    CHECK_STR(q("SELECT explanation->'features'->0->>'entity_mean' FROM vigil.alerts "
                "WHERE alert_id = 'fraud:t.alerts:0:2'"),
              "2");
    int n = notifications(got, 16);
    CHECK_MSG(n == 2, "%d notifications for two alerts raised", n);
    for (int i = 0; i < n && i < 16; i++) {
        CHECK_MSG(strlen(got[i]) < 8000, "a payload of %zu bytes", strlen(got[i]));
        CHECK(strstr(got[i], "\"revision\" : 1") != NULL);
    }
    CHECK(strstr(got[0], "xxxx") || strstr(got[1], "xxxx")); /* the long entity's, cut short */

    /* A batch that is fenced rolls its alert changes back: no change, no notification. */
    sink_risk_row_t b2[1] = {row(6, "e6", "u1", 0.99f, "critical", explain)};
    CHECK(write_rows(pg, b2, 1, 2, &ch, err, sizeof err) == SINK_PG_FENCED);
    CHECK(q_long("SELECT event_count FROM vigil.alerts WHERE alert_id = 'fraud:t.alerts:0:2'") ==
          2);
    CHECK(notifications(got, 16) == 0);
    /* Written where it belongs, it grows the alert: revision 2, one notification. */
    CHECK(write_rows(pg, b2, 1, 6, &ch, err, sizeof err) == SINK_PG_OK);
    CHECK(ch.updated[SINK_ALERT_FRAUD][3] == 1 && ch.raised[SINK_ALERT_FRAUD][3] == 0);
    CHECK(notifications(got, 16) == 1 && strstr(got[0], "\"revision\" : 2"));

    /* Beyond the gap (61 s later in event time) u1's next alert-worthy event raises a new one. */
    sink_risk_row_t b3[1] = {row(67, "e67", "u1", 0.95f, "high", explain)};
    CHECK(write_rows(pg, b3, 1, 7, &ch, err, sizeof err) == SINK_PG_OK);
    CHECK(ch.raised[SINK_ALERT_FRAUD][2] == 1);
    CHECK(q_long("SELECT count(*) FROM vigil.alerts WHERE entity = 'u1'") == 2);
    CHECK(notifications(got, 16) == 1);

    /* An explanation PostgreSQL cannot read as JSON is refused as data, nothing written. */
    sink_risk_row_t b4[1] = {row(68, "e68", "u2", 0.95f, "high", "{not json")};
    CHECK(write_rows(pg, b4, 1, 68, &ch, err, sizeof err) == SINK_PG_REJECTED);
    CHECK(q_long("SELECT count(*) FROM vigil.alerts WHERE entity = 'u2'") == 0);
    CHECK(notifications(got, 16) == 0);

    /* An analyst: ack, then resolve as fraud (a label per event); a second resolve changes
     * nothing. */
    sink_alert_t *a = NULL;
    CHECK(sink_pg_alert_set_status(pg, "fraud:t.alerts:0:2", "acknowledged", "ana", NULL, &a, err,
                                   sizeof err) == SINK_PG_OK);
    CHECK(a && strcmp(a->status, "acknowledged") == 0 && strcmp(a->revision, "3") == 0);
    sink_pg_alerts_free(a, a ? 1 : 0);
    CHECK(sink_pg_alert_set_status(pg, "fraud:t.alerts:0:2", "resolved", "ana", "fraud", NULL, err,
                                   sizeof err) == SINK_PG_OK);
    CHECK(sink_pg_alert_set_status(pg, "fraud:t.alerts:0:2", "resolved", "ana", "legit", NULL, err,
                                   sizeof err) == SINK_PG_FENCED);
    CHECK(sink_pg_alert_set_status(pg, "no-such", "acknowledged", "ana", NULL, NULL, err,
                                   sizeof err) == SINK_PG_FENCED);
    CHECK(q_long("SELECT count(*) FROM vigil.labels WHERE alert_id = 'fraud:t.alerts:0:2' AND "
                 "is_fraud AND label_source = 'analyst'") == 3);
    CHECK(notifications(got, 16) == 2);
    sink_alert_t *list = NULL;
    size_t n_list = 0;
    CHECK(sink_pg_alerts_list(pg, "open", "fraud", NULL, 10, &list, &n_list, err, sizeof err) ==
          SINK_PG_OK);
    CHECK(n_list == 2); /* u1's second alert and the long user's */
    sink_pg_alerts_free(list, n_list);

    /* The quiet period: with 0 ms every open alert is quiet; each resolution notifies. */
    uint64_t resolved[SINK_ALERT_SEVERITIES];
    CHECK(sink_pg_alerts_resolve_quiet(pg, "fraud", 0, "test", resolved, err, sizeof err) ==
          SINK_PG_OK);
    CHECK(resolved[1] == 1 && resolved[2] == 1 && resolved[3] == 0);
    CHECK(q_long("SELECT count(*) FROM vigil.alerts WHERE status <> 'resolved'") == 0);
    CHECK(notifications(got, 16) == 2);
    CHECK(sink_pg_alerts_resolve_quiet(pg, "fraud", 0, "test", resolved, err, sizeof err) ==
          SINK_PG_OK);
    CHECK(resolved[1] == 0 && resolved[2] == 0);

    sink_pg_free(pg);
    PQfinish(listener);
    PQfinish(admin);
    return TEST_DONE();
}
