/* fe_reqm: the request-level vLLM metrics an API worker records (vLLM records
 * them in its frontend too), with vLLM's names, HELP strings, labels
 * (model_name, engine), buckets and definitions (vllm-metrics.md §2, §6, §7):
 *
 *   counters   vllm:prompt_tokens, vllm:prompt_tokens_by_source{source},
 *              vllm:prompt_tokens_cached, vllm:generation_tokens,
 *              vllm:request_success{finished_reason}
 *   histograms vllm:time_to_first_token_seconds, vllm:inter_token_latency_seconds,
 *              vllm:e2e_request_latency_seconds, vllm:request_queue_time_seconds,
 *              vllm:request_inference_time_seconds, vllm:request_prefill_time_seconds,
 *              vllm:request_decode_time_seconds,
 *              vllm:request_time_per_output_token_seconds,
 *              vllm:request_prompt_tokens, vllm:request_generation_tokens,
 *              vllm:request_max_num_generation_tokens, vllm:request_params_n,
 *              vllm:request_params_max_tokens, vllm:request_prefill_kv_computed_tokens
 *
 * Every series of every engine index exists from startup at 0, as vLLM
 * pre-creates them. Length histograms use build_1_2_5_buckets(max_model_len).
 *
 * Clocks: the frontend's times (arrival, receipt of an output) and the
 * engine's (queued, scheduled, first/last token) are CLOCK_MONOTONIC seconds
 * of one host; only differences within one clock are taken, as vLLM does.
 * Not thread-safe: one worker loop (single-writer shm forms).
 */
#ifndef CVLLM_FE_REQM_H
#define CVLLM_FE_REQM_H

#include <stdint.h>

#include "shm.h"
#include "wire.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fe_reqm fe_reqm_t;

/* Per (child) request state, zero-initialised by the caller. */
typedef struct {
    double arrival;        /* frontend monotonic seconds when the request arrived */
    double last_token_ts;  /* engine timestamp of the previous output */
    int64_t prompt_len;
    int64_t generated;
    int64_t cached;        /* prompt tokens served from the prefix cache */
    int64_t max_tokens;
    int first_seen;
    int nan;
} fe_reqm_req_t;

/* Registers the families in reg and pre-creates the series of engines
 * 0..n_engines-1. Returns 0 and sets *out (caller owns it; fe_reqm_destroy)
 * or a negative code from shm. */
int fe_reqm_new(shm_registry_t *reg, const char *model_name, int n_engines, int64_t max_model_len,
                fe_reqm_t **out);
void fe_reqm_destroy(fe_reqm_t **m);

/* One output of a request from engine `engine`, received at `now` (frontend
 * monotonic seconds): TTFT on the first, ITL on every later one, prompt and
 * generation token counters. */
void fe_reqm_output(fe_reqm_t *m, int engine, fe_reqm_req_t *r, const wire_output_t *o, double now);

/* The request finished (the engine's finish reason, or WIRE_FINISH_STOP for
 * a stop string the frontend found), with o its last output and `now` when it
 * was received. Not to be called for requests the client abandoned (vLLM does
 * not count those). */
void fe_reqm_finish(fe_reqm_t *m, int engine, fe_reqm_req_t *r, int finish, const wire_output_t *o, double now);

/* A parent request (n children) finished: vllm:request_params_n and
 * vllm:request_max_num_generation_tokens, once per parent. */
void fe_reqm_parent(fe_reqm_t *m, int engine, int n, int64_t max_generated);

/* build_1_2_5_buckets(max): 1, 2, 5, 10, 20, 50, ... up to and including max.
 * Writes at most cap bounds into b and returns how many. */
int fe_reqm_buckets_125(int64_t max, double *b, int cap);

#ifdef __cplusplus
}
#endif
#endif
