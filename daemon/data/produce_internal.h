/* Internals of the synthetic generator (produce.h), shared by its files and by nothing else:
 * the PRNG, the world (cities, merchant categories, channels), the users, the fraud plan of a
 * window of indices, and the generator's state.
 *
 *   produce_world.c    the world's tables, the seeded users and merchants (produce_gen_new)
 *   produce_events.c   legitimate events, and the fields every event has
 *   produce_fraud.c    fraud episodes and their events, ground truth, fraud labels
 *   produce_news.c     news articles (and --headlines files), news labels
 *   produce_records.c  a record of any kind by index, its key, malformed messages */
#ifndef VIGIL_PRODUCE_INTERNAL_H
#define VIGIL_PRODUCE_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest_record.h"
#include "produce.h"

/* ---- PRNG: splitmix64, one independent stream per (seed, purpose, index). ---- */

typedef struct produce_rng {
    uint64_t s;
} produce_rng_t;

/* Purposes, so that e.g. the user table and event 0 never draw the same numbers. */
enum {
    PRODUCE_STREAM_USER = 1,
    PRODUCE_STREAM_MERCHANT,
    PRODUCE_STREAM_EVENT,
    PRODUCE_STREAM_MALFORMED,
    PRODUCE_STREAM_NOISE,
    PRODUCE_STREAM_ARTICLE,
    PRODUCE_STREAM_FRAUD_LABEL,
    PRODUCE_STREAM_NEWS_LABEL,
    PRODUCE_STREAM_EPISODE,     /* a window's fraud episodes */
    PRODUCE_STREAM_FRAUD_EVENT, /* an event of an episode */
    PRODUCE_STREAM_USER_BLOCK,  /* a user's trip or new device in a block of indices */
    PRODUCE_STREAM_CARRIER,     /* a user's mobile carrier address */
    PRODUCE_STREAM_REGULAR      /* a user's regular merchants */
};

static inline uint64_t produce_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static inline uint64_t produce_rng_next(produce_rng_t *r)
{
    r->s += 0x9E3779B97F4A7C15ULL;
    return produce_mix(r->s);
}

/* Each step goes through the bijective finalizer rather than adding i to the state: added
 * offsets would make stream i+1 a one-step shift of stream i, correlating neighbouring events. */
static inline produce_rng_t produce_rng_for(uint64_t seed, uint64_t stream, uint64_t i)
{
    produce_rng_t r = {produce_mix(produce_mix(produce_mix(seed) ^ stream) ^ i)};
    return r;
}

