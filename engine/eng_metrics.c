/* Engine-side vLLM metrics (see eng_metrics.h). Handles are resolved once in
 * eng_metrics_new; eng_metrics_step only stores into the mapped slots. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "eng_metrics.h"

struct eng_metrics {
    shm_metric_t *running, *waiting, *by_capacity, *by_deferred, *kv_usage;
    shm_metric_t *queries, *hits, *preemptions, *iteration_tokens;
    uint64_t last_queries, last_hits, last_preemptions;
};

static const double iteration_buckets[] = {1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};

static int fam(shm_registry_t *r, shm_type_t t, const char *name, const char *help, int by_reason,
               const char *const *values, shm_metric_t **out) {
    const char *names[] = {"model_name", "engine", "reason"};
    shm_family_desc_t d = {.type = t, .name = name, .help = help, .label_names = names,
                           .n_labels = by_reason ? 3 : 2, .mode = SHM_MODE_LIVEMOSTRECENT};
    if (t == SHM_HISTOGRAM) {
        d.buckets = iteration_buckets;
        d.n_buckets = sizeof iteration_buckets / sizeof iteration_buckets[0];
    }
    shm_family_t *f;
    int rc = shm_family_new(r, &d, &f);
    return rc ? rc : shm_metric_get(f, values, out);
}

int eng_metrics_new(shm_registry_t *r, const char *model_name, int engine_index, eng_metrics_t **out) {
    eng_metrics_t *m = calloc(1, sizeof *m);
    if (!m) return -ENOMEM;
    char eng[16];
    snprintf(eng, sizeof eng, "%d", engine_index);
    const char *v[] = {model_name, eng, "capacity"}, *vd[] = {model_name, eng, "deferred"};
    static const char by_reason_help[] =
        "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; "
        "'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all "
        "reasons equals vllm:num_requests_waiting.";
    int rc = fam(r, SHM_GAUGE, "vllm:num_requests_running", "Number of requests in model execution batches.", 0, v,
                 &m->running);
    if (!rc) rc = fam(r, SHM_GAUGE, "vllm:num_requests_waiting", "Number of requests waiting to be processed.", 0, v,
                      &m->waiting);
    if (!rc) rc = fam(r, SHM_GAUGE, "vllm:num_requests_waiting_by_reason", by_reason_help, 1, v, &m->by_capacity);
    if (!rc) rc = fam(r, SHM_GAUGE, "vllm:num_requests_waiting_by_reason", by_reason_help, 1, vd, &m->by_deferred);
    if (!rc) rc = fam(r, SHM_GAUGE, "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", 0, v,
                      &m->kv_usage);
    if (!rc) rc = fam(r, SHM_COUNTER, "vllm:prefix_cache_queries",
                      "Prefix cache queries, in terms of number of queried tokens.", 0, v, &m->queries);
    if (!rc) rc = fam(r, SHM_COUNTER, "vllm:prefix_cache_hits", "Prefix cache hits, in terms of number of cached tokens.",
                      0, v, &m->hits);
    if (!rc) rc = fam(r, SHM_COUNTER, "vllm:num_preemptions", "Cumulative number of preemption from the engine.", 0, v,
                      &m->preemptions);
    if (!rc) rc = fam(r, SHM_HISTOGRAM, "vllm:iteration_tokens_total", "Histogram of number of tokens per engine_step.",
                      0, v, &m->iteration_tokens);
    if (rc) {
        free(m);
        return rc;
    }
    eng_metrics_stats_t zero = {0};
    eng_metrics_step(m, &zero, -1);
    *out = m;
    return 0;
}

void eng_metrics_destroy(eng_metrics_t **pp) {
    free(*pp);
    *pp = NULL;
}

void eng_metrics_step(eng_metrics_t *m, const eng_metrics_stats_t *st, int64_t iteration_tokens) {
    shm_gauge_set(m->running, st->num_running);
    shm_gauge_set(m->waiting, st->num_waiting + st->num_waiting_deferred);
    shm_gauge_set(m->by_capacity, st->num_waiting);
    shm_gauge_set(m->by_deferred, st->num_waiting_deferred);
    shm_gauge_set(m->kv_usage, st->kv_usage);
    if (st->prefix_queries > m->last_queries) shm_counter_inc_local(m->queries, (double)(st->prefix_queries - m->last_queries));
    if (st->prefix_hits > m->last_hits) shm_counter_inc_local(m->hits, (double)(st->prefix_hits - m->last_hits));
    if (st->preemptions > m->last_preemptions)
        shm_counter_inc_local(m->preemptions, (double)(st->preemptions - m->last_preemptions));
    m->last_queries = st->prefix_queries;
    m->last_hits = st->prefix_hits;
    m->last_preemptions = st->preemptions;
    if (iteration_tokens >= 0) shm_histogram_observe_local(m->iteration_tokens, (double)iteration_tokens);
}

int eng_metrics_cache_config(shm_registry_t *r, int engine_index, const eng_cache_config_t *c) {
    /* vLLM labels the gauge with str() of every CacheConfig attribute; the
     * attribute set changes between vLLM versions, so this is the subset
     * that means something for cvllm, in vLLM's spelling ("True", "None"). */
    static const char *const names[] = {"block_size", "cache_dtype", "enable_prefix_caching", "engine",
                                        "gpu_memory_utilization", "num_cpu_blocks", "num_gpu_blocks",
                                        "num_gpu_blocks_override", "prefix_caching_hash_algo", "sliding_window"};
    char bs[16], eng[16], gmu[32], ngb[32], ovr[32];
    snprintf(bs, sizeof bs, "%d", c->block_size);
    snprintf(eng, sizeof eng, "%d", engine_index);
    shm_format_double(c->gpu_memory_utilization, gmu); /* Python str(float) */
    snprintf(ngb, sizeof ngb, "%lld", (long long)c->num_gpu_blocks);
    if (c->num_gpu_blocks_override) snprintf(ovr, sizeof ovr, "%lld", (long long)c->num_gpu_blocks_override);
    else snprintf(ovr, sizeof ovr, "None");
    const char *values[] = {bs, c->cache_dtype ? c->cache_dtype : "auto", c->enable_prefix_caching ? "True" : "False",
                            eng, gmu, "None", ngb, ovr, "cvllm-hash64", "None"};
    shm_family_desc_t d = {.type = SHM_GAUGE, .name = "vllm:cache_config_info",
                           .help = "Information of the LLMEngine CacheConfig", .label_names = names,
                           .n_labels = sizeof names / sizeof names[0], .mode = SHM_MODE_LIVEMOSTRECENT};
    shm_family_t *f;
    shm_metric_t *m;
    int rc = shm_family_new(r, &d, &f);
    if (!rc) rc = shm_metric_get(f, values, &m);
    if (!rc) shm_gauge_set(m, 1.0);
    return rc;
}
