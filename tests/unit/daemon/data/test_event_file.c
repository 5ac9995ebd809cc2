/* Tests of labelled event files (daemon/data/event_file.h): generated events, labelled and not,
 * come back from CSV, JSONL and Avro exactly as written (every field, doubles to the bit, nulls as
 * nulls); CSV quotes what needs quoting; and each kind of bad file is refused with a message
 * that names the file and the line or record. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event_file.h"
#include "produce.h"
#include "test.h"

static char dir[4096];

/* dir/name, in one of four buffers so that a test can hold a few paths at once. */
static const char *path_in_dir(const char *name)
{
    static char path[4][4096 + 64];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", dir, name);
    return p;
}

static int str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Field by field, saying which differs. */
static int event_same(const ingest_event_t *a, const ingest_event_t *b)
{
    const char *sa[] = {a->event_id,          a->event_type, a->user_id,  a->account_id,
                        a->device_id,         a->ip,         a->currency, a->merchant_id,
                        a->merchant_category, a->country,    a->channel};
    const char *sb[] = {b->event_id,          b->event_type, b->user_id,  b->account_id,
                        b->device_id,         b->ip,         b->currency, b->merchant_id,
                        b->merchant_category, b->country,    b->channel};
    for (size_t k = 0; k < sizeof sa / sizeof sa[0]; k++)
        if (!str_eq(sa[k], sb[k])) {
            fprintf(stderr, "%s: string %zu: \"%s\" != \"%s\"\n", a->event_id, k,
                    sa[k] ? sa[k] : "(null)", sb[k] ? sb[k] : "(null)");
            return 0;
        }
    if (a->has_amount != b->has_amount || (a->has_amount && a->amount != b->amount)) {
        fprintf(stderr, "%s: amount %d %.17g != %d %.17g\n", a->event_id, a->has_amount, a->amount,
                b->has_amount, b->amount);
        return 0;
    }
    if (a->has_geo != b->has_geo ||
        (a->has_geo && (a->latitude != b->latitude || a->longitude != b->longitude))) {
        fprintf(stderr, "%s: geo %d %.17g %.17g != %d %.17g %.17g\n", a->event_id, a->has_geo,
                a->latitude, a->longitude, b->has_geo, b->latitude, b->longitude);
        return 0;
    }
    if (a->event_time_ms != b->event_time_ms || b->n_extra != 0) {
        fprintf(stderr, "%s: event_time %lld != %lld\n", a->event_id, (long long)a->event_time_ms,
                (long long)b->event_time_ms);
        return 0;
    }
    return 1;
}

/* Event i of the round trip: generated ones, then a few built to reach the corners (nulls
 * everywhere optional, text that needs quoting or escaping, an empty string, extreme doubles). */
#define N_GENERATED 3000
#define N_SPECIAL 4
#define N_EVENTS (N_GENERATED + N_SPECIAL)

static int label_of(uint64_t i, produce_gen_t *g)
{
    if (i % 7 == 3)
        return -1; /* unlabelled */
    return i < N_GENERATED ? produce_gen_event_is_fraud(g, i) : (int)(i % 2);
}

static void make_event(produce_gen_t *g, uint64_t i, ingest_event_t *ev)
{
    static char id[32];
    if (i < N_GENERATED) {
        produce_gen_event(g, i, 1767225600000 + (int64_t)i, ev);
        return;
    }
    memset(ev, 0, sizeof *ev);
    snprintf(id, sizeof id, "special-%d", (int)(i - N_GENERATED));
    ev->event_id = id;
    ev->user_id = "u,1";
    ev->event_time_ms = -5; /* before 1970: still an integer */
    switch (i - N_GENERATED) {
    case 0: /* only the required fields */
        ev->event_type = "CLICK";
        break;
    case 1: /* text CSV must quote and JSON must escape */
        ev->event_type = "TRANSACTION";
        ev->merchant_category = "toys, \"fun\" & games\nline two\r\n";
        ev->merchant_id = " padded ";
        ev->currency = ""; /* empty, not null */
        ev->channel = "tab\there \\ back\x01slash";
        ev->has_amount = 1;
        ev->amount = 0.1 + 0.2; /* needs 17 digits */
        break;
    case 2: /* extreme doubles */
        ev->event_type = "LOGIN";
        ev->has_amount = 1;
        ev->amount = 5e-324;
        ev->has_geo = 1;
        ev->latitude = -1.7976931348623157e308;
        ev->longitude = 2.2250738585072014e-308;
        ev->event_time_ms = INT64_MAX;
        break;
    default: /* UTF-8 and a negative zero */
        ev->event_type = "PASSWORD_CHANGE";
        ev->country = "Zürich 北京";
        ev->has_geo = 1;
        ev->latitude = -0.0;
        ev->longitude = 180.0;
        ev->event_time_ms = INT64_MIN;
        break;
    }
}

