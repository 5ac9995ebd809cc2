/* The risk MLP: training learns a known rule, the saved file loads back, the kernels' scores
 * equal the plain-C reference, and files that do not fit a risk model are refused by name. Also
 * the trainer's metrics on hand-computed cases. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model_file.h"
#include "model_risk.h"
#include "test.h"
#include "train.h"

static char dir[] = "/tmp/vigil-test-model-risk.XXXXXX";

#define D 5
static const char *const cols[D] = {"a", "b", "c", "d", "e"};

static uint64_t rng = 42;
static double uniform(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rng >> 11) * 0x1.0p-53;
}

/* Fraud when a + 2b > 3 (with offsets and scales the normalisation must undo); c, d, e noise. */
static void make_data(float *x, uint8_t *y, size_t n)
{
    for (size_t r = 0; r < n; r++) {
        float a = (float)(100 + 10 * (uniform() - 0.5) * 4), b = (float)(uniform() * 3);
        x[r * D + 0] = a;
        x[r * D + 1] = b;
        x[r * D + 2] = (float)(uniform() * 1000);
        x[r * D + 3] = (float)(uniform() - 0.5);
        x[r * D + 4] = 7.0f; /* constant: std 1 */
        y[r] = (a - 100) / 10 + 2 * b > 5.5;
    }
}

