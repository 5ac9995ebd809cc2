/* PostgreSQL sink, alert delivery: which alerts a sink (the Kafka topic, Alertmanager) still has
 * to take, and the record of what it took (vigil.alert_deliveries, migration 0007). One
 * connection of all instances delivers to a sink at a time, under a session advisory lock. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "json.h"
#include "sink_pg_internal.h"

int sink_pg_delivery_lock(sink_pg_t *pg, const char *sink, int *held, char *err, size_t errlen)
{
    const char *params[1] = {sink};
    char msg[512];

    *held = 0;
    if (sink_pg_check_conn(pg, "take the delivery lock", err, errlen) != 0)
        return SINK_PG_ERR;
    /* The key: a hash of the sink's name, in a namespace (the two-int form) of its own. */
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT pg_try_advisory_lock(hashtext('vigil.alert_delivery'), "
                                 "hashtext($1::text))",
                                 1, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        errbuf_printf(err, errlen, "PostgreSQL: taking the %s delivery lock failed: %s", sink,
                      sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        PQclear(res);
        return SINK_PG_ERR;
    }
    *held = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return SINK_PG_OK;
}

/* sink_alert_t's columns in its order (sink_pg_alerts_take), the times as epoch milliseconds. */
#define SINK_DELIVERY_MS(c) "(extract(epoch FROM a." c ") * 1000)::int8"
/* One piece a line, which clang-format would cut into fragments. */
// clang-format off
#define SINK_DELIVERY_COLUMNS                                                                      \
    "a.alert_id, a.kind, a.entity, a.severity, a.status, a.revision, a.event_count, "              \
    "a.first_event_id, " SINK_DELIVERY_MS("first_event_time") ", "                                 \
    "a.last_event_id, " SINK_DELIVERY_MS("last_event_time") ", "                                   \
    "a.max_score, a.event_ids, a.explanation, a.model_version, "                                   \
    SINK_DELIVERY_MS("raised_at") ", " SINK_DELIVERY_MS("updated_at") ", "                         \
    SINK_DELIVERY_MS("acknowledged_at") ", a.acknowledged_by, "                                    \
    SINK_DELIVERY_MS("resolved_at") ", a.resolved_by, a.resolution"
// clang-format on

