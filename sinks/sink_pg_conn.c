/* PostgreSQL sink, the connection: sink_pg_new/free/ping/reconnect, and the helpers every other
 * file of the sink uses to report errors and check results (declared in sink_pg_internal.h).
 * Connects with libpq's blocking API; the connection keywords below decide how soon a vanished
 * server is noticed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "sink_pg_internal.h"

/* ---- errors ---------------------------------------------------------------------------------- */

/* libpq messages end with a newline and some span lines ("...\n\tThis probably means...");
 * log lines must not. Copies msg into out (outlen bytes) as one line. */
const char *sink_pg_trim(const char *msg, char *out, size_t outlen)
{
    size_t n = 0;

    if (!msg)
        msg = "";
    while (*msg != '\0' && n + 1 < outlen) {
        if (*msg == '\n' || *msg == '\r') {
            while (*msg == '\n' || *msg == '\r' || *msg == '\t' || *msg == ' ')
                msg++;
            if (*msg != '\0')
                out[n++] = ' ';
            continue;
        }
        out[n++] = *msg++;
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    if (n == 0)
        snprintf(out, outlen, "(no message)");
    return out;
}

/* The error of a failed result, or of the connection when there is no result. */
const char *sink_pg_result_error(PGconn *conn, const PGresult *res, char *out, size_t outlen)
{
    const char *msg = res ? PQresultErrorMessage(res) : NULL;

    if (!msg || msg[0] == '\0')
        msg = PQerrorMessage(conn);
    return sink_pg_trim(msg, out, outlen);
}

/* Whether a failed result is the server refusing the data itself, which no retry can fix:
 * class 22 (data exception: encoding, range, format), 23502 (NOT NULL) and 23514 (CHECK).
 * A unique violation (23505) is not among them: on these tables it means two writers raced,
 * which the offset condition should have prevented, and retrying shows which one won. */
int sink_pg_sqlstate_is_data(const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (!state)
        return 0;
    return strncmp(state, "22", 2) == 0 || strcmp(state, "23502") == 0 ||
           strcmp(state, "23514") == 0;
}

/* ---- small query helpers --------------------------------------------------------------------- */

/* Runs a parameterless statement (or several, separated by ';') and expects `want`.
 * `what` says what the statement is for, for the error message. */
int sink_pg_exec(PGconn *conn, const char *sql, ExecStatusType want, const char *what, char *err,
                 size_t errlen)
{
    char msg[512];
    PGresult *res = PQexec(conn, sql);

    if (!res || PQresultStatus(res) != want) {
        errbuf_printf(err, errlen, "PostgreSQL: %s failed: %s", what,
                      sink_pg_result_error(conn, res, msg, sizeof msg));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Commits the open transaction. A COMMIT of a transaction that failed earlier answers
 * "ROLLBACK" with a success status, so the command tag is checked too. */
int sink_pg_commit(PGconn *conn, const char *what, char *err, size_t errlen)
{
    char msg[512];
    PGresult *res = PQexec(conn, "COMMIT");

    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK ||
        strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        errbuf_printf(err, errlen, "PostgreSQL: COMMIT of %s failed: %s", what,
                      sink_pg_result_error(conn, res, msg, sizeof msg));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Ends whatever transaction is open, best effort: used on error paths where the first error is
 * the one worth reporting. A lost connection has already ended the transaction server-side. */
void sink_pg_rollback(PGconn *conn)
{
    PGresult *res;

    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) == PQTRANS_IDLE)
        return;
    res = PQexec(conn, "ROLLBACK");
    PQclear(res);
}

int sink_pg_check_conn(sink_pg_t *pg, const char *what, char *err, size_t errlen)
{
    char msg[512];

    if (PQstatus(pg->conn) == CONNECTION_OK)
        return 0;
    errbuf_printf(err, errlen,
                  "PostgreSQL: cannot %s: connection to database \"%s\" is broken (%s); "
                  "call sink_pg_reconnect and retry",
                  what, PQdb(pg->conn) ? PQdb(pg->conn) : "?",
                  sink_pg_trim(PQerrorMessage(pg->conn), msg, sizeof msg));
    return -1;
}

/* ---- connection ------------------------------------------------------------------------------ */

/* Opens a connection. Returns NULL and fills err on failure. */
static PGconn *sink_pg_connect(const char *conninfo, char *err, size_t errlen)
{
    /* Keywords are applied in order, later ones winning, and the conninfo (expanded from
     * "dbname") overrides what comes before it: fallback_application_name only applies when the
     * conninfo sets no application_name; the timeouts and keepalives are defaults so that a
     * server that vanishes without closing the connection (network cut, host down) is noticed
     * in about a minute instead of hanging a write for the kernel's two hours; client_encoding
     * comes last because Avro strings are UTF-8 whatever the server or environment would pick. */
    const char *const keys[] = {"fallback_application_name",
                                "connect_timeout",
                                "keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "dbname",
                                "client_encoding",
                                NULL};
    const char *const vals[] = {"vigild", "10",    "1",      "30",   "10",
                                "3",      "60000", conninfo, "UTF8", NULL};
    char msg[512];
    PGconn *conn = PQconnectdbParams(keys, vals, 1);

    if (!conn) {
        errbuf_printf(err, errlen, "PostgreSQL: cannot connect: out of memory in libpq");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: cannot connect to database \"%s\" on \"%s\": %s; check the "
                      "conninfo (postgres.conninfo) and that the server is up",
                      PQdb(conn) ? PQdb(conn) : "?", PQhost(conn) ? PQhost(conn) : "?",
                      sink_pg_trim(PQerrorMessage(conn), msg, sizeof msg));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

sink_pg_t *sink_pg_new(const char *conninfo, char *err, size_t errlen)
{
    sink_pg_t *pg = calloc(1, sizeof *pg);

    if (!pg) {
        errbuf_printf(err, errlen, "PostgreSQL sink: out of memory allocating the sink");
        goto err;
    }
    pg->conninfo = strdup(conninfo ? conninfo : "");
    if (!pg->conninfo) {
        errbuf_printf(err, errlen, "PostgreSQL sink: out of memory copying the conninfo");
        goto err;
    }
    pg->conn = sink_pg_connect(pg->conninfo, err, errlen);
    if (!pg->conn)
        goto err;
    return pg;

err:
    sink_pg_free(pg);
    return NULL;
}

void sink_pg_free(sink_pg_t *pg)
{
    if (!pg)
        return;
    if (pg->conn)
        PQfinish(pg->conn);
    free(pg->conninfo);
    free(pg->buf.data);
    free(pg);
}

int sink_pg_ping(sink_pg_t *pg, char *err, size_t errlen)
{
    if (sink_pg_check_conn(pg, "ping", err, errlen) != 0)
        return SINK_PG_ERR;
    if (sink_pg_exec(pg->conn, "SELECT 1", PGRES_TUPLES_OK, "ping (SELECT 1)", err, errlen) != 0)
        return SINK_PG_ERR;
    return SINK_PG_OK;
}

int sink_pg_reconnect(sink_pg_t *pg, char *err, size_t errlen)
{
    PGconn *fresh;

    /* A connection left inside a transaction is as unusable as a broken one. */
    if (PQstatus(pg->conn) == CONNECTION_OK && PQtransactionStatus(pg->conn) == PQTRANS_IDLE)
        return SINK_PG_OK;
    fresh = sink_pg_connect(pg->conninfo, err, errlen);
    if (!fresh)
        return SINK_PG_ERR; /* keep the broken one: the next call reports it and retries */
    PQfinish(pg->conn);
    pg->conn = fresh;
    return SINK_PG_OK;
}
