/* Minimal bounded JSON reader (see ingest_json.h). */
#include "ingest_json.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void ingest_json_space(ingest_json_t *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int json_hex4(const char *p, const char *end, uint32_t *out)
{
    uint32_t v = 0;
    if (end - p < 4)
        return -1;
    for (int k = 0; k < 4; k++) {
        char c = p[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v << 4 | (uint32_t)d;
    }
    *out = v;
    return 0;
}

static size_t json_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

int ingest_json_string(ingest_json_t *j, char **out, size_t *len)
{
    const char *start, *close;
    char *text;
    size_t n = 0;

    if (j->p >= j->end || *j->p != '"')
        return -1;
    start = ++j->p;
    while (j->p < j->end && *j->p != '"') /* an escape is skipped whole, so \" does not end it */
        j->p += (*j->p == '\\' && j->end - j->p >= 2) ? 2 : 1;
    if (j->p >= j->end)
        return -1;
    close = j->p++;
    if (!out)
        return 0;
    /* Decoding never lengthens: an escape is at least as long as the UTF-8 it stands for. */
    text = malloc((size_t)(close - start) + 1);
    if (!text)
        return -2;
    for (const char *c = start; c < close;) {
        if (*c != '\\') {
            text[n++] = *c++;
            continue;
        }
        char e = c[1];
        c += 2;
        if (e == 'u') {
            uint32_t cp, lo;
            if (json_hex4(c, close, &cp) != 0)
                goto bad;
            c += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                if (close - c < 6 || c[0] != '\\' || c[1] != 'u' ||
                    json_hex4(c + 2, close, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                    goto bad;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                c += 6;
            } else if (cp == 0 || (cp >= 0xdc00 && cp <= 0xdfff)) {
                goto bad;
            }
            n += json_utf8(text + n, cp);
            continue;
        }
        const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
        const char *at = e != '\0' ? strchr(from, e) : NULL;
        if (!at)
            goto bad;
        text[n++] = to[at - from];
    }
    text[n] = '\0';
    *out = text;
    if (len)
        *len = n;
    return 0;
bad:
    free(text);
    return -1;
}

int ingest_json_word(ingest_json_t *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

int ingest_json_skip(ingest_json_t *j, int depth)
{
    ingest_json_space(j);
    if (j->p >= j->end || depth > INGEST_JSON_DEPTH_MAX)
        return -1;
    if (*j->p == '"')
        return ingest_json_string(j, NULL, NULL);
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        j->p++;
        ingest_json_space(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 0;
        }
        for (;;) {
            if (close == '}') {
                ingest_json_space(j);
                if (ingest_json_string(j, NULL, NULL) != 0)
                    return -1;
                ingest_json_space(j);
                if (j->p >= j->end || *j->p++ != ':')
                    return -1;
            }
            if (ingest_json_skip(j, depth + 1) != 0)
                return -1;
            ingest_json_space(j);
            if (j->p >= j->end)
                return -1;
            char c = *j->p++;
            if (c == close)
                return 0;
            if (c != ',')
                return -1;
        }
    }
    /* A number or a literal word: up to the next delimiter. */
    const char *start = j->p;
    while (j->p < j->end && strchr(",}] \t\r\n", *j->p) == NULL)
        j->p++;
    return j->p > start ? 0 : -1;
}

int ingest_json_find(ingest_json_t *j, const char *key)
{
    ingest_json_space(j);
    if (j->p >= j->end || *j->p++ != '{')
        return -1;
    for (;;) {
        char *name = NULL;
        int match;
        ingest_json_space(j);
        if (ingest_json_string(j, &name, NULL) != 0)
            return -1;
        ingest_json_space(j);
        match = strcmp(name, key) == 0;
        free(name);
        if (j->p >= j->end || *j->p++ != ':')
            return -1;
        ingest_json_space(j);
        if (match)
            return 0;
        if (ingest_json_skip(j, 0) != 0)
            return -1;
        ingest_json_space(j);
        if (j->p >= j->end || *j->p++ != ',')
            return -1; /* '}' without the key, or garbage */
    }
}
