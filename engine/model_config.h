/* model_config: architecture and hyper-parameters of a Llama-family model,
 * from an HF config.json or from a GGUF's `<arch>.*` keys, plus the sampling
 * defaults of generation_config.json.
 *
 * Supported architectures: LlamaForCausalLM / "llama" and Qwen2ForCausalLM /
 * "qwen2". Anything else is ENG_EARCH with a message naming it. Both sources
 * produce the same mcfg_t; fields a source lacks get the documented defaults
 * (rope_theta 10000, n_kv_heads = n_heads, head_dim = hidden / heads, ...),
 * and the result is validated (positive sizes, heads divide evenly) before it
 * is returned.
 *
 * What differs by source is recorded, not hidden: `rope_neox` says whether q/k
 * rotate half-split pairs (HF llama, qwen2 anywhere) or adjacent pairs (GGUF
 * llama, whose q/k rows were permuted by the converter); see model-formats.md
 * §1.7.
 *
 * Errors: 0 or a negative code (ENG_EARCH, ENG_ECONFIG, ENG_EFORMAT, negative
 * errno for I/O), with a message naming the file and key in err. Pure
 * functions of their inputs; thread-safe.
 */
#ifndef CVLLM_MODEL_CONFIG_H
#define CVLLM_MODEL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"
#include "gguf.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MCFG_MAX_EOS 8

typedef enum {
    MCFG_ARCH_LLAMA = 1,
    MCFG_ARCH_QWEN2 = 2,
} mcfg_arch_t;

typedef enum {
    MCFG_ROPE_SCALING_NONE = 0,
    MCFG_ROPE_SCALING_LINEAR,
    MCFG_ROPE_SCALING_DYNAMIC,
    MCFG_ROPE_SCALING_YARN,
    MCFG_ROPE_SCALING_LLAMA3, /* per-frequency factors (GGUF: rope_freqs.weight tensor) */
} mcfg_rope_scaling_t;

typedef struct {
    mcfg_arch_t arch;
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t n_layers;
    int64_t n_heads;
    int64_t n_kv_heads;
    int64_t head_dim;
    int64_t vocab_size;          /* 0 if the source does not say (vocab-less GGUF) */
    int64_t max_position_embeddings;
    float rms_norm_eps;
    float rope_theta;
    bool rope_neox;              /* half-split rotation; false = adjacent pairs */
    struct {
        mcfg_rope_scaling_t type;
        float factor;
        float low_freq_factor, high_freq_factor; /* llama3 */
        int64_t original_max_position_embeddings; /* llama3 / yarn; 0 if unknown */
    } rope_scaling;
    bool tie_word_embeddings;
    bool attention_bias;         /* q/k/v biases (qwen2) */
    int32_t bos_token_id;        /* -1 if unknown */
    int32_t eos_token_ids[MCFG_MAX_EOS]; /* all of them; config may list several */
    int n_eos;
} mcfg_t;

/* Sampling defaults. `has_*` says whether the file set the value. */
typedef struct {
    float temperature;           /* default 1.0 */
    float top_p;                 /* default 1.0 */
    int32_t top_k;               /* default 0 = disabled (HF default is 50, applied only if do_sample) */
    float min_p;                 /* default 0 */
    float repetition_penalty;    /* default 1.0 */
    int64_t max_new_tokens;      /* default 0 = unset */
    bool do_sample;              /* default false */
    bool has_temperature, has_top_p, has_top_k, has_min_p, has_repetition_penalty, has_max_new_tokens, has_do_sample;
    int32_t bos_token_id;        /* -1 if absent */
    int32_t pad_token_id;        /* -1 if absent */
    int32_t eos_token_ids[MCFG_MAX_EOS];
    int n_eos;
} mcfg_gen_t;

/* "llama" / "qwen2". Borrowed; static storage; "?" for an invalid value. */
const char *mcfg_arch_name(mcfg_arch_t a);

/* "none", "linear", "dynamic", "yarn", "llama3". Borrowed; static storage. */
const char *mcfg_rope_scaling_name(mcfg_rope_scaling_t t);

/* Parses an HF config.json held in memory (`len` bytes, need not be
 * NUL-terminated); `label` names it in messages. Reads both the classic
 * rope_theta/rope_scaling keys and transformers v5 "rope_parameters". */
int mcfg_from_hf_json(const char *json, size_t len, const char *label, mcfg_t *out, char *err, size_t err_len);

/* Reads and parses the config.json file at `path`. */
int mcfg_from_hf_file(const char *path, mcfg_t *out, char *err, size_t err_len);

/* From a GGUF: general.architecture, then <arch>.* keys; vocab size from
 * <arch>.vocab_size, else tokenizer.ggml.tokens, else token_embd.weight;
 * tie_word_embeddings = no output.weight tensor; bos/eos from
 * tokenizer.ggml.*_token_id. */
int mcfg_from_gguf(const gguf_file_t *f, mcfg_t *out, char *err, size_t err_len);

/* Checks internal consistency (positive sizes, n_heads % n_kv_heads == 0, ...).
 * The from_* functions already call it; exposed for configs built by hand. */
int mcfg_validate(const mcfg_t *c, const char *label, char *err, size_t err_len);

/* Fills *g with the defaults above. */
void mcfg_gen_defaults(mcfg_gen_t *g);

/* Parses generation_config.json text over the defaults. */
int mcfg_gen_from_json(const char *json, size_t len, const char *label, mcfg_gen_t *g, char *err, size_t err_len);

/* Reads generation_config.json at `path`. A missing file is -ENOENT (callers
 * usually treat that as "defaults"). */
int mcfg_gen_from_file(const char *path, mcfg_gen_t *g, char *err, size_t err_len);

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_MODEL_CONFIG_H */
