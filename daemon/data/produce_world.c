/* The generator's world: the cities users live in, the merchant categories and channels, and the
 * seeded users and merchants that produce_gen_new builds (each from its own PRNG stream, so user
 * k is the same whatever the user count). The helpers below pick from that world for the events
 * of produce_events.c and produce_fraud.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "produce_internal.h"

const produce_city_t produce_cities[] = {
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
_Static_assert(sizeof produce_cities / sizeof produce_cities[0] == PRODUCE_N_CITIES,
               "PRODUCE_N_CITIES is the number of cities");

const produce_category_t produce_categories[PRODUCE_N_CATEGORIES] = {
    {"grocery", 1.0},       {"electronics", 3.0}, {"travel", 4.0},        {"fuel", 1.2},
    {"restaurants", 0.8},   {"gaming", 0.5},      {"apparel", 1.5},       {"pharmacy", 0.6},
    {"entertainment", 0.6}, {"utilities", 2.0},   {"digital_goods", 0.3}, {"gift_cards", 1.0},
};

const char *const produce_channels[4] = {"pos", "web", "mobile", "atm"};

uint32_t produce_random_ip(produce_rng_t *r)
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
        errbuf_printf(err, errlen, "user count %d is out of range: use 1..%d", n_users,
                      PRODUCE_USERS_MAX);
        goto err;
    }
    g = calloc(1, sizeof *g);
    if (!g) {
        errbuf_printf(err, errlen, "out of memory allocating the event generator");
        goto err;
    }
    g->seed = seed;
    g->n_users = n_users;
    g->plan_window = UINT64_MAX;
    g->slot = calloc(PRODUCE_WINDOW, sizeof *g->slot);
    g->users = calloc((size_t)n_users, sizeof *g->users);
    if (!g->slot || !g->users) {
        errbuf_printf(err, errlen, "out of memory allocating %d users: use a smaller --users",
                      n_users);
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

uint32_t produce_pick_merchant(const produce_gen_t *g, produce_rng_t *r, unsigned cat)
{
    uint32_t n = (uint32_t)(g->cat_first[cat + 1] - g->cat_first[cat]);
    if (n == 0)
        return produce_rng_below(r, PRODUCE_N_MERCHANTS);
    return g->by_category[g->cat_first[cat] + produce_rng_below(r, n)];
}

unsigned produce_user_category(const produce_user_t *u, unsigned k)
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

uint8_t produce_other_city(produce_rng_t *r, unsigned home, int far)
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
