/*
 * One model call, from the router's CALL action to an answer or a final
 * failure: deployments (the model, then its fallbacks at other providers),
 * retries under the retry policy, per-provider limits (in flight, requests
 * and tokens per minute, the provider's own rate-limit headers, a circuit
 * breaker, a spend limit that disables it), and the run budget, reserved
 * at the worst case before a call and settled on the real usage.
 *
 * Retries (same deployment), fallbacks (next deployment) and escalations
 * (next tier, the router's business) are three separate counters.
 */
#ifndef WK_CALLS_H
#define WK_CALLS_H

#include <cjson/cJSON.h>
#include <uv.h>

#include "retry.h"
#include "worker/config.h"
#include "worker/providers/prov.h"
#include "worker/store/cache.h"
#include "worker/store/journal.h"

typedef struct wk_calls wk_calls;
typedef struct wk_call wk_call;

typedef struct wk_calls_opts {
    wk_retry_policy retry;
    long connect_timeout_ms;
    long first_byte_timeout_ms;
    long total_timeout_ms;
    size_t body_cap;
    double run_budget_usd; /* 0: none */
    wk_cache *cache;       /* the response cache (borrowed); NULL: none */
    /* The flex lane (lanes.h): a slow first byte is normal there, a capacity error is not final. */
    long flex_first_byte_timeout_ms; /* [15 min] */
    long flex_max_wait_ms;           /* capacity errors retried on flex this long, then sync */
    /* The batch lane (net/batch.c): requests per batch, linger, first poll interval. */
    long batch_max, batch_linger_ms, batch_poll_ms;
    wk_journal *journal; /* batches are journaled here (borrowed); NULL: none */
    /*
     * 1 when no call can join an open batch soon (every task in flight waits
     * on a batch, and no new task comes): the open batches are sent then.
     * NULL: only --batch-max and --batch-linger send them.
     */
    int (*batch_idle)(void *arg);
    void *batch_idle_arg;
    /*
     * --deadline: when (wk_now_ms) the run must be done; 0: none. With a
     * quarter of it left, batches still out are cancelled and their
     * unanswered requests, like any call reaching a batch tier after that,
     * go to the sync lane.
     */
    uint64_t deadline_at;
    long deadline_ms;
} wk_calls_opts;

typedef struct wk_call_outcome {
    int ok;
    prov_response *resp;    /* ok: borrowed for the callback */
    const wk_model *served; /* the deployment that answered, or the last one tried */
    int retries;            /* retries of this call, all deployments together */
    int fallbacks;          /* deployments moved to after the first */
    const char *reason;     /* !ok: "http_401", "timeout", "unavailable", "run_budget", ... */
    const char *message;    /* !ok: one line */
    int budget_denied;      /* !ok: the run budget cannot hold the call */
    long latency_ms;        /* from the first send to the outcome */
    int to_sync;            /* a flex or batch call moved to the sync lane (lanes.h) */
    const char *batch_id;   /* a batch-lane call: the provider's batch that carried it */
} wk_call_outcome;

typedef void (*wk_call_cb)(void *arg, const wk_call_outcome *o);

/* cfg is borrowed and must outlive the dispatcher. */
wk_calls *wk_calls_new(uv_loop_t *loop, const wk_config *cfg, const wk_calls_opts *opts);
/* Aborts calls in flight (no callbacks) and closes handles; run the loop afterwards. */
void wk_calls_free(wk_calls *c);

/*
 * `logprobs`: the request asks for the answer's token logprobs (providers
 * that can give them; see prov_ops.ask_logprobs); `n` > 1: for n answers
 * (APIs that take "n"; see prov_ops.ask_n).
 * A call in two steps, so its request body is built once: prepared (the
 * primary's request built; `messages` copied), looked up in the response
 * cache, then sent or dropped. A prepared call must be sent or dropped.
 * An answer from the primary deployment is put in the cache when it comes.
 * attempt (the task's attempt number, from 1) is part of the cache key.
 * `deps` (copied; NULL: m and all its fallbacks) are the deployments the call
 * may walk, the first of them its primary; nothing else is sent to, and a
 * bound set takes cache hits only from entries its primary's provider made.
 */
wk_call *wk_call_prepare(wk_calls *c, const wk_model *m, const wk_deployments *deps,
                         const char *task_id, const cJSON *messages, long est_prompt_tokens,
                         int attempt, int logprobs, int n);
/* 1 with *hit filled (free with wk_cached_clear) when the cache has the answer. */
int wk_call_cached(const wk_call *k, wk_cached *hit);
/* Sends a prepared call (consumed); cb fires exactly once, from the loop. */
void wk_call_send(wk_call *k, wk_call_cb cb, void *arg);
/*
 * The lane the call goes on (WK_LANE_*, lanes.h; default sync), set before
 * it is sent: it is priced, reserved and sent there.
 */
void wk_call_set_lane(wk_call *k, int lane);
/* Calls waiting in provider batches (lanes.h). */
int wk_calls_batched(const wk_calls *c);
/* Calls parked until something else moves: in a batch, or waiting on the run budget. */
int wk_calls_parked(const wk_calls *c);
/* Frees a prepared call that is not sent; NULL is a no-op. */
void wk_call_drop(wk_call *k);

/* Counts usd spent outside a chat call (an embedding, embed.h) against the run budget. */
void wk_calls_charge(wk_calls *c, double usd);

#endif
