/* What the text formats (CSV, JSON Lines) share. They are written a record at a time into a
 * memory buffer (ef_put), then handed to stdio in one fwrite, so one check covers a record, and
 * read a physical line at a time (ef_getline). Both then go through one conversion (ef_fill)
 * from text to the event, so they accept and refuse the same values. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errbuf.h"
#include "event_file_internal.h"

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

/* A NUMBER or TEXT value as a finite double: JSON's as parsed, else converted here. */
static int ef_value_double(const ef_value_t *x, double *out)
{
    if (x->json) {
        *out = x->json->number; /* the parser refuses what is not finite */
        return 0;
    }
    return ef_parse_double(x->s, out);
}

/* A NUMBER or TEXT value as an int64: JSON's when it was written as one, else converted here. */
static int ef_value_i64(const ef_value_t *x, int64_t *out)
{
    if (x->json) {
        *out = x->json->integer;
        return x->json->is_integer ? 0 : -1;
    }
    return ef_parse_i64(x->s, out);
}

int ef_put(event_file_writer_t *w, const char *s, size_t n)
{
    json_buf_raw(&w->rec, s, n);
    return w->rec.failed ? -1 : 0;
}

int ef_puts(event_file_writer_t *w, const char *s)
{
    return ef_put(w, s, strlen(s));
}

/* Field k of ev as text into buf: 0 done, 1 null. Strings come back in *str instead. */
int ef_field_text(const ingest_event_t *ev, int is_fraud, int k, int json, char *buf, size_t len,
                  const char **str)
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
        char text[JSON_DOUBLE_MAX]; /* the shortest text that reads back exactly */
        snprintf(buf, len, "%s", json_double_text(v, text));
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

/* Reads one physical line into r->line; its length, 0 at end of file, -1 error (err set). */
long ef_getline(event_file_reader_t *r, char *err, size_t errlen)
{
    errno = 0;
    ssize_t n = getline(&r->line, &r->line_cap, r->f);
    if (n < 0) {
        if (ferror(r->f) || errno == ENOMEM) {
            errbuf_printf(err, errlen, "cannot read %.900s: %s", r->path,
                          errno ? strerror(errno) : "read error");
            return -1;
        }
        return 0;
    }
    r->line_no++;
    if (memchr(r->line, '\0', (size_t)n)) {
        errbuf_printf(err, errlen, "%.900s:%" PRIu64 ": a NUL byte", r->path, r->line_no);
        return -1;
    }
    if ((size_t)n > EF_RECORD_MAX) {
        errbuf_printf(err, errlen, "%.900s:%" PRIu64 ": line longer than %u bytes", r->path,
                      r->line_no, EF_RECORD_MAX);
        return -1;
    }
    return (long)n;
}

size_t ef_strip_eol(char *s, size_t n)
{
    if (n > 0 && s[n - 1] == '\n')
        n--;
    if (n > 0 && s[n - 1] == '\r')
        n--;
    s[n] = '\0';
    return n;
}

/* Converts the text values of one record into ev and *is_fraud. loc: "FILE:LINE". */
int ef_fill(const char *loc, const ef_value_t *v, ingest_event_t *ev, int *is_fraud, char *err,
            size_t errlen)
{
    char shown[48];

    memset(ev, 0, sizeof *ev);
    *is_fraud = -1;
    for (int k = 0; k < EF_NFIELDS; k++) {
        const ef_value_t *x = &v[k];
        const char *name = ef_fields[k].name;
        if (x->kind == EF_V_NULL) {
            if (ef_fields[k].required) {
                errbuf_printf(err, errlen, "%s: missing required field %s", loc, name);
                return -1;
            }
            continue;
        }
        switch (ef_fields[k].type) {
        case EF_T_STRING:
            if (x->kind != EF_V_TEXT) {
                errbuf_printf(err, errlen, "%s: %s is not a string", loc, name);
                return -1;
            }
            if (ef_fields[k].required && x->s[0] == '\0') {
                errbuf_printf(err, errlen, "%s: %s is empty", loc, name);
                return -1;
            }
            ef_event_set_string(ev, k, x->s);
            break;
        case EF_T_ENUM:
            if (x->kind != EF_V_TEXT || !(ev->event_type = ef_event_type_symbol(x->s))) {
                errbuf_printf(err, errlen,
                              "%s: event_type '%s' is not one of TRANSACTION, LOGIN, LOGIN_FAILED, "
                              "CLICK, PASSWORD_CHANGE",
                              loc, x->s ? ef_show(x->s, shown, sizeof shown) : "(not a string)");
                return -1;
            }
            break;
        case EF_T_DOUBLE: {
            double d;
            if (x->kind == EF_V_TRUE || x->kind == EF_V_FALSE || ef_value_double(x, &d) < 0) {
                errbuf_printf(err, errlen, "%s: %s '%s' is not a finite number", loc, name,
                              x->s ? ef_show(x->s, shown, sizeof shown) : "true/false");
                return -1;
            }
            ef_event_set_double(ev, k, d);
            break;
        }
        case EF_T_TIME:
            if (x->kind == EF_V_TRUE || x->kind == EF_V_FALSE ||
                ef_value_i64(x, &ev->event_time_ms) < 0) {
                errbuf_printf(err, errlen,
                              "%s: event_time '%s' is not an integer (epoch milliseconds)", loc,
                              x->s ? ef_show(x->s, shown, sizeof shown) : "true/false");
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
                errbuf_printf(err, errlen, "%s: is_fraud '%s' is not 0, 1, true, false or empty",
                              loc, ef_show(x->s, shown, sizeof shown));
                return -1;
            }
            break;
        }
    }
    if ((v[EF_LATITUDE].kind == EF_V_NULL) != (v[EF_LONGITUDE].kind == EF_V_NULL)) {
        errbuf_printf(err, errlen, "%s: latitude and longitude must both be present or both null",
                      loc);
        return -1;
    }
    ev->has_geo = v[EF_LATITUDE].kind != EF_V_NULL;
    return 0;
}
