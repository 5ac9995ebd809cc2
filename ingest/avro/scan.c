/* The scanner: bounded, validating reads of Avro binary against a schema, and the reason texts
 * they give. Every varint, length, enum index and union index is checked against the schema
 * and the bytes left, strings for UTF-8 and NUL. (Avro C 1.11.1's own reader would allocate
 * whatever string length a message claims, write before its buffer on a negative one and accept
 * enum indexes past the last symbol, so it never sees message bytes.) The primitives both
 * decoders call per field (varints, lengths, strings, reals, booleans, indexes) are static
 * inline in ingest_avro_internal.h; here are the rest: whole values of any type (to validate and
 * skip the fields vigil does not read), string arrays and the text rules. */
#include "ingest_avro_internal.h"

#include <avro.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

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

void ingest_avro_text_set(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    text_vset(buf, len, fmt, ap);
    va_end(ap);
}

int ingest_avro_reason_bad(char *reason, size_t reason_len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    text_vset(reason, reason_len, fmt, ap);
    va_end(ap);
    return INGEST_AVRO_BAD;
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

/* The rules for text that the schema cannot express: PostgreSQL takes neither NUL bytes nor
 * invalid UTF-8 in text columns, and required strings are never empty. */
int ingest_avro_text_check(const char *field, const char *str, size_t len, int required,
                           char *reason, size_t reason_len)
{
    if (required && len == 0) {
        return ingest_avro_reason_bad(reason, reason_len, "invalid field %s: empty", field);
    }
    if (memchr(str, '\0', len) != NULL) {
        return ingest_avro_reason_bad(reason, reason_len, "invalid field %s: contains a NUL byte",
                                      field);
    }
    if (!utf8_valid(str, len)) {
        return ingest_avro_reason_bad(reason, reason_len, "invalid field %s: not valid UTF-8",
                                      field);
    }
    return 0;
}

/* The item count of the next block of an array or map (0: the end), a negative count
 * carrying the block's byte size too. The count is checked against the bytes left: every item
 * of a sane schema takes at least a byte, which bounds loops by the message size instead of by
 * whatever count the message claims. */
int ingest_avro_scan_block_count(scan_t *s, int64_t *count)
{
    int64_t size;
    int rc;

    if ((rc = ingest_avro_scan_long(s, count)) != 0) {
        return rc;
    }
    if (*count < 0) {
        if (*count == INT64_MIN) {
            return ingest_avro_reason_bad(s->reason, s->reason_len, "bad block count in field %s",
                                          s->field);
        }
        *count = -*count;
        if ((rc = ingest_avro_scan_long(s, &size)) != 0) {
            return rc;
        }
        if (size < 0) {
            return ingest_avro_reason_bad(s->reason, s->reason_len,
                                          "negative block size %lld in field %s", (long long)size,
                                          s->field);
        }
    }
    if ((uint64_t)*count > (size_t)(s->end - s->p)) {
        return ingest_avro_reason_bad(s->reason, s->reason_len,
                                      "truncated: field %s declares %lld items, %zu bytes left",
                                      s->field, (long long)*count, (size_t)(s->end - s->p));
    }
    return 0;
}

/* Arrays and maps: blocks of items. */
static int scan_blocks(scan_t *s, avro_schema_t items, int is_map, int depth)
{
    int rc;
    for (;;) {
        int64_t count;
        if ((rc = ingest_avro_scan_block_count(s, &count)) != 0) {
            return rc;
        }
        if (count == 0) {
            return 0;
        }
        for (int64_t i = 0; i < count; i++) {
            if (is_map) {
                int64_t key_len;
                if ((rc = ingest_avro_scan_long(s, &key_len)) != 0 ||
                    (rc = ingest_avro_scan_skip(s, key_len, "map key")) != 0) {
                    return rc;
                }
            }
            if ((rc = ingest_avro_scan_value(s, items, depth + 1)) != 0) {
                return rc;
            }
        }
    }
}

/* An array of strings, each checked as ingest_avro_text_check does (items are never empty).
 * out->str marks where the array starts and out->i64 how many bytes it spans, so the record commit
 * can walk it again; out->len sums the items' lengths. */
int ingest_avro_scan_string_array(scan_t *s, field_value_t *out)
{
    const uint8_t *start = s->p;
    int rc;

    out->present = 1;
    out->len = 0;
    out->n_items = 0;
    for (;;) {
        int64_t count;
        if ((rc = ingest_avro_scan_block_count(s, &count)) != 0) {
            return rc;
        }
        if (count == 0) {
            break;
        }
        for (int64_t i = 0; i < count; i++) {
            field_value_t item = {0};
            if ((rc = ingest_avro_scan_string(s, &item)) != 0 ||
                (rc = ingest_avro_text_check(s->field, item.str, item.len, 1, s->reason,
                                             s->reason_len)) != 0) {
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
        int rc = ingest_avro_scan_value(s, avro_schema_record_field_get_by_index(schema, (int)i),
                                        depth + 1);
        if (rc != 0) {
            return rc;
        }
    }
    s->field = outer;
    return 0;
}

/* Returns 0 when the bytes at s->p hold one well-formed value of schema (and advances past
 * it), else INGEST_AVRO_BAD with the reason. */
int ingest_avro_scan_value(scan_t *s, avro_schema_t schema, int depth)
{
    int64_t v;
    int rc;

    if (depth > SCAN_DEPTH_MAX) {
        return ingest_avro_reason_bad(s->reason, s->reason_len,
                                      "schema nesting deeper than %d at field %s", SCAN_DEPTH_MAX,
                                      s->field);
    }
    switch (avro_typeof(schema)) {
    case AVRO_NULL:
        return 0;
    case AVRO_BOOLEAN:
        return ingest_avro_scan_bool(s, &v);
    case AVRO_INT32:
        return ingest_avro_scan_int(s, AVRO_INT32, &v);
    case AVRO_INT64:
        return ingest_avro_scan_long(s, &v);
    case AVRO_FLOAT:
        return ingest_avro_scan_skip(s, 4, "float");
    case AVRO_DOUBLE:
        return ingest_avro_scan_skip(s, 8, "double");
    case AVRO_STRING:
    case AVRO_BYTES:
        if ((rc = ingest_avro_scan_long(s, &v)) != 0) {
            return rc;
        }
        return ingest_avro_scan_skip(s, v, avro_typeof(schema) == AVRO_STRING ? "string" : "bytes");
    case AVRO_FIXED:
        return ingest_avro_scan_skip(s, avro_schema_fixed_size(schema), "fixed");
    case AVRO_ENUM:
        return ingest_avro_scan_index(s, avro_schema_enum_number_of_symbols(schema), 1, &v);
    case AVRO_UNION:
        if ((rc = ingest_avro_scan_index(s, (int64_t)avro_schema_union_size(schema), 0, &v)) != 0) {
            return rc;
        }
        return ingest_avro_scan_value(s, avro_schema_union_branch(schema, (int)v), depth + 1);
    case AVRO_ARRAY:
        return scan_blocks(s, avro_schema_array_items(schema), 0, depth);
    case AVRO_MAP:
        return scan_blocks(s, avro_schema_map_values(schema), 1, depth);
    case AVRO_RECORD:
        return scan_record(s, schema, depth);
    case AVRO_LINK:
        return ingest_avro_scan_value(s, avro_schema_link_target(schema), depth + 1);
    }
    return ingest_avro_reason_bad(s->reason, s->reason_len, "field %s has an unknown Avro type",
                                  s->field);
}
