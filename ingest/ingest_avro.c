/* Avro decoding of Kafka message values into ingest_record_t, and the matching encoder.
 *
 * Decoding reads the Avro binary itself, in one pass that validates as it goes: every varint,
 * length, enum index and union index is checked against the writer schema and the bytes left,
 * trailing bytes are refused, strings are checked for UTF-8 and NUL, numbers for finiteness.
 * (Avro C 1.11.1's own reader would allocate whatever string length a message claims, write
 * before its buffer on a negative one and accept enum indexes past the last symbol, so it never
 * sees message bytes.) Avro C parses the schemas and encodes (vigil produce).
 *
 * A message on the reader schema itself (the usual case) is read by direct_decode, with field
 * positions resolved when the reader schema is loaded. A message on another writer schema (a
 * Confluent id whose schema differs) is read by plan_decode through that writer's field plan,
 * built once per id: Avro schema resolution (fields matched by name, extra writer fields
 * skipped, missing optional fields left at their null default, int promoted to long or double,
 * enum symbols mapped by name), done here because Avro C's resolver fills no defaults and maps
 * enums by index.
 *
 * Strings point into the message until they are copied into rec->buf, which only grows: nothing
 * is allocated per message in steady state. The four record kinds (ingest_record.h) differ
 * only in their field tables below.
 *
 * A BehaviorEvent reader schema may carry a user's own columns beyond EVENT_FIELDS: the extra
 * fields (extra_field_t), numbers or strings, read by both decoders into the record's extra
 * arrays, which live in rec->buf and rec->list like the strings. Avro C drops field defaults
 * when it parses a schema, so the defaults of extra fields are read from the schema's JSON
 * here (json_*). */
#include "ingest_avro.h"
#include "ingest_json.h"

#include <avro.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Reasons end up in dead-letter rows and logs: keep them one short line. */
#define REASON_MAX 200
#define CONFLUENT_HEADER_LEN 5
#define SCHEMA_FILE_MAX (1024 * 1024)
/* Deeper nesting than this in a writer schema is a mistake or an attack on the stack. */
#define SCAN_DEPTH_MAX 32
/* JSON nests about three levels per Avro level: room for any schema Avro C itself accepts
 * short of abuse, while bounding the recursion that skips it. */
/* A missing or broken <id>.avsc is looked up again at most this often, per id. */
#define MISS_RETRY_MS 1000
#define MISS_SLOTS 16
/* event_time must fall in years 1970..2200: [1970-01-01, 2201-01-01) UTC in epoch ms. */
#define EVENT_TIME_MIN_MS INT64_C(0)
#define EVENT_TIME_END_MS INT64_C(7289654400000)

/* The fields vigil reads, per record kind, in ingest_record_t terms. */
typedef enum field_kind {
    FIELD_STRING,       /* "string": required, never empty */
    FIELD_ENUM,         /* an enum, surfaced as its symbol */
    FIELD_OPT_STRING,   /* ["null","string"] */
    FIELD_OPT_DOUBLE,   /* ["null","double"] */
    FIELD_OPT_ENUM,     /* ["null", an enum] */
    FIELD_TIME_MS,      /* long, timestamp-millis, years 1970..2200 */
    FIELD_BOOL,         /* boolean */
    FIELD_STRING_ARRAY, /* {"type":"array","items":"string"}, default [] */
} field_kind_t;

/* More fields than any record kind has (BehaviorEvent's 15). */
#define FIELDS_MAX 16

typedef struct field_spec {
    const char *name;
    field_kind_t kind;
    size_t offset;     /* of the member of ingest_record_t that holds the value */
    size_t aux_offset; /* FIELD_OPT_DOUBLE: its int "has" flag; FIELD_STRING_ARRAY: its size_t
                        * count; 0 for none (offset 0 is rec->kind, never a field) */
} field_spec_t;

#define EV(m) offsetof(ingest_record_t, event.m)
#define AR(m) offsetof(ingest_record_t, article.m)
#define FL(m) offsetof(ingest_record_t, fraud_label.m)
#define NL(m) offsetof(ingest_record_t, news_label.m)

enum {
    F_EVENT_ID,
    F_EVENT_TYPE,
    F_USER_ID,
    F_ACCOUNT_ID,
    F_DEVICE_ID,
    F_IP,
    F_AMOUNT,
    F_CURRENCY,
    F_MERCHANT_ID,
    F_MERCHANT_CATEGORY,
    F_COUNTRY,
    F_LATITUDE,
    F_LONGITUDE,
    F_EVENT_TIME,
    F_CHANNEL,
    F_EVENT_COUNT
};

static const field_spec_t EVENT_FIELDS[F_EVENT_COUNT] = {
    [F_EVENT_ID] = {"event_id", FIELD_STRING, EV(event_id), 0},
    [F_EVENT_TYPE] = {"event_type", FIELD_ENUM, EV(event_type), 0},
    [F_USER_ID] = {"user_id", FIELD_STRING, EV(user_id), 0},
    [F_ACCOUNT_ID] = {"account_id", FIELD_OPT_STRING, EV(account_id), 0},
    [F_DEVICE_ID] = {"device_id", FIELD_OPT_STRING, EV(device_id), 0},
    [F_IP] = {"ip", FIELD_OPT_STRING, EV(ip), 0},
    [F_AMOUNT] = {"amount", FIELD_OPT_DOUBLE, EV(amount), EV(has_amount)},
    [F_CURRENCY] = {"currency", FIELD_OPT_STRING, EV(currency), 0},
    [F_MERCHANT_ID] = {"merchant_id", FIELD_OPT_STRING, EV(merchant_id), 0},
    [F_MERCHANT_CATEGORY] = {"merchant_category", FIELD_OPT_STRING, EV(merchant_category), 0},
    [F_COUNTRY] = {"country", FIELD_OPT_STRING, EV(country), 0},
    [F_LATITUDE] = {"latitude", FIELD_OPT_DOUBLE, EV(latitude), EV(has_geo)},
    [F_LONGITUDE] = {"longitude", FIELD_OPT_DOUBLE, EV(longitude), EV(has_geo)},
    [F_EVENT_TIME] = {"event_time", FIELD_TIME_MS, EV(event_time_ms), 0},
    [F_CHANNEL] = {"channel", FIELD_OPT_STRING, EV(channel), 0},
};

static const field_spec_t ARTICLE_FIELDS[] = {
    {"article_id", FIELD_STRING, AR(article_id), 0},
    {"published_time", FIELD_TIME_MS, AR(published_time_ms), 0},
    {"source", FIELD_STRING, AR(source), 0},
    {"language", FIELD_OPT_STRING, AR(language), 0},
    {"headline", FIELD_STRING, AR(headline), 0},
    {"body", FIELD_OPT_STRING, AR(body), 0},
    {"tickers", FIELD_STRING_ARRAY, AR(tickers), AR(n_tickers)},
};

static const field_spec_t FRAUD_LABEL_FIELDS[] = {
    {"event_id", FIELD_STRING, FL(event_id), 0},
    {"is_fraud", FIELD_BOOL, FL(is_fraud), 0},
    {"label_time", FIELD_TIME_MS, FL(label_time_ms), 0},
    {"label_source", FIELD_OPT_STRING, FL(label_source), 0},
};

enum { F_NL_ARTICLE_ID, F_NL_SENTIMENT, F_NL_TOPIC, F_NL_LABEL_TIME, F_NL_COUNT };

static const field_spec_t NEWS_LABEL_FIELDS[F_NL_COUNT] = {
    [F_NL_ARTICLE_ID] = {"article_id", FIELD_STRING, NL(article_id), 0},
    [F_NL_SENTIMENT] = {"sentiment", FIELD_OPT_ENUM, NL(sentiment), 0},
    [F_NL_TOPIC] = {"topic", FIELD_OPT_STRING, NL(topic), 0},
    [F_NL_LABEL_TIME] = {"label_time", FIELD_TIME_MS, NL(label_time_ms), 0},
};

struct field_value;

/* One record kind: its fields, and the rule across fields the schema cannot express (NULL for
 * none), checked before the record is committed. */
typedef struct record_type {
    const char *name; /* the Avro record name, and <name>.avsc */
    const field_spec_t *fields;
    int n_fields;
    int (*check)(const struct field_value *vals, char *reason, size_t reason_len);
} record_type_t;

static int news_label_check(const struct field_value *vals, char *reason, size_t reason_len);

#define COUNT_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const record_type_t RECORD_TYPES[INGEST_KIND_COUNT] = {
    [INGEST_KIND_EVENT] = {"BehaviorEvent", EVENT_FIELDS, COUNT_OF(EVENT_FIELDS), NULL},
    [INGEST_KIND_ARTICLE] = {"NewsArticle", ARTICLE_FIELDS, COUNT_OF(ARTICLE_FIELDS), NULL},
    [INGEST_KIND_FRAUD_LABEL] = {"FraudLabel", FRAUD_LABEL_FIELDS, COUNT_OF(FRAUD_LABEL_FIELDS),
                                 NULL},
    [INGEST_KIND_NEWS_LABEL] = {"NewsLabel", NEWS_LABEL_FIELDS, COUNT_OF(NEWS_LABEL_FIELDS),
                                news_label_check},
};

/* Where a field sits in the reader schema, found by name once so any field order works. */
typedef struct field_slot {
    int index;                 /* in the reader record */
    int null_branch;           /* optional fields: union branch holding null */
    int value_branch;          /* optional fields: union branch holding the value */
    avro_schema_t enum_schema; /* the enum kinds: the reader's enum (borrowed) */
} field_slot_t;

/* One field as read from the decoded value, before it is committed into the event. */
typedef struct field_value {
    int present;
    const char *str; /* strings and enum symbols: into the message or the schema. String
                      * arrays: where the array starts in the message (items are read again,
                      * already validated, when the record is committed) */
    size_t len;      /* string bytes; for a string array, of all its items together */
    size_t n_items;  /* string arrays */
    double num;
    int64_t i64; /* longs, and booleans as 0 or 1 */
} field_value_t;

/* A reader field beyond the kind's own (BehaviorEvent only): a user's column. */
typedef struct extra_field {
    const char *name; /* borrowed from the reader schema */
    ingest_extra_type_t type;
    avro_schema_t value_schema; /* its type without the null branch (borrowed, no link) */
    avro_type_t value_type;     /* avro_typeof(value_schema) */
    int index;                  /* in the reader record */
    int optional;               /* a union with null */
    int null_branch, value_branch;
    int has_default; /* the reader schema gives one: writers may lack the field */
    field_value_t def;
    char *def_text; /* owned: a string default, which def.str points to */
} extra_field_t;

/* One field of the reader record in wire order, for the direct decoder: the type's field index
 * (or -1) and the extra field index (or -1); both -1 for a field vigil does not read. */
typedef struct plan_step {
    int field;
    int extra;
} plan_step_t;

/* One field of a writer schema, in the writer's order: which of vigil's fields it feeds. */
typedef struct writer_field {
    int spec;             /* index in the kind's fields, or -1: a field vigil does not read */
    int extra;            /* index in the decoder's extra fields, or -1 */
    const char *name;     /* borrowed from the writer schema */
    avro_schema_t schema; /* the field's type in the writer schema (borrowed) */
} writer_field_t;

/* A Confluent writer schema, from the registry or <schema_dir>/<id>.avsc, on first use. When it
 * differs from the reader's, `fields` is how its messages are read into vigil's fields: Avro
 * schema resolution done here rather than by Avro C, whose resolver neither fills a field the
 * writer lacks from the reader's default nor maps enum symbols by name. */
typedef struct writer_entry {
    uint32_t id;
    avro_schema_t schema;   /* owned */
    writer_field_t *fields; /* owned; NULL when the writer schema equals the reader's */
    size_t n_fields;
} writer_entry_t;

/* A schema id whose file was missing or unusable, remembered so a stream of such messages
 * does not open a file per message. */
