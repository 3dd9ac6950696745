/* sample: one request's logits row -> next token, in vLLM v1's order
 * (allowed ids, min_tokens, logit_bias, penalties, greedy | temperature,
 * min_p, top_k, top_p, draw), plus the RNG and per-request state.
 * Parameter defaults/validation live in sample_params.c. See sample.h for
 * contracts and docs/sampling.md for the vLLM behaviour matched and where it
 * differs.
 *
 * Invariants: the caller's logits row is never written; all per-row scratch
 * lives in the workspace lane, so smp_sample allocates nothing; top_k uses a
 * k-entry heap, top_p a 64-entry heap and, when the nucleus is wider, a
 * quickselect on cumulative mass: never a full sort of V. Ties are broken
 * by lower token id everywhere so results do not depend on selection order.
 */
#include "sample.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPP_FIRST_K 64   /* first prefix size tried for top_p without top_k */

struct smp_workspace {
    int64_t V;
    int n_lanes;
    smp_logprobs_mode_t mode;
    float *x;   /* (n_lanes, V) processed logits */
    float *w;   /* (n_lanes, V) unnormalized weights exp(x - max) */
    float *y;   /* (n_lanes, V) processed-mode logprob row */
    int32_t *idx; /* (n_lanes, V) selected / kept ids */
};

