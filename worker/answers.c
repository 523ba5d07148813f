/*
 * The answer and verdict sources (see answers.h). Moved out of the driver so
 * the choice between them is made here, once each; the driver keeps the
 * loop, the slots and the side effects of the router's other actions.
 */
#include "answers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "cost.h"
#include "lib/util.h"
#include "worker/store/batchj.h"

/* In-process validations of one answer that may kill the worker before it gets a verdict. */
#define WK_VALIDATE_CRASHES_MAX 2

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void wk_ask_init(wk_ask *q, uv_loop_t *loop, const wk_answers *a, int ncalls,
                 void (*on_event)(void *arg, const wk_event *ev),
                 void (*on_abandon)(void *arg, int status), void *arg)
{
    memset(q, 0, sizeof *q);
    q->a = a;
    q->on_event = on_event;
    q->on_abandon = on_abandon;
    q->arg = arg;
    q->ncalls = ncalls < 1 ? 1 : ncalls > WK_AGREE_MAX ? WK_AGREE_MAX : ncalls;
    q->calls = wk_xcalloc((size_t)q->ncalls, sizeof *q->calls);
    for (int i = 0; i < q->ncalls; i++) {
        wk_ask_call_slot *c = &q->calls[i];
        c->q = q;
        c->vote = i;
        uv_timer_init(loop, &c->timer);
        c->timer.data = c;
    }
}

void wk_ask_close(wk_ask *q)
{
    for (int i = 0; i < q->ncalls; i++)
        uv_close((uv_handle_t *)&q->calls[i].timer, NULL);
}

void wk_ask_release(wk_ask *q)
{
    free(q->calls);
    q->calls = NULL;
    q->ncalls = 0;
}

int wk_ask_begin(wk_ask *q, const wk_task *task, int fresh)
{
    q->task = task;
    q->seq = 0;
    q->vseq = 0;
    q->outstanding = 0;
    q->abandoned = 0;
    for (int i = 0; i < q->ncalls; i++)
        q->calls[i].seq = q->calls[i].lost = 0;
    if (!fresh)
        wk_journal_attempts(q->a->journal, wk_task_id(task), &q->jatt, &q->njatt);
    return q->njatt > 0;
}

void wk_ask_end(wk_ask *q)
{
    wk_journal_attempts_free(q->jatt, q->njatt);
    q->jatt = NULL;
    q->njatt = 0;
    for (int i = 0; i < q->ncalls; i++) {
        wk_call_drop(q->calls[i].call);
        q->calls[i].call = NULL;
    }
    q->task = NULL;
}

int wk_ask_replayed(const wk_ask *q)
{
    return q->replayed_verdict;
}

static const wk_jattempt *stored(const wk_ask *q, int seq)
{
    for (int i = 0; i < q->njatt; i++)
        if (q->jatt[i].seq == seq)
            return &q->jatt[i];
    return NULL;
}

/*
 * The journal failed under the task: the driver hears it once no call of
 * the task is still out (their callbacks hold the task's slot).
 */
static void abandon(wk_ask *q, int status)
{
    if (!q->abandoned)
        q->abandoned = status ? status : WK_EIO;
    if (q->outstanding > 0)
        return;
    int st = q->abandoned;
    q->abandoned = 0;
    q->on_abandon(q->arg, st);
}

/* A call's life is over (its event is about to be fed): 1 when it must not be. */
static int call_over(wk_ask_call_slot *c)
{
    wk_ask *q = c->q;
    q->outstanding--;
    if (!q->abandoned)
        return 0;
    abandon(q, q->abandoned);
    return 1;
}

/* The event of call c, with its vote index. */
static void feed_call(wk_ask_call_slot *c, wk_event *ev)
{
    ev->vote = c->vote;
    c->q->on_event(c->q->arg, ev);
}

/* ---- answers ------------------------------------------------------------------ */

