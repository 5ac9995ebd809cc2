/* Internals shared by the files of ingest/avro/, and included by them only (the public API is
 * ingest_avro.h): the field tables' types, the state of an ingest_avro_t, the scanner and what
 * each file offers the others. README.md says which file does what.
 *
 * Functions here carry the ingest_avro_ prefix like the API, since the library links into every
 * program; types and constants do not, being seen by these files alone. The scanner's
 * primitives are static inline here rather than in scan.c: both decoders call them for every
 * field, and out of line they cost the direct decoder about a sixth more instructions per
 * BehaviorEvent (callgrind, when the codec was split into these files). */
#ifndef VIGIL_INGEST_AVRO_INTERNAL_H
#define VIGIL_INGEST_AVRO_INTERNAL_H

#include "ingest_avro.h"

#include <avro.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Reasons end up in dead-letter rows and logs: keep them one short line. */
#define REASON_MAX 200
#define CONFLUENT_HEADER_LEN 5
/* Deeper nesting than this in a writer schema is a mistake or an attack on the stack. */
#define SCAN_DEPTH_MAX 32
/* Schema ids whose writer schema was missing or unusable, remembered (schema_miss_t). */
#define MISS_SLOTS 16

/* ---- the fields vigil reads, per record kind (the tables are in schema.c) ---- */

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

struct field_value;

/* One record kind: its fields, and the rule across fields the schema cannot express (NULL for
 * none), checked before the record is committed. */
typedef struct record_type {
    const char *name; /* the Avro record name, and <name>.avsc */
    const field_spec_t *fields;
    int n_fields;
    int (*check)(const struct field_value *vals, char *reason, size_t reason_len);
} record_type_t;

/* Indexed by ingest_kind_t. */
extern const record_type_t ingest_avro_record_types[INGEST_KIND_COUNT];

static inline int ingest_avro_field_is_optional(field_kind_t kind)
{
    return kind == FIELD_OPT_STRING || kind == FIELD_OPT_DOUBLE || kind == FIELD_OPT_ENUM;
}

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
 * schema resolution done by resolve.c rather than by Avro C, whose resolver neither fills a field
 * the writer lacks from the reader's default nor maps enum symbols by name. */
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

/* ---- texts: reasons and errors (scan.c) ---- */

