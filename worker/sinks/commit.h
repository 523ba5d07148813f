/*
 * The commit sink of the CI bot: an accepted patch task becomes a commit on
 * a branch of its own (vcs_commit: objects and one ref, the user's HEAD,
 * index and working tree untouched), a `<task id>.patch` file in git
 * format-patch form, and a "patch" object in the result line:
 *
 *   "patch": {"branch", "commit", "base", "file", "files_changed",
 *             "insertions", "deletions"}
 *
 * The driver calls it when a task finishes, before the result is journaled
 * as DONE, so the line that is journaled and written names the commit. A
 * crash between the commit and that line leaves a branch and no result; the
 * rerun replays the task from the journal, comes back here with the same
 * diff, and vcs_commit finds and reuses the branch (Cascade-Task trailer,
 * parent and tree), so there is one commit and one result line.
 *
 * The message: the instruction's first line, a blank line, the rest, then
 * the trailers Cascade-Task, Cascade-Model, Cascade-Tier, Cascade-Cost-USD
 * and Cascade-Tests ("passed N, flaky N, pre-existing N").
 */
#ifndef WK_SINK_COMMIT_H
#define WK_SINK_COMMIT_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* The instruction of a patch task that gives no "prompt". */
#define WK_COMMIT_DEFAULT_INSTRUCTION "Make the failing tests pass"

typedef struct wk_commit_opts {
    int enabled;               /* 0: results are left as they are (replay, which writes nothing) */
    const char *branch_prefix; /* NULL: "cascade/" */
    int force_branch;          /* 1: an existing branch of the name is moved */
    const char *patch_dir;     /* where <task id>.patch goes; NULL: no file ("file": null) */
    const char *name, *email;  /* author and committer; NULL: cascade <cascade@localhost> */
} wk_commit_opts;

/*
 * Parses "Name <email>" (as --author takes it) into *name and *email (caller
 * frees both). Returns 0, or WK_EINVAL when the form is not that.
 */
int wk_commit_parse_author(const char *s, char **name, char **email);

/*
 * The commit message for a task and its result (see above). Caller frees.
 * `task` and `result` are borrowed.
 */
char *wk_commit_message(const cJSON *task, const cJSON *result);

/*
 * With o->enabled, for an accepted result of a patch task (anything else is left alone, 0):
 * makes the commit and the .patch file and adds "patch" to `result`
 * (modified in place; task borrowed). When they cannot be made, the result
 * becomes status "error" with reason "commit_failed: <why>" (the answer is
 * kept) and WK_EIO or the vcs_commit error is returned; err (size errlen)
 * says why.
 *
 * Test hook: with CASCADE_TEST_CRASH_AFTER_COMMIT=1 in the environment the
 * process kills itself (SIGKILL) once the commit and the file are made, before
 * anything is journaled, as a crash there would.
 */
int wk_commit_sink(const wk_commit_opts *o, const cJSON *task, cJSON *result, char *err,
                   size_t errlen);

#endif
