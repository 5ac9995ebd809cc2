/* The per-event feature computation: one event becomes one feature vector while its entities'
 * records (windows, geo, zscore, novelty blocks, laid out by features_spec.c) are updated.
 * Compiled with -ffp-contract=off, so the vectors are bit-identical live and replayed. */
#define _GNU_SOURCE /* sincos */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "entity_store.h"
#include "features_internal.h"

#define ZSCORE_LIMIT 100.0  /* |z| is clipped here so one outlier cannot dominate the input */
#define GEO_MIN_DT_MS 60000 /* speeds are computed over at least a minute */

/* The bucket a time falls in: floor(t / width) for t >= 0. A 64-bit division per window and
 * entity was the largest cost of an event; a multiplication by the reciprocal, corrected by one
 * where rounding put it across a bucket edge, gives the same exact answer. */
static inline int64_t bucket_of(const spec_window_t *win, int64_t t)
{
    int64_t q = (int64_t)((double)t * win->inv_width);
    if (q * win->width_ms > t)
        q--;
    else if ((q + 1) * win->width_ms <= t)
        q++;
    return q;
}

#define AT(h, off, type) ((type *)((uint8_t *)(h) + (off)))

/* Moves an entity's window from its old watermark to the new one, clearing the buckets that
 * fall out, then adds the event at t to its bucket if that is still in the window. */
static void window_update(const spec_window_t *win, entity_header_t *h, int64_t prev_ms, int64_t t,
                          const features_event_t *ev, uint64_t *late_dropped)
{
    uint16_t *counts = AT(h, win->counts_off, uint16_t);
    float *sums = AT(h, win->sums_off, float);
    uint16_t *ifs = AT(h, win->ifs_off, uint16_t);
    int64_t nb = bucket_of(win, h->last_ms);
    int64_t eb = t == h->last_ms ? nb : bucket_of(win, t);
    int64_t pb = prev_ms == INT64_MIN ? 0 : prev_ms == h->last_ms ? nb : bucket_of(win, prev_ms);

    if (prev_ms == INT64_MIN || nb - pb >= WINDOW_BUCKETS) {
        memset(counts, 0, sizeof(uint16_t) * WINDOW_BUCKETS);
        memset(sums, 0, sizeof(float) * WINDOW_BUCKETS * (size_t)win->n_sums);
        memset(ifs, 0, sizeof(uint16_t) * WINDOW_BUCKETS * (size_t)win->n_ifs);
    } else {
        for (int64_t b = pb + 1; b <= nb; b++) {
            int r = (int)(b % WINDOW_BUCKETS);
            counts[r] = 0;
            for (int m = 0; m < win->n_sums; m++)
                sums[m * WINDOW_BUCKETS + r] = 0;
            for (int m = 0; m < win->n_ifs; m++)
                ifs[m * WINDOW_BUCKETS + r] = 0;
        }
    }
    if (eb <= nb - WINDOW_BUCKETS) {
        (*late_dropped)++;
        return;
    }
    int r = (int)(eb % WINDOW_BUCKETS);
    if (counts[r] < UINT16_MAX)
        counts[r]++;
    for (int m = 0; m < win->n_sums; m++) {
        double v = ev->num[win->sum_field[m]];
        if (!isnan(v))
            sums[m * WINDOW_BUCKETS + r] += (float)v;
    }
    for (int m = 0; m < win->n_ifs; m++) {
        const char *s = ev->str[win->if_field[m]];
        if (s && strcmp(s, win->if_value[m]) == 0 && ifs[m * WINDOW_BUCKETS + r] < UINT16_MAX)
            ifs[m * WINDOW_BUCKETS + r]++;
    }
}

static float window_total16(const uint16_t *b)
{
    uint32_t t = 0;
    for (int i = 0; i < WINDOW_BUCKETS; i++)
        t += b[i];
    return (float)t;
}

static float window_total32(const float *b)
{
    double t = 0;
    for (int i = 0; i < WINDOW_BUCKETS; i++)
        t += b[i];
    return (float)t;
}

static double haversine_km(double lat1, double lon1, double lat2, double lon2)
{
    const double rad = M_PI / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double a = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2.0 * 6371.0088 * asin(sqrt(a > 1.0 ? 1.0 : a));
}

/* The items that read the event alone. */

static void item_numeric(const spec_item_t *it, const features_event_t *ev, float *o)
{
    double v = ev->num[it->field];
    if (it->present) {
        o[0] = isnan(v) ? 0.0f : 1.0f;
        return;
    }
    if (isnan(v)) {
        o[0] = (float)it->missing;
        return;
    }
    if (it->log)
        v = v < 0 ? -log1p(-v) : log1p(v);
    if (it->has_clip)
        v = v < it->lo ? it->lo : v > it->hi ? it->hi : v;
    o[0] = (float)v;
}

