/* CSV event files (RFC 4180; the rules: event_file.h). Writing quotes a field only when it must.
 * Reading goes a physical line at a time; a record continues over further lines while a quoted
 * field is open (csv_record), and is then split and unescaped in place (csv_split). The header
 * row says which field each column holds. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "errbuf.h"
#include "event_file_internal.h"

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

int ef_csv_write_header(event_file_writer_t *w, char *err, size_t errlen)
{
    for (int k = 0; k < EF_NFIELDS; k++)
        if ((k > 0 && ef_put(w, ",", 1) < 0) || ef_puts(w, ef_fields[k].name) < 0)
            goto oom;
    if (ef_put(w, "\n", 1) < 0)
        goto oom;
    if (fwrite(w->rec.p, 1, w->rec.len, w->f) != w->rec.len) {
        errbuf_printf(err, errlen, "cannot write %.900s: %s", w->path, strerror(errno));
        return -1;
    }
    return 0;

oom:
    errbuf_printf(err, errlen, "out of memory writing %.900s", w->path);
    return -1;
}

int ef_csv_format(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud)
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

/* Reads the next record (over several lines while a quoted field is open) into r->rec, without
 * its line end; skips blank lines. 1, 0 at end of file, -1 error. *first_line: where it began. */
static int ef_csv_next(event_file_reader_t *r, uint64_t *first_line, char *err, size_t errlen)
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
                errbuf_printf(err, errlen, "%.900s:%" PRIu64 ": a quoted field is not closed",
                              r->path, *first_line);
                return -1;
            }
            if (r->rec_len + (size_t)n + 1 > EF_RECORD_MAX) {
                errbuf_printf(err, errlen, "%.900s:%" PRIu64 ": record longer than %u bytes",
                              r->path, *first_line, EF_RECORD_MAX);
                return -1;
            }
            if (r->rec_len + (size_t)n + 1 > r->rec_cap) {
                size_t cap = r->rec_cap ? r->rec_cap : 4096;
                while (cap < r->rec_len + (size_t)n + 1)
                    cap *= 2;
                char *b = realloc(r->rec, cap);
                if (!b) {
                    errbuf_printf(err, errlen, "out of memory reading %.900s", r->path);
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
        errbuf_printf(err, errlen, "%.900s:%" PRIu64 ": %s", r->path, line, what);
    return n;
}

int ef_csv_read_header(event_file_reader_t *r, char *err, size_t errlen)
{
    csv_field_t cols[EF_MAX_COLUMNS];
    uint64_t line;
    int seen[EF_NFIELDS] = {0};
    int rc = ef_csv_next(r, &line, err, errlen);

    if (rc == 0)
        errbuf_printf(err, errlen, "%.900s: empty file: no header row", r->path);
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
            errbuf_printf(err, errlen,
                          "%.900s:%" PRIu64
                          ": unknown column '%s' (the columns are BehaviorEvent's "
                          "fields and is_fraud)",
                          r->path, line, ef_show(cols[c].s, shown, sizeof shown));
            return -1;
        }
        if (seen[k]++) {
            errbuf_printf(err, errlen, "%.900s:%" PRIu64 ": column %s appears twice", r->path, line,
                          ef_fields[k].name);
            return -1;
        }
        r->col_field[c] = k;
    }
    r->n_cols = n;
    for (int k = 0; k < EF_NFIELDS; k++)
        if (ef_fields[k].required && !seen[k]) {
            errbuf_printf(err, errlen, "%.900s:%" PRIu64 ": missing required column %s", r->path,
                          line, ef_fields[k].name);
            return -1;
        }
    return 0;
}

int ef_csv_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err, size_t errlen)
{
    csv_field_t cols[EF_MAX_COLUMNS];
    ef_value_t v[EF_NFIELDS];
    char loc[1024];
    uint64_t line;
    int rc = ef_csv_next(r, &line, err, errlen);
    if (rc <= 0)
        return rc;
    snprintf(loc, sizeof loc, "%.900s:%" PRIu64, r->path, line);
    int n = ef_csv_split(r, line, cols, err, errlen);
    if (n < 0)
        return -1;
    if (n != r->n_cols) {
        errbuf_printf(err, errlen, "%s: %d fields, the header has %d", loc, n, r->n_cols);
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
