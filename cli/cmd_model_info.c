/* `cvllm model-info PATH [--json] [--dump-tensor NAME]`: describes a model:
 * format, architecture and hyper-parameters, generation defaults, metadata and
 * the tensor list; or prints one tensor's values dequantized to float32, one
 * per line (%.9g, enough digits to round-trip), for comparison with Python.
 *
 * PATH is a GGUF file, a .safetensors file, a model.safetensors.index.json, or
 * an HF model directory. Every loader error is printed with the file it names
 * and exits 1; usage errors exit 2. Read-only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "model_path.h"
#include "gguf.h"
#include "k_ops.h"
#include "model_config.h"
#include "safetensors.h"

#define ERRLEN 1024

static void usage(FILE *f) {
    fprintf(f,
            "usage: cvllm model-info PATH [--json] [--dump-tensor NAME]\n"
            "  PATH: a .gguf file, a .safetensors file, a model.safetensors.index.json,\n"
            "        or an HF model directory (config.json + safetensors weights).\n"
            "  --json         machine-readable description.\n"
            "  --dump-tensor  print tensor NAME dequantized to float32, one value per line.\n");
}

/* --- helpers -------------------------------------------------------------------- */

static int is_gguf(const char *path) {
    FILE *fp = fopen(path, "rb");
    unsigned char m[4] = {0};
    if (fp) {
        size_t n = fread(m, 1, 4, fp);
        fclose(fp);
        if (n == 4 && !memcmp(m, "GGUF", 4)) return 1;
    }
    size_t l = strlen(path);
    return l >= 5 && !strcmp(path + l - 5, ".gguf");
}

static char *join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (p) snprintf(p, a + b + 2, "%s/%s", dir, name);
    return p;
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Prints `n` floats, one per line. Returns 0 or 1 on an output error. */
static int print_values(const float *v, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (printf("%.9g\n", (double)v[i]) < 0) return 1;
    return 0;
}

/* --- config output ------------------------------------------------------------------ */

/* A float as the shortest double that reads back as the same float, so 1e-5f
 * prints as 1e-05 rather than 9.99999974737875e-06. */
static double f2d(float f) {
    char b[32];
    snprintf(b, sizeof b, "%.9g", (double)f);
    for (int p = 6; p < 9; p++) {
        char t[32];
        snprintf(t, sizeof t, "%.*g", p, (double)f);
        if (strtof(t, NULL) == f) return strtod(t, NULL);
    }
    return strtod(b, NULL);
}

static cJSON *config_json(const mcfg_t *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "architecture", mcfg_arch_name(c->arch));
    cJSON_AddNumberToObject(o, "hidden_size", (double)c->hidden_size);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)c->intermediate_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", (double)c->n_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", (double)c->n_heads);
    cJSON_AddNumberToObject(o, "num_key_value_heads", (double)c->n_kv_heads);
    cJSON_AddNumberToObject(o, "head_dim", (double)c->head_dim);
    cJSON_AddNumberToObject(o, "vocab_size", (double)c->vocab_size);
    cJSON_AddNumberToObject(o, "max_position_embeddings", (double)c->max_position_embeddings);
    cJSON_AddNumberToObject(o, "rms_norm_eps", f2d(c->rms_norm_eps));
    cJSON_AddNumberToObject(o, "rope_theta", f2d(c->rope_theta));
    cJSON_AddStringToObject(o, "rope_style", c->rope_neox ? "neox" : "norm");
    cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
    cJSON_AddStringToObject(rs, "type", mcfg_rope_scaling_name(c->rope_scaling.type));
    cJSON_AddNumberToObject(rs, "factor", f2d(c->rope_scaling.factor));
    if (c->rope_scaling.type == MCFG_ROPE_SCALING_LLAMA3) {
        cJSON_AddNumberToObject(rs, "low_freq_factor", f2d(c->rope_scaling.low_freq_factor));
        cJSON_AddNumberToObject(rs, "high_freq_factor", f2d(c->rope_scaling.high_freq_factor));
    }
    cJSON_AddNumberToObject(rs, "original_max_position_embeddings", (double)c->rope_scaling.original_max_position_embeddings);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddBoolToObject(o, "attention_bias", c->attention_bias);
    cJSON_AddNumberToObject(o, "bos_token_id", c->bos_token_id);
    cJSON *eos = cJSON_AddArrayToObject(o, "eos_token_ids");
    for (int i = 0; i < c->n_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber(c->eos_token_ids[i]));
    return o;
}

