/*
 * Drift over result lines (see drift.h). Lines are kept per group as small
 * observations (one per task that reached the group) and put in windows at
 * the end: attempt windows need the input order, time windows only the
 * times, and neither needs the lines once read.
 */
#include "drift.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"

/* Names from result lines are cut here: they label rows, nothing more. */
#define NAME_MAX_LEN 200

/* One task's part in one group. */
typedef struct obs {
    int64_t ts;
    long n, k, call_failures;
    double cost_usd;
    int accepted, escalated;
} obs;

typedef struct group {
    wk_drift_group g;
    obs *o;
    long no, cap;
} group;

struct wk_drift {
    wk_drift_opts opts;
    group *g;
    int ng, cap;
    long results;
    int flagged;
    int finished; /* the windows are made */
};

wk_drift *wk_drift_new(const wk_drift_opts *o)
{
    wk_drift *d = wk_xcalloc(1, sizeof *d);
    d->opts = *o;
    return d;
}

void wk_drift_set_window(wk_drift *d, int64_t window_ms, long window_n)
{
    d->opts.window_ms = window_ms;
    d->opts.window_n = window_n;
}

void wk_drift_free(wk_drift *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->ng; i++) {
        free(d->g[i].g.cascade);
        free(d->g[i].g.model);
        free(d->g[i].g.w);
        free(d->g[i].o);
    }
    free(d->g);
    free(d);
}

/* 1 when s, cut as names are kept, is the stored name. */
static int same_name(const char *stored, const char *s)
{
    size_t n = strnlen(s, NAME_MAX_LEN);
    return strlen(stored) == n && strncmp(stored, s, n) == 0;
}

static group *group_of(wk_drift *d, const char *cascade, int tier, const char *model)
{
    for (int i = 0; i < d->ng; i++) {
        wk_drift_group *g = &d->g[i].g;
        if (g->tier == tier && same_name(g->cascade, cascade) &&
            (model ? g->model && same_name(g->model, model) : !g->model))
            return &d->g[i];
    }
    if (d->ng >= WK_DRIFT_GROUPS_MAX)
        return NULL;
    if (d->ng == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 16;
        d->g = wk_xrealloc(d->g, (size_t)d->cap * sizeof *d->g);
    }
    group *n = &d->g[d->ng++];
    memset(n, 0, sizeof *n);
    n->g.cascade = wk_xstrndup(cascade, strnlen(cascade, NAME_MAX_LEN));
    n->g.tier = tier;
    n->g.model = model ? wk_xstrndup(model, strnlen(model, NAME_MAX_LEN)) : NULL;
    return n;
}

static obs *push_obs(group *g, int64_t ts)
{
    if (g->no == g->cap) {
        g->cap = g->cap ? 2 * g->cap : 64;
        g->o = wk_xrealloc(g->o, (size_t)g->cap * sizeof *g->o);
    }
    obs *o = &g->o[g->no++];
    memset(o, 0, sizeof *o);
    o->ts = ts;
    return o;
}

/* "2026-11-20T06:31:07.412Z" (fraction optional) into unix ms; -1 when not that form. */
static int64_t parse_ts(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = 0;
    const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!p)
        return -1;
    if (*p == '.') {
        int digits = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*p - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (*p != 'Z' && *p != '\0')
        return -1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(f) ? f->valuedouble : -1;
}

/* The tier and model of each attempt, at most this many distinct pairs per task. */
#define PAIRS_MAX 64

