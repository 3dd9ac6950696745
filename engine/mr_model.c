/* mr_model: weights of a llama/qwen2 model from a GGUF file or an HF
 * safetensors checkpoint, as views into the memory-mapped files.
 *
 * Matrices stay in the mapping in their stored type (no copy, no
 * dequantization); each is checked for its expected (n_out, n_in) shape and
 * for a type k_matmul supports, so a forward pass never meets a surprise.
 * 1-D tensors (norms, biases, rope factors) are converted to owned f32.
 * GGUF and HF names map one to one (model-formats.md 1.6); an absent
 * output/lm_head means tied embeddings.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k_ops.h"
#include "mr_internal.h"

__attribute__((format(printf, 5, 6))) static int fail(char *err, size_t err_len, int code, const char *path,
                                                    const char *fmt, ...) {
    if (err && err_len) {
        int n = snprintf(err, err_len, "%s: ", path);
        if (n >= 0 && (size_t)n < err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

typedef struct {
    mr_model_t *m;
    const char *path;
    char *err;
    size_t err_len;
} ld_t;

/* Finds a matrix by its GGUF or HF name. Returns 0, 1 if absent and optional,
 * or a negative code. */
static int get_mat(ld_t *L, const char *gname, const char *hname, int64_t n_out, int64_t n_in, bool optional,
                   mr__mat_t *out) {
    mr__mat_t t = {0};
    if (L->m->gguf) {
        const gguf_tensor_t *g = gguf_find_tensor(L->m->gguf, gname);
        if (!g) return optional ? 1 : fail(L->err, L->err_len, ENG_ENOTFOUND, L->path, "tensor %s is missing", gname);
        if (g->n_dims != 2 || g->ne[0] != n_in || g->ne[1] != n_out)
            return fail(L->err, L->err_len, ENG_EFORMAT, L->path, "tensor %s has ne [%lld, %lld], expected [%lld, %lld]",
                        gname, (long long)g->ne[0], (long long)g->ne[1], (long long)n_in, (long long)n_out);
        t = (mr__mat_t){g->type, g->data, g->row_bytes, n_out, n_in};
    } else {
        const st_tensor_t *s = st_find_tensor(L->m->st, hname);
        if (!s) return optional ? 1 : fail(L->err, L->err_len, ENG_ENOTFOUND, L->path, "tensor %s is missing", hname);
        if (s->n_dims != 2 || s->shape[0] != n_out || s->shape[1] != n_in)
            return fail(L->err, L->err_len, ENG_EFORMAT, L->path, "tensor %s has a shape other than [%lld, %lld]", hname,
                        (long long)n_out, (long long)n_in);
        const int kt = st_dtype_k_type(s->dtype);
        if (kt < 0)
            return fail(L->err, L->err_len, ENG_ETYPE, L->path, "tensor %s has dtype %s (need F32, F16 or BF16)", hname,
                        st_dtype_name(s->dtype));
        t = (mr__mat_t){kt, s->data, (size_t)n_in * st_dtype_size(s->dtype), n_out, n_in};
    }
    if (!k_matmul_supports(t.type))
        return fail(L->err, L->err_len, ENG_ETYPE, L->path, "tensor %s has type %s, which the kernels do not support",
                    L->m->gguf ? gname : hname, k_type_name(t.type) ? k_type_name(t.type) : "?");
    *out = t;
    return 0;
}

/* Finds a 1-D tensor of n elements and converts it to an owned f32 array.
 * Returns 0, 1 if absent and optional, or a negative code. */
