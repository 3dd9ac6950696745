/* wire: the frontend <-> engine message format (carried over ZeroMQ; see
 * docs/wire.md). Every message is one frame: a fixed header (magic, version,
 * type, payload length) then a little-endian payload of fixed-width fields,
 * length-prefixed strings and arrays.
 *
 * Encoding appends to a caller-owned growable buffer; decoding parses a frame
 * into a caller-owned message whose strings and arrays point into the frame
 * (borrowed: valid while the frame is). The decoder checks every length
 * against the frame and rejects wrong magic, unknown versions and types,
 * truncation, trailing bytes and absurd counts with WIRE_EMALFORMED /
 * WIRE_EVERSION — never reads out of bounds (fuzzed: tests/fuzz/fuzz_wire.c).
 *
 * Thread-safety: pure functions on caller-owned data.
 */
#ifndef CVLLM_ENGINE_WIRE_H
#define CVLLM_ENGINE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WIRE_MAGIC 0x4356u /* "VC" little-endian: 'V' 'C' on the wire */
#define WIRE_VERSION 1
#define WIRE_MAX_FRAME (64u << 20)

enum {
    WIRE_EMALFORMED = -5401, /* truncated, trailing bytes, bad count, bad enum */
    WIRE_EVERSION = -5402,   /* magic right, version unknown */
    WIRE_ENOMEM = -5403,
};

typedef enum {
    WIRE_ADD = 1,        /* frontend -> engine: a new request */
    WIRE_ABORT = 2,      /* frontend -> engine: request ids to abort */
    WIRE_OUTPUTS = 3,    /* engine -> frontend: one step's outputs for that frontend */
    WIRE_UTILITY = 4,    /* frontend -> engine: sleep / wake_up / reset_prefix_cache / health */
    WIRE_UTILITY_RESULT = 5,
    WIRE_READY = 6,      /* engine -> supervisor/frontends: handshake after loading */
    WIRE_ENGINE_DEAD = 7,
    WIRE_TYPE_MAX = 7
} wire_type_t;

typedef enum {
    WIRE_FINISH_NONE = 0,
    WIRE_FINISH_STOP,     /* EOS or a stop token id */
    WIRE_FINISH_LENGTH,   /* max_tokens or max_model_len */
    WIRE_FINISH_ABORT,
    WIRE_FINISH_ERROR,
    WIRE_FINISH_MAX = WIRE_FINISH_ERROR
} wire_finish_t;

/* Borrowed string / arrays (point into a frame, or into caller memory when
 * encoding). Strings are not NUL-terminated. */
typedef struct {
    const char *p;
    uint32_t n;
} wire_str_t;

typedef struct {
    const uint32_t *p; /* may be unaligned in a frame: read with wire_u32_at */
    uint32_t n;
} wire_u32s_t;

typedef struct {
    float temperature, top_p, min_p;
    int32_t top_k;               /* 0 or -1: off */
    float presence_penalty, frequency_penalty, repetition_penalty;
    uint64_t seed;
    uint8_t has_seed, ignore_eos, detect_nan;
    uint32_t max_tokens, min_tokens;
    int32_t logprobs;            /* -1: none; else number of top logprobs */
    int32_t prompt_logprobs;     /* -1: none */
    wire_u32s_t stop_token_ids;
    wire_u32s_t allowed_token_ids;
    wire_u32s_t logit_bias_ids;  /* parallel to logit_bias_values */
    const float *logit_bias_values; /* unaligned in a frame: read with wire_f32_at */
} wire_sampling_t;

typedef struct {
    wire_str_t id;
    wire_u32s_t prompt;          /* token ids */
    wire_sampling_t sp;
    double arrival_time;         /* CLOCK_MONOTONIC seconds (same host) */
    uint16_t client_index;       /* frontend worker that gets the outputs */
    int32_t priority;
} wire_add_t;

