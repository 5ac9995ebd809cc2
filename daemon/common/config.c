/* vigild configuration: one static table (config_keys) drives defaults, file parsing, VIGIL_*
 * environment variables, --set flags, SIGHUP diffs and the printed sample file, so a key is added
 * in exactly one place. Every value is validated as it is set and every error names where the
 * value came from (file:line, environment variable or flag), because the caller exits on it and
 * the operator needs to know what to fix. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"

#ifndef VIGIL_DEFAULT_SCHEMA_DIR
#error "VIGIL_DEFAULT_SCHEMA_DIR must be defined by the build (CMakeLists.txt sets it)"
#endif

typedef enum config_type {
    CONFIG_STRING,   /* any text; min 1 means it must not be empty */
    CONFIG_INT,      /* decimal integer within [min, max] */
    CONFIG_ENUM,     /* one of allowed[] */
    CONFIG_HOSTPORT, /* "host:port" with port 0..65535, or "off" */
} config_type_t;

typedef struct config_key {
    const char *name; /* "section.key" */
    config_type_t type;
    size_t offset; /* of the field in daemon_config_t: char * for all types but CONFIG_INT */
    int min, max;
    const char *const *allowed; /* CONFIG_ENUM: NULL-terminated */
    const char *def;            /* default, as it would be written in the file */
    int reloadable;             /* applied on SIGHUP without a restart */
    const char *doc;
} config_key_t;

static const char *const config_formats[] = {"confluent", "plain", NULL};
static const char *const config_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const config_priorities[] = {"idle", "low", "normal", NULL};

#define FIELD(f) offsetof(daemon_config_t, f)

