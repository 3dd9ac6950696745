/* Test driver for the frontend HTTP layer: runs one API worker (fe_http +
 * fe_api) on a loop, with this process's own metrics registry, until SIGTERM
 * or SIGINT. Prints "listening <port>" once ready.
 *   http_tool --metrics-dir DIR [--host H] [--port P] [--reuseport]
 *             [--request-timeout-ms N] [--idle-timeout-ms N]
 *             [--max-header-bytes N] [--max-body-bytes N] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "fe_api.h"
#include "fe_http.h"
#include "shm.h"

static fe_http_server_t *srv;
static uv_signal_t sig_term, sig_int;

static void on_signal(uv_signal_t *s, int signum) {
    (void)signum;
    fe_http_server_close(&srv);
    uv_close((uv_handle_t *)&sig_term, NULL);
    uv_close((uv_handle_t *)&sig_int, NULL);
    (void)s;
}

int main(int argc, char **argv) {
    fe_http_opts_t ho = {.port = 0};
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--reuseport")) ho.reuseport = 1;
        else if (!v) return fprintf(stderr, "missing value for %s\n", a), 2;
        else if (!strcmp(a, "--metrics-dir")) dir = v, i++;
        else if (!strcmp(a, "--host")) ho.host = v, i++;
        else if (!strcmp(a, "--port")) ho.port = atoi(v), i++;
        else if (!strcmp(a, "--request-timeout-ms")) ho.request_timeout_ms = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--idle-timeout-ms")) ho.idle_timeout_ms = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--max-header-bytes")) ho.max_header_bytes = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--max-body-bytes")) ho.max_body_bytes = strtoull(v, NULL, 10), i++;
        else return fprintf(stderr, "unknown argument %s\n", a), 2;
    }
    if (!dir) return fprintf(stderr, "--metrics-dir is required\n"), 2;
    shm_registry_t *reg;
    shm_registry_opts_t ro = {.dir = dir};
    int rc = shm_registry_new(&ro, &reg);
    if (rc) return fprintf(stderr, "registry: %s\n", shm_strerror(rc)), 1;
    fe_api_t *api;
    fe_api_opts_t ao = {.metrics_dir = dir, .registry = reg, .version = "test"};
    if ((rc = fe_api_new(&ao, &api))) return fprintf(stderr, "api: %s\n", shm_strerror(rc)), 1;
    uv_loop_t *loop = uv_default_loop();
    ho.handler = fe_api_handle;
    ho.on_complete = fe_api_on_complete;
    ho.ud = api;
    if ((rc = fe_http_server_start(loop, &ho, &srv))) return fprintf(stderr, "listen: %s\n", uv_strerror(rc)), 1;
    uv_signal_init(loop, &sig_term);
    uv_signal_init(loop, &sig_int);
    uv_signal_start(&sig_term, on_signal, SIGTERM);
    uv_signal_start(&sig_int, on_signal, SIGINT);
    printf("listening %d\n", fe_http_server_port(srv));
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(loop);
    fe_api_destroy(&api);
    shm_registry_destroy(&reg);
    if (rc) fprintf(stderr, "loop not empty at exit: %s\n", uv_strerror(rc));
    return rc ? 1 : 0;
}
