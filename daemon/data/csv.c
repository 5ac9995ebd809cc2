/* RFC 4180 records and fields (see csv.h). */
#include "csv.h"

#include <stdio.h>

int csv_record(const char *p, const char *end, size_t *len, const char **next, size_t *breaks)
{
    const char *start = p;
    /* Only a quote that opens a field opens a quoted field ("" inside one is a quote); one
     * elsewhere is left for csv_split to refuse. */
    enum { FIELD_START, UNQUOTED, QUOTED, QUOTE_SEEN } state = FIELD_START;

    *breaks = 0;
    for (; p < end; p++) {
        char c = *p;
        if (c == '\n' && state != QUOTED) {
            size_t n = (size_t)(p - start);
            if (n > 0 && p[-1] == '\r')
                n--;
            *len = n;
            *next = p + 1;
            (*breaks)++;
            return 0;
        }
        switch (state) {
        case FIELD_START:
            state = c == '"' ? QUOTED : c == ',' ? FIELD_START : UNQUOTED;
            break;
        case UNQUOTED:
            state = c == ',' ? FIELD_START : UNQUOTED;
            break;
        case QUOTED:
            state = c == '"' ? QUOTE_SEEN : QUOTED;
            *breaks += c == '\n';
            break;
        case QUOTE_SEEN: /* closed, unless this is the second quote of "" */
            state = c == '"' ? QUOTED : c == ',' ? FIELD_START : UNQUOTED;
            break;
        }
    }
    if (state == QUOTED)
        return -1;
    *len = (size_t)(end - start);
    if (*len > 0 && end[-1] == '\r')
        (*len)--;
    *next = end;
    return 0;
}

int csv_split(char *rec, size_t len, csv_field_t *out, int max, char *what, size_t whatlen)
{
    char *p = rec, *end = rec + len;
    int n = 0;

    for (;;) {
        char *start = p, *stop;
        int quoted = p < end && *p == '"';
        if (n == max) {
            snprintf(what, whatlen, "more than %d fields", max);
            return -1;
        }
        if (quoted) {
            char *o = ++p;
            start = o;
            for (;;) {
                if (p >= end) {
                    snprintf(what, whatlen, "field %d: a quoted field is not closed", n + 1);
                    return -1;
                }
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        *o++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                *o++ = *p++;
            }
            stop = o;
            if (p < end && *p != ',') {
                snprintf(what, whatlen, "field %d: text after a closing quote", n + 1);
                return -1;
            }
        } else {
            while (p < end && *p != ',') {
                if (*p == '"') {
                    snprintf(what, whatlen, "field %d: a quote inside an unquoted field", n + 1);
                    return -1;
                }
                p++;
            }
            stop = p;
        }
        int more = p < end; /* *p is the comma */
        *stop = '\0';
        out[n].s = start;
        out[n].len = (size_t)(stop - start);
        out[n].quoted = quoted;
        n++;
        if (!more)
            return n;
        p++;
    }
}
