/*
 * The batch lane's journal rows (see batchj.h). Its tables are made on first
 * use, beside the attempts; statements are prepared per use, as batches are
 * few next to attempts.
 */
#include "batchj.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "store_int.h"

static const char *const SCHEMA =
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);"
    "CREATE TABLE IF NOT EXISTS batches(local TEXT PRIMARY KEY, model TEXT, file_id TEXT, "
    "batch_id TEXT, state INTEGER);"
    "CREATE TABLE IF NOT EXISTS batch_reqs(local TEXT, custom_id TEXT, task TEXT, seq INTEGER, "
    "PRIMARY KEY(local, custom_id));"
    "CREATE INDEX IF NOT EXISTS batch_reqs_task ON batch_reqs(task, seq);"
    "CREATE TABLE IF NOT EXISTS attempt_lanes(task TEXT, seq INTEGER, to_sync INTEGER, "
    "batch_id TEXT, PRIMARY KEY(task, seq));";

/* The tables, inside the open transaction. NULL: the journal failed. */
static sqlite3 *db_of(wk_journal *j)
{
    if (wk__journal_txn(j))
        return NULL;
    sqlite3 *db = wk__journal_db(j);
    if (sqlite3_exec(db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK) {
        wk__journal_fail(j, "creating the batch tables");
        return NULL;
    }
    return db;
}

/* Runs sql with text parameters (NULL binds NULL), inside the open transaction. */
static int exec_text(wk_journal *j, const char *what, const char *sql, int n, const char **v)
{
    sqlite3 *db = db_of(j);
    if (!db)
        return WK_EIO;
    sqlite3_stmt *s = NULL;
    int rc = WK_EIO;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        goto cleanup;
    for (int i = 0; i < n; i++)
        if (v[i])
            sqlite3_bind_text(s, i + 1, v[i], -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_DONE)
        rc = 0;
cleanup:
    sqlite3_finalize(s);
    return rc ? wk__journal_fail(j, what) : 0;
}

int wk_journal_run_id(wk_journal *j, char *out, size_t outlen)
{
    unsigned char r[8] = {0};
    char fresh[32];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        uint64_t t = wk_now_ms() ^ ((uint64_t)getpid() << 32);
        memcpy(r, &t, sizeof r);
    }
    snprintf(fresh, sizeof fresh, "run-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3],
             r[4], r[5], r[6], r[7]);
    if (!j) {
        snprintf(out, outlen, "%s", fresh);
        return 0;
    }
    const char *v[] = {fresh};
    int rc =
        exec_text(j, "writing the run id",
                  "INSERT INTO meta(key, value) VALUES('run_id', ?1) ON CONFLICT DO NOTHING", 1, v);
    if (rc)
        return rc;
    sqlite3_stmt *s = NULL;
    rc = WK_EIO;
    if (sqlite3_prepare_v2(wk__journal_db(j), "SELECT value FROM meta WHERE key = 'run_id'", -1, &s,
                           NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
        rc = 0;
    }
    sqlite3_finalize(s);
    return rc;
}

int wk_journal_batch_new(wk_journal *j, const char *local, const char *model,
                         const char *const *custom_ids, const char *const *tasks, const int *seqs,
                         int n)
{
    if (!j)
        return 0;
    const char *v[] = {local, model};
    int rc =
        exec_text(j, "writing a batch",
                  "INSERT OR REPLACE INTO batches(local, model, state) VALUES(?1, ?2, 1)", 2, v);
    if (rc)
        return rc;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(wk__journal_db(j),
                           "INSERT OR REPLACE INTO batch_reqs(local, custom_id, task, seq) "
                           "VALUES(?1, ?2, ?3, ?4)",
                           -1, &s, NULL) != SQLITE_OK)
        return wk__journal_fail(j, "writing a batch's requests");
    for (int i = 0; i < n && rc == 0; i++) {
        sqlite3_bind_text(s, 1, local, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 2, custom_ids[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 3, tasks[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(s, 4, seqs[i]);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = WK_EIO;
        sqlite3_reset(s);
    }
    sqlite3_finalize(s);
    return rc ? wk__journal_fail(j, "writing a batch's requests") : 0;
}

int wk_journal_batch_ids(wk_journal *j, const char *local, const char *file_id,
                         const char *batch_id)
{
    if (!j)
        return 0;
    const char *v[] = {local, file_id, batch_id};
    return exec_text(j, "writing a batch's ids",
                     "UPDATE batches SET file_id = coalesce(?2, file_id), batch_id = "
                     "coalesce(?3, batch_id), state = CASE WHEN ?3 IS NULL THEN state ELSE 2 END "
                     "WHERE local = ?1",
                     3, v);
}

int wk_journal_batch_state(wk_journal *j, const char *local, int state)
{
    if (!j)
        return 0;
    char st[16];
    snprintf(st, sizeof st, "%d", state);
    const char *v[] = {local, st};
    return exec_text(j, "writing a batch's state",
                     "UPDATE batches SET state = CAST(?2 AS INTEGER) WHERE local = ?1", 2, v);
}

static char *col(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t ? wk_xstrdup((const char *)t) : NULL;
}

int wk_journal_batches_open(wk_journal *j, wk_jbatch **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!j)
        return 0;
    sqlite3 *db = db_of(j);
    if (!db)
        return WK_EIO;
    sqlite3_stmt *s = NULL, *r = NULL;
    int rc = WK_EIO, cap = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT local, model, file_id, batch_id, state FROM batches WHERE "
                           "state IN (1, 2) ORDER BY rowid",
                           -1, &s, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT custom_id FROM batch_reqs WHERE local = ?1 ORDER BY rowid",
                           -1, &r, NULL) != SQLITE_OK)
        goto cleanup;
    while (sqlite3_step(s) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = wk_xrealloc(*out, (size_t)cap * sizeof **out);
        }
        wk_jbatch *b = &(*out)[(*n)++];
        memset(b, 0, sizeof *b);
        b->local = col(s, 0);
        b->model = col(s, 1);
        b->file_id = col(s, 2);
        b->batch_id = col(s, 3);
        b->state = sqlite3_column_int(s, 4);
        int rcap = 0;
        sqlite3_bind_text(r, 1, b->local, -1, SQLITE_TRANSIENT);
        while (sqlite3_step(r) == SQLITE_ROW) {
            if (b->n == rcap) {
                rcap = rcap ? rcap * 2 : 16;
                b->custom_ids = wk_xrealloc(b->custom_ids, (size_t)rcap * sizeof(char *));
            }
            b->custom_ids[b->n++] = col(r, 0);
        }
        sqlite3_reset(r);
    }
    rc = 0;
