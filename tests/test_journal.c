/*
 * The write-ahead promise when the disk fills up: the real binary runs with
 * its journal behind a VFS that fails every write after the first N
 * (CASCADE_FAULT_JOURNAL_FULL_AFTER). No side effect may run whose row did
 * not commit: every request in the mock's log has a SENT row, every result
 * line a DONE row. The run stops with one clear error and exit 1, and a
 * rerun on the same journal, disk no longer full, finishes every task once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "lib/util.h"
#include "worker/store/journal.h"

enum { NTASKS = 60 };

static char *cdir, *models, *tasks, *recs;

/* NTASKS classify tasks; every fifth one's cheap answer is wrong and climbs. */
static int group_setup(void **state)
{
    (void)state;
    if (h_config_setup(h_models_cheap_mid, &cdir, &models))
        return -1;
    free(h_write("cascades/main.json",
                 "{\"name\":\"main\",\"validators\":[\"schema\"],\"feedback\":true,"
                 "\"tiers\":[{\"model\":\"cheap\"},{\"model\":\"mid\"}]}"));
    wk_buf t, r;
    wk_buf_init(&t, 1u << 20);
    wk_buf_init(&r, 1u << 20);
    for (int i = 0; i < NTASKS; i++) {
        wk_buf_appendf(&t,
                       "{\"id\":\"j-%d\",\"kind\":\"classify\",\"cascade\":\"main\","
                       "\"prompt\":\"ticket %d\",\"schema\":{\"type\":\"object\","
                       "\"properties\":{\"label\":{\"enum\":[\"bug\",\"feature\"]}},"
                       "\"required\":[\"label\"]}}\n",
                       i, i);
        wk_buf_appendf(&r,
                       "{\"task\":\"j-%d\",\"model\":\"cheap\",\"run\":1,\"answer\":"
                       "\"{\\\"label\\\": \\\"%s\\\"}\",\"usage\":{\"prompt_tokens\":30,"
                       "\"completion_tokens\":6}}\n",
                       i, i % 5 == 4 ? "nope" : "bug");
        wk_buf_appendf(&r,
                       "{\"task\":\"j-%d\",\"model\":\"mid\",\"run\":1,\"answer\":"
                       "\"{\\\"label\\\": \\\"feature\\\"}\",\"usage\":{\"prompt_tokens\":60,"
                       "\"completion_tokens\":6}}\n",
                       i);
    }
    tasks = h_write("tasks.jsonl", t.buf);
    recs = h_write("recs.jsonl", r.buf);
    wk_buf_release(&t);
    wk_buf_release(&r);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_config_teardown(cdir, models);
    free(tasks);
    free(recs);
    return 0;
}

static int run_cascade(const char *input, const char *out, const char *errf)
{
    char *const argv[] = {(char *)h_cascade_bin(),
                          "run",
                          (char *)input,
                          "--cascades",
                          cdir,
                          "--models",
                          models,
                          "-o",
                          (char *)out,
                          "--concurrency",
                          "4",
                          "-q",
                          NULL};
    return h_run(argv, NULL, errf, 60);
}

static sqlite3_int64 count(sqlite3 *db, const char *sql, const char *a, const char *b)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_bind_text(st, 1, a, -1, SQLITE_TRANSIENT);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_TRANSIENT);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    sqlite3_int64 n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

static int occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/*
 * One run with the disk filling after `writes` journal writes. Asserts the
 * promise and returns how many requests and result lines it made.
 */
