/* `cvllm serve`: the supervisor. It prepares the multiprocess metrics
 * directory, starts one engine process per data-parallel rank, waits until
 * every engine is ready, then starts the API workers (which share the port
 * with SO_REUSEPORT, so nothing accepts traffic before the engines are
 * ready). It then supervises:
 *   - a worker that dies is restarted; its live gauges are removed and its
 *     counters folded into the archive files (shm_compact_dead), so totals
 *     never go backwards and the file count stays bounded;
 *   - an engine that dies ends the server with exit status 1, as vLLM's
 *     server exits when its engine core dies (the workers are told first,
 *     SIGUSR1, so /health answers 503 for a second, then stopped);
 *   - SIGINT/SIGTERM: workers stop accepting and drain, engines stop, the
 *     private metrics directory is removed, exit status 0.
 * Children are this same binary (/proc/self/exe) run as `engine-core` and
 * `api-worker` with the serve flags passed through. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ipc.h"
#include "serve_args.h"
#include "shm.h"
#include "wire.h"

#define MAX_PROCS 64
#define DEFAULT_MODEL "models/SmolLM2-135M-Instruct.Q4_1.gguf"

typedef struct {
    pid_t pid;
    int index;
    int engine;        /* 1: engine-core, 0: api-worker */
    double started;
    int restarts;
} child_t;

typedef struct {
    serve_args_t a;
    int argc;
    char **argv;          /* the serve arguments, passed through */
    const char *model;
    char metrics_dir[PATH_MAX];
    int own_metrics_dir;
    char run_dir[256];           /* short: ipc:// paths are limited to ~107 bytes */
    char endpoints[64 * 320];
    child_t kids[MAX_PROCS];
    int n_kids;
} sup_t;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...) {
    time_t t = time(NULL);
    struct tm tm;
    char ts[32];
    localtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%m-%d %H:%M:%S", &tm);
    fprintf(stderr, "INFO %s [cvllm serve] ", ts);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Resolves the default model: $CVLLM_MODEL, ./models/..., or models/ next to
 * the source tree the binary was built in (build/cli/cvllm -> ../../models). */
static const char *default_model(char *buf, size_t n) {
    const char *env = getenv("CVLLM_MODEL");
    if (env && *env) return env;
    if (!access(DEFAULT_MODEL, R_OK)) return DEFAULT_MODEL;
    char exe[PATH_MAX];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l > 0) {
        exe[l] = 0;
        char *s = strrchr(exe, '/');
        for (int up = 0; s && up < 3; up++) {
            *s = 0;
            if ((size_t)snprintf(buf, n, "%s/%s", exe, DEFAULT_MODEL) < n && !access(buf, R_OK)) return buf;
            s = strrchr(exe, '/');
        }
    }
    return NULL;
}

static pid_t spawn(sup_t *s, int engine, int index) {
    char idx[16], *args[256];
    int n = 0;
    snprintf(idx, sizeof idx, "%d", index);
    args[n++] = "cvllm";
    args[n++] = engine ? "engine-core" : "api-worker";
    if (!s->a.model) args[n++] = (char *)s->model;
    for (int i = 1; i < s->argc && n < 240; i++) {
        if (!strcmp(s->argv[i], "--dry-run")) continue;
        args[n++] = s->argv[i];
    }
    char ep[320]; /* on the stack: the child execs with its copy, the parent needs none */
    if (engine) {
        snprintf(ep, sizeof ep, "ipc://%s/engine-%d", s->run_dir, index);
        args[n++] = "--engine-index";
        args[n++] = idx;
        args[n++] = "--engine-endpoint";
        args[n++] = ep;
    } else {
        args[n++] = "--worker-index";
        args[n++] = idx;
        args[n++] = "--engine-endpoint";
        args[n++] = s->endpoints;
    }
    args[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the supervisor */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv("/proc/self/exe", args);
        fprintf(stderr, "cvllm serve: cannot start %s: %s\n", args[1], strerror(errno));
        _exit(127);
    }
    if (pid > 0 && s->n_kids < MAX_PROCS) {
        s->kids[s->n_kids++] = (child_t){.pid = pid, .index = index, .engine = engine, .started = now_s()};
    }
    return pid;
}

static child_t *find_kid(sup_t *s, pid_t pid) {
    for (int i = 0; i < s->n_kids; i++)
        if (s->kids[i].pid == pid) return &s->kids[i];
    return NULL;
}

