/*
 * End-to-end tests of `cascade validate`: the real binary on task and answer
 * files, asserting the exit status (0 pass, 1 fail, 2 usage) and the verdict
 * JSON it prints, field by field.
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
#include "validators/val.h"

static const char *py_task =
    "{\"id\": \"T1\", \"kind\": \"code\", \"language\": \"python\","
    " \"files\": {\"solution.py\": \"import math\\n\"},"
    " \"tests\": {\"files\": {\"test_solution.py\": \"from solution import area\\n"
    "assert abs(area(2) - 12.566) < 1e-2, area(2)\\n\"},"
    " \"command\": [\"python3\", \"test_solution.py\"]}}";

/* Runs `cascade validate ARGS...` with stdin from `in` (NULL: /dev/null); returns the status. */
static int validate(const char *in, const char *args, cJSON **verdict, char **err_text)
{
    char *out = h_tmp("validate.out");
    char *err = h_tmp("validate.err");
    char *inpath = in ? h_write("validate.in", in) : NULL;
    char *cmd = NULL;
    if (asprintf(&cmd, "exec '%s' validate %s < %s", h_cascade_bin(), args,
                 inpath ? inpath : "/dev/null") < 0)
        fail();
    char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    int st = h_run(argv, out, err, 60);
    char *text = h_slurp(out);
    *verdict = cJSON_Parse(text);
    /* One line of JSON, or nothing. */
    if (text[0])
        assert_non_null(strchr(text, '\n'));
    if (err_text)
        *err_text = h_slurp(err);
    free(text);
    free(cmd);
    free(out);
    free(err);
    free(inpath);
    return st;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay ? hay : "(null)");
}

static void passing_answer_exits_0_with_pass_and_validators_by_kind(void **state)
{
    (void)state;
    char *task = h_write("task.json", py_task);
    char *args = NULL;
    cJSON *v;
    assert_true(asprintf(&args, "--task %s -", task) > 0);
    int st = validate("Sure:\n```python\ndef area(r):\n    return math.pi * r * r\n```\n", args, &v,
                      NULL);
    assert_int_equal(st, 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(v, "pass")));
    assert_null(cJSON_GetObjectItem(v, "reason"));
    char *names = cJSON_PrintUnformatted(cJSON_GetObjectItem(v, "validators"));
    assert_string_equal(names, "[\"syntax\",\"compile\",\"tests\"]");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(v, "elapsed_ms")));
    free(names);
    cJSON_Delete(v);
    free(args);
    free(task);
}

static void failing_answer_exits_1_with_reason_and_evidence(void **state)
{
    (void)state;
    char *task = h_write("task.json", py_task);
    char *ans = h_write("answer.md", "```python\ndef area(r):\n    return math.pi * r\n```\n");
    char *args = NULL;
    cJSON *v;
    assert_true(asprintf(&args, "--task %s %s", task, ans) > 0);
    assert_int_equal(validate(NULL, args, &v, NULL), 1);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(v, "pass")));
    assert_string_equal(h_str(v, "validator"), "tests");
    assert_string_equal(h_str(v, "reason"), "failed");
    assert_contains(h_str(v, "message"), "AssertionError: 6.28");
    assert_contains(h_str(v, "evidence"), "test_solution.py");
    cJSON_Delete(v);
    free(args);

    /* A syntax error stops the chain before anything is run. */
    assert_true(asprintf(&args, "--task %s -", task) > 0);
    assert_int_equal(validate("def area(r:\n    return 1\n", args, &v, NULL), 1);
    assert_string_equal(h_str(v, "validator"), "syntax");
    assert_string_equal(h_str(v, "reason"), "syntax_error");
    assert_contains(h_str(v, "evidence"), "line 1:");
    cJSON_Delete(v);
    free(args);
    free(ans);
    free(task);
}

static void validators_option_and_cascade_pick_the_chain(void **state)
{
    (void)state;
    char *task = h_write("task.json", py_task);
    char *args = NULL;
    cJSON *v;
    /* The wrong answer passes when only syntax and compile run. */
    assert_true(asprintf(&args, "--task %s --validators syntax,compile -", task) > 0);
    assert_int_equal(validate("def area(r):\n    return r\n", args, &v, NULL), 0);
    char *names = cJSON_PrintUnformatted(cJSON_GetObjectItem(v, "validators"));
    assert_string_equal(names, "[\"syntax\",\"compile\"]");
    free(names);
    cJSON_Delete(v);
    free(args);

    /* A cascade's compile map reaches the compile validator. */
    char *cascade = h_write("c.json", "{\"validators\": [\"compile\"], \"compile\": {\"py\":"
                                      " [\"python3\", \"-c\", \"raise SystemExit('strict')\"]}}");
    assert_true(asprintf(&args, "--task %s --cascade %s -", task, cascade) > 0);
    assert_int_equal(validate("x = 1\n", args, &v, NULL), 1);
    assert_string_equal(h_str(v, "reason"), "compile_error");
    assert_contains(h_str(v, "message"), "strict");
    cJSON_Delete(v);
    free(args);
    free(cascade);
    free(task);
}

