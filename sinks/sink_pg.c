/* PostgreSQL sink: connects with libpq (blocking API), applies the embedded migrations, loads the
 * stored Kafka offsets and writes each batch as one transaction (COPY of rows and dead letters,
 * then one fenced offset update per partition). See sink_pg.h for the contract and
 * sinks/README.md for the offset protocol.
 *
 * Every PGresult is checked with PQresultStatus and cleared on every path. Query parameters go out
 * of line (PQexecParams) with explicit casts in the SQL, so no value is ever spliced into SQL. */
#include "sink_pg.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sink_migrations.h"

/* Session advisory lock key that serialises migrations across instances: the 64-bit FNV-1a hash
 * of the text "vigil.migrations" (0xde82664531d46613), read as a signed int8. Fixed forever:
 * two versions of vigild must agree on it. */
#define SINK_PG_MIGRATION_LOCK_KEY "-2413254002942384621"

/* COPY data is sent to the server whenever this much has been buffered. */
#define SINK_PG_COPY_CHUNK (64 * 1024)

/* A growable byte buffer, kept in the sink and reused for every batch so that building COPY
 * data does not allocate per row. */
typedef struct sink_pg_buf {
    char *data;
    size_t len;
    size_t cap;
} sink_pg_buf_t;

struct sink_pg {
    PGconn *conn;      /* never NULL after sink_pg_new; may be a failed (CONNECTION_BAD) one */
    char *conninfo;    /* owned copy, for sink_pg_reconnect; may hold a password: never logged */
    sink_pg_buf_t buf; /* COPY data, and small text parameters such as int4 arrays */
    int rejected;      /* set by a write step when the server refused the data itself */
};

/* ---- errors ---------------------------------------------------------------------------------- */

static void sink_pg_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void sink_pg_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* libpq messages end with a newline and some span lines ("...\n\tThis probably means...");
 * log lines must not. Copies msg into out (outlen bytes) as one line. */
static const char *sink_pg_trim(const char *msg, char *out, size_t outlen)
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
static const char *sink_pg_result_error(PGconn *conn, const PGresult *res, char *out, size_t outlen)
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
static int sink_pg_sqlstate_is_data(const PGresult *res)
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
static int sink_pg_exec(PGconn *conn, const char *sql, ExecStatusType want, const char *what,
                        char *err, size_t errlen)
{
    char msg[512];
    PGresult *res = PQexec(conn, sql);

    if (!res || PQresultStatus(res) != want) {
        sink_pg_errf(err, errlen, "PostgreSQL: %s failed: %s", what,
                     sink_pg_result_error(conn, res, msg, sizeof msg));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Commits the open transaction. A COMMIT of a transaction that failed earlier answers
 * "ROLLBACK" with a success status, so the command tag is checked too. */
static int sink_pg_commit(PGconn *conn, const char *what, char *err, size_t errlen)
{
    char msg[512];
    PGresult *res = PQexec(conn, "COMMIT");

    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK ||
        strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        sink_pg_errf(err, errlen, "PostgreSQL: COMMIT of %s failed: %s", what,
                     sink_pg_result_error(conn, res, msg, sizeof msg));
        PQclear(res);
        return -1;
    }
    PQclear(res);
    return 0;
}

/* Ends whatever transaction is open, best effort: used on error paths where the first error is
 * the one worth reporting. A lost connection has already ended the transaction server-side. */
static void sink_pg_rollback(PGconn *conn)
{
    PGresult *res;

    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) == PQTRANS_IDLE)
        return;
    res = PQexec(conn, "ROLLBACK");
    PQclear(res);
}

