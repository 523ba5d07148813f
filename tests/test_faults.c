/*
 * Calls under fire: the real `cascade` binary against a mock that
 * misbehaves on purpose (429 with Retry-After, 500, 529, 401, stalls, cut
 * bodies, finish reason length, spend limit, huge bodies, resets). Each case
 * asserts on the result lines and on the mock's request log: what was
 * retried, how long after, and what moved to a fallback or up a tier.
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
#include <unistd.h>

#include "harness.h"
#include "lib/util.h"

/*
 * Providers: mock (openai, keyed), mock-anth (anthropic), mock2 (openai),
 * brk (a breaker that opens after 2 failures). The breaker of the others is
 * set out of reach so that only the breaker case meets one.
 */
static const char *MODELS =
    "{\"providers\":{"
    "\"mock\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\",\"key_env\":\"CASCADE_MOCK_KEY\","
    "\"breaker_failures\":100000},"
    "\"mock-anth\":{\"api\":\"anthropic\",\"base_url\":\"${MOCK_URL}/v1\",\"key_env\":null,"
    "\"breaker_failures\":100000},"
    "\"mock2\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\",\"key_env\":null,"
    "\"breaker_failures\":100000},"
    "\"brk\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\",\"key_env\":null,"
    "\"breaker_failures\":2,\"breaker_cooldown_s\":60}},"
    "\"models\":{"
    "\"cheap\":{\"provider\":\"mock\",\"input_usd_per_mtok\":0.5,\"output_usd_per_mtok\":1,"
    "\"max_tokens\":200,\"fallbacks\":[\"cheap-b\"]},"
    "\"cheap-b\":{\"provider\":\"mock-anth\",\"input_usd_per_mtok\":0.5,\"output_usd_per_mtok\":1,"
    "\"max_tokens\":200},"
    "\"solo\":{\"provider\":\"mock\",\"input_usd_per_mtok\":0.5,\"output_usd_per_mtok\":1,"
    "\"max_tokens\":200},"
    "\"mid\":{\"provider\":\"mock2\",\"input_usd_per_mtok\":5,\"output_usd_per_mtok\":10,"
    "\"max_tokens\":200},"
    "\"b1\":{\"provider\":\"brk\",\"input_usd_per_mtok\":1,\"output_usd_per_mtok\":1,"
    "\"max_tokens\":200}}}";

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"label\":{\"enum\":[\"bug\",\"feature\",\"question\"]}},"
    "\"required\":[\"label\"],\"additionalProperties\":false}";

static char *cdir, *models;

static void write_cascade(const char *name, const char *tiers)
{
    char *p = wk_xasprintf("%s/%s.json", cdir, name);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"name\":\"%s\",\"validators\":[\"schema\"],\"feedback\":true,\"tiers\":%s}\n",
            name, tiers);
    fclose(f);
    free(p);
}

static int group_setup(void **state)
{
    (void)state;
    if (h_config_setup(MODELS, &cdir, &models))
        return -1;
    setenv("CASCADE_MOCK_KEY", "fake-test-key-not-a-secret", 1);
    write_cascade("main", "[{\"model\":\"cheap\"},{\"model\":\"mid\"}]");
    write_cascade("solo-c", "[{\"model\":\"solo\"}]");
    write_cascade("spend-c", "[{\"model\":\"solo\"},{\"model\":\"mid\"}]");
    write_cascade("brk-c", "[{\"model\":\"b1\"}]");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_config_teardown(cdir, models);
    return 0;
}

/*
 * Writes n tasks of one cascade and their recordings. Task i's cheap
 * answer is wrong when i % 5 == 4 (it climbs); every other answer is right.
 */
static void write_batch(const char *tag, const char *cascade, int n, const char *extra_task_json,
                        char **tasks_path, char **recs_path)
{
    wk_buf t, r;
    wk_buf_init(&t, 64u << 20);
    wk_buf_init(&r, 64u << 20);
    const char *ok = "```json\\n{\\\"label\\\": \\\"bug\\\"}\\n```";
    const char *bad = "{\\\"label\\\": \\\"bugg\\\"}";
    const char *all[] = {"cheap", "cheap-b", "solo", "mid", "b1"};
    for (int i = 0; i < n; i++) {
        wk_buf_appendf(&t,
                       "{\"id\":\"%s-%d\",\"kind\":\"classify\",\"cascade\":\"%s\","
                       "\"prompt\":\"ticket %d: the app crashes\",\"schema\":%s%s}\n",
                       tag, i, cascade, i, SCHEMA, extra_task_json ? extra_task_json : "");
        for (int m = 0; m < 5; m++) {
            int wrong = i % 5 == 4 && m <= 2;
            wk_buf_appendf(&r,
                           "{\"task\":\"%s-%d\",\"model\":\"%s\",\"run\":1,\"answer\":\"%s\","
                           "\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":8}}\n",
                           tag, i, all[m], wrong ? bad : ok);
        }
    }
    char *tn = wk_xasprintf("%s-tasks.jsonl", tag), *rn = wk_xasprintf("%s-recs.jsonl", tag);
    *tasks_path = h_write(tn, t.buf);
    *recs_path = h_write(rn, r.buf);
    free(tn);
    free(rn);
    wk_buf_release(&t);
    wk_buf_release(&r);
}

