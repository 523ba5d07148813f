/*
 * `cascade replay` on fixtures/eval/replay (its README has the table of
 * what each recorded run does): the real binary, the real validators, no
 * HTTP. Asserts each task's status, tier and escalations from start 0, that
 * --runs 3 gives the mean and sd worked out by hand, that each pass gets its
 * own file, that a cascade can be named or given as a file, and the usage
 * errors, and that replay and report load the models file offline.
 *
 * Needs CASCADE_BIN and SRC_DIR (set by `make test`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lib/util.h"

/* Runs `cascade replay` on the fixture with extra arguments; returns the exit status. */
static int replay(const char *errf, const char *const *extra)
{
    char *tasks = h_srcpath("fixtures/eval/replay/tasks.jsonl");
    char *recs = h_srcpath("fixtures/eval/replay/recordings.jsonl");
    char *argv[32] = {(char *)h_cascade_bin(), "replay", "--tasks", tasks, "--recordings", recs};
    int n = 6;
    for (int i = 0; extra[i] && n < 31; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    int rc = h_run(argv, NULL, errf, 120);
    free(tasks);
    free(recs);
    return rc;
}

static void expect_task(const cJSON *results, const char *id, const char *status, int tier,
                        int attempts, double cost)
{
    const cJSON *r = h_find(results, "id", id);
    if (!r)
        fail_msg("%s: no result line", id);
    if (strcmp(h_str(r, "status"), status) != 0)
        fail_msg("%s: status %s, expected %s", id, h_str(r, "status"), status);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "tier");
    if (tier < 0)
        assert_true(cJSON_IsNull(t));
    else if (!cJSON_IsNumber(t) || t->valueint != tier)
        fail_msg("%s: tier %g, expected %d", id, cJSON_IsNumber(t) ? t->valuedouble : -1, tier);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "attempts"));
    if (n != attempts)
        fail_msg("%s: %d attempts, expected %d", id, n, attempts);
    double c = cJSON_GetObjectItemCaseSensitive(r, "cost_usd")->valuedouble;
    if (fabs(c - cost) > 1e-9)
        fail_msg("%s: cost %.9f, expected %.9f", id, c, cost);
}

/* The validator of attempt i of task id ("" for a pass). */
static const char *attempt_validator(const cJSON *results, const char *id, int i)
{
    const cJSON *r = h_find(results, "id", id);
    const cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "attempts"), i);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "verdict");
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "pass")))
        return "";
    return h_str(v, "validator");
}

static void test_start0_statuses_tiers_and_escalations(void **state)
{
    (void)state;
    char *out = h_tmp("r0.jsonl"), *esc = h_tmp("e0.jsonl"), *errf = h_tmp("r0.err");
    char *casc = h_srcpath("fixtures/eval/replay/cascades/fx.json");
    const char *extra[] = {"--cascade", casc, "-o", out, "--escalations", esc, NULL};
    int rc = replay(errf, extra);
    if (rc != 0) {
        char *err = h_slurp(errf);
        fail_msg("replay exited %d:\n%s", rc, err);
    }
    cJSON *res = h_jsonl(out);
    cJSON *escs = h_jsonl(esc);
    assert_int_equal(cJSON_GetArraySize(res), 4);
    expect_task(res, "fx/add", "accepted", 0, 1, 0.002);
    expect_task(res, "fx/sub", "accepted", 0, 2, 0.004);
    expect_task(res, "fx/mul", "exhausted", -1, 3, 0.024);
    expect_task(res, "fx/neg", "accepted", 1, 3, 0.024);
    /* The real validators ran: a syntax error, a failed test, a cut-off answer. */
    assert_string_equal(attempt_validator(res, "fx/mul", 0), "syntax");
    assert_string_equal(attempt_validator(res, "fx/mul", 1), "tests");
    assert_string_equal(attempt_validator(res, "fx/neg", 0), "truncation");
    assert_string_equal(attempt_validator(res, "fx/sub", 1), "");
    /* One climb each for mul and neg; sub passed at its second try at tier 0. */
    assert_int_equal(cJSON_GetArraySize(escs), 2);
    assert_non_null(h_find(escs, "id", "fx/mul"));
    assert_non_null(h_find(escs, "id", "fx/neg"));
    /* One pass alone prints run's own summary. */
    char *err = h_slurp(errf);
    assert_non_null(strstr(err, "pass rate        0.750"));
    free(err);
    cJSON_Delete(res);
    cJSON_Delete(escs);
    free(out);
    free(esc);
    free(errf);
    free(casc);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(f))
        fail_msg("no number %s", k);
    return f->valuedouble;
}

