/* PostgreSQL sink, the batch write: sink_pg_offsets_load (where each assigned partition resumes)
 * and sink_pg_write, which puts a batch's rows, dead letters and offset updates in one
 * transaction. Each offset update matches only if the stored offset is still the one this
 * instance loaded; when one does not, another instance has written the partition since and the
 * whole batch is rolled back (SINK_PG_FENCED). A batch the server refuses as data is
 * SINK_PG_REJECTED, anything else SINK_PG_ERR (sinks/README.md, "Offset protocol"). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "sink_pg_internal.h"

/* ---- offsets --------------------------------------------------------------------------------- */

/* "{1,2,3}": an int4[] parameter in text form, built in the sink's buffer. */
static int sink_pg_int4_array(sink_pg_buf_t *b, const int32_t *v, size_t n)
{
    size_t i;

    b->len = 0;
    if (sink_pg_buf_addc(b, '{') != 0)
        return -1;
    for (i = 0; i < n; i++) {
        if (i > 0 && sink_pg_buf_addc(b, ',') != 0)
            return -1;
        if (sink_pg_buf_add_i64(b, v[i]) != 0)
            return -1;
    }
    if (sink_pg_buf_addc(b, '}') != 0 || sink_pg_buf_addc(b, '\0') != 0)
        return -1;
    return 0;
}

int sink_pg_offsets_load(sink_pg_t *pg, const char *group, const char *topic,
                         const int32_t *partitions, size_t n, int64_t *next_offsets, char *err,
                         size_t errlen)
{
    const char *params[3];
    char msg[512];
    PGresult *res = NULL;
    size_t i;

    if (n == 0)
        return SINK_PG_OK;
    if (!group || !topic || !partitions || !next_offsets) {
        errbuf_printf(err, errlen,
                      "PostgreSQL sink: offsets_load called without group, topic "
                      "or partitions (a bug in the caller)");
        return SINK_PG_ERR;
    }
    if (sink_pg_check_conn(pg, "load Kafka offsets", err, errlen) != 0)
        return SINK_PG_ERR;
    if (sink_pg_int4_array(&pg->buf, partitions, n) != 0) {
        errbuf_printf(err, errlen, "PostgreSQL sink: out of memory listing %zu partitions", n);
        return SINK_PG_ERR;
    }
    params[0] = group;
    params[1] = topic;
    params[2] = pg->buf.data;

    /* First make sure every partition has a row, so that the fenced update in sink_pg_write
     * always has one to match. Its own statement (not a CTE) so that the SELECT below sees rows
     * another instance committed meanwhile. */
    res = PQexecParams(pg->conn,
                       "INSERT INTO vigil.kafka_offsets (consumer_group, topic, partition) "
                       "SELECT $1::text, $2::text, p FROM unnest($3::int4[]) AS p "
                       "ON CONFLICT DO NOTHING",
                       3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: creating vigil.kafka_offsets rows for group \"%s\" topic "
                      "\"%s\" failed: %s; has sink_pg_migrate run?",
                      group, topic, sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        goto err;
    }
    PQclear(res);

    res = PQexecParams(pg->conn,
                       "SELECT o.next_offset FROM unnest($3::int4[]) WITH ORDINALITY AS p(part, i) "
                       "LEFT JOIN vigil.kafka_offsets o ON o.consumer_group = $1::text "
                       "AND o.topic = $2::text AND o.partition = p.part ORDER BY p.i",
                       3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: reading vigil.kafka_offsets for group \"%s\" topic \"%s\" "
                      "failed: %s",
                      group, topic, sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        goto err;
    }
    if ((size_t)PQntuples(res) != n) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: reading vigil.kafka_offsets for group \"%s\" topic \"%s\" "
                      "returned %d rows for %zu partitions (a bug in the query)",
                      group, topic, PQntuples(res), n);
        goto err;
    }
    for (i = 0; i < n; i++) {
        char *end;

        if (PQgetisnull(res, (int)i, 0)) {
            next_offsets[i] = SINK_PG_OFFSET_NONE;
            continue;
        }
        errno = 0;
        next_offsets[i] = strtoll(PQgetvalue(res, (int)i, 0), &end, 10);
        if (errno != 0 || *end != '\0') {
            errbuf_printf(err, errlen,
                          "PostgreSQL: stored next_offset \"%s\" for %s/%" PRId32
                          " is not an integer",
                          PQgetvalue(res, (int)i, 0), topic, partitions[i]);
            goto err;
        }
    }
    PQclear(res);
    return SINK_PG_OK;

