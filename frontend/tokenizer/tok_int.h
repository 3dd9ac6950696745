/* Internals of the tokenizer module, shared by its .c files and its unit
 * tests. Not part of the public interface (see tokenizer.h).
 *
 * Invariants: after a successful load every id in [0, n_vocab) has a text
 * (possibly "" for holes, which are never produced by encoding); the pair map
 * only holds merges whose result id exists; the structure is never written
 * after load, which is what makes encode/decode thread-safe. */
#ifndef CVLLM_TOK_INT_H
#define CVLLM_TOK_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "tokenizer.h"

/* --- growable byte buffer ------------------------------------------------------ */

typedef struct {
    char *p;
    size_t len, cap;
} tok__buf_t;

int tok__buf_reserve(tok__buf_t *b, size_t extra);
int tok__buf_put(tok__buf_t *b, const void *data, size_t n);
void tok__buf_free(tok__buf_t *b);

/* --- UTF-8 ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence starting at s (n bytes available), or 0
 * when it is invalid or truncated. */
size_t tok__utf8_len(const unsigned char *s, size_t n);
/* True when s[0..n) is entirely valid UTF-8. */
bool tok__utf8_valid(const char *s, size_t n);
/* Appends the UTF-8 encoding of code point cp. */
int tok__utf8_put(tok__buf_t *b, uint32_t cp);
/* Appends s[0..n) with each maximal invalid subsequence replaced by U+FFFD
 * (Rust's from_utf8_lossy rule). Unless `final`, a truncated but so far valid
 * sequence at the end is not consumed. Returns the bytes consumed (n when
 * final) or a negative code. */
long tok__utf8_lossy(tok__buf_t *b, const char *s, size_t n, bool final);

/* GPT-2 bytes_to_unicode: the code point standing for byte b, and its inverse
 * (-1 for a code point that stands for no byte). */
uint32_t tok__byte_to_cp(uint8_t b);
int tok__cp_to_byte(uint32_t cp);

/* --- hash maps ---------------------------------------------------------------------- */

/* String -> id, open addressing over ids; keys are the tokenizer's texts. */
typedef struct {
    int32_t *slots; /* id or -1 */
    size_t mask;
} tok__strmap_t;

/* (left id, right id) -> (rank, result id). */
typedef struct {
    uint64_t *keys; /* (left << 32 | right) + 1; 0 = empty */
    int32_t *rank, *result;
    size_t mask, n;
} tok__pairmap_t;

int tok__pairmap_init(tok__pairmap_t *m, size_t expected);
/* Inserts unless the pair is present (the first, lowest rank wins). */
int tok__pairmap_put(tok__pairmap_t *m, int32_t l, int32_t r, int32_t rank, int32_t result);
bool tok__pairmap_get(const tok__pairmap_t *m, int32_t l, int32_t r, int32_t *rank, int32_t *result);
void tok__pairmap_free(tok__pairmap_t *m);

/* --- pipeline description ---------------------------------------------------------- */

typedef enum {
    TOK_NORM_PREPEND, /* prepend str (every fragment, or only when cond_first) */
    TOK_NORM_REPLACE, /* replace every occurrence of pat with str */
} tok__norm_kind_t;

typedef struct {
    tok__norm_kind_t kind;
    char *pat, *str;
    /* GGUF SPM: prepend only to the first fragment or one after a special. */
    bool cond_first;
} tok__norm_t;

typedef enum {
    TOK_PT_SPLIT,     /* regex split with a behaviour */
    TOK_PT_BYTELEVEL, /* optional prefix space + optional GPT-2 regex split */
    TOK_PT_METASPACE, /* ' ' -> replacement, prepend scheme, optional split */
} tok__pt_kind_t;

typedef enum {
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_MERGED_PREV,
    TOK_SPLIT_MERGED_NEXT,
    TOK_SPLIT_CONTIGUOUS,
} tok__split_behavior_t;

typedef enum { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER } tok__prepend_t;

typedef struct {
    tok__pt_kind_t kind;
    pcre2_code *re;           /* SPLIT, BYTELEVEL with regex */
    tok__split_behavior_t behavior;
    bool invert;
    bool add_prefix_space;    /* BYTELEVEL */
    char *replacement;        /* METASPACE, UTF-8 */
    tok__prepend_t prepend;   /* METASPACE */
    bool split;               /* METASPACE */
} tok__pretok_t;

typedef struct {
    int32_t id;
    char *text;
    size_t len;
    bool special, lstrip, rstrip;
} tok__added_t;

#define TOK_MAX_AFFIX 8

struct tok_tokenizer {
    /* vocabulary: texts by id, lengths, a reverse map */
    int32_t n_vocab;
    char **text;
    uint32_t *text_len;
    uint8_t *flags; /* TOK_F_* */
    tok__strmap_t map;

