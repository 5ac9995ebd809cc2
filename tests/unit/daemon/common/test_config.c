/* Tests daemon/common/config.c: defaults, the file < environment < flags precedence, every error
 * class with its origin (file:line, variable, flag), the [kafka] pass-through, SIGHUP diffs, and
 * that the printed sample file loads back to the defaults. Config files are written to a temp dir.
 */
#include "config.h"
#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/vigil-test-config-XXXXXX";
static char paths[64][256];
static int n_paths;

/* Writes text to a new file in tmpdir and returns its path (valid until main ends). */
static const char *write_conf(const char *text)
{
    char *path;
    FILE *f;

    if (n_paths >= (int)(sizeof(paths) / sizeof(paths[0]))) {
        fprintf(stderr, "test_config: raise the size of paths[]\n");
        abort();
    }
    path = paths[n_paths];
    snprintf(path, sizeof(paths[0]), "%s/test%d.conf", tmpdir, n_paths);
    n_paths++;
    f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        CHECK(fputs(text, f) >= 0);
        CHECK(fclose(f) == 0);
    }
    return path;
}

/* Loads and expects an error; returns the message (static buffer). */
static const char *load_err(const char *path, char *const *envp, const char *const *flags,
                            size_t n_flags)
{
    static char err[1024];
    daemon_config_t cfg;

    err[0] = '\0';
    CHECK(daemon_config_load(&cfg, path, envp, flags, n_flags, err, sizeof(err)) == -1);
    /* The config is left freed (zeroed), so freeing it again is harmless. */
    CHECK(cfg.ingest_topic == NULL && cfg.kafka == NULL && cfg.config_path == NULL);
    daemon_config_free(&cfg);
    return err;
}

static void expect_file_err(const char *text, const char *expected_after_path)
{
    const char *path = write_conf(text);
    char expected[1024];

    snprintf(expected, sizeof(expected), "%s:%s", path, expected_after_path);
    CHECK_STR(load_err(path, NULL, NULL, 0), expected);
}

static void test_defaults(void)
{
    daemon_config_t cfg;
    char err[512] = "";
    char host[256];
    char expected_id[300];

    CHECK(daemon_config_load(&cfg, NULL, NULL, NULL, 0, err, sizeof(err)) == 0);
    CHECK_STR(err, "");
    CHECK(cfg.config_path == NULL);
    CHECK_STR(cfg.ingest_topic, "behavior-events");
    CHECK_STR(cfg.ingest_news_topic, "news-articles");
    CHECK_STR(cfg.ingest_fraud_labels_topic, "fraud-labels");
    CHECK_STR(cfg.ingest_news_labels_topic, "news-labels");
    CHECK_STR(cfg.ingest_format, "confluent");
    CHECK_STR(cfg.ingest_schema_dir, VIGIL_DEFAULT_SCHEMA_DIR);
    CHECK_STR(cfg.ingest_reader_schema, VIGIL_DEFAULT_SCHEMA_DIR "/BehaviorEvent.avsc");
    CHECK(cfg.ingest_batch_max == 20000);
    CHECK(cfg.ingest_batch_max_delay_ms == 200);
    CHECK(cfg.ingest_batch_linger_ms == 0);
    CHECK(cfg.ingest_batches_in_flight == 2);
    CHECK(cfg.ingest_events_writers == 2);
    CHECK_STR(cfg.postgres_conninfo, "dbname=vigil");
    CHECK(cfg.postgres_retry_max_ms == 5000);
    CHECK_STR(cfg.http_listen, "127.0.0.1:9187");
    CHECK(cfg.daemon_shutdown_timeout_ms == 30000);
    CHECK(cfg.daemon_status_interval_ms == 10000);
    CHECK(gethostname(host, sizeof(host)) == 0);
    snprintf(expected_id, sizeof(expected_id), "%s:%ld", host, (long)getpid());
    CHECK_STR(cfg.daemon_instance_id, expected_id);
    CHECK_STR(cfg.log_level, "info");
    CHECK(cfg.embedded_kafka_brokers == 3);
    CHECK(cfg.embedded_kafka_partitions == 8);
    CHECK(cfg.n_kafka == 0);
    CHECK(daemon_config_kafka_get(&cfg, "bootstrap.servers") == NULL);
    daemon_config_free(&cfg);
    CHECK(cfg.ingest_topic == NULL);
}

