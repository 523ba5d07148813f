/*
 * A careless operator and an unlucky batch (issue 12, item 2): result keys
 * that collide with task ids, two runs on one journal or one results file,
 * a typo in the tasks path, -o naming the input, and the money side (item 4):
 * usage a provider left out or garbled, a task budget of zero. Each drives
 * the real binary against the mock and asserts on the files it leaves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "lib/util.h"

static const char *MODELS =
    "{\"providers\":{\"mock\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\","
    "\"key_env\":null}},\"models\":{"
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
    free(h_write("cascades/retry.json",
                 "{\"name\":\"retry\",\"validators\":[\"schema\"],\"feedback\":false,"
                 "\"tiers\":[{\"model\":\"cheap\",\"attempts\":2},{\"model\":\"mid\"}]}"));
    free(h_write("cascades/retryfb.json",
                 "{\"name\":\"retryfb\",\"validators\":[\"schema\"],\"feedback\":true,"
                 "\"tiers\":[{\"model\":\"cheap\",\"attempts\":2},{\"model\":\"mid\"}]}"));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_config_teardown(cdir, models);
    return 0;
}

/* A classify task line; its answer "a" passes. */
static void task_line(wk_buf *b, const char *id, const char *extra)
{
    wk_buf_appendf(b,
                   "{\"id\":\"%s\",\"kind\":\"classify\",\"cascade\":\"main\",\"prompt\":\"p\","
                   "\"schema\":{\"enum\":[\"a\"]}%s}\n",
                   id, extra ? extra : "");
}

/* A recording of model for task: answer (a JSON string's inside) and usage JSON or NULL. */
static void rec_line(wk_buf *b, const char *id, const char *model, int run, const char *answer,
                     const char *usage)
{
    wk_buf_appendf(b, "{\"task\":\"%s\",\"model\":\"%s\",\"run\":%d,\"answer\":\"%s\"", id, model,
                   run, answer);
    if (usage)
        wk_buf_appendf(b, ",\"usage\":%s", usage);
    wk_buf_appendf(b, "}\n");
}

/* Runs cascade on tasks with up to 6 more arguments; returns the exit status. */
static int run_cascade(const char *tasks, const char *out, const char *errf, const char *a1,
                       const char *a2, const char *a3, const char *a4)
{
    const char *argv[24] = {h_cascade_bin(), "run",  tasks, "--cascades", cdir,
                            "--models",      models, "-o",  out,          "-q"};
    int n = 10;
    const char *more[] = {a1, a2, a3, a4};
    for (int i = 0; i < 4; i++)
        if (more[i])
            argv[n++] = more[i];
    argv[n] = NULL;
    return h_run((char *const *)argv, NULL, errf, 60);
}

/* ---- keys ------------------------------------------------------------------------ */

static void test_task_ids_that_match_invalid_lines_keys_run_and_are_written_once(void **state)
{
    (void)state;
    wk_buf t, r;
    wk_buf_init(&t, 1 << 20);
    wk_buf_init(&r, 1 << 20);
    /* Line 1: not JSON. Line 2: id "x" but no prompt. Line 3: a bad budget. */
    wk_buf_appendf(&t, "not json\n");
    wk_buf_appendf(&t, "{\"id\":\"x\",\"kind\":\"classify\"}\n");
    task_line(&t, "y", ",\"budget_usd\":\"lots\"");
    /* Valid tasks whose ids are the old and new keys of those lines, and the ids they carried. */
    const char *ids[] = {"x", "y", "line:1", "line:2", "#line:1", "#line:2", "#dup:2", "#id:x"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        task_line(&t, ids[i], NULL);
        rec_line(&r, ids[i], "cheap", 1, "\\\"a\\\"",
                 "{\"prompt_tokens\":10,\"completion_tokens\":1}");
    }
    char *tasks = h_write("keys-tasks.jsonl", t.buf), *recs = h_write("keys-recs.jsonl", r.buf);
    char *out = h_tmp("keys-out.jsonl"), *errf = h_tmp("keys-err");
    h_mock m;
    h_mock_start(&m, recs, NULL, NULL);
    for (int pass = 0; pass < 2; pass++) { /* the second pass resumes: nothing new */
        int rc = run_cascade(tasks, out, errf, NULL, NULL, NULL, NULL);
        if (rc != 0)
            fail_msg("pass %d exited %d: %s", pass, rc, h_slurp(errf));
        cJSON *res = h_jsonl(out);
        assert_int_equal(cJSON_GetArraySize(res), 3 + (int)(sizeof ids / sizeof ids[0]));
        for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
            int want = (strcmp(ids[i], "x") == 0 || strcmp(ids[i], "y") == 0) ? 2 : 1;
            if (h_count(res, "id", ids[i]) != want)
                fail_msg("pass %d: %d lines for %s, want %d", pass, h_count(res, "id", ids[i]),
                         ids[i], want);
        }
        int accepted = 0, invalid = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, res)
        {
            accepted += strcmp(h_str(x, "status"), "accepted") == 0;
            invalid += strcmp(h_str(x, "status"), "invalid_task") == 0;
        }
        assert_int_equal(accepted, (int)(sizeof ids / sizeof ids[0]));
        assert_int_equal(invalid, 3);
        cJSON_Delete(res);
    }
    h_mock_stop(&m);
    wk_buf_release(&t);
    wk_buf_release(&r);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
}

