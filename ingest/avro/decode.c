/* Decoding a message value into ingest_record_t, in one pass over the Avro binary that
 * validates as it reads (the scanner's checks), trailing bytes refused, then the rules the schema
 * cannot express (UTF-8 and NUL in strings, finite numbers, times within years 1970..2200).
 *
 * A message on the reader schema itself (the usual case) is read by direct_decode, with field
 * positions resolved when the reader schema is loaded. A message on another writer schema (a
 * Confluent id whose schema differs) is read by plan_decode through that writer's field plan,
 * built once per id (resolve.c): fields matched by name, extra writer fields skipped, missing
 * optional fields left at their null default, int promoted to long or double, enum symbols
 * mapped by name. */
#include "ingest_avro_internal.h"

#include <avro.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* event_time must fall in years 1970..2200: [1970-01-01, 2201-01-01) UTC in epoch ms. */
#define EVENT_TIME_MIN_MS INT64_C(0)
#define EVENT_TIME_END_MS INT64_C(7289654400000)

/* The rules the schema cannot express. */
static int field_check(const field_spec_t *spec, const field_value_t *v, char *reason,
                       size_t reason_len)
{
    if (!v->present) {
        return INGEST_AVRO_OK;
    }
    switch (spec->kind) {
    case FIELD_STRING:
    case FIELD_OPT_STRING:
        return ingest_avro_text_check(spec->name, v->str, v->len, spec->kind == FIELD_STRING,
                                      reason, reason_len);
    case FIELD_OPT_DOUBLE:
        if (!isfinite(v->num)) {
            return ingest_avro_reason_bad(reason, reason_len,
                                          "invalid field %s: not a finite number", spec->name);
        }
        return INGEST_AVRO_OK;
    case FIELD_TIME_MS:
        if (v->i64 < EVENT_TIME_MIN_MS || v->i64 >= EVENT_TIME_END_MS) {
            return ingest_avro_reason_bad(reason, reason_len,
                                          "invalid field %s: %lld ms is outside years 1970..2200",
                                          spec->name, (long long)v->i64);
        }
        return INGEST_AVRO_OK;
    case FIELD_ENUM:
    case FIELD_OPT_ENUM:
    case FIELD_BOOL:
    case FIELD_STRING_ARRAY: /* items checked as they were scanned */
        return INGEST_AVRO_OK;
    }
    return INGEST_AVRO_OK;
}

/* The rules the schema cannot express, for an extra field: text as for the optional strings,
 * finite numbers (NaN is how the record says null). */
static int extra_check(const extra_field_t *x, const field_value_t *v, char *reason,
                       size_t reason_len)
{
    if (!v->present) {
        return INGEST_AVRO_OK;
    }
    if (x->type == INGEST_EXTRA_STRING) {
        return ingest_avro_text_check(x->name, v->str, v->len, 0, reason, reason_len);
    }
    if (!isfinite(v->num)) {
        return ingest_avro_reason_bad(reason, reason_len, "invalid field %s: not a finite number",
                                      x->name);
    }
    return INGEST_AVRO_OK;
}

/* The end of both decoders: the record must use every byte, every value must pass the rules
 * the schema cannot express, and only then does rec change. */
static int decode_finish(const ingest_avro_t *dec, const scan_t *s, const uint8_t *data,
                         const field_value_t *vals, ingest_record_t *rec)
{
    const record_type_t *t = dec->type;
    int rc;

    if (s->p != s->end) {
        return ingest_avro_reason_bad(s->reason, s->reason_len,
                                      "trailing bytes: %zu after the %zu-byte record",
                                      (size_t)(s->end - s->p), (size_t)(s->p - data));
    }
    for (int i = 0; i < t->n_fields; i++) {
        if ((rc = field_check(&t->fields[i], &vals[i], s->reason, s->reason_len)) != 0) {
            return rc;
        }
    }
    for (size_t e = 0; e < dec->n_extra; e++) {
        if ((rc = extra_check(&dec->extras[e], &dec->extra_vals[e], s->reason, s->reason_len)) !=
            0) {
            return rc;
        }
    }
    if (t->check != NULL && (rc = t->check(vals, s->reason, s->reason_len)) != 0) {
        return rc;
    }
    return ingest_avro_record_commit(dec, rec, vals, s->reason, s->reason_len);
}

/* Reads one field vigil knows straight from the wire. The reader schema fixed its type
 * (ingest_avro_reader_schema_check); the checks and reasons are the scanner's. */
