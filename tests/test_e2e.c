/*
 * End to end: the real `cascade` binary against the real mock model server
 * on 127.0.0.1, on the demo fixtures. Asserts each task's status, accepting
 * tier and number of escalation lines against fixtures/demo/expected.jsonl,
 * that feedback reaches the next request, that a rerun gives the same
 * results, and that startup errors name what is wrong before any call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "lib/util.h"

static int run_demo(const char *results, const char *escal, const char *errf)
{
    char *tasks = h_srcpath("fixtures/demo/tasks.jsonl");
    char *casc = h_srcpath("fixtures/demo/cascades");
    char *models = h_srcpath("fixtures/demo/models.json");
    char *argv[] = {(char *)h_cascade_bin(),
                    "run",
                    tasks,
                    "--cascades",
                    casc,
                    "--models",
                    models,
                    "-o",
                    (char *)results,
                    "--escalations",
                    (char *)escal,
                    NULL};
    int rc = h_run(argv, NULL, errf, 240);
    free(tasks);
    free(casc);
    free(models);
    return rc;
}

static const cJSON *find_line(const cJSON *arr, int line)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(e, "line");
        if (cJSON_IsNumber(l) && l->valueint == line)
            return e;
    }
    return NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Each line printed without the fields that legitimately differ between two
 * runs, sorted: tasks finish concurrently, so line order varies. Timings
 * differ: the latency, the time a task finished, and which limit stops a runaway test first (its
 * CPU time or the wall clock, depending on the machine's load) and so the wording of a timeout's
 * message.
 */
static char **canonical_lines(cJSON *results, int *n)
{
    *n = cJSON_GetArraySize(results);
    char **lines = wk_xcalloc((size_t)*n, sizeof(char *));
    int i = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, results)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(r, "ts"); /* when it finished */
        cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(r, "attempts"))
        {
            cJSON_DeleteItemFromObjectCaseSensitive(a, "latency_ms");
            cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "verdict");
            const char *reason = h_str(v, "reason");
            if (reason && strcmp(reason, "timeout") == 0)
                cJSON_DeleteItemFromObjectCaseSensitive(v, "message");
        }
        lines[i++] = cJSON_PrintUnformatted(r);
    }
    qsort(lines, (size_t)*n, sizeof(char *), cmp_str);
    return lines;
}

static void check_outcomes(const cJSON *expected, const cJSON *got, const cJSON *esc)
{
    int total_climbs = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, expected)
    {
        const char *id = h_str(x, "id");
        const cJSON *r =
            id ? h_find(got, "id", id) : find_line(got, cJSON_GetObjectItem(x, "line")->valueint);
        if (!r)
            fail_msg("no result line for %s", cJSON_PrintUnformatted(x));
        const char *want = h_str(x, "status");
        const char *have = h_str(r, "status");
        const char *name = id ? id : "(line)";
        if (strcmp(want, have) != 0)
            fail_msg("%s: status %s, expected %s: %s", name, have, want, cJSON_PrintUnformatted(r));
        const cJSON *wt = cJSON_GetObjectItemCaseSensitive(x, "tier");
        const cJSON *ht = cJSON_GetObjectItemCaseSensitive(r, "tier");
        if (wt && !cJSON_Compare(wt, ht, 1))
            fail_msg("%s: accepted at tier %s, expected %s", name, cJSON_PrintUnformatted(ht),
                     cJSON_PrintUnformatted(wt));
        const cJSON *we = cJSON_GetObjectItemCaseSensitive(x, "escalations");
        if (cJSON_IsNumber(we) && id) {
            int n = h_count(esc, "id", id);
            if (n != we->valueint)
                fail_msg("%s: %d escalation lines, expected %d", name, n, we->valueint);
            total_climbs += n;
        }
    }
    assert_int_equal(cJSON_GetArraySize(esc), total_climbs);
    assert_true(total_climbs > 0);
}

