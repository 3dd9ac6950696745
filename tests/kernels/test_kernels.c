/* Kernel tests: every CPU kernel against a naive double-precision reference
 * written here, on both SIMD paths (portable and AVX2 where the CPU has it),
 * at several shapes, and thread-count invariance of k_matmul.
 * Run one case by name (meson registers each as kernels-<case>). */
#include <errno.h>
#include <math.h>

#include "../model/mtest.h"
#include "k_ops.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}
static float frand(void) { return (float)((rnd() % 2000001) / 1000000.0 - 1.0); }

/* A small random fp16 (|v| in [2^-8, 2^-7)), sign random. */
static uint16_t small_h(int exp) { return (uint16_t)(((rnd() & 1) << 15) | (exp << 10) | (rnd() & 0x3FF)); }

/* Random weights of `type`, n_out rows of n_in, with sane scales. */
static uint8_t *make_weights(int type, int64_t n_out, int64_t n_in, size_t *rb) {
    CHECK(k_type_row_bytes(type, n_in, rb) == 0);
    size_t n = *rb * (size_t)n_out;
    uint8_t *w = malloc(n + 1);
    CHECK(w);
    for (size_t i = 0; i < n; i++) w[i] = (uint8_t)rnd();
    int64_t blck;
    size_t bb;
    CHECK(k_type_block(type, &blck, &bb) == 0);
    for (size_t off = 0; off < n; off += bb) {
        uint8_t *b = w + off;
        uint16_t h;
        switch (type) {
        case K_TYPE_F32: { float f = frand(); memcpy(b, &f, 4); break; }
        case K_TYPE_F16: h = small_h(14); memcpy(b, &h, 2); break;
        case K_TYPE_BF16: h = (uint16_t)(((rnd() & 1) << 15) | (122 << 7) | (rnd() & 0x7F)); memcpy(b, &h, 2); break;
        case K_TYPE_Q8_0: case K_TYPE_Q4_0: case K_TYPE_Q5_0: h = small_h(8); memcpy(b, &h, 2); break;
        case K_TYPE_Q4_1: case K_TYPE_Q5_1: h = small_h(8); memcpy(b, &h, 2); h = small_h(9); memcpy(b + 2, &h, 2); break;
        case K_TYPE_Q4_K: case K_TYPE_Q5_K: h = small_h(5); memcpy(b, &h, 2); h = small_h(5); memcpy(b + 2, &h, 2); break;
        case K_TYPE_Q6_K: h = small_h(3); memcpy(b + 208, &h, 2); break;
        default: CHECK(0);
        }
    }
    return w;
}

static void naive_matmul(int type, const uint8_t *w, size_t rb, int64_t n_out, int64_t n_in, const float *x,
                         int64_t n_tok, double *y) {
    float *row = malloc((size_t)n_in * sizeof(float));
    CHECK(row);
    for (int64_t r = 0; r < n_out; r++) {
        CHECK(k_dequant_row(type, w + (size_t)r * rb, row, n_in) == 0);
        for (int64_t t = 0; t < n_tok; t++) {
            double s = 0;
            for (int64_t i = 0; i < n_in; i++) s += (double)row[i] * x[t * n_in + i];
            y[t * n_out + r] = s;
        }
    }
    free(row);
}

