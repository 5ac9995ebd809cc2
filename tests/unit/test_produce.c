/* Tests of `vigil produce` without Kafka: the generator is deterministic in (seed, i), the
 * malformed fraction is what was asked for, every good record of each of the four kinds
 * survives an Avro round trip, every malformed kind fails to decode, and bad command lines
 * exit 2. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_avro.h"
#include "produce.h"
#include "test.h"

static char schema_dir[4096];

/* The reader schema of kind, <schema_dir>/<Record>.avsc. */
static const char *reader_of(ingest_kind_t kind)
{
    static char path[4096 + 64];
    snprintf(path, sizeof path, "%s/%s.avsc", schema_dir, ingest_kind_schema_name(kind));
    return path;
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int event_eq(const ingest_event_t *a, const ingest_event_t *b)
{
    return str_eq(a->event_id, b->event_id) && str_eq(a->event_type, b->event_type) &&
           str_eq(a->user_id, b->user_id) && str_eq(a->account_id, b->account_id) &&
           str_eq(a->device_id, b->device_id) && str_eq(a->ip, b->ip) &&
           a->has_amount == b->has_amount && (!a->has_amount || a->amount == b->amount) &&
           str_eq(a->currency, b->currency) && str_eq(a->merchant_id, b->merchant_id) &&
           str_eq(a->merchant_category, b->merchant_category) && str_eq(a->country, b->country) &&
           a->has_geo == b->has_geo &&
           (!a->has_geo || (a->latitude == b->latitude && a->longitude == b->longitude)) &&
           a->event_time_ms == b->event_time_ms && str_eq(a->channel, b->channel);
}

static int record_eq(const ingest_record_t *a, const ingest_record_t *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case INGEST_KIND_EVENT:
        return event_eq(&a->event, &b->event);
    case INGEST_KIND_ARTICLE: {
        const ingest_article_t *x = &a->article, *y = &b->article;
        if (!(str_eq(x->article_id, y->article_id) &&
              x->published_time_ms == y->published_time_ms && str_eq(x->source, y->source) &&
              str_eq(x->language, y->language) && str_eq(x->headline, y->headline) &&
              str_eq(x->body, y->body) && x->n_tickers == y->n_tickers))
            return 0;
        for (size_t i = 0; i < x->n_tickers; i++)
            if (!str_eq(x->tickers[i], y->tickers[i]))
                return 0;
        return 1;
    }
    case INGEST_KIND_FRAUD_LABEL:
        return str_eq(a->fraud_label.event_id, b->fraud_label.event_id) &&
               a->fraud_label.is_fraud == b->fraud_label.is_fraud &&
               a->fraud_label.label_time_ms == b->fraud_label.label_time_ms &&
               str_eq(a->fraud_label.label_source, b->fraud_label.label_source);
    case INGEST_KIND_NEWS_LABEL:
        return str_eq(a->news_label.article_id, b->news_label.article_id) &&
               str_eq(a->news_label.sentiment, b->news_label.sentiment) &&
               str_eq(a->news_label.topic, b->news_label.topic) &&
               a->news_label.label_time_ms == b->news_label.label_time_ms;
    case INGEST_KIND_COUNT:
        break;
    }
    return 0;
}

