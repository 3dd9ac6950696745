/* model_config: HF config.json / GGUF metadata -> mcfg_t (see model_config.h).
 *
 * Both readers fill the same struct and end in mcfg_validate, so the rest of
 * the engine never sees a half-filled or inconsistent configuration. JSON
 * numbers are doubles in cJSON: integer fields must be integral and within
 * range, otherwise ENG_ECONFIG names the key. Defaults follow transformers'
 * LlamaConfig/Qwen2Config and llama.cpp's loader where a key is optional.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "model_config.h"

#define MAX_DIM (1ll << 24)   /* no dimension of a real model is near this */
#define MAX_LAYERS 4096
#define MAX_CONFIG_BYTES (16u << 20)

/* --- errors and names ---------------------------------------------------------- */

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static int fail(char *err, size_t err_len, int code, const char *label, const char *fmt, ...) {
    if (err && err_len > 0) {
        int n = snprintf(err, err_len, "%s: ", label);
        if (n >= 0 && (size_t)n < err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return code;
}

const char *mcfg_arch_name(mcfg_arch_t a) {
    switch (a) {
    case MCFG_ARCH_LLAMA: return "llama";
    case MCFG_ARCH_QWEN2: return "qwen2";
    default: return "?";
    }
}

const char *mcfg_rope_scaling_name(mcfg_rope_scaling_t t) {
    static const char *const n[] = {"none", "linear", "dynamic", "yarn", "llama3"};
    return (unsigned)t < sizeof n / sizeof n[0] ? n[t] : "?";
}

static int rope_type_parse(const char *s, mcfg_rope_scaling_t *out) {
    static const struct {
        const char *name;
        mcfg_rope_scaling_t t;
    } m[] = {{"default", MCFG_ROPE_SCALING_NONE}, {"none", MCFG_ROPE_SCALING_NONE}, {"linear", MCFG_ROPE_SCALING_LINEAR},
             {"dynamic", MCFG_ROPE_SCALING_DYNAMIC}, {"yarn", MCFG_ROPE_SCALING_YARN}, {"llama3", MCFG_ROPE_SCALING_LLAMA3}};
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if (!strcmp(s, m[i].name)) {
            *out = m[i].t;
            return 0;
        }
    return -1;
}

static void init_cfg(mcfg_t *c) {
    memset(c, 0, sizeof *c);
    c->rms_norm_eps = 1e-6f;
    c->rope_theta = 10000.0f;
    c->rope_scaling.factor = 1.0f;
    c->bos_token_id = -1;
}

/* --- validation ------------------------------------------------------------------ */

int mcfg_validate(const mcfg_t *c, const char *label, char *err, size_t err_len) {
#define CHECK(cond, ...) \
    if (!(cond)) return fail(err, err_len, ENG_ECONFIG, label, __VA_ARGS__)
    CHECK(c->arch == MCFG_ARCH_LLAMA || c->arch == MCFG_ARCH_QWEN2, "invalid architecture");
    CHECK(c->hidden_size > 0 && c->hidden_size <= MAX_DIM, "hidden size %" PRId64 " out of range", c->hidden_size);
    CHECK(c->intermediate_size > 0 && c->intermediate_size <= MAX_DIM, "intermediate size %" PRId64 " out of range",
          c->intermediate_size);
    CHECK(c->n_layers > 0 && c->n_layers <= MAX_LAYERS, "layer count %" PRId64 " out of range", c->n_layers);
    CHECK(c->n_heads > 0 && c->n_heads <= c->hidden_size, "head count %" PRId64 " out of range", c->n_heads);
    CHECK(c->n_kv_heads > 0 && c->n_kv_heads <= c->n_heads, "kv head count %" PRId64 " out of range", c->n_kv_heads);
    CHECK(c->n_heads % c->n_kv_heads == 0, "head count %" PRId64 " is not a multiple of kv head count %" PRId64, c->n_heads,
          c->n_kv_heads);
    CHECK(c->head_dim > 0 && c->head_dim <= MAX_DIM && c->head_dim % 2 == 0, "head dim %" PRId64 " must be positive and even",
          c->head_dim);
    CHECK(c->vocab_size >= 0 && c->vocab_size <= INT32_MAX, "vocab size %" PRId64 " out of range", c->vocab_size);
    CHECK(c->max_position_embeddings > 0, "max position embeddings %" PRId64 " must be positive", c->max_position_embeddings);
    CHECK(isfinite(c->rms_norm_eps) && c->rms_norm_eps > 0, "rms_norm_eps %g must be positive", (double)c->rms_norm_eps);
    CHECK(isfinite(c->rope_theta) && c->rope_theta > 0, "rope_theta %g must be positive", (double)c->rope_theta);
    CHECK(isfinite(c->rope_scaling.factor) && c->rope_scaling.factor > 0, "rope scaling factor %g must be positive",
          (double)c->rope_scaling.factor);
    CHECK(c->n_eos >= 0 && c->n_eos <= MCFG_MAX_EOS, "too many eos ids");
    return 0;
#undef CHECK
}

/* --- JSON helpers ------------------------------------------------------------------ */

/* Integer member `key`: 0 and *out set, 1 if absent or null, <0 if not an integer
 * in [lo, hi] (message written). */
static int j_int(const cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out, const char *label, char *err,
                 size_t err_len) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 1;
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d))
        return fail(err, err_len, ENG_ECONFIG, label, "\"%s\" must be an integer in [%" PRId64 ", %" PRId64 "]", key, lo, hi);
    *out = (int64_t)d;
    return 0;
}

