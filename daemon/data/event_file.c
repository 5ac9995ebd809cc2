/* Labelled event files (see event_file.h): the field table every format goes by, the format
 * from a file name, the checks every writer makes, and the writer and reader that dispatch to
 * the format's file (event_csv.c, event_jsonl.c, event_avro.c; their shared internals:
 * event_file_internal.h). */
#include "event_file.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errbuf.h"
#include "event_file_internal.h"

const ef_field_t ef_fields[EF_NFIELDS] = {
    {"event_id", EF_T_STRING, 1},    {"event_type", EF_T_ENUM, 1},
    {"user_id", EF_T_STRING, 1},     {"account_id", EF_T_STRING, 0},
    {"device_id", EF_T_STRING, 0},   {"ip", EF_T_STRING, 0},
    {"amount", EF_T_DOUBLE, 0},      {"currency", EF_T_STRING, 0},
    {"merchant_id", EF_T_STRING, 0}, {"merchant_category", EF_T_STRING, 0},
    {"country", EF_T_STRING, 0},     {"latitude", EF_T_DOUBLE, 0},
    {"longitude", EF_T_DOUBLE, 0},   {"event_time", EF_T_TIME, 1},
    {"channel", EF_T_STRING, 0},     {"is_fraud", EF_T_LABEL, 0},
};

const char *const ef_event_types[] = {"TRANSACTION", "LOGIN", "LOGIN_FAILED", "CLICK",
                                      "PASSWORD_CHANGE"};
_Static_assert(sizeof ef_event_types / sizeof ef_event_types[0] == EF_N_EVENT_TYPES,
               "EF_N_EVENT_TYPES is the number of EventType symbols");

int ef_field_by_name(const char *name)
{
    for (int k = 0; k < EF_NFIELDS; k++)
        if (strcmp(ef_fields[k].name, name) == 0)
            return k;
    return -1;
}

const char *ef_event_type_symbol(const char *s)
{
    for (size_t k = 0; k < EF_N_EVENT_TYPES; k++)
        if (strcmp(ef_event_types[k], s) == 0)
            return ef_event_types[k];
    return NULL;
}

const char *ef_event_string(const ingest_event_t *ev, int k)
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

void ef_event_set_string(ingest_event_t *ev, int k, const char *s)
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

void ef_event_set_double(ingest_event_t *ev, int k, double d)
{
    if (k == EF_AMOUNT) {
        ev->has_amount = 1;
        ev->amount = d;
    } else if (k == EF_LATITUDE) {
        ev->latitude = d;
    } else {
        ev->longitude = d;
    }
}

/* A value for a message: at most 40 bytes, control characters as '?'. */
const char *ef_show(const char *s, char *buf, size_t len)
{
    size_t n = 0;
    for (; s[n] != '\0' && n + 1 < len && n < 40; n++)
        buf[n] = (unsigned char)s[n] < 0x20 ? '?' : s[n];
    buf[n] = '\0';
    if (s[n] != '\0' && n >= 3)
        memcpy(buf + n - 3, "...", 3);
    return buf;
}

