/*
 * The semantic start tier, driven (README "Similar tasks start where they
 * succeeded"): for a task of a cascade with "start": {"by": "similar"}, its
 * prompt's embedding (an embeddings call; in replay the recordings' vector
 * or the hashed bag of words of lib/embed.h), its k nearest past tasks of
 * the same cascade (worker/similar.h) and the advice they give, handed to
 * the router with WK_EV_START. When the task finishes, its embedding and
 * the tier that accepted it join the history: the journal's rows
 * (store/history.h) and the index. A run without a journal reads history
 * (--history-from) but adds none.
 *
 * Never in the way of a task: a failed embedding, a data class that may not
 * reach the embeddings provider, or too little history start the task at
 * its cascade's first tier, and the result's "start" says why.
 */
#ifndef WK_START_H
#define WK_START_H

#include <cjson/cJSON.h>
#include <uv.h>

#include "lib/recordings.h"
#include "router.h"
#include "worker/net/calls.h"
#include "worker/store/journal.h"

typedef struct wk_starter wk_starter;

typedef struct wk_starter_opts {
    const wk_config *cfg; /* borrowed; outlives the starter */
    uv_loop_t *loop;
    wk_calls *calls;          /* charged for embeddings; NULL in replay */
    const wk_calls_opts *co;  /* timeouts and body cap of the embeddings calls */
    wk_journal *journal;      /* the history's rows; NULL: none kept */
    wk_recs *recs;            /* replay: embeddings from here (else hashed); NULL: call */
    long history_max;         /* --history-max [WK_SIMILAR_CAP_DEFAULT] */
    const char *history_from; /* --history-from: another run's journal, read only; NULL: none */
} wk_starter_opts;

/*
 * *out: a starter, or NULL when no cascade starts by similarity (then
 * nothing is loaded and wk_start_begin starts every task at once).
 * WK_EIO with err when a history cannot be read.
 */
int wk_starter_new(const wk_starter_opts *o, wk_starter **out, char *err, size_t errlen);
/* Aborts embeddings in flight (no callbacks); run the loop afterwards. NULL: no-op. */
void wk_starter_free(wk_starter *s);
/* Entries in the index (all cascades); 0 for NULL. */
long wk_starter_history(const wk_starter *s);

/* One task's start, in the driver's slot; zero it once, release with wk_start_release. */
typedef void (*wk_start_fn)(void *arg, const wk_event *start);

typedef struct wk_start {
    float *vec; /* the task's embedding; owned; NULL: none */
    int dim;
    int busy; /* an embeddings call is in flight */
    /* While it is: whom to tell, all borrowed. */
    wk_starter *s;
    const wk_task *t;
    wk_start_fn ready;
    void *arg;
} wk_start;

/*
 * Starts the task (borrowed until ready is called): ready(arg, ev) gets the
 * WK_EV_START to feed, now or from the loop. resumed: the journal holds
 * attempts of the task, so it starts with the advice it had before.
 * s NULL: ready at once with a plain START.
 */
void wk_start_begin(wk_starter *s, wk_start *ts, const wk_task *t, int resumed, wk_start_fn ready,
                    void *arg);
/*
 * The task's result (borrowed): an accepted or exhausted task of a
 * similar-start cascade joins the history. 0, or WK_EIO when the journal
 * failed (the driver's journal failure path takes it from there).
 */
int wk_start_finish(wk_starter *s, wk_start *ts, const wk_task *t, const cJSON *result);
void wk_start_release(wk_start *ts);

#endif