/* Grouped by section, in the order the sample file shows them. */
static const config_key_t config_keys[] = {
    {"ingest.topic", CONFIG_STRING, FIELD(ingest_topic), 0, 0, NULL, "behavior-events", 0,
     "Kafka topic of BehaviorEvent records (scored into vigil.risk_scores); empty: not read."},
    {"ingest.news_topic", CONFIG_STRING, FIELD(ingest_news_topic), 0, 0, NULL, "news-articles", 0,
     "Kafka topic of NewsArticle records (staged in vigil.news_scores); empty: not read."},
    {"ingest.fraud_labels_topic", CONFIG_STRING, FIELD(ingest_fraud_labels_topic), 0, 0, NULL,
     "fraud-labels", 0, "Kafka topic of FraudLabel records (into vigil.labels); empty: not read."},
    {"ingest.news_labels_topic", CONFIG_STRING, FIELD(ingest_news_labels_topic), 0, 0, NULL,
     "news-labels", 0, "Kafka topic of NewsLabel records (into vigil.labels); empty: not read."},
    {"ingest.format", CONFIG_ENUM, FIELD(ingest_format), 0, 0, config_formats, "confluent", 0,
     "Message framing: confluent (magic byte + schema id + Avro) or plain (bare Avro)."},
    {"ingest.schema_dir", CONFIG_STRING, FIELD(ingest_schema_dir), 1, 0, NULL,
     VIGIL_DEFAULT_SCHEMA_DIR, 0, "Directory of writer schemas, one <schema id>.avsc each."},
    {"ingest.reader_schema", CONFIG_STRING, FIELD(ingest_reader_schema), 0, 0, NULL, "", 0,
     "BehaviorEvent reader schema file; empty means <schema_dir>/BehaviorEvent.avsc (the other "
     "kinds always read <schema_dir>/<Record>.avsc)."},
    {"ingest.schema_registry_url", CONFIG_STRING, FIELD(ingest_schema_registry_url), 0, 0, NULL, "",
     0, "Confluent Schema Registry (http:// or https://); empty: writer schemas from schema_dir."},
    {"ingest.schema_registry_user", CONFIG_STRING, FIELD(ingest_schema_registry_user), 0, 0, NULL,
     "", 0, "Basic-auth user for the schema registry; empty for none."},
    {"ingest.schema_registry_password", CONFIG_STRING, FIELD(ingest_schema_registry_password), 0, 0,
     NULL, "", 0, "Basic-auth password for the schema registry (never logged)."},
    {"ingest.schema_registry_ca_file", CONFIG_STRING, FIELD(ingest_schema_registry_ca_file), 0, 0,
     NULL, "", 0, "PEM CA bundle to verify an https registry; empty: the system's."},
    {"ingest.schema_registry_timeout_ms", CONFIG_INT, FIELD(ingest_schema_registry_timeout_ms), 100,
     60000, NULL, "5000", 0, "Timeout of one schema registry request."},
    {"ingest.schema_registry_retries", CONFIG_INT, FIELD(ingest_schema_registry_retries), 0, 10,
     NULL, "3", 0, "Retries of a failed registry request (backoff from 100 ms, doubling)."},
    {"ingest.dlq_topic", CONFIG_STRING, FIELD(ingest_dlq_topic), 0, 0, NULL, "", 0,
     "Kafka topic that also receives every dead letter (a best-effort copy); empty: none."},
    {"ingest.batch_max", CONFIG_INT, FIELD(ingest_batch_max), 1, 100000, NULL, "20000", 1,
     "Most messages written to PostgreSQL in one transaction."},
    {"ingest.batch_max_delay_ms", CONFIG_INT, FIELD(ingest_batch_max_delay_ms), 1, 60000, NULL,
     "200", 1, "Longest a message waits for its batch to fill before the batch is written."},
    {"ingest.batch_linger_ms", CONFIG_INT, FIELD(ingest_batch_linger_ms), 0, 60000, NULL, "0", 1,
     "How long an open batch waits for more messages once none is waiting (0: written at once)."},
    {"ingest.batches_in_flight", CONFIG_INT, FIELD(ingest_batches_in_flight), 1, 16, NULL, "2", 0,
     "Closed batches a lane may have between its reader and their commit: while one is written "
     "the next is decoded, featurised and scored. More hold more memory, not more speed."},
    {"ingest.events_writers", CONFIG_INT, FIELD(ingest_events_writers), 1, 8, NULL, "2", 0,
     "PostgreSQL connections the events lane writes with at once, each partition always with "
     "the same one (so its transactions stay in offset order); the other lanes have one."},
    {"features.spec", CONFIG_STRING, FIELD(features_spec), 0, 0, NULL, "", 0,
     "Feature spec file for BehaviorEvents (docs/features.md); empty: the built-in spec; off: "
     "no features."},
    {"features.max_entities", CONFIG_INT, FIELD(features_max_entities), 1, 100000000, NULL,
     "1000000", 0,
     "Most entities kept per partition and entity type; the least recently seen is evicted."},
    {"features.ttl_s", CONFIG_INT, FIELD(features_ttl_s), 0, 366 * 86400, NULL, "2592000", 0,
     "An entity not seen for this long (event time) is forgotten; 0: never."},
    {"features.checkpoint_interval_ms", CONFIG_INT, FIELD(features_checkpoint_interval_ms), 0,
     86400000, NULL, "10000", 0,
     "Least time between two entity state checkpoints of a partition (more: longer replays)."},
    {"alerts.rules", CONFIG_STRING, FIELD(alerts_rules), 0, 0, NULL, "", 0,
     "Alert rule file (docs/alerts.md): fraud score thresholds per severity, conditions on "
     "features, grouping per user, and the sentiment alerts' windows and z-score; empty: the "
     "built-in rules; off: no alerts. Needs features; fraud alerts need a risk model."},
    {"alerts.kafka_topic", CONFIG_STRING, FIELD(alerts_kafka_topic), 0, 0, NULL, "", 0,
     "Kafka topic every committed alert change is published to after the commit (Alert.avsc, "
     "key: the entity); empty: none."},
    {"alerts.kafka_schema_id", CONFIG_INT, FIELD(alerts_kafka_schema_id), 0, 2147483647, NULL, "5",
     0, "Confluent schema id in the alerts topic's records (ingest/schemas/5.avsc is Alert.avsc)."},
    {"alerts.alertmanager_url", CONFIG_STRING, FIELD(alerts_alertmanager_url), 0, 0, NULL, "", 0,
     "Prometheus Alertmanager to send alerts to (API v2), http://HOST[:PORT][/PREFIX]; empty: "
     "none."},
    {"alerts.alertmanager_resend_s", CONFIG_INT, FIELD(alerts_alertmanager_resend_s), 1, 86400,
     NULL, "60", 0,
     "An open alert is sent to Alertmanager again this often (its endsAt three times as far "
     "ahead, at least 5 minutes)."},
    {"alerts.delivery_timeout_ms", CONFIG_INT, FIELD(alerts_delivery_timeout_ms), 100, 600000, NULL,
     "5000", 0,
     "One delivery to a sink (the alerts topic's acknowledgements, an Alertmanager POST) waits "
     "at most this long; then it is tried again, backing off up to 30 s."},
    {"model.backend", CONFIG_STRING, FIELD(model_backend), 0, 0, NULL, "auto", 0,
     "Where models run: auto (CUDA when a usable GPU is there, else CPU), cpu, cuda, cuda:N."},
    {"model.threads", CONFIG_INT, FIELD(model_threads), 0, 256, NULL, "1", 0,
     "Threads of the CPU backend (BLAS and row loops); 0: OpenBLAS's default."},
    {"model.risk_path", CONFIG_STRING, FIELD(model_risk_path), 0, 0, NULL, "", 1,
     "Risk model file (vigil train risk); empty: events are stored unscored. Read again on "
     "SIGHUP: the new model replaces the old between two batches, a bad file is refused."},
    {"model.max_batch", CONFIG_INT, FIELD(model_max_batch), 1, 1000000, NULL, "4096", 0,
     "Most rows one model call takes; a bigger batch is scored in several calls."},
    {"model.news_path", CONFIG_STRING, FIELD(model_news_path), 0, 0, NULL, "", 1,
     "News model heads (vigil train news); empty: articles are stored unscored. Read again on "
     "SIGHUP, like model.risk_path."},
    {"model.encoder_dir", CONFIG_STRING, FIELD(model_encoder_dir), 0, 0, NULL, "", 0,
     "BERT encoder folder (config.json, model.safetensors, vocab.txt) for heads trained on it; "
     "empty: only heads trained on the hashed n-gram encoder can be used."},
    {"model.news_max_batch", CONFIG_INT, FIELD(model_news_max_batch), 1, 100000, NULL, "32", 0,
     "A news batch is closed when it holds this many articles, so that encoding them (tens of "
     "ms each on a CPU) keeps their latency short: a batch commits once all are encoded."},
    {"model.news_priority", CONFIG_ENUM, FIELD(model_news_priority), 0, 0, config_priorities,
     "idle", 0,
     "CPU priority of the news model's thread: idle (only CPU time nothing else on the machine "
     "wants: SCHED_IDLE, and on a CPU its steps wait while every CPU is busy), low (nice + 10) "
     "or normal. On a CPU the encoder keeps a core busy; below normal, events are scored and "
     "written ahead of it."},
    {"model.max_seq", CONFIG_INT, FIELD(model_max_seq), 2, 512, NULL, "256", 0,
     "Longest encoder input in tokens; longer articles are truncated."},
    {"postgres.conninfo", CONFIG_STRING, FIELD(postgres_conninfo), 0, 0, NULL, "dbname=vigil", 0,
     "libpq connection string (keywords or URI); PG* environment variables also apply."},
    {"postgres.retry_max_ms", CONFIG_INT, FIELD(postgres_retry_max_ms), 100, 600000, NULL, "5000",
     1, "Cap of the exponential reconnect backoff after a PostgreSQL error."},
    {"http.listen", CONFIG_HOSTPORT, FIELD(http_listen), 0, 0, NULL, "127.0.0.1:9187", 0,
     "Address of /metrics, /healthz and /readyz: host:port (port 0 picks one), or off."},
    {"daemon.shutdown_timeout_ms", CONFIG_INT, FIELD(daemon_shutdown_timeout_ms), 100, 600000, NULL,
     "30000", 0, "How long SIGTERM waits for the batch in flight before giving up."},
    {"daemon.instance_id", CONFIG_STRING, FIELD(daemon_instance_id), 0, 0, NULL, "", 0,
     "Name of this process in logs and the database; empty means <hostname>:<pid>."},
    {"daemon.status_interval_ms", CONFIG_INT, FIELD(daemon_status_interval_ms), 100, 3600000, NULL,
     "10000", 1, "Period of the systemd STATUS= line and the stats log line."},
    {"log.level", CONFIG_ENUM, FIELD(log_level), 0, 0, config_levels, "info", 1,
     "Least severe level that is logged."},
    {"embedded_kafka.brokers", CONFIG_INT, FIELD(embedded_kafka_brokers), 1, 16, NULL, "3", 0,
     "Brokers of the in-process cluster started by vigild --embedded-kafka."},
    {"embedded_kafka.partitions", CONFIG_INT, FIELD(embedded_kafka_partitions), 1, 1024, NULL, "8",
     0, "Partitions of the topic created in the in-process cluster."},
};

