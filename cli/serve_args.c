/* `cvllm serve` flags (see serve_args.h). One table drives parsing, help and
 * the "did you mean" suggestion, so a flag cannot be documented and not
 * parsed or the reverse. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_args.h"

typedef enum { T_STR, T_INT, T_I64, T_DBL, T_BOOL, T_FLAG, T_KEYS } opt_type_t;

typedef struct {
    const char *name;      /* without the leading dashes */
    const char *shorthand; /* "-dp" style, or NULL */
    opt_type_t type;
    size_t off;
    const char *help;
} opt_t;

#define OFF(f) offsetof(serve_args_t, f)

static const opt_t opts[] = {
    {"model", NULL, T_STR, OFF(model), "model: a GGUF file, an HF directory or an HF id in the local cache"},
    {"served-model-name", NULL, T_STR, OFF(served_model_name), "name reported by the API and the model_name label"},
    {"host", NULL, T_STR, OFF(host), "address to listen on (default: all)"},
    {"port", NULL, T_INT, OFF(port), "port to listen on (default 8000)"},
    {"max-model-len", NULL, T_I64, OFF(max_model_len), "context length (default: the model's)"},
    {"max-num-seqs", NULL, T_INT, OFF(max_num_seqs), "maximum running sequences per step"},
    {"max-num-batched-tokens", NULL, T_INT, OFF(max_num_batched_tokens), "token budget per step"},
    {"long-prefill-token-threshold", NULL, T_INT, OFF(long_prefill_token_threshold),
     "cap on one request's prefill chunk per step (0: none)"},
    {"block-size", NULL, T_INT, OFF(block_size), "tokens per KV cache block (default 16)"},
    {"enable-prefix-caching", NULL, T_BOOL, OFF(enable_prefix_caching), "prefix caching (default on)"},
    {"num-gpu-blocks-override", NULL, T_I64, OFF(num_gpu_blocks_override), "exact number of KV blocks"},
    {"kv-cache-memory-bytes", NULL, T_I64, OFF(kv_cache_memory_bytes), "KV cache size in bytes"},
    {"gpu-memory-utilization", NULL, T_DBL, OFF(gpu_memory_utilization), "GPU memory fraction (default 0.9)"},
    {"seed", NULL, T_I64, OFF(seed), "random seed (default 0)"},
    {"dtype", NULL, T_STR, OFF(dtype), "activation dtype: auto, float32, bfloat16, float16"},
    {"device", NULL, T_STR, OFF(device), "auto, cpu or cuda"},
    {"api-key", NULL, T_KEYS, OFF(api_keys), "require this key on /v1 (repeatable; env VLLM_API_KEY)"},
    {"data-parallel-size", "-dp", T_INT, OFF(data_parallel_size), "engine processes (default 1)"},
    {"api-server-count", "-asc", T_INT, OFF(api_server_count), "frontend worker processes (default: -dp)"},
    {"api-workers", NULL, T_INT, OFF(api_server_count), "alias of --api-server-count"},
    {"tensor-parallel-size", "-tp", T_INT, OFF(tensor_parallel_size), "tensor parallel workers (not built yet: 1)"},
    {"disable-log-stats", NULL, T_FLAG, OFF(disable_log_stats), "no stats logging and no vllm: metrics"},
    {"disable-log-requests", NULL, T_FLAG, OFF(disable_log_requests), "do not log requests"},
    {"show-hidden-metrics-for-version", NULL, T_STR, OFF(show_hidden_metrics_for_version),
     "show metrics hidden since this version (X.Y)"},
    {"kv-cache-metrics", NULL, T_FLAG, OFF(kv_cache_metrics), "KV block residency metrics"},
    {"kv-cache-metrics-sample", NULL, T_DBL, OFF(kv_cache_metrics_sample), "sampled fraction of blocks (0, 1]"},
    {"generation-config", NULL, T_STR, OFF(generation_config), "auto (the model's defaults) or vllm"},
    {"chat-template", NULL, T_STR, OFF(chat_template), "chat template file overriding the model's"},
    {"max-log-len", NULL, T_INT, OFF(max_log_len), "truncate logged prompts to this many characters"},
    {"log-level", NULL, T_STR, OFF(log_level), "debug, info, warning, error"},
    {"enforce-eager", NULL, T_FLAG, OFF(enforce_eager), "no CUDA graphs"},
    {"threads", NULL, T_INT, OFF(threads), "CPU threads of the model runner (default: all cores)"},
    {"dry-run", NULL, T_FLAG, OFF(dry_run), "print the resolved configuration as JSON and exit"},
    /* internal (no help): the supervisor's arguments to the processes it starts */
    {"engine-index", NULL, T_INT, OFF(engine_index), NULL},
    {"engine-endpoint", NULL, T_STR, OFF(engine_endpoint), NULL},
    {"worker-index", NULL, T_INT, OFF(worker_index), NULL},
};

