/* Benchmark of behavior featurisation on one core (make bench): the built-in feature spec over
 * 1,000,000 live users (each with a device and an IP; 20,000 merchants), events drawn uniformly
 * over them so that nearly every lookup misses the CPU caches, as in production.
 *
 * Figures:
 *  - features_events_per_s: events turned into vectors (state updated) per second, after every
 *    entity exists;
 *  - features_bytes_per_entity: resident memory the entity state added, measured from
 *    /proc/self/statm, divided by the live entities (all types);
 *  - features_bytes_per_user: the same for a spec with only the user aggregates, the largest
 *    record, so the bound is checked on the worst entity type alone.
 * Measures; asserts nothing. Usage: bench_features [users] [events] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "behavior_features.h"

/* The user lines of the built-in spec (those whose second word is "user"): the biggest entity
 * record, measured alone. Returns a malloc'ed spec text. */
static char *user_only_spec(void)
{
    const char *p = features_default_spec;
    char *out = malloc(strlen(p) + 1), *o = out;
    while (out && *p) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) + 1 : strlen(p);
        const char *sp = memchr(p, ' ', len);
        if (sp && (size_t)(p + len - sp) > 5 && strncmp(sp, " user", 5) == 0 &&
            (sp[5] == ' ' || sp[5] == '\n')) {
            memcpy(o, p, len);
            o += len;
        }
        p += len;
    }
    if (out)
        *o = '\0';
    return out;
}

static const char *types[] = {"TRANSACTION", "TRANSACTION", "TRANSACTION",
                              "LOGIN",       "CLICK",       "LOGIN_FAILED"};
static const char *countries[] = {"DE", "FR", "US", "GB", "NL", "ES", "IT", "PL"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_bytes(void)
{
    long pages_total, pages_rss;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages_total, &pages_rss) != 2) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    return pages_rss * sysconf(_SC_PAGESIZE);
}

static char **names(const char *prefix, size_t n)
{
    char **v = malloc(n * sizeof(*v));
    char *blob = malloc(n * 16);
    if (!v || !blob) {
        free(v);
        free(blob);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        v[i] = blob + i * 16;
        snprintf(v[i], 16, "%s%u", prefix, (unsigned)(i % 100000000));
    }
    return v;
}

static void free_names(char **v)
{
    if (v) {
        free(v[0]);
        free(v);
    }
}

typedef struct world {
    size_t users, merchants, ips;
    char **merchant;
} world_t;

