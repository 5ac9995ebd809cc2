/* Unit tests for the Avro codec (ingest/avro/): encode/decode round trips in both wire formats,
 * every class of malformed message the decoder must reject (with its reason), random truncations
 * and byte flips, schema resolution from a Confluent writer schema with an extra field, and the
 * unknown-schema-id path. Needs no servers; prints the decode rate for information. */
#include "ingest_avro.h"
#include "test.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX 1024

static char schema_dir[PATH_MAX];
static char reader_path[PATH_MAX];

#define CHECK_OPT_STR(a, b)                                                                        \
    do {                                                                                           \
        if ((b) == NULL) {                                                                         \
            CHECK((a) == NULL);                                                                    \
        } else {                                                                                   \
            CHECK_STR(a, b);                                                                       \
        }                                                                                          \
    } while (0)

/* The schema directory and the BehaviorEvent schema in it. */
static int paths_init(void)
{
    if (test_schema_dir(schema_dir, sizeof schema_dir) < 0) {
        return -1;
    }
    int n = snprintf(reader_path, sizeof reader_path, "%.*s/BehaviorEvent.avsc", PATH_MAX - 64,
                     schema_dir);
    return (n < 0 || (size_t)n >= sizeof reader_path) ? -1 : 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64: deterministic, so a failing fuzz case reproduces. */
static uint64_t rng_state = 0x5eedf00dULL;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static ingest_record_t event_full(void)
{
    ingest_record_t rec = {.kind = INGEST_KIND_EVENT};
    ingest_event_t ev = {0};
    ev.event_id = "evt-0001";
    ev.event_type = "TRANSACTION";
    ev.user_id = "user-42";
    ev.account_id = "acct-7";
    ev.device_id = "dev-abc";
    ev.ip = "2001:db8::1";
    ev.has_amount = 1;
    ev.amount = 129.95;
    ev.currency = "EUR";
    ev.merchant_id = "m-991";
    ev.merchant_category = "5411";
    ev.country = "DE";
    ev.has_geo = 1;
    ev.latitude = 52.52;
    ev.longitude = -13.405;
    ev.event_time_ms = INT64_C(1717171717171);
    ev.channel = "mobile";
    rec.event = ev;
    return rec;
}

static ingest_record_t event_minimal(void)
{
    ingest_record_t rec = {.kind = INGEST_KIND_EVENT};
    rec.event.event_id = "e";
    rec.event.event_type = "PASSWORD_CHANGE";
    rec.event.user_id = "u";
    rec.event.event_time_ms = 0;
    return rec;
}

static void check_same_event(const ingest_record_t *got_rec, const ingest_record_t *want_rec)
{
    const ingest_event_t *got = &got_rec->event, *want = &want_rec->event;
    CHECK(got_rec->kind == INGEST_KIND_EVENT);
    CHECK_STR(got->event_id, want->event_id);
    CHECK_STR(got->event_type, want->event_type);
    CHECK_STR(got->user_id, want->user_id);
    CHECK_OPT_STR(got->account_id, want->account_id);
    CHECK_OPT_STR(got->device_id, want->device_id);
    CHECK_OPT_STR(got->ip, want->ip);
    CHECK(got->has_amount == want->has_amount);
    CHECK(got->amount == (want->has_amount ? want->amount : 0.0));
    CHECK_OPT_STR(got->currency, want->currency);
    CHECK_OPT_STR(got->merchant_id, want->merchant_id);
    CHECK_OPT_STR(got->merchant_category, want->merchant_category);
    CHECK_OPT_STR(got->country, want->country);
    CHECK(got->has_geo == want->has_geo);
    CHECK(got->latitude == (want->has_geo ? want->latitude : 0.0));
    CHECK(got->longitude == (want->has_geo ? want->longitude : 0.0));
    CHECK(got->event_time_ms == want->event_time_ms);
    CHECK_OPT_STR(got->channel, want->channel);
}

static int reason_printable(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n >= 200) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)r[i] < 0x20 || (unsigned char)r[i] > 0x7e) {
            return 0;
        }
    }
    return 1;
}

/* Decoding must say BAD with a reason starting with prefix. */
#define CHECK_BAD(dec, data, len, prefix) check_bad_at(__LINE__, dec, data, len, prefix)
static void check_bad_at(int line, ingest_avro_t *dec, const void *data, size_t len,
                         const char *prefix)
{
    ingest_record_t ev = {0};
    char reason[256] = "";
    int rc = ingest_avro_decode(dec, data, len, &ev, reason, sizeof reason);
    int prefix_ok = strncmp(reason, prefix, strlen(prefix)) == 0;
    if (rc != INGEST_AVRO_BAD || !prefix_ok) {
        fprintf(stderr, "line %d: rc %d reason \"%s\", expected BAD \"%s...\"\n", line, rc, reason,
                prefix);
    }
    CHECK(rc == INGEST_AVRO_BAD);
    CHECK(prefix_ok);
    CHECK(reason_printable(reason));
    ingest_record_clear(&ev);
}

/* Hand-built Avro binary, independent of the encoder under test. */
typedef struct bytes {
    uint8_t b[MSG_MAX];
    size_t n;
} bytes_t;

static void put_raw(bytes_t *m, const void *p, size_t n)
{
    memcpy(m->b + m->n, p, n);
    m->n += n;
}

static void put_long(bytes_t *m, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    while (z & ~(uint64_t)0x7f) {
        m->b[m->n++] = (uint8_t)((z & 0x7f) | 0x80);
        z >>= 7;
    }
    m->b[m->n++] = (uint8_t)z;
}

static void put_str(bytes_t *m, const char *s, size_t len)
{
    put_long(m, (int64_t)len);
    put_raw(m, s, len);
}

