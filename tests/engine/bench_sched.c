/* Scheduler overhead per step with 256 running decode sequences: times
 * sched_schedule + sched_update (no model), prefix caching on, block 16.
 * Usage: bench_sched [steps] (default 20000). Target: < 50 us per step. */
#include "eng_sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 20000;
    enum { NSEQ = 256, PROMPT = 100 };
    if (steps < 1 || steps > 100000) steps = 20000;
    sched_config_t c = {
        .max_num_batched_tokens = 8192,
        .max_num_seqs = NSEQ,
        .max_model_len = PROMPT + steps + 64,
        .block_size = 16,
        .num_blocks = NSEQ * ((PROMPT + steps + 64) / 16 + 2),
        .max_requests = 2 * NSEQ,
        .enable_prefix_caching = true,
        .policy = SCHED_POLICY_FCFS,
    };
    sched_t *s = NULL;
    int rc = sched_new(&c, &s);
    if (rc) {
        fprintf(stderr, "sched_new: %s\n", sched_strerror(rc));
        return 1;
    }
    static int32_t prompt[PROMPT];
    static int32_t sampled[NSEQ];
    for (int i = 0; i < NSEQ; i++) {
        char id[32];
        snprintf(id, sizeof id, "bench-%d", i);
        for (int j = 0; j < PROMPT; j++) prompt[j] = i * PROMPT + j + 10;
        sched_req_params_t q = {.id = id, .prompt = prompt, .num_prompt = PROMPT, .max_tokens = steps + 8,
                                .eos_token_id = 2, .ignore_eos = true};
        if ((rc = sched_add(s, &q, NULL))) {
            fprintf(stderr, "sched_add: %s\n", sched_strerror(rc));
            return 1;
        }
    }
    /* Prefill step (8192 budget covers 256 x 100 tokens in ~4 steps). */
    int warm = 0;
    for (;;) {
        const sched_step_t *st = sched_schedule(s);
        for (int i = 0; i < st->num_items; i++) sampled[i] = 1000 + i;
        sched_update(s, st, sampled);
        warm++;
        sched_stats_t ss;
        sched_get_stats(s, &ss);
        if (ss.num_waiting == 0 && st->num_scheduled_tokens == NSEQ) break;
        if (warm > 100) return 1;
    }
    double t_sched = 0, t_upd = 0;
    long tokens = 0;
    /* Thread CPU time as well: on a loaded machine wall time includes time
     * the thread was not running. */
    double cpu0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    for (int k = 0; k < steps; k++) {
        double t0 = now_s();
        const sched_step_t *st = sched_schedule(s);
        double t1 = now_s();
        for (int i = 0; i < st->num_items; i++) sampled[i] = 1000 + (k + i) % 30000;
        double t2 = now_s();
        sched_update(s, st, sampled);
        double t3 = now_s();
        t_sched += t1 - t0;
        t_upd += t3 - t2;
        tokens += st->num_scheduled_tokens;
    }
    double cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    if (tokens != (long)steps * NSEQ) {
        fprintf(stderr, "unexpected token count %ld\n", tokens);
        return 1;
    }
    sched_stats_t ss;
    sched_get_stats(s, &ss);
    printf("bench_sched: %d running decode seqs, %d steps: schedule %.2f us + update %.2f us = %.2f us/step wall, "
           "%.2f us/step thread CPU (kv usage %.3f, preemptions %llu)\n",
           NSEQ, steps, t_sched / steps * 1e6, t_upd / steps * 1e6, (t_sched + t_upd) / steps * 1e6,
           cpu / steps * 1e6, ss.kv_usage, (unsigned long long)ss.num_preemptions);
    sched_destroy(&s);
    return 0;
}
