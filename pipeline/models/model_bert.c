/* BERT sentence encoder forward pass on the kernels (see model_bert.h).
 *
 * Layout: activations are row-major (tokens x features) on the backend. Hugging Face stores a
 * dense layer's weight as (out, in), so y = x W^T + b is a GEMM with B transposed. The query, key
 * and value projections are fused into one (3H, H) weight at load time, so a layer starts with one
 * GEMM whose output's column blocks are q, k and v. Residual connections are GEMMs with beta = 1
 * into the residual stream itself. */
#include "model_bert.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "json.h"
#include "model_file.h"
#include "sha256.h"
#include "textfile.h"
#include "wordpiece.h"

/* Sequences encoded per forward pass: bounds the work area (attention probabilities are
 * chunk * heads * L * L floats). */
#define BERT_CHUNK 32

/* With a yield hook (model_bert_set_yield), the most tokens one step of a forward pass covers: on
 * MiniLM a 64-row feed-forward GEMM is about a millisecond of one core, yet long enough for the
 * BLAS to stay efficient. */
#define BERT_STEP_ROWS 64

/* A text's place in the length order of model_bert_encode. */
typedef struct bert_order {
    size_t len, index;
} bert_order_t;

typedef struct bert_layer {
    float *wqkv, *bqkv;   /* (3H, H), (3H): query, key, value rows stacked */
    float *wo, *bo;       /* (H, H), (H): attention output projection */
    float *ln1_g, *ln1_b; /* (H) after attention */
    float *w1, *b1;       /* (I, H), (I): feed-forward up */
    float *w2, *b2;       /* (H, I), (H): feed-forward down */
    float *ln2_g, *ln2_b; /* (H) after the feed-forward */
} bert_layer_t;

struct model_bert {
    kernels_backend_t *be; /* borrowed */
    model_bert_config_t cfg;
    int max_seq;
    wordpiece_t *wp;
    wordpiece_scratch_t *ws;
    char sha256[65];

    /* Weights, on the backend. */
    float *wte;           /* (V, H) token embeddings */
    float *wpe;           /* (P, H) position embeddings */
    float *wtt;           /* (T, H) token type embeddings */
    float *emb_g, *emb_b; /* (H) embedding layer norm */
    bert_layer_t *layer;  /* (layers) */

    /* Work area on the backend, sized for cap_tokens tokens in cap_seq sequences of at most
     * cap_len tokens; grown on demand. */
    size_t cap_tokens, cap_seq, cap_len;
    float *x;       /* (N, H) the residual stream */
    float *qkv;     /* (N, 3H) */
    float *ctx;     /* (N, H) attention output */
    float *ffn;     /* (N, I) */
    float *probs;   /* (n_seq * heads, L, L) attention probabilities */
    float *mask_be; /* (n_seq, L) */
    float *pooled;  /* (n_seq, H) */

    /* Host staging for model_bert_encode. */
    int32_t *ids;     /* (BERT_CHUNK, max_seq) */
    float *chunk_out; /* (BERT_CHUNK, H) one chunk's embeddings, before reordering */
    float *maskf;     /* (BERT_CHUNK, max_seq) */
    int32_t *tok_ids;
    uint8_t *tok_mask;   /* (n texts, max_seq) wordpiece output, grown on demand */
    bert_order_t *order; /* (n texts) by length */
    size_t cap_texts;

    void (*yield)(void *ctx); /* NULL: no steps, every op covers the whole chunk */
    void *yield_ctx;
};

static int bert_config_int(const json_value_t *root, const char *path, const char *key, int64_t lo,
                           int64_t hi, int64_t *out, char *err, size_t errlen)
{
    const json_value_t *v = json_get(root, key);
    if (!v || v->type != JSON_NUMBER || !v->is_integer || v->integer < lo || v->integer > hi) {
        errbuf_printf(err, errlen, "%s: %s must be an integer in %lld..%lld", path, key,
                      (long long)lo, (long long)hi);
        return -1;
    }
    *out = v->integer;
    return 0;
}

