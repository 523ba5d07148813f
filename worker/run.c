/*
 * The driver of `cascade run` (see run.h). It owns every side effect: it
 * takes task lines from the queue, sends the calls, starts the validator
 * chains, writes the escalation lines and hands result lines back to the
 * queue. Decisions are the router's; this file carries its actions out and
 * feeds back what happened.
 *
 * Durability: each side effect is journaled first and runs only once its row
 * is committed (wk_journal_then): SENT before a call leaves, RECEIVED before
 * the answer is validated, DONE with the result line before the line is
 * written. On a restart, a task is rebuilt by feeding the router the events
 * the journal holds, so it takes the same path without paying again.
 *
 * Concurrency: at most `concurrency` tasks are in flight, each in a slot.
 * A verdict that arrives inside val_chain_start is held and fed after it
 * returns, so the router is never re-entered.
 */
#include "run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "cost.h"
#include "router.h"
#include "worker/cli/cli.h"
#include "lib/util.h"
#include "validators/val.h"
#include "worker/net/calls.h"
#include "worker/obs/summary.h"
#include "worker/queues/q.h"
#include "worker/store/cache.h"
#include "worker/store/journal.h"

#define LINE_CAP (16u << 20)
#define ERRMSG_MAX 512

typedef struct run run;

typedef struct slot {
    run *r;
    wk_task *task;
    q_item *item;      /* the queue item the task came in; owned */
    int seq;           /* calls made by this task, counting from 1 */
    int charged_seq;   /* the lost call (see start_call) already charged */
    wk_jattempt *jatt; /* what the journal held for the task at intake */
    int njatt;
    /* the call in progress */
    const wk_model *model;
    const cJSON *messages; /* borrowed from the task until the next feed */
    long est;
    char *cache_body; /* the request body, for the cache key; owned */
    uv_timer_t timer; /* replay: the recorded answer's arrival */
    const wk_rec *rec;
    /* an answer waiting for its RECEIVED row to commit */
    wk_event resp;
    char *resp_text, *resp_finish;
    /* the validation in progress */
    const char *answer;
    val_input vin;
    int in_validate, have_pending, replayed_verdict;
    val_verdict pending; /* a verdict waiting to be fed (see hold_verdict) */
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
    wk_calls *calls;
    val_env *venv;
    wk_journal *journal;
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
    FILE *esc;
    wk_strset seen;    /* task ids met in this input */
    wk_strset written; /* result keys already in the results file (resume) */
    wk_summary sum;
    long resumed, skipped;
    const char *abort_on_task; /* fault injection for tests; see on_item */
};

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void request_intake(run *r);
static void perform(slot *s, wk_actions *acts);

/* A list per feed, not per slot: performing an action may feed the task again. */
static void feed(slot *s, const wk_event *ev)
{
    wk_actions acts = {0};
    wk_task_feed(s->task, ev, &acts);
    perform(s, &acts);
    wk_actions_release(&acts);
}

static const wk_jattempt *stored(const slot *s, int seq)
{
    for (int i = 0; i < s->njatt; i++)
        if (s->jatt[i].seq == seq)
            return &s->jatt[i];
    return NULL;
}

/* ---- results ----------------------------------------------------------------- */

