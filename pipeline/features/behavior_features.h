/* Behavior features: a feature spec (which input fields become which features, which entities
 * keep which aggregates), the per-partition entity state, and the function that turns one event
 * into one feature vector while updating that state. docs/features.md is the user's guide: the
 * spec language and the exact semantics of every aggregate.
 *
 * The pipeline knows nothing of Avro or Kafka: the caller describes its input fields once
 * (features_field_t: name and type) and hands each event over as two arrays indexed like that
 * description (numbers, strings) plus its event time.
 *
 * Determinism is the point of the design: the vector an event gets depends only on the events of
 * its partition before it, in offset order, and on the spec. A state restored from a checkpoint
 * (features_state_save / features_state_load) and fed the same events gives the same vectors. */
#ifndef VIGIL_BEHAVIOR_FEATURES_H
#define VIGIL_BEHAVIOR_FEATURES_H

#include <stddef.h>
#include <stdint.h>

typedef enum features_field_type {
    FEATURES_FIELD_NUMBER, /* a double; NaN when absent */
    FEATURES_FIELD_STRING, /* a string; NULL when absent */
} features_field_type_t;

typedef struct features_field {
    const char *name;
    features_field_type_t type;
} features_field_t;

/* One event as the feature engine sees it. num[i] / str[i] hold field i of the description the
 * spec was compiled against (only the array matching the field's type is read). */
typedef struct features_event {
    int64_t time_ms; /* event time, epoch milliseconds, >= 0 */
    const double *num;
    const char *const *str;
} features_event_t;

typedef struct features_spec features_spec_t;

/* The built-in spec for BehaviorEvent (docs/features.md shows it). */
extern const char features_default_spec[];

/* The fields the built-in spec is written against: BehaviorEvent's own, in this order (daemon/
 * featurize fills the engine's arrays by these indices, then appends a reader schema's extras). */
enum {
    FEATURES_BF_EVENT_ID,
    FEATURES_BF_EVENT_TYPE,
    FEATURES_BF_USER_ID,
    FEATURES_BF_ACCOUNT_ID,
    FEATURES_BF_DEVICE_ID,
    FEATURES_BF_IP,
    FEATURES_BF_AMOUNT,
    FEATURES_BF_CURRENCY,
    FEATURES_BF_MERCHANT_ID,
    FEATURES_BF_MERCHANT_CATEGORY,
    FEATURES_BF_COUNTRY,
    FEATURES_BF_LATITUDE,
    FEATURES_BF_LONGITUDE,
    FEATURES_BF_CHANNEL,
    FEATURES_BF_COUNT
};
extern const features_field_t features_behavior_fields[FEATURES_BF_COUNT];

/* Compiles spec text against the caller's fields. origin names the text in errors ("file.spec",
 * "built-in spec"): every error says origin:line and what is wrong. Returns NULL with err. */
features_spec_t *features_spec_new(const char *text, const char *origin,
                                   const features_field_t *fields, size_t n_fields, char *err,
                                   size_t errlen);
void features_spec_free(features_spec_t *spec);

/* Width of the feature vector, and the name of column i ("user.count.1h", "hour.sin", ...). */
size_t features_spec_width(const features_spec_t *spec);
const char *features_spec_column(const features_spec_t *spec, size_t i);
/* A hash of the compiled spec: checkpoints taken under another spec are not reused. */
uint64_t features_spec_hash(const features_spec_t *spec);
/* Per entity type: its name, and the bytes one of its entities takes (record + index share). */
size_t features_spec_entities(const features_spec_t *spec);
const char *features_spec_entity_name(const features_spec_t *spec, size_t e);
size_t features_spec_entity_bytes(const features_spec_t *spec, size_t e);

/* The entity state of one partition: one entity store per entity type of the spec, each holding
 * at most max_entities entities that expire ttl_ms (event time) after their last event (0: never).
 */
typedef struct features_state features_state_t;

features_state_t *features_state_new(const features_spec_t *spec, uint32_t max_entities,
                                     int64_t ttl_ms, char *err, size_t errlen);
void features_state_free(features_state_t *st);

/* Turns ev into its feature vector (out: features_spec_width floats) and updates st with it.
 * Returns 0, or -1 when out of memory (st is then unchanged for the entity that failed and the
 * caller must treat the state as lost). @locality: the thread owning st. */
int features_compute(const features_spec_t *spec, features_state_t *st, const features_event_t *ev,
                     float *out);

/* The same for n events in order (evs[i] gives outs[i]), faster: the memory of later events
 * is fetched while earlier ones are computed. Returns 0, or -1 when out of memory (as above;
 * events before the failing one are done). */
int features_compute_batch(const features_spec_t *spec, features_state_t *st,
                           const features_event_t *evs, size_t n, float *const *outs);

/* Counters of a state, for metrics. */
typedef struct features_stats {
    uint64_t entities;     /* live, all types */
    uint64_t evictions;    /* capacity and TTL evictions */
    uint64_t late_dropped; /* events too old for a window they fall in (see docs) */
    size_t bytes;          /* memory held by the stores */
} features_stats_t;
void features_state_stats(const features_state_t *st, features_stats_t *out);

/* Checkpoint: the whole state as bytes (host byte order), replacing *out's contents (grown with
 * realloc as needed; the caller frees it). Returns 0, or -1 when out of memory. */
int features_state_save(const features_state_t *st, uint8_t **out, size_t *len, size_t *cap);
/* Replaces st with a checkpoint taken by features_state_save under the same spec. Returns 0, or
 * -1 with err (another spec, corrupt bytes); st is then empty. */
int features_state_load(features_state_t *st, const uint8_t *data, size_t len, char *err,
                        size_t errlen);
/* Forgets every entity. */
void features_state_clear(features_state_t *st);

/* Normalisation: per column mean and standard deviation, fitted on training vectors and stored
 * with the model, so that serving scales exactly as training did. */
typedef struct features_norm {
    size_t width;
    double *mean; /* (width) */
    double *std;  /* (width); columns with no spread get 1 */
} features_norm_t;

/* Fits mean and std over n vectors (x: (n, width) row-major). Returns 0, -1 when out of memory. */
int features_norm_fit(features_norm_t *norm, const float *x, size_t n, size_t width);
/* out[i] = (in[i] - mean[i]) / std[i]; in and out may be the same array. */
void features_norm_apply(const features_norm_t *norm, const float *in, float *out);
void features_norm_free(features_norm_t *norm);

#endif