/* config.json: a BertModel with absolute positions and exact GELU is what this code computes;
 * anything else is refused rather than computed wrongly. */
static int bert_config_read(const char *path, model_bert_config_t *c, char *err, size_t errlen)
{
    char *text = NULL, jerr[256];
    size_t len;
    json_value_t *root = NULL;
    const json_value_t *v;
    int rc = -1;

    if (textfile_read(path, 16 * 1024 * 1024, &text, &len, err, errlen) != 0)
        return -1;
    root = json_parse(text, len, jerr, sizeof jerr);
    if (!root) {
        errbuf_printf(err, errlen, "%s: %s", path, jerr);
        goto out;
    }
    v = json_get(root, "model_type");
    if (!v || v->type != JSON_STRING || strcmp(v->string, "bert") != 0) {
        errbuf_printf(err, errlen, "%s: model_type must be \"bert\"", path);
        goto out;
    }
    v = json_get(root, "hidden_act");
    if (!v || v->type != JSON_STRING || strcmp(v->string, "gelu") != 0) {
        errbuf_printf(err, errlen, "%s: hidden_act must be \"gelu\" (exact erf GELU)", path);
        goto out;
    }
    v = json_get(root, "position_embedding_type");
    if (v && (v->type != JSON_STRING || strcmp(v->string, "absolute") != 0)) {
        errbuf_printf(err, errlen, "%s: position_embedding_type must be \"absolute\"", path);
        goto out;
    }
    if (bert_config_int(root, path, "vocab_size", 5, 1 << 22, &c->vocab, err, errlen) != 0 ||
        bert_config_int(root, path, "hidden_size", 1, 8192, &c->hidden, err, errlen) != 0 ||
        bert_config_int(root, path, "num_hidden_layers", 1, 128, &c->layers, err, errlen) != 0 ||
        bert_config_int(root, path, "num_attention_heads", 1, 256, &c->heads, err, errlen) != 0 ||
        bert_config_int(root, path, "intermediate_size", 1, 65536, &c->intermediate, err, errlen) !=
            0 ||
        bert_config_int(root, path, "max_position_embeddings", 2, 65536, &c->max_pos, err,
                        errlen) != 0 ||
        bert_config_int(root, path, "type_vocab_size", 1, 1024, &c->type_vocab, err, errlen) != 0)
        goto out;
    if (c->hidden % c->heads != 0) {
        errbuf_printf(err, errlen,
                      "%s: hidden_size %lld is not a multiple of num_attention_heads %lld", path,
                      (long long)c->hidden, (long long)c->heads);
        goto out;
    }
    v = json_get(root, "layer_norm_eps");
    if (!v || v->type != JSON_NUMBER || !(v->number > 0) || v->number > 1) {
        errbuf_printf(err, errlen, "%s: layer_norm_eps must be a number in (0, 1]", path);
        goto out;
    }
    c->ln_eps = (float)v->number;
    rc = 0;
out:
    json_free(root);
    free(text);
    return rc;
}

/* The F32 tensor name of shape (d0[, d1]) into new backend memory at *dst. */
static int bert_upload(model_bert_t *m, model_file_t *mf, const char *name, int64_t d0, int64_t d1,
                       float **dst, char *err, size_t errlen)
{
    int64_t shape[2] = {d0, d1};
    int ndim = d1 > 0 ? 2 : 1;
    size_t n = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    const float *src = model_file_f32(mf, name, ndim, shape, err, errlen);

    if (!src)
        return -1;
    *dst = kernels_alloc(m->be, n, err, errlen);
    if (!*dst)
        return -1;
    return kernels_copy_to_backend(m->be, *dst, src, n, err, errlen);
}