static int get_vec(ld_t *L, const char *gname, const char *hname, int64_t n, bool optional, float **out) {
    const void *data;
    int type;
    int64_t count;
    const char *name = L->m->gguf ? gname : hname;
    if (L->m->gguf) {
        const gguf_tensor_t *g = gguf_find_tensor(L->m->gguf, gname);
        if (!g) goto absent;
        data = g->data, type = g->type, count = g->n_elements;
    } else {
        const st_tensor_t *s = st_find_tensor(L->m->st, hname);
        if (!s) goto absent;
        data = s->data, type = st_dtype_k_type(s->dtype), count = s->n_elements;
    }
    if (count != n)
        return fail(L->err, L->err_len, ENG_EFORMAT, L->path, "tensor %s has %lld elements, expected %lld", name,
                    (long long)count, (long long)n);
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return fail(L->err, L->err_len, -ENOMEM, L->path, "out of memory");
    if (type < 0 || k_dequant_row(type, data, v, n) != 0) {
        free(v);
        return fail(L->err, L->err_len, ENG_ETYPE, L->path, "tensor %s has an unsupported type", name);
    }
    *out = v;
    return 0;
absent:
    return optional ? 1 : fail(L->err, L->err_len, ENG_ENOTFOUND, L->path, "tensor %s is missing", name);
}

static int is_gguf(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    unsigned char b[4] = {0};
    const size_t n = fread(b, 1, 4, f);
    fclose(f);
    return n == 4 && memcmp(b, "GGUF", 4) == 0;
}

static size_t mat_bytes(const mr__mat_t *t) { return t->row_bytes * (size_t)t->n_out; }

static int load_weights(ld_t *L) {
    mr_model_t *m = L->m;
    mcfg_t *c = &m->cfg;
    const int64_t H = c->hidden_size, hd = c->head_dim, nq = c->n_heads * hd, nkv = c->n_kv_heads * hd;
    const int64_t F = c->intermediate_size;
    int rc;
    /* Vocabulary size from the embedding when the config lacks it. */
    if (c->vocab_size == 0 && m->gguf) {
        const gguf_tensor_t *te = gguf_find_tensor(m->gguf, "token_embd.weight");
        if (te && te->n_dims == 2) c->vocab_size = te->ne[1];
    }
    if (c->vocab_size <= 0) return fail(L->err, L->err_len, ENG_ECONFIG, L->path, "vocabulary size unknown");
    const int64_t V = c->vocab_size;
    if ((rc = get_mat(L, "token_embd.weight", "model.embed_tokens.weight", V, H, false, &m->tok_embd))) return rc;
    rc = get_mat(L, "output.weight", "lm_head.weight", V, H, true, &m->output);
    if (rc < 0) return rc;
    if (rc == 1) m->output = m->tok_embd;
    if ((rc = get_vec(L, "output_norm.weight", "model.norm.weight", H, false, &m->output_norm))) return rc;
    m->layers = calloc((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers) return fail(L->err, L->err_len, -ENOMEM, L->path, "out of memory");
    m->weight_bytes = mat_bytes(&m->output);
    for (int64_t i = 0; i < c->n_layers; i++) {
        mr__layer_t *l = &m->layers[i];
        char g[96], h[96];
#define NAMES(gs, hs) (snprintf(g, sizeof g, "blk.%lld." gs, (long long)i), \
                       snprintf(h, sizeof h, "model.layers.%lld." hs, (long long)i))
#define MAT(field, gs, hs, no, ni)                                                  \
        NAMES(gs, hs);                                                              \
        if ((rc = get_mat(L, g, h, no, ni, false, &l->field))) return rc;           \
        m->weight_bytes += mat_bytes(&l->field);
        MAT(wq, "attn_q.weight", "self_attn.q_proj.weight", nq, H)
        MAT(wk, "attn_k.weight", "self_attn.k_proj.weight", nkv, H)
        MAT(wv, "attn_v.weight", "self_attn.v_proj.weight", nkv, H)
        MAT(wo, "attn_output.weight", "self_attn.o_proj.weight", H, nq)
        MAT(w_gate, "ffn_gate.weight", "mlp.gate_proj.weight", F, H)
        MAT(w_up, "ffn_up.weight", "mlp.up_proj.weight", F, H)
        MAT(w_down, "ffn_down.weight", "mlp.down_proj.weight", H, F)
#undef MAT
        NAMES("attn_norm.weight", "input_layernorm.weight");
        if ((rc = get_vec(L, g, h, H, false, &l->attn_norm))) return rc;
        NAMES("ffn_norm.weight", "post_attention_layernorm.weight");
        if ((rc = get_vec(L, g, h, H, false, &l->ffn_norm))) return rc;
        const bool need_bias = c->attention_bias;
        NAMES("attn_q.bias", "self_attn.q_proj.bias");
        if ((rc = get_vec(L, g, h, nq, !need_bias, &l->bq)) < 0) return rc;
        NAMES("attn_k.bias", "self_attn.k_proj.bias");
        if ((rc = get_vec(L, g, h, nkv, !need_bias, &l->bk)) < 0) return rc;
        NAMES("attn_v.bias", "self_attn.v_proj.bias");
        if ((rc = get_vec(L, g, h, nkv, !need_bias, &l->bv)) < 0) return rc;
#undef NAMES
    }
    /* Rotation frequencies. */
    m->inv_freq = malloc((size_t)(hd / 2) * sizeof *m->inv_freq);
    if (!m->inv_freq) return fail(L->err, L->err_len, -ENOMEM, L->path, "out of memory");
    float *ff = NULL;
    if (m->gguf && (rc = get_vec(L, "rope_freqs.weight", "", hd / 2, true, &ff)) < 0) return rc;
    k_rope_scale_t sc = K_ROPE_SCALE_NONE;
    switch (c->rope_scaling.type) {
    case MCFG_ROPE_SCALING_NONE: break;
    case MCFG_ROPE_SCALING_LINEAR: sc = K_ROPE_SCALE_LINEAR; break;
    case MCFG_ROPE_SCALING_LLAMA3: sc = K_ROPE_SCALE_LLAMA3; break;
    default:
        free(ff);
        return fail(L->err, L->err_len, ENG_ECONFIG, L->path, "rope scaling \"%s\" is not supported",
                    mcfg_rope_scaling_name(c->rope_scaling.type));
    }
    const double orig = c->rope_scaling.original_max_position_embeddings > 0
                            ? (double)c->rope_scaling.original_max_position_embeddings : 8192.0;
    k_rope_inv_freq(m->inv_freq, hd, c->rope_theta, sc, c->rope_scaling.factor, c->rope_scaling.low_freq_factor,
                    c->rope_scaling.high_freq_factor, orig, ff);
    free(ff);
    return 0;
}