static void test_runs3_mean_sd_and_a_file_per_pass(void **state)
{
    (void)state;
    char *out = h_tmp("r3.jsonl"), *table = h_tmp("t3.json"), *errf = h_tmp("r3.err");
    char *dir = h_srcpath("fixtures/eval/replay/cascades");
    const char *extra[] = {"--cascades", dir, "--cascade", "fx",  "--runs", "3",
                           "-o",         out, "--table",   table, NULL};
    int rc = replay(errf, extra);
    if (rc != 0) {
        char *err = h_slurp(errf);
        fail_msg("replay exited %d:\n%s", rc, err);
    }
    char *text = h_slurp(table);
    cJSON *t = cJSON_Parse(text);
    assert_true(cJSON_IsArray(t));
    assert_int_equal(cJSON_GetArraySize(t), 1);
    const cJSON *row = cJSON_GetArrayItem(t, 0);
    assert_string_equal(h_str(row, "plan"), "fx");
    /* Pass rates 0.75, 0.75, 1.00; costs $0.054, $0.052, $0.074 (fixture README). */
    assert_true(fabs(num(row, "pass_rate") - 0.833333) < 1e-6);
    assert_true(fabs(num(row, "pass_rate_sd") - 0.144338) < 1e-6);
    assert_true(fabs(num(row, "cost_usd") - 0.06) < 1e-9);
    assert_true(fabs(num(row, "cost_sd") - 0.012166) < 1e-6);
    assert_int_equal((int)num(row, "runs"), 3);

    /* Pass 1 to -o, passes 2 and 3 beside it; pass 3 (start 2) accepts all four. */
    char *p2 = h_tmp("r3.pass02.jsonl"), *p3 = h_tmp("r3.pass03.jsonl");
    assert_int_equal(access(p2, R_OK), 0);
    cJSON *r1 = h_jsonl(out), *r3 = h_jsonl(p3);
    expect_task(r1, "fx/mul", "exhausted", -1, 3, 0.024);
    expect_task(r3, "fx/sub", "accepted", 1, 3, 0.024);
    expect_task(r3, "fx/neg", "accepted", 1, 3, 0.024);
    expect_task(r3, "fx/mul", "accepted", 1, 3, 0.024);
    /* Later passes reuse verdicts of answers seen before. */
    char *err = h_slurp(errf);
    assert_non_null(strstr(err, "verdicts from the cache"));
    assert_non_null(strstr(err, "0.833 ± 0.144"));
    free(err);
    cJSON_Delete(r1);
    cJSON_Delete(r3);
    cJSON_Delete(t);
    free(text);
    free(p2);
    free(p3);
    free(out);
    free(table);
    free(errf);
    free(dir);
}

static void test_usage_and_input_errors(void **state)
{
    (void)state;
    char *errf = h_tmp("u.err");
    char *casc = h_srcpath("fixtures/eval/replay/cascades/fx.json");
    char *dir = h_srcpath("fixtures/eval/replay/cascades");
    const char *no_cascade[] = {NULL};
    assert_int_equal(replay(errf, no_cascade), 2);
    const char *oracle[] = {"--cascade", casc, "--oracle", NULL};
    assert_int_equal(replay(errf, oracle), 2);
    char *err = h_slurp(errf);
    assert_non_null(strstr(err, "--out-dir"));
    free(err);
    const char *unknown[] = {"--cascades", dir, "--cascade", "nope", NULL};
    assert_int_equal(replay(errf, unknown), 1);
    err = h_slurp(errf);
    assert_non_null(strstr(err, "no cascade named \"nope\""));
    free(err);
    const char *runs[] = {"--cascade", casc, "--runs", "0", NULL};
    assert_int_equal(replay(errf, runs), 2);
    free(errf);
    free(casc);
    free(dir);
}

/*
 * Replay and report call nothing, so they load the models file offline: a
 * provider's ${MOCK_URL} is not expanded and its key variable not read, and
 * both run with neither set. `run` with the same files still refuses.
 */
