/*
 * The task state machine. Pure: events in (start, a model response, a call
 * failure, a validator verdict), actions out (call a model, validate an
 * answer, log a climb, finish with a result line). It opens no socket and no
 * file and reads no clock: the time comes in with each event. libuv callbacks
 * drive it in production and a plain loop drives it in the unit tests.
 */
#ifndef WK_ROUTER_H
#define WK_ROUTER_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "config.h"
#include "patch_task.h"
#include "task.h"
#include "validators/val.h"

/* Caps on what one failed attempt adds to the next request. */
#define WK_FEEDBACK_ANSWER_MAX 8000
#define WK_FEEDBACK_EVIDENCE_LINES 20
#define WK_FEEDBACK_ROUNDS_MAX 3

typedef enum wk_event_kind {
    WK_EV_START,       /* begin: the first call (or an immediate finish) */
    WK_EV_RESPONSE,    /* the model answered */
    WK_EV_CALL_FAILED, /* the call failed for good (after the transport's retries) */
    WK_EV_VERDICT,     /* the validator chain finished */
    WK_EV_LOST_CALL,   /* the journal shows this call sent before a crash, never answered:
                          it may have been billed (lost_cost_usd); re-send within budget */
    WK_EV_PREPARED,    /* a patch task's preparation finished (see patch_task.h) */
} wk_event_kind;

typedef struct wk_event {
    wk_event_kind kind;
    int64_t now_ms; /* wall clock, unix ms: stamps the escalation lines */
    /* RESPONSE, CALL_FAILED, LOST_CALL: the vote index of the CALL it answers (0: the only) */
    int vote;
    /* WK_EV_RESPONSE */
    const char *text;
    const char *finish_reason; /* "stop", "length", ...; may be NULL */
    long prompt_tokens;        /* -1 when the provider did not say */
    long completion_tokens;
    long cached_tokens; /* input tokens read from the provider's cache */
    long latency_ms;
    /* RESPONSE and CALL_FAILED: how the call went below the router. */
    const wk_model *served; /* the deployment that answered; NULL: the tier's model */
    int retries;            /* transport retries inside this call */
    int fallbacks;          /* fallback deployments moved to inside this call */
    int from_cache;         /* RESPONSE: answered by the response cache, at no cost */
    /* RESPONSE and CALL_FAILED on a flex or batch tier (lanes.h) */
    int to_sync;          /* the flex or batch call went to the sync lane (lanes.h) */
    const char *batch_id; /* the provider's batch that carried the call; NULL: none */
    double lost_cost_usd; /* LOST_CALL: what the lost call may have cost (worst case) */
    /* RESPONSE: a recording's own cost of the call, used instead of tokens x price */
    int has_cost;
    double cost_usd;
    /* RESPONSE: the answer's tokens, [{"token", "logprob"}, ...]; NULL: none; borrowed */
    const cJSON *logprobs;
    /*
     * RESPONSE to a CALL with n > 1: the other answers of the same call,
     * [{"text", "finish_reason", "logprobs"}]; NULL: none; borrowed.
     */
    const cJSON *choices;
    /* WK_EV_CALL_FAILED */
    const char *error_reason;  /* short class: "http_404", "timeout", "bad_response" */
    const char *error_message; /* one line for the result */
    int budget_denied;         /* the run budget refused the call: the task ends over_budget */
    /* WK_EV_VERDICT: the validator chain's verdict, borrowed for the feed */
    const val_verdict *verdict;
    /* WK_EV_PREPARED: what the preparation found, borrowed for the feed */
    const wk_prep *prep;
    /*
     * WK_EV_START: the semantic start tier (README "Similar tasks start where
     * they succeeded"). start_tier: the tier most of the task's nearest past
     * tasks were accepted at (0: no advice); the task starts there when the
     * cascade's own admission rules take it, the tiers below logged as climbs
     * with reason similar_history. start_note: how the advice was found,
     * copied into the result as "start" (borrowed; NULL: none).
     * start_cost_usd: what the embedding call cost, charged to the task.
     */
    int start_tier;
    const cJSON *start_note;
    double start_cost_usd;
} wk_event;

typedef enum wk_action_kind {
    WK_ACT_CALL,     /* call model with messages; then feed RESPONSE or CALL_FAILED */
    WK_ACT_VALIDATE, /* run the cascade's validators on answer; then feed VERDICT */
    WK_ACT_LOG,      /* write line to the escalation log */
    WK_ACT_FINISH,   /* write result as the task's one result line; the task is done */
    WK_ACT_PREPARE,  /* patch task: run the baseline and build the prompt; then feed PREPARED */
} wk_action_kind;

typedef struct wk_action {
    wk_action_kind kind;
    const wk_model *model; /* CALL: borrowed from the config */
    /* CALL: the deployments of model the task may use (policy.h); borrowed from the task */
    const wk_deployments *deps;
    const cJSON *messages;  /* CALL: borrowed from the task, valid until the next feed */
    long est_prompt_tokens; /* CALL: estimate for reservations and rate limits */
    int logprobs;           /* CALL: ask for the answer's token logprobs */
    int n;                  /* CALL: answers wanted of this model (samples); 1: one */
    int lane;               /* CALL: the tier's lane, WK_LANE_* (lanes.h) */
    /*
     * CALL: which call of an agree tier's round (the model's place in
     * agree.models; 0 otherwise): the round's calls are all in flight at
     * once, and each event of one carries its vote index back.
     * VALIDATE: the vote index of the call whose answer this is.
     */
    int vote;
    const char *answer; /* VALIDATE: borrowed from the task, valid until the next feed */
    int same_call;      /* VALIDATE: another answer of the newest call (n > 1) */
    cJSON *line;        /* LOG and FINISH: owned by the action; the driver frees it */
} wk_action;

/*
 * The actions of one feed, in order. A list that grows: a climb may pass over
 * any number of tiers, each skip logged. Zero-initialise; release when done.
 */
typedef struct wk_actions {
    wk_action *v;
    int n, cap;
} wk_actions;

/* Frees the lines the driver did not take (left non-NULL) and the list. */
void wk_actions_release(wk_actions *a);

/*
 * Feeds one event; replaces out's actions with this event's and returns how
 * many. The driver performs them in order and takes each LOG and FINISH line
 * (setting it NULL); lines left in out are freed by the next feed or by
 * wk_actions_release. After a FINISH the task takes no more events.
 */
int wk_task_feed(wk_task *t, const wk_event *ev, wk_actions *out);

#endif
