/* The engine step loop (see engine.h).
 *
 *   recv (block while idle) -> add/abort/utility -> schedule -> forward ->
 *   sample -> update -> outputs to each frontend -> metrics
 *
 * Invariants: per-slot state (peer, sampling state, copies of the request's
 * arrays) lives exactly as long as the scheduler slot's request: it is
 * created in handle_add and released when the request finishes or is
 * aborted. Buffers sized from max_num_seqs / max_requests / vocab are
 * allocated once in eng_run; a step allocates nothing except when a
 * frontend's output frame grows past its previous size. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "eng_metrics.h"
#include "engine.h"
#include "ipc.h"
#include "sample.h"
#include "wire.h"

#define MAX_PEERS 64
#define MAX_ABORT_IDS 4096

typedef struct {
    int used;
    char peer[IPC_MAX_ID];
    smp_params_t p;
    smp_state_t st;
    int32_t *stop_ids, *allowed;
    smp_bias_t *bias;
    double t_first, t_last;
    int first_sent;
} slot_t;

typedef struct {
    char id[IPC_MAX_ID];
    wire_buf_t buf;
    size_t mark;
    uint32_t n;
} peer_out_t;

typedef struct {
    const eng_opts_t *o;
    ipc_server_t *ipc;
    sched_t *sched;
    smp_workspace_t *ws;
    smp_rng_t rng;
    eng_metrics_t *metrics;
    slot_t *slots;
    int32_t n_slots;
    eng_seq_t *seqs;
    float *logits;
    int32_t *sampled;
    smp_result_t *results;
    peer_out_t peers[MAX_PEERS];
    int n_peers;
    wire_buf_t reply;
    wire_str_t abort_ids[MAX_ABORT_IDS];
    int shutdown;
    uint64_t bad_frames;
} eng_t;

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((format(printf, 3, 4))) static void elog(const eng_t *e, int level, const char *fmt, ...) {
    if (e->o->log_level < level) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "engine %d: ", e->o->engine_index);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* --- slots ---------------------------------------------------------------------- */

static void slot_release(slot_t *s) {
    if (!s->used) return;
    smp_state_free(&s->st);
    free(s->stop_ids);
    free(s->allowed);
    free(s->bias);
    memset(s, 0, sizeof *s);
}

static int32_t *copy_u32s(wire_u32s_t a) {
    int32_t *p = malloc((a.n ? a.n : 1) * sizeof *p);
    if (p)
        for (uint32_t i = 0; i < a.n; i++) p[i] = (int32_t)wire_u32_at(&a, i);
    return p;
}

/* --- outputs ------------------------------------------------------------------------ */

static peer_out_t *peer_out(eng_t *e, const char *peer, double t_step, const sched_stats_t *st) {
    for (int i = 0; i < e->n_peers; i++)
        if (!strcmp(e->peers[i].id, peer)) return &e->peers[i];
    if (e->n_peers == MAX_PEERS) return NULL;
    peer_out_t *p = &e->peers[e->n_peers++];
    snprintf(p->id, sizeof p->id, "%s", peer);
    p->buf.len = 0;
    p->n = 0;
    if (wire_outputs_begin(&p->buf, (uint16_t)e->o->engine_index, t_step, (uint32_t)st->num_running,
                           (uint32_t)st->num_waiting, &p->mark)) {
        e->n_peers--;
        return NULL;
    }
    return p;
}

static void flush_outputs(eng_t *e) {
    for (int i = 0; i < e->n_peers; i++) {
        peer_out_t *p = &e->peers[i];
        wire_outputs_end(&p->buf, p->mark, p->n);
        int rc = ipc_server_send(e->ipc, p->id, p->buf.data, p->buf.len);
        if (rc) elog(e, 1, "cannot send outputs to %s: %s", p->id, strerror(-rc));
    }
    e->n_peers = 0;
}

static uint8_t finish_of(sched_status_t s) {
    switch (s) {
    case SCHED_STATUS_FINISHED_STOPPED: return WIRE_FINISH_STOP;
    case SCHED_STATUS_FINISHED_LENGTH: return WIRE_FINISH_LENGTH;
    case SCHED_STATUS_FINISHED_ABORTED: return WIRE_FINISH_ABORT;
    default: return WIRE_FINISH_NONE;
    }
}

