/* `vigil produce`: deterministic synthetic records (BehaviorEvents, news articles, fraud and
 * news labels), Avro-encoded and sent to Kafka, or events with their labels written to a file.
 *
 * Two halves. The generator (produce_gen_*) is pure: every random choice for message i comes from
 * a PRNG seeded with (seed, i), or for the events of a fraud episode from one seeded with (seed,
 * the window of indices holding it), so the i-th message is the same on every run and any message
 * can be regenerated on its own. What it makes, fraud included, is in docs/synthetic-data.md.
 * produce_main parses the command line, then drives an idempotent librdkafka producer with the
 * generator, optionally paced to a fixed rate, or an event file writer (event_file.h), and prints
 * a one-line summary a script can parse. */
#include "produce.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "event_file.h"
#include "log.h"

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

static uint64_t produce_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static uint64_t produce_rng_next(produce_rng_t *r)
{
    r->s += 0x9E3779B97F4A7C15ULL;
    return produce_mix(r->s);
}

/* Each step goes through the bijective finalizer rather than adding i to the state: added
 * offsets would make stream i+1 a one-step shift of stream i, correlating neighbouring events. */
static produce_rng_t produce_rng_for(uint64_t seed, uint64_t stream, uint64_t i)
{
    produce_rng_t r = {produce_mix(produce_mix(produce_mix(seed) ^ stream) ^ i)};
    return r;
}

/* Uniform in [0, 1). */
static double produce_rng_uniform(produce_rng_t *r)
{
    return (double)(produce_rng_next(r) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n); the modulo bias is far below anything a test could see for small n. */
static uint32_t produce_rng_below(produce_rng_t *r, uint32_t n)
{
    return (uint32_t)(produce_rng_next(r) % n);
}

/* Standard normal (Box-Muller). */
static double produce_rng_normal(produce_rng_t *r)
{
    double u1 = ((double)(produce_rng_next(r) >> 11) + 1.0) * 0x1.0p-53; /* (0, 1]: log is finite */
    double u2 = produce_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* ---- The world: cities users live in, merchants they buy from. ---- */

typedef struct produce_city {
    const char *country; /* ISO 3166-1 alpha-2 */
    const char *currency;
    double per_usd; /* rough units of currency per US dollar, so amounts look local */
    double lat, lon;
} produce_city_t;

static const produce_city_t produce_cities[] = {
    {"US", "USD", 1.0, 40.7128, -74.0060},   /* New York */
    {"US", "USD", 1.0, 37.7749, -122.4194},  /* San Francisco */
    {"US", "USD", 1.0, 41.8781, -87.6298},   /* Chicago */
    {"CA", "CAD", 1.35, 43.6532, -79.3832},  /* Toronto */
    {"MX", "MXN", 17.0, 19.4326, -99.1332},  /* Mexico City */
    {"BR", "BRL", 5.0, -23.5505, -46.6333},  /* Sao Paulo */
    {"GB", "GBP", 0.8, 51.5074, -0.1278},    /* London */
    {"FR", "EUR", 0.92, 48.8566, 2.3522},    /* Paris */
    {"DE", "EUR", 0.92, 52.5200, 13.4050},   /* Berlin */
    {"ES", "EUR", 0.92, 40.4168, -3.7038},   /* Madrid */
    {"NL", "EUR", 0.92, 52.3676, 4.9041},    /* Amsterdam */
    {"SE", "SEK", 10.5, 59.3293, 18.0686},   /* Stockholm */
    {"PL", "PLN", 4.0, 52.2297, 21.0122},    /* Warsaw */
    {"NG", "NGN", 900.0, 6.5244, 3.3792},    /* Lagos */
    {"ZA", "ZAR", 18.0, -26.2041, 28.0473},  /* Johannesburg */
    {"AE", "AED", 3.67, 25.2048, 55.2708},   /* Dubai */
    {"IN", "INR", 83.0, 19.0760, 72.8777},   /* Mumbai */
    {"SG", "SGD", 1.35, 1.3521, 103.8198},   /* Singapore */
    {"JP", "JPY", 150.0, 35.6762, 139.6503}, /* Tokyo */
    {"AU", "AUD", 1.5, -33.8688, 151.2093},  /* Sydney */
};
#define PRODUCE_N_CITIES (sizeof produce_cities / sizeof produce_cities[0])

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

static const struct {
    const char *name;
    double spend_factor;
} produce_categories[PRODUCE_N_CATEGORIES] = {
    {"grocery", 1.0},       {"electronics", 3.0}, {"travel", 4.0},        {"fuel", 1.2},
    {"restaurants", 0.8},   {"gaming", 0.5},      {"apparel", 1.5},       {"pharmacy", 0.6},
    {"entertainment", 0.6}, {"utilities", 2.0},   {"digital_goods", 0.3}, {"gift_cards", 1.0},
};

/* Where each kind of purchase happens. */
static const uint8_t produce_cats_card_test[] = {PRODUCE_CAT_DIGITAL_GOODS, PRODUCE_CAT_GIFT_CARDS,
                                                 PRODUCE_CAT_GAMING, PRODUCE_CAT_ENTERTAINMENT};
static const uint8_t produce_cats_cash_out[] = {PRODUCE_CAT_ELECTRONICS, PRODUCE_CAT_GIFT_CARDS};
static const uint8_t produce_cats_takeover[] = {PRODUCE_CAT_ELECTRONICS, PRODUCE_CAT_TRAVEL,
                                                PRODUCE_CAT_GAMING, PRODUCE_CAT_GIFT_CARDS};
static const uint8_t produce_cats_spike[] = {PRODUCE_CAT_ELECTRONICS, PRODUCE_CAT_TRAVEL,
                                             PRODUCE_CAT_GIFT_CARDS, PRODUCE_CAT_APPAREL,
                                             PRODUCE_CAT_GAMING};
static const uint8_t produce_cats_big[] = {PRODUCE_CAT_ELECTRONICS, PRODUCE_CAT_TRAVEL,
                                           PRODUCE_CAT_APPAREL};
static const uint8_t produce_cats_trip[] = {PRODUCE_CAT_RESTAURANTS, PRODUCE_CAT_TRAVEL,
                                            PRODUCE_CAT_ENTERTAINMENT};
#define PRODUCE_PICK(r, set) ((set)[produce_rng_below((r), sizeof(set))])

#define PRODUCE_N_MERCHANTS 2000
#define PRODUCE_MAX_DEVICES 3
/* Merchants a user goes back to; each is in one of the user's categories. */
#define PRODUCE_REGULAR_MERCHANTS 6

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

/* Legitimate noise: per user and per block of PRODUCE_BLOCK indices, a trip abroad or a new
 * device, in per mille. */
#define PRODUCE_BLOCK_BITS 16
#define PRODUCE_TRIP_PER_MILLE 30
#define PRODUCE_NEW_DEVICE_PER_MILLE 20
/* A legitimate large purchase (5-30x the user's typical spend), per 10,000 transactions. */
#define PRODUCE_BIG_PURCHASE_PER_10K 50

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

static const char *const produce_channels[] = {"pos", "web", "mobile", "atm"};
enum { PRODUCE_CH_POS, PRODUCE_CH_WEB, PRODUCE_CH_MOBILE, PRODUCE_CH_ATM };

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
};

/* A public-looking IPv4 address: first octet 11..210, never loopback. */
static uint32_t produce_random_ip(produce_rng_t *r)
{
    uint32_t first = 11 + produce_rng_below(r, 200);
    if (first == 127)
        first = 128;
    return (first << 24) | (uint32_t)(produce_rng_next(r) & 0xFFFFFF);
}

produce_gen_t *produce_gen_new(uint64_t seed, int n_users, char *err, size_t errlen)
{
    produce_gen_t *g = NULL;

    if (n_users < 1 || n_users > PRODUCE_USERS_MAX) {
        snprintf(err, errlen, "user count %d is out of range: use 1..%d", n_users,
                 PRODUCE_USERS_MAX);
        goto err;
    }
    g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, errlen, "out of memory allocating the event generator");
        goto err;
    }
    g->seed = seed;
    g->n_users = n_users;
    g->plan_window = UINT64_MAX;
    g->slot = calloc(PRODUCE_WINDOW, sizeof *g->slot);
    g->users = calloc((size_t)n_users, sizeof *g->users);
    if (!g->slot || !g->users) {
        snprintf(err, errlen, "out of memory allocating %d users: use a smaller --users", n_users);
        goto err;
    }

    /* Each user from its own stream, so user k is the same whatever the user count. */
    for (int k = 0; k < n_users; k++) {
        produce_rng_t r = produce_rng_for(seed, PRODUCE_STREAM_USER, (uint64_t)k);
        produce_user_t *u = &g->users[k];
        u->city = (uint8_t)produce_rng_below(&r, PRODUCE_N_CITIES);
        u->lat = (float)(produce_cities[u->city].lat + (produce_rng_uniform(&r) - 0.5) * 0.3);
        u->lon = (float)(produce_cities[u->city].lon + (produce_rng_uniform(&r) - 0.5) * 0.3);
        u->ip = produce_random_ip(&r);
        u->n_devices = (uint8_t)(1 + produce_rng_below(&r, PRODUCE_MAX_DEVICES));
        for (int d = 0; d < u->n_devices; d++)
            u->devices[d] = (uint32_t)produce_rng_next(&r);
        /* Typical spend: log-normal across users around $35, within $3..$1,500. */
        double spend = exp(log(35.0) + 0.8 * produce_rng_normal(&r));
        u->spend_usd = (float)(spend < 3.0 ? 3.0 : spend > 1500.0 ? 1500.0 : spend);
        /* Groceries and three other categories (fewer when draws repeat). */
        u->categories = 1u << PRODUCE_CAT_GROCERY;
        for (int c = 0; c < 3; c++)
            u->categories |= (uint16_t)(1u << produce_rng_below(&r, PRODUCE_N_CATEGORIES));
    }
    for (int m = 0; m < PRODUCE_N_MERCHANTS; m++) {
        produce_rng_t r = produce_rng_for(seed, PRODUCE_STREAM_MERCHANT, (uint64_t)m);
        g->merchant_category[m] = (uint8_t)produce_rng_below(&r, PRODUCE_N_CATEGORIES);
    }
    /* A counting sort of the merchants by category. */
    for (int m = 0; m < PRODUCE_N_MERCHANTS; m++)
        g->cat_first[g->merchant_category[m] + 1]++;
    for (int c = 0; c < PRODUCE_N_CATEGORIES; c++)
        g->cat_first[c + 1] += g->cat_first[c];
    {
        uint16_t next[PRODUCE_N_CATEGORIES];
        memcpy(next, g->cat_first, sizeof next);
        for (int m = 0; m < PRODUCE_N_MERCHANTS; m++)
            g->by_category[next[g->merchant_category[m]]++] = (uint16_t)m;
    }
    return g;

