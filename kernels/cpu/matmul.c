/* CPU weight x activation products: y[t] = W x[t] for a batch of tokens.
 *
 * Work split: output rows are divided into one contiguous range per pool
 * thread; every output element is computed by exactly one thread with a fixed
 * summation order, so results are identical for any thread count.
 *
 * Reuse: tokens are processed in tiles of up to 8. For each weight row and
 * token tile, each block of 32 weights is dequantized once (into registers on
 * the AVX2 path, into a small stack buffer on the portable path) and applied to
 * all tokens of the tile. Tokens are additionally grouped in panels of 32 so
 * that a panel's activations stay in cache while the thread sweeps its rows.
 *
 * Two paths: AVX2+FMA+F16C (runtime-selected via the pool's SIMD level,
 * compiled with target attributes so the file builds for any x86-64 or other
 * CPU) and portable C (k_dequant_row + scalar dot). Dequantized weight values
 * are bit-identical on both paths (same operations as dequant.c: q*d then + m,
 * never fused); only the summation order of the dot products differs.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "k_ops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

#define TOK_TILE 8
#define TOK_PANEL 32

typedef struct {
    int type;
    const uint8_t *w;
    size_t rb; /* bytes between weight rows */
    int64_t n_out, n_in;
    const float *x;
    int64_t n_tok;
    float *y;
    int64_t ldy;
    int64_t blck;   /* elements per block */
    size_t bbytes;  /* bytes per block */
    k_simd_t simd;
} mm_args_t;

int k_matmul_supports(int type) {
    switch (type) {
    case K_TYPE_F32: case K_TYPE_F16: case K_TYPE_BF16: case K_TYPE_Q8_0:
    case K_TYPE_Q4_0: case K_TYPE_Q4_1: case K_TYPE_Q5_0: case K_TYPE_Q5_1:
    case K_TYPE_Q4_K: case K_TYPE_Q5_K: case K_TYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

/* --- portable path ------------------------------------------------------------------- */

static void rows_portable(const mm_args_t *a, int64_t r0, int64_t r1) {
    float buf[256];
    const int64_t chunk = a->blck == 1 ? 64 : a->blck; /* <= 256 */
    for (int64_t tb = 0; tb < a->n_tok; tb += TOK_PANEL) {
        const int64_t te = tb + TOK_PANEL < a->n_tok ? tb + TOK_PANEL : a->n_tok;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = a->w + (size_t)r * a->rb;
            for (int64_t t0 = tb; t0 < te; t0 += TOK_TILE) {
                const int nt = (int)(te - t0 < TOK_TILE ? te - t0 : TOK_TILE);
                float acc[TOK_TILE] = {0};
                for (int64_t c0 = 0; c0 < a->n_in; c0 += chunk) {
                    const int64_t len = a->n_in - c0 < chunk ? a->n_in - c0 : chunk;
                    k_dequant_row(a->type, row + (size_t)(c0 / a->blck) * a->bbytes, buf, len);
                    for (int j = 0; j < nt; j++) {
                        const float *xp = a->x + (t0 + j) * a->n_in + c0;
                        float s = 0.0f;
                        for (int64_t e = 0; e < len; e++) s += buf[e] * xp[e];
                        acc[j] += s;
                    }
                }
                for (int j = 0; j < nt; j++) a->y[(t0 + j) * a->ldy + r] = acc[j];
            }
        }
    }
}

/* --- AVX2 path ------------------------------------------------------------------------- */

#ifdef HAVE_X86
#define AVX2_FN __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline)) AVX2_FN
#define UNROLL _Pragma("GCC unroll 8")

AVX2_INLINE float h2f_avx(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

AVX2_INLINE __m256 u8x8_to_ps(__m128i v) {
    return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v));
}

/* Dequantizes the 32 weights of chunk c (elements 32c..32c+31) of `row` into
 * w[0..3]. For 256-element types the super-block is expanded into kbuf
 * (scalar dequantizer) when c enters it. */
