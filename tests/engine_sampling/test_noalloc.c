/* sampling-noalloc: smp_sample / smp_state_append / smp_token_logprobs must
 * not allocate (style C7). Linked with -Wl,--wrap=malloc,... so every
 * allocation made by the engine library is counted; counting is switched on
 * only around the per-token calls. */
#include <errno.h>
#include <math.h>
#include <stddef.h>

#include "../model/mtest.h"
#include "sample.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);

static int counting, n_allocs;

void *__wrap_malloc(size_t n) {
    n_allocs += counting;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m) {
    n_allocs += counting;
    return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n) {
    n_allocs += counting;
    return __real_realloc(p, n);
}

static void t_noalloc(void) {
    enum { V = 20000 };
    static float x[V];
    for (int i = 0; i < V; i++) x[i] = (float)sin(i * 0.37) * 4.0f;
    smp_workspace_t *ws = smp_workspace_new(V, 1, SMP_LOGPROBS_PROCESSED);
    CHECK(ws != NULL);
    int32_t prompt[64], stop[2] = {5, 6}, eos[1] = {2};
    for (int i = 0; i < 64; i++) prompt[i] = i * 31;
    smp_bias_t b[1] = {{7, 2.0f}};
    struct { double T, top_p, min_p; int k; } cfg[] = {
        {0, 1, 0, 0}, {1, 1, 0, 0}, {0.7, 0.9, 0, 50}, {1, 0.999, 0, 0}, {1.2, 1, 0.1, 0}};
    for (unsigned c = 0; c < sizeof cfg / sizeof cfg[0]; c++) {
        smp_params_t p;
        smp_params_default(&p, NULL);
        p.temperature = cfg[c].T;
        p.top_p = cfg[c].top_p;
        p.min_p = cfg[c].min_p;
        p.top_k = cfg[c].k;
        p.has_seed = true;
        p.seed = (int64_t)c;
        p.repetition_penalty = 1.1;
        p.frequency_penalty = 0.3;
        p.logprobs = 5;
        p.min_tokens = 3;
        p.stop_token_ids = stop;
        p.n_stop_token_ids = 2;
        p.logit_bias = b;
        p.n_logit_bias = 1;
        smp_params_normalize(&p);
        smp_state_t st;
        CHECK_EQ_I(smp_state_init(&st, &p, prompt, 64, 40, eos, 1, NULL), 0);
        smp_result_t r;
        counting = 1;
        for (int n = 0; n < 20; n++) CHECK_EQ_I(smp_sample(ws, 0, &p, &st, x, V, &r), 0);
        CHECK_EQ_I(smp_token_logprobs(ws, 0, x, V, 3, 20, &r), 0);
        CHECK_EQ_I(smp_state_append(&st, 11), 0);
        counting = 0;
        CHECK_EQ_I(n_allocs, 0);
        smp_state_free(&st);
    }
    smp_workspace_destroy(&ws);
}

int main(int argc, char **argv) {
    static const mtest_case_t cases[] = {{"noalloc", t_noalloc}};
    return mtest_main(cases, 1, argc, argv);
}
