/* Behavior features: the spec compiler, the per-event feature computation over entity stores,
 * checkpoints of the state, and normalisation (see behavior_features.h; docs/features.md for the
 * user's side: the spec language and every aggregate's exact semantics). */
#define _GNU_SOURCE /* sincos */
#include "behavior_features.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "entity_store.h"
#include "errbuf.h"

#define SPEC_ENTITIES_MAX 8
#define SPEC_WINDOWS_MAX 4 /* distinct window lengths per entity type */
#define SPEC_MEMBERS_MAX 8 /* sums, and count_ifs, per window */
#define SPEC_ITEMS_MAX 256
#define SPEC_WIDTH_MAX 4096
#define SPEC_NAME_MAX 64
#define SPEC_TOKENS_MAX 16
#define WINDOW_BUCKETS 6 /* a window of length W is 6 buckets of W/6 (docs/features.md) */
#define NOVELTY_K_MAX 16
#define ZSCORE_LIMIT 100.0      /* |z| is clipped here so one outlier cannot dominate the input */
#define GEO_MIN_DT_MS 60000     /* speeds are computed over at least a minute */
#define STATE_MAGIC 0x53464756u /* "VGFS" */
#define STATE_VERSION 1u

/* The built-in spec for BehaviorEvent: what docs/features.md explains line by line. */
const features_field_t features_behavior_fields[FEATURES_BF_COUNT] = {
    [FEATURES_BF_EVENT_ID] = {"event_id", FEATURES_FIELD_STRING},
    [FEATURES_BF_EVENT_TYPE] = {"event_type", FEATURES_FIELD_STRING},
    [FEATURES_BF_USER_ID] = {"user_id", FEATURES_FIELD_STRING},
    [FEATURES_BF_ACCOUNT_ID] = {"account_id", FEATURES_FIELD_STRING},
    [FEATURES_BF_DEVICE_ID] = {"device_id", FEATURES_FIELD_STRING},
    [FEATURES_BF_IP] = {"ip", FEATURES_FIELD_STRING},
    [FEATURES_BF_AMOUNT] = {"amount", FEATURES_FIELD_NUMBER},
    [FEATURES_BF_CURRENCY] = {"currency", FEATURES_FIELD_STRING},
    [FEATURES_BF_MERCHANT_ID] = {"merchant_id", FEATURES_FIELD_STRING},
    [FEATURES_BF_MERCHANT_CATEGORY] = {"merchant_category", FEATURES_FIELD_STRING},
    [FEATURES_BF_COUNTRY] = {"country", FEATURES_FIELD_STRING},
    [FEATURES_BF_LATITUDE] = {"latitude", FEATURES_FIELD_NUMBER},
    [FEATURES_BF_LONGITUDE] = {"longitude", FEATURES_FIELD_NUMBER},
    [FEATURES_BF_CHANNEL] = {"channel", FEATURES_FIELD_STRING},
};

const char features_default_spec[] =
    "# vigil's built-in feature spec for BehaviorEvent (docs/features.md)\n"
    "entity user user_id\n"
    "entity device device_id\n"
    "entity merchant merchant_id\n"
    "entity ip ip\n"
    "numeric amount.log amount log clip=-20:20\n"
    "numeric has_amount amount present\n"
    "categorical event_type event_type 8\n"
    "categorical channel channel 8\n"
    "categorical merchant_category merchant_category 16\n"
    "categorical currency currency 8\n"
    "hour_of_day\n"
    "count user 1m 1h 24h\n"
    "sum user amount 1m 1h 24h\n"
    "count_if user event_type=LOGIN_FAILED 1h 24h\n"
    "since_last user\n"
    "geo_velocity user latitude longitude\n"
    "zscore user amount\n"
    "novelty user device_id 4\n"
    "novelty user merchant_id 4\n"
    "novelty user country 3\n"
    "count device 1h 24h\n"
    "since_last device\n"
    "count merchant 1h 24h\n"
    "count ip 1h 24h\n"
    "since_last ip\n";

typedef enum item_kind {
    ITEM_NUMERIC,
    ITEM_CATEGORICAL,
    ITEM_HOUR,
    ITEM_COUNT,
    ITEM_SUM,
    ITEM_COUNT_IF,
    ITEM_SINCE_LAST,
    ITEM_GEO,
    ITEM_ZSCORE,
    ITEM_NOVELTY,
} item_kind_t;

/* One window length of an entity type: WINDOW_BUCKETS buckets, each holding a count, the sums
 * and the conditional counts that the spec asks for at this length. */
typedef struct spec_window {
    int64_t span_ms, width_ms; /* W and W / WINDOW_BUCKETS (rounded up) */
    double inv_width;          /* 1 / width_ms, for bucket_of */
    char label[16];            /* as written: "1h" */
    int n_sums, n_ifs;
    int sum_field[SPEC_MEMBERS_MAX];
    int if_field[SPEC_MEMBERS_MAX];
    char *if_value[SPEC_MEMBERS_MAX];
    size_t counts_off; /* uint16_t [WINDOW_BUCKETS] */
    size_t sums_off;   /* float [n_sums][WINDOW_BUCKETS] */
    size_t ifs_off;    /* uint16_t [n_ifs][WINDOW_BUCKETS] */
} spec_window_t;

typedef struct spec_entity {
    char name[SPEC_NAME_MAX];
    int key_field;
    spec_window_t win[SPEC_WINDOWS_MAX];
    int n_win;
    size_t slot_size;
} spec_entity_t;

