/* Unit tests for frontend/tokenizer: BPE merge order, added tokens, byte
 * fallback and "▁" handling, the streaming detokenizer's UTF-8 hold-back,
 * long inputs, and malformed tokenizer.json / GGUF inputs (errors, never
 * crashes). Tokenizers are built in memory with cJSON; parity with the HF
 * implementation on real vocabularies is tests/py/test_tokenizer.py's job.
 * Usage: test_tokenizer <test-name>; each meson test runs one name. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cJSON.h>

#include "tok_int.h"

static int failures;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
            failures++;                                                                 \
        }                                                                               \
    } while (0)

#define CHECK_INT(got, want)                                                              \
    do {                                                                                  \
        long long g_ = (long long)(got), w_ = (long long)(want);                         \
        if (g_ != w_) {                                                                   \
            fprintf(stderr, "%s:%d: %s = %lld, want %lld\n", __FILE__, __LINE__, #got, g_, w_); \
            failures++;                                                                   \
        }                                                                                 \
    } while (0)

#define CHECK_MEM(got, glen, want)                                                           \
    do {                                                                                     \
        const char *w_ = (want);                                                             \
        size_t wl_ = strlen(w_), gl_ = (glen);                                               \
        if (gl_ != wl_ || memcmp((got), w_, wl_)) {                                          \
            fprintf(stderr, "%s:%d: got [%.*s] (%zu bytes), want [%s] (%zu bytes)\n", __FILE__, \
                    __LINE__, (int)gl_, (const char *)(got), gl_, w_, wl_);                  \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

/* Compares ids with an expected list terminated by -1. */
static void check_ids(int line, const int32_t *ids, size_t n, const int32_t *want) {
    size_t wn = 0;
    while (want[wn] >= 0)
        wn++;
    bool same = n == wn;
    for (size_t i = 0; same && i < n; i++)
        same = ids[i] == want[i];
    if (same)
        return;
    fprintf(stderr, "%s:%d: got [", __FILE__, line);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, " ], want [");
    for (size_t i = 0; i < wn; i++)
        fprintf(stderr, " %d", want[i]);
    fprintf(stderr, " ]\n");
    failures++;
}
#define CHECK_IDS(ids, n, ...) check_ids(__LINE__, ids, n, (const int32_t[]){__VA_ARGS__, -1})

// --- building tokenizers ---------------------------------------------------------------

/* Byte-level tokenizer: ids 0..255 are the byte alphabet in byte order, then
 * `extra` tokens (NULL-terminated), then merges (pairs "a b", NULL-terminated). */
static char *bytelevel_json(const char *const *extra, const char *const *merges, const char *added) {
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    int id = 0;
    for (int b = 0; b < 256; b++) {
        tok__buf_t e = {0};
        if (tok__utf8_put(&e, tok__byte_to_cp((uint8_t)b)))
            abort();
        cJSON_AddNumberToObject(vocab, e.p, id++);
        tok__buf_free(&e);
    }
    for (int i = 0; extra && extra[i]; i++)
        cJSON_AddNumberToObject(vocab, extra[i], id++);
    cJSON *m = cJSON_AddArrayToObject(model, "merges");
    for (int i = 0; merges && merges[i]; i++)
        cJSON_AddItemToArray(m, cJSON_CreateString(merges[i]));
    cJSON *pt = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pt, "type", "ByteLevel");
    cJSON_AddBoolToObject(pt, "add_prefix_space", false);
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    if (added)
        cJSON_AddItemToObject(root, "added_tokens", cJSON_Parse(added));
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static tok_tokenizer_t *load_str(const char *json) {
    char err[256] = "";
    tok_tokenizer_t *t = NULL;
    int rc = tok_load_json(json, strlen(json), NULL, 0, &t, err, sizeof err);
    if (rc) {
        fprintf(stderr, "load failed: %d %s\n", rc, err);
        failures++;
    }
    return t;
}

/* A small SentencePiece-style tokenizer.json: <unk>, <s>, </s>, 256 byte
 * tokens, then pieces; merges ranked as listed. */
