/* HF tokenizer.json (+ tokenizer_config.json) loader, and tok_load's path
 * dispatch.
 *
 * Supported: model BPE (merges as "a b" strings or ["a","b"] pairs,
 * byte_fallback, ignore_merges, fuse_unk, unk_token); normalizers NFC (as
 * identity, like llama.cpp), Prepend, Replace(String), Sequence;
 * pre-tokenizers ByteLevel, Split (Regex/String, all behaviours, invert),
 * Digits, Metaspace, Whitespace, WhitespaceSplit, Sequence; post-processors
 * TemplateProcessing, Roberta/Bert, ByteLevel, Sequence; decoders ByteLevel,
 * Metaspace and the SentencePiece chain (Replace, ByteFallback, Fuse, Strip).
 * Anything else is refused with TOK_EUNSUPPORTED and the component named:
 * a tokenizer that would silently encode differently is worse than none. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "tok_int.h"

#define FILE_NAME "tokenizer.json"

typedef struct {
    tok_tokenizer_t *t;
    char *err;
    size_t errlen;
} ctx_t;

static int fail(ctx_t *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(ctx_t *c, int rc, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tok__err(c->err, c->errlen, FILE_NAME, "%s", msg);
    return rc;
}

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool jbool(const cJSON *o, const char *key, bool dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static char *xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

// --- normalizer -----------------------------------------------------------------------

static int load_normalizer(ctx_t *c, const cJSON *n) {
    if (!n || cJSON_IsNull(n))
        return 0;
    const char *type = jstr(n, "type");
    if (!type)
        return fail(c, TOK_EFORMAT, "normalizer without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *e;
        if (!cJSON_IsArray(list))
            return fail(c, TOK_EFORMAT, "normalizer Sequence without a normalizers list");
        cJSON_ArrayForEach(e, list) {
            int rc = load_normalizer(c, e);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(type, "NFC"))
        return 0; /* identity, as llama.cpp: inputs are almost always NFC already */
    tok__norm_t nm = {0};
    if (!strcmp(type, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (!p)
            return fail(c, TOK_EFORMAT, "Prepend normalizer without a string");
        nm.kind = TOK_NORM_PREPEND;
        nm.str = xstrdup(p);
    } else if (!strcmp(type, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *s = jstr(pat, "String"), *content = jstr(n, "content");
        if (!s || !content)
            return fail(c, TOK_EUNSUPPORTED, "Replace normalizer needs a String pattern and content");
        nm.kind = TOK_NORM_REPLACE;
        nm.pat = xstrdup(s);
        nm.str = xstrdup(content);
        if (!nm.pat) {
            free(nm.str);
            return -ENOMEM;
        }
    } else
        return fail(c, TOK_EUNSUPPORTED, "unsupported normalizer \"%s\"", type);
    if (!nm.str) {
        free(nm.pat);
        return -ENOMEM;
    }
    /* encoding relies on fragments staying valid UTF-8 */
    if (!tok__utf8_valid(nm.str, strlen(nm.str)) || (nm.pat && !tok__utf8_valid(nm.pat, strlen(nm.pat)))) {
        free(nm.pat);
        free(nm.str);
        return fail(c, TOK_EFORMAT, "normalizer %s string is not valid UTF-8", type);
    }
    int rc = tok__push_norm(c->t, &nm);
    if (rc) {
        free(nm.pat);
        free(nm.str);
    }
    return rc;
}

// --- pre-tokenizer ----------------------------------------------------------------------

static int push_regex(ctx_t *c, const char *re, bool literal, tok__split_behavior_t beh, bool invert) {
    char msg[200];
    tok__pretok_t p = {.kind = TOK_PT_SPLIT, .behavior = beh, .invert = invert};
    if (!(p.re = tok__regex_compile(re, strlen(re), literal, msg, sizeof msg)))
        return fail(c, TOK_EREGEX, "pre-tokenizer %s", msg);
    int rc = tok__push_pretok(c->t, &p);
    if (rc)
        pcre2_code_free(p.re);
    return rc;
}

static int load_pretok(ctx_t *c, const cJSON *p) {
    if (!p || cJSON_IsNull(p))
        return 0;
    const char *type = jstr(p, "type");
    if (!type)
        return fail(c, TOK_EFORMAT, "pre_tokenizer without a type");
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *e;
        if (!cJSON_IsArray(list))
            return fail(c, TOK_EFORMAT, "pre_tokenizer Sequence without a pretokenizers list");
        cJSON_ArrayForEach(e, list) {
            int rc = load_pretok(c, e);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        c->t->byte_level = true;
        tok__pretok_t b = {.kind = TOK_PT_BYTELEVEL, .behavior = TOK_SPLIT_ISOLATED,
                           .add_prefix_space = jbool(p, "add_prefix_space", true)};
        if (jbool(p, "use_regex", true)) {
            char msg[200];
            if (!(b.re = tok__regex_compile(tok__re_gpt2, strlen(tok__re_gpt2), false, msg, sizeof msg)))
                return fail(c, TOK_EREGEX, "ByteLevel %s", msg);
        }
        int rc = tok__push_pretok(c->t, &b);
        if (rc)
            pcre2_code_free(b.re);
        return rc;
    }
    if (!strcmp(type, "Digits"))
        return push_regex(c, jbool(p, "individual_digits", false) ? "\\p{N}" : "\\p{N}+", false,
                          TOK_SPLIT_ISOLATED, false);
    if (!strcmp(type, "Whitespace"))
        return push_regex(c, "\\w+|[^\\w\\s]+", false, TOK_SPLIT_REMOVED, true);
    if (!strcmp(type, "WhitespaceSplit"))
        return push_regex(c, "\\s+", false, TOK_SPLIT_REMOVED, false);
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String"), *beh = jstr(p, "behavior");
        static const char *const names[] = {"Isolated", "Removed", "MergedWithPrevious",
                                            "MergedWithNext", "Contiguous"};
        int b = -1;
        for (int i = 0; beh && i < 5; i++)
            if (!strcmp(beh, names[i]))
                b = i;
        if ((!re && !lit) || b < 0)
            return fail(c, TOK_EFORMAT, "Split pre-tokenizer needs a pattern and a known behavior");
        return push_regex(c, re ? re : lit, !re, (tok__split_behavior_t)b, jbool(p, "invert", false));
    }
    if (!strcmp(type, "Metaspace")) {
        const char *rep = jstr(p, "replacement");
        const char *scheme = jstr(p, "prepend_scheme");
        tok__pretok_t m = {.kind = TOK_PT_METASPACE, .split = jbool(p, "split", true)};
        if (!scheme)
            m.prepend = jbool(p, "add_prefix_space", true) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
        else if (!strcmp(scheme, "always"))
            m.prepend = TOK_PREPEND_ALWAYS;
        else if (!strcmp(scheme, "first"))
            m.prepend = TOK_PREPEND_FIRST;
        else if (!strcmp(scheme, "never"))
            m.prepend = TOK_PREPEND_NEVER;
        else
            return fail(c, TOK_EFORMAT, "Metaspace prepend_scheme \"%s\" unknown", scheme);
        if (rep && !tok__utf8_valid(rep, strlen(rep)))
            return fail(c, TOK_EFORMAT, "Metaspace replacement is not valid UTF-8");
        if (!(m.replacement = xstrdup(rep && *rep ? rep : "\xE2\x96\x81")))
            return -ENOMEM;
        int rc = tok__push_pretok(c->t, &m);
        if (rc)
            free(m.replacement);
        return rc;
    }
    return fail(c, TOK_EUNSUPPORTED, "unsupported pre_tokenizer \"%s\"", type);
}