/* ---- two runs, typos, -o -------------------------------------------------------- */

/* n tasks answered "a" by cheap. */
static void simple_batch(const char *tag, int n, char **tasks, char **recs)
{
    wk_buf t, r;
    wk_buf_init(&t, 1 << 24);
    wk_buf_init(&r, 1 << 24);
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s-%d", tag, i);
        task_line(&t, id, NULL);
        rec_line(&r, id, "cheap", 1, "\\\"a\\\"", "{\"prompt_tokens\":10,\"completion_tokens\":1}");
    }
    char *tn = wk_xasprintf("%s-tasks.jsonl", tag), *rn = wk_xasprintf("%s-recs.jsonl", tag);
    *tasks = h_write(tn, t.buf);
    *recs = h_write(rn, r.buf);
    free(tn);
    free(rn);
    wk_buf_release(&t);
    wk_buf_release(&r);
}

static void second_run_refused_while_first_holds(const char *tag, const char *journal_opt,
                                                 const char *expect)
{
    char *tasks, *recs;
    simple_batch(tag, 20, &tasks, &recs);
    char *out = h_tmp(tag), *errf = wk_xasprintf("%s.err", out),
         *err2 = wk_xasprintf("%s.err2", out), *log = wk_xasprintf("%s.log", out);
    const char *margs[] = {"--latency", "400", NULL};
    h_mock m;
    h_mock_start(&m, recs, log, margs);
    const char *argv[] = {h_cascade_bin(),
                          "run",
                          tasks,
                          "--cascades",
                          cdir,
                          "--models",
                          models,
                          "-o",
                          out,
                          "-q",
                          "--concurrency",
                          "2",
                          journal_opt ? "--journal" : NULL,
                          journal_opt,
                          NULL};
    pid_t first = h_spawn((char *const *)argv, NULL, errf);
    h_sleep_ms(700); /* the first holds its locks and has calls in flight */
    int rc =
        run_cascade(tasks, out, err2, journal_opt ? "--journal" : NULL, journal_opt, NULL, NULL);
    char *msg = h_slurp(err2);
    if (rc != 1 || !strstr(msg, expect))
        fail_msg("second run: exit %d, stderr: %s", rc, msg);
    free(msg);
    rc = h_wait(first, 60000);
    if (rc != 0)
        fail_msg("first run exited %d: %s", rc, h_slurp(errf));
    h_mock_stop(&m);
    cJSON *res = h_jsonl(out), *reqs = h_jsonl(log);
    assert_int_equal(cJSON_GetArraySize(res), 20);
    assert_int_equal(cJSON_GetArraySize(reqs), 20); /* every task paid for once */
    cJSON_Delete(res);
    cJSON_Delete(reqs);
    /* Once the first is done, the same command resumes with nothing to do. */
    rc = run_cascade(tasks, out, err2, journal_opt ? "--journal" : NULL, journal_opt, NULL, NULL);
    assert_int_equal(rc, 0);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
    free(err2);
    free(log);
}

static void test_two_runs_on_one_journal_the_second_refuses(void **state)
{
    (void)state;
    second_run_refused_while_first_holds("lock-j", NULL, "is in use by another cascade run");
}

static void test_two_runs_on_one_explicit_journal_the_second_refuses(void **state)
{
    (void)state;
    char *j = h_tmp("lock-shared.journal");
    second_run_refused_while_first_holds("lock-e", j, "journal");
    free(j);
}

