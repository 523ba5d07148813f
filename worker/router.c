/*
 * The task state machine (see router.h). Every transition is here, and each
 * one is a plain function of the task and the event, so the unit tests can
 * walk every path without a network or a sandbox.
 *
 * One task goes: START -> CALL -> RESPONSE -> VALIDATE -> VERDICT, and on a
 * failure either another CALL at the same tier (attempts left), a LOG plus a
 * CALL one tier up, or a FINISH. A truncated answer and a failed call are
 * failures like a validator's and climb the same way.
 *
 * An agree tier asks its listed models in parallel: one feed emits a CALL
 * per model (a round, each with its vote index), the outcomes are held as
 * they come in any order, and only when the last is in are they voted on,
 * in the order of agree.models, so a rerun fed from the journal takes the
 * same path. The task never finishes with a call of its round still out.
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
#include "policy.h"
#include "validators/testlog.h"
#include "validators/val.h"

/* Costs are reported to the nano-dollar so sums of lines match the totals. */
static double round_usd(double v)
{
    return round(v * 1e9) / 1e9;
}

/* ---- classify tiers: votes and confidence ---------------------------------- */

/* Answers a tier asks for one label: each listed model (or the tier's own) `samples` times. */
static int tier_votes(const wk_tier *tr)
{
    return (tr->nagree > 0 ? tr->nagree : 1) * (tr->samples > 1 ? tr->samples : 1);
}

/* 1 when a passing answer at this tier is not enough: it votes, or its confidence is checked. */
static int tier_doubts(const wk_tier *tr)
{
    return tier_votes(tr) > 1 || tr->confidence != WK_CONF_NONE;
}

/* The model asked for answer i of the tier's vote: each model, `samples` times in a row. */
static const wk_model *vote_model(const wk_tier *tr, int i)
{
    if (tr->nagree <= 0)
        return tr->model;
    int per = tr->samples > 1 ? tr->samples : 1;
    int k = i / per;
    return tr->agree[k < tr->nagree ? k : tr->nagree - 1];
}

/* 1 when the tier asks its listed models in parallel, one call each (a round). */
static int tier_rounds(const wk_tier *tr)
{
    return tr->nagree > 1;
}

/* A new vote: at a new tier, on a retry, after a failure. */
static void vote_reset(wk_task *t)
{
    t->asked = 0;
    t->inflight = 0;
    t->call_vote = 0;
    for (int i = 0; i < t->ncalls; i++)
        wk__held_clear(&t->call[i].held);
    cJSON_Delete(t->votes);
    t->votes = NULL;
    cJSON_Delete(t->pending);
    t->pending = NULL;
    free(t->logprobs_text);
    free(t->logprobs);
    t->logprobs_text = NULL;
    t->logprobs = NULL;
}

/*
 * Keeps the newest answer's tokens as one text with, per byte, the logprob
 * of the token that starts there (NAN inside a token), so the label's
 * tokens can be found by where the label sits in the text.
 */
static void keep_logprobs(wk_task *t, const cJSON *lp)
{
    free(t->logprobs_text);
    free(t->logprobs);
    t->logprobs_text = NULL;
    t->logprobs = NULL;
    if (!cJSON_IsArray(lp))
        return;
    size_t n = 0;
    const cJSON *tok;
    cJSON_ArrayForEach(tok, lp)
    {
        const char *s = wk_jstr(tok, "token");
        n += s ? strlen(s) : 0;
    }
    char *text = wk_xmalloc(n + 1);
    double *per = wk_xmalloc((n + 1) * sizeof *per);
    size_t at = 0;
    cJSON_ArrayForEach(tok, lp)
    {
        const char *s = wk_jstr(tok, "token");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(tok, "logprob");
        size_t k = s ? strlen(s) : 0;
        for (size_t i = 0; i < k; i++)
            per[at + i] = i ? NAN : cJSON_IsNumber(l) ? l->valuedouble : 0;
        memcpy(text + at, s ? s : "", k);
        at += k;
    }
    text[at] = '\0';
    t->logprobs_text = text;
    t->logprobs = per;
}

/*
 * The probability of `label` in the newest answer: the product over the
 * tokens that spell it (exp of their logprobs' sum); -1 when the answer
 * came without logprobs or the label cannot be found in its tokens.
 */
static double label_logprob_conf(const wk_task *t, const char *label)
{
    const cJSON *labels;
    const char *path;
    char why[256];
    val_label_parse_out p;
    if (!t->logprobs_text ||
        val_label_set(t->schema, t->cascade->label_field, &labels, &path, why, sizeof why) < 0 ||
        val_label_parse(t->logprobs_text, labels, path, &p) < 0 || strcmp(p.label, label) != 0)
        return -1;
    /* The tokens that overlap the label: from the one holding its first byte on. */
    size_t from = p.at, end = p.at + strlen(label);
    while (from > 0 && isnan(t->logprobs[from]))
        from--;
    double sum = 0;
    for (size_t i = from; i < end; i++)
        if (!isnan(t->logprobs[i]))
            sum += t->logprobs[i];
    return exp(sum);
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

/* Writes v as n digits at p, zero-padded. */
static void digits(char *p, int n, long v)
{
    while (n-- > 0) {
        p[n] = (char)('0' + v % 10);
        v /= 10;
    }
}

static void add_iso_ts(cJSON *o, int64_t ms)
{
    char buf[40];
    if (ms >= 0 && ms < 253402300800000) { /* years 1970 to 9999: no gmtime_r, no strftime */
        /* Days to a civil date (Howard Hinnant's days_from_civil, inverted). */
        long days = (long)(ms / 86400000), in_day = (long)(ms % 86400000);
        long z = days + 719468, era = z / 146097, doe = z - era * 146097;
        long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
        long d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
        long y = yoe + era * 400 + (m <= 2);
        memcpy(buf, "0000-00-00T00:00:00.000Z", 25);
        digits(buf, 4, y);
        digits(buf + 5, 2, m);
        digits(buf + 8, 2, d);
        digits(buf + 11, 2, in_day / 3600000);
        digits(buf + 14, 2, in_day / 60000 % 60);
        digits(buf + 17, 2, in_day / 1000 % 60);
        digits(buf + 20, 3, in_day % 1000);
    } else {
        time_t s = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&s, &tm);
        size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, sizeof buf - n, ".%03dZ", (int)(ms % 1000));
    }
    wk_json_add_str(o, "ts", buf);
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
    wk_json_add_num(o, "tier", tier);
    wk_json_add_str(o, "model", t->cascade->tiers[tier].model->name);
    return o;
}

