/* Engine-side metrics: every series exists at 0 from the start with vLLM's
 * exact names and HELP; a step records gauges, counter increments (from
 * cumulative stats) and the iteration-tokens histogram; gauges of a dead
 * engine vanish while its counters stay. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "eng_metrics.h"


static char *scrape(const char *dir) {
    shm_collector_t *c;
    shm_collector_opts_t o = {.dir = dir};
    static shm_buf_t b;
    b.len = 0;
    if (shm_collector_new(&o, &c) || shm_collector_scrape(c, SHM_FORMAT_TEXT, NULL, 0, &b, NULL)) return "";
    shm_collector_destroy(&c);
    return b.data;
}

#define HAS(s, line)                                                    \
    do {                                                                \
        if (!strstr((s), (line))) {                                     \
            fprintf(stderr, "%s:%d: missing: %s\n", __FILE__, __LINE__, line); \
            failures++;                                                 \
        }                                                               \
    } while (0)

int main(void) {
    char dir[] = "/tmp/cvllm-engm-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    shm_registry_t *r;
    shm_registry_opts_t ro = {.dir = dir, .process_id = "501"};
    CHECK(shm_registry_new(&ro, &r) == 0);
    eng_metrics_t *m;
    CHECK(eng_metrics_new(r, "tiny", 1, &m) == 0);
    char *s = scrape(dir);
    HAS(s, "# HELP vllm:num_requests_running Number of requests in model execution batches.\n"
           "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{engine=\"1\",model_name=\"tiny\"} 0.0\n");
    HAS(s, "vllm:num_requests_waiting_by_reason{engine=\"1\",model_name=\"tiny\",reason=\"capacity\"} 0.0\n");
    HAS(s, "vllm:num_requests_waiting_by_reason{engine=\"1\",model_name=\"tiny\",reason=\"deferred\"} 0.0\n");
    HAS(s, "# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total{engine=\"1\",model_name=\"tiny\"} 0.0\n");
    HAS(s, "# HELP vllm:num_preemptions_total Cumulative number of preemption from the engine.\n");
    HAS(s, "vllm:iteration_tokens_total_bucket{engine=\"1\",le=\"16384.0\",model_name=\"tiny\"} 0.0\n");
    HAS(s, "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n");

    eng_metrics_stats_t st = {.num_running = 3, .num_waiting = 2, .kv_usage = 0.25, .prefix_queries = 96,
                              .prefix_hits = 32, .preemptions = 1};
    eng_metrics_step(m, &st, 40);
    st = (eng_metrics_stats_t){.num_running = 4, .num_waiting = 0, .kv_usage = 0.5, .prefix_queries = 100,
                               .prefix_hits = 32, .preemptions = 3};
    eng_metrics_step(m, &st, 4);
    eng_metrics_step(m, &st, -1); /* a step without outputs: no observation */
    s = scrape(dir);
    HAS(s, "vllm:num_requests_running{engine=\"1\",model_name=\"tiny\"} 4.0\n");
    HAS(s, "vllm:num_requests_waiting{engine=\"1\",model_name=\"tiny\"} 0.0\n");
    HAS(s, "vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"tiny\"} 0.5\n");
    HAS(s, "vllm:prefix_cache_queries_total{engine=\"1\",model_name=\"tiny\"} 100.0\n");
    HAS(s, "vllm:prefix_cache_hits_total{engine=\"1\",model_name=\"tiny\"} 32.0\n");
    HAS(s, "vllm:num_preemptions_total{engine=\"1\",model_name=\"tiny\"} 3.0\n");
    HAS(s, "vllm:iteration_tokens_total_bucket{engine=\"1\",le=\"8.0\",model_name=\"tiny\"} 1.0\n");
    HAS(s, "vllm:iteration_tokens_total_count{engine=\"1\",model_name=\"tiny\"} 2.0\n");
    HAS(s, "vllm:iteration_tokens_total_sum{engine=\"1\",model_name=\"tiny\"} 44.0\n");
    /* the engine dies: gauges go, counters stay */
    eng_metrics_destroy(&m);
    shm_registry_destroy(&r);
    CHECK(shm_mark_process_dead(dir, "501") == 0);
    s = scrape(dir);
    CHECK(!strstr(s, "vllm:num_requests_running{"));
    HAS(s, "vllm:num_preemptions_total{engine=\"1\",model_name=\"tiny\"} 3.0\n");
    shm_dir_remove(dir);
    printf("%s\n", failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}
