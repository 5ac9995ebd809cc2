/* Tests daemon/common/metrics.c and daemon/vigild/http.c together: the Prometheus text (HELP/TYPE
 * for every family, cumulative buckets consistent with _count and _sum) and the HTTP endpoints,
 * asked over real TCP by a blocking client thread while the main thread runs the server's event
 * loop. */
#include "http.h"
#include "metrics.h"

#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct response {
    int status;
    char *headers; /* status line and headers, up to the blank line */
    char *body;
} response_t;

/* Sends raw request text to 127.0.0.1:port and reads the answer until the server closes (the
 * requests are HTTP/1.0, so it does). Returns 0 with resp filled, -1 on a socket error. */
static int http_fetch(int port, const char *request, response_t *resp)
{
    struct sockaddr_in addr = {0};
    struct timeval tv = {10, 0}; /* a hung server fails the test instead of hanging it */
    char *buf = NULL;
    size_t len = 0, cap = 0;
    char *split;
    int fd;

    memset(resp, 0, sizeof(*resp));
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        write(fd, request, strlen(request)) != (ssize_t)strlen(request))
        goto err;
    for (;;) {
        ssize_t n;
        if (cap - len < 4096) {
            char *grown = realloc(buf, cap + 65536);
            if (!grown)
                goto err;
            buf = grown;
            cap += 65536;
        }
        n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto err;
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    if (!buf)
        return -1;
    buf[len] = '\0';
    if (sscanf(buf, "HTTP/1.%*d %d", &resp->status) != 1)
        resp->status = -1;
    split = strstr(buf, "\r\n\r\n");
    if (split) {
        resp->body = strdup(split + 4);
        *split = '\0';
    } else {
        resp->body = strdup("");
    }
    resp->headers = buf;
    return 0;
err:
    close(fd);
    free(buf);
    return -1;
}

