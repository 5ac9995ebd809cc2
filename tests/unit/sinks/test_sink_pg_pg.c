/* Tests for the PostgreSQL sink against a real, throwaway server: migrations (idempotent, safe
 * when raced, rolled back on failure), offset loading, exact round trip of every field through
 * COPY, the offset fence (stale and concurrent writers), recovery from a killed backend, and a
 * printed (not asserted) COPY rate. Run by ctest through tests/lib/with_pg.sh, which exports
 * VIGIL_TEST_CONNINFO; by hand: bash tests/lib/with_pg.sh ./build-sink/test_sink_pg_pg */
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sink_migrations.h"
#include "sink_pg.h"
#include "test.h"
#include "test_pg.h"

/* Same key as in sink_pg.c (FNV-1a 64 of "vigil.migrations"). */
#define MIGRATION_LOCK_KEY "-2413254002942384621"

static const char *conninfo;
static PGconn *admin; /* the test's own connection, for setting up and reading back */

/* ---- helpers --------------------------------------------------------------------------------- */

static const char *q(const char *sql)
{
    return test_pg_value(admin, sql);
}

static long q_long(const char *sql)
{
    return test_pg_long(admin, sql);
}

static sink_pg_t *sink_open(const char *extra)
{
    char ci[1024], err[1024];
    sink_pg_t *pg;

    snprintf(ci, sizeof ci, "%s %s", conninfo, extra ? extra : "");
    pg = sink_pg_new(ci, err, sizeof err);
    if (!pg)
        fprintf(stderr, "sink_pg_new: %s\n", err);
    return pg;
}

/* A row with plain values; tests override the fields they care about. */
/* A batch of consumer group g1 advancing the one partition in adv. */
static sink_batch_t batch_g1(const char *instance, const sink_risk_row_t *rows, size_t n_rows,
                             const sink_dead_letter_t *dead, size_t n_dead,
                             const sink_offset_advance_t *adv)
{
    return (sink_batch_t){.group = "g1",
                          .instance_id = instance,
                          .rows = {.risk = rows, .n_risk = n_rows},
                          .dead = dead,
                          .n_dead = n_dead,
                          .offsets = adv,
                          .n_offsets = 1};
}

static sink_risk_row_t row_make(const char *topic, int32_t partition, int64_t offset,
                                const char *event_id)
{
    sink_risk_row_t r;

    memset(&r, 0, sizeof r);
    r.at.topic = topic;
    r.at.partition = partition;
    r.at.offset = offset;
    r.at.kafka_timestamp_ms = 1700000000000 + offset;
    r.event_id = event_id;
    r.event_type = "login";
    r.user_id = "u1";
    r.event_time_ms = 1700000000000 + offset;
    return r;
}

/* ---- migrations ------------------------------------------------------------------------------ */

typedef struct migrate_arg {
    pthread_barrier_t *barrier;
    int rc;
    char err[1024];
} migrate_arg_t;

static void *migrate_thread(void *p)
{
    migrate_arg_t *a = p;
    sink_pg_t *pg = sink_open(NULL);

    pthread_barrier_wait(a->barrier); /* both connected: now race */
    if (!pg) {
        a->rc = SINK_PG_ERR;
        return NULL;
    }
    a->rc = sink_pg_migrate(pg, a->err, sizeof a->err);
    sink_pg_free(pg);
    return NULL;
}

