/* GGUF tokenizer loader: tokenizer.ggml.* metadata (model-formats.md §2) ->
 * tokenizer, through the engine's GGUF reader (engine/gguf.h).
 *
 * "gpt2": byte-level BPE with ranked merges and a pre-tokenizer chosen by
 * tokenizer.ggml.pre. "llama": SentencePiece BPE by score (pairs derived from
 * the vocabulary), "▁" for spaces, a space prepended to the first fragment
 * and to each one after a special token, <0xNN> byte fallback. CONTROL and
 * UNKNOWN tokens become special added tokens, USER_DEFINED plain added ones.
 * Defaults for missing keys follow llama.cpp. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "tok_int.h"

enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER_DEFINED = 4, TT_UNUSED = 5, TT_BYTE = 6 };

typedef struct {
    gguf_file_t *f;
    tok_tokenizer_t *t;
    const char *path;
    char *err;
    size_t errlen;
} gctx_t;

static int gfail(gctx_t *c, int rc, const char *what) {
    tok__err(c->err, c->errlen, c->path, "%s", what);
    return rc;
}

/* A string value as a NUL-terminated copy in buf, or false when absent. */
static bool get_str(gctx_t *c, const char *key, char *buf, size_t cap) {
    const char *s;
    size_t n;
    if (gguf_get_str(c->f, key, &s, &n) || n >= cap)
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return true;
}

static int32_t get_id(gctx_t *c, const char *key, int32_t dflt) {
    uint32_t v;
    if (gguf_get_u32(c->f, key, &v) || v >= (uint32_t)c->t->n_vocab)
        return dflt;
    return (int32_t)v;
}

static bool get_flag(gctx_t *c, const char *key, bool dflt) {
    bool v;
    return gguf_get_bool(c->f, key, &v) ? dflt : v;
}

static int load_gpt2_merges(gctx_t *c) {
    int64_t kv;
    gguf_type_t et;
    uint64_t n;
    if (gguf_get_arr(c->f, "tokenizer.ggml.merges", &kv, &et, &n) || et != GGUF_TYPE_STRING)
        return gfail(c, TOK_EFORMAT, "tokenizer.ggml.merges missing or not a string array");
    if (n > INT32_MAX)
        return gfail(c, TOK_EFORMAT, "too many merges");
    int rc = tok__pairmap_init(&c->t->pairs, (size_t)n);
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        const char *s;
        size_t len;
        if (gguf_kv_arr_str(c->f, kv, i, &s, &len))
            return gfail(c, TOK_EFORMAT, "unreadable merge");
        /* split at the first space at position >= 1: tokens may start with ' ' */
        const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
        if (!sp)
            return gfail(c, TOK_EFORMAT, "merge without a space separator");
        size_t na = (size_t)(sp - s);
        rc = tok__add_merge(c->t, s, na, sp + 1, len - na - 1, (int32_t)i);
    }
    return rc;
}