static int sink_pg_check_conn(sink_pg_t *pg, const char *what, char *err, size_t errlen)
{
    char msg[512];

    if (PQstatus(pg->conn) == CONNECTION_OK)
        return 0;
    sink_pg_errf(err, errlen,
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
        sink_pg_errf(err, errlen, "PostgreSQL: cannot connect: out of memory in libpq");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        sink_pg_errf(err, errlen,
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
        sink_pg_errf(err, errlen, "PostgreSQL sink: out of memory allocating the sink");
        goto err;
    }
    pg->conninfo = strdup(conninfo ? conninfo : "");
    if (!pg->conninfo) {
        sink_pg_errf(err, errlen, "PostgreSQL sink: out of memory copying the conninfo");
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

/* ---- migrations ------------------------------------------------------------------------------ */

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
        sink_pg_errf(err, errlen,
                     "PostgreSQL: cannot read vigil.schema_migrations for migration %s: %s",
                     m->name, sink_pg_result_error(conn, res, msg, sizeof msg));
        goto out;
    }
    if (PQntuples(res) == 0) {
        applied = 0;
        goto out;
    }
    if (strcmp(PQgetvalue(res, 0, 0), m->name) != 0) {
        sink_pg_errf(err, errlen,
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
        sink_pg_errf(err, errlen,
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
        sink_pg_errf(err, errlen, "PostgreSQL: cannot record migration %s: %s", m->name,
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

/* ---- buffer ---------------------------------------------------------------------------------- */

/* Makes room for `more` bytes. */
static int sink_pg_buf_reserve(sink_pg_buf_t *b, size_t more)
{
    size_t cap;
    char *data;

    if (b->cap - b->len >= more)
        return 0;
    cap = b->cap ? b->cap : 2 * SINK_PG_COPY_CHUNK;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    data = realloc(b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int sink_pg_buf_add(sink_pg_buf_t *b, const char *s, size_t n)
{
    if (sink_pg_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

static int sink_pg_buf_addc(sink_pg_buf_t *b, char c)
{
    return sink_pg_buf_add(b, &c, 1);
}

/* Appends n bytes of s escaped for COPY text format: the four characters that would end a field
 * or a row (backslash, tab, newline, carriage return). */
static int sink_pg_buf_add_escaped(sink_pg_buf_t *b, const char *s, size_t n)
{
    size_t i;
    char *out;

    if (n > (SIZE_MAX - b->len) / 2 || sink_pg_buf_reserve(b, 2 * n) != 0)
        return -1;
    out = b->data + b->len;
    for (i = 0; i < n; i++) {
        switch (s[i]) {
        case '\\':
            *out++ = '\\';
            *out++ = '\\';
            break;
        case '\t':
            *out++ = '\\';
            *out++ = 't';
            break;
        case '\n':
            *out++ = '\\';
            *out++ = 'n';
            break;
        case '\r':
            *out++ = '\\';
            *out++ = 'r';
            break;
        default:
            *out++ = s[i];
            break;
        }
    }
    b->len = (size_t)(out - b->data);
    return 0;
}

/* A text field in COPY text format: \N for NULL, else the escaped text. */
static int sink_pg_buf_add_text(sink_pg_buf_t *b, const char *s)
{
    if (!s)
        return sink_pg_buf_add(b, "\\N", 2);
    return sink_pg_buf_add_escaped(b, s, strlen(s));
}

/* A text[] field in COPY text format: the array literal {"a","b"} with every element quoted
 * (so commas, braces, spaces and the word NULL stay text), '"' and '\' backslash-escaped for the
 * array parser, and the whole then escaped for COPY. */
static int sink_pg_buf_add_text_array(sink_pg_buf_t *b, const char *const *items, size_t n)
{
    if (sink_pg_buf_addc(b, '{') != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const char *s = items[i];
        if ((i > 0 && sink_pg_buf_addc(b, ',') != 0) || sink_pg_buf_addc(b, '"') != 0)
            return -1;
        for (size_t k = 0; s[k] != '\0';) {
            size_t run = strcspn(s + k, "\"\\");
            if (sink_pg_buf_add_escaped(b, s + k, run) != 0)
                return -1;
            k += run;
            if (s[k] != '\0') {
                /* array escape \ then the character, each escaped again for COPY */
                if (sink_pg_buf_add_escaped(b, "\\", 1) != 0 ||
                    sink_pg_buf_add_escaped(b, s + k, 1) != 0)
                    return -1;
                k++;
            }
        }
        if (sink_pg_buf_addc(b, '"') != 0)
            return -1;
    }
    return sink_pg_buf_addc(b, '}');
}

/* A real[] field in COPY text format: {v1,v2,...} with %.9g, which round-trips a float exactly;
 * \N for NULL. Non-finite values never reach here (the models' outputs are probabilities and
 * normalised embeddings). */
static int sink_pg_buf_add_real_array(sink_pg_buf_t *b, const float *v, size_t n)
{
    char num[32];
    if (!v)
        return sink_pg_buf_add(b, "\\N", 2);
    if (sink_pg_buf_addc(b, '{') != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(num, sizeof num, "%s%.9g", i ? "," : "", (double)v[i]);
        if (sink_pg_buf_add(b, num, (size_t)len) != 0)
            return -1;
    }
    return sink_pg_buf_addc(b, '}');
}

/* An array literal {"a","b"} for a text[] parameter (no COPY escaping), NUL-terminated. */
static int sink_pg_array_literal(sink_pg_buf_t *b, const char *const *items, size_t n)
{
    if (sink_pg_buf_addc(b, '{') != 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && sink_pg_buf_addc(b, ',') != 0) || sink_pg_buf_addc(b, '"') != 0)
            return -1;
        for (const char *c = items[i]; *c; c++)
            if (((*c == '"' || *c == '\\') && sink_pg_buf_addc(b, '\\') != 0) ||
                sink_pg_buf_addc(b, *c) != 0)
                return -1;
        if (sink_pg_buf_addc(b, '"') != 0)
            return -1;
    }
    return sink_pg_buf_add(b, "}", 2); /* with the terminating NUL */
}

/* A bytea field in COPY text format: the hex form \x0a1b..., whose backslash is itself escaped
 * for COPY, so the bytes sent are \\x followed by two hex digits per byte. */
static int sink_pg_buf_add_bytea(sink_pg_buf_t *b, const void *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *bytes = p;
    size_t i;
    char *out;

    if (!p)
        return sink_pg_buf_add(b, "\\N", 2);
    if (n > (SIZE_MAX - b->len - 3) / 2 || sink_pg_buf_reserve(b, 3 + 2 * n) != 0)
        return -1;
    out = b->data + b->len;
    *out++ = '\\';
    *out++ = '\\';
    *out++ = 'x';
    for (i = 0; i < n; i++) {
        *out++ = hex[bytes[i] >> 4];
        *out++ = hex[bytes[i] & 0x0f];
    }
    b->len = (size_t)(out - b->data);
    return 0;
}

static int sink_pg_buf_add_i64(sink_pg_buf_t *b, int64_t v)
{
    char s[32];
    int n = snprintf(s, sizeof s, "%" PRId64, v);

    return sink_pg_buf_add(b, s, (size_t)n);
}

/* Formats epoch milliseconds as an ISO-8601 UTC timestamptz literal, e.g.
 * "1970-01-01 00:00:00.123+00". Years outside 1..9999 are refused (-1): they need the " BC"
 * suffix or more digits, and no real event carries them. */
static int sink_pg_format_ms(int64_t ms, char *out, size_t outlen)
{
    int64_t secs = ms / 1000, frac = ms % 1000;
    time_t t;
    struct tm tm;

    if (frac < 0) { /* floor division: -1 ms is 23:59:59.999 of the day before */
        frac += 1000;
        secs -= 1;
    }
    t = (time_t)secs;
    if ((int64_t)t != secs || !gmtime_r(&t, &tm))
        return -1;
    if (tm.tm_year + 1900 < 1 || tm.tm_year + 1900 > 9999)
        return -1;
    snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d.%03d+00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    return 0;
}

/* A timestamp field as COPY text into out (48 bytes). `nullable` (the Kafka timestamp) maps
 * what cannot be stored to NULL: -1 ("none") and any time outside years 1..9999, since
 * producers set CreateTime to anything and one bad clock must not make a batch unwritable. */
static int sink_pg_ms_field(int64_t ms, int nullable, char *out, size_t outlen)
{
    if (nullable && (ms < 0 || sink_pg_format_ms(ms, out, outlen) != 0)) {
        snprintf(out, outlen, "\\N");
        return 0;
    }
    return sink_pg_format_ms(ms, out, outlen);
}

/* ---- COPY ------------------------------------------------------------------------------------ */

/* The tables a batch COPYs into, in the order it writes them. */
typedef enum sink_table {
    SINK_TABLE_RISK,
    SINK_TABLE_NEWS,
    SINK_TABLE_LABELS,
    SINK_TABLE_DEAD,
} sink_table_t;

static const struct {
    const char *name;
    const char *copy_sql;
    int binary; /* COPY ... (FORMAT binary): no number is printed here nor parsed there */
} SINK_TABLES[] = {
    [SINK_TABLE_RISK] = {"vigil.risk_scores",
                         "COPY vigil.risk_scores (topic, partition, kafka_offset, kafka_timestamp, "
                         "event_id, event_type, user_id, account_id, device_id, ip, amount, "
                         "currency, merchant_id, merchant_category, country, latitude, longitude, "
                         "event_time, channel, features, feature_spec, score, model_version) "
                         "FROM STDIN (FORMAT binary)",
                         1},
    [SINK_TABLE_NEWS] = {"vigil.news_scores",
                         "COPY vigil.news_scores (topic, partition, kafka_offset, kafka_timestamp, "
                         "article_id, published_time, source, language, headline, body, tickers, "
                         "sentiment, sentiment_probs, topic_label, topic_probs, embedding, "
                         "model_version) FROM STDIN"},
    [SINK_TABLE_LABELS] = {"vigil.labels",
                           "COPY vigil.labels (topic, partition, kafka_offset, kafka_timestamp, "
                           "label_kind, event_id, is_fraud, label_source, article_id, sentiment, "
                           "topic_label, label_time) FROM STDIN"},
    [SINK_TABLE_DEAD] = {"vigil.dead_letters",
                         "COPY vigil.dead_letters (topic, partition, kafka_offset, "
                         "kafka_timestamp, key, payload, reason) FROM STDIN"},
};

/* The four columns every table starts with: topic, partition, offset, Kafka timestamp. */
static int sink_pg_coords_add(sink_pg_buf_t *b, const sink_coords_t *at)
{
    char kafka_ts[48];

    sink_pg_ms_field(at->kafka_timestamp_ms, 1, kafka_ts, sizeof kafka_ts); /* nullable: no fail */
    if (sink_pg_buf_add_text(b, at->topic) || sink_pg_buf_addc(b, '\t') ||
        sink_pg_buf_add_i64(b, at->partition) || sink_pg_buf_addc(b, '\t') ||
        sink_pg_buf_add_i64(b, at->offset) || sink_pg_buf_addc(b, '\t') ||
        sink_pg_buf_add(b, kafka_ts, strlen(kafka_ts)) || sink_pg_buf_addc(b, '\t'))
        return -1;
    return 0;
}

/* ---- binary COPY (vigil.risk_scores) ----------------------------------------------------------
 * A risk row carries some 70 floats: printed here and parsed by float4in in the server, they
 * cost more than all the rest of the row (the end-to-end rate halved when features arrived). In
 * binary COPY every field is a big-endian length (-1 for NULL) followed by the value in the
 * type's send format, and floats travel as their bits. */

/* Signature, flags (no OIDs), header extension length 0. */
static const char SINK_PG_BINARY_HEADER[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

static int sink_pg_bin_i16(sink_pg_buf_t *b, int16_t v)
{
    uint16_t be = htobe16((uint16_t)v);
    return sink_pg_buf_add(b, (const char *)&be, 2);
}

static int sink_pg_bin_i32(sink_pg_buf_t *b, int32_t v)
{
    uint32_t be = htobe32((uint32_t)v);
    return sink_pg_buf_add(b, (const char *)&be, 4);
}

static int sink_pg_bin_i64(sink_pg_buf_t *b, int64_t v)
{
    uint64_t be = htobe64((uint64_t)v);
    return sink_pg_buf_add(b, (const char *)&be, 8);
}

static int sink_pg_bin_int4(sink_pg_buf_t *b, int32_t v)
{
    return sink_pg_bin_i32(b, 4) || sink_pg_bin_i32(b, v);
}

static int sink_pg_bin_int8(sink_pg_buf_t *b, int64_t v)
{
    return sink_pg_bin_i32(b, 8) || sink_pg_bin_i64(b, v);
}

/* text: the bytes as they are (the decoder guarantees UTF-8 without NUL); NULL for NULL. */
static int sink_pg_bin_text(sink_pg_buf_t *b, const char *s)
{
    size_t n;
    if (!s)
        return sink_pg_bin_i32(b, -1);
    n = strlen(s);
    return n > INT32_MAX || sink_pg_bin_i32(b, (int32_t)n) || sink_pg_buf_add(b, s, n);
}

static int sink_pg_bin_float8(sink_pg_buf_t *b, int present, double v)
{
    uint64_t bits;
    if (!present)
        return sink_pg_bin_i32(b, -1);
    memcpy(&bits, &v, sizeof bits);
    return sink_pg_bin_int8(b, (int64_t)bits);
}

/* timestamptz: microseconds since 2000-01-01 UTC, over the years the text form allows (1..9999).
 * Outside them: NULL when nullable (a producer's clock), else -2. */
static int sink_pg_bin_ts(sink_pg_buf_t *b, int64_t ms, int nullable)
{
    const int64_t first = -62135596800000LL; /* 0001-01-01 */
    const int64_t end = 253402300800000LL;   /* 10000-01-01 */
    if ((nullable && ms < 0) || ms < first || ms >= end)
        return nullable ? sink_pg_bin_i32(b, -1) : -2;
    return sink_pg_bin_int8(b, (ms - 946684800000LL) * 1000);
}

/* real[] in array_send form: one dimension, no NULLs, element type float4 (oid 700), lower
 * bound 1, then each element as length 4 and its bits. */
static int sink_pg_bin_float4_array(sink_pg_buf_t *b, const float *v, size_t n)
{
    if (!v)
        return sink_pg_bin_i32(b, -1);
    if (n > (size_t)(INT32_MAX - 20) / 8 || sink_pg_buf_reserve(b, 24 + 8 * n) != 0)
        return -1;
    if (sink_pg_bin_i32(b, (int32_t)(20 + 8 * n)) || sink_pg_bin_i32(b, 1) ||
        sink_pg_bin_i32(b, 0) || sink_pg_bin_i32(b, 700) || sink_pg_bin_i32(b, (int32_t)n) ||
        sink_pg_bin_i32(b, 1))
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        if (sink_pg_bin_i32(b, 4) || sink_pg_bin_i32(b, (int32_t)bits))
            return -1;
    }
    return 0;
}

/* real: length 4 and the float's bits; NULL when not present. */
static int sink_pg_bin_float4(sink_pg_buf_t *b, int present, float v)
{
    uint32_t bits;
    if (!present)
        return sink_pg_bin_i32(b, -1);
    memcpy(&bits, &v, sizeof bits);
    return sink_pg_bin_i32(b, 4) || sink_pg_bin_i32(b, (int32_t)bits);
}

#define SINK_PG_RISK_COLUMNS 23

/* Appends one vigil.risk_scores tuple (binary COPY). Returns 0, -1 out of memory, -2 event time
 * out of range (the decoder refuses those, so it means a caller's bug). */
static int sink_pg_risk_add(sink_pg_buf_t *b, const sink_risk_row_t *r)
{
    size_t start = b->len;
    int rc;

    if (sink_pg_bin_i16(b, SINK_PG_RISK_COLUMNS) || sink_pg_bin_text(b, r->at.topic) ||
        sink_pg_bin_int4(b, r->at.partition) || sink_pg_bin_int8(b, r->at.offset) ||
        sink_pg_bin_ts(b, r->at.kafka_timestamp_ms, 1) || sink_pg_bin_text(b, r->event_id) ||
        sink_pg_bin_text(b, r->event_type) || sink_pg_bin_text(b, r->user_id) ||
        sink_pg_bin_text(b, r->account_id) || sink_pg_bin_text(b, r->device_id) ||
        sink_pg_bin_text(b, r->ip) || sink_pg_bin_float8(b, r->has_amount, r->amount) ||
        sink_pg_bin_text(b, r->currency) || sink_pg_bin_text(b, r->merchant_id) ||
        sink_pg_bin_text(b, r->merchant_category) || sink_pg_bin_text(b, r->country) ||
        sink_pg_bin_float8(b, r->has_geo, r->latitude) ||
        sink_pg_bin_float8(b, r->has_geo, r->longitude))
        goto fail;
    if ((rc = sink_pg_bin_ts(b, r->event_time_ms, 0)) != 0) {
        b->len = start;
        return rc;
    }
    if (sink_pg_bin_text(b, r->channel) ||
        sink_pg_bin_float4_array(b, r->features, r->n_features) ||
        sink_pg_bin_text(b, r->features ? r->feature_spec : NULL) ||
        sink_pg_bin_float4(b, r->model_version != NULL, r->score) ||
        sink_pg_bin_text(b, r->model_version))
        goto fail;
    return 0;
fail:
    b->len = start;
    return -1;
}

/* Appends one vigil.news_scores line; returns as sink_pg_risk_add. */
static int sink_pg_article_add(sink_pg_buf_t *b, const sink_article_row_t *r)
{
    char published_ts[48];

    if (sink_pg_ms_field(r->published_time_ms, 0, published_ts, sizeof published_ts) != 0)
        return -2;
    for (size_t i = 0; i < r->n_tickers; i++)
        if (!r->tickers[i])
            return -2;
    if (sink_pg_coords_add(b, &r->at) || sink_pg_buf_add_text(b, r->article_id) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add(b, published_ts, strlen(published_ts)) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, r->source) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, r->language) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, r->headline) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, r->body) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text_array(b, r->tickers, r->n_tickers))
        return -1;
    int scored = r->model_version != NULL;
    if (sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, scored ? r->sentiment : NULL) ||
        sink_pg_buf_addc(b, '\t') ||
        sink_pg_buf_add_real_array(b, scored ? r->sentiment_probs : NULL, r->n_sentiment) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, scored ? r->topic_label : NULL) ||
        sink_pg_buf_addc(b, '\t') ||
        sink_pg_buf_add_real_array(b, scored ? r->topic_probs : NULL, r->n_topics) ||
        sink_pg_buf_addc(b, '\t') ||
        sink_pg_buf_add_real_array(b, scored ? r->embedding : NULL, r->n_embedding) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, r->model_version) ||
        sink_pg_buf_addc(b, '\n'))
        return -1;
    return 0;
}

/* Appends one vigil.labels line; returns as sink_pg_risk_add. */
static int sink_pg_label_add(sink_pg_buf_t *b, const sink_label_row_t *r)
{
    char label_ts[48];
    int fraud = r->kind == SINK_LABEL_FRAUD;

    if (sink_pg_ms_field(r->label_time_ms, 0, label_ts, sizeof label_ts) != 0)
        return -2;
    if (sink_pg_coords_add(b, &r->at) || sink_pg_buf_add_text(b, fraud ? "fraud" : "news") ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, fraud ? r->event_id : NULL) ||
        sink_pg_buf_addc(b, '\t') ||
        sink_pg_buf_add_text(b, fraud ? (r->is_fraud ? "t" : "f") : NULL) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, fraud ? r->label_source : NULL) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, fraud ? NULL : r->article_id) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, fraud ? NULL : r->sentiment) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, fraud ? NULL : r->topic_label) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add(b, label_ts, strlen(label_ts)) ||
        sink_pg_buf_addc(b, '\n'))
        return -1;
    return 0;
}

