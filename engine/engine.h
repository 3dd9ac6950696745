/* engine: the engine process's step loop — receive requests over ZeroMQ,
 * schedule (eng_sched.h), run the model (a runner behind eng_runner_t),
 * sample (sample.h), send outputs batched per frontend, record the engine's
 * metrics (eng_metrics.h).
 *
 * One thread owns everything here. The loop blocks in ZeroMQ while no request
 * is waiting or running (no busy spin) and steps back to back otherwise.
 * Malformed or wrong-version frames are logged and dropped; the loop keeps
 * running. Device errors abort the process (the supervisor sees the engine
 * die); nothing else does.
 */
#ifndef CVLLM_ENGINE_ENGINE_H
#define CVLLM_ENGINE_ENGINE_H

#include <signal.h>
#include <stdint.h>

#include "eng_sched.h"
#include "model_config.h"
#include "shm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One sequence's share of a forward pass. */
typedef struct {
    const int32_t *tokens;   /* (n_tokens) input ids */
    int32_t n_tokens;
    int64_t start_pos;       /* position of tokens[0] */
    const int32_t *blocks;   /* block table: KV of positions [0, start_pos + n_tokens) */
    int32_t n_blocks;
    int want_logits;         /* 1: logits of the last token are needed */
} eng_seq_t;

/* The model runner as the loop sees it (the CPU and CUDA backends implement
 * it). forward computes one batch and writes one row of vocab_size logits per
 * sequence (its last token's; rows in sequence order) into logits; rows of
 * sequences without want_logits may be left unwritten. Returns 0 or a
 * negative code. */
typedef struct {
    void *ctx;
    int64_t vocab_size;
    int (*forward)(void *ctx, const eng_seq_t *seqs, int32_t n_seqs, float *logits);
} eng_runner_t;

typedef struct {
    const char *endpoint;          /* ROUTER endpoint to bind */
    int engine_index;
    const char *model_name;        /* served name: the model_name label */
    sched_config_t sched;
    const int32_t *eos_ids;        /* the model's EOS ids (the first is the request EOS) */
    int n_eos;
    const mcfg_gen_t *generation;  /* generation_config defaults, or NULL */
    eng_runner_t runner;
    shm_registry_t *metrics;       /* NULL: no metrics (--disable-log-stats) */
    uint64_t seed;                 /* engine RNG for unseeded requests */
    int log_level;                 /* 0 quiet, 1 info, 2 debug */
} eng_opts_t;

/* Runs the loop until *stop becomes non-zero (checked at least every 200 ms
 * while idle) or a "shutdown" utility call arrives. Returns 0, or a negative
 * code when the loop could not start (bind failed, out of memory). */
int eng_run(const eng_opts_t *opts, volatile sig_atomic_t *stop);

#ifdef __cplusplus
}
#endif
#endif
