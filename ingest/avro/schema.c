/* The record kinds' field tables, and loading schemas: a .avsc file; the reader schema's check
 * that it holds each field vigil reads, with a type it can read, wherever it sits; a Confluent
 * writer schema by id, from the registry or <schema_dir>/<id>.avsc. The
 * four record kinds (ingest_record.h) differ only in their tables here. */
#include "ingest_avro_internal.h"
#include "ingest_registry.h"

#include <avro.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_FILE_MAX (1024 * 1024)

#define EV(m) offsetof(ingest_record_t, event.m)
#define AR(m) offsetof(ingest_record_t, article.m)
#define FL(m) offsetof(ingest_record_t, fraud_label.m)
#define NL(m) offsetof(ingest_record_t, news_label.m)

enum {
    F_EVENT_ID,
    F_EVENT_TYPE,
    F_USER_ID,
    F_ACCOUNT_ID,
    F_DEVICE_ID,
    F_IP,
    F_AMOUNT,
    F_CURRENCY,
    F_MERCHANT_ID,
    F_MERCHANT_CATEGORY,
    F_COUNTRY,
    F_LATITUDE,
    F_LONGITUDE,
    F_EVENT_TIME,
    F_CHANNEL,
    F_EVENT_COUNT
};

static const field_spec_t EVENT_FIELDS[F_EVENT_COUNT] = {
    [F_EVENT_ID] = {"event_id", FIELD_STRING, EV(event_id), 0},
    [F_EVENT_TYPE] = {"event_type", FIELD_ENUM, EV(event_type), 0},
    [F_USER_ID] = {"user_id", FIELD_STRING, EV(user_id), 0},
    [F_ACCOUNT_ID] = {"account_id", FIELD_OPT_STRING, EV(account_id), 0},
    [F_DEVICE_ID] = {"device_id", FIELD_OPT_STRING, EV(device_id), 0},
    [F_IP] = {"ip", FIELD_OPT_STRING, EV(ip), 0},
    [F_AMOUNT] = {"amount", FIELD_OPT_DOUBLE, EV(amount), EV(has_amount)},
    [F_CURRENCY] = {"currency", FIELD_OPT_STRING, EV(currency), 0},
    [F_MERCHANT_ID] = {"merchant_id", FIELD_OPT_STRING, EV(merchant_id), 0},
    [F_MERCHANT_CATEGORY] = {"merchant_category", FIELD_OPT_STRING, EV(merchant_category), 0},
    [F_COUNTRY] = {"country", FIELD_OPT_STRING, EV(country), 0},
    [F_LATITUDE] = {"latitude", FIELD_OPT_DOUBLE, EV(latitude), EV(has_geo)},
    [F_LONGITUDE] = {"longitude", FIELD_OPT_DOUBLE, EV(longitude), EV(has_geo)},
    [F_EVENT_TIME] = {"event_time", FIELD_TIME_MS, EV(event_time_ms), 0},
    [F_CHANNEL] = {"channel", FIELD_OPT_STRING, EV(channel), 0},
};

static const field_spec_t ARTICLE_FIELDS[] = {
    {"article_id", FIELD_STRING, AR(article_id), 0},
    {"published_time", FIELD_TIME_MS, AR(published_time_ms), 0},
    {"source", FIELD_STRING, AR(source), 0},
    {"language", FIELD_OPT_STRING, AR(language), 0},
    {"headline", FIELD_STRING, AR(headline), 0},
    {"body", FIELD_OPT_STRING, AR(body), 0},
    {"tickers", FIELD_STRING_ARRAY, AR(tickers), AR(n_tickers)},
};

static const field_spec_t FRAUD_LABEL_FIELDS[] = {
    {"event_id", FIELD_STRING, FL(event_id), 0},
    {"is_fraud", FIELD_BOOL, FL(is_fraud), 0},
    {"label_time", FIELD_TIME_MS, FL(label_time_ms), 0},
    {"label_source", FIELD_OPT_STRING, FL(label_source), 0},
};

enum { F_NL_ARTICLE_ID, F_NL_SENTIMENT, F_NL_TOPIC, F_NL_LABEL_TIME, F_NL_COUNT };

