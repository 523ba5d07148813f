/*
 * The call dispatcher (see calls.h).
 *
 * A call walks its deployments in order: the tier's model, then each
 * fallback. On one deployment it is retried under the retry policy; when the
 * retries run out, the server asks for a wait longer than we hold a task
 * for, the provider's spend limit is hit, or its breaker is open, the call
 * moves to the next deployment. Before each send the provider's gate must
 * be open: in-flight below max_inflight, a request and the tokens in the
 * per-minute buckets, and no pause asked for by its rate-limit headers.
 * Calls that find the gate shut wait in the provider's FIFO.
 *
 * Outages: when the breaker opens, or the provider's rate-limit headers ask
 * for a pause, calls are held in the FIFO, not failed: a failure while the
 * breaker is open costs the call no retry, and once the cooldown is over one
 * call probes while the others wait for its outcome. No call is held longer
 * than --max-wait in all; past it the call moves to its fallbacks (or fails,
 * and the task's `error` is retried by a rerun: sinks/results_file.h). Every
 * pause is capped by --max-wait, however far a reset header says, and each
 * episode is told once on stderr.
 */
#include "calls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http.h"
#include "lanes_int.h"
#include "lib/util.h"
#include "worker/cost.h"

#define MSG_MAX 512

typedef struct wk_call wk__call;

typedef struct pstate {
    wk_calls *c;
    const wk_provider *p;
    int inflight;
    double rpm_tokens, tpm_tokens;
    uint64_t refilled_ms;
    uint64_t paused_until; /* from the provider's rate-limit headers */
    int failures;          /* consecutive transient failures */
    uint64_t open_until;   /* breaker open until then; after it, calls probe */
    int disabled;          /* spend limit reached */
    int probing;           /* the breaker's probe is in flight */
    int told_open;         /* the open breaker was said on stderr (this episode) */
    int told_held;         /* calls given up after --max-wait were said (this episode) */
    int told_far_reset;    /* a rate-limit reset past --max-wait was said */
    int told_flex;         /* flex capacity errors moving calls to sync were said */
    uint64_t down_since;   /* when the breaker opened (this episode) */
    wk__call *wait_head, *wait_tail;
    uv_timer_t wake;
} pstate;

struct wk_call {
    wk_calls *c;
    const wk_model *primary; /* the first deployment: deps.v[0] */
    const wk_model *dep;     /* the deployment in use */
    int dep_idx;             /* -1: primary; else index into the fallbacks, deps.v[1..] */
    wk_deployments deps;     /* what the call may walk (the task's data policy) */
    char *task_id;
    cJSON *messages;
    long est;
    int attempt; /* the task's attempt number, part of the cache key */
    prov_request req;
    const wk_model *built_for; /* the deployment req was built for */
    int logprobs;              /* ask for the answer's token logprobs */
    int n;                     /* answers asked for in one call (APIs that take "n") */
    int retries_here, retries, fallbacks;
    /* When the call began to wait out a pause or an open breaker (probes included); 0: not. */
    uint64_t held_since;
    int probe; /* this call is the breaker's probe */
    double reserved;
    uint64_t started_ms;
    uv_timer_t timer; /* backoff between retries */
    wk_call_cb cb;
    void *arg;
    int waiting; /* in a provider's FIFO */
    wk__call *wait_next;
    wk__call *prev, *next; /* every live call, for shutdown */
    char reason[PROV_REASON_MAX];
    char msg[MSG_MAX];
    /* Lanes (lanes_int.h): the tier's lane, where the call runs now, and since when flex waits. */
    int lane, ran;
    uint64_t flex_since;
    char batch_id[WK_BATCH_ID_MAX];
};

struct wk_calls {
    uv_loop_t *loop;
    const wk_config *cfg;
    wk_calls_opts o;
    wk_http *http;
    pstate *ps;
    uint64_t *unavailable_until; /* per model */
    wk__call *live;
    wk__call *budget_head, *budget_tail; /* calls waiting for reservations to settle */
    double spent, reserved;
    int budget_hit;
    int closing; /* provider timers still closing at shutdown */
    uint64_t rng;
    wk__batcher *batcher; /* the batch lane (batch.c) */
};

static void try_deployment(wk__call *k);
static void gate(wk__call *k);
static void pump(pstate *ps);
static void give_up_held(pstate *ps, wk__call *k, long held_ms);

static double jitter(wk_calls *c)
{
    /* xorshift64: the jitter needs spread, not secrecy. */
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return (double)(c->rng >> 11) / 9007199254740992.0;
}

static pstate *pstate_of(wk_calls *c, const wk_model *m)
{
    return &c->ps[m->provider - c->cfg->providers];
}

static uint64_t *unavail_of(wk_calls *c, const wk_model *m)
{
    return &c->unavailable_until[m - c->cfg->models];
}