// ----------------------------------------------------------------------------
// RNG: xoshiro256** (Blackman & Vigna), seeded through splitmix64

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void smp_rng_seed(smp_rng_t *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t smp_rng_next(smp_rng_t *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double smp_rng_uniform(smp_rng_t *r) { return (double)(smp_rng_next(r) >> 11) * 0x1.0p-53; }

// ----------------------------------------------------------------------------
// Per-request state

static uint32_t hash_tok(int32_t t) { return (uint32_t)t * 2654435761u; }

/* Returns the entry of `t`, creating it when `create`; NULL if absent (or no room). */
static smp_tok_count_t *entry_get(smp_state_t *st, int32_t t, bool create) {
    if (!st->slots) return NULL;
    uint32_t h = hash_tok(t) & st->slot_mask;
    for (;;) {
        int32_t s = st->slots[h];
        if (s == 0) break;
        if (st->entries[s - 1].token == t) return &st->entries[s - 1];
        h = (h + 1) & st->slot_mask;
    }
    if (!create || st->n_entries >= st->cap_entries) return NULL;
    smp_tok_count_t *e = &st->entries[st->n_entries++];
    e->token = t;
    e->count = 0;
    e->in_prompt = 0;
    st->slots[h] = st->n_entries;
    return e;
}

int smp_state_init(smp_state_t *st, const smp_params_t *p, const int32_t *prompt, int64_t n_prompt,
                   int64_t max_output, const int32_t *eos_ids, int n_eos, smp_rng_t *engine_rng) {
    memset(st, 0, sizeof *st);
    if (max_output < 1 || n_prompt < 0 || (n_prompt > 0 && !prompt) || n_eos < 0 || (n_eos > 0 && !eos_ids) ||
        (!p->has_seed && !engine_rng))
        return -EINVAL;
    if (p->has_seed)
        smp_rng_seed(&st->rng, (uint64_t)p->seed);
    else
        smp_rng_seed(&st->rng, smp_rng_next(engine_rng));

    st->track_prompt = p->repetition_penalty != 1.0;
    st->track_output = st->track_prompt || p->presence_penalty != 0.0 || p->frequency_penalty != 0.0;
    int64_t n_stop = (p->ignore_eos ? 0 : n_eos) + p->n_stop_token_ids;
    int64_t cap = 0;
    if (st->track_output) cap = max_output + (st->track_prompt ? n_prompt : 0);
    if (cap > INT32_MAX / 4 || n_stop > INT32_MAX / 4) return -EINVAL;
    uint64_t n_slots = 0;
    if (cap > 0) {
        n_slots = 16;
        while (n_slots < 2 * (uint64_t)cap) n_slots <<= 1;
    }
    size_t bytes = (size_t)n_stop * sizeof(int32_t) + (size_t)cap * sizeof(smp_tok_count_t) +
                   (size_t)n_slots * sizeof(int32_t);
    if (bytes > 0) {
        st->mem = calloc(1, bytes);
        if (!st->mem) return -ENOMEM;
    }
    char *m = st->mem;
    st->stop_ids = (int32_t *)m;
    m += (size_t)n_stop * sizeof(int32_t);
    st->entries = cap ? (smp_tok_count_t *)m : NULL;
    m += (size_t)cap * sizeof(smp_tok_count_t);
    st->slots = n_slots ? (int32_t *)m : NULL;
    st->slot_mask = n_slots ? (uint32_t)(n_slots - 1) : 0;
    st->cap_entries = (int32_t)cap;

    int32_t k = 0;
    if (!p->ignore_eos)
        for (int i = 0; i < n_eos; i++) st->stop_ids[k++] = eos_ids[i];
    for (int32_t i = 0; i < p->n_stop_token_ids; i++) st->stop_ids[k++] = p->stop_token_ids[i];
    st->n_stop_ids = k;

    if (st->track_prompt) {
        for (int64_t i = 0; i < n_prompt; i++) {
            if (prompt[i] < 0) {
                smp_state_free(st);
                return -EINVAL;
            }
            entry_get(st, prompt[i], true)->in_prompt = 1;
        }
    }
    return 0;
}

int smp_state_append(smp_state_t *st, int32_t token) {
    if (token < 0) return -EINVAL;
    if (st->track_output) {
        smp_tok_count_t *e = entry_get(st, token, true);
        if (!e) return -ENOSPC;
        e->count++;
    }
    st->n_output++;
    return 0;
}

int32_t smp_state_count(const smp_state_t *st, int32_t token) {
    smp_tok_count_t *e = entry_get((smp_state_t *)st, token, false);
    return e ? e->count : 0;
}

void smp_state_free(smp_state_t *st) {
    free(st->mem);
    memset(st, 0, sizeof *st);
}

// ----------------------------------------------------------------------------
// Workspace

smp_workspace_t *smp_workspace_new(int64_t V, int n_lanes, smp_logprobs_mode_t mode) {
    if (V < 1 || V > INT32_MAX || n_lanes < 1 || n_lanes > 4096 ||
        (mode != SMP_LOGPROBS_RAW && mode != SMP_LOGPROBS_PROCESSED))
        return NULL;
    smp_workspace_t *ws = calloc(1, sizeof *ws);
    if (!ws) return NULL;
    ws->V = V;
    ws->n_lanes = n_lanes;
    ws->mode = mode;
    size_t n = (size_t)V * (size_t)n_lanes;
    ws->x = malloc(n * sizeof(float));
    ws->w = malloc(n * sizeof(float));
    ws->y = mode == SMP_LOGPROBS_PROCESSED ? malloc(n * sizeof(float)) : NULL;
    ws->idx = malloc(n * sizeof(int32_t));
    if (!ws->x || !ws->w || !ws->idx || (mode == SMP_LOGPROBS_PROCESSED && !ws->y)) smp_workspace_destroy(&ws);
    return ws;
}

void smp_workspace_destroy(smp_workspace_t **pp) {
    if (!pp || !*pp) return;
    smp_workspace_t *ws = *pp;
    free(ws->x);
    free(ws->w);
    free(ws->y);
    free(ws->idx);
    free(ws);
    *pp = NULL;
}

// ----------------------------------------------------------------------------
// Selection helpers: total order "a before b" = higher value, then lower id

static inline float key(float v) { return isnan(v) ? -INFINITY : v; }

static inline bool before(const float *v, int32_t a, int32_t b) {
    float va = key(v[a]), vb = key(v[b]);
    return va > vb || (va == vb && a < b);
}

/* Sift down in a heap whose root is the entry that sorts last. */
static void sift_down(const float *v, int32_t *h, int64_t n, int64_t i) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, worst = i;
        if (l < n && before(v, h[worst], h[l])) worst = l;
        if (r < n && before(v, h[worst], h[r])) worst = r;
        if (worst == i) return;
        int32_t t = h[i];
        h[i] = h[worst];
        h[worst] = t;
        i = worst;
    }
}

