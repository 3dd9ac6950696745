/* Unit tests for shm/: float formatting, JSON keys, file layout, growth,
 * merge per gauge mode, skipped files, negotiation, compaction, fork and
 * thread safety. Each test runs in a fresh temporary directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../check.h"
#include "shm_int.h"




#define CHECK_RC(expr)                                                                        \
    do {                                                                                      \
        int rc_ = (expr);                                                                     \
        if (rc_) {                                                                            \
            fprintf(stderr, "%s:%d: %s = %d (%s)\n", __FILE__, __LINE__, #expr, rc_, shm_strerror(rc_)); \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

static char dir[256];

static void fresh_dir(void) {
    if (dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) {
        }
    }
    snprintf(dir, sizeof dir, "/tmp/cvllm-test-shm-XXXXXX");
    if (!mkdtemp(dir)) abort();
}

static char *scrape(shm_format_t fmt, shm_scrape_stats_t *st) {
    shm_collector_t *c;
    shm_collector_opts_t o = {.dir = dir, .log = NULL};
    static shm_buf_t out;
    shm_buf_free(&out);
    if (shm_collector_new(&o, &c)) return strdup("<collector failed>");
    int rc = shm_collector_scrape(c, fmt, NULL, 0, &out, st);
    shm_collector_destroy(&c);
    if (rc) return strdup("<scrape failed>");
    return out.data ? out.data : (char *)"";
}

static shm_registry_t *reg_new(const char *id) {
    shm_registry_t *r = NULL;
    shm_registry_opts_t o = {.dir = dir, .process_id = id};
    CHECK_RC(shm_registry_new(&o, &r));
    return r;
}

static shm_metric_t *metric(shm_registry_t *r, shm_type_t t, shm_mode_t mode, const char *name, const char *help,
                            const char *label, const char *value) {
    shm_family_t *f;
    shm_family_desc_t d = {.type = t, .name = name, .help = help, .mode = mode};
    static const double b[] = {0.1, 1, 10};
    if (t == SHM_HISTOGRAM) d.buckets = b, d.n_buckets = 3;
    const char *ln[1] = {label}, *lv[1] = {value};
    if (label) d.label_names = ln, d.n_labels = 1;
    shm_metric_t *m = NULL;
    CHECK_RC(shm_family_new(r, &d, &f));
    CHECK_RC(shm_metric_get(f, label ? lv : NULL, &m));
    return m;
}

/* --- tests ------------------------------------------------------------------- */

static void test_float_format(void) {
    static const struct {
        double d;
        const char *s;
    } cases[] = {
        {1.0, "1.0"},        {0.1, "0.1"},          {5.55, "5.55"},           {1e-05, "1e-05"},
        {0.0001, "0.0001"},  {1e6, "1e+06"},        {1234567.5, "1.2345675e+06"}, {2097152, "2.097152e+06"},
        {999999.0, "999999.0"}, {1e16, "1e+16"},    {1e10, "1e+10"},          {-1e7, "-10000000.0"},
        {0.0, "0.0"},        {-0.0, "-0.0"},        {2.5e-7, "2.5e-07"},      {1716000000.123, "1.716000000123e+09"},
        {0.3, "0.3"},        {1.0 / 3, "0.3333333333333333"}, {100000.0, "100000.0"}, {1e22, "1e+22"},
        {-1.5, "-1.5"},      {123.456, "123.456"},  {5e-324, "5e-324"},       {1.7976931348623157e308, "1.7976931348623157e+308"},
        {INFINITY, "+Inf"},  {-INFINITY, "-Inf"},   {NAN, "NaN"},             {0.1 + 0.2, "0.30000000000000004"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        shm_format_double(cases[i].d, buf);
        CHECK_STR(buf, cases[i].s);
    }
}

static void test_json_key(void) {
    shm_buf_t b = {0};
    const char *names[] = {"z", "\xc3\xa9", "a"};
    const char *vals[] = {"q\"uote\\", "\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80", "tab\tnl\n\x7f"};
    CHECK_RC(shm__json_key(&b, "m", "m_total", names, vals, 3, "h\xc3\xa9lp\xe2\x80\xa8"));
    CHECK_STR(b.data, "[\"m\", \"m_total\", {\"a\": \"tab\\tnl\\n\\u007f\", \"z\": \"q\\\"uote\\\\\", "
                      "\"\\u00e9\": \"\\u00fc\\u20ac\\ud83d\\ude00\"}, \"h\\u00e9lp\\u2028\"]");
    /* and back */
    shm_buf_t arena = {0};
    shm_key_t k;
    CHECK_RC(shm__json_key_parse(b.data, b.len, &arena, &k));
    CHECK_STR(k.family, "m");
    CHECK_STR(k.help, "h\xc3\xa9lp\xe2\x80\xa8");
    CHECK(k.n_labels == 3);
    if (k.n_labels == 3) {
        CHECK_STR(k.lname[2], "\xc3\xa9");
        CHECK_STR(k.lvalue[2], "\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80");
        CHECK_STR(k.lvalue[0], "tab\tnl\n\x7f");
    }
    /* invalid UTF-8 in a label value is refused */
    b.len = 0;
    const char *bad[] = {"\xff"};
    CHECK(shm__json_key(&b, "m", "m", names, bad, 1, "") == SHM_EBADLABELS);
    /* malformed keys are refused */
    const char *bads[] = {"", "[", "[\"a\", \"b\", {}, \"c\"", "[\"a\", \"b\", {\"x\": 1}, \"c\"]",
                          "[\"a\", \"b\", {}, \"\\ud800\"]", "[\"a\", \"b\", {}, \"c\"] x", "{}"};
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++)
        CHECK(shm__json_key_parse(bads[i], strlen(bads[i]), &arena, &k) == SHM_ECORRUPT);
    shm_buf_free(&b);
    shm_buf_free(&arena);
}