static cJSON *gen_json(const mcfg_gen_t *g) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "temperature", f2d(g->temperature));
    cJSON_AddNumberToObject(o, "top_p", f2d(g->top_p));
    cJSON_AddNumberToObject(o, "top_k", g->top_k);
    cJSON_AddNumberToObject(o, "min_p", f2d(g->min_p));
    cJSON_AddNumberToObject(o, "repetition_penalty", f2d(g->repetition_penalty));
    cJSON_AddNumberToObject(o, "max_new_tokens", (double)g->max_new_tokens);
    cJSON_AddBoolToObject(o, "do_sample", g->do_sample);
    cJSON *eos = cJSON_AddArrayToObject(o, "eos_token_ids");
    for (int i = 0; i < g->n_eos; i++) cJSON_AddItemToArray(eos, cJSON_CreateNumber(g->eos_token_ids[i]));
    return o;
}

/* Text form: one "key: value" line per field of the JSON object, nested
 * objects indented. Keeps the two outputs from drifting apart. */
static void print_obj_text(const cJSON *o, int indent) {
    const cJSON *it;
    cJSON_ArrayForEach(it, o) {
        printf("%*s%s:", indent, "", it->string);
        if (cJSON_IsObject(it)) {
            printf("\n");
            print_obj_text(it, indent + 2);
            continue;
        }
        char *s = cJSON_PrintUnformatted(it);
        printf(" %s\n", s ? s : "?");
        free(s);
    }
}

/* --- GGUF ---------------------------------------------------------------------------- */

static int dump_gguf_tensor(const gguf_file_t *f, const char *name) {
    const gguf_tensor_t *t = gguf_find_tensor(f, name);
    if (!t) {
        fprintf(stderr, "cvllm model-info: %s: no tensor named '%s'\n", gguf_path(f), name);
        return 1;
    }
    if (!k_type_can_dequant(t->type)) {
        fprintf(stderr, "cvllm model-info: %s: tensor '%s' has type %s, which cannot be dequantized yet\n", gguf_path(f),
                name, k_type_name(t->type));
        return 1;
    }
    if (t->n_elements == 0) return 0;
    float *row = malloc((size_t)t->ne[0] * sizeof *row);
    if (!row) {
        fprintf(stderr, "cvllm model-info: out of memory\n");
        return 1;
    }
    int64_t rows = t->n_elements / t->ne[0];
    int rc = 0;
    for (int64_t r = 0; r < rows && !rc; r++) {
        int e = k_dequant_row(t->type, (const uint8_t *)t->data + (size_t)r * t->row_bytes, row, t->ne[0]);
        if (e) {
            fprintf(stderr, "cvllm model-info: %s: tensor '%s': %s\n", gguf_path(f), name, strerror(-e));
            rc = 1;
        } else {
            rc = print_values(row, t->ne[0]);
        }
    }
    free(row);
    return rc;
}

static cJSON *gguf_kv_value_json(const gguf_file_t *f, int64_t i) {
    const char *key = gguf_kv_key(f, i), *s;
    size_t n;
    gguf_type_t t = gguf_kv_type(f, i);
    int64_t iv;
    uint64_t uv;
    double dv;
    bool bv;
    switch (t) {
    case GGUF_TYPE_STRING: {
        gguf_get_str(f, key, &s, &n);
        char *c = strndup(s, n);
        cJSON *r = cJSON_CreateString(c ? c : "");
        free(c);
        return r;
    }
    case GGUF_TYPE_ARRAY: {
        gguf_type_t et;
        gguf_kv_arr(f, i, &et, &uv);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "array_of", gguf_type_name(et));
        cJSON_AddNumberToObject(o, "count", (double)uv);
        return o;
    }
    case GGUF_TYPE_BOOL: gguf_get_bool(f, key, &bv); return cJSON_CreateBool(bv);
    case GGUF_TYPE_FLOAT32: case GGUF_TYPE_FLOAT64: gguf_get_f64(f, key, &dv); return cJSON_CreateNumber(dv);
    case GGUF_TYPE_UINT64: gguf_get_u64(f, key, &uv); return cJSON_CreateNumber((double)uv);
    default: gguf_get_i64(f, key, &iv); return cJSON_CreateNumber((double)iv);
    }
}

