/*
 * The plan simulator and the search of `cascade tune` (see tune.h).
 *
 * The search is exhaustive over tier orders (ordered subsets of the models,
 * up to max_tiers) and attempts per tier, on the fit half only; the held-out
 * half is touched once, to report the chosen plan. Skip rules are then added
 * greedily to the cheapest plans that reach the target: one rule at a time,
 * the one that saves the most while the target still holds, and only when
 * it saves a real share of the cost (a rule that saves a cent on 80 tasks
 * is noise, and every rule is something a person has to read).
 */
#include "tune.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "figures.h"
#include "lib/jsonl.h"
#include "lib/util.h"
#include "worker/task.h"

/* A tasks or results file is read whole; beyond this it is not ours to judge. */
#define TASKS_CAP 200000
/* Plans kept for the rule search. */
#define RULE_CANDIDATES 200

typedef struct obs_att {
    unsigned char pass;
    short label; /* index into the observations' labels; -1: none read */
    float conf;  /* the attempt's confidence in its label; -1: none */
    double cost;
} obs_att;

/* Distinct labels the observations hold (classify tasks). */
#define OBS_LABELS_MAX 256
/* Confidence thresholds tried when the observations carry confidence. */
static const double CONF_GRID[] = {0.5, 0.6, 0.7, 0.8, 0.9};

typedef struct obs_list {
    obs_att *a;
    int n, cap;
} obs_list;

typedef struct obs_task {
    char *id;
    int half;
    char *kind, *language; /* NULL: unknown */
    long prompt_tokens;    /* -1: unknown */
    int prompt_from_task;  /* 1: characters / 4 of the task's prompt */
    int has_tests;         /* -1: unknown */
    int gold;              /* index of the gold label; -1: none */
    obs_list *by_model;    /* [WK_OBS_MODELS_MAX] */
} obs_task;

struct wk_obs {
    obs_task *tasks;
    int ntasks, cap;
    size_t *index; /* open addressing: task position + 1, 0 empty */
    size_t index_cap;
    char *models[WK_OBS_MODELS_MAX];
    int nmodels;
    char *labels[OBS_LABELS_MAX];
    int nlabels;
    int metric;   /* WK_METRIC_* */
    int has_conf; /* some attempt carries a confidence */
};

void wk_obs_set_metric(wk_obs *o, int metric)
{
    o->metric = metric;
}

/* The index of label s, added when new; -1 when the table is full. */
static int label_index(wk_obs *o, const char *s)
{
    for (int i = 0; i < o->nlabels; i++)
        if (strcmp(o->labels[i], s) == 0)
            return i;
    if (o->nlabels == OBS_LABELS_MAX)
        return -1;
    o->labels[o->nlabels] = wk_xstrdup(s);
    return o->nlabels++;
}

int wk_obs_half(const char *task_id)
{
    /*
     * FNV-1a alone splits ids that differ in their last digits badly (its low
     * bit is the parity of the bytes' low bits), so its hash goes through
     * MurmurHash3's 64-bit finaliser first, which mixes every bit into every bit.
     */
    uint64_t k = wk_hash(WK_HASH_SEED, task_id);
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return (int)(k & 1);
}

wk_obs *wk_obs_new(void)
{
    return wk_xcalloc(1, sizeof(wk_obs));
}

void wk_obs_free(wk_obs *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->ntasks; i++) {
        obs_task *t = &o->tasks[i];
        free(t->id);
        free(t->kind);
        free(t->language);
        for (int m = 0; m < WK_OBS_MODELS_MAX; m++)
            free(t->by_model[m].a);
        free(t->by_model);
    }
    free(o->tasks);
    free(o->index);
    for (int m = 0; m < o->nmodels; m++)
        free(o->models[m]);
    for (int l = 0; l < o->nlabels; l++)
        free(o->labels[l]);
    free(o);
}