AVX2_INLINE void load32(const int type, const uint8_t *row, int64_t c, float *kbuf, __m256 w[4]) {
    switch (type) {
    case K_TYPE_F32: {
        const float *p = (const float *)(const void *)(row + c * 128);
        UNROLL for (int k = 0; k < 4; k++) w[k] = _mm256_loadu_ps(p + 8 * k);
        break;
    }
    case K_TYPE_F16: {
        const uint8_t *p = row + c * 64;
        UNROLL for (int k = 0; k < 4; k++) w[k] = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k)));
        break;
    }
    case K_TYPE_BF16: {
        const uint8_t *p = row + c * 64;
        UNROLL for (int k = 0; k < 4; k++) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p + 16 * k)));
            w[k] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
        }
        break;
    }
    case K_TYPE_Q8_0: {
        const uint8_t *b = row + c * 34;
        const __m256 d = _mm256_set1_ps(h2f_avx(b));
        UNROLL for (int k = 0; k < 4; k++) {
            __m128i q = _mm_loadl_epi64((const __m128i *)(const void *)(b + 2 + 8 * k));
            w[k] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d);
        }
        break;
    }
    case K_TYPE_Q4_0:
    case K_TYPE_Q4_1: {
        const int q41 = type == K_TYPE_Q4_1;
        const uint8_t *b = row + c * (q41 ? 20 : 18);
        const __m256 d = _mm256_set1_ps(h2f_avx(b));
        const __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(b + (q41 ? 4 : 2)));
        const __m128i mask = _mm_set1_epi8(0x0F);
        const __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
        w[0] = u8x8_to_ps(lo);
        w[1] = u8x8_to_ps(_mm_srli_si128(lo, 8));
        w[2] = u8x8_to_ps(hi);
        w[3] = u8x8_to_ps(_mm_srli_si128(hi, 8));
        if (q41) {
            const __m256 m = _mm256_set1_ps(h2f_avx(b + 2));
            UNROLL for (int k = 0; k < 4; k++) w[k] = _mm256_add_ps(_mm256_mul_ps(w[k], d), m);
        } else {
            const __m256 eight = _mm256_set1_ps(8.0f);
            UNROLL for (int k = 0; k < 4; k++) w[k] = _mm256_mul_ps(_mm256_sub_ps(w[k], eight), d);
        }
        break;
    }
    case K_TYPE_Q5_0:
    case K_TYPE_Q5_1: { /* 32-element blocks, expanded by the scalar dequantizer */
        k_dequant_row(type, row + (size_t)c * (type == K_TYPE_Q5_0 ? 22 : 24), kbuf, 32);
        UNROLL for (int k = 0; k < 4; k++) w[k] = _mm256_loadu_ps(kbuf + 8 * k);
        break;
    }
    default: { /* Q4_K, Q5_K, Q6_K: 256-element super-blocks */
        const size_t sb = type == K_TYPE_Q4_K ? 144 : (type == K_TYPE_Q5_K ? 176 : 210);
        if ((c & 7) == 0) k_dequant_row(type, row + (size_t)(c >> 3) * sb, kbuf, 256);
        const float *p = kbuf + (c & 7) * 32;
        UNROLL for (int k = 0; k < 4; k++) w[k] = _mm256_loadu_ps(p + 8 * k);
        break;
    }
    }
}

AVX2_INLINE float hsum(__m256 v) {
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* One weight row x nt tokens. With few tokens, several accumulators per token
 * keep enough independent FMA chains in flight. */
AVX2_INLINE void tile_avx2(const mm_args_t *a, const int type, const uint8_t *row, int64_t r, int64_t t0,
                           const int nt, float *kbuf) {
    const int nacc = nt == 1 ? 4 : (nt <= 3 ? 2 : 1);
    __m256 acc[TOK_TILE][4];
    UNROLL for (int j = 0; j < nt; j++)
        UNROLL for (int k = 0; k < nacc; k++) acc[j][k] = _mm256_setzero_ps();
    const int64_t nc = a->n_in / 32;
    const float *x0 = a->x + t0 * a->n_in;
    for (int64_t c = 0; c < nc; c++) {
        __m256 w[4];
        load32(type, row, c, kbuf, w);
        UNROLL for (int j = 0; j < nt; j++) {
            const float *xp = x0 + j * a->n_in + c * 32;
            UNROLL for (int k = 0; k < 4; k++) acc[j][k % nacc] = _mm256_fmadd_ps(w[k], _mm256_loadu_ps(xp + 8 * k), acc[j][k % nacc]);
        }
    }
    UNROLL for (int j = 0; j < nt; j++) {
        __m256 s = acc[j][0];
        UNROLL for (int k = 1; k < nacc; k++) s = _mm256_add_ps(s, acc[j][k]);
        a->y[(t0 + j) * a->ldy + r] = hsum(s);
    }
}

AVX2_INLINE void rows_avx2_t(const mm_args_t *a, const int type, int64_t r0, int64_t r1) {
    float kbuf[256];
    for (int64_t tb = 0; tb < a->n_tok; tb += TOK_PANEL) {
        const int64_t te = tb + TOK_PANEL < a->n_tok ? tb + TOK_PANEL : a->n_tok;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = a->w + (size_t)r * a->rb;
            for (int64_t t0 = tb; t0 < te; t0 += TOK_TILE) {
                switch (te - t0 < TOK_TILE ? te - t0 : TOK_TILE) {
                case 1: tile_avx2(a, type, row, r, t0, 1, kbuf); break;
                case 2: tile_avx2(a, type, row, r, t0, 2, kbuf); break;
                case 3: tile_avx2(a, type, row, r, t0, 3, kbuf); break;
                case 4: tile_avx2(a, type, row, r, t0, 4, kbuf); break;
                case 5: tile_avx2(a, type, row, r, t0, 5, kbuf); break;
                case 6: tile_avx2(a, type, row, r, t0, 6, kbuf); break;
                case 7: tile_avx2(a, type, row, r, t0, 7, kbuf); break;
                default: tile_avx2(a, type, row, r, t0, 8, kbuf); break;
                }
            }
        }
    }
}