#define N_OPTS (sizeof opts / sizeof opts[0])

static size_t edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b), prev[64], cur[64];
    if (la >= 63 || lb >= 63) return 99;
    for (size_t j = 0; j <= lb; j++) prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, (lb + 1) * sizeof *prev);
    }
    return prev[lb];
}

static const char *suggest(const char *name) {
    const char *best = NULL;
    size_t bd = 4;
    for (size_t i = 0; i < N_OPTS; i++) {
        if (!opts[i].help) continue;
        size_t d = edit_distance(name, opts[i].name);
        if (d < bd || (!best && strstr(opts[i].name, name) && strlen(name) >= 4)) {
            bd = d < bd ? d : bd;
            best = opts[i].name;
        }
    }
    return best;
}

static int set_value(const opt_t *o, const char *v, serve_args_t *a, char *err, size_t n) {
    char *f = (char *)a + o->off, *end;
    errno = 0;
    switch (o->type) {
    case T_STR: *(const char **)f = v; break;
    case T_KEYS:
        if (a->n_api_keys == SERVE_MAX_KEYS) return snprintf(err, n, "too many --api-key values"), 2;
        a->api_keys[a->n_api_keys++] = v;
        break;
    case T_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < INT_MIN || x > INT_MAX)
            return snprintf(err, n, "--%s: invalid int value: '%s'", o->name, v), 2;
        *(int *)f = (int)x;
        break;
    }
    case T_I64: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno) return snprintf(err, n, "--%s: invalid int value: '%s'", o->name, v), 2;
        *(int64_t *)f = x;
        break;
    }
    case T_DBL: {
        double x = strtod(v, &end);
        if (!*v || *end || errno) return snprintf(err, n, "--%s: invalid float value: '%s'", o->name, v), 2;
        *(double *)f = x;
        break;
    }
    default: break;
    }
    return 0;
}

static void defaults(serve_args_t *a) {
    memset(a, 0, sizeof *a);
    a->port = 8000;
    a->block_size = 16;
    a->enable_prefix_caching = 1;
    a->gpu_memory_utilization = 0.9;
    a->dtype = "auto";
    a->device = "auto";
    a->data_parallel_size = 1;
    a->tensor_parallel_size = 1;
    a->kv_cache_metrics_sample = 0.01;
    a->generation_config = "auto";
    a->log_level = "info";
}

static int check(serve_args_t *a, char *err, size_t n) {
    if (a->port < 0 || a->port > 65535) return snprintf(err, n, "--port must be in [0, 65535], got %d", a->port), 2;
    if (a->block_size <= 0 || (a->block_size & (a->block_size - 1)))
        return snprintf(err, n, "--block-size must be a positive power of two, got %d", a->block_size), 2;
    if (a->max_model_len < 0) return snprintf(err, n, "--max-model-len must be positive"), 2;
    if (a->max_num_seqs < 0 || a->max_num_batched_tokens < 0 || a->long_prefill_token_threshold < 0)
        return snprintf(err, n, "--max-num-seqs, --max-num-batched-tokens and --long-prefill-token-threshold "
                                "must not be negative"), 2;
    if (a->data_parallel_size < 1) return snprintf(err, n, "--data-parallel-size must be at least 1"), 2;
    if (a->engine_index < 0 || a->engine_index >= a->data_parallel_size)
        return snprintf(err, n, "--engine-index must be in [0, %d)", a->data_parallel_size), 2;
    if (a->threads < 0) return snprintf(err, n, "--threads must not be negative"), 2;
    if (a->api_server_count < 0) return snprintf(err, n, "--api-server-count must be at least 1"), 2;
    if (a->tensor_parallel_size != 1)
        return snprintf(err, n, "--tensor-parallel-size %d: tensor parallelism is not built yet", a->tensor_parallel_size), 2;
    if (!(a->kv_cache_metrics_sample > 0 && a->kv_cache_metrics_sample <= 1))
        return snprintf(err, n, "--kv-cache-metrics-sample must be in (0, 1], got %g", a->kv_cache_metrics_sample), 2;
    if (a->gpu_memory_utilization <= 0 || a->gpu_memory_utilization > 1)
        return snprintf(err, n, "--gpu-memory-utilization must be in (0, 1], got %g", a->gpu_memory_utilization), 2;
    static const char *const dtypes[] = {"auto", "float32", "bfloat16", "float16", "half", "float", NULL};
    int ok = 0;
    for (int i = 0; dtypes[i]; i++) ok |= !strcmp(a->dtype, dtypes[i]);
    if (!ok) return snprintf(err, n, "--dtype: invalid choice '%s' (auto, float32, bfloat16, float16)", a->dtype), 2;
    if (strcmp(a->device, "auto") && strcmp(a->device, "cpu") && strcmp(a->device, "cuda"))
        return snprintf(err, n, "--device: invalid choice '%s' (auto, cpu, cuda)", a->device), 2;
    if (strcmp(a->generation_config, "auto") && strcmp(a->generation_config, "vllm"))
        return snprintf(err, n, "--generation-config: 'auto', 'vllm' or a folder are accepted; got '%s'",
                        a->generation_config), 2;
    static const char *const levels[] = {"debug", "info", "warning", "error", "critical", "DEBUG", "INFO", "WARNING",
                                         "ERROR", "CRITICAL", NULL};
    ok = 0;
    for (int i = 0; levels[i]; i++) ok |= !strcmp(a->log_level, levels[i]);
    if (!ok) return snprintf(err, n, "--log-level: invalid choice '%s'", a->log_level), 2;
    if (!a->api_server_count) a->api_server_count = a->data_parallel_size;
    if (!a->n_api_keys) {
        const char *k = getenv("VLLM_API_KEY");
        if (k && *k) a->api_keys[a->n_api_keys++] = k;
    }
    return 0;
}

