/* safetensors: read-only safetensors model weights, single file or sharded,
 * memory-mapped.
 *
 * st_open accepts a `.safetensors` file, a `model.safetensors.index.json`
 * (every distinct shard named in its weight_map is opened), or a directory
 * holding either (the index is preferred). Each file's header is validated
 * completely against the file size: header length, JSON syntax, dtype names,
 * shapes, `data_offsets` (integers, in order, END-BEGIN == numel * dtype size),
 * full coverage of the byte buffer with no holes or overlaps, duplicate names
 * within and across shards, and that each tensor sits in the shard the index
 * says. Any violation yields a negative code and a message naming the file.
 *
 * Tensor data is borrowed from the mapping (no copy), row-major, little-endian,
 * possibly unaligned for its dtype. Thread-safety: immutable after st_open.
 * Errors: 0 or a negative code (eng_err.h ENG_E*, or a negative errno).
 */
#ifndef CVLLM_SAFETENSORS_H
#define CVLLM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER 100000000u /* the reference reader's limit on the JSON header */

typedef enum {
    ST_DTYPE_BOOL = 0,
    ST_DTYPE_U8,
    ST_DTYPE_I8,
    ST_DTYPE_F8_E5M2,
    ST_DTYPE_F8_E4M3,
    ST_DTYPE_I16,
    ST_DTYPE_U16,
    ST_DTYPE_F16,
    ST_DTYPE_BF16,
    ST_DTYPE_I32,
    ST_DTYPE_U32,
    ST_DTYPE_F32,
    ST_DTYPE_F64,
    ST_DTYPE_I64,
    ST_DTYPE_U64,
    ST_DTYPE_COUNT_,
} st_dtype_t;

/* "F32", "BF16", ... Borrowed; static storage. "?" for an invalid value. */
const char *st_dtype_name(st_dtype_t d);

/* Bytes per element; 0 for an invalid value. */
size_t st_dtype_size(st_dtype_t d);

/* The ggml type id (k_ops.h) of a float dtype that k_dequant_row converts:
 * F32, F16, BF16. Returns -1 for the other dtypes. */
int st_dtype_k_type(st_dtype_t d);

typedef struct st_model st_model_t;

/* One tensor. Borrowed from its model; valid until st_close. */
typedef struct {
    const char *name;          /* NUL-terminated */
    st_dtype_t dtype;
    int n_dims;                /* 0 (scalar) .. ST_MAX_DIMS */
    int64_t shape[ST_MAX_DIMS]; /* row-major: shape[n_dims-1] varies fastest */
    int64_t n_elements;
    size_t nbytes;
    const void *data;          /* into the mapping of shard `file` */
    int file;                  /* index of the shard holding it (0 for a single file) */
} st_tensor_t;

/* Opens `path` (file, index JSON or directory, see above). Returns 0 and sets
 * *out (caller owns it; release with st_close), or a negative code with *out
 * NULL and a NUL-terminated message in err (if err_len > 0). */
int st_open(const char *path, st_model_t **out, char *err, size_t err_len);

/* Unmaps every shard and frees everything; sets *m to NULL. NULL-safe. */
void st_close(st_model_t **m);

/* Number of shard files (1 for a single file). */
int st_file_count(const st_model_t *m);

/* Path of shard i. Borrowed; NULL for a bad index. */
const char *st_file_path(const st_model_t *m, int i);

/* Directory holding the weights (where config.json is looked for). Borrowed. */
const char *st_dir(const st_model_t *m);

int64_t st_tensor_count(const st_model_t *m);

/* Tensor i, sorted by name. Borrowed; NULL for an out-of-range index. */
const st_tensor_t *st_tensor(const st_model_t *m, int64_t i);

/* Tensor by name. Borrowed; NULL if absent. O(log n). */
const st_tensor_t *st_find_tensor(const st_model_t *m, const char *name);

/* Value of `key` in a shard's "__metadata__" object (string to string).
 * Borrowed; NULL if absent. Looks in shard 0 only. */
const char *st_metadata(const st_model_t *m, const char *key);

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_SAFETENSORS_H */