int sink_pg_delivery_pending(sink_pg_t *pg, const char *sink, int64_t resend_ms, int limit,
                             sink_alert_t **out, size_t *n, char *err, size_t errlen)
{
    char lim[16], resend[24], msg[512];
    const char *params[3] = {sink, resend, lim};
    int rc = SINK_PG_ERR;

    *out = NULL;
    *n = 0;
    if (sink_pg_check_conn(pg, "list undelivered alerts", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(lim, sizeof lim, "%d", limit);
    snprintf(resend, sizeof resend, "%lld", (long long)resend_ms);
    PGresult *res = PQexecParams(
        pg->conn,
        "SELECT " SINK_DELIVERY_COLUMNS " FROM vigil.alerts a "
        "LEFT JOIN vigil.alert_deliveries d ON d.sink = $1::text AND d.alert_id = a.alert_id "
        "WHERE d.alert_id IS NULL OR d.revision < a.revision "
        "   OR ($2::int8 > 0 AND a.status <> 'resolved' "
        "       AND d.delivered_at < now() - $2::int8 * interval '1 millisecond') "
        "ORDER BY a.updated_at, a.alert_id LIMIT $3::int4",
        3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        errbuf_printf(err, errlen, "PostgreSQL: listing the alerts %s has to take failed: %s", sink,
                      sink_pg_result_error(pg->conn, res, msg, sizeof msg));
    else if (sink_pg_alerts_take(res, out, n) != 0)
        errbuf_printf(err, errlen, "out of memory listing %d alerts for %s", PQntuples(res), sink);
    else
        rc = SINK_PG_OK;
    PQclear(res);
    return rc;
}

int sink_pg_delivery_done(sink_pg_t *pg, const char *sink, const sink_alert_t *alerts,
                          const int *delivered, size_t n, char *err, size_t errlen)
{
    json_buf_t taken = {0}; /* [{"id": ..., "rev": ...}, ...] */
    char msg[512];
    size_t count = 0;
    int rc = SINK_PG_ERR;

    if (sink_pg_check_conn(pg, "record delivered alerts", err, errlen) != 0)
        return SINK_PG_ERR;
    json_buf_puts(&taken, "[");
    for (size_t i = 0; i < n; i++) {
        if (!delivered[i])
            continue;
        json_buf_puts(&taken, count++ ? ",{\"id\":" : "{\"id\":");
        json_buf_string(&taken, alerts[i].alert_id);
        json_buf_printf(&taken, ",\"rev\":%s}", alerts[i].revision); /* digits: an int4 */
    }
    json_buf_puts(&taken, "]");
    if (taken.failed) {
        errbuf_printf(err, errlen, "out of memory recording delivered alerts");
        goto out;
    }
    if (count == 0) {
        rc = SINK_PG_OK;
        goto out;
    }
    const char *params[2] = {sink, taken.p};
    PGresult *res = PQexecParams(
        pg->conn,
        "INSERT INTO vigil.alert_deliveries AS d (sink, alert_id, revision) "
        "SELECT $1::text, a.alert_id, (e->>'rev')::int4 FROM jsonb_array_elements($2::jsonb) e "
        "JOIN vigil.alerts a ON a.alert_id = e->>'id' " /* deleted meanwhile: nothing to record */
        "ON CONFLICT (sink, alert_id) DO UPDATE "
        "SET revision = greatest(d.revision, excluded.revision), delivered_at = now()",
        2, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        errbuf_printf(err, errlen, "PostgreSQL: recording what %s took failed: %s", sink,
                      sink_pg_result_error(pg->conn, res, msg, sizeof msg));
    else
        rc = SINK_PG_OK;
    PQclear(res);
out:
    json_buf_free(&taken);
    return rc;
}

int sink_pg_listen(sink_pg_t *pg, const char *channel, char *err, size_t errlen)
{
    char sql[128];
    if (sink_pg_check_conn(pg, "listen", err, errlen) != 0)
        return SINK_PG_ERR;
    /* LISTEN takes no parameter: the channel is a fixed identifier of ours, quoted. */
    char *quoted = PQescapeIdentifier(pg->conn, channel, strlen(channel));
    if (!quoted) {
        errbuf_printf(err, errlen, "PostgreSQL: cannot quote channel %s", channel);
        return SINK_PG_ERR;
    }
    snprintf(sql, sizeof sql, "LISTEN %s", quoted);
    PQfreemem(quoted);
    return sink_pg_exec(pg->conn, sql, PGRES_COMMAND_OK, "LISTEN", err, errlen) == 0 ? SINK_PG_OK
                                                                                     : SINK_PG_ERR;
}

int sink_pg_wait_notify(sink_pg_t *pg, int timeout_ms, char *err, size_t errlen)
{
    struct pollfd p = {.fd = PQsocket(pg->conn), .events = POLLIN};
    int got = 0;
    PGnotify *nt;

    if (p.fd < 0) {
        errbuf_printf(err, errlen, "PostgreSQL: no connection to wait on");
        return SINK_PG_ERR;
    }
    if (poll(&p, 1, timeout_ms) < 0) {
        if (errno == EINTR)
            return 0; /* a signal, not a broken connection */
        errbuf_printf(err, errlen, "poll on the PostgreSQL connection failed: %s", strerror(errno));
        return SINK_PG_ERR;
    }
    if (!PQconsumeInput(pg->conn)) {
        char msg[512];
        errbuf_printf(err, errlen, "PostgreSQL: waiting for notifications failed: %s",
                      sink_pg_result_error(pg->conn, NULL, msg, sizeof msg));
        return SINK_PG_ERR;
    }
    while ((nt = PQnotifies(pg->conn)) != NULL) {
        got = 1;
        PQfreemem(nt);
    }
    return got;
}