int serve_args_parse(int argc, char **argv, serve_args_t *a, int *help, char *err, size_t n) {
    defaults(a);
    *help = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            *help = 1;
            return 0;
        }
        if (arg[0] != '-' || !arg[1]) {
            if (a->model) return snprintf(err, n, "unexpected argument '%s' (the model is already '%s')", arg, a->model), 2;
            a->model = arg;
            continue;
        }
        /* normalise: strip dashes, '_' -> '-', split "=value" */
        char name[128];
        const char *eq = strchr(arg, '=');
        size_t nl = eq ? (size_t)(eq - arg) : strlen(arg);
        int dashes = arg[1] == '-' ? 2 : 1;
        if (nl - dashes >= sizeof name) return snprintf(err, n, "unrecognized argument: %s", arg), 2;
        memcpy(name, arg + dashes, nl - dashes);
        name[nl - dashes] = 0;
        for (char *p = name; *p; p++)
            if (*p == '_') *p = '-';
        const opt_t *o = NULL;
        int negated = 0;
        for (size_t k = 0; k < N_OPTS && !o; k++) {
            if (dashes == 1) {
                if (opts[k].shorthand && !strcmp(opts[k].shorthand + 1, name)) o = &opts[k];
            } else if (!strcmp(opts[k].name, name)) {
                o = &opts[k];
            } else if (!strncmp(name, "no-", 3) && !strcmp(opts[k].name, name + 3) && opts[k].type == T_BOOL) {
                o = &opts[k];
                negated = 1;
            }
        }
        if (!o) {
            const char *s = suggest(name);
            if (s) return snprintf(err, n, "unrecognized argument: %.*s (did you mean --%s?)", (int)nl, arg, s), 2;
            return snprintf(err, n, "unrecognized argument: %.*s", (int)nl, arg), 2;
        }
        if (o->type == T_BOOL || o->type == T_FLAG) {
            if (eq) return snprintf(err, n, "--%s takes no value", o->name), 2;
            *(int *)((char *)a + o->off) = !negated;
            continue;
        }
        const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!v) return snprintf(err, n, "--%s expects a value", o->name), 2;
        int rc = set_value(o, v, a, err, n);
        if (rc) return rc;
    }
    return check(a, err, n);
}

static void json_str(FILE *f, const char *s) {
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

void serve_args_print_json(const serve_args_t *a, void *fp) {
    FILE *f = fp;
    fputc('{', f);
    for (size_t k = 0; k < N_OPTS; k++) {
        const opt_t *o = &opts[k];
        if (!strcmp(o->name, "api-workers")) continue; /* alias */
        const char *p = (const char *)a + o->off;
        fprintf(f, "%s\"%s\": ", k ? ", " : "", o->name);
        switch (o->type) {
        case T_STR: json_str(f, *(const char *const *)p); break;
        case T_INT: fprintf(f, "%d", *(const int *)p); break;
        case T_I64: fprintf(f, "%lld", (long long)*(const int64_t *)p); break;
        case T_DBL: fprintf(f, "%.17g", *(const double *)p); break;
        case T_BOOL:
        case T_FLAG: fputs(*(const int *)p ? "true" : "false", f); break;
        case T_KEYS: fprintf(f, "%d", a->n_api_keys); break; /* never print the keys */
        }
    }
    fputs("}\n", f);
}

void serve_args_usage(void *fp) {
    FILE *f = fp;
    fprintf(f, "usage: cvllm serve [MODEL] [options]\n\noptions:\n");
    for (size_t k = 0; k < N_OPTS; k++) {
        const opt_t *o = &opts[k];
        if (!o->help) continue;
        char flag[80];
        snprintf(flag, sizeof flag, "--%s%s%s%s", o->type == T_BOOL ? "[no-]" : "", o->name,
                 o->shorthand ? ", " : "", o->shorthand ? o->shorthand : "");
        fprintf(f, "  %-38s %s\n", flag, o->help);
    }
}
