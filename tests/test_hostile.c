/*
 * One hostile answer must not crash or hang the worker, on the first run or
 * on a resume: the real binary against the mock, with an answer of `x = `
 * and 100,000 `(` (which makes Debian's libtree-sitter free an invalid
 * pointer when parsed in-process), and with a validation that kills the
 * worker (the CASCADE_FAULT_ABORT_IN_VALIDATE hook, standing for any crash
 * in an in-process parser): after two such deaths the next run gives the
 * answer a validator_crash verdict and the batch finishes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "lib/util.h"

static char *cdir, *models, *tasks, *recs;

/* Tasks "paren" (cheap answers the 100,000 parens, mid a good function) and "ok". */
static int group_setup(void **state)
{
    (void)state;
    if (h_config_setup(h_models_cheap_mid, &cdir, &models))
        return -1;
    free(h_write("cascades/py.json",
                 "{\"name\":\"py\",\"validators\":[\"syntax\"],\"feedback\":false,"
                 "\"tiers\":[{\"model\":\"cheap\"},{\"model\":\"mid\"}]}"));
    tasks =
        h_write("tasks.jsonl", "{\"id\":\"paren\",\"language\":\"python\",\"prompt\":\"write f\"}\n"
                               "{\"id\":\"ok\",\"language\":\"python\",\"prompt\":\"write g\"}\n");
    wk_buf r;
    wk_buf_init(&r, 1u << 20);
    wk_buf_appendf(&r, "{\"task\":\"paren\",\"model\":\"cheap\",\"run\":1,\"answer\":\"x = ");
    for (int i = 0; i < 100000; i++)
        wk_buf_append(&r, "(", 1);
    wk_buf_appendf(&r, "\",\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":10}}\n");
    wk_buf_appendf(&r,
                   "{\"task\":\"paren\",\"model\":\"mid\",\"run\":1,\"answer\":\"```python\\ndef "
                   "f():\\n    return 1\\n```\",\"usage\":{\"prompt_tokens\":10,"
                   "\"completion_tokens\":10}}\n");
    wk_buf_appendf(&r, "{\"task\":\"ok\",\"model\":\"cheap\",\"run\":1,\"answer\":\"def g():\\n    "
                       "return 2\",\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":10}}\n");
    recs = h_write("recs.jsonl", r.buf);
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

/* One run of the batch on `journal`; returns the exit status (128+N for a signal N). */
static int run_batch(const char *out, const char *journal, const char *err)
{
    const char *argv[] = {h_cascade_bin(), "run",  tasks, "--cascades", cdir,
                          "--models",      models, "-o",  out,          "--journal",
                          journal,         "-q",   NULL};
    return h_run((char *const *)argv, NULL, err, 60);
}

/* The paren task's result: its first attempt failed with `reason`, mid's answer was accepted. */
static void assert_paren_result(const char *out, const char *reason)
{
    cJSON *res = h_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), 2);
    const cJSON *p = h_find(res, "id", "paren");
    assert_non_null(p);
    assert_string_equal(h_str(p, "status"), "accepted");
    assert_string_equal(h_str(p, "model"), "mid");
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(p, "attempts");
    const cJSON *v0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(att, 0), "verdict");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v0, "pass")));
    if (strcmp(h_str(v0, "reason"), reason) != 0)
        fail_msg("first attempt's reason %s, wanted %s (%s)", h_str(v0, "reason"), reason,
                 h_str(v0, "message"));
    assert_string_equal(h_str(h_find(res, "id", "ok"), "status"), "accepted");
    cJSON_Delete(res);
}

/* Requests the mock logged for the paren task at the cheap model. */
static int paren_cheap_calls(const char *log)
{
    cJSON *lines = h_jsonl(log);
    int n = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, lines)
    {
        const char *t = h_str(l, "task"), *mo = h_str(l, "model");
        n += t && mo && strcmp(t, "paren") == 0 && strcmp(mo, "cheap") == 0;
    }
    cJSON_Delete(lines);
    return n;
}

