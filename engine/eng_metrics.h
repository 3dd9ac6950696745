/* eng_metrics: the metrics an engine process records itself, into its own
 * shm/ files, with vLLM's names, HELP strings, labels (model_name, engine),
 * buckets and meanings (docs: ../shared/reference/vllm-metrics.md §2, §5):
 *
 *   vllm:num_requests_running, vllm:num_requests_waiting,
 *   vllm:num_requests_waiting_by_reason{reason=capacity|deferred},
 *   vllm:kv_cache_usage_perc                      gauges, livemostrecent
 *   vllm:prefix_cache_queries, vllm:prefix_cache_hits, vllm:num_preemptions
 *                                                 counters
 *   vllm:iteration_tokens_total                   histogram
 *
 * Gauges use livemostrecent (vLLM: mostrecent) so that a dead engine's gauges
 * disappear with mark_process_dead while its counters persist. Every series
 * exists from startup with value 0, as vLLM pre-creates them.
 *
 * Not thread-safe: the engine's step loop owns it (it records with the
 * single-writer shm forms).
 */
#ifndef CVLLM_ENGINE_METRICS_H
#define CVLLM_ENGINE_METRICS_H

#include <stdint.h>

#include "shm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct eng_metrics eng_metrics_t;

/* Scheduler state after a step. Counters are cumulative since the engine
 * started; the module records the increments. */
typedef struct {
    int32_t num_running;
    int32_t num_waiting;          /* waiting for capacity */
    int32_t num_waiting_deferred; /* deferred by transient constraints */
    double kv_usage;              /* 0..1 */
    uint64_t prefix_queries;      /* tokens looked up in the prefix cache */
    uint64_t prefix_hits;         /* of those, tokens found */
    uint64_t preemptions;
} eng_metrics_stats_t;

/* Registers the families in reg and creates every series at 0 (the gauges
 * set to 0, so they are visible from the start). Returns 0 and sets *out
 * (caller owns it; eng_metrics_destroy), or a negative code from shm. */
int eng_metrics_new(shm_registry_t *reg, const char *model_name, int engine_index, eng_metrics_t **out);
void eng_metrics_destroy(eng_metrics_t **m);

/* The engine's cache configuration, for vllm:cache_config_info (an info-style
 * gauge set to 1, labelled with every configuration value and the engine
 * index; no model_name, as in vLLM). */
typedef struct {
    int block_size;
    int enable_prefix_caching;
    double gpu_memory_utilization;
    int64_t num_gpu_blocks;
    int64_t num_gpu_blocks_override; /* 0: None */
    const char *cache_dtype;         /* "auto" */
} eng_cache_config_t;

/* Registers and sets vllm:cache_config_info. Returns 0 or a shm code. */
int eng_metrics_cache_config(shm_registry_t *reg, int engine_index, const eng_cache_config_t *c);

/* Records one step: gauges from st, counter increments since the last call,
 * and, when iteration_tokens >= 0 (the step produced outputs), one
 * vllm:iteration_tokens_total observation (vLLM: prompt tokens of requests
 * that got their first token in this step plus tokens generated). */
void eng_metrics_step(eng_metrics_t *m, const eng_metrics_stats_t *st, int64_t iteration_tokens);

#ifdef __cplusplus
}
#endif
#endif
