/* vigild: the daemon's entry point and life cycle.
 *
 * Start: configuration (file < VIGIL_* environment < flags; any error exits 2 naming its origin),
 * optionally the embedded Kafka, the HTTP server, the model runtime, then the lanes (lanes.h).
 * The main thread runs the libevent loop: signals, HTTP, the systemd watchdog, the periodic
 * status line and the model servers' gauges.
 *
 * Stop (SIGTERM/SIGINT): every lane stops consuming, commits what is in flight and leaves the
 * group; the process exits 0 when that finished within daemon.shutdown_timeout_ms, 1 otherwise.
 * Reload (SIGHUP): the configuration is read again; reloadable keys are applied, others are
 * logged as needing a restart. */
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "alert_config.h"
#include "alerter.h"
#include "config.h"
#include "decoder.h"
#include "delivery.h"
#include "delivery_am.h"
#include "delivery_kafka.h"
#include "errbuf.h"
#include "http.h"
#include "ingest_kafka.h"
#include "ingest_mock.h"
#include "lanes.h"
#include "log.h"
#include "metrics.h"
#include "sdnotify.h"

extern char **environ;

#define VIGILD_MAX_FLAGS 256

typedef struct vigild {
    /* What the configuration was loaded from, to load it again on SIGHUP. */
    const char *config_path;
    const char *flags[VIGILD_MAX_FLAGS];
    size_t n_flags;
    daemon_config_t cfg;

    struct event_base *base;
    struct event *ev_term, *ev_int, *ev_hup, *ev_ready, *ev_exited, *ev_status, *ev_watchdog,
        *ev_deadline, *ev_models;
    daemon_http_t *http;
    ingest_mock_t *mock;
    lanes_t *lanes;
    model_runtime_t *runtime; /* NULL: no model configured at start */
    alerter_t *alerter;       /* NULL: no alert resolves itself */
    delivery_t *delivery[2];  /* the alerts topic, Alertmanager; NULL: not configured */
    int has_features;         /* risk scoring possible (features.spec is not off) */
    uint64_t watchdog_usec;
    int stopping;
    int timed_out;
} vigild_t;

static void vigild_usage(FILE *out)
{
    fprintf(out,
            "usage: vigild [--config FILE] [--set section.key=value ...] [--embedded-kafka]\n"
            "              [--check-config] [--print-defaults]\n"
            "  --config FILE      configuration file (also $VIGIL_CONFIG)\n"
            "  --set K=V          override one key, e.g. --set ingest.batch_max=1000,\n"
            "                     --set kafka.security.protocol=ssl\n"
            "  --embedded-kafka   run librdkafka's mock cluster in this process and consume it\n"
            "  --check-config     validate the configuration and exit (0 ok, 2 bad)\n"
            "  --print-defaults   print every key with its default and exit\n"
            "Configuration reference: docs/configuration.md\n");
}

/* The [kafka] pass-through settings as parallel arrays, plus bootstrap.servers of the embedded
 * cluster when there is one (it wins: the user asked for the embedded Kafka). */
typedef struct vigild_kafka_kv {
    const char **keys, **values, **origins;
    size_t n;
} vigild_kafka_kv_t;

static int vigild_kafka_kv(const daemon_config_t *cfg, const char *bootstrap, vigild_kafka_kv_t *kv)
{
    size_t n = cfg->n_kafka + 1;
    kv->keys = calloc(n, sizeof(char *));
    kv->values = calloc(n, sizeof(char *));
    kv->origins = calloc(n, sizeof(char *));
    if (!kv->keys || !kv->values || !kv->origins)
        return -1;
    kv->n = 0;
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        kv->keys[kv->n] = cfg->kafka[i].key;
        kv->values[kv->n] = cfg->kafka[i].value;
        kv->origins[kv->n] = cfg->kafka[i].origin;
        kv->n++;
    }
    if (bootstrap) {
        kv->keys[kv->n] = "bootstrap.servers";
        kv->values[kv->n] = bootstrap;
        kv->origins[kv->n] = "--embedded-kafka";
        kv->n++;
    }
    return 0;
}

static void vigild_kafka_kv_free(vigild_kafka_kv_t *kv)
{
    free(kv->keys);
    free(kv->values);
    free(kv->origins);
}

/* --- events (main thread) -------------------------------------------------------------- */