/* A BehaviorEvent body: the given event_id, enum index, user_id and account_id union branch
 * (branch 1 carries "a1"), every other optional field null. */
static void raw_event(bytes_t *m, const char *event_id, int64_t type_index, const char *user_id,
                      int64_t account_branch, int64_t time_ms)
{
    put_str(m, event_id, strlen(event_id));
    put_long(m, type_index);
    put_str(m, user_id, strlen(user_id));
    put_long(m, account_branch);
    if (account_branch == 1) {
        put_str(m, "a1", 2);
    }
    for (int i = 0; i < 9; i++) { /* device_id .. longitude */
        put_long(m, 0);
    }
    put_long(m, time_ms);
    put_long(m, 0); /* channel */
}

static void confluent_header(bytes_t *m, uint32_t id)
{
    uint8_t h[5] = {0, (uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    put_raw(m, h, sizeof h);
}

static void test_format_parse(void)
{
    ingest_format_t f = INGEST_FORMAT_PLAIN;
    CHECK(ingest_format_parse("confluent", &f) == 0 && f == INGEST_FORMAT_CONFLUENT);
    CHECK(ingest_format_parse("plain", &f) == 0 && f == INGEST_FORMAT_PLAIN);
    CHECK(ingest_format_parse("json", &f) == -1);
    CHECK(ingest_format_parse("", &f) == -1);
    CHECK(ingest_format_parse(NULL, &f) == -1);
}

static void test_new_errors(const char *tmpdir)
{
    char err[512] = "";
    char path[PATH_MAX];

    CHECK(ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_PLAIN, "/nonexistent/x.avsc", NULL, err,
                          sizeof err) == NULL);
    CHECK(strstr(err, "/nonexistent/x.avsc") != NULL);

    snprintf(path, sizeof path, "%s/not_a_record.avsc", tmpdir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f != NULL) {
        fputs("\"string\"", f);
        fclose(f);
    }
    err[0] = '\0';
    CHECK(ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_PLAIN, path, NULL, err, sizeof err) ==
          NULL);
    CHECK(strstr(err, "not a record") != NULL);
    unlink(path);

    err[0] = '\0';
    CHECK(ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_CONFLUENT, reader_path, NULL, err,
                          sizeof err) == NULL);
    CHECK(err[0] != '\0');
}