static void test_round_trip(const char *name)
{
    char err[1024];
    const char *path = path_in_dir(name);
    produce_gen_t *g = produce_gen_new(7, 500, err, sizeof err);
    event_file_format_t fmt;
    ingest_event_t want, got;
    int fraud = 0, unlabelled = 0, no_amount = 0, ok = 0;

    CHECK(g != NULL);
    CHECK(event_file_format_from_name(path, &fmt) == 0);
    event_file_writer_t *w = event_file_writer_new(path, fmt, err, sizeof err);
    CHECK_MSG(w != NULL, "%s", err);
    if (!g || !w)
        goto out;
    for (uint64_t i = 0; i < N_EVENTS; i++) {
        make_event(g, i, &want);
        int rc = event_file_write(w, &want, label_of(i, g), err, sizeof err);
        CHECK_MSG(rc == 0, "%s", err);
    }
    CHECK_MSG(event_file_writer_close(w, err, sizeof err) == 0, "%s", err);

    event_file_reader_t *r = event_file_reader_new(path, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    if (!r)
        goto out;
    for (uint64_t i = 0;; i++) {
        int label = -2;
        int rc = event_file_read(r, &got, &label, err, sizeof err);
        if (rc == 0) {
            CHECK_MSG(i == N_EVENTS, "%s: %llu events read back", name, (unsigned long long)i);
            break;
        }
        CHECK_MSG(rc == 1, "%s", err);
        if (rc != 1 || i >= N_EVENTS)
            break;
        make_event(g, i, &want); /* after the read: the generator's strings are its own */
        int same = event_same(&want, &got) && label == label_of(i, g);
        CHECK_MSG(same, "%s: event %llu (label %d, want %d)", name, (unsigned long long)i, label,
                  label_of(i, g));
        ok += same;
        fraud += label == 1;
        unlabelled += label == -1;
        no_amount += !got.has_amount;
    }
    event_file_reader_free(r);
    CHECK(ok == N_EVENTS);
    /* The corners were exercised: labels both ways and absent, null amounts. */
    CHECK(fraud > 10 && unlabelled > 300 && no_amount > 500);

out:
    produce_gen_free(g);
    unlink(path);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) != NULL) {
        size_t got = fread(buf, 1, (size_t)n, f);
        buf[got] = '\0';
    }
    fclose(f);
    return buf;
}