err:
    produce_gen_free(g);
    return NULL;
}

int produce_gen_load_headlines(produce_gen_t *g, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char line[256];
    if (!f) {
        snprintf(err, errlen, "--headlines %s: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        size_t len = strcspn(line, "\r\n");
        if (line[len] == '\0' && !feof(f)) {
            snprintf(err, errlen, "--headlines %s: line %zu is longer than %zu bytes", path,
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
            snprintf(err, errlen, "--headlines %s: out of memory", path);
            fclose(f);
            return -1;
        }
        g->headlines[g->n_headlines++] = copy;
    }
    fclose(f);
    if (g->n_headlines == 0) {
        snprintf(err, errlen, "--headlines %s: no headline in the file", path);
        return -1;
    }
    return 0;
}

void produce_gen_free(produce_gen_t *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_headlines; i++)
        free(g->headlines[i]);
    free(g->headlines);
    free(g->users);
    free(g->slot);
    free(g);
}

/* A merchant of category cat (any merchant if the seed gave the category none). */
static uint32_t produce_pick_merchant(const produce_gen_t *g, produce_rng_t *r, unsigned cat)
{
    uint32_t n = (uint32_t)(g->cat_first[cat + 1] - g->cat_first[cat]);
    if (n == 0)
        return produce_rng_below(r, PRODUCE_N_MERCHANTS);
    return g->by_category[g->cat_first[cat] + produce_rng_below(r, n)];
}

/* The k-th (mod their count) category the user shops in. */
static unsigned produce_user_category(const produce_user_t *u, unsigned k)
{
    unsigned n = (unsigned)__builtin_popcount(u->categories);
    k %= n;
    for (unsigned c = 0; c < PRODUCE_N_CATEGORIES; c++)
        if (u->categories & (1u << c) && k-- == 0)
            return c;
    return PRODUCE_CAT_GROCERY; /* not reached: groceries are always in the set */
}

static double produce_distance_km(const produce_city_t *a, const produce_city_t *b)
{
    double rad = M_PI / 180.0;
    double dlat = (b->lat - a->lat) * rad, dlon = (b->lon - a->lon) * rad;
    double h = sin(dlat / 2) * sin(dlat / 2) +
               cos(a->lat * rad) * cos(b->lat * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2.0 * 6371.0 * asin(sqrt(h < 1.0 ? h : 1.0));
}

/* A city other than home; far: in another country and at least 2,000 km away. */
static uint8_t produce_other_city(produce_rng_t *r, unsigned home, int far)
{
    uint32_t c = 0;
    for (int tries = 0; tries < 64; tries++) {
        c = produce_rng_below(r, PRODUCE_N_CITIES - 1);
        if (c >= home)
            c++;
        if (!far || (strcmp(produce_cities[c].country, produce_cities[home].country) != 0 &&
                     produce_distance_km(&produce_cities[c], &produce_cities[home]) >= 2000.0))
            break;
    }
    return (uint8_t)c;
}

/* Puts the steps of one episode at free indices of the window: step k at gaps[0] + ... +
 * gaps[k] after a random start, moved on to the next free index when another episode has it. */
static void produce_place(produce_gen_t *g, produce_rng_t *r, const uint8_t *kinds,
                          const uint32_t *gaps, int n)
{
    uint32_t span = 0;
    for (int k = 0; k < n; k++)
        span += gaps[k];
    /* Every pattern's span is well below the window (the longest takeover is 51,000). */
    uint32_t pos = produce_rng_below(r, PRODUCE_WINDOW - span - 256);
    for (int k = 0; k < n; k++) {
        pos += gaps[k];
        while (pos < PRODUCE_WINDOW && g->slot[pos] != 0)
            pos++;
        if (pos >= PRODUCE_WINDOW)
            break; /* cannot happen with the densities above; the episode is cut short */
        g->steps[g->n_steps].episode = (uint16_t)g->n_episodes;
        g->steps[g->n_steps].kind = kinds[k];
        g->slot[pos] = (uint16_t)++g->n_steps;
    }
    g->n_episodes++;
}

/* Near the centre of city c, as an IP geolocation puts it. */
static void produce_near_city(produce_episode_t *e, produce_rng_t *r, unsigned c)
{
    e->city = (uint8_t)c;
    e->lat = (float)(produce_cities[c].lat + (produce_rng_uniform(r) - 0.5) * 0.3);
    e->lon = (float)(produce_cities[c].lon + (produce_rng_uniform(r) - 0.5) * 0.3);
}

static produce_episode_t *produce_episode_begin(produce_gen_t *g, produce_rng_t *r,
                                                produce_fraud_pattern_t pattern)
{
    produce_episode_t *e = &g->episodes[g->n_episodes];
    memset(e, 0, sizeof *e);
    e->pattern = (uint8_t)pattern;
    e->user = produce_rng_below(r, (uint32_t)g->n_users);
    return e;
}

/* Card testing: 5-15 small web purchases at different merchants, seconds apart, often from a
 * device the user never had; 40% end with a larger purchase. */
static void produce_plan_card_testing(produce_gen_t *g, produce_rng_t *r)
{
    produce_episode_t *e = produce_episode_begin(g, r, PRODUCE_FRAUD_CARD_TESTING);
    const produce_user_t *u = &g->users[e->user];
    uint8_t kinds[PRODUCE_EPISODE_STEPS_MAX];
    uint32_t gaps[PRODUCE_EPISODE_STEPS_MAX];
    int n = 5 + (int)produce_rng_below(r, 11);

    e->device = produce_rng_below(r, 10) < 7 ? (uint32_t)produce_rng_next(r)
                                             : u->devices[produce_rng_below(r, u->n_devices)];
    e->ip = produce_random_ip(r);
    produce_near_city(e, r, produce_rng_below(r, 2) ? u->city : produce_other_city(r, u->city, 0));
    e->channel = PRODUCE_CH_WEB;
    for (int k = 0; k < n; k++) {
        kinds[k] = PRODUCE_STEP_CARD_TEST;
        gaps[k] = k == 0 ? 0 : 50 + produce_rng_below(r, 551);
    }
    if (produce_rng_below(r, 10) < 4) {
        kinds[n] = PRODUCE_STEP_CASH_OUT;
        gaps[n++] = 1000 + produce_rng_below(r, 9001);
    }
    produce_place(g, r, kinds, gaps, n);
}

/* Account takeover: 2-6 failed logins, a login from a new device in a far-away country, a
 * password change (70%), then 1-3 large purchases from there. */
static void produce_plan_takeover(produce_gen_t *g, produce_rng_t *r)
{
    produce_episode_t *e = produce_episode_begin(g, r, PRODUCE_FRAUD_ACCOUNT_TAKEOVER);
    const produce_user_t *u = &g->users[e->user];
    uint8_t kinds[PRODUCE_EPISODE_STEPS_MAX];
    uint32_t gaps[PRODUCE_EPISODE_STEPS_MAX];
    int n = 0;

    e->device = (uint32_t)produce_rng_next(r);
    e->ip = produce_random_ip(r);
    produce_near_city(e, r, produce_other_city(r, u->city, 1));
    e->channel = produce_rng_below(r, 10) < 6 ? PRODUCE_CH_WEB : PRODUCE_CH_MOBILE;
    for (int k = 2 + (int)produce_rng_below(r, 5); k > 0; k--) {
        kinds[n] = PRODUCE_STEP_ATO_FAILED;
        gaps[n] = n == 0 ? 0 : 200 + produce_rng_below(r, 1801);
        n++;
    }
    kinds[n] = PRODUCE_STEP_ATO_LOGIN;
    gaps[n++] = 500 + produce_rng_below(r, 2501);
    if (produce_rng_below(r, 10) < 7) {
        kinds[n] = PRODUCE_STEP_ATO_PASSWORD;
        gaps[n++] = 1000 + produce_rng_below(r, 7001);
    }
    for (int k = 1 + (int)produce_rng_below(r, 3); k > 0; k--) {
        kinds[n] = PRODUCE_STEP_ATO_TXN;
        gaps[n++] = 1000 + produce_rng_below(r, 9001);
    }
    produce_place(g, r, kinds, gaps, n);
}

/* Amount spike: one purchase at 10-50x the user's typical spend. */
static void produce_plan_spike(produce_gen_t *g, produce_rng_t *r)
{
    produce_episode_t *e = produce_episode_begin(g, r, PRODUCE_FRAUD_AMOUNT_SPIKE);
    const produce_user_t *u = &g->users[e->user];
    static const uint8_t kind = PRODUCE_STEP_SPIKE;
    static const uint32_t gap = 0;
    uint32_t p = produce_rng_below(r, 10);

    e->channel = p < 5 ? PRODUCE_CH_WEB : p < 8 ? PRODUCE_CH_POS : PRODUCE_CH_MOBILE;
    e->unusual = produce_rng_below(r, 2) == 0;
    e->foreign = produce_rng_below(r, 10) < 3;
    int own_device = produce_rng_below(r, 10) < 7;
    e->device =
        own_device ? u->devices[produce_rng_below(r, u->n_devices)] : (uint32_t)produce_rng_next(r);
    if (e->foreign) {
        produce_near_city(e, r, produce_other_city(r, u->city, 0));
        e->ip = produce_random_ip(r);
    } else {
        e->city = u->city;
        e->lat = u->lat;
        e->lon = u->lon;
        e->ip = own_device ? u->ip : produce_random_ip(r);
    }
    produce_place(g, r, &kind, &gap, 1);
}

/* Makes window w's plan the current one. */
static void produce_plan(produce_gen_t *g, uint64_t w)
{
    if (g->plan_window == w)
        return;
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_EPISODE, w);
    memset(g->slot, 0, PRODUCE_WINDOW * sizeof *g->slot);
    g->n_steps = g->n_episodes = 0;
    for (int k = 0; k < PRODUCE_CARD_TESTS_PER_WINDOW; k++)
        produce_plan_card_testing(g, &r);
    for (int k = 0; k < PRODUCE_TAKEOVERS_PER_WINDOW; k++)
        produce_plan_takeover(g, &r);
    for (int k = 0; k < PRODUCE_SPIKES_PER_WINDOW; k++)
        produce_plan_spike(g, &r);
    g->plan_window = w;
}

/* The fraud step event i is, or NULL for a legitimate event. */
static const produce_step_t *produce_step_of(produce_gen_t *g, uint64_t i)
{
    produce_plan(g, i >> PRODUCE_WINDOW_BITS);
    uint16_t s = g->slot[i & (PRODUCE_WINDOW - 1)];
    return s ? &g->steps[s - 1] : NULL;
}

produce_fraud_pattern_t produce_gen_event_pattern(produce_gen_t *g, uint64_t i, uint64_t *episode)
{
    const produce_step_t *s = produce_step_of(g, i);
    if (episode)
        *episode = s ? (i >> PRODUCE_WINDOW_BITS) * PRODUCE_EPISODES_MAX + s->episode : 0;
    return s ? (produce_fraud_pattern_t)g->episodes[s->episode].pattern : PRODUCE_FRAUD_NONE;
}

int produce_gen_event_is_fraud(produce_gen_t *g, uint64_t i)
{
    return produce_step_of(g, i) != NULL;
}

/* Per mille thresholds: TRANSACTION 60%, LOGIN 20%, CLICK 15%, LOGIN_FAILED 4%,
 * PASSWORD_CHANGE 1%. */
static const char *produce_pick_type(produce_rng_t *r)
{
    uint32_t p = produce_rng_below(r, 1000);
    if (p < 600)
        return "TRANSACTION";
    if (p < 800)
        return "LOGIN";
    if (p < 950)
        return "CLICK";
    if (p < 990)
        return "LOGIN_FAILED";
    return "PASSWORD_CHANGE";
}

/* The fields every event has, for user uidx. */
static void produce_fill_common(produce_gen_t *g, uint32_t uidx, uint32_t device, uint32_t ip,
                                ingest_event_t *ev)
{
    snprintf(g->user_id, sizeof g->user_id, "u%06" PRIu32, uidx);
    snprintf(g->account_id, sizeof g->account_id, "a%06" PRIu32, uidx);
    snprintf(g->device_id, sizeof g->device_id, "d%08" PRIx32, device);
    snprintf(g->ip, sizeof g->ip, "%" PRIu32 ".%" PRIu32 ".%" PRIu32 ".%" PRIu32, ip >> 24,
             (ip >> 16) & 0xFF, (ip >> 8) & 0xFF, ip & 0xFF);
    ev->user_id = g->user_id;
    ev->account_id = g->account_id;
    ev->device_id = g->device_id;
    ev->ip = g->ip;
    ev->has_geo = 1;
    ev->n_extra = 0;
    ev->extra_num = NULL;
    ev->extra_str = NULL;
}

static void produce_fill_no_amount(ingest_event_t *ev)
{
    ev->has_amount = 0;
    ev->amount = 0.0;
    ev->currency = NULL;
    ev->merchant_id = NULL;
    ev->merchant_category = NULL;
}

/* A purchase of usd US dollars at merchant m, paid in the currency of city c. */
static void produce_fill_purchase(produce_gen_t *g, uint32_t m, double usd, unsigned c,
                                  ingest_event_t *ev)
{
    if (usd > 20000.0)
        usd = 20000.0; /* so a tail draw stays plausible */
    double amount = round(usd * produce_cities[c].per_usd * 100.0) / 100.0;
    ev->event_type = "TRANSACTION";
    ev->has_amount = 1;
    ev->amount = amount < 0.01 ? 0.01 : amount;
    ev->currency = produce_cities[c].currency;
    snprintf(g->merchant_id, sizeof g->merchant_id, "m%05" PRIu32, m);
    ev->merchant_id = g->merchant_id;
    ev->merchant_category = produce_categories[g->merchant_category[m]].name;
}

/* What a user does in block b of the index space besides the everyday: a trip, a new device. */
typedef struct produce_block {
    int trip, new_device;
    uint8_t city; /* trip destination */
    float lat, lon;
    uint32_t ip;     /* the hotel's, on a trip */
    uint32_t device; /* the new device */
} produce_block_t;

static void produce_user_block(const produce_gen_t *g, uint32_t uidx, uint64_t b,
                               produce_block_t *out)
{
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_USER_BLOCK, produce_mix(b) ^ uidx);
    const produce_user_t *u = &g->users[uidx];
    out->trip = produce_rng_below(&r, 1000) < PRODUCE_TRIP_PER_MILLE;
    out->new_device = produce_rng_below(&r, 1000) < PRODUCE_NEW_DEVICE_PER_MILLE;
    out->city = produce_other_city(&r, u->city, 0);
    out->lat = (float)(produce_cities[out->city].lat + (produce_rng_uniform(&r) - 0.5) * 0.3);
    out->lon = (float)(produce_cities[out->city].lon + (produce_rng_uniform(&r) - 0.5) * 0.3);
    out->ip = produce_random_ip(&r);
    out->device = (uint32_t)produce_rng_next(&r);
}

