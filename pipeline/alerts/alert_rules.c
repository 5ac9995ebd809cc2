/* The alert rule compiler and evaluator (see alert_rules.h for the language). Rules compile into
 * a flat array of conditions, sorted so that the first rule that matches has the highest
 * severity: evaluation runs for every scored event and touches nothing else. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert_rules.h"
#include "duration.h"
#include "errbuf.h"
#include "textfile.h"

#define RULES_MAX 64
#define CONDS_MAX 16
#define LINE_MAX_BYTES 1024
#define TOKENS_MAX (2 + CONDS_MAX)
#define EXPLAIN_MAX 16
#define FILE_MAX_BYTES (1024 * 1024)
#define SCORE_COLUMN (-1)

const char alert_rules_default[] =
    "# vigil's built-in fraud alert rules (docs/alerts.md): the risk model's score alone.\n"
    "rule critical score>=0.97\n"
    "rule high score>=0.90\n"
    "rule medium score>=0.80\n"
    "group user_id 30m\n"
    "resolve_after 1h\n"
    "explain 5\n"
    "sentiment window=15m history=96 z=5 min_articles=5 keys=ticker,topic\n";

static const char *const severity_names[ALERT_SEVERITIES] = {"low", "medium", "high", "critical"};

typedef enum alert_op { OP_GE, OP_GT, OP_LE, OP_LT, OP_EQ, OP_NE } alert_op_t;

/* Two-character operators first, so that ">=" is not read as ">" and a number "=...". */
static const struct op_spelling {
    const char *text;
    alert_op_t op;
} op_spellings[] = {{">=", OP_GE}, {"<=", OP_LE}, {"==", OP_EQ},
                    {"!=", OP_NE}, {">", OP_GT},  {"<", OP_LT}};

typedef struct alert_cond {
    ptrdiff_t column; /* index into the feature vector, SCORE_COLUMN for the score */
    alert_op_t op;
    double threshold; /* a float's value: see alert_rules.h */
} alert_cond_t;

typedef struct alert_rule {
    alert_severity_t severity;
    size_t first, n; /* conds[first .. first + n) */
} alert_rule_t;

struct alert_rules {
    alert_rule_t rules[RULES_MAX]; /* highest severity first */
    size_t n_rules;
    alert_cond_t conds[RULES_MAX * CONDS_MAX];
    size_t n_conds;
    int64_t gap_ms, resolve_ms;
    size_t explain;
    float min_score;
    alert_sentiment_t sentiment;
};

typedef struct parser {
    alert_rules_t *r;
    const char *const *columns;
    size_t n_columns;
    const char *origin;
    int line;
    int group_line, resolve_line, explain_line, sentiment_line; /* where each was set, 0: not yet */
    char *err;
    size_t errlen;
} parser_t;

#define PERR(p, ...)                                                                               \
    do {                                                                                           \
        char m_[LINE_MAX_BYTES + 256];                                                             \
        snprintf(m_, sizeof m_, __VA_ARGS__);                                                      \
        errbuf_printf((p)->err, (p)->errlen, "%s:%d: %s", (p)->origin, (p)->line, m_);             \
        return -1;                                                                                 \
    } while (0)

const char *alert_severity_name(alert_severity_t s)
{
    return s >= ALERT_SEVERITY_LOW && s < ALERT_SEVERITIES ? severity_names[s] : "none";
}

alert_severity_t alert_severity_parse(const char *name)
{
    for (int s = 0; s < ALERT_SEVERITIES; s++)
        if (strcmp(name, severity_names[s]) == 0)
            return (alert_severity_t)s;
    return ALERT_SEVERITY_NONE;
}

/* "90s", "30m", "1h", "7d": a positive count of one unit, at most 366 days (duration.h). */
static int rules_parse_duration(parser_t *p, const char *s, int64_t *ms)
{
    int rc = duration_parse(s, ms);
    if (rc == DURATION_TOO_LONG)
        PERR(p, "duration %s is longer than 366 days", s);
    if (rc != DURATION_OK)
        PERR(p, "not a duration: %s (write e.g. 90s, 30m, 1h, 7d)", s);
    return 0;
}

