/* Strict safetensors reading and writing (see model_file.h for the format and the checks). */
#include "model_file.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "errbuf.h"
#include "json.h"
#include "sha256.h"

static const struct {
    const char *name;
    size_t size;
} mf_dtypes[] = {
    [MODEL_DTYPE_F32] = {"F32", 4},   [MODEL_DTYPE_F16] = {"F16", 2},
    [MODEL_DTYPE_BF16] = {"BF16", 2}, [MODEL_DTYPE_F64] = {"F64", 8},
    [MODEL_DTYPE_I64] = {"I64", 8},   [MODEL_DTYPE_I32] = {"I32", 4},
    [MODEL_DTYPE_I16] = {"I16", 2},   [MODEL_DTYPE_I8] = {"I8", 1},
    [MODEL_DTYPE_U8] = {"U8", 1},     [MODEL_DTYPE_BOOL] = {"BOOL", 1},
};
#define MF_N_DTYPES (sizeof mf_dtypes / sizeof mf_dtypes[0])

/* Reads exactly n bytes; -1 on error or end of file (*got says how many came). */
static int mf_read_full(int fd, void *buf, size_t n, size_t *got)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return done == n ? 0 : -1;
}

void model_file_free(model_file_t *mf)
{
    if (!mf)
        return;
    for (size_t i = 0; i < mf->n_meta; i++) {
        free(mf->meta_keys[i]);
        free(mf->meta_values[i]);
    }
    free(mf->meta_keys);
    free(mf->meta_values);
    for (size_t i = 0; i < mf->n_tensors; i++)
        free(mf->tensors[i].name);
    free(mf->tensors);
    free(mf->data);
    free(mf->path);
    free(mf);
}

/* One header entry (name: {"dtype", "shape", "data_offsets"}) into t. */
static int mf_parse_tensor(const char *path, const char *name, const json_value_t *v,
                           model_tensor_t *t, char *err, size_t errlen)
{
    const json_value_t *dtype = json_get(v, "dtype"), *shape = json_get(v, "shape");
    const json_value_t *offs = json_get(v, "data_offsets");
    size_t d;
    uint64_t elems = 1, size;

    if (v->type != JSON_OBJECT || !dtype || !shape || !offs || v->n != 3) {
        errbuf_printf(err, errlen,
                      "%s: bad header: tensor %s must be an object of exactly dtype, shape and "
                      "data_offsets",
                      path, name);
        return -1;
    }
    for (d = 0; d < MF_N_DTYPES; d++)
        if (dtype->type == JSON_STRING && strcmp(dtype->string, mf_dtypes[d].name) == 0)
            break;
    if (d == MF_N_DTYPES) {
        errbuf_printf(err, errlen, "%s: bad header: tensor %s has an unknown dtype", path, name);
        return -1;
    }
    t->dtype = (model_dtype_t)d;
    if (shape->type != JSON_ARRAY || shape->n > MODEL_FILE_NDIM_MAX) {
        errbuf_printf(err, errlen,
                      "%s: bad header: tensor %s: shape must be an array of at most %d sizes", path,
                      name, MODEL_FILE_NDIM_MAX);
        return -1;
    }
    t->ndim = (int)shape->n;
    for (size_t i = 0; i < shape->n; i++) {
        const json_value_t *s = &shape->items[i];
        if (s->type != JSON_NUMBER || !s->is_integer || s->integer < 0 ||
            (s->integer > 0 && elems > UINT64_MAX / (uint64_t)s->integer)) {
            errbuf_printf(err, errlen, "%s: bad header: tensor %s: shape[%zu] is not a size", path,
                          name, i);
            return -1;
        }
        t->shape[i] = s->integer;
        elems *= (uint64_t)s->integer;
    }
    if (offs->type != JSON_ARRAY || offs->n != 2 || offs->items[0].type != JSON_NUMBER ||
        offs->items[1].type != JSON_NUMBER || !offs->items[0].is_integer ||
        !offs->items[1].is_integer || offs->items[0].integer < 0 ||
        offs->items[1].integer < offs->items[0].integer) {
        errbuf_printf(err, errlen, "%s: bad header: tensor %s: data_offsets must be [begin, end]",
                      path, name);
        return -1;
    }
    t->begin = (uint64_t)offs->items[0].integer;
    t->end = (uint64_t)offs->items[1].integer;
    if (elems > UINT64_MAX / mf_dtypes[d].size) {
        errbuf_printf(err, errlen, "%s: bad header: tensor %s is impossibly large", path, name);
        return -1;
    }
    size = elems * mf_dtypes[d].size;
    if (t->end - t->begin != size) {
        errbuf_printf(err, errlen,
                      "%s: bad header: tensor %s: its shape and dtype make %" PRIu64
                      " bytes but data_offsets span %" PRIu64,
                      path, name, size, t->end - t->begin);
        return -1;
    }
    return 0;
}

