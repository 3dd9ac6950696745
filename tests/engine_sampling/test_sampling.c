/* Unit tests for engine/sample: each case is its own meson test
 * ('sampling-<case>'). Expected values are computed here independently
 * (double-precision softmax, brute-force sorted nucleus, hand-worked penalty
 * arithmetic), never read back from the module under test. */
#include <errno.h>
#include <math.h>

#include "../model/mtest.h"
#include "sample.h"

#define CHECK_NEAR(a, b, tol)                                                                                    \
    do {                                                                                                         \
        double a_ = (double)(a), b_ = (double)(b);                                                               \
        if (!(fabs(a_ - b_) <= (tol))) {                                                                         \
            fprintf(stderr, "%s:%d: %s ~ %s failed: %.9g vs %.9g (tol %g)\n", __FILE__, __LINE__, #a, #b, a_, b_, \
                    (double)(tol));                                                                              \
            exit(1);                                                                                             \
        }                                                                                                        \
    } while (0)

static smp_params_t params(double temp, uint64_t seed) {
    smp_params_t p;
    smp_params_default(&p, NULL);
    p.temperature = temp;
    p.has_seed = true;
    p.seed = (int64_t)seed;
    return p;
}

/* Random logits in [-scale, scale] from a private LCG. */
static void fill_random(float *x, int64_t V, uint32_t seed, float scale) {
    uint64_t s = seed * 2862933555777941757ULL + 3037000493ULL;
    for (int64_t i = 0; i < V; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = scale * (2.0f * (float)((s >> 40) & 0xffffff) / 16777216.0f - 1.0f);
    }
}

static int32_t sample1(smp_workspace_t *ws, smp_params_t *p, const float *x, int64_t V, smp_result_t *r) {
    smp_state_t st;
    smp_params_normalize(p);
    CHECK_EQ_I(smp_state_init(&st, p, NULL, 0, 16, NULL, 0, NULL), 0);
    int rc = smp_sample(ws, 0, p, &st, x, V, r);
    smp_state_free(&st);
    CHECK_EQ_I(rc, 0);
    return r->token;
}

// ---------------------------------------------------------------------------

static void t_greedy(void) {
    enum { V = 1000 };
    float x[V];
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_RAW);
    CHECK(ws != NULL);
    smp_result_t r;
    for (uint32_t s = 1; s < 20; s++) {
        fill_random(x, V, s, 5);
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (x[i] > x[best]) best = i;
        smp_params_t p = params(0.0, s);
        CHECK_EQ_I(sample1(ws, &p, x, V, &r), best);
    }
    /* ties: lowest id */
    for (int i = 0; i < V; i++) x[i] = 0;
    x[700] = 3;
    x[300] = 3;
    smp_params_t p = params(0.0, 1);
    CHECK_EQ_I(sample1(ws, &p, x, V, &r), 300);
    /* everything masked: -EDOM */
    for (int i = 0; i < V; i++) x[i] = -INFINITY;
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 4, NULL, 0, NULL), 0);
    CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), -EDOM);
    smp_state_free(&st);
    smp_workspace_destroy(&ws);
    CHECK(ws == NULL);
}

static void t_topk1(void) {
    enum { V = 5000 };
    static float x[V];
    smp_workspace_t *ws = smp_workspace_new(V, 2, SMP_LOGPROBS_RAW);
    smp_result_t r;
    for (uint32_t s = 1; s < 30; s++) {
        fill_random(x, V, s, 3);
        smp_params_t g = params(0.0, s), k = params(1.5, s * 7);
        k.top_k = 1;
        CHECK_EQ_I(sample1(ws, &k, x, V, &r), sample1(ws, &g, x, V, &r));
    }
    smp_workspace_destroy(&ws);
}

