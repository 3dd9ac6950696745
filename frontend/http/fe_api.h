/* fe_api: the API worker's routes on top of fe_http. Today: GET /health,
 * GET|POST /ping, GET /version, GET /metrics (the merged multiprocess
 * exposition, Accept-negotiated, gzip when asked) and vLLM's error envelope;
 * the OpenAI endpoints join when the engine client lands.
 * Thread-safety: one loop thread, like fe_http. */
#ifndef CVLLM_FE_API_H
#define CVLLM_FE_API_H

#include "fe_http.h"
#include "shm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fe_api fe_api_t;

typedef struct {
    const char *metrics_dir;   /* PROMETHEUS_MULTIPROC_DIR to merge on /metrics */
    shm_registry_t *registry;  /* this worker's metrics (the collector's self-metrics go here); may be NULL */
    const char *version;       /* reported by /version */
    /* Engine health: returns non-zero while the engine is healthy. NULL:
     * always healthy. /health answers 503 otherwise, as vLLM does. */
    int (*engine_ok)(void *ud);
    void *ud;
} fe_api_opts_t;

/* Returns 0 and sets *out (caller owns it; fe_api_destroy), or a negative
 * code (SHM_ENODIR for a bad metrics_dir, -ENOMEM). */
int fe_api_new(const fe_api_opts_t *opts, fe_api_t **out);
void fe_api_destroy(fe_api_t **api);

/* The fe_http handler: pass fe_api_handle as opts.handler and the api as ud. */
void fe_api_handle(void *api, fe_http_conn_t *c, const fe_http_req_t *req);

/* The fe_http completion hook (opts.on_complete): records the HTTP metrics of
 * prometheus-fastapi-instrumentator as vLLM exposes them (http_requests_total
 * {method,status,handler}, http_request_size_bytes, http_response_size_bytes,
 * http_request_duration_highr_seconds, http_request_duration_seconds
 * {method,handler}); /metrics, /health, /load, /ping, /version and
 * /server_info are excluded, unknown routes count as handler "none". */
void fe_api_on_complete(void *api, fe_http_conn_t *c, const fe_http_req_t *req, int status, size_t content_length,
                        double seconds);

/* Answers with vLLM's error envelope:
 * {"error": {"message": ..., "type": ..., "param": null, "code": status}}. */
int fe_api_error(fe_http_conn_t *c, int status, const char *type, const char *message);

#ifdef __cplusplus
}
#endif
#endif
