/* The decoder the configuration describes (see decoder.h). */
#include "decoder.h"

#include <stdio.h>

ingest_avro_t *daemon_decoder_new(const daemon_config_t *cfg, char *err, size_t errlen)
{
    ingest_format_t format;
    ingest_avro_t *dec;

    if (ingest_format_parse(cfg->ingest_format, &format) != 0) {
        snprintf(err, errlen, "bad ingest.format \"%s\"", cfg->ingest_format);
        return NULL;
    }
    dec = ingest_avro_new(format, cfg->ingest_reader_schema, cfg->ingest_schema_dir, err, errlen);
    if (dec && cfg->ingest_schema_registry_url[0]) {
        ingest_registry_options_t o = {
            .url = cfg->ingest_schema_registry_url,
            .user = cfg->ingest_schema_registry_user,
            .password = cfg->ingest_schema_registry_password,
            .ca_file = cfg->ingest_schema_registry_ca_file,
            .timeout_ms = cfg->ingest_schema_registry_timeout_ms,
            .retries = cfg->ingest_schema_registry_retries,
            .backoff_ms = 100,
        };
        if (ingest_avro_use_registry(dec, &o, err, errlen) != 0) {
            ingest_avro_free(dec);
            return NULL;
        }
    }
    return dec;
}