static const field_spec_t NEWS_LABEL_FIELDS[F_NL_COUNT] = {
    [F_NL_ARTICLE_ID] = {"article_id", FIELD_STRING, NL(article_id), 0},
    [F_NL_SENTIMENT] = {"sentiment", FIELD_OPT_ENUM, NL(sentiment), 0},
    [F_NL_TOPIC] = {"topic", FIELD_OPT_STRING, NL(topic), 0},
    [F_NL_LABEL_TIME] = {"label_time", FIELD_TIME_MS, NL(label_time_ms), 0},
};

static int news_label_check(const field_value_t *vals, char *reason, size_t reason_len);

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

const record_type_t ingest_avro_record_types[INGEST_KIND_COUNT] = {
    [INGEST_KIND_EVENT] = {"BehaviorEvent", EVENT_FIELDS, COUNT_OF(EVENT_FIELDS), NULL},
    [INGEST_KIND_ARTICLE] = {"NewsArticle", ARTICLE_FIELDS, COUNT_OF(ARTICLE_FIELDS), NULL},
    [INGEST_KIND_FRAUD_LABEL] = {"FraudLabel", FRAUD_LABEL_FIELDS, COUNT_OF(FRAUD_LABEL_FIELDS),
                                 NULL},
    [INGEST_KIND_NEWS_LABEL] = {"NewsLabel", NEWS_LABEL_FIELDS, COUNT_OF(NEWS_LABEL_FIELDS),
                                news_label_check},
};

/* The NewsLabel's rule across fields: it labels something. */
static int news_label_check(const field_value_t *vals, char *reason, size_t reason_len)
{
    if (!vals[F_NL_SENTIMENT].present && !vals[F_NL_TOPIC].present) {
        return ingest_avro_reason_bad(
            reason, reason_len, "invalid record: a NewsLabel needs a sentiment, a topic or both");
    }
    return INGEST_AVRO_OK;
}

const char *ingest_kind_schema_name(ingest_kind_t kind)
{
    return kind >= 0 && kind < INGEST_KIND_COUNT ? ingest_avro_record_types[kind].name
                                                 : "(unknown)";
}

int ingest_kind_parse(const char *s, ingest_kind_t *out)
{
    static const char *const names[INGEST_KIND_COUNT] = {
        [INGEST_KIND_EVENT] = "events",
        [INGEST_KIND_ARTICLE] = "news",
        [INGEST_KIND_FRAUD_LABEL] = "fraud-labels",
        [INGEST_KIND_NEWS_LABEL] = "news-labels",
    };
    for (int k = 0; s != NULL && k < INGEST_KIND_COUNT; k++) {
        if (strcmp(s, names[k]) == 0 || strcmp(s, ingest_avro_record_types[k].name) == 0) {
            *out = (ingest_kind_t)k;
            return 0;
        }
    }
    return -1;
}

/* Parses the .avsc at path into *out (owned by the caller). *missing says whether the file
 * did not exist, which callers report differently from a broken file. With text_out, the
 * file's text (NUL-terminated, owned by the caller) and its length come back too. */
int ingest_avro_schema_load(const char *path, avro_schema_t *out, int *missing, char **text_out,
                            size_t *len_out, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *text = NULL;
    size_t n;

    *missing = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        *missing = (errno == ENOENT);
        ingest_avro_text_set(err, errlen, "cannot open schema %s: %s", path, strerror(errno));
        goto err;
    }
    text = malloc(SCHEMA_FILE_MAX + 1);
    if (text == NULL) {
        ingest_avro_text_set(err, errlen, "out of memory reading schema %s", path);
        goto err;
    }
    n = fread(text, 1, SCHEMA_FILE_MAX + 1, f);
    if (ferror(f)) {
        ingest_avro_text_set(err, errlen, "cannot read schema %s: %s", path, strerror(errno));
        goto err;
    }
    if (n > SCHEMA_FILE_MAX) {
        ingest_avro_text_set(err, errlen, "schema %s is larger than %d bytes", path,
                             SCHEMA_FILE_MAX);
        goto err;
    }
    if (avro_schema_from_json_length(text, n, out) != 0) {
        ingest_avro_text_set(err, errlen, "schema %s is not a valid Avro schema: %s", path,
                             avro_strerror());
        goto err;
    }
    if (text_out != NULL) {
        text[n] = '\0';
        *text_out = text;
        *len_out = n;
    } else {
        free(text);
    }
    fclose(f);
    return 0;