/* A legitimate event: a uniformly chosen user doing something ordinary, with the noise that
 * makes fraud hard to tell from it (trips abroad, new devices, large purchases). */
static void produce_gen_legit(produce_gen_t *g, uint64_t i, ingest_event_t *ev)
{
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_EVENT, i);
    uint32_t uidx = produce_rng_below(&r, (uint32_t)g->n_users);
    const produce_user_t *u = &g->users[uidx];
    const char *type = produce_pick_type(&r);
    int is_txn = strcmp(type, "TRANSACTION") == 0;
    produce_block_t b;
    unsigned channel;

    produce_user_block(g, uidx, i >> PRODUCE_BLOCK_BITS, &b);
    if (is_txn) {
        static const uint8_t txn_channels[] = {PRODUCE_CH_POS, PRODUCE_CH_POS, PRODUCE_CH_WEB,
                                               PRODUCE_CH_MOBILE, PRODUCE_CH_ATM};
        channel = PRODUCE_PICK(&r, txn_channels);
    } else {
        channel = produce_rng_below(&r, 2) ? PRODUCE_CH_WEB : PRODUCE_CH_MOBILE;
    }
    uint32_t device = b.new_device && produce_rng_below(&r, 2)
                          ? b.device
                          : u->devices[produce_rng_below(&r, u->n_devices)];
    uint32_t ip = u->ip;
    if (b.trip) {
        ip = b.ip;
    } else if (channel == PRODUCE_CH_MOBILE) {
        /* The user's mobile carrier. */
        produce_rng_t c = produce_rng_for(g->seed, PRODUCE_STREAM_CARRIER, uidx);
        ip = produce_random_ip(&c);
    }
    unsigned here = b.trip ? b.city : u->city;

    produce_fill_common(g, uidx, device, ip, ev);
    ev->event_type = type;
    ev->channel = produce_channels[channel];
    ev->country = produce_cities[here].country;
    ev->latitude = (b.trip ? b.lat : u->lat) + (produce_rng_uniform(&r) - 0.5) * 0.02;
    ev->longitude = (b.trip ? b.lon : u->lon) + (produce_rng_uniform(&r) - 0.5) * 0.02;
    if (!is_txn) {
        produce_fill_no_amount(ev);
        return;
    }

    uint32_t m;
    double usd;
    if (produce_rng_below(&r, 10000) < PRODUCE_BIG_PURCHASE_PER_10K) {
        /* A laptop, a holiday: a large purchase that is not fraud. */
        m = produce_pick_merchant(g, &r, PRODUCE_PICK(&r, produce_cats_big));
        usd = u->spend_usd * (5.0 + 25.0 * produce_rng_uniform(&r));
    } else {
        uint32_t p = produce_rng_below(&r, 10);
        if (b.trip && p < 5) {
            m = produce_pick_merchant(g, &r, PRODUCE_PICK(&r, produce_cats_trip));
        } else if (p < 6) {
            /* One of the user's regular merchants. */
            uint32_t k = produce_rng_below(&r, PRODUCE_REGULAR_MERCHANTS);
            produce_rng_t rm = produce_rng_for(g->seed, PRODUCE_STREAM_REGULAR,
                                               (uint64_t)uidx * PRODUCE_REGULAR_MERCHANTS + k);
            m = produce_pick_merchant(g, &rm, produce_user_category(u, k));
        } else if (p < 9) {
            m = produce_pick_merchant(g, &r, produce_user_category(u, produce_rng_below(&r, 16)));
        } else {
            m = produce_pick_merchant(g, &r, produce_rng_below(&r, PRODUCE_N_CATEGORIES));
        }
        usd = u->spend_usd * produce_categories[g->merchant_category[m]].spend_factor *
              exp(0.7 * produce_rng_normal(&r));
    }
    produce_fill_purchase(g, m, usd, here, ev);
}