/* query, key and value of layer l stacked into one (3H, H) weight and (3H) bias. */
static int bert_upload_qkv(model_bert_t *m, model_file_t *mf, int64_t l, bert_layer_t *ly,
                           char *err, size_t errlen)
{
    static const char *const parts[3] = {"query", "key", "value"};
    int64_t h = m->cfg.hidden, wshape[2] = {h, h}, bshape[1] = {h};
    char name[128];

    ly->wqkv = kernels_alloc(m->be, (size_t)(3 * h * h), err, errlen);
    ly->bqkv = ly->wqkv ? kernels_alloc(m->be, (size_t)(3 * h), err, errlen) : NULL;
    if (!ly->bqkv)
        return -1;
    for (int p = 0; p < 3; p++) {
        snprintf(name, sizeof name, "encoder.layer.%lld.attention.self.%s.weight", (long long)l,
                 parts[p]);
        const float *w = model_file_f32(mf, name, 2, wshape, err, errlen);
        if (!w || kernels_copy_to_backend(m->be, ly->wqkv + p * h * h, w, (size_t)(h * h), err,
                                          errlen) != 0)
            return -1;
        snprintf(name, sizeof name, "encoder.layer.%lld.attention.self.%s.bias", (long long)l,
                 parts[p]);
        const float *b = model_file_f32(mf, name, 1, bshape, err, errlen);
        if (!b || kernels_copy_to_backend(m->be, ly->bqkv + p * h, b, (size_t)h, err, errlen) != 0)
            return -1;
    }
    return 0;
}

static int bert_upload_layer(model_bert_t *m, model_file_t *mf, int64_t l, char *err, size_t errlen)
{
    bert_layer_t *ly = &m->layer[l];
    int64_t h = m->cfg.hidden, i = m->cfg.intermediate;
    char p[64], name[160];

    snprintf(p, sizeof p, "encoder.layer.%lld.", (long long)l);
#define BERT_UP(suffix, d0, d1, dst)                                                               \
    (snprintf(name, sizeof name, "%s%s", p, suffix),                                               \
     bert_upload(m, mf, name, d0, d1, dst, err, errlen))
    if (bert_upload_qkv(m, mf, l, ly, err, errlen) != 0 ||
        BERT_UP("attention.output.dense.weight", h, h, &ly->wo) != 0 ||
        BERT_UP("attention.output.dense.bias", h, 0, &ly->bo) != 0 ||
        BERT_UP("attention.output.LayerNorm.weight", h, 0, &ly->ln1_g) != 0 ||
        BERT_UP("attention.output.LayerNorm.bias", h, 0, &ly->ln1_b) != 0 ||
        BERT_UP("intermediate.dense.weight", i, h, &ly->w1) != 0 ||
        BERT_UP("intermediate.dense.bias", i, 0, &ly->b1) != 0 ||
        BERT_UP("output.dense.weight", h, i, &ly->w2) != 0 ||
        BERT_UP("output.dense.bias", h, 0, &ly->b2) != 0 ||
        BERT_UP("output.LayerNorm.weight", h, 0, &ly->ln2_g) != 0 ||
        BERT_UP("output.LayerNorm.bias", h, 0, &ly->ln2_b) != 0)
        return -1;
#undef BERT_UP
    return 0;
}

static void bert_work_free(model_bert_t *m)
{
    kernels_free(m->be, m->x);
    kernels_free(m->be, m->qkv);
    kernels_free(m->be, m->ctx);
    kernels_free(m->be, m->ffn);
    kernels_free(m->be, m->probs);
    kernels_free(m->be, m->mask_be);
    kernels_free(m->be, m->pooled);
    m->x = m->qkv = m->ctx = m->ffn = m->probs = m->mask_be = m->pooled = NULL;
    m->cap_tokens = m->cap_seq = m->cap_len = 0;
}

