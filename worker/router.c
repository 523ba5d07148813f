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

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cost.h"
#include "lib/util.h"
#include "validators/val.h"

enum { ST_NEW, ST_CALLING, ST_VALIDATING, ST_DONE };

struct wk_task {
    char *id;
    cJSON *json;               /* the task as read; owned */
    const wk_cascade *cascade; /* borrowed from the config */
    const cJSON *schema;       /* borrowed from json or the cascade */
    double budget_usd;         /* 0: none */
    int state;
    int tier;        /* current tier */
    int tries;       /* attempts made at the current tier */
    cJSON *messages; /* the conversation sent with the next call; owned */
    int rounds;      /* feedback rounds now in messages */
    cJSON *attempts; /* the result's attempt list; owned */
    cJSON *cur;      /* the newest attempt, inside attempts */
    double cost_usd;
    char *answer; /* newest answer text; owned */
    char *best;   /* extracted code of the best failed answer; owned */
    int best_rank;
    int answers;     /* responses received */
    double lost_usd; /* charged for a lost call, not yet on an attempt */
};

/* Costs are reported to the nano-dollar so sums of lines match the totals. */
static double round_usd(double v)
{
    return round(v * 1e9) / 1e9;
}

const char *wk_task_id(const wk_task *t)
{
    return t->id;
}
const cJSON *wk_task_json(const wk_task *t)
{
    return t->json;
}
const wk_cascade *wk_task_cascade(const wk_task *t)
{
    return t->cascade;
}
const cJSON *wk_task_schema(const wk_task *t)
{
    return t->schema;
}
int wk_task_done(const wk_task *t)
{
    return t->state == ST_DONE;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

/* ---- task intake ----------------------------------------------------------- */

cJSON *wk_invalid_result(const char *id, long lineno, const char *reason)
{
    cJSON *r = cJSON_CreateObject();
    if (id)
        cJSON_AddStringToObject(r, "id", id);
    else
        cJSON_AddNullToObject(r, "id");
    cJSON_AddNumberToObject(r, "line", (double)lineno);
    cJSON_AddStringToObject(r, "status", "invalid_task");
    cJSON_AddNullToObject(r, "cascade");
    cJSON_AddNullToObject(r, "tier");
    cJSON_AddNullToObject(r, "model");
    cJSON_AddNumberToObject(r, "cost_usd", 0);
    cJSON_AddItemToObject(r, "attempts", cJSON_CreateArray());
    cJSON_AddStringToObject(r, "reason", reason);
    return r;
}

/* Checks what the cascade's validators will need from the task. */
static int check_needs(const wk_cascade *c, const cJSON *task, const cJSON *schema, char *why,
                       size_t whylen)
{
    for (int i = 0; i < c->nvalidators; i++) {
        const char *v = c->validators[i];
        if (strcmp(v, "tests") == 0) {
            const cJSON *tests = cJSON_GetObjectItemCaseSensitive(task, "tests");
            const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(tests, "command");
            int ok = cJSON_IsArray(cmd) && cJSON_GetArraySize(cmd) > 0;
            const cJSON *a;
            cJSON_ArrayForEach(a, cmd) ok = ok && cJSON_IsString(a);
            if (!ok) {
                snprintf(why, whylen,
                         "cascade %s runs tests but tests.command is missing or not an "
                         "array of strings",
                         c->name);
                return WK_EINVAL;
            }
        } else if (strcmp(v, "schema") == 0 && !schema) {
            snprintf(why, whylen,
                     "cascade %s checks a schema but neither the task nor the "
                     "cascade has one",
                     c->name);
            return WK_EINVAL;
        }
    }
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(task, "files");
    if (files && !cJSON_IsObject(files)) {
        snprintf(why, whylen, "files must be an object of path -> content");
        return WK_EINVAL;
    }
    return 0;
}

static cJSON *first_messages(const cJSON *task, const char *kind, const char *language)
{
    cJSON *msgs = cJSON_CreateArray();
    char *sys;
    if (strcmp(kind, "code") == 0) {
        const char *file = jstr(task, "answer_file");
        char *dflt = NULL;
        if (!file)
            file = dflt = wk_xasprintf("solution.%s", val_lang_ext(language));
        sys = wk_xasprintf("You are an expert %s programmer. Reply with the complete contents "
                           "of %s in one fenced code block.",
                           language ? language : "", file);
        free(dflt);
    } else if (strcmp(kind, "classify") == 0 || strcmp(kind, "json") == 0) {
        sys = wk_xstrdup("Reply with one JSON object only, in a ```json fenced block, that "
                         "matches the schema given.");
    } else {
        sys = wk_xstrdup("Reply with the answer only.");
    }
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "system");
    cJSON_AddStringToObject(m, "content", sys);
    cJSON_AddItemToArray(msgs, m);
    free(sys);

    /* The user turn: the prompt, then the context files and the schema. */
    wk_buf b;
    wk_buf_init(&b, SIZE_MAX / 2);
    const char *prompt = jstr(task, "prompt");
    wk_buf_appendf(&b, "%s", prompt);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(task, "files");
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (cJSON_IsString(f))
            wk_buf_appendf(&b, "\n\nFile %s:\n```\n%s\n```", f->string, f->valuestring);
    }
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(task, "schema");
    if (schema) {
        char *s = cJSON_PrintUnformatted(schema);
        wk_buf_appendf(&b, "\n\nJSON Schema of the answer:\n%s", s);
        free(s);
    }
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", b.buf);
    cJSON_AddItemToArray(msgs, m);
    wk_buf_release(&b);
    return msgs;
}

