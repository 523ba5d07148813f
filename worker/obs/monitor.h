/*
 * What a run shows while it runs: the counters behind the progress line and
 * the Prometheus endpoint (--metrics-addr). run.c feeds them from the places
 * that feed the summary (an action performed, an event fed back, a result
 * line); this folder turns them into a line on stderr (progress.c) and into
 * the Prometheus text format served over HTTP on the run's loop (metrics.c).
 * Everything here only counts and prints: nothing the router decides depends
 * on it.
 */
#ifndef WK_MONITOR_H
#define WK_MONITOR_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <uv.h>

#include "worker/config.h"
#include "worker/router.h"

/* Tiers counted separately in the progress line; higher ones count in the last. */
#define WK_MON_TIERS 8

/* Per task slot: what obs needs between an action and the event that answers it. */
typedef struct wk_mon_slot {
    const wk_model *model;    /* the model of the call in flight; borrowed */
    uint64_t call_t0, val_t0; /* uv_hrtime at the call and the validation start */
    int in_call, in_val;
} wk_mon_slot;

typedef struct wk_mon_opts {
    const char *metrics_addr; /* HOST:PORT or [V6]:PORT; NULL: no endpoint */
    int progress_tty;         /* redraw one line on stderr, at most 10 times a second */
    long progress_ms;         /* else a plain line this often; 0: none */
    const char *tasks_path;   /* a regular file: its lines are the total; else unknown */
    double budget_usd;        /* 0: none */
    int color;                /* colour allowed on stderr (a terminal, NO_COLOR unset) */
} wk_mon_opts;

typedef struct wk_mon wk_mon;

/*
 * Starts the endpoint and the progress timer; -1 when the metrics address
 * cannot be used (err says why). *out is set either way, and the caller
 * stops it, runs the loop and frees it. loop, cfg, active and skipped are
 * borrowed for the observer's life; o's strings too.
 */
int wk_mon_new(uv_loop_t *loop, const wk_config *cfg, const wk_mon_opts *o, const int *active,
               const long *skipped, wk_mon **out, char *err, size_t errlen);
/* Closes the endpoint and the timers (the loop finishes the closes); idempotent. */
void wk_mon_stop(wk_mon *ob);
/* Frees; after wk_mon_stop and the loop has run. NULL is fine. */
void wk_mon_free(wk_mon *ob);

/* The hooks (run.c). Each takes NULL for ob and does nothing then. */
void wk_mon_action(wk_mon *ob, wk_mon_slot *s, const wk_cascade *c, const wk_action *a);
void wk_mon_event(wk_mon *ob, wk_mon_slot *s, const wk_event *ev);
/* A result line written without a FINISH action (an invalid task). */
void wk_mon_result(wk_mon *ob, const cJSON *result);

/* Clears the progress line (before another line goes to stderr, and at the end). */
void wk_mon_clear_line(wk_mon *ob);

/* The Prometheus text of the counters now; caller frees. */
char *wk_mon_render(const wk_mon *ob);
/* The progress line now (no newline); caller frees. */
char *wk_mon_progress_line(const wk_mon *ob);

#endif
