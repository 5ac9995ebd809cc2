/* Tests ticker extraction: field first, cashtag boundaries, suffixes, de-duplication, limits. */
#include <string.h>

#include "test.h"
#include "tickers.h"

static size_t run(const char *const *field, size_t n_field, const char *head, const char *body,
                  tickers_symbol_t *out, size_t max)
{
    char err[128];
    size_t n = 99;
    int rc = tickers_extract(field, n_field, head, head ? strlen(head) : 0, body,
                             body ? strlen(body) : 0, out, max, &n, err, sizeof(err));
    CHECK(rc == 0);
    return n;
}

int main(void)
{
    tickers_symbol_t out[16];
    size_t n;

    const char *field[] = {" msft ", "", "BRK.B", "AAPL"};
    n = run(field, 4, "$AAPL and $tsla beat; $NVDA.", "More $TSLA, $GOOGL and $BRK.B", out, 16);
    CHECK(n == 6);
    CHECK_STR(out[0].sym, "MSFT");
    CHECK_STR(out[1].sym, "BRK.B");
    CHECK_STR(out[2].sym, "AAPL");
    CHECK_STR(out[3].sym, "TSLA");
    CHECK_STR(out[4].sym, "NVDA");
    CHECK_STR(out[5].sym, "GOOGL");

    /* Not tickers: amounts, too long, glued to words or digits, bad suffixes. */
    n = run(NULL, 0, "$100 $5bn US$AAPL x$MSFT $GOOGLE $AAPL2 $ABC.DEF $ $. $$", NULL, out, 16);
    CHECK(n == 0);

    /* Suffix forms and punctuation after. */
    n = run(NULL, 0, "($BRK.B) $bf.a, $RDS.AB! $AAPL. $X", NULL, out, 16);
    CHECK(n == 5);
    CHECK_STR(out[0].sym, "BRK.B");
    CHECK_STR(out[1].sym, "BF.A");
    CHECK_STR(out[2].sym, "RDS.AB");
    CHECK_STR(out[3].sym, "AAPL");
    CHECK_STR(out[4].sym, "X");

    /* "$ABC.12": the dot is punctuation, ABC is the ticker; non-ASCII after is a boundary. */
    n = run(NULL, 0, "$ABC.12 $DEF\xf0\x9f\x9a\x80", NULL, out, 16);
    CHECK(n == 2);
    CHECK_STR(out[0].sym, "ABC");
    CHECK_STR(out[1].sym, "DEF");

    /* Output limit: the first max_out distinct symbols are kept. */
    n = run(NULL, 0, "$A $B $C $A $D", NULL, out, 2);
    CHECK(n == 2);
    CHECK_STR(out[0].sym, "A");
    CHECK_STR(out[1].sym, "B");

    /* Too-long field entries are skipped; a NULL text with length 0 is fine. */
    const char *longf[] = {"ABCDEFGHIJKLMNOPQRSTUVWXYZ", "ok"};
    n = run(longf, 2, NULL, NULL, out, 16);
    CHECK(n == 1);
    CHECK_STR(out[0].sym, "OK");

    /* Bad arguments are refused. */
    char err[128];
    size_t m;
    CHECK(tickers_extract(NULL, 0, NULL, 5, NULL, 0, out, 16, &m, err, sizeof(err)) == -1);
    return TEST_DONE();
}