int wk_drift_add(wk_drift *d, const cJSON *r, int64_t fallback_ms, char *err, size_t errlen)
{
    const char *status = wk_jstr(r, "status");
    const char *cascade = wk_jstr(r, "cascade");
    if (!status || !cascade)
        return 0;
    int accepted = strcmp(status, "accepted") == 0;
    int judged = accepted || strcmp(status, "exhausted") == 0;
    const cJSON *atts = cJSON_GetObjectItemCaseSensitive(r, "attempts");
    if (!cJSON_IsArray(atts) || cJSON_GetArraySize(atts) == 0)
        return 0; /* no model was asked: nothing about models to learn */
    d->results++;
    int64_t ts = parse_ts(wk_jstr(r, "ts"));
    if (ts < 0)
        ts = fallback_ms;
    long final_tier = accepted ? (long)num(r, "tier") : -1;
    const char *final_model = accepted ? wk_jstr(r, "model") : NULL;

    /* Per (tier, model) this task met: its part in that group. */
    obs *seen[PAIRS_MAX] = {0};
    group *seen_g[PAIRS_MAX] = {0};
    int nseen = 0;
    long first_tier = -1, last_tier = -1;
    double cost = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, atts)
    {
        long tier = (long)num(a, "tier");
        const char *model = wk_jstr(a, "model");
        if (tier < 0 || !model)
            continue;
        if (first_tier < 0)
            first_tier = tier;
        last_tier = tier;
        double c = num(a, "cost_usd");
        cost += c > 0 ? c : 0;
        group *g = NULL;
        obs *o = NULL;
        for (int i = 0; i < nseen; i++)
            if (seen_g[i]->g.tier == tier && same_name(seen_g[i]->g.model, model))
                g = seen_g[i], o = seen[i];
        if (!g) {
            if (nseen == PAIRS_MAX)
                continue;
            g = group_of(d, cascade, (int)tier, model);
            if (!g)
                return wk_errf(WK_EINVAL, err, errlen,
                               "more than %d cascade, tier and model groups", WK_DRIFT_GROUPS_MAX);
            o = push_obs(g, ts);
            o->accepted = final_tier == tier && final_model && strcmp(final_model, model) == 0;
            o->escalated = !o->accepted;
            seen_g[nseen] = g;
            seen[nseen++] = o;
        }
        o->cost_usd += c > 0 ? c : 0;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "verdict");
        const cJSON *pass = cJSON_GetObjectItemCaseSensitive(v, "pass");
        const char *validator = wk_jstr(v, "validator");
        if (!cJSON_IsBool(pass))
            continue;
        if (validator && strcmp(validator, "call") == 0) {
            o->call_failures++; /* the provider failed, not the model's answer */
            continue;
        }
        o->n++;
        o->k += cJSON_IsTrue(pass);
    }
    group *whole = group_of(d, cascade, -1, NULL);
    if (!whole)
        return wk_errf(WK_EINVAL, err, errlen, "more than %d cascade, tier and model groups",
                       WK_DRIFT_GROUPS_MAX);
    obs *o = push_obs(whole, ts);
    o->n = judged;
    o->k = accepted;
    o->cost_usd = cost;
    o->accepted = accepted;
    o->escalated = last_tier > first_tier;
    return 0;
}

/* ---- windows ----------------------------------------------------------------- */

typedef struct keyed {
    int64_t key;
    long idx; /* input order, so equal keys keep it */
} keyed;

