/* Ticker extraction: article ticker field first, then cashtags in headline and body. */
#include "tickers.h"

#include <stdio.h>
#include <string.h>

#include "errbuf.h"

#define CASHTAG_MAX_LETTERS 5
#define CASHTAG_MAX_SUFFIX 2

/* Plain ASCII tests: the rules are about ASCII tickers and must not depend on the locale. */
static int is_alpha(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static int is_alnum(unsigned char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9');
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static char upper(unsigned char c)
{
    return (char)((c >= 'a' && c <= 'z') ? c - 'a' + 'A' : c);
}

/* Adds sym (len bytes, already validated) unless present or out is full. */
static void add(const char *sym, size_t len, tickers_symbol_t *out, size_t max_out, size_t *n)
{
    char up[TICKERS_SYMBOL_SIZE];
    for (size_t i = 0; i < len; i++)
        up[i] = upper((unsigned char)sym[i]);
    up[len] = '\0';
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(out[i].sym, up) == 0)
            return;
    }
    if (*n >= max_out)
        return;
    memcpy(out[*n].sym, up, len + 1);
    (*n)++;
}

/* Length of the cashtag body (letters, optional .suffix) after the '$' at t[i], or 0. */
static size_t cashtag_at(const unsigned char *t, size_t len, size_t i)
{
    if (i > 0 && is_alnum(t[i - 1]))
        return 0; /* "US$5", "a$b": part of a word, not a cashtag */
    size_t p = i + 1, letters = 0;
    while (p < len && is_alpha(t[p]) && letters <= CASHTAG_MAX_LETTERS) {
        p++;
        letters++;
    }
    if (letters == 0 || letters > CASHTAG_MAX_LETTERS)
        return 0;
    if (p < len && t[p] == '.' && p + 1 < len && is_alpha(t[p + 1])) {
        size_t q = p + 1, suffix = 0;
        while (q < len && is_alpha(t[q]) && suffix <= CASHTAG_MAX_SUFFIX) {
            q++;
            suffix++;
        }
        /* "$BRK.B" takes the class suffix; "$ABC.DEFG" is not a ticker at all. */
        if (suffix > CASHTAG_MAX_SUFFIX || (q < len && is_alnum(t[q])))
            return 0;
        return q - (i + 1);
    }
    if (p < len && is_alnum(t[p]))
        return 0; /* "$100", "$AAPL2", "$GOOGLE" */
    return p - (i + 1);
}

static void scan(const char *text, size_t len, tickers_symbol_t *out, size_t max_out, size_t *n)
{
    const unsigned char *t = (const unsigned char *)text;
    for (size_t i = 0; i < len; i++) {
        if (t[i] != '$')
            continue;
        size_t tl = cashtag_at(t, len, i);
        if (tl > 0) {
            add(text + i + 1, tl, out, max_out, n);
            i += tl;
        }
    }
}

int tickers_extract(const char *const *field, size_t n_field, const char *headline,
                    size_t headline_len, const char *body, size_t body_len, tickers_symbol_t *out,
                    size_t max_out, size_t *n_out, char *err, size_t errlen)
{
    size_t n = 0;
    if ((n_field && !field) || (headline_len && !headline) || (body_len && !body) ||
        (max_out && !out) || !n_out) {
        errbuf_printf(err, errlen, "tickers: NULL argument with a non-zero length");
        return -1;
    }
    for (size_t k = 0; k < n_field; k++) {
        const char *s = field[k];
        if (!s)
            continue;
        size_t len = strlen(s);
        while (len > 0 && is_space((unsigned char)s[len - 1]))
            len--;
        while (len > 0 && is_space((unsigned char)*s)) {
            s++;
            len--;
        }
        if (len == 0 || len >= TICKERS_SYMBOL_SIZE)
            continue;
        add(s, len, out, max_out, &n);
    }
    scan(headline, headline_len, out, max_out, &n);
    scan(body, body_len, out, max_out, &n);
    *n_out = n;
    return 0;
}
