/*
 * `cascade report`: the figures of each cascade, computed from the stored
 * results (see report_int.h). The counting and the top-tier pick are
 * eval/figures.h's, as in `run`'s summary: per task, the top tier's own
 * attempt when it was called, else the first attempt's token counts at the
 * top tier's prices (counted as estimated). Here the top tier's own attempt
 * counts at its recorded cost, and its prices come from the models file or,
 * without one, are inferred from its attempts.
 */
#include "report_int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

static const rcasc *config_cascade(const wk_report *r, const char *name)
{
    for (int i = 0; i < r->ncasc; i++)
        if (strcmp(r->casc[i].name, name) == 0)
            return &r->casc[i];
    return NULL;
}

/*
 * Prices of a model from its attempts: cost = pt * in + ct * out, solved by
 * least squares over every attempt with both counts. Returns 0 when the
 * attempts do not pin both prices down (one attempt, or all in one ratio).
 */
static int infer_prices(const wk_report *r, int model, double *in, double *out)
{
    double spp = 0, scc = 0, spc = 0, sp = 0, sc = 0;
    for (long i = 0; i < r->nrows; i++)
        for (int k = 0; k < r->rows[i].natts; k++) {
            const att *a = &r->rows[i].atts[k];
            if (a->model != model || a->pt < 0 || a->ct < 0)
                continue;
            double p = (double)a->pt, c = (double)a->ct;
            spp += p * p;
            scc += c * c;
            spc += p * c;
            sp += p * a->cost;
            sc += c * a->cost;
        }
    double det = spp * scc - spc * spc;
    if (det <= 1e-9 * (spp * scc + 1))
        return 0;
    *in = (sp * scc - sc * spc) / det;
    *out = (sc * spp - sp * spc) / det;
    if (*in < 0)
        *in = 0;
    if (*out < 0)
        *out = 0;
    return 1;
}

static int cmp_reason(const void *a, const void *b)
{
    const reason_fig *x = a, *y = b;
    return (x->n < y->n) - (x->n > y->n);
}

static int row_kind(const wk_report *r, const row *w)
{
    if (w->id < r->kind_of_cap && r->kind_of && r->kind_of[w->id] >= 0)
        return r->kind_of[w->id];
    return -1;
}

/* The slot of label `name` (-1: none) in the cascade's confusion matrix; -1 when it is full. */
static int label_slot(casc_fig *c, int name)
{
    for (int i = 0; i < c->nlabels; i++)
        if (c->labels[i] == name)
            return i;
    if (c->nlabels == CONF_LABELS_MAX)
        return -1;
    c->labels[c->nlabels] = name;
    return c->nlabels++;
}

/* A classify task with a gold label: accuracy per tier and the confusion matrix. */
static void count_label(casc_fig *c, const row *w)
{
    if (w->gold < 0)
        return;
    int correct = w->label >= 0 && w->label == w->gold;
    wk_figures_count_label(&c->f, 1, correct, w->tier);
    if (w->tier >= 0 && w->tier < TIERS_MAX)
        c->gold_at[w->tier]++;
    int g = label_slot(c, w->gold), l = label_slot(c, w->label);
    if (g >= 0 && l >= 0)
        c->confusion[g][l]++;
}