    /* decoding: bytes each id contributes (precomputed at load) */
    char **dec;
    uint32_t *dec_len;
    bool strip_leading_space; /* SPM decoders drop one leading ' ' */

    /* model */
    bool byte_level;    /* initial symbols are bytes mapped through bytes_to_unicode */
    bool byte_fallback; /* SPM: unknown chars become <0xNN> tokens */
    bool ignore_merges; /* a piece present whole in the vocab is emitted as is */
    bool fuse_unk;
    int32_t unk_id;
    int32_t byte_sym[256];  /* byte-level: id of the symbol for each byte; -1 none */
    int32_t byte_tok[256];  /* byte fallback: id of <0xNN>; -1 none */
    tok__pairmap_t pairs;

    /* pipeline */
    tok__norm_t *norms;
    size_t n_norms;
    tok__pretok_t *pretoks;
    size_t n_pretoks;

    /* added tokens, sorted by first byte then length descending; first[b]
     * indexes the first one starting with byte b (n_added when none) */
    tok__added_t *added;
    size_t n_added;
    uint32_t added_first[257];

    /* post-processing and specials */
    int32_t prefix[TOK_MAX_AFFIX], suffix[TOK_MAX_AFFIX];
    int n_prefix, n_suffix;
    int32_t bos_id, eos_id;
};

enum {
    TOK_F_SPECIAL = 1, /* dropped by skip_special_tokens */
    TOK_F_ADDED = 2,   /* decoded as its raw text */
    TOK_F_BYTE = 4,    /* <0xNN> byte-fallback token */
};

/* --- building (tok_vocab.c) ----------------------------------------------------------- */

/* Allocates an empty tokenizer with n_vocab id slots (texts NULL). */
tok_tokenizer_t *tok__new(int32_t n_vocab);
/* Sets the text of id (copied). Returns 0, -ENOMEM or TOK_EFORMAT (range). */
int tok__set_text(tok_tokenizer_t *t, int32_t id, const char *s, size_t n);
/* Grows the id space to n_vocab (new slots empty). */
int tok__grow(tok_tokenizer_t *t, int32_t n_vocab);
/* Builds the reverse map (a duplicate text keeps its first id), the byte
 * tables and the decode strings; call once all texts, added tokens, flags
 * and the model kind are set, and before adding merges. */
int tok__finish_vocab(tok_tokenizer_t *t);
/* Registers an added token (already in the vocab at id). */
int tok__add_added(tok_tokenizer_t *t, int32_t id, bool special, bool lstrip, bool rstrip);
/* Sorts the added tokens and fills added_first. */
void tok__index_added(tok_tokenizer_t *t);
/* Adds the merge "a"+"b" with the given rank; silently ignored when a, b or
 * their concatenation is not in the vocabulary (as HF and llama.cpp do). */
int tok__add_merge(tok_tokenizer_t *t, const char *a, size_t na, const char *b, size_t nb,
                   int32_t rank);
/* SPM by score: every split of every vocab text into two vocab texts becomes
 * a pair, ranked by the score of the whole (higher score = lower rank). */
int tok__merges_from_scores(tok_tokenizer_t *t, const float *scores);

/* Compiles a pre-tokenizer regex (UTF-8, UCP, JIT when available). NULL on
 * failure with a message in err. */
pcre2_code *tok__regex_compile(const char *pattern, size_t len, bool literal, char *err,
                               size_t errlen);
/* Named llama.cpp pre-tokenizer (tokenizer.ggml.pre) -> pipeline steps.
 * Returns 0, TOK_EUNSUPPORTED (unknown name) or TOK_EREGEX/-ENOMEM. */
int tok__pretok_named(tok_tokenizer_t *t, const char *name, char *err, size_t errlen);
/* Appends a pre-tokenizer or normalizer step (copied by value; ownership of
 * the pointers inside moves to t). */
int tok__push_pretok(tok_tokenizer_t *t, const tok__pretok_t *p);
int tok__push_norm(tok_tokenizer_t *t, const tok__norm_t *n);

/* The GPT-2 pattern as HF's ByteLevel pre-tokenizer uses it. */
extern const char tok__re_gpt2[];

/* Fills errbuf with "file: message" (printf-style). */
void tok__err(char *errbuf, size_t errlen, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* --- encoding (tok_encode.c) ---------------------------------------------------------- */

/* BPE over one pre-tokenized piece; appends ids to out. ws is scratch. */
typedef struct tok__ws tok__ws_t;
tok__ws_t *tok__ws_new(void);
void tok__ws_free(tok__ws_t *ws);
int tok__bpe_piece(const tok_tokenizer_t *t, tok__ws_t *ws, const char *s, size_t n,
                   int32_t **out, size_t *n_out, size_t *cap_out);

#endif
