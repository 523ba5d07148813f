/*
 * The plan simulator and `cascade tune` on synthetic results where the
 * answer is known. The simulator must follow replay's rule (attempt i of a
 * (task, model) takes observation (start + i) mod R, the count running
 * across tiers); the oracle pays for the cheapest passing model only; and on
 * a batch where a cheap model solves exactly the short prompts, a middle one
 * four long ones in five and the top one everything, the cheapest plan at
 * pass rate 0.99 is: cheap once but not for long prompts, then middle once,
 * then top once.
 *
 * Needs SRC_DIR and CASCADE_BIN (set by `make test`).
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

#include "harness.h"
#include "lib/util.h"
#include "worker/config.h"
#include "worker/eval/tune.h"

static void load(wk_obs *o, const char *path)
{
    char err[512];
    if (wk_obs_add_results(o, path, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void test_simulation_follows_the_replay_rule(void **state)
{
    (void)state;
    /* Model a: runs fail, pass, fail costing 1, 2, 3; model b: one run, passes, costs 10. */
    char *path = h_write("sim.jsonl",
                         "{\"id\":\"t\",\"status\":\"exhausted\",\"attempts\":["
                         "{\"model\":\"a\",\"cost_usd\":1,\"verdict\":{\"pass\":false}},"
                         "{\"model\":\"a\",\"cost_usd\":2,\"verdict\":{\"pass\":true}},"
                         "{\"model\":\"a\",\"cost_usd\":3,\"verdict\":{\"pass\":false}},"
                         "{\"model\":\"b\",\"cost_usd\":10,\"verdict\":{\"pass\":true}}]}\n"
                         "{\"id\":null,\"line\":2,\"status\":\"invalid_task\",\"attempts\":[]}\n");
    wk_obs *o = wk_obs_new();
    load(o, path);
    assert_int_equal(wk_obs_ntasks(o, WK_SET_ALL), 1);
    assert_int_equal(wk_obs_max_runs(o), 3);
    int a = wk_obs_model_index(o, "a"), b = wk_obs_model_index(o, "b");
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(wk_obs_top_model(o), b);

    /* a*2 > b*1: start 0 pays 1+2, start 1 pays 2, start 2 pays 3+1+10. */
    wk_plan p = {.ntiers = 2};
    p.tiers[0] = (wk_plan_tier){.model = a, .attempts = 2};
    p.tiers[1] = (wk_plan_tier){.model = b, .attempts = 1};
    wk_sim s;
    wk_obs_simulate(o, &p, WK_SET_ALL, 3, &s);
    assert_true(fabs(s.pass_rate - 1.0) < 1e-12);
    assert_true(fabs(s.cost_usd - 19.0 / 3) < 1e-12);

    /* a*1 > a*1: the second tier takes a's next run, not its first again. */
    wk_plan q = {.ntiers = 2};
    q.tiers[0] = (wk_plan_tier){.model = a, .attempts = 1};
    q.tiers[1] = (wk_plan_tier){.model = a, .attempts = 1};
    wk_obs_simulate(o, &q, WK_SET_ALL, 1, &s);
    assert_true(fabs(s.pass_rate - 1.0) < 1e-12);
    assert_true(fabs(s.cost_usd - 3.0) < 1e-12);

    /* a*1 alone: pass rates 0, 1, 0 -> mean 1/3, sample sd sqrt(1/3). */
    wk_plan r = {.ntiers = 1};
    r.tiers[0] = (wk_plan_tier){.model = a, .attempts = 1};
    wk_obs_simulate(o, &r, WK_SET_ALL, 3, &s);
    assert_true(fabs(s.pass_rate - 1.0 / 3) < 1e-12);
    assert_true(fabs(s.pass_rate_sd - sqrt(1.0 / 3)) < 1e-12);

    /* Oracle: start 0 only b passes (10), start 1 a passes (2), start 2 only b (10). */
    wk_obs_oracle(o, WK_SET_ALL, 3, &s);
    assert_true(fabs(s.pass_rate - 1.0) < 1e-12);
    assert_true(fabs(s.cost_usd - 22.0 / 3) < 1e-12);
    wk_obs_free(o);
    free(path);
}

#define NTASKS 200
#define RUNS 10