// --- post-processor and decoder ---------------------------------------------------------------

static int affix_push(ctx_t *c, bool before, int32_t id) {
    tok_tokenizer_t *t = c->t;
    int *n = before ? &t->n_prefix : &t->n_suffix;
    int32_t *a = before ? t->prefix : t->suffix;
    if (id < 0 || id >= t->n_vocab)
        return fail(c, TOK_EFORMAT, "post_processor names a token id out of range");
    if (*n >= TOK_MAX_AFFIX)
        return fail(c, TOK_EUNSUPPORTED, "post_processor adds too many tokens");
    a[(*n)++] = id;
    return 0;
}

static int load_post(ctx_t *c, const cJSON *p) {
    if (!p || cJSON_IsNull(p))
        return 0;
    const char *type = jstr(p, "type");
    if (!type)
        return fail(c, TOK_EFORMAT, "post_processor without a type");
    if (!strcmp(type, "ByteLevel"))
        return 0; /* offsets only */
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors"), *e;
        cJSON_ArrayForEach(e, list) {
            int rc = load_post(c, e);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const cJSON *cls = cJSON_GetObjectItemCaseSensitive(p, "cls");
        const cJSON *sep = cJSON_GetObjectItemCaseSensitive(p, "sep");
        const cJSON *ci = cJSON_GetArrayItem(cls, 1), *si = cJSON_GetArrayItem(sep, 1);
        if (!cJSON_IsNumber(ci) || !cJSON_IsNumber(si))
            return fail(c, TOK_EFORMAT, "%s without cls/sep ids", type);
        int rc = affix_push(c, true, ci->valueint);
        return rc ? rc : affix_push(c, false, si->valueint);
    }
    if (strcmp(type, "TemplateProcessing"))
        return fail(c, TOK_EUNSUPPORTED, "unsupported post_processor \"%s\"", type);
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *e;
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
    if (!cJSON_IsArray(single))
        return fail(c, TOK_EFORMAT, "TemplateProcessing without a single template");
    bool before = true;
    cJSON_ArrayForEach(e, single) {
        if (cJSON_GetObjectItemCaseSensitive(e, "Sequence")) {
            before = false;
            continue;
        }
        const char *name = jstr(cJSON_GetObjectItemCaseSensitive(e, "SpecialToken"), "id");
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(specials, name ? name : ""), "ids"), *id;
        if (!name || !cJSON_IsArray(ids))
            return fail(c, TOK_EFORMAT, "TemplateProcessing special token \"%s\" undefined", name ? name : "?");
        cJSON_ArrayForEach(id, ids) {
            int rc = cJSON_IsNumber(id) ? affix_push(c, before, id->valueint)
                                        : fail(c, TOK_EFORMAT, "TemplateProcessing id not a number");
            if (rc)
                return rc;
        }
    }
    return 0;
}

