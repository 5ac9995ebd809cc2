/* The encoder (vigil produce, tests, benchmarks): an ingest_record_t as Avro binary on the
 * reader schema, through Avro C's value API, with the Confluent header when the format has one.
 * A BehaviorEvent's extra fields come from the record, or from the schema's defaults when the
 * record has none. */
#include "ingest_avro_internal.h"

#include <avro.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Fills err for an Avro C failure setting field name (avro_strerror says what) and returns -1. */
static int avro_field_failed(const char *name, char *err, size_t errlen)
{
    ingest_avro_text_set(err, errlen, "cannot set Avro field %s: %s", name, avro_strerror());
    return -1;
}

/* Sets enum field (named name) to symbol of the reader's enum. */
static int enum_write(avro_value_t *field, avro_schema_t enum_schema, const char *name,
                      const char *symbol, char *err, size_t errlen)
{
    int index = avro_schema_enum_get_by_name(enum_schema, symbol);
    if (index < 0) {
        ingest_avro_text_set(err, errlen, "%s \"%.40s\" is not a symbol of enum %s", name, symbol,
                             avro_schema_name(enum_schema));
        return -1;
    }
    if (avro_value_set_enum(field, index) != 0) {
        return avro_field_failed(name, err, errlen);
    }
    return 0;
}

/* An optional field is a union: selects its null branch and sets it when the value is absent
 * (returns 0: nothing more to write), else selects the value branch and points *field at it
 * (returns 1). -1 on an Avro error (avro_strerror says what). */
static int union_branch_set(avro_value_t *field, int present, int null_branch, int value_branch)
{
    avro_value_t branch;
    if (!present) {
        if (avro_value_set_branch(field, null_branch, &branch) != 0 ||
            avro_value_set_null(&branch) != 0)
            return -1;
        return 0;
    }
    if (avro_value_set_branch(field, value_branch, &branch) != 0)
        return -1;
    *field = branch;
    return 1;
}

/* Appends the n strings at items to array field (spec's). */
static int array_write(avro_value_t *field, const field_spec_t *spec, const char *const *items,
                       size_t n, char *err, size_t errlen)
{
    for (size_t k = 0; k < n; k++) {
        avro_value_t item;
        if (items[k] == NULL) {
            ingest_avro_text_set(err, errlen, "record field %s has a NULL item %zu", spec->name, k);
            return -1;
        }
        if (avro_value_append(field, &item, NULL) != 0 ||
            avro_value_set_string(&item, items[k]) != 0) {
            return avro_field_failed(spec->name, err, errlen);
        }
    }
    return 0;
}

/* Sets field (spec's, the value branch of an optional one) from the record member at member:
 * str is the member itself for the string and enum kinds. */
static int field_value_write(avro_value_t *field, const field_spec_t *spec,
                             const field_slot_t *slot, const ingest_record_t *rec,
                             const char *member, const char *str, char *err, size_t errlen)
{
    int rc;

    switch (spec->kind) {
    case FIELD_STRING:
    case FIELD_OPT_STRING:
        rc = avro_value_set_string(field, str);
        break;
    case FIELD_ENUM:
    case FIELD_OPT_ENUM:
        return enum_write(field, slot->enum_schema, spec->name, str, err, errlen);
    case FIELD_OPT_DOUBLE: {
        double d;
        memcpy(&d, member, sizeof d);
        rc = avro_value_set_double(field, d);
        break;
    }
    case FIELD_TIME_MS: {
        int64_t t;
        memcpy(&t, member, sizeof t);
        rc = avro_value_set_long(field, t);
        break;
    }
    case FIELD_BOOL: {
        int b;
        memcpy(&b, member, sizeof b);
        rc = avro_value_set_boolean(field, b != 0);
        break;
    }
    case FIELD_STRING_ARRAY: {
        const char *const *items;
        size_t n;
        memcpy(&items, member, sizeof items);
        memcpy(&n, (const char *)rec + spec->aux_offset, sizeof n);
        return array_write(field, spec, items, n, err, errlen);
    }
    default:
        rc = -1;
        break;
    }
    return rc != 0 ? avro_field_failed(spec->name, err, errlen) : 0;
}

