/* Confluent Schema Registry client (see ingest_registry.h). */
#include "ingest_registry.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errbuf.h"
#include "json.h"

#define REGISTRY_BODY_MAX (4 * 1024 * 1024) /* a schema larger than this is not a schema */

struct ingest_registry {
    char *host;
    int port;
    char *prefix; /* path before /schemas, without a trailing slash; "" for none */
    int https;
    char *auth;   /* "Basic <base64>" or NULL */
    SSL_CTX *ssl; /* https only */
    int timeout_ms, retries, backoff_ms;
};

/* ---- JSON answers (pipeline/util/json.h parses them) ---- */

/* The string value of a top-level key of the answer doc, or NULL. */
static const char *registry_json_string(const json_value_t *doc, const char *key)
{
    const json_value_t *v = json_get(doc, key);
    return v != NULL && v->type == JSON_STRING ? v->string : NULL;
}

/* The integer value of a top-level key of the answer doc (the registry's error_code), or -1. */
static int64_t registry_json_int(const json_value_t *doc, const char *key)
{
    const json_value_t *v = json_get(doc, key);
    return v != NULL && v->type == JSON_NUMBER && v->is_integer ? v->integer : -1;
}

/* ---- HTTP ---- */

typedef struct registry_answer {
    struct event_base *base;
    int status; /* 0 when no HTTP answer came (connection, TLS or timeout) */
    char *body;
    size_t body_len;
    const char *body_problem; /* why there is no body despite an answer, or NULL */
} registry_answer_t;

static void registry_on_response(struct evhttp_request *req, void *arg)
{
    registry_answer_t *a = arg;
    if (req && evhttp_request_get_response_code(req) > 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(in);
        a->status = evhttp_request_get_response_code(req);
        if (len > REGISTRY_BODY_MAX) {
            a->body_problem = "answer over 4 MiB";
        } else if ((a->body = malloc(len + 1)) == NULL) {
            a->body_problem = "out of memory reading the answer";
        } else if (evbuffer_remove(in, a->body, len) != (int)len) {
            free(a->body);
            a->body = NULL;
            a->body_problem = "cannot read the answer";
        } else {
            a->body[len] = '\0';
            a->body_len = len;
        }
    }
    event_base_loopexit(a->base, NULL);
}

/* One GET. Fills *a; returns -1 only when the request could not even be set up (err set). */
static int registry_get(ingest_registry_t *r, const char *path, registry_answer_t *a, char *err,
                        size_t errlen)
{
    struct bufferevent *bev = NULL;
    struct evhttp_connection *conn = NULL;
    struct evhttp_request *req;
    struct evkeyvalq *h;
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    SSL *ssl = NULL;
    int rc = -1;

    memset(a, 0, sizeof(*a));
    a->base = event_base_new();
    if (!a->base)
        goto oom;
    if (r->https) {
        ssl = SSL_new(r->ssl);
        /* Verify the certificate against the name we dialled: an IP address against the
         * certificate's IP entries, a host name against its DNS names (and send it as SNI). */
        unsigned char ip[16];
        int is_ip = inet_pton(AF_INET, r->host, ip) == 1 || inet_pton(AF_INET6, r->host, ip) == 1;
        if (!ssl ||
            (is_ip ? !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), r->host)
                   : (!SSL_set_tlsext_host_name(ssl, r->host) || !SSL_set1_host(ssl, r->host)))) {
            SSL_free(ssl);
            ssl = NULL;
            goto oom;
        }
        /* The bufferevent owns ssl from here (BEV_OPT_CLOSE_ON_FREE frees it). */
        bev = bufferevent_openssl_socket_new(a->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
                                             BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
        if (!bev) {
            SSL_free(ssl);
            goto oom;
        }
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    } else {
        bev = bufferevent_socket_new(a->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (!bev)
            goto oom;
    }
    /* The connection owns bev from here. */
    conn = evhttp_connection_base_bufferevent_new(a->base, NULL, bev, r->host, (uint16_t)r->port);
    if (!conn) {
        bufferevent_free(bev);
        goto oom;
    }
    evhttp_connection_set_timeout_tv(conn, &tv);
    req = evhttp_request_new(registry_on_response, a);
    if (!req)
        goto oom;
    h = evhttp_request_get_output_headers(req);
    if (evhttp_add_header(h, "Host", r->host) != 0 ||
        evhttp_add_header(h, "Accept",
                          "application/vnd.schemaregistry.v1+json, "
                          "application/vnd.schemaregistry+json; qs=0.9, application/json; "
                          "qs=0.5") != 0 ||
        evhttp_add_header(h, "User-Agent", "vigild") != 0 ||
        evhttp_add_header(h, "Connection", "close") != 0 ||
        (r->auth && evhttp_add_header(h, "Authorization", r->auth) != 0)) {
        evhttp_request_free(req);
        goto oom;
    }
    /* On failure libevent frees req itself. */
    if (evhttp_make_request(conn, req, EVHTTP_REQ_GET, path) != 0) {
        errbuf_printf(err, errlen, "schema registry: cannot send the request to %s:%d", r->host,
                      r->port);
        goto out;
    }
    if (event_base_dispatch(a->base) < 0) {
        errbuf_printf(err, errlen, "schema registry: event loop failed");
        goto out;
    }
    if (r->https && a->status == 0) {
        unsigned long e = bufferevent_get_openssl_error(bev);
        if (e) {
            char tls[256];
            ERR_error_string_n(e, tls, sizeof(tls));
            errbuf_printf(err, errlen, "TLS handshake failed: %s", tls);
        }
    }
    rc = 0;
    goto out;
oom:
    errbuf_printf(err, errlen, "schema registry: out of memory setting up a request");
out:
    if (conn)
        evhttp_connection_free(conn);
    if (a->base)
        event_base_free(a->base);
    a->base = NULL;
    return rc;
}