/* Event i is step s of a fraud episode. */
static void produce_gen_fraud(produce_gen_t *g, uint64_t i, const produce_step_t *s,
                              ingest_event_t *ev)
{
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_FRAUD_EVENT, i);
    const produce_episode_t *e = &g->episodes[s->episode];
    const produce_user_t *u = &g->users[e->user];
    uint32_t m;

    produce_fill_common(g, e->user, e->device, e->ip, ev);
    ev->channel = produce_channels[e->channel];
    ev->country = produce_cities[e->city].country;
    ev->latitude = e->lat + (produce_rng_uniform(&r) - 0.5) * 0.02;
    ev->longitude = e->lon + (produce_rng_uniform(&r) - 0.5) * 0.02;
    produce_fill_no_amount(ev);
    switch ((produce_step_kind_t)s->kind) {
    case PRODUCE_STEP_CARD_TEST:
        m = produce_pick_merchant(g, &r,
                                  produce_rng_below(&r, 10) < 7
                                      ? PRODUCE_PICK(&r, produce_cats_card_test)
                                      : produce_rng_below(&r, PRODUCE_N_CATEGORIES));
        produce_fill_purchase(g, m, 0.5 + 2.5 * produce_rng_uniform(&r), u->city, ev);
        break;
    case PRODUCE_STEP_CASH_OUT:
        m = produce_pick_merchant(g, &r, PRODUCE_PICK(&r, produce_cats_cash_out));
        produce_fill_purchase(g, m, 150.0 + 1050.0 * produce_rng_uniform(&r), u->city, ev);
        break;
    case PRODUCE_STEP_ATO_FAILED:
        ev->event_type = "LOGIN_FAILED";
        break;
    case PRODUCE_STEP_ATO_LOGIN:
        ev->event_type = "LOGIN";
        break;
    case PRODUCE_STEP_ATO_PASSWORD:
        ev->event_type = "PASSWORD_CHANGE";
        break;
    case PRODUCE_STEP_ATO_TXN:
        /* Charged to the account, in its home currency. */
        m = produce_pick_merchant(g, &r, PRODUCE_PICK(&r, produce_cats_takeover));
        produce_fill_purchase(g, m, u->spend_usd * (5.0 + 35.0 * produce_rng_uniform(&r)), u->city,
                              ev);
        break;
    case PRODUCE_STEP_SPIKE:
        m = produce_pick_merchant(g, &r,
                                  e->unusual ? PRODUCE_PICK(&r, produce_cats_spike)
                                             : produce_user_category(u, produce_rng_below(&r, 16)));
        produce_fill_purchase(g, m, u->spend_usd * (10.0 + 40.0 * produce_rng_uniform(&r)), e->city,
                              ev);
        break;
    }
}

void produce_gen_event(produce_gen_t *g, uint64_t i, int64_t now_ms, ingest_event_t *ev)
{
    const produce_step_t *s = produce_step_of(g, i);

    snprintf(g->event_id, sizeof g->event_id, "e%" PRIu64 "-%" PRIu64, g->seed, i);
    ev->event_id = g->event_id;
    if (s)
        produce_gen_fraud(g, i, s, ev);
    else
        produce_gen_legit(g, i, ev);
    ev->event_time_ms = now_ms;
}

/* ---- News articles and labels. ---- */

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

static void produce_gen_article(produce_gen_t *g, uint64_t i, int64_t now_ms, ingest_article_t *a)
{
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_ARTICLE, i);
    const produce_company_t *c = &produce_companies[produce_rng_below(&r, PRODUCE_N_COMPANIES)];
    const produce_company_t *other = &produce_companies[produce_rng_below(&r, PRODUCE_N_COMPANIES)];
    unsigned n = 1 + produce_rng_below(&r, 40);
    int chinese = produce_rng_below(&r, 10) == 0;

    snprintf(g->article_id, sizeof g->article_id, "n%" PRIu64 "-%" PRIu64, g->seed, i);
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
    a->published_time_ms = now_ms - (int64_t)produce_rng_below(&r, 3600) * 1000;
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

/* Label i is about event i of the same seed (the event_id "e<seed>-<i>" produce writes) and says
 * its ground truth. */
static void produce_gen_fraud_label(produce_gen_t *g, uint64_t i, int64_t now_ms,
                                    ingest_fraud_label_t *l)
{
    static const char *const sources[] = {"chargeback", "analyst", "customer_report"};
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_FRAUD_LABEL, i);

    snprintf(g->event_id, sizeof g->event_id, "e%" PRIu64 "-%" PRIu64, g->seed, i);
    l->event_id = g->event_id;
    l->is_fraud = produce_gen_event_is_fraud(g, i);
    l->label_time_ms = now_ms;
    l->label_source = produce_rng_below(&r, 10) == 0 ? NULL : sources[produce_rng_below(&r, 3)];
}

/* Label i is about article i of the same seed: a sentiment, a topic, or both. */
static void produce_gen_news_label(produce_gen_t *g, uint64_t i, int64_t now_ms,
                                   ingest_news_label_t *l)
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

