/* API worker routes (see fe_api.h). Responses are built in per-api buffers
 * reused across requests; /metrics keeps one shm collector for the worker's
 * lifetime, so a scrape only parses what was appended since the last one. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_api.h"

/* Series handles resolved once per (method, status class, handler): the
 * request path then records without touching the registry's lock. */
typedef struct {
    char key[96];
    shm_metric_t *total, *lowr, *in_size, *out_size;
} http_series_t;

struct fe_api {
    fe_api_opts_t o;
    char *version;
    shm_collector_t *collector;
    shm_buf_t text, gz, tmp;
    shm_family_t *f_total, *f_in, *f_out, *f_highr, *f_lowr;
    shm_metric_t *highr;
    http_series_t series[64];
    int n_series;
};

static const double highr_buckets[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2,
                                       2.5,  3,     3.5,  4,     4.5, 5,    7.5, 10,   30, 60};
static const double lowr_buckets[] = {0.1, 0.5, 1};

static int http_metrics_init(fe_api_t *a, shm_registry_t *r) {
    const char *mst[] = {"method", "status", "handler"}, *h[] = {"handler"}, *mh[] = {"method", "handler"};
    shm_family_desc_t d[] = {
        {.type = SHM_COUNTER, .name = "http_requests_total",
         .help = "Total number of requests by method, status and handler.", .label_names = mst, .n_labels = 3},
        {.type = SHM_SUMMARY, .name = "http_request_size_bytes",
         .help = "Content length of incoming requests by handler. Only value of header is respected. Otherwise "
                 "ignored. No percentile calculated. ",
         .label_names = h, .n_labels = 1},
        {.type = SHM_SUMMARY, .name = "http_response_size_bytes",
         .help = "Content length of outgoing responses by handler. Only value of header is respected. Otherwise "
                 "ignored. No percentile calculated. ",
         .label_names = h, .n_labels = 1},
        {.type = SHM_HISTOGRAM, .name = "http_request_duration_highr_seconds",
         .help = "Latency with many buckets but no API specific labels. Made for more accurate percentile "
                 "calculations. ",
         .buckets = highr_buckets, .n_buckets = sizeof highr_buckets / sizeof highr_buckets[0]},
        {.type = SHM_HISTOGRAM, .name = "http_request_duration_seconds",
         .help = "Latency with only few buckets by handler. Made to be only used if aggregation by handler is "
                 "important. ",
         .label_names = mh, .n_labels = 2, .buckets = lowr_buckets, .n_buckets = 3},
    };
    shm_family_t **out[] = {&a->f_total, &a->f_in, &a->f_out, &a->f_highr, &a->f_lowr};
    for (int i = 0; i < 5; i++) {
        int rc = shm_family_new(r, &d[i], out[i]);
        if (rc) return rc;
    }
    /* the label-less histogram exists from the start, as in prometheus_client */
    return shm_metric_get(a->f_highr, NULL, &a->highr);
}

