/*
 * The pure parts of patch tasks: a runner's output read test by test (pytest
 * -rA, TAP, nothing), the baseline and the judgement of a patched run
 * against it (flaky, pre-existing, regressions, a target gone), the diff
 * taken from an answer, and the prompt with its cuts marked. No process, no
 * repository: tests/test_patch_task.c drives the binary.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "validators/testlog.h"
#include "validators/val.h"
#include "worker/patch_prompt.h"

/* ---- the runner's output ----------------------------------------------------------- */

static const char pytest_out[] =
    "..F.E\n"
    "=========================== short test summary info ============================\n"
    "PASSED tests/test_calc.py::test_sub\n"
    "PASSED tests/test_calc.py::test_mul[2-3]\n"
    "FAILED tests/test_calc.py::test_add - assert -1 == 5\n"
    "ERROR tests/test_io.py::test_read - FileNotFoundError: x\n"
    "SKIPPED [1] tests/test_calc.py:30: not today\n"
    "1 failed, 2 passed, 1 error in 0.05s\n";

static void pytest_summary_lines_give_each_outcome(void **state)
{
    (void)state;
    val_testlog log;
    val_testlog_parse(pytest_out, strlen(pytest_out), &log);
    assert_int_equal(log.format, VAL_TESTLOG_PYTEST);
    assert_int_equal(log.n, 4);
    assert_int_equal(val_testlog_outcome(&log, "tests/test_calc.py::test_sub"), 0);
    assert_int_equal(val_testlog_outcome(&log, "tests/test_calc.py::test_mul[2-3]"), 0);
    assert_int_equal(val_testlog_outcome(&log, "tests/test_calc.py::test_add"), 1);
    assert_int_equal(val_testlog_outcome(&log, "tests/test_io.py::test_read"), 1);
    assert_int_equal(val_testlog_outcome(&log, "tests/test_calc.py::test_div"), -1);
    assert_int_equal(val_testlog_failures(&log), 2);
    assert_true(log.has_passes);
    val_testlog_release(&log);
}

static const char tap_out[] = "TAP version 13\n"
                              "# Subtest: adds\n"
                              "ok 1 - adds\n"
                              "  ---\n"
                              "  duration_ms: 1.2\n"
                              "  ...\n"
                              "# Subtest: subs\n"
                              "not ok 2 - subs\n"
                              "  ---\n"
                              "  error: '1 == 2'\n"
                              "  ...\n"
                              "ok 3 - later # SKIP not now\n"
                              "not ok 4 - wip # TODO soon\n"
                              "1..4\n";

static void tap_lines_give_each_outcome_and_skips_are_not_failures(void **state)
{
    (void)state;
    val_testlog log;
    val_testlog_parse(tap_out, strlen(tap_out), &log);
    assert_int_equal(log.format, VAL_TESTLOG_TAP);
    assert_int_equal(log.n, 4);
    assert_int_equal(val_testlog_outcome(&log, "adds"), 0);
    assert_int_equal(val_testlog_outcome(&log, "subs"), 1);
    assert_int_equal(val_testlog_outcome(&log, "later"), 0);
    assert_int_equal(val_testlog_outcome(&log, "wip"), 0);
    val_testlog_release(&log);
}

static void plain_output_has_no_detail(void **state)
{
    (void)state;
    const char *out = "make: *** [test] Error 1\nassertion failed: add(2,3) == 5\n";
    val_testlog log;
    val_testlog_parse(out, strlen(out), &log);
    assert_int_equal(log.format, VAL_TESTLOG_NONE);
    assert_int_equal(log.n, 0);
    val_testlog_release(&log);
}

/* ---- the baseline and its judgement ----------------------------------------------- */

static void parse(const char *s, val_testlog *log)
{
    val_testlog_parse(s, strlen(s), log);
}

