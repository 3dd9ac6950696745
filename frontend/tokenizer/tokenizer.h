/* tokenizer: text <-> token ids for the models cvllm serves.
 *
 * Two model families share one BPE core (priority queue over adjacent
 * symbol pairs, lowest rank first, ties to the leftmost pair):
 *   - byte-level BPE (GPT-2 style: SmolLM2, Llama 3, Qwen2), from an HF
 *     tokenizer.json or GGUF metadata (tokenizer.ggml.model = "gpt2");
 *   - SentencePiece-style BPE (Llama 2, TinyLlama) with "▁" for spaces and
 *     <0xNN> byte fallback, from tokenizer.json (merges ranked) or GGUF
 *     (tokenizer.ggml.model = "llama", merges by score).
 * Encoding: added/special tokens are split out of the raw text first (leftmost
 * longest), then each remaining fragment is normalized, pre-tokenized (PCRE2
 * regexes, UTF-8 + UCP, JIT when available) and merged; a post-processor adds
 * BOS/EOS when asked to.
 *
 * A loaded tokenizer is immutable: every function taking a const
 * tok_tokenizer_t * is safe to call from several threads at once. Errors are
 * 0 or a negative code: a TOK_E* code below or a negative errno (-ENOMEM,
 * -ENOENT, ...); see tok_strerror.
 */
#ifndef CVLLM_TOKENIZER_H
#define CVLLM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- errors ---------------------------------------------------------------- */

#define TOK_ERRNO_MAP(XX)                                                       \
    XX(TOK_EFORMAT, -5201, "malformed tokenizer file")                          \
    XX(TOK_EUNSUPPORTED, -5202, "unsupported tokenizer type or component")      \
    XX(TOK_EREGEX, -5203, "pre-tokenizer regex does not compile")               \
    XX(TOK_EBADID, -5204, "token id out of range")                              \
    XX(TOK_EINPUT, -5205, "input text is not valid UTF-8")                      \
    XX(TOK_ENOGGUF, -5206, "GGUF tokenizers are not available in this build")

enum {
#define XX(name, val, msg) name = (val),
    TOK_ERRNO_MAP(XX)
#undef XX
};

/* Message for a code returned by this module (TOK_E* or negative errno).
 * Borrowed; static storage. */
const char *tok_strerror(int err);

/* --- loading ----------------------------------------------------------------- */

typedef struct tok_tokenizer tok_tokenizer_t;

/* Loads a tokenizer from `path`: a tokenizer.json file, a directory holding
 * tokenizer.json (and optionally tokenizer_config.json, read for bos/eos
 * names and add_bos_token), or a .gguf file (only when built with GGUF
 * support; else TOK_ENOGGUF).
 * On failure, when errbuf is not NULL, a one-line reason naming the file is
 * written to errbuf (errlen bytes, NUL-terminated).
 * Returns 0 and sets *out (caller owns it; free with tok_destroy), TOK_EFORMAT,
 * TOK_EUNSUPPORTED, TOK_EREGEX, TOK_ENOGGUF or a negative errno. */
int tok_load(const char *path, tok_tokenizer_t **out, char *errbuf, size_t errlen);

/* Loads from an in-memory tokenizer.json (`json`, `len` bytes, need not be
 * NUL-terminated) and an optional tokenizer_config.json text (`config`, may be
 * NULL). Same results and errbuf contract as tok_load, with "tokenizer.json"
 * as the file name in messages. */
int tok_load_json(const char *json, size_t len, const char *config, size_t config_len,
                  tok_tokenizer_t **out, char *errbuf, size_t errlen);

/* Loads from the tokenizer.ggml.* metadata of a GGUF file. Same contract as
 * tok_load; TOK_ENOGGUF when the build has no GGUF reader. */
int tok_load_gguf(const char *path, tok_tokenizer_t **out, char *errbuf, size_t errlen);