#define CONFIG_N_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))
#define CONFIG_NAME_MAX 128
#define CONFIG_WHY_MAX 512

static char **config_string_field(daemon_config_t *cfg, const config_key_t *key)
{
    return (char **)((char *)cfg + key->offset);
}

static int *config_int_field(daemon_config_t *cfg, const config_key_t *key)
{
    return (int *)((char *)cfg + key->offset);
}

static const config_key_t *config_key_find(const char *name)
{
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        if (strcmp(config_keys[i].name, name) == 0)
            return &config_keys[i];
    }
    return NULL;
}

/* "ingest.batch_max" -> "VIGIL_INGEST_BATCH_MAX". */
static void config_env_name(const config_key_t *key, char *out, size_t outlen)
{
    size_t o = (size_t)snprintf(out, outlen, "VIGIL_");

    for (const char *p = key->name; *p && o + 1 < outlen; p++)
        out[o++] = (*p == '.') ? '_' : (char)toupper((unsigned char)*p);
    out[o] = '\0';
}

/* Levenshtein distance, used only to suggest the key a typo meant. */
static int config_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    int row[CONFIG_NAME_MAX + 1];

    if (lb > CONFIG_NAME_MAX || la > lb + 2 || lb > la + 2)
        return INT_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* Writes " (did you mean 'x'?)" into out when one table key (or its environment name, with
 * as_env) is within edit distance 2 of name; otherwise an empty string. */
