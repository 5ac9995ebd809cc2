/* The bridge between decoded BehaviorEvents (ingest) and the feature engine (pipeline): which
 * fields the feature spec may name (BehaviorEvent's own, then the reader schema's extra fields),
 * and each event handed over in the engine's terms.
 *
 * A featurize_t is read-only once built and may be shared; the entity state it works on is the
 * caller's (one per partition, @locality: the worker thread). */
#ifndef VIGIL_FEATURIZE_H
#define VIGIL_FEATURIZE_H

#include <stddef.h>
#include <stdint.h>

#include "behavior_features.h"
#include "ingest_avro.h"

typedef struct featurize featurize_t;

/* Compiles the feature spec at spec_path ("" for the built-in one) against the fields of the
 * events decoder dec. Returns NULL with err (the spec's file:line and what is wrong). */
featurize_t *featurize_new(const ingest_avro_t *dec, const char *spec_path, char *err,
                           size_t errlen);
void featurize_free(featurize_t *fz);

const features_spec_t *featurize_spec(const featurize_t *fz);
/* The spec's hash as 16 hex digits (vigil.feature_specs, risk_scores.feature_spec). */
const char *featurize_spec_hash(const featurize_t *fz);
/* The spec text, as read. */
const char *featurize_spec_text(const featurize_t *fz);

/* How many input fields the spec sees (BehaviorEvent's own plus the reader schema's extras). */
size_t featurize_fields(const featurize_t *fz);

/* ev as the feature engine sees it, into *out, whose arrays are num and str (featurize_fields
 * entries each); they borrow ev's strings. For features_compute_batch. */
void featurize_view(const featurize_t *fz, const ingest_event_t *ev, double *num, const char **str,
                    features_event_t *out);

/* ev's feature vector into out (features_spec_width floats), updating st. Returns 0, or -1 when
 * out of memory (the state must then be considered lost). */
int featurize_event(const featurize_t *fz, features_state_t *st, const ingest_event_t *ev,
                    float *out);

#endif