/* The number s, all of it; NaN and infinities included (the caller refuses them by name). */
static int rules_number(const char *s, double *out)
{
    char *end;
    if (!*s)
        return -1;
    *out = strtod(s, &end);
    return *end ? -1 : 0;
}

static int rules_column(parser_t *p, const char *name, ptrdiff_t *out)
{
    if (strcmp(name, "score") == 0) {
        *out = SCORE_COLUMN;
        return 0;
    }
    for (size_t i = 0; i < p->n_columns; i++)
        if (strcmp(p->columns[i], name) == 0) {
            *out = (ptrdiff_t)i;
            return 0;
        }
    PERR(p, "unknown column %s: not score and not a feature of the feature spec", name);
}

/* Column names may contain '=' (user.count_if.event_type=LOGIN_FAILED.1h), so the operator is the
 * rightmost one whose remainder is a number. */
static int rules_split_cond(const char *tok, size_t *name_len, alert_op_t *op, double *v)
{
    for (size_t i = strlen(tok); i-- > 1;)
        for (size_t k = 0; k < sizeof op_spellings / sizeof op_spellings[0]; k++) {
            size_t len = strlen(op_spellings[k].text);
            if (strncmp(tok + i, op_spellings[k].text, len) == 0 &&
                rules_number(tok + i + len, v) == 0) {
                *name_len = i;
                *op = op_spellings[k].op;
                return 0;
            }
        }
    return -1;
}

static int rules_parse_cond(parser_t *p, const char *tok, alert_cond_t *c)
{
    char name[LINE_MAX_BYTES + 1];
    size_t name_len;
    if (rules_split_cond(tok, &name_len, &c->op, &c->threshold) != 0)
        PERR(p,
             "not a condition: %s (write NAME OP NUMBER without spaces, e.g. score>=0.9; "
             "OP is one of >= > <= < == !=)",
             tok);
    if (!isfinite(c->threshold) || fabs(c->threshold) > FLT_MAX)
        PERR(p, "%s: the threshold must be a finite number within a float's range", tok);
    /* Scores and features are floats: compare with the float the user's number stands for. */
    c->threshold = (double)(float)c->threshold;
    memcpy(name, tok, name_len);
    name[name_len] = '\0';
    return rules_column(p, name, &c->column);
}

static int rules_parse_rule(parser_t *p, char **tok, int n)
{
    alert_rules_t *r = p->r;
    alert_rule_t *rule;
    int has_score = 0;
    if (n < 3)
        PERR(p, "usage: rule SEVERITY COND [COND...], e.g. rule high score>=0.9");
    if (r->n_rules == RULES_MAX)
        PERR(p, "more than %d rules", RULES_MAX);
    rule = &r->rules[r->n_rules];
    rule->severity = alert_severity_parse(tok[1]);
    if (rule->severity == ALERT_SEVERITY_NONE)
        PERR(p, "unknown severity %s (one of low, medium, high, critical)", tok[1]);
    rule->first = r->n_conds;
    rule->n = 0;
    for (int i = 2; i < n; i++) {
        alert_cond_t *c = &r->conds[r->n_conds + rule->n];
        if (rules_parse_cond(p, tok[i], c) != 0)
            return -1;
        has_score |= c->column == SCORE_COLUMN;
        rule->n++;
    }
    if (!has_score)
        PERR(p, "a rule needs a condition on score, e.g. score>=0.9");
    r->n_conds += rule->n;
    r->n_rules++;
    return 0;
}

/* group, resolve_after and explain: once each. */
static int rules_once(parser_t *p, int *seen, const char *what)
{
    if (*seen)
        PERR(p, "a second %s line (the first is line %d)", what, *seen);
    *seen = p->line;
    return 0;
}

