/*
 * What a test run says test by test, for patch tasks (the CI bot): the
 * runner's output read into per-test outcomes (pytest's -rA summary lines,
 * TAP as node --test prints it, or nothing but the exit status), the
 * baseline a task's tests had at its base revision (which tests failed for
 * good, which flipped between two runs), and the judgement of a run on a
 * patched tree against that baseline. Pure: text in, decisions out.
 */
#ifndef VAL_TESTLOG_H
#define VAL_TESTLOG_H

#include <stddef.h>

#include "validators/val.h"

/* Tests one log keeps; a runner that prints more is read up to here. */
#define VAL_TESTLOG_MAX 5000

typedef enum val_testlog_format {
    VAL_TESTLOG_NONE = 0, /* no per-test detail: the exit status decides */
    VAL_TESTLOG_PYTEST,   /* "PASSED|FAILED|ERROR name" summary lines (pytest -rA) */
    VAL_TESTLOG_TAP,      /* "ok N - name" / "not ok N - name" (node --test, prove) */
} val_testlog_format;

typedef struct val_test_outcome {
    char *name; /* owned */
    int failed; /* 1 failed (or errored), 0 passed */
} val_test_outcome;

typedef struct val_testlog {
    val_testlog_format format;
    val_test_outcome *v; /* owned; n entries, one per name (a repeat keeps the worst) */
    int n;
    int has_passes; /* the output lists passing tests too (pytest without -rA does not) */
} val_testlog;

/* Reads a runner's output (len bytes) into log (released by the caller). */
void val_testlog_parse(const char *out, size_t len, val_testlog *log);
void val_testlog_release(val_testlog *log);
/* 1 failed, 0 passed, -1 not in the log. */
int val_testlog_outcome(const val_testlog *log, const char *name);
/* Tests of the log that failed. */
int val_testlog_failures(const val_testlog *log);

/*
 * The tests at base, from two runs (the second only when the first failed).
 * Every list is owned (names and array).
 */
typedef struct val_baseline {
    int detail;     /* per-test outcomes were read from both runs */
    char **failing; /* failed in both runs: what a patch is asked to fix, or pre-existing */
    int nfailing;
    char **flaky; /* passed in one run and failed in the other */
    int nflaky;
    char **targets; /* the failing tests the patch must make pass (see val_baseline_make) */
    int ntargets;
    int runs_failed; /* 1 or 2: how many of the runs failed as a whole (exit status) */
} val_baseline;

/*
 * Builds b from the logs and exit statuses of run 1 and run 2 (run2 NULL when
 * run 1 passed). The targets are the failing tests the instruction names (a
 * pytest "file::test" is named by its last part too), else every failing one.
 */
void val_baseline_make(val_baseline *b, const val_testlog *run1, int ok1, const val_testlog *run2,
                       int ok2, const char *instruction);
void val_baseline_release(val_baseline *b);
/* Makes dst a deep copy of src (dst need not be initialised). */
void val_baseline_copy(val_baseline *dst, const val_baseline *src);

/*
 * Judges a run on the patched tree (its log, and whether the command exited
 * 0) against the baseline. Passing: every target passes, and every test that
 * fails is flaky or failed at base too (pre-existing); a test that passed at
 * base and fails now is a regression. Without per-test detail on either side
 * the exit status decides. Fills counts (passed, flaky, preexisting); *why
 * (caller frees, NULL on a pass) says what failed; *note (caller frees, may
 * be NULL) names the pre-existing and flaky tests. Returns 1 pass, 0 fail.
 */
int val_baseline_judge(const val_baseline *b, const val_testlog *after, int exit_ok,
                       val_test_counts *counts, char **why, char **note);

#endif