static void item_categorical(const spec_item_t *it, const features_event_t *ev, float *o)
{
    const char *s = ev->str[it->field];
    memset(o, 0, sizeof(float) * it->buckets);
    if (s)
        o[entity_key_hash(s) % it->buckets] = 1.0f;
}

static void item_hour(int64_t t, float *o)
{
    double day = (double)(t % 86400000) / 86400000.0, sn, cs;
    sincos(2.0 * M_PI * day, &sn, &cs);
    o[0] = (float)sn;
    o[1] = (float)cs;
}

/* The items over an entity's record (eh: NULL when the event lacks the entity's key); those
 * with a payload block update it after reading it. */

static void item_since_last(const entity_header_t *eh, int is_new, int64_t prev, int64_t t,
                            float *o)
{
    if (!eh) {
        o[0] = o[1] = 0.0f;
    } else if (is_new || prev == INT64_MIN) {
        o[0] = 0.0f;
        o[1] = 1.0f;
    } else {
        int64_t d = t - prev;
        o[0] = d > 0 ? (float)((double)d / 1000.0) : 0.0f;
        o[1] = 0.0f;
    }
}

static void item_geo(const spec_item_t *it, entity_header_t *eh, const features_event_t *ev,
                     float *o)
{
    const int64_t t = ev->time_ms;
    double lat = ev->num[it->field], lon = ev->num[it->field2];
    geo_block_t *g = eh ? AT(eh, it->off, geo_block_t) : NULL;
    o[0] = o[1] = 0.0f;
    if (!g || isnan(lat) || isnan(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180)
        return;
    if (g->last_ms_plus1 != 0) {
        int64_t last = g->last_ms_plus1 - 1;
        int64_t dt = t >= last ? t - last : last - t;
        double km = haversine_km(g->lat, g->lon, lat, lon);
        if (dt < GEO_MIN_DT_MS)
            dt = GEO_MIN_DT_MS;
        o[0] = (float)km;
        o[1] = (float)(km / ((double)dt / 3600000.0));
        if (t < last)
            return; /* a late event does not replace the newer location */
    }
    g->last_ms_plus1 = t + 1;
    g->lat = (float)lat;
    g->lon = (float)lon;
}

static void item_zscore(const spec_item_t *it, entity_header_t *eh, const features_event_t *ev,
                        float *o)
{
    double x = ev->num[it->field];
    o[0] = 0.0f;
    if (!eh || isnan(x))
        return;
    double *mean = AT(eh, it->off, double), *m2 = mean + 1;
    uint32_t *n = AT(eh, it->off2, uint32_t);
    if (*n >= 2) {
        double sd = sqrt(*m2 / (double)(*n - 1));
        double z = sd > 0 ? (x - *mean) / sd : 0.0;
        o[0] = (float)(z > ZSCORE_LIMIT ? ZSCORE_LIMIT : z < -ZSCORE_LIMIT ? -ZSCORE_LIMIT : z);
    }
    if (*n < UINT32_MAX) {
        double d = x - *mean;
        (*n)++;
        *mean += d / (double)*n;
        *m2 += d * (x - *mean);
    }
}

static void item_novelty(const spec_item_t *it, entity_header_t *eh, const features_event_t *ev,
                         float *o)
{
    const char *s = ev->str[it->field];
    o[0] = 0.0f;
    if (!eh || !s)
        return;
    uint32_t *ring = AT(eh, it->off, uint32_t);
    uint32_t v = (uint32_t)entity_key_hash(s) | 1u; /* 0 marks an empty place */
    int at = it->k - 1;
    for (int j = 0; j < it->k; j++)
        if (ring[j] == v) {
            at = j;
            break;
        }
    if (ring[at] != v)
        o[0] = 1.0f;
    memmove(ring + 1, ring, sizeof(uint32_t) * (size_t)at);
    ring[0] = v;
}

/* The hashes of ev's entity keys; 0 where the key is absent. */
static void event_keys(const features_spec_t *spec, const features_event_t *ev, uint64_t *key)
{
    for (int e = 0; e < spec->n_ent; e++) {
        const char *k = ev->str[spec->ent[e].key_field];
        key[e] = k ? entity_key_hash(k) : 0;
    }
}

static void event_prefetch(const features_spec_t *spec, const features_state_t *st,
                           const uint64_t *key, int stage)
{
    for (int e = 0; e < spec->n_ent; e++)
        if (key[e])
            entity_store_prefetch(st->store[e], key[e], stage);
}

static int compute_keyed(const features_spec_t *spec, features_state_t *st,
                         const features_event_t *ev, const uint64_t *key, float *out);

int features_compute(const features_spec_t *spec, features_state_t *st, const features_event_t *ev,
                     float *out)
{
    uint64_t key[SPEC_ENTITIES_MAX];

    /* The entities' records are far apart in memory: ask for all of them before using any, so
     * the cache misses overlap (index entries first, then the records they point to, then their
     * neighbours in the recency list). */
    event_keys(spec, ev, key);
    for (int stage = 0; stage <= 2; stage++)
        event_prefetch(spec, st, key, stage);
    return compute_keyed(spec, st, ev, key, out);
}

/* The same, across events: while event i is computed, the records of event i+1 and the index
 * entries of event i+2 are on their way, and so on, so one event's cache misses overlap with
 * the work of its predecessors. The results are those of n features_compute calls in order. */
#define BATCH_AHEAD 3
int features_compute_batch(const features_spec_t *spec, features_state_t *st,
                           const features_event_t *evs, size_t n, float *const *outs)
{
    uint64_t key[BATCH_AHEAD + 1][SPEC_ENTITIES_MAX];

    for (size_t i = 0; i < n + BATCH_AHEAD; i++) {
        if (i < n) {
            event_keys(spec, &evs[i], key[i % (BATCH_AHEAD + 1)]);
            event_prefetch(spec, st, key[i % (BATCH_AHEAD + 1)], 0);
        }
        for (int stage = 1; stage < BATCH_AHEAD; stage++)
            if (i >= (size_t)stage && i - (size_t)stage < n)
                event_prefetch(spec, st, key[(i - (size_t)stage) % (BATCH_AHEAD + 1)], stage);
        if (i >= BATCH_AHEAD) {
            size_t j = i - BATCH_AHEAD;
            if (compute_keyed(spec, st, &evs[j], key[j % (BATCH_AHEAD + 1)], outs[j]) != 0)
                return -1;
        }
    }
    return 0;
}

static int compute_keyed(const features_spec_t *spec, features_state_t *st,
                         const features_event_t *ev, const uint64_t *key, float *out)
{
    entity_header_t *h[SPEC_ENTITIES_MAX];
    int64_t prev[SPEC_ENTITIES_MAX];
    int is_new[SPEC_ENTITIES_MAX];
    const int64_t t = ev->time_ms;

    /* Find every entity of the event and fold the event into its windows. */
    for (int e = 0; e < spec->n_ent; e++) {
        const spec_entity_t *ent = &spec->ent[e];
        h[e] = NULL; /* absent key: the entity's items give 0s (and read these defaults) */
        is_new[e] = 0;
        prev[e] = INT64_MIN;
        if (!key[e])
            continue;
        h[e] = entity_store_get(st->store[e], key[e], t, &is_new[e]);
        if (!h[e])
            return -1;
        prev[e] = h[e]->last_ms;
        if (t > h[e]->last_ms)
            h[e]->last_ms = t;
        if (h[e]->n_events < UINT32_MAX)
            h[e]->n_events++;
        for (int w = 0; w < ent->n_win; w++)
            window_update(&ent->win[w], h[e], prev[e], t, ev, &st->late_dropped);
    }

    for (int i = 0; i < spec->n_items; i++) {
        const spec_item_t *it = &spec->items[i];
        float *o = out + it->col;
        entity_header_t *eh = it->entity >= 0 ? h[it->entity] : NULL;

        switch (it->kind) {
        case ITEM_NUMERIC:
            item_numeric(it, ev, o);
            break;
        case ITEM_CATEGORICAL:
            item_categorical(it, ev, o);
            break;
        case ITEM_HOUR:
            item_hour(t, o);
            break;
        case ITEM_COUNT:
            o[0] = eh ? window_total16(
                            AT(eh, spec->ent[it->entity].win[it->window].counts_off, uint16_t))
                      : 0.0f;
            break;
        case ITEM_SUM: {
            const spec_window_t *win = &spec->ent[it->entity].win[it->window];
            o[0] = eh ? window_total32(AT(eh, win->sums_off, float) + it->member * WINDOW_BUCKETS)
                      : 0.0f;
            break;
        }
        case ITEM_COUNT_IF: {
            const spec_window_t *win = &spec->ent[it->entity].win[it->window];
            o[0] = eh ? window_total16(AT(eh, win->ifs_off, uint16_t) + it->member * WINDOW_BUCKETS)
                      : 0.0f;
            break;
        }
        case ITEM_SINCE_LAST:
            item_since_last(eh, is_new[it->entity], prev[it->entity], t, o);
            break;
        case ITEM_GEO:
            item_geo(it, eh, ev, o);
            break;
        case ITEM_ZSCORE:
            item_zscore(it, eh, ev, o);
            break;
        case ITEM_NOVELTY:
            item_novelty(it, eh, ev, o);
            break;
        }
    }
    return 0;
}