static void load_decoder(ctx_t *c, const cJSON *d) {
    const char *type = jstr(d, "type");
    if (!type)
        return;
    if (!strcmp(type, "ByteLevel"))
        c->t->byte_level = true;
    else if (!strcmp(type, "Metaspace")) {
        const char *scheme = jstr(d, "prepend_scheme");
        c->t->strip_leading_space = scheme ? strcmp(scheme, "never") != 0 : jbool(d, "add_prefix_space", true);
    } else if (!strcmp(type, "Strip")) {
        const char *content = jstr(d, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        if (content && !strcmp(content, " ") && cJSON_IsNumber(start) && start->valueint >= 1)
            c->t->strip_leading_space = true;
    } else if (!strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "decoders")) load_decoder(c, e);
    }
}

// --- model --------------------------------------------------------------------------------

static int load_merges(ctx_t *c, const cJSON *merges) {
    const cJSON *m;
    int32_t rank = 0;
    cJSON_ArrayForEach(m, merges) {
        const char *a, *b;
        size_t na, nb;
        if (cJSON_IsString(m)) {
            const char *s = m->valuestring;
            if (rank == 0 && !strncmp(s, "#version", 8))
                continue;
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return fail(c, TOK_EFORMAT, "merge \"%.80s\" is not two space-separated parts", s);
            a = s;
            na = (size_t)(sp - s);
            b = sp + 1;
            nb = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) && cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            a = cJSON_GetArrayItem(m, 0)->valuestring;
            b = cJSON_GetArrayItem(m, 1)->valuestring;
            na = strlen(a);
            nb = strlen(b);
        } else
            return fail(c, TOK_EFORMAT, "model.merges entry is neither \"a b\" nor [\"a\",\"b\"]");
        int rc = tok__add_merge(c->t, a, na, b, nb, rank++);
        if (rc)
            return rc;
    }
    return 0;
}