typedef struct spec_item {
    item_kind_t kind;
    int entity;        /* for aggregates */
    int field, field2; /* input fields (field2: longitude) */
    int window, member;
    /* numeric */
    int log, present, has_clip;
    double lo, hi, missing;
    /* categorical */
    uint32_t buckets;
    /* novelty */
    int k;
    size_t off;  /* payload block of geo, zscore (mean, m2), novelty */
    size_t off2; /* zscore: its count */
    size_t col;  /* first output column */
} spec_item_t;

struct features_spec {
    spec_entity_t ent[SPEC_ENTITIES_MAX];
    int n_ent;
    spec_item_t items[SPEC_ITEMS_MAX];
    int n_items;
    char **columns;
    size_t width;
    uint64_t hash;
};

struct features_state {
    const features_spec_t *spec; /* borrowed: outlives the state */
    entity_store_t *store[SPEC_ENTITIES_MAX];
    uint64_t late_dropped;
};

/* Geo block: where and when the entity was last seen located. */
typedef struct geo_block {
    int64_t last_ms_plus1; /* 0: never located */
    float lat, lon;
} geo_block_t;

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define FNV_OFFSET 0xcbf29ce484222325ull

/* --- spec compiler ----------------------------------------------------------------------- */

typedef struct parser {
    features_spec_t *spec;
    const features_field_t *fields;
    size_t n_fields;
    const char *origin;
    int line;
    char *err;
    size_t errlen;
    size_t payload[SPEC_ENTITIES_MAX][3]; /* bytes of 8-, 4- and 2-byte aligned blocks */
    int spare_used[SPEC_ENTITIES_MAX];    /* the record header's spare word is taken */
} parser_t;

#define PERR(p, ...)                                                                               \
    do {                                                                                           \
        char m_[400];                                                                              \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                      \
        errbuf_printf((p)->err, (p)->errlen, "%s:%d: %s", (p)->origin, (p)->line, m_);             \
        return -1;                                                                                 \
    } while (0)

static int parse_field(parser_t *p, const char *name, features_field_type_t want, int any_type,
                       int *out)
{
    for (size_t i = 0; i < p->n_fields; i++) {
        if (strcmp(p->fields[i].name, name) != 0)
            continue;
        if (!any_type && p->fields[i].type != want)
            PERR(p, "field %s is a %s, this needs a %s", name,
                 p->fields[i].type == FEATURES_FIELD_NUMBER ? "number" : "string",
                 want == FEATURES_FIELD_NUMBER ? "number" : "string");
        *out = (int)i;
        return 0;
    }
    PERR(p, "no input field named %s (fields come from the BehaviorEvent reader schema)", name);
}

static int parse_entity_ref(parser_t *p, const char *name, int *out)
{
    for (int e = 0; e < p->spec->n_ent; e++)
        if (strcmp(p->spec->ent[e].name, name) == 0) {
            *out = e;
            return 0;
        }
    PERR(p, "unknown entity %s (declare it first: entity %s FIELD)", name, name);
}

static int parse_double(parser_t *p, const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(*out))
        PERR(p, "not a number: %s", s);
    return 0;
}

/* "90s", "1m", "1h", "24h", "7d" */
static int parse_duration(parser_t *p, const char *s, int64_t *ms)
{
    char *end;
    long long v;
    int64_t unit;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0 || strlen(end) != 1)
        PERR(p, "not a window length: %s (write e.g. 90s, 1m, 1h, 24h, 7d)", s);
    switch (*end) {
    case 's':
        unit = 1000;
        break;
    case 'm':
        unit = 60000;
        break;
    case 'h':
        unit = 3600000;
        break;
    case 'd':
        unit = 86400000;
        break;
    default:
        PERR(p, "not a window length: %s (units s, m, h, d)", s);
    }
    if (v > 366LL * 86400000 / unit)
        PERR(p, "window %s is longer than a year", s);
    *ms = v * unit;
    if (*ms < 6000)
        PERR(p, "window %s is shorter than 6 s", s);
    return 0;
}

static int add_column(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int add_column(parser_t *p, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    features_spec_t *s = p->spec;
    if (s->width >= SPEC_WIDTH_MAX)
        PERR(p, "more than %d feature columns", SPEC_WIDTH_MAX);
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < s->width; i++)
        if (strcmp(s->columns[i], name) == 0)
            PERR(p, "feature %s is defined twice", name);
    if (s->width % 64 == 0) {
        char **c = realloc(s->columns, (s->width + 64) * sizeof(*c));
        if (!c)
            PERR(p, "out of memory");
        s->columns = c;
    }
    if (!(s->columns[s->width] = strdup(name)))
        PERR(p, "out of memory");
    s->width++;
    return 0;
}

/* Reserves a payload block of an entity type; offsets are fixed up once all lines are read
 * (8-byte blocks first, then 4-byte, then 2-byte, so everything stays aligned). The returned
 * value encodes the class in its top bits until then. */
static size_t reserve(parser_t *p, int e, int cls, size_t bytes)
{
    size_t off = p->payload[e][cls];
    p->payload[e][cls] += bytes;
    return off | ((size_t)cls << 56);
}

static int window_of(parser_t *p, int e, const char *tok, int *out)
{
    spec_entity_t *ent = &p->spec->ent[e];
    int64_t ms;
    if (parse_duration(p, tok, &ms) != 0)
        return -1;
    for (int w = 0; w < ent->n_win; w++)
        if (ent->win[w].span_ms == ms) {
            *out = w;
            return 0;
        }
    if (ent->n_win == SPEC_WINDOWS_MAX)
        PERR(p, "entity %s has more than %d window lengths", ent->name, SPEC_WINDOWS_MAX);
    spec_window_t *win = &ent->win[ent->n_win];
    win->span_ms = ms;
    win->width_ms = (ms + WINDOW_BUCKETS - 1) / WINDOW_BUCKETS;
    win->inv_width = 1.0 / (double)win->width_ms;
    snprintf(win->label, sizeof win->label, "%s", tok);
    *out = ent->n_win++;
    return 0;
}