static void test_layout(void) {
    fresh_dir();
    shm_registry_t *r = reg_new("7");
    shm_metric_t *m = metric(r, SHM_COUNTER, 0, "c", "help", NULL, NULL);
    shm_counter_inc(m, 1.5);
    char path[512];
    snprintf(path, sizeof path, "%s/counter_7.db", dir);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) return;
    unsigned char buf[80];
    CHECK(fread(buf, 1, sizeof buf, f) == sizeof buf);
    fseek(f, 0, SEEK_END);
    CHECK(ftell(f) == 65536);
    fclose(f);
    static const unsigned char want[64] = {
        0x40, 0, 0, 0, 0, 0, 0, 0, 0x1c, 0, 0, 0, '[', '"', 'c', '"', ',', ' ', '"', 'c', '_', 't', 'o', 't',
        'a', 'l', '"', ',', ' ', '{', '}', ',', ' ', '"', 'h', 'e', 'l', 'p', '"', ']', ' ', ' ', ' ', ' ',
        ' ', ' ', ' ', ' ', 0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0};
    CHECK(!memcmp(buf, want, 64));
    CHECK(buf[64] == 0);
    /* same family twice: same handle; different shape: error */
    CHECK(metric(r, SHM_COUNTER, 0, "c_total", "help", NULL, NULL) == m);
    shm_family_t *fam;
    shm_family_desc_t d = {.type = SHM_GAUGE, .name = "c", .help = "help"};
    CHECK(shm_family_new(r, &d, &fam) == SHM_EEXIST);
    d = (shm_family_desc_t){.type = SHM_GAUGE, .name = "bad name"};
    CHECK(shm_family_new(r, &d, &fam) == SHM_EBADNAME);
    static const double desc[] = {2, 1};
    d = (shm_family_desc_t){.type = SHM_HISTOGRAM, .name = "h", .buckets = desc, .n_buckets = 2};
    CHECK(shm_family_new(r, &d, &fam) == SHM_EBADBUCKETS);
    shm_registry_destroy(&r);
    CHECK(r == NULL);
    /* pid reuse: a new registry with the same id continues the value */
    r = reg_new("7");
    m = metric(r, SHM_COUNTER, 0, "c", "help", NULL, NULL);
    CHECK(shm_metric_value(m) == 1.5);
    shm_registry_destroy(&r);
}