static void test_offline_commands_need_no_url_or_key(void **state)
{
    (void)state;
    unsetenv("MOCK_URL");
    unsetenv("CASCADE_TEST_UNSET_KEY");
    char *models = h_write("offline-models.json",
                           "{\"providers\":{\"p\":{\"api\":\"openai\",\"base_url\":"
                           "\"${MOCK_URL}/v1\",\"key_env\":\"CASCADE_TEST_UNSET_KEY\"}},"
                           "\"models\":{\"cheap\":{\"provider\":\"p\","
                           "\"input_usd_per_mtok\":1,\"output_usd_per_mtok\":1},"
                           "\"dear\":{\"provider\":\"p\",\"input_usd_per_mtok\":10,"
                           "\"output_usd_per_mtok\":10}}}");
    char *casc = h_srcpath("fixtures/eval/replay/cascades/fx.json");
    char *out = h_tmp("offline.jsonl"), *errf = h_tmp("offline.err");
    const char *extra[] = {"--cascade", casc, "--models", models, "-o", out, NULL};
    int rc = replay(errf, extra);
    if (rc != 0) {
        char *err = h_slurp(errf);
        fail_msg("replay without MOCK_URL or a key exited %d:\n%s", rc, err);
    }
    cJSON *res = h_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), 4);
    expect_task(res, "fx/add", "accepted", 0, 1, 0.002);

    char *rep = h_tmp("offline-report.txt");
    char *rargv[] = {
        (char *)h_cascade_bin(), "report", out, "--models", models, "--cascades", casc, NULL};
    assert_int_equal(h_run(rargv, rep, errf, 30), 0);
    char *text = h_slurp(rep);
    assert_non_null(strstr(text, "top tier alone (dear)"));

    /* `run` calls the models, so an unset ${VAR} stops it at startup, named. */
    char *tasks = h_srcpath("fixtures/eval/replay/tasks.jsonl");
    char *run_out = h_tmp("offline-run.jsonl");
    char *vargv[] = {(char *)h_cascade_bin(),
                     "run",
                     tasks,
                     "--cascades",
                     casc,
                     "--models",
                     models,
                     "-o",
                     run_out,
                     NULL};
    assert_int_equal(h_run(vargv, NULL, errf, 30), 1);
    char *err = h_slurp(errf);
    if (!strstr(err, "MOCK_URL"))
        fail_msg("run's startup error does not name MOCK_URL: %s", err);
    free(err);
    free(run_out);
    free(tasks);
    free(text);
    free(rep);
    cJSON_Delete(res);
    free(out);
    free(errf);
    free(casc);
    free(models);
}

/* The row of `plan` in a table file's array; fails the test when missing. */
static const cJSON *table_row_of(const cJSON *t, const char *plan)
{
    const cJSON *row = h_find(t, "plan", plan);
    if (!row)
        fail_msg("no row for plan \"%s\" in the table", plan);
    return row;
}

/*
 * --plan: plans in words beside a cascade file, named in the table as
 * written; "cheap*2>dear" is the fixture's fx cascade, so its row is fx's
 * (README: 0.8333 ± 0.1443, $0.06 over three runs), and "cheap" and "dear*1"
 * are the single models. A plan naming an unknown model or a bad count is
 * refused.
 */
