/* Tokenizer construction shared by the tokenizer.json and GGUF loaders:
 * vocabulary and its reverse map, merge pairs, byte tables, precomputed
 * decode strings, named pre-tokenizers, and the small utilities (buffers,
 * UTF-8) the rest of the module uses.
 *
 * Everything here runs at load time; once tok__finish_vocab and
 * tok__index_added have run the tokenizer is read-only. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_int.h"

// --- errors -------------------------------------------------------------------------

const char *tok_strerror(int err) {
    switch (err) {
#define XX(name, val, msg)                                                                 \
    case name:                                                                             \
        return msg;
        TOK_ERRNO_MAP(XX)
#undef XX
    case 0:
        return "success";
    default:
        return err < 0 ? strerror(-err) : "unknown error";
    }
}

void tok__err(char *errbuf, size_t errlen, const char *file, const char *fmt, ...) {
    if (!errbuf || errlen == 0)
        return;
    int n = snprintf(errbuf, errlen, "%s: ", file ? file : "tokenizer");
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

// --- buffers ------------------------------------------------------------------------

int tok__buf_reserve(tok__buf_t *b, size_t extra) {
    if (b->cap - b->len > extra)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len <= extra) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int tok__buf_put(tok__buf_t *b, const void *data, size_t n) {
    int rc = tok__buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0'; /* reserve keeps one spare byte */
    return 0;
}

void tok__buf_free(tok__buf_t *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

// --- UTF-8 ---------------------------------------------------------------------------

size_t tok__utf8_len(const unsigned char *s, size_t n) {
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0)
            lo = 0xA0; /* overlong */
        if (c == 0xED)
            hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0)
            lo = 0x90;
        if (c == 0xF4)
            hi = 0x8F;
    } else
        return 0;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

bool tok__utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = tok__utf8_len(u + i, n - i);
        if (!l)
            return false;
        i += l;
    }
    return true;
}

