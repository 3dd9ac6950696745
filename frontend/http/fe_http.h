/* fe_http: the frontend workers' HTTP/1.1 server, on a libuv loop with the
 * llhttp parser.
 *
 * One request at a time per connection (pipelined requests wait, parsed, until
 * the response to the previous one is complete). Keep-alive as the client
 * asks. Limits answered with a response and a close: request head larger than
 * max_header_bytes -> 431, body larger than max_body_bytes -> 413, malformed
 * HTTP -> 400, head or body not complete within request_timeout_ms -> 408.
 * Idle keep-alive connections close after idle_timeout_ms.
 *
 * Thread-safety: everything runs on the loop's thread.
 */
#ifndef CVLLM_FE_HTTP_H
#define CVLLM_FE_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FE_HTTP_MAX_HEADERS 64

typedef struct fe_http_server fe_http_server_t;
typedef struct fe_http_conn fe_http_conn_t;

/* A parsed request. Borrowed: valid until the response is complete (the
 * handler may keep it while it answers asynchronously). */
typedef struct {
    const char *method;           /* "GET", "POST", ... */
    const char *target;           /* as sent: path plus query */
    const char *path;             /* target up to '?' */
    const char *query;            /* after '?', or "" */
    const char *hname[FE_HTTP_MAX_HEADERS]; /* lower-cased */
    const char *hvalue[FE_HTTP_MAX_HEADERS];
    size_t n_headers;
    const char *body;             /* NUL-terminated; body_len bytes */
    size_t body_len;
    int keep_alive;
} fe_http_req_t;

/* Called once per complete request; it must eventually answer with
 * fe_http_respond or fe_http_stream_*, or the connection stays blocked. If the
 * client goes away first, on_abort (if set) is called and the connection must
 * not be used after it returns. */
typedef void (*fe_http_handler_fn)(void *ud, fe_http_conn_t *c, const fe_http_req_t *req);

typedef struct {
    const char *host;             /* NULL: 0.0.0.0 */
    int port;
    int fd;                       /* > 0: an already bound, listening socket to use */
    int reuseport;                /* SO_REUSEPORT: several workers share the port */
    size_t max_header_bytes;      /* 0: 16 KiB */
    size_t max_body_bytes;        /* 0: 32 MiB */
    uint64_t request_timeout_ms;  /* 0: 30 s, from the first byte of a request */
    uint64_t idle_timeout_ms;     /* 0: 5 s (uvicorn's keep-alive default) */
    fe_http_handler_fn handler;
    void (*on_abort)(void *ud, fe_http_conn_t *c);
    /* Called when a response is complete (not for aborted requests): status,
     * the Content-Length sent (0 for a streamed response) and the seconds
     * from the end of the request head to the end of the response. */
    void (*on_complete)(void *ud, fe_http_conn_t *c, const fe_http_req_t *req, int status, size_t content_length,
                        double seconds);
    void *ud;
} fe_http_opts_t;

/* Binds and listens (unless opts->fd is given) and starts accepting on loop.
 * Returns 0 and sets *out (caller owns it; fe_http_server_close), or a
 * negative errno (e.g. -EADDRINUSE). */
int fe_http_server_start(uv_loop_t *loop, const fe_http_opts_t *opts, fe_http_server_t **out);

/* The bound port (useful with port 0). */
int fe_http_server_port(const fe_http_server_t *s);

/* Number of open connections and of requests being answered. */
size_t fe_http_server_connections(const fe_http_server_t *s);
size_t fe_http_server_inflight(const fe_http_server_t *s);

/* Stops accepting and closes idle connections; connections with a request in
 * flight close after their response. The server is freed once every handle
 * has closed (run the loop); *s is set to NULL. */
void fe_http_server_close(fe_http_server_t **s);

/* Case-insensitive header lookup; the first value. Borrowed, or NULL. */
const char *fe_http_header(const fe_http_req_t *r, const char *name);

/* Sends a complete response with Content-Length. extra_headers: NULL or
 * "Name: value\r\n..." lines. The body is copied. Returns 0 or a negative
 * errno (the connection is then closing). */
int fe_http_respond(fe_http_conn_t *c, int status, const char *content_type, const char *extra_headers,
                    const void *body, size_t n);

/* Streaming (chunked transfer encoding, e.g. SSE): start, any number of
 * writes, end. Data are copied. */
int fe_http_stream_start(fe_http_conn_t *c, int status, const char *content_type, const char *extra_headers);
int fe_http_stream_write(fe_http_conn_t *c, const void *data, size_t n);
int fe_http_stream_end(fe_http_conn_t *c);

/* Per-request user pointer (e.g. the request's engine state). */
void fe_http_conn_set_data(fe_http_conn_t *c, void *data);
void *fe_http_conn_data(const fe_http_conn_t *c);

/* Standard reason phrase ("Not Found"), or "Unknown". */
const char *fe_http_reason(int status);

#ifdef __cplusplus
}
#endif
#endif