/* ---- finishing ------------------------------------------------------------- */

static void call_closed(uv_handle_t *h)
{
    wk__call *k = h->data;
    free(k->task_id);
    cJSON_Delete(k->messages);
    prov_request_clear(&k->req);
    free(k);
}

static void unlink_call(wk__call *k)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        k->c->live = k->next;
    if (k->next)
        k->next->prev = k->prev;
}

static void release(wk__call *k)
{
    k->c->reserved -= k->reserved;
    if (k->c->reserved < 0)
        k->c->reserved = 0;
    k->reserved = 0;
}

/* Money came free: calls waiting on the run budget try again, in order. */
static void budget_pump(wk_calls *c)
{
    wk__call *k = c->budget_head;
    c->budget_head = c->budget_tail = NULL;
    while (k) {
        wk__call *next = k->wait_next;
        k->waiting = 0;
        try_deployment(k); /* may queue it again at the tail */
        k = next;
    }
}

static char *redact(const wk_calls *c, char *s, int *fresh);

static void finish(wk__call *k, prov_response *resp, int budget_denied)
{
    wk_call_outcome out = {0};
    if (resp) {
        /* The answer too: it is stored, cached and fed back to the next model. */
        int fresh;
        char *t = redact(k->c, resp->text, &fresh);
        if (fresh) {
            free(resp->text);
            resp->text = t;
        }
        t = redact(k->c, resp->finish_reason, &fresh);
        if (fresh) {
            free(resp->finish_reason);
            resp->finish_reason = t;
        }
    }
    out.ok = resp != NULL;
    out.resp = resp;
    out.served = k->dep ? k->dep : k->primary;
    out.retries = k->retries;
    out.fallbacks = k->fallbacks;
    out.reason = k->reason;
    out.message = k->msg;
    out.budget_denied = budget_denied;
    out.latency_ms = (long)(wk_now_ms() - k->started_ms);
    out.to_sync = k->ran == WK_RAN_FLEX_SYNC || k->ran == WK_RAN_BATCH_SYNC;
    out.batch_id = k->batch_id[0] ? k->batch_id : NULL;
    release(k);
    /* The cache keeps the primary's answers only: its key is the primary's request. */
    if (resp && k->c->o.cache && out.served == k->primary && k->built_for == k->primary)
        wk_cache_put(k->c->o.cache, k->primary->id, k->primary->provider->name, k->req.body,
                     strlen(k->req.body), k->attempt, resp->text, resp->finish_reason,
                     resp->prompt_tokens, resp->completion_tokens);
    if (resp) {
        int estimated;
        k->c->spent += wk_cost_charged_at(out.served, k->ran, k->est, resp->prompt_tokens,
                                          resp->completion_tokens, resp->cached_tokens, &estimated);
    }
    unlink_call(k);
    k->cb(k->arg, &out);
    uv_timer_stop(&k->timer);
    uv_close((uv_handle_t *)&k->timer, call_closed);
    if (k->c->budget_head)
        budget_pump(k->c);
}

/*
 * Every configured key, wherever it appears in s, becomes "<redacted>": a
 * gateway may echo the key it got ("Incorrect API key provided: sk-..."),
 * and what a provider says goes to results, the journal and stderr. Keys of
 * every provider, not only the one that answered: a misrouted key is a key.
 * Returns s, or a new string the caller frees instead (*fresh set).
 */
static char *redact(const wk_calls *c, char *s, int *fresh)
{
    *fresh = 0;
    for (int i = 0; s && i < c->cfg->nproviders; i++) {
        const char *key = c->cfg->providers[i].key;
        size_t kn = key ? strlen(key) : 0;
        if (kn < 4 || !strstr(s, key))
            continue;
        wk_buf b;
        wk_buf_init(&b, SIZE_MAX / 2);
        const char *p = s, *hit;
        while ((hit = strstr(p, key)) != NULL) {
            wk_buf_append(&b, p, (size_t)(hit - p));
            wk_buf_append(&b, "<redacted>", 10);
            p = hit + kn;
        }
        wk_buf_append(&b, p, strlen(p));
        char *out = wk_buf_detach(&b, NULL);
        if (*fresh)
            free(s);
        s = out;
        *fresh = 1;
    }
    return s;
}

static void fail(wk__call *k, const char *reason, const char *msg)
{
    int fresh;
    char *m = redact(k->c, (char *)msg, &fresh);
    snprintf(k->reason, sizeof k->reason, "%s", reason);
    snprintf(k->msg, sizeof k->msg, "%s", m);
    if (fresh)
        free(m);
}

/* ---- deployments ----------------------------------------------------------- */

