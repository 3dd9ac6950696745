/* Decoding: ids -> UTF-8 text, whole or streaming.
 *
 * Each id's bytes are precomputed at load (byte-level alphabet mapped back
 * to bytes, "▁" to ' ', <0xNN> to its byte, added tokens raw), so decoding is
 * concatenation, then one rule for the whole output: SentencePiece-style
 * tokenizers drop one leading space. Invalid UTF-8 becomes U+FFFD per maximal
 * invalid subsequence. The stream applies the same rules incrementally and
 * holds back the bytes of a character that is still incomplete, so the
 * concatenation of its outputs equals tok_decode of the same ids. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tok_int.h"

// --- lossy UTF-8 -----------------------------------------------------------------------

/* Length of the longest prefix of s[0..n) that could still begin a valid
 * sequence (1..3 when truncated-valid, 0 when invalid) and the full length
 * its lead byte announces. */
static size_t valid_prefix(const unsigned char *s, size_t n, size_t *want) {
    unsigned c = s[0];
    *want = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    if (!*want)
        return 0;
    size_t k = 1;
    while (k < *want && k < n) {
        unsigned x = s[k], lo = 0x80, hi = 0xBF;
        if (k == 1) {
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        }
        if (x < lo || x > hi)
            break;
        k++;
    }
    return k;
}

long tok__utf8_lossy(tok__buf_t *b, const char *s, size_t n, bool final) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0;
    int rc = tok__buf_reserve(b, n + 3);
    if (rc)
        return rc;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = tok__utf8_len(u + i, n - i);
        if (l) {
            i += l;
            continue;
        }
        size_t want, k = valid_prefix(u + i, n - i, &want);
        if (!final && k && i + k == n && k < want)
            break; /* incomplete character at the end: hold it back */
        if ((rc = tok__buf_put(b, s + run, i - run)) || (rc = tok__buf_put(b, "\xEF\xBF\xBD", 3)))
            return rc;
        i += k ? k : 1;
        run = i;
    }
    if ((rc = tok__buf_put(b, s + run, i - run)))
        return rc;
    return (long)i;
}

// --- whole decode ---------------------------------------------------------------------------

int tok_decode(const tok_tokenizer_t *t, const int32_t *ids, size_t n, bool skip_special,
               char **text, size_t *text_len) {
    *text = NULL;
    *text_len = 0;
    tok__buf_t raw = {0}, out = {0};
    int rc = tok__buf_put(&raw, "", 0);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            rc = TOK_EBADID;
        else if (!(skip_special && (t->flags[ids[i]] & TOK_F_SPECIAL)))
            rc = tok__buf_put(&raw, t->dec[ids[i]], t->dec_len[ids[i]]);
    }
    if (rc == 0) {
        size_t skip = t->strip_leading_space && raw.len && raw.p[0] == ' ';
        rc = tok__buf_put(&out, "", 0);
        long r = rc ? rc : tok__utf8_lossy(&out, raw.p + skip, raw.len - skip, true);
        rc = r < 0 ? (int)r : 0;
    }
    tok__buf_free(&raw);
    if (rc) {
        tok__buf_free(&out);
        return rc;
    }
    *text = out.p;
    *text_len = out.len;
    return 0;
}

// --- streaming ------------------------------------------------------------------------------

struct tok_stream {
    const tok_tokenizer_t *tok;
    bool skip_special;
    bool started;     /* some byte has been produced (leading-space rule done) */
    char pending[4];  /* held-back bytes of an incomplete character */
    size_t n_pending;
    tok__buf_t in, out;
};

int tok_stream_new(const tok_tokenizer_t *t, bool skip_special, tok_stream_t **out) {
    tok_stream_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->tok = t;
    s->skip_special = skip_special;
    *out = s;
    return 0;
}

int tok_stream_push(tok_stream_t *s, int32_t id, const char **text, size_t *text_len) {
    const tok_tokenizer_t *t = s->tok;
    *text = "";
    *text_len = 0;
    if (id < 0 || id >= t->n_vocab)
        return TOK_EBADID;
    s->out.len = 0;
    if (s->skip_special && (t->flags[id] & TOK_F_SPECIAL))
        return 0;
    const char *d = t->dec[id];
    size_t dn = t->dec_len[id];
    if (dn && !s->started) {
        s->started = true;
        if (t->strip_leading_space && d[0] == ' ') {
            d++;
            dn--;
        }
    }
    s->in.len = 0;
    int rc;
    if ((rc = tok__buf_put(&s->in, s->pending, s->n_pending)) || (rc = tok__buf_put(&s->in, d, dn)) ||
        (rc = tok__buf_put(&s->out, "", 0)))
        return rc;
    long used = tok__utf8_lossy(&s->out, s->in.p, s->in.len, false);
    if (used < 0)
        return (int)used;
    s->n_pending = s->in.len - (size_t)used; /* at most 3 by construction */
    memcpy(s->pending, s->in.p + used, s->n_pending);
    *text = s->out.p;
    *text_len = s->out.len;
    return 0;
}

int tok_stream_flush(tok_stream_t *s, const char **text, size_t *text_len) {
    *text = "";
    *text_len = 0;
    s->out.len = 0;
    int rc = tok__buf_put(&s->out, "", 0);
    if (rc)
        return rc;
    long r = tok__utf8_lossy(&s->out, s->pending, s->n_pending, true);
    if (r < 0)
        return (int)r;
    s->n_pending = 0;
    s->started = false;
    *text = s->out.p;
    *text_len = s->out.len;
    return 0;
}

size_t tok_stream_pending(const tok_stream_t *s) { return s->n_pending; }

void tok_stream_destroy(tok_stream_t **ps) {
    if (!ps || !*ps)
        return;
    tok__buf_free(&(*ps)->in);
    tok__buf_free(&(*ps)->out);
    free(*ps);
    *ps = NULL;
}
