/*
 * The history rows (history.h), in a table of their own made on first use,
 * beside the attempts (as batchj.c does); journal.c keeps the two writes'
 * statements prepared (wk__journal_stmt), as a task makes one of each.
 */
#include "history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"
#include "worker/similar.h"

static const char *const SCHEMA =
    "CREATE TABLE IF NOT EXISTS history(seq INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT, "
    "cascade TEXT, model TEXT, dim INTEGER, vec BLOB, tier INTEGER);"
    "CREATE INDEX IF NOT EXISTS history_model ON history(model, seq);"
    "CREATE TABLE IF NOT EXISTS starts(task TEXT PRIMARY KEY, note TEXT, dim INTEGER, vec BLOB);";

/* The writes, prepared once per journal (wk__journal_stmt keys them by address). */
static const char ADD[] = "INSERT INTO history(task, cascade, model, dim, vec, tier) "
                          "VALUES(?1, ?2, ?3, ?4, ?5, ?6)";
static const char START_PUT[] =
    "INSERT OR REPLACE INTO starts(task, note, dim, vec) VALUES(?1, ?2, ?3, ?4)";

/*
 * A write of this file: inside the journal's open transaction, the tables made
 * on its first use (a journal without a similar start never has them). *s is
 * NULL on failure; the caller resets it either way.
 */
static int write_stmt(wk_journal *j, const char *sql, sqlite3_stmt **s)
{
    *s = NULL;
    if (wk__journal_txn(j))
        return WK_EIO;
    *s = wk__journal_stmt(j, SCHEMA, sql);
    return *s ? 0 : WK_EIO;
}

int wk_history_add(wk_journal *j, const char *task, const char *cascade, const char *model,
                   const float *vec, int dim, int tier)
{
    if (!j)
        return 0;
    sqlite3_stmt *s = NULL;
    int rc = WK_EIO;
    if (write_stmt(j, ADD, &s))
        goto cleanup;
    sqlite3_bind_text(s, 1, task, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, cascade, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 3, model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 4, dim);
    sqlite3_bind_blob(s, 5, vec, (int)((size_t)dim * sizeof *vec), SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 6, tier);
    if (sqlite3_step(s) == SQLITE_DONE)
        rc = 0;
cleanup:
    if (s) { /* kept by the journal: no binding may leak into the next write */
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    return rc ? wk__journal_fail(j, "writing the similar-start history") : 0;
}

/* The rows of db; a database without the table has none. */
static int load_db(sqlite3 *db, const char *model, long max, wk_history_fn each, void *arg)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db,
                           "SELECT cascade, dim, vec, tier FROM (SELECT * FROM history WHERE "
                           "model = ?1 ORDER BY seq DESC LIMIT ?2) ORDER BY seq",
                           -1, &s, NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return 0; /* no history table yet */
    }
    sqlite3_bind_text(s, 1, model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 2, max);
    int rc = 0, st;
    while ((st = sqlite3_step(s)) == SQLITE_ROW) {
        const char *cascade = (const char *)sqlite3_column_text(s, 0);
        int dim = sqlite3_column_int(s, 1);
        const void *blob = sqlite3_column_blob(s, 2);
        int bytes = sqlite3_column_bytes(s, 2);
        /* A row that does not hold what it says is skipped, not trusted. */
        if (!cascade || dim < 1 || dim > WK_SIMILAR_DIM_MAX || !blob ||
            (size_t)bytes != (size_t)dim * sizeof(float))
            continue;
        float v[WK_SIMILAR_DIM_MAX];
        memcpy(v, blob, (size_t)bytes); /* the blob need not be aligned for floats */
        rc = each(arg, cascade, v, dim, sqlite3_column_int(s, 3));
        if (rc)
            break;
    }
    if (!rc && st != SQLITE_ROW && st != SQLITE_DONE)
        rc = WK_EIO;
    sqlite3_finalize(s);
    return rc;
}

int wk_history_load(wk_journal *j, const char *model, long max, wk_history_fn each, void *arg)
{
    if (!j)
        return 0;
    return load_db(wk__journal_db(j), model, max, each, arg);
}

int wk_history_load_file(const char *path, const char *model, long max, wk_history_fn each,
                         void *arg, char *err, size_t errlen)
{
    sqlite3 *db = NULL;
    int rc = 0;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = wk_errf(WK_EIO, err, errlen, "--history-from %s: cannot open: %s", path,
                     db ? sqlite3_errmsg(db) : "out of memory");
        goto cleanup;
    }
    rc = load_db(db, model, max, each, arg);
    if (rc == WK_EIO)
        wk_errf(WK_EIO, err, errlen, "--history-from %s: cannot read: %s", path,
                sqlite3_errmsg(db));
cleanup:
    sqlite3_close(db);
    return rc;
}

int wk_history_start_put(wk_journal *j, const char *task, const char *note, const float *vec,
                         int dim)
{
    if (!j)
        return 0;
    sqlite3_stmt *s = NULL;
    int rc = WK_EIO;
    if (write_stmt(j, START_PUT, &s))
        goto cleanup;
    sqlite3_bind_text(s, 1, task, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(s, 2, note, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 3, vec ? dim : 0);
    if (vec && dim > 0)
        sqlite3_bind_blob(s, 4, vec, (int)((size_t)dim * sizeof *vec), SQLITE_TRANSIENT);
    if (sqlite3_step(s) == SQLITE_DONE)
        rc = 0;
cleanup:
    if (s) { /* kept by the journal: no binding may leak into the next write */
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
    return rc ? wk__journal_fail(j, "writing a task's start") : 0;
}

int wk_history_start_get(wk_journal *j, const char *task, char **note, float **vec, int *dim)
{
    *note = NULL;
    *vec = NULL;
    *dim = 0;
    if (!j)
        return 0;
    sqlite3_stmt *s = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(wk__journal_db(j), "SELECT note, dim, vec FROM starts WHERE task = ?1",
                           -1, &s, NULL) != SQLITE_OK)
        goto cleanup; /* no starts table: no task started by similarity yet */
    sqlite3_bind_text(s, 1, task, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(s) != SQLITE_ROW || !sqlite3_column_text(s, 0))
        goto cleanup;
    *note = wk_xstrdup((const char *)sqlite3_column_text(s, 0));
    int d = sqlite3_column_int(s, 1);
    const void *blob = sqlite3_column_blob(s, 2);
    if (d > 0 && d <= WK_SIMILAR_DIM_MAX && blob &&
        (size_t)sqlite3_column_bytes(s, 2) == (size_t)d * sizeof(float)) {
        *vec = wk_xmalloc((size_t)d * sizeof(float));
        memcpy(*vec, blob, (size_t)d * sizeof(float));
        *dim = d;
    }
    found = 1;
cleanup:
    sqlite3_finalize(s);
    return found;
}