/* Why m cannot take a call now, or NULL when it can. */
static const char *unavailable(wk__call *k, const wk_model *m)
{
    wk_calls *c = k->c;
    pstate *ps = pstate_of(c, m);
    uint64_t now = wk_now_ms();
    if (ps->disabled)
        return "the provider's spend limit is reached";
    if (*unavail_of(c, m) > now)
        return "the server asked for a longer wait than a task is held for (--max-wait)";
    return NULL;
}

/*
 * A deployment whose provider's breaker is open is passed over while a later
 * one may answer; the last one holds the call (see the top of this file).
 */
static int breaker_open(wk_calls *c, const wk_model *m)
{
    return pstate_of(c, m)->open_until > wk_now_ms();
}

/* Moves to the next deployment that can take the call, or finishes the call. */
static void next_deployment(wk__call *k)
{
    release(k);
    for (;;) {
        k->dep_idx++;
        if (k->dep_idx >= k->deps.n - 1) {
            if (!k->reason[0])
                fail(k, "unavailable", "no deployment of the model can take the call");
            finish(k, NULL, 0);
            return;
        }
        const wk_model *m = k->deps.v[k->dep_idx + 1];
        const char *why = unavailable(k, m);
        if (!why && k->dep_idx + 2 < k->deps.n && breaker_open(k->c, m))
            why = "the provider's circuit breaker is open";
        if (why) {
            char *msg = wk_xasprintf("%s: %s", m->name, why);
            fail(k, "unavailable", msg);
            free(msg);
            continue;
        }
        k->dep = m;
        k->fallbacks++;
        k->retries_here = 0;
        k->held_since = 0; /* --max-wait bounds the wait per deployment */
        try_deployment(k);
        return;
    }
}

/*
 * The request for deployment m. A fallback whose API has no logprobs is
 * asked without them: the answer comes back with none, and the router's
 * confidence check treats that as doubt.
 */
static void build_request(wk__call *k, const wk_model *m)
{
    const prov_ops *ops = prov_find(m->provider->api);
    ops->build(m, k->task_id, k->messages, &k->req);
    if (k->logprobs && ops->ask_logprobs)
        (void)ops->ask_logprobs(&k->req);
    if (k->n > 1 && ops->ask_n)
        (void)ops->ask_n(&k->req, k->n);
    if (k->ran == WK_LANE_FLEX)
        (void)wk__flex_ask(&k->req, m->provider->api);
    k->built_for = m;
}

/* Builds the request for the current deployment, reserves the budget, and sends. */
static void try_deployment(wk__call *k)
{
    wk_calls *c = k->c;
    const wk_model *m = k->dep;
    if (k->built_for != m) {
        prov_request_clear(&k->req);
        build_request(k, m);
    }
    double worst = wk_cost_worst_at(m, k->ran, k->est); /* at the lane's price */
    if (c->o.run_budget_usd > 0 && c->spent + worst <= c->o.run_budget_usd &&
        c->spent + c->reserved + worst > c->o.run_budget_usd) {
        /*
         * Calls in flight hold reservations that will mostly be released:
         * wait for them rather than stop far below the limit.
         */
        k->waiting = 2;
        k->wait_next = NULL;
        if (c->budget_tail)
            c->budget_tail->wait_next = k;
        else
            c->budget_head = k;
        c->budget_tail = k;
        return;
    }
    if (c->o.run_budget_usd > 0 && c->spent + c->reserved + worst > c->o.run_budget_usd) {
        c->budget_hit = 1;
        char *msg = wk_xasprintf("run budget $%.6g: spent $%.6g, $%.6g reserved by calls in "
                                 "flight, the next call to %s may cost up to $%.6g",
                                 c->o.run_budget_usd, c->spent, c->reserved, m->name, worst);
        fail(k, "run_budget", msg);
        free(msg);
        finish(k, NULL, 1);
        return;
    }
    c->reserved += worst;
    k->reserved = worst;
    if (k->ran == WK_LANE_BATCH) { /* no provider gate: the batch is one request later */
        wk__batcher_add(c->batcher, k);
        return;
    }
    gate(k);
}

/* ---- the provider gate ----------------------------------------------------- */

static void refill(pstate *ps)
{
    uint64_t now = wk_now_ms();
    double dt = (double)(now - ps->refilled_ms);
    ps->refilled_ms = now;
    if (ps->p->rpm > 0) {
        ps->rpm_tokens += dt * ps->p->rpm / 60000.0;
        if (ps->rpm_tokens > ps->p->rpm)
            ps->rpm_tokens = ps->p->rpm;
    }
    if (ps->p->tpm > 0) {
        ps->tpm_tokens += dt * ps->p->tpm / 60000.0;
        if (ps->tpm_tokens > ps->p->tpm)
            ps->tpm_tokens = ps->p->tpm;
    }
}