static void round_trip(ingest_avro_t *dec, const ingest_record_t *want, int32_t schema_id)
{
    uint8_t msg[MSG_MAX];
    char err[256] = "";
    ingest_record_t got = {0};

    long n = ingest_avro_encode(dec, want, schema_id, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    if (n <= 0) {
        fprintf(stderr, "encode failed: %s\n", err);
        return;
    }
    CHECK(ingest_avro_decode(dec, msg, (size_t)n, &got, err, sizeof err) == INGEST_AVRO_OK);
    check_same_event(&got, want);
    ingest_record_clear(&got);
}

static void test_round_trips(ingest_avro_t *plain, ingest_avro_t *conf)
{
    ingest_record_t full = event_full();
    ingest_record_t minimal = event_minimal();
    uint8_t msg[MSG_MAX];
    char err[256];

    round_trip(plain, &full, 0);
    round_trip(plain, &minimal, 0);
    round_trip(conf, &full, 1);
    round_trip(conf, &minimal, 1);

    /* Geo is all-or-nothing on the way in: latitude without longitude is no location. */
    ingest_record_t ev = event_full();
    ev.event.has_geo = 0;
    round_trip(plain, &ev, 0);

    /* The Confluent header is magic 0 plus the big-endian id. */
    long n = ingest_avro_encode(conf, &full, 0x01020304, msg, sizeof msg, err, sizeof err);
    CHECK(n > 5);
    CHECK(msg[0] == 0 && msg[1] == 1 && msg[2] == 2 && msg[3] == 3 && msg[4] == 4);

    /* The encoder writes exactly the bytes the spec says, byte for byte. */
    bytes_t raw = {.n = 0};
    raw_event(&raw, "e1", 1, "u1", 1, 1234);
    ev = (ingest_record_t){.kind = INGEST_KIND_EVENT,
                           .event = {.event_id = "e1",
                                     .event_type = "LOGIN",
                                     .user_id = "u1",
                                     .account_id = "a1",
                                     .event_time_ms = 1234}};
    n = ingest_avro_encode(plain, &ev, 0, msg, sizeof msg, err, sizeof err);
    CHECK(n == (long)raw.n && memcmp(msg, raw.b, raw.n) == 0);
}

static void test_steady_state_buffer(ingest_avro_t *conf)
{
    ingest_record_t full = event_full();
    ingest_record_t got = {0};
    uint8_t msg[MSG_MAX];
    char err[256];
    long n = ingest_avro_encode(conf, &full, 1, msg, sizeof msg, err, sizeof err);

    CHECK(ingest_avro_decode(conf, msg, (size_t)n, &got, err, sizeof err) == INGEST_AVRO_OK);
    char *buf = got.buf;
    size_t cap = got.buf_cap;
    int same = 1;
    for (int i = 0; i < 100; i++) {
        if (ingest_avro_decode(conf, msg, (size_t)n, &got, err, sizeof err) != INGEST_AVRO_OK ||
            got.buf != buf || got.buf_cap != cap) {
            same = 0;
        }
    }
    CHECK(same);
    CHECK(got.event.event_id >= got.buf && got.event.event_id < got.buf + got.buf_cap);
    ingest_record_clear(&got);
    CHECK(got.buf == NULL && got.buf_cap == 0 && got.event.event_id == NULL);
}

static void test_encode_errors(ingest_avro_t *plain, ingest_avro_t *conf)
{
    uint8_t msg[MSG_MAX];
    char err[256];
    ingest_record_t ev = event_full();

    err[0] = '\0';
    ev.event.event_type = "REFUND";
    CHECK(ingest_avro_encode(plain, &ev, 0, msg, sizeof msg, err, sizeof err) == -1);
    CHECK(strstr(err, "REFUND") != NULL);

    ev = event_full();
    ev.event.event_id = NULL;
    CHECK(ingest_avro_encode(plain, &ev, 0, msg, sizeof msg, err, sizeof err) == -1);
    CHECK(strstr(err, "event_id") != NULL);

    ev = event_full();
    err[0] = '\0';
    CHECK(ingest_avro_encode(plain, &ev, 0, msg, 10, err, sizeof err) == -1);
    CHECK(strstr(err, "too small") != NULL);
    CHECK(ingest_avro_encode(conf, &ev, 1, msg, 3, err, sizeof err) == -1);
    CHECK(ingest_avro_encode(conf, &ev, -1, msg, sizeof msg, err, sizeof err) == -1);
}

static void test_malformed(ingest_avro_t *plain, ingest_avro_t *conf)
{
    bytes_t m;
    ingest_record_t ev = {0};
    char reason[256];

    CHECK_BAD(plain, "", 0, "empty message");
    CHECK_BAD(conf, "", 0, "empty message");
    CHECK_BAD(conf, "\0\0\0", 3, "truncated:");
    CHECK_BAD(conf, "{\"event_id\":1}", 14, "bad magic byte 0x7b");

    /* A valid body first, so each case below differs from it in one respect only. */
    m.n = 0;
    raw_event(&m, "e1", 0, "u1", 1, 1000);
    CHECK(ingest_avro_decode(plain, m.b, m.n, &ev, reason, sizeof reason) == INGEST_AVRO_OK);
    CHECK_STR(ev.event.account_id, "a1");
    CHECK_BAD(plain, m.b, m.n - 1, "truncated:");
    CHECK_BAD(plain, m.b, 3, "truncated:");
    put_raw(&m, "\x00", 1);
    CHECK_BAD(plain, m.b, m.n, "trailing bytes: 1");

    m.n = 0;
    raw_event(&m, "e1", 5, "u1", 0, 1000);
    CHECK_BAD(plain, m.b, m.n, "bad enum index 5 in field event_type");
    m.n = 0;
    raw_event(&m, "e1", -1, "u1", 0, 1000);
    CHECK_BAD(plain, m.b, m.n, "bad enum index -1");

    m.n = 0;
    raw_event(&m, "e1", 0, "u1", 2, 1000);
    CHECK_BAD(plain, m.b, m.n, "bad union index 2 in field account_id");
    m.n = 0;
    raw_event(&m, "e1", 0, "u1", -1, 1000);
    CHECK_BAD(plain, m.b, m.n, "bad union index -1");

    /* Lengths: negative, and far past the message (Avro C alone would try to allocate it). */
    m.n = 0;
    put_long(&m, -1);
    put_raw(&m, "e1\x00\x04u1\x00", 7);
    CHECK_BAD(plain, m.b, m.n, "negative length -1");
    m.n = 0;
    put_long(&m, INT64_C(1) << 60);
    put_raw(&m, "e1", 2);
    CHECK_BAD(plain, m.b, m.n, "truncated:");
    m.n = 0;
    put_raw(&m, "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11);
    CHECK_BAD(plain, m.b, m.n, "bad varint");

    m.n = 0;
    raw_event(&m, "", 0, "u1", 0, 1000);
    CHECK_BAD(plain, m.b, m.n, "invalid field event_id: empty");
    m.n = 0;
    raw_event(&m, "e1", 0, "", 0, 1000);
    CHECK_BAD(plain, m.b, m.n, "invalid field user_id: empty");

    /* event_time must be in years 1970..2200 inclusive. */
    m.n = 0;
    raw_event(&m, "e1", 0, "u1", 0, -1);
    CHECK_BAD(plain, m.b, m.n, "invalid field event_time");
    m.n = 0;
    raw_event(&m, "e1", 0, "u1", 0, INT64_C(7289654400000)); /* 2201-01-01T00:00:00Z */
    CHECK_BAD(plain, m.b, m.n, "invalid field event_time");
    m.n = 0;
    raw_event(&m, "e1", 0, "u1", 0, INT64_C(7289654399999));
    CHECK(ingest_avro_decode(plain, m.b, m.n, &ev, reason, sizeof reason) == INGEST_AVRO_OK);
    CHECK(ev.event.event_time_ms == INT64_C(7289654399999));

    /* Strings must be text PostgreSQL accepts. */
    m.n = 0;
    raw_event(&m, "aXb", 0, "u1", 0, 1000);
    m.b[2] = '\0'; /* the X: byte 0 is the length */
    CHECK_BAD(plain, m.b, m.n, "invalid field event_id: contains a NUL byte");
    m.n = 0;
    raw_event(&m, "e1", 0, "\xc3\x28", 0, 1000);
    CHECK_BAD(plain, m.b, m.n, "invalid field user_id: not valid UTF-8");
    m.n = 0;
    raw_event(&m, "\xc3\xa9v\xe2\x82\xac", 0, "u1", 0, 1000); /* "év€" */
    CHECK(ingest_avro_decode(plain, m.b, m.n, &ev, reason, sizeof reason) == INGEST_AVRO_OK);

    uint8_t msg[MSG_MAX];
    ingest_record_t nan_ev = event_full();
    nan_ev.event.amount = NAN;
    long n = ingest_avro_encode(plain, &nan_ev, 0, msg, sizeof msg, reason, sizeof reason);
    CHECK_BAD(plain, msg, (size_t)n, "invalid field amount: not a finite number");

    /* The same checks run behind a Confluent header. */
    m.n = 0;
    confluent_header(&m, 1);
    raw_event(&m, "e1", 7, "u1", 0, 1000);
    CHECK_BAD(conf, m.b, m.n, "bad enum index 7");
    m.n = 0;
    confluent_header(&m, 1);
    CHECK_BAD(conf, m.b, m.n, "truncated:");

    m.n = 0;
    confluent_header(&m, 42);
    raw_event(&m, "e1", 0, "u1", 0, 1000);
    CHECK_BAD(conf, m.b, m.n, "unknown schema id 42 (");
    CHECK_BAD(conf, m.b, m.n, "unknown schema id 42 (");

    ingest_record_clear(&ev);
}

/* Truncations must always be rejected; byte flips may decode, but never crash and never
 * produce an event that breaks the header's promises. */
static void test_fuzz(ingest_avro_t *plain, ingest_avro_t *conf)
{
    ingest_record_t full = event_full(), minimal = event_minimal(), ev = {0};
    uint8_t msgs[4][MSG_MAX], buf[MSG_MAX];
    long lens[4];
    ingest_avro_t *decs[4] = {plain, plain, conf, conf};
    char reason[256], err[256];
    int truncations_bad = 0, flips_sane = 0;

    lens[0] = ingest_avro_encode(plain, &full, 0, msgs[0], MSG_MAX, err, sizeof err);
    lens[1] = ingest_avro_encode(plain, &minimal, 0, msgs[1], MSG_MAX, err, sizeof err);
    lens[2] = ingest_avro_encode(conf, &full, 1, msgs[2], MSG_MAX, err, sizeof err);
    lens[3] = ingest_avro_encode(conf, &minimal, 1, msgs[3], MSG_MAX, err, sizeof err);
    for (int k = 0; k < 4; k++) {
        CHECK(lens[k] > 0);
        if (lens[k] <= 0) {
            return;
        }
    }

    for (int i = 0; i < 1000; i++) {
        int k = (int)(rng_next() % 4);
        size_t cut = (size_t)(rng_next() % (uint64_t)lens[k]);
        memcpy(buf, msgs[k], cut);
        int rc = ingest_avro_decode(decs[k], buf, cut, &ev, reason, sizeof reason);
        if (rc == INGEST_AVRO_BAD && reason_printable(reason)) {
            truncations_bad++;
        } else {
            fprintf(stderr, "truncation %d of msg %d at %zu: rc %d \"%s\"\n", i, k, cut, rc,
                    reason);
        }
    }
    CHECK(truncations_bad == 1000);

    for (int i = 0; i < 1000; i++) {
        int k = (int)(rng_next() % 4);
        size_t len = (size_t)lens[k];
        memcpy(buf, msgs[k], len);
        int flips = 1 + (int)(rng_next() % 3);
        for (int f = 0; f < flips; f++) {
            buf[rng_next() % len] = (uint8_t)rng_next();
        }
        int rc = ingest_avro_decode(decs[k], buf, len, &ev, reason, sizeof reason);
        int sane;
        if (rc == INGEST_AVRO_OK) {
            sane = ev.event.event_id != NULL && ev.event.event_id[0] != '\0' &&
                   ev.event.user_id != NULL && ev.event.user_id[0] != '\0' &&
                   ev.event.event_type != NULL && ev.event.event_time_ms >= 0 &&
                   ev.event.event_time_ms < INT64_C(7289654400000);
        } else {
            sane = rc == INGEST_AVRO_BAD && reason_printable(reason);
        }
        if (sane) {
            flips_sane++;
        } else {
            fprintf(stderr, "flip case %d of msg %d: rc %d \"%s\"\n", i, k, rc, reason);
        }
    }
    CHECK(flips_sane == 1000);
    ingest_record_clear(&ev);
}

static int write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        return -1;
    }
    size_t n = fwrite(text, 1, len, f);
    return (fclose(f) == 0 && n == len) ? 0 : -1;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    char *text = f ? malloc(65536) : NULL;
    if (text != NULL) {
        *len = fread(text, 1, 65535, f);
        text[*len] = '\0';
    }
    if (f != NULL) {
        fclose(f);
    }
    return text;
}