static void t_matmul(void) {
    const int types[] = {K_TYPE_F32, K_TYPE_F16, K_TYPE_BF16, K_TYPE_Q8_0, K_TYPE_Q4_0, K_TYPE_Q4_1,
                         K_TYPE_Q5_0, K_TYPE_Q5_1, K_TYPE_Q4_K, K_TYPE_Q5_K, K_TYPE_Q6_K};
    const int64_t toks[] = {1, 2, 3, 8, 13, 40};
    k_pool_t *p1 = k_pool_new(1), *p3 = k_pool_new(3);
    CHECK(p1 && p3);
    CHECK_EQ_I(k_pool_threads(p3), 3);
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const int type = types[ti];
        int64_t blck;
        CHECK(k_type_block(type, &blck, NULL) == 0);
        const int64_t ins[] = {blck == 256 ? 256 : 64, blck == 256 ? 512 : 96, blck == 1 ? 40 : (blck == 256 ? 768 : 160)};
        for (int ii = 0; ii < 3; ii++) {
            const int64_t n_in = ins[ii], n_out = 1 + (int64_t)(rnd() % 37);
            size_t rb;
            uint8_t *w = make_weights(type, n_out, n_in, &rb);
            for (size_t tk = 0; tk < sizeof toks / sizeof *toks; tk++) {
                const int64_t nt = toks[tk];
                float *x = malloc(sizeof(float) * (size_t)(nt * n_in));
                float *y1 = malloc(sizeof(float) * (size_t)(nt * (n_out + 3)));
                float *y3 = malloc(sizeof(float) * (size_t)(nt * (n_out + 3)));
                double *ref = malloc(sizeof(double) * (size_t)(nt * n_out));
                CHECK(x && y1 && y3 && ref);
                for (int64_t i = 0; i < nt * n_in; i++) x[i] = frand();
                naive_matmul(type, w, rb, n_out, n_in, x, nt, ref);
                double scale = 0;
                for (int64_t i = 0; i < nt * n_out; i++) scale = fmax(scale, fabs(ref[i]));
                for (int simd = K_SIMD_PORTABLE; simd <= (int)k_cpu_simd(); simd++) {
                    k_pool_set_simd(p1, (k_simd_t)simd);
                    k_pool_set_simd(p3, (k_simd_t)simd);
                    CHECK(k_matmul(p1, type, w, rb, n_out, n_in, x, nt, y1, n_out + 3) == 0);
                    CHECK(k_matmul(p3, type, w, rb, n_out, n_in, x, nt, y3, n_out + 3) == 0);
                    for (int64_t t = 0; t < nt; t++)
                        for (int64_t r = 0; r < n_out; r++) {
                            const float a = y1[t * (n_out + 3) + r], b = y3[t * (n_out + 3) + r];
                            const double e = ref[t * n_out + r];
                            if (memcmp(&a, &b, 4) != 0 || fabs(a - e) > 1e-5 * scale + 1e-6 * sqrt((double)n_in)) {
                                fprintf(stderr, "%s simd=%d n_in=%lld n_out=%lld nt=%lld t=%lld r=%lld: 1thr %.9g 3thr %.9g ref %.9g\n",
                                        k_type_name(type), simd, (long long)n_in, (long long)n_out, (long long)nt,
                                        (long long)t, (long long)r, a, b, e);
                                exit(1);
                            }
                        }
                }
                free(x); free(y1); free(y3); free(ref);
            }
            free(w);
        }
    }
    /* Errors. */
    float x[64] = {0}, y[4];
    size_t rb;
    uint8_t *w = make_weights(K_TYPE_Q4_1, 2, 64, &rb);
    CHECK_EQ_I(k_matmul(p1, K_TYPE_Q2_K, w, rb, 2, 64, x, 1, y, 2), -ENOTSUP);
    CHECK_EQ_I(k_matmul(p1, K_TYPE_Q4_1, w, rb, 2, 48, x, 1, y, 2), -EINVAL);
    CHECK_EQ_I(k_matmul(p1, K_TYPE_Q4_1, w, rb - 1, 2, 64, x, 1, y, 2), -EINVAL);
    CHECK_EQ_I(k_matmul(p1, K_TYPE_Q4_1, w, rb, 2, 64, x, 1, y, 1), -EINVAL);
    free(w);
    k_pool_destroy(&p1);
    k_pool_destroy(&p3);
    CHECK(p1 == NULL && p3 == NULL);
}

/* k_matmul_q8: within the activation-quantization error bound of the exact
 * product, thread-count invariant, and exact fallback for other types. */