typedef struct schema_miss {
    int used;
    uint32_t id;
    int64_t at_ms;
    char reason[REASON_MAX];
} schema_miss_t;

struct ingest_avro {
    const record_type_t *type; /* the kind of record decoded and encoded */
    ingest_kind_t kind;
    ingest_format_t format;
    char *schema_dir;            /* owned; NULL in PLAIN format */
    ingest_registry_t *registry; /* owned; when set, writer schemas come from it */
    avro_schema_t reader_schema;
    avro_value_iface_t *reader_class;
    avro_value_t value; /* the event being encoded, reader shape */
    avro_writer_t writer;
    field_slot_t slots[FIELDS_MAX];
    /* The reader record's fields in wire order; fields vigil does not read are validated and
     * skipped. Drives the direct decoder used whenever the writer schema is the reader
     * schema. */
    plan_step_t *plan;
    size_t plan_len;
    extra_field_t *extras; /* owned, n_extra of them, in reader-schema order */
    size_t n_extra;
    field_value_t *extra_vals; /* owned: the extra fields of the message being decoded */
    writer_entry_t *writers;
    size_t writer_count;
    size_t writer_cap;
    schema_miss_t misses[MISS_SLOTS];
    size_t next_miss; /* slot the next miss overwrites */
};

/* The bytes being scanned, and the innermost record field, for reasons. */
typedef struct scan {
    const uint8_t *p;
    const uint8_t *end;
    const char *field;
    char *reason;
    size_t reason_len;
} scan_t;

static void text_vset(char *buf, size_t len, const char *fmt, va_list ap)
{
    if (buf == NULL || len == 0) {
        return;
    }
    vsnprintf(buf, len, fmt, ap);
    /* Messages can quote schema paths and Avro C errors: keep them printable one-liners. */
    for (char *c = buf; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) {
            *c = '?';
        }
    }
}

static void text_set(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void text_set(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    text_vset(buf, len, fmt, ap);
    va_end(ap);
}

/* Fills a decode reason and returns INGEST_AVRO_BAD. */
static int reason_bad(char *reason, size_t reason_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int reason_bad(char *reason, size_t reason_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    text_vset(reason, reason_len, fmt, ap);
    va_end(ap);
    return INGEST_AVRO_BAD;
}

static int clock_now_ms(int64_t *out)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return -1;
    }
    *out = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return 0;
}

/* RFC 3629 UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF. PostgreSQL rejects
 * anything else in text columns, so a bad string must stop here, not in a sink batch. */
static int utf8_valid(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i - 1 < n) {
            return 0;
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
        i += n + 1;
    }
    return 1;
}

/* ---- strict scan of Avro binary against a writer schema ---- */

static int scan_long(scan_t *s, int64_t *out)
{
    uint64_t value = 0;
    /* Set on every path: at -O3 GCC cannot see that callers never read it after an error, and
     * -Werror=maybe-uninitialized stopped Release builds. */
    *out = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (s->p == s->end) {
            return reason_bad(s->reason, s->reason_len, "truncated: message ends inside field %s",
                              s->field);
        }
        uint8_t b = *s->p++;
        value |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            /* Zigzag, written to stay within unsigned arithmetic. */
            *out = (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
            return 0;
        }
    }
    return reason_bad(s->reason, s->reason_len, "bad varint in field %s: longer than 10 bytes",
                      s->field);
}

static int scan_skip(scan_t *s, int64_t n, const char *what)
{
    if (n < 0) {
        return reason_bad(s->reason, s->reason_len, "negative length %lld for %s in field %s",
                          (long long)n, what, s->field);
    }
    if ((uint64_t)n > (size_t)(s->end - s->p)) {
        return reason_bad(s->reason, s->reason_len,
                          "truncated: field %s declares a %lld-byte %s, %zu bytes left", s->field,
                          (long long)n, what, (size_t)(s->end - s->p));
    }
    s->p += n;
    return 0;
}

/* An enum or union index at s->p, checked against the n choices the schema has. */
static int scan_index(scan_t *s, int64_t n, int is_enum, int64_t *v)
{
    int rc = scan_long(s, v);
    if (rc != 0) {
        return rc;
    }
    if (*v < 0 || *v >= n) {
        return reason_bad(s->reason, s->reason_len, "bad %s index %lld in field %s (%lld %s)",
                          is_enum ? "enum" : "union", (long long)*v, s->field, (long long)n,
                          is_enum ? "symbols" : "branches");
    }
    return 0;
}

/* A length-prefixed string at s->p; out points into the message (not NUL-terminated). */
static int scan_string(scan_t *s, field_value_t *out)
{
    int64_t n;
    int rc = scan_long(s, &n);
    if (rc != 0) {
        return rc;
    }
    out->present = 1;
    out->str = (const char *)s->p;
    out->len = n > 0 ? (size_t)n : 0;
    return scan_skip(s, n, "string");
}

/* A float (width 4) or double (width 8) at s->p, little-endian on the wire, as a double.
 * inline: with the extra fields' reader as a third caller, GCC stopped inlining it into the
 * direct decoder, which cost the default schema's decode rate a call per double. */
static inline int scan_real(scan_t *s, int width, double *out)
{
    const uint8_t *b = s->p;
    uint64_t bits = 0;
    int rc = scan_skip(s, width, width == 8 ? "double" : "float");
    if (rc != 0) {
        return rc;
    }
    for (int k = width - 1; k >= 0; k--) {
        bits = bits << 8 | b[k];
    }
    if (width == 8) {
        memcpy(out, &bits, sizeof *out);
    } else {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        *out = f;
    }
    return 0;
}

static int scan_value(scan_t *s, avro_schema_t schema, int depth);

/* The item count of the next block of an array or map (0: the end), a negative count
 * carrying the block's byte size too. The count is checked against the bytes left: every item
 * of a sane schema takes at least a byte, which bounds loops by the message size instead of by
 * whatever count the message claims. */
static int scan_block_count(scan_t *s, int64_t *count)
{
    int64_t size;
    int rc;

    if ((rc = scan_long(s, count)) != 0) {
        return rc;
    }
    if (*count < 0) {
        if (*count == INT64_MIN) {
            return reason_bad(s->reason, s->reason_len, "bad block count in field %s", s->field);
        }
        *count = -*count;
        if ((rc = scan_long(s, &size)) != 0) {
            return rc;
        }
        if (size < 0) {
            return reason_bad(s->reason, s->reason_len, "negative block size %lld in field %s",
                              (long long)size, s->field);
        }
    }
    if ((uint64_t)*count > (size_t)(s->end - s->p)) {
        return reason_bad(s->reason, s->reason_len,
                          "truncated: field %s declares %lld items, %zu bytes left", s->field,
                          (long long)*count, (size_t)(s->end - s->p));
    }
    return 0;
}

/* Arrays and maps: blocks of items. */
static int scan_blocks(scan_t *s, avro_schema_t items, int is_map, int depth)
{
    int rc;
    for (;;) {
        int64_t count;
        if ((rc = scan_block_count(s, &count)) != 0) {
            return rc;
        }
        if (count == 0) {
            return 0;
        }
        for (int64_t i = 0; i < count; i++) {
            if (is_map) {
                int64_t key_len;
                if ((rc = scan_long(s, &key_len)) != 0 ||
                    (rc = scan_skip(s, key_len, "map key")) != 0) {
                    return rc;
                }
            }
            if ((rc = scan_value(s, items, depth + 1)) != 0) {
                return rc;
            }
        }
    }
}

/* A boolean: one byte, 0 or 1 and nothing else. */
static int scan_bool(scan_t *s, int64_t *out)
{
    const uint8_t *b = s->p;
    *out = 0; /* as scan_long: set on every path */
    int rc = scan_skip(s, 1, "boolean");
    if (rc != 0) {
        return rc;
    }
    if (*b > 1) {
        return reason_bad(s->reason, s->reason_len, "bad boolean 0x%02x in field %s", *b, s->field);
    }
    *out = *b;
    return 0;
}

/* The rules for text that the schema cannot express: PostgreSQL takes neither NUL bytes nor
 * invalid UTF-8 in text columns, and required strings are never empty. */
static int text_check(const char *field, const char *str, size_t len, int required, char *reason,
                      size_t reason_len)
{
    if (required && len == 0) {
        return reason_bad(reason, reason_len, "invalid field %s: empty", field);
    }
    if (memchr(str, '\0', len) != NULL) {
        return reason_bad(reason, reason_len, "invalid field %s: contains a NUL byte", field);
    }
    if (!utf8_valid(str, len)) {
        return reason_bad(reason, reason_len, "invalid field %s: not valid UTF-8", field);
    }
    return 0;
}

/* An array of strings, each checked as text_check does (items are never empty). out->str
 * marks where the array starts and out->i64 how many bytes it spans, so the record commit can
 * walk it again; out->len sums the items' lengths. */
static int scan_string_array(scan_t *s, field_value_t *out)
{
    const uint8_t *start = s->p;
    int rc;

    out->present = 1;
    out->len = 0;
    out->n_items = 0;
    for (;;) {
        int64_t count;
        if ((rc = scan_block_count(s, &count)) != 0) {
            return rc;
        }
        if (count == 0) {
            break;
        }
        for (int64_t i = 0; i < count; i++) {
            field_value_t item = {0};
            if ((rc = scan_string(s, &item)) != 0 ||
                (rc = text_check(s->field, item.str, item.len, 1, s->reason, s->reason_len)) != 0) {
                return rc;
            }
            out->len += item.len;
            out->n_items++;
        }
    }
    out->str = (const char *)start;
    out->i64 = s->p - start;
    return 0;
}

static int scan_record(scan_t *s, avro_schema_t schema, int depth)
{
    const char *outer = s->field;
    size_t count = avro_schema_record_size(schema);
    for (size_t i = 0; i < count; i++) {
        s->field = avro_schema_record_field_name(schema, (int)i);
        int rc = scan_value(s, avro_schema_record_field_get_by_index(schema, (int)i), depth + 1);
        if (rc != 0) {
            return rc;
        }
    }
    s->field = outer;
    return 0;
}

/* Returns 0 when the bytes at s->p hold one well-formed value of schema (and advances past
 * it), else INGEST_AVRO_BAD with the reason. */
static int scan_value(scan_t *s, avro_schema_t schema, int depth)
{
    int64_t v;
    int rc;

    if (depth > SCAN_DEPTH_MAX) {
        return reason_bad(s->reason, s->reason_len, "schema nesting deeper than %d at field %s",
                          SCAN_DEPTH_MAX, s->field);
    }
    switch (avro_typeof(schema)) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN:
        return scan_bool(s, &v);
    case AVRO_INT32:
        if ((rc = scan_long(s, &v)) != 0) {
            return rc;
        }
        if (v < INT32_MIN || v > INT32_MAX) {
            return reason_bad(s->reason, s->reason_len, "bad int in field %s: %lld out of range",
                              s->field, (long long)v);
        }
        return 0;
    case AVRO_INT64:
        return scan_long(s, &v);
    case AVRO_FLOAT:
        return scan_skip(s, 4, "float");
    case AVRO_DOUBLE:
        return scan_skip(s, 8, "double");
    case AVRO_STRING:
    case AVRO_BYTES:
        if ((rc = scan_long(s, &v)) != 0) {
            return rc;
        }
        return scan_skip(s, v, avro_typeof(schema) == AVRO_STRING ? "string" : "bytes");
    case AVRO_FIXED:
        return scan_skip(s, avro_schema_fixed_size(schema), "fixed");
    case AVRO_ENUM:
        return scan_index(s, avro_schema_enum_number_of_symbols(schema), 1, &v);
    case AVRO_UNION:
        if ((rc = scan_index(s, (int64_t)avro_schema_union_size(schema), 0, &v)) != 0) {
            return rc;
        }
        return scan_value(s, avro_schema_union_branch(schema, (int)v), depth + 1);
    case AVRO_ARRAY:
        return scan_blocks(s, avro_schema_array_items(schema), 0, depth);
    case AVRO_MAP:
        return scan_blocks(s, avro_schema_map_values(schema), 1, depth);
    case AVRO_RECORD:
        return scan_record(s, schema, depth);
    case AVRO_LINK:
        return scan_value(s, avro_schema_link_target(schema), depth + 1);
    }
    return reason_bad(s->reason, s->reason_len, "field %s has an unknown Avro type", s->field);
}

