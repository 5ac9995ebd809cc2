/* PostgreSQL sink, what feature state needs stored: entity state checkpoints
 * (vigil.entity_state, written by the checkpoint writer thread in transactions of their own after
 * their batch commits, read back on assignment), the feature specs vectors follow
 * (vigil.feature_specs), and the dead-letter offsets a replay of entity state skips. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "sink_pg_internal.h"

/* ---- entity state checkpoints ---------------------------------------------------------------- */

int sink_pg_checkpoint_save(sink_pg_t *pg, const char *group, const char *instance_id,
                            const sink_checkpoint_t *c, char *err, size_t errlen)
{
    char part[16], next[32], entities[32], msg[512];
    const char *params[8] = {
        group, c->topic, part, next, c->spec_hash, entities, (const char *)c->state, instance_id};
    int lengths[8] = {0, 0, 0, 0, 0, 0, (int)c->state_len, 0};
    int formats[8] = {0, 0, 0, 0, 0, 0, 1, 0};
    PGresult *res;
    int rc;

    if (c->state_len > SINK_PG_CHECKPOINT_MAX) { /* the worker skips those; a caller's bug */
        errbuf_printf(err, errlen,
                      "PostgreSQL sink: entity state of %s/%" PRId32 " is %zu bytes, over the "
                      "1 GB PostgreSQL holds in one value; lower features.max_entities",
                      c->topic, c->partition, c->state_len);
        return SINK_PG_ERR;
    }
    if (sink_pg_check_conn(pg, "entity state checkpoint", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(part, sizeof part, "%" PRId32, c->partition);
    snprintf(next, sizeof next, "%" PRId64, c->next_offset);
    snprintf(entities, sizeof entities, "%" PRIu64, c->entities);
    /* Never over a later checkpoint: one written after this one was taken (by this instance or
     * by the partition's next owner) stays. */
    res = PQexecParams(pg->conn,
                       "INSERT INTO vigil.entity_state (consumer_group, topic, partition, "
                       "next_offset, spec_hash, entities, state, updated_by) VALUES ($1::text, "
                       "$2::text, $3::int4, $4::int8, $5::text, $6::int8, $7::bytea, $8::text) "
                       "ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = "
                       "excluded.next_offset, spec_hash = excluded.spec_hash, entities = "
                       "excluded.entities, state = excluded.state, updated_at = now(), "
                       "updated_by = excluded.updated_by "
                       "WHERE vigil.entity_state.next_offset <= excluded.next_offset",
                       8, NULL, params, lengths, formats, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: writing the entity state checkpoint of %s/%" PRId32
                      " failed: %s",
                      c->topic, c->partition, sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        rc = SINK_PG_ERR;
    } else if (strcmp(PQcmdTuples(res), "1") != 0) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: the entity state checkpoint of %s/%" PRId32 " at %" PRId64
                      " was not written: a later one is stored",
                      c->topic, c->partition, c->next_offset);
        rc = SINK_PG_FENCED;
    } else {
        rc = SINK_PG_OK;
    }
    PQclear(res);
    return rc;
}

