/*
 * Patch tasks (the CI bot's core): the router's preparation step, then the
 * real binary on small git repositories built here with the git CLI: intake's
 * refusals, nothing_to_fix with no call, empty and oversized patches, the
 * feedback of a patch that does not apply, and flaky and pre-existing
 * failures told apart, pytest and node --test read test by test. Calls go to
 * the mock model server on 127.0.0.1. The pure parts (runner output, baseline,
 * diff extraction, prompt) are in tests/test_testlog.c.
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
#include "worker/router.h"

/* ---- the router: a preparation before the first call ------------------------------- */

static wk_provider prov = {.name = "mock", .api = "openai", .base_url = "http://x/v1"};
static wk_model model = {.name = "cheap",
                         .provider = &prov,
                         .id = "cheap",
                         .input_usd_per_mtok = 1,
                         .output_usd_per_mtok = 2,
                         .context = 100000,
                         .max_tokens = 1000};
static char *pvals[] = {"patch", "tests", NULL};
static char *cvals[] = {"syntax", "tests", NULL};
static wk_tier tier = {.model = &model, .attempts = 1};
static wk_cascade pcasc[2] = {
    {.name = "patch",
     .match_kind = "patch",
     .validators = pvals,
     .nvalidators = 2,
     .tiers = &tier,
     .ntiers = 1},
    {.name = "code",
     .match_kind = "code",
     .validators = cvals,
     .nvalidators = 2,
     .tiers = &tier,
     .ntiers = 1},
};
static wk_config pcfg = {.providers = &prov,
                         .nproviders = 1,
                         .models = &model,
                         .nmodels = 1,
                         .cascades = pcasc,
                         .ncascades = 2};

static const char PTASK[] = "{\"id\":\"p1\",\"kind\":\"patch\",\"repo\":{\"path\":\"r\"},"
                            "\"tests\":{\"command\":[\"make\",\"test\"]}}";

static wk_task *ptask(void)
{
    wk_task *t = NULL;
    cJSON *inv = NULL;
    assert_int_equal(wk_task_parse(PTASK, strlen(PTASK), 1, &pcfg, NULL, &t, &inv), 0);
    return t;
}

static void router_prepares_a_patch_task_before_any_call(void **state)
{
    (void)state;
    wk_actions acts = {0};
    wk_task *t = ptask();
    wk_event start = {.kind = WK_EV_START, .now_ms = 1};
    assert_int_equal(wk_task_feed(t, &start, &acts), 1);
    assert_int_equal(acts.v[0].kind, WK_ACT_PREPARE);

    /* The tests pass at base: the task finishes with no call. */
    wk_prep nothing = {.status = WK_PREP_NOTHING, .reason = "the tests pass at base", .runs = 1};
    wk_event prepared = {.kind = WK_EV_PREPARED, .now_ms = 2, .prep = &nothing};
    assert_int_equal(wk_task_feed(t, &prepared, &acts), 1);
    assert_int_equal(acts.v[0].kind, WK_ACT_FINISH);
    assert_string_equal(h_str(acts.v[0].line, "status"), "nothing_to_fix");
    assert_string_equal(h_str(acts.v[0].line, "reason"), "the tests pass at base");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(acts.v[0].line, "attempts")), 0);
    wk_task_free(t);

    /* The tests fail: the prompt the preparation built is what the first call sends. */
    t = ptask();
    wk_task_feed(t, &start, &acts);
    val_baseline bl = {0};
    wk_prep ready = {.status = WK_PREP_READY, .prompt = "FIX THIS", .baseline = &bl, .runs = 2};
    prepared.prep = &ready;
    assert_int_equal(wk_task_feed(t, &prepared, &acts), 1);
    assert_int_equal(acts.v[0].kind, WK_ACT_CALL);
    char *msgs = cJSON_PrintUnformatted(acts.v[0].messages);
    assert_non_null(strstr(msgs, "FIX THIS"));
    assert_non_null(strstr(msgs, "unified diff"));
    free(msgs);
    assert_non_null(wk_task_baseline(t));
    wk_task_free(t);
    wk_actions_release(&acts);

    /* A patch task whose cascade does not apply the patch first is refused at intake. */
    wk_task *bad = NULL;
    cJSON *inv = NULL;
    assert_int_equal(wk_task_parse(PTASK, strlen(PTASK), 1, &pcfg, "code", &bad, &inv), WK_EINVAL);
    assert_non_null(strstr(h_str(inv, "reason"), "\"patch\" as its first validator"));
    cJSON_Delete(inv);
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

