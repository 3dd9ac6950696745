/* sched: the vLLM V1 scheduler (no prefill/decode phases; chunked prefill;
 * preemption by recompute), driving the paged KV cache of kv_cache.h.
 * The header is eng_sched.h, not sched.h: with engine/ on the include path a
 * "sched.h" would shadow POSIX <sched.h>, which <pthread.h> includes.
 *
 * One engine step is:
 *   const sched_step_t *st = sched_schedule(s);      // who runs, how many tokens
 *   ... model runner computes st->items ...
 *   const sched_output_t *o = sched_update(s, st, sampled);  // append, stop, free
 * schedule and update strictly alternate. sched_add and sched_abort may be
 * called anywhere outside them, also between a schedule and its update: a new
 * request waits for the next schedule, and update skips aborted items.
 *
 * Requests live in a fixed table of max_requests slots. A slot's buffers
 * (token ids sized min(prompt + max_tokens, max_model_len), stop ids, KV block
 * table) are allocated by sched_add; sched_schedule and sched_update never
 * allocate (schedule frees the buffers of requests that finished in the
 * previous step, once their outputs can no longer be read).
 *
 * Matched vLLM behaviour (vllm/v1/core/sched/scheduler.py, sched/utils.py):
 * RUNNING requests first, then WAITING ones; per-request chunk cap
 * long_prefill_token_threshold; input positions capped at max_model_len - 1;
 * prefix lookup only for requests with no computed tokens; preemption pops
 * the newest running request (FCFS) or the worst (priority, arrival), frees
 * its blocks (they stay cached), resets num_computed_tokens and prepends it to
 * the waiting queue; no waiting request is admitted in a step that preempted;
 * num_computed_tokens advances when a step is scheduled; check_stop order.
 *
 * Not thread-safe: one engine thread owns a scheduler.
 */
#ifndef CVLLM_ENGINE_ENG_SCHED_H
#define CVLLM_ENGINE_ENG_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kv_cache.h"