static obs_task *find_task(wk_obs *o, const char *id, int create)
{
    if (create && (size_t)(o->ntasks + 1) * 2 > o->index_cap) {
        size_t ncap = o->index_cap ? o->index_cap * 2 : 512;
        size_t *n = wk_xcalloc(ncap, sizeof(size_t));
        for (int i = 0; i < o->ntasks; i++) {
            size_t k = wk_hash(WK_HASH_SEED, o->tasks[i].id) & (ncap - 1);
            while (n[k])
                k = (k + 1) & (ncap - 1);
            n[k] = (size_t)i + 1;
        }
        free(o->index);
        o->index = n;
        o->index_cap = ncap;
    }
    if (!o->index_cap)
        return NULL;
    size_t k = wk_hash(WK_HASH_SEED, id) & (o->index_cap - 1);
    while (o->index[k]) {
        obs_task *t = &o->tasks[o->index[k] - 1];
        if (strcmp(t->id, id) == 0)
            return t;
        k = (k + 1) & (o->index_cap - 1);
    }
    if (!create)
        return NULL;
    if (o->ntasks == o->cap) {
        o->cap = o->cap ? o->cap * 2 : 256;
        o->tasks = wk_xrealloc(o->tasks, (size_t)o->cap * sizeof(obs_task));
    }
    obs_task *t = &o->tasks[o->ntasks];
    memset(t, 0, sizeof *t);
    t->id = wk_xstrdup(id);
    t->half = wk_obs_half(id);
    t->prompt_tokens = -1;
    t->has_tests = -1;
    t->gold = -1;
    t->by_model = wk_xcalloc(WK_OBS_MODELS_MAX, sizeof(obs_list));
    o->index[k] = (size_t)o->ntasks + 1;
    o->ntasks++;
    return t;
}

static int model_index(wk_obs *o, const char *name, int create)
{
    for (int i = 0; i < o->nmodels; i++)
        if (strcmp(o->models[i], name) == 0)
            return i;
    if (!create || o->nmodels == WK_OBS_MODELS_MAX)
        return -1;
    o->models[o->nmodels] = wk_xstrdup(name);
    return o->nmodels++;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

typedef struct load_ctx {
    wk_obs *o;
    const char *path;
    char *err;
    size_t errlen;
} load_ctx;

static int add_result_line(void *arg, const cJSON *res, long lineno)
{
    load_ctx *c = arg;
    const char *id = jstr(res, "id");
    const char *status = jstr(res, "status");
    if (status && strcmp(status, "invalid_task") == 0)
        return 0;
    const cJSON *attempts = cJSON_GetObjectItemCaseSensitive(res, "attempts");
    if (!id || !cJSON_IsArray(attempts)) {
        snprintf(c->err, c->errlen, "%s:%ld: not a result line (needs id and attempts)", c->path,
                 lineno);
        return WK_EPARSE;
    }
    obs_task *t = find_task(c->o, id, 1);
    const char *gold = jstr(res, "gold");
    if (gold)
        t->gold = label_index(c->o, gold);
    const cJSON *a;
    cJSON_ArrayForEach(a, attempts)
    {
        const char *model = jstr(a, "model");
        const cJSON *cost = cJSON_GetObjectItemCaseSensitive(a, "cost_usd");
        const cJSON *verdict = cJSON_GetObjectItemCaseSensitive(a, "verdict");
        if (!model || !cJSON_IsNumber(cost)) {
            snprintf(c->err, c->errlen, "%s:%ld: an attempt has no model or cost_usd", c->path,
                     lineno);
            return WK_EPARSE;
        }
        int m = model_index(c->o, model, 1);
        if (m < 0) {
            snprintf(c->err, c->errlen, "%s:%ld: more than %d models", c->path, lineno,
                     WK_OBS_MODELS_MAX);
            return WK_ETOOBIG;
        }
        if (t->prompt_tokens < 0 && !t->prompt_from_task) {
            const cJSON *pt = cJSON_GetObjectItemCaseSensitive(a, "prompt_tokens");
            if (cJSON_IsNumber(pt) && pt->valuedouble >= 0)
                t->prompt_tokens = (long)pt->valuedouble;
        }
        obs_list *l = &t->by_model[m];
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 4;
            l->a = wk_xrealloc(l->a, (size_t)l->cap * sizeof(obs_att));
        }
        obs_att *x = &l->a[l->n];
        x->pass = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(verdict, "pass"));
        x->cost = cost->valuedouble;
        /* A classify attempt: the label read (pass or not: a doubt keeps it) and its confidence. */
        const char *label = jstr(verdict, "label");
        x->label = (short)(label ? label_index(c->o, label) : -1);
        const cJSON *conf = cJSON_GetObjectItemCaseSensitive(a, "confidence");
        x->conf = cJSON_IsNumber(conf) ? (float)conf->valuedouble : -1;
        c->o->has_conf |= x->conf >= 0;
        l->n++;
    }
    return 0;
}