/* Prints the baseline's timing, a figure the README quotes. */
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

static void say_baseline(const char *what, const cJSON *r)
{
    printf("  %s: baseline %d runs in %d ms\n", what, tests_count(r, "baseline_runs"),
           tests_count(r, "baseline_ms"));
}

static void intake_refuses_bad_repos_and_fields_before_any_call(void **state)
{
    (void)state;
    write_config();
    make_repo("r_intake", buggy_calc, "");
    /* A 2 MiB file makes a repository over --max-repo-mb 1. */
    char *dir = h_tmp("r_intake");
    char *sh = wk_xasprintf("set -e; cd '%s'; head -c 2200000 /dev/zero | tr '\\0' 'a' > big.txt; "
                            "git add big.txt; git commit -qm big",
                            dir);
    char *argv[] = {"/bin/sh", "-c", sh, NULL};
    assert_int_equal(h_run(argv, NULL, NULL, 30), 0);
    free(sh);
    free(dir);
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
        "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n"
        /* The id of a refused task again: a duplicate, neither run nor a second refusal. */
        "{\"id\":\"norepo\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_intake\"},"
        "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n";
    cJSON *res = run_tasks("intake", tasks, "", "--max-repo-mb", "1");
    struct {
        const char *id, *field;
    } want[] = {{"norepo", "repo.path \""},
                {"nobase", "repo.base \"v9\""},
                {"cmd", "tests.command"},
                {"ctx", "context_files"},
                {"big", "--max-repo-mb 1"}};
    assert_int_equal(cJSON_GetArraySize(res), 6);
    const cJSON *last = cJSON_GetArrayItem(res, 5);
    assert_string_equal(h_str(last, "status"), "invalid_task");
    assert_non_null(strstr(h_str(last, "reason"), "duplicate id \"norepo\""));
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

static void empty_noop_oversized_and_unparsable_patches_fail_before_the_tests(void **state)
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
    /* Applies, but leaves calc.py unparsable: syntax names the file, no test runs. */
    char *r5 = rec("syn", "cheap",
                   "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n"
                   " def add(a, b):\n-    return a - b\n+    return (a + b\n```");
    char *r6 = rec("syn", "dear", good_diff);
    char *recs = wk_xasprintf("%s%s%s%s%s%s", r1, r2, r3, r4, r5, r6);
    cJSON *res = run_tasks("empty",
                           "{\"id\":\"empty\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_empty\"},"
                           "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n"
                           "{\"id\":\"big\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_empty\"},"
                           "\"tests\":{\"command\":[\"sh\",\"run_tests.sh\"]}}\n"
                           "{\"id\":\"syn\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_empty\"},"
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
    r = h_find(res, "id", "syn");
    assert_string_equal(h_str(verdict(r, 0), "validator"), "syntax");
    assert_string_equal(h_str(verdict(r, 0), "reason"), "syntax_error");
    assert_non_null(strstr(h_str(verdict(r, 0), "message"), "calc.py: python syntax error"));
    assert_string_equal(h_str(r, "status"), "accepted");
    free(r1), free(r2), free(r3), free(r4), free(r5), free(r6), free(recs);
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
    cJSON *res = run_tasks("apply",
                           "{\"id\":\"apply\",\"kind\":\"patch\",\"repo\":{\"path\":\"r_apply\"},"
                           "\"prompt\":\"Fix add so test_add passes\","
                           "\"context_files\":[\"calc.py\",\"gone.py\"],"
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
    assert_non_null(strstr(first, "[context file gone.py is not a file of the repository"));
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
    say_baseline("sh + TAP", r);
    free(r1), free(r2), free(recs);
    cJSON_Delete(res);
}

static void a_pytest_repository_is_read_test_by_test_in_the_sandbox(void **state)
{
    (void)state;
    write_config();
    char *dir = h_tmp("r_pytest");
    char *sh = wk_xasprintf(
        "set -e; rm -rf '%s'; mkdir -p '%s/tests'; cd '%s'; git init -q; "
        "git config user.email t@t; git config user.name t; "
        "printf 'def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n' "
        "> calc.py; printf 'from calc import add, sub\n\n\ndef test_add():\n    assert "
        "add(2, 3) == 5\n\n\ndef test_sub():\n    assert sub(5, 3) == 2\n' > "
        "tests/test_calc.py; git add -A; git commit -qm init",
        dir, dir, dir);
    char *argv[] = {"/bin/sh", "-c", sh, NULL};
    assert_int_equal(h_run(argv, NULL, NULL, 30), 0);
    free(sh);
    free(dir);
    char *r1 = rec("py", "cheap", good_diff);
    cJSON *res = run_tasks("py",
                           "{\"id\":\"py\",\"kind\":\"patch\",\"language\":\"python\","
                           "\"repo\":{\"path\":\"r_pytest\"},\"prompt\":\"Make test_add pass\","
                           "\"tests\":{\"command\":[\"python3\",\"-m\",\"pytest\",\"-q\","
                           "\"-rA\",\"-p\",\"no:cacheprovider\"]}}\n",
                           r1, NULL, NULL);
    const cJSON *r = h_find(res, "id", "py");
    assert_string_equal(h_str(r, "status"), "accepted");
    assert_int_equal(tests_count(r, "passed"), 2);
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "tests"),
                                                       "failing_at_base");
    assert_int_equal(cJSON_GetArraySize(fa), 1);
    assert_string_equal(cJSON_GetArrayItem(fa, 0)->valuestring, "tests/test_calc.py::test_add");
    say_baseline("pytest", r);
    free(r1);
    cJSON_Delete(res);
}

