/*
 * The batch lane's rows in the journal (net/batch.c): each batch before it
 * is submitted (its model and its requests' custom ids, task and attempt),
 * the provider's file and batch ids when they come back, and the end. A
 * rerun after a crash reads the batches still out and polls them instead of
 * submitting their requests again (README "Lanes").
 *
 * The rows join the journal's open transaction, so they commit with the
 * attempts' rows; side effects wait with wk_journal_then as for the others.
 * With no journal (NULL) every writer returns 0 and nothing is found.
 */
#ifndef WK_BATCHJ_H
#define WK_BATCHJ_H

#include "journal.h"

enum {
    WK_JB_JOURNALED = 1, /* written before submission; the provider may or may not have it */
    WK_JB_SUBMITTED = 2, /* the provider's batch id is known */
    WK_JB_DONE = 3,      /* every request's outcome was handed back */
    WK_JB_NOT_SENT = 4,  /* found never to have reached the provider */
};

/* One batch still out, as the journal holds it; owned by the array (wk_jbatches_free). */
typedef struct wk_jbatch {
    char *local;    /* our id of the batch, also in its metadata */
    char *model;    /* the model (deployment) name */
    char *file_id;  /* NULL until known */
    char *batch_id; /* NULL until known */
    int state;
    char **custom_ids;
    int n;
} wk_jbatch;

/*
 * The run's id, kept in the journal so a rerun tags and finds the same
 * batches (metadata cascade_run); made and committed at the first call.
 * Writes at most outlen bytes into out. 0 or WK_EIO.
 */
int wk_journal_run_id(wk_journal *j, char *out, size_t outlen);

/* A batch about to be submitted, with its requests' (custom id, task, seq). */
int wk_journal_batch_new(wk_journal *j, const char *local, const char *model,
                         const char *const *custom_ids, const char *const *tasks, const int *seqs,
                         int n);
/* The provider's ids as they come back (either may be NULL: unchanged). */
int wk_journal_batch_ids(wk_journal *j, const char *local, const char *file_id,
                         const char *batch_id);
/* A batch's new state (WK_JB_DONE, WK_JB_NOT_SENT). */
int wk_journal_batch_state(wk_journal *j, const char *local, int state);
/* The batches in state JOURNALED or SUBMITTED, oldest first. 0 or WK_EIO. */
int wk_journal_batches_open(wk_journal *j, wk_jbatch **out, int *n);
void wk_jbatches_free(wk_jbatch *b, int n);
/*
 * Where an answered attempt ran, beside its RECEIVED row, so a rerun that
 * takes the answer from the journal prices and shows it the same: moved to
 * the sync lane (to_sync), and the batch that carried it (NULL: none).
 */
int wk_journal_attempt_lane(wk_journal *j, const char *task, int seq, int to_sync,
                            const char *batch_id);
/* What wk_journal_attempt_lane wrote; 0 with *to_sync 0 and batch_id "" when nothing. */
int wk_journal_attempt_lane_get(wk_journal *j, const char *task, int seq, int *to_sync,
                                char *batch_id, size_t len);
/* 1 when attempt seq of the task is in a batch still out (not a lost call). */
int wk_journal_batch_pending(wk_journal *j, const char *task, int seq);

#endif