/* Frees everything and sets *tok to NULL. NULL or *tok == NULL is a no-op.
 * No other thread may be using the tokenizer. */
void tok_destroy(tok_tokenizer_t **tok);

/* --- vocabulary ---------------------------------------------------------------- */

/* Number of ids (largest id + 1, added tokens included). */
int32_t tok_vocab_size(const tok_tokenizer_t *tok);
/* BOS / EOS ids, or -1 when the tokenizer has none. */
int32_t tok_bos_id(const tok_tokenizer_t *tok);
int32_t tok_eos_id(const tok_tokenizer_t *tok);
/* True for special (control) tokens: those dropped by skip_special_tokens. */
bool tok_is_special(const tok_tokenizer_t *tok, int32_t id);
/* The token's vocabulary string as stored (e.g. "Ġthe", "▁the", "<0x0A>",
 * "<|im_end|>"). Borrowed; valid until tok_destroy. NULL for an id out of
 * range or an unused id. */
const char *tok_token_text(const tok_tokenizer_t *tok, int32_t id);
/* The id of a vocabulary string, or -1. */
int32_t tok_token_id(const tok_tokenizer_t *tok, const char *text, size_t len);

/* --- encoding / decoding ------------------------------------------------------- */

/* Encodes `len` bytes of UTF-8 `text`. Added and special tokens written in the
 * text are always recognised (as HF tokenizers do); add_special_tokens adds
 * the BOS/EOS the tokenizer's post-processor or config asks for.
 * Returns 0 and sets *ids (caller owns it; free with free(); may be NULL when
 * *n_ids == 0) and *n_ids, TOK_EINPUT for invalid UTF-8, or -ENOMEM. */
int tok_encode(const tok_tokenizer_t *tok, const char *text, size_t len, bool add_special_tokens,
               int32_t **ids, size_t *n_ids);

/* Decodes ids to UTF-8 text; bytes that do not form valid UTF-8 become U+FFFD.
 * skip_special_tokens drops special tokens. Returns 0 and sets *text (caller
 * owns it, NUL-terminated; free with free()) and *text_len, TOK_EBADID for an
 * id outside [0, vocab size), or -ENOMEM. */
int tok_decode(const tok_tokenizer_t *tok, const int32_t *ids, size_t n_ids,
               bool skip_special_tokens, char **text, size_t *text_len);

/* --- incremental detokenizer -------------------------------------------------- */

/* Streaming decoder for generated tokens: each push returns the text that can
 * be shown now. It never returns part of a UTF-8 sequence: the bytes of an
 * incomplete character are held back until a later token completes it. A byte
 * that can never be part of valid UTF-8 comes out as U+FFFD, as tok_decode
 * does. The concatenation of all pushes plus the flush equals tok_decode of
 * the same ids. One stream per sequence; not thread-safe. */
typedef struct tok_stream tok_stream_t;

/* Creates a stream. The tokenizer must outlive it. Returns 0 and sets *out
 * (caller owns it; free with tok_stream_destroy) or -ENOMEM. */
int tok_stream_new(const tok_tokenizer_t *tok, bool skip_special_tokens, tok_stream_t **out);

/* Feeds one id. Sets *text and *text_len to the newly completed text (possibly
 * empty). The text is borrowed; valid until the next call on the stream.
 * Returns 0, TOK_EBADID (stream unchanged) or -ENOMEM. */
int tok_stream_push(tok_stream_t *s, int32_t id, const char **text, size_t *text_len);

/* Ends the sequence: returns held-back bytes of an incomplete character as
 * U+FFFD and resets the stream for reuse. Same text contract as push. */
int tok_stream_flush(tok_stream_t *s, const char **text, size_t *text_len);

/* Number of bytes currently held back (0..3). */
size_t tok_stream_pending(const tok_stream_t *s);

/* Frees the stream and sets *s to NULL. NULL-safe. */
void tok_stream_destroy(tok_stream_t **s);

#ifdef __cplusplus
}
#endif

#endif
