/* pg_listen: a LISTEN client for tests and benchmarks. Connects with CONNINFO, listens on
 * CHANNEL, prints "listening" once the LISTEN is in place, then every notification's payload as
 * one line on stdout (flushed), until it receives SIGTERM or the connection breaks (exit 1 then).
 * With --stamp, each payload line starts with the wall-clock time it was read, in epoch
 * milliseconds, and a tab (for latency figures).
 *
 *   pg_listen [--stamp] CONNINFO CHANNEL */
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    int stamp = argc > 1 && strcmp(argv[1], "--stamp") == 0;
    argv += stamp;
    argc -= stamp;
    if (argc != 3) {
        fprintf(stderr, "usage: pg_listen [--stamp] CONNINFO CHANNEL\n");
        return 2;
    }
    signal(SIGTERM, on_term);
    PGconn *conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "pg_listen: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return 1;
    }
    char *chan = PQescapeIdentifier(conn, argv[2], strlen(argv[2]));
    char sql[300];
    snprintf(sql, sizeof sql, "LISTEN %s", chan ? chan : "\"\"");
    PQfreemem(chan);
    PGresult *res = PQexec(conn, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "pg_listen: LISTEN failed: %s", PQerrorMessage(conn));
        PQclear(res);
        PQfinish(conn);
        return 1;
    }
    PQclear(res);
    printf("listening\n");
    fflush(stdout);
    while (!stop) {
        struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
        if (poll(&p, 1, 200) < 0 && errno != EINTR)
            break;
        if (!PQconsumeInput(conn)) {
            fprintf(stderr, "pg_listen: %s", PQerrorMessage(conn));
            PQfinish(conn);
            return 1;
        }
        PGnotify *n;
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        while ((n = PQnotifies(conn)) != NULL) {
            if (stamp)
                printf("%lld\t", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
            printf("%s\n", n->extra);
            PQfreemem(n);
        }
        fflush(stdout);
    }
    PQfinish(conn);
    return 0;
}