/*
 * One line of the escalation log: the task went from tier `from` to `to`.
 * Every climb has this shape, whether the answer failed, an admission rule
 * skipped a tier or the similar start passed over one.
 */
static cJSON *climb_line(const wk_task *t, int from, int to, const char *validator,
                         const char *reason, const char *evidence, int64_t now)
{
    cJSON *l = cJSON_CreateObject();
    add_iso_ts(l, now);
    wk_json_add_str(l, "id", t->id);
    cJSON_AddItemToObject(l, "from", tier_obj(t, from));
    cJSON_AddItemToObject(l, "to", tier_obj(t, to));
    wk_json_add_str(l, "validator", validator);
    wk_json_add_str(l, "reason", reason);
    wk_json_add_str(l, "evidence", evidence);
    wk_json_add_num(l, "cost_usd", round_usd(t->cost_usd));
    return l;
}

/* The names after "label: " in a note, up to the next "; ". */
static void note_names(cJSON *arr, const char *note, const char *label)
{
    const char *p = note ? strstr(note, label) : NULL;
    if (!p)
        return;
    p += strlen(label);
    const char *end = strstr(p, "; ");
    if (!end)
        end = p + strlen(p);
    while (p < end) {
        const char *comma = strstr(p, ", ");
        const char *e = comma && comma < end ? comma : end;
        if (e > p) {
            char *name = wk_xstrndup(p, (size_t)(e - p));
            cJSON_AddItemToArray(arr, cJSON_CreateString(name));
            free(name);
        }
        p = e == end ? end : e + 2;
    }
}

/*
 * A patch task's tests in its result: the accepted verdict's counts (from
 * its note when the verdict came back from the journal without them), the
 * flaky tests found at base and the pre-existing failures the patch left.
 */
static void add_tests(const wk_task *t, cJSON *r, int accepted)
{
    if (!t->baseline)
        return;
    val_test_counts c = t->tests;
    const char *note = t->tests_note;
    const char *counts = note ? strstr(note, "tests: passed ") : NULL;
    if (accepted && counts && !c.passed && !c.flaky && !c.preexisting)
        sscanf(counts, "tests: passed %d, flaky %d, pre-existing %d", &c.passed, &c.flaky,
               &c.preexisting);
    if (!accepted)
        c = (val_test_counts){.flaky = t->baseline->nflaky};
    cJSON *o = cJSON_CreateObject();
    wk_json_add_num(o, "passed", c.passed);
    wk_json_add_num(o, "flaky", c.flaky);
    wk_json_add_num(o, "preexisting", c.preexisting);
    cJSON *fl = cJSON_AddArrayToObject(o, "flaky_tests");
    for (int i = 0; i < t->baseline->nflaky; i++)
        cJSON_AddItemToArray(fl, cJSON_CreateString(t->baseline->flaky[i]));
    cJSON *pre = cJSON_AddArrayToObject(o, "preexisting_tests");
    if (accepted)
        note_names(pre, note, "pre-existing failures: ");
    cJSON *fa = cJSON_AddArrayToObject(o, "failing_at_base");
    for (int i = 0; i < t->baseline->nfailing; i++)
        cJSON_AddItemToArray(fa, cJSON_CreateString(t->baseline->failing[i]));
    wk_json_add_num(o, "baseline_runs", t->baseline_runs);
    wk_json_add_num(o, "baseline_ms", (double)t->baseline_ms);
    cJSON_AddItemToObject(r, "tests", o);
}

static void finish(wk_task *t, const char *status, const char *reason, wk_actions *out)
{
    cJSON *r = cJSON_CreateObject();
    int accepted = strcmp(status, "accepted") == 0;
    wk_json_add_str(r, "id", t->id);
    wk_json_add_str(r, "status", status);
    wk_json_add_str(r, "cascade", t->cascade->name);
    if (t->data_class)
        wk_json_add_str(r, "data_class", t->data_class);
    if (t->now_ms > 0) /* when it finished: `drift` windows results by it */
        add_iso_ts(r, t->now_ms);
    if (accepted) {
        wk_json_add_num(r, "tier", t->tier);
        wk_json_add_str(r, "model", t->cascade->tiers[t->tier].model->name);
    } else {
        cJSON_AddNullToObject(r, "tier");
        cJSON_AddNullToObject(r, "model");
    }
    wk_json_add_num(r, "cost_usd", round_usd(t->cost_usd));
    cJSON_AddItemToObject(r, "attempts", t->attempts);
    t->attempts = NULL;
    if (t->is_patch)
        add_tests(t, r, accepted);
    if (accepted) {
        char *code = t->is_patch ? val_extract_diff(t->answer) : val_extract_code(t->answer);
        wk_json_add_str(r, "answer", code);
        free(code);
    } else if (t->best) {
        wk_json_add_str(r, "answer", t->best);
    } else {
        cJSON_AddNullToObject(r, "answer");
    }
    if (reason)
        wk_json_add_str(r, "reason", reason);
    if (t->start_note) {
        cJSON_AddItemToObject(r, "start", t->start_note);
        t->start_note = NULL;
    }
    /* A classify task: the label accepted, the gold one, and whether they match. */
    if (accepted && t->label[0])
        wk_json_add_str(r, "label", t->label);
    if (t->gold) {
        wk_json_add_str(r, "gold", t->gold);
        if (accepted && t->label[0])
            cJSON_AddBoolToObject(r, "correct", strcmp(t->label, t->gold) == 0);
    }
    t->state = WK__ST_DONE;
    push(out, WK_ACT_FINISH)->line = r;
}

