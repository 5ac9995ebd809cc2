/* Internals shared by the feature engine's files (features_spec.c, features_compute.c,
 * features_state.c): the compiled spec, the state of a partition, and the record layout both
 * agree on. Only those files include it; everyone else sees behavior_features.h. */
#ifndef VIGIL_FEATURES_INTERNAL_H
#define VIGIL_FEATURES_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "behavior_features.h"
#include "entity_store.h"

#define SPEC_ENTITIES_MAX 8
#define SPEC_WINDOWS_MAX 4 /* distinct window lengths per entity type */
#define SPEC_MEMBERS_MAX 8 /* sums, and count_ifs, per window */
#define SPEC_ITEMS_MAX 256
#define SPEC_NAME_MAX 64
#define WINDOW_BUCKETS 6 /* a window of length W is 6 buckets of W/6 (docs/features.md) */

typedef enum item_kind {
    ITEM_NUMERIC,
    ITEM_CATEGORICAL,
    ITEM_HOUR,
    ITEM_COUNT,
    ITEM_SUM,
    ITEM_COUNT_IF,
    ITEM_SINCE_LAST,
    ITEM_GEO,
    ITEM_ZSCORE,
    ITEM_NOVELTY,
} item_kind_t;

/* One window length of an entity type: WINDOW_BUCKETS buckets, each holding a count, the sums
 * and the conditional counts that the spec asks for at this length. */
typedef struct spec_window {
    int64_t span_ms, width_ms; /* W and W / WINDOW_BUCKETS (rounded up) */
    double inv_width;          /* 1 / width_ms, for bucket_of */
    char label[16];            /* as written: "1h" */
    int n_sums, n_ifs;
    int sum_field[SPEC_MEMBERS_MAX];
    int if_field[SPEC_MEMBERS_MAX];
    char *if_value[SPEC_MEMBERS_MAX];
    size_t counts_off; /* uint16_t [WINDOW_BUCKETS] */
    size_t sums_off;   /* float [n_sums][WINDOW_BUCKETS] */
    size_t ifs_off;    /* uint16_t [n_ifs][WINDOW_BUCKETS] */
} spec_window_t;

typedef struct spec_entity {
    char name[SPEC_NAME_MAX];
    int key_field;
    spec_window_t win[SPEC_WINDOWS_MAX];
    int n_win;
    size_t slot_size;
} spec_entity_t;

typedef struct spec_item {
    item_kind_t kind;
    int entity;        /* for aggregates */
    int field, field2; /* input fields (field2: longitude) */
    int window, member;
    /* numeric */
    int log, present, has_clip;
    double lo, hi, missing;
    /* categorical */
    uint32_t buckets;
    /* novelty */
    int k;
    size_t off;  /* payload block of geo, zscore (mean, m2), novelty */
    size_t off2; /* zscore: its count */
    size_t col;  /* first output column */
} spec_item_t;

struct features_spec {
    spec_entity_t ent[SPEC_ENTITIES_MAX];
    int n_ent;
    spec_item_t items[SPEC_ITEMS_MAX];
    int n_items;
    char **columns;
    size_t width;
    uint64_t hash;
};

struct features_state {
    const features_spec_t *spec; /* borrowed: outlives the state */
    entity_store_t *store[SPEC_ENTITIES_MAX];
    uint64_t late_dropped;
};

/* Geo block: where and when the entity was last seen located. */
typedef struct geo_block {
    int64_t last_ms_plus1; /* 0: never located */
    float lat, lon;
} geo_block_t;

#endif
