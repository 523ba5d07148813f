/*
 * `cascade tune` and the plan simulator behind it (and behind replay's
 * oracle row). Our own validators' verdicts are free labels: a results file
 * says, for each task, which model's attempt passed and what it cost. From
 * those observations a plan (tier order, attempts per tier, skip rules) is
 * simulated with replay's semantics, so plans can be compared without
 * calling or validating anything again.
 *
 * Observations: per (task, model), the attempts in the order they were read.
 * Attempt i of (task, model) in a pass that starts at s takes observation
 * (s + i) mod R, exactly as replay takes recorded runs. Fed the passes of a
 * single-model replay in pass order (replay --runs K --out-dir writes them
 * so), a simulated plan gives the same figures as replaying it.
 *
 * tune.c observes, simulates and searches; plan.c names and describes a
 * plan and writes it as a cascade file.
 */
#ifndef WK_TUNE_H
#define WK_TUNE_H

#include <cjson/cJSON.h>
#include <stddef.h>

#define WK_PLAN_TIERS_MAX 6
#define WK_PLAN_SKIPS_MAX 3
#define WK_OBS_MODELS_MAX 32

typedef struct wk_obs wk_obs;

/* Which tasks a figure covers: the split is by a hash of the task id. */
enum { WK_SET_ALL = -1, WK_SET_FIT = 0, WK_SET_HELD = 1 };

wk_obs *wk_obs_new(void);
void wk_obs_free(wk_obs *o);
/*
 * Adds every attempt (model, verdict.pass, cost_usd) of every result line in
 * the results file at path; invalid_task lines are skipped. Errors name the
 * file and line.
 */
int wk_obs_add_results(wk_obs *o, const char *path, char *err, size_t errlen);
/*
 * Task features from a tasks file: kind, language, prompt length (characters
 * / 4) and whether it has tests. Without one, the prompt length is the first
 * attempt's prompt_tokens and the others are unknown.
 */
int wk_obs_add_tasks(wk_obs *o, const char *path, char *err, size_t errlen);

int wk_obs_ntasks(const wk_obs *o, int set);
int wk_obs_nmodels(const wk_obs *o);
const char *wk_obs_model(const wk_obs *o, int i);          /* borrowed */
int wk_obs_model_index(const wk_obs *o, const char *name); /* -1 when unknown */
/* The most observations any (task, model) has: the natural number of starts. */
int wk_obs_max_runs(const wk_obs *o);
/* The model with the highest mean cost per attempt: "always the top model". */
int wk_obs_top_model(const wk_obs *o);
/* Which half a task id falls in (WK_SET_FIT or WK_SET_HELD). */
int wk_obs_half(const char *task_id);

/* A skip rule: the tier is not called for a task that matches. */
typedef enum wk_skip_kind {
    WK_SKIP_KIND,        /* task kind == value */
    WK_SKIP_LANGUAGE,    /* task language == value */
    WK_SKIP_NO_TESTS,    /* the task has no tests */
    WK_SKIP_PROMPT_OVER, /* prompt length (tokens, characters / 4) > threshold */
    WK_SKIP_PROMPT_UPTO, /* prompt length <= threshold */
} wk_skip_kind;

typedef struct wk_skip {
    wk_skip_kind kind;
    char value[32];
    long threshold;
} wk_skip;

typedef struct wk_plan_tier {
    int model; /* index into the observations' models */
    /*
     * Classify plans (metric accuracy): 1 + the index of a second model asked
     * beside `model`, the label accepted only when both give it (agree, min
     * 2); 0: none, so a zeroed tier is a plain one. agree3: 1 + the index of
     * a third model asked with them (0: none), and agree_min the votes a
     * label needs among the three (2 or 3).
     * min_conf: the label's confidence an answer needs (0: no check).
     */
    int agree;
    int agree3;
    int agree_min;
    double min_conf;
    int attempts;
    int nskips;
    wk_skip skips[WK_PLAN_SKIPS_MAX];
} wk_plan_tier;

typedef struct wk_plan {
    int ntiers;
    wk_plan_tier tiers[WK_PLAN_TIERS_MAX];
} wk_plan;

/* Mean and sample sd over the starting runs; cost is the total for the set. */
typedef struct wk_sim {
    int tasks, starts;
    double pass_rate, pass_rate_sd;
    double cost_usd, cost_sd;
} wk_sim;

/*
 * What a plan is judged by: the pass rate (an accepted answer is a success),
 * or, for classify tasks with gold labels, the accuracy (an accepted label
 * that is the gold one; a task without gold counts as wrong). With
 * accuracy, wk_sim.pass_rate holds the accuracy, and the search also tries
 * agreement pairs and confidence thresholds (when the observations carry
 * a confidence).
 */
enum { WK_METRIC_PASS = 0, WK_METRIC_ACCURACY = 1 };
void wk_obs_set_metric(wk_obs *o, int metric);
/* Tasks of `set` with a gold label. */
int wk_obs_ngold(const wk_obs *o, int set);

/* Simulates plan p on the tasks of `set`, from starting runs 0..starts-1. */
void wk_obs_simulate(const wk_obs *o, const wk_plan *p, int set, int starts, wk_sim *out);
/*
 * The oracle: per task and start s, the cheapest model whose observation s
 * passes, paying only for that attempt.
 */
void wk_obs_oracle(const wk_obs *o, int set, int starts, wk_sim *out);

typedef struct wk_tune_opts {
    double target; /* pass rate to reach on the fit half */
    /*
     * ... plus this margin [0.01]: the cheapest plan that just reaches the
     * target on some 80 tasks falls below it on other tasks about half the time.
     */
    double margin;
    double budget_per_task; /* mean USD per task; 0: none */
    int max_attempts;       /* per tier; 0: the observations per (task, model) */
    int max_tiers;          /* 0: 3 */
    int max_skips;          /* skip rules in all; 0: none; default 2 */
    int starts;             /* 0: wk_obs_max_runs */
    double min_rule_saving; /* a rule must save this share of the cost [0.02] */
    double max_rule_loss;   /* and lose at most this much pass rate [0.005] */
    int metric;             /* WK_METRIC_*: what target is a share of [pass rate] */
} wk_tune_opts;

void wk_tune_opts_default(wk_tune_opts *t);

typedef struct wk_tune_result {
    wk_plan plan; /* the cheapest plan that reaches the target on the fit half */
    wk_plan base; /* the same plan without its skip rules */
    int met;      /* 0: nothing reached the target; plan is the best pass rate */
    long plans_tried;
    wk_sim fit, held;           /* the plan on each half */
    wk_sim base_fit, base_held; /* without skip rules */
    wk_sim top_fit, top_held;   /* always the top model, one attempt */
    wk_sim oracle_held;
} wk_tune_result;

/* Searches the plans; WK_EINVAL (message in err) when there is nothing to fit. */
int wk_tune(const wk_obs *o, const wk_tune_opts *opts, wk_tune_result *res, char *err,
            size_t errlen);

/* "gpt-3.5-turbo*5>gpt-4*1" (the eval's plan names). Caller frees. */
char *wk_plan_name(const wk_obs *o, const wk_plan *p);
/* The plan in plain words, one line per tier and rule. Caller frees. */
char *wk_plan_describe(const wk_obs *o, const wk_plan *p);
/*
 * The plan as a cascade file's JSON (README "Cascade"). `base` (borrowed; may
 * be NULL) gives match, validators and feedback; else code with syntax and
 * tests. Skip rules go in each tier's "skip_when" list. Caller frees.
 */
cJSON *wk_plan_cascade(const wk_obs *o, const wk_plan *p, const char *name, const cJSON *base);

#endif