static void test_demo_batch_matches_expected_outcomes(void **state)
{
    (void)state;
    char *recs = h_srcpath("fixtures/demo/recordings.jsonl");
    char *log = h_tmp("mock.log");
    char *results = h_tmp("results.jsonl");
    char *escal = h_tmp("escalations.jsonl");
    char *errf = h_tmp("stderr");
    h_mock m;
    h_mock_start(&m, recs, log, NULL);
    int rc = run_demo(results, escal, errf);
    char *err = h_slurp(errf);
    if (rc != 0)
        fail_msg("cascade run exited %d:\n%s", rc, err);
    assert_non_null(strstr(err, "pass rate"));
    assert_non_null(strstr(err, "top tier only"));

    char *expf = h_srcpath("fixtures/demo/expected.jsonl");
    cJSON *expected = h_jsonl(expf);
    cJSON *got = h_jsonl(results);
    cJSON *esc = h_jsonl(escal);
    assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(expected));
    check_outcomes(expected, got, esc);

    /* Feedback: after a climb, a request to the next tier carries the failure. */
    cJSON *reqs = h_jsonl(log);
    const cJSON *e = cJSON_GetArrayItem(esc, 0);
    const char *eid = h_str(e, "id");
    const char *to = h_str(cJSON_GetObjectItem(e, "to"), "model");
    int found = 0;
    const cJSON *q;
    cJSON_ArrayForEach(q, reqs)
    {
        const char *t = h_str(q, "task"), *mo = h_str(q, "model");
        if (!t || strcmp(t, eid) || !mo || strcmp(mo, to))
            continue;
        char *body = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(q, "body"));
        found |= strstr(body, "Your answer failed the") != NULL;
        free(body);
    }
    if (!found)
        fail_msg("no request for %s to %s carried the feedback turn", eid, to);
    h_mock_stop(&m);

    /* A second run, on a fresh mock, gives the same result lines, timings aside. */
    char *results2 = h_tmp("results2.jsonl");
    char *escal2 = h_tmp("escalations2.jsonl");
    h_mock_start(&m, recs, NULL, NULL);
    assert_int_equal(run_demo(results2, escal2, errf), 0);
    h_mock_stop(&m);
    cJSON *got2 = h_jsonl(results2);
    int n1, n2;
    char **l1 = canonical_lines(got, &n1);
    char **l2 = canonical_lines(got2, &n2);
    assert_int_equal(n1, n2);
    for (int i = 0; i < n1; i++)
        if (strcmp(l1[i], l2[i]) != 0)
            fail_msg("the second run differs:\n%s\n%s", l1[i], l2[i]);
    for (int i = 0; i < n1; i++) {
        free(l1[i]);
        free(l2[i]);
    }
    free(l1);
    free(l2);
    cJSON_Delete(got2);
    cJSON_Delete(reqs);
    cJSON_Delete(expected);
    cJSON_Delete(got);
    cJSON_Delete(esc);
    free(recs);
    free(results2);
    free(escal2);
    free(expf);
    free(err);
    free(log);
    free(results);
    free(escal);
    free(errf);
}

/* Runs cascade on a one-task batch with the given models/cascade files. */
static int run_small(const char *models_text, const char *cascade_text, char **err)
{
    char *cdir = h_tmp("casc");
    mkdir(cdir, 0755);
    char *cf = h_tmp("casc/one.json");
    FILE *f = fopen(cf, "w");
    fputs(cascade_text, f);
    fclose(f);
    char *models = h_write("models-small.json", models_text);
    char *tasks =
        h_write("tasks-small.jsonl", "{\"id\":\"a\",\"kind\":\"classify\",\"prompt\":\"p\","
                                     "\"schema\":{\"type\":\"object\"}}\n");
    char *out = h_tmp("small-out.jsonl");
    char *errf = h_tmp("small-err");
    char *argv[] = {(char *)h_cascade_bin(),
                    "run",
                    tasks,
                    "--cascades",
                    cdir,
                    "--models",
                    models,
                    "-o",
                    out,
                    NULL};
    int rc = h_run(argv, NULL, errf, 60);
    *err = h_slurp(errf);
    free(cdir);
    free(cf);
    free(models);
    free(tasks);
    free(out);
    free(errf);
    return rc;
}

