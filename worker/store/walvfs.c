/*
 * One write per commit to the journal's WAL. SQLite appends a commit to the
 * WAL as two writes a page (the frame's 24-byte header, then the page), so a
 * task's two commits were ten pwrite calls, the largest part of what the
 * journal cost at concurrency 1 (perf: the kernel's write path). This VFS
 * wraps another one and, for WAL files only, holds consecutive appends in a
 * buffer and hands them to the file as one write: when SQLite syncs, reads,
 * truncates, asks the size or closes the file, when an append does not
 * follow the held ones or the buffer is full, and when the journal flushes
 * it right after each COMMIT (wk__wal_flush). Until that flush, a commit is
 * in this process's memory, not the operating system's: the journal runs no
 * side effect before it, and a flush that fails breaks the journal.
 */
#include "store_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Held appends at most: SQLite's unix VFS writes at most 128 KiB - 1 in one
 * call (seekAndWriteFd masks the length to 17 bits, and a longer write comes
 * out short and reads as a full disk). A commit of a task's rows is a few
 * pages; a long answer's is written in 64 KiB pieces.
 */
#define WAL_HOLD_MAX (64u << 10)

typedef struct wfile {
    sqlite3_file base;
    sqlite3_file *real; /* the wrapped file, stored right after this struct */
    int wal;            /* a WAL file: appends are held */
    unsigned char *buf; /* held bytes, for the file at offset off; NULL until the first */
    size_t len, cap;
    sqlite3_int64 off;
    /*
     * The first failed write of held bytes, kept: they are gone, so every
     * later call fails too, and SQLite never reads frames it thinks are there.
     */
    int err;
} wfile;

#define REAL(f) (((wfile *)(f))->real)

static const sqlite3_io_methods wal_io;

/* Writes what is held; 0 (SQLITE_OK) or SQLite's error. Held bytes are dropped either way. */
static int flush(wfile *w)
{
    if (w->err || !w->len)
        return w->err;
    w->err = w->real->pMethods->xWrite(w->real, w->buf, (int)w->len, w->off);
    w->len = 0;
    return w->err;
}

static int w_close(sqlite3_file *f)
{
    wfile *w = (wfile *)f;
    int rc = flush(w);
    int rc2 = w->real->pMethods->xClose(w->real);
    free(w->buf);
    w->buf = NULL;
    return rc ? rc : rc2;
}

static int w_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
    wfile *w = (wfile *)f;
    if (w->err || (w->len && off < w->off + (sqlite3_int64)w->len && off + n > w->off)) {
        int rc = flush(w);
        if (rc)
            return rc;
    }
    return w->real->pMethods->xRead(w->real, buf, n, off);
}

static int w_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
    wfile *w = (wfile *)f;
    if (!w->wal)
        return w->real->pMethods->xWrite(w->real, buf, n, off);
    if (w->err)
        return w->err;
    if (w->len && (off != w->off + (sqlite3_int64)w->len || w->len + (size_t)n > WAL_HOLD_MAX)) {
        int rc = flush(w);
        if (rc)
            return rc;
    }
    if ((size_t)n > WAL_HOLD_MAX)
        return w->real->pMethods->xWrite(w->real, buf, n, off);
    if (w->len + (size_t)n > w->cap) {
        size_t cap = w->cap ? w->cap : 16384;
        while (cap < w->len + (size_t)n)
            cap *= 2;
        unsigned char *nb = realloc(w->buf, cap);
        if (!nb) { /* no room to hold it: written as SQLite asked */
            int rc = flush(w);
            return rc ? rc : w->real->pMethods->xWrite(w->real, buf, n, off);
        }
        w->buf = nb;
        w->cap = cap;
    }
    if (!w->len)
        w->off = off;
    memcpy(w->buf + w->len, buf, (size_t)n);
    w->len += (size_t)n;
    return SQLITE_OK;
}

static int w_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    int rc = flush((wfile *)f);
    return rc ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int w_sync(sqlite3_file *f, int flags)
{
    int rc = flush((wfile *)f);
    return rc ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int w_size(sqlite3_file *f, sqlite3_int64 *size)
{
    int rc = flush((wfile *)f);
    return rc ? rc : REAL(f)->pMethods->xFileSize(REAL(f), size);
}

static int w_lock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int w_unlock(sqlite3_file *f, int level)
{
    return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int w_reserved(sqlite3_file *f, int *out)
{
    return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

static int w_control(sqlite3_file *f, int op, void *arg)
{
    return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}

static int w_sector(sqlite3_file *f)
{
    return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int w_device(sqlite3_file *f)
{
    return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int w_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **p)
{
    return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, p);
}

static int w_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
    return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}

static void w_shm_barrier(sqlite3_file *f)
{
    REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int w_shm_unmap(sqlite3_file *f, int del)
{
    return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}

static int w_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **p)
{
    int rc = flush((wfile *)f);
    return rc ? rc : REAL(f)->pMethods->xFetch(REAL(f), off, n, p);
}

static int w_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
    return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods wal_io = {
    3,          w_close,       w_read,      w_write,   w_truncate, w_sync,   w_size,
    w_lock,     w_unlock,      w_reserved,  w_control, w_sector,   w_device, w_shm_map,
    w_shm_lock, w_shm_barrier, w_shm_unmap, w_fetch,   w_unfetch,
};

/* One wrapper per wrapped VFS: the default one, and the full-disk one of the tests. */
typedef struct wvfs {
    sqlite3_vfs vfs;
    sqlite3_vfs *real;
    char name[64];
} wvfs;

static wvfs wrapped[2];

static int w_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *outflags)
{
    sqlite3_vfs *real = ((wvfs *)vfs)->real;
    wfile *w = (wfile *)file;
    memset(w, 0, sizeof *w);
    w->real = (sqlite3_file *)(w + 1);
    w->wal = (flags & SQLITE_OPEN_WAL) != 0;
    int rc = real->xOpen(real, name, w->real, flags, outflags);
    /* SQLite calls xClose when pMethods is set, even after a failed open. */
    file->pMethods = w->real->pMethods ? &wal_io : NULL;
    return rc;
}

int wk__wal_vfs(const char *base, const char **name)
{
    sqlite3_vfs *real = sqlite3_vfs_find(base);
    if (!real || real->iVersion < 2)
        return WK_EIO;
    for (size_t i = 0; i < sizeof wrapped / sizeof wrapped[0]; i++) {
        wvfs *v = &wrapped[i];
        if (v->real == real) {
            *name = v->name;
            return 0;
        }
        if (v->real)
            continue;
        /* Everything but xOpen is the wrapped VFS's own (none of it uses pAppData). */
        v->vfs = *real;
        v->vfs.pNext = NULL;
        snprintf(v->name, sizeof v->name, "cascade-wal-%s", real->zName);
        v->vfs.zName = v->name;
        v->vfs.szOsFile = (int)sizeof(wfile) + real->szOsFile;
        v->vfs.xOpen = w_open;
        if (sqlite3_vfs_register(&v->vfs, 0) != SQLITE_OK)
            return WK_EIO;
        v->real = real;
        *name = v->name;
        return 0;
    }
    return WK_EIO;
}

int wk__wal_flush(sqlite3 *db)
{
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK || !f ||
        f->pMethods != &wal_io)
        return SQLITE_OK;
    return flush((wfile *)f);
}
