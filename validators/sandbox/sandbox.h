/*
 * The sandbox room, for the validators that run a process (compile, tests)
 * and the patch validator's temporary trees: the sandbox runner (sandbox.c),
 * host directories (hostdir.c), the files of a run built from a task
 * (taskfiles.c), and the verdict made of a sandboxed run (judge.c). Only
 * validators/ includes it; names keep the folder's val__ prefix. The
 * validators that run nothing (syntax, schema, chain) do not include it.
 */
#ifndef VAL_SANDBOX_H
#define VAL_SANDBOX_H

#include <stdint.h>

#include "validators/val.h"

/* Files one sandboxed run may be given (each is an open descriptor while bwrap starts). */
#define VAL__FILES_MAX 200

/* ---- the runner (sandbox.c) ---------------------------------------------------- */

/* What one sandboxed command did. Borrowed by the callback for the call only. */
typedef struct val__sbx_result {
    int spawned;         /* 0: the sandbox could not be spawned at all */
    int64_t exit_status; /* when exited normally */
    int term_signal;     /* signal that ended the outer process, 0 if none */
    int timed_out;       /* we killed it at the wall-clock limit */
    int output_capped;   /* we killed it because output passed the cap */
    /*
     * The sandbox's own end-of-run report was found: the command finished,
     * whatever it left running was killed, and exit_status is the command's.
     */
    int reported;
    /*
     * A read-only file (a test file) was not there with its hash after the
     * run; `modified` names it. Set only when `reported`, or when the report
     * is missing although the command seemed to succeed.
     */
    int tests_modified;
    const char *modified;
    /*
     * The command ran under cascade's test harness (spec->mark given and a
     * python or node command it knows), and `finished`: the harness printed
     * the run's mark, so the tests ran to their end (see harness.c).
     */
    int harnessed;
    int finished;
    /* A module-shadowing file (conftest.py, sitecustomize.py...) the run added to /box; or NULL. */
    const char *planted;
    /* The sandbox's cgroup saw an OOM kill, or refused a fork at its pids limit (cgroup.c). */
    int cg_oom;
    int cg_pids_max;
    const char *output; /* stdout and stderr interleaved, NUL-terminated; the report removed */
    size_t output_len;
    const char *error; /* why it could not be spawned; NULL when spawned */
    uint64_t elapsed_ms;
    const val_limits *limits; /* the limits the run had */
} val__sbx_result;

typedef void (*val__sbx_cb)(void *arg, const val__sbx_result *r);

/* One file put into /box before the command runs. */
typedef struct val__sbx_file {
    const char *path; /* relative to /box; checked with val__path_ok */
    const char *data;
    size_t len;
    /*
     * 1: bound read-only (the sandbox can neither write, replace nor unlink
     * it) and its SHA-256 checked after the run; for the task's test files.
     */
    int readonly;
} val__sbx_file;

/* One sandboxed run. Borrowed by val__sandbox_start for the call only (all is copied). */
typedef struct val__sbx_spec {
    const char *const *argv; /* the command, run in /box; argc entries */
    int argc;
    const val__sbx_file *files; /* put into /box in order; nfiles <= VAL__FILES_MAX */
    int nfiles;
    /*
     * May be NULL: a host directory (readable by any uid) copied into /box as
     * the command starts; it never overwrites spec->files, so read-only test
     * files stay the task's.
     */
    const char *hostdir;
    const val_limits *limits; /* may be NULL: the env's */
    /*
     * 1: every node process gets a preloaded script that makes a failed
     * console.assert fail the process (node itself exits 0 on them).
     */
    int node_asserts;
    /*
     * May be NULL: the run's secret (VAL__MARK_LEN hex digits, see
     * val__harness_mark). A python or node test command then runs under the
     * harness, and only a run that printed it counts as finished.
     */
    const char *mark;
} val__sbx_spec;

/*
 * Runs spec->argv inside the sandbox once a slot is free (FIFO): a fresh
 * no-network container whose system is read-only and whose /box and /tmp are
 * size-capped tmpfs, with spec->files in /box, the limits applied, a cleared
 * environment and a wall-clock kill. Calls cb exactly once, possibly before
 * returning (when spawning fails at once).
 */
void val__sandbox_start(val_env *env, const val__sbx_spec *spec, val__sbx_cb cb, void *arg);

/* ---- the test harness (harness.c) ----------------------------------------------- */

/* Where our own read-only helpers live inside the sandbox, outside /box; HOME is below it. */
#define VAL__RUN_DIR "/run/cascade"
/* Hex digits of a run's secret mark. */
#define VAL__MARK_LEN 32

enum { VAL__H_NONE, VAL__H_PYTHON, VAL__H_NODE };