/* On the fresh database: two instances migrating at once both succeed, each migration once. */
static void test_migrate_race(void)
{
    pthread_barrier_t barrier;
    migrate_arg_t a[2];
    pthread_t t[2];
    char sql[256];
    int i;

    memset(a, 0, sizeof a);
    CHECK(pthread_barrier_init(&barrier, NULL, 2) == 0);
    for (i = 0; i < 2; i++) {
        a[i].barrier = &barrier;
        CHECK(pthread_create(&t[i], NULL, migrate_thread, &a[i]) == 0);
    }
    for (i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (i = 0; i < 2; i++) {
        if (a[i].rc != SINK_PG_OK)
            fprintf(stderr, "migrate %d: %s\n", i, a[i].err);
        CHECK(a[i].rc == SINK_PG_OK);
    }
    CHECK(q_long("SELECT count(*) FROM vigil.schema_migrations") == sink_migrations_count);
    CHECK(q_long("SELECT count(DISTINCT version) FROM vigil.schema_migrations") ==
          sink_migrations_count);
    snprintf(sql, sizeof sql, "SELECT name FROM vigil.schema_migrations WHERE version = %d",
             sink_migrations[0].version);
    CHECK_STR(q(sql), sink_migrations[0].name);
    CHECK_STR(q("SELECT to_regclass('vigil.risk_scores') IS NOT NULL"), "t");
    CHECK_STR(q("SELECT to_regclass('vigil.dead_letters') IS NOT NULL"), "t");
    CHECK_STR(q("SELECT to_regclass('vigil.kafka_offsets') IS NOT NULL"), "t");
}

/* Running again applies nothing: the bookkeeping rows are the very same tuples. */
static void test_migrate_idempotent(void)
{
    const char *snap_sql = "SELECT string_agg(version || ':' || xmin || ':' || applied_at, ',' "
                           "ORDER BY version) FROM vigil.schema_migrations";
    char before[4096], err[1024];
    sink_pg_t *pg = sink_open(NULL);

    CHECK(pg != NULL);
    if (!pg)
        return;
    snprintf(before, sizeof before, "%s", q(snap_sql));
    CHECK(sink_pg_migrate(pg, err, sizeof err) == SINK_PG_OK);
    CHECK_STR(q(snap_sql), before);
    CHECK(q_long("SELECT count(*) FROM vigil.schema_migrations") == sink_migrations_count);
    /* The advisory lock was released: another session can take it. */
    CHECK_STR(q("SELECT pg_try_advisory_lock(" MIGRATION_LOCK_KEY "::int8)"), "t");
    CHECK_STR(q("SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY "::int8)"), "t");
    sink_pg_free(pg);
}

/* A migration that fails is rolled back, named in the error, and leaves the lock free. The
 * failure is made real by a database where vigil.risk_scores already exists. */
static void test_migrate_failure(void)
{
    char extra[] = "dbname=vigil_broken", ci[1024], err[1024], want[128];
    PGconn *conn = NULL;
    sink_pg_t *pg = NULL;

    CHECK(test_pg_exec(admin, "CREATE DATABASE vigil_broken") == 0);
    snprintf(ci, sizeof ci, "%s %s", conninfo, extra);
    conn = PQconnectdb(ci);
    CHECK(PQstatus(conn) == CONNECTION_OK);
    if (PQstatus(conn) != CONNECTION_OK)
        goto out;
    CHECK(test_pg_exec(conn, "CREATE SCHEMA vigil; CREATE TABLE vigil.risk_scores (x int)") == 0);
    pg = sink_open(extra);
    CHECK(pg != NULL);
    if (!pg)
        goto out;
    err[0] = '\0';
    CHECK(sink_pg_migrate(pg, err, sizeof err) == SINK_PG_ERR);
    snprintf(want, sizeof want, "migration %s failed", sink_migrations[0].name);
    CHECK(strstr(err, want) != NULL);
    CHECK(strstr(err, "already exists") != NULL);
    fprintf(stderr, "# expected migration error: %s\n", err);
    CHECK_STR(test_pg_value(conn, "SELECT count(*) FROM vigil.schema_migrations"), "0");
    CHECK_STR(test_pg_value(conn, "SELECT to_regclass('vigil.dead_letters') IS NULL"), "t");
    CHECK_STR(test_pg_value(conn, "SELECT pg_try_advisory_lock(" MIGRATION_LOCK_KEY "::int8)"),
              "t");
    CHECK_STR(test_pg_value(conn, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY "::int8)"), "t");
    CHECK(sink_pg_ping(pg, err, sizeof err) == SINK_PG_OK);
out:
    sink_pg_free(pg);
    PQfinish(conn);
}

/* ---- offsets --------------------------------------------------------------------------------- */

static void test_offsets_load(sink_pg_t *pg)
{
    const int32_t parts[3] = {2, 0, 1};
    int64_t next[3] = {7, 7, 7};
    char err[1024];

    CHECK(sink_pg_offsets_load(pg, "g1", "t.load", parts, 3, next, err, sizeof err) == SINK_PG_OK);
    CHECK(next[0] == SINK_PG_OFFSET_NONE && next[1] == SINK_PG_OFFSET_NONE &&
          next[2] == SINK_PG_OFFSET_NONE);
    CHECK(q_long("SELECT count(*) FROM vigil.kafka_offsets WHERE consumer_group = 'g1' AND "
                 "topic = 't.load' AND next_offset IS NULL") == 3);
    /* Loading again creates nothing new and reads what is stored, in the caller's order. */
    CHECK(test_pg_exec(admin,
                       "UPDATE vigil.kafka_offsets SET next_offset = 42 WHERE consumer_group = "
                       "'g1' AND topic = 't.load' AND partition = 0") == 0);
    CHECK(sink_pg_offsets_load(pg, "g1", "t.load", parts, 3, next, err, sizeof err) == SINK_PG_OK);
    CHECK(next[0] == SINK_PG_OFFSET_NONE && next[1] == 42 && next[2] == SINK_PG_OFFSET_NONE);
    CHECK(q_long("SELECT count(*) FROM vigil.kafka_offsets WHERE topic = 't.load'") == 3);
    /* Another group has its own offsets. */
    CHECK(sink_pg_offsets_load(pg, "g2", "t.load", parts, 3, next, err, sizeof err) == SINK_PG_OK);
    CHECK(next[1] == SINK_PG_OFFSET_NONE);
}

/* ---- writes ---------------------------------------------------------------------------------- */

static const char tricky[] = "tab\there \"quoted\" 'single' back\\slash\\\\ new\nline cr\r "
                             "\\N \\. caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80";

/* Reads back the rows of t.rt exactly, field by field. */
static void check_roundtrip_rows(const sink_risk_row_t *rows, size_t n)
{
    PGresult *res =
        PQexec(admin, "SELECT topic, partition, kafka_offset, "
                      "(extract(epoch FROM kafka_timestamp) * 1000)::int8, event_id, "
                      "event_type, user_id, account_id, device_id, ip, amount, currency, "
                      "merchant_id, merchant_category, country, latitude, longitude, "
                      "(extract(epoch FROM event_time) * 1000)::int8, channel, score, "
                      "model_version, written_at IS NOT NULL "
                      "FROM vigil.risk_scores WHERE topic = 't.rt' ORDER BY kafka_offset");
    size_t i;

    CHECK(res && PQresultStatus(res) == PGRES_TUPLES_OK && (size_t)PQntuples(res) == n);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) != n) {
        fprintf(stderr, "read back: %s", PQerrorMessage(admin));
        PQclear(res);
        return;
    }
    for (i = 0; i < n; i++) {
        const sink_risk_row_t *r = &rows[i];
        const char *strs[] = {r->at.topic,    r->event_id,          r->event_type, r->user_id,
                              r->account_id,  r->device_id,         r->ip,         r->currency,
                              r->merchant_id, r->merchant_category, r->country,    r->channel};
        const int cols[] = {0, 4, 5, 6, 7, 8, 9, 11, 12, 13, 14, 18};
        int row = (int)i;
        size_t k;

        for (k = 0; k < sizeof cols / sizeof cols[0]; k++) {
            if (strs[k] == NULL)
                CHECK(PQgetisnull(res, row, cols[k]));
            else
                CHECK_STR(PQgetvalue(res, row, cols[k]), strs[k]);
        }
        CHECK(strtoll(PQgetvalue(res, row, 1), NULL, 10) == r->at.partition);
        CHECK(strtoll(PQgetvalue(res, row, 2), NULL, 10) == r->at.offset);
        if (r->at.kafka_timestamp_ms < 0)
            CHECK(PQgetisnull(res, row, 3));
        else
            CHECK(strtoll(PQgetvalue(res, row, 3), NULL, 10) == r->at.kafka_timestamp_ms);
        CHECK(strtoll(PQgetvalue(res, row, 17), NULL, 10) == r->event_time_ms);
        if (r->has_amount)
            CHECK(strtod(PQgetvalue(res, row, 10), NULL) == r->amount);
        else
            CHECK(PQgetisnull(res, row, 10));
        if (r->has_geo) {
            CHECK(strtod(PQgetvalue(res, row, 15), NULL) == r->latitude);
            CHECK(strtod(PQgetvalue(res, row, 16), NULL) == r->longitude);
        } else {
            CHECK(PQgetisnull(res, row, 15) && PQgetisnull(res, row, 16));
        }
        CHECK(PQgetisnull(res, row, 19)); /* score: not scored yet */
        CHECK(PQgetisnull(res, row, 20)); /* model_version */
        CHECK_STR(PQgetvalue(res, row, 21), "t");
    }
    PQclear(res);
}