/* Computes the figures of every cascade; caller frees with free_figs. */
casc_fig *wk__report_compute(wk_report *r, int *nout)
{
    casc_fig *cf = NULL;
    int n = 0;
    for (long i = 0; i < r->nrows; i++) {
        const row *w = &r->rows[i];
        int k = 0;
        while (k < n && cf[k].name != w->cascade)
            k++;
        if (k == n) {
            cf = wk_xrealloc(cf, (size_t)(n + 1) * sizeof(casc_fig));
            memset(&cf[n], 0, sizeof cf[n]);
            cf[n].name = w->cascade;
            for (int t = 0; t < TIERS_MAX; t++)
                cf[n].tiers[t].model = -1;
            n++;
        }
        casc_fig *c = &cf[k];
        wk_figures_count(&c->f, w->status, w->tier, w->cost);
        count_label(c, w);
        int seen[TIERS_MAX] = {0};
        for (int a = 0; a < w->natts; a++) {
            const att *x = &w->atts[a];
            tier_fig *t = &c->tiers[x->tier];
            if (x->tier + 1 > c->ntiers)
                c->ntiers = x->tier + 1;
            if (t->model < 0)
                t->model = x->model;
            if (!seen[x->tier]++)
                t->reached++;
            t->calls++;
            t->passed += x->pass;
            t->cost += x->cost;
            /* A failed attempt followed by a higher tier's is the climb's reason. */
            if (!x->pass && a + 1 < w->natts && w->atts[a + 1].tier > x->tier) {
                c->climbs_total++;
                int j = 0;
                while (j < c->nclimbs && c->climbs[j].reason != x->reason)
                    j++;
                if (j == c->nclimbs) {
                    c->climbs = wk_xrealloc(c->climbs, (size_t)(j + 1) * sizeof(reason_fig));
                    c->climbs[j] = (reason_fig){x->reason, 0};
                    c->nclimbs++;
                }
                c->climbs[j].n++;
            }
            if (!x->pass) {
                c->failed_attempts++;
                int j = 0;
                while (j < c->nreasons && c->reasons[j].reason != x->reason)
                    j++;
                if (j == c->nreasons) {
                    c->reasons = wk_xrealloc(c->reasons, (size_t)(j + 1) * sizeof(reason_fig));
                    c->reasons[j] = (reason_fig){x->reason, 0};
                    c->nreasons++;
                }
                c->reasons[j].n++;
            }
        }
        /* The kind: the tasks file, else the cascade's match, else unknown. */
        int kind = row_kind(r, w);
        if (kind < 0) {
            const rcasc *cc = config_cascade(r, wk__report_name(r, w->cascade));
            kind = wk__report_name_id(r, cc && cc->kind ? cc->kind : "unknown");
        }
        int j = 0;
        while (j < c->nkinds && c->kinds[j].kind != kind)
            j++;
        if (j == c->nkinds) {
            c->kinds = wk_xrealloc(c->kinds, (size_t)(j + 1) * sizeof(kind_fig));
            c->kinds[j] = (kind_fig){.kind = kind};
            c->nkinds++;
        }
        c->kinds[j].tasks++;
        c->kinds[j].accepted += w->status == WK_FIG_ACCEPTED;
        c->kinds[j].cost += w->cost;
    }
    for (int k = 0; k < n; k++) {
        casc_fig *c = &cf[k];
        /* qsort wants a valid pointer even for nothing to sort (a batch with no failure). */
        if (c->nreasons)
            qsort(c->reasons, (size_t)c->nreasons, sizeof(reason_fig), cmp_reason);
        if (c->nclimbs)
            qsort(c->climbs, (size_t)c->nclimbs, sizeof(reason_fig), cmp_reason);
        const rcasc *cc = config_cascade(r, wk__report_name(r, c->name));
        if (cc) {
            c->top_tier = cc->ntiers - 1;
            c->top_model = cc->top_model;
            c->top_in = cc->in;
            c->top_out = cc->out;
            c->prices_known = 1;
            c->f.top_from_config = 1;
            if (cc->ntiers > c->ntiers)
                c->ntiers = cc->ntiers;
        } else {
            c->top_tier = c->ntiers - 1;
            int model = c->top_tier >= 0 ? c->tiers[c->top_tier].model : -1;
            c->top_model = model >= 0 ? wk__report_name(r, model) : "?";
            c->prices_known = model >= 0 && infer_prices(r, model, &c->top_in, &c->top_out);
        }
        if (c->ntiers > TIERS_MAX)
            c->ntiers = TIERS_MAX;
    }
    /* The top tier's cost per task, the attempt picked as run's summary picks it. */
    for (long i = 0; i < r->nrows; i++) {
        const row *w = &r->rows[i];
        casc_fig *c = cf;
        while (c->name != w->cascade)
            c++;
        wk_fig_top_pick pick;
        wk_fig_top_pick_init(&pick, c->top_tier);
        for (int a = 0; a < w->natts; a++)
            wk_fig_top_pick_feed(&pick, w->atts[a].tier, w->atts[a].pt);
        int estimated;
        int a = wk_fig_top_pick_result(&pick, &estimated);
        if (a < 0)
            continue;
        const att *x = &w->atts[a];
        if (!estimated)
            wk_figures_add_top(&c->f, x->cost, 0);
        else if (c->prices_known)
            wk_figures_add_top(
                &c->f, (double)x->pt * c->top_in + (double)(x->ct > 0 ? x->ct : 0) * c->top_out, 1);
    }
    *nout = n;
    return cf;
}

void wk__report_figs_free(casc_fig *cf, int n)
{
    for (int k = 0; k < n; k++) {
        free(cf[k].kinds);
        free(cf[k].reasons);
        free(cf[k].climbs);
    }
    free(cf);
}

int wk_report_figures_of(const wk_report *r, const char *cascade, wk_figures *out)
{
    int n = 0, rc = WK_ENOTFOUND;
    casc_fig *cf = wk__report_compute((wk_report *)r, &n);
    for (int k = 0; k < n; k++)
        if (strcmp(wk__report_name(r, cf[k].name), cascade) == 0) {
            *out = cf[k].f;
            rc = 0;
        }
    wk__report_figs_free(cf, n);
    return rc;
}
