/* The Confluent wire format's writer schemas: by the 4-byte id after the magic byte, from the
 * schema registry (ingest_avro_use_registry) or <schema_dir>/<id>.avsc, loaded, planned
 * (resolve.c) and cached on first use. An id with no usable schema is remembered for a while, so
 * a stream of such messages does not open a file or ask the registry per message. */
#include "ingest_avro_internal.h"
#include "ingest_registry.h"

#include <avro.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* Loads, checks and caches the writer schema of id. Returns INGEST_AVRO_OK with *out set,
 * INGEST_AVRO_BAD when no usable schema exists for id, INGEST_AVRO_ERR when out of memory. */
static int writer_load(ingest_avro_t *dec, uint32_t id, writer_entry_t **out, char *reason,
                       size_t reason_len)
{
    writer_entry_t entry = {.id = id};
    char path[PATH_MAX];
    char why[REASON_MAX];
    int missing;
    int rc = INGEST_AVRO_ERR;

    if (dec->registry != NULL) {
        char *text = NULL;
        int fr = ingest_registry_fetch(dec->registry, id, &text, why, sizeof why);
        snprintf(path, sizeof path, "registry id %u", (unsigned)id);
        if (fr == INGEST_REGISTRY_UNAVAILABLE) {
            /* Not the message's fault and not to be remembered as a miss: decode it again. */
            ingest_avro_text_set(reason, reason_len, "schema id %u: %s", (unsigned)id, why);
            return INGEST_AVRO_RETRY;
        }
        if (fr == INGEST_REGISTRY_NOT_FOUND) {
            char said[REASON_MAX];
            ingest_avro_text_set(said, sizeof said, "%s", why);
            ingest_avro_text_set(why, sizeof why, "unknown schema id %u (%s)", (unsigned)id, said);
            rc = INGEST_AVRO_BAD;
            goto err;
        }
        if (avro_schema_from_json_length(text, strlen(text), &entry.schema) != 0) {
            ingest_avro_text_set(why, sizeof why,
                                 "schema id %u from the registry is not a valid Avro schema: %s",
                                 (unsigned)id, avro_strerror());
            free(text);
            rc = INGEST_AVRO_BAD;
            goto err;
        }
        free(text);
    } else {
        if (snprintf(path, sizeof path, "%s/%u.avsc", dec->schema_dir, (unsigned)id) >=
            (int)sizeof path) {
            ingest_avro_text_set(why, sizeof why, "schema id %u: schema dir path too long",
                                 (unsigned)id);
            rc = INGEST_AVRO_BAD;
            goto err;
        }
        if (ingest_avro_schema_load(path, &entry.schema, &missing, NULL, NULL, why, sizeof why) !=
            0) {
            if (missing) {
                ingest_avro_text_set(why, sizeof why, "unknown schema id %u (no %s)", (unsigned)id,
                                     path);
            }
            rc = INGEST_AVRO_BAD;
            goto err;
        }
    }
    if (!avro_schema_equal(entry.schema, dec->reader_schema)) {
        char detail[REASON_MAX];
        int pr = ingest_avro_writer_plan(dec, &entry, detail, sizeof detail);
        if (pr == -2) {
            ingest_avro_text_set(reason, reason_len, "out of memory planning schema id %u",
                                 (unsigned)id);
            goto err;
        }
        if (pr != 0) {
            ingest_avro_text_set(why, sizeof why, "schema id %u (%s) does not resolve to %s: %s",
                                 (unsigned)id, path, avro_schema_name(dec->reader_schema), detail);
            rc = INGEST_AVRO_BAD;
            goto err;
        }
    }
    if (dec->writer_count == dec->writer_cap) {
        size_t cap = dec->writer_cap ? dec->writer_cap * 2 : 4;
        writer_entry_t *grown = realloc(dec->writers, cap * sizeof *grown);
        if (grown == NULL) {
            ingest_avro_text_set(reason, reason_len, "out of memory caching schema id %u",
                                 (unsigned)id);
            goto err;
        }
        dec->writers = grown;
        dec->writer_cap = cap;
    }
    /* Ownership of the schema and the plan moves into the cache. */
    dec->writers[dec->writer_count] = entry;
    *out = &dec->writers[dec->writer_count];
    dec->writer_count++;
    return INGEST_AVRO_OK;

err:
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
int ingest_avro_writer_lookup(ingest_avro_t *dec, uint32_t id, writer_entry_t **out, char *reason,
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
