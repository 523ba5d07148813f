/*
 * The router's transitions, driven by a plain loop with no network and no
 * sandbox: each test feeds events and checks the actions that come out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "worker/router.h"

static wk_provider prov = {
    .name = "mock", .api = "openai", .base_url = "http://x/v1", .max_inflight = 8};
static wk_model models[3] = {
    {.name = "cheap",
     .provider = &prov,
     .id = "cheap",
     .input_usd_per_mtok = 1,
     .output_usd_per_mtok = 2,
     .context = 100000,
     .max_tokens = 1000},
    {.name = "mid",
     .provider = &prov,
     .id = "mid",
     .input_usd_per_mtok = 10,
     .output_usd_per_mtok = 20,
     .context = 100000,
     .max_tokens = 1000},
    {.name = "top",
     .provider = &prov,
     .id = "top",
     .input_usd_per_mtok = 100,
     .output_usd_per_mtok = 200,
     .context = 100000,
     .max_tokens = 1000},
};
static char *vals[] = {"syntax", "tests", NULL};
static wk_tier tiers[3];
static wk_cascade casc;
static wk_config cfg;

static int setup(void **state)
{
    (void)state;
    tiers[0] = (wk_tier){.model = &models[0], .attempts = 1};
    tiers[1] = (wk_tier){.model = &models[1], .attempts = 2};
    tiers[2] = (wk_tier){.model = &models[2], .attempts = 1};
    casc = (wk_cascade){.name = "py",
                        .match_kind = "code",
                        .match_language = "python",
                        .validators = vals,
                        .nvalidators = 2,
                        .feedback = 1,
                        .tiers = tiers,
                        .ntiers = 3};
    for (int i = 0; i < 3; i++)
        models[i].context = 100000;
    cfg = (wk_config){.providers = &prov,
                      .nproviders = 1,
                      .models = models,
                      .nmodels = 3,
                      .cascades = &casc,
                      .ncascades = 1};
    return 0;
}

static const char *TASK =
    "{\"id\":\"t1\",\"kind\":\"code\",\"language\":\"python\",\"prompt\":\"write f\","
    "\"tests\":{\"files\":{},\"command\":[\"python3\",\"t.py\"]}}";

static wk_task *parse_ok(const char *line)
{
    wk_task *t = NULL;
    cJSON *inv = NULL;
    assert_int_equal(wk_task_parse(line, strlen(line), 1, &cfg, NULL, &t, &inv), 0);
    assert_null(inv);
    return t;
}

/* More than any one feed in these tests yields. */
#define ACTS_MAX 16

/* Feeds ev and copies out the actions; LOG/FINISH lines become owned by acts. */
static int feed(wk_task *t, wk_event ev, wk_action *acts)
{
    wk_actions list = {0};
    int n = wk_task_feed(t, &ev, &list);
    assert_in_range(n, 0, ACTS_MAX);
    for (int i = 0; i < n; i++) {
        acts[i] = list.v[i];
        list.v[i].line = NULL;
    }
    wk_actions_release(&list);
    return n;
}

static wk_event response(const char *text, long pt, long ct)
{
    return (wk_event){.kind = WK_EV_RESPONSE,
                      .now_ms = 1700000000000,
                      .text = text,
                      .finish_reason = "stop",
                      .prompt_tokens = pt,
                      .completion_tokens = ct,
                      .latency_ms = 5};
}

/* The verdict an event points to; one at a time is enough for these tests. */
static val_verdict the_verdict;

static wk_event verdict(int pass, const char *validator, const char *reason, const char *evidence)
{
    val_verdict_clear(&the_verdict);
    if (pass)
        val_verdict_pass(&the_verdict);
    else
        val_verdict_fail(&the_verdict, validator, reason, "msg", evidence);
    return (wk_event){.kind = WK_EV_VERDICT, .now_ms = 1700000000000, .verdict = &the_verdict};
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

/* Runs one answer through call -> response -> validate -> verdict. */
static int attempt(wk_task *t, const char *expect_model, int pass, const char *evidence,
                   wk_action *acts)
{
    wk_action a[ACTS_MAX];
    int n = feed(t, response("```python\nx = 1\n```", 100, 50), a);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].kind, WK_ACT_VALIDATE);
    assert_string_equal(a[0].answer, "```python\nx = 1\n```");
    (void)expect_model;
    return feed(t, verdict(pass, "tests", "failed", evidence), acts);
}

static void test_pass_at_tier0_finishes_accepted_with_cost(void **state)
{
    (void)state;
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    int n = feed(t, (wk_event){.kind = WK_EV_START, .now_ms = 1}, a);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].kind, WK_ACT_CALL);
    assert_string_equal(a[0].model->name, "cheap");
    assert_int_equal(cJSON_GetArraySize(a[0].messages), 2);
    n = attempt(t, "cheap", 1, NULL, a);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].kind, WK_ACT_FINISH);
    cJSON *r = a[0].line;
    assert_string_equal(jstr(r, "status"), "accepted");
    assert_string_equal(jstr(r, "model"), "cheap");
    assert_string_equal(jstr(r, "answer"), "x = 1");
    assert_int_equal(cJSON_GetObjectItem(r, "tier")->valueint, 0);
    /* 100 tokens at $1/M + 50 at $2/M */
    assert_float_equal(cJSON_GetObjectItem(r, "cost_usd")->valuedouble, 0.0002, 1e-12);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "attempts")), 1);
    assert_true(wk_task_done(t));
    cJSON_Delete(r);
    wk_task_free(t);
}

static const cJSON *last_msg(const cJSON *msgs, int from_end)
{
    return cJSON_GetArrayItem(msgs, cJSON_GetArraySize(msgs) - 1 - from_end);
}

