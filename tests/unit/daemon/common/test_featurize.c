/* A user's own schema, end to end without servers: a BehaviorEvent reader schema with 28
 * anonymised columns and a segment string, a feature spec naming them, records encoded and
 * decoded through ingest_avro, and the vectors featurize_event makes of them. Also the errors a
 * spec gets for fields the schema does not have. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "featurize.h"
#include "ingest_avro.h"
#include "test.h"

static char tmpdir[] = "/tmp/vigil_featurize_test_XXXXXX";

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

/* BehaviorEvent.avsc with V1..V28 (double, default 0) and segment (optional string) appended. */
static int write_reader_schema(const char *path)
{
    char dir[PATH_MAX - 32], src[PATH_MAX], *base, *close, extra[4096];
    size_t n = 0;
    FILE *f;
    long size;
    if (test_schema_dir(dir, sizeof dir) < 0)
        return -1;
    snprintf(src, sizeof src, "%s/BehaviorEvent.avsc", dir);
    if (!(f = fopen(src, "r")) || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        if (f)
            fclose(f);
        return -1;
    }
    base = calloc(1, (size_t)size + 1);
    if (!base || fread(base, 1, (size_t)size, f) != (size_t)size) {
        free(base);
        fclose(f);
        return -1;
    }
    fclose(f);
    for (int k = 1; k <= 28; k++)
        n += (size_t)snprintf(extra + n, sizeof extra - n,
                              ",\n{\"name\": \"V%d\", \"type\": \"double\", \"default\": 0}", k);
    snprintf(extra + n, sizeof extra - n,
             ",\n{\"name\": \"segment\", \"type\": [\"null\", \"string\"], \"default\": null}\n");
    close = strrchr(base, ']'); /* the end of the fields */
    if (!close || !(f = fopen(path, "w"))) {
        free(base);
        return -1;
    }
    fwrite(base, 1, (size_t)(close - base), f);
    fputs(extra, f);
    fputs(close, f);
    free(base);
    return fclose(f);
}

static long col(const features_spec_t *s, const char *name)
{
    for (size_t i = 0; i < features_spec_width(s); i++)
        if (strcmp(features_spec_column(s, i), name) == 0)
            return (long)i;
    return -1;
}