/* ---- schemas ---- */

/* Parses the .avsc at path into *out (owned by the caller). *missing says whether the file
 * did not exist, which callers report differently from a broken file. With text_out, the
 * file's text (NUL-terminated, owned by the caller) and its length come back too. */
static int schema_load(const char *path, avro_schema_t *out, int *missing, char **text_out,
                       size_t *len_out, char *err, size_t errlen)
{
    FILE *f = NULL;
    char *text = NULL;
    size_t n;

    *missing = 0;
    f = fopen(path, "rb");
    if (f == NULL) {
        *missing = (errno == ENOENT);
        text_set(err, errlen, "cannot open schema %s: %s", path, strerror(errno));
        goto err;
    }
    text = malloc(SCHEMA_FILE_MAX + 1);
    if (text == NULL) {
        text_set(err, errlen, "out of memory reading schema %s", path);
        goto err;
    }
    n = fread(text, 1, SCHEMA_FILE_MAX + 1, f);
    if (ferror(f)) {
        text_set(err, errlen, "cannot read schema %s: %s", path, strerror(errno));
        goto err;
    }
    if (n > SCHEMA_FILE_MAX) {
        text_set(err, errlen, "schema %s is larger than %d bytes", path, SCHEMA_FILE_MAX);
        goto err;
    }
    if (avro_schema_from_json_length(text, n, out) != 0) {
        text_set(err, errlen, "schema %s is not a valid Avro schema: %s", path, avro_strerror());
        goto err;
    }
    if (text_out != NULL) {
        text[n] = '\0';
        *text_out = text;
        *len_out = n;
    } else {
        free(text);
    }
    fclose(f);
    return 0;
err:
    free(text);
    if (f != NULL) {
        fclose(f);
    }
    return -1;
}

static int union_is_optional(avro_schema_t u, avro_type_t value_type, field_slot_t *slot)
{
    if (!is_avro_union(u) || avro_schema_union_size(u) != 2) {
        return 0;
    }
    for (int b = 0; b < 2; b++) {
        avro_schema_t branch = avro_schema_union_branch(u, b);
        avro_schema_t other = avro_schema_union_branch(u, 1 - b);
        if (is_avro_null(branch) && avro_typeof(other) == value_type) {
            slot->null_branch = b;
            slot->value_branch = 1 - b;
            return 1;
        }
    }
    return 0;
}

/* Finds each field vigil reads in the reader schema and checks its type, so decoding can
 * rely on the shape. Other fields are allowed: a BehaviorEvent's become its extra fields
 * (extras_init); the other kinds skip them, and their encoder leaves them at zero values. */
static int reader_schema_check(ingest_avro_t *dec, const char *path, char *err, size_t errlen)
{
    static const char *const expected[] = {
        [FIELD_STRING] = "\"string\"",
        [FIELD_ENUM] = "an enum",
        [FIELD_OPT_STRING] = "[\"null\",\"string\"]",
        [FIELD_OPT_DOUBLE] = "[\"null\",\"double\"]",
        [FIELD_OPT_ENUM] = "[\"null\", an enum]",
        [FIELD_TIME_MS] = "\"long\"",
        [FIELD_BOOL] = "\"boolean\"",
        [FIELD_STRING_ARRAY] = "an array of \"string\"",
    };
    const record_type_t *t = dec->type;

    if (!is_avro_record(dec->reader_schema)) {
        text_set(err, errlen, "reader schema %s is not a record; use %s.avsc", path, t->name);
        return -1;
    }
    for (int i = 0; i < t->n_fields; i++) {
        const field_spec_t *spec = &t->fields[i];
        field_slot_t *slot = &dec->slots[i];
        int ok = 0;

        slot->index = avro_schema_record_field_get_index(dec->reader_schema, spec->name);
        if (slot->index < 0) {
            text_set(err, errlen, "reader schema %s has no field %s; use %s.avsc", path, spec->name,
                     t->name);
            return -1;
        }
        avro_schema_t type = avro_schema_record_field_get_by_index(dec->reader_schema, slot->index);
        switch (spec->kind) {
        case FIELD_STRING:
            ok = is_avro_string(type);
            break;
        case FIELD_ENUM:
            ok = is_avro_enum(type);
            slot->enum_schema = type;
            break;
        case FIELD_OPT_STRING:
            ok = union_is_optional(type, AVRO_STRING, slot);
            break;
        case FIELD_OPT_DOUBLE:
            ok = union_is_optional(type, AVRO_DOUBLE, slot);
            break;
        case FIELD_OPT_ENUM:
            ok = union_is_optional(type, AVRO_ENUM, slot);
            if (ok) {
                slot->enum_schema = avro_schema_union_branch(type, slot->value_branch);
            }
            break;
        case FIELD_TIME_MS:
            ok = is_avro_int64(type);
            break;
        case FIELD_BOOL:
            ok = is_avro_boolean(type);
            break;
        case FIELD_STRING_ARRAY:
            ok = is_avro_array(type) && is_avro_string(avro_schema_array_items(type));
            break;
        }
        if (!ok) {
            text_set(err, errlen, "reader schema %s: field %s must be %s", path, spec->name,
                     expected[spec->kind]);
            return -1;
        }
    }
    dec->plan_len = avro_schema_record_size(dec->reader_schema);
    dec->plan = malloc(sizeof *dec->plan * (dec->plan_len ? dec->plan_len : 1));
    if (dec->plan == NULL) {
        text_set(err, errlen, "out of memory planning the decoder for %s", path);
        return -1;
    }
    for (size_t j = 0; j < dec->plan_len; j++) {
        dec->plan[j].field = -1;
        dec->plan[j].extra = -1;
    }
    for (int i = 0; i < t->n_fields; i++) {
        dec->plan[dec->slots[i].index].field = i;
    }
    return 0;
}

/* ---- extra fields: a user's columns in a BehaviorEvent reader schema ---- */

/* Follows named-type links to the type itself. */
static avro_schema_t schema_deref(avro_schema_t t)
{
    for (int i = 0; t != NULL && is_avro_link(t) && i < SCAN_DEPTH_MAX; i++) {
        t = avro_schema_link_target(t);
    }
    return t;
}

/* The types an extra field may hold (alone or next to null), and what the record gets. */
static int extra_type_of(avro_type_t t, ingest_extra_type_t *out)
{
    switch (t) {
    case AVRO_INT32:
    case AVRO_INT64:
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
    case AVRO_BOOLEAN:
        *out = INGEST_EXTRA_NUMBER;
        return 1;
    case AVRO_STRING:
    case AVRO_ENUM:
        *out = INGEST_EXTRA_STRING;
        return 1;
    default:
        return 0;
    }
}

/* A few words on a type for an error message, e.g. "a record (Address)". */
static void type_describe(avro_schema_t t, char *buf, size_t len)
{
    char a[64], b[64];

    t = schema_deref(t);
    switch (avro_typeof(t)) {
    case AVRO_RECORD:
        text_set(buf, len, "a record (%s)", avro_schema_name(t));
        return;
    case AVRO_ENUM:
        text_set(buf, len, "an enum (%s)", avro_schema_name(t));
        return;
    case AVRO_FIXED:
        text_set(buf, len, "a fixed (%s)", avro_schema_name(t));
        return;
    case AVRO_ARRAY:
        text_set(buf, len, "an array");
        return;
    case AVRO_MAP:
        text_set(buf, len, "a map");
        return;
    case AVRO_UNION:
        if (avro_schema_union_size(t) == 2) {
            type_describe(avro_schema_union_branch(t, 0), a, sizeof a);
            type_describe(avro_schema_union_branch(t, 1), b, sizeof b);
            text_set(buf, len, "a union of %s and %s", a, b);
        } else {
            text_set(buf, len, "a union of %zu types", avro_schema_union_size(t));
        }
        return;
    default:
        text_set(buf, len, "%s", t != NULL ? avro_schema_type_name(t) : "(unknown)");
        return;
    }
}

/* Sets x's type from the reader field's type t, or returns 0 for a type an extra field cannot
 * have. */
static int extra_classify(extra_field_t *x, avro_schema_t t)
{
    t = schema_deref(t);
    if (t != NULL && is_avro_union(t)) {
        if (avro_schema_union_size(t) != 2) {
            return 0;
        }
        for (int b = 0; b < 2; b++) {
            avro_schema_t other = schema_deref(avro_schema_union_branch(t, 1 - b));
            if (is_avro_null(schema_deref(avro_schema_union_branch(t, b))) && other != NULL &&
                extra_type_of(avro_typeof(other), &x->type)) {
                x->optional = 1;
                x->null_branch = b;
                x->value_branch = 1 - b;
                x->value_schema = other;
                x->value_type = avro_typeof(other);
                return 1;
            }
        }
        return 0;
    }
    if (t == NULL || !extra_type_of(avro_typeof(t), &x->type)) {
        return 0;
    }
    x->value_schema = t;
    x->value_type = avro_typeof(t);
    return 1;
}

/* The schema's JSON text, read for what Avro C keeps no trace of: field defaults. Avro C has
 * parsed the same text already, so it is valid JSON; every read is still bounded, and anything
 * unexpected gives up. */
static int extra_default_wrong(const extra_field_t *x, const char *path, char *err, size_t errlen)
{
    text_set(err, errlen, "reader schema %s: the default of extra field %s does not fit its type",
             path, x->name);
    return -1;
}

/* Reads the default at j->p into x, checked against x's type. Returns 0, or -1 with err. */
static int extra_default(extra_field_t *x, ingest_json_t *j, const char *path, char *err,
                         size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    ingest_json_space(j);
    x->has_default = 1;
    x->def.present = 1;
    if (ingest_json_word(j, "null")) {
        if (!x->optional) {
            goto wrong;
        }
        x->def.present = 0;
        return 0;
    }
    if (ingest_json_word(j, "true")) {
        x->def.num = 1.0;
        return x->value_type == AVRO_BOOLEAN ? 0 : extra_default_wrong(x, path, err, errlen);
    }
    if (ingest_json_word(j, "false")) {
        x->def.num = 0.0;
        return x->value_type == AVRO_BOOLEAN ? 0 : extra_default_wrong(x, path, err, errlen);
    }
    if (j->p < j->end && *j->p == '"') {
        if ((rc = ingest_json_string(j, &text, &len)) != 0) {
            text_set(err, errlen, "%s reading the default of extra field %s in %s",
                     rc == -2 ? "out of memory" : "malformed JSON", x->name, path);
            return -1;
        }
        if (x->value_type == AVRO_STRING) {
            /* text_check rather than utf8_valid itself: a second caller would cost the decoders
             * its inlining into text_check. */
            if (text_check(x->name, text, len, 0, NULL, 0) != 0) {
                free(text);
                goto wrong;
            }
            x->def_text = text;
            x->def.str = text;
            x->def.len = len;
            return 0;
        }
        if (x->value_type == AVRO_ENUM) {
            int index = avro_schema_enum_get_by_name(x->value_schema, text);
            free(text);
            if (index < 0) {
                goto wrong;
            }
            x->def.str = avro_schema_enum_get(x->value_schema, index);
            x->def.len = strlen(x->def.str);
            return 0;
        }
        free(text);
        goto wrong;
    }
    if (j->p < j->end && (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))) {
        char num[64];
        const char *start = j->p;
        char *stop;
        while (j->p < j->end && strchr("+-.0123456789eE", *j->p) != NULL && *j->p != '\0') {
            j->p++;
        }
        if ((size_t)(j->p - start) >= sizeof num || x->type != INGEST_EXTRA_NUMBER ||
            x->value_type == AVRO_BOOLEAN) {
            goto wrong;
        }
        memcpy(num, start, (size_t)(j->p - start));
        num[j->p - start] = '\0';
        x->def.num = strtod(num, &stop);
        if (*stop != '\0' || !isfinite(x->def.num)) {
            goto wrong;
        }
        if ((x->value_type == AVRO_INT32 || x->value_type == AVRO_INT64) &&
            x->def.num != floor(x->def.num)) {
            goto wrong;
        }
        if (x->value_type == AVRO_INT32 && (x->def.num < INT32_MIN || x->def.num > INT32_MAX)) {
            goto wrong;
        }
        return 0;
    }
