/* HTTP/1.1 server on libuv + llhttp (see fe_http.h for the contract).
 *
 * Invariants:
 *  - A connection is freed only in the last uv_close callback (tcp and timer),
 *    never inside a read callback; closing is "mark, stop, uv_close".
 *  - At most one request per connection is with the handler (`busy`); bytes
 *    that arrive meanwhile (pipelined requests) wait in `pend` and are parsed
 *    after the response, in a loop (no recursion however many are queued).
 *  - While busy the connection keeps reading so that a client that goes away
 *    is noticed (on_abort) — the engine must learn about it.
 */
#include <errno.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fe_http.h"

#define PEND_MAX (1u << 20) /* pipelined bytes buffered while busy */

enum { T_IDLE, T_REQUEST, T_NONE, T_LINGER };

#define LINGER_MS 2000 /* after our FIN, how long unread client bytes are drained */

typedef struct {
    char *p;
    size_t len, cap;
} bbuf_t;

static int bb_put(bbuf_t *b, const char *d, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->len + n + 1) c *= 2;
        char *q = realloc(b->p, c);
        if (!q) return -ENOMEM;
        b->p = q;
        b->cap = c;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

struct fe_http_server {
    uv_tcp_t tcp;
    uv_loop_t *loop;
    fe_http_opts_t o;
    int port;
    int closing, listening;
    struct fe_http_conn *conns;
    size_t n_conns, n_busy;
};

struct fe_http_conn {
    uv_tcp_t tcp; /* first: the handle's address is the connection's */
    uv_timer_t timer;
    llhttp_t parser;
    fe_http_server_t *srv;
    struct fe_http_conn *prev, *next;
    int open_handles;
    int closing, close_after_write, busy, streaming, in_process, reading, aborted, draining;
    uv_shutdown_t shut;
    int timer_mode;
    int err_status;        /* set by a callback that fails the parse */
    size_t writes;         /* uv_write requests in flight */
    /* request being parsed: strings NUL-separated in b, located by offsets */
    bbuf_t b;
    size_t url_off, body_off, head_bytes, body_bytes;
    size_t hoff[FE_HTTP_MAX_HEADERS][2];
    size_t n_h;
    int in_value;
    fe_http_req_t req;
    uint64_t t_head;       /* uv_hrtime() at the end of the request head */
    int resp_status;
    size_t resp_len;
    bbuf_t pend, work;
    void *user;
    char rbuf[65536];
};

static llhttp_settings_t settings;

/* --- small helpers --------------------------------------------------------------- */

