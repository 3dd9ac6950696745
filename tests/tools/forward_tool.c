/* forward_tool: drives the model runner for tests and benchmarks.
 *
 *   forward_tool MODEL [opts] script  < SCRIPT
 *       Runs scripted batches and prints logits. Script lines:
 *         step [all]                          start a batch (all: logits for every token)
 *         seq POS0 B0,B1,... T0,T1,...        add a sequence: first position, block table, tokens
 *         end                                 run the batch
 *       Output per batch: "step <i> rows <r> vocab <v>", then r lines of %.9g logits.
 *   forward_tool MODEL [opts] generate N T0,T1,...
 *       Greedy generation of N tokens after the prompt; prints the new token ids.
 *       --chunk C prefills in chunks of C tokens; --shuffle uses a scrambled block table.
 *   forward_tool MODEL [opts] bench
 *       Prefill tokens/s (512-token prompt), decode tokens/s at batch 1/8/32,
 *       memcpy bandwidth and the batch-1 decode roofline ratio.
 *   opts: --threads N  --blocks NB  --block-size BS  --max-tokens T
 *         --q8 (8-bit activations for Q4_0/Q4_1/Q8_0 weights, mr_opts_t.q8_activations)
 * Exit status: 0 ok, 1 error (message on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "k_ops.h"
#include "model_runner.h"

#define MAX_SEQS 64

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_list(char *s, int32_t *out, int max) {
    int n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n >= max) return -1;
        out[n++] = (int32_t)strtol(tok, NULL, 10);
    }
    return n;
}

static int32_t argmax(const float *v, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int32_t)best;
}

/* --- script ------------------------------------------------------------------------------ */

static int run_script(mr_runner_t *r, int64_t V) {
    const int32_t T = mr_runner_opts(r)->max_batch_tokens;
    const int32_t NB = mr_runner_opts(r)->num_blocks;
    int32_t *tokens = malloc(sizeof(int32_t) * (size_t)T), *pos = malloc(sizeof(int32_t) * (size_t)T);
    int32_t *tables = malloc(sizeof(int32_t) * (size_t)NB * MAX_SEQS);
    float *logits = malloc(sizeof(float) * (size_t)T * (size_t)V);
    char *line = malloc(1 << 20);
    if (!tokens || !pos || !tables || !logits || !line) return 1;
    int32_t seq_start[MAX_SEQS + 1], nblk[MAX_SEQS];
    const int32_t *bts[MAX_SEQS];
    int ns = 0, step = 0, all = 0, rc = 0;
    while (fgets(line, 1 << 20, stdin)) {
        char *save, *w = strtok_r(line, " \t\n", &save);
        if (!w || w[0] == '#') continue;
        if (!strcmp(w, "step")) {
            char *a = strtok_r(NULL, " \t\n", &save);
            all = a && !strcmp(a, "all");
            ns = 0;
            seq_start[0] = 0;
        } else if (!strcmp(w, "seq")) {
            char *p0 = strtok_r(NULL, " \t\n", &save), *bl = strtok_r(NULL, " \t\n", &save);
            char *tk = strtok_r(NULL, " \t\n", &save);
            if (!p0 || !bl || !tk || ns >= MAX_SEQS) {
                fprintf(stderr, "bad seq line\n");
                return 1;
            }
            int32_t *bt = tables + (size_t)ns * NB;
            nblk[ns] = parse_list(bl, bt, NB);
            int nt = parse_list(tk, tokens + seq_start[ns], T - seq_start[ns]);
            if (nblk[ns] < 0 || nt < 0) {
                fprintf(stderr, "seq line too long\n");
                return 1;
            }
            for (int i = 0; i < nt; i++) pos[seq_start[ns] + i] = (int32_t)strtol(p0, NULL, 10) + i;
            bts[ns] = bt;
            seq_start[ns + 1] = seq_start[ns] + nt;
            ns++;
        } else if (!strcmp(w, "end")) {
            mr_batch_t b = {ns, seq_start, tokens, pos, bts, nblk, all};
            if ((rc = mr_runner_forward(r, &b, logits))) {
                fprintf(stderr, "forward failed: %s (%d)\n", eng_strerror(rc), rc);
                printf("step %d error %d\n", step++, rc);
                continue;
            }
            const int64_t rows = mr_batch_n_out(&b);
            printf("step %d rows %lld vocab %lld\n", step++, (long long)rows, (long long)V);
            for (int64_t i = 0; i < rows; i++) {
                for (int64_t j = 0; j < V; j++) printf(j ? " %.9g" : "%.9g", logits[i * V + j]);
                putchar('\n');
            }
        }
    }
    free(tokens), free(pos), free(tables), free(logits), free(line);
    return 0;
}

