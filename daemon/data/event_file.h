/* Labelled event files: BehaviorEvents with an optional is_fraud label, in CSV, JSON Lines or an
 * Avro object container file. `vigil produce --output FILE` writes them; `vigil train risk --data
 * FILE` reads them.
 *
 * The columns (CSV), keys (JSONL) or record fields (Avro) are BehaviorEvent's
 * (ingest/schemas/BehaviorEvent.avsc): event_id, event_type, user_id, account_id, device_id, ip,
 * amount, currency, merchant_id, merchant_category, country, latitude, longitude, event_time,
 * channel, then is_fraud. event_time is epoch milliseconds, an integer, in every format.
 *
 * - CSV (RFC 4180): a header row naming the columns, in any order; event_id, event_type, user_id
 *   and event_time are required, a missing optional column is null throughout, is_fraud may be
 *   absent (every row unlabelled). A field holding a comma, a quote or a line break is quoted
 *   ("" for a quote inside). An empty field is null; a quoted empty field ("") is an empty string.
 *   is_fraud is 0 or 1 (true and false are read too). Rows end with LF when written; CRLF is read.
 * - JSONL (.jsonl, .ndjson): one object per line, strict JSON (RFC 8259: no raw control
 *   characters or invalid UTF-8 in strings, numbers as JSON writes them, no duplicate keys); null
 *   or an absent key is null; is_fraud is true or false (0 and 1 are read too). Blank lines are
 *   skipped.
 * - Avro (.avro): an object container file whose records are BehaviorEvent's fields plus
 *   is_fraud: ["null", "boolean"]. On reading, the file's own schema says where each field is: a
 *   field may also be a plain type or a union of null and it, numbers int, long, float or double,
 *   event_type an enum or a string, is_fraud a boolean or an int.
 *
 * A column, key or field not in that list is refused (extra fields are not supported: n_extra is
 * always 0, and a writer does not write an event's extras). Numbers must be finite. Errors name
 * the file and where: "FILE:LINE: ..." for CSV and JSONL (the line a record starts on), "FILE:
 * record N: ..." for Avro (N from 1). */
#ifndef VIGIL_EVENT_FILE_H
#define VIGIL_EVENT_FILE_H

#include <stddef.h>

#include "ingest_record.h"

typedef enum event_file_format {
    EVENT_FILE_CSV,
    EVENT_FILE_JSONL,
    EVENT_FILE_AVRO
} event_file_format_t;

/* Format from the file name: .csv, .jsonl/.ndjson, .avro. Returns 0 or -1. */
int event_file_format_from_name(const char *path, event_file_format_t *fmt);

typedef struct event_file_writer event_file_writer_t;

/* Creates (or truncates) path and, for CSV, writes the header row. NULL with err on failure. */
event_file_writer_t *event_file_writer_new(const char *path, event_file_format_t fmt, char *err,
                                           size_t errlen);

/* is_fraud: 0, 1, or -1 for unlabelled (written as empty / null). Refuses (-1, err) an event
 * without event_id, user_id or a known event_type, a number that is not finite, or another
 * is_fraud; returns 0 when the event was written or buffered. */
int event_file_write(event_file_writer_t *w, const ingest_event_t *ev, int is_fraud, char *err,
                     size_t errlen);

int event_file_writer_close(event_file_writer_t *w, char *err,
                            size_t errlen); /* flushes, frees; reports write errors */

typedef struct event_file_reader event_file_reader_t;

event_file_reader_t *event_file_reader_new(const char *path, char *err,
                                           size_t errlen); /* format from name */

/* Next event into *ev (strings valid until the next call) and its label into *is_fraud (-1 when
   the file has none for it). Returns 1 read, 0 end of file, -1 error (err says file:line or record
   number and what is wrong, e.g. a missing required field, a bad number, a bad label). */
int event_file_read(event_file_reader_t *r, ingest_event_t *ev, int *is_fraud, char *err,
                    size_t errlen);

void event_file_reader_free(event_file_reader_t *r);

#endif