static void test_plans_in_words_beside_cascades(void **state)
{
    (void)state;
    char *table = h_tmp("plans.json"), *errf = h_tmp("plans.err");
    char *dir = h_srcpath("fixtures/eval/replay/cascades");
    const char *extra[] = {"--cascades",   dir,      "--cascade", "fx",     "--plan",
                           "cheap*2>dear", "--plan", "cheap",     "--plan", "dear*1",
                           "--runs",       "3",      "--table",   table,    NULL};
    int rc = replay(errf, extra);
    if (rc != 0) {
        char *err = h_slurp(errf);
        fail_msg("replay exited %d:\n%s", rc, err);
    }
    char *text = h_slurp(table);
    cJSON *t = cJSON_Parse(text);
    assert_int_equal(cJSON_GetArraySize(t), 4);
    const cJSON *fx = table_row_of(t, "fx"), *plan = table_row_of(t, "cheap*2>dear");
    assert_true(fabs(num(plan, "pass_rate") - 0.833333) < 1e-6);
    assert_true(fabs(num(plan, "cost_usd") - 0.06) < 1e-9);
    assert_true(fabs(num(plan, "pass_rate") - num(fx, "pass_rate")) < 1e-9);
    assert_true(fabs(num(plan, "cost_usd") - num(fx, "cost_usd")) < 1e-9);
    /* cheap alone: add passes every run, sub once in three: 4/12 = 0.333; 4 calls a run. */
    assert_true(fabs(num(table_row_of(t, "cheap"), "pass_rate") - 1.0 / 3) < 1e-6);
    assert_true(fabs(num(table_row_of(t, "cheap"), "cost_usd") - 0.008) < 1e-9);
    assert_true(fabs(num(table_row_of(t, "dear*1"), "cost_usd") - 0.08) < 1e-9);
    /* vs_top is against the priciest single model, the plan "dear*1". */
    assert_true(fabs(num(plan, "vs_top") - 0.75) < 1e-9);
    char *err = h_slurp(errf);
    assert_non_null(strstr(err, "cheap*2>dear "));
    /*
     * Top tier alone: add and sub never reach dear in pass 1, so two of four
     * tasks are priced from cheap's tokens; every call has the same tokens, so
     * the price matches dear*1's replay exactly.
     */
    assert_non_null(strstr(err, "cheap*2>dear: top tier alone (dear) priced at $0.0800, 2 of 4 "
                                "tasks from lower tiers' token counts (pass 1); dear*1 alone "
                                "cost $0.0800 here, so that price is 0.0% over"));
    const cJSON *top = cJSON_GetObjectItemCaseSensitive(plan, "top_tier_alone");
    assert_int_equal((int)num(top, "tasks_from_lower_tiers"), 2);
    free(err);

    const char *unknown[] = {"--cascades", dir, "--plan", "cheap>nope*2", NULL};
    assert_int_equal(replay(errf, unknown), 1);
    err = h_slurp(errf);
    assert_non_null(strstr(err, "unknown model \"nope\""));
    free(err);
    const char *bad[] = {"--cascades", dir, "--plan", "cheap*0>dear", NULL};
    assert_int_equal(replay(errf, bad), 1);
    err = h_slurp(errf);
    assert_non_null(strstr(err, "1 to 100"));
    free(err);
    cJSON_Delete(t);
    free(text);
    free(table);
    free(errf);
    free(dir);
}

/*
 * The top tier alone priced from lower tiers' tokens, against the top model's
 * own replay: with cheap's calls at 500 + 500 tokens (dear's stay 1000 +
 * 1000), add and sub, which never reach dear in pass 1, are priced at $0.01
 * each instead of dear's $0.02: $0.06 against $0.08, 25% under.
 */
static void test_top_tier_alone_estimate_against_the_top_models_replay(void **state)
{
    (void)state;
    char *fixture = h_srcpath("fixtures/eval/replay/recordings.jsonl");
    cJSON *lines = h_jsonl(fixture);
    wk_buf b;
    wk_buf_init(&b, 1u << 20);
    cJSON *l;
    cJSON_ArrayForEach(l, lines)
    {
        if (strcmp(h_str(l, "model"), "cheap") == 0) {
            cJSON *u = cJSON_GetObjectItemCaseSensitive(l, "usage");
            cJSON_ReplaceItemInObject(u, "prompt_tokens", cJSON_CreateNumber(500));
            cJSON_ReplaceItemInObject(u, "completion_tokens", cJSON_CreateNumber(500));
        }
        char *text = cJSON_PrintUnformatted(l);
        wk_buf_appendf(&b, "%s\n", text);
        free(text);
    }
    char *recs = h_write("half-cheap.jsonl", b.buf);
    wk_buf_release(&b);
    char *tasks = h_srcpath("fixtures/eval/replay/tasks.jsonl");
    char *dir = h_srcpath("fixtures/eval/replay/cascades");
    char *errf = h_tmp("top.err");
    char *argv[] = {(char *)h_cascade_bin(),
                    "replay",
                    "--tasks",
                    tasks,
                    "--recordings",
                    recs,
                    "--cascades",
                    dir,
                    "--plan",
                    "cheap*2>dear",
                    "--plan",
                    "dear",
                    NULL};
    assert_int_equal(h_run(argv, NULL, errf, 120), 0);
    char *err = h_slurp(errf);
    if (!strstr(err, "priced at $0.0600, 2 of 4 tasks from lower tiers' token counts (pass 1); "
                     "dear alone cost $0.0800 here, so that price is 25.0% under"))
        fail_msg("no 25%% under in:\n%s", err);
    free(err);
    free(errf);
    free(dir);
    free(tasks);
    free(recs);
    cJSON_Delete(lines);
    free(fixture);
}