static int rules_parse_group(parser_t *p, char **tok, int n)
{
    if (n != 3)
        PERR(p, "usage: group FIELD GAP, e.g. group user_id 30m");
    if (rules_once(p, &p->group_line, "group") != 0)
        return -1;
    if (strcmp(tok[1], "user_id") != 0)
        PERR(p, "cannot group by %s: only user_id is supported", tok[1]);
    return rules_parse_duration(p, tok[2], &p->r->gap_ms);
}

static int rules_parse_resolve_after(parser_t *p, char **tok, int n)
{
    if (n != 2)
        PERR(p, "usage: resolve_after DURATION, e.g. resolve_after 1h (0: never)");
    if (rules_once(p, &p->resolve_line, "resolve_after") != 0)
        return -1;
    if (strcmp(tok[1], "0") == 0) {
        p->r->resolve_ms = 0;
        return 0;
    }
    return rules_parse_duration(p, tok[1], &p->r->resolve_ms);
}

static int rules_parse_explain(parser_t *p, char **tok, int n)
{
    char *end;
    long k;
    if (n != 2)
        PERR(p, "usage: explain K, e.g. explain 5");
    if (rules_once(p, &p->explain_line, "explain") != 0)
        return -1;
    errno = 0;
    k = strtol(tok[1], &end, 10);
    if (errno || end == tok[1] || *end || k < 1 || k > EXPLAIN_MAX)
        PERR(p, "explain takes 1..%d features, not %s", EXPLAIN_MAX, tok[1]);
    p->r->explain = (size_t)k;
    return 0;
}

/* One key=value setting of a sentiment line; numbers are whole and bounded. */
static int rules_sentiment_number(parser_t *p, const char *key, const char *v, long lo, long hi,
                                  long *out)
{
    char *end;
    errno = 0;
    *out = strtol(v, &end, 10);
    if (errno || end == v || *end || *out < lo || *out > hi)
        PERR(p, "sentiment %s takes a whole number from %ld to %ld, not %s", key, lo, hi, v);
    return 0;
}

static int rules_sentiment_keys(parser_t *p, char *v)
{
    alert_sentiment_t *s = &p->r->sentiment;
    s->by_ticker = s->by_topic = 0;
    for (char *k = strtok(v, ","); k; k = strtok(NULL, ",")) {
        if (strcmp(k, "ticker") == 0)
            s->by_ticker = 1;
        else if (strcmp(k, "topic") == 0)
            s->by_topic = 1;
        else
            PERR(p, "sentiment keys are ticker and topic, not %s", k);
    }
    if (!s->by_ticker && !s->by_topic)
        PERR(p, "sentiment keys=: name ticker, topic or both");
    return 0;
}

/* sentiment off | sentiment [window=D] [history=N] [z=X] [min_articles=N] [keys=ticker,topic] */
static int rules_parse_sentiment(parser_t *p, char **tok, int n)
{
    alert_sentiment_t *s = &p->r->sentiment;
    long v;
    if (rules_once(p, &p->sentiment_line, "sentiment") != 0)
        return -1;
    if (n == 2 && strcmp(tok[1], "off") == 0) {
        s->on = 0;
        return 0;
    }
    s->on = 1;
    for (int i = 1; i < n; i++) {
        char *eq = strchr(tok[i], '=');
        if (!eq)
            PERR(p,
                 "usage: sentiment off, or sentiment [window=15m] [history=96] [z=5] "
                 "[min_articles=5] [keys=ticker,topic]; not %s",
                 tok[i]);
        *eq = '\0';
        const char *key = tok[i], *val = eq + 1;
        if (strcmp(key, "window") == 0) {
            if (rules_parse_duration(p, val, &s->window_ms) != 0)
                return -1;
        } else if (strcmp(key, "history") == 0) {
            if (rules_sentiment_number(p, key, val, 2, 10000, &v) != 0)
                return -1;
            s->history = (int)v;
        } else if (strcmp(key, "min_articles") == 0) {
            if (rules_sentiment_number(p, key, val, 1, 1000000, &v) != 0)
                return -1;
            s->min_articles = (int)v;
        } else if (strcmp(key, "z") == 0) {
            char *end;
            errno = 0;
            double z = strtod(val, &end);
            if (errno || end == val || *end || !(z > 0) || z > 1000)
                PERR(p, "sentiment z takes a number above 0 (at most 1000), not %s", val);
            s->z = z;
        } else if (strcmp(key, "keys") == 0) {
            if (rules_sentiment_keys(p, eq + 1) != 0)
                return -1;
        } else {
            PERR(p, "unknown sentiment setting %s (window, history, z, min_articles, keys)", key);
        }
    }
    return 0;
}