/* Reads back the dead letters of t.rt in binary, so bytea comes back as the raw bytes. */
static void check_roundtrip_dead(const sink_dead_letter_t *dead, size_t n)
{
    PGresult *res = PQexecParams(admin,
                                 "SELECT key, payload, reason, kafka_offset::text, "
                                 "(extract(epoch FROM kafka_timestamp) * 1000)::int8::text "
                                 "FROM vigil.dead_letters WHERE topic = 't.rt' "
                                 "ORDER BY kafka_offset",
                                 0, NULL, NULL, NULL, NULL, 1);
    size_t i;

    CHECK(res && PQresultStatus(res) == PGRES_TUPLES_OK && (size_t)PQntuples(res) == n);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || (size_t)PQntuples(res) != n) {
        fprintf(stderr, "read back: %s", PQerrorMessage(admin));
        PQclear(res);
        return;
    }
    for (i = 0; i < n; i++) {
        const sink_dead_letter_t *d = &dead[i];
        int row = (int)i;
        char off[32];

        if (!d->key) {
            CHECK(PQgetisnull(res, row, 0));
        } else {
            CHECK((size_t)PQgetlength(res, row, 0) == d->key_len);
            CHECK(memcmp(PQgetvalue(res, row, 0), d->key, d->key_len) == 0);
        }
        if (!d->payload) {
            CHECK(PQgetisnull(res, row, 1));
        } else {
            CHECK(!PQgetisnull(res, row, 1));
            CHECK((size_t)PQgetlength(res, row, 1) == d->payload_len);
            CHECK(memcmp(PQgetvalue(res, row, 1), d->payload, d->payload_len) == 0);
        }
        /* text in binary format is the bytes themselves (without a terminator in the length) */
        CHECK((size_t)PQgetlength(res, row, 2) == strlen(d->reason));
        CHECK(memcmp(PQgetvalue(res, row, 2), d->reason, strlen(d->reason)) == 0);
        snprintf(off, sizeof off, "%" PRId64, d->at.offset);
        CHECK((size_t)PQgetlength(res, row, 3) == strlen(off) &&
              memcmp(PQgetvalue(res, row, 3), off, strlen(off)) == 0);
        if (d->at.kafka_timestamp_ms < 0)
            CHECK(PQgetisnull(res, row, 4));
        else
            CHECK(strtoll(PQgetvalue(res, row, 4), NULL, 10) == d->at.kafka_timestamp_ms);
    }
    PQclear(res);
}

/* Rows and dead letters come back exactly; the offset moves; a dead-letter-only batch is
 * progress too; a stale writer is fenced and writes nothing. */