/* Makes the work area hold n_seq sequences of seq_len tokens. */
static int bert_work_reserve(model_bert_t *m, size_t n_seq, size_t seq_len, char *err,
                             size_t errlen)
{
    size_t h = (size_t)m->cfg.hidden, heads = (size_t)m->cfg.heads;
    size_t n = n_seq * seq_len;

    if (n_seq <= m->cap_seq && seq_len <= m->cap_len && n <= m->cap_tokens)
        return 0;
    if (n_seq < m->cap_seq)
        n_seq = m->cap_seq;
    if (seq_len < m->cap_len)
        seq_len = m->cap_len;
    n = n_seq * seq_len;
    bert_work_free(m);
    if (!(m->x = kernels_alloc(m->be, n * h, err, errlen)) ||
        !(m->qkv = kernels_alloc(m->be, n * 3 * h, err, errlen)) ||
        !(m->ctx = kernels_alloc(m->be, n * h, err, errlen)) ||
        !(m->ffn = kernels_alloc(m->be, n * (size_t)m->cfg.intermediate, err, errlen)) ||
        !(m->probs = kernels_alloc(m->be, n_seq * heads * seq_len * seq_len, err, errlen)) ||
        !(m->mask_be = kernels_alloc(m->be, n, err, errlen)) ||
        !(m->pooled = kernels_alloc(m->be, n_seq * h, err, errlen))) {
        bert_work_free(m);
        return -1;
    }
    m->cap_tokens = n;
    m->cap_seq = n_seq;
    m->cap_len = seq_len;
    return 0;
}

static void bert_weights_free(model_bert_t *m)
{
    kernels_free(m->be, m->wte);
    kernels_free(m->be, m->wpe);
    kernels_free(m->be, m->wtt);
    kernels_free(m->be, m->emb_g);
    kernels_free(m->be, m->emb_b);
    for (int64_t l = 0; m->layer && l < m->cfg.layers; l++) {
        bert_layer_t *ly = &m->layer[l];
        float *all[] = {ly->wqkv, ly->bqkv, ly->wo, ly->bo, ly->ln1_g, ly->ln1_b,
                        ly->w1,   ly->b1,   ly->w2, ly->b2, ly->ln2_g, ly->ln2_b};
        for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
            kernels_free(m->be, all[k]);
    }
    free(m->layer);
}

void model_bert_free(model_bert_t *m)
{
    if (!m)
        return;
    bert_work_free(m);
    bert_weights_free(m);
    wordpiece_free(m->wp);
    wordpiece_scratch_free(m->ws);
    free(m->ids);
    free(m->maskf);
    free(m->tok_ids);
    free(m->tok_mask);
    free(m->chunk_out);
    free(m->order);
    free(m);
}