static double tokens_needed(const pstate *ps, const wk__call *k)
{
    double need = (double)(k->est + k->dep->max_tokens);
    /* A request bigger than a whole minute's tokens still goes, on a full bucket. */
    return need > ps->p->tpm ? ps->p->tpm : need;
}

/* The breaker has tripped and not yet seen a success: open, or half-open (probing). */
static int breaker_tripped(const pstate *ps)
{
    return ps->failures >= ps->p->breaker_failures;
}

/*
 * 0 when k may be sent now; else ms until it might (-1: when a call in flight
 * ends). *hold gets the part of the wait that is an outage or a pause the
 * provider asked for (bounded by --max-wait), as opposed to our own limits.
 */
static long gate_wait(pstate *ps, const wk__call *k, long *hold)
{
    uint64_t now = wk_now_ms();
    long wait = 0;
    *hold = 0;
    if (ps->paused_until > now)
        wait = (long)(ps->paused_until - now);
    if (ps->open_until > now && (long)(ps->open_until - now) > wait)
        wait = (long)(ps->open_until - now);
    *hold = wait;
    if (wait == 0 && breaker_tripped(ps) && ps->probing) {
        *hold = 1;
        return -1; /* half-open: the probe's outcome decides */
    }
    refill(ps);
    if (ps->p->rpm > 0 && ps->rpm_tokens < 1) {
        long w = (long)((1 - ps->rpm_tokens) * 60000.0 / ps->p->rpm) + 1;
        wait = w > wait ? w : wait;
    }
    if (ps->p->tpm > 0) {
        double need = tokens_needed(ps, k);
        if (ps->tpm_tokens < need) {
            long w = (long)((need - ps->tpm_tokens) * 60000.0 / ps->p->tpm) + 1;
            wait = w > wait ? w : wait;
        }
    }
    if (wait == 0 && ps->inflight >= ps->p->max_inflight)
        return -1;
    return wait;
}

static void on_http(void *arg, const wk_http_result *res);

static void send_now(pstate *ps, wk__call *k)
{
    wk_calls *c = k->c;
    k->probe = 0;
    if (breaker_tripped(ps)) {
        ps->probing = 1; /* the one call that tries the provider after the cooldown */
        k->probe = 1;
    }
    if (ps->p->rpm > 0)
        ps->rpm_tokens -= 1;
    if (ps->p->tpm > 0)
        ps->tpm_tokens -= tokens_needed(ps, k);
    ps->inflight++;
    wk_http_opts ho = {
        .connect_timeout_ms = c->o.connect_timeout_ms,
        .first_byte_timeout_ms = c->o.first_byte_timeout_ms,
        .total_timeout_ms = c->o.total_timeout_ms,
        .body_cap = c->o.body_cap,
    };
    if (k->ran == WK_LANE_FLEX) { /* flex queues the request: its first byte may take minutes */
        ho.first_byte_timeout_ms = c->o.flex_first_byte_timeout_ms;
        ho.total_timeout_ms += c->o.flex_first_byte_timeout_ms;
    }
    ho.borrow = 1; /* k->req outlives the transfer: it is rebuilt or freed only after on_http */
    if (wk_http_post(c->http, k->req.url, (const char *const *)k->req.headers, k->req.nheaders,
                     k->req.body, k->req.body_len, &ho, on_http, k) != 0) {
        ps->inflight--;
        if (k->probe)
            ps->probing = 0;
        fail(k, "transport", "could not start the HTTP request");
        next_deployment(k);
    }
}

static void enqueue(pstate *ps, wk__call *k)
{
    k->waiting = 1;
    k->wait_next = NULL;
    if (ps->wait_tail)
        ps->wait_tail->wait_next = k;
    else
        ps->wait_head = k;
    ps->wait_tail = k;
}

static void gate(wk__call *k)
{
    pstate *ps = pstate_of(k->c, k->dep);
    /* FIFO: a call never overtakes one that waits already. */
    long hold;
    if (!ps->wait_head && gate_wait(ps, k, &hold) == 0) {
        send_now(ps, k);
        return;
    }
    /* The --max-wait clock runs from here, not from when the call reaches the head. */
    if (!k->held_since && (ps->paused_until > wk_now_ms() || breaker_tripped(ps)))
        k->held_since = wk_now_ms();
    enqueue(ps, k);
    pump(ps);
}

static void on_wake(uv_timer_t *t)
{
    pump(t->data);
}

