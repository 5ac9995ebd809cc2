/* The optional dead-letter topic (see ingest_dlq.h). */
#include "ingest_dlq.h"

#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "ingest_kafka.h"

struct ingest_dlq {
    rd_kafka_t *rk;
    char *topic;
    uint64_t failed; /* delivery failures not yet reported by ingest_dlq_poll */
    void (*on_log)(void *ctx, int level, const char *facility, const char *message);
    void *ctx;
};

static void dlq_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    ingest_dlq_t *d = rd_kafka_opaque(rk);
    /* The consumer's settings are handed over whole on purpose; librdkafka's warnings that it
     * ignores the consumer-only ones are expected, so they go out at debug level. */
    if (strcmp(fac, "CONFWARN") == 0)
        level = 7;
    if (d && d->on_log)
        d->on_log(d->ctx, level, fac, buf);
}

/* @locality: the thread calling ingest_dlq_poll/flush (delivery reports are served there). */
static void dlq_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    ingest_dlq_t *d = opaque;
    char line[512];
    (void)rk;
    if (!m->err)
        return;
    d->failed++;
    snprintf(line, sizeof(line), "dead letter not delivered to %s: %s", d->topic,
             rd_kafka_err2str(m->err));
    if (d->on_log)
        d->on_log(d->ctx, 3, "DLQ", line);
}

ingest_dlq_t *ingest_dlq_new(const char *const *keys, const char *const *values,
                             const char *const *origins, size_t n, const char *topic,
                             void (*on_log)(void *ctx, int level, const char *facility,
                                            const char *message),
                             void *ctx, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    ingest_dlq_t *d = calloc(1, sizeof(*d));
    char rderr[256];

    if (!d || !(d->topic = strdup(topic))) {
        errbuf_printf(err, errlen, "dead-letter topic: out of memory");
        goto err;
    }
    d->on_log = on_log;
    d->ctx = ctx;
    if (rd_kafka_conf_set(conf, "enable.idempotence", "true", rderr, sizeof(rderr)) !=
            RD_KAFKA_CONF_OK ||
        rd_kafka_conf_set(conf, "client.id", "vigild-dlq", rderr, sizeof(rderr)) !=
            RD_KAFKA_CONF_OK) {
        errbuf_printf(err, errlen, "dead-letter topic: %s", rderr);
        goto err;
    }
    /* The consumer's settings apply to the producer too (brokers, security); the ones only a
     * consumer knows are accepted by librdkafka and ignored by a producer. */
    if (ingest_kafka_conf_apply(conf, keys, values, origins, n, err, errlen) != 0)
        goto err;
    rd_kafka_conf_set_opaque(conf, d);
    rd_kafka_conf_set_log_cb(conf, dlq_log_cb);
    rd_kafka_conf_set_dr_msg_cb(conf, dlq_delivery_cb);
    d->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
    if (!d->rk) {
        errbuf_printf(err, errlen, "dead-letter topic: cannot create a producer: %s", rderr);
        goto err;
    }
    return d; /* conf is owned by d->rk now */
err:
    rd_kafka_conf_destroy(conf);
    ingest_dlq_free(d);
    return NULL;
}

int ingest_dlq_send(ingest_dlq_t *d, const void *key, size_t key_len, const void *payload,
                    size_t payload_len, const char *reason, const char *source_topic,
                    int32_t source_partition, int64_t source_offset, char *err, size_t errlen)
{
    char part[16], off[24];
    rd_kafka_resp_err_t e;

    snprintf(part, sizeof(part), "%" PRId32, source_partition);
    snprintf(off, sizeof(off), "%" PRId64, source_offset);
    /* librdkafka copies key, payload and headers (RD_KAFKA_MSG_F_COPY): the caller's buffers
     * may go as soon as this returns. */
    e = rd_kafka_producev(
        d->rk, RD_KAFKA_V_TOPIC(d->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(key, key ? key_len : 0), RD_KAFKA_V_VALUE((void *)payload, payload_len),
        RD_KAFKA_V_HEADER("vigil.reason", reason, -1),
        RD_KAFKA_V_HEADER("vigil.source.topic", source_topic, -1),
        RD_KAFKA_V_HEADER("vigil.source.partition", part, -1),
        RD_KAFKA_V_HEADER("vigil.source.offset", off, -1), RD_KAFKA_V_END);
    if (e) {
        errbuf_printf(err, errlen, "dead-letter topic %s: cannot queue: %s", d->topic,
                      rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

uint64_t ingest_dlq_poll(ingest_dlq_t *d)
{
    uint64_t failed;
    rd_kafka_poll(d->rk, 0);
    failed = d->failed;
    d->failed = 0;
    return failed;
}

int ingest_dlq_flush(ingest_dlq_t *d, int timeout_ms)
{
    rd_kafka_flush(d->rk, timeout_ms);
    return rd_kafka_outq_len(d->rk);
}

void ingest_dlq_free(ingest_dlq_t *d)
{
    if (!d)
        return;
    if (d->rk)
        rd_kafka_destroy(d->rk);
    free(d->topic);
    free(d);
}
