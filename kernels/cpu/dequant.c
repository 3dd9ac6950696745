/* CPU dequantization: ggml block formats to float32, and the type table.
 *
 * Each dequantizer follows ggml's dequantize_row_* (ggml-quants.c) operation
 * for operation, so results are bit-identical to ggml and to gguf-py's numpy
 * reference as long as the compiler does not contract a*b+c into an FMA (C11
 * mode sets -ffp-contract=off in gcc; keep it that way for this file).
 *
 * Blocks are read with memcpy/byte loads only: a block in a mapped GGUF starts
 * at any even address and a safetensors F32 row at any address, so no pointer
 * into `src` is ever dereferenced as a wider type. Multi-byte fields are
 * little-endian on disk; this file assumes a little-endian host (x86-64, arm64).
 *
 * Plain portable C, one element at a time: correctness reference first, the
 * SIMD paths will be checked against it.
 */
#include <errno.h>
#include <string.h>

#include "k_ops.h"

/* --- type table --------------------------------------------------------------- */

typedef struct {
    const char *name;
    int64_t blck;  /* elements per block; 0 = unknown/retired id */
    size_t bytes;  /* bytes per block */
} type_desc_t;

/* Sizes from ggml-common.h (static-asserted there) and gguf-py constants.py. */
static const type_desc_t types[K_TYPE_COUNT_] = {
    [K_TYPE_F32] = {"F32", 1, 4},
    [K_TYPE_F16] = {"F16", 1, 2},
    [K_TYPE_Q4_0] = {"Q4_0", 32, 18},
    [K_TYPE_Q4_1] = {"Q4_1", 32, 20},
    [K_TYPE_Q5_0] = {"Q5_0", 32, 22},
    [K_TYPE_Q5_1] = {"Q5_1", 32, 24},
    [K_TYPE_Q8_0] = {"Q8_0", 32, 34},
    [K_TYPE_Q8_1] = {"Q8_1", 32, 36},
    [K_TYPE_Q2_K] = {"Q2_K", 256, 84},
    [K_TYPE_Q3_K] = {"Q3_K", 256, 110},
    [K_TYPE_Q4_K] = {"Q4_K", 256, 144},
    [K_TYPE_Q5_K] = {"Q5_K", 256, 176},
    [K_TYPE_Q6_K] = {"Q6_K", 256, 210},
    [K_TYPE_Q8_K] = {"Q8_K", 256, 292},
    [K_TYPE_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [K_TYPE_IQ2_XS] = {"IQ2_XS", 256, 74},
    [K_TYPE_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [K_TYPE_IQ1_S] = {"IQ1_S", 256, 50},
    [K_TYPE_IQ4_NL] = {"IQ4_NL", 32, 18},
    [K_TYPE_IQ3_S] = {"IQ3_S", 256, 110},
    [K_TYPE_IQ2_S] = {"IQ2_S", 256, 82},
    [K_TYPE_IQ4_XS] = {"IQ4_XS", 256, 136},
    [K_TYPE_I8] = {"I8", 1, 1},
    [K_TYPE_I16] = {"I16", 1, 2},
    [K_TYPE_I32] = {"I32", 1, 4},
    [K_TYPE_I64] = {"I64", 1, 8},
    [K_TYPE_F64] = {"F64", 1, 8},
    [K_TYPE_IQ1_M] = {"IQ1_M", 256, 56},
    [K_TYPE_BF16] = {"BF16", 1, 2},
    [K_TYPE_TQ1_0] = {"TQ1_0", 256, 54},
    [K_TYPE_TQ2_0] = {"TQ2_0", 256, 66},
    [K_TYPE_MXFP4] = {"MXFP4", 32, 17},
};

static const type_desc_t *type_desc(int type) {
    if (type < 0 || type >= K_TYPE_COUNT_ || types[type].blck == 0) return NULL;
    return &types[type];
}

int k_type_block(int type, int64_t *block_elems, size_t *block_bytes) {
    const type_desc_t *t = type_desc(type);
    if (!t) return -EINVAL;
    if (block_elems) *block_elems = t->blck;
    if (block_bytes) *block_bytes = t->bytes;
    return 0;
}

const char *k_type_name(int type) {
    const type_desc_t *t = type_desc(type);
    return t ? t->name : NULL;
}

int k_type_can_dequant(int type) {
    switch (type) {
    case K_TYPE_F32: case K_TYPE_F16: case K_TYPE_BF16:
    case K_TYPE_Q4_0: case K_TYPE_Q4_1: case K_TYPE_Q5_0: case K_TYPE_Q5_1: case K_TYPE_Q8_0:
    case K_TYPE_Q4_K: case K_TYPE_Q5_K: case K_TYPE_Q6_K:
        return 1;
    default:
        return 0;
    }
}

int k_type_row_bytes(int type, int64_t n, size_t *out) {
    const type_desc_t *t = type_desc(type);
    if (!t || n < 0 || n % t->blck != 0) return -EINVAL;
    uint64_t nb = (uint64_t)(n / t->blck);
    if (nb != 0 && t->bytes > SIZE_MAX / nb) return -EOVERFLOW;
    *out = (size_t)nb * t->bytes;
    return 0;
}

/* --- scalar conversions ------------------------------------------------------- */

static float bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float k_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1Fu;
    uint32_t man = h & 0x3FFu;
    uint32_t u;
    if (exp == 0x1F) {
        u = sign | 0x7F800000u | (man << 13); /* inf / NaN, payload kept */
    } else if (exp != 0) {
        u = sign | ((exp + 112) << 23) | (man << 13); /* rebias 15 -> 127 */
    } else if (man == 0) {
        u = sign; /* +-0 */
    } else {
        /* Subnormal half: value = man * 2^-24; normalise into a float. */
        int e = -1;
        do {
            man <<= 1;
            e++;
        } while (!(man & 0x400u));
        man &= 0x3FFu;
        u = sign | ((uint32_t)(112 - e) << 23) | (man << 13);
    }
    return bits_to_f32(u);
}

float k_bf16_to_fp32(uint16_t h) {
    return bits_to_f32((uint32_t)h << 16);
}

/* --- block readers -------------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static float rdh(const uint8_t *p) {
    return k_fp16_to_fp32(rd16(p));
}

/* ggml get_scale_min_k4: 6-bit scale and min of sub-block j from 12 packed bytes. */
static void scale_min_k4(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* --- dequantizers (nb = number of blocks) ----------------------------------------- */

static void deq_q4_0(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 18, y += 32) {
        const float d = rdh(x);
        const uint8_t *qs = x + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((qs[j] & 0x0F) - 8) * d;
            y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 20, y += 32) {
        const float d = rdh(x), m = rdh(x + 2);
        const uint8_t *qs = x + 4;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)(qs[j] & 0x0F) * d + m;
            y[j + 16] = (float)(qs[j] >> 4) * d + m;
        }
    }
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void deq_q5_0(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 22, y += 32) {
        const float d = rdh(x);
        const uint32_t qh = rd32(x + 2);
        const uint8_t *qs = x + 6;
        for (int j = 0; j < 16; j++) {
            const uint8_t xh0 = (uint8_t)(((qh >> j) << 4) & 0x10);
            const uint8_t xh1 = (uint8_t)((qh >> (j + 12)) & 0x10);
            y[j] = (float)(((qs[j] & 0x0F) | xh0) - 16) * d;
            y[j + 16] = (float)(((qs[j] >> 4) | xh1) - 16) * d;
        }
    }
}