/* Writes the first k ids of 0..V-1 in `before` order (best first) into out.
 * O(V log k) worst case, about O(V) when most entries lose to the heap root. */
static int64_t select_top(const float *v, int64_t V, int64_t k, int32_t *out) {
    if (k > V) k = V;
    if (k <= 0) return 0;
    int64_t n = 0;
    for (int64_t i = 0; i < V; i++) {
        int32_t id = (int32_t)i;
        if (n < k) {
            /* sift up */
            int64_t c = n++;
            out[c] = id;
            while (c > 0) {
                int64_t par = (c - 1) / 2;
                if (!before(v, out[par], out[c])) break;
                int32_t t = out[par];
                out[par] = out[c];
                out[c] = t;
                c = par;
            }
        } else if (before(v, id, out[0])) {
            out[0] = id;
            sift_down(v, out, n, 0);
        }
    }
    /* Heap sort: the root (worst) goes to the end each time -> best first. */
    for (int64_t end = n - 1; end > 0; end--) {
        int32_t t = out[0];
        out[0] = out[end];
        out[end] = t;
        sift_down(v, out, end, 0);
    }
    return n;
}

/* Sorts ids a[0..n) best first (heap sort; no allocation). */
static void sort_ids(const float *v, int32_t *a, int64_t n) {
    for (int64_t i = n / 2 - 1; i >= 0; i--) sift_down(v, a, n, i);
    for (int64_t end = n - 1; end > 0; end--) {
        int32_t t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(v, a, end, 0);
    }
}

/* Nucleus of the candidates idx[0..n) (ordered by x desc, id asc; x has no
 * NaN): moves the kept ids (those whose preceding mass is < limit) to the
 * front, in no particular order, and returns their count; *kept_mass gets
 * their total weight. A quickselect on cumulative mass with pseudo-random
 * pivots: expected O(n), where sorting the nucleus would be O(n log n). */
static int64_t nucleus(const float *x, const float *w, int32_t *idx, int64_t n, double limit, double *kept_mass) {
    int64_t lo = 0, hi = n;
    double base = 0; /* mass of idx[0..lo), all kept; invariant: base < limit */
    uint64_t r = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    while (hi - lo > 16) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t pi = lo + (int64_t)((r >> 33) % (uint64_t)(hi - lo));
        int32_t piv = idx[pi];
        idx[pi] = idx[hi - 1];
        idx[hi - 1] = piv;
        int64_t s = lo;
        double mb = 0;
        for (int64_t i = lo; i < hi - 1; i++) {
            int32_t id = idx[i];
            if (x[id] > x[piv] || (x[id] == x[piv] && id < piv)) {
                mb += w[id];
                idx[i] = idx[s];
                idx[s++] = id;
            }
        }
        idx[hi - 1] = idx[s];
        idx[s] = piv;
        if (base + mb >= limit) {
            hi = s; /* the pivot already has >= limit before it: the boundary is below */
        } else {
            base += mb + w[piv]; /* everything better than the pivot, and the pivot, is kept */
            lo = s + 1;
            if (base >= limit) {
                *kept_mass = base;
                return lo;
            }
        }
    }
    sort_ids(x, idx + lo, hi - lo);
    int64_t i = lo;
    while (i < hi && base < limit) base += w[idx[i++]];
    *kept_mass = base;
    return i;
}

/* log-sum-exp over a row, NaN as -inf. *n_posinf receives the +inf count. */
static double row_lse(const float *v, int64_t V, float *max_out, int64_t *n_posinf) {
    float m = -INFINITY;
    int64_t ninf = 0;
    for (int64_t i = 0; i < V; i++) {
        float a = key(v[i]);
        if (a > m) m = a;
        if (a == INFINITY) ninf++;
    }
    *max_out = m;
    *n_posinf = ninf;
    if (m == -INFINITY || m == INFINITY) return m;
    double s = 0;
    for (int64_t i = 0; i < V; i++) s += exp((double)key(v[i]) - (double)m);
    return (double)m + log(s);
}

static float logprob_of(float v, double lse, int64_t n_posinf) {
    v = key(v);
    if (n_posinf > 0) return v == INFINITY ? (float)-log((double)n_posinf) : -INFINITY;
    if (lse == -INFINITY) return -INFINITY;
    return (float)((double)v - lse);
}