int wk_task_parse(const char *line, size_t len, long lineno, const wk_config *cfg,
                  const char *cascade_name, wk_task **out, cJSON **invalid)
{
    char why[512];
    char *id = NULL;
    wk_task *t = NULL;
    int rc = WK_EINVAL;
    cJSON *j = cJSON_ParseWithLength(line, len);
    if (!j) {
        snprintf(why, sizeof why, "line %ld is not valid JSON", lineno);
        goto cleanup;
    }
    if (!cJSON_IsObject(j)) {
        snprintf(why, sizeof why, "line %ld is not a JSON object", lineno);
        goto cleanup;
    }
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (cJSON_IsString(jid) && jid->valuestring[0])
        id = wk_xstrdup(jid->valuestring);
    else if (cJSON_IsNumber(jid))
        id = wk_xasprintf("%.17g", jid->valuedouble);
    if (!id) {
        snprintf(why, sizeof why, "task has no \"id\" (a non-empty string)");
        goto cleanup;
    }
    const char *prompt = jstr(j, "prompt");
    if (!prompt || !*prompt) {
        snprintf(why, sizeof why, "task has no \"prompt\" (a non-empty string)");
        goto cleanup;
    }
    const cJSON *jkind = cJSON_GetObjectItemCaseSensitive(j, "kind");
    const char *kind = jstr(j, "kind");
    if (jkind && !kind) {
        snprintf(why, sizeof why, "\"kind\" must be a string");
        goto cleanup;
    }
    if (!kind)
        kind = "code";
    if (strcmp(kind, "code") && strcmp(kind, "classify") && strcmp(kind, "json") &&
        strcmp(kind, "patch")) {
        snprintf(why, sizeof why, "unknown kind \"%.40s\" (code, patch, classify or json)", kind);
        goto cleanup;
    }
    const char *language = jstr(j, "language");
    const char *want = cascade_name ? cascade_name : jstr(j, "cascade");
    const wk_cascade *c =
        want ? wk_config_cascade(cfg, want) : wk_config_match(cfg, kind, language);
    if (!c) {
        if (want)
            snprintf(why, sizeof why, "unknown cascade \"%.80s\"", want);
        else
            snprintf(why, sizeof why, "no cascade matches kind %.40s, language %.40s", kind,
                     language ? language : "(none)");
        goto cleanup;
    }
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(j, "schema");
    if (schema) {
        char sub[256];
        if (val_schema_supported(schema, sub, sizeof sub)) {
            snprintf(why, sizeof why, "schema: %s", sub);
            goto cleanup;
        }
    } else {
        schema = c->schema;
    }
    if (check_needs(c, j, schema, why, sizeof why))
        goto cleanup;
    const cJSON *jb = cJSON_GetObjectItemCaseSensitive(j, "budget_usd");
    if (jb && (!cJSON_IsNumber(jb) || jb->valuedouble < 0)) {
        snprintf(why, sizeof why, "budget_usd must be a number >= 0");
        goto cleanup;
    }

    t = wk_xcalloc(1, sizeof *t);
    t->id = id;
    id = NULL;
    t->json = j;
    j = NULL;
    t->cascade = c;
    t->schema = schema;
    t->budget_usd = jb ? jb->valuedouble : 0;
    t->messages = first_messages(t->json, kind, language);
    t->attempts = cJSON_CreateArray();
    t->best_rank = -1;
    *out = t;
    t = NULL;
    rc = 0;
cleanup:
    if (rc)
        *invalid = wk_invalid_result(id, lineno, why);
    free(id);
    cJSON_Delete(j);
    wk_task_free(t);
    return rc;
}

