/* Alert rules: the built-in rules at their score boundaries, rules on feature columns (names with
 * '=' and '#' in them), severities and OR within one, the settings and their defaults, every
 * compile error naming origin:line, loading from a file, and the score floor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert_rules.h"
#include "test.h"

enum { C_NOVEL_DEVICE, C_ZSCORE_AMOUNT, C_LOGIN_FAILED, C_TYPE3, C_N };
static const char *const columns[C_N] = {
    [C_NOVEL_DEVICE] = "user.novel.device_id",
    [C_ZSCORE_AMOUNT] = "user.zscore.amount",
    [C_LOGIN_FAILED] = "user.count_if.event_type=LOGIN_FAILED.1h",
    [C_TYPE3] = "type#3",
};

static alert_rules_t *compile(const char *text)
{
    char err[512] = "";
    alert_rules_t *r = alert_rules_new(text, "t.rules", columns, C_N, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    return r;
}

/* The compile error of text starts with want_prefix ("t.rules:LINE: ") and contains want. */
static void expect_error(const char *text, const char *want_prefix, const char *want)
{
    char err[512] = "";
    alert_rules_t *r = alert_rules_new(text, "t.rules", columns, C_N, err, sizeof err);
    CHECK(r == NULL);
    CHECK_MSG(strncmp(err, want_prefix, strlen(want_prefix)) == 0,
              "error \"%s\" lacks prefix \"%s\"", err, want_prefix);
    CHECK_MSG(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    alert_rules_free(r);
}

static void test_severity_names(void)
{
    CHECK_STR(alert_severity_name(ALERT_SEVERITY_LOW), "low");
    CHECK_STR(alert_severity_name(ALERT_SEVERITY_CRITICAL), "critical");
    CHECK_STR(alert_severity_name(ALERT_SEVERITY_NONE), "none");
    CHECK_STR(alert_severity_name(ALERT_SEVERITIES), "none");
    CHECK(alert_severity_parse("medium") == ALERT_SEVERITY_MEDIUM);
    CHECK(alert_severity_parse("high") == ALERT_SEVERITY_HIGH);
    CHECK(alert_severity_parse("High") == ALERT_SEVERITY_NONE);
    CHECK(alert_severity_parse("none") == ALERT_SEVERITY_NONE);
    CHECK(ALERT_SEVERITY_LOW < ALERT_SEVERITY_MEDIUM &&
          ALERT_SEVERITY_HIGH < ALERT_SEVERITY_CRITICAL);
}

static void test_default(void)
{
    char err[512] = "";
    alert_rules_t *r =
        alert_rules_new(alert_rules_default, "built-in rules", NULL, 0, err, sizeof err);
    alert_rules_t *r2 =
        alert_rules_new(alert_rules_default, "built-in rules", columns, C_N, err, sizeof err);
    float f[C_N] = {1, 9, 9, 1};
    CHECK_MSG(r != NULL && r2 != NULL, "%s", err);
    if (!r || !r2)
        goto out;
    CHECK(alert_rules_count(r) == 3);
    CHECK_STR(alert_rules_group_field(r), "user_id");
    CHECK(alert_rules_group_gap_ms(r) == 30 * 60 * 1000);
    CHECK(alert_rules_resolve_after_ms(r) == 3600 * 1000);
    CHECK(alert_rules_explain_top(r) == 5);
    CHECK(alert_rules_min_score(r) == 0.80f);
    CHECK(alert_rules_match(r, 1.0f, NULL) == ALERT_SEVERITY_CRITICAL);
    CHECK(alert_rules_match(r, 0.97f, NULL) == ALERT_SEVERITY_CRITICAL);
    CHECK(alert_rules_match(r, 0.969f, NULL) == ALERT_SEVERITY_HIGH);
    /* 0.90f is just below 0.9 as a double: thresholds are taken at float precision. */
    CHECK(alert_rules_match(r, 0.90f, NULL) == ALERT_SEVERITY_HIGH);
    CHECK(alert_rules_match(r, nextafterf(0.90f, 0), NULL) == ALERT_SEVERITY_MEDIUM);
    CHECK(alert_rules_match(r, 0.80f, NULL) == ALERT_SEVERITY_MEDIUM);
    CHECK(alert_rules_match(r, 0.79f, NULL) == ALERT_SEVERITY_NONE);
    CHECK(alert_rules_match(r, 0.0f, NULL) == ALERT_SEVERITY_NONE);
    CHECK(alert_rules_match(r, NAN, NULL) == ALERT_SEVERITY_NONE);
    CHECK(alert_rules_match(r2, 0.95f, f) == ALERT_SEVERITY_HIGH);
    CHECK(alert_rules_match(r2, NAN, f) == ALERT_SEVERITY_NONE);
out:
    alert_rules_free(r);
    alert_rules_free(r2);
}

static void test_feature_rules(void)
{
    alert_rules_t *r =
        compile("# new device and an odd amount: lower the bar\n"
                "rule high score>=0.5 user.novel.device_id==1 user.zscore.amount>3\n"
                "rule critical score>0.6 user.count_if.event_type=LOGIN_FAILED.1h>=3\n"
                "rule low score>=0.2\ttype#3!=0   # a comment after a word\n"
                "rule low score>=0.3 user.zscore.amount<=-2\n");
    float f[C_N] = {0, 0, 0, 0};
    if (!r)
        return;
    CHECK(alert_rules_count(r) == 4);
    CHECK(alert_rules_min_score(r) == 0.2f);
    CHECK(alert_rules_match(r, 0.9f, f) == ALERT_SEVERITY_NONE);
    f[C_NOVEL_DEVICE] = 1;
    CHECK(alert_rules_match(r, 0.9f, f) == ALERT_SEVERITY_NONE); /* zscore 0: not > 3 */
    f[C_ZSCORE_AMOUNT] = 3;
    CHECK(alert_rules_match(r, 0.9f, f) == ALERT_SEVERITY_NONE); /* > is strict */
    f[C_ZSCORE_AMOUNT] = 3.5f;
    CHECK(alert_rules_match(r, 0.9f, f) == ALERT_SEVERITY_HIGH);
    CHECK(alert_rules_match(r, 0.49f, f) == ALERT_SEVERITY_NONE);
    f[C_LOGIN_FAILED] = 3;
    CHECK(alert_rules_match(r, 0.9f, f) == ALERT_SEVERITY_CRITICAL);
    CHECK(alert_rules_match(r, 0.6f, f) == ALERT_SEVERITY_HIGH); /* score>0.6 is strict */
    f[C_NOVEL_DEVICE] = NAN;
    CHECK(alert_rules_match(r, 0.55f, f) == ALERT_SEVERITY_NONE);
    /* Two low rules: either one is enough. */
    f[C_TYPE3] = 1;
    CHECK(alert_rules_match(r, 0.25f, f) == ALERT_SEVERITY_LOW);
    f[C_TYPE3] = NAN; /* NaN != 0 is no match */
    CHECK(alert_rules_match(r, 0.25f, f) == ALERT_SEVERITY_NONE);
    f[C_ZSCORE_AMOUNT] = -2;
    CHECK(alert_rules_match(r, 0.25f, f) == ALERT_SEVERITY_NONE);
    CHECK(alert_rules_match(r, 0.35f, f) == ALERT_SEVERITY_LOW);
    /* Without a feature vector only rules on the score alone can match. */
    CHECK(alert_rules_match(r, 0.99f, NULL) == ALERT_SEVERITY_NONE);
    alert_rules_free(r);

    /* A rule of lower severity written first does not hide a higher one. */
    r = compile("rule low score>=0.1\nrule medium score>=0.5 score<0.7\nrule medium score>=0.9\n");
    if (!r)
        return;
    CHECK(alert_rules_match(r, 0.6f, NULL) == ALERT_SEVERITY_MEDIUM);
    CHECK(alert_rules_match(r, 0.8f, NULL) == ALERT_SEVERITY_LOW);
    CHECK(alert_rules_match(r, 0.95f, NULL) == ALERT_SEVERITY_MEDIUM);
    CHECK(alert_rules_min_score(r) == 0.1f);
    alert_rules_free(r);
}

static void test_settings(void)
{
    alert_rules_t *d = compile("rule high score>=0.9\n"); /* the defaults */
    if (d) {
        CHECK(alert_rules_group_gap_ms(d) == 30 * 60 * 1000);
        CHECK(alert_rules_resolve_after_ms(d) == 3600 * 1000);
        CHECK(alert_rules_explain_top(d) == 5);
        alert_rules_free(d);
    }
    alert_rules_t *r =
        compile("rule high score>=0.9\ngroup user_id 90s\nresolve_after 7d\nexplain 16\n");
    if (r) {
        CHECK(alert_rules_group_gap_ms(r) == 90000);
        CHECK(alert_rules_resolve_after_ms(r) == 7LL * 86400 * 1000);
        CHECK(alert_rules_explain_top(r) == 16);
        alert_rules_free(r);
    }
    r = compile("\n  \t\n# nothing but a rule\r\nrule high score>=0.9\r\nresolve_after 0\ngroup "
                "user_id 366d\n"
                "explain 1");
    if (r) {
        CHECK(alert_rules_resolve_after_ms(r) == 0);
        CHECK(alert_rules_group_gap_ms(r) == 366LL * 86400 * 1000);
        CHECK(alert_rules_explain_top(r) == 1);
        alert_rules_free(r);
    }
    /* min_score: a rule without a lower bound on the score can alert at any score. */
    r = compile("rule high score>=0.9\nrule low score<0.01 user.zscore.amount>5\n");
    if (r) {
        CHECK(alert_rules_min_score(r) == 0.0f);
        alert_rules_free(r);
    }
    r = compile("rule high score>=0.5 score>0.7 score!=0.8\nrule critical score==0.75\n");
    if (r) {
        CHECK(alert_rules_min_score(r) == 0.7f);
        CHECK(alert_rules_match(r, 0.75f, NULL) == ALERT_SEVERITY_CRITICAL);
        CHECK(alert_rules_match(r, 0.8f, NULL) == ALERT_SEVERITY_NONE);
        alert_rules_free(r);
    }
}

static void test_errors(void)
{
    char line[1100];
    expect_error(
        "rule high score>=0.9\nalert high score>0.5\n", "t.rules:2: ",
        "unknown directive alert (directives: rule, group, resolve_after, explain, sentiment)");
    expect_error("rule severe score>=0.9\n",
                 "t.rules:1: ", "unknown severity severe (one of low, medium, high, critical)");
    expect_error("\nrule high score>=0.9 user.novel.ip==1\n",
                 "t.rules:2: ", "unknown column user.novel.ip");
    expect_error("rule high score >= 0.9\n", "t.rules:1: ", "not a condition: score");
    /* '=' may be part of a column name, so this is score= > 0.9 */
    expect_error("rule high score=>0.9\n", "t.rules:1: ", "unknown column score=:");
    expect_error("rule high score>=0.9x\n", "t.rules:1: ", "not a condition");
    expect_error("rule high >=0.9\n", "t.rules:1: ", "not a condition");
    expect_error("rule high score>=nan\n", "t.rules:1: ", "finite");
    expect_error("rule high score>=inf\n", "t.rules:1: ", "finite");
    expect_error("rule high score>=1e300\n", "t.rules:1: ", "finite");
    expect_error("rule high\n", "t.rules:1: ", "usage: rule SEVERITY COND");
    expect_error("rule low score>=0.1\nrule high user.zscore.amount>3\n",
                 "t.rules:2: ", "a rule needs a condition on score, e.g. score>=0.9");
    expect_error("rule high score>=0.9\ngroup user_id 30x\n", "t.rules:2: ", "not a duration: 30x");
    expect_error("rule high score>=0.9\ngroup user_id 0m\n", "t.rules:2: ", "not a duration: 0m");
    expect_error("rule high score>=0.9\ngroup user_id 30\n", "t.rules:2: ", "not a duration: 30");
    expect_error("rule high score>=0.9\nresolve_after 367d\n",
                 "t.rules:2: ", "longer than 366 days");
    expect_error("rule high score>=0.9\nresolve_after -1h\n", "t.rules:2: ", "not a duration");
    expect_error("group user_id 30m\nrule high score>=0.9\ngroup user_id 1h\n",
                 "t.rules:3: ", "a second group line (the first is line 1)");
    expect_error("rule high score>=0.9\nexplain 3\nexplain 3\n",
                 "t.rules:3: ", "(the first is line 2)");
    expect_error("rule high score>=0.9\nexplain 0\n", "t.rules:2: ", "explain takes 1..16");
    expect_error("rule high score>=0.9\nexplain 17\n", "t.rules:2: ", "explain takes 1..16");
    expect_error("rule high score>=0.9\nexplain 5 6\n", "t.rules:2: ", "usage: explain K");
    expect_error("rule high score>=0.9\ngroup device_id 30m\n",
                 "t.rules:2: ", "only user_id is supported");
    expect_error("rule high score>=0.9\ngroup user_id 30m extra\n",
                 "t.rules:2: ", "usage: group FIELD GAP");
    expect_error("group user_id 30m\nexplain 3\n",
                 "t.rules:2: ", "no rule and no sentiment line: nothing would ever alert");
    expect_error("", "t.rules:1: ", "no rule");
    expect_error("rule high score>=0.9 s0>1 s1>1 s2>1 s3>1 s4>1 s5>1 s6>1 s7>1 s8>1 s9>1 s10>1 "
                 "s11>1 s12>1 s13>1 s14>1 s15>1\n",
                 "t.rules:1: ", "at most 16 conditions");
    {
        alert_rules_t *r = compile("rule high score>=0.1 score>=0.1 score>=0.1 score>=0.1 "
                                   "score>=0.1 score>=0.1 score>=0.1 score>=0.1 score>=0.1 "
                                   "score>=0.1 score>=0.1 score>=0.1 score>=0.1 score>=0.1 "
                                   "score>=0.1 score>=0.1\n"); /* 16: the most a rule takes */
        CHECK(r != NULL);
        alert_rules_free(r);
    }
    memset(line, ' ', sizeof line);
    memcpy(line, "rule high score>=0.9", 20);
    line[1025] = '\0'; /* 1025 bytes: one too many */
    {
        char text[1200];
        snprintf(text, sizeof text, "explain 3\n%s\n", line);
        expect_error(text, "t.rules:2: ", "longer than 1024 bytes");
        line[1024] = '\0'; /* exactly 1024 is fine */
        snprintf(text, sizeof text, "explain 3\n%s\n", line);
        alert_rules_t *r = compile(text);
        CHECK(r != NULL);
        alert_rules_free(r);
    }
    {
        char text[2048] = "";
        for (int i = 0; i < 65; i++)
            strcat(text, "rule low score>=0.5\n");
        expect_error(text, "t.rules:65: ", "more than 64 rules");
    }
}

static void test_load(void)
{
    char path[] = "/tmp/vigil_test_rules_XXXXXX", err[512] = "";
    const char *text = "rule critical score>=0.99 user.novel.device_id==1\nexplain 3\nbogus\n";
    int fd = mkstemp(path);
    FILE *f;
    alert_rules_t *r;
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    f = fdopen(fd, "w");
    CHECK(f != NULL);
    if (!f) {
        close(fd);
        unlink(path);
        return;
    }
    fputs(text, f);
    fclose(f);
    /* The file's own name is the origin. */
    r = alert_rules_load(path, columns, C_N, err, sizeof err);
    CHECK(r == NULL);
    CHECK_MSG(strncmp(err, path, strlen(path)) == 0 && strstr(err, ":3: unknown directive bogus"),
              "%s", err);
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs("rule critical score>=0.99 user.novel.device_id==1\nexplain 3\n", f);
        fclose(f);
        r = alert_rules_load(path, columns, C_N, err, sizeof err);
        CHECK_MSG(r != NULL, "%s", err);
        if (r) {
            float v[C_N] = {1, 0, 0, 0};
            CHECK(alert_rules_explain_top(r) == 3);
            CHECK(alert_rules_match(r, 0.995f, v) == ALERT_SEVERITY_CRITICAL);
            alert_rules_free(r);
        }
    }
    unlink(path);
    r = alert_rules_load(path, columns, C_N, err, sizeof err);
    CHECK(r == NULL);
    CHECK_MSG(strstr(err, path) && strstr(err, "No such file or directory"), "%s", err);
    r = alert_rules_load("/tmp", columns, C_N, err, sizeof err);
    CHECK(r == NULL);
    CHECK_MSG(strncmp(err, "/tmp: ", 6) == 0, "%s", err);
}

