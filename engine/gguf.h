/* gguf: read-only GGUF (v2/v3, little-endian) model files, memory-mapped.
 *
 * gguf_open maps the file read-only and parses the header, every metadata
 * key/value and every tensor info up front, validating everything against the
 * file size: magic, version, string and array lengths, counts, value types,
 * general.alignment, tensor types, dimensions, offsets, and every size
 * computation for overflow. A malformed file yields a negative code and a
 * message naming the file, the byte offset and the problem; it never crashes.
 *
 * Nothing is copied out of the mapping except keys and tensor names (which are
 * NUL-terminated copies): string values, arrays and tensor data are returned as
 * borrowed pointers into the mapping, valid until gguf_close. Data pointers may
 * be unaligned for their element type; read through memcpy or byte loads.
 *
 * Layout and rules follow ggml's gguf.cpp reader, with one leniency: tensor data
 * need only be aligned and in bounds, not packed in info order.
 *
 * Errors: 0 or a negative code (eng_err.h: ENG_E*, or a negative errno from
 * open/fstat/mmap/malloc). Thread-safety: a gguf_file_t is immutable after
 * gguf_open returns; any number of threads may read it concurrently.
 */
#ifndef CVLLM_GGUF_H
#define CVLLM_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GGUF_MAGIC 0x46554747u /* "GGUF" read as a little-endian u32 */
#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME 64       /* tensor names are shorter than this (ggml GGML_MAX_NAME) */
#define GGUF_MAX_KEY 65535     /* longest accepted metadata key */

/* Metadata value types, as stored on disk. */
typedef enum {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT_ = 13,
} gguf_type_t;

/* "uint8", ..., "array". Borrowed; static storage. "?" for an invalid type. */
const char *gguf_type_name(gguf_type_t t);

typedef struct gguf_file gguf_file_t;

/* One tensor. Borrowed from its file; valid until gguf_close. */
typedef struct {
    char name[GGUF_MAX_NAME]; /* NUL-terminated */
    int type;                 /* ggml type id (k_ops.h k_type_t), known to k_type_block */
    uint32_t n_dims;          /* 0..GGUF_MAX_DIMS */
    int64_t ne[GGUF_MAX_DIMS]; /* ne[0] = row length (fastest varying); unused dims are 1 */
    int64_t n_elements;       /* product of ne */
    uint64_t offset;          /* relative to the data section; a multiple of the alignment */
    size_t nbytes;            /* bytes of data */
    size_t row_bytes;         /* bytes of one row of ne[0] elements */
    const void *data;         /* into the mapping; data + nbytes <= end of file */
} gguf_tensor_t;

/* --- open / close ----------------------------------------------------------- */

/* Maps and parses the GGUF file at `path`. On success returns 0 and sets *out
 * (caller owns it; release with gguf_close). On failure returns a negative code,
 * leaves *out NULL and, if err_len > 0, writes a NUL-terminated message naming
 * `path` into err (truncated to err_len). */
int gguf_open(const char *path, gguf_file_t **out, char *err, size_t err_len);

/* Same as gguf_open, but parses `len` bytes at `buf` (not copied: `buf` must
 * outlive the returned file). `label` names the buffer in messages. Used by
 * tests and by callers that already hold the bytes. */
int gguf_open_memory(const void *buf, size_t len, const char *label, gguf_file_t **out, char *err,
                     size_t err_len);

/* Unmaps (if mapped) and frees everything; sets *f to NULL. NULL-safe. Every
 * pointer borrowed from the file becomes invalid. */
void gguf_close(gguf_file_t **f);

/* --- file properties -------------------------------------------------------- */

const char *gguf_path(const gguf_file_t *f); /* path or label; borrowed */
uint32_t gguf_version(const gguf_file_t *f);
uint32_t gguf_alignment(const gguf_file_t *f);    /* general.alignment or 32 */
uint64_t gguf_data_offset(const gguf_file_t *f);  /* start of tensor data in the file */
size_t gguf_file_size(const gguf_file_t *f);

/* --- metadata by index ------------------------------------------------------- */