static const char spm_json[] =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xE2\x96\x81\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xE2\x96\x81\"}]},"
    "\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xE2\x96\x81\"},\"content\":\" \"},"
    "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
    "\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"fuse_unk\":true,\"unk_token\":\"<unk>\",\"vocab\":{"
    "\"<unk>\":0,\"<s>\":1,\"</s>\":2,%s"
    "\"\xE2\x96\x81\":259,\"h\":260,\"i\":261,\"\xE2\x96\x81h\":262,\"\xE2\x96\x81hi\":263,\"\xC3\xA9\":264},"
    "\"merges\":[[\"\xE2\x96\x81\",\"h\"],[\"\xE2\x96\x81h\",\"i\"]]}}";

static tok_tokenizer_t *load_spm(void) {
    char bytes[256 * 16] = "", *p = bytes;
    for (int b = 0; b < 256; b++)
        p += sprintf(p, "\"<0x%02X>\":%d,", b, b + 3);
    char *json = malloc(sizeof spm_json + sizeof bytes);
    sprintf(json, spm_json, bytes);
    tok_tokenizer_t *t = load_str(json);
    free(json);
    return t;
}

// --- tests ----------------------------------------------------------------------------------

/* Merge order follows rank, not position: "b c" (rank 0) beats "a b". */
static void test_merge_order(void) {
    const char *extra[] = {"ab", "bc", "abc", NULL};
    const char *merges[] = {"b c", "a b", "a bc", NULL};
    char *json = bytelevel_json(extra, merges, NULL);
    tok_tokenizer_t *t = load_str(json);
    free(json);
    if (!t)
        return;
    int32_t *ids;
    size_t n;
    CHECK_INT(tok_encode(t, "abc", 3, true, &ids, &n), 0);
    CHECK_IDS(ids, n, 258); /* a + bc -> abc */
    free(ids);
    CHECK_INT(tok_encode(t, "abab", 4, true, &ids, &n), 0);
    CHECK_IDS(ids, n, 256, 256);
    free(ids);
    /* " abc" is one piece (" ?\p{L}+"); "Ġ" (byte 0x20, id 32) has no merge */
    CHECK_INT(tok_encode(t, " abc", 4, true, &ids, &n), 0);
    CHECK_IDS(ids, n, 32, 258);
    free(ids);
    tok_destroy(&t);
    CHECK(t == NULL);
}

static void test_bytelevel_roundtrip(void) {
    /* bytes_to_unicode anchors (model-formats.md §3.3) and a bijection */
    CHECK_INT(tok__byte_to_cp(0x00), 0x100);
    CHECK_INT(tok__byte_to_cp(0x0A), 0x10A);
    CHECK_INT(tok__byte_to_cp(0x20), 0x120);
    CHECK_INT(tok__byte_to_cp(0x21), 0x21);
    CHECK_INT(tok__byte_to_cp(0x7F), 0x121);
    CHECK_INT(tok__byte_to_cp(0x80), 0x122);
    CHECK_INT(tok__byte_to_cp(0xA0), 0x142);
    CHECK_INT(tok__byte_to_cp(0xAD), 0x143);
    CHECK_INT(tok__byte_to_cp(0xFF), 0xFF);
    for (int b = 0; b < 256; b++)
        CHECK_INT(tok__cp_to_byte(tok__byte_to_cp((uint8_t)b)), b);
    CHECK_INT(tok__cp_to_byte(0x144), -1);
    CHECK_INT(tok__cp_to_byte(0xAD), -1);
    char *json = bytelevel_json(NULL, NULL, NULL);
    tok_tokenizer_t *t = load_str(json);
    free(json);
    if (!t)
        return;
    const char *s = "h\xC3\xA9llo \xF0\x9F\xA6\x99\t\n  x";
    int32_t *ids;
    size_t n;
    CHECK_INT(tok_encode(t, s, strlen(s), true, &ids, &n), 0);
    CHECK_INT(n, strlen(s)); /* one id per byte, id == byte */
    for (size_t i = 0; i < n; i++)
        CHECK_INT(ids[i], (unsigned char)s[i]);
    char *text;
    size_t tl;
    CHECK_INT(tok_decode(t, ids, n, false, &text, &tl), 0);
    CHECK_MEM(text, tl, s);
    free(text);
    free(ids);
    /* invalid UTF-8 input is refused, not mangled */
    CHECK_INT(tok_encode(t, "a\xFF", 2, true, &ids, &n), TOK_EINPUT);
    CHECK(ids == NULL && n == 0);
    /* decode of an unknown id */
    int32_t bad[] = {5, 9999};
    CHECK_INT(tok_decode(t, bad, 2, false, &text, &tl), TOK_EBADID);
    CHECK(text == NULL);
    int32_t neg[] = {-1};
    CHECK_INT(tok_decode(t, neg, 1, false, &text, &tl), TOK_EBADID);
    tok_destroy(&t);
}