static int j_num(const cJSON *o, const char *key, float *out, const char *label, char *err, size_t err_len) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return fail(err, err_len, ENG_ECONFIG, label, "\"%s\" must be a finite number", key);
    *out = (float)v->valuedouble;
    return 0;
}

static int j_bool(const cJSON *o, const char *key, bool *out, const char *label, char *err, size_t err_len) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 1;
    if (!cJSON_IsBool(v)) return fail(err, err_len, ENG_ECONFIG, label, "\"%s\" must be true or false", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Required integer: absent is an error too. */
static int j_req(const cJSON *o, const char *key, int64_t *out, const char *label, char *err, size_t err_len) {
    int rc = j_int(o, key, 1, MAX_DIM, out, label, err, err_len);
    if (rc == 1) return fail(err, err_len, ENG_ECONFIG, label, "missing required \"%s\"", key);
    return rc;
}

/* Token id or list of ids (eos_token_id may be either). */
static int j_ids(const cJSON *o, const char *key, int32_t *ids, int *n, const char *label, char *err, size_t err_len) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return 1;
    const cJSON *it;
    *n = 0;
    if (cJSON_IsNumber(v)) {
        int64_t x;
        int rc = j_int(o, key, 0, INT32_MAX, &x, label, err, err_len);
        if (rc) return rc;
        ids[(*n)++] = (int32_t)x;
        return 0;
    }
    if (!cJSON_IsArray(v)) return fail(err, err_len, ENG_ECONFIG, label, "\"%s\" must be a token id or a list of ids", key);
    cJSON_ArrayForEach(it, v) {
        double d = cJSON_IsNumber(it) ? it->valuedouble : NAN;
        if (!(d >= 0 && d <= INT32_MAX) || d != floor(d))
            return fail(err, err_len, ENG_ECONFIG, label, "\"%s\" holds a value that is not a token id", key);
        if (*n == MCFG_MAX_EOS) return fail(err, err_len, ENG_ECONFIG, label, "\"%s\" lists more than %d ids", key, MCFG_MAX_EOS);
        ids[(*n)++] = (int32_t)d;
    }
    return 0;
}