#define ROWS_AVX2(T)                                                                      \
    static AVX2_FN void rows_avx2_##T(const mm_args_t *a, int64_t r0, int64_t r1) {      \
        rows_avx2_t(a, K_TYPE_##T, r0, r1);                                               \
    }
ROWS_AVX2(F32)
ROWS_AVX2(F16)
ROWS_AVX2(BF16)
ROWS_AVX2(Q8_0)
ROWS_AVX2(Q4_0)
ROWS_AVX2(Q4_1)
ROWS_AVX2(Q5_0)
ROWS_AVX2(Q5_1)
ROWS_AVX2(Q4_K)
ROWS_AVX2(Q5_K)
ROWS_AVX2(Q6_K)

static void rows_avx2(const mm_args_t *a, int64_t r0, int64_t r1) {
    switch (a->type) {
    case K_TYPE_F32: rows_avx2_F32(a, r0, r1); break;
    case K_TYPE_F16: rows_avx2_F16(a, r0, r1); break;
    case K_TYPE_BF16: rows_avx2_BF16(a, r0, r1); break;
    case K_TYPE_Q8_0: rows_avx2_Q8_0(a, r0, r1); break;
    case K_TYPE_Q4_0: rows_avx2_Q4_0(a, r0, r1); break;
    case K_TYPE_Q4_1: rows_avx2_Q4_1(a, r0, r1); break;
    case K_TYPE_Q5_0: rows_avx2_Q5_0(a, r0, r1); break;
    case K_TYPE_Q5_1: rows_avx2_Q5_1(a, r0, r1); break;
    case K_TYPE_Q4_K: rows_avx2_Q4_K(a, r0, r1); break;
    case K_TYPE_Q5_K: rows_avx2_Q5_K(a, r0, r1); break;
    default: rows_avx2_Q6_K(a, r0, r1); break;
    }
}
#endif

/* --- 8-bit activation path ------------------------------------------------------------------ */

/* One quantized block of 32 activations: x[i] ~= d * q[i]; s = d * sum(q). */
typedef struct {
    float d, s;
    int8_t q[32];
} q8blk_t;

size_t k_matmul_q8_scratch(int64_t n_tok, int64_t n_in) {
    return n_tok <= 0 || n_in <= 0 ? 0 : (size_t)n_tok * (size_t)((n_in + 31) / 32) * sizeof(q8blk_t);
}

static void quantize_q8(const float *x, int64_t n, q8blk_t *out) {
    for (int64_t b = 0; b < n / 32; b++, x += 32) {
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; i++) {
            const int q = (int)lrintf(x[i] * id);
            out[b].q[i] = (int8_t)q;
            sum += q;
        }
        out[b].d = d;
        out[b].s = d * (float)sum;
    }
}

typedef struct {
    const mm_args_t *a;
    const q8blk_t *xq; /* (n_tok, n_in/32) */
} q8_args_t;

#ifdef HAVE_X86
/* Adds block b of `row` times the nt tokens' quantized activations to
 * acc/accm (integer dot, then one scaled FMA per block and token). */