int tok__utf8_put(tok__buf_t *b, uint32_t cp) {
    char e[4];
    size_t n;
    if (cp < 0x80) {
        e[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        e[0] = (char)(0xC0 | (cp >> 6));
        e[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        e[0] = (char)(0xE0 | (cp >> 12));
        e[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        e[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        e[0] = (char)(0xF0 | (cp >> 18));
        e[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        e[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        e[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return tok__buf_put(b, e, n);
}

/* Decodes one valid sequence (as checked by tok__utf8_len). */
static uint32_t utf8_cp(const unsigned char *s, size_t len) {
    if (len == 1)
        return s[0];
    uint32_t cp = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++)
        cp = (cp << 6) | (s[i] & 0x3F);
    return cp;
}

// --- bytes_to_unicode ------------------------------------------------------------------

static bool byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

/* The 68 non-printable bytes, in order, are 0x00-0x20 (33), 0x7F-0xA0 (34)
 * and 0xAD; the n-th maps to U+0100 + n. Closed form: this runs per byte on
 * the ignore_merges path. */
uint32_t tok__byte_to_cp(uint8_t b) {
    if (byte_is_printable(b))
        return b;
    if (b <= 0x20)
        return 0x100u + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x100u + 33 + (b - 0x7Fu);
    return 0x100u + 67; /* 0xAD */
}

int tok__cp_to_byte(uint32_t cp) {
    if (cp < 0x100)
        return byte_is_printable(cp) ? (int)cp : -1;
    uint32_t n = cp - 0x100;
    if (n < 33)
        return (int)n;
    if (n < 67)
        return (int)(0x7F + n - 33);
    return n == 67 ? 0xAD : -1;
}

// --- hash maps ----------------------------------------------------------------------------

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

int tok__pairmap_init(tok__pairmap_t *m, size_t expected) {
    size_t cap = pow2_at_least(expected * 2 + 1);
    m->keys = calloc(cap, sizeof *m->keys);
    m->rank = malloc(cap * sizeof *m->rank);
    m->result = malloc(cap * sizeof *m->result);
    m->mask = cap - 1;
    m->n = 0;
    if (!m->keys || !m->rank || !m->result) {
        tok__pairmap_free(m);
        return -ENOMEM;
    }
    return 0;
}

static int pairmap_grow(tok__pairmap_t *m) {
    tok__pairmap_t g;
    int rc = tok__pairmap_init(&g, (m->mask + 1));
    if (rc)
        return rc;
    for (size_t i = 0; i <= m->mask; i++) {
        if (!m->keys[i])
            continue;
        size_t j = hash_u64(m->keys[i]) & g.mask;
        while (g.keys[j])
            j = (j + 1) & g.mask;
        g.keys[j] = m->keys[i];
        g.rank[j] = m->rank[i];
        g.result[j] = m->result[i];
        g.n++;
    }
    tok__pairmap_free(m);
    *m = g;
    return 0;
}

int tok__pairmap_put(tok__pairmap_t *m, int32_t l, int32_t r, int32_t rank, int32_t result) {
    if ((m->n + 1) * 2 > m->mask + 1) {
        int rc = pairmap_grow(m);
        if (rc)
            return rc;
    }
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    size_t j = hash_u64(key) & m->mask;
    while (m->keys[j]) {
        if (m->keys[j] == key)
            return 0;
        j = (j + 1) & m->mask;
    }
    m->keys[j] = key;
    m->rank[j] = rank;
    m->result[j] = result;
    m->n++;
    return 0;
}

bool tok__pairmap_get(const tok__pairmap_t *m, int32_t l, int32_t r, int32_t *rank, int32_t *result) {
    if (!m->keys)
        return false;
    uint64_t key = (((uint64_t)(uint32_t)l << 32) | (uint32_t)r) + 1;
    size_t j = hash_u64(key) & m->mask;
    while (m->keys[j]) {
        if (m->keys[j] == key) {
            *rank = m->rank[j];
            *result = m->result[j];
            return true;
        }
        j = (j + 1) & m->mask;
    }
    return false;
}

void tok__pairmap_free(tok__pairmap_t *m) {
    free(m->keys);
    free(m->rank);
    free(m->result);
    memset(m, 0, sizeof *m);
}

// --- vocabulary ---------------------------------------------------------------------------

tok_tokenizer_t *tok__new(int32_t n_vocab) {
    tok_tokenizer_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->bos_id = t->eos_id = t->unk_id = -1;
    for (int i = 0; i < 256; i++)
        t->byte_sym[i] = t->byte_tok[i] = -1;
    if (n_vocab > 0 && tok__grow(t, n_vocab)) {
        tok_destroy(&t);
        return NULL;
    }
    return t;
}

int tok__grow(tok_tokenizer_t *t, int32_t n_vocab) {
    if (n_vocab <= t->n_vocab)
        return 0;
    size_t n = (size_t)n_vocab, old = (size_t)t->n_vocab;
    char **text = realloc(t->text, n * sizeof *text);
    if (!text)
        return -ENOMEM;
    t->text = text;
    uint32_t *len = realloc(t->text_len, n * sizeof *len);
    if (!len)
        return -ENOMEM;
    t->text_len = len;
    uint8_t *fl = realloc(t->flags, n);
    if (!fl)
        return -ENOMEM;
    t->flags = fl;
    for (size_t i = old; i < n; i++) {
        t->text[i] = NULL;
        t->text_len[i] = 0;
        t->flags[i] = 0;
    }
    t->n_vocab = n_vocab;
    return 0;
}

int tok__set_text(tok_tokenizer_t *t, int32_t id, const char *s, size_t n) {
    if (id < 0 || id >= t->n_vocab || n > UINT32_MAX)
        return TOK_EFORMAT;
    char *c = malloc(n + 1);
    if (!c)
        return -ENOMEM;
    memcpy(c, s, n);
    c[n] = '\0';
    free(t->text[id]);
    t->text[id] = c;
    t->text_len[id] = (uint32_t)n;
    return 0;
}

int32_t tok_token_id(const tok_tokenizer_t *t, const char *s, size_t n) {
    if (!t->map.slots)
        return -1;
    size_t j = hash_bytes(s, n) & t->map.mask;
    for (;;) {
        int32_t id = t->map.slots[j];
        if (id < 0)
            return -1;
        if (t->text_len[id] == n && !memcmp(t->text[id], s, n))
            return id;
        j = (j + 1) & t->map.mask;
    }
}

static bool parse_byte_token(const char *s, size_t n, int *byte) {
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>')
        return false;
    const char *h = strchr(hex, s[3]), *l = strchr(hex, s[4]);
    if (!h || !l || !*h || !*l)
        return false;
    *byte = (int)((h - hex) * 16 + (l - hex));
    return true;
}

/* The bytes an id decodes to, before the tokenizer-wide leading-space rule. */
static int make_dec(tok_tokenizer_t *t, int32_t id, tok__buf_t *b) {
    const char *s = t->text[id];
    size_t n = t->text_len[id];
    b->len = 0;
    int byte;
    if (t->flags[id] & TOK_F_ADDED)
        return tok__buf_put(b, s, n);
    if (t->byte_level) {
        const unsigned char *u = (const unsigned char *)s;
        size_t i = 0;
        while (i < n) {
            size_t l = tok__utf8_len(u + i, n - i);
            int v = l ? tok__cp_to_byte(utf8_cp(u + i, l)) : -1;
            if (v < 0) { /* not in the byte alphabet: raw text, as HF does */
                b->len = 0;
                return tok__buf_put(b, s, n);
            }
            char c = (char)v;
            int rc = tok__buf_put(b, &c, 1);
            if (rc)
                return rc;
            i += l;
        }
        return tok__buf_put(b, "", 0);
    }
    if ((t->flags[id] & TOK_F_BYTE) && parse_byte_token(s, n, &byte)) {
        char c = (char)byte;
        return tok__buf_put(b, &c, 1);
    }
    /* SentencePiece: "▁" (E2 96 81) stands for a space */
    size_t i = 0, run = 0;
    int rc = tok__buf_put(b, "", 0);
    while (rc == 0 && i + 3 <= n) {
        if (!memcmp(s + i, "\xE2\x96\x81", 3)) {
            if ((rc = tok__buf_put(b, s + run, i - run)) == 0)
                rc = tok__buf_put(b, " ", 1);
            i += 3;
            run = i;
        } else
            i++;
    }
    return rc ? rc : tok__buf_put(b, s + run, n - run);
}

int tok__finish_vocab(tok_tokenizer_t *t) {
    size_t cap = pow2_at_least((size_t)t->n_vocab * 2 + 1);
    t->map.slots = malloc(cap * sizeof *t->map.slots);
    if (!t->map.slots)
        return -ENOMEM;
    memset(t->map.slots, 0xff, cap * sizeof *t->map.slots);
    t->map.mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (!t->text[id]) {
            int rc = tok__set_text(t, id, "", 0);
            if (rc)
                return rc;
            continue; /* holes are never looked up */
        }
        if (t->text_len[id] == 0)
            continue;
        size_t j = hash_bytes(t->text[id], t->text_len[id]) & t->map.mask;
        bool dup = false;
        while (t->map.slots[j] >= 0) {
            int32_t o = t->map.slots[j];
            if (t->text_len[o] == t->text_len[id] && !memcmp(t->text[o], t->text[id], t->text_len[id])) {
                dup = true; /* keep the first id, as llama.cpp does */
                break;
            }
            j = (j + 1) & t->map.mask;
        }
        if (!dup)
            t->map.slots[j] = id;
    }
    /* byte tables */
    for (int b = 0; b < 256; b++) {
        tok__buf_t e = {0};
        if (tok__utf8_put(&e, tok__byte_to_cp((uint8_t)b)))
            return -ENOMEM;
        t->byte_sym[b] = tok_token_id(t, e.p, e.len);
        tok__buf_free(&e);
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        t->byte_tok[b] = tok_token_id(t, name, 6);
        if (t->byte_tok[b] >= 0 && !t->byte_level)
            t->flags[t->byte_tok[b]] |= TOK_F_BYTE;
    }
    /* decode strings */
    t->dec = calloc((size_t)t->n_vocab, sizeof *t->dec);
    t->dec_len = calloc((size_t)t->n_vocab, sizeof *t->dec_len);
    if (!t->dec || !t->dec_len)
        return -ENOMEM;
    tok__buf_t b = {0};
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int rc = make_dec(t, id, &b);
        if (rc) {
            tok__buf_free(&b);
            return rc;
        }
        t->dec[id] = malloc(b.len + 1);
        if (!t->dec[id]) {
            tok__buf_free(&b);
            return -ENOMEM;
        }
        memcpy(t->dec[id], b.p, b.len + 1);
        t->dec_len[id] = (uint32_t)b.len;
    }
    tok__buf_free(&b);
    return 0;
}

int tok__add_added(tok_tokenizer_t *t, int32_t id, bool special, bool lstrip, bool rstrip) {
    if (id < 0 || id >= t->n_vocab || !t->text[id] || t->text_len[id] == 0)
        return TOK_EFORMAT;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) {
            t->added[i].special |= special;
            return 0;
        }
    tok__added_t *a = realloc(t->added, (t->n_added + 1) * sizeof *a);
    if (!a)
        return -ENOMEM;
    t->added = a;
    a[t->n_added++] = (tok__added_t){
        .id = id, .text = t->text[id], .len = t->text_len[id],
        .special = special, .lstrip = lstrip, .rstrip = rstrip};
    t->flags[id] |= TOK_F_ADDED | (special ? TOK_F_SPECIAL : 0);
    return 0;
}

static int added_cmp(const void *pa, const void *pb) {
    const tok__added_t *a = pa, *b = pb;
    unsigned ca = (unsigned char)a->text[0], cb = (unsigned char)b->text[0];
    if (ca != cb)
        return ca < cb ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

void tok__index_added(tok_tokenizer_t *t) {
    /* texts may have moved since tok__add_added (set_text): refresh */
    for (size_t i = 0; i < t->n_added; i++) {
        t->added[i].text = t->text[t->added[i].id];
        t->added[i].len = t->text_len[t->added[i].id];
    }
    if (t->n_added)
        qsort(t->added, t->n_added, sizeof *t->added, added_cmp);
    size_t k = 0;
    for (unsigned b = 0; b < 257; b++) {
        while (k < t->n_added && (unsigned char)t->added[k].text[0] < b)
            k++;
        t->added_first[b] = (uint32_t)k;
    }
}

int tok__add_merge(tok_tokenizer_t *t, const char *a, size_t na, const char *b, size_t nb,
                   int32_t rank) {
    int32_t l = tok_token_id(t, a, na), r = tok_token_id(t, b, nb);
    if (l < 0 || r < 0)
        return 0;
    char stack[256];
    char *cat = na + nb <= sizeof stack ? stack : malloc(na + nb);
    if (!cat)
        return -ENOMEM;
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    int32_t res = tok_token_id(t, cat, na + nb);
    if (cat != stack)
        free(cat);
    if (res < 0)
        return 0;
    if (!t->pairs.keys) {
        int rc = tok__pairmap_init(&t->pairs, 1024);
        if (rc)
            return rc;
    }
    return tok__pairmap_put(&t->pairs, l, r, rank, res);
}

static int score_cmp(const void *pa, const void *pb, void *ctx) {
    const float *sc = ctx;
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    if (sc[a] != sc[b])
        return sc[a] > sc[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

int tok__merges_from_scores(tok_tokenizer_t *t, const float *scores) {
    int32_t n = t->n_vocab;
    int32_t *order = malloc((size_t)n * sizeof *order);
    int32_t *rank = malloc((size_t)n * sizeof *rank);
    if (!order || !rank) {
        free(order);
        free(rank);
        return -ENOMEM;
    }
    for (int32_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, score_cmp, (void *)scores); /* glibc */
    for (int32_t i = 0, r = 0; i < n; i++) {
        if (i > 0 && scores[order[i]] != scores[order[i - 1]])
            r = i;
        rank[order[i]] = r;
    }
    int rc = tok__pairmap_init(&t->pairs, (size_t)n * 4);
    for (int32_t id = 0; rc == 0 && id < n; id++) {
        const char *s = t->text[id];
        size_t len = t->text_len[id];
        if (t->flags[id] & (TOK_F_ADDED | TOK_F_BYTE))
            continue;
        for (size_t k = 1; rc == 0 && k < len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80)
                continue; /* split only at character boundaries */
            int32_t l = tok_token_id(t, s, k), r = tok_token_id(t, s + k, len - k);
            if (l >= 0 && r >= 0)
                rc = tok__pairmap_put(&t->pairs, l, r, rank[id], id);
        }
    }
    free(order);
    free(rank);
    return rc;
}

// --- pre-tokenizers ---------------------------------------------------------------------

const char tok__re_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char re_llama3[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char re_qwen2[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

pcre2_code *tok__regex_compile(const char *pattern, size_t len, bool literal, char *err,
                               size_t errlen) {
    int ec;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, opts, &ec, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(ec, msg, sizeof msg);
        if (err && errlen)
            snprintf(err, errlen, "regex error at offset %zu: %s", (size_t)off, (char *)msg);
        return NULL;
    }
    /* JIT is an optimisation: if unavailable, pcre2_match interprets */
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

int tok__push_pretok(tok_tokenizer_t *t, const tok__pretok_t *p) {
    tok__pretok_t *a = realloc(t->pretoks, (t->n_pretoks + 1) * sizeof *a);
    if (!a)
        return -ENOMEM;
    t->pretoks = a;
    a[t->n_pretoks++] = *p;
    return 0;
}

int tok__push_norm(tok_tokenizer_t *t, const tok__norm_t *n) {
    tok__norm_t *a = realloc(t->norms, (t->n_norms + 1) * sizeof *a);
    if (!a)
        return -ENOMEM;
    t->norms = a;
    a[t->n_norms++] = *n;
    return 0;
}

static int push_split(tok_tokenizer_t *t, const char *re, char *err, size_t errlen) {
    tok__pretok_t p = {.kind = TOK_PT_SPLIT, .behavior = TOK_SPLIT_ISOLATED};
    if (!(p.re = tok__regex_compile(re, strlen(re), false, err, errlen)))
        return TOK_EREGEX;
    int rc = tok__push_pretok(t, &p);
    if (rc)
        pcre2_code_free(p.re);
    return rc;
}

int tok__pretok_named(tok_tokenizer_t *t, const char *name, char *err, size_t errlen) {
    static const char *const starcoder[] = {"smollm", "starcoder", "refact", "command-r",
                                            "codeshell", "exaone", "minerva", NULL};
    static const char *const llama3[] = {"llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe", NULL};
    for (int i = 0; starcoder[i]; i++)
        if (!strcmp(name, starcoder[i])) {
            int rc = push_split(t, "\\p{N}", err, errlen);
            return rc ? rc : push_split(t, tok__re_gpt2, err, errlen);
        }
    for (int i = 0; llama3[i]; i++)
        if (!strcmp(name, llama3[i])) {
            t->ignore_merges = true;
            return push_split(t, re_llama3, err, errlen);
        }
    if (!strcmp(name, "qwen2"))
        return push_split(t, re_qwen2, err, errlen);
    if (!strcmp(name, "gpt-2") || !strcmp(name, "gpt2"))
        return push_split(t, tok__re_gpt2, err, errlen);
    if (err && errlen)
        snprintf(err, errlen, "unsupported pre-tokenizer \"%s\"", name);
    return TOK_EUNSUPPORTED;
}

// --- getters and destruction -----------------------------------------------------------------

int32_t tok_vocab_size(const tok_tokenizer_t *t) { return t->n_vocab; }
int32_t tok_bos_id(const tok_tokenizer_t *t) { return t->bos_id; }
int32_t tok_eos_id(const tok_tokenizer_t *t) { return t->eos_id; }

bool tok_is_special(const tok_tokenizer_t *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->flags[id] & TOK_F_SPECIAL);
}

const char *tok_token_text(const tok_tokenizer_t *t, int32_t id) {
    if (id < 0 || id >= t->n_vocab || !t->text[id] || !t->text_len[id])
        return NULL;
    return t->text[id];
}

void tok_destroy(tok_tokenizer_t **pt) {
    if (!pt || !*pt)
        return;
    tok_tokenizer_t *t = *pt;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        free(t->text[i]);
        if (t->dec)
            free(t->dec[i]);
    }
    free(t->text);
    free(t->text_len);
    free(t->flags);
    free(t->dec);
    free(t->dec_len);
    free(t->map.slots);
    tok__pairmap_free(&t->pairs);
    for (size_t i = 0; i < t->n_norms; i++) {
        free(t->norms[i].pat);
        free(t->norms[i].str);
    }
    free(t->norms);
    for (size_t i = 0; i < t->n_pretoks; i++) {
        pcre2_code_free(t->pretoks[i].re);
        free(t->pretoks[i].replacement);
    }
    free(t->pretoks);
    free(t->added);
    free(t);
    *pt = NULL;
}