/* log_softmax(row)[token], vLLM's rank and the top n of `row` into out. */
static void fill_logprobs(const float *row, int64_t V, int32_t token, int n_top, int32_t *heap, smp_result_t *out) {
    float m;
    int64_t ninf;
    double lse = row_lse(row, V, &m, &ninf);
    float vt = key(row[token]);
    int64_t rank = 0;
    for (int64_t i = 0; i < V; i++) rank += key(row[i]) >= vt;
    out->logprob = logprob_of(row[token], lse, ninf);
    out->rank = (int32_t)rank;
    if (n_top > SMP_MAX_LOGPROBS) n_top = SMP_MAX_LOGPROBS;
    out->n_top = (int32_t)select_top(row, V, n_top, heap);
    for (int32_t i = 0; i < out->n_top; i++) {
        out->top_ids[i] = heap[i];
        out->top_logprobs[i] = logprob_of(row[heap[i]], lse, ninf);
    }
}

int smp_token_logprobs(smp_workspace_t *ws, int lane, const float *logits, int64_t V, int32_t token, int n_top,
                       smp_result_t *out) {
    if (!ws || lane < 0 || lane >= ws->n_lanes || V != ws->V || token < 0 || token >= V || n_top < 0 ||
        n_top > SMP_MAX_LOGPROBS)
        return -EINVAL;
    int32_t heap[SMP_MAX_LOGPROBS];
    memset(out, 0, sizeof *out);
    out->token = token;
    fill_logprobs(logits, V, token, n_top, heap, out);
    return 0;
}

// ----------------------------------------------------------------------------
// Stage 1: masks, bias, penalties

int smp_process_logits(const smp_params_t *p, const smp_state_t *st, const float *logits, int64_t V, float *out) {
    if (V < 1 || !p || !st || !logits || !out) return -EINVAL;
    int n_nan = 0;
    for (int64_t i = 0; i < V; i++) {
        float v = logits[i];
        if (isnan(v)) {
            n_nan++;
            v = -INFINITY;
        }
        out[i] = v;
    }
    if (p->has_allowed_token_ids) {
        /* Everything else is -inf: overwrite the row, then restore the allowed ids. */
        for (int64_t i = 0; i < V; i++) out[i] = -INFINITY;
        for (int32_t j = 0; j < p->n_allowed_token_ids; j++) {
            int32_t t = p->allowed_token_ids[j];
            if (t >= 0 && t < V) out[t] = key(logits[t]);
        }
    }
    if (st->n_output < p->min_tokens)
        for (int32_t j = 0; j < st->n_stop_ids; j++) {
            int32_t t = st->stop_ids[j];
            if (t >= 0 && t < V) out[t] = -INFINITY;
        }
    for (int32_t j = 0; j < p->n_logit_bias; j++) {
        int32_t t = p->logit_bias[j].token;
        float b = p->logit_bias[j].bias;
        if (b > SMP_MAX_LOGIT_BIAS) b = (float)SMP_MAX_LOGIT_BIAS;
        if (b < -SMP_MAX_LOGIT_BIAS) b = (float)-SMP_MAX_LOGIT_BIAS;
        if (t >= 0 && t < V) out[t] += b;
    }
    if (st->track_output) {
        /* float32 arithmetic in vLLM's order: repetition, frequency, presence. */
        float rep = (float)p->repetition_penalty, freq = (float)p->frequency_penalty,
              pres = (float)p->presence_penalty;
        for (int32_t j = 0; j < st->n_entries; j++) {
            const smp_tok_count_t *e = &st->entries[j];
            if (e->token >= V) continue;
            float v = out[e->token];
            if (st->track_prompt && (e->in_prompt || e->count > 0)) v = v > 0 ? v / rep : v * rep;
            v -= freq * (float)e->count;
            v -= pres * (float)(e->count > 0);
            out[e->token] = v;
        }
    }
    return n_nan;
}

// ----------------------------------------------------------------------------
// Stage 2: temperature, min_p, top_k, top_p -> kept set

/* The kept set of one lane: either `dense` (every id with w > 0, by id) or
 * the first n ids of idx (best first). sum = total weight of the set. */
