/* The risk model: an MLP over the behavior feature vector (ReLU hidden layers, one sigmoid
 * output: the probability that the event is fraud), stored as a vigil model file.
 *
 * File (model_file.h), vigil.arch "risk_mlp":
 *   vigil.layers          JSON array of layer widths, input first, 1 last: "[66, 64, 32, 1]"
 *   vigil.feature_spec    the spec text the vectors were made with
 *   vigil.feature_spec_hash  its hash (16 hex digits, featurize_spec_hash): a daemon whose spec
 *                         differs refuses the model rather than feed it other columns
 *   vigil.feature_columns JSON array of the column names
 *   vigil.norm_mean, vigil.norm_std  JSON arrays: training-set column statistics; serving scales
 *                         x' = (x - mean) / std exactly as training did
 *   vigil.training        JSON object: data, sizes and held-out metrics of the training run
 *   tensors layers.<l>.weight (in, out) and layers.<l>.bias (out), y = x W + b.
 *
 * A model_risk_t runs on one kernels backend and is used by one thread at a time. */
#ifndef VIGIL_MODEL_RISK_H
#define VIGIL_MODEL_RISK_H

#include <stddef.h>

#include "kernels.h"

#define MODEL_RISK_HIDDEN_MAX 4
/* Normalised inputs are clipped to +-MODEL_RISK_CLIP, in training and serving alike: a column
 * that barely varied in the training data (the hour, in data that spans minutes) must not turn a
 * live value into a z-score of thousands that saturates the output. */
#define MODEL_RISK_CLIP 10.0f

/* The weights on the host, as training makes them. dims[0] is the input width, dims[n_layers]
 * is 1; layer l maps dims[l] to dims[l + 1]. */
typedef struct model_risk_weights {
    size_t n_layers;
    size_t dims[MODEL_RISK_HIDDEN_MAX + 2];
    float *w[MODEL_RISK_HIDDEN_MAX + 1]; /* (dims[l], dims[l + 1]) */
    float *b[MODEL_RISK_HIDDEN_MAX + 1]; /* (dims[l + 1]) */
    double *mean, *std;                  /* (dims[0]) normalisation */
} model_risk_weights_t;

/* Allocates zeroed weights for the layer widths dims[0..n_layers] (dims[n_layers] must be 1).
 * Returns 0, or -1 (out of memory or bad widths; w is then empty). */
int model_risk_weights_alloc(model_risk_weights_t *w, const size_t *dims, size_t n_layers);
void model_risk_weights_free(model_risk_weights_t *w);

/* What a risk model file records besides its weights. */
typedef struct model_risk_info {
    const char *version; /* NULL: "risk-" and the first 12 hex digits of the tensors' sha256 */
    const char *spec_text, *spec_hash;
    const char *const *columns; /* dims[0] names */
    const char *training_json;  /* a JSON object, or NULL */
} model_risk_info_t;

/* Writes w to path. version_out (may be NULL) receives the version written. 0 or -1 with err. */
int model_risk_save(const char *path, const model_risk_weights_t *w, const model_risk_info_t *info,
                    char *version_out, size_t version_cap, char *err, size_t errlen);

typedef struct model_risk model_risk_t;

/* Reads, checks (every tensor, shape, dtype, the metadata, the checksum) and uploads the model at
 * path onto be (borrowed). NULL with err naming the file and the problem. */
model_risk_t *model_risk_load(kernels_backend_t *be, const char *path, char *err, size_t errlen);
void model_risk_free(model_risk_t *m);

const char *model_risk_version(const model_risk_t *m);
const char *model_risk_spec_hash(const model_risk_t *m);
size_t model_risk_width(const model_risk_t *m);

/* Scores n raw feature vectors x (n x width, host) into scores (n, host): the fraud
 * probability. Returns 0 or -1 with err. */
int model_risk_score(model_risk_t *m, const float *x, size_t n, float *scores, char *err,
                     size_t errlen);

/* The same on the host in plain C, from weights: the reference the tests hold the kernels to,
 * and the trainer's evaluation. */
void model_risk_score_ref(const model_risk_weights_t *w, const float *x, size_t n, float *scores);

/* Why the model gave n raw rows x (n x width) their scores: input x gradient. attr (n x width,
 * host) gets, for row r and column i, z_i * d logit / d z_i, where z is the normalised (clipped)
 * input and logit the output before the sigmoid (which flattens near 0 and 1 and would hide what
 * drove a score of 0.999). For a ReLU network that is how the column moved the logit away from
 * an input at the training set's mean (z = 0), to first order; positive pushed towards fraud.
 * One forward and one backward pass on the kernels, the ones training uses. 0 or -1 with err. */
int model_risk_explain(model_risk_t *m, const float *x, size_t n, float *attr, char *err,
                       size_t errlen);
/* The same in plain C from weights, in double: what the tests hold model_risk_explain to. */
void model_risk_explain_ref(const model_risk_weights_t *w, const float *x, size_t n, float *attr);

/* (x - mean) / std, clipped to +-MODEL_RISK_CLIP: the input the MLP sees. */
static inline float model_risk_normalise(float x, float mean, float inv_std)
{
    float z = (x - mean) * inv_std;
    return z > MODEL_RISK_CLIP ? MODEL_RISK_CLIP : z < -MODEL_RISK_CLIP ? -MODEL_RISK_CLIP : z;
}

#endif
