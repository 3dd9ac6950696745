/* Merging and rendering: turns the raw samples of each family (collected by
 * collector.c in file order, entry order) into merged series exactly as
 * prometheus_client's MultiProcessCollector._accumulate_metrics does, then
 * writes Prometheus text 0.0.4 or OpenMetrics 1.0.0.
 *
 * Order matters for byte-identical output: families in first-seen order,
 * label sets in the order Python's dicts would create them (a mostrecent
 * series only when first set, histogram label sets seen only through buckets
 * after the others), series in insertion order, buckets sorted by bound. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector_int.h"

typedef struct {
    const char *name;   /* NULL: the histogram's buckets go here */
    double v, ts;
} ser_t;

typedef struct {
    double bound, v;
} bkt_t;

typedef struct group {
    uint32_t h;
    const pkey_t *k;
    int nole;           /* labels of k without "le" */
    const char *pid;    /* extra pid label (all/liveall gauges) */
    ser_t *s;
    uint32_t ns, cs;
    bkt_t *b;
    uint32_t nb, cb, cursor;
    int in_s, in_b;
    struct group *next_s, *next_b;
    const char *lp;     /* rendered labels (pid included, le excluded), once per scrape */
    uint32_t lp_n;      /* its length */
    uint32_t lp_split;  /* bytes of lp holding the labels that sort before "le" */
} group_t;

typedef struct {
    uint64_t gen;
    shm_buf_t *scratch;
    shm_arena_t *a;
    group_t **tab;
    uint32_t cap, n;
    group_t *s_head, *s_tail, *b_head, *b_tail;
} gset_t;