static spec_item_t *new_item(parser_t *p, item_kind_t kind)
{
    features_spec_t *s = p->spec;
    if (s->n_items == SPEC_ITEMS_MAX) {
        errbuf_printf(p->err, p->errlen, "%s:%d: more than %d feature lines", p->origin, p->line,
                      SPEC_ITEMS_MAX);
        return NULL;
    }
    spec_item_t *it = &s->items[s->n_items++];
    memset(it, 0, sizeof(*it));
    it->kind = kind;
    it->entity = it->field = it->field2 = -1;
    it->col = s->width;
    return it;
}

/* count/sum/count_if ENTITY [FIELD | FIELD=VALUE] WINDOW...: one item per window. */
static int parse_windowed(parser_t *p, item_kind_t kind, char **tok, int n)
{
    int e, field = -1, first = kind == ITEM_COUNT ? 2 : 3;
    const char *value = NULL;
    char fname[SPEC_NAME_MAX] = "";
    if (n <= first)
        PERR(p, "%s needs an entity, %sat least one window", tok[0],
             kind == ITEM_SUM        ? "a number field and "
             : kind == ITEM_COUNT_IF ? "FIELD=VALUE and "
                                     : "");
    if (parse_entity_ref(p, tok[1], &e) != 0)
        return -1;
    if (kind == ITEM_SUM && parse_field(p, tok[2], FEATURES_FIELD_NUMBER, 0, &field) != 0)
        return -1;
    if (kind == ITEM_COUNT_IF) {
        char *eq = strchr(tok[2], '=');
        if (!eq || eq == tok[2] || !eq[1])
            PERR(p, "count_if needs FIELD=VALUE, not %s", tok[2]);
        if ((size_t)(eq - tok[2]) >= sizeof fname)
            PERR(p, "field name in %s is longer than %zu characters", tok[2], sizeof fname - 1);
        snprintf(fname, sizeof fname, "%.*s", (int)(eq - tok[2]), tok[2]);
        value = eq + 1;
        if (parse_field(p, fname, FEATURES_FIELD_STRING, 0, &field) != 0)
            return -1;
    }
    for (int i = first; i < n; i++) {
        int w;
        spec_item_t *it;
        if (window_of(p, e, tok[i], &w) != 0 || !(it = new_item(p, kind)))
            return -1;
        spec_window_t *win = &p->spec->ent[e].win[w];
        it->entity = e;
        it->field = field;
        it->window = w;
        if (kind == ITEM_SUM) {
            if (win->n_sums == SPEC_MEMBERS_MAX)
                PERR(p, "more than %d sums over %s", SPEC_MEMBERS_MAX, win->label);
            it->member = win->n_sums;
            win->sum_field[win->n_sums++] = field;
            if (add_column(p, "%s.sum.%s.%s", p->spec->ent[e].name, tok[2], tok[i]) != 0)
                return -1;
        } else if (kind == ITEM_COUNT_IF) {
            if (win->n_ifs == SPEC_MEMBERS_MAX)
                PERR(p, "more than %d count_ifs over %s", SPEC_MEMBERS_MAX, win->label);
            it->member = win->n_ifs;
            win->if_field[win->n_ifs] = field;
            if (!(win->if_value[win->n_ifs] = strdup(value)))
                PERR(p, "out of memory");
            win->n_ifs++;
            if (add_column(p, "%s.count_if.%s.%s", p->spec->ent[e].name, tok[2], tok[i]) != 0)
                return -1;
        } else if (add_column(p, "%s.count.%s", p->spec->ent[e].name, tok[i]) != 0) {
            return -1;
        }
    }
    return 0;
}