/* Appends one vigil.dead_letters line. Returns 0, or -1 out of memory. */
static int sink_pg_dead_add(sink_pg_buf_t *b, const sink_dead_letter_t *d)
{
    if (sink_pg_coords_add(b, &d->at) || sink_pg_buf_add_bytea(b, d->key, d->key_len) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_bytea(b, d->payload, d->payload_len) ||
        sink_pg_buf_addc(b, '\t') || sink_pg_buf_add_text(b, d->reason) ||
        sink_pg_buf_addc(b, '\n'))
        return -1;
    return 0;
}

/* Appends entry i of table's array (rows or dead letters of one batch) and names its
 * coordinates in at (for errors). Returns as sink_pg_risk_add. */
static int sink_pg_line_add(sink_pg_buf_t *b, sink_table_t table, const sink_rows_t *rows,
                            const sink_dead_letter_t *dead, size_t i, char *at, size_t atlen)
{
    const sink_coords_t *c = NULL;
    int rc = -1;

    switch (table) {
    case SINK_TABLE_RISK:
        rc = sink_pg_risk_add(b, &rows->risk[i]);
        c = &rows->risk[i].at;
        break;
    case SINK_TABLE_NEWS:
        rc = sink_pg_article_add(b, &rows->articles[i]);
        c = &rows->articles[i].at;
        break;
    case SINK_TABLE_LABELS:
        rc = sink_pg_label_add(b, &rows->labels[i]);
        c = &rows->labels[i].at;
        break;
    case SINK_TABLE_DEAD:
        rc = sink_pg_dead_add(b, &dead[i]);
        c = &dead[i].at;
        break;
    }
    snprintf(at, atlen, "%s/%" PRId32 " offset %" PRId64, c && c->topic ? c->topic : "(null)",
             c ? c->partition : 0, c ? c->offset : 0);
    return rc;
}