typedef struct run_out {
    int rc;
    cJSON *results;
    cJSON *log;
    char *err;
} run_out;

/* Runs the batch against a fresh mock with the given faults and cascade options. */
static void run_batch(const char *tag, const char *tasks, const char *recs,
                      const char *const *mock_args, const char *const *cascade_args, run_out *o)
{
    char *ln = wk_xasprintf("%s-mock.log", tag), *on = wk_xasprintf("%s-out.jsonl", tag),
         *en = wk_xasprintf("%s-err", tag);
    char *log = h_tmp(ln), *out = h_tmp(on), *errf = h_tmp(en);
    unlink(log);
    h_mock m;
    h_mock_start(&m, recs, log, mock_args);
    const char *argv[40] = {h_cascade_bin(), "run",  tasks, "--cascades", cdir,
                            "--models",      models, "-o",  out};
    int n = 9;
    for (int i = 0; cascade_args && cascade_args[i] && n < 38; i++)
        argv[n++] = cascade_args[i];
    argv[n] = NULL;
    o->rc = h_run((char *const *)argv, NULL, errf, 240);
    h_mock_stop(&m);
    o->results = h_jsonl(out);
    o->log = h_jsonl(log);
    o->err = h_slurp(errf);
    free(ln);
    free(on);
    free(en);
    free(log);
    free(out);
    free(errf);
}

static void run_out_free(run_out *o)
{
    cJSON_Delete(o->results);
    cJSON_Delete(o->log);
    free(o->err);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(f) ? f->valuedouble : NAN;
}

/* The mock's log lines for one model, in order. */
static int log_for(const cJSON *log, const char *model, const cJSON **out, int max)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, log)
    {
        const char *m = h_str(e, "model");
        if (m && strcmp(m, model) == 0 && n < max)
            out[n++] = e;
    }
    return n;
}

static const cJSON *attempt(const cJSON *results, const char *id, int k)
{
    const cJSON *r = h_find(results, "id", id);
    if (!r)
        fail_msg("no result for %s", id);
    return cJSON_GetArrayItem(cJSON_GetObjectItem(r, "attempts"), k);
}

static const char *verdict_str(const cJSON *a, const char *k)
{
    return h_str(cJSON_GetObjectItem(a, "verdict"), k);
}

static void test_429_next_request_waits_for_retry_after(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("r429", "main", 2, NULL, &tasks, &recs);
    const char *margs[] = {"--fault", "429:every:2:2@cheap", NULL};
    const char *cargs[] = {"--concurrency", "1", NULL};
    run_out o;
    run_batch("r429", tasks, recs, margs, cargs, &o);
    assert_int_equal(o.rc, 0);
    const cJSON *l[8];
    int n = log_for(o.log, "cheap", l, 8);
    assert_int_equal(n, 3);
    assert_int_equal((int)num(l[1], "status"), 429);
    double gap = num(l[2], "ts_ms") - num(l[1], "ts_ms");
    if (gap < 2000)
        fail_msg("retried %.0f ms after a 429 with Retry-After: 2", gap);
    const cJSON *a = attempt(o.results, h_str(l[1], "task"), 0);
    assert_int_equal((int)num(a, "retries"), 1);
    assert_string_equal(h_str(h_find(o.results, "id", "r429-1"), "status"), "accepted");
    run_out_free(&o);
    free(tasks);
    free(recs);
}

