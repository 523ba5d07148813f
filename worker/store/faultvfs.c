/*
 * A full disk on demand, for the tests of the journal's write-ahead promise.
 * An SQLite VFS that wraps the default one and lets the first N writes
 * through; every write after them, and every sync, fails with SQLITE_FULL,
 * as a disk that filled up would (it stays full). Only SQLite's files go
 * through it, so the results file and the escalation log are untouched and
 * the failure lands exactly where the journal must handle it.
 *
 * Registered once by wk_journal_fault_full_after() (see journal.h), which
 * the driver calls at startup when CASCADE_FAULT_JOURNAL_FULL_AFTER is set.
 */
#include "store_int.h"

#include <sqlite3.h>
#include <stddef.h>

typedef struct ffile {
    sqlite3_file base;
    sqlite3_file *real; /* the wrapped file, stored right after this struct */
} ffile;

static sqlite3_vfs fault_vfs;
static sqlite3_vfs *real_vfs;
static long writes_left;

#define REAL(f) (((ffile *)(f))->real)

static int full(void)
{
    if (writes_left > 0) {
        writes_left--;
        return 0;
    }
    return 1;
}

static int f_close(sqlite3_file *f)
{
    return REAL(f)->pMethods->xClose(REAL(f));
}

static int f_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int f_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    if (full())
        return SQLITE_FULL;
    return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int f_sync(sqlite3_file *f, int flags)
{
    if (writes_left <= 0)
        return SQLITE_FULL;
    return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int f_size(sqlite3_file *f, sqlite3_int64 *size)
{
    return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int f_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int f_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int f_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int f_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int f_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int f_device(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

/* WAL's shared memory is a mapping, not a write: it passes untouched. */
static int f_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, p);
}

static int f_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void f_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int f_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int f_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p)
{
    return REAL(f)->pMethods->xFetch(REAL(f), off, n, p);
}

static int f_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods fault_io = {
    3,          f_close,       f_read,      f_write,   f_truncate, f_sync,   f_size,
    f_lock,     f_unlock,      f_reserved,  f_control, f_sector,   f_device, f_shm_map,
    f_shm_lock, f_shm_barrier, f_shm_unmap, f_fetch,   f_unfetch,
};

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *outflags)
{
    (void)vfs;
    ffile *f = (ffile *)file;
    f->real = (sqlite3_file *)(f + 1);
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, outflags);
    /* SQLite calls xClose when pMethods is set, even after a failed open. */
    file->pMethods = f->real->pMethods ? &fault_io : NULL;
    return rc;
}

int wk__fault_vfs(long writes, const char **name)
{
    if (!real_vfs) {
        real_vfs = sqlite3_vfs_find(NULL);
        if (!real_vfs || real_vfs->iVersion < 2)
            return WK_EIO;
        /* Everything but xOpen is the default VFS's own (none of it uses pAppData). */
        fault_vfs = *real_vfs;
        fault_vfs.pNext = NULL;
        fault_vfs.zName = "cascade-full-disk";
        fault_vfs.szOsFile = (int)sizeof(ffile) + real_vfs->szOsFile;
        fault_vfs.xOpen = f_open;
        if (sqlite3_vfs_register(&fault_vfs, 0) != SQLITE_OK)
            return WK_EIO;
    }
    writes_left = writes;
    *name = fault_vfs.zName;
    return 0;
}