err:
    free(text);
    if (f != NULL) {
        fclose(f);
    }
    return -1;
}

static int union_is_optional(avro_schema_t u, avro_type_t value_type, field_slot_t *slot)
{
    if (!is_avro_union(u) || avro_schema_union_size(u) != 2) {
        return 0;
    }
    for (int b = 0; b < 2; b++) {
        avro_schema_t branch = avro_schema_union_branch(u, b);
        avro_schema_t other = avro_schema_union_branch(u, 1 - b);
        if (is_avro_null(branch) && avro_typeof(other) == value_type) {
            slot->null_branch = b;
            slot->value_branch = 1 - b;
            return 1;
        }
    }
    return 0;
}

/* Whether type, the reader's type of field spec, is what spec's kind reads; fills slot's
 * branches and enum on the way. */
static int reader_field_fits(const field_spec_t *spec, avro_schema_t type, field_slot_t *slot)
{
    int ok = 0;

    switch (spec->kind) {
    case FIELD_STRING:
        ok = is_avro_string(type);
        break;
    case FIELD_ENUM:
        ok = is_avro_enum(type);
        slot->enum_schema = type;
        break;
    case FIELD_OPT_STRING:
        ok = union_is_optional(type, AVRO_STRING, slot);
        break;
    case FIELD_OPT_DOUBLE:
        ok = union_is_optional(type, AVRO_DOUBLE, slot);
        break;
    case FIELD_OPT_ENUM:
        ok = union_is_optional(type, AVRO_ENUM, slot);
        if (ok) {
            slot->enum_schema = avro_schema_union_branch(type, slot->value_branch);
        }
        break;
    case FIELD_TIME_MS:
        ok = is_avro_int64(type);
        break;
    case FIELD_BOOL:
        ok = is_avro_boolean(type);
        break;
    case FIELD_STRING_ARRAY:
        ok = is_avro_array(type) && is_avro_string(avro_schema_array_items(type));
        break;
    }
    return ok;
}

/* dec->plan: the reader record's fields in wire order, each the kind's field it holds or none
 * (ingest_avro_extras_init marks the extra fields among the others). */
static int reader_plan_build(ingest_avro_t *dec, const char *path, char *err, size_t errlen)
{
    dec->plan_len = avro_schema_record_size(dec->reader_schema);
    dec->plan = malloc(sizeof *dec->plan * (dec->plan_len ? dec->plan_len : 1));
    if (dec->plan == NULL) {
        ingest_avro_text_set(err, errlen, "out of memory planning the decoder for %s", path);
        return -1;
    }
    for (size_t j = 0; j < dec->plan_len; j++) {
        dec->plan[j].field = -1;
        dec->plan[j].extra = -1;
    }
    for (int i = 0; i < dec->type->n_fields; i++) {
        dec->plan[dec->slots[i].index].field = i;
    }
    return 0;
}

/* Finds each field vigil reads in the reader schema and checks its type, so decoding can
 * rely on the shape. Other fields are allowed: a BehaviorEvent's become its extra fields
 * (ingest_avro_extras_init); the other kinds skip them, and their encoder leaves them at zero
 * values. */
