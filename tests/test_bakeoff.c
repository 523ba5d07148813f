/*
 * `cascade bakeoff` against mock-llm serving fixtures/eval/replay (its README
 * has each recorded run's outcome). Two models, three runs: cheap passes 1, 2
 * and 1 of the 4 tasks, dear 3, 3 and 4, so the table is known by hand; the
 * recordings the bake-off writes must be the mock's own answers, and replay
 * on them must give the same pass rates. The blind review page is rendered
 * in headless Chromium, scored through the DOM by a script the test adds,
 * exported, and unblinded into the table.
 *
 * Needs CASCADE_BIN, MOCK_BIN and SRC_DIR (set by `make test`) and
 * /usr/bin/chromium (Debian's chromium, in DEB_PKGS).
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

#define CHROMIUM "/usr/bin/chromium"

static const char models_json[] =
    "{\"providers\": {\"recorded\": {\"api\": \"openai\", \"base_url\": \"${MOCK_URL}/v1\", "
    "\"key_env\": null}},\n"
    " \"models\": {\"cheap\": {\"provider\": \"recorded\", \"input_usd_per_mtok\": 1.0, "
    "\"output_usd_per_mtok\": 1.0, \"context\": 0, \"max_tokens\": 1000},\n"
    "  \"dear\": {\"provider\": \"recorded\", \"input_usd_per_mtok\": 10.0, "
    "\"output_usd_per_mtok\": 10.0, \"context\": 0, \"max_tokens\": 1000}}}\n";

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v))
        fail_msg("no number \"%s\"", k);
    return v->valuedouble;
}

/* Runs a bake-off of cheap and dear into dir against a fresh mock; extra: more options. */
static void bake(const char *dir, const char *runs, const char *const *extra, const char *log)
{
    char *recs = h_srcpath("fixtures/eval/replay/recordings.jsonl");
    char *tasks = h_srcpath("fixtures/eval/replay/tasks.jsonl");
    char *models = h_write("bake-models.json", models_json);
    char *out = h_tmp("bake.out"), *err = h_tmp("bake.err");
    h_mock m;
    h_mock_start(&m, recs, log, NULL);
    char *argv[40] = {(char *)h_cascade_bin(),
                      "bakeoff",
                      "--tasks",
                      tasks,
                      "--models",
                      "cheap,dear",
                      "--runs",
                      (char *)runs,
                      "--models-file",
                      models,
                      "-o",
                      (char *)dir,
                      "--sandboxes",
                      "2"};
    int n = 14;
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    int rc = h_run(argv, out, err, 240);
    h_mock_stop(&m);
    if (rc != 0) {
        char *e = h_slurp(err);
        fail_msg("bakeoff exited %d:\n%s", rc, e);
    }
    free(recs);
    free(tasks);
    free(models);
    free(out);
    free(err);
}