/* A final output for a request the engine ends on its own (bad request, no
 * usable logits): sent at once, outside a step. */
static void send_final(eng_t *e, const char *peer, const char *id, uint8_t finish) {
    wire_buf_t b = {0};
    size_t mark;
    wire_output_t o = {.id = {id, (uint32_t)strlen(id)}, .finish = finish, .stop_token = -1};
    if (!wire_outputs_begin(&b, (uint16_t)e->o->engine_index, mono_s(), 0, 0, &mark) && !wire_outputs_add(&b, &o)) {
        wire_outputs_end(&b, mark, 1);
        ipc_server_send(e->ipc, peer, b.data, b.len);
    }
    wire_buf_free(&b);
}

/* --- messages --------------------------------------------------------------------------- */

static void handle_add(eng_t *e, const char *peer, const wire_add_t *a) {
    char id[SCHED_ID_MAX];
    if (a->id.n >= sizeof id) {
        elog(e, 1, "dropping a request from %s: id too long", peer);
        return;
    }
    memcpy(id, a->id.p, a->id.n);
    id[a->id.n] = 0;
    const wire_sampling_t *w = &a->sp;
    int32_t *prompt = copy_u32s(a->prompt);
    slot_t tmp = {0};
    tmp.stop_ids = copy_u32s(w->stop_token_ids);
    tmp.allowed = copy_u32s(w->allowed_token_ids);
    tmp.bias = malloc((w->logit_bias_ids.n ? w->logit_bias_ids.n : 1) * sizeof *tmp.bias);
    if (!prompt || !tmp.stop_ids || !tmp.allowed || !tmp.bias) goto fail;
    for (uint32_t i = 0; i < w->logit_bias_ids.n; i++) {
        tmp.bias[i].token = (int32_t)wire_u32_at(&w->logit_bias_ids, i);
        tmp.bias[i].bias = wire_f32_at(w->logit_bias_values, i);
    }
    smp_params_t *p = &tmp.p;
    smp_params_default(p, NULL); /* the frontend already applied generation_config defaults */
    p->temperature = w->temperature;
    p->top_p = w->top_p;
    p->top_k = w->top_k;
    p->min_p = w->min_p;
    p->repetition_penalty = w->repetition_penalty;
    p->presence_penalty = w->presence_penalty;
    p->frequency_penalty = w->frequency_penalty;
    p->has_seed = w->has_seed;
    p->seed = (int64_t)w->seed;
    p->max_tokens = w->max_tokens;
    p->min_tokens = w->min_tokens;
    p->ignore_eos = w->ignore_eos;
    p->logprobs = w->logprobs < 0 ? SMP_LOGPROBS_NONE : w->logprobs;
    p->prompt_logprobs = SMP_LOGPROBS_NONE;
    p->stop_token_ids = tmp.stop_ids;
    p->n_stop_token_ids = (int32_t)w->stop_token_ids.n;
    p->logit_bias = tmp.bias;
    p->n_logit_bias = (int32_t)w->logit_bias_ids.n;
    p->has_allowed_token_ids = w->allowed_token_ids.n > 0;
    p->allowed_token_ids = tmp.allowed;
    p->n_allowed_token_ids = (int32_t)w->allowed_token_ids.n;
    char err[256];
    if (smp_params_validate(p, e->o->runner.vocab_size, err, sizeof err, NULL)) {
        elog(e, 1, "rejecting request %s: %s", id, err);
        goto fail;
    }
    smp_params_normalize(p);
    sched_req_params_t rp = {
        .id = id, .prompt = prompt, .num_prompt = a->prompt.n, .max_tokens = w->max_tokens ? w->max_tokens : 1,
        .min_tokens = w->min_tokens, .eos_token_id = e->o->n_eos ? e->o->eos_ids[0] : -1, .ignore_eos = w->ignore_eos,
        .stop_token_ids = tmp.stop_ids, .num_stop_token_ids = (int32_t)w->stop_token_ids.n, .priority = a->priority,
        .arrival_time = a->arrival_time};
    int32_t slot;
    int rc = sched_add(e->sched, &rp, &slot);
    if (rc) {
        elog(e, 1, "rejecting request %s: %s", id, sched_strerror(rc));
        goto fail;
    }
    if (smp_state_init(&tmp.st, p, prompt, a->prompt.n, rp.max_tokens, e->o->eos_ids, e->o->n_eos, &e->rng)) {
        sched_abort(e->sched, id);
        goto fail;
    }
    snprintf(tmp.peer, sizeof tmp.peer, "%s", peer);
    tmp.used = 1;
    slot_release(&e->slots[slot]);
    e->slots[slot] = tmp;
    free(prompt);
    return;
fail:
    free(prompt);
    free(tmp.stop_ids);
    free(tmp.allowed);
    free(tmp.bias);
    send_final(e, peer, id, WIRE_FINISH_ERROR);
}

