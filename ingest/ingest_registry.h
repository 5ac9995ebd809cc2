/* Confluent Schema Registry client: the writer schema of a Confluent-framed message, by id.
 *
 * GET {url}/schemas/ids/{id} over HTTP or HTTPS (libevent's HTTP client, OpenSSL for TLS), with
 * HTTP basic auth when a user is set, a timeout per attempt and retries with exponential backoff
 * on connection errors, timeouts and 5xx answers. A 404 (error_code 40403) means the id does not
 * exist: a property of the message, answered at once. Caching is the caller's (ingest_avro keeps
 * every schema it has parsed; ids never change meaning in a registry).
 *
 * @locality: one thread at a time per client (the worker); each fetch runs its own event base to
 * completion, so a fetch blocks its caller for at most about retries x timeout_ms plus backoff. */
#ifndef VIGIL_INGEST_REGISTRY_H
#define VIGIL_INGEST_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

enum {
    INGEST_REGISTRY_OK = 0,
    INGEST_REGISTRY_NOT_FOUND = 1,   /* the registry says the id does not exist */
    INGEST_REGISTRY_UNAVAILABLE = 2, /* could not get an answer: try again later */
};

typedef struct ingest_registry_options {
    const char *url;  /* "http://host:8081" or "https://host/prefix"; no trailing slash needed */
    const char *user; /* basic auth user, or NULL/"" for none */
    const char *password; /* basic auth password */
    const char *ca_file;  /* HTTPS: PEM bundle to verify the server with; NULL/"": system store */
    int timeout_ms;       /* per attempt */
    int retries;          /* further attempts after a failed one */
    int backoff_ms;       /* wait before the first retry; doubles each time */
} ingest_registry_options_t;

typedef struct ingest_registry ingest_registry_t;

/* Checks the URL and sets up TLS when it is https. Returns NULL and fills err on a bad URL, an
 * unreadable CA file or out of memory. */
ingest_registry_t *ingest_registry_new(const ingest_registry_options_t *o, char *err,
                                       size_t errlen);
void ingest_registry_free(ingest_registry_t *r);

/* Fetches the schema of id. INGEST_REGISTRY_OK: *schema is the schema's JSON text (malloc'd; the
 * caller frees it). NOT_FOUND and UNAVAILABLE fill err with what the registry or the network
 * said. */
int ingest_registry_fetch(ingest_registry_t *r, uint32_t id, char **schema, char *err,
                          size_t errlen);

#endif
