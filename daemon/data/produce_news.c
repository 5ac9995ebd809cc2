/* News: articles (about a dozen companies, English headlines and a Chinese one, bodies some of
 * the time; or the known headlines of a --headlines file) and the news labels about them (a
 * sentiment, a topic, or both). Article i and label i come from their own streams of (seed, i). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "produce_internal.h"

typedef struct produce_company {
    const char *name; /* as a headline writes it; some with accents */
    const char *ticker;
} produce_company_t;

static const produce_company_t produce_companies[] = {
    {"Apple", "AAPL"},    {"Microsoft", "MSFT"},       {"Nvidia", "NVDA"},
    {"Siemens", "SIE"},   {"Nestlé", "NESN"},          {"Toyota", "TM"},
    {"Tencent", "TCEHY"}, {"Société Générale", "GLE"}, {"Alibaba", "BABA"},
    {"Shell", "SHEL"},    {"Banco Santander", "SAN"},  {"Zürich Insurance", "ZURN"},
};
#define PRODUCE_N_COMPANIES (sizeof produce_companies / sizeof produce_companies[0])

/* English headlines take the company and a number; the Chinese one is there because the news
 * path must carry any UTF-8 text. */
static const char *const produce_headlines_en[] = {
    "%s shares rise %u%% after quarterly earnings beat estimates",
    "%s cuts full-year outlook as costs climb; stock falls %u%%",
    "%s announces $%u million share buyback",
    "%s to acquire rival in all-stock deal worth %u billion",
    "Regulators open probe into %s accounting, %u executives questioned",
    "%s names new chief executive, keeps dividend at %u cents",
};
#define PRODUCE_N_HEADLINES (sizeof produce_headlines_en / sizeof produce_headlines_en[0])

static const char *const produce_sources[] = {"newswire", "markets-desk", "company-press",
                                              "analyst-blog"};

/* The topic names of the news data set (../shared/data/topics), so labels look like real ones. */
static const char *const produce_topics[] = {
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
};
#define PRODUCE_N_TOPICS (sizeof produce_topics / sizeof produce_topics[0])

int produce_gen_load_headlines(produce_gen_t *g, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[256];
    if (!f) {
        errbuf_printf(err, errlen, "--headlines %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        if (line[len] == '\0' && !feof(f)) {
            errbuf_printf(err, errlen, "--headlines %s: line %zu is longer than %zu bytes", path,
                          g->n_headlines + 1, sizeof line - 2);
            fclose(f);
            return -1;
        }
        line[len] = '\0';
        if (len == 0)
            continue; /* a headline is never empty */
        char **h = realloc(g->headlines, (g->n_headlines + 1) * sizeof *h);
        char *copy = strdup(line);
        if (h)
            g->headlines = h;
        if (!h || !copy) {
            free(copy);
            errbuf_printf(err, errlen, "--headlines %s: out of memory", path);
            fclose(f);
            return -1;
        }
        g->headlines[g->n_headlines++] = copy;
    }
    fclose(f);
    if (g->n_headlines == 0) {
        errbuf_printf(err, errlen, "--headlines %s: no headline in the file", path);
        return -1;
    }
    return 0;
}

/* Bad news, for --burst: the company (its ticker) and a number. */
static const char *const produce_headlines_bad[] = {
    "%s shares plunge %u%% as regulators open fraud investigation",
    "%s issues profit warning, stock tumbles %u%% to multi-year low",
    "%s recalls products and slashes forecast; shares sink %u%%",
    "%s faces lawsuit over accounting losses, shares drop %u%%",
};
#define PRODUCE_N_HEADLINES_BAD (sizeof produce_headlines_bad / sizeof produce_headlines_bad[0])

int produce_gen_set_burst(produce_gen_t *g, const char *ticker, uint64_t from, uint64_t count,
                          char *err, size_t errlen)
{
    size_t len = strlen(ticker);
    if (len == 0 || len >= sizeof g->burst_ticker) {
        errbuf_printf(err, errlen, "a burst's ticker has 1 to %zu characters, not \"%s\"",
                      sizeof g->burst_ticker - 1, ticker);
        return -1;
    }
    memcpy(g->burst_ticker, ticker, len + 1);
    g->burst_from = from;
    g->burst_count = count;
    return 0;
}

void produce_gen_set_span(produce_gen_t *g, int64_t start_ms, int64_t span_ms, uint64_t count)
{
    g->span_start_ms = start_ms;
    g->span_ms = count > 0 ? span_ms : 0;
    g->span_count = count;
}

/* Where article i lies on the --span timeline. */
static int64_t produce_span_ms(const produce_gen_t *g, uint64_t i)
{
    return g->span_start_ms + (int64_t)((double)i * (double)g->span_ms / (double)g->span_count);
}