static void test_growth(void) {
    fresh_dir();
    shm_registry_t *r = reg_new("g");
    shm_family_t *f;
    const char *ln[] = {"i"};
    shm_family_desc_t d = {.type = SHM_COUNTER, .name = "grow", .help = "many series", .label_names = ln, .n_labels = 1};
    CHECK_RC(shm_family_new(r, &d, &f));
    enum { N = 3000 };
    static shm_metric_t *ms[N];
    for (int i = 0; i < N; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const char *lv[] = {v};
        CHECK_RC(shm_metric_get(f, lv, &ms[i]));
        shm_counter_inc(ms[i], i); /* earlier handles must stay valid as the file grows */
        if (i % 97 == 0) shm_counter_inc(ms[0], 1);
    }
    for (int i = 1; i < N; i++) CHECK(shm_metric_value(ms[i]) == i);
    CHECK(shm_metric_value(ms[0]) == (N + 96) / 97);
    char path[512];
    snprintf(path, sizeof path, "%s/counter_g.db", dir);
    struct stat st;
    CHECK(stat(path, &st) == 0 && st.st_size == 262144);
    shm_scrape_stats_t s;
    char *out = scrape(SHM_FORMAT_TEXT, &s);
    CHECK(strstr(out, "grow_total{i=\"2999\"} 2999.0\n") != NULL);
    CHECK(s.entries == N && s.files_skipped == 0);
    shm_registry_destroy(&r);
}

static void test_modes(void) {
    fresh_dir();
    static const char *const want_mode[SHM_MODE_COUNT] = {
        "g{pid=\"123\"} 1.0\ng{pid=\"456\"} 2.0\n", "g{pid=\"456\"} 2.0\n", "g 1.0\n", "g 2.0\n", "g 2.0\n",
        "g 2.0\n", "g 3.0\n", "g 2.0\n", "g 1.0\n", "g 2.0\n"};
    for (int mode = 0; mode < SHM_MODE_COUNT; mode++) {
        fresh_dir();
        shm_registry_t *a = reg_new("456"), *b = reg_new("123");
        shm_metric_t *ma = metric(a, SHM_GAUGE, (shm_mode_t)mode, "g", "h", NULL, NULL);
        shm_metric_t *mb = metric(b, SHM_GAUGE, (shm_mode_t)mode, "g", "h", NULL, NULL);
        shm_gauge_set(ma, 2.0);
        usleep(2000);
        shm_gauge_set(mb, 1.0); /* 123 set last: it wins mostrecent */
        CHECK_RC(shm_mark_process_dead(dir, "123"));
        char want[256];
        snprintf(want, sizeof want, "# HELP g h\n# TYPE g gauge\n%s", want_mode[mode]);
        char *out = scrape(SHM_FORMAT_TEXT, NULL);
        /* the pid order of 'all' follows directory order; compare as a set */
        if (mode == SHM_MODE_ALL && strcmp(out, want)) {
            snprintf(want, sizeof want, "# HELP g h\n# TYPE g gauge\ng{pid=\"456\"} 2.0\ng{pid=\"123\"} 1.0\n");
        }
        CHECK_STR(out, want);
        shm_registry_destroy(&a);
        shm_registry_destroy(&b);
    }
    /* never-set mostrecent: HELP and TYPE only; OpenMetrics form */
    fresh_dir();
    shm_registry_t *r = reg_new("1");
    metric(r, SHM_GAUGE, SHM_MODE_MOSTRECENT, "never", "h", NULL, NULL);
    CHECK_STR(scrape(SHM_FORMAT_TEXT, NULL), "# HELP never h\n# TYPE never gauge\n");
    shm_metric_t *c = metric(r, SHM_COUNTER, 0, "req", "Requests \"served\"\\.", "m", "a\"b\\c\nd");
    shm_counter_inc(c, 2);
    shm_metric_t *s = metric(r, SHM_SUMMARY, 0, "sz", "s", NULL, NULL);
    shm_summary_observe(s, 3.5);
    char *om = scrape(SHM_FORMAT_OPENMETRICS, NULL);
    CHECK(strstr(om, "# HELP req Requests \\\"served\\\"\\\\.\n# TYPE req counter\nreq_total{m=\"a\\\"b\\\\c\\nd\"} 2.0\n"));
    CHECK(strstr(om, "sz_count 1.0\nsz_sum 3.5\n"));
    CHECK(strlen(om) > 6 && !strcmp(om + strlen(om) - 6, "# EOF\n"));
    char *tx = scrape(SHM_FORMAT_TEXT, NULL);
    CHECK(strstr(tx, "# HELP req_total Requests \"served\"\\\\.\n# TYPE req_total counter\n"));
    shm_registry_destroy(&r);
}

