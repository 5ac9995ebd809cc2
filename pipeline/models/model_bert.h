/* A BERT-family sentence encoder (all-MiniLM-L6-v2 by default) on the kernels: WordPiece ids ->
 * embeddings -> N transformer layers (multi-head self-attention, GELU feed-forward, post-layer
 * norms) -> masked mean pooling -> L2 normalisation, as sentence-transformers computes it.
 *
 * Loaded from a Hugging Face model folder: config.json (BertModel hyper-parameters),
 * model.safetensors (F32 weights, names as BertModel's state_dict; the pooler and position_ids
 * are not used) and vocab.txt. Every weight's name, dtype and shape is checked against the
 * config.
 *
 * A model_bert_t holds its weights and a work area on one kernels backend and is used by one
 * thread at a time (@locality: the inference thread). */
#ifndef VIGIL_MODEL_BERT_H
#define VIGIL_MODEL_BERT_H

#include <stddef.h>
#include <stdint.h>

#include "kernels.h"

typedef struct model_bert_config {
    int64_t vocab;        /* V */
    int64_t hidden;       /* H */
    int64_t layers;       /* number of transformer layers */
    int64_t heads;        /* attention heads; H % heads == 0 */
    int64_t intermediate; /* I, the feed-forward width */
    int64_t max_pos;      /* P, position embeddings */
    int64_t type_vocab;   /* token type embeddings */
    float ln_eps;
} model_bert_config_t;

typedef struct model_bert model_bert_t;

/* Loads the model folder dir onto be (borrowed; must outlive the model). max_seq: longest input
 * in tokens with [CLS] and [SEP] (longer texts are truncated, as sentence-transformers'
 * max_seq_length); 2..config max_pos. NULL with err naming the file and the problem. */
model_bert_t *model_bert_load(kernels_backend_t *be, const char *dir, int max_seq, char *err,
                              size_t errlen);
void model_bert_free(model_bert_t *m);

const model_bert_config_t *model_bert_config(const model_bert_t *m);
/* H: the width of an embedding. */
size_t model_bert_dim(const model_bert_t *m);
int model_bert_max_seq(const model_bert_t *m);
/* sha256 of model.safetensors, hex: news heads record which encoder they were trained on. */
const char *model_bert_weights_sha256(const model_bert_t *m);

/* Has hook(ctx) called between the steps of every later forward pass, so that its caller can give
 * the CPU up in between (model_runtime does, at news_priority idle: model_pace.h). A step is then
 * at most a few dozen tokens' row-wise work, or one sequence's attention: about a millisecond of
 * one core for MiniLM. The embeddings agree with those computed without a hook to rounding (each
 * row's arithmetic is the same; only the BLAS's blocking may differ). hook NULL: no steps, every
 * op covers a whole chunk of sequences, which is fastest. */
void model_bert_set_yield(model_bert_t *m, void (*hook)(void *ctx), void *ctx);

/* Embeddings of n texts (texts[i], lens[i] bytes of UTF-8) into out (n x H floats, host),
 * L2-normalised when normalize is set, else the mean-pooled token states. Returns 0 or -1 with
 * err. */
int model_bert_encode(model_bert_t *m, const char *const *texts, const size_t *lens, size_t n,
                      int normalize, float *out, char *err, size_t errlen);

/* The same from token ids: n_seq sequences of seq_len ids (with [CLS]/[SEP]/[PAD] framing) and
 * their 0/1 masks, host arrays of n_seq * seq_len. seq_len <= max_seq. */
int model_bert_encode_ids(model_bert_t *m, const int32_t *ids, const uint8_t *mask, size_t n_seq,
                          size_t seq_len, int normalize, float *out, char *err, size_t errlen);

#endif