static void test_write_roundtrip_and_fence(sink_pg_t *pg)
{
    static const unsigned char key0[] = {0x00, 0x5c, 0x41, 0x00, 0x5c, 0x78, 0xff};
    unsigned char payload0[256];
    const int32_t part = 0;
    int64_t next = 0;
    sink_risk_row_t rows[3];
    sink_dead_letter_t dead[3];
    sink_offset_advance_t adv;
    sink_batch_t batch;
    char err[1024];
    int i;

    for (i = 0; i < 256; i++)
        payload0[i] = (unsigned char)i;
    CHECK(sink_pg_offsets_load(pg, "g1", "t.rt", &part, 1, &next, err, sizeof err) == SINK_PG_OK);
    CHECK(next == SINK_PG_OFFSET_NONE);

    rows[0] = row_make("t.rt", 0, 0, tricky);
    rows[0].user_id = tricky;
    rows[0].account_id = "acc\\1";
    rows[0].device_id = "dev\t1";
    rows[0].ip = "2001:db8::1";
    rows[0].has_amount = 1;
    rows[0].amount = 0.1;
    rows[0].currency = "EUR";
    rows[0].merchant_id = "m\n1";
    rows[0].merchant_category = "5411";
    rows[0].country = "DE";
    rows[0].has_geo = 1;
    rows[0].latitude = 52.520006599999995;
    rows[0].longitude = -179.99999999999997;
    rows[0].event_time_ms = 1700000000123;
    rows[0].channel = "web";
    rows[0].at.kafka_timestamp_ms = 1700000000999;

    rows[1] = row_make("t.rt", 0, 1, "e-null"); /* every nullable field NULL */
    rows[1].at.kafka_timestamp_ms = -1;
    rows[1].event_time_ms = -1; /* 1969-12-31 23:59:59.999 */

    rows[2] = row_make("t.rt", 0, 2, "e-extreme");
    rows[2].has_amount = 1;
    rows[2].amount = 5e-324; /* smallest denormal */
    rows[2].has_geo = 1;
    rows[2].latitude = 1e-300;
    rows[2].longitude = -123456.78901234567;
    rows[2].event_time_ms = 253402300799999; /* 9999-12-31 23:59:59.999 */
    rows[2].at.kafka_timestamp_ms = 0;

    memset(dead, 0, sizeof dead);
    dead[0].at.topic = "t.rt";
    dead[0].at.partition = 0;
    dead[0].at.offset = 3;
    dead[0].at.kafka_timestamp_ms = 1700000000003;
    dead[0].key = key0;
    dead[0].key_len = sizeof key0;
    dead[0].payload = payload0;
    dead[0].payload_len = sizeof payload0;
    dead[0].reason = tricky;
    dead[1].at.topic = "t.rt";
    dead[1].at.partition = 0;
    dead[1].at.offset = 4;
    dead[1].at.kafka_timestamp_ms = -1;
    dead[1].reason = "empty message"; /* no key, no payload */
    dead[2].at.topic = "t.rt";
    dead[2].at.partition = 0;
    dead[2].at.offset = 5;
    dead[2].at.kafka_timestamp_ms = 1;
    dead[2].key = "";
    dead[2].key_len = 0; /* an empty key is not a missing key */
    dead[2].payload = "x";
    dead[2].payload_len = 1;
    dead[2].reason = "bad avro";

    adv.topic = "t.rt";
    adv.partition = 0;
    adv.expected = SINK_PG_OFFSET_NONE;
    adv.next = 5;
    batch = batch_g1("test-instance-1", rows, 3, dead, 2, &adv);
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_OK);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.rt'") == 3);
    CHECK(q_long("SELECT count(*) FROM vigil.dead_letters WHERE topic = 't.rt'") == 2);
    check_roundtrip_rows(rows, 3);
    check_roundtrip_dead(dead, 2);
    CHECK_STR(q("SET timezone = 'UTC'; SELECT event_time::text FROM vigil.risk_scores "
                "WHERE topic = 't.rt' AND kafka_offset = 0"),
              "2023-11-14 22:13:20.123+00");
    CHECK_STR(q("SELECT next_offset FROM vigil.kafka_offsets WHERE consumer_group = 'g1' AND "
                "topic = 't.rt' AND partition = 0"),
              "5");
    CHECK_STR(q("SELECT updated_by FROM vigil.kafka_offsets WHERE consumer_group = 'g1' AND "
                "topic = 't.rt' AND partition = 0"),
              "test-instance-1");

    /* All messages dead-lettered: no rows, still progress. */
    batch.rows = (sink_rows_t){0};
    batch.dead = &dead[2];
    batch.n_dead = 1;
    adv.expected = 5;
    adv.next = 6;
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_OK);
    CHECK(q_long("SELECT count(*) FROM vigil.dead_letters WHERE topic = 't.rt'") == 3);
    CHECK_STR(q("SELECT encode(key, 'hex') || '|' || encode(payload, 'hex') FROM "
                "vigil.dead_letters WHERE topic = 't.rt' AND kafka_offset = 5"),
              "|78");
    CHECK_STR(q("SELECT next_offset FROM vigil.kafka_offsets WHERE consumer_group = 'g1' AND "
                "topic = 't.rt' AND partition = 0"),
              "6");

    /* A writer that still believes nothing is stored is fenced, and writes nothing. */
    rows[0].at.offset = 6;
    batch.rows = (sink_rows_t){.risk = rows, .n_risk = 1};
    batch.dead = dead;
    batch.n_dead = 1;
    adv.expected = SINK_PG_OFFSET_NONE;
    adv.next = 7;
    err[0] = '\0';
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_FENCED);
    fprintf(stderr, "# expected fence: %s\n", err);
    CHECK(strstr(err, "t.rt/0") != NULL);
    CHECK(strstr(err, "\"g1\"") != NULL);
    CHECK(strstr(err, "it is 6") != NULL);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.rt'") == 3);
    CHECK(q_long("SELECT count(*) FROM vigil.dead_letters WHERE topic = 't.rt'") == 3);
    CHECK_STR(q("SELECT next_offset FROM vigil.kafka_offsets WHERE consumer_group = 'g1' AND "
                "topic = 't.rt' AND partition = 0"),
              "6");
    /* Stale in the other direction (a number that is not the stored one) is fenced too. */
    adv.expected = 3;
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_FENCED);
    CHECK(strstr(err, "expected stored next_offset 3") != NULL);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.rt'") == 3);
    /* The connection is still usable after a fence. */
    CHECK(sink_pg_ping(pg, err, sizeof err) == SINK_PG_OK);
}

