/* Normalisation: per column mean and standard deviation fitted on training vectors (Welford),
 * stored with the model so that serving scales exactly as training did. */
#include <math.h>
#include <stdlib.h>

#include "behavior_features.h"

int features_norm_fit(features_norm_t *norm, const float *x, size_t n, size_t width)
{
    norm->width = width;
    norm->mean = calloc(width ? width : 1, sizeof(double));
    norm->std = calloc(width ? width : 1, sizeof(double));
    if (!norm->mean || !norm->std) {
        features_norm_free(norm);
        return -1;
    }
    for (size_t j = 0; j < width; j++) {
        double mean = 0, m2 = 0;
        for (size_t i = 0; i < n; i++) {
            double v = x[i * width + j], d = v - mean;
            mean += d / (double)(i + 1);
            m2 += d * (v - mean);
        }
        double sd = n > 1 ? sqrt(m2 / (double)(n - 1)) : 0.0;
        norm->mean[j] = mean;
        norm->std[j] = sd > 1e-12 ? sd : 1.0;
    }
    return 0;
}

void features_norm_apply(const features_norm_t *norm, const float *in, float *out)
{
    for (size_t j = 0; j < norm->width; j++)
        out[j] = (float)(((double)in[j] - norm->mean[j]) / norm->std[j]);
}

void features_norm_free(features_norm_t *norm)
{
    free(norm->mean);
    free(norm->std);
    norm->mean = norm->std = NULL;
    norm->width = 0;
}