static int parse_line(parser_t *p, char **tok, int n)
{
    features_spec_t *s = p->spec;
    const char *d = tok[0];
    spec_item_t *it;
    int e;

    if (strcmp(d, "entity") == 0) {
        if (n != 3)
            PERR(p, "entity takes NAME FIELD");
        if (strlen(tok[1]) >= SPEC_NAME_MAX || strchr(tok[1], '.'))
            PERR(p, "bad entity name %s (no dots, under %d characters)", tok[1], SPEC_NAME_MAX);
        for (int i = 0; i < s->n_ent; i++)
            if (strcmp(s->ent[i].name, tok[1]) == 0)
                PERR(p, "entity %s declared twice", tok[1]);
        if (s->n_ent == SPEC_ENTITIES_MAX)
            PERR(p, "more than %d entity types", SPEC_ENTITIES_MAX);
        spec_entity_t *ent = &s->ent[s->n_ent];
        if (parse_field(p, tok[2], FEATURES_FIELD_STRING, 0, &ent->key_field) != 0)
            return -1;
        snprintf(ent->name, sizeof ent->name, "%s", tok[1]);
        s->n_ent++;
        return 0;
    }
    if (strcmp(d, "numeric") == 0) {
        if (n < 3 || !(it = new_item(p, ITEM_NUMERIC)))
            PERR(p, "numeric takes NAME FIELD [log] [clip=LO:HI] [missing=V] [present]");
        if (parse_field(p, tok[2], FEATURES_FIELD_NUMBER, 0, &it->field) != 0)
            return -1;
        for (int i = 3; i < n; i++) {
            if (strcmp(tok[i], "log") == 0) {
                it->log = 1;
            } else if (strcmp(tok[i], "present") == 0) {
                it->present = 1;
            } else if (strncmp(tok[i], "clip=", 5) == 0) {
                char *colon = strchr(tok[i] + 5, ':');
                if (!colon)
                    PERR(p, "clip takes LO:HI, not %s", tok[i] + 5);
                *colon = '\0';
                if (parse_double(p, tok[i] + 5, &it->lo) != 0 ||
                    parse_double(p, colon + 1, &it->hi) != 0)
                    return -1;
                if (it->lo > it->hi)
                    PERR(p, "clip bounds reversed");
                it->has_clip = 1;
            } else if (strncmp(tok[i], "missing=", 8) == 0) {
                if (parse_double(p, tok[i] + 8, &it->missing) != 0)
                    return -1;
            } else {
                PERR(p, "unknown numeric option %s (log, clip=LO:HI, missing=V, present)", tok[i]);
            }
        }
        if (it->present && (it->log || it->has_clip))
            PERR(p, "present is a 0/1 column: log and clip do not apply");
        return add_column(p, "%s", tok[1]);
    }
    if (strcmp(d, "categorical") == 0) {
        char *end;
        long b;
        if (n != 4 || !(it = new_item(p, ITEM_CATEGORICAL)))
            PERR(p, "categorical takes NAME FIELD BUCKETS");
        if (parse_field(p, tok[2], FEATURES_FIELD_STRING, 0, &it->field) != 0)
            return -1;
        b = strtol(tok[3], &end, 10);
        if (*end || b < 2 || b > 1024)
            PERR(p, "BUCKETS must be 2..1024, not %s", tok[3]);
        it->buckets = (uint32_t)b;
        for (long i = 0; i < b; i++)
            if (add_column(p, "%s#%ld", tok[1], i) != 0)
                return -1;
        return 0;
    }
    if (strcmp(d, "hour_of_day") == 0) {
        if (n != 1 || !(it = new_item(p, ITEM_HOUR)))
            PERR(p, "hour_of_day takes no arguments");
        return add_column(p, "hour.sin") || add_column(p, "hour.cos") ? -1 : 0;
    }
    if (strcmp(d, "count") == 0)
        return parse_windowed(p, ITEM_COUNT, tok, n);
    if (strcmp(d, "sum") == 0)
        return parse_windowed(p, ITEM_SUM, tok, n);
    if (strcmp(d, "count_if") == 0)
        return parse_windowed(p, ITEM_COUNT_IF, tok, n);
    if (strcmp(d, "since_last") == 0) {
        if (n != 2 || parse_entity_ref(p, tok[1], &e) != 0 || !(it = new_item(p, ITEM_SINCE_LAST)))
            PERR(p, "since_last takes ENTITY");
        it->entity = e;
        return add_column(p, "%s.since_last_s", tok[1]) || add_column(p, "%s.new", tok[1]) ? -1 : 0;
    }
    if (strcmp(d, "geo_velocity") == 0) {
        if (n != 4 || parse_entity_ref(p, tok[1], &e) != 0 || !(it = new_item(p, ITEM_GEO)))
            PERR(p, "geo_velocity takes ENTITY LATITUDE_FIELD LONGITUDE_FIELD");
        it->entity = e;
        if (parse_field(p, tok[2], FEATURES_FIELD_NUMBER, 0, &it->field) != 0 ||
            parse_field(p, tok[3], FEATURES_FIELD_NUMBER, 0, &it->field2) != 0)
            return -1;
        it->off = reserve(p, e, 0, sizeof(geo_block_t));
        return add_column(p, "%s.geo_km", tok[1]) || add_column(p, "%s.geo_kmh", tok[1]) ? -1 : 0;
    }
    if (strcmp(d, "zscore") == 0) {
        if (n != 3 || parse_entity_ref(p, tok[1], &e) != 0 || !(it = new_item(p, ITEM_ZSCORE)))
            PERR(p, "zscore takes ENTITY FIELD");
        it->entity = e;
        if (parse_field(p, tok[2], FEATURES_FIELD_NUMBER, 0, &it->field) != 0)
            return -1;
        /* Welford's running mean and sum of squared deviations, then the count in a 4-byte block
         * (kept apart so the 8-byte blocks stay dense) */
        it->off = reserve(p, e, 0, 2 * sizeof(double));
        if (!p->spare_used[e]) {
            p->spare_used[e] = 1;
            it->off2 = offsetof(entity_header_t, spare) | ((size_t)3 << 56);
        } else {
            it->off2 = reserve(p, e, 1, sizeof(uint32_t));
        }
        return add_column(p, "%s.zscore.%s", tok[1], tok[2]);
    }
    if (strcmp(d, "novelty") == 0) {
        char *end;
        long k;
        if (n != 4 || parse_entity_ref(p, tok[1], &e) != 0 || !(it = new_item(p, ITEM_NOVELTY)))
            PERR(p, "novelty takes ENTITY FIELD K");
        it->entity = e;
        if (parse_field(p, tok[2], FEATURES_FIELD_STRING, 0, &it->field) != 0)
            return -1;
        k = strtol(tok[3], &end, 10);
        if (*end || k < 1 || k > NOVELTY_K_MAX)
            PERR(p, "K must be 1..%d, not %s", NOVELTY_K_MAX, tok[3]);
        it->k = (int)k;
        it->off = reserve(p, e, 1, sizeof(uint32_t) * (size_t)k);
        return add_column(p, "%s.novel.%s", tok[1], tok[2]);
    }
    PERR(p, "unknown directive %s", d);
}

/* Lays out each entity type's payload: 8-byte blocks, then 4-byte ones (window sums among
 * them), then 2-byte ones (window counts), and resolves the offsets reserve() handed out. */