static void signal_kids(sup_t *s, int engine, int sig) {
    for (int i = 0; i < s->n_kids; i++)
        if (s->kids[i].pid > 0 && s->kids[i].engine == engine) kill(s->kids[i].pid, sig);
}

/* Waits for the children of one kind to exit, up to `seconds`, then kills. */
static void reap_kind(sup_t *s, int engine, double seconds) {
    double end = now_s() + seconds;
    for (;;) {
        int alive = 0;
        for (int i = 0; i < s->n_kids; i++) {
            child_t *k = &s->kids[i];
            if (k->pid <= 0 || k->engine != engine) continue;
            int st;
            pid_t r = waitpid(k->pid, &st, WNOHANG);
            if (r == k->pid || (r < 0 && errno == ECHILD)) k->pid = 0;
            else alive++;
        }
        if (!alive) return;
        if (now_s() > end) {
            signal_kids(s, engine, SIGKILL);
            end = now_s() + 5;
        }
        usleep(20000);
    }
}

/* Asks each engine for its READY handshake until all answered or one died. */
static int wait_engines_ready(sup_t *s) {
    for (int e = 0; e < s->a.data_parallel_size; e++) {
        char ep[320];
        snprintf(ep, sizeof ep, "ipc://%s/engine-%d", s->run_dir, e);
        ipc_client_t *c = NULL;
        if (ipc_client_open(ep, "sup", &c)) return -1;
        wire_buf_t b = {0};
        wire_utility_t u = {.method = {"ready", 5}};
        int ready = 0;
        while (!ready) {
            b.len = 0;
            wire_encode_utility(&b, WIRE_UTILITY, &u);
            ipc_client_send(c, b.data, b.len);
            const uint8_t *f;
            long n = ipc_client_recv(c, 500, &f);
            wire_msg_t m;
            wire_str_t ids[1];
            if (n > 0 && !wire_decode(f, (size_t)n, &m, ids, 1) && m.type == WIRE_READY) {
                say("engine %d ready: max_model_len %u, %u KV blocks of %u tokens", e, m.u.ready.max_model_len,
                    m.u.ready.num_blocks, m.u.ready.block_size);
                ready = 1;
            }
            for (int i = 0; i < s->n_kids && !ready; i++) {
                int st;
                if (s->kids[i].engine && waitpid(s->kids[i].pid, &st, WNOHANG) == s->kids[i].pid) {
                    s->kids[i].pid = 0;
                    wire_buf_free(&b);
                    ipc_client_close(&c);
                    return -1;
                }
            }
        }
        wire_buf_free(&b);
        ipc_client_close(&c);
    }
    return 0;
}

static void cleanup_dirs(sup_t *s) {
    if (s->own_metrics_dir) shm_dir_remove(s->metrics_dir);
    char path[320];
    for (int e = 0; e < s->a.data_parallel_size; e++) {
        snprintf(path, sizeof path, "%s/engine-%d", s->run_dir, e);
        unlink(path);
    }
    rmdir(s->run_dir);
}

