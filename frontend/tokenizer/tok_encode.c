/* Encoding: raw text -> ids.
 *
 * Pipeline per call: added tokens are split out of the raw text (leftmost,
 * then longest); each text fragment between them is normalized, then cut into
 * pieces by the pre-tokenizer steps in order (each step re-splits every
 * current piece), then each piece is merged by BPE; the post-processor adds
 * BOS/EOS when asked.
 *
 * BPE keeps the piece's symbols in a doubly linked list over arrays and the
 * candidate pairs in a binary min-heap keyed (rank, position); stale heap
 * entries are skipped on pop by re-checking the pair, so a piece of n symbols
 * costs O(n log n). All scratch memory lives in one workspace per call,
 * grown geometrically, so the inner loop does not allocate. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tok_int.h"

// --- workspace ------------------------------------------------------------------------

typedef struct {
    uint32_t off, len;
    bool first; /* starts at offset 0 of the original text */
} piece_t;

typedef struct {
    tok__buf_t buf;
    piece_t *p;
    size_t n, cap;
} plist_t;

typedef struct {
    int32_t rank, pos, right, l, r, result;
} heap_ent_t;

struct tok__ws {
    int32_t *sym, *prev, *next;
    size_t sym_cap;
    heap_ent_t *heap;
    size_t heap_n, heap_cap;
    tok__buf_t mapped;
    tok__buf_t norm, norm2;
    plist_t pa, pb;
    pcre2_match_data *md;
};

tok__ws_t *tok__ws_new(void) {
    tok__ws_t *ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->md = pcre2_match_data_create(4, NULL);
    if (!ws->md) {
        free(ws);
        return NULL;
    }
    return ws;
}

void tok__ws_free(tok__ws_t *ws) {
    if (!ws)
        return;
    free(ws->sym);
    free(ws->prev);
    free(ws->next);
    free(ws->heap);
    tok__buf_free(&ws->mapped);
    tok__buf_free(&ws->norm);
    tok__buf_free(&ws->norm2);
    tok__buf_free(&ws->pa.buf);
    tok__buf_free(&ws->pb.buf);
    free(ws->pa.p);
    free(ws->pb.p);
    pcre2_match_data_free(ws->md);
    free(ws);
}

static int ids_push(int32_t **ids, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        int32_t *p = realloc(*ids, c * sizeof *p);
        if (!p)
            return -ENOMEM;
        *ids = p;
        *cap = c;
    }
    (*ids)[(*n)++] = id;
    return 0;
}

// --- BPE ------------------------------------------------------------------------------

static int sym_reserve(tok__ws_t *ws, size_t n) {
    if (n <= ws->sym_cap)
        return 0;
    size_t c = ws->sym_cap ? ws->sym_cap : 64;
    while (c < n)
        c *= 2;
    int32_t *a = realloc(ws->sym, c * sizeof *a);
    if (!a)
        return -ENOMEM;
    ws->sym = a;
    if (!(a = realloc(ws->prev, c * sizeof *a)))
        return -ENOMEM;
    ws->prev = a;
    if (!(a = realloc(ws->next, c * sizeof *a)))
        return -ENOMEM;
    ws->next = a;
    ws->sym_cap = c;
    return 0;
}

static bool heap_less(const heap_ent_t *a, const heap_ent_t *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int heap_push(tok__ws_t *ws, heap_ent_t e) {
    if (ws->heap_n == ws->heap_cap) {
        size_t c = ws->heap_cap ? ws->heap_cap * 2 : 64;
        heap_ent_t *h = realloc(ws->heap, c * sizeof *h);
        if (!h)
            return -ENOMEM;
        ws->heap = h;
        ws->heap_cap = c;
    }
    size_t i = ws->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!heap_less(&e, &ws->heap[p]))
            break;
        ws->heap[i] = ws->heap[p];
        i = p;
    }
    ws->heap[i] = e;
    return 0;
}