static void vigild_status(vigild_t *d, int to_log)
{
    char line[512];
    metrics_totals_t total = metrics_topics_total();
    snprintf(line, sizeof(line),
             "STATUS=consumed=%llu written=%llu dead_lettered=%llu batches=%llu partitions=%lld "
             "postgres=%s",
             (unsigned long long)total.consumed, (unsigned long long)total.written,
             (unsigned long long)total.dead_lettered,
             (unsigned long long)atomic_load(&metrics.batches),
             (long long)total.assigned_partitions, atomic_load(&metrics.pg_up) ? "up" : "down");
    if (sdnotify_send(line) != 0)
        log_warn("sd_notify STATUS failed", "error=\"%s\"", strerror(errno));
    if (to_log)
        log_info("status", "%s", line + strlen("STATUS="));
}

static void vigild_on_status(evutil_socket_t fd, short what, void *arg)
{
    vigild_status(arg, 1);
}

static void vigild_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    vigild_t *d = arg;
    /* Only lanes whose threads are all still turning count as alive; a wedged one lets systemd's
     * watchdog restart us. */
    int64_t age_ms = lanes_now_ms() - lanes_heartbeat_ms(d->lanes);
    if (age_ms * 1000 < (int64_t)d->watchdog_usec) {
        if (sdnotify_send("WATCHDOG=1") != 0)
            log_warn("sd_notify WATCHDOG failed", "error=\"%s\"", strerror(errno));
    } else {
        log_error("a lane thread stalled; withholding the watchdog ping", "stalled_ms=%lld",
                  (long long)age_ms);
    }
}

static void vigild_on_deadline(evutil_socket_t fd, short what, void *arg)
{
    vigild_t *d = arg;
    if (lanes_drained(d->lanes))
        /* Everything consumed is committed; only leaving the group is slow (a broker that does
         * not answer). The group notices our absence when the session times out. */
        log_warn("shutdown bound passed while leaving the Kafka group; everything consumed is "
                 "committed, exiting",
                 "shutdown_timeout_ms=%d", d->cfg.daemon_shutdown_timeout_ms);
    else
        log_error("shutdown bound passed before the batches in flight committed; exiting anyway",
                  "shutdown_timeout_ms=%d", d->cfg.daemon_shutdown_timeout_ms);
    d->timed_out = 1;
    event_base_loopbreak(d->base);
}

static void vigild_begin_stop(vigild_t *d, const char *why)
{
    struct timeval tv;
    if (d->stopping)
        return;
    d->stopping = 1;
    log_info("stopping", "reason=%s shutdown_timeout_ms=%d", why,
             d->cfg.daemon_shutdown_timeout_ms);
    if (sdnotify_send("STOPPING=1") != 0)
        log_warn("sd_notify STOPPING failed", "error=\"%s\"", strerror(errno));
    lanes_stop(d->lanes);
    tv.tv_sec = d->cfg.daemon_shutdown_timeout_ms / 1000;
    tv.tv_usec = (d->cfg.daemon_shutdown_timeout_ms % 1000) * 1000;
    /* A little past the lanes' own bound, so they get to say what they gave up on. */
    tv.tv_usec += 200000;
    evtimer_add(d->ev_deadline, &tv);
}

