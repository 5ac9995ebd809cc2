/* Fraud: the episodes of each window of indices (card testing, account takeover, amount spikes;
 * docs/synthetic-data.md), the events of their steps, and the ground truth that follows from
 * them (produce_gen_event_pattern, produce_gen_event_is_fraud, fraud labels). A window's plan is
 * drawn from one stream seeded with (seed, window), and kept until an event of another window is
 * asked for. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "produce_internal.h"

/* Where each kind of fraudulent purchase happens. */
static const uint8_t produce_cats_card_test[] = {PRODUCE_CAT_DIGITAL_GOODS, PRODUCE_CAT_GIFT_CARDS,
                                                 PRODUCE_CAT_GAMING, PRODUCE_CAT_ENTERTAINMENT};
static const uint8_t produce_cats_cash_out[] = {PRODUCE_CAT_ELECTRONICS, PRODUCE_CAT_GIFT_CARDS};
static const uint8_t produce_cats_takeover[] = {PRODUCE_CAT_ELECTRONICS, PRODUCE_CAT_TRAVEL,
                                                PRODUCE_CAT_GAMING, PRODUCE_CAT_GIFT_CARDS};
static const uint8_t produce_cats_spike[] = {PRODUCE_CAT_ELECTRONICS, PRODUCE_CAT_TRAVEL,
                                             PRODUCE_CAT_GIFT_CARDS, PRODUCE_CAT_APPAREL,
                                             PRODUCE_CAT_GAMING};

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

const produce_step_t *produce_step_of(produce_gen_t *g, uint64_t i)
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

void produce_gen_fraud(produce_gen_t *g, uint64_t i, const produce_step_t *s, ingest_event_t *ev)
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

/* Label i is about event i of the same seed (the event_id "e<seed>-<i>" produce_gen_event
 * writes) and says its ground truth. */
void produce_gen_fraud_label(produce_gen_t *g, uint64_t i, int64_t now_ms, ingest_fraud_label_t *l)
{
    static const char *const sources[] = {"chargeback", "analyst", "customer_report"};
    produce_rng_t r = produce_rng_for(g->seed, PRODUCE_STREAM_FRAUD_LABEL, i);

    snprintf(g->event_id, sizeof g->event_id, "e%" PRIu64 "-%" PRIu64, g->seed, i);
    l->event_id = g->event_id;
    l->is_fraud = produce_gen_event_is_fraud(g, i);
    l->label_time_ms = now_ms;
    l->label_source = produce_rng_below(&r, 10) == 0 ? NULL : sources[produce_rng_below(&r, 3)];
}
