/*
 * Inside `cascade report` (worker/eval/report*.c alone): the compact stored
 * results, the per-cascade figures computed from them, and the names the
 * four files share. report.c loads, report_figs.c computes, report_text.c
 * and report_html.c write.
 */
#ifndef WK_REPORT_INT_H
#define WK_REPORT_INT_H

#include "drift.h"
#include "figures.h"
#include "report.h"

#define TIERS_MAX WK_FIG_TIERS_MAX
#define TOP_REASONS 10
#define TABLE_ROWS_MAX 256
/* Labels a confusion matrix shows (with "(none)" for a task no tier labelled). */
#define CONF_LABELS_MAX 24

typedef struct att {
    int tier;
    int model;   /* name index */
    long pt, ct; /* -1: unknown */
    double cost;
    int pass;
    int reason; /* name index of "validator: reason"; -1 on pass */
} att;

typedef struct row {
    int id;               /* name index (task ids are names too) */
    int cascade;          /* name index */
    wk_fig_status status; /* never WK_FIG_INVALID: those are only counted */
    int tier;             /* accepted tier, else -1 */
    double cost;
    att *atts;
    int natts;
    int gold, label; /* classify: name indices of the gold and accepted labels; -1 none */
} row;

typedef struct name_tab {
    char **s;
    int n, cap;
    int *slot; /* open addressing: index + 1 into s, 0 empty */
    size_t slot_cap;
} name_tab;

/* What the report needs of a cascade file: its top tier, priced, and its kind. */
typedef struct rcasc {
    char *name;
    char *kind; /* match.kind; NULL: any */
    char *top_model;
    int ntiers;
    double in, out; /* the top model's USD per token */
} rcasc;

typedef struct table_row {
    char *plan;
    double pass_rate, cost;
    double accuracy; /* classify plans with gold: the row's accuracy; -1: none given */
} table_row;

struct wk_report {
    name_tab names;
    row *rows;
    long nrows, rows_cap;
    long invalid;
    int files;
    rcasc *casc; /* from --models and --cascades */
    int ncasc;
    /* task id (name index) -> kind (name index), from a tasks file */
    int *kind_of;
    int kind_of_cap;
    table_row table[TABLE_ROWS_MAX];
    int ntable;
    wk_drift *drift; /* the pass rate over time, for the HTML chart */
};

typedef struct tier_fig {
    int model;    /* the model seen at this tier (name index), -1 none */
    long reached; /* tasks with an attempt at this tier */
    long calls, passed;
    double cost;
} tier_fig;

typedef struct kind_fig {
    int kind;
    long tasks, accepted;
    double cost;
} kind_fig;

typedef struct reason_fig {
    int reason;
    long n;
} reason_fig;

typedef struct casc_fig {
    int name;
    wk_figures f; /* accepted per tier in f.accepted_at */
    int ntiers;
    tier_fig tiers[TIERS_MAX];
    kind_fig *kinds;
    int nkinds;
    reason_fig *reasons;
    int nreasons;
    long failed_attempts;
    /* Classify: tasks with gold accepted per tier; climbs by reason; the confusion matrix. */
    long gold_at[TIERS_MAX];
    reason_fig *climbs;
    int nclimbs;
    long climbs_total;
    int labels[CONF_LABELS_MAX]; /* name indices: gold labels, then others; -1: "(none)" */
    int nlabels;
    long confusion[CONF_LABELS_MAX][CONF_LABELS_MAX]; /* [gold][accepted label] */
    /* the top tier and its prices */
    int top_tier;
    const char *top_model;
    double top_in, top_out; /* USD per token */
    int prices_known;
} casc_fig;

/* Interns s: models, cascades, kinds, reasons and task ids are all names. */
int wk__report_name_id(wk_report *r, const char *s);
/* The name at index i; "?" for none. Borrowed. */
const char *wk__report_name(const wk_report *r, int i);
/* The figures of every cascade, in the order the results first name them. */
casc_fig *wk__report_compute(wk_report *r, int *nout);
void wk__report_figs_free(casc_fig *cf, int n);

#endif