#ifdef __cplusplus
extern "C" {
#endif

/* --- errors ---------------------------------------------------------------- */

#define SCHED_ERRNO_MAP(XX)                                                        \
    XX(SCHED_EINVAL, -5601, "invalid scheduler configuration or request")          \
    XX(SCHED_EFULL, -5602, "request table is full")                                \
    XX(SCHED_EEXIST, -5603, "a live request has this id")                         \
    XX(SCHED_ENOENT, -5604, "no live request has this id")                         \
    XX(SCHED_ETOOLONG, -5605, "prompt does not fit in max_model_len")

enum {
#define XX(name, val, msg) name = (val),
    SCHED_ERRNO_MAP(XX)
#undef XX
};

/* Message for a SCHED_E* or KV_E* code or a negative errno. Borrowed. */
const char *sched_strerror(int err);

/* --- configuration ---------------------------------------------------------- */

typedef enum {
    SCHED_POLICY_FCFS = 0,
    SCHED_POLICY_PRIORITY, /* lower priority value first, then earlier arrival */
} sched_policy_t;

typedef struct {
    int32_t max_num_batched_tokens;      /* > 0: token budget per step */
    int32_t max_num_seqs;                /* > 0: running requests at most */
    int32_t long_prefill_token_threshold;/* per-request chunk cap; 0 = none */
    int64_t max_model_len;               /* > 1: prompt + output tokens at most */
    int32_t block_size;                  /* 0 = 16 */
    int32_t num_blocks;                  /* > 0: KV pool size */
    int32_t max_requests;                /* > 0: request table (running + waiting + finishing) */
    bool enable_prefix_caching;
    sched_policy_t policy;
    double kv_metrics_sample_rate;       /* kv_cache_config_t.metrics_sample_rate; 0 = off */
} sched_config_t;

/* --- requests ----------------------------------------------------------------- */

#define SCHED_ID_MAX 128 /* request id bytes, NUL included */

typedef enum {
    SCHED_STATUS_FREE = 0,      /* slot unused */
    SCHED_STATUS_WAITING,
    SCHED_STATUS_RUNNING,
    SCHED_STATUS_FINISHED_STOPPED,
    SCHED_STATUS_FINISHED_LENGTH,
    SCHED_STATUS_FINISHED_ABORTED,
} sched_status_t;

static inline bool sched_status_finished(sched_status_t st) { return st >= SCHED_STATUS_FINISHED_STOPPED; }

/* What sched_add copies. Pointers are borrowed for the call only. */
typedef struct {
    const char *id;                  /* unique among live requests, < SCHED_ID_MAX bytes */
    const int32_t *prompt;           /* (num_prompt) token ids */
    int64_t num_prompt;              /* >= 1 and < max_model_len */
    int64_t max_tokens;              /* >= 1 */
    int64_t min_tokens;              /* >= 0; EOS/stop ids ignored before it */
    int32_t eos_token_id;            /* < 0: none */
    bool ignore_eos;
    const int32_t *stop_token_ids;   /* (num_stop_token_ids) */
    int32_t num_stop_token_ids;
    int32_t priority;                /* policy PRIORITY only */
    double arrival_time;             /* wall clock seconds, set by the frontend */
    uint64_t cache_salt;             /* extra key of the block hashes; 0 = none */
} sched_req_params_t;

/* A request slot. All fields are read-only for callers. */
typedef struct {
    char id[SCHED_ID_MAX];
    sched_status_t status;
    int32_t *tokens;            /* (cap_tokens) prompt then output token ids */
    int64_t num_tokens;         /* prompt + output */
    int64_t num_prompt;
    int64_t cap_tokens;
    int64_t num_computed_tokens;/* tokens whose KV is computed or scheduled */
    int64_t num_cached_tokens;  /* prefix hit at first scheduling; -1 before */
    int64_t max_tokens, min_tokens;
    int32_t eos_token_id;
    bool ignore_eos;
    int32_t *stop_token_ids;
    int32_t num_stop_token_ids;
    int32_t stop_reason;        /* the stop token id that finished it, else -1 */
    int32_t priority;
    double arrival_time;
    uint64_t seq;               /* add order: ties in arrival */
    int64_t queued_ns;          /* CLOCK_MONOTONIC at sched_add */
    int64_t scheduled_ns;       /* first scheduling; 0 before */
    int32_t num_preemptions;
    kv_req_t kv;                /* block table; kv.blocks[0..kv.num_blocks) */
} sched_req_t;

static inline int64_t sched_req_num_output(const sched_req_t *r) { return r->num_tokens - r->num_prompt; }

/* --- steps -------------------------------------------------------------------- */

typedef struct {
    int32_t slot;               /* sched_req(s, slot) */
    int32_t num_new_tokens;     /* tokens [start, start + num_new_tokens) */
    int64_t start;              /* num_computed_tokens before this step */
    bool samples;               /* completes the known tokens: a token is sampled */
    bool first_scheduled;       /* its first scheduling ever (QUEUED -> SCHEDULED) */
} sched_item_t;

typedef struct {
    sched_item_t *items;        /* (num_items) running order */
    int32_t num_items;
    int64_t num_scheduled_tokens;
    int32_t *preempted;         /* (num_preempted) slots preempted in this step */
    int32_t num_preempted;
    int64_t timestamp_ns;       /* CLOCK_MONOTONIC at the top of schedule */
} sched_step_t;

typedef struct {
    int32_t slot;
    int32_t token;              /* the appended token */
    bool first_output;          /* the request's first output token */
    sched_status_t status;      /* RUNNING or FINISHED_* */
} sched_out_item_t;

typedef struct {
    sched_out_item_t *items;    /* (num_items) */
    int32_t num_items;
    /* vLLM's iteration_tokens_total observation for this batch: prompt tokens
     * of requests with their first output here + generated tokens. */
    int64_t num_prompt_tokens;
    int64_t num_generation_tokens;
} sched_output_t;

typedef struct {
    int32_t num_running;
    int32_t num_waiting;         /* reason="capacity" */
    int32_t num_waiting_deferred;/* reason="deferred"; always 0 here (no skipped queue) */
    double kv_usage;             /* kv_cache_usage */
    kv_cache_stats_t prefix;     /* cumulative prefix-cache token counters */
    uint64_t num_preemptions;    /* cumulative */
    uint64_t num_steps;          /* schedule calls */
} sched_stats_t;

/* --- API ------------------------------------------------------------------------- */

typedef struct sched sched_t;

/* Creates a scheduler and its KV cache. Returns 0 and sets *out (caller owns
 * it; free with sched_destroy), SCHED_EINVAL, KV_EINVAL or -ENOMEM. */
int sched_new(const sched_config_t *cfg, sched_t **out);
/* Frees everything and sets *s to NULL. NULL-safe. */
void sched_destroy(sched_t **s);

/* Adds a WAITING request. Returns 0 and sets *slot (if not NULL);
 * SCHED_EINVAL (bad params), SCHED_ETOOLONG, SCHED_EEXIST, SCHED_EFULL or
 * -ENOMEM, with nothing added. */
int sched_add(sched_t *s, const sched_req_params_t *p, int32_t *slot);

/* Aborts a live (waiting or running) request: frees its blocks at once and
 * marks it FINISHED_ABORTED. Returns 0 or SCHED_ENOENT. */
int sched_abort(sched_t *s, const char *id);

/* Plans one step. Returns the step (borrowed; valid until the next
 * sched_schedule). Never fails; an empty step has num_items 0. */
const sched_step_t *sched_schedule(sched_t *s);

/* Applies a step's results; step must be the one the latest sched_schedule
 * returned, applied once. sampled[i] is the token sampled for
 * step->items[i] and is read only when items[i].samples. Appends it, checks
 * stop conditions in vLLM's order and frees finished requests' blocks.
 * Returns the outputs (borrowed; valid until the next sched_schedule). */
const sched_output_t *sched_update(sched_t *s, const sched_step_t *step, const int32_t *sampled);

/* The request in slot (borrowed; valid until the slot is recycled, i.e. the
 * sched_schedule after it finished). NULL for a free or out-of-range slot. */
const sched_req_t *sched_req(const sched_t *s, int32_t slot);
/* Slot of a live request with this id, or -1. O(max_requests). */
int32_t sched_find(const sched_t *s, const char *id);
int32_t sched_max_requests(const sched_t *s);
/* Whether any request is waiting or running. */
bool sched_has_requests(const sched_t *s);

void sched_get_stats(const sched_t *s, sched_stats_t *out);

/* The scheduler's KV cache. Borrowed; valid until sched_destroy. */
kv_cache_t *sched_kv(sched_t *s);

/* Drops the prefix cache if nothing is referenced: 0 or KV_EBUSY. */
int sched_reset_prefix_cache(sched_t *s);

/* Full consistency check: kv_cache_check plus, for every block, ref_cnt ==
 * number of request tables holding it; running/waiting lists match statuses.
 * Allocates a scratch array (test use). Returns 0 or a negative code/line. */
int sched_check(const sched_t *s);

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_ENGINE_ENG_SCHED_H */