static void test_file(void)
{
    const char *path =
        write_conf("# vigild test config\n"
                   "; another comment style\n"
                   "\n"
                   "[ingest]\n"
                   "topic = clicks   \n"
                   "batch_max=100\n"
                   "batch_max = 250\n" /* duplicates: the last one wins */
                   "  format =   plain\n"
                   "[ postgres ]\n"
                   "conninfo = \"host=/run/postgresql dbname=vigil # not a comment\"\n"
                   "[http]\n"
                   "listen = off\n"
                   "[daemon]\n"
                   "instance_id = node-a\n"
                   "[log]\n"
                   "level = debug\r\n");
    daemon_config_t cfg;
    char err[512] = "";

    CHECK(daemon_config_load(&cfg, path, NULL, NULL, 0, err, sizeof(err)) == 0);
    CHECK_STR(err, "");
    CHECK_STR(cfg.config_path, path);
    CHECK_STR(cfg.ingest_topic, "clicks");
    CHECK(cfg.ingest_batch_max == 250);
    CHECK_STR(cfg.ingest_format, "plain");
    CHECK_STR(cfg.postgres_conninfo, "host=/run/postgresql dbname=vigil # not a comment");
    CHECK_STR(cfg.http_listen, "off");
    CHECK_STR(cfg.daemon_instance_id, "node-a");
    CHECK_STR(cfg.log_level, "debug");
    /* Keys the file does not name keep their defaults. */
    CHECK(cfg.ingest_batch_max_delay_ms == 200);
    CHECK(cfg.postgres_retry_max_ms == 5000);
    daemon_config_free(&cfg);
}

static void test_precedence(void)
{
    const char *path = write_conf("[ingest]\n"
                                  "batch_max = 100\n"
                                  "batch_max_delay_ms = 50\n"
                                  "topic = from-file\n"
                                  "[log]\n"
                                  "level = warn\n");
    char *envp[] = {"PATH=/usr/bin",
                    "VIGIL_CONFIG=/somewhere/else.conf", /* the caller's business, ignored */
                    "VIGIL_INGEST_BATCH_MAX=200",
                    "VIGIL_LOG_LEVEL=error",
                    "VIGIL_INGEST_SCHEMA_DIR=/opt/schemas",
                    "VIGIL_HTTP_LISTEN=[::1]:0",
                    NULL};
    const char *flags[] = {"ingest.batch_max=300", "http.listen=0.0.0.0:9999"};
    daemon_config_t cfg;
    char err[512] = "";

    /* Environment over file. */
    CHECK(daemon_config_load(&cfg, path, envp, NULL, 0, err, sizeof(err)) == 0);
    CHECK_STR(err, "");
    CHECK(cfg.ingest_batch_max == 200);
    CHECK(cfg.ingest_batch_max_delay_ms == 50);
    CHECK_STR(cfg.ingest_topic, "from-file");
    CHECK_STR(cfg.log_level, "error");
    CHECK_STR(cfg.http_listen, "[::1]:0");
    CHECK_STR(cfg.ingest_schema_dir, "/opt/schemas");
    /* The reader schema default follows a schema_dir set by any layer. */
    CHECK_STR(cfg.ingest_reader_schema, "/opt/schemas/BehaviorEvent.avsc");
    daemon_config_free(&cfg);

    /* Flags over environment. */
    CHECK(daemon_config_load(&cfg, path, envp, flags, 2, err, sizeof(err)) == 0);
    CHECK_STR(err, "");
    CHECK(cfg.ingest_batch_max == 300);
    CHECK_STR(cfg.http_listen, "0.0.0.0:9999");
    CHECK_STR(cfg.log_level, "error");
    daemon_config_free(&cfg);

    /* An explicit reader schema is kept as given. */
    const char *flags2[] = {"ingest.reader_schema=/x/Reader.avsc", "ingest.schema_dir=/y/"};
    CHECK(daemon_config_load(&cfg, NULL, NULL, flags2, 2, err, sizeof(err)) == 0);
    CHECK_STR(cfg.ingest_reader_schema, "/x/Reader.avsc");
    daemon_config_free(&cfg);
    const char *flags3[] = {"ingest.schema_dir=/y/"};
    CHECK(daemon_config_load(&cfg, NULL, NULL, flags3, 1, err, sizeof(err)) == 0);
    CHECK_STR(cfg.ingest_reader_schema, "/y/BehaviorEvent.avsc");
    daemon_config_free(&cfg);
}