int produce_gen_article_in_burst(const produce_gen_t *g, uint64_t i)
{
    return g->burst_count > 0 && i >= g->burst_from && i - g->burst_from < g->burst_count;
}

/* Article i of the burst: a bad headline about the burst's ticker, published now. */
static void produce_burst_article(produce_gen_t *g, uint64_t i, int64_t now_ms, ingest_article_t *a)
{
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_ARTICLE, i);
    snprintf(g->headline, sizeof g->headline,
             produce_headlines_bad[produce_rng_below(&r, PRODUCE_N_HEADLINES_BAD)], g->burst_ticker,
             5 + produce_rng_below(&r, 30));
    a->article_id = g->article_id;
    a->published_time_ms =
        g->span_ms ? produce_span_ms(g, g->burst_from) + (int64_t)(i - g->burst_from) * 100
                   : now_ms;
    a->source = produce_sources[produce_rng_below(&r, 4)];
    a->language = "en";
    a->headline = g->headline;
    a->body = NULL;
    g->tickers[0] = g->burst_ticker;
    a->tickers = g->tickers;
    a->n_tickers = 1;
}

void produce_gen_article(produce_gen_t *g, uint64_t i, int64_t now_ms, ingest_article_t *a)
{
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_ARTICLE, i);
    const produce_company_t *c = &produce_companies[produce_rng_below(&r, PRODUCE_N_COMPANIES)];
    const produce_company_t *other = &produce_companies[produce_rng_below(&r, PRODUCE_N_COMPANIES)];
    unsigned n = 1 + produce_rng_below(&r, 40);
    int chinese = produce_rng_below(&r, 10) == 0;

    snprintf(g->article_id, sizeof g->article_id, "n%" PRIu64 "-%" PRIu64, g->seed, i);
    if (produce_gen_article_in_burst(g, i)) {
        produce_burst_article(g, i, now_ms, a);
        return;
    }
    if (g->n_headlines > 0) {
        /* A known text, for tests of what the news model makes of it. */
        snprintf(g->headline, sizeof g->headline, "%s", g->headlines[i % g->n_headlines]);
        a->article_id = g->article_id;
        a->published_time_ms = now_ms;
        a->source = produce_sources[0];
        a->language = "en";
        a->headline = g->headline;
        a->body = NULL;
        a->n_tickers = 0;
        a->tickers = g->tickers;
        return;
    }
    if (chinese)
        snprintf(g->headline, sizeof g->headline, "%s第三季度利润增长%u%%，股价上涨", c->name, n);
    else
        snprintf(g->headline, sizeof g->headline,
                 produce_headlines_en[produce_rng_below(&r, PRODUCE_N_HEADLINES)], c->name, n);
    a->article_id = g->article_id;
    a->published_time_ms =
        g->span_ms ? produce_span_ms(g, i) - (int64_t)produce_rng_below(&r, PRODUCE_SPAN_LATE_MS)
                   : now_ms - (int64_t)produce_rng_below(&r, 3600) * 1000;
    a->source = produce_sources[produce_rng_below(&r, 4)];
    a->language = chinese ? "zh" : (produce_rng_below(&r, 20) == 0 ? NULL : "en");
    a->headline = g->headline;
    if (produce_rng_below(&r, 5) == 0) {
        a->body = NULL; /* a headline-only feed */
    } else {
        snprintf(g->body, sizeof g->body,
                 "%s said on Tuesday that results for the quarter were %s than analysts had "
                 "expected. Traders compared $%s with $%s, which moved %u%% in the same "
                 "session.\n\"We see a difficult year,\" a spokesperson said.",
                 c->name, produce_rng_below(&r, 2) ? "better" : "worse", c->ticker, other->ticker,
                 n / 4);
        a->body = g->body;
    }
    a->n_tickers = produce_rng_below(&r, 3); /* 0, 1 or 2 tagged */
    g->tickers[0] = c->ticker;
    g->tickers[1] = other->ticker;
    a->tickers = g->tickers;
}

/* Label i is about article i of the same seed: a sentiment, a topic, or both. */
void produce_gen_news_label(produce_gen_t *g, uint64_t i, int64_t now_ms, ingest_news_label_t *l)
{
    static const char *const sentiments[] = {"NEGATIVE", "NEUTRAL", "POSITIVE"};
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_NEWS_LABEL, i);
    uint32_t which = produce_rng_below(&r, 10); /* 0: topic only, 1: sentiment only */

    snprintf(g->article_id, sizeof g->article_id, "n%" PRIu64 "-%" PRIu64, g->seed, i);
    l->article_id = g->article_id;
    l->sentiment = which == 0 ? NULL : sentiments[produce_rng_below(&r, 3)];
    l->topic = which == 1 ? NULL : produce_topics[produce_rng_below(&r, PRODUCE_N_TOPICS)];
    l->label_time_ms = now_ms;
}
