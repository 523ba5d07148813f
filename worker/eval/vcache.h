/*
 * A verdict cache for replays: the validators are deterministic for a given
 * task and answer, so repeated passes over recorded answers (replay --runs)
 * validate each distinct answer once. Not used for live runs, where an
 * answer is validated once anyway. replay --verdict-cache keeps it on disk.
 */
#ifndef WK_VCACHE_H
#define WK_VCACHE_H

#include <stddef.h>

#include "validators/val.h"

typedef struct wk_vcache wk_vcache;

wk_vcache *wk_vcache_new(void);
void wk_vcache_free(wk_vcache *c);
/* The cached verdict for (task id, answer); NULL when absent. Borrowed. */
const val_verdict *wk_vcache_get(wk_vcache *c, const char *task_id, const char *answer);
/* Stores a copy of the verdict (a verdict already there for the key is kept). */
void wk_vcache_put(wk_vcache *c, const char *task_id, const char *answer, const val_verdict *v);
long wk_vcache_hits(const wk_vcache *c);
/* Verdicts held. */
long wk_vcache_len(const wk_vcache *c);
/* Calls fn for every entry (borrowed for the call); stops at and returns fn's first non-zero. */
int wk_vcache_each(const wk_vcache *c,
                   int (*fn)(void *arg, const char *task_id, const char *answer,
                             const val_verdict *v),
                   void *arg);

/*
 * The cache on disk (vcache_file.c), so verdicts outlive one invocation:
 * JSONL, one verdict per line with its task id, the hash of the task's line
 * in the tasks file it was made from, and the answer. Loading keeps only the
 * entries whose task's line in tasks_path hashes the same, so a task whose
 * tests were edited is validated again. A verdict depends on the cascade's
 * validators too: keep one file per validator set.
 *
 * Load: a missing file is an empty cache; *loaded and *stale count the
 * entries taken and dropped. Save: the whole cache, written to a temporary
 * file renamed over path; verdicts of a timed-out or failed sandbox are
 * not kept (they depend on the machine's load, not on the answer).
 */
int wk_vcache_load(wk_vcache *c, const char *path, const char *tasks_path, long *loaded,
                   long *stale, char *err, size_t errlen);
int wk_vcache_save(const wk_vcache *c, const char *path, const char *tasks_path, long *saved,
                   char *err, size_t errlen);

#endif
