/* A lane's stages, one at a time, on the real servers: a throwaway PostgreSQL (VIGIL_TEST_CONNINFO,
 * from tests/lib/with_pg.sh) and the embedded Kafka in this process. The test plays the reader
 * thread itself: it takes messages from a consumer of its own, hands them to the lane's reader
 * functions, closes batches and takes them back, while the lane's real writer thread writes them.
 *
 *   - pipelining: two batches closed before either commits; the second's offset condition expects
 *     the first's end; both commit, in order; every row once;
 *   - enrichment: vectors computed as batches fill, interleaving two partitions, equal bit for bit
 *     to each partition's events featurised alone in offset order;
 *   - checkpoints: snapshots taken when a batch closes are stored after it commits;
 *   - isolation: a batch the server refuses is written record by record, the refused record a
 *     dead letter;
 *   - fencing: another instance moved a partition on; the next batch comes back fenced, the one
 *     closed after it dropped unwritten, nothing of either is stored, and the lane re-reads the
 *     stored offsets;
 *   - two writers: each partition on its own writer, both committing; a fence on one leaves what
 *     the other committed counted. */
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "featurize.h"
#include "ingest_avro.h"
#include "ingest_mock.h"
#include "lane.h"
#include "log.h"
#include "metrics.h"
#include "produce.h"
#include "test.h"
#include "test_pg.h"

#define TOPIC "ev"
#define PARTS 2
#define EVENTS 600

static const char *conninfo;
static PGconn *admin;
static ingest_mock_t *mock;
static char schema_path[600], schema_dir[512];

