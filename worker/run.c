/*
 * The driver of `cascade run` (see run.h). It owns the loop and every side
 * effect: it takes items from the queue and carries out intake's decision
 * on each (intake.h), performs the router's actions (calls and validations
 * through answers.h, escalation lines here), and makes each result durable
 * through its sink (the results file) before it acknowledges the queue item.
 * Decisions are the router's; this file carries them out and feeds back
 * what happened.
 *
 * Durability: each side effect is journaled first and runs only once its row
 * is committed (wk_journal_then): SENT before a call leaves, RECEIVED before
 * the answer is validated, DONE with the result line before the line is
 * written. On a restart, a task is rebuilt by feeding the router the events
 * the journal holds, so it takes the same path without paying again.
 *
 * When the journal fails (a full disk), nothing more is done that it cannot
 * record: intake stops, side effects still waiting for a commit are dropped
 * (the journal tells each one), tasks in flight are abandoned as their calls
 * and chains come back, and the run exits WK_EXIT_FAIL. A rerun on the same
 * journal resumes from what it holds.
 *
 * Concurrency: at most `concurrency` tasks are in flight, each in a slot;
 * a slot may have several calls in flight (an agree tier's round, one call
 * per listed model, all sent from one feed).
 * A verdict that arrives inside val_chain_start is held and fed after it
 * returns (answers.c), so the router is never re-entered.
 */
#include "run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "answers.h"
#include "config.h"
#include "intake.h"
#include "rkey.h"
#include "router.h"
#include "start.h"
#include "worker/cli/cli.h"
#include "lib/idset.h"
#include "lib/util.h"
#include "validators/val.h"
#include "worker/net/calls.h"
#include "worker/obs/monitor.h"
#include "worker/obs/summary.h"
#include "worker/queues/q.h"
#include "worker/sinks/commit.h"
#include "worker/sinks/results_file.h"
#include "worker/store/cache.h"
#include "worker/store/journal.h"

#define LINE_CAP (16u << 20)
/* An id is part of a line, so the seen set never refuses one as too long. */
_Static_assert(LINE_CAP <= WK_IDSET_ID_MAX, "task ids must fit the seen set");
#define ERRMSG_MAX 512

typedef struct run run;

typedef struct slot {
    run *r;
    wk_task *task;
    q_item *item;   /* the queue item the task came in; owned */
    wk_ask ask;     /* where its answers and verdicts come from */
    wk_start start; /* the semantic start tier's embedding (start.h) */
    wk_mon_slot obs;
    struct slot *free_next;
} slot;

/* A result line waiting for its DONE row to commit before it is written. */
typedef struct pending_ack {
    run *r;
    q_item *item;
    char *key;
    char *line;
} pending_ack;

struct run {
    const wk_run_opts *o;
    uv_loop_t loop;
    wk_config cfg;
    wk_answers ans;      /* the sources: calls, journal, recordings, caches, validators */
    wk_starter *starter; /* the semantic start tier (start.h); NULL: no cascade uses it */
    wk_cache *cache;
    const q_ops *qops;
    q_queue *queue;
    slot *slots;
    slot *free_slots;
    int nfree;
    int active; /* tasks in slots */
    int acks;   /* result lines not yet written */
    int asked;  /* items asked of the queue, not yet delivered */
    uv_idle_t intake;
    uv_signal_t sigint, sigterm;
    uv_timer_t grace;
    int stopping, interrupted, failed, budget_stop, eof, shut;
    int journal_failed; /* the journal failed: see journal_failed() */
    FILE *esc;
    wk_idset *seen; /* task ids met in this input; bounded memory, spills to $TMPDIR */
    /*
     * The item at intake is a line of a file and the journal was fresh
     * (wk_journal_fresh): its key and id are new to the journal, whose
     * look-ups are skipped. Every key a line looks up is its own: its line
     * number's, or its id's, which the seen set keeps to one line.
     */
    int intake_fresh;
    wk_results_file *results; /* the sink; NULL for Redis, whose ack writes the result */
    wk_summary sum;
    wk_mon *obs; /* progress and metrics, fed where the summary is */
    long resumed, skipped;
    const char *abort_on_task; /* fault injection for tests; see on_item */
    char *task_dir;            /* the task file's directory: patch tasks' repo.path is read there */
};

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void request_intake(run *r);
static void release_slot(slot *s);
static void perform(slot *s, wk_actions *acts);