/* Uniform in [0, 1). */
static inline double produce_rng_uniform(produce_rng_t *r)
{
    return (double)(produce_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n); the modulo bias is far below anything a test could see for small n. */
static inline uint32_t produce_rng_below(produce_rng_t *r, uint32_t n)
{
    return (uint32_t)(produce_rng_next(r) % n);
}

/* Standard normal (Box-Muller). */
static inline double produce_rng_normal(produce_rng_t *r)
{
    double u1 = ((double)(produce_rng_next(r) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1]: log is finite */
    double u2 = produce_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- The world: cities users live in, merchants they buy from (produce_world.c). ---- */

typedef struct produce_city {
    const char *country; /* ISO 3166-1 alpha-2 */
    const char *currency;
    double per_usd; /* rough units of currency per US dollar, so amounts look local */
    double lat, lon;
} produce_city_t;

#define PRODUCE_N_CITIES 20
extern const produce_city_t produce_cities[PRODUCE_N_CITIES];

/* Merchant categories, and what a purchase in each costs relative to the buyer's typical spend. */
enum {
    PRODUCE_CAT_GROCERY,
    PRODUCE_CAT_ELECTRONICS,
    PRODUCE_CAT_TRAVEL,
    PRODUCE_CAT_FUEL,
    PRODUCE_CAT_RESTAURANTS,
    PRODUCE_CAT_GAMING,
    PRODUCE_CAT_APPAREL,
    PRODUCE_CAT_PHARMACY,
    PRODUCE_CAT_ENTERTAINMENT,
    PRODUCE_CAT_UTILITIES,
    PRODUCE_CAT_DIGITAL_GOODS,
    PRODUCE_CAT_GIFT_CARDS,
    PRODUCE_N_CATEGORIES
};

typedef struct produce_category {
    const char *name;
    double spend_factor;
} produce_category_t;

extern const produce_category_t produce_categories[PRODUCE_N_CATEGORIES];

/* An element of a constant array (a set of categories, of channels), chosen uniformly. */
#define PRODUCE_PICK(r, set) ((set)[produce_rng_below((r), sizeof(set))])

extern const char *const produce_channels[4];
enum { PRODUCE_CH_POS, PRODUCE_CH_WEB, PRODUCE_CH_MOBILE, PRODUCE_CH_ATM };

#define PRODUCE_N_MERCHANTS 2000
#define PRODUCE_MAX_DEVICES 3

/* float coordinates are ~1 m precise, and keep a 10-million-user table near 320 MB. */
typedef struct produce_user {
    float lat, lon;  /* home, near the city */
    float spend_usd; /* median of the user's everyday purchases, in US dollars */
    uint32_t ip;     /* home broadband */
    uint32_t devices[PRODUCE_MAX_DEVICES];
    uint16_t categories; /* bit k: the user shops in category k */
    uint8_t n_devices;
    uint8_t city;
} produce_user_t;

/* ---- Fraud episodes, laid out over fixed windows of the index space. ----
 *
 * Window w holds the events [w * PRODUCE_WINDOW, (w + 1) * PRODUCE_WINDOW). Its episodes (how
 * many of each pattern, fixed per window; their victims, devices, places; which indices their
 * events take) are drawn from one stream seeded with (seed, w), so event i depends on i and on its
 * window's plan only: any event can be regenerated alone. An index no episode takes is a
 * legitimate event drawn from (seed, i), as before. docs/synthetic-data.md has the figures. */
#define PRODUCE_WINDOW_BITS 16
#define PRODUCE_WINDOW ((uint32_t)1 << PRODUCE_WINDOW_BITS)
#define PRODUCE_CARD_TESTS_PER_WINDOW 40
#define PRODUCE_TAKEOVERS_PER_WINDOW 40
#define PRODUCE_SPIKES_PER_WINDOW 250
#define PRODUCE_EPISODES_MAX                                                                       \
    (PRODUCE_CARD_TESTS_PER_WINDOW + PRODUCE_TAKEOVERS_PER_WINDOW + PRODUCE_SPIKES_PER_WINDOW)
#define PRODUCE_EPISODE_STEPS_MAX 16 /* 15 card tests and a cash-out */
#define PRODUCE_STEPS_MAX                                                                          \
    (PRODUCE_CARD_TESTS_PER_WINDOW * 16 + PRODUCE_TAKEOVERS_PER_WINDOW * 11 +                      \
     PRODUCE_SPIKES_PER_WINDOW)

typedef enum produce_step_kind {
    PRODUCE_STEP_CARD_TEST,  /* card testing: a small web purchase */
    PRODUCE_STEP_CASH_OUT,   /* card testing: the larger purchase that may end a burst */
    PRODUCE_STEP_ATO_FAILED, /* account takeover: LOGIN_FAILED */
    PRODUCE_STEP_ATO_LOGIN,
    PRODUCE_STEP_ATO_PASSWORD,
    PRODUCE_STEP_ATO_TXN,
    PRODUCE_STEP_SPIKE
} produce_step_kind_t;

typedef struct produce_episode {
    uint32_t user;   /* the victim */
    uint32_t device; /* the device the episode's events come from */
    uint32_t ip;
    float lat, lon;  /* where they come from */
    uint8_t pattern; /* produce_fraud_pattern_t */
    uint8_t city;    /* index of the city they come from (country, currency) */
    uint8_t channel; /* index into produce_channels */
    uint8_t unusual; /* spike: at a category the user does not shop in */
    uint8_t foreign; /* spike: in another country, paid in its currency */
} produce_episode_t;

typedef struct produce_step {
    uint16_t episode; /* index into the window's episodes */
    uint8_t kind;     /* produce_step_kind_t */
} produce_step_t;

struct produce_gen {
    uint64_t seed;
    int n_users;
    produce_user_t *users; /* owned */
    uint8_t merchant_category[PRODUCE_N_MERCHANTS];
    /* Merchants by category: those of category c are by_category[cat_first[c] .. cat_first[c+1]).
     */
    uint16_t by_category[PRODUCE_N_MERCHANTS];
    uint16_t cat_first[PRODUCE_N_CATEGORIES + 1];

    /* The plan of window plan_window (UINT64_MAX: none yet). */
    uint64_t plan_window;
    uint16_t *slot; /* owned, PRODUCE_WINDOW entries: 1 + index into steps, 0 for legitimate */
    produce_step_t steps[PRODUCE_STEPS_MAX];
    produce_episode_t episodes[PRODUCE_EPISODES_MAX];
    int n_steps, n_episodes;

    /* The strings of the last event; sized for the widest value each printf can produce. */
    char event_id[48];
    char user_id[24];
    char account_id[24];
    char device_id[24];
    char ip[24];
    char merchant_id[24];
    /* The last article or label. */
    char article_id[48];
    char headline[256];
    /* --headlines: article i takes line i % n_headlines as its headline, with no body. */
    char **headlines;
    size_t n_headlines;
    char body[768];
    const char *tickers[3];
    /* --burst: articles burst_from .. burst_from + burst_count - 1 are bad news about
     * burst_ticker, published when they are made (burst_count 0: no burst). */
    char burst_ticker[16];
    uint64_t burst_from, burst_count;
    /* --span: article i is published at span_start_ms + i * span_ms / span_count, up to
     * PRODUCE_SPAN_LATE_MS earlier (span_ms 0: up to an hour before it is made). */
    int64_t span_start_ms, span_ms;
    uint64_t span_count;
};
#define PRODUCE_SPAN_LATE_MS 30000

/* ---- Shared by the files of the generator. ---- */

/* produce_world.c. A public-looking IPv4 address: first octet 11..210, never loopback. */
uint32_t produce_random_ip(produce_rng_t *r);
/* A merchant of category cat (any merchant if the seed gave the category none). */
uint32_t produce_pick_merchant(const produce_gen_t *g, produce_rng_t *r, unsigned cat);
/* The k-th (mod their count) category the user shops in. */
unsigned produce_user_category(const produce_user_t *u, unsigned k);
/* A city other than home; far: in another country and at least 2,000 km away. */
uint8_t produce_other_city(produce_rng_t *r, unsigned home, int far);

/* produce_events.c. The fields every event has, for user uidx (strings into g's buffers). */
void produce_fill_common(produce_gen_t *g, uint32_t uidx, uint32_t device, uint32_t ip,
                         ingest_event_t *ev);
/* An event that is not a purchase: no amount, currency or merchant. */
void produce_fill_no_amount(ingest_event_t *ev);
/* A purchase of usd US dollars at merchant m, paid in the currency of city c. */
void produce_fill_purchase(produce_gen_t *g, uint32_t m, double usd, unsigned c,
                           ingest_event_t *ev);

/* produce_fraud.c. The fraud step event i is, or NULL for a legitimate event. */
const produce_step_t *produce_step_of(produce_gen_t *g, uint64_t i);
/* Event i is step s of a fraud episode. */
void produce_gen_fraud(produce_gen_t *g, uint64_t i, const produce_step_t *s, ingest_event_t *ev);
/* Label i is about event i of the same seed and says its ground truth. */
void produce_gen_fraud_label(produce_gen_t *g, uint64_t i, int64_t now_ms, ingest_fraud_label_t *l);

/* produce_news.c. Article i, and label i about it. */
void produce_gen_article(produce_gen_t *g, uint64_t i, int64_t now_ms, ingest_article_t *a);
void produce_gen_news_label(produce_gen_t *g, uint64_t i, int64_t now_ms, ingest_news_label_t *l);

#endif