model_bert_t *model_bert_load(kernels_backend_t *be, const char *dir, int max_seq, char *err,
                              size_t errlen)
{
    model_bert_t *m = calloc(1, sizeof *m);
    model_file_t *mf = NULL;
    char path[4096];
    uint8_t digest[32];
    sha256_t s;
    int64_t h;

    if (!m) {
        errbuf_printf(err, errlen, "out of memory loading the encoder");
        return NULL;
    }
    m->be = be;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (bert_config_read(path, &m->cfg, err, errlen) != 0)
        goto err;
    h = m->cfg.hidden;
    if (max_seq < 2 || max_seq > m->cfg.max_pos) {
        errbuf_printf(err, errlen,
                      "%s: max_seq %d is out of range 2..%lld (max_position_embeddings)", dir,
                      max_seq, (long long)m->cfg.max_pos);
        goto err;
    }
    m->max_seq = max_seq;
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    m->wp = wordpiece_new(path, err, errlen);
    if (!m->wp)
        goto err;
    if ((int64_t)wordpiece_vocab_size(m->wp) != m->cfg.vocab) {
        errbuf_printf(err, errlen, "%s: %zu tokens, but config.json says vocab_size %lld", path,
                      wordpiece_vocab_size(m->wp), (long long)m->cfg.vocab);
        goto err;
    }
    m->ws = wordpiece_scratch_new();
    m->ids = malloc(BERT_CHUNK * (size_t)max_seq * sizeof *m->ids);
    m->chunk_out = malloc(BERT_CHUNK * (size_t)m->cfg.hidden * sizeof *m->chunk_out);
    m->maskf = malloc(BERT_CHUNK * (size_t)max_seq * sizeof *m->maskf);
    m->layer = calloc((size_t)m->cfg.layers, sizeof *m->layer);
    if (!m->ws || !m->ids || !m->chunk_out || !m->maskf || !m->layer) {
        errbuf_printf(err, errlen, "out of memory loading the encoder");
        goto err;
    }

    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    mf = model_file_read(path, err, errlen);
    if (!mf)
        goto err;
    sha256_init(&s);
    sha256_update(&s, mf->data, mf->data_len);
    sha256_final(&s, digest);
    sha256_hex(digest, m->sha256);
    if (bert_upload(m, mf, "embeddings.word_embeddings.weight", m->cfg.vocab, h, &m->wte, err,
                    errlen) != 0 ||
        bert_upload(m, mf, "embeddings.position_embeddings.weight", m->cfg.max_pos, h, &m->wpe, err,
                    errlen) != 0 ||
        bert_upload(m, mf, "embeddings.token_type_embeddings.weight", m->cfg.type_vocab, h, &m->wtt,
                    err, errlen) != 0 ||
        bert_upload(m, mf, "embeddings.LayerNorm.weight", h, 0, &m->emb_g, err, errlen) != 0 ||
        bert_upload(m, mf, "embeddings.LayerNorm.bias", h, 0, &m->emb_b, err, errlen) != 0)
        goto err;
    for (int64_t l = 0; l < m->cfg.layers; l++)
        if (bert_upload_layer(m, mf, l, err, errlen) != 0)
            goto err;
    /* A model with more layers than config.json says would be silently cut short. */
    snprintf(path, sizeof path, "encoder.layer.%lld.output.dense.weight", (long long)m->cfg.layers);
    for (size_t i = 0; i < mf->n_tensors; i++)
        if (strcmp(mf->tensors[i].name, path) == 0) {
            errbuf_printf(err, errlen,
                          "%s/model.safetensors has more layers than config.json's %lld", dir,
                          (long long)m->cfg.layers);
            goto err;
        }
    if (kernels_sync(be, err, errlen) != 0)
        goto err;
    model_file_free(mf);
    return m;

err:
    model_file_free(mf);
    model_bert_free(m);
    return NULL;
}

const model_bert_config_t *model_bert_config(const model_bert_t *m)
{
    return &m->cfg;
}

size_t model_bert_dim(const model_bert_t *m)
{
    return (size_t)m->cfg.hidden;
}

int model_bert_max_seq(const model_bert_t *m)
{
    return m->max_seq;
}

const char *model_bert_weights_sha256(const model_bert_t *m)
{
    return m->sha256;
}

void model_bert_set_yield(model_bert_t *m, void (*hook)(void *ctx), void *ctx)
{
    m->yield = hook;
    m->yield_ctx = ctx;
}

static void bert_yield(model_bert_t *m)
{
    if (m->yield)
        m->yield(m->yield_ctx);
}

/* The fused query, key and value projection of tokens r0 .. r0 + n - 1. */
static int bert_qkv_rows(model_bert_t *m, const bert_layer_t *ly, int64_t r0, int64_t n, char *err,
                         size_t errlen)
{
    int64_t h = m->cfg.hidden;
    kernels_tensor_t x = kernels_tensor_2d(m->x + r0 * h, n, h);
    kernels_tensor_t qkv = kernels_tensor_2d(m->qkv + r0 * 3 * h, n, 3 * h);
    kernels_tensor_t wqkv = kernels_tensor_2d(ly->wqkv, 3 * h, h);
    kernels_tensor_t bqkv = kernels_tensor_2d(ly->bqkv, 1, 3 * h);
    if (kernels_gemm(m->be, 0, 1, 1.0f, &x, &wqkv, 0.0f, &qkv, err, errlen) != 0 ||
        kernels_bias_act(m->be, &qkv, &bqkv, KERNELS_ACT_NONE, &qkv, err, errlen) != 0)
        return -1;
    return 0;
}