/* Sets field i of enc->value from rec. */
static int field_write(ingest_avro_t *enc, const ingest_record_t *rec, int i, char *err,
                       size_t errlen)
{
    const field_spec_t *spec = &enc->type->fields[i];
    const field_slot_t *slot = &enc->slots[i];
    const char *member = (const char *)rec + spec->offset;
    const char *str = NULL;
    avro_value_t field;
    int present = 1;

    if (avro_value_get_by_index(&enc->value, slot->index, &field, NULL) != 0) {
        return avro_field_failed(spec->name, err, errlen);
    }
    switch (spec->kind) {
    case FIELD_STRING:
    case FIELD_ENUM:
    case FIELD_OPT_STRING:
    case FIELD_OPT_ENUM:
        memcpy(&str, member, sizeof str);
        present = (str != NULL);
        break;
    case FIELD_OPT_DOUBLE:
        if (spec->aux_offset != 0) {
            memcpy(&present, (const char *)rec + spec->aux_offset, sizeof present);
        }
        break;
    default:
        break;
    }
    if (!present && !ingest_avro_field_is_optional(spec->kind)) {
        ingest_avro_text_set(err, errlen, "record field %s is NULL; it is required", spec->name);
        return -1;
    }
    if (ingest_avro_field_is_optional(spec->kind)) {
        int rc = union_branch_set(&field, present, slot->null_branch, slot->value_branch);
        if (rc <= 0) {
            return rc < 0 ? avro_field_failed(spec->name, err, errlen) : 0;
        }
    }
    return field_value_write(&field, spec, slot, rec, member, str, err, errlen);
}

/* The value extra field e of ev takes: ev's own, or the field's default when ev has no extra
 * values at all (a record built without the schema's columns in mind). *present 0: null. */
static int extra_value_get(const extra_field_t *x, const ingest_event_t *ev, size_t e, double *num,
                           const char **str, int *present, char *err, size_t errlen)
{
    *num = NAN;
    *str = NULL;
    if (ev->n_extra == 0) {
        if (!x->has_default && !x->optional) {
            ingest_avro_text_set(
                err, errlen,
                "record has no extra fields; field %s of the schema is required and has no "
                "default",
                x->name);
            return -1;
        }
        *present = x->has_default && x->def.present;
        *num = x->def.num;
        *str = x->def.str;
    } else if (x->type == INGEST_EXTRA_NUMBER) {
        *num = ev->extra_num != NULL ? ev->extra_num[e] : NAN;
        *present = !isnan(*num);
    } else {
        *str = ev->extra_str != NULL ? ev->extra_str[e] : NULL;
        *present = *str != NULL;
    }
    if (!*present && !x->optional) {
        ingest_avro_text_set(err, errlen, "record extra field %s is %s; it is required", x->name,
                             x->type == INGEST_EXTRA_NUMBER ? "NaN" : "NULL");
        return -1;
    }
    return 0;
}

/* Sets field (extra field x, the value branch of an optional one) to num or str, whichever its
 * type takes. */
static int extra_value_write(avro_value_t *field, const extra_field_t *x, double num,
                             const char *str, char *err, size_t errlen)
{
    int rc;

    switch (x->value_type) {
    case AVRO_INT32:
        if (num != floor(num) || num < INT32_MIN || num > INT32_MAX) {
            ingest_avro_text_set(err, errlen, "record extra field %s is %g, not an int", x->name,
                                 num);
            return -1;
        }
        rc = avro_value_set_int(field, (int32_t)num);
        break;
    case AVRO_INT64:
        /* 2^63 is the first double past INT64_MAX. */
        if (num != floor(num) || num < -9223372036854775808.0 || num >= 9223372036854775808.0) {
            ingest_avro_text_set(err, errlen, "record extra field %s is %g, not a long", x->name,
                                 num);
            return -1;
        }
        rc = avro_value_set_long(field, (int64_t)num);
        break;
    case AVRO_FLOAT:
        rc = avro_value_set_float(field, (float)num);
        break;
    case AVRO_DOUBLE:
        rc = avro_value_set_double(field, num);
        break;
    case AVRO_BOOLEAN:
        rc = avro_value_set_boolean(field, num != 0.0);
        break;
    case AVRO_STRING:
        rc = avro_value_set_string(field, str);
        break;
    case AVRO_ENUM:
        return enum_write(field, x->value_schema, x->name, str, err, errlen);
    default:
        rc = -1;
        break;
    }
    return rc != 0 ? avro_field_failed(x->name, err, errlen) : 0;
}

