/* Labelled event files in CSV, JSON Lines and Avro (see event_file.h).
 *
 * CSV and JSONL are written a record at a time into a memory buffer, then handed to stdio in one
 * fwrite, so one check covers a record. Reading goes a physical line at a time (getline); a CSV
 * record continues over further lines while a quoted field is open, and is then split and
 * unescaped in place. Both text formats then go through one conversion (ef_fill) from text to the
 * event, so they accept and refuse the same values. Avro goes through Avro C's object container
 * file writer and reader, on a FILE that this file opens and closes itself so that write errors
 * are seen (Avro C does not check its final flush). This is the one file of daemon/ that uses
 * Avro C directly: ingest/ encodes single messages, not container files. */
#include "event_file.h"

#include <avro.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "csv.h"
#include "ingest_json.h"

/* ---- The fields, in file order (also the Avro schema's field order). ---- */

enum {
    EF_EVENT_ID,
    EF_EVENT_TYPE,
    EF_USER_ID,
    EF_ACCOUNT_ID,
    EF_DEVICE_ID,
    EF_IP,
    EF_AMOUNT,
    EF_CURRENCY,
    EF_MERCHANT_ID,
    EF_MERCHANT_CATEGORY,
    EF_COUNTRY,
    EF_LATITUDE,
    EF_LONGITUDE,
    EF_EVENT_TIME,
    EF_CHANNEL,
    EF_IS_FRAUD,
    EF_NFIELDS
};

typedef enum ef_type {
    EF_T_STRING, /* required when the field says so, else optional */
    EF_T_ENUM,   /* event_type: one of ef_event_types */
    EF_T_DOUBLE, /* optional */
    EF_T_TIME,   /* event_time: required integer milliseconds */
    EF_T_LABEL   /* is_fraud: optional boolean */
} ef_type_t;

static const struct {
    const char *name;
    ef_type_t type;
    int required;
} ef_fields[EF_NFIELDS] = {
    {"event_id", EF_T_STRING, 1},    {"event_type", EF_T_ENUM, 1},
    {"user_id", EF_T_STRING, 1},     {"account_id", EF_T_STRING, 0},
    {"device_id", EF_T_STRING, 0},   {"ip", EF_T_STRING, 0},
    {"amount", EF_T_DOUBLE, 0},      {"currency", EF_T_STRING, 0},
    {"merchant_id", EF_T_STRING, 0}, {"merchant_category", EF_T_STRING, 0},
    {"country", EF_T_STRING, 0},     {"latitude", EF_T_DOUBLE, 0},
    {"longitude", EF_T_DOUBLE, 0},   {"event_time", EF_T_TIME, 1},
    {"channel", EF_T_STRING, 0},     {"is_fraud", EF_T_LABEL, 0},
};

/* BehaviorEvent's EventType symbols, in the schema's order. */
static const char *const ef_event_types[] = {"TRANSACTION", "LOGIN", "LOGIN_FAILED", "CLICK",
                                             "PASSWORD_CHANGE"};
#define EF_N_EVENT_TYPES (sizeof ef_event_types / sizeof ef_event_types[0])

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

/* A CSV record or JSONL line longer than this is refused rather than grown without bound. */
#define EF_RECORD_MAX (1u << 20)
/* CSV fields split out of one record at most; more than EF_NFIELDS is refused anyway. */
#define EF_MAX_COLUMNS 64

static int ef_field_by_name(const char *name)
{
    for (int k = 0; k < EF_NFIELDS; k++)
        if (strcmp(ef_fields[k].name, name) == 0)
            return k;
    return -1;
}

static const char *ef_event_type_symbol(const char *s)
{
    for (size_t k = 0; k < EF_N_EVENT_TYPES; k++)
        if (strcmp(ef_event_types[k], s) == 0)
            return ef_event_types[k];
    return NULL;
}

/* The event's value of string field k. */
static const char *ef_event_string(const ingest_event_t *ev, int k)
{
    switch (k) {
    case EF_EVENT_ID:
        return ev->event_id;
    case EF_EVENT_TYPE:
        return ev->event_type;
    case EF_USER_ID:
        return ev->user_id;
    case EF_ACCOUNT_ID:
        return ev->account_id;
    case EF_DEVICE_ID:
        return ev->device_id;
    case EF_IP:
        return ev->ip;
    case EF_CURRENCY:
        return ev->currency;
    case EF_MERCHANT_ID:
        return ev->merchant_id;
    case EF_MERCHANT_CATEGORY:
        return ev->merchant_category;
    case EF_COUNTRY:
        return ev->country;
    case EF_CHANNEL:
        return ev->channel;
    default:
        return NULL;
    }
}

static void ef_event_set_string(ingest_event_t *ev, int k, const char *s)
{
    switch (k) {
    case EF_EVENT_ID:
        ev->event_id = s;
        break;
    case EF_EVENT_TYPE:
        ev->event_type = s;
        break;
    case EF_USER_ID:
        ev->user_id = s;
        break;
    case EF_ACCOUNT_ID:
        ev->account_id = s;
        break;
    case EF_DEVICE_ID:
        ev->device_id = s;
        break;
    case EF_IP:
        ev->ip = s;
        break;
    case EF_CURRENCY:
        ev->currency = s;
        break;
    case EF_MERCHANT_ID:
        ev->merchant_id = s;
        break;
    case EF_MERCHANT_CATEGORY:
        ev->merchant_category = s;
        break;
    case EF_COUNTRY:
        ev->country = s;
        break;
    case EF_CHANNEL:
        ev->channel = s;
        break;
    default:
        break;
    }
}