/* A list per feed, not per slot: performing an action may feed the task again. */
static void feed(slot *s, const wk_event *ev)
{
    wk_actions acts = {0};
    wk_task_feed(s->task, ev, &acts);
    perform(s, &acts);
    wk_actions_release(&acts);
}

/*
 * The journal failed: say so once, take nothing new, and let what is in
 * flight wind down without a side effect (see the top of this file).
 */
static void journal_failed(run *r)
{
    if (r->journal_failed)
        return;
    r->journal_failed = r->failed = r->stopping = 1;
    const char *why = wk_journal_error(r->ans.journal);
    fprintf(stderr,
            "cascade: %s; stopping with %d tasks in flight: they and any result not in the "
            "journal resume on the next run\n",
            why ? why : "journal: a write failed", r->active);
    request_intake(r);
}

/* status < 0 from the journal: WK_ECANCELED is a close, anything else its failure. */
static int journal_ok(run *r, int status)
{
    if (status != 0 && status != WK_ECANCELED)
        journal_failed(r);
    return status == 0;
}

/* A task given up in flight: the journal says where a rerun takes it up. */
static void abandon_slot(slot *s)
{
    run *r = s->r;
    if (r->queue)
        r->qops->nack(r->queue, s->item, "the journal failed");
    q_item_free(s->item);
    s->item = NULL;
    release_slot(s);
}

/* ---- results ----------------------------------------------------------------- */

static void ack_now(void *arg, int status)
{
    pending_ack *p = arg;
    run *r = p->r;
    const char *id = wk_rkey_id(p->key);
    if (!journal_ok(r, status)) {
        /* The DONE row did not commit: the result is not written (nor acked). */
        if (r->queue)
            r->qops->nack(r->queue, p->item, "the journal failed");
    } else if (!r->failed && /* the sink makes it durable, then the queue hears */
               ((r->results && wk_results_file_write(r->results, p->line, strlen(p->line))) ||
                r->qops->ack(r->queue, p->item, id, p->line, strlen(p->line)) != 0)) {
        fprintf(stderr, "cascade: cannot write a result line: %s\n", strerror(errno));
        r->failed = 1;
        r->stopping = 1;
    }
    r->acks--;
    q_item_free(p->item);
    free(p->key);
    free(p->line);
    free(p);
    request_intake(r);
}

/* Journals the result, then writes it once the journal has it. Consumes item. */
static void emit_result(run *r, q_item *item, const char *key, const char *line)
{
    pending_ack *p = wk_xcalloc(1, sizeof *p);
    p->r = r;
    p->item = item;
    p->key = wk_xstrdup(key);
    p->line = wk_xstrdup(line);
    r->acks++;
    if (wk_journal_done(r->ans.journal, key, line))
        journal_failed(r);
    /* Lazy: the next task's SENT may join this commit (journal.h). */
    wk_journal_then_lazy(r->ans.journal, ack_now, p);
}

static void release_slot(slot *s)
{
    run *r = s->r;
    wk_ask_end(&s->ask);
    wk_start_release(&s->start);
    wk_task_free(s->task);
    s->task = NULL;
    s->free_next = r->free_slots;
    r->free_slots = s;
    r->nfree++;
    r->active--;
    request_intake(r);
}

/* ---- answers ----------------------------------------------------------------- */

/* An answer, a failed call or a verdict for the task (see answers.h). */
static void on_answer(void *arg, const wk_event *ev)
{
    slot *s = arg;
    run *r = s->r;
    if (ev->budget_denied && !r->budget_stop) {
        /* The run budget is spent: hold what we have, take nothing new. */
        r->budget_stop = 1;
        r->stopping = 1;
        wk_mon_clear_line(r->obs);
        fprintf(stderr, "cascade: %s; taking no more tasks, finishing the %d in flight\n",
                ev->error_message, r->active);
    }
    wk_mon_event(r->obs, &s->obs, ev);
    feed(s, ev);
}

/* The journal failed (or closed) under the task's answer. */
static void on_abandon(void *arg, int status)
{
    slot *s = arg;
    journal_ok(s->r, status);
    abandon_slot(s);
}

