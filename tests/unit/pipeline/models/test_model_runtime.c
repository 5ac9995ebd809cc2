/* The model runtime: every score carries the version of the model that made it, and is exactly
 * what that whole model gives (never a mix of two, never a half-loaded one), while other threads
 * swap models back and forth; refused files leave the running model scoring. Risk jobs are
 * answered while a long news job runs (a server per model), and the news server runs at the
 * lower priority it was given (nice + 10, or SCHED_IDLE). */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_news.h"
#include "model_risk.h"
#include "model_runtime.h"
#include "test.h"

#define D 6
#define N 64
#define ROUNDS 300

static char dir[] = "/tmp/vigil-test-runtime.XXXXXX";
static char path_a[512], path_b[512], path_bad[512], path_spec[512];
static char ver_a[128], ver_b[128];
static float x[N * D], want_a[N], want_b[N];
static model_runtime_t *rt;

/* A small MLP whose weights depend on seed, saved to path; its reference scores of x into want. */
static void make_model(const char *path, unsigned seed, const char *spec_hash, char *version,
                       float *want)
{
    static const char *const cols[D] = {"a", "b", "c", "d", "e", "f"};
    size_t dims[3] = {D, 8, 1};
    model_risk_weights_t w;
    char err[512];
    CHECK(model_risk_weights_alloc(&w, dims, 2) == 0);
    srand(seed);
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < dims[l] * dims[l + 1]; i++)
            w.w[l][i] = (float)rand() / RAND_MAX - 0.5f;
    model_risk_info_t info = {NULL, "spec", spec_hash, cols, NULL};
    CHECK_MSG(model_risk_save(path, &w, &info, version, 128, err, sizeof err) == 0, "%s", err);
    if (want)
        model_risk_score_ref(&w, x, N, want);
    model_risk_weights_free(&w);
}

/* Scores x over and over; every answer must be model A's or model B's, whole. */
static void *scorer(void *arg)
{
    int *bad = arg;
    float s[N];
    char err[512];
    for (int r = 0; r < ROUNDS; r++) {
        const char *v = NULL;
        if (model_runtime_risk_score(rt, x, N, D, s, &v, err, sizeof err) != 0 || !v) {
            (*bad)++;
            continue;
        }
        const float *want = strcmp(v, ver_a) == 0 ? want_a : strcmp(v, ver_b) == 0 ? want_b : NULL;
        if (!want) {
            (*bad)++;
            continue;
        }
        for (int i = 0; i < N; i++)
            if (fabsf(s[i] - want[i]) > 1e-5f) {
                (*bad)++;
                break;
            }
    }
    return NULL;
}

typedef struct news_job {
    const char **texts;
    size_t *lens;
    size_t n;
    int rc;
} news_job_t;

static void *news_scorer(void *arg)
{
    news_job_t *j = arg;
    model_runtime_news_t out = {0};
    char err[512];
    j->rc = model_runtime_news_score(rt, j->texts, j->lens, j->n, &out, err, sizeof err);
    model_runtime_news_clear(&out);
    return NULL;
}

/* Field `field` (1-based, as proc(5) counts them; 3 or more) of /proc/self/task/<tid>/stat for
 * every thread: how many threads have it equal to want, and the most and least value seen. */
static int threads_with(int field, int want, int *lo, int *hi)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    *lo = 1 << 30;
    *hi = -(1 << 30);
    while (d && (e = readdir(d))) {
        char path[300], buf[1024];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[len] = '\0';
        char *p = strrchr(buf, ')'); /* the name may hold spaces; the fields after it do not */
        int at = 2, v = 0;
        for (; p && *p && at < field; p++)
            if (*p == ' ')
                at++;
        if (p && sscanf(p, "%d", &v) == 1) {
            n += v == want;
            *lo = v < *lo ? v : *lo;
            *hi = v > *hi ? v : *hi;
        }
    }
    if (d)
        closedir(d);
    return n;
}

#define STAT_NICE 19
#define STAT_POLICY 41
#define POLICY_IDLE 5 /* SCHED_IDLE */