static void test_deterministic(void)
{
    char err[256];
    produce_gen_t *g1 = produce_gen_new(7, 1000, err, sizeof err);
    produce_gen_t *g2 = produce_gen_new(7, 1000, err, sizeof err);
    produce_gen_t *g3 = produce_gen_new(8, 1000, err, sizeof err);
    ingest_event_t a = {0}, b = {0}, c = {0};
    char prev_id[64] = "";
    int n_txn = 0, n_same_as_other_seed = 0;

    CHECK(g1 && g2 && g3);
    if (!g1 || !g2 || !g3)
        goto out;
    for (uint64_t i = 0; i < 2000; i++) {
        produce_gen_event(g1, i, 1700000000000 + (int64_t)i, &a);
        produce_gen_event(g2, i, 1700000000000 + (int64_t)i, &b);
        produce_gen_event(g3, i, 1700000000000 + (int64_t)i, &c);
        CHECK(event_eq(&a, &b));
        if (event_eq(&a, &c))
            n_same_as_other_seed++;
        CHECK(strcmp(a.event_id, prev_id) != 0);
        snprintf(prev_id, sizeof prev_id, "%s", a.event_id);

        CHECK(a.user_id[0] == 'u' && strlen(a.user_id) == 7 && atoi(a.user_id + 1) < 1000);
        CHECK(a.device_id && a.device_id[0] == 'd' && strlen(a.device_id) == 9);
        CHECK(a.account_id && a.account_id[0] == 'a');
        CHECK(a.ip && a.country && a.channel && a.has_geo);
        CHECK(a.event_time_ms == 1700000000000 + (int64_t)i);
        if (strcmp(a.event_type, "TRANSACTION") == 0) {
            n_txn++;
            CHECK(a.has_amount && a.amount >= 0.01 && a.currency && a.merchant_id &&
                  a.merchant_id[0] == 'm' && a.merchant_category);
        } else {
            CHECK(!a.has_amount && !a.currency && !a.merchant_id && !a.merchant_category);
        }
    }
    CHECK(n_same_as_other_seed == 0);
    /* 60% of 2000: 1200, standard deviation about 22. */
    CHECK(n_txn > 1100 && n_txn < 1300);

    produce_gen_event(g1, 42, 0, &a);
    CHECK_STR(a.event_id, "e7-42");
    /* Regenerating an earlier index gives the same event again. */
    produce_gen_event(g1, 5, 0, &a);
    produce_gen_event(g2, 5, 0, &b);
    CHECK(event_eq(&a, &b));

out:
    produce_gen_free(g1);
    produce_gen_free(g2);
    produce_gen_free(g3);
}

static void test_gen_new_rejects_bad_counts(void)
{
    char err[256] = "";
    CHECK(produce_gen_new(1, 0, err, sizeof err) == NULL);
    CHECK(strstr(err, "out of range") != NULL);
    CHECK(produce_gen_new(1, PRODUCE_USERS_MAX + 1, err, sizeof err) == NULL);
}

static void test_malformed_fraction(void)
{
    char err[256];
    produce_gen_t *g = produce_gen_new(3, 10, err, sizeof err);
    int n1 = 0, n1_again = 0, n0 = 0, nall = 0;

    CHECK(g != NULL);
    if (!g)
        return;
    for (uint64_t i = 0; i < 100000; i++) {
        n1 += produce_gen_is_malformed(g, i, 0.01);
        n1_again += produce_gen_is_malformed(g, i, 0.01);
        n0 += produce_gen_is_malformed(g, i, 0.0);
        nall += produce_gen_is_malformed(g, i, 1.0);
    }
    /* Within +-0.2% of 100,000 indices of the requested 1%. */
    CHECK(n1 >= 800 && n1 <= 1200);
    CHECK(n1 == n1_again);
    CHECK(n0 == 0);
    CHECK(nall == 100000);
    produce_gen_free(g);
}

/* Every generated record of kind decodes back to itself; the generator covers the optional
 * fields both ways (counted so a generator that stopped filling one would fail here). */