static void test_enum_evolution(const char *tmpdir, ingest_avro_t *dec, const char *base)
{
    static const char old_symbols[] = "\"symbols\": [\"TRANSACTION\"";
    static const char new_symbols[] = "\"symbols\": [\"SIGNUP\", \"TRANSACTION\"";
    char path[PATH_MAX], err[256] = "", reason[256] = "";
    const char *at = strstr(base, old_symbols);
    uint8_t msg[MSG_MAX];
    ingest_record_t ev = event_full(), got = {0};
    ingest_avro_t *enc = NULL;
    FILE *f;

    CHECK(at != NULL);
    snprintf(path, sizeof path, "%s/5.avsc", tmpdir);
    f = at ? fopen(path, "w") : NULL;
    CHECK(f != NULL);
    if (f == NULL) {
        return;
    }
    fwrite(base, 1, (size_t)(at - base), f);
    fputs(new_symbols, f);
    fputs(at + strlen(old_symbols), f);
    CHECK(fclose(f) == 0);
    enc =
        ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_CONFLUENT, path, tmpdir, err, sizeof err);
    CHECK(enc != NULL);
    if (enc == NULL) {
        fprintf(stderr, "new: %s\n", err);
        goto out;
    }
    const char *types[] = {"TRANSACTION", "LOGIN", "PASSWORD_CHANGE"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        ev.event.event_type = types[i];
        long n = ingest_avro_encode(enc, &ev, 5, msg, sizeof msg, err, sizeof err);
        CHECK(n > 0);
        CHECK(ingest_avro_decode(dec, msg, (size_t)n, &got, reason, sizeof reason) ==
              INGEST_AVRO_OK);
        CHECK(got.event.event_type != NULL && strcmp(got.event.event_type, types[i]) == 0);
    }
    ev.event.event_type = "SIGNUP";
    long n = ingest_avro_encode(enc, &ev, 5, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    CHECK_BAD(dec, msg, (size_t)n, "incompatible schema id 5: symbol SIGNUP of field event_type");
out:
    ingest_avro_free(enc);
    ingest_record_clear(&got);
    unlink(path);
}