/* The text forms as written: a header, RFC 4180 quoting, JSON escapes, null as empty / null. */
static void test_text_forms(void)
{
    char err[1024];
    ingest_event_t ev;
    const char *csv = path_in_dir("forms.csv"), *jsonl = path_in_dir("forms.jsonl");
    const char *paths[] = {csv, jsonl};

    for (int p = 0; p < 2; p++) {
        event_file_format_t fmt;
        CHECK(event_file_format_from_name(paths[p], &fmt) == 0);
        event_file_writer_t *w = event_file_writer_new(paths[p], fmt, err, sizeof err);
        CHECK_MSG(w != NULL, "%s", err);
        if (!w)
            return;
        make_event(NULL, N_GENERATED + 1, &ev);
        CHECK(event_file_write(w, &ev, 1, err, sizeof err) == 0);
        make_event(NULL, N_GENERATED, &ev);
        CHECK(event_file_write(w, &ev, -1, err, sizeof err) == 0);
        CHECK(event_file_writer_close(w, err, sizeof err) == 0);
    }
    char *text = slurp(csv);
    CHECK(text != NULL);
    if (text) {
        const char *header = "event_id,event_type,user_id,account_id,device_id,ip,amount,currency,"
                             "merchant_id,merchant_category,country,latitude,longitude,event_time,"
                             "channel,is_fraud\n";
        CHECK(strncmp(text, header, strlen(header)) == 0);
        CHECK_MSG(strstr(text, "special-1,TRANSACTION,\"u,1\",,,,0.30000000000000004,\"\","
                               "\" padded \",\"toys, \"\"fun\"\" & games\nline two\r\n\",,,,-5,"
                               "tab\there \\ back\x01slash,1\n") != NULL,
                  "%s", text);
        CHECK_MSG(strstr(text, "special-0,CLICK,\"u,1\",,,,,,,,,,,-5,,\n") != NULL, "%s", text);
    }
    free(text);
    text = slurp(jsonl);
    CHECK(text != NULL);
    if (text) {
        CHECK_MSG(strstr(text, "{\"event_id\":\"special-1\",\"event_type\":\"TRANSACTION\","
                               "\"user_id\":\"u,1\",\"account_id\":null,\"device_id\":null,"
                               "\"ip\":null,\"amount\":0.30000000000000004,\"currency\":\"\","
                               "\"merchant_id\":\" padded \",\"merchant_category\":\"toys, "
                               "\\\"fun\\\" & games\\nline two\\r\\n\",\"country\":null,"
                               "\"latitude\":null,\"longitude\":null,\"event_time\":-5,"
                               "\"channel\":\"tab\\there \\\\ back\\u0001slash\","
                               "\"is_fraud\":true}\n") != NULL,
                  "%s", text);
        CHECK(strstr(text, "\"is_fraud\":null}\n") != NULL);
    }
    free(text);
    unlink(csv);
    unlink(jsonl);
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* What other writers do and this reader takes: columns in any order, some absent, CRLF, a byte
 * order mark, true/false labels, blank lines, JSON keys in any order and absent. */
static void test_lenient_inputs(void)
{
    char err[1024];
    ingest_event_t ev;
    int label;
    const char *csv = path_in_dir("other.csv"), *jsonl = path_in_dir("other.ndjson");

    CHECK(write_text(csv, "\xEF\xBB\xBFuser_id,event_time,event_type,event_id,amount,is_fraud\r\n"
                          "u1,1000,TRANSACTION,e1,12.5,true\r\n"
                          "\r\n"
                          "u2,2000,LOGIN,e2,,\r\n"
                          "u3,3000,CLICK,e3,,FALSE\r\n") == 0);
    event_file_reader_t *r = event_file_reader_new(csv, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    if (r) {
        CHECK(event_file_read(r, &ev, &label, err, sizeof err) == 1);
        CHECK_STR(ev.event_id, "e1");
        CHECK_STR(ev.user_id, "u1");
        CHECK(ev.has_amount && ev.amount == 12.5 && ev.event_time_ms == 1000 && label == 1);
        CHECK(ev.device_id == NULL && !ev.has_geo);
        CHECK(event_file_read(r, &ev, &label, err, sizeof err) == 1);
        CHECK_STR(ev.event_type, "LOGIN");
        CHECK(!ev.has_amount && label == -1);
        CHECK(event_file_read(r, &ev, &label, err, sizeof err) == 1);
        CHECK(label == 0);
        CHECK(event_file_read(r, &ev, &label, err, sizeof err) == 0);
        event_file_reader_free(r);
    }
    CHECK(write_text(jsonl, "{\"event_time\": 5, \"user_id\": \"u\\u00fc\", \"event_type\": "
                            "\"CLICK\", \"event_id\": \"x\", \"is_fraud\": 1}\n"
                            "\n"
                            "  {\"event_id\":\"y\",\"event_type\":\"LOGIN\",\"user_id\":\"v\","
                            "\"event_time\":6,\"latitude\":1e1,\"longitude\":-2.5E-1} \n") == 0);
    r = event_file_reader_new(jsonl, err, sizeof err);
    CHECK_MSG(r != NULL, "%s", err);
    if (r) {
        CHECK(event_file_read(r, &ev, &label, err, sizeof err) == 1);
        CHECK_STR(ev.user_id, "u\xC3\xBC");
        CHECK(ev.event_time_ms == 5 && label == 1 && !ev.has_geo);
        CHECK_MSG(event_file_read(r, &ev, &label, err, sizeof err) == 1, "%s", err);
        CHECK(ev.has_geo && ev.latitude == 10.0 && ev.longitude == -0.25 && label == -1);
        CHECK(event_file_read(r, &ev, &label, err, sizeof err) == 0);
        event_file_reader_free(r);
    }
    unlink(csv);
    unlink(jsonl);
}

/* Files with no events read as empty, in every format. */
static void test_empty_files(void)
{
    const char *names[] = {"empty.csv", "empty.jsonl", "empty.avro"};
    char err[1024];
    for (int k = 0; k < 3; k++) {
        const char *path = path_in_dir(names[k]);
        event_file_format_t fmt;
        ingest_event_t ev;
        int label;
        CHECK(event_file_format_from_name(path, &fmt) == 0);
        event_file_writer_t *w = event_file_writer_new(path, fmt, err, sizeof err);
        CHECK_MSG(w != NULL, "%s", err);
        CHECK(event_file_writer_close(w, err, sizeof err) == 0);
        event_file_reader_t *r = event_file_reader_new(path, err, sizeof err);
        CHECK_MSG(r != NULL, "%s: %s", names[k], err);
        if (r)
            CHECK_MSG(event_file_read(r, &ev, &label, err, sizeof err) == 0, "%s", err);
        event_file_reader_free(r);
        unlink(path);
    }
}

/* Reads name (written with text) to its first error; checks the message names the file and
 * holds each of want (NULL-terminated). at_open: the error comes from event_file_reader_new. */
static void expect_refusal(const char *name, const char *text, int at_open, const char *const *want)
{
    char err[1024] = "";
    const char *path = path_in_dir(name);
    ingest_event_t ev;
    int label, rc = 1;

    if (text)
        CHECK(write_text(path, text) == 0);
    event_file_reader_t *r = event_file_reader_new(path, err, sizeof err);
    CHECK_MSG((r == NULL) == at_open, "%s: %s", name, r ? "opened" : err);
    if (r) {
        for (int n = 0; n < 100000 && rc == 1; n++)
            rc = event_file_read(r, &ev, &label, err, sizeof err);
        CHECK_MSG(rc == -1, "%s: read gave %d", name, rc);
        /* Once failed, it stays failed. */
        char again[256];
        CHECK(event_file_read(r, &ev, &label, again, sizeof again) == -1);
        event_file_reader_free(r);
    }
    CHECK_MSG(strstr(err, path) != NULL, "%s: message without the file: %s", name, err);
    for (; *want; want++)
        CHECK_MSG(strstr(err, *want) != NULL, "%s: \"%s\" not in: %s", name, *want, err);
    unlink(path);
}

#define WANT(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_refusals(void)
{
    const char *hdr = "event_id,event_type,user_id,event_time,amount,is_fraud\n";
    char text[1024];

    /* CSV. */
    expect_refusal("nouser.csv", "event_id,event_type,event_time\ne1,LOGIN,5\n", 1,
                   WANT(":1:", "missing required column user_id"));
    expect_refusal("unknown.csv", "event_id,event_type,user_id,event_time,colour\n", 1,
                   WANT(":1:", "unknown column 'colour'"));
    expect_refusal("twice.csv", "event_id,event_type,user_id,event_time,user_id\n", 1,
                   WANT(":1:", "user_id appears twice"));
    expect_refusal("empty.csv", "", 1, WANT("no header"));
    snprintf(text, sizeof text, "%se1,LOGIN,u1,5,,0\ne2,TRANSACTION,u1,6,12.3x,1\n", hdr);
    expect_refusal("badnum.csv", text, 0, WANT(":3:", "amount '12.3x' is not a finite number"));
    snprintf(text, sizeof text, "%se1,LOGIN,u1,5,1e999,0\n", hdr);
    expect_refusal("inf.csv", text, 0, WANT(":2:", "amount '1e999'"));
    snprintf(text, sizeof text, "%se1,LOGIN,u1,5,nan,0\n", hdr);
    expect_refusal("nan.csv", text, 0, WANT(":2:", "amount 'nan'"));
    snprintf(text, sizeof text, "%se1,LOGIN,u1,5.5,,0\n", hdr);
    expect_refusal("badtime.csv", text, 0, WANT(":2:", "event_time '5.5' is not an integer"));
    snprintf(text, sizeof text, "%se1,LOGIN,u1,5,,0\n\"e\n2\",LOGIN,u1,6,,maybe\n", hdr);
    expect_refusal("badlabel.csv", text, 0,
                   WANT(":3:", "is_fraud 'maybe' is not 0, 1, true, false or empty"));
    snprintf(text, sizeof text, "%se1,LOGIN,,5,,0\n", hdr);
    expect_refusal("nouserid.csv", text, 0, WANT(":2:", "missing required field user_id"));
    snprintf(text, sizeof text, "%se1,LOGIN,\"\",5,,0\n", hdr);
    expect_refusal("emptyuserid.csv", text, 0, WANT(":2:", "user_id is empty"));
    snprintf(text, sizeof text, "%se1,LOGON,u1,5,,0\n", hdr);
    expect_refusal("badtype.csv", text, 0, WANT(":2:", "event_type 'LOGON'"));
    snprintf(text, sizeof text, "%se1,LOGIN,u1,5,,0,extra\n", hdr);
    expect_refusal("wide.csv", text, 0, WANT(":2:", "7 fields, the header has 6"));
    snprintf(text, sizeof text, "%se1,LOGIN,u1,5,\"3\n", hdr);
    expect_refusal("open.csv", text, 0, WANT(":2:", "quoted field is not closed"));
    snprintf(text, sizeof text, "%se1,LOGIN,\"u\"1,5,,0\n", hdr);
    expect_refusal("afterquote.csv", text, 0, WANT(":2:", "text after a closing quote"));
    snprintf(text, sizeof text, "%se1,LOGIN,u\"1,5,,0\n", hdr);
    expect_refusal("strayquote.csv", text, 0, WANT(":2:", "quote inside an unquoted field"));
    expect_refusal("geo.csv",
                   "event_id,event_type,user_id,event_time,latitude\ne1,LOGIN,u1,5,1.5\n", 0,
                   WANT(":2:", "latitude and longitude"));

    /* JSONL. */
    expect_refusal("notype.jsonl",
                   "{\"event_id\":\"e1\",\"event_type\":\"LOGIN\",\"user_id\":\"u\","
                   "\"event_time\":1}\n{\"event_id\":\"e2\",\"user_id\":\"u\",\"event_time\":2}\n",
                   0, WANT(":2:", "missing required field event_type"));
    expect_refusal("badnum.jsonl",
                   "{\"event_id\":\"e1\",\"event_type\":\"LOGIN\",\"user_id\":\"u\","
                   "\"event_time\":1,\"amount\":1.2.3}\n",
                   0, WANT(":1:", "amount '1.2.3' is not a finite number"));
    expect_refusal("strnum.jsonl",
                   "{\"event_id\":\"e1\",\"event_type\":\"LOGIN\",\"user_id\":\"u\","
                   "\"event_time\":1,\"amount\":\"7\"}\n",
                   0, WANT(":1:", "amount is a string"));
    expect_refusal("badlabel.jsonl",
                   "\n{\"event_id\":\"e1\",\"event_type\":\"LOGIN\",\"user_id\":\"u\","
                   "\"event_time\":1,\"is_fraud\":2}\n",
                   0, WANT(":2:", "is_fraud '2'"));
    expect_refusal("unknown.jsonl",
                   "{\"event_id\":\"e1\",\"event_type\":\"LOGIN\",\"user_id\":\"u\","
                   "\"event_time\":1,\"colour\":\"red\"}\n",
                   0, WANT(":1:", "unknown key 'colour'"));
    expect_refusal("numid.jsonl",
                   "{\"event_id\":7,\"event_type\":\"LOGIN\",\"user_id\":\"u\",\"event_time\":1}\n",
                   0, WANT(":1:", "event_id is not a string"));
    expect_refusal(
        "nested.jsonl",
        "{\"event_id\":\"e\",\"event_type\":\"LOGIN\",\"user_id\":{},\"event_time\":1}\n", 0,
        WANT(":1:", "user_id"));
    expect_refusal(
        "trailing.jsonl",
        "{\"event_id\":\"e\",\"event_type\":\"LOGIN\",\"user_id\":\"u\",\"event_time\":1}"
        " {}\n",
        0, WANT(":1:", "text after the object"));
    expect_refusal("cut.jsonl", "{\"event_id\":\"e\",\"event_type\":\"LOGIN\"", 0,
                   WANT(":1:", "bad JSON"));
    expect_refusal("twice.jsonl",
                   "{\"event_id\":\"e\",\"event_id\":\"f\",\"event_type\":\"LOGIN\",\"user_id\":"
                   "\"u\",\"event_time\":1}\n",
                   0, WANT(":1:", "event_id appears twice"));
    /* Strict JSON (RFC 8259): what other readers might guess at is refused, naming the field. */
    expect_refusal(
        "tab.jsonl",
        "{\"event_id\":\"e\",\"event_type\":\"LOGIN\",\"user_id\":\"a\tb\","
        "\"event_time\":1}\n",
        0, WANT(":1:", "bad JSON in user_id: json: control character in string at byte 49"));
    expect_refusal("latin1.jsonl",
                   "{\"event_id\":\"e\",\"event_type\":\"LOGIN\",\"user_id\":\"caf\xe9\","
                   "\"event_time\":1}\n",
                   0, WANT(":1:", "bad JSON in user_id: json: invalid UTF-8 in string"));
    expect_refusal("badkey.jsonl", "{\"event\\_id\":\"e\"}\n", 0,
                   WANT(":1:", "bad JSON in a key: json: invalid escape in string at byte 7"));
    expect_refusal("plus.jsonl",
                   "{\"event_id\":\"e\",\"event_type\":\"LOGIN\",\"user_id\":\"u\","
                   "\"event_time\":1,\"amount\":+1}\n",
                   0, WANT(":1:", "amount '+1' is not a finite number"));
    expect_refusal("zero.jsonl",
                   "{\"event_id\":\"e\",\"event_type\":\"LOGIN\",\"user_id\":\"u\","
                   "\"event_time\":01}\n",
                   0, WANT(":1:", "event_time '01' is not a finite number"));
    expect_refusal("huge.jsonl",
                   "{\"event_id\":\"e\",\"event_type\":\"LOGIN\",\"user_id\":\"u\","
                   "\"event_time\":1,\"latitude\":1e999,\"longitude\":0}\n",
                   0, WANT(":1:", "latitude '1e999' is not a finite number"));

    /* Avro: not Avro at all, then a good file cut short. */
    expect_refusal("text.avro", "event_id\n", 1, WANT("not an Avro object container file"));
    {
        char err[1024];
        const char *path = path_in_dir("cut.avro");
        produce_gen_t *g = produce_gen_new(7, 500, err, sizeof err);
        event_file_writer_t *w = event_file_writer_new(path, EVENT_FILE_AVRO, err, sizeof err);
        ingest_event_t ev;
        CHECK(g && w);
        if (!g || !w) {
            produce_gen_free(g);
            event_file_writer_close(w, err, sizeof err);
            return;
        }
        for (uint64_t i = 0; i < 3000; i++) {
            produce_gen_event(g, i, 1767225600000 + (int64_t)i, &ev);
            CHECK(event_file_write(w, &ev, produce_gen_event_is_fraud(g, i), err, sizeof err) == 0);
        }
        CHECK(event_file_writer_close(w, err, sizeof err) == 0);
        produce_gen_free(g);
        FILE *f = fopen(path, "rb");
        long size = -1;
        if (f && fseek(f, 0, SEEK_END) == 0)
            size = ftell(f);
        if (f)
            fclose(f);
        CHECK(size > 100000 && truncate(path, size - 100) == 0);
        expect_refusal("cut.avro", NULL, 0, WANT(": record ", "truncated or corrupt"));
    }
}

/* Refusals on the writing side: events no file can hold, and a disk that is full. */
static void test_write_errors(void)
{
    char err[1024];
    const char *path = path_in_dir("w.csv");
    ingest_event_t ev;

    event_file_writer_t *w = event_file_writer_new(path, EVENT_FILE_CSV, err, sizeof err);
    CHECK(w != NULL);
    if (!w)
        return;
    make_event(NULL, N_GENERATED, &ev);
    CHECK(event_file_write(w, &ev, 2, err, sizeof err) == -1 && strstr(err, "is_fraud 2"));
    ev.event_type = "LOGON";
    CHECK(event_file_write(w, &ev, 0, err, sizeof err) == -1 && strstr(err, "LOGON"));
    make_event(NULL, N_GENERATED, &ev);
    ev.user_id = "";
    CHECK(event_file_write(w, &ev, 0, err, sizeof err) == -1 && strstr(err, "user_id"));
    make_event(NULL, N_GENERATED, &ev);
    ev.has_amount = 1;
    ev.amount = NAN;
    CHECK(event_file_write(w, &ev, 0, err, sizeof err) == -1 && strstr(err, "finite"));
    CHECK(event_file_writer_close(w, err, sizeof err) == 0);
    unlink(path);

    CHECK(event_file_writer_new(path_in_dir("no/such/dir.csv"), EVENT_FILE_CSV, err, sizeof err) ==
              NULL &&
          strstr(err, "no/such/dir.csv"));
    if (access("/dev/full", W_OK) == 0) {
        w = event_file_writer_new("/dev/full", EVENT_FILE_JSONL, err, sizeof err);
        CHECK(w != NULL);
        if (w) {
            make_event(NULL, N_GENERATED + 1, &ev);
            int rc = 0;
            for (int k = 0; k < 100000 && rc == 0; k++)
                rc = event_file_write(w, &ev, 0, err, sizeof err);
            /* A full buffer fails a write, else the final flush does. */
            CHECK(event_file_writer_close(w, err, sizeof err) == -1);
            CHECK_MSG(strstr(err, "/dev/full") != NULL, "%s", err);
        }
    }
}

static void test_format_from_name(void)
{
    event_file_format_t f;
    CHECK(event_file_format_from_name("a.csv", &f) == 0 && f == EVENT_FILE_CSV);
    CHECK(event_file_format_from_name("dir.x/A.CSV", &f) == 0 && f == EVENT_FILE_CSV);
    CHECK(event_file_format_from_name("a.jsonl", &f) == 0 && f == EVENT_FILE_JSONL);
    CHECK(event_file_format_from_name("a.ndjson", &f) == 0 && f == EVENT_FILE_JSONL);
    CHECK(event_file_format_from_name("a.avro", &f) == 0 && f == EVENT_FILE_AVRO);
    CHECK(event_file_format_from_name("a.json", &f) == -1);
    CHECK(event_file_format_from_name("a.csv.gz", &f) == -1);
    CHECK(event_file_format_from_name("csv", &f) == -1);
    CHECK(event_file_format_from_name("dir.csv/file", &f) == -1);
    char err[256];
    CHECK(event_file_reader_new("x.parquet", err, sizeof err) == NULL && strstr(err, "x.parquet"));
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/test_event_file.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "test_event_file: mkdtemp %s: %s\n", dir, strerror(errno));
        return 1;
    }

    test_format_from_name();
    test_round_trip("events.csv");
    test_round_trip("events.jsonl");
    test_round_trip("events.avro");
    test_text_forms();
    test_lenient_inputs();
    test_empty_files();
    test_refusals();
    test_write_errors();

    if (rmdir(dir) != 0) {
        fprintf(stderr, "test_event_file: rmdir %s: %s (a file left behind?)\n", dir,
                strerror(errno));
        return 1;
    }
    return TEST_DONE();
}