static void config_suggest(const char *name, int as_env, char *out, size_t outlen)
{
    const config_key_t *best = NULL;
    int best_distance = 3;
    char candidate[CONFIG_NAME_MAX];

    out[0] = '\0';
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        int d;
        if (as_env)
            config_env_name(&config_keys[i], candidate, sizeof(candidate));
        else
            snprintf(candidate, sizeof(candidate), "%s", config_keys[i].name);
        d = config_edit_distance(name, candidate);
        if (d < best_distance) {
            best_distance = d;
            best = &config_keys[i];
        }
    }
    if (best) {
        if (as_env)
            config_env_name(best, candidate, sizeof(candidate));
        else
            snprintf(candidate, sizeof(candidate), "%s", best->name);
        snprintf(out, outlen, " (did you mean '%s'?)", candidate);
    }
}

static int config_int_parse(const config_key_t *key, const char *value, int *out, char *why,
                            size_t whylen)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(value, &end, 10);
    /* strtol skips leading blanks and stops at junk; a config value must be the number only. */
    if (value[0] == '\0' || isspace((unsigned char)value[0]) || end == value || *end != '\0') {
        errbuf_printf(why, whylen, "'%s' is not an integer", value);
        return -1;
    }
    if ((errno == ERANGE && v < 0) || v < key->min) {
        errbuf_printf(why, whylen, "%s is below the minimum %d", value, key->min);
        return -1;
    }
    if (errno == ERANGE || v > key->max) {
        errbuf_printf(why, whylen, "%s is above the maximum %d", value, key->max);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int config_enum_check(const config_key_t *key, const char *value, char *why, size_t whylen)
{
    size_t o;

    for (const char *const *a = key->allowed; *a; a++) {
        if (strcmp(*a, value) == 0)
            return 0;
    }
    o = (size_t)snprintf(why, whylen, "'%s' is not one of ", value);
    for (const char *const *a = key->allowed; *a && o < whylen; a++)
        o += (size_t)snprintf(why + o, whylen - o, "%s%s", *a, a[1] ? ", " : "");
    return -1;
}

static int config_hostport_check(const char *value, char *why, size_t whylen)
{
    const char *colon;
    const char *port;
    size_t host_len;

    if (strcmp(value, "off") == 0)
        return 0;
    colon = strrchr(value, ':');
    if (!colon || colon == value)
        goto bad;
    host_len = (size_t)(colon - value);
    if (value[0] == '[') {
        /* An IPv6 literal must be bracketed, or its colons would be read as the port. */
        if (host_len < 3 || value[host_len - 1] != ']')
            goto bad;
    } else if (memchr(value, ':', host_len)) {
        errbuf_printf(why, whylen, "'%s': write an IPv6 address in brackets, e.g. [::1]:9187",
                      value);
        return -1;
    }
    port = colon + 1;
    if (port[0] == '\0' || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) ||
        atoi(port) > 65535)
        goto bad;
    return 0;
bad:
    errbuf_printf(why, whylen, "'%s' is not host:port (e.g. 127.0.0.1:9187) or off", value);
    return -1;
}

/* Validates value for key and stores it in cfg. On error fills why with the problem only; the
 * caller adds where the value came from. */
static int config_value_set(daemon_config_t *cfg, const config_key_t *key, const char *value,
                            char *why, size_t whylen)
{
    char **field;
    char *copy;

    switch (key->type) {
    case CONFIG_INT:
        return config_int_parse(key, value, config_int_field(cfg, key), why, whylen);
    case CONFIG_ENUM:
        if (config_enum_check(key, value, why, whylen) != 0)
            return -1;
        break;
    case CONFIG_HOSTPORT:
        if (config_hostport_check(value, why, whylen) != 0)
            return -1;
        break;
    case CONFIG_STRING:
        if (key->min > 0 && value[0] == '\0') {
            errbuf_printf(why, whylen, "must not be empty");
            return -1;
        }
        break;
    }
    copy = strdup(value);
    if (!copy) {
        errbuf_printf(why, whylen, "out of memory");
        return -1;
    }
    field = config_string_field(cfg, key);
    free(*field);
    *field = copy;
    return 0;
}

/* Appends a [kafka] pass-through key; the list keeps every setting so origins stay reportable. */
static int config_kafka_add(daemon_config_t *cfg, const char *key, const char *value,
                            const char *origin, char *err, size_t errlen)
{
    config_kafka_kv_t *grown;
    config_kafka_kv_t kv = {0};

    if (key[0] == '\0') {
        errbuf_printf(err, errlen, "%s: empty [kafka] property name", origin);
        return -1;
    }
    grown = realloc(cfg->kafka, (cfg->n_kafka + 1) * sizeof(*grown));
    if (!grown)
        goto oom;
    cfg->kafka = grown;
    kv.key = strdup(key);
    kv.value = strdup(value);
    kv.origin = strdup(origin);
    if (!kv.key || !kv.value || !kv.origin)
        goto oom;
    cfg->kafka[cfg->n_kafka++] = kv;
    return 0;
oom:
    free(kv.key);
    free(kv.value);
    free(kv.origin);
    errbuf_printf(err, errlen, "%s: out of memory storing kafka property '%s'", origin, key);
    return -1;
}