static void full_disk_run(const char *tag, long writes, int *requests, int *lines)
{
    char *empty = h_write("empty.jsonl", "");
    char *name = wk_xasprintf("%s-out.jsonl", tag), *logn = wk_xasprintf("%s-mock.log", tag);
    char *out = h_tmp(name), *log = h_tmp(logn), *errf = h_tmp("err");
    char *journal = wk_xasprintf("%s.journal", out);
    h_mock m;
    h_mock_start(&m, recs, log, NULL);
    /*
     * A run with no tasks makes the journal first, so opening it again writes
     * nothing and the writes counted are the run's own.
     */
    assert_int_equal(run_cascade(empty, out, errf), 0);
    char *n = wk_xasprintf("%ld", writes);
    setenv("CASCADE_FAULT_JOURNAL_FULL_AFTER", n, 1);
    int rc = run_cascade(tasks, out, errf);
    unsetenv("CASCADE_FAULT_JOURNAL_FULL_AFTER");
    h_sleep_ms(100); /* the mock logs a request as it answers it */
    char *err = h_slurp(errf);
    if (rc != 1)
        fail_msg("the run with a full disk exited %d: %s", rc, err);
    /* One clear error, naming the journal and SQLite's own words. */
    char *journal_named = wk_xasprintf("journal %s: ", journal);
    assert_int_equal(occurrences(err, journal_named), 1);
    assert_int_equal(occurrences(err, "database or disk is full"), 1);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(journal, &db), SQLITE_OK);
    /* Every request that left had its SENT row committed first. */
    cJSON *reqs = h_jsonl(log);
    const cJSON *q;
    cJSON_ArrayForEach(q, reqs)
    {
        const char *task = h_str(q, "task"), *model = h_str(q, "model");
        sqlite3_int64 sent = count(db,
                                   "SELECT count(*) FROM attempts WHERE task = ?1 AND model = ?2 "
                                   "AND state >= 1",
                                   task, model);
        if (sent < 1)
            fail_msg("a request for %s to %s left without a committed SENT row", task, model);
    }
    /* Every result line was written after its DONE row committed. */
    cJSON *results = h_jsonl(out);
    const cJSON *r;
    cJSON_ArrayForEach(r, results)
    {
        const char *id = h_str(r, "id");
        if (count(db, "SELECT count(*) FROM tasks WHERE id = ?1 AND done = 1", id, NULL) != 1)
            fail_msg("a result line for %s without a committed DONE row", id);
    }
    sqlite3_close(db);
    h_mock_stop(&m);
    *requests = cJSON_GetArraySize(reqs);
    *lines = cJSON_GetArraySize(results);
    fprintf(stderr, "  full after %ld writes: %d requests, %d result lines, then: %s", writes,
            *requests, *lines, strstr(err, "cascade: journal"));

    /* The disk has room again: the rerun on the same journal finishes every task once. */
    h_mock_start(&m, recs, NULL, NULL);
    rc = run_cascade(tasks, out, errf);
    h_mock_stop(&m);
    if (rc != 0)
        fail_msg("the rerun exited %d: %s", rc, h_slurp(errf));
    cJSON *all = h_jsonl(out);
    wk_strset seen = {0};
    cJSON_ArrayForEach(r, all)
    {
        const char *id = h_str(r, "id");
        assert_non_null(id);
        if (wk_strset_add(&seen, id))
            fail_msg("two result lines for %s", id);
    }
    assert_int_equal(cJSON_GetArraySize(all), NTASKS);
    wk_strset_release(&seen);
    cJSON_Delete(all);
    cJSON_Delete(results);
    cJSON_Delete(reqs);
    free(journal_named);
    free(err);
    free(n);
    free(journal);
    free(errf);
    free(log);
    free(out);
    free(logn);
    free(name);
    free(empty);
}

/* The disk fills in the middle of the run: some work is done, some is not. */
static void test_full_disk_mid_run_runs_no_unjournaled_side_effect_and_rerun_finishes(void **state)
{
    (void)state;
    int requests, lines;
    full_disk_run("mid", 100, &requests, &lines);
    assert_true(requests > 0);
    assert_true(lines > 0);
    assert_true(lines < NTASKS);
}