int wk_obs_add_results(wk_obs *o, const char *path, char *err, size_t errlen)
{
    load_ctx c = {o, path, err, errlen};
    return wk_jsonl_each(path, add_result_line, &c, 0, err, errlen);
}

static int add_task_line(void *arg, const cJSON *task, long lineno)
{
    load_ctx *c = arg;
    const char *id = jstr(task, "id");
    const char *prompt = jstr(task, "prompt");
    (void)lineno;
    if (!id || !prompt)
        return 0; /* the run reported it as invalid_task; it has no observations */
    if (c->o->ntasks >= TASKS_CAP && !find_task(c->o, id, 0)) {
        snprintf(c->err, c->errlen, "%s: more than %d tasks", c->path, TASKS_CAP);
        return WK_ETOOBIG;
    }
    obs_task *t = find_task(c->o, id, 1);
    /* The router's own view of the task, so a rule means here what it means there. */
    wk_task_features f;
    wk_task_features_of(task, &f);
    free(t->kind);
    free(t->language);
    t->kind = wk_xstrdup(f.kind);
    t->language = f.language ? wk_xstrdup(f.language) : NULL;
    t->prompt_tokens = f.prompt_tokens;
    t->prompt_from_task = 1;
    t->has_tests = f.has_tests;
    return 0;
}

int wk_obs_add_tasks(wk_obs *o, const char *path, char *err, size_t errlen)
{
    load_ctx c = {o, path, err, errlen};
    return wk_jsonl_each(path, add_task_line, &c, 1, err, errlen);
}

/* Only tasks with at least one observation count: a task line alone says nothing. */
static int observed(const obs_task *t, int nmodels)
{
    for (int m = 0; m < nmodels; m++)
        if (t->by_model[m].n)
            return 1;
    return 0;
}

static int in_set(const obs_task *t, int set)
{
    return set == WK_SET_ALL || t->half == set;
}

int wk_obs_ntasks(const wk_obs *o, int set)
{
    int n = 0;
    for (int i = 0; i < o->ntasks; i++)
        n += in_set(&o->tasks[i], set) && observed(&o->tasks[i], o->nmodels);
    return n;
}

int wk_obs_ngold(const wk_obs *o, int set)
{
    int n = 0;
    for (int i = 0; i < o->ntasks; i++)
        n += in_set(&o->tasks[i], set) && observed(&o->tasks[i], o->nmodels) &&
             o->tasks[i].gold >= 0;
    return n;
}

int wk_obs_nmodels(const wk_obs *o)
{
    return o->nmodels;
}

const char *wk_obs_model(const wk_obs *o, int i)
{
    return i >= 0 && i < o->nmodels ? o->models[i] : NULL;
}

int wk_obs_model_index(const wk_obs *o, const char *name)
{
    return model_index((wk_obs *)o, name, 0);
}

int wk_obs_max_runs(const wk_obs *o)
{
    int r = 0;
    for (int i = 0; i < o->ntasks; i++)
        for (int m = 0; m < o->nmodels; m++)
            if (o->tasks[i].by_model[m].n > r)
                r = o->tasks[i].by_model[m].n;
    return r;
}

int wk_obs_top_model(const wk_obs *o)
{
    int best = -1;
    double best_mean = -1;
    for (int m = 0; m < o->nmodels; m++) {
        double sum = 0;
        long n = 0;
        for (int i = 0; i < o->ntasks; i++) {
            const obs_list *l = &o->tasks[i].by_model[m];
            for (int k = 0; k < l->n; k++)
                sum += l->a[k].cost;
            n += l->n;
        }
        if (n && sum / (double)n > best_mean) {
            best_mean = sum / (double)n;
            best = m;
        }
    }
    return best;
}

/* ---- simulation -------------------------------------------------------------- */

/*
 * A candidate condition as the skip rule the router will apply (its strings
 * borrowed from s), so the simulation and the router decide alike.
 */