/* A patch task's baseline and prompt are ready (see patch_task.h). */
static void on_prepared(void *arg, const wk_prep *p)
{
    slot *s = arg;
    if (!s->task)
        return;
    wk_event ev = {.kind = WK_EV_PREPARED, .now_ms = wall_ms(), .prep = p};
    feed(s, &ev);
}

static void perform(slot *s, wk_actions *acts)
{
    run *r = s->r;
    for (int i = 0; i < acts->n; i++) {
        wk_action *a = &acts->v[i];
        wk_mon_action(r->obs, &s->obs, wk_task_cascade(s->task), a);
        switch (a->kind) {
        case WK_ACT_CALL:
            s->ask.lane = a->lane; /* lanes.h: how the call is sent and priced */
            /* The calls of an agree tier's round come in one feed and are all sent. */
            wk_ask_call(&s->ask, a->model, a->deps, a->messages, a->est_prompt_tokens, a->logprobs,
                        a->n, a->vote);
            break;
        case WK_ACT_VALIDATE:
            wk_ask_validate(&s->ask, a->answer, a->same_call, a->vote);
            break;
        case WK_ACT_LOG:
            /* A climb replayed from the journal was logged by the run that made it. */
            if (r->esc && !wk_ask_replayed(&s->ask) && !r->journal_failed) {
                char *line = cJSON_PrintUnformatted(a->line);
                if (fprintf(r->esc, "%s\n", line) < 0 || fflush(r->esc) == EOF) {
                    fprintf(stderr, "cascade: cannot write the escalation log: %s\n",
                            strerror(errno));
                    r->failed = r->stopping = 1;
                }
                free(line);
            }
            cJSON_Delete(a->line);
            a->line = NULL;
            break;
        case WK_ACT_PREPARE:
            /* The callback may come before this returns; PREPARE is the feed's last action. */
            wk_patch_prepare(r->ans.venv, wk_task_json(s->task), &r->o->patch, on_prepared, s);
            break;
        case WK_ACT_FINISH: {
            /* An accepted patch becomes a commit before its result is journaled (commit.h). */
            char cerr[ERRMSG_MAX];
            if (!r->journal_failed &&
                wk_commit_sink(&r->o->commit, wk_task_json(s->task), a->line, cerr, sizeof cerr))
                fprintf(stderr, "cascade: %s: no commit: %s\n", wk_task_id(s->task), cerr);
            /* Its history row joins the transaction of its DONE row (start.h). */
            if (!r->journal_failed && wk_start_finish(r->starter, &s->start, s->task, a->line))
                journal_failed(r);
            wk_results_cap_answer(a->line); /* the whole answer stays in the journal */
            char *line = wk_json_print(a->line);
            wk_summary_add(&r->sum, wk_task_cascade(s->task), a->line);
            char *key = wk_rkey_task(wk_task_id(s->task));
            emit_result(r, s->item, key, line);
            free(key);
            s->item = NULL;
            free(line);
            cJSON_Delete(a->line);
            a->line = NULL;
            /* FINISH is always the last action: the slot may be reused now. */
            release_slot(s);
            return;
        }
        }
    }
}

/* ---- intake ------------------------------------------------------------------ */

static int fact_written(void *arg, const char *key)
{
    return wk_results_file_has(((run *)arg)->results, key);
}

static int fact_done(void *arg, const char *key, char **result)
{
    run *r = arg;
    return !r->intake_fresh && wk_journal_done_result(r->ans.journal, key, result);
}

static int fact_seen(void *arg, const char *id)
{
    return wk_idset_has(((run *)arg)->seen, id);
}

static int fact_repo(void *arg, const cJSON *task, char *why, size_t whylen)
{
    return wk_patch_check_repo(task, &((run *)arg)->o->patch, why, whylen);
}

/* The task's START, with the semantic start tier's advice when its cascade asks for it. */
static void on_start(void *arg, const wk_event *ev)
{
    slot *s = arg;
    if (s->task)
        feed(s, ev);
}

