/* The daemon's HTTP server on the libevent loop (127.0.0.1 by default): /healthz, /readyz,
 * /metrics. @locality: the main (event loop) thread. Readiness is read from metrics gauges and a
 * callback, so the server holds no state of the worker. */
#ifndef VIGIL_HTTP_H
#define VIGIL_HTTP_H

#include <stddef.h>

struct event_base;
typedef struct daemon_http daemon_http_t;

/* Called for /readyz: return 1 when ready, else 0 and a one-line reason in why (whylen). */
typedef int (*http_ready_fn)(void *ctx, char *why, size_t whylen);

/* listen is "host:port" (port 0 picks a free one; see daemon_http_port). Returns NULL and fills
 * err when the address is bad or cannot be bound. */
daemon_http_t *daemon_http_new(struct event_base *base, const char *listen, http_ready_fn ready,
                               void *ready_ctx, char *err, size_t errlen);
/* The bound port (useful with port 0). */
int daemon_http_port(const daemon_http_t *http);
void daemon_http_free(daemon_http_t *http);

#endif
