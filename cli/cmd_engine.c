/* `cvllm engine-core`: one engine process (started by `cvllm serve`, or alone
 * for tests). Loads the model, sizes the KV pool, binds its ZeroMQ endpoint
 * and runs the step loop until SIGTERM/SIGINT. Takes the serve flags plus the
 * internal --engine-index and --engine-endpoint. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "cli.h"
#include "eng_metrics.h"
#include "engine.h"
#include "model_runner.h"
#include "serve_args.h"
#include "shm.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

/* eng_runner_t over mr_runner_forward: flattens the loop's sequences into the
 * runner's batch layout, in arrays allocated once. */
typedef struct {
    mr_runner_t *r;
    int32_t *seq_start, *tokens, *positions, *n_blocks;
    const int32_t **tables;
    int32_t max_tokens, max_seqs;
} adapter_t;

static int adapter_forward(void *ctx, const eng_seq_t *seqs, int32_t n, float *logits) {
    adapter_t *a = ctx;
    if (n > a->max_seqs) return -22;
    int32_t t = 0;
    a->seq_start[0] = 0;
    for (int32_t s = 0; s < n; s++) {
        if (t + seqs[s].n_tokens > a->max_tokens) return -22;
        for (int32_t k = 0; k < seqs[s].n_tokens; k++) {
            a->tokens[t] = seqs[s].tokens[k];
            a->positions[t] = (int32_t)(seqs[s].start_pos + k);
            t++;
        }
        a->seq_start[s + 1] = t;
        a->tables[s] = seqs[s].blocks;
        a->n_blocks[s] = seqs[s].n_blocks;
    }
    mr_batch_t b = {.n_seqs = n, .seq_start = a->seq_start, .tokens = a->tokens, .positions = a->positions,
                    .block_tables = a->tables, .n_blocks = a->n_blocks};
    return mr_runner_forward(a->r, &b, logits);
}

static void set_title(int index) {
    char name[16];
    snprintf(name, sizeof name, "cvllm-engine-%d", index);
    prctl(PR_SET_NAME, name, 0, 0, 0);
}