static long q_long(const char *sql)
{
    PGresult *res = PQexec(admin, sql);
    long v = -1;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
        !PQgetisnull(res, 0, 0))
        v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    else
        fprintf(stderr, "query failed: %s: %s", sql, PQerrorMessage(admin));
    PQclear(res);
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* EVENTS generated BehaviorEvents, event i on partition i % PARTS, keyed by user. */
static void produce_events(void)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", ingest_mock_bootstraps(mock), err, sizeof err);
    rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    ingest_avro_t *enc =
        ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_PLAIN, schema_path, NULL, err, sizeof err);
    produce_gen_t *g = produce_gen_new(5, 40, err, sizeof err);
    CHECK_MSG(p && enc && g, "%s", err);
    for (uint64_t i = 0; p && enc && g && i < EVENTS; i++) {
        ingest_record_t rec = {0};
        unsigned char buf[4096];
        produce_gen_record(g, INGEST_KIND_EVENT, i, 1700000000000LL + (int64_t)i * 7000, &rec);
        long n = ingest_avro_encode(enc, &rec, 0, buf, sizeof buf, err, sizeof err);
        const char *key = produce_record_key(&rec);
        CHECK_MSG(n > 0, "%s", err);
        CHECK(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC),
                                RD_KAFKA_V_PARTITION((int32_t)(i % PARTS)),
                                RD_KAFKA_V_VALUE(buf, (size_t)n), RD_KAFKA_V_KEY(key, strlen(key)),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    if (p) {
        CHECK(rd_kafka_flush(p, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_destroy(p);
    }
    produce_gen_free(g);
    ingest_avro_free(enc);
}

/* A plain consumer of one partition from the beginning: the messages the test hands over. */
static rd_kafka_t *reader_new(int32_t partition)
{
    char err[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", ingest_mock_bootstraps(mock), err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", "test-reader", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, TOPIC, partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
    CHECK(rk && rd_kafka_assign(rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(parts);
    return rk;
}

static rd_kafka_message_t *reader_next(rd_kafka_t *rk)
{
    double until = now_s() + 20;
    while (now_s() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m && !m->err)
            return m;
        if (m)
            rd_kafka_message_destroy(m);
    }
    return NULL;
}

static rd_kafka_t *readers[PARTS];

/* n messages into the lane's open batch (taking a free one first), one of each partition in
 * turn, as a consumer may deliver them. */
static void feed(lane_t *l, int n)
{
    CHECK(lane_take_free(l) == 0);
    for (int i = 0; i < n; i++) {
        rd_kafka_message_t *m = reader_next(readers[i % PARTS]);
        CHECK(m != NULL);
        if (!m)
            return;
        lane_message(l, m);
    }
}

/* Takes back what the writer is done with until nothing is in flight (at most 20 s). */
static void take_all_back(lane_t *l)
{
    double until = now_s() + 20;
    while (lane_in_flight(l) > 0 && now_s() < until)
        lane_take_back(l, 100);
    CHECK(lane_in_flight(l) == 0);
}

/* Each partition's events featurised alone in offset order, from an empty state, compared with
 * the vectors of batch b (items [0, n)). */
static void check_vectors(lane_t *l, lane_batch_t *b, size_t n)
{
    char err[512], reason[512];
    const featurize_t *fz = l->sh->fz;
    size_t w = l->sh->fz_width, same = 0;
    features_state_t *st[PARTS];
    float *v = malloc(w * sizeof *v);
    ingest_record_t rec = {0};
    for (int p = 0; p < PARTS; p++)
        st[p] = features_state_new(featurize_spec(fz), 100000, 0, err, sizeof err);
    for (size_t i = 0; i < n; i++) { /* items are in poll order: offset order per partition */
        const lane_item_t *it = &b->items[i];
        CHECK(ingest_avro_decode(l->topics[0].decoder, it->msg->payload, it->msg->len, &rec, reason,
                                 sizeof reason) == INGEST_AVRO_OK);
        CHECK(featurize_event(fz, st[it->msg->partition], &rec.event, v) == 0);
        same += memcmp(v, b->features + i * w, w * sizeof *v) == 0;
    }
    CHECK_MSG(same == n, "%zu of %zu vectors equal the partition-by-partition computation", same,
              n);
    for (int p = 0; p < PARTS; p++)
        features_state_free(st[p]);
    ingest_record_clear(&rec);
    free(v);
}

/* Batches A and B closed back to back: B's condition expects A's end; both commit in order. */
static void test_pipelined(lane_t *l)
{
    lane_topic_t *t = &l->topics[0];
    feed(l, 100);
    lane_batch_t *a = l->writers[0].open;
    CHECK(lane_enrich(l, a) == 0);
    CHECK(a->n_enriched == 100);
    check_vectors(l, a, 100);
    CHECK(lane_close_open(l) == 0);
    CHECK(a->n_ckpt == PARTS); /* never checkpointed since assigned: both partitions due */
    int64_t a_end[PARTS];
    for (size_t i = 0; i < a->n_adv; i++)
        a_end[a->advances[i].partition] = a->advances[i].next;

    feed(l, 100);
    lane_batch_t *b = l->writers[0].open;
    CHECK(lane_close_open(l) == 0);
    CHECK(lane_in_flight(l) == 2);
    CHECK(b->n_adv == PARTS);
    for (size_t i = 0; i < b->n_adv; i++)
        CHECK(b->advances[i].expected == a_end[b->advances[i].partition]);
    CHECK(b->n_ckpt == 0); /* A's snapshots still in flight */
    take_all_back(l);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores") == 200);
    CHECK(q_long("SELECT count(DISTINCT (partition, kafka_offset)) FROM vigil.risk_scores") == 200);
    CHECK(q_long("SELECT sum(next_offset) FROM vigil.kafka_offsets WHERE topic = 'ev'") == 200);
    for (int p = 0; p < PARTS; p++) {
        CHECK(t->parts[p].expected == 100);
        CHECK(t->parts[p].sent_next == t->parts[p].expected);
        CHECK(t->parts[p].checkpoint_ms > 0);
    }
    /* The checkpoint writer stores A's snapshots after A committed (its own thread). Each
     * partition has had a row since A's own transaction (the empty state at its first offset),
     * so the wait is for the rows to reach A's end, not for them to exist. */
    double until = now_s() + 20;
    while (q_long("SELECT count(*) FROM vigil.entity_state WHERE topic = 'ev' AND next_offset = "
                  "50") < PARTS &&
           now_s() < until)
        lane_take_back(l, 50);
    CHECK(
        q_long("SELECT count(*) FROM vigil.entity_state WHERE topic = 'ev' AND next_offset = 50") ==
        PARTS);
}

/* The server refuses one record of the batch: the writer isolates it as a dead letter. */
static void test_isolated(lane_t *l)
{
    char sql[256];
    feed(l, 40);
    lane_batch_t *b = l->writers[0].open;
    double most = -1;
    long culprit = -1;
    for (size_t i = 0; i < b->n_items; i++)
        if (b->items[i].rec.event.has_amount && b->items[i].rec.event.amount > most) {
            most = b->items[i].rec.event.amount;
            culprit = (long)b->items[i].msg->offset;
        }
    CHECK(culprit >= 0);
    snprintf(
        sql, sizeof sql,
        "ALTER TABLE vigil.risk_scores ADD CONSTRAINT test_amount CHECK (amount < %.6f) NOT VALID",
        most - 1e-6);
    CHECK(test_pg_exec(admin, sql) == 0);
    CHECK(lane_close_open(l) == 0);
    take_all_back(l);
    CHECK(test_pg_exec(admin, "ALTER TABLE vigil.risk_scores DROP CONSTRAINT test_amount") == 0);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores") == 239);
    CHECK(
        q_long(
            "SELECT count(*) FROM vigil.dead_letters WHERE reason LIKE 'refused by PostgreSQL%'") ==
        1);
    snprintf(sql, sizeof sql, "SELECT kafka_offset FROM vigil.dead_letters WHERE topic = 'ev'");
    CHECK(q_long(sql) == culprit);
    CHECK(q_long("SELECT sum(next_offset) FROM vigil.kafka_offsets WHERE topic = 'ev'") == 240);
}

/* Another instance moved partition 0 on: C comes back fenced, D (closed after C, before C came
 * back) dropped unwritten; the lane reloads the stored offsets. */
static void test_fenced(lane_t *l)
{
    lane_topic_t *t = &l->topics[0];
    uint64_t fenced = atomic_load(&l->m->fenced), epoch = l->epoch;
    CHECK(test_pg_exec(admin,
                       "UPDATE vigil.kafka_offsets SET next_offset = 500 WHERE topic = 'ev' AND "
                       "partition = 0") == 0);
    feed(l, 60);
    lane_batch_t *c = l->writers[0].open;
    CHECK(lane_close_open(l) == 0);
    feed(l, 60);
    lane_batch_t *d = l->writers[0].open;
    CHECK(lane_close_open(l) == 0);
    /* Wait for the writer to be done with both before taking them back, so D's outcome is the
     * writer's (dropped), not a consequence of the reader having moved on. */
    double until = now_s() + 20;
    while (lane_queue_depth(&l->done) < 2 && now_s() < until)
        nanosleep(&(struct timespec){0, 1000000}, NULL); /* polls the condition */
    CHECK(lane_queue_depth(&l->done) == 2);
    CHECK(c->status == LANE_BATCH_FENCED);
    CHECK(d->status == LANE_BATCH_DROPPED);
    take_all_back(l);
    CHECK(atomic_load(&l->m->fenced) == fenced + 1);
    CHECK(l->epoch == epoch + 1);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores") == 239); /* nothing of C or D */
    CHECK(q_long(
              "SELECT next_offset FROM vigil.kafka_offsets WHERE topic = 'ev' AND partition = 1") ==
          120);
    CHECK(t->parts[0].expected == 500 && t->parts[0].sent_next == 500);
    CHECK(t->parts[1].expected == 120 && t->parts[1].sent_next == 120);
    CHECK(t->parts[0].open_next == -1 && t->parts[1].open_next == -1);
}

static lanes_t *lanes_make(const char *group, int writers)
{
    char err[1024];
    const char *keys[] = {"bootstrap.servers", "group.id"};
    const char *values[] = {ingest_mock_bootstraps(mock), group};
    const char *origins[] = {"test", "test"};
    ingest_avro_t *dec =
        ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_PLAIN, schema_path, NULL, err, sizeof err);
    featurize_t *fz = dec ? featurize_new(dec, "", err, sizeof err) : NULL;
    CHECK_MSG(dec && fz, "%s", err);
    lanes_input_t in = {TOPIC, dec};
    lanes_options_t o = {.inputs = &in,
                         .n_inputs = 1,
                         .pg_conninfo = conninfo,
                         .instance_id = "test",
                         .kafka_keys = keys,
                         .kafka_values = values,
                         .kafka_origins = origins,
                         .n_kafka = 2,
                         .batch_max = 1000,
                         .batch_max_delay_ms = 60000,
                         .batches_in_flight = 3,
                         .events_writers = writers,
                         .retry_max_ms = 1000,
                         .shutdown_timeout_ms = 10000,
                         .featurize = fz,
                         .features_max_entities = 100000,
                         .features_checkpoint_interval_ms = 3600000};
    lanes_t *ls = lanes_new(&o, err, sizeof err);
    CHECK_MSG(ls != NULL, "%s", err);
    return ls;
}

/* The lane's own assignment of both partitions, as librdkafka would make it. */
static lane_t *lane_start(lanes_t *ls)
{
    lane_t *l = ls ? lanes_lane(ls, LANE_EVENTS) : NULL;
    CHECK(l != NULL && lane_open(l) == 0 && l->kafka != NULL);
    if (!l || !l->kafka)
        return NULL;
    int32_t parts[PARTS] = {0, 1};
    int64_t offsets[PARTS];
    CHECK(lane_on_assign(l, TOPIC, parts, PARTS, offsets) == 0);
    CHECK(offsets[0] == SINK_PG_OFFSET_NONE && offsets[1] == SINK_PG_OFFSET_NONE);
    return l;
}

static void readers_open(void)
{
    for (int p = 0; p < PARTS; p++)
        readers[p] = reader_new(p);
}

static void readers_close(void)
{
    for (int p = 0; p < PARTS; p++) {
        rd_kafka_consumer_close(readers[p]);
        rd_kafka_destroy(readers[p]);
    }
}

/* Two writers, another consumer group (its own stored offsets): partition p goes to writer
 * p % 2 and commits there; a fence on writer 0 leaves what writer 1 committed meanwhile
 * counted, and the lane re-reads partition 0's stored offset only once both are back. */
static void test_two_writers(void)
{
    lanes_t *ls = lanes_make("test-lane-2", 2);
    lane_t *l = lane_start(ls);
    if (!l)
        return;
    lane_topic_t *t = &l->topics[0];
    long rows = q_long("SELECT count(*) FROM vigil.risk_scores");
    CHECK(l->n_writers == 2);
    readers_open();
    feed(l, 100);
    for (int w = 0; w < 2; w++) {
        lane_batch_t *b = l->writers[w].open;
        size_t theirs = 0;
        for (size_t i = 0; i < b->n_items; i++)
            theirs += b->items[i].msg->partition == w;
        CHECK(b->n_items == 50 && theirs == 50);
    }
    CHECK(lane_close_open(l) == 0);
    CHECK(lane_in_flight(l) == 2 && l->writers[0].in_flight == 1 && l->writers[1].in_flight == 1);
    take_all_back(l);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores") == rows + 100);
    CHECK(q_long("SELECT sum(next_offset) FROM vigil.kafka_offsets WHERE consumer_group = "
                 "'test-lane-2'") == 100);

    CHECK(test_pg_exec(admin,
                       "UPDATE vigil.kafka_offsets SET next_offset = 500 WHERE consumer_group = "
                       "'test-lane-2' AND partition = 0") == 0);
    feed(l, 40);
    lane_batch_t *b0 = l->writers[0].open, *b1 = l->writers[1].open;
    CHECK(lane_close_open(l) == 0);
    double until = now_s() + 20;
    while (lane_queue_depth(&l->done) < 2 && now_s() < until)
        nanosleep(&(struct timespec){0, 1000000}, NULL); /* polls the condition */
    CHECK(b0->status == LANE_BATCH_FENCED);
    CHECK(b1->status == LANE_BATCH_COMMITTED);
    take_all_back(l);
    CHECK(q_long("SELECT count(*) FROM vigil.risk_scores") == rows + 120);
    CHECK(t->parts[0].expected == 500 && t->parts[0].sent_next == 500);
    CHECK(t->parts[1].expected == 70 && t->parts[1].sent_next == 70);
    readers_close();
    lanes_stop(ls);
    lane_finish(l);
    lanes_free(ls);
}

int main(void)
{
    char err[1024];
    conninfo = getenv("VIGIL_TEST_CONNINFO");
    if (!conninfo) {
        fprintf(stderr, "VIGIL_TEST_CONNINFO is not set (run through tests/lib/with_pg.sh)\n");
        return 1;
    }
    log_set_level(LOG_WARN);
    metrics_init();
    CHECK(test_schema_dir(schema_dir, sizeof schema_dir) == 0);
    snprintf(schema_path, sizeof schema_path, "%s/BehaviorEvent.avsc", schema_dir);
    admin = PQconnectdb(conninfo);
    mock = ingest_mock_new(1, err, sizeof err);
    CHECK_MSG(mock && ingest_mock_topic_create(mock, TOPIC, PARTS, err, sizeof err) == 0, "%s",
              err);
    CHECK(PQstatus(admin) == CONNECTION_OK);
    if (test_failures)
        return TEST_DONE();
    produce_events();

    lanes_t *ls = lanes_make("test-lane", 1);
    lane_t *l = lane_start(ls);
    if (!l)
        return TEST_DONE();
    readers_open();
    test_pipelined(l);
    test_isolated(l);
    test_fenced(l);
    readers_close();
    lanes_stop(ls);
    lane_finish(l);
    lanes_free(ls);

    test_two_writers();
    ingest_mock_free(mock);
    PQfinish(admin);
    return TEST_DONE();
}