/*
 * Task i: short prompt (40 tokens) when i is even, long (400) when odd.
 * cheap ($0.002) passes exactly the short ones; mid ($0.01) passes all but
 * the long ones with i % 5 == 0; top ($0.1) passes everything. Every run of
 * a (task, model) has the same outcome, so extra attempts only cost.
 */
static void write_synthetic(char **tasks, char **results)
{
    wk_buf t, r;
    wk_buf_init(&t, 1u << 24);
    wk_buf_init(&r, 1u << 24);
    static const char *models[] = {"cheap", "mid", "top"};
    static const double cost[] = {0.002, 0.01, 0.1};
    for (int i = 0; i < NTASKS; i++) {
        int lng = i % 2;
        char prompt[1700];
        memset(prompt, 'x', sizeof prompt);
        prompt[lng ? 1600 : 160] = '\0';
        wk_buf_appendf(&t,
                       "{\"id\":\"s%03d\",\"kind\":\"code\",\"language\":\"python\","
                       "\"prompt\":\"%s\",\"tests\":{\"command\":[\"true\"]}}\n",
                       i, prompt);
        wk_buf_appendf(&r, "{\"id\":\"s%03d\",\"status\":\"exhausted\",\"attempts\":[", i);
        for (int m = 0; m < 3; m++) {
            int pass = m == 2 || (m == 1 && !(lng && i % 5 == 0)) || (m == 0 && !lng);
            for (int k = 0; k < RUNS; k++)
                wk_buf_appendf(&r,
                               "%s{\"model\":\"%s\",\"prompt_tokens\":%d,\"cost_usd\":%g,"
                               "\"verdict\":{\"pass\":%s}}",
                               m || k ? "," : "", models[m], lng ? 400 : 40, cost[m],
                               pass ? "true" : "false");
        }
        wk_buf_appendf(&r, "]}\n");
    }
    *tasks = h_write("syn-tasks.jsonl", t.buf);
    *results = h_write("syn-results.jsonl", r.buf);
    wk_buf_release(&t);
    wk_buf_release(&r);
}