static void test_deep_parens_get_a_verdict_on_first_run_and_on_resume(void **state)
{
    (void)state;
    h_mock m;
    char *log = h_tmp("mock1.log");
    h_mock_start(&m, recs, log, NULL);
    char *out = h_tmp("out1.jsonl"), *journal = h_tmp("j1.db"), *err = h_tmp("err1.txt");

    /* First run: a verdict, and the batch finishes. */
    assert_int_equal(run_batch(out, journal, err), 0);
    assert_paren_result(out, "syntax_error");

    /*
     * A run killed while it validated the answer (journaled, not yet
     * judged) resumes: the answer is validated again, gets its verdict, and
     * is not paid for again.
     */
    char *out2 = h_tmp("out2.jsonl"), *journal2 = h_tmp("j2.db");
    setenv("CASCADE_FAULT_ABORT_IN_VALIDATE", "paren", 1);
    int st = run_batch(out2, journal2, err);
    unsetenv("CASCADE_FAULT_ABORT_IN_VALIDATE");
    assert_int_not_equal(st, 0);
    int cheap_before = paren_cheap_calls(log);
    assert_int_equal(cheap_before, 2); /* the first run's, and the killed run's */
    assert_int_equal(run_batch(out2, journal2, err), 0);
    assert_paren_result(out2, "syntax_error");
    /* cheap was not asked again for the paren task: its answer came from the journal. */
    assert_int_equal(paren_cheap_calls(log), cheap_before);
    h_mock_stop(&m);
    free(out);
    free(out2);
    free(journal);
    free(journal2);
    free(err);
    free(log);
}

static void test_a_validation_that_killed_the_worker_twice_ends_with_validator_crash(void **state)
{
    (void)state;
    h_mock m;
    char *log = h_tmp("mock3.log");
    h_mock_start(&m, recs, log, NULL);
    char *out = h_tmp("out3.jsonl"), *journal = h_tmp("j3.db"), *err = h_tmp("err3.txt");
    setenv("CASCADE_FAULT_ABORT_IN_VALIDATE", "paren", 1);
    for (int i = 0; i < 2; i++) {
        int st = run_batch(out, journal, err);
        if (st == 0)
            fail_msg("run %d was not killed in validation: %s", i + 1, h_slurp(err));
        char *e = h_slurp(err);
        assert_non_null(strstr(e, "CASCADE_FAULT_ABORT_IN_VALIDATE"));
        free(e);
    }
    /* The third run does not validate the answer again (that would say syntax_error). */
    unsetenv("CASCADE_FAULT_ABORT_IN_VALIDATE");
    assert_int_equal(run_batch(out, journal, err), 0);
    assert_paren_result(out, "validator_crash");
    cJSON *res = h_jsonl(out);
    const cJSON *att = cJSON_GetObjectItemCaseSensitive(h_find(res, "id", "paren"), "attempts");
    const cJSON *v0 = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(att, 0), "verdict");
    assert_non_null(strstr(h_str(v0, "message"), "killed the worker 2 times"));
    cJSON_Delete(res);
    h_mock_stop(&m);
    free(out);
    free(journal);
    free(err);
    free(log);
}

/*
 * Runs the batch in a child started with `closed` of fds 0/1/2 closed and the
 * open-file soft limit at `soft` (0: as it is); returns its exit status.
 */
static int run_batch_odd(const char *out, int close_std, rlim_t soft)
{
    const char *argv[] = {h_cascade_bin(), "run", tasks, "--cascades", cdir, "--models",
                          models,          "-o",  out,   "-q",         NULL};
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (soft) {
            struct rlimit rl;
            getrlimit(RLIMIT_NOFILE, &rl);
            rl.rlim_cur = soft;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (close_std) {
            close(0);
            close(1);
            close(2);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return h_wait(pid, 60000);
}

static void
test_closed_standard_descriptors_and_a_low_soft_fd_limit_do_not_break_a_run(void **state)
{
    (void)state;
    h_mock m;
    char *log = h_tmp("mock4.log");
    h_mock_start(&m, recs, log, NULL);
    /* Closed stdin, stdout and stderr: libuv used to assert at exit (status 134). */
    char *out = h_tmp("out4.jsonl");
    assert_int_equal(run_batch_odd(out, 1, 0), 0);
    assert_paren_result(out, "syntax_error");
    /* A soft limit of 32 open files, the hard one higher: raised at start, the batch runs. */
    char *out2 = h_tmp("out5.jsonl");
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max > 256) {
        assert_int_equal(run_batch_odd(out2, 0, 32), 0);
        assert_paren_result(out2, "syntax_error");
    }
    h_mock_stop(&m);
    free(out);
    free(out2);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deep_parens_get_a_verdict_on_first_run_and_on_resume),
        cmocka_unit_test(test_a_validation_that_killed_the_worker_twice_ends_with_validator_crash),
        cmocka_unit_test(
            test_closed_standard_descriptors_and_a_low_soft_fd_limit_do_not_break_a_run),
    };
    return cmocka_run_group_tests_name("hostile", tests, group_setup, group_teardown);
}