/* A value for a message: at most 40 bytes, control characters as '?'. */
static const char *ef_show(const char *s, char *buf, size_t len)
{
    size_t n = 0;
    for (; s[n] != '\0' && n + 1 < len && n < 40; n++)
        buf[n] = (unsigned char)s[n] < 0x20 ? '?' : s[n];
    buf[n] = '\0';
    if (s[n] != '\0' && n >= 3)
        memcpy(buf + n - 3, "...", 3);
    return buf;
}

/* A finite decimal number, the whole string (no spaces, hex, inf or nan). */
static int ef_parse_double(const char *s, double *out)
{
    char *end;
    if (s[0] == '\0' || strspn(s, "0123456789+-.eE") != strlen(s))
        return -1;
    double v = strtod(s, &end); /* underflow to a subnormal or zero is fine: no errno check */
    if (end == s || *end != '\0' || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

/* An integer in int64 range, the whole string. */
static int ef_parse_i64(const char *s, int64_t *out)
{
    const char *p = s + (s[0] == '-' || s[0] == '+');
    char *end;
    if (*p == '\0' || strspn(p, "0123456789") != strlen(p))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* Shortest "%.Ng" that reads back as exactly v (v finite). */
static void ef_format_double(double v, char *buf, size_t len)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* Refuses what no format can hold; the reader would refuse it too. */
static int ef_check_event(const ingest_event_t *ev, int is_fraud, char *err, size_t errlen)
{
    if (!ev->event_id || ev->event_id[0] == '\0') {
        snprintf(err, errlen, "event without an event_id");
        return -1;
    }
    if (!ev->user_id || ev->user_id[0] == '\0') {
        snprintf(err, errlen, "event %.200s: no user_id", ev->event_id);
        return -1;
    }
    if (!ev->event_type || !ef_event_type_symbol(ev->event_type)) {
        snprintf(err, errlen, "event %.200s: event_type %.40s is not a BehaviorEvent type",
                 ev->event_id, ev->event_type ? ev->event_type : "(null)");
        return -1;
    }
    if ((ev->has_amount && !isfinite(ev->amount)) ||
        (ev->has_geo && (!isfinite(ev->latitude) || !isfinite(ev->longitude)))) {
        snprintf(err, errlen, "event %.200s: amount, latitude or longitude is not finite",
                 ev->event_id);
        return -1;
    }
    if (is_fraud < -1 || is_fraud > 1) {
        snprintf(err, errlen, "event %.200s: is_fraud %d is not 0, 1 or -1", ev->event_id,
                 is_fraud);
        return -1;
    }
    return 0;
}

int event_file_format_from_name(const char *path, event_file_format_t *fmt)
{
    const char *dot = path ? strrchr(path, '.') : NULL;
    if (!dot || strchr(dot, '/'))
        return -1;
    if (strcasecmp(dot, ".csv") == 0)
        *fmt = EVENT_FILE_CSV;
    else if (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".ndjson") == 0)
        *fmt = EVENT_FILE_JSONL;
    else if (strcasecmp(dot, ".avro") == 0)
        *fmt = EVENT_FILE_AVRO;
    else
        return -1;
    return 0;
}

/* ---- Writing. ---- */

struct event_file_writer {
    event_file_format_t fmt;
    char *path;
    FILE *f;
    int failed; /* a write failed: close says so */
    char *buf;  /* CSV, JSONL: the record being formatted */
    size_t len, cap;
    /* Avro. */
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    int have_value;
    avro_file_writer_t aw;
};

static int ef_put(event_file_writer_t *w, const char *s, size_t n)
{
    if (w->len + n + 1 > w->cap) {
        size_t cap = w->cap ? w->cap : 1024;
        while (cap < w->len + n + 1)
            cap *= 2;
        char *b = realloc(w->buf, cap);
        if (!b)
            return -1;
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    return 0;
}

static int ef_puts(event_file_writer_t *w, const char *s)
{
    return ef_put(w, s, strlen(s));
}

/* RFC 4180: quoted when it holds a comma, quote or line break, or is empty (so that it is not
 * read as null), or starts or ends with a space (which some readers trim). */
static int ef_put_csv_string(event_file_writer_t *w, const char *s)
{
    size_t n = strlen(s);
    if (n > 0 && strpbrk(s, ",\"\r\n") == NULL && s[0] != ' ' && s[n - 1] != ' ')
        return ef_put(w, s, n);
    if (ef_put(w, "\"", 1) < 0)
        return -1;
    for (const char *q; (q = strchr(s, '"')) != NULL; s = q + 1)
        if (ef_put(w, s, (size_t)(q - s)) < 0 || ef_put(w, "\"\"", 2) < 0)
            return -1;
    return ef_puts(w, s) < 0 || ef_put(w, "\"", 1) < 0 ? -1 : 0;
}

static int ef_put_json_string(event_file_writer_t *w, const char *s)
{
    if (ef_put(w, "\"", 1) < 0)
        return -1;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        const char *e = NULL;
        if (c == '"')
            e = "\\\"";
        else if (c == '\\')
            e = "\\\\";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\r')
            e = "\\r";
        else if (c == '\t')
            e = "\\t";
        else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            e = esc;
        }
        if (e) {
            if (ef_put(w, s, (size_t)(p - s)) < 0 || ef_puts(w, e) < 0)
                return -1;
            s = p + 1;
        }
    }
    return ef_puts(w, s) < 0 || ef_put(w, "\"", 1) < 0 ? -1 : 0;
}

/* Field k of ev as text into buf: 0 done, 1 null. Strings come back in *str instead. */
static int ef_field_text(const ingest_event_t *ev, int is_fraud, int k, int json, char *buf,
                         size_t len, const char **str)
{
    *str = NULL;
    switch (ef_fields[k].type) {
    case EF_T_STRING:
    case EF_T_ENUM:
        *str = ef_event_string(ev, k);
        return *str ? 0 : 1;
    case EF_T_DOUBLE: {
        double v = k == EF_AMOUNT ? ev->amount : k == EF_LATITUDE ? ev->latitude : ev->longitude;
        if (k == EF_AMOUNT ? !ev->has_amount : !ev->has_geo)
            return 1;
        ef_format_double(v, buf, len);
        return 0;
    }
    case EF_T_TIME:
        snprintf(buf, len, "%" PRId64, ev->event_time_ms);
        return 0;
    case EF_T_LABEL:
        if (is_fraud < 0)
            return 1;
        snprintf(buf, len, "%s", json ? (is_fraud ? "true" : "false") : (is_fraud ? "1" : "0"));
        return 0;
    }
    return 1;
}

static int ef_format_csv(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud)
{
    for (int k = 0; k < EF_NFIELDS; k++) {
        char num[64];
        const char *str;
        int null = ef_field_text(ev, is_fraud, k, 0, num, sizeof num, &str);
        if ((k > 0 && ef_put(w, ",", 1) < 0) ||
            (!null && (str ? ef_put_csv_string(w, str) : ef_puts(w, num)) < 0))
            return -1;
    }
    return ef_put(w, "\n", 1);
}

static int ef_format_json(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud)
{
    for (int k = 0; k < EF_NFIELDS; k++) {
        char num[64];
        const char *str;
        int null = ef_field_text(ev, is_fraud, k, 1, num, sizeof num, &str);
        if (ef_puts(w, k == 0 ? "{\"" : ",\"") < 0 || ef_puts(w, ef_fields[k].name) < 0 ||
            ef_puts(w, "\":") < 0 ||
            (null  ? ef_puts(w, "null")
             : str ? ef_put_json_string(w, str)
                   : ef_puts(w, num)) < 0)
            return -1;
    }
    return ef_put(w, "}\n", 2);
}

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

static void ef_writer_free(event_file_writer_t *w)
{
    if (!w)
        return;
    if (w->have_value)
        avro_value_decref(&w->value);
    if (w->iface)
        avro_value_iface_decref(w->iface);
    if (w->schema)
        avro_schema_decref(w->schema);
    if (w->f)
        fclose(w->f); /* only on a path that already failed: its result adds nothing */
    free(w->buf);
    free(w->path);
    free(w);
}

event_file_writer_t *event_file_writer_new(const char *path, event_file_format_t fmt, char *err,
                                           size_t errlen)
{
    event_file_writer_t *w = calloc(1, sizeof *w);

    if (!w || !(w->path = strdup(path))) {
        snprintf(err, errlen, "out of memory creating a writer for %.900s", path);
        goto fail;
    }
    w->fmt = fmt;
    w->f = fopen(path, "wb");
    if (!w->f) {
        snprintf(err, errlen, "cannot create %.900s: %s", path, strerror(errno));
        goto fail;
    }
    switch (fmt) {
    case EVENT_FILE_CSV:
        for (int k = 0; k < EF_NFIELDS; k++)
            if ((k > 0 && ef_put(w, ",", 1) < 0) || ef_puts(w, ef_fields[k].name) < 0) {
                snprintf(err, errlen, "out of memory writing %.900s", path);
                goto fail;
            }
        if (ef_put(w, "\n", 1) < 0) {
            snprintf(err, errlen, "out of memory writing %.900s", path);
            goto fail;
        }
        if (fwrite(w->buf, 1, w->len, w->f) != w->len) {
            snprintf(err, errlen, "cannot write %.900s: %s", path, strerror(errno));
            goto fail;
        }
        break;
    case EVENT_FILE_JSONL:
        break;
    case EVENT_FILE_AVRO:
        if (avro_schema_from_json_length(ef_avro_schema, sizeof ef_avro_schema - 1, &w->schema) !=
                0 ||
            !(w->iface = avro_generic_class_from_schema(w->schema)) ||
            avro_generic_value_new(w->iface, &w->value) != 0) {
            snprintf(err, errlen, "cannot set up the Avro writer for %.800s: %s", path,
                     avro_strerror());
            goto fail;
        }
        w->have_value = 1;
        /* should_close 0: the FILE stays ours, so close can check what Avro C does not. */
        if (avro_file_writer_create_fp(w->f, path, 0, w->schema, &w->aw) != 0) {
            snprintf(err, errlen, "cannot write %.800s: %s", path, avro_strerror());
            goto fail;
        }
        break;
    default:
        snprintf(err, errlen, "unknown event file format %d", (int)fmt);
        goto fail;
    }
    return w;

fail:
    ef_writer_free(w);
    return NULL;
}

int event_file_write(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud, char *err,
                     size_t errlen)
{
    if (w->failed) {
        snprintf(err, errlen, "%.900s: not written after an earlier error", w->path);
        return -1;
    }
    if (ef_check_event(ev, is_fraud, err, errlen) < 0)
        return -1;
    if (w->fmt == EVENT_FILE_AVRO) {
        if (ef_format_avro(w, ev, is_fraud) < 0) {
            snprintf(err, errlen, "%.800s: cannot encode event %.100s: %s", w->path, ev->event_id,
                     avro_strerror());
            return -1;
        }
        if (avro_file_writer_append_value(w->aw, &w->value) != 0) {
            snprintf(err, errlen, "cannot write %.800s: %s", w->path, avro_strerror());
            w->failed = 1;
            return -1;
        }
        return 0;
    }
    w->len = 0;
    if ((w->fmt == EVENT_FILE_CSV ? ef_format_csv(w, ev, is_fraud)
                                  : ef_format_json(w, ev, is_fraud)) < 0) {
        snprintf(err, errlen, "out of memory formatting event %.100s", ev->event_id);
        return -1;
    }
    if (fwrite(w->buf, 1, w->len, w->f) != w->len) {
        snprintf(err, errlen, "cannot write %.900s: %s", w->path, strerror(errno));
        w->failed = 1;
        return -1;
    }
    return 0;
}

int event_file_writer_close(event_file_writer_t *w, char *err, size_t errlen)
{
    int rc = 0;

    if (!w)
        return 0;
    if (w->aw) {
        /* A failed close leaves Avro C's writer allocated: it has no other way to free it. */
        if (avro_file_writer_close(w->aw) != 0 && !w->failed) {
            snprintf(err, errlen, "cannot write %.800s: %s", w->path, avro_strerror());
            rc = -1;
        }
        w->aw = NULL;
    }
    if (w->failed && rc == 0) {
        snprintf(err, errlen, "%.900s is incomplete: a write failed", w->path);
        rc = -1;
    }
    /* fflush then ferror catch a failure of any earlier buffered write; fclose one of its own. */
    errno = 0;
    if (fflush(w->f) != 0 || ferror(w->f)) {
        if (rc == 0)
            snprintf(err, errlen, "cannot write %.900s: %s", w->path,
                     errno ? strerror(errno) : "write error");
        rc = -1;
    }
    if (fclose(w->f) != 0 && rc == 0) {
        snprintf(err, errlen, "cannot write %.900s: %s", w->path, strerror(errno));
        rc = -1;
    }
    w->f = NULL;
    ef_writer_free(w);
    return rc;
}

/* ---- Reading. ---- */

/* A value as a text format has it, before conversion. */
typedef enum ef_kind {
    EF_V_NULL, /* null, or absent */
    EF_V_TEXT, /* a string (JSON), any field (CSV) */
    EF_V_NUMBER,
    EF_V_TRUE,
    EF_V_FALSE
} ef_kind_t;

typedef struct ef_value {
    ef_kind_t kind;
    const char *s; /* TEXT and NUMBER */
} ef_value_t;

/* Where a field of the file's Avro schema is. */
typedef struct ef_avro_field {
    int index;               /* in the writer schema, -1 when it has no such field */
    int null_branch;         /* -1 when the field is not a union with null */
    avro_type_t type;        /* of the value (the non-null branch) */
    avro_schema_t enum_type; /* event_type as an enum */
} ef_avro_field_t;

struct event_file_reader {
    event_file_format_t fmt;
    char *path;
    FILE *f;
    int failed;
    uint64_t line_no;   /* CSV, JSONL: physical lines read */
    uint64_t record_no; /* records returned, plus the one being read */
    char *line;         /* getline's buffer */
    size_t line_cap;
    /* CSV. */
    char *rec; /* the current record, split and unescaped in place */
    size_t rec_len, rec_cap;
    int col_field[EF_MAX_COLUMNS]; /* field of each column */
    int n_cols;
    /* JSONL: the current record's strings and number tokens. */
    char *owned[EF_NFIELDS];
    char num[EF_NFIELDS][64];
    /* Avro. */
    avro_file_reader_t ar;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    int have_value;
    ef_avro_field_t af[EF_NFIELDS];
};

/* Reads one physical line into r->line; its length, 0 at end of file, -1 error (err set). */
static long ef_getline(event_file_reader_t *r, char *err, size_t errlen)
{
    errno = 0;
    ssize_t n = getline(&r->line, &r->line_cap, r->f);
    if (n < 0) {
        if (ferror(r->f) || errno == ENOMEM) {
            snprintf(err, errlen, "cannot read %.900s: %s", r->path,
                     errno ? strerror(errno) : "read error");
            return -1;
        }
        return 0;
    }
    r->line_no++;
    if (memchr(r->line, '\0', (size_t)n)) {
        snprintf(err, errlen, "%.900s:%" PRIu64 ": a NUL byte", r->path, r->line_no);
        return -1;
    }
    if ((size_t)n > EF_RECORD_MAX) {
        snprintf(err, errlen, "%.900s:%" PRIu64 ": line longer than %u bytes", r->path, r->line_no,
                 EF_RECORD_MAX);
        return -1;
    }
    return (long)n;
}

static size_t ef_strip_eol(char *s, size_t n)
{
    if (n > 0 && s[n - 1] == '\n')
        n--;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    s[n] = '\0';
    return n;
}

/* Converts the text values of one record into ev and *is_fraud. loc: "FILE:LINE". */
static int ef_fill(const char *loc, const ef_value_t *v, ingest_event_t *ev, int *is_fraud,
                   char *err, size_t errlen)
{
    char shown[48];

    memset(ev, 0, sizeof *ev);
    *is_fraud = -1;
    for (int k = 0; k < EF_NFIELDS; k++) {
        const ef_value_t *x = &v[k];
        const char *name = ef_fields[k].name;
        if (x->kind == EF_V_NULL) {
            if (ef_fields[k].required) {
                snprintf(err, errlen, "%s: missing required field %s", loc, name);
                return -1;
            }
            continue;
        }
        switch (ef_fields[k].type) {
        case EF_T_STRING:
            if (x->kind != EF_V_TEXT) {
                snprintf(err, errlen, "%s: %s is not a string", loc, name);
                return -1;
            }
            if (ef_fields[k].required && x->s[0] == '\0') {
                snprintf(err, errlen, "%s: %s is empty", loc, name);
                return -1;
            }
            ef_event_set_string(ev, k, x->s);
            break;
        case EF_T_ENUM:
            if (x->kind != EF_V_TEXT || !(ev->event_type = ef_event_type_symbol(x->s))) {
                snprintf(err, errlen,
                         "%s: event_type '%s' is not one of TRANSACTION, LOGIN, LOGIN_FAILED, "
                         "CLICK, PASSWORD_CHANGE",
                         loc, x->s ? ef_show(x->s, shown, sizeof shown) : "(not a string)");
                return -1;
            }
            break;
        case EF_T_DOUBLE: {
            double d;
            if (x->kind == EF_V_TRUE || x->kind == EF_V_FALSE || ef_parse_double(x->s, &d) < 0) {
                snprintf(err, errlen, "%s: %s '%s' is not a finite number", loc, name,
                         x->s ? ef_show(x->s, shown, sizeof shown) : "true/false");
                return -1;
            }
            if (k == EF_AMOUNT) {
                ev->has_amount = 1;
                ev->amount = d;
            } else if (k == EF_LATITUDE) {
                ev->latitude = d;
            } else {
                ev->longitude = d;
            }
            break;
        }
        case EF_T_TIME:
            if (x->kind == EF_V_TRUE || x->kind == EF_V_FALSE ||
                ef_parse_i64(x->s, &ev->event_time_ms) < 0) {
                snprintf(err, errlen, "%s: event_time '%s' is not an integer (epoch milliseconds)",
                         loc, x->s ? ef_show(x->s, shown, sizeof shown) : "true/false");
                return -1;
            }
            break;
        case EF_T_LABEL:
            /* CSV gives text, JSON true/false or a number. */
            if (x->kind == EF_V_TRUE ||
                (x->s && (strcmp(x->s, "1") == 0 ||
                          (x->kind == EF_V_TEXT && strcasecmp(x->s, "true") == 0)))) {
                *is_fraud = 1;
            } else if (x->kind == EF_V_FALSE ||
                       (x->s && (strcmp(x->s, "0") == 0 ||
                                 (x->kind == EF_V_TEXT && strcasecmp(x->s, "false") == 0)))) {
                *is_fraud = 0;
            } else {
                snprintf(err, errlen, "%s: is_fraud '%s' is not 0, 1, true, false or empty", loc,
                         ef_show(x->s, shown, sizeof shown));
                return -1;
            }
            break;
        }
    }
    if ((v[EF_LATITUDE].kind == EF_V_NULL) != (v[EF_LONGITUDE].kind == EF_V_NULL)) {
        snprintf(err, errlen, "%s: latitude and longitude must both be present or both null", loc);
        return -1;
    }
    ev->has_geo = v[EF_LATITUDE].kind != EF_V_NULL;
    return 0;
}

/* ---- CSV. ---- */

/* Reads the next record (over several lines while a quoted field is open) into r->rec, without
 * its line end; skips blank lines. 1, 0 at end of file, -1 error. *first_line: where it began. */
static int csv_next(event_file_reader_t *r, uint64_t *first_line, char *err, size_t errlen)
{
    for (;;) {
        size_t len = 0, breaks;
        const char *next;
        r->rec_len = 0;
        *first_line = r->line_no + 1;
        for (;;) {
            long n = ef_getline(r, err, errlen);
            if (n < 0)
                return -1;
            if (n == 0) {
                if (r->rec_len == 0)
                    return 0;
                snprintf(err, errlen, "%.900s:%" PRIu64 ": a quoted field is not closed", r->path,
                         *first_line);
                return -1;
            }
            if (r->rec_len + (size_t)n + 1 > EF_RECORD_MAX) {
                snprintf(err, errlen, "%.900s:%" PRIu64 ": record longer than %u bytes", r->path,
                         *first_line, EF_RECORD_MAX);
                return -1;
            }
            if (r->rec_len + (size_t)n + 1 > r->rec_cap) {
                size_t cap = r->rec_cap ? r->rec_cap : 4096;
                while (cap < r->rec_len + (size_t)n + 1)
                    cap *= 2;
                char *b = realloc(r->rec, cap);
                if (!b) {
                    snprintf(err, errlen, "out of memory reading %.900s", r->path);
                    return -1;
                }
                r->rec = b;
                r->rec_cap = cap;
            }
            memcpy(r->rec + r->rec_len, r->line, (size_t)n);
            r->rec_len += (size_t)n;
            if (csv_record(r->rec, r->rec + r->rec_len, &len, &next, &breaks) == 0)
                break; /* else a quoted field holds the line break: read on */
        }
        r->rec_len = len;
        r->rec[len] = '\0';
        if (len > 0)
            return 1;
    }
}

/* Splits r->rec into fields (csv_split), naming the file and line in an error. */
static int ef_csv_split(event_file_reader_t *r, uint64_t line, csv_field_t *out, char *err,
                        size_t errlen)
{
    char what[128];
    int n = csv_split(r->rec, r->rec_len, out, EF_MAX_COLUMNS, what, sizeof what);
    if (n < 0)
        snprintf(err, errlen, "%.900s:%" PRIu64 ": %s", r->path, line, what);
    return n;
}

static int csv_header(event_file_reader_t *r, char *err, size_t errlen)
{
    csv_field_t cols[EF_MAX_COLUMNS];
    uint64_t line;
    int seen[EF_NFIELDS] = {0};
    int rc = csv_next(r, &line, err, errlen);

    if (rc == 0)
        snprintf(err, errlen, "%.900s: empty file: no header row", r->path);
    if (rc <= 0)
        return -1;
    /* A UTF-8 byte order mark, as some spreadsheets write. */
    if (r->rec_len >= 3 && memcmp(r->rec, "\xEF\xBB\xBF", 3) == 0) {
        memmove(r->rec, r->rec + 3, r->rec_len - 3 + 1);
        r->rec_len -= 3;
    }
    int n = ef_csv_split(r, line, cols, err, errlen);
    if (n < 0)
        return -1;
    /* More than EF_NFIELDS columns: one is unknown or repeated, which the loop says. */
    for (int c = 0; c < n; c++) {
        char shown[48];
        int k = ef_field_by_name(cols[c].s);
        if (k < 0) {
            snprintf(err, errlen,
                     "%.900s:%" PRIu64 ": unknown column '%s' (the columns are BehaviorEvent's "
                     "fields and is_fraud)",
                     r->path, line, ef_show(cols[c].s, shown, sizeof shown));
            return -1;
        }
        if (seen[k]++) {
            snprintf(err, errlen, "%.900s:%" PRIu64 ": column %s appears twice", r->path, line,
                     ef_fields[k].name);
            return -1;
        }
        r->col_field[c] = k;
    }
    r->n_cols = n;
    for (int k = 0; k < EF_NFIELDS; k++)
        if (ef_fields[k].required && !seen[k]) {
            snprintf(err, errlen, "%.900s:%" PRIu64 ": missing required column %s", r->path, line,
                     ef_fields[k].name);
            return -1;
        }
    return 0;
}

static int csv_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                    size_t errlen)
{
    csv_field_t cols[EF_MAX_COLUMNS];
    ef_value_t v[EF_NFIELDS];
    char loc[1024];
    uint64_t line;
    int rc = csv_next(r, &line, err, errlen);
    if (rc <= 0)
        return rc;
    snprintf(loc, sizeof loc, "%.900s:%" PRIu64, r->path, line);
    int n = ef_csv_split(r, line, cols, err, errlen);
    if (n < 0)
        return -1;
    if (n != r->n_cols) {
        snprintf(err, errlen, "%s: %d fields, the header has %d", loc, n, r->n_cols);
        return -1;
    }
    memset(v, 0, sizeof v);
    for (int c = 0; c < n; c++) {
        ef_value_t *x = &v[r->col_field[c]];
        x->kind = cols[c].quoted || cols[c].s[0] != '\0' ? EF_V_TEXT : EF_V_NULL;
        x->s = x->kind == EF_V_TEXT ? cols[c].s : NULL;
    }
    return ef_fill(loc, v, ev, is_fraud, err, errlen) < 0 ? -1 : 1;
}