int mr_model_load(const char *path, mr_model_t **out, char *err, size_t err_len) {
    *out = NULL;
    mr_model_t *m = calloc(1, sizeof *m);
    if (!m) return fail(err, err_len, -ENOMEM, path, "out of memory");
    ld_t L = {m, path, err, err_len};
    int rc;
    if (is_gguf(path)) {
        if ((rc = gguf_open(path, &m->gguf, err, err_len))) goto out;
        if ((rc = mcfg_from_gguf(m->gguf, &m->cfg, err, err_len))) goto out;
    } else {
        if ((rc = st_open(path, &m->st, err, err_len))) goto out;
        char cfg[4096];
        snprintf(cfg, sizeof cfg, "%s/config.json", st_dir(m->st));
        if ((rc = mcfg_from_hf_file(cfg, &m->cfg, err, err_len))) goto out;
    }
    if (m->cfg.head_dim % 2) {
        rc = fail(err, err_len, ENG_ECONFIG, path, "head_dim %lld is odd", (long long)m->cfg.head_dim);
        goto out;
    }
    rc = load_weights(&L);
out:
    if (rc) mr_model_free(&m);
    *out = m;
    return rc;
}

void mr_model_free(mr_model_t **pm) {
    mr_model_t *m = pm ? *pm : NULL;
    if (!m) return;
    if (m->layers) {
        for (int64_t i = 0; i < m->cfg.n_layers; i++) {
            mr__layer_t *l = &m->layers[i];
            free(l->attn_norm), free(l->ffn_norm), free(l->bq), free(l->bk), free(l->bv);
        }
        free(m->layers);
    }
    free(m->output_norm);
    free(m->inv_freq);
    gguf_close(&m->gguf);
    st_close(&m->st);
    free(m);
    *pm = NULL;
}

const mcfg_t *mr_model_config(const mr_model_t *m) { return &m->cfg; }

size_t mr_model_weight_bytes(const mr_model_t *m) { return m->weight_bytes; }
