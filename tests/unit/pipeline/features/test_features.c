/* Behavior features: the spec compiler's errors, each aggregate's semantics on hand-computed
 * cases, the entity store's bounds (LRU, TTL) against a plain model, and checkpoints: a state
 * saved and restored mid-stream gives exactly the vectors of an uninterrupted run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "behavior_features.h"
#include "entity_store.h"
#include "test.h"

/* The BehaviorEvent fields, as the daemon describes them, plus two of a user's own columns. */
enum { F_EVENT_TYPE, F_USER, F_DEVICE, F_MERCHANT, F_COUNTRY, F_AMOUNT, F_LAT, F_LON, F_V1, F_N };
static const features_field_t fields[F_N] = {
    [F_EVENT_TYPE] = {"event_type", FEATURES_FIELD_STRING},
    [F_USER] = {"user_id", FEATURES_FIELD_STRING},
    [F_DEVICE] = {"device_id", FEATURES_FIELD_STRING},
    [F_MERCHANT] = {"merchant_id", FEATURES_FIELD_STRING},
    [F_COUNTRY] = {"country", FEATURES_FIELD_STRING},
    [F_AMOUNT] = {"amount", FEATURES_FIELD_NUMBER},
    [F_LAT] = {"latitude", FEATURES_FIELD_NUMBER},
    [F_LON] = {"longitude", FEATURES_FIELD_NUMBER},
    [F_V1] = {"V1", FEATURES_FIELD_NUMBER},
};

typedef struct ev {
    double num[F_N];
    const char *str[F_N];
    features_event_t e;
} ev_t;

static void ev_init(ev_t *v, int64_t t, const char *type, const char *user, double amount)
{
    for (int i = 0; i < F_N; i++) {
        v->num[i] = NAN;
        v->str[i] = NULL;
    }
    v->str[F_EVENT_TYPE] = type;
    v->str[F_USER] = user;
    v->num[F_AMOUNT] = amount;
    v->e = (features_event_t){t, v->num, v->str};
}

static long col(const features_spec_t *s, const char *name)
{
    for (size_t i = 0; i < features_spec_width(s); i++)
        if (strcmp(features_spec_column(s, i), name) == 0)
            return (long)i;
    fprintf(stderr, "no column %s\n", name);
    return -1;
}

