/*
 * `cascade check` (issue 15, item 4): planted errors in cascade files, the
 * models file and a tasks file, each reported with its file, line and field;
 * the warnings (no price, an unset key variable, a prompt over a tier's
 * context); nothing is called (no server runs in this test).
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

static const char *MODELS =
    "{\n"
    "  \"providers\": {\n"
    "    \"cloud\": {\"api\": \"openai\", \"base_url\": \"http://x/v1\",\n"
    "              \"key_env\": \"CASCADE_TEST_UNSET_KEY\"}\n"
    "  },\n"
    "  \"models\": {\n"
    "    \"cheap\": {\"provider\": \"cloud\", \"context\": 50,\n"
    "              \"input_usd_per_mtok\": 1, \"output_usd_per_mtok\": 2},\n"
    "    \"free\": {\"provider\": \"cloud\", \"input_usd_per_mtok\": 0,\n"
    "             \"output_usd_per_mtok\": 0}\n"
    "  }\n"
    "}\n";

/* Runs check; stdout to *out (caller frees); returns the exit status. */
static int check(const char *dir, const char *models, const char *tasks, char **out)
{
    char *of = h_tmp("check.out");
    const char *argv[] = {h_cascade_bin(), "check", "--cascades", dir,
                          "--models",      models,  tasks,        NULL};
    int rc = h_run((char *const *)argv, of, NULL, 30);
    *out = h_slurp(of);
    free(of);
    return rc;
}

static void expect(const char *out, const char *line)
{
    if (!strstr(out, line))
        fail_msg("missing \"%s\" in:\n%s", line, out);
}

static void test_planted_errors_are_reported_with_file_line_and_field(void **state)
{
    (void)state;
    unsetenv("CASCADE_TEST_UNSET_KEY");
    char *models = h_write("models.json", MODELS), *dir = h_tmp("cascades"), *out = NULL;
    assert_int_equal(mkdir(dir, 0700), 0);
    free(h_write("cascades/a.json", "{\n"
                                    "  \"name\": \"a\",\n"
                                    "  \"validators\": [\"schema\"],\n"
                                    "  \"tiers\": [{\"model\": \"cheap\"},\n"
                                    "            {\"model\": \"nosuch\"}]\n"
                                    "}\n"));
    free(h_write("cascades/b.json", "{\n"
                                    "  \"name\": \"b\",\n"
                                    "  \"validators\": [\n"
                                    "    \"bogus\"\n"
                                    "  ],\n"
                                    "  \"tiers\": [{\"model\": \"cheap\"}]\n"
                                    "}\n"));
    free(h_write("cascades/c.json", "{\n"
                                    "  \"name\": \"c\",\n"
                                    "  \"tiers\": [{\"model\": \"cheap\"} {\"model\": \"free\"}]\n"
                                    "}\n"));
    assert_int_equal(check(dir, models, NULL, &out), 1);
    char *a = h_tmp("cascades/a.json"), *b = h_tmp("cascades/b.json"),
         *c = h_tmp("cascades/c.json");
    char *want = wk_xasprintf("%s:5: error: tiers[1].model: unknown model \"nosuch\"", a);
    expect(out, want);
    free(want);
    want = wk_xasprintf("%s:4: error: validators[0]: unknown validator \"bogus\"", b);
    expect(out, want);
    free(want);
    want = wk_xasprintf("%s:3: error: not valid JSON", c);
    expect(out, want);
    free(want);
    expect(out, "cascade check: 3 errors, 0 warnings");
    free(out);

    /* Fixed, the set loads: the warnings are left, and the tasks are checked. */
    free(h_write("cascades/a.json",
                 "{\"name\": \"a\", \"validators\": [\"schema\"],\n"
                 " \"tiers\": [{\"model\": \"cheap\"}, {\"model\": \"free\"}]}\n"));
    free(h_write("cascades/b.json",
                 "{\"name\": \"b\", \"validators\": [], \"tiers\": [{\"model\": \"free\"}]}\n"));
    free(h_write("cascades/c.json",
                 "{\"name\": \"c\", \"validators\": [], \"tiers\": [{\"model\": \"free\"}]}\n"));
    wk_buf t;
    wk_buf_init(&t, 1 << 20);
    wk_buf_appendf(
        &t, "{\"id\":\"ok\",\"kind\":\"json\",\"cascade\":\"a\",\"schema\":{},\"prompt\":\"p\"}\n");
    wk_buf_appendf(&t, "{\"id\":\"np\",\"kind\":\"json\",\"cascade\":\"a\"}\n");
    wk_buf_appendf(
        &t, "{\"id\":\"ok\",\"kind\":\"json\",\"cascade\":\"a\",\"schema\":{},\"prompt\":\"p\"}\n");
    wk_buf_appendf(
        &t, "{\"id\":\"big\",\"kind\":\"json\",\"cascade\":\"a\",\"schema\":{},\"prompt\":\"");
    for (int i = 0; i < 400; i++)
        wk_buf_appendf(&t, "x");
    wk_buf_appendf(&t, "\"}\n");
    wk_buf_appendf(&t, "{\"id\":\"uc\",\"kind\":\"json\",\"cascade\":\"zz\",\"prompt\":\"p\"}\n");
    char *tasks = h_write("tasks.jsonl", t.buf);
    assert_int_equal(check(dir, models, tasks, &out), 1);
    want = wk_xasprintf("%s:9: warning: models.free: no price", models);
    expect(out, want);
    free(want);
    want = wk_xasprintf("%s:4: warning: providers.cloud.key_env: $CASCADE_TEST_UNSET_KEY is not "
                        "set",
                        models);
    expect(out, want);
    free(want);
    want = wk_xasprintf("%s:2: error: task np: task has no \"prompt\"", tasks);
    expect(out, want);
    free(want);
    want = wk_xasprintf("%s:3: error: task ok: this id was used by an earlier line", tasks);
    expect(out, want);
    free(want);
    want = wk_xasprintf("%s:4: warning: prompt: prompt of about 100 tokens is over the 50-token "
                        "context of cascade a tier 0 (cheap)",
                        tasks);
    expect(out, want);
    free(want);
    want = wk_xasprintf("%s:5: error: task uc: unknown cascade \"zz\"", tasks);
    expect(out, want);
    free(want);
    expect(out, "cascade check: 3 errors, 3 warnings");
    free(out);

    /* An error in the models file is reported once, at its field. */
    char *bad = h_write("bad-models.json", "{\n  \"providers\": {\n    \"cloud\": {\n"
                                           "      \"api\": \"openai\"\n    }\n  },\n"
                                           "  \"models\": {}\n}\n");
    assert_int_equal(check(dir, bad, NULL, &out), 1);
    want = wk_xasprintf("%s:3: error: providers.cloud.base_url is missing", bad);
    expect(out, want);
    free(want);
    expect(out, "cascade check: 1 error, 0 warnings");
    free(out);

    /* No tasks, a clean set: exit 0 with the warnings only. */
    setenv("CASCADE_TEST_UNSET_KEY", "k", 1);
    assert_int_equal(check(dir, models, NULL, &out), 0);
    expect(out, "cascade check: 0 errors, 1 warning");
    free(out);
    wk_buf_release(&t);
    free(tasks);
    free(bad);
    free(a);
    free(b);
    free(c);
    free(dir);
    free(models);
}