/* A call held past --max-wait by an outage or a pause moves on (fallbacks, else fails). */
static void give_up_held(pstate *ps, wk__call *k, long held_ms)
{
    const char *what = ps->open_until > wk_now_ms() || breaker_tripped(ps)
                           ? "circuit breaker open (the provider is failing)"
                           : "paused by its rate limits";
    if (!ps->told_held) {
        ps->told_held = 1;
        fprintf(stderr,
                "cascade: provider %s: %s for longer than --max-wait (%.0f s); its calls go "
                "to fallbacks, or fail and end the task `error` (a rerun of the same command "
                "runs those tasks again)\n",
                ps->p->name, what, (double)ps->c->o.retry.max_wait_ms / 1000);
    }
    char *m = wk_xasprintf("provider %s: %s; held %.1f s, --max-wait %.0f s", ps->p->name, what,
                           (double)held_ms / 1000, (double)ps->c->o.retry.max_wait_ms / 1000);
    fail(k, "unavailable", m);
    free(m);
    next_deployment(k);
}

static void pump(pstate *ps)
{
    while (ps->wait_head) {
        wk__call *k = ps->wait_head;
        if (unavailable(k, k->dep)) {
            /* The deployment went away while the call waited: move on. */
            ps->wait_head = k->wait_next;
            if (!ps->wait_head)
                ps->wait_tail = NULL;
            k->waiting = 0;
            fail(k, "unavailable", unavailable(k, k->dep));
            next_deployment(k);
            continue;
        }
        long hold;
        long w = gate_wait(ps, k, &hold);
        if (w != 0 && hold > 0) {
            /* An outage or a pause: held, but never past --max-wait in all. */
            uint64_t now = wk_now_ms();
            long max_wait = ps->c->o.retry.max_wait_ms;
            if (!k->held_since)
                k->held_since = now;
            long held = (long)(now - k->held_since);
            /* A breaker that stays open past the bound is not worth holding for at all. */
            int long_open = ps->open_until > now && ps->p->breaker_cooldown_ms >= max_wait;
            if (held + (w > 0 ? w : 0) > max_wait || (w < 0 && held >= max_wait) || long_open) {
                ps->wait_head = k->wait_next;
                if (!ps->wait_head)
                    ps->wait_tail = NULL;
                k->waiting = 0;
                give_up_held(ps, k, held);
                continue;
            }
            long left = max_wait - held;
            if (w < 0 || left < w)
                w = left > 0 ? left : 1;
        }
        if (w != 0) {
            if (w > 0)
                uv_timer_start(&ps->wake, on_wake, (uint64_t)w, 0);
            return;
        }
        ps->wait_head = k->wait_next;
        if (!ps->wait_head)
            ps->wait_tail = NULL;
        k->waiting = 0;
        send_now(ps, k);
    }
}

/* ---- outcomes -------------------------------------------------------------- */

static void on_backoff(uv_timer_t *t)
{
    wk__call *k = t->data;
    if (unavailable(k, k->dep)) {
        fail(k, "unavailable", unavailable(k, k->dep));
        next_deployment(k);
        return;
    }
    gate(k);
}

/*
 * The provider's own rate-limit headers: when a limit is about to run out,
 * pause the provider until it resets instead of waiting for the 429.
 */
static void note_rate_limits(pstate *ps, const wk_http_result *res)
{
    int low = (res->rl_remaining_requests >= 0 && res->rl_remaining_requests <= 1) ||
              res->rl_remaining_tokens == 0;
    if (!low)
        return;
    long ms = res->rl_reset_ms > 0 ? res->rl_reset_ms : 1000;
    long max_wait = ps->c->o.retry.max_wait_ms;
    if (ms > max_wait) {
        /* A far reset (999999h, a skewed clock) would pause the provider for good. */
        if (!ps->told_far_reset)
            fprintf(stderr,
                    "cascade: provider %s: its rate-limit headers say the limit resets in "
                    "%.0f s; pausing it %.0f s (--max-wait) instead, then trying again\n",
                    ps->p->name, (double)ms / 1000, (double)max_wait / 1000);
        ps->told_far_reset = 1;
        ms = max_wait;
    }
    uint64_t until = wk_now_ms() + (uint64_t)ms;
    if (until > ps->paused_until)
        ps->paused_until = until;
}

static void breaker_failure(pstate *ps, const char *why)
{
    if (++ps->failures < ps->p->breaker_failures)
        return;
    uint64_t now = wk_now_ms();
    ps->open_until = now + (uint64_t)ps->p->breaker_cooldown_ms;
    if (!ps->told_open) {
        ps->told_open = 1;
        ps->down_since = now;
        fprintf(stderr,
                "cascade: provider %s: %d failures in a row (%s); circuit breaker open: its "
                "calls are held, one probe every %.1f s, each call at most --max-wait "
                "(%.0f s)\n",
                ps->p->name, ps->failures, why, (double)ps->p->breaker_cooldown_ms / 1000,
                (double)ps->c->o.retry.max_wait_ms / 1000);
    }
}