/* A fresh secret mark: VAL__MARK_LEN hex digits and a NUL, from the kernel's generator. */
void val__harness_mark(char out[VAL__MARK_LEN + 1]);
/*
 * Which harness the command gets: VAL__H_PYTHON (then *out is the command
 * rewritten to run under the runner, *outc entries, NULL-terminated, freed
 * by the caller entry by entry), VAL__H_NODE (node FILE: the preload prints
 * the mark) or VAL__H_NONE (a command the harness does not know).
 */
int val__harness_argv(const char *const *argv, int argc, char ***out, int *outc);
/* The runner (python) or the preload (node) for a run; tests: the test files. Caller frees. */
char *val__harness_python(const char *mark, const char *const *tests, int ntests);
/* mark NULL: only the console.assert part, for node processes of runs without a mark. */
char *val__harness_node(const char *mark, const char *const *tests, int ntests);
/*
 * 1 when C or C++ code plays with what the tests' assertions and exits
 * reach (defines __assert_fail or abort, #defines assert, calls exit(0),
 * a constructor...), with the reason in why; 0 when it does not.
 */
int val__harness_c_games(const char *code, char *why, size_t whylen);
/* 1 for a file name that shadows a test harness module (conftest.py, sitecustomize.py, *.pth). */
int val__harness_shadow_name(const char *path);

/* ---- cgroups (cgroup.c) ------------------------------------------------------------ */

/* Finds where sandboxes' groups can be made (env->cg_*); warns once when nowhere. */
void val__cg_setup(val_env *env);
void val__cg_release(val_env *env);
/*
 * Makes one sandbox's memory and pids groups with the limits of l; when
 * own_uid, their cgroup.procs are handed to uid, which joins them itself.
 * Returns 0 with the group directories in *mem and *pids (owned; possibly
 * the same path), or -1 with both NULL.
 */
int val__cg_make(val_env *env, const val_limits *l, unsigned uid, int own_uid, char **mem,
                 char **pids);
/* Reads what the groups saw, kills what is left in them, removes and frees them. */
void val__cg_end(val_env *env, char *mem, char *pids, int *oom, int *pids_max);

/* ---- host directories (hostdir.c) ---------------------------------------------- */

/* 1 for a path a task may name: relative, no "..", not empty, <= 255 bytes, naming a file. */
int val__path_ok(const char *path);

/* Makes a fresh host directory (mode 0755); *out is owned by the caller. */
int val__hostdir_make(char **out, char *err, size_t errlen);
/*
 * Writes `content` (len bytes) to the relative `path` inside dir, creating
 * subdirectories. Returns WK_EINVAL for a path that is absolute, empty, longer
 * than 255 bytes or has a ".." component; WK_EIO when writing fails.
 */
int val__hostdir_write(const char *dir, const char *path, const char *content, size_t len,
                       char *err, size_t errlen);
/* Removes dir and everything below it; errors are ignored (best effort). */
void val__hostdir_remove(const char *dir);
/*
 * Removes the cascade-box-* directories under `base` (NULL: $TMPDIR or /tmp)
 * older than max_age_s seconds, which a killed worker left behind. Returns how
 * many it removed.
 */
int val__hostdir_sweep(const char *base, unsigned max_age_s);

/* ---- the files of a run (taskfiles.c) ------------------------------------------ */

/* The files of one run, built from a task; see val__task_files. */
typedef struct val__files {
    val__sbx_file *v; /* owned, with every path and data */
    int n;
    char *answer_name; /* owned: where the answer went */
} val__files;

/*
 * Builds the files for a run of `in` with the extracted `code`: the task's
 * "files" (context), then the answer under val__answer_name (a task file of
 * that name is a prelude the code is appended to), then, when with_tests, the
 * task's tests.files, read-only (they win over any context file of the same
 * path). With in->workdir set (a patched tree, see val_input) only the test
 * files are built: the tree is copied into /box whole and the answer was a
 * diff. Returns 0, or WK_EINVAL/WK_ETOOBIG with a message in err.
 */
int val__task_files(const val_input *in, const char *code, int with_tests, val__files *out,
                    char *err, size_t errlen);
void val__files_release(val__files *f);

/*
 * The answer's file name (caller frees): the task's "answer_file"; else, for
 * Java, the first public class (or interface, enum, record) + ".java", as
 * javac requires; else "solution.<ext>".
 */
char *val__answer_name(const val_input *in, const char *code);

/* ---- the verdict of a run (judge.c) ---------------------------------------------- */

/*
 * Turns a sandboxed run into a verdict of `validator`: a command that ran and
 * exited non-zero fails with `fail_reason` ("failed", "compile_error"), the
 * rest with timeout, memory, crashed, output_limit, tests_modified or
 * sandbox_error. Evidence is the output with /box/ paths made relative: its
 * first lines when head_evidence (compilers say the cause first), else its
 * last (tracebacks end with it).
 */
void val__judge(const char *validator, const char *fail_reason, int head_evidence,
                const val__sbx_result *r, val_verdict *v);

#endif