static void test_two_runs_on_one_results_file_without_journal_the_second_refuses(void **state)
{
    (void)state;
    char *tasks, *recs;
    simple_batch("lock-n", 10, &tasks, &recs);
    char *out = h_tmp("lock-n.jsonl"), *errf = h_tmp("lock-n.err"), *err2 = h_tmp("lock-n.err2");
    const char *margs[] = {"--latency", "400", NULL};
    h_mock m;
    h_mock_start(&m, recs, NULL, margs);
    const char *argv[] = {h_cascade_bin(), "run", tasks, "--cascades", cdir,        "--models",
                          models,          "-o",  out,   "-q",         "--journal", "none",
                          "--concurrency", "2",   NULL};
    pid_t first = h_spawn((char *const *)argv, NULL, errf);
    h_sleep_ms(700);
    int rc = run_cascade(tasks, out, err2, "--journal", "none", NULL, NULL);
    char *msg = h_slurp(err2);
    if (rc != 1 || !strstr(msg, "results file") || !strstr(msg, "in use"))
        fail_msg("second run: exit %d, stderr: %s", rc, msg);
    free(msg);
    assert_int_equal(h_wait(first, 60000), 0);
    h_mock_stop(&m);
    cJSON *res = h_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), 10); /* the second did not empty it */
    cJSON_Delete(res);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
    free(err2);
}

/* Every run on the machine shares /dev/null's inode: a lock there would make unrelated runs
 * collide. */
static void test_a_run_writing_to_a_device_is_not_refused_by_another_holding_it(void **state)
{
    (void)state;
    char *tasks, *recs;
    simple_batch("devnull", 3, &tasks, &recs);
    char *errf = h_tmp("devnull.err");
    int held = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(held >= 0);
    assert_int_equal(flock(held, LOCK_EX | LOCK_NB), 0); /* as another run writing there would */
    h_mock m;
    h_mock_start(&m, recs, NULL, NULL);
    int rc = run_cascade(tasks, "/dev/null", errf, "--journal", "none", NULL, NULL);
    h_mock_stop(&m);
    char *msg = h_slurp(errf);
    if (rc != 0)
        fail_msg("run to /dev/null: exit %d, stderr: %s", rc, msg);
    free(msg);
    close(held);
    free(tasks);
    free(recs);
    free(errf);
}

static void test_a_typo_in_the_tasks_path_leaves_the_results_intact(void **state)
{
    (void)state;
    char *tasks, *recs;
    simple_batch("typo", 5, &tasks, &recs);
    char *out = h_tmp("typo-out.jsonl"), *errf = h_tmp("typo.err");
    h_mock m;
    h_mock_start(&m, recs, NULL, NULL);
    assert_int_equal(run_cascade(tasks, out, errf, NULL, NULL, NULL, NULL), 0);
    char *before = h_slurp(out);
    assert_true(strlen(before) > 0);
    char *typo = wk_xasprintf("%sx", tasks);
    /* With the journal (resume), without it (the file would be started afresh), and stdin-less. */
    const char *variants[][2] = {{NULL, NULL}, {"--journal", "none"}};
    for (int v = 0; v < 2; v++) {
        int rc = run_cascade(typo, out, errf, variants[v][0], variants[v][1], NULL, NULL);
        char *msg = h_slurp(errf);
        if (rc == 0 || !strstr(msg, "typo-tasks.jsonlx"))
            fail_msg("variant %d: exit %d, stderr: %s", v, rc, msg);
        free(msg);
        char *after = h_slurp(out);
        assert_string_equal(before, after);
        free(after);
    }
    h_mock_stop(&m);
    free(typo);
    free(before);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
}

static void test_outputs_naming_the_input_are_refused_before_anything_is_touched(void **state)
{
    (void)state;
    char *tasks, *recs;
    simple_batch("same", 3, &tasks, &recs);
    char *before = h_slurp(tasks), *errf = h_tmp("same.err");
    char *link = h_tmp("same-link.jsonl");
    assert_int_equal(symlink(tasks, link), 0);
    char *esc = h_tmp("same-esc.jsonl");
    struct {
        const char *out, *a1, *a2;
    } v[] = {
        {tasks, NULL, NULL},           /* -o the input */
        {link, NULL, NULL},            /* -o a link to it */
        {esc, "--escalations", tasks}, /* the escalation log over the input */
        {esc, "--journal", tasks},     /* the journal over the input */
        {esc, "--escalations", esc},   /* two outputs in one file */
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int rc = run_cascade(tasks, v[i].out, errf, v[i].a1, v[i].a2, NULL, NULL);
        char *msg = h_slurp(errf);
        if (rc != 2 || !strstr(msg, "cascade run:"))
            fail_msg("variant %zu: exit %d, stderr: %s", i, rc, msg);
        free(msg);
        char *after = h_slurp(tasks);
        assert_string_equal(before, after);
        free(after);
    }
    struct stat st;
    assert_int_not_equal(stat(esc, &st), 0); /* nothing was created either */
    free(tasks);
    free(recs);
    free(before);
    free(errf);
    free(link);
    free(esc);
}