/* ---- concurrent writers ---------------------------------------------------------------------- */

#define RACE_ROWS 50

typedef struct write_arg {
    pthread_barrier_t *barrier;
    const char *instance;
    int rc;
    char err[1024];
} write_arg_t;

static void *write_thread(void *p)
{
    write_arg_t *a = p;
    sink_risk_row_t rows[RACE_ROWS];
    char ids[RACE_ROWS][32];
    sink_offset_advance_t adv = {"t.race", 0, SINK_PG_OFFSET_NONE, RACE_ROWS};
    sink_batch_t batch;
    sink_pg_t *pg = sink_open(NULL);
    int i;

    for (i = 0; i < RACE_ROWS; i++) {
        snprintf(ids[i], sizeof ids[i], "%s-%d", a->instance, i);
        rows[i] = row_make("t.race", 0, i, ids[i]);
    }
    batch = batch_g1(a->instance, rows, RACE_ROWS, NULL, 0, &adv);
    pthread_barrier_wait(a->barrier);
    if (!pg) {
        a->rc = SINK_PG_ERR;
        return NULL;
    }
    a->rc = sink_pg_write(pg, &batch, a->err, sizeof a->err);
    sink_pg_free(pg);
    return NULL;
}

/* Two instances that both believe they own partition 0: exactly one wins. */
static void test_concurrent_writers(sink_pg_t *pg)
{
    pthread_barrier_t barrier;
    write_arg_t a[2];
    pthread_t t[2];
    const int32_t part = 0;
    int64_t next = 0;
    char err[1024], sql[256];
    int i, ok = 0, fenced = 0, winner = -1;

    CHECK(sink_pg_offsets_load(pg, "g1", "t.race", &part, 1, &next, err, sizeof err) == SINK_PG_OK);
    CHECK(next == SINK_PG_OFFSET_NONE);
    memset(a, 0, sizeof a);
    CHECK(pthread_barrier_init(&barrier, NULL, 2) == 0);
    a[0].instance = "inst-a";
    a[1].instance = "inst-b";
    for (i = 0; i < 2; i++) {
        a[i].barrier = &barrier;
        CHECK(pthread_create(&t[i], NULL, write_thread, &a[i]) == 0);
    }
    for (i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (i = 0; i < 2; i++) {
        if (a[i].rc == SINK_PG_OK) {
            ok++;
            winner = i;
        } else if (a[i].rc == SINK_PG_FENCED) {
            fenced++;
        } else {
            fprintf(stderr, "writer %s: rc %d: %s\n", a[i].instance, a[i].rc, a[i].err);
        }
    }
    CHECK(ok == 1 && fenced == 1);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.race'") == RACE_ROWS);
    if (winner < 0)
        return;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.race' AND event_id LIKE "
             "'%s-%%'",
             a[winner].instance);
    CHECK(q_long(sql) == RACE_ROWS);
    CHECK_STR(q("SELECT next_offset || ' ' || updated_by FROM vigil.kafka_offsets WHERE "
                "consumer_group = 'g1' AND topic = 't.race'"),
              winner == 0 ? "50 inst-a" : "50 inst-b");
}

/* ---- connection loss ------------------------------------------------------------------------- */