void wk_task_free(wk_task *t)
{
    if (!t)
        return;
    free(t->id);
    cJSON_Delete(t->json);
    cJSON_Delete(t->messages);
    cJSON_Delete(t->attempts);
    free(t->answer);
    free(t->best);
    free(t);
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
        const char *c = jstr(m, "content");
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

static cJSON *tier_obj(const wk_task *t, int tier)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tier", tier);
    cJSON_AddStringToObject(o, "model", t->cascade->tiers[tier].model->name);
    return o;
}

static int finish(wk_task *t, const char *status, const char *reason, wk_action *out)
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
    t->state = ST_DONE;
    out->kind = WK_ACT_FINISH;
    out->line = r;
    return 1;
}

/*
 * Emits the next call, unless the task's budget cannot hold its worst case
 * (the whole prompt plus max_tokens of output), in which case the task ends.
 */
static int over_budget(wk_task *t, int tier, wk_action *out)
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
    int n = finish(t, "over_budget", why, out);
    free(why);
    return n;
}

static int call_or_stop(wk_task *t, wk_action *out)
{
    const wk_model *m = t->cascade->tiers[t->tier].model;
    int n = over_budget(t, t->tier, out);
    if (n)
        return n;
    t->state = ST_CALLING;
    out->kind = WK_ACT_CALL;
    out->model = m;
    out->messages = t->messages;
    out->est_prompt_tokens = estimate_prompt_tokens(t->messages);
    return 1;
}

/* The tier's skip rule that holds for this task, as words; NULL when none does. */
static char *skip_rule_holds(const wk_task *t, int tier)
{
    const wk_tier *tr = &t->cascade->tiers[tier];
    if (!tr->nskip)
        return NULL;
    const char *prompt = jstr(t->json, "prompt");
    long tokens = (long)(strlen(prompt ? prompt : "") / 4);
    const char *kind = jstr(t->json, "kind") ? jstr(t->json, "kind") : "code";
    const char *lang = jstr(t->json, "language");
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(t->json, "tests");
    int has_tests = cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(tests, "command"));
    for (int i = 0; i < tr->nskip; i++) {
        const wk_skip_rule *k = &tr->skip[i];
        if (k->prompt_tokens_over >= 0 && !(tokens > k->prompt_tokens_over))
            continue;
        if (k->prompt_tokens_upto >= 0 && !(tokens <= k->prompt_tokens_upto))
            continue;
        if (k->kind && strcmp(k->kind, kind) != 0)
            continue;
        if (k->language && (!lang || strcmp(k->language, lang) != 0))
            continue;
        if (k->has_tests >= 0 && k->has_tests != has_tests)
            continue;
        return wk_xasprintf("skip rule %d of tier %d holds (prompt about %ld tokens, kind %s, "
                            "language %s, %s tests)",
                            i, tier, tokens, kind, lang ? lang : "none", has_tests ? "with" : "no");
    }
    return NULL;
}