/* Risk jobs while the news server works on a long job: all answered before it ends. */
static void test_servers_apart(const char *risk_path)
{
    char err[512], heads[600];
    const char *src = getenv("VIGIL_SOURCE_DIR");
    snprintf(heads, sizeof heads, "%s/models/news-heads-ngram.safetensors", src ? src : ".");
    model_runtime_options_t o = {.backend = "cpu",
                                 .threads = 1,
                                 .risk_path = risk_path,
                                 .spec_hash = "00000000000000aa",
                                 .max_batch = 16,
                                 .news_path = heads,
                                 .news_priority = MODEL_RUNTIME_PRIORITY_LOW};
    int lo, hi;
    /* Low: the news server is 10 nicer than the other threads. */
    rt = model_runtime_new(&o, err, sizeof err);
    CHECK_MSG(rt != NULL, "%s", err);
    if (!rt)
        return;
    CHECK_STR(model_runtime_news_pace(rt), "none"); /* the n-gram encoder is not paced */
    threads_with(STAT_NICE, 0, &lo, &hi);
    /* 10 more, up to the kernel's ceiling of 19 (a test run under `nice` starts at 10). */
    CHECK_MSG(hi == (lo + 10 < 19 ? lo + 10 : 19),
              "thread nice values from %d to %d; the news server's should be 10 more (at most 19)",
              lo, hi);
    model_runtime_free(rt);
    /* Idle (vigild's default): the news server alone is SCHED_IDLE. */
    o.news_priority = MODEL_RUNTIME_PRIORITY_IDLE;
    rt = model_runtime_new(&o, err, sizeof err);
    CHECK_MSG(rt != NULL, "%s", err);
    if (!rt)
        return;
    CHECK(threads_with(STAT_POLICY, POLICY_IDLE, &lo, &hi) == 1);

    /* Articles of 4 KB each, enough for the n-gram encoder to take seconds over them. */
    enum { ARTICLES = 3000, LEN = 4000 };
    static char text[LEN + 1];
    static const char *texts[ARTICLES];
    static size_t lens[ARTICLES];
    for (int i = 0; i < LEN; i++)
        text[i] = "abcdefghij klmnopqrst uvwxyz "[(i * 7) % 29];
    for (int i = 0; i < ARTICLES; i++) {
        texts[i] = text;
        lens[i] = LEN;
    }
    news_job_t job = {texts, lens, ARTICLES, -2};
    pthread_t t;
    model_runtime_stats_t st;
    CHECK(pthread_create(&t, NULL, news_scorer, &job) == 0);
    do /* until the news server has taken the job */
        model_runtime_stats(rt, MODEL_RUNTIME_NEWS, &st);
    while (!st.busy && st.jobs == 0);
    float s[N];
    const char *v;
    int answered = 0;
    for (int r = 0; r < 50; r++)
        answered += model_runtime_risk_score(rt, x, N, D, s, &v, err, sizeof err) == 0;
    model_runtime_stats(rt, MODEL_RUNTIME_NEWS, &st);
    CHECK(answered == 50);
    CHECK_MSG(st.busy && st.jobs == 0,
              "the news job ended before the 50 risk jobs did (busy %d, "
              "jobs %llu): they waited for it, or it was too short to tell",
              st.busy, (unsigned long long)st.jobs);
    pthread_join(t, NULL);
    CHECK(job.rc == 0);
    model_runtime_stats(rt, MODEL_RUNTIME_RISK, &st);
    CHECK(st.jobs == 50);
    model_runtime_free(rt);
    rt = NULL;
}

int main(void)
{
    char err[512], cmd[600];
    const char *v;
    float s[N];

    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    for (int i = 0; i < N * D; i++)
        x[i] = (float)(i % 17) / 5.0f - 1.5f;
    snprintf(path_a, sizeof path_a, "%s/a.safetensors", dir);
    snprintf(path_b, sizeof path_b, "%s/b.safetensors", dir);
    snprintf(path_bad, sizeof path_bad, "%s/bad.safetensors", dir);
    snprintf(path_spec, sizeof path_spec, "%s/spec.safetensors", dir);
    make_model(path_a, 1, "00000000000000aa", ver_a, want_a);
    make_model(path_b, 2, "00000000000000aa", ver_b, want_b);
    make_model(path_spec, 3, "00000000000000bb", cmd, NULL);
    CHECK(strcmp(ver_a, ver_b) != 0);
    FILE *f = fopen(path_bad, "wb");
    CHECK(f && fputs("not a model", f) >= 0);
    if (f)
        fclose(f);

    /* A runtime told to start with a bad file does not start. */
    model_runtime_options_t o = {.backend = "cpu",
                                 .threads = 1,
                                 .risk_path = path_bad,
                                 .spec_hash = "00000000000000aa",
                                 .max_batch = 16};
    CHECK(model_runtime_new(&o, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "bad.safetensors") != NULL, "%s", err);
    /* Nor with a model for another feature spec. */
    o.risk_path = path_spec;
    CHECK(model_runtime_new(&o, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "feature spec 00000000000000bb") != NULL, "%s", err);

    o.risk_path = path_a;
    rt = model_runtime_new(&o, err, sizeof err);
    CHECK_MSG(rt != NULL, "%s", err);
    if (!rt)
        return TEST_DONE();
    CHECK_STR(model_runtime_risk_version(rt), ver_a);
    CHECK(model_runtime_news_version(rt) == NULL);
    /* N rows through micro-batches of 16: the same as the reference. */
    CHECK(model_runtime_risk_score(rt, x, N, D, s, &v, err, sizeof err) == 0);
    CHECK_STR(v, ver_a);
    for (int i = 0; i < N; i++)
        CHECK(fabsf(s[i] - want_a[i]) < 1e-5f);
    CHECK(model_runtime_risk_score(rt, x, N, D - 1, s, &v, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "5 columns, the model 6") != NULL, "%s", err);
    /* No news heads: articles are left unscored, not failed. */
    model_runtime_news_t nr = {0};
    const char *text = "x";
    size_t len = 1;
    CHECK(model_runtime_news_score(rt, &text, &len, 1, &nr, err, sizeof err) == 1);

    /* Refused reloads keep A. */
    CHECK(model_runtime_risk_reload(rt, path_bad, &v, err, sizeof err) == -1);
    CHECK(model_runtime_risk_reload(rt, path_spec, &v, err, sizeof err) == -1);
    CHECK_STR(model_runtime_risk_version(rt), ver_a);
    CHECK(model_runtime_risk_score(rt, x, N, D, s, &v, err, sizeof err) == 0);
    CHECK_STR(v, ver_a);

    /* Two scorers while the main thread swaps A and B back and forth, with refused files in
     * between. */
    pthread_t t[2];
    int bad[2] = {0, 0}, swaps = 0;
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, scorer, &bad[i]) == 0);
    for (int r = 0; r < 100; r++) {
        const char *p = r % 3 == 2 ? path_bad : r % 2 ? path_b : path_a;
        int rc = model_runtime_risk_reload(rt, p, &v, err, sizeof err);
        swaps += rc == 0;
        CHECK(rc == (p == path_bad ? -1 : 0));
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK_MSG(bad[0] == 0 && bad[1] == 0, "%d and %d answers not from one whole model", bad[0],
              bad[1]);
    CHECK(swaps > 50);
    model_runtime_free(rt);
    test_servers_apart(path_a);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return TEST_DONE();
}