static heap_ent_t heap_pop(tok__ws_t *ws) {
    heap_ent_t top = ws->heap[0], last = ws->heap[--ws->heap_n];
    size_t i = 0, n = ws->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && heap_less(&ws->heap[c + 1], &ws->heap[c]))
            c++;
        if (!heap_less(&ws->heap[c], &last))
            break;
        ws->heap[i] = ws->heap[c];
        i = c;
    }
    if (n)
        ws->heap[i] = last;
    return top;
}

static int try_pair(const tok_tokenizer_t *t, tok__ws_t *ws, int32_t pos) {
    if (pos < 0)
        return 0;
    int32_t right = ws->next[pos];
    if (right < 0)
        return 0;
    int32_t rank, result;
    if (!tok__pairmap_get(&t->pairs, ws->sym[pos], ws->sym[right], &rank, &result))
        return 0;
    return heap_push(ws, (heap_ent_t){rank, pos, right, ws->sym[pos], ws->sym[right], result});
}

/* Initial symbols of a piece; returns their count via *n or an error. */
static int initial_symbols(const tok_tokenizer_t *t, tok__ws_t *ws, const char *s, size_t len,
                           size_t *n) {
    int rc = sym_reserve(ws, len + 1);
    if (rc)
        return rc;
    size_t k = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < len; i++) {
            int32_t id = t->byte_sym[(unsigned char)s[i]];
            if (id >= 0)
                ws->sym[k++] = id;
            else if (t->unk_id >= 0)
                ws->sym[k++] = t->unk_id;
        }
        *n = k;
        return 0;
    }
    const unsigned char *u = (const unsigned char *)s;
    bool prev_unk = false;
    for (size_t i = 0; i < len;) {
        size_t l = tok__utf8_len(u + i, len - i);
        if (!l)
            l = 1; /* input is validated; this is only a guard */
        int32_t id = tok_token_id(t, s + i, l);
        if (id >= 0) {
            ws->sym[k++] = id;
            prev_unk = false;
        } else if (t->byte_fallback && t->byte_tok[u[i]] >= 0) {
            for (size_t j = 0; j < l; j++)
                ws->sym[k++] = t->byte_tok[u[i + j]] >= 0 ? t->byte_tok[u[i + j]] : t->unk_id;
            prev_unk = false;
        } else if (t->unk_id >= 0 && !(t->fuse_unk && prev_unk)) {
            ws->sym[k++] = t->unk_id;
            prev_unk = true;
        }
        i += l;
    }
    *n = k;
    return 0;
}