static char *config_trim(char *s)
{
    size_t n;

    while (isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* "ingest" is a section if some table key starts with "ingest."; "kafka" is the pass-through. */
static int config_section_known(const char *section)
{
    size_t n = strlen(section);

    if (strcmp(section, "kafka") == 0)
        return 1;
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        if (strncmp(config_keys[i].name, section, n) == 0 && config_keys[i].name[n] == '.')
            return 1;
    }
    return 0;
}

static void config_sections_list(char *out, size_t outlen)
{
    size_t o = 0;
    const char *prev = NULL;
    size_t prev_len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < CONFIG_N_KEYS && o < outlen; i++) {
        const char *name = config_keys[i].name;
        size_t len = (size_t)(strchr(name, '.') - name);
        if (prev && len == prev_len && strncmp(prev, name, len) == 0)
            continue;
        o += (size_t)snprintf(out + o, outlen - o, "%.*s, ", (int)len, name);
        prev = name;
        prev_len = len;
    }
    if (o < outlen)
        snprintf(out + o, outlen - o, "kafka");
}

/* One line of the file: "[section]", "key = value", a comment or blank. section is the current
 * section name (empty before the first header), updated in place. */
static int config_file_line(daemon_config_t *cfg, const char *path, int lineno, char *raw,
                            char *section, size_t section_len, char *err, size_t errlen)
{
    char *line = config_trim(raw);
    char *eq, *key, *value;
    char why[CONFIG_WHY_MAX];
    char name[CONFIG_NAME_MAX];
    const config_key_t *k;

    if (line[0] == '\0' || line[0] == '#' || line[0] == ';')
        return 0;

    if (line[0] == '[') {
        size_t n = strlen(line);
        char *inner;
        if (line[n - 1] != ']') {
            errbuf_printf(err, errlen, "%s:%d: expected 'key = value' or '[section]'", path,
                          lineno);
            return -1;
        }
        line[n - 1] = '\0';
        inner = config_trim(line + 1);
        if (!config_section_known(inner)) {
            char known[256];
            config_sections_list(known, sizeof(known));
            errbuf_printf(err, errlen, "%s:%d: unknown section '[%s]'; sections are %s", path,
                          lineno, inner, known);
            return -1;
        }
        snprintf(section, section_len, "%s", inner);
        return 0;
    }

    eq = strchr(line, '=');
    if (!eq) {
        errbuf_printf(err, errlen, "%s:%d: expected 'key = value' or '[section]'", path, lineno);
        return -1;
    }
    *eq = '\0';
    key = config_trim(line);
    value = config_trim(eq + 1);
    if (key[0] == '\0') {
        errbuf_printf(err, errlen, "%s:%d: expected 'key = value' or '[section]'", path, lineno);
        return -1;
    }
    if (value[0] == '"') {
        size_t n = strlen(value);
        if (n < 2 || value[n - 1] != '"') {
            errbuf_printf(err, errlen, "%s:%d: value of '%s' opens a quote it does not close", path,
                          lineno, key);
            return -1;
        }
        value[n - 1] = '\0';
        value++;
    }
    if (section[0] == '\0') {
        errbuf_printf(err, errlen,
                      "%s:%d: key '%s' is outside a section; put it under a [section] header", path,
                      lineno, key);
        return -1;
    }

    if (strcmp(section, "kafka") == 0) {
        char origin[PATH_MAX + 32];
        snprintf(origin, sizeof(origin), "%s:%d", path, lineno);
        return config_kafka_add(cfg, key, value, origin, err, errlen);
    }

    snprintf(name, sizeof(name), "%s.%s", section, key);
    k = config_key_find(name);
    if (!k) {
        config_suggest(name, 0, why, sizeof(why));
        errbuf_printf(err, errlen, "%s:%d: unknown key '%s.%s'%s", path, lineno, section, key, why);
        return -1;
    }
    if (config_value_set(cfg, k, value, why, sizeof(why)) != 0) {
        errbuf_printf(err, errlen, "%s:%d: %s: %s", path, lineno, k->name, why);
        return -1;
    }
    return 0;
}