static void test_tune_finds_the_known_best_plan(void **state)
{
    (void)state;
    char *tasks, *results, err[512];
    write_synthetic(&tasks, &results);
    wk_obs *o = wk_obs_new();
    load(o, results);
    if (wk_obs_add_tasks(o, tasks, err, sizeof err) != 0)
        fail_msg("%s", err);
    int fit = wk_obs_ntasks(o, WK_SET_FIT), held = wk_obs_ntasks(o, WK_SET_HELD);
    assert_int_equal(fit + held, NTASKS);
    assert_true(fit > 60 && held > 60); /* the hash splits roughly in half */

    wk_tune_opts t;
    wk_tune_opts_default(&t);
    t.target = 0.99;
    t.margin = 0;
    wk_tune_result res;
    if (wk_tune(o, &t, &res, err, sizeof err) != 0)
        fail_msg("%s", err);
    char *name = wk_plan_name(o, &res.plan);
    char *words = wk_plan_describe(o, &res.plan);
    assert_true(res.met);
    if (res.plan.ntiers != 3)
        fail_msg("expected three tiers, got %s", name);
    assert_string_equal(wk_obs_model(o, res.plan.tiers[0].model), "cheap");
    assert_string_equal(wk_obs_model(o, res.plan.tiers[1].model), "mid");
    assert_string_equal(wk_obs_model(o, res.plan.tiers[2].model), "top");
    for (int k = 0; k < 3; k++)
        assert_int_equal(res.plan.tiers[k].attempts, 1);
    /* The one rule: cheap is skipped for long prompts (a cut between 40 and 400). */
    assert_int_equal(res.plan.tiers[0].nskips, 1);
    assert_int_equal(res.plan.tiers[1].nskips + res.plan.tiers[2].nskips, 0);
    assert_int_equal(res.plan.tiers[0].skips[0].kind, WK_SKIP_PROMPT_OVER);
    assert_true(res.plan.tiers[0].skips[0].threshold >= 40 &&
                res.plan.tiers[0].skips[0].threshold < 400);
    assert_non_null(strstr(words, "skip this step for prompts longer than"));

    /* Held out: everything passes; short $0.002, long $0.01, long with i%5==0 $0.11. */
    assert_true(fabs(res.held.pass_rate - 1.0) < 1e-12);
    double want = 0;
    for (int i = 0; i < NTASKS; i++) {
        char id[8];
        snprintf(id, sizeof id, "s%03d", i);
        if (wk_obs_half(id) != WK_SET_HELD)
            continue;
        want += i % 2 == 0 ? 0.002 : i % 5 == 0 ? 0.11 : 0.01;
    }
    assert_true(fabs(res.held.cost_usd - want) < 1e-9);
    /* Without the rule every long task pays for a cheap call too. */
    assert_true(res.base_held.cost_usd > res.held.cost_usd);
    assert_true(fabs(res.top_held.pass_rate - 1.0) < 1e-12);

    /* The cascade file loads as a cascade (skip_when is extra to the loader). */
    cJSON *c = wk_plan_cascade(o, &res.plan, "tuned", NULL);
    char *text = cJSON_Print(c);
    char *cpath = h_write("tuned.json", text);
    char *mpath = h_write("models.json",
                          "{\"providers\":{\"p\":{\"api\":\"openai\",\"base_url\":\"http://x\","
                          "\"key_env\":null}},\"models\":{"
                          "\"cheap\":{\"provider\":\"p\",\"input_usd_per_mtok\":1,"
                          "\"output_usd_per_mtok\":1},"
                          "\"mid\":{\"provider\":\"p\",\"input_usd_per_mtok\":2,"
                          "\"output_usd_per_mtok\":2},"
                          "\"top\":{\"provider\":\"p\",\"input_usd_per_mtok\":3,"
                          "\"output_usd_per_mtok\":3}}}");
    wk_config cfg;
    if (wk_config_load(&cfg, mpath, cpath, WK_CONFIG_OFFLINE, err, sizeof err) != 0)
        fail_msg("the tuned cascade does not load: %s", err);
    assert_int_equal(cfg.ncascades, 1);
    assert_int_equal(cfg.cascades[0].ntiers, 3);
    wk_config_free(&cfg);
    /* A base's data policy goes with the tuned tiers, or they could reach more than it allows. */
    cJSON *base = cJSON_Parse("{\"data_policy\": {\"internal\": [\"self_hosted\"]}}");
    cJSON *narrowed = wk_plan_cascade(o, &res.plan, "tuned", base);
    const cJSON *dp = cJSON_GetObjectItemCaseSensitive(narrowed, "data_policy");
    assert_non_null(dp);
    assert_string_equal(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(dp, "internal"), 0)->valuestring,
        "self_hosted");
    cJSON_Delete(narrowed);
    cJSON_Delete(base);
    assert_non_null(strstr(text, "\"prompt_tokens_over\""));

    free(cpath);
    free(mpath);
    free(text);
    cJSON_Delete(c);
    free(name);
    free(words);
    wk_obs_free(o);
    free(tasks);
    free(results);
}

static void test_unreachable_target_returns_the_best_pass_rate(void **state)
{
    (void)state;
    char *tasks, *results, err[512];
    write_synthetic(&tasks, &results);
    wk_obs *o = wk_obs_new();
    load(o, results);
    wk_tune_opts t;
    wk_tune_opts_default(&t);
    t.target = 0.99;
    t.budget_per_task = 0.009; /* top ($0.1) can never be afforded for the hard tasks */
    wk_tune_result res;
    if (wk_tune(o, &t, &res, err, sizeof err) != 0)
        fail_msg("%s", err);
    assert_false(res.met);
    assert_true(res.fit.cost_usd <= 0.009 * wk_obs_ntasks(o, WK_SET_FIT) + 1e-12);
    assert_true(res.fit.pass_rate < 0.99);
    wk_obs_free(o);
    free(tasks);
    free(results);
}

/*
 * The synthetic results as tune's CLI takes them: one file per model and run,
 * one attempt per task (what `replay --plan MODEL --runs K --out-dir` writes).
 * Returns the paths, NULL-terminated; caller frees each and the array.
 */