static void test_round_trip(ingest_kind_t kind, ingest_format_t format)
{
    char err[512], reason[256];
    unsigned char buf[4096];
    produce_gen_t *g = produce_gen_new(11, 500, err, sizeof err);
    ingest_avro_t *enc =
        ingest_avro_new(kind, format, reader_of(kind), schema_dir, err, sizeof err);
    ingest_avro_t *dec =
        ingest_avro_new(kind, format, reader_of(kind), schema_dir, err, sizeof err);
    ingest_record_t rec = {0}, out = {0};
    int ok = 0, absent = 0, present = 0;

    CHECK(g && enc && dec);
    if (!g || !enc || !dec) {
        fprintf(stderr, "round trip setup: %s\n", err);
        goto out;
    }
    for (uint64_t i = 0; i < 3000; i++) {
        produce_gen_record(g, kind, i, 1700000000000 + (int64_t)i, &rec);
        long len =
            ingest_avro_encode(enc, &rec, (int32_t)kind + 1, buf, sizeof buf, err, sizeof err);
        CHECK(len > 0);
        if (len <= 0) {
            fprintf(stderr, "encode %s: %s\n", produce_record_key(&rec), err);
            continue;
        }
        int rc = ingest_avro_decode(dec, buf, (size_t)len, &out, reason, sizeof reason);
        CHECK(rc == INGEST_AVRO_OK);
        if (rc != INGEST_AVRO_OK) {
            fprintf(stderr, "decode %s: %s\n", produce_record_key(&rec), reason);
            continue;
        }
        CHECK(record_eq(&rec, &out));
        ok++;
        /* One optional part per kind, seen absent and present. */
        int has = kind == INGEST_KIND_EVENT         ? out.event.has_amount
                  : kind == INGEST_KIND_ARTICLE     ? out.article.n_tickers > 0
                  : kind == INGEST_KIND_FRAUD_LABEL ? out.fraud_label.label_source != NULL
                                                    : out.news_label.sentiment != NULL;
        has ? present++ : absent++;
    }
    CHECK(ok == 3000);
    CHECK(present > 100 && absent > 100);

out:
    ingest_record_clear(&out);
    if (enc)
        ingest_avro_free(enc);
    if (dec)
        ingest_avro_free(dec);
    produce_gen_free(g);
}