int tok__bpe_piece(const tok_tokenizer_t *t, tok__ws_t *ws, const char *s, size_t len,
                   int32_t **out, size_t *n_out, size_t *cap_out) {
    int rc;
    if (len == 0)
        return 0;
    if (t->ignore_merges) {
        int32_t whole;
        if (t->byte_level) {
            ws->mapped.len = 0;
            for (size_t i = 0; i < len; i++)
                if ((rc = tok__utf8_put(&ws->mapped, tok__byte_to_cp((uint8_t)s[i]))))
                    return rc;
            whole = tok_token_id(t, ws->mapped.p, ws->mapped.len);
        } else
            whole = tok_token_id(t, s, len);
        if (whole >= 0)
            return ids_push(out, n_out, cap_out, whole);
    }
    size_t n;
    if ((rc = initial_symbols(t, ws, s, len, &n)))
        return rc;
    for (size_t i = 0; i < n; i++) {
        ws->prev[i] = (int32_t)i - 1;
        ws->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    ws->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if ((rc = try_pair(t, ws, (int32_t)i)))
            return rc;
    while (ws->heap_n) {
        heap_ent_t e = heap_pop(ws);
        /* stale: either side merged since the entry was pushed */
        if (ws->sym[e.pos] != e.l || ws->next[e.pos] != e.right || ws->sym[e.right] != e.r)
            continue;
        ws->sym[e.pos] = e.result;
        int32_t after = ws->next[e.right];
        ws->next[e.pos] = after;
        if (after >= 0)
            ws->prev[after] = e.pos;
        ws->sym[e.right] = -1;
        ws->next[e.right] = -2;
        if ((rc = try_pair(t, ws, ws->prev[e.pos])) || (rc = try_pair(t, ws, e.pos)))
            return rc;
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = ws->next[i])
        if ((rc = ids_push(out, n_out, cap_out, ws->sym[i])))
            return rc;
    return 0;
}

// --- pieces -------------------------------------------------------------------------------

static int plist_add(plist_t *l, const char *s, size_t n, bool first) {
    if (n == 0)
        return 0;
    if (l->n == l->cap) {
        size_t c = l->cap ? l->cap * 2 : 32;
        piece_t *p = realloc(l->p, c * sizeof *p);
        if (!p)
            return -ENOMEM;
        l->p = p;
        l->cap = c;
    }
    size_t off = l->buf.len;
    int rc = tok__buf_put(&l->buf, s, n);
    if (rc)
        return rc;
    l->p[l->n++] = (piece_t){(uint32_t)off, (uint32_t)n, first};
    return 0;
}

/* Appends to the last piece (used by the merged split behaviours). */
static int plist_extend(plist_t *l, const char *s, size_t n) {
    if (l->n == 0)
        return plist_add(l, s, n, false);
    int rc = tok__buf_put(&l->buf, s, n);
    if (!rc)
        l->p[l->n - 1].len += (uint32_t)n;
    return rc;
}

static void plist_reset(plist_t *l) {
    l->n = 0;
    l->buf.len = 0;
}

/* Finds the next non-empty match at or after pos: 1 and [*ms, *me), 0 when
 * none, or a negative code. The subject was validated as UTF-8 once (input in
 * tok_encode, configured strings at load), so PCRE2's own check, which scans
 * the whole subject on every call and would make splitting quadratic, is off. */
static int next_match(pcre2_code *re, pcre2_match_data *md, const char *s, size_t n, size_t pos,
                      size_t *ms, size_t *me) {
    while (pos <= n) {
        const uint32_t opts = PCRE2_NOTEMPTY_ATSTART | PCRE2_NO_UTF_CHECK;
        int r = pcre2_match(re, (PCRE2_SPTR)s, n, pos, opts, md, NULL);
        if (r == PCRE2_ERROR_JIT_STACKLIMIT)
            r = pcre2_match(re, (PCRE2_SPTR)s, n, pos, opts | PCRE2_NO_JIT, md, NULL);
        if (r == PCRE2_ERROR_NOMATCH)
            return 0;
        if (r < 0)
            return r == PCRE2_ERROR_NOMEMORY ? -ENOMEM : TOK_EINPUT;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        /* empty match inside the text: step one character */
        pos = ov[0] + 1;
        while (pos < n && ((unsigned char)s[pos] & 0xC0) == 0x80)
            pos++;
    }
    return 0;
}

static int split_piece(const tok__pretok_t *pt, pcre2_match_data *md, const char *s, size_t n,
                       bool first, plist_t *dst) {
    size_t pos = 0, ms, me;
    bool prev_match = false; /* for CONTIGUOUS */
    int rc = 0, found;
    size_t before = dst->n;
    while (pos < n) {
        found = next_match(pt->re, md, s, n, pos, &ms, &me);
        if (found < 0)
            return found;
        if (!found)
            ms = me = n;
        /* gap [pos, ms) then match [ms, me); invert swaps their roles */
        for (int part = 0; part < 2 && rc == 0; part++) {
            size_t a = part ? ms : pos, b = part ? me : ms;
            if (a == b)
                continue;
            bool is_delim = part == 1 ? !pt->invert : pt->invert;
            bool f = first && a == 0;
            switch (pt->behavior) {
            case TOK_SPLIT_ISOLATED:
                rc = plist_add(dst, s + a, b - a, f);
                break;
            case TOK_SPLIT_REMOVED:
                if (!is_delim)
                    rc = plist_add(dst, s + a, b - a, f);
                break;
            case TOK_SPLIT_MERGED_PREV:
                rc = is_delim && !prev_match && dst->n > before ? plist_extend(dst, s + a, b - a)
                                                                : plist_add(dst, s + a, b - a, f);
                break;
            case TOK_SPLIT_MERGED_NEXT:
                if (!is_delim && prev_match)
                    rc = plist_extend(dst, s + a, b - a);
                else
                    rc = plist_add(dst, s + a, b - a, f);
                break;
            case TOK_SPLIT_CONTIGUOUS:
                rc = is_delim && prev_match && dst->n > before ? plist_extend(dst, s + a, b - a)
                                                               : plist_add(dst, s + a, b - a, f);
                break;
            }
            prev_match = is_delim;
        }
        if (rc)
            return rc;
        pos = me;
    }
    return 0;
}

static bool starts_with(const char *s, size_t n, const char *p) {
    size_t m = strlen(p);
    return n >= m && !memcmp(s, p, m);
}

/* Replaces every `pat` in s[0..n) with `rep`, appending to dst. */
static int replace_all(tok__buf_t *dst, const char *s, size_t n, const char *pat, const char *rep) {
    size_t pl = strlen(pat), rl = strlen(rep), run = 0, i = 0;
    int rc = tok__buf_put(dst, "", 0);
    if (pl == 0)
        return tok__buf_put(dst, s, n);
    while (rc == 0 && i + pl <= n) {
        if (!memcmp(s + i, pat, pl)) {
            if ((rc = tok__buf_put(dst, s + run, i - run)) == 0)
                rc = tok__buf_put(dst, rep, rl);
            i += pl;
            run = i;
        } else
            i++;
    }
    return rc ? rc : tok__buf_put(dst, s + run, n - run);
}

static int apply_pretok(const tok__pretok_t *pt, tok__ws_t *ws, const plist_t *src, plist_t *dst) {
    int rc = 0;
    for (size_t i = 0; i < src->n && rc == 0; i++) {
        const char *s = src->buf.p + src->p[i].off;
        size_t n = src->p[i].len;
        bool first = src->p[i].first;
        switch (pt->kind) {
        case TOK_PT_SPLIT:
            rc = split_piece(pt, ws->md, s, n, first, dst);
            break;
        case TOK_PT_BYTELEVEL:
            if (pt->add_prefix_space && !(n && s[0] == ' ')) {
                ws->norm2.len = 0;
                if ((rc = tok__buf_put(&ws->norm2, " ", 1)) || (rc = tok__buf_put(&ws->norm2, s, n)))
                    break;
                s = ws->norm2.p;
                n = ws->norm2.len;
            }
            rc = pt->re ? split_piece(pt, ws->md, s, n, first, dst) : plist_add(dst, s, n, first);
            break;
        case TOK_PT_METASPACE: {
            ws->norm2.len = 0;
            bool pre = pt->prepend == TOK_PREPEND_ALWAYS || (pt->prepend == TOK_PREPEND_FIRST && first);
            /* HF checks after replacing spaces: a leading ' ' counts too */
            if (pre && !starts_with(s, n, pt->replacement) && !(n && s[0] == ' '))
                rc = tok__buf_put(&ws->norm2, pt->replacement, strlen(pt->replacement));
            if (rc || (rc = replace_all(&ws->norm2, s, n, " ", pt->replacement)))
                break;
            if (!pt->split) {
                rc = plist_add(dst, ws->norm2.p, ws->norm2.len, first);
                break;
            }
            /* split before every replacement char (MergedWithNext) */
            const char *r = pt->replacement, *m = ws->norm2.p;
            size_t rl = strlen(r), len = ws->norm2.len, start = 0;
            for (size_t k = 1; k + rl <= len && rc == 0; k++)
                if (!memcmp(m + k, r, rl)) {
                    rc = plist_add(dst, m + start, k - start, first && start == 0);
                    start = k;
                }
            if (!rc)
                rc = plist_add(dst, m + start, len - start, first && start == 0);
            break;
        }
        }
    }
    return rc;
}

// --- fragments ------------------------------------------------------------------------------

/* Normalizes, pre-tokenizes and merges one text fragment. */
static int encode_fragment(const tok_tokenizer_t *t, tok__ws_t *ws, const char *s, size_t n,
                           bool at_start, bool after_special, int32_t **ids, size_t *n_ids,
                           size_t *cap) {
    int rc = 0;
    ws->norm.len = 0;
    if ((rc = tok__buf_put(&ws->norm, s, n)))
        return rc;
    for (size_t i = 0; i < t->n_norms; i++) {
        const tok__norm_t *nm = &t->norms[i];
        tok__buf_t out = {0};
        if (nm->kind == TOK_NORM_PREPEND) {
            bool want = nm->cond_first ? after_special : ws->norm.len > 0;
            if (!want)
                continue;
            if ((rc = tok__buf_put(&out, nm->str, strlen(nm->str))) == 0)
                rc = tok__buf_put(&out, ws->norm.p, ws->norm.len);
        } else
            rc = replace_all(&out, ws->norm.p, ws->norm.len, nm->pat, nm->str);
        tok__buf_free(&ws->norm);
        ws->norm = out;
        if (rc)
            return rc;
    }
    plist_t *src = &ws->pa, *dst = &ws->pb;
    plist_reset(src);
    if ((rc = plist_add(src, ws->norm.p, ws->norm.len, at_start)))
        return rc;
    for (size_t i = 0; i < t->n_pretoks; i++) {
        plist_reset(dst);
        if ((rc = apply_pretok(&t->pretoks[i], ws, src, dst)))
            return rc;
        plist_t *x = src;
        src = dst;
        dst = x;
    }
    for (size_t i = 0; i < src->n && rc == 0; i++)
        rc = tok__bpe_piece(t, ws, src->buf.p + src->p[i].off, src->p[i].len, ids, n_ids, cap);
    return rc;
}

static bool is_ws(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Longest added token starting at s[i], or NULL. */
static const tok__added_t *added_at(const tok_tokenizer_t *t, const char *s, size_t n, size_t i) {
    unsigned b = (unsigned char)s[i];
    for (uint32_t k = t->added_first[b]; k < t->added_first[b + 1]; k++) {
        const tok__added_t *a = &t->added[k];
        if (a->len <= n - i && !memcmp(s + i, a->text, a->len))
            return a;
    }
    return NULL;
}

int tok_encode(const tok_tokenizer_t *t, const char *text, size_t len, bool add_special,
               int32_t **ids_out, size_t *n_out) {
    *ids_out = NULL;
    *n_out = 0;
    if (!tok__utf8_valid(text, len))
        return TOK_EINPUT;
    tok__ws_t *ws = tok__ws_new();
    if (!ws)
        return -ENOMEM;
    int32_t *ids = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    if (add_special)
        for (int i = 0; i < t->n_prefix && rc == 0; i++)
            rc = ids_push(&ids, &n, &cap, t->prefix[i]);
    size_t frag = 0; /* start of the current text fragment */
    bool after_special = true;
    for (size_t i = 0; i < len && rc == 0;) {
        const tok__added_t *a = t->n_added ? added_at(t, text, len, i) : NULL;
        if (!a) {
            i++;
            continue;
        }
        size_t end = i + a->len, fend = i;
        if (a->lstrip)
            while (fend > frag && is_ws(text[fend - 1]))
                fend--;
        if (fend > frag)
            rc = encode_fragment(t, ws, text + frag, fend - frag, frag == 0, after_special, &ids, &n, &cap);
        if (rc == 0)
            rc = ids_push(&ids, &n, &cap, a->id);
        if (a->rstrip)
            while (end < len && is_ws(text[end]))
                end++;
        after_special = true;
        i = frag = end;
    }
    if (rc == 0 && frag < len)
        rc = encode_fragment(t, ws, text + frag, len - frag, frag == 0, after_special, &ids, &n, &cap);
    if (add_special)
        for (int i = 0; i < t->n_suffix && rc == 0; i++)
            rc = ids_push(&ids, &n, &cap, t->suffix[i]);
    tok__ws_free(ws);
    if (rc) {
        free(ids);
        return rc;
    }
    *ids_out = ids;
    *n_out = n;
    return 0;
}