static int mf_cmp_begin(const void *a, const void *b)
{
    const model_tensor_t *x = *(const model_tensor_t *const *)a;
    const model_tensor_t *y = *(const model_tensor_t *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* The tensors must tile [0, data_len) exactly: in begin order, each starts where the last ended. */
static int mf_check_cover(model_file_t *mf, char *err, size_t errlen)
{
    model_tensor_t **order = NULL;
    uint64_t at = 0;
    int rc = -1;

    if (mf->n_tensors > 0) {
        order = malloc(mf->n_tensors * sizeof *order);
        if (!order) {
            errbuf_printf(err, errlen, "%s: out of memory", mf->path);
            return -1;
        }
    }
    for (size_t i = 0; i < mf->n_tensors; i++)
        order[i] = &mf->tensors[i];
    if (mf->n_tensors > 0)
        qsort(order, mf->n_tensors, sizeof *order, mf_cmp_begin);
    for (size_t i = 0; i < mf->n_tensors; i++) {
        if (order[i]->end > mf->data_len) {
            errbuf_printf(err, errlen,
                          "%s: truncated: tensor %s ends at data byte %" PRIu64
                          " but the file has %zu data bytes",
                          mf->path, order[i]->name, order[i]->end, mf->data_len);
            goto out;
        }
        if (order[i]->begin != at) {
            errbuf_printf(err, errlen,
                          "%s: bad header: tensor %s starts at data byte %" PRIu64 " where %" PRIu64
                          " was expected (tensors overlap or leave a hole)",
                          mf->path, order[i]->name, order[i]->begin, at);
            goto out;
        }
        at = order[i]->end;
    }
    if (at != mf->data_len) {
        errbuf_printf(err, errlen,
                      "%s: bad file: %zu data bytes but the tensors cover %" PRIu64
                      " (trailing bytes or a corrupt header)",
                      mf->path, mf->data_len, at);
        goto out;
    }
    rc = 0;
out:
    free(order);
    return rc;
}

static char *mf_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static int mf_parse_header(model_file_t *mf, const char *text, size_t len, char *err, size_t errlen)
{
    char jerr[256];
    json_value_t *root = json_parse(text, len, jerr, sizeof jerr);
    int rc = -1;

    if (!root) {
        errbuf_printf(err, errlen, "%s: bad header: %s", mf->path, jerr);
        return -1;
    }
    if (root->type != JSON_OBJECT) {
        errbuf_printf(err, errlen, "%s: bad header: not a JSON object", mf->path);
        goto out;
    }
    mf->tensors = calloc(root->n ? root->n : 1, sizeof *mf->tensors);
    if (!mf->tensors)
        goto oom;
    for (size_t i = 0; i < root->n; i++) {
        const char *key = root->keys[i];
        const json_value_t *v = &root->items[i];
        if (strcmp(key, "__metadata__") == 0) {
            if (v->type != JSON_OBJECT) {
                errbuf_printf(err, errlen, "%s: bad header: __metadata__ is not an object",
                              mf->path);
                goto out;
            }
            mf->meta_keys = calloc(v->n ? v->n : 1, sizeof *mf->meta_keys);
            mf->meta_values = calloc(v->n ? v->n : 1, sizeof *mf->meta_values);
            if (!mf->meta_keys || !mf->meta_values)
                goto oom;
            for (size_t m = 0; m < v->n; m++) {
                if (v->items[m].type != JSON_STRING) {
                    errbuf_printf(err, errlen, "%s: bad header: metadata %s is not a string",
                                  mf->path, v->keys[m]);
                    goto out;
                }
                mf->meta_keys[m] = mf_strdup(v->keys[m]);
                mf->meta_values[m] = mf_strdup(v->items[m].string);
                mf->n_meta = m + 1;
                if (!mf->meta_keys[m] || !mf->meta_values[m])
                    goto oom;
            }
            continue;
        }
        model_tensor_t *t = &mf->tensors[mf->n_tensors];
        t->name = mf_strdup(key);
        if (!t->name)
            goto oom;
        mf->n_tensors++;
        if (mf_parse_tensor(mf->path, key, v, t, err, errlen) != 0)
            goto out;
    }
    rc = 0;
    goto out;
oom:
    errbuf_printf(err, errlen, "%s: out of memory reading the header", mf->path);
out:
    json_free(root);
    return rc;
}

model_file_t *model_file_read(const char *path, char *err, size_t errlen)
{
    model_file_t *mf = NULL;
    char *header = NULL;
    uint8_t lenbuf[8];
    uint64_t hlen = 0;
    struct stat st;
    size_t got;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        errbuf_printf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    mf = calloc(1, sizeof *mf);
    if (!mf || !(mf->path = mf_strdup(path))) {
        errbuf_printf(err, errlen, "%s: out of memory", path);
        goto err;
    }
    if (fstat(fd, &st) != 0) {
        errbuf_printf(err, errlen, "%s: cannot stat: %s", path, strerror(errno));
        goto err;
    }
    if (!S_ISREG(st.st_mode)) {
        errbuf_printf(err, errlen, "%s: not a regular file", path);
        goto err;
    }
    if (mf_read_full(fd, lenbuf, 8, &got) != 0) {
        errbuf_printf(err, errlen,
                      "%s: truncated: %zu bytes, fewer than the 8 of the header length", path, got);
        goto err;
    }
    for (int i = 7; i >= 0; i--)
        hlen = hlen << 8 | lenbuf[i];
    if (hlen < 2 || hlen > MODEL_FILE_HEADER_MAX) {
        errbuf_printf(err, errlen,
                      "%s: bad header: header length %" PRIu64 " is out of range (2..%zu); not a "
                      "safetensors file?",
                      path, hlen, MODEL_FILE_HEADER_MAX);
        goto err;
    }
    if ((uint64_t)st.st_size < 8 + hlen) {
        errbuf_printf(err, errlen,
                      "%s: truncated: the header says %" PRIu64
                      " header bytes, the file has %" PRIu64 " after the length",
                      path, hlen, (uint64_t)st.st_size - 8);
        goto err;
    }
    header = malloc((size_t)hlen);
    if (!header) {
        errbuf_printf(err, errlen, "%s: out of memory for a %" PRIu64 "-byte header", path, hlen);
        goto err;
    }
    if (mf_read_full(fd, header, (size_t)hlen, &got) != 0) {
        errbuf_printf(err, errlen, "%s: truncated while reading the header: %s", path,
                      got < hlen ? "end of file" : strerror(errno));
        goto err;
    }
    if (mf_parse_header(mf, header, (size_t)hlen, err, errlen) != 0)
        goto err;
    mf->data_len = (size_t)((uint64_t)st.st_size - 8 - hlen);
    /* Its own 64-byte-aligned buffer, whatever the header's length: floats are read in place. */
    mf->data = aligned_alloc(64, (mf->data_len + 63) / 64 * 64 + 64);
    if (!mf->data) {
        errbuf_printf(err, errlen, "%s: out of memory for %zu bytes of tensors", path,
                      mf->data_len);
        goto err;
    }
    if (mf_read_full(fd, mf->data, mf->data_len, &got) != 0) {
        errbuf_printf(err, errlen, "%s: truncated while reading the tensors (%zu of %zu bytes)",
                      path, got, mf->data_len);
        goto err;
    }
    if (mf_check_cover(mf, err, errlen) != 0)
        goto err;
    free(header);
    close(fd);
    return mf;

err:
    free(header);
    close(fd);
    model_file_free(mf);
    return NULL;
}

const char *model_file_meta(const model_file_t *mf, const char *key)
{
    for (size_t i = 0; i < mf->n_meta; i++)
        if (strcmp(mf->meta_keys[i], key) == 0)
            return mf->meta_values[i];
    return NULL;
}

const char *model_file_meta_need(const model_file_t *mf, const char *key, char *err, size_t errlen)
{
    const char *v = model_file_meta(mf, key);
    if (!v)
        errbuf_printf(err, errlen, "%s: metadata key %s is missing", mf->path, key);
    return v;
}

/* "[384, 1536]" into buf. */
static const char *mf_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t at = 0;
    at += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
    return buf;
}

const float *model_file_f32(model_file_t *mf, const char *name, int ndim, const int64_t *shape,
                            char *err, size_t errlen)
{
    char want[128], have[128];
    for (size_t i = 0; i < mf->n_tensors; i++) {
        model_tensor_t *t = &mf->tensors[i];
        if (strcmp(t->name, name) != 0)
            continue;
        if (t->dtype != MODEL_DTYPE_F32) {
            errbuf_printf(err, errlen, "%s: tensor %s has dtype %s, expected F32", mf->path, name,
                          mf_dtypes[t->dtype].name);
            return NULL;
        }
        int same = t->ndim == ndim;
        for (int d = 0; same && d < ndim; d++)
            same = t->shape[d] == shape[d];
        if (!same) {
            errbuf_printf(err, errlen, "%s: tensor %s has shape %s, expected %s", mf->path, name,
                          mf_shape_str(t->ndim, t->shape, have, sizeof have),
                          mf_shape_str(ndim, shape, want, sizeof want));
            return NULL;
        }
        t->used = 1;
        return (const float *)(mf->data + t->begin);
    }
    errbuf_printf(err, errlen, "%s: tensor %s is missing", mf->path, name);
    return NULL;
}

int model_file_verify(const model_file_t *mf, char *err, size_t errlen)
{
    const char *format = model_file_meta_need(mf, "vigil.format", err, errlen);
    const char *want = format ? model_file_meta_need(mf, "vigil.sha256", err, errlen) : NULL;
    uint8_t digest[32];
    char hex[65];
    sha256_t s;

    if (!format || !want)
        return -1;
    if (strcmp(format, "1") != 0) {
        errbuf_printf(err, errlen, "%s: vigil.format is \"%s\"; this vigil reads format 1",
                      mf->path, format);
        return -1;
    }
    sha256_init(&s);
    sha256_update(&s, mf->data, mf->data_len);
    sha256_final(&s, digest);
    sha256_hex(digest, hex);
    if (strcmp(hex, want) != 0) {
        errbuf_printf(
            err, errlen,
            "%s: checksum mismatch: the tensors' sha256 is %s, the header says %s (the file "
            "is corrupt or was edited)",
            mf->path, hex, want);
        return -1;
    }
    return 0;
}

int model_file_check_all_used(const model_file_t *mf, char *err, size_t errlen)
{
    for (size_t i = 0; i < mf->n_tensors; i++)
        if (!mf->tensors[i].used) {
            errbuf_printf(err, errlen, "%s: unexpected tensor %s (a file for another model shape?)",
                          mf->path, mf->tensors[i].name);
            return -1;
        }
    return 0;
}

/* ---- writing ---- */

static uint64_t mf_tensor_bytes(const model_file_tensor_out_t *t)
{
    uint64_t n = 4;
    for (int d = 0; d < t->ndim; d++)
        n *= (uint64_t)t->shape[d];
    return n;
}

static int mf_cmp_name(const void *a, const void *b)
{
    return strcmp((*(const model_file_tensor_out_t *const *)a)->name,
                  (*(const model_file_tensor_out_t *const *)b)->name);
}

/* The tensors in name order (the order of the data section) into order[] (n entries); -1 on a
 * duplicate name. */
static int mf_order(const model_file_tensor_out_t *tensors, size_t n,
                    const model_file_tensor_out_t **order, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        order[i] = &tensors[i];
    if (n > 0)
        qsort(order, n, sizeof *order, mf_cmp_name);
    for (size_t i = 1; i < n; i++)
        if (strcmp(order[i]->name, order[i - 1]->name) == 0) {
            errbuf_printf(err, errlen, "tensor %s is given twice", order[i]->name);
            return -1;
        }
    return 0;
}

int model_file_tensors_sha256(const model_file_tensor_out_t *tensors, size_t n_tensors,
                              char hex[65], char *err, size_t errlen)
{
    const model_file_tensor_out_t **order = malloc((n_tensors ? n_tensors : 1) * sizeof *order);
    uint8_t digest[32];
    sha256_t s;

    if (!order) {
        errbuf_printf(err, errlen, "out of memory");
        return -1;
    }
    if (mf_order(tensors, n_tensors, order, err, errlen) != 0) {
        free(order);
        return -1;
    }
    sha256_init(&s);
    for (size_t i = 0; i < n_tensors; i++)
        sha256_update(&s, order[i]->data, (size_t)mf_tensor_bytes(order[i]));
    sha256_final(&s, digest);
    sha256_hex(digest, hex);
    free(order);
    return 0;
}

static int mf_write_full(int fd, const void *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p = (const char *)p + w;
        n -= (size_t)w;
    }
    return 0;
}

