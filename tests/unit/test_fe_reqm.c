/* Request metrics: vLLM's own expectations (vllm-metrics.md §8.1: N
 * sequential requests of P prompt tokens and T output tokens) plus the
 * latency formulas of §6 on known timestamps, build_1_2_5_buckets, and every
 * series present at 0 from the start. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../check.h"
#include "fe_reqm.h"


static char *scrape(const char *dir) {
    static shm_buf_t b;
    b.len = 0;
    shm_collector_t *c;
    shm_collector_opts_t o = {.dir = dir};
    if (shm_collector_new(&o, &c) || shm_collector_scrape(c, SHM_FORMAT_TEXT, NULL, 0, &b, NULL)) return "";
    shm_collector_destroy(&c);
    return b.data;
}

static double value(const char *text, const char *series) {
    const char *p = strstr(text, series);
    if (!p) {
        fprintf(stderr, "missing series %s\n", series);
        failures++;
        return NAN;
    }
    return strtod(p + strlen(series) + 1, NULL);
}

#define L "{engine=\"0\",model_name=\"m\"}"

int main(void) {
    double b[64];
    int n = fe_reqm_buckets_125(1024, b, 64);
    CHECK(n == 10 && b[0] == 1 && b[9] == 1000);
    n = fe_reqm_buckets_125(100, b, 64);
    CHECK(n == 7 && b[6] == 100);
    n = fe_reqm_buckets_125(1048576, b, 64);
    CHECK(b[n - 1] == 1000000);

    char dir[] = "/tmp/cvllm-reqm-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    shm_registry_t *r;
    shm_registry_opts_t ro = {.dir = dir};
    CHECK(shm_registry_new(&ro, &r) == 0);
    fe_reqm_t *m;
    CHECK(fe_reqm_new(r, "m", 2, 1024, &m) == 0);
    char *t = scrape(dir);
    CHECK(value(t, "vllm:request_success_total{engine=\"1\",finished_reason=\"repetition\",model_name=\"m\"}") == 0);
    CHECK(value(t, "vllm:time_to_first_token_seconds_count{engine=\"1\",model_name=\"m\"}") == 0);
    CHECK(strstr(t, "vllm:request_prompt_tokens_bucket{engine=\"0\",le=\"1000.0\",model_name=\"m\"} 0.0\n") != NULL);

    enum { N = 10, P = 9, T = 10 };
    double clock = 100.0;
    for (int i = 0; i < N; i++) {
        fe_reqm_req_t st = {.arrival = clock, .prompt_len = P, .max_tokens = T};
        uint32_t tok = 7;
        wire_output_t o = {.new_tokens = {&tok, 1}, .t_queued = clock + 0.01, .t_scheduled = clock + 0.02,
                           .num_cached_tokens = i ? 8 : 0};
        for (int k = 0; k < T; k++) {
            o.t_first_token = clock + 0.1;
            o.t_last_token = clock + 0.1 + 0.05 * k;
            o.finish = k == T - 1 ? WIRE_FINISH_LENGTH : WIRE_FINISH_NONE;
            fe_reqm_output(m, 0, &st, &o, o.t_last_token + 0.001);
        }
        fe_reqm_finish(m, 0, &st, WIRE_FINISH_LENGTH, &o, o.t_last_token + 0.002);
        fe_reqm_parent(m, 0, 1, st.generated);
        clock += 10;
    }
    t = scrape(dir);
    CHECK(value(t, "vllm:time_to_first_token_seconds_count" L) == N);
    CHECK(value(t, "vllm:inter_token_latency_seconds_count" L) == N * (T - 1));
    CHECK(value(t, "vllm:e2e_request_latency_seconds_count" L) == N);
    CHECK(value(t, "vllm:request_queue_time_seconds_count" L) == N);
    CHECK(value(t, "vllm:request_prefill_time_seconds_count" L) == N);
    CHECK(value(t, "vllm:request_decode_time_seconds_count" L) == N);
    CHECK(value(t, "vllm:request_inference_time_seconds_count" L) == N);
    CHECK(value(t, "vllm:request_prompt_tokens_sum" L) == N * P);
    CHECK(value(t, "vllm:request_generation_tokens_sum" L) == N * T);
    CHECK(value(t, "vllm:request_params_n_count" L) == N);
    CHECK(value(t, "vllm:request_params_max_tokens_sum" L) == N * T);
    CHECK(value(t, "vllm:request_max_num_generation_tokens_sum" L) == N * T);
    CHECK(value(t, "vllm:prompt_tokens_total" L) == N * P);
    CHECK(value(t, "vllm:generation_tokens_total" L) == N * T);
    CHECK(value(t, "vllm:request_success_total{engine=\"0\",finished_reason=\"length\",model_name=\"m\"}") == N);
    /* cached tokens: 8 for 9 of the 10 requests */
    CHECK(value(t, "vllm:prompt_tokens_cached_total" L) == 72);
    CHECK(value(t, "vllm:prompt_tokens_by_source_total{engine=\"0\",model_name=\"m\",source=\"local_cache_hit\"}") == 72);
    CHECK(value(t, "vllm:prompt_tokens_by_source_total{engine=\"0\",model_name=\"m\",source=\"local_compute\"}") ==
          N * P - 72);
    CHECK(value(t, "vllm:request_prefill_kv_computed_tokens_sum" L) == N * P - 72);
    /* formulas: ttft = 0.101 - 0 per request; itl = 0.05; queue 0.01; prefill 0.08;
     * decode 0.45; inference 0.53; per-token 0.45/9 = 0.05; e2e 0.552 */
    CHECK(fabs(value(t, "vllm:time_to_first_token_seconds_sum" L) - N * 0.101) < 1e-9);
    CHECK(fabs(value(t, "vllm:inter_token_latency_seconds_sum" L) - N * (T - 1) * 0.05) < 1e-9);
    CHECK(fabs(value(t, "vllm:request_queue_time_seconds_sum" L) - N * 0.01) < 1e-9);
    CHECK(fabs(value(t, "vllm:request_prefill_time_seconds_sum" L) - N * 0.08) < 1e-9);
    CHECK(fabs(value(t, "vllm:request_decode_time_seconds_sum" L) - N * 0.45) < 1e-9);
    CHECK(fabs(value(t, "vllm:request_inference_time_seconds_sum" L) - N * 0.53) < 1e-9);
    CHECK(fabs(value(t, "vllm:request_time_per_output_token_seconds_sum" L) - N * 0.05) < 1e-9);
    CHECK(fabs(value(t, "vllm:e2e_request_latency_seconds_sum" L) - N * 0.552) < 1e-9);
    /* engine 1 saw nothing */
    CHECK(value(t, "vllm:generation_tokens_total{engine=\"1\",model_name=\"m\"}") == 0);
    fe_reqm_destroy(&m);
    shm_registry_destroy(&r);
    shm_dir_remove(dir);
    printf("%s\n", failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}