static char **write_split(void)
{
    static const char *models[] = {"cheap", "mid", "top"};
    static const double cost[] = {0.002, 0.01, 0.1};
    char **paths = calloc(3 * RUNS + 1, sizeof(char *));
    for (int m = 0; m < 3; m++)
        for (int k = 0; k < RUNS; k++) {
            wk_buf r;
            wk_buf_init(&r, 1u << 24);
            for (int i = 0; i < NTASKS; i++) {
                int lng = i % 2;
                int pass = m == 2 || (m == 1 && !(lng && i % 5 == 0)) || (m == 0 && !lng);
                wk_buf_appendf(&r,
                               "{\"id\":\"s%03d\",\"status\":\"%s\",\"attempts\":[{\"model\":"
                               "\"%s\",\"prompt_tokens\":%d,\"cost_usd\":%g,\"verdict\":{"
                               "\"pass\":%s}}]}\n",
                               i, pass ? "accepted" : "exhausted", models[m], lng ? 400 : 40,
                               cost[m], pass ? "true" : "false");
            }
            char name[64];
            snprintf(name, sizeof name, "split-%s-%02d.jsonl", models[m], k);
            paths[m * RUNS + k] = h_write(name, r.buf);
            wk_buf_release(&r);
        }
    return paths;
}

static void free_paths(char **paths)
{
    for (int i = 0; paths[i]; i++)
        free(paths[i]);
    free(paths);
}

static void test_cli_writes_cascade_and_summary(void **state)
{
    (void)state;
    char *tasks, *results;
    write_synthetic(&tasks, &results);
    char **split = write_split();
    char *out = h_tmp("cli-tuned.json"), *sum = h_tmp("cli-summary.json");
    char *stdo = h_tmp("cli.out"), *stde = h_tmp("cli.err");
    char *argv[] = {(char *)h_cascade_bin(),
                    "tune",
                    "--tasks",
                    tasks,
                    "--target",
                    "0.99",
                    "--margin",
                    "0",
                    "-o",
                    out,
                    "--summary",
                    sum,
                    NULL,
                    NULL};
    char *args[64];
    int n = 0;
    for (; argv[n]; n++)
        args[n] = argv[n];
    args[n++] = "--from";
    for (int i = 0; split[i]; i++)
        args[n++] = split[i];
    args[n] = NULL;
    int rc = h_run(args, stdo, stde, 60);
    char *text = h_slurp(stdo);
    if (rc != 0) {
        char *e = h_slurp(stde);
        fail_msg("tune exited %d:\n%s\n%s", rc, text, e);
    }
    assert_non_null(strstr(text, "chosen plan: cheap*1(1 skip rule)>mid*1>top*1"));
    assert_non_null(strstr(text, "held-out: pass rate 1.000 meets the target"));
    /* The router honours skip_when: no figures "as a router that ignores it runs it". */
    assert_null(strstr(text, "ignores skip_when"));
    char *s = h_slurp(sum);
    cJSON *j = cJSON_Parse(s);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "met")));
    assert_string_equal(h_str(j, "top_model"), "top");
    char *c = h_slurp(out);
    assert_non_null(strstr(c, "skip_when"));
    /* No target: a usage error. */
    char *bad[] = {(char *)h_cascade_bin(), "tune", "--from", results, NULL};
    assert_int_equal(h_run(bad, NULL, NULL, 30), 2);
    cJSON_Delete(j);
    free(s);
    free(c);
    free(text);
    free(out);
    free(sum);
    free(stdo);
    free(stde);
    free(tasks);
    free(results);
    free_paths(split);
}

/*
 * A results file of several models, or of several attempts per task, is a
 * plan's: its attempts are not observations of one model. tune leaves such a
 * file out and says so, and with nothing left it stops.
 */