/* Draws must follow softmax(x / T): chi-square over 8 tokens, fixed seed. */
static void t_temperature(void) {
    enum { V = 8, N = 40000 };
    float x[V] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 1.5f, -1.0f, 0.25f};
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_RAW);
    double T = 0.7, z = 0, pr[V];
    for (int i = 0; i < V; i++) z += exp(x[i] / T);
    for (int i = 0; i < V; i++) pr[i] = exp(x[i] / T) / z;
    smp_params_t p = params(T, 1234);
    smp_params_normalize(&p);
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, N, NULL, 0, NULL), 0);
    long cnt[V] = {0};
    smp_result_t r;
    for (int n = 0; n < N; n++) {
        CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), 0);
        cnt[r.token]++;
    }
    double chi = 0;
    for (int i = 0; i < V; i++) chi += (cnt[i] - N * pr[i]) * (cnt[i] - N * pr[i]) / (N * pr[i]);
    /* 7 degrees of freedom: P(chi2 > 24.3) = 0.001 */
    if (chi > 24.3) fprintf(stderr, "chi2 = %g\n", chi);
    CHECK(chi < 24.3);
    CHECK_EQ_I(st.n_output, N);
    smp_state_free(&st);
    smp_workspace_destroy(&ws);
}

/* Brute force nucleus: sort by (prob desc, id asc), keep while mass before < p. */
static int cmp_desc_by(const void *a, const void *b, const double *pr) {
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (pr[i] != pr[j]) return pr[i] > pr[j] ? -1 : 1;
    return i < j ? -1 : 1;
}
static const double *g_pr;
static int cmp_g(const void *a, const void *b) { return cmp_desc_by(a, b, g_pr); }

static void t_topp_large(void) {
    /* A flat-ish distribution over 40000 tokens makes the nucleus span
     * thousands of tokens, exercising the growing prefix selection. */
    enum { V = 40000 };
    static float x[V];
    static double pr[V];
    static int32_t order[V], ids[V];
    static float probs[V];
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_RAW);
    for (uint32_t s = 1; s <= 3; s++) {
        fill_random(x, V, s, 2);
        double T = 1.3, top_p = s == 1 ? 0.9 : s == 2 ? 0.5 : 0.05;
        /* float32 scaling as the module does, softmax in double */
        double m = -1e30, z = 0;
        for (int i = 0; i < V; i++) {
            double v = (double)(x[i] / (float)T);
            if (v > m) m = v;
        }
        for (int i = 0; i < V; i++) z += pr[i] = exp((double)(x[i] / (float)T) - m);
        for (int i = 0; i < V; i++) {
            pr[i] /= z;
            order[i] = i;
        }
        g_pr = pr;
        qsort(order, V, sizeof order[0], cmp_g);
        double cum = 0;
        int64_t keep = 0;
        while (keep < V && cum < top_p) cum += pr[order[keep++]];
        smp_params_t p = params(T, 5);
        p.top_p = top_p;
        smp_params_normalize(&p);
        smp_state_t st;
        CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 1, NULL, 0, NULL), 0);
        int64_t n = 0;
        CHECK_EQ_I(smp_kept_set(ws, 0, &p, &st, x, V, ids, probs, V, &n), 0);
        CHECK_EQ_I(n, keep);
        for (int64_t i = 0; i < n; i++) {
            CHECK_EQ_I(ids[i], order[i]);
            CHECK_NEAR(probs[i], pr[order[i]] / cum, 1e-6);
        }
        smp_state_free(&st);
    }
    smp_workspace_destroy(&ws);
}

static void t_topk_ties(void) {
    enum { V = 10 };
    float x[V] = {1, 5, 3, 3, 3, 0, 2, 4, -1, 3};
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_RAW);
    smp_params_t p = params(1.0, 1);
    p.top_k = 3; /* 5, 4, then the 3s tie: all four are kept, as vLLM does */
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 1, NULL, 0, NULL), 0);
    int32_t ids[V];
    float probs[V];
    int64_t n;
    CHECK_EQ_I(smp_kept_set(ws, 0, &p, &st, x, V, ids, probs, V, &n), 0);
    CHECK_EQ_I(n, 6);
    int32_t want[6] = {1, 7, 2, 3, 4, 9};
    for (int i = 0; i < 6; i++) CHECK_EQ_I(ids[i], want[i]);
    smp_state_free(&st);
    smp_workspace_destroy(&ws);
}