/* ---- money ---------------------------------------------------------------------- */

static const cJSON *first_attempt(const cJSON *res)
{
    return cJSON_GetArrayItem(cJSON_GetObjectItem(res, "attempts"), 0);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItem(o, k);
    if (!cJSON_IsNumber(v))
        fail_msg("no number %s", k);
    return v->valuedouble;
}

/* One task through a mock that reports usage as given; returns its result (caller deletes). */
static cJSON *one_task_with_usage(const char *tag, const char *usage_json, const char *task_extra,
                                  char **log_out)
{
    wk_buf t, r;
    wk_buf_init(&t, 1 << 20);
    wk_buf_init(&r, 1 << 20);
    task_line(&t, tag, task_extra);
    rec_line(&r, tag, "cheap", 1, "\\\"a\\\"", "{\"prompt_tokens\":10,\"completion_tokens\":1}");
    char *tn = wk_xasprintf("%s-tasks.jsonl", tag), *rn = wk_xasprintf("%s-recs.jsonl", tag),
         *on = wk_xasprintf("%s-out.jsonl", tag), *ln = wk_xasprintf("%s-mock.log", tag);
    char *tasks = h_write(tn, t.buf), *recs = h_write(rn, r.buf), *out = h_tmp(on),
         *log = h_tmp(ln), *errf = h_tmp("usage.err");
    const char *margs[] = {"--usage-json", usage_json, NULL};
    h_mock m;
    h_mock_start(&m, recs, log, usage_json ? margs : NULL);
    int rc = run_cascade(tasks, out, errf, "--journal", "none", NULL, NULL);
    h_mock_stop(&m);
    if (rc != 0)
        fail_msg("%s: exit %d: %s", tag, rc, h_slurp(errf));
    cJSON *res = h_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), 1);
    cJSON *one = cJSON_DetachItemFromArray(res, 0);
    cJSON_Delete(res);
    if (log_out)
        *log_out = log;
    else
        free(log);
    free(tn);
    free(rn);
    free(on);
    free(ln);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
    wk_buf_release(&t);
    wk_buf_release(&r);
    return one;
}

static void test_usage_missing_negative_string_or_absurd_is_charged_its_worst_case(void **state)
{
    (void)state;
    /* cheap: $1 in, $2 out per Mtok, max_tokens 100: the output alone is $0.0002 at worst. */
    static const struct {
        const char *usage;
        int bad_completion;
        int pt_kept; /* the sane prompt count the attempt still shows, or -1 */
    } v[] = {
        {"none", 1, -1},
        {"{}", 1, -1},
        {"{\"prompt_tokens\":-5,\"completion_tokens\":-1}", 1, -1},
        {"{\"prompt_tokens\":\"12\",\"completion_tokens\":\"3\"}", 1, -1},
        {"{\"prompt_tokens\":10,\"completion_tokens\":1e15}", 1, 10},
        {"{\"prompt_tokens\":10,\"completion_tokens\":2.5}", 1, 10},
        {"{\"prompt_tokens\":10,\"completion_tokens\":null}", 1, 10},
        {"{\"prompt_tokens\":10,\"completion_tokens\":201}", 1, 10},
        {"{\"prompt_tokens\":1e9,\"completion_tokens\":3}", 0, -1},
        {"{\"prompt_tokens\":\"many\",\"completion_tokens\":3}", 0, -1},
        {"null", 1, -1},
        {"\"lots\"", 1, -1},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "usage-%zu", i);
        cJSON *res = one_task_with_usage(tag, v[i].usage, NULL, NULL);
        const cJSON *a = first_attempt(res);
        if (!cJSON_IsTrue(cJSON_GetObjectItem(a, "usage_estimated")))
            fail_msg("usage %s: attempt not marked usage_estimated", v[i].usage);
        double cost = num(a, "cost_usd");
        /* The worst case: max_tokens out, or (prompt bad) the estimate in plus 3 out. */
        if (v[i].bad_completion ? cost < 0.0002 : cost <= 3 * 2e-6)
            fail_msg("usage %s: charged $%g", v[i].usage, cost);
        assert_true(num(res, "cost_usd") >= cost);
        assert_string_equal(h_str(res, "status"), "accepted");
        const cJSON *pt = cJSON_GetObjectItem(a, "prompt_tokens");
        if (v[i].pt_kept >= 0)
            assert_true(cJSON_IsNumber(pt) && pt->valuedouble == v[i].pt_kept);
        else
            assert_true(cJSON_IsNull(pt));
        cJSON_Delete(res);
    }
    /* Sane usage is charged as reported and not marked. */
    cJSON *res = one_task_with_usage("usage-ok", NULL, NULL, NULL);
    const cJSON *a = first_attempt(res);
    assert_null(cJSON_GetObjectItem(a, "usage_estimated"));
    assert_true(num(a, "cost_usd") > 1.19e-5 && num(a, "cost_usd") < 1.21e-5);
    cJSON_Delete(res);
}