static void test_cli_leaves_out_results_that_are_not_one_model_one_attempt(void **state)
{
    (void)state;
    char *tasks, *results;
    write_synthetic(&tasks, &results);
    char **split = write_split();
    char *plan = h_write("plan-results.jsonl",
                         "{\"id\":\"s000\",\"status\":\"accepted\",\"attempts\":["
                         "{\"model\":\"cheap\",\"cost_usd\":1,\"verdict\":{\"pass\":false}},"
                         "{\"model\":\"cheap\",\"cost_usd\":1,\"verdict\":{\"pass\":true}}]}\n");
    char *stdo = h_tmp("mix.out"), *stde = h_tmp("mix.err");
    char *only[] = {
        (char *)h_cascade_bin(), "tune", "--target", "0.9", "--from", results, plan, NULL};
    assert_int_equal(h_run(only, stdo, stde, 60), 1);
    char *err = h_slurp(stde);
    assert_non_null(strstr(err, "attempts of two models (cheap and mid)"));
    assert_non_null(strstr(err, "line 1 has 2 attempts"));
    assert_non_null(strstr(err, "none of the results files"));
    free(err);
    /* Beside the single-model files, the combined one is left out and the plan is unchanged. */
    char *args[64] = {(char *)h_cascade_bin(),
                      "tune",
                      "--tasks",
                      tasks,
                      "--target",
                      "0.99",
                      "--margin",
                      "0",
                      "-o",
                      "/dev/null",
                      "--from",
                      results};
    int n = 12;
    for (int i = 0; split[i]; i++)
        args[n++] = split[i];
    args[n] = NULL;
    assert_int_equal(h_run(args, stdo, stde, 60), 0);
    err = h_slurp(stde);
    assert_non_null(strstr(err, "leaving out"));
    char *text = h_slurp(stdo);
    assert_non_null(strstr(text, "30 results files"));
    assert_non_null(strstr(text, "chosen plan: cheap*1(1 skip rule)>mid*1>top*1"));
    free(text);
    free(err);
    free(stdo);
    free(stde);
    free(plan);
    free(tasks);
    free(results);
    free_paths(split);
}

/*
 * Four models, one run each: task i is solved by a when i % 4 == 0, by b when
 * 1, by c when 2, and by d always. At pass rate 1 the cheapest plan is all
 * four in price order ($0.0295 a task against $0.0525 for the best of three
 * tiers), and the search is small, so without --max-tiers tune grows to 4.
 * With --max-tiers 3 it keeps 3.
 */
static void test_cli_grows_max_tiers_to_the_models_when_the_search_is_small(void **state)
{
    (void)state;
    static const char *models[] = {"a", "b", "c", "d"};
    static const double cost[] = {0.001, 0.002, 0.004, 0.1};
    char *args[16] = {(char *)h_cascade_bin(), "tune", "--target", "1",         "--margin", "0",
                      "--max-rules",           "0",    "-o",       "/dev/null", "--from"};
    int n = 11;
    for (int m = 0; m < 4; m++) {
        wk_buf r;
        wk_buf_init(&r, 1u << 20);
        for (int i = 0; i < 40; i++)
            wk_buf_appendf(&r,
                           "{\"id\":\"g%02d\",\"status\":\"accepted\",\"attempts\":[{"
                           "\"model\":\"%s\",\"cost_usd\":%g,\"verdict\":{\"pass\":%s}}]}\n",
                           i, models[m], cost[m], m == 3 || i % 4 == m ? "true" : "false");
        char name[32];
        snprintf(name, sizeof name, "grow-%s.jsonl", models[m]);
        args[n++] = h_write(name, r.buf);
        wk_buf_release(&r);
    }
    args[n] = NULL;
    char *stdo = h_tmp("grow.out"), *stde = h_tmp("grow.err");
    assert_int_equal(h_run(args, stdo, stde, 60), 0);
    char *text = h_slurp(stdo);
    assert_non_null(strstr(text, "up to 4 tiers of 4 models"));
    assert_non_null(strstr(text, "chosen plan: a*1>b*1>c*1>d*1"));
    free(text);
    char *fixed[20];
    memcpy(fixed, args, 4 * sizeof(char *));
    fixed[4] = "--max-tiers";
    fixed[5] = "3";
    memcpy(fixed + 6, args + 4, (size_t)(n - 4 + 1) * sizeof(char *));
    assert_int_equal(h_run(fixed, stdo, stde, 60), 0);
    text = h_slurp(stdo);
    assert_null(strstr(text, "up to 4 tiers"));
    assert_null(strstr(text, "chosen plan: a*1>b*1>c*1>d*1"));
    free(text);
    for (int i = 11; i < n; i++)
        free(args[i]);
    free(stdo);
    free(stde);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simulation_follows_the_replay_rule),
        cmocka_unit_test(test_tune_finds_the_known_best_plan),
        cmocka_unit_test(test_unreachable_target_returns_the_best_pass_rate),
        cmocka_unit_test(test_cli_writes_cascade_and_summary),
        cmocka_unit_test(test_cli_leaves_out_results_that_are_not_one_model_one_attempt),
        cmocka_unit_test(test_cli_grows_max_tiers_to_the_models_when_the_search_is_small),
    };
    return cmocka_run_group_tests_name("tune", tests, h_group_setup, h_group_teardown);
}
