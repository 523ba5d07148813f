/*
 * Provider outages and pauses (issue 12, item 2): a few seconds of 503s must
 * not fail the batch (calls are held while the breaker is open, bounded by
 * --max-wait); an outage longer than that ends tasks `error`, and a rerun of
 * the same command runs exactly those again; a rate-limit reset far in the
 * future pauses the provider for --max-wait at most, and says so.
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
#include <sys/time.h>

#include "harness.h"
#include "lib/util.h"

static const char *MODELS =
    "{\"providers\":{\"mock\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\","
    "\"key_env\":null,\"breaker_failures\":3,\"breaker_cooldown_s\":0.5}},\"models\":{"
    "\"cheap\":{\"provider\":\"mock\",\"input_usd_per_mtok\":1,\"output_usd_per_mtok\":2,"
    "\"max_tokens\":100},"
    "\"mid\":{\"provider\":\"mock\",\"input_usd_per_mtok\":10,\"output_usd_per_mtok\":20,"
    "\"max_tokens\":100}}}";

static char *cdir, *models;

static int group_setup(void **state)
{
    (void)state;
    if (h_config_setup(MODELS, &cdir, &models))
        return -1;
    free(h_write("cascades/main.json", "{\"name\":\"main\",\"validators\":[\"schema\"],"
                                       "\"tiers\":[{\"model\":\"cheap\"},{\"model\":\"mid\"}]}"));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_config_teardown(cdir, models);
    return 0;
}

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

/* n classify tasks; cheap and mid both answer "a", which passes. */
static void batch(const char *tag, int n, char **tasks, char **recs)
{
    wk_buf t, r;
    wk_buf_init(&t, 1 << 24);
    wk_buf_init(&r, 1 << 24);
    for (int i = 0; i < n; i++) {
        wk_buf_appendf(&t,
                       "{\"id\":\"%s-%d\",\"kind\":\"classify\",\"cascade\":\"main\","
                       "\"prompt\":\"p%d\",\"schema\":{\"enum\":[\"a\"]}}\n",
                       tag, i, i);
        for (int run = 1; run <= 3; run++)
            for (int m = 0; m < 2; m++)
                wk_buf_appendf(&r,
                               "{\"task\":\"%s-%d\",\"model\":\"%s\",\"run\":%d,\"answer\":"
                               "\"\\\"a\\\"\",\"usage\":{\"prompt_tokens\":10,"
                               "\"completion_tokens\":1}}\n",
                               tag, i, m ? "mid" : "cheap", run);
    }
    char *tn = wk_xasprintf("%s-tasks.jsonl", tag), *rn = wk_xasprintf("%s-recs.jsonl", tag);
    *tasks = h_write(tn, t.buf);
    *recs = h_write(rn, r.buf);
    free(tn);
    free(rn);
    wk_buf_release(&t);
    wk_buf_release(&r);
}

static int run_cascade(const char *tasks, const char *out, const char *errf, const char *conc,
                       const char *max_wait)
{
    const char *argv[] = {h_cascade_bin(), "run", tasks, "--cascades", cdir,         "--models",
                          models,          "-o",  out,   "-q",         "--max-wait", max_wait,
                          "--concurrency", conc,  NULL};
    return h_run((char *const *)argv, NULL, errf, 120);
}

static int count_status(const cJSON *res, const char *status, int tier)
{
    int n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        const cJSON *t = cJSON_GetObjectItem(x, "tier");
        n += strcmp(h_str(x, "status"), status) == 0 &&
             (tier < 0 || (cJSON_IsNumber(t) && t->valueint == tier));
    }
    return n;
}

static void outage_then_all_accepted(const char *tag, int n, const char *conc, const char *secs)
{
    char *tasks, *recs;
    batch(tag, n, &tasks, &recs);
    char *out = h_tmp(tag), *errf = wk_xasprintf("%s.err", out), *log = wk_xasprintf("%s.log", out);
    const char *margs[] = {"--outage", secs, NULL};
    h_mock m;
    h_mock_start(&m, recs, log, margs);
    double t0 = now_s();
    int rc = run_cascade(tasks, out, errf, conc, "30");
    double took = now_s() - t0;
    h_mock_stop(&m);
    char *err = h_slurp(errf);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    cJSON *res = h_jsonl(out), *reqs = h_jsonl(log);
    assert_int_equal(cJSON_GetArraySize(res), n);
    if (count_status(res, "accepted", 0) != n)
        fail_msg("%d of %d accepted at tier 0 after a %s s outage; stderr: %s",
                 count_status(res, "accepted", 0), n, secs, err);
    /* Each task has one attempt: the outage cost no climb and no failed attempt. */
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(x, "attempts")), 1);
    }
    /* The outage was real: requests met it, and the batch waited it out. */
    int failed = 0;
    cJSON_ArrayForEach(x, reqs)
    {
        failed += cJSON_GetObjectItem(x, "status")->valueint == 503;
    }
    assert_true(failed >= 3);
    assert_true(took >= atof(secs) - 0.2);
    /* Held calls probe, not hammer: about two per cooldown (0.5 s) beyond the first wave. */
    assert_true(failed <= atoi(conc) + 3 + (int)(atof(secs) / 0.5) * 2 + 4);
    assert_non_null(strstr(err, "circuit breaker open"));
    assert_non_null(strstr(err, "answering again"));
    fprintf(stderr,
            "  %s s outage, concurrency %s: %d tasks accepted in %.1f s, %d requests met "
            "the outage\n",
            secs, conc, n, took, failed);
    cJSON_Delete(res);
    cJSON_Delete(reqs);
    free(err);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
    free(log);
}