wrong:
    return extra_default_wrong(x, path, err, errlen);
}

/* Finds the defaults of the extra fields in the reader schema's text: the top-level
 * "fields" array, each field's "name" and "default". */
static int extra_defaults(ingest_avro_t *dec, const char *text, size_t len, const char *path,
                          char *err, size_t errlen)
{
    ingest_json_t j = {text, text + len};
    char *key = NULL, *name = NULL;
    size_t key_len, name_len;
    int rc;

    ingest_json_space(&j);
    if (j.p == j.end || *j.p++ != '{') {
        goto malformed;
    }
    for (;;) {
        ingest_json_space(&j);
        if ((rc = ingest_json_string(&j, &key, &key_len)) != 0) {
            goto fail;
        }
        ingest_json_space(&j);
        if (j.p == j.end || *j.p++ != ':') {
            goto malformed;
        }
        ingest_json_space(&j);
        if (strcmp(key, "fields") != 0) {
            if (ingest_json_skip(&j, 1) != 0) {
                goto malformed;
            }
        } else {
            if (j.p == j.end || *j.p++ != '[') {
                goto malformed;
            }
            ingest_json_space(&j);
            while (j.p < j.end && *j.p != ']') {
                const char *def_at = NULL;
                ingest_json_space(&j);
                if (j.p == j.end || *j.p++ != '{') {
                    goto malformed;
                }
                ingest_json_space(&j);
                while (j.p < j.end && *j.p != '}') {
                    char *fkey = NULL;
                    size_t fkey_len;
                    ingest_json_space(&j);
                    if ((rc = ingest_json_string(&j, &fkey, &fkey_len)) != 0) {
                        goto fail;
                    }
                    ingest_json_space(&j);
                    if (j.p == j.end || *j.p++ != ':') {
                        free(fkey);
                        goto malformed;
                    }
                    ingest_json_space(&j);
                    if (strcmp(fkey, "name") == 0 && name == NULL) {
                        rc = ingest_json_string(&j, &name, &name_len);
                    } else {
                        if (strcmp(fkey, "default") == 0) {
                            def_at = j.p;
                        }
                        rc = ingest_json_skip(&j, 2);
                    }
                    free(fkey);
                    if (rc != 0) {
                        goto fail;
                    }
                    ingest_json_space(&j);
                    if (j.p < j.end && *j.p == ',') {
                        j.p++;
                        ingest_json_space(&j);
                    }
                }
                if (j.p == j.end) {
                    goto malformed;
                }
                j.p++; /* the '}' */
                for (size_t e = 0; name != NULL && def_at != NULL && e < dec->n_extra; e++) {
                    if (strcmp(dec->extras[e].name, name) == 0) {
                        ingest_json_t at = {def_at, j.end};
                        if (extra_default(&dec->extras[e], &at, path, err, errlen) != 0) {
                            goto err;
                        }
                    }
                }
                free(name);
                name = NULL;
                ingest_json_space(&j);
                if (j.p < j.end && *j.p == ',') {
                    j.p++;
                    ingest_json_space(&j);
                }
            }
            if (j.p == j.end) {
                goto malformed;
            }
            j.p++; /* the ']' */
        }
        free(key);
        key = NULL;
        ingest_json_space(&j);
        if (j.p == j.end) {
            goto malformed;
        }
        char c = *j.p++;
        if (c == '}') {
            return 0;
        }
        if (c != ',') {
            goto malformed;
        }
    }
fail:
    if (rc == -2) {
        text_set(err, errlen, "out of memory reading the field defaults of %s", path);
        goto err;
    }
malformed:
    text_set(err, errlen, "cannot read the field defaults of reader schema %s: unexpected JSON",
             path);
err:
    free(key);
    free(name);
    return -1;
}

/* Makes the reader fields that are not the kind's own into extra fields (BehaviorEvent only;
 * the other kinds read their own fields and skip the rest). text: the reader schema's JSON,
 * for the defaults. */
static int extras_init(ingest_avro_t *dec, const char *text, size_t len, const char *path,
                       char *err, size_t errlen)
{
    size_t n = 0, e = 0;

    if (dec->kind != INGEST_KIND_EVENT) {
        return 0;
    }
    for (size_t j = 0; j < dec->plan_len; j++) {
        n += dec->plan[j].field < 0;
    }
    if (n == 0) {
        return 0;
    }
    dec->extras = calloc(n, sizeof *dec->extras);
    dec->extra_vals = calloc(n, sizeof *dec->extra_vals);
    if (dec->extras == NULL || dec->extra_vals == NULL) {
        text_set(err, errlen, "out of memory planning the extra fields of %s", path);
        return -1;
    }
    dec->n_extra = n;
    for (size_t j = 0; j < dec->plan_len; j++) {
        if (dec->plan[j].field >= 0) {
            continue;
        }
        extra_field_t *x = &dec->extras[e];
        avro_schema_t t = avro_schema_record_field_get_by_index(dec->reader_schema, (int)j);
        x->name = avro_schema_record_field_name(dec->reader_schema, (int)j);
        x->index = (int)j;
        x->def.num = NAN;
        if (!extra_classify(x, t)) {
            char what[160];
            type_describe(t, what, sizeof what);
            text_set(err, errlen,
                     "reader schema %s: extra field %s is %s; an extra field must be int, long, "
                     "float, double, boolean, string or an enum, alone or in a union with null",
                     path, x->name, what);
            return -1;
        }
        dec->plan[j].extra = (int)e;
        e++;
    }
    return extra_defaults(dec, text, len, path, err, errlen);
}

static schema_miss_t *miss_find(ingest_avro_t *dec, uint32_t id)
{
    for (size_t i = 0; i < MISS_SLOTS; i++) {
        if (dec->misses[i].used && dec->misses[i].id == id) {
            return &dec->misses[i];
        }
    }
    return NULL;
}

static void miss_remember(ingest_avro_t *dec, uint32_t id, const char *reason)
{
    schema_miss_t *miss = miss_find(dec, id);
    int64_t now;
    if (clock_now_ms(&now) != 0) {
        return; /* without a clock, looking the file up again each time is the safe choice */
    }
    if (miss == NULL) {
        miss = &dec->misses[dec->next_miss];
        dec->next_miss = (dec->next_miss + 1) % MISS_SLOTS;
    }
    miss->used = 1;
    miss->id = id;
    miss->at_ms = now;
    snprintf(miss->reason, sizeof miss->reason, "%s", reason);
}

/* Whether a value of writer type t (not a union) can be read as kind, per Avro's resolution
 * rules: same type, int -> long, int/long/float -> double, string into ["null","string"], an
 * enum into an enum (symbols are matched by name when a message uses one). */
static int writer_type_fits(field_kind_t kind, avro_schema_t t)
{
    switch (avro_typeof(t)) {
    case AVRO_STRING:
        return kind == FIELD_STRING || kind == FIELD_OPT_STRING;
    case AVRO_ENUM:
        return kind == FIELD_ENUM || kind == FIELD_OPT_ENUM;
    case AVRO_DOUBLE:
    case AVRO_FLOAT:
        return kind == FIELD_OPT_DOUBLE;
    case AVRO_INT32:
    case AVRO_INT64:
        return kind == FIELD_TIME_MS || kind == FIELD_OPT_DOUBLE;
    case AVRO_BOOLEAN:
        return kind == FIELD_BOOL;
    case AVRO_ARRAY:
        return kind == FIELD_STRING_ARRAY &&
               is_avro_string(schema_deref(avro_schema_array_items(t)));
    case AVRO_NULL:
        return kind == FIELD_OPT_STRING || kind == FIELD_OPT_DOUBLE || kind == FIELD_OPT_ENUM;
    default:
        return 0;
    }
}

/* Whether a reader field the writer lacks has a default to take: null for the optional kinds,
 * the empty array for string arrays; the others have none. */
static int field_has_default(field_kind_t kind)
{
    return kind == FIELD_OPT_STRING || kind == FIELD_OPT_DOUBLE || kind == FIELD_OPT_ENUM ||
           kind == FIELD_STRING_ARRAY;
}

/* Whether a value of writer type t (not a union) can be read as extra field x, per Avro's
 * resolution rules: int -> long -> float -> double, the same type otherwise, null into a union
 * with null, an enum into an enum (symbols matched by name when a message uses one). */
static int extra_type_fits(const extra_field_t *x, avro_schema_t t)
{
    avro_type_t w = avro_typeof(t);
    if (w == AVRO_NULL) {
        return x->optional;
    }
    switch (x->value_type) {
    case AVRO_DOUBLE:
        return w == AVRO_INT32 || w == AVRO_INT64 || w == AVRO_FLOAT || w == AVRO_DOUBLE;
    case AVRO_FLOAT:
        return w == AVRO_INT32 || w == AVRO_INT64 || w == AVRO_FLOAT;
    case AVRO_INT64:
        return w == AVRO_INT32 || w == AVRO_INT64;
    default:
        return w == x->value_type;
    }
}

/* Builds entry->fields for a writer schema that differs from the reader's, or explains in why
 * (why_len bytes) what makes it incompatible. Returns 0, -1 incompatible, -2 out of memory. */
static int writer_plan(const ingest_avro_t *dec, writer_entry_t *entry, char *why, size_t why_len)
{
    const record_type_t *t = dec->type;
    avro_schema_t w = schema_deref(entry->schema);
    size_t n;
    int seen[FIELDS_MAX] = {0};

    if (w == NULL || !is_avro_record(w)) {
        text_set(why, why_len, "the writer schema is not a record");
        return -1;
    }
    n = avro_schema_record_size(w);
    entry->fields = calloc(n > 0 ? n : 1, sizeof *entry->fields);
    if (entry->fields == NULL) {
        return -2;
    }
    entry->n_fields = n;
    for (size_t j = 0; j < n; j++) {
        writer_field_t *f = &entry->fields[j];
        f->name = avro_schema_record_field_name(w, (int)j);
        f->schema = schema_deref(avro_schema_record_field_get_by_index(w, (int)j));
        f->spec = -1;
        f->extra = -1;
        for (int i = 0; i < t->n_fields; i++) {
            if (strcmp(t->fields[i].name, f->name) == 0) {
                f->spec = i;
            }
        }
        for (size_t e = 0; f->spec < 0 && e < dec->n_extra; e++) {
            if (strcmp(dec->extras[e].name, f->name) == 0) {
                f->extra = (int)e;
            }
        }
        if (f->extra >= 0) {
            const extra_field_t *x = &dec->extras[f->extra];
            int fits = 0;
            if (is_avro_union(f->schema)) {
                for (size_t b = 0; b < avro_schema_union_size(f->schema); b++) {
                    fits |= extra_type_fits(
                        x, schema_deref(avro_schema_union_branch(f->schema, (int)b)));
                }
            } else {
                fits = extra_type_fits(x, f->schema);
            }
            if (!fits) {
                text_set(why, why_len,
                         "field %s is %s in the writer, which cannot be read as the reader's %s",
                         f->name, avro_schema_type_name(f->schema),
                         avro_schema_type_name(x->value_schema));
                return -1;
            }
            continue;
        }
        if (f->spec < 0) {
            continue;
        }
        /* A union fits when one of its branches does; a branch that does not fit is refused
         * when a message uses it. */
        field_kind_t kind = t->fields[f->spec].kind;
        int fits = 0;
        if (is_avro_union(f->schema)) {
            for (size_t b = 0; b < avro_schema_union_size(f->schema); b++) {
                fits |= writer_type_fits(kind,
                                         schema_deref(avro_schema_union_branch(f->schema, (int)b)));
            }
        } else {
            fits = writer_type_fits(kind, f->schema);
        }
        if (!fits) {
            text_set(why, why_len, "field %s is %s in the writer, which cannot be read as %s",
                     f->name, avro_schema_type_name(f->schema),
                     kind == FIELD_ENUM || kind == FIELD_OPT_ENUM ? "an enum"
                                                                  : "the reader's type");
            return -1;
        }
        seen[f->spec] = 1;
    }
    for (int i = 0; i < t->n_fields; i++) {
        if (!seen[i] && !field_has_default(t->fields[i].kind)) {
            text_set(why, why_len, "the writer has no field %s, which the reader requires",
                     t->fields[i].name);
            return -1;
        }
    }
    for (size_t e = 0; e < dec->n_extra; e++) {
        int found = 0;
        for (size_t j = 0; j < n && !found; j++) {
            found = entry->fields[j].extra == (int)e;
        }
        if (!found && !dec->extras[e].has_default) {
            text_set(why, why_len,
                     "the writer has no field %s, which the reader requires (it has no default)",
                     dec->extras[e].name);
            return -1;
        }
    }
    return 0;
}

