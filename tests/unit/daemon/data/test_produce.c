/* Tests of `vigil produce` without Kafka: the generator is deterministic in (seed, i), the
 * malformed fraction is what was asked for, every good record of each of the four kinds
 * survives an Avro round trip, every malformed kind fails to decode, the fraud patterns are
 * there at the documented rates and look as docs/synthetic-data.md says, --output writes a
 * labelled event file, --sim-rate stamps the simulated clock, and bad command lines exit 2. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event_file.h"
#include "ingest_avro.h"
#include "produce.h"
#include "produce_cmd.h"
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
    int truth = 0;
    for (uint64_t i = 0; i < 10000; i++) {
        produce_gen_record(g, INGEST_KIND_FRAUD_LABEL, i, 0, &rec);
        fraud += rec.fraud_label.is_fraud;
        truth += produce_gen_event_is_fraud(g, i);
        produce_gen_record(g, INGEST_KIND_NEWS_LABEL, i, 0, &rec);
        CHECK(rec.news_label.sentiment || rec.news_label.topic);
        both += rec.news_label.sentiment && rec.news_label.topic;
    }
    /* Fraud labels say the ground truth (test_fraud_patterns checks each one); 80% of news
     * labels carry both. */
    CHECK(fraud == truth && fraud > 0);
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

/* ---- Fraud patterns: 200,000 events of seed 7 among 1,000 users (so that every device a user
 * has shows up in their legitimate events), looked at the way docs/synthetic-data.md describes
 * them. ---- */

#define FP_EVENTS 200000
#define FP_USERS 1000
#define FP_EPISODES 4096

/* A set of 64-bit keys (open addressing; 0 is never a key). */
typedef struct key_set {
    uint64_t *slots;
    size_t cap;
} key_set_t;

static int key_set_add(key_set_t *s, uint64_t key)
{
    for (size_t h = (size_t)(key * 0x9E3779B97F4A7C15ULL) & (s->cap - 1);;
         h = (h + 1) & (s->cap - 1)) {
        if (s->slots[h] == key)
            return 0;
        if (s->slots[h] == 0) {
            s->slots[h] = key;
            return 1;
        }
    }
}

static int key_set_has(const key_set_t *s, uint64_t key)
{
    for (size_t h = (size_t)(key * 0x9E3779B97F4A7C15ULL) & (s->cap - 1);;
         h = (h + 1) & (s->cap - 1)) {
        if (s->slots[h] == key)
            return 1;
        if (s->slots[h] == 0)
            return 0;
    }
}

static uint32_t user_of(const ingest_event_t *ev)
{
    return (uint32_t)strtoul(ev->user_id + 1, NULL, 10);
}