static void handle_abort(eng_t *e, const wire_msg_t *m) {
    for (uint32_t i = 0; i < m->u.abort.n; i++) {
        char id[SCHED_ID_MAX];
        wire_str_t s = m->u.abort.ids[i];
        if (s.n >= sizeof id) continue;
        memcpy(id, s.p, s.n);
        id[s.n] = 0;
        int32_t slot = sched_find(e->sched, id);
        if (slot < 0) continue; /* finished meanwhile: its final output is on its way */
        sched_abort(e->sched, id);
        /* a final output settles the frontend's count of requests in flight */
        send_final(e, e->slots[slot].peer, id, WIRE_FINISH_ABORT);
        slot_release(&e->slots[slot]);
    }
}

static void reply_utility(eng_t *e, const char *peer, const wire_utility_t *u, int32_t status, int64_t value) {
    wire_utility_t r = *u;
    r.status = status;
    r.value = value;
    e->reply.len = 0;
    if (!wire_encode_utility(&e->reply, WIRE_UTILITY_RESULT, &r)) ipc_server_send(e->ipc, peer, e->reply.data, e->reply.len);
}

static int method_is(wire_str_t m, const char *s) { return m.n == strlen(s) && !memcmp(m.p, s, m.n); }

static void handle_utility(eng_t *e, const char *peer, const wire_utility_t *u) {
    if (method_is(u->method, "health")) {
        reply_utility(e, peer, u, 0, 1);
    } else if (method_is(u->method, "ready")) {
        /* handshake: the supervisor (or a frontend) asks for the engine's shape */
        wire_ready_t r = {.engine_index = (uint16_t)e->o->engine_index,
                          .max_model_len = (uint32_t)e->o->sched.max_model_len,
                          .num_blocks = (uint32_t)e->o->sched.num_blocks,
                          .block_size = (uint32_t)(e->o->sched.block_size ? e->o->sched.block_size : 16),
                          .model_name = {e->o->model_name, (uint32_t)strlen(e->o->model_name)}};
        e->reply.len = 0;
        if (!wire_encode_ready(&e->reply, &r)) ipc_server_send(e->ipc, peer, e->reply.data, e->reply.len);
    } else if (method_is(u->method, "reset_prefix_cache")) {
        reply_utility(e, peer, u, sched_reset_prefix_cache(e->sched), 0);
    } else if (method_is(u->method, "is_sleeping")) {
        reply_utility(e, peer, u, 0, 0);
    } else if (method_is(u->method, "shutdown")) {
        e->shutdown = 1;
        reply_utility(e, peer, u, 0, 0);
    } else {
        reply_utility(e, peer, u, -ENOSYS, 0);
    }
}

static void handle_frame(eng_t *e, const char *peer, const uint8_t *f, long n) {
    wire_msg_t m;
    int rc = wire_decode(f, (size_t)n, &m, e->abort_ids, MAX_ABORT_IDS);
    if (rc) {
        if (e->bad_frames++ < 10)
            elog(e, 0, "dropping a %s frame from %s", rc == WIRE_EVERSION ? "wrong-version" : "malformed", peer);
        return;
    }
    switch (m.type) {
    case WIRE_ADD: handle_add(e, peer, &m.u.add); break;
    case WIRE_ABORT: handle_abort(e, &m); break;
    case WIRE_UTILITY: handle_utility(e, peer, &m.u.utility); break;
    default: elog(e, 1, "ignoring a %s message from %s", wire_type_name(m.type), peer);
    }
}

/* --- the step ------------------------------------------------------------------------------ */

