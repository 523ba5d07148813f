/*
 * Never lose work, never pay twice: the real binary killed with SIGKILL at
 * random moments and restarted on the same journal, stopped with SIGTERM,
 * and run twice with a response cache. Asserts on the result lines, the
 * mock's request log and the journal's own integrity check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "lib/util.h"

static char *cdir, *models;

static int group_setup(void **state)
{
    (void)state;
    if (h_config_setup(h_models_cheap_mid, &cdir, &models))
        return -1;
    char *c = h_write("cascades/main.json",
                      "{\"name\":\"main\",\"validators\":[\"schema\"],\"feedback\":true,"
                      "\"tiers\":[{\"model\":\"cheap\"},{\"model\":\"mid\"}]}");
    free(c);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_config_teardown(cdir, models);
    return 0;
}

/* n classify tasks; every fifth one's cheap answer is wrong and climbs. Runs 1-3 agree. */
static void write_batch(const char *tag, int n, char **tasks, char **recs)
{
    wk_buf t, r;
    wk_buf_init(&t, 64u << 20);
    wk_buf_init(&r, 64u << 20);
    for (int i = 0; i < n; i++) {
        wk_buf_appendf(&t,
                       "{\"id\":\"%s-%d\",\"kind\":\"classify\",\"cascade\":\"main\","
                       "\"prompt\":\"ticket %d\",\"schema\":{\"type\":\"object\","
                       "\"properties\":{\"label\":{\"enum\":[\"bug\",\"feature\"]}},"
                       "\"required\":[\"label\"]}}\n",
                       tag, i, i);
        for (int run = 1; run <= 3; run++) {
            wk_buf_appendf(&r,
                           "{\"task\":\"%s-%d\",\"model\":\"cheap\",\"run\":%d,\"answer\":"
                           "\"{\\\"label\\\": \\\"%s\\\"}\",\"usage\":{\"prompt_tokens\":30,"
                           "\"completion_tokens\":6}}\n",
                           tag, i, run, i % 5 == 4 ? "nope" : "bug");
            wk_buf_appendf(&r,
                           "{\"task\":\"%s-%d\",\"model\":\"mid\",\"run\":%d,\"answer\":"
                           "\"{\\\"label\\\": \\\"feature\\\"}\",\"usage\":{\"prompt_tokens\":60,"
                           "\"completion_tokens\":6}}\n",
                           tag, i, run);
        }
    }
    char *tn = wk_xasprintf("%s-tasks.jsonl", tag), *rn = wk_xasprintf("%s-recs.jsonl", tag);
    *tasks = h_write(tn, t.buf);
    *recs = h_write(rn, r.buf);
    free(tn);
    free(rn);
    wk_buf_release(&t);
    wk_buf_release(&r);
}

static pid_t start_cascade(const char *tasks, const char *out, const char *extra1,
                           const char *extra2, const char *errf)
{
    const char *argv[20] = {h_cascade_bin(), "run", tasks, "--cascades",    cdir, "--models",
                            models,          "-o",  out,   "--concurrency", "8",  "-q"};
    int n = 12;
    if (extra1)
        argv[n++] = extra1;
    if (extra2)
        argv[n++] = extra2;
    argv[n] = NULL;
    return h_spawn((char *const *)argv, NULL, errf);
}

/* Result lines per id: fails on a duplicate; returns how many. */
static int count_unique(const cJSON *results, int expect)
{
    wk_strset seen = {0};
    int n = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, results)
    {
        const char *id = h_str(r, "id");
        if (!id)
            fail_msg("a result line without an id");
        if (wk_strset_add(&seen, id))
            fail_msg("two result lines for %s", id);
        n++;
    }
    wk_strset_release(&seen);
    assert_int_equal(n, expect);
    return n;
}