/* Loads, checks and caches the writer schema of id. Returns INGEST_AVRO_OK with *out set,
 * INGEST_AVRO_BAD when no usable schema exists for id, INGEST_AVRO_ERR when out of memory. */
static int writer_load(ingest_avro_t *dec, uint32_t id, writer_entry_t **out, char *reason,
                       size_t reason_len)
{
    writer_entry_t entry = {.id = id};
    char path[PATH_MAX];
    char why[REASON_MAX];
    int missing;
    int rc = INGEST_AVRO_ERR;

    if (dec->registry != NULL) {
        char *text = NULL;
        int fr = ingest_registry_fetch(dec->registry, id, &text, why, sizeof why);
        snprintf(path, sizeof path, "registry id %u", (unsigned)id);
        if (fr == INGEST_REGISTRY_UNAVAILABLE) {
            /* Not the message's fault and not to be remembered as a miss: decode it again. */
            text_set(reason, reason_len, "schema id %u: %s", (unsigned)id, why);
            return INGEST_AVRO_RETRY;
        }
        if (fr == INGEST_REGISTRY_NOT_FOUND) {
            char said[REASON_MAX];
            text_set(said, sizeof said, "%s", why);
            text_set(why, sizeof why, "unknown schema id %u (%s)", (unsigned)id, said);
            rc = INGEST_AVRO_BAD;
            goto err;
        }
        if (avro_schema_from_json_length(text, strlen(text), &entry.schema) != 0) {
            text_set(why, sizeof why,
                     "schema id %u from the registry is not a valid Avro schema: %s", (unsigned)id,
                     avro_strerror());
            free(text);
            rc = INGEST_AVRO_BAD;
            goto err;
        }
        free(text);
    } else {
        if (snprintf(path, sizeof path, "%s/%u.avsc", dec->schema_dir, (unsigned)id) >=
            (int)sizeof path) {
            text_set(why, sizeof why, "schema id %u: schema dir path too long", (unsigned)id);
            rc = INGEST_AVRO_BAD;
            goto err;
        }
        if (schema_load(path, &entry.schema, &missing, NULL, NULL, why, sizeof why) != 0) {
            if (missing) {
                text_set(why, sizeof why, "unknown schema id %u (no %s)", (unsigned)id, path);
            }
            rc = INGEST_AVRO_BAD;
            goto err;
        }
    }
    if (!avro_schema_equal(entry.schema, dec->reader_schema)) {
        char detail[REASON_MAX];
        int pr = writer_plan(dec, &entry, detail, sizeof detail);
        if (pr == -2) {
            text_set(reason, reason_len, "out of memory planning schema id %u", (unsigned)id);
            goto err;
        }
        if (pr != 0) {
            text_set(why, sizeof why, "schema id %u (%s) does not resolve to %s: %s", (unsigned)id,
                     path, avro_schema_name(dec->reader_schema), detail);
            rc = INGEST_AVRO_BAD;
            goto err;
        }
    }
    if (dec->writer_count == dec->writer_cap) {
        size_t cap = dec->writer_cap ? dec->writer_cap * 2 : 4;
        writer_entry_t *grown = realloc(dec->writers, cap * sizeof *grown);
        if (grown == NULL) {
            text_set(reason, reason_len, "out of memory caching schema id %u", (unsigned)id);
            goto err;
        }
        dec->writers = grown;
        dec->writer_cap = cap;
    }
    /* Ownership of the schema and the plan moves into the cache. */
    dec->writers[dec->writer_count] = entry;
    *out = &dec->writers[dec->writer_count];
    dec->writer_count++;
    return INGEST_AVRO_OK;

err:
    if (rc == INGEST_AVRO_BAD) {
        /* No usable schema for id: a message problem, remembered so the file is not
         * reopened for every such message. */
        miss_remember(dec, id, why);
        reason_bad(reason, reason_len, "%s", why);
    }
    free(entry.fields);
    if (entry.schema != NULL) {
        avro_schema_decref(entry.schema);
    }
    return rc;
}

/* The cached writer for id, loading it on first use; a recent miss answers from memory. */
static int writer_lookup(ingest_avro_t *dec, uint32_t id, writer_entry_t **out, char *reason,
                         size_t reason_len)
{
    int64_t now;
    for (size_t i = 0; i < dec->writer_count; i++) {
        if (dec->writers[i].id == id) {
            *out = &dec->writers[i];
            return INGEST_AVRO_OK;
        }
    }
    schema_miss_t *miss = miss_find(dec, id);
    if (miss != NULL && clock_now_ms(&now) == 0 && now - miss->at_ms < MISS_RETRY_MS) {
        return reason_bad(reason, reason_len, "%s", miss->reason);
    }
    return writer_load(dec, id, out, reason, reason_len);
}

/* ---- public API ---- */

int ingest_avro_use_registry(ingest_avro_t *dec, const ingest_registry_options_t *o, char *err,
                             size_t errlen)
{
    ingest_registry_t *r = ingest_registry_new(o, err, errlen);
    if (r == NULL) {
        return -1;
    }
    ingest_registry_free(dec->registry);
    dec->registry = r;
    return 0;
}

int ingest_format_parse(const char *s, ingest_format_t *out)
{
    if (s != NULL && strcmp(s, "confluent") == 0) {
        *out = INGEST_FORMAT_CONFLUENT;
        return 0;
    }
    if (s != NULL && strcmp(s, "plain") == 0) {
        *out = INGEST_FORMAT_PLAIN;
        return 0;
    }
    return -1;
}

void ingest_record_clear(ingest_record_t *rec)
{
    free(rec->buf);
    free(rec->list);
    /* Zero the string pointers too: they pointed into the buffers just freed. */
    memset(rec, 0, sizeof *rec);
}

const char *ingest_kind_schema_name(ingest_kind_t kind)
{
    return kind >= 0 && kind < INGEST_KIND_COUNT ? RECORD_TYPES[kind].name : "(unknown)";
}

int ingest_kind_parse(const char *s, ingest_kind_t *out)
{
    static const char *const names[INGEST_KIND_COUNT] = {
        [INGEST_KIND_EVENT] = "events",
        [INGEST_KIND_ARTICLE] = "news",
        [INGEST_KIND_FRAUD_LABEL] = "fraud-labels",
        [INGEST_KIND_NEWS_LABEL] = "news-labels",
    };
    for (int k = 0; s != NULL && k < INGEST_KIND_COUNT; k++) {
        if (strcmp(s, names[k]) == 0 || strcmp(s, RECORD_TYPES[k].name) == 0) {
            *out = (ingest_kind_t)k;
            return 0;
        }
    }
    return -1;
}

ingest_avro_t *ingest_avro_new(ingest_kind_t kind, ingest_format_t format,
                               const char *reader_schema_path, const char *schema_dir, char *err,
                               size_t errlen)
{
    ingest_avro_t *dec = NULL;
    char *text = NULL;
    size_t text_len = 0;
    int missing;

    if (kind < 0 || kind >= INGEST_KIND_COUNT) {
        text_set(err, errlen, "unknown record kind %d", (int)kind);
        goto err;
    }
    if (format != INGEST_FORMAT_CONFLUENT && format != INGEST_FORMAT_PLAIN) {
        text_set(err, errlen, "unknown Avro wire format %d", (int)format);
        goto err;
    }
    if (format == INGEST_FORMAT_CONFLUENT && schema_dir == NULL) {
        text_set(err, errlen, "confluent format needs a schema dir holding <id>.avsc files");
        goto err;
    }
    dec = calloc(1, sizeof *dec);
    if (dec == NULL) {
        text_set(err, errlen, "out of memory creating the Avro decoder");
        goto err;
    }
    dec->kind = kind;
    dec->type = &RECORD_TYPES[kind];
    dec->format = format;
    if (schema_dir != NULL && (dec->schema_dir = strdup(schema_dir)) == NULL) {
        text_set(err, errlen, "out of memory creating the Avro decoder");
        goto err;
    }
    if (schema_load(reader_schema_path, &dec->reader_schema, &missing, &text, &text_len, err,
                    errlen) != 0) {
        goto err;
    }
    if (reader_schema_check(dec, reader_schema_path, err, errlen) != 0 ||
        extras_init(dec, text, text_len, reader_schema_path, err, errlen) != 0) {
        goto err;
    }
    free(text);
    text = NULL;
    dec->reader_class = avro_generic_class_from_schema(dec->reader_schema);
    if (dec->reader_class == NULL) {
        text_set(err, errlen, "cannot build an Avro value class for %s: %s", reader_schema_path,
                 avro_strerror());
        goto err;
    }
    if (avro_generic_value_new(dec->reader_class, &dec->value) != 0) {
        text_set(err, errlen, "cannot create an Avro value for %s: %s", reader_schema_path,
                 avro_strerror());
        goto err;
    }
    /* Pointed at each output buffer by the encoder; it never owns one. */
    dec->writer = avro_writer_memory("", 0);
    if (dec->writer == NULL) {
        text_set(err, errlen, "out of memory creating an Avro memory writer");
        goto err;
    }
    return dec;
err:
    free(text);
    ingest_avro_free(dec);
    return NULL;
}

void ingest_avro_free(ingest_avro_t *dec)
{
    if (dec == NULL) {
        return;
    }
    for (size_t i = 0; i < dec->writer_count; i++) {
        free(dec->writers[i].fields);
        avro_schema_decref(dec->writers[i].schema);
    }
    free(dec->writers);
    if (dec->value.iface != NULL) {
        avro_value_decref(&dec->value);
    }
    if (dec->reader_class != NULL) {
        avro_value_iface_decref(dec->reader_class);
    }
    if (dec->reader_schema != NULL) {
        avro_schema_decref(dec->reader_schema);
    }
    if (dec->writer != NULL) {
        avro_writer_free(dec->writer);
    }
    free(dec->plan);
    for (size_t e = 0; e < dec->n_extra; e++) {
        free(dec->extras[e].def_text);
    }
    free(dec->extras);
    free(dec->extra_vals);
    ingest_registry_free(dec->registry);
    free(dec->schema_dir);
    free(dec);
}