/* Streaming: a 4-byte emoji fed one byte-token at a time comes out whole. */
static void test_stream_utf8(void) {
    const char *added = "[{\"id\":256,\"content\":\"<|end|>\",\"special\":true}]";
    const char *extra[] = {"<|end|>", NULL};
    char *json = bytelevel_json(extra, NULL, added);
    tok_tokenizer_t *t = load_str(json);
    free(json);
    if (!t)
        return;
    tok_stream_t *s = NULL;
    CHECK_INT(tok_stream_new(t, true, &s), 0);
    const char *out;
    size_t ol;
    const unsigned char emoji[] = {0xF0, 0x9F, 0xA6, 0x99};
    CHECK_INT(tok_stream_push(s, 'a', &out, &ol), 0);
    CHECK_MEM(out, ol, "a");
    for (int i = 0; i < 3; i++) {
        CHECK_INT(tok_stream_push(s, emoji[i], &out, &ol), 0);
        CHECK_INT(ol, 0);
        CHECK_INT(tok_stream_pending(s), i + 1);
    }
    /* a special token in the middle is skipped and does not flush */
    CHECK_INT(tok_stream_push(s, 256, &out, &ol), 0);
    CHECK_INT(ol, 0);
    CHECK_INT(tok_stream_push(s, emoji[3], &out, &ol), 0);
    CHECK_MEM(out, ol, "\xF0\x9F\xA6\x99");
    CHECK_INT(tok_stream_pending(s), 0);
    /* a bad id leaves the stream unchanged */
    CHECK_INT(tok_stream_push(s, 100000, &out, &ol), TOK_EBADID);
    /* a lead byte followed by ASCII: the lead byte becomes U+FFFD */
    CHECK_INT(tok_stream_push(s, 0xE2, &out, &ol), 0);
    CHECK_INT(ol, 0);
    CHECK_INT(tok_stream_push(s, 'b', &out, &ol), 0);
    CHECK_MEM(out, ol, "\xEF\xBF\xBD" "b");
    /* a byte that can never start a sequence is replaced at once */
    CHECK_INT(tok_stream_push(s, 0xFF, &out, &ol), 0);
    CHECK_MEM(out, ol, "\xEF\xBF\xBD");
    /* incomplete at the end: flush gives U+FFFD */
    CHECK_INT(tok_stream_push(s, 0xE2, &out, &ol), 0);
    CHECK_INT(tok_stream_push(s, 0x96, &out, &ol), 0);
    CHECK_INT(ol, 0);
    CHECK_INT(tok_stream_flush(s, &out, &ol), 0);
    CHECK_MEM(out, ol, "\xEF\xBF\xBD");
    CHECK_INT(tok_stream_pending(s), 0);
    tok_stream_destroy(&s);
    CHECK(s == NULL);

    /* the stream's concatenation equals tok_decode on a mixed sequence */
    int32_t ids[] = {0xE4, 0xBD, 'x', 0xE4, 0xBD, 0xA0, 256, 0xF0, 0x9F, 0x98, 0x80, 0x80, 'z', 0xF0};
    size_t n = sizeof ids / sizeof ids[0];
    for (int skip = 0; skip < 2; skip++) {
        char *whole;
        size_t wl;
        CHECK_INT(tok_decode(t, ids, n, skip, &whole, &wl), 0);
        tok__buf_t acc = {0};
        CHECK_INT(tok_stream_new(t, skip, &s), 0);
        for (size_t i = 0; i < n; i++) {
            CHECK_INT(tok_stream_push(s, ids[i], &out, &ol), 0);
            CHECK(tok__utf8_valid(out, ol));
            tok__buf_put(&acc, out, ol);
        }
        CHECK_INT(tok_stream_flush(s, &out, &ol), 0);
        tok__buf_put(&acc, out, ol);
        CHECK_MEM(acc.p, acc.len, whole);
        CHECK(tok__utf8_valid(whole, wl));
        tok__buf_free(&acc);
        free(whole);
        tok_stream_destroy(&s);
    }
    tok_destroy(&t);
}