static void t_matmul_q8(void) {
    const int types[] = {K_TYPE_Q8_0, K_TYPE_Q4_0, K_TYPE_Q4_1, K_TYPE_F32};
    const int64_t toks[] = {1, 2, 5, 37};
    k_pool_t *p1 = k_pool_new(1), *p3 = k_pool_new(3);
    CHECK(p1 && p3);
    for (size_t ti = 0; ti < sizeof types / sizeof *types; ti++) {
        const int type = types[ti];
        const int64_t n_in = 192, n_out = 29;
        size_t rb;
        uint8_t *w = make_weights(type, n_out, n_in, &rb);
        float *row = malloc(sizeof(float) * (size_t)n_in);
        CHECK(row);
        for (size_t tk = 0; tk < sizeof toks / sizeof *toks; tk++) {
            const int64_t nt = toks[tk];
            const size_t sb = k_matmul_q8_scratch(nt, n_in);
            CHECK(sb >= (size_t)(nt * n_in));
            void *scratch = malloc(sb);
            float *x = malloc(sizeof(float) * (size_t)(nt * n_in)), *y1 = malloc(sizeof(float) * (size_t)(nt * n_out));
            float *y3 = malloc(sizeof(float) * (size_t)(nt * n_out)), *ye = malloc(sizeof(float) * (size_t)(nt * n_out));
            double *ref = malloc(sizeof(double) * (size_t)(nt * n_out));
            CHECK(scratch && x && y1 && y3 && ye && ref);
            for (int64_t i = 0; i < nt * n_in; i++) x[i] = frand() * 4;
            naive_matmul(type, w, rb, n_out, n_in, x, nt, ref);
            CHECK(k_matmul_q8(p1, type, w, rb, n_out, n_in, x, nt, y1, n_out, scratch, sb) == 0);
            CHECK(k_matmul_q8(p3, type, w, rb, n_out, n_in, x, nt, y3, n_out, scratch, sb) == 0);
            CHECK(k_matmul(p1, type, w, rb, n_out, n_in, x, nt, ye, n_out) == 0);
            CHECK(memcmp(y1, y3, sizeof(float) * (size_t)(nt * n_out)) == 0);
            int differs = 0;
            for (int64_t r = 0; r < n_out; r++) {
                CHECK(k_dequant_row(type, w + (size_t)r * rb, row, n_in) == 0);
                for (int64_t t = 0; t < nt; t++) {
                    /* |error| <= sum over blocks of sum|w_i| * amax_b / 254, plus float rounding. */
                    double bound = 0, mag = 0;
                    for (int64_t b = 0; b < n_in / 32; b++) {
                        double amax = 0, sw = 0;
                        for (int i = 0; i < 32; i++) {
                            amax = fmax(amax, fabs(x[t * n_in + b * 32 + i]));
                            sw += fabs(row[b * 32 + i]);
                            mag += fabs((double)row[b * 32 + i] * x[t * n_in + b * 32 + i]);
                        }
                        bound += sw * amax / 254.0;
                    }
                    const double got = y1[t * n_out + r], e = ref[t * n_out + r];
                    if (fabs(got - e) > bound * 1.01 + 1e-5 * mag + 1e-6) {
                        fprintf(stderr, "%s nt=%lld t=%lld r=%lld: q8 %.9g ref %.9g bound %.3g\n", k_type_name(type),
                                (long long)nt, (long long)t, (long long)r, got, e, bound);
                        exit(1);
                    }
                    differs |= got != ye[t * n_out + r];
                }
            }
            /* The integer path really ran (results differ from the exact path) where AVX2 exists. */
            if (type != K_TYPE_F32 && k_cpu_simd() >= K_SIMD_AVX2) CHECK(differs);
            if (type == K_TYPE_F32) CHECK(memcmp(y1, ye, sizeof(float) * (size_t)(nt * n_out)) == 0);
            CHECK_EQ_I(k_matmul_q8(p1, type, w, rb, n_out, n_in, x, nt, y1, n_out, scratch, type == K_TYPE_F32 ? sb : sb - 1),
                       type == K_TYPE_F32 || k_cpu_simd() < K_SIMD_AVX2 ? 0 : -EINVAL);
            free(scratch), free(x), free(y1), free(y3), free(ye), free(ref);
        }
        free(row);
        free(w);
    }
    k_pool_destroy(&p1);
    k_pool_destroy(&p3);
}

/* k_matmul_multi: each output bitwise equal to its own k_matmul / k_matmul_q8. */
static void t_matmul_multi(void) {
    const int64_t n_in = 256, nt = 5;
    const int types[3] = {K_TYPE_Q4_1, K_TYPE_Q4_K, K_TYPE_F16};
    const int64_t outs_n[3] = {7, 33, 12};
    uint8_t *w[3];
    size_t rb[3];
    float *ym[3], *ys[3];
    float x[5 * 256];
    for (int64_t i = 0; i < nt * n_in; i++) x[i] = frand();
    k_matmul_out_t outs[3];
    for (int i = 0; i < 3; i++) {
        w[i] = make_weights(types[i], outs_n[i], n_in, &rb[i]);
        ym[i] = calloc((size_t)(nt * outs_n[i]), sizeof(float));
        ys[i] = calloc((size_t)(nt * outs_n[i]), sizeof(float));
        CHECK(ym[i] && ys[i]);
        outs[i] = (k_matmul_out_t){types[i], w[i], rb[i], outs_n[i], ym[i], outs_n[i]};
    }
    const size_t sb = k_matmul_q8_scratch(nt, n_in);
    void *scratch = malloc(sb);
    k_pool_t *p = k_pool_new(2);
    CHECK(p && scratch);
    for (int q8 = 0; q8 < 2; q8++) {
        CHECK(k_matmul_multi(p, outs, 3, n_in, x, nt, q8 ? scratch : NULL, q8 ? sb : 0) == 0);
        for (int i = 0; i < 3; i++) {
            if (q8) CHECK(k_matmul_q8(p, types[i], w[i], rb[i], outs_n[i], n_in, x, nt, ys[i], outs_n[i], scratch, sb) == 0);
            else CHECK(k_matmul(p, types[i], w[i], rb[i], outs_n[i], n_in, x, nt, ys[i], outs_n[i]) == 0);
            CHECK(memcmp(ym[i], ys[i], sizeof(float) * (size_t)(nt * outs_n[i])) == 0);
        }
    }
    CHECK_EQ_I(k_matmul_multi(p, outs, 0, n_in, x, nt, NULL, 0), -EINVAL);
    CHECK_EQ_I(k_matmul_multi(p, outs, 5, n_in, x, nt, NULL, 0), -EINVAL);
    for (int i = 0; i < 3; i++) free(w[i]), free(ym[i]), free(ys[i]);
    free(scratch);
    k_pool_destroy(&p);
}

