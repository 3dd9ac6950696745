/* Process lifecycle in a multiprocess directory: mark_process_dead (remove a
 * dead process's live gauge files) and compaction (fold a dead process's
 * counter, histogram and summary files into per-type archive files so the
 * number of files stays bounded when workers restart; totals preserved).
 *
 * Compaction holds the directory lock exclusively while it publishes the new
 * archive and removes the dead file, and shm_collector holds it shared while
 * it reads, so a cvllm scrape sees either both files or the merged archive. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm_int.h"

static int valid_id(const char *id) { return id && *id && !strchr(id, '_') && !strchr(id, '/'); }

int shm_mark_process_dead(const char *dir, const char *id) {
    if (!dir) dir = shm__env_dir();
    if (!dir) return SHM_ENODIR;
    if (!valid_id(id)) return SHM_EBADID;
    int rc = 0;
    for (int m = 0; m < SHM_MODE_COUNT; m++) {
        const char *mn = shm_mode_name((shm_mode_t)m);
        if (strncmp(mn, "live", 4)) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/gauge_%s_%s.db", dir, mn, id);
        if (unlink(path) < 0 && errno != ENOENT && !rc) rc = -errno;
    }
    return rc;
}

/* Reads a whole metrics file; *data is malloc'd. Returns 0, -ENOENT or
 * SHM_ECORRUPT / negative errno. */
static int slurp(const char *path, uint8_t **data, uint32_t *used) {
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 8) {
        rc = SHM_ECORRUPT;
        goto out;
    }
    *data = malloc((size_t)st.st_size);
    if (!*data) {
        rc = -ENOMEM;
        goto out;
    }
    if (pread(fd, *data, (size_t)st.st_size, 0) != st.st_size) {
        rc = -EIO;
        goto out;
    }
    memcpy(used, *data, 4);
    if (*used == 0) *used = SHM_HEADER;
    if (shm__validate(*data, (size_t)st.st_size, *used) < 0) rc = SHM_ECORRUPT;
out:
    if (rc) {
        free(*data);
        *data = NULL;
    }
    close(fd);
    return rc;
}

static uint32_t hb(const uint8_t *p, uint32_t n) {
    uint32_t h = 2166136261u;
    for (uint32_t i = 0; i < n; i++) h = (h ^ p[i]) * 16777619u;
    return h | 1;
}

/* archive image (grown) += entries of dead (summed per identical key). */
static int fold(uint8_t **img, uint32_t *used, size_t *cap, const uint8_t *dead, uint32_t dused) {
    uint32_t tcap = 1024;
    while (tcap < 4 * ((*used + dused) / 32 + 1)) tcap *= 2;
    uint32_t *tab = calloc(tcap, sizeof *tab); /* entry offsets, 0 = empty */
    if (!tab) return -ENOMEM;
    for (uint32_t pos = SHM_HEADER; pos < *used;) {
        int32_t kl;
        memcpy(&kl, *img + pos, 4);
        uint32_t i = hb(*img + pos + 4, (uint32_t)kl) & (tcap - 1);
        while (tab[i]) i = (i + 1) & (tcap - 1);
        tab[i] = pos;
        pos += shm__entry_size((uint32_t)kl);
    }
    for (uint32_t pos = SHM_HEADER; pos < dused;) {
        int32_t kl;
        memcpy(&kl, dead + pos, 4);
        uint32_t es = shm__entry_size((uint32_t)kl);
        uint32_t i = hb(dead + pos + 4, (uint32_t)kl) & (tcap - 1);
        uint32_t found = 0;
        for (; tab[i]; i = (i + 1) & (tcap - 1)) {
            int32_t ol;
            memcpy(&ol, *img + tab[i], 4);
            if (ol == kl && !memcmp(*img + tab[i] + 4, dead + pos + 4, (size_t)kl)) {
                found = tab[i];
                break;
            }
        }
        double dv;
        memcpy(&dv, dead + pos + es - 16, 8);
        if (found) {
            double av;
            memcpy(&av, *img + found + es - 16, 8);
            av += dv;
            memcpy(*img + found + es - 16, &av, 8);
        } else {
            if (*used + es > *cap) {
                size_t nc = *cap * 2;
                while (nc < *used + es) nc *= 2;
                uint8_t *n = realloc(*img, nc);
                if (!n) {
                    free(tab);
                    return -ENOMEM;
                }
                memset(n + *cap, 0, nc - *cap);
                *img = n;
                *cap = nc;
            }
            memcpy(*img + *used, dead + pos, es);
            memset(*img + *used + es - 8, 0, 8); /* timestamps mean nothing in an archive */
            tab[i] = *used;
            *used += es;
        }
        pos += es;
    }
    free(tab);
    return 0;
}