typedef struct {
    wire_str_t id;
    wire_u32s_t new_tokens;
    /* logprobs: for each new token, (logprobs+1) (id, logprob) pairs: the
     * sampled token first, then the top ones; n_lp_per_token == 0: none */
    uint32_t n_lp_per_token;
    wire_u32s_t lp_ids;
    const float *lp_values;
    uint8_t finish;              /* wire_finish_t */
    int32_t stop_token;          /* the stop token id that finished it, or -1 */
    uint32_t num_cached_tokens;  /* prompt tokens served from the prefix cache */
    uint8_t nan_logits;          /* request saw NaN logits (vLLM's corrupted requests) */
    /* engine timestamps, CLOCK_MONOTONIC seconds; 0 = not in this batch */
    double t_queued, t_scheduled, t_first_token, t_last_token;
    uint32_t num_preemptions;
} wire_output_t;

typedef struct {
    uint16_t engine_index;
    double t_step;               /* when this batch was produced */
    /* scheduler stats of the step, for the engine's gauges already written by
     * the engine itself; carried for logging */
    uint32_t num_running, num_waiting;
    uint32_t n_outputs;
    const uint8_t *outputs_p;    /* decoded lazily with wire_outputs_next */
    uint32_t outputs_len;
} wire_outputs_t;

typedef struct {
    uint32_t call_id;
    wire_str_t method;           /* "sleep", "wake_up", "reset_prefix_cache", "is_sleeping", "health" */
    int64_t arg;                 /* e.g. the sleep level */
    int32_t status;              /* results: 0 ok, negative error */
    int64_t value;               /* results: e.g. is_sleeping */
} wire_utility_t;

typedef struct {
    uint16_t engine_index;
    uint32_t max_model_len, num_blocks, block_size;
    wire_str_t model_name;
} wire_ready_t;

typedef struct {
    wire_type_t type;
    union {
        wire_add_t add;
        struct {
            wire_str_t *ids;     /* decoded into the caller's array (max_ids) */
            uint32_t n;
        } abort;
        wire_outputs_t outputs;
        wire_utility_t utility;
        wire_ready_t ready;
        struct {
            uint16_t engine_index;
            wire_str_t reason;
        } dead;
    } u;
} wire_msg_t;

/* Growable byte buffer for encoding. Zero-initialise; free with wire_buf_free. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
} wire_buf_t;

void wire_buf_free(wire_buf_t *b);

/* Encoders: append one complete frame to b (b->len is not reset). Return 0 or
 * WIRE_ENOMEM. */
int wire_encode_add(wire_buf_t *b, const wire_add_t *m);
int wire_encode_abort(wire_buf_t *b, const wire_str_t *ids, uint32_t n);
int wire_encode_utility(wire_buf_t *b, wire_type_t type, const wire_utility_t *m);
int wire_encode_ready(wire_buf_t *b, const wire_ready_t *m);
int wire_encode_dead(wire_buf_t *b, uint16_t engine_index, const char *reason);

/* Outputs are built incrementally: begin, add each request's output, end
 * (which patches the count and length). */
int wire_outputs_begin(wire_buf_t *b, uint16_t engine_index, double t_step, uint32_t num_running,
                       uint32_t num_waiting, size_t *mark);
int wire_outputs_add(wire_buf_t *b, const wire_output_t *o);
void wire_outputs_end(wire_buf_t *b, size_t mark, uint32_t n_outputs);

/* Decodes one frame. For WIRE_ABORT, ids[max_ids] receives the ids (more
 * than max_ids: WIRE_EMALFORMED). Outputs are validated here as a whole;
 * iterate them with wire_outputs_next. Returns 0, WIRE_EMALFORMED or
 * WIRE_EVERSION. */
int wire_decode(const void *frame, size_t len, wire_msg_t *out, wire_str_t *ids, uint32_t max_ids);

/* Iterates the outputs of a decoded WIRE_OUTPUTS message: *pos starts at 0;
 * returns 1 and fills *o while outputs remain, 0 at the end. */
int wire_outputs_next(const wire_outputs_t *m, uint32_t *pos, wire_output_t *o);

/* Unaligned little-endian readers for arrays that point into frames. */
static inline uint32_t wire_u32_at(const wire_u32s_t *a, uint32_t i) {
    const uint8_t *p = (const uint8_t *)a->p + 4 * (size_t)i;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

float wire_f32_at(const float *base, uint32_t i);

/* Message name for logs ("add", "outputs", ...), or "unknown". */
const char *wire_type_name(int type);

#ifdef __cplusplus
}
#endif
#endif