AVX2_INLINE void q8_block(const int type, const uint8_t *row, int64_t b, const q8blk_t *xb0, int64_t nb, const int nt,
                          __m256 *acc, float *accm) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i wq;
    float dw, mw = 0.0f;
    if (type == K_TYPE_Q8_0) {
        const uint8_t *blk = row + b * 34;
        dw = h2f_avx(blk);
        wq = _mm256_loadu_si256((const __m256i *)(const void *)(blk + 2));
    } else {
        const int q41 = type == K_TYPE_Q4_1;
        const uint8_t *blk = row + b * (q41 ? 20 : 18);
        dw = h2f_avx(blk);
        mw = q41 ? h2f_avx(blk + 2) : -8.0f * dw; /* Q4_0: sum (q-8) x = sum q x - 8 sum x */
        const __m128i q = _mm_loadu_si128((const __m128i *)(const void *)(blk + (q41 ? 4 : 2)));
        wq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
    }
    const __m256i aw = type == K_TYPE_Q8_0 ? _mm256_sign_epi8(wq, wq) : wq;
    UNROLL for (int j = 0; j < nt; j++) {
        const q8blk_t *xb = xb0 + j * nb + b;
        __m256i xq = _mm256_loadu_si256((const __m256i *)(const void *)xb->q);
        if (type == K_TYPE_Q8_0) xq = _mm256_sign_epi8(xq, wq);
        const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, xq), ones);
        acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dw * xb->d), _mm256_cvtepi32_ps(p), acc[j]);
        accm[j] += mw * xb->s;
    }
}

/* One weight row x nt (<= 4) tokens. Even and odd blocks go to separate
 * accumulators (two independent dependency chains); the order is the same
 * for every nt, so a token's result does not depend on its batch. */
AVX2_INLINE void tile_q8(const q8_args_t *qa, const int type, const uint8_t *row, int64_t r, int64_t t0, const int nt) {
    const mm_args_t *a = qa->a;
    const int64_t nb = a->n_in / 32;
    __m256 acc0[4], acc1[4];
    float accm0[4], accm1[4];
    UNROLL for (int j = 0; j < nt; j++) {
        acc0[j] = acc1[j] = _mm256_setzero_ps();
        accm0[j] = accm1[j] = 0.0f;
    }
    const q8blk_t *xb0 = qa->xq + t0 * nb;
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) {
        q8_block(type, row, b, xb0, nb, nt, acc0, accm0);
        q8_block(type, row, b + 1, xb0, nb, nt, acc1, accm1);
    }
    if (b < nb) q8_block(type, row, b, xb0, nb, nt, acc0, accm0);
    UNROLL for (int j = 0; j < nt; j++) a->y[(t0 + j) * a->ldy + r] = hsum(_mm256_add_ps(acc0[j], acc1[j])) + (accm0[j] + accm1[j]);
}

AVX2_INLINE void rows_q8_t(const q8_args_t *qa, const int type, int64_t r0, int64_t r1) {
    const mm_args_t *a = qa->a;
    for (int64_t tb = 0; tb < a->n_tok; tb += TOK_PANEL) {
        const int64_t te = tb + TOK_PANEL < a->n_tok ? tb + TOK_PANEL : a->n_tok;
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = a->w + (size_t)r * a->rb;
            for (int64_t t0 = tb; t0 < te; t0 += 4) {
                switch (te - t0 < 4 ? te - t0 : 4) {
                case 1: tile_q8(qa, type, row, r, t0, 1); break;
                case 2: tile_q8(qa, type, row, r, t0, 2); break;
                case 3: tile_q8(qa, type, row, r, t0, 3); break;
                default: tile_q8(qa, type, row, r, t0, 4); break;
                }
            }
        }
    }
}

static AVX2_FN void rows_q8_Q8_0(const q8_args_t *qa, int64_t r0, int64_t r1) { rows_q8_t(qa, K_TYPE_Q8_0, r0, r1); }
static AVX2_FN void rows_q8_Q4_0(const q8_args_t *qa, int64_t r0, int64_t r1) { rows_q8_t(qa, K_TYPE_Q4_0, r0, r1); }
static AVX2_FN void rows_q8_Q4_1(const q8_args_t *qa, int64_t r0, int64_t r1) { rows_q8_t(qa, K_TYPE_Q4_1, r0, r1); }

#endif

/* --- dispatch ---------------------------------------------------------------------------------- */

#define MAX_MULTI 4

typedef struct {
    mm_args_t a[MAX_MULTI];
    int n;
    int64_t total;      /* rows of all outputs */
    const q8blk_t *xq;  /* quantized activations, or NULL */
} multi_t;