/* "<s>" or {"content":"<s>"} -> id, or -1. */
static int32_t config_token(const tok_tokenizer_t *t, const cJSON *cfg, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    const char *s = cJSON_IsString(v) ? v->valuestring : jstr(v, "content");
    return s ? tok_token_id(t, s, strlen(s)) : -1;
}

static int load_root(ctx_t *c, const cJSON *root, const cJSON *cfg) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return fail(c, TOK_EFORMAT, "no \"model\" object");
    const char *type = jstr(model, "type");
    if (type && strcmp(type, "BPE"))
        return fail(c, TOK_EUNSUPPORTED, "model type \"%s\" (only BPE is supported)", type);
    const char *cont = jstr(model, "continuing_subword_prefix"), *eow = jstr(model, "end_of_word_suffix");
    if ((cont && *cont) || (eow && *eow))
        return fail(c, TOK_EUNSUPPORTED, "BPE with subword prefix/suffix");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *e;
    if (!cJSON_IsObject(vocab) || (merges && !cJSON_IsArray(merges)))
        return fail(c, TOK_EFORMAT, "model.vocab must be an object and model.merges a list");
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added))
        return fail(c, TOK_EFORMAT, "added_tokens must be a list");

    /* id space: the largest id of the vocab and the added tokens */
    double max_id = -1;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 16e6 ||
            e->valuedouble != (double)(int32_t)e->valuedouble)
            return fail(c, TOK_EFORMAT, "model.vocab entry \"%.80s\" has no valid id", e->string);
        if (e->valuedouble > max_id)
            max_id = e->valuedouble;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16e6 || !jstr(e, "content") ||
            !*jstr(e, "content"))
            return fail(c, TOK_EFORMAT, "added_tokens entry without a valid id and content");
        if (id->valuedouble > max_id)
            max_id = id->valuedouble;
    }
    if (max_id < 0)
        return fail(c, TOK_EFORMAT, "empty vocabulary");
    int rc = tok__grow(c->t, (int32_t)max_id + 1);
    cJSON_ArrayForEach(e, vocab) {
        if (rc)
            return rc;
        rc = tok__set_text(c->t, e->valueint, e->string, strlen(e->string));
    }
    cJSON_ArrayForEach(e, added) {
        if (rc)
            return rc;
        const char *s = jstr(e, "content");
        int32_t id = cJSON_GetObjectItemCaseSensitive(e, "id")->valueint;
        /* the content is what is matched in text and decoded */
        if ((rc = tok__set_text(c->t, id, s, strlen(s))))
            return rc;
        rc = tok__add_added(c->t, id, jbool(e, "special", false), jbool(e, "lstrip", false),
                            jbool(e, "rstrip", false));
    }
    if (rc)
        return rc;

    c->t->byte_fallback = jbool(model, "byte_fallback", false);
    c->t->ignore_merges = jbool(model, "ignore_merges", false);
    c->t->fuse_unk = jbool(model, "fuse_unk", false);
    if ((rc = load_normalizer(c, cJSON_GetObjectItemCaseSensitive(root, "normalizer"))) ||
        (rc = load_pretok(c, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"))))
        return rc;
    load_decoder(c, cJSON_GetObjectItemCaseSensitive(root, "decoder"));
    if ((rc = tok__finish_vocab(c->t)) || (rc = load_merges(c, merges)))
        return rc;
    tok__index_added(c->t);
    const char *unk = jstr(model, "unk_token");
    if (unk)
        c->t->unk_id = tok_token_id(c->t, unk, strlen(unk));
    if ((rc = load_post(c, cJSON_GetObjectItemCaseSensitive(root, "post_processor"))))
        return rc;

    /* specials: tokenizer_config.json names them; else what the template adds */
    tok_tokenizer_t *t = c->t;
    t->bos_id = config_token(t, cfg, "bos_token");
    t->eos_id = config_token(t, cfg, "eos_token");
    if (t->bos_id < 0 && t->n_prefix)
        t->bos_id = t->prefix[0];
    if (t->eos_id < 0 && t->n_suffix)
        t->eos_id = t->suffix[t->n_suffix - 1];
    if (jbool(cfg, "add_bos_token", false) && t->n_prefix == 0 && t->bos_id >= 0)
        t->prefix[t->n_prefix++] = t->bos_id;
    if (jbool(cfg, "add_eos_token", false) && t->n_suffix == 0 && t->eos_id >= 0)
        t->suffix[t->n_suffix++] = t->eos_id;
    return 0;
}

int tok_load_json(const char *json, size_t len, const char *config, size_t config_len,
                  tok_tokenizer_t **out, char *errbuf, size_t errlen) {
    *out = NULL;
    ctx_t c = {.err = errbuf, .errlen = errlen};
    cJSON *root = cJSON_ParseWithLength(json, len), *cfg = NULL;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(&c, TOK_EFORMAT, "not a JSON object (parse error)");
    }
    if (config) {
        cfg = cJSON_ParseWithLength(config, config_len);
        if (!cJSON_IsObject(cfg)) {
            cJSON_Delete(root);
            cJSON_Delete(cfg);
            tok__err(errbuf, errlen, "tokenizer_config.json", "not a JSON object (parse error)");
            return TOK_EFORMAT;
        }
    }
    int rc = -ENOMEM;
    if ((c.t = tok__new(0)))
        rc = load_root(&c, root, cfg);
    if (rc == -ENOMEM)
        tok__err(errbuf, errlen, FILE_NAME, "out of memory");
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    if (rc) {
        tok_destroy(&c.t);
        return rc;
    }
    *out = c.t;
    return 0;
}

// --- files ---------------------------------------------------------------------------------

static int read_file(const char *path, char **data, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    tok__buf_t b = {0};
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = tok__buf_put(&b, chunk, n);
    if (rc == 0 && ferror(f))
        rc = -EIO;
    fclose(f);
    if (rc == 0 && !b.p)
        rc = tok__buf_put(&b, "", 0);
    if (rc) {
        tok__buf_free(&b);
        return rc;
    }
    *data = b.p;
    *len = b.len;
    return 0;
}

static int load_json_files(const char *json_path, const char *cfg_path, tok_tokenizer_t **out,
                           char *errbuf, size_t errlen) {
    char *json = NULL, *cfg = NULL;
    size_t jl = 0, cl = 0;
    int rc = read_file(json_path, &json, &jl);
    if (rc) {
        tok__err(errbuf, errlen, json_path, "%s", tok_strerror(rc));
        return rc;
    }
    if (cfg_path && (rc = read_file(cfg_path, &cfg, &cl)) && rc != -ENOENT) {
        tok__err(errbuf, errlen, cfg_path, "%s", tok_strerror(rc));
        free(json);
        return rc;
    }
    char msg[512] = "";
    rc = tok_load_json(json, jl, cfg, cl, out, msg, sizeof msg);
    if (rc) {
        /* name the real file rather than the generic one */
        const char *m = msg;
        const char *file = json_path;
        if (!strncmp(m, "tokenizer_config.json: ", 23)) {
            m += 23;
            file = cfg_path;
        } else if (!strncmp(m, FILE_NAME ": ", sizeof FILE_NAME + 1))
            m += sizeof FILE_NAME + 1;
        tok__err(errbuf, errlen, file, "%s", *m ? m : tok_strerror(rc));
    }
    free(json);
    free(cfg);
    return rc;
}

int tok_load(const char *path, tok_tokenizer_t **out, char *errbuf, size_t errlen) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) {
        int rc = -errno;
        tok__err(errbuf, errlen, path, "%s", tok_strerror(rc));
        return rc;
    }
    if (S_ISDIR(st.st_mode)) {
        size_t n = strlen(path) + 32;
        char *jp = malloc(n), *cp = malloc(n);
        int rc = -ENOMEM;
        if (jp && cp) {
            snprintf(jp, n, "%s/tokenizer.json", path);
            snprintf(cp, n, "%s/tokenizer_config.json", path);
            rc = load_json_files(jp, cp, out, errbuf, errlen);
        }
        free(jp);
        free(cp);
        return rc;
    }
    /* a GGUF file starts with the magic "GGUF" */
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    if (f) {
        size_t got = fread(magic, 1, 4, f);
        (void)got;
        fclose(f);
    }
    if (!memcmp(magic, "GGUF", 4))
        return tok_load_gguf(path, out, errbuf, errlen);
    return load_json_files(path, NULL, out, errbuf, errlen);
}