static void test_failure_climbs_with_feedback_in_next_request(void **state)
{
    (void)state;
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    int n = attempt(t, "cheap", 0, "AssertionError: f(2) != 4", a);
    assert_int_equal(n, 2);
    assert_int_equal(a[0].kind, WK_ACT_LOG);
    cJSON *l = a[0].line;
    assert_string_equal(jstr(l, "id"), "t1");
    assert_string_equal(jstr(cJSON_GetObjectItem(l, "from"), "model"), "cheap");
    assert_string_equal(jstr(cJSON_GetObjectItem(l, "to"), "model"), "mid");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(l, "to"), "tier")->valueint, 1);
    assert_string_equal(jstr(l, "validator"), "tests");
    assert_string_equal(jstr(l, "reason"), "failed");
    assert_non_null(strstr(jstr(l, "evidence"), "AssertionError"));
    assert_string_equal(jstr(l, "ts"), "2023-11-14T22:13:20.000Z");
    cJSON_Delete(l);
    assert_int_equal(a[1].kind, WK_ACT_CALL);
    assert_string_equal(a[1].model->name, "mid");
    /* The conversation: system, user, the failed answer, the feedback turn. */
    assert_int_equal(cJSON_GetArraySize(a[1].messages), 4);
    assert_string_equal(jstr(last_msg(a[1].messages, 1), "role"), "assistant");
    assert_string_equal(jstr(last_msg(a[1].messages, 1), "content"), "```python\nx = 1\n```");
    const char *fb = jstr(last_msg(a[1].messages, 0), "content");
    assert_string_equal(jstr(last_msg(a[1].messages, 0), "role"), "user");
    assert_non_null(strstr(fb, "tests"));
    assert_non_null(strstr(fb, "AssertionError: f(2) != 4"));
    wk_task_free(t);
}

static void test_feedback_off_resends_the_original_prompt(void **state)
{
    (void)state;
    casc.feedback = 0;
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    int n = attempt(t, "cheap", 0, "boom", a);
    assert_int_equal(n, 2);
    cJSON_Delete(a[0].line);
    assert_int_equal(cJSON_GetArraySize(a[1].messages), 2);
    wk_task_free(t);
}

static void test_attempts_retry_same_tier_before_climbing(void **state)
{
    (void)state;
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    int n = attempt(t, "cheap", 0, "e1", a);
    cJSON_Delete(a[0].line);
    assert_string_equal(a[1].model->name, "mid");
    /* mid has 2 attempts: the first failure calls mid again, with no log line. */
    n = attempt(t, "mid", 0, "e2", a);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].kind, WK_ACT_CALL);
    assert_string_equal(a[0].model->name, "mid");
    n = attempt(t, "mid", 0, "e3", a);
    assert_int_equal(n, 2);
    assert_int_equal(a[0].kind, WK_ACT_LOG);
    cJSON_Delete(a[0].line);
    assert_string_equal(a[1].model->name, "top");
    /* Feedback rounds are capped: 3 failures, the cap keeps the newest 3. */
    assert_int_equal(cJSON_GetArraySize(a[1].messages), 2 + 2 * WK_FEEDBACK_ROUNDS_MAX);
    n = attempt(t, "top", 1, NULL, a);
    assert_int_equal(a[0].kind, WK_ACT_FINISH);
    assert_string_equal(jstr(a[0].line, "model"), "top");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(a[0].line, "attempts")), 4);
    cJSON_Delete(a[0].line);
    wk_task_free(t);
}

static void test_last_tier_failing_ends_exhausted_with_best_answer(void **state)
{
    (void)state;
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    int logs = 0;
    int n = feed(t, (wk_event){.kind = WK_EV_START}, a);
    for (int i = 0; i < 4; i++) {
        n = attempt(t, NULL, 0, "e", a);
        for (int k = 0; k < n; k++)
            if (a[k].kind == WK_ACT_LOG) {
                logs++;
                cJSON_Delete(a[k].line);
            }
    }
    assert_int_equal(n, 1);
    assert_int_equal(a[0].kind, WK_ACT_FINISH);
    cJSON *r = a[0].line;
    assert_string_equal(jstr(r, "status"), "exhausted");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "tier")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(r, "model")));
    assert_string_equal(jstr(r, "answer"), "x = 1");
    assert_non_null(jstr(r, "reason"));
    assert_int_equal(logs, 2);
    cJSON_Delete(r);
    wk_task_free(t);
}

/*
 * A skip rule on the last tier: a task that fails below it ends exhausted
 * without calling it, and the result says which rule skipped the last tier
 * (next_fitting logs skips only as climbs to a later tier).
 */
static void test_skip_rule_on_the_last_tier_is_said_in_the_result(void **state)
{
    (void)state;
    wk_skip_rule rule = {.prompt_tokens_over = -1, .prompt_tokens_upto = 100, .has_tests = -1};
    tiers[2].skip = &rule;
    tiers[2].nskip = 1;
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    int n = feed(t, (wk_event){.kind = WK_EV_START}, a);
    for (int i = 0; i < 3; i++) {
        n = attempt(t, NULL, 0, "e", a);
        for (int k = 0; k + 1 < n; k++)
            cJSON_Delete(a[k].line);
    }
    assert_int_equal(a[n - 1].kind, WK_ACT_FINISH);
    cJSON *r = a[n - 1].line;
    assert_string_equal(jstr(r, "status"), "exhausted");
    assert_non_null(strstr(jstr(r, "reason"), "the last tier skipped: skip rule 0 of tier 2"));
    cJSON_Delete(r);
    wk_task_free(t);
    tiers[2].skip = NULL;
    tiers[2].nskip = 0;
}

static void test_truncated_answer_fails_without_validation(void **state)
{
    (void)state;
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    wk_event ev = response("def f(", 10, 1000);
    ev.finish_reason = "length";
    int n = feed(t, ev, a);
    assert_int_equal(n, 2);
    assert_string_equal(jstr(a[0].line, "reason"), "truncated");
    cJSON_Delete(a[0].line);
    assert_int_equal(a[1].kind, WK_ACT_CALL);
    wk_task_free(t);
}

static void test_call_failures_everywhere_end_in_error(void **state)
{
    (void)state;
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    int n = feed(t, (wk_event){.kind = WK_EV_START}, a);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a[n - 1].kind, WK_ACT_CALL);
        n = feed(t,
                 (wk_event){.kind = WK_EV_CALL_FAILED,
                            .error_reason = "http_404",
                            .error_message = "HTTP 404: no such model"},
                 a);
        for (int k = 0; k < n; k++)
            if (a[k].kind == WK_ACT_LOG)
                cJSON_Delete(a[k].line);
    }
    assert_int_equal(a[0].kind, WK_ACT_FINISH);
    assert_string_equal(jstr(a[0].line, "status"), "error");
    cJSON *att = cJSON_GetArrayItem(cJSON_GetObjectItem(a[0].line, "attempts"), 0);
    assert_string_equal(jstr(att, "error"), "HTTP 404: no such model");
    cJSON_Delete(a[0].line);
    wk_task_free(t);
}