static uint32_t str_hash(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static int same_labels(const pkey_t *a, int anole, const pkey_t *b, int bnole) {
    uint32_t i = 0, j = 0;
    for (;;) {
        if (anole && (int)i == a->le_idx) i++;
        if (bnole && (int)j == b->le_idx) j++;
        if (i >= a->nl || j >= b->nl) return i >= a->nl && j >= b->nl;
        if (strcmp(a->lab[i][0], b->lab[j][0]) || strcmp(a->lab[i][1], b->lab[j][1])) return 0;
        i++, j++;
    }
}

/* Finds the group for (k's labels [without le], pid); creates it if create. */
static group_t *group_get(gset_t *gs, const pkey_t *k, int nole, const char *pid, int create) {
    uint32_t h = (nole ? k->nole_h : k->full_h) ^ (pid ? str_hash(pid) * 0x9e3779b1u : 0);
    if (gs->cap) {
        for (uint32_t i = h & (gs->cap - 1);; i = (i + 1) & (gs->cap - 1)) {
            group_t *g = gs->tab[i];
            if (!g) break;
            if (g->h == h && same_labels(g->k, g->nole, k, nole) &&
                (pid ? g->pid && !strcmp(pid, g->pid) : !g->pid))
                return g;
        }
    }
    if (!create) return NULL;
    if ((gs->n + 1) * 2 > gs->cap) {
        uint32_t ncap = gs->cap ? gs->cap * 2 : 16;
        group_t **t = shm__arena_alloc(gs->a, ncap * sizeof *t);
        if (!t) return NULL;
        memset(t, 0, ncap * sizeof *t);
        for (uint32_t i = 0; i < gs->cap; i++)
            if (gs->tab[i]) {
                uint32_t j = gs->tab[i]->h & (ncap - 1);
                while (t[j]) j = (j + 1) & (ncap - 1);
                t[j] = gs->tab[i];
            }
        gs->tab = t;
        gs->cap = ncap;
    }
    group_t *g = shm__arena_alloc(gs->a, sizeof *g);
    if (!g) return NULL;
    memset(g, 0, sizeof *g);
    g->h = h;
    g->k = k;
    g->nole = nole;
    g->pid = pid;
    uint32_t i = h & (gs->cap - 1);
    while (gs->tab[i]) i = (i + 1) & (gs->cap - 1);
    gs->tab[i] = g;
    gs->n++;
    return g;
}

/* group_get with the per-key cache for groups without a pid label. */
static group_t *group_for(gset_t *gs, pkey_t *k, int nole, const char *pid, int create) {
    if (!pid && k->g_gen == gs->gen) return k->g;
    group_t *g = group_get(gs, k, nole, pid, create);
    if (g && !pid) {
        k->g = g;
        k->g_gen = gs->gen;
        k->s_idx = UINT32_MAX;
    }
    return g;
}

/* ser_get with the per-key series index cache. */
static ser_t *ser_for(gset_t *gs, group_t *g, pkey_t *k, int create);

static void order_s(gset_t *gs, group_t *g) {
    if (g->in_s) return;
    g->in_s = 1;
    if (gs->s_tail) gs->s_tail->next_s = g;
    else gs->s_head = g;
    gs->s_tail = g;
}

static void order_b(gset_t *gs, group_t *g) {
    if (g->in_b) return;
    g->in_b = 1;
    if (gs->b_tail) gs->b_tail->next_b = g;
    else gs->b_head = g;
    gs->b_tail = g;
}

/* Series `name` of g; created with value 0 if create. */
static ser_t *ser_get(gset_t *gs, group_t *g, const char *name, int create) {
    for (uint32_t i = 0; i < g->ns; i++)
        if (g->s[i].name && !strcmp(g->s[i].name, name)) return &g->s[i];
    if (!create) return NULL;
    if (g->ns == g->cs) {
        uint32_t nc = g->cs ? g->cs * 2 : 4;
        ser_t *n = shm__arena_alloc(gs->a, nc * sizeof *n);
        if (!n) return NULL;
        if (g->ns) memcpy(n, g->s, g->ns * sizeof *n);
        g->s = n;
        g->cs = nc;
    }
    g->s[g->ns] = (ser_t){name, 0.0, 0.0};
    return &g->s[g->ns++];
}

static ser_t *ser_for(gset_t *gs, group_t *g, pkey_t *k, int create) {
    uint32_t i = k->s_idx;
    if (k->g_gen == gs->gen && k->g == g && i < g->ns && g->s[i].name &&
        (g->s[i].name == k->sample || !strcmp(g->s[i].name, k->sample)))
        return &g->s[i];
    ser_t *s = ser_get(gs, g, k->sample, create);
    if (s && k->g_gen == gs->gen && k->g == g) k->s_idx = (uint32_t)(s - g->s);
    return s;
}

static int bkt_add(gset_t *gs, group_t *g, double bound, double v) {
    /* buckets arrive in the same order from every file: try the cursor first */
    if (g->nb) {
        uint32_t c = g->cursor < g->nb ? g->cursor : 0;
        for (uint32_t n = 0; n < g->nb; n++, c = c + 1 == g->nb ? 0 : c + 1)
            if (g->b[c].bound == bound) {
                g->b[c].v += v;
                g->cursor = c + 1;
                return 0;
            }
    }
    if (g->nb == g->cb) {
        uint32_t nc = g->cb ? g->cb * 2 : 32;
        bkt_t *n = shm__arena_alloc(gs->a, nc * sizeof *n);
        if (!n) return -ENOMEM;
        if (g->nb) memcpy(n, g->b, g->nb * sizeof *n);
        g->b = n;
        g->cb = nc;
    }
    g->b[g->nb++] = (bkt_t){bound, 0.0 + v};
    g->cursor = g->nb;
    return 0;
}

static int is_mode(int mode, int a, int b) { return mode == a || mode == b; }

/* MultiProcessCollector._accumulate_metrics for one family. */
static int accumulate(mfam_t *f, gset_t *gs) {
    int mode = f->mode;
    int drop_pid = f->type == SHM_GAUGE && mode >= SHM_MODE_MIN && mode <= SHM_MODE_LIVEMOSTRECENT;
    for (size_t i = 0; i < f->n_raw; i++) {
        const raw_t *r = &f->raw[i];
        pkey_t *k = r->k;
        /* Python appends ('pid', pid) to every sample read from a gauge file;
         * only the non-'all' gauge modes drop it again */
        const char *pid = drop_pid ? NULL : r->pid;
        if (f->type == SHM_GAUGE) {
            if (is_mode(mode, SHM_MODE_MOSTRECENT, SHM_MODE_LIVEMOSTRECENT)) {
                group_t *g = group_for(gs, k, 0, NULL, 0);
                ser_t *s = g ? ser_for(gs, g, k, 0) : NULL;
                double best = s ? s->ts : 0.0;
                if (best < r->ts) {
                    if (!g && !(g = group_for(gs, k, 0, NULL, 1))) return -ENOMEM;
                    if (!s && !(s = ser_for(gs, g, k, 1))) return -ENOMEM;
                    order_s(gs, g);
                    s->v = r->v;
                    s->ts = r->ts;
                }
                continue;
            }
            group_t *g = group_for(gs, k, 0, pid, 1);
            if (!g) return -ENOMEM;
            order_s(gs, g);
            ser_t *s = ser_for(gs, g, k, 0);
            int fresh = !s;
            if (!s && !(s = ser_for(gs, g, k, 1))) return -ENOMEM;
            if (is_mode(mode, SHM_MODE_MIN, SHM_MODE_LIVEMIN)) {
                if (fresh || r->v < s->v) s->v = r->v;
            } else if (is_mode(mode, SHM_MODE_MAX, SHM_MODE_LIVEMAX)) {
                if (fresh || r->v > s->v) s->v = r->v;
            } else if (is_mode(mode, SHM_MODE_SUM, SHM_MODE_LIVESUM)) {
                s->v += r->v;
            } else {
                s->v = r->v; /* all, liveall, unknown */
            }
        } else if (f->type == SHM_HISTOGRAM && k->le_idx >= 0) {
            group_t *g = group_for(gs, k, 1, pid, 1);
            if (!g) return -ENOMEM;
            order_b(gs, g);
            if (bkt_add(gs, g, k->le, r->v)) return -ENOMEM;
        } else {
            group_t *g = group_for(gs, k, 0, pid, 1);
            if (!g) return -ENOMEM;
            order_s(gs, g);
            ser_t *s = ser_for(gs, g, k, 1);
            if (!s) return -ENOMEM;
            s->v += r->v;
        }
    }
    if (f->type == SHM_HISTOGRAM) {
        size_t nl = strlen(f->name);
        char *cname = shm__arena_alloc(gs->a, nl + 7);
        if (!cname) return -ENOMEM;
        memcpy(cname, f->name, nl);
        memcpy(cname + nl, "_count", 7);
        for (group_t *g = gs->b_head; g; g = g->next_b) {
            /* sorted(values.items()): insertion sort, input is nearly sorted */
            for (uint32_t i = 1; i < g->nb; i++) {
                bkt_t t = g->b[i];
                uint32_t j = i;
                while (j > 0 && g->b[j - 1].bound > t.bound) {
                    g->b[j] = g->b[j - 1];
                    j--;
                }
                g->b[j] = t;
            }
            double acc = 0.0;
            for (uint32_t i = 0; i < g->nb; i++) g->b[i].v = acc += g->b[i].v;
            order_s(gs, g);
            ser_t *mark = ser_get(gs, g, "", 1); /* placeholder, renamed below */
            if (!mark) return -ENOMEM;
            mark->name = NULL;
            ser_t *cnt = ser_get(gs, g, cname, 1);
            if (!cnt) return -ENOMEM;
            cnt->v = acc;
        }
    }
    return 0;
}

/* --- rendering --------------------------------------------------------------------- */

static int legacy_rune(unsigned char ch, size_t i, int colon) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || (ch >= '0' && ch <= '9' && i > 0) ||
           (colon && ch == ':');
}

