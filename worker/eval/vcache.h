/*
 * A verdict cache for replays: the validators are deterministic for a given
 * task and answer, so repeated passes over recorded answers (replay --runs)
 * validate each distinct answer once. Not used for live runs, where an
 * answer is validated once anyway.
 */
#ifndef WK_VCACHE_H
#define WK_VCACHE_H

typedef struct wk_vcache wk_vcache;

typedef struct wk_vc_entry {
    int pass;
    char *validator, *reason, *message, *evidence; /* owned by the cache; may be NULL */
} wk_vc_entry;

wk_vcache *wk_vcache_new(void);
void wk_vcache_free(wk_vcache *c);
/* The cached verdict for (task id, answer); NULL when absent. Borrowed. */
const wk_vc_entry *wk_vcache_get(wk_vcache *c, const char *task_id, const char *answer);
/* Stores a copy of the verdict. */
void wk_vcache_put(wk_vcache *c, const char *task_id, const char *answer, int pass,
                   const char *validator, const char *reason, const char *message,
                   const char *evidence);
long wk_vcache_hits(const wk_vcache *c);

#endif
