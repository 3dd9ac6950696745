/* CPU row and elementwise ops: RMSNorm, RoPE (adjacent-pair and half-split
 * styles, llama3/linear frequency scaling), SwiGLU, softmax, dot/axpy.
 *
 * These run once per token row and are cheap next to the matrix products, so
 * they are single-threaded; only the dot product, which attention calls per
 * cached position, has an AVX2 path (selected at runtime, compiled with a
 * target attribute so the baseline build stays portable).
 * Precision: RMSNorm's sum of squares and RoPE angles are computed in double.
 */
#include <math.h>
#include <string.h>

#include "k_ops.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define HAVE_X86 1
#endif

/* --- RMSNorm ---------------------------------------------------------------------- */

void k_rmsnorm(float *y, const float *x, const float *w, int64_t n, float eps) {
    double ss = 0.0;
    for (int64_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    const float s = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * s * w[i];
}

/* --- RoPE --------------------------------------------------------------------------- */

void k_rope_inv_freq(double *inv_freq, int64_t head_dim, double base, k_rope_scale_t scale, double factor,
                     double low_freq_factor, double high_freq_factor, double orig_ctx,
                     const float *freq_factors) {
    const double two_pi = 6.283185307179586476925286766559;
    for (int64_t i = 0; i < head_dim / 2; i++) {
        double f = pow(base, -2.0 * (double)i / (double)head_dim);
        if (freq_factors) {
            f /= (double)freq_factors[i];
        } else if (scale == K_ROPE_SCALE_LINEAR) {
            f /= factor;
        } else if (scale == K_ROPE_SCALE_LLAMA3) {
            const double wavelen = two_pi / f;
            const double low_wl = orig_ctx / low_freq_factor, high_wl = orig_ctx / high_freq_factor;
            double div;
            if (wavelen < high_wl) {
                div = 1.0;
            } else if (wavelen > low_wl) {
                div = factor;
            } else {
                const double s = (orig_ctx / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                div = 1.0 / ((1.0 - s) / factor + s);
            }
            f /= div;
        }
        inv_freq[i] = f;
    }
}

void k_rope_sincos(int64_t pos, const double *inv_freq, int64_t n_pairs, float *cos_out, float *sin_out) {
    for (int64_t i = 0; i < n_pairs; i++) {
        const double a = (double)pos * inv_freq[i];
        cos_out[i] = (float)cos(a);
        sin_out[i] = (float)sin(a);
    }
}

void k_rope(float *x, int64_t n_heads, int64_t head_dim, const float *cos_t, const float *sin_t, int neox) {
    const int64_t half = head_dim / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_dim;
        if (neox) {
            for (int64_t i = 0; i < half; i++) {
                const float a = v[i], b = v[i + half];
                v[i] = a * cos_t[i] - b * sin_t[i];
                v[i + half] = b * cos_t[i] + a * sin_t[i];
            }
        } else {
            for (int64_t i = 0; i < half; i++) {
                const float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * cos_t[i] - b * sin_t[i];
                v[2 * i + 1] = a * sin_t[i] + b * cos_t[i];
            }
        }
    }
}

/* --- SwiGLU, softmax ------------------------------------------------------------------- */

void k_swiglu(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void k_softmax(float *x, int64_t n) {
    float mx = x[0];
    for (int64_t i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    const float inv = (float)(1.0 / sum);
    for (int64_t i = 0; i < n; i++) x[i] *= inv;
}

/* --- dot / axpy ------------------------------------------------------------------------ */

static float dot_portable(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) acc[j] += a[i + j] * b[i + j];
    for (; i < n; i++) acc[0] += a[i] * b[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

#ifdef HAVE_X86
__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s0 = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

__attribute__((target("avx2,fma"))) static void axpy_avx2(float *y, float a, const float *x, int64_t n) {
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}
#endif

float k_dot_f32(const float *a, const float *b, int64_t n) {
#ifdef HAVE_X86
    if (k_cpu_simd() >= K_SIMD_AVX2) return dot_avx2(a, b, n);
#endif
    return dot_portable(a, b, n);
}

void k_axpy_f32(float *y, float a, const float *x, int64_t n) {
#ifdef HAVE_X86
    if (k_cpu_simd() >= K_SIMD_AVX2) {
        axpy_avx2(y, a, x, n);
        return;
    }
#endif
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void k_add_f32(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}
