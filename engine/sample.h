/* sample: turns one request's f32 logits row (vocab size V) into the next
 * token, following vLLM v1's sampler (docs/sampling.md has the details).
 *
 * Order of operations per row:
 *   allowed_token_ids mask -> min_tokens mask (EOS + stop ids) -> logit_bias
 *   -> repetition / frequency / presence penalties
 *   -> greedy argmax when temperature == 0 (ties: lowest id)
 *   -> temperature -> min_p -> top_k -> top_p -> draw from the kept set.
 *
 * Objects:
 *   smp_params_t    per-request parameters, plain data; borrowed arrays.
 *   smp_state_t     per-request state: RNG, output count, penalty counts
 *                   (compact (token, count) table, updated per appended token).
 *   smp_workspace_t per-engine scratch sized for V and `n_lanes` rows that may
 *                   be sampled concurrently (one lane per sampling thread).
 *
 * Allocation happens only in smp_workspace_new and smp_state_init (request
 * admission); smp_sample, smp_state_append and smp_token_logprobs do not
 * allocate. Errors are 0 or a negative errno (-EINVAL, -ENOMEM, -ENOSPC,
 * -EDOM). Functions are thread-safe as long as two threads never use the same
 * lane, state or engine RNG at the same time.
 */
#ifndef CVLLM_SAMPLE_H
#define CVLLM_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* vLLM's default max_logprobs: the most top logprobs one request may ask for. */
#define SMP_MAX_LOGPROBS 20
/* vLLM's OpenAI layer clamps every logit_bias value into [-100, 100]. */
#define SMP_MAX_LOGIT_BIAS 100.0

/* What the logprobs in smp_result_t describe (vLLM's --logprobs-mode). */
typedef enum {
    SMP_LOGPROBS_RAW = 0,       /* log_softmax of the model's logits, before any processing (vLLM default) */
    SMP_LOGPROBS_PROCESSED = 1, /* log of the distribution actually sampled from (after penalties,
                                   temperature, min_p/top_k/top_p; greedy: after penalties) */
} smp_logprobs_mode_t;

typedef struct {
    int32_t token;
    float bias;
} smp_bias_t;

/* --- parameters ----------------------------------------------------------- */

/* The array fields are borrowed: they must stay valid and unchanged for as
 * long as the request samples (logit_bias and allowed_token_ids are read on
 * every step; stop_token_ids are copied by smp_state_init). */

typedef struct {
    double temperature;        /* >= 0; 0 = greedy. (0, 0.01) is raised to 0.01 by smp_params_normalize */
    double top_p;              /* (0, 1]; 1 = off */
    int32_t top_k;             /* 0 or -1 = off; otherwise >= 1 */
    double min_p;              /* [0, 1]; 0 = off */
    double repetition_penalty; /* > 0; 1 = off; prompt + output tokens */
    double presence_penalty;   /* [-2, 2]; output tokens */
    double frequency_penalty;  /* [-2, 2]; output tokens */
    bool has_seed;
    int64_t seed;              /* per-request RNG seed when has_seed */
    bool has_max_tokens;       /* false = None */
    int64_t max_tokens;        /* validated (>= 1, >= min_tokens); the engine enforces it */
    int64_t min_tokens;        /* EOS and stop_token_ids suppressed while n_output < min_tokens */
    bool ignore_eos;           /* EOS ids are not suppressed by min_tokens (they are not stop ids then) */
    int32_t logprobs;          /* -2 = not requested (None); -1 = whole vocab; 0..20 = top-N */
    int32_t prompt_logprobs;   /* same encoding */
    const int32_t *stop_token_ids; /* borrowed, n_stop_token_ids entries */
    int32_t n_stop_token_ids;
    const smp_bias_t *logit_bias;  /* borrowed; token ids must be in [0, V) */
    int32_t n_logit_bias;
    bool has_allowed_token_ids;    /* false = None; true with n = 0 is an error */
    const int32_t *allowed_token_ids; /* borrowed */
    int32_t n_allowed_token_ids;
} smp_params_t;

#define SMP_LOGPROBS_NONE (-2)

/* Fills *p with vLLM's in-code defaults (temperature 1, top_p 1, top_k 0,
 * min_p 0, repetition_penalty 1, penalties 0, no seed, no logprobs), then,
 * when gen is not NULL, overlays the generation_config.json values the file
 * set (temperature, top_p, top_k, min_p, repetition_penalty, max_new_tokens ->
 * max_tokens), as vLLM does unless --generation-config vllm. */
void smp_params_default(smp_params_t *p, const mcfg_gen_t *gen);

/* Checks every range vLLM checks. Returns 0, or -EINVAL with `err` holding
 * vLLM's message (e.g. "top_p must be in (0, 1], got 1.5.") and *param (if
 * not NULL) the offending parameter's name (static storage). `vocab_size`
 * bounds logit_bias / allowed_token_ids ids and turns logprobs -1 into V. */
int smp_params_validate(const smp_params_t *p, int64_t vocab_size, char *err, size_t err_len, const char **param);

/* Applies vLLM's silent adjustments: 0 < temperature < 0.01 becomes 0.01;
 * top_k -1 becomes 0; greedy requests get top_p 1, top_k 0, min_p 0. Call it
 * after smp_params_validate succeeded. */
void smp_params_normalize(smp_params_t *p);

/* True when the request is sampled greedily (temperature < 1e-5). */
bool smp_params_is_greedy(const smp_params_t *p);

/* --- RNG: xoshiro256** ---------------------------------------------------- */

typedef struct {
    uint64_t s[4];
} smp_rng_t;

/* Seeds the generator from one 64-bit value (expanded with splitmix64, so
 * nearby seeds give unrelated streams). */
