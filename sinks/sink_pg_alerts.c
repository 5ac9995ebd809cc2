/* PostgreSQL sink, alerts: the fraud alert hits of a batch applied inside its transaction, after
 * its offset updates (the grouping, the entity baseline and the NOTIFY happen in
 * vigil.alerts_fraud_apply, migration 0005), and the tooling behind `vigil alerts` and the
 * quiet-period resolver. The alert logic lives in SQL so that an alert and the scores that caused
 * it commit or roll back together, and an analyst's resolution (another process) is seen by the
 * very next batch. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "json.h"
#include "sink_pg_internal.h"

const char *const sink_alert_severities[SINK_ALERT_SEVERITIES] = {"low", "medium", "high",
                                                                  "critical"};
const char *const sink_alert_kinds[SINK_ALERT_KINDS] = {"fraud", "sentiment"};

static int sink_alert_severity_index(const char *s)
{
    for (int i = 0; i < SINK_ALERT_SEVERITIES; i++)
        if (strcmp(sink_alert_severities[i], s) == 0)
            return i;
    return -1;
}

/* The hits as the JSON array alerts_fraud_apply takes; 0 hits leaves b empty. */
static void sink_alerts_hits_json(const sink_rows_t *rows, json_buf_t *b)
{
    char num[JSON_DOUBLE_MAX];
    size_t n = 0;

    for (size_t i = 0; i < rows->n_risk; i++) {
        const sink_risk_row_t *r = &rows->risk[i];
        if (!r->alert_severity)
            continue;
        json_buf_puts(b, n++ ? ",{" : "[{");
        json_buf_puts(b, "\"entity\":");
        json_buf_string(b, r->user_id);
        json_buf_puts(b, ",\"event_id\":");
        json_buf_string(b, r->event_id);
        json_buf_printf(b, ",\"event_ms\":%" PRId64 ",\"score\":%s,\"severity\":", r->event_time_ms,
                        json_double_text(r->score, num));
        json_buf_string(b, r->alert_severity);
        json_buf_puts(b, ",\"model_version\":");
        if (r->model_version)
            json_buf_string(b, r->model_version);
        else
            json_buf_puts(b, "null");
        json_buf_puts(b, ",\"topic\":");
        json_buf_string(b, r->at.topic);
        json_buf_printf(b, ",\"part\":%" PRId32 ",\"off\":%" PRId64 ",\"explanation\":",
                        r->at.partition, r->at.offset);
        json_buf_puts(b, r->alert_explanation ? r->alert_explanation : "null");
        json_buf_puts(b, "}");
    }
    if (n)
        json_buf_puts(b, "]");
}

/* The articles as alerts_sentiment_apply takes them; none leaves b empty. */
static void sink_alerts_articles_json(const sink_rows_t *rows, json_buf_t *b)
{
    size_t n = 0;

    for (size_t i = 0; i < rows->n_articles; i++) {
        const sink_article_row_t *a = &rows->articles[i];
        json_buf_puts(b, n++ ? ",{" : "[{");
        json_buf_puts(b, "\"id\":");
        json_buf_string(b, a->article_id);
        json_buf_printf(b, ",\"ms\":%" PRId64 ",\"tickers\":[", a->published_time_ms);
        for (size_t t = 0; t < a->n_tickers; t++) {
            if (t)
                json_buf_puts(b, ",");
            json_buf_string(b, a->tickers[t]);
        }
        /* Unscored articles count in the volume, not in the negative share. */
        json_buf_puts(b, "],\"topic_label\":");
        if (a->model_version && a->topic_label)
            json_buf_string(b, a->topic_label);
        else
            json_buf_puts(b, "null");
        json_buf_puts(b, ",\"negative\":");
        json_buf_puts(b, !a->model_version || !a->sentiment      ? "null"
                         : strcmp(a->sentiment, "negative") == 0 ? "true"
                                                                 : "false");
        json_buf_puts(b, ",\"topic\":");
        json_buf_string(b, a->at.topic);
        json_buf_printf(b, ",\"part\":%" PRId32 ",\"off\":%" PRId64 "}", a->at.partition,
                        a->at.offset);
    }
    if (n)
        json_buf_puts(b, "]");
}

/* Runs one apply function (its SQL takes $1 the JSON and then the rest of params) and counts
 * the alerts it changed under kind. */
