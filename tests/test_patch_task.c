/*
 * Patch tasks (the CI bot's core): the runner's output read test by test, the
 * baseline and its judgement (flaky, pre-existing, regressions), the diff
 * taken from an answer and the prompt built from the repository, then the
 * real binary on small git repositories built here with the git CLI: intake's
 * refusals, nothing_to_fix with no call, empty and oversized patches, the
 * feedback of a patch that does not apply, and flaky and pre-existing
 * failures told apart. Calls go to the mock model server on 127.0.0.1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
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

/* ---- the binary on real repositories -------------------------------------------------- */

/* A TAP test script: test_add checks calc.add; test_other passes; more lines may follow. */
static const char tap_script[] =
    "#!/bin/sh\n"
    "r=0\n"
    "if python3 -c 'from calc import add; assert add(2, 3) == 5'; then echo 'ok 1 - test_add';\n"
    "else echo 'not ok 1 - test_add'; r=1; fi\n"
    "if python3 -c 'from calc import add; assert add(0, 0) == 0'; then echo 'ok 2 - test_other';\n"
    "else echo 'not ok 2 - test_other'; r=1; fi\n"
    "%s"
    "exit $r\n";

/* Builds a git repository NAME in the scratch dir with calc.py and run_tests.sh. */
static void make_repo(const char *name, const char *calc, const char *extra_tests)
{
    char *dir = h_tmp(name);
    char *script = wk_xasprintf(tap_script, extra_tests);
    char *calc_f = wk_xasprintf("%s.calc.py", name);
    char *test_f = wk_xasprintf("%s.run_tests.sh", name);
    char *cp = h_write(calc_f, calc);
    char *tp = h_write(test_f, script);
    char *sh = wk_xasprintf(
        "set -e; rm -rf '%s'; mkdir '%s'; cd '%s'; git init -q; git config user.email t@t; "
        "git config user.name t; cp '%s' calc.py; cp '%s' run_tests.sh; git add -A; "
        "git commit -qm init; echo dirty >> calc.py",
        dir, dir, dir, cp, tp);
    char *argv[] = {"/bin/sh", "-c", sh, NULL};
    assert_int_equal(h_run(argv, NULL, NULL, 30), 0);
    free(sh);
    free(cp);
    free(tp);
    free(calc_f);
    free(test_f);
    free(script);
    free(dir);
}

static const char buggy_calc[] = "def add(a, b):\n    return a - b\n";
static const char good_diff[] = "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n"
                                " def add(a, b):\n-    return a - b\n+    return a + b\n```";

static void write_config(void)
{
    char *dir = h_tmp("cascades");
    char *argv[] = {"/bin/mkdir", "-p", dir, NULL};
    assert_int_equal(h_run(argv, NULL, NULL, 10), 0);
    free(dir);
    free(h_write("cascades/patch.json",
                 "{\"name\": \"patch\", \"match\": {\"kind\": \"patch\"},\n"
                 " \"validators\": [\"patch\", \"syntax\", \"tests\"], \"feedback\": true,\n"
                 " \"tiers\": [{\"model\": \"cheap\", \"attempts\": 1},\n"
                 "           {\"model\": \"dear\", \"attempts\": 1}]}\n"));
    free(h_write("models.json",
                 "{\"providers\": {\"mock\": {\"api\": \"openai\", \"base_url\": "
                 "\"${MOCK_URL}/v1\", \"key_env\": null}},\n"
                 " \"models\": {\"cheap\": {\"provider\": \"mock\", \"id\": \"cheap\", "
                 "\"input_usd_per_mtok\": 1, \"output_usd_per_mtok\": 2},\n"
                 "            \"dear\": {\"provider\": \"mock\", \"id\": \"dear\", "
                 "\"input_usd_per_mtok\": 10, \"output_usd_per_mtok\": 20}}}\n"));
}

/* A recording line for task and model (run 1). Caller frees. */
static char *rec(const char *task, const char *model, const char *answer)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", task);
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddNumberToObject(o, "run", 1);
    cJSON_AddStringToObject(o, "answer", answer);
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", 1000);
    cJSON_AddNumberToObject(u, "completion_tokens", 100);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *line = wk_xasprintf("%s\n", s);
    free(s);
    return line;
}