/* Writes base with `from` replaced by `to` into tmpdir/<id>.avsc. Returns 0, or -1. */
static int write_variant(const char *tmpdir, int id, const char *base, const char *from,
                         const char *to, char *path, size_t pathlen)
{
    const char *at = strstr(base, from);
    FILE *f;

    snprintf(path, pathlen, "%s/%d.avsc", tmpdir, id);
    if (at == NULL || (f = fopen(path, "w")) == NULL) {
        return -1;
    }
    fwrite(base, 1, (size_t)(at - base), f);
    fputs(to, f);
    fputs(at + strlen(from), f);
    return fclose(f) == 0 ? 0 : -1;
}

/* The other evolutions a producer may make, decoded through Avro schema resolution: a field
 * the reader has with a default removed by the writer (the default fills it), and an int
 * promoted to the reader's long. Both writer encodings are byte-for-byte derived from the
 * reader's: Avro writes int and long alike, and channel is the last field. */
static void test_schema_evolution(const char *tmpdir, ingest_avro_t *dec, const char *base)
{
    static const char channel_field[] =
        ",\n    {\"name\": \"channel\", \"type\": [\"null\", \"string\"], \"default\": null,\n"
        "     \"doc\": \"Where the action happened, e.g. web, mobile, pos, atm.\"}";
    static const char time_long[] = "\"type\": {\"type\": \"long\", \"logicalType\": "
                                    "\"timestamp-millis\"}";
    char path6[PATH_MAX], path8[PATH_MAX], err[256] = "", reason[256] = "";
    uint8_t msg[MSG_MAX];
    ingest_record_t ev = event_full(), got = {0};
    long n;

    /* 6.avsc: no channel field. The reader's encoding with channel null ends in the union
     * index 0 of channel: without that byte it is the writer's encoding. */
    CHECK(write_variant(tmpdir, 6, base, channel_field, "", path6, sizeof path6) == 0);
    ev.event.channel = NULL;
    n = ingest_avro_encode(dec, &ev, 6, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0 && msg[n - 1] == 0x00);
    CHECK(ingest_avro_decode(dec, msg, (size_t)n - 1, &got, reason, sizeof reason) ==
          INGEST_AVRO_OK);
    if (reason[0] != '\0')
        fprintf(stderr, "# field removed: %s\n", reason);
    CHECK(got.event.channel == NULL);
    CHECK_STR(got.event.event_id, ev.event.event_id);
    CHECK(got.event.event_time_ms == ev.event.event_time_ms);

    /* 8.avsc: event_time written as an int (a small time, as an int holds 24 days of ms). */
    CHECK(write_variant(tmpdir, 8, base, time_long, "\"type\": \"int\"", path8, sizeof path8) == 0);
    ev = event_full();
    ev.event.event_time_ms = 1234567;
    n = ingest_avro_encode(dec, &ev, 8, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    reason[0] = '\0';
    CHECK(ingest_avro_decode(dec, msg, (size_t)n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
    if (reason[0] != '\0')
        fprintf(stderr, "# int to long: %s\n", reason);
    CHECK(got.event.event_time_ms == 1234567);
    check_same_event(&got, &ev);
    ingest_record_clear(&got);
    unlink(path6);
    unlink(path8);
}

/* A producer on a newer schema (2.avsc: an extra field in front) must still decode, through
 * Avro schema resolution, into the reader's shape. */
static void test_resolution(const char *tmpdir)
{
    static const char fields_key[] = "\"fields\": [";
    static const char extra[] = "\n    {\"name\": \"session_note\", \"type\": \"string\", "
                                "\"default\": \"\", \"doc\": \"added by a newer producer\"},";
    char path2[PATH_MAX], path3[PATH_MAX], err[256] = "", reason[256] = "";
    uint8_t msg[MSG_MAX];
    size_t len = 0;
    char *base = read_file(reader_path, &len);
    char *at = base ? strstr(base, fields_key) : NULL;
    ingest_record_t full = event_full(), got = {0};

    CHECK(at != NULL);
    if (at == NULL) {
        free(base);
        return;
    }
    at += strlen(fields_key);
    snprintf(path2, sizeof path2, "%s/2.avsc", tmpdir);
    FILE *f = fopen(path2, "w");
    CHECK(f != NULL);
    if (f == NULL) {
        free(base);
        return;
    }
    fwrite(base, 1, (size_t)(at - base), f);
    fputs(extra, f);
    fputs(at, f);
    CHECK(fclose(f) == 0);

    ingest_avro_t *enc2 =
        ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_CONFLUENT, path2, tmpdir, err, sizeof err);
    ingest_avro_t *dec = ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_CONFLUENT, reader_path,
                                         tmpdir, err, sizeof err);
    CHECK(enc2 != NULL && dec != NULL);
    if (enc2 == NULL || dec == NULL) {
        fprintf(stderr, "new: %s\n", err);
        goto out;
    }
    long n = ingest_avro_encode(enc2, &full, 2, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    for (int i = 0; i < 3; i++) { /* the cached plan is reused */
        CHECK(ingest_avro_decode(dec, msg, (size_t)n, &got, reason, sizeof reason) ==
              INGEST_AVRO_OK);
        check_same_event(&got, &full);
    }
    /* The writer schema's extra byte is consumed by resolution, not left as trailing. */
    CHECK_BAD(dec, msg, (size_t)n - 1, "truncated:");

    /* Damaged messages on the resolved path: decoded or refused with a printable reason,
     * never a crash (the sanitizer build watches the reads). */
    int refused = 0;
    for (int i = 0; i < 5000; i++) {
        uint8_t bad[MSG_MAX];
        memcpy(bad, msg, (size_t)n);
        for (int k = 0; k < 3; k++)
            bad[5 + rng_next() % (uint64_t)(n - 5)] ^= (uint8_t)(1u << (rng_next() % 8));
        size_t cut = (size_t)(6 + rng_next() % (uint64_t)(n - 5));
        reason[0] = '\0';
        int rc = ingest_avro_decode(dec, bad, cut, &got, reason, sizeof reason);
        CHECK(rc == INGEST_AVRO_OK || (rc == INGEST_AVRO_BAD && reason_printable(reason)));
        refused += rc == INGEST_AVRO_BAD;
    }
    CHECK(refused > 0);

    /* An id whose file shows up later: refused from the cache at first, then found once the
     * retry interval (1 s) has passed. Polling with a deadline, not a fixed sleep. */
    n = ingest_avro_encode(dec, &full, 3, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    double t0 = now_s();
    CHECK_BAD(dec, msg, (size_t)n, "unknown schema id 3 (no ");
    snprintf(path3, sizeof path3, "%s/3.avsc", tmpdir);
    CHECK(write_file(path3, base, len) == 0);
    CHECK_BAD(dec, msg, (size_t)n, "unknown schema id 3");
    int rc = INGEST_AVRO_BAD;
    while (rc != INGEST_AVRO_OK && now_s() - t0 < 5.0) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        rc = ingest_avro_decode(dec, msg, (size_t)n, &got, reason, sizeof reason);
    }
    double waited = now_s() - t0;
    CHECK(rc == INGEST_AVRO_OK);
    CHECK(waited >= 0.99);
    check_same_event(&got, &full);
    unlink(path3);

    /* A writer schema that cannot be read as BehaviorEvent is the message's problem too. */
    static const char incompatible[] = "{\"type\": \"record\", \"name\": \"BehaviorEvent\", "
                                       "\"namespace\": \"vigil\", \"fields\": "
                                       "[{\"name\": \"event_id\", \"type\": \"int\"}]}";
    snprintf(path3, sizeof path3, "%s/4.avsc", tmpdir);
    CHECK(write_file(path3, incompatible, strlen(incompatible)) == 0);
    msg[4] = 4;
    CHECK_BAD(dec, msg, (size_t)n, "schema id 4 (");
    unlink(path3);

    /* A producer whose EventType has a symbol inserted in front: the same symbol must come out,
     * not the one at the writer's index, and a symbol the reader lacks is a dead letter. */
    test_enum_evolution(tmpdir, dec, base);
    test_schema_evolution(tmpdir, dec, base);

out:
    ingest_avro_free(enc2);
    ingest_avro_free(dec);
    ingest_record_clear(&got);
    unlink(path2);
    free(base);
}

static void measure_decode_rate(ingest_avro_t *conf)
{
    ingest_record_t full = event_full(), got = {0};
    uint8_t msg[MSG_MAX];
    char err[256];
    long n = ingest_avro_encode(conf, &full, 1, msg, sizeof msg, err, sizeof err);
    int failures = 0;
    const int count = 200000;

    double t0 = now_s();
    for (int i = 0; i < count; i++) {
        if (ingest_avro_decode(conf, msg, (size_t)n, &got, err, sizeof err) != INGEST_AVRO_OK) {
            failures++;
        }
    }
    double elapsed = now_s() - t0;
    CHECK(failures == 0);
    printf("decode_rate %.0f events/s\n", elapsed > 0 ? count / elapsed : 0.0);
    ingest_record_clear(&got);
}

/* The reader schema of a kind in the source tree. */
static const char *schema_of(const char *name)
{
    static char path[PATH_MAX];
    snprintf(path, sizeof path, "%.*s/%s.avsc", PATH_MAX - 64, schema_dir, name);
    return path;
}

/* A NewsArticle body (plain Avro, reader field order): language and body null, the tickers
 * in blocks as given (negative counts carry a byte size, as Avro allows). */
static void raw_article(bytes_t *m, const char *id, const char *headline, const char *const *items,
                        const int *blocks, int n_blocks)
{
    put_str(m, id, strlen(id));
    put_long(m, 1700000000000);
    put_str(m, "wire", 4);
    put_long(m, 0); /* language: null */
    put_str(m, headline, strlen(headline));
    put_long(m, 0); /* body: null */
    for (int b = 0, k = 0; b < n_blocks; b++) {
        int count = blocks[b];
        if (count < 0) {
            size_t size = 0;
            for (int j = 0; j < -count; j++)
                size += 1 + strlen(items[k + j]);
            put_long(m, count);
            put_long(m, (int64_t)size);
            count = -count;
        } else {
            put_long(m, count);
        }
        for (int j = 0; j < count; j++, k++)
            put_str(m, items[k], strlen(items[k]));
    }
    put_long(m, 0); /* end of the array */
}

/* NewsArticle, FraudLabel and NewsLabel: the rules their schemas cannot express, string
 * arrays in blocks, booleans, and evolution of their writers. */
static void test_other_kinds(const char *tmpdir)
{
    char err[256] = "", reason[256] = "", path[PATH_MAX];
    ingest_avro_t *art = ingest_avro_new(INGEST_KIND_ARTICLE, INGEST_FORMAT_PLAIN,
                                         schema_of("NewsArticle"), NULL, err, sizeof err);
    ingest_avro_t *fl = ingest_avro_new(INGEST_KIND_FRAUD_LABEL, INGEST_FORMAT_PLAIN,
                                        schema_of("FraudLabel"), NULL, err, sizeof err);
    ingest_avro_t *nl_conf = ingest_avro_new(INGEST_KIND_NEWS_LABEL, INGEST_FORMAT_CONFLUENT,
                                             schema_of("NewsLabel"), tmpdir, err, sizeof err);
    ingest_avro_t *art_conf = ingest_avro_new(INGEST_KIND_ARTICLE, INGEST_FORMAT_CONFLUENT,
                                              schema_of("NewsArticle"), tmpdir, err, sizeof err);
    ingest_avro_t *enc = NULL;
    ingest_record_t got = {0};
    uint8_t msg[MSG_MAX];
    bytes_t m;

    CHECK(art && fl && nl_conf && art_conf);
    if (!art || !fl || !nl_conf || !art_conf) {
        fprintf(stderr, "other kinds: %s\n", err);
        goto out;
    }
    CHECK(ingest_avro_kind(art) == INGEST_KIND_ARTICLE);

    /* Tickers in two blocks, the second with a byte size: all three, in order. */
    const char *three[] = {"AAPL", "MSFT", "0700.HK"};
    m = (bytes_t){.n = 0};
    raw_article(&m, "n1", "Apple beats", three, (const int[]){1, -2}, 2);
    CHECK(ingest_avro_decode(art, m.b, m.n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
    CHECK(got.kind == INGEST_KIND_ARTICLE && got.article.n_tickers == 3);
    if (got.article.n_tickers == 3) {
        CHECK_STR(got.article.tickers[0], "AAPL");
        CHECK_STR(got.article.tickers[2], "0700.HK");
    }
    CHECK_STR(got.article.headline, "Apple beats");
    CHECK(got.article.language == NULL && got.article.body == NULL);
    /* No tickers at all. */
    m = (bytes_t){.n = 0};
    raw_article(&m, "n2", "Quiet day", NULL, NULL, 0);
    CHECK(ingest_avro_decode(art, m.b, m.n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
    CHECK(got.article.n_tickers == 0);
    /* An empty ticker, a ticker that is not UTF-8, an empty headline: dead letters. */
    m = (bytes_t){.n = 0};
    raw_article(&m, "n3", "h", (const char *[]){"AAPL", ""}, (const int[]){2}, 1);
    CHECK_BAD(art, m.b, m.n, "invalid field tickers: empty");
    m = (bytes_t){.n = 0};
    raw_article(&m, "n4", "h", (const char *[]){"\xc3\x28"}, (const int[]){1}, 1);
    CHECK_BAD(art, m.b, m.n, "invalid field tickers: not valid UTF-8");
    m = (bytes_t){.n = 0};
    raw_article(&m, "n5", "", NULL, NULL, 0);
    CHECK_BAD(art, m.b, m.n, "invalid field headline: empty");
    /* A block claiming more tickers than bytes left. */
    m = (bytes_t){.n = 0};
    raw_article(&m, "n6", "h", NULL, NULL, 0);
    m.n--; /* drop the terminating 0 */
    put_long(&m, 1000);
    CHECK_BAD(art, m.b, m.n, "truncated: field tickers declares 1000 items");

    /* FraudLabel: a boolean is one byte, 0 or 1. */
    m = (bytes_t){.n = 0};
    put_str(&m, "e1", 2);
    put_raw(&m, "\x01", 1);
    put_long(&m, 1700000000000);
    put_long(&m, 1);
    put_str(&m, "chargeback", 10);
    CHECK(ingest_avro_decode(fl, m.b, m.n, &got, reason, sizeof reason) == INGEST_AVRO_OK);
    CHECK(got.kind == INGEST_KIND_FRAUD_LABEL && got.fraud_label.is_fraud == 1);
    CHECK_STR(got.fraud_label.event_id, "e1");
    CHECK_STR(got.fraud_label.label_source, "chargeback");
    m.b[3] = 0x02;
    CHECK_BAD(fl, m.b, m.n, "bad boolean 0x02 in field is_fraud");

    /* NewsLabel through a writer whose Sentiment enum has a new symbol and another order:
     * symbols map by name, the new symbol is a dead letter, and a label with neither sentiment
     * nor topic is refused. */
    size_t len = 0;
    char *base = read_file(schema_of("NewsLabel"), &len);
    CHECK(base != NULL);
    if (!base)
        goto out;
    CHECK(write_variant(tmpdir, 7, base, "[\"NEGATIVE\", \"NEUTRAL\", \"POSITIVE\"]",
                        "[\"POSITIVE\", \"MIXED\", \"NEUTRAL\", \"NEGATIVE\"]", path,
                        sizeof path) == 0);
    free(base);
    enc = ingest_avro_new(INGEST_KIND_NEWS_LABEL, INGEST_FORMAT_CONFLUENT, path, tmpdir, err,
                          sizeof err);
    CHECK(enc != NULL);
    if (!enc) {
        fprintf(stderr, "news label writer: %s\n", err);
        goto out;
    }
    ingest_record_t label = {.kind = INGEST_KIND_NEWS_LABEL,
                             .news_label = {.article_id = "n1",
                                            .sentiment = "NEGATIVE",
                                            .label_time_ms = 1700000000000}};
    long n = ingest_avro_encode(enc, &label, 7, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    CHECK(ingest_avro_decode(nl_conf, msg, (size_t)n, &got, reason, sizeof reason) ==
          INGEST_AVRO_OK);
    CHECK(got.kind == INGEST_KIND_NEWS_LABEL && got.news_label.topic == NULL);
    CHECK(got.news_label.sentiment && strcmp(got.news_label.sentiment, "NEGATIVE") == 0);
    label.news_label.sentiment = "MIXED";
    n = ingest_avro_encode(enc, &label, 7, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    CHECK_BAD(nl_conf, msg, (size_t)n, "incompatible schema id 7: symbol MIXED of field sentiment");
    label.news_label.sentiment = NULL;
    n = ingest_avro_encode(enc, &label, 7, msg, sizeof msg, err, sizeof err);
    CHECK(n > 0);
    CHECK_BAD(nl_conf, msg, (size_t)n, "invalid record: a NewsLabel needs a sentiment, a topic");
    ingest_avro_free(enc);
    enc = NULL;
    unlink(path);

    /* A NewsArticle writer without tickers: the reader's default, the empty array. A writer
     * whose tickers are ints cannot be read. */
    base = read_file(schema_of("NewsArticle"), &len);
    CHECK(base != NULL);
    if (!base)
        goto out;
    CHECK(write_variant(tmpdir, 8, base,
                        "\"tickers\", \"type\": {\"type\": \"array\", \"items\": "
                        "\"string\"}",
                        "\"tickers_v0\", \"type\": {\"type\": \"array\", \"items\": \"string\"}",
                        path, sizeof path) == 0);
    enc = ingest_avro_new(INGEST_KIND_ARTICLE, INGEST_FORMAT_CONFLUENT, schema_of("NewsArticle"),
                          schema_dir, err, sizeof err);
    CHECK(enc != NULL);
    if (enc) {
        ingest_record_t a = {.kind = INGEST_KIND_ARTICLE,
                             .article = {.article_id = "n9",
                                         .published_time_ms = 1700000000000,
                                         .source = "wire",
                                         .headline = "Headline",
                                         .tickers = (const char *const[]){"AAPL"},
                                         .n_tickers = 1}};
        /* The body is the reader's; under id 8 the last field is named tickers_v0. */
        n = ingest_avro_encode(enc, &a, 8, msg, sizeof msg, err, sizeof err);
        CHECK(n > 0);
        CHECK(ingest_avro_decode(art_conf, msg, (size_t)n, &got, reason, sizeof reason) ==
              INGEST_AVRO_OK);
        CHECK(got.article.n_tickers == 0 && got.article.tickers == NULL);
        CHECK_STR(got.article.headline, "Headline");
    }
    unlink(path);
    CHECK(write_variant(tmpdir, 9, base, "\"items\": \"string\"", "\"items\": \"int\"", path,
                        sizeof path) == 0);
    free(base);
    if (enc) {
        ingest_record_t a = {.kind = INGEST_KIND_ARTICLE,
                             .article = {.article_id = "n9",
                                         .published_time_ms = 1700000000000,
                                         .source = "wire",
                                         .headline = "Headline"}};
        n = ingest_avro_encode(enc, &a, 9, msg, sizeof msg, err, sizeof err);
        CHECK(n > 0);
        CHECK_BAD(art_conf, msg, (size_t)n, "schema id 9 (" /* path */);
        CHECK(ingest_avro_decode(art_conf, msg, (size_t)n, &got, reason, sizeof reason) ==
                  INGEST_AVRO_BAD &&
              strstr(reason, "field tickers is array in the writer") != NULL);
    }
    /* The same schema as a reader is refused when the decoder is made. */
    err[0] = '\0';
    CHECK(ingest_avro_new(INGEST_KIND_ARTICLE, INGEST_FORMAT_PLAIN, path, NULL, err, sizeof err) ==
          NULL);
    CHECK(strstr(err, "field tickers must be an array of \"string\"") != NULL);
    unlink(path);
    /* Encoding a record of another kind is refused, not garbled. */
    ingest_record_t ev = event_full();
    err[0] = '\0';
    CHECK(enc == NULL || ingest_avro_encode(enc, &ev, 2, msg, sizeof msg, err, sizeof err) == -1);
    CHECK(enc == NULL || strstr(err, "cannot encode a BehaviorEvent with a NewsArticle") != NULL);

    /* Kind names. */
    ingest_kind_t k = INGEST_KIND_EVENT;
    CHECK(ingest_kind_parse("news", &k) == 0 && k == INGEST_KIND_ARTICLE);
    CHECK(ingest_kind_parse("FraudLabel", &k) == 0 && k == INGEST_KIND_FRAUD_LABEL);
    CHECK(ingest_kind_parse("news-labels", &k) == 0 && k == INGEST_KIND_NEWS_LABEL);
    CHECK(ingest_kind_parse("tweets", &k) == -1);
out:
    ingest_avro_free(enc);
    ingest_avro_free(art);
    ingest_avro_free(fl);
    ingest_avro_free(nl_conf);
    ingest_avro_free(art_conf);
    ingest_record_clear(&got);
}

int main(void)
{
    char err[512] = "";
    char tmpdir[] = "/tmp/vigil_avro_test_XXXXXX";

    if (paths_init() != 0) {
        fprintf(stderr, "schema dir path too long\n");
        return 1;
    }
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    ingest_avro_t *plain =
        ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_PLAIN, reader_path, NULL, err, sizeof err);
    ingest_avro_t *conf = ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_CONFLUENT, reader_path,
                                          schema_dir, err, sizeof err);
    CHECK(plain != NULL && conf != NULL);
    if (plain == NULL || conf == NULL) {
        fprintf(stderr, "cannot create decoders: %s\n", err);
        return TEST_DONE();
    }

    test_format_parse();
    test_new_errors(tmpdir);
    test_round_trips(plain, conf);
    test_steady_state_buffer(conf);
    test_encode_errors(plain, conf);
    test_malformed(plain, conf);
    test_fuzz(plain, conf);
    test_resolution(tmpdir);
    test_other_kinds(tmpdir);
    measure_decode_rate(conf);

    ingest_avro_free(plain);
    ingest_avro_free(conf);
    rmdir(tmpdir);
    return TEST_DONE();
}