int sink_pg_checkpoint_load(sink_pg_t *pg, const char *group, const char *topic, int32_t partition,
                            int64_t *next_offset, char *spec_hash, size_t spec_hash_len,
                            uint8_t **state, size_t *state_len, char *err, size_t errlen)
{
    char part[16], msg[512], num[32];
    const char *params[3] = {group, topic, part};
    PGresult *res;
    int rc = SINK_PG_ERR, nlen, hlen;
    size_t len;

    *state = NULL;
    *state_len = 0;
    *next_offset = SINK_PG_OFFSET_NONE;
    if (sink_pg_check_conn(pg, "load an entity state checkpoint", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(part, sizeof part, "%" PRId32, partition);
    /* Binary results: the state comes back as raw bytes, not hex text twice its size. */
    res = PQexecParams(pg->conn,
                       "SELECT next_offset::text::bytea, spec_hash::bytea, state FROM "
                       "vigil.entity_state WHERE consumer_group = $1::text AND topic = $2::text "
                       "AND partition = $3::int4",
                       3, NULL, params, NULL, NULL, 1);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: reading the entity state checkpoint of %s/%" PRId32
                      " failed: %s",
                      topic, partition, sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        goto out;
    }
    rc = SINK_PG_OK;
    if (PQntuples(res) == 0)
        goto out;
    nlen = PQgetlength(res, 0, 0);
    hlen = PQgetlength(res, 0, 1);
    len = (size_t)PQgetlength(res, 0, 2);
    snprintf(num, sizeof num, "%.*s", nlen < 31 ? nlen : 31, PQgetvalue(res, 0, 0));
    snprintf(spec_hash, spec_hash_len, "%.*s", hlen, PQgetvalue(res, 0, 1));
    *next_offset = strtoll(num, NULL, 10);
    *state = malloc(len ? len : 1);
    if (!*state) {
        errbuf_printf(err, errlen,
                      "PostgreSQL sink: out of memory for a %zu-byte entity state of %s/%" PRId32,
                      len, topic, partition);
        rc = SINK_PG_ERR;
        goto out;
    }
    memcpy(*state, PQgetvalue(res, 0, 2), len);
    *state_len = len;
out:
    PQclear(res);
    return rc;
}

/* ---- dead-letter offsets, for a replay of entity state --------------------------------------- */

int sink_pg_dead_offsets_load(sink_pg_t *pg, const char *topic, int32_t partition, int64_t from,
                              int64_t to, int64_t **offsets, size_t *n, char *err, size_t errlen)
{
    char part[16], lo[32], hi[32], msg[512];
    const char *params[4] = {topic, part, lo, hi};
    PGresult *res;
    int rc = SINK_PG_ERR;

    *offsets = NULL;
    *n = 0;
    if (sink_pg_check_conn(pg, "load dead-letter offsets", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(part, sizeof part, "%" PRId32, partition);
    snprintf(lo, sizeof lo, "%" PRId64, from);
    snprintf(hi, sizeof hi, "%" PRId64, to);
    res =
        PQexecParams(pg->conn,
                     "SELECT DISTINCT kafka_offset FROM vigil.dead_letters WHERE topic = $1::text "
                     "AND partition = $2::int4 AND kafka_offset >= $3::int8 AND kafka_offset < "
                     "$4::int8 AND reason NOT LIKE 'refused by PostgreSQL%' ORDER BY 1",
                     4, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: reading dead-letter offsets of %s/%" PRId32 " failed: %s", topic,
                      partition, sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        goto out;
    }
    if (PQntuples(res) > 0) {
        *offsets = malloc((size_t)PQntuples(res) * sizeof(**offsets));
        if (!*offsets) {
            errbuf_printf(err, errlen, "PostgreSQL sink: out of memory for %d dead-letter offsets",
                          PQntuples(res));
            goto out;
        }
        for (int i = 0; i < PQntuples(res); i++)
            (*offsets)[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        *n = (size_t)PQntuples(res);
    }
    rc = SINK_PG_OK;
out:
    PQclear(res);
    return rc;
}

/* ---- feature specs --------------------------------------------------------------------------- */

/* An array literal {"a","b"} for a text[] parameter (no COPY escaping), NUL-terminated. */
static int sink_pg_array_literal(sink_pg_buf_t *b, const char *const *items, size_t n)
{
    if (sink_pg_buf_addc(b, '{') != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && sink_pg_buf_addc(b, ',') != 0) || sink_pg_buf_addc(b, '"') != 0)
            return -1;
        for (const char *c = items[i]; *c; c++)
            if (((*c == '"' || *c == '\\') && sink_pg_buf_addc(b, '\\') != 0) ||
                sink_pg_buf_addc(b, *c) != 0)
                return -1;
        if (sink_pg_buf_addc(b, '"') != 0)
            return -1;
    }
    return sink_pg_buf_add(b, "}", 2); /* with the terminating NUL */
}

int sink_pg_feature_spec_register(sink_pg_t *pg, const char *spec_hash, const char *const *columns,
                                  size_t n_columns, const char *spec_text, char *err, size_t errlen)
{
    char msg[512];
    const char *params[3] = {spec_hash, NULL, spec_text};
    PGresult *res;
    int rc = SINK_PG_ERR;

    if (sink_pg_check_conn(pg, "register a feature spec", err, errlen) != 0)
        return SINK_PG_ERR;
    pg->buf.len = 0;
    if (sink_pg_array_literal(&pg->buf, columns, n_columns) != 0) {
        errbuf_printf(err, errlen, "PostgreSQL sink: out of memory building the column list");
        return SINK_PG_ERR;
    }
    params[1] = pg->buf.data;
    res = PQexecParams(pg->conn,
                       "INSERT INTO vigil.feature_specs (spec_hash, columns, spec) VALUES "
                       "($1::text, $2::text[], $3::text) ON CONFLICT (spec_hash) DO NOTHING",
                       3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        errbuf_printf(err, errlen, "PostgreSQL: registering feature spec %s failed: %s", spec_hash,
                      sink_pg_result_error(pg->conn, res, msg, sizeof msg));
    else
        rc = SINK_PG_OK;
    PQclear(res);
    return rc;
}