static int sink_alerts_run(sink_pg_t *pg, const sink_batch_t *batch, int kind, const char *sql,
                           const char *const *params, int n_params, char *err, size_t errlen)
{
    char msg[512];
    PGresult *res = PQexecParams(pg->conn, sql, n_params, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        errbuf_printf(err, errlen, "PostgreSQL: raising the batch's %s alerts failed: %s",
                      sink_alert_kinds[kind], sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        if (sink_pg_sqlstate_is_data(res))
            pg->rejected = 1;
        PQclear(res);
        return -1;
    }
    for (int r = 0; batch->alert_changes && r < PQntuples(res); r++) {
        int sev = sink_alert_severity_index(PQgetvalue(res, r, 1));
        if (sev < 0)
            continue; /* the table's CHECK allows no other; never reached */
        if (strcmp(PQgetvalue(res, r, 2), "t") == 0)
            batch->alert_changes->raised[kind][sev]++;
        else
            batch->alert_changes->updated[kind][sev]++;
    }
    PQclear(res);
    return 0;
}

int sink_pg_alerts_apply(sink_pg_t *pg, const sink_batch_t *batch, char *err, size_t errlen)
{
    json_buf_t hits = {0}, arts = {0};
    int rc = -1;

    if (batch->alert_changes)
        *batch->alert_changes = (sink_alert_changes_t){0};
    sink_alerts_hits_json(&batch->rows, &hits);
    if (batch->sentiment)
        sink_alerts_articles_json(&batch->rows, &arts);
    if (hits.failed || arts.failed) {
        errbuf_printf(err, errlen, "PostgreSQL sink: out of memory listing the batch's alerts");
        goto out;
    }
    if (hits.len) {
        char gap[32];
        snprintf(gap, sizeof gap, "%" PRId64, batch->alert_group_gap_ms);
        const char *params[2] = {hits.p, gap};
        if (sink_alerts_run(pg, batch, SINK_ALERT_FRAUD,
                            "SELECT alert_id, severity, raised FROM "
                            "vigil.alerts_fraud_apply($1::jsonb, $2::int8)",
                            params, 2, err, errlen) != 0)
            goto out;
    }
    if (arts.len) {
        const sink_sentiment_rules_t *sr = batch->sentiment;
        char width[32], history[16], z[JSON_DOUBLE_MAX], min[16];
        snprintf(width, sizeof width, "%" PRId64, sr->window_ms);
        snprintf(history, sizeof history, "%d", sr->history);
        json_double_text(sr->z, z);
        snprintf(min, sizeof min, "%d", sr->min_articles);
        const char *params[7] = {
            arts.p, width, history, z, min, sr->by_ticker ? "t" : "f", sr->by_topic ? "t" : "f"};
        if (sink_alerts_run(pg, batch, SINK_ALERT_SENTIMENT,
                            "SELECT alert_id, severity, raised FROM vigil.alerts_sentiment_apply("
                            "$1::jsonb, $2::int8, $3::int4, $4::real, $5::int4, $6::bool, "
                            "$7::bool)",
                            params, 7, err, errlen) != 0)
            goto out;
    }
    rc = 0;
out:
    json_buf_free(&hits);
    json_buf_free(&arts);
    return rc;
}

/* ---- tooling ---------------------------------------------------------------------------- */

#define SINK_ALERT_COLUMNS                                                                         \
    "alert_id, kind, entity, severity, status, revision, event_count, first_event_id, "            \
    "first_event_time, last_event_id, last_event_time, max_score, event_ids, explanation, "        \
    "model_version, raised_at, updated_at, acknowledged_at, acknowledged_by, resolved_at, "        \
    "resolved_by, resolution"

/* Where each column of SINK_ALERT_COLUMNS goes in sink_alert_t, in that order. */
static const size_t sink_alert_offsets[] = {
    offsetof(sink_alert_t, alert_id),         offsetof(sink_alert_t, kind),
    offsetof(sink_alert_t, entity),           offsetof(sink_alert_t, severity),
    offsetof(sink_alert_t, status),           offsetof(sink_alert_t, revision),
    offsetof(sink_alert_t, event_count),      offsetof(sink_alert_t, first_event_id),
    offsetof(sink_alert_t, first_event_time), offsetof(sink_alert_t, last_event_id),
    offsetof(sink_alert_t, last_event_time),  offsetof(sink_alert_t, max_score),
    offsetof(sink_alert_t, event_ids),        offsetof(sink_alert_t, explanation),
    offsetof(sink_alert_t, model_version),    offsetof(sink_alert_t, raised_at),
    offsetof(sink_alert_t, updated_at),       offsetof(sink_alert_t, acknowledged_at),
    offsetof(sink_alert_t, acknowledged_by),  offsetof(sink_alert_t, resolved_at),
    offsetof(sink_alert_t, resolved_by),      offsetof(sink_alert_t, resolution),
};
#define SINK_ALERT_FIELDS (sizeof sink_alert_offsets / sizeof sink_alert_offsets[0])

static char **sink_alert_field(sink_alert_t *a, size_t col)
{
    return (char **)(void *)((char *)a + sink_alert_offsets[col]);
}

void sink_pg_alerts_free(sink_alert_t *alerts, size_t n)
{
    for (size_t i = 0; alerts && i < n; i++)
        for (size_t c = 0; c < SINK_ALERT_FIELDS; c++)
            free(*sink_alert_field(&alerts[i], c));
    free(alerts);
}

int sink_pg_alerts_take(const PGresult *res, sink_alert_t **out, size_t *n)
{
    size_t rows = (size_t)PQntuples(res);
    sink_alert_t *v = calloc(rows ? rows : 1, sizeof *v);

    *out = NULL;
    *n = 0;
    if (!v)
        return -1;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < SINK_ALERT_FIELDS && c < (size_t)PQnfields(res); c++) {
            char **f = sink_alert_field(&v[r], c);
            if (PQgetisnull(res, (int)r, (int)c))
                continue;
            if (!(*f = strdup(PQgetvalue(res, (int)r, (int)c)))) {
                sink_pg_alerts_free(v, rows);
                return -1;
            }
        }
    *out = v;
    *n = rows;
    return 0;
}

