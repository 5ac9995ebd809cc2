/* The Confluent wire format: its 5-byte header (magic byte 0x00, 4-byte big-endian schema id),
 * and the writer schema of each id, from the schema registry (ingest_avro_use_registry) or
 * <schema_dir>/<id>.avsc (schema.c), planned (resolve.c) and cached on first use. An id with no
 * usable schema is remembered for a while, so a stream of such messages does not open a file or ask
 * the registry per message. */
#include "ingest_avro_internal.h"
#include "ingest_registry.h"

#include <avro.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* A missing or broken <id>.avsc is looked up again at most this often, per id. */
#define MISS_RETRY_MS 1000

static int clock_now_ms(int64_t *out)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return -1;
    }
    *out = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return 0;
}

static schema_miss_t *miss_find(ingest_avro_t *dec, uint32_t id)
{
    for (size_t i = 0; i < MISS_SLOTS; i++) {
        if (dec->misses[i].used && dec->misses[i].id == id) {
            return &dec->misses[i];
        }
    }
    return NULL;
}

static void miss_remember(ingest_avro_t *dec, uint32_t id, const char *reason)
{
    schema_miss_t *miss = miss_find(dec, id);
    int64_t now;
    if (clock_now_ms(&now) != 0) {
        return; /* without a clock, looking the file up again each time is the safe choice */
    }
    if (miss == NULL) {
        miss = &dec->misses[dec->next_miss];
        dec->next_miss = (dec->next_miss + 1) % MISS_SLOTS;
    }
    miss->used = 1;
    miss->id = id;
    miss->at_ms = now;
    snprintf(miss->reason, sizeof miss->reason, "%s", reason);
}

/* Plans entry (ingest_avro_writer_plan) when its schema differs from the reader's; where names
 * the schema's source. Returns INGEST_AVRO_OK, INGEST_AVRO_BAD with why (why_len bytes) when it
 * does not resolve, INGEST_AVRO_ERR with reason when out of memory. */
static int writer_resolve(const ingest_avro_t *dec, writer_entry_t *entry, const char *where,
                          char *why, size_t why_len, char *reason, size_t reason_len)
{
    char detail[REASON_MAX];
    int pr;

    if (avro_schema_equal(entry->schema, dec->reader_schema)) {
        return INGEST_AVRO_OK;
    }
    pr = ingest_avro_writer_plan(dec, entry, detail, sizeof detail);
    if (pr == -2) {
        ingest_avro_text_set(reason, reason_len, "out of memory planning schema id %u",
                             (unsigned)entry->id);
        return INGEST_AVRO_ERR;
    }
    if (pr != 0) {
        ingest_avro_text_set(why, why_len, "schema id %u (%s) does not resolve to %s: %s",
                             (unsigned)entry->id, where, avro_schema_name(dec->reader_schema),
                             detail);
        return INGEST_AVRO_BAD;
    }
    return INGEST_AVRO_OK;
}

/* Moves entry (its schema and plan) into dec's cache and points *out at it. Returns
 * INGEST_AVRO_OK, or INGEST_AVRO_ERR with reason when out of memory. */
static int writer_cache(ingest_avro_t *dec, const writer_entry_t *entry, writer_entry_t **out,
                        char *reason, size_t reason_len)
{
    if (dec->writer_count == dec->writer_cap) {
        size_t cap = dec->writer_cap ? dec->writer_cap * 2 : 4;
        writer_entry_t *grown = realloc(dec->writers, cap * sizeof *grown);
        if (grown == NULL) {
            ingest_avro_text_set(reason, reason_len, "out of memory caching schema id %u",
                                 (unsigned)entry->id);
            return INGEST_AVRO_ERR;
        }
        dec->writers = grown;
        dec->writer_cap = cap;
    }
    dec->writers[dec->writer_count] = *entry;
    *out = &dec->writers[dec->writer_count];
    dec->writer_count++;
    return INGEST_AVRO_OK;
}

/* Loads, checks and caches the writer schema of id. Returns INGEST_AVRO_OK with *out set,
 * INGEST_AVRO_BAD when no usable schema exists for id, INGEST_AVRO_RETRY when the registry
 * cannot answer now, INGEST_AVRO_ERR when out of memory. */