/* ---- JSON Lines. ---- */

static void jsonl_release(event_file_reader_t *r)
{
    for (int k = 0; k < EF_NFIELDS; k++) {
        free(r->owned[k]);
        r->owned[k] = NULL;
    }
}

static int jsonl_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                      size_t errlen)
{
    ef_value_t v[EF_NFIELDS];
    char loc[1024];
    ingest_json_t j;
    long n;

    jsonl_release(r);
    for (;;) {
        n = ef_getline(r, err, errlen);
        if (n <= 0)
            return (int)n;
        n = (long)ef_strip_eol(r->line, (size_t)n);
        j.p = r->line;
        j.end = r->line + n;
        ingest_json_space(&j);
        if (j.p < j.end)
            break; /* else a blank line */
    }
    snprintf(loc, sizeof loc, "%.900s:%" PRIu64, r->path, r->line_no);
    memset(v, 0, sizeof v);
    if (*j.p++ != '{') {
        snprintf(err, errlen, "%s: not a JSON object", loc);
        return -1;
    }
    ingest_json_space(&j);
    if (j.p < j.end && *j.p == '}') {
        j.p++;
    } else {
        int seen[EF_NFIELDS] = {0};
        for (;;) {
            char *key = NULL, shown[48];
            int k;
            ingest_json_space(&j);
            int rc = ingest_json_string(&j, &key, NULL);
            if (rc != 0) {
                snprintf(err, errlen,
                         rc == -2 ? "%s: out of memory" : "%s: bad JSON: expected a key", loc);
                return -1;
            }
            k = ef_field_by_name(key);
            if (k < 0) {
                snprintf(err, errlen,
                         "%s: unknown key '%s' (the keys are BehaviorEvent's fields and is_fraud)",
                         loc, ef_show(key, shown, sizeof shown));
                free(key);
                return -1;
            }
            free(key);
            if (seen[k]++) {
                snprintf(err, errlen, "%s: key %s appears twice", loc, ef_fields[k].name);
                return -1;
            }
            ingest_json_space(&j);
            if (j.p >= j.end || *j.p++ != ':') {
                snprintf(err, errlen, "%s: bad JSON: expected ':' after %s", loc,
                         ef_fields[k].name);
                return -1;
            }
            ingest_json_space(&j);
            ef_value_t *x = &v[k];
            if (j.p < j.end && *j.p == '"') {
                rc = ingest_json_string(&j, &r->owned[k], NULL);
                if (rc != 0) {
                    snprintf(err, errlen,
                             rc == -2 ? "%s: out of memory" : "%s: bad JSON string for %s", loc,
                             ef_fields[k].name);
                    return -1;
                }
                x->kind = EF_V_TEXT;
                x->s = r->owned[k];
            } else if (ingest_json_word(&j, "null")) {
                x->kind = EF_V_NULL;
            } else if (ingest_json_word(&j, "true")) {
                x->kind = EF_V_TRUE;
            } else if (ingest_json_word(&j, "false")) {
                x->kind = EF_V_FALSE;
            } else {
                size_t len = strspn(j.p, "0123456789+-.eE");
                if (len == 0 || len >= sizeof r->num[k]) {
                    snprintf(err, errlen, "%s: %s: not a string, number, true, false or null", loc,
                             ef_fields[k].name);
                    return -1;
                }
                memcpy(r->num[k], j.p, len);
                r->num[k][len] = '\0';
                j.p += len;
                x->kind = EF_V_NUMBER;
                x->s = r->num[k];
            }
            ingest_json_space(&j);
            if (j.p < j.end && *j.p == ',') {
                j.p++;
                continue;
            }
            if (j.p < j.end && *j.p == '}') {
                j.p++;
                break;
            }
            snprintf(err, errlen, "%s: bad JSON after %s: expected ',' or '}'", loc,
                     ef_fields[k].name);
            return -1;
        }
    }
    ingest_json_space(&j);
    if (j.p != j.end) {
        snprintf(err, errlen, "%s: text after the object (one object per line)", loc);
        return -1;
    }
    /* A string where a number belongs, or a number where a string does, is refused by ef_fill. */
    for (int k = 0; k < EF_NFIELDS; k++)
        if (v[k].kind == EF_V_TEXT &&
            (ef_fields[k].type == EF_T_DOUBLE || ef_fields[k].type == EF_T_TIME ||
             ef_fields[k].type == EF_T_LABEL)) {
            snprintf(err, errlen, "%s: %s is a string, not a %s", loc, ef_fields[k].name,
                     ef_fields[k].type == EF_T_LABEL ? "boolean" : "number");
            return -1;
        }
    return ef_fill(loc, v, ev, is_fraud, err, errlen) < 0 ? -1 : 1;
}