static int step(eng_t *e) {
    const sched_step_t *st = sched_schedule(e->sched);
    if (!st->num_items) return 0;
    for (int32_t i = 0; i < st->num_items; i++) {
        const sched_item_t *it = &st->items[i];
        const sched_req_t *r = sched_req(e->sched, it->slot);
        e->seqs[i] = (eng_seq_t){.tokens = r->tokens + it->start, .n_tokens = it->num_new_tokens,
                                 .start_pos = it->start, .blocks = r->kv.blocks, .n_blocks = r->kv.num_blocks,
                                 .want_logits = it->samples};
    }
    int rc = e->o->runner.forward(e->o->runner.ctx, e->seqs, st->num_items, e->logits);
    if (rc) {
        fprintf(stderr, "engine %d: forward failed (%d); aborting the batch\n", e->o->engine_index, rc);
        for (int32_t i = 0; i < st->num_items; i++) {
            const sched_req_t *r = sched_req(e->sched, st->items[i].slot);
            slot_t *s = &e->slots[st->items[i].slot];
            send_final(e, s->peer, r->id, WIRE_FINISH_ERROR);
            sched_abort(e->sched, r->id);
            slot_release(s);
        }
        return rc;
    }
    int64_t V = e->o->runner.vocab_size;
    for (int32_t i = 0; i < st->num_items; i++) {
        const sched_item_t *it = &st->items[i];
        e->sampled[i] = -1;
        if (!it->samples) continue;
        slot_t *s = &e->slots[it->slot];
        smp_result_t *res = &e->results[i];
        rc = smp_sample(e->ws, 0, &s->p, &s->st, e->logits + (size_t)i * V, V, res);
        if (rc) {
            /* no usable logit (all NaN or masked): end the request as an error */
            const sched_req_t *r = sched_req(e->sched, it->slot);
            send_final(e, s->peer, r->id, WIRE_FINISH_ERROR);
            sched_abort(e->sched, r->id);
            slot_release(s);
            continue;
        }
        e->sampled[i] = res->token;
    }
    const sched_output_t *out = sched_update(e->sched, st, e->sampled);
    double now = mono_s();
    sched_stats_t stats;
    sched_get_stats(e->sched, &stats);
    for (int32_t k = 0; k < out->num_items; k++) {
        const sched_out_item_t *oi = &out->items[k];
        const sched_req_t *r = sched_req(e->sched, oi->slot);
        slot_t *s = &e->slots[oi->slot];
        if (!s->used || !r) continue;
        if (oi->first_output) s->t_first = now;
        s->t_last = now;
        /* the step item of this slot, for its sampling result */
        const smp_result_t *res = NULL;
        for (int32_t i = 0; i < st->num_items; i++)
            if (st->items[i].slot == oi->slot) res = &e->results[i];
        peer_out_t *po = peer_out(e, s->peer, now, &stats);
        if (po) {
            uint32_t tok = (uint32_t)oi->token;
            uint32_t lp_ids[1 + SMP_MAX_LOGPROBS];
            float lp_v[1 + SMP_MAX_LOGPROBS];
            uint32_t n_lp = 0;
            if (res && s->p.logprobs != SMP_LOGPROBS_NONE) {
                lp_ids[0] = tok;
                lp_v[0] = res->logprob;
                for (int j = 0; j < res->n_top; j++) {
                    lp_ids[1 + j] = (uint32_t)res->top_ids[j];
                    lp_v[1 + j] = res->top_logprobs[j];
                }
                n_lp = 1 + (uint32_t)res->n_top;
            }
            wire_output_t o = {.id = {r->id, (uint32_t)strlen(r->id)}, .new_tokens = {&tok, 1},
                               .n_lp_per_token = n_lp, .lp_ids = {lp_ids, n_lp}, .lp_values = lp_v,
                               .finish = finish_of(oi->status), .stop_token = r->stop_reason,
                               .num_cached_tokens = r->num_cached_tokens > 0 ? (uint32_t)r->num_cached_tokens : 0,
                               .nan_logits = res && res->n_nan > 0, .t_queued = (double)r->queued_ns * 1e-9,
                               .t_scheduled = (double)r->scheduled_ns * 1e-9, .t_first_token = s->t_first,
                               .t_last_token = s->t_last, .num_preemptions = (uint32_t)r->num_preemptions};
            if (!wire_outputs_add(&po->buf, &o)) po->n++;
        }
        if (sched_status_finished(oi->status)) slot_release(s);
    }
    /* metrics first: whoever sees these outputs also sees their step counted */
    if (e->metrics) {
        eng_metrics_stats_t ms = {.num_running = stats.num_running, .num_waiting = stats.num_waiting,
                                  .num_waiting_deferred = stats.num_waiting_deferred, .kv_usage = stats.kv_usage,
                                  .prefix_queries = stats.prefix.queries, .prefix_hits = stats.prefix.hits,
                                  .preemptions = stats.num_preemptions};
        eng_metrics_step(e->metrics, &ms,
                         out->num_items ? out->num_prompt_tokens + out->num_generation_tokens : -1);
    }
    flush_outputs(e);
    return 0;
}