static void feed_response(void *arg, int status)
{
    wk_ask_call_slot *c = arg;
    char *t = c->resp_text, *f = c->resp_finish;
    cJSON *lp = c->resp_logprobs, *ch = c->resp_choices;
    char *bid = c->resp_batch;
    c->resp_batch = NULL;
    c->resp_text = c->resp_finish = NULL;
    c->resp_logprobs = c->resp_choices = NULL;
    if (status != 0) {
        c->q->outstanding--;
        abandon(c->q, status);
    } else if (!call_over(c)) {
        wk_event ev = c->resp;
        ev.now_ms = wall_ms();
        ev.text = t;
        ev.finish_reason = f;
        ev.logprobs = lp;
        ev.choices = ch;
        ev.batch_id = bid;
        feed_call(c, &ev);
    }
    free(t);
    free(f);
    free(bid);
    cJSON_Delete(lp);
    cJSON_Delete(ch);
}

/*
 * Holds an answer until the check phase, then feeds it. Its RECEIVED row is
 * committed before anything the answer leads to happens: validation commits
 * first (wk_journal_validating), and so do a next call (SENT) and the result
 * line (DONE); with no validator the three rows are one commit.
 */
static void answer(wk_ask_call_slot *c, const wk_event *ev, int journal)
{
    wk_ask *q = c->q;
    c->resp = *ev;
    c->resp_text = wk_xstrdup(ev->text ? ev->text : "");
    c->resp_finish = ev->finish_reason ? wk_xstrdup(ev->finish_reason) : NULL;
    c->resp_logprobs = ev->logprobs ? cJSON_Duplicate(ev->logprobs, 1) : NULL;
    c->resp_choices = ev->choices ? cJSON_Duplicate(ev->choices, 1) : NULL;
    free(c->resp_batch);
    c->resp_batch = ev->batch_id ? wk_xstrdup(ev->batch_id) : NULL;
    /* A failed write is the journal's failure: the commit below reports it. */
    if (journal)
        (void)wk_journal_received(q->a->journal, wk_task_id(q->task), c->seq, ev->text,
                                  ev->finish_reason, ev->prompt_tokens, ev->completion_tokens,
                                  ev->cached_tokens, ev->served ? ev->served->name : NULL,
                                  ev->retries, ev->fallbacks);
    if (journal && (ev->logprobs || ev->choices)) {
        /* What a classify tier's doubt reads: a resume votes on it without paying again. */
        cJSON *x = cJSON_CreateObject();
        if (ev->logprobs)
            cJSON_AddItemToObject(x, "logprobs", cJSON_Duplicate(ev->logprobs, 1));
        if (ev->choices)
            cJSON_AddItemToObject(x, "choices", cJSON_Duplicate(ev->choices, 1));
        char *js = cJSON_PrintUnformatted(x);
        (void)wk_journal_received_extra(q->a->journal, wk_task_id(q->task), c->seq, js);
        free(js);
        cJSON_Delete(x);
    }
    /* Its lane, when not the tier's own or when a batch carried it (store/batchj.h). */
    if (journal && (ev->to_sync || ev->batch_id))
        (void)wk_journal_attempt_lane(q->a->journal, wk_task_id(q->task), c->seq, ev->to_sync,
                                      ev->batch_id);
    wk_journal_later(q->a->journal, feed_response, c);
}

static void on_call(void *arg, const wk_call_outcome *o)
{
    wk_ask_call_slot *c = arg;
    wk_ask *q = c->q;
    if (wk_journal_error(q->a->journal)) {
        q->outstanding--;
        abandon(q, WK_EIO); /* its answer could not be journaled */
        return;
    }
    wk_event ev = {.now_ms = wall_ms(),
                   .latency_ms = o->latency_ms,
                   .served = o->served,
                   .retries = o->retries,
                   .fallbacks = o->fallbacks,
                   .to_sync = o->to_sync,
                   .batch_id = o->batch_id};
    if (o->ok) {
        ev.kind = WK_EV_RESPONSE;
        ev.text = o->resp->text;
        ev.finish_reason = o->resp->finish_reason;
        ev.prompt_tokens = o->resp->prompt_tokens;
        ev.completion_tokens = o->resp->completion_tokens;
        ev.cached_tokens = o->resp->cached_tokens;
        ev.logprobs = o->resp->logprobs;
        ev.choices = o->resp->choices;
        answer(c, &ev, 1);
        return;
    }
    if (call_over(c))
        return;
    ev.kind = WK_EV_CALL_FAILED;
    ev.error_reason = o->reason;
    ev.error_message = o->message;
    ev.budget_denied = o->budget_denied;
    feed_call(c, &ev);
}

