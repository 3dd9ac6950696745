/* Benchmarks for shm/ (run by scripts/bench-metrics; not a test):
 *   bench_shm hot [N]          ns per hot-path operation, single thread
 *   bench_shm scrape DIR [N]   seconds per merge+render of DIR (in-process,
 *                              one collector reused as /metrics does) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const double ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
                              1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};

static shm_metric_t *mk(shm_registry_t *r, shm_type_t t, shm_mode_t mode, const char *name) {
    const char *ln[] = {"model_name", "engine"}, *lv[] = {"m", "0"};
    shm_family_desc_t d = {.type = t, .name = name, .help = "bench", .label_names = ln, .n_labels = 2, .mode = mode};
    if (t == SHM_HISTOGRAM) d.buckets = ttft, d.n_buckets = sizeof ttft / sizeof ttft[0];
    shm_family_t *f;
    shm_metric_t *m;
    if (shm_family_new(r, &d, &f) || shm_metric_get(f, lv, &m)) {
        fprintf(stderr, "bench: cannot create %s\n", name);
        exit(1);
    }
    return m;
}

static int hot(long n) {
    char dir[] = "/tmp/cvllm-bench-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    shm_registry_t *r;
    shm_registry_opts_t o = {.dir = dir};
    if (shm_registry_new(&o, &r)) return 1;
    shm_metric_t *c = mk(r, SHM_COUNTER, 0, "c"), *g = mk(r, SHM_GAUGE, SHM_MODE_ALL, "g"),
                 *gm = mk(r, SHM_GAUGE, SHM_MODE_MOSTRECENT, "gm"), *h = mk(r, SHM_HISTOGRAM, 0, "h"),
                 *s = mk(r, SHM_SUMMARY, 0, "s");
    double vals[1024];
    unsigned x = 12345;
    for (int i = 0; i < 1024; i++) {
        x = x * 1103515245u + 12345u;
        vals[i] = exp((double)(x >> 8) / (1 << 24) * 14 - 7); /* 1e-3 .. 1e3, log-uniform */
    }
    double t0 = now();
    for (long i = 0; i < n; i++) shm_counter_inc(c, 1.0);
    double t1 = now();
    for (long i = 0; i < n; i++) shm_gauge_set(g, (double)i);
    double t2 = now();
    for (long i = 0; i < n / 4; i++) shm_gauge_set(gm, (double)i);
    double t3 = now();
    for (long i = 0; i < n; i++) shm_histogram_observe(h, vals[i & 1023]);
    double t4 = now();
    for (long i = 0; i < n; i++) shm_summary_observe(s, vals[i & 1023]);
    double t5 = now();
    shm_metric_t *cs[8];
    for (int i = 0; i < 8; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "c%d", i);
        cs[i] = mk(r, SHM_COUNTER, 0, nm);
    }
    for (long i = 0; i < n; i++) shm_counter_inc(cs[i & 7], 1.0);
    double t6 = now();
    for (long i = 0; i < n; i++) shm_counter_inc_local(c, 1.0);
    double t7 = now();
    for (long i = 0; i < n; i++) shm_histogram_observe_local(h, vals[i & 1023]);
    double t8 = now();
    printf("counter_inc_ns %.2f\n", (t1 - t0) / n * 1e9);
    printf("gauge_set_ns %.2f\n", (t2 - t1) / n * 1e9);
    printf("gauge_set_mostrecent_ns %.2f\n", (t3 - t2) / (n / 4) * 1e9);
    printf("histogram_observe_22_ns %.2f\n", (t4 - t3) / n * 1e9);
    printf("summary_observe_ns %.2f\n", (t5 - t4) / n * 1e9);
    printf("counter_inc_8_series_ns %.2f\n", (t6 - t5) / n * 1e9);
    printf("counter_inc_local_ns %.2f\n", (t7 - t6) / n * 1e9);
    printf("histogram_observe_local_22_ns %.2f\n", (t8 - t7) / n * 1e9);
    if (shm_metric_value(c) != 2.0 * (double)n) return 1;
    shm_registry_destroy(&r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) ? 1 : 0;
}

static int scrape(const char *dir, int n) {
    shm_collector_t *c;
    shm_collector_opts_t o = {.dir = dir};
    if (shm_collector_new(&o, &c)) return 1;
    shm_buf_t out = {0};
    shm_scrape_stats_t st;
    if (shm_collector_scrape(c, SHM_FORMAT_TEXT, NULL, 0, &out, &st)) return 1; /* warm */
    double best = 1e9, sum = 0, *ts = calloc((size_t)n, sizeof *ts);
    for (int i = 0; i < n; i++) {
        out.len = 0;
        double t0 = now();
        shm_collector_scrape(c, SHM_FORMAT_TEXT, NULL, 0, &out, &st);
        double dt = now() - t0;
        sum += dt;
        ts[i] = dt;
        if (dt < best) best = dt;
    }
    for (int i = 1; i < n; i++) /* insertion sort for the median */
        for (int j = i; j > 0 && ts[j - 1] > ts[j]; j--) {
            double t = ts[j]; ts[j] = ts[j - 1]; ts[j - 1] = t;
        }
    printf("scrape_median_s %.9f\n", ts[n / 2]);
    free(ts);
    printf("scrape_mean_s %.9f\nscrape_min_s %.9f\nfiles %llu\nentries %llu\nbytes %zu\n", sum / n, best,
           (unsigned long long)st.files_read, (unsigned long long)st.entries, out.len);
    shm_buf_free(&out);
    shm_collector_destroy(&c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "hot")) return hot(argc > 2 ? atol(argv[2]) : 20000000L);
    if (argc >= 3 && !strcmp(argv[1], "scrape")) return scrape(argv[2], argc > 3 ? atoi(argv[3]) : 200);
    fprintf(stderr, "usage: bench_shm hot [N] | scrape DIR [N]\n");
    return 2;
}
