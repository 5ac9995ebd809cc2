/* A minimal, bounded JSON reader for the two places ingest reads JSON text: the schema
 * registry's answers (one string out of an object) and reader schemas (field defaults, which Avro
 * C parses but does not keep). It walks the text in place; only strings are decoded. Every read
 * stays within [p, end), and nesting deeper than INGEST_JSON_DEPTH_MAX is refused. */
#ifndef VIGIL_INGEST_JSON_H
#define VIGIL_INGEST_JSON_H

#include <stddef.h>

#define INGEST_JSON_DEPTH_MAX 64

typedef struct ingest_json {
    const char *p;   /* where reading stands */
    const char *end; /* one past the last byte */
} ingest_json_t;

/* Skips spaces, tabs and line ends. */
void ingest_json_space(ingest_json_t *j);

/* The string at j->p (which must be '"'): skipped when out is NULL, else unescaped into *out
 * (malloc'ed, NUL-terminated; *len bytes before the NUL when len is not NULL). A \u0000 or a lone
 * surrogate is refused: neither is text a schema holds. Returns 0, -1 malformed, -2 out of
 * memory. */
int ingest_json_string(ingest_json_t *j, char **out, size_t *len);

/* Whether the literal word (null, true, false) is at j->p; consumes it if so. */
int ingest_json_word(ingest_json_t *j, const char *word);

/* Skips the value at j->p (depth: how deep it is nested already). Returns 0 or -1. */
int ingest_json_skip(ingest_json_t *j, int depth);

/* Positions j at the value of a top-level key of the object at j->p. Returns 0, or -1 when it
 * is not an object or lacks the key. */
int ingest_json_find(ingest_json_t *j, const char *key);

#endif
