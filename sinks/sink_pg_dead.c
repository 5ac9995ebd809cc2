/* PostgreSQL sink, the dead-letter tooling behind `vigil dlq`: listing the stored dead letters and
 * replacing one with the row decoded from it once its cause is fixed, in one transaction. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "sink_pg_internal.h"

void sink_pg_dead_entries_free(sink_dead_entry_t *entries, size_t n)
{
    for (size_t i = 0; entries && i < n; i++) {
        free(entries[i].topic);
        PQfreemem(entries[i].key);
        PQfreemem(entries[i].payload);
        free(entries[i].reason);
        free(entries[i].created_at);
    }
    free(entries);
}

/* A bytea column (hex text output) into a libpq-allocated buffer; NULL stays NULL. */
static int sink_pg_bytea_get(const PGresult *res, int row, int col, unsigned char **out,
                             size_t *len)
{
    *out = NULL;
    *len = 0;
    if (PQgetisnull(res, row, col))
        return 0;
    *out = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), len);
    return *out ? 0 : -1;
}

/* Row r of the list query into e (zeroed). -1 when out of memory: e then holds what it got, for
 * sink_pg_dead_entries_free. */
static int sink_pg_dead_entry_get(const PGresult *res, int r, sink_dead_entry_t *e)
{
    e->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
    e->topic = strdup(PQgetvalue(res, r, 1));
    e->partition = (int32_t)strtol(PQgetvalue(res, r, 2), NULL, 10);
    e->offset = strtoll(PQgetvalue(res, r, 3), NULL, 10);
    e->kafka_timestamp_ms = PQgetisnull(res, r, 4) ? -1 : strtoll(PQgetvalue(res, r, 4), NULL, 10);
    e->reason = strdup(PQgetvalue(res, r, 7));
    e->created_at = strdup(PQgetvalue(res, r, 8));
    if (!e->topic || !e->reason || !e->created_at ||
        sink_pg_bytea_get(res, r, 5, &e->key, &e->key_len) != 0 ||
        sink_pg_bytea_get(res, r, 6, &e->payload, &e->payload_len) != 0)
        return -1;
    return 0;
}

int sink_pg_dead_letters_list(sink_pg_t *pg, const char *topic, const char *reason_like,
                              int64_t after_id, int limit, sink_dead_entry_t **out, size_t *n,
                              char *err, size_t errlen)
{
    char after[32], lim[16], msg[512];
    const char *params[4];
    sink_dead_entry_t *entries = NULL;
    PGresult *res;
    int rows;

    *out = NULL;
    *n = 0;
    if (sink_pg_check_conn(pg, "list dead letters", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(after, sizeof after, "%" PRId64, after_id);
    snprintf(lim, sizeof lim, "%d", limit);
    params[0] = after;
    params[1] = topic;
    params[2] = reason_like;
    params[3] = lim;
    res = PQexecParams(pg->conn,
                       "SELECT id, topic, partition, kafka_offset, "
                       "(extract(epoch FROM kafka_timestamp) * 1000)::int8, key, payload, reason, "
                       "created_at FROM vigil.dead_letters WHERE id > $1::int8 "
                       "AND ($2::text IS NULL OR topic = $2::text) "
                       "AND ($3::text IS NULL OR reason LIKE $3::text) "
                       "ORDER BY id LIMIT $4::int4",
                       4, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        errbuf_printf(err, errlen, "PostgreSQL: listing vigil.dead_letters failed: %s",
                      sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        PQclear(res);
        return SINK_PG_ERR;
    }
    rows = PQntuples(res);
    entries = calloc((size_t)(rows > 0 ? rows : 1), sizeof *entries);
    if (!entries)
        goto oom;
    for (int r = 0; r < rows; r++) {
        *n = (size_t)r + 1; /* so that a failure frees what this row got */
        if (sink_pg_dead_entry_get(res, r, &entries[r]) != 0)
            goto oom;
    }
    PQclear(res);
    *out = entries;
    *n = (size_t)rows;
    return SINK_PG_OK;
oom:
    PQclear(res);
    sink_pg_dead_entries_free(entries, *n);
    *n = 0;
    errbuf_printf(err, errlen, "PostgreSQL sink: out of memory listing dead letters");
    return SINK_PG_ERR;
}

int sink_pg_dead_letter_replace(sink_pg_t *pg, int64_t id, const sink_rows_t *rows, char *err,
                                size_t errlen)
{
    char idtext[32], msg[512];
    const char *params[1] = {idtext};
    PGresult *res = NULL;
    int deleted;

    if (!sink_pg_rows_complete(rows)) {
        errbuf_printf(err, errlen,
                      "PostgreSQL sink: replace called with incomplete rows (a bug in the caller)");
        return SINK_PG_ERR;
    }
    if (sink_pg_check_conn(pg, "replay a dead letter", err, errlen) != 0)
        return SINK_PG_ERR;
    sink_pg_rollback(pg->conn);
    pg->rejected = 0;
    snprintf(idtext, sizeof idtext, "%" PRId64, id);
    if (sink_pg_exec(pg->conn, "BEGIN", PGRES_COMMAND_OK, "BEGIN of a replay", err, errlen) != 0)
        goto err;
    /* The delete takes the row lock: a concurrent replay of the same id waits here, then finds
     * nothing to delete and writes nothing. */
    res = PQexecParams(pg->conn, "DELETE FROM vigil.dead_letters WHERE id = $1::int8", 1, NULL,
                       params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        errbuf_printf(err, errlen, "PostgreSQL: deleting dead letter %s failed: %s", idtext,
                      sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        goto err;
    }
    deleted = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    res = NULL;
    if (!deleted) {
        sink_pg_rollback(pg->conn);
        errbuf_printf(err, errlen, "dead letter %s is gone (replayed already)", idtext);
        return SINK_PG_FENCED;
    }
    if (sink_pg_copy_rows(pg, rows, err, errlen) != 0)
        goto err;
    if (sink_pg_commit(pg->conn, "a replay", err, errlen) != 0)
        goto err;
    return SINK_PG_OK;
err:
    PQclear(res);
    return sink_pg_write_abort(pg);
}
