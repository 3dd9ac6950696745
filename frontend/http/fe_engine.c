/* Frontend side of the engine link (see fe_engine.h). ZMQ_FD is edge
 * triggered: it only signals a pipe that goes from empty to readable after a
 * read found it empty, and any ZeroMQ call on the socket may consume the
 * signal. So input is drained completely on every wake-up, and a uv_prepare
 * handle drains again *before* the loop blocks whenever we sent something
 * (a check handle would run after the poll and could block forever). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fe_engine.h"
#include "ipc.h"

typedef struct {
    ipc_client_t *c;
    uv_poll_t poll;
    int outstanding;
} link_t;

struct fe_eng {
    uv_loop_t *loop;
    fe_eng_cb_t cb;
    link_t *links;
    int n;
    uv_prepare_t check;
    int sent;             /* something was sent since the last drain */
    int open_handles;
    int closing;
    wire_buf_t buf;
    wire_str_t ids[1];
};

static void drain(fe_eng_t *e, int i) {
    link_t *l = &e->links[i];
    const uint8_t *f;
    long n;
    while ((n = ipc_client_recv(l->c, 0, &f)) > 0) {
        wire_msg_t m;
        if (wire_decode(f, (size_t)n, &m, e->ids, 1)) {
            fprintf(stderr, "frontend: dropping a malformed frame from engine %d\n", i);
            continue;
        }
        if (m.type != WIRE_OUTPUTS) continue;
        uint32_t pos = 0;
        wire_output_t o;
        while (wire_outputs_next(&m.u.outputs, &pos, &o)) {
            if (o.finish && l->outstanding > 0) l->outstanding--;
            e->cb.on_output(e->cb.ud, i, &o);
            if (e->closing) return;
        }
    }
}

static void on_poll(uv_poll_t *p, int status, int events) {
    fe_eng_t *e = p->data;
    (void)status;
    (void)events;
    for (int i = 0; i < e->n && !e->closing; i++)
        if (&e->links[i].poll == p) drain(e, i);
}

static void on_check(uv_prepare_t *h) {
    fe_eng_t *e = h->data;
    if (!e->sent) return;
    e->sent = 0;
    for (int i = 0; i < e->n && !e->closing; i++) drain(e, i);
}

int fe_eng_open(uv_loop_t *loop, const char *const *endpoints, int n, const char *client_id, fe_eng_cb_t cb,
                fe_eng_t **out) {
    fe_eng_t *e = calloc(1, sizeof *e);
    if (!e || !(e->links = calloc((size_t)n, sizeof *e->links))) {
        free(e);
        return -ENOMEM;
    }
    e->loop = loop;
    e->cb = cb;
    e->n = n;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = ipc_client_open(endpoints[i], client_id, &e->links[i].c);
        if (!rc) {
            int fd = ipc_client_fd(e->links[i].c);
            rc = fd < 0 ? fd : uv_poll_init(loop, &e->links[i].poll, fd);
            if (!rc) {
                e->links[i].poll.data = e;
                e->open_handles++;
                rc = uv_poll_start(&e->links[i].poll, UV_READABLE, on_poll);
            }
        }
    }
    if (!rc) {
        uv_prepare_init(loop, &e->check);
        e->check.data = e;
        e->open_handles++;
        uv_prepare_start(&e->check, on_check);
        e->sent = 1; /* a first drain marks the pipes read-empty */
    }
    *out = e;
    if (rc) fe_eng_close(out);
    return rc;
}

static void on_closed(uv_handle_t *h) {
    fe_eng_t *e = h->data;
    if (--e->open_handles) return;
    for (int i = 0; i < e->n; i++) ipc_client_close(&e->links[i].c);
    wire_buf_free(&e->buf);
    free(e->links);
    free(e);
}

void fe_eng_close(fe_eng_t **pp) {
    fe_eng_t *e = *pp;
    if (!e) return;
    *pp = NULL;
    e->closing = 1;
    if (!e->open_handles) {
        for (int i = 0; i < e->n; i++) ipc_client_close(&e->links[i].c);
        free(e->links);
        free(e);
        return;
    }
    for (int i = 0; i < e->n; i++)
        if (uv_is_active((uv_handle_t *)&e->links[i].poll) || e->links[i].poll.data)
            uv_close((uv_handle_t *)&e->links[i].poll, on_closed);
    if (e->check.data) uv_close((uv_handle_t *)&e->check, on_closed);
}

int fe_eng_add(fe_eng_t *e, const wire_add_t *req, int *engine) {
    int best = 0;
    for (int i = 1; i < e->n; i++)
        if (e->links[i].outstanding < e->links[best].outstanding) best = i;
    e->buf.len = 0;
    if (wire_encode_add(&e->buf, req)) return -ENOMEM;
    int rc = ipc_client_send(e->links[best].c, e->buf.data, e->buf.len);
    if (rc) return rc;
    e->links[best].outstanding++;
    e->sent = 1;
    *engine = best;
    return 0;
}

int fe_eng_abort(fe_eng_t *e, int engine, const char *id) {
    if (engine < 0 || engine >= e->n) return -EINVAL;
    wire_str_t s = {id, (uint32_t)strlen(id)};
    e->buf.len = 0;
    if (wire_encode_abort(&e->buf, &s, 1)) return -ENOMEM;
    e->sent = 1;
    /* the engine answers with a final abort output, which settles the count */
    return ipc_client_send(e->links[engine].c, e->buf.data, e->buf.len);
}

int fe_eng_outstanding(const fe_eng_t *e, int i) { return i >= 0 && i < e->n ? e->links[i].outstanding : 0; }

int fe_eng_utility(fe_eng_t *e, const char *method, int64_t arg) {
    wire_utility_t u = {.call_id = 0, .method = {method, (uint32_t)strlen(method)}, .arg = arg};
    int rc = 0;
    for (int i = 0; i < e->n; i++) {
        e->buf.len = 0;
        if (wire_encode_utility(&e->buf, WIRE_UTILITY, &u)) return -ENOMEM;
        int r = ipc_client_send(e->links[i].c, e->buf.data, e->buf.len);
        if (r && !rc) rc = r;
    }
    e->sent = 1;
    return rc;
}
