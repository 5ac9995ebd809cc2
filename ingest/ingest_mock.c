/* The embedded Kafka (see ingest_mock.h): a mock cluster owned by an otherwise idle producer
 * handle, because librdkafka ties every mock cluster to an rd_kafka_t. */
#include "ingest_mock.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

struct ingest_mock {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *cluster;
    int brokers;
};

ingest_mock_t *ingest_mock_new(int brokers, char *err, size_t errlen)
{
    char rderr[256];
    rd_kafka_conf_t *conf = NULL;
    ingest_mock_t *m = calloc(1, sizeof(*m));
    if (!m) {
        errbuf_printf(err, errlen, "embedded kafka: out of memory");
        return NULL;
    }
    m->brokers = brokers;
    conf = rd_kafka_conf_new();
    /* The owning handle never talks to a broker; keep it quiet. */
    if (rd_kafka_conf_set(conf, "log_level", "3", rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK) {
        errbuf_printf(err, errlen, "embedded kafka: %s", rderr);
        goto err;
    }
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
    if (!m->rk) {
        errbuf_printf(err, errlen, "embedded kafka: cannot create handle: %s", rderr);
        goto err;
    }
    conf = NULL; /* owned by m->rk now */
    m->cluster = rd_kafka_mock_cluster_new(m->rk, brokers);
    if (!m->cluster) {
        errbuf_printf(err, errlen, "embedded kafka: cannot start a mock cluster of %d brokers",
                      brokers);
        goto err;
    }
    return m;
err:
    if (conf)
        rd_kafka_conf_destroy(conf);
    ingest_mock_free(m);
    return NULL;
}

int ingest_mock_topic_create(ingest_mock_t *m, const char *topic, int partitions, char *err,
                             size_t errlen)
{
    int replication = m->brokers < 3 ? m->brokers : 3;
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(m->cluster, topic, partitions, replication);
    if (e) {
        errbuf_printf(err, errlen, "embedded kafka: cannot create topic %s: %s", topic,
                      rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

const char *ingest_mock_bootstraps(const ingest_mock_t *m)
{
    return rd_kafka_mock_cluster_bootstraps(m->cluster);
}

void ingest_mock_free(ingest_mock_t *m)
{
    if (!m)
        return;
    if (m->cluster)
        rd_kafka_mock_cluster_destroy(m->cluster);
    if (m->rk)
        rd_kafka_destroy(m->rk);
    free(m);
}

/* Kafka protocol API keys by name, for the `errors` command. */
static int mock_api_key(const char *name)
{
    static const struct {
        const char *name;
        int key;
    } apis[] = {{"Produce", 0},      {"Fetch", 1},       {"ListOffsets", 2},      {"Metadata", 3},
                {"OffsetCommit", 8}, {"OffsetFetch", 9}, {"FindCoordinator", 10}, {"JoinGroup", 11},
                {"Heartbeat", 12},   {"LeaveGroup", 13}, {"SyncGroup", 14}};
    char *end;
    long n;

    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++)
        if (strcmp(apis[i].name, name) == 0)
            return apis[i].key;
    n = strtol(name, &end, 10);
    return (*name && !*end && n >= 0 && n < 100) ? (int)n : -1;
}

int ingest_mock_command(ingest_mock_t *m, const char *line, char *err, size_t errlen)
{
    char verb[32] = "", a[256] = "", b[256] = "", c[32] = "";
    int n = sscanf(line, "%31s %255s %255s %31s", verb, a, b, c);
    long id =
        strtol(n == 4 ? c : a, NULL, 10); /* the broker id: last word, or first for broker-* */
    rd_kafka_resp_err_t e;

    if (n == 2 && strcmp(verb, "broker-down") == 0 && id >= 1 && id <= m->brokers) {
        e = rd_kafka_mock_broker_set_down(m->cluster, (int32_t)id);
    } else if (n == 2 && strcmp(verb, "broker-up") == 0 && id >= 1 && id <= m->brokers) {
        e = rd_kafka_mock_broker_set_up(m->cluster, (int32_t)id);
    } else if (n == 4 && strcmp(verb, "leader") == 0) {
        e = rd_kafka_mock_partition_set_leader(m->cluster, a, (int32_t)strtol(b, NULL, 10),
                                               (int32_t)id);
    } else if (n == 4 && strcmp(verb, "coordinator") == 0 && id >= 1 && id <= m->brokers) {
        e = rd_kafka_mock_coordinator_set(m->cluster, a, b, (int32_t)id);
    } else if (n == 4 && strcmp(verb, "errors") == 0) {
        int api = mock_api_key(a);
        long count = strtol(b, NULL, 10), code = strtol(c, NULL, 10);
        rd_kafka_resp_err_t codes[64];
        if (api < 0 || count < 1 || count > 64 || code <= 0)
            goto bad;
        for (long i = 0; i < count; i++)
            codes[i] = (rd_kafka_resp_err_t)code;
        rd_kafka_mock_push_request_errors_array(m->cluster, (int16_t)api, (size_t)count, codes);
        e = RD_KAFKA_RESP_ERR_NO_ERROR;
    } else {
        goto bad;
    }
    if (e) {
        errbuf_printf(err, errlen, "%.200s: %s", line, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
bad:
    errbuf_printf(err, errlen, "bad mock command \"%.200s\" (see ingest_mock.h)", line);
    return -1;
}
