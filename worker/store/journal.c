/*
 * The journal (see journal.h). Prepared statements, one open transaction
 * per loop iteration, synchronous=NORMAL in WAL mode: a commit survives a
 * crash of the process (kill -9); a power cut may lose the newest commits
 * but never leaves the database inconsistent.
 *
 * What a commit costs was measured (callgrind, strace; make bench) and cut
 * where it showed: one connection holds the database in exclusive locking
 * mode (no fcntl locks and no shared-memory index per transaction), without
 * SQLite's mutexes (one thread uses it), attempts is WITHOUT ROWID (a row
 * write touches one b-tree, not a table and its primary-key index) while
 * tasks, whose rows hold whole result lines, is a rowid table (SQLite's
 * advice for rows over a twentieth of a page: a DONE row is appended at the
 * right edge and its key goes into a small index, where a WITHOUT ROWID row
 * split and rebalanced about three pages a commit; journals made before
 * keep theirs, the statements are the same), pages
 * are 2 KiB (a commit writes whole pages; a task's rows are small), the WAL
 * is checkpointed every 32000 pages rather than 1000 (each checkpoint syncs
 * the disk), a commit reaches the WAL file in one write (walvfs.c), a
 * RECEIVED row and its VERDICT are one write when they share a transaction
 * (struct held), a fresh journal is not searched at intake
 * (wk_journal_fresh), and a result line's commit may wait for the next
 * task's SENT to join it (wk_journal_then_lazy): one commit a task at
 * concurrency 1, not two.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "lib/util.h"
#include "store_int.h"
#include "worker/rkey.h"

/* What a waiting side effect waits for (wk_journal_later, _then, _then_lazy). */
enum { W_CHECK, W_COMMIT, W_LAZY };

typedef struct then_node {
    wk_journal_cb fn;
    void *arg;
    int wait; /* W_* */
    struct then_node *next;
} then_node;

enum {
    S_SENT,
    S_RECEIVED,
    S_VERDICT,
    S_DONE,
    S_GET_DONE,
    S_GET_ATT,
    S_FORGET_TASK,
    S_FORGET_ATT,
    S_VSTART,
    S_EXTRA,
    S_RECEIVED_VERDICT,
    S_BEGIN,
    S_COMMIT,
    S_COUNT
};

static const char *const SQL[S_COUNT] = {
    "INSERT INTO attempts(task, seq, model, state) VALUES(?1, ?2, ?3, 1) "
    "ON CONFLICT(task, seq) DO UPDATE SET state = max(state, 1)",
    "UPDATE attempts SET state = 2, text = ?3, finish = ?4, pt = ?5, ct = ?6, cached = ?7, "
    "served = ?8, retries = ?9, fallbacks = ?10 WHERE task = ?1 AND seq = ?2",
    "UPDATE attempts SET state = 3, pass = ?3, validator = ?4, reason = ?5, message = ?6, "
    "evidence = ?7, note = ?8 WHERE task = ?1 AND seq = ?2",
    "INSERT INTO tasks(id, done, result) VALUES(?1, 1, ?2) "
    "ON CONFLICT(id) DO UPDATE SET done = 1, result = ?2",
    "SELECT result FROM tasks WHERE id = ?1 AND done = 1",
    "SELECT seq, state, model, text, finish, served, pt, ct, cached, retries, fallbacks, pass, "
    "validator, reason, message, evidence, note, vstarts, extra FROM attempts WHERE task = ?1 "
    "ORDER BY seq",
    "DELETE FROM tasks WHERE id = ?1",
    "DELETE FROM attempts WHERE task = ?1",
    "UPDATE attempts SET vstarts = CASE WHEN ?3 THEN coalesce(vstarts, 0) + 1 ELSE 0 END "
    "WHERE task = ?1 AND seq = ?2",
    "UPDATE attempts SET extra = ?3 WHERE task = ?1 AND seq = ?2",
    /* A held RECEIVED row and its VERDICT in one write (struct held). */
    "UPDATE attempts SET state = 3, text = ?3, finish = ?4, pt = ?5, ct = ?6, cached = ?7, "
    "served = ?8, retries = ?9, fallbacks = ?10, pass = ?11, validator = ?12, reason = ?13, "
    "message = ?14, evidence = ?15, note = ?16 WHERE task = ?1 AND seq = ?2",
    /* Prepared once: sqlite3_exec would parse them again for every transaction. */
    "BEGIN",
    "COMMIT",
};