static void ack_now(void *arg)
{
    pending_ack *p = arg;
    run *r = p->r;
    const char *id = strncmp(p->key, "line:", 5) == 0 ? NULL : p->key;
    if (!r->failed && r->qops->ack(r->queue, p->item, id, p->line, strlen(p->line)) != 0) {
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
    wk_journal_done(r->journal, key, line);
    wk_journal_then(r->journal, ack_now, p);
}

static void release_slot(slot *s)
{
    run *r = s->r;
    wk_task_free(s->task);
    s->task = NULL;
    wk_journal_attempts_free(s->jatt, s->njatt);
    s->jatt = NULL;
    s->njatt = 0;
    free(s->cache_body);
    s->cache_body = NULL;
    s->free_next = r->free_slots;
    r->free_slots = s;
    r->nfree++;
    r->active--;
    request_intake(r);
}

/* ---- calls ------------------------------------------------------------------- */

static void feed_response(void *arg)
{
    slot *s = arg;
    wk_event ev = s->resp;
    ev.now_ms = wall_ms();
    ev.text = s->resp_text;
    ev.finish_reason = s->resp_finish;
    char *t = s->resp_text, *f = s->resp_finish;
    s->resp_text = s->resp_finish = NULL;
    feed(s, &ev);
    free(t);
    free(f);
}

/* Holds an answer until its RECEIVED row is committed, then feeds it. */
static void answer(slot *s, const wk_event *ev, int journal)
{
    s->resp = *ev;
    s->resp_text = wk_xstrdup(ev->text ? ev->text : "");
    s->resp_finish = ev->finish_reason ? wk_xstrdup(ev->finish_reason) : NULL;
    if (journal)
        wk_journal_received(s->r->journal, wk_task_id(s->task), s->seq, ev->text, ev->finish_reason,
                            ev->prompt_tokens, ev->completion_tokens, ev->cached_tokens,
                            ev->served ? ev->served->name : NULL, ev->retries, ev->fallbacks);
    wk_journal_then(s->r->journal, feed_response, s);
}

static void on_call(void *arg, const wk_call_outcome *o)
{
    slot *s = arg;
    run *r = s->r;
    wk_event ev = {.now_ms = wall_ms(),
                   .latency_ms = o->latency_ms,
                   .served = o->served,
                   .retries = o->retries,
                   .fallbacks = o->fallbacks};
    if (o->ok) {
        ev.kind = WK_EV_RESPONSE;
        ev.text = o->resp->text;
        ev.finish_reason = o->resp->finish_reason;
        ev.prompt_tokens = o->resp->prompt_tokens;
        ev.completion_tokens = o->resp->completion_tokens;
        ev.cached_tokens = o->resp->cached_tokens;
        if (r->cache && s->cache_body && o->served == s->model)
            wk_cache_put(r->cache, s->model->id, s->cache_body, strlen(s->cache_body),
                         o->resp->text, o->resp->finish_reason, o->resp->prompt_tokens,
                         o->resp->completion_tokens);
        answer(s, &ev, 1);
        return;
    }
    ev.kind = WK_EV_CALL_FAILED;
    ev.error_reason = o->reason;
    ev.error_message = o->message;
    ev.budget_denied = o->budget_denied;
    if (o->budget_denied && !r->budget_stop) {
        /* The run budget is spent: hold what we have, take nothing new. */
        r->budget_stop = 1;
        r->stopping = 1;
        fprintf(stderr, "cascade: %s; taking no more tasks, finishing the %d in flight\n",
                o->message, r->active);
    }
    feed(s, &ev);
}

/* Replay: the recorded answer arrives from the loop, like a real response. */
static void on_replay(uv_timer_t *t)
{
    slot *s = t->data;
    const wk_rec *rec = s->rec;
    s->rec = NULL;
    if (!rec) {
        char *msg = wk_xasprintf("no recording for task %s and model %s", wk_task_id(s->task),
                                 s->model->name);
        wk_event ev = {.kind = WK_EV_CALL_FAILED,
                       .now_ms = wall_ms(),
                       .error_reason = "no_recording",
                       .error_message = msg};
        feed(s, &ev);
        free(msg);
        return;
    }
    wk_event ev = {.kind = WK_EV_RESPONSE, .now_ms = wall_ms()};
    ev.text = rec->answer;
    ev.finish_reason = rec->finish_reason ? rec->finish_reason : "stop";
    ev.prompt_tokens = rec->prompt_tokens;
    ev.completion_tokens = rec->completion_tokens;
    feed(s, &ev);
}

/* Runs once the SENT row is committed: the request may leave now. */
static void send_call(void *arg)
{
    slot *s = arg;
    if (s->r->shut)
        return;
    wk_call_start(s->r->calls, s->model, wk_task_id(s->task), s->messages, s->est, on_call, s);
}

static void start_call(slot *s, const wk_model *m, const cJSON *messages, long est)
{
    run *r = s->r;
    s->model = m;
    s->messages = messages;
    s->est = est;
    s->seq++;
    if (r->o->recs) {
        s->rec = wk_recs_next(r->o->recs, wk_task_id(s->task), m->name, r->o->replay_start);
        s->timer.data = s;
        uv_timer_start(&s->timer, on_replay, 0, 0);
        return;
    }
    /* An answer the journal already holds is not paid for twice. */
    const wk_jattempt *j = stored(s, s->seq);
    if (j && j->state >= WK_J_RECEIVED) {
        wk_event ev = {.kind = WK_EV_RESPONSE,
                       .text = j->text,
                       .finish_reason = j->finish,
                       .prompt_tokens = j->pt,
                       .completion_tokens = j->ct,
                       .cached_tokens = j->cached,
                       .retries = j->retries,
                       .fallbacks = j->fallbacks,
                       .served = j->served ? wk_config_model(&r->cfg, j->served) : NULL};
        answer(s, &ev, 0);
        return;
    }
    /*
     * Sent before a crash and never answered (j in state SENT): the request may
     * have been billed. The router charges its worst case and says whether the
     * budget still holds a second send; the CALL that follows is the same call.
     */
    if (j && s->charged_seq != s->seq) {
        s->charged_seq = s->seq;
        s->seq--;
        wk_event ev = {
            .kind = WK_EV_LOST_CALL, .now_ms = wall_ms(), .lost_cost_usd = wk_cost_worst(m, est)};
        feed(s, &ev);
        return;
    }
    if (r->cache) {
        prov_request req;
        prov_find(m->provider->api)->build(m, wk_task_id(s->task), messages, &req);
        free(s->cache_body);
        s->cache_body = req.body;
        req.body = NULL;
        prov_request_clear(&req);
        wk_cached hit;
        if (wk_cache_get(r->cache, m->id, s->cache_body, strlen(s->cache_body), &hit)) {
            wk_event ev = {.kind = WK_EV_RESPONSE,
                           .text = hit.text,
                           .finish_reason = hit.finish,
                           .prompt_tokens = hit.pt,
                           .completion_tokens = hit.ct,
                           .from_cache = 1};
            answer(s, &ev, 1);
            wk_cached_clear(&hit);
            return;
        }
    }
    if (!j)
        wk_journal_sent(r->journal, wk_task_id(s->task), s->seq, m->name);
    wk_journal_then(r->journal, send_call, s);
}

/* ---- validation -------------------------------------------------------------- */

/* Feeds the held verdict; it is the slot's no more once the feed starts. */
static void feed_pending_verdict(slot *s)
{
    val_verdict v = s->pending;
    memset(&s->pending, 0, sizeof s->pending);
    s->have_pending = 0;
    wk_event ev = {.kind = WK_EV_VERDICT, .now_ms = wall_ms(), .verdict = &v};
    feed(s, &ev);
    s->replayed_verdict = 0;
    val_verdict_clear(&v);
}

/* Keeps a copy of v until it can be fed (the router is never re-entered). */
static void hold_verdict(slot *s, const val_verdict *v)
{
    s->have_pending = 1;
    val_verdict_copy(&s->pending, v);
}

static void on_verdict(void *arg, const val_verdict *v)
{
    slot *s = arg;
    run *r = s->r;
    if (r->o->vcache && s->vin.answer)
        wk_vcache_put(r->o->vcache, wk_task_id(s->task), s->vin.answer, v);
    wk_journal_verdict(r->journal, wk_task_id(s->task), s->seq, v);
    hold_verdict(s, v);
    if (!s->in_validate)
        feed_pending_verdict(s);
}

static const char *task_str(const wk_task *t, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(wk_task_json(t), name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

static void start_validate(slot *s, const char *answer)
{
    run *r = s->r;
    const wk_cascade *c = wk_task_cascade(s->task);
    /* A verdict the journal holds, or one the replay cache knows, is not redone. */
    const wk_jattempt *j = stored(s, s->seq);
    if (j && j->state >= WK_J_VERDICT) {
        s->replayed_verdict = 1;
        hold_verdict(s, &j->verdict);
        feed_pending_verdict(s);
        return;
    }
    const val_verdict *hit =
        r->o->vcache ? wk_vcache_get(r->o->vcache, wk_task_id(s->task), answer) : NULL;
    if (hit) {
        hold_verdict(s, hit);
        feed_pending_verdict(s);
        return;
    }
    s->vin.task_id = wk_task_id(s->task);
    s->vin.kind = task_str(s->task, "kind") ? task_str(s->task, "kind") : "code";
    s->vin.language = task_str(s->task, "language");
    s->vin.answer = answer;
    s->vin.task = wk_task_json(s->task);
    s->vin.schema = wk_task_schema(s->task);
    s->vin.compile_commands = c->compile;
    s->in_validate = 1;
    int rc = val_chain_start(r->venv, (const char *const *)c->validators, c->nvalidators, &s->vin,
                             on_verdict, s);
    s->in_validate = 0;
    if (rc != 0) {
        val_verdict v = {0};
        val_verdict_fail(&v, "chain", "sandbox_error", "the validators could not start", NULL);
        hold_verdict(s, &v);
        val_verdict_clear(&v);
        feed_pending_verdict(s);
    } else if (s->have_pending) {
        feed_pending_verdict(s);
    }
}

static void perform(slot *s, wk_actions *acts)
{
    run *r = s->r;
    for (int i = 0; i < acts->n; i++) {
        wk_action *a = &acts->v[i];
        switch (a->kind) {
        case WK_ACT_CALL:
            start_call(s, a->model, a->messages, a->est_prompt_tokens);
            break;
        case WK_ACT_VALIDATE:
            start_validate(s, a->answer);
            break;
        case WK_ACT_LOG:
            /* A climb replayed from the journal was logged by the run that made it. */
            if (r->esc && !s->replayed_verdict) {
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
        case WK_ACT_FINISH: {
            char *line = cJSON_PrintUnformatted(a->line);
            wk_summary_add(&r->sum, wk_task_cascade(s->task), a->line);
            emit_result(r, s->item, wk_task_id(s->task), line);
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

static char *line_key(const char *id, long lineno)
{
    return id ? wk_xstrdup(id) : wk_xasprintf("line:%ld", lineno);
}

/* A line that is not a task: its result is written once, like any other. */
static void finish_invalid(run *r, q_item *it, cJSON *res)
{
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(res, "id");
    char *key = line_key(cJSON_IsString(jid) ? jid->valuestring : NULL, it->lineno);
    char *stored_line = NULL;
    if (wk_strset_has(&r->written, key) || wk_journal_done_result(r->journal, key, &stored_line)) {
        r->skipped++;
        q_item_free(it);
        free(stored_line);
    } else {
        char *line = cJSON_PrintUnformatted(res);
        wk_summary_add(&r->sum, NULL, res);
        emit_result(r, it, key, line);
        free(line);
    }
    free(key);
    cJSON_Delete(res);
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

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
    if (it->too_big) {
        char *why = wk_xasprintf("line %ld is longer than %u bytes", it->lineno, LINE_CAP);
        finish_invalid(r, it, wk_invalid_result(NULL, it->lineno, why));
        free(why);
        return;
    }
    if (blank(it->line, it->len)) {
        q_item_free(it);
        return;
    }
    wk_task *t = NULL;
    cJSON *invalid = NULL;
    if (wk_task_parse(it->line, it->len, it->lineno, &r->cfg, r->o->cascade_name, &t, &invalid) !=
        0) {
        finish_invalid(r, it, invalid);
        return;
    }
    const char *id = wk_task_id(t);
    /*
     * Two lines of one file with the same id are an input error. A queue that
     * delivers a task again (Redis lost an ack) is not: the task is run again
     * and readers drop the second result by id.
     */
    if (it->lineno > 0 && wk_strset_add(&r->seen, id)) {
        char *why = wk_xasprintf("duplicate id \"%s\": an earlier line has it", id);
        char *key = wk_xasprintf("dup:%ld", it->lineno);
        cJSON *res = wk_invalid_result(id, it->lineno, why);
        if (!wk_strset_has(&r->written, key)) {
            char *line = cJSON_PrintUnformatted(res);
            wk_summary_add(&r->sum, NULL, res);
            emit_result(r, it, key, line);
            free(line);
        } else {
            q_item_free(it);
        }
        cJSON_Delete(res);
        free(key);
        free(why);
        wk_task_free(t);
        return;
    }
    /* Finished in an earlier run: skip it, or write the result it never got. */
    char *done = NULL;
    if (wk_strset_has(&r->written, id)) {
        r->skipped++;
        wk_task_free(t);
        q_item_free(it);
        return;
    }
    if (wk_journal_done_result(r->journal, id, &done)) {
        r->skipped++;
        r->acks++;
        pending_ack *p = wk_xcalloc(1, sizeof *p);
        p->r = r;
        p->item = it;
        p->key = wk_xstrdup(id);
        p->line = done;
        wk_task_free(t);
        ack_now(p);
        return;
    }
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
    s->task = t;
    s->item = it;
    s->seq = 0;
    s->charged_seq = 0;
    wk_journal_attempts(r->journal, id, &s->jatt, &s->njatt);
    if (s->njatt)
        r->resumed++;
    r->active++;
    wk_event ev = {.kind = WK_EV_START, .now_ms = wall_ms()};
    feed(s, &ev);
}

static void on_end(void *arg)
{
    run *r = arg;
    r->eof = 1;
    request_intake(r);
}

static void on_note(void *arg, const char *msg)
{
    (void)arg;
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
    wk_journal_close(r->journal);
    r->journal = NULL;
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
    fprintf(stderr,
            "cascade: %s: taking no more tasks, finishing the %d in flight within "
            "%.0f s (signal again to quit now)\n",
            signum == SIGINT ? "interrupt" : "terminate", r->active, (double)r->o->grace_ms / 1000);
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
    wk_calls_free(r->calls);
    r->calls = NULL;
    for (int i = 0; i < r->o->concurrency; i++)
        uv_close((uv_handle_t *)&r->slots[i].timer, NULL);
    uv_close((uv_handle_t *)&r->intake, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->grace, NULL);
    r->qops->close(r->queue, queue_closed, r);
    r->queue = NULL;
    wk_journal_close(r->journal);
    r->journal = NULL;
}

/* ---- entry ------------------------------------------------------------------- */

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
}

/*
 * A resumed run appends to its results file: the keys already there are
 * not written again. A line cut by a crash is removed first.
 */
static int load_written(run *r, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    if (wk_read_file(path, (size_t)1 << 34, &text, &len) != 0)
        return 0; /* no file yet */
    size_t keep = len;
    while (keep > 0 && text[keep - 1] != '\n')
        keep--;
    if (keep < len && truncate(path, (off_t)keep) != 0) {
        snprintf(err, errlen, "cannot trim the cut last line of %s: %s", path, strerror(errno));
        free(text);
        return WK_EIO;
    }
    size_t start = 0;
    while (start < keep) {
        char *nl = memchr(text + start, '\n', keep - start);
        size_t n = (size_t)(nl - (text + start));
        cJSON *j = cJSON_ParseWithLength(text + start, n);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
        const cJSON *line = cJSON_GetObjectItemCaseSensitive(j, "line");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
        const cJSON *reason = cJSON_GetObjectItemCaseSensitive(j, "reason");
        char *key = NULL;
        if (cJSON_IsString(reason) && strncmp(reason->valuestring, "duplicate id", 12) == 0 &&
            cJSON_IsNumber(line))
            key = wk_xasprintf("dup:%d", line->valueint);
        else if (cJSON_IsString(id))
            key = wk_xstrdup(id->valuestring);
        else if (cJSON_IsNumber(line) && cJSON_IsString(st))
            key = wk_xasprintf("line:%d", line->valueint);
        if (key) {
            wk_strset_add(&r->written, key);
            free(key);
        }
        cJSON_Delete(j);
        start += n + 1;
    }
    free(text);
    return 0;
}

int wk_run(const wk_run_opts *o)
{
    run *r = wk_xcalloc(1, sizeof *r);
    int code = WK_EXIT_FAIL;
    int loop_ok = 0;
    char err[ERRMSG_MAX];
    char *journal_path = NULL;
    r->o = o;
    r->abort_on_task = getenv("CASCADE_FAULT_ABORT_ON_TASK");

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
    if (file_results && journal_path && load_written(r, o->out_path, err, sizeof err)) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    if (file_results && !journal_path && !o->recs) {
        /* No journal: a fresh run, a fresh file. */
        FILE *f = fopen(o->out_path, "w");
        if (f)
            fclose(f);
    } else if (file_results && o->recs) {
        FILE *f = fopen(o->out_path, "w");
        if (f)
            fclose(f);
    }
    if (o->esc_path) {
        r->esc = fopen(o->esc_path, journal_path ? "a" : "w");
        if (!r->esc) {
            fprintf(stderr, "cascade: cannot open escalations file %s: %s\n", o->esc_path,
                    strerror(errno));
            goto cleanup;
        }
    }

    uv_loop_init(&r->loop);
    loop_ok = 1;
    if (journal_path && wk_journal_open(&r->loop, journal_path, &r->journal, err, sizeof err)) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    if (o->cache_path && wk_cache_open(o->cache_path, &r->cache, err, sizeof err)) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    q_opts qo = {.url = o->queue_url ? o->queue_url : o->tasks_path,
                 .results_path = o->out_path,
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
    val_limits lim;
    val_limits_default(&lim);
    lim.timeout_ms = o->test_timeout_ms;
    r->venv = val_env_new(&r->loop, &lim, o->max_sandboxes, err, sizeof err);
    if (!r->venv) {
        fprintf(stderr, "cascade: %s\n", err);
        goto cleanup;
    }
    wk_calls_opts co = {
        .connect_timeout_ms = o->connect_timeout_ms,
        .first_byte_timeout_ms = o->first_byte_timeout_ms,
        .total_timeout_ms = o->timeout_ms,
        .body_cap = o->body_cap,
        .run_budget_usd = o->budget_usd,
    };
    wk_retry_policy_default(&co.retry);
    co.retry.max_retries = o->max_retries;
    co.retry.max_wait_ms = o->max_wait_ms;
    r->calls = wk_calls_new(&r->loop, &r->cfg, &co);
    if (!r->calls) {
        fprintf(stderr, "cascade: cannot set up libcurl\n");
        goto cleanup;
    }
    r->slots = wk_xcalloc((size_t)o->concurrency, sizeof(slot));
    for (int i = o->concurrency - 1; i >= 0; i--) {
        slot *s = &r->slots[i];
        s->r = r;
        uv_timer_init(&r->loop, &s->timer);
        s->timer.data = s;
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
        wk_calls_free(r->calls);
        if (r->queue)
            r->qops->close(r->queue, queue_closed, r);
        wk_journal_close(r->journal);
    }
    if (r->venv)
        val_env_free(r->venv);
    if (loop_ok) {
        uv_run(&r->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&r->loop) != 0)
            fprintf(stderr, "cascade: warning: handles left open at exit\n");
    }
    wk_cache_close(r->cache);
    if (r->esc)
        fclose(r->esc);
    wk_strset_release(&r->seen);
    wk_strset_release(&r->written);
    free(r->slots);
    free(journal_path);
    wk_summary_release(&r->sum);
    wk_config_free(&r->cfg);
    free(r);
    return code;
}
