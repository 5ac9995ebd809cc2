/* The BERT encoder against sentence-transformers: the committed fixture
 * (tests/fixtures/encoder/, made by scripts/make_encoder_fixture.py on PyTorch) holds sentences
 * and the embeddings the reference gave them; ours must agree within cosine >= 0.9999 and max
 * absolute error <= 1e-4 for every sentence. Also: a config that disagrees with the weights is
 * refused, naming the problem.
 *
 * Needs the model files (scripts/fetch_model.sh). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels.h"
#include "model_bert.h"
#include "test.h"

#define MAX_SENTENCES 1000

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc((size_t)n + 1);
        if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
            buf[n] = '\0';
            *len = (size_t)n;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static size_t steps_taken;

static void count_step(void *ctx)
{
    (void)ctx;
    steps_taken++;
}

/* The first n texts with a yield hook against want, their mean-pooled states without one: the
 * same to rounding, in steps (per layer and block of at most 64 tokens, one after the query, key
 * and value projection and three in what follows attention; and one per sequence's attention). */
static void test_steps(model_bert_t *m, const char **texts, const size_t *lens, size_t n,
                       const float *want, size_t h)
{
    char err[512];
    float *got = malloc(n * h * sizeof *got);
    CHECK(got != NULL);
    if (!got)
        return;
    steps_taken = 0;
    model_bert_set_yield(m, count_step, NULL);
    CHECK_MSG(model_bert_encode(m, texts, lens, n, 0, got, err, sizeof err) == 0, "%s", err);
    model_bert_set_yield(m, NULL, NULL);
    size_t layers = (size_t)model_bert_config(m)->layers, least = layers * (n + 4);
    CHECK_MSG(steps_taken >= least,
              "%zu steps for %zu texts over %zu layers, at least %zu expected", steps_taken, n,
              layers, least);
    double worst = 0;
    for (size_t i = 0; i < n * h; i++)
        if (fabs((double)got[i] - (double)want[i]) > worst)
            worst = fabs((double)got[i] - (double)want[i]);
    fprintf(stderr, "in steps: %zu texts, %zu steps, max abs difference %.3g\n", n, steps_taken,
            worst);
    CHECK_MSG(worst <= 1e-5, "pooled states in steps differ by up to %.3g", worst);
    free(got);
}

/* Compares n embeddings of width h; returns the worst cosine and max abs error seen. */
static void compare(const float *got, const float *want, size_t n, size_t h, double *worst_cos,
                    double *worst_abs, size_t *worst_at)
{
    *worst_cos = 1.0;
    *worst_abs = 0.0;
    *worst_at = 0;
    for (size_t i = 0; i < n; i++) {
        double dot = 0, na = 0, nb = 0, mx = 0;
        for (size_t j = 0; j < h; j++) {
            double a = got[i * h + j], b = want[i * h + j];
            dot += a * b;
            na += a * a;
            nb += b * b;
            if (fabs(a - b) > mx)
                mx = fabs(a - b);
        }
        double c = dot / (sqrt(na) * sqrt(nb));
        if (c < *worst_cos || mx > *worst_abs)
            *worst_at = i;
        if (c < *worst_cos)
            *worst_cos = c;
        if (mx > *worst_abs)
            *worst_abs = mx;
    }
}

static void test_parity(model_bert_t *m, const char *src)
{
    char path[4096], err[512];
    size_t len, n = 0, h = model_bert_dim(m), flen, plen;
    const char *texts[MAX_SENTENCES];
    size_t lens[MAX_SENTENCES];

    snprintf(path, sizeof path, "%s/tests/fixtures/encoder/sentences.txt", src);
    char *text = read_all(path, &len);
    CHECK_MSG(text != NULL, "%s missing", path);
    snprintf(path, sizeof path, "%s/tests/fixtures/encoder/embeddings.f32", src);
    float *want = (float *)read_all(path, &flen);
    snprintf(path, sizeof path, "%s/tests/fixtures/encoder/pooled.f32", src);
    float *want_pooled = (float *)read_all(path, &plen);
    if (!text || !want || !want_pooled) {
        CHECK_MSG(0, "fixture files missing under %s/tests/fixtures/encoder", src);
        goto out;
    }
    for (char *p = text; *p && n < MAX_SENTENCES;) {
        char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t)(nl - p) : strlen(p);
        texts[n] = p;
        lens[n++] = l;
        p += l + (nl != NULL);
    }
    CHECK_MSG(n >= 200, "%zu fixture sentences", n);
    CHECK_MSG(flen == n * h * sizeof(float), "embeddings.f32 has %zu bytes for %zu sentences", flen,
              n);
    CHECK(plen == flen);
    if (flen != n * h * sizeof(float) || plen != flen)
        goto out;

    float *got = malloc(n * h * sizeof *got);
    CHECK(got != NULL);
    if (!got)
        goto out;
    double cos, mx;
    size_t at;
    CHECK_MSG(model_bert_encode(m, texts, lens, n, 1, got, err, sizeof err) == 0, "%s", err);
    compare(got, want, n, h, &cos, &mx, &at);
    fprintf(stderr, "parity: %zu sentences, worst cosine %.9f, max abs error %.3g (sentence %zu)\n",
            n, cos, mx, at);
    CHECK_MSG(cos >= 0.9999, "worst cosine %.9f at sentence %zu", cos, at);
    CHECK_MSG(mx <= 1e-4, "max abs error %.3g at sentence %zu", mx, at);

    CHECK_MSG(model_bert_encode(m, texts, lens, n, 0, got, err, sizeof err) == 0, "%s", err);
    compare(got, want_pooled, n, h, &cos, &mx, &at);
    fprintf(stderr, "pooled (before normalisation): worst cosine %.9f, max abs error %.3g\n", cos,
            mx);
    CHECK_MSG(cos >= 0.9999 && mx <= 1e-4, "pooled: cosine %.9f, abs %.3g at %zu", cos, mx, at);

    /* With a yield hook the forward pass goes in steps, and its results stay the same (got holds
     * the pooled states now). */
    test_steps(m, texts, lens, n < 64 ? n : 64, got, h);

    /* One sentence alone (no padding) equals the same sentence inside the big batch. */
    float one[4096];
    CHECK(h <= 4096);
    for (size_t i = 0; i < n; i += 37) {
        CHECK(model_bert_encode(m, &texts[i], &lens[i], 1, 1, one, err, sizeof err) == 0);
        compare(one, want + i * h, 1, h, &cos, &mx, &at);
        CHECK_MSG(cos >= 0.9999 && mx <= 1e-4, "sentence %zu alone: cosine %.9f abs %.3g", i, cos,
                  mx);
    }
    free(got);
