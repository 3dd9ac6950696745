/* fe_srv: the API worker's OpenAI endpoints (POST /v1/completions,
 * POST /v1/chat/completions, GET /v1/models) on top of fe_api, fe_oai, the
 * tokenizer, the chat template and fe_engine. Everything else falls through
 * to fe_api_handle. Thread-safety: the loop's thread only. */
#ifndef CVLLM_FE_SRV_H
#define CVLLM_FE_SRV_H
#include <stdint.h>
#include <uv.h>
#include "chat_template.h"
#include "fe_api.h"
#include "fe_reqm.h"
#include "fe_engine.h"
#include "tokenizer.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef struct fe_srv fe_srv_t;
typedef struct {
    fe_api_t *api;                /* fallback routes; borrowed */
    const tok_tokenizer_t *tok;   /* borrowed */
    const tpl_template_t *tpl;    /* NULL: chat answers 400 */
    const char *bos, *eos;        /* template bos/eos strings (may be NULL) */
    const char *served_name;      /* model name clients use */
    const char *root;             /* model path for /v1/models */
    uint32_t max_model_len;
    const char *const *api_keys;  /* n_api_keys keys; 0: no auth */
    int n_api_keys;
    uint16_t client_index;
    fe_reqm_t *reqm;              /* vLLM's request metrics; NULL: not recorded */
} fe_srv_opts_t;
/* Opens the engine link (endpoints, client id) on loop. Returns 0 or a
 * negative errno. */
int fe_srv_new(uv_loop_t *loop, const fe_srv_opts_t *o, const char *const *endpoints, int n_endpoints,
               const char *client_id, fe_srv_t **out);
/* Closes the engine link and frees everything (run the loop afterwards). */
void fe_srv_destroy(fe_srv_t **s);
/* fe_http handler / abort hook: pass with ud = the fe_srv_t. */
void fe_srv_handle(void *ud, fe_http_conn_t *c, const fe_http_req_t *req);
void fe_srv_on_abort(void *ud, fe_http_conn_t *c);
/* fe_http completion hook: forwards to fe_api_on_complete. */
void fe_srv_on_complete(void *ud, fe_http_conn_t *c, const fe_http_req_t *req, int status, size_t content_length,
                        double seconds);
/* Requests in flight (HTTP requests waiting on the engine). */
int fe_srv_inflight(const fe_srv_t *s);
#ifdef __cplusplus
}
#endif
#endif
