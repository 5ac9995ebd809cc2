/* The embedded Kafka (see ingest_mock.h): a mock cluster owned by an otherwise idle producer
 * handle, because librdkafka ties every mock cluster to an rd_kafka_t. */
#include "ingest_mock.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>

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
        snprintf(err, errlen, "embedded kafka: out of memory");
        return NULL;
    }
    m->brokers = brokers;
    conf = rd_kafka_conf_new();
    /* The owning handle never talks to a broker; keep it quiet. */
    if (rd_kafka_conf_set(conf, "log_level", "3", rderr, sizeof(rderr)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "embedded kafka: %s", rderr);
        goto err;
    }
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, rderr, sizeof(rderr));
    if (!m->rk) {
        snprintf(err, errlen, "embedded kafka: cannot create handle: %s", rderr);
        goto err;
    }
    conf = NULL; /* owned by m->rk now */
    m->cluster = rd_kafka_mock_cluster_new(m->rk, brokers);
    if (!m->cluster) {
        snprintf(err, errlen, "embedded kafka: cannot start a mock cluster of %d brokers", brokers);
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
        snprintf(err, errlen, "embedded kafka: cannot create topic %s: %s", topic,
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