/* Self-attention of sequences s0 .. s0 + ns - 1 (len tokens each) into ctx. */
static int bert_attention_seqs(model_bert_t *m, int64_t s0, int64_t ns, int64_t len, char *err,
                               size_t errlen)
{
    int64_t h = m->cfg.hidden, heads = m->cfg.heads, r0 = s0 * len;
    /* q, k, v: column blocks of the fused projection. */
    float *qkv = m->qkv + r0 * 3 * h;
    kernels_tensor_t q = {qkv, ns * len, h, 3 * h, 1, 0};
    kernels_tensor_t k = {qkv + h, ns * len, h, 3 * h, 1, 0};
    kernels_tensor_t v = {qkv + 2 * h, ns * len, h, 3 * h, 1, 0};
    kernels_tensor_t mask = kernels_tensor_2d(m->mask_be + s0 * len, ns, len);
    kernels_tensor_t probs =
        kernels_tensor_3d(m->probs + s0 * heads * len * len, ns * heads, len, len);
    kernels_tensor_t ctx = kernels_tensor_2d(m->ctx + r0 * h, ns * len, h);
    return kernels_attention(m->be, &q, &k, &v, &mask, ns, heads, 1.0f / sqrtf((float)(h / heads)),
                             &probs, &ctx, err, errlen);
}

/* Everything after attention, for tokens r0 .. r0 + n - 1: it is all row by row (the output
 * projection into the residual stream, its norm, the feed-forward and its norm), with a step
 * between the GEMMs. */
static int bert_ffn_rows(model_bert_t *m, const bert_layer_t *ly, int64_t r0, int64_t n, char *err,
                         size_t errlen)
{
    kernels_backend_t *be = m->be;
    int64_t h = m->cfg.hidden, i = m->cfg.intermediate;
    kernels_tensor_t x = kernels_tensor_2d(m->x + r0 * h, n, h);
    kernels_tensor_t ctx = kernels_tensor_2d(m->ctx + r0 * h, n, h);
    kernels_tensor_t ffn = kernels_tensor_2d(m->ffn + r0 * i, n, i);
    kernels_tensor_t wo = kernels_tensor_2d(ly->wo, h, h), bo = kernels_tensor_2d(ly->bo, 1, h);
    kernels_tensor_t w1 = kernels_tensor_2d(ly->w1, i, h), b1 = kernels_tensor_2d(ly->b1, 1, i);
    kernels_tensor_t w2 = kernels_tensor_2d(ly->w2, h, i), b2 = kernels_tensor_2d(ly->b2, 1, h);
    kernels_tensor_t g1 = kernels_tensor_2d(ly->ln1_g, 1, h),
                     e1 = kernels_tensor_2d(ly->ln1_b, 1, h);
    kernels_tensor_t g2 = kernels_tensor_2d(ly->ln2_g, 1, h),
                     e2 = kernels_tensor_2d(ly->ln2_b, 1, h);

    if (kernels_gemm(be, 0, 1, 1.0f, &ctx, &wo, 1.0f, &x, err, errlen) != 0 ||
        kernels_bias_act(be, &x, &bo, KERNELS_ACT_NONE, &x, err, errlen) != 0 ||
        kernels_layernorm(be, &x, &g1, &e1, m->cfg.ln_eps, &x, err, errlen) != 0)
        return -1;
    bert_yield(m);
    if (kernels_gemm(be, 0, 1, 1.0f, &x, &w1, 0.0f, &ffn, err, errlen) != 0 ||
        kernels_bias_act(be, &ffn, &b1, KERNELS_ACT_GELU, &ffn, err, errlen) != 0)
        return -1;
    bert_yield(m);
    if (kernels_gemm(be, 0, 1, 1.0f, &ffn, &w2, 1.0f, &x, err, errlen) != 0 ||
        kernels_bias_act(be, &x, &b2, KERNELS_ACT_NONE, &x, err, errlen) != 0 ||
        kernels_layernorm(be, &x, &g2, &e2, m->cfg.ln_eps, &x, err, errlen) != 0)
        return -1;
    return 0;
}

/* One transformer layer over the residual stream x (n_seq sequences of L tokens). Without a yield
 * hook each op covers every token at once; with one, the row-wise parts go BERT_STEP_ROWS tokens
 * at a time and attention a sequence at a time, with a step between. Each row's arithmetic is the
 * same either way. */