/* Sends what is buffered and empties the buffer. */
static int sink_pg_copy_flush(PGconn *conn, sink_pg_buf_t *b, const char *table, char *err,
                              size_t errlen)
{
    char msg[512];
    size_t off = 0;

    while (off < b->len) {
        size_t n = b->len - off;

        if (n > SINK_PG_COPY_CHUNK)
            n = SINK_PG_COPY_CHUNK; /* PQputCopyData takes an int */
        if (PQputCopyData(conn, b->data + off, (int)n) != 1) {
            sink_pg_errf(err, errlen, "PostgreSQL: sending COPY data for %s failed: %s", table,
                         sink_pg_trim(PQerrorMessage(conn), msg, sizeof msg));
            return -1;
        }
        off += n;
    }
    b->len = 0;
    return 0;
}

/* Ends a COPY: with abort_msg NULL it completes, otherwise the server discards it. Then reads
 * every result up to NULL, as libpq requires, and reports the first failure. */
static int sink_pg_copy_end(sink_pg_t *pg, const char *abort_msg, const char *table, char *err,
                            size_t errlen)
{
    PGconn *conn = pg->conn;
    char msg[512];
    PGresult *res;
    int rc = 0;

    if (PQputCopyEnd(conn, abort_msg) != 1) {
        sink_pg_errf(err, errlen, "PostgreSQL: ending COPY into %s failed: %s", table,
                     sink_pg_trim(PQerrorMessage(conn), msg, sizeof msg));
        rc = -1;
    }
    while ((res = PQgetResult(conn)) != NULL) {
        if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK) {
            sink_pg_errf(err, errlen, "PostgreSQL: COPY into %s failed: %s", table,
                         sink_pg_result_error(conn, res, msg, sizeof msg));
            if (abort_msg == NULL && sink_pg_sqlstate_is_data(res))
                pg->rejected = 1;
            rc = -1;
        }
        PQclear(res);
        /* A lost connection keeps answering with errors; stop once it is gone. */
        if (PQstatus(conn) != CONNECTION_OK)
            break;
    }
    return rc;
}

