/* mr_cpu: the CPU backend of the model runner.
 *
 * State allocated once in init: a worker pool (k_pool), the KV pool and the
 * activations for max_batch_tokens tokens. forward() allocates nothing.
 *
 * KV layout (f32): for each layer, num_blocks blocks; a block holds, per KV
 * head, block_size consecutive token slots of head_dim floats:
 *     k_cache[((layer * num_blocks + block) * n_kv_heads + kv_head) * block_size + slot][head_dim]
 * (v_cache identical). One head's slots are contiguous within a block, so
 * attention streams block_size * head_dim floats per block and head.
 *
 * A forward pass: embeddings -> per layer [RMSNorm, Q/K/V (+bias), RoPE, write
 * K/V of every new token into its slot, causal GQA attention over each
 * sequence's positions 0..p through its block table, O projection + residual,
 * RMSNorm, SwiGLU MLP + residual] -> final RMSNorm of the requested rows ->
 * logits. All new K/V of a layer are written before that layer's attention,
 * so a prefill chunk attends to its own earlier tokens through the cache.
 * Matrix products and attention are split across the pool's threads; each
 * output value is computed by one thread in a fixed order, so results do not
 * depend on the thread count.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k_ops.h"
#include "mr_internal.h"

typedef struct {
    const mr_model_t *m;
    mr_opts_t o;
    k_pool_t *pool;
    int64_t H, hd, nh, nkv, F, V, L, T, NB, BS, max_ctx;
    float *kc, *vc;    /* (L, NB, nkv, BS, hd) */
    float *x, *xb, *xb2; /* (T, H) */
    float *q, *att;    /* (T, nh*hd) */
    float *k, *v;      /* (T, nkv*hd) */
    float *hb, *hb2;   /* (T, F) */
    float *cs, *sn;    /* (T, hd/2) */
    float *scores;     /* (pool chunks, max_ctx): attention scratch per chunk */
    int32_t *tok_seq;  /* (T) sequence of each batch token */
    int32_t *out_rows; /* (T) batch token of each logits row */
    void *q8;          /* k_matmul_q8 scratch for (T, max n_in) activations, or NULL */
    size_t q8_bytes;
    void *act;         /* the one allocation behind the activations */
} cpu_t;

/* --- init / free ------------------------------------------------------------------------- */

static void cpu_free(void **st) {
    cpu_t *c = st ? *st : NULL;
    if (!c) return;
    k_pool_destroy(&c->pool);
    free(c->kc);
    free(c->vc);
    free(c->act);
    free(c);
    *st = NULL;
}

/* Carves n elements of `size` bytes out of the arena at *off (64-byte aligned). */
static void *carve(char *base, size_t *off, size_t n, size_t size) {
    void *p = base ? base + *off : NULL;
    *off += (n * size + 63) & ~(size_t)63;
    return p;
}

static void layout(cpu_t *c, char *base, size_t *total) {
    size_t off = 0;
    const size_t T = (size_t)c->T;
    c->x = carve(base, &off, T * c->H, 4);
    c->xb = carve(base, &off, T * c->H, 4);
    c->xb2 = carve(base, &off, T * c->H, 4);
    c->q = carve(base, &off, T * c->nh * c->hd, 4);
    c->att = carve(base, &off, T * c->nh * c->hd, 4);
    c->k = carve(base, &off, T * c->nkv * c->hd, 4);
    c->v = carve(base, &off, T * c->nkv * c->hd, 4);
    c->hb = carve(base, &off, T * c->F, 4);
    c->hb2 = carve(base, &off, T * c->F, 4);
    c->cs = carve(base, &off, T * c->hd / 2, 4);
    c->sn = carve(base, &off, T * c->hd / 2, 4);
    c->scores = carve(base, &off, (size_t)k_pool_max_chunks(c->pool) * c->max_ctx, 4);
    c->tok_seq = carve(base, &off, T, 4);
    c->out_rows = carve(base, &off, T, 4);
    if (c->o.q8_activations) {
        const int64_t nq = c->nh * c->hd, max_in = c->F > nq ? (c->F > c->H ? c->F : c->H) : (nq > c->H ? nq : c->H);
        c->q8_bytes = k_matmul_q8_scratch(c->T, max_in);
        c->q8 = carve(base, &off, c->q8_bytes, 1);
    }
    *total = off;
}

