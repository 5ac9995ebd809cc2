/* Entity store: bounded open-addressing hash table of entity records with a recency list, TTL
 * and snapshots (see entity_store.h). */
#define _GNU_SOURCE /* mremap */
#include "entity_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "errbuf.h"

#define STORE_MAGIC 0x4f545345u /* "ESTO" */
#define STORE_FIRST_SLOTS 1024u
#define STORE_EXPIRE_PER_GET 4 /* expired records evicted per lookup, to bound its cost */

struct entity_store {
    size_t slot_size;
    uint32_t max_entities;
    int64_t ttl_ms;   /* 0: no TTL */
    int64_t clock_ms; /* newest event time seen by the store; INT64_MIN before any */

    uint8_t *slots;     /* (cap, slot_size) records */
    uint32_t cap;       /* records allocated */
    uint32_t used;      /* records ever handed out (the rest of slots is untouched) */
    uint32_t n;         /* live records */
    uint32_t free_head; /* evicted records, chained through header.next */

    uint32_t *index; /* (index_cap) record numbers, ENTITY_NONE for empty; mapped memory */
    uint32_t index_mask;

    uint32_t head, tail; /* most and least recently seen */
    uint64_t evictions;
};

uint64_t entity_key_hash(const char *key)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *key; key++) {
        h ^= (uint8_t)*key;
        h *= 0x100000001b3ull;
    }
    return h ? h : 1;
}

static inline entity_header_t *store_rec(const entity_store_t *s, uint32_t i)
{
    return (entity_header_t *)(s->slots + (size_t)i * s->slot_size);
}

/* FNV's low bits are weak for power-of-two tables: mix before taking them. */
static inline uint32_t store_home(const entity_store_t *s, uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (uint32_t)key & s->index_mask;
}

/* The records and the index are hundreds of megabytes read at random: with 4 KiB pages nearly
 * every lookup also misses the TLB, which cost a third of the time per event. So they live in
 * their own mappings, marked for transparent huge pages, grown with mremap. Returns the new
 * mapping (old is gone then) or NULL (old is unchanged). */
static void *store_map(void *old, size_t old_bytes, size_t bytes)
{
    void *p = old ? mremap(old, old_bytes, bytes, MREMAP_MAYMOVE)
                  : mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (bytes >= ((size_t)2 << 20))
        (void)madvise(p, bytes, MADV_HUGEPAGE); /* a hint: without THP it still works */
    return p;
}

