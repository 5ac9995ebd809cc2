/* JSON Lines event files: one object per line, keys the field names (the rules: event_file.h).
 * Written and read with pipeline/util/json.h, strict RFC 8259. A line's object is walked here,
 * member by member, so that an error can name the field it is about, and json_parse_next reads
 * each key and value; the values then go through ef_fill like CSV's, after a check that strings
 * and numbers are where they belong. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "event_file_internal.h"

/* What a number token may be made of: read as far as these go, so that "1.2.3" is refused as a
 * whole rather than as 1.2 followed by garbage. */
#define EF_NUMBER_CHARS "0123456789+-.eE"

int ef_jsonl_format(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud)
{
    for (int k = 0; k < EF_NFIELDS; k++) {
        char num[64];
        const char *str;
        int null = ef_field_text(ev, is_fraud, k, 1, num, sizeof num, &str);
        json_buf_puts(&w->rec, k == 0 ? "{" : ",");
        json_buf_string(&w->rec, ef_fields[k].name);
        json_buf_puts(&w->rec, ":");
        if (null)
            json_buf_puts(&w->rec, "null");
        else if (str)
            json_buf_string(&w->rec, str);
        else
            json_buf_puts(&w->rec, num);
    }
    json_buf_puts(&w->rec, "}\n");
    return w->rec.failed ? -1 : 0;
}

void ef_jsonl_release(event_file_reader_t *r)
{
    for (int k = 0; k < EF_NFIELDS; k++) {
        json_clear(&r->owned[k]);
    }
}

/* The offset of the first byte at or after pos in line (n bytes) that is not JSON whitespace. */
static size_t ef_jsonl_space(const char *line, size_t n, size_t pos)
{
    while (pos < n &&
           (line[pos] == ' ' || line[pos] == '\t' || line[pos] == '\n' || line[pos] == '\r'))
        pos++;
    return pos;
}

/* Reads lines until one that is not blank: its length in *n (r->line, NUL-terminated there) and
 * its first other byte in *pos. 1, 0 at end of file, -1 error. */
static int ef_jsonl_next(event_file_reader_t *r, size_t *n, size_t *pos, char *err, size_t errlen)
{
    for (;;) {
        long got = ef_getline(r, err, errlen);
        if (got <= 0)
            return (int)got;
        *n = ef_strip_eol(r->line, (size_t)got);
        *pos = ef_jsonl_space(r->line, *n, 0);
        if (*pos < *n)
            return 1; /* else a blank line */
    }
}

/* A number token of field k at line[*pos] into r->num[k] as written, for ef_fill to convert like
 * CSV's text; it must be one JSON number. 0, or -1 with err. */
static int ef_jsonl_number(event_file_reader_t *r, const char *line, size_t *pos, int k,
                           ef_value_t *x, const char *loc, char *err, size_t errlen)
{
    size_t start = *pos, len = strspn(line + start, EF_NUMBER_CHARS), end = start;
    char shown[48];

    if (len >= sizeof r->num[k]) {
        errbuf_printf(err, errlen, "%s: %s: a number of %zu characters (at most %zu)", loc,
                      ef_fields[k].name, len, sizeof r->num[k] - 1);
        return -1;
    }
    memcpy(r->num[k], line + start, len);
    r->num[k][len] = '\0';
    /* Parsing a number allocates nothing (it has under 64 bytes), so a failure is the syntax. */
    if (json_parse_next(line, start + len, &end, &r->owned[k], NULL, 0) < 0 ||
        r->owned[k].type != JSON_NUMBER || end != start + len) {
        errbuf_printf(err, errlen, "%s: %s '%s' is not a finite number in JSON syntax", loc,
                      ef_fields[k].name, ef_show(r->num[k], shown, sizeof shown));
        return -1;
    }
    *pos = end;
    x->kind = EF_V_NUMBER;
    x->s = r->num[k];
    x->json = &r->owned[k];
    return 0;
}

/* The value of field k at line[*pos] (n bytes) into *x; a string is kept in r until the next
 * record. 0, or -1 with err. */
static int ef_jsonl_value(event_file_reader_t *r, const char *line, size_t n, size_t *pos, int k,
                          ef_value_t *x, const char *loc, char *err, size_t errlen)
{
    char jerr[160];
    json_value_t *v = &r->owned[k];

    if (*pos < n && line[*pos] != '\0' && strchr(EF_NUMBER_CHARS, line[*pos]))
        return ef_jsonl_number(r, line, pos, k, x, loc, err, errlen);
    if (json_parse_next(line, n, pos, v, jerr, sizeof jerr) < 0) {
        errbuf_printf(err, errlen, "%s: bad JSON in %s: %s", loc, ef_fields[k].name, jerr);
        return -1;
    }
    switch (v->type) {
    case JSON_STRING:
        x->kind = EF_V_TEXT;
        x->s = v->string;
        return 0;
    case JSON_NULL:
        x->kind = EF_V_NULL;
        return 0;
    case JSON_BOOL:
        x->kind = v->boolean ? EF_V_TRUE : EF_V_FALSE;
        return 0;
    default:
        errbuf_printf(err, errlen, "%s: %s: not a string, number, true, false or null", loc,
                      ef_fields[k].name);
        return -1;
    }
}