int main(void)
{
    char schema[PATH_MAX], spec_path[PATH_MAX], err[512] = "";
    unsigned char msg[4096];
    ingest_avro_t *dec = NULL;
    featurize_t *fz = NULL;
    features_state_t *st = NULL;
    ingest_record_t in = {0}, out = {0};
    double extra_num[29];
    const char *extra_str[29];
    float v[64];

    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(schema, sizeof schema, "%s/BehaviorEvent.avsc", tmpdir);
    snprintf(spec_path, sizeof spec_path, "%s/card.spec", tmpdir);
    CHECK(write_reader_schema(schema) == 0);
    CHECK(write_file(spec_path, "# a card-fraud data set's own columns\n"
                                "entity card user_id\n"
                                "numeric amount.log amount log\n"
                                "numeric V1 V1\n"
                                "numeric V28 V28 clip=-1:1\n"
                                "categorical segment segment 4\n"
                                "count card 1h\n"
                                "sum card V1 1h\n") == 0);
    dec = ingest_avro_new(INGEST_KIND_EVENT, INGEST_FORMAT_PLAIN, schema, tmpdir, err, sizeof err);
    CHECK_MSG(dec != NULL, "%s", err);
    if (!dec)
        goto out;
    CHECK(ingest_avro_extra_count(dec) == 29);
    fz = featurize_new(dec, spec_path, err, sizeof err);
    CHECK_MSG(fz != NULL, "%s", err);
    if (!fz)
        goto out;
    const features_spec_t *spec = featurize_spec(fz);
    CHECK(features_spec_width(spec) == 9);
    CHECK(strlen(featurize_spec_hash(fz)) == 16);
    st = features_state_new(spec, 1000, 0, err, sizeof err);
    CHECK(st != NULL);

    /* Two events of one card: V1 = 1.5 then -0.25, V28 = 7 (clipped to 1), segment "gold". */
    for (int i = 0; i < 2 && st; i++) {
        for (int k = 0; k < 29; k++) {
            extra_num[k] = k < 28 ? (double)k / 10.0 : NAN;
            extra_str[k] = NULL;
        }
        extra_num[0] = i == 0 ? 1.5 : -0.25;
        extra_num[27] = 7.0;
        extra_str[28] = "gold";
        in.kind = INGEST_KIND_EVENT;
        in.event = (ingest_event_t){.event_id = i == 0 ? "e1" : "e2",
                                    .event_type = "TRANSACTION",
                                    .user_id = "card-17",
                                    .has_amount = 1,
                                    .amount = 99.0,
                                    .event_time_ms = 1767225600000LL + i * 60000,
                                    .n_extra = 29,
                                    .extra_num = extra_num,
                                    .extra_str = extra_str};
        long len = ingest_avro_encode(dec, &in, 0, msg, sizeof msg, err, sizeof err);
        CHECK_MSG(len > 0, "%s", err);
        if (len <= 0)
            break;
        CHECK_MSG(ingest_avro_decode(dec, msg, (size_t)len, &out, err, sizeof err) ==
                      INGEST_AVRO_OK,
                  "%s", err);
        CHECK(featurize_event(fz, st, &out.event, v) == 0);
        CHECK(v[col(spec, "V1")] == (float)extra_num[0]);
        CHECK(v[col(spec, "V28")] == 1.0f);
        CHECK(fabsf(v[col(spec, "amount.log")] - (float)log1p(99.0)) < 1e-6f);
        float onehot = 0;
        for (int b = 0; b < 4; b++) {
            char name[32];
            snprintf(name, sizeof name, "segment#%d", b);
            onehot += v[col(spec, name)];
        }
        CHECK(onehot == 1.0f);
        CHECK(v[col(spec, "card.count.1h")] == (float)(i + 1));
        CHECK(v[col(spec, "card.sum.V1.1h")] == (i == 0 ? 1.5f : 1.25f));
    }

    /* Fields the schema lacks, or of the wrong type, are spec errors naming file:line. */
    featurize_free(fz);
    CHECK(write_file(spec_path, "entity card user_id\nnumeric V29 V29\n") == 0);
    fz = featurize_new(dec, spec_path, err, sizeof err);
    CHECK(fz == NULL);
    CHECK_MSG(strstr(err, "card.spec:2: no input field named V29") != NULL, "%s", err);
    CHECK(write_file(spec_path, "numeric seg segment\n") == 0);
    fz = featurize_new(dec, spec_path, err, sizeof err);
    CHECK(fz == NULL);
    CHECK_MSG(strstr(err, "card.spec:1: field segment is a string") != NULL, "%s", err);
    CHECK(write_file(spec_path, "# M\xfcller, in Latin-1\nentity card user_id\n") == 0);
    fz = featurize_new(dec, spec_path, err, sizeof err);
    CHECK(fz == NULL);
    CHECK_MSG(strstr(err, "card.spec:1: not valid UTF-8") != NULL, "%s", err);
    fz = featurize_new(dec, "/nonexistent/spec", err, sizeof err);
    CHECK(fz == NULL && strstr(err, "cannot open feature spec /nonexistent/spec") != NULL);
    /* The built-in spec compiles against the extended schema too. */
    fz = featurize_new(dec, "", err, sizeof err);
    CHECK_MSG(fz != NULL && features_spec_width(featurize_spec(fz)) == 70, "%s", err);

out:
    features_state_free(st);
    featurize_free(fz);
    ingest_avro_free(dec);
    ingest_record_clear(&out);
    unlink(schema);
    unlink(spec_path);
    rmdir(tmpdir);
    return TEST_DONE();
}
