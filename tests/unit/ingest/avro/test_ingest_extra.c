/* Unit tests for the extra fields of BehaviorEvent reader schemas (ingest/avro/): a user's own
 * columns (here V1..V28 and a few of other types) round-tripped through the encoder and both
 * decoders, resolved from writer schemas that lack some of them, promote them or add others,
 * refused when a writer cannot be read, and refused at load when the reader schema gives one a
 * type the record cannot hold. Needs no servers. */
#include "ingest_avro.h"
#include "test.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MSG_MAX 4096
#define EXTRA_MAX 40

static char schema_dir[PATH_MAX];
static char base_path[PATH_MAX];
static char tmpdir[] = "/tmp/vigil_extra_test_XXXXXX";
static char *base_text; /* BehaviorEvent.avsc */

/* The extra fields of the reader schema the tests use, after BehaviorEvent's own: V1..V28
 * (V28 with a non-zero default), then these. */
static const char reader_tail[] =
    "{\"name\": \"note\", \"type\": [\"null\", \"string\"], \"default\": null},\n"
    "{\"name\": \"tier\", \"type\": {\"type\": \"enum\", \"name\": \"Tier\", "
    "\"symbols\": [\"BRONZE\", \"SILVER\", \"GOLD\"]}, \"default\": \"BRONZE\"},\n"
    "{\"name\": \"n_items\", \"type\": \"int\"},\n"
    "{\"name\": \"is_vip\", \"type\": \"boolean\", \"default\": false},\n"
    "{\"name\": \"session_tag\", \"type\": [\"string\", \"null\"], \"default\": \"n\\u00e9ant\"}";
#define READER_EXTRAS 33

/* The schema directory and the BehaviorEvent schema in it. */
static int paths_init(void)
{
    if (test_schema_dir(schema_dir, sizeof schema_dir) < 0) {
        return -1;
    }
    int n =
        snprintf(base_path, sizeof base_path, "%.*s/BehaviorEvent.avsc", PATH_MAX - 64, schema_dir);
    return (n < 0 || (size_t)n >= sizeof base_path) ? -1 : 0;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = f ? malloc(65536) : NULL;
    if (text != NULL) {
        size_t n = fread(text, 1, 65535, f);
        text[n] = '\0';
    }
    if (f != NULL) {
        fclose(f);
    }
    return text;
}

/* Writes BehaviorEvent.avsc with `fields` (JSON objects, comma-separated) appended to its
 * fields, as tmpdir/<name>. Fills path. Returns 0 or -1. */