/* Replay: the recorded answer arrives from the loop, like a real response. */
static void on_replay(uv_timer_t *t)
{
    wk_ask_call_slot *c = t->data;
    wk_ask *q = c->q;
    const wk_rec *rec = c->rec;
    c->rec = NULL;
    if (call_over(c))
        return;
    if (!rec) {
        char *msg = wk_xasprintf("no recording for task %s and model %s", wk_task_id(q->task),
                                 c->model->name);
        wk_event ev = {.kind = WK_EV_CALL_FAILED,
                       .now_ms = wall_ms(),
                       .error_reason = "no_recording",
                       .error_message = msg};
        feed_call(c, &ev);
        free(msg);
        return;
    }
    wk_event ev = {.kind = WK_EV_RESPONSE, .now_ms = wall_ms()};
    ev.text = rec->answer;
    ev.finish_reason = rec->finish_reason ? rec->finish_reason : "stop";
    ev.prompt_tokens = rec->prompt_tokens;
    ev.completion_tokens = rec->completion_tokens;
    ev.has_cost = rec->cost_usd >= 0;
    ev.cost_usd = rec->cost_usd;
    cJSON *lp = c->logprobs ? wk_rec_logprobs(rec) : NULL;
    ev.logprobs = lp;
    feed_call(c, &ev);
    cJSON_Delete(lp);
}

/* Runs once the SENT row is committed: the request may leave now. */
static void send_call(void *arg, int status)
{
    wk_ask_call_slot *c = arg;
    wk_call *k = c->call;
    c->call = NULL;
    if (status != 0) {
        wk_call_drop(k);
        c->q->outstanding--;
        abandon(c->q, status);
        return;
    }
    if (!c->q->a->calls || c->q->abandoned) { /* the driver shut down, or the task is given up */
        wk_call_drop(k);
        call_over(c);
        return;
    }
    wk_call_send(k, on_call, c);
}

/* A lost call is fed from the loop too: the router may send it again at once. */
static void feed_lost(void *arg, int status)
{
    wk_ask_call_slot *c = arg;
    if (status != 0) {
        c->q->outstanding--;
        abandon(c->q, status);
        return;
    }
    if (call_over(c))
        return;
    wk_event ev = c->resp;
    ev.now_ms = wall_ms();
    feed_call(c, &ev);
    /*
     * The router sends the lost call again within this feed or never (its
     * budget refused it): either way the next CALL on this slot, say a vote
     * of the next tier's round after a climb, is a new call with a row of
     * its own, not this one sent again under the old row.
     */
    c->lost = 0;
}