/* The server kills the sink's backend: the write fails, reconnect + retry writes it once. */
static void test_backend_terminated(void)
{
    sink_risk_row_t rows[5];
    char ids[5][16];
    const int32_t part = 3;
    int64_t next = 0;
    sink_offset_advance_t adv = {"t.kill", 3, SINK_PG_OFFSET_NONE, 5};
    sink_batch_t batch;
    char err[1024];
    char sql[512], before[256];
    sink_pg_t *plain;
    sink_pg_t *pg = sink_open("application_name=vigil-kill-test");
    int i;

    /* application_name: "vigild" unless the conninfo names one. Backends of connections closed
     * earlier may still be listed while they exit, so look for exactly one new pid. */
    snprintf(before, sizeof before, "%s",
             q("SELECT coalesce(array_agg(pid), '{}') FROM pg_stat_activity "
               "WHERE application_name = 'vigild'"));
    plain = sink_open(NULL);
    CHECK(pg != NULL && plain != NULL);
    if (!pg || !plain)
        goto out;
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vigild' AND "
             "NOT (pid = ANY ('%s'::int4[]))",
             before);
    CHECK(q_long(sql) == 1);
    CHECK(q_long("SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                 "'vigil-kill-test'") == 1);

    for (i = 0; i < 5; i++) {
        snprintf(ids[i], sizeof ids[i], "k-%d", i);
        rows[i] = row_make("t.kill", 3, i, ids[i]);
    }
    batch = batch_g1("inst-k", rows, 5, NULL, 0, &adv);
    CHECK(sink_pg_offsets_load(pg, "g1", "t.kill", &part, 1, &next, err, sizeof err) == SINK_PG_OK);
    CHECK(sink_pg_ping(pg, err, sizeof err) == SINK_PG_OK);
    CHECK(sink_pg_reconnect(pg, err, sizeof err) == SINK_PG_OK); /* healthy: a no-op */

    /* The timeout makes pg_terminate_backend wait until the backend has exited. */
    CHECK_STR(q("SELECT bool_and(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                "WHERE application_name = 'vigil-kill-test'"),
              "t");
    err[0] = '\0';
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_ERR);
    fprintf(stderr, "# expected write error: %s\n", err);
    CHECK(strstr(err, "sink_pg_reconnect") != NULL);
    CHECK(strchr(err, '\n') == NULL);
    CHECK(sink_pg_ping(pg, err, sizeof err) == SINK_PG_ERR);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.kill'") == 0);

    CHECK(sink_pg_reconnect(pg, err, sizeof err) == SINK_PG_OK);
    CHECK(sink_pg_ping(pg, err, sizeof err) == SINK_PG_OK);
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_OK);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.kill'") == 5);
    CHECK(q_long("SELECT count(DISTINCT kafka_offset) FROM vigil.risk_scores WHERE "
                 "topic = 't.kill'") == 5);
    CHECK_STR(q("SELECT next_offset FROM vigil.kafka_offsets WHERE consumer_group = 'g1' AND "
                "topic = 't.kill' AND partition = 3"),
              "5");
    /* Retrying the committed batch again is fenced, not duplicated. */
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_FENCED);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.kill'") == 5);
out:
    sink_pg_free(pg);
    sink_pg_free(plain);
}

/* The server refusing the data itself (a CHECK constraint) is SINK_PG_REJECTED, not a retryable
 * error; nothing is written, and the connection stays usable for the next attempt. */
static void test_rejected(sink_pg_t *pg)
{
    sink_risk_row_t rows[3];
    sink_offset_advance_t adv = {"t.reject", 0, SINK_PG_OFFSET_NONE, 3};
    const int32_t part = 0;
    int64_t next = 0;
    sink_batch_t batch;
    char err[1024] = "";

    for (int i = 0; i < 3; i++)
        rows[i] = row_make("t.reject", 0, i, i == 1 ? "poison" : "fine");
    batch = batch_g1("inst-r", rows, 3, NULL, 0, &adv);
    CHECK(sink_pg_offsets_load(pg, "g1", "t.reject", &part, 1, &next, err, sizeof err) ==
          SINK_PG_OK);
    CHECK(
        test_pg_exec(
            admin,
            "ALTER TABLE vigil.risk_scores ADD CONSTRAINT t_reject CHECK (event_id <> 'poison')") ==
        0);
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_REJECTED);
    CHECK(strstr(err, "t_reject") != NULL);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.reject'") == 0);
    CHECK(q_long("SELECT count(*) FROM vigil.kafka_offsets WHERE topic = 't.reject' AND "
                 "next_offset IS NOT NULL") == 0);
    CHECK(test_pg_exec(admin, "ALTER TABLE vigil.risk_scores DROP CONSTRAINT t_reject") == 0);
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_OK);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.reject'") == 3);
}

/* A producer's clock can put any CreateTime on a message: a Kafka timestamp PostgreSQL cannot
 * hold (past year 9999) is stored as NULL, and the batch is written, rows and dead letters. */
static void test_kafka_timestamp_unstorable(sink_pg_t *pg)
{
    sink_risk_row_t rows[2];
    sink_dead_letter_t dead;
    sink_offset_advance_t adv = {"t.ts", 0, SINK_PG_OFFSET_NONE, 3};
    const int32_t part = 0;
    int64_t next = 0;
    sink_batch_t batch;
    char err[1024] = "";

    rows[0] = row_make("t.ts", 0, 0, "year-10000");
    rows[0].at.kafka_timestamp_ms = INT64_C(253402300800000); /* 10000-01-01 */
    rows[1] = row_make("t.ts", 0, 1, "int64-max");
    rows[1].at.kafka_timestamp_ms = INT64_MAX;
    memset(&dead, 0, sizeof dead);
    dead.at.topic = "t.ts";
    dead.at.offset = 2;
    dead.at.kafka_timestamp_ms = INT64_MAX;
    dead.reason = "bad avro";
    batch = batch_g1("inst-ts", rows, 2, &dead, 1, &adv);
    CHECK(sink_pg_offsets_load(pg, "g1", "t.ts", &part, 1, &next, err, sizeof err) == SINK_PG_OK);
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_OK);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.ts' AND "
                 "kafka_timestamp IS NULL") == 2);
    CHECK(q_long("SELECT count(*) FROM vigil.dead_letters WHERE topic = 't.ts' AND "
                 "kafka_timestamp IS NULL") == 1);
}

/* Feature vectors travel as float bits (binary COPY) and come back bit for bit; a checkpoint is
 * read back as it was saved, and never replaced by one at an earlier offset; dead-letter offsets of
 * a range come back sorted without PostgreSQL's refusals; a feature spec is registered once. */