static int read_text(const char *path, char **out, size_t *len, char *err, size_t err_len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return fail(err, err_len, -errno, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)MAX_CONFIG_BYTES) {
        fclose(fp);
        return fail(err, err_len, ENG_ECONFIG, path, "not a regular file of at most %u bytes", MAX_CONFIG_BYTES);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(fp);
        return fail(err, err_len, -ENOMEM, path, "out of memory");
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, fp);
    int ioerr = ferror(fp);
    fclose(fp);
    if (ioerr || n != (size_t)st.st_size) {
        free(buf);
        return fail(err, err_len, -EIO, path, "read error");
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* --- HF config.json ------------------------------------------------------------------ */

static int hf_arch(const cJSON *root, mcfg_arch_t *arch, const char *label, char *err, size_t err_len) {
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *a = NULL;
    if (cJSON_IsArray(archs) && cJSON_IsString(cJSON_GetArrayItem(archs, 0))) a = cJSON_GetArrayItem(archs, 0)->valuestring;
    const char *t = cJSON_IsString(mt) ? mt->valuestring : NULL;
    if (a) {
        if (!strcmp(a, "LlamaForCausalLM")) *arch = MCFG_ARCH_LLAMA;
        else if (!strcmp(a, "Qwen2ForCausalLM")) *arch = MCFG_ARCH_QWEN2;
        else
            return fail(err, err_len, ENG_EARCH, label,
                        "architecture \"%s\" is not supported (supported: LlamaForCausalLM, Qwen2ForCausalLM)", a);
        return 0;
    }
    if (t && !strcmp(t, "llama")) *arch = MCFG_ARCH_LLAMA;
    else if (t && !strcmp(t, "qwen2")) *arch = MCFG_ARCH_QWEN2;
    else if (t)
        return fail(err, err_len, ENG_EARCH, label, "model_type \"%s\" is not supported (supported: llama, qwen2)", t);
    else
        return fail(err, err_len, ENG_EARCH, label, "neither \"architectures\" nor \"model_type\" is set");
    return 0;
}

/* rope_scaling (classic) or rope_parameters (transformers v5): same members. */
static int hf_rope(const cJSON *rs, mcfg_t *c, const char *label, char *err, size_t err_len) {
    int rc;
    if (!cJSON_IsObject(rs)) return fail(err, err_len, ENG_ECONFIG, label, "rope scaling must be an object or null");
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!ty) ty = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (ty && !cJSON_IsString(ty)) return fail(err, err_len, ENG_ECONFIG, label, "rope type must be a string");
    if (ty && rope_type_parse(ty->valuestring, &c->rope_scaling.type))
        return fail(err, err_len, ENG_ECONFIG, label, "rope scaling type \"%s\" is not supported", ty->valuestring);
    if ((rc = j_num(rs, "rope_theta", &c->rope_theta, label, err, err_len)) < 0) return rc;
    if ((rc = j_num(rs, "factor", &c->rope_scaling.factor, label, err, err_len)) < 0) return rc;
    if (c->rope_scaling.type == MCFG_ROPE_SCALING_LLAMA3) {
        c->rope_scaling.low_freq_factor = 1.0f;
        c->rope_scaling.high_freq_factor = 4.0f;
        if ((rc = j_num(rs, "low_freq_factor", &c->rope_scaling.low_freq_factor, label, err, err_len)) < 0) return rc;
        if ((rc = j_num(rs, "high_freq_factor", &c->rope_scaling.high_freq_factor, label, err, err_len)) < 0) return rc;
        if (!(c->rope_scaling.high_freq_factor > c->rope_scaling.low_freq_factor))
            return fail(err, err_len, ENG_ECONFIG, label, "llama3 rope scaling needs high_freq_factor > low_freq_factor");
    }
    rc = j_int(rs, "original_max_position_embeddings", 1, INT32_MAX, &c->rope_scaling.original_max_position_embeddings, label,
               err, err_len);
    return rc < 0 ? rc : 0;
}

static int hf_parse(const cJSON *root, mcfg_t *c, const char *label, char *err, size_t err_len) {
    int rc;
    if (!cJSON_IsObject(root)) return fail(err, err_len, ENG_ECONFIG, label, "not a JSON object");
    if ((rc = hf_arch(root, &c->arch, label, err, err_len))) return rc;
    if ((rc = j_req(root, "hidden_size", &c->hidden_size, label, err, err_len))) return rc;
    if ((rc = j_req(root, "intermediate_size", &c->intermediate_size, label, err, err_len))) return rc;
    if ((rc = j_req(root, "num_hidden_layers", &c->n_layers, label, err, err_len))) return rc;
    if ((rc = j_req(root, "num_attention_heads", &c->n_heads, label, err, err_len))) return rc;
    if ((rc = j_req(root, "vocab_size", &c->vocab_size, label, err, err_len))) return rc;
    if ((rc = j_req(root, "max_position_embeddings", &c->max_position_embeddings, label, err, err_len))) return rc;
    c->n_kv_heads = c->n_heads;
    if ((rc = j_int(root, "num_key_value_heads", 1, MAX_DIM, &c->n_kv_heads, label, err, err_len)) < 0) return rc;
    c->head_dim = c->hidden_size / c->n_heads;
    if ((rc = j_int(root, "head_dim", 1, MAX_DIM, &c->head_dim, label, err, err_len)) < 0) return rc;
    if ((rc = j_num(root, "rms_norm_eps", &c->rms_norm_eps, label, err, err_len)) < 0) return rc;
    if ((rc = j_num(root, "rope_theta", &c->rope_theta, label, err, err_len)) < 0) return rc;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (rs && !cJSON_IsNull(rs) && (rc = hf_rope(rs, c, label, err, err_len))) return rc;
    rs = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (rs && !cJSON_IsNull(rs) && (rc = hf_rope(rs, c, label, err, err_len))) return rc;
    if ((rc = j_bool(root, "tie_word_embeddings", &c->tie_word_embeddings, label, err, err_len)) < 0) return rc;
    c->attention_bias = c->arch == MCFG_ARCH_QWEN2; /* Qwen2 always has q/k/v biases */
    if ((rc = j_bool(root, "attention_bias", &c->attention_bias, label, err, err_len)) < 0) return rc;
    int64_t bos;
    if ((rc = j_int(root, "bos_token_id", 0, INT32_MAX, &bos, label, err, err_len)) < 0) return rc;
    if (rc == 0) c->bos_token_id = (int32_t)bos;
    if ((rc = j_ids(root, "eos_token_id", c->eos_token_ids, &c->n_eos, label, err, err_len)) < 0) return rc;
    c->rope_neox = true; /* HF weights are stored for rotate_half */
    return mcfg_validate(c, label, err, err_len);
}