static int cpu_init(const mr_model_t *m, const mr_opts_t *o, void **st, char *err, size_t err_len) {
    cpu_t *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    const mcfg_t *cfg = &m->cfg;
    c->m = m;
    c->o = *o;
    c->H = cfg->hidden_size, c->hd = cfg->head_dim, c->nh = cfg->n_heads, c->nkv = cfg->n_kv_heads;
    c->F = cfg->intermediate_size, c->V = cfg->vocab_size, c->L = cfg->n_layers;
    c->T = o->max_batch_tokens, c->NB = o->num_blocks, c->BS = o->block_size;
    c->max_ctx = c->NB * c->BS;
    c->pool = k_pool_new(o->n_threads);
    if (!c->pool) goto oom;
    const size_t kv = (size_t)c->L * c->NB * c->nkv * c->BS * c->hd;
    c->kc = calloc(kv, sizeof(float));
    c->vc = calloc(kv, sizeof(float));
    size_t total;
    layout(c, NULL, &total);
    c->act = aligned_alloc(64, total);
    if (!c->kc || !c->vc || !c->act) goto oom;
    layout(c, c->act, &total);
    *st = c;
    return 0;
oom:
    cpu_free((void **)&c);
    if (err && err_len) snprintf(err, err_len, "cpu backend: out of memory for the KV pool and activations");
    return -ENOMEM;
}

/* --- attention ------------------------------------------------------------------------------ */

typedef struct {
    cpu_t *c;
    const mr_batch_t *b;
    int64_t layer, n_tok;
} attn_args_t;

static void attn_task(void *arg, int ith, int nth) {
    const attn_args_t *a = arg;
    cpu_t *c = a->c;
    const int64_t nq = c->nh * c->hd, group = c->nh / c->nkv, hd = c->hd;
    const float scale = (float)(1.0 / sqrt((double)hd));
    float *sc = c->scores + (size_t)ith * c->max_ctx;
    const float *kl = c->kc + (size_t)a->layer * c->NB * c->nkv * c->BS * hd;
    const float *vl = c->vc + (size_t)a->layer * c->NB * c->nkv * c->BS * hd;
    int64_t i0, i1;
    k_split(a->n_tok * c->nh, ith, nth, &i0, &i1);
    for (int64_t it = i0; it < i1; it++) {
        const int64_t t = it / c->nh, h = it % c->nh, kvh = h / group;
        const int32_t s = c->tok_seq[t];
        const int32_t *bt = a->b->block_tables[s];
        const int64_t ctx = (int64_t)a->b->positions[t] + 1;
        const float *q = c->q + t * nq + h * hd;
        for (int64_t j = 0; j < ctx; j++) {
            const size_t blk = (size_t)bt[j / c->BS];
            const float *kp = kl + ((blk * c->nkv + kvh) * c->BS + (size_t)(j % c->BS)) * hd;
            sc[j] = k_dot_f32(q, kp, hd) * scale;
        }
        k_softmax(sc, ctx);
        float *out = c->att + t * nq + h * hd;
        memset(out, 0, (size_t)hd * sizeof *out);
        for (int64_t j = 0; j < ctx; j++) {
            const size_t blk = (size_t)bt[j / c->BS];
            k_axpy_f32(out, sc[j], vl + ((blk * c->nkv + kvh) * c->BS + (size_t)(j % c->BS)) * hd, hd);
        }
    }
}

/* --- forward ----------------------------------------------------------------------------------- */

static k_matmul_out_t out_of(const mr__mat_t *w, float *y) {
    return (k_matmul_out_t){w->type, w->data, w->row_bytes, w->n_out, y, w->n_out};
}

static int matmul(cpu_t *c, const mr__mat_t *w, const float *x, int64_t n_tok, float *y) {
    const k_matmul_out_t o = out_of(w, y);
    return k_matmul_multi(c->pool, &o, 1, w->n_in, x, n_tok, c->q8, c->q8_bytes);
}

/* Products sharing the input x (all n_in equal), in one pool run. */
static int matmul_multi(cpu_t *c, const k_matmul_out_t *outs, int n, int64_t n_in, const float *x, int64_t n_tok) {
    return k_matmul_multi(c->pool, outs, n, n_in, x, n_tok, c->q8, c->q8_bytes);
}

static void add_bias(float *y, const float *bias, int64_t n_tok, int64_t n) {
    if (!bias) return;
    for (int64_t t = 0; t < n_tok; t++) k_add_f32(y + t * n, bias, n);
}