static char *in_dir(const char *dir, const char *name)
{
    return wk_xasprintf("%s/%s", dir, name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "task model run answer finish" per line, sorted: two recordings files compared as sets. */
static char *recording_keys(const char *path)
{
    cJSON *lines = h_jsonl(path);
    int n = cJSON_GetArraySize(lines);
    char **keys = calloc((size_t)n + 1, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const cJSON *l = cJSON_GetArrayItem(lines, i);
        const char *fin = cJSON_GetObjectItemCaseSensitive(l, "finish_reason")
                              ? h_str(l, "finish_reason")
                              : "stop";
        keys[i] = wk_xasprintf("%s|%s|%g|%s|%s", h_str(l, "task"), h_str(l, "model"), num(l, "run"),
                               h_str(l, "answer"), fin);
    }
    qsort(keys, (size_t)n, sizeof(char *), cmp_str);
    wk_buf b;
    wk_buf_init(&b, 1u << 24);
    for (int i = 0; i < n; i++) {
        wk_buf_appendf(&b, "%s\n", keys[i]);
        free(keys[i]);
    }
    free(keys);
    cJSON_Delete(lines);
    return wk_buf_detach(&b, NULL);
}

static void test_bakeoff_against_the_mock_gives_the_known_table(void **state)
{
    (void)state;
    char *dir = h_tmp("bake1");
    char *log = h_tmp("bake1-mock.log");
    const char *extra[] = {"--target", "0.8", NULL};
    bake(dir, "3", extra, log);

    /* Every model was called on every task three times, no more. */
    cJSON *calls = h_jsonl(log);
    assert_int_equal(cJSON_GetArraySize(calls), 2 * 4 * 3);
    assert_int_equal(h_count(calls, "model", "cheap"), 12);
    cJSON_Delete(calls);

    char *tpath = in_dir(dir, "table.json");
    char *text = h_slurp(tpath);
    cJSON *t = cJSON_Parse(text);
    assert_int_equal(cJSON_GetArraySize(t), 2);
    const cJSON *cheap = h_find(t, "model", "cheap"), *dear = h_find(t, "model", "dear");
    assert_non_null(cheap);
    assert_non_null(dear);
    /* cheap: 1, 2, 1 of 4 -> 0.3333 ± 0.1443; 4 calls at $0.002 a run; $0.024 over 4 solved. */
    assert_true(fabs(num(cheap, "pass_rate") - 0.333333) < 1e-6);
    assert_true(fabs(num(cheap, "pass_rate_sd") - 0.144338) < 1e-6);
    assert_true(fabs(num(cheap, "cost_usd") - 0.008) < 1e-9);
    assert_int_equal((int)num(cheap, "solved"), 4);
    assert_true(fabs(num(cheap, "cost_per_solved_usd") - 0.006) < 1e-9);
    /* dear: 3, 3, 4 of 4 -> 0.8333 ± 0.1443; $0.08 a run; $0.24 over 10 solved. */
    assert_true(fabs(num(dear, "pass_rate") - 0.833333) < 1e-6);
    assert_true(fabs(num(dear, "cost_usd") - 0.08) < 1e-9);
    assert_int_equal((int)num(dear, "solved"), 10);
    assert_true(fabs(num(dear, "cost_per_solved_usd") - 0.024) < 1e-9);
    assert_true(num(dear, "latency_ms_mean") >= 0);
    char *rpath = in_dir(dir, "report.txt");
    char *report = h_slurp(rpath);
    assert_non_null(strstr(report, "0.833 ± 0.144"));
    assert_non_null(strstr(report, "$0.024000"));

    /* The recordings are what the mock served: the same 24 answers, run for run. */
    char *fixture = h_srcpath("fixtures/eval/replay/recordings.jsonl");
    char *rec = in_dir(dir, "recordings.jsonl");
    char *want = recording_keys(fixture), *got = recording_keys(rec);
    assert_string_equal(got, want);

    /* Replayed offline as single-model plans, they give the table's pass rates. */
    char *tasks = h_srcpath("fixtures/eval/replay/tasks.jsonl");
    char *models = h_srcpath("fixtures/eval/replay/models.json");
    char *rtable = h_tmp("bake1-replay.json"), *rerr = h_tmp("bake1-replay.err");
    char *argv[] = {(char *)h_cascade_bin(),
                    "replay",
                    "--tasks",
                    tasks,
                    "--recordings",
                    rec,
                    "--models",
                    models,
                    "--plan",
                    "cheap",
                    "--plan",
                    "dear",
                    "--runs",
                    "3",
                    "--table",
                    rtable,
                    NULL};
    assert_int_equal(h_run(argv, NULL, rerr, 120), 0);
    char *rt = h_slurp(rtable);
    cJSON *r = cJSON_Parse(rt);
    assert_true(fabs(num(h_find(r, "plan", "cheap"), "pass_rate") - num(cheap, "pass_rate")) <
                1e-9);
    assert_true(fabs(num(h_find(r, "plan", "dear"), "pass_rate") - num(dear, "pass_rate")) < 1e-9);
    assert_true(fabs(num(h_find(r, "plan", "dear"), "cost_usd") - num(dear, "cost_usd")) < 1e-9);

    /* --target: tune ran on the bake-off's results and wrote its plan and figures. */
    char *tune = in_dir(dir, "tune.json"), *tuned = in_dir(dir, "tuned.json");
    char *tj = h_slurp(tune);
    cJSON *tu = cJSON_Parse(tj);
    assert_non_null(tu);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tu, "met")));
    assert_int_equal(access(tuned, R_OK), 0);

    /* Started again into the same directory, it resumes from the journals: no new call. */
    bake(dir, "3", NULL, log);
    calls = h_jsonl(log);
    assert_int_equal(cJSON_GetArraySize(calls), 2 * 4 * 3);
    cJSON_Delete(calls);
    char *again = h_slurp(tpath);
    cJSON *t2 = cJSON_Parse(again);
    assert_true(fabs(num(h_find(t2, "model", "dear"), "pass_rate") - 0.833333) < 1e-6);
    assert_int_equal((int)num(h_find(t2, "model", "cheap"), "solved"), 4);
    char *got2 = recording_keys(rec);
    assert_string_equal(got2, want);
    free(got2);
    cJSON_Delete(t2);
    free(again);

    cJSON_Delete(tu);
    free(tj);
    free(tune);
    free(tuned);
    cJSON_Delete(r);
    free(rt);
    free(rtable);
    free(rerr);
    free(tasks);
    free(models);
    free(want);
    free(got);
    free(fixture);
    free(rec);
    free(report);
    free(rpath);
    cJSON_Delete(t);
    free(text);
    free(tpath);
    free(log);
    free(dir);
}