static void spec_layout(features_spec_t *s, parser_t *p)
{
    for (int e = 0; e < s->n_ent; e++) {
        spec_entity_t *ent = &s->ent[e];
        size_t base[4];
        for (int w = 0; w < ent->n_win; w++) {
            spec_window_t *win = &ent->win[w];
            win->sums_off = reserve(p, e, 1, sizeof(float) * WINDOW_BUCKETS * (size_t)win->n_sums);
            win->counts_off = reserve(p, e, 2, sizeof(uint16_t) * WINDOW_BUCKETS);
            win->ifs_off = reserve(p, e, 2, sizeof(uint16_t) * WINDOW_BUCKETS * (size_t)win->n_ifs);
        }
        base[0] = ENTITY_PAYLOAD_OFFSET;
        base[1] = base[0] + p->payload[e][0];
        base[2] = base[1] + p->payload[e][1];
        base[3] = 0; /* class 3: an offset into the record header itself */
        ent->slot_size = (base[2] + p->payload[e][2] + 7) & ~(size_t)7;
#define FIX(x) ((x) = base[(x) >> 56] + ((x) & (((size_t)1 << 56) - 1)))
        for (int w = 0; w < ent->n_win; w++) {
            FIX(ent->win[w].sums_off);
            FIX(ent->win[w].counts_off);
            FIX(ent->win[w].ifs_off);
        }
        for (int i = 0; i < s->n_items; i++) {
            spec_item_t *it = &s->items[i];
            if (it->entity != e)
                continue;
            if (it->kind == ITEM_GEO || it->kind == ITEM_ZSCORE || it->kind == ITEM_NOVELTY)
                FIX(it->off);
            if (it->kind == ITEM_ZSCORE)
                FIX(it->off2);
        }
#undef FIX
    }
}

static int tokenize(char *line, char **tok, int max)
{
    int n = 0;
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    for (char *s = strtok(line, " \t\r"); s; s = strtok(NULL, " \t\r")) {
        if (n == max)
            return -1;
        tok[n++] = s;
    }
    return n;
}

features_spec_t *features_spec_new(const char *text, const char *origin,
                                   const features_field_t *fields, size_t n_fields, char *err,
                                   size_t errlen)
{
    parser_t p = {0};
    char *copy = NULL, *line, *next;
    uint64_t h = FNV_OFFSET;

    p.spec = calloc(1, sizeof(*p.spec));
    copy = strdup(text);
    if (!p.spec || !copy) {
        errbuf_printf(err, errlen, "%s: out of memory", origin);
        goto err;
    }
    p.fields = fields;
    p.n_fields = n_fields;
    p.origin = origin;
    p.err = err;
    p.errlen = errlen;
    for (line = copy; line; line = next) {
        char *tok[SPEC_TOKENS_MAX];
        int n;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        p.line++;
        n = tokenize(line, tok, SPEC_TOKENS_MAX);
        if (n < 0) {
            errbuf_printf(err, errlen, "%s:%d: more than %d words on a line", origin, p.line,
                          SPEC_TOKENS_MAX);
            goto err;
        }
        if (n == 0)
            continue;
        /* The hash covers the directives word by word, so comments and spacing do not count. */
        for (int i = 0; i < n; i++)
            h = fnv1a(fnv1a(h, tok[i], strlen(tok[i])), " ", 1);
        h = fnv1a(h, "\n", 1);
        if (parse_line(&p, tok, n) != 0)
            goto err;
    }
    if (p.spec->width == 0) {
        errbuf_printf(err, errlen, "%s: the spec defines no feature", origin);
        goto err;
    }
    spec_layout(p.spec, &p);
    /* ... and the record layout, so a checkpoint is only read back into the same layout. */
    for (int e = 0; e < p.spec->n_ent; e++) {
        const spec_entity_t *ent = &p.spec->ent[e];
        h = fnv1a(h, &ent->slot_size, sizeof(size_t));
        for (int w = 0; w < ent->n_win; w++) {
            size_t offs[3] = {ent->win[w].counts_off, ent->win[w].sums_off, ent->win[w].ifs_off};
            h = fnv1a(h, offs, sizeof(offs));
        }
    }
    for (int i = 0; i < p.spec->n_items; i++) {
        size_t offs[2] = {p.spec->items[i].off, p.spec->items[i].off2};
        h = fnv1a(h, offs, sizeof(offs));
    }
    p.spec->hash = h;
    free(copy);
    return p.spec;
err:
    free(copy);
    features_spec_free(p.spec);
    return NULL;
}

void features_spec_free(features_spec_t *spec)
{
    if (!spec)
        return;
    for (int e = 0; e < spec->n_ent; e++)
        for (int w = 0; w < spec->ent[e].n_win; w++)
            for (int i = 0; i < spec->ent[e].win[w].n_ifs; i++)
                free(spec->ent[e].win[w].if_value[i]);
    for (size_t i = 0; i < spec->width; i++)
        free(spec->columns[i]);
    free(spec->columns);
    free(spec);
}

size_t features_spec_width(const features_spec_t *spec)
{
    return spec->width;
}

const char *features_spec_column(const features_spec_t *spec, size_t i)
{
    return i < spec->width ? spec->columns[i] : NULL;
}

uint64_t features_spec_hash(const features_spec_t *spec)
{
    return spec->hash;
}

size_t features_spec_entities(const features_spec_t *spec)
{
    return (size_t)spec->n_ent;
}

const char *features_spec_entity_name(const features_spec_t *spec, size_t e)
{
    return spec->ent[e].name;
}

size_t features_spec_entity_bytes(const features_spec_t *spec, size_t e)
{
    /* the record, plus its share of an index kept at most half full */
    return spec->ent[e].slot_size + 2 * sizeof(uint32_t);
}

/* --- state ------------------------------------------------------------------------------- */