static int bert_layer_forward(model_bert_t *m, const bert_layer_t *ly, int64_t n_seq, int64_t len,
                              char *err, size_t errlen)
{
    int64_t n = n_seq * len;
    int64_t rows = m->yield && n > BERT_STEP_ROWS ? BERT_STEP_ROWS : n;
    int64_t seqs = m->yield ? 1 : n_seq;

    for (int64_t r0 = 0; r0 < n; r0 += rows) {
        if (bert_qkv_rows(m, ly, r0, n - r0 < rows ? n - r0 : rows, err, errlen) != 0)
            return -1;
        bert_yield(m);
    }
    for (int64_t s0 = 0; s0 < n_seq; s0 += seqs) {
        if (bert_attention_seqs(m, s0, n_seq - s0 < seqs ? n_seq - s0 : seqs, len, err, errlen) !=
            0)
            return -1;
        bert_yield(m);
    }
    for (int64_t r0 = 0; r0 < n; r0 += rows) {
        if (bert_ffn_rows(m, ly, r0, n - r0 < rows ? n - r0 : rows, err, errlen) != 0)
            return -1;
        bert_yield(m);
    }
    return 0;
}

/* One forward pass of at most the work area's size; maskf is the host float mask. */
static int bert_forward(model_bert_t *m, const int32_t *ids, const float *maskf, size_t n_seq,
                        size_t seq_len, int normalize, float *out, char *err, size_t errlen)
{
    kernels_backend_t *be = m->be;
    int64_t h = m->cfg.hidden, n = (int64_t)(n_seq * seq_len);
    kernels_tensor_t x = kernels_tensor_2d(m->x, n, h);
    kernels_tensor_t x3 = kernels_tensor_3d(m->x, (int64_t)n_seq, (int64_t)seq_len, h);
    kernels_tensor_t wte = kernels_tensor_2d(m->wte, m->cfg.vocab, h);
    kernels_tensor_t wpe = kernels_tensor_2d(m->wpe, m->cfg.max_pos, h);
    kernels_tensor_t wtt = kernels_tensor_2d(m->wtt, m->cfg.type_vocab, h);
    kernels_tensor_t g = kernels_tensor_2d(m->emb_g, 1, h), b = kernels_tensor_2d(m->emb_b, 1, h);
    kernels_tensor_t mask = kernels_tensor_2d(m->mask_be, (int64_t)n_seq, (int64_t)seq_len);
    kernels_tensor_t pooled = kernels_tensor_2d(m->pooled, (int64_t)n_seq, h);

    if (bert_work_reserve(m, n_seq, seq_len, err, errlen) != 0)
        return -1;
    /* The views above were taken before a possible reallocation: take them again. */
    x = kernels_tensor_2d(m->x, n, h);
    x3 = kernels_tensor_3d(m->x, (int64_t)n_seq, (int64_t)seq_len, h);
    mask = kernels_tensor_2d(m->mask_be, (int64_t)n_seq, (int64_t)seq_len);
    pooled = kernels_tensor_2d(m->pooled, (int64_t)n_seq, h);
    if (kernels_copy_to_backend(be, m->mask_be, maskf, (size_t)n, err, errlen) != 0 ||
        kernels_embed(be, ids, NULL, (int64_t)n_seq, (int64_t)seq_len, &wte, &wpe, &wtt, &x, err,
                      errlen) != 0 ||
        kernels_layernorm(be, &x, &g, &b, m->cfg.ln_eps, &x, err, errlen) != 0)
        return -1;
    for (int64_t l = 0; l < m->cfg.layers; l++)
        if (bert_layer_forward(m, &m->layer[l], (int64_t)n_seq, (int64_t)seq_len, err, errlen) != 0)
            return -1;
    if (kernels_mean_pool(be, &x3, &mask, &pooled, err, errlen) != 0 ||
        (normalize && kernels_l2norm(be, &pooled, 1e-12f, &pooled, err, errlen) != 0) ||
        kernels_copy_to_host(be, out, m->pooled, n_seq * (size_t)h, err, errlen) != 0)
        return -1;
    return 0;
}

