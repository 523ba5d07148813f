/*
 * What the store's files share and nothing else calls.
 */
#ifndef WK_STORE_INT_H
#define WK_STORE_INT_H

#include <sqlite3.h>

#include "journal.h"
#include "lib/util.h"

/*
 * journal.c, for batchj.c: the database, the open transaction (begun when
 * none is; 0 or WK_EIO), and breaking the journal on a failed write.
 */
sqlite3 *wk__journal_db(wk_journal *j);
int wk__journal_txn(wk_journal *j);
int wk__journal_fail(wk_journal *j, const char *what);
/*
 * The statement sql, prepared on its first use after the tables of `schema`
 * (CREATE ... IF NOT EXISTS) are made, and kept until the journal closes:
 * borrowed; the caller resets it after each step. sql is keyed by its
 * address, so it is a string that lives as long as the program. NULL when
 * it cannot be prepared or KEPT_MAX (journal.c) are kept already.
 */
sqlite3_stmt *wk__journal_stmt(wk_journal *j, const char *schema, const char *sql);

/*
 * Registers (once) the full-disk VFS of faultvfs.c and arms it: the next
 * `writes` writes pass, every one after fails with SQLITE_FULL. *name is the
 * VFS's name for sqlite3_open_v2. Returns 0 or WK_EIO.
 */
int wk__fault_vfs(long writes, const char **name);

/*
 * walvfs.c: the VFS that wraps `base` (NULL: the default) and writes each
 * WAL commit in one piece; *name is its name for sqlite3_open_v2. Returns 0
 * or WK_EIO. wk__wal_flush hands db's held WAL bytes to the file: 0
 * (SQLITE_OK), or SQLite's error code, after which the WAL file fails every
 * call.
 */
int wk__wal_vfs(const char *base, const char **name);
int wk__wal_flush(sqlite3 *db);

#endif
