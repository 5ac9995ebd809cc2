/* `vigil produce`: deterministic synthetic records from the generator (daemon/data/produce.h),
 * Avro-encoded and sent to Kafka, or written one file per message (--output-dir), or events with
 * their labels written to an event file (--output, event_file.h).
 *
 * produce_main takes the parsed command line (produce_cmd_args.c), then drives an idempotent
 * librdkafka producer with the generator, optionally paced to a fixed rate, or an event file
 * writer, and prints a one-line summary a script can parse. */
#include "produce_cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "errbuf.h"
#include "event_file.h"
#include "log.h"
#include "produce.h"
#include "produce_cmd_internal.h"

static volatile sig_atomic_t produce_stop;

static void produce_on_signal(int sig)
{
    (void)sig;
    produce_stop = 1;
}

/* Delivery counters. Delivery reports and errors are served by rd_kafka_poll/flush on the
 * calling thread, so plain integers suffice. */
typedef struct produce_stats {
    uint64_t delivered;
    uint64_t failed;
    int fatal;
} produce_stats_t;

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
        errbuf_printf(err, errlen, "kafka setting %s=%s: %s", key, value, kerr);
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
        errbuf_printf(err, errlen, "out of memory creating the Kafka configuration");
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
            errbuf_printf(err, errlen, "-X %s: key is too long", o->x_args[k]);
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
        errbuf_printf(err, errlen, "creating the Kafka producer: %s", kerr);
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
        errbuf_printf(err, errlen, "cannot create %.900s: %s", path, strerror(errno));
        return -1;
    }
    if (fwrite(value, 1, len, f) != len) {
        errbuf_printf(err, errlen, "cannot write %.900s: %s", path, strerror(errno));
        fclose(f);
        return -1;
    }
    if (fclose(f) != 0) {
        errbuf_printf(err, errlen, "cannot write %.900s: %s", path, strerror(errno));
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

/* --truth: the pattern names of its rows, by produce_fraud_pattern_t. */
static const char *const produce_truth_pattern[PRODUCE_FRAUD_PATTERNS] = {
    "none", "card_testing", "account_takeover", "amount_spike"};

/* --output: count events of the seed, with their ground truth, into an event file; simulated
 * event times. With --truth, also a CSV of the fraudulent events' patterns and episodes. Prints
 * the summary line; returns the exit status. */
static int produce_to_file(const produce_opts_t *o)
{
    produce_gen_t *g = NULL;
    event_file_writer_t *w = NULL;
    FILE *truth = NULL;
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
    if (o->truth &&
        (!(truth = fopen(o->truth, "w")) || fputs("event_id,pattern,episode\n", truth) < 0)) {
        log_error("cannot write the truth file", "file=\"%s\" error=\"%s\"",
                  log_quote(o->truth, q, sizeof q), strerror(errno));
        goto out;
    }
    log_info("writing events",
             "file=\"%s\" count=%" PRIu64 " seed=%" PRIu64 " users=%d start_ms=%" PRId64 " rate=%g",
             log_quote(o->output, q, sizeof q), o->count, o->seed, o->users, o->start_ms, o->rate);
    for (uint64_t i = 0; i < o->count; i++) {
        int64_t t = produce_sim_time_ms(o->start_ms, o->rate, i);
        uint64_t episode;
        produce_fraud_pattern_t p = produce_gen_event_pattern(g, i, &episode);
        produce_gen_event(g, i, t, &ev);
        if (event_file_write(w, &ev, p != PRODUCE_FRAUD_NONE, err, sizeof err) < 0) {
            log_error("cannot write an event", "error=\"%s\"", log_quote(err, q, sizeof q));
            goto out;
        }
        if (truth && p != PRODUCE_FRAUD_NONE &&
            fprintf(truth, "%s,%s,%" PRIu64 "\n", ev.event_id, produce_truth_pattern[p], episode) <
                0) {
            log_error("cannot write the truth file", "error=\"%s\"", strerror(errno));
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
    if (truth) {
        rc = fclose(truth);
        truth = NULL;
        if (rc != 0) {
            log_error("cannot write the truth file", "error=\"%s\"", strerror(errno));
            if (remove(o->truth) != 0)
                log_warn("cannot remove the incomplete truth file", "error=\"%s\"",
                         strerror(errno));
            goto out;
        }
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
    if (truth) {
        fclose(truth);
        if (remove(o->truth) != 0)
            log_warn("cannot remove the incomplete truth file", "error=\"%s\"", strerror(errno));
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

/* One run of the producer: what produce_main sets up, and what the loop counts. */
typedef struct produce_run {
    produce_opts_t o;
    produce_stats_t st;
    produce_gen_t *g;
    ingest_avro_t *enc;
    rd_kafka_t *rk;        /* NULL with --output-dir */
    ingest_record_t rec;   /* the record being sent */
    char schema[PATH_MAX]; /* the .avsc encoded with */
    uint64_t produced, good, malformed;
} produce_run_t;

/* --burst TICKER:FROM:COUNT. */
static int produce_burst_set(produce_gen_t *g, const char *spec, char *err, size_t errlen)
{
    char ticker[64];
    unsigned long long from, count;
    int used = 0;
    if (sscanf(spec, "%63[^:]:%llu:%llu%n", ticker, &from, &count, &used) != 3 ||
        spec[used] != '\0' || count == 0) {
        errbuf_printf(err, errlen, "expected TICKER:FROM:COUNT, e.g. ACME:2000:40");
        return -1;
    }
    return produce_gen_set_burst(g, ticker, from, count, err, errlen);
}

/* The encoder, the generator and (without --output-dir) the producer. Returns 0, or the exit
 * status after saying what failed: 2 for what the command line got wrong, else 1. */
static int produce_setup(produce_run_t *p)
{
    char err[1024], q[1024];
    char schema_dir[PATH_MAX];
    int usage = 0;

    if (produce_schema_resolve(&p->o, p->schema, sizeof p->schema) < 0) {
        fprintf(stderr, "vigil produce: schema path is too long\n");
        return 2;
    }
    /* dirname may modify its argument, hence the copy. */
    memcpy(schema_dir, p->schema, sizeof schema_dir);
    p->enc =
        ingest_avro_new(p->o.kind, p->o.format, p->schema, dirname(schema_dir), err, sizeof err);
    if (!p->enc) {
        fprintf(stderr, "vigil produce: %s (use --schema FILE)\n", err);
        return 2;
    }
    p->g = produce_gen_new(p->o.seed, p->o.users, err, sizeof err);
    if (!p->g) {
        log_error("cannot create the event generator", "error=\"%s\"", log_quote(err, q, sizeof q));
        return 1;
    }
    if (p->o.headlines && produce_gen_load_headlines(p->g, p->o.headlines, err, sizeof err) != 0) {
        fprintf(stderr, "vigil produce: %s\n", err);
        return 2;
    }
    if (p->o.burst && produce_burst_set(p->g, p->o.burst, err, sizeof err) != 0) {
        fprintf(stderr, "vigil produce: --burst %s: %s\n", p->o.burst, err);
        return 2;
    }
    if (p->o.span_s) {
        if (p->o.count == 0) {
            fprintf(stderr, "vigil produce: --span needs --count\n");
            return 2;
        }
        int64_t span_ms = (int64_t)p->o.span_s * 1000;
        int64_t now_ms = (int64_t)(produce_clock_ns(CLOCK_REALTIME) / 1000000u);
        produce_gen_set_span(p->g, p->o.start_set ? p->o.start_ms : now_ms - span_ms, span_ms,
                             p->o.count);
    }
    if (p->o.output_dir)
        return 0;
    p->rk = produce_kafka_new(&p->o, &p->st, &usage, err, sizeof err);
    if (!p->rk) {
        if (usage) {
            fprintf(stderr, "vigil produce: %s\n", err);
            return 2;
        }
        log_error("cannot start the producer", "error=\"%s\"", log_quote(err, q, sizeof q));
        return 1;
    }
    return 0;
}

/* Message i (a good record or, at the --malformed fraction, a malformed one) into buf, stamped
 * with the wall clock, or with --sim-rate's simulated clock. Returns its length, or -1 after
 * logging why. */
static long produce_encode(produce_run_t *p, uint64_t i, unsigned char *buf, size_t cap, int *bad)
{
    char err[1024], q[1024];
    int64_t now_ms = p->o.sim_rate > 0
                         ? produce_sim_time_ms(p->o.start_ms, p->o.sim_rate, i)
                         : (int64_t)(produce_clock_ns(CLOCK_REALTIME) / 1000000u);
    long len;

    *bad = produce_gen_is_malformed(p->g, i, p->o.malformed);
    produce_gen_record(p->g, p->o.kind, i, now_ms, &p->rec);
    if (*bad)
        len = produce_gen_malformed(p->g, p->enc, p->o.schema_id, i, &p->rec, buf, cap, err,
                                    sizeof err);
    else
        len = ingest_avro_encode(p->enc, &p->rec, p->o.schema_id, buf, cap, err, sizeof err);
    if (len < 0)
        log_error("cannot encode record", "key=%s error=\"%s\"", produce_record_key(&p->rec),
                  log_quote(err, q, sizeof q));
    return len;
}

static void produce_count(produce_run_t *p, int bad)
{
    p->produced++;
    if (bad)
        p->malformed++;
    else
        p->good++;
}

/* Sends --count messages (or until interrupted, or a fatal Kafka error), logging progress once
 * a second. Returns 0, or 1 when a message could not be encoded, written or produced. */
static int produce_loop(produce_run_t *p)
{
    const produce_opts_t *o = &p->o;
    unsigned char buf[4096];
    char err[1024], q[1024];

    uint64_t start_ns = produce_clock_ns(CLOCK_MONOTONIC);
    uint64_t last_log_ns = start_ns, last_log_produced = 0;
    for (uint64_t i = 0; (o->count == 0 || i < o->count) && !produce_stop && !p->st.fatal; i++) {
        /* An absolute schedule: a late message is followed by earlier ones, so the average
         * rate holds instead of drifting by every wake-up's latency. */
        if (o->rate > 0 && p->rk &&
            produce_wait_until(p->rk, start_ns + (uint64_t)((double)i * 1e9 / o->rate)) < 0)
            break;

        int bad;
        long len = produce_encode(p, i, buf, sizeof buf, &bad);
        if (len < 0)
            return 1;

        if (o->output_dir) {
            if (produce_write_file(o->output_dir, i, buf, (size_t)len, err, sizeof err) != 0) {
                log_error("cannot write message file", "error=\"%s\"", log_quote(err, q, sizeof q));
                return 1;
            }
            produce_count(p, bad);
            p->st.delivered++;
            continue;
        }
        rd_kafka_resp_err_t e =
            produce_send(p->rk, o->topic, produce_record_key(&p->rec), buf, (size_t)len);
        if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break; /* interrupted while waiting for room: this message was not produced */
        produce_count(p, bad);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
            log_error("cannot produce message: stopping", "topic=%s error=%s reason=\"%s\"",
                      o->topic, rd_kafka_err2name(e), log_quote(rd_kafka_err2str(e), q, sizeof q));
            p->st.failed++;
            break;
        }
        rd_kafka_poll(p->rk, 0);

        uint64_t now_ns = produce_clock_ns(CLOCK_MONOTONIC);
        if (now_ns - last_log_ns >= 1000000000u) {
            double secs = (double)(now_ns - last_log_ns) / 1e9;
            log_info("progress",
                     "produced=%" PRIu64 " delivered=%" PRIu64 " failed=%" PRIu64 " rate=%.0f",
                     p->produced, p->st.delivered, p->st.failed,
                     (double)(p->produced - last_log_produced) / secs);
            last_log_ns = now_ns;
            last_log_produced = p->produced;
        }
    }
    return 0;
}

/* Waits for the delivery reports (purging what is left after 60 s), prints the summary line and
 * returns the exit status. */
static int produce_finish(produce_run_t *p, int loop_failed)
{
    rd_kafka_t *rk = p->rk;
    rd_kafka_resp_err_t fe = rk ? rd_kafka_flush(rk, 60000) : RD_KAFKA_RESP_ERR_NO_ERROR;
    int left = rk ? rd_kafka_outq_len(rk) : 0;
    if (fe != RD_KAFKA_RESP_ERR_NO_ERROR || left > 0) {
        log_error("messages left undelivered after 60 s flush: check the brokers",
                  "in_queue=%d error=%s", left, rd_kafka_err2name(fe));
        /* Purged messages come back as failed delivery reports, so the summary counts them. */
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(rk, 5000);
    }
    uint64_t reported = p->st.delivered + p->st.failed;
    uint64_t undelivered = p->produced > reported ? p->produced - reported : 0;

    printf("produced=%" PRIu64 " good=%" PRIu64 " malformed=%" PRIu64 " delivered=%" PRIu64
           " failed=%" PRIu64 "\n",
           p->produced, p->good, p->malformed, p->st.delivered, p->st.failed);
    if (fflush(stdout) != 0) {
        log_error("cannot write the summary to stdout", "error=\"%s\"", strerror(errno));
        return 1;
    }
    if (undelivered > 0)
        log_error("messages without a delivery report", "count=%" PRIu64, undelivered);
    return (loop_failed || p->st.fatal || p->st.failed > 0 || undelivered > 0 || left > 0) ? 1 : 0;
}

int produce_main(int argc, char **argv)
{
    produce_run_t p = {0};
    struct sigaction sa, old_int, old_term;
    int signals_set = 0;
    int status;
    char q[1024];

    int rc = produce_cmd_parse_args(argc, argv, &p.o);
    if (rc != 0) {
        status = rc == 1 ? 0 : 2;
        goto out;
    }
    if (p.o.output) {
        status = produce_to_file(&p.o);
        goto out;
    }
    status = produce_setup(&p);
    if (status != 0)
        goto out;

    /* No SA_RESTART: a signal should cut a sleep short. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = produce_on_signal;
    sigemptyset(&sa.sa_mask);
    produce_stop = 0;
    if (sigaction(SIGINT, &sa, &old_int) < 0 || sigaction(SIGTERM, &sa, &old_term) < 0) {
        log_error("cannot install signal handlers", "error=\"%s\"", strerror(errno));
        status = 1;
        goto out;
    }
    signals_set = 1;

    log_info("producing",
             "kind=%s topic=%s count=%" PRIu64 " rate=%g sim_rate=%g malformed=%g seed=%" PRIu64
             " users=%d schema=\"%s\"",
             ingest_kind_schema_name(p.o.kind), p.o.topic, p.o.count, p.o.rate, p.o.sim_rate,
             p.o.malformed, p.o.seed, p.o.users, log_quote(p.schema, q, sizeof q));
    int loop_failed = produce_loop(&p);
    if (produce_stop)
        log_info("interrupted: flushing what was produced", "produced=%" PRIu64, p.produced);
    status = produce_finish(&p, loop_failed);

out:
    if (signals_set) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
    }
    if (p.rk)
        rd_kafka_destroy(p.rk);
    produce_gen_free(p.g);
    if (p.enc)
        ingest_avro_free(p.enc);
    free(p.o.x_args);
    return status;
}
