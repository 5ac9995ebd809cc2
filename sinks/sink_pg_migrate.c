/* PostgreSQL sink, the schema: sink_pg_migrate applies the migrations compiled in from
 * sinks/migrations (sink_migrations.h) that vigil.schema_migrations does not list yet, each in its
 * own transaction, under a session advisory lock so that instances starting together apply each
 * exactly once. */
#include <stdio.h>
#include <string.h>

#include "errbuf.h"
#include "sink_migrations.h"
#include "sink_pg_internal.h"

/* Session advisory lock key that serialises migrations across instances: the 64-bit FNV-1a hash
 * of the text "vigil.migrations" (0xde82664531d46613), read as a signed int8. Fixed forever:
 * two versions of vigild must agree on it. */
#define SINK_PG_MIGRATION_LOCK_KEY "-2413254002942384621"

/* Is this migration recorded already? 1 yes, 0 no, -1 error. A version recorded under another
 * name means the binary and the database disagree about history: refuse rather than guess. */
static int sink_pg_migration_applied(PGconn *conn, const sink_migration_t *m, char *err,
                                     size_t errlen)
{
    char version[16], msg[512];
    const char *params[1] = {version};
    PGresult *res;
    int applied = -1;

    snprintf(version, sizeof version, "%d", m->version);
    res = PQexecParams(conn, "SELECT name FROM vigil.schema_migrations WHERE version = $1::int4", 1,
                       NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: cannot read vigil.schema_migrations for migration %s: %s",
                      m->name, sink_pg_result_error(conn, res, msg, sizeof msg));
        goto out;
    }
    if (PQntuples(res) == 0) {
        applied = 0;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 0), m->name) != 0) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: migration version %d is recorded as \"%s\" but this vigild "
                      "embeds \"%s\"; the database was migrated by a different build: fix "
                      "vigil.schema_migrations by hand or use the matching vigild",
                      m->version, PQgetvalue(res, 0, 0), m->name);
        goto out;
    }
    applied = 1;
out:
    PQclear(res);
    return applied;
}

/* Applies one migration in its own transaction and records it. */
static int sink_pg_migration_apply(PGconn *conn, const sink_migration_t *m, char *err,
                                   size_t errlen)
{
    char version[16], msg[512];
    const char *params[2] = {version, m->name};
    PGresult *res = NULL;
    ExecStatusType st;

    snprintf(version, sizeof version, "%d", m->version);
    if (sink_pg_exec(conn, "BEGIN", PGRES_COMMAND_OK, "BEGIN for a migration", err, errlen) != 0)
        goto err;
    /* The file may hold several statements: PQexec runs them all and returns the last result,
     * or the first error. */
    res = PQexec(conn, m->sql);
    st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    /* A file ending in a SELECT, or holding only comments, is fine too. */
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        errbuf_printf(err, errlen,
                      "PostgreSQL: migration %s failed: %s; it was rolled back: fix "
                      "sinks/migrations/%s.sql or the database and start again",
                      m->name, sink_pg_result_error(conn, res, msg, sizeof msg), m->name);
        goto err;
    }
    PQclear(res);
    res = PQexecParams(
        conn, "INSERT INTO vigil.schema_migrations (version, name) VALUES ($1::int4, $2::text)", 2,
        NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        errbuf_printf(err, errlen, "PostgreSQL: cannot record migration %s: %s", m->name,
                      sink_pg_result_error(conn, res, msg, sizeof msg));
        goto err;
    }
    PQclear(res);
    res = NULL;
    if (sink_pg_exec(conn, "COMMIT", PGRES_COMMAND_OK, "COMMIT of a migration", err, errlen) != 0)
        goto err;
    return 0;

err:
    PQclear(res);
    sink_pg_rollback(conn);
    return -1;
}

int sink_pg_migrate(sink_pg_t *pg, char *err, size_t errlen)
{
    int locked = 0;
    int i;

    if (sink_pg_check_conn(pg, "migrate", err, errlen) != 0)
        return SINK_PG_ERR;
    /* Everything, including creating the bookkeeping table, happens under the lock: concurrent
     * CREATE ... IF NOT EXISTS can still fail on the catalog's unique indexes. */
    if (sink_pg_exec(pg->conn, "SELECT pg_advisory_lock(" SINK_PG_MIGRATION_LOCK_KEY "::int8)",
                     PGRES_TUPLES_OK, "taking the migration advisory lock", err, errlen) != 0)
        goto err;
    locked = 1;
    /* "already exists, skipping" NOTICEs on every start would only be noise on stderr. */
    if (sink_pg_exec(pg->conn, "SET client_min_messages = warning", PGRES_COMMAND_OK,
                     "quieting notices during migrations", err, errlen) != 0)
        goto err;
    if (sink_pg_exec(pg->conn,
                     "CREATE SCHEMA IF NOT EXISTS vigil; "
                     "CREATE TABLE IF NOT EXISTS vigil.schema_migrations ("
                     " version int4 PRIMARY KEY,"
                     " name text NOT NULL,"
                     " applied_at timestamptz NOT NULL DEFAULT now())",
                     PGRES_COMMAND_OK, "creating vigil.schema_migrations", err, errlen) != 0)
        goto err;
    for (i = 0; i < sink_migrations_count; i++) {
        const sink_migration_t *m = &sink_migrations[i];
        int applied = sink_pg_migration_applied(pg->conn, m, err, errlen);

        if (applied < 0)
            goto err;
        if (applied)
            continue;
        if (sink_pg_migration_apply(pg->conn, m, err, errlen) != 0)
            goto err;
    }
    if (sink_pg_exec(pg->conn, "RESET client_min_messages", PGRES_COMMAND_OK,
                     "restoring client_min_messages", err, errlen) != 0)
        goto err;
    if (sink_pg_exec(pg->conn, "SELECT pg_advisory_unlock(" SINK_PG_MIGRATION_LOCK_KEY "::int8)",
                     PGRES_TUPLES_OK, "releasing the migration advisory lock", err, errlen) != 0)
        return SINK_PG_ERR;
    return SINK_PG_OK;

err:
    /* The session lock would outlive the error on a healthy connection and block every other
     * instance; on a broken one the server has released it already. */
    if (locked && PQstatus(pg->conn) == CONNECTION_OK) {
        sink_pg_rollback(pg->conn);
        PQclear(PQexec(pg->conn, "RESET client_min_messages"));
        PQclear(
            PQexec(pg->conn, "SELECT pg_advisory_unlock(" SINK_PG_MIGRATION_LOCK_KEY "::int8)"));
    }
    return SINK_PG_ERR;
}