static void a_node_test_repository_is_read_from_its_tap_output(void **state)
{
    (void)state;
    write_config();
    char *dir = h_tmp("r_node");
    char *sh = wk_xasprintf(
        "set -e; rm -rf '%s'; mkdir -p '%s/test'; cd '%s'; git init -q; "
        "git config user.email t@t; git config user.name t; "
        "printf 'exports.add = (a, b) => a - b;\\nexports.sub = (a, b) => a - b;\\n' > calc.js; "
        "printf \"const test = require('node:test');\\nconst assert = require('node:assert');\\n"
        "const { add, sub } = require('../calc.js');\\n"
        "test('adds', () => assert.strictEqual(add(2, 3), 5));\\n"
        "test('subs', () => assert.strictEqual(sub(5, 3), 2));\\n\" > test/calc.test.js; "
        "git add -A; git commit -qm init",
        dir, dir, dir);
    char *argv[] = {"/bin/sh", "-c", sh, NULL};
    assert_int_equal(h_run(argv, NULL, NULL, 30), 0);
    free(sh);
    free(dir);
    char *r1 = rec("js", "cheap",
                   "```diff\n--- a/calc.js\n+++ b/calc.js\n@@ -1,2 +1,2 @@\n"
                   "-exports.add = (a, b) => a - b;\n+exports.add = (a, b) => a + b;\n"
                   " exports.sub = (a, b) => a - b;\n```");
    cJSON *res = run_tasks("js",
                           "{\"id\":\"js\",\"kind\":\"patch\",\"language\":\"javascript\","
                           "\"repo\":{\"path\":\"r_node\"},\"prompt\":\"Make the adds test pass\","
                           "\"tests\":{\"command\":[\"node\",\"--test\"]}}\n",
                           r1, NULL, NULL);
    const cJSON *r = h_find(res, "id", "js");
    assert_string_equal(h_str(r, "status"), "accepted");
    assert_int_equal(tests_count(r, "passed"), 2);
    const cJSON *fa = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "tests"),
                                                       "failing_at_base");
    assert_int_equal(cJSON_GetArraySize(fa), 1);
    assert_string_equal(cJSON_GetArrayItem(fa, 0)->valuestring, "adds");
    say_baseline("node --test", r);
    free(r1);
    cJSON_Delete(res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(router_prepares_a_patch_task_before_any_call),
        cmocka_unit_test(intake_refuses_bad_repos_and_fields_before_any_call),
        cmocka_unit_test(passing_tests_at_base_end_nothing_to_fix_without_a_call),
        cmocka_unit_test(empty_noop_oversized_and_unparsable_patches_fail_before_the_tests),
        cmocka_unit_test(apply_failure_goes_back_with_its_hunk_and_the_prompt_shows_the_repo),
        cmocka_unit_test(flaky_and_preexisting_failures_do_not_reject_a_good_patch),
        cmocka_unit_test(a_pytest_repository_is_read_test_by_test_in_the_sandbox),
        cmocka_unit_test(a_node_test_repository_is_read_from_its_tap_output),
    };
    return cmocka_run_group_tests_name("patch_task", tests, h_group_setup, h_group_teardown);
}