static void deq_q5_1(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 24, y += 32) {
        const float d = rdh(x), m = rdh(x + 2);
        const uint32_t qh = rd32(x + 4);
        const uint8_t *qs = x + 8;
        for (int j = 0; j < 16; j++) {
            const uint8_t xh0 = (uint8_t)(((qh >> j) << 4) & 0x10);
            const uint8_t xh1 = (uint8_t)((qh >> (j + 12)) & 0x10);
            y[j] = (float)((qs[j] & 0x0F) | xh0) * d + m;
            y[j + 16] = (float)((qs[j] >> 4) | xh1) * d + m;
        }
    }
}

static void deq_q8_0(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 34, y += 32) {
        const float d = rdh(x);
        for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)x[2 + j] * d;
    }
}

static void deq_q4_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 144) {
        const float d = rdh(x), dmin = rdh(x + 2);
        const uint8_t *scales = x + 4, *q = x + 16;
        int is = 0;
        uint8_t sc, m;
        for (int j = 0; j < 256; j += 64) {
            scale_min_k4(is + 0, scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            scale_min_k4(is + 1, scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
            q += 32;
            is += 2;
        }
    }
}

static void deq_q5_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 176) {
        const float d = rdh(x), dmin = rdh(x + 2);
        const uint8_t *scales = x + 4, *qh = x + 16, *ql = x + 48;
        int is = 0;
        uint8_t sc, m, u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64) {
            scale_min_k4(is + 0, scales, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            scale_min_k4(is + 1, scales, &sc, &m);
            const float d2 = d * sc, m2 = dmin * m;
            for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            ql += 32;
            is += 2;
            u1 = (uint8_t)(u1 << 2);
            u2 = (uint8_t)(u2 << 2);
        }
    }
}

