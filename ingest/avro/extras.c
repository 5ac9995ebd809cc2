/* The extra fields of a BehaviorEvent reader schema: a user's own columns beyond vigil's
 * fields (numbers or strings), which both decoders read into the record's extra arrays. Here
 * they are found and typed when the reader schema is loaded, and their defaults are read from
 * the schema's JSON, since Avro C drops field defaults when it parses a schema. */
#include "ingest_avro_internal.h"
#include "json.h"

#include <avro.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The types an extra field may hold (alone or next to null), and what the record gets. */
static int extra_type_of(avro_type_t t, ingest_extra_type_t *out)
{
    switch (t) {
    case AVRO_INT32:
    case AVRO_INT64:
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
    case AVRO_BOOLEAN:
        *out = INGEST_EXTRA_NUMBER;
        return 1;
    case AVRO_STRING:
    case AVRO_ENUM:
        *out = INGEST_EXTRA_STRING;
        return 1;
    default:
        return 0;
    }
}

/* A few words on a type for an error message, e.g. "a record (Address)". */
static void type_describe(avro_schema_t t, char *buf, size_t len)
{
    char a[64], b[64];

    t = ingest_avro_schema_deref(t);
    switch (avro_typeof(t)) {
    case AVRO_RECORD:
        ingest_avro_text_set(buf, len, "a record (%s)", avro_schema_name(t));
        return;
    case AVRO_ENUM:
        ingest_avro_text_set(buf, len, "an enum (%s)", avro_schema_name(t));
        return;
    case AVRO_FIXED:
        ingest_avro_text_set(buf, len, "a fixed (%s)", avro_schema_name(t));
        return;
    case AVRO_ARRAY:
        ingest_avro_text_set(buf, len, "an array");
        return;
    case AVRO_MAP:
        ingest_avro_text_set(buf, len, "a map");
        return;
    case AVRO_UNION:
        if (avro_schema_union_size(t) == 2) {
            type_describe(avro_schema_union_branch(t, 0), a, sizeof a);
            type_describe(avro_schema_union_branch(t, 1), b, sizeof b);
            ingest_avro_text_set(buf, len, "a union of %s and %s", a, b);
        } else {
            ingest_avro_text_set(buf, len, "a union of %zu types", avro_schema_union_size(t));
        }
        return;
    default:
        ingest_avro_text_set(buf, len, "%s", t != NULL ? avro_schema_type_name(t) : "(unknown)");
        return;
    }
}

/* Sets x's type from the reader field's type t, or returns 0 for a type an extra field cannot
 * have. */
static int extra_classify(extra_field_t *x, avro_schema_t t)
{
    t = ingest_avro_schema_deref(t);
    if (t != NULL && is_avro_union(t)) {
        if (avro_schema_union_size(t) != 2) {
            return 0;
        }
        for (int b = 0; b < 2; b++) {
            avro_schema_t other = ingest_avro_schema_deref(avro_schema_union_branch(t, 1 - b));
            if (is_avro_null(ingest_avro_schema_deref(avro_schema_union_branch(t, b))) &&
                other != NULL && extra_type_of(avro_typeof(other), &x->type)) {
                x->optional = 1;
                x->null_branch = b;
                x->value_branch = 1 - b;
                x->value_schema = other;
                x->value_type = avro_typeof(other);
                return 1;
            }
        }
        return 0;
    }
    if (t == NULL || !extra_type_of(avro_typeof(t), &x->type)) {
        return 0;
    }
    x->value_schema = t;
    x->value_type = avro_typeof(t);
    return 1;
}

/* ---- the defaults, from the schema's JSON text ----
 *
 * Read for what Avro C keeps no trace of: field defaults. Avro C has parsed the same text
 * already; pipeline/util/json.h parses it again, strictly, and the defaults are looked up in its
 * DOM. */

static int extra_default_wrong(const extra_field_t *x, const char *path, char *err, size_t errlen)
{
    ingest_avro_text_set(err, errlen,
                         "reader schema %s: the default of extra field %s does not fit its type",
                         path, x->name);
    return -1;
}

/* The string default d, for a string or an enum extra field. */
static int extra_default_string(extra_field_t *x, const json_value_t *d, const char *path,
                                char *err, size_t errlen)
{
    if (x->value_type == AVRO_STRING) {
        /* ingest_avro_text_check rather than utf8_valid itself: a second caller would cost the
         * decoders its inlining into ingest_avro_text_check. */
        if (ingest_avro_text_check(x->name, d->string, d->string_len, 0, NULL, 0) != 0) {
            return extra_default_wrong(x, path, err, errlen);
        }
        x->def_text = malloc(d->string_len + 1);
        if (x->def_text == NULL) {
            ingest_avro_text_set(err, errlen, "out of memory reading the field defaults of %s",
                                 path);
            return -1;
        }
        memcpy(x->def_text, d->string, d->string_len + 1);
        x->def.str = x->def_text;
        x->def.len = d->string_len;
        return 0;
    }
    if (x->value_type == AVRO_ENUM) {
        int index = avro_schema_enum_get_by_name(x->value_schema, d->string);
        if (index < 0) {
            return extra_default_wrong(x, path, err, errlen);
        }
        x->def.str = avro_schema_enum_get(x->value_schema, index);
        x->def.len = strlen(x->def.str);
        return 0;
    }
    return extra_default_wrong(x, path, err, errlen);
}

