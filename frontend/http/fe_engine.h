/* fe_engine: a frontend worker's link to the engines (one DEALER per engine,
 * engine/ipc.h) on the worker's libuv loop. Requests go to the engine with
 * the fewest outstanding requests (vLLM's data-parallel routing); outputs
 * come back through a callback, one per request per engine step.
 *
 * Thread-safety: the loop's thread only. Errors are negative errno values.
 */
#ifndef CVLLM_FE_ENGINE_H
#define CVLLM_FE_ENGINE_H

#include <uv.h>

#include "wire.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fe_eng fe_eng_t;

typedef struct {
    /* One request's news from one step of engine `engine`; o is borrowed for
     * the call. A finished output (o->finish != 0) is the last for its id. */
    void (*on_output)(void *ud, int engine, const wire_output_t *o);
    void *ud;
} fe_eng_cb_t;

/* Connects to n engine endpoints as client `client_id` (e.g. "fe-2").
 * Returns 0 and sets *out (caller owns it; fe_eng_close), or a negative errno. */
int fe_eng_open(uv_loop_t *loop, const char *const *endpoints, int n, const char *client_id, fe_eng_cb_t cb,
                fe_eng_t **out);

/* Closes the sockets; the handle is freed once its uv handles closed (run
 * the loop). Sets *e to NULL. */
void fe_eng_close(fe_eng_t **e);

/* Sends a request to the least loaded engine (*engine receives its index).
 * Returns 0 or a negative errno (the request was not sent). */
int fe_eng_add(fe_eng_t *e, const wire_add_t *req, int *engine);

/* Aborts request id on engine `engine`; no further output will be delivered
 * for it by this module. */
int fe_eng_abort(fe_eng_t *e, int engine, const char *id);

/* Requests in flight on engine i. */
int fe_eng_outstanding(const fe_eng_t *e, int i);

/* Sends a utility call to every engine (results are not awaited here). */
int fe_eng_utility(fe_eng_t *e, const char *method, int64_t arg);

#ifdef __cplusplus
}
#endif
#endif