/*
 * Runs `cascade run` on the tasks against the mock with the recordings;
 * extra options after. Returns the results as an array (caller frees).
 */
static cJSON *run_tasks(const char *tag, const char *tasks, const char *recs, const char *opt1,
                        const char *opt2)
{
    char *tn = wk_xasprintf("%s.tasks.jsonl", tag), *rn = wk_xasprintf("%s.recs.jsonl", tag);
    /* The mock wants one recording at least; a task no test has never asks for it. */
    char *unused = rec("unused", "cheap", "-");
    char *all = wk_xasprintf("%s%s", recs, unused);
    char *tp = h_write(tn, tasks), *rp = h_write(rn, all);
    free(unused);
    free(all);
    char *out = h_tmp(tag), *log = wk_xasprintf("%s.mock.log", out);
    char *res = wk_xasprintf("%s.results.jsonl", out), *esc = wk_xasprintf("%s.esc.jsonl", out);
    char *err = wk_xasprintf("%s.stderr", out);
    char *casc = h_tmp("cascades"), *models = h_tmp("models.json");
    h_mock m;
    h_mock_start(&m, rp, log, NULL);
    char *argv[] = {(char *)h_cascade_bin(),
                    "run",
                    tp,
                    "--cascades",
                    casc,
                    "--models",
                    models,
                    "-o",
                    res,
                    "--escalations",
                    esc,
                    "--journal",
                    "none",
                    "-q",
                    (char *)opt1,
                    (char *)opt2,
                    NULL};
    int rc = h_run(argv, NULL, err, 120);
    h_mock_stop(&m);
    if (rc != 0) {
        char *e = h_slurp(err);
        fprintf(stderr, "cascade run exited %d: %s\n", rc, e);
        free(e);
    }
    assert_int_equal(rc, 0);
    cJSON *r = h_jsonl(res);
    free(tn), free(rn), free(tp), free(rp), free(out), free(log), free(res), free(esc), free(err);
    free(casc), free(models);
    return r;
}

static int nattempts(const cJSON *r)
{
    return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "attempts"));
}

static const cJSON *verdict(const cJSON *r, int i)
{
    return cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "attempts"), i), "verdict");
}

static int tests_count(const cJSON *r, const char *key)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "tests");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(t, key);
    return cJSON_IsNumber(n) ? n->valueint : -1;
}

static void intake_refuses_bad_repos_and_fields_before_any_call(void **state)
{
    (void)state;
    write_config();
    make_repo("r_intake", buggy_calc, "");
    /* A 2 MiB file makes a repository over --max-repo-mb 1. */
    char *sh = wk_xasprintf("set -e; cd '%s'; head -c 2200000 /dev/zero | tr '\\0' 'a' > big.txt; "
                            "git add big.txt; git commit -qm big; mkdir -p ../sub",
                            h_tmp("r_intake"));
    char *argv[] = {"/bin/sh", "-c", sh, NULL};
    assert_int_equal(h_run(argv, NULL, NULL, 30), 0);
    free(sh);
    const char *tasks =
        "{\"id\":\"norepo\",\"kind\":\"patch\",\"repo\":{\"path\":\"nowhere\"},"
        "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n"
        "{\"id\":\"nobase\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_intake\",\"base\":\"v9\"},"
        "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n"
        "{\"id\":\"cmd\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_intake\"},"
        "\"tests\":{\"command\":\"sh run_tests.sh\"}}\n"
        "{\"id\":\"ctx\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_intake\"},"
        "\"tests\":{\"command\":[\"sh\"]},\"context_files\":[1]}\n"
        "{\"id\":\"big\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_intake\"},"
        "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n";
    cJSON *res = run_tasks("intake", tasks, "", "--max-repo-mb", "1");
    struct {
        const char *id, *field;
    } want[] = {{"norepo", "repo.path \""},
                {"nobase", "repo.base \"v9\""},
                {"cmd", "tests.command"},
                {"ctx", "context_files"},
                {"big", "--max-repo-mb 1"}};
    assert_int_equal(cJSON_GetArraySize(res), 5);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const cJSON *r = h_find(res, "id", want[i].id);
        assert_non_null(r);
        assert_string_equal(h_str(r, "status"), "invalid_task");
        assert_int_equal(nattempts(r), 0);
        if (!strstr(h_str(r, "reason"), want[i].field))
            fail_msg("%s: reason \"%s\" does not name %s", want[i].id, h_str(r, "reason"),
                     want[i].field);
    }
    cJSON_Delete(res);
}