/* Formats into buf (len bytes), keeping the text a printable one-liner. */
void ingest_avro_text_set(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Fills a decode reason and returns INGEST_AVRO_BAD. */
int ingest_avro_reason_bad(char *reason, size_t reason_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The rules for text that the schema cannot express: PostgreSQL takes neither NUL bytes nor
 * invalid UTF-8 in text columns, and required strings are never empty. Returns 0 or
 * INGEST_AVRO_BAD with the reason, naming field. */
int ingest_avro_text_check(const char *field, const char *str, size_t len, int required,
                           char *reason, size_t reason_len);

/* ---- the scanner: bounded, validating reads of Avro binary (scan.c and below) ---- */

/* The bytes being scanned, and the innermost record field, for reasons. */
typedef struct scan {
    const uint8_t *p;
    const uint8_t *end;
    const char *field;
    char *reason;
    size_t reason_len;
} scan_t;

/* Returns 0 when the bytes at s->p hold one well-formed value of schema (and advances past
 * it), else INGEST_AVRO_BAD with the reason. */
int ingest_avro_scan_value(scan_t *s, avro_schema_t schema, int depth);

/* The item count of the next block of an array or map (0: the end), checked against the bytes
 * left. */
int ingest_avro_scan_block_count(scan_t *s, int64_t *count);

/* An array of strings, each checked as ingest_avro_text_check does (items are never empty).
 * out->str marks where the array starts and out->i64 how many bytes it spans, so the record
 * commit can walk it again; out->len sums the items' lengths. */
int ingest_avro_scan_string_array(scan_t *s, field_value_t *out);

/* A zigzag varint (Avro's int and long) at s->p. */
static inline int ingest_avro_scan_long(scan_t *s, int64_t *out)
{
    uint64_t value = 0;
    /* Set on every path: at -O3 GCC cannot see that callers never read it after an error, and
     * -Werror=maybe-uninitialized stopped Release builds. */
    *out = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (s->p == s->end) {
            return ingest_avro_reason_bad(s->reason, s->reason_len,
                                          "truncated: message ends inside field %s", s->field);
        }
        uint8_t b = *s->p++;
        value |= (uint64_t)(b & 0x7f) << shift;
        if ((b & 0x80) == 0) {
            /* Zigzag, written to stay within unsigned arithmetic. */
            *out = (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
            return 0;
        }
    }
    return ingest_avro_reason_bad(s->reason, s->reason_len,
                                  "bad varint in field %s: longer than 10 bytes", s->field);
}

static inline int ingest_avro_scan_skip(scan_t *s, int64_t n, const char *what)
{
    if (n < 0) {
        return ingest_avro_reason_bad(s->reason, s->reason_len,
                                      "negative length %lld for %s in field %s", (long long)n, what,
                                      s->field);
    }
    if ((uint64_t)n > (size_t)(s->end - s->p)) {
        return ingest_avro_reason_bad(s->reason, s->reason_len,
                                      "truncated: field %s declares a %lld-byte %s, %zu bytes left",
                                      s->field, (long long)n, what, (size_t)(s->end - s->p));
    }
    s->p += n;
    return 0;
}

/* An enum or union index at s->p, checked against the n choices the schema has. */
static inline int ingest_avro_scan_index(scan_t *s, int64_t n, int is_enum, int64_t *v)
{
    int rc = ingest_avro_scan_long(s, v);
    if (rc != 0) {
        return rc;
    }
    if (*v < 0 || *v >= n) {
        return ingest_avro_reason_bad(s->reason, s->reason_len,
                                      "bad %s index %lld in field %s (%lld %s)",
                                      is_enum ? "enum" : "union", (long long)*v, s->field,
                                      (long long)n, is_enum ? "symbols" : "branches");
    }
    return 0;
}

/* An int (type AVRO_INT32, checked for range) or a long at s->p. */
static inline int ingest_avro_scan_int(scan_t *s, avro_type_t type, int64_t *v)
{
    int rc = ingest_avro_scan_long(s, v);
    if (rc != 0) {
        return rc;
    }
    if (type == AVRO_INT32 && (*v < INT32_MIN || *v > INT32_MAX)) {
        return ingest_avro_reason_bad(s->reason, s->reason_len,
                                      "bad int in field %s: %lld out of range", s->field,
                                      (long long)*v);
    }
    return 0;
}

/* A length-prefixed string at s->p; out points into the message (not NUL-terminated). */
static inline int ingest_avro_scan_string(scan_t *s, field_value_t *out)
{
    int64_t n;
    int rc = ingest_avro_scan_long(s, &n);
    if (rc != 0) {
        return rc;
    }
    out->present = 1;
    out->str = (const char *)s->p;
    out->len = n > 0 ? (size_t)n : 0;
    return ingest_avro_scan_skip(s, n, "string");
}

/* A float (width 4) or double (width 8) at s->p, little-endian on the wire, as a double. */
static inline int ingest_avro_scan_real(scan_t *s, int width, double *out)
{
    const uint8_t *b = s->p;
    uint64_t bits = 0;
    int rc = ingest_avro_scan_skip(s, width, width == 8 ? "double" : "float");
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

/* A boolean: one byte, 0 or 1 and nothing else. */
static inline int ingest_avro_scan_bool(scan_t *s, int64_t *out)
{
    const uint8_t *b = s->p;
    *out = 0; /* as ingest_avro_scan_long: set on every path */
    int rc = ingest_avro_scan_skip(s, 1, "boolean");
    if (rc != 0) {
        return rc;
    }
    if (*b > 1) {
        return ingest_avro_reason_bad(s->reason, s->reason_len, "bad boolean 0x%02x in field %s",
                                      *b, s->field);
    }
    *out = *b;
    return 0;
}

/* ---- schemas (schema.c, extras.c) ---- */

/* Parses the .avsc at path into *out (owned by the caller). *missing says whether the file
 * did not exist, which callers report differently from a broken file. With text_out, the
 * file's text (NUL-terminated, owned by the caller) and its length come back too. */
int ingest_avro_schema_load(const char *path, avro_schema_t *out, int *missing, char **text_out,
                            size_t *len_out, char *err, size_t errlen);

/* Follows named-type links to the type itself. */
avro_schema_t ingest_avro_schema_deref(avro_schema_t t);

/* Finds each field vigil reads in dec's reader schema (loaded from path), checks its type and
 * builds dec->slots and dec->plan. Returns 0, or -1 with err. */
int ingest_avro_reader_schema_check(ingest_avro_t *dec, const char *path, char *err, size_t errlen);

/* Reads the writer schema of Confluent id into *out (owned by the caller): from dec's registry
 * when it has one, else <schema_dir>/<id>.avsc; where (where_len bytes) gets the source's name
 * for reasons. Returns INGEST_AVRO_OK; INGEST_AVRO_BAD when no usable schema exists for id, why
 * (why_len bytes) saying so; INGEST_AVRO_RETRY when the registry cannot answer now, why holding
 * what it or the network said. */
int ingest_avro_schema_load_writer(const ingest_avro_t *dec, uint32_t id, avro_schema_t *out,
                                   char *where, size_t where_len, char *why, size_t why_len);

/* Makes the reader fields that are not the kind's own into extra fields (BehaviorEvent only).
 * text: the reader schema's JSON (len bytes), for the defaults. Returns 0, or -1 with err. */
int ingest_avro_extras_init(ingest_avro_t *dec, const char *text, size_t len, const char *path,
                            char *err, size_t errlen);

/* ---- resolution of a writer schema into the reader's (resolve.c) ---- */

/* Whether a value of writer type t (not a union) can be read as kind, per Avro's rules. */
int ingest_avro_writer_type_fits(field_kind_t kind, avro_schema_t t);

/* Whether a value of writer type t (not a union) can be read as extra field x. */
int ingest_avro_extra_type_fits(const extra_field_t *x, avro_schema_t t);

/* Builds entry->fields for a writer schema that differs from the reader's, or explains in why
 * (why_len bytes) what makes it incompatible. Returns 0, -1 incompatible, -2 out of memory. */
int ingest_avro_writer_plan(const ingest_avro_t *dec, writer_entry_t *entry, char *why,
                            size_t why_len);

/* ---- the Confluent wire format (confluent.c) ---- */

/* The writer of a Confluent-framed message (len > 0 bytes at data): the 5-byte header checked,
 * the writer schema of its id loaded and planned on first use, then cached (a recent miss
 * answers from memory). *plan: the writer's plan, NULL when its schema is the reader's. Returns
 * INGEST_AVRO_OK; INGEST_AVRO_BAD for a bad header or an id with no usable schema;
 * INGEST_AVRO_RETRY when the registry cannot answer now; INGEST_AVRO_ERR when out of memory. */
int ingest_avro_confluent_writer(ingest_avro_t *dec, const uint8_t *data, size_t len,
                                 const writer_entry_t **plan, char *reason, size_t reason_len);

/* Writes the Confluent header of schema id to out (CONFLUENT_HEADER_LEN bytes). */
void ingest_avro_confluent_header_put(uint8_t *out, uint32_t id);

/* ---- the record (record.c) ---- */

/* Commits checked field values into rec. Strings are copied into rec->buf, so vals may point
 * into the message or the schema (enum symbols). */
int ingest_avro_record_commit(const ingest_avro_t *dec, ingest_record_t *rec,
                              const field_value_t *vals, char *reason, size_t reason_len);

#endif