/* Added tokens: leftmost-longest, lstrip/rstrip, special flag, and never
 * split by BPE. */
static void test_added_tokens(void) {
    const char *added = "[{\"id\":256,\"content\":\"<a>\",\"special\":true},"
                        "{\"id\":257,\"content\":\"<a><b>\",\"special\":false},"
                        "{\"id\":258,\"content\":\"[X]\",\"special\":true,\"lstrip\":true,\"rstrip\":true}]";
    const char *extra[] = {"<a>", "<a><b>", "[X]", NULL};
    char *json = bytelevel_json(extra, NULL, added);
    tok_tokenizer_t *t = load_str(json);
    free(json);
    if (!t)
        return;
    int32_t *ids;
    size_t n;
    const char *s = "x<a><b><a>y  [X]  z";
    CHECK_INT(tok_encode(t, s, strlen(s), true, &ids, &n), 0);
    CHECK_IDS(ids, n, 'x', 257, 256, 'y', 258, 'z');
    char *text;
    size_t tl;
    CHECK_INT(tok_decode(t, ids, n, true, &text, &tl), 0);
    CHECK_MEM(text, tl, "x<a><b>yz");
    free(text);
    CHECK_INT(tok_decode(t, ids, n, false, &text, &tl), 0);
    CHECK_MEM(text, tl, "x<a><b><a>y[X]z");
    free(text);
    free(ids);
    CHECK(tok_is_special(t, 256) && !tok_is_special(t, 257) && !tok_is_special(t, 'x'));
    CHECK_INT(tok_token_id(t, "<a><b>", 6), 257);
    tok_destroy(&t);
}

/* SentencePiece-style: Prepend/Replace normalizer, merges, byte fallback,
 * BOS from TemplateProcessing, leading space stripped on decode. */
