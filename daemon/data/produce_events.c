/* Events: produce_gen_event, the legitimate events, and the fields every event has (the fraud
 * events of produce_fraud.c fill theirs with the same helpers). A legitimate event is a
 * uniformly chosen user doing something ordinary, drawn from the stream of (seed, i), with the
 * noise that makes fraud hard to tell from it: trips abroad and new devices per user and block
 * of indices, large purchases. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "produce_internal.h"

/* Merchants a user goes back to; each is in one of the user's categories. */
#define PRODUCE_REGULAR_MERCHANTS 6

/* Legitimate noise: per user and per block of PRODUCE_BLOCK indices, a trip abroad or a new
 * device, in per mille. */
#define PRODUCE_BLOCK_BITS 16
#define PRODUCE_TRIP_PER_MILLE 30
#define PRODUCE_NEW_DEVICE_PER_MILLE 20
/* A legitimate large purchase (5-30x the user's typical spend), per 10,000 transactions. */
#define PRODUCE_BIG_PURCHASE_PER_10K 50

static const uint8_t produce_cats_big[] = {PRODUCE_CAT_ELECTRONICS, PRODUCE_CAT_TRAVEL,
                                           PRODUCE_CAT_APPAREL};
static const uint8_t produce_cats_trip[] = {PRODUCE_CAT_RESTAURANTS, PRODUCE_CAT_TRAVEL,
                                            PRODUCE_CAT_ENTERTAINMENT};

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

void produce_fill_common(produce_gen_t *g, uint32_t uidx, uint32_t device, uint32_t ip,
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

void produce_fill_no_amount(ingest_event_t *ev)
{
    ev->has_amount = 0;
    ev->amount = 0.0;
    ev->currency = NULL;
    ev->merchant_id = NULL;
    ev->merchant_category = NULL;
}

void produce_fill_purchase(produce_gen_t *g, uint32_t m, double usd, unsigned c, ingest_event_t *ev)
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
