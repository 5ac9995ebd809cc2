/* Avro schema resolution of a Confluent writer schema into the reader's, done once per schema
 * id: which of vigil's fields each writer field feeds, checked for types that convert (int
 * promoted to long or double, enum symbols mapped by name when a message uses one), fields the
 * writer lacks allowed only where the reader has a default. Done here because Avro C's resolver
 * fills no defaults and maps enums by index; plan_decode (decode.c) follows the plan. */
#include "ingest_avro_internal.h"

#include <avro.h>
#include <stdlib.h>
#include <string.h>

/* Whether a value of writer type t (not a union) can be read as kind, per Avro's resolution
 * rules: same type, int -> long, int/long/float -> double, string into ["null","string"], an
 * enum into an enum (symbols are matched by name when a message uses one). */
int ingest_avro_writer_type_fits(field_kind_t kind, avro_schema_t t)
{
    switch (avro_typeof(t)) {
    case AVRO_STRING:
        return kind == FIELD_STRING || kind == FIELD_OPT_STRING;
    case AVRO_ENUM:
        return kind == FIELD_ENUM || kind == FIELD_OPT_ENUM;
    case AVRO_DOUBLE:
    case AVRO_FLOAT:
        return kind == FIELD_OPT_DOUBLE;
    case AVRO_INT32:
    case AVRO_INT64:
        return kind == FIELD_TIME_MS || kind == FIELD_OPT_DOUBLE;
    case AVRO_BOOLEAN:
        return kind == FIELD_BOOL;
    case AVRO_ARRAY:
        return kind == FIELD_STRING_ARRAY &&
               is_avro_string(ingest_avro_schema_deref(avro_schema_array_items(t)));
    case AVRO_NULL:
        return kind == FIELD_OPT_STRING || kind == FIELD_OPT_DOUBLE || kind == FIELD_OPT_ENUM;
    default:
        return 0;
    }
}

/* Whether a reader field the writer lacks has a default to take: null for the optional kinds,
 * the empty array for string arrays; the others have none. */
static int field_has_default(field_kind_t kind)
{
    return kind == FIELD_OPT_STRING || kind == FIELD_OPT_DOUBLE || kind == FIELD_OPT_ENUM ||
           kind == FIELD_STRING_ARRAY;
}

/* Whether a value of writer type t (not a union) can be read as extra field x, per Avro's
 * resolution rules: int -> long -> float -> double, the same type otherwise, null into a union
 * with null, an enum into an enum (symbols matched by name when a message uses one). */
int ingest_avro_extra_type_fits(const extra_field_t *x, avro_schema_t t)
{
    avro_type_t w = avro_typeof(t);
    if (w == AVRO_NULL) {
        return x->optional;
    }
    switch (x->value_type) {
    case AVRO_DOUBLE:
        return w == AVRO_INT32 || w == AVRO_INT64 || w == AVRO_FLOAT || w == AVRO_DOUBLE;
    case AVRO_FLOAT:
        return w == AVRO_INT32 || w == AVRO_INT64 || w == AVRO_FLOAT;
    case AVRO_INT64:
        return w == AVRO_INT32 || w == AVRO_INT64;
    default:
        return w == x->value_type;
    }
}

/* Which of vigil's fields writer field j of record w feeds, found by name: f->spec for one of
 * the kind's fields, else f->extra for an extra field, else neither (-1 both). */
static void writer_field_match(const ingest_avro_t *dec, avro_schema_t w, size_t j,
                               writer_field_t *f)
{
    const record_type_t *t = dec->type;

    f->name = avro_schema_record_field_name(w, (int)j);
    f->schema = ingest_avro_schema_deref(avro_schema_record_field_get_by_index(w, (int)j));
    f->spec = -1;
    f->extra = -1;
    for (int i = 0; i < t->n_fields; i++) {
        if (strcmp(t->fields[i].name, f->name) == 0) {
            f->spec = i;
        }
    }
    for (size_t e = 0; f->spec < 0 && e < dec->n_extra; e++) {
        if (strcmp(dec->extras[e].name, f->name) == 0) {
            f->extra = (int)e;
        }
    }
}