cleanup:
    sqlite3_finalize(s);
    sqlite3_finalize(r);
    return rc;
}

void wk_jbatches_free(wk_jbatch *b, int n)
{
    for (int i = 0; i < n; i++) {
        free(b[i].local);
        free(b[i].model);
        free(b[i].file_id);
        free(b[i].batch_id);
        for (int k = 0; k < b[i].n; k++)
            free(b[i].custom_ids[k]);
        free(b[i].custom_ids);
    }
    free(b);
}

int wk_journal_attempt_lane(wk_journal *j, const char *task, int seq, int to_sync,
                            const char *batch_id)
{
    if (!j)
        return 0;
    char s[16], t[4];
    snprintf(s, sizeof s, "%d", seq);
    snprintf(t, sizeof t, "%d", to_sync ? 1 : 0);
    const char *v[] = {task, s, t, batch_id};
    return exec_text(j, "writing an attempt's lane",
                     "INSERT OR REPLACE INTO attempt_lanes(task, seq, to_sync, batch_id) "
                     "VALUES(?1, CAST(?2 AS INTEGER), CAST(?3 AS INTEGER), ?4)",
                     4, v);
}

int wk_journal_attempt_lane_get(wk_journal *j, const char *task, int seq, int *to_sync,
                                char *batch_id, size_t len)
{
    *to_sync = 0;
    batch_id[0] = '\0';
    if (!j)
        return 0;
    sqlite3 *db = db_of(j);
    if (!db)
        return WK_EIO;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT to_sync, batch_id FROM attempt_lanes WHERE task = ?1 AND "
                           "seq = ?2",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, task, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(s, 2, seq);
        if (sqlite3_step(s) == SQLITE_ROW) {
            *to_sync = sqlite3_column_int(s, 0);
            const unsigned char *b = sqlite3_column_text(s, 1);
            snprintf(batch_id, len, "%s", b ? (const char *)b : "");
        }
    }
    sqlite3_finalize(s);
    return 0;
}

int wk_journal_batch_pending(wk_journal *j, const char *task, int seq)
{
    if (!j)
        return 0;
    sqlite3 *db = db_of(j);
    if (!db)
        return 0;
    sqlite3_stmt *s = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT 1 FROM batch_reqs r JOIN batches b ON b.local = r.local "
                           "WHERE r.task = ?1 AND r.seq = ?2 AND b.state IN (1, 2) LIMIT 1",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, task, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(s, 2, seq);
        found = sqlite3_step(s) == SQLITE_ROW;
    }
    sqlite3_finalize(s);
    return found;
}
