/* JSON Lines event files: one object per line, keys the field names (the rules: event_file.h).
 * Lines are parsed with ingest/ingest_json.h's scanner; the values go through ef_fill like
 * CSV's, after a check that strings and numbers are where they belong. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_file_internal.h"
#include "ingest_json.h"

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

int ef_jsonl_format(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud)
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

void ef_jsonl_release(event_file_reader_t *r)
{
    for (int k = 0; k < EF_NFIELDS; k++) {
        free(r->owned[k]);
        r->owned[k] = NULL;
    }
}

/* Reads lines until one that is not blank, and points j at it. 1, 0 at end of file, -1 error. */
static int ef_jsonl_next(event_file_reader_t *r, ingest_json_t *j, char *err, size_t errlen)
{
    for (;;) {
        long n = ef_getline(r, err, errlen);
        if (n <= 0)
            return (int)n;
        n = (long)ef_strip_eol(r->line, (size_t)n);
        j->p = r->line;
        j->end = r->line + n;
        ingest_json_space(j);
        if (j->p < j->end)
            return 1; /* else a blank line */
    }
}

/* The value of field k at j->p into *x; its string or number token is kept in r until the next
 * record. 0, or -1 with err. */
static int ef_jsonl_value(event_file_reader_t *r, ingest_json_t *j, int k, ef_value_t *x,
                          const char *loc, char *err, size_t errlen)
{
    if (j->p < j->end && *j->p == '"') {
        int rc = ingest_json_string(j, &r->owned[k], NULL);
        if (rc != 0) {
            snprintf(err, errlen, rc == -2 ? "%s: out of memory" : "%s: bad JSON string for %s",
                     loc, ef_fields[k].name);
            return -1;
        }
        x->kind = EF_V_TEXT;
        x->s = r->owned[k];
    } else if (ingest_json_word(j, "null")) {
        x->kind = EF_V_NULL;
    } else if (ingest_json_word(j, "true")) {
        x->kind = EF_V_TRUE;
    } else if (ingest_json_word(j, "false")) {
        x->kind = EF_V_FALSE;
    } else {
        size_t len = strspn(j->p, "0123456789+-.eE");
        if (len == 0 || len >= sizeof r->num[k]) {
            snprintf(err, errlen, "%s: %s: not a string, number, true, false or null", loc,
                     ef_fields[k].name);
            return -1;
        }
        memcpy(r->num[k], j->p, len);
        r->num[k][len] = '\0';
        j->p += len;
        x->kind = EF_V_NUMBER;
        x->s = r->num[k];
    }
    return 0;
}

/* One member, "key": value, at j->p into v; *k is its field, seen counts the fields so far. 0,
 * or -1 with err. */
static int ef_jsonl_member(event_file_reader_t *r, ingest_json_t *j, ef_value_t *v, int *seen,
                           int *k, const char *loc, char *err, size_t errlen)
{
    char *key = NULL, shown[48];

    ingest_json_space(j);
    int rc = ingest_json_string(j, &key, NULL);
    if (rc != 0) {
        snprintf(err, errlen, rc == -2 ? "%s: out of memory" : "%s: bad JSON: expected a key", loc);
        return -1;
    }
    *k = ef_field_by_name(key);
    if (*k < 0) {
        snprintf(err, errlen,
                 "%s: unknown key '%s' (the keys are BehaviorEvent's fields and is_fraud)", loc,
                 ef_show(key, shown, sizeof shown));
        free(key);
        return -1;
    }
    free(key);
    if (seen[*k]++) {
        snprintf(err, errlen, "%s: key %s appears twice", loc, ef_fields[*k].name);
        return -1;
    }
    ingest_json_space(j);
    if (j->p >= j->end || *j->p++ != ':') {
        snprintf(err, errlen, "%s: bad JSON: expected ':' after %s", loc, ef_fields[*k].name);
        return -1;
    }
    ingest_json_space(j);
    return ef_jsonl_value(r, j, *k, &v[*k], loc, err, errlen);
}

/* The object at j->p (its first byte not a space) into v, by field. 0, or -1 with err. */
static int ef_jsonl_object(event_file_reader_t *r, ingest_json_t *j, ef_value_t *v, const char *loc,
                           char *err, size_t errlen)
{
    int seen[EF_NFIELDS] = {0};

    if (*j->p++ != '{') {
        snprintf(err, errlen, "%s: not a JSON object", loc);
        return -1;
    }
    ingest_json_space(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return 0;
    }
    for (;;) {
        int k;
        if (ef_jsonl_member(r, j, v, seen, &k, loc, err, errlen) < 0)
            return -1;
        ingest_json_space(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return 0;
        }
        snprintf(err, errlen, "%s: bad JSON after %s: expected ',' or '}'", loc, ef_fields[k].name);
        return -1;
    }
}

int ef_jsonl_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                  size_t errlen)
{
    ef_value_t v[EF_NFIELDS];
    char loc[1024];
    ingest_json_t j;

    ef_jsonl_release(r);
    int rc = ef_jsonl_next(r, &j, err, errlen);
    if (rc <= 0)
        return rc;
    snprintf(loc, sizeof loc, "%.900s:%" PRIu64, r->path, r->line_no);
    memset(v, 0, sizeof v);
    if (ef_jsonl_object(r, &j, v, loc, err, errlen) < 0)
        return -1;
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