static void record_idle(eng_t *e) {
    if (!e->metrics) return;
    sched_stats_t stats;
    sched_get_stats(e->sched, &stats);
    eng_metrics_stats_t ms = {.num_running = stats.num_running, .num_waiting = stats.num_waiting,
                              .num_waiting_deferred = stats.num_waiting_deferred, .kv_usage = stats.kv_usage,
                              .prefix_queries = stats.prefix.queries, .prefix_hits = stats.prefix.hits,
                              .preemptions = stats.num_preemptions};
    eng_metrics_step(e->metrics, &ms, -1);
}

/* --- main loop --------------------------------------------------------------------------------- */

int eng_run(const eng_opts_t *o, volatile sig_atomic_t *stop) {
    eng_t e = {.o = o};
    int rc = sched_new(&o->sched, &e.sched);
    if (rc) return rc;
    e.n_slots = sched_max_requests(e.sched);
    int32_t max_items = o->sched.max_num_seqs;
    e.slots = calloc((size_t)e.n_slots, sizeof *e.slots);
    e.seqs = calloc((size_t)max_items, sizeof *e.seqs);
    e.logits = malloc((size_t)max_items * (size_t)o->runner.vocab_size * sizeof *e.logits);
    e.sampled = calloc((size_t)max_items, sizeof *e.sampled);
    e.results = calloc((size_t)max_items, sizeof *e.results);
    e.ws = smp_workspace_new(o->runner.vocab_size, 1, SMP_LOGPROBS_RAW);
    if (!e.slots || !e.seqs || !e.logits || !e.sampled || !e.results || !e.ws) {
        rc = -ENOMEM;
        goto out;
    }
    smp_rng_seed(&e.rng, o->seed);
    if (o->metrics && (rc = eng_metrics_new(o->metrics, o->model_name, o->engine_index, &e.metrics))) goto out;
    if ((rc = ipc_server_open(o->endpoint, &e.ipc))) goto out;
    int was_busy = 0;
    while (!*stop && !e.shutdown) {
        int busy = sched_has_requests(e.sched);
        char peer[IPC_MAX_ID];
        const uint8_t *f;
        long n = ipc_server_recv(e.ipc, busy ? 0 : 200, peer, &f);
        while (n > 0) {
            handle_frame(&e, peer, f, n);
            n = ipc_server_recv(e.ipc, 0, peer, &f);
        }
        if (n < 0 && n != -EINTR && n != -EAGAIN) {
            fprintf(stderr, "engine %d: receive failed: %s\n", o->engine_index, strerror((int)-n));
            rc = (int)n;
            break;
        }
        if (sched_has_requests(e.sched)) {
            step(&e);
            was_busy = 1;
        } else if (was_busy) {
            /* idle: the gauges go back to 0 (aborts included) */
            record_idle(&e);
            was_busy = 0;
        }
    }
out:
    ipc_server_close(&e.ipc);
    for (int32_t i = 0; e.slots && i < e.n_slots; i++) slot_release(&e.slots[i]);
    for (int i = 0; i < MAX_PEERS; i++) wire_buf_free(&e.peers[i].buf);
    wire_buf_free(&e.reply);
    eng_metrics_destroy(&e.metrics);
    smp_workspace_destroy(&e.ws);
    free(e.slots);
    free(e.seqs);
    free(e.logits);
    free(e.sampled);
    free(e.results);
    sched_destroy(&e.sched);
    return rc;
}