static void test_metrics(void)
{
    float s[6] = {0.9f, 0.8f, 0.7f, 0.6f, 0.5f, 0.4f};
    uint8_t y1[6] = {1, 1, 0, 1, 0, 0}, y0[6] = {0};
    /* Positives at ranks 1, 2, 4: 8 of 9 pairs ordered right. */
    CHECK(fabs(train_roc_auc(s, y1, 6) - 8.0 / 9.0) < 1e-12);
    /* AP = (1/1 + 2/2 + 3/4) / 3. */
    CHECK(fabs(train_average_precision(s, y1, 6) - (1 + 1 + 0.75) / 3) < 1e-12);
    CHECK(isnan(train_roc_auc(s, y0, 6)));
    float tie[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    uint8_t yt[4] = {1, 0, 1, 0};
    CHECK(fabs(train_roc_auc(tie, yt, 4) - 0.5) < 1e-12);
    int32_t pred[6] = {0, 1, 2, 2, 1, 0}, lab[6] = {0, 1, 2, 1, 1, 2};
    double acc, f1;
    train_class_metrics(pred, lab, 6, 3, &acc, &f1);
    CHECK(fabs(acc - 4.0 / 6.0) < 1e-12);
    /* F1: class 0 tp1 fp1 fn0 = 2/3; class 1 tp2 fp0 fn1 = 4/5; class 2 tp1 fp1 fn1 = 1/2. */
    CHECK(fabs(f1 - (2.0 / 3 + 0.8 + 0.5) / 3) < 1e-12);
}

static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static void expect_load_refused(kernels_backend_t *be, const char *path, const char *want)
{
    char err[512] = "";
    model_risk_t *m = model_risk_load(be, path, err, sizeof err);
    CHECK_MSG(m == NULL, "%s loaded", path);
    CHECK_MSG(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    model_risk_free(m);
}

/* A file with risk metadata whose vigil.layers and tensors may disagree. */
static void write_variant(const char *path, const char *layers, const char *arch, int drop_bias,
                          int extra)
{
    static float w0[D * 3], b0[3], w1[3], b1[1], junk[2];
    const char *keys[] = {"vigil.arch",
                          "vigil.version",
                          "vigil.layers",
                          "vigil.activation",
                          "vigil.feature_spec",
                          "vigil.feature_spec_hash",
                          "vigil.feature_columns",
                          "vigil.norm_mean",
                          "vigil.norm_std",
                          "vigil.norm_clip"};
    const char *vals[] = {arch,
                          "v",
                          layers,
                          "relu",
                          "spec",
                          "0123456789abcdef",
                          "[\"a\",\"b\",\"c\",\"d\",\"e\"]",
                          "[0,0,0,0,0]",
                          "[1,1,1,1,1]",
                          "10"};
    model_file_tensor_out_t t[5] = {{"layers.0.weight", w0, 2, {D, 3}},
                                    {"layers.1.weight", w1, 2, {3, 1}},
                                    {"layers.1.bias", b1, 1, {1}},
                                    {"layers.0.bias", b0, 1, {3}},
                                    {"junk", junk, 1, {2}}};
    char err[512];
    size_t nt = drop_bias ? 3 : extra ? 5 : 4;
    CHECK_MSG(model_file_write(path, keys, vals, 10, t, nt, NULL, err, sizeof err) == 0, "%s", err);
}

static void test_refusals(kernels_backend_t *be)
{
    char p[512];
    path_of(p, sizeof p, "variant.safetensors");
    write_variant(p, "[5, 3, 1]", "risk_mlp", 0, 0);
    char err[512];
    model_risk_t *m = model_risk_load(be, p, err, sizeof err);
    CHECK_MSG(m != NULL, "the consistent variant: %s", err);
    model_risk_free(m);
    write_variant(p, "[5, 4, 1]", "risk_mlp", 0, 0);
    expect_load_refused(be, p, "tensor layers.0.weight has shape [5, 3], expected [5, 4]");
    write_variant(p, "[5, 3, 1]", "risk_mlp", 1, 0);
    expect_load_refused(be, p, "tensor layers.0.bias is missing");
    write_variant(p, "[5, 3, 1]", "risk_mlp", 0, 1);
    expect_load_refused(be, p, "unexpected tensor junk");
    write_variant(p, "[5, 3, 1]", "news_heads", 0, 0);
    expect_load_refused(be, p, "not a risk model");
    write_variant(p, "[5, 3, 2]", "risk_mlp", 0, 0);
    expect_load_refused(be, p, "vigil.layers must list");
    write_variant(p, "[6, 3, 1]", "risk_mlp", 0, 0);
    expect_load_refused(be, p, "vigil.norm_mean must be an array of 6 finite numbers");
}

/* The logit of w on one raw row, in double (the reference's forward pass without the sigmoid). */
static double logit_of(const model_risk_weights_t *w, const double *x)
{
    double a[64], b[64];
    for (size_t i = 0; i < w->dims[0]; i++)
        a[i] = (x[i] - w->mean[i]) / w->std[i];
    for (size_t l = 0; l < w->n_layers; l++) {
        for (size_t j = 0; j < w->dims[l + 1]; j++) {
            double s = w->b[l][j];
            for (size_t i = 0; i < w->dims[l]; i++)
                s += a[i] * w->w[l][i * w->dims[l + 1] + j];
            b[j] = l + 1 == w->n_layers || s > 0 ? s : 0;
        }
        memcpy(a, b, w->dims[l + 1] * sizeof *a);
    }
    return a[0];
}

/* Input x gradient: the kernels agree with the reference, the reference with finite differences
 * of the logit, and on rows the model calls fraud the columns of the rule (a, b) come first. */
static void test_explain(model_risk_t *m, const model_risk_weights_t *w, const float *x, size_t n,
                         const float *scores)
{
    float *attr = malloc(n * D * sizeof *attr), *ref = malloc(n * D * sizeof *ref);
    char err[512];
    CHECK(attr && ref);
    if (!attr || !ref)
        goto out;
    CHECK_MSG(model_risk_explain(m, x, n, attr, err, sizeof err) == 0, "%s", err);
    model_risk_explain_ref(w, x, n, ref);
    double mx = 0;
    for (size_t i = 0; i < n * D; i++)
        mx = fmax(mx, fabs((double)attr[i] - ref[i]) / (1 + fabs((double)ref[i])));
    CHECK_MSG(mx < 1e-4, "kernels vs reference attribution: max difference %.3g", mx);

    size_t bad = 0, fraud = 0, top_ab = 0;
    for (size_t r = 0; r < n; r++) {
        double xr[D];
        for (size_t i = 0; i < D; i++)
            xr[i] = x[r * D + i];
        for (size_t i = 0; i < D; i++) {
            const double h = 1e-4;
            double z = (xr[i] - w->mean[i]) / w->std[i], keep = xr[i];
            xr[i] = keep + h * w->std[i];
            double up = logit_of(w, xr);
            xr[i] = keep - h * w->std[i];
            double down = logit_of(w, xr);
            xr[i] = keep;
            double mid = logit_of(w, xr);
            /* One side or the other: at a hidden unit's kink the gradient is one of the two. */
            double fd_up = z * (up - mid) / h, fd_down = z * (mid - down) / h, a = ref[r * D + i];
            if (fabs(z) < MODEL_RISK_CLIP && fabs(fd_up - a) > 1e-3 * (1 + fabs(a)) &&
                fabs(fd_down - a) > 1e-3 * (1 + fabs(a))) {
                if (bad++ < 5)
                    fprintf(stderr, "row %zu column %zu: attribution %.6g, differences %.6g %.6g\n",
                            r, i, a, fd_down, fd_up);
            }
        }
        CHECK(ref[r * D + 4] == 0.0f); /* a constant column sits at its mean: no part in it */
        if (scores[r] > 0.9f) {
            size_t top = 0;
            for (size_t i = 1; i < D; i++)
                if (fabsf(ref[r * D + i]) > fabsf(ref[r * D + top]))
                    top = i;
            fraud++;
            top_ab += top <= 1;
        }
    }
    CHECK_MSG(bad == 0, "%zu attributions disagree with finite differences", bad);
    CHECK_MSG(fraud > 10 && top_ab == fraud, "%zu of %zu fraud rows led by a or b", top_ab, fraud);
    CHECK(model_risk_explain(m, x, 0, attr, err, sizeof err) == 0);
out:
    free(attr);
    free(ref);
}

int main(void)
{
    char err[512], path[512], version[128], cmd[600];
    const size_t n = 20000, n_test = 5000;
    float *x = malloc((n + n_test) * D * sizeof *x), *s_ref = malloc(n_test * sizeof *s_ref);
    float *s_be = malloc(n_test * sizeof *s_be);
    uint8_t *y = malloc(n + n_test);
    model_risk_weights_t w;
    size_t dims[4] = {D, 16, 8, 1};

    if (!mkdtemp(dir) || !x || !y || !s_ref || !s_be) {
        perror("setup");
        return 1;
    }
    test_metrics();
    make_data(x, y, n + n_test);
    CHECK(model_risk_weights_alloc(&w, dims, 3) == 0);
    train_options_t o = {.epochs = 8, .batch = 128, .lr = 3e-3f, .weight_decay = 1e-4f, .seed = 1};
    kernels_backend_t *be = kernels_backend_new("cpu", 1, err, sizeof err);
    CHECK_MSG(be != NULL, "%s", err);
    if (!be)
        return TEST_DONE();
    CHECK_MSG(train_mlp_fit(be, &w, x, y, n, &o, NULL, err, sizeof err) == 0, "%s", err);
    CHECK(fabs(w.mean[0] - 100) < 1 && fabs(w.std[4] - 1) < 1e-12);
    model_risk_score_ref(&w, x + n * D, n_test, s_ref);
    double auc = train_roc_auc(s_ref, y + n, n_test);
    fprintf(stderr, "held-out AUC %.4f\n", auc);
    CHECK_MSG(auc > 0.98, "held-out AUC %.4f", auc);

    path_of(path, sizeof path, "risk.safetensors");
    model_risk_info_t info = {NULL, "spec text", "0123456789abcdef", cols, "{\"rows\": 20000}"};
    CHECK_MSG(model_risk_save(path, &w, &info, version, sizeof version, err, sizeof err) == 0, "%s",
              err);
    CHECK(strncmp(version, "risk-", 5) == 0 && strlen(version) == 17);

    model_risk_t *m = model_risk_load(be, path, err, sizeof err);
    CHECK_MSG(m != NULL, "%s", err);
    if (m) {
        CHECK_STR(model_risk_version(m), version);
        CHECK_STR(model_risk_spec_hash(m), "0123456789abcdef");
        CHECK(model_risk_width(m) == D);
        CHECK(model_risk_score(m, x + n * D, n_test, s_be, err, sizeof err) == 0);
        double mx = 0;
        for (size_t i = 0; i < n_test; i++)
            mx = fmax(mx, fabs((double)s_be[i] - s_ref[i]));
        CHECK_MSG(mx < 1e-5, "kernels vs reference: max difference %.3g", mx);
        /* Scoring in small batches gives the same as one big one. */
        CHECK(model_risk_score(m, x + n * D, 3, s_be, err, sizeof err) == 0);
        CHECK(fabs(s_be[0] - s_ref[0]) < 1e-5 && fabs(s_be[2] - s_ref[2]) < 1e-5);
        test_explain(m, &w, x + n * D, 500, s_ref);
        model_risk_free(m);
    }
    test_refusals(be);
    kernels_backend_free(be);
    model_risk_weights_free(&w);
    free(x);
    free(y);
    free(s_ref);
    free(s_be);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return TEST_DONE();
}
