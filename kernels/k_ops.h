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
 * Compute: a persistent thread pool (k_pool_*), batched weight x activation
 * products for F32/F16/BF16/Q8_0/Q4_x/Q5_x/Q4_K/Q5_K/Q6_K weights (k_matmul*),
 * and row ops (RMSNorm, RoPE, SwiGLU, softmax). AVX2+FMA+F16C code paths are
 * chosen at run time; a portable C path runs everywhere else. See
 * docs/model-runner.md.
 *
 * Errors: functions returning int return 0 or a negative errno value.
 * Thread-safety: functions without a pool argument are pure and thread-safe
 * (the only global is the CPU feature level, detected once); a k_pool_t is
 * driven by one thread at a time.
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
 * Implemented: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K.
 * `src` may have any alignment (blocks in a mapped file start at even offsets;
 * F32 rows in a safetensors buffer may start anywhere); `dst` holds n floats
 * and must not overlap `src`. `n` must be a multiple of the block size.
 * Returns 0, -EINVAL (n < 0, n not a multiple of the block size, NULL pointer
 * with n > 0) or -ENOTSUP (type not implemented or unknown). */
int k_dequant_row(int type, const void *src, float *dst, int64_t n);


/* --- CPU features and the thread pool ------------------------------------------ */

/* SIMD levels the CPU kernels can use. */
typedef enum {
    K_SIMD_PORTABLE = 0, /* plain C, any CPU */
    K_SIMD_AVX2 = 1,     /* x86-64 AVX2 + FMA + F16C */
} k_simd_t;

/* Best level this CPU supports (detected once with __builtin_cpu_supports;
 * K_SIMD_PORTABLE on non-x86 builds). Thread-safe. */
k_simd_t k_cpu_simd(void);

/* Number of online CPUs (>= 1). */
int k_cpu_count(void);

/* A small persistent pool of worker threads. Created once; each k_pool_run
 * splits the job into nth chunks (4 per thread; 1 for a one-thread pool),
 * wakes the workers (spin briefly, then sleep on a condition variable) and
 * runs fn(arg, ith, nth) once for every chunk ith = 0..nth-1, on whichever
 * thread claims it first (the calling thread takes part), returning when all
 * chunks are done. Chunks of one run may execute concurrently, so per-chunk
 * scratch must be indexed by ith (see k_pool_max_chunks). No thread is
 * created or memory allocated per run. A pool is driven by one thread at a
 * time (not re-entrant). */
typedef struct k_pool k_pool_t;
typedef void (*k_pool_fn)(void *arg, int ith, int nth);

/* Creates a pool of `n_threads` (<= 0: k_cpu_count()) threads, the caller
 * included, at SIMD level k_cpu_simd(). Returns NULL on allocation or thread
 * creation failure. Caller owns the result; free with k_pool_destroy. */
k_pool_t *k_pool_new(int n_threads);

/* Stops and joins the workers, frees the pool, sets *pp to NULL. NULL-safe. */
void k_pool_destroy(k_pool_t **pp);

int k_pool_threads(const k_pool_t *p);

/* The nth passed to fn by k_pool_run (chunks per run); 1 for p == NULL. */
int k_pool_max_chunks(const k_pool_t *p);

/* SIMD level the pool's kernels use; k_pool_set_simd clamps to k_cpu_simd()
 * (tests force K_SIMD_PORTABLE to compare paths) and returns the level set. */
k_simd_t k_pool_simd(const k_pool_t *p);
k_simd_t k_pool_set_simd(k_pool_t *p, k_simd_t s);

/* Runs fn on every pool thread (see above). p == NULL runs fn(arg, 0, 1). */
void k_pool_run(k_pool_t *p, k_pool_fn fn, void *arg);

/* Splits n items into nth near-equal contiguous ranges; range ith is
 * [*lo, *hi). */
void k_split(int64_t n, int ith, int nth, int64_t *lo, int64_t *hi);

/* --- weight x activation products ----------------------------------------------- */

/* Nonzero if k_matmul accepts weights of `type`: F32, F16, BF16, Q8_0, Q4_0,
 * Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K. */
int k_matmul_supports(int type);

/* Batched matrix product y[t] = W x[t] for t = 0..n_tok-1.
 *   w:   (n_out, n_in) weights of `type`, row r at w + r * w_row_bytes (any
 *        alignment; w_row_bytes is at least the packed row size)
 *   x:   (n_tok, n_in) float activations, row-major, contiguous
 *   y:   (n_tok, n_out) float outputs, row t at y + t * ldy (ldy >= n_out)
 * Each weight block is dequantized once per tile of up to 8 tokens and applied
 * to all of them. Rows are split across the pool's threads (pool may be NULL:
 * single-threaded, best SIMD level). Results do not depend on the number of
 * threads: each output is computed by one thread in a fixed order. y must not
 * overlap w or x. Returns 0, -EINVAL (bad sizes, n_in not a multiple of the
 * block size) or -ENOTSUP (type). */
