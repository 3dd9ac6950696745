/* Request-level vLLM metrics (see fe_reqm.h). Handles for every engine are
 * resolved once; recording is single-writer stores into the mapped files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_reqm.h"

#define N_REASONS 5
#define N_SOURCES 3

typedef struct {
    shm_metric_t *prompt, *by_source[N_SOURCES], *cached, *gen, *success[N_REASONS];
    shm_metric_t *ttft, *itl, *e2e, *queue, *inference, *prefill, *decode, *tpot;
    shm_metric_t *req_prompt, *req_gen, *max_gen, *params_n, *params_max, *kv_computed;
} series_t;

struct fe_reqm {
    int n_engines;
    series_t *s;
};

static const char *const reasons[N_REASONS] = {"stop", "length", "abort", "error", "repetition"};
static const char *const sources[N_SOURCES] = {"local_compute", "local_cache_hit", "external_kv_transfer"};

static const double ttft_b[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                                1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
static const double itl_b[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5,
                               0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
static const double req_b[] = {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,   15.0,  20.0,
                               30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
static const double n_b[] = {1, 2, 5, 10, 20};

int fe_reqm_buckets_125(int64_t max, double *b, int cap) {
    int n = 0;
    for (int64_t p = 1; n < cap; p *= 10) {
        static const int m[] = {1, 2, 5};
        for (int k = 0; k < 3; k++) {
            int64_t v = m[k] * p;
            if (v > max || n == cap) return n;
            b[n++] = (double)v;
        }
    }
    return n;
}

typedef struct {
    shm_registry_t *r;
    const char *model;
    char eng[16];
    const double *len_b;
    int n_len;
} ctx_t;

static int get(ctx_t *c, shm_type_t t, const char *name, const char *help, const char *extra_name,
               const char *extra_value, const double *b, int nb, shm_metric_t **out) {
    const char *names[] = {"model_name", "engine", extra_name};
    const char *values[] = {c->model, c->eng, extra_value};
    shm_family_desc_t d = {.type = t, .name = name, .help = help, .label_names = names,
                           .n_labels = extra_name ? 3 : 2, .buckets = b, .n_buckets = (size_t)nb};
    shm_family_t *f;
    int rc = shm_family_new(c->r, &d, &f);
    return rc ? rc : shm_metric_get(f, values, out);
}

static int engine_series(ctx_t *c, series_t *s) {
    int rc = 0;
#define C(name, help, out) \
    if (!rc) rc = get(c, SHM_COUNTER, name, help, NULL, NULL, NULL, 0, out)
#define H(name, help, b, nb, out) \
    if (!rc) rc = get(c, SHM_HISTOGRAM, name, help, NULL, NULL, b, nb, out)
    C("vllm:prompt_tokens", "Number of prefill tokens processed.", &s->prompt);
    for (int i = 0; i < N_SOURCES && !rc; i++)
        rc = get(c, SHM_COUNTER, "vllm:prompt_tokens_by_source", "Number of prompt tokens by source.", "source",
                 sources[i], NULL, 0, &s->by_source[i]);
    C("vllm:prompt_tokens_cached", "Number of cached prompt tokens (local + external).", &s->cached);
    C("vllm:generation_tokens", "Number of generation tokens processed.", &s->gen);
    for (int i = 0; i < N_REASONS && !rc; i++)
        rc = get(c, SHM_COUNTER, "vllm:request_success", "Count of successfully processed requests.",
                 "finished_reason", reasons[i], NULL, 0, &s->success[i]);
    H("vllm:request_prompt_tokens", "Number of prefill tokens processed.", c->len_b, c->n_len, &s->req_prompt);
    H("vllm:request_generation_tokens", "Number of generation tokens processed.", c->len_b, c->n_len, &s->req_gen);
    H("vllm:request_max_num_generation_tokens", "Histogram of maximum number of requested generation tokens.",
      c->len_b, c->n_len, &s->max_gen);
    H("vllm:request_params_n", "Histogram of the n request parameter.", n_b, 5, &s->params_n);
    H("vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", c->len_b, c->n_len,
      &s->params_max);
    H("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", ttft_b, 22, &s->ttft);
    H("vllm:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", itl_b, 19, &s->itl);
    H("vllm:request_time_per_output_token_seconds", "Histogram of time_per_output_token_seconds per request.",
      itl_b, 19, &s->tpot);
    H("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", req_b, 21, &s->e2e);
    H("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", req_b, 21,
      &s->queue);
    H("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", req_b, 21,
      &s->inference);
    H("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", req_b, 21,
      &s->prefill);
    H("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", req_b, 21,
      &s->decode);
    H("vllm:request_prefill_kv_computed_tokens",
      "Histogram of new KV tokens computed during prefill (excluding cached tokens).", c->len_b, c->n_len,
      &s->kv_computed);
#undef C
#undef H
    return rc;
}

int fe_reqm_new(shm_registry_t *reg, const char *model_name, int n_engines, int64_t max_model_len,
                fe_reqm_t **out) {
    if (n_engines < 1 || n_engines > 1024) return -EINVAL;
    fe_reqm_t *m = calloc(1, sizeof *m);
    if (!m || !(m->s = calloc((size_t)n_engines, sizeof *m->s))) {
        free(m);
        return -ENOMEM;
    }
    m->n_engines = n_engines;
    double len_b[64];
    ctx_t c = {.r = reg, .model = model_name, .len_b = len_b,
               .n_len = fe_reqm_buckets_125(max_model_len, len_b, 64)};
    int rc = 0;
    for (int e = 0; e < n_engines && !rc; e++) {
        snprintf(c.eng, sizeof c.eng, "%d", e);
        rc = engine_series(&c, &m->s[e]);
    }
    if (rc) {
        fe_reqm_destroy(&m);
        return rc;
    }
    *out = m;
    return 0;
}

void fe_reqm_destroy(fe_reqm_t **pp) {
    fe_reqm_t *m = *pp;
    if (!m) return;
    free(m->s);
    free(m);
    *pp = NULL;
}

static series_t *at(fe_reqm_t *m, int engine) {
    return engine >= 0 && engine < m->n_engines ? &m->s[engine] : NULL;
}

void fe_reqm_output(fe_reqm_t *m, int engine, fe_reqm_req_t *r, const wire_output_t *o, double now) {
    series_t *s = at(m, engine);
    if (!s) return;
    uint32_t n = o->new_tokens.n;
    if (!r->first_seen && n) {
        /* the request's first output: its whole prompt counts once, by source */
        r->first_seen = 1;
        r->cached = o->num_cached_tokens;
        shm_histogram_observe_local(s->ttft, now - r->arrival);
        shm_counter_inc_local(s->prompt, (double)r->prompt_len);
        shm_counter_inc_local(s->by_source[0], (double)(r->prompt_len - r->cached));
        shm_counter_inc_local(s->by_source[1], (double)r->cached);
        shm_counter_inc_local(s->cached, (double)r->cached);
    } else if (n) {
        /* one observation per output, not per token (vLLM) */
        shm_histogram_observe_local(s->itl, o->t_last_token - r->last_token_ts);
    }
    if (n) r->last_token_ts = o->t_last_token;
    r->generated += n;
    if (o->nan_logits) r->nan = 1;
    shm_counter_inc_local(s->gen, (double)n);
}

