/*
 * The semantic start tier's history in the journal (README "Similar tasks
 * start where they succeeded"): one row per finished task of a similar-start
 * cascade, with its prompt's embedding, the embeddings model that made it,
 * and the tier that finally accepted it (-1: none did). The driver loads the
 * newest rows into the in-memory index (worker/similar.h) at startup and
 * adds a row beside each task's DONE row, in the same transaction.
 */
#ifndef WK_HISTORY_H
#define WK_HISTORY_H

#include "journal.h"

/*
 * Adds a row to the open transaction. 0 (also with no journal) or WK_EIO
 * once the journal has failed.
 */
int wk_history_add(wk_journal *j, const char *task, const char *cascade, const char *model,
                   const float *vec, int dim, int tier);

/* One row, oldest first; borrowed for the call. Non-zero stops the reading. */
typedef int (*wk_history_fn)(void *arg, const char *cascade, const float *vec, int dim, int tier);

/*
 * The newest `max` rows of the embeddings model `model`, oldest first, from
 * the journal (none: 0 rows) or, for wk_history_load_file, from another
 * run's journal opened read-only (--history-from). Returns 0 or WK_EIO with
 * a message in err.
 */
int wk_history_load(wk_journal *j, const char *model, long max, wk_history_fn each, void *arg);
int wk_history_load_file(const char *path, const char *model, long max, wk_history_fn each,
                         void *arg, char *err, size_t errlen);

/*
 * The advice a task started with (the result's "start" object as JSON) and
 * its embedding, written before its first call: a rerun after a crash
 * starts the task at the same tier, so the journal's attempts line up,
 * without paying for the embedding again. put: 0 or WK_EIO; get: 1 with
 * *note (caller frees) and *vec (caller frees; *dim floats, NULL when none)
 * when the journal has the row, else 0.
 */
int wk_history_start_put(wk_journal *j, const char *task, const char *note, const float *vec,
                         int dim);
int wk_history_start_get(wk_journal *j, const char *task, char **note, float **vec, int *dim);

#endif
