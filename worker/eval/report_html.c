/*
 * `cascade report`: the HTML report, one self-contained page with inline CSS
 * and SVG charts (see report.h).
 */
#include "report_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* Chart colours; the HTML test looks for them in the rendered page. */
#define COLOR_COST "#d9822b"
#define COLOR_RATE "#2b7bb9"
#define COLOR_SINGLE "#7b3fa0"
#define COLOR_PLAN "#3a9b3a"
#define COLOR_ORACLE "#d62728"
#define COLOR_HERE "#222222"

/* A "nice" axis maximum: 1, 2 or 5 times a power of ten at or above v. */
static double nice_max(double v)
{
    if (v <= 0)
        return 1;
    double p = pow(10, floor(log10(v)));
    for (int i = 0; i < 3; i++) {
        static const double m[] = {1, 2, 5};
        if (m[i] * p >= v)
            return m[i] * p;
    }
    return 10 * p;
}

/*
 * A vertical bar chart: one bar per tier, labelled with the model and the
 * value. `fmt` formats a value for the label; `maxv` fixes the axis (0: from
 * the data).
 */
static void bar_chart(wk_buf *b, const char *title, const char *cls, const char *color,
                      const char **labels, const double *vals, int n, double maxv, const char *fmt)
{
    const int W = 520, H = 260, L = 60, R = 20, T = 30, B = 60;
    double top = maxv;
    if (top <= 0) {
        for (int i = 0; i < n; i++)
            if (vals[i] > top)
                top = vals[i];
        top = nice_max(top);
    }
    wk_buf_appendf(b,
                   "<svg class=\"chart %s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                   "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
                   cls, W, H, W, H);
    wk_buf_appendf(b, "<title>");
    wk_buf_append_html(b, title);
    wk_buf_appendf(b, "</title>\n<text x=\"%d\" y=\"18\" class=\"ct\">", L);
    wk_buf_append_html(b, title);
    wk_buf_appendf(b, "</text>\n");
    int ph = H - T - B, pw = W - L - R;
    for (int g = 0; g <= 4; g++) {
        double v = top * g / 4;
        int y = T + ph - (int)lround(ph * (double)g / 4);
        char lab[32];
        snprintf(lab, sizeof lab, fmt, v);
        wk_buf_appendf(b,
                       "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\"/>"
                       "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"end\">%s</text>\n",
                       L, y, L + pw, y, L - 6, y + 4, lab);
    }
    int slot = n ? pw / n : pw;
    int bw = slot * 3 / 5;
    for (int i = 0; i < n; i++) {
        int h = top > 0 ? (int)lround(ph * (vals[i] / top)) : 0;
        if (h < 1 && vals[i] > 0)
            h = 1;
        int x = L + slot * i + (slot - bw) / 2;
        char lab[32];
        snprintf(lab, sizeof lab, fmt, vals[i]);
        wk_buf_appendf(b,
                       "<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                       "fill=\"%s\"/><text x=\"%d\" y=\"%d\" class=\"val\" "
                       "text-anchor=\"middle\">%s</text>\n",
                       x, T + ph - h, bw, h, color, x + bw / 2, T + ph - h - 4, lab);
        wk_buf_appendf(b, "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">",
                       x + bw / 2, T + ph + 16);
        wk_buf_appendf(b,
                       "tier %d</text><text x=\"%d\" y=\"%d\" class=\"ax\" "
                       "text-anchor=\"middle\">",
                       i, x + bw / 2, T + ph + 32);
        wk_buf_append_html(b, labels[i]);
        wk_buf_appendf(b, "</text>\n");
    }
    wk_buf_appendf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"axis\"/>\n", L, T + ph,
                   L + pw, T + ph);
    wk_buf_appendf(b, "</svg>\n");
}

typedef struct point {
    const char *label;
    double cost, rate;
    const char *color;
    int shape;        /* 0 circle, 1 square, 2 diamond */
    const char *what; /* for the legend */
} point;