static void expect_spec_error(const char *text, const char *want)
{
    char err[512] = "";
    features_spec_t *s = features_spec_new(text, "t.spec", fields, F_N, err, sizeof err);
    CHECK(s == NULL);
    CHECK_MSG(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    features_spec_free(s);
}

static void test_spec_errors(void)
{
    expect_spec_error("entity user user_id\nbogus user\n", "t.spec:2: unknown directive bogus");
    expect_spec_error("numeric x nope\n", "t.spec:1: no input field named nope");
    expect_spec_error("numeric x user_id\n", "field user_id is a string");
    expect_spec_error("count user 1h\n", "unknown entity user");
    expect_spec_error("entity u user_id\ncount u 1h 1h\n", "defined twice");
    expect_spec_error("entity u user_id\ncount u 3s\n", "shorter than 6 s");
    expect_spec_error("entity u user_id\ncount u 1x\n", "not a window length");
    expect_spec_error("categorical c event_type 1\n", "BUCKETS must be 2..1024");
    expect_spec_error("# only a comment\n", "defines no feature");
    expect_spec_error("numeric a amount clip=5:1\n", "clip bounds reversed");
    expect_spec_error("entity u user_id\ncount_if u event_type 1h\n", "FIELD=VALUE");
}

static void test_default_spec(void)
{
    char err[512];
    features_spec_t *s =
        features_spec_new(features_default_spec, "built-in", features_behavior_fields,
                          FEATURES_BF_COUNT, err, sizeof err);
    CHECK_MSG(s != NULL, "%s", err);
    if (!s)
        return;
    CHECK(features_spec_entities(s) == 4);
    for (size_t e = 0; e < features_spec_entities(s); e++)
        CHECK_MSG(features_spec_entity_bytes(s, e) <= 256, "%s takes %zu bytes",
                  features_spec_entity_name(s, e), features_spec_entity_bytes(s, e));
    CHECK(col(s, "user.count.1h") >= 0 && col(s, "user.count_if.event_type=LOGIN_FAILED.24h") >= 0);
    CHECK(col(s, "hour.sin") >= 0 && col(s, "user.novel.country") >= 0);
    /* Spacing and comments do not change the hash; a changed line does. */
    features_spec_t *a = features_spec_new("entity u user_id # x\ncount   u 1h\n", "a", fields, F_N,
                                           err, sizeof err);
    features_spec_t *b =
        features_spec_new("entity u user_id\n\ncount u 1h\n", "b", fields, F_N, err, sizeof err);
    features_spec_t *c =
        features_spec_new("entity u user_id\ncount u 24h\n", "c", fields, F_N, err, sizeof err);
    CHECK(a && b && c);
    if (a && b && c) {
        CHECK(features_spec_hash(a) == features_spec_hash(b));
        CHECK(features_spec_hash(a) != features_spec_hash(c));
    }
    features_spec_free(a);
    features_spec_free(b);
    features_spec_free(c);
    features_spec_free(s);
}

static const char *agg_spec = "entity user user_id\n"
                              "numeric amt amount log clip=0:5 missing=-1\n"
                              "numeric v1 V1\n"
                              "categorical type event_type 4\n"
                              "hour_of_day\n"
                              "count user 1m 1h\n"
                              "sum user amount 1m\n"
                              "count_if user event_type=LOGIN_FAILED 1h\n"
                              "since_last user\n"
                              "geo_velocity user latitude longitude\n"
                              "zscore user amount\n"
                              "novelty user device_id 2\n";

static void test_aggregates(void)
{
    char err[512];
    features_spec_t *s = features_spec_new(agg_spec, "agg", fields, F_N, err, sizeof err);
    CHECK_MSG(s != NULL, "%s", err);
    if (!s)
        return;
    features_state_t *st = features_state_new(s, 100, 0, err, sizeof err);
    float *o = malloc(features_spec_width(s) * sizeof(float));
    long c1m = col(s, "user.count.1m"), c1h = col(s, "user.count.1h");
    long s1m = col(s, "user.sum.amount.1m"),
         fl = col(s, "user.count_if.event_type=LOGIN_FAILED.1h");
    long since = col(s, "user.since_last_s"), isnew = col(s, "user.new");
    long km = col(s, "user.geo_km"), kmh = col(s, "user.geo_kmh");
    long z = col(s, "user.zscore.amount"), nov = col(s, "user.novel.device_id");
    long amt = col(s, "amt"), v1 = col(s, "v1"), hs = col(s, "hour.sin"), hc = col(s, "hour.cos");
    long type0 = col(s, "type#0");
    ev_t v;
    const int64_t t0 = 1700000000000LL - 1700000000000LL % 60000; /* on a minute boundary */

    CHECK(st && o);
    /* 1: first event of alice, Paris, device d1. */
    ev_init(&v, t0, "TRANSACTION", "alice", 10);
    v.num[F_LAT] = 48.8566;
    v.num[F_LON] = 2.3522;
    v.str[F_DEVICE] = "d1";
    v.num[F_V1] = -2.5;
    CHECK(features_compute(s, st, &v.e, o) == 0);
    CHECK(o[c1m] == 1 && o[c1h] == 1 && o[s1m] == 10 && o[fl] == 0);
    CHECK(o[since] == 0 && o[isnew] == 1 && o[km] == 0 && o[z] == 0 && o[nov] == 1);
    CHECK(fabsf(o[amt] - (float)log1p(10)) < 1e-6f && o[v1] == -2.5f);
    float onehot = 0;
    for (int i = 0; i < 4; i++)
        onehot += o[type0 + i];
    CHECK(onehot == 1.0f);
    double day = (double)(t0 % 86400000) / 86400000.0;
    CHECK(fabsf(o[hs] - (float)sin(2 * M_PI * day)) < 1e-6f &&
          fabsf(o[hc] - (float)cos(2 * M_PI * day)) < 1e-6f);

    /* 2: 30 s later, failed login from London on d1, no amount. */
    ev_init(&v, t0 + 30000, "LOGIN_FAILED", "alice", NAN);
    v.num[F_LAT] = 51.5074;
    v.num[F_LON] = -0.1278;
    v.str[F_DEVICE] = "d1";
    CHECK(features_compute(s, st, &v.e, o) == 0);
    CHECK(o[c1m] == 2 && o[s1m] == 10 && o[fl] == 1 && o[amt] == -1.0f);
    CHECK(o[since] == 30.0f && o[isnew] == 0 && o[nov] == 0);
    /* Paris-London is about 343.5 km; 30 s is raised to the 1-minute floor: 343.5 km/min. */
    CHECK_MSG(fabsf(o[km] - 343.5f) < 1.0f, "km %f", o[km]);
    CHECK_MSG(fabsf(o[kmh] - o[km] * 60.0f) < 1.0f, "kmh %f", o[kmh]);

    /* 3: 50 s after the first: still inside 1m (6 buckets of 10 s: buckets t0..t0+50s). */
    ev_init(&v, t0 + 50000, "TRANSACTION", "alice", 12);
    v.str[F_DEVICE] = "d2";
    CHECK(features_compute(s, st, &v.e, o) == 0);
    CHECK(o[c1m] == 3 && o[s1m] == 22 && o[nov] == 1);
    CHECK(o[z] == 0); /* one amount before it: no spread yet */

    /* 4: 70 s after the first: the first bucket (t0..t0+10s) left the 1m window. */
    ev_init(&v, t0 + 70000, "TRANSACTION", "alice", 14);
    v.str[F_DEVICE] = "d1";
    CHECK(features_compute(s, st, &v.e, o) == 0);
    CHECK_MSG(o[c1m] == 3 && o[s1m] == 26 && o[c1h] == 4, "1m %f sum %f 1h %f", o[c1m], o[s1m],
              o[c1h]);
    /* amounts before: 10, 12 (mean 11, sd sqrt(2)); z of 14 = 3 / sqrt(2) */
    CHECK_MSG(fabsf(o[z] - (float)(3.0 / sqrt(2.0))) < 1e-5f, "z %f", o[z]);
    CHECK(o[nov] == 0); /* d1 is among the last 2 devices (d2, d1) */

    /* 5: late event, 65 s before the newest: its bucket (t0) is out of the 1m window but inside
     * 1h. */
    features_stats_t stats;
    ev_init(&v, t0 + 5000, "LOGIN_FAILED", "alice", NAN);
    CHECK(features_compute(s, st, &v.e, o) == 0);
    features_state_stats(st, &stats);
    CHECK(stats.late_dropped == 1);
    CHECK(o[c1m] == 3 && o[c1h] == 5 && o[fl] == 2 && o[since] == 0 && o[isnew] == 0);

    /* 6: a third device pushes d2 out of the 2-device memory. */
    const char *devs[] = {"d3", "d2"};
    for (int i = 0; i < 2; i++) {
        ev_init(&v, t0 + 80000 + i, "CLICK", "alice", NAN);
        v.str[F_DEVICE] = devs[i];
        CHECK(features_compute(s, st, &v.e, o) == 0);
        CHECK(o[nov] == 1);
    }

    /* 7: two hours later: every window is empty but this event. */
    ev_init(&v, t0 + 2 * 3600000LL, "TRANSACTION", "alice", 1);
    CHECK(features_compute(s, st, &v.e, o) == 0);
    CHECK(o[c1m] == 1 && o[c1h] == 1 && o[s1m] == 1 && o[fl] == 0);

    /* An event without the entity key: its aggregates are zero, the state is untouched. */
    ev_init(&v, t0 + 2 * 3600000LL, "TRANSACTION", NULL, 1);
    CHECK(features_compute(s, st, &v.e, o) == 0);
    CHECK(o[c1h] == 0 && o[isnew] == 0);
    features_state_stats(st, &stats);
    CHECK(stats.entities == 1);

    free(o);
    features_state_free(st);
    features_spec_free(s);
}

/* The store against a plain model: an array in recency order, evicting from its end. */
static void test_store_lru_ttl(void)
{
    char err[256];
    enum { MAX = 64, KEYS = 200, OPS = 200000 };
    entity_store_t *s = entity_store_new(64, MAX, 5000, err, sizeof err);
    uint64_t model[MAX];
    int64_t model_last[MAX];
    int n = 0, mismatches = 0;
    int64_t clock = 0, now = 0;
    uint32_t rnd = 12345;

    CHECK(s != NULL);
    if (!s)
        return;
    for (int op = 0; op < OPS; op++) {
        rnd = rnd * 1103515245u + 12345u;
        uint64_t key = 1 + (rnd >> 8) % KEYS;
        now += (rnd >> 4) % 7 == 0 ? 400 : 3;
        if (now > clock)
            clock = now;
        /* model */
        int at = -1, model_new;
        for (int i = 0; i < n; i++)
            if (model[i] == key)
                at = i;
        if (at >= 0) {
            model_new = clock - model_last[at] > 5000;
            int64_t last = model_new ? now : (model_last[at] > now ? model_last[at] : now);
            memmove(model + 1, model, sizeof(model[0]) * (size_t)at);
            memmove(model_last + 1, model_last, sizeof(model_last[0]) * (size_t)at);
            model[0] = key;
            model_last[0] = last;
        } else {
            /* up to 4 expired from the end, then the least recent if still full */
            for (int k = 0; k < 4 && n > 0 && clock - model_last[n - 1] > 5000; k++)
                n--;
            if (n == MAX)
                n--;
            memmove(model + 1, model, sizeof(model[0]) * (size_t)n);
            memmove(model_last + 1, model_last, sizeof(model_last[0]) * (size_t)n);
            model[0] = key;
            model_last[0] = now;
            n++;
            model_new = 1;
        }
        /* store */
        int is_new;
        entity_header_t *h = entity_store_get(s, key, now, &is_new);
        if (!h) {
            CHECK(h != NULL);
            break;
        }
        if (is_new)
            h->last_ms = now;
        else if (now > h->last_ms)
            h->last_ms = now;
        if (is_new != model_new || entity_store_count(s) != (size_t)n)
            mismatches++;
    }
    CHECK_MSG(mismatches == 0, "%d mismatches against the model", mismatches);
    CHECK(entity_store_count(s) <= MAX);
    CHECK(entity_store_evictions(s) > 0);
    entity_store_free(s);
}

/* A random stream over many users with a small bound and a TTL, so evictions and expiries
 * happen; features computed uninterrupted vs. saved + restored every so often. */
static void run_stream(const features_spec_t *s, features_state_t *st, int from, int to, float *out,
                       int restore_every, int *restores)
{
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    char err[256];
    char user[32], dev[32], merch[32];
    size_t w = features_spec_width(s);

    for (int i = from; i < to; i++) {
        uint32_t r = (uint32_t)i * 2654435761u;
        ev_t v;
        snprintf(user, sizeof user, "u%u", r % 700);
        snprintf(dev, sizeof dev, "d%u", (r >> 10) % 900);
        snprintf(merch, sizeof merch, "m%u", (r >> 20) % 50);
        /* mostly increasing time with some events up to 20 minutes late */
        int64_t t =
            1700000000000LL + (int64_t)i * 1500 - ((r >> 7) % 5 == 0 ? (r >> 3) % 1200000 : 0);
        ev_init(&v, t, (r >> 12) % 10 == 0 ? "LOGIN_FAILED" : "TRANSACTION", user,
                (r >> 5) % 3 ? (double)((r >> 9) % 5000) / 10.0 : NAN);
        v.str[F_DEVICE] = dev;
        v.str[F_MERCHANT] = merch;
        if ((r >> 14) % 2) {
            v.num[F_LAT] = (double)((r >> 3) % 180) - 90.0;
            v.num[F_LON] = (double)((r >> 11) % 360) - 180.0;
        }
        if (features_compute(s, st, &v.e, out + (size_t)i * w) != 0) {
            CHECK(!"features_compute failed");
            break;
        }
        if (restore_every && i % restore_every == restore_every - 1) {
            CHECK(features_state_save(st, &buf, &len, &cap) == 0);
            /* scribble over the state so only what the checkpoint holds survives */
            features_state_clear(st);
            CHECK_MSG(features_state_load(st, buf, len, err, sizeof err) == 0, "%s", err);
            (*restores)++;
        }
    }
    free(buf);
}

static void test_checkpoint_replay(void)
{
    const char *spec_text = "entity user user_id\nentity device device_id\n"
                            "entity merchant merchant_id\n"
                            "count user 1m 1h 24h\nsum user amount 1h\n"
                            "count_if user event_type=LOGIN_FAILED 1h\nsince_last user\n"
                            "geo_velocity user latitude longitude\nzscore user amount\n"
                            "novelty user device_id 3\nnovelty user merchant_id 2\n"
                            "count device 1h\nsince_last device\ncount merchant 1m\n";
    char err[256];
    enum { N = 30000 };
    features_spec_t *s = features_spec_new(spec_text, "cp", fields, F_N, err, sizeof err);
    CHECK_MSG(s != NULL, "%s", err);
    if (!s)
        return;
    size_t w = features_spec_width(s);
    float *a = calloc((size_t)N * w, sizeof(float)), *b = calloc((size_t)N * w, sizeof(float));
    /* bound 300 of 700 users, TTL 30 minutes of event time */
    features_state_t *sa = features_state_new(s, 300, 1800000, err, sizeof err);
    features_state_t *sb = features_state_new(s, 300, 1800000, err, sizeof err);
    int restores = 0;
    CHECK(a && b && sa && sb);
    if (a && b && sa && sb) {
        run_stream(s, sa, 0, N, a, 0, &restores);
        run_stream(s, sb, 0, N, b, 997, &restores);
        CHECK(restores == N / 997);
        size_t diff = 0;
        for (size_t i = 0; i < (size_t)N * w; i++)
            diff += memcmp(&a[i], &b[i], sizeof(float)) != 0;
        CHECK_MSG(diff == 0, "%zu of %zu values differ after restores", diff, (size_t)N * w);
        features_stats_t st;
        features_state_stats(sa, &st);
        CHECK_MSG(st.evictions > 1000 && st.late_dropped > 0, "evictions %llu late %llu",
                  (unsigned long long)st.evictions, (unsigned long long)st.late_dropped);
        CHECK(st.entities <= 3 * 300);

        /* Bad checkpoints are refused and leave the state empty. */
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;
        CHECK(features_state_save(sa, &buf, &len, &cap) == 0);
        CHECK(features_state_load(sb, buf, len - 1, err, sizeof err) != 0);
        CHECK(strstr(err, "truncated") != NULL || strstr(err, "trailing") != NULL);
        features_state_stats(sb, &st);
        CHECK(st.entities == 0);
        buf[0] ^= 0xff;
        CHECK(features_state_load(sb, buf, len, err, sizeof err) != 0);
        buf[0] ^= 0xff;
        features_spec_t *other = features_spec_new("entity user user_id\ncount user 1h\n", "o",
                                                   fields, F_N, err, sizeof err);
        features_state_t *so = other ? features_state_new(other, 300, 0, err, sizeof err) : NULL;
        CHECK(so != NULL);
        if (so) {
            CHECK(features_state_load(so, buf, len, err, sizeof err) != 0);
            CHECK(strstr(err, "another feature spec") != NULL);
        }
        features_state_free(so);
        features_spec_free(other);
        free(buf);
    }
    free(a);
    free(b);
    features_state_free(sa);
    features_state_free(sb);
    features_spec_free(s);
}

/* features_compute_batch overlaps memory accesses across events: its results must be exactly
 * those of features_compute called event by event, chunk sizes and all. */
static void test_batch_equals_single(void)
{
    const char *spec_text = "entity user user_id\nentity device device_id\n"
                            "count user 1m 1h\nsum user amount 1h\nsince_last user\n"
                            "zscore user amount\nnovelty user device_id 2\ncount device 1h\n";
    char err[256], users[64][16], devs[64][16];
    enum { N = 5000 };
    features_spec_t *s = features_spec_new(spec_text, "batch", fields, F_N, err, sizeof err);
    CHECK_MSG(s != NULL, "%s", err);
    if (!s)
        return;
    size_t w = features_spec_width(s);
    features_state_t *sa = features_state_new(s, 50, 0, err, sizeof err);
    features_state_t *sb = features_state_new(s, 50, 0, err, sizeof err);
    ev_t *evs = calloc(N, sizeof(*evs));
    features_event_t *fe = calloc(N, sizeof(*fe));
    float *a = calloc((size_t)N * w, sizeof(float)), *b = calloc((size_t)N * w, sizeof(float));
    float **outs = calloc(N, sizeof(*outs));
    CHECK(sa && sb && evs && fe && a && b && outs);
    if (sa && sb && evs && fe && a && b && outs) {
        for (int i = 0; i < 64; i++) {
            snprintf(users[i], sizeof users[i], "u%d", i);
            snprintf(devs[i], sizeof devs[i], "d%d", i * 7 % 64);
        }
        for (int i = 0; i < N; i++) {
            uint32_t r = (uint32_t)i * 2654435761u;
            ev_init(&evs[i], 1700000000000LL + i * 700, "TRANSACTION", users[(r >> 8) % 64],
                    (double)(r % 1000));
            evs[i].str[F_DEVICE] = (r >> 3) % 5 ? devs[(r >> 16) % 64] : NULL;
            fe[i] = evs[i].e;
            outs[i] = b + (size_t)i * w;
            CHECK(features_compute(s, sa, &fe[i], a + (size_t)i * w) == 0);
        }
        /* chunks of 1, 2, ... so the pipeline's start and end are exercised often */
        for (size_t i = 0, chunk = 1; i < N; i += chunk, chunk = chunk % 9 + 1) {
            size_t n = N - i < chunk ? N - i : chunk;
            CHECK(features_compute_batch(s, sb, fe + i, n, outs + i) == 0);
        }
        CHECK_MSG(memcmp(a, b, (size_t)N * w * sizeof(float)) == 0,
                  "batched vectors differ from single ones");
        features_stats_t st;
        features_state_stats(sb, &st);
        CHECK(st.evictions > 0);
    }
    free(outs);
    free(a);
    free(b);
    free(fe);
    free(evs);
    features_state_free(sa);
    features_state_free(sb);
    features_spec_free(s);
}

static void test_norm(void)
{
    float x[] = {1, 10, 3, 10, 5, 10}; /* column 0: 1,3,5 (mean 3, sd 2); column 1 constant */
    features_norm_t n = {0};
    float out[2];
    CHECK(features_norm_fit(&n, x, 3, 2) == 0);
    CHECK(fabs(n.mean[0] - 3) < 1e-12 && fabs(n.std[0] - 2) < 1e-12 && n.std[1] == 1.0);
    features_norm_apply(&n, x + 4, out);
    CHECK(out[0] == 1.0f && out[1] == 0.0f);
    features_norm_free(&n);
}

int main(void)
{
    test_spec_errors();
    test_default_spec();
    test_aggregates();
    test_store_lru_ttl();
    test_checkpoint_replay();
    test_batch_equals_single();
    test_norm();
    return TEST_DONE();
}