static wk_skip_rule rule_of(const wk_skip *s)
{
    wk_skip_rule r = {.prompt_tokens_over = -1, .prompt_tokens_upto = -1, .has_tests = -1};
    switch (s->kind) {
    case WK_SKIP_KIND:
        r.kind = (char *)s->value;
        break;
    case WK_SKIP_LANGUAGE:
        r.language = (char *)s->value;
        break;
    case WK_SKIP_NO_TESTS:
        r.has_tests = 0;
        break;
    case WK_SKIP_PROMPT_OVER:
        r.prompt_tokens_over = s->threshold;
        break;
    case WK_SKIP_PROMPT_UPTO:
        r.prompt_tokens_upto = s->threshold;
        break;
    }
    return r;
}

static int skip_matches(const wk_skip *s, const obs_task *t)
{
    wk_skip_rule r = rule_of(s);
    wk_task_features f = {.kind = t->kind,
                          .language = t->language,
                          .prompt_tokens = t->prompt_tokens,
                          .has_tests = t->has_tests};
    return wk_skip_rule_holds(&r, &f);
}

static int tier_skipped(const wk_plan_tier *tier, const obs_task *t)
{
    for (int k = 0; k < tier->nskips; k++)
        if (skip_matches(&tier->skips[k], t))
            return 1;
    return 0;
}

/*
 * One task, one start: replay's rule, attempt i of (task, model) takes
 * observation (start + i) mod R, the count running across tiers of the same
 * model. A pair with no observation fails at no cost, as a replay call with
 * no recording does.
 */
/* The next observation of model m for a task (replay's rotation); NULL when it has none. */
static const obs_att *next_obs(const obs_task *t, int m, int start, int *used)
{
    const obs_list *l = &t->by_model[m];
    int n = used[m]++;
    return l->n ? &l->a[(start + n) % l->n] : NULL;
}

/* 1 when the answer's label clears the tier's confidence threshold. */
static int sure(const wk_plan_tier *tier, const obs_att *a)
{
    return tier->min_conf <= 0 || (a->conf >= 0 && a->conf >= tier->min_conf);
}

/*
 * A classify task, as the router runs a classify plan: a tier asks its one,
 * two or three models (all paid); the label with the most votes (the first
 * listed on a tie) is accepted when it has the votes the tier needs (all
 * the models of a pair; agree_min of a triple) and each of those answers'
 * confidence clears the threshold; the task counts when the accepted label
 * is the gold one.
 */
static int simulate_label(const obs_task *t, const wk_plan *p, int start, double *cost)
{
    int used[WK_OBS_MODELS_MAX] = {0};
    for (int k = 0; k < p->ntiers; k++) {
        const wk_plan_tier *tier = &p->tiers[k];
        if (tier_skipped(tier, t))
            continue;
        int models[3] = {tier->model, tier->agree - 1, tier->agree3 - 1};
        int nm = tier->agree3 > 0 ? 3 : tier->agree > 0 ? 2 : 1;
        int need = nm == 3 && tier->agree_min > 0 ? tier->agree_min : nm;
        for (int i = 0; i < tier->attempts; i++) {
            const obs_att *v[3];
            for (int j = 0; j < nm; j++) {
                v[j] = next_obs(t, models[j], start, used);
                *cost += v[j] ? v[j]->cost : 0;
            }
            int best = -1, best_n = 0;
            for (int j = 0; j < nm; j++) {
                if (!v[j] || v[j]->label < 0)
                    continue;
                int n = 0;
                for (int q = 0; q < nm; q++)
                    n += v[q] && v[q]->label == v[j]->label;
                if (n > best_n)
                    best = v[j]->label, best_n = n;
            }
            if (best < 0 || best_n < need)
                continue;
            int ok = 1;
            for (int j = 0; j < nm; j++)
                if (v[j] && v[j]->label == best && !sure(tier, v[j]))
                    ok = 0;
            if (!ok)
                continue;
            return t->gold >= 0 && best == t->gold;
        }
    }
    return 0;
}

static int simulate_task(const obs_task *t, const wk_plan *p, int start, double *cost)
{
    int used[WK_OBS_MODELS_MAX] = {0};
    for (int k = 0; k < p->ntiers; k++) {
        const wk_plan_tier *tier = &p->tiers[k];
        if (tier_skipped(tier, t))
            continue;
        const obs_list *l = &t->by_model[tier->model];
        for (int i = 0; i < tier->attempts; i++) {
            int n = used[tier->model]++;
            if (!l->n)
                continue;
            const obs_att *a = &l->a[(start + n) % l->n];
            *cost += a->cost;
            if (a->pass)
                return 1;
        }
    }
    return 0;
}

