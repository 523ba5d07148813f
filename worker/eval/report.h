/*
 * `cascade report`: what a batch cost and what it bought, read back from the
 * result lines (README "Result line"): per cascade, tier and task kind, the
 * reasons answers failed, the cost per solved task and the saving against
 * sending every task to the cascade's top tier; as text, and as one
 * self-contained HTML page with SVG charts.
 *
 * The files: report.c loads (results, tasks, models and cascades, an eval
 * table), report_figs.c computes the figures (the shared arithmetic is
 * figures.h's), report_text.c and report_html.c write them.
 */
#ifndef WK_REPORT_H
#define WK_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "figures.h"

typedef struct wk_report wk_report;

wk_report *wk_report_new(void);
void wk_report_free(wk_report *r);
/* The windows of the HTML report's pass rate over time (drift.h) [1d]; before the results. */
void wk_report_drift_window(wk_report *r, int64_t window_ms, long window_n);

/* Adds every result line of a results file. Errors name the file and line. */
int wk_report_add_results(wk_report *r, const char *path, char *err, size_t errlen);
/*
 * The models file and the cascades (a directory or one file), loaded
 * offline (WK_CONFIG_OFFLINE): gives each cascade its real top tier and
 * prices for the saving. Without it, the top tier is the highest tier the
 * results show and its prices are inferred from its attempts' costs and
 * tokens, and the report says so.
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

/*
 * The figures of the cascade named `cascade`, for tests and callers that want
 * numbers, not text; WK_ENOTFOUND when the results have none.
 */
int wk_report_figures_of(const wk_report *r, const char *cascade, wk_figures *out);

#endif