features_state_t *features_state_new(const features_spec_t *spec, uint32_t max_entities,
                                     int64_t ttl_ms, char *err, size_t errlen)
{
    features_state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        errbuf_printf(err, errlen, "feature state: out of memory");
        return NULL;
    }
    st->spec = spec;
    for (int e = 0; e < spec->n_ent; e++) {
        st->store[e] = entity_store_new(spec->ent[e].slot_size, max_entities, ttl_ms, err, errlen);
        if (!st->store[e]) {
            features_state_free(st);
            return NULL;
        }
    }
    return st;
}

void features_state_free(features_state_t *st)
{
    if (!st)
        return;
    for (int e = 0; e < SPEC_ENTITIES_MAX; e++)
        entity_store_free(st->store[e]);
    free(st);
}

void features_state_clear(features_state_t *st)
{
    for (int e = 0; e < st->spec->n_ent; e++)
        entity_store_clear(st->store[e]);
    st->late_dropped = 0;
}

void features_state_stats(const features_state_t *st, features_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    out->late_dropped = st->late_dropped;
    for (int e = 0; e < st->spec->n_ent; e++) {
        out->entities += entity_store_count(st->store[e]);
        out->evictions += entity_store_evictions(st->store[e]);
        out->bytes += entity_store_bytes(st->store[e]);
    }
}

int features_state_save(const features_state_t *st, uint8_t **out, size_t *len, size_t *cap)
{
    uint32_t hdr[4] = {STATE_MAGIC, STATE_VERSION, (uint32_t)st->spec->n_ent, 0};
    uint64_t tail[2] = {st->spec->hash, st->late_dropped};
    *len = 0;
    if (*cap < sizeof(hdr) + sizeof(tail)) {
        uint8_t *b = realloc(*out, 4096);
        if (!b)
            return -1;
        *out = b;
        *cap = 4096;
    }
    memcpy(*out, hdr, sizeof(hdr));
    memcpy(*out + sizeof(hdr), tail, sizeof(tail));
    *len = sizeof(hdr) + sizeof(tail);
    for (int e = 0; e < st->spec->n_ent; e++)
        if (entity_store_save(st->store[e], out, len, cap) != 0)
            return -1;
    return 0;
}

int features_state_load(features_state_t *st, const uint8_t *data, size_t len, char *err,
                        size_t errlen)
{
    uint32_t hdr[4];
    uint64_t tail[2];

    features_state_clear(st);
    if (len < sizeof(hdr) + sizeof(tail)) {
        errbuf_printf(err, errlen, "feature state checkpoint truncated (%zu bytes)", len);
        return -1;
    }
    memcpy(hdr, data, sizeof(hdr));
    memcpy(tail, data + sizeof(hdr), sizeof(tail));
    if (hdr[0] != STATE_MAGIC || hdr[1] != STATE_VERSION) {
        errbuf_printf(err, errlen, "not a feature state checkpoint of this version");
        return -1;
    }
    if (tail[0] != st->spec->hash || hdr[2] != (uint32_t)st->spec->n_ent) {
        errbuf_printf(err, errlen, "feature state checkpoint was taken under another feature spec");
        return -1;
    }
    data += sizeof(hdr) + sizeof(tail);
    len -= sizeof(hdr) + sizeof(tail);
    for (int e = 0; e < st->spec->n_ent; e++) {
        if (entity_store_load(st->store[e], &data, &len, err, errlen) != 0) {
            features_state_clear(st);
            return -1;
        }
    }
    if (len != 0) {
        errbuf_printf(err, errlen, "feature state checkpoint has %zu trailing bytes", len);
        features_state_clear(st);
        return -1;
    }
    st->late_dropped = tail[1];
    return 0;
}

/* --- computation ------------------------------------------------------------------------- */

/* The bucket a time falls in: floor(t / width) for t >= 0. A 64-bit division per window and
 * entity was the largest cost of an event; a multiplication by the reciprocal, corrected by one
 * where rounding put it across a bucket edge, gives the same exact answer. */
static inline int64_t bucket_of(const spec_window_t *win, int64_t t)
{
    int64_t q = (int64_t)((double)t * win->inv_width);
    if (q * win->width_ms > t)
        q--;
    else if ((q + 1) * win->width_ms <= t)
        q++;
    return q;
}

#define AT(h, off, type) ((type *)((uint8_t *)(h) + (off)))

/* Moves an entity's window from its old watermark to the new one, clearing the buckets that
 * fall out, then adds the event at t to its bucket if that is still in the window. */
static void window_update(const spec_window_t *win, entity_header_t *h, int64_t prev_ms, int64_t t,
                          const features_event_t *ev, uint64_t *late_dropped)
{
    uint16_t *counts = AT(h, win->counts_off, uint16_t);
    float *sums = AT(h, win->sums_off, float);
    uint16_t *ifs = AT(h, win->ifs_off, uint16_t);
    int64_t nb = bucket_of(win, h->last_ms);
    int64_t eb = t == h->last_ms ? nb : bucket_of(win, t);
    int64_t pb = prev_ms == INT64_MIN ? 0 : prev_ms == h->last_ms ? nb : bucket_of(win, prev_ms);

    if (prev_ms == INT64_MIN || nb - pb >= WINDOW_BUCKETS) {
        memset(counts, 0, sizeof(uint16_t) * WINDOW_BUCKETS);
        memset(sums, 0, sizeof(float) * WINDOW_BUCKETS * (size_t)win->n_sums);
        memset(ifs, 0, sizeof(uint16_t) * WINDOW_BUCKETS * (size_t)win->n_ifs);
    } else {
        for (int64_t b = pb + 1; b <= nb; b++) {
            int r = (int)(b % WINDOW_BUCKETS);
            counts[r] = 0;
            for (int m = 0; m < win->n_sums; m++)
                sums[m * WINDOW_BUCKETS + r] = 0;
            for (int m = 0; m < win->n_ifs; m++)
                ifs[m * WINDOW_BUCKETS + r] = 0;
        }
    }
    if (eb <= nb - WINDOW_BUCKETS) {
        (*late_dropped)++;
        return;
    }
    int r = (int)(eb % WINDOW_BUCKETS);
    if (counts[r] < UINT16_MAX)
        counts[r]++;
    for (int m = 0; m < win->n_sums; m++) {
        double v = ev->num[win->sum_field[m]];
        if (!isnan(v))
            sums[m * WINDOW_BUCKETS + r] += (float)v;
    }
    for (int m = 0; m < win->n_ifs; m++) {
        const char *s = ev->str[win->if_field[m]];
        if (s && strcmp(s, win->if_value[m]) == 0 && ifs[m * WINDOW_BUCKETS + r] < UINT16_MAX)
            ifs[m * WINDOW_BUCKETS + r]++;
    }
}