static int config_file_load(daemon_config_t *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f;
    char *raw = NULL;
    size_t cap = 0;
    char section[CONFIG_NAME_MAX] = "";
    int lineno = 0;

    f = fopen(path, "r");
    if (!f) {
        errbuf_printf(err, errlen, "cannot read config file %s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        errno = 0;
        if (getline(&raw, &cap, f) < 0)
            break;
        lineno++;
        if (config_file_line(cfg, path, lineno, raw, section, sizeof(section), err, errlen) != 0)
            goto err;
    }
    if (ferror(f)) {
        errbuf_printf(err, errlen, "cannot read config file %s: %s", path,
                      strerror(errno ? errno : EIO));
        goto err;
    }
    free(raw);
    fclose(f);
    return 0;
err:
    free(raw);
    fclose(f);
    return -1;
}

static int config_env_load(daemon_config_t *cfg, char *const *envp, char *err, size_t errlen)
{
    char why[CONFIG_WHY_MAX];
    char env_name[CONFIG_NAME_MAX];

    for (size_t i = 0; envp && envp[i]; i++) {
        const char *entry = envp[i];
        const char *eq = strchr(entry, '=');
        const char *value;
        size_t name_len;
        const config_key_t *k = NULL;

        if (strncmp(entry, "VIGIL_", 6) != 0 || !eq)
            continue;
        name_len = (size_t)(eq - entry);
        value = eq + 1;
        if (name_len >= sizeof(env_name)) {
            errbuf_printf(err, errlen, "environment %.*s...: no such setting; unset it", 40, entry);
            return -1;
        }
        memcpy(env_name, entry, name_len);
        env_name[name_len] = '\0';
        if (strcmp(env_name, "VIGIL_CONFIG") == 0)
            continue; /* the file path, read by the caller */

        for (size_t j = 0; j < CONFIG_N_KEYS && !k; j++) {
            char candidate[CONFIG_NAME_MAX];
            config_env_name(&config_keys[j], candidate, sizeof(candidate));
            if (strcmp(candidate, env_name) == 0)
                k = &config_keys[j];
        }
        if (k) {
            if (config_value_set(cfg, k, value, why, sizeof(why)) != 0) {
                errbuf_printf(err, errlen, "environment %s: %s", env_name, why);
                return -1;
            }
            continue;
        }

        if (strncmp(env_name, "VIGIL_KAFKA_", 12) == 0 && env_name[12] != '\0') {
            /* librdkafka properties are lower-case with dots; '.' cannot appear in a variable. */
            char property[CONFIG_NAME_MAX];
            char origin[CONFIG_NAME_MAX + 16];
            size_t o = 0;
            for (const char *p = env_name + 12; *p; p++)
                property[o++] = (*p == '_') ? '.' : (char)tolower((unsigned char)*p);
            property[o] = '\0';
            snprintf(origin, sizeof(origin), "environment %s", env_name);
            if (config_kafka_add(cfg, property, value, origin, err, errlen) != 0)
                return -1;
            continue;
        }

        config_suggest(env_name, 1, why, sizeof(why));
        errbuf_printf(
            err, errlen,
            "environment %s: no such setting%s; VIGIL_* variables must name a config key "
            "(e.g. VIGIL_INGEST_BATCH_MAX) or a kafka property (VIGIL_KAFKA_<NAME>); unset it",
            env_name, why);
        return -1;
    }
    return 0;
}

static int config_flags_load(daemon_config_t *cfg, const char *const *flags, size_t n_flags,
                             char *err, size_t errlen)
{
    char why[CONFIG_WHY_MAX];
    char name[CONFIG_NAME_MAX];

    for (size_t i = 0; i < n_flags; i++) {
        const char *flag = flags[i];
        const char *eq = strchr(flag, '=');
        const config_key_t *k;
        size_t name_len;

        if (!eq || eq == flag || !memchr(flag, '.', (size_t)(eq - flag))) {
            errbuf_printf(err, errlen, "flag --set %s: expected section.key=value", flag);
            return -1;
        }
        name_len = (size_t)(eq - flag);
        if (name_len >= sizeof(name)) {
            errbuf_printf(err, errlen, "flag --set %s: unknown key", flag);
            return -1;
        }
        memcpy(name, flag, name_len);
        name[name_len] = '\0';

        if (strncmp(name, "kafka.", 6) == 0) {
            char origin[CONFIG_NAME_MAX + 16];
            snprintf(origin, sizeof(origin), "flag --set %s", name);
            if (config_kafka_add(cfg, name + 6, eq + 1, origin, err, errlen) != 0)
                return -1;
            continue;
        }
        k = config_key_find(name);
        if (!k) {
            config_suggest(name, 0, why, sizeof(why));
            errbuf_printf(err, errlen, "flag --set %s: unknown key '%s'%s", flag, name, why);
            return -1;
        }
        if (config_value_set(cfg, k, eq + 1, why, sizeof(why)) != 0) {
            errbuf_printf(err, errlen, "flag --set %s: %s", flag, why);
            return -1;
        }
    }
    return 0;
}

/* The inputs: at least one, no topic named twice, and not the dead-letter topic. */
static int config_inputs_check(const daemon_config_t *cfg, char *err, size_t errlen)
{
    const char *topics[] = {cfg->ingest_topic, cfg->ingest_news_topic,
                            cfg->ingest_fraud_labels_topic, cfg->ingest_news_labels_topic};
    const char *keys[] = {"ingest.topic", "ingest.news_topic", "ingest.fraud_labels_topic",
                          "ingest.news_labels_topic"};
    size_t n = sizeof(topics) / sizeof(topics[0]), used = 0;
    for (size_t i = 0; i < n; i++) {
        if (!topics[i][0])
            continue;
        used++;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(topics[i], topics[j]) == 0) {
                errbuf_printf(err, errlen,
                              "%s and %s both name topic \"%s\"; each input needs its own topic",
                              keys[j], keys[i], topics[i]);
                return -1;
            }
        }
        if (strcmp(topics[i], cfg->ingest_dlq_topic) == 0) {
            errbuf_printf(err, errlen,
                          "%s and ingest.dlq_topic both name topic \"%s\"; dead letters would be "
                          "read back as input",
                          keys[i], topics[i]);
            return -1;
        }
    }
    if (used == 0) {
        errbuf_printf(err, errlen,
                      "no input topic: set at least one of ingest.topic, "
                      "ingest.news_topic, ingest.fraud_labels_topic, "
                      "ingest.news_labels_topic");
        return -1;
    }
    return 0;
}

