/*
 * The journal: a SQLite database (WAL) of each task's attempts, written
 * before the side effect each row describes. SENT before the request leaves,
 * RECEIVED (the answer, usage) before it is validated, VERDICT after, DONE
 * (with the result line) before the result is written. A restart reads it
 * back: finished tasks are skipped, received answers are validated without
 * another call, and a call that was sent but never answered is known.
 *
 * Writes are batched: one transaction per loop iteration, committed from a
 * uv_check handle, so the journal does not cap throughput. Side effects wait
 * for the commit through wk_journal_then() (or wk_journal_then_lazy(), whose
 * commit may join the next iteration's).
 *
 * The promise is kept when a write fails too (a full disk): a failed write
 * or COMMIT rolls the open transaction back and breaks the journal for good.
 * Every side effect still waiting is then told so (status < 0) instead of
 * being run, and every later write returns WK_EIO at once.
 */
#ifndef WK_JOURNAL_H
#define WK_JOURNAL_H

#include <stddef.h>
#include <uv.h>

#include "validators/val.h"

typedef struct wk_journal wk_journal;

enum { WK_J_SENT = 1, WK_J_RECEIVED = 2, WK_J_VERDICT = 3 };

/* One attempt as the journal holds it; strings owned by the record. */
typedef struct wk_jattempt {
    int seq;
    int state;
    char *model;
    char *text, *finish, *served;
    long pt, ct, cached;
    int retries, fallbacks;
    val_verdict verdict; /* state WK_J_VERDICT */
    int vstarts; /* in-process validations started, never returned (wk_journal_validating) */
    char *extra; /* the answer's logprobs and other choices, JSON; NULL: none */
} wk_jattempt;

int wk_journal_open(uv_loop_t *loop, const char *path, wk_journal **out, char *err, size_t errlen);
/*
 * Commits what is pending and closes the database (and its handle). Side
 * effects still waiting get WK_ECANCELED. Returns 0, or WK_EIO when the
 * journal failed at any time (the message: wk_journal_error, until the loop
 * runs the close callback).
 */
int wk_journal_close(wk_journal *j);

/*
 * A side effect waiting for a commit. status 0: its rows are committed, run
 * it. status < 0: they are not (WK_EIO: the journal failed; WK_ECANCELED: it
 * was closed first); do not run it, only release what arg holds.
 */
typedef void (*wk_journal_cb)(void *arg, int status);

/*
 * Calls fn(arg, status) once what was written so far is committed (in this
 * loop iteration's check phase), or has failed. With no journal (j NULL),
 * calls fn(arg, 0) now.
 */
void wk_journal_then(wk_journal *j, wk_journal_cb fn, void *arg);
/*
 * Like wk_journal_then, for a side effect that nothing in flight waits on
 * (writing a result line): while the loop has other events ready, its
 * commit may be put off for up to a few iterations (none of which blocks),
 * so that the rows those events write (the next task's SENT) join the same
 * commit instead of costing one of their own. It still runs only once its
 * rows are committed; a close that commits them runs it with status 0.
 */
void wk_journal_then_lazy(wk_journal *j, wk_journal_cb fn, void *arg);
/*
 * Calls fn(arg, status) in this loop iteration's check phase like
 * wk_journal_then, without waiting for a commit: for a step that no side
 * effect hangs on (validating a received answer), so its rows join the
 * commit of the next side effect instead of costing one of their own. They
 * are committed by the end of the iteration at the latest. status < 0: the
 * journal failed or was closed. With no journal, calls fn(arg, 0) now.
 */
void wk_journal_later(wk_journal *j, wk_journal_cb fn, void *arg);

/*
 * 1 when the journal held no task and no attempt when it was opened: a fresh
 * run. What it holds then was written by this run, so a key or a task id
 * met for the first time in this run is not in it and need not be looked up
 * (the driver's intake, for the lines of a file, whose ids it tracks).
 */
int wk_journal_fresh(const wk_journal *j);

/* 1 and the stored result line (caller frees) when the task is done. */
int wk_journal_done_result(wk_journal *j, const char *id, char **result);
/* The task's attempts in seq order (caller frees with wk_journal_attempts_free). */
int wk_journal_attempts(wk_journal *j, const char *id, wk_jattempt **out, int *n);
void wk_journal_attempts_free(wk_jattempt *a, int n);

/*
 * The writers add a row to the open transaction. Each returns 0 (or 0 with
 * no journal), or WK_EIO once the journal has failed: the row is not there,
 * and neither is anything else of the transaction it would have joined.
 * RECEIVED may be written late, within the same transaction (joined with its
 * VERDICT when that comes first): a failed write of it is reported by the
 * next write, read or commit, before any side effect runs.
 */
int wk_journal_sent(wk_journal *j, const char *id, int seq, const char *model);
int wk_journal_received(wk_journal *j, const char *id, int seq, const char *text,
                        const char *finish, long pt, long ct, long cached, const char *served,
                        int retries, int fallbacks);
/*
 * Beside RECEIVED, what a classify tier's doubt reads of the answer: a JSON
 * object {"logprobs": [...], "choices": [...]} (either may be absent), so a
 * resumed run votes on the same tokens and choices without paying again.
 */
int wk_journal_received_extra(wk_journal *j, const char *id, int seq, const char *extra);
int wk_journal_verdict(wk_journal *j, const char *id, int seq, const val_verdict *v);
int wk_journal_done(wk_journal *j, const char *id, const char *result);
/*
 * started 1: counts one more in-process validation started of attempt seq's
 * answer, and commits at once (with whatever else the open transaction
 * holds), so a validation that kills the process is known to the next run,
 * which stops retrying it after WK_VALIDATE_CRASHES_MAX (answers.c).
 * started 0: the in-process part returned; the count is reset (batched).
 */
int wk_journal_validating(wk_journal *j, const char *id, int seq, int started);

/*
 * The journal failed (disk full...): "journal PATH: what: SQLite's message"
 * (borrowed), or NULL while it has not.
 */
const char *wk_journal_error(const wk_journal *j);

/*
 * Test hook: journals opened from now on write through a VFS that lets the
 * next `writes` writes through and fails every one after with SQLITE_FULL.
 * The driver calls it at startup when CASCADE_FAULT_JOURNAL_FULL_AFTER is set.
 */
int wk_journal_fault_full_after(long writes);

#endif