int mcfg_from_hf_json(const char *json, size_t len, const char *label, mcfg_t *out, char *err, size_t err_len) {
    if (!label) label = "config.json";
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return fail(err, err_len, ENG_ECONFIG, label, "not valid JSON");
    mcfg_t c;
    init_cfg(&c);
    int rc = hf_parse(root, &c, label, err, err_len);
    cJSON_Delete(root);
    if (!rc) *out = c;
    return rc;
}

int mcfg_from_hf_file(const char *path, mcfg_t *out, char *err, size_t err_len) {
    char *txt;
    size_t len;
    int rc = read_text(path, &txt, &len, err, err_len);
    if (rc) return rc;
    rc = mcfg_from_hf_json(txt, len, path, out, err, err_len);
    free(txt);
    return rc;
}

/* --- GGUF ------------------------------------------------------------------------------ */

/* <arch>.<suffix> as an integer in [lo, hi]: 0 set, 1 absent, <0 error. */
static int g_int(const gguf_file_t *f, const char *arch, const char *suffix, int64_t lo, int64_t hi, int64_t *out,
                 char *err, size_t err_len) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v = 0;
    int rc = gguf_get_i64(f, key, &v);
    if (rc == ENG_ENOTFOUND) return 1;
    if (rc == ENG_EWRONGTYPE && gguf_get_arr(f, key, NULL, NULL, NULL) == 0) {
        /* Per-layer arrays (head_count in some models): accept if uniform. */
        int64_t id;
        uint64_t n;
        gguf_get_arr(f, key, &id, NULL, &n);
        for (uint64_t i = 0; i < n; i++) {
            int64_t x;
            if (gguf_kv_arr_i64(f, id, i, &x) || (i > 0 && x != v))
                return fail(err, err_len, ENG_ECONFIG, gguf_path(f), "%s: per-layer values differ (not supported)", key);
            v = x;
        }
        if (n == 0) return fail(err, err_len, ENG_ECONFIG, gguf_path(f), "%s: empty array", key);
        rc = 0;
    }
    if (rc) return fail(err, err_len, ENG_ECONFIG, gguf_path(f), "%s: %s", key, eng_strerror(rc));
    if (v < lo || v > hi) return fail(err, err_len, ENG_ECONFIG, gguf_path(f), "%s = %" PRId64 " is out of range", key, v);
    *out = v;
    return 0;
}

static int g_req(const gguf_file_t *f, const char *arch, const char *suffix, int64_t *out, char *err, size_t err_len) {
    int rc = g_int(f, arch, suffix, 1, MAX_DIM, out, err, err_len);
    if (rc == 1) return fail(err, err_len, ENG_ECONFIG, gguf_path(f), "missing required key %s.%s", arch, suffix);
    return rc;
}

static int g_f32(const gguf_file_t *f, const char *arch, const char *suffix, float *out, char *err, size_t err_len) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int rc = gguf_get_f32(f, key, out);
    if (rc == ENG_ENOTFOUND) return 1;
    if (rc) return fail(err, err_len, ENG_ECONFIG, gguf_path(f), "%s: %s", key, eng_strerror(rc));
    return 0;
}