/*
 * Cost (log scale) against `metric` (pass rate, or accuracy for classify
 * results with gold), numbered points; the legend is an HTML table.
 */
static void scatter(wk_buf *b, const point *p, int n, const char *metric)
{
    const int W = 760, H = 420, L = 70, R = 30, T = 30, B = 50;
    double cmin = 0, cmax = 0, rmin = 1;
    for (int i = 0; i < n; i++) {
        if (p[i].cost > 0 && (cmin == 0 || p[i].cost < cmin))
            cmin = p[i].cost;
        if (p[i].cost > cmax)
            cmax = p[i].cost;
        if (p[i].rate < rmin)
            rmin = p[i].rate;
    }
    if (cmin <= 0)
        cmin = cmax > 0 ? cmax / 10 : 0.001;
    if (cmax <= cmin)
        cmax = cmin * 10;
    double lo = floor(log10(cmin)), hi = ceil(log10(cmax));
    if (hi <= lo)
        hi = lo + 1;
    double ylo = floor(rmin * 10) / 10;
    if (ylo > 0.9)
        ylo = 0.9;
    if (ylo < 0)
        ylo = 0;
    int pw = W - L - R, ph = H - T - B;
    wk_buf_appendf(b,
                   "<svg class=\"chart scatter\" xmlns=\"http://www.w3.org/2000/svg\" "
                   "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n"
                   "<title>Cost against %s</title>\n"
                   "<text x=\"%d\" y=\"18\" class=\"ct\">Cost (USD, log scale) against "
                   "%s</text>\n",
                   W, H, W, H, metric, L, metric);
    for (double e = lo; e <= hi + 1e-9; e++) {
        int x = L + (int)lround(pw * (e - lo) / (hi - lo));
        wk_buf_appendf(b,
                       "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\"/>"
                       "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">$%g</text>\n",
                       x, T, x, T + ph, x, T + ph + 18, pow(10, e));
    }
    double step = 1 - ylo >= 0.3 ? 0.1 : 0.05;
    int nticks = (int)lround((1 - ylo) / step);
    for (int g = 0; g <= nticks; g++) {
        double v = ylo + step * g;
        int y = T + ph - (int)lround(ph * (v - ylo) / (1 - ylo));
        wk_buf_appendf(b,
                       "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\"/>"
                       "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"end\">%.2f</text>\n",
                       L, y, L + pw, y, L - 6, y + 4, v);
    }
    wk_buf_appendf(b,
                   "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">cost</text>"
                   "<text x=\"14\" y=\"%d\" class=\"ax\" transform=\"rotate(-90 14 %d)\" "
                   "text-anchor=\"middle\">%s</text>\n",
                   L + pw / 2, H - 8, T + ph / 2, T + ph / 2, metric);
    int *labx = wk_xcalloc((size_t)n + 1, sizeof(int));
    int *laby = wk_xcalloc((size_t)n + 1, sizeof(int));
    int nlab = 0;
    for (int i = 0; i < n; i++) {
        double c = p[i].cost > 0 ? p[i].cost : cmin;
        int x = L + (int)lround(pw * (log10(c) - lo) / (hi - lo));
        int y = T + ph - (int)lround(ph * (p[i].rate - ylo) / (1 - ylo));
        if (p[i].shape == 1)
            wk_buf_appendf(b,
                           "<rect class=\"pt\" x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" "
                           "fill=\"%s\"/>",
                           x - 7, y - 7, p[i].color);
        else if (p[i].shape == 2)
            wk_buf_appendf(b,
                           "<polygon class=\"pt\" points=\"%d,%d %d,%d %d,%d %d,%d\" "
                           "fill=\"%s\"/>",
                           x, y - 10, x + 10, y, x, y + 10, x - 10, y, p[i].color);
        else
            wk_buf_appendf(b, "<circle class=\"pt\" cx=\"%d\" cy=\"%d\" r=\"8\" fill=\"%s\"/>", x,
                           y, p[i].color);
        /* Numbers of points close together are stacked rather than printed over each other. */
        int lx = x + 11, ly = y - 7;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < nlab; j++)
                if (abs(labx[j] - lx) < 22 && abs(laby[j] - ly) < 12) {
                    ly += 13;
                    moved = 1;
                }
        }
        labx[nlab] = lx;
        laby[nlab++] = ly;
    }
    /* The numbers after every point, so no point hides one. */
    for (int i = 0; i < nlab; i++)
        wk_buf_appendf(b, "<text x=\"%d\" y=\"%d\" class=\"num\">%d</text>\n", labx[i], laby[i],
                       i + 1);
    free(labx);
    free(laby);
    wk_buf_appendf(b, "</svg>\n");
}