static int info_gguf(const char *path, int json, const char *dump) {
    char err[ERRLEN];
    gguf_file_t *f;
    int rc = gguf_open(path, &f, err, sizeof err);
    if (rc) {
        fprintf(stderr, "cvllm model-info: %s\n", err);
        return 1;
    }
    if (dump) {
        rc = dump_gguf_tensor(f, dump);
        gguf_close(&f);
        return rc;
    }
    mcfg_t cfg;
    if (mcfg_from_gguf(f, &cfg, err, sizeof err)) {
        fprintf(stderr, "cvllm model-info: %s\n", err);
        gguf_close(&f);
        return 1;
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "file", path);
    cJSON_AddStringToObject(root, "format", "gguf");
    cJSON_AddNumberToObject(root, "version", gguf_version(f));
    cJSON_AddNumberToObject(root, "alignment", gguf_alignment(f));
    cJSON_AddNumberToObject(root, "data_offset", (double)gguf_data_offset(f));
    cJSON_AddNumberToObject(root, "file_size", (double)gguf_file_size(f));
    cJSON_AddItemToObject(root, "config", config_json(&cfg));
    cJSON *md = cJSON_AddObjectToObject(root, "metadata");
    for (int64_t i = 0; i < gguf_kv_count(f); i++) cJSON_AddItemToObject(md, gguf_kv_key(f, i), gguf_kv_value_json(f, i));
    cJSON *ts = cJSON_AddArrayToObject(root, "tensors");
    for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor_t *t = gguf_tensor(f, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "type", k_type_name(t->type));
        cJSON *ne = cJSON_AddArrayToObject(o, "ne");
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (uint32_t d = 0; d < t->n_dims; d++) {
            cJSON_AddItemToArray(ne, cJSON_CreateNumber((double)t->ne[d]));
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->ne[t->n_dims - 1 - d]));
        }
        cJSON_AddNumberToObject(o, "offset", (double)t->offset);
        cJSON_AddNumberToObject(o, "nbytes", (double)t->nbytes);
        cJSON_AddItemToArray(ts, o);
    }
    if (json) {
        char *s = cJSON_Print(root);
        printf("%s\n", s ? s : "null");
        free(s);
    } else {
        printf("file: %s\nformat: GGUF v%u (alignment %u, data offset %" PRIu64 ", %" PRId64 " metadata keys)\n", path,
               gguf_version(f), gguf_alignment(f), gguf_data_offset(f), gguf_kv_count(f));
        printf("config:\n");
        print_obj_text(cJSON_GetObjectItem(root, "config"), 2);
        printf("tensors: %" PRId64 "\n", gguf_tensor_count(f));
        for (int64_t i = 0; i < gguf_tensor_count(f); i++) {
            const gguf_tensor_t *t = gguf_tensor(f, i);
            printf("  %-32s %-6s [", t->name, k_type_name(t->type));
            for (uint32_t d = 0; d < t->n_dims; d++) printf("%s%" PRId64, d ? ", " : "", t->ne[d]);
            printf("] %zu bytes\n", t->nbytes);
        }
    }
    cJSON_Delete(root);
    gguf_close(&f);
    return ferror(stdout) ? 1 : 0;
}

/* --- safetensors ------------------------------------------------------------------------ */

static int dump_st_tensor(const st_model_t *m, const char *name) {
    const st_tensor_t *t = st_find_tensor(m, name);
    if (!t) {
        fprintf(stderr, "cvllm model-info: %s: no tensor named '%s'\n", st_file_path(m, 0), name);
        return 1;
    }
    int kt = st_dtype_k_type(t->dtype);
    if (kt < 0) {
        fprintf(stderr, "cvllm model-info: %s: tensor '%s' has dtype %s, which cannot be converted to float32\n",
                st_file_path(m, t->file), name, st_dtype_name(t->dtype));
        return 1;
    }
    /* Convert in chunks: the tensor may be large and is contiguous. */
    enum { CHUNK = 4096 };
    float buf[CHUNK];
    size_t esz = st_dtype_size(t->dtype);
    for (int64_t i = 0; i < t->n_elements; i += CHUNK) {
        int64_t n = t->n_elements - i < CHUNK ? t->n_elements - i : CHUNK;
        if (k_dequant_row(kt, (const uint8_t *)t->data + (size_t)i * esz, buf, n) || print_values(buf, n)) return 1;
    }
    return 0;
}