static void test_every_task_is_accepted_after_a_3s_outage(void **state)
{
    (void)state;
    outage_then_all_accepted("out3", 12, "4", "3");
}

static void test_every_task_is_accepted_after_a_3s_outage_one_at_a_time(void **state)
{
    (void)state;
    outage_then_all_accepted("out3s", 4, "1", "3");
}

static void test_every_task_is_accepted_after_a_2s_outage_with_many_in_flight(void **state)
{
    (void)state;
    outage_then_all_accepted("out2", 40, "32", "2");
}

static void test_an_outage_past_max_wait_ends_error_and_a_rerun_runs_those_again(void **state)
{
    (void)state;
    char *tasks, *recs;
    batch("long", 6, &tasks, &recs);
    char *out = h_tmp("long.jsonl"), *errf = h_tmp("long.err");
    const char *margs[] = {"--outage", "30", NULL};
    h_mock m;
    h_mock_start(&m, recs, NULL, margs);
    int rc = run_cascade(tasks, out, errf, "3", "1");
    h_mock_stop(&m);
    char *err = h_slurp(errf);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(err, "--max-wait"));
    cJSON *res = h_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), 6);
    assert_int_equal(count_status(res, "error", -1), 6);
    cJSON_Delete(res);
    free(err);

    /* The provider is back: the same command runs the six again, each written once. */
    h_mock_start(&m, recs, NULL, NULL);
    rc = run_cascade(tasks, out, errf, "3", "1");
    h_mock_stop(&m);
    err = h_slurp(errf);
    if (rc != 0)
        fail_msg("rerun exit %d: %s", rc, err);
    res = h_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), 6);
    if (count_status(res, "accepted", 0) != 6)
        fail_msg("rerun: %d accepted; stderr: %s", count_status(res, "accepted", 0), err);
    /* Its failed calls were forgotten, not charged as calls lost in a crash. */
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(x, "attempts")), 1);
        assert_true(cJSON_GetObjectItem(x, "cost_usd")->valuedouble < 1.3e-5);
    }
    cJSON_Delete(res);
    free(err);
    /* A third run has nothing to do. */
    h_mock_start(&m, recs, NULL, NULL);
    assert_int_equal(run_cascade(tasks, out, errf, "3", "1"), 0);
    h_mock_stop(&m);
    res = h_jsonl(out);
    assert_int_equal(count_status(res, "accepted", 0), 6);
    assert_int_equal(cJSON_GetArraySize(res), 6);
    cJSON_Delete(res);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
}

static void far_reset(const char *tag, const char *header, const char *max_wait)
{
    char *tasks, *recs;
    batch(tag, 3, &tasks, &recs);
    char *out = h_tmp(tag), *errf = wk_xasprintf("%s.err", out);
    const char *margs[] = {"--header", "x-ratelimit-remaining-requests: 0", "--header", header,
                           NULL};
    h_mock m;
    h_mock_start(&m, recs, NULL, margs);
    double t0 = now_s();
    int rc = run_cascade(tasks, out, errf, "1", max_wait);
    double took = now_s() - t0;
    h_mock_stop(&m);
    char *err = h_slurp(errf);
    if (rc != 0)
        fail_msg("%s: exit %d: %s", header, rc, err);
    cJSON *res = h_jsonl(out);
    if (count_status(res, "accepted", 0) != 3)
        fail_msg("%s: %d accepted: %s", header, count_status(res, "accepted", 0), err);
    if (!strstr(err, "--max-wait") || !strstr(err, "resets in"))
        fail_msg("%s: nothing said: %s", header, err);
    /* Each answer pauses the provider --max-wait: two pauses between three calls. */
    assert_true(took >= 2 * atof(max_wait) - 0.2);
    assert_true(took < 20);
    cJSON_Delete(res);
    free(err);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
}

static void test_a_far_rate_limit_reset_pauses_at_most_max_wait(void **state)
{
    (void)state;
    far_reset("far1", "x-ratelimit-reset-requests: 999999h", "1");
    far_reset("far2", "x-ratelimit-reset-tokens: 100000000000000000000000s", "0.5");
    far_reset("far3", "x-ratelimit-reset-requests: 2000000m", "1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_task_is_accepted_after_a_3s_outage),
        cmocka_unit_test(test_every_task_is_accepted_after_a_3s_outage_one_at_a_time),
        cmocka_unit_test(test_every_task_is_accepted_after_a_2s_outage_with_many_in_flight),
        cmocka_unit_test(test_an_outage_past_max_wait_ends_error_and_a_rerun_runs_those_again),
        cmocka_unit_test(test_a_far_rate_limit_reset_pauses_at_most_max_wait),
    };
    return cmocka_run_group_tests_name("outage", tests, group_setup, group_teardown);
}