/*
 * 1 (and the task finished over_budget) unless the task's budget holds the
 * worst case (the whole prompt plus max_tokens of output) of the next calls
 * at `tier`: an agree tier's round is reserved whole, every listed model's
 * call, before any of them is sent.
 */
static int over_budget(wk_task *t, int tier, wk_actions *out)
{
    if (t->budget_usd < 0)
        return 0;
    const wk_tier *tr = &t->cascade->tiers[tier];
    long est = estimate_prompt_tokens(t->messages);
    int round = tier_rounds(tr) && t->asked == 0;
    double worst = 0;
    /* At the tier's lane: a batch tier's worst case is at the batch price. */
    for (int k = 0; k < (round ? tr->nagree : 1); k++)
        worst += wk_cost_worst_at(round ? tr->agree[k] : vote_model(tr, t->asked), tr->lane, est);
    if (t->cost_usd + worst <= t->budget_usd)
        return 0;
    char *why =
        round ? wk_xasprintf("task budget $%.6g: spent $%.6g, the next %d calls "
                             "(agree.models, asked together) may cost up to $%.6g",
                             t->budget_usd, t->cost_usd, tr->nagree, worst)
              : wk_xasprintf("task budget $%.6g: spent $%.6g, the next call to %s may "
                             "cost up to $%.6g",
                             t->budget_usd, t->cost_usd, vote_model(tr, t->asked)->name, worst);
    finish(t, "over_budget", why, out);
    free(why);
    return 1;
}

/* One CALL of the current tier: vote index `vote`, to m, for n answers. */
static void push_call(wk_task *t, const wk_model *m, int vote, int n, wk_actions *out)
{
    const wk_tier *tr = &t->cascade->tiers[t->tier];
    wk_action *a = push(out, WK_ACT_CALL);
    a->model = m;
    /* Only what the task's data class may reach; the tier's admission checked there is one. */
    wk_deployments *d = &t->call[vote >= 0 && vote < t->ncalls ? vote : 0].deps;
    wk_policy_deployments(&t->cascade->policy, t->data_class, m, d);
    a->deps = d;
    a->logprobs = tr->confidence == WK_CONF_LOGPROBS;
    a->n = n;
    a->vote = vote;
    a->messages = t->messages;
    a->est_prompt_tokens = estimate_prompt_tokens(t->messages);
    a->lane = tr->lane;
}

