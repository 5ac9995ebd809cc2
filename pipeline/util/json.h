/* The one JSON reader and writer of vigil. Reading: a strict RFC 8259 parser into a DOM, for
 * safetensors headers, Hugging Face config.json / tokenizer files, model metadata, reader schemas
 * (their field defaults), the schema registry's answers and JSON Lines event files. Strict on
 * purpose: these texts decide tensor shapes, byte offsets and the values of events, so anything a
 * lenient parser would guess at is refused with the byte offset of the problem instead. Writing:
 * string literals (json_escape), numbers that read back exactly, and a growable buffer
 * (json_buf_t) to build a document in; the parser reads back whatever these write. */
#ifndef VIGIL_JSON_H
#define VIGIL_JSON_H

#include <stddef.h>
#include <stdint.h>

/* Arrays and objects nested deeper than this are refused (the parser recurses once per level). */
#define JSON_DEPTH_MAX 64

typedef enum json_type {
    JSON_NULL,
    JSON_BOOL,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT
} json_type_t;

typedef struct json_value json_value_t;
struct json_value {
    json_type_t type;
    int boolean;     /* JSON_BOOL */
    double number;   /* JSON_NUMBER */
    int is_integer;  /* JSON_NUMBER written without fraction or exponent, and fits int64 */
    int64_t integer; /* exact value when is_integer */
    char *string; /* JSON_STRING: unescaped, NUL-terminated (may contain no NUL: \u0000 refused) */
    size_t string_len;
    json_value_t *items; /* JSON_ARRAY: n items; JSON_OBJECT: n member values */
    char **keys;         /* JSON_OBJECT: n keys, unescaped */
    size_t n;
};

/* Parses text[0..len) (need not be NUL-terminated) as one JSON value with optional whitespace
 * around it. Strict: no trailing commas, no comments, no leading zeros, no NaN/Infinity, control
 * characters in strings refused, \u escapes with surrogate pairs decoded to UTF-8 (lone surrogates
 * refused), invalid UTF-8 refused, duplicate object keys refused, nesting deeper than
 * JSON_DEPTH_MAX (64) refused. Numbers that overflow a double (1e999) are refused too. Returns the
 * root (free with json_free) or NULL with err filled as "json: <what is wrong> at byte <offset>",
 * or "json: out of memory". */
json_value_t *json_parse(const char *text, size_t len, char *err, size_t errlen);

/* For a reader that walks a larger text itself (a JSON Lines record, to name the field an error is
 * about): parses the one value that starts at text[*pos] (whitespace before it skipped) and ends
 * at or before len into *out, with json_parse's rules and messages, byte offsets counted from
 * text. Returns 0 with *pos just past the value (what follows it is not looked at, so "1.2.3"
 * reads as 1.2), or -1 with err, *pos unchanged and *out a JSON_NULL. Either way *out owns what
 * it holds until json_clear; nothing else is allocated, so a reader can keep its values in
 * place. */
int json_parse_next(const char *text, size_t len, size_t *pos, json_value_t *out, char *err,
                    size_t errlen);

/* Frees a root returned by json_parse and everything under it; NULL is fine. */
void json_free(json_value_t *v);

/* Frees what v holds (strings, items, keys) but not v itself, and leaves it a JSON_NULL: for a
 * value json_parse_next filled. */
void json_clear(json_value_t *v);

/* The member named key of an object; NULL when v is NULL, not an object, or lacks it. */
const json_value_t *json_get(const json_value_t *v, const char *key);

/* ---- writing (json_write.c) ---- */

/* Writes s (UTF-8, which is copied as it is) as a JSON string literal, with its quotes: '"' and
 * '\\' escaped, line feed, carriage return and tab as \n, \r and \t, the other control
 * characters as \u00XX. Into out (cap bytes, NUL-terminated when cap > 0); returns the length
 * the full literal needs (without the NUL), like snprintf: the output is complete only when that
 * is < cap. s NULL is written as "". */
size_t json_escape(const char *s, char *out, size_t cap);

/* Room json_double_text needs, NUL included. */
#define JSON_DOUBLE_MAX 32

/* The shortest of %.15g, %.16g and %.17g that reads back as exactly v, with '.' whatever the
 * locale, into buf; "null" when v is NaN or infinite (JSON has neither). Returns buf. */
const char *json_double_text(double v, char buf[JSON_DOUBLE_MAX]);

/* A growable buffer to build a JSON text in. Start it zeroed ({0}); each json_buf_ call appends
 * and keeps p NUL-terminated. When an allocation fails, failed is set and later calls do nothing,
 * so a writer checks failed once, at the end. json_buf_free frees p and zeroes the buffer. */
typedef struct json_buf {
    char *p;
    size_t len, cap;
    int failed;
} json_buf_t;

/* n bytes of s as they are: punctuation, or a value the caller made (json_buf_printf). */
void json_buf_raw(json_buf_t *b, const char *s, size_t n);
void json_buf_puts(json_buf_t *b, const char *s);
/* printf-formatted text as it is; the caller makes sure it is JSON (numbers, literals). */
void json_buf_printf(json_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* s as a string literal (json_escape). */
void json_buf_string(json_buf_t *b, const char *s);
/* Empties the buffer for reuse (keeps the allocation) and clears failed. */
void json_buf_reset(json_buf_t *b);
void json_buf_free(json_buf_t *b);

/* The n strings as one JSON array text ["a","b"], malloc'ed (the caller frees it); NULL when out
 * of memory. */
char *json_string_array(const char *const *v, size_t n);

#endif
