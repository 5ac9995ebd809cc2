/* The input topics and Avro decoders the configuration describes: [ingest] topics, format,
 * reader schemas, schema directory and schema registry. One place, so vigild and
 * `vigil dlq replay` decode alike. */
#ifndef VIGIL_DECODER_H
#define VIGIL_DECODER_H

#include <stddef.h>

#include "config.h"
#include "ingest_avro.h"

/* One configured input: a topic and the record kind it carries. */
typedef struct daemon_input {
    const char *topic; /* borrowed from the configuration */
    ingest_kind_t kind;
} daemon_input_t;

/* Fills out with the configured inputs (events, news, fraud labels, news labels; those with an
 * empty topic name left out) and returns how many. */
size_t daemon_inputs(const daemon_config_t *cfg, daemon_input_t out[INGEST_KIND_COUNT]);

/* The kind the topic carries, or -1 when the configuration reads no such topic. */
int daemon_input_kind(const daemon_config_t *cfg, const char *topic);

/* Returns a decoder of kind (free with ingest_avro_free), or NULL with err naming what is wrong:
 * a bad ingest.format, a missing or invalid schema file, a bad registry URL or CA file. The
 * reader schema is ingest.reader_schema for BehaviorEvent, <schema_dir>/<Record>.avsc for the
 * others. */
ingest_avro_t *daemon_decoder_new(const daemon_config_t *cfg, ingest_kind_t kind, char *err,
                                  size_t errlen);

#endif