/* --- generation ----------------------------------------------------------------------------- */

static int generate(mr_runner_t *r, int64_t V, int n_new, char *prompt_s, int chunk, int shuffle) {
    const mr_opts_t *o = mr_runner_opts(r);
    int32_t *prompt = malloc(sizeof(int32_t) * 65536), *table = malloc(sizeof(int32_t) * (size_t)o->num_blocks);
    float *logits = malloc(sizeof(float) * (size_t)V);
    if (!prompt || !table || !logits) return 1;
    int np = parse_list(prompt_s, prompt, 65536);
    if (np < 1) return 1;
    for (int32_t i = 0; i < o->num_blocks; i++) table[i] = i;
    if (shuffle) /* deterministic scramble: reversed order, odd blocks first */
        for (int32_t i = 0; i < o->num_blocks; i++) table[i] = (o->num_blocks - 1 - i * 2 % o->num_blocks + o->num_blocks) % o->num_blocks;
    if (chunk <= 0 || chunk > o->max_batch_tokens) chunk = o->max_batch_tokens;
    int32_t start[2] = {0, 0}, nb = o->num_blocks, pos[65536];
    const int32_t *bt[1] = {table};
    for (int i = 0; i < np + n_new; i++) pos[i] = i;
    for (int off = 0; off < np; off += chunk) {
        start[1] = np - off < chunk ? np - off : chunk;
        mr_batch_t b = {1, start, prompt + off, pos + off, bt, &nb, false};
        int rc = mr_runner_forward(r, &b, logits);
        if (rc) {
            fprintf(stderr, "forward failed: %d\n", rc);
            return 1;
        }
    }
    for (int i = 0; i < n_new; i++) {
        int32_t tok = argmax(logits, V);
        printf(i ? " %d" : "%d", tok);
        if (i == n_new - 1) break;
        start[1] = 1;
        mr_batch_t b = {1, start, &tok, pos + np + i, bt, &nb, false};
        int rc = mr_runner_forward(r, &b, logits);
        if (rc) {
            fprintf(stderr, "forward failed: %d\n", rc);
            return 1;
        }
    }
    putchar('\n');
    free(prompt), free(table), free(logits);
    return 0;
}

/* --- bench ------------------------------------------------------------------------------------ */

typedef struct {
    char *dst;
    const char *src;
    size_t n;
} copy_args_t;

static void copy_task(void *arg, int ith, int nth) {
    const copy_args_t *a = arg;
    int64_t lo, hi;
    k_split((int64_t)a->n, ith, nth, &lo, &hi);
    memcpy(a->dst + lo, a->src + lo, (size_t)(hi - lo));
}

/* Copy bandwidth (bytes read + bytes written per second) of a 512 MiB memcpy
 * split across the pool's threads; best of 5. */