static void test_a_budget_of_zero_means_nothing_may_be_spent(void **state)
{
    (void)state;
    static const struct {
        const char *extra;
        const char *status;
        int requests;
    } v[] = {
        {",\"budget_usd\":0", "over_budget", 0},
        {",\"budget_usd\":0.0", "over_budget", 0},
        {",\"budget_usd\":1e-9", "over_budget", 0},
        {",\"budget_usd\":1", "accepted", 1},
        {"", "accepted", 1},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        char tag[32];
        snprintf(tag, sizeof tag, "budget-%zu", i);
        char *log;
        cJSON *res = one_task_with_usage(tag, NULL, v[i].extra, &log);
        if (strcmp(h_str(res, "status"), v[i].status) != 0)
            fail_msg("budget%s: status %s", v[i].extra, h_str(res, "status"));
        cJSON *reqs = h_jsonl(log);
        assert_int_equal(cJSON_GetArraySize(reqs), v[i].requests);
        if (v[i].requests == 0)
            assert_true(num(res, "cost_usd") == 0);
        cJSON_Delete(reqs);
        cJSON_Delete(res);
        free(log);
    }
}

/* ---- provider errors ------------------------------------------------------------ */

static void test_a_429_that_mentions_billing_is_a_rate_limit_not_a_spend_limit(void **state)
{
    (void)state;
    const char *faults[] = {"429-billing:every:2:0.1", "429-billing:every:2",
                            "429-billing:every:3"};
    for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
        char *tasks, *recs;
        char tag[32];
        snprintf(tag, sizeof tag, "bill%zu", f);
        simple_batch(tag, 6, &tasks, &recs);
        char *out = h_tmp(tag), *errf = wk_xasprintf("%s.err", out);
        const char *margs[] = {"--fault", faults[f], NULL};
        h_mock m;
        h_mock_start(&m, recs, NULL, margs);
        int rc = run_cascade(tasks, out, errf, "--concurrency", "1", NULL, NULL);
        h_mock_stop(&m);
        char *msg = h_slurp(errf);
        if (rc != 0 || strstr(msg, "spend limit"))
            fail_msg("%s: exit %d, stderr: %s", faults[f], rc, msg);
        cJSON *res = h_jsonl(out);
        const cJSON *x;
        cJSON_ArrayForEach(x, res)
        {
            if (strcmp(h_str(x, "status"), "accepted") != 0 ||
                num(x, "tier") != 0) /* no climb: the 429s were retried on cheap */
                fail_msg("%s: %s ended %s", faults[f], h_str(x, "id"), h_str(x, "status"));
        }
        assert_int_equal(cJSON_GetArraySize(res), 6);
        cJSON_Delete(res);
        free(msg);
        free(tasks);
        free(recs);
        free(out);
        free(errf);
    }
}

/* ---- cache ---------------------------------------------------------------------- */