/* A success: the breaker closes, and an outage that was told is told over. */
static void breaker_success(pstate *ps)
{
    if (ps->told_open)
        fprintf(stderr, "cascade: provider %s: answering again after %.1f s; breaker closed\n",
                ps->p->name, (double)(wk_now_ms() - ps->down_since) / 1000);
    ps->failures = 0;
    ps->open_until = 0;
    ps->told_open = ps->told_held = 0;
}

/*
 * The flex tier has no capacity for the call now (lanes_int.h): wait and
 * try flex again, without spending a retry, until --flex-max-wait has
 * passed since the first such answer; then the call goes to the sync lane,
 * reserved and priced there.
 */
static void flex_capacity(pstate *ps, wk__call *k, const wk_http_result *res)
{
    wk_calls *c = k->c;
    uint64_t now = wk_now_ms();
    if (!k->flex_since)
        k->flex_since = now;
    long waited = (long)(now - k->flex_since);
    if (waited >= c->o.flex_max_wait_ms) {
        if (!ps->told_flex)
            fprintf(stderr,
                    "cascade: provider %s: the flex tier has no capacity (HTTP %ld) after "
                    "--flex-max-wait (%.0f s); such calls go to the sync lane at the sync price\n",
                    ps->p->name, res->status, (double)c->o.flex_max_wait_ms / 1000);
        ps->told_flex = 1;
        release(k);
        k->ran = WK_RAN_FLEX_SYNC;
        k->built_for = NULL; /* rebuilt without service_tier */
        try_deployment(k);
        return;
    }
    long delay = res->retry_after_ms > 0 ? res->retry_after_ms : 1000;
    if (delay > c->o.flex_max_wait_ms - waited)
        delay = c->o.flex_max_wait_ms - waited;
    k->timer.data = k;
    uv_timer_start(&k->timer, on_backoff, (uint64_t)(delay > 0 ? delay : 0), 0);
}

static void on_http(void *arg, const wk_http_result *res)
{
    wk__call *k = arg;
    wk_calls *c = k->c;
    pstate *ps = pstate_of(c, k->dep);
    ps->inflight--;
    if (k->probe) {
        ps->probing = 0;
        k->probe = 0;
    }
    note_rate_limits(ps, res);
    const prov_ops *ops = prov_find(k->dep->provider->api);
    char reason[PROV_REASON_MAX], msg[MSG_MAX];
    wk_http_result r = *res;
    if (k->ran == WK_LANE_FLEX && wk__flex_capacity(k->dep->provider->api, res)) {
        flex_capacity(ps, k, res);
        pump(ps);
        return;
    }

    if (res->rc == 0 && res->status >= 200 && res->status <= 299) {
        prov_response pr;
        if (ops->parse(res->status, res->body, res->body_len, &pr, reason, msg, sizeof msg) == 0) {
            breaker_success(ps);
            finish(k, &pr, 0);
            prov_response_clear(&pr);
            pump(ps);
            return;
        }
        /* A cut or garbled body is a transport fault: the same request may come back whole. */
        fail(k, reason, msg);
        r.rc = WK_EIO;
    } else if (res->rc == WK_ETOOBIG) {
        char *m = wk_xasprintf("%s: the response body is over the %zu-byte cap",
                               k->dep->provider->name, c->o.body_cap);
        fail(k, "body_too_big", m);
        free(m);
    } else if (res->rc != 0) {
        char *e = wk_escape_ctl(res->error, strlen(res->error), 300);
        char *m = wk_xasprintf("%s: %s", k->dep->provider->name, e);
        fail(k, res->timed_out ? "timeout" : "transport", m);
        free(m);
        free(e);
    } else {
        prov_response pr;
        ops->parse(res->status, res->body, res->body_len, &pr, reason, msg, sizeof msg);
        prov_response_clear(&pr);
        if ((res->status == 401 || res->status == 403) && k->dep->provider->key_env) {
            char *m = wk_xasprintf("%s (provider %s, key from $%s)", msg, k->dep->provider->name,
                                   k->dep->provider->key_env);
            fail(k, reason, m);
            free(m);
        } else {
            char *m = wk_xasprintf("%s (provider %s)", msg, k->dep->provider->name);
            fail(k, reason, m);
            free(m);
        }
    }

    long delay = 0;
    wk_retry_kind d =
        wk_retry_decide(&c->o.retry, &r, res->body, k->retries_here, jitter(c), &delay);
    if (r.rc == WK_EIO || (r.status >= 500 && r.status <= 599))
        breaker_failure(ps, k->reason);
    if (d == WK_RETRY_AFTER && ps->open_until > wk_now_ms()) {
        /*
         * The provider is down, not this request: try a fallback, or wait for
         * the provider without spending a retry.
         */
        if (k->dep_idx + 2 < k->deps.n)
            next_deployment(k);
        else
            gate(k);
        pump(ps);
        return;
    }
    switch (d) {
    case WK_RETRY_AFTER:
        k->retries_here++;
        k->retries++;
        k->timer.data = k;
        /*
         * The loop's cached time is this iteration's start, which may be well before
         * the response arrived; a Retry-After counts from now, so the clock is read.
         */
        uv_update_time(k->timer.loop);
        uv_timer_start(&k->timer, on_backoff, (uint64_t)delay, 0);
        break;
    case WK_RETRY_UNAVAILABLE:
        /* A Retry-After past --max-wait: try elsewhere, and this deployment again after it. */
        if (delay > c->o.retry.max_wait_ms)
            delay = c->o.retry.max_wait_ms;
        fprintf(stderr,
                "cascade: %s: the provider asks for a wait longer than --max-wait (%.0f s); "
                "trying fallbacks, this deployment again in %.0f s\n",
                k->dep->name, (double)c->o.retry.max_wait_ms / 1000, (double)delay / 1000);
        *unavail_of(c, k->dep) = wk_now_ms() + (uint64_t)delay;
        next_deployment(k);
        break;
    case WK_RETRY_SPEND_LIMIT:
        if (!ps->disabled)
            fprintf(stderr,
                    "cascade: provider %s: spend limit reached; no more calls to it "
                    "in this run\n",
                    ps->p->name);
        ps->disabled = 1;
        fail(k, "spend_limit", "the provider's spend limit is reached");
        next_deployment(k);
        break;
    case WK_RETRY_NO:
        next_deployment(k);
        break;
    }
    pump(ps);
}