void wk_ask_call(wk_ask *q, const wk_model *m, const wk_deployments *deps, const cJSON *messages,
                 long est, int logprobs, int n, int vote)
{
    const wk_answers *a = q->a;
    wk_ask_call_slot *c = &q->calls[vote >= 0 && vote < q->ncalls ? vote : 0];
    c->model = m;
    c->logprobs = logprobs;
    q->outstanding++;
    /* A lost call sent again keeps its row; any other call takes the next. */
    int resend = c->lost;
    c->lost = 0;
    if (!resend)
        c->seq = ++q->seq;
    if (a->recs) {
        c->rec = wk_recs_next(a->recs, wk_task_id(q->task), m->name, a->replay_start);
        uv_timer_start(&c->timer, on_replay, 0, 0);
        return;
    }
    /* An answer the journal already holds is not paid for twice. */
    const wk_jattempt *j = stored(q, c->seq);
    if (j && j->state >= WK_J_RECEIVED) {
        wk_event ev = {.kind = WK_EV_RESPONSE,
                       .text = j->text,
                       .finish_reason = j->finish,
                       .prompt_tokens = j->pt,
                       .completion_tokens = j->ct,
                       .cached_tokens = j->cached,
                       .retries = j->retries,
                       .fallbacks = j->fallbacks,
                       .served = j->served ? wk_config_model(a->cfg, j->served) : NULL};
        /* The tokens' logprobs and the other choices, as the first run had them. */
        cJSON *x = j->extra ? cJSON_Parse(j->extra) : NULL;
        const cJSON *lp = cJSON_GetObjectItemCaseSensitive(x, "logprobs");
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(x, "choices");
        ev.logprobs = cJSON_IsArray(lp) ? lp : NULL;
        ev.choices = cJSON_IsArray(ch) ? ch : NULL;
        char batch_id[128];
        (void)wk_journal_attempt_lane_get(a->journal, wk_task_id(q->task), c->seq, &ev.to_sync,
                                          batch_id, sizeof batch_id);
        ev.batch_id = batch_id[0] ? batch_id : NULL;
        answer(c, &ev, 0);
        cJSON_Delete(x);
        return;
    }
    /*
     * Sent before a crash and never answered (j in state SENT): the request may
     * have been billed. The router charges its worst case and says whether the
     * budget still holds a second send; the CALL that follows is the same call.
     */
    /*
     * Not on the batch lane: its SENT row is written before the call joins a
     * batch, and a batch still out is polled, not sent again (batchj.h); one
     * never journaled never left.
     */
    if (j && !resend && q->lane != WK_LANE_BATCH &&
        !wk_journal_batch_pending(a->journal, wk_task_id(q->task), c->seq)) {
        c->lost = 1;
        c->resp =
            (wk_event){.kind = WK_EV_LOST_CALL, .lost_cost_usd = wk_cost_worst_at(m, q->lane, est)};
        wk_journal_then(a->journal, feed_lost, c);
        return;
    }
    if (deps && deps->n == 0) {
        /* The router admits no tier without a deployment; should one come, nothing is sent. */
        if (call_over(c))
            return;
        wk_event ev = {.kind = WK_EV_CALL_FAILED,
                       .now_ms = wall_ms(),
                       .error_reason = "data_policy",
                       .error_message = "the task's data class may reach no deployment"};
        feed_call(c, &ev);
        return;
    }
    wk_call_drop(c->call);
    c->call =
        wk_call_prepare(a->calls, m, deps, wk_task_id(q->task), messages, est, c->seq, logprobs, n);
    wk_call_set_lane(c->call, q->lane);
    wk_cached hit;
    if (wk_call_cached(c->call, &hit)) {
        wk_call_drop(c->call);
        c->call = NULL;
        wk_event ev = {.kind = WK_EV_RESPONSE,
                       .text = hit.text,
                       .finish_reason = hit.finish,
                       .prompt_tokens = hit.pt,
                       .completion_tokens = hit.ct,
                       /* the deployment asked first: a restricted task's, its provider's entry */
                       .served = deps ? deps->v[0] : NULL,
                       .from_cache = 1};
        answer(c, &ev, 1);
        wk_cached_clear(&hit);
        return;
    }
    /* A failed write is the journal's failure: send_call hears of it. */
    if (!j)
        (void)wk_journal_sent(a->journal, wk_task_id(q->task), c->seq, m->name);
    wk_journal_then(a->journal, send_call, c);
}

/* ---- verdicts ----------------------------------------------------------------- */

/* Feeds the held verdict; it is the task's no more once the feed starts. */
static void feed_pending_verdict(wk_ask *q)
{
    val_verdict v = q->pending;
    memset(&q->pending, 0, sizeof q->pending);
    q->have_pending = 0;
    wk_event ev = {.kind = WK_EV_VERDICT, .now_ms = wall_ms(), .verdict = &v};
    q->on_event(q->arg, &ev);
    q->replayed_verdict = 0;
    val_verdict_clear(&v);
}

/* Keeps a copy of v until it can be fed (the router is never re-entered). */
static void hold_verdict(wk_ask *q, const val_verdict *v)
{
    q->have_pending = 1;
    val_verdict_copy(&q->pending, v);
}

static void on_verdict(void *arg, const val_verdict *v)
{
    wk_ask *q = arg;
    const wk_answers *a = q->a;
    if (wk_journal_error(a->journal) && !q->in_validate) {
        abandon(q, WK_EIO); /* a verdict that cannot be journaled leads nowhere */
        return;
    }
    if (a->vcache && q->vin.answer)
        wk_vcache_put(a->vcache, wk_task_id(q->task), q->vin.answer, v);
    /* A failed write is the journal's failure: what follows waits on a commit. */
    if (!q->same_call)
        (void)wk_journal_verdict(a->journal, wk_task_id(q->task), q->vseq, v);
    hold_verdict(q, v);
    if (!q->in_validate)
        feed_pending_verdict(q);
}