static void test_500_then_529_back_off_growing_then_fallback_then_climb(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("r5xx", "main", 1, NULL, &tasks, &recs);
    const char *margs[] = {"--fault", "500:1@cheap", "--fault", "529:1@cheap-b", NULL};
    const char *cargs[] = {"--retries", "2", "--escalations", "/dev/null", NULL};
    run_out o;
    run_batch("r5xx", tasks, recs, margs, cargs, &o);
    assert_int_equal(o.rc, 0);
    const cJSON *l[8];
    assert_int_equal(log_for(o.log, "cheap", l, 8), 3);
    double g1 = num(l[1], "ts_ms") - num(l[0], "ts_ms");
    double g2 = num(l[2], "ts_ms") - num(l[1], "ts_ms");
    /* 0.5 s then 1 s, each less up to 25% */
    if (!(g1 >= 375 && g2 >= 750 && g2 > g1))
        fail_msg("backoff gaps %.0f ms then %.0f ms do not grow as 0.5 s, 1 s", g1, g2);
    assert_int_equal(log_for(o.log, "cheap-b", l, 8), 3); /* the fallback, retried too */
    assert_int_equal(log_for(o.log, "mid", l, 8), 1);     /* then one tier up */
    const cJSON *r = h_find(o.results, "id", "r5xx-0");
    assert_string_equal(h_str(r, "status"), "accepted");
    assert_int_equal((int)num(r, "tier"), 1);
    const cJSON *a = attempt(o.results, "r5xx-0", 0);
    assert_string_equal(verdict_str(a, "reason"), "http_529");
    assert_int_equal((int)num(a, "retries"), 4);
    assert_int_equal((int)num(a, "fallbacks"), 1);
    assert_string_equal(h_str(a, "deployment"), "cheap-b");
    run_out_free(&o);
    free(tasks);
    free(recs);
}

static void test_401_is_not_retried_and_names_provider_and_key(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("r401", "solo-c", 1, NULL, &tasks, &recs);
    const char *margs[] = {"--fault", "401:1@solo", NULL};
    run_out o;
    run_batch("r401", tasks, recs, margs, NULL, &o);
    assert_int_equal(o.rc, 0);
    const cJSON *l[8];
    assert_int_equal(log_for(o.log, "solo", l, 8), 1);
    const cJSON *r = h_find(o.results, "id", "r401-0");
    assert_string_equal(h_str(r, "status"), "error");
    const char *e = h_str(attempt(o.results, "r401-0", 0), "error");
    if (!strstr(e, "provider mock") || !strstr(e, "$CASCADE_MOCK_KEY"))
        fail_msg("401 error \"%s\" does not name the provider and the key variable", e);
    assert_null(strstr(o.err, "fake-test-key-not-a-secret"));
    char *all = cJSON_PrintUnformatted(o.results);
    assert_null(strstr(all, "fake-test-key-not-a-secret"));
    free(all);
    run_out_free(&o);
    free(tasks);
    free(recs);
}

static void expect_timeout(const char *tag, const char *fault, const char *opt, const char *secs,
                           double want_ms)
{
    char *tasks, *recs;
    write_batch(tag, "solo-c", 1, NULL, &tasks, &recs);
    const char *margs[] = {"--fault", fault, NULL};
    const char *cargs[] = {opt, secs, "--retries", "0", NULL};
    run_out o;
    run_batch(tag, tasks, recs, margs, cargs, &o);
    char *id = wk_xasprintf("%s-0", tag);
    const cJSON *a = attempt(o.results, id, 0);
    assert_string_equal(verdict_str(a, "reason"), "timeout");
    double lat = num(a, "latency_ms");
    if (fabs(lat - want_ms) > want_ms * 0.1)
        fail_msg("%s: timed out after %.0f ms, configured %.0f ms", fault, lat, want_ms);
    free(id);
    run_out_free(&o);
    free(tasks);
    free(recs);
}

static void test_stalls_time_out_within_ten_percent(void **state)
{
    (void)state;
    expect_timeout("rsh", "stall-headers:1:5000@solo", "--first-byte-timeout", "1", 1000);
    expect_timeout("rsb", "stall-body:1:5000@solo", "--timeout", "1.5", 1500);
}

static void test_truncated_json_and_length_are_classified_failures(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("rtr", "solo-c", 1, NULL, &tasks, &recs);
    const char *margs[] = {"--fault", "truncate:1@solo", NULL};
    const char *cargs[] = {"--retries", "1", NULL};
    run_out o;
    run_batch("rtr", tasks, recs, margs, cargs, &o);
    assert_int_equal(o.rc, 0);
    assert_string_equal(h_str(h_find(o.results, "id", "rtr-0"), "status"), "error");
    assert_string_equal(verdict_str(attempt(o.results, "rtr-0", 0), "reason"), "bad_response");
    const cJSON *l[8];
    assert_int_equal(log_for(o.log, "solo", l, 8), 2); /* a cut body is retried once */
    run_out_free(&o);

    const char *margs2[] = {"--fault", "length:1@solo", NULL};
    run_batch("rln", tasks, recs, margs2, NULL, &o);
    assert_int_equal(o.rc, 0);
    const cJSON *a = attempt(o.results, "rtr-0", 0);
    assert_string_equal(verdict_str(a, "validator"), "truncation");
    assert_string_equal(verdict_str(a, "reason"), "truncated");
    assert_string_equal(h_str(h_find(o.results, "id", "rtr-0"), "status"), "exhausted");
    run_out_free(&o);
    free(tasks);
    free(recs);
}

