/* MODEL argument resolution (see model_path.h). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "model_path.h"

static int is_dir(const char *p) {
    struct stat st;
    return !stat(p, &st) && S_ISDIR(st.st_mode);
}

static int exists(const char *p) {
    struct stat st;
    return !stat(p, &st);
}

static void hub_dir(char *out, size_t n) {
    const char *c = getenv("HF_HUB_CACHE"), *h = getenv("HF_HOME"), *home = getenv("HOME");
    if (c && *c) snprintf(out, n, "%s", c);
    else if (h && *h) snprintf(out, n, "%s/hub", h);
    else snprintf(out, n, "%s/.cache/huggingface/hub", home && *home ? home : "/root");
}

/* A repo id: one '/', both parts non-empty, no other path-like syntax. */
static int is_repo_id(const char *s) {
    const char *sl = strchr(s, '/');
    return sl && sl != s && sl[1] && !strchr(sl + 1, '/') && s[0] != '.' && !strstr(s, "..");
}

int model_path_resolve(const char *arg, char *out, size_t n, char *err, size_t el) {
    if (exists(arg)) {
        if ((size_t)snprintf(out, n, "%s", arg) >= n) return snprintf(err, el, "%s: path too long", arg), -ENAMETOOLONG;
        return 0;
    }
    char id[512], rev[128] = "";
    snprintf(id, sizeof id, "%s", arg);
    char *at = strchr(id, '@');
    if (at) {
        snprintf(rev, sizeof rev, "%s", at + 1);
        *at = 0;
    }
    if (!is_repo_id(id)) return snprintf(err, el, "%s: no such file or directory", arg), -ENOENT;
    char hub[1024], repo[2048], snap[3072];
    hub_dir(hub, sizeof hub);
    snprintf(repo, sizeof repo, "%s/models--%s", hub, id);
    char *p = repo + strlen(hub) + 9;
    for (; *p; p++)
        if (*p == '/') {
            memmove(p + 2, p + 1, strlen(p + 1) + 1);
            p[0] = '-', p[1] = '-';
            break;
        }
    if (!rev[0]) {
        char ref[2304];
        snprintf(ref, sizeof ref, "%s/refs/main", repo);
        FILE *f = fopen(ref, "r");
        if (f) {
            if (fgets(rev, sizeof rev, f)) rev[strcspn(rev, "\r\n")] = 0;
            fclose(f);
        }
    }
    snap[0] = 0;
    if (rev[0]) snprintf(snap, sizeof snap, "%s/snapshots/%s", repo, rev);
    if (!snap[0] || !is_dir(snap)) {
        /* no usable ref: the only snapshot there is */
        char sd[2304];
        snprintf(sd, sizeof sd, "%s/snapshots", repo);
        DIR *d = opendir(sd);
        int count = 0;
        struct dirent *e;
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(snap, sizeof snap, "%s/%s", sd, e->d_name);
                count++;
            }
        if (d) closedir(d);
        if (count != 1) {
            snprintf(err, el, "%s is neither a path nor a model in the local Hugging Face cache (looked in %s%s)", arg,
                     repo, count > 1 ? ": several snapshots and no refs/main; add @revision" : "");
            return -ENOENT;
        }
    }
    char cfg[3200];
    snprintf(cfg, sizeof cfg, "%s/config.json", snap);
    if (exists(cfg)) {
        if ((size_t)snprintf(out, n, "%s", snap) >= n) return snprintf(err, el, "path too long"), -ENAMETOOLONG;
        return 0;
    }
    DIR *d = opendir(snap);
    char gguf[512] = "";
    int ng = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".gguf")) {
            snprintf(gguf, sizeof gguf, "%s", e->d_name);
            ng++;
        }
    }
    if (d) closedir(d);
    if (ng != 1) {
        snprintf(err, el, "%s: the cached snapshot %s has no config.json and %s .gguf file", arg, snap,
                 ng ? "more than one" : "no");
        return -ENOENT;
    }
    if ((size_t)snprintf(out, n, "%s/%s", snap, gguf) >= n) return snprintf(err, el, "path too long"), -ENAMETOOLONG;
    return 0;
}
