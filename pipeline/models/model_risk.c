/* The risk MLP: file layout, loading with every check, scoring on the kernels, and a plain-C
 * reference (see model_risk.h). */
#include "model_risk.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "json.h"
#include "model_file.h"

struct model_risk {
    kernels_backend_t *be; /* borrowed */
    char version[128];
    char spec_hash[32];
    size_t n_layers;
    size_t dims[MODEL_RISK_HIDDEN_MAX + 2];
    float *w[MODEL_RISK_HIDDEN_MAX + 1]; /* backend (dims[l], dims[l + 1]) */
    float *b[MODEL_RISK_HIDDEN_MAX + 1]; /* backend (dims[l + 1]) */
    float *mean, *inv_std;               /* host (dims[0]) */
    /* Work area for cap rows: normalised input on the host, activations on the backend. */
    size_t cap;
    float *xn;                             /* host (cap, dims[0]) */
    float *act[MODEL_RISK_HIDDEN_MAX + 2]; /* backend (cap, dims[l]) */
    /* model_risk_explain's, for explain_cap rows: the gradient flowing back, two buffers of the
     * widest layer taking turns, and the output gradient (ones) on the host. */
    size_t explain_cap, dmax;
    float *grad[2]; /* backend (explain_cap, dmax) */
    float *ones;    /* host (explain_cap) */
};

int model_risk_weights_alloc(model_risk_weights_t *w, const size_t *dims, size_t n_layers)
{
    memset(w, 0, sizeof *w);
    if (n_layers < 1 || n_layers > MODEL_RISK_HIDDEN_MAX + 1 || dims[n_layers] != 1)
        return -1;
    w->n_layers = n_layers;
    for (size_t l = 0; l <= n_layers; l++) {
        if (dims[l] < 1 || dims[l] > 65536)
            return -1;
        w->dims[l] = dims[l];
    }
    for (size_t l = 0; l < n_layers; l++) {
        w->w[l] = calloc(dims[l] * dims[l + 1], sizeof(float));
        w->b[l] = calloc(dims[l + 1], sizeof(float));
        if (!w->w[l] || !w->b[l])
            goto oom;
    }
    w->mean = calloc(dims[0], sizeof(double));
    w->std = calloc(dims[0], sizeof(double));
    if (!w->mean || !w->std)
        goto oom;
    for (size_t i = 0; i < dims[0]; i++)
        w->std[i] = 1.0;
    return 0;
oom:
    model_risk_weights_free(w);
    return -1;
}

void model_risk_weights_free(model_risk_weights_t *w)
{
    for (size_t l = 0; l < MODEL_RISK_HIDDEN_MAX + 1; l++) {
        free(w->w[l]);
        free(w->b[l]);
    }
    free(w->mean);
    free(w->std);
    memset(w, 0, sizeof *w);
}

/* ---- writing ---- */

/* A JSON array of n numbers (%.17g: doubles round-trip exactly), malloc'ed. */
static char *risk_json_numbers(const double *v, const size_t *sv, size_t n)
{
    size_t cap = 32 + n * 26, at = 0;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    at += (size_t)snprintf(s + at, cap - at, "[");
    for (size_t i = 0; i < n; i++) {
        if (v)
            at += (size_t)snprintf(s + at, cap - at, "%s%.17g", i ? ", " : "", v[i]);
        else
            at += (size_t)snprintf(s + at, cap - at, "%s%zu", i ? ", " : "", sv[i]);
    }
    snprintf(s + at, cap - at, "]");
    return s;
}

