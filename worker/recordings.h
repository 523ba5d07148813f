/*
 * Recorded model answers, keyed by (task id, model name), for `cascade
 * replay`: the cascade runs offline against answers someone already paid
 * for. Same JSONL format as the mock server's recordings.
 */
#ifndef WK_RECORDINGS_H
#define WK_RECORDINGS_H

#include <stddef.h>

typedef struct wk_recs wk_recs;

typedef struct wk_rec {
    int run;
    char *answer;
    char *finish_reason;  /* NULL: "stop" */
    long prompt_tokens;   /* -1 when unknown */
    long completion_tokens;
} wk_rec;

/* Loads a recordings file; errors name the file and line. Caller frees with wk_recs_free. */
int wk_recs_load(const char *path, wk_recs **out, char *err, size_t errlen);
void wk_recs_free(wk_recs *r);

/*
 * The recording for the next call of (task, model): attempt i (counted per
 * pair from 0) takes run (start + i) mod R in run order. NULL when the pair
 * has no recording. The record is borrowed from the table.
 */
const wk_rec *wk_recs_next(wk_recs *r, const char *task, const char *model, int start);
/* Forgets the per-pair counters, for another pass over the batch. */
void wk_recs_rewind(wk_recs *r);

#endif
