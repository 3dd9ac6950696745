/* Test driver for shm/: executes a script of JSON-array commands, one per
 * line on stdin, with the real shm API, so Python tests can make C processes
 * write metrics files and compare them with prometheus_client.
 *   ["registry", dir, id|null]          open a registry and make it current (one per
 *                                       simulated process; families bind to the current one)
 *   ["family", type, name, help, [labels], mode, [buckets]|null]  -> prints family index
 *   ["metric", fam, [values]]           -> prints metric index
 *   ["inc"|"set"|"ginc"|"observe", metric, value]  value: number or "nan"/"inf"/"-inf"
 *   ["fork_child_inc", metric, value]    fork; the child increments and exits
 *   ["set_id", id]  ["mark_dead", dir, id]  ["compact", dir, id]
 *   ["scrape", dir, "text"|"openmetrics"]   prints the exposition then "\n#END"
 *   ["sleep_ms", n]  ["hammer", metric, n]  (n counter increments)
 *   ["format", ["<hex bits>", ...]]      floatToGoString of each double, one per line
 *   ["hammer_grow", metric, n, fam]       (n increments, a new series of fam every 500)
 * Errors print "ERR <code> <message>" and continue. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm.h"

static shm_registry_t *regs[256], *reg;
static int nreg;
static shm_family_t *fams[4096];
static shm_metric_t *mets[65536];
static int nf, nm, fbase, mbase; /* indices in commands are relative to the current registry */

static double num(const cJSON *v) {
    if (cJSON_IsNumber(v)) return v->valuedouble;
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "nan")) return NAN;
        if (!strcmp(v->valuestring, "inf")) return INFINITY;
        if (!strcmp(v->valuestring, "-inf")) return -INFINITY;
        return strtod(v->valuestring, NULL);
    }
    return 0;
}

static const char **strs(const cJSON *a, int *n) {
    *n = cJSON_GetArraySize(a);
    const char **s = calloc((size_t)*n + 1, sizeof *s);
    for (int i = 0; i < *n; i++) s[i] = cJSON_GetArrayItem(a, i)->valuestring;
    return s;
}