void produce_gen_record(produce_gen_t *g, ingest_kind_t kind, uint64_t i, int64_t now_ms,
                        ingest_record_t *rec)
{
    rec->kind = kind;
    switch (kind) {
    case INGEST_KIND_EVENT:
        produce_gen_event(g, i, now_ms, &rec->event);
        break;
    case INGEST_KIND_ARTICLE:
        produce_gen_article(g, i, now_ms, &rec->article);
        break;
    case INGEST_KIND_FRAUD_LABEL:
        produce_gen_fraud_label(g, i, now_ms, &rec->fraud_label);
        break;
    case INGEST_KIND_NEWS_LABEL:
        produce_gen_news_label(g, i, now_ms, &rec->news_label);
        break;
    case INGEST_KIND_COUNT:
        break;
    }
}

const char *produce_record_key(const ingest_record_t *rec)
{
    switch (rec->kind) {
    case INGEST_KIND_EVENT:
        return rec->event.user_id;
    case INGEST_KIND_ARTICLE:
        return rec->article.article_id;
    case INGEST_KIND_FRAUD_LABEL:
        return rec->fraud_label.event_id;
    case INGEST_KIND_NEWS_LABEL:
        return rec->news_label.article_id;
    case INGEST_KIND_COUNT:
        break;
    }
    return "";
}

int produce_gen_is_malformed(const produce_gen_t *g, uint64_t i, double fraction)
{
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_MALFORMED, i);
    /* uniform is in [0, 1): never below 0, always below 1. */
    return produce_rng_uniform(&r) < fraction;
}

long produce_gen_malformed(produce_gen_t *g, ingest_avro_t *enc, int32_t schema_id, uint64_t i,
                           const ingest_record_t *rec, void *out, size_t out_cap, char *err,
                           size_t errlen)
{
    unsigned char *p = out;
    produce_malformed_kind_t kind = (produce_malformed_kind_t)(i % PRODUCE_MALFORMED_KINDS);

    if (kind == PRODUCE_MALFORMED_EMPTY)
        return 0;
    if (out_cap < 256) {
        snprintf(err, errlen, "malformed message buffer of %zu bytes is too small: use 256 or more",
                 out_cap);
        return -1;
    }
    if (kind == PRODUCE_MALFORMED_RANDOM) {
        produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_NOISE, i);
        size_t n = 1 + produce_rng_below(&r, 200);
        for (size_t k = 0; k < n; k++)
            p[k] = (unsigned char)produce_rng_next(&r);
        /* 0x01 is a bad Confluent magic byte, and in plain Avro the zigzag length -1 of the
         * first string: no format can accept it. */
        p[0] = 0x01;
        return (long)n;
    }

    /* Leave room to prepend a 5-byte header below. */
    long len = ingest_avro_encode(enc, rec, schema_id, p, out_cap - 5, err, errlen);
    if (len < 0)
        return -1;
    switch (kind) {
    case PRODUCE_MALFORMED_BAD_MAGIC:
        /* In plain Avro 0x7b is the zigzag length -62 of the first field, a required string in
         * every record kind: also invalid. */
        p[0] = 0x7b;
        return len;
    case PRODUCE_MALFORMED_TRUNCATED:
        return len / 2;
    case PRODUCE_MALFORMED_UNKNOWN_SCHEMA: {
        uint32_t id = schema_id == PRODUCE_UNKNOWN_SCHEMA_ID ? PRODUCE_UNKNOWN_SCHEMA_ID - 1
                                                             : PRODUCE_UNKNOWN_SCHEMA_ID;
        /* A plain encoding never starts with 0x00 (every kind starts with a required, non-empty
         * id), so a leading 0x00
         * means the encoder already wrote a Confluent header to overwrite. */
        if (p[0] != 0x00) {
            memmove(p + 5, p, (size_t)len);
            len += 5;
            p[0] = 0x00;
        }
        p[1] = (unsigned char)(id >> 24);
        p[2] = (unsigned char)(id >> 16);
        p[3] = (unsigned char)(id >> 8);
        p[4] = (unsigned char)id;
        return len;
    }
    default:
        snprintf(err, errlen, "internal error: malformed kind %d", (int)kind);
        return -1;
    }
}

/* ---- The command. ---- */

static volatile sig_atomic_t produce_stop;

static void produce_on_signal(int sig)
{
    (void)sig;
    produce_stop = 1;
}

typedef struct produce_opts {
    const char *brokers; /* NULL when -X supplies them */
    ingest_kind_t kind;
    const char *topic; /* NULL: the kind's default */
    uint64_t count;    /* 0: until interrupted */
    double rate;       /* events per second; 0: as fast as possible */
    double malformed;
    uint64_t seed;
    int users;
    ingest_format_t format;
    int32_t schema_id;
    const char *schema_path;
    const char *output_dir; /* write one file per message instead of producing */
    const char *output;     /* write events and labels to this event file instead */
    const char *headlines;  /* news: headlines from this file, one per line */
    int64_t start_ms;       /* --output: event_time of event 0 */
    int rate_set;           /* --rate was given */
    const char **x_args;    /* owned array of argv pointers, "key=value" */
    int n_x;
} produce_opts_t;

/* Delivery counters. Delivery reports and errors are served by rd_kafka_poll/flush on the
 * calling thread, so plain integers suffice. */
typedef struct produce_stats {
    uint64_t delivered;
    uint64_t failed;
    int fatal;
} produce_stats_t;

/* --output defaults: the first event at 2026-01-01T00:00:00Z, 1000 events a second. */
#define PRODUCE_FILE_START_MS INT64_C(1767225600000)
#define PRODUCE_FILE_RATE 1000.0

static void produce_usage(FILE *f)
{
    fprintf(
        f,
        "usage: vigil produce -b BROKERS [options]\n"
        "       vigil produce --output FILE [options]\n"
        "Sends synthetic records (Avro) to Kafka, or writes labelled events to a file\n"
        "(docs/synthetic-data.md); prints one summary line:\n"
        "  produced=N good=N malformed=N delivered=N failed=N [fraud=N]\n"
        "\n"
        "  -b, --brokers LIST       bootstrap servers (or VIGIL_KAFKA_BOOTSTRAP_SERVERS)\n"
        "  -k, --kind KIND          events | news | fraud-labels | news-labels (default\n"
        "                           events); label i is about event or article i of the seed\n"
        "  -t, --topic NAME         topic (default behavior-events, news-articles,\n"
        "                           fraud-labels or news-labels, by kind)\n"
        "  -n, --count N            messages to send, 0 = until interrupted (default 10000)\n"
        "  -r, --rate N             events per second, 0 = as fast as possible (default 0);\n"
        "                           with --output the simulated rate (default %g)\n"
        "      --malformed F        fraction 0..1 of undecodable messages (default 0)\n"
        "      --seed N             generator seed (default 1)\n"
        "      --users N            distinct users, 1..%d (default 10000)\n"
        "      --format FMT         confluent | plain (default confluent)\n"
        "      --schema-id N        Confluent schema id, 0..2147483647 (default 1, 2, 3 or 4:\n"
        "                           the ids of ingest/schemas/<id>.avsc, by kind)\n"
        "      --schema FILE        the kind's .avsc to encode with (BehaviorEvent.avsc, ...)\n"
        "  -X KEY=VALUE             librdkafka setting, repeatable (as kcat)\n"
        "      --headlines FILE     kind news: article i's headline is line i of FILE (cycled),\n"
        "                           with no body (known texts, for tests)\n"
        "      --output-dir DIR     write each message value to DIR/NNNNNNNN.avro instead of\n"
        "                           producing (for other producers, e.g. kcat -P FILE...)\n"
        "      --output FILE        write --count events and their fraud labels to FILE\n"
        "                           (.csv, .jsonl, .ndjson or .avro) instead of producing;\n"
        "                           events only, no --malformed; adds fraud=N to the summary;\n"
        "                           event i happens at --start-ms + i * 1000 / --rate ms\n"
        "      --start-ms N         with --output: event_time of event 0, epoch ms (default\n"
        "                           %" PRId64 ", 2026-01-01T00:00:00Z)\n"
        "  -h, --help               this text\n"
        "Exit status: 0 all delivered, 1 failure or undelivered messages, 2 usage.\n",
        PRODUCE_FILE_RATE, PRODUCE_USERS_MAX, PRODUCE_FILE_START_MS);
}

/* Digits only: strtoull would accept "-1" as a huge number and " 5" with a space. */
static int produce_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int produce_parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno != 0 || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int produce_x_has_key(const produce_opts_t *o, const char *key)
{
    size_t klen = strlen(key);
    for (int k = 0; k < o->n_x; k++)
        if (strncmp(o->x_args[k], key, klen) == 0 && o->x_args[k][klen] == '=')
            return 1;
    return 0;
}