static void baseline_tells_flaky_from_failing_and_takes_targets_from_instruction(void **state)
{
    (void)state;
    val_testlog r1, r2;
    parse("not ok 1 - t_add\nnot ok 2 - t_other\nok 3 - t_flaky\nok 4 - t_ok\n", &r1);
    parse("not ok 1 - t_add\nnot ok 2 - t_other\nnot ok 3 - t_flaky\nok 4 - t_ok\n", &r2);
    val_baseline b;
    val_baseline_make(&b, &r1, 0, &r2, 0, "Make t_add pass");
    assert_true(b.detail);
    assert_int_equal(b.nfailing, 2);
    assert_int_equal(b.nflaky, 1);
    assert_string_equal(b.flaky[0], "t_flaky");
    assert_int_equal(b.ntargets, 1);
    assert_string_equal(b.targets[0], "t_add");

    val_test_counts c;
    char *why, *note;
    val_testlog after;
    /* t_add fixed, t_other still failing (pre-existing), t_flaky failing (flaky): a pass. */
    parse("ok 1 - t_add\nnot ok 2 - t_other\nnot ok 3 - t_flaky\nok 4 - t_ok\n", &after);
    assert_int_equal(val_baseline_judge(&b, &after, 0, &c, &why, &note), 1);
    assert_int_equal(c.passed, 2);
    assert_int_equal(c.flaky, 1);
    assert_int_equal(c.preexisting, 1);
    assert_null(why);
    assert_non_null(strstr(note, "tests: passed 2, flaky 1, pre-existing 1"));
    assert_non_null(strstr(note, "pre-existing failures: t_other"));
    free(note);
    val_testlog_release(&after);

    /* The target still failing: a fail naming it. */
    parse("not ok 1 - t_add\nnot ok 2 - t_other\nok 3 - t_flaky\nok 4 - t_ok\n", &after);
    assert_int_equal(val_baseline_judge(&b, &after, 0, &c, &why, &note), 0);
    assert_string_equal(why, "t_add still fails");
    free(why);
    free(note);
    val_testlog_release(&after);

    /* A test that passed at base fails now: a regression. */
    parse("ok 1 - t_add\nnot ok 2 - t_other\nok 3 - t_flaky\nnot ok 4 - t_ok\n", &after);
    assert_int_equal(val_baseline_judge(&b, &after, 0, &c, &why, &note), 0);
    assert_non_null(strstr(why, "t_ok passed at base and fails"));
    free(why);
    free(note);
    val_testlog_release(&after);

    /* The target gone from the output: removed, not fixed. */
    parse("not ok 2 - t_other\nok 3 - t_flaky\nok 4 - t_ok\n", &after);
    assert_int_equal(val_baseline_judge(&b, &after, 0, &c, &why, &note), 0);
    assert_non_null(strstr(why, "t_add did not run"));
    free(why);
    free(note);
    val_testlog_release(&after);

    val_baseline_release(&b);
    val_testlog_release(&r1);
    val_testlog_release(&r2);
}

static void without_named_tests_every_stable_failure_is_a_target(void **state)
{
    (void)state;
    val_testlog r1, r2;
    parse("FAILED t.py::test_a - x\nFAILED t.py::test_b - y\nPASSED t.py::test_c\n", &r1);
    parse("FAILED t.py::test_a - x\nFAILED t.py::test_b - y\nPASSED t.py::test_c\n", &r2);
    val_baseline b;
    val_baseline_make(&b, &r1, 0, &r2, 0, "Make the failing tests pass.");
    assert_int_equal(b.ntargets, 2);
    val_baseline_release(&b);
    /* A pytest name is named by its last part as a word, not as a prefix of another. */
    val_baseline_make(&b, &r1, 0, &r2, 0, "Fix test_b please (not test_bb)");
    assert_int_equal(b.ntargets, 1);
    assert_string_equal(b.targets[0], "t.py::test_b");
    val_baseline_release(&b);
    val_testlog_release(&r1);
    val_testlog_release(&r2);
    /* A short TAP name inside another word is not named: "t" is not in "the tests". */
    parse("not ok 1 - t\nnot ok 2 - u\n", &r1);
    parse("not ok 1 - t\nnot ok 2 - u\n", &r2);
    val_baseline_make(&b, &r1, 0, &r2, 0, "Make the tests pass, then u");
    assert_int_equal(b.ntargets, 1);
    assert_string_equal(b.targets[0], "u");
    val_baseline_release(&b);
    val_testlog_release(&r1);
    val_testlog_release(&r2);
}

static void without_detail_the_exit_status_decides(void **state)
{
    (void)state;
    val_testlog none = {0};
    val_baseline b;
    val_baseline_make(&b, &none, 0, &none, 0, NULL);
    assert_false(b.detail);
    val_test_counts c;
    char *why, *note;
    assert_int_equal(val_baseline_judge(&b, &none, 1, &c, &why, &note), 1);
    free(note);
    assert_int_equal(val_baseline_judge(&b, &none, 0, &c, &why, &note), 0);
    assert_non_null(why);
    free(why);
    free(note);
    val_baseline_release(&b);
}

