/* The daemon's small HTTP server on libevent's evhttp: liveness (/healthz), readiness (/readyz,
 * asked of a callback) and Prometheus metrics (/metrics). It runs on the main event loop and keeps
 * no worker state, so a slow scrape can never stall the pipeline. */
#include "http.h"

#include "errbuf.h"
#include "metrics.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* No endpoint takes a body, and probes that hang should not hold a connection for long. */
#define HTTP_MAX_BODY 4096
#define HTTP_TIMEOUT_S 10

struct daemon_http {
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    http_ready_fn ready;
    void *ready_ctx;
};

static void http_reply_text(struct evhttp_request *req, int code, const char *reason,
                            const char *content_type, const char *body, size_t len)
{
    struct evbuffer *buf = evbuffer_new();

    if (!buf || evbuffer_add(buf, body, len) != 0 ||
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", content_type) !=
            0) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
    } else {
        evhttp_send_reply(req, code, reason, buf);
    }
    if (buf)
        evbuffer_free(buf);
}

static void http_reply_plain(struct evhttp_request *req, int code, const char *reason,
                             const char *body)
{
    http_reply_text(req, code, reason, "text/plain; charset=utf-8", body, strlen(body));
}

static void http_handle_readyz(daemon_http_t *h, struct evhttp_request *req)
{
    char why[256] = "";
    char body[300];

    if (!h->ready || h->ready(h->ready_ctx, why, sizeof(why))) {
        http_reply_plain(req, HTTP_OK, "OK", "ready\n");
        return;
    }
    why[sizeof(why) - 1] = '\0';
    snprintf(body, sizeof(body), "not ready: %s\n", why[0] ? why : "unknown reason");
    http_reply_plain(req, 503, "Service Unavailable", body);
}

static void http_handle_metrics(struct evhttp_request *req)
{
    char *text = NULL;
    size_t len = 0;

    if (metrics_render(&text, &len) != 0) {
        http_reply_plain(req, HTTP_INTERNAL, "Internal Server Error",
                         "out of memory rendering metrics\n");
        return;
    }
    http_reply_text(req, HTTP_OK, "OK", "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}

static void http_handle(struct evhttp_request *req, void *arg)
{
    daemon_http_t *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    int known;

    if (!path)
        path = "";
    known = strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
            strcmp(path, "/metrics") == 0;
    if (!known) {
        http_reply_plain(req, HTTP_NOTFOUND, "Not Found",
                         "not found; try /healthz, /readyz or /metrics\n");
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET) {
        if (evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET") != 0) {
            evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
            return;
        }
        http_reply_plain(req, 405, "Method Not Allowed", "method not allowed; use GET\n");
        return;
    }
    if (strcmp(path, "/healthz") == 0)
        http_reply_plain(req, HTTP_OK, "OK", "ok\n");
    else if (strcmp(path, "/readyz") == 0)
        http_handle_readyz(h, req);
    else
        http_handle_metrics(req);
}

/* Splits "host:port" ("[::1]:port" for IPv6) into host (without brackets) and port. */
static int http_listen_parse(const char *listen, char *host, size_t hostlen, unsigned *port)
{
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t n;
    char *end = NULL;
    unsigned long p;

    if (!colon || colon == listen)
        return -1;
    n = (size_t)(colon - listen);
    if (listen[0] == '[') {
        if (n < 3 || listen[n - 1] != ']')
            return -1;
        h = listen + 1;
        n -= 2;
    }
    if (n >= hostlen)
        return -1;
    memcpy(host, h, n);
    host[n] = '\0';
    if (colon[1] == '\0' || strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return -1;
    errno = 0;
    p = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || p > 65535)
        return -1;
    *port = (unsigned)p;
    return 0;
}

daemon_http_t *daemon_http_new(struct event_base *base, const char *listen, http_ready_fn ready,
                               void *ready_ctx, char *err, size_t errlen)
{
    daemon_http_t *h = NULL;
    char host[256];
    unsigned port = 0;

    if (!listen || http_listen_parse(listen, host, sizeof(host), &port) != 0) {
        errbuf_printf(err, errlen, "http.listen '%s' is not host:port (e.g. 127.0.0.1:9187)",
                      listen ? listen : "(null)");
        goto err;
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        errbuf_printf(err, errlen, "out of memory creating the HTTP server");
        goto err;
    }
    h->ready = ready;
    h->ready_ctx = ready_ctx;
    h->http = evhttp_new(base);
    if (!h->http) {
        errbuf_printf(err, errlen, "cannot create the HTTP server (evhttp_new failed)");
        goto err;
    }
    /* Every method reaches http_handle, so the answer is 405 rather than evhttp's 501. */
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(h->http, HTTP_MAX_BODY);
    evhttp_set_timeout(h->http, HTTP_TIMEOUT_S);
    evhttp_set_gencb(h->http, http_handle, h);

    errno = 0;
    h->sock = evhttp_bind_socket_with_handle(h->http, host, (ev_uint16_t)port);
    if (!h->sock) {
        errbuf_printf(
            err, errlen,
            "cannot listen on %s: %s; is another vigild running? set http.listen to a free "
            "port or off",
            listen, errno ? strerror(errno) : "bind failed");
        goto err;
    }
    return h;
err:
    daemon_http_free(h);
    return NULL;
}

int daemon_http_port(const daemon_http_t *http)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    evutil_socket_t fd;

    if (!http || !http->sock)
        return -1;
    fd = evhttp_bound_socket_get_fd(http->sock);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

void daemon_http_free(daemon_http_t *http)
{
    if (!http)
        return;
    /* evhttp_free closes the bound sockets and any open connections with them. */
    if (http->http)
        evhttp_free(http->http);
    free(http);
}
