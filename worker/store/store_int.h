/*
 * What the store's files share and nothing else calls.
 */
#ifndef WK_STORE_INT_H
#define WK_STORE_INT_H

#include "lib/util.h"

/*
 * Registers (once) the full-disk VFS of faultvfs.c and arms it: the next
 * `writes` writes pass, every one after fails with SQLITE_FULL. *name is the
 * VFS's name for sqlite3_open_v2. Returns 0 or WK_EIO.
 */
int wk__fault_vfs(long writes, const char **name);

#endif
