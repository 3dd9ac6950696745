/* Frontend <-> engine wire format (see wire.h and docs/wire.md).
 *
 * Frame: u16 magic | u8 version | u8 type | u32 payload length | payload.
 * Payload fields are little-endian; strings and arrays are a u32 count
 * followed by the bytes / elements. The decoder never trusts a count: every
 * read goes through a cursor that checks the remaining length first. */
#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define HDR 8u
#define MAX_COUNT (16u << 20) /* elements in one array: far above any prompt */

/* --- buffer and writers ------------------------------------------------------ */

void wire_buf_free(wire_buf_t *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int reserve(wire_buf_t *b, size_t n) {
    if (b->len + n <= b->cap) return 0;
    size_t c = b->cap ? b->cap : 256;
    while (c < b->len + n) c *= 2;
    uint8_t *p = realloc(b->data, c);
    if (!p) return WIRE_ENOMEM;
    b->data = p;
    b->cap = c;
    return 0;
}

static int put(wire_buf_t *b, const void *p, size_t n) {
    if (reserve(b, n)) return WIRE_ENOMEM;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static int put_u8(wire_buf_t *b, uint8_t v) { return put(b, &v, 1); }

static int put_u16(wire_buf_t *b, uint16_t v) {
    uint8_t t[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    return put(b, t, 2);
}

static int put_u32(wire_buf_t *b, uint32_t v) {
    uint8_t t[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return put(b, t, 4);
}

static int put_u64(wire_buf_t *b, uint64_t v) { return put_u32(b, (uint32_t)v) || put_u32(b, (uint32_t)(v >> 32)); }

static int put_f32(wire_buf_t *b, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return put_u32(b, u);
}

static int put_f64(wire_buf_t *b, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return put_u64(b, u);
}

static int put_str(wire_buf_t *b, wire_str_t s) { return put_u32(b, s.n) || put(b, s.p, s.n); }

static int put_u32s(wire_buf_t *b, wire_u32s_t a) {
    if (put_u32(b, a.n)) return WIRE_ENOMEM;
    for (uint32_t i = 0; i < a.n; i++)
        if (put_u32(b, a.p[i])) return WIRE_ENOMEM;
    return 0;
}

static int put_f32s(wire_buf_t *b, const float *v, uint32_t n) {
    for (uint32_t i = 0; i < n; i++)
        if (put_f32(b, v[i])) return WIRE_ENOMEM;
    return 0;
}

static void patch_u32(wire_buf_t *b, size_t at, uint32_t v) {
    uint8_t *p = b->data + at;
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* Writes a header with a placeholder length; returns its offset. */
static int begin(wire_buf_t *b, wire_type_t t, size_t *at) {
    *at = b->len;
    return put_u16(b, WIRE_MAGIC) || put_u8(b, WIRE_VERSION) || put_u8(b, (uint8_t)t) || put_u32(b, 0);
}

static void end(wire_buf_t *b, size_t at) { patch_u32(b, at + 4, (uint32_t)(b->len - at - HDR)); }

/* --- encoders ------------------------------------------------------------------ */

static int put_sampling(wire_buf_t *b, const wire_sampling_t *s) {
    if (put_f32(b, s->temperature) || put_f32(b, s->top_p) || put_f32(b, s->min_p) || put_u32(b, (uint32_t)s->top_k) ||
        put_f32(b, s->presence_penalty) || put_f32(b, s->frequency_penalty) || put_f32(b, s->repetition_penalty) ||
        put_u64(b, s->seed) || put_u8(b, s->has_seed) || put_u8(b, s->ignore_eos) || put_u8(b, s->detect_nan) ||
        put_u32(b, s->max_tokens) || put_u32(b, s->min_tokens) || put_u32(b, (uint32_t)s->logprobs) ||
        put_u32(b, (uint32_t)s->prompt_logprobs) || put_u32s(b, s->stop_token_ids) ||
        put_u32s(b, s->allowed_token_ids) || put_u32s(b, s->logit_bias_ids) ||
        put_f32s(b, s->logit_bias_values, s->logit_bias_ids.n))
        return WIRE_ENOMEM;
    return 0;
}

int wire_encode_add(wire_buf_t *b, const wire_add_t *m) {
    size_t at;
    if (begin(b, WIRE_ADD, &at) || put_str(b, m->id) || put_u32s(b, m->prompt) || put_sampling(b, &m->sp) ||
        put_f64(b, m->arrival_time) || put_u16(b, m->client_index) || put_u32(b, (uint32_t)m->priority))
        return WIRE_ENOMEM;
    end(b, at);
    return 0;
}

int wire_encode_abort(wire_buf_t *b, const wire_str_t *ids, uint32_t n) {
    size_t at;
    if (begin(b, WIRE_ABORT, &at) || put_u32(b, n)) return WIRE_ENOMEM;
    for (uint32_t i = 0; i < n; i++)
        if (put_str(b, ids[i])) return WIRE_ENOMEM;
    end(b, at);
    return 0;
}

int wire_encode_utility(wire_buf_t *b, wire_type_t type, const wire_utility_t *m) {
    size_t at;
    if (type != WIRE_UTILITY && type != WIRE_UTILITY_RESULT) return WIRE_EMALFORMED;
    if (begin(b, type, &at) || put_u32(b, m->call_id) || put_str(b, m->method) || put_u64(b, (uint64_t)m->arg) ||
        put_u32(b, (uint32_t)m->status) || put_u64(b, (uint64_t)m->value))
        return WIRE_ENOMEM;
    end(b, at);
    return 0;
}

int wire_encode_ready(wire_buf_t *b, const wire_ready_t *m) {
    size_t at;
    if (begin(b, WIRE_READY, &at) || put_u16(b, m->engine_index) || put_u32(b, m->max_model_len) ||
        put_u32(b, m->num_blocks) || put_u32(b, m->block_size) || put_str(b, m->model_name))
        return WIRE_ENOMEM;
    end(b, at);
    return 0;
}

int wire_encode_dead(wire_buf_t *b, uint16_t engine_index, const char *reason) {
    size_t at;
    wire_str_t r = {reason, (uint32_t)strlen(reason)};
    if (begin(b, WIRE_ENGINE_DEAD, &at) || put_u16(b, engine_index) || put_str(b, r)) return WIRE_ENOMEM;
    end(b, at);
    return 0;
}

int wire_outputs_begin(wire_buf_t *b, uint16_t engine_index, double t_step, uint32_t num_running,
                       uint32_t num_waiting, size_t *mark) {
    if (begin(b, WIRE_OUTPUTS, mark) || put_u16(b, engine_index) || put_f64(b, t_step) || put_u32(b, num_running) ||
        put_u32(b, num_waiting) || put_u32(b, 0))
        return WIRE_ENOMEM;
    return 0;
}

int wire_outputs_add(wire_buf_t *b, const wire_output_t *o) {
    uint32_t n_lp = o->n_lp_per_token ? o->n_lp_per_token * o->new_tokens.n : 0;
    if (put_str(b, o->id) || put_u32s(b, o->new_tokens) || put_u32(b, o->n_lp_per_token)) return WIRE_ENOMEM;
    for (uint32_t i = 0; i < n_lp; i++)
        if (put_u32(b, o->lp_ids.p[i])) return WIRE_ENOMEM;
    if (put_f32s(b, o->lp_values, n_lp) || put_u8(b, o->finish) || put_u32(b, (uint32_t)o->stop_token) ||
        put_u32(b, o->num_cached_tokens) || put_u8(b, o->nan_logits) || put_f64(b, o->t_queued) ||
        put_f64(b, o->t_scheduled) || put_f64(b, o->t_first_token) || put_f64(b, o->t_last_token) ||
        put_u32(b, o->num_preemptions))
        return WIRE_ENOMEM;
    return 0;
}

void wire_outputs_end(wire_buf_t *b, size_t mark, uint32_t n_outputs) {
    patch_u32(b, mark + HDR + 2 + 8 + 4 + 4, n_outputs);
    end(b, mark);
}

/* --- decoding ------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *p, *e;
    int bad;
} cur_t;

static const uint8_t *take(cur_t *c, size_t n) {
    if (c->bad || (size_t)(c->e - c->p) < n) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *r = c->p;
    c->p += n;
    return r;
}

static uint8_t get_u8(cur_t *c) {
    const uint8_t *p = take(c, 1);
    return p ? p[0] : 0;
}

static uint16_t get_u16(cur_t *c) {
    const uint8_t *p = take(c, 2);
    return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

static uint32_t get_u32(cur_t *c) {
    const uint8_t *p = take(c, 4);
    return p ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24 : 0;
}

static uint64_t get_u64(cur_t *c) {
    uint64_t lo = get_u32(c);
    return lo | (uint64_t)get_u32(c) << 32;
}

static float get_f32(cur_t *c) {
    uint32_t u = get_u32(c);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double get_f64(cur_t *c) {
    uint64_t u = get_u64(c);
    double d;
    memcpy(&d, &u, 8);
    return d;
}

static wire_str_t get_str(cur_t *c) {
    uint32_t n = get_u32(c);
    const uint8_t *p = n <= MAX_COUNT ? take(c, n) : (c->bad = 1, NULL);
    return (wire_str_t){p ? (const char *)p : "", p ? n : 0};
}

static wire_u32s_t get_u32s(cur_t *c) {
    uint32_t n = get_u32(c);
    const uint8_t *p = n <= MAX_COUNT ? take(c, 4 * (size_t)n) : (c->bad = 1, NULL);
    return (wire_u32s_t){(const uint32_t *)(const void *)p, p ? n : 0};
}

static const float *get_f32s(cur_t *c, uint32_t n) {
    const uint8_t *p = n <= MAX_COUNT ? take(c, 4 * (size_t)n) : (c->bad = 1, NULL);
    return (const float *)(const void *)p;
}

float wire_f32_at(const float *base, uint32_t i) {
    float f;
    memcpy(&f, (const uint8_t *)base + 4 * (size_t)i, 4);
    return f;
}

static void get_sampling(cur_t *c, wire_sampling_t *s) {
    s->temperature = get_f32(c);
    s->top_p = get_f32(c);
    s->min_p = get_f32(c);
    s->top_k = (int32_t)get_u32(c);
    s->presence_penalty = get_f32(c);
    s->frequency_penalty = get_f32(c);
    s->repetition_penalty = get_f32(c);
    s->seed = get_u64(c);
    s->has_seed = get_u8(c);
    s->ignore_eos = get_u8(c);
    s->detect_nan = get_u8(c);
    s->max_tokens = get_u32(c);
    s->min_tokens = get_u32(c);
    s->logprobs = (int32_t)get_u32(c);
    s->prompt_logprobs = (int32_t)get_u32(c);
    s->stop_token_ids = get_u32s(c);
    s->allowed_token_ids = get_u32s(c);
    s->logit_bias_ids = get_u32s(c);
    s->logit_bias_values = get_f32s(c, s->logit_bias_ids.n);
    if (s->has_seed > 1 || s->ignore_eos > 1 || s->detect_nan > 1) c->bad = 1;
}

/* One output record; the cursor is left after it. */
static void get_output(cur_t *c, wire_output_t *o) {
    o->id = get_str(c);
    o->new_tokens = get_u32s(c);
    o->n_lp_per_token = get_u32(c);
    if (o->n_lp_per_token > 21) { /* the sampled token + at most 20 top logprobs */
        c->bad = 1;
        return;
    }
    uint32_t n_lp = o->n_lp_per_token * o->new_tokens.n;
    const uint8_t *ids = take(c, 4 * (size_t)n_lp);
    o->lp_ids = (wire_u32s_t){(const uint32_t *)(const void *)ids, ids ? n_lp : 0};
    o->lp_values = get_f32s(c, n_lp);
    o->finish = get_u8(c);
    o->stop_token = (int32_t)get_u32(c);
    o->num_cached_tokens = get_u32(c);
    o->nan_logits = get_u8(c);
    o->t_queued = get_f64(c);
    o->t_scheduled = get_f64(c);
    o->t_first_token = get_f64(c);
    o->t_last_token = get_f64(c);
    o->num_preemptions = get_u32(c);
    if (o->finish > WIRE_FINISH_MAX || o->nan_logits > 1) c->bad = 1;
}

int wire_decode(const void *frame, size_t len, wire_msg_t *m, wire_str_t *ids, uint32_t max_ids) {
    memset(m, 0, sizeof *m);
    if (len < HDR || len > WIRE_MAX_FRAME) return WIRE_EMALFORMED;
    cur_t c = {frame, (const uint8_t *)frame + len, 0};
    uint16_t magic = get_u16(&c);
    uint8_t ver = get_u8(&c), type = get_u8(&c);
    uint32_t plen = get_u32(&c);
    if (magic != WIRE_MAGIC) return WIRE_EMALFORMED;
    if (ver != WIRE_VERSION) return WIRE_EVERSION;
    if (plen != len - HDR || type < 1 || type > WIRE_TYPE_MAX) return WIRE_EMALFORMED;
    m->type = (wire_type_t)type;
    switch (m->type) {
    case WIRE_ADD: {
        wire_add_t *a = &m->u.add;
        a->id = get_str(&c);
        a->prompt = get_u32s(&c);
        get_sampling(&c, &a->sp);
        a->arrival_time = get_f64(&c);
        a->client_index = get_u16(&c);
        a->priority = (int32_t)get_u32(&c);
        if (!a->id.n) c.bad = 1;
        break;
    }
    case WIRE_ABORT: {
        uint32_t n = get_u32(&c);
        if (n > max_ids) return WIRE_EMALFORMED;
        for (uint32_t i = 0; i < n; i++) ids[i] = get_str(&c);
        m->u.abort.ids = ids;
        m->u.abort.n = n;
        break;
    }
    case WIRE_OUTPUTS: {
        wire_outputs_t *o = &m->u.outputs;
        o->engine_index = get_u16(&c);
        o->t_step = get_f64(&c);
        o->num_running = get_u32(&c);
        o->num_waiting = get_u32(&c);
        o->n_outputs = get_u32(&c);
        o->outputs_p = c.p;
        o->outputs_len = (uint32_t)(c.e - c.p);
        /* validate every record now, so iteration cannot fail later */
        for (uint32_t i = 0; i < o->n_outputs && !c.bad; i++) {
            wire_output_t tmp;
            get_output(&c, &tmp);
        }
        break;
    }
    case WIRE_UTILITY:
    case WIRE_UTILITY_RESULT: {
        wire_utility_t *u = &m->u.utility;
        u->call_id = get_u32(&c);
        u->method = get_str(&c);
        u->arg = (int64_t)get_u64(&c);
        u->status = (int32_t)get_u32(&c);
        u->value = (int64_t)get_u64(&c);
        break;
    }
    case WIRE_READY: {
        wire_ready_t *r = &m->u.ready;
        r->engine_index = get_u16(&c);
        r->max_model_len = get_u32(&c);
        r->num_blocks = get_u32(&c);
        r->block_size = get_u32(&c);
        r->model_name = get_str(&c);
        break;
    }
    case WIRE_ENGINE_DEAD:
        m->u.dead.engine_index = get_u16(&c);
        m->u.dead.reason = get_str(&c);
        break;
    }
    if (c.bad || c.p != c.e) return WIRE_EMALFORMED;
    return 0;
}

int wire_outputs_next(const wire_outputs_t *m, uint32_t *pos, wire_output_t *o) {
    if (*pos >= m->outputs_len) return 0;
    cur_t c = {m->outputs_p + *pos, m->outputs_p + m->outputs_len, 0};
    get_output(&c, o);
    if (c.bad) return 0; /* cannot happen for a frame wire_decode accepted */
    *pos = (uint32_t)(c.p - m->outputs_p);
    return 1;
}

const char *wire_type_name(int t) {
    static const char *const n[] = {"?", "add", "abort", "outputs", "utility", "utility_result", "ready", "engine_dead"};
    return t >= 1 && t <= WIRE_TYPE_MAX ? n[t] : "unknown";
}