int sink_pg_alerts_list(sink_pg_t *pg, const char *status, const char *kind, const char *id,
                        int limit, sink_alert_t **out, size_t *n, char *err, size_t errlen)
{
    char lim[16], msg[512];
    const char *params[4] = {status, kind, id, lim};
    int rc = SINK_PG_ERR;

    *out = NULL;
    *n = 0;
    if (sink_pg_check_conn(pg, "list alerts", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(lim, sizeof lim, "%d", limit);
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT " SINK_ALERT_COLUMNS " FROM vigil.alerts "
                                 "WHERE ($1::text IS NULL OR status = $1::text) "
                                 "AND ($2::text IS NULL OR kind = $2::text) "
                                 "AND ($3::text IS NULL OR alert_id = $3::text) "
                                 "ORDER BY updated_at DESC, alert_id LIMIT $4::int4",
                                 4, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        errbuf_printf(err, errlen, "PostgreSQL: listing vigil.alerts failed: %s",
                      sink_pg_result_error(pg->conn, res, msg, sizeof msg));
    else if (sink_pg_alerts_take(res, out, n) != 0)
        errbuf_printf(err, errlen, "out of memory listing %d alerts", PQntuples(res));
    else
        rc = SINK_PG_OK;
    PQclear(res);
    return rc;
}

int sink_pg_alert_set_status(sink_pg_t *pg, const char *id, const char *status, const char *by,
                             const char *how, sink_alert_t **out, char *err, size_t errlen)
{
    const char *params[4] = {id, status, by, how};
    sink_alert_t *a = NULL;
    size_t n = 0;
    char msg[512];
    int rc = SINK_PG_ERR;

    if (out)
        *out = NULL;
    if (sink_pg_check_conn(pg, "change an alert", err, errlen) != 0)
        return SINK_PG_ERR;
    /* One statement: its own transaction, the label rows and the NOTIFY with it. */
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT " SINK_ALERT_COLUMNS " FROM vigil.alert_set_status("
                                 "$1::text, $2::text, $3::text, $4::text)",
                                 4, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        errbuf_printf(err, errlen, "PostgreSQL: setting alert %s %s failed: %s", id, status,
                      sink_pg_result_error(pg->conn, res, msg, sizeof msg));
    } else if (sink_pg_alerts_take(res, &a, &n) != 0) {
        errbuf_printf(err, errlen, "out of memory reading alert %s back", id);
    } else if (n == 0) {
        errbuf_printf(err, errlen, "no alert %s that can be %s (no such alert, or it is %s)", id,
                      status, strcmp(status, "resolved") == 0 ? "resolved already" : "not open");
        rc = SINK_PG_FENCED;
    } else {
        rc = SINK_PG_OK;
    }
    PQclear(res);
    if (rc == SINK_PG_OK && out) {
        *out = a;
        a = NULL;
    }
    sink_pg_alerts_free(a, n);
    return rc;
}

int sink_pg_alerts_resolve_quiet(sink_pg_t *pg, const char *kind, int64_t quiet_ms, const char *by,
                                 uint64_t resolved[SINK_ALERT_SEVERITIES], char *err, size_t errlen)
{
    char quiet[48], msg[512];
    const char *params[3] = {kind, quiet, by};
    int rc = SINK_PG_ERR;

    memset(resolved, 0, SINK_ALERT_SEVERITIES * sizeof *resolved);
    if (sink_pg_check_conn(pg, "resolve quiet alerts", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(quiet, sizeof quiet, "%" PRId64 " milliseconds", quiet_ms);
    PGresult *res = PQexecParams(pg->conn,
                                 "SELECT severity, resolved FROM vigil.alerts_resolve_quiet("
                                 "$1::text, $2::interval, $3::text)",
                                 3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        errbuf_printf(err, errlen, "PostgreSQL: resolving quiet %s alerts failed: %s", kind,
                      sink_pg_result_error(pg->conn, res, msg, sizeof msg));
    } else {
        for (int r = 0; r < PQntuples(res); r++) {
            int sev = sink_alert_severity_index(PQgetvalue(res, r, 0));
            if (sev >= 0)
                resolved[sev] = strtoull(PQgetvalue(res, r, 1), NULL, 10);
        }
        rc = SINK_PG_OK;
    }
    PQclear(res);
    return rc;
}