static void registry_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

int ingest_registry_fetch(ingest_registry_t *r, uint32_t id, char **schema, char *err,
                          size_t errlen)
{
    char path[1200];
    int backoff = r->backoff_ms;

    *schema = NULL;
    snprintf(path, sizeof(path), "%s/schemas/ids/%u", r->prefix, (unsigned)id);
    for (int attempt = 0;; attempt++) {
        registry_answer_t a;
        char why[300] = "";
        json_value_t *doc;
        const char *message, *text;
        int retry = 0, rc = INGEST_REGISTRY_UNAVAILABLE;

        if (registry_get(r, path, &a, why, sizeof(why)) != 0) {
            errbuf_printf(err, errlen, "%s", why);
            return INGEST_REGISTRY_UNAVAILABLE;
        }
        /* Confluent's answers are JSON: {"schema": "..."}, or {"error_code": N, "message": "..."}
         * for an error. Anything else (a proxy's HTML page) has neither. */
        doc = a.body ? json_parse(a.body, a.body_len, NULL, 0) : NULL;
        message = registry_json_string(doc, "message");
        text = registry_json_string(doc, "schema");
        if (a.status == 200 && text) {
            if ((*schema = strdup(text)) != NULL)
                rc = INGEST_REGISTRY_OK;
            else
                errbuf_printf(err, errlen, "schema registry %s:%d%s: out of memory", r->host,
                              r->port, path);
        } else if (a.status == 200) {
            errbuf_printf(err, errlen,
                          "schema registry %s:%d%s: 200 without a \"schema\" string%s%s%s", r->host,
                          r->port, path, a.body_problem ? " (" : "",
                          a.body_problem ? a.body_problem : "", a.body_problem ? ")" : "");
        } else if (a.status == 404 && registry_json_int(doc, "error_code") == 40403) {
            errbuf_printf(err, errlen, "registry: %s", message ? message : "schema not found");
            rc = INGEST_REGISTRY_NOT_FOUND;
        } else if (a.status == 401 || a.status == 403) {
            errbuf_printf(err, errlen,
                          "schema registry %s:%d refused the credentials (HTTP %d%s%s); check "
                          "ingest.schema_registry_user and _password",
                          r->host, r->port, a.status, message ? ": " : "", message ? message : "");
        } else if (a.status == 0 || a.status >= 500) {
            retry = 1;
            if (a.status == 0)
                errbuf_printf(err, errlen, "schema registry %s:%d: no HTTP answer (%s)", r->host,
                              r->port,
                              why[0] ? why : "connection refused, closed, or no answer in time");
            else
                errbuf_printf(err, errlen, "schema registry %s:%d: HTTP %d%s%s", r->host, r->port,
                              a.status, message ? ": " : "", message ? message : "");
        } else {
            errbuf_printf(err, errlen, "schema registry %s:%d%s: unexpected HTTP %d%s%s", r->host,
                          r->port, path, a.status, message ? ": " : "", message ? message : "");
        }
        json_free(doc);
        free(a.body);
        if (!retry || attempt >= r->retries)
            return rc;
        registry_sleep_ms(backoff);
        backoff *= 2;
    }
}