/* ---- the diff in an answer, the prompt ---------------------------------------------- */

static void diff_fence_wins_over_an_earlier_fence(void **state)
{
    (void)state;
    char *d = val_extract_diff("Old code:\n```python\nx = 1\n```\nFix:\n```diff\n--- a/x.py\n"
                               "+++ b/x.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n```\n");
    assert_string_equal(d, "--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n");
    free(d);
    d = val_extract_diff("```patch\n--- a/y\n+++ b/y\n```");
    assert_string_equal(d, "--- a/y\n+++ b/y\n");
    free(d);
    d = val_extract_diff("```\n--- a/z\n```\n");
    assert_string_equal(d, "--- a/z\n");
    free(d);
    d = val_extract_diff("--- a/w\n+++ b/w\n");
    assert_string_equal(d, "--- a/w\n+++ b/w\n");
    free(d);
}

static void prompt_marks_every_cut_and_numbers_lines(void **state)
{
    (void)state;
    wk_patch_opts caps;
    wk_patch_opts_default(&caps);
    caps.max_test_output_kb = 1;
    wk_buf out;
    wk_buf_init(&out, 1 << 20);
    for (int i = 0; i < 200; i++)
        wk_buf_appendf(&out, "noise line %d\n", i);
    wk_buf_appendf(&out, "  File \"/box/src/calc.py\", line 2, in add\nAssertionError\n");
    char big[5000];
    memset(big, 'x', sizeof big);
    for (size_t i = 99; i < sizeof big; i += 100)
        big[i] = '\n';
    wk_patch_file files[] = {
        {.path = "src/calc.py",
         .text = "def add(a, b):\n    return a - b\n",
         .len = 31,
         .full_len = 31},
        {.path = "big.txt", .text = big, .len = 1000, .full_len = sizeof big},
    };
    const char *list[] = {"src/calc.py", "big.txt"};
    wk_patch_prompt_in in = {.instruction = "Make test_add pass",
                             .command = "python3 -m pytest -q",
                             .output = out.buf,
                             .output_len = out.len,
                             .files = files,
                             .nfiles = 2,
                             .list = list,
                             .nlist = 2,
                             .list_total = 40,
                             .caps = &caps};
    char *p = wk_patch_prompt(&in);
    assert_non_null(strstr(p, "Task: Make test_add pass"));
    assert_non_null(strstr(p, "bytes of earlier output cut"));
    assert_non_null(strstr(p, "AssertionError")); /* the tail is kept */
    assert_null(strstr(p, "noise line 0\n"));
    assert_non_null(
        strstr(p, "File src/calc.py:\n```\n    1 | def add(a, b):\n    2 |     return a - b\n"));
    assert_non_null(strstr(p, "[... file cut after line 10: 4000 more bytes not shown]"));
    assert_non_null(strstr(p, "[... 38 more files not listed]"));
    assert_non_null(strstr(p, "```diff"));
    free(p);

    char **paths = NULL;
    int n = wk_patch_output_paths(out.buf, out.len, 10, &paths);
    assert_int_equal(n, 1);
    assert_string_equal(paths[0], "src/calc.py");
    free(paths[0]);
    free(paths);
    const char *cc = "main.c:12:5: error: x\n    at add (/box/lib/m.js:3:9)\nfoo.py:7: in f\n";
    n = wk_patch_output_paths(cc, strlen(cc), 10, &paths);
    assert_int_equal(n, 3);
    assert_string_equal(paths[0], "main.c");
    assert_string_equal(paths[1], "lib/m.js");
    assert_string_equal(paths[2], "foo.py");
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
    wk_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pytest_summary_lines_give_each_outcome),
        cmocka_unit_test(tap_lines_give_each_outcome_and_skips_are_not_failures),
        cmocka_unit_test(plain_output_has_no_detail),
        cmocka_unit_test(baseline_tells_flaky_from_failing_and_takes_targets_from_instruction),
        cmocka_unit_test(without_named_tests_every_stable_failure_is_a_target),
        cmocka_unit_test(without_detail_the_exit_status_decides),
        cmocka_unit_test(diff_fence_wins_over_an_earlier_fence),
        cmocka_unit_test(prompt_marks_every_cut_and_numbers_lines),
    };
    return cmocka_run_group_tests_name("testlog", tests, NULL, NULL);
}