const char *fe_http_reason(int s) {
    switch (s) {
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

const char *fe_http_header(const fe_http_req_t *r, const char *name) {
    for (size_t i = 0; i < r->n_headers; i++)
        if (!strcasecmp(r->hname[i], name)) return r->hvalue[i];
    return NULL;
}

void fe_http_conn_set_data(fe_http_conn_t *c, void *data) { c->user = data; }
void *fe_http_conn_data(const fe_http_conn_t *c) { return c->user; }
int fe_http_server_port(const fe_http_server_t *s) { return s->port; }
size_t fe_http_server_connections(const fe_http_server_t *s) { return s->n_conns; }
size_t fe_http_server_inflight(const fe_http_server_t *s) { return s->n_busy; }

/* --- closing ------------------------------------------------------------------------ */

static void maybe_free_server(fe_http_server_t *s);

static void on_handle_closed(uv_handle_t *h) {
    fe_http_conn_t *c = h->data;
    if (--c->open_handles) return;
    fe_http_server_t *s = c->srv;
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    free(c->b.p);
    free(c->pend.p);
    free(c->work.p);
    free(c);
    maybe_free_server(s);
}

static void conn_close(fe_http_conn_t *c) {
    if (c->closing) return;
    c->closing = 1;
    if (c->busy) {
        /* the handler still owns the request: tell it, once */
        c->busy = 0;
        c->srv->n_busy--;
        if (!c->aborted && c->srv->o.on_abort) {
            c->aborted = 1;
            c->srv->o.on_abort(c->srv->o.ud, c);
        }
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* --- writing -------------------------------------------------------------------------- */

typedef struct {
    uv_write_t req;
    fe_http_conn_t *c;
    char data[];
} wreq_t;

static void timer_set(fe_http_conn_t *c, int mode);
static void read_start(fe_http_conn_t *c);

static void on_shutdown(uv_shutdown_t *r, int status) {
    fe_http_conn_t *c = r->data;
    if (status < 0) conn_close(c);
}

/* Closing with unread client bytes in the kernel would send a RST that can
 * destroy our last response before the client reads it (e.g. a 413 while the
 * body is still arriving). So: FIN after the response, discard what still
 * comes, close on the client's EOF or after LINGER_MS. */
static void linger(fe_http_conn_t *c) {
    if (c->closing || c->draining) return;
    c->draining = 1;
    c->pend.len = 0;
    timer_set(c, T_LINGER);
    c->shut.data = c;
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
        conn_close(c);
        return;
    }
    if (!c->reading) {
        c->reading = 1;
        read_start(c);
    }
}

static void on_written(uv_write_t *w, int status) {
    wreq_t *r = (wreq_t *)w;
    fe_http_conn_t *c = r->c;
    free(r);
    c->writes--;
    if (c->closing) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after_write && !c->writes) linger(c);
}

static int conn_write(fe_http_conn_t *c, const char *a, size_t an, const char *b, size_t bn) {
    if (c->closing) return -EPIPE;
    wreq_t *r = malloc(sizeof *r + an + bn);
    if (!r) {
        conn_close(c);
        return -ENOMEM;
    }
    memcpy(r->data, a, an);
    if (bn) memcpy(r->data + an, b, bn);
    r->c = c;
    uv_buf_t buf = uv_buf_init(r->data, (unsigned)(an + bn));
    int rc = uv_write(&r->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
    if (rc < 0) {
        free(r);
        conn_close(c);
        return rc;
    }
    c->writes++;
    return 0;
}

static int head(char *out, size_t n, fe_http_conn_t *c, int status, const char *ctype, const char *extra,
                const char *length_or_chunked, int close) {
    return snprintf(out, n, "HTTP/1.1 %d %s\r\nserver: cvllm\r\n%s%s%s%s%s%s", status, fe_http_reason(status),
                    ctype ? "content-type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "", length_or_chunked,
                    close ? "connection: close\r\n" : "", extra ? extra : "");
}

/* --- request completion and parsing loop ------------------------------------------- */

static void process(fe_http_conn_t *c);

static void request_done(fe_http_conn_t *c) {
    if (c->srv->o.on_complete)
        c->srv->o.on_complete(c->srv->o.ud, c, &c->req, c->resp_status, c->resp_len,
                              (double)(uv_hrtime() - c->t_head) * 1e-9);
    c->busy = 0;
    c->streaming = 0;
    c->srv->n_busy--;
    c->user = NULL;
    if (!c->req.keep_alive || c->srv->closing) {
        c->close_after_write = 1;
        if (!c->writes) linger(c);
        return;
    }
    llhttp_resume(&c->parser);
    timer_set(c, T_IDLE);
    if (!c->in_process) process(c);
}

int fe_http_respond(fe_http_conn_t *c, int status, const char *ctype, const char *extra, const void *body, size_t n) {
    if (!c->busy || c->streaming) return -EINVAL;
    int close = !c->req.keep_alive || c->srv->closing;
    char h[1024], len[64];
    snprintf(len, sizeof len, "content-length: %zu\r\n", n);
    int hn = head(h, sizeof h - 2, c, status, ctype, extra, len, close);
    if (hn < 0 || (size_t)hn >= sizeof h - 2) return -EINVAL;
    h[hn++] = '\r';
    h[hn++] = '\n';
    int rc = conn_write(c, h, (size_t)hn, body, n);
    if (rc) return rc;
    c->resp_status = status;
    c->resp_len = n;
    request_done(c);
    return 0;
}

int fe_http_stream_start(fe_http_conn_t *c, int status, const char *ctype, const char *extra) {
    if (!c->busy || c->streaming) return -EINVAL;
    int close = !c->req.keep_alive || c->srv->closing;
    char h[1024];
    int hn = head(h, sizeof h - 2, c, status, ctype, extra, "transfer-encoding: chunked\r\n", close);
    if (hn < 0 || (size_t)hn >= sizeof h - 2) return -EINVAL;
    h[hn++] = '\r';
    h[hn++] = '\n';
    c->streaming = 1;
    c->resp_status = status;
    c->resp_len = 0;
    return conn_write(c, h, (size_t)hn, NULL, 0);
}

int fe_http_stream_write(fe_http_conn_t *c, const void *data, size_t n) {
    if (!c->streaming) return -EINVAL;
    if (!n) return 0;
    char pre[32];
    int pn = snprintf(pre, sizeof pre, "%zx\r\n", n);
    wreq_t *r = malloc(sizeof *r + (size_t)pn + n + 2);
    if (!r) {
        conn_close(c);
        return -ENOMEM;
    }
    memcpy(r->data, pre, (size_t)pn);
    memcpy(r->data + pn, data, n);
    memcpy(r->data + pn + n, "\r\n", 2);
    r->c = c;
    uv_buf_t buf = uv_buf_init(r->data, (unsigned)((size_t)pn + n + 2));
    int rc = uv_write(&r->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
    if (rc < 0) {
        free(r);
        conn_close(c);
        return rc;
    }
    c->writes++;
    return 0;
}

int fe_http_stream_end(fe_http_conn_t *c) {
    if (!c->streaming) return -EINVAL;
    int rc = conn_write(c, "0\r\n\r\n", 5, NULL, 0);
    if (rc) return rc;
    request_done(c);
    return 0;
}

/* Error answer decided by the server itself (limits, malformed input): the
 * vLLM error envelope, then close. */
static void fail(fe_http_conn_t *c, int status, const char *msg) {
    if (c->closing) return;
    char body[512], h[512];
    int bn = snprintf(body, sizeof body,
                      "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":%d}}", msg,
                      status == 408 ? "RequestTimeout" : "BadRequestError", status);
    int hn = snprintf(h, sizeof h,
                      "HTTP/1.1 %d %s\r\nserver: cvllm\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                      "connection: close\r\n\r\n",
                      status, fe_http_reason(status), bn);
    c->close_after_write = 1;
    timer_set(c, T_NONE);
    conn_write(c, h, (size_t)hn, body, (size_t)bn);
}

static void dispatch(fe_http_conn_t *c) {
    fe_http_req_t *r = &c->req;
    char *b = c->b.p;
    r->method = llhttp_method_name((llhttp_method_t)c->parser.method);
    r->target = b + c->url_off;
    char *q = strchr(b + c->url_off, '?');
    /* split path and query in place: the target keeps its '?' in a copy-free way
     * by pointing path at a second NUL-terminated copy would cost memory; the
     * path is what handlers route on, the target is kept for logs */
    r->path = r->target;
    r->query = "";
    if (q) {
        *q = 0;
        r->query = q + 1;
    }
    r->n_headers = c->n_h;
    for (size_t i = 0; i < c->n_h; i++) {
        char *nm = b + c->hoff[i][0];
        for (char *p = nm; *p; p++)
            if (*p >= 'A' && *p <= 'Z') *p = (char)(*p + 32);
        r->hname[i] = nm;
        r->hvalue[i] = b + c->hoff[i][1];
    }
    r->body = c->body_off ? b + c->body_off : "";
    r->body_len = c->body_bytes;
    r->keep_alive = llhttp_should_keep_alive(&c->parser);
    c->busy = 1;
    c->srv->n_busy++;
    timer_set(c, T_NONE);
    c->srv->o.handler(c->srv->o.ud, c, r);
}

/* Feeds buffered bytes to the parser while no request is with the handler. */
static void process(fe_http_conn_t *c) {
    c->in_process = 1;
    while (!c->closing && !c->busy && c->pend.len) {
        bbuf_t w = c->pend;
        c->pend = c->work;
        c->pend.len = 0;
        c->work = w;
        llhttp_errno_t e = llhttp_execute(&c->parser, w.p, w.len);
        if (e == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            size_t used = pos ? (size_t)(pos - w.p) : w.len;
            if (used < w.len && bb_put(&c->pend, w.p + used, w.len - used)) {
                conn_close(c);
                break;
            }
            dispatch(c);
        } else if (e != HPE_OK) {
            if (c->err_status) fail(c, c->err_status, c->err_status == 431 ? "Request header fields too large"
                                                      : c->err_status == 413 ? "Request body too large"
                                                                             : "Invalid HTTP request");
            else {
                char msg[160];
                snprintf(msg, sizeof msg, "Invalid HTTP request: %s", llhttp_errno_name(e));
                fail(c, 400, msg);
            }
            break;
        }
    }
    c->in_process = 0;
    if (!c->closing && !c->close_after_write && !c->reading && c->pend.len < PEND_MAX) {
        c->reading = 1;
        read_start(c);
    }
}

/* --- llhttp callbacks ------------------------------------------------------------------ */

#define CONN(p) ((fe_http_conn_t *)(p)->data)

static int head_grow(fe_http_conn_t *c, size_t n) {
    c->head_bytes += n;
    if (c->head_bytes > c->srv->o.max_header_bytes) {
        c->err_status = 431;
        return -1;
    }
    return 0;
}

static int cb_begin(llhttp_t *p) {
    fe_http_conn_t *c = CONN(p);
    c->b.len = 0;
    c->url_off = c->body_off = 0;
    c->head_bytes = c->body_bytes = 0;
    c->n_h = 0;
    c->in_value = 0;
    c->err_status = 0;
    if (bb_put(&c->b, "", 1)) return -1; /* offset 0 means "none" */
    c->url_off = c->b.len;
    timer_set(c, T_REQUEST);
    return 0;
}

static int cb_url(llhttp_t *p, const char *at, size_t n) {
    fe_http_conn_t *c = CONN(p);
    return head_grow(c, n) || bb_put(&c->b, at, n) ? -1 : 0;
}

static int cb_end_string(llhttp_t *p) {
    fe_http_conn_t *c = CONN(p);
    return bb_put(&c->b, "", 1) ? -1 : 0; /* the NUL after the current string */
}

static int cb_field(llhttp_t *p, const char *at, size_t n) {
    fe_http_conn_t *c = CONN(p);
    if (!c->in_value && (c->n_h == 0 || c->hoff[c->n_h - 1][1])) {
        /* a new header starts */
        if (c->n_h >= FE_HTTP_MAX_HEADERS) {
            c->err_status = 431;
            return -1;
        }
        c->hoff[c->n_h][0] = c->b.len;
        c->hoff[c->n_h][1] = 0;
        c->n_h++;
    }
    c->in_value = 0;
    return head_grow(c, n) || bb_put(&c->b, at, n) ? -1 : 0;
}

static int cb_value(llhttp_t *p, const char *at, size_t n) {
    fe_http_conn_t *c = CONN(p);
    if (!c->n_h) return -1;
    if (!c->in_value) {
        c->in_value = 1;
        c->hoff[c->n_h - 1][1] = c->b.len;
    }
    return head_grow(c, n) || bb_put(&c->b, at, n) ? -1 : 0;
}

static int cb_value_done(llhttp_t *p) {
    fe_http_conn_t *c = CONN(p);
    if (c->n_h && !c->hoff[c->n_h - 1][1]) c->hoff[c->n_h - 1][1] = c->b.len; /* empty value */
    c->in_value = 0;
    return bb_put(&c->b, "", 1) ? -1 : 0;
}

static int cb_headers_done(llhttp_t *p) {
    fe_http_conn_t *c = CONN(p);
    c->t_head = uv_hrtime();
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > c->srv->o.max_body_bytes) {
        c->err_status = 413;
        return -1;
    }
    return 0;
}

static int cb_body(llhttp_t *p, const char *at, size_t n) {
    fe_http_conn_t *c = CONN(p);
    if (c->body_bytes + n > c->srv->o.max_body_bytes) {
        c->err_status = 413;
        return -1;
    }
    if (!c->body_off) c->body_off = c->b.len;
    c->body_bytes += n;
    return bb_put(&c->b, at, n) ? -1 : 0;
}

static int cb_complete(llhttp_t *p) {
    fe_http_conn_t *c = CONN(p);
    if (c->body_off && bb_put(&c->b, "", 1)) return -1;
    return HPE_PAUSED;
}

/* --- reading ----------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    fe_http_conn_t *c = h->data;
    (void)hint;
    *buf = uv_buf_init(c->rbuf, sizeof c->rbuf);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
    fe_http_conn_t *c = s->data;
    if (nread < 0) {
        /* EOF or error: a request with the handler is abandoned */
        conn_close(c); /* half a request then EOF: nobody to answer */
        return;
    }
    if (nread == 0 || c->draining || c->close_after_write) return; /* after a final response: discard */
    if (bb_put(&c->pend, buf->base, (size_t)nread)) {
        conn_close(c);
        return;
    }
    if (c->busy) {
        if (c->pend.len >= PEND_MAX) {
            uv_read_stop(s);
            c->reading = 0;
        }
        return;
    }
    process(c);
}