/* The disk is full from the first commit on: nothing at all may happen. */
static void test_full_disk_at_the_first_commit_sends_nothing_and_writes_nothing(void **state)
{
    (void)state;
    int requests, lines;
    full_disk_run("first", 0, &requests, &lines);
    assert_int_equal(requests, 0);
    assert_int_equal(lines, 0);
}

static void committed(void *arg, int status)
{
    *(int *)arg = status == 0 ? 1 : -1;
}

/* Runs the loop until what was written so far is committed. */
static void commit_now(uv_loop_t *loop, wk_journal *j)
{
    int done = 0;
    wk_journal_then(j, committed, &done);
    for (int i = 0; i < 100 && !done; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    assert_int_equal(done, 1);
}

/* The attempt seq of task id as the journal holds it (its text, verdict...). */
static wk_jattempt *attempt(wk_journal *j, const char *id, int *n)
{
    wk_jattempt *a = NULL;
    assert_int_equal(wk_journal_attempts(j, id, &a, n), 0);
    return a;
}

/*
 * A RECEIVED row is held until its VERDICT joins it in one write, or until
 * anything reads, commits or writes after it: what the journal holds is the
 * same either way, and a fresh journal is told apart from one with work.
 */
static void test_received_rows_read_the_same_held_or_joined_with_their_verdict(void **state)
{
    (void)state;
    char *path = h_tmp("held.journal");
    remove(path);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[512];
    wk_journal *j = NULL;
    assert_int_equal(wk_journal_open(&loop, path, &j, err, sizeof err), 0);
    assert_int_equal(wk_journal_fresh(j), 1);
    assert_int_equal(wk_journal_sent(j, "a", 1, "cheap"), 0);
    assert_int_equal(wk_journal_sent(j, "b", 1, "cheap"), 0);
    assert_int_equal(wk_journal_sent(j, "c", 1, "cheap"), 0);
    commit_now(&loop, j);
    /* a: answer and verdict in one commit, as with no validator. */
    assert_int_equal(wk_journal_received(j, "a", 1, "ans-a", "stop", 10, 5, 2, "cheap", 1, 0), 0);
    val_verdict v = {0};
    val_verdict_fail(&v, "schema", "invalid", "not an object", NULL);
    assert_int_equal(wk_journal_verdict(j, "a", 1, &v), 0);
    val_verdict_clear(&v);
    /* b: read back before any commit. */
    assert_int_equal(wk_journal_received(j, "b", 1, "ans-b", NULL, 3, 4, 0, NULL, 0, 2), 0);
    int n = 0;
    wk_jattempt *a = attempt(j, "b", &n);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].state, WK_J_RECEIVED);
    assert_string_equal(a[0].text, "ans-b");
    assert_int_equal(a[0].fallbacks, 2);
    wk_journal_attempts_free(a, n);
    /* c: left held when the journal closes. */
    assert_int_equal(wk_journal_received(j, "c", 1, "ans-c", "length", 1, 1, 0, "cheap", 0, 0), 0);
    assert_int_equal(wk_journal_close(j), 0);
    uv_run(&loop, UV_RUN_DEFAULT);

    assert_int_equal(wk_journal_open(&loop, path, &j, err, sizeof err), 0);
    assert_int_equal(wk_journal_fresh(j), 0);
    a = attempt(j, "a", &n);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].state, WK_J_VERDICT);
    assert_string_equal(a[0].text, "ans-a");
    assert_string_equal(a[0].finish, "stop");
    assert_string_equal(a[0].served, "cheap");
    assert_int_equal(a[0].pt, 10);
    assert_int_equal(a[0].ct, 5);
    assert_int_equal(a[0].cached, 2);
    assert_int_equal(a[0].retries, 1);
    assert_int_equal(a[0].verdict.pass, 0);
    assert_string_equal(a[0].verdict.reason, "invalid");
    assert_string_equal(a[0].verdict.message, "not an object");
    wk_journal_attempts_free(a, n);
    a = attempt(j, "c", &n);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].state, WK_J_RECEIVED);
    assert_string_equal(a[0].text, "ans-c");
    assert_string_equal(a[0].finish, "length");
    wk_journal_attempts_free(a, n);
    assert_int_equal(wk_journal_close(j), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(path);
}

