/* vigil: the command-line tool beside the daemon.
 *
 *   vigil produce ...        synthetic BehaviorEvents into any Kafka (see produce_cmd.c)
 *   vigil migrate            apply the PostgreSQL migrations and exit
 *   vigil check-config       validate a vigild configuration (exit 0 ok, 2 bad)
 *   vigil alerts ...         list, show, acknowledge, resolve alerts (see alerts_cmd.c)
 *   vigil kafka-mock ...     run the embedded Kafka (librdkafka's mock cluster) on its own, until
 *                            SIGTERM/SIGINT: for tests and demos that restart vigild under it */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alerts_cmd.h"
#include "config.h"
#include "dlq.h"
#include "errbuf.h"
#include "ingest_mock.h"
#include "produce_cmd.h"
#include "sink_pg.h"
#include "train_news.h"
#include "train_risk.h"

extern char **environ;

static void vigil_usage(FILE *out)
{
    fprintf(out,
            "usage: vigil COMMAND [options]\n"
            "  produce       write synthetic BehaviorEvents to Kafka (vigil produce --help)\n"
            "  migrate       apply PostgreSQL migrations [--config FILE] [--set K=V ...]\n"
            "  check-config  validate a configuration [--config FILE] [--set K=V ...]\n"
            "  dlq           list or replay dead letters (vigil dlq --help)\n"
            "  alerts        list, show, acknowledge or resolve alerts (vigil alerts --help)\n"
            "  train         train a model from files: train risk --data FILE ..., train news\n"
            "                --data DIR (--help for each)\n"
            "  kafka-mock    run the embedded Kafka: --brokers N --partitions N --topic T ...\n"
            "                [--bootstrap-file FILE] [--control FIFO: fault injection]\n");
}

/* Shared by migrate and check-config: the same file/env/flag layering as vigild. */
static int vigil_load_config(int argc, char **argv, daemon_config_t *cfg)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 's'},
        {NULL, 0, NULL, 0},
    };
    const char *path = getenv("VIGIL_CONFIG");
    const char **flags = calloc((size_t)argc + 1, sizeof(char *));
    size_t n_flags = 0;
    char err[1024];
    int opt, rc;

    if (!flags) {
        fprintf(stderr, "vigil: out of memory\n");
        return 1;
    }
    while ((opt = getopt_long(argc, argv, "c:s:", options, NULL)) != -1) {
        if (opt == 'c')
            path = optarg;
        else if (opt == 's')
            flags[n_flags++] = optarg;
        else {
            free(flags);
            return 2;
        }
    }
    rc = daemon_config_load(cfg, path, environ, flags, n_flags, err, sizeof(err));
    free(flags);
    if (rc != 0) {
        fprintf(stderr, "vigil: configuration error: %s\n", err);
        return 2;
    }
    return 0;
}

static int vigil_check_config(int argc, char **argv)
{
    daemon_config_t cfg;
    int rc = vigil_load_config(argc, argv, &cfg);
    if (rc != 0)
        return rc;
    printf("configuration ok\n");
    daemon_config_free(&cfg);
    return 0;
}

static int vigil_migrate(int argc, char **argv)
{
    daemon_config_t cfg;
    char err[1024];
    sink_pg_t *pg;
    int rc = vigil_load_config(argc, argv, &cfg);
    if (rc != 0)
        return rc;
    pg = sink_pg_new(cfg.postgres_conninfo, err, sizeof(err));
    if (!pg || sink_pg_migrate(pg, err, sizeof(err)) != SINK_PG_OK) {
        fprintf(stderr, "vigil migrate: %s\n", err);
        sink_pg_free(pg);
        daemon_config_free(&cfg);
        return 1;
    }
    printf("migrations applied\n");
    sink_pg_free(pg);
    daemon_config_free(&cfg);
    return 0;
}

/* Serves fault-injection commands (ingest_mock_command) read line by line from the FIFO at
 * path until SIGTERM/SIGINT (blocked in `set`) arrives. Each command is answered on stdout with
 * "ok: LINE" or "error: WHY", so a test can wait for the answer in the log. */
static int vigil_kafka_mock_control(ingest_mock_t *m, const char *path, const sigset_t *set,
                                    char *err, size_t errlen)
{
    char buf[1024], line_err[512];
    size_t used = 0;
    int fifo = -1, sfd = -1, rc = -1;

    if (mkfifo(path, 0600) != 0 && errno != EEXIST) {
        errbuf_printf(err, errlen, "cannot create the control FIFO %s: %s", path, strerror(errno));
        return -1;
    }
    /* Read-write, so the FIFO never reports end-of-file when a writer closes it. */
    fifo = open(path, O_RDWR | O_CLOEXEC);
    sfd = signalfd(-1, set, SFD_CLOEXEC);
    if (fifo < 0 || sfd < 0) {
        errbuf_printf(err, errlen, "cannot open the control FIFO %s: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        struct pollfd fds[2] = {{fifo, POLLIN, 0}, {sfd, POLLIN, 0}};
        ssize_t n;
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            errbuf_printf(err, errlen, "poll on the control FIFO: %s", strerror(errno));
            goto out;
        }
        if (fds[1].revents) {
            rc = 0; /* a stop signal */
            goto out;
        }
        n = read(fifo, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0) {
            errbuf_printf(err, errlen, "reading the control FIFO: %s",
                          n < 0 ? strerror(errno) : "EOF");
            goto out;
        }
        used += (size_t)n;
        buf[used] = '\0';
        char *start = buf, *nl;
        while ((nl = strchr(start, '\n')) != NULL) {
            *nl = '\0';
            if (*start) {
                if (ingest_mock_command(m, start, line_err, sizeof(line_err)) == 0)
                    printf("ok: %s\n", start);
                else
                    printf("error: %s\n", line_err);
                fflush(stdout);
            }
            start = nl + 1;
        }
        used = strlen(start);
        memmove(buf, start, used);
        if (used == sizeof(buf) - 1)
            used = 0; /* an over-long line: drop it */
    }
out:
    if (fifo >= 0)
        close(fifo);
    if (sfd >= 0)
        close(sfd);
    return rc;
}