static int info_st(const char *path, int json, const char *dump) {
    char err[ERRLEN];
    st_model_t *m;
    if (st_open(path, &m, err, sizeof err)) {
        fprintf(stderr, "cvllm model-info: %s\n", err);
        return 1;
    }
    if (dump) {
        int rc = dump_st_tensor(m, dump);
        st_close(&m);
        return rc;
    }
    int rc = 0;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "file", path);
    cJSON_AddStringToObject(root, "format", "safetensors");
    cJSON *files = cJSON_AddArrayToObject(root, "files");
    for (int i = 0; i < st_file_count(m); i++) cJSON_AddItemToArray(files, cJSON_CreateString(st_file_path(m, i)));
    char *cfg_path = join(st_dir(m), "config.json");
    char *gen_path = join(st_dir(m), "generation_config.json");
    if (!cfg_path || !gen_path) {
        rc = 1;
        fprintf(stderr, "cvllm model-info: out of memory\n");
        goto out;
    }
    if (exists(cfg_path)) {
        mcfg_t cfg;
        if (mcfg_from_hf_file(cfg_path, &cfg, err, sizeof err)) {
            fprintf(stderr, "cvllm model-info: %s\n", err);
            rc = 1;
            goto out;
        }
        cJSON_AddItemToObject(root, "config", config_json(&cfg));
    }
    if (exists(gen_path)) {
        mcfg_gen_t g;
        mcfg_gen_defaults(&g);
        if (mcfg_gen_from_file(gen_path, &g, err, sizeof err)) {
            fprintf(stderr, "cvllm model-info: %s\n", err);
            rc = 1;
            goto out;
        }
        cJSON_AddItemToObject(root, "generation_config", gen_json(&g));
    }
    cJSON *ts = cJSON_AddArrayToObject(root, "tensors");
    for (int64_t i = 0; i < st_tensor_count(m); i++) {
        const st_tensor_t *t = st_tensor(m, i);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", t->name);
        cJSON_AddStringToObject(o, "type", st_dtype_name(t->dtype));
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->n_dims; d++) cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddNumberToObject(o, "nbytes", (double)t->nbytes);
        cJSON_AddNumberToObject(o, "file", t->file);
        cJSON_AddItemToArray(ts, o);
    }
    if (json) {
        char *s = cJSON_Print(root);
        printf("%s\n", s ? s : "null");
        free(s);
    } else {
        printf("file: %s\nformat: safetensors (%d file%s)\n", path, st_file_count(m), st_file_count(m) == 1 ? "" : "s");
        const cJSON *c = cJSON_GetObjectItem(root, "config");
        if (c) {
            printf("config:\n");
            print_obj_text(c, 2);
        } else {
            printf("config: none (no config.json in %s)\n", st_dir(m));
        }
        if ((c = cJSON_GetObjectItem(root, "generation_config"))) {
            printf("generation_config:\n");
            print_obj_text(c, 2);
        }
        printf("tensors: %" PRId64 "\n", st_tensor_count(m));
        for (int64_t i = 0; i < st_tensor_count(m); i++) {
            const st_tensor_t *t = st_tensor(m, i);
            printf("  %-48s %-5s [", t->name, st_dtype_name(t->dtype));
            for (int d = 0; d < t->n_dims; d++) printf("%s%" PRId64, d ? ", " : "", t->shape[d]);
            printf("] %zu bytes\n", t->nbytes);
        }
    }
    if (ferror(stdout)) rc = 1;
out:
    free(cfg_path);
    free(gen_path);
    cJSON_Delete(root);
    st_close(&m);
    return rc;
}

/* --- entry ------------------------------------------------------------------------------- */

int cmd_model_info(int argc, char **argv) {
    const char *path = NULL, *dump = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else if (!strcmp(a, "--dump-tensor") && i + 1 < argc) {
            dump = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "cvllm model-info: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "cvllm model-info: more than one PATH given\n");
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char resolved[4096], rerr[1024];
    if (model_path_resolve(path, resolved, sizeof resolved, rerr, sizeof rerr)) {
        fprintf(stderr, "cvllm model-info: %s\n", rerr);
        return 1;
    }
    path = resolved;
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "cvllm model-info: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (!S_ISDIR(st.st_mode) && is_gguf(path)) return info_gguf(path, json, dump);
    return info_st(path, json, dump);
}