static void test_file_errors(void)
{
    char expected[512];

    snprintf(expected, sizeof(expected),
             "cannot read config file %s/missing.conf: No such file or directory", tmpdir);
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/missing.conf", tmpdir);
    CHECK_STR(load_err(missing, NULL, NULL, 0), expected);

    expect_file_err("[ingest]\n# fine\njust some words\n",
                    "3: expected 'key = value' or '[section]'");
    expect_file_err("[ingest\n", "1: expected 'key = value' or '[section]'");
    expect_file_err("[ingest]\n = 5\n", "2: expected 'key = value' or '[section]'");
    expect_file_err("\ntopic = x\n[ingest]\n",
                    "2: key 'topic' is outside a section; put it under a [section] header");
    expect_file_err("[ingest]\ntopic = a\n\nbatchmax = 5\n",
                    "4: unknown key 'ingest.batchmax' (did you mean 'ingest.batch_max'?)");
    expect_file_err("[ingest]\ncompletely_unrelated = 5\n",
                    "2: unknown key 'ingest.completely_unrelated'");
    expect_file_err("[ingest]\nbatch_max = abc\n", "2: ingest.batch_max: 'abc' is not an integer");
    expect_file_err("[ingest]\nbatch_max = 12x\n", "2: ingest.batch_max: '12x' is not an integer");
    expect_file_err("[ingest]\nbatch_max =\n", "2: ingest.batch_max: '' is not an integer");
    expect_file_err("[ingest]\n\nbatch_max = 0\n", "3: ingest.batch_max: 0 is below the minimum 1");
    expect_file_err("[ingest]\nbatch_max = 100001\n",
                    "2: ingest.batch_max: 100001 is above the maximum 100000");
    expect_file_err("[ingest]\nbatch_max = 99999999999999999999999\n",
                    "2: ingest.batch_max: 99999999999999999999999 is above the maximum 100000");
    expect_file_err("[log]\nlevel = loud\n",
                    "2: log.level: 'loud' is not one of debug, info, warn, error");
    expect_file_err("[ingest]\nformat = json\n",
                    "2: ingest.format: 'json' is not one of confluent, plain");
    /* An input may be switched off, but not all four; no topic may serve two inputs. */
    CHECK(strstr(load_err(write_conf("[ingest]\ntopic =\nnews_topic =\nfraud_labels_topic =\n"
                                     "news_labels_topic =\n"),
                          NULL, NULL, 0),
                 "no input topic") != NULL);
    CHECK(strstr(load_err(write_conf("[ingest]\nnews_topic = behavior-events\n"), NULL, NULL, 0),
                 "ingest.topic and ingest.news_topic both name topic \"behavior-events\"") != NULL);
    CHECK(strstr(load_err(write_conf("[ingest]\ndlq_topic = fraud-labels\n"), NULL, NULL, 0),
                 "ingest.fraud_labels_topic and ingest.dlq_topic") != NULL);
    expect_file_err("[http]\nlisten = localhost\n",
                    "2: http.listen: 'localhost' is not host:port (e.g. 127.0.0.1:9187) or off");
    expect_file_err(
        "[http]\nlisten = 127.0.0.1:65536\n",
        "2: http.listen: '127.0.0.1:65536' is not host:port (e.g. 127.0.0.1:9187) or off");
    expect_file_err("[http]\nlisten = ::1:80\n",
                    "2: http.listen: '::1:80': write an IPv6 address in brackets, e.g. [::1]:9187");
    expect_file_err("[daemon]\nstatus_interval_ms = 99\n",
                    "2: daemon.status_interval_ms: 99 is below the minimum 100");
    expect_file_err("[postgres]\nconninfo = \"dbname=vigil\n",
                    "2: value of 'conninfo' opens a quote it does not close");
    expect_file_err("[ingest]\n[nope]\n", "2: unknown section '[nope]'; sections are ingest, "
                                          "features, alerts, model, postgres, http, daemon, "
                                          "log, embedded_kafka, kafka");
    expect_file_err("[kafka]\n= x\n", "2: expected 'key = value' or '[section]'");
}

