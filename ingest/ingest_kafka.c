/* The Kafka consumer with caller-owned offsets (see ingest_kafka.h). */
#include "ingest_kafka.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

struct ingest_kafka {
    rd_kafka_t *rk;
    rd_kafka_queue_t *consumer_q; /* for ingest_kafka_wake */
    char **topics;                /* subscribed, owned */
    size_t n_topics;
    char group[256];
    ingest_kafka_callbacks_t cb;
    int64_t none_offset; /* what INGEST_OFFSET_NONE becomes: BEGINNING or END */
    int assigned;
    int closed;
    int cooperative; /* the group's rebalance protocol, as last reported */
};

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    ingest_kafka_t *k = rd_kafka_opaque(rk);
    if (k && k->cb.on_log)
        k->cb.on_log(k->cb.ctx, level, fac, buf);
}

/* Collects the partitions of topic in parts into out (room for parts->cnt), for the
 * callbacks, which take one topic at a time. Returns the count. */
static int kafka_partitions_of(const char *topic, const rd_kafka_topic_partition_list_t *parts,
                               int32_t *out)
{
    int n = 0;
    for (int i = 0; i < parts->cnt; i++)
        if (strcmp(parts->elems[i].topic, topic) == 0)
            out[n++] = parts->elems[i].partition;
    return n;
}

static void kafka_log_error(ingest_kafka_t *k, const char *what, const char *detail)
{
    char line[512];
    snprintf(line, sizeof(line), "%s: %s", what, detail);
    if (k->cb.on_log)
        k->cb.on_log(k->cb.ctx, 3, "VIGIL", line);
}