static int cmp_keyed(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void time_label(char *out, size_t n, int64_t start_ms, int64_t width_ms)
{
    time_t s = (time_t)(start_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    if (width_ms % 86400000 == 0)
        strftime(out, n, "%Y-%m-%d", &tm);
    else
        strftime(out, n, "%Y-%m-%dT%H:%MZ", &tm);
}

static int make_windows(const wk_drift_opts *op, group *g, char *err, size_t errlen)
{
    keyed *k = wk_xcalloc((size_t)g->no + 1, sizeof *k);
    long before = 0; /* trials of the group before this observation, in input order */
    long per = op->window_n > 0 ? op->window_n : 1;
    for (long i = 0; i < g->no; i++) {
        k[i].idx = i;
        if (op->window_ms > 0) {
            int64_t t = g->o[i].ts;
            /* floor, also before 1970 */
            k[i].key = t >= 0 ? t / op->window_ms : -((-t + op->window_ms - 1) / op->window_ms);
        } else {
            k[i].key = before / per;
            before += g->o[i].n;
        }
    }
    qsort(k, (size_t)g->no, sizeof *k, cmp_keyed);
    int rc = 0;
    for (long i = 0; i < g->no; i++) {
        if (i == 0 || k[i].key != k[i - 1].key) {
            if (g->g.nw == WK_DRIFT_WINDOWS_MAX) {
                rc = wk_errf(WK_EINVAL, err, errlen,
                             "more than %d windows in one group: give a wider --window",
                             WK_DRIFT_WINDOWS_MAX);
                goto cleanup;
            }
            g->g.w = wk_xrealloc(g->g.w, (size_t)(g->g.nw + 1) * sizeof *g->g.w);
            wk_drift_window *w = &g->g.w[g->g.nw++];
            memset(w, 0, sizeof *w);
            if (op->window_ms > 0) {
                w->start_ms = k[i].key * op->window_ms;
                time_label(w->label, sizeof w->label, w->start_ms, op->window_ms);
            } else {
                w->start_ms = -1;
                snprintf(w->label, sizeof w->label, "trials %lld-%lld",
                         (long long)(k[i].key * per + 1), (long long)((k[i].key + 1) * per));
            }
        }
        const obs *o = &g->o[k[i].idx];
        wk_drift_window *w = &g->g.w[g->g.nw - 1];
        w->n += o->n;
        w->k += o->k;
        w->call_failures += o->call_failures;
        w->cost_usd += o->cost_usd;
        w->tasks++;
        w->accepted += o->accepted;
        w->escalated += o->escalated;
    }
cleanup:
    free(k);
    return rc;
}

void wk_drift_ztest(long n0, long k0, long n1, long k1, double alpha, wk_drift_test *t)
{
    memset(t, 0, sizeof *t);
    t->n_ref = n0;
    t->k_ref = k0;
    t->n_last = n1;
    t->k_last = k1;
    t->p_value = 1;
    if (n0 <= 0 || n1 <= 0)
        return;
    t->rate_ref = (double)k0 / (double)n0;
    t->rate_last = (double)k1 / (double)n1;
    double p = (double)(k0 + k1) / (double)(n0 + n1);
    double se = sqrt(p * (1 - p) * (1.0 / (double)n0 + 1.0 / (double)n1));
    if (!(se > 0))
        return; /* every trial passed, or none did: nothing differs */
    t->tested = 1;
    t->z = (t->rate_last - t->rate_ref) / se;
    t->p_value = erfc(fabs(t->z) / sqrt(2.0));
    t->flagged = t->p_value < alpha;
}

static void test_group(const wk_drift_opts *op, wk_drift_group *g)
{
    memset(&g->test, 0, sizeof g->test);
    g->test.p_value = 1;
    if (g->nw < 2)
        return;
    long n0 = 0, k0 = 0;
    int from = op->reference == WK_DRIFT_REF_PREVIOUS ? g->nw - 2 : 0;
    int to = op->reference == WK_DRIFT_REF_FIRST ? 1 : g->nw - 1;
    for (int i = from; i < to; i++) {
        n0 += g->w[i].n;
        k0 += g->w[i].k;
    }
    const wk_drift_window *last = &g->w[g->nw - 1];
    wk_drift_ztest(n0, k0, last->n, last->k, op->alpha, &g->test);
}

static int cmp_group(const void *a, const void *b)
{
    const wk_drift_group *x = &((const group *)a)->g, *y = &((const group *)b)->g;
    int c = strcmp(x->cascade, y->cascade);
    if (c)
        return c;
    if (x->tier != y->tier)
        return x->tier < y->tier ? -1 : 1;
    return strcmp(x->model ? x->model : "", y->model ? y->model : "");
}

int wk_drift_finish(wk_drift *d, char *err, size_t errlen)
{
    if (d->finished)
        return 0;
    d->finished = 1;
    if (d->ng > 0)
        qsort(d->g, (size_t)d->ng, sizeof *d->g, cmp_group);
    d->flagged = 0;
    for (int i = 0; i < d->ng; i++) {
        int rc = make_windows(&d->opts, &d->g[i], err, errlen);
        if (rc)
            return rc;
        test_group(&d->opts, &d->g[i].g);
        d->flagged += d->g[i].g.test.flagged;
    }
    return 0;
}

int wk_drift_ngroups(const wk_drift *d)
{
    return d->ng;
}

const wk_drift_group *wk_drift_group_at(const wk_drift *d, int i)
{
    return i >= 0 && i < d->ng ? &d->g[i].g : NULL;
}

int wk_drift_flagged(const wk_drift *d)
{
    return d->flagged;
}

long wk_drift_results(const wk_drift *d)
{
    return d->results;
}

/* ---- text -------------------------------------------------------------------- */

static void print_name(FILE *f, const char *s)
{
    char *e = wk_escape_ctl(s, strlen(s), NAME_MAX_LEN);
    fputs(e, f);
    free(e);
}

void wk_drift_print(const wk_drift *d, FILE *f)
{
    static const char *refs[] = {"the earlier windows pooled", "the first window",
                                 "the window before it"};
    fprintf(f, "drift: %ld result lines; reference: %s; two-proportion z test at alpha %g\n",
            d->results, refs[d->opts.reference], d->opts.alpha);
    for (int i = 0; i < d->ng; i++) {
        const wk_drift_group *g = &d->g[i].g;
        int whole = g->tier < 0;
        fprintf(f, "\n");
        print_name(f, g->cascade);
        if (whole) {
            fprintf(f, ", all tiers: task pass rate (accepted of accepted + exhausted)\n");
            fprintf(f, "  %-24s %8s %8s %9s %14s %9s\n", "window", "tasks", "accepted", "pass rate",
                    "cost/accepted", "climbed");
        } else {
            fprintf(f, ", tier %d, ", g->tier);
            print_name(f, g->model);
            fprintf(f, ": attempt pass rate\n");
            fprintf(f, "  %-24s %8s %8s %9s %14s %9s\n", "window", "attempts", "passed",
                    "pass rate", "cost/accepted", "escalated");
        }
        for (int w = 0; w < g->nw; w++) {
            const wk_drift_window *x = &g->w[w];
            char cpa[32];
            if (x->accepted > 0)
                snprintf(cpa, sizeof cpa, "$%.6f", x->cost_usd / (double)x->accepted);
            else
                snprintf(cpa, sizeof cpa, "-");
            fprintf(f, "  %-24s %8ld %8ld %9.3f %14s %9.3f%s\n", x->label, x->n, x->k,
                    x->n > 0 ? (double)x->k / (double)x->n : 0.0, cpa,
                    x->tasks > 0 ? (double)x->escalated / (double)x->tasks : 0.0,
                    w == g->nw - 1 && g->test.flagged ? "  <- drift" : "");
        }
        const wk_drift_test *t = &g->test;
        if (g->nw < 2)
            fprintf(f, "  one window: nothing to compare yet\n");
        else if (!t->tested)
            fprintf(f,
                    "  latest %.3f (%ld/%ld) vs reference %.3f (%ld/%ld): no variation to test\n",
                    t->rate_last, t->k_last, t->n_last, t->rate_ref, t->k_ref, t->n_ref);
        else
            fprintf(f,
                    "  latest %.3f (%ld/%ld) vs reference %.3f (%ld/%ld): z = %.2f, p = %.2g "
                    "%s %g: %s\n",
                    t->rate_last, t->k_last, t->n_last, t->rate_ref, t->k_ref, t->n_ref, t->z,
                    t->p_value, t->flagged ? "<" : ">=", d->opts.alpha,
                    !t->flagged ? "no drift"
                    : t->z < 0  ? "DRIFT (pass rate dropped)"
                                : "DRIFT (pass rate rose)");
    }
    fprintf(f, "\ndrift flagged in %d of %d groups\n", d->flagged, d->ng);
}

/* ---- HTML ------------------------------------------------------------------- */

/* Series colours; the drift test looks for the flag's in the page. */
#define DRIFT_FLAG_COLOR "#d62728"
static const char *const palette[] = {"#2b7bb9", "#3a9b3a", "#d9822b", "#7b3fa0",
                                      "#17becf", "#8c564b", "#e377c2", "#7f7f7f"};
/* A chart shows at most this many series and the latest this many windows. */
#define HTML_SERIES_MAX 16
#define HTML_WINDOWS_MAX 120

/* Where a window sits on the x axis: its start for time windows, its index for trial ones. */
static int64_t x_key(const wk_drift_window *w, int i)
{
    return w->start_ms >= 0 ? w->start_ms : i;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* The chart of one cascade: groups [from, to) of d (its tiers; from is the whole cascade). */
static void html_chart(const wk_drift *d, int from, int to, wk_buf *b)
{
    const int W = 760, H = 360, L = 60, R = 50, T = 30, B = 60;
    int pw = W - L - R, ph = H - T - B;
    /* The x positions: every window any tier of the cascade has, the latest kept. */
    long nk = 0;
    for (int i = from; i < to; i++)
        nk += d->g[i].g.nw;
    int64_t *keys = wk_xcalloc((size_t)nk + 1, sizeof *keys);
    long m = 0;
    for (int i = from; i < to; i++)
        for (int w = 0; w < d->g[i].g.nw; w++)
            keys[m++] = x_key(&d->g[i].g.w[w], w);
    qsort(keys, (size_t)m, sizeof *keys, cmp_i64);
    long nx = 0;
    for (long i = 0; i < m; i++)
        if (nx == 0 || keys[i] != keys[nx - 1])
            keys[nx++] = keys[i];
    long first = nx > HTML_WINDOWS_MAX ? nx - HTML_WINDOWS_MAX : 0;
    long shown = nx - first;
    wk_buf_appendf(b,
                   "<svg class=\"chart drift\" xmlns=\"http://www.w3.org/2000/svg\" "
                   "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n"
                   "<title>Attempt pass rate over time</title>\n"
                   "<text x=\"%d\" y=\"18\" class=\"ct\">Attempt pass rate per window, by tier "
                   "and model</text>\n",
                   W, H, W, H, L);
    for (int g = 0; g <= 10; g += 2) {
        int y = T + ph - ph * g / 10;
        wk_buf_appendf(b,
                       "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\"/>"
                       "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"end\">%.1f</text>\n",
                       L, y, L + pw, y, L - 6, y + 4, g / 10.0);
    }
    /* Window labels: the first, the last and a few between, so they do not overlap. */
    const wk_drift_window *lab = NULL;
    long every = shown > 8 ? (shown + 7) / 8 : 1;
    for (long xi = first; xi < nx; xi++) {
        if ((xi - first) % every && xi != nx - 1)
            continue;
        lab = NULL;
        for (int i = from; i < to && !lab; i++)
            for (int w = 0; w < d->g[i].g.nw && !lab; w++)
                if (x_key(&d->g[i].g.w[w], w) == keys[xi])
                    lab = &d->g[i].g.w[w];
        int x = L + (shown > 1 ? (int)(pw * (xi - first) / (shown - 1)) : pw / 2);
        wk_buf_appendf(b, "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">", x,
                       T + ph + 18);
        wk_buf_append_html(b, lab ? lab->label : "");
        wk_buf_appendf(b, "</text>\n");
    }
    int series = 0;
    for (int i = from; i < to && series < HTML_SERIES_MAX; i++) {
        const wk_drift_group *g = &d->g[i].g;
        if (g->tier < 0)
            continue;
        const char *color = palette[series++ % (sizeof palette / sizeof palette[0])];
        wk_buf_appendf(b,
                       "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" "
                       "stroke-width=\"2\" points=\"",
                       color);
        for (int w = 0; w < g->nw; w++) {
            const wk_drift_window *x = &g->w[w];
            long xi = (long)((int64_t *)bsearch(&(int64_t){x_key(x, w)}, keys, (size_t)nx,
                                                sizeof *keys, cmp_i64) -
                             keys);
            if (xi < first || x->n <= 0)
                continue;
            int px = L + (shown > 1 ? (int)(pw * (xi - first) / (shown - 1)) : pw / 2);
            int py = T + ph - (int)lround(ph * (double)x->k / (double)x->n);
            wk_buf_appendf(b, "%d,%d ", px, py);
        }
        wk_buf_appendf(b, "\"/>\n");
        for (int w = 0; w < g->nw; w++) {
            const wk_drift_window *x = &g->w[w];
            long xi = (long)((int64_t *)bsearch(&(int64_t){x_key(x, w)}, keys, (size_t)nx,
                                                sizeof *keys, cmp_i64) -
                             keys);
            if (xi < first || x->n <= 0)
                continue;
            int px = L + (shown > 1 ? (int)(pw * (xi - first) / (shown - 1)) : pw / 2);
            int py = T + ph - (int)lround(ph * (double)x->k / (double)x->n);
            int flag = w == g->nw - 1 && g->test.flagged;
            if (flag)
                wk_buf_appendf(b,
                               "<circle class=\"flagged\" cx=\"%d\" cy=\"%d\" r=\"9\" "
                               "fill=\"none\" stroke=\"%s\" stroke-width=\"3\"/>",
                               px, py, DRIFT_FLAG_COLOR);
            wk_buf_appendf(b,
                           "<circle class=\"pt\" cx=\"%d\" cy=\"%d\" r=\"4\" fill=\"%s\">"
                           "<title>",
                           px, py, color);
            wk_buf_append_html(b, g->model);
            wk_buf_appendf(b, " ");
            wk_buf_append_html(b, x->label);
            wk_buf_appendf(b, ": %ld of %ld passed%s</title></circle>\n", x->k, x->n,
                           flag ? " (drift)" : "");
        }
    }
    wk_buf_appendf(b, "</svg>\n");
    free(keys);
}

void wk_drift_html(const wk_drift *d, wk_buf *b)
{
    int any = 0;
    for (int i = 0; i < d->ng; i++)
        any |= d->g[i].g.nw >= 2;
    if (!any)
        return;
    wk_buf_appendf(b,
                   "<h2>Pass rate over time</h2>\n<p class=\"note\">Per window of the "
                   "results' times: a ringed point is a latest window whose pass rate differs "
                   "from the earlier windows beyond chance (two-proportion z test at alpha "
                   "%g; <code>cascade drift</code> prints the table).</p>\n",
                   d->opts.alpha);
    for (int from = 0; from < d->ng;) {
        int to = from + 1;
        while (to < d->ng && strcmp(d->g[to].g.cascade, d->g[from].g.cascade) == 0)
            to++;
        wk_buf_appendf(b, "<h3>");
        wk_buf_append_html(b, d->g[from].g.cascade);
        wk_buf_appendf(b, "</h3>\n<div class=\"charts\">\n");
        html_chart(d, from, to, b);
        wk_buf_appendf(b, "</div>\n<table><tr><th class=\"l\">tier</th><th class=\"l\">model"
                          "</th><th>latest</th><th>reference</th><th>z</th><th>p</th>"
                          "<th class=\"l\">drift</th></tr>\n");
        int series = 0;
        for (int i = from; i < to; i++) {
            const wk_drift_group *g = &d->g[i].g;
            const wk_drift_test *t = &g->test;
            const char *color =
                g->tier < 0 ? "#ffffff" : palette[series++ % (sizeof palette / sizeof palette[0])];
            wk_buf_appendf(b, "<tr%s><td class=\"l\">", t->flagged ? " class=\"flagged\"" : "");
            if (g->tier < 0)
                wk_buf_appendf(b, "all (tasks)</td><td class=\"l\">-");
            else {
                wk_buf_appendf(b,
                               "%d</td><td class=\"l\"><span class=\"sw\" "
                               "style=\"background:%s\"></span>",
                               g->tier, color);
                wk_buf_append_html(b, g->model);
            }
            wk_buf_appendf(b,
                           "</td><td>%.3f (%ld/%ld)</td><td>%.3f (%ld/%ld)</td><td>%.2f</td>"
                           "<td>%.2g</td><td class=\"l\">%s</td></tr>\n",
                           t->rate_last, t->k_last, t->n_last, t->rate_ref, t->k_ref, t->n_ref,
                           t->z, t->p_value,
                           t->flagged  ? (t->z < 0 ? "dropped" : "rose")
                           : g->nw < 2 ? "one window"
                                       : "no");
        }
        wk_buf_appendf(b, "</table>\n");
        from = to;
    }
}

int wk_drift_parse_window(const char *spec, int64_t *ms, long *n)
{
    *ms = 0;
    *n = 0;
    if (!spec || !*spec)
        return -1;
    char *end;
    double v = strtod(spec, &end);
    if (end == spec || !(v > 0) || v > 1e9)
        return -1;
    if (*end == '\0') {
        if (v != floor(v))
            return -1;
        *n = (long)v;
        return 0;
    }
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"m", 60000}, {"h", 3600000}, {"d", 86400000}, {"w", 604800000}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].unit) == 0) {
            double total = v * (double)units[i].ms;
            if (total < 60000 || total > 1e13)
                return -1;
            *ms = (int64_t)total;
            return 0;
        }
    return -1;
}