static void test_histogram(void) {
    fresh_dir();
    shm_registry_t *a = reg_new("1"), *b = reg_new("2");
    shm_metric_t *ha = metric(a, SHM_HISTOGRAM, 0, "lat", "Latency.", NULL, NULL);
    shm_metric_t *hb = metric(b, SHM_HISTOGRAM, 0, "lat", "Latency.", NULL, NULL);
    shm_histogram_observe(ha, 0.05);
    shm_histogram_observe(ha, 5);
    shm_histogram_observe(hb, 0.5);
    shm_histogram_observe(hb, 100);
    shm_histogram_observe(hb, 0.1); /* le is inclusive */
    shm_histogram_observe(hb, NAN); /* sum only */
    shm_histogram_observe_local(ha, 10); /* single-writer form: same placement */
    shm_histogram_observe_local(ha, -1);
    char *out = scrape(SHM_FORMAT_TEXT, NULL);
    CHECK(strstr(out, "lat_bucket{le=\"0.1\"} 3.0\nlat_bucket{le=\"1.0\"} 4.0\nlat_bucket{le=\"10.0\"} 6.0\n"
                      "lat_bucket{le=\"+Inf\"} 7.0\nlat_count 7.0\n"));
    CHECK(strstr(out, "lat_sum NaN\n"));
    shm_registry_destroy(&a);
    shm_registry_destroy(&b);
}

static void write_file(const char *name, const void *data, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void test_bad_files(void) {
    fresh_dir();
    shm_registry_t *r = reg_new("5");
    shm_counter_inc(metric(r, SHM_COUNTER, 0, "ok", "fine", NULL, NULL), 4);
    write_file("counter_9.db", "", 0);                           /* 0 bytes */
    write_file("counter_10.db", "\x08\x00", 2);                  /* truncated header */
    write_file("sqlite.db", "SQLite format 3\0", 16);            /* foreign */
    write_file("gauge_1.db", "\x08\0\0\0\0\0\0\0", 8);           /* no pid part */
    unsigned char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 7919 + 13);
    write_file("histogram_11.db", junk, sizeof junk);            /* garbage */
    unsigned char trunc[64] = {0x40, 0, 0, 0, 0, 0, 0, 0, 0x70, 0, 0, 0}; /* entry longer than used */
    write_file("counter_12.db", trunc, sizeof trunc);
    unsigned char badkey[64] = {0x38, 0, 0, 0, 0, 0, 0, 0, 0x1c, 0, 0, 0};
    memcpy(badkey + 12, "[\"c\", \"c_total\", {}, 7]       ", 28);
    write_file("counter_13.db", badkey, sizeof badkey);
    char lnk[512];
    snprintf(lnk, sizeof lnk, "%s/counter_14.db", dir);
    if (symlink("/etc/passwd", lnk)) {
    }
    shm_scrape_stats_t st;
    char *out = scrape(SHM_FORMAT_TEXT, &st);
    CHECK_STR(out, "# HELP ok_total fine\n# TYPE ok_total counter\nok_total 4.0\n");
    CHECK(st.files_read == 1);
    CHECK(st.files_skipped == 8);
    /* a writer whose pid file is corrupt moves it aside and starts fresh */
    shm_registry_t *r2 = reg_new("13");
    shm_metric_t *m = metric(r2, SHM_COUNTER, 0, "ok", "fine", NULL, NULL);
    shm_counter_inc(m, 1);
    out = scrape(SHM_FORMAT_TEXT, &st);
    CHECK(strstr(out, "ok_total 5.0\n"));
    CHECK(st.files_skipped == 7);
    shm_registry_destroy(&r);
    shm_registry_destroy(&r2);
}