/* Carries out intake's decision (see intake.h) for one item. */
static void on_item(void *arg, q_item *it)
{
    run *r = arg;
    r->asked--;
    if (r->stopping) {
        /* Asked for before the stop: give it back untouched. */
        r->qops->nack(r->queue, it, "stopping");
        q_item_free(it);
        return;
    }
    request_intake(r);
    r->intake_fresh = it->lineno > 0 && wk_journal_fresh(r->ans.journal);
    wk_intake_facts f = {.cfg = &r->cfg,
                         .cascade_name = r->o->cascade_name,
                         .line_cap = LINE_CAP,
                         .written = fact_written,
                         .done = fact_done,
                         .seen = fact_seen,
                         .task_dir = r->task_dir,
                         .check_repo = fact_repo,
                         .arg = r};
    wk_intake d;
    wk_intake_decide(it, &f, &d);
    if (d.task && it->lineno > 0)
        wk_idset_add(r->seen, wk_task_id(d.task)); /* fits: see LINE_CAP */
    switch (d.kind) {
    case WK_INTAKE_SKIP:
        q_item_free(it);
        break;
    case WK_INTAKE_ALREADY:
        r->skipped++;
        q_item_free(it);
        break;
    case WK_INTAKE_INVALID:
        wk_summary_add(&r->sum, NULL, d.result);
        wk_mon_result(r->obs, d.result);
        emit_result(r, it, d.key, d.line);
        break;
    case WK_INTAKE_RESUME: {
        /* The journal has its DONE row: the line is written without another. */
        r->skipped++;
        r->acks++;
        pending_ack *p = wk_xcalloc(1, sizeof *p);
        p->r = r;
        p->item = it;
        p->key = d.key;
        p->line = d.line;
        d.key = d.line = NULL;
        ack_now(p, 0);
        break;
    }
    case WK_INTAKE_RUN: {
        const char *id = wk_task_id(d.task);
        /*
         * Fault injection for the tests of poison tasks: a worker that dies on a
         * given task every time, as a crash in a library would make it.
         */
        if (r->abort_on_task && strcmp(r->abort_on_task, id) == 0) {
            fprintf(stderr, "cascade: CASCADE_FAULT_ABORT_ON_TASK: aborting on %s\n", id);
            abort();
        }
        slot *s = r->free_slots;
        r->free_slots = s->free_next;
        r->nfree--;
        s->task = d.task;
        d.task = NULL;
        s->item = it;
        int resumed = wk_ask_begin(&s->ask, s->task, r->intake_fresh);
        r->resumed += resumed;
        r->active++;
        /* Now, or once its embedding is in (a cascade that starts by similarity). */
        wk_start_begin(r->starter, &s->start, s->task, resumed, on_start, s);
        break;
    }
    }
    wk_intake_release(&d);
}

static void on_end(void *arg)
{
    run *r = arg;
    r->eof = 1;
    request_intake(r);
}

static void on_note(void *arg, const char *msg)
{
    wk_mon_clear_line(((run *)arg)->obs);
    char *e = wk_escape_ctl(msg, strlen(msg), 500);
    fprintf(stderr, "cascade: %s\n", e);
    free(e);
}

static void shutdown_run(run *r);

static void on_intake(uv_idle_t *h)
{
    run *r = h->data;
    uv_idle_stop(h);
    if (r->shut)
        return;
    if (wk_journal_error(r->ans.journal))
        journal_failed(r); /* a failed commit that no side effect waited for */
    if (!r->stopping && !r->eof) {
        int want = r->nfree - r->asked;
        if (want > 0) {
            r->asked += want;
            r->qops->pull(r->queue, want);
        }
    }
    if ((r->eof || r->stopping) && r->active == 0 && r->acks == 0)
        shutdown_run(r);
}

/* Intake runs from the loop, never inside a callback chain of another task. */
static void request_intake(run *r)
{
    if (!r->shut)
        uv_idle_start(&r->intake, on_intake);
}

/* ---- stopping ---------------------------------------------------------------- */

static void on_grace(uv_timer_t *t)
{
    run *r = t->data;
    fprintf(stderr,
            "cascade: grace period over with %d tasks in flight; they resume from "
            "the journal on the next run\n",
            r->active);
    /* Commit what the journal has; calls in flight stay SENT and count as spent. */
    if (wk_journal_close(r->ans.journal))
        fprintf(stderr, "cascade: %s\n", wk_journal_error(r->ans.journal));
    r->ans.journal = NULL;
    fflush(NULL);
    _exit(WK_EXIT_INTERRUPTED);
}

