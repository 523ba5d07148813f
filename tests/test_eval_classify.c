/*
 * `make eval-classify`'s converter and a replay of what it writes, on the
 * tiny synthetic RouterBench-shaped CSVs of fixtures/eval/classify (its
 * README says what each row holds): the gold derived from the scores, the
 * split row merged, the row without gold left out, the real costs carried as
 * cost_usd; then `cascade replay` of one model alone, the format-only chain
 * and an agreement plan, with their accuracy and cost worked out by hand.
 *
 * Needs CASCADE_BIN, SRC_DIR (set by `make test`) and python3.
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
#include <sys/stat.h>

#include "harness.h"
#include "lib/util.h"

/* One call at the fixture's prices: 500 prompt tokens and 1 completion token. */
#define CALL(in, out) ((500.0 * (in) + (out)) / 1e6)

static char *conv_dir; /* the converter's output, shared by the tests; owned */

static double num(const cJSON *o, const char *k)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(f))
        fail_msg("no number %s in %s", k, cJSON_PrintUnformatted(o));
    return f->valuedouble;
}

static char *path_in(const char *rel)
{
    return wk_xasprintf("%s/%s", conv_dir, rel);
}

static int group_setup(void **state)
{
    if (h_group_setup(state))
        return -1;
    conv_dir = h_tmp("ec");
    char *conv = h_srcpath("tools/classify/convert.py");
    char *make = h_srcpath("fixtures/eval/classify/make_fixture.py");
    char *data = h_tmp("ec-data");
    char *errf = h_tmp("convert.err");
    /* The synthetic CSVs are written at test time: they carry the real files' names. */
    mkdir(data, 0755);
    /* h_run does not search PATH; python3 is a Debian package of DEB_PKGS. */
    char *mk[] = {"/usr/bin/python3", make, data, NULL};
    char *argv[] = {"/usr/bin/python3", conv, data, conv_dir, NULL};
    int rc = h_run(mk, NULL, errf, 60);
    if (rc == 0)
        rc = h_run(argv, NULL, errf, 60);
    if (rc != 0) {
        char *err = h_slurp(errf);
        fprintf(stderr, "convert.py exited %d:\n%s\n", rc, err);
        free(err);
    }
    free(conv);
    free(make);
    free(data);
    free(errf);
    return rc == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    free(conv_dir);
    return h_group_teardown(state);
}

static void test_convert_gold_merge_and_costs(void **state)
{
    (void)state;
    char *p = path_in("convert.json");
    char *text = h_slurp(p);
    cJSON *sum = cJSON_Parse(text);
    assert_non_null(sum);
    const cJSON *arc = cJSON_GetObjectItemCaseSensitive(sum, "arc");
    assert_int_equal((int)num(arc, "rows"), 6);
    assert_int_equal((int)num(arc, "tasks"), 4);
    assert_int_equal((int)num(arc, "merged_rows"), 1);
    assert_int_equal((int)num(arc, "no_gold"), 1);
    assert_int_equal((int)num(arc, "recordings"), 44);
    assert_int_equal((int)num(cJSON_GetObjectItemCaseSensitive(sum, "wino"), "tasks"), 2);
    cJSON_Delete(sum);
    free(text);
    free(p);

    p = path_in("arc/tasks.jsonl");
    cJSON *tasks = h_jsonl(p);
    free(p);
    assert_int_equal(cJSON_GetArraySize(tasks), 4);
    const char *gold[][2] = {{"arc/arc-challenge.test.1", "C"},
                             {"arc/arc-challenge.test.2", "A"},
                             {"arc/arc-challenge.test.3", "D"},
                             {"arc/arc-challenge.test.5", "B"}};
    for (size_t i = 0; i < sizeof gold / sizeof gold[0]; i++) {
        const cJSON *t = h_find(tasks, "id", gold[i][0]);
        if (!t)
            fail_msg("no task %s", gold[i][0]);
        assert_string_equal(h_str(t, "gold"), gold[i][1]);
        assert_string_equal(h_str(t, "kind"), "classify");
    }
    /* q5's options are A-C although its prompt says A-D: the enum follows the options. */
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(h_find(tasks, "id", "arc/arc-challenge.test.5"), "schema"),
        "enum");
    assert_int_equal(cJSON_GetArraySize(en), 3);
    assert_null(h_find(tasks, "id", "arc/arc-challenge.test.4"));
    cJSON_Delete(tasks);

    /*
     * q3's recordings come from the row with ten scores (single costs), the
     * answers untouched; gpt-3.5's score from the other row.
     */
    p = path_in("arc/recordings.jsonl");
    cJSON *recs = h_jsonl(p);
    free(p);
    int seen = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, recs)
    {
        if (strcmp(h_str(r, "task"), "arc/arc-challenge.test.3") != 0)
            continue;
        if (strcmp(h_str(r, "model"), "mistral-7b") == 0) {
            assert_true(fabs(num(r, "cost_usd") - CALL(0.2, 0.2)) < 1e-12);
            assert_string_equal(h_str(r, "answer"), "C");
            seen++;
        }
        if (strcmp(h_str(r, "model"), "gpt-3.5-turbo") == 0) {
            assert_true(fabs(num(r, "routerbench_score") - 1.0) < 1e-12);
            seen++;
        }
    }
    assert_int_equal(seen, 2);
    cJSON_Delete(recs);
}