/* ---- Avro. ---- */

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
        snprintf(err, errlen, "%.900s: the file's schema is not a record", r->path);
        return -1;
    }
    size_t n = avro_schema_record_size(s);
    for (size_t i = 0; i < n; i++) {
        const char *name = avro_schema_record_field_name(s, (int)i);
        char shown[48];
        if (!name || ef_field_by_name(name) < 0) {
            snprintf(err, errlen,
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
                snprintf(err, errlen, "%.900s: the file's schema has no field %s", r->path, name);
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
            snprintf(err, errlen, "%.900s: field %s of the file's schema has a type it cannot have",
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

static int ef_avro_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                        size_t errlen)
{
    char loc[1024];
    int rc = avro_file_reader_read_value(r->ar, &r->value);

    if (rc == EOF)
        return 0;
    r->record_no++;
    snprintf(loc, sizeof loc, "%.900s: record %" PRIu64, r->path, r->record_no);
    if (rc != 0) {
        snprintf(err, errlen, "%s: cannot read (truncated or corrupt file?): %s", loc,
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
                    snprintf(err, errlen, "%s: missing required field %s", loc, name);
                    return -1;
                }
                continue;
            }
            if (avro_value_get_current_branch(&f, &b) != 0)
                goto bad_value;
            v = &b;
        }
        switch (ef_fields[k].type) {
        case EF_T_STRING: {
            const char *s;
            size_t size;
            if (avro_value_get_string(v, &s, &size) != 0)
                goto bad_value;
            if (size == 0 || memchr(s, '\0', size - 1)) {
                snprintf(err, errlen, "%s: %s holds a NUL byte", loc, name);
                return -1;
            }
            if (ef_fields[k].required && s[0] == '\0') {
                snprintf(err, errlen, "%s: %s is empty", loc, name);
                return -1;
            }
            ef_event_set_string(ev, k, s);
            break;
        }
        case EF_T_ENUM: {
            const char *s = NULL;
            size_t size;
            int idx;
            if (a->type == AVRO_ENUM) {
                if (avro_value_get_enum(v, &idx) != 0)
                    goto bad_value;
                s = avro_schema_enum_get(a->enum_type, idx);
            } else if (avro_value_get_string(v, &s, &size) != 0) {
                goto bad_value;
            }
            if (!s || !(ev->event_type = ef_event_type_symbol(s))) {
                char shown[48];
                snprintf(err, errlen,
                         "%s: event_type '%s' is not one of TRANSACTION, LOGIN, LOGIN_FAILED, "
                         "CLICK, PASSWORD_CHANGE",
                         loc, s ? ef_show(s, shown, sizeof shown) : "?");
                return -1;
            }
            break;
        }
        case EF_T_DOUBLE: {
            double d;
            if (ef_avro_get_number(v, a->type, &d) != 0)
                goto bad_value;
            if (!isfinite(d)) {
                snprintf(err, errlen, "%s: %s is not a finite number", loc, name);
                return -1;
            }
            if (k == EF_AMOUNT) {
                ev->has_amount = 1;
                ev->amount = d;
            } else if (k == EF_LATITUDE) {
                has_lat = 1;
                ev->latitude = d;
            } else {
                has_lon = 1;
                ev->longitude = d;
            }
            break;
        }
        case EF_T_TIME: {
            int32_t i32;
            if (a->type == AVRO_INT32) {
                if (avro_value_get_int(v, &i32) != 0)
                    goto bad_value;
                ev->event_time_ms = i32;
            } else if (avro_value_get_long(v, &ev->event_time_ms) != 0) {
                goto bad_value;
            }
            break;
        }
        case EF_T_LABEL: {
            int bv;
            int32_t i32;
            int64_t i64;
            if (a->type == AVRO_BOOLEAN) {
                if (avro_value_get_boolean(v, &bv) != 0)
                    goto bad_value;
                i64 = bv != 0;
            } else if (a->type == AVRO_INT32) {
                if (avro_value_get_int(v, &i32) != 0)
                    goto bad_value;
                i64 = i32;
            } else if (avro_value_get_long(v, &i64) != 0) {
                goto bad_value;
            }
            if (i64 != 0 && i64 != 1) {
                snprintf(err, errlen, "%s: is_fraud %" PRId64 " is not 0 or 1", loc, i64);
                return -1;
            }
            *is_fraud = (int)i64;
            break;
        }
        }
        continue;
    bad_value:
        snprintf(err, errlen, "%s: cannot read field %s: %s", loc, name, avro_strerror());
        return -1;
    }
    if (has_lat != has_lon) {
        snprintf(err, errlen, "%s: latitude and longitude must both be present or both null", loc);
        return -1;
    }
    ev->has_geo = has_lat;
    return 1;
}

/* ---- The reader. ---- */

event_file_reader_t *event_file_reader_new(const char *path, char *err, size_t errlen)
{
    event_file_reader_t *r = NULL;
    event_file_format_t fmt;

    if (event_file_format_from_name(path, &fmt) < 0) {
        snprintf(err, errlen,
                 "%.900s: unknown event file format: the name must end in .csv, .jsonl, .ndjson "
                 "or .avro",
                 path);
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        snprintf(err, errlen, "out of memory opening %.900s", path);
        goto fail;
    }
    r->fmt = fmt;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %.900s: %s", path, strerror(errno));
        goto fail;
    }
    if (fmt != EVENT_FILE_AVRO) {
        r->f = f;
        if (fmt == EVENT_FILE_CSV && csv_header(r, err, errlen) < 0)
            goto fail;
        return r;
    }
    /* The magic first: Avro C's reader leaks when the header is not there. */
    char magic[4];
    size_t got = fread(magic, 1, sizeof magic, f);
    if (ferror(f) || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(err, errlen, "cannot read %.900s: %s", path, strerror(errno));
        fclose(f); /* read-only: nothing to lose */
        goto fail;
    }
    if (got != sizeof magic || memcmp(magic, "Obj\x01", 4) != 0) {
        snprintf(err, errlen,
                 "%.900s: not an Avro object container file (it does not start with Obj 1)", path);
        fclose(f);
        goto fail;
    }
    /* Avro C takes the FILE (should_close 1) whatever happens. It reads the header and the first
     * block of records here. */
    if (avro_file_reader_fp(f, path, 1, &r->ar) != 0) {
        snprintf(err, errlen,
                 "%.800s: not a readable Avro object container file (truncated before record 1?): "
                 "%s",
                 path, avro_strerror());
        r->ar = NULL;
        goto fail;
    }
    r->schema = avro_file_reader_get_writer_schema(r->ar); /* a reference of our own */
    if (!r->schema) {
        snprintf(err, errlen, "%.900s: no schema in the file", path);
        goto fail;
    }
    if (ef_avro_plan(r, err, errlen) < 0)
        goto fail;
    r->iface = avro_generic_class_from_schema(r->schema);
    if (!r->iface || avro_generic_value_new(r->iface, &r->value) != 0) {
        snprintf(err, errlen, "%.800s: cannot set up reading: %s", path, avro_strerror());
        goto fail;
    }
    r->have_value = 1;
    return r;

fail:
    event_file_reader_free(r);
    return NULL;
}

int event_file_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                    size_t errlen)
{
    int rc;
    if (r->failed) {
        snprintf(err, errlen, "%.900s: not read further after an earlier error", r->path);
        return -1;
    }
    switch (r->fmt) {
    case EVENT_FILE_CSV:
        rc = csv_read(r, ev, is_fraud, err, errlen);
        break;
    case EVENT_FILE_JSONL:
        rc = jsonl_read(r, ev, is_fraud, err, errlen);
        break;
    default:
        rc = ef_avro_read(r, ev, is_fraud, err, errlen);
        break;
    }
    if (rc < 0)
        r->failed = 1;
    return rc;
}

void event_file_reader_free(event_file_reader_t *r)
{
    if (!r)
        return;
    if (r->have_value)
        avro_value_decref(&r->value);
    if (r->iface)
        avro_value_iface_decref(r->iface);
    if (r->schema)
        avro_schema_decref(r->schema);
    if (r->ar)
        avro_file_reader_close(r->ar); /* always 0; closes the FILE */
    if (r->f)
        fclose(r->f); /* read-only: nothing to lose */
    jsonl_release(r);
    free(r->line);
    free(r->rec);
    free(r->path);
    free(r);
}