static void test_malformed_never_decodes(ingest_kind_t kind, ingest_format_t format)
{
    char err[512], reason[256];
    unsigned char buf[4096];
    produce_gen_t *g = produce_gen_new(5, 100, err, sizeof err);
    ingest_avro_t *enc =
        ingest_avro_new(kind, format, reader_of(kind), schema_dir, err, sizeof err);
    ingest_avro_t *dec =
        ingest_avro_new(kind, format, reader_of(kind), schema_dir, err, sizeof err);
    ingest_record_t rec = {0}, out = {0};
    int bad_per_kind[PRODUCE_MALFORMED_KINDS] = {0};
    int32_t id = (int32_t)kind + 1;

    CHECK(g && enc && dec);
    if (!g || !enc || !dec) {
        fprintf(stderr, "malformed setup: %s\n", err);
        goto out;
    }
    for (uint64_t i = 0; i < 50 * PRODUCE_MALFORMED_KINDS; i++) {
        produce_gen_record(g, kind, i, 1700000000000, &rec);
        long len = produce_gen_malformed(g, enc, id, i, &rec, buf, sizeof buf, err, sizeof err);
        CHECK(len >= 0);
        if (len < 0) {
            fprintf(stderr, "malformed %llu: %s\n", (unsigned long long)i, err);
            continue;
        }
        if (i % PRODUCE_MALFORMED_KINDS == PRODUCE_MALFORMED_EMPTY)
            CHECK(len == 0);
        else
            CHECK(len > 0);
        int rc = ingest_avro_decode(dec, buf, (size_t)len, &out, reason, sizeof reason);
        CHECK(rc == INGEST_AVRO_BAD);
        if (rc == INGEST_AVRO_BAD)
            bad_per_kind[i % PRODUCE_MALFORMED_KINDS]++;
        else
            fprintf(stderr, "malformed message %llu (kind %d, format %d) decoded with rc %d\n",
                    (unsigned long long)i, (int)(i % PRODUCE_MALFORMED_KINDS), (int)format, rc);
    }
    for (int k = 0; k < PRODUCE_MALFORMED_KINDS; k++)
        CHECK(bad_per_kind[k] == 50);

    /* The unknown-schema kind must not collide with a producer that uses that very id. */
    produce_gen_record(g, kind, PRODUCE_MALFORMED_UNKNOWN_SCHEMA, 1700000000000, &rec);
    long len =
        produce_gen_malformed(g, enc, PRODUCE_UNKNOWN_SCHEMA_ID, PRODUCE_MALFORMED_UNKNOWN_SCHEMA,
                              &rec, buf, sizeof buf, err, sizeof err);
    CHECK(len > 5);
    if (format == INGEST_FORMAT_CONFLUENT && len > 5)
        CHECK(buf[0] == 0 && ((uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 |
                              (uint32_t)buf[3] << 8 | buf[4]) == PRODUCE_UNKNOWN_SCHEMA_ID - 1);

out:
    ingest_record_clear(&out);
    if (enc)
        ingest_avro_free(enc);
    if (dec)
        ingest_avro_free(dec);
    produce_gen_free(g);
}

/* Labels point at the records of the same seed they label. */
static void test_labels_refer_to_records(void)
{
    char err[256];
    produce_gen_t *g = produce_gen_new(3, 100, err, sizeof err);
    ingest_record_t rec = {0};
    int fraud = 0, both = 0;

    CHECK(g != NULL);
    if (!g)
        return;
    produce_gen_record(g, INGEST_KIND_FRAUD_LABEL, 17, 0, &rec);
    CHECK_STR(rec.fraud_label.event_id, "e3-17");
    produce_gen_record(g, INGEST_KIND_NEWS_LABEL, 17, 0, &rec);
    CHECK_STR(rec.news_label.article_id, "n3-17");
    produce_gen_record(g, INGEST_KIND_ARTICLE, 17, 0, &rec);
    CHECK_STR(rec.article.article_id, "n3-17");
    for (uint64_t i = 0; i < 10000; i++) {
        produce_gen_record(g, INGEST_KIND_FRAUD_LABEL, i, 0, &rec);
        fraud += rec.fraud_label.is_fraud;
        produce_gen_record(g, INGEST_KIND_NEWS_LABEL, i, 0, &rec);
        CHECK(rec.news_label.sentiment || rec.news_label.topic);
        both += rec.news_label.sentiment && rec.news_label.topic;
    }
    /* 3% fraud: 300, standard deviation about 17; 80% of news labels carry both. */
    CHECK(fraud > 200 && fraud < 400);
    CHECK(both > 7500 && both < 8500);
    produce_gen_free(g);
}

static int run_main(const char *const *args)
{
    char *argv[32];
    int argc = 0;
    for (; args[argc]; argc++)
        argv[argc] = (char *)args[argc];
    argv[argc] = NULL;
    return produce_main(argc, argv);
}

static void test_main_usage_errors(void)
{
    /* So that "no brokers" really has none. */
    unsetenv("VIGIL_KAFKA_BOOTSTRAP_SERVERS");

    CHECK(run_main((const char *[]){"produce", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "-n", "abc", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "-n", "-1", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--count=5x", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "-r", "-5", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--rate", "nan", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--malformed", "1.5", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--malformed", "x", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--seed", "-3", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--users", "0", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--users", "99999999", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--format", "json", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--schema-id", "-1", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--schema-id", "2147483648", NULL}) ==
          2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "-X", "novalue", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "-X", "=v", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "-X", "no.such.property=1", NULL}) ==
          2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--schema", "/nonexistent.avsc",
                                    NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--bogus", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "stray", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--kind", "tweets", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "--help", NULL}) == 0);
}

int main(void)
{
    if (test_schema_dir(schema_dir, sizeof schema_dir) < 0) {
        fprintf(stderr, "test_produce: schema directory path too long\n");
        return 1;
    }

    test_deterministic();
    test_gen_new_rejects_bad_counts();
    test_malformed_fraction();
    for (int k = 0; k < INGEST_KIND_COUNT; k++) {
        test_round_trip((ingest_kind_t)k, INGEST_FORMAT_CONFLUENT);
        test_round_trip((ingest_kind_t)k, INGEST_FORMAT_PLAIN);
        test_malformed_never_decodes((ingest_kind_t)k, INGEST_FORMAT_CONFLUENT);
        test_malformed_never_decodes((ingest_kind_t)k, INGEST_FORMAT_PLAIN);
    }
    test_labels_refer_to_records();
    test_main_usage_errors();
    return TEST_DONE();
}
