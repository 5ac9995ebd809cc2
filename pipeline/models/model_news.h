/* The news model's heads: two linear softmax classifiers over the sentence embedding of the
 * encoder (model_bert.h), one for sentiment (negative / neutral / positive) and one for the
 * topic, stored as a vigil model file. `vigil train news` makes them (daemon/cli/train_news.c).
 *
 * File (model_file.h), vigil.arch "news_heads":
 *   vigil.version          what result rows record as model_version
 *   vigil.encoder          the encoder the embeddings come from: "bert" (model_bert.h) or "ngram"
 *                          (the fallback, model_ngram.h)
 *   vigil.encoder_sha256   bert: sha256 of the encoder's weights (model_bert_weights_sha256) the
 *                          heads were trained on: a daemon running another encoder refuses them,
 *                          since the heads are meaningless on another embedding space
 *   vigil.ngram_buckets, vigil.ngram_seed  ngram: the encoder's buckets and seed, decimal (with
 *                          E they fix its embedding bit for bit; E is then a multiple of 64 in
 *                          64..4096)
 *   vigil.embedding_dim    E, decimal
 *   vigil.labels.sentiment JSON array, exactly ["negative","neutral","positive"] (index order)
 *   vigil.labels.topic     JSON array of the T topic names, in index order (unique, non-empty)
 *   vigil.training         JSON object: data files, row counts, held-out accuracy and macro-F1
 *   tensors sentiment.weight (E, 3), sentiment.bias (3), topic.weight (E, T), topic.bias (T);
 *   logits y = x W + b (the model_risk convention), probabilities softmax(y).
 *
 * The heads are tiny (E x 23 weights), so classification runs on the host in plain C, with the
 * same arithmetic as the trainer's train_softmax_predict: no kernels backend is involved. A
 * model_news_t is read-only after loading; any number of threads may classify with it at once. */
#ifndef VIGIL_MODEL_NEWS_H
#define VIGIL_MODEL_NEWS_H

#include <stddef.h>
#include <stdint.h>

/* The sentiment head always has these three classes, in this order. */
#define MODEL_NEWS_N_SENTIMENT 3
/* Topic heads have 1..MODEL_NEWS_TOPICS_MAX classes. */
#define MODEL_NEWS_TOPICS_MAX 1024

typedef struct model_news model_news_t;

/* The heads on the host, as training makes them and saving takes them (nothing here is owned by
 * the save: the caller allocates and frees). sent_w (dim, n_sentiment), sent_b (n_sentiment),
 * topic_w (dim, n_topic), topic_b (n_topic); n_sentiment must be 3 with the labels
 * negative, neutral, positive. */
typedef struct model_news_heads {
    size_t dim, n_sentiment, n_topic;
    float *sent_w, *sent_b, *topic_w, *topic_b;
    char **sentiment_labels, **topic_labels;
} model_news_heads_t;

/* The sentiment labels every news model has, in index order. */
extern const char *const model_news_sentiment_names[MODEL_NEWS_N_SENTIMENT];

/* Writes heads trained on the BERT encoder to path (atomically, see model_file_write). version
 * NULL: "news-" and the first 12 hex digits of the tensors' sha256. encoder_sha256: 64 lower-case
 * hex digits. training_json: a JSON object, or NULL for "{}". version_out (may be NULL) receives
 * the version written. Refuses (-1 with err) what model_news_load would refuse: bad shapes,
 * labels, non-finite weights. */
int model_news_save(const char *path, const model_news_heads_t *h, const char *version,
                    const char *encoder_sha256, const char *training_json, char *version_out,
                    size_t cap, char *err, size_t errlen);
/* The same for heads trained on the n-gram encoder (buckets, h->dim, seed). */
int model_news_save_ngram(const char *path, const model_news_heads_t *h, const char *version,
                          uint32_t buckets, uint64_t seed, const char *training_json,
                          char *version_out, size_t cap, char *err, size_t errlen);

/* Reads and checks the heads at path: the structure, the checksum, vigil.arch, every metadata key
 * above, label counts against the tensor shapes, every tensor's name, dtype and shape (and no
 * other tensor), finite weights. encoder_sha256 (may be NULL: not checked) is the sha256 of the
 * BERT encoder the caller runs; heads trained on another, or on the n-gram encoder, are refused.
 * NULL with err naming the file and the problem. */
model_news_t *model_news_load(const char *path, const char *encoder_sha256, char *err,
                              size_t errlen);
void model_news_free(model_news_t *m);

const char *model_news_version(const model_news_t *m);
/* The encoder the heads were trained on: "bert" or "ngram" (static strings). */
const char *model_news_encoder(const model_news_t *m);
/* bert: the encoder's weights sha256 (vigil.encoder_sha256); ngram: "". */
const char *model_news_encoder_sha256(const model_news_t *m);
/* ngram: the encoder's buckets and seed (its dimension is model_news_dim); bert: 0 and 0. */
void model_news_ngram_params(const model_news_t *m, uint32_t *buckets, uint64_t *seed);
/* E: the embedding width the heads take. */
size_t model_news_dim(const model_news_t *m);
size_t model_news_n_topics(const model_news_t *m);
/* The label of class i; NULL when i is out of range. */
const char *model_news_sentiment_label(const model_news_t *m, size_t i);
const char *model_news_topic_label(const model_news_t *m, size_t i);

/* n embeddings emb (n x dim, host) -> per row the argmax class of each head (sentiment[n],
 * topic[n]) and the softmax probabilities (sent_probs n x 3, topic_probs n x T; either may be
 * NULL when not wanted). Exactly train_softmax_predict's results for the same weights. */
void model_news_classify(const model_news_t *m, const float *emb, size_t n, int32_t *sentiment,
                         float *sent_probs, int32_t *topic, float *topic_probs);

#endif