static int load(gctx_t *c) {
    char model[32], pre[64];
    if (!get_str(c, "tokenizer.ggml.model", model, sizeof model))
        return gfail(c, TOK_EFORMAT, "no tokenizer.ggml.model");
    bool spm = !strcmp(model, "llama");
    if (!spm && strcmp(model, "gpt2")) {
        char msg[96];
        snprintf(msg, sizeof msg, "unsupported tokenizer.ggml.model \"%s\"", model);
        return gfail(c, TOK_EUNSUPPORTED, msg);
    }
    int64_t kv_tok, kv_type = -1, kv_score = -1;
    gguf_type_t et;
    uint64_t n, n2;
    if (gguf_get_arr(c->f, "tokenizer.ggml.tokens", &kv_tok, &et, &n) || et != GGUF_TYPE_STRING || n == 0 ||
        n > 16000000)
        return gfail(c, TOK_EFORMAT, "tokenizer.ggml.tokens missing, empty or not a string array");
    if (!gguf_get_arr(c->f, "tokenizer.ggml.token_type", &kv_type, NULL, &n2) && n2 != n)
        return gfail(c, TOK_EFORMAT, "tokenizer.ggml.token_type length differs from tokens");
    if (!gguf_get_arr(c->f, "tokenizer.ggml.scores", &kv_score, NULL, &n2) && n2 != n)
        return gfail(c, TOK_EFORMAT, "tokenizer.ggml.scores length differs from tokens");
    if (spm && kv_score < 0)
        return gfail(c, TOK_EFORMAT, "llama tokenizer without tokenizer.ggml.scores");

    tok_tokenizer_t *t = c->t = tok__new((int32_t)n);
    if (!t)
        return -ENOMEM;
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        const char *s;
        size_t len;
        if (gguf_kv_arr_str(c->f, kv_tok, i, &s, &len))
            return gfail(c, TOK_EFORMAT, "unreadable token text");
        rc = tok__set_text(t, (int32_t)i, s, len);
    }
    for (uint64_t i = 0; rc == 0 && kv_type >= 0 && i < n; i++) {
        int64_t ty;
        if (gguf_kv_arr_i64(c->f, kv_type, i, &ty))
            return gfail(c, TOK_EFORMAT, "tokenizer.ggml.token_type is not an integer array");
        if (t->text_len[i] == 0)
            continue;
        if (ty == TT_CONTROL || ty == TT_UNKNOWN || ty == TT_USER_DEFINED)
            rc = tok__add_added(t, (int32_t)i, ty != TT_USER_DEFINED, false, false);
        else if (ty == TT_BYTE)
            t->flags[i] |= TOK_F_BYTE;
    }
    if (rc)
        return rc;

    t->byte_level = !spm;
    if (spm) {
        bool prefix = get_flag(c, "tokenizer.ggml.add_space_prefix", true);
        t->byte_fallback = true;
        t->strip_leading_space = prefix;
        tok__norm_t a = {.kind = TOK_NORM_PREPEND, .cond_first = true, .str = malloc(2)};
        tok__norm_t b = {.kind = TOK_NORM_REPLACE, .pat = malloc(2), .str = malloc(4)};
        if (!a.str || !b.pat || !b.str) {
            free(a.str);
            free(b.pat);
            free(b.str);
            return -ENOMEM;
        }
        memcpy(a.str, " ", 2);
        memcpy(b.pat, " ", 2);
        memcpy(b.str, "\xE2\x96\x81", 4);
        if (!prefix || (rc = tok__push_norm(t, &a)))
            free(a.str);
        if (rc || (rc = tok__push_norm(t, &b))) {
            free(b.pat);
            free(b.str);
            return rc;
        }
    } else {
        char msg[160];
        if (!get_str(c, "tokenizer.ggml.pre", pre, sizeof pre))
            strcpy(pre, "gpt-2"); /* old files: plain GPT-2 splitting */
        if (!strcmp(pre, "default"))
            strcpy(pre, "gpt-2");
        if ((rc = tok__pretok_named(t, pre, msg, sizeof msg)))
            return gfail(c, rc, msg);
    }
    if ((rc = tok__finish_vocab(t)))
        return rc;
    if (spm) {
        float *scores = malloc(n * sizeof *scores);
        if (!scores)
            return -ENOMEM;
        for (uint64_t i = 0; rc == 0 && i < n; i++)
            if (gguf_kv_arr_f32(c->f, kv_score, i, &scores[i]))
                rc = gfail(c, TOK_EFORMAT, "tokenizer.ggml.scores is not a float array");
        if (rc == 0)
            rc = tok__merges_from_scores(t, scores);
        free(scores);
    } else
        rc = load_gpt2_merges(c);
    if (rc)
        return rc;
    tok__index_added(t);

    t->unk_id = get_id(c, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1);
    t->bos_id = get_id(c, "tokenizer.ggml.bos_token_id", spm ? 1 : -1);
    t->eos_id = get_id(c, "tokenizer.ggml.eos_token_id", spm ? 2 : -1);
    bool llama3 = !spm && t->ignore_merges; /* the llama-bpe family */
    if (get_flag(c, "tokenizer.ggml.add_bos_token", spm || llama3) && t->bos_id >= 0)
        t->prefix[t->n_prefix++] = t->bos_id;
    if (get_flag(c, "tokenizer.ggml.add_eos_token", false) && t->eos_id >= 0)
        t->suffix[t->n_suffix++] = t->eos_id;
    return 0;
}

int tok_load_gguf(const char *path, tok_tokenizer_t **out, char *errbuf, size_t errlen) {
    *out = NULL;
    gctx_t c = {.path = path, .err = errbuf, .errlen = errlen};
    int rc = gguf_open(path, &c.f, errbuf, errlen);
    if (rc) /* keep errno codes (-ENOENT...), fold the reader's own into ours */
        return rc > -4096 ? rc : TOK_EFORMAT;
    rc = load(&c);
    if (rc == -ENOMEM)
        tok__err(errbuf, errlen, path, "out of memory");
    gguf_close(&c.f);
    if (rc) {
        tok_destroy(&c.t);
        return rc;
    }
    *out = c.t;
    return 0;
}