int fe_api_new(const fe_api_opts_t *opts, fe_api_t **out) {
    fe_api_t *a = calloc(1, sizeof *a);
    if (!a) return -ENOMEM;
    a->o = *opts;
    a->version = strdup(opts->version ? opts->version : "");
    shm_collector_opts_t co = {.dir = opts->metrics_dir, .self = opts->registry};
    int rc = a->version ? shm_collector_new(&co, &a->collector) : -ENOMEM;
    if (!rc && opts->registry && (rc = http_metrics_init(a, opts->registry))) shm_collector_destroy(&a->collector);
    if (rc) {
        free(a->version);
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void fe_api_destroy(fe_api_t **pp) {
    fe_api_t *a = *pp;
    if (!a) return;
    shm_collector_destroy(&a->collector);
    shm_buf_free(&a->text);
    shm_buf_free(&a->gz);
    shm_buf_free(&a->tmp);
    free(a->version);
    free(a);
    *pp = NULL;
}

/* Appends s as a JSON string (quotes included). */
static int json_str(shm_buf_t *b, const char *s) {
    static const char hex[] = "0123456789abcdef";
    if (shm_buf_append(b, "\"", 1)) return -ENOMEM;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        size_t n = 0;
        if (*p == '"' || *p == '\\') e[n++] = '\\', e[n++] = (char)*p;
        else if (*p == '\n') e[n++] = '\\', e[n++] = 'n';
        else if (*p == '\r') e[n++] = '\\', e[n++] = 'r';
        else if (*p == '\t') e[n++] = '\\', e[n++] = 't';
        else if (*p < 0x20) {
            memcpy(e, "\\u00", 4);
            e[4] = hex[*p >> 4];
            e[5] = hex[*p & 15];
            n = 6;
        } else e[n++] = (char)*p;
        if (shm_buf_append(b, e, n)) return -ENOMEM;
    }
    return shm_buf_append(b, "\"", 1);
}

int fe_api_error(fe_http_conn_t *c, int status, const char *type, const char *message) {
    shm_buf_t b = {0};
    char tail[64];
    snprintf(tail, sizeof tail, ", \"param\": null, \"code\": %d}}", status);
    int rc = shm_buf_append(&b, "{\"error\": {\"message\": ", 22);
    if (!rc) rc = json_str(&b, message);
    if (!rc) rc = shm_buf_append(&b, ", \"type\": ", 10);
    if (!rc) rc = json_str(&b, type);
    if (!rc) rc = shm_buf_append(&b, tail, strlen(tail));
    rc = rc ? fe_http_respond(c, 500, "text/plain", NULL, "out of memory", 13)
            : fe_http_respond(c, status, "application/json", NULL, b.data, b.len);
    shm_buf_free(&b);
    return rc;
}

static int is(const fe_http_req_t *r, const char *method) { return !strcmp(r->method, method); }

/* FastAPI's answers for unknown routes and methods. */
static void not_found(fe_http_conn_t *c) {
    fe_http_respond(c, 404, "application/json", NULL, "{\"detail\":\"Not Found\"}", 22);
}

static void not_allowed(fe_http_conn_t *c, const char *allow) {
    char h[64];
    snprintf(h, sizeof h, "allow: %s\r\n", allow);
    fe_http_respond(c, 405, "application/json", h, "{\"detail\":\"Method Not Allowed\"}", 31);
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decodes [s, e) ('+' is a space) into b, NUL-terminated. */
static int url_decode(shm_buf_t *b, const char *s, const char *e) {
    for (; s < e; s++) {
        char ch = *s;
        if (ch == '+') ch = ' ';
        else if (ch == '%' && e - s >= 3 && hexval(s[1]) >= 0 && hexval(s[2]) >= 0) {
            ch = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
        }
        if (!ch) continue;
        if (shm_buf_append(b, &ch, 1)) return -ENOMEM;
    }
    return shm_buf_append(b, "", 1);
}

static void metrics(fe_api_t *a, fe_http_conn_t *c, const fe_http_req_t *r) {
    char ctype[160];
    shm_format_t fmt = shm_negotiate(fe_http_header(r, "accept"), ctype, sizeof ctype);
    /* name[]=... filters, as prometheus_client's handler reads them */
    const char *names[64];
    size_t n_names = 0;
    a->tmp.len = 0;
    size_t offs[64];
    for (const char *q = r->query; *q && n_names < 64;) {
        const char *amp = strchr(q, '&');
        const char *end = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        if (eq) {
            size_t kstart = a->tmp.len;
            if (url_decode(&a->tmp, q, eq)) break;
            int is_name = !strcmp(a->tmp.data + kstart, "name[]");
            a->tmp.len = kstart;
            if (is_name) {
                offs[n_names++] = a->tmp.len;
                if (url_decode(&a->tmp, eq + 1, end)) break;
            }
        }
        q = amp ? amp + 1 : end;
    }
    for (size_t i = 0; i < n_names; i++) names[i] = a->tmp.data + offs[i];
    a->text.len = 0;
    int rc = shm_collector_scrape(a->collector, fmt, names, n_names, &a->text, NULL);
    if (rc) {
        fe_api_error(c, 500, "InternalServerError", shm_strerror(rc));
        return;
    }
    if (shm_gzip_accepted(fe_http_header(r, "accept-encoding"))) {
        a->gz.len = 0;
        if (!shm_gzip(a->text.data, a->text.len, &a->gz)) {
            fe_http_respond(c, 200, ctype, "content-encoding: gzip\r\nvary: Accept-Encoding\r\n", a->gz.data,
                            a->gz.len);
            return;
        }
    }
    fe_http_respond(c, 200, ctype, NULL, a->text.data, a->text.len);
}

void fe_api_handle(void *ud, fe_http_conn_t *c, const fe_http_req_t *r) {
    fe_api_t *a = ud;
    const char *p = r->path;
    if (!strcmp(p, "/metrics")) {
        if (is(r, "GET") || is(r, "HEAD")) metrics(a, c, r);
        else not_allowed(c, "GET");
    } else if (!strcmp(p, "/health")) {
        if (!is(r, "GET")) not_allowed(c, "GET");
        else if (a->o.engine_ok && !a->o.engine_ok(a->o.ud)) fe_http_respond(c, 503, NULL, NULL, "", 0);
        else fe_http_respond(c, 200, NULL, NULL, "", 0);
    } else if (!strcmp(p, "/ping")) {
        if (!is(r, "GET") && !is(r, "POST")) not_allowed(c, "GET, POST");
        else if (a->o.engine_ok && !a->o.engine_ok(a->o.ud)) fe_http_respond(c, 503, NULL, NULL, "", 0);
        else fe_http_respond(c, 200, NULL, NULL, "", 0);
    } else if (!strcmp(p, "/version")) {
        if (!is(r, "GET")) {
            not_allowed(c, "GET");
            return;
        }
        shm_buf_t b = {0};
        int rc = shm_buf_append(&b, "{\"version\":", 11);
        if (!rc) rc = json_str(&b, a->version);
        if (!rc) rc = shm_buf_append(&b, "}", 1);
        if (rc) fe_api_error(c, 500, "InternalServerError", "out of memory");
        else fe_http_respond(c, 200, "application/json", NULL, b.data, b.len);
        shm_buf_free(&b);
    } else {
        not_found(c);
    }
}

/* Route template of a path for the handler label; NULL for excluded routes. */
static const char *handler_of(const char *path) {
    static const char *const excluded[] = {"/metrics", "/health", "/load", "/ping", "/version", "/server_info"};
    static const char *const routes[] = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/tokenize",
                                         "/detokenize", "/invocations"};
    for (size_t i = 0; i < sizeof excluded / sizeof excluded[0]; i++)
        if (!strcmp(path, excluded[i])) return NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(path, routes[i])) return routes[i];
    return "none"; /* untemplated routes are grouped, as the instrumentator does */
}