static void test_kafka_passthrough(void)
{
    const char *path = write_conf("[kafka]\n"
                                  "bootstrap.servers = a:9092\n"
                                  "security.protocol = SASL_SSL\n"
                                  "[ingest]\n"
                                  "topic = t\n");
    char *envp[] = {"VIGIL_KAFKA_BOOTSTRAP_SERVERS=b:9092", NULL};
    const char *flags[] = {"kafka.client.id=vigil-1"};
    daemon_config_t cfg;
    char err[512] = "";
    char origin[300];

    CHECK(daemon_config_load(&cfg, path, envp, flags, 1, err, sizeof(err)) == 0);
    CHECK_STR(err, "");
    CHECK(cfg.n_kafka == 4);
    if (cfg.n_kafka == 4) {
        snprintf(origin, sizeof(origin), "%s:2", path);
        CHECK_STR(cfg.kafka[0].key, "bootstrap.servers");
        CHECK_STR(cfg.kafka[0].value, "a:9092");
        CHECK_STR(cfg.kafka[0].origin, origin);
        snprintf(origin, sizeof(origin), "%s:3", path);
        CHECK_STR(cfg.kafka[1].key, "security.protocol");
        CHECK_STR(cfg.kafka[1].value, "SASL_SSL");
        CHECK_STR(cfg.kafka[1].origin, origin);
        CHECK_STR(cfg.kafka[2].key, "bootstrap.servers");
        CHECK_STR(cfg.kafka[2].value, "b:9092");
        CHECK_STR(cfg.kafka[2].origin, "environment VIGIL_KAFKA_BOOTSTRAP_SERVERS");
        CHECK_STR(cfg.kafka[3].key, "client.id");
        CHECK_STR(cfg.kafka[3].value, "vigil-1");
        CHECK_STR(cfg.kafka[3].origin, "flag --set kafka.client.id");
    }
    /* The later setting wins. */
    CHECK_STR(daemon_config_kafka_get(&cfg, "bootstrap.servers"), "b:9092");
    CHECK_STR(daemon_config_kafka_get(&cfg, "security.protocol"), "SASL_SSL");
    CHECK(daemon_config_kafka_get(&cfg, "sasl.username") == NULL);
    CHECK_STR(cfg.ingest_topic, "t");
    daemon_config_free(&cfg);
}

