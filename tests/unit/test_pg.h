/* Reading PostgreSQL back in the unit tests that run against a throwaway server (the *_pg tests,
 * through tests/lib/with_pg.sh). Header-only, like test.h: each test is one program. */
#ifndef VIGIL_TEST_PG_H
#define VIGIL_TEST_PG_H

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs sql on conn and returns the single value as text: "(null)" for SQL NULL, "(error)" on
 * failure (the server's message goes to stderr). The result lives in a static buffer, so use one
 * per CHECK. */
static inline const char *test_pg_value(PGconn *conn, const char *sql)
{
    static char out[4096];
    PGresult *res = PQexec(conn, sql);

    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fprintf(stderr, "query failed: %s: %s", sql, conn ? PQerrorMessage(conn) : "no connection");
        snprintf(out, sizeof out, "(error)");
    } else if (PQgetisnull(res, 0, 0)) {
        snprintf(out, sizeof out, "(null)");
    } else {
        snprintf(out, sizeof out, "%s", PQgetvalue(res, 0, 0));
    }
    PQclear(res);
    return out;
}

/* Runs a statement that returns no rows: 0, or -1 with the server's message on stderr. */
static inline int test_pg_exec(PGconn *conn, const char *sql)
{
    PGresult *res = PQexec(conn, sql);
    int ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;

    if (!ok)
        fprintf(stderr, "statement failed: %s: %s", sql,
                conn ? PQerrorMessage(conn) : "no connection");
    PQclear(res);
    return ok ? 0 : -1;
}

/* test_pg_value as a number (0 for "(null)" and "(error)"). */
static inline long test_pg_long(PGconn *conn, const char *sql)
{
    return strtol(test_pg_value(conn, sql), NULL, 10);
}

#endif