static uint64_t rng = 88172645463325252ull;
static inline uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Writes prefix + decimal n into out (at least 32 bytes). */
static const char *key_text(char *out, const char *prefix, size_t n)
{
    char digits[24];
    int k = 0;
    size_t len = strlen(prefix);
    memcpy(out, prefix, len);
    do {
        digits[k++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (k)
        out[len++] = digits[--k];
    out[len] = '\0';
    return out;
}

/* Fills one event of user u at time t. The keys are written into small buffers (keys: 96
 * bytes), as the decoder writes them into its record: reading them from a table of a million
 * strings would add a cache miss per key that the daemon does not have. */
static void make_event(const world_t *w, size_t u, int64_t t, double *num, const char **str,
                       char *keys)
{
    char *user = keys, *device = keys + 32, *ip = keys + 64;
    uint64_t r = next_rand();
    const char *type = types[r % 6];
    for (int i = 0; i < FEATURES_BF_COUNT; i++) {
        num[i] = NAN;
        str[i] = NULL;
    }
    str[FEATURES_BF_EVENT_ID] = "e";
    str[FEATURES_BF_EVENT_TYPE] = type;
    str[FEATURES_BF_USER_ID] = key_text(user, "user-", u);
    str[FEATURES_BF_DEVICE_ID] = key_text(device, "dev-", u);
    str[FEATURES_BF_IP] = key_text(ip, "10.0.", u % w->ips);
    str[FEATURES_BF_COUNTRY] = countries[(r >> 8) % 8];
    str[FEATURES_BF_CHANNEL] = (r >> 12) % 2 ? "web" : "mobile";
    if (type[0] == 'T') {
        num[FEATURES_BF_AMOUNT] = (double)((r >> 16) % 100000) / 100.0;
        str[FEATURES_BF_CURRENCY] = "EUR";
        str[FEATURES_BF_MERCHANT_ID] = w->merchant[(r >> 20) % w->merchants];
        str[FEATURES_BF_MERCHANT_CATEGORY] = "5411";
    }
    if ((r >> 40) % 2) {
        num[FEATURES_BF_LATITUDE] = (double)((r >> 41) % 18000) / 100.0 - 90.0;
        num[FEATURES_BF_LONGITUDE] = (double)((r >> 48) % 36000) / 100.0 - 180.0;
    }
    (void)t;
}

/* Creates every user (one event each), then returns the resident bytes that took. */
static long populate(const world_t *w, const features_spec_t *spec, features_state_t *st,
                     float *out, int64_t *t, long rss0)
{
    double num[FEATURES_BF_COUNT];
    const char *str[FEATURES_BF_COUNT];
    char keys[96];
    for (size_t u = 0; u < w->users; u++) {
        features_event_t ev = {*t, num, str};
        make_event(w, u, *t, num, str, keys);
        if (features_compute(spec, st, &ev, out) != 0)
            return -1;
        *t += 3;
    }
    return rss_bytes() - rss0;
}

/* Bytes of this process's memory in transparent huge pages (the entity stores ask for them). */
static long huge_bytes(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

int main(int argc, char **argv)
{
    world_t w = {0};
    char err[512];
    size_t n_events;
    features_spec_t *spec = NULL, *uspec = NULL;
    features_state_t *st = NULL, *ust = NULL;
    features_stats_t stats;
    float *out = NULL;
    int64_t t = 1767225600000LL; /* 2026-01-01 */
    int rc = 1;

    w.users = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    n_events = argc > 2 ? strtoul(argv[2], NULL, 10) : 5000000;
    w.merchants = 20000;
    w.ips = w.users / 4 + 1;
    w.merchant = names("m-", w.merchants);
    spec = features_spec_new(features_default_spec, "built-in spec", features_behavior_fields,
                             FEATURES_BF_COUNT, err, sizeof err);
    char *utext = user_only_spec();
    uspec = utext ? features_spec_new(utext, "user-only spec", features_behavior_fields,
                                      FEATURES_BF_COUNT, err, sizeof err)
                  : NULL;
    free(utext);
    if (!w.merchant || !spec || !uspec) {
        fprintf(stderr, "bench_features: setup failed: %s\n", err);
        goto out;
    }
    out = malloc(features_spec_width(spec) * sizeof(float));

    /* Memory, worst entity type alone: users with the user aggregates only. */
    long rss0 = rss_bytes();
    ust = features_state_new(uspec, (uint32_t)w.users, 0, err, sizeof err);
    if (!ust || !out) {
        fprintf(stderr, "bench_features: %s\n", err);
        goto out;
    }
    long ubytes = populate(&w, uspec, ust, out, &t, rss0);
    features_state_stats(ust, &stats);
    printf("BENCH features_bytes_per_user %.1f bytes (%llu users, record %zu bytes + index)\n",
           (double)ubytes / (double)stats.entities, (unsigned long long)stats.entities,
           features_spec_entity_bytes(uspec, 0) - 8);
    features_state_free(ust);
    ust = NULL;

    /* Memory and speed of the built-in spec. */
    rss0 = rss_bytes();
    st = features_state_new(spec, (uint32_t)w.users, 0, err, sizeof err);
    if (!st) {
        fprintf(stderr, "bench_features: %s\n", err);
        goto out;
    }
    long bytes = populate(&w, spec, st, out, &t, rss0);
    features_state_stats(st, &stats);
    printf("BENCH features_bytes_per_entity %.1f bytes (%llu live entities: users, devices, "
           "IPs, merchants)\n",
           (double)bytes / (double)stats.entities, (unsigned long long)stats.entities);

    /* One event at a time (features_compute), then in chunks of CHUNK events as the daemon's
     * worker hands a batch's events of one partition over (features_compute_batch). */
    enum { CHUNK = 512 };
    static double num[CHUNK][FEATURES_BF_COUNT];
    static const char *str[CHUNK][FEATURES_BF_COUNT];
    static char keys[CHUNK][96];
    static features_event_t evs[CHUNK];
    float *outs[CHUNK];
    double sink = 0, t0 = now_s(), dt, dt1;
    for (size_t i = 0; i < n_events; i++) {
        features_event_t ev = {t, num[0], str[0]};
        make_event(&w, next_rand() % w.users, t, num[0], str[0], keys[0]);
        if (features_compute(spec, st, &ev, out) != 0) {
            fprintf(stderr, "bench_features: out of memory\n");
            goto out;
        }
        sink += out[i % features_spec_width(spec)];
        t += 1;
    }
    dt1 = now_s() - t0;
    float *chunk_out = malloc((size_t)CHUNK * features_spec_width(spec) * sizeof(float));
    if (!chunk_out)
        goto out;
    for (int k = 0; k < CHUNK; k++)
        outs[k] = chunk_out + (size_t)k * features_spec_width(spec);
    t0 = now_s();
    for (size_t i = 0; i < n_events; i += CHUNK) {
        size_t n = n_events - i < CHUNK ? n_events - i : CHUNK;
        for (size_t k = 0; k < n; k++) {
            evs[k] = (features_event_t){t++, num[k], str[k]};
            make_event(&w, next_rand() % w.users, evs[k].time_ms, num[k], str[k], keys[k]);
        }
        if (features_compute_batch(spec, st, evs, n, outs) != 0) {
            fprintf(stderr, "bench_features: out of memory\n");
            free(chunk_out);
            goto out;
        }
        sink += chunk_out[i % features_spec_width(spec)];
    }
    dt = now_s() - t0;
    free(chunk_out);
    printf("BENCH features_events_per_s_single %.0f events/s (features_compute, one event at a "
           "time)\n",
           (double)n_events / dt1);
    features_state_stats(st, &stats);
    features_state_stats(st, &stats);
    printf("BENCH features_events_per_s %.0f events/s (%zu events in chunks of %d, %zu columns, "
           "%llu live entities, one core; %.0f MiB of state in huge pages)\n",
           (double)n_events / dt, n_events, (int)CHUNK, features_spec_width(spec),
           (unsigned long long)stats.entities, (double)huge_bytes() / 1048576.0);
    if (sink == 12345.678)
        printf("#\n"); /* keeps the outputs alive */
    rc = 0;
out:
    features_state_free(st);
    features_state_free(ust);
    features_spec_free(spec);
    features_spec_free(uspec);
    free(out);
    free_names(w.merchant);
    return rc;
}