/*
 * A RECEIVED row not yet written (wk_journal_received), with copies of its
 * strings. When its VERDICT comes before the transaction commits (with no
 * validator, in the same check phase), the two are one UPDATE instead of
 * two. Held rows are written before any commit, any read, any write of the
 * store's other files and any other write of an attempt of their task, so
 * every commit and every read holds the same rows as if they had been
 * written at once; the rows of the tasks table (DONE) are apart.
 */
typedef struct held {
    char *id, *text, *finish, *served;
    int seq, retries, fallbacks;
    long pt, ct, cached;
} held;

/* At most this many held at once (the tasks whose answers one iteration feeds). */
#define HELD_MAX 64

/*
 * A lazy side effect's commit waits at most this many check phases in a row
 * (wk_journal_then_lazy): at concurrency 1 the next task's SENT comes two
 * iterations after a result's DONE (intake's idle handle, then the queue's).
 */
#define DEFER_MAX 3

/* The store's other files' statements kept prepared (wk__journal_stmt); history.c has two. */
#define KEPT_MAX 8

struct wk_journal {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    uv_check_t check;
    /*
     * A check handle does not keep poll from blocking; work queued after this
     * iteration's check phase (from a close callback, say) would wait for
     * unrelated I/O. An idle handle makes the next poll return at once.
     */
    uv_idle_t wake;
    /*
     * Runs just before the poll of the iteration after a check phase put a
     * commit off (may_defer): if that poll would wait, the commit is made
     * there, so a lazy side effect never waits for unrelated I/O.
     */
    uv_prepare_t settle;
    int handles; /* handles still open; the last close callback frees */
    uv_loop_t *loop;
    int in_txn;
    then_node *head, *tail;
    int ncommit;  /* nodes in the list that wait for a commit now (W_COMMIT) */
    int nlazy;    /* nodes that wait for a commit that may be put off (W_LAZY) */
    int deferred; /* check phases in a row that put the commit off */
    long commits;
    char *path;
    int lock_fd; /* flock(LOCK_EX) on the database file while it is open */
    int fresh;   /* it held no task and no attempt when opened (wk_journal_fresh) */
    held held[HELD_MAX];
    int nheld;
    struct {
        const char *sql;
        sqlite3_stmt *s;
    } kept[KEPT_MAX];
    int nkept;
    /* Set by the first failed write or commit; the journal writes nothing after it. */
    char *error;
};

/* Only the first failure is kept: what follows it is its consequence. */
static void set_error(wk_journal *j, const char *what)
{
    if (!j->error)
        j->error = wk_xasprintf("journal %s: %s: %s", j->path, what, sqlite3_errmsg(j->db));
}

/*
 * A write or a commit failed: the open transaction is rolled back whole, so
 * no row is kept whose side effect will not run, and the journal is broken
 * (see wk_journal_then). SQLite may have rolled back already; then ROLLBACK
 * is not needed.
 */
static int fail(wk_journal *j, const char *what)
{
    set_error(j, what);
    if (!sqlite3_get_autocommit(j->db))
        sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
    j->in_txn = 0;
    return WK_EIO;
}

static void on_check(uv_check_t *h);
static void on_settle(uv_prepare_t *h);
static int flush_held(wk_journal *j);
static void drop_held(wk_journal *j);
static void finalize_all(wk_journal *j);
static int find_held(const wk_journal *j, const char *id, int seq);

/* Idle callbacks run before poll: this one stays active until on_check is done. */
static void on_wake(uv_idle_t *h)
{
    (void)h;
}

static void arm(wk_journal *j)
{
    uv_check_start(&j->check, on_check);
    uv_idle_start(&j->wake, on_wake);
}

