/* mr_internal: the model runner's private structures, shared by the model
 * loader (mr_model.c), the runner front (model_runner.c) and the backends
 * (mr_cpu.c; later mr_cuda.c). Not part of the public API.
 *
 * Weight matrices are views: `data` points into the mmap'd GGUF or
 * safetensors file, row r of the (n_out, n_in) matrix at data + r*row_bytes,
 * in the file's element type (a k_ops.h type id). Small vectors are owned f32.
 */
#ifndef CVLLM_MR_INTERNAL_H
#define CVLLM_MR_INTERNAL_H

#include "gguf.h"
#include "model_runner.h"
#include "safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int type;          /* k_type_t */
    const void *data;  /* borrowed from the mapping */
    size_t row_bytes;
    int64_t n_out, n_in;
} mr__mat_t;

typedef struct {
    float *attn_norm, *ffn_norm;   /* (hidden) */
    float *bq, *bk, *bv;           /* (n_heads*hd), (n_kv*hd), (n_kv*hd) or NULL */
    mr__mat_t wq, wk, wv;          /* (n_heads*hd, hidden), (n_kv*hd, hidden) x2 */
    mr__mat_t wo;                  /* (hidden, n_heads*hd) */
    mr__mat_t w_gate, w_up;        /* (ffn, hidden) */
    mr__mat_t w_down;              /* (hidden, ffn) */
} mr__layer_t;

struct mr_model {
    mcfg_t cfg;
    gguf_file_t *gguf;       /* one of gguf/st is set */
    st_model_t *st;
    mr__mat_t tok_embd;      /* (vocab, hidden) */
    mr__mat_t output;        /* (vocab, hidden); == tok_embd when tied */
    float *output_norm;      /* (hidden) */
    mr__layer_t *layers;     /* (n_layers) */
    double *inv_freq;        /* (head_dim/2) rotation frequencies, scaling applied */
    size_t weight_bytes;
};

/* A backend: the model runner calls these; a backend keeps its own state
 * (device buffers, KV pool, activations, threads). The batch handed to
 * forward has been validated by model_runner.c. */
typedef struct {
    const char *name;
    int (*init)(const mr_model_t *m, const mr_opts_t *o, void **state, char *err, size_t err_len);
    void (*free)(void **state);
    int (*forward)(void *state, const mr_batch_t *b, float *logits);
} mr__backend_ops_t;

extern const mr__backend_ops_t mr__cpu_backend;

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_MR_INTERNAL_H */
