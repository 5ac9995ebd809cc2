/* Alert rules: a small rule file, compiled against the feature columns of the active
 * feature spec, says which scored events are alert-worthy and at what severity, how such events
 * of one entity group into one alert, when an open alert resolves itself, and how many features
 * an alert's explanation lists.
 *
 * The language: one directive per line, words separated by spaces or tabs, blank lines ignored,
 * lines at most 1024 bytes. A `#` at the start of a word comments out the rest of the line (a `#`
 * inside a word is part of it: categorical columns are named like `type#3`).
 *
 *   rule SEVERITY COND [COND...]  SEVERITY: low, medium, high or critical (in that order). COND:
 *                                 NAME OP NUMBER without spaces (score>=0.9, user.zscore.amount>3),
 *                                 OP one of >= > <= < == !=, NAME `score` (always the risk model's
 *                                 probability) or a feature column. A rule matches when all its
 *                                 conditions hold; each needs one on score. Up to 64 rules of up
 *                                 to 16 conditions; an event gets the highest severity that
 *                                 matches.
 *   group user_id GAP             alert-worthy events of one user at most GAP apart (event time)
 *                                 form one alert. Default 30m.
 *   resolve_after DURATION        an open alert with no new event for DURATION (wall clock)
 *                                 resolves itself; 0: never. Default 1h.
 *   explain K                     features an alert's explanation lists, 1..16. Default 5.
 *   sentiment SETTING...          market-sentiment alerts from the news (alert_sentiment_t):
 *                                 `sentiment off`, or key=value settings window=DURATION,
 *                                 history=N (2..10000), z=X (> 0), min_articles=N and
 *                                 keys=ticker,topic (either or both); those left out take the
 *                                 defaults 15m, 96, 5, 5 and both. Without a sentiment line they
 *                                 are off; the built-in rules switch them on.
 *
 * GAP and DURATION: a positive integer and a unit s, m, h or d (90s, 30m, 1h, 7d), at most 366
 * days. group, resolve_after, explain and sentiment appear at most once; a file needs a rule or
 * a sentiment line that is not off.
 * NUMBER is finite and taken at float precision, as scores and features are floats: score>=0.9
 * holds for the float nearest 0.9. A NaN score or feature makes a condition on it false. */
#ifndef VIGIL_ALERT_RULES_H
#define VIGIL_ALERT_RULES_H

#include <stddef.h>
#include <stdint.h>

typedef enum alert_severity {
    ALERT_SEVERITY_NONE = -1,
    ALERT_SEVERITY_LOW,
    ALERT_SEVERITY_MEDIUM,
    ALERT_SEVERITY_HIGH,
    ALERT_SEVERITY_CRITICAL,
    ALERT_SEVERITIES
} alert_severity_t;

/* "low" ... "critical"; "none" for ALERT_SEVERITY_NONE and anything out of range. */
const char *alert_severity_name(alert_severity_t s);
/* The severity named name, ALERT_SEVERITY_NONE when unknown. */
alert_severity_t alert_severity_parse(const char *name);

typedef struct alert_rules alert_rules_t;

/* Sentiment alerts: per ticker and per predicted topic, articles are counted in windows of
 * publication time; a window alerts when it has min_articles and its volume or its negative
 * share is z standard deviations above the `history` windows before it (docs/alerts.md). */
typedef struct alert_sentiment {
    int on;
    int64_t window_ms;
    int history;
    double z;
    int min_articles;
    int by_ticker, by_topic;
} alert_sentiment_t;

/* The built-in rules: the risk model's score alone (docs/alerts.md). Origin "built-in rules". */
extern const char alert_rules_default[];

/* Compiles rule text against the feature columns (n_columns names, borrowed only during the
 * call). origin names the text in errors (a path, "built-in rules"): every error says
 * origin:line: and what is wrong. Returns NULL with err. */
alert_rules_t *alert_rules_new(const char *text, const char *origin, const char *const *columns,
                               size_t n_columns, char *err, size_t errlen);
/* Reads the file at path and compiles it (origin: path). A file that cannot be read is an error
 * naming the path and why. */
alert_rules_t *alert_rules_load(const char *path, const char *const *columns, size_t n_columns,
                                char *err, size_t errlen);
void alert_rules_free(alert_rules_t *r);

/* The highest severity of the rules that match an event with this score and this raw feature
 * vector (n_columns floats, indexed as the columns given at compile time). features may be NULL:
 * a condition on a column is then false. Cheap enough for every event. */
alert_severity_t alert_rules_match(const alert_rules_t *r, float score, const float *features);

const char *alert_rules_group_field(const alert_rules_t *r); /* "user_id" */
int64_t alert_rules_group_gap_ms(const alert_rules_t *r);
int64_t alert_rules_resolve_after_ms(const alert_rules_t *r); /* 0: never */
size_t alert_rules_explain_top(const alert_rules_t *r);
const alert_sentiment_t *alert_rules_sentiment(const alert_rules_t *r);
size_t alert_rules_count(const alert_rules_t *r);
/* A score below this can never alert, so callers may skip alert_rules_match: the minimum over the
 * rules of the largest lower bound their score conditions set (>=, >, ==), 0 for a rule without
 * one (scores are probabilities). */
float alert_rules_min_score(const alert_rules_t *r);

#endif
