/*
 * Inside worker/obs: the counter families and the run's observer, shared by
 * the counting (obs.c), the endpoint (metrics.c) and the progress line
 * (progress.c).
 */
#ifndef WK_MONITOR_INT_H
#define WK_MONITOR_INT_H

#include "monitor.h"

/* Distinct label sets kept per family: labels carry names from config and
   short reason classes, but a cap keeps a hostile provider's reasons bounded. */
#define WK__MON_SERIES_MAX 2048

/* A labelled counter or histogram: one series per distinct label set. */
typedef struct wk__mon_series {
    char *labels;  /* `name="value",...`, escaped; owned */
    double v;      /* counter value; histogram: sum */
    long count;    /* histogram: observations */
    long *buckets; /* histogram: counts per bound (not cumulative); owned */
} wk__mon_series;

typedef struct wk__mon_family {
    const char *name, *help; /* static strings */
    const double *bounds;    /* histogram bucket bounds; NULL for a counter */
    int nbounds;
    wk__mon_series *v;
    int n, cap;
} wk__mon_family;

enum {
    WK__F_CALLS,
    WK__F_RETRIES,
    WK__F_FALLBACKS,
    WK__F_ESCALATIONS,
    WK__F_TASKS,
    WK__F_COST,
    WK__F_CALL_SECONDS,
    WK__F_VALIDATION_SECONDS,
    WK__F_COUNT
};

struct wk_mon {
    uv_loop_t *loop;
    const wk_config *cfg;
    wk_mon_opts o;
    const int *active;   /* tasks in flight (run.c's) */
    const long *skipped; /* tasks already done in an earlier run (run.c's) */
    /* Labelled families: built only for the metrics endpoint, their one reader
     * (a label set is a few hundred instructions per call and per task). */
    int labelled;
    wk__mon_family f[WK__F_COUNT];
    long calls_in_flight;
    long total; /* task lines in the file; -1 unknown */
    long done;  /* result lines this run */
    long accepted_at[WK_MON_TIERS];
    long exhausted, failed; /* failed: error, over_budget, invalid_task (shown as error/invalid) */
    double spent_usd;
    uint64_t t0; /* uv_hrtime at the start */
    /* progress.c */
    uv_timer_t timer;
    int timer_on;
    int line_shown; /* a redrawn line is on the terminal */
    /* metrics.c */
    uv_tcp_t server;
    int server_on;
    int conns;
    int stopped;
};

void wk__mon_add(wk__mon_family *f, const char *labels, double v);
void wk__mon_observe(wk__mon_family *f, const char *labels, double x);

int wk__metrics_start(wk_mon *ob, char *err, size_t errlen);
void wk__metrics_stop(wk_mon *ob);
void wk__progress_start(wk_mon *ob);
void wk__progress_stop(wk_mon *ob);

#endif