static void on_signal(uv_signal_t *h, int signum)
{
    run *r = h->data;
    if (r->interrupted) {
        /* SQLite's WAL keeps the journal consistent: nothing to flush here. */
        fprintf(stderr, "cascade: second signal, exiting now\n");
        _exit(128 + signum);
    }
    wk_mon_clear_line(r->obs);
    fprintf(stderr,
            "cascade: %s: taking no more tasks, finishing the %d in flight within "
            "%.0f s (signal again to quit now)\n",
            signum == SIGINT ? "interrupt" : "terminate", r->active, (double)r->o->grace_ms / 1000);
    if (r->ans.calls && wk_calls_batched(r->ans.calls) > 0) /* lanes.h */
        fprintf(stderr,
                "cascade: %d calls wait in provider batches, which keep running at the "
                "provider; run the same command again to collect their answers without "
                "sending them again\n",
                wk_calls_batched(r->ans.calls));
    r->stopping = 1;
    r->interrupted = 1;
    uv_timer_start(&r->grace, on_grace, (uint64_t)r->o->grace_ms, 0);
    request_intake(r);
}

static void queue_closed(void *arg)
{
    (void)arg;
}

static void shutdown_run(run *r)
{
    if (r->shut)
        return;
    r->shut = 1;
    wk_mon_stop(r->obs);
    wk_starter_free(r->starter);
    r->starter = NULL;
    wk_calls_free(r->ans.calls);
    r->ans.calls = NULL;
    for (int i = 0; i < r->o->concurrency; i++)
        wk_ask_close(&r->slots[i].ask);
    uv_close((uv_handle_t *)&r->intake, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->grace, NULL);
    r->qops->close(r->queue, queue_closed, r);
    r->queue = NULL;
    /* The last commit: its failure is the journal's first when nothing came after. */
    if (wk_journal_close(r->ans.journal) && !r->journal_failed) {
        fprintf(stderr, "cascade: %s\n", wk_journal_error(r->ans.journal));
        r->failed = 1;
    }
    r->ans.journal = NULL;
}

/* ---- entry ------------------------------------------------------------------- */

/*
 * The batch lane (net/batch.c): no call can join an open batch until one
 * comes back, when every task in flight waits on a batch (or the budget)
 * and no new task can come in.
 */
static int batches_idle(void *arg)
{
    run *r = arg;
    return (r->eof || r->stopping || r->nfree == 0) && r->active > 0 &&
           wk_calls_parked(r->ans.calls) >= r->active;
}

void wk_run_opts_default(wk_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cascades_dir = "cascades";
    o->concurrency = 64;
    o->max_retries = 3;
    o->timeout_ms = 300000;
    o->connect_timeout_ms = 10000;
    o->first_byte_timeout_ms = 120000;
    o->max_wait_ms = 60000;
    o->body_cap = 8u << 20;
    o->test_timeout_ms = 10000;
    o->grace_ms = 30000;
    o->lease_ms = 60000;
    o->max_deliveries = 5;
    wk_patch_opts_default(&o->patch);
    o->flex_timeout_ms = 15 * 60000;
    o->flex_max_wait_ms = 5 * 60000;
    o->batch_max = 50000; /* OpenAI's limit per batch */
    o->batch_linger_ms = 60000;
    o->batch_poll_ms = 30000;
}

