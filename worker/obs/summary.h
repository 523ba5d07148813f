/*
 * The end-of-run summary: tasks per status, accepted per cascade and tier,
 * pass rate, cost, and what the same tasks would have cost at each
 * cascade's top tier alone. The counting is eval/figures.h's, fed with the
 * result lines as they are written.
 */
#ifndef WK_SUMMARY_H
#define WK_SUMMARY_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "worker/config.h"
#include "worker/eval/figures.h"

/* The run's figures, for callers that aggregate several runs (replay --runs). */
typedef wk_figures wk_run_stats;

typedef struct wk_summary {
    const wk_config *cfg; /* borrowed */
    wk_figures st;        /* the whole run */
    wk_figures *per;      /* [cascade]: for the accepted per tier */
    /* Attempts that ran on the batch or flex lane (lanes.h): their cost, and on sync. */
    long lane_attempts;
    double lane_usd, lane_sync_usd;
} wk_summary;

void wk_summary_init(wk_summary *s, const wk_config *cfg);
void wk_summary_release(wk_summary *s);
/* Counts one result line; c is the task's cascade (NULL for an invalid task). */
void wk_summary_add(wk_summary *s, const wk_cascade *c, const cJSON *result);
void wk_summary_print(const wk_summary *s, FILE *f);

#endif