int model_risk_save(const char *path, const model_risk_weights_t *w, const model_risk_info_t *info,
                    char *version_out, size_t version_cap, char *err, size_t errlen)
{
    model_file_tensor_out_t t[2 * (MODEL_RISK_HIDDEN_MAX + 1)];
    char names[2 * (MODEL_RISK_HIDDEN_MAX + 1)][48], sha[65], version[128];
    char *layers = risk_json_numbers(NULL, w->dims, w->n_layers + 1);
    char *mean = risk_json_numbers(w->mean, NULL, w->dims[0]);
    char *std = risk_json_numbers(w->std, NULL, w->dims[0]);
    char *cols = json_string_array(info->columns, w->dims[0]);
    size_t nt = 0;
    int rc = -1;

    if (!layers || !mean || !std || !cols) {
        errbuf_printf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (size_t l = 0; l < w->n_layers; l++) {
        snprintf(names[nt], sizeof names[nt], "layers.%zu.weight", l);
        t[nt] = (model_file_tensor_out_t){
            names[nt], w->w[l], 2, {(int64_t)w->dims[l], (int64_t)w->dims[l + 1]}};
        nt++;
        snprintf(names[nt], sizeof names[nt], "layers.%zu.bias", l);
        t[nt] = (model_file_tensor_out_t){names[nt], w->b[l], 1, {(int64_t)w->dims[l + 1]}};
        nt++;
    }
    if (info->version) {
        snprintf(version, sizeof version, "%s", info->version);
    } else {
        if (model_file_tensors_sha256(t, nt, sha, err, errlen) != 0)
            goto out;
        snprintf(version, sizeof version, "risk-%.12s", sha);
    }
    const char *keys[] = {"vigil.arch",
                          "vigil.version",
                          "vigil.layers",
                          "vigil.activation",
                          "vigil.feature_spec",
                          "vigil.feature_spec_hash",
                          "vigil.feature_columns",
                          "vigil.norm_mean",
                          "vigil.norm_std",
                          "vigil.training",
                          "vigil.norm_clip"};
    const char *vals[] = {"risk_mlp",
                          version,
                          layers,
                          "relu",
                          info->spec_text,
                          info->spec_hash,
                          cols,
                          mean,
                          std,
                          info->training_json ? info->training_json : "{}",
                          "10"};
    if (model_file_write(path, keys, vals, sizeof keys / sizeof keys[0], t, nt, NULL, err,
                         errlen) != 0)
        goto out;
    if (version_out)
        snprintf(version_out, version_cap, "%s", version);
    rc = 0;
out:
    free(layers);
    free(mean);
    free(std);
    free(cols);
    return rc;
}

/* ---- loading ---- */

/* The metadata key as a JSON array of exactly n numbers (n 0: any length, returned in *n_out). */
static json_value_t *risk_meta_array(const model_file_t *mf, const char *key, size_t n, char *err,
                                     size_t errlen)
{
    char jerr[200];
    const char *s = model_file_meta_need(mf, key, err, errlen);
    json_value_t *v = s ? json_parse(s, strlen(s), jerr, sizeof jerr) : NULL;
    if (!s)
        return NULL;
    if (!v) {
        errbuf_printf(err, errlen, "%s: metadata %s: %s", mf->path, key, jerr);
        return NULL;
    }
    int ok = v->type == JSON_ARRAY && (n == 0 || v->n == n);
    for (size_t i = 0; ok && i < v->n; i++)
        ok = v->items[i].type == JSON_NUMBER && isfinite(v->items[i].number);
    if (!ok) {
        errbuf_printf(err, errlen, "%s: metadata %s must be an array of %zu finite numbers",
                      mf->path, key, n);
        json_free(v);
        return NULL;
    }
    return v;
}

void model_risk_free(model_risk_t *m)
{
    if (!m)
        return;
    for (size_t l = 0; l < MODEL_RISK_HIDDEN_MAX + 1; l++) {
        kernels_free(m->be, m->w[l]);
        kernels_free(m->be, m->b[l]);
    }
    for (size_t l = 0; l < MODEL_RISK_HIDDEN_MAX + 2; l++)
        kernels_free(m->be, m->act[l]);
    kernels_free(m->be, m->grad[0]);
    kernels_free(m->be, m->grad[1]);
    free(m->ones);
    free(m->xn);
    free(m->mean);
    free(m->inv_std);
    free(m);
}

static int risk_load_dims(model_risk_t *m, const model_file_t *mf, char *err, size_t errlen)
{
    json_value_t *v = risk_meta_array(mf, "vigil.layers", 0, err, errlen);
    int ok;
    if (!v)
        return -1;
    ok = v->n >= 2 && v->n <= MODEL_RISK_HIDDEN_MAX + 2;
    for (size_t i = 0; ok && i < v->n; i++)
        ok = v->items[i].is_integer && v->items[i].integer >= 1 && v->items[i].integer <= 65536;
    if (ok)
        ok = v->items[v->n - 1].integer == 1;
    if (!ok) {
        errbuf_printf(err, errlen,
                      "%s: metadata vigil.layers must list 2..%d widths in 1..65536, the last 1",
                      mf->path, MODEL_RISK_HIDDEN_MAX + 2);
        json_free(v);
        return -1;
    }
    m->n_layers = v->n - 1;
    for (size_t i = 0; i < v->n; i++)
        m->dims[i] = (size_t)v->items[i].integer;
    json_free(v);
    return 0;
}

static int risk_load_norm(model_risk_t *m, const model_file_t *mf, char *err, size_t errlen)
{
    size_t d = m->dims[0];
    json_value_t *mean = risk_meta_array(mf, "vigil.norm_mean", d, err, errlen);
    json_value_t *std = mean ? risk_meta_array(mf, "vigil.norm_std", d, err, errlen) : NULL;
    int rc = -1;

    if (!mean || !std)
        goto out;
    m->mean = malloc(d * sizeof *m->mean);
    m->inv_std = malloc(d * sizeof *m->inv_std);
    if (!m->mean || !m->inv_std) {
        errbuf_printf(err, errlen, "%s: out of memory", mf->path);
        goto out;
    }
    for (size_t i = 0; i < d; i++) {
        if (!(std->items[i].number > 0)) {
            errbuf_printf(err, errlen, "%s: metadata vigil.norm_std[%zu] is not positive", mf->path,
                          i);
            goto out;
        }
        m->mean[i] = (float)mean->items[i].number;
        m->inv_std[i] = (float)(1.0 / std->items[i].number);
    }
    rc = 0;
out:
    json_free(mean);
    json_free(std);
    return rc;
}

model_risk_t *model_risk_load(kernels_backend_t *be, const char *path, char *err, size_t errlen)
{
    model_file_t *mf = model_file_read(path, err, errlen);
    model_risk_t *m = NULL;
    const char *arch, *version, *hash, *act, *cols, *clip;
    json_value_t *cv = NULL;
    char jerr[200];

    if (!mf)
        return NULL;
    if (model_file_verify(mf, err, errlen) != 0 ||
        !(arch = model_file_meta_need(mf, "vigil.arch", err, errlen)))
        goto err;
    if (strcmp(arch, "risk_mlp") != 0) {
        errbuf_printf(err, errlen, "%s: vigil.arch is \"%s\", not a risk model (risk_mlp)", path,
                      arch);
        goto err;
    }
    if (!(version = model_file_meta_need(mf, "vigil.version", err, errlen)) ||
        !(hash = model_file_meta_need(mf, "vigil.feature_spec_hash", err, errlen)) ||
        !(act = model_file_meta_need(mf, "vigil.activation", err, errlen)) ||
        !(clip = model_file_meta_need(mf, "vigil.norm_clip", err, errlen)) ||
        !model_file_meta_need(mf, "vigil.feature_spec", err, errlen) ||
        !(cols = model_file_meta_need(mf, "vigil.feature_columns", err, errlen)))
        goto err;
    if (strcmp(clip, "10") != 0) {
        errbuf_printf(err, errlen, "%s: vigil.norm_clip \"%s\" is not supported (10)", path, clip);
        goto err;
    }
    if (strcmp(act, "relu") != 0) {
        errbuf_printf(err, errlen, "%s: vigil.activation \"%s\" is not supported (relu)", path,
                      act);
        goto err;
    }
    if (version[0] == '\0' || strlen(version) >= 128 || strlen(hash) >= 32) {
        errbuf_printf(err, errlen, "%s: vigil.version must be 1..127 characters", path);
        goto err;
    }
    m = calloc(1, sizeof *m);
    if (!m) {
        errbuf_printf(err, errlen, "%s: out of memory", path);
        goto err;
    }
    m->be = be;
    snprintf(m->version, sizeof m->version, "%s", version);
    snprintf(m->spec_hash, sizeof m->spec_hash, "%s", hash);
    if (risk_load_dims(m, mf, err, errlen) != 0 || risk_load_norm(m, mf, err, errlen) != 0)
        goto err;
    cv = json_parse(cols, strlen(cols), jerr, sizeof jerr);
    if (!cv || cv->type != JSON_ARRAY || cv->n != m->dims[0]) {
        errbuf_printf(err, errlen, "%s: vigil.feature_columns must list %zu column names", path,
                      m->dims[0]);
        goto err;
    }
    for (size_t l = 0; l < m->n_layers; l++) {
        char name[48];
        int64_t ws[2] = {(int64_t)m->dims[l], (int64_t)m->dims[l + 1]}, bs[1] = {ws[1]};
        size_t nw = m->dims[l] * m->dims[l + 1];
        snprintf(name, sizeof name, "layers.%zu.weight", l);
        const float *w = model_file_f32(mf, name, 2, ws, err, errlen);
        snprintf(name, sizeof name, "layers.%zu.bias", l);
        const float *b = w ? model_file_f32(mf, name, 1, bs, err, errlen) : NULL;
        if (!b)
            goto err;
        if (!(m->w[l] = kernels_alloc(be, nw, err, errlen)) ||
            !(m->b[l] = kernels_alloc(be, m->dims[l + 1], err, errlen)) ||
            kernels_copy_to_backend(be, m->w[l], w, nw, err, errlen) != 0 ||
            kernels_copy_to_backend(be, m->b[l], b, m->dims[l + 1], err, errlen) != 0)
            goto err;
    }
    if (model_file_check_all_used(mf, err, errlen) != 0 || kernels_sync(be, err, errlen) != 0)
        goto err;
    json_free(cv);
    model_file_free(mf);
    return m;
err:
    json_free(cv);
    model_risk_free(m);
    model_file_free(mf);
    return NULL;
}

const char *model_risk_version(const model_risk_t *m)
{
    return m->version;
}

const char *model_risk_spec_hash(const model_risk_t *m)
{
    return m->spec_hash;
}

size_t model_risk_width(const model_risk_t *m)
{
    return m->dims[0];
}

static int risk_reserve(model_risk_t *m, size_t n, char *err, size_t errlen)
{
    if (n <= m->cap)
        return 0;
    if (n < 256)
        n = 256;
    free(m->xn);
    m->xn = NULL;
    for (size_t l = 0; l <= m->n_layers; l++) {
        kernels_free(m->be, m->act[l]);
        m->act[l] = NULL;
    }
    m->cap = 0;
    m->xn = malloc(n * m->dims[0] * sizeof *m->xn);
    if (!m->xn) {
        errbuf_printf(err, errlen, "out of memory for %zu rows", n);
        return -1;
    }
    for (size_t l = 0; l <= m->n_layers; l++)
        if (!(m->act[l] = kernels_alloc(m->be, n * m->dims[l], err, errlen)))
            return -1;
    m->cap = n;
    return 0;
}

/* The forward pass over n raw rows: normalised into xn and act[0], then every layer. The last
 * layer's activation is out_act: the sigmoid when scoring, none (the logit) when explaining. */
static int risk_forward(model_risk_t *m, const float *x, size_t n, kernels_act_t out_act, char *err,
                        size_t errlen)
{
    size_t d = m->dims[0];

    if (risk_reserve(m, n, err, errlen) != 0)
        return -1;
    for (size_t r = 0; r < n; r++) {
        const float *in = x + r * d;
        float *out = m->xn + r * d;
        for (size_t i = 0; i < d; i++)
            out[i] = model_risk_normalise(in[i], m->mean[i], m->inv_std[i]);
    }
    if (kernels_copy_to_backend(m->be, m->act[0], m->xn, n * d, err, errlen) != 0)
        return -1;
    for (size_t l = 0; l < m->n_layers; l++) {
        kernels_tensor_t a = kernels_tensor_2d(m->act[l], (int64_t)n, (int64_t)m->dims[l]);
        kernels_tensor_t w =
            kernels_tensor_2d(m->w[l], (int64_t)m->dims[l], (int64_t)m->dims[l + 1]);
        kernels_tensor_t b = kernels_tensor_2d(m->b[l], 1, (int64_t)m->dims[l + 1]);
        kernels_tensor_t y = kernels_tensor_2d(m->act[l + 1], (int64_t)n, (int64_t)m->dims[l + 1]);
        kernels_act_t act = l + 1 == m->n_layers ? out_act : KERNELS_ACT_RELU;
        if (kernels_gemm(m->be, 0, 0, 1.0f, &a, &w, 0.0f, &y, err, errlen) != 0 ||
            kernels_bias_act(m->be, &y, &b, act, &y, err, errlen) != 0)
            return -1;
    }
    return 0;
}

int model_risk_score(model_risk_t *m, const float *x, size_t n, float *scores, char *err,
                     size_t errlen)
{
    if (n == 0)
        return 0;
    if (risk_forward(m, x, n, KERNELS_ACT_SIGMOID, err, errlen) != 0)
        return -1;
    return kernels_copy_to_host(m->be, scores, m->act[m->n_layers], n, err, errlen);
}

static int risk_explain_reserve(model_risk_t *m, size_t n, char *err, size_t errlen)
{
    if (n <= m->explain_cap)
        return 0;
    kernels_free(m->be, m->grad[0]);
    kernels_free(m->be, m->grad[1]);
    m->grad[0] = m->grad[1] = NULL;
    free(m->ones);
    m->explain_cap = 0;
    m->dmax = 0;
    for (size_t l = 0; l <= m->n_layers; l++)
        if (m->dims[l] > m->dmax)
            m->dmax = m->dims[l];
    if (!(m->ones = malloc(n * sizeof *m->ones))) {
        errbuf_printf(err, errlen, "out of memory explaining %zu rows", n);
        return -1;
    }
    for (size_t r = 0; r < n; r++)
        m->ones[r] = 1.0f;
    for (int k = 0; k < 2; k++)
        if (!(m->grad[k] = kernels_alloc(m->be, n * m->dmax, err, errlen)))
            return -1;
    m->explain_cap = n;
    return 0;
}

int model_risk_explain(model_risk_t *m, const float *x, size_t n, float *attr, char *err,
                       size_t errlen)
{
    size_t d = m->dims[0], L = m->n_layers;
    int cur = 0;

    if (n == 0)
        return 0;
    if (risk_forward(m, x, n, KERNELS_ACT_NONE, err, errlen) != 0 ||
        risk_explain_reserve(m, n, err, errlen) != 0)
        return -1;
    /* d logit / d logit = 1; then back through each layer: dx = dy W^T, and through the ReLU
     * that made the layer's input (act[l] is its output, which tells where it was active). */
    if (kernels_copy_to_backend(m->be, m->grad[cur], m->ones, n, err, errlen) != 0)
        return -1;
    for (size_t l = L; l-- > 0;) {
        kernels_tensor_t a = kernels_tensor_2d(m->act[l], (int64_t)n, (int64_t)m->dims[l]);
        kernels_tensor_t w =
            kernels_tensor_2d(m->w[l], (int64_t)m->dims[l], (int64_t)m->dims[l + 1]);
        kernels_tensor_t dy = kernels_tensor_2d(m->grad[cur], (int64_t)n, (int64_t)m->dims[l + 1]);
        kernels_tensor_t dx = kernels_tensor_2d(m->grad[!cur], (int64_t)n, (int64_t)m->dims[l]);
        if (kernels_dense_backward(m->be, &a, &w, &dy, &dx, NULL, NULL, err, errlen) != 0)
            return -1;
        if (l > 0 && kernels_relu_backward(m->be, &a, &dx, &dx, err, errlen) != 0)
            return -1;
        cur = !cur;
    }
    if (kernels_copy_to_host(m->be, attr, m->grad[cur], n * d, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n * d; i++)
        attr[i] *= m->xn[i];
    return 0;
}

void model_risk_score_ref(const model_risk_weights_t *w, const float *x, size_t n, float *scores)
{
    size_t wmax = 0;
    for (size_t l = 0; l <= w->n_layers; l++)
        if (w->dims[l] > wmax)
            wmax = w->dims[l];
    float *a = malloc(wmax * sizeof *a), *b = malloc(wmax * sizeof *b);
    if (!a || !b) {
        for (size_t r = 0; r < n; r++)
            scores[r] = NAN; /* no memory: a score nobody can mistake for a real one */
        free(a);
        free(b);
        return;
    }
    for (size_t r = 0; r < n; r++) {
        for (size_t i = 0; i < w->dims[0]; i++)
            a[i] = model_risk_normalise(x[r * w->dims[0] + i], (float)w->mean[i],
                                        (float)(1.0 / w->std[i]));
        for (size_t l = 0; l < w->n_layers; l++) {
            size_t in = w->dims[l], out = w->dims[l + 1];
            for (size_t j = 0; j < out; j++) {
                double s = w->b[l][j];
                for (size_t i = 0; i < in; i++)
                    s += (double)a[i] * w->w[l][i * out + j];
                b[j] = l + 1 == w->n_layers ? (float)(1.0 / (1.0 + exp(-s)))
                                            : (s > 0 ? (float)s : 0.0f);
            }
            float *t = a;
            a = b;
            b = t;
        }
        scores[r] = a[0];
    }
    free(a);
    free(b);
}

void model_risk_explain_ref(const model_risk_weights_t *w, const float *x, size_t n, float *attr)
{
    size_t L = w->n_layers, d = w->dims[0], total = 0, at[MODEL_RISK_HIDDEN_MAX + 2];
    for (size_t l = 0; l <= L; l++) {
        at[l] = total;
        total += w->dims[l];
    }
    /* a: every layer's activation of one row (the last one the logit); g: the gradient. */
    double *a = malloc(total * sizeof *a), *g = malloc(total * sizeof *g);
    if (!a || !g) {
        for (size_t i = 0; i < n * d; i++)
            attr[i] = NAN;
        free(a);
        free(g);
        return;
    }
    for (size_t r = 0; r < n; r++) {
        for (size_t i = 0; i < d; i++)
            a[i] = model_risk_normalise(x[r * d + i], (float)w->mean[i], (float)(1.0 / w->std[i]));
        for (size_t l = 0; l < L; l++) {
            size_t in = w->dims[l], out = w->dims[l + 1];
            for (size_t j = 0; j < out; j++) {
                double s = w->b[l][j];
                for (size_t i = 0; i < in; i++)
                    s += a[at[l] + i] * w->w[l][i * out + j];
                a[at[l + 1] + j] = l + 1 == L || s > 0 ? s : 0.0;
            }
        }
        g[at[L]] = 1.0;
        for (size_t l = L; l-- > 0;) {
            size_t in = w->dims[l], out = w->dims[l + 1];
            for (size_t i = 0; i < in; i++) {
                double s = 0;
                for (size_t j = 0; j < out; j++)
                    s += g[at[l + 1] + j] * w->w[l][i * out + j];
                g[at[l] + i] = l > 0 && a[at[l] + i] <= 0 ? 0.0 : s;
            }
        }
        for (size_t i = 0; i < d; i++)
            attr[r * d + i] = (float)(a[i] * g[i]);
    }
    free(a);
    free(g);
}