static int need_txn(wk_journal *j)
{
    if (j->error)
        return WK_EIO;
    if (!j->in_txn) {
        int ok = sqlite3_step(j->st[S_BEGIN]) == SQLITE_DONE;
        sqlite3_reset(j->st[S_BEGIN]);
        if (!ok)
            return fail(j, "BEGIN");
        j->in_txn = 1;
        arm(j);
    }
    return 0;
}

/* 0 when everything written so far is committed; WK_EIO once the journal failed. */
static int commit(wk_journal *j)
{
    if (j->error || flush_held(j)) {
        drop_held(j);
        return WK_EIO;
    }
    if (j->in_txn) {
        int ok = sqlite3_step(j->st[S_COMMIT]) == SQLITE_DONE;
        if (!ok)
            set_error(j, "COMMIT"); /* before the reset, which may change the message */
        sqlite3_reset(j->st[S_COMMIT]);
        if (!ok)
            return fail(j, "COMMIT");
        j->in_txn = 0;
        /* The commit is the operating system's only now (walvfs.c). */
        int frc = wk__wal_flush(j->db);
        if (frc != SQLITE_OK) {
            if (!j->error)
                j->error = wk_xasprintf("journal %s: COMMIT: %s", j->path, sqlite3_errstr(frc));
            /*
             * SQLite counts the commit's frames as in the WAL, which does not
             * hold them: closing must not checkpoint them into the database.
             * Reopened, the WAL ends before the lost commit.
             */
            sqlite3_db_config(j->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
            return WK_EIO;
        }
        j->commits++;
    }
    return 0;
}

/*
 * Hands each waiting side effect the status; they may queue more. Those whose
 * wait is in the mask `keep` (bits 1 << W_*) stay in the list, in their order
 * and ahead of what the others queue. Returns how many ran.
 */
static int run_waiting(wk_journal *j, int status, int keep)
{
    then_node *n = j->head, *kept = NULL, *kept_tail = NULL;
    int ran = 0;
    j->head = j->tail = NULL;
    j->ncommit = j->nlazy = 0;
    while (n) {
        then_node *next = n->next;
        if (keep & (1 << n->wait)) {
            n->next = NULL;
            if (kept_tail)
                kept_tail->next = n;
            else
                kept = n;
            kept_tail = n;
            j->ncommit += n->wait == W_COMMIT;
            j->nlazy += n->wait == W_LAZY;
        } else {
            n->fn(n->arg, status);
            free(n);
            ran++;
        }
        n = next;
    }
    if (kept) {
        kept_tail->next = j->head;
        if (!j->head)
            j->tail = kept_tail;
        j->head = kept;
    }
    return ran;
}

/*
 * Whether the commit that lazy side effects wait for may be put off to the
 * next check phase, so the rows the next iteration writes (the next task's
 * SENT) join it. Bounded by DEFER_MAX; never when the loop is stopping. If
 * the loop has nothing ready by then, on_settle commits before it polls.
 */
static int may_defer(const wk_journal *j)
{
    return !j->error && j->in_txn && !j->ncommit && j->nlazy && j->deferred < DEFER_MAX &&
           !j->loop->stop_flag;
}

/*
 * Commit, then the side effects that waited for it (or their failure). A
 * round whose nodes only wait for the check phase (wk_journal_later) runs
 * them without a commit, so their rows join the commit that the next side
 * effect needs: at concurrency 1, a task's RECEIVED, VERDICT and DONE rows
 * are one commit, and with the result line's wait lazy (wk_journal_then_lazy)
 * the next task's SENT joins it too. Rows that nothing waits for are
 * committed by the end of the iteration all the same, unless a lazy side
 * effect's commit is put off (may_defer), within DEFER_MAX iterations.
 * may_put_off 0: no commit is put off.
 */
static void settle(wk_journal *j, int may_put_off)
{
    int deferring = 0;
    for (int rounds = 0; rounds < 1000 && (j->in_txn || j->head); rounds++) {
        deferring = may_put_off && may_defer(j);
        if (deferring) {
            if (run_waiting(j, 0, 1 << W_LAZY) == 0)
                break;
            continue;
        }
        run_waiting(j, j->ncommit || j->nlazy || !j->head ? commit(j) : j->error ? WK_EIO : 0, 0);
    }
    if (deferring && (j->in_txn || j->head)) {
        /* Our idle handle would keep the next poll from waiting; on_settle decides. */
        j->deferred++;
        uv_idle_stop(&j->wake);
        uv_prepare_start(&j->settle, on_settle);
        return;
    }
    j->deferred = 0;
    if (!j->in_txn && !j->head) {
        uv_check_stop(&j->check);
        uv_idle_stop(&j->wake);
    }
}

static void on_check(uv_check_t *h)
{
    settle(h->data, 1);
}

/*
 * The iteration after a commit was put off, before its poll: when the poll
 * would wait (nothing else is ready), the commit is made now; otherwise the
 * check phase after the poll settles it.
 */
static void on_settle(uv_prepare_t *h)
{
    wk_journal *j = h->data;
    uv_prepare_stop(h);
    if (uv_backend_timeout(j->loop) != 0)
        settle(j, 0);
}

static void enqueue(wk_journal *j, wk_journal_cb fn, void *arg, int wait)
{
    then_node *n = wk_xcalloc(1, sizeof *n);
    n->fn = fn;
    n->arg = arg;
    n->wait = wait;
    j->ncommit += wait == W_COMMIT;
    j->nlazy += wait == W_LAZY;
    if (j->tail)
        j->tail->next = n;
    else
        j->head = n;
    j->tail = n;
    arm(j);
}

void wk_journal_then(wk_journal *j, wk_journal_cb fn, void *arg)
{
    if (!j)
        fn(arg, 0);
    else
        enqueue(j, fn, arg, W_COMMIT);
}

void wk_journal_then_lazy(wk_journal *j, wk_journal_cb fn, void *arg)
{
    if (!j)
        fn(arg, 0);
    else
        enqueue(j, fn, arg, W_LAZY);
}

void wk_journal_later(wk_journal *j, wk_journal_cb fn, void *arg)
{
    if (!j)
        fn(arg, 0);
    else
        enqueue(j, fn, arg, W_CHECK);
}

static const char *vfs_name; /* the full-disk VFS, when a test armed it */

int wk_journal_fault_full_after(long writes)
{
    return wk__fault_vfs(writes, &vfs_name);
}

int wk_journal_open(uv_loop_t *loop, const char *path, wk_journal **out, char *err, size_t errlen)
{
    wk_journal *j = wk_xcalloc(1, sizeof *j);
    int rc = WK_EIO;
    j->loop = loop;
    j->path = wk_xstrdup(path);
    /*
     * One run per journal: a second one would run every task the first runs
     * and pay twice. flock is apart from SQLite's own (fcntl) locks on Linux,
     * and the kernel drops it when the process dies, kill -9 included.
     */
    j->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (j->lock_fd < 0) {
        snprintf(err, errlen, "cannot open journal %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            snprintf(err, errlen,
                     "journal %s is in use by another cascade run (two runs on one journal "
                     "would both run and pay for every task); wait for it to finish",
                     path);
        else
            snprintf(err, errlen, "cannot lock journal %s: %s", path, strerror(errno));
        goto cleanup;
    }
    /*
     * NOMUTEX: the connection is used from the loop's thread alone.
     * locking_mode=EXCLUSIVE below: nothing else opens the journal while a run
     * holds it (the flock above says so to other runs; the store's other files
     * use this connection, wk__journal_db), so SQLite's per-transaction file
     * locks buy nothing. Set before the first access, it also keeps the WAL
     * index in memory instead of a -shm file.
     */
    const char *vfs = NULL;
    if (wk__wal_vfs(vfs_name, &vfs)) {
        snprintf(err, errlen, "cannot open journal %s: no SQLite VFS", path);
        goto cleanup;
    }
    if (sqlite3_open_v2(path, &j->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        vfs) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open journal %s: %s", path, sqlite3_errmsg(j->db));
        goto cleanup;
    }
    sqlite3_busy_timeout(j->db, 5000);
    if (sqlite3_exec(j->db,
                     "PRAGMA page_size=2048; PRAGMA locking_mode=EXCLUSIVE; PRAGMA "
                     "journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE IF NOT EXISTS tasks(id TEXT PRIMARY KEY, done INTEGER, "
                     "result TEXT);"
                     "CREATE TABLE IF NOT EXISTS attempts(task TEXT, seq INTEGER, "
                     "model TEXT, state INTEGER, text TEXT, finish TEXT, pt INTEGER, ct INTEGER, "
                     "cached INTEGER, served TEXT, retries INTEGER, fallbacks INTEGER, "
                     "pass INTEGER, validator TEXT, reason TEXT, message TEXT, evidence TEXT, "
                     "note TEXT, PRIMARY KEY(task, seq)) WITHOUT ROWID;",
                     NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "journal %s: %s", path, sqlite3_errmsg(j->db));
        goto cleanup;
    }
    /*
     * A journal from before verdict notes were kept lacks the column. Adding
     * it fails harmlessly when it is there; any other failure shows up as a
     * statement that does not prepare, just below.
     */
    sqlite3_exec(j->db, "ALTER TABLE attempts ADD COLUMN note TEXT", NULL, NULL, NULL);
    /* Likewise the count of validations started (wk_journal_validating). */
    sqlite3_exec(j->db, "ALTER TABLE attempts ADD COLUMN vstarts INTEGER", NULL, NULL, NULL);
    /* And the answer's logprobs and other choices (wk_journal_received_extra). */
    sqlite3_exec(j->db, "ALTER TABLE attempts ADD COLUMN extra TEXT", NULL, NULL, NULL);
    /*
     * Fewer checkpoints: each blocks the loop on fdatasyncs (the WAL before,
     * the database after, the restarted WAL's header), 38 of them for 20,000
     * tasks at 8000 pages, 0.85 s in all on a busy disk (strace -T), about
     * 40 us a task. The WAL file grows to about 64 MiB before it restarts.
     */
    sqlite3_exec(j->db, "PRAGMA wal_autocheckpoint=32000", NULL, NULL, NULL);
    for (int i = 0; i < S_COUNT; i++)
        if (sqlite3_prepare_v2(j->db, SQL[i], -1, &j->st[i], NULL) != SQLITE_OK) {
            snprintf(err, errlen, "journal %s: %s", path, sqlite3_errmsg(j->db));
            goto cleanup;
        }
    sqlite3_stmt *e = NULL;
    if (sqlite3_prepare_v2(j->db,
                           "SELECT NOT EXISTS(SELECT 1 FROM tasks) AND "
                           "NOT EXISTS(SELECT 1 FROM attempts)",
                           -1, &e, NULL) == SQLITE_OK &&
        sqlite3_step(e) == SQLITE_ROW)
        j->fresh = sqlite3_column_int(e, 0);
    sqlite3_finalize(e);
    uv_check_init(loop, &j->check);
    j->check.data = j;
    uv_idle_init(loop, &j->wake);
    j->wake.data = j;
    uv_prepare_init(loop, &j->settle);
    j->settle.data = j;
    j->handles = 3;
    *out = j;
    j = NULL;
    rc = 0;
cleanup:
    if (j) {
        drop_held(j);
        finalize_all(j);
        sqlite3_close(j->db);
        if (j->lock_fd >= 0)
            close(j->lock_fd);
        free(j->error);
        free(j->path);
        free(j);
    }
    return rc;
}

/* Every statement, before the database closes (sqlite3_close refuses while one lives). */
static void finalize_all(wk_journal *j)
{
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(j->st[i]);
    for (int i = 0; i < j->nkept; i++)
        sqlite3_finalize(j->kept[i].s);
    j->nkept = 0;
}

static void handle_closed(uv_handle_t *h)
{
    wk_journal *j = h->data;
    /* libuv runs close callbacks in no promised order: the last one frees. */
    if (--j->handles > 0)
        return;
    drop_held(j);
    finalize_all(j);
    sqlite3_close(j->db);
    close(j->lock_fd);
    free(j->error);
    free(j->path);
    free(j);
}

int wk_journal_close(wk_journal *j)
{
    if (!j)
        return 0;
    int rc = commit(j);
    /* Lazy side effects put off (may_defer) whose rows are now committed run as they would have. */
    if (rc == 0 && j->nlazy)
        run_waiting(j, 0, 1 << W_CHECK | 1 << W_COMMIT);
    /* Other side effects never run now: their rows say where a restart resumes. */
    for (int rounds = 0; rounds < 1000 && j->head; rounds++)
        run_waiting(j, WK_ECANCELED, 0);
    uv_check_stop(&j->check);
    uv_idle_stop(&j->wake);
    uv_prepare_stop(&j->settle);
    uv_close((uv_handle_t *)&j->wake, handle_closed);
    uv_close((uv_handle_t *)&j->settle, handle_closed);
    uv_close((uv_handle_t *)&j->check, handle_closed);
    return rc;
}

/*
 * Bound without a copy: every statement is stepped, reset and cleared
 * (step, wk_journal_done_result, wk_journal_attempts) while the caller's
 * strings are still alive, so SQLite never holds them past the call.
 */
static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static int step(wk_journal *j, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : WK_EIO;
    if (rc)
        set_error(j, what); /* before the reset, which may change the message */
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return rc ? fail(j, what) : 0;
}

/*
 * The statement of one row write, inside the open transaction, with the task
 * id bound as ?1 and seq as ?2 (seq < 0: none); NULL when no transaction opens.
 */
static sqlite3_stmt *row(wk_journal *j, int which, const char *id, int seq)
{
    /* Held rows go first, unless the write is apart from them (struct held). */
    if (j->nheld && which != S_DONE && which != S_RECEIVED_VERDICT &&
        (which != S_SENT || find_held(j, id, -1) >= 0) && flush_held(j))
        return NULL;
    if (need_txn(j))
        return NULL;
    sqlite3_stmt *s = j->st[which];
    bind_text(s, 1, id);
    if (seq >= 0)
        sqlite3_bind_int(s, 2, seq);
    return s;
}

/* The index of the held row of task id (and attempt seq, when >= 0), or -1. */
static int find_held(const wk_journal *j, const char *id, int seq)
{
    for (int i = 0; i < j->nheld; i++)
        if ((seq < 0 || j->held[i].seq == seq) && strcmp(j->held[i].id, id) == 0)
            return i;
    return -1;
}

static void free_held(held *h)
{
    free(h->id);
    free(h->text);
    free(h->finish);
    free(h->served);
}

/* Drops the held row i (written, or lost with a failed transaction). */
static void forget_held(wk_journal *j, int i)
{
    free_held(&j->held[i]);
    j->held[i] = j->held[--j->nheld];
}

static void drop_held(wk_journal *j)
{
    while (j->nheld)
        forget_held(j, j->nheld - 1);
}

/* Binds held row h's RECEIVED fields as ?3..?10 (the id and seq are row()'s). */
static void bind_held(sqlite3_stmt *s, const held *h)
{
    bind_text(s, 3, h->text);
    bind_text(s, 4, h->finish);
    sqlite3_bind_int64(s, 5, h->pt);
    sqlite3_bind_int64(s, 6, h->ct);
    sqlite3_bind_int64(s, 7, h->cached);
    bind_text(s, 8, h->served);
    sqlite3_bind_int(s, 9, h->retries);
    sqlite3_bind_int(s, 10, h->fallbacks);
}

/* Writes the held rows: 0, or WK_EIO when one fails (the others are dropped). */
static int flush_held(wk_journal *j)
{
    while (j->nheld) {
        held *h = &j->held[j->nheld - 1];
        int rc = WK_EIO;
        if (!need_txn(j)) {
            sqlite3_stmt *s = j->st[S_RECEIVED];
            bind_text(s, 1, h->id);
            sqlite3_bind_int(s, 2, h->seq);
            bind_held(s, h);
            rc = step(j, s, "writing RECEIVED");
        }
        forget_held(j, j->nheld - 1);
        if (rc) {
            drop_held(j);
            return rc;
        }
    }
    return 0;
}

int wk_journal_sent(wk_journal *j, const char *id, int seq, const char *model)
{
    if (!j)
        return 0;
    sqlite3_stmt *s = row(j, S_SENT, id, seq);
    if (!s)
        return WK_EIO;
    bind_text(s, 3, model);
    return step(j, s, "writing SENT");
}

int wk_journal_received(wk_journal *j, const char *id, int seq, const char *text,
                        const char *finish, long pt, long ct, long cached, const char *served,
                        int retries, int fallbacks)
{
    if (!j)
        return 0;
    /* Held (struct held): one per task, at most HELD_MAX; the open transaction is its. */
    if (j->nheld && (j->nheld == HELD_MAX || find_held(j, id, -1) >= 0) && flush_held(j))
        return WK_EIO;
    if (need_txn(j))
        return WK_EIO;
    j->held[j->nheld++] = (held){.id = wk_xstrdup(id),
                                 .text = text ? wk_xstrdup(text) : NULL,
                                 .finish = finish ? wk_xstrdup(finish) : NULL,
                                 .served = served ? wk_xstrdup(served) : NULL,
                                 .seq = seq,
                                 .retries = retries,
                                 .fallbacks = fallbacks,
                                 .pt = pt,
                                 .ct = ct,
                                 .cached = cached};
    return 0;
}

int wk_journal_received_extra(wk_journal *j, const char *id, int seq, const char *extra)
{
    if (!j)
        return 0;
    sqlite3_stmt *s = row(j, S_EXTRA, id, seq);
    if (!s)
        return WK_EIO;
    bind_text(s, 3, extra);
    return step(j, s, "writing RECEIVED");
}

int wk_journal_verdict(wk_journal *j, const char *id, int seq, const val_verdict *v)
{
    if (!j)
        return 0;
    /* Its RECEIVED row still held: both in one write, the verdict's fields from ?11. */
    int h = find_held(j, id, seq);
    sqlite3_stmt *s = row(j, h >= 0 ? S_RECEIVED_VERDICT : S_VERDICT, id, seq);
    if (!s)
        return WK_EIO;
    int at = 3;
    if (h >= 0) {
        bind_held(s, &j->held[h]);
        at = 11;
    }
    sqlite3_bind_int(s, at, v->pass);
    bind_text(s, at + 1, v->validator);
    bind_text(s, at + 2, v->reason);
    bind_text(s, at + 3, v->message);
    bind_text(s, at + 4, v->evidence);
    bind_text(s, at + 5, v->note);
    int rc = step(j, s, "writing VERDICT");
    /* Bound without a copy: the held strings live until the step is done. */
    if (h >= 0)
        forget_held(j, h);
    return rc;
}

int wk_journal_validating(wk_journal *j, const char *id, int seq, int started)
{
    if (!j)
        return 0;
    sqlite3_stmt *s = row(j, S_VSTART, id, seq);
    if (!s)
        return WK_EIO;
    sqlite3_bind_int(s, 3, started);
    int rc = step(j, s, "writing VALIDATING");
    /*
     * A start is committed now, not at the end of the loop iteration: the
     * validation runs right after, and if it kills the process, the count
     * must be on disk. Rows of the open transaction committed early are
     * committed before their side effects all the same.
     */
    return rc || !started ? rc : commit(j);
}

int wk_journal_done(wk_journal *j, const char *id, const char *result)
{
    if (!j)
        return 0;
    sqlite3_stmt *s = row(j, S_DONE, id, -1);
    if (!s)
        return WK_EIO;
    bind_text(s, 2, result);
    return step(j, s, "writing DONE");
}

int wk_journal_done_result(wk_journal *j, const char *id, char **result)
{
    if (!j || flush_held(j))
        return 0;
    sqlite3_stmt *s = j->st[S_GET_DONE];
    bind_text(s, 1, id);
    int found = 0;
    if (sqlite3_step(s) == SQLITE_ROW) {
        const unsigned char *r = sqlite3_column_text(s, 0);
        *result = wk_xstrdup(r ? (const char *)r : "");
        found = 1;
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (found && strstr(*result, "\"status\":\"error\"")) {
        cJSON *res = cJSON_Parse(*result);
        if (wk_result_retryable(res)) {
            /*
             * An error after transient call failures: forgotten, attempts and
             * all, so the task runs afresh (its failed calls are not counted
             * as calls lost in a crash). A failed write breaks the journal.
             */
            sqlite3_stmt *d = row(j, S_FORGET_TASK, id, -1);
            if (d)
                (void)step(j, d, "forgetting a retryable error");
            d = row(j, S_FORGET_ATT, wk_rkey_id(id) ? wk_rkey_id(id) : id, -1);
            if (d)
                (void)step(j, d, "forgetting a retryable error");
            free(*result);
            *result = NULL;
            found = 0;
        }
        cJSON_Delete(res);
    }
    return found;
}

static char *col_str(sqlite3_stmt *s, int i)
{
    const unsigned char *v = sqlite3_column_text(s, i);
    return v ? wk_xstrdup((const char *)v) : NULL;
}

static void col_copy(sqlite3_stmt *s, int i, char *buf, size_t size)
{
    const unsigned char *v = sqlite3_column_text(s, i);
    snprintf(buf, size, "%s", v ? (const char *)v : "");
}

int wk_journal_attempts(wk_journal *j, const char *id, wk_jattempt **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!j || flush_held(j))
        return 0;
    sqlite3_stmt *s = j->st[S_GET_ATT];
    bind_text(s, 1, id);
    while (sqlite3_step(s) == SQLITE_ROW) {
        *out = wk_xrealloc(*out, (size_t)(*n + 1) * sizeof(wk_jattempt));
        wk_jattempt *a = &(*out)[(*n)++];
        a->seq = sqlite3_column_int(s, 0);
        a->state = sqlite3_column_int(s, 1);
        a->model = col_str(s, 2);
        a->text = col_str(s, 3);
        a->finish = col_str(s, 4);
        a->served = col_str(s, 5);
        a->pt = sqlite3_column_type(s, 6) == SQLITE_NULL ? -1 : (long)sqlite3_column_int64(s, 6);
        a->ct = sqlite3_column_type(s, 7) == SQLITE_NULL ? -1 : (long)sqlite3_column_int64(s, 7);
        a->cached = (long)sqlite3_column_int64(s, 8);
        a->retries = sqlite3_column_int(s, 9);
        a->fallbacks = sqlite3_column_int(s, 10);
        val_verdict *v = &a->verdict;
        memset(v, 0, sizeof *v);
        v->pass = sqlite3_column_int(s, 11);
        col_copy(s, 12, v->validator, sizeof v->validator);
        col_copy(s, 13, v->reason, sizeof v->reason);
        v->message = col_str(s, 14);
        v->evidence = col_str(s, 15);
        v->note = col_str(s, 16);
        a->vstarts = sqlite3_column_int(s, 17);
        a->extra = col_str(s, 18);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return 0;
}

void wk_journal_attempts_free(wk_jattempt *a, int n)
{
    for (int i = 0; i < n; i++) {
        free(a[i].model);
        free(a[i].text);
        free(a[i].finish);
        free(a[i].served);
        free(a[i].extra);
        val_verdict_clear(&a[i].verdict);
    }
    free(a);
}

int wk_journal_fresh(const wk_journal *j)
{
    return j && j->fresh;
}

const char *wk_journal_error(const wk_journal *j)
{
    return j ? j->error : NULL;
}

/* ---- for the store's other files (store_int.h) ------------------------------ */

/* The store's other files read and write the database: the held rows are in it first. */
sqlite3 *wk__journal_db(wk_journal *j)
{
    (void)flush_held(j); /* a failure breaks the journal; their writes then fail */
    return j->db;
}

int wk__journal_txn(wk_journal *j)
{
    return flush_held(j) ? WK_EIO : need_txn(j);
}

sqlite3_stmt *wk__journal_stmt(wk_journal *j, const char *schema, const char *sql)
{
    for (int i = 0; i < j->nkept; i++)
        if (j->kept[i].sql == sql)
            return j->kept[i].s;
    sqlite3_stmt *s = NULL;
    if (j->nkept == KEPT_MAX || sqlite3_exec(j->db, schema, NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(j->db, sql, -1, &s, NULL) != SQLITE_OK) {
        sqlite3_finalize(s);
        return NULL;
    }
    j->kept[j->nkept].sql = sql;
    j->kept[j->nkept++].s = s;
    return s;
}

int wk__journal_fail(wk_journal *j, const char *what)
{
    set_error(j, what);
    return fail(j, what);
}