static int writer_load(ingest_avro_t *dec, uint32_t id, writer_entry_t **out, char *reason,
                       size_t reason_len)
{
    writer_entry_t entry = {.id = id};
    char where[PATH_MAX];
    char why[REASON_MAX];
    int rc;

    rc = ingest_avro_schema_load_writer(dec, id, &entry.schema, where, sizeof where, why,
                                        sizeof why);
    if (rc == INGEST_AVRO_RETRY) {
        /* Not the message's fault and not to be remembered as a miss: decode it again. */
        ingest_avro_text_set(reason, reason_len, "schema id %u: %s", (unsigned)id, why);
        return INGEST_AVRO_RETRY;
    }
    if (rc == INGEST_AVRO_OK) {
        rc = writer_resolve(dec, &entry, where, why, sizeof why, reason, reason_len);
    }
    if (rc == INGEST_AVRO_OK) {
        /* Ownership of the schema and the plan moves into the cache. */
        rc = writer_cache(dec, &entry, out, reason, reason_len);
    }
    if (rc == INGEST_AVRO_OK) {
        return INGEST_AVRO_OK;
    }
    if (rc == INGEST_AVRO_BAD) {
        /* No usable schema for id: a message problem, remembered so the file is not
         * reopened for every such message. */
        miss_remember(dec, id, why);
        ingest_avro_reason_bad(reason, reason_len, "%s", why);
    }
    free(entry.fields);
    if (entry.schema != NULL) {
        avro_schema_decref(entry.schema);
    }
    return rc;
}

/* The cached writer for id, loading it on first use; a recent miss answers from memory. */
static int writer_lookup(ingest_avro_t *dec, uint32_t id, writer_entry_t **out, char *reason,
                         size_t reason_len)
{
    int64_t now;
    for (size_t i = 0; i < dec->writer_count; i++) {
        if (dec->writers[i].id == id) {
            *out = &dec->writers[i];
            return INGEST_AVRO_OK;
        }
    }
    schema_miss_t *miss = miss_find(dec, id);
    if (miss != NULL && clock_now_ms(&now) == 0 && now - miss->at_ms < MISS_RETRY_MS) {
        return ingest_avro_reason_bad(reason, reason_len, "%s", miss->reason);
    }
    return writer_load(dec, id, out, reason, reason_len);
}

int ingest_avro_confluent_writer(ingest_avro_t *dec, const uint8_t *data, size_t len,
                                 const writer_entry_t **plan, char *reason, size_t reason_len)
{
    writer_entry_t *writer;
    int rc;

    *plan = NULL;
    if (len < CONFLUENT_HEADER_LEN) {
        return ingest_avro_reason_bad(reason, reason_len,
                                      "truncated: %zu-byte message is shorter than the 5-byte "
                                      "Confluent header",
                                      len);
    }
    if (data[0] != 0x00) {
        return ingest_avro_reason_bad(reason, reason_len,
                                      "bad magic byte 0x%02x (Confluent wants 0x00)", data[0]);
    }
    uint32_t id = (uint32_t)data[1] << 24 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 8 |
                  (uint32_t)data[4];
    if ((rc = writer_lookup(dec, id, &writer, reason, reason_len)) != INGEST_AVRO_OK) {
        return rc;
    }
    if (writer->fields != NULL) {
        *plan = writer;
    }
    return INGEST_AVRO_OK;
}

void ingest_avro_confluent_header_put(uint8_t *out, uint32_t id)
{
    out[0] = 0x00;
    out[1] = (uint8_t)(id >> 24);
    out[2] = (uint8_t)(id >> 16);
    out[3] = (uint8_t)(id >> 8);
    out[4] = (uint8_t)id;
}

int ingest_avro_use_registry(ingest_avro_t *dec, const ingest_registry_options_t *o, char *err,
                             size_t errlen)
{
    ingest_registry_t *r = ingest_registry_new(o, err, errlen);
    if (r == NULL) {
        return -1;
    }
    ingest_registry_free(dec->registry);
    dec->registry = r;
    return 0;
}