/* Returns 0, 1 after --help, or 2 after printing a usage error. */
static int produce_parse_args(int argc, char **argv, produce_opts_t *o)
{
    enum {
        OPT_MALFORMED = 256,
        OPT_SEED,
        OPT_USERS,
        OPT_FORMAT,
        OPT_SCHEMA_ID,
        OPT_SCHEMA,
        OPT_OUTPUT_DIR,
        OPT_OUTPUT,
        OPT_START_MS,
        OPT_HEADLINES
    };
    static const struct option longopts[] = {
        {"brokers", required_argument, NULL, 'b'},
        {"kind", required_argument, NULL, 'k'},
        {"topic", required_argument, NULL, 't'},
        {"count", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'r'},
        {"malformed", required_argument, NULL, OPT_MALFORMED},
        {"seed", required_argument, NULL, OPT_SEED},
        {"users", required_argument, NULL, OPT_USERS},
        {"format", required_argument, NULL, OPT_FORMAT},
        {"schema-id", required_argument, NULL, OPT_SCHEMA_ID},
        {"schema", required_argument, NULL, OPT_SCHEMA},
        {"output-dir", required_argument, NULL, OPT_OUTPUT_DIR},
        {"output", required_argument, NULL, OPT_OUTPUT},
        {"start-ms", required_argument, NULL, OPT_START_MS},
        {"headlines", required_argument, NULL, OPT_HEADLINES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t u;
    int c;

    int schema_id_set = 0, start_set = 0;

    o->kind = INGEST_KIND_EVENT;
    o->topic = NULL;
    o->count = 10000;
    o->seed = 1;
    o->users = 10000;
    o->format = INGEST_FORMAT_CONFLUENT;
    o->start_ms = PRODUCE_FILE_START_MS;
    o->x_args = calloc((size_t)argc + 1, sizeof *o->x_args);
    if (!o->x_args) {
        fprintf(stderr, "vigil produce: out of memory parsing arguments\n");
        return 2;
    }

    /* 0 re-initialises getopt, so produce_main can run more than once in a process (tests). */
    optind = 0;
    while ((c = getopt_long(argc, argv, "b:k:t:n:r:X:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k':
            if (ingest_kind_parse(optarg, &o->kind) < 0)
                goto bad_value;
            break;
        case 'b':
            if (optarg[0] == '\0')
                goto bad_value;
            o->brokers = optarg;
            break;
        case 't':
            if (optarg[0] == '\0' || strlen(optarg) > 249)
                goto bad_value; /* Kafka's topic name limit */
            o->topic = optarg;
            break;
        case 'n':
            if (produce_parse_u64(optarg, &o->count) < 0)
                goto bad_value;
            break;
        case 'r':
            if (produce_parse_double(optarg, 0.0, 1e9, &o->rate) < 0)
                goto bad_value;
            o->rate_set = 1;
            break;
        case OPT_MALFORMED:
            if (produce_parse_double(optarg, 0.0, 1.0, &o->malformed) < 0)
                goto bad_value;
            break;
        case OPT_SEED:
            if (produce_parse_u64(optarg, &o->seed) < 0)
                goto bad_value;
            break;
        case OPT_USERS:
            if (produce_parse_u64(optarg, &u) < 0 || u < 1 || u > PRODUCE_USERS_MAX)
                goto bad_value;
            o->users = (int)u;
            break;
        case OPT_FORMAT:
            if (ingest_format_parse(optarg, &o->format) < 0)
                goto bad_value;
            break;
        case OPT_SCHEMA_ID:
            if (produce_parse_u64(optarg, &u) < 0 || u > INT32_MAX)
                goto bad_value;
            o->schema_id = (int32_t)u;
            schema_id_set = 1;
            break;
        case OPT_SCHEMA:
            if (optarg[0] == '\0')
                goto bad_value;
            o->schema_path = optarg;
            break;
        case OPT_OUTPUT_DIR:
            if (optarg[0] == '\0')
                goto bad_value;
            o->output_dir = optarg;
            break;
        case OPT_HEADLINES:
            if (optarg[0] == '\0')
                goto bad_value;
            o->headlines = optarg;
            break;
        case OPT_OUTPUT: {
            event_file_format_t fmt;
            if (event_file_format_from_name(optarg, &fmt) < 0) {
                fprintf(stderr,
                        "vigil produce: --output %s: the name must end in .csv, .jsonl, .ndjson "
                        "or .avro\n",
                        optarg);
                return 2;
            }
            o->output = optarg;
            break;
        }
        case OPT_START_MS:
            /* Digits only, so epoch milliseconds from 1970 on; INT64_MAX / 2 leaves room for
             * the events after it. */
            if (produce_parse_u64(optarg, &u) < 0 || u > (uint64_t)INT64_MAX / 2)
                goto bad_value;
            o->start_ms = (int64_t)u;
            start_set = 1;
            break;
        case 'X': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || eq[1] == '\0')
                goto bad_value;
            o->x_args[o->n_x++] = optarg;
            break;
        }
        case 'h':
            produce_usage(stdout);
            return 1;
        default: /* getopt already said what was wrong */
            produce_usage(stderr);
            return 2;
        }
    }
    if (!o->topic) {
        static const char *const topics[INGEST_KIND_COUNT] = {"behavior-events", "news-articles",
                                                              "fraud-labels", "news-labels"};
        o->topic = topics[o->kind];
    }
    if (!schema_id_set)
        o->schema_id = (int32_t)o->kind + 1; /* ingest/schemas/1.avsc .. 4.avsc */
    if (optind < argc) {
        fprintf(stderr, "vigil produce: unexpected argument '%s'\n", argv[optind]);
        produce_usage(stderr);
        return 2;
    }
    if (!o->brokers) {
        const char *env = getenv("VIGIL_KAFKA_BOOTSTRAP_SERVERS");
        if (env && env[0] != '\0')
            o->brokers = env;
    }
    if (o->output) {
        const char *why = o->kind != INGEST_KIND_EVENT ? "writes events only (no --kind)"
                          : o->output_dir              ? "and --output-dir exclude each other"
                          : o->malformed > 0           ? "writes no malformed events"
                          : o->count == 0              ? "needs --count N of at least 1"
                          : o->rate_set && o->rate == 0
                              ? "needs a --rate above 0 (it sets the events' spacing)"
                              : NULL;
        if (why) {
            fprintf(stderr, "vigil produce: --output %s; see --help\n", why);
            return 2;
        }
        if (!o->rate_set)
            o->rate = PRODUCE_FILE_RATE;
        if ((double)o->count * 1000.0 / o->rate > 4e18) {
            fprintf(stderr,
                    "vigil produce: --output: --count %" PRIu64 " at --rate %g puts event "
                    "times past the year 100 million; see --help\n",
                    o->count, o->rate);
            return 2;
        }
        return 0;
    }
    if (start_set) {
        fprintf(stderr, "vigil produce: --start-ms goes with --output; see --help\n");
        return 2;
    }
    if (!o->brokers && !o->output_dir && !produce_x_has_key(o, "bootstrap.servers") &&
        !produce_x_has_key(o, "test.mock.num.brokers")) {
        fprintf(stderr, "vigil produce: no brokers: pass -b HOST:PORT or set "
                        "VIGIL_KAFKA_BOOTSTRAP_SERVERS\n");
        return 2;
    }
    return 0;

bad_value:
    /* Name the option as the user would know it; every option but -X has a long name. */
    for (int k = 0; longopts[k].name; k++)
        if (longopts[k].val == c) {
            fprintf(stderr, "vigil produce: invalid value '%s' for --%s; see --help\n", optarg,
                    longopts[k].name);
            return 2;
        }
    fprintf(stderr, "vigil produce: invalid value '%s' for -%c (want KEY=VALUE); see --help\n",
            optarg, c);
    return 2;
}

/* The reader schema: --schema, else the source tree (VIGIL_SOURCE_DIR, set by ctest), else the
 * installed copy, else the build's source tree (running from a build directory). */
static int produce_schema_resolve(const produce_opts_t *o, char *out, size_t outlen)
{
    const char *src = getenv("VIGIL_SOURCE_DIR");
    const char *name = ingest_kind_schema_name(o->kind);
    char installed[PATH_MAX];
    int n;

    snprintf(installed, sizeof installed, "%s/%s.avsc", VIGIL_DEFAULT_SCHEMA_DIR, name);
    if (o->schema_path)
        n = snprintf(out, outlen, "%s", o->schema_path);
    else if (src && src[0] != '\0')
        n = snprintf(out, outlen, "%s/ingest/schemas/%s.avsc", src, name);
    else if (access(installed, F_OK) == 0)
        n = snprintf(out, outlen, "%s", installed);
    else
        n = snprintf(out, outlen, "%s/%s.avsc", VIGIL_SOURCE_SCHEMA_DIR, name);
    return (n < 0 || (size_t)n >= outlen) ? -1 : 0;
}

static void produce_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    produce_stats_t *st = opaque;
    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        st->delivered++;
        return;
    }
    st->failed++;
    /* The first few reasons are enough; the count says the rest. */
    if (st->failed <= 5)
        log_error("message delivery failed", "partition=%" PRId32 " error=%s", m->partition,
                  rd_kafka_err2name(m->err));
}