/*
 * A task whose data_class the cascade's policy does not name is an error (run
 * would end it policy_denied); a line over the 16 MiB cap is reported without
 * reading it whole: under a 300 MB address-space limit a 600 MB line on stdin
 * is still named, where an unbounded getline ran out of memory and the check
 * ended early saying "0 errors".
 */
static void test_unknown_data_class_and_an_oversized_line_are_errors(void **state)
{
    (void)state;
    setenv("CASCADE_TEST_UNSET_KEY", "k", 1);
    char *models = h_write("dc-models.json", MODELS), *dir = h_tmp("dc-cascades"), *out = NULL;
    assert_int_equal(mkdir(dir, 0700), 0);
    free(h_write("dc-cascades/a.json",
                 "{\"name\": \"a\", \"validators\": [], \"tiers\": [{\"model\": \"free\"}],\n"
                 " \"data_policy\": {\"internal\": []}}\n"));
    char *tasks = h_write("dc-tasks.jsonl", "{\"id\":\"k\",\"kind\":\"json\",\"prompt\":\"p\","
                                            "\"data_class\":\"internal\"}\n"
                                            "{\"id\":\"u\",\"kind\":\"json\",\"prompt\":\"p\","
                                            "\"data_class\":\"secret\"}\n");
    assert_int_equal(check(dir, models, tasks, &out), 1);
    char *want =
        wk_xasprintf("%s:2: error: data_class: task u: unknown data class \"secret\"", tasks);
    expect(out, want);
    free(want);
    expect(out, "cascade check: 1 error,");
    free(out);
#if !defined(__SANITIZE_ADDRESS__)
    char *of = h_tmp("dc-big.out");
    char *script = wk_xasprintf("ulimit -v 300000; head -c 600000000 /dev/zero | tr '\\0' x | "
                                "'%s' check --cascades '%s' --models '%s' -",
                                h_cascade_bin(), dir, models);
    const char *argv[] = {"/bin/sh", "-c", script, NULL};
    assert_int_equal(h_run((char *const *)argv, of, NULL, 120), 1);
    out = h_slurp(of);
    expect(out, "-:1: error: line over 16 MiB: run takes it as invalid_task");
    free(out);
    free(script);
    free(of);
#endif
    free(tasks);
    free(dir);
    free(models);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planted_errors_are_reported_with_file_line_and_field),
        cmocka_unit_test(test_unknown_data_class_and_an_oversized_line_are_errors),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