static void test_budget_too_small_for_next_tier_ends_over_budget(void **state)
{
    (void)state;
    /* Tier 0's worst case is about $0.002; mid's is about $0.02. */
    const char *line =
        "{\"id\":\"b\",\"language\":\"python\",\"prompt\":\"p\",\"budget_usd\":0.005,"
        "\"tests\":{\"command\":[\"true\"]}}";
    wk_task *t = parse_ok(line);
    wk_action a[ACTS_MAX];
    int n = feed(t, (wk_event){.kind = WK_EV_START}, a);
    assert_int_equal(a[0].kind, WK_ACT_CALL);
    n = attempt(t, "cheap", 0, "e", a);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].kind, WK_ACT_FINISH);
    assert_string_equal(jstr(a[0].line, "status"), "over_budget");
    assert_non_null(strstr(jstr(a[0].line, "reason"), "budget"));
    cJSON_Delete(a[0].line);
    wk_task_free(t);
}

static void test_tier_whose_context_is_too_small_is_skipped_and_logged(void **state)
{
    (void)state;
    models[0].context = 500; /* smaller than max_tokens alone */
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    int n = feed(t, (wk_event){.kind = WK_EV_START}, a);
    assert_int_equal(n, 2);
    assert_int_equal(a[0].kind, WK_ACT_LOG);
    assert_string_equal(jstr(a[0].line, "reason"), "context_too_small");
    cJSON_Delete(a[0].line);
    assert_string_equal(a[1].model->name, "mid");
    wk_task_free(t);
}

static void test_tier_whose_skip_rule_holds_is_skipped_and_logged(void **state)
{
    (void)state;
    /* tune's rule: skip the cheap tier for prompts over 2 tokens ("write f" is 1). */
    wk_skip_rule rule = {.prompt_tokens_over = 2, .prompt_tokens_upto = -1, .has_tests = -1};
    tiers[0].skip = &rule;
    tiers[0].nskip = 1;
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    int n = feed(t, (wk_event){.kind = WK_EV_START}, a);
    assert_int_equal(n, 1); /* a short prompt: the rule does not hold */
    assert_string_equal(a[0].model->name, "cheap");
    wk_task_free(t);
    const char *longer = "{\"id\":\"t2\",\"language\":\"python\",\"prompt\":\"write a "
                         "function f that adds\",\"tests\":{\"command\":[\"true\"]}}";
    t = parse_ok(longer);
    n = feed(t, (wk_event){.kind = WK_EV_START}, a);
    assert_int_equal(n, 2);
    assert_string_equal(jstr(a[0].line, "reason"), "skip_rule");
    assert_non_null(strstr(jstr(a[0].line, "evidence"), "skip rule 0 of tier 0"));
    cJSON_Delete(a[0].line);
    assert_string_equal(a[1].model->name, "mid");
    wk_task_free(t);
    tiers[0].skip = NULL;
    tiers[0].nskip = 0;
}

/*
 * Four tiers in a row that cannot take the task are each logged, at the start
 * and on a climb (the action list grows; a fixed array once dropped skip
 * lines past the second).
 */
static void test_four_skipped_tiers_are_each_logged(void **state)
{
    (void)state;
    wk_model small = models[0];
    small.name = "small";
    small.context = 500; /* smaller than max_tokens alone */
    wk_tier six[6];
    for (int i = 0; i < 6; i++)
        six[i] = (wk_tier){.model = i < 4 ? &small : &models[1], .attempts = 1};
    wk_cascade c6 = casc;
    c6.tiers = six;
    c6.ntiers = 6;
    wk_config cfg6 = cfg;
    cfg6.cascades = &c6;

    wk_action a[ACTS_MAX];
    wk_task *t = NULL;
    cJSON *inv = NULL;
    assert_int_equal(wk_task_parse(TASK, strlen(TASK), 1, &cfg6, NULL, &t, &inv), 0);
    int n = feed(t, (wk_event){.kind = WK_EV_START}, a);
    assert_int_equal(n, 5);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(a[i].kind, WK_ACT_LOG);
        assert_string_equal(jstr(a[i].line, "reason"), "context_too_small");
        assert_int_equal(
            cJSON_GetObjectItem(cJSON_GetObjectItem(a[i].line, "from"), "tier")->valueint, i);
        assert_int_equal(
            cJSON_GetObjectItem(cJSON_GetObjectItem(a[i].line, "to"), "tier")->valueint, i + 1);
        cJSON_Delete(a[i].line);
    }
    assert_int_equal(a[4].kind, WK_ACT_CALL);
    assert_string_equal(a[4].model->name, "mid");
    wk_task_free(t);

    /* Tier 0 takes the task and fails; tiers 1 to 4 cannot take it; tier 5 can. */
    six[0].model = &models[0];
    six[4].model = &small;
    assert_int_equal(wk_task_parse(TASK, strlen(TASK), 1, &cfg6, NULL, &t, &inv), 0);
    n = feed(t, (wk_event){.kind = WK_EV_START}, a);
    assert_int_equal(n, 1);
    assert_string_equal(a[0].model->name, "cheap");
    n = attempt(t, "cheap", 0, "boom", a);
    assert_int_equal(n, 6);
    assert_int_equal(a[0].kind, WK_ACT_LOG);
    assert_string_equal(jstr(a[0].line, "reason"), "failed");
    for (int i = 0; i < 5; i++) {
        if (i > 0) {
            assert_int_equal(a[i].kind, WK_ACT_LOG);
            assert_string_equal(jstr(a[i].line, "reason"), "context_too_small");
            assert_int_equal(
                cJSON_GetObjectItem(cJSON_GetObjectItem(a[i].line, "from"), "tier")->valueint, i);
        }
        cJSON_Delete(a[i].line);
    }
    assert_int_equal(a[5].kind, WK_ACT_CALL);
    assert_string_equal(a[5].model->name, "mid");
    wk_task_free(t);
}

/*
 * has_tests means what the tests validator would run: tests.command as a
 * non-empty array of strings. The router's skip rules and tune's simulation
 * read it through the same wk_task_features_of (they once disagreed on an
 * empty command: "an array" against "a non-empty one").
 */