int k_matmul(k_pool_t *pool, int type, const void *w, size_t w_row_bytes, int64_t n_out, int64_t n_in,
             const float *x, int64_t n_tok, float *y, int64_t ldy);

/* Faster, approximate variant for Q4_0, Q4_1 and Q8_0 weights: the
 * activations are first quantized to 8 bits per block of 32 (scale
 * amax/127, round to nearest) into `scratch`, and the AVX2 path uses integer
 * dot products (like llama.cpp's Q8 activations; about 1e-3..1e-2 relative
 * difference from k_matmul). Other types, n_in not a multiple of 32, or a CPU
 * or pool without AVX2 fall back to the exact k_matmul. `scratch` must hold
 * k_matmul_q8_scratch(n_tok, n_in) bytes (8-byte aligned); it is written by the
 * calling thread. Same thread-count invariance and errors as k_matmul, plus
 * -EINVAL when scratch is too small. */
size_t k_matmul_q8_scratch(int64_t n_tok, int64_t n_in);
int k_matmul_q8(k_pool_t *pool, int type, const void *w, size_t w_row_bytes, int64_t n_out, int64_t n_in,
                const float *x, int64_t n_tok, float *y, int64_t ldy, void *scratch, size_t scratch_bytes);

/* Several products sharing one input: y_i[t] = W_i x[t] for up to 4 outputs
 * (e.g. Q, K and V, or gate and up), in one pool run whose chunks cover the
 * rows of all outputs, so threads synchronise once. With scratch != NULL the
 * Q4_0/Q4_1/Q8_0 outputs use 8-bit activations as k_matmul_q8 does (x is
 * quantized once for all of them); scratch == NULL gives k_matmul's exact
 * products. Each output is computed exactly as k_matmul/k_matmul_q8 would.
 * Returns 0, -EINVAL, -ENOTSUP. */
typedef struct {
    int type;
    const void *w;      /* (n_out, n_in) */
    size_t w_row_bytes;
    int64_t n_out;
    float *y;           /* (n_tok, ldy) */
    int64_t ldy;
} k_matmul_out_t;
int k_matmul_multi(k_pool_t *pool, const k_matmul_out_t *outs, int n_outs, int64_t n_in, const float *x,
                   int64_t n_tok, void *scratch, size_t scratch_bytes);

/* --- elementwise and row ops (single-threaded, portable or auto SIMD) ------------- */

/* y = x * rsqrt(mean(x^2) + eps) * w, one row of n (sum of squares in double).
 * y may equal x. */
void k_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps);

/* Per-pair rotation frequencies inv_freq[i] = base^(-2i/head_dim), i < head_dim/2,
 * then scaled: `linear` divides every frequency by `factor`; `llama3` divides
 * frequency i by the Llama-3.1 factor (model-formats.md 1.8) computed from
 * factor, low/high_freq_factor and orig_ctx; `freq_factors` (may be NULL; the
 * GGUF rope_freqs.weight tensor) divides frequency i by freq_factors[i] and
 * overrides llama3. */
typedef enum {
    K_ROPE_SCALE_NONE = 0,
    K_ROPE_SCALE_LINEAR = 1,
    K_ROPE_SCALE_LLAMA3 = 2,
} k_rope_scale_t;
void k_rope_inv_freq(double *inv_freq, int64_t head_dim, double base, k_rope_scale_t scale, double factor,
                     double low_freq_factor, double high_freq_factor, double orig_ctx,
                     const float *freq_factors);

/* cos/sin of pos * inv_freq[i] for i < n_pairs (angles computed in double). */
void k_rope_sincos(int64_t pos, const double *inv_freq, int64_t n_pairs, float *cos_out, float *sin_out);

/* Rotates n_heads heads of head_dim floats (contiguous) in place.
 * neox = 0: adjacent pairs (x[2i], x[2i+1]) (GGUF llama);
 * neox = 1: half-split pairs (x[i], x[i + head_dim/2]) (HF llama, qwen2). */
void k_rope(float *x, int64_t n_heads, int64_t head_dim, const float *cos_t, const float *sin_t, int neox);

/* g[i] = silu(g[i]) * u[i] = g / (1 + exp(-g)) * u. */
void k_swiglu(float *g, const float *u, int64_t n);

/* In-place softmax of n values (max-subtracted; n >= 1). */
void k_softmax(float *x, int64_t n);

/* Dot product of two float vectors (auto SIMD; 8-lane partial sums). */
float k_dot_f32(const float *a, const float *b, int64_t n);

/* y[i] += a * x[i]. */
void k_axpy_f32(float *y, float a, const float *x, int64_t n);

/* y[i] += x[i]. */
void k_add_f32(float *y, const float *x, int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_K_OPS_H */