static void t_min_p(void) {
    enum { V = 6 };
    /* probs relative to max: exp(x - 2) */
    float x[V] = {2.0f, 1.0f, 0.0f, -1.0f, 1.9f, -3.0f};
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_RAW);
    smp_params_t p = params(1.0, 1);
    p.min_p = 0.3; /* keeps exp(x-2) >= 0.3: x >= 2 + ln 0.3 = 0.796 -> {0, 1, 4} */
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 1, NULL, 0, NULL), 0);
    int32_t ids[V];
    float probs[V];
    int64_t n;
    CHECK_EQ_I(smp_kept_set(ws, 0, &p, &st, x, V, ids, probs, V, &n), 0);
    CHECK_EQ_I(n, 3);
    CHECK_EQ_I(ids[0], 0);
    CHECK_EQ_I(ids[1], 1);
    CHECK_EQ_I(ids[2], 4);
    double z = exp(2.0) + exp(1.0) + exp(1.9);
    CHECK_NEAR(probs[1], exp(1.0) / z, 1e-6);
    smp_state_free(&st);
    smp_workspace_destroy(&ws);
}

static void t_penalties(void) {
    enum { V = 6 };
    float x[V] = {2.0f, -1.0f, 0.5f, 3.0f, -2.0f, 1.0f};
    float out[V];
    smp_params_t p = params(1.0, 1);
    p.repetition_penalty = 2.0;
    p.frequency_penalty = 0.5;
    p.presence_penalty = 0.25;
    int32_t prompt[] = {0, 1, 1};
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, prompt, 3, 8, NULL, 0, NULL), 0);
    CHECK_EQ_I(smp_state_append(&st, 3), 0);
    CHECK_EQ_I(smp_state_append(&st, 3), 0);
    CHECK_EQ_I(smp_state_append(&st, 4), 0);
    CHECK_EQ_I(smp_state_count(&st, 3), 2);
    CHECK_EQ_I(smp_state_count(&st, 0), 0);
    CHECK_EQ_I(smp_process_logits(&p, &st, x, V, out), 0);
    CHECK_EQ_F(out[0], 1.0f);                      /* prompt, positive: 2 / 2 */
    CHECK_EQ_F(out[1], -2.0f);                     /* prompt, negative: -1 * 2 */
    CHECK_EQ_F(out[2], 0.5f);                      /* untouched */
    CHECK_EQ_F(out[3], 3.0f / 2 - 0.5f * 2 - 0.25f); /* output twice */
    CHECK_EQ_F(out[4], -2.0f * 2 - 0.5f - 0.25f);  /* output once, negative */
    CHECK_EQ_F(out[5], 1.0f);
    smp_state_free(&st);
    /* Presence/frequency only: the prompt is not tracked or penalized. */
    p.repetition_penalty = 1.0;
    CHECK_EQ_I(smp_state_init(&st, &p, prompt, 3, 2, NULL, 0, NULL), 0);
    CHECK_EQ_I(smp_state_append(&st, 0), 0);
    CHECK_EQ_I(smp_process_logits(&p, &st, x, V, out), 0);
    CHECK_EQ_F(out[0], 2.0f - 0.5f - 0.25f);
    CHECK_EQ_F(out[1], -1.0f);
    /* capacity: max_output 2 distinct output tokens, a third is -ENOSPC */
    CHECK_EQ_I(smp_state_append(&st, 1), 0);
    CHECK_EQ_I(smp_state_append(&st, 2), -ENOSPC);
    smp_state_free(&st);
}