static const char *GOOD_CASCADE =
    "{\"name\":\"c\",\"match\":{\"kind\":\"classify\"},\"validators\":[\"schema\"],"
    "\"tiers\":[{\"model\":\"m\"}]}";

static void expect_startup_error(const char *models, const char *cascade, const char *part1,
                                 const char *part2)
{
    char *err;
    assert_int_equal(run_small(models, cascade, &err), 1);
    if (!strstr(err, part1) || (part2 && !strstr(err, part2)))
        fail_msg("startup error \"%s\" lacks \"%s\" / \"%s\"", err, part1, part2 ? part2 : "");
    free(err);
}

static void test_startup_errors_name_file_field_and_variable(void **state)
{
    (void)state;
    /* A models file that does not parse names the file and line. */
    expect_startup_error("{\"providers\": {,}\n", GOOD_CASCADE, "models-small.json",
                         "not valid JSON");
    /* An unknown model in a cascade names the cascade file and the field. */
    const char *models =
        "{\"providers\":{\"p\":{\"api\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\","
        "\"key_env\":\"CASCADE_TEST_UNSET_KEY\"}},\"models\":{\"m\":{\"provider\":\"p\","
        "\"input_usd_per_mtok\":1,\"output_usd_per_mtok\":2}}}";
    expect_startup_error(models,
                         "{\"name\":\"c\",\"validators\":[\"schema\"],"
                         "\"tiers\":[{\"model\":\"nope\"}]}",
                         "one.json", "tiers[0].model: unknown model \"nope\"");
    /* A missing key variable is named before any call. */
    unsetenv("CASCADE_TEST_UNSET_KEY");
    expect_startup_error(models, GOOD_CASCADE, "CASCADE_TEST_UNSET_KEY", NULL);
    /* An unset ${VAR} in a base_url is named too. */
    unsetenv("CASCADE_TEST_UNSET_URL");
    expect_startup_error("{\"providers\":{\"p\":{\"api\":\"openai\",\"base_url\":"
                         "\"${CASCADE_TEST_UNSET_URL}/v1\",\"key_env\":null}},"
                         "\"models\":{\"m\":{\"provider\":\"p\",\"input_usd_per_mtok\":1,"
                         "\"output_usd_per_mtok\":2}}}",
                         GOOD_CASCADE, "CASCADE_TEST_UNSET_URL", NULL);
}

static void test_usage_errors_exit_2_and_help_exits_0(void **state)
{
    (void)state;
    char *out = h_tmp("help-out");
    char *a1[] = {(char *)h_cascade_bin(), "run", "--help", NULL};
    assert_int_equal(h_run(a1, out, NULL, 10), 0);
    char *h = h_slurp(out);
    assert_non_null(strstr(h, "--escalations"));
    assert_non_null(strstr(h, "--concurrency"));
    free(h);
    char *a2[] = {(char *)h_cascade_bin(), "run", NULL};
    assert_int_equal(h_run(a2, NULL, NULL, 10), 2);
    char *a3[] = {(char *)h_cascade_bin(), "frobnicate", NULL};
    assert_int_equal(h_run(a3, NULL, NULL, 10), 2);
    char *a4[] = {(char *)h_cascade_bin(), "run", "x", "--concurrency", "0", NULL};
    assert_int_equal(h_run(a4, NULL, NULL, 10), 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_batch_matches_expected_outcomes),
        cmocka_unit_test(test_startup_errors_name_file_field_and_variable),
        cmocka_unit_test(test_usage_errors_exit_2_and_help_exits_0),
    };
    return cmocka_run_group_tests_name("e2e", tests, h_group_setup, h_group_teardown);
}