typedef struct {
    bool dense;
    int64_t n;
    double sum;
    float max;
} kept_t;

static int filter(smp_workspace_t *ws, int lane, const smp_params_t *p, kept_t *k) {
    int64_t V = ws->V;
    float *x = ws->x + (size_t)lane * (size_t)V;
    float *w = ws->w + (size_t)lane * (size_t)V;
    int32_t *idx = ws->idx + (size_t)lane * (size_t)V;
    float t = (float)p->temperature;
    float m = -INFINITY;
    for (int64_t i = 0; i < V; i++) {
        x[i] = x[i] / t;
        if (x[i] > m) m = x[i];
    }
    if (m == -INFINITY) return -EDOM;
    /* Weights relative to the best token (so p_i / p_max = w_i); +inf logits
     * share the mass equally, as the limit of softmax would. */
    float min_p = (float)p->min_p;
    int64_t n_finite = 0;
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        float wi;
        if (m == INFINITY)
            wi = x[i] == INFINITY ? 1.0f : 0.0f;
        else
            wi = x[i] == -INFINITY ? 0.0f : expf(x[i] - m);
        if (min_p > 0 && wi < min_p) { /* vLLM: p_i < min_p * p_max is masked */
            wi = 0;
            x[i] = -INFINITY;
        }
        if (x[i] != -INFINITY && (m != INFINITY || wi > 0))
            n_finite++;
        else
            x[i] = -INFINITY; /* finite logits beside +inf ones are out too */
        w[i] = wi;
        sum += wi;
    }
    k->max = m;
    int64_t top_k = p->top_k;
    bool use_k = top_k > 0 && top_k < n_finite;
    bool use_p = p->top_p < 1.0;
    if (!use_k && !use_p) {
        k->dense = true;
        k->n = n_finite;
        k->sum = sum;
        return 0;
    }
    k->dense = false;
    int64_t n_list;
    if (use_k) {
        /* vLLM keeps every token whose logit ties the k-th largest. */
        n_list = select_top(x, V, top_k, idx);
        float kth = x[idx[n_list - 1]];
        int64_t ties = 0;
        for (int64_t i = 0; i < V; i++) ties += x[i] >= kth;
        if (ties > n_list) n_list = select_top(x, V, ties, idx);
        sum = 0;
        for (int64_t i = 0; i < n_list; i++) sum += w[idx[i]];
    } else {
        n_list = select_top(x, V, n_finite < TOPP_FIRST_K ? n_finite : TOPP_FIRST_K, idx);
    }
    if (!use_p) {
        k->n = n_list;
        k->sum = sum;
        return 0;
    }
    /* Keep a token while the mass strictly before it is < top_p: the smallest
     * prefix reaching top_p, the boundary token included (vLLM's ascending
     * cumsum <= 1 - p mask, read from the other end). Without top_k, the
     * sorted best 64 are tried first: LLM nuclei are usually that small. */
    double limit = p->top_p * sum;
    double cum = 0;
    int64_t keep = 0;
    while (keep < n_list && cum < limit) cum += w[idx[keep++]];
    if (cum >= limit || use_k || n_list >= n_finite) {
        k->n = keep;
        k->sum = cum;
        return 0;
    }
    /* The nucleus is wider than the first prefix: select it from all
     * candidates by mass instead of sorting them. */
    int64_t n = 0;
    for (int64_t i = 0; i < V; i++)
        if (x[i] != -INFINITY) idx[n++] = (int32_t)i;
    k->n = nucleus(x, w, idx, n, limit, &k->sum);
    return 0;
}

/* Runs stage 1 into the lane's x and stage 2 into its w / idx. */
static int prepare(smp_workspace_t *ws, int lane, const smp_params_t *p, const smp_state_t *st, const float *logits,
                   int64_t V, int *n_nan) {
    if (!ws || !p || !st || !logits || lane < 0 || lane >= ws->n_lanes || V != ws->V) return -EINVAL;
    float *x = ws->x + (size_t)lane * (size_t)V;
    int r = smp_process_logits(p, st, logits, V, x);
    if (r < 0) return r;
    *n_nan = r;
    return 0;
}