static void missing_compiler_is_listed_as_skipped(void **state)
{
    (void)state;
    char *task = h_write("ts.json", "{\"id\": \"TS\", \"kind\": \"code\", \"language\": \"ts\","
                                    " \"tests\": {\"command\": [\"true\"]}}");
    char *args = NULL;
    cJSON *v;
    assert_true(asprintf(&args, "--task %s -", task) > 0);
    assert_int_equal(validate("let a: number = 1;\n", args, &v, NULL), 0);
    const cJSON *skipped = cJSON_GetObjectItem(v, "skipped");
    char *validators = cJSON_PrintUnformatted(cJSON_GetObjectItem(v, "validators"));
    char why[256];
    if (val_compile_available("ts", NULL, why, sizeof why)) {
        /* tsc is installed here: compile ran. */
        assert_null(skipped);
    } else {
        assert_string_equal(validators, "[\"syntax\",\"tests\"]");
        assert_string_equal(h_str(cJSON_GetArrayItem(skipped, 0), "validator"), "compile");
        assert_contains(h_str(cJSON_GetArrayItem(skipped, 0), "why"), "tsc");
    }
    free(validators);
    cJSON_Delete(v);
    free(args);
    free(task);
}

static void lang_mode_checks_a_source_file_as_it_is(void **state)
{
    (void)state;
    cJSON *v;
    /* A source file with ``` inside a string is parsed whole, not as a fenced answer. */
    char *file = h_write("x.py", "s = '''\n```\nnot code\n```\n'''\nprint(s)\n");
    char *args = NULL;
    assert_true(asprintf(&args, "--lang py %s", file) > 0);
    assert_int_equal(validate(NULL, args, &v, NULL), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(v, "pass")));
    cJSON_Delete(v);
    free(args);
    assert_int_equal(validate("int main( {\n", "--lang c++ -", &v, NULL), 1);
    assert_string_equal(h_str(v, "reason"), "syntax_error");
    cJSON_Delete(v);
    free(file);
}

static void usage_errors_exit_2_without_a_verdict(void **state)
{
    (void)state;
    char *task = h_write("task.json", py_task);
    char *bad = h_write("bad.json", "[1, 2");
    static const char *const cases[][2] = {
        {"", "give --task"},
        {"--lang cobol -", "no grammar"},
        {"--lang py", "give --task"},
        {"--task /nonexistent/task.json -", "cannot read the task"},
        {"--task BAD -", "not a JSON object"},
        {"--task TASK --validators nope -", "unknown validator \"nope\""},
        {"--task TASK --timeout 0 -", "bad value"},
        {"--lang py --validators syntax -", "--lang runs syntax alone"},
        {"--bogus", "usage:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char args[512];
        const char *a = cases[i][0];
        const char *t = strstr(a, "TASK");
        const char *b = strstr(a, "BAD");
        if (t)
            snprintf(args, sizeof args, "%.*s%s%s", (int)(t - a), a, task, t + 4);
        else if (b)
            snprintf(args, sizeof args, "%.*s%s%s", (int)(b - a), a, bad, b + 3);
        else
            snprintf(args, sizeof args, "%s", a);
        cJSON *v;
        char *err;
        int st = validate("x = 1\n", args, &v, &err);
        if (st != 2)
            fail_msg("\"%s\": exit %d, expected 2 (%s)", args, st, err);
        assert_null(v);
        assert_contains(err, cases[i][1]);
        free(err);
    }
    cJSON *v;
    assert_int_equal(validate(NULL, "--help", &v, NULL), 0);
    free(bad);
    free(task);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(passing_answer_exits_0_with_pass_and_validators_by_kind),
        cmocka_unit_test(failing_answer_exits_1_with_reason_and_evidence),
        cmocka_unit_test(validators_option_and_cascade_pick_the_chain),
        cmocka_unit_test(missing_compiler_is_listed_as_skipped),
        cmocka_unit_test(lang_mode_checks_a_source_file_as_it_is),
        cmocka_unit_test(usage_errors_exit_2_without_a_verdict),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
