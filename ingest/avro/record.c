/* Filling an ingest_record_t from checked field values, the last step of both decoders.
 * Strings point into the message until they are copied into rec->buf, which only grows (as does
 * rec->list, for string arrays and the extra fields' strings): nothing is allocated per message
 * in steady state. */
#include "ingest_avro_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ingest_record_clear(ingest_record_t *rec)
{
    free(rec->buf);
    free(rec->list);
    /* Zero the string pointers too: they pointed into the buffers just freed. */
    memset(rec, 0, sizeof *rec);
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
            ingest_avro_text_set(reason, reason_len,
                                 "out of memory growing the record buffer to %zu", cap);
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
            ingest_avro_text_set(reason, reason_len,
                                 "out of memory growing the record's list to %zu", cap);
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

/* Copies len bytes of str to rec->buf at *pos with a NUL after them, moves *pos past the NUL
 * and returns the copy. rec->buf has room: record_size counted it. */
static const char *record_string_put(ingest_record_t *rec, size_t *pos, const char *str, size_t len)
{
    char *copy = rec->buf + *pos;
    memcpy(copy, str, len);
    copy[len] = '\0';
    *pos += len + 1;
    return copy;
}

/* Commits the extra fields' values into rec, whose buffers ingest_avro_record_commit has sized:
 * the numbers at the start of rec->buf, the strings from pos on, their pointers in rec->list
 * from list_pos on. */
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
            strs[e] = record_string_put(rec, &pos, v->str, v->len);
        }
    }
    rec->event.n_extra = dec->n_extra;
    rec->event.extra_num = nums;
    rec->event.extra_str = strs;
}

/* The bytes rec->buf and the pointers rec->list need for vals and the extra fields' values.
 * *pos: where the fields' strings start in rec->buf, after the extra fields' numbers. */
static void record_size(const ingest_avro_t *dec, const field_value_t *vals, size_t *need,
                        size_t *n_list, size_t *pos)
{
    const record_type_t *t = dec->type;

    *need = 0;
    *n_list = 0;
    *pos = 0;
    if (dec->n_extra > 0) {
        /* The extra fields' numbers lead rec->buf, where malloc's alignment suits doubles. */
        *pos = dec->n_extra * sizeof(double);
        *need = *pos;
        *n_list = dec->n_extra;
        for (size_t e = 0; e < dec->n_extra; e++) {
            if (dec->extra_vals[e].present && dec->extras[e].type == INGEST_EXTRA_STRING) {
                *need += dec->extra_vals[e].len + 1;
            }
        }
    }
    for (int i = 0; i < t->n_fields; i++) {
        if (vals[i].present && vals[i].str != NULL) {
            /* a NUL after each string, and after each item of an array */
            *need += vals[i].len + (t->fields[i].kind == FIELD_STRING_ARRAY ? vals[i].n_items : 1);
        }
        if (vals[i].present && t->fields[i].kind == FIELD_STRING_ARRAY) {
            *n_list += vals[i].n_items;
        }
    }
}

/* Commits the string array v of field spec: its items copied into rec->buf from *pos on, their
 * pointers into rec->list from *list_pos on (both moved past them). The array is walked a
 * second time, already validated by ingest_avro_scan_string_array, so a failure here is the
 * program's (INGEST_AVRO_ERR). */
static int record_commit_array(ingest_record_t *rec, const field_spec_t *spec,
                               const field_value_t *v, size_t *pos, size_t *list_pos, char *reason,
                               size_t reason_len)
{
    const char *const *items = NULL;
    size_t n = v->present ? v->n_items : 0;

    if (n > 0) {
        scan_t walk = {(const uint8_t *)v->str, (const uint8_t *)v->str + v->i64, spec->name,
                       reason, reason_len};
        items = rec->list + *list_pos;
        for (size_t k = 0; k < n;) {
            int64_t count;
            if (ingest_avro_scan_block_count(&walk, &count) != 0 || count == 0) {
                ingest_avro_text_set(reason, reason_len, "field %s changed between two reads",
                                     spec->name);
                return INGEST_AVRO_ERR;
            }
            for (int64_t c = 0; c < count && k < n; c++, k++) {
                field_value_t item = {0};
                if (ingest_avro_scan_string(&walk, &item) != 0) {
                    ingest_avro_text_set(reason, reason_len, "field %s changed between two reads",
                                         spec->name);
                    return INGEST_AVRO_ERR;
                }
                rec->list[(*list_pos)++] = record_string_put(rec, pos, item.str, item.len);
            }
        }
    }
    memcpy((char *)rec + spec->offset, &items, sizeof items);
    memcpy((char *)rec + spec->aux_offset, &n, sizeof n);
    return INGEST_AVRO_OK;
}

/* Commits checked field values into rec. Strings are copied into rec->buf, so vals may point
 * into the message or the schema (enum symbols). */
int ingest_avro_record_commit(const ingest_avro_t *dec, ingest_record_t *rec,
                              const field_value_t *vals, char *reason, size_t reason_len)
{
    const record_type_t *t = dec->type;
    size_t need, n_list, pos, list_pos = 0;
    int rc;

    record_size(dec, vals, &need, &n_list, &pos);
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
                copy = record_string_put(rec, &pos, vals[i].str, vals[i].len);
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
        case FIELD_STRING_ARRAY:
            rc = record_commit_array(rec, spec, &vals[i], &pos, &list_pos, reason, reason_len);
            if (rc != INGEST_AVRO_OK) {
                return rc;
            }
            break;
        }
    }
    if (dec->kind == INGEST_KIND_EVENT) {
        record_commit_extras(dec, rec, pos, list_pos);
    }
    return INGEST_AVRO_OK;
}