/* The sentiment line: the built-in settings, off without a line or with `off`, each setting,
 * a file with only a sentiment line, and its errors. */
static void test_sentiment(void)
{
    char err[512] = "";
    alert_rules_t *r =
        alert_rules_new(alert_rules_default, "built-in rules", NULL, 0, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    if (r) {
        const alert_sentiment_t *s = alert_rules_sentiment(r);
        CHECK(s->on && s->window_ms == 15 * 60000 && s->history == 96 && s->z == 5.0 &&
              s->min_articles == 5 && s->by_ticker && s->by_topic);
    }
    alert_rules_free(r);

    r = compile("rule high score>=0.9\n");
    CHECK(r && !alert_rules_sentiment(r)->on);
    alert_rules_free(r);
    r = compile("rule high score>=0.9\nsentiment off\n");
    CHECK(r && !alert_rules_sentiment(r)->on);
    alert_rules_free(r);

    r = compile("sentiment window=1m history=30 z=4.5 min_articles=3 keys=topic # news only\n");
    CHECK(r && alert_rules_count(r) == 0);
    if (r) {
        const alert_sentiment_t *s = alert_rules_sentiment(r);
        CHECK(s->on && s->window_ms == 60000 && s->history == 30 && s->z == 4.5 &&
              s->min_articles == 3 && !s->by_ticker && s->by_topic);
        CHECK(alert_rules_match(r, 1.0f, NULL) == ALERT_SEVERITY_NONE);
    }
    alert_rules_free(r);
    r = compile("sentiment keys=ticker\n");
    CHECK(r && alert_rules_sentiment(r)->by_ticker && !alert_rules_sentiment(r)->by_topic &&
          alert_rules_sentiment(r)->history == 96);
    alert_rules_free(r);

    expect_error("sentiment off\n", "t.rules:1: ", "no rule and no sentiment line");
    expect_error("rule high score>=0.9\nsentiment z=0\n", "t.rules:2: ", "sentiment z takes");
    expect_error("rule high score>=0.9\nsentiment history=1\n",
                 "t.rules:2: ", "sentiment history takes a whole number from 2");
    expect_error("rule high score>=0.9\nsentiment keys=sector\n",
                 "t.rules:2: ", "sentiment keys are ticker and topic, not sector");
    expect_error("rule high score>=0.9\nsentiment window=5\n", "t.rules:2: ", "5");
    expect_error("rule high score>=0.9\nsentiment colour=red\n",
                 "t.rules:2: ", "unknown sentiment setting colour");
    expect_error("rule high score>=0.9\nsentiment 15m\n", "t.rules:2: ", "usage: sentiment off");
    expect_error("sentiment z=4\nsentiment z=5\n",
                 "t.rules:2: ", "a second sentiment line (the first is line 1)");
}

int main(void)
{
    test_severity_names();
    test_default();
    test_feature_rules();
    test_settings();
    test_errors();
    test_load();
    test_sentiment();
    return TEST_DONE();
}
