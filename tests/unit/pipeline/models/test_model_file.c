/* Model files: a written file reads back exactly, and every kind of bad file is refused with a
 * message naming the problem (truncated, bad header, missing tensor, wrong shape, wrong dtype,
 * checksum mismatch, unexpected tensor). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_file.h"
#include "test.h"

static char dir[] = "/tmp/vigil-test-model-file.XXXXXX";

static void path_of(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* A safetensors file from raw parts: the header text as given, then n data bytes. */
static void write_raw(const char *path, const char *header, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    uint64_t len = strlen(header);
    uint8_t lb[8];
    for (int i = 0; i < 8; i++)
        lb[i] = (uint8_t)(len >> (8 * i));
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(fwrite(lb, 1, 8, f) == 8);
    CHECK(fwrite(header, 1, len, f) == len);
    if (n > 0)
        CHECK(fwrite(data, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

/* Reading path must fail with a message containing want. */
static void expect_refused(const char *path, const char *want)
{
    char err[512] = "";
    model_file_t *mf = model_file_read(path, err, sizeof err);
    CHECK_MSG(mf == NULL, "%s was accepted", path);
    CHECK_MSG(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
    model_file_free(mf);
}

static float w[6] = {1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, -7.0f}; /* (2, 3) */
static float b[3] = {0.5f, 0.25f, -0.125f};                    /* (3) */

static int write_good(const char *path, char *sha)
{
    const char *keys[] = {"vigil.arch", "vigil.version", "note"};
    const char *vals[] = {"test_arch", "test-1", "quote \" and \\ and \n newline"};
    model_file_tensor_out_t t[2] = {{"layer.w", w, 2, {2, 3}}, {"layer.b", b, 1, {3}}};
    char err[512];
    int rc = model_file_write(path, keys, vals, 3, t, 2, sha, err, sizeof err);
    CHECK_MSG(rc == 0, "%s", err);
    return rc;
}

static void test_round_trip(const char *good)
{
    char err[512], sha[65], sha2[65];
    model_file_tensor_out_t t[2] = {{"layer.w", w, 2, {2, 3}}, {"layer.b", b, 1, {3}}};
    model_file_t *mf = model_file_read(good, err, sizeof err);
    int64_t sw[2] = {2, 3}, sb[1] = {3};

    CHECK_MSG(mf != NULL, "%s", err);
    if (!mf)
        return;
    CHECK(model_file_verify(mf, err, sizeof err) == 0);
    CHECK_STR(model_file_meta(mf, "vigil.arch"), "test_arch");
    CHECK_STR(model_file_meta(mf, "vigil.version"), "test-1");
    CHECK_STR(model_file_meta(mf, "note"), "quote \" and \\ and \n newline");
    CHECK_STR(model_file_meta(mf, "vigil.format"), "1");
    CHECK(model_file_meta(mf, "vigil.created") != NULL);
    CHECK(model_file_meta(mf, "absent") == NULL);
    CHECK(model_file_meta_need(mf, "absent", err, sizeof err) == NULL);
    CHECK(strstr(err, "metadata key absent is missing") != NULL);
    CHECK(model_file_tensors_sha256(t, 2, sha2, err, sizeof err) == 0);
    CHECK_STR(model_file_meta(mf, "vigil.sha256"), sha2);
    /* Not all taken yet. */
    CHECK(model_file_check_all_used(mf, err, sizeof err) == -1);
    const float *rw = model_file_f32(mf, "layer.w", 2, sw, err, sizeof err);
    const float *rb = model_file_f32(mf, "layer.b", 1, sb, err, sizeof err);
    CHECK(rw && memcmp(rw, w, sizeof w) == 0);
    CHECK(rb && memcmp(rb, b, sizeof b) == 0);
    CHECK(((uintptr_t)rb % 64) == 0 && ((uintptr_t)rw % 4) == 0); /* b first: name order */
    CHECK(model_file_check_all_used(mf, err, sizeof err) == 0);
    model_file_free(mf);
    (void)sha;
}

static void test_lookups(const char *good)
{
    char err[512];
    model_file_t *mf = model_file_read(good, err, sizeof err);
    int64_t wrong[2] = {3, 2}, sw[2] = {2, 3}, sb[1] = {3};
    if (!mf) {
        CHECK_MSG(0, "%s", err);
        return;
    }
    CHECK(model_file_f32(mf, "layer.x", 1, sb, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "tensor layer.x is missing") != NULL, "%s", err);
    CHECK(model_file_f32(mf, "layer.w", 2, wrong, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "tensor layer.w has shape [2, 3], expected [3, 2]") != NULL, "%s", err);
    CHECK(model_file_f32(mf, "layer.w", 1, sw, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "has shape [2, 3], expected [2]") != NULL, "%s", err);
    /* Only layer.b taken: layer.w is unexpected for such a loader. */
    CHECK(model_file_f32(mf, "layer.b", 1, sb, err, sizeof err) != NULL);
    CHECK(model_file_check_all_used(mf, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "unexpected tensor layer.w") != NULL, "%s", err);
    model_file_free(mf);
}

/* Every proper prefix of a good file is refused, and says truncated (or a bad header when the
 * cut falls inside the JSON text). */
static void test_truncated(const char *good)
{
    char cut[512], err[512];
    FILE *f = fopen(good, "rb");
    uint8_t buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    CHECK(n > 64 && n < sizeof buf);
    path_of(cut, sizeof cut, "cut.safetensors");
    int truncated = 0;
    for (size_t k = 0; k < n; k++) {
        f = fopen(cut, "wb");
        CHECK(f && fwrite(buf, 1, k, f) == k);
        if (f)
            fclose(f);
        model_file_t *mf = model_file_read(cut, err, sizeof err);
        CHECK_MSG(mf == NULL, "prefix of %zu bytes accepted", k);
        model_file_free(mf);
        CHECK_MSG(strstr(err, "truncated") || strstr(err, "bad header"), "%zu: %s", k, err);
        truncated += strstr(err, "truncated") != NULL;
    }
    CHECK(truncated > 30); /* cuts in the length, the header and the data all say so */
    /* The data section cut short: named. */
    f = fopen(cut, "wb");
    CHECK(f && fwrite(buf, 1, n - 4, f) == n - 4);
    if (f)
        fclose(f);
    expect_refused(cut, "truncated: tensor layer.w ends at data byte 36 but the file has 32");
}

static void test_bad_headers(void)
{
    char p[512];
    float d[4] = {0};
    path_of(p, sizeof p, "bad.safetensors");

    write_raw(p, "{\"a\":", d, 0);
    expect_refused(p, "bad header: json:");
    write_raw(p, "[1,2]", d, 0);
    expect_refused(p, "bad header: not a JSON object");
    write_raw(p, "{\"__metadata__\":{\"k\":1}}", d, 0);
    expect_refused(p, "bad header: metadata k is not a string");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[4]}}", d, 16);
    expect_refused(p, "tensor t must be an object of exactly dtype, shape and data_offsets");
    write_raw(p, "{\"t\":{\"dtype\":\"F99\",\"shape\":[4],\"data_offsets\":[0,16]}}", d, 16);
    expect_refused(p, "tensor t has an unknown dtype");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", d, 16);
    expect_refused(p, "tensor t: shape[0] is not a size");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", d, 12);
    expect_refused(p, "its shape and dtype make 16 bytes but data_offsets span 12");
    write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", d, 16);
    expect_refused(p, "data_offsets must be [begin, end]");
    /* A hole before the second tensor, an overlap, trailing bytes. */
    write_raw(p,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
              d, 12);
    expect_refused(p, "tensor b starts at data byte 8 where 4 was expected");
    write_raw(p,
              "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
              d, 8);
    expect_refused(p, "where 8 was expected (tensors overlap");
    write_raw(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 8);
    expect_refused(p, "8 data bytes but the tensors cover 4");
    /* A header length that is not one. */
    FILE *f = fopen(p, "wb");
    uint8_t junk[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    CHECK(f && fwrite(junk, 1, sizeof junk, f) == sizeof junk);
    if (f)
        fclose(f);
    expect_refused(p, "header length 9223372036854775807 is out of range");
    path_of(p, sizeof p, "absent.safetensors");
    expect_refused(p, "cannot open");
}

/* A file whose only problem is its dtype: read fine, refused where F32 is required. */
static void test_wrong_dtype(void)
{
    char p[512], err[512];
    uint16_t h[4] = {0};
    int64_t shape[1] = {4};
    path_of(p, sizeof p, "f16.safetensors");
    write_raw(p, "{\"t\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]}}", h, 8);
    model_file_t *mf = model_file_read(p, err, sizeof err);
    CHECK_MSG(mf != NULL, "%s", err);
    if (!mf)
        return;
    CHECK(model_file_f32(mf, "t", 1, shape, err, sizeof err) == NULL);
    CHECK_MSG(strstr(err, "tensor t has dtype F16, expected F32") != NULL, "%s", err);
    /* Not a vigil file: no vigil.format. */
    CHECK(model_file_verify(mf, err, sizeof err) == -1);
    CHECK_MSG(strstr(err, "metadata key vigil.format is missing") != NULL, "%s", err);
    model_file_free(mf);
}

static void test_checksum(const char *good)
{
    char p[512], err[512];
    FILE *f = fopen(good, "rb");
    uint8_t buf[4096];
    size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
    if (f)
        fclose(f);
    buf[n - 1] ^= 0x01; /* one bit of the last float */
    path_of(p, sizeof p, "flipped.safetensors");
    f = fopen(p, "wb");
    CHECK(f && fwrite(buf, 1, n, f) == n);
    if (f)
        fclose(f);
    model_file_t *mf = model_file_read(p, err, sizeof err);
    CHECK_MSG(mf != NULL, "%s", err); /* structurally fine */
    if (mf) {
        CHECK(model_file_verify(mf, err, sizeof err) == -1);
        CHECK_MSG(strstr(err, "checksum mismatch") != NULL, "%s", err);
    }
    model_file_free(mf);
}

static void test_writer_refusals(void)
{
    char p[512], err[512];
    const char *k1[] = {"vigil.sha256"}, *v1[] = {"x"};
    model_file_tensor_out_t dup[2] = {{"a", b, 1, {3}}, {"a", b, 1, {3}}};
    path_of(p, sizeof p, "w.safetensors");
    CHECK(model_file_write(p, k1, v1, 1, dup, 1, NULL, err, sizeof err) == -1);
    CHECK(strstr(err, "written by model_file_write itself") != NULL);
    CHECK(model_file_write(p, NULL, NULL, 0, dup, 2, NULL, err, sizeof err) == -1);
    CHECK(strstr(err, "tensor a is given twice") != NULL);
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/no/such/dir/m.safetensors", dir);
    CHECK(model_file_write(p, NULL, NULL, 0, dup, 1, NULL, err, sizeof err) == -1);
    CHECK(strstr(err, "cannot create") != NULL);
}

int main(void)
{
    char good[512], sha[65], cmd[600];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    path_of(good, sizeof good, "good.safetensors");
    if (write_good(good, sha) == 0) {
        test_round_trip(good);
        test_lookups(good);
        test_truncated(good);
        test_checksum(good);
    }
    test_bad_headers();
    test_wrong_dtype();
    test_writer_refusals();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0);
    return TEST_DONE();
}