static void test_replay_single_format_only_and_agreement(void **state)
{
    (void)state;
    char *tasks = path_in("arc/tasks.jsonl"), *recs = path_in("arc/recordings.jsonl");
    char *single = path_in("cascades/mistral-7b_x1.json");
    char *fmt = path_in("cascades/format-only.json");
    char *agree = path_in("cascades/agree-mixtral-8x7b+yi-34b-2.json");
    char *outd = h_tmp("rp"), *table = h_tmp("rp-table.json"), *errf = h_tmp("rp.err");
    char *argv[] = {(char *)h_cascade_bin(),
                    "replay",
                    "--tasks",
                    tasks,
                    "--recordings",
                    recs,
                    "--cascade",
                    single,
                    "--cascade",
                    fmt,
                    "--cascade",
                    agree,
                    "--out-dir",
                    outd,
                    "--table",
                    table,
                    NULL};
    int rc = h_run(argv, NULL, errf, 120);
    if (rc != 0) {
        char *err = h_slurp(errf);
        fail_msg("replay exited %d:\n%s", rc, err);
    }
    /* The table rounds costs to a millionth of a dollar; a call here costs at least 100 of them. */
    char *text = h_slurp(table);
    cJSON *rows = cJSON_Parse(text);
    assert_true(cJSON_IsArray(rows));
    assert_int_equal(cJSON_GetArraySize(rows), 3);

    /*
     * mistral alone: q2 right; q1 and q3 wrong letters; q5's "D" is no
     * option, so no label: 1 of 4.
     */
    const cJSON *row = h_find(rows, "plan", "mistral-7b*1");
    assert_non_null(row);
    assert_true(fabs(num(row, "accuracy") - 0.25) < 1e-9);
    assert_true(fabs(num(row, "cost_usd") - 4 * CALL(0.2, 0.2)) < 1e-6);

    /* Format only: mistral's letters stand; q5 climbs to gpt-3.5 ("B."): 2 of 4. */
    row = h_find(rows, "plan", "format-only:mistral-7b>gpt-3.5-turbo>gpt-4");
    assert_non_null(row);
    assert_true(fabs(num(row, "accuracy") - 0.5) < 1e-9);
    assert_true(fabs(num(row, "cost_usd") - (4 * CALL(0.2, 0.2) + CALL(1.0, 2.0))) < 1e-6);

    /*
     * mixtral and yi agree on q1 (C) and q5 (B); they differ on q2 and q3,
     * which climb to gpt-4: 4 of 4, both paid on every question.
     */
    row = h_find(rows, "plan", "mixtral-8x7b+yi-34b:2>gpt-4");
    assert_non_null(row);
    assert_true(fabs(num(row, "accuracy") - 1.0) < 1e-9);
    assert_true(fabs(num(row, "cost_usd") -
                     (4 * (CALL(0.6, 0.6) + CALL(0.8, 0.8)) + 2 * CALL(10.0, 30.0))) < 1e-6);
    cJSON_Delete(rows);
    free(text);

    /* The climbs say why: q5's "D" named no option; q2 and q3 disagreed (both models paid). */
    char *f = wk_xasprintf("%s/format-only_mistral-7b--gpt-3.5-turbo--gpt-4.esc.jsonl", outd);
    cJSON *esc = h_jsonl(f);
    free(f);
    assert_int_equal(cJSON_GetArraySize(esc), 1);
    assert_string_equal(h_str(cJSON_GetArrayItem(esc, 0), "reason"), "no_label");
    cJSON_Delete(esc);
    f = wk_xasprintf("%s/mixtral-8x7b_yi-34b_2--gpt-4.esc.jsonl", outd);
    esc = h_jsonl(f);
    free(f);
    assert_int_equal(cJSON_GetArraySize(esc), 2);
    const cJSON *e;
    cJSON_ArrayForEach(e, esc)
    {
        assert_string_equal(h_str(e, "reason"), "disagreement");
    }
    assert_non_null(h_find(esc, "id", "arc/arc-challenge.test.2"));
    assert_non_null(h_find(esc, "id", "arc/arc-challenge.test.3"));
    cJSON_Delete(esc);
    f = wk_xasprintf("%s/mixtral-8x7b_yi-34b_2--gpt-4.jsonl", outd);
    cJSON *res = h_jsonl(f);
    free(f);
    const cJSON *q3 = h_find(res, "id", "arc/arc-challenge.test.3");
    assert_non_null(q3);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(q3, "attempts")), 3);
    assert_string_equal(h_str(q3, "label"), "D");
    assert_string_equal(h_str(q3, "model"), "gpt-4");
    cJSON_Delete(res);
    free(tasks);
    free(recs);
    free(single);
    free(fmt);
    free(agree);
    free(outd);
    free(table);
    free(errf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convert_gold_merge_and_costs),
        cmocka_unit_test(test_replay_single_format_only_and_agreement),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