int ingest_avro_reader_schema_check(ingest_avro_t *dec, const char *path, char *err, size_t errlen)
{
    static const char *const expected[] = {
        [FIELD_STRING] = "\"string\"",
        [FIELD_ENUM] = "an enum",
        [FIELD_OPT_STRING] = "[\"null\",\"string\"]",
        [FIELD_OPT_DOUBLE] = "[\"null\",\"double\"]",
        [FIELD_OPT_ENUM] = "[\"null\", an enum]",
        [FIELD_TIME_MS] = "\"long\"",
        [FIELD_BOOL] = "\"boolean\"",
        [FIELD_STRING_ARRAY] = "an array of \"string\"",
    };
    const record_type_t *t = dec->type;

    if (!is_avro_record(dec->reader_schema)) {
        ingest_avro_text_set(err, errlen, "reader schema %s is not a record; use %s.avsc", path,
                             t->name);
        return -1;
    }
    for (int i = 0; i < t->n_fields; i++) {
        const field_spec_t *spec = &t->fields[i];
        field_slot_t *slot = &dec->slots[i];

        slot->index = avro_schema_record_field_get_index(dec->reader_schema, spec->name);
        if (slot->index < 0) {
            ingest_avro_text_set(err, errlen, "reader schema %s has no field %s; use %s.avsc", path,
                                 spec->name, t->name);
            return -1;
        }
        avro_schema_t type = avro_schema_record_field_get_by_index(dec->reader_schema, slot->index);
        if (!reader_field_fits(spec, type, slot)) {
            ingest_avro_text_set(err, errlen, "reader schema %s: field %s must be %s", path,
                                 spec->name, expected[spec->kind]);
            return -1;
        }
    }
    return reader_plan_build(dec, path, err, errlen);
}

/* Follows named-type links to the type itself. */
avro_schema_t ingest_avro_schema_deref(avro_schema_t t)
{
    for (int i = 0; t != NULL && is_avro_link(t) && i < SCAN_DEPTH_MAX; i++) {
        t = avro_schema_link_target(t);
    }
    return t;
}

/* The writer schema of id from dec's schema registry. */
static int writer_schema_from_registry(const ingest_avro_t *dec, uint32_t id, avro_schema_t *out,
                                       char *why, size_t why_len)
{
    char *text = NULL;
    int fr = ingest_registry_fetch(dec->registry, id, &text, why, why_len);

    if (fr == INGEST_REGISTRY_UNAVAILABLE) {
        return INGEST_AVRO_RETRY;
    }
    if (fr == INGEST_REGISTRY_NOT_FOUND) {
        char said[REASON_MAX];
        ingest_avro_text_set(said, sizeof said, "%s", why);
        ingest_avro_text_set(why, why_len, "unknown schema id %u (%s)", (unsigned)id, said);
        return INGEST_AVRO_BAD;
    }
    if (avro_schema_from_json_length(text, strlen(text), out) != 0) {
        ingest_avro_text_set(why, why_len,
                             "schema id %u from the registry is not a valid Avro schema: %s",
                             (unsigned)id, avro_strerror());
        free(text);
        return INGEST_AVRO_BAD;
    }
    free(text);
    return INGEST_AVRO_OK;
}

/* The writer schema of id from <schema_dir>/<id>.avsc, whose name goes to path. */
static int writer_schema_from_file(const ingest_avro_t *dec, uint32_t id, avro_schema_t *out,
                                   char *path, size_t path_len, char *why, size_t why_len)
{
    int missing;

    if (snprintf(path, path_len, "%s/%u.avsc", dec->schema_dir, (unsigned)id) >= (int)path_len) {
        ingest_avro_text_set(why, why_len, "schema id %u: schema dir path too long", (unsigned)id);
        return INGEST_AVRO_BAD;
    }
    if (ingest_avro_schema_load(path, out, &missing, NULL, NULL, why, why_len) != 0) {
        if (missing) {
            ingest_avro_text_set(why, why_len, "unknown schema id %u (no %s)", (unsigned)id, path);
        }
        return INGEST_AVRO_BAD;
    }
    return INGEST_AVRO_OK;
}

int ingest_avro_schema_load_writer(const ingest_avro_t *dec, uint32_t id, avro_schema_t *out,
                                   char *where, size_t where_len, char *why, size_t why_len)
{
    if (dec->registry != NULL) {
        snprintf(where, where_len, "registry id %u", (unsigned)id);
        return writer_schema_from_registry(dec, id, out, why, why_len);
    }
    return writer_schema_from_file(dec, id, out, where, where_len, why, why_len);
}
