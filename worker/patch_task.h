/*
 * Patch tasks (the CI bot), the parts that do I/O: the check of the
 * repository a task names (intake's check_repo fact), and the preparation
 * before any model call: the base tree exported into a temporary directory,
 * the tests run there in the sandbox (twice when they fail, to tell flaky
 * tests apart), and the prompt built from the repository at base. The
 * router stays pure: it asks for a preparation (WK_ACT_PREPARE) and is fed
 * its outcome (WK_EV_PREPARED). The prompt's text is patch_prompt.c's.
 */
#ifndef WK_PATCH_TASK_H
#define WK_PATCH_TASK_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "validators/testlog.h"
#include "validators/val.h"

/* The caps of patch tasks; options of `cascade run`, with these defaults. */
typedef struct wk_patch_opts {
    unsigned long max_repo_mb;        /* --max-repo-mb: blobs of the tree at base [100] */
    unsigned long max_patch_kb;       /* --max-patch-kb: the diff of an answer [256] */
    unsigned long max_test_output_kb; /* --max-test-output-kb: test output in the prompt [16] */
    unsigned long max_file_kb;        /* --max-file-kb: each file shown in the prompt [32] */
    int max_files;                    /* --max-prompt-files: files shown in full [8] */
    int max_list;                     /* --max-file-list: paths in the file list [200] */
} wk_patch_opts;

void wk_patch_opts_default(wk_patch_opts *o);

/* The instruction of a task: its prompt, else the default. Borrowed from task or static. */
const char *wk_patch_instruction(const cJSON *task);

/*
 * Checks the repository a patch task names (repo.path, already resolved;
 * repo.base, HEAD when absent) and its size. Returns 0, or a negative code
 * with a clause naming the field in why (whylen bytes): "repo.path ... is
 * not a git repository", "repo.base ... does not resolve", "repo.path ...
 * holds more than N MiB (--max-repo-mb)".
 */
int wk_patch_check_repo(const cJSON *task, const wk_patch_opts *o, char *why, size_t whylen);

typedef enum wk_prep_status {
    WK_PREP_READY = 0, /* the tests fail at base: prompt and baseline are set */
    WK_PREP_NOTHING,   /* the tests pass at base (or fail only through flaky tests) */
    WK_PREP_ERROR,     /* the base could not be read or the tests could not run */
} wk_prep_status;

/* What a preparation found; borrowed by the callback for the call only. */
typedef struct wk_prep {
    wk_prep_status status;
    const char *reason;           /* NOTHING and ERROR: one line */
    const char *prompt;           /* READY: the user turn */
    const val_baseline *baseline; /* READY (and NOTHING, for the flaky names) */
    int runs;                     /* test runs made at base (1 or 2) */
    long elapsed_ms;              /* the whole preparation */
} wk_prep;

typedef void (*wk_prep_cb)(void *arg, const wk_prep *p);

/*
 * Starts the preparation of a patch task (borrowed until cb): cb is called
 * exactly once, from the loop or before this returns. Returns 0.
 */
int wk_patch_prepare(val_env *env, const cJSON *task, const wk_patch_opts *o, wk_prep_cb cb,
                     void *arg);

#endif