err:
    PQclear(res);
    return SINK_PG_ERR;
}

/* After a fence failure (and rollback): what is stored now, as text for the error message. */
static void sink_pg_stored_offset(PGconn *conn, const char *group, const sink_offset_advance_t *o,
                                  char *out, size_t outlen)
{
    char part[16];
    const char *params[3] = {group, o->topic, part};
    PGresult *res;

    snprintf(part, sizeof part, "%" PRId32, o->partition);
    res = PQexecParams(conn,
                       "SELECT next_offset FROM vigil.kafka_offsets WHERE consumer_group = "
                       "$1::text AND topic = $2::text AND partition = $3::int4",
                       3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        snprintf(out, outlen, "unknown (could not read it back)");
    else if (PQntuples(res) == 0)
        snprintf(out, outlen, "no row (sink_pg_offsets_load was not called for it)");
    else if (PQgetisnull(res, 0, 0))
        snprintf(out, outlen, "NULL (none)");
    else
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* The conditional offset update. Returns 0 when it matched, 1 when fenced, -1 on error. */
static int sink_pg_offset_advance(PGconn *conn, const sink_batch_t *batch,
                                  const sink_offset_advance_t *o, char *err, size_t errlen)
{
    char part[16], next[32], expected[32], msg[512];
    const char *params[6] = {batch->group, o->topic, part, next, batch->instance_id, NULL};
    PGresult *res;
    int rc;

    snprintf(part, sizeof part, "%" PRId32, o->partition);
    snprintf(next, sizeof next, "%" PRId64, o->next);
    if (o->expected != SINK_PG_OFFSET_NONE) {
        snprintf(expected, sizeof expected, "%" PRId64, o->expected);
        params[5] = expected; /* NULL stays SQL NULL: "nothing stored yet" */
    }
    res = PQexecParams(conn,
                       "UPDATE vigil.kafka_offsets SET next_offset = $4::int8, updated_at = now(), "
                       "updated_by = $5::text WHERE consumer_group = $1::text AND topic = $2::text "
                       "AND partition = $3::int4 AND next_offset IS NOT DISTINCT FROM $6::int8",
                       6, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        errbuf_printf(
            err, errlen,
            "PostgreSQL: updating vigil.kafka_offsets for group \"%s\" %s/%" PRId32 " failed: %s",
            batch->group, o->topic, o->partition, sink_pg_result_error(conn, res, msg, sizeof msg));
        rc = -1;
    } else {
        rc = strcmp(PQcmdTuples(res), "1") == 0 ? 0 : 1;
    }
    PQclear(res);
    return rc;
}

/* ---- the batch ------------------------------------------------------------------------------- */

/* Whether the batch's counts, arrays and offsets agree; a batch that does not is a caller's bug,
 * refused before anything is sent. */
static int sink_pg_batch_check(const sink_batch_t *batch, char *err, size_t errlen)
{
    if (!batch || !batch->group || !sink_pg_rows_complete(&batch->rows) ||
        (batch->n_dead && !batch->dead) || (batch->n_offsets && !batch->offsets) ||
        (batch->n_checkpoints && !batch->checkpoints)) {
        errbuf_printf(err, errlen,
                      "PostgreSQL sink: write called with an incomplete batch (a "
                      "bug in the caller)");
        return -1;
    }
    for (size_t i = 0; i < batch->n_offsets; i++) {
        if (!batch->offsets[i].topic) {
            errbuf_printf(err, errlen,
                          "PostgreSQL sink: write called with offsets[%zu] lacking "
                          "a topic (a bug in the caller)",
                          i);
            return -1;
        }
    }
    return 0;
}

/* After the offset update of o did not match: rolls the batch back and says in err what is
 * stored instead. Returns SINK_PG_FENCED. */
static int sink_pg_fenced(sink_pg_t *pg, const sink_batch_t *batch, const sink_offset_advance_t *o,
                          char *err, size_t errlen)
{
    char stored[128], expected[32];

    sink_pg_rollback(pg->conn);
    sink_pg_stored_offset(pg->conn, batch->group, o, stored, sizeof stored);
    if (o->expected == SINK_PG_OFFSET_NONE)
        snprintf(expected, sizeof expected, "NULL (none)");
    else
        snprintf(expected, sizeof expected, "%" PRId64, o->expected);
    errbuf_printf(err, errlen,
                  "PostgreSQL: fenced on group \"%s\" %s/%" PRId32 ": expected stored "
                  "next_offset %s but it is %s; another instance has written this partition "
                  "since it was assigned here: batch rolled back (nothing written), drop it "
                  "and reload offsets after the rebalance",
                  batch->group, o->topic, o->partition, expected, stored);
    return SINK_PG_FENCED;
}

int sink_pg_write_abort(sink_pg_t *pg)
{
    sink_pg_rollback(pg->conn);
    return pg->rejected && PQstatus(pg->conn) == CONNECTION_OK ? SINK_PG_REJECTED : SINK_PG_ERR;
}

int sink_pg_write(sink_pg_t *pg, const sink_batch_t *batch, char *err, size_t errlen)
{
    char what[96];
    int rc;

    if (sink_pg_batch_check(batch, err, errlen) != 0)
        return SINK_PG_ERR;
    if (sink_pg_check_conn(pg, "write a batch", err, errlen) != 0)
        return SINK_PG_ERR;
    /* A transaction left open by an earlier failure would swallow this batch into it. */
    sink_pg_rollback(pg->conn);
    pg->rejected = 0;

    if (sink_pg_exec(pg->conn, "BEGIN", PGRES_COMMAND_OK, "BEGIN of a batch", err, errlen) != 0)
        goto err;
    if (sink_pg_copy_rows(pg, &batch->rows, err, errlen) != 0)
        goto err;
    if (batch->n_dead > 0 && sink_pg_copy_dead(pg, batch->dead, batch->n_dead, err, errlen) != 0)
        goto err;
    for (size_t i = 0; i < batch->n_offsets; i++) {
        rc = sink_pg_offset_advance(pg->conn, batch, &batch->offsets[i], err, errlen);
        if (rc < 0)
            goto err;
        if (rc > 0)
            return sink_pg_fenced(pg, batch, &batch->offsets[i], err, errlen);
    }
    /* After the offsets: an instance that lost a partition learns it from the fence before it
     * touches an alert. Before them, its insert of an alert the partition's new owner had just
     * raised failed as a unique violation, a database error retried without end, and the fence
     * that would have ended it was never reached (group_scaling hung in SIGTERM). */
    if (sink_pg_alerts_apply(pg, batch, err, errlen) != 0)
        goto err;
    for (size_t i = 0; i < batch->n_checkpoints; i++)
        if (sink_pg_checkpoint_save(pg, batch->group, batch->instance_id, &batch->checkpoints[i],
                                    err, errlen) == SINK_PG_ERR)
            goto err; /* SINK_PG_FENCED: a later checkpoint is stored, which is as good */
    snprintf(what, sizeof what, "a batch (%zu rows, %zu dead letters)",
             batch->rows.n_risk + batch->rows.n_articles + batch->rows.n_labels, batch->n_dead);
    if (sink_pg_commit(pg->conn, what, err, errlen) != 0)
        goto err;
    return SINK_PG_OK;

err:
    rc = sink_pg_write_abort(pg);
    if (PQstatus(pg->conn) != CONNECTION_OK && err && errlen > 0) {
        size_t used = strnlen(err, errlen);

        snprintf(err + used, errlen - used,
                 " (connection lost: call sink_pg_reconnect, then retry the same batch)");
    }
    return rc;
}