static int int8_type(int type) {
    return type == K_TYPE_Q8_0 || type == K_TYPE_Q4_0 || type == K_TYPE_Q4_1;
}

static void rows_dispatch(const mm_args_t *a, const q8blk_t *xq, int64_t r0, int64_t r1) {
#ifdef HAVE_X86
    if (a->simd >= K_SIMD_AVX2 && a->n_in % 32 == 0) {
        if (xq && int8_type(a->type)) {
            const q8_args_t qa = {a, xq};
            switch (a->type) {
            case K_TYPE_Q8_0: rows_q8_Q8_0(&qa, r0, r1); break;
            case K_TYPE_Q4_0: rows_q8_Q4_0(&qa, r0, r1); break;
            default: rows_q8_Q4_1(&qa, r0, r1); break;
            }
            return;
        }
        rows_avx2(a, r0, r1);
        return;
    }
#endif
    (void)xq;
    rows_portable(a, r0, r1);
}

/* Chunk ith of the concatenated rows of every output. */
static void multi_task(void *arg, int ith, int nth) {
    const multi_t *m = arg;
    int64_t g0, g1, off = 0;
    k_split(m->total, ith, nth, &g0, &g1);
    for (int i = 0; i < m->n; off += m->a[i].n_out, i++) {
        const int64_t lo = g0 > off ? g0 - off : 0, hi = g1 - off < m->a[i].n_out ? g1 - off : m->a[i].n_out;
        if (lo < hi) rows_dispatch(&m->a[i], m->xq, lo, hi);
    }
}

int k_matmul_multi(k_pool_t *pool, const k_matmul_out_t *outs, int n_outs, int64_t n_in, const float *x,
                   int64_t n_tok, void *scratch, size_t scratch_bytes) {
    if (n_outs < 1 || n_outs > MAX_MULTI || !outs || n_in <= 0 || n_tok < 0) return -EINVAL;
    multi_t m = {.n = n_outs};
    const k_simd_t simd = k_pool_simd(pool);
    int want_q8 = 0;
    for (int i = 0; i < n_outs; i++) {
        const k_matmul_out_t *o = &outs[i];
        int64_t blck;
        size_t bbytes, packed;
        if (!k_matmul_supports(o->type)) return -ENOTSUP;
        if (k_type_block(o->type, &blck, &bbytes) || o->n_out < 0 || o->ldy < o->n_out) return -EINVAL;
        if (k_type_row_bytes(o->type, n_in, &packed) || o->w_row_bytes < packed) return -EINVAL;
        if (o->n_out > 0 && n_tok > 0 && (!o->w || !o->y)) return -EINVAL;
        m.a[i] = (mm_args_t){o->type, o->w, o->w_row_bytes, o->n_out, n_in, x, n_tok, o->y, o->ldy, blck, bbytes, simd};
        m.total += o->n_out;
        want_q8 |= scratch && int8_type(o->type) && simd >= K_SIMD_AVX2 && n_in % 32 == 0;
    }
    if (m.total == 0 || n_tok == 0) return 0;
    if (!x) return -EINVAL;
    if (want_q8) {
        if (scratch_bytes < k_matmul_q8_scratch(n_tok, n_in)) return -EINVAL;
        q8blk_t *xq = scratch;
        for (int64_t t = 0; t < n_tok; t++) quantize_q8(x + t * n_in, n_in, xq + t * (n_in / 32));
        m.xq = xq;
    }
    k_pool_run(pool, multi_task, &m);
    return 0;
}

int k_matmul(k_pool_t *pool, int type, const void *w, size_t w_row_bytes, int64_t n_out, int64_t n_in,
             const float *x, int64_t n_tok, float *y, int64_t ldy) {
    const k_matmul_out_t o = {type, w, w_row_bytes, n_out, y, ldy};
    return k_matmul_multi(pool, &o, 1, n_in, x, n_tok, NULL, 0);
}

int k_matmul_q8(k_pool_t *pool, int type, const void *w, size_t w_row_bytes, int64_t n_out, int64_t n_in,
                const float *x, int64_t n_tok, float *y, int64_t ldy, void *scratch, size_t scratch_bytes) {
    const k_matmul_out_t o = {type, w, w_row_bytes, n_out, y, ldy};
    if (!scratch) return -EINVAL;
    return k_matmul_multi(pool, &o, 1, n_in, x, n_tok, scratch, scratch_bytes);
}
