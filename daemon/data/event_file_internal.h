/* Internals of the event files (event_file.h), shared by their files and by nothing else: the
 * field table, the writer's and reader's state, and what each format's file offers the dispatch.
 *
 *   event_file.c    the fields, the format from a file name, the writer and reader dispatch
 *   event_text.c    what CSV and JSON Lines share: the record buffer, a field as text, line
 *                   reading, and the one conversion from text values to an event
 *   event_csv.c     CSV (RFC 4180, over csv.h)
 *   event_jsonl.c   JSON Lines (over pipeline/util/json.h)
 *   event_avro.c    Avro object container files (Avro C) */
#ifndef VIGIL_EVENT_FILE_INTERNAL_H
#define VIGIL_EVENT_FILE_INTERNAL_H

#include <avro.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event_file.h"
#include "ingest_record.h"
#include "json.h"

/* ---- The fields, in file order (also the Avro schema's field order). ---- */

enum {
    EF_EVENT_ID,
    EF_EVENT_TYPE,
    EF_USER_ID,
    EF_ACCOUNT_ID,
    EF_DEVICE_ID,
    EF_IP,
    EF_AMOUNT,
    EF_CURRENCY,
    EF_MERCHANT_ID,
    EF_MERCHANT_CATEGORY,
    EF_COUNTRY,
    EF_LATITUDE,
    EF_LONGITUDE,
    EF_EVENT_TIME,
    EF_CHANNEL,
    EF_IS_FRAUD,
    EF_NFIELDS
};

typedef enum ef_type {
    EF_T_STRING, /* required when the field says so, else optional */
    EF_T_ENUM,   /* event_type: one of ef_event_types */
    EF_T_DOUBLE, /* optional */
    EF_T_TIME,   /* event_time: required integer milliseconds */
    EF_T_LABEL   /* is_fraud: optional boolean */
} ef_type_t;

typedef struct ef_field {
    const char *name;
    ef_type_t type;
    int required;
} ef_field_t;

extern const ef_field_t ef_fields[EF_NFIELDS];

/* BehaviorEvent's EventType symbols, in the schema's order. */
#define EF_N_EVENT_TYPES 5
extern const char *const ef_event_types[EF_N_EVENT_TYPES];

/* A CSV record or JSONL line longer than this is refused rather than grown without bound. */
#define EF_RECORD_MAX (1u << 20)
/* CSV fields split out of one record at most; more than EF_NFIELDS is refused anyway. */
#define EF_MAX_COLUMNS 64

/* ---- The writer and the reader: one struct each for every format. ---- */

struct event_file_writer {
    event_file_format_t fmt;
    char *path;
    FILE *f;
    int failed;     /* a write failed: close says so */
    json_buf_t rec; /* CSV, JSONL: the record being formatted */
    /* Avro. */
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    int have_value;
    avro_file_writer_t aw;
};

/* A value as a text format has it, before conversion. */
typedef enum ef_kind {
    EF_V_NULL, /* null, or absent */
    EF_V_TEXT, /* a string (JSON), any field (CSV) */
    EF_V_NUMBER,
    EF_V_TRUE,
    EF_V_FALSE
} ef_kind_t;

typedef struct ef_value {
    ef_kind_t kind;
    const char *s;            /* TEXT and NUMBER */
    const json_value_t *json; /* JSONL NUMBER: s as parsed already, so it is not converted twice */
} ef_value_t;

/* Where a field of the file's Avro schema is. */
typedef struct ef_avro_field {
    int index;               /* in the writer schema, -1 when it has no such field */
    int null_branch;         /* -1 when the field is not a union with null */
    avro_type_t type;        /* of the value (the non-null branch) */
    avro_schema_t enum_type; /* event_type as an enum */
} ef_avro_field_t;

struct event_file_reader {
    event_file_format_t fmt;
    char *path;
    FILE *f;
    int failed;
    uint64_t line_no;   /* CSV, JSONL: physical lines read */
    uint64_t record_no; /* records returned, plus the one being read */
    char *line;         /* getline's buffer */
    size_t line_cap;
    /* CSV. */
    char *rec; /* the current record, split and unescaped in place */
    size_t rec_len, rec_cap;
    int col_field[EF_MAX_COLUMNS]; /* field of each column */
    int n_cols;
    /* JSONL: the current record's string values (parsed) and number tokens (as written). */
    json_value_t owned[EF_NFIELDS];
    char num[EF_NFIELDS][64];
    /* Avro. */
    avro_file_reader_t ar;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    int have_value;
    ef_avro_field_t af[EF_NFIELDS];
};