/* Assignment with offsets from the owner. @locality: the polling thread, inside poll. */
static void kafka_assign(ingest_kafka_t *k, rd_kafka_topic_partition_list_t *parts, int cooperative)
{
    size_t room = (size_t)(parts->cnt > 0 ? parts->cnt : 1);
    int32_t *ids = malloc(room * sizeof(*ids));
    int64_t *offsets = calloc(room, sizeof(*offsets));
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    size_t accepted = 0; /* topics whose owner took the assignment (on_assign succeeded) */

    if (!ids || !offsets) {
        kafka_log_error(k, "assignment refused", "out of memory");
        goto err;
    }
    for (size_t t = 0; t < k->n_topics; t++) {
        const char *topic = k->topics[t];
        int n = kafka_partitions_of(topic, parts, ids);
        if (n > 0 && k->cb.on_assign(k->cb.ctx, topic, ids, (size_t)n, offsets) != 0) {
            /* Without stored offsets we must not read: anything we wrote could duplicate
             * rows. */
            kafka_log_error(k, "assignment refused", "stored offsets could not be read");
            goto err;
        }
        for (int i = 0; i < n; i++) {
            rd_kafka_topic_partition_t *p =
                rd_kafka_topic_partition_list_find(parts, topic, ids[i]);
            if (p)
                p->offset = offsets[i] == INGEST_OFFSET_NONE ? k->none_offset : offsets[i];
        }
        accepted = t + 1;
    }
    if (cooperative) {
        error = rd_kafka_incremental_assign(k->rk, parts);
        if (error) {
            kafka_log_error(k, "incremental assign failed", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
            goto err;
        }
        k->assigned += parts->cnt;
    } else {
        e = rd_kafka_assign(k->rk, parts);
        if (e) {
            kafka_log_error(k, "assign failed", rd_kafka_err2str(e));
            goto err;
        }
        k->assigned = parts->cnt;
    }
    free(ids);
    free(offsets);
    return;
err:
    /* The owner took the topics before the failure as assigned: take them back the way a
     * revoke does, so it holds no state for partitions it will not get. */
    for (size_t t = 0; ids && t < accepted; t++) {
        int n = kafka_partitions_of(k->topics[t], parts, ids);
        if (n > 0 && k->cb.on_revoke)
            k->cb.on_revoke(k->cb.ctx, k->topics[t], ids, (size_t)n);
    }
    free(ids);
    free(offsets);
    if (!cooperative)
        rd_kafka_assign(k->rk, NULL);
}

static void kafka_revoke(ingest_kafka_t *k, rd_kafka_topic_partition_list_t *parts, int cooperative)
{
    int32_t *ids = malloc((size_t)(parts->cnt > 0 ? parts->cnt : 1) * sizeof(*ids));
    for (size_t t = 0; ids && t < k->n_topics; t++) {
        int n = kafka_partitions_of(k->topics[t], parts, ids);
        if (n > 0 && k->cb.on_revoke)
            k->cb.on_revoke(k->cb.ctx, k->topics[t], ids, (size_t)n);
    }
    if (!ids)
        kafka_log_error(k, "revoke not passed on", "out of memory");
    free(ids);
    if (cooperative) {
        rd_kafka_error_t *error = rd_kafka_incremental_unassign(k->rk, parts);
        if (error) {
            kafka_log_error(k, "incremental unassign failed", rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
        k->assigned -= parts->cnt;
        if (k->assigned < 0)
            k->assigned = 0;
    } else {
        rd_kafka_assign(k->rk, NULL);
        k->assigned = 0;
    }
}

static void kafka_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                               rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    ingest_kafka_t *k = opaque;
    /* NULL once the consumer is leaving the group (the revoke that rd_kafka_consumer_close
     * makes): the partitions then go back the way they came, by the protocol last seen. */
    const char *protocol = rd_kafka_rebalance_protocol(rk);
    if (protocol)
        k->cooperative = strcmp(protocol, "COOPERATIVE") == 0;
    int cooperative = k->cooperative;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        kafka_assign(k, parts, cooperative);
    else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        kafka_revoke(k, parts, cooperative);
    else {
        /* Give up what we hold the same way a revoke does, so the owner finishes its batch. */
        rd_kafka_topic_partition_list_t *held = NULL;
        kafka_log_error(k, "rebalance error", rd_kafka_err2str(err));
        if (rd_kafka_assignment(rk, &held) == RD_KAFKA_RESP_ERR_NO_ERROR && held) {
            kafka_revoke(k, held, cooperative);
            rd_kafka_topic_partition_list_destroy(held);
        } else {
            if (held)
                rd_kafka_topic_partition_list_destroy(held);
            rd_kafka_assign(rk, NULL);
            k->assigned = 0;
        }
    }
}

static int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value,
                          const char *origin, char *err, size_t errlen)
{
    char rderr[256];
    if (rd_kafka_conf_set(conf, key, value, rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK) {
        errbuf_printf(err, errlen, "%s: kafka.%s: %s", origin, key, rderr);
        return -1;
    }
    return 0;
}

ingest_kafka_t *ingest_kafka_new(const char *const *keys, const char *const *values,
                                 const char *const *origins, size_t n, const char *client_id,
                                 const char *const *topics, size_t n_topics,
                                 const ingest_kafka_callbacks_t *cb, char *err, size_t errlen)
{
    static const char *const defaults[][2] = {
        {"group.id", "vigild"},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"enable.partition.eof", "false"},
        {"auto.offset.reset", "earliest"},
        {"client.id", "vigild"},
        /* librdkafka prefetches up to 64 MiB by default; 16 MiB keeps memory flatter when the
         * sink is slow and costs no throughput here. (queued.min.messages stays at its
         * default: lowering it to 20,000 halved end-to-end throughput in make bench.) */
        {"queued.max.messages.kbytes", "16384"},
    };
    char rderr[256], reset[64];
    size_t len;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *sub = NULL;
    rd_kafka_resp_err_t e;
    ingest_kafka_t *k = calloc(1, sizeof(*k));

    if (!k || !(k->topics = calloc(n_topics ? n_topics : 1, sizeof(char *)))) {
        errbuf_printf(err, errlen, "kafka consumer: out of memory");
        goto err;
    }
    for (size_t t = 0; t < n_topics; t++) {
        if (!(k->topics[k->n_topics] = strdup(topics[t]))) {
            errbuf_printf(err, errlen, "kafka consumer: out of memory");
            goto err;
        }
        k->n_topics++;
    }
    k->cb = *cb;
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (kafka_conf_set(conf, defaults[i][0], defaults[i][1], "vigil default", err, errlen))
            goto err;
    if (client_id && kafka_conf_set(conf, "client.id", client_id, "vigil default", err, errlen))
        goto err;
    if (ingest_kafka_conf_apply(conf, keys, values, origins, n, err, errlen) != 0)
        goto err;

    len = sizeof(k->group);
    if (rd_kafka_conf_get(conf, "group.id", k->group, &len) != RD_KAFKA_CONF_OK) {
        errbuf_printf(err, errlen, "kafka consumer: group.id is not set");
        goto err;
    }
    len = sizeof(reset);
    if (rd_kafka_conf_get(conf, "auto.offset.reset", reset, &len) != RD_KAFKA_CONF_OK)
        strcpy(reset, "earliest");
    k->none_offset = (strcmp(reset, "earliest") == 0 || strcmp(reset, "smallest") == 0 ||
                      strcmp(reset, "beginning") == 0)
                         ? RD_KAFKA_OFFSET_BEGINNING
                         : RD_KAFKA_OFFSET_END;

    rd_kafka_conf_set_opaque(conf, k);
    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    rd_kafka_conf_set_rebalance_cb(conf, kafka_rebalance_cb);

    k->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, rderr, sizeof(rderr));
    if (!k->rk) {
        errbuf_printf(err, errlen, "kafka consumer: cannot create: %s", rderr);
        goto err;
    }
    conf = NULL; /* owned by k->rk now */
    rd_kafka_poll_set_consumer(k->rk);
    if (!(k->consumer_q = rd_kafka_queue_get_consumer(k->rk))) {
        errbuf_printf(err, errlen, "kafka consumer: no consumer queue");
        goto err;
    }

    sub = rd_kafka_topic_partition_list_new((int)n_topics);
    for (size_t t = 0; t < n_topics; t++)
        rd_kafka_topic_partition_list_add(sub, topics[t], RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(k->rk, sub);
    rd_kafka_topic_partition_list_destroy(sub);
    if (e) {
        errbuf_printf(err, errlen, "kafka consumer: cannot subscribe to %zu topics (%s, ...): %s",
                      n_topics, n_topics ? topics[0] : "none", rd_kafka_err2str(e));
        goto err;
    }
    return k;
err:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (k) {
        k->closed = 1; /* never joined: nothing to leave */
        ingest_kafka_free(k);
    }
    return NULL;
}

int ingest_kafka_conf_apply(rd_kafka_conf_t *conf, const char *const *keys,
                            const char *const *values, const char *const *origins, size_t n,
                            char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (kafka_conf_set(conf, keys[i], values[i], origins[i], err, errlen) != 0)
            return -1;
    return 0;
}

int ingest_kafka_conf_check(const char *const *keys, const char *const *values,
                            const char *const *origins, size_t n, char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = ingest_kafka_conf_apply(conf, keys, values, origins, n, err, errlen);
    rd_kafka_conf_destroy(conf);
    return rc;
}

rd_kafka_message_t *ingest_kafka_poll(ingest_kafka_t *k, int timeout_ms)
{
    return rd_kafka_consumer_poll(k->rk, timeout_ms);
}

void ingest_kafka_wake(ingest_kafka_t *k)
{
    rd_kafka_queue_yield(k->consumer_q);
}

int ingest_kafka_seek(ingest_kafka_t *k, const char *topic, int32_t partition, int64_t offset,
                      char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_error_t *error;
    rd_kafka_topic_partition_list_add(parts, topic, partition)->offset =
        offset == INGEST_OFFSET_NONE ? k->none_offset : offset;
    error = rd_kafka_seek_partitions(k->rk, parts, 10000);
    if (!error && parts->elems[0].err) {
        errbuf_printf(err, errlen, "kafka seek %s[%d] to %lld: %s", topic, (int)partition,
                      (long long)offset, rd_kafka_err2str(parts->elems[0].err));
        rd_kafka_topic_partition_list_destroy(parts);
        return -1;
    }
    rd_kafka_topic_partition_list_destroy(parts);
    if (error) {
        errbuf_printf(err, errlen, "kafka seek %s[%d] to %lld: %s", topic, (int)partition,
                      (long long)offset, rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return -1;
    }
    return 0;
}

int ingest_kafka_pause_all(ingest_kafka_t *k, int pause, char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t e = rd_kafka_assignment(k->rk, &parts);
    int n;

    if (e) {
        errbuf_printf(err, errlen, "kafka: cannot read the assignment to %s it: %s",
                      pause ? "pause" : "resume", rd_kafka_err2str(e));
        return -1;
    }
    n = parts->cnt;
    e = n > 0 ? (pause ? rd_kafka_pause_partitions(k->rk, parts)
                       : rd_kafka_resume_partitions(k->rk, parts))
              : RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int i = 0; !e && i < parts->cnt; i++)
        if (parts->elems[i].err)
            e = parts->elems[i].err;
    rd_kafka_topic_partition_list_destroy(parts);
    if (e) {
        errbuf_printf(err, errlen, "kafka: cannot %s %d partitions: %s", pause ? "pause" : "resume",
                      n, rd_kafka_err2str(e));
        return -1;
    }
    return n;
}

int ingest_kafka_query_low(ingest_kafka_t *k, const char *topic, int32_t partition, int timeout_ms,
                           int64_t *low, char *err, size_t errlen)
{
    int64_t high;
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(k->rk, topic, partition, low, &high, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
        errbuf_printf(err, errlen, "querying the watermarks of %s/%d failed: %s", topic,
                      (int)partition, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

int ingest_kafka_watermarks(ingest_kafka_t *k, const char *topic, int32_t partition, int64_t *low,
                            int64_t *high)
{
    if (rd_kafka_get_watermark_offsets(k->rk, topic, partition, low, high) !=
            RD_KAFKA_RESP_ERR_NO_ERROR ||
        *high < 0)
        return -1;
    return 0;
}

void ingest_kafka_commit(ingest_kafka_t *k, const char *const *topics, const int32_t *partitions,
                         const int64_t *next, size_t n)
{
    rd_kafka_topic_partition_list_t *parts;
    if (n == 0)
        return;
    parts = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(parts, topics[i], partitions[i])->offset = next[i];
    /* Async and best effort: PostgreSQL holds the offsets that count. */
    rd_kafka_resp_err_t e = rd_kafka_commit(k->rk, parts, 1);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        kafka_log_error(k, "kafka offset commit (for lag tools) failed", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(parts);
}

const char *ingest_kafka_group(const ingest_kafka_t *k)
{
    return k->group;
}

int ingest_kafka_assigned_count(const ingest_kafka_t *k)
{
    return k->assigned;
}

void ingest_kafka_close(ingest_kafka_t *k)
{
    if (!k || k->closed || !k->rk)
        return;
    k->closed = 1;
    /* Leaves the group; the rebalance callback runs on_revoke for what we hold. */
    rd_kafka_consumer_close(k->rk);
    k->assigned = 0;
}

void ingest_kafka_free(ingest_kafka_t *k)
{
    if (!k)
        return;
    ingest_kafka_close(k);
    if (k->consumer_q)
        rd_kafka_queue_destroy(k->consumer_q);
    if (k->rk)
        rd_kafka_destroy(k->rk);
    for (size_t t = 0; t < k->n_topics; t++)
        free(k->topics[t]);
    free(k->topics);
    free(k);
}