static void test_has_tests_is_a_non_empty_command_for_router_and_tune(void **state)
{
    (void)state;
    static const struct {
        const char *task;
        int has_tests;
    } cases[] = {
        {"{\"prompt\":\"p\"}", 0},
        {"{\"prompt\":\"p\",\"tests\":{}}", 0},
        {"{\"prompt\":\"p\",\"tests\":{\"command\":[]}}", 0},
        {"{\"prompt\":\"p\",\"tests\":{\"command\":\"true\"}}", 0},
        {"{\"prompt\":\"p\",\"tests\":{\"command\":[1]}}", 0},
        {"{\"prompt\":\"p\",\"tests\":{\"command\":[\"true\"]}}", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *j = cJSON_Parse(cases[i].task);
        wk_task_features f;
        wk_task_features_of(j, &f);
        assert_int_equal(f.has_tests, cases[i].has_tests);
        assert_string_equal(f.kind, "code");
        cJSON_Delete(j);
    }

    /* The router skips a tier whose rule says "no tests" for an empty command only. */
    wk_skip_rule rule = {.prompt_tokens_over = -1, .prompt_tokens_upto = -1, .has_tests = 0};
    tiers[0].skip = &rule;
    tiers[0].nskip = 1;
    casc.nvalidators = 1; /* syntax only: a task without tests is valid */
    const char *lines[] = {
        "{\"id\":\"e\",\"language\":\"python\",\"prompt\":\"p\",\"tests\":{\"command\":[]}}",
        "{\"id\":\"f\",\"language\":\"python\",\"prompt\":\"p\",\"tests\":{\"command\":[\"true\"]}"
        "}",
    };
    const char *first_model[] = {"mid", "cheap"};
    for (int i = 0; i < 2; i++) {
        wk_task *t = parse_ok(lines[i]);
        wk_action a[ACTS_MAX];
        int n = feed(t, (wk_event){.kind = WK_EV_START}, a);
        assert_int_equal(a[n - 1].kind, WK_ACT_CALL);
        assert_string_equal(a[n - 1].model->name, first_model[i]);
        for (int k = 0; k < n - 1; k++)
            cJSON_Delete(a[k].line);
        wk_task_free(t);
    }
    tiers[0].skip = NULL;
    tiers[0].nskip = 0;
}

static void test_lost_call_is_charged_and_resent_only_within_budget(void **state)
{
    (void)state;
    const char *line = "{\"id\":\"l\",\"language\":\"python\",\"prompt\":\"p\","
                       "\"budget_usd\":0.0035,\"tests\":{\"command\":[\"true\"]}}";
    wk_task *t = parse_ok(line);
    wk_action a[ACTS_MAX];
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    /* A first lost call ($0.001) leaves room for another try at cheap (~$0.002). */
    int n = feed(t, (wk_event){.kind = WK_EV_LOST_CALL, .lost_cost_usd = 0.001}, a);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].kind, WK_ACT_CALL);
    assert_string_equal(a[0].model->name, "cheap");
    n = attempt(t, "cheap", 1, NULL, a);
    assert_int_equal(a[0].kind, WK_ACT_FINISH);
    const cJSON *att = cJSON_GetArrayItem(cJSON_GetObjectItem(a[0].line, "attempts"), 0);
    assert_float_equal(cJSON_GetObjectItem(att, "lost_cost_usd")->valuedouble, 0.001, 1e-12);
    assert_float_equal(cJSON_GetObjectItem(a[0].line, "cost_usd")->valuedouble, 0.0012, 1e-12);
    cJSON_Delete(a[0].line);
    wk_task_free(t);
    /* A lost call that used up the budget: no second send. */
    t = parse_ok(line);
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    n = feed(t, (wk_event){.kind = WK_EV_LOST_CALL, .lost_cost_usd = 0.003}, a);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].kind, WK_ACT_FINISH);
    assert_string_equal(jstr(a[0].line, "status"), "over_budget");
    cJSON_Delete(a[0].line);
    wk_task_free(t);
}

static void expect_invalid(const char *line, const char *why_part)
{
    wk_task *t = NULL;
    cJSON *inv = NULL;
    assert_int_equal(wk_task_parse(line, strlen(line), 7, &cfg, NULL, &t, &inv), WK_EINVAL);
    assert_null(t);
    assert_non_null(inv);
    assert_string_equal(jstr(inv, "status"), "invalid_task");
    assert_int_equal(cJSON_GetObjectItem(inv, "line")->valueint, 7);
    const char *why = jstr(inv, "reason");
    if (!strstr(why, why_part))
        fail_msg("reason \"%s\" lacks \"%s\"", why, why_part);
    cJSON_Delete(inv);
}

static void test_bad_task_lines_become_invalid_task_results(void **state)
{
    (void)state;
    expect_invalid("{not json", "not valid JSON");
    expect_invalid("[1,2]", "not a JSON object");
    expect_invalid("{\"prompt\":\"p\"}", "\"id\"");
    expect_invalid("{\"id\":\"a\",\"language\":\"python\"}", "\"prompt\"");
    expect_invalid("{\"id\":\"a\",\"prompt\":\"p\",\"language\":\"cobol\"}", "no cascade matches");
    expect_invalid("{\"id\":\"a\",\"prompt\":\"p\",\"cascade\":\"nope\"}", "unknown cascade");
    expect_invalid("{\"id\":\"a\",\"prompt\":\"p\",\"language\":\"python\"}", "tests.command");
    expect_invalid("{\"id\":\"a\",\"prompt\":\"p\",\"kind\":\"essay\"}", "unknown kind");
}

static void test_events_after_finish_are_ignored(void **state)
{
    (void)state;
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    attempt(t, "cheap", 1, NULL, a);
    cJSON_Delete(a[0].line);
    assert_int_equal(feed(t, response("again", 1, 1), a), 0);
    assert_int_equal(feed(t, verdict(1, "tests", "x", NULL), a), 0);
    wk_task_free(t);
}

/* ---- classify tiers: votes and confidence, fed by hand ---------------------- */

static const char *CLS_TASK =
    "{\"id\":\"c1\",\"kind\":\"classify\",\"prompt\":\"ticket\",\"gold\":\"bug\","
    "\"schema\":{\"type\":\"object\",\"properties\":{\"label\":{\"enum\":[\"bug\",\"feature\"]}}}}";