static void t_rmsnorm(void) {
    for (int64_t n = 1; n < 600; n += 37) {
        float x[600], w[600], y[600];
        for (int64_t i = 0; i < n; i++) { x[i] = frand() * 3; w[i] = frand(); }
        double ss = 0;
        for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
        const double s = 1.0 / sqrt(ss / n + 1e-5);
        k_rmsnorm(y, x, w, n, 1e-5f);
        for (int64_t i = 0; i < n; i++) CHECK(fabs(y[i] - x[i] * s * w[i]) <= 1e-6 * (1 + fabs(x[i] * s * w[i])));
        k_rmsnorm(x, x, w, n, 1e-5f); /* in place */
        CHECK(memcmp(x, y, (size_t)n * 4) == 0);
    }
}

static void t_rope(void) {
    const int64_t hd = 16, nh = 3;
    double inv[8];
    k_rope_inv_freq(inv, hd, 10000.0, K_ROPE_SCALE_NONE, 1, 0, 0, 0, NULL);
    for (int i = 0; i < 8; i++) CHECK(fabs(inv[i] - pow(10000.0, -2.0 * i / hd)) < 1e-15);
    float c[8], s[8];
    const int64_t pos = 37;
    k_rope_sincos(pos, inv, 8, c, s);
    float x[48], xn[48], xh[48], xp[48];
    for (int i = 0; i < 48; i++) x[i] = frand();
    memcpy(xn, x, sizeof x);
    memcpy(xh, x, sizeof x);
    k_rope(xn, nh, hd, c, s, 0);
    k_rope(xh, nh, hd, c, s, 1);
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < 8; i++) {
            const double a = pos * inv[i], cs = cos(a), sn = sin(a);
            const float *v = x + h * hd;
            CHECK(fabs(xn[h * hd + 2 * i] - (v[2 * i] * cs - v[2 * i + 1] * sn)) < 1e-6);
            CHECK(fabs(xn[h * hd + 2 * i + 1] - (v[2 * i] * sn + v[2 * i + 1] * cs)) < 1e-6);
            CHECK(fabs(xh[h * hd + i] - (v[i] * cs - v[i + 8] * sn)) < 1e-6);
            CHECK(fabs(xh[h * hd + i + 8] - (v[i + 8] * cs + v[i] * sn)) < 1e-6);
        }
    /* Half-split rotation of x == adjacent-pair rotation of the permuted x. */
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < 8; i++) {
            xp[h * hd + 2 * i] = x[h * hd + i];
            xp[h * hd + 2 * i + 1] = x[h * hd + i + 8];
        }
    k_rope(xp, nh, hd, c, s, 0);
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < 8; i++) {
            CHECK_EQ_F(xp[h * hd + 2 * i], xh[h * hd + i]);
            CHECK_EQ_F(xp[h * hd + 2 * i + 1], xh[h * hd + i + 8]);
        }
    /* llama3 scaling: high frequencies untouched, low ones divided by factor. */
    double l3[32];
    k_rope_inv_freq(l3, 64, 500000.0, K_ROPE_SCALE_LLAMA3, 8, 1, 4, 8192, NULL);
    CHECK(fabs(l3[0] - 1.0) < 1e-15);
    CHECK(fabs(l3[31] - pow(500000.0, -62.0 / 64) / 8) < 1e-18);
    for (int i = 1; i < 32; i++) CHECK(l3[i] < l3[i - 1]);
    const float ff[4] = {1, 2, 4, 8};
    double fr[4];
    k_rope_inv_freq(fr, 8, 100.0, K_ROPE_SCALE_LLAMA3, 8, 1, 4, 8192, ff);
    for (int i = 0; i < 4; i++) CHECK(fabs(fr[i] - pow(100.0, -2.0 * i / 8) / ff[i]) < 1e-15);
    k_rope_inv_freq(fr, 8, 100.0, K_ROPE_SCALE_LINEAR, 4, 0, 0, 0, NULL);
    for (int i = 0; i < 4; i++) CHECK(fabs(fr[i] - pow(100.0, -2.0 * i / 8) / 4) < 1e-15);
}

