/*
 * `cascade report`: the text report (see report.h).
 */
#include "report_int.h"

#include <stdio.h>

/* A classify cascade's labels against gold: accuracy, per tier, confusion, climbs. */
static void label_figs(const wk_report *r, const casc_fig *c, FILE *f)
{
    const wk_figures *g = &c->f;
    fprintf(f,
            "  accuracy %.3f (%ld of %ld tasks with a gold label)   cost per correct label "
            "$%.6f\n",
            wk_figures_accuracy(g), g->correct, g->gold, wk_figures_cost_per_correct(g));
    fprintf(f, "  %-4s %-28s %8s %8s %9s\n", "tier", "model", "labelled", "correct", "accuracy");
    for (int t = 0; t < c->ntiers; t++)
        fprintf(f, "  %-4d %-28s %8ld %8ld %9.3f\n", t,
                c->tiers[t].model >= 0 ? wk__report_name(r, c->tiers[t].model) : "-", c->gold_at[t],
                g->correct_at[t], wk_fig_ratio((double)g->correct_at[t], (double)c->gold_at[t]));
    fprintf(f, "  confusion (rows gold, columns accepted label):\n  %-14s", "");
    for (int j = 0; j < c->nlabels; j++)
        fprintf(f, " %10.10s", c->labels[j] >= 0 ? wk__report_name(r, c->labels[j]) : "(none)");
    fprintf(f, "\n");
    for (int i = 0; i < c->nlabels; i++) {
        if (c->labels[i] < 0)
            continue; /* "(none)" is never a gold label */
        fprintf(f, "  %-14.14s", wk__report_name(r, c->labels[i]));
        for (int j = 0; j < c->nlabels; j++)
            fprintf(f, " %10ld", c->confusion[i][j]);
        fprintf(f, "\n");
    }
    fprintf(f, "  climbs: %ld (%.3f per task); by reason:\n", c->climbs_total,
            wk_fig_ratio((double)c->climbs_total, (double)g->tasks));
    for (int j = 0; j < c->nclimbs; j++)
        fprintf(f, "    %6ld  %.3f per task  %s\n", c->climbs[j].n,
                wk_fig_ratio((double)c->climbs[j].n, (double)g->tasks),
                wk__report_name(r, c->climbs[j].reason));
}

void wk_report_text(const wk_report *r, FILE *f)
{
    int n = 0;
    casc_fig *cf = wk__report_compute((wk_report *)r, &n);
    long total = 0;
    for (int k = 0; k < n; k++)
        total += cf[k].f.tasks;
    fprintf(f, "cascade report: %ld tasks from %d results file%s", total, r->files,
            r->files == 1 ? "" : "s");
    if (r->invalid)
        fprintf(f, " (and %ld invalid_task lines, not counted)", r->invalid);
    fprintf(f, "\n");
    for (int k = 0; k < n; k++) {
        const casc_fig *c = &cf[k];
        const wk_figures *g = &c->f;
        fprintf(f, "\n== cascade %s\n", wk__report_name(r, c->name));
        fprintf(f, "  tasks %ld: %ld accepted, %ld exhausted, %ld over_budget, %ld error", g->tasks,
                g->accepted, g->exhausted, g->over_budget, g->error);
        if (g->nothing)
            fprintf(f, ", %ld nothing_to_fix", g->nothing);
        if (g->denied)
            fprintf(f, ", %ld policy_denied", g->denied);
        fprintf(f, "\n");
        fprintf(f, "  pass rate %.3f   cost $%.6f   cost per solved task $%.6f\n",
                wk_figures_pass_rate(g), g->cost_usd,
                wk_fig_ratio(g->cost_usd, (double)g->accepted));
        if (g->top_cost_usd > 0) {
            fprintf(f, "  top tier alone (%s): $%.6f, saving %.1f%%", c->top_model, g->top_cost_usd,
                    wk_figures_saving(g));
            if (g->top_estimated)
                fprintf(f, "; %ld tasks priced from lower tiers' token counts", g->top_estimated);
            fprintf(f, "\n");
        } else {
            fprintf(f, "  top tier alone (%s): no figure\n", c->top_model);
        }
        if (!g->top_from_config)
            fprintf(f,
                    "  (no models file for this cascade: the top tier is the highest tier "
                    "in the results and its prices are %s)\n",
                    c->prices_known ? "inferred from its attempts' costs and tokens"
                                    : "unknown, so only its own calls are counted");
        fprintf(f, "  %-4s %-28s %8s %6s %6s %8s %9s %12s\n", "tier", "model", "reached", "calls",
                "passed", "accepted", "pass rate", "cost");
        for (int t = 0; t < c->ntiers; t++) {
            const tier_fig *x = &c->tiers[t];
            fprintf(f, "  %-4d %-28s %8ld %6ld %6ld %8ld %9.3f %12.6f\n", t,
                    x->model >= 0 ? wk__report_name(r, x->model) : "-", x->reached, x->calls,
                    x->passed, c->f.accepted_at[t],
                    wk_fig_ratio((double)x->passed, (double)x->calls), x->cost);
        }
        fprintf(f, "  %-12s %6s %8s %9s %12s\n", "kind", "tasks", "accepted", "pass rate", "cost");
        for (int j = 0; j < c->nkinds; j++)
            fprintf(f, "  %-12s %6ld %8ld %9.3f %12.6f\n", wk__report_name(r, c->kinds[j].kind),
                    c->kinds[j].tasks, c->kinds[j].accepted,
                    wk_fig_ratio((double)c->kinds[j].accepted, (double)c->kinds[j].tasks),
                    c->kinds[j].cost);
        if (g->gold)
            label_figs(r, c, f);
        fprintf(f, "  failed attempts: %ld; by validator and reason (top %d):\n",
                c->failed_attempts, TOP_REASONS);
        for (int j = 0; j < c->nreasons && j < TOP_REASONS; j++)
            fprintf(f, "    %6ld  %s\n", c->reasons[j].n, wk__report_name(r, c->reasons[j].reason));
    }
    wk__report_figs_free(cf, n);
}
