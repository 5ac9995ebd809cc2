/* Entity store: a bounded hash table of fixed-size entity records, one per (partition, entity
 * type), for the feature engine's per-entity aggregates.
 *
 * An entity is known by a 64-bit hash of its key (the user id, the device id, ...): the key
 * itself is not kept, which keeps records small. Two keys sharing a hash would share state; with
 * a million entities the chance that any two do is about 3e-8.
 *
 * Memory is bounded: at most max_entities records, each slot_size bytes (the record header below
 * plus the payload the feature spec lays out), plus a 4-byte index entry per slot at a load factor
 * of at most 1/2. When the store is full the least recently seen entity (in processing order) is
 * evicted. An entity whose last event is more than ttl_ms (in event time) behind the store's
 * newest event time has expired: it is evicted when it reaches the end of the recency list, and
 * if it shows up again first it starts afresh, exactly as if it had been evicted.
 *
 * Everything the store does depends only on the sequence of lookups, so a store rebuilt from a
 * snapshot (entity_store_save / entity_store_load) behaves exactly like the original from then
 * on: the snapshot keeps the recency order.
 *
 * Not thread-safe (@locality: the thread that owns the partition). */
#ifndef VIGIL_ENTITY_STORE_H
#define VIGIL_ENTITY_STORE_H

#include <stddef.h>
#include <stdint.h>

#define ENTITY_NONE UINT32_MAX

/* The first bytes of every record; the payload follows at ENTITY_PAYLOAD_OFFSET. */
typedef struct entity_header {
    uint64_t key;      /* hash of the entity key */
    int64_t last_ms;   /* newest event time seen for the entity (its watermark) */
    uint32_t prev;     /* recency list, towards more recent; ENTITY_NONE at the head */
    uint32_t next;     /* towards less recent; ENTITY_NONE at the tail */
    uint32_t n_events; /* events seen, saturating */
    uint32_t spare;    /* for the payload layout's use: zeroed with the payload */
} entity_header_t;

#define ENTITY_PAYLOAD_OFFSET sizeof(entity_header_t)

typedef struct entity_store entity_store_t;

/* slot_size: bytes per record including the header, rounded up to 8 here. Returns NULL with err
 * on bad arguments or no memory. Memory grows with the number of live entities up to the bound. */
entity_store_t *entity_store_new(size_t slot_size, uint32_t max_entities, int64_t ttl_ms, char *err,
                                 size_t errlen);
void entity_store_free(entity_store_t *s);

/* Finds the record of key, making it the most recently seen; creates it (payload zeroed,
 * last_ms = INT64_MIN meaning "no event yet") when the key is unknown or has expired by
 * now_ms (the caller's event time, which also advances the store's clock). *is_new tells which.
 * Returns the record, or NULL when out of memory (entities may have been evicted to make room;
 * the caller must treat the state as lost). */
entity_header_t *entity_store_get(entity_store_t *s, uint64_t key, int64_t now_ms, int *is_new);

/* Hints that key is about to be looked up: stage 0 fetches its index entry into the cache,
 * stage 1 (after stage 0 had time to land) the record the entry points to, stage 2 the records
 * next to it in the recency list. Changes nothing; lets the lookups of several entities wait on
 * memory at the same time instead of in turn. */
void entity_store_prefetch(const entity_store_t *s, uint64_t key, int stage);

size_t entity_store_count(const entity_store_t *s);
size_t entity_store_slot_size(const entity_store_t *s);
uint64_t entity_store_evictions(const entity_store_t *s); /* capacity and TTL evictions, so far */
/* Bytes the store holds now (records and index), for the memory figures. */
size_t entity_store_bytes(const entity_store_t *s);

/* Snapshot: appends the store (its clock, then the records from least to most recently seen) to
 * out, growing it with realloc. Returns 0, or -1 when out of memory. */
int entity_store_save(const entity_store_t *s, uint8_t **out, size_t *len, size_t *cap);
/* Replaces the store's contents with a snapshot read from *p (n bytes left), advancing *p.
 * Returns 0, or -1 with err when the snapshot is malformed or does not fit this store (another
 * slot size, more records than max_entities). */
int entity_store_load(entity_store_t *s, const uint8_t **p, size_t *n, char *err, size_t errlen);
/* Forgets every entity. */
void entity_store_clear(entity_store_t *s);

/* The 64-bit FNV-1a hash of a NUL-terminated key; never 0. */
uint64_t entity_key_hash(const char *key);

#endif
