/* Prometheus Alertmanager as a delivery sink (delivery.h): every round POSTs its alerts to
 * Alertmanager's API v2 (POST <url>/api/v2/alerts, a JSON array) over plain HTTP/1.1, one
 * connection per round, every step bounded by the timeout. An open alert is sent again every
 * resend period with endsAt ahead of it, as Prometheus does, so that Alertmanager resolves it by
 * itself should vigild stop; a resolved one is sent once more with endsAt its resolution. */
#include "delivery_am.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "errbuf.h"
#include "json.h"
#include "metrics.h"

typedef struct delivery_am {
    char host[256], port[8], path[512]; /* path: the URL's prefix + /api/v2/alerts */
    int timeout_ms;
    int64_t ends_ahead_ms; /* an open alert's endsAt: this far after it is sent */
    json_buf_t body;
} delivery_am_t;

/* http://HOST[:PORT][/PREFIX]; no TLS, no credentials in the URL. */
static int am_parse_url(delivery_am_t *am, const char *url, char *err, size_t errlen)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        errbuf_printf(err, errlen, "alerts.alertmanager_url %s: only http://HOST[:PORT][/PATH]",
                      url);
        return -1;
    }
    p += 7;
    size_t hlen = strcspn(p, ":/");
    if (hlen == 0 || hlen >= sizeof am->host || memchr(p, '@', strcspn(p, "/"))) {
        errbuf_printf(err, errlen, "alerts.alertmanager_url %s: no host, or credentials", url);
        return -1;
    }
    memcpy(am->host, p, hlen);
    am->host[hlen] = '\0';
    p += hlen;
    snprintf(am->port, sizeof am->port, "9093");
    if (*p == ':') {
        size_t plen = strcspn(++p, "/");
        if (plen == 0 || plen >= sizeof am->port || strspn(p, "0123456789") != plen) {
            errbuf_printf(err, errlen, "alerts.alertmanager_url %s: a bad port", url);
            return -1;
        }
        memcpy(am->port, p, plen);
        am->port[plen] = '\0';
        p += plen;
    }
    size_t prefix = strlen(p);
    while (prefix > 0 && p[prefix - 1] == '/')
        prefix--;
    if ((size_t)snprintf(am->path, sizeof am->path, "%.*s/api/v2/alerts", (int)prefix, p) >=
        sizeof am->path) {
        errbuf_printf(err, errlen, "alerts.alertmanager_url %s: too long", url);
        return -1;
    }
    return 0;
}