void fe_reqm_finish(fe_reqm_t *m, int engine, fe_reqm_req_t *r, int finish, const wire_output_t *o, double now) {
    series_t *s = at(m, engine);
    if (!s || finish < WIRE_FINISH_STOP || finish > WIRE_FINISH_ERROR) return;
    shm_counter_inc_local(s->success[finish - WIRE_FINISH_STOP], 1);
    double queue = o->t_scheduled - o->t_queued, prefill = o->t_first_token - o->t_scheduled,
           decode = o->t_last_token - o->t_first_token, inference = o->t_last_token - o->t_scheduled;
    if (!r->first_seen) prefill = decode = inference = 0; /* finished before any token (abort, error) */
    shm_histogram_observe_local(s->e2e, now - r->arrival);
    shm_histogram_observe_local(s->queue, o->t_scheduled > 0 ? queue : 0);
    shm_histogram_observe_local(s->prefill, prefill);
    shm_histogram_observe_local(s->decode, decode);
    shm_histogram_observe_local(s->inference, inference);
    shm_histogram_observe_local(s->tpot, r->generated > 1 ? decode / (double)(r->generated - 1) : 0);
    shm_histogram_observe_local(s->req_prompt, (double)r->prompt_len);
    shm_histogram_observe_local(s->req_gen, (double)r->generated);
    shm_histogram_observe_local(s->kv_computed, (double)(r->prompt_len - (r->cached > 0 ? r->cached : 0)));
    if (r->max_tokens) shm_histogram_observe_local(s->params_max, (double)r->max_tokens);
}

void fe_reqm_parent(fe_reqm_t *m, int engine, int n, int64_t max_generated) {
    series_t *s = at(m, engine);
    if (!s) return;
    shm_histogram_observe_local(s->params_n, n);
    shm_histogram_observe_local(s->max_gen, (double)max_generated);
}