/* ---- lifecycle ------------------------------------------------------------- */

wk_calls *wk_calls_new(uv_loop_t *loop, const wk_config *cfg, const wk_calls_opts *opts)
{
    wk_calls *c = wk_xcalloc(1, sizeof *c);
    c->loop = loop;
    c->cfg = cfg;
    c->o = *opts;
    c->http = wk_http_new(loop);
    if (!c->http) {
        free(c);
        return NULL;
    }
    c->rng = (wk_now_ms() << 16) ^ (uint64_t)getpid() ^ 0x9e3779b97f4a7c15ull;
    c->ps = wk_xcalloc((size_t)cfg->nproviders, sizeof(pstate));
    for (int i = 0; i < cfg->nproviders; i++) {
        pstate *ps = &c->ps[i];
        ps->c = c;
        ps->p = &cfg->providers[i];
        ps->rpm_tokens = ps->p->rpm;
        ps->tpm_tokens = ps->p->tpm;
        ps->refilled_ms = wk_now_ms();
        uv_timer_init(loop, &ps->wake);
        ps->wake.data = ps;
    }
    c->unavailable_until = wk_xcalloc((size_t)cfg->nmodels + 1, sizeof(uint64_t));
    c->batcher = wk__batcher_new(loop, c->http, &c->o, cfg);
    return c;
}

static void calls_closed(uv_handle_t *h)
{
    wk_calls *c = h->data;
    /* libuv runs close callbacks in no promised order: count them down. */
    if (--c->closing > 0)
        return;
    free(c->ps);
    free(c->unavailable_until);
    free(c);
}

void wk_calls_free(wk_calls *c)
{
    if (!c)
        return;
    wk__batcher_free(c->batcher);
    c->batcher = NULL;
    wk_http_free(c->http);
    while (c->live) {
        wk__call *k = c->live;
        unlink_call(k);
        uv_timer_stop(&k->timer);
        uv_close((uv_handle_t *)&k->timer, call_closed);
    }
    if (c->cfg->nproviders == 0) {
        free(c->ps);
        free(c->unavailable_until);
        free(c);
        return;
    }
    c->closing = c->cfg->nproviders;
    for (int i = 0; i < c->cfg->nproviders; i++) {
        c->ps[i].wake.data = c;
        uv_timer_stop(&c->ps[i].wake);
        uv_close((uv_handle_t *)&c->ps[i].wake, calls_closed);
    }
}

static void on_start(uv_timer_t *t)
{
    wk__call *k = t->data;
    const char *why = unavailable(k, k->primary);
    if (!why && k->deps.n > 1 && breaker_open(k->c, k->primary))
        why = "the provider's circuit breaker is open";
    if (why) {
        char *msg = wk_xasprintf("%s: %s", k->primary->name, why);
        fail(k, "unavailable", msg);
        free(msg);
        next_deployment(k);
    } else {
        k->dep = k->primary;
        try_deployment(k);
    }
}

