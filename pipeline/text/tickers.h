/* Ticker extraction for news articles: the article's own tickers field plus cashtags ($AAPL,
 * $BRK.B) found in the headline and body, upper-cased and de-duplicated. docs/text.md has the
 * exact rules. */
#ifndef VIGIL_TICKERS_H
#define VIGIL_TICKERS_H

#include <stddef.h>

/* Room for one symbol and its NUL; longer field entries are skipped. */
#define TICKERS_SYMBOL_SIZE 16

typedef struct {
    char sym[TICKERS_SYMBOL_SIZE];
} tickers_symbol_t;

/* Collects symbols in this order: field entries (as given, surrounding ASCII whitespace trimmed,
 * upper-cased; empty or too long ones skipped), then cashtags of headline, then of body, in text
 * order, each symbol once. headline/body may be NULL when their length is 0; field may be NULL
 * when n_field is 0. Stores at most max_out into out and sets *n_out to the count stored; later
 * symbols are dropped once out is full. Returns 0, or -1 with err filled on bad arguments. */
int tickers_extract(const char *const *field, size_t n_field, const char *headline,
                    size_t headline_len, const char *body, size_t body_len, tickers_symbol_t *out,
                    size_t max_out, size_t *n_out, char *err, size_t errlen);

#endif