/* prometheus_client's "underscores" escaping: a valid name as is, otherwise
 * each invalid character (code point) becomes '_'. */
static int put_name(shm_buf_t *o, const char *s, int colon) {
    size_t n = strlen(s);
    int valid = colon ? shm__valid_metric_name(s) : shm__valid_label_name(s);
    if (valid) return shm_buf_append(o, s, n);
    size_t ci = 0;
    for (size_t i = 0; i < n; ci++) {
        unsigned char ch = (unsigned char)s[i];
        size_t len = ch < 0x80 ? 1 : ch < 0xe0 ? 2 : ch < 0xf0 ? 3 : 4;
        if (len == 1 && legacy_rune(ch, ci, colon)) {
            if (shm_buf_append(o, s + i, 1)) return -ENOMEM;
        } else if (shm_buf_append(o, "_", 1)) {
            return -ENOMEM;
        }
        i += len;
    }
    return 0;
}

static int put_help(shm_buf_t *o, const char *s, int om) {
    size_t n = strlen(s), i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && s[j] != '\\' && s[j] != '\n' && !(om && s[j] == '"')) j++;
        if (j > i && shm_buf_append(o, s + i, j - i)) return -ENOMEM;
        if (j >= n) break;
        const char *e = s[j] == '\\' ? "\\\\" : s[j] == '\n' ? "\\n" : "\\\"";
        if (shm_buf_append(o, e, 2)) return -ENOMEM;
        i = j + 1;
    }
    return 0;
}