int smp_kept_set(smp_workspace_t *ws, int lane, const smp_params_t *p, const smp_state_t *st, const float *logits,
                 int64_t V, int32_t *ids, float *probs, int64_t cap, int64_t *n_kept) {
    int n_nan;
    int r = prepare(ws, lane, p, st, logits, V, &n_nan);
    if (r < 0) return r;
    if (smp_params_is_greedy(p)) return -EINVAL;
    kept_t k;
    r = filter(ws, lane, p, &k);
    if (r < 0) return r;
    const float *w = ws->w + (size_t)lane * (size_t)V;
    const int32_t *idx = ws->idx + (size_t)lane * (size_t)V;
    int64_t n = 0;
    if (k.dense) {
        for (int64_t i = 0; i < V && n < k.n; i++) {
            if (ws->x[(size_t)lane * (size_t)V + (size_t)i] == -INFINITY) continue;
            if (n < cap) {
                ids[n] = (int32_t)i;
                probs[n] = (float)(w[i] / k.sum);
            }
            n++;
        }
    } else {
        sort_ids(ws->x + (size_t)lane * (size_t)V, ws->idx + (size_t)lane * (size_t)V, k.n);
        for (; n < k.n; n++)
            if (n < cap) {
                ids[n] = idx[n];
                probs[n] = (float)(w[idx[n]] / k.sum);
            }
    }
    *n_kept = k.n;
    return 0;
}

// ----------------------------------------------------------------------------
// Sampling

int smp_sample(smp_workspace_t *ws, int lane, const smp_params_t *p, smp_state_t *st, const float *logits,
               int64_t V, smp_result_t *out) {
    int n_nan = 0;
    memset(out, 0, sizeof *out);
    out->token = -1;
    int r = prepare(ws, lane, p, st, logits, V, &n_nan);
    if (r < 0) return r;
    out->n_nan = n_nan;
    float *x = ws->x + (size_t)lane * (size_t)V;
    float *w = ws->w + (size_t)lane * (size_t)V;
    int32_t *idx = ws->idx + (size_t)lane * (size_t)V;
    bool greedy = smp_params_is_greedy(p);
    int32_t token = -1;
    kept_t k = {0};
    if (greedy) {
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (x[i] > x[best]) best = i; /* strict: the lowest id wins ties */
        if (x[best] == -INFINITY) return -EDOM;
        token = (int32_t)best;
    } else {
        r = filter(ws, lane, p, &k);
        if (r < 0) return r;
        double u = smp_rng_uniform(&st->rng) * k.sum, cum = 0;
        if (k.dense) {
            for (int64_t i = 0; i < V; i++) {
                if (w[i] <= 0 || x[i] == -INFINITY) continue;
                token = (int32_t)i; /* the last positive one absorbs rounding */
                cum += w[i];
                if (u < cum) break;
            }
        } else {
            for (int64_t i = 0; i < k.n; i++) {
                if (w[idx[i]] <= 0) continue;
                token = idx[i];
                cum += w[idx[i]];
                if (u < cum) break;
            }
        }
        if (token < 0) return -EDOM;
    }
    out->token = token;

    if (p->logprobs != SMP_LOGPROBS_NONE) {
        int n_top = p->logprobs < 0 ? SMP_MAX_LOGPROBS : p->logprobs;
        int32_t heap[SMP_MAX_LOGPROBS];
        if (ws->mode == SMP_LOGPROBS_RAW) {
            fill_logprobs(logits, V, token, n_top, heap, out);
        } else if (greedy) {
            fill_logprobs(x, V, token, n_top, heap, out);
        } else {
            /* The sampled distribution as a logit row: kept tokens keep their
             * scaled logit, the rest are -inf. */
            float *y = ws->y + (size_t)lane * (size_t)V;
            if (k.dense) {
                memcpy(y, x, (size_t)V * sizeof(float));
            } else {
                for (int64_t i = 0; i < V; i++) y[i] = -INFINITY;
                for (int64_t i = 0; i < k.n; i++) y[idx[i]] = x[idx[i]];
            }
            fill_logprobs(y, V, token, n_top, heap, out);
        }
    }
    return smp_state_append(st, token);
}
