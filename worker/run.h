/*
 * `cascade run`: one libuv loop that reads tasks, drives each task's state
 * machine, performs its actions (HTTP calls, validator chains, log lines,
 * result lines) and prints the summary at the end.
 */
#ifndef WK_RUN_H
#define WK_RUN_H

#include "lib/recordings.h"
#include "worker/patch_task.h"
#include "worker/eval/vcache.h"
#include "worker/obs/summary.h"
#include "worker/sinks/commit.h"

typedef struct wk_run_opts {
    const char *tasks_path; /* "-" for stdin */
    const char *cascades_dir;
    const char *models_path;
    const char *out_path;     /* NULL or "-": stdout */
    const char *esc_path;     /* NULL: no escalation log */
    const char *cascade_name; /* NULL: per task */
    const char *gold_field;   /* the task field with a classify task's gold label; NULL: "gold" */
    int concurrency;          /* tasks in flight */
    int max_sandboxes;        /* 0: number of CPUs */
    int max_retries;          /* transport retries per call */
    long timeout_ms;          /* whole-request timeout */
    long connect_timeout_ms;
    long first_byte_timeout_ms; /* until the response starts */
    long max_wait_ms;           /* longest Retry-After a task waits for; longer: fallback */
    double budget_usd;          /* run budget; 0: none */
    unsigned long body_cap;     /* response body cap in bytes */
    unsigned test_timeout_ms;   /* sandbox wall clock per test run */
    int quiet;                  /* no summary */
    int progress_tty;           /* a progress line redrawn on stderr (a terminal) */
    long progress_ms;           /* else a plain progress line this often; 0: none */
    const char *metrics_addr;   /* serve Prometheus metrics on HOST:PORT; NULL: none */
    /*
     * Offline replay: when set, calls are answered from these recordings
     * (borrowed) instead of over HTTP, and no API key is needed. Attempt i of
     * a (task, model) takes run (replay_start + i) mod R.
     */
    wk_recs *recs;
    int replay_start;
    wk_vcache *vcache;        /* replay: verdicts of answers seen before (borrowed) */
    const char *journal_path; /* NULL: beside the results file; "none": no journal */
    const char *cache_path;   /* response cache; NULL: none */
    long grace_ms;            /* after SIGINT/SIGTERM, in-flight tasks get this long */
    /* Redis Streams (queue_url redis://HOST:PORT/STREAM) */
    const char *queue_url;
    const char *group, *consumer;
    long lease_ms;
    int max_deliveries;
    int drain;
    wk_run_stats *stats;   /* filled at the end when not NULL */
    wk_patch_opts patch;   /* patch tasks' caps (--max-repo-mb, --max-patch-kb, ...) */
    wk_commit_opts commit; /* patch tasks: the commit sink's branch, patch file and author */
    /* Lanes (lanes.h): --flex-timeout, --flex-max-wait, --batch-*, --deadline. */
    long flex_timeout_ms, flex_max_wait_ms;
    long batch_max, batch_linger_ms, batch_poll_ms;
    long deadline_ms; /* --deadline; 0: none */
    /* The semantic start tier (start.h): --history-max [100,000], --history-from FILE. */
    long history_max;
    const char *history_from;
} wk_run_opts;

void wk_run_opts_default(wk_run_opts *o);

/* Runs the batch; returns one of the exit codes in worker/cli/cli.h. */
int wk_run(const wk_run_opts *o);

#endif
