/*
 * The end-of-run summary (see summary.h).
 */
#include "summary.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "worker/cost.h"

void wk_summary_init(wk_summary *s, const wk_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->cfg = cfg;
    s->per = wk_xcalloc((size_t)cfg->ncascades + 1, sizeof(wk_figures));
}

void wk_summary_release(wk_summary *s)
{
    free(s->per);
    s->per = NULL;
}

static long jlong(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(f) ? (long)f->valuedouble : -1;
}

/*
 * What the task would have cost at the top tier alone (figures.h picks the
 * attempt), priced with the top tier's model as `run` prices a call.
 */
static void add_top_cost(wk_summary *s, const wk_cascade *c, const cJSON *attempts)
{
    const wk_model *top = c->tiers[c->ntiers - 1].model;
    wk_fig_top_pick pick;
    wk_fig_top_pick_init(&pick, c->ntiers - 1);
    const cJSON *a;
    cJSON_ArrayForEach(a, attempts)
    {
        wk_fig_top_pick_feed(&pick, jlong(a, "tier"), jlong(a, "prompt_tokens"));
    }
    int estimated;
    int i = wk_fig_top_pick_result(&pick, &estimated);
    if (i < 0)
        return;
    a = cJSON_GetArrayItem(attempts, i);
    wk_figures_add_top(&s->st,
                       wk_cost(top, jlong(a, "prompt_tokens"), jlong(a, "completion_tokens"), 0),
                       estimated);
}

/*
 * Attempts priced at a batch or flex lane: what they cost, and what the same
 * usage costs on the sync lane, with the model (or deployment) that answered.
 */
static void add_lane_costs(wk_summary *s, const cJSON *attempts)
{
    const cJSON *a;
    cJSON_ArrayForEach(a, attempts)
    {
        const char *lane = wk_jstr(a, "lane");
        if (!lane || wk_lane_priced(wk_lane_parse(lane)) == WK_LANE_SYNC ||
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "cost_recorded")))
            continue;
        const char *name =
            wk_jstr(a, "deployment") ? wk_jstr(a, "deployment") : wk_jstr(a, "model");
        const wk_model *m = name ? wk_config_model(s->cfg, name) : NULL;
        const cJSON *cost = cJSON_GetObjectItemCaseSensitive(a, "cost_usd");
        if (!m || !cJSON_IsNumber(cost))
            continue;
        long cached = jlong(a, "cached_tokens");
        s->lane_attempts++;
        s->lane_usd += cost->valuedouble;
        s->lane_sync_usd += wk_cost(m, jlong(a, "prompt_tokens"), jlong(a, "completion_tokens"),
                                    cached > 0 ? cached : 0);
    }
}

void wk_summary_add(wk_summary *s, const wk_cascade *c, const cJSON *res)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(res, "status");
    wk_fig_status status = wk_fig_status_of(cJSON_IsString(st) ? st->valuestring : NULL);
    if (!c) {
        wk_figures_count(&s->st, WK_FIG_INVALID, -1, 0);
        return;
    }
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(res, "cost_usd");
    double usd = cJSON_IsNumber(cost) ? cost->valuedouble : 0;
    long tier = jlong(res, "tier");
    wk_figures_count(&s->st, status, tier, usd);
    if (status == WK_FIG_INVALID)
        return;
    wk_figures_count(&s->per[c - s->cfg->cascades], status, tier < c->ntiers ? tier : -1, usd);
    add_top_cost(s, c, cJSON_GetObjectItemCaseSensitive(res, "attempts"));
    /* A classify task: its gold label and whether the accepted one matched it. */
    int has_gold = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(res, "gold"));
    int correct = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "correct"));
    wk_figures_count_label(&s->st, has_gold, correct, tier);
    wk_figures_count_label(&s->per[c - s->cfg->cascades], has_gold, correct, tier);
    const cJSON *a;
    int recorded = 0;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(res, "attempts"))
    {
        recorded |= cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, "cost_recorded"));
    }
    s->st.cost_recorded += recorded;
    add_lane_costs(s, cJSON_GetObjectItemCaseSensitive(res, "attempts"));
}

void wk_summary_print(const wk_summary *s, FILE *f)
{
    const wk_figures *st = &s->st;
    fprintf(f,
            "cascade: %ld tasks: %ld accepted, %ld exhausted, %ld over_budget, %ld error, "
            "%ld invalid_task",
            st->tasks, st->accepted, st->exhausted, st->over_budget, st->error, st->invalid);
    if (st->nothing)
        fprintf(f, ", %ld nothing_to_fix", st->nothing);
    if (st->denied)
        fprintf(f, ", %ld policy_denied", st->denied);
    fprintf(f, "\n");
    for (int i = 0; i < s->cfg->ncascades; i++) {
        const wk_cascade *c = &s->cfg->cascades[i];
        long sum = 0;
        for (int k = 0; k < c->ntiers && k < WK_FIG_TIERS_MAX; k++)
            sum += s->per[i].accepted_at[k];
        if (!sum)
            continue;
        fprintf(f, "  %s\n", c->name);
        for (int k = 0; k < c->ntiers; k++)
            fprintf(f, "    tier %d  %-20s %6ld accepted\n", k, c->tiers[k].model->name,
                    k < WK_FIG_TIERS_MAX ? s->per[i].accepted_at[k] : 0);
    }
    fprintf(f, "  pass rate        %.3f (%ld of %ld valid tasks)\n", wk_figures_pass_rate(st),
            st->accepted, wk_figures_valid(st));
    if (st->gold)
        fprintf(f,
                "  accuracy         %.3f (%ld of %ld tasks with a gold label), $%.6f per "
                "correct label\n",
                wk_figures_accuracy(st), st->correct, st->gold, wk_figures_cost_per_correct(st));
    fprintf(f, "  total cost       $%.6f", st->cost_usd);
    if (st->cost_recorded)
        fprintf(f, " (%ld tasks at their recordings' own cost)", st->cost_recorded);
    fprintf(f, "\n");
    if (s->lane_attempts)
        fprintf(f,
                "  on the sync lane $%.6f (the same attempts; %ld ran on batch or flex for "
                "$%.6f instead of $%.6f)\n",
                st->cost_usd - s->lane_usd + s->lane_sync_usd, s->lane_attempts, s->lane_usd,
                s->lane_sync_usd);
    fprintf(f, "  top tier only    $%.6f", st->top_cost_usd);
    if (st->top_estimated)
        fprintf(f, " (%ld tasks priced from lower tiers' token counts)", st->top_estimated);
    fprintf(f, "\n");
    if (st->top_cost_usd > 0)
        fprintf(f, "  saving           %.1f%%\n", wk_figures_saving(st));
}