int cmd_serve(int argc, char **argv) {
    static sup_t s;
    int help;
    char err[512], mbuf[PATH_MAX];
    if (serve_args_parse(argc, argv, &s.a, &help, err, sizeof err)) {
        fprintf(stderr, "cvllm serve: error: %s\n", err);
        return 2;
    }
    if (help) {
        serve_args_usage(stdout);
        return 0;
    }
    s.argc = argc;
    s.argv = argv;
    s.model = s.a.model ? s.a.model : default_model(mbuf, sizeof mbuf);
    if (!s.model) {
        fprintf(stderr, "cvllm serve: no model given and the default model is not present "
                        "(run ./scripts/fetch-model, or set CVLLM_MODEL)\n");
        return 2;
    }
    if (s.a.dry_run) {
        serve_args_print_json(&s.a, stdout);
        return 0;
    }
    struct stat st;
    if (stat(s.model, &st) < 0) {
        fprintf(stderr, "cvllm serve: model %s: %s\n", s.model, strerror(errno));
        return 2;
    }
    prctl(PR_SET_NAME, "cvllm-serve", 0, 0, 0);
    /* signals are taken synchronously, so children inherit nothing odd */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, NULL);

    const char *env_dir = getenv("PROMETHEUS_MULTIPROC_DIR");
    if (env_dir && *env_dir) {
        snprintf(s.metrics_dir, sizeof s.metrics_dir, "%s", env_dir);
        fprintf(stderr, "WARNING [cvllm serve] Found PROMETHEUS_MULTIPROC_DIR was set by user. This directory must "
                        "be wiped between vLLM runs or you will find inaccurate metrics. Unset the variable and vLLM "
                        "will properly handle cleanup.\n");
    } else {
        int rc = shm_dir_create_private(NULL, s.metrics_dir, sizeof s.metrics_dir);
        if (rc) {
            fprintf(stderr, "cvllm serve: cannot create a metrics directory: %s\n", shm_strerror(rc));
            return 1;
        }
        s.own_metrics_dir = 1;
        setenv("PROMETHEUS_MULTIPROC_DIR", s.metrics_dir, 1);
    }
    snprintf(s.run_dir, sizeof s.run_dir, "%s/cvllm-run-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(s.run_dir)) {
        fprintf(stderr, "cvllm serve: cannot create a run directory: %s\n", strerror(errno));
        cleanup_dirs(&s);
        return 1;
    }
    size_t off = 0;
    for (int e = 0; e < s.a.data_parallel_size; e++)
        off += (size_t)snprintf(s.endpoints + off, sizeof s.endpoints - off, "%sipc://%s/engine-%d", e ? "," : "",
                                s.run_dir, e);
    say("cvllm %s serving %s", CVLLM_VERSION, s.model);
    say("dtype %s, %d engine(s), %d API worker(s), metrics in %s", s.a.dtype, s.a.data_parallel_size,
        s.a.api_server_count, s.metrics_dir);
    for (int e = 0; e < s.a.data_parallel_size; e++) spawn(&s, 1, e);
    if (wait_engines_ready(&s)) {
        fprintf(stderr, "ERROR [cvllm serve] an engine process exited during startup\n");
        signal_kids(&s, 1, SIGTERM);
        reap_kind(&s, 1, 10);
        cleanup_dirs(&s);
        return 1;
    }
    for (int w = 0; w < s.a.api_server_count; w++) spawn(&s, 0, w);
    say("Starting API workers; serving on http://%s:%d", s.a.host ? s.a.host : "0.0.0.0", s.a.port);

    int exit_code = 0;
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&set, &si);
        if (sig < 0) continue;
        if (sig == SIGINT || sig == SIGTERM) {
            say("Shutting down (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
            break;
        }
        /* SIGCHLD: reap everything that exited */
        int wst;
        pid_t pid;
        int engine_died = 0;
        while ((pid = waitpid(-1, &wst, WNOHANG)) > 0) {
            child_t *k = find_kid(&s, pid);
            if (!k) continue;
            k->pid = 0;
            char pidstr[32];
            snprintf(pidstr, sizeof pidstr, "%d", (int)pid);
            if (k->engine) {
                fprintf(stderr, "ERROR [cvllm serve] engine %d (pid %d) died (%s %d); shutting down\n", k->index,
                        (int)pid, WIFSIGNALED(wst) ? "signal" : "status",
                        WIFSIGNALED(wst) ? WTERMSIG(wst) : WEXITSTATUS(wst));
                shm_mark_process_dead(s.metrics_dir, pidstr);
                engine_died = 1;
                continue;
            }
            /* a worker died: fold its metrics away, restart it (bounded) */
            int rc = shm_compact_dead(s.metrics_dir, pidstr);
            if (rc) fprintf(stderr, "WARNING [cvllm serve] compacting worker %d's metrics: %s\n", k->index, shm_strerror(rc));
            int restarts = k->restarts + 1;
            if (now_s() - k->started > 30) restarts = 1;
            if (restarts > 5) {
                fprintf(stderr, "ERROR [cvllm serve] API worker %d keeps dying; shutting down\n", k->index);
                engine_died = 1;
                continue;
            }
            fprintf(stderr, "WARNING [cvllm serve] API worker %d (pid %d) died; restarting it\n", k->index, (int)pid);
            int idx = k->index;
            *k = s.kids[--s.n_kids];
            if (spawn(&s, 0, idx) > 0) s.kids[s.n_kids - 1].restarts = restarts;
        }
        if (engine_died) {
            exit_code = 1;
            /* the workers learn it first (/health turns 503), then stop */
            signal_kids(&s, 0, SIGUSR1);
            sleep(1);
            break;
        }
    }
    signal_kids(&s, 0, SIGTERM);
    reap_kind(&s, 0, 15);
    signal_kids(&s, 1, SIGTERM);
    reap_kind(&s, 1, 15);
    cleanup_dirs(&s);
    return exit_code;
}