static char *label_vals[] = {"label", NULL};

/* casc as a classify cascade whose tier 0 is `t0` (cheap and mid), climbing to top. */
static void classify_casc(wk_tier t0)
{
    tiers[0] = t0;
    tiers[1] = (wk_tier){.model = &models[2], .attempts = 1};
    casc.match_kind = "classify";
    casc.match_language = NULL;
    casc.validators = label_vals;
    casc.nvalidators = 1;
    casc.feedback = 1; /* on for failures, yet a doubt climb sends none by default */
    casc.ntiers = 2;
}

static wk_event label_verdict(const char *label, double score)
{
    val_verdict_clear(&the_verdict);
    val_verdict_pass(&the_verdict);
    snprintf(the_verdict.label, sizeof the_verdict.label, "%s", label);
    the_verdict.score = score;
    return (wk_event){.kind = WK_EV_VERDICT, .now_ms = 1700000000000, .verdict = &the_verdict};
}

/* One vote: the response (with logprobs when given) and its label's verdict. */
static int vote_once(wk_task *t, const char *answer, const cJSON *lp, const char *label,
                     double score, wk_action *a)
{
    wk_event r = response(answer, 10, 2);
    r.logprobs = lp;
    assert_int_equal(feed(t, r, a), 1);
    assert_int_equal(a[0].kind, WK_ACT_VALIDATE);
    return feed(t, label_verdict(label, score), a);
}

/* The answer of call `vote` of an agree tier's round. */
static int round_answer(wk_task *t, int vote, const char *answer, const cJSON *choices,
                        wk_action *a)
{
    wk_event r = response(answer, 10, 2);
    r.vote = vote;
    r.choices = choices;
    return feed(t, r, a);
}

/* A VALIDATE of `answer` (from call `vote`), then its label's verdict fed. */
static int validate_then(wk_task *t, wk_action *a, const char *answer, int vote, const char *label)
{
    assert_int_equal(a[0].kind, WK_ACT_VALIDATE);
    assert_string_equal(a[0].answer, answer);
    assert_int_equal(a[0].vote, vote);
    return feed(t, label_verdict(label, -1), a);
}

static void test_agree_tier_asks_each_model_in_parallel_then_climbs_on_disagreement(void **state)
{
    (void)state;
    classify_casc((wk_tier){.model = &models[0],
                            .attempts = 1,
                            .agree = {&models[0], &models[1]},
                            .nagree = 2,
                            .vote_min = 2});
    wk_task *t = parse_ok(CLS_TASK);
    wk_action a[ACTS_MAX];
    /* Both listed models are asked in the one feed: both calls are in flight together. */
    assert_int_equal(feed(t, (wk_event){.kind = WK_EV_START}, a), 2);
    assert_int_equal(a[0].kind, WK_ACT_CALL);
    assert_string_equal(a[0].model->name, "cheap");
    assert_int_equal(a[0].vote, 0);
    assert_false(a[0].logprobs);
    assert_int_equal(a[1].kind, WK_ACT_CALL);
    assert_string_equal(a[1].model->name, "mid");
    assert_int_equal(a[1].vote, 1);
    /* Each CALL carries its own model's deployments (both are staged before either is sent). */
    assert_ptr_equal(a[0].deps->v[0], &models[0]);
    assert_ptr_equal(a[1].deps->v[0], &models[1]);
    /* mid answers first: nothing happens until the round is in. */
    assert_int_equal(round_answer(t, 1, "feature", NULL, a), 0);
    assert_int_equal(round_answer(t, 1, "bug", NULL, a), 0); /* a second answer: ignored */
    assert_int_equal(round_answer(t, 0, "bug", NULL, a), 1);
    /* Then the votes, in the order of agree.models. */
    assert_int_equal(validate_then(t, a, "bug", 0, "bug"), 1);
    assert_int_equal(validate_then(t, a, "feature", 1, "feature"), 2);
    assert_int_equal(a[0].kind, WK_ACT_LOG);
    assert_string_equal(jstr(a[0].line, "reason"), "disagreement");
    assert_non_null(strstr(jstr(a[0].line, "evidence"), "cheap: bug\nmid: feature"));
    assert_int_equal(a[1].kind, WK_ACT_CALL);
    assert_string_equal(a[1].model->name, "top");
    assert_int_equal(a[1].vote, 0);
    assert_int_equal(cJSON_GetArraySize(a[1].messages), 2); /* no feedback turns */
    cJSON_Delete(a[0].line);
    assert_int_equal(vote_once(t, "bug", NULL, "bug", -1, a), 1);
    cJSON *r = a[0].line;
    assert_string_equal(jstr(r, "label"), "bug");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(r, "correct")));
    const cJSON *atts = cJSON_GetObjectItem(r, "attempts");
    assert_int_equal(cJSON_GetArraySize(atts), 3); /* every call paid is listed */
    assert_string_equal(jstr(cJSON_GetArrayItem(atts, 0), "model"), "cheap");
    assert_string_equal(jstr(cJSON_GetArrayItem(atts, 1), "model"), "mid");
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(atts, 1), "vote")->valueint, 1);
    /* 3 calls of 10 + 2 tokens at $1+2, $10+20, $100+200 per M */
    assert_float_equal(cJSON_GetObjectItem(r, "cost_usd")->valuedouble, (14 + 140 + 1400) * 1e-6,
                       1e-12);
    cJSON_Delete(r);
    wk_task_free(t);
}