static int gguf_parse(const gguf_file_t *f, mcfg_t *c, char *err, size_t err_len) {
    const char *label = gguf_path(f), *s;
    size_t n;
    int rc = gguf_get_str(f, "general.architecture", &s, &n);
    if (rc == ENG_ENOTFOUND) return fail(err, err_len, ENG_EARCH, label, "no general.architecture key");
    if (rc) return fail(err, err_len, ENG_ECONFIG, label, "general.architecture: %s", eng_strerror(rc));
    char arch[32];
    if (n == 5 && !memcmp(s, "llama", 5)) c->arch = MCFG_ARCH_LLAMA;
    else if (n == 5 && !memcmp(s, "qwen2", 5)) c->arch = MCFG_ARCH_QWEN2;
    else
        return fail(err, err_len, ENG_EARCH, label, "architecture \"%.*s\" is not supported (supported: llama, qwen2)",
                    n > 64 ? 64 : (int)n, s);
    snprintf(arch, sizeof arch, "%s", mcfg_arch_name(c->arch));

    if ((rc = g_req(f, arch, "embedding_length", &c->hidden_size, err, err_len))) return rc;
    if ((rc = g_req(f, arch, "feed_forward_length", &c->intermediate_size, err, err_len))) return rc;
    if ((rc = g_req(f, arch, "block_count", &c->n_layers, err, err_len))) return rc;
    if ((rc = g_req(f, arch, "attention.head_count", &c->n_heads, err, err_len))) return rc;
    if ((rc = g_req(f, arch, "context_length", &c->max_position_embeddings, err, err_len))) return rc;
    c->n_kv_heads = c->n_heads;
    if ((rc = g_int(f, arch, "attention.head_count_kv", 1, MAX_DIM, &c->n_kv_heads, err, err_len)) < 0) return rc;
    c->head_dim = c->hidden_size / c->n_heads;
    if ((rc = g_int(f, arch, "attention.key_length", 1, MAX_DIM, &c->head_dim, err, err_len)) < 0) return rc;
    if ((rc = g_f32(f, arch, "attention.layer_norm_rms_epsilon", &c->rms_norm_eps, err, err_len)) < 0) return rc;
    if ((rc = g_f32(f, arch, "rope.freq_base", &c->rope_theta, err, err_len)) < 0) return rc;

    /* Vocab: explicit key, else the tokenizer's list, else the embedding rows. */
    if ((rc = g_int(f, arch, "vocab_size", 0, INT32_MAX, &c->vocab_size, err, err_len)) < 0) return rc;
    if (rc == 1) {
        uint64_t cnt;
        const gguf_tensor_t *te = gguf_find_tensor(f, "token_embd.weight");
        if (gguf_get_arr(f, "tokenizer.ggml.tokens", NULL, NULL, &cnt) == 0 && cnt <= INT32_MAX) c->vocab_size = (int64_t)cnt;
        else if (te && te->n_dims >= 2) c->vocab_size = te->ne[1];
    }

    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (gguf_get_str(f, key, &s, &n) == 0) {
        char ty[32];
        snprintf(ty, sizeof ty, "%.*s", n > 31 ? 31 : (int)n, s);
        if (rope_type_parse(ty, &c->rope_scaling.type))
            return fail(err, err_len, ENG_ECONFIG, label, "%s \"%s\" is not supported", key, ty);
    }
    if ((rc = g_f32(f, arch, "rope.scaling.factor", &c->rope_scaling.factor, err, err_len)) < 0) return rc;
    if (c->rope_scaling.factor == 0.0f) c->rope_scaling.factor = 1.0f; /* converters write 0 for "unset" */
    if ((rc = g_int(f, arch, "rope.scaling.original_context_length", 0, INT32_MAX,
                    &c->rope_scaling.original_max_position_embeddings, err, err_len)) < 0)
        return rc;
    if (gguf_find_tensor(f, "rope_freqs.weight")) c->rope_scaling.type = MCFG_ROPE_SCALING_LLAMA3;

    c->tie_word_embeddings = gguf_find_tensor(f, "output.weight") == NULL;
    c->attention_bias = gguf_find_tensor(f, "blk.0.attn_q.bias") != NULL;
    c->rope_neox = c->arch == MCFG_ARCH_QWEN2; /* GGUF llama q/k rows are permuted for adjacent pairs */

    int32_t id;
    if (gguf_get_i32(f, "tokenizer.ggml.bos_token_id", &id) == 0 && id >= 0) c->bos_token_id = id;
    static const char *const eos_keys[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                           "tokenizer.ggml.eom_token_id"};
    for (size_t k = 0; k < sizeof eos_keys / sizeof eos_keys[0]; k++) {
        if (gguf_get_i32(f, eos_keys[k], &id) != 0 || id < 0) continue;
        int dup = 0;
        for (int j = 0; j < c->n_eos; j++) dup |= c->eos_token_ids[j] == id;
        if (!dup && c->n_eos < MCFG_MAX_EOS) c->eos_token_ids[c->n_eos++] = id;
    }
    return mcfg_validate(c, label, err, err_len);
}