static void deq_q6_k(const uint8_t *x, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 210) {
        const uint8_t *ql = x, *qh = x + 128;
        const int8_t *sc = (const int8_t *)(x + 192);
        const float d = rdh(x + 208);
        for (int n = 0; n < 256; n += 128) {
            for (int l = 0; l < 32; l++) {
                const int is = l / 16;
                const int8_t q1 = (int8_t)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int8_t q2 = (int8_t)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int8_t q3 = (int8_t)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int8_t q4 = (int8_t)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * sc[is + 0] * q1;
                y[l + 32] = d * sc[is + 2] * q2;
                y[l + 64] = d * sc[is + 4] * q3;
                y[l + 96] = d * sc[is + 6] * q4;
            }
            y += 128;
            ql += 64;
            qh += 32;
            sc += 8;
        }
    }
}

/* --- entry point ------------------------------------------------------------------- */

int k_dequant_row(int type, const void *src, float *dst, int64_t n) {
    const type_desc_t *t = type_desc(type);
    if (!t || !k_type_can_dequant(type)) return -ENOTSUP;
    if (n < 0 || n % t->blck != 0) return -EINVAL;
    if (n == 0) return 0;
    if (!src || !dst) return -EINVAL;
    const uint8_t *x = src;
    const int64_t nb = n / t->blck;
    switch (type) {
    case K_TYPE_F32:
        memcpy(dst, src, (size_t)n * sizeof(float));
        break;
    case K_TYPE_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = k_fp16_to_fp32(rd16(x + 2 * i));
        break;
    case K_TYPE_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = k_bf16_to_fp32(rd16(x + 2 * i));
        break;
    case K_TYPE_Q4_0: deq_q4_0(x, dst, nb); break;
    case K_TYPE_Q4_1: deq_q4_1(x, dst, nb); break;
    case K_TYPE_Q5_0: deq_q5_0(x, dst, nb); break;
    case K_TYPE_Q5_1: deq_q5_1(x, dst, nb); break;
    case K_TYPE_Q8_0: deq_q8_0(x, dst, nb); break;
    case K_TYPE_Q4_K: deq_q4_k(x, dst, nb); break;
    case K_TYPE_Q5_K: deq_q5_k(x, dst, nb); break;
    case K_TYPE_Q6_K: deq_q6_k(x, dst, nb); break;
    default: return -ENOTSUP;
    }
    return 0;
}