static int cpu_forward(void *st, const mr_batch_t *b, float *logits) {
    cpu_t *c = st;
    const mr_model_t *m = c->m;
    const float eps = m->cfg.rms_norm_eps;
    const int neox = m->cfg.rope_neox;
    const int64_t n = b->seq_start[b->n_seqs], H = c->H, hd = c->hd, nq = c->nh * hd, nkv = c->nkv * hd;
    const int64_t half = hd / 2;
    int rc;

    for (int32_t s = 0; s < b->n_seqs; s++)
        for (int32_t i = b->seq_start[s]; i < b->seq_start[s + 1]; i++) c->tok_seq[i] = s;
    for (int64_t t = 0; t < n; t++) {
        const mr__mat_t *e = &m->tok_embd;
        k_dequant_row(e->type, (const uint8_t *)e->data + (size_t)b->tokens[t] * e->row_bytes, c->x + t * H, H);
        k_rope_sincos(b->positions[t], m->inv_freq, half, c->cs + t * half, c->sn + t * half);
    }

    for (int64_t l = 0; l < c->L; l++) {
        const mr__layer_t *ly = &m->layers[l];
        for (int64_t t = 0; t < n; t++) k_rmsnorm(c->xb + t * H, c->x + t * H, ly->attn_norm, H, eps);
        const k_matmul_out_t qkv[3] = {out_of(&ly->wq, c->q), out_of(&ly->wk, c->k), out_of(&ly->wv, c->v)};
        if ((rc = matmul_multi(c, qkv, 3, H, c->xb, n))) return rc;
        add_bias(c->q, ly->bq, n, nq);
        add_bias(c->k, ly->bk, n, nkv);
        add_bias(c->v, ly->bv, n, nkv);
        const size_t layer_off = (size_t)l * c->NB * c->nkv * c->BS * hd;
        for (int64_t t = 0; t < n; t++) {
            k_rope(c->q + t * nq, c->nh, hd, c->cs + t * half, c->sn + t * half, neox);
            k_rope(c->k + t * nkv, c->nkv, hd, c->cs + t * half, c->sn + t * half, neox);
            const int64_t p = b->positions[t];
            const size_t blk = (size_t)b->block_tables[c->tok_seq[t]][p / c->BS];
            for (int64_t h = 0; h < c->nkv; h++) {
                const size_t off = layer_off + ((blk * c->nkv + (size_t)h) * c->BS + (size_t)(p % c->BS)) * hd;
                memcpy(c->kc + off, c->k + t * nkv + h * hd, (size_t)hd * sizeof(float));
                memcpy(c->vc + off, c->v + t * nkv + h * hd, (size_t)hd * sizeof(float));
            }
        }
        attn_args_t aa = {c, b, l, n};
        k_pool_run(c->pool, attn_task, &aa);
        if ((rc = matmul(c, &ly->wo, c->att, n, c->xb2))) return rc;
        k_add_f32(c->x, c->xb2, n * H);
        for (int64_t t = 0; t < n; t++) k_rmsnorm(c->xb + t * H, c->x + t * H, ly->ffn_norm, H, eps);
        const k_matmul_out_t gu[2] = {out_of(&ly->w_gate, c->hb), out_of(&ly->w_up, c->hb2)};
        if ((rc = matmul_multi(c, gu, 2, H, c->xb, n))) return rc;
        k_swiglu(c->hb, c->hb2, n * c->F);
        if ((rc = matmul(c, &ly->w_down, c->hb, n, c->xb2))) return rc;
        k_add_f32(c->x, c->xb2, n * H);
    }

    int64_t n_out = 0;
    if (b->all_logits)
        for (int64_t t = 0; t < n; t++) c->out_rows[n_out++] = (int32_t)t;
    else
        for (int32_t s = 0; s < b->n_seqs; s++) c->out_rows[n_out++] = b->seq_start[s + 1] - 1;
    for (int64_t i = 0; i < n_out; i++) k_rmsnorm(c->xb + i * H, c->x + (int64_t)c->out_rows[i] * H, m->output_norm, H, eps);
    return matmul(c, &m->output, c->xb, n_out, logits);
}

const mr__backend_ops_t mr__cpu_backend = {
    .name = "cpu",
    .init = cpu_init,
    .free = cpu_free,
    .forward = cpu_forward,
};