static float window_total16(const uint16_t *b)
{
    uint32_t t = 0;
    for (int i = 0; i < WINDOW_BUCKETS; i++)
        t += b[i];
    return (float)t;
}

static float window_total32(const float *b)
{
    double t = 0;
    for (int i = 0; i < WINDOW_BUCKETS; i++)
        t += b[i];
    return (float)t;
}

static double haversine_km(double lat1, double lon1, double lat2, double lon2)
{
    const double rad = M_PI / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double a = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2.0 * 6371.0088 * asin(sqrt(a > 1.0 ? 1.0 : a));
}

/* The hashes of ev's entity keys; 0 where the key is absent. */
static void event_keys(const features_spec_t *spec, const features_event_t *ev, uint64_t *key)
{
    for (int e = 0; e < spec->n_ent; e++) {
        const char *k = ev->str[spec->ent[e].key_field];
        key[e] = k ? entity_key_hash(k) : 0;
    }
}

static void event_prefetch(const features_spec_t *spec, const features_state_t *st,
                           const uint64_t *key, int stage)
{
    for (int e = 0; e < spec->n_ent; e++)
        if (key[e])
            entity_store_prefetch(st->store[e], key[e], stage);
}

static int compute_keyed(const features_spec_t *spec, features_state_t *st,
                         const features_event_t *ev, const uint64_t *key, float *out);

int features_compute(const features_spec_t *spec, features_state_t *st, const features_event_t *ev,
                     float *out)
{
    uint64_t key[SPEC_ENTITIES_MAX];

    /* The entities' records are far apart in memory: ask for all of them before using any, so
     * the cache misses overlap (index entries first, then the records they point to, then their
     * neighbours in the recency list). */
    event_keys(spec, ev, key);
    for (int stage = 0; stage <= 2; stage++)
        event_prefetch(spec, st, key, stage);
    return compute_keyed(spec, st, ev, key, out);
}

/* The same, across events: while event i is computed, the records of event i+1 and the index
 * entries of event i+2 are on their way, and so on, so one event's cache misses overlap with
 * the work of its predecessors. The results are those of n features_compute calls in order. */
#define BATCH_AHEAD 3
int features_compute_batch(const features_spec_t *spec, features_state_t *st,
                           const features_event_t *evs, size_t n, float *const *outs)
{
    uint64_t key[BATCH_AHEAD + 1][SPEC_ENTITIES_MAX];

    for (size_t i = 0; i < n + BATCH_AHEAD; i++) {
        if (i < n) {
            event_keys(spec, &evs[i], key[i % (BATCH_AHEAD + 1)]);
            event_prefetch(spec, st, key[i % (BATCH_AHEAD + 1)], 0);
        }
        for (int stage = 1; stage < BATCH_AHEAD; stage++)
            if (i >= (size_t)stage && i - (size_t)stage < n)
                event_prefetch(spec, st, key[(i - (size_t)stage) % (BATCH_AHEAD + 1)], stage);
        if (i >= BATCH_AHEAD) {
            size_t j = i - BATCH_AHEAD;
            if (compute_keyed(spec, st, &evs[j], key[j % (BATCH_AHEAD + 1)], outs[j]) != 0)
                return -1;
        }
    }
    return 0;
}