void smp_rng_seed(smp_rng_t *r, uint64_t seed);
uint64_t smp_rng_next(smp_rng_t *r);
/* Uniform double in [0, 1) with 53 random bits. */
double smp_rng_uniform(smp_rng_t *r);

/* --- per-request state ------------------------------------------------------ */

typedef struct {
    int32_t token;
    int32_t count;     /* occurrences among output tokens */
    int32_t in_prompt; /* 1 if the token occurs in the prompt */
} smp_tok_count_t;

typedef struct {
    /* read-only */
    smp_rng_t rng;
    int64_t n_output;          /* tokens appended so far */
    /* private */
    int32_t *stop_ids;         /* EOS (unless ignore_eos) + stop_token_ids, for min_tokens */
    int32_t n_stop_ids;
    smp_tok_count_t *entries;  /* distinct tokens seen, in first-seen order */
    int32_t n_entries, cap_entries;
    int32_t *slots;            /* open addressing: entry index + 1, 0 = empty */
    uint32_t slot_mask;
    bool track_prompt, track_output;
    void *mem;                 /* the one allocation behind the arrays above */
} smp_state_t;

/* Prepares the state of one request (admission time, may allocate).
 * p: validated + normalized params; its stop ids are copied. prompt: the
 * prompt ids (read only when repetition_penalty != 1). max_output: the most
 * tokens that will be appended (bounds the penalty table; >= 1). eos_ids:
 * the model's EOS ids (suppressed by min_tokens unless ignore_eos).
 * engine_rng: the per-engine generator; an unseeded request takes its stream
 * seed from it (one draw), a seeded one ignores it.
 * Returns 0, -EINVAL or -ENOMEM (then nothing needs freeing). */
int smp_state_init(smp_state_t *st, const smp_params_t *p, const int32_t *prompt, int64_t n_prompt,
                   int64_t max_output, const int32_t *eos_ids, int n_eos, smp_rng_t *engine_rng);

/* Records one output token (penalty counts, n_output). smp_sample calls it
 * for the token it returns; call it directly only for tokens chosen outside
 * smp_sample. Returns 0 or -ENOSPC when more than max_output distinct tokens
 * (plus prompt tokens) would need tracking. No allocation. */
int smp_state_append(smp_state_t *st, int32_t token);

/* Output-token count of `token` (0 if never appended or not tracked). */
int32_t smp_state_count(const smp_state_t *st, int32_t token);

/* Releases the state's memory; safe on a zeroed or already freed state. */
void smp_state_free(smp_state_t *st);

/* --- workspace and sampling -------------------------------------------------- */

typedef struct smp_workspace smp_workspace_t;

/* Allocates scratch for rows of `vocab_size` logits, for `n_lanes` rows that
 * may be processed at the same time. Returns NULL on invalid sizes or when
 * out of memory. Caller owns the result and frees it with
 * smp_workspace_destroy. */
smp_workspace_t *smp_workspace_new(int64_t vocab_size, int n_lanes, smp_logprobs_mode_t mode);

/* Frees *pp and sets it to NULL; NULL-safe. */
void smp_workspace_destroy(smp_workspace_t **pp);

typedef struct {
    int32_t token;      /* the chosen token */
    int32_t n_nan;      /* NaNs in the input row; > 0 marks the request corrupted (vLLM
                           num_nans_in_logits). NaN logits are never sampled. */
    /* Filled only when params->logprobs != SMP_LOGPROBS_NONE: */
    float logprob;      /* of `token`, per the workspace's mode */
    int32_t rank;       /* 1 + number of other tokens with a logprob >= it (vLLM's rank) */
    int32_t n_top;      /* min(logprobs, V) entries below, best first, ties by lower id */
    int32_t top_ids[SMP_MAX_LOGPROBS];
    float top_logprobs[SMP_MAX_LOGPROBS];
} smp_result_t;

/* Samples the next token of one request from `logits` (V floats, not
 * modified) and appends it to `st`. p must be validated for this V and
 * normalized. lane < n_lanes selects the scratch. Returns 0; -EINVAL for a
 * V or lane the workspace was not made for; -EDOM when no token has a usable
 * logit (all NaN or masked), with out->n_nan set; -ENOSPC from the append. */
int smp_sample(smp_workspace_t *ws, int lane, const smp_params_t *p, smp_state_t *st, const float *logits,
               int64_t V, smp_result_t *out);

/* Penalty stage only: writes the logits after allowed ids, min_tokens,
 * logit_bias and penalties into out (V floats; NaN becomes -inf). Returns the
 * NaN count or -EINVAL. Exposed for tests and for processed-logits output. */
int smp_process_logits(const smp_params_t *p, const smp_state_t *st, const float *logits, int64_t V, float *out);

/* The kept set a random (non-greedy) request draws from: after processing,
 * temperature, min_p, top_k and top_p. Writes up to `cap` ids and their
 * probabilities (renormalized over the set), best first for top_k/top_p,
 * else by id; *n_kept is the full size. Does not touch st. Returns 0,
 * -EINVAL or -EDOM. */
int smp_kept_set(smp_workspace_t *ws, int lane, const smp_params_t *p, const smp_state_t *st, const float *logits,
                 int64_t V, int32_t *ids, float *probs, int64_t cap, int64_t *n_kept);

/* Raw logprob helper (prompt_logprobs, and the sampled token in RAW mode):
 * log_softmax(logits)[token], its rank and the top n_top (<= 20) entries.
 * NaN logits count as -inf. Returns 0 or -EINVAL. */
int smp_token_logprobs(smp_workspace_t *ws, int lane, const float *logits, int64_t V, int32_t token, int n_top,
                       smp_result_t *out);

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_SAMPLE_H */
