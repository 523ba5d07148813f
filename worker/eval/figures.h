/*
 * The figures of a batch, in one place: tasks per status, accepted per tier,
 * cost, what the same tasks would have cost at the top tier alone, and what
 * is derived from them (pass rate, saving, mean and sd over passes). The
 * end-of-run summary, `report`, replay's table and `tune` all count and
 * derive them here, so the four agree by construction.
 *
 * Pure arithmetic: no files, no configuration; callers feed what they read.
 */
#ifndef WK_FIGURES_H
#define WK_FIGURES_H

/* Tiers a cascade's figures count accepted answers at; a higher tier is not counted. */
#define WK_FIG_TIERS_MAX 64

/* The status of a result line, as the figures count it. */
typedef enum wk_fig_status {
    WK_FIG_ACCEPTED,
    WK_FIG_EXHAUSTED,
    WK_FIG_OVER_BUDGET,
    WK_FIG_ERROR, /* "error", and any status not known here */
    WK_FIG_INVALID,
    WK_FIG_NOTHING, /* "nothing_to_fix": a patch task whose tests pass at base, no call */
    WK_FIG_DENIED,  /* "policy_denied": the data policy lets no tier serve it, no call */
} wk_fig_status;

/* NULL (no status) is an error. */
wk_fig_status wk_fig_status_of(const char *status);

typedef struct wk_figures {
    long tasks, accepted, exhausted, over_budget, error, invalid, nothing, denied;
    long accepted_at[WK_FIG_TIERS_MAX]; /* accepted per tier: meaningful for one cascade */
    double cost_usd;                    /* what the tasks cost */
    double top_cost_usd;                /* the same tasks at the top tier alone */
    long top_estimated;                 /* tasks whose top-tier cost is an estimate */
    int top_from_config;                /* report: 1 when the top tier's prices are the models
                                           file's, 0 when inferred from the attempts */
    /* Classify tasks: those with a gold label, those whose accepted label is it. */
    long gold, correct;
    long correct_at[WK_FIG_TIERS_MAX]; /* correct labels accepted per tier */
    long cost_recorded;                /* tasks priced (in part) by a recording's cost_usd */
} wk_figures;

/*
 * Counts a classify task's label: has_gold when the result names a gold
 * label, correct when its accepted label (at `tier`) is that one.
 */
void wk_figures_count_label(wk_figures *f, int has_gold, int correct, long tier);
/* Correct labels over tasks with a gold label; 0 when there are none. */
double wk_figures_accuracy(const wk_figures *f);
/* The cost of the tasks over their correct labels; 0 when none is correct. */
double wk_figures_cost_per_correct(const wk_figures *f);

/*
 * Counts one task: its status, the tier that accepted it (-1: none) and its
 * cost. An invalid task counts as a task and as invalid, nothing more.
 */
void wk_figures_count(wk_figures *f, wk_fig_status st, long tier, double cost_usd);

/*
 * Which of a task's attempts prices it at the top tier alone: the top tier's
 * own attempt when it was called, else the first attempt's token counts at
 * the top tier's prices (an estimate). Attempts without token counts do not
 * count. Feed the attempts in order; the pick is an index into them.
 */
typedef struct wk_fig_top_pick {
    int top_tier;
    int n;     /* attempts fed */
    int own;   /* index of the top tier's first attempt with tokens; -1 none */
    int first; /* index of the first attempt with tokens; -1 none */
} wk_fig_top_pick;

void wk_fig_top_pick_init(wk_fig_top_pick *p, int top_tier);
/* prompt_tokens < 0: unknown (the attempt never got an answer). */
void wk_fig_top_pick_feed(wk_fig_top_pick *p, long tier, long prompt_tokens);
/* The index of the attempt that prices the task, or -1; *estimated = 1 when not the top's own. */
int wk_fig_top_pick_result(const wk_fig_top_pick *p, int *estimated);

/* Adds one task's cost at the top tier alone. */
void wk_figures_add_top(wk_figures *f, double usd, int estimated);

/* a / b, or 0 when b is not positive. */
double wk_fig_ratio(double a, double b);
/* 100 a / b, or 0 when b is not positive. */
double wk_fig_percent_of(double a, double b);
/* Tasks that were not invalid. */
long wk_figures_valid(const wk_figures *f);
/* Accepted over valid tasks; 0 when there are none. */
double wk_figures_pass_rate(const wk_figures *f);
/* The saving against the top tier alone, in percent; meaningful when top_cost_usd > 0. */
double wk_figures_saving(const wk_figures *f);
/* The mean and the sample sd (0 for fewer than two values) of n values. */
void wk_fig_mean_sd(const double *v, int n, double *mean, double *sd);

#endif
