/*
 * The task state machine (see router.h). Every transition is here, and each
 * one is a plain function of the task and the event, so the unit tests can
 * walk every path without a network or a sandbox.
 *
 * One task goes: START -> CALL -> RESPONSE -> VALIDATE -> VERDICT, and on a
 * failure either another CALL at the same tier (attempts left), a LOG plus a
 * CALL one tier up, or a FINISH. A truncated answer and a failed call are
 * failures like a validator's and climb the same way.
 */
#include "router.h"
#include "task_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cost.h"
#include "lib/util.h"
#include "validators/val.h"

/* Costs are reported to the nano-dollar so sums of lines match the totals. */
static double round_usd(double v)
{
    return round(v * 1e9) / 1e9;
}

/* ---- transitions ----------------------------------------------------------- */

/* A rough token estimate (chars / 4) for reservations and context checks. */
static long estimate_prompt_tokens(const cJSON *messages)
{
    size_t chars = 0;
    long n = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const char *c = wk_jstr(m, "content");
        chars += c ? strlen(c) : 0;
        n++;
    }
    return (long)(chars / 4) + 4 * n + 8;
}

static int tier_fits(const wk_task *t, int tier)
{
    const wk_model *m = t->cascade->tiers[tier].model;
    return m->context <= 0 || estimate_prompt_tokens(t->messages) + m->max_tokens <= m->context;
}

static void add_iso_ts(cJSON *o, int64_t ms)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
    cJSON_AddStringToObject(o, "ts", buf);
}

/* A new zeroed action at the end of the list, which grows as needed. */
static wk_action *push(wk_actions *a, wk_action_kind kind)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 8;
        a->v = wk_xrealloc(a->v, (size_t)a->cap * sizeof *a->v);
    }
    wk_action *x = &a->v[a->n++];
    memset(x, 0, sizeof *x);
    x->kind = kind;
    return x;
}

/* Drops the actions staged after `mark` (their lines too): nothing follows them. */
static void drop_after(wk_actions *a, int mark)
{
    while (a->n > mark)
        cJSON_Delete(a->v[--a->n].line);
}

void wk_actions_release(wk_actions *a)
{
    drop_after(a, 0);
    free(a->v);
    a->v = NULL;
    a->cap = 0;
}

static cJSON *tier_obj(const wk_task *t, int tier)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tier", tier);
    cJSON_AddStringToObject(o, "model", t->cascade->tiers[tier].model->name);
    return o;
}

static void finish(wk_task *t, const char *status, const char *reason, wk_actions *out)
{
    cJSON *r = cJSON_CreateObject();
    int accepted = strcmp(status, "accepted") == 0;
    cJSON_AddStringToObject(r, "id", t->id);
    cJSON_AddStringToObject(r, "status", status);
    cJSON_AddStringToObject(r, "cascade", t->cascade->name);
    if (accepted) {
        cJSON_AddNumberToObject(r, "tier", t->tier);
        cJSON_AddStringToObject(r, "model", t->cascade->tiers[t->tier].model->name);
    } else {
        cJSON_AddNullToObject(r, "tier");
        cJSON_AddNullToObject(r, "model");
    }
    cJSON_AddNumberToObject(r, "cost_usd", round_usd(t->cost_usd));
    cJSON_AddItemToObject(r, "attempts", t->attempts);
    t->attempts = NULL;
    if (accepted) {
        char *code = val_extract_code(t->answer);
        cJSON_AddStringToObject(r, "answer", code);
        free(code);
    } else if (t->best) {
        cJSON_AddStringToObject(r, "answer", t->best);
    } else {
        cJSON_AddNullToObject(r, "answer");
    }
    if (reason)
        cJSON_AddStringToObject(r, "reason", reason);
    /* A classify task: the label accepted, the gold one, and whether they match. */
    if (accepted && t->label[0])
        cJSON_AddStringToObject(r, "label", t->label);
    if (t->gold) {
        cJSON_AddStringToObject(r, "gold", t->gold);
        if (accepted && t->label[0])
            cJSON_AddBoolToObject(r, "correct", strcmp(t->label, t->gold) == 0);
    }
    t->state = WK__ST_DONE;
    push(out, WK_ACT_FINISH)->line = r;
}

/*
 * Emits the next call, unless the task's budget cannot hold its worst case
 * (the whole prompt plus max_tokens of output), in which case the task ends.
 */