static void passing_tests_at_base_end_nothing_to_fix_without_a_call(void **state)
{
    (void)state;
    write_config();
    make_repo("r_ok", "def add(a, b):\n    return a + b\n", "");
    char *log = h_tmp("ok.mock.log");
    cJSON *res = run_tasks("ok",
                           "{\"id\":\"ok\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_ok\"},"
                           "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n",
                           "", NULL, NULL);
    const cJSON *r = h_find(res, "id", "ok");
    assert_non_null(r);
    assert_string_equal(h_str(r, "status"), "nothing_to_fix");
    assert_int_equal(nattempts(r), 0);
    assert_int_equal(tests_count(r, "baseline_runs"), 1);
    char *l = h_slurp(log);
    assert_string_equal(l, ""); /* the mock was never asked */
    free(l);
    free(log);
    cJSON_Delete(res);
}

static void empty_noop_and_oversized_patches_fail_at_once(void **state)
{
    (void)state;
    write_config();
    make_repo("r_empty", buggy_calc, "");
    const char *noop = "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n"
                       " def add(a, b):\n-    return a - b\n+    return a - b\n```";
    wk_buf big;
    wk_buf_init(&big, 1 << 20);
    wk_buf_appendf(&big, "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,40 @@\n"
                         " def add(a, b):\n-    return a - b\n+    return a + b\n");
    for (int i = 0; i < 38; i++)
        wk_buf_appendf(&big, "+# padding line %d of a patch that is far too long ......\n", i);
    wk_buf_appendf(&big, "```");
    char *r1 = rec("empty", "cheap", "```diff\n```"), *r2 = rec("empty", "dear", noop);
    char *r3 = rec("big", "cheap", big.buf), *r4 = rec("big", "dear", good_diff);
    char *recs = wk_xasprintf("%s%s%s%s", r1, r2, r3, r4);
    cJSON *res = run_tasks("empty",
                           "{\"id\":\"empty\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_empty\"},"
                           "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n"
                           "{\"id\":\"big\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_empty\"},"
                           "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n",
                           recs, "--max-patch-kb", "1");
    const cJSON *r = h_find(res, "id", "empty");
    assert_string_equal(h_str(r, "status"), "exhausted");
    assert_string_equal(h_str(verdict(r, 0), "validator"), "patch");
    assert_string_equal(h_str(verdict(r, 0), "reason"), "empty_patch");
    assert_string_equal(h_str(verdict(r, 1), "validator"), "patch");
    assert_string_equal(h_str(verdict(r, 1), "reason"), "empty_patch");
    r = h_find(res, "id", "big");
    assert_string_equal(h_str(verdict(r, 0), "reason"), "too_big");
    assert_string_equal(h_str(r, "status"), "accepted");
    assert_string_equal(h_str(r, "model"), "dear");
    free(r1), free(r2), free(r3), free(r4), free(recs);
    wk_buf_release(&big);
    cJSON_Delete(res);
}