static void test_features_and_checkpoints(sink_pg_t *pg)
{
    const float v[6] = {0.1f, -2.5f, 1e-45f, 3.4028235e38f, 42.0f, 0.0f};
    uint8_t state[300], *back = NULL;
    sink_risk_row_t rows[2];
    sink_dead_letter_t dead[3];
    sink_offset_advance_t adv = {"t.feat", 0, SINK_PG_OFFSET_NONE, 5};
    const int32_t part = 0;
    int64_t next = 0, ckpt = 0, *offs = NULL;
    size_t len = 0, n_offs = 0;
    char err[1024] = "", hash[32] = "";
    const char *cols[] = {"a", "b \"quoted\"", "c,d"};
    sink_batch_t batch;

    for (size_t i = 0; i < sizeof state; i++)
        state[i] = (uint8_t)(i * 7);
    rows[0] = row_make("t.feat", 0, 0, "with-features");
    rows[0].features = v;
    rows[0].n_features = 6;
    rows[0].feature_spec = "00ff00ff00ff00ff";
    rows[1] = row_make("t.feat", 0, 1, "without");
    memset(dead, 0, sizeof dead);
    for (int i = 0; i < 3; i++) {
        dead[i].at.topic = "t.feat";
        dead[i].at.offset = 4 - i; /* 4, 3, 2 */
        dead[i].reason = i == 1 ? "refused by PostgreSQL: check" : "truncated";
    }
    sink_checkpoint_t cp = {"t.feat", 0, 5, "00ff00ff00ff00ff", 12, state, sizeof state};
    batch = batch_g1("inst-feat", rows, 2, dead, 3, &adv);
    CHECK(sink_pg_offsets_load(pg, "g1", "t.feat", &part, 1, &next, err, sizeof err) == SINK_PG_OK);
    CHECK_MSG(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_OK, "%s", err);
    CHECK_MSG(sink_pg_checkpoint_save(pg, "g1", "inst-feat", &cp, err, sizeof err) == SINK_PG_OK,
              "%s", err);
    /* An older snapshot arriving late (a slow writer, a fenced instance) leaves the stored one. */
    sink_checkpoint_t older = {"t.feat", 0, 3, "1111111111111111", 1, state, 10};
    CHECK(sink_pg_checkpoint_save(pg, "g1", "inst-old", &older, err, sizeof err) == SINK_PG_FENCED);
    CHECK(strstr(err, "a later one is stored") != NULL);
    for (int i = 0; i < 6; i++) {
        char q[200];
        snprintf(q, sizeof q,
                 "SELECT count(*) FROM vigil.risk_scores WHERE event_id = 'with-features' AND "
                 "features[%d] = %.9g::float4 AND feature_spec = '00ff00ff00ff00ff'",
                 i + 1, (double)v[i]);
        CHECK_MSG(q_long(q) == 1, "features[%d] is not %.9g", i + 1, (double)v[i]);
    }
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE event_id = 'without' AND features "
                 "IS NULL AND feature_spec IS NULL") == 1);
    CHECK(sink_pg_checkpoint_load(pg, "g1", "t.feat", 0, &ckpt, hash, sizeof hash, &back, &len, err,
                                  sizeof err) == SINK_PG_OK);
    CHECK(ckpt == 5 && strcmp(hash, "00ff00ff00ff00ff") == 0 && len == sizeof state && back &&
          memcmp(back, state, len) == 0);
    free(back);
    CHECK(sink_pg_checkpoint_load(pg, "g1", "t.feat", 1, &ckpt, hash, sizeof hash, &back, &len, err,
                                  sizeof err) == SINK_PG_OK);
    CHECK(back == NULL && ckpt == SINK_PG_OFFSET_NONE); /* none for partition 1 */
    CHECK(sink_pg_dead_offsets_load(pg, "t.feat", 0, 2, 4, &offs, &n_offs, err, sizeof err) ==
          SINK_PG_OK);
    CHECK_MSG(n_offs == 1 && offs && offs[0] == 2, "%zu offsets", n_offs); /* [2, 4): 3 refused */
    free(offs);
    for (int i = 0; i < 2; i++)
        CHECK_MSG(sink_pg_feature_spec_register(pg, "00ff00ff00ff00ff", cols, 3, "entity x y\n",
                                                err, sizeof err) == SINK_PG_OK,
                  "%s", err);
    CHECK(q_long("SELECT count(*) FROM vigil.feature_specs WHERE spec_hash = '00ff00ff00ff00ff' "
                 "AND columns = ARRAY['a', 'b \"quoted\"', 'c,d']") == 1);
}

/* The connection dies in the middle of a COPY (its backend is terminated while the COPY is
 * running): the write fails and rolls back, and the same batch retried on a new connection lands
 * once. The batch is large so that the COPY is still running when the admin session sees it. */
#define MIDCOPY_ROWS 400000

typedef struct midcopy_arg {
    sink_pg_t *pg;
    const sink_batch_t *batch;
    int rc;
    char err[1024];
} midcopy_arg_t;

static void *midcopy_write(void *p)
{
    midcopy_arg_t *a = p;
    a->rc = sink_pg_write(a->pg, a->batch, a->err, sizeof a->err);
    return NULL;
}