/* Mean and sample sd over the starts, as replay gives them over its passes. */
static void finish_sim(wk_sim *out, const double *rate, const double *cost, int starts)
{
    out->starts = starts;
    wk_fig_mean_sd(rate, starts, &out->pass_rate, &out->pass_rate_sd);
    wk_fig_mean_sd(cost, starts, &out->cost_usd, &out->cost_sd);
}

void wk_obs_simulate(const wk_obs *o, const wk_plan *p, int set, int starts, wk_sim *out)
{
    double *rate = wk_xcalloc((size_t)starts + 1, sizeof(double));
    double *cost = wk_xcalloc((size_t)starts + 1, sizeof(double));
    memset(out, 0, sizeof *out);
    out->tasks = wk_obs_ntasks(o, set);
    for (int s = 0; s < starts; s++) {
        long passed = 0;
        for (int i = 0; i < o->ntasks; i++) {
            const obs_task *t = &o->tasks[i];
            if (!in_set(t, set) || !observed(t, o->nmodels))
                continue;
            passed += o->metric == WK_METRIC_ACCURACY ? simulate_label(t, p, s, &cost[s])
                                                      : simulate_task(t, p, s, &cost[s]);
        }
        rate[s] = wk_fig_ratio((double)passed, out->tasks);
    }
    finish_sim(out, rate, cost, starts);
    free(rate);
    free(cost);
}

void wk_obs_oracle(const wk_obs *o, int set, int starts, wk_sim *out)
{
    double *rate = wk_xcalloc((size_t)starts + 1, sizeof(double));
    double *cost = wk_xcalloc((size_t)starts + 1, sizeof(double));
    memset(out, 0, sizeof *out);
    out->tasks = wk_obs_ntasks(o, set);
    for (int s = 0; s < starts; s++) {
        long passed = 0;
        for (int i = 0; i < o->ntasks; i++) {
            const obs_task *t = &o->tasks[i];
            if (!in_set(t, set) || !observed(t, o->nmodels))
                continue;
            double best = -1;
            for (int m = 0; m < o->nmodels; m++) {
                const obs_list *l = &t->by_model[m];
                if (!l->n)
                    continue;
                const obs_att *a = &l->a[s % l->n];
                int good =
                    o->metric == WK_METRIC_ACCURACY ? t->gold >= 0 && a->label == t->gold : a->pass;
                if (good && (best < 0 || a->cost < best))
                    best = a->cost;
            }
            if (best >= 0) {
                passed++;
                cost[s] += best;
            }
        }
        rate[s] = wk_fig_ratio((double)passed, out->tasks);
    }
    finish_sim(out, rate, cost, starts);
    free(rate);
    free(cost);
}

/* ---- search ------------------------------------------------------------------ */

void wk_tune_opts_default(wk_tune_opts *t)
{
    memset(t, 0, sizeof *t);
    t->target = 0.85;
    t->max_tiers = 3;
    t->max_skips = 2;
    t->min_rule_saving = 0.02;
    t->max_rule_loss = 0.005;
    t->margin = 0.01;
}

typedef struct cand {
    wk_plan plan;
    wk_sim sim;
} cand;

typedef struct search {
    const wk_obs *o;
    const wk_tune_opts *opts;
    int starts, max_attempts, nfit;
    cand best; /* cheapest that meets the target */
    int have_best;
    cand fallback; /* best pass rate within the budget */
    int have_fallback;
    cand *keep; /* the cheapest plans that meet the target, for the rule search */
    int nkeep;
    long tried;
} search;

static int meets(const search *S, const wk_sim *s)
{
    /* A hair of slack: 0.85 of 80 tasks must not fail on rounding. */
    if (s->pass_rate + 1e-9 < S->opts->target + S->opts->margin)
        return 0;
    return S->opts->budget_per_task <= 0 ||
           s->cost_usd <= S->opts->budget_per_task * S->nfit + 1e-12;
}

/* Cheaper first; on a tie, the higher pass rate, then the shorter plan. */
static int better(const cand *a, const cand *b)
{
    if (fabs(a->sim.cost_usd - b->sim.cost_usd) > 1e-12)
        return a->sim.cost_usd < b->sim.cost_usd;
    if (fabs(a->sim.pass_rate - b->sim.pass_rate) > 1e-12)
        return a->sim.pass_rate > b->sim.pass_rate;
    return a->plan.ntiers < b->plan.ntiers;
}

