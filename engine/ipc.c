/* ZeroMQ transport (see ipc.h). One process-wide context, created on first
 * use; sockets use linger 0 so closing never blocks on a dead peer. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ipc.h"

struct ipc_server {
    void *sock;
    zmq_msg_t msg;
    int has_msg;
    uint64_t dropped;
};

struct ipc_client {
    void *sock;
    zmq_msg_t msg;
    int has_msg;
};

static void *g_ctx;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void ctx_init(void) { g_ctx = zmq_ctx_new(); }

static void *ctx(void) {
    pthread_once(&g_once, ctx_init);
    return g_ctx;
}

static int common_opts(void *s) {
    int zero = 0, hwm = 100000;
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) || zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) ||
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm))
        return -errno;
    return 0;
}

int ipc_server_open(const char *endpoint, ipc_server_t **out) {
    if (!ctx()) return -ENOMEM;
    ipc_server_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->sock = zmq_socket(g_ctx, ZMQ_ROUTER);
    int one = 1, rc = s->sock ? common_opts(s->sock) : -errno;
    if (!rc && zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one)) rc = -errno;
    /* a frontend restarted under the same id takes its name over at once,
     * instead of being refused while the dead connection lingers */
    if (!rc && zmq_setsockopt(s->sock, ZMQ_ROUTER_HANDOVER, &one, sizeof one)) rc = -errno;
    if (!rc && zmq_bind(s->sock, endpoint)) rc = -errno;
    if (rc) {
        if (s->sock) zmq_close(s->sock);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void ipc_server_close(ipc_server_t **sp) {
    ipc_server_t *s = *sp;
    if (!s) return;
    if (s->has_msg) zmq_msg_close(&s->msg);
    zmq_close(s->sock);
    free(s);
    *sp = NULL;
}

uint64_t ipc_server_dropped(const ipc_server_t *s) { return s->dropped; }

static int wait_in(void *sock, int timeout_ms) {
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    int n = zmq_poll(&it, 1, timeout_ms);
    if (n < 0) return -errno;
    return n;
}

/* Reads the rest of a multipart message and discards it. */
static void drain(void *sock) {
    int more;
    size_t ml = sizeof more;
    while (!zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml) && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_msg_recv(&m, sock, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
    }
}

static int more(void *sock) {
    int m = 0;
    size_t ml = sizeof m;
    zmq_getsockopt(sock, ZMQ_RCVMORE, &m, &ml);
    return m;
}

long ipc_server_recv(ipc_server_t *s, int timeout_ms, char peer[IPC_MAX_ID], const uint8_t **frame) {
    for (;;) {
        if (timeout_ms != 0) {
            int r = wait_in(s->sock, timeout_ms);
            if (r <= 0) return r;
        }
        zmq_msg_t id;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, s->sock, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            zmq_msg_close(&id);
            return e == EAGAIN ? 0 : -e;
        }
        size_t idn = zmq_msg_size(&id);
        int ok = idn > 0 && idn < IPC_MAX_ID && !memchr(zmq_msg_data(&id), 0, idn) && more(s->sock);
        if (ok) {
            memcpy(peer, zmq_msg_data(&id), idn);
            peer[idn] = 0;
        }
        zmq_msg_close(&id);
        if (!ok) {
            drain(s->sock);
            s->dropped++;
            continue;
        }
        if (s->has_msg) zmq_msg_close(&s->msg);
        zmq_msg_init(&s->msg);
        s->has_msg = 1;
        if (zmq_msg_recv(&s->msg, s->sock, ZMQ_DONTWAIT) < 0) {
            s->dropped++;
            continue;
        }
        if (more(s->sock)) { /* more than one frame: not ours */
            drain(s->sock);
            s->dropped++;
            continue;
        }
        *frame = zmq_msg_data(&s->msg);
        return (long)zmq_msg_size(&s->msg);
    }
}

int ipc_server_send(ipc_server_t *s, const char *peer, const void *frame, size_t len) {
    if (zmq_send(s->sock, peer, strlen(peer), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return -errno;
    if (zmq_send(s->sock, frame, len, ZMQ_DONTWAIT) < 0) return -errno;
    return 0;
}

int ipc_client_open(const char *endpoint, const char *id, ipc_client_t **out) {
    if (!ctx()) return -ENOMEM;
    size_t idn = strlen(id);
    if (!idn || idn >= IPC_MAX_ID) return -EINVAL;
    ipc_client_t *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->sock = zmq_socket(g_ctx, ZMQ_DEALER);
    int rc = c->sock ? common_opts(c->sock) : -errno;
    if (!rc && zmq_setsockopt(c->sock, ZMQ_ROUTING_ID, id, idn)) rc = -errno;
    if (!rc && zmq_connect(c->sock, endpoint)) rc = -errno;
    if (rc) {
        if (c->sock) zmq_close(c->sock);
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void ipc_client_close(ipc_client_t **cp) {
    ipc_client_t *c = *cp;
    if (!c) return;
    if (c->has_msg) zmq_msg_close(&c->msg);
    zmq_close(c->sock);
    free(c);
    *cp = NULL;
}

int ipc_client_send(ipc_client_t *c, const void *frame, size_t len) {
    return zmq_send(c->sock, frame, len, ZMQ_DONTWAIT) < 0 ? -errno : 0;
}

long ipc_client_recv(ipc_client_t *c, int timeout_ms, const uint8_t **frame) {
    for (;;) {
        if (timeout_ms != 0) {
            int r = wait_in(c->sock, timeout_ms);
            if (r <= 0) return r;
        }
        if (c->has_msg) zmq_msg_close(&c->msg);
        zmq_msg_init(&c->msg);
        c->has_msg = 1;
        if (zmq_msg_recv(&c->msg, c->sock, ZMQ_DONTWAIT) < 0) return errno == EAGAIN ? 0 : -errno;
        if (more(c->sock)) {
            drain(c->sock);
            continue;
        }
        *frame = zmq_msg_data(&c->msg);
        return (long)zmq_msg_size(&c->msg);
    }
}

int ipc_client_fd(ipc_client_t *c) {
    int fd = -1;
    size_t n = sizeof fd;
    return zmq_getsockopt(c->sock, ZMQ_FD, &fd, &n) ? -errno : fd;
}