static void test_agree_tier_accepts_when_enough_labels_match(void **state)
{
    (void)state;
    classify_casc((wk_tier){.model = &models[0],
                            .attempts = 1,
                            .agree = {&models[0], &models[1]},
                            .nagree = 2,
                            .samples = 2,
                            .vote_min = 3});
    wk_task *t = parse_ok(CLS_TASK);
    wk_action a[ACTS_MAX];
    assert_int_equal(feed(t, (wk_event){.kind = WK_EV_START}, a), 2);
    assert_int_equal(a[0].n, 2); /* each model for all its samples */
    assert_int_equal(a[1].n, 2);
    /* cheap gives both its answers in one call; mid's API gave one of the two. */
    cJSON *more = cJSON_Parse("[{\"text\": \"feature\", \"finish_reason\": \"stop\"}]");
    assert_int_equal(round_answer(t, 0, "bug", more, a), 0);
    cJSON_Delete(more);
    assert_int_equal(round_answer(t, 1, "bug", NULL, a), 1);
    assert_int_equal(validate_then(t, a, "bug", 0, "bug"), 1);
    assert_true(a[0].same_call);
    assert_int_equal(validate_then(t, a, "feature", 0, "feature"), 1);
    assert_int_equal(validate_then(t, a, "bug", 1, "bug"), 1);
    /* mid's second sample: one more call, alone, once the round is voted on. */
    assert_int_equal(a[0].kind, WK_ACT_CALL);
    assert_string_equal(a[0].model->name, "mid");
    assert_int_equal(a[0].vote, 1);
    assert_int_equal(a[0].n, 1);
    assert_int_equal(round_answer(t, 1, "bug", NULL, a), 1);
    assert_int_equal(validate_then(t, a, "bug", 1, "bug"), 1);
    assert_int_equal(a[0].kind, WK_ACT_FINISH);
    assert_string_equal(jstr(a[0].line, "status"), "accepted");
    assert_string_equal(jstr(a[0].line, "model"), "cheap");
    assert_string_equal(jstr(a[0].line, "label"), "bug");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(a[0].line, "attempts")), 4);
    cJSON_Delete(a[0].line);
    wk_task_free(t);
}

/* A vote's call that fails for good fails the tier as a failed call does, once the round is in. */
static void test_agree_round_with_a_failed_call_climbs_after_all_are_in(void **state)
{
    (void)state;
    classify_casc((wk_tier){.model = &models[0],
                            .attempts = 1,
                            .agree = {&models[0], &models[1]},
                            .nagree = 2,
                            .vote_min = 2});
    wk_task *t = parse_ok(CLS_TASK);
    wk_action a[ACTS_MAX];
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    wk_event f = {.kind = WK_EV_CALL_FAILED,
                  .vote = 0,
                  .error_reason = "http_500",
                  .error_message = "server error"};
    assert_int_equal(feed(t, f, a), 0); /* mid's call is still out */
    assert_int_equal(round_answer(t, 1, "bug", NULL, a), 2);
    assert_int_equal(a[0].kind, WK_ACT_LOG);
    assert_string_equal(jstr(a[0].line, "reason"), "http_500");
    assert_int_equal(a[1].kind, WK_ACT_CALL);
    assert_string_equal(a[1].model->name, "top");
    cJSON_Delete(a[0].line);
    assert_int_equal(vote_once(t, "bug", NULL, "bug", -1, a), 1);
    const cJSON *atts = cJSON_GetObjectItem(a[0].line, "attempts");
    assert_int_equal(cJSON_GetArraySize(atts), 3); /* mid's answer was paid: it is listed */
    assert_string_equal(jstr(cJSON_GetArrayItem(atts, 0), "error"), "server error");
    assert_string_equal(jstr(cJSON_GetArrayItem(atts, 1), "model"), "mid");
    cJSON_Delete(a[0].line);
    wk_task_free(t);
}

/*
 * An answer of a round that fails its checks is a vote for no label (the
 * others are paid and in hand): two of three still carry min 2, and with
 * two models the tier climbs on disagreement with every attempt judged.
 */
static void test_agree_round_answer_failing_its_checks_votes_for_no_label(void **state)
{
    (void)state;
    classify_casc((wk_tier){.model = &models[0],
                            .attempts = 1,
                            .agree = {&models[0], &models[1], &models[2]},
                            .nagree = 3,
                            .vote_min = 2});
    wk_task *t = parse_ok(CLS_TASK);
    wk_action a[ACTS_MAX];
    assert_int_equal(feed(t, (wk_event){.kind = WK_EV_START}, a), 3);
    assert_int_equal(round_answer(t, 2, "bug", NULL, a), 0);
    assert_int_equal(round_answer(t, 0, "no idea", NULL, a), 0);
    assert_int_equal(round_answer(t, 1, "bug", NULL, a), 1);
    assert_int_equal(a[0].kind, WK_ACT_VALIDATE);
    assert_int_equal(feed(t, verdict(0, "label", "no_label", NULL), a), 1);
    assert_int_equal(validate_then(t, a, "bug", 1, "bug"), 1);
    assert_int_equal(validate_then(t, a, "bug", 2, "bug"), 1);
    assert_int_equal(a[0].kind, WK_ACT_FINISH);
    assert_string_equal(jstr(a[0].line, "status"), "accepted");
    assert_string_equal(jstr(a[0].line, "label"), "bug");
    cJSON_Delete(a[0].line);
    wk_task_free(t);

    classify_casc((wk_tier){.model = &models[0],
                            .attempts = 1,
                            .agree = {&models[0], &models[1]},
                            .nagree = 2,
                            .vote_min = 2});
    t = parse_ok(CLS_TASK);
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    round_answer(t, 0, "no idea", NULL, a);
    assert_int_equal(round_answer(t, 1, "bug", NULL, a), 1);
    assert_int_equal(feed(t, verdict(0, "label", "no_label", NULL), a), 1);
    assert_int_equal(validate_then(t, a, "bug", 1, "bug"), 2);
    assert_int_equal(a[0].kind, WK_ACT_LOG);
    assert_string_equal(jstr(a[0].line, "reason"), "disagreement");
    assert_non_null(strstr(jstr(a[0].line, "evidence"), "cheap: (no label)\nmid: bug"));
    cJSON_Delete(a[0].line);
    assert_int_equal(vote_once(t, "bug", NULL, "bug", -1, a), 1);
    const cJSON *atts = cJSON_GetObjectItem(a[0].line, "attempts");
    const cJSON *v0 = cJSON_GetObjectItem(cJSON_GetArrayItem(atts, 0), "verdict");
    const cJSON *v1 = cJSON_GetObjectItem(cJSON_GetArrayItem(atts, 1), "verdict");
    assert_string_equal(jstr(v0, "reason"), "no_label");
    assert_string_equal(jstr(v1, "reason"), "disagreement");
    cJSON_Delete(a[0].line);
    wk_task_free(t);
}

/* The task budget must hold every call of the round before any is sent; a lost one is resent alone.
 */