static void keep_candidate(search *S, const cand *c)
{
    if (S->nkeep < RULE_CANDIDATES) {
        S->keep[S->nkeep++] = *c;
        return;
    }
    int worst = 0;
    for (int i = 1; i < S->nkeep; i++)
        if (better(&S->keep[worst], &S->keep[i]))
            worst = i;
    if (better(c, &S->keep[worst]))
        S->keep[worst] = *c;
}

static void consider(search *S, const wk_plan *p, int keep)
{
    cand c = {.plan = *p};
    wk_obs_simulate(S->o, p, WK_SET_FIT, S->starts, &c.sim);
    S->tried++;
    if (meets(S, &c.sim)) {
        if (!S->have_best || better(&c, &S->best)) {
            S->best = c;
            S->have_best = 1;
        }
        if (keep)
            keep_candidate(S, &c);
    } else if (S->opts->budget_per_task <= 0 ||
               c.sim.cost_usd <= S->opts->budget_per_task * S->nfit) {
        if (!S->have_fallback || c.sim.pass_rate > S->fallback.sim.pass_rate + 1e-12 ||
            (fabs(c.sim.pass_rate - S->fallback.sim.pass_rate) <= 1e-12 &&
             c.sim.cost_usd < S->fallback.sim.cost_usd)) {
            S->fallback = c;
            S->have_fallback = 1;
        }
    }
}

/* Every attempts vector for a fixed tier order. */
static void attempts_rec(search *S, wk_plan *p, int k);

/* Classify plans: every confidence threshold for tier k (none, then the grid). */
static void conf_rec(search *S, wk_plan *p, int k)
{
    p->tiers[k].min_conf = 0;
    attempts_rec(S, p, k + 1);
    /* The last tier takes what is left: a threshold there only loses labels. */
    if (!S->o->has_conf || k + 1 == p->ntiers)
        return;
    for (size_t g = 0; g < sizeof CONF_GRID / sizeof CONF_GRID[0]; g++) {
        p->tiers[k].min_conf = CONF_GRID[g];
        attempts_rec(S, p, k + 1);
    }
    p->tiers[k].min_conf = 0;
}

static void attempts_rec(search *S, wk_plan *p, int k)
{
    if (k == p->ntiers) {
        consider(S, p, 1);
        return;
    }
    if (S->o->metric == WK_METRIC_ACCURACY) {
        int save = p->tiers[k].attempts;
        for (int a = 1; a <= S->max_attempts; a++) {
            p->tiers[k].attempts = a;
            conf_rec(S, p, k);
        }
        p->tiers[k].attempts = save;
        return;
    }
    for (int a = 1; a <= S->max_attempts; a++) {
        p->tiers[k].attempts = a;
        attempts_rec(S, p, k + 1);
    }
}

/* 1 when a tier of p asks three models: the search puts at most one such in a plan. */
static int has_triple(const wk_plan *p)
{
    for (int k = 0; k < p->ntiers; k++)
        if (p->tiers[k].agree3 > 0)
            return 1;
    return 0;
}

/*
 * Every ordered subset of the models with up to max_tiers tiers; for
 * classify plans a tier may also be a pair (min 2) or a triple (min 2 or
 * 3) of models in their index order. Triples are bounded to one per plan:
 * with 11 models that is 330 triple tiers, each followed by what the
 * remaining models allow, some 10^5 plans more rather than 10^7.
 */
static void orders_rec(search *S, wk_plan *p, unsigned used, int max_tiers)
{
    if (p->ntiers > 0)
        attempts_rec(S, p, 0);
    if (p->ntiers == max_tiers)
        return;
    for (int m = 0; m < S->o->nmodels; m++) {
        if (used & (1u << m))
            continue;
        wk_plan_tier *t = &p->tiers[p->ntiers++];
        memset(t, 0, sizeof *t);
        t->model = m;
        orders_rec(S, p, used | (1u << m), max_tiers);
        /* Classify plans: the same tier as an agreement pair with each later model. */
        for (int m2 = m + 1; S->o->metric == WK_METRIC_ACCURACY && m2 < S->o->nmodels; m2++) {
            if (used & (1u << m2))
                continue;
            memset(t, 0, sizeof *t);
            t->model = m;
            t->agree = m2 + 1;
            orders_rec(S, p, used | (1u << m) | (1u << m2), max_tiers);
            p->ntiers--;
            int triple = has_triple(p);
            p->ntiers++;
            for (int m3 = m2 + 1; !triple && m3 < S->o->nmodels; m3++) {
                if (used & (1u << m3))
                    continue;
                for (int min = 2; min <= 3; min++) {
                    memset(t, 0, sizeof *t);
                    t->model = m;
                    t->agree = m2 + 1;
                    t->agree3 = m3 + 1;
                    t->agree_min = min;
                    orders_rec(S, p, used | (1u << m) | (1u << m2) | (1u << m3), max_tiers);
                }
            }
        }
        p->ntiers--;
    }
}

