/* serve_args: the command line of `cvllm serve`, with vLLM's flag names and
 * defaults (vllm serve --help), parsed like vLLM's FlexibleArgumentParser:
 * `--flag value` or `--flag=value`, underscores accepted for dashes,
 * `--x` / `--no-x` for booleans, `-dp`/`-asc` short forms, the model as the
 * first positional argument or `--model`. Unknown flags are an error that
 * names the closest known flag; flags for capabilities not built yet are an
 * error that says so. Environment: VLLM_API_KEY when --api-key is absent.
 * Not thread-safe (plain data). */
#ifndef CVLLM_CLI_SERVE_ARGS_H
#define CVLLM_CLI_SERVE_ARGS_H

#include <stddef.h>
#include <stdint.h>

#define SERVE_MAX_KEYS 8

typedef struct {
    const char *model;                 /* NULL: the default model */
    const char *served_model_name;     /* NULL: the model argument */
    const char *host;                  /* NULL: all interfaces */
    int port;                          /* 8000 */
    int64_t max_model_len;             /* 0: from the model */
    int max_num_seqs;                  /* 0: the default for the device */
    int max_num_batched_tokens;        /* 0: the default for the device */
    int long_prefill_token_threshold;  /* 0: none */
    int block_size;                    /* 16 */
    int enable_prefix_caching;         /* 1 */
    int64_t num_gpu_blocks_override;   /* 0: none */
    int64_t kv_cache_memory_bytes;     /* 0: derived */
    double gpu_memory_utilization;     /* 0.9 */
    int64_t seed;                      /* 0 */
    const char *dtype;                 /* "auto" */
    const char *device;                /* "auto" */
    const char *api_keys[SERVE_MAX_KEYS];
    int n_api_keys;
    int data_parallel_size;            /* 1 */
    int api_server_count;              /* 0: = data_parallel_size */
    int tensor_parallel_size;          /* 1 */
    int disable_log_stats, disable_log_requests;
    const char *show_hidden_metrics_for_version;
    int kv_cache_metrics;
    double kv_cache_metrics_sample;    /* 0.01 */
    const char *generation_config;     /* "auto" */
    const char *chat_template;
    int max_log_len;                   /* 0: unlimited */
    const char *log_level;             /* "info" */
    int enforce_eager;
    int threads;                       /* CPU threads for the model runner; 0: cores */
    int dry_run;                       /* print the resolved configuration and exit */
    /* internal: set by the supervisor for the processes it starts */
    int engine_index;
    const char *engine_endpoint;       /* engine: its endpoint; worker: every engine's, comma-separated */
    int worker_index;
} serve_args_t;

/* Parses argv[1..argc) (argv[0] is "serve"). Borrowed strings point into argv
 * or the environment. Returns 0, or 2 with a one-line message in err (n
 * bytes) for a usage error. --help sets *help and returns 0. */
int serve_args_parse(int argc, char **argv, serve_args_t *out, int *help, char *err, size_t n);

/* Writes the resolved configuration as JSON (for --dry-run and tests). */
void serve_args_print_json(const serve_args_t *a, void *file);

/* Prints the help text. */
void serve_args_usage(void *file);

#endif