static void integrity_ok(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_kill9_twenty_times_then_every_task_once_and_no_repaid_answers(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("k", 500, &tasks, &recs);
    char *log = h_tmp("k-mock.log"), *out = h_tmp("k-out.jsonl"), *errf = h_tmp("k-err");
    char *journal = h_tmp("k-out.jsonl.journal");
    const char *margs[] = {"--latency", "50", NULL};
    h_mock m;
    h_mock_start(&m, recs, log, margs);
    srand(12345);
    int kills = 0;
    for (int i = 0; i < 20; i++) {
        pid_t p = start_cascade(tasks, out, NULL, NULL, errf);
        h_sleep_ms(60 + rand() % 200);
        if (kill(p, SIGKILL) == 0 && h_wait(p, 5000) == 128 + SIGKILL)
            kills++;
        else
            waitpid(p, NULL, WNOHANG);
    }
    pid_t p = start_cascade(tasks, out, NULL, NULL, errf);
    int rc = h_wait(p, 180000);
    h_mock_stop(&m);
    if (rc != 0)
        fail_msg("the last run exited %d: %s", rc, h_slurp(errf));
    cJSON *results = h_jsonl(out);
    count_unique(results, 500);

    /* Requests per (task, model) beyond the attempts the results show: lost at a kill. */
    cJSON *reqs = h_jsonl(log);
    int requests = cJSON_GetArraySize(reqs), attempts = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, results) attempts +=
        cJSON_GetArraySize(cJSON_GetObjectItem(r, "attempts"));
    int extra = requests - attempts;
    fprintf(stderr,
            "  %d kills; %d requests for %d attempts: %d re-sent after a kill "
            "(at most %d in flight per kill)\n",
            kills, requests, attempts, extra, 8);
    assert_true(kills >= 15);
    assert_true(extra >= 0);
    assert_true(extra <= kills * 8);
    integrity_ok(journal);
    cJSON_Delete(reqs);
    cJSON_Delete(results);
    free(tasks);
    free(recs);
    free(log);
    free(out);
    free(errf);
    free(journal);
}

static void test_sigterm_exits_within_grace_and_rerun_completes_once(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("t", 300, &tasks, &recs);
    char *out = h_tmp("t-out.jsonl"), *errf = h_tmp("t-err");
    const char *margs[] = {"--latency", "100", NULL};
    h_mock m;
    h_mock_start(&m, recs, NULL, margs);
    pid_t p = start_cascade(tasks, out, "--grace", "2", errf);
    h_sleep_ms(700);
    uint64_t t0 = wk_now_ms();
    kill(p, SIGTERM);
    int rc = h_wait(p, 10000);
    uint64_t took = wk_now_ms() - t0;
    assert_int_equal(rc, 3);
    if (took > 3000)
        fail_msg("exited %llu ms after SIGTERM with a 2 s grace", (unsigned long long)took);
    char *err = h_slurp(errf);
    assert_non_null(strstr(err, "taking no more tasks"));
    free(err);
    cJSON *partial = h_jsonl(out);
    int before = cJSON_GetArraySize(partial);
    assert_true(before > 0 && before < 300);
    p = start_cascade(tasks, out, NULL, NULL, errf);
    assert_int_equal(h_wait(p, 120000), 0);
    h_mock_stop(&m);
    cJSON *results = h_jsonl(out);
    count_unique(results, 300);
    fprintf(stderr, "  SIGTERM: exit 3 after %llu ms; %d results before, 300 after the rerun\n",
            (unsigned long long)took, before);
    cJSON_Delete(partial);
    cJSON_Delete(results);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
}

static void test_second_run_with_cache_makes_no_requests_and_costs_nothing(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("c", 50, &tasks, &recs);
    char *log = h_tmp("c-mock.log"), *cache = h_tmp("c-cache.db"), *errf = h_tmp("c-err");
    char *out1 = h_tmp("c-out1.jsonl"), *out2 = h_tmp("c-out2.jsonl");
    h_mock m;
    h_mock_start(&m, recs, log, NULL);
    pid_t p = start_cascade(tasks, out1, "--cache", cache, errf);
    assert_int_equal(h_wait(p, 60000), 0);
    cJSON *log1 = h_jsonl(log);
    int first = cJSON_GetArraySize(log1);
    cJSON_Delete(log1);
    assert_true(first >= 50);
    p = start_cascade(tasks, out2, "--cache", cache, errf);
    assert_int_equal(h_wait(p, 60000), 0);
    h_mock_stop(&m);
    cJSON *reqs = h_jsonl(log);
    assert_int_equal(cJSON_GetArraySize(reqs), first); /* not one more */
    cJSON *results = h_jsonl(out2);
    count_unique(results, 50);
    double cost = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, results)
    {
        cost += cJSON_GetObjectItem(r, "cost_usd")->valuedouble;
        const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "attempts"), 0);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "cached")));
    }
    assert_true(cost == 0);
    assert_string_equal(h_str(h_find(results, "id", "c-4"), "status"), "accepted");
    cJSON_Delete(reqs);
    cJSON_Delete(results);
    free(tasks);
    free(recs);
    free(log);
    free(cache);
    free(errf);
    free(out1);
    free(out2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_twenty_times_then_every_task_once_and_no_repaid_answers),
        cmocka_unit_test(test_sigterm_exits_within_grace_and_rerun_completes_once),
        cmocka_unit_test(test_second_run_with_cache_makes_no_requests_and_costs_nothing),
    };
    return cmocka_run_group_tests_name("resume", tests, group_setup, group_teardown);
}