static void test_spm(void) {
    tok_tokenizer_t *t = load_spm();
    if (!t)
        return;
    CHECK_INT(tok_bos_id(t), 1);
    int32_t *ids;
    size_t n;
    const char *s = "hi h\xC3\xA9\xE2\x82\xAC"; /* "hi hé€": € not in vocab -> 3 byte tokens */
    CHECK_INT(tok_encode(t, s, strlen(s), true, &ids, &n), 0);
    CHECK_IDS(ids, n, 1, 263, 262, 264, 0xE2 + 3, 0x82 + 3, 0xAC + 3);
    char *text;
    size_t tl;
    CHECK_INT(tok_decode(t, ids, n, true, &text, &tl), 0);
    CHECK_MEM(text, tl, s);
    free(text);
    CHECK_INT(tok_decode(t, ids, n, false, &text, &tl), 0);
    CHECK_MEM(text, tl, "<s> hi h\xC3\xA9\xE2\x82\xAC");
    free(text);
    /* streaming with skip: the leading space goes, the euro sign is held
     * until its third byte */
    tok_stream_t *st;
    CHECK_INT(tok_stream_new(t, true, &st), 0);
    const char *out;
    size_t ol;
    tok__buf_t acc = {0};
    for (size_t i = 0; i < n; i++) {
        CHECK_INT(tok_stream_push(st, ids[i], &out, &ol), 0);
        if (i == 4 || i == 5)
            CHECK_INT(ol, 0);
        tok__buf_put(&acc, out, ol);
    }
    CHECK_MEM(acc.p, acc.len, s);
    tok__buf_free(&acc);
    tok_stream_destroy(&st);
    free(ids);
    CHECK_INT(tok_encode(t, "", 0, true, &ids, &n), 0);
    CHECK_IDS(ids, n, 1);
    free(ids);
    CHECK_INT(tok_encode(t, "", 0, false, &ids, &n), 0);
    CHECK_INT(n, 0);
    free(ids);
    tok_destroy(&t);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One 400k-byte word with a merge chain: must stay O(n log n). */
static void test_long_word(void) {
    const char *extra[] = {"aa", "aaaa", NULL};
    const char *merges[] = {"a a", "aa aa", NULL};
    char *json = bytelevel_json(extra, merges, NULL);
    tok_tokenizer_t *t = load_str(json);
    free(json);
    if (!t)
        return;
    size_t len = 400000;
    char *s = malloc(len);
    memset(s, 'a', len);
    double t0 = now_s();
    int32_t *ids;
    size_t n;
    CHECK_INT(tok_encode(t, s, len, false, &ids, &n), 0);
    double dt = now_s() - t0;
    CHECK_INT(n, len / 4);
    for (size_t i = 0; i < n; i++)
        if (ids[i] != 257) {
            CHECK_INT(ids[i], 257);
            break;
        }
    fprintf(stderr, "400k-byte word: %.3f s\n", dt);
    CHECK(dt < 20.0); /* quadratic would take minutes */
    free(ids);
    /* many short pieces */
    for (size_t i = 0; i < len; i++)
        s[i] = " a1!\n"[i % 5];
    CHECK_INT(tok_encode(t, s, len, false, &ids, &n), 0);
    CHECK_INT(n, len);
    free(ids);
    free(s);
    tok_destroy(&t);
}

static void expect_fail(int line, const char *json, int want) {
    char err[256] = "";
    tok_tokenizer_t *t = (tok_tokenizer_t *)&err; /* must be reset to NULL */
    int rc = tok_load_json(json, strlen(json), NULL, 0, &t, err, sizeof err);
    if (rc == 0 || t != NULL || (want && rc != want) || !err[0]) {
        fprintf(stderr, "%s:%d: load of [%.120s] gave rc=%d (%s) err=[%s], want failure %d\n", __FILE__,
                line, json, rc, tok_strerror(rc), err, want);
        failures++;
        if (rc == 0)
            tok_destroy(&t);
    }
}
#define EXPECT_FAIL(json, want) expect_fail(__LINE__, json, want)

static void test_malformed(void) {
    EXPECT_FAIL("", TOK_EFORMAT);
    EXPECT_FAIL("{", TOK_EFORMAT);
    EXPECT_FAIL("[1,2]", TOK_EFORMAT);
    EXPECT_FAIL("{}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":1}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", TOK_EUNSUPPORTED);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":[]}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":\"x\"}}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1}}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":1.5}}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":4000000000}}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b c\"]}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"ab\"]}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[[\"a\"]]}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":{}}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"added_tokens\":[{\"id\":1}]}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"added_tokens\":[{\"id\":-3,\"content\":\"x\"}]}",
                TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"added_tokens\":{}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"type\":\"Bogus\"}}",
                TOK_EUNSUPPORTED);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{}}", TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"type\":\"Split\","
                "\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"}}",
                TOK_EREGEX);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"type\":\"Split\","
                "\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Sideways\"}}",
                TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"type\":\"Sequence\"}}",
                TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"pre_tokenizer\":{\"type\":\"Metaspace\","
                "\"prepend_scheme\":\"sometimes\"}}",
                TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"normalizer\":{\"type\":\"NFKD\"}}",
                TOK_EUNSUPPORTED);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"post_processor\":{\"type\":"
                "\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}}],\"special_tokens\":{}}}",
                TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},\"post_processor\":{\"type\":"
                "\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}}],\"special_tokens\":"
                "{\"<s>\":{\"ids\":[99]}}}}",
                TOK_EFORMAT);
    EXPECT_FAIL("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"continuing_subword_prefix\":\"##\"}}",
                TOK_EUNSUPPORTED);

    /* every truncation of a valid file fails cleanly (or, at full length, loads) */
    const char *extra[] = {"ab", NULL};
    const char *merges[] = {"a b", NULL};
    char *json = bytelevel_json(extra, merges, "[{\"id\":257,\"content\":\"<s>\",\"special\":true}]");
    size_t len = strlen(json);
    for (size_t cut = 0; cut < len; cut += 1 + cut / 64) {
        char err[256];
        tok_tokenizer_t *t = NULL;
        int rc = tok_load_json(json, cut, NULL, 0, &t, err, sizeof err);
        CHECK(rc != 0 && t == NULL);
    }
    tok_tokenizer_t *t = NULL;
    char err[256];
    CHECK_INT(tok_load_json(json, len, "{\"bos_token\":{\"content\":\"<s>\"},\"add_bos_token\":true}", 52, &t,
                            err, sizeof err),
              0);
    if (t) {
        CHECK_INT(tok_bos_id(t), 257);
        int32_t *ids;
        size_t n;
        CHECK_INT(tok_encode(t, "ab", 2, true, &ids, &n), 0);
        CHECK_IDS(ids, n, 257, 256);
        free(ids);
        tok_destroy(&t);
    }
    /* a broken tokenizer_config.json is reported as such */
    CHECK(tok_load_json(json, len, "{nope", 5, &t, err, sizeof err) == TOK_EFORMAT && t == NULL);
    CHECK(strstr(err, "tokenizer_config.json") != NULL);
    free(json);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n)
        abort();
    fclose(f);
}