static const char *task_str(const wk_task *t, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(wk_task_json(t), name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

void wk_ask_validate(wk_ask *q, const char *answer, int same_call, int vote)
{
    const wk_answers *a = q->a;
    const wk_cascade *c = wk_task_cascade(q->task);
    q->same_call = same_call;
    q->vseq = q->calls[vote >= 0 && vote < q->ncalls ? vote : 0].seq;
    /* A verdict the journal holds, or one the replay cache knows, is not redone. */
    const wk_jattempt *j = same_call ? NULL : stored(q, q->vseq);
    if (j && j->state >= WK_J_VERDICT) {
        q->replayed_verdict = 1;
        hold_verdict(q, &j->verdict);
        feed_pending_verdict(q);
        return;
    }
    const val_verdict *hit =
        a->vcache ? wk_vcache_get(a->vcache, wk_task_id(q->task), answer) : NULL;
    if (hit) {
        hold_verdict(q, hit);
        feed_pending_verdict(q);
        return;
    }
    /*
     * Validations of this answer whose in-process part (parsers, the patch
     * applied in memory) started and never returned killed the worker: after
     * WK_VALIDATE_CRASHES_MAX, the answer gets a verdict instead of another
     * try, so a resume finishes the batch instead of crashing again. The
     * sandboxed part runs in other processes and cannot take the worker down.
     */
    if (j && j->state == WK_J_RECEIVED && j->vstarts >= WK_VALIDATE_CRASHES_MAX) {
        val_verdict v = {0};
        char *msg = wk_xasprintf("validating this answer killed the worker %d times; it is "
                                 "not validated again",
                                 j->vstarts);
        val_verdict_fail(&v, "chain", "validator_crash", msg, NULL);
        free(msg);
        q->in_validate = 1;
        on_verdict(q, &v);
        q->in_validate = 0;
        val_verdict_clear(&v);
        feed_pending_verdict(q);
        return;
    }
    /*
     * A failed write is the journal's failure: the verdict's write reports it.
     * An empty chain runs nothing that could crash, so it costs no commit.
     */
    if (c->nvalidators > 0)
        (void)wk_journal_validating(a->journal, wk_task_id(q->task), q->vseq, 1);
    /* Test hook: a validation that kills the worker, as a crashing parser would. */
    const char *fault = getenv("CASCADE_FAULT_ABORT_IN_VALIDATE");
    if (fault && strcmp(fault, wk_task_id(q->task)) == 0) {
        fprintf(stderr, "cascade: CASCADE_FAULT_ABORT_IN_VALIDATE: aborting on %s\n", fault);
        abort();
    }
    q->vin.task_id = wk_task_id(q->task);
    q->vin.kind = task_str(q->task, "kind") ? task_str(q->task, "kind") : "code";
    q->vin.language = task_str(q->task, "language");
    q->vin.answer = answer;
    q->vin.task = wk_task_json(q->task);
    q->vin.schema = wk_task_schema(q->task);
    q->vin.compile_commands = c->compile;
    q->vin.label_field = c->label_field;
    q->vin.baseline = wk_task_baseline(q->task);
    q->vin.max_patch_bytes = a->max_patch_bytes;
    q->in_validate = 1;
    int rc = val_chain_start(a->venv, (const char *const *)c->validators, c->nvalidators, &q->vin,
                             on_verdict, q);
    q->in_validate = 0;
    if (c->nvalidators > 0)
        (void)wk_journal_validating(a->journal, wk_task_id(q->task), q->vseq, 0);
    if (rc != 0) {
        val_verdict v = {0};
        val_verdict_fail(&v, "chain", "sandbox_error", "the validators could not start", NULL);
        hold_verdict(q, &v);
        val_verdict_clear(&v);
        feed_pending_verdict(q);
    } else if (q->have_pending) {
        feed_pending_verdict(q);
    }
}
