/* ipc: ZeroMQ transport between frontends and engines. Frames are whole wire
 * messages (engine/wire.h); this module only moves them.
 *
 * Topology: each engine binds one ROUTER socket; every frontend worker and the
 * supervisor connects a DEALER with a routing id ("fe-<index>", "sup"), so the
 * engine answers a peer by its id and learns of frontends as they connect.
 * Sends to a peer that is gone fail with -EHOSTUNREACH (ROUTER_MANDATORY)
 * instead of vanishing; a peer reconnecting under an id in use takes it over
 * (ROUTER_HANDOVER), so a restarted frontend is reachable at once. Clients reconnect by themselves when an engine
 * restarts on the same endpoint.
 *
 * Thread-safety: a socket belongs to one thread (ZeroMQ's rule); the context
 * is shared. Errors are negative errno values.
 */
#ifndef CVLLM_ENGINE_IPC_H
#define CVLLM_ENGINE_IPC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ipc_server ipc_server_t;
typedef struct ipc_client ipc_client_t;

#define IPC_MAX_ID 32

/* Binds a ROUTER at endpoint ("ipc:///path", "tcp://127.0.0.1:5555").
 * Returns 0 and *out (caller owns it; ipc_server_close) or a negative errno. */
int ipc_server_open(const char *endpoint, ipc_server_t **out);
void ipc_server_close(ipc_server_t **s);

/* Waits up to timeout_ms (-1: forever, 0: poll) for a frame. On success
 * copies the sender's id into peer (NUL-terminated, < IPC_MAX_ID bytes) and
 * returns the frame length, with *frame pointing into a buffer owned by the
 * server, valid until the next recv. Returns 0 on timeout, a negative errno
 * on error (-EINTR when interrupted by a signal). Malformed envelopes (not
 * id + one frame) are dropped and counted, never returned. */
long ipc_server_recv(ipc_server_t *s, int timeout_ms, char peer[IPC_MAX_ID], const uint8_t **frame);

/* Sends one frame to peer. Returns 0, -EHOSTUNREACH (peer not connected),
 * -EAGAIN (peer's queue full) or another negative errno. */
int ipc_server_send(ipc_server_t *s, const char *peer, const void *frame, size_t len);

/* Frames dropped because their envelope was malformed. */
uint64_t ipc_server_dropped(const ipc_server_t *s);

/* Connects a DEALER with routing id `id` to endpoint. */
int ipc_client_open(const char *endpoint, const char *id, ipc_client_t **out);
void ipc_client_close(ipc_client_t **c);

/* Sends one frame (queued by ZeroMQ if the engine is not up yet). */
int ipc_client_send(ipc_client_t *c, const void *frame, size_t len);

/* Receives one frame like ipc_server_recv (no peer). */
long ipc_client_recv(ipc_client_t *c, int timeout_ms, const uint8_t **frame);

/* The file descriptor to watch for readability in an event loop (ZMQ_FD).
 * It is edge-triggered: after it fires, call ipc_client_recv(c, 0, ...) until
 * it returns 0. */
int ipc_client_fd(ipc_client_t *c);

#ifdef __cplusplus
}
#endif
#endif