/* Defaults that depend on other keys or on the machine, filled after every layer so that, e.g.,
 * VIGIL_INGEST_SCHEMA_DIR also moves the reader schema. */
static int config_defaults_resolve(daemon_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->ingest_reader_schema[0] == '\0') {
        const char *dir = cfg->ingest_schema_dir;
        size_t n = strlen(dir);
        const char *sep = (n > 0 && dir[n - 1] == '/') ? "" : "/";
        size_t len = n + strlen(sep) + sizeof("BehaviorEvent.avsc");
        char *path = malloc(len);
        if (!path) {
            errbuf_printf(err, errlen, "out of memory resolving ingest.reader_schema");
            return -1;
        }
        snprintf(path, len, "%s%sBehaviorEvent.avsc", dir, sep);
        free(cfg->ingest_reader_schema);
        cfg->ingest_reader_schema = path;
    }
    if (cfg->daemon_instance_id[0] == '\0') {
        char host[256];
        char *id;
        if (gethostname(host, sizeof(host)) != 0) {
            errbuf_printf(err, errlen,
                          "cannot read the host name for daemon.instance_id: %s; set "
                          "daemon.instance_id",
                          strerror(errno));
            return -1;
        }
        host[sizeof(host) - 1] = '\0';
        id = malloc(sizeof(host) + 24); /* ':' and a pid fit in 24 */
        if (!id) {
            errbuf_printf(err, errlen, "out of memory resolving daemon.instance_id");
            return -1;
        }
        snprintf(id, sizeof(host) + 24, "%s:%ld", host, (long)getpid());
        free(cfg->daemon_instance_id);
        cfg->daemon_instance_id = id;
    }
    return 0;
}

int daemon_config_load(daemon_config_t *cfg, const char *path, char *const *envp,
                       const char *const *flags, size_t n_flags, char *err, size_t errlen)
{
    char why[CONFIG_WHY_MAX];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        if (config_value_set(cfg, &config_keys[i], config_keys[i].def, why, sizeof(why)) != 0) {
            errbuf_printf(err, errlen, "built-in default of %s: %s", config_keys[i].name, why);
            goto err;
        }
    }
    if (path) {
        cfg->config_path = strdup(path);
        if (!cfg->config_path) {
            errbuf_printf(err, errlen, "out of memory loading config file %s", path);
            goto err;
        }
        if (config_file_load(cfg, path, err, errlen) != 0)
            goto err;
    }
    if (config_env_load(cfg, envp, err, errlen) != 0)
        goto err;
    if (config_flags_load(cfg, flags, n_flags, err, errlen) != 0)
        goto err;
    if (config_defaults_resolve(cfg, err, errlen) != 0 ||
        config_inputs_check(cfg, err, errlen) != 0)
        goto err;
    return 0;
err:
    daemon_config_free(cfg);
    return -1;
}

void daemon_config_free(daemon_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        if (config_keys[i].type != CONFIG_INT)
            free(*config_string_field(cfg, &config_keys[i]));
    }
    for (size_t i = 0; i < cfg->n_kafka; i++) {
        free(cfg->kafka[i].key);
        free(cfg->kafka[i].value);
        free(cfg->kafka[i].origin);
    }
    free(cfg->kafka);
    free(cfg->config_path);
    memset(cfg, 0, sizeof(*cfg));
}

const char *daemon_config_kafka_get(const daemon_config_t *cfg, const char *key)
{
    for (size_t i = cfg->n_kafka; i > 0; i--) {
        if (strcmp(cfg->kafka[i - 1].key, key) == 0)
            return cfg->kafka[i - 1].value;
    }
    return NULL;
}