static double copy_bandwidth(int threads) {
    const size_t n = (size_t)512 << 20;
    char *a = malloc(n), *b = malloc(n);
    if (!a || !b) return 0;
    memset(a, 1, n);
    memset(b, 2, n);
    k_pool_t *p = k_pool_new(threads);
    copy_args_t ca = {b, a, n};
    double best = 1e30;
    for (int i = 0; i < 5; i++) {
        double t0 = now();
        k_pool_run(p, copy_task, &ca);
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    k_pool_destroy(&p);
    free(a), free(b);
    return 2.0 * (double)n / best;
}

/* Fixed scalar work per chunk, to see how many cores the OS really gives us. */
static void spin_task(void *arg, int ith, int nth) {
    volatile double x = 1.0;
    const long n = *(const long *)arg / nth;
    for (long i = 0; i < n; i++) x = x * 1.0000001;
    (void)ith;
}

/* Speed-up of `threads` pool threads over 1 on a fixed compute loop (ideally
 * = threads; lower when other processes hold the cores). */
static double core_availability(int threads) {
    long work = 200000000;
    k_pool_t *p1 = k_pool_new(1), *pn = k_pool_new(threads);
    double t0 = now();
    k_pool_run(p1, spin_task, &work);
    double t1 = now();
    k_pool_run(pn, spin_task, &work);
    double t2 = now();
    k_pool_destroy(&p1);
    k_pool_destroy(&pn);
    return (t1 - t0) / (t2 - t1);
}

static int bench(mr_model_t *m, mr_runner_t *r, int64_t V) {
    const mr_opts_t *o = mr_runner_opts(r);
    const int P = 512, DEC_PROMPT = 32, STEPS = 32;
    int32_t *toks = malloc(sizeof(int32_t) * P), *pos = malloc(sizeof(int32_t) * P);
    float *logits = malloc(sizeof(float) * (size_t)V * 64);
    int32_t *tables = malloc(sizeof(int32_t) * (size_t)o->num_blocks);
    if (!toks || !pos || !logits || !tables) return 1;
    uint32_t seed = 12345;
    for (int i = 0; i < P; i++) {
        seed = seed * 1664525u + 1013904223u;
        toks[i] = (int32_t)((seed >> 8) % (uint32_t)V);
        pos[i] = i;
    }
    for (int32_t i = 0; i < o->num_blocks; i++) tables[i] = i;
    printf("threads %d, block_size %d, num_blocks %d, activations %s\n", o->n_threads > 0 ? o->n_threads : k_cpu_count(),
           o->block_size, o->num_blocks, o->q8_activations ? "q8" : "f32");
    /* Prefill: one sequence, 512 tokens, one forward call. Best of 3. */
    int32_t start[MAX_SEQS + 1] = {0, P}, nb[MAX_SEQS];
    const int32_t *bt[MAX_SEQS];
    nb[0] = o->num_blocks;
    bt[0] = tables;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        mr_batch_t b = {1, start, toks, pos, bt, nb, false};
        double t0 = now();
        if (mr_runner_forward(r, &b, logits)) return 1;
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("prefill %d tokens: %.1f tokens/s (%.3f s)\n", P, P / best, best);
    /* Decode: B sequences, each with its own blocks; prefill 32 tokens, then
     * 3 rounds of 32 timed steps; the best round counts. */
    const int ROUNDS = 3;
    double dec1 = 0;
    const int batches[] = {1, 8, 32};
    for (int bi = 0; bi < 3; bi++) {
        const int B = batches[bi];
        const int per = (DEC_PROMPT + ROUNDS * STEPS + o->block_size - 1) / o->block_size;
        if (B * per > o->num_blocks) {
            fprintf(stderr, "not enough KV blocks for batch %d\n", B);
            return 1;
        }
        int32_t dt_[MAX_SEQS], dp[MAX_SEQS];
        for (int s = 0; s < B; s++) {
            bt[s] = tables + s * per;
            nb[s] = per;
            start[0] = 0;
            start[1] = DEC_PROMPT;
            mr_batch_t b = {1, start, toks + s, pos, bt + s, nb + s, false};
            if (mr_runner_forward(r, &b, logits)) return 1;
            dt_[s] = argmax(logits, V);
        }
        for (int s = 0; s <= B; s++) start[s] = s;
        double best_dt = 1e30;
        for (int round = 0; round < ROUNDS; round++) {
            double t0 = now();
            for (int step = 0; step < STEPS; step++) {
                for (int s = 0; s < B; s++) dp[s] = DEC_PROMPT + round * STEPS + step;
                mr_batch_t b = {B, start, dt_, dp, bt, nb, false};
                if (mr_runner_forward(r, &b, logits)) return 1;
                for (int s = 0; s < B; s++) dt_[s] = argmax(logits + (size_t)s * V, V);
            }
            double dt = now() - t0;
            if (dt < best_dt) best_dt = dt;
        }
        printf("decode batch %d: %.1f tokens/s (%.2f ms/step)\n", B, B * STEPS / best_dt, best_dt / STEPS * 1e3);
        if (B == 1) dec1 = STEPS / best_dt;
    }
    const double bwn = copy_bandwidth(o->n_threads), bw1 = copy_bandwidth(1), bw = bwn > bw1 ? bwn : bw1;
    const double wb = (double)mr_model_weight_bytes(m);
    const int nthr = o->n_threads > 0 ? o->n_threads : k_cpu_count();
    printf("memcpy bandwidth (read+write): %.2f GB/s with %d thread(s), %.2f GB/s with 1 thread; roofline uses the larger\n",
           bwn / 1e9, nthr, bw1 / 1e9);
    printf("core availability: %d threads ran %.2fx faster than 1 on a fixed compute loop\n", nthr, core_availability(nthr));
    printf("weight bytes per decode token: %.1f MB\n", wb / 1e6);
    printf("roofline batch-1 decode: %.1f tokens/s; measured %.1f tokens/s = %.0f%% of roofline\n", bw / wb, dec1,
           100.0 * dec1 / (bw / wb));
    free(toks), free(pos), free(logits), free(tables);
    return 0;
}

/* --- main ------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: forward_tool MODEL [--threads N] [--blocks NB] [--block-size BS] [--max-tokens T] "
                        "[--chunk C] [--shuffle] [--q8] script|generate N IDS|bench\n");
        return 1;
    }
    mr_opts_t o;
    mr_opts_default(&o);
    int chunk = 0, shuffle = 0, i = 2;
    for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
        if (!strcmp(argv[i], "--shuffle")) { shuffle = 1; continue; }
        if (!strcmp(argv[i], "--q8")) { o.q8_activations = true; continue; }
        if (i + 1 >= argc) return 1;
        const int v = atoi(argv[++i]);
        if (!strcmp(argv[i - 1], "--threads")) o.n_threads = v;
        else if (!strcmp(argv[i - 1], "--blocks")) o.num_blocks = v;
        else if (!strcmp(argv[i - 1], "--block-size")) o.block_size = v;
        else if (!strcmp(argv[i - 1], "--max-tokens")) o.max_batch_tokens = v;
        else if (!strcmp(argv[i - 1], "--chunk")) chunk = v;
        else { fprintf(stderr, "unknown option %s\n", argv[i - 1]); return 1; }
    }
    if (i >= argc) return 1;
    char err[512] = "";
    mr_model_t *m = NULL;
    int rc = mr_model_load(argv[1], &m, err, sizeof err);
    if (rc) {
        fprintf(stderr, "load failed: %s\n", err);
        return 1;
    }
    mr_runner_t *r = NULL;
    if ((rc = mr_runner_new(m, &o, &r, err, sizeof err))) {
        fprintf(stderr, "runner: %s\n", err);
        mr_model_free(&m);
        return 1;
    }
    const int64_t V = mr_model_config(m)->vocab_size;
    int res = 1;
    if (!strcmp(argv[i], "script")) res = run_script(r, V);
    else if (!strcmp(argv[i], "generate") && i + 2 < argc) res = generate(r, V, atoi(argv[i + 1]), argv[i + 2], chunk, shuffle);
    else if (!strcmp(argv[i], "bench")) res = bench(m, r, V);
    else fprintf(stderr, "unknown command %s\n", argv[i]);
    mr_runner_destroy(&r);
    mr_model_free(&m);
    return res;
}