static void t_bias_allowed(void) {
    enum { V = 8 };
    float x[V] = {5, 4, 3, 2, 1, 0, -1, -2};
    float out[V];
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_RAW);
    smp_params_t p = params(0.0, 1);
    smp_bias_t b[2] = {{6, 500.0f}, {0, -1.5f}}; /* 500 is clamped to 100 */
    p.logit_bias = b;
    p.n_logit_bias = 2;
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 1, NULL, 0, NULL), 0);
    CHECK_EQ_I(smp_process_logits(&p, &st, x, V, out), 0);
    CHECK_EQ_F(out[6], 99.0f);
    CHECK_EQ_F(out[0], 3.5f);
    CHECK_EQ_F(out[1], 4.0f);
    smp_state_free(&st);
    int32_t allowed[] = {2, 5, 7};
    p.n_logit_bias = 0;
    p.has_allowed_token_ids = true;
    p.allowed_token_ids = allowed;
    p.n_allowed_token_ids = 3;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 1, NULL, 0, NULL), 0);
    CHECK_EQ_I(smp_process_logits(&p, &st, x, V, out), 0);
    for (int i = 0; i < V; i++) CHECK_EQ_F(out[i], (i == 2 || i == 5 || i == 7) ? x[i] : -INFINITY);
    smp_result_t r;
    CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), 0);
    CHECK_EQ_I(r.token, 2);
    smp_state_free(&st);
    /* random sampling never leaves the allowed set */
    p = params(5.0, 9);
    p.has_allowed_token_ids = true;
    p.allowed_token_ids = allowed;
    p.n_allowed_token_ids = 3;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 1000, NULL, 0, NULL), 0);
    for (int n = 0; n < 1000; n++) {
        CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), 0);
        CHECK(r.token == 2 || r.token == 5 || r.token == 7);
    }
    smp_state_free(&st);
    smp_workspace_destroy(&ws);
}

static void t_min_tokens(void) {
    enum { V = 5 };
    float x[V] = {0, 1, 2, 9, 8}; /* 3 = EOS is the argmax, 4 = stop id */
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_RAW);
    smp_params_t p = params(0.0, 1);
    int32_t stop[] = {4}, eos[] = {3};
    p.stop_token_ids = stop;
    p.n_stop_token_ids = 1;
    p.min_tokens = 3;
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 8, eos, 1, NULL), 0);
    smp_result_t r;
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), 0);
        CHECK_EQ_I(r.token, 2);
    }
    CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), 0);
    CHECK_EQ_I(r.token, 3);
    smp_state_free(&st);
    /* ignore_eos: EOS is not a stop id, only the stop token is masked */
    p.ignore_eos = true;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 8, eos, 1, NULL), 0);
    CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), 0);
    CHECK_EQ_I(r.token, 3);
    smp_state_free(&st);
    smp_workspace_destroy(&ws);
}

static void t_seed(void) {
    enum { V = 500, N = 64 };
    static float x[V];
    fill_random(x, V, 3, 2);
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_RAW);
    int32_t a[N], b[N], c[N], d[N], e[N];
    smp_rng_t eng;
    smp_rng_seed(&eng, 42);
    int32_t *outs[5] = {a, b, c, d, e};
    for (int run = 0; run < 5; run++) {
        smp_params_t p = params(1.0, run == 2 ? 8 : 7);
        if (run >= 3) p.has_seed = false; /* engine generator */
        smp_state_t st;
        CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, N, NULL, 0, &eng), 0);
        smp_result_t r;
        for (int n = 0; n < N; n++) {
            CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), 0);
            outs[run][n] = r.token;
        }
        smp_state_free(&st);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    CHECK(memcmp(d, e, sizeof d) != 0);
    /* unseeded without an engine generator is an error */
    smp_params_t p = params(1.0, 0);
    p.has_seed = false;
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 1, NULL, 0, NULL), -EINVAL);
    /* the RNG is xoshiro256**: reference output for state {1, 2, 3, 4} */
    smp_rng_t rr = {{1, 2, 3, 4}};
    CHECK_EQ_I(smp_rng_next(&rr), 11520);
    CHECK_EQ_I(smp_rng_next(&rr), 0);
    CHECK_EQ_I(smp_rng_next(&rr), 1509978240);
    smp_workspace_destroy(&ws);
}