static void produce_on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    produce_stats_t *st = opaque;
    char q[512];
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char fatal[512];
        rd_kafka_fatal_error(rk, fatal, sizeof fatal);
        log_error("kafka fatal error: stopping", "reason=\"%s\"", log_quote(fatal, q, sizeof q));
        st->fatal = 1;
        return;
    }
    log_warn("kafka error", "error=%s reason=\"%s\"", rd_kafka_err2name((rd_kafka_resp_err_t)err),
             log_quote(reason, q, sizeof q));
}

/* Called from librdkafka's threads; log_write is thread-safe. */
static void produce_on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    char q[1024];
    log_level_t l = level <= 3   ? LOG_ERROR
                    : level == 4 ? LOG_WARN
                    : level <= 6 ? LOG_INFO
                                 : LOG_DEBUG;
    (void)rk;
    log_write(l, "librdkafka", "facility=%s message=\"%s\"", fac, log_quote(buf, q, sizeof q));
}

static int produce_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                            size_t errlen)
{
    char kerr[512];
    if (rd_kafka_conf_set(conf, key, value, kerr, sizeof kerr) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka setting %s=%s: %s", key, value, kerr);
        return -1;
    }
    return 0;
}

/* Returns a producer, or NULL with err; a bad -X sets *usage so the caller exits 2. */
static rd_kafka_t *produce_kafka_new(const produce_opts_t *o, produce_stats_t *st, int *usage,
                                     char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk = NULL;
    char kerr[512];

    if (!conf) {
        snprintf(err, errlen, "out of memory creating the Kafka configuration");
        goto err;
    }
    /* Idempotence makes librdkafka's retries exactly-once per partition, so a retried batch never
     * shows up twice in a test's counts. */
    if ((o->brokers && produce_conf_set(conf, "bootstrap.servers", o->brokers, err, errlen) < 0) ||
        produce_conf_set(conf, "linger.ms", "5", err, errlen) < 0 ||
        produce_conf_set(conf, "batch.num.messages", "10000", err, errlen) < 0 ||
        produce_conf_set(conf, "batch.size", "1000000", err, errlen) < 0 ||
        produce_conf_set(conf, "acks", "all", err, errlen) < 0 ||
        produce_conf_set(conf, "enable.idempotence", "true", err, errlen) < 0)
        goto err;
    /* -X last, so the user can override any default above. */
    for (int k = 0; k < o->n_x; k++) {
        char key[256];
        const char *eq = strchr(o->x_args[k], '=');
        size_t klen = (size_t)(eq - o->x_args[k]);
        if (klen >= sizeof key) {
            snprintf(err, errlen, "-X %s: key is too long", o->x_args[k]);
            *usage = 1;
            goto err;
        }
        memcpy(key, o->x_args[k], klen);
        key[klen] = '\0';
        if (produce_conf_set(conf, key, eq + 1, err, errlen) < 0) {
            *usage = 1;
            goto err;
        }
    }
    rd_kafka_conf_set_opaque(conf, st);
    rd_kafka_conf_set_dr_msg_cb(conf, produce_on_delivery);
    rd_kafka_conf_set_error_cb(conf, produce_on_error);
    rd_kafka_conf_set_log_cb(conf, produce_on_log);

    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, kerr, sizeof kerr);
    if (!rk) {
        snprintf(err, errlen, "creating the Kafka producer: %s", kerr);
        goto err;
    }
    return rk; /* rd_kafka_new took ownership of conf */

err:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return NULL;
}