wk_call *wk_call_prepare(wk_calls *c, const wk_model *m, const wk_deployments *deps,
                         const char *task_id, const cJSON *messages, long est_prompt_tokens,
                         int attempt, int logprobs, int n)
{
    wk__call *k = wk_xcalloc(1, sizeof *k);
    k->attempt = attempt;
    k->c = c;
    if (deps) {
        k->deps = *deps; /* never empty: answers.c fails a call with none before it gets here */
    } else {
        for (int f = -1; f < m->nfallbacks && k->deps.n < WK_DEPLOY_MAX; f++)
            k->deps.v[k->deps.n++] = f < 0 ? m : m->fallbacks[f];
    }
    /* The first deployment the task may reach: m itself unless its data class keeps it home. */
    k->primary = k->deps.v[0];
    k->dep_idx = -1;
    k->task_id = wk_xstrdup(task_id);
    k->messages = cJSON_Duplicate(messages, 1);
    k->est = est_prompt_tokens;
    k->logprobs = logprobs;
    k->n = n;
    /* Built now, once: the cache is keyed by this body, and it is what is sent. */
    build_request(k, k->primary);
    return k;
}

int wk_call_cached(const wk_call *k, wk_cached *hit)
{
    return k->c->o.cache && wk_cache_get(k->c->o.cache, k->primary->id,
                                         k->deps.bound ? k->primary->provider->name : NULL,
                                         k->req.body, strlen(k->req.body), k->attempt, hit);
}

void wk_call_drop(wk_call *k)
{
    if (!k)
        return;
    free(k->task_id);
    cJSON_Delete(k->messages);
    prov_request_clear(&k->req);
    free(k);
}

/* ---- the batch lane (lanes_int.h) ----------------------------------------- */

const wk_model *wk__call_dep(const wk_call *k)
{
    return k->dep;
}

const prov_request *wk__call_req(const wk_call *k)
{
    return &k->req;
}

const char *wk__call_task(const wk_call *k)
{
    return k->task_id;
}

int wk__call_seq(const wk_call *k)
{
    return k->attempt;
}

void wk__call_batched(wk_call *k, const char *batch_id, long status, const char *body, size_t len,
                      const char *reason, const char *message)
{
    wk_calls *c = k->c;
    snprintf(k->batch_id, sizeof k->batch_id, "%s", batch_id ? batch_id : "");
    const prov_ops *ops = prov_find(k->dep->provider->api);
    char r[PROV_REASON_MAX], m[MSG_MAX];
    prov_response pr;
    if (!reason) {
        int bad = ops->parse(status, body ? body : "", len, &pr, r, m, sizeof m);
        if (!bad && status >= 200 && status <= 299) {
            finish(k, &pr, 0);
            prov_response_clear(&pr);
            return;
        }
        prov_response_clear(&pr);
        char *msg = wk_xasprintf("%s (batch %s)", m, k->batch_id);
        fail(k, r, msg);
        free(msg);
    } else {
        fail(k, reason, message ? message : reason);
    }
    /* What a later batch may answer: no response, a garbled one, 408, 409, 429, 5xx. */
    int transient = reason || (status >= 200 && status <= 299) || status == 408 || status == 409 ||
                    status == 429 || status >= 500;
    /* A whole batch that failed is tried once more, then its requests climb. */
    int limit = reason && strcmp(reason, "batch_failed") == 0 ? 1 : c->o.retry.max_retries;
    if (transient && k->retries_here < limit) {
        k->retries_here++;
        k->retries++;
        wk__batcher_add(c->batcher, k);
        return;
    }
    next_deployment(k);
}

void wk__call_to_sync(wk_call *k)
{
    release(k);
    k->ran = WK_RAN_BATCH_SYNC;
    k->retries_here = 0;
    k->built_for = NULL;
    try_deployment(k); /* reserved and sent at the sync price */
}

int wk_calls_batched(const wk_calls *c)
{
    return c->batcher ? wk__batcher_calls(c->batcher) : 0;
}

int wk_calls_parked(const wk_calls *c)
{
    int n = c->batcher ? wk__batcher_calls(c->batcher) : 0;
    for (const wk__call *k = c->budget_head; k; k = k->wait_next)
        n++;
    return n;
}

void wk_call_set_lane(wk_call *k, int lane)
{
    k->lane = k->ran = lane;
    if (lane == WK_LANE_FLEX) { /* the body asks for the flex tier */
        prov_request_clear(&k->req);
        build_request(k, k->primary);
    }
}

void wk_call_send(wk_call *k, wk_call_cb cb, void *arg)
{
    wk_calls *c = k->c;
    k->cb = cb;
    k->arg = arg;
    k->started_ms = wk_now_ms();
    uv_timer_init(c->loop, &k->timer);
    k->timer.data = k;
    k->next = c->live;
    if (c->live)
        c->live->prev = k;
    c->live = k;
    /* The first step runs from the loop, so cb never fires inside this call. */
    uv_timer_start(&k->timer, on_start, 0, 0);
}

void wk_calls_charge(wk_calls *c, double usd)
{
    if (c && usd > 0)
        c->spent += usd;
}