/* ---- event_file.c: the fields. ---- */

/* The index of the field called name, or -1. */
int ef_field_by_name(const char *name);
/* The EventType symbol s is (a pointer into ef_event_types), or NULL. */
const char *ef_event_type_symbol(const char *s);
/* The event's value of string field k (event_type included). */
const char *ef_event_string(const ingest_event_t *ev, int k);
void ef_event_set_string(ingest_event_t *ev, int k, const char *s);
/* Sets number field k (amount, with has_amount; latitude; longitude). has_geo is the caller's. */
void ef_event_set_double(ingest_event_t *ev, int k, double d);
/* A value for a message: at most 40 bytes, control characters as '?'. */
const char *ef_show(const char *s, char *buf, size_t len);

/* ---- event_text.c: what CSV and JSON Lines share. ---- */

/* Appends n bytes of s (or the string s) to the record in w->rec. 0, or -1 out of memory. */
int ef_put(event_file_writer_t *w, const char *s, size_t n);
int ef_puts(event_file_writer_t *w, const char *s);
/* Field k of ev as text into buf (is_fraud as true/false when json, else 1/0): 0 done, 1 null.
 * Strings come back in *str instead. */
int ef_field_text(const ingest_event_t *ev, int is_fraud, int k, int json, char *buf, size_t len,
                  const char **str);
/* Reads one physical line into r->line; its length, 0 at end of file, -1 error (err set). */
long ef_getline(event_file_reader_t *r, char *err, size_t errlen);
/* Cuts a line end (LF or CRLF) off s, n bytes long; returns the new length. */
size_t ef_strip_eol(char *s, size_t n);
/* Converts the text values of one record (v, by field) into ev and *is_fraud. loc: "FILE:LINE".
 */
int ef_fill(const char *loc, const ef_value_t *v, ingest_event_t *ev, int *is_fraud, char *err,
            size_t errlen);

/* ---- event_csv.c. ---- */

/* Writes the header row to w's file. 0, or -1 with err. */
int ef_csv_write_header(event_file_writer_t *w, char *err, size_t errlen);
/* Formats ev as one row into w->rec. 0, or -1 out of memory. */
int ef_csv_format(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud);
/* Reads and checks the header row. 0, or -1 with err. */
int ef_csv_read_header(event_file_reader_t *r, char *err, size_t errlen);
/* As event_file_read. */
int ef_csv_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                size_t errlen);

/* ---- event_jsonl.c. ---- */

/* Formats ev as one line into w->rec. 0, or -1 out of memory. */
int ef_jsonl_format(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud);
/* As event_file_read. */
int ef_jsonl_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                  size_t errlen);
/* Frees the strings of the last record read. */
void ef_jsonl_release(event_file_reader_t *r);

/* ---- event_avro.c. ---- */

/* Sets up Avro C's writer on w->f. 0, or -1 with err. */
int ef_avro_writer_open(event_file_writer_t *w, char *err, size_t errlen);
/* As event_file_write, past the checks every format makes. */
int ef_avro_write(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud, char *err,
                  size_t errlen);
/* Closes Avro C's writer, which writes the last block. 0, or -1 with err. */
int ef_avro_writer_close(event_file_writer_t *w, char *err, size_t errlen);
/* Frees the Avro parts of w (not w->f). */
void ef_avro_writer_release(event_file_writer_t *w);
/* Hands f, opened for reading, to Avro C (which closes it whatever happens) and maps the file's
 * schema onto the fields. 0, or -1 with err. */
int ef_avro_reader_open(event_file_reader_t *r, FILE *f, char *err, size_t errlen);
/* As event_file_read. */
int ef_avro_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                 size_t errlen);
/* Frees the Avro parts of r, closing its file. */
void ef_avro_reader_release(event_file_reader_t *r);

#endif