/* (user, device) as a key: the device id is "d" and 8 hex digits. */
static uint64_t user_device(const ingest_event_t *ev)
{
    return ((uint64_t)(user_of(ev) + 1) << 32) | strtoul(ev->device_id + 1, NULL, 16);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* What the test gathers about one episode, in index order. */
typedef struct episode_seen {
    uint64_t id;
    int used;
    produce_fraud_pattern_t pattern;
    uint32_t user;
    uint64_t first, last;
    int n, n_txn, same_user, same_device, all_web, new_device, foreign;
    char device[16], country[8];
    char types[20]; /* first letter of each event type: T, L (login), F (failed), P */
    double amounts[20];
    int digital; /* purchases in card-testing categories */
    char merchants[20][8];
} episode_seen_t;

static episode_seen_t *episode_slot(episode_seen_t *eps, uint64_t id)
{
    for (size_t h = (size_t)(id * 0x9E3779B97F4A7C15ULL) % FP_EPISODES;; h = (h + 1) % FP_EPISODES)
        if (!eps[h].used || eps[h].id == id) {
            eps[h].id = id;
            return &eps[h];
        }
}

static void test_fraud_patterns(void)
{
    char err[256];
    produce_gen_t *g = produce_gen_new(7, FP_USERS, err, sizeof err);
    produce_gen_t *labels = produce_gen_new(7, FP_USERS, err, sizeof err);
    key_set_t devices = {calloc(1u << 20, sizeof(uint64_t)), 1u << 20};
    episode_seen_t *eps = calloc(FP_EPISODES, sizeof *eps);
    /* Per user: events by country (the cities' countries: at most 20 distinct), the home
     * country, and the amounts of everyday purchases at home. */
    static const char *countries[32];
    static int by_country[FP_USERS][32];
    static double *home_amounts[FP_USERS];
    static int n_home[FP_USERS], home[FP_USERS];
    static double median[FP_USERS];
    int n_countries = 0;
    uint64_t fraud = 0, per_pattern[PRODUCE_FRAUD_PATTERNS] = {0}, label_agrees = 0;
    uint64_t legit_txn = 0, legit_big = 0, legit_abroad = 0, legit = 0, alone_same = 0, alone = 0;
    ingest_event_t ev;
    ingest_record_t rec = {0};

    CHECK(g && labels && devices.slots && eps);
    if (!g || !labels || !devices.slots || !eps)
        goto out;

    /* Pass 1: each user's devices and countries, from legitimate events. */
    for (uint64_t i = 0; i < FP_EVENTS; i++) {
        if (produce_gen_event_is_fraud(g, i))
            continue;
        produce_gen_event(g, i, 0, &ev);
        uint32_t u = user_of(&ev);
        int c = 0;
        while (c < n_countries && strcmp(countries[c], ev.country) != 0)
            c++;
        if (c == n_countries && n_countries < 32)
            countries[n_countries++] = ev.country;
        if (c < 32)
            by_country[u][c]++;
        key_set_add(&devices, user_device(&ev));
    }
    CHECK(n_countries <= 20);
    for (int u = 0; u < FP_USERS; u++)
        for (int c = 1; c < n_countries; c++)
            if (by_country[u][c] > by_country[u][home[u]])
                home[u] = c;

    /* Pass 2: everyday purchases at home, for each user's median ("usual") amount. */
    for (int u = 0; u < FP_USERS; u++)
        home_amounts[u] = malloc(2000 * sizeof(double));
    for (uint64_t i = 0; i < FP_EVENTS; i++) {
        if (produce_gen_event_is_fraud(g, i))
            continue;
        produce_gen_event(g, i, 0, &ev);
        uint32_t u = user_of(&ev);
        legit++;
        if (strcmp(ev.country, countries[home[u]]) != 0) {
            legit_abroad++;
            continue;
        }
        if (ev.has_amount && home_amounts[u] && n_home[u] < 2000)
            home_amounts[u][n_home[u]++] = ev.amount;
    }
    for (int u = 0; u < FP_USERS; u++) {
        if (!home_amounts[u] || n_home[u] == 0)
            continue;
        qsort(home_amounts[u], (size_t)n_home[u], sizeof(double), cmp_double);
        median[u] = home_amounts[u][n_home[u] / 2];
    }

    /* Pass 3: the fraud, its labels, and events regenerated alone. */
    for (uint64_t i = 0; i < FP_EVENTS; i++) {
        uint64_t id;
        produce_fraud_pattern_t p = produce_gen_event_pattern(g, i, &id);
        int truth = produce_gen_event_is_fraud(g, i);
        produce_gen_event(g, i, 1767225600000 + (int64_t)i, &ev);
        CHECK(truth == (p != PRODUCE_FRAUD_NONE));
        produce_gen_record(labels, INGEST_KIND_FRAUD_LABEL, i, 0, &rec);
        label_agrees += rec.fraud_label.is_fraud == truth;
        if (i % 97 == 0 || (truth && i % 7 == 0)) {
            /* A generator that never saw this window makes the same event. */
            produce_gen_t *cold = produce_gen_new(7, FP_USERS, err, sizeof err);
            ingest_event_t again;
            if (cold) {
                produce_gen_event(cold, i, 1767225600000 + (int64_t)i, &again);
                alone_same += event_eq(&ev, &again);
                alone++;
            }
            produce_gen_free(cold);
        }
        uint32_t u = user_of(&ev);
        if (!truth) {
            if (ev.has_amount && strcmp(ev.country, countries[home[u]]) == 0) {
                legit_txn++;
                legit_big += ev.amount >= 5.0 * median[u];
            }
            continue;
        }
        fraud++;
        per_pattern[p]++;
        episode_seen_t *e = episode_slot(eps, id);
        if (!e->used) {
            e->used = 1;
            e->pattern = p;
            e->user = u;
            e->first = i;
            e->same_user = e->same_device = e->all_web = 1;
            snprintf(e->device, sizeof e->device, "%s", ev.device_id);
            snprintf(e->country, sizeof e->country, "%s", ev.country);
            e->new_device = !key_set_has(&devices, user_device(&ev));
            e->foreign = strcmp(ev.country, countries[home[u]]) != 0;
        }
        CHECK(e->pattern == p);
        e->last = i;
        e->same_user &= e->user == u;
        e->same_device &= strcmp(e->device, ev.device_id) == 0;
        e->all_web &= strcmp(ev.channel, "web") == 0;
        if (e->n < 20) {
            e->types[e->n] = strcmp(ev.event_type, "LOGIN_FAILED") == 0 ? 'F' : ev.event_type[0];
            e->amounts[e->n] = ev.has_amount ? ev.amount : 0.0;
            snprintf(e->merchants[e->n], sizeof e->merchants[0], "%s",
                     ev.merchant_id ? ev.merchant_id : "");
        }
        e->n++;
        if (ev.has_amount) {
            static const char *const digital[] = {"digital_goods", "gift_cards", "gaming",
                                                  "entertainment"};
            e->n_txn++;
            for (int k = 0; k < 4; k++)
                e->digital += strcmp(ev.merchant_category, digital[k]) == 0;
        }
    }

    /* The rate: each window of 65,536 events holds 40 card-testing bursts (10.4 events on
     * average), 40 takeovers (7.7) and 250 spikes, 974 events or 1.49%. */
    double rate = (double)fraud / FP_EVENTS;
    CHECK_MSG(rate >= 0.012 && rate <= 0.018, "fraud rate %.4f", rate);
    CHECK(label_agrees == FP_EVENTS);
    CHECK_MSG(alone_same == alone && alone > 2000, "%llu of %llu", (unsigned long long)alone_same,
              (unsigned long long)alone);
    /* The noise: large legitimate purchases, legitimate events abroad. */
    CHECK_MSG(legit_big > legit_txn / 1000 && legit_big < legit_txn / 10, "%llu of %llu",
              (unsigned long long)legit_big, (unsigned long long)legit_txn);
    CHECK_MSG(legit_abroad > legit / 200 && legit_abroad < legit / 10, "%llu of %llu",
              (unsigned long long)legit_abroad, (unsigned long long)legit);

    int n_ep[PRODUCE_FRAUD_PATTERNS] = {0}, ct_new_device = 0, ct_cash_out = 0, ct_digital = 0,
        ct_txn = 0, spike_at_home = 0, ato_txns = 0, ato_big = 0, spike_big = 0;
    for (int k = 0; k < FP_EPISODES; k++) {
        episode_seen_t *e = &eps[k];
        if (!e->used)
            continue;
        n_ep[e->pattern]++;
        if (e->first + 52000 >= FP_EVENTS)
            continue; /* may go on past the last event generated */
        CHECK(e->same_user && e->same_device);
        double m = median[e->user];
        switch (e->pattern) {
        case PRODUCE_FRAUD_CARD_TESTING: {
            /* 5-15 small purchases, seconds apart, then maybe one larger. */
            int tests = e->n;
            double lo = e->amounts[0], hi = e->amounts[0];
            for (int j = 0; j < e->n; j++) {
                lo = e->amounts[j] < lo ? e->amounts[j] : lo;
                hi = e->amounts[j] > hi ? e->amounts[j] : hi;
            }
            if (hi > 10.0 * lo) {
                CHECK_MSG(e->amounts[e->n - 1] == hi && hi >= 40.0 * lo, "burst at %llu",
                          (unsigned long long)e->first);
                tests--;
                ct_cash_out++;
            }
            CHECK_MSG(tests >= 5 && tests <= 15 && e->n_txn == e->n && e->all_web,
                      "burst at %llu: %d tests, %d events", (unsigned long long)e->first, tests,
                      e->n);
            CHECK(e->last - e->first <= 20000);
            int distinct = 0;
            for (int j = 0; j < tests; j++) {
                int seen = 0;
                for (int l = 0; l < j; l++)
                    seen |= strcmp(e->merchants[j], e->merchants[l]) == 0;
                distinct += !seen;
            }
            CHECK_MSG(distinct >= tests - 2, "burst at %llu: %d merchants for %d tests",
                      (unsigned long long)e->first, distinct, tests);
            ct_new_device += e->new_device;
            ct_digital += e->digital;
            ct_txn += e->n_txn;
            break;
        }
        case PRODUCE_FRAUD_ACCOUNT_TAKEOVER: {
            /* F{2,6} L P? T{1,3}, from a device the user never had, in another country. */
            int j = 0, failed = 0, txns = 0;
            while (j < e->n && e->types[j] == 'F')
                j++, failed++;
            int login = j < e->n && e->types[j] == 'L';
            j += login;
            j += j < e->n && e->types[j] == 'P';
            while (j < e->n && e->types[j] == 'T') {
                ato_txns++;
                ato_big += e->amounts[j] >= 3.0 * m;
                j++, txns++;
            }
            CHECK_MSG(j == e->n && failed >= 2 && failed <= 6 && login && txns >= 1 && txns <= 3,
                      "takeover at %llu: %.*s", (unsigned long long)e->first, e->n, e->types);
            CHECK_MSG(e->new_device, "takeover at %llu from a device of the user",
                      (unsigned long long)e->first);
            CHECK_MSG(e->foreign, "takeover at %llu from %s, the user's home",
                      (unsigned long long)e->first, e->country);
            CHECK(e->last - e->first <= 52000);
            break;
        }
        case PRODUCE_FRAUD_AMOUNT_SPIKE:
            CHECK(e->n == 1 && e->n_txn == 1);
            if (!e->foreign) {
                spike_at_home++;
                spike_big += e->amounts[0] >= 5.0 * m;
            }
            break;
        default:
            CHECK(0);
        }
    }
    /* Three windows and a bit: 122 of each of the first two, 763 spikes. */
    CHECK_MSG(n_ep[PRODUCE_FRAUD_CARD_TESTING] >= 120 && n_ep[PRODUCE_FRAUD_CARD_TESTING] <= 125,
              "%d card-testing bursts", n_ep[PRODUCE_FRAUD_CARD_TESTING]);
    CHECK_MSG(n_ep[PRODUCE_FRAUD_ACCOUNT_TAKEOVER] >= 120 &&
                  n_ep[PRODUCE_FRAUD_ACCOUNT_TAKEOVER] <= 125,
              "%d takeovers", n_ep[PRODUCE_FRAUD_ACCOUNT_TAKEOVER]);
    CHECK_MSG(n_ep[PRODUCE_FRAUD_AMOUNT_SPIKE] >= 740 && n_ep[PRODUCE_FRAUD_AMOUNT_SPIKE] <= 790,
              "%d spikes", n_ep[PRODUCE_FRAUD_AMOUNT_SPIKE]);
    /* 70% of bursts from a new device, 40% cashing out, 70% of tests at digital merchants. */
    int n_ct = n_ep[PRODUCE_FRAUD_CARD_TESTING] ? n_ep[PRODUCE_FRAUD_CARD_TESTING] : 1;
    CHECK_MSG(ct_new_device > n_ct / 2 && ct_new_device < n_ct * 9 / 10, "%d of %d", ct_new_device,
              n_ct);
    CHECK_MSG(ct_cash_out > n_ct / 5 && ct_cash_out < n_ct * 3 / 5, "%d of %d", ct_cash_out, n_ct);
    CHECK_MSG(ct_digital > ct_txn / 2, "%d of %d", ct_digital, ct_txn);
    /* Takeover purchases and spikes are many times the user's usual. */
    CHECK_MSG(ato_big > ato_txns * 8 / 10, "%d of %d", ato_big, ato_txns);
    CHECK_MSG(spike_big > spike_at_home * 9 / 10, "%d of %d", spike_big, spike_at_home);
    fprintf(stderr,
            "fraud patterns: %llu of %d events fraudulent (%.3f%%): card testing %llu events in "
            "%d bursts (%d from a new device, %d cashing out, %d of %d purchases digital), "
            "account takeover %llu in %d (%d of %d purchases >= 3x usual), amount spike %llu "
            "(%d of %d at home >= 5x usual); legitimate: %llu of %llu purchases >= 5x usual, "
            "%llu of %llu events abroad\n",
            (unsigned long long)fraud, FP_EVENTS, 100.0 * rate,
            (unsigned long long)per_pattern[PRODUCE_FRAUD_CARD_TESTING],
            n_ep[PRODUCE_FRAUD_CARD_TESTING], ct_new_device, ct_cash_out, ct_digital, ct_txn,
            (unsigned long long)per_pattern[PRODUCE_FRAUD_ACCOUNT_TAKEOVER],
            n_ep[PRODUCE_FRAUD_ACCOUNT_TAKEOVER], ato_big, ato_txns,
            (unsigned long long)per_pattern[PRODUCE_FRAUD_AMOUNT_SPIKE], spike_big, spike_at_home,
            (unsigned long long)legit_big, (unsigned long long)legit_txn,
            (unsigned long long)legit_abroad, (unsigned long long)legit);

out:
    for (int u = 0; u < FP_USERS; u++) {
        free(home_amounts[u]);
        home_amounts[u] = NULL;
    }
    free(devices.slots);
    free(eps);
    produce_gen_free(g);
    produce_gen_free(labels);
}

/* --output: the file holds count events with their ground truth and simulated times; the
 * summary counts the fraud; what --output cannot do is a usage error. */
static void test_main_output(void)
{
    char dir[4096], path[4200], err[1024];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_produce.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp %s: %s", dir, strerror(errno));
        return;
    }
    snprintf(path, sizeof path, "%s/events.jsonl", dir);
    CHECK(run_main((const char *[]){"produce", "--output", path, "-n", "3000", "--seed", "7",
                                    "--users", "100", "--rate", "50", "--start-ms", "1000",
                                    NULL}) == 0);
    produce_gen_t *g = produce_gen_new(7, 100, err, sizeof err);
    event_file_reader_t *r = event_file_reader_new(path, err, sizeof err);
    CHECK_MSG(g && r, "%s", err);
    if (g && r) {
        ingest_event_t got, want;
        int label, n = 0, same = 0;
        while (event_file_read(r, &got, &label, err, sizeof err) == 1) {
            produce_gen_event(g, (uint64_t)n, 1000 + n * 20, &want);
            same += event_eq(&got, &want) && label == produce_gen_event_is_fraud(g, (uint64_t)n);
            n++;
        }
        CHECK(n == 3000 && same == 3000);
    }
    event_file_reader_free(r);
    produce_gen_free(g);
    unlink(path);

    CHECK(run_main((const char *[]){"produce", "--output", path, "--kind", "news", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "--output", path, "--malformed", "0.1", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "--output", path, "-n", "0", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "--output", path, "--rate", "0", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "--output", path, "--output-dir", dir, NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "--output", "events.parquet", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "--output", path, "--start-ms", "-1", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--start-ms", "5", NULL}) == 2);
    CHECK(access(path, F_OK) != 0); /* no usage error left a file */
    snprintf(path, sizeof path, "%s/no/such/dir.csv", dir);
    CHECK(run_main((const char *[]){"produce", "--output", path, "-n", "5", NULL}) == 1);
    CHECK(rmdir(dir) == 0);
}

/* --sim-rate: event i, as sent (here to --output-dir), is the generator's event i at
 * --start-ms + i * 1000 / rate ms; with other kinds or --output it is a usage error. */
static void test_main_sim_rate(void)
{
    char dir[4096], path[4200], err[512], reason[256];
    unsigned char buf[4096];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_produce_sim.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp %s: %s", dir, strerror(errno));
        return;
    }
    CHECK(run_main((const char *[]){"produce", "--output-dir", dir, "-n", "40", "--seed", "5",
                                    "--users", "10", "--sim-rate", "4", "--start-ms", "1000",
                                    NULL}) == 0);
    produce_gen_t *g = produce_gen_new(5, 10, err, sizeof err);
    ingest_avro_t *dec = ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_CONFLUENT,
                                         reader_of(INGEST_KIND_EVENT), schema_dir, err, sizeof err);
    CHECK_MSG(g && dec, "%s", err);
    int same = 0;
    for (uint64_t i = 0; g && dec && i < 40; i++) {
        snprintf(path, sizeof path, "%s/%08" PRIu64 ".avro", dir, i);
        FILE *f = fopen(path, "rb");
        size_t len = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (f)
            fclose(f);
        ingest_record_t got = {0};
        ingest_event_t want;
        produce_gen_event(g, i, 1000 + (int64_t)i * 250, &want);
        if (len > 0 && ingest_avro_decode(dec, buf, len, &got, reason, sizeof reason) ==
                           INGEST_AVRO_OK)
            same += got.kind == INGEST_KIND_EVENT && event_eq(&got.event, &want);
        ingest_record_clear(&got);
        unlink(path);
    }
    CHECK_MSG(same == 40, "%d of 40 events as the simulated clock has them", same);
    if (dec)
        ingest_avro_free(dec);
    produce_gen_free(g);
    CHECK(rmdir(dir) == 0);

    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--sim-rate", "0", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--sim-rate", "x", NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "--kind", "news", "--sim-rate", "3",
                                    NULL}) == 2);
    CHECK(run_main((const char *[]){"produce", "--output", "e.csv", "--sim-rate", "3", NULL}) ==
          2);
    CHECK(run_main((const char *[]){"produce", "-b", "h:1", "-n", "18000000000000000000",
                                    "--sim-rate", "0.001", NULL}) == 2);
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
    test_fraud_patterns();
    test_main_usage_errors();
    test_main_output();
    test_main_sim_rate();
    return TEST_DONE();
}
