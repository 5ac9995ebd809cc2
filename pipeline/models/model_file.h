/* Model files: safetensors (an 8-byte little-endian header length, a JSON header, then the
 * tensor bytes) read strictly, and written with vigil's metadata.
 *
 * Reading checks the structure of any safetensors file: the header is well-formed JSON, every
 * tensor has a known dtype, a shape and offsets that agree with it, and the tensors cover the data
 * section exactly, without holes, overlaps or trailing bytes (so a truncated file is always
 * refused). What a particular model needs (which names, shapes, dtypes, metadata) is checked by
 * its loader through model_file_f32 and model_file_meta_*; a vigil model file also carries the
 * sha256 of its data section in its metadata, which model_file_verify checks.
 *
 * vigil's metadata keys (all values are strings, as safetensors requires):
 *   vigil.format    "1"
 *   vigil.arch      the model kind: "risk_mlp", "news_heads"
 *   vigil.version   what every result row records as model_version
 *   vigil.sha256    sha256 of the data section, lower-case hex
 *   vigil.created   UTC time of writing, ISO 8601
 * plus the keys of each kind (pipeline/models/model_risk.h, pipeline/models/model_news.h). */
#ifndef VIGIL_MODEL_FILE_H
#define VIGIL_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#define MODEL_FILE_NDIM_MAX 8
/* Refused above this: a header is names and numbers, never this large. */
#define MODEL_FILE_HEADER_MAX ((size_t)100 * 1000 * 1000)

typedef enum model_dtype {
    MODEL_DTYPE_F32,
    MODEL_DTYPE_F16,
    MODEL_DTYPE_BF16,
    MODEL_DTYPE_F64,
    MODEL_DTYPE_I64,
    MODEL_DTYPE_I32,
    MODEL_DTYPE_I16,
    MODEL_DTYPE_I8,
    MODEL_DTYPE_U8,
    MODEL_DTYPE_BOOL
} model_dtype_t;

typedef struct model_tensor {
    char *name;
    model_dtype_t dtype;
    int ndim;
    int64_t shape[MODEL_FILE_NDIM_MAX];
    uint64_t begin, end; /* byte offsets into the data section */
    int used;            /* taken by model_file_f32 */
} model_tensor_t;

typedef struct model_file {
    char *path;
    char **meta_keys, **meta_values; /* (n_meta) the header's __metadata__ */
    size_t n_meta;
    model_tensor_t *tensors; /* (n_tensors) in header order */
    size_t n_tensors;
    uint8_t *data; /* (data_len) the data section, 64-byte aligned */
    size_t data_len;
} model_file_t;

/* Reads and checks the structure of the safetensors file at path. Returns NULL with err naming
 * the file and the problem (truncated, bad header, bad dtype/shape/offsets). */
model_file_t *model_file_read(const char *path, char *err, size_t errlen);
void model_file_free(model_file_t *mf);

/* The metadata value of key, or NULL when absent. */
const char *model_file_meta(const model_file_t *mf, const char *key);
/* The same, required: NULL with err ("<file>: metadata key <key> is missing") when absent. */
const char *model_file_meta_need(const model_file_t *mf, const char *key, char *err, size_t errlen);

/* The F32 tensor name, which must have exactly the ndim dimensions shape. Returns its data
 * (aligned, owned by mf) and marks it used, or NULL with err naming the tensor and what differs
 * (missing, dtype, shape). */
const float *model_file_f32(model_file_t *mf, const char *name, int ndim, const int64_t *shape,
                            char *err, size_t errlen);

/* A vigil model file's own checks: vigil.format is "1" and the data section's sha256 equals
 * vigil.sha256. Returns 0, or -1 with err. */
int model_file_verify(const model_file_t *mf, char *err, size_t errlen);
/* After a loader took every tensor it needs: -1 with err when the file holds one it did not take
 * (a file for another shape of model). */
int model_file_check_all_used(const model_file_t *mf, char *err, size_t errlen);

/* ---- writing ---- */

typedef struct model_file_tensor_out {
    const char *name;
    const float *data; /* F32, shape's product of elements */
    int ndim;
    int64_t shape[MODEL_FILE_NDIM_MAX];
} model_file_tensor_out_t;

/* Writes a vigil model file: meta (n_meta key/value pairs; vigil.format, vigil.sha256 and
 * vigil.created are added here and must not be given) and the tensors, sorted by name. Writes
 * path.tmp, fsyncs it and renames it over path, so a reader never sees half a file. When
 * sha256_hex_out is not NULL it receives the data's sha256 (65 bytes). Returns 0, or -1 with
 * err. */
int model_file_write(const char *path, const char *const *meta_keys, const char *const *meta_values,
                     size_t n_meta, const model_file_tensor_out_t *tensors, size_t n_tensors,
                     char *sha256_hex_out, char *err, size_t errlen);

/* The sha256 of the tensors' bytes as model_file_write would lay them out (name order), without
 * writing: lets a trainer name a version after its weights before writing the file. */
int model_file_tensors_sha256(const model_file_tensor_out_t *tensors, size_t n_tensors,
                              char hex[65], char *err, size_t errlen);

#endif