/* Files: missing path, a directory without tokenizer.json, garbage with a
 * GGUF magic, a broken JSON file; the message names the file. */
static void test_files(void) {
    char dir[] = "/tmp/cvllm-test-tok-XXXXXX";
    if (!mkdtemp(dir))
        abort();
    char path[256], err[512];
    tok_tokenizer_t *t = NULL;
    snprintf(path, sizeof path, "%s/missing.json", dir);
    CHECK_INT(tok_load(path, &t, err, sizeof err), -ENOENT);
    CHECK(t == NULL && strstr(err, "missing.json"));
    CHECK_INT(tok_load(dir, &t, err, sizeof err), -ENOENT);
    CHECK(strstr(err, "tokenizer.json") != NULL);
    snprintf(path, sizeof path, "%s/bad.gguf", dir);
    write_file(path, "GGUF\x03\x00\x00\x00\xff\xff", 10);
    int rc = tok_load(path, &t, err, sizeof err);
    CHECK(rc != 0 && t == NULL && strstr(err, "bad.gguf"));
    fprintf(stderr, "bad gguf: %s\n", err);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    write_file(path, "{\"model\":", 9);
    CHECK_INT(tok_load(dir, &t, err, sizeof err), TOK_EFORMAT);
    CHECK(t == NULL && strstr(err, path));
    fprintf(stderr, "bad json: %s\n", err);
    char *json = bytelevel_json(NULL, NULL, NULL);
    write_file(path, json, strlen(json));
    free(json);
    CHECK_INT(tok_load(dir, &t, err, sizeof err), 0);
    CHECK(t && tok_vocab_size(t) == 256);
    tok_destroy(&t);
    snprintf(path, sizeof path, "rm -rf '%s'", dir);
    if (system(path)) {
    }
    CHECK(strcmp(tok_strerror(TOK_EREGEX), "unknown error") != 0);
    CHECK(strcmp(tok_strerror(-ENOENT), "unknown error") != 0);
}

/* A loaded tokenizer is shared read-only by concurrent encoders. */
typedef struct {
    const tok_tokenizer_t *t;
    const char *text;
    const int32_t *want;
    size_t n_want;
    int bad;
} thr_arg_t;

static void *thr_encode(void *p) {
    thr_arg_t *a = p;
    for (int i = 0; i < 200; i++) {
        int32_t *ids;
        size_t n;
        if (tok_encode(a->t, a->text, strlen(a->text), true, &ids, &n) || n != a->n_want ||
            memcmp(ids, a->want, n * sizeof *ids))
            a->bad++;
        free(ids);
    }
    return NULL;
}

static void test_threads(void) {
    tok_tokenizer_t *t = load_spm();
    if (!t)
        return;
    const char *text = "hi hi h\xC3\xA9 \xF0\x9F\xA6\x99 </s> hi<s>hi";
    int32_t *want;
    size_t n;
    CHECK_INT(tok_encode(t, text, strlen(text), true, &want, &n), 0);
    pthread_t th[8];
    thr_arg_t args[8];
    for (int i = 0; i < 8; i++) {
        args[i] = (thr_arg_t){t, text, want, n, 0};
        CHECK_INT(pthread_create(&th[i], NULL, thr_encode, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        CHECK_INT(args[i].bad, 0);
    }
    free(want);
    tok_destroy(&t);
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"merge-order", test_merge_order}, {"bytelevel", test_bytelevel_roundtrip},
    {"stream", test_stream_utf8},      {"added", test_added_tokens},
    {"spm", test_spm},                 {"long-word", test_long_word},
    {"malformed", test_malformed},     {"files", test_files},
    {"threads", test_threads},
};

int main(int argc, char **argv) {
    int ran = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name))
            continue;
        tests[i].fn();
        ran++;
    }
    if (!ran) {
        fprintf(stderr, "unknown test %s\n", argc > 1 ? argv[1] : "");
        return 2;
    }
    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    return failures ? 1 : 0;
}