/* Refuses what no format can hold; the reader would refuse it too. */
static int ef_check_event(const ingest_event_t *ev, int is_fraud, char *err, size_t errlen)
{
    if (!ev->event_id || ev->event_id[0] == '\0') {
        errbuf_printf(err, errlen, "event without an event_id");
        return -1;
    }
    if (!ev->user_id || ev->user_id[0] == '\0') {
        errbuf_printf(err, errlen, "event %.200s: no user_id", ev->event_id);
        return -1;
    }
    if (!ev->event_type || !ef_event_type_symbol(ev->event_type)) {
        errbuf_printf(err, errlen, "event %.200s: event_type %.40s is not a BehaviorEvent type",
                      ev->event_id, ev->event_type ? ev->event_type : "(null)");
        return -1;
    }
    if ((ev->has_amount && !isfinite(ev->amount)) ||
        (ev->has_geo && (!isfinite(ev->latitude) || !isfinite(ev->longitude)))) {
        errbuf_printf(err, errlen, "event %.200s: amount, latitude or longitude is not finite",
                      ev->event_id);
        return -1;
    }
    if (is_fraud < -1 || is_fraud > 1) {
        errbuf_printf(err, errlen, "event %.200s: is_fraud %d is not 0, 1 or -1", ev->event_id,
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

static void ef_writer_free(event_file_writer_t *w)
{
    if (!w)
        return;
    ef_avro_writer_release(w);
    if (w->f)
        fclose(w->f); /* only on a path that already failed: its result adds nothing */
    json_buf_free(&w->rec);
    free(w->path);
    free(w);
}

event_file_writer_t *event_file_writer_new(const char *path, event_file_format_t fmt, char *err,
                                           size_t errlen)
{
    event_file_writer_t *w = calloc(1, sizeof *w);

    if (!w || !(w->path = strdup(path))) {
        errbuf_printf(err, errlen, "out of memory creating a writer for %.900s", path);
        goto fail;
    }
    w->fmt = fmt;
    w->f = fopen(path, "wb");
    if (!w->f) {
        errbuf_printf(err, errlen, "cannot create %.900s: %s", path, strerror(errno));
        goto fail;
    }
    switch (fmt) {
    case EVENT_FILE_CSV:
        if (ef_csv_write_header(w, err, errlen) < 0)
            goto fail;
        break;
    case EVENT_FILE_JSONL:
        break;
    case EVENT_FILE_AVRO:
        if (ef_avro_writer_open(w, err, errlen) < 0)
            goto fail;
        break;
    default:
        errbuf_printf(err, errlen, "unknown event file format %d", (int)fmt);
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
        errbuf_printf(err, errlen, "%.900s: not written after an earlier error", w->path);
        return -1;
    }
    if (ef_check_event(ev, is_fraud, err, errlen) < 0)
        return -1;
    if (w->fmt == EVENT_FILE_AVRO)
        return ef_avro_write(w, ev, is_fraud, err, errlen);
    json_buf_reset(&w->rec);
    if ((w->fmt == EVENT_FILE_CSV ? ef_csv_format(w, ev, is_fraud)
                                  : ef_jsonl_format(w, ev, is_fraud)) < 0) {
        errbuf_printf(err, errlen, "out of memory formatting event %.100s", ev->event_id);
        return -1;
    }
    if (fwrite(w->rec.p, 1, w->rec.len, w->f) != w->rec.len) {
        errbuf_printf(err, errlen, "cannot write %.900s: %s", w->path, strerror(errno));
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
    if (w->fmt == EVENT_FILE_AVRO && ef_avro_writer_close(w, err, errlen) < 0)
        rc = -1;
    if (w->failed && rc == 0) {
        errbuf_printf(err, errlen, "%.900s is incomplete: a write failed", w->path);
        rc = -1;
    }
    /* fflush then ferror catch a failure of any earlier buffered write; fclose one of its own. */
    errno = 0;
    if (fflush(w->f) != 0 || ferror(w->f)) {
        if (rc == 0)
            errbuf_printf(err, errlen, "cannot write %.900s: %s", w->path,
                          errno ? strerror(errno) : "write error");
        rc = -1;
    }
    if (fclose(w->f) != 0 && rc == 0) {
        errbuf_printf(err, errlen, "cannot write %.900s: %s", w->path, strerror(errno));
        rc = -1;
    }
    w->f = NULL;
    ef_writer_free(w);
    return rc;
}

/* ---- Reading. ---- */

event_file_reader_t *event_file_reader_new(const char *path, char *err, size_t errlen)
{
    event_file_reader_t *r = NULL;
    event_file_format_t fmt;

    if (event_file_format_from_name(path, &fmt) < 0) {
        errbuf_printf(
            err, errlen,
            "%.900s: unknown event file format: the name must end in .csv, .jsonl, .ndjson "
            "or .avro",
            path);
        return NULL;
    }
    r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        errbuf_printf(err, errlen, "out of memory opening %.900s", path);
        goto fail;
    }
    r->fmt = fmt;
    FILE *f = fopen(path, "rb");
    if (!f) {
        errbuf_printf(err, errlen, "cannot open %.900s: %s", path, strerror(errno));
        goto fail;
    }
    if (fmt == EVENT_FILE_AVRO) {
        if (ef_avro_reader_open(r, f, err, errlen) < 0)
            goto fail;
        return r;
    }
    r->f = f;
    if (fmt == EVENT_FILE_CSV && ef_csv_read_header(r, err, errlen) < 0)
        goto fail;
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
        errbuf_printf(err, errlen, "%.900s: not read further after an earlier error", r->path);
        return -1;
    }
    switch (r->fmt) {
    case EVENT_FILE_CSV:
        rc = ef_csv_read(r, ev, is_fraud, err, errlen);
        break;
    case EVENT_FILE_JSONL:
        rc = ef_jsonl_read(r, ev, is_fraud, err, errlen);
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
    ef_avro_reader_release(r); /* closes the FILE of an Avro file */
    if (r->f)
        fclose(r->f); /* read-only: nothing to lose */
    ef_jsonl_release(r);
    free(r->line);
    free(r->rec);
    free(r->path);
    free(r);
}