static uint64_t produce_clock_ns(clockid_t clock)
{
    struct timespec ts;
    /* Cannot fail for CLOCK_MONOTONIC/CLOCK_REALTIME with a valid pointer. */
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Sleeps until the absolute monotonic time target_ns, in slices of at most 100 ms so a signal
 * that lands on one of librdkafka's threads still stops us promptly; serves delivery reports on
 * the way. Returns 0, or -1 when asked to stop. */
static int produce_wait_until(rd_kafka_t *rk, uint64_t target_ns)
{
    for (;;) {
        rd_kafka_poll(rk, 0);
        if (produce_stop)
            return -1;
        uint64_t now = produce_clock_ns(CLOCK_MONOTONIC);
        if (now >= target_ns)
            return 0;
        uint64_t wake = target_ns - now > 100000000u ? now + 100000000u : target_ns;
        struct timespec ts = {.tv_sec = (time_t)(wake / 1000000000u),
                              .tv_nsec = (long)(wake % 1000000000u)};
        int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (rc != 0 && rc != EINTR) {
            log_error("clock_nanosleep failed", "error=\"%s\"", strerror(rc));
            return -1;
        }
    }
}

/* --output-dir: one file per message value, named by its index so a shell glob keeps order. */
static int produce_write_file(const char *dir, uint64_t i, const void *value, size_t len, char *err,
                              size_t errlen)
{
    char path[PATH_MAX];
    FILE *f;
    snprintf(path, sizeof path, "%s/%08" PRIu64 ".avro", dir, i);
    f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "cannot create %.900s: %s", path, strerror(errno));
        return -1;
    }
    if (fwrite(value, 1, len, f) != len) {
        snprintf(err, errlen, "cannot write %.900s: %s", path, strerror(errno));
        fclose(f);
        return -1;
    }
    if (fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %.900s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Hands one message to librdkafka, which copies it; waits while the local queue is full.
 * Returns RD_KAFKA_RESP_ERR__QUEUE_FULL only when a signal interrupted that wait. */
static rd_kafka_resp_err_t produce_send(rd_kafka_t *rk, const char *topic, const char *key,
                                        const void *value, size_t len)
{
    for (;;) {
        rd_kafka_resp_err_t e =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE((void *)value, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL || produce_stop)
            return e;
        rd_kafka_poll(rk, 100);
    }
}

/* --output: count events of the seed, with their ground truth, into an event file; simulated
 * event times. Prints the summary line; returns the exit status. */
static int produce_to_file(const produce_opts_t *o)
{
    produce_gen_t *g = NULL;
    event_file_writer_t *w = NULL;
    event_file_format_t fmt;
    ingest_event_t ev = {0};
    uint64_t written = 0, fraud = 0, per_pattern[PRODUCE_FRAUD_PATTERNS] = {0};
    char err[1024], q[1024];
    int status = 1;

    if (event_file_format_from_name(o->output, &fmt) < 0) /* checked by the parser */
        return 2;
    g = produce_gen_new(o->seed, o->users, err, sizeof err);
    if (!g) {
        log_error("cannot create the event generator", "error=\"%s\"", log_quote(err, q, sizeof q));
        return 1;
    }
    w = event_file_writer_new(o->output, fmt, err, sizeof err);
    if (!w) {
        log_error("cannot create the output file", "error=\"%s\"", log_quote(err, q, sizeof q));
        goto out;
    }
    log_info("writing events",
             "file=\"%s\" count=%" PRIu64 " seed=%" PRIu64 " users=%d start_ms=%" PRId64 " rate=%g",
             log_quote(o->output, q, sizeof q), o->count, o->seed, o->users, o->start_ms, o->rate);
    for (uint64_t i = 0; i < o->count; i++) {
        int64_t t = o->start_ms + (int64_t)((double)i * 1000.0 / o->rate);
        produce_fraud_pattern_t p = produce_gen_event_pattern(g, i, NULL);
        produce_gen_event(g, i, t, &ev);
        if (event_file_write(w, &ev, p != PRODUCE_FRAUD_NONE, err, sizeof err) < 0) {
            log_error("cannot write an event", "error=\"%s\"", log_quote(err, q, sizeof q));
            goto out;
        }
        written++;
        fraud += p != PRODUCE_FRAUD_NONE;
        per_pattern[p]++;
    }
    int rc = event_file_writer_close(w, err, sizeof err);
    w = NULL;
    if (rc < 0) {
        log_error("cannot write the output file", "error=\"%s\"", log_quote(err, q, sizeof q));
        goto out;
    }
    log_info("wrote events",
             "file=\"%s\" events=%" PRIu64 " fraud=%" PRIu64 " card_testing=%" PRIu64
             " account_takeover=%" PRIu64 " amount_spike=%" PRIu64,
             log_quote(o->output, q, sizeof q), written, fraud,
             per_pattern[PRODUCE_FRAUD_CARD_TESTING], per_pattern[PRODUCE_FRAUD_ACCOUNT_TAKEOVER],
             per_pattern[PRODUCE_FRAUD_AMOUNT_SPIKE]);
    status = 0;

out:
    if (w) {
        /* Already failing: the file is incomplete whatever close says. */
        event_file_writer_close(w, err, sizeof err);
        if (remove(o->output) != 0)
            log_warn("cannot remove the incomplete output file", "error=\"%s\"", strerror(errno));
    }
    printf("produced=%" PRIu64 " good=%" PRIu64 " malformed=0 delivered=%" PRIu64 " failed=%" PRIu64
           " fraud=%" PRIu64 "\n",
           written, written, status == 0 ? written : 0, status == 0 ? 0 : written, fraud);
    if (fflush(stdout) != 0) {
        log_error("cannot write the summary to stdout", "error=\"%s\"", strerror(errno));
        status = 1;
    }
    produce_gen_free(g);
    return status;
}

int produce_main(int argc, char **argv)
{
    produce_opts_t o = {0};
    produce_stats_t st = {0};
    produce_gen_t *g = NULL;
    ingest_avro_t *enc = NULL;
    rd_kafka_t *rk = NULL;
    ingest_record_t rec = {0};
    struct sigaction sa, old_int, old_term;
    int signals_set = 0;
    int status = 1;
    int usage = 0;
    char err[1024], q[1024];
    char schema[PATH_MAX], schema_dir[PATH_MAX];
    unsigned char buf[4096];
    uint64_t produced = 0, good = 0, malformed = 0;

    int rc = produce_parse_args(argc, argv, &o);
    if (rc != 0) {
        status = rc == 1 ? 0 : 2;
        goto out;
    }
    if (o.output) {
        status = produce_to_file(&o);
        goto out;
    }

    if (produce_schema_resolve(&o, schema, sizeof schema) < 0) {
        fprintf(stderr, "vigil produce: schema path is too long\n");
        status = 2;
        goto out;
    }
    /* dirname may modify its argument, hence the copy. */
    memcpy(schema_dir, schema, sizeof schema_dir);
    enc = ingest_avro_new(o.kind, o.format, schema, dirname(schema_dir), err, sizeof err);
    if (!enc) {
        fprintf(stderr, "vigil produce: %s (use --schema FILE)\n", err);
        status = 2;
        goto out;
    }
    g = produce_gen_new(o.seed, o.users, err, sizeof err);
    if (!g) {
        log_error("cannot create the event generator", "error=\"%s\"", log_quote(err, q, sizeof q));
        goto out;
    }
    if (o.headlines && produce_gen_load_headlines(g, o.headlines, err, sizeof err) != 0) {
        fprintf(stderr, "vigil produce: %s\n", err);
        status = 2;
        goto out;
    }
    if (!o.output_dir)
        rk = produce_kafka_new(&o, &st, &usage, err, sizeof err);
    if (!rk && !o.output_dir) {
        if (usage) {
            fprintf(stderr, "vigil produce: %s\n", err);
            status = 2;
        } else {
            log_error("cannot start the producer", "error=\"%s\"", log_quote(err, q, sizeof q));
        }
        goto out;
    }

    /* No SA_RESTART: a signal should cut a sleep short. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = produce_on_signal;
    sigemptyset(&sa.sa_mask);
    produce_stop = 0;
    if (sigaction(SIGINT, &sa, &old_int) < 0 || sigaction(SIGTERM, &sa, &old_term) < 0) {
        log_error("cannot install signal handlers", "error=\"%s\"", strerror(errno));
        goto out;
    }
    signals_set = 1;

    log_info("producing",
             "kind=%s topic=%s count=%" PRIu64 " rate=%g malformed=%g seed=%" PRIu64
             " users=%d schema=\"%s\"",
             ingest_kind_schema_name(o.kind), o.topic, o.count, o.rate, o.malformed, o.seed,
             o.users, log_quote(schema, q, sizeof q));

    uint64_t start_ns = produce_clock_ns(CLOCK_MONOTONIC);
    uint64_t last_log_ns = start_ns, last_log_produced = 0;
    int loop_failed = 0;
    for (uint64_t i = 0; (o.count == 0 || i < o.count) && !produce_stop && !st.fatal; i++) {
        /* An absolute schedule: a late message is followed by earlier ones, so the average
         * rate holds instead of drifting by every wake-up's latency. */
        if (o.rate > 0 && rk &&
            produce_wait_until(rk, start_ns + (uint64_t)((double)i * 1e9 / o.rate)) < 0)
            break;

        int64_t now_ms = (int64_t)(produce_clock_ns(CLOCK_REALTIME) / 1000000u);
        int bad = produce_gen_is_malformed(g, i, o.malformed);
        long len;
        produce_gen_record(g, o.kind, i, now_ms, &rec);
        if (bad)
            len = produce_gen_malformed(g, enc, o.schema_id, i, &rec, buf, sizeof buf, err,
                                        sizeof err);
        else
            len = ingest_avro_encode(enc, &rec, o.schema_id, buf, sizeof buf, err, sizeof err);
        if (len < 0) {
            log_error("cannot encode record", "key=%s error=\"%s\"", produce_record_key(&rec),
                      log_quote(err, q, sizeof q));
            loop_failed = 1;
            break;
        }

        if (o.output_dir) {
            if (produce_write_file(o.output_dir, i, buf, (size_t)len, err, sizeof err) != 0) {
                log_error("cannot write message file", "error=\"%s\"", log_quote(err, q, sizeof q));
                loop_failed = 1;
                break;
            }
            produced++;
            st.delivered++;
            if (bad)
                malformed++;
            else
                good++;
            continue;
        }
        rd_kafka_resp_err_t e =
            produce_send(rk, o.topic, produce_record_key(&rec), buf, (size_t)len);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break; /* interrupted while waiting for room: this message was not produced */
        produced++;
        if (bad)
            malformed++;
        else
            good++;
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_error("cannot produce message: stopping", "topic=%s error=%s reason=\"%s\"",
                      o.topic, rd_kafka_err2name(e), log_quote(rd_kafka_err2str(e), q, sizeof q));
            st.failed++;
            break;
        }
        rd_kafka_poll(rk, 0);

        uint64_t now_ns = produce_clock_ns(CLOCK_MONOTONIC);
        if (now_ns - last_log_ns >= 1000000000u) {
            double secs = (double)(now_ns - last_log_ns) / 1e9;
            log_info("progress",
                     "produced=%" PRIu64 " delivered=%" PRIu64 " failed=%" PRIu64 " rate=%.0f",
                     produced, st.delivered, st.failed,
                     (double)(produced - last_log_produced) / secs);
            last_log_ns = now_ns;
            last_log_produced = produced;
        }
    }
    if (produce_stop)
        log_info("interrupted: flushing what was produced", "produced=%" PRIu64, produced);

    rd_kafka_resp_err_t fe = rk ? rd_kafka_flush(rk, 60000) : RD_KAFKA_RESP_ERR_NO_ERROR;
    int left = rk ? rd_kafka_outq_len(rk) : 0;
    if (fe != RD_KAFKA_RESP_ERR_NO_ERROR || left > 0) {
        log_error("messages left undelivered after 60 s flush: check the brokers",
                  "in_queue=%d error=%s", left, rd_kafka_err2name(fe));
        /* Purged messages come back as failed delivery reports, so the summary counts them. */
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(rk, 5000);
    }
    uint64_t reported = st.delivered + st.failed;
    uint64_t undelivered = produced > reported ? produced - reported : 0;

    printf("produced=%" PRIu64 " good=%" PRIu64 " malformed=%" PRIu64 " delivered=%" PRIu64
           " failed=%" PRIu64 "\n",
           produced, good, malformed, st.delivered, st.failed);
    if (fflush(stdout) != 0) {
        log_error("cannot write the summary to stdout", "error=\"%s\"", strerror(errno));
        goto out;
    }
    if (undelivered > 0)
        log_error("messages without a delivery report", "count=%" PRIu64, undelivered);
    status = (loop_failed || st.fatal || st.failed > 0 || undelivered > 0 || left > 0) ? 1 : 0;

out:
    if (signals_set) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    if (rk)
        rd_kafka_destroy(rk);
    produce_gen_free(g);
    if (enc)
        ingest_avro_free(enc);
    free(o.x_args);
    return status;
}