static void test_a_retry_of_the_same_request_reaches_the_model_not_the_cache(void **state)
{
    (void)state;
    const char *cascades[] = {"retry", "retryfb"};
    for (int c = 0; c < 2; c++) {
        char tag[32];
        snprintf(tag, sizeof tag, "cache-%s", cascades[c]);
        wk_buf t, r;
        wk_buf_init(&t, 1 << 20);
        wk_buf_init(&r, 1 << 20);
        wk_buf_appendf(&t,
                       "{\"id\":\"%s\",\"kind\":\"classify\",\"cascade\":\"%s\",\"prompt\":\"p\","
                       "\"schema\":{\"enum\":[\"a\"]}}\n",
                       tag, cascades[c]);
        rec_line(&r, tag, "cheap", 1, "\\\"b\\\"",
                 "{\"prompt_tokens\":10,\"completion_tokens\":1}");
        rec_line(&r, tag, "cheap", 2, "\\\"a\\\"",
                 "{\"prompt_tokens\":10,\"completion_tokens\":1}");
        char *tn = wk_xasprintf("%s-tasks.jsonl", tag), *rn = wk_xasprintf("%s-recs.jsonl", tag);
        char *tasks = h_write(tn, t.buf), *recs = h_write(rn, r.buf);
        char *cn = wk_xasprintf("%s.cache", tag);
        char *cache = h_tmp(cn);
        for (int pass = 0; pass < 2; pass++) {
            char *on = wk_xasprintf("%s-out%d.jsonl", tag, pass),
                 *ln = wk_xasprintf("%s-mock%d.log", tag, pass);
            char *out = h_tmp(on), *log = h_tmp(ln), *errf = h_tmp("cache.err");
            h_mock m;
            h_mock_start(&m, recs, log, NULL);
            int rc = run_cascade(tasks, out, errf, "--cache", cache, NULL, NULL);
            h_mock_stop(&m);
            if (rc != 0)
                fail_msg("exit %d: %s", rc, h_slurp(errf));
            cJSON *res = h_jsonl(out), *reqs = h_jsonl(log);
            const cJSON *x = cJSON_GetArrayItem(res, 0);
            if (strcmp(h_str(x, "status"), "accepted") != 0 || num(x, "tier") != 0)
                fail_msg("%s pass %d: %s at tier %g", cascades[c], pass, h_str(x, "status"),
                         cJSON_IsNumber(cJSON_GetObjectItem(x, "tier")) ? num(x, "tier") : -1);
            const cJSON *a2 = cJSON_GetArrayItem(cJSON_GetObjectItem(x, "attempts"), 1);
            /* First run: both attempts reach the model; second: both come from the cache. */
            assert_int_equal(cJSON_GetArraySize(reqs), pass == 0 ? 2 : 0);
            assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(a2, "cached")), pass == 1);
            cJSON_Delete(res);
            cJSON_Delete(reqs);
            free(on);
            free(ln);
            free(out);
            free(log);
            free(errf);
        }
        free(cn);
        free(cache);
        free(tn);
        free(rn);
        free(tasks);
        free(recs);
        wk_buf_release(&t);
        wk_buf_release(&r);
    }
}

/* ---- secrets and output hygiene (item 5) ------------------------------------------- */

#define SECRET "fake-test-key-not-real"
#define SECRET2 "gm-OTHER-not-real"

/* Every file under dir, read whole: does any hold needle? Names the first that does. */
static char *file_holding(const char *dir, const char *needle)
{
    char *cmd = wk_xasprintf("grep -rlF -- '%s' '%s' 2>/dev/null | head -1", needle, dir);
    FILE *p = popen(cmd, "r");
    char buf[1024] = "";
    if (p) {
        if (!fgets(buf, sizeof buf, p))
            buf[0] = '\0';
        pclose(p);
    }
    free(cmd);
    buf[strcspn(buf, "\n")] = '\0';
    return buf[0] ? wk_xstrdup(buf) : NULL;
}