int shm_compact_dead(const char *dir, const char *id) {
    if (!dir) dir = shm__env_dir();
    if (!dir) return SHM_ENODIR;
    if (!valid_id(id) || !strcmp(id, "archive")) return SHM_EBADID;
    int lock = shm__dir_lock(dir, true);
    if (lock < 0) return lock;
    int rc = shm_mark_process_dead(dir, id);
    static const char *const types[] = {"counter", "histogram", "summary"};
    for (int t = 0; t < 3 && !rc; t++) {
        char dpath[PATH_MAX], apath[PATH_MAX];
        snprintf(dpath, sizeof dpath, "%s/%s_%s.db", dir, types[t], id);
        snprintf(apath, sizeof apath, "%s/%s_archive.db", dir, types[t]);
        uint8_t *dead = NULL, *arch = NULL;
        uint32_t dused = 0, aused = 0;
        int r = slurp(dpath, &dead, &dused);
        if (r == -ENOENT) continue;
        if (r == SHM_ECORRUPT) {
            /* scrapes already skip it; move it out of their way for good */
            char aside[PATH_MAX + 32];
            snprintf(aside, sizeof aside, "%s.corrupt", dpath);
            rename(dpath, aside);
            continue;
        }
        if (r) {
            rc = r;
            break;
        }
        r = slurp(apath, &arch, &aused);
        size_t cap = SHM_INITIAL_SIZE;
        if (r == -ENOENT) {
            arch = calloc(1, cap);
            aused = SHM_HEADER;
            if (!arch) r = -ENOMEM;
            else r = 0;
        } else if (!r) {
            while (cap < aused) cap *= 2;
            uint8_t *n = realloc(arch, cap);
            if (!n) r = -ENOMEM;
            else {
                arch = n;
                memset(arch + aused, 0, cap - aused);
            }
        }
        if (!r) r = fold(&arch, &aused, &cap, dead, dused);
        if (!r) {
            memcpy(arch, &aused, 4);
            int fd = shm__publish_file(dir, apath, arch, aused, cap, 0);
            if (fd < 0) r = fd;
            else {
                close(fd);
                if (unlink(dpath) < 0) r = -errno;
            }
        }
        free(dead);
        free(arch);
        if (r) rc = r;
    }
    close(lock);
    return rc;
}

int shm_dir_create_private(const char *parent, char *out, size_t n) {
    if (!parent) parent = getenv("TMPDIR");
    if (!parent || !*parent) parent = "/tmp";
    int len = snprintf(out, n, "%s/cvllm-metrics-XXXXXX", parent);
    if (len < 0 || (size_t)len >= n) return -ENAMETOOLONG;
    if (!mkdtemp(out)) return -errno; /* mkdtemp creates it 0700 */
    return 0;
}

int shm_dir_remove(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -errno;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        size_t l = strlen(nm);
        int ours = (l > 3 && !strcmp(nm + l - 3, ".db")) || !strcmp(nm, ".cvllm-metrics.lock") ||
                   !strncmp(nm, ".tmp-", 5) || strstr(nm, ".db.corrupt");
        if (ours) unlinkat(dirfd(d), nm, 0);
    }
    closedir(d);
    return rmdir(dir) < 0 ? -errno : 0;
}