/* The rules the schema cannot express. */
static int field_check(const field_spec_t *spec, const field_value_t *v, char *reason,
                       size_t reason_len)
{
    if (!v->present) {
        return INGEST_AVRO_OK;
    }
    switch (spec->kind) {
    case FIELD_STRING:
    case FIELD_OPT_STRING:
        return text_check(spec->name, v->str, v->len, spec->kind == FIELD_STRING, reason,
                          reason_len);
    case FIELD_OPT_DOUBLE:
        if (!isfinite(v->num)) {
            return reason_bad(reason, reason_len, "invalid field %s: not a finite number",
                              spec->name);
        }
        return INGEST_AVRO_OK;
    case FIELD_TIME_MS:
        if (v->i64 < EVENT_TIME_MIN_MS || v->i64 >= EVENT_TIME_END_MS) {
            return reason_bad(reason, reason_len,
                              "invalid field %s: %lld ms is outside years 1970..2200", spec->name,
                              (long long)v->i64);
        }
        return INGEST_AVRO_OK;
    case FIELD_ENUM:
    case FIELD_OPT_ENUM:
    case FIELD_BOOL:
    case FIELD_STRING_ARRAY: /* items checked as they were scanned */
        return INGEST_AVRO_OK;
    }
    return INGEST_AVRO_OK;
}

static int news_label_check(const field_value_t *vals, char *reason, size_t reason_len)
{
    if (!vals[F_NL_SENTIMENT].present && !vals[F_NL_TOPIC].present) {
        return reason_bad(reason, reason_len,
                          "invalid record: a NewsLabel needs a sentiment, a topic or both");
    }
    return INGEST_AVRO_OK;
}

/* Makes sure rec->buf holds need bytes and rec->list n pointers. */
static int record_reserve(ingest_record_t *rec, size_t need, size_t n, char *reason,
                          size_t reason_len)
{
    if (need > rec->buf_cap) {
        size_t cap = rec->buf_cap ? rec->buf_cap : 256;
        while (cap < need) {
            cap *= 2;
        }
        char *grown = realloc(rec->buf, cap);
        if (grown == NULL) {
            text_set(reason, reason_len, "out of memory growing the record buffer to %zu", cap);
            return INGEST_AVRO_ERR;
        }
        rec->buf = grown;
        rec->buf_cap = cap;
    }
    if (n > rec->list_cap) {
        size_t cap = rec->list_cap ? rec->list_cap : 16;
        while (cap < n) {
            cap *= 2;
        }
        const char **grown = realloc(rec->list, cap * sizeof *grown);
        if (grown == NULL) {
            text_set(reason, reason_len, "out of memory growing the record's list to %zu", cap);
            return INGEST_AVRO_ERR;
        }
        rec->list = grown;
        rec->list_cap = cap;
    }
    return INGEST_AVRO_OK;
}

/* Whether optional double i counts as present: it and every field sharing its "has" flag
 * (BehaviorEvent's has_geo needs both latitude and longitude). Without one, it reads 0. */
static int double_present(const record_type_t *t, const field_value_t *vals, int i)
{
    size_t flag = t->fields[i].aux_offset;
    int has = vals[i].present;
    for (int j = 0; flag != 0 && j < t->n_fields; j++) {
        if (t->fields[j].kind == FIELD_OPT_DOUBLE && t->fields[j].aux_offset == flag) {
            has &= vals[j].present;
        }
    }
    return has;
}

/* Commits the extra fields' values into rec, whose buffers record_commit has sized: the
 * numbers at the start of rec->buf, the strings from pos on, their pointers in rec->list from
 * list_pos on. */
static void record_commit_extras(const ingest_avro_t *dec, ingest_record_t *rec, size_t pos,
                                 size_t list_pos)
{
    double *nums = NULL;
    const char **strs = NULL;

    if (dec->n_extra > 0) {
        nums = (double *)(void *)rec->buf;
        strs = rec->list + list_pos;
    }
    for (size_t e = 0; e < dec->n_extra; e++) {
        const field_value_t *v = &dec->extra_vals[e];
        nums[e] = NAN;
        strs[e] = NULL;
        if (!v->present) {
            continue;
        }
        if (dec->extras[e].type == INGEST_EXTRA_NUMBER) {
            nums[e] = v->num;
        } else {
            memcpy(rec->buf + pos, v->str, v->len);
            rec->buf[pos + v->len] = '\0';
            strs[e] = rec->buf + pos;
            pos += v->len + 1;
        }
    }
    rec->event.n_extra = dec->n_extra;
    rec->event.extra_num = nums;
    rec->event.extra_str = strs;
}

/* Commits checked field values into rec. Strings are copied into rec->buf, so vals may point
 * into the message or the schema (enum symbols). */
static int record_commit(const ingest_avro_t *dec, ingest_record_t *rec, const field_value_t *vals,
                         char *reason, size_t reason_len)
{
    const record_type_t *t = dec->type;
    size_t need = 0, n_list = 0, pos = 0, list_pos = 0;
    int rc;

    if (dec->n_extra > 0) {
        /* The extra fields' numbers lead rec->buf, where malloc's alignment suits doubles. */
        pos = dec->n_extra * sizeof(double);
        need = pos;
        n_list = dec->n_extra;
        for (size_t e = 0; e < dec->n_extra; e++) {
            if (dec->extra_vals[e].present && dec->extras[e].type == INGEST_EXTRA_STRING) {
                need += dec->extra_vals[e].len + 1;
            }
        }
    }
    for (int i = 0; i < t->n_fields; i++) {
        if (vals[i].present && vals[i].str != NULL) {
            /* a NUL after each string, and after each item of an array */
            need += vals[i].len + (t->fields[i].kind == FIELD_STRING_ARRAY ? vals[i].n_items : 1);
        }
        if (vals[i].present && t->fields[i].kind == FIELD_STRING_ARRAY) {
            n_list += vals[i].n_items;
        }
    }
    if ((rc = record_reserve(rec, need, n_list, reason, reason_len)) != INGEST_AVRO_OK) {
        return rc;
    }
    /* The buffers are final now (no realloc below), so pointers into them stay valid. */
    rec->kind = dec->kind;
    for (int i = 0; i < t->n_fields; i++) {
        const field_spec_t *spec = &t->fields[i];
        char *member = (char *)rec + spec->offset;
        switch (spec->kind) {
        case FIELD_STRING:
        case FIELD_ENUM:
        case FIELD_OPT_STRING:
        case FIELD_OPT_ENUM: {
            const char *copy = NULL;
            if (vals[i].present) {
                memcpy(rec->buf + pos, vals[i].str, vals[i].len);
                rec->buf[pos + vals[i].len] = '\0';
                copy = rec->buf + pos;
                pos += vals[i].len + 1;
            }
            memcpy(member, &copy, sizeof copy);
            break;
        }
        case FIELD_OPT_DOUBLE: {
            int has = double_present(t, vals, i);
            double d = has ? vals[i].num : 0.0;
            memcpy(member, &d, sizeof d);
            if (spec->aux_offset != 0) {
                memcpy((char *)rec + spec->aux_offset, &has, sizeof has);
            }
            break;
        }
        case FIELD_TIME_MS:
            memcpy(member, &vals[i].i64, sizeof vals[i].i64);
            break;
        case FIELD_BOOL: {
            int b = vals[i].i64 != 0;
            memcpy(member, &b, sizeof b);
            break;
        }
        case FIELD_STRING_ARRAY: {
            const char *const *items = NULL;
            size_t n = vals[i].present ? vals[i].n_items : 0;
            if (n > 0) {
                /* Walked a second time, already validated by scan_string_array. */
                scan_t walk = {(const uint8_t *)vals[i].str,
                               (const uint8_t *)vals[i].str + vals[i].i64, spec->name, reason,
                               reason_len};
                items = rec->list + list_pos;
                for (size_t k = 0; k < n;) {
                    int64_t count;
                    if (scan_block_count(&walk, &count) != 0 || count == 0) {
                        text_set(reason, reason_len, "field %s changed between two reads",
                                 spec->name);
                        return INGEST_AVRO_ERR;
                    }
                    for (int64_t c = 0; c < count && k < n; c++, k++) {
                        field_value_t item = {0};
                        if (scan_string(&walk, &item) != 0) {
                            text_set(reason, reason_len, "field %s changed between two reads",
                                     spec->name);
                            return INGEST_AVRO_ERR;
                        }
                        memcpy(rec->buf + pos, item.str, item.len);
                        rec->buf[pos + item.len] = '\0';
                        rec->list[list_pos++] = rec->buf + pos;
                        pos += item.len + 1;
                    }
                }
            }
            memcpy(member, &items, sizeof items);
            memcpy((char *)rec + spec->aux_offset, &n, sizeof n);
            break;
        }
        }
    }
    if (dec->kind == INGEST_KIND_EVENT) {
        record_commit_extras(dec, rec, pos, list_pos);
    }
    return INGEST_AVRO_OK;
}

/* The rules the schema cannot express, for an extra field: text as for the optional strings,
 * finite numbers (NaN is how the record says null). */
static int extra_check(const extra_field_t *x, const field_value_t *v, char *reason,
                       size_t reason_len)
{
    if (!v->present) {
        return INGEST_AVRO_OK;
    }
    if (x->type == INGEST_EXTRA_STRING) {
        return text_check(x->name, v->str, v->len, 0, reason, reason_len);
    }
    if (!isfinite(v->num)) {
        return reason_bad(reason, reason_len, "invalid field %s: not a finite number", x->name);
    }
    return INGEST_AVRO_OK;
}

/* The end of both decoders: the record must use every byte, every value must pass the rules
 * the schema cannot express, and only then does rec change. */
static int decode_finish(const ingest_avro_t *dec, const scan_t *s, const uint8_t *data,
                         const field_value_t *vals, ingest_record_t *rec)
{
    const record_type_t *t = dec->type;
    int rc;

    if (s->p != s->end) {
        return reason_bad(s->reason, s->reason_len, "trailing bytes: %zu after the %zu-byte record",
                          (size_t)(s->end - s->p), (size_t)(s->p - data));
    }
    for (int i = 0; i < t->n_fields; i++) {
        if ((rc = field_check(&t->fields[i], &vals[i], s->reason, s->reason_len)) != 0) {
            return rc;
        }
    }
    for (size_t e = 0; e < dec->n_extra; e++) {
        if ((rc = extra_check(&dec->extras[e], &dec->extra_vals[e], s->reason, s->reason_len)) !=
            0) {
            return rc;
        }
    }
    if (t->check != NULL && (rc = t->check(vals, s->reason, s->reason_len)) != 0) {
        return rc;
    }
    return record_commit(dec, rec, vals, s->reason, s->reason_len);
}

static int field_is_optional(field_kind_t kind)
{
    return kind == FIELD_OPT_STRING || kind == FIELD_OPT_DOUBLE || kind == FIELD_OPT_ENUM;
}

/* Reads one field vigil knows straight from the wire. The reader schema fixed its type
 * (reader_schema_check); the checks and reasons are the scanner's. */
static int direct_field(ingest_avro_t *dec, scan_t *s, int i, field_value_t *out)
{
    const field_spec_t *spec = &dec->type->fields[i];
    const field_slot_t *slot = &dec->slots[i];
    int64_t v;
    int rc;

    memset(out, 0, sizeof *out);
    s->field = spec->name;
    if (field_is_optional(spec->kind)) {
        if ((rc = scan_index(s, 2, 0, &v)) != 0) {
            return rc;
        }
        if (v == slot->null_branch) {
            return INGEST_AVRO_OK;
        }
    }
    switch (spec->kind) {
    case FIELD_STRING:
    case FIELD_OPT_STRING:
        return scan_string(s, out);
    case FIELD_STRING_ARRAY:
        return scan_string_array(s, out);
    case FIELD_ENUM:
    case FIELD_OPT_ENUM:
        if ((rc = scan_index(s, avro_schema_enum_number_of_symbols(slot->enum_schema), 1, &v)) !=
            0) {
            return rc;
        }
        out->str = avro_schema_enum_get(slot->enum_schema, (int)v);
        out->len = strlen(out->str);
        break;
    case FIELD_OPT_DOUBLE:
        if ((rc = scan_real(s, 8, &out->num)) != 0) {
            return rc;
        }
        break;
    case FIELD_TIME_MS:
        if ((rc = scan_long(s, &out->i64)) != 0) {
            return rc;
        }
        break;
    case FIELD_BOOL:
        if ((rc = scan_bool(s, &out->i64)) != 0) {
            return rc;
        }
        break;
    }
    out->present = 1;
    return INGEST_AVRO_OK;
}

