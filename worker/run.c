/*
 * The driver of `cascade run` (see run.h). It owns every side effect: it
 * reads the task lines, sends the HTTP calls, starts the validator chains and
 * writes the result and escalation lines. Decisions are the router's; this
 * file only carries the router's actions out and feeds back what happened.
 *
 * Concurrency: at most `concurrency` tasks are in flight, each in a slot; a
 * provider's calls beyond its max_inflight wait in a FIFO; validator chains
 * bound their own sandboxes. A verdict that arrives inside val_chain_start
 * is held and fed after it returns, so the router is never re-entered.
 */
#include "run.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <uv.h>

#include "../validators/val.h"
#include "config.h"
#include "cost.h"
#include "calls.h"
#include "router.h"
#include "util.h"

#define LINE_CAP (16u << 20)
#define ERRMSG_MAX 512

typedef struct run run;

typedef struct slot {
    run *r;
    int index;
    wk_task *task;
    /* the call in progress */
    const wk_model *model;
    uv_timer_t retry_timer;   /* replay: the recorded answer's arrival */
    const wk_rec *rec;        /* replay: the answer to deliver */
    /* the validation in progress */
    val_input vin;
    int in_validate;
    int have_pending;
    int pending_pass;
    char pending_validator[16], pending_reason[24];
    char *pending_message, *pending_evidence;
    struct slot *free_next;
} slot;

/* Per (cascade, tier) counts for the summary. */
typedef struct tier_stat {
    long accepted;
} tier_stat;

struct run {
    const wk_run_opts *o;
    uv_loop_t loop;
    wk_config cfg;
    wk_calls *calls;
    val_env *venv;
    slot *slots;
    slot *free_slots;
    int active;
    uv_idle_t intake;
    uv_signal_t sigint, sigterm;
    int stopping;  /* no more intake */
    int interrupted;
    int failed;    /* an output error: stop */
    int budget_stop; /* the run budget refused a call */
    FILE *in, *out, *esc;
    long lineno;
    int eof;
    wk_buf line;
    /* ids seen, for "exactly once" */
    char **ids;
    size_t ids_cap, ids_len;
    wk_run_stats st;
    tier_stat **tiers; /* [cascade][tier] */
};