static int over_budget(wk_task *t, int tier, wk_actions *out)
{
    const wk_model *m = t->cascade->tiers[tier].model;
    if (t->budget_usd <= 0)
        return 0;
    double worst = wk_cost_worst(m, estimate_prompt_tokens(t->messages));
    if (t->cost_usd + worst <= t->budget_usd)
        return 0;
    char *why = wk_xasprintf("task budget $%.6g: spent $%.6g, the next call to %s may "
                             "cost up to $%.6g",
                             t->budget_usd, t->cost_usd, m->name, worst);
    finish(t, "over_budget", why, out);
    free(why);
    return 1;
}

static void call_or_stop(wk_task *t, wk_actions *out)
{
    const wk_model *m = t->cascade->tiers[t->tier].model;
    if (over_budget(t, t->tier, out))
        return;
    t->state = WK__ST_CALLING;
    wk_action *a = push(out, WK_ACT_CALL);
    a->model = m;
    a->messages = t->messages;
    a->est_prompt_tokens = estimate_prompt_tokens(t->messages);
}

/* The tier's skip rule that holds for this task, as words; NULL when none does. */
static char *skip_rule_holds(const wk_task *t, int tier)
{
    const wk_tier *tr = &t->cascade->tiers[tier];
    if (!tr->nskip)
        return NULL;
    wk_task_features f;
    wk_task_features_of(t->json, &f);
    for (int i = 0; i < tr->nskip; i++) {
        if (!wk_skip_rule_holds(&tr->skip[i], &f))
            continue;
        return wk_xasprintf("skip rule %d of tier %d holds (prompt about %ld tokens, kind %s, "
                            "language %s, %s tests)",
                            i, tier, f.prompt_tokens, f.kind, f.language ? f.language : "none",
                            f.has_tests ? "with" : "no");
    }
    return NULL;
}

/*
 * The first tier at or after `from` that may take the task; -1 if none. Each
 * tier skipped on the way is staged as a LOG action (any number of them).
 */
static int next_fitting(wk_task *t, int from, int64_t now, wk_actions *out)
{
    for (int k = from; k < t->cascade->ntiers; k++) {
        char *rule = skip_rule_holds(t, k);
        if (!rule && tier_fits(t, k))
            return k;
        /* A skipped tier is logged like a climb: nothing was sent to it. */
        if (k + 1 < t->cascade->ntiers) {
            cJSON *l = cJSON_CreateObject();
            add_iso_ts(l, now);
            cJSON_AddStringToObject(l, "id", t->id);
            cJSON_AddItemToObject(l, "from", tier_obj(t, k));
            cJSON_AddItemToObject(l, "to", tier_obj(t, k + 1));
            cJSON_AddStringToObject(l, "validator", rule ? "rule" : "context");
            cJSON_AddStringToObject(l, "reason", rule ? "skip_rule" : "context_too_small");
            cJSON_AddStringToObject(l, "evidence",
                                    rule ? rule
                                         : "the prompt plus max_tokens exceeds the model's "
                                           "context window");
            cJSON_AddNumberToObject(l, "cost_usd", round_usd(t->cost_usd));
            push(out, WK_ACT_LOG)->line = l;
        }
        free(rule);
    }
    return -1;
}

static void add_feedback(wk_task *t, const char *validator, const char *reason, const char *message,
                         const char *evidence)
{
    if (!t->cascade->feedback || !t->answer)
        return;
    /* Keep only the newest rounds so the prompt cannot grow without bound. */
    if (t->rounds >= WK_FEEDBACK_ROUNDS_MAX) {
        cJSON_DeleteItemFromArray(t->messages, 2);
        cJSON_DeleteItemFromArray(t->messages, 2);
        t->rounds--;
    }
    size_t alen = strlen(t->answer);
    char *ans = alen > WK_FEEDBACK_ANSWER_MAX
                    ? wk_xasprintf("%.*s\n[... cut]", WK_FEEDBACK_ANSWER_MAX, t->answer)
                    : wk_xstrdup(t->answer);
    cJSON *a = cJSON_CreateObject();
    cJSON_AddStringToObject(a, "role", "assistant");
    cJSON_AddStringToObject(a, "content", ans);
    cJSON_AddItemToArray(t->messages, a);
    free(ans);

    wk_buf b;
    wk_buf_init(&b, 64 * 1024);
    wk_buf_appendf(&b, "Your answer failed the %s check (%s).", validator, reason);
    if (message && *message)
        wk_buf_appendf(&b, "\n%s", message);
    if (evidence && *evidence) {
        char *head = wk_head_lines(evidence, WK_FEEDBACK_EVIDENCE_LINES, VAL_EVIDENCE_MAX);
        wk_buf_appendf(&b, "\nEvidence:\n```\n%s\n```", head);
        free(head);
    }
    wk_buf_appendf(&b, "\nReply with a corrected, complete answer in the same format.");
    cJSON *u = cJSON_CreateObject();
    cJSON_AddStringToObject(u, "role", "user");
    cJSON_AddStringToObject(u, "content", b.buf);
    cJSON_AddItemToArray(t->messages, u);
    wk_buf_release(&b);
    t->rounds++;
}