static int direct_field(ingest_avro_t *dec, scan_t *s, int i, field_value_t *out)
{
    const field_spec_t *spec = &dec->type->fields[i];
    const field_slot_t *slot = &dec->slots[i];
    int64_t v;
    int rc;

    memset(out, 0, sizeof *out);
    s->field = spec->name;
    if (ingest_avro_field_is_optional(spec->kind)) {
        if ((rc = ingest_avro_scan_index(s, 2, 0, &v)) != 0) {
            return rc;
        }
        if (v == slot->null_branch) {
            return INGEST_AVRO_OK;
        }
    }
    switch (spec->kind) {
    case FIELD_STRING:
    case FIELD_OPT_STRING:
        return ingest_avro_scan_string(s, out);
    case FIELD_STRING_ARRAY:
        return ingest_avro_scan_string_array(s, out);
    case FIELD_ENUM:
    case FIELD_OPT_ENUM:
        if ((rc = ingest_avro_scan_index(s, avro_schema_enum_number_of_symbols(slot->enum_schema),
                                         1, &v)) != 0) {
            return rc;
        }
        out->str = avro_schema_enum_get(slot->enum_schema, (int)v);
        out->len = strlen(out->str);
        break;
    case FIELD_OPT_DOUBLE:
        if ((rc = ingest_avro_scan_real(s, 8, &out->num)) != 0) {
            return rc;
        }
        break;
    case FIELD_TIME_MS:
        if ((rc = ingest_avro_scan_long(s, &out->i64)) != 0) {
            return rc;
        }
        break;
    case FIELD_BOOL:
        if ((rc = ingest_avro_scan_bool(s, &out->i64)) != 0) {
            return rc;
        }
        break;
    }
    out->present = 1;
    return INGEST_AVRO_OK;
}

/* An enum index at s->p of enum t, as the symbol of reader_enum: when t is another enum (the
 * writer's), matched by name, since the writer may order its symbols differently or have new
 * ones. writer_id and field name the incompatibility when reader_enum lacks the symbol. */
static int enum_read(scan_t *s, avro_schema_t t, avro_schema_t reader_enum, uint32_t writer_id,
                     const char *field, field_value_t *out)
{
    const char *symbol;
    int64_t v;
    int rc;

    if ((rc = ingest_avro_scan_index(s, avro_schema_enum_number_of_symbols(t), 1, &v)) != 0) {
        return rc;
    }
    symbol = avro_schema_enum_get(t, (int)v);
    if (t != reader_enum) {
        int mapped = avro_schema_enum_get_by_name(reader_enum, symbol);
        if (mapped < 0) {
            return ingest_avro_reason_bad(s->reason, s->reason_len,
                                          "incompatible schema id %u: symbol %s of field %s is not "
                                          "in the reader's enum %s",
                                          (unsigned)writer_id, symbol, field,
                                          avro_schema_name(reader_enum));
        }
        symbol = avro_schema_enum_get(reader_enum, mapped);
    }
    out->present = 1;
    out->str = symbol;
    out->len = strlen(symbol);
    return INGEST_AVRO_OK;
}

/* Follows writer type *t's named-type links, refusing nesting deeper than SCAN_DEPTH_MAX. */
static int plan_type(scan_t *s, avro_schema_t *t, int depth)
{
    *t = ingest_avro_schema_deref(*t);
    if (depth > SCAN_DEPTH_MAX || *t == NULL) {
        return ingest_avro_reason_bad(s->reason, s->reason_len,
                                      "schema nesting deeper than %d at field %s", SCAN_DEPTH_MAX,
                                      s->field);
    }
    return 0;
}

/* Reads one value of type t (not a union, not null: a type ingest_avro_extra_type_fits allows) as
 * extra field x. writer_id names the writer schema in reasons when t is the writer's enum rather
 * than the reader's, whose symbols are then matched by name. */
static int extra_value(const extra_field_t *x, scan_t *s, avro_schema_t t, uint32_t writer_id,
                       field_value_t *out)
{
    int64_t v;
    int rc;

    switch (avro_typeof(t)) {
    case AVRO_BOOLEAN:
        if ((rc = ingest_avro_scan_bool(s, &v)) != 0) {
            return rc;
        }
        out->num = (double)v;
        break;
    case AVRO_INT32:
    case AVRO_INT64:
        if ((rc = ingest_avro_scan_int(s, avro_typeof(t), &v)) != 0) {
            return rc;
        }
        out->num = (double)v;
        break;
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        rc = ingest_avro_scan_real(s, avro_typeof(t) == AVRO_DOUBLE ? 8 : 4, &out->num);
        break;
    case AVRO_STRING:
        return ingest_avro_scan_string(s, out);
    case AVRO_ENUM:
        return enum_read(s, t, x->value_schema, writer_id, x->name, out);
    default:
        return ingest_avro_reason_bad(s->reason, s->reason_len,
                                      "field %s has an unexpected Avro type", s->field);
    }
    if (rc != 0) {
        return rc;
    }
    out->present = 1;
    return INGEST_AVRO_OK;
}

