/* Offline training of vigil's small models on the kernels (kernels.h), so that it runs on
 * whichever backend the caller hands in, a GPU when there is one, with the ops inference uses:
 * the risk MLP (binary cross-entropy) and linear softmax heads (the news model's sentiment and
 * topic heads), both with mini-batch AdamW; and the metrics their training reports (ROC AUC,
 * average precision, accuracy, macro-F1), computed on the host.
 *
 * Each step gathers its shuffled mini-batch on the host and copies it to the backend; weights,
 * gradients and AdamW moments stay on the backend until training ends. Deterministic for a given
 * seed on a given backend (the backends sum in different orders, so a CPU and a CUDA run differ
 * in the last bits). The weights in and out are host arrays. */
#ifndef VIGIL_TRAIN_H
#define VIGIL_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels.h"
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
 * dims[0], raw features) with 0/1 labels y, on be (borrowed; used by this thread only until
 * return): first the normalisation statistics, then the weights (He initialisation, ReLU,
 * sigmoid output). Progress lines (each epoch's mean training loss) go to progress (may be
 * NULL). Returns 0, or -1 with err. */
int train_mlp_fit(kernels_backend_t *be, model_risk_weights_t *w, const float *x, const uint8_t *y,
                  size_t n, const train_options_t *o, FILE *progress, char *err, size_t errlen);

/* One step's loss and gradient, computed on be exactly as train_mlp_fit computes each step's: the
 * mean binary cross-entropy of w on n rows of x (raw features, normalised with w's statistics as
 * training and scoring do) with 0/1 labels y into *loss, and its gradient with respect to every
 * weight and bias into g (allocated with w's widths; its statistics are left alone). For tests
 * (finite differences) and for callers that step a model themselves. Returns 0, or -1 with err. */
int train_mlp_gradient(kernels_backend_t *be, const model_risk_weights_t *w, const float *x,
                       const uint8_t *y, size_t n, model_risk_weights_t *g, float *loss, char *err,
                       size_t errlen);

/* Fits a linear softmax classifier on be (borrowed, as above): logits = x W + b, x (n x d), W
 * (d x c), b (c), labels in [0, c). W and b are overwritten. Progress lines report each epoch's
 * mean cross-entropy, unweighted even when class_balanced weights the gradient. Returns 0, or -1
 * with err. */
int train_softmax_fit(kernels_backend_t *be, float *W, float *b, size_t d, size_t c, const float *x,
                      const int32_t *labels, size_t n, const train_options_t *o, FILE *progress,
                      char *err, size_t errlen);

/* One step's gradient, as train_softmax_fit computes it: of sum_r row_weight[r] CE_r /
 * sum_r row_weight[r] over the n rows (CE_r the cross-entropy of row r; row_weight NULL: all
 * equal, the mean), with respect to W into gW (d x c) and b into gb (c). *loss (may be NULL)
 * receives the unweighted mean cross-entropy. Returns 0, or -1 with err. */
int train_softmax_gradient(kernels_backend_t *be, const float *W, const float *b, size_t d,
                           size_t c, const float *x, const int32_t *labels, const float *row_weight,
                           size_t n, float *gW, float *gb, float *loss, char *err, size_t errlen);

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