/* COPYs n entries into table (rows from rows, dead letters from dead) inside the open
 * transaction. */
static int sink_pg_copy(sink_pg_t *pg, sink_table_t table, const sink_rows_t *rows,
                        const sink_dead_letter_t *dead, size_t n, char *err, size_t errlen)
{
    const char *name = SINK_TABLES[table].name;
    char msg[512], at[160];
    PGresult *res;
    size_t i;

    res = PQexec(pg->conn, SINK_TABLES[table].copy_sql);
    if (!res || PQresultStatus(res) != PGRES_COPY_IN) {
        sink_pg_errf(err, errlen, "PostgreSQL: starting COPY into %s failed: %s", name,
                     sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        PQclear(res);
        return -1;
    }
    PQclear(res);

    pg->buf.len = 0;
    if (SINK_TABLES[table].binary &&
        sink_pg_buf_add(&pg->buf, SINK_PG_BINARY_HEADER, sizeof SINK_PG_BINARY_HEADER) != 0)
        goto oom;
    for (i = 0; i < n; i++) {
        int rc = sink_pg_line_add(&pg->buf, table, rows, dead, i, at, sizeof at);

        if (rc == -2) {
            sink_pg_errf(err, errlen,
                         "PostgreSQL sink: %s entry for %s has a time outside years 1..9999 or a "
                         "NULL array item; the decoder should have dead-lettered it: nothing "
                         "from this batch was written",
                         name, at);
            pg->rejected = 1;
            goto err;
        }
        if (rc != 0)
            goto oom;
        if (pg->buf.len >= SINK_PG_COPY_CHUNK &&
            sink_pg_copy_flush(pg->conn, &pg->buf, name, err, errlen) != 0)
            goto err;
    }
    if (SINK_TABLES[table].binary && sink_pg_bin_i16(&pg->buf, -1) != 0) /* the trailer */
        goto oom;
    if (sink_pg_copy_flush(pg->conn, &pg->buf, name, err, errlen) != 0)
        goto err;
    return sink_pg_copy_end(pg, NULL, name, err, errlen);

oom:
    sink_pg_errf(err, errlen,
                 "PostgreSQL sink: out of memory building COPY data for %s (%zu bytes "
                 "buffered); nothing from this batch was written: retry a smaller batch",
                 name, pg->buf.len);
err:
    /* The first error is the one reported; ending the COPY only gets the connection out of
     * COPY mode so the caller can roll back. */
    pg->buf.len = 0;
    sink_pg_copy_end(pg, "vigil: batch abandoned", name, NULL, 0);
    return -1;
}

/* COPYs every result row of rows, a COPY per table that has any, inside the open
 * transaction. */
static int sink_pg_copy_rows(sink_pg_t *pg, const sink_rows_t *rows, char *err, size_t errlen)
{
    if (rows->n_risk > 0 &&
        sink_pg_copy(pg, SINK_TABLE_RISK, rows, NULL, rows->n_risk, err, errlen) != 0)
        return -1;
    if (rows->n_articles > 0 &&
        sink_pg_copy(pg, SINK_TABLE_NEWS, rows, NULL, rows->n_articles, err, errlen) != 0)
        return -1;
    if (rows->n_labels > 0 &&
        sink_pg_copy(pg, SINK_TABLE_LABELS, rows, NULL, rows->n_labels, err, errlen) != 0)
        return -1;
    return 0;
}

/* Whether rows' counts and arrays agree. */
static int sink_pg_rows_complete(const sink_rows_t *rows)
{
    return (!rows->n_risk || rows->risk) && (!rows->n_articles || rows->articles) &&
           (!rows->n_labels || rows->labels);
}

/* ---- offsets --------------------------------------------------------------------------------- */

/* "{1,2,3}": an int4[] parameter in text form, built in the sink's buffer. */
static int sink_pg_int4_array(sink_pg_buf_t *b, const int32_t *v, size_t n)
{
    size_t i;

    b->len = 0;
    if (sink_pg_buf_addc(b, '{') != 0)
        return -1;
    for (i = 0; i < n; i++) {
        if (i > 0 && sink_pg_buf_addc(b, ',') != 0)
            return -1;
        if (sink_pg_buf_add_i64(b, v[i]) != 0)
            return -1;
    }
    if (sink_pg_buf_addc(b, '}') != 0 || sink_pg_buf_addc(b, '\0') != 0)
        return -1;
    return 0;
}

int sink_pg_offsets_load(sink_pg_t *pg, const char *group, const char *topic,
                         const int32_t *partitions, size_t n, int64_t *next_offsets, char *err,
                         size_t errlen)
{
    const char *params[3];
    char msg[512];
    PGresult *res = NULL;
    size_t i;

    if (n == 0)
        return SINK_PG_OK;
    if (!group || !topic || !partitions || !next_offsets) {
        sink_pg_errf(err, errlen,
                     "PostgreSQL sink: offsets_load called without group, topic "
                     "or partitions (a bug in the caller)");
        return SINK_PG_ERR;
    }
    if (sink_pg_check_conn(pg, "load Kafka offsets", err, errlen) != 0)
        return SINK_PG_ERR;
    if (sink_pg_int4_array(&pg->buf, partitions, n) != 0) {
        sink_pg_errf(err, errlen, "PostgreSQL sink: out of memory listing %zu partitions", n);
        return SINK_PG_ERR;
    }
    params[0] = group;
    params[1] = topic;
    params[2] = pg->buf.data;

    /* First make sure every partition has a row, so that the fenced update in sink_pg_write
     * always has one to match. Its own statement (not a CTE) so that the SELECT below sees rows
     * another instance committed meanwhile. */
    res = PQexecParams(pg->conn,
                       "INSERT INTO vigil.kafka_offsets (consumer_group, topic, partition) "
                       "SELECT $1::text, $2::text, p FROM unnest($3::int4[]) AS p "
                       "ON CONFLICT DO NOTHING",
                       3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        sink_pg_errf(err, errlen,
                     "PostgreSQL: creating vigil.kafka_offsets rows for group \"%s\" topic "
                     "\"%s\" failed: %s; has sink_pg_migrate run?",
                     group, topic, sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        goto err;
    }
    PQclear(res);

    res = PQexecParams(pg->conn,
                       "SELECT o.next_offset FROM unnest($3::int4[]) WITH ORDINALITY AS p(part, i) "
                       "LEFT JOIN vigil.kafka_offsets o ON o.consumer_group = $1::text "
                       "AND o.topic = $2::text AND o.partition = p.part ORDER BY p.i",
                       3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        sink_pg_errf(err, errlen,
                     "PostgreSQL: reading vigil.kafka_offsets for group \"%s\" topic \"%s\" "
                     "failed: %s",
                     group, topic, sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        goto err;
    }
    if ((size_t)PQntuples(res) != n) {
        sink_pg_errf(err, errlen,
                     "PostgreSQL: reading vigil.kafka_offsets for group \"%s\" topic \"%s\" "
                     "returned %d rows for %zu partitions (a bug in the query)",
                     group, topic, PQntuples(res), n);
        goto err;
    }
    for (i = 0; i < n; i++) {
        char *end;

        if (PQgetisnull(res, (int)i, 0)) {
            next_offsets[i] = SINK_PG_OFFSET_NONE;
            continue;
        }
        errno = 0;
        next_offsets[i] = strtoll(PQgetvalue(res, (int)i, 0), &end, 10);
        if (errno != 0 || *end != '\0') {
            sink_pg_errf(err, errlen,
                         "PostgreSQL: stored next_offset \"%s\" for %s/%" PRId32
                         " is not an integer",
                         PQgetvalue(res, (int)i, 0), topic, partitions[i]);
            goto err;
        }
    }
    PQclear(res);
    return SINK_PG_OK;

err:
    PQclear(res);
    return SINK_PG_ERR;
}

/* After a fence failure (and rollback): what is stored now, as text for the error message. */
static void sink_pg_stored_offset(PGconn *conn, const char *group, const sink_offset_advance_t *o,
                                  char *out, size_t outlen)
{
    char part[16];
    const char *params[3] = {group, o->topic, part};
    PGresult *res;

    snprintf(part, sizeof part, "%" PRId32, o->partition);
    res = PQexecParams(conn,
                       "SELECT next_offset FROM vigil.kafka_offsets WHERE consumer_group = "
                       "$1::text AND topic = $2::text AND partition = $3::int4",
                       3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        snprintf(out, outlen, "unknown (could not read it back)");
    else if (PQntuples(res) == 0)
        snprintf(out, outlen, "no row (sink_pg_offsets_load was not called for it)");
    else if (PQgetisnull(res, 0, 0))
        snprintf(out, outlen, "NULL (none)");
    else
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* The conditional offset update. Returns 0 when it matched, 1 when fenced, -1 on error. */
static int sink_pg_offset_advance(PGconn *conn, const sink_batch_t *batch,
                                  const sink_offset_advance_t *o, char *err, size_t errlen)
{
    char part[16], next[32], expected[32], msg[512];
    const char *params[6] = {batch->group, o->topic, part, next, batch->instance_id, NULL};
    PGresult *res;
    int rc;

    snprintf(part, sizeof part, "%" PRId32, o->partition);
    snprintf(next, sizeof next, "%" PRId64, o->next);
    if (o->expected != SINK_PG_OFFSET_NONE) {
        snprintf(expected, sizeof expected, "%" PRId64, o->expected);
        params[5] = expected; /* NULL stays SQL NULL: "nothing stored yet" */
    }
    res = PQexecParams(conn,
                       "UPDATE vigil.kafka_offsets SET next_offset = $4::int8, updated_at = now(), "
                       "updated_by = $5::text WHERE consumer_group = $1::text AND topic = $2::text "
                       "AND partition = $3::int4 AND next_offset IS NOT DISTINCT FROM $6::int8",
                       6, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        sink_pg_errf(
            err, errlen,
            "PostgreSQL: updating vigil.kafka_offsets for group \"%s\" %s/%" PRId32 " failed: %s",
            batch->group, o->topic, o->partition, sink_pg_result_error(conn, res, msg, sizeof msg));
        rc = -1;
    } else {
        rc = strcmp(PQcmdTuples(res), "1") == 0 ? 0 : 1;
    }
    PQclear(res);
    return rc;
}

int sink_pg_checkpoint_save(sink_pg_t *pg, const char *group, const char *instance_id,
                            const sink_checkpoint_t *c, char *err, size_t errlen)
{
    char part[16], next[32], entities[32], msg[512];
    const char *params[8] = {
        group, c->topic, part, next, c->spec_hash, entities, (const char *)c->state, instance_id};
    int lengths[8] = {0, 0, 0, 0, 0, 0, (int)c->state_len, 0};
    int formats[8] = {0, 0, 0, 0, 0, 0, 1, 0};
    PGresult *res;
    int rc;

    if (c->state_len > SINK_PG_CHECKPOINT_MAX) { /* the worker skips those; a caller's bug */
        sink_pg_errf(err, errlen,
                     "PostgreSQL sink: entity state of %s/%" PRId32 " is %zu bytes, over the "
                     "1 GB PostgreSQL holds in one value; lower features.max_entities",
                     c->topic, c->partition, c->state_len);
        return SINK_PG_ERR;
    }
    if (sink_pg_check_conn(pg, "entity state checkpoint", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(part, sizeof part, "%" PRId32, c->partition);
    snprintf(next, sizeof next, "%" PRId64, c->next_offset);
    snprintf(entities, sizeof entities, "%" PRIu64, c->entities);
    /* Never over a later checkpoint: one written after this one was taken (by this instance or
     * by the partition's next owner) stays. */
    res = PQexecParams(pg->conn,
                       "INSERT INTO vigil.entity_state (consumer_group, topic, partition, "
                       "next_offset, spec_hash, entities, state, updated_by) VALUES ($1::text, "
                       "$2::text, $3::int4, $4::int8, $5::text, $6::int8, $7::bytea, $8::text) "
                       "ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = "
                       "excluded.next_offset, spec_hash = excluded.spec_hash, entities = "
                       "excluded.entities, state = excluded.state, updated_at = now(), "
                       "updated_by = excluded.updated_by "
                       "WHERE vigil.entity_state.next_offset <= excluded.next_offset",
                       8, NULL, params, lengths, formats, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        sink_pg_errf(err, errlen,
                     "PostgreSQL: writing the entity state checkpoint of %s/%" PRId32 " failed: %s",
                     c->topic, c->partition, sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        rc = SINK_PG_ERR;
    } else if (strcmp(PQcmdTuples(res), "1") != 0) {
        sink_pg_errf(err, errlen,
                     "PostgreSQL: the entity state checkpoint of %s/%" PRId32 " at %" PRId64
                     " was not written: a later one is stored",
                     c->topic, c->partition, c->next_offset);
        rc = SINK_PG_FENCED;
    } else {
        rc = SINK_PG_OK;
    }
    PQclear(res);
    return rc;
}

int sink_pg_checkpoint_load(sink_pg_t *pg, const char *group, const char *topic, int32_t partition,
                            int64_t *next_offset, char *spec_hash, size_t spec_hash_len,
                            uint8_t **state, size_t *state_len, char *err, size_t errlen)
{
    char part[16], msg[512];
    const char *params[3] = {group, topic, part};
    PGresult *res;
    int rc = SINK_PG_ERR;

    *state = NULL;
    *state_len = 0;
    *next_offset = SINK_PG_OFFSET_NONE;
    if (sink_pg_check_conn(pg, "load an entity state checkpoint", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(part, sizeof part, "%" PRId32, partition);
    /* Binary results: the state comes back as raw bytes, not hex text twice its size. */
    res = PQexecParams(pg->conn,
                       "SELECT next_offset::text::bytea, spec_hash::bytea, state FROM "
                       "vigil.entity_state WHERE consumer_group = $1::text AND topic = $2::text "
                       "AND partition = $3::int4",
                       3, NULL, params, NULL, NULL, 1);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        sink_pg_errf(err, errlen,
                     "PostgreSQL: reading the entity state checkpoint of %s/%" PRId32 " failed: %s",
                     topic, partition, sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        goto out;
    }
    rc = SINK_PG_OK;
    if (PQntuples(res) == 0)
        goto out;
    {
        char num[32];
        int nlen = PQgetlength(res, 0, 0), hlen = PQgetlength(res, 0, 1);
        size_t len = (size_t)PQgetlength(res, 0, 2);
        snprintf(num, sizeof num, "%.*s", nlen < 31 ? nlen : 31, PQgetvalue(res, 0, 0));
        snprintf(spec_hash, spec_hash_len, "%.*s", hlen, PQgetvalue(res, 0, 1));
        *next_offset = strtoll(num, NULL, 10);
        *state = malloc(len ? len : 1);
        if (!*state) {
            sink_pg_errf(err, errlen,
                         "PostgreSQL sink: out of memory for a %zu-byte entity state of "
                         "%s/%" PRId32,
                         len, topic, partition);
            rc = SINK_PG_ERR;
            goto out;
        }
        memcpy(*state, PQgetvalue(res, 0, 2), len);
        *state_len = len;
    }
out:
    PQclear(res);
    return rc;
}

int sink_pg_dead_offsets_load(sink_pg_t *pg, const char *topic, int32_t partition, int64_t from,
                              int64_t to, int64_t **offsets, size_t *n, char *err, size_t errlen)
{
    char part[16], lo[32], hi[32], msg[512];
    const char *params[4] = {topic, part, lo, hi};
    PGresult *res;
    int rc = SINK_PG_ERR;

    *offsets = NULL;
    *n = 0;
    if (sink_pg_check_conn(pg, "load dead-letter offsets", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(part, sizeof part, "%" PRId32, partition);
    snprintf(lo, sizeof lo, "%" PRId64, from);
    snprintf(hi, sizeof hi, "%" PRId64, to);
    res =
        PQexecParams(pg->conn,
                     "SELECT DISTINCT kafka_offset FROM vigil.dead_letters WHERE topic = $1::text "
                     "AND partition = $2::int4 AND kafka_offset >= $3::int8 AND kafka_offset < "
                     "$4::int8 AND reason NOT LIKE 'refused by PostgreSQL%' ORDER BY 1",
                     4, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        sink_pg_errf(err, errlen,
                     "PostgreSQL: reading dead-letter offsets of %s/%" PRId32 " failed: %s", topic,
                     partition, sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        goto out;
    }
    if (PQntuples(res) > 0) {
        *offsets = malloc((size_t)PQntuples(res) * sizeof(**offsets));
        if (!*offsets) {
            sink_pg_errf(err, errlen, "PostgreSQL sink: out of memory for %d dead-letter offsets",
                         PQntuples(res));
            goto out;
        }
        for (int i = 0; i < PQntuples(res); i++)
            (*offsets)[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        *n = (size_t)PQntuples(res);
    }
    rc = SINK_PG_OK;
out:
    PQclear(res);
    return rc;
}

int sink_pg_feature_spec_register(sink_pg_t *pg, const char *spec_hash, const char *const *columns,
                                  size_t n_columns, const char *spec_text, char *err, size_t errlen)
{
    char msg[512];
    const char *params[3] = {spec_hash, NULL, spec_text};
    PGresult *res;
    int rc = SINK_PG_ERR;

    if (sink_pg_check_conn(pg, "register a feature spec", err, errlen) != 0)
        return SINK_PG_ERR;
    pg->buf.len = 0;
    if (sink_pg_array_literal(&pg->buf, columns, n_columns) != 0) {
        sink_pg_errf(err, errlen, "PostgreSQL sink: out of memory building the column list");
        return SINK_PG_ERR;
    }
    params[1] = pg->buf.data;
    res = PQexecParams(pg->conn,
                       "INSERT INTO vigil.feature_specs (spec_hash, columns, spec) VALUES "
                       "($1::text, $2::text[], $3::text) ON CONFLICT (spec_hash) DO NOTHING",
                       3, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK)
        sink_pg_errf(err, errlen, "PostgreSQL: registering feature spec %s failed: %s", spec_hash,
                     sink_pg_result_error(pg->conn, res, msg, sizeof msg));
    else
        rc = SINK_PG_OK;
    PQclear(res);
    return rc;
}

int sink_pg_write(sink_pg_t *pg, const sink_batch_t *batch, char *err, size_t errlen)
{
    char what[96];
    size_t i;

    if (!batch || !batch->group || !sink_pg_rows_complete(&batch->rows) ||
        (batch->n_dead && !batch->dead) || (batch->n_offsets && !batch->offsets)) {
        sink_pg_errf(err, errlen,
                     "PostgreSQL sink: write called with an incomplete batch (a "
                     "bug in the caller)");
        return SINK_PG_ERR;
    }
    for (i = 0; i < batch->n_offsets; i++) {
        if (!batch->offsets[i].topic) {
            sink_pg_errf(err, errlen,
                         "PostgreSQL sink: write called with offsets[%zu] lacking "
                         "a topic (a bug in the caller)",
                         i);
            return SINK_PG_ERR;
        }
    }
    if (sink_pg_check_conn(pg, "write a batch", err, errlen) != 0)
        return SINK_PG_ERR;
    /* A transaction left open by an earlier failure would swallow this batch into it. */
    sink_pg_rollback(pg->conn);
    pg->rejected = 0;

    if (sink_pg_exec(pg->conn, "BEGIN", PGRES_COMMAND_OK, "BEGIN of a batch", err, errlen) != 0)
        goto err;
    if (sink_pg_copy_rows(pg, &batch->rows, err, errlen) != 0)
        goto err;
    if (batch->n_dead > 0 &&
        sink_pg_copy(pg, SINK_TABLE_DEAD, NULL, batch->dead, batch->n_dead, err, errlen) != 0)
        goto err;
    for (i = 0; i < batch->n_offsets; i++) {
        const sink_offset_advance_t *o = &batch->offsets[i];
        char stored[128], expected[32];
        int rc = sink_pg_offset_advance(pg->conn, batch, o, err, errlen);

        if (rc < 0)
            goto err;
        if (rc == 0)
            continue;
        sink_pg_rollback(pg->conn);
        sink_pg_stored_offset(pg->conn, batch->group, o, stored, sizeof stored);
        if (o->expected == SINK_PG_OFFSET_NONE)
            snprintf(expected, sizeof expected, "NULL (none)");
        else
            snprintf(expected, sizeof expected, "%" PRId64, o->expected);
        sink_pg_errf(err, errlen,
                     "PostgreSQL: fenced on group \"%s\" %s/%" PRId32 ": expected stored "
                     "next_offset %s but it is %s; another instance has written this partition "
                     "since it was assigned here: batch rolled back (nothing written), drop it "
                     "and reload offsets after the rebalance",
                     batch->group, o->topic, o->partition, expected, stored);
        return SINK_PG_FENCED;
    }
    snprintf(what, sizeof what, "a batch (%zu rows, %zu dead letters)",
             batch->rows.n_risk + batch->rows.n_articles + batch->rows.n_labels, batch->n_dead);
    if (sink_pg_commit(pg->conn, what, err, errlen) != 0)
        goto err;
    return SINK_PG_OK;

err:
    sink_pg_rollback(pg->conn);
    if (PQstatus(pg->conn) != CONNECTION_OK && err && errlen > 0) {
        size_t used = strnlen(err, errlen);

        snprintf(err + used, errlen - used,
                 " (connection lost: call sink_pg_reconnect, then retry the same batch)");
    }
    if (pg->rejected && PQstatus(pg->conn) == CONNECTION_OK)
        return SINK_PG_REJECTED;
    return SINK_PG_ERR;
}

/* ---- dead-letter tooling ------------------------------------------------------------------- */

void sink_pg_dead_entries_free(sink_dead_entry_t *entries, size_t n)
{
    for (size_t i = 0; entries && i < n; i++) {
        free(entries[i].topic);
        PQfreemem(entries[i].key);
        PQfreemem(entries[i].payload);
        free(entries[i].reason);
        free(entries[i].created_at);
    }
    free(entries);
}

/* A bytea column (hex text output) into a libpq-allocated buffer; NULL stays NULL. */
static int sink_pg_bytea_get(const PGresult *res, int row, int col, unsigned char **out,
                             size_t *len)
{
    *out = NULL;
    *len = 0;
    if (PQgetisnull(res, row, col))
        return 0;
    *out = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), len);
    return *out ? 0 : -1;
}

int sink_pg_dead_letters_list(sink_pg_t *pg, const char *topic, const char *reason_like,
                              int64_t after_id, int limit, sink_dead_entry_t **out, size_t *n,
                              char *err, size_t errlen)
{
    char after[32], lim[16], msg[512];
    const char *params[4];
    sink_dead_entry_t *entries = NULL;
    PGresult *res;
    int rows;

    *out = NULL;
    *n = 0;
    if (sink_pg_check_conn(pg, "list dead letters", err, errlen) != 0)
        return SINK_PG_ERR;
    snprintf(after, sizeof after, "%" PRId64, after_id);
    snprintf(lim, sizeof lim, "%d", limit);
    params[0] = after;
    params[1] = topic;
    params[2] = reason_like;
    params[3] = lim;
    res = PQexecParams(pg->conn,
                       "SELECT id, topic, partition, kafka_offset, "
                       "(extract(epoch FROM kafka_timestamp) * 1000)::int8, key, payload, reason, "
                       "created_at FROM vigil.dead_letters WHERE id > $1::int8 "
                       "AND ($2::text IS NULL OR topic = $2::text) "
                       "AND ($3::text IS NULL OR reason LIKE $3::text) "
                       "ORDER BY id LIMIT $4::int4",
                       4, NULL, params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK) {
        sink_pg_errf(err, errlen, "PostgreSQL: listing vigil.dead_letters failed: %s",
                     sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        PQclear(res);
        return SINK_PG_ERR;
    }
    rows = PQntuples(res);
    entries = calloc((size_t)(rows > 0 ? rows : 1), sizeof *entries);
    if (!entries)
        goto oom;
    for (int r = 0; r < rows; r++) {
        sink_dead_entry_t *e = &entries[r];
        *n = (size_t)r + 1; /* so that a failure below frees what this row got */
        e->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
        e->topic = strdup(PQgetvalue(res, r, 1));
        e->partition = (int32_t)strtol(PQgetvalue(res, r, 2), NULL, 10);
        e->offset = strtoll(PQgetvalue(res, r, 3), NULL, 10);
        e->kafka_timestamp_ms =
            PQgetisnull(res, r, 4) ? -1 : strtoll(PQgetvalue(res, r, 4), NULL, 10);
        e->reason = strdup(PQgetvalue(res, r, 7));
        e->created_at = strdup(PQgetvalue(res, r, 8));
        if (!e->topic || !e->reason || !e->created_at ||
            sink_pg_bytea_get(res, r, 5, &e->key, &e->key_len) != 0 ||
            sink_pg_bytea_get(res, r, 6, &e->payload, &e->payload_len) != 0)
            goto oom;
    }
    PQclear(res);
    *out = entries;
    *n = (size_t)rows;
    return SINK_PG_OK;
oom:
    PQclear(res);
    sink_pg_dead_entries_free(entries, *n);
    *n = 0;
    sink_pg_errf(err, errlen, "PostgreSQL sink: out of memory listing dead letters");
    return SINK_PG_ERR;
}

int sink_pg_dead_letter_replace(sink_pg_t *pg, int64_t id, const sink_rows_t *rows, char *err,
                                size_t errlen)
{
    char idtext[32], msg[512];
    const char *params[1] = {idtext};
    PGresult *res = NULL;
    int deleted;

    if (!sink_pg_rows_complete(rows)) {
        sink_pg_errf(err, errlen,
                     "PostgreSQL sink: replace called with incomplete rows (a bug in the caller)");
        return SINK_PG_ERR;
    }
    if (sink_pg_check_conn(pg, "replay a dead letter", err, errlen) != 0)
        return SINK_PG_ERR;
    sink_pg_rollback(pg->conn);
    pg->rejected = 0;
    snprintf(idtext, sizeof idtext, "%" PRId64, id);
    if (sink_pg_exec(pg->conn, "BEGIN", PGRES_COMMAND_OK, "BEGIN of a replay", err, errlen) != 0)
        goto err;
    /* The delete takes the row lock: a concurrent replay of the same id waits here, then finds
     * nothing to delete and writes nothing. */
    res = PQexecParams(pg->conn, "DELETE FROM vigil.dead_letters WHERE id = $1::int8", 1, NULL,
                       params, NULL, NULL, 0);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        sink_pg_errf(err, errlen, "PostgreSQL: deleting dead letter %s failed: %s", idtext,
                     sink_pg_result_error(pg->conn, res, msg, sizeof msg));
        goto err;
    }
    deleted = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    res = NULL;
    if (!deleted) {
        sink_pg_rollback(pg->conn);
        sink_pg_errf(err, errlen, "dead letter %s is gone (replayed already)", idtext);
        return SINK_PG_FENCED;
    }
    if (sink_pg_copy_rows(pg, rows, err, errlen) != 0)
        goto err;
    if (sink_pg_commit(pg->conn, "a replay", err, errlen) != 0)
        goto err;
    return SINK_PG_OK;
err:
    PQclear(res);
    sink_pg_rollback(pg->conn);
    return pg->rejected && PQstatus(pg->conn) == CONNECTION_OK ? SINK_PG_REJECTED : SINK_PG_ERR;
}
