/* PostgreSQL sink, COPY: encodes a batch's rows and dead letters in each table's COPY format and
 * streams them to the server inside the caller's transaction. vigil.risk_scores goes in binary
 * COPY (its float vectors would cost more to print and parse than the rest of the row); the
 * other tables in text COPY. An entry the encoder cannot store (a time outside years 1..9999, a
 * NULL array item) or a COPY the server refuses as data marks the write rejected
 * (pg->rejected): the caller's retry of the same data cannot succeed. */
#include <endian.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "errbuf.h"
#include "sink_pg_internal.h"

/* ---- the buffer ------------------------------------------------------------------------------ */

/* Makes room for `more` bytes. */
int sink_pg_buf_reserve(sink_pg_buf_t *b, size_t more)
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

int sink_pg_buf_add(sink_pg_buf_t *b, const char *s, size_t n)
{
    if (sink_pg_buf_reserve(b, n) != 0)
        return -1;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 0;
}

int sink_pg_buf_addc(sink_pg_buf_t *b, char c)
{
    return sink_pg_buf_add(b, &c, 1);
}

int sink_pg_buf_add_i64(sink_pg_buf_t *b, int64_t v)
{
    char s[32];
    int n = snprintf(s, sizeof s, "%" PRId64, v);

    return sink_pg_buf_add(b, s, (size_t)n);
}

/* ---- text COPY fields ------------------------------------------------------------------------ */

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

/* ---- the tables ------------------------------------------------------------------------------ */

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

/* ---- one entry of each table ----------------------------------------------------------------- */

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

/* ---- sending --------------------------------------------------------------------------------- */

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
            errbuf_printf(err, errlen, "PostgreSQL: sending COPY data for %s failed: %s", table,
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
        errbuf_printf(err, errlen, "PostgreSQL: ending COPY into %s failed: %s", table,
                      sink_pg_trim(PQerrorMessage(conn), msg, sizeof msg));
        rc = -1;
    }
    while ((res = PQgetResult(conn)) != NULL) {
        if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK) {
            errbuf_printf(err, errlen, "PostgreSQL: COPY into %s failed: %s", table,
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
        errbuf_printf(err, errlen, "PostgreSQL: starting COPY into %s failed: %s", name,
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
            errbuf_printf(err, errlen,
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
    errbuf_printf(err, errlen,
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

int sink_pg_copy_rows(sink_pg_t *pg, const sink_rows_t *rows, char *err, size_t errlen)
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

int sink_pg_copy_dead(sink_pg_t *pg, const sink_dead_letter_t *dead, size_t n, char *err,
                      size_t errlen)
{
    return sink_pg_copy(pg, SINK_TABLE_DEAD, NULL, dead, n, err, errlen);
}

int sink_pg_rows_complete(const sink_rows_t *rows)
{
    return (!rows->n_risk || rows->risk) && (!rows->n_articles || rows->articles) &&
           (!rows->n_labels || rows->labels);
}
