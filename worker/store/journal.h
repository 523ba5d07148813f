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
 * for the commit through wk_journal_then().
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
} wk_jattempt;

int wk_journal_open(uv_loop_t *loop, const char *path, wk_journal **out, char *err, size_t errlen);
/* Commits what is pending and closes the database (and its handle). */
void wk_journal_close(wk_journal *j);

/*
 * Runs fn(arg) once what was written so far is committed (in this loop
 * iteration's check phase). With no journal (j NULL), runs it now.
 */
void wk_journal_then(wk_journal *j, void (*fn)(void *), void *arg);

/* 1 and the stored result line (caller frees) when the task is done. */
int wk_journal_done_result(wk_journal *j, const char *id, char **result);
/* The task's attempts in seq order (caller frees with wk_journal_attempts_free). */
int wk_journal_attempts(wk_journal *j, const char *id, wk_jattempt **out, int *n);
void wk_journal_attempts_free(wk_jattempt *a, int n);

void wk_journal_sent(wk_journal *j, const char *id, int seq, const char *model);
void wk_journal_received(wk_journal *j, const char *id, int seq, const char *text,
                         const char *finish, long pt, long ct, long cached, const char *served,
                         int retries, int fallbacks);
void wk_journal_verdict(wk_journal *j, const char *id, int seq, const val_verdict *v);
void wk_journal_done(wk_journal *j, const char *id, const char *result);

/* Rows written and transactions committed, for the summary. */
long wk_journal_commits(const wk_journal *j);
/* A write failed (disk full...): the message, or NULL. */
const char *wk_journal_error(const wk_journal *j);

#endif
