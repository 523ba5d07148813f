/*
 * The end-of-run summary: tasks per status, accepted per cascade and tier,
 * pass rate, cost, and what the same tasks would have cost at each
 * cascade's top tier alone.
 */
#ifndef WK_SUMMARY_H
#define WK_SUMMARY_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "worker/config.h"

/* The run's figures, for callers that aggregate several runs (replay --runs). */
typedef struct wk_run_stats {
    long tasks, accepted, exhausted, over_budget, invalid, error;
    double cost_usd;     /* what the run spent */
    double top_cost_usd; /* the same tasks at each cascade's top tier alone */
    long top_estimated;  /* tasks whose top-tier cost was estimated */
} wk_run_stats;

typedef struct wk_summary {
    const wk_config *cfg; /* borrowed */
    wk_run_stats st;
    long **accepted; /* [cascade][tier] */
} wk_summary;

void wk_summary_init(wk_summary *s, const wk_config *cfg);
void wk_summary_release(wk_summary *s);
/* Counts one result line; c is the task's cascade (NULL for an invalid task). */
void wk_summary_add(wk_summary *s, const wk_cascade *c, const cJSON *result);
void wk_summary_print(const wk_summary *s, FILE *f);

#endif
