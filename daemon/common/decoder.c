/* The inputs and decoders the configuration describes (see decoder.h). */
#include "decoder.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"

size_t daemon_inputs(const daemon_config_t *cfg, daemon_input_t out[INGEST_KIND_COUNT])
{
    const daemon_input_t all[INGEST_KIND_COUNT] = {
        {cfg->ingest_topic, INGEST_KIND_EVENT},
        {cfg->ingest_news_topic, INGEST_KIND_ARTICLE},
        {cfg->ingest_fraud_labels_topic, INGEST_KIND_FRAUD_LABEL},
        {cfg->ingest_news_labels_topic, INGEST_KIND_NEWS_LABEL},
    };
    size_t n = 0;
    for (size_t i = 0; i < INGEST_KIND_COUNT; i++)
        if (all[i].topic && all[i].topic[0])
            out[n++] = all[i];
    return n;
}

int daemon_input_kind(const daemon_config_t *cfg, const char *topic)
{
    daemon_input_t in[INGEST_KIND_COUNT];
    size_t n = daemon_inputs(cfg, in);
    for (size_t i = 0; topic && i < n; i++)
        if (strcmp(in[i].topic, topic) == 0)
            return (int)in[i].kind;
    return -1;
}

ingest_avro_t *daemon_decoder_new(const daemon_config_t *cfg, ingest_kind_t kind, char *err,
                                  size_t errlen)
{
    char path[PATH_MAX];
    const char *reader = path;
    ingest_format_t format;
    ingest_avro_t *dec;

    if (ingest_format_parse(cfg->ingest_format, &format) != 0) {
        errbuf_printf(err, errlen, "bad ingest.format \"%s\"", cfg->ingest_format);
        return NULL;
    }
    if (kind == INGEST_KIND_EVENT) {
        reader = cfg->ingest_reader_schema;
    } else {
        size_t n = strlen(cfg->ingest_schema_dir);
        const char *sep = (n > 0 && cfg->ingest_schema_dir[n - 1] == '/') ? "" : "/";
        if (snprintf(path, sizeof(path), "%s%s%s.avsc", cfg->ingest_schema_dir, sep,
                     ingest_kind_schema_name(kind)) >= (int)sizeof(path)) {
            errbuf_printf(err, errlen, "ingest.schema_dir is too long a path");
            return NULL;
        }
    }
    dec = ingest_avro_new(kind, format, reader, cfg->ingest_schema_dir, err, errlen);
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
