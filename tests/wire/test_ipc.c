/* ZeroMQ transport: frames with routing ids both ways, unknown peers,
 * malformed envelopes, a client that connects before the engine binds, and an
 * engine restarting on the same endpoint. Real sockets over ipc://. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "../check.h"
#include "ipc.h"


int main(void) {
    char dir[] = "/tmp/cvllm-ipc-XXXXXX", ep[128];
    if (!mkdtemp(dir)) return 1;
    snprintf(ep, sizeof ep, "ipc://%s/engine-0", dir);

    /* a client may connect before the engine is up: its frame waits */
    ipc_client_t *a = NULL, *b = NULL;
    CHECK(ipc_client_open(ep, "fe-0", &a) == 0);
    CHECK(ipc_client_send(a, "early", 5) == 0);
    ipc_server_t *s = NULL;
    CHECK(ipc_server_open(ep, &s) == 0);
    CHECK(ipc_client_open(ep, "fe-1", &b) == 0);
    char peer[IPC_MAX_ID];
    const uint8_t *f;
    long n = ipc_server_recv(s, 2000, peer, &f);
    CHECK(n == 5 && !memcmp(f, "early", 5) && !strcmp(peer, "fe-0"));
    CHECK(ipc_client_send(b, "hello", 5) == 0);
    n = ipc_server_recv(s, 2000, peer, &f);
    CHECK(n == 5 && !strcmp(peer, "fe-1"));
    /* answers go to the right client */
    CHECK(ipc_server_send(s, "fe-1", "to-b", 4) == 0);
    CHECK(ipc_server_send(s, "fe-0", "to-a", 4) == 0);
    n = ipc_client_recv(b, 2000, &f);
    CHECK(n == 4 && !memcmp(f, "to-b", 4));
    n = ipc_client_recv(a, 2000, &f);
    CHECK(n == 4 && !memcmp(f, "to-a", 4));
    CHECK(ipc_client_recv(a, 0, &f) == 0);
    CHECK(ipc_client_fd(a) >= 0);
    /* unknown peer: an error, not a silent drop */
    CHECK(ipc_server_send(s, "fe-9", "x", 1) == -EHOSTUNREACH);
    /* a peer that sends two frames in one message: dropped and counted */
    void *ctx = zmq_ctx_new(), *raw = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(raw, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(raw, ZMQ_ROUTING_ID, "raw", 3);
    zmq_connect(raw, ep);
    zmq_send(raw, "p1", 2, ZMQ_SNDMORE);
    zmq_send(raw, "p2", 2, 0);
    zmq_send(raw, "ok", 2, 0);
    n = ipc_server_recv(s, 2000, peer, &f);
    CHECK(n == 2 && !memcmp(f, "ok", 2) && !strcmp(peer, "raw"));
    CHECK(ipc_server_dropped(s) == 1);
    zmq_close(raw);
    zmq_ctx_term(ctx);
    /* the engine restarts on the same endpoint; clients reconnect by themselves */
    ipc_server_close(&s);
    CHECK(s == NULL);
    CHECK(ipc_server_open(ep, &s) == 0);
    int got = 0;
    for (int i = 0; i < 50 && !got; i++) {
        ipc_client_send(a, "again", 5);
        n = ipc_server_recv(s, 100, peer, &f);
        got = n == 5 && !strcmp(peer, "fe-0");
    }
    CHECK(got);
    CHECK(ipc_server_recv(s, 50, peer, &f) >= 0);
    ipc_client_close(&a);
    ipc_client_close(&b);
    ipc_server_close(&s);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {
    }
    printf("%s\n", failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}