/* Whether writer type t (not a union) can be read as the field f feeds. */
static int writer_branch_fits(const ingest_avro_t *dec, const writer_field_t *f, avro_schema_t t)
{
    if (f->extra >= 0) {
        return ingest_avro_extra_type_fits(&dec->extras[f->extra], t);
    }
    return ingest_avro_writer_type_fits(dec->type->fields[f->spec].kind, t);
}

/* Whether writer field f can be read as the field it feeds, or explains in why. A union fits
 * when one of its branches does; a branch that does not fit is refused when a message uses
 * it. Returns 0 or -1. */
static int writer_field_check(const ingest_avro_t *dec, const writer_field_t *f, char *why,
                              size_t why_len)
{
    int fits = 0;

    if (is_avro_union(f->schema)) {
        for (size_t b = 0; b < avro_schema_union_size(f->schema); b++) {
            fits |= writer_branch_fits(
                dec, f, ingest_avro_schema_deref(avro_schema_union_branch(f->schema, (int)b)));
        }
    } else {
        fits = writer_branch_fits(dec, f, f->schema);
    }
    if (fits) {
        return 0;
    }
    if (f->extra >= 0) {
        ingest_avro_text_set(
            why, why_len, "field %s is %s in the writer, which cannot be read as the reader's %s",
            f->name, avro_schema_type_name(f->schema),
            avro_schema_type_name(dec->extras[f->extra].value_schema));
    } else {
        field_kind_t kind = dec->type->fields[f->spec].kind;
        ingest_avro_text_set(
            why, why_len, "field %s is %s in the writer, which cannot be read as %s", f->name,
            avro_schema_type_name(f->schema),
            kind == FIELD_ENUM || kind == FIELD_OPT_ENUM ? "an enum" : "the reader's type");
    }
    return -1;
}

/* Whether every reader field the writer lacks (seen[i] 0 for the kind's field i) has a default
 * to take, or explains in why. Returns 0 or -1. */
static int writer_lacks_check(const ingest_avro_t *dec, const writer_entry_t *entry,
                              const int *seen, char *why, size_t why_len)
{
    const record_type_t *t = dec->type;

    for (int i = 0; i < t->n_fields; i++) {
        if (!seen[i] && !field_has_default(t->fields[i].kind)) {
            ingest_avro_text_set(why, why_len,
                                 "the writer has no field %s, which the reader requires",
                                 t->fields[i].name);
            return -1;
        }
    }
    for (size_t e = 0; e < dec->n_extra; e++) {
        int found = 0;
        for (size_t j = 0; j < entry->n_fields && !found; j++) {
            found = entry->fields[j].extra == (int)e;
        }
        if (!found && !dec->extras[e].has_default) {
            ingest_avro_text_set(
                why, why_len,
                "the writer has no field %s, which the reader requires (it has no default)",
                dec->extras[e].name);
            return -1;
        }
    }
    return 0;
}

/* Builds entry->fields for a writer schema that differs from the reader's, or explains in why
 * (why_len bytes) what makes it incompatible. Returns 0, -1 incompatible, -2 out of memory. */
int ingest_avro_writer_plan(const ingest_avro_t *dec, writer_entry_t *entry, char *why,
                            size_t why_len)
{
    avro_schema_t w = ingest_avro_schema_deref(entry->schema);
    size_t n;
    int seen[FIELDS_MAX] = {0};

    if (w == NULL || !is_avro_record(w)) {
        ingest_avro_text_set(why, why_len, "the writer schema is not a record");
        return -1;
    }
    n = avro_schema_record_size(w);
    entry->fields = calloc(n > 0 ? n : 1, sizeof *entry->fields);
    if (entry->fields == NULL) {
        return -2;
    }
    entry->n_fields = n;
    for (size_t j = 0; j < n; j++) {
        writer_field_t *f = &entry->fields[j];
        writer_field_match(dec, w, j, f);
        if (f->spec < 0 && f->extra < 0) {
            continue; /* a field vigil does not read: validated and skipped */
        }
        if (writer_field_check(dec, f, why, why_len) != 0) {
            return -1;
        }
        if (f->spec >= 0) {
            seen[f->spec] = 1;
        }
    }
    return writer_lacks_check(dec, entry, seen, why, why_len);
}