/* Reads one value of type t (not a union, not null: a type extra_type_fits allows) as extra
 * field x. writer_id names the writer schema in reasons when t is the writer's enum rather than
 * the reader's, whose symbols are then matched by name. */
static int extra_value(const extra_field_t *x, scan_t *s, avro_schema_t t, uint32_t writer_id,
                       field_value_t *out)
{
    int64_t v;
    int rc;

    switch (avro_typeof(t)) {
    case AVRO_BOOLEAN:
        if ((rc = scan_bool(s, &v)) != 0) {
            return rc;
        }
        out->num = (double)v;
        break;
    case AVRO_INT32:
    case AVRO_INT64:
        if ((rc = scan_long(s, &v)) != 0) {
            return rc;
        }
        if (avro_typeof(t) == AVRO_INT32 && (v < INT32_MIN || v > INT32_MAX)) {
            return reason_bad(s->reason, s->reason_len, "bad int in field %s: %lld out of range",
                              s->field, (long long)v);
        }
        out->num = (double)v;
        break;
    case AVRO_FLOAT:
    case AVRO_DOUBLE:
        rc = scan_real(s, avro_typeof(t) == AVRO_DOUBLE ? 8 : 4, &out->num);
        break;
    case AVRO_STRING:
        return scan_string(s, out);
    case AVRO_ENUM: {
        const char *symbol;
        if ((rc = scan_index(s, avro_schema_enum_number_of_symbols(t), 1, &v)) != 0) {
            return rc;
        }
        symbol = avro_schema_enum_get(t, (int)v);
        if (t != x->value_schema) {
            /* By name: the writer may order its symbols differently or have new ones. */
            int mapped = avro_schema_enum_get_by_name(x->value_schema, symbol);
            if (mapped < 0) {
                return reason_bad(s->reason, s->reason_len,
                                  "incompatible schema id %u: symbol %s of field %s is not in "
                                  "the reader's enum %s",
                                  (unsigned)writer_id, symbol, x->name,
                                  avro_schema_name(x->value_schema));
            }
            symbol = avro_schema_enum_get(x->value_schema, mapped);
        }
        out->str = symbol;
        out->len = strlen(symbol);
        rc = 0;
        break;
    }
    default:
        return reason_bad(s->reason, s->reason_len, "field %s has an unexpected Avro type",
                          s->field);
    }
    if (rc != 0) {
        return rc;
    }
    out->present = 1;
    return INGEST_AVRO_OK;
}

/* Reads extra field e straight from the wire, into dec->extra_vals. */
static int direct_extra(ingest_avro_t *dec, scan_t *s, size_t e)
{
    const extra_field_t *x = &dec->extras[e];
    field_value_t *out = &dec->extra_vals[e];
    int64_t v;
    int rc;

    memset(out, 0, sizeof *out);
    s->field = x->name;
    if (x->optional) {
        if ((rc = scan_index(s, 2, 0, &v)) != 0) {
            return rc;
        }
        if (v == x->null_branch) {
            return INGEST_AVRO_OK;
        }
    }
    return extra_value(x, s, x->value_schema, 0, out);
}

/* The hot path, for a message written with the reader schema itself: one pass over the bytes
 * that validates and reads at once, no Avro C value, no allocation. Fields vigil does not read
 * are validated and skipped by the scanner. Same reasons as the general path. */
