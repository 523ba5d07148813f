/*
 * The figures of a batch (see figures.h). The expressions are written once
 * here and in the order the summary, report, replay and tune printed them
 * before they shared this file, so every printed digit stayed the same.
 */
#include "figures.h"

#include <math.h>
#include <string.h>

wk_fig_status wk_fig_status_of(const char *status)
{
    if (!status)
        return WK_FIG_ERROR;
    if (strcmp(status, "accepted") == 0)
        return WK_FIG_ACCEPTED;
    if (strcmp(status, "exhausted") == 0)
        return WK_FIG_EXHAUSTED;
    if (strcmp(status, "over_budget") == 0)
        return WK_FIG_OVER_BUDGET;
    if (strcmp(status, "invalid_task") == 0)
        return WK_FIG_INVALID;
    if (strcmp(status, "nothing_to_fix") == 0)
        return WK_FIG_NOTHING;
    if (strcmp(status, "policy_denied") == 0)
        return WK_FIG_DENIED;
    return WK_FIG_ERROR;
}

void wk_figures_count(wk_figures *f, wk_fig_status st, long tier, double cost_usd)
{
    f->tasks++;
    if (st == WK_FIG_INVALID) {
        f->invalid++;
        return;
    }
    f->cost_usd += cost_usd;
    switch (st) {
    case WK_FIG_ACCEPTED:
        f->accepted++;
        if (tier >= 0 && tier < WK_FIG_TIERS_MAX)
            f->accepted_at[tier]++;
        break;
    case WK_FIG_EXHAUSTED:
        f->exhausted++;
        break;
    case WK_FIG_OVER_BUDGET:
        f->over_budget++;
        break;
    case WK_FIG_NOTHING:
        f->nothing++;
        break;
    case WK_FIG_DENIED:
        f->denied++;
        break;
    default:
        f->error++;
        break;
    }
}

void wk_fig_top_pick_init(wk_fig_top_pick *p, int top_tier)
{
    p->top_tier = top_tier;
    p->n = 0;
    p->own = p->first = -1;
}

void wk_fig_top_pick_feed(wk_fig_top_pick *p, long tier, long prompt_tokens)
{
    int i = p->n++;
    if (prompt_tokens < 0)
        return;
    if (p->first < 0)
        p->first = i;
    if (tier == p->top_tier && p->own < 0)
        p->own = i;
}

int wk_fig_top_pick_result(const wk_fig_top_pick *p, int *estimated)
{
    *estimated = p->own < 0 && p->first >= 0;
    return p->own >= 0 ? p->own : p->first;
}

void wk_figures_add_top(wk_figures *f, double usd, int estimated)
{
    f->top_cost_usd += usd;
    f->top_estimated += estimated != 0;
}

double wk_fig_ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

double wk_fig_percent_of(double a, double b)
{
    return b > 0 ? 100.0 * a / b : 0;
}

long wk_figures_valid(const wk_figures *f)
{
    return f->tasks - f->invalid;
}

double wk_figures_pass_rate(const wk_figures *f)
{
    return wk_fig_ratio((double)f->accepted, (double)wk_figures_valid(f));
}

double wk_figures_saving(const wk_figures *f)
{
    return 100.0 * (1.0 - f->cost_usd / f->top_cost_usd);
}

void wk_fig_mean_sd(const double *v, int n, double *mean, double *sd)
{
    double s = 0, q = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    *mean = n ? s / n : 0;
    for (int i = 0; i < n; i++)
        q += (v[i] - *mean) * (v[i] - *mean);
    /* The sample sd, as the reference figures give it. */
    *sd = n > 1 ? sqrt(q / (n - 1)) : 0;
}

void wk_figures_count_label(wk_figures *f, int has_gold, int correct, long tier)
{
    if (!has_gold)
        return;
    f->gold++;
    if (!correct)
        return;
    f->correct++;
    if (tier >= 0 && tier < WK_FIG_TIERS_MAX)
        f->correct_at[tier]++;
}

double wk_figures_accuracy(const wk_figures *f)
{
    return wk_fig_ratio((double)f->correct, (double)f->gold);
}

double wk_figures_cost_per_correct(const wk_figures *f)
{
    return wk_fig_ratio(f->cost_usd, (double)f->correct);
}
