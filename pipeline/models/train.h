/* Offline training of vigil's small models, in plain C on the host: the risk MLP (binary
 * cross-entropy) and linear softmax heads (the news model's sentiment and topic heads), both with
 * mini-batch AdamW; and the metrics their training reports (ROC AUC, average precision,
 * accuracy, macro-F1).
 *
 * These models are small enough (thousands of weights, a few hundred thousand rows) that the host
 * trains them in seconds; the expensive part of news training, the encoder's embeddings, runs on
 * the kernels. Deterministic for a given seed. */
#ifndef VIGIL_TRAIN_H
#define VIGIL_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "model_risk.h"

typedef struct train_options {
    int epochs;
    size_t batch;
    float lr;
    float weight_decay;
    uint64_t seed;
    int class_balanced; /* softmax: weight each class by n / (classes * count) */
} train_options_t;

/* Fits w (allocated with its layer widths by model_risk_weights_alloc) to n rows of x (n x
 * dims[0], raw features) with 0/1 labels y: first the normalisation statistics, then the weights
 * (He initialisation, ReLU, sigmoid output). Progress lines go to progress (may be NULL).
 * Returns 0, or -1 with err. */
int train_mlp_fit(model_risk_weights_t *w, const float *x, const uint8_t *y, size_t n,
                  const train_options_t *o, FILE *progress, char *err, size_t errlen);

/* Fits a linear softmax classifier: logits = x W + b, x (n x d), W (d x c), b (c), labels in
 * [0, c). W and b are overwritten. Returns 0, or -1 with err. */
int train_softmax_fit(float *W, float *b, size_t d, size_t c, const float *x, const int32_t *labels,
                      size_t n, const train_options_t *o, FILE *progress, char *err, size_t errlen);
/* argmax of x W + b per row into pred (n), and the softmax probabilities into probs (n x c; may
 * be NULL). */
void train_softmax_predict(const float *W, const float *b, size_t d, size_t c, const float *x,
                           size_t n, int32_t *pred, float *probs);

/* Area under the ROC curve (ties count half) and average precision of scores against 0/1
 * labels; NaN when one class is absent. */
double train_roc_auc(const float *scores, const uint8_t *y, size_t n);
double train_average_precision(const float *scores, const uint8_t *y, size_t n);
/* Accuracy and macro-F1 (mean over the c classes of per-class F1; a class never predicted nor
 * present counts 0) of predictions against labels. */
void train_class_metrics(const int32_t *pred, const int32_t *labels, size_t n, size_t c,
                         double *accuracy, double *macro_f1);

#endif