/* ---- small helpers --------------------------------------------------------- */

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void write_line(run *r, FILE *f, cJSON *line)
{
    char *s = cJSON_PrintUnformatted(line);
    if (!s || fputs(s, f) == EOF || fputc('\n', f) == EOF || fflush(f) == EOF) {
        if (!r->failed)
            fprintf(stderr, "cascade: cannot write output: %s\n", strerror(errno));
        r->failed = 1;
        r->stopping = 1;
    }
    free(s);
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Returns 1 when id was already seen; else records it. */
static int id_seen(run *r, const char *id)
{
    if (r->ids_len * 2 >= r->ids_cap) {
        size_t ncap = r->ids_cap ? r->ids_cap * 2 : 1024;
        char **n = wk_xcalloc(ncap, sizeof(char *));
        for (size_t i = 0; i < r->ids_cap; i++) {
            if (!r->ids[i])
                continue;
            size_t k = hash_str(r->ids[i]) & (ncap - 1);
            while (n[k])
                k = (k + 1) & (ncap - 1);
            n[k] = r->ids[i];
        }
        free(r->ids);
        r->ids = n;
        r->ids_cap = ncap;
    }
    size_t k = hash_str(id) & (r->ids_cap - 1);
    while (r->ids[k]) {
        if (strcmp(r->ids[k], id) == 0)
            return 1;
        k = (k + 1) & (r->ids_cap - 1);
    }
    r->ids[k] = wk_xstrdup(id);
    r->ids_len++;
    return 0;
}

static int cascade_index(const run *r, const wk_cascade *c)
{
    return (int)(c - r->cfg.cascades);
}

/* ---- summary --------------------------------------------------------------- */

static long jlong(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(f) ? (long)f->valuedouble : -1;
}

/*
 * What the task would have cost at the top tier alone: the top tier's own
 * usage when it was called, else the first attempt's token counts priced at
 * the top tier (an estimate, counted as such).
 */
static void add_top_cost(run *r, const wk_cascade *c, const cJSON *attempts)
{
    const wk_model *top = c->tiers[c->ntiers - 1].model;
    const cJSON *a, *first = NULL;
    cJSON_ArrayForEach(a, attempts)
    {
        if (jlong(a, "prompt_tokens") < 0)
            continue;
        if (!first)
            first = a;
        if (jlong(a, "tier") == c->ntiers - 1) {
            r->st.top_cost_usd += wk_cost(top, jlong(a, "prompt_tokens"), jlong(a, "completion_tokens"), 0);
            return;
        }
    }
    if (first) {
        r->st.top_cost_usd += wk_cost(top, jlong(first, "prompt_tokens"),
                               jlong(first, "completion_tokens"), 0);
        r->st.top_estimated++;
    }
}

static void count_result(run *r, const wk_task *t, cJSON *res)
{
    const char *status = cJSON_GetObjectItemCaseSensitive(res, "status")->valuestring;
    r->st.tasks++;
    if (strcmp(status, "invalid_task") == 0) {
        r->st.invalid++;
        return;
    }
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(res, "cost_usd");
    r->st.cost_usd += cJSON_IsNumber(cost) ? cost->valuedouble : 0;
    const wk_cascade *c = wk_task_cascade(t);
    add_top_cost(r, c, cJSON_GetObjectItemCaseSensitive(res, "attempts"));
    if (strcmp(status, "accepted") == 0) {
        r->st.accepted++;
        r->tiers[cascade_index(r, c)][jlong(res, "tier")].accepted++;
    } else if (strcmp(status, "exhausted") == 0) {
        r->st.exhausted++;
    } else if (strcmp(status, "over_budget") == 0) {
        r->st.over_budget++;
    } else {
        r->st.error++;
    }
}

static void print_summary(run *r)
{
    FILE *f = stderr;
    long valid = r->st.tasks - r->st.invalid;
    fprintf(f, "cascade: %ld tasks: %ld accepted, %ld exhausted, %ld over_budget, %ld error, "
               "%ld invalid_task\n",
            r->st.tasks, r->st.accepted, r->st.exhausted, r->st.over_budget, r->st.error,
            r->st.invalid);
    for (int i = 0; i < r->cfg.ncascades; i++) {
        const wk_cascade *c = &r->cfg.cascades[i];
        long sum = 0;
        for (int k = 0; k < c->ntiers; k++)
            sum += r->tiers[i][k].accepted;
        if (!sum)
            continue;
        fprintf(f, "  %s\n", c->name);
        for (int k = 0; k < c->ntiers; k++)
            fprintf(f, "    tier %d  %-20s %6ld accepted\n", k, c->tiers[k].model->name,
                    r->tiers[i][k].accepted);
    }
    fprintf(f, "  pass rate        %.3f (%ld of %ld valid tasks)\n",
            valid ? (double)r->st.accepted / (double)valid : 0.0, r->st.accepted, valid);
    fprintf(f, "  total cost       $%.6f\n", r->st.cost_usd);
    fprintf(f, "  top tier only    $%.6f", r->st.top_cost_usd);
    if (r->st.top_estimated)
        fprintf(f, " (%ld tasks priced from lower tiers' token counts)", r->st.top_estimated);
    fprintf(f, "\n");
    if (r->st.top_cost_usd > 0)
        fprintf(f, "  saving           %.1f%%\n", 100.0 * (1.0 - r->st.cost_usd / r->st.top_cost_usd));
}

/* ---- the task slots -------------------------------------------------------- */

static void perform(slot *s, wk_action *acts, int n);

static void feed(slot *s, const wk_event *ev)
{
    wk_action acts[WK_ACTIONS_MAX];
    int n = wk_task_feed(s->task, ev, acts);
    perform(s, acts, n);
}

static void request_intake(run *r);

static void release_slot(slot *s)
{
    run *r = s->r;
    wk_task_free(s->task);
    s->task = NULL;
    s->free_next = r->free_slots;
    r->free_slots = s;
    r->active--;
    request_intake(r);
}

static void call_failed(slot *s, const char *reason, const char *msg, long latency)
{
    wk_event ev = {.kind = WK_EV_CALL_FAILED, .now_ms = wall_ms()};
    ev.error_reason = reason;
    ev.error_message = msg;
    ev.latency_ms = latency;
    feed(s, &ev);
}

static void on_call(void *arg, const wk_call_outcome *o)
{
    slot *s = arg;
    run *r = s->r;
    wk_event ev = {.now_ms = wall_ms(), .latency_ms = o->latency_ms, .served = o->served,
                   .retries = o->retries, .fallbacks = o->fallbacks};
    if (o->ok) {
        ev.kind = WK_EV_RESPONSE;
        ev.text = o->resp->text;
        ev.finish_reason = o->resp->finish_reason;
        ev.prompt_tokens = o->resp->prompt_tokens;
        ev.completion_tokens = o->resp->completion_tokens;
        ev.cached_tokens = o->resp->cached_tokens;
    } else {
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
        call_failed(s, "no_recording", msg, 0);
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

static void start_call(slot *s, const wk_model *m, const cJSON *messages, long est)
{
    s->model = m;
    if (s->r->o->recs) {
        s->rec = wk_recs_next(s->r->o->recs, wk_task_id(s->task), m->name, s->r->o->replay_start);
        s->retry_timer.data = s;
        uv_timer_start(&s->retry_timer, on_replay, 0, 0);
        return;
    }
    wk_call_start(s->r->calls, m, wk_task_id(s->task), messages, est, on_call, s);
}

static void feed_pending_verdict(slot *s)
{
    wk_event ev = {.kind = WK_EV_VERDICT, .now_ms = wall_ms()};
    ev.pass = s->pending_pass;
    ev.validator = s->pending_validator;
    ev.reason = s->pending_reason;
    ev.message = s->pending_message;
    ev.evidence = s->pending_evidence;
    s->have_pending = 0;
    char *m = s->pending_message, *e = s->pending_evidence;
    s->pending_message = s->pending_evidence = NULL;
    feed(s, &ev);
    free(m);
    free(e);
}

static void on_verdict(void *arg, const val_verdict *v)
{
    slot *s = arg;
    if (s->r->o->vcache && s->vin.answer)
        wk_vcache_put(s->r->o->vcache, wk_task_id(s->task), s->vin.answer, v->pass,
                      v->validator, v->reason, v->message, v->evidence);
    s->have_pending = 1;
    s->pending_pass = v->pass;
    snprintf(s->pending_validator, sizeof s->pending_validator, "%s", v->validator);
    snprintf(s->pending_reason, sizeof s->pending_reason, "%s", v->reason);
    s->pending_message = v->message ? wk_xstrdup(v->message) : NULL;
    s->pending_evidence = v->evidence ? wk_xstrdup(v->evidence) : NULL;
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
    const wk_cascade *c = wk_task_cascade(s->task);
    wk_vcache *vc = s->r->o->vcache;
    const wk_vc_entry *hit = vc ? wk_vcache_get(vc, wk_task_id(s->task), answer) : NULL;
    if (hit) {
        val_verdict v = {.pass = hit->pass, .message = hit->message, .evidence = hit->evidence};
        snprintf(v.validator, sizeof v.validator, "%s", hit->validator ? hit->validator : "");
        snprintf(v.reason, sizeof v.reason, "%s", hit->reason ? hit->reason : "");
        on_verdict(s, &v); /* copies; the cache keeps its strings */
        return;
    }
    s->vin.task_id = wk_task_id(s->task);
    s->vin.kind = task_str(s->task, "kind") ? task_str(s->task, "kind") : "code";
    s->vin.language = task_str(s->task, "language");
    s->vin.answer = answer;
    s->vin.task = wk_task_json(s->task);
    s->vin.schema = wk_task_schema(s->task);
    s->in_validate = 1;
    int rc = val_chain_start(s->r->venv, (const char *const *)c->validators, c->nvalidators,
                             &s->vin, on_verdict, s);
    s->in_validate = 0;
    if (rc != 0) {
        val_verdict v = {0};
        val_verdict_fail(&v, "chain", "sandbox_error", "the validators could not start", NULL);
        on_verdict(s, &v);
        val_verdict_clear(&v);
    } else if (s->have_pending) {
        feed_pending_verdict(s);
    }
}

static void perform(slot *s, wk_action *acts, int n)
{
    run *r = s->r;
    for (int i = 0; i < n; i++) {
        wk_action *a = &acts[i];
        switch (a->kind) {
        case WK_ACT_CALL:
            start_call(s, a->model, a->messages, a->est_prompt_tokens);
            break;
        case WK_ACT_VALIDATE:
            start_validate(s, a->answer);
            break;
        case WK_ACT_LOG:
            if (r->esc)
                write_line(r, r->esc, a->line);
            cJSON_Delete(a->line);
            break;
        case WK_ACT_FINISH:
            write_line(r, r->out, a->line);
            count_result(r, s->task, a->line);
            cJSON_Delete(a->line);
            /* FINISH is always the last action: the slot may be reused now. */
            release_slot(s);
            return;
        }
    }
}

/* ---- intake ---------------------------------------------------------------- */

/*
 * Reads one line into r->line. Returns 1 with a line, 0 at end of input,
 * WK_ETOOBIG for a line over the cap (the rest of it is skipped).
 */
static int read_line(run *r)
{
    wk_buf_reset(&r->line);
    int too_big = 0, c, any = 0;
    while ((c = getc(r->in)) != EOF) {
        any = 1;
        if (c == '\n')
            break;
        char ch = (char)c;
        if (!too_big && wk_buf_append(&r->line, &ch, 1) != 0)
            too_big = 1;
    }
    if (!any)
        return 0;
    r->lineno++;
    return too_big ? WK_ETOOBIG : 1;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

static void write_invalid(run *r, cJSON *res)
{
    write_line(r, r->out, res);
    r->st.tasks++;
    r->st.invalid++;
    cJSON_Delete(res);
}

static void intake(run *r)
{
    while (!r->stopping && !r->eof && r->free_slots) {
        int got = read_line(r);
        if (got == 0) {
            r->eof = 1;
            break;
        }
        if (got == WK_ETOOBIG) {
            char *why = wk_xasprintf("line %ld is longer than %u bytes", r->lineno, LINE_CAP);
            cJSON *res = cJSON_CreateObject();
            cJSON_AddNullToObject(res, "id");
            cJSON_AddNumberToObject(res, "line", (double)r->lineno);
            cJSON_AddStringToObject(res, "status", "invalid_task");
            cJSON_AddStringToObject(res, "reason", why);
            free(why);
            write_invalid(r, res);
            continue;
        }
        if (blank(r->line.buf ? r->line.buf : "", r->line.len))
            continue;
        wk_task *t = NULL;
        cJSON *invalid = NULL;
        if (wk_task_parse(r->line.buf, r->line.len, r->lineno, &r->cfg, r->o->cascade_name,
                          &t, &invalid) != 0) {
            write_invalid(r, invalid);
            continue;
        }
        if (id_seen(r, wk_task_id(t))) {
            char *why = wk_xasprintf("duplicate id \"%s\": an earlier line has it",
                                     wk_task_id(t));
            cJSON *res = cJSON_CreateObject();
            cJSON_AddStringToObject(res, "id", wk_task_id(t));
            cJSON_AddNumberToObject(res, "line", (double)r->lineno);
            cJSON_AddStringToObject(res, "status", "invalid_task");
            cJSON_AddStringToObject(res, "reason", why);
            free(why);
            wk_task_free(t);
            write_invalid(r, res);
            continue;
        }
        slot *s = r->free_slots;
        r->free_slots = s->free_next;
        s->task = t;
        r->active++;
        wk_event ev = {.kind = WK_EV_START, .now_ms = wall_ms()};
        feed(s, &ev);
    }
}

static void shutdown_run(run *r);

static void on_intake(uv_idle_t *h)
{
    run *r = h->data;
    uv_idle_stop(h);
    intake(r);
    if ((r->eof || r->stopping) && r->active == 0)
        shutdown_run(r);
}

/* Intake runs from the loop, never inside a callback chain of another task. */
static void request_intake(run *r)
{
    uv_idle_start(&r->intake, on_intake);
}

static void on_signal(uv_signal_t *h, int signum)
{
    run *r = h->data;
    if (r->stopping && r->interrupted) {
        fprintf(stderr, "cascade: second signal, exiting now\n");
        exit(128 + signum);
    }
    fprintf(stderr, "cascade: %s: taking no more tasks, finishing the %d in flight "
                    "(signal again to quit now)\n",
            signum == SIGINT ? "interrupt" : "terminate", r->active);
    r->stopping = 1;
    r->interrupted = 1;
    request_intake(r);
}

static void shutdown_run(run *r)
{
    if (!r->calls)
        return;
    wk_calls_free(r->calls);
    r->calls = NULL;
    for (int i = 0; i < r->o->concurrency; i++)
        uv_close((uv_handle_t *)&r->slots[i].retry_timer, NULL);
    uv_close((uv_handle_t *)&r->intake, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
}

/* ---- entry ----------------------------------------------------------------- */

void wk_run_opts_default(wk_run_opts *o)
{
    memset(o, 0, sizeof *o);
    o->cascades_dir = "cascades";
    o->models_path = NULL;
    o->concurrency = 64;
    o->max_retries = 3;
    o->timeout_ms = 300000;
    o->connect_timeout_ms = 10000;
    o->first_byte_timeout_ms = 120000;
    o->max_wait_ms = 60000;
    o->body_cap = 8u << 20;
    o->test_timeout_ms = 10000;
}

static FILE *open_out(const char *path, const char *what)
{
    if (!path || strcmp(path, "-") == 0)
        return stdout;
    FILE *f = fopen(path, "w");
    if (!f)
        fprintf(stderr, "cascade: cannot open %s file %s: %s\n", what, path, strerror(errno));
    return f;
}

int wk_run(const wk_run_opts *o)
{
    run *r = wk_xcalloc(1, sizeof *r);
    int code = WK_EXIT_FAIL;
    int loop_ok = 0;
    char err[ERRMSG_MAX];
    r->o = o;
    wk_buf_init(&r->line, LINE_CAP);

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
    r->in = strcmp(o->tasks_path, "-") == 0 ? stdin : fopen(o->tasks_path, "r");
    if (!r->in) {
        fprintf(stderr, "cascade: cannot open tasks file %s: %s\n", o->tasks_path,
                strerror(errno));
        goto cleanup;
    }
    r->out = open_out(o->out_path, "results");
    if (!r->out)
        goto cleanup;
    if (o->esc_path) {
        r->esc = open_out(o->esc_path, "escalations");
        if (!r->esc)
            goto cleanup;
    }

    uv_loop_init(&r->loop);
    loop_ok = 1;
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
    r->tiers = wk_xcalloc((size_t)r->cfg.ncascades, sizeof(tier_stat *));
    for (int i = 0; i < r->cfg.ncascades; i++)
        r->tiers[i] = wk_xcalloc((size_t)r->cfg.cascades[i].ntiers, sizeof(tier_stat));
    r->slots = wk_xcalloc((size_t)o->concurrency, sizeof(slot));
    for (int i = o->concurrency - 1; i >= 0; i--) {
        slot *s = &r->slots[i];
        s->r = r;
        s->index = i;
        uv_timer_init(&r->loop, &s->retry_timer);
        s->retry_timer.data = s;
        s->free_next = r->free_slots;
        r->free_slots = s;
    }
    uv_idle_init(&r->loop, &r->intake);
    r->intake.data = r;
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sigterm);
    r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);

    request_intake(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);

    if (!o->quiet)
        print_summary(r);
    if (o->stats)
        *o->stats = r->st;
    if (r->failed)
        code = WK_EXIT_FAIL;
    else if ((r->interrupted || r->budget_stop) && !r->eof)
        code = WK_EXIT_INTERRUPTED;
    else
        code = WK_EXIT_OK;
cleanup:
    if (r->calls) {
        wk_calls_free(r->calls);
        r->calls = NULL;
    }
    if (r->venv)
        val_env_free(r->venv);
    if (loop_ok) {
        uv_run(&r->loop, UV_RUN_DEFAULT);
        if (uv_loop_close(&r->loop) != 0)
            fprintf(stderr, "cascade: warning: handles left open at exit\n");
    }
    if (r->in && r->in != stdin)
        fclose(r->in);
    if (r->out && r->out != stdout)
        fclose(r->out);
    if (r->esc && r->esc != stdout)
        fclose(r->esc);
    for (size_t i = 0; i < r->ids_cap; i++)
        free(r->ids[i]);
    free(r->ids);
    if (r->tiers)
        for (int i = 0; i < r->cfg.ncascades; i++)
            free(r->tiers[i]);
    free(r->tiers);
    free(r->slots);
    wk_buf_release(&r->line);
    wk_config_free(&r->cfg);
    free(r);
    return code;
}