static void test_env_and_flag_errors(void)
{
    char *unknown[] = {"VIGIL_FOO=1", NULL};
    char *typo[] = {"VIGIL_INGEST_BATCH_MAXX=1", NULL};
    char *bad_int[] = {"VIGIL_INGEST_BATCH_MAX=abc", NULL};
    char *padded[] = {"VIGIL_INGEST_BATCH_MAX= 5", NULL};
    char *empty_kafka[] = {"VIGIL_KAFKA_=x", NULL};
    const char *loud[] = {"log.level=loud"};
    const char *nodot[] = {"loglevel"};
    const char *noeq[] = {"log.level"};
    const char *unknown_flag[] = {"ingest.batchmax=5"};
    const char *low[] = {"embedded_kafka.brokers=0"};

    CHECK_STR(load_err(NULL, unknown, NULL, 0),
              "environment VIGIL_FOO: no such setting; VIGIL_* variables must name a config key "
              "(e.g. VIGIL_INGEST_BATCH_MAX) or a kafka property (VIGIL_KAFKA_<NAME>); unset it");
    CHECK(strstr(load_err(NULL, typo, NULL, 0),
                 "environment VIGIL_INGEST_BATCH_MAXX: no such setting (did you mean "
                 "'VIGIL_INGEST_BATCH_MAX'?)") != NULL);
    CHECK_STR(load_err(NULL, bad_int, NULL, 0),
              "environment VIGIL_INGEST_BATCH_MAX: 'abc' is not an integer");
    CHECK_STR(load_err(NULL, padded, NULL, 0),
              "environment VIGIL_INGEST_BATCH_MAX: ' 5' is not an integer");
    CHECK_STR(load_err(NULL, empty_kafka, NULL, 0),
              "environment VIGIL_KAFKA_: no such setting; VIGIL_* variables must name a config key "
              "(e.g. VIGIL_INGEST_BATCH_MAX) or a kafka property (VIGIL_KAFKA_<NAME>); unset it");
    CHECK_STR(load_err(NULL, NULL, loud, 1),
              "flag --set log.level=loud: 'loud' is not one of debug, info, warn, error");
    CHECK_STR(load_err(NULL, NULL, nodot, 1), "flag --set loglevel: expected section.key=value");
    CHECK_STR(load_err(NULL, NULL, noeq, 1), "flag --set log.level: expected section.key=value");
    CHECK_STR(load_err(NULL, NULL, unknown_flag, 1),
              "flag --set ingest.batchmax=5: unknown key 'ingest.batchmax' (did you mean "
              "'ingest.batch_max'?)");
    CHECK_STR(load_err(NULL, NULL, low, 1),
              "flag --set embedded_kafka.brokers=0: 0 is below the minimum 1");
}

#define MAX_CHANGES 16

typedef struct change {
    char name[64];
    char old_value[128];
    char new_value[128];
    int reloadable;
} change_t;

typedef struct changes {
    change_t c[MAX_CHANGES];
    int n;
} changes_t;

static void record_change(const char *name, const char *old_value, const char *new_value,
                          int reloadable, void *ctx)
{
    changes_t *ch = ctx;

    CHECK(ch->n < MAX_CHANGES);
    if (ch->n >= MAX_CHANGES)
        return;
    snprintf(ch->c[ch->n].name, sizeof(ch->c[0].name), "%s", name);
    snprintf(ch->c[ch->n].old_value, sizeof(ch->c[0].old_value), "%s", old_value);
    snprintf(ch->c[ch->n].new_value, sizeof(ch->c[0].new_value), "%s", new_value);
    ch->c[ch->n].reloadable = reloadable;
    ch->n++;
}

static const change_t *find_change(const changes_t *ch, const char *name)
{
    for (int i = 0; i < ch->n; i++) {
        if (strcmp(ch->c[i].name, name) == 0)
            return &ch->c[i];
    }
    return NULL;
}

