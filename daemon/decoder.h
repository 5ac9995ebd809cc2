/* The Avro decoder the configuration describes: [ingest] format, reader schema, schema
 * directory and schema registry. One place, so vigild and `vigil dlq replay` decode alike. */
#ifndef VIGIL_DECODER_H
#define VIGIL_DECODER_H

#include <stddef.h>

#include "config.h"
#include "ingest_avro.h"

/* Returns a decoder (free with ingest_avro_free), or NULL with err naming what is wrong: a bad
 * ingest.format, a missing or invalid schema file, a bad registry URL or CA file. */
ingest_avro_t *daemon_decoder_new(const daemon_config_t *cfg, char *err, size_t errlen);

#endif
