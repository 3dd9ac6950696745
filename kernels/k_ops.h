/* kernels: compute primitives with a plain-C ABI (raw pointers, int64_t
 * element counts). This header is the whole public surface of the library;
 * CPU implementations live in kernels/cpu/<op>.c.
 *
 * Tensor element types use the ggml numbering (GGUF stores these ids on disk),
 * so a type id read from a file can be passed through unchanged. The table of
 * block sizes covers every type a GGUF may legally contain, including those we
 * cannot dequantize yet: a loader can size and bounds-check any tensor, and only
 * k_dequant_row refuses the types it does not implement.
 *
 * Errors: functions returning int return 0 or a negative errno value.
 * Thread-safety: every function is pure (no global state) and thread-safe.
 */
#ifndef CVLLM_K_OPS_H
#define CVLLM_K_OPS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- element types ---------------------------------------------------------- */

/* ggml_type ids. Ids 4, 5, 31-33 and 36-38 are retired upstream and unknown here. */
typedef enum {
    K_TYPE_F32 = 0,
    K_TYPE_F16 = 1,
    K_TYPE_Q4_0 = 2,
    K_TYPE_Q4_1 = 3,
    K_TYPE_Q5_0 = 6,
    K_TYPE_Q5_1 = 7,
    K_TYPE_Q8_0 = 8,
    K_TYPE_Q8_1 = 9,
    K_TYPE_Q2_K = 10,
    K_TYPE_Q3_K = 11,
    K_TYPE_Q4_K = 12,
    K_TYPE_Q5_K = 13,
    K_TYPE_Q6_K = 14,
    K_TYPE_Q8_K = 15,
    K_TYPE_IQ2_XXS = 16,
    K_TYPE_IQ2_XS = 17,
    K_TYPE_IQ3_XXS = 18,
    K_TYPE_IQ1_S = 19,
    K_TYPE_IQ4_NL = 20,
    K_TYPE_IQ3_S = 21,
    K_TYPE_IQ2_S = 22,
    K_TYPE_IQ4_XS = 23,
    K_TYPE_I8 = 24,
    K_TYPE_I16 = 25,
    K_TYPE_I32 = 26,
    K_TYPE_I64 = 27,
    K_TYPE_F64 = 28,
    K_TYPE_IQ1_M = 29,
    K_TYPE_BF16 = 30,
    K_TYPE_TQ1_0 = 34,
    K_TYPE_TQ2_0 = 35,
    K_TYPE_MXFP4 = 39,
    K_TYPE_COUNT_ = 40, /* one past the largest id known here */
} k_type_t;

/* Block geometry of a type: `*block_elems` elements are stored in `*block_bytes`
 * bytes, and a row's length must be a multiple of `*block_elems`.
 * Returns 0, or -EINVAL for an id that is unknown or retired (outputs untouched). */
int k_type_block(int type, int64_t *block_elems, size_t *block_bytes);

/* "F32", "Q4_K", ... Borrowed; static storage. Returns NULL for an unknown id. */
const char *k_type_name(int type);

/* Nonzero if k_dequant_row implements `type`. */
int k_type_can_dequant(int type);

/* Bytes used by `n` elements of `type` (one row or a whole tensor).
 * Returns 0 and sets *out, -EINVAL if the type is unknown or n < 0 or n is not a
 * multiple of the block size, -EOVERFLOW if the size does not fit in size_t. */
int k_type_row_bytes(int type, int64_t n, size_t *out);

/* --- scalar conversions ----------------------------------------------------- */

/* IEEE binary16 bit pattern to float, exact (subnormals, inf and NaN included). */
float k_fp16_to_fp32(uint16_t h);

/* bfloat16 bit pattern to float: the pattern is the upper half of the float. */
float k_bf16_to_fp32(uint16_t h);

/* --- dequantization --------------------------------------------------------- */

/* Converts `n` consecutive elements of `type` at `src` to float32 at `dst`,
 * following ggml's dequantize_row_* formulas bit for bit (same operation order).
 * Implemented: F32, F16, BF16, Q4_0, Q4_1, Q8_0, Q4_K, Q6_K.
 * `src` may have any alignment (blocks in a mapped file start at even offsets;
 * F32 rows in a safetensors buffer may start anywhere); `dst` holds n floats
 * and must not overlap `src`. `n` must be a multiple of the block size.
 * Returns 0, -EINVAL (n < 0, n not a multiple of the block size, NULL pointer
 * with n > 0) or -ENOTSUP (type not implemented or unknown). */
int k_dequant_row(int type, const void *src, float *dst, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_K_OPS_H */