out:
    free(text);
    free(want);
    free(want_pooled);
}

/* A folder with the real weights and vocab but config.json rewritten by sed expression edit. */
static void expect_config_refused(kernels_backend_t *be, const char *model_dir, const char *edit,
                                  const char *want)
{
    char tmp[] = "/tmp/vigil-test-bert.XXXXXX", cmd[8192], err[512] = "";
    if (!mkdtemp(tmp)) {
        CHECK(0);
        return;
    }
    snprintf(cmd, sizeof cmd,
             "ln -s '%s/model.safetensors' '%s/' && ln -s '%s/vocab.txt' '%s/' && "
             "sed -e '%s' '%s/config.json' > '%s/config.json'",
             model_dir, tmp, model_dir, tmp, edit, model_dir, tmp);
    CHECK(system(cmd) == 0);
    model_bert_t *m = model_bert_load(be, tmp, 128, err, sizeof err);
    CHECK_MSG(m == NULL, "config edit %s accepted", edit);
    CHECK_MSG(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    model_bert_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
}

int main(int argc, char **argv)
{
    const char *backend = argc > 1 ? argv[1] : "cpu";
    const char *src = getenv("VIGIL_SOURCE_DIR");
    const char *model_env = getenv("VIGIL_MODEL_DIR");
    char model_dir[4096], path[4200], err[512];

    if (!src)
        src = ".";
    if (model_env)
        snprintf(model_dir, sizeof model_dir, "%s", model_env);
    else
        snprintf(model_dir, sizeof model_dir, "%s/.cache/models/all-MiniLM-L6-v2", src);
    snprintf(path, sizeof path, "%s/model.safetensors", model_dir);
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "test_model_bert: %s missing: run scripts/fetch_model.sh first\n", path);
        return 1;
    }
    if (strcmp(backend, "cpu") != 0 && !kernels_backend_available(backend, err, sizeof err)) {
        fprintf(stderr, "test_model_bert: skipped: %s\n", err);
        return 77;
    }
    kernels_backend_t *be = kernels_backend_new(backend, 2, err, sizeof err);
    CHECK_MSG(be != NULL, "%s", err);
    if (!be)
        return TEST_DONE();
    model_bert_t *m = model_bert_load(be, model_dir, 256, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (m) {
        CHECK(model_bert_dim(m) == 384);
        CHECK(strlen(model_bert_weights_sha256(m)) == 64);
        test_parity(m, src);
        model_bert_free(m);
    }
    expect_config_refused(be, model_dir, "s/\"num_hidden_layers\": 6/\"num_hidden_layers\": 7/",
                          "tensor encoder.layer.6.attention.self.query.weight is missing");
    expect_config_refused(be, model_dir, "s/\"num_hidden_layers\": 6/\"num_hidden_layers\": 5/",
                          "has more layers than config.json's 5");
    expect_config_refused(be, model_dir, "s/\"hidden_size\": 384/\"hidden_size\": 768/",
                          "has shape [30522, 384], expected [30522, 768]");
    expect_config_refused(be, model_dir, "s/\"hidden_act\": \"gelu\"/\"hidden_act\": \"relu\"/",
                          "hidden_act must be \"gelu\"");
    expect_config_refused(be, model_dir, "s/\"vocab_size\": 30522/\"vocab_size\": 30000/",
                          "30522 tokens, but config.json says vocab_size 30000");
    model_bert_t *bad = model_bert_load(be, "/nonexistent", 128, err, sizeof err);
    CHECK(bad == NULL && strstr(err, "/nonexistent/config.json: cannot open") != NULL);
    kernels_backend_free(be);
    return TEST_DONE();
}