static void test_connection_lost_mid_copy(void)
{
    sink_risk_row_t *rows = calloc(MIDCOPY_ROWS, sizeof *rows);
    sink_offset_advance_t adv = {"t.midcopy", 0, SINK_PG_OFFSET_NONE, MIDCOPY_ROWS};
    const int32_t part = 0;
    int64_t next = 0;
    sink_batch_t batch;
    midcopy_arg_t a;
    pthread_t t;
    char err[1024];
    int killed = 0;
    sink_pg_t *pg = sink_open("application_name=vigil-midcopy");

    CHECK(rows != NULL && pg != NULL);
    if (!rows || !pg)
        goto out;
    for (int i = 0; i < MIDCOPY_ROWS; i++)
        rows[i] = row_make("t.midcopy", 0, i, "evt-midcopy");
    CHECK(sink_pg_offsets_load(pg, "g1", "t.midcopy", &part, 1, &next, err, sizeof err) ==
          SINK_PG_OK);
    batch = batch_g1("inst-m", rows, MIDCOPY_ROWS, NULL, 0, &adv);
    memset(&a, 0, sizeof a);
    a.pg = pg;
    a.batch = &batch;
    CHECK(pthread_create(&t, NULL, midcopy_write, &a) == 0);
    /* Poll until the backend is inside the COPY, then terminate it. */
    for (int tries = 0; tries < 20000 && !killed; tries++)
        killed = q_long("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                        "pg_stat_activity WHERE application_name = 'vigil-midcopy' AND state = "
                        "'active' AND query LIKE 'COPY vigil.risk_scores%') k") == 1;
    pthread_join(t, NULL);
    CHECK(killed);
    CHECK(a.rc == SINK_PG_ERR);
    fprintf(stderr, "# expected mid-COPY error: %s\n", a.err);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.midcopy'") == 0);

    CHECK(sink_pg_reconnect(pg, err, sizeof err) == SINK_PG_OK);
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_OK);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.midcopy'") ==
          MIDCOPY_ROWS);
    CHECK(q_long("SELECT count(DISTINCT kafka_offset) FROM vigil.risk_scores WHERE topic = "
                 "'t.midcopy'") == MIDCOPY_ROWS);
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_FENCED);
out:
    sink_pg_free(pg);
    free(rows);
}

/* ---- rate ------------------------------------------------------------------------------------ */

#define RATE_ROWS 100000

static void test_copy_rate(sink_pg_t *pg)
{
    sink_risk_row_t *rows = calloc(RATE_ROWS, sizeof *rows);
    const int32_t part = 0;
    int64_t next = 0;
    sink_offset_advance_t adv = {"t.rate", 0, SINK_PG_OFFSET_NONE, RATE_ROWS};
    sink_batch_t batch;
    struct timespec t0, t1;
    char err[1024];
    double secs;
    int i;

    CHECK(rows != NULL);
    if (!rows)
        return;
    for (i = 0; i < RATE_ROWS; i++) {
        rows[i] = row_make("t.rate", 0, i, "evt-0123456789abcdef");
        rows[i].account_id = "acct-42";
        rows[i].device_id = "device-abcdef";
        rows[i].ip = "203.0.113.7";
        rows[i].has_amount = 1;
        rows[i].amount = 12.34 + i;
        rows[i].currency = "USD";
        rows[i].merchant_id = "merchant-1";
        rows[i].merchant_category = "5411";
        rows[i].country = "US";
        rows[i].has_geo = 1;
        rows[i].latitude = 40.7128;
        rows[i].longitude = -74.006;
        rows[i].channel = "mobile";
    }
    CHECK(sink_pg_offsets_load(pg, "g1", "t.rate", &part, 1, &next, err, sizeof err) == SINK_PG_OK);
    batch = batch_g1("inst-rate", rows, RATE_ROWS, NULL, 0, &adv);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(sink_pg_write(pg, &batch, err, sizeof err) == SINK_PG_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores WHERE topic = 't.rate'") == RATE_ROWS);
    printf("copy_rate %.0f rows/s\n", secs > 0 ? RATE_ROWS / secs : 0.0);
    free(rows);
}

int main(void)
{
    sink_pg_t *pg = NULL;
    char err[1024];

    conninfo = getenv("VIGIL_TEST_CONNINFO");
    if (!conninfo) {
        fprintf(stderr, "VIGIL_TEST_CONNINFO is not set: run through tests/lib/with_pg.sh\n");
        return 1;
    }
    admin = PQconnectdb(conninfo);
    if (PQstatus(admin) != CONNECTION_OK) {
        fprintf(stderr, "cannot connect to the test server: %s", PQerrorMessage(admin));
        PQfinish(admin);
        return 1;
    }

    /* Wrong conninfo: a clear error, no sink. */
    CHECK(sink_pg_new("host=/nonexistent-socket-dir dbname=nope", err, sizeof err) == NULL);
    CHECK(strstr(err, "cannot connect") != NULL);

    test_migrate_race();
    test_migrate_idempotent();
    test_migrate_failure();

    pg = sink_open(NULL);
    CHECK(pg != NULL);
    if (pg) {
        test_offsets_load(pg);
        test_write_roundtrip_and_fence(pg);
        test_concurrent_writers(pg);
        test_rejected(pg);
        test_kafka_timestamp_unstorable(pg);
        test_features_and_checkpoints(pg);
        test_backend_terminated();
        test_connection_lost_mid_copy();
        test_copy_rate(pg);
    }
    sink_pg_free(pg);
    PQfinish(admin);
    return TEST_DONE();
}