int cmd_engine_core(int argc, char **argv) {
    serve_args_t a;
    int help;
    char err[512];
    if (serve_args_parse(argc, argv, &a, &help, err, sizeof err)) {
        fprintf(stderr, "cvllm engine-core: %s\n", err);
        return 2;
    }
    if (help || !a.engine_endpoint || !a.model) {
        fprintf(stderr, "usage: cvllm engine-core MODEL --engine-endpoint ENDPOINT [--engine-index I] [serve flags]\n");
        return help ? 0 : 2;
    }
    set_title(a.engine_index);
    mr_model_t *model = NULL;
    if (mr_model_load(a.model, &model, err, sizeof err)) {
        fprintf(stderr, "cvllm engine-core: %s\n", err);
        return 1;
    }
    const mcfg_t *cfg = mr_model_config(model);
    int64_t max_model_len = a.max_model_len ? a.max_model_len : cfg->max_position_embeddings;
    if (max_model_len > cfg->max_position_embeddings && cfg->max_position_embeddings > 0) {
        fprintf(stderr, "cvllm engine-core: --max-model-len %lld exceeds the model's %lld positions\n",
                (long long)max_model_len, (long long)cfg->max_position_embeddings);
        mr_model_free(&model);
        return 1;
    }
    int32_t block = a.block_size;
    int64_t blocks = a.num_gpu_blocks_override;
    if (!blocks) {
        /* KV bytes per block: 2 (K, V) x layers x kv heads x head_dim x f32 */
        int64_t per_block = 2LL * cfg->n_layers * cfg->n_kv_heads * cfg->head_dim * 4 * block;
        /* default: 40% of the memory available now, at most 4 GiB (vLLM's CPU
         * backend reserves 4 GiB by default) */
        int64_t budget = a.kv_cache_memory_bytes;
        if (!budget) {
            long long avail_kb = 0;
            FILE *mi = fopen("/proc/meminfo", "r");
            char line[256];
            while (mi && fgets(line, sizeof line, mi))
                if (sscanf(line, "MemAvailable: %lld kB", &avail_kb) == 1) break;
            if (mi) fclose(mi);
            budget = avail_kb > 0 ? avail_kb * 1024 / 10 * 4 : (1LL << 30);
            if (budget > (4LL << 30)) budget = 4LL << 30;
        }
        blocks = budget / per_block;
    }
    int max_seqs = a.max_num_seqs ? a.max_num_seqs : 256;
    int max_batched = a.max_num_batched_tokens ? a.max_num_batched_tokens : 2048;
    if (blocks < 2 || blocks > INT32_MAX) {
        fprintf(stderr, "cvllm engine-core: %lld KV blocks is not a usable cache size\n", (long long)blocks);
        mr_model_free(&model);
        return 1;
    }
    if (blocks * block < max_model_len) {
        /* as vLLM: a request of max_model_len tokens must fit in the cache */
        fprintf(stderr,
                "cvllm engine-core: the KV cache holds %lld tokens (%lld blocks of %d), fewer than max_model_len "
                "%lld; raise --num-gpu-blocks-override / --kv-cache-memory-bytes or lower --max-model-len\n",
                (long long)(blocks * block), (long long)blocks, block, (long long)max_model_len);
        mr_model_free(&model);
        return 1;
    }
    mr_opts_t mo;
    mr_opts_default(&mo);
    mo.n_threads = a.threads;
    mo.block_size = block;
    mo.num_blocks = (int32_t)blocks;
    mo.max_batch_tokens = max_batched;
    mo.max_seqs = max_seqs;
    mr_runner_t *runner = NULL;
    if (mr_runner_new(model, &mo, &runner, err, sizeof err)) {
        fprintf(stderr, "cvllm engine-core: %s\n", err);
        mr_model_free(&model);
        return 1;
    }
    adapter_t ad = {.r = runner, .max_tokens = max_batched, .max_seqs = max_seqs};
    ad.seq_start = calloc((size_t)max_seqs + 1, sizeof *ad.seq_start);
    ad.tokens = calloc((size_t)max_batched, sizeof *ad.tokens);
    ad.positions = calloc((size_t)max_batched, sizeof *ad.positions);
    ad.n_blocks = calloc((size_t)max_seqs, sizeof *ad.n_blocks);
    ad.tables = calloc((size_t)max_seqs, sizeof *ad.tables);
    shm_registry_t *reg = NULL;
    int rc = 1;
    if (!ad.seq_start || !ad.tokens || !ad.positions || !ad.n_blocks || !ad.tables) goto out;
    if (!a.disable_log_stats && getenv("PROMETHEUS_MULTIPROC_DIR")) {
        shm_registry_opts_t ro = {0};
        int r = shm_registry_new(&ro, &reg);
        if (r) {
            fprintf(stderr, "cvllm engine-core: metrics: %s\n", shm_strerror(r));
            goto out;
        }
    }
    if (reg) {
        eng_cache_config_t cc = {.block_size = block, .enable_prefix_caching = a.enable_prefix_caching,
                                 .gpu_memory_utilization = a.gpu_memory_utilization, .num_gpu_blocks = blocks,
                                 .num_gpu_blocks_override = a.num_gpu_blocks_override, .cache_dtype = "auto"};
        int r = eng_metrics_cache_config(reg, a.engine_index, &cc);
        if (r) {
            fprintf(stderr, "cvllm engine-core: metrics: %s\n", shm_strerror(r));
            goto out;
        }
    }
    eng_opts_t eo = {
        .endpoint = a.engine_endpoint, .engine_index = a.engine_index,
        .model_name = a.served_model_name ? a.served_model_name : a.model,
        .sched = {.max_num_batched_tokens = max_batched, .max_num_seqs = max_seqs,
                  .long_prefill_token_threshold = a.long_prefill_token_threshold, .max_model_len = max_model_len,
                  .block_size = block, .num_blocks = (int32_t)blocks, .max_requests = max_seqs * 4 + 64,
                  .enable_prefix_caching = a.enable_prefix_caching},
        .eos_ids = cfg->eos_token_ids, .n_eos = cfg->n_eos, .runner = {.ctx = &ad, .vocab_size = cfg->vocab_size, .forward = adapter_forward},
        .metrics = reg, .seed = (uint64_t)a.seed, .log_level = strcmp(a.log_level, "debug") ? 1 : 2};
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    fprintf(stderr, "cvllm engine-core %d: %s, %lld KV blocks of %d tokens, max_model_len %lld, listening on %s\n",
            a.engine_index, a.model, (long long)blocks, block, (long long)max_model_len, a.engine_endpoint);
    int r = eng_run(&eo, &g_stop);
    if (r) fprintf(stderr, "cvllm engine-core: %d\n", r);
    rc = r ? 1 : 0;
out:
    shm_registry_destroy(&reg);
    free(ad.seq_start);
    free(ad.tokens);
    free(ad.positions);
    free(ad.n_blocks);
    free(ad.tables);
    mr_runner_destroy(&runner);
    mr_model_free(&model);
    return rc;
}
