/*
 * `cascade report`: what a batch cost and what it bought, read back from the
 * result lines (README "Result line"): per cascade, tier and task kind, the
 * reasons answers failed, the cost per solved task and the saving against
 * sending every task to the cascade's top tier; as text, and as one
 * self-contained HTML page with SVG charts.
 *
 * Also home of the JSONL reader that `tune` and `replay` share for results
 * files.
 */
#ifndef WK_REPORT_H
#define WK_REPORT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

/* One line of a JSONL file bigger than this is an error, not a bigger buffer. */
#define WK_JSONL_LINE_CAP (16u << 20)

/*
 * Calls each(arg, obj, lineno) for every non-blank line of the JSONL file at
 * path; obj is borrowed for the call. A line that is not a JSON object stops
 * the reading with WK_EPARSE, unless skip_bad (tasks files may hold such
 * lines: `run` answers them with invalid_task); a line longer than
 * WK_JSONL_LINE_CAP stops it with WK_ETOOBIG. Errors name file and line in
 * err. A non-zero return of each stops it too and is returned (each writes
 * err itself).
 */
int wk_jsonl_each(const char *path, int (*each)(void *arg, const cJSON *obj, long lineno),
                  void *arg, int skip_bad, char *err, size_t errlen);

typedef struct wk_report wk_report;

wk_report *wk_report_new(void);
void wk_report_free(wk_report *r);

/* Adds every result line of a results file. Errors name the file and line. */
int wk_report_add_results(wk_report *r, const char *path, char *err, size_t errlen);
/*
 * The models file and the cascades (a directory or one file): gives each
 * cascade its real top tier and prices for the saving. Without it, the top
 * tier is the highest tier the results show and its prices are inferred from
 * its attempts' costs and tokens, and the report says so.
 */
int wk_report_set_config(wk_report *r, const char *models_path, const char *cascades, char *err,
                         size_t errlen);
/* A tasks file, for the task kinds (else a cascade's match.kind, else "unknown"). */
int wk_report_add_tasks(wk_report *r, const char *path, char *err, size_t errlen);
/*
 * An eval table (replay --table: a list of {plan, pass_rate, cost_usd, ...}),
 * for the cost-against-pass-rate chart of single models, cascades and the oracle.
 */
int wk_report_add_table(wk_report *r, const char *path, char *err, size_t errlen);

/* The text report. */
void wk_report_text(const wk_report *r, FILE *f);
/* The HTML report: one file, inline CSS and SVG, no scripts, nothing fetched. */
int wk_report_html(const wk_report *r, const char *path, char *err, size_t errlen);

/* Figures of one cascade, for tests and callers that want numbers, not text. */
typedef struct wk_report_figures {
    long tasks, accepted, exhausted, over_budget, error, invalid;
    double cost_usd;
    double top_cost_usd; /* every task at the top tier alone */
    long top_estimated;  /* tasks whose top-tier cost is an estimate */
    int top_from_config; /* 1: top tier and prices from the models file */
} wk_report_figures;

/* Figures of the cascade named `cascade`; WK_ENOTFOUND when the results have none. */
int wk_report_figures_of(const wk_report *r, const char *cascade, wk_report_figures *out);

#endif