int wk_run(const wk_run_opts *o)
{
    run *r = wk_xcalloc(1, sizeof *r);
    r->seen = wk_idset_new(NULL);
    int code = WK_EXIT_FAIL;
    int loop_ok = 0;
    char err[ERRMSG_MAX];
    char *journal_path = NULL;
    r->o = o;
    r->ans.cfg = &r->cfg;
    r->ans.recs = o->recs;
    r->ans.replay_start = o->replay_start;
    r->ans.vcache = o->vcache;
    r->abort_on_task = getenv("CASCADE_FAULT_ABORT_ON_TASK");
    r->ans.max_patch_bytes = (size_t)o->patch.max_patch_kb * 1024;
    if (!o->queue_url && o->tasks_path && strcmp(o->tasks_path, "-") != 0) {
        const char *slash = strrchr(o->tasks_path, '/');
        r->task_dir = slash
                          ? wk_xstrndup(o->tasks_path,
                                        (size_t)(slash - o->tasks_path + (slash == o->tasks_path)))
                          : wk_xstrdup(".");
    }
    /* Fault injection for the tests of the write-ahead promise: a disk that fills up. */
    const char *full_after = getenv("CASCADE_FAULT_JOURNAL_FULL_AFTER");
    if (full_after && wk_journal_fault_full_after(atol(full_after)) != 0) {
        fprintf(stderr, "cascade: CASCADE_FAULT_JOURNAL_FULL_AFTER: cannot set up the VFS\n");
        goto cleanup;
    }

    char *models_dflt = NULL;
    const char *models = o->models_path;
    if (!models)
        models = models_dflt = wk_xasprintf("%s/models.json", o->cascades_dir);
    int rc = wk_config_load(&r->cfg, models, o->cascades_dir, o->recs == NULL, err, sizeof err);
    free(models_dflt);
    if (rc) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    if (o->gold_field)
        r->cfg.gold_field = wk_xstrdup(o->gold_field);
    wk_summary_init(&r->sum, &r->cfg);
    r->qops = q_find(o->queue_url ? o->queue_url : o->tasks_path);
    if (!r->qops) {
        fprintf(stderr, "cascade: no queue backend for %s\n", o->queue_url);
        goto cleanup;
    }
    int file_results = o->out_path && strcmp(o->out_path, "-") != 0 && !o->queue_url;
    /* The journal sits beside the results file unless told otherwise. */
    if (o->journal_path && strcmp(o->journal_path, "none") != 0)
        journal_path = wk_xstrdup(o->journal_path);
    else if (!o->journal_path && file_results && !o->recs)
        journal_path = wk_xasprintf("%s.journal", o->out_path);
    uv_loop_init(&r->loop);
    loop_ok = 1;
    if (journal_path && wk_journal_open(&r->loop, journal_path, &r->ans.journal, err, sizeof err)) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    if (o->cache_path && wk_cache_open(o->cache_path, &r->cache, err, sizeof err)) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    q_opts qo = {.url = o->queue_url ? o->queue_url : o->tasks_path,
                 .group = o->group,
                 .consumer = o->consumer,
                 .lease_ms = o->lease_ms,
                 .max_deliveries = o->max_deliveries,
                 .drain = o->drain,
                 .line_cap = LINE_CAP};
    q_callbacks qc = {.on_item = on_item, .on_end = on_end, .on_note = on_note, .arg = r};
    if (r->qops->open(&r->loop, &qo, &qc, &r->queue, err, sizeof err)) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    /*
     * Only now, with the journal held and the tasks open, is the results file
     * touched: a typo in the tasks path or a second run leaves it as it was.
     */
    /* With a journal a run resumes, and so does its file; without one, or in replay, not. */
    if (!o->queue_url && wk_results_file_open(o->out_path, file_results && journal_path && !o->recs,
                                              &r->results, err, sizeof err)) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    if (o->esc_path) {
        r->esc = fopen(o->esc_path, journal_path ? "a" : "w");
        if (!r->esc) {
            fprintf(stderr, "cascade: cannot open escalations file %s: %s\n", o->esc_path,
                    strerror(errno));
            goto cleanup;
        }
    }

    val_limits lim;
    val_limits_default(&lim);
    lim.timeout_ms = o->test_timeout_ms;
    r->ans.venv = val_env_new(&r->loop, &lim, o->max_sandboxes, err, sizeof err);
    if (!r->ans.venv) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    wk_calls_opts co = {
        .connect_timeout_ms = o->connect_timeout_ms,
        .first_byte_timeout_ms = o->first_byte_timeout_ms,
        .total_timeout_ms = o->timeout_ms,
        .body_cap = o->body_cap,
        .run_budget_usd = o->budget_usd,
        .cache = r->cache,
        .flex_first_byte_timeout_ms = o->flex_timeout_ms,
        .flex_max_wait_ms = o->flex_max_wait_ms,
        .batch_max = o->batch_max,
        .batch_linger_ms = o->batch_linger_ms,
        .batch_poll_ms = o->batch_poll_ms,
        .journal = r->ans.journal,
        .batch_idle = batches_idle,
        .batch_idle_arg = r,
        .deadline_at = o->deadline_ms > 0 ? wk_now_ms() + (uint64_t)o->deadline_ms : 0,
        .deadline_ms = o->deadline_ms,
    };
    wk_retry_policy_default(&co.retry);
    co.retry.max_retries = o->max_retries;
    co.retry.max_wait_ms = o->max_wait_ms;
    r->ans.calls = wk_calls_new(&r->loop, &r->cfg, &co);
    if (!r->ans.calls) {
        fprintf(stderr, "cascade: cannot set up libcurl\n");
        goto cleanup;
    }
    wk_mon_opts oo = {.metrics_addr = o->metrics_addr,
                      .progress_tty = o->progress_tty,
                      .progress_ms = o->progress_ms,
                      .tasks_path = o->queue_url ? NULL : o->tasks_path,
                      .budget_usd = o->budget_usd};
    if (wk_mon_new(&r->loop, &r->cfg, &oo, &r->active, &r->skipped, &r->obs, err, sizeof err)) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    wk_starter_opts so = {.cfg = &r->cfg,
                          .loop = &r->loop,
                          .calls = r->ans.calls,
                          .co = &co,
                          .journal = r->ans.journal,
                          .recs = o->recs,
                          .history_max = o->history_max,
                          .history_from = o->history_from};
    if (wk_starter_new(&so, &r->starter, err, sizeof err)) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    /* A task's calls in flight at once: its tier's agree round, else one. */
    int ncalls = 1;
    for (int c = 0; c < r->cfg.ncascades; c++)
        for (int t = 0; t < r->cfg.cascades[c].ntiers; t++)
            if (r->cfg.cascades[c].tiers[t].nagree > ncalls)
                ncalls = r->cfg.cascades[c].tiers[t].nagree;
    r->slots = wk_xcalloc((size_t)o->concurrency, sizeof(slot));
    for (int i = o->concurrency - 1; i >= 0; i--) {
        slot *s = &r->slots[i];
        s->r = r;
        wk_ask_init(&s->ask, &r->loop, &r->ans, ncalls, on_answer, on_abandon, s);
        s->free_next = r->free_slots;
        r->free_slots = s;
        r->nfree++;
    }
    uv_idle_init(&r->loop, &r->intake);
    r->intake.data = r;
    uv_timer_init(&r->loop, &r->grace);
    r->grace.data = r;
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sigterm);
    r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);

    request_intake(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);

    if (!o->quiet) {
        wk_summary_print(&r->sum, stderr);
        if (r->resumed || r->skipped)
            fprintf(stderr, "  resumed          %ld tasks from the journal, %ld already done\n",
                    r->resumed, r->skipped);
        if (r->cache)
            fprintf(stderr, "  cache hits       %ld\n", wk_cache_hits(r->cache));
    }
    if (o->stats)
        *o->stats = r->sum.st;
    if (r->failed)
        code = WK_EXIT_FAIL;
    else if ((r->interrupted || r->budget_stop) && !r->eof)
        code = WK_EXIT_INTERRUPTED;
    else
        code = WK_EXIT_OK;
cleanup:
    if (!r->shut) {
        wk_mon_stop(r->obs);
        wk_starter_free(r->starter);
        wk_calls_free(r->ans.calls);
        if (r->queue)
            r->qops->close(r->queue, queue_closed, r);
        r->queue = NULL;
        wk_journal_close(r->ans.journal);
    }
    if (r->ans.venv)
        val_env_free(r->ans.venv);
    if (loop_ok) {
        uv_run(&r->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&r->loop) != 0)
            fprintf(stderr, "cascade: warning: handles left open at exit\n");
    }
    wk_mon_free(r->obs);
    wk_cache_close(r->cache);
    if (r->esc)
        fclose(r->esc);
    wk_idset_free(r->seen);
    wk_results_file_close(r->results);
    for (int i = 0; r->slots && i < o->concurrency; i++)
        wk_ask_release(&r->slots[i].ask); /* after the loop ran the timers' close callbacks */
    free(r->slots);
    free(journal_path);
    free(r->task_dir);
    wk_summary_release(&r->sum);
    wk_config_free(&r->cfg);
    free(r);
    return code;
}