static void test_a_key_echoed_by_the_provider_appears_in_no_file(void **state)
{
    (void)state;
    setenv("CASCADE_OP_KEY", SECRET, 1);
    setenv("CASCADE_OP_KEY2", SECRET2, 1);
    free(h_write("keyed-models.json",
                 "{\"providers\":{"
                 "\"oai\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\","
                 "\"key_env\":\"CASCADE_OP_KEY\",\"breaker_failures\":1000},"
                 "\"ant\":{\"api\":\"anthropic\",\"base_url\":\"${MOCK_URL}/v1\","
                 "\"key_env\":\"CASCADE_OP_KEY\",\"breaker_failures\":1000},"
                 "\"gem\":{\"api\":\"gemini\",\"base_url\":\"${MOCK_URL}/v1beta\","
                 "\"key_env\":\"CASCADE_OP_KEY2\",\"breaker_failures\":1000}},"
                 "\"models\":{"
                 "\"k-oai\":{\"provider\":\"oai\",\"input_usd_per_mtok\":1,"
                 "\"output_usd_per_mtok\":1,\"max_tokens\":100},"
                 "\"k-ant\":{\"provider\":\"ant\",\"input_usd_per_mtok\":1,"
                 "\"output_usd_per_mtok\":1,\"max_tokens\":100},"
                 "\"k-gem\":{\"provider\":\"gem\",\"input_usd_per_mtok\":1,"
                 "\"output_usd_per_mtok\":1,\"max_tokens\":100}}}"));
    char *kdir = h_tmp("kcascades");
    mkdir(kdir, 0755);
    free(h_write("kcascades/k.json",
                 "{\"name\":\"k\",\"validators\":[\"schema\"],\"feedback\":true,"
                 "\"tiers\":[{\"model\":\"k-oai\"},{\"model\":\"k-ant\"},"
                 "{\"model\":\"k-gem\"}]}"));
    char *kmodels = h_tmp("keyed-models.json");
    wk_buf t, t2, r;
    wk_buf_init(&t, 1 << 20);
    wk_buf_init(&t2, 1 << 20);
    wk_buf_init(&r, 1 << 20);
    /* echo-N: every call 401 with the key in the message. ans-N: the answer holds both keys. */
    for (int i = 0; i < 3; i++) {
        wk_buf_appendf(&t,
                       "{\"id\":\"echo-%d\",\"kind\":\"classify\",\"prompt\":\"p\","
                       "\"schema\":{\"enum\":[\"a\"]}}\n",
                       i);
        wk_buf_appendf(&t2,
                       "{\"id\":\"ans-%d\",\"kind\":\"classify\",\"prompt\":\"p\","
                       "\"schema\":{\"enum\":[\"a\"]}}\n",
                       i);
        const char *ms[] = {"k-oai", "k-ant", "k-gem"};
        for (int m = 0; m < 3; m++)
            wk_buf_appendf(&r,
                           "{\"task\":\"ans-%d\",\"model\":\"%s\",\"run\":1,\"answer\":"
                           "\"my key is " SECRET " and " SECRET2 "\"}\n",
                           i, ms[m]);
    }
    char *tasks[2] = {h_write("key-tasks.jsonl", t.buf), h_write("key-tasks2.jsonl", t2.buf)};
    char *recs = h_write("key-recs.jsonl", r.buf);
    char *odir = h_tmp("key-out");
    mkdir(odir, 0755);
    char *errf = wk_xasprintf("%s/stderr.txt", odir), *cache = wk_xasprintf("%s/cache", odir);
    const char *margs[] = {"--fault", "401-echo:1", NULL};
    h_mock m;
    char *outs[2];
    for (int pass = 0; pass < 2; pass++) {
        outs[pass] = wk_xasprintf("%s/results%d.jsonl", odir, pass);
        char *esc = wk_xasprintf("%s/esc%d.jsonl", odir, pass);
        h_mock_start(&m, recs, NULL, pass == 0 ? margs : NULL);
        const char *argv[] = {h_cascade_bin(),
                              "run",
                              tasks[pass],
                              "--cascades",
                              kdir,
                              "--models",
                              kmodels,
                              "-o",
                              outs[pass],
                              "--escalations",
                              esc,
                              "--cache",
                              cache,
                              "--retries",
                              "0",
                              NULL};
        int rc = h_run((char *const *)argv, NULL, errf, 60);
        h_mock_stop(&m);
        free(esc);
        if (rc != 0)
            fail_msg("pass %d: exit %d: %s", pass, rc, h_slurp(errf));
    }
    cJSON *res = h_jsonl(outs[0]);
    assert_int_equal(cJSON_GetArraySize(res), 3);
    cJSON_Delete(res);
    res = h_jsonl(outs[1]);
    assert_int_equal(cJSON_GetArraySize(res), 3);
    /* The echo and the answer were seen (redacted), so the test would notice a leak. */
    char *all = h_slurp(outs[0]);
    assert_non_null(strstr(all, "Incorrect API key provided: <redacted>"));
    free(all);
    all = h_slurp(outs[1]);
    assert_non_null(strstr(all, "my key is <redacted> and <redacted>"));
    free(all);
    const char *secrets[] = {SECRET, SECRET2, "FAKEKEY-not", NULL};
    for (int i = 0; secrets[i]; i++) {
        char *f = file_holding(odir, secrets[i]);
        if (f)
            fail_msg("%s holds the key %s", f, secrets[i]);
    }
    cJSON_Delete(res);
    wk_buf_release(&t);
    wk_buf_release(&t2);
    wk_buf_release(&r);
    free(kdir);
    free(kmodels);
    free(tasks[0]);
    free(tasks[1]);
    free(outs[0]);
    free(outs[1]);
    free(recs);
    free(odir);
    free(errf);
    free(cache);
}

