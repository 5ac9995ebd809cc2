/* Avro object container event files, through Avro C's writer and reader (the rules:
 * event_file.h). The writer's FILE is opened and closed by event_file.c, so that write errors
 * are seen (Avro C does not check its final flush); the reader's is handed to Avro C. On reading,
 * the file's own schema says where each field is and what type it has (ef_avro_plan). This is
 * the one file of daemon/ that calls Avro C directly: ingest/ encodes single messages, not
 * container files. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "event_file_internal.h"

/* ef_avro_store's: Avro C could not read the value (avro_strerror says why). */
#define EF_AVRO_BAD (-2)

/* The Avro schema written: BehaviorEvent with is_fraud added, so a BehaviorEvent reader schema
 * can read the records too (the extra field is skipped). */
static const char ef_avro_schema[] =
    "{\"type\":\"record\",\"name\":\"BehaviorEvent\",\"namespace\":\"vigil\","
    "\"doc\":\"A BehaviorEvent with its fraud label, as vigil's event files hold it.\","
    "\"fields\":["
    "{\"name\":\"event_id\",\"type\":\"string\"},"
    "{\"name\":\"event_type\",\"type\":{\"type\":\"enum\",\"name\":\"EventType\","
    "\"symbols\":[\"TRANSACTION\",\"LOGIN\",\"LOGIN_FAILED\",\"CLICK\",\"PASSWORD_CHANGE\"]}},"
    "{\"name\":\"user_id\",\"type\":\"string\"},"
    "{\"name\":\"account_id\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"device_id\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"ip\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"amount\",\"type\":[\"null\",\"double\"],\"default\":null},"
    "{\"name\":\"currency\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"merchant_id\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"merchant_category\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"country\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"latitude\",\"type\":[\"null\",\"double\"],\"default\":null},"
    "{\"name\":\"longitude\",\"type\":[\"null\",\"double\"],\"default\":null},"
    "{\"name\":\"event_time\",\"type\":{\"type\":\"long\",\"logicalType\":\"timestamp-millis\"}},"
    "{\"name\":\"channel\",\"type\":[\"null\",\"string\"],\"default\":null},"
    "{\"name\":\"is_fraud\",\"type\":[\"null\",\"boolean\"],\"default\":null}"
    "]}";

/* Sets an optional (["null", T]) field's branch: *branch is T's value, or NULL after null. */
static int ef_avro_branch(avro_value_t *field, int present, avro_value_t *branch)
{
    if (avro_value_set_branch(field, present ? 1 : 0, branch) != 0)
        return -1;
    return present ? 0 : avro_value_set_null(branch);
}