static void read_start(fe_http_conn_t *c) {
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) conn_close(c);
}

static void on_timer(uv_timer_t *t) {
    fe_http_conn_t *c = t->data;
    if (c->timer_mode == T_REQUEST && !c->busy) fail(c, 408, "Request not received in time");
    else conn_close(c);
}

static void timer_set(fe_http_conn_t *c, int mode) {
    c->timer_mode = mode;
    uv_timer_stop(&c->timer);
    if (mode == T_IDLE) uv_timer_start(&c->timer, on_timer, c->srv->o.idle_timeout_ms, 0);
    else if (mode == T_REQUEST) uv_timer_start(&c->timer, on_timer, c->srv->o.request_timeout_ms, 0);
    else if (mode == T_LINGER) uv_timer_start(&c->timer, on_timer, LINGER_MS, 0);
}

/* --- accepting ------------------------------------------------------------------------------ */

static void on_connection(uv_stream_t *ls, int status) {
    fe_http_server_t *s = ls->data;
    if (status < 0 || s->closing) return;
    fe_http_conn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
    timer_set(c, T_IDLE);
    c->reading = 1;
    read_start(c);
}

static void settings_init(void) {
    llhttp_settings_init(&settings);
    settings.on_message_begin = cb_begin;
    settings.on_url = cb_url;
    settings.on_url_complete = cb_end_string;
    settings.on_header_field = cb_field;
    settings.on_header_field_complete = cb_end_string;
    settings.on_header_value = cb_value;
    settings.on_header_value_complete = cb_value_done;
    settings.on_headers_complete = cb_headers_done;
    settings.on_body = cb_body;
    settings.on_message_complete = cb_complete;
}