static void response_free(response_t *r)
{
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* ---- the server side: readiness callback state, toggled by the client between requests ---- */

static _Atomic int server_ready = 1;

static int test_ready(void *ctx, char *why, size_t whylen)
{
    CHECK(ctx == &server_ready);
    if (atomic_load(&server_ready))
        return 1;
    snprintf(why, whylen, "postgres is down");
    return 0;
}

enum {
    REQ_HEALTHZ,
    REQ_HEALTHZ_QUERY,
    REQ_READY,
    REQ_NOT_READY,
    REQ_METRICS,
    REQ_NOT_FOUND,
    REQ_POST,
    REQ_DELETE,
    REQ_PATCH,
    N_REQ
};

typedef struct client {
    struct event_base *base;
    int port;
    response_t resp[N_REQ];
    int fetch_rc[N_REQ];
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    static const char *const requests[N_REQ] = {
        [REQ_HEALTHZ] = "GET /healthz HTTP/1.0\r\n\r\n",
        [REQ_HEALTHZ_QUERY] = "GET /healthz?verbose=1 HTTP/1.0\r\n\r\n",
        [REQ_READY] = "GET /readyz HTTP/1.0\r\n\r\n",
        [REQ_NOT_READY] = "GET /readyz HTTP/1.0\r\n\r\n",
        [REQ_METRICS] = "GET /metrics HTTP/1.0\r\n\r\n",
        [REQ_NOT_FOUND] = "GET /nope HTTP/1.0\r\n\r\n",
        [REQ_POST] = "POST /healthz HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
        [REQ_DELETE] = "DELETE /metrics HTTP/1.0\r\n\r\n",
        [REQ_PATCH] = "PATCH /readyz HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
    };

    for (int i = 0; i < N_REQ; i++) {
        atomic_store(&server_ready, i != REQ_NOT_READY);
        c->fetch_rc[i] = http_fetch(c->port, requests[i], &c->resp[i]);
    }
    /* Safe from this thread: evthread_use_pthreads was called before the base was created. */
    event_base_loopbreak(c->base);
    return NULL;
}

/* ---- checks on the metrics text ---- */

static void check_family(const char *text, const char *name, const char *type)
{
    char line[256];

    snprintf(line, sizeof(line), "# TYPE %s %s\n", name, type);
    CHECK(strstr(text, line) != NULL);
    snprintf(line, sizeof(line), "# HELP %s ", name);
    CHECK(strstr(text, line) != NULL);
}

/* Reads every name_bucket line in order: le values ascending, counts cumulative, +Inf last and
 * equal to _count. Returns the number of buckets, or -1. */
/* topic: the topic="..." label of a per-topic histogram, or NULL for none. */
static int check_histogram(const char *text, const char *name, const char *topic)
{
    char prefix[256];
    const char *p = text;
    unsigned long long prev = 0, count = 0, v;
    int buckets = 0;
    int saw_inf = 0;
    double prev_le = -1;

    if (topic)
        snprintf(prefix, sizeof(prefix), "\n%s_bucket{topic=\"%s\",le=\"", name, topic);
    else
        snprintf(prefix, sizeof(prefix), "\n%s_bucket{le=\"", name);
    while ((p = strstr(p, prefix)) != NULL) {
        char le[32];
        p += strlen(prefix);
        if (sscanf(p, "%31[^\"]\"} %llu", le, &v) != 2)
            return -1;
        CHECK(!saw_inf); /* nothing after +Inf */
        if (strcmp(le, "+Inf") == 0) {
            saw_inf = 1;
        } else {
            double d = strtod(le, NULL);
            CHECK(d > prev_le);
            prev_le = d;
        }
        CHECK(v >= prev);
        prev = v;
        buckets++;
    }
    CHECK(saw_inf);
    if (topic)
        snprintf(prefix, sizeof(prefix), "\n%s_count{topic=\"%s\"} ", name, topic);
    else
        snprintf(prefix, sizeof(prefix), "\n%s_count ", name);
    p = strstr(text, prefix);
    CHECK(p != NULL);
    if (!p || sscanf(p + strlen(prefix), "%llu", &count) != 1)
        return -1;
    CHECK(count == prev);
    return buckets;
}

/* Returns the number of sample lines whose name does not start with the current family's. */
static int check_samples_follow_type(const char *text)
{
    char family[128] = "";
    int bad = 0;

    for (const char *line = text; *line; line = strchr(line, '\n') + 1) {
        size_t n = strcspn(line, "{ \n");
        if (strncmp(line, "# TYPE ", 7) == 0) {
            CHECK(sscanf(line, "# TYPE %127s", family) == 1);
        } else if (line[0] != '#') {
            if (family[0] == '\0' || strncmp(line, family, strlen(family)) != 0 ||
                n < strlen(family))
                bad++;
        }
        if (!strchr(line, '\n'))
            break;
    }
    return bad;
}

static void check_metrics_text(const char *text)
{
    check_family(text, "vigil_messages_consumed_total", "counter");
    check_family(text, "vigil_messages_decoded_total", "counter");
    check_family(text, "vigil_messages_dead_lettered_total", "counter");
    check_family(text, "vigil_rows_written_total", "counter");
    check_family(text, "vigil_batches_committed_total", "counter");
    check_family(text, "vigil_batches_fenced_total", "counter");
    check_family(text, "vigil_postgres_errors_total", "counter");
    check_family(text, "vigil_kafka_errors_total", "counter");
    check_family(text, "vigil_rebalances_total", "counter");
    check_family(text, "vigil_assigned_partitions", "gauge");
    check_family(text, "vigil_paused_partitions", "gauge");
    check_family(text, "vigil_postgres_up", "gauge");
    check_family(text, "vigil_batch_rows", "histogram");
    check_family(text, "vigil_write_seconds", "histogram");
    check_family(text, "vigil_decode_seconds", "histogram");
    check_family(text, "vigil_messages_dead_lettered_by_reason_total", "counter");
    check_family(text, "vigil_consumer_lag", "gauge");

    CHECK(strstr(text, "\nvigil_messages_consumed_total{topic=\"behavior-events\"} 7\n") != NULL);
    CHECK(strstr(text, "\nvigil_rows_written_total{topic=\"behavior-events\"} 5\n") != NULL);
    CHECK(strstr(text, "\nvigil_messages_decoded_total{topic=\"behavior-events\"} 0\n") != NULL);
    CHECK(strstr(text, "\nvigil_assigned_partitions{topic=\"behavior-events\"} 4\n") != NULL);
    /* A second topic has its own series. */
    CHECK(strstr(text, "\nvigil_messages_consumed_total{topic=\"news-articles\"} 2\n") != NULL);
    CHECK(strstr(text, "\nvigil_assigned_partitions{topic=\"news-articles\"} 0\n") != NULL);
    CHECK(strstr(text, "\nvigil_consumer_lag{topic=\"news-articles\",partition=\"1\"} 9\n"));
    CHECK(strstr(text, "\nvigil_decode_seconds_count{topic=\"news-articles\"} 1\n"));
    CHECK(check_histogram(text, "vigil_decode_seconds", "news-articles") == 10);
    /* Unused topic slots render nothing. */
    CHECK(strstr(text, "topic=\"\"") == NULL);
    CHECK(strstr(text, "\nvigil_postgres_up 1\n") != NULL);
    /* Only partitions with a known lag are rendered, labelled with the topic. */
    CHECK(strstr(text, "\nvigil_consumer_lag{topic=\"behavior-events\",partition=\"3\"} 42\n"));
    CHECK(strstr(text, "\nvigil_consumer_lag{topic=\"behavior-events\",partition=\"7\"} 0\n"));
    CHECK(strstr(text, "partition=\"0\"") == NULL);
    CHECK(strstr(text, "\nvigil_messages_dead_lettered_by_reason_total{topic=\"behavior-events\","
                       "reason=\"unknown_schema\"} "
                       "2\n"));
    CHECK(strstr(text,
                 "\nvigil_messages_dead_lettered_by_reason_total{topic=\"behavior-events\",reason="
                 "\"refused_by_postgres\"} 1\n"));
    CHECK(strstr(text, "\nvigil_messages_dead_lettered_by_reason_total{topic=\"behavior-events\","
                       "reason=\"empty\"} 0\n"));
    CHECK(
        strstr(text, "\nvigil_decode_seconds_bucket{topic=\"behavior-events\",le=\"2e-06\"} 1\n"));
    CHECK(strstr(text, "\nvigil_decode_seconds_sum{topic=\"behavior-events\"} 0.000001500\n"));
    CHECK(check_histogram(text, "vigil_decode_seconds", "behavior-events") == 10);

    /* Observed 1, 5, 100, 100, 7000, 100000: bounds are inclusive ("le"). */
    CHECK(strstr(text, "\nvigil_batch_rows_bucket{le=\"1\"} 1\n"
                       "vigil_batch_rows_bucket{le=\"10\"} 2\n"
                       "vigil_batch_rows_bucket{le=\"50\"} 2\n"
                       "vigil_batch_rows_bucket{le=\"100\"} 4\n"
                       "vigil_batch_rows_bucket{le=\"500\"} 4\n"
                       "vigil_batch_rows_bucket{le=\"1000\"} 4\n"
                       "vigil_batch_rows_bucket{le=\"5000\"} 4\n"
                       "vigil_batch_rows_bucket{le=\"10000\"} 5\n"
                       "vigil_batch_rows_bucket{le=\"50000\"} 5\n"
                       "vigil_batch_rows_bucket{le=\"+Inf\"} 6\n"
                       "vigil_batch_rows_sum 107206.000000000\n"
                       "vigil_batch_rows_count 6\n") != NULL);
    CHECK(check_histogram(text, "vigil_batch_rows", NULL) == 10);

    CHECK(strstr(text, "\nvigil_write_seconds_bucket{le=\"0.0025\"} 0\n"
                       "vigil_write_seconds_bucket{le=\"0.005\"} 1\n") != NULL);
    CHECK(strstr(text, "\nvigil_write_seconds_bucket{le=\"1\"} 1\n"
                       "vigil_write_seconds_bucket{le=\"2.5\"} 2\n") != NULL);
    CHECK(strstr(text, "\nvigil_write_seconds_bucket{le=\"10\"} 2\n"
                       "vigil_write_seconds_bucket{le=\"+Inf\"} 3\n"
                       "vigil_write_seconds_sum 13.003000000\n"
                       "vigil_write_seconds_count 3\n") != NULL);
    CHECK(check_histogram(text, "vigil_write_seconds", NULL) == 14);

    /* Every sample line belongs to the family announced by the # TYPE line above it. */
    CHECK(text[strlen(text) - 1] == '\n');
    CHECK(check_samples_follow_type(text) == 0);
}

static void test_metrics_render(void)
{
    char *text = NULL;
    size_t len = 0;

    CHECK(metrics_render(&text, &len) == 0);
    CHECK(text != NULL && strlen(text) == len);
    if (text)
        check_metrics_text(text);
    free(text);
}

#define OBSERVERS 4
#define OBSERVATIONS 20000

static metrics_histogram_t concurrent_hist;
static const double concurrent_bounds[] = {1, 2};

static void *observer_main(void *arg)
{
    for (int i = 0; i < OBSERVATIONS; i++)
        metrics_observe(&concurrent_hist, (double)(i % 3)); /* 0, 1, 2 */
    return NULL;
}

/* Concurrent observations are all counted (relaxed atomics, no lost updates). */
/* Every reason the decoder and the worker write lands in its label. */
static void test_dead_reason_labels(void)
{
    CHECK(metrics_dead_reason_of("empty message value") == METRICS_DEAD_EMPTY);
    CHECK(metrics_dead_reason_of("empty message") == METRICS_DEAD_EMPTY);
    CHECK(metrics_dead_reason_of("truncated: 3-byte message is shorter than the 5-byte Confluent "
                                 "header") == METRICS_DEAD_TRUNCATED);
    CHECK(metrics_dead_reason_of("bad magic byte 0x7b (Confluent wants 0x00)") ==
          METRICS_DEAD_BAD_MAGIC);
    CHECK(metrics_dead_reason_of("unknown schema id 999999 (no /x/999999.avsc)") ==
          METRICS_DEAD_UNKNOWN_SCHEMA);
    CHECK(
        metrics_dead_reason_of("schema id 4 (/x/4.avsc) does not resolve to vigil.BehaviorEvent") ==
        METRICS_DEAD_INCOMPATIBLE_SCHEMA);
    CHECK(metrics_dead_reason_of("incompatible schema id 5: symbol SIGNUP of field event_type") ==
          METRICS_DEAD_INCOMPATIBLE_SCHEMA);
    CHECK(metrics_dead_reason_of("invalid field user_id: empty") == METRICS_DEAD_INVALID_FIELD);
    CHECK(metrics_dead_reason_of("bad union index 7 in field ip (2 branches)") ==
          METRICS_DEAD_MALFORMED);
    CHECK(metrics_dead_reason_of("refused by PostgreSQL: ERROR: ...") == METRICS_DEAD_REFUSED);
    CHECK(metrics_dead_reason_of(NULL) == METRICS_DEAD_MALFORMED);
}

static void test_observe_concurrent(void)
{
    pthread_t t[OBSERVERS];

    concurrent_hist.name = "test_hist";
    concurrent_hist.help = "test";
    concurrent_hist.bounds = concurrent_bounds;
    concurrent_hist.n_bounds = 2;
    for (int i = 0; i < OBSERVERS; i++)
        CHECK(pthread_create(&t[i], NULL, observer_main, NULL) == 0);
    for (int i = 0; i < OBSERVERS; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(atomic_load(&concurrent_hist.count) == OBSERVERS * OBSERVATIONS);
    /* i % 3 for i < 20000 gives 6667 zeros, 6667 ones and 6666 twos; le="1" holds the zeros
     * and ones, le="2" the twos. */
    CHECK(atomic_load(&concurrent_hist.buckets[0]) == OBSERVERS * (6667 + 6667));
    CHECK(atomic_load(&concurrent_hist.buckets[1]) == OBSERVERS * 6666);
    CHECK(atomic_load(&concurrent_hist.buckets[2]) == 0);
    CHECK(atomic_load(&concurrent_hist.sum_nanos) ==
          (uint64_t)OBSERVERS * (6667 + 2 * 6666) * 1000000000);
}

/* A batch's time spread over its events: n observations of one value, _sum the whole time. */
static void test_observe_n(void)
{
    static const double bounds[] = {0.001, 0.01};
    metrics_histogram_t h = {.name = "test_n", .help = "test", .bounds = bounds, .n_bounds = 2};

    metrics_observe_n(&h, 0.002, 5000); /* 10 s over 5000 events: each in le="0.01" */
    metrics_observe_n(&h, 0.0005, 4);
    metrics_observe_n(&h, 0.5, 0); /* no events: nothing */
    metrics_observe_n(&h, NAN, 3); /* dropped */
    CHECK(atomic_load(&h.count) == 5004);
    CHECK(atomic_load(&h.buckets[0]) == 4);
    CHECK(atomic_load(&h.buckets[1]) == 5000);
    CHECK(atomic_load(&h.buckets[2]) == 0);
    CHECK(atomic_load(&h.sum_nanos) == 10002000000u);
}

static void test_http(void)
{
    struct event_base *base = event_base_new();
    daemon_http_t *http, *clash;
    client_t c = {0};
    pthread_t thread;
    char err[512] = "";
    char listen[64];
    response_t *r;

    CHECK(base != NULL);
    if (!base)
        return;

    CHECK(daemon_http_new(base, "no-port-here", test_ready, &server_ready, err, sizeof(err)) ==
          NULL);
    CHECK(strstr(err, "'no-port-here' is not host:port") != NULL);
    CHECK(daemon_http_new(base, "127.0.0.1:70000", test_ready, &server_ready, err, sizeof(err)) ==
          NULL);

    http = daemon_http_new(base, "127.0.0.1:0", test_ready, &server_ready, err, sizeof(err));
    CHECK(http != NULL);
    if (!http) {
        fprintf(stderr, "daemon_http_new: %s\n", err);
        event_base_free(base);
        return;
    }
    c.base = base;
    c.port = daemon_http_port(http);
    CHECK(c.port > 0 && c.port <= 65535);

    /* A second server cannot take the same port, and says which address failed. */
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", c.port);
    err[0] = '\0';
    clash = daemon_http_new(base, listen, NULL, NULL, err, sizeof(err));
    CHECK(clash == NULL);
    CHECK(strstr(err, "cannot listen on 127.0.0.1:") != NULL);
    CHECK(strstr(err, "in use") != NULL);
    daemon_http_free(clash);

    CHECK(pthread_create(&thread, NULL, client_main, &c) == 0);
    CHECK(event_base_dispatch(base) == 0);
    CHECK(pthread_join(thread, NULL) == 0);

    for (int i = 0; i < N_REQ; i++)
        CHECK(c.fetch_rc[i] == 0);

    r = &c.resp[REQ_HEALTHZ];
    CHECK(r->status == 200);
    CHECK_STR(r->body, "ok\n");
    r = &c.resp[REQ_HEALTHZ_QUERY];
    CHECK(r->status == 200);
    CHECK_STR(r->body, "ok\n");
    r = &c.resp[REQ_READY];
    CHECK(r->status == 200);
    CHECK_STR(r->body, "ready\n");
    r = &c.resp[REQ_NOT_READY];
    CHECK(r->status == 503);
    CHECK_STR(r->body, "not ready: postgres is down\n");
    r = &c.resp[REQ_METRICS];
    CHECK(r->status == 200);
    CHECK(r->headers && strstr(r->headers, "\r\nContent-Type: text/plain; version=0.0.4; "
                                           "charset=utf-8") != NULL);
    if (r->body)
        check_metrics_text(r->body);
    r = &c.resp[REQ_NOT_FOUND];
    CHECK(r->status == 404);
    r = &c.resp[REQ_POST];
    CHECK(r->status == 405);
    CHECK(r->headers && strstr(r->headers, "\r\nAllow: GET") != NULL);
    CHECK(c.resp[REQ_DELETE].status == 405);
    CHECK(c.resp[REQ_PATCH].status == 405);

    for (int i = 0; i < N_REQ; i++)
        response_free(&c.resp[i]);
    daemon_http_free(http);
    event_base_free(base);
}

int main(void)
{
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "evthread_use_pthreads failed\n");
        return 1;
    }
    metrics_init();
    metrics_topic_t *events = metrics_topic("behavior-events");
    metrics_topic_t *news = metrics_topic("news-articles");
    CHECK(events && news && events != news);
    CHECK(metrics_topic("behavior-events") == events); /* found again, not a second slot */
    CHECK(metrics_topic("") == NULL);
    metrics_add(&events->consumed, 3);
    metrics_add(&events->consumed, 4);
    metrics_add(&events->written, 5);
    atomic_store(&events->assigned_partitions, 4);
    metrics_add(&news->consumed, 2);
    atomic_store(&news->consumer_lag[1], 9);
    metrics_observe(&news->decode_seconds, 3e-5);
    metrics_totals_t total = metrics_topics_total();
    CHECK(total.consumed == 9);
    CHECK(total.assigned_partitions == 4);
    atomic_store(&metrics.pg_up, 1);
    metrics_observe(&metrics.batch_rows, 1);
    metrics_observe(&metrics.batch_rows, 5);
    metrics_observe(&metrics.batch_rows, 100);
    metrics_observe(&metrics.batch_rows, 100);
    metrics_observe(&metrics.batch_rows, 7000);
    metrics_observe(&metrics.batch_rows, 100000);
    metrics_observe(&metrics.write_seconds, 0.003);
    metrics_observe(&metrics.write_seconds, 2.5);  /* exactly a bound: counted in le="2.5" */
    metrics_observe(&metrics.write_seconds, 10.5); /* above every bound: only +Inf */
    metrics_observe(&metrics.write_seconds, NAN);  /* dropped */
    atomic_store(&events->consumer_lag[3], 42);
    atomic_store(&events->consumer_lag[7], 0);
    metrics_add(&events->dead_by_reason[metrics_dead_reason_of("unknown schema id 9 (no x)")], 2);
    metrics_add(&events->dead_by_reason[metrics_dead_reason_of("refused by PostgreSQL: ...")], 1);
    metrics_observe(&events->decode_seconds, 1.5e-6);

    test_metrics_render();
    test_observe_concurrent();
    test_observe_n();
    test_dead_reason_labels();
    test_http();
    return TEST_DONE();
}