static void t_softmax_swiglu(void) {
    for (int64_t n = 1; n < 300; n += 29) {
        float x[300], g[300], u[300];
        double ref[300], mx = -1e30, sum = 0;
        for (int64_t i = 0; i < n; i++) { x[i] = frand() * 30; mx = fmax(mx, x[i]); }
        for (int64_t i = 0; i < n; i++) sum += ref[i] = exp(x[i] - mx);
        k_softmax(x, n);
        for (int64_t i = 0; i < n; i++) CHECK(fabs(x[i] - ref[i] / sum) < 1e-6);
        for (int64_t i = 0; i < n; i++) { g[i] = frand() * 8; u[i] = frand(); ref[i] = g[i] / (1 + exp(-(double)g[i])) * u[i]; }
        k_swiglu(g, u, n);
        for (int64_t i = 0; i < n; i++) CHECK(fabs(g[i] - ref[i]) < 1e-6);
    }
}

static void t_dot_axpy(void) {
    for (int64_t n = 0; n < 200; n += 7) {
        float a[200] = {0}, b[200] = {0}, y[200] = {0};
        double ref = 0;
        for (int64_t i = 0; i < n; i++) { a[i] = frand(); b[i] = frand(); y[i] = frand(); ref += (double)a[i] * b[i]; }
        CHECK(fabs(k_dot_f32(a, b, n) - ref) < 1e-5);
        float y0[200];
        memcpy(y0, y, sizeof y);
        k_axpy_f32(y, 0.5f, a, n);
        for (int64_t i = 0; i < n; i++) CHECK(fabs(y[i] - (y0[i] + 0.5 * a[i])) < 1e-6);
        k_add_f32(y, a, n);
        for (int64_t i = 0; i < n; i++) CHECK(fabs(y[i] - (y0[i] + 1.5 * a[i])) < 1e-6);
    }
}

typedef struct {
    _Atomic int64_t hits[64];
    _Atomic int nth_seen;
} pool_arg_t;

static void pool_fn(void *arg, int ith, int nth) {
    pool_arg_t *a = arg;
    CHECK(ith >= 0 && ith < nth && nth <= 64);
    a->hits[ith]++;
    a->nth_seen = nth;
}

static void t_pool(void) {
    for (int n = 1; n <= 4; n++) {
        k_pool_t *p = k_pool_new(n);
        CHECK(p);
        static pool_arg_t a;
        memset(&a, 0, sizeof a);
        for (int i = 0; i < 3000; i++) k_pool_run(p, pool_fn, &a);
        const int nth = k_pool_max_chunks(p);
        CHECK_EQ_I(a.nth_seen, nth);
        CHECK(n == 1 ? nth == 1 : nth >= n);
        for (int i = 0; i < nth; i++) CHECK_EQ_I(a.hits[i], 3000); /* every chunk exactly once per run */
        for (int i = nth; i < 64; i++) CHECK_EQ_I(a.hits[i], 0);
        k_pool_destroy(&p);
        CHECK(p == NULL);
    }
    k_pool_destroy(NULL);
    int64_t lo, hi, prev = 0;
    for (int i = 0; i < 3; i++) {
        k_split(10, i, 3, &lo, &hi);
        CHECK_EQ_I(lo, prev);
        prev = hi;
    }
    CHECK_EQ_I(prev, 10);
    k_pool_t *p = k_pool_new(0);
    CHECK(p && k_pool_threads(p) == k_cpu_count());
    k_pool_destroy(&p);
}

int main(int argc, char **argv) {
    static const mtest_case_t cases[] = {
        {"matmul", t_matmul}, {"matmul-q8", t_matmul_q8}, {"matmul-multi", t_matmul_multi}, {"rmsnorm", t_rmsnorm}, {"rope", t_rope},
        {"softmax-swiglu", t_softmax_swiglu}, {"dot-axpy", t_dot_axpy}, {"pool", t_pool},
    };
    return mtest_main(cases, sizeof cases / sizeof *cases, argc, argv);
}
