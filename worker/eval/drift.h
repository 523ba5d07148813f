/*
 * Drift (README "cascade drift"): how each cascade, tier and model did over
 * time, from result lines. Per group (a cascade as a whole, and each of its
 * tiers' models) and per window (a span of time, or every N attempts): the
 * pass rate, the cost per accepted task and the escalation rate; and a flag
 * when the latest window's pass rate differs from the reference's beyond
 * chance, by a two-proportion z test at alpha, with the counts it used.
 *
 * Pure arithmetic over what callers feed: no files (the caller says when a
 * line without a "ts" was written), no configuration.
 */
#ifndef WK_DRIFT_H
#define WK_DRIFT_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/util.h"

/* Caps on what results from outside may make the drift hold. */
#define WK_DRIFT_GROUPS_MAX 4096
#define WK_DRIFT_WINDOWS_MAX 10000

/* Which windows the latest is compared with. */
enum { WK_DRIFT_REF_POOLED = 0, WK_DRIFT_REF_FIRST, WK_DRIFT_REF_PREVIOUS };

typedef struct wk_drift_opts {
    int64_t window_ms; /* > 0: windows of this much time, by each result's "ts" */
    long window_n;     /* > 0 (window_ms 0): every N trials of a group, in input order */
    int reference;     /* WK_DRIFT_REF_* */
    double alpha;      /* the test's level, e.g. 0.01 */
} wk_drift_opts;

typedef struct wk_drift_window {
    char label[48];   /* "2026-11-20", "2026-11-20T06:00Z", or "attempts 201-400" */
    int64_t start_ms; /* time windows: where it starts; attempt windows: -1 */
    /*
     * The pass rate is k of n: for a tier's model, its judged attempts (a call
     * that failed judges no answer and is left out) and those that passed; for
     * a cascade as a whole, its tasks that a model was judged on (accepted or
     * exhausted) and those accepted.
     */
    long n, k;
    long call_failures; /* attempts whose call failed (a tier's model) */
    double cost_usd;    /* what the group's attempts cost */
    long tasks;         /* tasks that reached the group */
    long accepted;      /* of them, accepted by it */
    long escalated;     /* a tier: not accepted there; a cascade: climbed at least once */
} wk_drift_window;

typedef struct wk_drift_test {
    int tested;  /* 0: fewer than two windows, or no variation to test */
    int flagged; /* p_value < alpha */
    long n_ref, k_ref, n_last, k_last;
    double rate_ref, rate_last;
    double z, p_value; /* two-sided */
} wk_drift_test;

typedef struct wk_drift_group {
    char *cascade;
    int tier;    /* -1: the cascade as a whole */
    char *model; /* NULL for the cascade as a whole */
    wk_drift_window *w;
    int nw; /* in time (or attempt) order; the last is the latest */
    wk_drift_test test;
} wk_drift_group;

typedef struct wk_drift wk_drift;

/* A new, empty drift over the options (copied). Free with wk_drift_free. */
wk_drift *wk_drift_new(const wk_drift_opts *o);
void wk_drift_free(wk_drift *d);
/* Changes the windows (see wk_drift_opts) of a drift not yet finished. */
void wk_drift_set_window(wk_drift *d, int64_t window_ms, long window_n);

/*
 * Feeds one result line (borrowed). `fallback_ms` is its time when it has no
 * "ts" (the results file's modification time). Lines that judged no model
 * (invalid_task, policy_denied, nothing_to_fix) are passed over. Returns 0,
 * or WK_EINVAL with err set when a cap is hit.
 */
int wk_drift_add(wk_drift *d, const cJSON *result, int64_t fallback_ms, char *err, size_t errlen);

/*
 * Makes the windows and runs the tests; call once, after the last add.
 * WK_EINVAL with err set when a group would need more than
 * WK_DRIFT_WINDOWS_MAX windows (a narrower --window than the data holds).
 */
int wk_drift_finish(wk_drift *d, char *err, size_t errlen);

/* The groups after wk_drift_finish: each cascade as a whole first, then its tiers. */
int wk_drift_ngroups(const wk_drift *d);
const wk_drift_group *wk_drift_group_at(const wk_drift *d, int i);
/* Groups flagged, and result lines read. */
int wk_drift_flagged(const wk_drift *d);
long wk_drift_results(const wk_drift *d);

/* The two-proportion z test of k1/n1 against k0/n0 (pooled variance); fills t. */
void wk_drift_ztest(long n0, long k0, long n1, long k1, double alpha, wk_drift_test *t);

/* The text table: per group, its windows and the latest window's test. */
void wk_drift_print(const wk_drift *d, FILE *f);

/*
 * The HTML section of `report --html`: per cascade, one SVG chart of the
 * attempt pass rate over the windows, a line per tier and model, the latest
 * window of a flagged group ringed in red, and a table of the tests. Appends
 * to b; nothing when no group has two windows.
 */
void wk_drift_html(const wk_drift *d, wk_buf *b);

/* "1d", "12h", "30m", "2w" into ms, or a plain count N of attempts; -1 on a bad spec. */
int wk_drift_parse_window(const char *spec, int64_t *ms, long *n);

#endif
