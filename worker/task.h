/*
 * A task as cascade knows it before anything is paid for: one line parsed and
 * checked (task.c), the result line of a line that is not a task, and the
 * features that skip rules look at. Pure: no file, no socket, no clock. The
 * router (router.h) moves a parsed task along; tune reads the same features.
 */
#ifndef WK_TASK_H
#define WK_TASK_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "config.h"

typedef struct wk_task wk_task;

/* The system turn of a patch task: what to answer, and in which form. */
#define WK_PATCH_SYSTEM_PROMPT                                                                     \
    "You are an expert software engineer fixing a bug in a git repository. Reply with one "        \
    "unified diff (\"--- a/PATH\", \"+++ b/PATH\", \"@@ -l,n +l,n @@\" hunks, paths relative to "  \
    "the repository root) in a single ```diff fenced block. Change only what the fix needs; "      \
    "do not change the tests."

/*
 * Parses one task line. On success *out is a new task (free with
 * wk_task_free) and returns 0. A line that is not a usable task returns
 * WK_EINVAL with *invalid set to its result line (status invalid_task and the
 * reason; owned by the caller). `lineno` names the line when it has no id.
 * `cascade_name` forces a cascade (NULL: the task's field, else the first match).
 */
int wk_task_parse(const char *line, size_t len, long lineno, const wk_config *cfg,
                  const char *cascade_name, wk_task **out, cJSON **invalid);
void wk_task_free(wk_task *t);

/*
 * Patch tasks: a relative repo.path is made relative to `dir` (the task
 * file's directory) by rewriting it in the task; an absolute one, or a NULL
 * dir (stdin, a queue), leaves it as it is, relative to the working directory.
 */
void wk_task_resolve_repo(wk_task *t, const char *dir);

/* The result line of a line that is not a task (id may be NULL). Caller frees. */
cJSON *wk_invalid_result(const char *id, long lineno, const char *reason);

/*
 * What a skip rule can look at (README "skip_when"). Tasks in files have all
 * of them; tune, reading results without their tasks, may not: an unknown
 * feature makes no condition on it hold.
 */
typedef struct wk_task_features {
    const char *kind;     /* "code" when the task says none; NULL: unknown; borrowed */
    const char *language; /* NULL: none or unknown; borrowed */
    long prompt_tokens;   /* characters of the prompt / 4; -1: unknown */
    int has_tests;        /* tests.command is a non-empty array of strings; -1: unknown */
} wk_task_features;

/* The features of a task object; strings are borrowed from it. */
void wk_task_features_of(const cJSON *task, wk_task_features *out);

/* 1 when every condition the rule sets holds for f (unset conditions hold). */
int wk_skip_rule_holds(const wk_skip_rule *rule, const wk_task_features *f);

/* Read-only views for the driver. */
const char *wk_task_id(const wk_task *t);
const cJSON *wk_task_json(const wk_task *t);
const wk_cascade *wk_task_cascade(const wk_task *t);
const cJSON *wk_task_schema(const wk_task *t); /* task's schema, else the cascade's; may be NULL */
int wk_task_done(const wk_task *t);
/* 1 for a patch task (kind "patch"). */
int wk_task_is_patch(const wk_task *t);
/* A patch task's baseline once prepared (validators/testlog.h); NULL before or otherwise. */
const struct val_baseline *wk_task_baseline(const wk_task *t);

#endif