static void test_agree_round_reserves_all_votes_and_resends_a_lost_one_alone(void **state)
{
    (void)state;
    classify_casc((wk_tier){.model = &models[0],
                            .attempts = 1,
                            .agree = {&models[0], &models[1]},
                            .nagree = 2,
                            .vote_min = 2});
    /* About $0.002 for cheap's worst case and $0.02 for mid's: $0.01 holds one, not both. */
    const char *poor = "{\"id\":\"c2\",\"kind\":\"classify\",\"prompt\":\"ticket\",\"budget_usd\":"
                       "0.01,\"schema\":{\"type\":\"object\",\"properties\":{\"label\":{\"enum\":"
                       "[\"bug\",\"feature\"]}}}}";
    wk_task *t = parse_ok(poor);
    wk_action a[ACTS_MAX];
    assert_int_equal(feed(t, (wk_event){.kind = WK_EV_START}, a), 1);
    assert_int_equal(a[0].kind, WK_ACT_FINISH);
    assert_string_equal(jstr(a[0].line, "status"), "over_budget");
    assert_non_null(strstr(jstr(a[0].line, "reason"), "the next 2 calls"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(a[0].line, "attempts")), 0);
    cJSON_Delete(a[0].line);
    wk_task_free(t);

    t = parse_ok(CLS_TASK);
    assert_int_equal(feed(t, (wk_event){.kind = WK_EV_START}, a), 2);
    wk_event lost = {.kind = WK_EV_LOST_CALL, .vote = 1, .lost_cost_usd = 0.001};
    assert_int_equal(feed(t, lost, a), 1);
    assert_int_equal(a[0].kind, WK_ACT_CALL);
    assert_string_equal(a[0].model->name, "mid");
    assert_int_equal(a[0].vote, 1);
    assert_int_equal(round_answer(t, 0, "bug", NULL, a), 0);
    assert_int_equal(round_answer(t, 1, "bug", NULL, a), 1);
    assert_int_equal(validate_then(t, a, "bug", 0, "bug"), 1);
    assert_int_equal(validate_then(t, a, "bug", 1, "bug"), 1);
    assert_string_equal(jstr(a[0].line, "status"), "accepted");
    assert_float_equal(cJSON_GetObjectItem(a[0].line, "cost_usd")->valuedouble,
                       0.001 + (14 + 140) * 1e-6, 1e-12);
    cJSON_Delete(a[0].line);
    wk_task_free(t);
}

static void test_logprob_tier_reads_the_label_tokens_and_climbs_below_threshold(void **state)
{
    (void)state;
    classify_casc((wk_tier){
        .model = &models[0], .attempts = 1, .confidence = WK_CONF_LOGPROBS, .min_confidence = 0.5});
    tiers[1].confidence = WK_CONF_LOGPROBS;
    tiers[1].min_confidence = 0.5;
    wk_task *t = parse_ok(CLS_TASK);
    wk_action a[ACTS_MAX];
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    assert_true(a[0].logprobs);
    /* {"label": "feature"}: the label is two tokens, "feat" and "ure", at p = 0.8 x 0.5. */
    cJSON *lp = cJSON_Parse("[{\"token\":\"{\\\"label\\\": \\\"\",\"logprob\":-0.01},"
                            "{\"token\":\"feat\",\"logprob\":-0.22314355},"
                            "{\"token\":\"ure\",\"logprob\":-0.69314718},"
                            "{\"token\":\"\\\"}\",\"logprob\":-0.01}]");
    assert_int_equal(vote_once(t, "{\"label\": \"feature\"}", lp, "feature", -1, a), 2);
    assert_string_equal(jstr(a[0].line, "reason"), "low_confidence");
    assert_non_null(strstr(jstr(a[0].line, "evidence"), "cheap: feature (confidence 0.400)"));
    cJSON_Delete(a[0].line);
    /* An answer without logprobs has no confidence: doubt, and the last tier ends exhausted. */
    assert_int_equal(vote_once(t, "bug", NULL, "bug", -1, a), 1);
    assert_string_equal(jstr(a[0].line, "status"), "exhausted");
    cJSON_Delete(a[0].line);
    cJSON_Delete(lp);
    wk_task_free(t);

    /* The same tokens at p = 0.9 x 0.9 = 0.81 pass. */
    t = parse_ok(CLS_TASK);
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    lp = cJSON_Parse("[{\"token\":\"feat\",\"logprob\":-0.10536052},"
                     "{\"token\":\"ure\",\"logprob\":-0.10536052}]");
    assert_int_equal(vote_once(t, "feature", lp, "feature", -1, a), 1);
    assert_string_equal(jstr(a[0].line, "status"), "accepted");
    const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(a[0].line, "attempts"), 0);
    assert_float_equal(cJSON_GetObjectItem(a0, "confidence")->valuedouble, 0.81, 1e-6);
    cJSON_Delete(a[0].line);
    cJSON_Delete(lp);
    wk_task_free(t);
}

/* A verdict the journal kept has no label: the router reads it again from the answer. */
static void test_verdict_without_label_is_read_again_from_the_answer(void **state)
{
    (void)state;
    classify_casc((wk_tier){.model = &models[0],
                            .attempts = 1,
                            .agree = {&models[0], &models[1]},
                            .nagree = 2,
                            .vote_min = 2});
    wk_task *t = parse_ok(CLS_TASK);
    wk_action a[ACTS_MAX];
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    assert_int_equal(round_answer(t, 0, "Feature: dark mode", NULL, a), 0);
    assert_int_equal(round_answer(t, 1, "{\"label\": \"feature\"}", NULL, a), 1);
    assert_int_equal(validate_then(t, a, "Feature: dark mode", 0, ""), 1);
    assert_int_equal(validate_then(t, a, "{\"label\": \"feature\"}", 1, ""), 1);
    assert_string_equal(jstr(a[0].line, "status"), "accepted");
    assert_string_equal(jstr(a[0].line, "label"), "feature");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(a[0].line, "correct")));
    cJSON_Delete(a[0].line);
    wk_task_free(t);
}