/* Reads extra field e straight from the wire, into dec->extra_vals. */
static int direct_extra(ingest_avro_t *dec, scan_t *s, size_t e)
{
    const extra_field_t *x = &dec->extras[e];
    field_value_t *out = &dec->extra_vals[e];
    int64_t v;
    int rc;

    memset(out, 0, sizeof *out);
    s->field = x->name;
    if (x->optional) {
        if ((rc = ingest_avro_scan_index(s, 2, 0, &v)) != 0) {
            return rc;
        }
        if (v == x->null_branch) {
            return INGEST_AVRO_OK;
        }
    }
    return extra_value(x, s, x->value_schema, 0, out);
}

/* The hot path, for a message written with the reader schema itself: one pass over the bytes
 * that validates and reads at once, no Avro C value, no allocation. Fields vigil does not read
 * are validated and skipped by the scanner. Same reasons as the general path. */
static int direct_decode(ingest_avro_t *dec, const uint8_t *data, size_t len, ingest_record_t *rec,
                         char *reason, size_t reason_len)
{
    scan_t s = {data, data + len, "(record)", reason, reason_len};
    field_value_t vals[FIELDS_MAX];
    int rc;

    for (size_t j = 0; j < dec->plan_len; j++) {
        const plan_step_t *step = &dec->plan[j];
        if (step->field >= 0) {
            rc = direct_field(dec, &s, step->field, &vals[step->field]);
        } else if (step->extra >= 0) {
            rc = direct_extra(dec, &s, (size_t)step->extra);
        } else {
            s.field = avro_schema_record_field_name(dec->reader_schema, (int)j);
            rc = ingest_avro_scan_value(
                &s, avro_schema_record_field_get_by_index(dec->reader_schema, (int)j), 1);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return decode_finish(dec, &s, data, vals, rec);
}

/* Reads one value of writer type t as the type's field i (see ingest_avro_writer_type_fits for what
 * converts). Reasons as the scanner's; a union branch the reader cannot take names the
 * incompatibility. */
static int plan_value(ingest_avro_t *dec, const writer_entry_t *w, scan_t *s, avro_schema_t t,
                      int i, field_value_t *out, int depth)
{
    const field_spec_t *spec = &dec->type->fields[i];
    int is_enum = spec->kind == FIELD_ENUM || spec->kind == FIELD_OPT_ENUM;
    int64_t v;
    int rc;

    if ((rc = plan_type(s, &t, depth)) != 0) {
        return rc;
    }
    if (!ingest_avro_writer_type_fits(spec->kind, t) && !is_avro_union(t)) {
        return ingest_avro_reason_bad(
            s->reason, s->reason_len,
            "incompatible schema id %u: field %s holds a %s, which vigil cannot "
            "read as its %s",
            (unsigned)w->id, spec->name, avro_schema_type_name(t), is_enum ? "enum" : "type");
    }
    switch (avro_typeof(t)) {
    case AVRO_UNION:
        if ((rc = ingest_avro_scan_index(s, (int64_t)avro_schema_union_size(t), 0, &v)) != 0) {
            return rc;
        }
        return plan_value(dec, w, s, avro_schema_union_branch(t, (int)v), i, out, depth + 1);
    case AVRO_NULL:
        out->present = 0; /* only reached for the optional kinds (ingest_avro_writer_type_fits) */
        return INGEST_AVRO_OK;
    case AVRO_STRING:
        return ingest_avro_scan_string(s, out);
    case AVRO_ARRAY:
        return ingest_avro_scan_string_array(s,
                                             out); /* of strings (ingest_avro_writer_type_fits) */
    case AVRO_BOOLEAN:
        out->present = 1;
        return ingest_avro_scan_bool(s, &out->i64);
    case AVRO_ENUM:
        return enum_read(s, t, dec->slots[i].enum_schema, w->id, spec->name, out);
    case AVRO_DOUBLE:
    case AVRO_FLOAT:
        out->present = 1;
        return ingest_avro_scan_real(s, avro_typeof(t) == AVRO_DOUBLE ? 8 : 4, &out->num);
    case AVRO_INT32:
    case AVRO_INT64:
        if ((rc = ingest_avro_scan_int(s, avro_typeof(t), &v)) != 0) {
            return rc;
        }
        out->present = 1;
        out->i64 = v;
        out->num = (double)v;
        return INGEST_AVRO_OK;
    default:
        return ingest_avro_reason_bad(s->reason, s->reason_len,
                                      "field %s has an unexpected Avro type", s->field);
    }
}

/* Reads one value of writer type t as extra field e (see ingest_avro_extra_type_fits for what
 * converts). A union branch the reader cannot take names the incompatibility. */
static int plan_extra(ingest_avro_t *dec, const writer_entry_t *w, scan_t *s, avro_schema_t t,
                      size_t e, field_value_t *out, int depth)
{
    const extra_field_t *x = &dec->extras[e];
    int64_t v;
    int rc;

    if ((rc = plan_type(s, &t, depth)) != 0) {
        return rc;
    }
    if (is_avro_union(t)) {
        if ((rc = ingest_avro_scan_index(s, (int64_t)avro_schema_union_size(t), 0, &v)) != 0) {
            return rc;
        }
        return plan_extra(dec, w, s, avro_schema_union_branch(t, (int)v), e, out, depth + 1);
    }
    if (!ingest_avro_extra_type_fits(x, t)) {
        return ingest_avro_reason_bad(
            s->reason, s->reason_len,
            "incompatible schema id %u: field %s holds a %s, which vigil cannot "
            "read as its %s",
            (unsigned)w->id, x->name, avro_schema_type_name(t),
            avro_schema_type_name(x->value_schema));
    }
    if (is_avro_null(t)) {
        out->present = 0;
        return INGEST_AVRO_OK;
    }
    return extra_value(x, s, t, w->id, out);
}

/* A message on a writer schema that differs from the reader's: read in the writer's field
 * order through its plan, fields vigil does not read validated and skipped, fields the writer
 * lacks left at the reader's default (null, the empty array, or an extra field's default). One
 * pass, as direct_decode. */
static int plan_decode(ingest_avro_t *dec, const writer_entry_t *w, const uint8_t *data, size_t len,
                       ingest_record_t *rec, char *reason, size_t reason_len)
{
    scan_t s = {data, data + len, "(record)", reason, reason_len};
    field_value_t vals[FIELDS_MAX];
    int rc;

    memset(vals, 0, sizeof vals);
    /* Extra fields the writer lacks keep the reader's default (ingest_avro_writer_plan made sure
     * there is one); the others are overwritten below. */
    for (size_t e = 0; e < dec->n_extra; e++) {
        dec->extra_vals[e] = dec->extras[e].def;
    }
    for (size_t j = 0; j < w->n_fields; j++) {
        const writer_field_t *f = &w->fields[j];
        s.field = f->name;
        if (f->spec >= 0) {
            rc = plan_value(dec, w, &s, f->schema, f->spec, &vals[f->spec], 1);
        } else if (f->extra >= 0) {
            field_value_t *out = &dec->extra_vals[f->extra];
            memset(out, 0, sizeof *out);
            rc = plan_extra(dec, w, &s, f->schema, (size_t)f->extra, out, 1);
        } else {
            rc = ingest_avro_scan_value(&s, f->schema, 1);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return decode_finish(dec, &s, data, vals, rec);
}

int ingest_avro_decode(ingest_avro_t *dec, const void *data, size_t len, ingest_record_t *rec,
                       char *reason, size_t reason_len)
{
    const uint8_t *payload = data;
    size_t payload_len = len;
    const writer_entry_t *plan = NULL;
    int rc;

    /* Every reason written below is cut to REASON_MAX through this. */
    if (reason_len > REASON_MAX) {
        reason_len = REASON_MAX;
    }
    if (len == 0) {
        return ingest_avro_reason_bad(reason, reason_len, "empty message");
    }
    if (dec->format == INGEST_FORMAT_CONFLUENT) {
        rc = ingest_avro_confluent_writer(dec, payload, len, &plan, reason, reason_len);
        if (rc != INGEST_AVRO_OK) {
            return rc;
        }
        payload += CONFLUENT_HEADER_LEN;
        payload_len -= CONFLUENT_HEADER_LEN;
    }
    if (plan != NULL) {
        return plan_decode(dec, plan, payload, payload_len, rec, reason, reason_len);
    }
    /* Same schema on both sides (plain format, or a Confluent id whose schema equals the
     * reader's). */
    return direct_decode(dec, payload, payload_len, rec, reason, reason_len);
}