static const char css[] =
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;margin:8px 0 16px}"
    "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child,td.l,th.l{text-align:left}"
    ".charts{display:flex;flex-wrap:wrap;gap:16px}"
    "svg.chart{background:#fff;border:1px solid #e3e3e3}"
    ".ct{font-size:14px;font-weight:600;fill:#222}.ax{font-size:11px;fill:#555}"
    ".val{font-size:11px;fill:#222}.num{font-size:12px;font-weight:600;fill:#222}"
    ".grid{stroke:#eee}.axis{stroke:#888}.note{color:#666}"
    ".sw{display:inline-block;width:12px;height:12px;margin-right:6px}";

int wk_report_html(const wk_report *r, const char *path, char *err, size_t errlen)
{
    int rc = 0, n = 0;
    FILE *f = NULL;
    wk_buf b;
    wk_buf_init(&b, 256u << 20);
    casc_fig *cf = wk__report_compute((wk_report *)r, &n);
    point *pts = wk_xcalloc((size_t)(r->ntable + n) + 1, sizeof(point));
    int npts = 0;

    wk_buf_appendf(&b,
                   "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<title>cascade report</title><style>%s</style></head><body>\n"
                   "<h1>cascade report</h1>\n",
                   css);
    long total = 0;
    for (int k = 0; k < n; k++)
        total += cf[k].f.tasks;
    wk_buf_appendf(&b, "<p>%ld tasks from %d results file%s%s.</p>\n", total, r->files,
                   r->files == 1 ? "" : "s",
                   r->invalid ? " (invalid_task lines are not counted)" : "");

    /*
     * Cost against pass rate: the eval table's plans, then this report's
     * cascades. When every cascade here is a classify one with gold labels
     * (and every table row gives an accuracy), against accuracy instead: a
     * valid label passes, so the pass rate says nothing of its being right.
     */
    int by_acc = n > 0;
    for (int k = 0; k < n; k++)
        by_acc &= cf[k].f.gold > 0;
    for (int i = 0; i < r->ntable; i++)
        by_acc &= r->table[i].accuracy >= 0;
    const char *metric = by_acc ? "accuracy" : "pass rate";
    for (int i = 0; i < r->ntable; i++) {
        const table_row *t = &r->table[i];
        int oracle = strcmp(t->plan, "oracle") == 0;
        int single = !strchr(t->plan, '>') && !oracle;
        pts[npts++] = (point){t->plan,
                              t->cost,
                              by_acc ? t->accuracy : t->pass_rate,
                              oracle   ? COLOR_ORACLE
                              : single ? COLOR_SINGLE
                                       : COLOR_PLAN,
                              oracle   ? 2
                              : single ? 0
                                       : 1,
                              oracle   ? "oracle (per task, the cheapest model that passes)"
                              : single ? "one model (eval table)"
                                       : "cascade (eval table)"};
    }
    for (int k = 0; k < n; k++)
        pts[npts++] =
            (point){wk__report_name(r, cf[k].name),
                    cf[k].f.cost_usd,
                    by_acc ? wk_figures_accuracy(&cf[k].f) : wk_figures_pass_rate(&cf[k].f),
                    COLOR_HERE,
                    1,
                    "cascade in these results"};
    wk_buf_appendf(&b, "<h2>Cost against %s</h2>\n<div class=\"charts\">\n", metric);
    scatter(&b, pts, npts, metric);
    wk_buf_appendf(&b,
                   "</div>\n<table><tr><th>#</th><th class=\"l\">plan</th><th>%s</th>"
                   "<th>cost</th><th class=\"l\">what</th></tr>\n",
                   metric);
    for (int i = 0; i < npts; i++) {
        wk_buf_appendf(&b, "<tr><td>%d</td><td class=\"l\">", i + 1);
        wk_buf_append_html(&b, pts[i].label);
        wk_buf_appendf(&b,
                       "</td><td>%.3f</td><td>$%.4f</td><td class=\"l\"><span class=\"sw\" "
                       "style=\"background:%s\"></span>%s</td></tr>\n",
                       pts[i].rate, pts[i].cost, pts[i].color, pts[i].what);
    }
    wk_buf_appendf(&b, "</table>\n");
    if (!r->ntable)
        wk_buf_appendf(&b, "<p class=\"note\">No eval table was given (--table), so single "
                           "models and the oracle are not shown.</p>\n");
    /* Pass rate over time per model, when the results span two windows (drift.h). */
    char derr[256];
    if (wk_drift_finish(r->drift, derr, sizeof derr) == 0)
        wk_drift_html(r->drift, &b);
    else {
        wk_buf_appendf(&b, "<p class=\"note\">No chart of the pass rate over time: ");
        wk_buf_append_html(&b, derr);
        wk_buf_appendf(&b, ".</p>\n");
    }

    for (int k = 0; k < n; k++) {
        const casc_fig *c = &cf[k];
        const wk_figures *g = &c->f;
        wk_buf_appendf(&b, "<h2>Cascade ");
        wk_buf_append_html(&b, wk__report_name(r, c->name));
        wk_buf_appendf(&b, "</h2>\n<table><tr><th>tasks</th><th>accepted</th><th>exhausted"
                           "</th><th>over_budget</th><th>error</th><th>pass rate</th><th>cost"
                           "</th><th>per solved task</th><th>top tier alone</th><th>saving"
                           "</th></tr>\n");
        wk_buf_appendf(&b,
                       "<tr><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td>"
                       "<td>%.3f</td><td>$%.6f</td><td>$%.6f</td><td>$%.6f</td><td>%.1f%%"
                       "</td></tr></table>\n",
                       g->tasks, g->accepted, g->exhausted, g->over_budget, g->error,
                       wk_figures_pass_rate(g), g->cost_usd,
                       wk_fig_ratio(g->cost_usd, (double)g->accepted), g->top_cost_usd,
                       g->top_cost_usd > 0 ? wk_figures_saving(g) : 0);
        if (g->gold) { /* classify results with gold labels */
            wk_buf_appendf(&b, "<table><tr><th>tier</th><th>model</th><th>labelled</th>"
                               "<th>correct</th><th>accuracy</th></tr>\n");
            for (int t = 0; t < c->ntiers; t++) {
                wk_buf_appendf(&b, "<tr><td>%d</td><td>", t);
                wk_buf_append_html(
                    &b, c->tiers[t].model >= 0 ? wk__report_name(r, c->tiers[t].model) : "-");
                wk_buf_appendf(&b, "</td><td>%ld</td><td>%ld</td><td>%.3f</td></tr>\n",
                               c->gold_at[t], g->correct_at[t],
                               wk_fig_ratio((double)g->correct_at[t], (double)c->gold_at[t]));
            }
            wk_buf_appendf(&b,
                           "<tr><td colspan=\"2\">all</td><td>%ld</td><td>%ld</td>"
                           "<td>%.3f</td></tr></table>\n<p class=\"note\">Cost per correct "
                           "label $%.6f; climbs per task %.3f.</p>\n",
                           g->gold, g->correct, wk_figures_accuracy(g),
                           wk_figures_cost_per_correct(g),
                           wk_fig_ratio((double)c->climbs_total, (double)g->tasks));
        }
        wk_buf_appendf(&b, "<p class=\"note\">Top tier: ");
        wk_buf_append_html(&b, c->top_model);
        if (g->top_estimated)
            wk_buf_appendf(&b, "; %ld tasks priced from lower tiers' token counts",
                           g->top_estimated);
        if (!g->top_from_config)
            wk_buf_appendf(&b, "; no models file: prices %s",
                           c->prices_known ? "inferred from its attempts" : "unknown");
        wk_buf_appendf(&b, ".</p>\n");

        const char *labels[TIERS_MAX];
        double costs[TIERS_MAX], rates[TIERS_MAX];
        for (int t = 0; t < c->ntiers; t++) {
            labels[t] = c->tiers[t].model >= 0 ? wk__report_name(r, c->tiers[t].model) : "-";
            costs[t] = c->tiers[t].cost;
            rates[t] = wk_fig_ratio((double)c->tiers[t].passed, (double)c->tiers[t].calls);
        }
        wk_buf_appendf(&b, "<div class=\"charts\">\n");
        bar_chart(&b, "Cost per tier (USD)", "cost", COLOR_COST, labels, costs, c->ntiers, 0,
                  "$%.4g");
        bar_chart(&b, "Pass rate of the attempts at each tier", "rate", COLOR_RATE, labels, rates,
                  c->ntiers, 1.0, "%.2f");
        wk_buf_appendf(&b, "</div>\n<table><tr><th>tier</th><th>model</th><th>reached</th>"
                           "<th>calls</th><th>passed</th><th>accepted</th><th>pass rate</th>"
                           "<th>cost</th></tr>\n");
        for (int t = 0; t < c->ntiers; t++) {
            const tier_fig *x = &c->tiers[t];
            wk_buf_appendf(&b, "<tr><td>%d</td><td class=\"l\">", t);
            wk_buf_append_html(&b, labels[t]);
            wk_buf_appendf(&b,
                           "</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%.3f"
                           "</td><td>$%.6f</td></tr>\n",
                           x->reached, x->calls, x->passed, c->f.accepted_at[t], rates[t], x->cost);
        }
        wk_buf_appendf(&b, "</table>\n<table><tr><th>kind</th><th>tasks</th><th>accepted</th>"
                           "<th>pass rate</th><th>cost</th></tr>\n");
        for (int j = 0; j < c->nkinds; j++) {
            wk_buf_appendf(&b, "<tr><td>");
            wk_buf_append_html(&b, wk__report_name(r, c->kinds[j].kind));
            wk_buf_appendf(&b, "</td><td>%ld</td><td>%ld</td><td>%.3f</td><td>$%.6f</td></tr>\n",
                           c->kinds[j].tasks, c->kinds[j].accepted,
                           wk_fig_ratio((double)c->kinds[j].accepted, (double)c->kinds[j].tasks),
                           c->kinds[j].cost);
        }
        wk_buf_appendf(&b,
                       "</table>\n<table><tr><th>failed attempts by validator: reason "
                       "(top %d)</th><th>count</th></tr>\n",
                       TOP_REASONS);
        for (int j = 0; j < c->nreasons && j < TOP_REASONS; j++) {
            wk_buf_appendf(&b, "<tr><td>");
            wk_buf_append_html(&b, wk__report_name(r, c->reasons[j].reason));
            wk_buf_appendf(&b, "</td><td>%ld</td></tr>\n", c->reasons[j].n);
        }
        wk_buf_appendf(&b, "</table>\n");
    }
    if (wk_buf_appendf(&b, "</body></html>\n") != 0) {
        snprintf(err, errlen, "%s: the report is over its size cap", path);
        rc = WK_ETOOBIG;
        goto cleanup;
    }
    f = fopen(path, "w");
    if (!f || fwrite(b.buf, 1, b.len, f) != b.len || fflush(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = WK_EIO;
    }
cleanup:
    if (f)
        fclose(f);
    free(pts);
    wk__report_figs_free(cf, n);
    wk_buf_release(&b);
    return rc;
}