/* The skip conditions worth trying: features that vary among the fit tasks. */
static int skip_candidates(const wk_obs *o, wk_skip *out, int cap)
{
    int n = 0;
    long *len = wk_xcalloc((size_t)o->ntasks + 1, sizeof(long));
    int nlen = 0;
    const char *kinds[8], *langs[8];
    int nk = 0, nl = 0, tests_yes = 0, tests_no = 0;
    for (int i = 0; i < o->ntasks; i++) {
        const obs_task *t = &o->tasks[i];
        if (t->half != WK_SET_FIT || !observed(t, o->nmodels))
            continue;
        if (t->prompt_tokens >= 0)
            len[nlen++] = t->prompt_tokens;
        if (t->kind) {
            int seen = 0;
            for (int k = 0; k < nk; k++)
                seen |= strcmp(kinds[k], t->kind) == 0;
            if (!seen && nk < 8)
                kinds[nk++] = t->kind;
        }
        if (t->language) {
            int seen = 0;
            for (int k = 0; k < nl; k++)
                seen |= strcmp(langs[k], t->language) == 0;
            if (!seen && nl < 8)
                langs[nl++] = t->language;
        }
        tests_yes += t->has_tests == 1;
        tests_no += t->has_tests == 0;
    }
    for (int k = 0; nk > 1 && k < nk && n < cap; k++) {
        out[n] = (wk_skip){.kind = WK_SKIP_KIND};
        snprintf(out[n++].value, sizeof out->value, "%s", kinds[k]);
    }
    for (int k = 0; nl > 1 && k < nl && n < cap; k++) {
        out[n] = (wk_skip){.kind = WK_SKIP_LANGUAGE};
        snprintf(out[n++].value, sizeof out->value, "%s", langs[k]);
    }
    if (tests_yes && tests_no && n < cap)
        out[n++] = (wk_skip){.kind = WK_SKIP_NO_TESTS};
    /* Prompt length: the octiles of the fit tasks, rounded to tens so they read well. */
    if (nlen >= 8) {
        for (int i = 1; i < nlen; i++)
            for (int j = i; j > 0 && len[j - 1] > len[j]; j--) {
                long x = len[j];
                len[j] = len[j - 1];
                len[j - 1] = x;
            }
        long last = -1;
        for (int q = 1; q < 8 && n + 2 <= cap; q++) {
            long th = (len[nlen * q / 8] + 5) / 10 * 10;
            if (th == last)
                continue;
            last = th;
            out[n++] = (wk_skip){.kind = WK_SKIP_PROMPT_OVER, .threshold = th};
            out[n++] = (wk_skip){.kind = WK_SKIP_PROMPT_UPTO, .threshold = th};
        }
    }
    free(len);
    return n;
}

/* One rule per feature and tier: two length cuts on a tier make a band, not a rule. */
static int same_feature(const wk_plan_tier *t, const wk_skip *s)
{
    for (int k = 0; k < t->nskips; k++) {
        wk_skip_kind a = t->skips[k].kind, b = s->kind;
        int la = a == WK_SKIP_PROMPT_OVER || a == WK_SKIP_PROMPT_UPTO;
        int lb = b == WK_SKIP_PROMPT_OVER || b == WK_SKIP_PROMPT_UPTO;
        if (a == b || (la && lb))
            return 1;
    }
    return 0;
}

