/*
 * Where a task's answers and verdicts come from, each chosen in one place.
 *
 * An answer (wk_ask_call), first that applies:
 *   the journal     an answer received before a restart is not paid twice;
 *                   a call sent and never answered is a lost call, charged
 *   a recording     replay: the recorded answer arrives from the loop
 *   the cache       the response cache holds the same request's answer
 *   the network     the SENT row commits, then the request leaves
 * A verdict (wk_ask_validate): the journal, the verdict cache (replay), or
 * the validator chain.
 *
 * What comes back is an event for the router, handed to on_event: an
 * answer from the loop, once its RECEIVED row is committed; a verdict from
 * the chain's callback, or before wk_ask_validate returns when it is known
 * at once (the journal, the verdict cache, a chain that finished inside its
 * start). When the journal fails, the task goes to on_abandon instead, with
 * the journal's status.
 */
#ifndef WK_ANSWERS_H
#define WK_ANSWERS_H

#include <uv.h>

#include "lib/recordings.h"
#include "router.h"
#include "validators/val.h"
#include "worker/eval/vcache.h"
#include "worker/net/calls.h"
#include "worker/store/journal.h"

/* The sources, all borrowed. The driver clears calls and journal at shutdown. */
typedef struct wk_answers {
    const wk_config *cfg;
    wk_calls *calls;
    wk_journal *journal; /* NULL: none */
    wk_recs *recs;       /* replay; NULL: none */
    int replay_start;
    wk_vcache *vcache; /* replay; NULL: none */
    val_env *venv;
    size_t max_patch_bytes; /* patch tasks: the diff's cap (--max-patch-kb); 0: the default */
} wk_answers;

struct wk_ask;

/*
 * One call in progress, by its vote index (router.h): an agree tier's round
 * has one per listed model in flight at once; other tiers use the first.
 */
typedef struct wk_ask_call_slot {
    struct wk_ask *q;
    int vote;
    int seq;               /* its journal row; kept when a lost call is sent again */
    int lost;              /* a LOST_CALL was fed for seq: the next CALL re-sends it */
    const wk_model *model; /* the call in progress */
    wk_call *call;         /* prepared, waiting for its SENT row */
    uv_timer_t timer;      /* replay: the recorded answer's arrival */
    const wk_rec *rec;
    wk_event resp; /* an answer waiting for its RECEIVED row, or a lost call */
    char *resp_text, *resp_finish;
    cJSON *resp_logprobs; /* the held answer's token logprobs; owned */
    cJSON *resp_choices;  /* the held answer's other choices; owned */
    int logprobs;         /* the call asks for logprobs */
    char *resp_batch;     /* the held answer's batch id (lanes.h); owned */
} wk_ask_call_slot;

/* One task's questions: the calls or validation in progress, and what the journal held. */
typedef struct wk_ask {
    const wk_answers *a;
    const wk_task *task; /* borrowed from the driver's slot */
    void (*on_event)(void *arg, const wk_event *ev);
    void (*on_abandon)(void *arg, int status);
    void *arg;
    int seq;           /* calls made by this task, counting from 1 */
    wk_jattempt *jatt; /* what the journal held for the task at intake */
    int njatt;
    /*
     * One per call of a round in flight at once: the config's widest agree
     * round (1 without one), not WK_AGREE_MAX, since every task in flight
     * holds them (make bench, memory per task in flight). Owned.
     */
    wk_ask_call_slot *calls;
    int ncalls;
    int outstanding; /* calls begun whose event is not yet fed */
    int abandoned;   /* the journal's status once it failed under the task; 0: it has not */
    int vseq;        /* the seq of the answer being validated */
    val_input vin;   /* the validation in progress */
    int in_validate, have_pending, replayed_verdict;
    int same_call;       /* the validation in progress is of another answer of the same call */
    val_verdict pending; /* a verdict waiting to be fed */
    int lane;            /* the next call's lane (lanes.h): the driver sets it from the CALL */
} wk_ask;

/*
 * Sets up q with ncalls call slots (the widest round it will be asked for;
 * clamped to 1..WK_AGREE_MAX), their timers on the loop. Close with
 * wk_ask_close, run the loop until the close callbacks are done, then free
 * the slots with wk_ask_release.
 */
void wk_ask_init(wk_ask *q, uv_loop_t *loop, const wk_answers *a, int ncalls,
                 void (*on_event)(void *arg, const wk_event *ev),
                 void (*on_abandon)(void *arg, int status), void *arg);
void wk_ask_close(wk_ask *q);
void wk_ask_release(wk_ask *q);

/*
 * A task starts (borrowed until wk_ask_end): 1 when the journal holds
 * attempts of it. fresh 1: the caller knows it holds none (wk_journal_fresh),
 * and it is not asked.
 */
int wk_ask_begin(wk_ask *q, const wk_task *task, int fresh);
void wk_ask_end(wk_ask *q);

/*
 * The router's CALL: messages are copied at once; deps: the deployments of m
 * the call may use (borrowed; NULL: m and all its fallbacks); logprobs: ask
 * for the tokens' logprobs; n > 1: ask for n answers in one call where the
 * API takes "n" (replay and the cache give one). vote: the action's vote
 * index; the calls of one round are in flight together, and each event
 * carries its vote back. When the journal fails under a task, on_abandon is
 * called once every call of it in flight is back.
 */
void wk_ask_call(wk_ask *q, const wk_model *m, const wk_deployments *deps, const cJSON *messages,
                 long est_prompt_tokens, int logprobs, int n, int vote);
/*
 * The router's VALIDATE: answer is borrowed until the verdict is fed; vote:
 * the action's, naming the call whose answer it is (its journal row).
 * same_call: another answer of that call (n > 1), whose verdict the journal
 * does not keep (its row is the call's first answer's).
 */
void wk_ask_validate(wk_ask *q, const char *answer, int same_call, int vote);
/* 1 while a verdict taken from the journal is being fed (its climb was logged before). */
int wk_ask_replayed(const wk_ask *q);

#endif