static void run(cJSON *c) {
    const char *op = cJSON_GetArrayItem(c, 0)->valuestring;
    cJSON *a1 = cJSON_GetArrayItem(c, 1), *a2 = cJSON_GetArrayItem(c, 2);
    int rc = 0;
    if (!strcmp(op, "registry")) {
        shm_registry_opts_t o = {.dir = a1->valuestring, .process_id = cJSON_IsString(a2) ? a2->valuestring : NULL};
        rc = shm_registry_new(&o, &reg);
        if (!rc) {
            regs[nreg++] = reg;
            fbase = nf;
            mbase = nm;
            printf("%s\n", shm_registry_id(reg));
        }
    } else if (!strcmp(op, "family")) {
        static const char *const types[] = {"counter", "gauge", "histogram", "summary"};
        shm_family_desc_t d = {0};
        for (int i = 0; i < 4; i++)
            if (!strcmp(a1->valuestring, types[i])) d.type = (shm_type_t)i;
        d.name = a2->valuestring;
        d.help = cJSON_GetArrayItem(c, 3)->valuestring;
        int n;
        const char **ln = strs(cJSON_GetArrayItem(c, 4), &n);
        d.label_names = ln;
        d.n_labels = (size_t)n;
        shm_mode_t mode = SHM_MODE_ALL;
        shm_mode_parse(cJSON_GetArrayItem(c, 5)->valuestring, &mode);
        d.mode = mode;
        cJSON *b = cJSON_GetArrayItem(c, 6);
        double bk[64];
        if (cJSON_IsArray(b)) {
            d.n_buckets = (size_t)cJSON_GetArraySize(b);
            for (size_t i = 0; i < d.n_buckets; i++) bk[i] = num(cJSON_GetArrayItem(b, (int)i));
            d.buckets = bk;
        }
        shm_family_t *f;
        rc = shm_family_new(reg, &d, &f);
        if (!rc) {
            fams[nf] = f;
            printf("%d\n", nf++ - fbase);
        }
        free(ln);
    } else if (!strcmp(op, "metric")) {
        int n;
        const char **v = strs(a2, &n);
        shm_metric_t *m;
        rc = shm_metric_get(fams[fbase + a1->valueint], n ? v : NULL, &m);
        if (!rc) {
            mets[nm] = m;
            printf("%d\n", nm++ - mbase);
        }
        free(v);
    } else if (!strcmp(op, "inc")) {
        shm_counter_inc(mets[mbase + a1->valueint], num(a2));
    } else if (!strcmp(op, "set")) {
        shm_gauge_set(mets[mbase + a1->valueint], num(a2));
    } else if (!strcmp(op, "ginc")) {
        shm_gauge_inc(mets[mbase + a1->valueint], num(a2));
    } else if (!strcmp(op, "observe")) {
        shm_metric_t *m = mets[mbase + a1->valueint];
        if (m->type == SHM_SUMMARY) shm_summary_observe(m, num(a2));
        else shm_histogram_observe(m, num(a2));
    } else if (!strcmp(op, "hammer")) {
        shm_metric_t *m = mets[mbase + a1->valueint];
        long n = (long)num(a2);
        for (long i = 0; i < n; i++) shm_counter_inc(m, 1.0);
    } else if (!strcmp(op, "hammer_grow")) {
        /* n increments of metric a1 while creating a new series of family
         * a3 (one label) every 500 increments: the file grows under load */
        shm_metric_t *m = mets[mbase + a1->valueint];
        long n = (long)num(a2);
        shm_family_t *f = fams[fbase + cJSON_GetArrayItem(c, 3)->valueint];
        for (long i = 0; i < n; i++) {
            shm_counter_inc(m, 1.0);
            if (i % 500 == 0) {
                char v[32];
                snprintf(v, sizeof v, "s%ld", i);
                const char *lv[] = {v};
                shm_metric_t *x;
                if (shm_metric_get(f, lv, &x) == 0) shm_counter_inc(x, 1.0);
            }
        }
    } else if (!strcmp(op, "fork_child_inc")) {
        fflush(stdout);
        pid_t p = fork();
        if (p == 0) {
            shm_counter_inc(mets[mbase + a1->valueint], num(a2));
            _exit(0);
        }
        int st;
        waitpid(p, &st, 0);
        printf("%d\n", (int)p);
    } else if (!strcmp(op, "set_id")) {
        rc = shm_registry_set_id(reg, a1->valuestring);
    } else if (!strcmp(op, "mark_dead")) {
        rc = shm_mark_process_dead(a1->valuestring, a2->valuestring);
    } else if (!strcmp(op, "compact")) {
        rc = shm_compact_dead(a1->valuestring, a2->valuestring);
    } else if (!strcmp(op, "scrape")) {
        shm_collector_t *col;
        shm_collector_opts_t o = {.dir = a1->valuestring};
        rc = shm_collector_new(&o, &col);
        if (!rc) {
            shm_buf_t out = {0};
            rc = shm_collector_scrape(col, strcmp(a2->valuestring, "openmetrics") ? SHM_FORMAT_TEXT
                                                                                 : SHM_FORMAT_OPENMETRICS,
                                      NULL, 0, &out, NULL);
            if (!rc) fwrite(out.data, 1, out.len, stdout);
            printf("\n#END\n");
            shm_buf_free(&out);
            shm_collector_destroy(&col);
        }
    } else if (!strcmp(op, "format")) {
        /* ["format", ["<16 hex digits of the double's bits>", ...]] */
        int n = cJSON_GetArraySize(a1);
        for (int i = 0; i < n; i++) {
            uint64_t u = strtoull(cJSON_GetArrayItem(a1, i)->valuestring, NULL, 16);
            double d;
            memcpy(&d, &u, 8);
            char buf[64];
            shm_format_double(d, buf);
            printf("%s\n", buf);
        }
    } else if (!strcmp(op, "sleep_ms")) {
        struct timespec ts = {0, (long)num(a1) * 1000000L};
        nanosleep(&ts, NULL);
    } else {
        printf("ERR 0 unknown op %s\n", op);
    }
    if (rc) printf("ERR %d %s\n", rc, shm_strerror(rc));
    fflush(stdout);
}

int main(void) {
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, stdin) > 0) {
        cJSON *c = cJSON_Parse(line);
        if (!c || !cJSON_IsArray(c)) {
            printf("ERR 0 bad command\n");
            fflush(stdout);
            cJSON_Delete(c);
            continue;
        }
        run(c);
        cJSON_Delete(c);
    }
    free(line);
    for (int i = 0; i < nreg; i++) shm_registry_destroy(&regs[i]);
    return 0;
}