/* One member, "key": value, at line[*pos] into v; *k is its field, seen counts the fields so
 * far. 0, or -1 with err. */
static int ef_jsonl_member(event_file_reader_t *r, const char *line, size_t n, size_t *pos,
                           ef_value_t *v, int *seen, int *k, const char *loc, char *err,
                           size_t errlen)
{
    char jerr[160], shown[48];
    json_value_t key;

    *pos = ef_jsonl_space(line, n, *pos);
    if (*pos >= n || line[*pos] != '"') {
        errbuf_printf(err, errlen, "%s: bad JSON: expected a key", loc);
        return -1;
    }
    if (json_parse_next(line, n, pos, &key, jerr, sizeof jerr) < 0) {
        errbuf_printf(err, errlen, "%s: bad JSON in a key: %s", loc, jerr);
        return -1;
    }
    *k = ef_field_by_name(key.string);
    if (*k < 0)
        errbuf_printf(err, errlen,
                      "%s: unknown key '%s' (the keys are BehaviorEvent's fields and is_fraud)",
                      loc, ef_show(key.string, shown, sizeof shown));
    json_clear(&key);
    if (*k < 0)
        return -1;
    if (seen[*k]++) {
        errbuf_printf(err, errlen, "%s: key %s appears twice", loc, ef_fields[*k].name);
        return -1;
    }
    *pos = ef_jsonl_space(line, n, *pos);
    if (*pos >= n || line[*pos] != ':') {
        errbuf_printf(err, errlen, "%s: bad JSON: expected ':' after %s", loc, ef_fields[*k].name);
        return -1;
    }
    *pos = ef_jsonl_space(line, n, *pos + 1);
    return ef_jsonl_value(r, line, n, pos, *k, &v[*k], loc, err, errlen);
}

/* The object at line[*pos] (its first byte not a space) into v, by field. 0, or -1 with err. */
static int ef_jsonl_object(event_file_reader_t *r, const char *line, size_t n, size_t *pos,
                           ef_value_t *v, const char *loc, char *err, size_t errlen)
{
    int seen[EF_NFIELDS] = {0};

    if (line[(*pos)++] != '{') {
        errbuf_printf(err, errlen, "%s: not a JSON object", loc);
        return -1;
    }
    *pos = ef_jsonl_space(line, n, *pos);
    if (*pos < n && line[*pos] == '}') {
        (*pos)++;
        return 0;
    }
    for (;;) {
        int k;
        if (ef_jsonl_member(r, line, n, pos, v, seen, &k, loc, err, errlen) < 0)
            return -1;
        *pos = ef_jsonl_space(line, n, *pos);
        if (*pos < n && line[*pos] == ',') {
            (*pos)++;
            continue;
        }
        if (*pos < n && line[*pos] == '}') {
            (*pos)++;
            return 0;
        }
        errbuf_printf(err, errlen, "%s: bad JSON after %s: expected ',' or '}'", loc,
                      ef_fields[k].name);
        return -1;
    }
}

int ef_jsonl_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                  size_t errlen)
{
    ef_value_t v[EF_NFIELDS];
    char loc[1024];
    size_t n = 0, pos = 0;

    ef_jsonl_release(r);
    int rc = ef_jsonl_next(r, &n, &pos, err, errlen);
    if (rc <= 0)
        return rc;
    snprintf(loc, sizeof loc, "%.900s:%" PRIu64, r->path, r->line_no);
    memset(v, 0, sizeof v);
    if (ef_jsonl_object(r, r->line, n, &pos, v, loc, err, errlen) < 0)
        return -1;
    if (ef_jsonl_space(r->line, n, pos) != n) {
        errbuf_printf(err, errlen, "%s: text after the object (one object per line)", loc);
        return -1;
    }
    /* A string where a number belongs, or a number where a string does, is refused by ef_fill. */
    for (int k = 0; k < EF_NFIELDS; k++)
        if (v[k].kind == EF_V_TEXT &&
            (ef_fields[k].type == EF_T_DOUBLE || ef_fields[k].type == EF_T_TIME ||
             ef_fields[k].type == EF_T_LABEL)) {
            errbuf_printf(err, errlen, "%s: %s is a string, not a %s", loc, ef_fields[k].name,
                          ef_fields[k].type == EF_T_LABEL ? "boolean" : "number");
            return -1;
        }
    return ef_fill(loc, v, ev, is_fraud, err, errlen) < 0 ? -1 : 1;
}
