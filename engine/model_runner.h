/* model_runner: loads a Llama-family model's weights and runs batched forward
 * passes over a paged KV cache, through a backend chosen at runner creation
 * (CPU now; a CUDA backend implements the same ops table later).
 *
 * Model (mr_model_t): weights from a GGUF file (memory-mapped; quantized and
 * float matrices are used in place, never copied) or an HF safetensors file or
 * directory with config.json (F32/F16/BF16, mmap'd, also used in place). Only
 * the small 1-D tensors (norm weights, q/k/v biases, rope factors) are
 * converted to owned f32 arrays. Architectures: llama, qwen2 (q/k/v bias);
 * tied embeddings and GQA. RoPE style follows model_config (adjacent pairs for
 * GGUF llama, half-split for HF llama and qwen2); llama3 and linear rope
 * scaling are applied to the rotation frequencies.
 *
 * Runner (mr_runner_t): owns the backend state: the whole KV pool
 * (num_blocks x block_size tokens, every layer, f32) and activations for
 * max_batch_tokens tokens, allocated once in mr_runner_new. mr_runner_forward
 * allocates nothing. Block indices are handed in by the caller (the KV page
 * allocator/scheduler); the runner only reads and writes the blocks named in
 * each sequence's block table.
 *
 * Errors: 0 or a negative code (eng_err.h ENG_E*, or a negative errno), with
 * a message in err where a buffer is taken. Thread-safety: a model is
 * immutable after loading and may back several runners; a runner is driven by
 * one thread at a time (it uses its own worker pool internally).
 */
#ifndef CVLLM_MODEL_RUNNER_H
#define CVLLM_MODEL_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"
#include "model_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mr_model mr_model_t;
typedef struct mr_runner mr_runner_t;

/* --- model ------------------------------------------------------------------------------ */

/* Loads `path`: a .gguf file (detected by its magic), or a safetensors file,
 * index or directory (config.json is read from the weights' directory).
 * Returns 0 and sets *out (caller owns it; free with mr_model_free, after every
 * runner using it), or a negative code (ENG_EARCH, ENG_ECONFIG, ENG_ENOTFOUND
 * for a missing tensor, ENG_ETYPE for a weight type the kernels lack,
 * ENG_EFORMAT for a wrong shape, -errno) with a message naming the file. */
int mr_model_load(const char *path, mr_model_t **out, char *err, size_t err_len);

/* Frees the model and unmaps its files; sets *m to NULL. NULL-safe. */
void mr_model_free(mr_model_t **m);

/* Configuration. Borrowed; valid until mr_model_free. */
const mcfg_t *mr_model_config(const mr_model_t *m);

/* Bytes of weight data read by one batch-1 decode step (all layer matrices and
 * the output projection; the one embedding row is not counted). */
size_t mr_model_weight_bytes(const mr_model_t *m);

/* --- runner --------------------------------------------------------------------------------- */

typedef struct {
    const char *backend;      /* "cpu" (NULL = "cpu") */
    int n_threads;            /* CPU worker threads; <= 0: number of cores */
    int32_t block_size;       /* tokens per KV block; default 16 */
    int32_t num_blocks;       /* blocks in the KV pool; default 256 */
    int32_t max_batch_tokens; /* most tokens in one forward call; default 512 */
    int32_t max_seqs;         /* most sequences in one forward call; default 64 */
    bool q8_activations;      /* CPU: quantize activations to 8 bits for Q4_0/Q4_1/Q8_0
                                 weights (k_matmul_q8; ~2x faster decode, ~1e-3 relative
                                 logit error); default false = exact f32 products */
} mr_opts_t;

/* Fills *o with the defaults above. */
void mr_opts_default(mr_opts_t *o);

/* Creates a runner for `m` (borrowed; must outlive the runner): initialises
 * the backend and allocates its KV pool and activations. Returns 0 and sets
 * *out (free with mr_runner_destroy), -EINVAL for bad options, ENG_ECONFIG for
 * an unknown backend, -ENOMEM. */
int mr_runner_new(const mr_model_t *m, const mr_opts_t *o, mr_runner_t **out, char *err, size_t err_len);

/* Frees the backend state; sets *r to NULL. NULL-safe. */
void mr_runner_destroy(mr_runner_t **r);

/* Options in effect (defaults filled in). Borrowed; valid until destroy. */
const mr_opts_t *mr_runner_opts(const mr_runner_t *r);

/* Backend name ("cpu"). Borrowed; static storage. */
const char *mr_runner_backend(const mr_runner_t *r);

/* One forward call over a variable-length batch.
 *
 * Sequence s owns tokens [seq_start[s], seq_start[s+1]) of `tokens` (at least
 * one; a prefill chunk or a single decode token) at consecutive positions
 * positions[seq_start[s]] + 0, 1, ... (positions[] is given per token and must
 * be consecutive within a sequence). Positions 0 .. first-1 of the sequence
 * must already be in the KV cache (written by earlier calls) in the blocks of
 * its block table: position p lives in block block_tables[s][p / block_size],
 * slot p % block_size. This call writes the new tokens' K/V at their slots and
 * attends causally over positions 0 .. p for each new token.
 * Two sequences of one batch must not write the same slot.
 */
typedef struct {
    int32_t n_seqs;
    const int32_t *seq_start;            /* (n_seqs + 1); seq_start[0] = 0 */
    const int32_t *tokens;               /* (n_tokens = seq_start[n_seqs]) */
    const int32_t *positions;            /* (n_tokens) */
    const int32_t *const *block_tables;  /* (n_seqs) arrays of block indices */
    const int32_t *n_blocks;             /* (n_seqs) lengths of the block tables */
    bool all_logits;                     /* logits for every token, not just each sequence's last */
} mr_batch_t;

/* Rows of logits a batch produces: n_tokens if all_logits, else n_seqs. */
int64_t mr_batch_n_out(const mr_batch_t *b);

/* Runs the batch and writes mr_batch_n_out(b) rows of vocab_size f32 logits
 * to `logits` (row i: the i-th token in batch order if all_logits, else the
 * last token of sequence i). Returns 0, -EINVAL for a malformed batch (sizes
 * over the runner's limits, token out of vocab, non-consecutive positions,
 * block index out of range, block table too short) with nothing written to
 * the cache, or a backend error. Allocates nothing. */
int mr_runner_forward(mr_runner_t *r, const mr_batch_t *b, float *logits);

#ifdef __cplusplus
}
#endif

#endif /* CVLLM_MODEL_RUNNER_H */