static int direct_decode(ingest_avro_t *dec, const uint8_t *data, size_t len, ingest_record_t *rec,
                         char *reason, size_t reason_len)
{
    scan_t s = {data, data + len, "(record)", reason, reason_len};
    field_value_t vals[FIELDS_MAX];
    int rc;

    for (size_t j = 0; j < dec->plan_len; j++) {
        const plan_step_t *step = &dec->plan[j];
        if (step->field >= 0) {
            rc = direct_field(dec, &s, step->field, &vals[step->field]);
        } else if (step->extra >= 0) {
            rc = direct_extra(dec, &s, (size_t)step->extra);
        } else {
            s.field = avro_schema_record_field_name(dec->reader_schema, (int)j);
            rc = scan_value(&s, avro_schema_record_field_get_by_index(dec->reader_schema, (int)j),
                            1);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return decode_finish(dec, &s, data, vals, rec);
}

/* Reads one value of writer type t as the type's field i (see writer_type_fits for what
 * converts). Reasons as the scanner's; a union branch the reader cannot take names the
 * incompatibility. */
static int plan_value(ingest_avro_t *dec, const writer_entry_t *w, scan_t *s, avro_schema_t t,
                      int i, field_value_t *out, int depth)
{
    const field_spec_t *spec = &dec->type->fields[i];
    int is_enum = spec->kind == FIELD_ENUM || spec->kind == FIELD_OPT_ENUM;
    int64_t v;
    int rc;

    t = schema_deref(t);
    if (depth > SCAN_DEPTH_MAX || t == NULL) {
        return reason_bad(s->reason, s->reason_len, "schema nesting deeper than %d at field %s",
                          SCAN_DEPTH_MAX, s->field);
    }
    if (!writer_type_fits(spec->kind, t) && !is_avro_union(t)) {
        return reason_bad(s->reason, s->reason_len,
                          "incompatible schema id %u: field %s holds a %s, which vigil cannot "
                          "read as its %s",
                          (unsigned)w->id, spec->name, avro_schema_type_name(t),
                          is_enum ? "enum" : "type");
    }
    switch (avro_typeof(t)) {
    case AVRO_UNION:
        if ((rc = scan_index(s, (int64_t)avro_schema_union_size(t), 0, &v)) != 0) {
            return rc;
        }
        return plan_value(dec, w, s, avro_schema_union_branch(t, (int)v), i, out, depth + 1);
    case AVRO_NULL:
        out->present = 0; /* only reached for the optional kinds (writer_type_fits) */
        return INGEST_AVRO_OK;
    case AVRO_STRING:
        return scan_string(s, out);
    case AVRO_ARRAY:
        return scan_string_array(s, out); /* of strings (writer_type_fits) */
    case AVRO_BOOLEAN:
        out->present = 1;
        return scan_bool(s, &out->i64);
    case AVRO_ENUM: {
        avro_schema_t reader_enum = dec->slots[i].enum_schema;
        const char *symbol;
        int mapped;
        if ((rc = scan_index(s, avro_schema_enum_number_of_symbols(t), 1, &v)) != 0) {
            return rc;
        }
        /* By name: the writer may order its symbols differently or have new ones. */
        symbol = avro_schema_enum_get(t, (int)v);
        mapped = avro_schema_enum_get_by_name(reader_enum, symbol);
        if (mapped < 0) {
            return reason_bad(s->reason, s->reason_len,
                              "incompatible schema id %u: symbol %s of field %s is not in the "
                              "reader's enum %s",
                              (unsigned)w->id, symbol, spec->name, avro_schema_name(reader_enum));
        }
        out->present = 1;
        out->str = avro_schema_enum_get(reader_enum, mapped);
        out->len = strlen(out->str);
        return INGEST_AVRO_OK;
    }
    case AVRO_DOUBLE:
    case AVRO_FLOAT:
        out->present = 1;
        return scan_real(s, avro_typeof(t) == AVRO_DOUBLE ? 8 : 4, &out->num);
    case AVRO_INT32:
    case AVRO_INT64:
        if ((rc = scan_long(s, &v)) != 0) {
            return rc;
        }
        if (avro_typeof(t) == AVRO_INT32 && (v < INT32_MIN || v > INT32_MAX)) {
            return reason_bad(s->reason, s->reason_len, "bad int in field %s: %lld out of range",
                              s->field, (long long)v);
        }
        out->present = 1;
        out->i64 = v;
        out->num = (double)v;
        return INGEST_AVRO_OK;
    default:
        return reason_bad(s->reason, s->reason_len, "field %s has an unexpected Avro type",
                          s->field);
    }
}

/* Reads one value of writer type t as extra field e (see extra_type_fits for what converts).
 * A union branch the reader cannot take names the incompatibility. */
static int plan_extra(ingest_avro_t *dec, const writer_entry_t *w, scan_t *s, avro_schema_t t,
                      size_t e, field_value_t *out, int depth)
{
    const extra_field_t *x = &dec->extras[e];
    int64_t v;
    int rc;

    t = schema_deref(t);
    if (depth > SCAN_DEPTH_MAX || t == NULL) {
        return reason_bad(s->reason, s->reason_len, "schema nesting deeper than %d at field %s",
                          SCAN_DEPTH_MAX, s->field);
    }
    if (is_avro_union(t)) {
        if ((rc = scan_index(s, (int64_t)avro_schema_union_size(t), 0, &v)) != 0) {
            return rc;
        }
        return plan_extra(dec, w, s, avro_schema_union_branch(t, (int)v), e, out, depth + 1);
    }
    if (!extra_type_fits(x, t)) {
        return reason_bad(s->reason, s->reason_len,
                          "incompatible schema id %u: field %s holds a %s, which vigil cannot "
                          "read as its %s",
                          (unsigned)w->id, x->name, avro_schema_type_name(t),
                          avro_schema_type_name(x->value_schema));
    }
    if (is_avro_null(t)) {
        out->present = 0;
        return INGEST_AVRO_OK;
    }
    return extra_value(x, s, t, w->id, out);
}

/* A message on a writer schema that differs from the reader's: read in the writer's field
 * order through its plan, fields vigil does not read validated and skipped, fields the writer
 * lacks left at the reader's default (null, the empty array, or an extra field's default). One
 * pass, as direct_decode. */
static int plan_decode(ingest_avro_t *dec, const writer_entry_t *w, const uint8_t *data, size_t len,
                       ingest_record_t *rec, char *reason, size_t reason_len)
{
    scan_t s = {data, data + len, "(record)", reason, reason_len};
    field_value_t vals[FIELDS_MAX];
    int rc;

    memset(vals, 0, sizeof vals);
    /* Extra fields the writer lacks keep the reader's default (writer_plan made sure there is
     * one); the others are overwritten below. */
    for (size_t e = 0; e < dec->n_extra; e++) {
        dec->extra_vals[e] = dec->extras[e].def;
    }
    for (size_t j = 0; j < w->n_fields; j++) {
        const writer_field_t *f = &w->fields[j];
        s.field = f->name;
        if (f->spec >= 0) {
            rc = plan_value(dec, w, &s, f->schema, f->spec, &vals[f->spec], 1);
        } else if (f->extra >= 0) {
            field_value_t *out = &dec->extra_vals[f->extra];
            memset(out, 0, sizeof *out);
            rc = plan_extra(dec, w, &s, f->schema, (size_t)f->extra, out, 1);
        } else {
            rc = scan_value(&s, f->schema, 1);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return decode_finish(dec, &s, data, vals, rec);
}

int ingest_avro_decode(ingest_avro_t *dec, const void *data, size_t len, ingest_record_t *rec,
                       char *reason, size_t reason_len)
{
    const uint8_t *payload = data;
    size_t payload_len = len;
    const writer_entry_t *plan = NULL;
    int rc;

    /* Every reason written below is cut to REASON_MAX through this. */
    if (reason_len > REASON_MAX) {
        reason_len = REASON_MAX;
    }
    if (len == 0) {
        return reason_bad(reason, reason_len, "empty message");
    }
    if (dec->format == INGEST_FORMAT_CONFLUENT) {
        writer_entry_t *writer;
        if (len < CONFLUENT_HEADER_LEN) {
            return reason_bad(reason, reason_len,
                              "truncated: %zu-byte message is shorter than the 5-byte "
                              "Confluent header",
                              len);
        }
        if (payload[0] != 0x00) {
            return reason_bad(reason, reason_len, "bad magic byte 0x%02x (Confluent wants 0x00)",
                              payload[0]);
        }
        uint32_t id = (uint32_t)payload[1] << 24 | (uint32_t)payload[2] << 16 |
                      (uint32_t)payload[3] << 8 | (uint32_t)payload[4];
        if ((rc = writer_lookup(dec, id, &writer, reason, reason_len)) != INGEST_AVRO_OK) {
            return rc;
        }
        if (writer->fields != NULL) {
            plan = writer;
        }
        payload += CONFLUENT_HEADER_LEN;
        payload_len -= CONFLUENT_HEADER_LEN;
    }
    if (plan != NULL) {
        return plan_decode(dec, plan, payload, payload_len, rec, reason, reason_len);
    }
    /* Same schema on both sides (plain format, or a Confluent id whose schema equals the
     * reader's). */
    return direct_decode(dec, payload, payload_len, rec, reason, reason_len);
}

ingest_kind_t ingest_avro_kind(const ingest_avro_t *dec)
{
    return dec->kind;
}

size_t ingest_avro_extra_count(const ingest_avro_t *dec)
{
    return dec->n_extra;
}

const char *ingest_avro_extra_name(const ingest_avro_t *dec, size_t i)
{
    return i < dec->n_extra ? dec->extras[i].name : NULL;
}

ingest_extra_type_t ingest_avro_extra_type(const ingest_avro_t *dec, size_t i)
{
    return i < dec->n_extra ? dec->extras[i].type : INGEST_EXTRA_NUMBER;
}

/* Sets enum field to symbol of the reader's enum. */
static int enum_write(avro_value_t *field, avro_schema_t enum_schema, const field_spec_t *spec,
                      const char *symbol, char *err, size_t errlen)
{
    int index = avro_schema_enum_get_by_name(enum_schema, symbol);
    if (index < 0) {
        text_set(err, errlen, "%s \"%.40s\" is not a symbol of enum %s", spec->name, symbol,
                 avro_schema_name(enum_schema));
        return -1;
    }
    if (avro_value_set_enum(field, index) != 0) {
        text_set(err, errlen, "cannot set Avro field %s: %s", spec->name, avro_strerror());
        return -1;
    }
    return 0;
}

/* An optional field is a union: selects its null branch and sets it when the value is absent
 * (returns 0: nothing more to write), else selects the value branch and points *field at it
 * (returns 1). -1 on an Avro error (avro_strerror says what). */
static int union_branch_set(avro_value_t *field, int present, int null_branch, int value_branch)
{
    avro_value_t branch;
    if (!present) {
        if (avro_value_set_branch(field, null_branch, &branch) != 0 ||
            avro_value_set_null(&branch) != 0)
            return -1;
        return 0;
    }
    if (avro_value_set_branch(field, value_branch, &branch) != 0)
        return -1;
    *field = branch;
    return 1;
}

/* Sets field i of enc->value from rec. */
static int field_write(ingest_avro_t *enc, const ingest_record_t *rec, int i, char *err,
                       size_t errlen)
{
    const field_spec_t *spec = &enc->type->fields[i];
    const field_slot_t *slot = &enc->slots[i];
    const char *member = (const char *)rec + spec->offset;
    const char *str = NULL;
    avro_value_t field;
    int present = 1;
    int rc;

    if (avro_value_get_by_index(&enc->value, slot->index, &field, NULL) != 0) {
        goto avro_err;
    }
    switch (spec->kind) {
    case FIELD_STRING:
    case FIELD_ENUM:
    case FIELD_OPT_STRING:
    case FIELD_OPT_ENUM:
        memcpy(&str, member, sizeof str);
        present = (str != NULL);
        break;
    case FIELD_OPT_DOUBLE:
        if (spec->aux_offset != 0) {
            memcpy(&present, (const char *)rec + spec->aux_offset, sizeof present);
        }
        break;
    default:
        break;
    }
    if (!present && !field_is_optional(spec->kind)) {
        text_set(err, errlen, "record field %s is NULL; it is required", spec->name);
        return -1;
    }
    if (field_is_optional(spec->kind)) {
        rc = union_branch_set(&field, present, slot->null_branch, slot->value_branch);
        if (rc <= 0) {
            if (rc < 0)
                goto avro_err;
            return 0;
        }
    }
    switch (spec->kind) {
    case FIELD_STRING:
    case FIELD_OPT_STRING:
        rc = avro_value_set_string(&field, str);
        break;
    case FIELD_ENUM:
    case FIELD_OPT_ENUM:
        return enum_write(&field, slot->enum_schema, spec, str, err, errlen);
    case FIELD_OPT_DOUBLE: {
        double d;
        memcpy(&d, member, sizeof d);
        rc = avro_value_set_double(&field, d);
        break;
    }
    case FIELD_TIME_MS: {
        int64_t t;
        memcpy(&t, member, sizeof t);
        rc = avro_value_set_long(&field, t);
        break;
    }
    case FIELD_BOOL: {
        int b;
        memcpy(&b, member, sizeof b);
        rc = avro_value_set_boolean(&field, b != 0);
        break;
    }
    case FIELD_STRING_ARRAY: {
        const char *const *items;
        size_t n;
        memcpy(&items, member, sizeof items);
        memcpy(&n, (const char *)rec + spec->aux_offset, sizeof n);
        rc = 0;
        for (size_t k = 0; k < n && rc == 0; k++) {
            avro_value_t item;
            if (items[k] == NULL) {
                text_set(err, errlen, "record field %s has a NULL item %zu", spec->name, k);
                return -1;
            }
            rc = avro_value_append(&field, &item, NULL);
            if (rc == 0) {
                rc = avro_value_set_string(&item, items[k]);
            }
        }
        break;
    }
    default:
        rc = -1;
        break;
    }
    if (rc != 0) {
        goto avro_err;
    }
    return 0;
avro_err:
    text_set(err, errlen, "cannot set Avro field %s: %s", spec->name, avro_strerror());
    return -1;
}

/* Sets extra field e of enc->value from ev, or from the field's default when ev has no extra
 * values at all (a record built without the schema's columns in mind). */
static int extra_write(ingest_avro_t *enc, const ingest_event_t *ev, size_t e, char *err,
                       size_t errlen)
{
    const extra_field_t *x = &enc->extras[e];
    avro_value_t field;
    double num = NAN;
    const char *str = NULL;
    int present;
    int rc;

    if (ev->n_extra == 0) {
        if (!x->has_default && !x->optional) {
            text_set(err, errlen,
                     "record has no extra fields; field %s of the schema is required and has no "
                     "default",
                     x->name);
            return -1;
        }
        present = x->has_default && x->def.present;
        num = x->def.num;
        str = x->def.str;
    } else if (x->type == INGEST_EXTRA_NUMBER) {
        num = ev->extra_num != NULL ? ev->extra_num[e] : NAN;
        present = !isnan(num);
    } else {
        str = ev->extra_str != NULL ? ev->extra_str[e] : NULL;
        present = str != NULL;
    }
    if (!present && !x->optional) {
        text_set(err, errlen, "record extra field %s is %s; it is required", x->name,
                 x->type == INGEST_EXTRA_NUMBER ? "NaN" : "NULL");
        return -1;
    }
    if (avro_value_get_by_index(&enc->value, x->index, &field, NULL) != 0) {
        goto avro_err;
    }
    if (x->optional) {
        rc = union_branch_set(&field, present, x->null_branch, x->value_branch);
        if (rc <= 0) {
            if (rc < 0)
                goto avro_err;
            return 0;
        }
    }
    switch (x->value_type) {
    case AVRO_INT32:
        if (num != floor(num) || num < INT32_MIN || num > INT32_MAX) {
            text_set(err, errlen, "record extra field %s is %g, not an int", x->name, num);
            return -1;
        }
        rc = avro_value_set_int(&field, (int32_t)num);
        break;
    case AVRO_INT64:
        /* 2^63 is the first double past INT64_MAX. */
        if (num != floor(num) || num < -9223372036854775808.0 || num >= 9223372036854775808.0) {
            text_set(err, errlen, "record extra field %s is %g, not a long", x->name, num);
            return -1;
        }
        rc = avro_value_set_long(&field, (int64_t)num);
        break;
    case AVRO_FLOAT:
        rc = avro_value_set_float(&field, (float)num);
        break;
    case AVRO_DOUBLE:
        rc = avro_value_set_double(&field, num);
        break;
    case AVRO_BOOLEAN:
        rc = avro_value_set_boolean(&field, num != 0.0);
        break;
    case AVRO_STRING:
        rc = avro_value_set_string(&field, str);
        break;
    case AVRO_ENUM: {
        int index = avro_schema_enum_get_by_name(x->value_schema, str);
        if (index < 0) {
            text_set(err, errlen, "%s \"%.40s\" is not a symbol of enum %s", x->name, str,
                     avro_schema_name(x->value_schema));
            return -1;
        }
        rc = avro_value_set_enum(&field, index);
        break;
    }
    default:
        rc = -1;
        break;
    }
    if (rc != 0) {
        goto avro_err;
    }
    return 0;
avro_err:
    text_set(err, errlen, "cannot set Avro field %s: %s", x->name, avro_strerror());
    return -1;
}

long ingest_avro_encode(ingest_avro_t *enc, const ingest_record_t *rec, int32_t schema_id,
                        void *out, size_t out_cap, char *err, size_t errlen)
{
    size_t header = enc->format == INGEST_FORMAT_CONFLUENT ? CONFLUENT_HEADER_LEN : 0;
    uint8_t *bytes = out;
    size_t body;

    if (enc->format == INGEST_FORMAT_CONFLUENT && schema_id < 0) {
        text_set(err, errlen, "schema id %d is negative; Confluent ids start at 1", (int)schema_id);
        return -1;
    }
    if (rec->kind != enc->kind) {
        text_set(err, errlen, "cannot encode a %s with a %s encoder",
                 ingest_kind_schema_name(rec->kind), enc->type->name);
        return -1;
    }
    /* Fields of the schema that ingest_record_t lacks (other than a BehaviorEvent's extra
     * fields) stay at their zero values. */
    if (avro_value_reset(&enc->value) != 0) {
        text_set(err, errlen, "cannot reset the Avro value: %s", avro_strerror());
        return -1;
    }
    for (int i = 0; i < enc->type->n_fields; i++) {
        if (field_write(enc, rec, i, err, errlen) != 0) {
            return -1;
        }
    }
    if (enc->kind == INGEST_KIND_EVENT) {
        const ingest_event_t *ev = &rec->event;
        if (ev->n_extra != 0 && ev->n_extra != enc->n_extra) {
            text_set(err, errlen, "record has %zu extra fields; the schema %s has %zu", ev->n_extra,
                     avro_schema_name(enc->reader_schema), enc->n_extra);
            return -1;
        }
        for (size_t e = 0; e < enc->n_extra; e++) {
            if (extra_write(enc, ev, e, err, errlen) != 0) {
                return -1;
            }
        }
    }
    if (avro_value_sizeof(&enc->value, &body) != 0) {
        text_set(err, errlen, "cannot size the Avro record: %s", avro_strerror());
        return -1;
    }
    if (out_cap < header || body > out_cap - header || header + body > LONG_MAX) {
        text_set(err, errlen, "output buffer of %zu bytes is too small; the record needs %zu",
                 out_cap, header + body);
        return -1;
    }
    if (header != 0) {
        uint32_t id = (uint32_t)schema_id;
        bytes[0] = 0x00;
        bytes[1] = (uint8_t)(id >> 24);
        bytes[2] = (uint8_t)(id >> 16);
        bytes[3] = (uint8_t)(id >> 8);
        bytes[4] = (uint8_t)id;
    }
    avro_writer_memory_set_dest(enc->writer, (const char *)bytes + header,
                                (int64_t)(out_cap - header));
    if (avro_value_write(enc->writer, &enc->value) != 0) {
        text_set(err, errlen, "cannot write the Avro record: %s", avro_strerror());
        return -1;
    }
    return (long)(header + (size_t)avro_writer_tell(enc->writer));
}