/* RFC 3339 in UTC with milliseconds, from epoch ms. */
static void am_time(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

static int64_t am_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A label value: Alertmanager wants them non-empty; the entity is cut as the NOTIFY payload's. */
static void am_label(json_buf_t *b, const char *name, const char *value, size_t max)
{
    char cut[256];
    snprintf(cut, sizeof cut, "%.*s", (int)max, value && value[0] ? value : "-");
    json_buf_printf(b, ",\"%s\":", name);
    json_buf_string(b, cut);
}

static void am_alert_json(delivery_am_t *am, const sink_alert_t *a, int64_t now_ms)
{
    json_buf_t *b = &am->body;
    char t[32], summary[512];

    json_buf_puts(b, "{\"labels\":{\"alertname\":");
    json_buf_string(b, strcmp(a->kind, "fraud") == 0 ? "VigilFraud" : "VigilSentiment");
    am_label(b, "alert_id", a->alert_id, 255);
    am_label(b, "kind", a->kind, 32);
    am_label(b, "severity", a->severity, 32);
    am_label(b, "entity", a->entity, 200);
    json_buf_puts(b, "},\"annotations\":{\"summary\":");
    snprintf(summary, sizeof summary, "%s %s alert on %.200s: %s events, %s to %s", a->severity,
             a->kind, a->entity, a->event_count, a->first_event_id, a->last_event_id);
    json_buf_string(b, summary);
    json_buf_puts(b, ",\"status\":");
    json_buf_string(b, a->status);
    json_buf_puts(b, ",\"revision\":");
    json_buf_string(b, a->revision);
    if (a->explanation) {
        json_buf_puts(b, ",\"explanation\":");
        json_buf_string(b, a->explanation); /* JSON as text: annotations are strings */
    }
    am_time(strtoll(a->raised_at, NULL, 10), t);
    json_buf_printf(b, "},\"startsAt\":\"%s\"", t);
    int64_t ends = strcmp(a->status, "resolved") == 0 && a->resolved_at
                       ? strtoll(a->resolved_at, NULL, 10)
                       : now_ms + am->ends_ahead_ms;
    am_time(ends, t);
    json_buf_printf(b, ",\"endsAt\":\"%s\"}", t);
}

/* Waits for fd to be ready for events, at most until deadline. 0, or -1 on timeout. */
static int am_wait(int fd, short events, int64_t deadline_ms)
{
    for (;;) {
        int64_t left = deadline_ms - am_now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

static int am_connect(const delivery_am_t *am, int64_t deadline_ms, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(am->host, am->port, &hints, &res);
    if (rc != 0) {
        errbuf_printf(err, errlen, "Alertmanager %s:%s: %s", am->host, am->port, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        const char *why = NULL; /* errno is only read right after the call that set it */
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS)
            why = strerror(errno);
        else if (am_wait(fd, POLLOUT, deadline_ms) != 0)
            why = "timed out";
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0)
            why = strerror(soerr ? soerr : errno);
        if (why) {
            errbuf_printf(err, errlen, "Alertmanager %s:%s: cannot connect: %s", am->host, am->port,
                          why);
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

/* POSTs am->body; 0 when Alertmanager answered 2xx, -1 with err (status and the start of the
 * answer) otherwise. */
static int am_post(delivery_am_t *am, char *err, size_t errlen)
{
    int64_t deadline = am_now_ms() + am->timeout_ms;
    char head[1024], answer[1024];
    size_t got = 0;
    int rc = -1;

    int fd = am_connect(am, deadline, err, errlen);
    if (fd < 0)
        return -1;
    int hl = snprintf(head, sizeof head,
                      "POST %s HTTP/1.1\r\nHost: %s:%s\r\nUser-Agent: vigild\r\n"
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                      "Connection: close\r\n\r\n",
                      am->path, am->host, am->port, am->body.len);
    const char *parts[2] = {head, am->body.p};
    size_t lens[2] = {(size_t)hl, am->body.len};
    for (int i = 0; i < 2; i++)
        for (size_t off = 0; off < lens[i];) {
            if (am_wait(fd, POLLOUT, deadline) != 0)
                goto timeout;
            ssize_t w = send(fd, parts[i] + off, lens[i] - off, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR) {
                errbuf_printf(err, errlen, "Alertmanager: sending failed: %s", strerror(errno));
                goto out;
            }
            off += w > 0 ? (size_t)w : 0;
        }
    /* The status line is all that matters; the rest (up to the buffer) is for the error. */
    while (got < sizeof answer - 1 && !memchr(answer, '\n', got)) {
        if (am_wait(fd, POLLIN, deadline) != 0)
            goto timeout;
        ssize_t r = recv(fd, answer + got, sizeof answer - 1 - got, 0);
        if (r == 0)
            break;
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
            errbuf_printf(err, errlen, "Alertmanager: reading the answer failed: %s",
                          strerror(errno));
            goto out;
        }
        got += r > 0 ? (size_t)r : 0;
    }
    answer[got] = '\0';
    int status = 0;
    if (sscanf(answer, "HTTP/%*d.%*d %d", &status) != 1) {
        errbuf_printf(err, errlen, "Alertmanager: not an HTTP answer: %.80s", answer);
        goto out;
    }
    if (status < 200 || status > 299) {
        char *body = strstr(answer, "\r\n\r\n");
        errbuf_printf(err, errlen, "Alertmanager answered %d: %.200s", status,
                      body ? body + 4 : "");
        goto out;
    }
    rc = 0;
    goto out;
timeout:
    errbuf_printf(err, errlen, "Alertmanager %s:%s: no answer within %d ms", am->host, am->port,
                  am->timeout_ms);
out:
    close(fd);
    return rc;
}

static int am_send(void *ctx, const sink_alert_t *alerts, size_t n, int *delivered, char *err,
                   size_t errlen)
{
    delivery_am_t *am = ctx;
    int64_t now = am_now_ms();

    am->body.len = 0;
    am->body.failed = 0;
    json_buf_puts(&am->body, "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            json_buf_puts(&am->body, ",");
        am_alert_json(am, &alerts[i], now);
    }
    json_buf_puts(&am->body, "]");
    if (am->body.failed) {
        errbuf_printf(err, errlen, "Alertmanager: out of memory writing %zu alerts", n);
        return -1;
    }
    if (am_post(am, err, errlen) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        delivered[i] = 1; /* Alertmanager takes a batch whole or not at all */
    return 0;
}

static void am_free(void *ctx)
{
    delivery_am_t *am = ctx;
    if (!am)
        return;
    json_buf_free(&am->body);
    free(am);
}

int delivery_am_sink(const char *url, int64_t resend_ms, int timeout_ms, delivery_sink_t *out,
                     char *err, size_t errlen)
{
    delivery_am_t *am = calloc(1, sizeof *am);
    if (!am) {
        errbuf_printf(err, errlen, "Alertmanager: out of memory");
        return -1;
    }
    if (am_parse_url(am, url, err, errlen) != 0) {
        am_free(am);
        return -1;
    }
    am->timeout_ms = timeout_ms;
    /* Three missed resends, and never less than Alertmanager's own default of 5 minutes. */
    am->ends_ahead_ms = 3 * resend_ms > 300000 ? 3 * resend_ms : 300000;
    *out = (delivery_sink_t){.name = "alertmanager",
                             .metrics_index = METRICS_SINK_ALERTMANAGER,
                             .resend_ms = resend_ms,
                             .ctx = am,
                             .send = am_send,
                             .free_ctx = am_free};
    return 0;
}