static const struct directive {
    const char *name;
    int (*parse)(parser_t *p, char **tok, int n);
} directives[] = {
    {"rule", rules_parse_rule},
    {"group", rules_parse_group},
    {"resolve_after", rules_parse_resolve_after},
    {"explain", rules_parse_explain},
    {"sentiment", rules_parse_sentiment},
};

static int rules_parse_line(parser_t *p, char **tok, int n)
{
    for (size_t i = 0; i < sizeof directives / sizeof directives[0]; i++)
        if (strcmp(tok[0], directives[i].name) == 0)
            return directives[i].parse(p, tok, n);
    PERR(p, "unknown directive %s (directives: rule, group, resolve_after, explain, sentiment)",
         tok[0]);
}

/* Splits line into words in place, stopping at a word that starts with '#'. Returns the count,
 * or -1 past max words. */
static int rules_tokenize(char *line, char **tok, int max)
{
    int n = 0;
    for (char *s = line;;) {
        s += strspn(s, " \t\r");
        if (!*s || *s == '#')
            return n;
        if (n == max)
            return -1;
        tok[n++] = s;
        s += strcspn(s, " \t\r");
        if (*s)
            *s++ = '\0';
    }
}

static int rules_parse_text(parser_t *p, char *text)
{
    for (char *line = text, *next; *line; line = next) {
        char *tok[TOKENS_MAX];
        int n;
        next = line + strcspn(line, "\n");
        if (*next)
            *next++ = '\0';
        p->line++;
        if (strlen(line) > LINE_MAX_BYTES)
            PERR(p, "line longer than %d bytes", LINE_MAX_BYTES);
        n = rules_tokenize(line, tok, TOKENS_MAX);
        if (n < 0)
            PERR(p, "more than %d words (a rule takes at most %d conditions)", TOKENS_MAX,
                 CONDS_MAX);
        if (n > 0 && rules_parse_line(p, tok, n) != 0)
            return -1;
    }
    if (p->line == 0)
        p->line = 1;
    if (p->r->n_rules == 0 && !p->r->sentiment.on)
        PERR(p, "no rule and no sentiment line: nothing would ever alert; add one, e.g. rule "
                "high score>=0.9");
    return 0;
}

/* The largest lower bound a rule's score conditions set, 0 without one. */
static double rules_score_floor(const alert_rules_t *r, const alert_rule_t *rule)
{
    double lo = -INFINITY;
    for (size_t i = rule->first; i < rule->first + rule->n; i++) {
        const alert_cond_t *c = &r->conds[i];
        if (c->column == SCORE_COLUMN && (c->op == OP_GE || c->op == OP_GT || c->op == OP_EQ))
            lo = fmax(lo, c->threshold);
    }
    return isinf(lo) ? 0 : lo;
}

/* Highest severity first (stable, so rules of one severity keep their order), and the score
 * floor. */