static int put_pair(shm_buf_t *o, int *first, const char *k, const char *v) {
    if (!*first && shm_buf_append(o, ",", 1)) return -ENOMEM;
    *first = 0;
    if (put_name(o, k, 0) || shm_buf_append(o, "=\"", 2) || shm__escape_label_value(o, v, strlen(v)) ||
        shm_buf_append(o, "\"", 1))
        return -ENOMEM;
    return 0;
}

/* Renders g's labels (sorted; the file's pid among them for all/liveall
 * gauges; le excluded) once, remembering where "le" would sort. */
static int group_labels(gset_t *gs, group_t *g) {
    if (g->lp) return 0;
    shm_buf_t *o = gs->scratch;
    o->len = 0;
    const pkey_t *k = g->k;
    int first = 1, pid_done = !g->pid;
    uint32_t split = UINT32_MAX;
    for (uint32_t i = 0; i <= k->nl; i++) {
        const char *ln = i < k->nl ? k->lab[i][0] : NULL;
        if (ln && g->nole && (int)i == k->le_idx) continue;
        if (ln && g->pid && !strcmp(ln, "pid")) continue; /* dict(labels): the file's pid wins */
        if (!pid_done && (!ln || strcmp("pid", ln) < 0)) {
            if (split == UINT32_MAX && strcmp("le", "pid") < 0) split = (uint32_t)o->len;
            if (put_pair(o, &first, "pid", g->pid)) return -ENOMEM;
            pid_done = 1;
        }
        if (!ln) break;
        if (split == UINT32_MAX && strcmp("le", ln) < 0) split = (uint32_t)o->len;
        if (put_pair(o, &first, ln, k->lab[i][1])) return -ENOMEM;
    }
    if (split == UINT32_MAX) split = (uint32_t)o->len;
    char *p = shm__arena_alloc(gs->a, o->len + 1);
    if (!p) return -ENOMEM;
    memcpy(p, o->data ? o->data : "", o->len);
    p[o->len] = 0;
    g->lp = p;
    g->lp_n = (uint32_t)o->len;
    g->lp_split = split;
    return 0;
}

/* name{labels of g, with le at its sorted place} value\n */
static int put_sample(gset_t *gs, shm_buf_t *o, const char *name, int name_ok, group_t *g, const char *le,
                      double v) {
    if (group_labels(gs, g)) return -ENOMEM;
    size_t nn = strlen(name), ln = le ? strlen(le) : 0;
    if (shm_buf_reserve(o, nn + g->lp_n + ln + 64)) return -ENOMEM;
    if (name_ok) {
        memcpy(o->data + o->len, name, nn);
        o->len += nn;
    } else if (put_name(o, name, 1)) {
        return -ENOMEM;
    }
    if (shm_buf_reserve(o, g->lp_n + ln + 64)) return -ENOMEM;
    char *w = o->data + o->len;
    if (g->lp_n || le) *w++ = '{';
    const char *lp = g->lp;
    if (le) {
        /* lp[0, lp_split) are the labels before le; lp[lp_split, ...) the rest,
         * starting with the comma that separated them */
        uint32_t sp = g->lp_split;
        memcpy(w, lp, sp);
        w += sp;
        if (sp) *w++ = ',';
        memcpy(w, "le=\"", 4);
        w += 4;
        memcpy(w, le, ln);
        w += ln;
        *w++ = '"';
        const char *rest = lp + sp;
        size_t rn = g->lp_n - sp;
        if (rn && *rest == ',') rest++, rn--;
        if (rn) {
            *w++ = ',';
            memcpy(w, rest, rn);
            w += rn;
        }
    } else {
        memcpy(w, lp, g->lp_n);
        w += g->lp_n;
    }
    if (g->lp_n || le) *w++ = '}';
    *w++ = ' ';
    w += shm_format_double(v, w);
    *w++ = '\n';
    o->len = (size_t)(w - o->data);
    o->data[o->len] = 0;
    return 0;
}