/*
 * A lazy side effect (wk_journal_then_lazy, a result line) runs only once its
 * row is committed, whether its commit is made at once (nothing else is
 * ready) or put off to join the next side effect's rows (the loop is busy).
 * The child "dies" (_exit, as kill -9: no close, no checkpoint) inside the
 * side effect it runs last; what it ran must be in the journal it left, and
 * a put-off commit must never leave the loop waiting with nothing to do.
 */
typedef struct lazy_child {
    wk_journal *j;
    int busy;     /* 1: an idle handle keeps the loop busy and writes b's SENT */
    int lazy_ran; /* the lazy side effect ran */
    uv_idle_t idle;
} lazy_child;

static void lazy_done(void *arg, int status)
{
    lazy_child *c = arg;
    if (status != 0)
        _exit(2);
    c->lazy_ran = 1;
    if (!c->busy)
        _exit(0); /* killed right after the side effect */
}

static void then_sent(void *arg, int status)
{
    lazy_child *c = arg;
    /* b's SENT was written after a's DONE: a's side effect came first. */
    _exit(status != 0 ? 2 : c->lazy_ran ? 0 : 3);
}

static void busy_idle(uv_idle_t *h)
{
    lazy_child *c = h->data;
    uv_idle_stop(h);
    if (wk_journal_sent(c->j, "b", 1, "cheap") != 0)
        _exit(2);
    wk_journal_then(c->j, then_sent, c);
}

static void lazy_run(const char *path, int busy)
{
    remove(path);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20); /* a commit put off forever would hang here */
        uv_loop_t loop;
        uv_loop_init(&loop);
        char err[512];
        lazy_child c = {.busy = busy};
        if (wk_journal_open(&loop, path, &c.j, err, sizeof err) != 0 ||
            wk_journal_done(c.j, "a", "{\"id\":\"a\"}") != 0)
            _exit(2);
        wk_journal_then_lazy(c.j, lazy_done, &c);
        if (busy) {
            uv_idle_init(&loop, &c.idle);
            c.idle.data = &c;
            uv_idle_start(&c.idle, busy_idle);
        }
        uv_run(&loop, UV_RUN_DEFAULT);
        _exit(4); /* the side effects never ran */
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[512];
    wk_journal *j = NULL;
    assert_int_equal(wk_journal_open(&loop, path, &j, err, sizeof err), 0);
    char *result = NULL;
    assert_int_equal(wk_journal_done_result(j, "a", &result), 1);
    assert_string_equal(result, "{\"id\":\"a\"}");
    free(result);
    int n = 0;
    wk_jattempt *a = attempt(j, "b", &n);
    assert_int_equal(n, busy ? 1 : 0);
    if (busy)
        assert_int_equal(a[0].state, WK_J_SENT);
    wk_journal_attempts_free(a, n);
    assert_int_equal(wk_journal_close(j), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_lazy_side_effect_runs_only_once_committed_at_once_or_put_off(void **state)
{
    (void)state;
    char *path = h_tmp("lazy.journal");
    lazy_run(path, 0);
    lazy_run(path, 1);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_disk_mid_run_runs_no_unjournaled_side_effect_and_rerun_finishes),
        cmocka_unit_test(test_full_disk_at_the_first_commit_sends_nothing_and_writes_nothing),
        cmocka_unit_test(test_received_rows_read_the_same_held_or_joined_with_their_verdict),
        cmocka_unit_test(test_lazy_side_effect_runs_only_once_committed_at_once_or_put_off),
    };
    return cmocka_run_group_tests_name("journal", tests, group_setup, group_teardown);
}