static int vigil_kafka_mock(int argc, char **argv)
{
    static const struct option options[] = {
        {"brokers", required_argument, NULL, 'b'}, {"partitions", required_argument, NULL, 'p'},
        {"topic", required_argument, NULL, 't'},   {"bootstrap-file", required_argument, NULL, 'f'},
        {"control", required_argument, NULL, 'c'}, {NULL, 0, NULL, 0},
    };
    int brokers = 3, partitions = 8, opt, sig, rc = 1;
    const char *topics[64], *file = NULL, *control = NULL;
    size_t n_topics = 0;
    char err[512];
    sigset_t set;
    ingest_mock_t *m = NULL;

    while ((opt = getopt_long(argc, argv, "b:p:t:f:c:", options, NULL)) != -1) {
        switch (opt) {
        case 'b':
            brokers = atoi(optarg);
            break;
        case 'p':
            partitions = atoi(optarg);
            break;
        case 't':
            if (n_topics == 64) {
                fprintf(stderr, "vigil kafka-mock: at most 64 topics\n");
                return 2;
            }
            topics[n_topics++] = optarg;
            break;
        case 'f':
            file = optarg;
            break;
        case 'c':
            control = optarg;
            break;
        default:
            vigil_usage(stderr);
            return 2;
        }
    }
    if (brokers < 1 || brokers > 16 || partitions < 1 || partitions > 1024) {
        fprintf(stderr, "vigil kafka-mock: --brokers must be 1..16 and --partitions 1..1024\n");
        return 2;
    }
    if (n_topics == 0)
        topics[n_topics++] = "behavior-events";

    /* Block the stop signals before any thread starts, then wait for one synchronously:
     * no handler needed. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0) {
        fprintf(stderr, "vigil kafka-mock: cannot block signals\n");
        return 1;
    }
    m = ingest_mock_new(brokers, err, sizeof(err));
    if (!m)
        goto err;
    for (size_t i = 0; i < n_topics; i++)
        if (ingest_mock_topic_create(m, topics[i], partitions, err, sizeof(err)) != 0)
            goto err;
    printf("embedded kafka bootstrap=%s brokers=%d partitions=%d\n", ingest_mock_bootstraps(m),
           brokers, partitions);
    fflush(stdout);
    if (file) {
        /* Written whole under a temporary name, then renamed: a reader never sees half of it. */
        char tmp[4096];
        FILE *f;
        snprintf(tmp, sizeof(tmp), "%s.tmp", file);
        f = fopen(tmp, "w");
        if (!f || fprintf(f, "%s\n", ingest_mock_bootstraps(m)) < 0 || fclose(f) != 0 ||
            rename(tmp, file) != 0) {
            snprintf(err, sizeof(err), "cannot write %s", file);
            goto err;
        }
    }
    if (control) {
        if (vigil_kafka_mock_control(m, control, &set, err, sizeof(err)) != 0)
            goto err;
    } else if (sigwait(&set, &sig) != 0) {
        goto err_nomsg;
    }
    rc = 0;
    goto out;
err:
    fprintf(stderr, "vigil kafka-mock: %s\n", err);
err_nomsg:
    rc = 1;
out:
    ingest_mock_free(m);
    return rc;
}

/* `vigil train risk|news ...`: each model kind has its own trainer and options. */
static int vigil_train(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "risk") == 0)
        return train_risk_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "news") == 0)
        return train_news_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: vigil train risk --data FILE ... | vigil train news --data DIR ... "
                    "(--help for each)\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *cmd;
    if (argc < 2) {
        vigil_usage(stderr);
        return 2;
    }
    cmd = argv[1];
    /* Each command parses its own options from argv[1] on, like git's subcommands. */
    if (strcmp(cmd, "produce") == 0)
        return produce_main(argc - 1, argv + 1);
    if (strcmp(cmd, "dlq") == 0)
        return dlq_main(argc - 1, argv + 1);
    if (strcmp(cmd, "alerts") == 0)
        return alerts_main(argc - 1, argv + 1);
    if (strcmp(cmd, "train") == 0)
        return vigil_train(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0)
        return vigil_migrate(argc - 1, argv + 1);
    if (strcmp(cmd, "check-config") == 0)
        return vigil_check_config(argc - 1, argv + 1);
    if (strcmp(cmd, "kafka-mock") == 0)
        return vigil_kafka_mock(argc - 1, argv + 1);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        vigil_usage(stdout);
        return 0;
    }
    fprintf(stderr, "vigil: unknown command '%s'\n", cmd);
    vigil_usage(stderr);
    return 2;
}