static void call_or_stop(wk_task *t, wk_actions *out)
{
    const wk_tier *tr = &t->cascade->tiers[t->tier];
    if (over_budget(t, t->tier, out))
        return;
    t->state = WK__ST_CALLING;
    /* Samples still wanted of this model: one call with n, where the API takes it. */
    int per = tr->samples > 1 ? tr->samples : 1;
    if (tier_rounds(tr) && t->asked == 0) {
        /* A round: every listed model at once, each for all its samples. */
        for (int k = 0; k < tr->nagree; k++)
            wk__held_clear(&t->call[k].held);
        t->inflight = tr->nagree;
        for (int k = 0; k < tr->nagree; k++)
            push_call(t, tr->agree[k], k, per, out);
        return;
    }
    /* One call: a tier without a round, or more samples of a model whose API gave fewer. */
    t->call_vote = tier_rounds(tr) ? t->asked / per : 0;
    push_call(t, vote_model(tr, t->asked), t->call_vote, per - t->asked % per, out);
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
 * The data policy's admission of a tier: NULL when the task's data class (if
 * any) may reach a deployment of every model the tier asks, else why not.
 * Nothing is sent to a tier it refuses, not even a vote.
 */
static char *policy_blocks(const wk_task *t, int tier)
{
    if (!t->data_class)
        return NULL;
    const wk_tier *tr = &t->cascade->tiers[tier];
    if (!wk_policy_class(&t->cascade->policy, t->data_class))
        return wk_xasprintf("data class \"%s\" has no entry in the data_policy of cascade %s",
                            t->data_class, t->cascade->name);
    for (int i = 0; i < (tr->nagree > 0 ? tr->nagree : 1); i++) {
        const wk_model *m = tr->nagree > 0 ? tr->agree[i] : tr->model;
        wk_deployments d;
        wk_policy_deployments(&t->cascade->policy, t->data_class, m, &d);
        if (d.n > 0)
            continue;
        wk_buf b;
        wk_buf_init(&b, 4096);
        wk_buf_appendf(&b, "data class \"%s\" may reach no deployment of model %s (", t->data_class,
                       m->name);
        for (int f = -1; f < m->nfallbacks; f++) {
            const wk_provider *p = (f < 0 ? m : m->fallbacks[f])->provider;
            wk_buf_appendf(&b, "%s%s: %s", f < 0 ? "" : ", ", p->name,
                           p->data ? p->data : "no data label");
        }
        wk_buf_appendf(&b, ")");
        char *why = wk_xstrdup(b.buf);
        wk_buf_release(&b);
        return why;
    }
    return NULL;
}

/*
 * 1 when an admission rule refuses tier k: the data policy (its reason in
 * *denied), a skip rule (*rule) or the context window (both NULL). The
 * caller frees both.
 */
static int refused(const wk_task *t, int k, char **denied, char **rule)
{
    *denied = policy_blocks(t, k);
    *rule = *denied ? NULL : skip_rule_holds(t, k);
    return *denied || *rule || !tier_fits(t, k);
}

/*
 * The first tier at or after `from` that may take the task; -1 if none. Each
 * tier skipped on the way is staged as a LOG action (any number of them).
 * A tier is taken when no admission predicate refuses it: the data policy,
 * the skip rules, the context window.
 */
static int next_fitting(wk_task *t, int from, int64_t now, wk_actions *out)
{
    for (int k = from; k < t->cascade->ntiers; k++) {
        char *denied, *rule;
        if (!refused(t, k, &denied, &rule))
            return k;
        /* A skipped tier is logged like a climb: nothing was sent to it. */
        if (k + 1 < t->cascade->ntiers)
            push(out, WK_ACT_LOG)->line =
                climb_line(t, k, k + 1,
                           denied ? "policy"
                           : rule ? "rule"
                                  : "context",
                           denied ? "data_policy"
                           : rule ? "skip_rule"
                                  : "context_too_small",
                           denied ? denied
                           : rule ? rule
                                  : "the prompt plus max_tokens exceeds the model's context window",
                           now);
        free(denied);
        free(rule);
    }
    return -1;
}

static void add_feedback(wk_task *t, int feedback, const char *validator, const char *reason,
                         const char *message, const char *evidence)
{
    if (!feedback || !t->answer)
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
    wk_json_add_str(a, "role", "assistant");
    wk_json_add_str(a, "content", ans);
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
    wk_json_add_str(u, "role", "user");
    wk_json_add_str(u, "content", b.buf);
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

static void on_failure(wk_task *t, int64_t now, int feedback, const char *validator,
                       const char *reason, const char *message, const char *evidence,
                       wk_actions *out)
{
    if (t->answer) {
        /* The best failed answer is the one that got furthest down the chain. */
        int rank = rank_of(t, validator);
        if (rank >= t->best_rank) {
            free(t->best);
            t->best = t->is_patch ? val_extract_diff(t->answer) : val_extract_code(t->answer);
            t->best_rank = rank;
        }
    }
    add_feedback(t, feedback, validator, reason, message, evidence);
    free(t->answer);
    t->answer = NULL;
    vote_reset(t);

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
        /*
         * Tiers were left but none may take the task: said in the result, since
         * next_fitting logs a skip only as a climb to a tier after it.
         */
        char *last =
            from + 1 < t->cascade->ntiers ? skip_rule_holds(t, t->cascade->ntiers - 1) : NULL;
        char *why = t->answers
                        ? wk_xasprintf("every tier failed; last: %s %s%s%s", validator, reason,
                                       last ? "; the last tier skipped: " : "", last ? last : "")
                        : wk_xasprintf("no tier gave an answer; last: %s", reason);
        free(last);
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
    char *ev = wk_head_lines(evidence ? evidence : (message ? message : ""),
                             WK_FEEDBACK_EVIDENCE_LINES, 1000);
    out->v[mark].line = climb_line(t, from, from + 1, validator, reason, ev, now);
    free(ev);
    t->tier = next;
    t->tries = 0;
    call_or_stop(t, out);
}

static cJSON *new_attempt(wk_task *t, const wk_event *ev, long pt, long ct)
{
    const wk_tier *tr = &t->cascade->tiers[t->tier];
    const wk_model *m = vote_model(tr, t->asked);
    const wk_model *served = ev->served ? ev->served : m;
    /*
     * Usage the provider left out, garbled or inflated is charged at its worst
     * (cost.h); a recording's own cost (replay) is what the call cost.
     */
    int estimated = 0;
    /* Priced at the lane the call ran on (lanes.h): a flex call moved to sync pays sync. */
    int ran = !ev->to_sync                ? tr->lane
              : tr->lane == WK_LANE_FLEX  ? WK_RAN_FLEX_SYNC
              : tr->lane == WK_LANE_BATCH ? WK_RAN_BATCH_SYNC
                                          : tr->lane;
    double cost = ev->from_cache ? 0
                  : ev->has_cost
                      ? ev->cost_usd
                      : wk_cost_charged_at(served, ran, estimate_prompt_tokens(t->messages), pt, ct,
                                           ev->cached_tokens, &estimated);
    t->cost_usd += cost;
    cJSON *a = cJSON_CreateObject();
    wk_json_add_num(a, "tier", t->tier);
    wk_json_add_str(a, "model", m->name);
    /* A fallback deployment is the same model elsewhere; say which one answered. */
    if (served != m)
        wk_json_add_str(a, "deployment", served->name);
    if (ev->from_cache)
        cJSON_AddBoolToObject(a, "cached", 1);
    if (ran != WK_LANE_SYNC) /* sync attempts read as they always did */
        wk_json_add_str(a, "lane", wk_lane_name(ran));
    if (ev->batch_id)
        wk_json_add_str(a, "batch_id", ev->batch_id);
    if (ev->has_cost && !ev->from_cache) /* the recording's cost, not tokens x price */
        cJSON_AddBoolToObject(a, "cost_recorded", 1);
    if (t->lost_usd > 0) {
        /* Already in the task's cost: the same call, sent before a crash. */
        wk_json_add_num(a, "lost_cost_usd", round_usd(t->lost_usd));
        t->lost_usd = 0;
    }
    wk_json_add_num(a, "retries", ev->retries);
    wk_json_add_num(a, "fallbacks", ev->fallbacks);
    if (ev->cached_tokens > 0)
        wk_json_add_num(a, "cached_tokens", (double)ev->cached_tokens);
    if (estimated)
        cJSON_AddBoolToObject(a, "usage_estimated", 1);
    if (pt >= 0 && !(estimated & WK_COST_EST_PROMPT))
        wk_json_add_num(a, "prompt_tokens", (double)pt);
    else
        cJSON_AddNullToObject(a, "prompt_tokens");
    if (ct >= 0 && !(estimated & WK_COST_EST_COMPLETION))
        wk_json_add_num(a, "completion_tokens", (double)ct);
    else
        cJSON_AddNullToObject(a, "completion_tokens");
    wk_json_add_num(a, "cost_usd", round_usd(cost));
    wk_json_add_num(a, "latency_ms", (double)ev->latency_ms);
    if (tier_votes(tr) > 1) /* which answer of the tier's vote this is */
        wk_json_add_num(a, "vote", t->asked);
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

static int per_model(const wk_tier *tr)
{
    return tr->samples > 1 ? tr->samples : 1;
}

/*
 * The next answer of a call that asked for n: an attempt of its own at no
 * cost (the call's attempt carries the usage of all its answers), validated
 * like any answer.
 */
static void next_choice(wk_task *t, int64_t now, wk_actions *out)
{
    const wk_tier *tr = &t->cascade->tiers[t->tier];
    cJSON *c = cJSON_DetachItemFromArray(t->pending, 0);
    const char *text = wk_jstr(c, "text"), *fr = wk_jstr(c, "finish_reason");
    cJSON *a = cJSON_CreateObject();
    wk_json_add_num(a, "tier", t->tier);
    wk_json_add_str(a, "model", vote_model(tr, t->asked)->name);
    cJSON_AddBoolToObject(a, "same_call", 1);
    wk_json_add_num(a, "cost_usd", 0);
    wk_json_add_num(a, "vote", t->asked);
    if (fr)
        wk_json_add_str(a, "finish_reason", fr);
    cJSON_AddItemToArray(t->attempts, a);
    t->cur = a;
    t->answers++;
    free(t->answer);
    t->answer = wk_xstrdup(text ? text : "");
    keep_logprobs(t, cJSON_GetObjectItemCaseSensitive(c, "logprobs"));
    int cut = fr && strcmp(fr, "length") == 0; /* fr lives in c */
    cJSON_Delete(c);
    if (cut) {
        const char *msg = "the answer was cut off at max_tokens";
        set_failed(a, "truncation", "truncated", msg);
        on_failure(t, now, t->cascade->feedback, "truncation", "truncated", msg, NULL, out);
        return;
    }
    t->state = WK__ST_VALIDATING;
    wk_action *v = push(out, WK_ACT_VALIDATE);
    v->answer = t->answer;
    v->same_call = 1;
    v->vote = tier_rounds(tr) ? (t->asked / per_model(tr)) : 0;
}

/* A vote on the newest answer (below); v NULL: it failed its checks, a vote for no label. */
static void vote(wk_task *t, const val_verdict *v, int64_t now, wk_actions *out);

/*
 * The answer of call k of the round, made the newest (its attempt was made
 * when the round came in) and sent to the validators like any answer.
 */
static void take_held(wk_task *t, int k, int64_t now, wk_actions *out)
{
    wk__held *h = &t->call[k].held;
    t->cur = h->attempt;
    t->answers++;
    free(t->answer);
    t->answer = wk_xstrdup(h->ev.text ? h->ev.text : "");
    keep_logprobs(t, h->logprobs);
    cJSON_Delete(t->pending);
    t->pending = h->choices;
    h->choices = NULL;
    if (h->ev.finish_reason && strcmp(h->ev.finish_reason, "length") == 0) {
        /* Cut off: a vote for no label, as a failed check of a round's answer is. */
        set_failed(t->cur, "truncation", "truncated", "the answer was cut off at max_tokens");
        vote(t, NULL, now, out);
        return;
    }
    t->state = WK__ST_VALIDATING;
    wk_action *v = push(out, WK_ACT_VALIDATE);
    v->answer = t->answer;
    v->vote = k;
}

/* Keeps the outcome of call ev->vote of the round; 1 when it was the last one out. */
static int hold(wk_task *t, const wk_event *ev)
{
    const wk_tier *tr = &t->cascade->tiers[t->tier];
    if (ev->vote < 0 || ev->vote >= tr->nagree || t->call[ev->vote].held.in)
        return 0; /* not a call of this round */
    wk__held *h = &t->call[ev->vote].held;
    h->in = 1;
    h->ev = *ev;
    h->ev.text = ev->text ? wk_xstrdup(ev->text) : NULL;
    h->ev.finish_reason = ev->finish_reason ? wk_xstrdup(ev->finish_reason) : NULL;
    h->ev.error_reason = ev->error_reason ? wk_xstrdup(ev->error_reason) : NULL;
    h->ev.error_message = ev->error_message ? wk_xstrdup(ev->error_message) : NULL;
    h->logprobs = ev->logprobs ? cJSON_Duplicate(ev->logprobs, 1) : NULL;
    h->choices = ev->choices ? cJSON_Duplicate(ev->choices, 1) : NULL;
    h->ev.logprobs = h->ev.choices = NULL; /* take_held reads them from h */
    h->ev.verdict = NULL;
    h->ev.prep = NULL;
    return --t->inflight == 0;
}

/*
 * The round is in. Every call made gets its attempt now, in the order of
 * agree.models (so a rerun from the journal lists them alike), all paid;
 * then the first call that failed decides as a failed call does alone, or
 * the answers are voted on one by one from the first.
 */
static void round_done(wk_task *t, int64_t now, wk_actions *out)
{
    const wk_tier *tr = &t->cascade->tiers[t->tier];
    for (int k = 0; k < tr->nagree; k++) {
        wk__held *h = &t->call[k].held;
        if (h->refused || h->ev.budget_denied)
            continue; /* not sent (again): nothing to list */
        t->asked = k * per_model(tr);
        int ok = h->ev.kind == WK_EV_RESPONSE;
        cJSON *a =
            new_attempt(t, &h->ev, ok ? h->ev.prompt_tokens : 0, ok ? h->ev.completion_tokens : 0);
        if (ok && h->ev.finish_reason)
            wk_json_add_str(a, "finish_reason", h->ev.finish_reason);
        if (!ok) {
            const char *reason = h->ev.error_reason ? h->ev.error_reason : "call_failed";
            wk_json_add_str(a, "error", h->ev.error_message ? h->ev.error_message : reason);
            set_failed(a, "call", reason, h->ev.error_message);
        }
        h->attempt = a;
    }
    t->asked = 0;
    for (int k = 0; k < tr->nagree; k++) {
        wk__held *h = &t->call[k].held;
        if (h->ev.kind == WK_EV_RESPONSE)
            continue;
        /* on_failure clears the round: what it reads of it is copied first. */
        char *reason = wk_xstrdup(h->ev.error_reason ? h->ev.error_reason : "call_failed");
        char *msg = h->ev.error_message ? wk_xstrdup(h->ev.error_message) : NULL;
        if (h->refused || h->ev.budget_denied) {
            finish(t, "over_budget", msg ? msg : "run budget", out);
        } else {
            t->cur = h->attempt;
            on_failure(t, now, t->cascade->feedback, "call", reason, msg, NULL, out);
        }
        free(reason);
        free(msg);
        return;
    }
    take_held(t, 0, now, out);
}

/*
 * The label of a passing verdict, and the answer's own confidence. A verdict
 * the journal kept (a resumed run) has lost both: the label validator is
 * deterministic, so they are read again from the answer.
 */
static void label_of(const wk_task *t, const val_verdict *v, char label[VAL_LABEL_MAX],
                     double *score)
{
    snprintf(label, VAL_LABEL_MAX, "%s", v->label);
    *score = v->score;
    const cJSON *labels;
    const char *path;
    char why[256];
    val_label_parse_out p;
    if (label[0] || !t->answer || !rank_of(t, "label") ||
        val_label_set(t->schema, t->cascade->label_field, &labels, &path, why, sizeof why) < 0 ||
        val_label_parse(t->answer, labels, path, &p) < 0)
        return;
    snprintf(label, VAL_LABEL_MAX, "%s", p.label);
    *score = p.confidence;
}

/*
 * Replaces the newest attempt's passing verdict by the tier's doubt (the
 * label read stays on it), so the attempt reads as the reason of the climb.
 */
static void doubt_verdict(wk_task *t, const char *validator, const char *reason, const char *msg,
                          const char *label)
{
    val_verdict v = {.pass = 0, .message = (char *)msg, .score = -1};
    snprintf(v.validator, sizeof v.validator, "%s", validator);
    snprintf(v.reason, sizeof v.reason, "%s", reason);
    snprintf(v.label, sizeof v.label, "%s", label);
    cJSON_ReplaceItemInObjectCaseSensitive(t->cur, "verdict", val_verdict_json(&v));
}

/*
 * A passing answer at a tier with signals of doubt: one more vote. When the
 * vote is complete, the label with the most votes is accepted if it has at
 * least vote_min of them and, when the tier checks confidence, its mean
 * confidence over those votes reaches min_confidence; otherwise the tier
 * fails with reason disagreement or low_confidence (feedback only when the
 * cascade asks for it: the next tier should judge afresh).
 */
static void vote(wk_task *t, const val_verdict *v, int64_t now, wk_actions *out)
{
    const wk_tier *tr = &t->cascade->tiers[t->tier];
    char label[VAL_LABEL_MAX] = "";
    double conf = -1, self = -1;
    if (v)
        label_of(t, v, label, &self);
    if (tr->confidence == WK_CONF_SELF)
        conf = self;
    else if (tr->confidence == WK_CONF_LOGPROBS && label[0])
        conf = label_logprob_conf(t, label);
    if (conf >= 0)
        wk_json_add_num(t->cur, "confidence", round(conf * 1e6) / 1e6);
    if (!t->votes)
        t->votes = cJSON_CreateArray();
    cJSON *o = cJSON_CreateObject();
    wk_json_add_str(o, "model", vote_model(tr, t->asked)->name);
    wk_json_add_str(o, "label", label);
    wk_json_add_num(o, "confidence", conf);
    wk_json_add_str(o, "answer", t->answer ? t->answer : "");
    cJSON_AddItemToArray(t->votes, o);
    t->asked++;
    int need = tier_votes(tr);
    if (t->asked < need && cJSON_GetArraySize(t->pending) > 0 && t->asked % per_model(tr)) {
        next_choice(t, now, out); /* another answer of the same call */
        return;
    }
    if (t->asked < need && tier_rounds(tr) && t->asked % per_model(tr) == 0 &&
        t->call[t->asked / per_model(tr)].held.in) {
        take_held(t, t->asked / per_model(tr), now, out); /* the next model's, already in */
        return;
    }
    if (t->asked < need) {
        call_or_stop(t, out); /* the next model, or the same one again */
        return;
    }

    /* The label with the most votes; the first to get there on a tie. An empty label is none. */
    const char *best = NULL;
    int best_n = 0;
    const cJSON *a, *b;
    cJSON_ArrayForEach(a, t->votes)
    {
        const char *l = wk_jstr(a, "label");
        int n = 0;
        cJSON_ArrayForEach(b, t->votes) n += l && *l && strcmp(l, wk_jstr(b, "label")) == 0;
        if (n > best_n)
            best = l, best_n = n;
    }
    wk_buf ev;
    wk_buf_init(&ev, VAL_EVIDENCE_MAX);
    cJSON_ArrayForEach(a, t->votes)
    {
        double c = cJSON_GetObjectItemCaseSensitive(a, "confidence")->valuedouble;
        const char *l = wk_jstr(a, "label");
        if (!*l) /* an answer of the round that failed its checks: a vote for no label */
            wk_buf_appendf(&ev, "%s: (no label)\n", wk_jstr(a, "model"));
        else if (c >= 0)
            wk_buf_appendf(&ev, "%s: %s (confidence %.3f)\n", wk_jstr(a, "model"), l, c);
        else
            wk_buf_appendf(&ev, "%s: %s\n", wk_jstr(a, "model"), l);
    }
    int min = tr->vote_min > 0 ? tr->vote_min : 1;
    char *msg = NULL;
    if (!best || best_n < min) {
        msg = wk_xasprintf("the answers disagree: %d of %d for \"%s\", %d needed", best_n, need,
                           best ? best : "", min);
        doubt_verdict(t, "agree", "disagreement", msg, label);
        on_failure(t, now, t->cascade->doubt_feedback, "agree", "disagreement", msg, ev.buf, out);
        goto cleanup;
    }
    double sum = 0;
    int known = 1;
    const char *answer = NULL;
    cJSON_ArrayForEach(a, t->votes)
    {
        if (strcmp(wk_jstr(a, "label"), best) != 0)
            continue;
        double c = cJSON_GetObjectItemCaseSensitive(a, "confidence")->valuedouble;
        known &= c >= 0;
        sum += c;
        if (!answer)
            answer = wk_jstr(a, "answer");
    }
    double mean = sum / best_n;
    if (tr->confidence != WK_CONF_NONE && tr->min_confidence >= 0 &&
        (!known || mean < tr->min_confidence)) {
        const char *how = tr->confidence == WK_CONF_SELF ? "the answer's own" : "logprobs";
        msg = known ? wk_xasprintf("label \"%s\" has confidence %.3f (%s), below %.3g", best, mean,
                                   how, tr->min_confidence)
                    : wk_xasprintf("label \"%s\" has no confidence (%s): none came with the "
                                   "answer",
                                   best, how);
        doubt_verdict(t, "confidence", "low_confidence", msg, label);
        on_failure(t, now, t->cascade->doubt_feedback, "confidence", "low_confidence", msg, ev.buf,
                   out);
        goto cleanup;
    }
    snprintf(t->label, sizeof t->label, "%s", best);
    free(t->answer);
    t->answer = wk_xstrdup(answer);
    if (need > 1)
        wk_json_add_num(t->cur, "votes_for_label", best_n);
    finish(t, "accepted", NULL, out);
cleanup:
    free(msg);
    wk_buf_release(&ev);
}

/*
 * A call of the round lost in a crash: sent again alone if the task budget
 * holds it with the loss counted; else it is held as refused, and the task
 * ends over_budget once the rest of the round is in.
 */
static void lost_in_round(wk_task *t, const wk_event *ev, wk_actions *out)
{
    const wk_tier *tr = &t->cascade->tiers[t->tier];
    int k = ev->vote;
    if (k < 0 || k >= tr->nagree || t->call[k].held.in)
        return;
    const wk_model *m = tr->agree[k];
    double worst = wk_cost_worst(m, estimate_prompt_tokens(t->messages));
    if (t->budget_usd < 0 || t->cost_usd + worst <= t->budget_usd) {
        push_call(t, m, k, per_model(tr), out);
        return;
    }
    char *why = wk_xasprintf("task budget $%.6g: spent $%.6g, the next call to %s may "
                             "cost up to $%.6g",
                             t->budget_usd, t->cost_usd, m->name, worst);
    wk_event refused = {
        .kind = WK_EV_CALL_FAILED, .vote = k, .error_reason = "task_budget", .error_message = why};
    int last = hold(t, &refused);
    t->call[k].held.refused = 1;
    if (last)
        round_done(t, ev->now_ms, out);
    free(why);
}

/*
 * The semantic start tier: from `first` (the first tier the cascade's rules
 * take), the task climbs to the advised tier at once, each tier passed over
 * logged as a climb with reason similar_history; a tier the rules refuse at
 * or above the advice is passed over as next_fitting does. The advice never
 * overrides the rules: when no tier from the advised one up takes the task,
 * it starts at `first` and nothing is logged for the advice.
 */
static int similar_start(wk_task *t, int first, int64_t now, wk_actions *out)
{
    int want = t->start_tier;
    if (want <= first || want >= t->cascade->ntiers)
        return first;
    int mark = out->n;
    for (int k = first; k < want; k++) {
        char *denied, *rule;
        int no = refused(t, k, &denied, &rule);
        free(denied);
        free(rule);
        if (no)
            continue; /* refused by the rules anyway: nothing would have been sent there */
        const cJSON *n = t->start_note;
        const cJSON *votes = cJSON_GetObjectItemCaseSensitive(n, "votes");
        const cJSON *nb = cJSON_GetObjectItemCaseSensitive(n, "neighbours");
        const cJSON *hist = cJSON_GetObjectItemCaseSensitive(n, "history");
        char *why = wk_xasprintf("tier %d accepted %d of the task's %d nearest past tasks "
                                 "(of %ld in the cascade's history); tier %d is passed over",
                                 want, cJSON_IsNumber(votes) ? votes->valueint : 0,
                                 cJSON_IsNumber(nb) ? nb->valueint : 0,
                                 cJSON_IsNumber(hist) ? (long)hist->valuedouble : 0L, k);
        push(out, WK_ACT_LOG)->line =
            climb_line(t, k, want, "similar", "similar_history", why, now);
        free(why);
    }
    int s = next_fitting(t, want, now, out);
    if (s < 0) {
        drop_after(out, mark);
        return first;
    }
    return s;
}

/* The first call, at the first tier that may take the task (or the similar start's). */
static void first_call(wk_task *t, int64_t now, wk_actions *out)
{
    int first = next_fitting(t, 0, now, out);
    if (first >= 0)
        first = similar_start(t, first, now, out);
    if (first < 0) {
        drop_after(out, 0);
        /* The data policy refuses every tier: no call could be made, now or on a rerun. */
        char *denied = NULL;
        for (int k = 0; k < t->cascade->ntiers; k++) {
            free(denied);
            denied = policy_blocks(t, k);
            if (!denied)
                break;
        }
        if (denied)
            finish(t, "policy_denied", denied, out);
        else
            finish(t, "error", "no tier may take the task (context windows, skip rules)", out);
        free(denied);
        return;
    }
    t->tier = first;
    vote_reset(t);
    call_or_stop(t, out);
}

/* A patch task's preparation: finish, or set the prompt and make the first call. */
static void on_prepared(wk_task *t, const wk_event *ev, wk_actions *out)
{
    const wk_prep *p = ev->prep;
    t->baseline = wk_xcalloc(1, sizeof *t->baseline);
    if (p->baseline)
        val_baseline_copy(t->baseline, p->baseline);
    t->baseline_ms = p->elapsed_ms;
    t->baseline_runs = p->runs;
    if (p->status == WK_PREP_NOTHING) {
        finish(t, "nothing_to_fix", p->reason ? p->reason : "the tests pass at base", out);
        return;
    }
    if (p->status != WK_PREP_READY || !p->prompt) {
        finish(t, "error", p->reason ? p->reason : "the task could not be prepared", out);
        return;
    }
    /* The user turn was a placeholder; the repository's prompt replaces it. */
    cJSON *user = cJSON_GetArrayItem(t->messages, 1);
    if (user)
        cJSON_ReplaceItemInObjectCaseSensitive(user, "content", cJSON_CreateString(p->prompt));
    first_call(t, ev->now_ms, out);
}

/* One transition; its actions are appended to out. */
static void step(wk_task *t, const wk_event *ev, wk_actions *out)
{
    switch (ev->kind) {
    case WK_EV_START:
        if (t->state != WK__ST_NEW)
            return;
        t->start_tier = ev->start_tier;
        cJSON_Delete(t->start_note);
        t->start_note = ev->start_note ? cJSON_Duplicate(ev->start_note, 1) : NULL;
        t->cost_usd += ev->start_cost_usd > 0 ? ev->start_cost_usd : 0;
        if (t->is_patch) {
            /* The baseline and the prompt come first; PREPARED takes it from there. */
            t->state = WK__ST_PREPARING;
            push(out, WK_ACT_PREPARE);
            return;
        }
        first_call(t, ev->now_ms, out);
        return;
    case WK_EV_PREPARED:
        if (t->state != WK__ST_PREPARING || !ev->prep)
            return;
        on_prepared(t, ev, out);
        return;
    case WK_EV_RESPONSE: {
        if (t->state != WK__ST_CALLING)
            return;
        if (t->inflight > 0) { /* a call of the round: voted when the last is in */
            if (hold(t, ev))
                round_done(t, ev->now_ms, out);
            return;
        }
        cJSON *a = new_attempt(t, ev, ev->prompt_tokens, ev->completion_tokens);
        if (ev->finish_reason)
            wk_json_add_str(a, "finish_reason", ev->finish_reason);
        t->answers++;
        free(t->answer);
        t->answer = wk_xstrdup(ev->text ? ev->text : "");
        keep_logprobs(t, ev->logprobs);
        cJSON_Delete(t->pending);
        t->pending = ev->choices ? cJSON_Duplicate(ev->choices, 1) : NULL;
        if (ev->finish_reason && strcmp(ev->finish_reason, "length") == 0) {
            const char *msg = "the answer was cut off at max_tokens";
            set_failed(a, "truncation", "truncated", msg);
            on_failure(t, ev->now_ms, t->cascade->feedback, "truncation", "truncated", msg, NULL,
                       out);
            return;
        }
        t->state = WK__ST_VALIDATING;
        wk_action *v = push(out, WK_ACT_VALIDATE);
        v->answer = t->answer;
        v->vote = t->call_vote;
        return;
    }
    case WK_EV_CALL_FAILED: {
        if (t->state != WK__ST_CALLING)
            return;
        if (t->inflight > 0) { /* the task ends, or climbs, once the round is in */
            if (hold(t, ev))
                round_done(t, ev->now_ms, out);
            return;
        }
        if (ev->budget_denied) {
            /* No call was made: nothing to record but the reason. */
            finish(t, "over_budget", ev->error_message ? ev->error_message : "run budget", out);
            return;
        }
        cJSON *a = new_attempt(t, ev, 0, 0);
        const char *reason = ev->error_reason ? ev->error_reason : "call_failed";
        wk_json_add_str(a, "error", ev->error_message ? ev->error_message : reason);
        set_failed(a, "call", reason, ev->error_message);
        on_failure(t, ev->now_ms, t->cascade->feedback, "call", reason, ev->error_message, NULL,
                   out);
        return;
    }
    case WK_EV_LOST_CALL: {
        if (t->state != WK__ST_CALLING)
            return;
        t->cost_usd += ev->lost_cost_usd;
        t->lost_usd += ev->lost_cost_usd;
        if (t->inflight > 0)
            lost_in_round(t, ev, out);
        else /* the same call again, if the budget still holds it with the loss counted */
            call_or_stop(t, out);
        return;
    }
    case WK_EV_VERDICT: {
        if (t->state != WK__ST_VALIDATING)
            return;
        const val_verdict *v = ev->verdict;
        cJSON_AddItemToObject(t->cur, "verdict", val_verdict_json(v));
        if (v->pass && t->is_patch) {
            t->tests = v->tests;
            free(t->tests_note);
            t->tests_note = v->note ? wk_xstrdup(v->note) : NULL;
        }
        if (v->pass && tier_doubts(&t->cascade->tiers[t->tier])) {
            vote(t, v, ev->now_ms, out);
        } else if (tier_rounds(&t->cascade->tiers[t->tier])) {
            /*
             * A failed answer of a round (all paid, the rest in hand): a vote for
             * no label, so the others are still read and min decides.
             */
            vote(t, NULL, ev->now_ms, out);
        } else if (v->pass) {
            double self;
            label_of(t, v, t->label, &self);
            finish(t, "accepted", NULL, out);
        } else {
            on_failure(t, ev->now_ms, t->cascade->feedback, v->validator, v->reason, v->message,
                       v->evidence, out);
        }
        return;
    }
    }
}

int wk_task_feed(wk_task *t, const wk_event *ev, wk_actions *out)
{
    drop_after(out, 0);
    t->now_ms = ev->now_ms;
    step(t, ev, out);
    return out->n;
}