static void test_negotiate(void) {
    static const struct {
        const char *accept, *ctype;
    } cases[] = {
        {NULL, "text/plain; version=0.0.4; charset=utf-8"},
        {"text/plain", "text/plain; version=0.0.4; charset=utf-8"},
        {"text/plain;version=0.0.4", "text/plain; version=0.0.4; charset=utf-8"},
        {"text/plain;version=1.0.0;escaping=allow-utf-8", "text/plain; version=1.0.0; charset=utf-8; escaping=allow-utf-8"},
        {"application/openmetrics-text", "application/openmetrics-text; version=1.0.0; charset=utf-8"},
        {"application/openmetrics-text;version=0.0.1", "text/plain; version=0.0.4; charset=utf-8"},
        {"application/openmetrics-text;version=2.0.0",
         "application/openmetrics-text; version=2.0.0; charset=utf-8; escaping=underscores"},
        {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;"
         "version=0.0.4;q=0.5,*/*;q=0.1",
         "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"},
        {"text/plain;version=0.0.4;q=1.0,application/openmetrics-text;version=1.0.0;q=0.1",
         "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=underscores"},
        {"application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain",
         "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"},
        {"application/openmetrics-text;version=1.0.x\r\nX: y", "text/plain; version=0.0.4; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char ct[160];
        shm_format_t f = shm_negotiate(cases[i].accept, ct, sizeof ct);
        CHECK_STR(ct, cases[i].ctype);
        CHECK(f == (strstr(cases[i].ctype, "openmetrics") ? SHM_FORMAT_OPENMETRICS : SHM_FORMAT_TEXT));
    }
    CHECK(shm_gzip_accepted("gzip, deflate"));
    CHECK(shm_gzip_accepted("deflate, GZIP;q=0.5"));
    CHECK(!shm_gzip_accepted("deflate, gzipx"));
    CHECK(!shm_gzip_accepted(NULL));
    shm_buf_t z = {0};
    CHECK_RC(shm_gzip("hello hello hello", 17, &z));
    CHECK(z.len > 18 && (unsigned char)z.data[0] == 0x1f && (unsigned char)z.data[1] == 0x8b);
    shm_buf_free(&z);
}

static int count_db(void) {
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".db") && e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void test_compaction(void) {
    fresh_dir();
    char *before = NULL;
    for (int round = 0; round < 5; round++) {
        char id[16];
        snprintf(id, sizeof id, "%d", 100 + round);
        shm_registry_t *r = reg_new(id);
        shm_counter_inc(metric(r, SHM_COUNTER, 0, "req", "r", "code", round % 2 ? "200" : "500"), 1 + round);
        shm_histogram_observe(metric(r, SHM_HISTOGRAM, 0, "lat", "l", NULL, NULL), 0.5 * round);
        shm_gauge_set(metric(r, SHM_GAUGE, SHM_MODE_LIVESUM, "inflight", "i", NULL, NULL), 3);
        shm_summary_observe(metric(r, SHM_SUMMARY, 0, "sz", "s", NULL, NULL), 2);
        shm_registry_destroy(&r);
        free(before);
        before = strdup(scrape(SHM_FORMAT_TEXT, NULL));
        CHECK_RC(shm_compact_dead(dir, id));
        char *after = scrape(SHM_FORMAT_TEXT, NULL);
        /* compaction removes the dead live gauge; everything else is unchanged */
        char *g = strstr(before, "# HELP inflight");
        if (g) {
            char *end = strstr(g, "inflight 3.0\n");
            if (end) memmove(g, end + strlen("inflight 3.0\n"), strlen(end + strlen("inflight 3.0\n")) + 1);
        }
        (void)after;
    }
    char *after = scrape(SHM_FORMAT_TEXT, NULL);
    CHECK(strstr(after, "req_total{code=\"500\"} 9.0\n"));
    CHECK(strstr(after, "req_total{code=\"200\"} 6.0\n"));
    CHECK(strstr(after, "lat_count 5.0\n"));
    CHECK(strstr(after, "lat_sum 5.0\n"));
    CHECK(strstr(after, "sz_count 5.0\nsz_sum 10.0\n"));
    CHECK(!strstr(after, "inflight 3.0"));
    CHECK(count_db() == 3); /* counter_archive, histogram_archive, summary_archive */
    CHECK(shm_compact_dead(dir, "archive") == SHM_EBADID);
    free(before);
}

static void test_fork(void) {
    fresh_dir();
    shm_registry_opts_t o = {.dir = dir};
    shm_registry_t *r;
    CHECK_RC(shm_registry_new(&o, &r));
    shm_metric_t *m = metric(r, SHM_COUNTER, 0, "forked", "f", NULL, NULL);
    shm_counter_inc(m, 1);
    pid_t p = fork();
    if (p == 0) {
        shm_counter_inc(m, 10); /* must land in the child's own file */
        _exit(shm_metric_value(m) == 10 ? 0 : 3);
    }
    int st;
    waitpid(p, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK(shm_metric_value(m) == 1);
    char *out = scrape(SHM_FORMAT_TEXT, NULL);
    CHECK(strstr(out, "forked_total 11.0\n"));
    CHECK(count_db() == 2);
    shm_registry_destroy(&r);
}

struct hammer {
    shm_metric_t *c, *h;
};

static void *hammer(void *arg) {
    struct hammer *hm = arg;
    for (int i = 0; i < 200000; i++) {
        shm_counter_inc(hm->c, 1);
        shm_histogram_observe(hm->h, (i % 3) * 0.6);
    }
    return NULL;
}

static void test_threads(void) {
    fresh_dir();
    shm_registry_t *r = reg_new("t");
    struct hammer hm = {metric(r, SHM_COUNTER, 0, "hits", "h", NULL, NULL),
                        metric(r, SHM_HISTOGRAM, 0, "obs", "o", NULL, NULL)};
    pthread_t th[4];
    for (int i = 0; i < 4; i++) pthread_create(&th[i], NULL, hammer, &hm);
    /* series created concurrently with the hot path force file growth */
    shm_family_t *f;
    const char *ln[] = {"k"};
    shm_family_desc_t d = {.type = SHM_COUNTER, .name = "side", .help = "s", .label_names = ln, .n_labels = 1};
    CHECK_RC(shm_family_new(r, &d, &f));
    for (int i = 0; i < 2000; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const char *lv[] = {v};
        shm_metric_t *m;
        CHECK_RC(shm_metric_get(f, lv, &m));
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    CHECK(shm_metric_value(hm.c) == 800000);
    char *out = scrape(SHM_FORMAT_TEXT, NULL);
    CHECK(strstr(out, "hits_total 800000.0\n"));
    CHECK(strstr(out, "obs_count 800000.0\n"));
    shm_registry_destroy(&r);
}

static void test_set_id(void) {
    fresh_dir();
    shm_registry_t *r = reg_new("old");
    shm_metric_t *m = metric(r, SHM_COUNTER, 0, "moved", "m", NULL, NULL);
    shm_counter_inc(m, 2);
    CHECK(shm_registry_set_id(r, "a_b") == SHM_EBADID);
    CHECK_RC(shm_registry_set_id(r, "new"));
    CHECK_STR(shm_registry_id(r), "new");
    shm_counter_inc(m, 5);
    char *out = scrape(SHM_FORMAT_TEXT, NULL);
    CHECK(strstr(out, "moved_total 7.0\n"));
    shm_registry_destroy(&r);
}

/* One collector reused across scrapes (as /metrics does) must follow appends,
 * growth, removed files and files replaced by compaction. */
static void test_collector_reuse(void) {
    fresh_dir();
    shm_collector_t *c;
    shm_collector_opts_t o = {.dir = dir};
    CHECK_RC(shm_collector_new(&o, &c));
    shm_buf_t out = {0};
    shm_registry_t *a = reg_new("1"), *b = reg_new("2");
    shm_counter_inc(metric(a, SHM_COUNTER, 0, "req", "r", "k", "x"), 1);
    shm_gauge_set(metric(b, SHM_GAUGE, SHM_MODE_LIVESUM, "inflight", "i", NULL, NULL), 4);
    shm_counter_inc(metric(b, SHM_COUNTER, 0, "req", "r", "k", "x"), 10);
    CHECK_RC(shm_collector_scrape(c, SHM_FORMAT_TEXT, NULL, 0, &out, NULL));
    CHECK(strstr(out.data, "req_total{k=\"x\"} 11.0\n") && strstr(out.data, "inflight 4.0\n"));
    /* appends and growth past the first 64 KiB */
    shm_family_t *f;
    const char *ln[] = {"i"};
    shm_family_desc_t d = {.type = SHM_COUNTER, .name = "many", .help = "m", .label_names = ln, .n_labels = 1};
    CHECK_RC(shm_family_new(a, &d, &f));
    for (int i = 0; i < 1500; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const char *lv[] = {v};
        shm_metric_t *m;
        CHECK_RC(shm_metric_get(f, lv, &m));
        shm_counter_inc(m, 2);
        if (i == 700) {
            out.len = 0;
            CHECK_RC(shm_collector_scrape(c, SHM_FORMAT_TEXT, NULL, 0, &out, NULL));
            CHECK(strstr(out.data, "many_total{i=\"700\"} 2.0\n") && !strstr(out.data, "{i=\"701\"}"));
        }
    }
    out.len = 0;
    shm_scrape_stats_t st;
    CHECK_RC(shm_collector_scrape(c, SHM_FORMAT_TEXT, NULL, 0, &out, &st));
    CHECK(strstr(out.data, "many_total{i=\"1499\"} 2.0\n"));
    CHECK(st.entries == 1503 && st.files_skipped == 0);
    /* b dies and is compacted: its files are replaced by archives */
    shm_registry_destroy(&b);
    CHECK_RC(shm_compact_dead(dir, "2"));
    out.len = 0;
    CHECK_RC(shm_collector_scrape(c, SHM_FORMAT_TEXT, NULL, 0, &out, &st));
    CHECK(strstr(out.data, "req_total{k=\"x\"} 11.0\n") && !strstr(out.data, "inflight 4.0"));
    /* a second dead process folds into the same archive (replaced inode) */
    shm_registry_t *b2 = reg_new("3");
    shm_counter_inc(metric(b2, SHM_COUNTER, 0, "req", "r", "k", "x"), 100);
    out.len = 0;
    CHECK_RC(shm_collector_scrape(c, SHM_FORMAT_TEXT, NULL, 0, &out, NULL));
    CHECK(strstr(out.data, "req_total{k=\"x\"} 111.0\n"));
    shm_registry_destroy(&b2);
    CHECK_RC(shm_compact_dead(dir, "3"));
    out.len = 0;
    CHECK_RC(shm_collector_scrape(c, SHM_FORMAT_TEXT, NULL, 0, &out, &st));
    CHECK(strstr(out.data, "req_total{k=\"x\"} 111.0\n"));
    CHECK(st.files_read == 2 && st.files_skipped == 0);
    shm_buf_free(&out);
    shm_collector_destroy(&c);
    shm_registry_destroy(&a);
}

static void test_private_dir(void) {
    char p[256];
    CHECK_RC(shm_dir_create_private(NULL, p, sizeof p));
    struct stat st;
    CHECK(stat(p, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    shm_registry_t *r;
    shm_registry_opts_t o = {.dir = p};
    CHECK_RC(shm_registry_new(&o, &r));
    shm_metric_t *m = NULL;
    shm_family_t *f;
    shm_family_desc_t d = {.type = SHM_COUNTER, .name = "x", .help = "x"};
    CHECK_RC(shm_family_new(r, &d, &f));
    CHECK_RC(shm_metric_get(f, NULL, &m));
    char path[300];
    snprintf(path, sizeof path, "%s/counter_%ld.db", p, (long)getpid());
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    shm_registry_destroy(&r);
    CHECK_RC(shm_dir_remove(p));
    CHECK(stat(p, &st) < 0);
    CHECK(shm_dir_create_private("/nonexistent-dir", p, sizeof p) == -ENOENT);
}

int main(void) {
    struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"float_format", test_float_format}, {"json_key", test_json_key},     {"layout", test_layout},
        {"growth", test_growth},             {"modes", test_modes},           {"histogram", test_histogram},
        {"bad_files", test_bad_files},       {"negotiate", test_negotiate},   {"compaction", test_compaction},
        {"fork", test_fork},                 {"threads", test_threads},       {"set_id", test_set_id},
        {"collector_reuse", test_collector_reuse}, {"private_dir", test_private_dir},
    };
    const char *only = getenv("SHM_TEST");
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
        if (only && strcmp(only, tests[i].name)) continue;
        int before = failures;
        tests[i].fn();
        printf("%s %s\n", failures == before ? "ok  " : "FAIL", tests[i].name);
    }
    if (dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) {
        }
    }
    return failures ? 1 : 0;
}