ingest_registry_t *ingest_registry_new(const ingest_registry_options_t *o, char *err, size_t errlen)
{
    struct evhttp_uri *uri = evhttp_uri_parse(o->url ? o->url : "");
    ingest_registry_t *r = calloc(1, sizeof(*r));
    const char *scheme, *host, *path;

    if (!r) {
        errbuf_printf(err, errlen, "schema registry: out of memory");
        goto err;
    }
    scheme = uri ? evhttp_uri_get_scheme(uri) : NULL;
    host = uri ? evhttp_uri_get_host(uri) : NULL;
    if (!scheme || !host || !*host ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        errbuf_printf(err, errlen,
                      "schema registry URL \"%s\" is not http://host[:port][/path] or https://...",
                      o->url ? o->url : "");
        goto err;
    }
    r->https = strcmp(scheme, "https") == 0;
    r->port = evhttp_uri_get_port(uri);
    if (r->port < 0)
        r->port = r->https ? 443 : 80;
    path = evhttp_uri_get_path(uri);
    r->host = strdup(host);
    r->prefix = strdup(path ? path : "");
    if (!r->host || !r->prefix)
        goto oom;
    size_t plen = strlen(r->prefix);
    while (plen > 0 && r->prefix[plen - 1] == '/')
        r->prefix[--plen] = '\0';
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 5000;
    r->retries = o->retries >= 0 ? o->retries : 0;
    r->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 100;
    if (o->user && *o->user) {
        size_t cred_len = strlen(o->user) + 1 + strlen(o->password ? o->password : "");
        char *cred = malloc(cred_len + 1);
        r->auth = malloc(6 + 4 * ((cred_len + 2) / 3) + 1);
        if (!cred || !r->auth) {
            free(cred);
            goto oom;
        }
        snprintf(cred, cred_len + 1, "%s:%s", o->user, o->password ? o->password : "");
        memcpy(r->auth, "Basic ", 6);
        EVP_EncodeBlock((unsigned char *)r->auth + 6, (const unsigned char *)cred, (int)cred_len);
        OPENSSL_cleanse(cred, cred_len);
        free(cred);
    }
    if (r->https) {
        r->ssl = SSL_CTX_new(TLS_client_method());
        if (!r->ssl)
            goto oom;
        SSL_CTX_set_verify(r->ssl, SSL_VERIFY_PEER, NULL);
        int ok = o->ca_file && *o->ca_file ? SSL_CTX_load_verify_locations(r->ssl, o->ca_file, NULL)
                                           : SSL_CTX_set_default_verify_paths(r->ssl);
        if (ok != 1) {
            errbuf_printf(err, errlen, "schema registry: cannot load CA certificates from %s",
                          o->ca_file && *o->ca_file ? o->ca_file : "the system store");
            goto err;
        }
    }
    evhttp_uri_free(uri);
    return r;
oom:
    errbuf_printf(err, errlen, "schema registry: out of memory");
err:
    if (uri)
        evhttp_uri_free(uri);
    ingest_registry_free(r);
    return NULL;
}

void ingest_registry_free(ingest_registry_t *r)
{
    if (!r)
        return;
    free(r->host);
    free(r->prefix);
    if (r->auth) {
        OPENSSL_cleanse(r->auth, strlen(r->auth));
        free(r->auth);
    }
    if (r->ssl)
        SSL_CTX_free(r->ssl);
    free(r);
}