static void config_value_format(const daemon_config_t *cfg, const config_key_t *key, char *out,
                                size_t outlen)
{
    const char *field = (const char *)cfg + key->offset;

    if (key->type == CONFIG_INT) {
        snprintf(out, outlen, "%d", *(const int *)field);
    } else {
        const char *s = *(char *const *)field;
        snprintf(out, outlen, "%s", s ? s : "");
    }
}

/* Whether key already appeared in kv[0..before), so each [kafka] key is compared once. */
static int config_kafka_seen(const config_kafka_kv_t *kv, size_t before, const char *key)
{
    for (size_t i = 0; i < before; i++) {
        if (strcmp(kv[i].key, key) == 0)
            return 1;
    }
    return 0;
}

static int config_kafka_diff_one(const daemon_config_t *old_cfg, const daemon_config_t *new_cfg,
                                 const char *key, config_changed_fn changed, void *ctx)
{
    const char *a = daemon_config_kafka_get(old_cfg, key);
    const char *b = daemon_config_kafka_get(new_cfg, key);
    char name[CONFIG_NAME_MAX];

    if (a && b && strcmp(a, b) == 0)
        return 0;
    snprintf(name, sizeof(name), "kafka.%s", key);
    if (changed)
        changed(name, a ? a : "(unset)", b ? b : "(unset)", 0, ctx);
    return 1;
}

int daemon_config_diff(const daemon_config_t *old_cfg, const daemon_config_t *new_cfg,
                       config_changed_fn changed, void *ctx)
{
    int n = 0;
    char a[4096], b[4096];

    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        const config_key_t *key = &config_keys[i];
        config_value_format(old_cfg, key, a, sizeof(a));
        config_value_format(new_cfg, key, b, sizeof(b));
        if (strcmp(a, b) != 0) {
            if (changed)
                changed(key->name, a, b, key->reloadable, ctx);
            n++;
        }
    }
    for (size_t i = 0; i < old_cfg->n_kafka; i++) {
        if (!config_kafka_seen(old_cfg->kafka, i, old_cfg->kafka[i].key))
            n += config_kafka_diff_one(old_cfg, new_cfg, old_cfg->kafka[i].key, changed, ctx);
    }
    for (size_t i = 0; i < new_cfg->n_kafka; i++) {
        const char *key = new_cfg->kafka[i].key;
        /* Keys present in old were compared above; only keys new to this load remain. */
        if (!config_kafka_seen(new_cfg->kafka, i, key) && !daemon_config_kafka_get(old_cfg, key))
            n += config_kafka_diff_one(old_cfg, new_cfg, key, changed, ctx);
    }
    return n;
}

void daemon_config_print_defaults(FILE *out)
{
    const char *prev_section = NULL;
    size_t prev_len = 0;

    fprintf(out,
            "# vigild configuration: every key with its built-in default (commented out).\n"
            "# Precedence: this file < VIGIL_* environment variables < --set section.key=value.\n"
            "# Lines starting with # or ; are comments; a value may be \"double-quoted\".\n"
            "# Reloadable keys take effect on SIGHUP; the others need a restart.\n");
    for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
        const config_key_t *key = &config_keys[i];
        const char *dot = strchr(key->name, '.');
        size_t len = (size_t)(dot - key->name);
        char env[CONFIG_NAME_MAX];

        if (!prev_section || len != prev_len || strncmp(prev_section, key->name, len) != 0) {
            fprintf(out, "\n[%.*s]\n", (int)len, key->name);
            prev_section = key->name;
            prev_len = len;
        }
        config_env_name(key, env, sizeof(env));
        fprintf(out, "# %s\n# ", key->doc);
        switch (key->type) {
        case CONFIG_STRING:
            fprintf(out, "string%s", key->min > 0 ? ", not empty" : "");
            break;
        case CONFIG_INT:
            fprintf(out, "integer %d..%d", key->min, key->max);
            break;
        case CONFIG_ENUM:
            fprintf(out, "one of");
            for (const char *const *a = key->allowed; *a; a++)
                fprintf(out, " %s%s", *a, a[1] ? "," : "");
            break;
        case CONFIG_HOSTPORT:
            fprintf(out, "host:port or off");
            break;
        }
        fprintf(out, "; %s; env %s\n#%s =%s%s\n",
                key->reloadable ? "reloadable" : "restart to change", env, dot + 1,
                key->def[0] ? " " : "", key->def);
    }
    fprintf(out, "\n[kafka]\n"
                 "# Any librdkafka property, passed through unchanged (like kcat -X); env\n"
                 "# VIGIL_KAFKA_<PROPERTY> with dots as underscores. Restart to change.\n"
                 "#bootstrap.servers = 127.0.0.1:9092\n"
                 "#security.protocol = plaintext\n");
}