/* Rewrites every line of the cache whose answer holds `needle` to pass. */
static void plant_pass(const char *path, const char *needle)
{
    cJSON *lines = h_jsonl(path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    const cJSON *l;
    int n = 0;
    cJSON_ArrayForEach(l, lines)
    {
        if (strstr(h_str(l, "answer"), needle)) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(l, "verdict");
            cJSON_ReplaceItemInObject(v, "pass", cJSON_CreateTrue());
            n++;
        }
        char *text = cJSON_PrintUnformatted(l);
        fprintf(f, "%s\n", text);
        free(text);
    }
    fclose(f);
    assert_true(n > 0);
    cJSON_Delete(lines);
}

/*
 * --verdict-cache: the first invocation validates and writes the file; the
 * second takes every verdict from it (proved by planting a false pass: a
 * cached verdict wins over validating again), and a task whose line changed
 * is validated again.
 */
static void test_verdict_cache_outlives_the_invocation(void **state)
{
    (void)state;
    char *vc = h_tmp("verdicts.jsonl"), *errf = h_tmp("vc.err"), *out = h_tmp("vc.jsonl");
    char *dir = h_srcpath("fixtures/eval/replay/cascades");
    remove(vc);
    const char *extra[] = {"--cascades",      dir, "--plan", "cheap*2>dear", "-o", out,
                           "--verdict-cache", vc,  NULL};
    assert_int_equal(replay(errf, extra), 0);
    cJSON *first = h_jsonl(vc);
    /* Start 0 validates 8 answers: 9 calls (README), less neg's cut-off one, never validated. */
    assert_int_equal(cJSON_GetArraySize(first), 8);
    cJSON_Delete(first);
    cJSON *r = h_jsonl(out);
    expect_task(r, "fx/mul", "exhausted", -1, 3, 0.024);
    cJSON_Delete(r);

    /* fx/mul's first cheap answer has a syntax error; the cache now says it passes. */
    plant_pass(vc, "def mul(a, b) return");
    assert_int_equal(replay(errf, extra), 0);
    char *err = h_slurp(errf);
    assert_non_null(strstr(err, "8 verdicts from"));
    free(err);
    r = h_jsonl(out);
    expect_task(r, "fx/mul", "accepted", 0, 1, 0.002);
    cJSON_Delete(r);

    /* A tasks file whose fx/mul line differs: that entry is dropped, mul exhausted again. */
    char *tasks = h_srcpath("fixtures/eval/replay/tasks.jsonl");
    char *text = h_slurp(tasks);
    char *edited = h_write("vc-tasks.jsonl", text);
    cJSON *tl = h_jsonl(edited);
    FILE *f = fopen(edited, "w");
    const cJSON *l;
    cJSON_ArrayForEach(l, tl)
    {
        if (strcmp(h_str(l, "id"), "fx/mul") == 0)
            cJSON_AddStringToObject((cJSON *)l, "note", "edited");
        char *line = cJSON_PrintUnformatted(l);
        fprintf(f, "%s\n", line);
        free(line);
    }
    fclose(f);
    char *recs = h_srcpath("fixtures/eval/replay/recordings.jsonl");
    char *argv[] = {(char *)h_cascade_bin(),
                    "replay",
                    "--tasks",
                    edited,
                    "--recordings",
                    recs,
                    "--cascades",
                    dir,
                    "--plan",
                    "cheap*2>dear",
                    "-o",
                    out,
                    "--verdict-cache",
                    vc,
                    NULL};
    assert_int_equal(h_run(argv, NULL, errf, 120), 0);
    err = h_slurp(errf);
    assert_non_null(strstr(err, "dropped"));
    free(err);
    r = h_jsonl(out);
    expect_task(r, "fx/mul", "exhausted", -1, 3, 0.024);
    cJSON_Delete(r);
    cJSON_Delete(tl);
    free(recs);
    free(edited);
    free(text);
    free(tasks);
    free(vc);
    free(errf);
    free(out);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start0_statuses_tiers_and_escalations),
        cmocka_unit_test(test_runs3_mean_sd_and_a_file_per_pass),
        cmocka_unit_test(test_usage_and_input_errors),
        cmocka_unit_test(test_offline_commands_need_no_url_or_key),
        cmocka_unit_test(test_plans_in_words_beside_cascades),
        cmocka_unit_test(test_verdict_cache_outlives_the_invocation),
        cmocka_unit_test(test_top_tier_alone_estimate_against_the_top_models_replay),
    };
    return cmocka_run_group_tests_name("replay", tests, h_group_setup, h_group_teardown);
}
