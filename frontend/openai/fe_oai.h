/* fe_oai: the OpenAI-compatible API layer between fe_http and the engine, as
 * pure functions on caller-owned data (no engine, tokenizer or I/O calls):
 *   - request parsing and validation of POST /v1/completions and
 *     POST /v1/chat/completions bodies, with vLLM's 400 messages;
 *   - the step from a parsed request plus the tokenized prompt length to the
 *     engine's wire_sampling_t (default max_tokens, prompt-too-long check);
 *   - response builders: non-streaming JSON bodies, SSE chunks, [DONE], the
 *     vLLM error envelope (also as an SSE error frame);
 *   - the incremental stop-string matcher used while streaming.
 * See docs/openai-api.md for what is accepted and how it differs from vLLM.
 *
 * Every string written into JSON is escaped and made valid UTF-8 (invalid
 * byte sequences become U+FFFD), so a builder never emits invalid JSON.
 *
 * Error codes: this module owns -5850..-5899 of the frontend API layer's
 * range (-5800..-5849 stay with fe_api).
 *
 * Thread-safety: pure functions on caller-owned data; no globals.
 */
#ifndef CVLLM_FE_OAI_H
#define CVLLM_FE_OAI_H

#include <stddef.h>
#include <stdint.h>

#include "wire.h"

struct cJSON;

