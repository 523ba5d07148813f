/*
 * Result keys: the name a result line is journaled and recognised under on
 * a resume. A task's key is its id; a line that is not a task has a key of
 * its own ("#line:N", "#dup:N", "#entry:RECEIPT" for a Redis entry). No task
 * id can take such a key: an id that starts with '#' is keyed "#id:" + id,
 * so a task whose id is "#line:3" or "line:3" never meets line 3's result.
 *
 * Also here: which results a rerun takes up again. A task that ended
 * `error` because every call failed on a transient condition (a timeout, a
 * reset, 429, 5xx, a provider held out of service, a spend limit) got no
 * answer that was judged; the journal forgets it and a rerun runs it again.
 */
#ifndef WK_RKEY_H
#define WK_RKEY_H

#include <cjson/cJSON.h>

/* The key of task `id`. Caller frees. */
char *wk_rkey_task(const char *id);
/* The key of a line that is not a task: line number (> 0), else the queue's receipt. */
char *wk_rkey_line(long lineno, const char *receipt);
/* The key of a line whose id an earlier line had. */
char *wk_rkey_dup(long lineno);
/* The task id a key names (borrowed from key), or NULL for a line's key. */
const char *wk_rkey_id(const char *key);
/* The key a written result line stands for (as intake chose it); NULL when none. Caller frees. */
char *wk_rkey_of_result(const cJSON *res);

/* 1 when the result is an `error` that a rerun should try again (see above). */
int wk_result_retryable(const cJSON *res);

#endif
