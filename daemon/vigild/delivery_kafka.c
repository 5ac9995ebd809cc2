/* The alerts topic sink (delivery.h): each alert revision as one Kafka record, Avro per
 * ingest/schemas/Alert.avsc behind the Confluent header (schema id alerts.kafka_schema_id), the
 * entity as key, from an idempotent producer. A revision counts as taken once its delivery
 * report says so; what the timeout leaves unsent is purged and given again in a later round. */
#include "delivery_kafka.h"

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "ingest_kafka.h"
#include "log.h"
#include "metrics.h"

/* Room for one record: the strings are bounded by the table (ids, entity), but not the
 * explanation; a record that does not fit is refused whole (delivery_kafka_encode). */
#define DK_RECORD_MAX (256 * 1024)

typedef struct delivery_kafka {
    rd_kafka_t *rk;
    char *topic;
    int32_t schema_id;
    int timeout_ms;
    unsigned char *buf; /* DK_RECORD_MAX bytes */
    /* Delivery reports of the round in progress set delivered[i]; a report of an earlier
     * round (its generation in the message's opaque) is ignored. */
    int *delivered;
    uint32_t generation;
} delivery_kafka_t;

/* ---- Avro binary, as the specification writes it ---------------------------------------- */

typedef struct dk_out {
    unsigned char *p;
    size_t len, cap;
    int overflow;
} dk_out_t;

static void dk_bytes(dk_out_t *o, const void *b, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->len, b, n);
    o->len += n;
}

static void dk_long(dk_out_t *o, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); /* zigzag */
    unsigned char b[10];
    size_t n = 0;
    do {
        b[n] = (unsigned char)(z & 0x7f);
        z >>= 7;
        if (z)
            b[n] |= 0x80;
        n++;
    } while (z);
    dk_bytes(o, b, n);
}

static void dk_string(dk_out_t *o, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    dk_long(o, (int64_t)n);
    dk_bytes(o, s, n);
}

/* ["null", "string"] */
static void dk_optional_string(dk_out_t *o, const char *s)
{
    dk_long(o, s ? 1 : 0);
    if (s)
        dk_string(o, s);
}

static void dk_double(dk_out_t *o, double v)
{
    uint64_t bits;
    unsigned char b[8];
    memcpy(&bits, &v, sizeof bits);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(bits >> (8 * i)); /* little-endian */
    dk_bytes(o, b, sizeof b);
}

static int64_t dk_num(const char *s)
{
    return s ? strtoll(s, NULL, 10) : 0;
}

size_t delivery_kafka_encode(const sink_alert_t *a, int32_t schema_id, unsigned char *out,
                             size_t cap)
{
    dk_out_t o = {out, 0, cap, 0};
    unsigned char header[5] = {0, (unsigned char)(schema_id >> 24),
                               (unsigned char)(schema_id >> 16), (unsigned char)(schema_id >> 8),
                               (unsigned char)schema_id};
    dk_bytes(&o, header, sizeof header);
    /* The fields in Alert.avsc's order. */
    dk_string(&o, a->alert_id);
    dk_long(&o, dk_num(a->revision));
    dk_string(&o, a->kind);
    dk_string(&o, a->entity);
    dk_string(&o, a->severity);
    dk_string(&o, a->status);
    dk_long(&o, dk_num(a->event_count));
    dk_string(&o, a->first_event_id);
    dk_long(&o, dk_num(a->first_event_time));
    dk_string(&o, a->last_event_id);
    dk_long(&o, dk_num(a->last_event_time));
    dk_double(&o, a->max_score ? strtod(a->max_score, NULL) : 0);
    dk_optional_string(&o, a->explanation);
    dk_long(&o, dk_num(a->updated_at));
    dk_optional_string(&o, a->resolution);
    return o.overflow ? 0 : o.len;
}

/* ---- the producer ---------------------------------------------------------------------- */

/* @locality: the delivery thread, inside rd_kafka_flush / rd_kafka_poll. */
static void dk_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    delivery_kafka_t *k = opaque;
    uintptr_t tag = (uintptr_t)m->_private;
    (void)rk;
    if ((uint32_t)(tag >> 16) != (k->generation & 0xffff) || !k->delivered)
        return; /* a report from an earlier round, purged and given again since */
    if (!m->err)
        k->delivered[tag & 0xffff] = 1;
    else if (m->err != RD_KAFKA_RESP_ERR__PURGE_QUEUE &&
             m->err != RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        log_warn("alert not delivered to the alerts topic; trying again", "topic=%s error=\"%s\"",
                 k->topic, rd_kafka_err2str(m->err));
}

