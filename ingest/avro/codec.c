/* The ingest_avro_t itself: making one from its reader schema (checked, planned, its extra
 * fields found), freeing it, and what it tells about itself; the wire format's name. */
#include "ingest_avro_internal.h"

#include <avro.h>
#include <stdlib.h>
#include <string.h>

int ingest_format_parse(const char *s, ingest_format_t *out)
{
    if (s != NULL && strcmp(s, "confluent") == 0) {
        *out = INGEST_FORMAT_CONFLUENT;
        return 0;
    }
    if (s != NULL && strcmp(s, "plain") == 0) {
        *out = INGEST_FORMAT_PLAIN;
        return 0;
    }
    return -1;
}

ingest_avro_t *ingest_avro_new(ingest_kind_t kind, ingest_format_t format,
                               const char *reader_schema_path, const char *schema_dir, char *err,
                               size_t errlen)
{
    ingest_avro_t *dec = NULL;
    char *text = NULL;
    size_t text_len = 0;
    int missing;

    if (kind < 0 || kind >= INGEST_KIND_COUNT) {
        ingest_avro_text_set(err, errlen, "unknown record kind %d", (int)kind);
        goto err;
    }
    if (format != INGEST_FORMAT_CONFLUENT && format != INGEST_FORMAT_PLAIN) {
        ingest_avro_text_set(err, errlen, "unknown Avro wire format %d", (int)format);
        goto err;
    }
    if (format == INGEST_FORMAT_CONFLUENT && schema_dir == NULL) {
        ingest_avro_text_set(err, errlen,
                             "confluent format needs a schema dir holding <id>.avsc files");
        goto err;
    }
    dec = calloc(1, sizeof *dec);
    if (dec == NULL) {
        ingest_avro_text_set(err, errlen, "out of memory creating the Avro decoder");
        goto err;
    }
    dec->kind = kind;
    dec->type = &ingest_avro_record_types[kind];
    dec->format = format;
    if (schema_dir != NULL && (dec->schema_dir = strdup(schema_dir)) == NULL) {
        ingest_avro_text_set(err, errlen, "out of memory creating the Avro decoder");
        goto err;
    }
    if (ingest_avro_schema_load(reader_schema_path, &dec->reader_schema, &missing, &text, &text_len,
                                err, errlen) != 0) {
        goto err;
    }
    if (ingest_avro_reader_schema_check(dec, reader_schema_path, err, errlen) != 0 ||
        ingest_avro_extras_init(dec, text, text_len, reader_schema_path, err, errlen) != 0) {
        goto err;
    }
    free(text);
    text = NULL;
    dec->reader_class = avro_generic_class_from_schema(dec->reader_schema);
    if (dec->reader_class == NULL) {
        ingest_avro_text_set(err, errlen, "cannot build an Avro value class for %s: %s",
                             reader_schema_path, avro_strerror());
        goto err;
    }
    if (avro_generic_value_new(dec->reader_class, &dec->value) != 0) {
        ingest_avro_text_set(err, errlen, "cannot create an Avro value for %s: %s",
                             reader_schema_path, avro_strerror());
        goto err;
    }
    /* Pointed at each output buffer by the encoder; it never owns one. */
    dec->writer = avro_writer_memory("", 0);
    if (dec->writer == NULL) {
        ingest_avro_text_set(err, errlen, "out of memory creating an Avro memory writer");
        goto err;
    }
    return dec;
err:
    free(text);
    ingest_avro_free(dec);
    return NULL;
}

void ingest_avro_free(ingest_avro_t *dec)
{
    if (dec == NULL) {
        return;
    }
    for (size_t i = 0; i < dec->writer_count; i++) {
        free(dec->writers[i].fields);
        avro_schema_decref(dec->writers[i].schema);
    }
    free(dec->writers);
    if (dec->value.iface != NULL) {
        avro_value_decref(&dec->value);
    }
    if (dec->reader_class != NULL) {
        avro_value_iface_decref(dec->reader_class);
    }
    if (dec->reader_schema != NULL) {
        avro_schema_decref(dec->reader_schema);
    }
    if (dec->writer != NULL) {
        avro_writer_free(dec->writer);
    }
    free(dec->plan);
    for (size_t e = 0; e < dec->n_extra; e++) {
        free(dec->extras[e].def_text);
    }
    free(dec->extras);
    free(dec->extra_vals);
    ingest_registry_free(dec->registry);
    free(dec->schema_dir);
    free(dec);
}

ingest_kind_t ingest_avro_kind(const ingest_avro_t *dec)
{
    return dec->kind;
}

size_t ingest_avro_extra_count(const ingest_avro_t *dec)
{
    return dec->n_extra;
}

const char *ingest_avro_extra_name(const ingest_avro_t *dec, size_t i)
{
    return i < dec->n_extra ? dec->extras[i].name : NULL;
}

ingest_extra_type_t ingest_avro_extra_type(const ingest_avro_t *dec, size_t i)
{
    return i < dec->n_extra ? dec->extras[i].type : INGEST_EXTRA_NUMBER;
}