int model_bert_encode_ids(model_bert_t *m, const int32_t *ids, const uint8_t *mask, size_t n_seq,
                          size_t seq_len, int normalize, float *out, char *err, size_t errlen)
{
    size_t h = (size_t)m->cfg.hidden;

    if (seq_len < 1 || seq_len > (size_t)m->max_seq) {
        errbuf_printf(err, errlen, "sequence length %zu is out of range 1..%d", seq_len,
                      m->max_seq);
        return -1;
    }
    for (size_t i = 0; i < n_seq * seq_len; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab) {
            errbuf_printf(err, errlen, "token id %d at %zu is outside the vocabulary", (int)ids[i],
                          i);
            return -1;
        }
    for (size_t s0 = 0; s0 < n_seq; s0 += BERT_CHUNK) {
        size_t ns = n_seq - s0 < BERT_CHUNK ? n_seq - s0 : BERT_CHUNK;
        for (size_t i = 0; i < ns * seq_len; i++)
            m->maskf[i] = mask[s0 * seq_len + i] ? 1.0f : 0.0f;
        if (bert_forward(m, ids + s0 * seq_len, m->maskf, ns, seq_len, normalize, out + s0 * h, err,
                         errlen) != 0)
            return -1;
    }
    return 0;
}

static int bert_texts_reserve(model_bert_t *m, size_t n, char *err, size_t errlen)
{
    size_t ms = (size_t)m->max_seq;
    if (n <= m->cap_texts)
        return 0;
    int32_t *ids = realloc(m->tok_ids, n * ms * sizeof *ids);
    if (ids)
        m->tok_ids = ids;
    uint8_t *mask = realloc(m->tok_mask, n * ms);
    if (mask)
        m->tok_mask = mask;
    bert_order_t *order = realloc(m->order, n * sizeof *order);
    if (order)
        m->order = order;
    if (!ids || !mask || !order) {
        errbuf_printf(err, errlen, "out of memory tokenizing %zu texts", n);
        return -1;
    }
    m->cap_texts = n;
    return 0;
}

static int bert_cmp_len(const void *a, const void *b)
{
    const bert_order_t *x = a, *y = b;
    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

int model_bert_encode(model_bert_t *m, const char *const *texts, const size_t *lens, size_t n,
                      int normalize, float *out, char *err, size_t errlen)
{
    size_t ms = (size_t)m->max_seq, h = (size_t)m->cfg.hidden;
    if (n == 0)
        return 0;
    if (bert_texts_reserve(m, n, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        size_t n_out, n_full;
        if (wordpiece_encode(m->wp, m->ws, texts[i], lens[i], ms, m->tok_ids + i * ms,
                             m->tok_mask + i * ms, &n_out, &n_full, err, errlen) != 0)
            return -1;
        m->order[i] = (bert_order_t){n_out, i};
    }
    /* Similar lengths together, so a chunk pads little (sentence-transformers does the same). */
    qsort(m->order, n, sizeof *m->order, bert_cmp_len);
    for (size_t s0 = 0; s0 < n; s0 += BERT_CHUNK) {
        size_t ns = n - s0 < BERT_CHUNK ? n - s0 : BERT_CHUNK, len = 0;
        for (size_t j = 0; j < ns; j++)
            if (m->order[s0 + j].len > len)
                len = m->order[s0 + j].len;
        for (size_t j = 0; j < ns; j++) {
            size_t src = m->order[s0 + j].index;
            memcpy(m->ids + j * len, m->tok_ids + src * ms, len * sizeof *m->ids);
            for (size_t p = 0; p < len; p++)
                m->maskf[j * len + p] = m->tok_mask[src * ms + p] ? 1.0f : 0.0f;
        }
        if (bert_forward(m, m->ids, m->maskf, ns, len, normalize, m->chunk_out, err, errlen) != 0)
            return -1;
        for (size_t j = 0; j < ns; j++)
            memcpy(out + m->order[s0 + j].index * h, m->chunk_out + j * h, h * sizeof *out);
    }
    return 0;
}