#ifdef __cplusplus
extern "C" {
#endif

/* --- error codes ---------------------------------------------------------- */

/* XX(name, code, HTTP status, description) */
#define FE_OAI_ERRNO_MAP(XX)                                                    \
    XX(FE_OAI_EJSON, -5850, 400, "request body is not valid JSON")              \
    XX(FE_OAI_ESCHEMA, -5851, 400, "request field has the wrong type or shape") \
    XX(FE_OAI_EINVAL, -5852, 400, "request value is out of range")              \
    XX(FE_OAI_ETOOLONG, -5853, 400, "prompt plus max_tokens exceed the context") \
    XX(FE_OAI_EMODEL, -5854, 404, "the model does not exist")                   \
    XX(FE_OAI_ENOMEM, -5855, 500, "out of memory")

enum {
#define FE_OAI_XX(name, code, status, desc) name = code,
    FE_OAI_ERRNO_MAP(FE_OAI_XX)
#undef FE_OAI_XX
};

/* Description / "FE_OAI_EJSON" / HTTP status of a code of this module;
 * "unknown error" / "UNKNOWN" / 500 for other codes. Static strings. */
const char *fe_oai_strerror(int code);
const char *fe_oai_err_name(int code);
int fe_oai_err_status(int code);

/* A client-facing error: everything vLLM's envelope carries. */
typedef struct {
    int code;          /* FE_OAI_E* */
    int status;        /* HTTP status (400, 404, 500) */
    const char *type;  /* static: "BadRequestError", "Bad Request" (schema
                        * errors, as vLLM's remapped pydantic errors), "NotFoundError",
                        * "InternalServerError" */
    char param[64];    /* the field name, or "" (JSON null) */
    char message[512]; /* NUL-terminated, UTF-8 */
} fe_oai_error_t;

/* Fills e (any previous content is replaced). The message is a printf format.
 * Returns code, so `return fe_oai_error_set(...)` reads naturally. */
int fe_oai_error_set(fe_oai_error_t *e, int code, const char *param, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Fills e for an unknown model: 404 NotFoundError, "The model `x` does not
 * exist.", as vLLM answers. Returns FE_OAI_EMODEL. */
int fe_oai_error_model(fe_oai_error_t *e, const char *model);

/* --- growable output buffer ----------------------------------------------- */

/* Zero-initialise; reuse across chunks by setting len = 0 (no allocation once
 * the capacity is reached); free with fe_oai_buf_free. data is always
 * NUL-terminated after a successful append (not counted in len). */
typedef struct {
    char *data;
    size_t len, cap;
} fe_oai_buf_t;

void fe_oai_buf_free(fe_oai_buf_t *b);
/* Appends n bytes. Returns 0 or FE_OAI_ENOMEM (b unchanged). */
int fe_oai_buf_append(fe_oai_buf_t *b, const void *p, size_t n);
/* Appends s as a JSON string literal (quotes included): escapes '"', '\\' and
 * control characters and replaces invalid UTF-8 by U+FFFD (one per maximal
 * invalid subsequence). Returns 0 or FE_OAI_ENOMEM. */
int fe_oai_json_str(fe_oai_buf_t *b, const char *s, size_t n);
/* Appends a double as Python's repr() writes it (shortest round-trip digits,
 * "1.0", "1e-05", "1e+16"); non-finite values as "NaN"/"Infinity" would be
 * invalid JSON, so callers clamp first. Returns 0 or FE_OAI_ENOMEM. */
int fe_oai_json_double(fe_oai_buf_t *b, double v);
/* Writes v as Python's repr() into out (>= 32 bytes); returns out. */
char *fe_oai_py_float(double v, char out[32]);

/* --- requests ---------------------------------------------------------------- */

typedef enum { FE_OAI_COMPLETION = 1, FE_OAI_CHAT = 2 } fe_oai_kind_t;

/* Server-side sampling defaults (vLLM's in-code defaults, or what the
 * model's generation_config.json says) and limits. */
typedef struct {
    float temperature, top_p, min_p, repetition_penalty;
    int32_t top_k;
    int32_t max_logprobs; /* vLLM --max-logprobs, default 20; -1: vocab size */
    uint32_t vocab_size;  /* 0: unknown (token-id range checks are skipped) */
} fe_oai_defaults_t;

/* temperature 1, top_p 1, top_k 0, min_p 0, repetition_penalty 1,
 * max_logprobs 20, vocab_size 0. */
void fe_oai_defaults_init(fe_oai_defaults_t *d);

/* One completions prompt: text, or token ids. */
typedef struct {
    const char *text;      /* NUL-terminated UTF-8 (NULL when tokens) */
    size_t text_len;
    const uint32_t *tokens; /* NULL when text */
    uint32_t n_tokens;
} fe_oai_prompt_t;

/* A parsed request. Created by fe_oai_req_parse, freed with
 * fe_oai_req_destroy. Every pointer inside is borrowed from the request (the
 * cJSON tree and one arena it owns) and valid until fe_oai_req_destroy. */
typedef struct fe_oai_req {
    fe_oai_kind_t kind;
    const char *model;          /* NULL: absent (the server's default model) */
    const char *user;           /* NULL: absent */

    /* completions: 1..n prompts ("string", ["s",...], [1,2], [[1,2],...]) */
    const fe_oai_prompt_t *prompts;
    uint32_t n_prompts;
    int echo;

    /* chat: the messages array and chat_template_kwargs (an object or NULL),
     * as cJSON trees for the chat template. */
    const struct cJSON *messages;
    const struct cJSON *chat_template_kwargs;
    int add_generation_prompt;  /* default 1 */
    int continue_final_message; /* default 0 */

    uint32_t n;                 /* default 1 */
    int stream, include_usage, continuous_usage_stats;

    int64_t max_tokens;         /* -1: absent (chat: max_completion_tokens wins;
                                 * completions default 16 as vLLM's); 0: a
                                 * completions echo without generation (the
                                 * engine runs 1 token, the caller drops it) */
    float temperature, top_p, min_p;
    int32_t top_k;
    float presence_penalty, frequency_penalty, repetition_penalty;
    int has_seed;
    uint64_t seed;              /* two's complement of a negative seed */
    uint32_t min_tokens;
    int ignore_eos, include_stop_str_in_output;
    int skip_special_tokens, spaces_between_special_tokens, add_special_tokens;

    const char *const *stop;    /* stop strings, each non-empty, NUL-terminated */
    const size_t *stop_len;
    uint32_t n_stop;
    const uint32_t *stop_token_ids;
    uint32_t n_stop_token_ids;
    const uint32_t *allowed_token_ids; /* NULL: absent */
    uint32_t n_allowed_token_ids;
    const uint32_t *logit_bias_ids;    /* parallel arrays, sorted by id, unique */
    const float *logit_bias_values;    /* clamped to [-100, 100] */
    uint32_t n_logit_bias;

    int32_t logprobs;           /* -1: none; else top-k count (chat: top_logprobs) */
    int32_t prompt_logprobs;    /* -1: none; an echo without it takes the
                                 * sample setting, as vLLM does */

    /* private */
    struct cJSON *root;
    void *arena;
} fe_oai_req_t;

/* Parses and validates a request body (len bytes; need not be NUL-terminated)
 * of the given kind against the defaults d (NULL: fe_oai_defaults_init's).
 * Unknown fields are ignored, as vLLM allows extra fields.
 *
 * Returns 0 and sets *out (caller owns it; fe_oai_req_destroy), or a negative
 * FE_OAI_E* code with *out = NULL and err filled (status 400 for every
 * validation error; FE_OAI_ENOMEM -> 500, except that cJSON reports running
 * out of memory while parsing as bad JSON: FE_OAI_EJSON). Checks that need the tokenized
 * prompt (max_tokens vs the context, min_tokens vs the default max_tokens,
 * token ids vs the vocabulary when unknown) are in fe_oai_req_sampling. */
int fe_oai_req_parse(fe_oai_kind_t kind, const char *body, size_t len, const fe_oai_defaults_t *d,
                     fe_oai_req_t **out, fe_oai_error_t *err);
void fe_oai_req_destroy(fe_oai_req_t **r);

/* vLLM's max_tokens for a prompt of prompt_len tokens: the request's (or the
 * completions default 16), else max_model_len - prompt_len. Returns the
 * value (>= 0; 0 only for an echo without generation), or FE_OAI_ETOOLONG with err filled (vLLM's message) when the
 * prompt does not leave room for one token or the requested max_tokens does
 * not fit. */
int64_t fe_oai_max_tokens(const fe_oai_req_t *r, uint32_t prompt_len, uint32_t max_model_len,
                          fe_oai_error_t *err);

/* Fills the engine's sampling parameters for one prompt of prompt_len tokens
 * (fe_oai_max_tokens, then min_tokens <= max_tokens, then token-id ranges
 * against d->vocab_size when known). Arrays in sp are borrowed from r.
 * Returns 0 or a negative FE_OAI_E* code with err filled. */
int fe_oai_req_sampling(const fe_oai_req_t *r, const fe_oai_defaults_t *d, uint32_t prompt_len,
                        uint32_t max_model_len, wire_sampling_t *sp, fe_oai_error_t *err);

/* --- responses -------------------------------------------------------------- */

/* Writes "<prefix><32 lowercase hex digits>" (vLLM's uuid4().hex ids) from
 * 16 caller-supplied random bytes into out (>= strlen(prefix) + 33 bytes).
 * Returns out. */
char *fe_oai_make_id(char *out, const char *prefix, const uint8_t rnd[16]);

typedef struct {
    const char *id;    /* "cmpl-..." / "chatcmpl-..." */
    const char *model; /* the served model name */
    int64_t created;   /* Unix seconds */
} fe_oai_meta_t;

/* One logprob candidate: the token id, its decoded text, its logprob. */
typedef struct {
    uint32_t id;
    const char *text;
    size_t text_len;
    float logprob;
} fe_oai_lp_t;

/* The logprobs of one generated (or echoed prompt) token: cand[0] is the
 * token itself, then the engine's top candidates in rank order (the wire's
 * layout); n_cand >= 1. null_logprob: the token has no logprob (vLLM's null
 * for the first prompt token of an echo): only cand[0].text is used. */
typedef struct {
    const fe_oai_lp_t *cand;
    uint32_t n_cand;
    int null_logprob;
} fe_oai_token_lp_t;

typedef struct {
    uint32_t index;
    const char *text;             /* this choice's text (a stream: this delta) */
    size_t text_len;
    wire_finish_t finish;         /* NONE: not finished (streams only) */
    const char *stop_str;         /* the stop string that ended it, or NULL */
    size_t stop_str_len;
    int32_t stop_token;           /* >= 0: the stop token id (when no stop_str); -1: null */
    const fe_oai_token_lp_t *lps; /* NULL: "logprobs": null */
    uint32_t n_lps;
    uint32_t top_n;               /* top logprobs requested (completions logprobs / chat top_logprobs) */
    uint32_t text_offset;         /* completions: characters before this text (echo, earlier deltas) */
} fe_oai_choice_t;

typedef struct {
    uint32_t prompt_tokens, completion_tokens;
} fe_oai_usage_t;

/* finish_reason text vLLM sends: "stop", "length", "abort", "error"; NULL for
 * WIRE_FINISH_NONE. */
const char *fe_oai_finish_str(wire_finish_t f);

/* Non-streaming bodies. Append one JSON object to b (b->len is not reset).
 * usage may be NULL (then "usage": null). Return 0 or FE_OAI_ENOMEM. */
int fe_oai_completion_json(fe_oai_buf_t *b, const fe_oai_meta_t *m, const fe_oai_choice_t *ch, uint32_t n,
                           const fe_oai_usage_t *usage);
int fe_oai_chat_json(fe_oai_buf_t *b, const fe_oai_meta_t *m, const fe_oai_choice_t *ch, uint32_t n,
                     const fe_oai_usage_t *usage);

/* SSE frames ("data: {...}\n\n") appended to b. One choice per chunk, as vLLM
 * sends them. usage: NULL, or the running usage when the client asked for
 * stream_options.continuous_usage_stats. Return 0 or FE_OAI_ENOMEM. */
int fe_oai_completion_chunk(fe_oai_buf_t *b, const fe_oai_meta_t *m, const fe_oai_choice_t *ch,
                            const fe_oai_usage_t *usage);
/* The first chat chunk of a choice: delta {"role": "assistant", "content": ""}. */
int fe_oai_chat_role_chunk(fe_oai_buf_t *b, const fe_oai_meta_t *m, uint32_t index, const fe_oai_usage_t *usage);
int fe_oai_chat_chunk(fe_oai_buf_t *b, const fe_oai_meta_t *m, const fe_oai_choice_t *ch,
                      const fe_oai_usage_t *usage);
/* The stream_options.include_usage chunk: "choices": [] plus usage. */
int fe_oai_usage_chunk(fe_oai_buf_t *b, fe_oai_kind_t kind, const fe_oai_meta_t *m, const fe_oai_usage_t *usage);
/* "data: [DONE]\n\n". */
int fe_oai_done(fe_oai_buf_t *b);

/* vLLM's error envelope {"error": {"message", "type", "param", "code"}} as a
 * body, or as an SSE frame (sent on the 200 stream, then [DONE]). */
int fe_oai_error_json(fe_oai_buf_t *b, const fe_oai_error_t *e);
int fe_oai_error_chunk(fe_oai_buf_t *b, const fe_oai_error_t *e);

/* --- stop strings ------------------------------------------------------------ */

/* Incremental stop-string matcher over detokenized text, as vLLM's
 * detokenizer does it: after each step's new text it searches for a stop
 * string that ends in the new text (stops are tried in list order; the first
 * that occurs wins), truncates the output before it (or after it, with
 * include_stop_str_in_output) and, while unfinished, holds back the last
 * (longest stop - 1) characters (code points) so a stop split across steps
 * is caught before its first part was sent. Embeddable; zero-initialise,
 * then fe_oai_stop_init; free with fe_oai_stop_free. */
typedef struct {
    /* private */
    const char *const *stops;
    const size_t *stop_len;
    uint32_t n_stops;
    int include;
    size_t hold;        /* characters held back while unfinished */
    fe_oai_buf_t text;  /* the whole output text so far */
    size_t sent;        /* bytes of text already returned */
    int finished;
    int matched;        /* index of the stop that matched, or -1 */
} fe_oai_stop_t;

/* stops[i] (stop_len[i] bytes, non-empty, valid UTF-8) are borrowed for the
 * matcher's life. Returns 0. */
int fe_oai_stop_init(fe_oai_stop_t *m, const char *const *stops, const size_t *stop_len, uint32_t n_stops,
                     int include_stop_str_in_output);
void fe_oai_stop_free(fe_oai_stop_t *m);

/* Adds one step's new text (complete UTF-8 sequences; may be empty). check:
 * whether stop strings are evaluated this step (vLLM skips them until more
 * than min_tokens tokens were generated). finished: the engine finished the
 * request this step (everything held back is released).
 * Sets *delta / *delta_len to the text to send now (borrowed; valid until the
 * next call) and returns 1 when a stop string matched this step (the request
 * is then finished: abort it in the engine; fe_oai_stop_matched says which),
 * 0 otherwise, or FE_OAI_ENOMEM. After a match, further calls return 0 with an
 * empty delta. */
int fe_oai_stop_feed(fe_oai_stop_t *m, const char *s, size_t n, int check, int finished, const char **delta,
                     size_t *delta_len);
/* Index of the matched stop string, or -1. */
int fe_oai_stop_matched(const fe_oai_stop_t *m);
/* The output text so far (after truncation at a stop). Borrowed. */
const char *fe_oai_stop_text(const fe_oai_stop_t *m, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
