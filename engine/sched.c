/* sched.c: the V1 scheduler loop over a fixed request table (contract in
 * eng_sched.h).
 *
 * Invariants a reader could break:
 *   - running[] holds exactly the RUNNING slots, in admission order (the
 *     FCFS preemption victim is the last one); waiting[] exactly the WAITING
 *     slots, in service order; waiting requests hold no KV blocks.
 *   - a slot that finished (stop, length, abort) has already returned its
 *     blocks; its buffers are freed, and the slot reused, only at the top of
 *     the next sched_schedule, so a step's items and outputs never point at a
 *     recycled slot.
 * Every array is sized in sched_new from max_requests / max_num_seqs.
 */
#include "eng_sched.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHED_ASSERT(x)                                                                    \
    do {                                                                                   \
        if (!(x)) {                                                                        \
            fprintf(stderr, "%s:%d: scheduler invariant failed: %s\n", __FILE__, __LINE__, #x); \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

struct sched {
    sched_config_t cfg;
    kv_cache_t *kv;

    sched_req_t *reqs;      /* (max_requests) */
    int32_t *free_slots;    /* stack of FREE slots */
    int32_t num_free_slots;
    int32_t *running;       /* (max_num_seqs) */
    int32_t num_running;
    int32_t *waiting;       /* (max_requests) */
    int32_t num_waiting;
    int32_t *finished;      /* (max_requests) finished, not yet recycled */
    int32_t num_finished;

    sched_step_t step;      /* items: (max_num_seqs), preempted: (max_num_seqs) */
    sched_output_t out;     /* items: (max_num_seqs) */

    uint64_t seq;
    uint64_t num_preemptions;
    uint64_t num_steps;
};

const char *sched_strerror(int err) {
    switch (err) {
#define XX(name, val, msg) \
    case name:             \
        return msg;
        SCHED_ERRNO_MAP(XX)
#undef XX
    default:
        return kv_strerror(err);
    }
}

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

// --- lifecycle -----------------------------------------------------------------

int sched_new(const sched_config_t *cfg, sched_t **out) {
    *out = NULL;
    if (cfg->max_num_batched_tokens <= 0 || cfg->max_num_seqs <= 0 || cfg->max_model_len <= 1 ||
        cfg->max_requests <= 0 || cfg->long_prefill_token_threshold < 0 || cfg->block_size < 0 ||
        (cfg->policy != SCHED_POLICY_FCFS && cfg->policy != SCHED_POLICY_PRIORITY))
        return SCHED_EINVAL;
    sched_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->cfg = *cfg;
    kv_cache_config_t kc = {
        .num_blocks = cfg->num_blocks,
        .block_size = cfg->block_size,
        .max_model_len = cfg->max_model_len,
        .enable_prefix_caching = cfg->enable_prefix_caching,
        .metrics_sample_rate = cfg->kv_metrics_sample_rate,
    };
    int rc = kv_cache_new(&kc, &s->kv);
    if (rc) {
        free(s);
        return rc;
    }
    s->cfg.block_size = kv_cache_block_size(s->kv);
    size_t nr = (size_t)cfg->max_requests, ns = (size_t)cfg->max_num_seqs;
    s->reqs = calloc(nr, sizeof *s->reqs);
    s->free_slots = malloc(nr * sizeof *s->free_slots);
    s->waiting = malloc(nr * sizeof *s->waiting);
    s->finished = malloc(nr * sizeof *s->finished);
    s->running = malloc(ns * sizeof *s->running);
    s->step.items = malloc(ns * sizeof *s->step.items);
    s->step.preempted = malloc(ns * sizeof *s->step.preempted);
    s->out.items = malloc(ns * sizeof *s->out.items);
    if (!s->reqs || !s->free_slots || !s->waiting || !s->finished || !s->running || !s->step.items ||
        !s->step.preempted || !s->out.items) {
        sched_destroy(&s);
        return -ENOMEM;
    }
    /* Lowest slot first, so tests and logs see small numbers. */
    for (int32_t i = 0; i < cfg->max_requests; i++) s->free_slots[i] = cfg->max_requests - 1 - i;
    s->num_free_slots = cfg->max_requests;
    *out = s;
    return 0;
}

static void slot_release(sched_t *s, int32_t slot) {
    sched_req_t *r = &s->reqs[slot];
    free(r->tokens);
    free(r->stop_token_ids);
    kv_req_release(&r->kv);
    memset(r, 0, sizeof *r);
    r->status = SCHED_STATUS_FREE;
    s->free_slots[s->num_free_slots++] = slot;
}

void sched_destroy(sched_t **ps) {
    sched_t *s = ps ? *ps : NULL;
    if (!s) return;
    if (s->reqs) {
        for (int32_t i = 0; i < s->cfg.max_requests; i++) {
            sched_req_t *r = &s->reqs[i];
            if (r->status == SCHED_STATUS_FREE) continue;
            kv_free(s->kv, &r->kv);
            free(r->tokens);
            free(r->stop_token_ids);
            kv_req_release(&r->kv);
        }
    }
    kv_cache_destroy(&s->kv);
    free(s->reqs);
    free(s->free_slots);
    free(s->waiting);
    free(s->finished);
    free(s->running);
    free(s->step.items);
    free(s->step.preempted);
    free(s->out.items);
    free(s);
    *ps = NULL;
}

// --- queues --------------------------------------------------------------------

/* Priority order: lower priority value, then earlier arrival, then add order. */
static bool prio_before(const sched_req_t *a, const sched_req_t *b) {
    if (a->priority != b->priority) return a->priority < b->priority;
    if (a->arrival_time != b->arrival_time) return a->arrival_time < b->arrival_time;
    return a->seq < b->seq;
}

static void waiting_insert_at(sched_t *s, int32_t pos, int32_t slot) {
    memmove(&s->waiting[pos + 1], &s->waiting[pos], (size_t)(s->num_waiting - pos) * sizeof *s->waiting);
    s->waiting[pos] = slot;
    s->num_waiting++;
}

/* A new request: FCFS appends; priority inserts after every request that
 * goes before it. The waiting array is kept sorted, so the head is always
 * the next to admit (vLLM uses a heap; the order is the same). */
static void waiting_add(sched_t *s, int32_t slot) {
    if (s->cfg.policy == SCHED_POLICY_FCFS) {
        s->waiting[s->num_waiting++] = slot;
        return;
    }
    const sched_req_t *r = &s->reqs[slot];
    int32_t pos = s->num_waiting;
    while (pos > 0 && prio_before(r, &s->reqs[s->waiting[pos - 1]])) pos--;
    waiting_insert_at(s, pos, slot);
}

/* A preempted request: FCFS puts it at the head (vLLM prepend_request);
 * priority re-inserts it by its key (vLLM's priority queue does the same). */
static void waiting_prepend(sched_t *s, int32_t slot) {
    if (s->cfg.policy == SCHED_POLICY_FCFS)
        waiting_insert_at(s, 0, slot);
    else
        waiting_add(s, slot);
}

static void list_remove_at(int32_t *list, int32_t *n, int32_t pos) {
    memmove(&list[pos], &list[pos + 1], (size_t)(*n - pos - 1) * sizeof *list);
    (*n)--;
}

static int32_t list_find(const int32_t *list, int32_t n, int32_t slot) {
    for (int32_t i = 0; i < n; i++)
        if (list[i] == slot) return i;
    return -1;
}

// --- requests --------------------------------------------------------------------

int32_t sched_find(const sched_t *s, const char *id) {
    for (int32_t i = 0; i < s->cfg.max_requests; i++) {
        const sched_req_t *r = &s->reqs[i];
        if ((r->status == SCHED_STATUS_WAITING || r->status == SCHED_STATUS_RUNNING) && !strcmp(r->id, id))
            return i;
    }
    return -1;
}

int sched_add(sched_t *s, const sched_req_params_t *p, int32_t *slot_out) {
    if (!p->id || strlen(p->id) >= SCHED_ID_MAX || !p->prompt || p->num_prompt < 1 || p->max_tokens < 1 ||
        p->min_tokens < 0 || p->num_stop_token_ids < 0 || (p->num_stop_token_ids > 0 && !p->stop_token_ids))
        return SCHED_EINVAL;
    if (p->num_prompt >= s->cfg.max_model_len) return SCHED_ETOOLONG;
    if (sched_find(s, p->id) >= 0) return SCHED_EEXIST;
    if (s->num_free_slots == 0) return SCHED_EFULL;

    int32_t slot = s->free_slots[s->num_free_slots - 1];
    sched_req_t *r = &s->reqs[slot];
    memset(r, 0, sizeof *r);
    int64_t cap = p->max_tokens > s->cfg.max_model_len - p->num_prompt ? s->cfg.max_model_len
                                                                        : p->num_prompt + p->max_tokens;
    r->tokens = malloc((size_t)cap * sizeof *r->tokens);
    r->stop_token_ids = p->num_stop_token_ids ? malloc((size_t)p->num_stop_token_ids * sizeof(int32_t)) : NULL;
    if (!r->tokens || (p->num_stop_token_ids && !r->stop_token_ids) || kv_req_init(s->kv, &r->kv, p->cache_salt)) {
        free(r->tokens);
        free(r->stop_token_ids);
        memset(r, 0, sizeof *r);
        return -ENOMEM;
    }
    s->num_free_slots--;
    memcpy(r->id, p->id, strlen(p->id) + 1);
    memcpy(r->tokens, p->prompt, (size_t)p->num_prompt * sizeof *r->tokens);
    if (p->num_stop_token_ids)
        memcpy(r->stop_token_ids, p->stop_token_ids, (size_t)p->num_stop_token_ids * sizeof(int32_t));
    r->num_stop_token_ids = p->num_stop_token_ids;
    r->num_tokens = r->num_prompt = p->num_prompt;
    r->cap_tokens = cap;
    r->num_cached_tokens = -1;
    r->max_tokens = p->max_tokens;
    r->min_tokens = p->min_tokens;
    r->eos_token_id = p->eos_token_id;
    r->ignore_eos = p->ignore_eos;
    r->stop_reason = -1;
    r->priority = p->priority;
    r->arrival_time = p->arrival_time;
    r->seq = s->seq++;
    r->queued_ns = now_ns();
    r->status = SCHED_STATUS_WAITING;
    kv_req_update_hashes(s->kv, &r->kv, r->tokens, r->num_tokens);
    waiting_add(s, slot);
    if (slot_out) *slot_out = slot;
    return 0;
}

static void finish(sched_t *s, int32_t slot, sched_status_t why) {
    sched_req_t *r = &s->reqs[slot];
    kv_free(s->kv, &r->kv);
    r->status = why;
    s->finished[s->num_finished++] = slot;
}

int sched_abort(sched_t *s, const char *id) {
    int32_t slot = sched_find(s, id);
    if (slot < 0) return SCHED_ENOENT;
    int32_t pos;
    if (s->reqs[slot].status == SCHED_STATUS_RUNNING) {
        pos = list_find(s->running, s->num_running, slot);
        SCHED_ASSERT(pos >= 0);
        list_remove_at(s->running, &s->num_running, pos);
    } else {
        pos = list_find(s->waiting, s->num_waiting, slot);
        SCHED_ASSERT(pos >= 0);
        list_remove_at(s->waiting, &s->num_waiting, pos);
    }
    finish(s, slot, SCHED_STATUS_FINISHED_ABORTED);
    return 0;
}

// --- schedule ----------------------------------------------------------------------

/* Index in running[] of the request to preempt. */
static int32_t pick_victim(const sched_t *s) {
    if (s->cfg.policy == SCHED_POLICY_FCFS) return s->num_running - 1;
    int32_t worst = 0;
    for (int32_t i = 1; i < s->num_running; i++)
        if (prio_before(&s->reqs[s->running[worst]], &s->reqs[s->running[i]])) worst = i;
    return worst;
}

/* Preemption by recompute. Its blocks go back in reverse order and stay
 * cached, so re-admission usually finds most of them again. */
static void preempt(sched_t *s, int32_t slot) {
    sched_req_t *r = &s->reqs[slot];
    kv_free(s->kv, &r->kv);
    r->num_computed_tokens = 0;
    r->status = SCHED_STATUS_WAITING;
    r->num_preemptions++;
    s->num_preemptions++;
    s->step.preempted[s->step.num_preempted++] = slot;
    waiting_prepend(s, slot);
}

static int64_t chunk(const sched_t *s, int64_t n, int64_t budget) {
    int64_t thr = s->cfg.long_prefill_token_threshold;
    if (thr > 0 && n > thr) n = thr;
    return n < budget ? n : budget;
}

const sched_step_t *sched_schedule(sched_t *s) {
    sched_step_t *st = &s->step;
    for (int32_t i = 0; i < s->num_finished; i++) slot_release(s, s->finished[i]);
    s->num_finished = 0;
    st->num_items = 0;
    st->num_preempted = 0;
    st->num_scheduled_tokens = 0;
    st->timestamp_ns = now_ns();
    s->num_steps++;

    int64_t budget = s->cfg.max_num_batched_tokens;

    // Running requests: decodes and unfinished chunked prefills.
    int32_t i = 0;
    while (i < s->num_running && budget > 0) {
        int32_t slot = s->running[i];
        sched_req_t *r = &s->reqs[slot];
        int64_t n = chunk(s, r->num_tokens - r->num_computed_tokens, budget);
        int64_t pos_cap = s->cfg.max_model_len - 1 - r->num_computed_tokens;
        if (n > pos_cap) n = pos_cap;
        if (n <= 0) {
            i++;
            continue;
        }
        bool ok = false;
        for (;;) {
            int rc = kv_allocate_slots(s->kv, &r->kv, r->num_computed_tokens, n, r->num_tokens);
            if (rc == 0) {
                ok = true;
                break;
            }
            SCHED_ASSERT(rc == KV_ENOSPC); /* positions < max_model_len always fit the table */
            int32_t vi = pick_victim(s);
            int32_t victim = s->running[vi];
            list_remove_at(s->running, &s->num_running, vi);
            if (vi < i) {
                /* Priority only: the victim was scheduled earlier in this
                 * step; take its tokens back. */
                i--;
                for (int32_t k = 0; k < st->num_items; k++) {
                    if (st->items[k].slot != victim) continue;
                    budget += st->items[k].num_new_tokens;
                    memmove(&st->items[k], &st->items[k + 1], (size_t)(st->num_items - k - 1) * sizeof *st->items);
                    st->num_items--;
                    break;
                }
            }
            preempt(s, victim);
            if (victim == slot) break;
        }
        if (!ok) break;
        st->items[st->num_items++] = (sched_item_t){
            .slot = slot,
            .num_new_tokens = (int32_t)n,
            .start = r->num_computed_tokens,
            .samples = r->num_computed_tokens + n == r->num_tokens,
            .first_scheduled = false,
        };
        budget -= n;
        i++;
    }

    // Waiting requests, in queue order, unless this step had to preempt.
    if (st->num_preempted == 0) {
        while (s->num_waiting > 0 && budget > 0 && s->num_running < s->cfg.max_num_seqs) {
            int32_t slot = s->waiting[0];
            sched_req_t *r = &s->reqs[slot];
            SCHED_ASSERT(r->num_computed_tokens == 0 && r->kv.num_blocks == 0);
            int64_t computed = kv_lookup(s->kv, &r->kv, r->num_tokens, r->num_preemptions > 0);
            int64_t n = chunk(s, r->num_tokens - computed, budget);
            SCHED_ASSERT(n > 0);
            if (kv_allocate_slots(s->kv, &r->kv, computed, n, r->num_tokens)) break;
            list_remove_at(s->waiting, &s->num_waiting, 0);
            s->running[s->num_running++] = slot;
            r->status = SCHED_STATUS_RUNNING;
            r->num_computed_tokens = computed;
            bool first = r->scheduled_ns == 0;
            if (first) r->scheduled_ns = st->timestamp_ns;
            if (r->num_cached_tokens < 0) r->num_cached_tokens = computed;
            st->items[st->num_items++] = (sched_item_t){
                .slot = slot,
                .num_new_tokens = (int32_t)n,
                .start = computed,
                .samples = computed + n == r->num_tokens,
                .first_scheduled = first,
            };
            budget -= n;
        }
    }

    // vLLM advances num_computed_tokens as soon as the step is planned.
    for (int32_t k = 0; k < st->num_items; k++) {
        s->reqs[st->items[k].slot].num_computed_tokens += st->items[k].num_new_tokens;
        st->num_scheduled_tokens += st->items[k].num_new_tokens;
    }
    return st;
}

// --- update --------------------------------------------------------------------------

/* vLLM's check_stop: min_tokens hides EOS and stop ids (never the length
 * limits), then EOS unless ignore_eos, then stop_token_ids, then max_tokens
 * and max_model_len. */
static sched_status_t check_stop(const sched_t *s, sched_req_t *r) {
    int64_t nout = sched_req_num_output(r);
    bool length = r->num_tokens >= s->cfg.max_model_len || nout >= r->max_tokens;
    if (nout < r->min_tokens) return length ? SCHED_STATUS_FINISHED_LENGTH : SCHED_STATUS_RUNNING;
    int32_t last = r->tokens[r->num_tokens - 1];
    if (!r->ignore_eos && r->eos_token_id >= 0 && last == r->eos_token_id) return SCHED_STATUS_FINISHED_STOPPED;
    for (int32_t i = 0; i < r->num_stop_token_ids; i++) {
        if (last == r->stop_token_ids[i]) {
            r->stop_reason = last;
            return SCHED_STATUS_FINISHED_STOPPED;
        }
    }
    return length ? SCHED_STATUS_FINISHED_LENGTH : SCHED_STATUS_RUNNING;
}

const sched_output_t *sched_update(sched_t *s, const sched_step_t *step, const int32_t *sampled) {
    sched_output_t *o = &s->out;
    o->num_items = 0;
    o->num_prompt_tokens = 0;
    o->num_generation_tokens = 0;
    bool any_finished = false;
    for (int32_t k = 0; k < step->num_items; k++) {
        const sched_item_t *it = &step->items[k];
        sched_req_t *r = &s->reqs[it->slot];
        if (r->status != SCHED_STATUS_RUNNING || !it->samples) continue; /* aborted, or a partial prefill */
        SCHED_ASSERT(r->num_tokens < r->cap_tokens && r->num_computed_tokens == r->num_tokens);
        r->tokens[r->num_tokens++] = sampled[k];
        kv_req_update_hashes(s->kv, &r->kv, r->tokens, r->num_tokens);
        bool first = sched_req_num_output(r) == 1;
        if (first) o->num_prompt_tokens += r->num_prompt;
        o->num_generation_tokens++;
        sched_status_t stv = check_stop(s, r);
        if (stv != SCHED_STATUS_RUNNING) {
            finish(s, it->slot, stv);
            any_finished = true;
        }
        o->items[o->num_items++] = (sched_out_item_t){
            .slot = it->slot, .token = sampled[k], .first_output = first, .status = stv};
    }
    if (any_finished) {
        int32_t n = 0;
        for (int32_t i = 0; i < s->num_running; i++)
            if (s->reqs[s->running[i]].status == SCHED_STATUS_RUNNING) s->running[n++] = s->running[i];
        s->num_running = n;
    }
    return o;
}

// --- queries ---------------------------------------------------------------------------

const sched_req_t *sched_req(const sched_t *s, int32_t slot) {
    if (slot < 0 || slot >= s->cfg.max_requests || s->reqs[slot].status == SCHED_STATUS_FREE) return NULL;
    return &s->reqs[slot];
}

int32_t sched_max_requests(const sched_t *s) { return s->cfg.max_requests; }
bool sched_has_requests(const sched_t *s) { return s->num_running + s->num_waiting > 0; }
kv_cache_t *sched_kv(sched_t *s) { return s->kv; }
int sched_reset_prefix_cache(sched_t *s) { return kv_cache_reset_prefix(s->kv); }

void sched_get_stats(const sched_t *s, sched_stats_t *out) {
    out->num_running = s->num_running;
    out->num_waiting = s->num_waiting;
    out->num_waiting_deferred = 0;
    out->kv_usage = kv_cache_usage(s->kv);
    kv_cache_get_stats(s->kv, &out->prefix);
    out->num_preemptions = s->num_preemptions;
    out->num_steps = s->num_steps;
}

#define CHECK_OR_FAIL(x)     \
    do {                     \
        if (!(x)) {          \
            rc = -__LINE__;  \
            goto done;       \
        }                    \
    } while (0)

int sched_check(const sched_t *s) {
    int rc = kv_cache_check(s->kv);
    if (rc) return rc;
    int32_t nb = kv_cache_num_blocks(s->kv);
    int32_t *held = calloc((size_t)nb, sizeof *held);
    if (!held) return -ENOMEM;
    int32_t nrun = 0, nwait = 0, nfree = 0;
    for (int32_t i = 0; i < s->cfg.max_requests; i++) {
        const sched_req_t *r = &s->reqs[i];
        if (r->status == SCHED_STATUS_FREE) {
            nfree++;
            continue;
        }
        for (int32_t j = 0; j < r->kv.num_blocks; j++) {
            int32_t b = r->kv.blocks[j];
            CHECK_OR_FAIL(b >= 0 && b < nb);
            held[b]++;
        }
        if (r->status == SCHED_STATUS_RUNNING) {
            nrun++;
            CHECK_OR_FAIL(list_find(s->running, s->num_running, i) >= 0);
            CHECK_OR_FAIL((int64_t)r->kv.num_blocks * s->cfg.block_size >= r->num_computed_tokens);
        } else if (r->status == SCHED_STATUS_WAITING) {
            nwait++;
            CHECK_OR_FAIL(list_find(s->waiting, s->num_waiting, i) >= 0);
            CHECK_OR_FAIL(r->kv.num_blocks == 0 && r->num_computed_tokens == 0);
        } else {
            CHECK_OR_FAIL(r->kv.num_blocks == 0);
        }
        CHECK_OR_FAIL(r->num_tokens <= r->cap_tokens && r->num_tokens < s->cfg.max_model_len + 1);
    }
    CHECK_OR_FAIL(nrun == s->num_running && nwait == s->num_waiting && nfree == s->num_free_slots);
    CHECK_OR_FAIL(s->num_running <= s->cfg.max_num_seqs);
    for (int32_t b = 0; b < nb; b++) CHECK_OR_FAIL(held[b] == kv_cache_block_ref(s->kv, b));
done:
    free(held);
    return rc;
}