static void t_nan(void) {
    enum { V = 6 };
    float x[V] = {1, NAN, 3, NAN, 2, 0};
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_RAW);
    smp_params_t p = params(2.0, 3);
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 500, NULL, 0, NULL), 0);
    smp_result_t r;
    for (int n = 0; n < 500; n++) {
        CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), 0);
        CHECK_EQ_I(r.n_nan, 2);
        CHECK(r.token != 1 && r.token != 3);
    }
    smp_state_free(&st);
    for (int i = 0; i < V; i++) x[i] = NAN;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 1, NULL, 0, NULL), 0);
    CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), -EDOM);
    CHECK_EQ_I(r.n_nan, V);
    smp_state_free(&st);
    smp_workspace_destroy(&ws);
}

static void t_logprobs(void) {
    enum { V = 3000 };
    static float x[V];
    fill_random(x, V, 11, 8);
    x[10] = x[20] = 100; /* tie at the top: lower id first */
    double m = 100, z = 0;
    for (int i = 0; i < V; i++) z += exp((double)x[i] - m);
    double lse = m + log(z);
    smp_workspace_t *ws = smp_workspace_new(V, 2, SMP_LOGPROBS_RAW);
    smp_params_t p = params(0.8, 17);
    p.logprobs = 5;
    p.repetition_penalty = 1.3; /* raw mode ignores processing */
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 4, NULL, 0, NULL), 0);
    smp_result_t r;
    CHECK_EQ_I(smp_sample(ws, 1, &p, &st, x, V, &r), 0);
    CHECK_NEAR(r.logprob, x[r.token] - lse, 1e-5);
    int rank = 0;
    for (int i = 0; i < V; i++) rank += x[i] >= x[r.token];
    CHECK_EQ_I(r.rank, rank);
    CHECK_EQ_I(r.n_top, 5);
    CHECK_EQ_I(r.top_ids[0], 10);
    CHECK_EQ_I(r.top_ids[1], 20);
    for (int i = 0; i < 5; i++) {
        CHECK_NEAR(r.top_logprobs[i], x[r.top_ids[i]] - lse, 1e-5);
        if (i) CHECK(x[r.top_ids[i]] <= x[r.top_ids[i - 1]]);
    }
    smp_state_free(&st);
    /* prompt-logprob helper */
    CHECK_EQ_I(smp_token_logprobs(ws, 0, x, V, 7, 20, &r), 0);
    CHECK_NEAR(r.logprob, x[7] - lse, 1e-5);
    CHECK_EQ_I(r.n_top, 20);
    CHECK_EQ_I(smp_token_logprobs(ws, 0, x, V, 7, 21, &r), -EINVAL);
    CHECK_EQ_I(smp_token_logprobs(ws, 2, x, V, 7, 1, &r), -EINVAL);
    smp_workspace_destroy(&ws);
}

static void t_logprobs_processed(void) {
    enum { V = 50 };
    float x[V];
    fill_random(x, V, 5, 3);
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_PROCESSED);
    smp_params_t p = params(0.5, 4);
    p.top_k = 4;
    p.logprobs = 6;
    smp_state_t st;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 4, NULL, 0, NULL), 0);
    int32_t ids[V];
    float probs[V];
    int64_t n;
    CHECK_EQ_I(smp_kept_set(ws, 0, &p, &st, x, V, ids, probs, V, &n), 0);
    CHECK_EQ_I(n, 4);
    smp_result_t r;
    CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), 0);
    CHECK_EQ_I(r.n_top, 6);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_I(r.top_ids[i], ids[i]);
        CHECK_NEAR(r.top_logprobs[i], log(probs[i]), 1e-5);
    }
    CHECK(r.top_logprobs[4] == -INFINITY && r.top_logprobs[5] == -INFINITY);
    smp_state_free(&st);
    smp_workspace_destroy(&ws);
}