static void vigild_on_signal(evutil_socket_t sig, short what, void *arg)
{
    vigild_begin_stop(arg, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* Whether a key's value may hold a credential and must stay out of the logs. */
static int vigild_key_is_secret(const char *name)
{
    static const char *const marks[] = {"password", "secret",  "conninfo", "sasl",
                                        "key.pem",  "ssl.key", "token",    "credential"};
    for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
        if (strstr(name, marks[i]))
            return 1;
    return 0;
}

static void vigild_log_change(const char *name, const char *old_value, const char *new_value,
                              int reloadable, void *ctx)
{
    char qo[600], qn[600];
    const char *o = "(redacted)", *n = "(redacted)";

    if (!vigild_key_is_secret(name)) {
        o = log_quote(old_value, qo, sizeof(qo));
        n = log_quote(new_value, qn, sizeof(qn));
    }
    if (reloadable)
        log_info("config changed", "key=%s old=\"%s\" new=\"%s\"", name, o, n);
    else
        log_warn("config change needs a restart; keeping the running value",
                 "key=%s old=\"%s\" new=\"%s\"", name, o, n);
}

static void vigild_status_timer(vigild_t *d)
{
    struct timeval tv = {d->cfg.daemon_status_interval_ms / 1000,
                         (d->cfg.daemon_status_interval_ms % 1000) * 1000};
    if (d->ev_status)
        event_free(d->ev_status); /* deletes it from the loop too */
    d->ev_status = event_new(d->base, -1, EV_PERSIST, vigild_on_status, d);
    if (d->ev_status)
        event_add(d->ev_status, &tv);
}

/* SIGHUP: a model file is read again, changed or not (operators replace the file in place and
 * signal). The model's server swaps it in between two jobs; a file it refuses leaves the
 * running model serving. kind: "risk" or "news"; *running and *wanted the paths in the running
 * and the new configuration (swapped when the new one is in force). */
static void vigild_reload_one(vigild_t *d, const char *kind, char **running, char **wanted)
{
    char err[1024], q[1100];
    const char *version;
    int news = strcmp(kind, "news") == 0;

    if ((*wanted)[0] == '\0') {
        if ((*running)[0] != '\0')
            log_warn("model path emptied; the running model keeps scoring until a restart",
                     "model=%s path=%s", kind, *running);
        return;
    }
    if (!d->runtime || (!news && !d->has_features)) {
        log_warn("model path set on reload; starting to score needs a restart", "model=%s path=%s",
                 kind, *wanted);
        return;
    }
    int rc = news ? model_runtime_news_reload(d->runtime, *wanted, &version, err, sizeof err)
                  : model_runtime_risk_reload(d->runtime, *wanted, &version, err, sizeof err);
    if (rc != 0) {
        metrics_add(&metrics.model_reload_errors, 1);
        log_error("model refused; the running model keeps scoring", "model=%s path=%s error=\"%s\"",
                  kind, *wanted, log_quote(err, q, sizeof q));
        return;
    }
    metrics_add(&metrics.model_reloads, 1);
    log_info("model loaded", "model=%s path=%s version=%s", kind, *wanted, version);
    char *swap = *running;
    *running = *wanted;
    *wanted = swap;
}

static void vigild_reload_model(vigild_t *d, daemon_config_t *next)
{
    vigild_reload_one(d, "risk", &d->cfg.model_risk_path, &next->model_risk_path);
    vigild_reload_one(d, "news", &d->cfg.model_news_path, &next->model_news_path);
}

static void vigild_on_hup(evutil_socket_t sig, short what, void *arg)
{
    vigild_t *d = arg;
    char err[1024];
    char q[1100];
    daemon_config_t next;
    log_level_t level;
    int changes;

    if (daemon_config_load(&next, d->config_path, environ, d->flags, d->n_flags, err,
                           sizeof(err))) {
        log_error("reload failed; keeping the running configuration", "error=\"%s\"",
                  log_quote(err, q, sizeof(q)));
        return;
    }
    changes = daemon_config_diff(&d->cfg, &next, vigild_log_change, d);
    /* Apply the reloadable keys; the rest keep their running values (see daemon_config_diff). */
    if (log_level_parse(next.log_level, &level) == 0)
        log_set_level(level);
    lanes_set_limits(d->lanes, next.ingest_batch_max, next.ingest_batch_max_delay_ms,
                     next.ingest_batch_linger_ms, next.postgres_retry_max_ms);
    vigild_reload_model(d, &next);
    d->cfg.ingest_batch_max = next.ingest_batch_max;
    d->cfg.ingest_batch_max_delay_ms = next.ingest_batch_max_delay_ms;
    d->cfg.ingest_batch_linger_ms = next.ingest_batch_linger_ms;
    d->cfg.postgres_retry_max_ms = next.postgres_retry_max_ms;
    if (d->cfg.daemon_status_interval_ms != next.daemon_status_interval_ms) {
        d->cfg.daemon_status_interval_ms = next.daemon_status_interval_ms;
        vigild_status_timer(d);
    }
    char *swap = d->cfg.log_level;
    d->cfg.log_level = next.log_level;
    next.log_level = swap;
    daemon_config_free(&next);
    log_info("configuration reloaded", "changes=%d", changes);
}

/* Called on a lane's thread: wake the main loop, nothing more. */
static void vigild_lanes_ready(void *ctx)
{
    vigild_t *d = ctx;
    event_active(d->ev_ready, 0, 0);
}

static void vigild_lanes_exited(void *ctx)
{
    vigild_t *d = ctx;
    event_active(d->ev_exited, 0, 0);
}

static void vigild_on_ready(evutil_socket_t fd, short what, void *arg)
{
    vigild_t *d = arg;
    if (sdnotify_send("READY=1") != 0)
        log_warn("sd_notify READY failed", "error=\"%s\"", strerror(errno));
    vigild_status(d, 0);
}

static void vigild_on_exited(evutil_socket_t fd, short what, void *arg)
{
    vigild_t *d = arg;
    if (!d->stopping)
        log_error("a lane ended on its own; stopping", NULL);
    d->stopping = 1;
    event_base_loopexit(d->base, NULL);
}

static int vigild_ready(void *ctx, char *why, size_t whylen)
{
    vigild_t *d = ctx;
    if (d->stopping) {
        errbuf_printf(why, whylen, "stopping");
        return 0;
    }
    if (!atomic_load(&metrics.pg_up)) {
        errbuf_printf(why, whylen, "PostgreSQL unreachable");
        return 0;
    }
    if (metrics_topics_total().assigned_partitions <= 0) {
        errbuf_printf(why, whylen, "no Kafka partitions assigned");
        return 0;
    }
    return 1;
}

/* Once a second: the model servers' queues, for /metrics. */
static void vigild_on_models(evutil_socket_t fd, short what, void *arg)
{
    vigild_t *d = arg;
    for (int i = 0; d->runtime && i < METRICS_MODELS; i++) {
        model_runtime_stats_t st;
        model_runtime_stats(d->runtime,
                            i == METRICS_MODEL_RISK ? MODEL_RUNTIME_RISK : MODEL_RUNTIME_NEWS, &st);
        atomic_store(&metrics.models[i].queued, (int64_t)st.queued);
        atomic_store(&metrics.models[i].busy, st.busy);
        atomic_store(&metrics.models[i].jobs, st.jobs);
        atomic_store(&metrics.models[i].busy_nanos, (uint64_t)(st.seconds * 1e9));
        atomic_store(&metrics.models[i].yield_nanos, (uint64_t)(st.yielded * 1e9));
    }
}

/* --- start ------------------------------------------------------------------------------- */

/* The embedded Kafka with a topic per input; its bootstrap address in *bootstrap. */
static int vigild_start_embedded(vigild_t *d, const daemon_input_t *inputs, size_t n_inputs,
                                 const char **bootstrap)
{
    char err[1024], q[1100];
    d->mock = ingest_mock_new(d->cfg.embedded_kafka_brokers, err, sizeof(err));
    int created = d->mock != NULL;
    for (size_t i = 0; created && i < n_inputs; i++)
        created = ingest_mock_topic_create(d->mock, inputs[i].topic,
                                           d->cfg.embedded_kafka_partitions, err, sizeof(err)) == 0;
    if (!created) {
        log_error("cannot start the embedded Kafka", "error=\"%s\"", log_quote(err, q, sizeof(q)));
        return -1;
    }
    *bootstrap = ingest_mock_bootstraps(d->mock);
    /* On stdout too, so a person or a script can point a producer at it. */
    for (size_t i = 0; i < n_inputs; i++)
        printf("embedded kafka bootstrap=%s topic=%s partitions=%d\n", *bootstrap, inputs[i].topic,
               d->cfg.embedded_kafka_partitions);
    fflush(stdout);
    log_info("embedded kafka started", "bootstrap=%s brokers=%d topics=%zu partitions=%d",
             *bootstrap, d->cfg.embedded_kafka_brokers, n_inputs, d->cfg.embedded_kafka_partitions);
    return 0;
}

/* Signals, the lanes' wake-ups, the status, model and watchdog timers. */
static int vigild_events(vigild_t *d)
{
    struct timeval second = {1, 0};
    if (evthread_use_pthreads() != 0 || !(d->base = event_base_new())) {
        log_error("cannot create the event loop", NULL);
        return -1;
    }
    d->ev_term = evsignal_new(d->base, SIGTERM, vigild_on_signal, d);
    d->ev_int = evsignal_new(d->base, SIGINT, vigild_on_signal, d);
    d->ev_hup = evsignal_new(d->base, SIGHUP, vigild_on_hup, d);
    d->ev_ready = event_new(d->base, -1, 0, vigild_on_ready, d);
    d->ev_exited = event_new(d->base, -1, 0, vigild_on_exited, d);
    d->ev_deadline = evtimer_new(d->base, vigild_on_deadline, d);
    d->ev_models = event_new(d->base, -1, EV_PERSIST, vigild_on_models, d);
    if (!d->ev_term || !d->ev_int || !d->ev_hup || !d->ev_ready || !d->ev_exited ||
        !d->ev_deadline || !d->ev_models || event_add(d->ev_term, NULL) ||
        event_add(d->ev_int, NULL) || event_add(d->ev_hup, NULL) ||
        event_add(d->ev_models, &second)) {
        log_error("cannot set up signal handling", NULL);
        return -1;
    }
    vigild_status_timer(d);
    if (!d->ev_status) {
        log_error("cannot set up the status timer", NULL);
        return -1;
    }
    d->watchdog_usec = sdnotify_watchdog_usec();
    if (d->watchdog_usec) {
        struct timeval tv = {(time_t)(d->watchdog_usec / 2 / 1000000),
                             (suseconds_t)(d->watchdog_usec / 2 % 1000000)};
        d->ev_watchdog = event_new(d->base, -1, EV_PERSIST, vigild_on_watchdog, d);
        if (!d->ev_watchdog || event_add(d->ev_watchdog, &tv)) {
            log_error("cannot set up the watchdog timer", NULL);
            return -1;
        }
        log_info("systemd watchdog enabled", "ping_every_ms=%llu",
                 (unsigned long long)(d->watchdog_usec / 2000));
    }
    return 0;
}

/* The decoder of each input, the feature spec of the BehaviorEvent input (compiled against
 * its decoder's reader schema, whose extra fields it may name) and the alert rules (against the
 * spec's columns), so that a bad schema, spec or rule file is a start-up error naming file:line.
 * Returns 0, -1, or -2 for a spec or rule file that does not compile (a configuration error:
 * exit status 2). On failure nothing is left allocated. */
static int vigild_inputs(vigild_t *d, const daemon_input_t *inputs, size_t n_inputs,
                         lanes_input_t *li, featurize_t **fz, alert_rules_t **rules)
{
    char err[1024], q[1100];
    *fz = NULL;
    *rules = NULL;
    for (size_t i = 0; i < n_inputs; i++) {
        li[i] = (lanes_input_t){inputs[i].topic,
                                daemon_decoder_new(&d->cfg, inputs[i].kind, err, sizeof(err))};
        if (!li[i].decoder) {
            log_error("cannot load Avro schemas", "topic=%s error=\"%s\"", inputs[i].topic,
                      log_quote(err, q, sizeof(q)));
            while (i-- > 0)
                ingest_avro_free(li[i].decoder);
            return -1;
        }
    }
    for (size_t i = 0; i < n_inputs && strcmp(d->cfg.features_spec, "off") != 0; i++) {
        if (ingest_avro_kind(li[i].decoder) != INGEST_KIND_EVENT)
            continue;
        *fz = featurize_new(li[i].decoder, d->cfg.features_spec, err, sizeof(err));
        if (!*fz) {
            log_error("cannot load the feature spec", "error=\"%s\"", log_quote(err, q, sizeof(q)));
            for (size_t j = 0; j < n_inputs; j++)
                ingest_avro_free(li[j].decoder);
            return -2;
        }
        if (alert_config_rules(*fz, d->cfg.alerts_rules, rules, err, sizeof err) != 0) {
            log_error("cannot load the alert rules", "error=\"%s\"", log_quote(err, q, sizeof(q)));
            featurize_free(*fz);
            *fz = NULL;
            for (size_t j = 0; j < n_inputs; j++)
                ingest_avro_free(li[j].decoder);
            return -2;
        }
        log_info("features", "spec=%s hash=%s columns=%zu max_entities=%d ttl_s=%d",
                 d->cfg.features_spec[0] ? d->cfg.features_spec : "built-in",
                 featurize_spec_hash(*fz), features_spec_width(featurize_spec(*fz)),
                 d->cfg.features_max_entities, d->cfg.features_ttl_s);
        if (*rules) {
            const alert_sentiment_t *st = alert_rules_sentiment(*rules);
            log_info("fraud alerts", "rules=%s count=%zu group_gap_ms=%lld resolve_after_ms=%lld",
                     d->cfg.alerts_rules[0] ? d->cfg.alerts_rules : "built-in",
                     alert_rules_count(*rules), (long long)alert_rules_group_gap_ms(*rules),
                     (long long)alert_rules_resolve_after_ms(*rules));
            if (st->on)
                log_info("sentiment alerts",
                         "window_ms=%lld history=%d z=%g min_articles=%d keys=%s",
                         (long long)st->window_ms, st->history, st->z, st->min_articles,
                         st->by_ticker && st->by_topic ? "ticker,topic"
                         : st->by_ticker               ? "ticker"
                                                       : "topic");
        }
    }
    return 0;
}

/* The alert sinks that are configured (alerts.kafka_topic, alerts.alertmanager_url), each on a
 * thread of its own (delivery.h). 0, or -1 after logging why. */
static int vigild_deliveries(vigild_t *d, const vigild_kafka_kv_t *kv)
{
    const daemon_config_t *c = &d->cfg;
    char err[1024], q[1100];
    delivery_sink_t sink;

    if (c->alerts_kafka_topic[0]) {
        if (delivery_kafka_sink(kv->keys, kv->values, kv->origins, kv->n, c->alerts_kafka_topic,
                                c->alerts_kafka_schema_id, c->alerts_delivery_timeout_ms, &sink,
                                err, sizeof err) != 0 ||
            !(d->delivery[0] = delivery_new(c->postgres_conninfo, sink, err, sizeof err)))
            goto fail;
        log_info("alerts topic", "topic=%s schema_id=%d", c->alerts_kafka_topic,
                 c->alerts_kafka_schema_id);
    }
    if (c->alerts_alertmanager_url[0]) {
        if (delivery_am_sink(c->alerts_alertmanager_url,
                             (int64_t)c->alerts_alertmanager_resend_s * 1000,
                             c->alerts_delivery_timeout_ms, &sink, err, sizeof err) != 0 ||
            !(d->delivery[1] = delivery_new(c->postgres_conninfo, sink, err, sizeof err)))
            goto fail;
        log_info("alertmanager", "url=%s resend_s=%d", c->alerts_alertmanager_url,
                 c->alerts_alertmanager_resend_s);
    }
    return 0;
fail:
    log_error("cannot start alert delivery", "error=\"%s\"", log_quote(err, q, sizeof q));
    return -1;
}

/* model.news_priority (the table allows only these words). */
static model_runtime_priority_t vigild_priority(const char *word)
{
    return strcmp(word, "idle") == 0  ? MODEL_RUNTIME_PRIORITY_IDLE
           : strcmp(word, "low") == 0 ? MODEL_RUNTIME_PRIORITY_LOW
                                      : MODEL_RUNTIME_PRIORITY_NORMAL;
}

/* The model runtime, when there is something to score: without features there is nothing for
 * the risk model, and without a model nothing to load (no backend, no BLAS threads, no device
 * probe). Returns 0 (d->runtime may stay NULL) or -1. */
static int vigild_models(vigild_t *d, const featurize_t *fz)
{
    char err[1024], q[1100];
    if (!(fz && d->cfg.model_risk_path[0]) && !d->cfg.model_news_path[0]) {
        if (d->cfg.model_risk_path[0])
            log_warn("model.risk_path is set but features.spec is off: events are stored unscored",
                     "model=%s", d->cfg.model_risk_path);
        return 0;
    }
    model_runtime_options_t mo = {.backend = d->cfg.model_backend,
                                  .threads = d->cfg.model_threads,
                                  .risk_path = fz ? d->cfg.model_risk_path : "",
                                  .spec_hash = fz ? featurize_spec_hash(fz) : NULL,
                                  .max_batch = (size_t)d->cfg.model_max_batch,
                                  .news_path = d->cfg.model_news_path,
                                  .encoder_dir = d->cfg.model_encoder_dir,
                                  .max_seq = d->cfg.model_max_seq,
                                  .news_priority = vigild_priority(d->cfg.model_news_priority)};
    d->runtime = model_runtime_new(&mo, err, sizeof(err));
    if (!d->runtime) {
        log_error("cannot start the model runtime", "error=\"%s\"", log_quote(err, q, sizeof(q)));
        return -1;
    }
    const char *wp = getenv("OMP_WAIT_POLICY");
    if (d->cfg.model_threads != 1 && (!wp || strcasecmp(wp, "passive") != 0))
        log_warn("model.threads is not 1 and OMP_WAIT_POLICY is not passive: OpenMP's "
                 "spinning threads will contend with OpenBLAS's; set OMP_WAIT_POLICY=passive "
                 "in vigild's environment (the systemd unit does)",
                 "threads=%d", d->cfg.model_threads);
    const char *rv = model_runtime_risk_version(d->runtime);
    const char *nv = model_runtime_news_version(d->runtime);
    log_info("model runtime",
             "backend=\"%s\" risk_model=%s version=%s news_model=%s news_version=%s encoder=%s "
             "news_pace=\"%s\"",
             model_runtime_backend(d->runtime),
             d->cfg.model_risk_path[0] ? d->cfg.model_risk_path : "none", rv ? rv : "none",
             d->cfg.model_news_path[0] ? d->cfg.model_news_path : "none", nv ? nv : "none",
             nv ? model_runtime_news_encoder(d->runtime) : "none",
             log_quote(model_runtime_news_pace(d->runtime), q, sizeof(q)));
    return 0;
}

/* The lanes, given the inputs' decoders and the feature spec (both theirs from here on). */
static int vigild_lanes(vigild_t *d, const lanes_input_t *li, size_t n_inputs, featurize_t *fz,
                        alert_rules_t *rules, const vigild_kafka_kv_t *kv)
{
    char err[1024], q[1100];
    lanes_options_t lo = {
        .featurize = fz,
        .alert_rules = rules,
        .runtime = d->runtime,
        .news_batch_max =
            d->runtime && d->cfg.model_news_path[0] ? (size_t)d->cfg.model_news_max_batch : 0,
        .features_max_entities = (uint32_t)d->cfg.features_max_entities,
        .features_ttl_ms = (int64_t)d->cfg.features_ttl_s * 1000,
        .features_checkpoint_interval_ms = d->cfg.features_checkpoint_interval_ms,
        .inputs = li,
        .n_inputs = n_inputs,
        .dlq_topic = d->cfg.ingest_dlq_topic,
        .pg_conninfo = d->cfg.postgres_conninfo,
        .instance_id = d->cfg.daemon_instance_id,
        .kafka_keys = kv->keys,
        .kafka_values = kv->values,
        .kafka_origins = kv->origins,
        .n_kafka = kv->n,
        .batch_max = d->cfg.ingest_batch_max,
        .batch_max_delay_ms = d->cfg.ingest_batch_max_delay_ms,
        .batch_linger_ms = d->cfg.ingest_batch_linger_ms,
        .batches_in_flight = d->cfg.ingest_batches_in_flight,
        .events_writers = d->cfg.ingest_events_writers,
        .retry_max_ms = d->cfg.postgres_retry_max_ms,
        .shutdown_timeout_ms = d->cfg.daemon_shutdown_timeout_ms,
        .on_ready = vigild_lanes_ready,
        .on_exit = vigild_lanes_exited,
        .ctx = d,
    };
    d->has_features = fz != NULL;
    d->lanes = lanes_new(&lo, err, sizeof(err)); /* takes the decoders, fz and the rules */
    if (!d->lanes || lanes_start(d->lanes, err, sizeof(err)) != 0) {
        log_error("cannot start the lanes", "error=\"%s\"", log_quote(err, q, sizeof(q)));
        return -1;
    }
    log_info("vigild started", "instance=%s topics=%zu lanes=%zu config=%s",
             d->cfg.daemon_instance_id, n_inputs, lanes_count(d->lanes),
             d->config_path ? d->config_path : "(none)");
    return 0;
}

static int vigild_run(vigild_t *d, int embedded)
{
    char err[1024];
    char q[1100];
    log_level_t level;
    vigild_kafka_kv_t kv = {0};
    const char *bootstrap = NULL;
    daemon_input_t inputs[INGEST_KIND_COUNT];
    lanes_input_t li[INGEST_KIND_COUNT];
    size_t n_inputs = daemon_inputs(&d->cfg, inputs);
    featurize_t *fz;
    alert_rules_t *rules;
    int rc = 1;

    if (log_level_parse(d->cfg.log_level, &level) == 0)
        log_set_level(level);
    metrics_init();
    if ((embedded && vigild_start_embedded(d, inputs, n_inputs, &bootstrap) != 0) ||
        vigild_kafka_kv(&d->cfg, bootstrap, &kv) != 0 || vigild_events(d) != 0)
        goto out;
    if (strcmp(d->cfg.http_listen, "off") != 0) {
        d->http = daemon_http_new(d->base, d->cfg.http_listen, vigild_ready, d, err, sizeof(err));
        if (!d->http) {
            log_error("cannot start the HTTP server", "error=\"%s\"", log_quote(err, q, sizeof(q)));
            goto out;
        }
        log_info("http listening", "listen=%s port=%d", d->cfg.http_listen,
                 daemon_http_port(d->http));
    }
    int in = vigild_inputs(d, inputs, n_inputs, li, &fz, &rules);
    if (in != 0) {
        rc = in == -2 ? 2 : 1;
        goto out;
    }
    if (vigild_models(d, fz) != 0) {
        featurize_free(fz);
        alert_rules_free(rules);
        for (size_t j = 0; j < n_inputs; j++)
            ingest_avro_free(li[j].decoder);
        goto out;
    }
    int64_t resolve_after_ms = rules ? alert_rules_resolve_after_ms(rules) : 0;
    if (vigild_lanes(d, li, n_inputs, fz, rules, &kv) != 0) /* the lanes take the rules */
        goto out;
    if (resolve_after_ms > 0 &&
        !(d->alerter = alerter_new(d->cfg.postgres_conninfo, d->cfg.daemon_instance_id,
                                   resolve_after_ms, err, sizeof err))) {
        log_error("cannot start the alerter", "error=\"%s\"", log_quote(err, q, sizeof(q)));
        goto out;
    }

    if (vigild_deliveries(d, &kv) != 0)
        goto out;

    if (event_base_dispatch(d->base) < 0) {
        log_error("event loop failed", NULL);
        goto out;
    }
    if (d->timed_out) {
        /* A lane is stuck on a write that cannot finish (nothing it holds is committed, so
         * nothing is lost: it is consumed again after the restart) or on leaving the group after
         * committing everything. Either way it must not be joined, and main must not free what
         * it may still touch. */
        rc = lanes_drained(d->lanes) ? 0 : 1;
        goto out_nojoin;
    }
    rc = lanes_join(d->lanes) == 0 ? 0 : 1;
    vigild_status(d, 1);
    log_info("vigild stopped", "exit_status=%d", rc);

out:
    for (size_t i = 0; i < sizeof d->delivery / sizeof d->delivery[0]; i++)
        delivery_free(d->delivery[i]);
    alerter_free(d->alerter);
    lanes_free(d->lanes);
    model_runtime_free(d->runtime);
out_nojoin:
    vigild_kafka_kv_free(&kv);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {"embedded-kafka", no_argument, NULL, 'e'},
        {"check-config", no_argument, NULL, 'k'},
        {"print-defaults", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static vigild_t d; /* static: the event callbacks hold its address for the process's life */
    char err[1024];
    char kv_err[1024];
    int embedded = 0, check_only = 0, opt;
    vigild_kafka_kv_t kv = {0};

    d.config_path = getenv("VIGIL_CONFIG");
    while ((opt = getopt_long(argc, argv, "c:s:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            d.config_path = optarg;
            break;
        case 's':
            if (d.n_flags == VIGILD_MAX_FLAGS) {
                fprintf(stderr, "vigild: too many --set flags (at most %d)\n", VIGILD_MAX_FLAGS);
                return 2;
            }
            d.flags[d.n_flags++] = optarg;
            break;
        case 'e':
            embedded = 1;
            break;
        case 'k':
            check_only = 1;
            break;
        case 'p':
            daemon_config_print_defaults(stdout);
            return 0;
        case 'h':
            vigild_usage(stdout);
            return 0;
        default:
            vigild_usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vigild: unexpected argument '%s'\n", argv[optind]);
        vigild_usage(stderr);
        return 2;
    }
    if (daemon_config_load(&d.cfg, d.config_path, environ, d.flags, d.n_flags, err, sizeof(err))) {
        fprintf(stderr, "vigild: configuration error: %s\n", err);
        return 2;
    }
    /* librdkafka is the judge of its own keys; ask it now so that a typo is a start-up error. */
    if (vigild_kafka_kv(&d.cfg, NULL, &kv) != 0 ||
        ingest_kafka_conf_check(kv.keys, kv.values, kv.origins, kv.n, kv_err, sizeof(kv_err))) {
        fprintf(stderr, "vigild: configuration error: %s\n", kv.keys ? kv_err : "out of memory");
        vigild_kafka_kv_free(&kv);
        daemon_config_free(&d.cfg);
        return 2;
    }
    vigild_kafka_kv_free(&kv);
    if (!embedded && !daemon_config_kafka_get(&d.cfg, "bootstrap.servers")) {
        fprintf(stderr, "vigild: configuration error: kafka.bootstrap.servers is not set "
                        "(set it in [kafka], VIGIL_KAFKA_BOOTSTRAP_SERVERS, or use "
                        "--embedded-kafka)\n");
        daemon_config_free(&d.cfg);
        return 2;
    }
    if (check_only) {
        printf("configuration ok\n");
        daemon_config_free(&d.cfg);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);

    int rc = vigild_run(&d, embedded);
    if (d.timed_out) {
        /* A lane thread is still running (inside libpq or librdkafka): returning from main
         * would run exit handlers and library destructors under it. Leave at once instead. */
        log_info("vigild stopped", "exit_status=%d timed_out=1", rc);
        _exit(rc);
    }
    daemon_http_free(d.http);
    ingest_mock_free(d.mock);
    daemon_config_free(&d.cfg);
    return rc;
}
