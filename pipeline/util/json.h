/* A strict JSON (RFC 8259) DOM parser, for the few JSON files the model runtime reads: safetensors
 * headers and Hugging Face config.json / tokenizer files. Strict on purpose: these files decide
 * tensor shapes and byte offsets, so anything a lenient parser would guess at is refused with the
 * byte offset of the problem instead. */
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

/* Frees a root returned by json_parse and everything under it; NULL is fine. */
void json_free(json_value_t *v);

/* The member named key of an object; NULL when v is NULL, not an object, or lacks it. */
const json_value_t *json_get(const json_value_t *v, const char *key);

/* Writes s as a JSON string literal (with quotes, escaping ", \\, control characters as \u00XX)
 * into out (cap bytes, NUL-terminated when cap > 0). Returns the length the full literal needs
 * (without the NUL), like snprintf; the output is complete only when that is < cap. */
size_t json_escape(const char *s, char *out, size_t cap);

/* The n strings as one JSON array text ["a","b"], malloc'ed (the caller frees it); NULL when out
 * of memory. */
char *json_string_array(const char *const *v, size_t n);

#endif
