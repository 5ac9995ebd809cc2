/* RFC 4180 CSV records, shared by the readers of CSV files (daemon/data/event_csv.c,
 * daemon/cli/train_news.c): where a record ends (a quoted field may hold line breaks) and its
 * fields, unescaped in place. No I/O here: each reader brings its records, and names the file and
 * line in its messages. */
#ifndef VIGIL_CSV_H
#define VIGIL_CSV_H

#include <stddef.h>

typedef struct csv_field {
    char *s;    /* NUL-terminated, unescaped */
    size_t len; /* bytes before the NUL */
    int quoted; /* "" (an empty string) is quoted; an empty unquoted field is not */
} csv_field_t;

/* The record that starts at p (text up to end): *len is its length without the line end, *next
 * where the next record starts (past "\n" or "\r\n", or end), *breaks how many line breaks it
 * spans, its own included. Returns 0, or -1 when a quoted field is still open at end (more text
 * may close it). */
int csv_record(const char *p, const char *end, size_t *len, const char **next, size_t *breaks);

/* Splits the record rec[0..len) (no line end) into at most max fields, unescaping them in place
 * and NUL-terminating each (rec[len] is overwritten). Returns the count, or -1 with what (a
 * quote inside an unquoted field, text after a closing quote, more than max fields, a quoted
 * field not closed), which the caller prefixes with file and line. */
int csv_split(char *rec, size_t len, csv_field_t *out, int max, char *what, size_t whatlen);

#endif
