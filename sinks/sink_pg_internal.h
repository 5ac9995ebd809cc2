/* Internals shared by the files of the PostgreSQL sink (sinks/sink_pg_conn.c, _migrate, _copy,
 * _write, _state, _dead) and by nothing else: the struct behind sink_pg_t, its reusable buffer,
 * and the helpers more than one of them calls. sink_pg.h is the API; only those files include
 * this header.
 *
 * The helpers follow the libpq practice of the whole sink: every PGresult is checked with
 * PQresultStatus and cleared on every path, and query parameters go out of line (PQexecParams)
 * with explicit casts in the SQL, so no value is ever spliced into SQL. Internal helpers return 0
 * or -1 (the public functions SINK_PG_*) and fill err (errlen bytes) with what failed, through
 * errbuf_printf (pipeline/util/errbuf.h). */
#ifndef VIGIL_SINK_PG_INTERNAL_H
#define VIGIL_SINK_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

#include "sink_pg.h"

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

/* ---- errors and results (sink_pg_conn.c) ---- */

/* libpq's message msg as one line (libpq's end with a newline and some span lines) in out
 * (outlen bytes); returns out. */
const char *sink_pg_trim(const char *msg, char *out, size_t outlen);

/* The error of a failed result, or of the connection when res is NULL or carries none, as one
 * line in out; returns out. */
const char *sink_pg_result_error(PGconn *conn, const PGresult *res, char *out, size_t outlen);

/* Whether a failed result is the server refusing the data itself (no retry can fix it). */
int sink_pg_sqlstate_is_data(const PGresult *res);

/* Runs a parameterless statement (or several, separated by ';') and expects `want`; `what` says
 * what it is for, in the error. */
int sink_pg_exec(PGconn *conn, const char *sql, ExecStatusType want, const char *what, char *err,
                 size_t errlen);

/* Commits the open transaction, checking that it did commit. */
int sink_pg_commit(PGconn *conn, const char *what, char *err, size_t errlen);

/* Ends whatever transaction is open, best effort (error paths). */
void sink_pg_rollback(PGconn *conn);

/* 0 when the connection is up, else -1 with an error saying that `what` cannot be done. */
int sink_pg_check_conn(sink_pg_t *pg, const char *what, char *err, size_t errlen);

/* ---- the buffer (sink_pg_copy.c): 0, or -1 out of memory ---- */

int sink_pg_buf_reserve(sink_pg_buf_t *b, size_t more); /* room for `more` bytes */
int sink_pg_buf_add(sink_pg_buf_t *b, const char *s, size_t n);
int sink_pg_buf_addc(sink_pg_buf_t *b, char c);
int sink_pg_buf_add_i64(sink_pg_buf_t *b, int64_t v); /* in decimal */

/* ---- COPY (sink_pg_copy.c), inside the open transaction; they set pg->rejected when the
 * server (or the encoder) refused the data itself ---- */

/* COPYs every result row of rows, a COPY per table that has any. */
int sink_pg_copy_rows(sink_pg_t *pg, const sink_rows_t *rows, char *err, size_t errlen);

/* COPYs n dead letters into vigil.dead_letters. */
int sink_pg_copy_dead(sink_pg_t *pg, const sink_dead_letter_t *dead, size_t n, char *err,
                      size_t errlen);

/* Whether rows' counts and arrays agree. */
int sink_pg_rows_complete(const sink_rows_t *rows);

/* ---- alerts (sink_pg_alerts.c), inside the open batch transaction ---- */

/* Raises or grows the fraud alerts of the batch's risk rows that carry a severity
 * (vigil.alerts_fraud_apply), after their COPY and the fenced offset updates; fills
 * batch->alert_changes. Sets pg->rejected
 * when the server refused the data itself. */
int sink_pg_alerts_apply(sink_pg_t *pg, const sink_batch_t *batch, char *err, size_t errlen);

/* ---- failed writes (sink_pg_write.c) ---- */

/* After a failed step of a write transaction (a batch, a replay): rolls back and returns
 * SINK_PG_REJECTED when the server refused the data itself (retrying cannot help), else
 * SINK_PG_ERR. */
int sink_pg_write_abort(sink_pg_t *pg);

/* The rows of res, in the column order of sink_alert_t's fields, into *out, *n (strdup'd; NULL for
 * SQL NULL). 0, or -1 when out of memory (sink_pg_alerts.c). */
int sink_pg_alerts_take(const PGresult *res, sink_alert_t **out, size_t *n);

#endif