static int write_schema(const char *name, const char *fields, char *path, size_t pathlen)
{
    /* The last ']' closes the fields: EventType's symbols come before it. */
    const char *close = strrchr(base_text, ']');
    FILE *f;

    snprintf(path, pathlen, "%s/%s", tmpdir, name);
    if (close == NULL || (f = fopen(path, "w")) == NULL) {
        return -1;
    }
    fwrite(base_text, 1, (size_t)(close - base_text), f);
    fprintf(f, ",\n%s\n", fields);
    fputs(close, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* Rewrites the file at path with its first `from` replaced by `to`. Returns 0 or -1. */
static int replace_in_file(const char *path, const char *from, const char *to)
{
    char *text = read_text(path);
    char *at = text != NULL ? strstr(text, from) : NULL;
    FILE *f = at != NULL ? fopen(path, "w") : NULL;
    int rc = -1;

    if (f != NULL) {
        fwrite(text, 1, (size_t)(at - text), f);
        fputs(to, f);
        fputs(at + strlen(from), f);
        rc = fclose(f) == 0 ? 0 : -1;
    }
    free(text);
    return rc;
}

/* V1..V28 as fields, with V<int_at> an int (0: none) and V<skip_from> and later left out (0:
 * none), followed by tail. */
static void v_fields(char *out, size_t cap, int int_at, int skip_from, const char *tail)
{
    size_t n = 0;
    out[0] = '\0';
    for (int k = 1; k <= 28 && (skip_from == 0 || k < skip_from); k++) {
        n += (size_t)snprintf(out + n, cap - n,
                              "{\"name\": \"V%d\", \"type\": \"%s\", \"default\": %s},\n", k,
                              k == int_at ? "int" : "double", k == 28 ? "2.5" : "0");
    }
    snprintf(out + n, cap - n, "%s", tail);
}

static ingest_avro_t *codec_new(const char *path, ingest_format_t format)
{
    char err[512] = "";
    ingest_avro_t *c = ingest_avro_new(INGEST_KIND_EVENT, format, path, tmpdir, err, sizeof err);
    if (c == NULL) {
        fprintf(stderr, "ingest_avro_new %s: %s\n", path, err);
    }
    return c;
}

static ingest_record_t event_base(void)
{
    ingest_record_t rec = {.kind = INGEST_KIND_EVENT};
    rec.event.event_id = "evt-1";
    rec.event.event_type = "TRANSACTION";
    rec.event.user_id = "user-1";
    rec.event.has_amount = 1;
    rec.event.amount = 12.5;
    rec.event.currency = "EUR";
    rec.event.event_time_ms = INT64_C(1717171717171);
    return rec;
}

/* The value the tests give extra field `name` of type `type`, so records for writers with
 * different fields can be filled alike. */
static double value_num(const char *name)
{
    if (name[0] == 'V') {
        return atoi(name + 1) * 1.25 - 3.0;
    }
    if (strcmp(name, "n_items") == 0) {
        return 3;
    }
    if (strcmp(name, "is_vip") == 0) {
        return 1;
    }
    if (strcmp(name, "legacy_score") == 0) {
        return 99;
    }
    return 1;
}

static const char *value_str(const char *name)
{
    if (strcmp(name, "note") == 0) {
        return "hello, w\xc3\xb6rld";
    }
    if (strcmp(name, "tier") == 0) {
        return "GOLD";
    }
    if (strcmp(name, "session_tag") == 0) {
        return "s-1";
    }
    return "x";
}

/* Fills the extras of rec for codec c with the values above. */
static void fill_extras(const ingest_avro_t *c, ingest_record_t *rec, double *nums,
                        const char **strs)
{
    size_t n = ingest_avro_extra_count(c);
    for (size_t i = 0; i < n && i < EXTRA_MAX; i++) {
        const char *name = ingest_avro_extra_name(c, i);
        int is_num = ingest_avro_extra_type(c, i) == INGEST_EXTRA_NUMBER;
        nums[i] = is_num ? value_num(name) : NAN;
        strs[i] = is_num ? NULL : value_str(name);
    }
    /* Integral values where the codec holds an int. */
    for (size_t i = 0; i < n && i < EXTRA_MAX; i++) {
        if (strcmp(ingest_avro_extra_name(c, i), "V1") == 0) {
            nums[i] = 7;
        }
    }
    rec->event.n_extra = n;
    rec->event.extra_num = nums;
    rec->event.extra_str = strs;
}

/* The index of extra field name in c, or -1. */
static int extra_index(const ingest_avro_t *c, const char *name)
{
    for (size_t i = 0; i < ingest_avro_extra_count(c); i++) {
        if (strcmp(ingest_avro_extra_name(c, i), name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static double got_num(const ingest_avro_t *dec, const ingest_record_t *got, const char *name)
{
    int i = extra_index(dec, name);
    return i >= 0 && (size_t)i < got->event.n_extra ? got->event.extra_num[i] : -12345.0;
}

static const char *got_str(const ingest_avro_t *dec, const ingest_record_t *got, const char *name)
{
    int i = extra_index(dec, name);
    return i >= 0 && (size_t)i < got->event.n_extra ? got->event.extra_str[i] : "(missing)";
}

static void check_same_extras(const ingest_record_t *got, const ingest_record_t *want)
{
    CHECK(got->event.n_extra == want->event.n_extra);
    if (got->event.n_extra != want->event.n_extra) {
        return;
    }
    for (size_t i = 0; i < want->event.n_extra; i++) {
        double w = want->event.extra_num[i], g = got->event.extra_num[i];
        const char *ws = want->event.extra_str[i], *gs = got->event.extra_str[i];
        CHECK(isnan(w) ? isnan(g) : g == w);
        if (ws == NULL) {
            CHECK(gs == NULL);
        } else {
            CHECK_STR(gs, ws);
        }
    }
    CHECK_STR(got->event.event_id, want->event.event_id);
    CHECK(got->event.has_amount == want->event.has_amount && got->event.amount == 12.5);
    CHECK(got->event.event_time_ms == want->event.event_time_ms);
}

static int decode(ingest_avro_t *dec, const uint8_t *msg, long n, ingest_record_t *got,
                  char *reason, size_t reason_len)
{
    reason[0] = '\0';
    return n > 0 ? ingest_avro_decode(dec, msg, (size_t)n, got, reason, reason_len)
                 : INGEST_AVRO_ERR;
}

/* Decoding must say BAD with a reason containing each of the two strings. */
#define CHECK_BAD(dec, msg, n, a, b) check_bad_at(__LINE__, dec, msg, n, a, b)
static void check_bad_at(int line, ingest_avro_t *dec, const uint8_t *msg, long n, const char *a,
                         const char *b)
{
    ingest_record_t got = {0};
    char reason[256];
    int rc = decode(dec, msg, n, &got, reason, sizeof reason);
    int ok = rc == INGEST_AVRO_BAD && strstr(reason, a) != NULL && strstr(reason, b) != NULL;
    if (!ok) {
        fprintf(stderr, "line %d: rc %d reason \"%s\", expected BAD with \"%s\" and \"%s\"\n", line,
                rc, reason, a, b);
    }
    CHECK(ok);
    ingest_record_clear(&got);
}

/* xorshift64: deterministic, so a failing case reproduces. */
static uint64_t rng_state = 0x5eedf00dULL;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Every truncation of msg is refused; damaged copies (past the header_len bytes of Confluent
 * header) decode or are refused with a short printable reason, and a decoded record keeps the
 * promises of ingest_record.h (the sanitizer build watches the reads). */
static void fuzz(ingest_avro_t *dec, const uint8_t *msg, long n, size_t header_len)
{
    uint8_t bad[MSG_MAX];
    ingest_record_t got = {0};
    char reason[256];
    int truncations = 0, flips = 0;

    if (n <= (long)header_len + 1) {
        CHECK(0);
        return;
    }
    for (long cut = 1; cut < n; cut++) {
        truncations += decode(dec, msg, cut, &got, reason, sizeof reason) == INGEST_AVRO_BAD;
    }
    CHECK(truncations == n - 1);
    for (int i = 0; i < 2000; i++) {
        memcpy(bad, msg, (size_t)n);
        for (int k = 0; k < 3; k++) {
            bad[header_len + rng_next() % (uint64_t)(n - (long)header_len)] ^=
                (uint8_t)(1u << (rng_next() % 8));
        }
        int rc = decode(dec, bad, n, &got, reason, sizeof reason);
        int sane = rc == INGEST_AVRO_BAD && reason[0] != '\0' && strlen(reason) < 200;
        if (rc == INGEST_AVRO_OK) {
            sane = got.event.n_extra == ingest_avro_extra_count(dec);
            for (size_t e = 0; sane && e < got.event.n_extra; e++) {
                const char *str = got.event.extra_str[e];
                sane = ingest_avro_extra_type(dec, e) == INGEST_EXTRA_NUMBER
                           ? str == NULL
                           : isnan(got.event.extra_num[e]) && (str == NULL || strlen(str) < 100);
            }
        }
        flips += sane;
    }
    CHECK(flips == 2000);
    ingest_record_clear(&got);
}

static void test_api_and_round_trip(const char *reader)
{
    ingest_avro_t *plain = codec_new(reader, INGEST_FORMAT_PLAIN);
    ingest_avro_t *conf = codec_new(reader, INGEST_FORMAT_CONFLUENT);
    ingest_record_t rec = event_base(), got = {0};
    double nums[EXTRA_MAX];
    const char *strs[EXTRA_MAX];
    uint8_t msg[MSG_MAX];
    char err[256] = "", reason[256], path[PATH_MAX] = "";
    long n;

    CHECK(plain != NULL && conf != NULL);
    if (plain == NULL || conf == NULL) {
        goto out;
    }
    CHECK(ingest_avro_extra_count(plain) == READER_EXTRAS);
    CHECK_STR(ingest_avro_extra_name(plain, 0), "V1");
    CHECK_STR(ingest_avro_extra_name(plain, 27), "V28");
    CHECK_STR(ingest_avro_extra_name(plain, 28), "note");
    CHECK_STR(ingest_avro_extra_name(plain, 32), "session_tag");
    CHECK(ingest_avro_extra_type(plain, 0) == INGEST_EXTRA_NUMBER);
    CHECK(ingest_avro_extra_type(plain, 28) == INGEST_EXTRA_STRING);
    CHECK(ingest_avro_extra_type(plain, 29) == INGEST_EXTRA_STRING); /* tier: an enum */
    CHECK(ingest_avro_extra_type(plain, 30) == INGEST_EXTRA_NUMBER); /* n_items: an int */
    CHECK(ingest_avro_extra_type(plain, 31) == INGEST_EXTRA_NUMBER); /* is_vip: a boolean */
    CHECK(ingest_avro_extra_name(plain, READER_EXTRAS) == NULL);

    /* Plain format: the direct decoder. */
    fill_extras(plain, &rec, nums, strs);
    n = ingest_avro_encode(plain, &rec, 0, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    CHECK(decode(plain, msg, n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
    check_same_extras(&got, &rec);
    CHECK(got_num(plain, &got, "is_vip") == 1.0);
    CHECK_STR(got_str(plain, &got, "tier"), "GOLD");
    fuzz(plain, msg, n, 0);

    /* Nulls: NaN and NULL where the fields are optional. */
    strs[extra_index(plain, "note")] = NULL;
    strs[extra_index(plain, "session_tag")] = NULL;
    nums[extra_index(plain, "is_vip")] = 0;
    n = ingest_avro_encode(plain, &rec, 0, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    CHECK(decode(plain, msg, n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
    check_same_extras(&got, &rec);
    CHECK(got_str(plain, &got, "note") == NULL);
    CHECK(got_num(plain, &got, "is_vip") == 0.0);
    CHECK(isnan(got_num(plain, &got, "note")));

    /* Confluent format, the writer schema being the reader's: still the direct decoder. */
    char *text = read_text(reader);
    FILE *f = NULL;
    snprintf(path, sizeof path, "%s/10.avsc", tmpdir);
    CHECK(text != NULL && (f = fopen(path, "w")) != NULL);
    if (f != NULL) {
        fputs(text, f);
        CHECK(fclose(f) == 0);
    }
    free(text);
    fill_extras(conf, &rec, nums, strs);
    n = ingest_avro_encode(conf, &rec, 10, msg, sizeof msg, err, sizeof err);
    CHECK(n > 5);
    CHECK(decode(conf, msg, n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
    check_same_extras(&got, &rec);

    /* Steady state: the record's buffers are reused, and the extras live in them. */
    char *buf = got.buf;
    const char **list = got.list;
    int same = 1;
    for (int i = 0; i < 100; i++) {
        if (decode(conf, msg, n, &got, reason, sizeof reason) != INGEST_AVRO_OK || got.buf != buf ||
            got.list != list) {
            same = 0;
        }
    }
    CHECK(same);
    CHECK((const char *)got.event.extra_num == got.buf);
    CHECK(got.event.extra_str == (const char *const *)got.list);
    int note = extra_index(conf, "note");
    CHECK(got.event.extra_str[note] > got.buf && got.event.extra_str[note] < got.buf + got.buf_cap);

    /* Two records decoded one after the other keep their own values. */
    ingest_record_t other = {0};
    nums[0] = 1000;
    n = ingest_avro_encode(conf, &rec, 10, msg, sizeof msg, err, sizeof err);
    CHECK(decode(conf, msg, n, &other, reason, sizeof reason) == INGEST_AVRO_OK);
    CHECK(other.event.extra_num[0] == 1000 && got.event.extra_num[0] == 7);
    ingest_record_clear(&other);

    /* Values the decoder refuses, as it refuses them in BehaviorEvent's own fields. */
    fill_extras(plain, &rec, nums, strs);
    nums[1] = INFINITY;
    n = ingest_avro_encode(plain, &rec, 0, msg, sizeof msg, err, sizeof err);
    CHECK_BAD(plain, msg, n, "invalid field V2: not a finite number", "");
    fill_extras(plain, &rec, nums, strs);
    strs[note] = "\xc3\x28";
    n = ingest_avro_encode(plain, &rec, 0, msg, sizeof msg, err, sizeof err);
    CHECK_BAD(plain, msg, n, "invalid field note: not valid UTF-8", "");

    /* Encoding errors name the field. */
    fill_extras(plain, &rec, nums, strs);
    nums[0] = NAN; /* V1 is not optional */
    err[0] = '\0';
    CHECK(ingest_avro_encode(plain, &rec, 0, msg, sizeof msg, err, sizeof err) == -1);
    CHECK(strstr(err, "V1") != NULL);
    fill_extras(plain, &rec, nums, strs);
    nums[extra_index(plain, "n_items")] = 2.5;
    err[0] = '\0';
    CHECK(ingest_avro_encode(plain, &rec, 0, msg, sizeof msg, err, sizeof err) == -1);
    CHECK(strstr(err, "n_items") != NULL);
    fill_extras(plain, &rec, nums, strs);
    strs[extra_index(plain, "tier")] = "PLATINUM";
    err[0] = '\0';
    CHECK(ingest_avro_encode(plain, &rec, 0, msg, sizeof msg, err, sizeof err) == -1);
    CHECK(strstr(err, "tier") != NULL && strstr(err, "PLATINUM") != NULL);
    fill_extras(plain, &rec, nums, strs);
    rec.event.n_extra = 3;
    err[0] = '\0';
    CHECK(ingest_avro_encode(plain, &rec, 0, msg, sizeof msg, err, sizeof err) == -1);
    CHECK(strstr(err, "3 extra fields") != NULL);
    /* No extras in the record: n_items has no default and is required. */
    rec = event_base();
    err[0] = '\0';
    CHECK(ingest_avro_encode(plain, &rec, 0, msg, sizeof msg, err, sizeof err) == -1);
    CHECK(strstr(err, "n_items") != NULL);

out:
    ingest_avro_free(plain);
    ingest_avro_free(conf);
    ingest_record_clear(&got);
    unlink(path);
}

/* A writer schema that is not the reader's: read through the plan decoder. */
static void test_resolution(ingest_avro_t *dec)
{
    static const char writer_tail[] =
        "{\"name\": \"legacy_score\", \"type\": \"long\"},\n"
        "{\"name\": \"note\", \"type\": [\"null\", \"string\"], \"default\": null},\n"
        "{\"name\": \"tier\", \"type\": {\"type\": \"enum\", \"name\": \"Tier\", "
        "\"symbols\": [\"PLATINUM\", \"GOLD\", \"BRONZE\", \"SILVER\"]}},\n"
        "{\"name\": \"n_items\", \"type\": \"int\"}";
    char fields[8192], path[PATH_MAX], err[256] = "", reason[256];
    ingest_avro_t *enc = NULL;
    ingest_record_t rec = event_base(), got = {0};
    double nums[EXTRA_MAX];
    const char *strs[EXTRA_MAX];
    uint8_t msg[MSG_MAX];
    long n;

    /* 11: V1 an int, no V27 or V28, no is_vip or session_tag, a field the reader lacks, Tier
     * with a new symbol and another order. */
    v_fields(fields, sizeof fields, 1, 27, writer_tail);
    CHECK(write_schema("11.avsc", fields, path, sizeof path) == 0);
    enc = codec_new(path, INGEST_FORMAT_CONFLUENT);
    CHECK(enc != NULL);
    if (enc == NULL) {
        goto out;
    }
    CHECK(ingest_avro_extra_count(enc) == 30);
    fill_extras(enc, &rec, nums, strs);
    n = ingest_avro_encode(enc, &rec, 11, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    for (int pass = 0; pass < 2; pass++) { /* the second through the cached plan */
        int rc = decode(dec, msg, n, &got, reason, sizeof reason);
        CHECK(rc == INGEST_AVRO_OK);
        if (rc != INGEST_AVRO_OK) {
            fprintf(stderr, "resolution: %s\n", reason);
            goto out;
        }
        CHECK(got.event.n_extra == READER_EXTRAS);
        CHECK(got_num(dec, &got, "V1") == 7.0);               /* int promoted */
        CHECK(got_num(dec, &got, "V2") == value_num("V2"));   /* as written */
        CHECK(got_num(dec, &got, "V26") == value_num("V26")); /* as written */
        CHECK(got_num(dec, &got, "V27") == 0.0);              /* reader default */
        CHECK(got_num(dec, &got, "V28") == 2.5);              /* reader default */
        CHECK(got_num(dec, &got, "is_vip") == 0.0);           /* default false */
        CHECK_STR(got_str(dec, &got, "session_tag"), "n\xc3\xa9"
                                                     "ant"); /* "néant" */
        CHECK_STR(got_str(dec, &got, "note"), value_str("note"));
        CHECK_STR(got_str(dec, &got, "tier"), "GOLD"); /* by name, not by index */
        CHECK(got_num(dec, &got, "n_items") == 3.0);
        CHECK(got_str(dec, &got, "V1") == NULL && isnan(got_num(dec, &got, "tier")));
        CHECK_STR(got.event.event_id, "evt-1");
        CHECK(got.event.amount == 12.5 && got.event.currency != NULL);
    }

    fuzz(dec, msg, n, 5);

    /* A symbol the reader's enum lacks is a dead letter naming it. */
    strs[extra_index(enc, "tier")] = "PLATINUM";
    n = ingest_avro_encode(enc, &rec, 11, msg, sizeof msg, err, sizeof err);
    CHECK_BAD(dec, msg, n, "incompatible schema id 11: symbol PLATINUM of field tier", "Tier");
    strs[extra_index(enc, "tier")] = "SILVER";
    n = ingest_avro_encode(enc, &rec, 11, msg, sizeof msg, err, sizeof err);
    CHECK(decode(dec, msg, n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
    CHECK_STR(got_str(dec, &got, "tier"), "SILVER");
    /* A bad string on the resolved path too. */
    strs[extra_index(enc, "note")] = "a\xff";
    n = ingest_avro_encode(enc, &rec, 11, msg, sizeof msg, err, sizeof err);
    CHECK_BAD(dec, msg, n, "invalid field note: not valid UTF-8", "");
    ingest_avro_free(enc);
    enc = NULL;

    /* 12: no n_items, which the reader requires (no default): every message is refused. */
    v_fields(fields, sizeof fields, 0, 0, "{\"name\": \"extra_flag\", \"type\": \"boolean\"}");
    CHECK(write_schema("12.avsc", fields, path, sizeof path) == 0);
    enc = codec_new(path, INGEST_FORMAT_CONFLUENT);
    CHECK(enc != NULL);
    if (enc != NULL) {
        rec = event_base();
        fill_extras(enc, &rec, nums, strs);
        n = ingest_avro_encode(enc, &rec, 12, msg, sizeof msg, err, sizeof err);
        CHECK_BAD(dec, msg, n, "schema id 12 (", "no field n_items");
        ingest_avro_free(enc);
        enc = NULL;
    }

    /* 13: V3 a string where the reader has a double. */
    v_fields(fields, sizeof fields, 0, 0, reader_tail);
    CHECK(write_schema("13.avsc", fields, path, sizeof path) == 0);
    CHECK(replace_in_file(path, "\"V3\", \"type\": \"double\", \"default\": 0",
                          "\"V3\", \"type\": \"string\"") == 0);
    enc = codec_new(path, INGEST_FORMAT_CONFLUENT);
    CHECK(enc != NULL);
    if (enc != NULL) {
        rec = event_base();
        fill_extras(enc, &rec, nums, strs);
        n = ingest_avro_encode(enc, &rec, 13, msg, sizeof msg, err, sizeof err);
        CHECK_BAD(dec, msg, n, "schema id 13 (", "field V3 is string in the writer");
        ingest_avro_free(enc);
        enc = NULL;
    }

    /* 14: V5 optional in the writer, not in the reader: fine until a message holds a null. */
    v_fields(fields, sizeof fields, 0, 0, reader_tail);
    CHECK(write_schema("14.avsc", fields, path, sizeof path) == 0);
    CHECK(replace_in_file(path, "\"V5\", \"type\": \"double\", \"default\": 0",
                          "\"V5\", \"type\": [\"null\", \"double\"], \"default\": null") == 0);
    enc = codec_new(path, INGEST_FORMAT_CONFLUENT);
    CHECK(enc != NULL);
    if (enc != NULL) {
        rec = event_base();
        fill_extras(enc, &rec, nums, strs);
        n = ingest_avro_encode(enc, &rec, 14, msg, sizeof msg, err, sizeof err);
        CHECK(decode(dec, msg, n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
        CHECK(got_num(dec, &got, "V5") == value_num("V5"));
        nums[4] = NAN;
        n = ingest_avro_encode(enc, &rec, 14, msg, sizeof msg, err, sizeof err);
        CHECK_BAD(dec, msg, n, "incompatible schema id 14: field V5 holds a null", "");
    }

out:
    ingest_avro_free(enc);
    ingest_record_clear(&got);
    for (int id = 11; id <= 14; id++) {
        snprintf(path, sizeof path, "%s/%d.avsc", tmpdir, id);
        unlink(path);
    }
}

/* Reader schemas whose extra fields the record cannot hold are refused when the decoder is
 * made, naming the file, the field and its type. */
static void test_refused_readers(void)
{
    static const struct {
        const char *field;
        const char *want; /* in the error, besides the file and the field */
    } cases[] = {
        {"{\"name\": \"address\", \"type\": {\"type\": \"record\", \"name\": \"Address\", "
         "\"fields\": [{\"name\": \"city\", \"type\": \"string\"}]}}",
         "extra field address is a record (Address)"},
        {"{\"name\": \"tags\", \"type\": {\"type\": \"array\", \"items\": \"string\"}}",
         "extra field tags is an array"},
        {"{\"name\": \"attrs\", \"type\": {\"type\": \"map\", \"values\": \"long\"}}",
         "extra field attrs is a map"},
        {"{\"name\": \"blob\", \"type\": \"bytes\"}", "extra field blob is bytes"},
        {"{\"name\": \"either\", \"type\": [\"int\", \"string\"]}",
         "extra field either is a union of int and string"},
        {"{\"name\": \"maybe\", \"type\": [\"null\", \"int\", \"string\"]}",
         "extra field maybe is a union of 3 types"},
        {"{\"name\": \"score\", \"type\": \"double\", \"default\": \"high\"}",
         "default of extra field score does not fit"},
        {"{\"name\": \"count\", \"type\": \"int\", \"default\": 1.5}",
         "default of extra field count does not fit"},
        {"{\"name\": \"level\", \"type\": {\"type\": \"enum\", \"name\": \"Level\", "
         "\"symbols\": [\"LOW\"]}, \"default\": \"HIGH\"}",
         "default of extra field level does not fit"},
        {"{\"name\": \"must\", \"type\": \"string\", \"default\": null}",
         "default of extra field must does not fit"},
    };
    char path[PATH_MAX], err[512];

    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        CHECK(write_schema("bad.avsc", cases[k].field, path, sizeof path) == 0);
        err[0] = '\0';
        ingest_avro_t *dec =
            ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_PLAIN, path, NULL, err, sizeof err);
        int ok = dec == NULL && strstr(err, path) != NULL && strstr(err, cases[k].want) != NULL;
        if (!ok) {
            fprintf(stderr, "refused reader %zu: \"%s\", expected \"%s\"\n", k, err, cases[k].want);
        }
        CHECK(ok);
        ingest_avro_free(dec);
    }
    unlink(path);
}

/* The default schema has no extra fields: n_extra 0 and no arrays. */
static void test_default_schema(void)
{
    ingest_avro_t *dec = codec_new(base_path, INGEST_FORMAT_PLAIN);
    ingest_record_t rec = event_base(), got = {0};
    uint8_t msg[MSG_MAX];
    char err[256] = "", reason[256];
    double nums[1] = {1.0};
    const char *strs[1] = {NULL};

    CHECK(dec != NULL);
    if (dec == NULL) {
        return;
    }
    CHECK(ingest_avro_extra_count(dec) == 0);
    long n = ingest_avro_encode(dec, &rec, 0, msg, sizeof msg, err, sizeof err);
    got.event.n_extra = 5; /* stale values are overwritten */
    CHECK(decode(dec, msg, n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
    CHECK(got.event.n_extra == 0 && got.event.extra_num == NULL && got.event.extra_str == NULL);
    /* Extra values for a schema without extra fields are a mistake, not silently dropped. */
    rec.event.n_extra = 1;
    rec.event.extra_num = nums;
    rec.event.extra_str = strs;
    err[0] = '\0';
    CHECK(ingest_avro_encode(dec, &rec, 0, msg, sizeof msg, err, sizeof err) == -1);
    CHECK(strstr(err, "1 extra fields") != NULL);
    ingest_avro_free(dec);
    ingest_record_clear(&got);
}

/* A record without extra values against a schema whose extras all have defaults or are
 * optional: the encoder writes the defaults. */
static void test_encode_defaults(void)
{
    static const char tail[] =
        "{\"name\": \"V1\", \"type\": \"double\", \"default\": -0.5},\n"
        "{\"name\": \"note\", \"type\": [\"null\", \"string\"]},\n"
        "{\"name\": \"tier\", \"type\": {\"type\": \"enum\", \"name\": \"Tier\", "
        "\"symbols\": [\"BRONZE\", \"SILVER\"]}, \"default\": \"SILVER\"},\n"
        "{\"name\": \"count\", \"type\": [\"long\", \"null\"], \"default\": 42},\n"
        "{\"name\": \"ratio\", \"type\": \"float\", \"default\": 1e-1},\n"
        "{\"name\": \"label\", \"type\": \"string\", \"default\": \"a\\\"b\\\\c\\ud83d\\ude00\"}";
    char path[PATH_MAX], err[256] = "", reason[256];
    ingest_avro_t *c = NULL;
    ingest_record_t rec = event_base(), got = {0};
    uint8_t msg[MSG_MAX];

    CHECK(write_schema("defaults.avsc", tail, path, sizeof path) == 0);
    c = codec_new(path, INGEST_FORMAT_PLAIN);
    CHECK(c != NULL);
    if (c == NULL) {
        goto out;
    }
    long n = ingest_avro_encode(c, &rec, 0, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    CHECK(decode(c, msg, n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
    CHECK(got.event.n_extra == 6);
    CHECK(got_num(c, &got, "V1") == -0.5);
    CHECK(got_str(c, &got, "note") == NULL);
    CHECK_STR(got_str(c, &got, "tier"), "SILVER");
    CHECK(got_num(c, &got, "count") == 42.0);
    CHECK(got_num(c, &got, "ratio") == (double)0.1f);
    CHECK_STR(got_str(c, &got, "label"), "a\"b\\c\xf0\x9f\x98\x80");
out:
    ingest_avro_free(c);
    ingest_record_clear(&got);
    unlink(path);
}

/* The other kinds keep reading their own fields and skipping the rest, whatever its type. */
static void test_other_kinds(void)
{
    char src[PATH_MAX], path[PATH_MAX], err[512] = "";
    snprintf(src, sizeof src, "%.*s/NewsArticle.avsc", PATH_MAX - 64, schema_dir);
    char *text = read_text(src);
    char *close = text ? strrchr(text, ']') : NULL;
    FILE *f;

    CHECK(close != NULL);
    snprintf(path, sizeof path, "%s/article.avsc", tmpdir);
    if (close == NULL || (f = fopen(path, "w")) == NULL) {
        free(text);
        return;
    }
    fwrite(text, 1, (size_t)(close - text), f);
    fputs(",{\"name\": \"meta\", \"type\": {\"type\": \"map\", \"values\": \"string\"}}\n", f);
    fputs(close, f);
    fclose(f);
    ingest_avro_t *dec =
        ingest_avro_new(INGEST_KIND_ARTICLE, INGEST_FORMAT_PLAIN, path, NULL, err, sizeof err);
    CHECK(dec != NULL);
    if (dec != NULL) {
        CHECK(ingest_avro_extra_count(dec) == 0);
        ingest_record_t a = {.kind = INGEST_KIND_ARTICLE,
                             .article = {.article_id = "n1",
                                         .published_time_ms = 1700000000000,
                                         .source = "wire",
                                         .headline = "Headline"}};
        ingest_record_t got = {0};
        uint8_t msg[MSG_MAX];
        char reason[256];
        long n = ingest_avro_encode(dec, &a, 0, msg, sizeof msg, err, sizeof err);
        CHECK(decode(dec, msg, n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
        CHECK_STR(got.article.headline, "Headline");
        ingest_record_clear(&got);
    }
    ingest_avro_free(dec);
    unlink(path);
    free(text);
}

int main(void)
{
    char fields[8192], reader[PATH_MAX];
    ingest_avro_t *dec = NULL;

    if (paths_init() != 0 || mkdtemp(tmpdir) == NULL) {
        fprintf(stderr, "cannot set up paths or the temporary directory\n");
        return 1;
    }
    base_text = read_text(base_path);
    CHECK(base_text != NULL);
    if (base_text == NULL) {
        rmdir(tmpdir);
        return TEST_DONE();
    }
    v_fields(fields, sizeof fields, 0, 0, reader_tail);
    CHECK(write_schema("reader.avsc", fields, reader, sizeof reader) == 0);

    test_api_and_round_trip(reader);
    dec = codec_new(reader, INGEST_FORMAT_CONFLUENT);
    CHECK(dec != NULL);
    if (dec != NULL) {
        test_resolution(dec);
    }
    test_refused_readers();
    test_default_schema();
    test_encode_defaults();
    test_other_kinds();

    ingest_avro_free(dec);
    unlink(reader);
    free(base_text);
    rmdir(tmpdir);
    return TEST_DONE();
}