static void apply_failure_goes_back_with_its_hunk_and_the_prompt_shows_the_repo(void **state)
{
    (void)state;
    write_config();
    make_repo("r_apply", buggy_calc, "");
    const char *wrong = "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n"
                        " def add(a, b):\n-    return a * b\n+    return a + b\n```";
    char *r1 = rec("apply", "cheap", wrong), *r2 = rec("apply", "dear", good_diff);
    char *recs = wk_xasprintf("%s%s", r1, r2);
    cJSON *res =
        run_tasks("apply",
                  "{\"id\":\"apply\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_apply\"},"
                  "\"prompt\":\"Fix add so test_add passes\",\"context_files\":[\"calc.py\"],"
                  "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n",
                  recs, NULL, NULL);
    const cJSON *r = h_find(res, "id", "apply");
    assert_string_equal(h_str(r, "status"), "accepted");
    assert_string_equal(h_str(verdict(r, 0), "reason"), "does_not_apply");
    assert_int_equal(tests_count(r, "passed"), 2);

    /* The mock's log holds both requests: the prompt, then the feedback. */
    char *logp = h_tmp("apply.mock.log");
    cJSON *log = h_jsonl(logp);
    assert_int_equal(cJSON_GetArraySize(log), 2);
    char *first = cJSON_PrintUnformatted(cJSON_GetArrayItem(log, 0));
    char *second = cJSON_PrintUnformatted(cJSON_GetArrayItem(log, 1));
    assert_non_null(strstr(first, "Fix add so test_add passes"));
    assert_non_null(strstr(first, "not ok 1 - test_add"));
    assert_non_null(strstr(first, "    2 |     return a - b")); /* at base, not the dirty tree */
    assert_null(strstr(first, "dirty"));
    assert_non_null(strstr(first, "```diff"));
    assert_non_null(strstr(second, "does not apply"));
    assert_non_null(strstr(second, "-    return a * b"));      /* the hunk's line */
    assert_non_null(strstr(second, "the file has at line 1")); /* and the file's */
    free(first);
    free(second);
    cJSON_Delete(log);
    free(logp);
    free(r1), free(r2), free(recs);
    cJSON_Delete(res);
}

static void flaky_and_preexisting_failures_do_not_reject_a_good_patch(void **state)
{
    (void)state;
    write_config();
    /* test_flaky passes in the first baseline run only; test_legacy always fails. */
    make_repo("r_flaky", buggy_calc,
              "if [ \"$CASCADE_TEST_RUN\" = 1 ]; then echo 'ok 3 - test_flaky';\n"
              "else echo 'not ok 3 - test_flaky'; r=1; fi\n"
              "echo 'not ok 4 - test_legacy'; r=1\n");
    const char *regress = "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n"
                          " def add(a, b):\n-    return a - b\n+    return 5\n```";
    char *r1 = rec("flaky", "cheap", regress), *r2 = rec("flaky", "dear", good_diff);
    char *recs = wk_xasprintf("%s%s", r1, r2);
    cJSON *res = run_tasks("flaky",
                           "{\"id\":\"flaky\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_flaky\"},"
                           "\"prompt\":\"Make test_add pass\","
                           "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n",
                           recs, NULL, NULL);
    const cJSON *r = h_find(res, "id", "flaky");
    /* "return 5" fixes test_add and breaks test_other: a regression, rejected. */
    assert_string_equal(h_str(verdict(r, 0), "validator"), "tests");
    assert_non_null(strstr(h_str(verdict(r, 0), "message"), "test_other passed at base"));
    assert_string_equal(h_str(r, "status"), "accepted");
    assert_string_equal(h_str(r, "model"), "dear");
    assert_int_equal(tests_count(r, "passed"), 2);
    assert_int_equal(tests_count(r, "flaky"), 1);
    assert_int_equal(tests_count(r, "preexisting"), 1);
    assert_int_equal(tests_count(r, "baseline_runs"), 2);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "tests");
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(t, "flaky_tests");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(t, "preexisting_tests");
    assert_int_equal(cJSON_GetArraySize(fl), 1);
    assert_string_equal(cJSON_GetArrayItem(fl, 0)->valuestring, "test_flaky");
    assert_int_equal(cJSON_GetArraySize(pre), 1);
    assert_string_equal(cJSON_GetArrayItem(pre, 0)->valuestring, "test_legacy");
    free(r1), free(r2), free(recs);
    cJSON_Delete(res);
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
        cmocka_unit_test(intake_refuses_bad_repos_and_fields_before_any_call),
        cmocka_unit_test(passing_tests_at_base_end_nothing_to_fix_without_a_call),
        cmocka_unit_test(empty_noop_and_oversized_patches_fail_at_once),
        cmocka_unit_test(apply_failure_goes_back_with_its_hunk_and_the_prompt_shows_the_repo),
        cmocka_unit_test(flaky_and_preexisting_failures_do_not_reject_a_good_patch),
    };
    return cmocka_run_group_tests_name("patch_task", tests, h_group_setup, h_group_teardown);
}