static void test_self_confidence_tier_uses_the_verdict_score(void **state)
{
    (void)state;
    classify_casc((wk_tier){
        .model = &models[0], .attempts = 1, .confidence = WK_CONF_SELF, .min_confidence = 0.7});
    casc.doubt_feedback = 1;
    wk_task *t = parse_ok(CLS_TASK);
    wk_action a[ACTS_MAX];
    feed(t, (wk_event){.kind = WK_EV_START}, a);
    assert_false(a[0].logprobs);
    assert_int_equal(vote_once(t, "{\"label\":\"bug\",\"confidence\":0.6}", NULL, "bug", 0.6, a),
                     2);
    assert_string_equal(jstr(a[0].line, "validator"), "confidence");
    assert_int_equal(cJSON_GetArraySize(a[1].messages), 4); /* doubt_feedback: on */
    cJSON_Delete(a[0].line);
    casc.doubt_feedback = 0;
    wk_task_free(t);
}

/*
 * The semantic start tier: the advice moves the first call up, each tier
 * passed over logged as a climb with reason similar_history; a tier the
 * rules refuse is not taken because of the advice, and advice above every
 * tier the rules take falls back to the cascade's first tier.
 */
static void test_similar_start_skips_lower_tiers_within_the_rules(void **state)
{
    (void)state;
    cJSON *note = cJSON_Parse("{\"by\":\"similar\",\"tier\":2,\"neighbours\":10,"
                              "\"votes\":6,\"history\":80}");
    wk_task *t = parse_ok(TASK);
    wk_action a[ACTS_MAX];
    wk_event st = {.kind = WK_EV_START,
                   .now_ms = 1700000000000,
                   .start_tier = 2,
                   .start_note = note,
                   .start_cost_usd = 0.00001};
    int n = feed(t, st, a);
    assert_int_equal(n, 3);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(a[i].kind, WK_ACT_LOG);
        assert_string_equal(jstr(a[i].line, "reason"), "similar_history");
        assert_string_equal(jstr(a[i].line, "validator"), "similar");
        assert_int_equal(
            cJSON_GetObjectItem(cJSON_GetObjectItem(a[i].line, "from"), "tier")->valueint, i);
        assert_non_null(strstr(jstr(a[i].line, "evidence"), "accepted 6 of the task's 10"));
        cJSON_Delete(a[i].line);
    }
    assert_int_equal(a[2].kind, WK_ACT_CALL);
    assert_string_equal(a[2].model->name, "top");
    /* Accepted there: the result carries the advice and the embedding's cost. */
    n = attempt(t, "top", 1, NULL, a);
    cJSON *res = a[n - 1].line;
    assert_int_equal(cJSON_GetObjectItem(res, "tier")->valueint, 2);
    const cJSON *start = cJSON_GetObjectItem(res, "start");
    assert_non_null(start);
    assert_int_equal(cJSON_GetObjectItem(start, "tier")->valueint, 2);
    assert_float_equal(cJSON_GetObjectItem(res, "cost_usd")->valuedouble, 0.02001, 1e-9);
    cJSON_Delete(res);
    wk_task_free(t);

    /* The top tier's context cannot hold the prompt: the advice is dropped, tier 0 starts. */
    models[2].context = 1;
    t = parse_ok(TASK);
    n = feed(t, st, a);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].kind, WK_ACT_CALL);
    assert_string_equal(a[0].model->name, "cheap");
    wk_task_free(t);
    models[2].context = 100000;

    /* Advice of tier 1 where tier 0 is skipped by the context window already: no similar log. */
    models[0].context = 1;
    st.start_tier = 1;
    t = parse_ok(TASK);
    n = feed(t, st, a);
    assert_int_equal(n, 2);
    assert_string_equal(jstr(a[0].line, "reason"), "context_too_small");
    cJSON_Delete(a[0].line);
    assert_string_equal(a[1].model->name, "mid");
    wk_task_free(t);
    models[0].context = 100000;
    cJSON_Delete(note);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_pass_at_tier0_finishes_accepted_with_cost, setup),
        cmocka_unit_test_setup(test_failure_climbs_with_feedback_in_next_request, setup),
        cmocka_unit_test_setup(test_feedback_off_resends_the_original_prompt, setup),
        cmocka_unit_test_setup(test_attempts_retry_same_tier_before_climbing, setup),
        cmocka_unit_test_setup(test_last_tier_failing_ends_exhausted_with_best_answer, setup),
        cmocka_unit_test_setup(test_skip_rule_on_the_last_tier_is_said_in_the_result, setup),
        cmocka_unit_test_setup(test_truncated_answer_fails_without_validation, setup),
        cmocka_unit_test_setup(test_call_failures_everywhere_end_in_error, setup),
        cmocka_unit_test_setup(test_budget_too_small_for_next_tier_ends_over_budget, setup),
        cmocka_unit_test_setup(test_tier_whose_context_is_too_small_is_skipped_and_logged, setup),
        cmocka_unit_test_setup(test_tier_whose_skip_rule_holds_is_skipped_and_logged, setup),
        cmocka_unit_test_setup(test_four_skipped_tiers_are_each_logged, setup),
        cmocka_unit_test_setup(test_has_tests_is_a_non_empty_command_for_router_and_tune, setup),
        cmocka_unit_test_setup(test_lost_call_is_charged_and_resent_only_within_budget, setup),
        cmocka_unit_test_setup(test_similar_start_skips_lower_tiers_within_the_rules, setup),
        cmocka_unit_test_setup(test_bad_task_lines_become_invalid_task_results, setup),
        cmocka_unit_test_setup(test_events_after_finish_are_ignored, setup),
        cmocka_unit_test_setup(
            test_agree_tier_asks_each_model_in_parallel_then_climbs_on_disagreement, setup),
        cmocka_unit_test_setup(test_agree_tier_accepts_when_enough_labels_match, setup),
        cmocka_unit_test_setup(test_agree_round_with_a_failed_call_climbs_after_all_are_in, setup),
        cmocka_unit_test_setup(test_agree_round_answer_failing_its_checks_votes_for_no_label,
                               setup),
        cmocka_unit_test_setup(test_agree_round_reserves_all_votes_and_resends_a_lost_one_alone,
                               setup),
        cmocka_unit_test_setup(test_logprob_tier_reads_the_label_tokens_and_climbs_below_threshold,
                               setup),
        cmocka_unit_test_setup(test_self_confidence_tier_uses_the_verdict_score, setup),
        cmocka_unit_test_setup(test_verdict_without_label_is_read_again_from_the_answer, setup),
    };
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