static void expect_invalid(smp_params_t p, int64_t V, const char *param, const char *msg) {
    char err[256];
    const char *name = NULL;
    CHECK_EQ_I(smp_params_validate(&p, V, err, sizeof err, &name), -EINVAL);
    CHECK_STR(err, msg);
    CHECK_STR(name, param);
}

static void t_validate(void) {
    smp_params_t d;
    smp_params_default(&d, NULL);
    char err[256];
    CHECK_EQ_I(smp_params_validate(&d, 100, err, sizeof err, NULL), 0);
    smp_params_t p = d;
    p.temperature = -0.5;
    expect_invalid(p, 100, "temperature", "temperature must be non-negative, got -0.5.");
    p = d;
    p.temperature = -1e-5;
    expect_invalid(p, 100, "temperature", "temperature must be non-negative, got -1e-05.");
    p = d;
    p.top_p = 0;
    expect_invalid(p, 100, "top_p", "top_p must be in (0, 1], got 0.0.");
    p.top_p = 1.1;
    expect_invalid(p, 100, "top_p", "top_p must be in (0, 1], got 1.1.");
    p = d;
    p.top_k = -2;
    expect_invalid(p, 100, "top_k", "top_k must be 0 (disable), or at least 1, got -2.");
    p = d;
    p.min_p = 1.5;
    expect_invalid(p, 100, "min_p", "min_p must be in [0, 1], got 1.5.");
    p = d;
    p.repetition_penalty = 0;
    expect_invalid(p, 100, "repetition_penalty", "repetition_penalty must be greater than zero, got 0.0.");
    p = d;
    p.presence_penalty = 2.5;
    expect_invalid(p, 100, "presence_penalty", "presence_penalty must be in [-2, 2], got 2.5.");
    p = d;
    p.frequency_penalty = -100;
    expect_invalid(p, 100, "frequency_penalty", "frequency_penalty must be in [-2, 2], got -100.0.");
    p = d;
    p.logprobs = 21;
    expect_invalid(p, 100, "logprobs", "Requested sample logprobs of 21, which is greater than max allowed: 20");
    p.logprobs = -1;
    expect_invalid(p, 100, "logprobs", "Requested sample logprobs of 100, which is greater than max allowed: 20");
    CHECK_EQ_I(smp_params_validate(&p, 20, err, sizeof err, NULL), 0);
    p = d;
    p.prompt_logprobs = 30;
    expect_invalid(p, 100, "prompt_logprobs", "Requested prompt logprobs of 30, which is greater than max allowed: 20");
    p = d;
    p.has_max_tokens = true;
    p.max_tokens = 0;
    expect_invalid(p, 100, "max_tokens", "max_tokens must be at least 1, got 0.");
    p.max_tokens = 5;
    p.min_tokens = 6;
    expect_invalid(p, 100, "min_tokens", "min_tokens must be less than or equal to max_tokens=5, got 6.");
    p = d;
    smp_bias_t b[3] = {{1, 1}, {100, 2}, {-3, 1}};
    p.logit_bias = b;
    p.n_logit_bias = 3;
    expect_invalid(p, 100, "logit_bias",
                   "token_id(s) [100, -3] in logit_bias contain out-of-vocab token ids. Vocabulary size: 100");
    p = d;
    p.has_allowed_token_ids = true;
    expect_invalid(p, 100, "allowed_token_ids", "allowed_token_ids is not None and empty!");
    int32_t al[2] = {3, 100};
    p.allowed_token_ids = al;
    p.n_allowed_token_ids = 2;
    expect_invalid(p, 100, "allowed_token_ids", "allowed_token_ids contains out-of-vocab token id!");
    p = d;
    p.temperature = 1e16;
    CHECK_EQ_I(smp_params_validate(&p, 100, err, sizeof err, NULL), 0);
    p.top_p = 1e16;
    expect_invalid(p, 100, "top_p", "top_p must be in (0, 1], got 1e+16.");
    p.top_p = 123456.75;
    expect_invalid(p, 100, "top_p", "top_p must be in (0, 1], got 123456.75.");
}