/* Sets extra field e of enc->value from ev (extra_value_get says which value). */
static int extra_write(ingest_avro_t *enc, const ingest_event_t *ev, size_t e, char *err,
                       size_t errlen)
{
    const extra_field_t *x = &enc->extras[e];
    avro_value_t field;
    double num;
    const char *str;
    int present;

    if (extra_value_get(x, ev, e, &num, &str, &present, err, errlen) != 0) {
        return -1;
    }
    if (avro_value_get_by_index(&enc->value, x->index, &field, NULL) != 0) {
        return avro_field_failed(x->name, err, errlen);
    }
    if (x->optional) {
        int rc = union_branch_set(&field, present, x->null_branch, x->value_branch);
        if (rc <= 0) {
            return rc < 0 ? avro_field_failed(x->name, err, errlen) : 0;
        }
    }
    return extra_value_write(&field, x, num, str, err, errlen);
}

long ingest_avro_encode(ingest_avro_t *enc, const ingest_record_t *rec, int32_t schema_id,
                        void *out, size_t out_cap, char *err, size_t errlen)
{
    size_t header = enc->format == INGEST_FORMAT_CONFLUENT ? CONFLUENT_HEADER_LEN : 0;
    uint8_t *bytes = out;
    size_t body;

    if (enc->format == INGEST_FORMAT_CONFLUENT && schema_id < 0) {
        ingest_avro_text_set(err, errlen, "schema id %d is negative; Confluent ids start at 1",
                             (int)schema_id);
        return -1;
    }
    if (rec->kind != enc->kind) {
        ingest_avro_text_set(err, errlen, "cannot encode a %s with a %s encoder",
                             ingest_kind_schema_name(rec->kind), enc->type->name);
        return -1;
    }
    /* Fields of the schema that ingest_record_t lacks (other than a BehaviorEvent's extra
     * fields) stay at their zero values. */
    if (avro_value_reset(&enc->value) != 0) {
        ingest_avro_text_set(err, errlen, "cannot reset the Avro value: %s", avro_strerror());
        return -1;
    }
    for (int i = 0; i < enc->type->n_fields; i++) {
        if (field_write(enc, rec, i, err, errlen) != 0) {
            return -1;
        }
    }
    if (enc->kind == INGEST_KIND_EVENT) {
        const ingest_event_t *ev = &rec->event;
        if (ev->n_extra != 0 && ev->n_extra != enc->n_extra) {
            ingest_avro_text_set(err, errlen, "record has %zu extra fields; the schema %s has %zu",
                                 ev->n_extra, avro_schema_name(enc->reader_schema), enc->n_extra);
            return -1;
        }
        for (size_t e = 0; e < enc->n_extra; e++) {
            if (extra_write(enc, ev, e, err, errlen) != 0) {
                return -1;
            }
        }
    }
    if (avro_value_sizeof(&enc->value, &body) != 0) {
        ingest_avro_text_set(err, errlen, "cannot size the Avro record: %s", avro_strerror());
        return -1;
    }
    if (out_cap < header || body > out_cap - header || header + body > LONG_MAX) {
        ingest_avro_text_set(err, errlen,
                             "output buffer of %zu bytes is too small; the record needs %zu",
                             out_cap, header + body);
        return -1;
    }
    if (header != 0) {
        ingest_avro_confluent_header_put(bytes, (uint32_t)schema_id);
    }
    avro_writer_memory_set_dest(enc->writer, (const char *)bytes + header,
                                (int64_t)(out_cap - header));
    if (avro_value_write(enc->writer, &enc->value) != 0) {
        ingest_avro_text_set(err, errlen, "cannot write the Avro record: %s", avro_strerror());
        return -1;
    }
    return (long)(header + (size_t)avro_writer_tell(enc->writer));
}