static void dk_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* The consumer's settings are handed over whole on purpose: librdkafka's warnings that a
     * producer ignores the consumer-only ones are expected. */
    if (strcmp(fac, "CONFWARN") == 0)
        return;
    if (level <= 4)
        log_warn("librdkafka (alerts topic)", "facility=%s detail=\"%s\"", fac, buf);
}

static int dk_send(void *ctx, const sink_alert_t *alerts, size_t n, int *delivered, char *err,
                   size_t errlen)
{
    delivery_kafka_t *k = ctx;
    size_t queued = 0;

    k->generation++;
    k->delivered = delivered;
    for (size_t i = 0; i < n && i <= 0xffff; i++) {
        size_t len = delivery_kafka_encode(&alerts[i], k->schema_id, k->buf, DK_RECORD_MAX);
        if (len == 0) {
            log_error("alert too large for the alerts topic; not sent", "alert_id=%s",
                      alerts[i].alert_id);
            continue;
        }
        uintptr_t tag = ((uintptr_t)(k->generation & 0xffff) << 16) | i;
        /* Key and value are copied (RD_KAFKA_MSG_F_COPY): k->buf is reused at once. */
        rd_kafka_resp_err_t e = rd_kafka_producev(
            k->rk, RD_KAFKA_V_TOPIC(k->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(alerts[i].entity, strlen(alerts[i].entity)),
            RD_KAFKA_V_VALUE(k->buf, len), RD_KAFKA_V_OPAQUE((void *)tag), RD_KAFKA_V_END);
        if (e) {
            errbuf_printf(err, errlen, "alerts topic %s: cannot queue: %s", k->topic,
                          rd_kafka_err2str(e));
            break;
        }
        queued++;
    }
    rd_kafka_flush(k->rk, k->timeout_ms);
    if (rd_kafka_outq_len(k->rk) > 0) {
        /* Not acknowledged within the timeout: taken back, so that no report of this round
         * arrives after it (the idempotent producer keeps the order of what it sends later). */
        rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_flush(k->rk, k->timeout_ms);
    }
    k->delivered = NULL;
    if (queued == 0 && n > 0) {
        if (!err[0])
            errbuf_printf(err, errlen, "alerts topic %s: nothing could be queued", k->topic);
        return -1;
    }
    int any = 0;
    for (size_t i = 0; i < n; i++)
        any |= delivered[i];
    if (!any) {
        errbuf_printf(err, errlen, "alerts topic %s: no record acknowledged within %d ms", k->topic,
                      k->timeout_ms);
        return -1;
    }
    return 0;
}

static void dk_free(void *ctx)
{
    delivery_kafka_t *k = ctx;
    if (!k)
        return;
    if (k->rk) {
        rd_kafka_flush(k->rk, k->timeout_ms);
        rd_kafka_destroy(k->rk);
    }
    free(k->topic);
    free(k->buf);
    free(k);
}

int delivery_kafka_sink(const char *const *keys, const char *const *values,
                        const char *const *origins, size_t n_kafka, const char *topic,
                        int32_t schema_id, int timeout_ms, delivery_sink_t *out, char *err,
                        size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    delivery_kafka_t *k = calloc(1, sizeof *k);
    char rderr[256];

    if (!conf || !k || !(k->topic = strdup(topic)) || !(k->buf = malloc(DK_RECORD_MAX))) {
        errbuf_printf(err, errlen, "alerts topic: out of memory");
        goto err;
    }
    k->schema_id = schema_id;
    k->timeout_ms = timeout_ms;
    if (rd_kafka_conf_set(conf, "enable.idempotence", "true", rderr, sizeof rderr) ||
        rd_kafka_conf_set(conf, "client.id", "vigild-alerts", rderr, sizeof rderr) ||
        rd_kafka_conf_set(conf, "linger.ms", "5", rderr, sizeof rderr)) {
        errbuf_printf(err, errlen, "alerts topic: %s", rderr);
        goto err;
    }
    if (ingest_kafka_conf_apply(conf, keys, values, origins, n_kafka, err, errlen) != 0)
        goto err;
    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_log_cb(conf, dk_log);
    rd_kafka_conf_set_dr_msg_cb(conf, dk_report);
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof rderr);
    if (!k->rk) {
        errbuf_printf(err, errlen, "alerts topic: cannot create a producer: %s", rderr);
        goto err;
    }
    /* conf is owned by k->rk now. */
    *out = (delivery_sink_t){.name = "kafka",
                             .metrics_index = METRICS_SINK_KAFKA,
                             .resend_ms = 0,
                             .ctx = k,
                             .send = dk_send,
                             .free_ctx = dk_free};
    return 0;
err:
    if (conf)
        rd_kafka_conf_destroy(conf);
    dk_free(k);
    return -1;
}