static int rank_of(const wk_task *t, const char *validator)
{
    for (int i = 0; i < t->cascade->nvalidators; i++)
        if (strcmp(t->cascade->validators[i], validator) == 0)
            return i + 1;
    return 0;
}

static void on_failure(wk_task *t, int64_t now, const char *validator, const char *reason,
                       const char *message, const char *evidence, wk_actions *out)
{
    if (t->answer) {
        /* The best failed answer is the one that got furthest down the chain. */
        int rank = rank_of(t, validator);
        if (rank >= t->best_rank) {
            free(t->best);
            t->best = val_extract_code(t->answer);
            t->best_rank = rank;
        }
    }
    add_feedback(t, validator, reason, message, evidence);
    free(t->answer);
    t->answer = NULL;

    t->tries++;
    if (t->tries < t->cascade->tiers[t->tier].attempts) {
        call_or_stop(t, out);
        return;
    }

    /* The climb's line comes first, then any skips, then the call. */
    int from = t->tier, mark = out->n;
    push(out, WK_ACT_LOG);
    int next = from + 1 < t->cascade->ntiers ? next_fitting(t, from + 1, now, out) : -1;
    if (next < 0) {
        drop_after(out, mark);
        char *why = t->answers ? wk_xasprintf("every tier failed; last: %s %s", validator, reason)
                               : wk_xasprintf("no tier gave an answer; last: %s", reason);
        finish(t, t->answers ? "exhausted" : "error", why, out);
        free(why);
        return;
    }
    /* A climb the budget cannot pay for is not logged: the task ends here. */
    int n = out->n;
    if (over_budget(t, next, out)) {
        wk_action fin = out->v[n];
        out->v[n].line = NULL;
        drop_after(out, mark);
        *push(out, WK_ACT_FINISH) = fin;
        return;
    }
    cJSON *l = cJSON_CreateObject();
    add_iso_ts(l, now);
    cJSON_AddStringToObject(l, "id", t->id);
    cJSON_AddItemToObject(l, "from", tier_obj(t, from));
    cJSON_AddItemToObject(l, "to", tier_obj(t, from + 1));
    cJSON_AddStringToObject(l, "validator", validator);
    cJSON_AddStringToObject(l, "reason", reason);
    char *ev = wk_head_lines(evidence ? evidence : (message ? message : ""),
                             WK_FEEDBACK_EVIDENCE_LINES, 1000);
    cJSON_AddStringToObject(l, "evidence", ev);
    free(ev);
    cJSON_AddNumberToObject(l, "cost_usd", round_usd(t->cost_usd));
    out->v[mark].line = l;
    t->tier = next;
    t->tries = 0;
    call_or_stop(t, out);
}

static cJSON *new_attempt(wk_task *t, const wk_event *ev, long pt, long ct)
{
    const wk_model *m = t->cascade->tiers[t->tier].model;
    const wk_model *served = ev->served ? ev->served : m;
    double cost = ev->from_cache ? 0
                  : ev->has_cost ? ev->cost_usd
                                 : wk_cost(served, pt, ct, ev->cached_tokens);
    t->cost_usd += cost;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "tier", t->tier);
    cJSON_AddStringToObject(a, "model", m->name);
    /* A fallback deployment is the same model elsewhere; say which one answered. */
    if (served != m)
        cJSON_AddStringToObject(a, "deployment", served->name);
    if (ev->from_cache)
        cJSON_AddBoolToObject(a, "cached", 1);
    if (ev->has_cost && !ev->from_cache) /* the recording's cost, not tokens x price */
        cJSON_AddBoolToObject(a, "cost_recorded", 1);
    if (t->lost_usd > 0) {
        /* Already in the task's cost: the same call, sent before a crash. */
        cJSON_AddNumberToObject(a, "lost_cost_usd", round_usd(t->lost_usd));
        t->lost_usd = 0;
    }
    cJSON_AddNumberToObject(a, "retries", ev->retries);
    cJSON_AddNumberToObject(a, "fallbacks", ev->fallbacks);
    if (ev->cached_tokens > 0)
        cJSON_AddNumberToObject(a, "cached_tokens", (double)ev->cached_tokens);
    if (pt >= 0)
        cJSON_AddNumberToObject(a, "prompt_tokens", (double)pt);
    else
        cJSON_AddNullToObject(a, "prompt_tokens");
    if (ct >= 0)
        cJSON_AddNumberToObject(a, "completion_tokens", (double)ct);
    else
        cJSON_AddNullToObject(a, "completion_tokens");
    cJSON_AddNumberToObject(a, "cost_usd", round_usd(cost));
    cJSON_AddNumberToObject(a, "latency_ms", (double)ev->latency_ms);
    cJSON_AddItemToArray(t->attempts, a);
    t->cur = a;
    return a;
}