static void test_spend_limit_disables_provider_once(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("rsp", "spend-c", 3, NULL, &tasks, &recs);
    const char *margs[] = {"--fault", "spend-limit:1@solo", NULL};
    const char *cargs[] = {"--concurrency", "1", NULL};
    run_out o;
    run_batch("rsp", tasks, recs, margs, cargs, &o);
    assert_int_equal(o.rc, 0);
    const cJSON *l[8];
    assert_int_equal(log_for(o.log, "solo", l, 8), 1);
    const char *p = strstr(o.err, "spend limit reached");
    assert_non_null(p);
    assert_null(strstr(p + 1, "spend limit reached"));
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "rsp-%d", i);
        const cJSON *r = h_find(o.results, "id", id);
        assert_string_equal(h_str(r, "status"), "accepted");
        assert_int_equal((int)num(r, "tier"), 1);
    }
    run_out_free(&o);
    free(tasks);
    free(recs);
}

static void test_body_over_cap_has_its_own_error(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("rbig", "solo-c", 1, NULL, &tasks, &recs);
    const char *margs[] = {"--fault", "body-huge:1:3@solo", NULL};
    const char *cargs[] = {"--response-cap", "1", "--retries", "0", NULL};
    run_out o;
    run_batch("rbig", tasks, recs, margs, cargs, &o);
    assert_int_equal(o.rc, 0);
    assert_string_equal(verdict_str(attempt(o.results, "rbig-0", 0), "reason"), "body_too_big");
    run_out_free(&o);
    free(tasks);
    free(recs);
}

static void test_breaker_opens_after_consecutive_failures(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("rbk", "brk-c", 4, NULL, &tasks, &recs);
    const char *margs[] = {"--fault", "500:1@b1", NULL};
    const char *cargs[] = {"--concurrency", "1", "--retries", "0", NULL};
    run_out o;
    run_batch("rbk", tasks, recs, margs, cargs, &o);
    assert_int_equal(o.rc, 0);
    const cJSON *l[8];
    /* Two failures open it: the other two tasks never reach the provider. */
    assert_int_equal(log_for(o.log, "b1", l, 8), 2);
    assert_string_equal(verdict_str(attempt(o.results, "rbk-3", 0), "reason"), "unavailable");
    run_out_free(&o);
    free(tasks);
    free(recs);
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* status and tier of every task, as "id status tier" lines sorted. */
static char *outcome_table(const cJSON *results)
{
    int n = cJSON_GetArraySize(results);
    char **lines = wk_xcalloc((size_t)n, sizeof(char *));
    int i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, results)
    {
        const cJSON *t = cJSON_GetObjectItem(r, "tier");
        lines[i++] = wk_xasprintf("%s %s %d\n", h_str(r, "id"), h_str(r, "status"),
                                  cJSON_IsNumber(t) ? t->valueint : -1);
    }
    qsort(lines, (size_t)n, sizeof(char *), cmp_strp);
    wk_buf b;
    wk_buf_init(&b, 1u << 24);
    for (i = 0; i < n; i++) {
        wk_buf_append(&b, lines[i], strlen(lines[i]));
        free(lines[i]);
    }
    free(lines);
    return wk_buf_detach(&b, NULL);
}