static void rules_finish(alert_rules_t *r)
{
    double min = INFINITY;
    for (size_t i = 1; i < r->n_rules; i++) {
        alert_rule_t v = r->rules[i];
        size_t j = i;
        for (; j > 0 && r->rules[j - 1].severity < v.severity; j--)
            r->rules[j] = r->rules[j - 1];
        r->rules[j] = v;
    }
    for (size_t i = 0; i < r->n_rules; i++)
        min = fmin(min, rules_score_floor(r, &r->rules[i]));
    r->min_score = (float)min;
}

alert_rules_t *alert_rules_new(const char *text, const char *origin, const char *const *columns,
                               size_t n_columns, char *err, size_t errlen)
{
    parser_t p = {0};
    char *copy = strdup(text);

    p.r = calloc(1, sizeof(*p.r));
    if (!p.r || !copy) {
        errbuf_printf(err, errlen, "%s: out of memory", origin);
        goto err;
    }
    p.r->gap_ms = 30 * 60000;
    p.r->resolve_ms = 3600000;
    p.r->explain = 5;
    /* Without a sentiment line, sentiment alerts are off: a rule file written for fraud alone
     * keeps meaning that. The built-in rules switch them on. */
    p.r->sentiment = (alert_sentiment_t){0, 15 * 60000, 96, 5.0, 5, 1, 1};
    p.columns = columns;
    p.n_columns = n_columns;
    p.origin = origin;
    p.err = err;
    p.errlen = errlen;
    if (rules_parse_text(&p, copy) != 0)
        goto err;
    rules_finish(p.r);
    free(copy);
    return p.r;
err:
    free(copy);
    alert_rules_free(p.r);
    return NULL;
}

alert_rules_t *alert_rules_load(const char *path, const char *const *columns, size_t n_columns,
                                char *err, size_t errlen)
{
    char *text;
    alert_rules_t *r;
    if (textfile_read(path, FILE_MAX_BYTES, &text, NULL, err, errlen) != 0)
        return NULL;
    r = alert_rules_new(text, path, columns, n_columns, err, errlen);
    free(text);
    return r;
}

void alert_rules_free(alert_rules_t *r)
{
    free(r);
}

static int rules_cond_holds(const alert_cond_t *c, double v)
{
    if (isnan(v))
        return 0; /* != would hold otherwise */
    switch (c->op) {
    case OP_GE:
        return v >= c->threshold;
    case OP_GT:
        return v > c->threshold;
    case OP_LE:
        return v <= c->threshold;
    case OP_LT:
        return v < c->threshold;
    case OP_EQ:
        return v == c->threshold;
    case OP_NE:
        return v != c->threshold;
    }
    return 0;
}

alert_severity_t alert_rules_match(const alert_rules_t *r, float score, const float *features)
{
    for (size_t i = 0; i < r->n_rules; i++) {
        const alert_rule_t *rule = &r->rules[i];
        const alert_cond_t *c = &r->conds[rule->first], *end = c + rule->n;
        for (; c < end; c++) {
            double v;
            if (c->column == SCORE_COLUMN)
                v = score;
            else if (features)
                v = features[c->column];
            else
                break;
            if (!rules_cond_holds(c, v))
                break;
        }
        if (c == end)
            return rule->severity; /* rules are sorted: nothing later is higher */
    }
    return ALERT_SEVERITY_NONE;
}

const char *alert_rules_group_field(const alert_rules_t *r)
{
    return "user_id";
}

int64_t alert_rules_group_gap_ms(const alert_rules_t *r)
{
    return r->gap_ms;
}

int64_t alert_rules_resolve_after_ms(const alert_rules_t *r)
{
    return r->resolve_ms;
}

const alert_sentiment_t *alert_rules_sentiment(const alert_rules_t *r)
{
    return &r->sentiment;
}

size_t alert_rules_explain_top(const alert_rules_t *r)
{
    return r->explain;
}

size_t alert_rules_count(const alert_rules_t *r)
{
    return r->n_rules;
}

float alert_rules_min_score(const alert_rules_t *r)
{
    return r->min_score;
}