/* The first tier at or after `from` that may take the task; -1 if none. */
static int next_fitting(wk_task *t, int from, int64_t now, wk_action *out, int *nout)
{
    for (int k = from; k < t->cascade->ntiers; k++) {
        char *rule = skip_rule_holds(t, k);
        if (!rule && tier_fits(t, k))
            return k;
        /* A skipped tier is logged like a climb: nothing was sent to it. */
        if (k + 1 < t->cascade->ntiers && *nout < WK_ACTIONS_MAX - 2) {
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
            out[*nout].kind = WK_ACT_LOG;
            out[*nout].line = l;
            (*nout)++;
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

static int on_failure(wk_task *t, int64_t now, const char *validator, const char *reason,
                      const char *message, const char *evidence, wk_action *out)
{
    int n = 0;
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
    if (t->tries < t->cascade->tiers[t->tier].attempts)
        return call_or_stop(t, out);

    int from = t->tier;
    int next = from + 1 < t->cascade->ntiers ? next_fitting(t, from + 1, now, out + 1, &n) : -1;
    if (next < 0) {
        /* Drop the skip lines staged after slot 0: nothing follows them. */
        for (int i = 1; i <= n; i++)
            cJSON_Delete(out[i].line);
        char *why = t->answers ? wk_xasprintf("every tier failed; last: %s %s", validator, reason)
                               : wk_xasprintf("no tier gave an answer; last: %s", reason);
        int k = finish(t, t->answers ? "exhausted" : "error", why, out);
        free(why);
        return k;
    }
    /* A climb the budget cannot pay for is not logged: the task ends here. */
    int stop = over_budget(t, next, out);
    if (stop) {
        for (int i = 1; i <= n; i++)
            cJSON_Delete(out[i].line);
        return stop;
    }
    /* Slot 0: the climb; then any skips; then the call. */
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
    out[0].kind = WK_ACT_LOG;
    out[0].line = l;
    n++;
    t->tier = next;
    t->tries = 0;
    return n + call_or_stop(t, out + n);
}

static cJSON *new_attempt(wk_task *t, const wk_event *ev, long pt, long ct)
{
    const wk_model *m = t->cascade->tiers[t->tier].model;
    const wk_model *served = ev->served ? ev->served : m;
    double cost = ev->from_cache ? 0 : wk_cost(served, pt, ct, ev->cached_tokens);
    t->cost_usd += cost;
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "tier", t->tier);
    cJSON_AddStringToObject(a, "model", m->name);
    /* A fallback deployment is the same model elsewhere; say which one answered. */
    if (served != m)
        cJSON_AddStringToObject(a, "deployment", served->name);
    if (ev->from_cache)
        cJSON_AddBoolToObject(a, "cached", 1);
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

static void set_verdict(cJSON *a, int pass, const char *validator, const char *reason,
                        const char *message, const char *note)
{
    cJSON *v = cJSON_CreateObject();
    cJSON_AddBoolToObject(v, "pass", pass);
    if (note && *note)
        cJSON_AddStringToObject(v, "note", note);
    if (!pass) {
        cJSON_AddStringToObject(v, "validator", validator ? validator : "");
        cJSON_AddStringToObject(v, "reason", reason ? reason : "");
        cJSON_AddStringToObject(v, "message", message ? message : "");
    }
    cJSON_AddItemToObject(a, "verdict", v);
}

int wk_task_feed(wk_task *t, const wk_event *ev, wk_action *out)
{
    switch (ev->kind) {
    case WK_EV_START: {
        if (t->state != ST_NEW)
            return 0;
        int n = 0;
        int first = next_fitting(t, 0, ev->now_ms, out, &n);
        if (first < 0) {
            for (int i = 0; i < n; i++)
                cJSON_Delete(out[i].line);
            return finish(t, "error", "no tier may take the task (context windows, skip rules)",
                          out);
        }
        t->tier = first;
        return n + call_or_stop(t, out + n);
    }
    case WK_EV_RESPONSE: {
        if (t->state != ST_CALLING)
            return 0;
        cJSON *a = new_attempt(t, ev, ev->prompt_tokens, ev->completion_tokens);
        if (ev->finish_reason)
            cJSON_AddStringToObject(a, "finish_reason", ev->finish_reason);
        t->answers++;
        free(t->answer);
        t->answer = wk_xstrdup(ev->text ? ev->text : "");
        if (ev->finish_reason && strcmp(ev->finish_reason, "length") == 0) {
            const char *msg = "the answer was cut off at max_tokens";
            set_verdict(a, 0, "truncation", "truncated", msg, NULL);
            return on_failure(t, ev->now_ms, "truncation", "truncated", msg, NULL, out);
        }
        t->state = ST_VALIDATING;
        out->kind = WK_ACT_VALIDATE;
        out->answer = t->answer;
        return 1;
    }
    case WK_EV_CALL_FAILED: {
        if (t->state != ST_CALLING)
            return 0;
        if (ev->budget_denied)
            /* No call was made: nothing to record but the reason. */
            return finish(t, "over_budget", ev->error_message ? ev->error_message : "run budget",
                          out);
        cJSON *a = new_attempt(t, ev, 0, 0);
        const char *reason = ev->error_reason ? ev->error_reason : "call_failed";
        cJSON_AddStringToObject(a, "error", ev->error_message ? ev->error_message : reason);
        set_verdict(a, 0, "call", reason, ev->error_message, NULL);
        return on_failure(t, ev->now_ms, "call", reason, ev->error_message, NULL, out);
    }
    case WK_EV_LOST_CALL: {
        if (t->state != ST_CALLING)
            return 0;
        t->cost_usd += ev->lost_cost_usd;
        t->lost_usd += ev->lost_cost_usd;
        /* The same call again, if the budget still holds it with the loss counted. */
        return call_or_stop(t, out);
    }
    case WK_EV_VERDICT: {
        if (t->state != ST_VALIDATING)
            return 0;
        set_verdict(t->cur, ev->pass, ev->validator, ev->reason, ev->message, ev->note);
        if (ev->pass)
            return finish(t, "accepted", NULL, out);
        return on_failure(t, ev->now_ms, ev->validator ? ev->validator : "?",
                          ev->reason ? ev->reason : "failed", ev->message, ev->evidence, out);
    }
    }
    return 0;
}
