/* The feature spec compiler: spec text (docs/features.md) against the caller's input fields
 * becomes a features_spec_t, with every entity type's record layout and the hash that ties
 * checkpoints to that layout. Errors name origin:line. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "errbuf.h"
#include "features_internal.h"

#define SPEC_WIDTH_MAX 4096
#define SPEC_TOKENS_MAX 16
#define NOVELTY_K_MAX 16

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

/* "90s", "1m", "1h", "24h", "7d" (duration.h), and at least 6 s */
static int parse_duration(parser_t *p, const char *s, int64_t *ms)
{
    int rc = duration_parse(s, ms);
    if (rc == DURATION_TOO_LONG)
        PERR(p, "window %s is longer than a year", s);
    if (rc != DURATION_OK)
        PERR(p, "not a window length: %s (write e.g. 90s, 1m, 1h, 24h, 7d)", s);
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

/* One function per directive: tok[0] is the directive, n the number of words. */

static int parse_entity(parser_t *p, char **tok, int n)
{
    features_spec_t *s = p->spec;
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

static int parse_numeric(parser_t *p, char **tok, int n)
{
    spec_item_t *it;
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

static int parse_categorical(parser_t *p, char **tok, int n)
{
    spec_item_t *it;
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

static int parse_hour_of_day(parser_t *p, char **tok, int n)
{
    if (n != 1 || !new_item(p, ITEM_HOUR))
        PERR(p, "hour_of_day takes no arguments");
    return add_column(p, "hour.sin") || add_column(p, "hour.cos") ? -1 : 0;
}

static int parse_count(parser_t *p, char **tok, int n)
{
    return parse_windowed(p, ITEM_COUNT, tok, n);
}

static int parse_sum(parser_t *p, char **tok, int n)
{
    return parse_windowed(p, ITEM_SUM, tok, n);
}

static int parse_count_if(parser_t *p, char **tok, int n)
{
    return parse_windowed(p, ITEM_COUNT_IF, tok, n);
}

/* The item of a directive over one entity, "DIRECTIVE ENTITY ..." of n_words words; NULL with
 * usage as the error when the line does not fit. */
static spec_item_t *new_entity_item(parser_t *p, item_kind_t kind, char **tok, int n, int n_words,
                                    const char *usage)
{
    spec_item_t *it;
    int e = -1; /* set by parse_entity_ref; initialised for the compiler's sake */
    if (n != n_words || parse_entity_ref(p, tok[1], &e) != 0 || !(it = new_item(p, kind))) {
        errbuf_printf(p->err, p->errlen, "%s:%d: %s", p->origin, p->line, usage);
        return NULL;
    }
    it->entity = e;
    return it;
}

static int parse_since_last(parser_t *p, char **tok, int n)
{
    spec_item_t *it;
    if (!(it = new_entity_item(p, ITEM_SINCE_LAST, tok, n, 2, "since_last takes ENTITY")))
        return -1;
    return add_column(p, "%s.since_last_s", tok[1]) || add_column(p, "%s.new", tok[1]) ? -1 : 0;
}

static int parse_geo_velocity(parser_t *p, char **tok, int n)
{
    spec_item_t *it;
    if (!(it = new_entity_item(p, ITEM_GEO, tok, n, 4,
                               "geo_velocity takes ENTITY LATITUDE_FIELD LONGITUDE_FIELD")))
        return -1;
    if (parse_field(p, tok[2], FEATURES_FIELD_NUMBER, 0, &it->field) != 0 ||
        parse_field(p, tok[3], FEATURES_FIELD_NUMBER, 0, &it->field2) != 0)
        return -1;
    it->off = reserve(p, it->entity, 0, sizeof(geo_block_t));
    return add_column(p, "%s.geo_km", tok[1]) || add_column(p, "%s.geo_kmh", tok[1]) ? -1 : 0;
}

static int parse_zscore(parser_t *p, char **tok, int n)
{
    spec_item_t *it;
    if (!(it = new_entity_item(p, ITEM_ZSCORE, tok, n, 3, "zscore takes ENTITY FIELD")))
        return -1;
    if (parse_field(p, tok[2], FEATURES_FIELD_NUMBER, 0, &it->field) != 0)
        return -1;
    /* Welford's running mean and sum of squared deviations, then the count in a 4-byte block
     * (kept apart so the 8-byte blocks stay dense) */
    it->off = reserve(p, it->entity, 0, 2 * sizeof(double));
    if (!p->spare_used[it->entity]) {
        p->spare_used[it->entity] = 1;
        it->off2 = offsetof(entity_header_t, spare) | ((size_t)3 << 56);
    } else {
        it->off2 = reserve(p, it->entity, 1, sizeof(uint32_t));
    }
    return add_column(p, "%s.zscore.%s", tok[1], tok[2]);
}

static int parse_novelty(parser_t *p, char **tok, int n)
{
    spec_item_t *it;
    char *end;
    long k;
    if (!(it = new_entity_item(p, ITEM_NOVELTY, tok, n, 4, "novelty takes ENTITY FIELD K")))
        return -1;
    if (parse_field(p, tok[2], FEATURES_FIELD_STRING, 0, &it->field) != 0)
        return -1;
    k = strtol(tok[3], &end, 10);
    if (*end || k < 1 || k > NOVELTY_K_MAX)
        PERR(p, "K must be 1..%d, not %s", NOVELTY_K_MAX, tok[3]);
    it->k = (int)k;
    it->off = reserve(p, it->entity, 1, sizeof(uint32_t) * (size_t)k);
    return add_column(p, "%s.novel.%s", tok[1], tok[2]);
}

static const struct directive {
    const char *name;
    int (*parse)(parser_t *p, char **tok, int n);
} directives[] = {
    {"entity", parse_entity},
    {"numeric", parse_numeric},
    {"categorical", parse_categorical},
    {"hour_of_day", parse_hour_of_day},
    {"count", parse_count},
    {"sum", parse_sum},
    {"count_if", parse_count_if},
    {"since_last", parse_since_last},
    {"geo_velocity", parse_geo_velocity},
    {"zscore", parse_zscore},
    {"novelty", parse_novelty},
};

static int parse_line(parser_t *p, char **tok, int n)
{
    for (size_t i = 0; i < sizeof directives / sizeof directives[0]; i++)
        if (strcmp(tok[0], directives[i].name) == 0)
            return directives[i].parse(p, tok, n);
    PERR(p, "unknown directive %s", tok[0]);
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

/* Folds the record layout into the spec's hash h (which covers the directives already), so a
 * checkpoint is only read back into the same layout. */
static uint64_t spec_layout_hash(const features_spec_t *s, uint64_t h)
{
    for (int e = 0; e < s->n_ent; e++) {
        const spec_entity_t *ent = &s->ent[e];
        h = fnv1a(h, &ent->slot_size, sizeof(size_t));
        for (int w = 0; w < ent->n_win; w++) {
            size_t offs[3] = {ent->win[w].counts_off, ent->win[w].sums_off, ent->win[w].ifs_off};
            h = fnv1a(h, offs, sizeof(offs));
        }
    }
    for (int i = 0; i < s->n_items; i++) {
        size_t offs[2] = {s->items[i].off, s->items[i].off2};
        h = fnv1a(h, offs, sizeof(offs));
    }
    return h;
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
    p.spec->hash = spec_layout_hash(p.spec, h);
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