/*
 * The verdict on an answer that never reached the validators (a truncated
 * answer, a failed call). The message is borrowed, not capped like a
 * validator's: it is the call's own one-line error.
 */
static void set_failed(cJSON *a, const char *validator, const char *reason, const char *message)
{
    val_verdict v = {.pass = 0, .message = (char *)message};
    snprintf(v.validator, sizeof v.validator, "%s", validator);
    snprintf(v.reason, sizeof v.reason, "%s", reason);
    cJSON_AddItemToObject(a, "verdict", val_verdict_json(&v));
}

/* One transition; its actions are appended to out. */
static void step(wk_task *t, const wk_event *ev, wk_actions *out)
{
    switch (ev->kind) {
    case WK_EV_START: {
        if (t->state != WK__ST_NEW)
            return;
        int first = next_fitting(t, 0, ev->now_ms, out);
        if (first < 0) {
            drop_after(out, 0);
            finish(t, "error", "no tier may take the task (context windows, skip rules)", out);
            return;
        }
        t->tier = first;
        call_or_stop(t, out);
        return;
    }
    case WK_EV_RESPONSE: {
        if (t->state != WK__ST_CALLING)
            return;
        cJSON *a = new_attempt(t, ev, ev->prompt_tokens, ev->completion_tokens);
        if (ev->finish_reason)
            cJSON_AddStringToObject(a, "finish_reason", ev->finish_reason);
        t->answers++;
        free(t->answer);
        t->answer = wk_xstrdup(ev->text ? ev->text : "");
        if (ev->finish_reason && strcmp(ev->finish_reason, "length") == 0) {
            const char *msg = "the answer was cut off at max_tokens";
            set_failed(a, "truncation", "truncated", msg);
            on_failure(t, ev->now_ms, "truncation", "truncated", msg, NULL, out);
            return;
        }
        t->state = WK__ST_VALIDATING;
        push(out, WK_ACT_VALIDATE)->answer = t->answer;
        return;
    }
    case WK_EV_CALL_FAILED: {
        if (t->state != WK__ST_CALLING)
            return;
        if (ev->budget_denied) {
            /* No call was made: nothing to record but the reason. */
            finish(t, "over_budget", ev->error_message ? ev->error_message : "run budget", out);
            return;
        }
        cJSON *a = new_attempt(t, ev, 0, 0);
        const char *reason = ev->error_reason ? ev->error_reason : "call_failed";
        cJSON_AddStringToObject(a, "error", ev->error_message ? ev->error_message : reason);
        set_failed(a, "call", reason, ev->error_message);
        on_failure(t, ev->now_ms, "call", reason, ev->error_message, NULL, out);
        return;
    }
    case WK_EV_LOST_CALL: {
        if (t->state != WK__ST_CALLING)
            return;
        t->cost_usd += ev->lost_cost_usd;
        t->lost_usd += ev->lost_cost_usd;
        /* The same call again, if the budget still holds it with the loss counted. */
        call_or_stop(t, out);
        return;
    }
    case WK_EV_VERDICT: {
        if (t->state != WK__ST_VALIDATING)
            return;
        const val_verdict *v = ev->verdict;
        cJSON_AddItemToObject(t->cur, "verdict", val_verdict_json(v));
        if (v->pass) {
            memcpy(t->label, v->label, sizeof t->label);
            finish(t, "accepted", NULL, out);
        } else
            on_failure(t, ev->now_ms, v->validator, v->reason, v->message, v->evidence, out);
        return;
    }
    }
}

int wk_task_feed(wk_task *t, const wk_event *ev, wk_actions *out)
{
    drop_after(out, 0);
    step(t, ev, out);
    return out->n;
}
