/* vigild configuration: one table of keys (name, type, bounds, default, reloadable) filled from,
 * in increasing precedence, the config file, VIGIL_* environment variables and command-line
 * flags (--set section.key=value).
 *
 * File format (INI-like):
 *     # comment
 *     [postgres]
 *     conninfo = host=/run/postgresql dbname=vigil
 *     [kafka]
 *     bootstrap.servers = 127.0.0.1:9092
 * A key's full name is "section.key". Every key of [kafka] is passed to librdkafka unchanged (as
 * kcat's -X), so it is kept as a (key, value, origin) list rather than validated here; the daemon
 * validates those with rd_kafka_conf_set and reports the origin.
 *
 * Environment: VIGIL_<SECTION>_<KEY> with the name upper-cased and '.' turned into '_', e.g.
 * VIGIL_POSTGRES_CONNINFO, VIGIL_INGEST_BATCH_MAX. VIGIL_KAFKA_<KEY> is a pass-through key whose
 * name is lower-cased with '_' turned into '.': VIGIL_KAFKA_BOOTSTRAP_SERVERS -> bootstrap.servers.
 * Other VIGIL_* variables that match no key are errors, except VIGIL_CONFIG (the file path).
 *
 * Errors name the origin: "vigild.conf:12: unknown key 'ingest.batchmax'",
 * "environment VIGIL_INGEST_BATCH_MAX: 'abc' is not an integer", "flag --set log.level=loud: ...".
 * The caller exits with status 2 on any of them. */
#ifndef VIGIL_CONFIG_H
#define VIGIL_CONFIG_H

#include <stddef.h>
#include <stdio.h>

typedef struct config_kafka_kv {
    char *key;
    char *value;
    char *origin; /* "path:line", "environment VIGIL_KAFKA_X" or "flag --set kafka.x" */
} config_kafka_kv_t;

typedef struct daemon_config {
    char *config_path; /* NULL when started without a file */

    /* [ingest] */
    char *ingest_topic;                /* BehaviorEvent topic; default "behavior-events" */
    char *ingest_news_topic;           /* NewsArticle topic; default "news-articles" */
    char *ingest_fraud_labels_topic;   /* FraudLabel topic; default "fraud-labels" */
    char *ingest_news_labels_topic;    /* NewsLabel topic; default "news-labels" */
                                       /* (each: "" = not read; at least one is set) */
    char *ingest_format;               /* "confluent" (default) | "plain" */
    char *ingest_schema_dir;           /* writer schemas <id>.avsc; default: installed schema dir */
    char *ingest_reader_schema;        /* default: <schema_dir>/BehaviorEvent.avsc */
    char *ingest_schema_registry_url;  /* "" = none: writer schemas from schema_dir */
    char *ingest_schema_registry_user; /* basic auth; "" = none */
    char *ingest_schema_registry_password; /* secret: never logged */
    char *ingest_schema_registry_ca_file;  /* PEM bundle for https; "" = system store */
    int ingest_schema_registry_timeout_ms; /* per request, 100..60000, default 5000 */
    int ingest_schema_registry_retries;    /* 0..10, default 3 */
    char *ingest_dlq_topic;                /* "" = dead letters only in vigil.dead_letters */
    int ingest_batch_max;                  /* 1..100000, default 20000, reloadable */
    int ingest_batch_max_delay_ms;         /* 1..60000, default 200, reloadable */
    int ingest_batch_linger_ms;            /* 0..60000, default 0, reloadable */
    int ingest_batches_in_flight;          /* 1..16, default 2: closed batches per writer */
    int ingest_events_writers;             /* 1..8, default 2: the events lane's connections */

    /* [postgres] */
    /* [features] behavior features of the events topic (docs/features.md) */
    char *features_spec;                 /* spec file; "" built-in; "off" none */
    int features_max_entities;           /* per partition and entity type */
    int features_ttl_s;                  /* event-time TTL of an entity; 0 never */
    int features_checkpoint_interval_ms; /* least time between a partition's checkpoints */

    /* [alerts] (docs/alerts.md) */
    char *alerts_rules;               /* alert rule file; "" built-in rules; "off" no alerts */
    char *alerts_kafka_topic;         /* the alerts topic; "" none */
    int alerts_kafka_schema_id;       /* its records' Confluent schema id (Alert.avsc) */
    char *alerts_alertmanager_url;    /* http://HOST[:PORT][/PREFIX]; "" none */
    int alerts_alertmanager_resend_s; /* open alerts are sent again this often */
    int alerts_delivery_timeout_ms;   /* one delivery to a sink, at most */

    char *model_backend;      /* kernels backend: auto | cpu | cuda | cuda:N */
    int model_threads;        /* CPU backend threads */
    char *model_risk_path;    /* risk model file; "" none; reread on SIGHUP (hot swap) */
    int model_max_batch;      /* most rows per model call */
    char *model_news_path;    /* news heads file; "" none; reread on SIGHUP */
    char *model_encoder_dir;  /* BERT folder (config.json, model.safetensors, vocab.txt); "" none */
    int model_max_seq;        /* encoder input limit in tokens */
    int model_news_max_batch; /* a batch closes at this many articles */
    char *model_news_priority; /* the news server thread's CPU priority: idle | low | normal */

    char *postgres_conninfo;   /* libpq conninfo; default "dbname=vigil" */
    int postgres_retry_max_ms; /* cap of the reconnect backoff, 100..600000, default 5000,
                                  reloadable */

    /* [http] */
    char *http_listen; /* "host:port", default "127.0.0.1:9187"; "off" disables */

    /* [daemon] */
    int daemon_shutdown_timeout_ms; /* 100..600000, default 30000 */
    char *daemon_instance_id;       /* default "<hostname>:<pid>" */
    int daemon_status_interval_ms;  /* STATUS= and stats log period, 100..3600000, default 10000,
                                       reloadable */

    /* [log] */
    char *log_level; /* debug | info | warn | error; default info; reloadable */

    /* [embedded_kafka] (only with vigild --embedded-kafka) */
    int embedded_kafka_brokers;    /* 1..16, default 3 */
    int embedded_kafka_partitions; /* 1..1024, default 8 */

    /* [kafka]: pass-through to librdkafka, in the order they were set (later ones override). */
    config_kafka_kv_t *kafka;
    size_t n_kafka;
} daemon_config_t;

/* Loads defaults, then the file at path (NULL: none), then envp's VIGIL_* variables (envp may be
 * NULL), then flags: n_flags strings "section.key=value". On error returns -1, fills err with
 * the origin and the problem, and leaves *cfg freed. */
int daemon_config_load(daemon_config_t *cfg, const char *path, char *const *envp,
                       const char *const *flags, size_t n_flags, char *err, size_t errlen);
void daemon_config_free(daemon_config_t *cfg);

/* Looks up the last value set for a [kafka] pass-through key, or NULL. */
const char *daemon_config_kafka_get(const daemon_config_t *cfg, const char *key);

/* For SIGHUP: calls changed(name, old_value, new_value, reloadable, ctx) for every table key whose
 * value differs between old and new (values formatted as strings), and for [kafka] keys (never
 * reloadable). Returns the number of differences. */
typedef void (*config_changed_fn)(const char *name, const char *old_value, const char *new_value,
                                  int reloadable, void *ctx);
int daemon_config_diff(const daemon_config_t *old_cfg, const daemon_config_t *new_cfg,
                       config_changed_fn changed, void *ctx);

/* Writes every key with its default, type, bounds and whether it is reloadable, as a commented
 * config file (used for docs and `vigil check-config --defaults`). */
void daemon_config_print_defaults(FILE *out);

#endif