int64_t gguf_kv_count(const gguf_file_t *f);

/* Index of `key`, or -1 if absent. O(1) average. */
int64_t gguf_find_key(const gguf_file_t *f, const char *key);

/* Key of entry i (0 <= i < gguf_kv_count), NUL-terminated. Borrowed; valid until
 * gguf_close. Returns NULL for an out-of-range index. */
const char *gguf_kv_key(const gguf_file_t *f, int64_t i);

/* Value type of entry i; GGUF_TYPE_COUNT_ for an out-of-range index. */
gguf_type_t gguf_kv_type(const gguf_file_t *f, int64_t i);

/* For an ARRAY entry: element type and count. Returns 0, ENG_EWRONGTYPE if the
 * entry is not an array, -EINVAL for a bad index. */
int gguf_kv_arr(const gguf_file_t *f, int64_t i, gguf_type_t *elem_type, uint64_t *count);

/* Raw little-endian elements of a fixed-width ARRAY entry (any type but STRING).
 * Borrowed pointer into the mapping, possibly unaligned. Returns 0,
 * ENG_EWRONGTYPE or -EINVAL. */
int gguf_kv_arr_data(const gguf_file_t *f, int64_t i, const void **data);

/* Element `idx` of a STRING array: sets *s (not NUL-terminated; may contain any
 * bytes) and *len. Borrowed; no copy. Returns 0, ENG_EWRONGTYPE, or -EINVAL
 * (bad index). O(1). */
int gguf_kv_arr_str(const gguf_file_t *f, int64_t i, uint64_t idx, const char **s, size_t *len);

/* Element `idx` of an integer array (any integer or bool element type), widened.
 * Returns 0, ENG_EWRONGTYPE, ENG_ERANGE (a uint64 above INT64_MAX) or -EINVAL. */
int gguf_kv_arr_i64(const gguf_file_t *f, int64_t i, uint64_t idx, int64_t *out);

/* Element `idx` of a FLOAT32 or FLOAT64 array, as float. Returns 0,
 * ENG_EWRONGTYPE or -EINVAL. */
int gguf_kv_arr_f32(const gguf_file_t *f, int64_t i, uint64_t idx, float *out);

/* --- metadata by key ----------------------------------------------------------- */
/* Each returns 0 and sets *out, ENG_ENOTFOUND if the key is absent,
 * ENG_EWRONGTYPE if the stored type cannot represent the request, or ENG_ERANGE
 * if an integer does not fit. Integer getters accept every integer type (files
 * disagree on widths, see model-formats.md §1.2); float getters accept FLOAT32
 * and FLOAT64. *out is untouched on error. */

/* STRING value: *s points into the mapping, not NUL-terminated. Borrowed. */
int gguf_get_str(const gguf_file_t *f, const char *key, const char **s, size_t *len);
int gguf_get_u32(const gguf_file_t *f, const char *key, uint32_t *out);
int gguf_get_i32(const gguf_file_t *f, const char *key, int32_t *out);
int gguf_get_u64(const gguf_file_t *f, const char *key, uint64_t *out);
int gguf_get_i64(const gguf_file_t *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file_t *f, const char *key, float *out);
int gguf_get_f64(const gguf_file_t *f, const char *key, double *out);
int gguf_get_bool(const gguf_file_t *f, const char *key, bool *out);

/* ARRAY value: sets *kv_id (for the gguf_kv_arr_* element accessors), *elem_type
 * and *count; any output may be NULL. */
int gguf_get_arr(const gguf_file_t *f, const char *key, int64_t *kv_id, gguf_type_t *elem_type,
                 uint64_t *count);

/* --- tensors ------------------------------------------------------------------- */

int64_t gguf_tensor_count(const gguf_file_t *f);

/* Tensor i in file order. Borrowed; NULL for an out-of-range index. */
const gguf_tensor_t *gguf_tensor(const gguf_file_t *f, int64_t i);

/* Tensor by name. Borrowed; NULL if absent. O(1) average. */
const gguf_tensor_t *gguf_find_tensor(const gguf_file_t *f, const char *name);

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_GGUF_H */
