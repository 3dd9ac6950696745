/* `cvllm metrics DIR`: prints the merged exposition of a multiprocess metrics
 * directory, as GET /metrics would serve it. Read-only: it records no
 * self-metrics into the directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "shm.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: cvllm metrics DIR [--format text|openmetrics] [--name SAMPLE]... [--stats]\n"
            "  Merges every *.db file of DIR (a PROMETHEUS_MULTIPROC_DIR) and prints the\n"
            "  exposition: Prometheus text 0.0.4 (default) or OpenMetrics 1.0.0.\n"
            "  --name restricts the output to families with these sample names.\n"
            "  --stats prints files read/skipped and the scrape time to stderr.\n");
}

int cmd_metrics(int argc, char **argv) {
    const char *dir = NULL;
    shm_format_t fmt = SHM_FORMAT_TEXT;
    const char **names = calloc((size_t)argc, sizeof *names);
    size_t n_names = 0;
    int stats = 0;
    if (!names) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(names);
            return 0;
        } else if (!strcmp(a, "--format") && i + 1 < argc) {
            const char *f = argv[++i];
            if (!strcmp(f, "text")) fmt = SHM_FORMAT_TEXT;
            else if (!strcmp(f, "openmetrics")) fmt = SHM_FORMAT_OPENMETRICS;
            else {
                fprintf(stderr, "cvllm metrics: unknown format '%s' (text or openmetrics)\n", f);
                free(names);
                return 2;
            }
        } else if (!strcmp(a, "--name") && i + 1 < argc) {
            names[n_names++] = argv[++i];
        } else if (!strcmp(a, "--stats")) {
            stats = 1;
        } else if (a[0] == '-' || dir) {
            fprintf(stderr, "cvllm metrics: unexpected argument '%s'\n", a);
            usage(stderr);
            free(names);
            return 2;
        } else {
            dir = a;
        }
    }
    if (!dir) {
        usage(stderr);
        free(names);
        return 2;
    }
    shm_collector_t *c;
    shm_collector_opts_t o = {.dir = dir};
    int rc = shm_collector_new(&o, &c);
    if (rc) {
        fprintf(stderr, "cvllm metrics: %s: %s\n", dir, shm_strerror(rc));
        free(names);
        return 1;
    }
    shm_buf_t out = {0};
    shm_scrape_stats_t st;
    rc = shm_collector_scrape(c, fmt, names, n_names, &out, &st);
    if (rc) {
        fprintf(stderr, "cvllm metrics: %s: %s\n", dir, shm_strerror(rc));
    } else {
        fwrite(out.data, 1, out.len, stdout);
        if (stats)
            fprintf(stderr, "files_read=%llu files_skipped=%llu entries=%llu seconds=%.6f\n",
                    (unsigned long long)st.files_read, (unsigned long long)st.files_skipped,
                    (unsigned long long)st.entries, st.seconds);
    }
    shm_buf_free(&out);
    shm_collector_destroy(&c);
    free(names);
    return rc ? 1 : 0;
}
