/*
 * A verdict cache for replays: the validators are deterministic for a given
 * task and answer, so repeated passes over recorded answers (replay --runs)
 * validate each distinct answer once. Not used for live runs, where an
 * answer is validated once anyway.
 */
#ifndef WK_VCACHE_H
#define WK_VCACHE_H

#include "validators/val.h"

typedef struct wk_vcache wk_vcache;

wk_vcache *wk_vcache_new(void);
void wk_vcache_free(wk_vcache *c);
/* The cached verdict for (task id, answer); NULL when absent. Borrowed. */
const val_verdict *wk_vcache_get(wk_vcache *c, const char *task_id, const char *answer);
/* Stores a copy of the verdict (a verdict already there for the key is kept). */
void wk_vcache_put(wk_vcache *c, const char *task_id, const char *answer, const val_verdict *v);
long wk_vcache_hits(const wk_vcache *c);

#endif