static int listen_fd(const fe_http_opts_t *o) {
    struct sockaddr_storage ss;
    const char *host = o->host ? o->host : "0.0.0.0";
    int fam = strchr(host, ':') ? AF_INET6 : AF_INET;
    int rc = fam == AF_INET6 ? uv_ip6_addr(host, o->port, (struct sockaddr_in6 *)&ss)
                             : uv_ip4_addr(host, o->port, (struct sockaddr_in *)&ss);
    if (rc) return rc;
    int fd = socket(fam, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (o->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    socklen_t len = fam == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 1024) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

static void on_listener_closed(uv_handle_t *h);

int fe_http_server_start(uv_loop_t *loop, const fe_http_opts_t *opts, fe_http_server_t **out) {
    static uv_once_t once = UV_ONCE_INIT;
    uv_once(&once, settings_init);
    if (!opts->handler) return -EINVAL;
    fe_http_server_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->loop = loop;
    s->o = *opts;
    if (!s->o.max_header_bytes) s->o.max_header_bytes = 16 * 1024;
    if (!s->o.max_body_bytes) s->o.max_body_bytes = 32u << 20;
    if (!s->o.request_timeout_ms) s->o.request_timeout_ms = 30000;
    if (!s->o.idle_timeout_ms) s->o.idle_timeout_ms = 5000;
    int fd = opts->fd > 0 ? opts->fd : listen_fd(opts);
    if (fd < 0) {
        free(s);
        return fd;
    }
    int rc = uv_tcp_init(loop, &s->tcp);
    if (rc) {
        close(fd);
        free(s);
        return rc;
    }
    s->tcp.data = s;
    rc = uv_tcp_open(&s->tcp, fd);
    if (rc) close(fd); /* not adopted by the handle */
    else rc = uv_listen((uv_stream_t *)&s->tcp, 1024, on_connection);
    if (rc) {
        /* the handle is initialised: free the server from its close callback */
        s->closing = 1;
        s->listening = 1;
        uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
        return rc;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (!uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len))
        s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    s->listening = 1;
    *out = s;
    return 0;
}

static void maybe_free_server(fe_http_server_t *s) {
    if (s->closing && !s->listening && !s->n_conns) free(s);
}

static void on_listener_closed(uv_handle_t *h) {
    fe_http_server_t *s = h->data;
    s->listening = 0;
    maybe_free_server(s);
}

void fe_http_server_close(fe_http_server_t **sp) {
    fe_http_server_t *s = *sp;
    if (!s) return;
    *sp = NULL;
    s->closing = 1;
    for (fe_http_conn_t *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (!c->busy) conn_close(c);
    }
    uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
}