/*
 * The scoring a reviewer would do, as a script the test adds to a copy of
 * the page: each answer gets 1 + (its text's length mod 5), set by clicking
 * the radio button, then Export is clicked. The same rule in C over the
 * recordings says what each model's mean must be once unblinded.
 */
static const char reviewer_script[] =
    "<script>\n"
    "(function () {\n"
    "  var as = document.querySelectorAll('.answer');\n"
    "  for (var i = 0; i < as.length; i++) {\n"
    "    var id = as[i].getAttribute('data-id');\n"
    "    var text = as[i].querySelector('pre.text').textContent;\n"
    "    var score = 1 + (text.length % 5);\n"
    "    as[i].querySelector('input[name=\"' + id + '\"][value=\"' + score + '\"]').click();\n"
    "  }\n"
    "  document.getElementById('export-btn').click();\n"
    "})();\n"
    "</script>\n";

static int chromium_dump(const char *html, const char *out, const char *err)
{
    char *profile = h_tmp("chromium-profile-bake");
    char *udd = wk_xasprintf("--user-data-dir=%s", profile);
    char *url = wk_xasprintf("file://%s", html);
    char *argv[] = {CHROMIUM,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    udd,
                    "--dump-dom",
                    url,
                    NULL};
    int rc = h_run(argv, out, err, 90);
    free(profile);
    free(udd);
    free(url);
    return rc;
}

/* The text of the element <textarea id="export"...>...</textarea> in the dumped DOM. */
static char *export_text(const char *dom)
{
    const char *p = strstr(dom, "<textarea id=\"export\"");
    assert_non_null(p);
    p = strchr(p, '>');
    assert_non_null(p);
    p++;
    const char *end = strstr(p, "</textarea>");
    assert_non_null(end);
    return wk_xstrndup(p, (size_t)(end - p));
}

