/*
 * The task as the task parser (task.c) builds it and the router (router.c)
 * moves it along. Only those two files see the fields; everything else goes
 * through router.h.
 */
#ifndef WK_TASK_INT_H
#define WK_TASK_INT_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"
#include "task.h"
#include "validators/val.h"

/*
 * One call of an agree tier's round, held until every call of the round is
 * in: the event as it came, its strings and JSON owned here.
 */
typedef struct wk__held {
    int in;                    /* the call came back (answered or failed) */
    int refused;               /* a lost call the task budget cannot send again */
    wk_event ev;               /* RESPONSE or CALL_FAILED; text, finish_reason, error_* owned */
    cJSON *logprobs, *choices; /* owned; ev points at them */
    cJSON *attempt;            /* its attempt in the result, once made (inside attempts) */
} wk__held;

/* Empties h (what it owns freed); its attempt stays in the result's list. */
static inline void wk__held_clear(wk__held *h)
{
    free((char *)h->ev.text);
    free((char *)h->ev.finish_reason);
    free((char *)h->ev.error_reason);
    free((char *)h->ev.error_message);
    cJSON_Delete(h->logprobs);
    cJSON_Delete(h->choices);
    memset(h, 0, sizeof *h);
}

/*
 * What a task keeps per vote index (per call of an agree round, or the one
 * call of a tier without a round): the deployments of its CALL in progress
 * and, in a round, its outcome held until the round is in.
 */
typedef struct wk__call {
    wk_deployments deps;
    wk__held held;
} wk__call;

enum { WK__ST_NEW, WK__ST_PREPARING, WK__ST_CALLING, WK__ST_VALIDATING, WK__ST_DONE };

struct wk_task {
    char *id;
    cJSON *json;               /* the task as read; owned */
    const wk_cascade *cascade; /* borrowed from the config */
    const cJSON *schema;       /* borrowed from json or the cascade */
    double budget_usd;         /* < 0: none; 0 allows only free calls */
    const char *data_class; /* the task's data class (policy.h); NULL: none; borrowed from json */
    int state;
    int64_t now_ms;  /* the newest event's time: stamps the result line ("ts") */
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
    /* Classify tasks (README "Labelling tickets"). */
    char *gold;                /* the gold label in the enum's spelling; NULL: none; owned */
    char label[VAL_LABEL_MAX]; /* the label accepted; "" when none */
    cJSON *votes;              /* labels read at this tier so far, one string per answer; owned */
    int asked;                 /* answers voted at this tier so far */
    cJSON *pending;      /* the other choices of the newest call (n > 1), not yet voted; owned */
    char *logprobs_text; /* the newest answer's tokens joined, with logprobs below; owned */
    double *logprobs;    /* per byte of logprobs_text: the logprob of the token holding it */
    /*
     * An agree tier asks its listed models in parallel: one call each, all in
     * flight at once (the round); their outcomes wait in call[k].held, k the
     * model's place in the list, until the last is in, then are voted in
     * that order.
     */
    int inflight;  /* calls of the round not yet back */
    int call_vote; /* the vote index of the single call in flight */
    /* Patch tasks (kind "patch"): the baseline, from WK_EV_PREPARED. */
    int is_patch;
    struct val_baseline *baseline; /* owned; NULL until prepared */
    long baseline_ms;              /* how long the preparation took */
    int baseline_runs;
    /* The semantic start tier's advice, from WK_EV_START (router.h). */
    int start_tier;
    cJSON *start_note;     /* owned; NULL: none */
    val_test_counts tests; /* the accepted verdict's counts */
    char *tests_note;      /* and its note, which names the pre-existing failures; owned */
    /*
     * By vote index, ncalls of them: the cascade's widest agree round (1
     * without one), not WK_AGREE_MAX, since every task in flight holds them
     * (make bench, memory per task in flight). In the task's own allocation.
     */
    int ncalls;
    wk__call call[];
};

#endif