/* The number default d, for a number extra field other than a boolean: whole for int and long,
 * within range for int (the parser has refused what is not finite). */
static int extra_default_number(extra_field_t *x, const json_value_t *d, const char *path,
                                char *err, size_t errlen)
{
    if (x->type != INGEST_EXTRA_NUMBER || x->value_type == AVRO_BOOLEAN) {
        return extra_default_wrong(x, path, err, errlen);
    }
    x->def.num = d->number;
    if ((x->value_type == AVRO_INT32 || x->value_type == AVRO_INT64) &&
        x->def.num != floor(x->def.num)) {
        return extra_default_wrong(x, path, err, errlen);
    }
    if (x->value_type == AVRO_INT32 && (x->def.num < INT32_MIN || x->def.num > INT32_MAX)) {
        return extra_default_wrong(x, path, err, errlen);
    }
    return 0;
}

/* Reads the default d into x, checked against x's type. Returns 0, or -1 with err. */
static int extra_default(extra_field_t *x, const json_value_t *d, const char *path, char *err,
                         size_t errlen)
{
    x->has_default = 1;
    x->def.present = 1;
    switch (d->type) {
    case JSON_NULL:
        if (!x->optional) {
            return extra_default_wrong(x, path, err, errlen);
        }
        x->def.present = 0;
        return 0;
    case JSON_BOOL:
        x->def.num = d->boolean ? 1.0 : 0.0;
        return x->value_type == AVRO_BOOLEAN ? 0 : extra_default_wrong(x, path, err, errlen);
    case JSON_STRING:
        return extra_default_string(x, d, path, err, errlen);
    case JSON_NUMBER:
        return extra_default_number(x, d, path, err, errlen);
    default:
        return extra_default_wrong(x, path, err, errlen);
    }
}

/* Finds the defaults of the extra fields in the reader schema's text (len bytes): the
 * top-level "fields" array, each field's "name" and "default". Returns 0, or -1 with err. */
static int extra_defaults(ingest_avro_t *dec, const char *text, size_t len, const char *path,
                          char *err, size_t errlen)
{
    char jerr[160];
    json_value_t *root = json_parse(text, len, jerr, sizeof jerr);
    const json_value_t *fields = json_get(root, "fields");
    int rc = 0;

    if (fields == NULL || fields->type != JSON_ARRAY) {
        ingest_avro_text_set(err, errlen, "cannot read the field defaults of reader schema %s: %s",
                             path, root == NULL ? jerr : "no \"fields\" array");
        json_free(root);
        return -1;
    }
    for (size_t i = 0; rc == 0 && i < fields->n; i++) {
        const json_value_t *name = json_get(&fields->items[i], "name");
        const json_value_t *def = json_get(&fields->items[i], "default");
        if (name == NULL || name->type != JSON_STRING || def == NULL) {
            continue;
        }
        for (size_t e = 0; rc == 0 && e < dec->n_extra; e++) {
            if (strcmp(dec->extras[e].name, name->string) == 0) {
                rc = extra_default(&dec->extras[e], def, path, err, errlen);
            }
        }
    }
    json_free(root);
    return rc;
}

/* Makes the reader fields that are not the kind's own into extra fields (BehaviorEvent only;
 * the other kinds read their own fields and skip the rest). text: the reader schema's JSON,
 * for the defaults. */
int ingest_avro_extras_init(ingest_avro_t *dec, const char *text, size_t len, const char *path,
                            char *err, size_t errlen)
{
    size_t n = 0, e = 0;

    if (dec->kind != INGEST_KIND_EVENT) {
        return 0;
    }
    for (size_t j = 0; j < dec->plan_len; j++) {
        n += dec->plan[j].field < 0;
    }
    if (n == 0) {
        return 0;
    }
    dec->extras = calloc(n, sizeof *dec->extras);
    dec->extra_vals = calloc(n, sizeof *dec->extra_vals);
    if (dec->extras == NULL || dec->extra_vals == NULL) {
        ingest_avro_text_set(err, errlen, "out of memory planning the extra fields of %s", path);
        return -1;
    }
    dec->n_extra = n;
    for (size_t j = 0; j < dec->plan_len; j++) {
        if (dec->plan[j].field >= 0) {
            continue;
        }
        extra_field_t *x = &dec->extras[e];
        avro_schema_t t = avro_schema_record_field_get_by_index(dec->reader_schema, (int)j);
        x->name = avro_schema_record_field_name(dec->reader_schema, (int)j);
        x->index = (int)j;
        x->def.num = NAN;
        if (!extra_classify(x, t)) {
            char what[160];
            type_describe(t, what, sizeof what);
            ingest_avro_text_set(
                err, errlen,
                "reader schema %s: extra field %s is %s; an extra field must be int, long, "
                "float, double, boolean, string or an enum, alone or in a union with null",
                path, x->name, what);
            return -1;
        }
        dec->plan[j].extra = (int)e;
        e++;
    }
    return extra_defaults(dec, text, len, path, err, errlen);
}