static void test_500_tasks_with_30_percent_faults_end_as_without(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("r500", "main", 500, NULL, &tasks, &recs);
    const char *cargs[] = {"--concurrency", "100", "--retries", "10", NULL};
    run_out clean, faulty;
    run_batch("r500c", tasks, recs, NULL, cargs, &clean);
    /* The first spec that fires applies: these add up to about 33% of requests. */
    const char *margs[] = {"--fault",  "429:0.1:0.05",  "--fault",  "500:0.1", "--fault",
                           "503:0.05", "--fault",       "529:0.04", "--fault", "reset:0.05",
                           "--fault",  "truncate:0.04", NULL};
    run_batch("r500f", tasks, recs, margs, cargs, &faulty);
    assert_int_equal(clean.rc, 0);
    assert_int_equal(faulty.rc, 0);
    assert_int_equal(cJSON_GetArraySize(clean.results), 500);
    assert_int_equal(cJSON_GetArraySize(faulty.results), 500);
    int faults = 0, total = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, faulty.log)
    {
        total++;
        faults += cJSON_IsString(cJSON_GetObjectItem(e, "fault"));
    }
    if (faults * 100 < total * 28)
        fail_msg("only %d of %d requests were faulted", faults, total);
    char *a = outcome_table(clean.results), *b = outcome_table(faulty.results);
    if (strcmp(a, b) != 0) {
        char *sa = a, *sb = b;
        while (*sa && *sa == *sb)
            sa++, sb++;
        while (sa > a && sa[-1] != '\n')
            sa--, sb--;
        fail_msg("statuses or tiers differ with faults injected:\n%.80s\n%.80s", sa, sb);
    }
    assert_non_null(strstr(a, "r500-4 accepted 1")); /* some climbed */
    assert_non_null(strstr(a, "r500-0 accepted 0"));
    fprintf(stderr, "  %d of %d requests faulted; final outcomes identical\n", faults, total);
    free(a);
    free(b);
    run_out_free(&clean);
    run_out_free(&faulty);
    free(tasks);
    free(recs);
}

static void test_task_budget_allowing_tier0_only_ends_over_budget(void **state)
{
    (void)state;
    char *tasks, *recs;
    /* cheap's worst case is about $0.0003, mid's about $0.003 */
    write_batch("rtb", "main", 5, ",\"budget_usd\":0.001", &tasks, &recs);
    run_out o;
    run_batch("rtb", tasks, recs, NULL, NULL, &o);
    assert_int_equal(o.rc, 0);
    const cJSON *r = h_find(o.results, "id", "rtb-4"); /* its cheap answer is wrong */
    assert_string_equal(h_str(r, "status"), "over_budget");
    assert_non_null(strstr(h_str(r, "reason"), "task budget"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "attempts")), 1);
    assert_string_equal(h_str(h_find(o.results, "id", "rtb-0"), "status"), "accepted");
    run_out_free(&o);
    free(tasks);
    free(recs);
}

static void test_run_budget_stops_within_one_reservation_with_200_in_flight(void **state)
{
    (void)state;
    char *tasks, *recs;
    write_batch("rrb", "solo-c", 1000, NULL, &tasks, &recs);
    const char *margs[] = {"--latency", "200", NULL};
    const char *cargs[] = {"--concurrency", "200", "--budget", "0.005", NULL};
    run_out o;
    run_batch("rrb", tasks, recs, margs, cargs, &o);
    assert_int_equal(o.rc, 3); /* stopped before the input was done */
    assert_non_null(strstr(o.err, "run budget"));
    double spent = 0, worst = 0;
    int calls = 0, over = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, o.results)
    {
        spent += num(r, "cost_usd");
        calls += cJSON_GetArraySize(cJSON_GetObjectItem(r, "attempts"));
        if (strcmp(h_str(r, "status"), "over_budget") != 0)
            continue;
        over++;
        /* The refusal names the refused call's worst case: "may cost up to $X". */
        const char *p = strstr(h_str(r, "reason"), "up to $");
        assert_non_null(p);
        double w = atof(p + 7);
        worst = w > worst ? w : worst;
    }
    if (spent > 0.005 || spent < 0.005 - worst)
        fail_msg("spent $%.6f of a $0.005 budget; one reservation is about $%.6f", spent, worst);
    assert_true(over > 0);
    int requests = cJSON_GetArraySize(o.log);
    assert_int_equal(requests, calls);
    fprintf(stderr, "  run budget $0.005: spent $%.6f in %d calls, %d tasks over_budget\n", spent,
            calls, over);
    run_out_free(&o);
    free(tasks);
    free(recs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_429_next_request_waits_for_retry_after),
        cmocka_unit_test(test_500_then_529_back_off_growing_then_fallback_then_climb),
        cmocka_unit_test(test_401_is_not_retried_and_names_provider_and_key),
        cmocka_unit_test(test_stalls_time_out_within_ten_percent),
        cmocka_unit_test(test_truncated_json_and_length_are_classified_failures),
        cmocka_unit_test(test_spend_limit_disables_provider_once),
        cmocka_unit_test(test_body_over_cap_has_its_own_error),
        cmocka_unit_test(test_breaker_opens_after_consecutive_failures),
        cmocka_unit_test(test_500_tasks_with_30_percent_faults_end_as_without),
        cmocka_unit_test(test_task_budget_allowing_tier0_only_ends_over_budget),
        cmocka_unit_test(test_run_budget_stops_within_one_reservation_with_200_in_flight),
    };
    return cmocka_run_group_tests_name("faults", tests, group_setup, group_teardown);
}