static void t_normalize(void) {
    smp_params_t p;
    mcfg_gen_t g;
    mcfg_gen_defaults(&g);
    g.temperature = 0.6f;
    g.has_temperature = true;
    g.top_k = 20;
    g.has_top_k = true;
    smp_params_default(&p, &g);
    CHECK_NEAR(p.temperature, 0.6, 1e-7);
    CHECK_EQ_I(p.top_k, 20);
    CHECK_EQ_F(p.top_p, 1.0);
    CHECK_EQ_I(p.logprobs, SMP_LOGPROBS_NONE);
    CHECK(!p.has_max_tokens);
    g.max_new_tokens = 64;
    g.has_max_new_tokens = true;
    smp_params_default(&p, &g);
    CHECK(p.has_max_tokens);
    CHECK_EQ_I(p.max_tokens, 64);
    p.temperature = 0.001;
    smp_params_normalize(&p);
    CHECK_EQ_F(p.temperature, 0.01);
    CHECK(!smp_params_is_greedy(&p));
    p.temperature = 0;
    p.top_p = 0.5;
    p.min_p = 0.2;
    smp_params_normalize(&p);
    CHECK(smp_params_is_greedy(&p));
    CHECK_EQ_I(p.top_k, 0);
    CHECK_EQ_F(p.top_p, 1.0);
    CHECK_EQ_F(p.min_p, 0.0);
    p.temperature = 1;
    p.top_k = -1;
    smp_params_normalize(&p);
    CHECK_EQ_I(p.top_k, 0);
    /* workspace argument checks */
    CHECK(smp_workspace_new(0, 1, SMP_LOGPROBS_RAW) == NULL);
    CHECK(smp_workspace_new(10, 0, SMP_LOGPROBS_RAW) == NULL);
    smp_workspace_t *ws = smp_workspace_new(10, 1, SMP_LOGPROBS_RAW);
    float x[11] = {0};
    smp_state_t st;
    smp_params_default(&p, NULL);
    p.has_seed = true;
    CHECK_EQ_I(smp_state_init(&st, &p, NULL, 0, 1, NULL, 0, NULL), 0);
    smp_result_t r;
    CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, 11, &r), -EINVAL);
    CHECK_EQ_I(smp_sample(ws, 1, &p, &st, x, 10, &r), -EINVAL);
    smp_state_free(&st);
    smp_state_free(&st); /* idempotent */
    smp_workspace_destroy(&ws);
    smp_workspace_destroy(&ws);
}

int main(int argc, char **argv) {
    static const mtest_case_t cases[] = {
        {"greedy", t_greedy},
        {"topk1", t_topk1},
        {"temperature", t_temperature},
        {"topp-large", t_topp_large},
        {"topk-ties", t_topk_ties},
        {"min-p", t_min_p},
        {"penalties", t_penalties},
        {"bias-allowed", t_bias_allowed},
        {"min-tokens", t_min_tokens},
        {"seed", t_seed},
        {"nan", t_nan},
        {"logprobs", t_logprobs},
        {"logprobs-processed", t_logprobs_processed},
        {"validate", t_validate},
        {"normalize", t_normalize},
    };
    return mtest_main(cases, sizeof cases / sizeof cases[0], argc, argv);
}