static http_series_t *series_for(fe_api_t *a, const char *method, const char *status, const char *handler) {
    char key[96];
    snprintf(key, sizeof key, "%s %s %s", method, status, handler);
    for (int i = 0; i < a->n_series; i++)
        if (!strcmp(a->series[i].key, key)) return &a->series[i];
    if (a->n_series == (int)(sizeof a->series / sizeof a->series[0])) return NULL;
    http_series_t *s = &a->series[a->n_series];
    const char *mst[] = {method, status, handler}, *h[] = {handler}, *mh[] = {method, handler};
    if (shm_metric_get(a->f_total, mst, &s->total) || shm_metric_get(a->f_in, h, &s->in_size) ||
        shm_metric_get(a->f_out, h, &s->out_size) || shm_metric_get(a->f_lowr, mh, &s->lowr))
        return NULL;
    snprintf(s->key, sizeof s->key, "%s", key);
    a->n_series++;
    return s;
}

void fe_api_on_complete(void *ud, fe_http_conn_t *c, const fe_http_req_t *r, int status, size_t content_length,
                        double seconds) {
    fe_api_t *a = ud;
    (void)c;
    if (!a->f_total) return;
    const char *handler = handler_of(r->path);
    if (!handler) return;
    char st[4] = {(char)('0' + (status / 100) % 10), 'x', 'x', 0};
    http_series_t *s = series_for(a, r->method, st, handler);
    if (!s) return;
    const char *cl = fe_http_header(r, "content-length");
    shm_counter_inc(s->total, 1);
    shm_summary_observe(s->in_size, cl ? strtod(cl, NULL) : 0);
    shm_summary_observe(s->out_size, (double)content_length);
    shm_histogram_observe(a->highr, seconds);
    shm_histogram_observe(s->lowr, seconds);
}