static void test_a_huge_answer_is_capped_in_the_result_and_readers_skip_bad_lines(void **state)
{
    (void)state;
    /* 400 KiB of control bytes: 2.4 MiB once escaped, whole. */
    size_t n = 400u << 10;
    wk_buf a;
    wk_buf_init(&a, 16u << 20);
    for (size_t i = 0; i < n; i++)
        wk_buf_append(&a, "\\u0001", 6);
    wk_buf t, r;
    wk_buf_init(&t, 1 << 20);
    wk_buf_init(&r, 32u << 20);
    task_line(&t, "huge", NULL);
    task_line(&t, "fine", NULL);
    rec_line(&r, "huge", "cheap", 1, a.buf, NULL);
    rec_line(&r, "huge", "mid", 1, a.buf, NULL);
    rec_line(&r, "fine", "cheap", 1, "\\\"a\\\"", NULL);
    char *tasks = h_write("huge-tasks.jsonl", t.buf), *recs = h_write("huge-recs.jsonl", r.buf);
    char *out = h_tmp("huge-out.jsonl"), *errf = h_tmp("huge.err");
    h_mock m;
    h_mock_start(&m, recs, NULL, NULL);
    int rc = run_cascade(tasks, out, errf, NULL, NULL, NULL, NULL);
    h_mock_stop(&m);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, h_slurp(errf));
    char *text = h_slurp(out);
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    /* Every line stays far under the readers' cap. */
    for (char *p = text; *p;) {
        char *e = strchr(p, '\n');
        assert_non_null(e);
        assert_true((size_t)(e - p) < (2u << 20));
        p = e + 1;
    }
    cJSON *res = h_jsonl(out);
    const cJSON *huge = h_find(res, "id", "huge");
    assert_non_null(huge);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(huge, "answer_truncated")));
    assert_true(num(huge, "answer_bytes") == (double)n);
    assert_int_equal(strlen(h_str(huge, "answer")), 256u << 10);

    /* A results file with a line over 16 MiB and a garbled one: report reads the rest. */
    size_t big = (16u << 20) + 100;
    char *bigline = wk_xmalloc(big + 64);
    memcpy(bigline, "{\"id\":\"x\",\"pad\":\"", 17);
    memset(bigline + 17, 'x', big);
    memcpy(bigline + 17 + big, "\"}\n", 4);
    char *mixed = wk_xasprintf("%s%s{not json\n", text, bigline);
    free(bigline);
    char *mpath = h_write("mixed.jsonl", mixed);
    free(mixed);
    char *rout = h_tmp("report.txt"), *rerr = h_tmp("report.err");
    const char *argv[] = {h_cascade_bin(), "report", mpath, NULL};
    rc = h_run((char *const *)argv, rout, rerr, 60);
    char *rtext = h_slurp(rout), *retext = h_slurp(rerr);
    if (rc != 0)
        fail_msg("report exit %d: %s", rc, retext);
    assert_non_null(strstr(retext, "mixed.jsonl:3: line longer than"));
    assert_non_null(strstr(retext, "mixed.jsonl:4: not a JSON object"));
    assert_non_null(strstr(rtext, "main"));
    free(rtext);
    free(retext);
    free(rout);
    free(rerr);
    free(mpath);
    cJSON_Delete(res);
    free(text);
    wk_buf_release(&a);
    wk_buf_release(&t);
    wk_buf_release(&r);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_ids_that_match_invalid_lines_keys_run_and_are_written_once),
        cmocka_unit_test(test_two_runs_on_one_journal_the_second_refuses),
        cmocka_unit_test(test_two_runs_on_one_explicit_journal_the_second_refuses),
        cmocka_unit_test(test_two_runs_on_one_results_file_without_journal_the_second_refuses),
        cmocka_unit_test(test_a_run_writing_to_a_device_is_not_refused_by_another_holding_it),
        cmocka_unit_test(test_a_typo_in_the_tasks_path_leaves_the_results_intact),
        cmocka_unit_test(test_outputs_naming_the_input_are_refused_before_anything_is_touched),
        cmocka_unit_test(test_usage_missing_negative_string_or_absurd_is_charged_its_worst_case),
        cmocka_unit_test(test_a_budget_of_zero_means_nothing_may_be_spent),
        cmocka_unit_test(test_a_429_that_mentions_billing_is_a_rate_limit_not_a_spend_limit),
        cmocka_unit_test(test_a_retry_of_the_same_request_reaches_the_model_not_the_cache),
        cmocka_unit_test(test_a_key_echoed_by_the_provider_appears_in_no_file),
        cmocka_unit_test(test_a_huge_answer_is_capped_in_the_result_and_readers_skip_bad_lines),
    };
    return cmocka_run_group_tests_name("operator", tests, group_setup, group_teardown);
}