static void test_diff(void)
{
    const char *old_path = write_conf("[ingest]\nbatch_max = 100\ntopic = a\n"
                                      "[kafka]\nbootstrap.servers = k1:9092\n"
                                      "client.id = x\nclient.id = y\n"
                                      "socket.timeout.ms = 1000\n");
    const char *new_path = write_conf("[ingest]\nbatch_max = 200\ntopic = b\n"
                                      "[log]\nlevel = debug\n"
                                      "[kafka]\nbootstrap.servers = k2:9092\n"
                                      "client.id = y\n"
                                      "security.protocol = ssl\n");
    daemon_config_t a, b;
    char err[512] = "";
    changes_t ch = {0};
    const change_t *c;

    CHECK(daemon_config_load(&a, old_path, NULL, NULL, 0, err, sizeof(err)) == 0);
    CHECK(daemon_config_load(&b, new_path, NULL, NULL, 0, err, sizeof(err)) == 0);
    CHECK_STR(err, "");

    CHECK(daemon_config_diff(&a, &a, record_change, &ch) == 0);
    CHECK(ch.n == 0);

    CHECK(daemon_config_diff(&a, &b, record_change, &ch) == 6);
    CHECK(ch.n == 6);
    c = find_change(&ch, "ingest.batch_max");
    CHECK(c && strcmp(c->old_value, "100") == 0 && strcmp(c->new_value, "200") == 0 &&
          c->reloadable == 1);
    c = find_change(&ch, "ingest.topic");
    CHECK(c && strcmp(c->old_value, "a") == 0 && strcmp(c->new_value, "b") == 0 &&
          c->reloadable == 0);
    c = find_change(&ch, "log.level");
    CHECK(c && strcmp(c->old_value, "info") == 0 && strcmp(c->new_value, "debug") == 0 &&
          c->reloadable == 1);
    c = find_change(&ch, "kafka.bootstrap.servers");
    CHECK(c && strcmp(c->old_value, "k1:9092") == 0 && strcmp(c->new_value, "k2:9092") == 0 &&
          c->reloadable == 0);
    c = find_change(&ch, "kafka.socket.timeout.ms");
    CHECK(c && strcmp(c->old_value, "1000") == 0 && strcmp(c->new_value, "(unset)") == 0 &&
          c->reloadable == 0);
    c = find_change(&ch, "kafka.security.protocol");
    CHECK(c && strcmp(c->old_value, "(unset)") == 0 && strcmp(c->new_value, "ssl") == 0 &&
          c->reloadable == 0);
    /* client.id ended at "y" in both, however it got there. */
    CHECK(find_change(&ch, "kafka.client.id") == NULL);
    /* Without a callback it still counts. */
    CHECK(daemon_config_diff(&b, &a, NULL, NULL) == 6);

    daemon_config_free(&a);
    daemon_config_free(&b);
}

/* The printed sample, with every "#key = value" line of a table section uncommented, must load
 * and equal the defaults: the documentation cannot drift from the table. */
static void test_print_defaults(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    char uncommented[16384];
    size_t o = 0;
    int in_kafka = 0;
    int keys = 0;
    daemon_config_t defaults, loaded;
    char err[512] = "";
    char *save = NULL;

    CHECK(mem != NULL);
    if (!mem)
        return;
    daemon_config_print_defaults(mem);
    CHECK(fclose(mem) == 0);
    CHECK(strstr(text, "[ingest]\n") != NULL);
    CHECK(strstr(text, "#batch_max = 20000\n") != NULL);
    CHECK(strstr(text, "integer 1..100000; reloadable; env VIGIL_INGEST_BATCH_MAX") != NULL);
    CHECK(strstr(text, "one of debug, info, warn, error; reloadable; env VIGIL_LOG_LEVEL") != NULL);
    CHECK(strstr(text, "#schema_dir = " VIGIL_DEFAULT_SCHEMA_DIR "\n") != NULL);
    CHECK(strstr(text, "[kafka]\n") != NULL);

    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        const char *out = line;
        if (line[0] == '[')
            in_kafka = strcmp(line, "[kafka]") == 0;
        if (line[0] == '#' && line[1] >= 'a' && line[1] <= 'z' && strstr(line, " =") && !in_kafka) {
            out = line + 1;
            keys++;
        }
        o += (size_t)snprintf(uncommented + o, sizeof(uncommented) - o, "%s\n", out);
    }
    CHECK(o < sizeof(uncommented));
    CHECK(keys == 47); /* every key of the table, each printed once */
    free(text);

    const char *path = write_conf(uncommented);
    CHECK(daemon_config_load(&defaults, NULL, NULL, NULL, 0, err, sizeof(err)) == 0);
    CHECK(daemon_config_load(&loaded, path, NULL, NULL, 0, err, sizeof(err)) == 0);
    CHECK_STR(err, "");
    CHECK(daemon_config_diff(&defaults, &loaded, NULL, NULL) == 0);
    daemon_config_free(&defaults);
    daemon_config_free(&loaded);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_file();
    test_precedence();
    test_file_errors();
    test_kafka_passthrough();
    test_env_and_flag_errors();
    test_diff();
    test_print_defaults();

    for (int i = 0; i < n_paths; i++)
        unlink(paths[i]);
    rmdir(tmpdir);
    return TEST_DONE();
}