static void test_blind_review_scored_in_chromium_and_unblinded(void **state)
{
    (void)state;
    if (access(CHROMIUM, X_OK) != 0)
        fail_msg("%s is missing: `make deps` installs Debian's chromium, which this test needs",
                 CHROMIUM);
    char *dir = h_tmp("bake2");
    char *page_path = in_dir(dir, "review.html");
    const char *extra[] = {"--blind", page_path, "--seed", "42", NULL};
    bake(dir, "1", extra, NULL);

    /* Self-contained, and blind: no model name, nothing fetched. */
    char *page = h_slurp(page_path);
    assert_null(strstr(page, "cheap"));
    assert_null(strstr(page, "dear"));
    assert_null(strstr(page, " src="));
    assert_null(strstr(page, " href="));
    assert_null(strstr(page, "http://"));
    assert_null(strstr(page, "https://"));
    assert_null(strstr(page, "url("));
    assert_null(strstr(page, "@import"));
    assert_non_null(strstr(page, "<script>"));

    /* The reviewer's copy: the page plus the scoring script before </body>. */
    const char *body_end = strstr(page, "</body>");
    assert_non_null(body_end);
    char *scored =
        wk_xasprintf("%.*s%s%s", (int)(body_end - page), page, reviewer_script, body_end);
    char *copy = h_write("review-scored.html", scored);
    char *dom_path = h_tmp("review.dom"), *cerr = h_tmp("chromium-bake.err");
    int rc = chromium_dump(copy, dom_path, cerr);
    if (rc != 0) {
        char *e = h_slurp(cerr);
        fail_msg("chromium --dump-dom exited %d:\n%s", rc, e);
    }
    char *dom = h_slurp(dom_path);
    assert_non_null(strstr(dom, "8 of 8 answers scored"));
    char *exported = export_text(dom);
    cJSON *ex = cJSON_Parse(exported);
    if (!ex)
        fail_msg("the export is not JSON: %s", exported);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(ex, "scores")), 8);
    char *scores = h_write("scores.json", exported);

    /* Unblind: each model's mean is the rule's mean over its run-1 answers. */
    char *err = h_tmp("unblind.err");
    char *argv[] = {(char *)h_cascade_bin(), "bakeoff", "--scores", scores, "-o", dir, NULL};
    rc = h_run(argv, NULL, err, 60);
    if (rc != 0) {
        char *e = h_slurp(err);
        fail_msg("bakeoff --scores exited %d:\n%s", rc, e);
    }
    char *rec = in_dir(dir, "recordings.jsonl");
    cJSON *lines = h_jsonl(rec);
    double sum[2] = {0, 0};
    int cnt[2] = {0, 0};
    const cJSON *l;
    cJSON_ArrayForEach(l, lines)
    {
        int m = strcmp(h_str(l, "model"), "dear") == 0;
        sum[m] += 1 + (double)(strlen(h_str(l, "answer")) % 5);
        cnt[m]++;
    }
    assert_int_equal(cnt[0], 4);
    assert_int_equal(cnt[1], 4);
    char *tpath = in_dir(dir, "table.json");
    char *text = h_slurp(tpath);
    cJSON *t = cJSON_Parse(text);
    const cJSON *cheap = h_find(t, "model", "cheap"), *dear = h_find(t, "model", "dear");
    assert_true(fabs(num(cheap, "score_mean") - sum[0] / 4) < 1e-4);
    assert_true(fabs(num(dear, "score_mean") - sum[1] / 4) < 1e-4);
    assert_int_equal((int)num(cheap, "scored"), 4);
    /* The table's other figures are still there: dear's run 1 passes 3 of 4. */
    assert_true(fabs(num(dear, "pass_rate") - 0.75) < 1e-9);

    /* Scores of an answer the key does not know are refused. */
    char *bad = h_write("bad-scores.json", "{\"scores\": {\"a999\": 3}}");
    char *bargv[] = {(char *)h_cascade_bin(), "bakeoff", "--scores", bad, "-o", dir, NULL};
    assert_int_equal(h_run(bargv, NULL, err, 60), 1);
    char *e = h_slurp(err);
    assert_non_null(strstr(e, "a999"));
    free(e);
    free(bad);
    cJSON_Delete(t);
    free(text);
    free(tpath);
    cJSON_Delete(lines);
    free(rec);
    free(err);
    free(scores);
    cJSON_Delete(ex);
    free(exported);
    free(dom);
    free(dom_path);
    free(cerr);
    free(copy);
    free(scored);
    free(page);
    free(page_path);
    free(dir);
}

static void test_usage_errors(void **state)
{
    (void)state;
    char *err = h_tmp("usage.err");
    char *none[] = {(char *)h_cascade_bin(), "bakeoff", "-o", "/nonexistent-dir", NULL};
    assert_int_equal(h_run(none, NULL, err, 30), 2);
    char *mixed[] = {
        (char *)h_cascade_bin(), "bakeoff", "--scores", "s.json", "--models", "a", "-o", "d", NULL};
    assert_int_equal(h_run(mixed, NULL, err, 30), 2);
    char *runs[] = {(char *)h_cascade_bin(),
                    "bakeoff",
                    "--tasks",
                    "t",
                    "--models",
                    "a",
                    "--runs",
                    "0",
                    "-o",
                    "d",
                    NULL};
    assert_int_equal(h_run(runs, NULL, err, 30), 2);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bakeoff_against_the_mock_gives_the_known_table),
        cmocka_unit_test(test_blind_review_scored_in_chromium_and_unblinded),
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests_name("bakeoff", tests, h_group_setup, h_group_teardown);
}