static void store_unmap(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

static size_t store_index_cap_for(uint32_t records)
{
    size_t cap = 2048;
    while (cap < (size_t)records * 2)
        cap *= 2;
    return cap;
}

/* Rebuilds the index at a size that keeps the load factor at or below 1/2 for `records`. */
static int store_index_resize(entity_store_t *s, uint32_t records)
{
    size_t cap = store_index_cap_for(records);
    uint32_t *idx;
    if (s->index && cap == (size_t)s->index_mask + 1)
        return 0;
    idx = store_map(NULL, 0, cap * sizeof(*idx));
    if (!idx)
        return -1;
    memset(idx, 0xff, cap * sizeof(*idx));
    if (s->index)
        store_unmap(s->index, ((size_t)s->index_mask + 1) * sizeof(*idx));
    s->index = idx;
    s->index_mask = (uint32_t)(cap - 1);
    for (uint32_t r = s->head; r != ENTITY_NONE; r = store_rec(s, r)->next) {
        uint32_t pos = store_home(s, store_rec(s, r)->key);
        while (s->index[pos] != ENTITY_NONE)
            pos = (pos + 1) & s->index_mask;
        s->index[pos] = r;
    }
    return 0;
}

entity_store_t *entity_store_new(size_t slot_size, uint32_t max_entities, int64_t ttl_ms, char *err,
                                 size_t errlen)
{
    entity_store_t *s;
    slot_size = (slot_size + 7) & ~(size_t)7;
    if (slot_size < sizeof(entity_header_t) || max_entities == 0 ||
        max_entities >= ENTITY_NONE / 2 || ttl_ms < 0) {
        errbuf_printf(err, errlen, "entity store: bad arguments (slot %zu bytes, max %u entities)",
                      slot_size, max_entities);
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (!s)
        goto oom;
    s->slot_size = slot_size;
    s->max_entities = max_entities;
    s->ttl_ms = ttl_ms;
    s->clock_ms = INT64_MIN;
    s->free_head = s->head = s->tail = ENTITY_NONE;
    if (store_index_resize(s, 0) != 0)
        goto oom;
    return s;
oom:
    errbuf_printf(err, errlen, "entity store: out of memory");
    entity_store_free(s);
    return NULL;
}

void entity_store_free(entity_store_t *s)
{
    if (!s)
        return;
    store_unmap(s->slots, (size_t)s->cap * s->slot_size);
    if (s->index)
        store_unmap(s->index, ((size_t)s->index_mask + 1) * sizeof(uint32_t));
    free(s);
}

size_t entity_store_count(const entity_store_t *s)
{
    return s->n;
}

size_t entity_store_slot_size(const entity_store_t *s)
{
    return s->slot_size;
}

uint64_t entity_store_evictions(const entity_store_t *s)
{
    return s->evictions;
}

size_t entity_store_bytes(const entity_store_t *s)
{
    return (size_t)s->cap * s->slot_size + ((size_t)s->index_mask + 1) * sizeof(uint32_t);
}

static void store_unlink(entity_store_t *s, uint32_t r)
{
    entity_header_t *h = store_rec(s, r);
    if (h->prev != ENTITY_NONE)
        store_rec(s, h->prev)->next = h->next;
    else
        s->head = h->next;
    if (h->next != ENTITY_NONE)
        store_rec(s, h->next)->prev = h->prev;
    else
        s->tail = h->prev;
}

static void store_push_head(entity_store_t *s, uint32_t r)
{
    entity_header_t *h = store_rec(s, r);
    h->prev = ENTITY_NONE;
    h->next = s->head;
    if (s->head != ENTITY_NONE)
        store_rec(s, s->head)->prev = r;
    s->head = r;
    if (s->tail == ENTITY_NONE)
        s->tail = r;
}

/* Removes record r from the index with backward-shift deletion, so no tombstones pile up. */
static void store_index_remove(entity_store_t *s, uint32_t r)
{
    uint32_t i = store_home(s, store_rec(s, r)->key);
    while (s->index[i] != r)
        i = (i + 1) & s->index_mask;
    s->index[i] = ENTITY_NONE;
    for (uint32_t j = (i + 1) & s->index_mask; s->index[j] != ENTITY_NONE;
         j = (j + 1) & s->index_mask) {
        uint32_t k = store_home(s, store_rec(s, s->index[j])->key);
        /* Move j's entry into the hole at i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            s->index[i] = s->index[j];
            s->index[j] = ENTITY_NONE;
            i = j;
        }
    }
}

static void store_evict(entity_store_t *s, uint32_t r)
{
    store_index_remove(s, r);
    store_unlink(s, r);
    store_rec(s, r)->next = s->free_head;
    s->free_head = r;
    s->n--;
    s->evictions++;
}

static int store_expired(const entity_store_t *s, const entity_header_t *h)
{
    return s->ttl_ms > 0 && h->last_ms != INT64_MIN && s->clock_ms - h->last_ms > s->ttl_ms;
}

/* A free record: from the free list, from the allocated tail, or by growing the array.
 * ENTITY_NONE when out of memory. The caller has made room (n < max_entities). */
static uint32_t store_alloc(entity_store_t *s)
{
    uint32_t r;
    if (s->free_head != ENTITY_NONE) {
        r = s->free_head;
        s->free_head = store_rec(s, r)->next;
        return r;
    }
    if (s->used == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : STORE_FIRST_SLOTS;
        if (cap > s->max_entities)
            cap = s->max_entities;
        uint8_t *slots =
            store_map(s->slots, (size_t)s->cap * s->slot_size, (size_t)cap * s->slot_size);
        if (!slots)
            return ENTITY_NONE;
        s->slots = slots;
        s->cap = cap;
    }
    return s->used++;
}

static void store_reset(entity_header_t *h, size_t slot_size, uint64_t key)
{
    memset((uint8_t *)h + ENTITY_PAYLOAD_OFFSET, 0, slot_size - ENTITY_PAYLOAD_OFFSET);
    h->key = key;
    h->last_ms = INT64_MIN;
    h->n_events = 0;
    h->spare = 0;
}

entity_header_t *entity_store_get(entity_store_t *s, uint64_t key, int64_t now_ms, int *is_new)
{
    uint32_t pos, r;
    entity_header_t *h;

    if (now_ms > s->clock_ms)
        s->clock_ms = now_ms;
    for (pos = store_home(s, key); (r = s->index[pos]) != ENTITY_NONE;
         pos = (pos + 1) & s->index_mask) {
        h = store_rec(s, r);
        if (h->key != key)
            continue;
        if (r != s->head) {
            store_unlink(s, r);
            store_push_head(s, r);
        }
        *is_new = store_expired(s, h);
        if (*is_new) {
            s->evictions++;
            store_reset(h, s->slot_size, key);
        }
        return h;
    }

    /* Unknown: make room, then insert. Expired records go first, then the least recent. */
    for (int i = 0; i < STORE_EXPIRE_PER_GET && s->tail != ENTITY_NONE &&
                    store_expired(s, store_rec(s, s->tail));
         i++)
        store_evict(s, s->tail);
    if (s->n == s->max_entities)
        store_evict(s, s->tail);
    if ((size_t)s->index_mask + 1 < (size_t)(s->n + 1) * 2 && store_index_resize(s, s->n + 1) != 0)
        return NULL;
    r = store_alloc(s);
    if (r == ENTITY_NONE)
        return NULL;
    h = store_rec(s, r);
    store_reset(h, s->slot_size, key);
    for (pos = store_home(s, key); s->index[pos] != ENTITY_NONE; pos = (pos + 1) & s->index_mask)
        ;
    s->index[pos] = r;
    store_push_head(s, r);
    s->n++;
    *is_new = 1;
    return h;
}

void entity_store_prefetch(const entity_store_t *s, uint64_t key, int stage)
{
    uint32_t pos = store_home(s, key);
    if (stage == 0) {
        __builtin_prefetch(&s->index[pos]);
        return;
    }
    uint32_t r = s->index[pos];
    if (r == ENTITY_NONE)
        return;
    if (stage == 1) { /* the whole record: the windows lie past its first cache line */
        for (size_t off = 0; off < s->slot_size; off += 64)
            __builtin_prefetch((const uint8_t *)store_rec(s, r) + off, 1);
        return;
    }
    /* stage 2: its neighbours in the recency list, which moving it to the front rewrites */
    const entity_header_t *h = store_rec(s, r);
    if (h->key != key)
        return; /* a collision in the index: the lookup will probe on */
    if (h->prev != ENTITY_NONE)
        __builtin_prefetch(store_rec(s, h->prev), 1);
    if (h->next != ENTITY_NONE)
        __builtin_prefetch(store_rec(s, h->next), 1);
}

void entity_store_clear(entity_store_t *s)
{
    memset(s->index, 0xff, ((size_t)s->index_mask + 1) * sizeof(*s->index));
    s->used = s->n = 0;
    s->free_head = s->head = s->tail = ENTITY_NONE;
    s->clock_ms = INT64_MIN;
}

static int buf_put(uint8_t **out, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 4096;
        while (c < *len + n)
            c *= 2;
        uint8_t *b = realloc(*out, c);
        if (!b)
            return -1;
        *out = b;
        *cap = c;
    }
    memcpy(*out + *len, data, n);
    *len += n;
    return 0;
}

int entity_store_save(const entity_store_t *s, uint8_t **out, size_t *len, size_t *cap)
{
    uint32_t hdr[3] = {STORE_MAGIC, (uint32_t)s->slot_size, s->n};
    if (buf_put(out, len, cap, hdr, sizeof(hdr)) != 0 ||
        buf_put(out, len, cap, &s->clock_ms, sizeof(s->clock_ms)) != 0)
        return -1;
    for (uint32_t r = s->tail; r != ENTITY_NONE; r = store_rec(s, r)->prev)
        if (buf_put(out, len, cap, store_rec(s, r), s->slot_size) != 0)
            return -1;
    return 0;
}

int entity_store_load(entity_store_t *s, const uint8_t **p, size_t *n, char *err, size_t errlen)
{
    uint32_t hdr[3];
    int64_t clock_ms;

    entity_store_clear(s);
    if (*n < sizeof(hdr) + sizeof(clock_ms)) {
        errbuf_printf(err, errlen, "entity store snapshot truncated in its header");
        return -1;
    }
    memcpy(hdr, *p, sizeof(hdr));
    memcpy(&clock_ms, *p + sizeof(hdr), sizeof(clock_ms));
    if (hdr[0] != STORE_MAGIC || hdr[1] != s->slot_size) {
        errbuf_printf(err, errlen,
                      "entity store snapshot does not fit (magic %08x, slot %u bytes; "
                      "this store has %zu-byte slots)",
                      hdr[0], hdr[1], s->slot_size);
        return -1;
    }
    if (hdr[2] > s->max_entities) {
        errbuf_printf(err, errlen, "entity store snapshot has %u entities, more than the bound %u",
                      hdr[2], s->max_entities);
        return -1;
    }
    if ((*n - sizeof(hdr) - sizeof(clock_ms)) / s->slot_size < hdr[2]) {
        errbuf_printf(err, errlen, "entity store snapshot truncated: %u records announced", hdr[2]);
        return -1;
    }
    *p += sizeof(hdr) + sizeof(clock_ms);
    *n -= sizeof(hdr) + sizeof(clock_ms);
    if (store_index_resize(s, hdr[2]) != 0)
        goto oom;
    for (uint32_t i = 0; i < hdr[2]; i++) {
        uint32_t r = store_alloc(s), pos;
        entity_header_t *h;
        if (r == ENTITY_NONE)
            goto oom;
        h = store_rec(s, r);
        memcpy(h, *p, s->slot_size);
        *p += s->slot_size;
        *n -= s->slot_size;
        /* Event times are never negative: anything else would index windows out of range. */
        if (h->key == 0 || (h->last_ms < 0 && h->last_ms != INT64_MIN)) {
            errbuf_printf(err, errlen, "entity store snapshot holds an impossible record");
            entity_store_clear(s);
            return -1;
        }
        for (pos = store_home(s, h->key); s->index[pos] != ENTITY_NONE;
             pos = (pos + 1) & s->index_mask) {
            if (store_rec(s, s->index[pos])->key == h->key) {
                errbuf_printf(err, errlen, "entity store snapshot holds a key twice");
                entity_store_clear(s);
                return -1;
            }
        }
        s->index[pos] = r;
        store_push_head(s, r);
        s->n++;
    }
    s->clock_ms = clock_ms;
    return 0;
oom:
    errbuf_printf(err, errlen, "entity store: out of memory loading a snapshot of %u entities",
                  hdr[2]);
    entity_store_clear(s);
    return -1;
}
