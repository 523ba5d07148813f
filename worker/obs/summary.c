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
    s->accepted = wk_xcalloc((size_t)cfg->ncascades + 1, sizeof(long *));
    for (int i = 0; i < cfg->ncascades; i++)
        s->accepted[i] = wk_xcalloc((size_t)cfg->cascades[i].ntiers, sizeof(long));
}

void wk_summary_release(wk_summary *s)
{
    if (!s->accepted)
        return;
    for (int i = 0; i < s->cfg->ncascades; i++)
        free(s->accepted[i]);
    free(s->accepted);
    s->accepted = NULL;
}

static long jlong(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(f) ? (long)f->valuedouble : -1;
}

/*
 * What the task would have cost at the top tier alone: the top tier's own
 * usage when it was called, else the first attempt's token counts priced at
 * the top tier (an estimate, counted as such).
 */
static void add_top_cost(wk_summary *s, const wk_cascade *c, const cJSON *attempts)
{
    const wk_model *top = c->tiers[c->ntiers - 1].model;
    const cJSON *a, *first = NULL;
    cJSON_ArrayForEach(a, attempts)
    {
        if (jlong(a, "prompt_tokens") < 0)
            continue;
        if (!first)
            first = a;
        if (jlong(a, "tier") == c->ntiers - 1) {
            s->st.top_cost_usd +=
                wk_cost(top, jlong(a, "prompt_tokens"), jlong(a, "completion_tokens"), 0);
            return;
        }
    }
    if (first) {
        s->st.top_cost_usd +=
            wk_cost(top, jlong(first, "prompt_tokens"), jlong(first, "completion_tokens"), 0);
        s->st.top_estimated++;
    }
}

void wk_summary_add(wk_summary *s, const wk_cascade *c, const cJSON *res)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(res, "status");
    const char *status = cJSON_IsString(st) ? st->valuestring : "error";
    s->st.tasks++;
    if (strcmp(status, "invalid_task") == 0 || !c) {
        s->st.invalid++;
        return;
    }
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(res, "cost_usd");
    s->st.cost_usd += cJSON_IsNumber(cost) ? cost->valuedouble : 0;
    add_top_cost(s, c, cJSON_GetObjectItemCaseSensitive(res, "attempts"));
    long tier = jlong(res, "tier");
    if (strcmp(status, "accepted") == 0) {
        s->st.accepted++;
        if (tier >= 0 && tier < c->ntiers)
            s->accepted[c - s->cfg->cascades][tier]++;
    } else if (strcmp(status, "exhausted") == 0) {
        s->st.exhausted++;
    } else if (strcmp(status, "over_budget") == 0) {
        s->st.over_budget++;
    } else {
        s->st.error++;
    }
}

void wk_summary_print(const wk_summary *s, FILE *f)
{
    const wk_run_stats *st = &s->st;
    long valid = st->tasks - st->invalid;
    fprintf(f,
            "cascade: %ld tasks: %ld accepted, %ld exhausted, %ld over_budget, %ld error, "
            "%ld invalid_task\n",
            st->tasks, st->accepted, st->exhausted, st->over_budget, st->error, st->invalid);
    for (int i = 0; i < s->cfg->ncascades; i++) {
        const wk_cascade *c = &s->cfg->cascades[i];
        long sum = 0;
        for (int k = 0; k < c->ntiers; k++)
            sum += s->accepted[i][k];
        if (!sum)
            continue;
        fprintf(f, "  %s\n", c->name);
        for (int k = 0; k < c->ntiers; k++)
            fprintf(f, "    tier %d  %-20s %6ld accepted\n", k, c->tiers[k].model->name,
                    s->accepted[i][k]);
    }
    fprintf(f, "  pass rate        %.3f (%ld of %ld valid tasks)\n",
            valid ? (double)st->accepted / (double)valid : 0.0, st->accepted, valid);
    fprintf(f, "  total cost       $%.6f\n", st->cost_usd);
    fprintf(f, "  top tier only    $%.6f", st->top_cost_usd);
    if (st->top_estimated)
        fprintf(f, " (%ld tasks priced from lower tiers' token counts)", st->top_estimated);
    fprintf(f, "\n");
    if (st->top_cost_usd > 0)
        fprintf(f, "  saving           %.1f%%\n", 100.0 * (1.0 - st->cost_usd / st->top_cost_usd));
}