static int compute_keyed(const features_spec_t *spec, features_state_t *st,
                         const features_event_t *ev, const uint64_t *key, float *out)
{
    entity_header_t *h[SPEC_ENTITIES_MAX];
    int64_t prev[SPEC_ENTITIES_MAX];
    int is_new[SPEC_ENTITIES_MAX];
    const int64_t t = ev->time_ms;

    /* Find every entity of the event and fold the event into its windows. */
    for (int e = 0; e < spec->n_ent; e++) {
        const spec_entity_t *ent = &spec->ent[e];
        h[e] = NULL;
        if (!key[e])
            continue;
        h[e] = entity_store_get(st->store[e], key[e], t, &is_new[e]);
        if (!h[e])
            return -1;
        prev[e] = h[e]->last_ms;
        if (t > h[e]->last_ms)
            h[e]->last_ms = t;
        if (h[e]->n_events < UINT32_MAX)
            h[e]->n_events++;
        for (int w = 0; w < ent->n_win; w++)
            window_update(&ent->win[w], h[e], prev[e], t, ev, &st->late_dropped);
    }

    for (int i = 0; i < spec->n_items; i++) {
        const spec_item_t *it = &spec->items[i];
        float *o = out + it->col;
        entity_header_t *eh = it->entity >= 0 ? h[it->entity] : NULL;

        switch (it->kind) {
        case ITEM_NUMERIC: {
            double v = ev->num[it->field];
            if (it->present) {
                o[0] = isnan(v) ? 0.0f : 1.0f;
                break;
            }
            if (isnan(v)) {
                o[0] = (float)it->missing;
                break;
            }
            if (it->log)
                v = v < 0 ? -log1p(-v) : log1p(v);
            if (it->has_clip)
                v = v < it->lo ? it->lo : v > it->hi ? it->hi : v;
            o[0] = (float)v;
            break;
        }
        case ITEM_CATEGORICAL: {
            const char *s = ev->str[it->field];
            memset(o, 0, sizeof(float) * it->buckets);
            if (s)
                o[entity_key_hash(s) % it->buckets] = 1.0f;
            break;
        }
        case ITEM_HOUR: {
            double day = (double)(t % 86400000) / 86400000.0, sn, cs;
            sincos(2.0 * M_PI * day, &sn, &cs);
            o[0] = (float)sn;
            o[1] = (float)cs;
            break;
        }
        case ITEM_COUNT:
            o[0] = eh ? window_total16(
                            AT(eh, spec->ent[it->entity].win[it->window].counts_off, uint16_t))
                      : 0.0f;
            break;
        case ITEM_SUM: {
            const spec_window_t *win = &spec->ent[it->entity].win[it->window];
            o[0] = eh ? window_total32(AT(eh, win->sums_off, float) + it->member * WINDOW_BUCKETS)
                      : 0.0f;
            break;
        }
        case ITEM_COUNT_IF: {
            const spec_window_t *win = &spec->ent[it->entity].win[it->window];
            o[0] = eh ? window_total16(AT(eh, win->ifs_off, uint16_t) + it->member * WINDOW_BUCKETS)
                      : 0.0f;
            break;
        }
        case ITEM_SINCE_LAST:
            if (!eh) {
                o[0] = o[1] = 0.0f;
            } else if (is_new[it->entity] || prev[it->entity] == INT64_MIN) {
                o[0] = 0.0f;
                o[1] = 1.0f;
            } else {
                int64_t d = t - prev[it->entity];
                o[0] = d > 0 ? (float)((double)d / 1000.0) : 0.0f;
                o[1] = 0.0f;
            }
            break;
        case ITEM_GEO: {
            double lat = ev->num[it->field], lon = ev->num[it->field2];
            geo_block_t *g = eh ? AT(eh, it->off, geo_block_t) : NULL;
            o[0] = o[1] = 0.0f;
            if (!g || isnan(lat) || isnan(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180)
                break;
            if (g->last_ms_plus1 != 0) {
                int64_t last = g->last_ms_plus1 - 1;
                int64_t dt = t >= last ? t - last : last - t;
                double km = haversine_km(g->lat, g->lon, lat, lon);
                if (dt < GEO_MIN_DT_MS)
                    dt = GEO_MIN_DT_MS;
                o[0] = (float)km;
                o[1] = (float)(km / ((double)dt / 3600000.0));
                if (t < last)
                    break; /* a late event does not replace the newer location */
            }
            g->last_ms_plus1 = t + 1;
            g->lat = (float)lat;
            g->lon = (float)lon;
            break;
        }
        case ITEM_ZSCORE: {
            double x = ev->num[it->field];
            o[0] = 0.0f;
            if (!eh || isnan(x))
                break;
            double *mean = AT(eh, it->off, double), *m2 = mean + 1;
            uint32_t *n = AT(eh, it->off2, uint32_t);
            if (*n >= 2) {
                double sd = sqrt(*m2 / (double)(*n - 1));
                double z = sd > 0 ? (x - *mean) / sd : 0.0;
                o[0] = (float)(z > ZSCORE_LIMIT    ? ZSCORE_LIMIT
                               : z < -ZSCORE_LIMIT ? -ZSCORE_LIMIT
                                                   : z);
            }
            if (*n < UINT32_MAX) {
                double d = x - *mean;
                (*n)++;
                *mean += d / (double)*n;
                *m2 += d * (x - *mean);
            }
            break;
        }
        case ITEM_NOVELTY: {
            const char *s = ev->str[it->field];
            o[0] = 0.0f;
            if (!eh || !s)
                break;
            uint32_t *ring = AT(eh, it->off, uint32_t);
            uint32_t v = (uint32_t)entity_key_hash(s) | 1u; /* 0 marks an empty place */
            int at = it->k - 1;
            for (int j = 0; j < it->k; j++)
                if (ring[j] == v) {
                    at = j;
                    break;
                }
            if (ring[at] != v)
                o[0] = 1.0f;
            memmove(ring + 1, ring, sizeof(uint32_t) * (size_t)at);
            ring[0] = v;
            break;
        }
        }
    }
    return 0;
}

/* --- normalisation ----------------------------------------------------------------------- */

int features_norm_fit(features_norm_t *norm, const float *x, size_t n, size_t width)
{
    norm->width = width;
    norm->mean = calloc(width ? width : 1, sizeof(double));
    norm->std = calloc(width ? width : 1, sizeof(double));
    if (!norm->mean || !norm->std) {
        features_norm_free(norm);
        return -1;
    }
    for (size_t j = 0; j < width; j++) {
        double mean = 0, m2 = 0;
        for (size_t i = 0; i < n; i++) {
            double v = x[i * width + j], d = v - mean;
            mean += d / (double)(i + 1);
            m2 += d * (v - mean);
        }
        double sd = n > 1 ? sqrt(m2 / (double)(n - 1)) : 0.0;
        norm->mean[j] = mean;
        norm->std[j] = sd > 1e-12 ? sd : 1.0;
    }
    return 0;
}

void features_norm_apply(const features_norm_t *norm, const float *in, float *out)
{
    for (size_t j = 0; j < norm->width; j++)
        out[j] = (float)(((double)in[j] - norm->mean[j]) / norm->std[j]);
}

void features_norm_free(features_norm_t *norm)
{
    free(norm->mean);
    free(norm->std);
    norm->mean = norm->std = NULL;
    norm->width = 0;
}