static int ef_format_avro(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud)
{
    for (int k = 0; k < EF_NFIELDS; k++) {
        avro_value_t f, b;
        const char *s;
        int rc;
        if (avro_value_get_by_index(&w->value, (size_t)k, &f, NULL) != 0)
            return -1;
        switch (ef_fields[k].type) {
        case EF_T_STRING:
            s = ef_event_string(ev, k);
            if (ef_fields[k].required)
                rc = avro_value_set_string(&f, s);
            else
                rc = ef_avro_branch(&f, s != NULL, &b) || (s && avro_value_set_string(&b, s));
            break;
        case EF_T_ENUM: {
            int idx = 0;
            for (size_t t = 0; t < EF_N_EVENT_TYPES; t++)
                if (strcmp(ef_event_types[t], ev->event_type) == 0)
                    idx = (int)t;
            rc = avro_value_set_enum(&f, idx);
            break;
        }
        case EF_T_DOUBLE: {
            int has = k == EF_AMOUNT ? ev->has_amount : ev->has_geo;
            double v = k == EF_AMOUNT     ? ev->amount
                       : k == EF_LATITUDE ? ev->latitude
                                          : ev->longitude;
            rc = ef_avro_branch(&f, has, &b) || (has && avro_value_set_double(&b, v));
            break;
        }
        case EF_T_TIME:
            rc = avro_value_set_long(&f, ev->event_time_ms);
            break;
        case EF_T_LABEL:
            rc = ef_avro_branch(&f, is_fraud >= 0, &b) ||
                 (is_fraud >= 0 && avro_value_set_boolean(&b, is_fraud));
            break;
        default:
            rc = -1;
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

int ef_avro_writer_open(event_file_writer_t *w, char *err, size_t errlen)
{
    if (avro_schema_from_json_length(ef_avro_schema, sizeof ef_avro_schema - 1, &w->schema) != 0 ||
        !(w->iface = avro_generic_class_from_schema(w->schema)) ||
        avro_generic_value_new(w->iface, &w->value) != 0) {
        errbuf_printf(err, errlen, "cannot set up the Avro writer for %.800s: %s", w->path,
                      avro_strerror());
        return -1;
    }
    w->have_value = 1;
    /* should_close 0: the FILE stays ours, so close can check what Avro C does not. */
    if (avro_file_writer_create_fp(w->f, w->path, 0, w->schema, &w->aw) != 0) {
        errbuf_printf(err, errlen, "cannot write %.800s: %s", w->path, avro_strerror());
        return -1;
    }
    return 0;
}

int ef_avro_write(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud, char *err,
                  size_t errlen)
{
    if (ef_format_avro(w, ev, is_fraud) < 0) {
        errbuf_printf(err, errlen, "%.800s: cannot encode event %.100s: %s", w->path, ev->event_id,
                      avro_strerror());
        return -1;
    }
    if (avro_file_writer_append_value(w->aw, &w->value) != 0) {
        errbuf_printf(err, errlen, "cannot write %.800s: %s", w->path, avro_strerror());
        w->failed = 1;
        return -1;
    }
    return 0;
}

int ef_avro_writer_close(event_file_writer_t *w, char *err, size_t errlen)
{
    int rc = 0;

    if (w->aw) {
        /* A failed close leaves Avro C's writer allocated: it has no other way to free it. */
        if (avro_file_writer_close(w->aw) != 0 && !w->failed) {
            errbuf_printf(err, errlen, "cannot write %.800s: %s", w->path, avro_strerror());
            rc = -1;
        }
        w->aw = NULL;
    }
    return rc;
}

void ef_avro_writer_release(event_file_writer_t *w)
{
    if (w->have_value)
        avro_value_decref(&w->value);
    if (w->iface)
        avro_value_iface_decref(w->iface);
    if (w->schema)
        avro_schema_decref(w->schema);
}

/* ---- Reading. ---- */

static avro_schema_t ef_avro_deref(avro_schema_t t)
{
    for (int i = 0; t != NULL && is_avro_link(t) && i < 16; i++)
        t = avro_schema_link_target(t);
    return t;
}

static int ef_avro_type_fits(ef_type_t want, avro_type_t t)
{
    switch (want) {
    case EF_T_STRING:
        return t == AVRO_STRING;
    case EF_T_ENUM:
        return t == AVRO_ENUM || t == AVRO_STRING;
    case EF_T_DOUBLE:
        return t == AVRO_DOUBLE || t == AVRO_FLOAT || t == AVRO_INT32 || t == AVRO_INT64;
    case EF_T_TIME:
        return t == AVRO_INT64 || t == AVRO_INT32;
    case EF_T_LABEL:
        return t == AVRO_BOOLEAN || t == AVRO_INT32 || t == AVRO_INT64;
    }
    return 0;
}

/* Maps the file's schema onto the fields, refusing what cannot be read. */
static int ef_avro_plan(event_file_reader_t *r, char *err, size_t errlen)
{
    avro_schema_t s = r->schema;
    if (!is_avro_record(s)) {
        errbuf_printf(err, errlen, "%.900s: the file's schema is not a record", r->path);
        return -1;
    }
    size_t n = avro_schema_record_size(s);
    for (size_t i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(s, (int)i);
        char shown[48];
        if (!name || ef_field_by_name(name) < 0) {
            errbuf_printf(err, errlen,
                          "%.900s: unknown field '%s' in the file's schema (the fields are "
                          "BehaviorEvent's and is_fraud)",
                          r->path, name ? ef_show(name, shown, sizeof shown) : "?");
            return -1;
        }
    }
    for (int k = 0; k < EF_NFIELDS; k++) {
        ef_avro_field_t *a = &r->af[k];
        const char *name = ef_fields[k].name;
        a->index = avro_schema_record_field_get_index(s, name);
        a->null_branch = -1;
        if (a->index < 0) {
            if (ef_fields[k].required) {
                errbuf_printf(err, errlen, "%.900s: the file's schema has no field %s", r->path,
                              name);
                return -1;
            }
            continue;
        }
        avro_schema_t t = ef_avro_deref(avro_schema_record_field_get_by_index(s, a->index));
        if (t && is_avro_union(t)) {
            avro_schema_t b0 = ef_avro_deref(avro_schema_union_branch(t, 0));
            avro_schema_t b1 = avro_schema_union_size(t) == 2
                                   ? ef_avro_deref(avro_schema_union_branch(t, 1))
                                   : NULL;
            if (b0 && b1 && is_avro_null(b0) != is_avro_null(b1)) {
                a->null_branch = is_avro_null(b0) ? 0 : 1;
                t = a->null_branch == 0 ? b1 : b0;
            } else {
                t = NULL;
            }
        }
        if (!t || !ef_avro_type_fits(ef_fields[k].type, avro_typeof(t))) {
            errbuf_printf(err, errlen,
                          "%.900s: field %s of the file's schema has a type it cannot have",
                          r->path, name);
            return -1;
        }
        a->type = avro_typeof(t);
        a->enum_type = a->type == AVRO_ENUM ? t : NULL;
    }
    return 0;
}

/* A number field's value as a double. */
static int ef_avro_get_number(avro_value_t *v, avro_type_t t, double *out)
{
    int32_t i32;
    int64_t i64;
    float f;
    switch (t) {
    case AVRO_DOUBLE:
        return avro_value_get_double(v, out);
    case AVRO_FLOAT:
        if (avro_value_get_float(v, &f) != 0)
            return -1;
        *out = f;
        return 0;
    case AVRO_INT32:
        if (avro_value_get_int(v, &i32) != 0)
            return -1;
        *out = i32;
        return 0;
    case AVRO_INT64:
        if (avro_value_get_long(v, &i64) != 0)
            return -1;
        *out = (double)i64;
        return 0;
    default:
        return -1;
    }
}

/* event_type as an enum symbol or a string. 0, -1 with err, or EF_AVRO_BAD. */
static int ef_avro_store_event_type(const ef_avro_field_t *a, avro_value_t *v, ingest_event_t *ev,
                                    const char *loc, char *err, size_t errlen)
{
    const char *s = NULL;
    size_t size;
    int idx;

    if (a->type == AVRO_ENUM) {
        if (avro_value_get_enum(v, &idx) != 0)
            return EF_AVRO_BAD;
        s = avro_schema_enum_get(a->enum_type, idx);
    } else if (avro_value_get_string(v, &s, &size) != 0) {
        return EF_AVRO_BAD;
    }
    if (!s || !(ev->event_type = ef_event_type_symbol(s))) {
        char shown[48];
        errbuf_printf(err, errlen,
                      "%s: event_type '%s' is not one of TRANSACTION, LOGIN, LOGIN_FAILED, "
                      "CLICK, PASSWORD_CHANGE",
                      loc, s ? ef_show(s, shown, sizeof shown) : "?");
        return -1;
    }
    return 0;
}

/* is_fraud as a boolean, an int or a long. 0, -1 with err, or EF_AVRO_BAD. */
static int ef_avro_store_label(const ef_avro_field_t *a, avro_value_t *v, int *is_fraud,
                               const char *loc, char *err, size_t errlen)
{
    int bv;
    int32_t i32;
    int64_t i64;

    if (a->type == AVRO_BOOLEAN) {
        if (avro_value_get_boolean(v, &bv) != 0)
            return EF_AVRO_BAD;
        i64 = bv != 0;
    } else if (a->type == AVRO_INT32) {
        if (avro_value_get_int(v, &i32) != 0)
            return EF_AVRO_BAD;
        i64 = i32;
    } else if (avro_value_get_long(v, &i64) != 0) {
        return EF_AVRO_BAD;
    }
    if (i64 != 0 && i64 != 1) {
        errbuf_printf(err, errlen, "%s: is_fraud %" PRId64 " is not 0 or 1", loc, i64);
        return -1;
    }
    *is_fraud = (int)i64;
    return 0;
}

/* The value v (not null) of field k into ev, *is_fraud, and *has_lat or *has_lon. 0, -1 with
 * err, or EF_AVRO_BAD. */
static int ef_avro_store(const ef_avro_field_t *a, int k, avro_value_t *v, ingest_event_t *ev,
                         int *is_fraud, int *has_lat, int *has_lon, const char *loc, char *err,
                         size_t errlen)
{
    const char *name = ef_fields[k].name;

    switch (ef_fields[k].type) {
    case EF_T_STRING: {
        const char *s;
        size_t size;
        if (avro_value_get_string(v, &s, &size) != 0)
            return EF_AVRO_BAD;
        if (size == 0 || memchr(s, '\0', size - 1)) {
            errbuf_printf(err, errlen, "%s: %s holds a NUL byte", loc, name);
            return -1;
        }
        if (ef_fields[k].required && s[0] == '\0') {
            errbuf_printf(err, errlen, "%s: %s is empty", loc, name);
            return -1;
        }
        ef_event_set_string(ev, k, s);
        return 0;
    }
    case EF_T_ENUM:
        return ef_avro_store_event_type(a, v, ev, loc, err, errlen);
    case EF_T_DOUBLE: {
        double d;
        if (ef_avro_get_number(v, a->type, &d) != 0)
            return EF_AVRO_BAD;
        if (!isfinite(d)) {
            errbuf_printf(err, errlen, "%s: %s is not a finite number", loc, name);
            return -1;
        }
        ef_event_set_double(ev, k, d);
        *has_lat |= k == EF_LATITUDE;
        *has_lon |= k == EF_LONGITUDE;
        return 0;
    }
    case EF_T_TIME: {
        int32_t i32;
        if (a->type == AVRO_INT32) {
            if (avro_value_get_int(v, &i32) != 0)
                return EF_AVRO_BAD;
            ev->event_time_ms = i32;
        } else if (avro_value_get_long(v, &ev->event_time_ms) != 0) {
            return EF_AVRO_BAD;
        }
        return 0;
    }
    case EF_T_LABEL:
        return ef_avro_store_label(a, v, is_fraud, loc, err, errlen);
    }
    return 0;
}

int ef_avro_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                 size_t errlen)
{
    char loc[1024];
    int rc = avro_file_reader_read_value(r->ar, &r->value);

    if (rc == EOF)
        return 0;
    r->record_no++;
    snprintf(loc, sizeof loc, "%.900s: record %" PRIu64, r->path, r->record_no);
    if (rc != 0) {
        errbuf_printf(err, errlen, "%s: cannot read (truncated or corrupt file?): %s", loc,
                      avro_strerror());
        return -1;
    }
    memset(ev, 0, sizeof *ev);
    *is_fraud = -1;
    int has_lat = 0, has_lon = 0;
    for (int k = 0; k < EF_NFIELDS; k++) {
        const ef_avro_field_t *a = &r->af[k];
        const char *name = ef_fields[k].name;
        avro_value_t f, b, *v = &f;
        if (a->index < 0)
            continue;
        if (avro_value_get_by_index(&r->value, (size_t)a->index, &f, NULL) != 0)
            goto bad_value;
        if (a->null_branch >= 0) {
            int d;
            if (avro_value_get_discriminant(&f, &d) != 0)
                goto bad_value;
            if (d == a->null_branch) {
                if (ef_fields[k].required) {
                    errbuf_printf(err, errlen, "%s: missing required field %s", loc, name);
                    return -1;
                }
                continue;
            }
            if (avro_value_get_current_branch(&f, &b) != 0)
                goto bad_value;
            v = &b;
        }
        rc = ef_avro_store(a, k, v, ev, is_fraud, &has_lat, &has_lon, loc, err, errlen);
        if (rc == EF_AVRO_BAD)
            goto bad_value;
        if (rc < 0)
            return -1;
        continue;
    bad_value:
        errbuf_printf(err, errlen, "%s: cannot read field %s: %s", loc, name, avro_strerror());
        return -1;
    }
    if (has_lat != has_lon) {
        errbuf_printf(err, errlen, "%s: latitude and longitude must both be present or both null",
                      loc);
        return -1;
    }
    ev->has_geo = has_lat;
    return 1;
}

int ef_avro_reader_open(event_file_reader_t *r, FILE *f, char *err, size_t errlen)
{
    /* The magic first: Avro C's reader leaks when the header is not there. */
    char magic[4];
    size_t got = fread(magic, 1, sizeof magic, f);
    if (ferror(f) || fseek(f, 0, SEEK_SET) != 0) {
        errbuf_printf(err, errlen, "cannot read %.900s: %s", r->path, strerror(errno));
        fclose(f); /* read-only: nothing to lose */
        return -1;
    }
    if (got != sizeof magic || memcmp(magic, "Obj\x01", 4) != 0) {
        errbuf_printf(err, errlen,
                      "%.900s: not an Avro object container file (it does not start with Obj 1)",
                      r->path);
        fclose(f);
        return -1;
    }
    /* Avro C takes the FILE (should_close 1) whatever happens. It reads the header and the first
     * block of records here. */
    if (avro_file_reader_fp(f, r->path, 1, &r->ar) != 0) {
        errbuf_printf(
            err, errlen,
            "%.800s: not a readable Avro object container file (truncated before record 1?): "
            "%s",
            r->path, avro_strerror());
        r->ar = NULL;
        return -1;
    }
    r->schema = avro_file_reader_get_writer_schema(r->ar); /* a reference of our own */
    if (!r->schema) {
        errbuf_printf(err, errlen, "%.900s: no schema in the file", r->path);
        return -1;
    }
    if (ef_avro_plan(r, err, errlen) < 0)
        return -1;
    r->iface = avro_generic_class_from_schema(r->schema);
    if (!r->iface || avro_generic_value_new(r->iface, &r->value) != 0) {
        errbuf_printf(err, errlen, "%.800s: cannot set up reading: %s", r->path, avro_strerror());
        return -1;
    }
    r->have_value = 1;
    return 0;
}

void ef_avro_reader_release(event_file_reader_t *r)
{
    if (r->have_value)
        avro_value_decref(&r->value);
    if (r->iface)
        avro_value_iface_decref(r->iface);
    if (r->schema)
        avro_schema_decref(r->schema);
    if (r->ar)
        avro_file_reader_close(r->ar); /* always 0; closes the FILE */
}
