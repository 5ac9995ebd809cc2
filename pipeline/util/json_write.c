/* The JSON writer (see json.h): string literals, numbers that read back exactly, and the growable
 * buffer every place that writes JSON builds its text in (model file headers, JSON Lines event
 * files, training records). What it writes, json.c parses back to the same values. */
#include "json.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends c when it fits before the NUL, and counts it either way, as snprintf does. */
static void escape_put(char *out, size_t cap, size_t *n, char c)
{
    if (*n + 1 < cap)
        out[*n] = c;
    (*n)++;
}

size_t json_escape(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    escape_put(out, cap, &n, '"');
    for (const unsigned char *c = (const unsigned char *)(s ? s : ""); *c; c++) {
        char short_form = *c == '"'    ? '"'
                          : *c == '\\' ? '\\'
                          : *c == '\n' ? 'n'
                          : *c == '\r' ? 'r'
                          : *c == '\t' ? 't'
                                       : 0;
        if (short_form) {
            escape_put(out, cap, &n, '\\');
            escape_put(out, cap, &n, short_form);
        } else if (*c < 0x20) {
            escape_put(out, cap, &n, '\\');
            escape_put(out, cap, &n, 'u');
            escape_put(out, cap, &n, '0');
            escape_put(out, cap, &n, '0');
            escape_put(out, cap, &n, hex[*c >> 4]);
            escape_put(out, cap, &n, hex[*c & 15]);
        } else {
            escape_put(out, cap, &n, (char)*c);
        }
    }
    escape_put(out, cap, &n, '"');
    if (cap > 0)
        out[n < cap ? n : cap - 1] = '\0';
    return n;
}

const char *json_double_text(double v, char buf[JSON_DOUBLE_MAX])
{
    const char *point = localeconv()->decimal_point;
    if (!isfinite(v)) {
        memcpy(buf, "null", 5);
        return buf;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, JSON_DOUBLE_MAX, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    /* %g and strtod follow LC_NUMERIC; JSON's point is '.' whatever a process set. */
    if (point && point[0] && point[0] != '.' && point[1] == '\0') {
        char *at = strchr(buf, point[0]);
        if (at)
            *at = '.';
    }
    return buf;
}

/* Room for n more bytes and the NUL; 0, or -1 (failed set) when out of memory. */
static int buf_reserve(json_buf_t *b, size_t n)
{
    size_t cap;
    char *p;
    if (b->failed)
        return -1;
    if (b->len + n + 1 <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + n + 1) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void json_buf_raw(json_buf_t *b, const char *s, size_t n)
{
    if (buf_reserve(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void json_buf_puts(json_buf_t *b, const char *s)
{
    json_buf_raw(b, s, strlen(s));
}

void json_buf_printf(json_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (buf_reserve(b, (size_t)n) < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void json_buf_string(json_buf_t *b, const char *s)
{
    size_t n = json_escape(s, NULL, 0);
    if (buf_reserve(b, n) < 0)
        return;
    json_escape(s, b->p + b->len, n + 1);
    b->len += n;
}

void json_buf_reset(json_buf_t *b)
{
    b->len = 0;
    b->failed = 0;
    if (b->p)
        b->p[0] = '\0';
}

void json_buf_free(json_buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

char *json_string_array(const char *const *v, size_t n)
{
    json_buf_t b = {0};
    json_buf_puts(&b, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            json_buf_puts(&b, ",");
        json_buf_string(&b, v[i]);
    }
    json_buf_puts(&b, "]");
    if (b.failed) {
        json_buf_free(&b);
        return NULL;
    }
    return b.p;
}