/* Adds skip rules to c greedily while each saves at least min_rule_saving. */
static void add_rules(search *S, cand *c, const wk_skip *conds, int nconds)
{
    for (int round = 0; round < S->opts->max_skips; round++) {
        cand best = *c;
        int found = 0;
        for (int k = 0; k < c->plan.ntiers; k++) {
            if (c->plan.tiers[k].nskips == WK_PLAN_SKIPS_MAX)
                continue;
            for (int j = 0; j < nconds; j++) {
                if (same_feature(&c->plan.tiers[k], &conds[j]))
                    continue;
                cand x = *c;
                wk_plan_tier *t = &x.plan.tiers[k];
                t->skips[t->nskips++] = conds[j];
                wk_obs_simulate(S->o, &x.plan, WK_SET_FIT, S->starts, &x.sim);
                S->tried++;
                /*
                 * A rule may only drop calls that rarely help: it must not cost
                 * more than max_rule_loss of pass rate. Without this, the search
                 * spends all the slack above the target on a band of prompt
                 * lengths that happens to suit the fit half.
                 */
                if (x.sim.pass_rate + 1e-9 < c->sim.pass_rate - S->opts->max_rule_loss)
                    continue;
                if (meets(S, &x.sim) && better(&x, &best)) {
                    best = x;
                    found = 1;
                }
            }
        }
        if (!found || best.sim.cost_usd > c->sim.cost_usd * (1 - S->opts->min_rule_saving))
            return;
        *c = best;
    }
}

static wk_plan strip_rules(const wk_plan *p)
{
    wk_plan b = *p;
    for (int k = 0; k < b.ntiers; k++)
        b.tiers[k].nskips = 0;
    return b;
}

int wk_tune(const wk_obs *o, const wk_tune_opts *opts, wk_tune_result *res, char *err,
            size_t errlen)
{
    memset(res, 0, sizeof *res);
    search S = {.o = o, .opts = opts};
    S.nfit = wk_obs_ntasks(o, WK_SET_FIT);
    if (o->nmodels == 0 || S.nfit == 0 || wk_obs_ntasks(o, WK_SET_HELD) == 0) {
        snprintf(err, errlen, "nothing to fit: %d models, %d tasks in the fit half, %d held out",
                 o->nmodels, S.nfit, wk_obs_ntasks(o, WK_SET_HELD));
        return WK_EINVAL;
    }
    int runs = wk_obs_max_runs(o);
    S.starts = opts->starts > 0 ? opts->starts : runs;
    S.max_attempts = opts->max_attempts > 0 ? opts->max_attempts : runs;
    int max_tiers = opts->max_tiers > 0 ? opts->max_tiers : 3;
    if (max_tiers > WK_PLAN_TIERS_MAX)
        max_tiers = WK_PLAN_TIERS_MAX;
    if (max_tiers > o->nmodels)
        max_tiers = o->nmodels;
    S.keep = wk_xcalloc(RULE_CANDIDATES, sizeof(cand));

    wk_plan p = {0};
    orders_rec(&S, &p, 0, max_tiers);

    if (S.have_best && opts->max_skips > 0) {
        wk_skip conds[64];
        int nconds = skip_candidates(o, conds, 64);
        for (int i = 0; i < S.nkeep && nconds; i++) {
            cand c = S.keep[i];
            add_rules(&S, &c, conds, nconds);
            if (better(&c, &S.best))
                S.best = c;
        }
    }
    res->met = S.have_best;
    const cand *chosen = S.have_best ? &S.best : &S.fallback;
    if (!S.have_best && !S.have_fallback) {
        snprintf(err, errlen, "no plan fits the budget of $%g per task", opts->budget_per_task);
        free(S.keep);
        return WK_EINVAL;
    }
    res->plan = chosen->plan;
    res->base = strip_rules(&chosen->plan);
    res->plans_tried = S.tried;
    res->fit = chosen->sim;
    wk_obs_simulate(o, &res->plan, WK_SET_HELD, S.starts, &res->held);
    wk_obs_simulate(o, &res->base, WK_SET_FIT, S.starts, &res->base_fit);
    wk_obs_simulate(o, &res->base, WK_SET_HELD, S.starts, &res->base_held);
    wk_plan top = {.ntiers = 1};
    top.tiers[0].model = wk_obs_top_model(o);
    top.tiers[0].attempts = 1;
    wk_obs_simulate(o, &top, WK_SET_FIT, S.starts, &res->top_fit);
    wk_obs_simulate(o, &top, WK_SET_HELD, S.starts, &res->top_held);
    wk_obs_oracle(o, WK_SET_HELD, S.starts, &res->oracle_held);
    free(S.keep);
    return 0;
}