static int wanted(const char *const *names, size_t n, const char *s) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], s)) return 1;
    return 0;
}

static const char *type_name(int t) {
    static const char *const n[] = {"counter", "gauge", "histogram", "summary"};
    return n[t];
}

static int render_family(mfam_t *f, gset_t *gs, int om, const char *const *names, size_t n_names,
                         shm_buf_t *o) {
    size_t nl = strlen(f->name);
    char *bname = shm__arena_alloc(gs->a, nl + 8);
    if (!bname) return -ENOMEM;
    memcpy(bname, f->name, nl);
    memcpy(bname + nl, "_bucket", 8);
    int bname_ok = shm__valid_metric_name(bname);
    if (n_names) {
        /* restricted to the requested sample names; families without any are left out */
        int any = 0;
        for (group_t *g = gs->s_head; g && !any; g = g->next_s)
            for (uint32_t i = 0; i < g->ns && !any; i++)
                any = wanted(names, n_names, g->s[i].name ? g->s[i].name : bname);
        if (!any) return 0;
    }
    const char *tn = type_name(f->type);
    if (shm_buf_append(o, "# HELP ", 7) || put_name(o, f->name, 1) ||
        (!om && f->type == SHM_COUNTER && shm_buf_append(o, "_total", 6)) || shm_buf_append(o, " ", 1) ||
        put_help(o, f->help, om) || shm_buf_append(o, "\n# TYPE ", 8) || put_name(o, f->name, 1) ||
        (!om && f->type == SHM_COUNTER && shm_buf_append(o, "_total", 6)) || shm_buf_append(o, " ", 1) ||
        shm_buf_append(o, tn, strlen(tn)) || shm_buf_append(o, "\n", 1))
        return -ENOMEM;
    for (group_t *g = gs->s_head; g; g = g->next_s) {
        for (uint32_t i = 0; i < g->ns; i++) {
            const ser_t *s = &g->s[i];
            if (s->name) {
                if (n_names && !wanted(names, n_names, s->name)) continue;
                if (put_sample(gs, o, s->name, shm__valid_metric_name(s->name), g, NULL, s->v)) return -ENOMEM;
                continue;
            }
            if (n_names && !wanted(names, n_names, bname)) continue;
            for (uint32_t b = 0; b < g->nb; b++) {
                char le[48];
                shm_format_double(g->b[b].bound, le);
                if (put_sample(gs, o, bname, bname_ok, g, le, g->b[b].v)) return -ENOMEM;
            }
        }
    }
    return 0;
}

int shm__render(shm_collector_t *c, shm_format_t fmt, const char *const *names, size_t n_names, shm_buf_t *o) {
    int om = fmt == SHM_FORMAT_OPENMETRICS;
    if (shm_buf_reserve(o, 4096)) return -ENOMEM;
    for (mfam_t *f = c->fam_head; f; f = f->next) {
        gset_t gs = {.gen = c->gen, .scratch = &c->lbuf, .a = &c->scrape};
        int rc = accumulate(f, &gs);
        if (!rc) rc = render_family(f, &gs, om, names, n_names, o);
        if (rc) return rc;
    }
    if (om && shm_buf_append(o, "# EOF\n", 6)) return -ENOMEM;
    return 0;
}
