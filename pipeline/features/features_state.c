/* The entity state of one partition: one entity store per entity type of the spec, its
 * counters, and checkpoints of the whole state (a header tying it to the spec's hash, then each
 * store's snapshot). */
#include <stdlib.h>
#include <string.h>

#include "entity_store.h"
#include "errbuf.h"
#include "features_internal.h"

#define STATE_MAGIC 0x53464756u /* "VGFS" */
#define STATE_VERSION 1u

features_state_t *features_state_new(const features_spec_t *spec, uint32_t max_entities,
                                     int64_t ttl_ms, char *err, size_t errlen)
{
    features_state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        errbuf_printf(err, errlen, "feature state: out of memory");
        return NULL;
    }
    st->spec = spec;
    for (int e = 0; e < spec->n_ent; e++) {
        st->store[e] = entity_store_new(spec->ent[e].slot_size, max_entities, ttl_ms, err, errlen);
        if (!st->store[e]) {
            features_state_free(st);
            return NULL;
        }
    }
    return st;
}

void features_state_free(features_state_t *st)
{
    if (!st)
        return;
    for (int e = 0; e < SPEC_ENTITIES_MAX; e++)
        entity_store_free(st->store[e]);
    free(st);
}

void features_state_clear(features_state_t *st)
{
    for (int e = 0; e < st->spec->n_ent; e++)
        entity_store_clear(st->store[e]);
    st->late_dropped = 0;
}

void features_state_stats(const features_state_t *st, features_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->late_dropped = st->late_dropped;
    for (int e = 0; e < st->spec->n_ent; e++) {
        out->entities += entity_store_count(st->store[e]);
        out->evictions += entity_store_evictions(st->store[e]);
        out->bytes += entity_store_bytes(st->store[e]);
    }
}

int features_state_save(const features_state_t *st, uint8_t **out, size_t *len, size_t *cap)
{
    uint32_t hdr[4] = {STATE_MAGIC, STATE_VERSION, (uint32_t)st->spec->n_ent, 0};
    uint64_t tail[2] = {st->spec->hash, st->late_dropped};
    *len = 0;
    if (*cap < sizeof(hdr) + sizeof(tail)) {
        uint8_t *b = realloc(*out, 4096);
        if (!b)
            return -1;
        *out = b;
        *cap = 4096;
    }
    memcpy(*out, hdr, sizeof(hdr));
    memcpy(*out + sizeof(hdr), tail, sizeof(tail));
    *len = sizeof(hdr) + sizeof(tail);
    for (int e = 0; e < st->spec->n_ent; e++)
        if (entity_store_save(st->store[e], out, len, cap) != 0)
            return -1;
    return 0;
}

int features_state_load(features_state_t *st, const uint8_t *data, size_t len, char *err,
                        size_t errlen)
{
    uint32_t hdr[4];
    uint64_t tail[2];

    features_state_clear(st);
    if (len < sizeof(hdr) + sizeof(tail)) {
        errbuf_printf(err, errlen, "feature state checkpoint truncated (%zu bytes)", len);
        return -1;
    }
    memcpy(hdr, data, sizeof(hdr));
    memcpy(tail, data + sizeof(hdr), sizeof(tail));
    if (hdr[0] != STATE_MAGIC || hdr[1] != STATE_VERSION) {
        errbuf_printf(err, errlen, "not a feature state checkpoint of this version");
        return -1;
    }
    if (tail[0] != st->spec->hash || hdr[2] != (uint32_t)st->spec->n_ent) {
        errbuf_printf(err, errlen, "feature state checkpoint was taken under another feature spec");
        return -1;
    }
    data += sizeof(hdr) + sizeof(tail);
    len -= sizeof(hdr) + sizeof(tail);
    for (int e = 0; e < st->spec->n_ent; e++) {
        if (entity_store_load(st->store[e], &data, &len, err, errlen) != 0) {
            features_state_clear(st);
            return -1;
        }
    }
    if (len != 0) {
        errbuf_printf(err, errlen, "feature state checkpoint has %zu trailing bytes", len);
        features_state_clear(st);
        return -1;
    }
    st->late_dropped = tail[1];
    return 0;
}