int mcfg_from_gguf(const gguf_file_t *f, mcfg_t *out, char *err, size_t err_len) {
    mcfg_t c;
    init_cfg(&c);
    c.rms_norm_eps = 1e-5f; /* llama.cpp requires the key; keep a sane value if absent */
    int rc = gguf_parse(f, &c, err, err_len);
    if (!rc) *out = c;
    return rc;
}

/* --- generation_config.json ----------------------------------------------------------- */

void mcfg_gen_defaults(mcfg_gen_t *g) {
    memset(g, 0, sizeof *g);
    g->temperature = 1.0f;
    g->top_p = 1.0f;
    g->repetition_penalty = 1.0f;
    g->bos_token_id = -1;
    g->pad_token_id = -1;
}

int mcfg_gen_from_json(const char *json, size_t len, const char *label, mcfg_gen_t *g, char *err, size_t err_len) {
    if (!label) label = "generation_config.json";
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return fail(err, err_len, ENG_ECONFIG, label, "not valid JSON");
    mcfg_gen_t r = *g;
    int rc = 0;
    int64_t v;
    if (!cJSON_IsObject(root)) {
        rc = fail(err, err_len, ENG_ECONFIG, label, "not a JSON object");
        goto out;
    }
#define NUM(key, field)                                                         \
    if ((rc = j_num(root, key, &r.field, label, err, err_len)) < 0) goto out; \
    r.has_##field = rc == 0;
    NUM("temperature", temperature);
    NUM("top_p", top_p);
    NUM("min_p", min_p);
    NUM("repetition_penalty", repetition_penalty);
#undef NUM
    if ((rc = j_int(root, "top_k", 0, INT32_MAX, &v, label, err, err_len)) < 0) goto out;
    if (rc == 0) r.top_k = (int32_t)v, r.has_top_k = true;
    if ((rc = j_int(root, "max_new_tokens", 0, INT64_MAX / 2, &v, label, err, err_len)) < 0) goto out;
    if (rc == 0) r.max_new_tokens = v, r.has_max_new_tokens = true;
    if ((rc = j_bool(root, "do_sample", &r.do_sample, label, err, err_len)) < 0) goto out;
    r.has_do_sample = r.has_do_sample || rc == 0;
    if ((rc = j_int(root, "bos_token_id", 0, INT32_MAX, &v, label, err, err_len)) < 0) goto out;
    if (rc == 0) r.bos_token_id = (int32_t)v;
    if ((rc = j_int(root, "pad_token_id", 0, INT32_MAX, &v, label, err, err_len)) < 0) goto out;
    if (rc == 0) r.pad_token_id = (int32_t)v;
    if ((rc = j_ids(root, "eos_token_id", r.eos_token_ids, &r.n_eos, label, err, err_len)) < 0) goto out;
    rc = 0;
    if (r.temperature < 0 || r.top_p <= 0 || r.top_p > 1 || r.min_p < 0 || r.min_p > 1 || r.repetition_penalty <= 0)
        rc = fail(err, err_len, ENG_ECONFIG, label, "sampling value out of range");
    else
        *g = r;
out:
    cJSON_Delete(root);
    return rc;
}

int mcfg_gen_from_file(const char *path, mcfg_gen_t *g, char *err, size_t err_len) {
    char *txt;
    size_t len;
    int rc = read_text(path, &txt, &len, err, err_len);
    if (rc) return rc;
    rc = mcfg_gen_from_json(txt, len, path, g, err, err_len);
    free(txt);
    return rc;
}