int model_file_write(const char *path, const char *const *meta_keys, const char *const *meta_values,
                     size_t n_meta, const model_file_tensor_out_t *tensors, size_t n_tensors,
                     char *sha256_hex_out, char *err, size_t errlen)
{
    const model_file_tensor_out_t **order = NULL;
    json_buf_t h = {0}; /* the header; on out of memory it stays failed */
    char hex[65], created[32], *tmp = NULL;
    uint64_t at = 0;
    uint8_t lenbuf[8];
    time_t now = time(NULL);
    struct tm tm;
    int fd = -1, rc = -1;

    for (size_t i = 0; i < n_meta; i++)
        if (strcmp(meta_keys[i], "vigil.format") == 0 ||
            strcmp(meta_keys[i], "vigil.sha256") == 0 ||
            strcmp(meta_keys[i], "vigil.created") == 0) {
            errbuf_printf(err, errlen, "%s: metadata key %s is written by model_file_write itself",
                          path, meta_keys[i]);
            return -1;
        }
    order = malloc((n_tensors ? n_tensors : 1) * sizeof *order);
    if (!order) {
        errbuf_printf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (mf_order(tensors, n_tensors, order, err, errlen) != 0 ||
        model_file_tensors_sha256(tensors, n_tensors, hex, err, errlen) != 0)
        goto out;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);

    json_buf_puts(&h, "{\"__metadata__\":{\"vigil.format\":\"1\",\"vigil.sha256\":\"");
    json_buf_puts(&h, hex);
    json_buf_puts(&h, "\",\"vigil.created\":\"");
    json_buf_puts(&h, created);
    json_buf_puts(&h, "\"");
    for (size_t i = 0; i < n_meta; i++) {
        json_buf_puts(&h, ",");
        json_buf_string(&h, meta_keys[i]);
        json_buf_puts(&h, ":");
        json_buf_string(&h, meta_values[i]);
    }
    json_buf_puts(&h, "}");
    for (size_t k = 0; k < n_tensors; k++) {
        const model_file_tensor_out_t *t = order[k];
        uint64_t bytes = mf_tensor_bytes(t);
        json_buf_puts(&h, ",");
        json_buf_string(&h, t->name);
        json_buf_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++)
            json_buf_printf(&h, "%s%" PRId64, d ? "," : "", t->shape[d]);
        json_buf_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", at, at + bytes);
        at += bytes;
    }
    json_buf_puts(&h, "}");
    while (!h.failed && (8 + h.len) % 64 != 0) /* spaces, so the tensors start 64-aligned */
        json_buf_puts(&h, " ");
    if (h.failed) {
        errbuf_printf(err, errlen, "%s: out of memory building the header", path);
        goto out;
    }

    tmp = malloc(strlen(path) + 5);
    if (!tmp) {
        errbuf_printf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    sprintf(tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        errbuf_printf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    if (mf_write_full(fd, lenbuf, 8) != 0 || mf_write_full(fd, h.p, h.len) != 0)
        goto write_err;
    for (size_t k = 0; k < n_tensors; k++)
        if (mf_write_full(fd, order[k]->data, (size_t)mf_tensor_bytes(order[k])) != 0)
            goto write_err;
    if (fsync(fd) != 0)
        goto write_err;
    if (close(fd) != 0) {
        fd = -1;
        goto write_err;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        errbuf_printf(err, errlen, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (sha256_hex_out)
        memcpy(sha256_hex_out, hex, 65);
    rc = 0;
    goto out;

write_err:
    errbuf_printf(err, errlen, "%s: write failed: %s", tmp, strerror(errno));
    if (fd >= 0)
        close(fd);
    fd = -1;
    unlink(tmp);
out:
    free(tmp);
    json_buf_free(&h);
    free(order);
    return rc;
}
