/*
 * Data sovereignty end to end (README "Data sovereignty"): the real
 * `cascade` binary against two mock providers, one self-hosted ("home") and
 * one a vendor ("cloud"), each its own mock-llm with its own request log.
 * A restricted task runs beside open ones in one batch; the logs show its
 * text reached only the self-hosted mock, through its fallback, a transport
 * retry, a second attempt at a tier and an escalation past a vendor-only
 * tier. The response cache does not hand it an answer the vendor made, a
 * task no tier may serve ends policy_denied with no call, and a policy that
 * names an unknown label stops the run at startup.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "lib/util.h"

/*
 * small (cloud) falls back to small-home; big is the vendor's alone and
 * big-home the self-hosted one. The model ids are shared so one recordings
 * file serves both mocks.
 */
static const char *MODELS =
    "{\"providers\":{"
    "\"cloud\":{\"api\":\"openai\",\"base_url\":\"${CLOUD_URL}/v1\",\"key_env\":null,"
    "\"data\":\"vendor\"},"
    "\"home\":{\"api\":\"openai\",\"base_url\":\"${HOME_URL}/v1\",\"key_env\":null,"
    "\"data\":\"self_hosted\"}},"
    "\"models\":{"
    "\"small\":{\"provider\":\"cloud\",\"id\":\"small\",\"input_usd_per_mtok\":0.5,"
    "\"output_usd_per_mtok\":1,\"max_tokens\":200,\"fallbacks\":[\"small-home\"]},"
    "\"small-home\":{\"provider\":\"home\",\"id\":\"small\",\"input_usd_per_mtok\":0,"
    "\"output_usd_per_mtok\":0,\"max_tokens\":200},"
    "\"big\":{\"provider\":\"cloud\",\"id\":\"big\",\"input_usd_per_mtok\":5,"
    "\"output_usd_per_mtok\":10,\"max_tokens\":200},"
    "\"big-home\":{\"provider\":\"home\",\"id\":\"big\",\"input_usd_per_mtok\":0,"
    "\"output_usd_per_mtok\":0,\"max_tokens\":200}},"
    "\"data_policy\":{\"internal\":[\"vendor\",\"self_hosted\"]}}";

static const char *SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"label\":{\"enum\":[\"bug\",\"feature\"]}},"
    "\"required\":[\"label\"],\"additionalProperties\":false}";

static char *cdir, *models;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int group_setup(void **state)
{
    (void)state;
    if (h_config_setup(MODELS, &cdir, &models))
        return -1;
    char *p = wk_xasprintf("%s/main.json", cdir);
    write_file(p, "{\"name\":\"main\",\"validators\":[\"schema\"],\"feedback\":true,"
                  "\"tiers\":[{\"model\":\"small\",\"attempts\":2},{\"model\":\"big\"},"
                  "{\"model\":\"big-home\"}],"
                  "\"data_policy\":{\"restricted\":[\"self_hosted\"]}}\n");
    free(p);
    p = wk_xasprintf("%s/vendor-only.json", cdir);
    write_file(p, "{\"name\":\"vendor-only\",\"validators\":[\"schema\"],"
                  "\"tiers\":[{\"model\":\"big\"}],"
                  "\"data_policy\":{\"restricted\":[\"self_hosted\"]}}\n");
    free(p);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_config_teardown(cdir, models);
    return 0;
}

static const char *OK = "```json\\n{\\\"label\\\": \\\"bug\\\"}\\n```";
static const char *BAD = "{\\\"label\\\": \\\"bugg\\\"}";

/* One task line; its prompt carries a marker the mock logs can be searched for. */
static void task_line(wk_buf *b, const char *id, const char *cascade, const char *cls,
                      const char *marker)
{
    wk_buf_appendf(b, "{\"id\":\"%s\",\"kind\":\"classify\",\"cascade\":\"%s\",", id, cascade);
    if (cls)
        wk_buf_appendf(b, "\"data_class\":\"%s\",", cls);
    wk_buf_appendf(b, "\"prompt\":\"ticket %s: the app crashes\",\"schema\":%s}\n", marker, SCHEMA);
}

static void rec_line(wk_buf *b, const char *task, const char *model, int run, const char *answer)
{
    wk_buf_appendf(b,
                   "{\"task\":\"%s\",\"model\":\"%s\",\"run\":%d,\"answer\":\"%s\","
                   "\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":8}}\n",
                   task, model, run, answer);
}

typedef struct two_mocks {
    h_mock cloud, home;
    char *cloud_log, *home_log;
} two_mocks;

static void mocks_start(two_mocks *m, const char *tag, const char *recs,
                        const char *const *home_args)
{
    char *cn = wk_xasprintf("%s-cloud.log", tag), *hn = wk_xasprintf("%s-home.log", tag);
    m->cloud_log = h_tmp(cn);
    m->home_log = h_tmp(hn);
    unlink(m->cloud_log);
    unlink(m->home_log);
    h_mock_start(&m->cloud, recs, m->cloud_log, NULL);
    setenv("CLOUD_URL", m->cloud.url, 1);
    h_mock_start(&m->home, recs, m->home_log, home_args);
    setenv("HOME_URL", m->home.url, 1);
    free(cn);
    free(hn);
}

static void mocks_stop(two_mocks *m)
{
    h_mock_stop(&m->cloud);
    h_mock_stop(&m->home);
    free(m->cloud_log);
    free(m->home_log);
}

/* Requests in a mock log whose body holds `marker` (a task's prompt text). */
static int requests_with(const char *log_path, const char *marker)
{
    cJSON *log = h_jsonl(log_path);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, log)
    {
        char *body = cJSON_PrintUnformatted(cJSON_GetObjectItem(e, "body"));
        n += body && strstr(body, marker) != NULL;
        free(body);
    }
    cJSON_Delete(log);
    return n;
}

static int run_cascade(const char *tasks, const char *out, const char *esc, const char *cache,
                       const char *err)
{
    const char *argv[20] = {
        h_cascade_bin(), "run", tasks,       "--cascades", cdir, "--models", models, "-o", out,
        "--escalations", esc,   "--retries", "2"};
    int n = 13;
    if (cache) {
        argv[n++] = "--cache";
        argv[n++] = cache;
    }
    argv[n] = NULL;
    return h_run((char *const *)argv, NULL, err, 120);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(f) ? f->valuedouble : -1;
}

static void test_restricted_task_reaches_only_the_self_hosted_provider(void **state)
{
    (void)state;
    wk_buf t, r;
    wk_buf_init(&t, 1u << 20);
    wk_buf_init(&r, 1u << 20);
    /* The restricted task fails twice at small (two attempts) and climbs. */
    task_line(&t, "sec-0", "main", "restricted", "SECRET-MARKER-0");
    rec_line(&r, "sec-0", "small", 1, BAD);
    rec_line(&r, "sec-0", "small", 2, BAD);
    rec_line(&r, "sec-0", "big", 1, OK);
    /* Open tasks beside it: one accepted at small, one that climbs to big at the vendor. */
    task_line(&t, "open-0", "main", NULL, "open 0");
    rec_line(&r, "open-0", "small", 1, OK);
    task_line(&t, "open-1", "main", NULL, "open 1");
    rec_line(&r, "open-1", "small", 1, BAD);
    rec_line(&r, "open-1", "small", 2, BAD);
    rec_line(&r, "open-1", "big", 1, OK);
    /* internal (the models file's class) may reach the vendor. */
    task_line(&t, "int-0", "main", "internal", "internal 0");
    rec_line(&r, "int-0", "small", 1, OK);
    /* A class no policy names, and a cascade no tier of which the class may reach. */
    task_line(&t, "unk-0", "main", "secret", "UNKNOWN-CLASS-MARKER");
    rec_line(&r, "unk-0", "small", 1, OK);
    task_line(&t, "deny-0", "vendor-only", "restricted", "DENIED-MARKER");
    rec_line(&r, "deny-0", "big", 1, OK);
    char *tasks = h_write("mix-tasks.jsonl", t.buf);
    char *recs = h_write("mix-recs.jsonl", r.buf);
    wk_buf_release(&t);
    wk_buf_release(&r);

    two_mocks m;
    /* The self-hosted server fails its second request: a transport retry stays home too. */
    const char *home_args[] = {"--fault", "500:every:2@small", NULL};
    mocks_start(&m, "mix", recs, home_args);
    char *out = h_tmp("mix-out.jsonl"), *esc = h_tmp("mix-esc.jsonl"), *err = h_tmp("mix-err");
    int rc = run_cascade(tasks, out, esc, NULL, err);
    mocks_stop(&m);
    if (rc != 0) {
        char *e = h_slurp(err);
        fail_msg("cascade run exited %d: %s", rc, e);
    }

    /* The restricted text: at home only, four times (two attempts, a 500, the climb). */
    char *cloud_log = h_tmp("mix-cloud.log"), *home_log = h_tmp("mix-home.log");
    assert_int_equal(requests_with(cloud_log, "SECRET-MARKER"), 0);
    assert_int_equal(requests_with(home_log, "SECRET-MARKER"), 4);
    /* Open tasks went to the vendor and not home; nothing was sent for the denied ones. */
    assert_int_equal(requests_with(cloud_log, "open 0"), 1);
    assert_int_equal(requests_with(cloud_log, "open 1"), 3);
    assert_int_equal(requests_with(home_log, "open "), 0);
    assert_int_equal(requests_with(cloud_log, "internal 0"), 1);
    assert_int_equal(requests_with(cloud_log, "UNKNOWN-CLASS-MARKER"), 0);
    assert_int_equal(requests_with(home_log, "UNKNOWN-CLASS-MARKER"), 0);
    assert_int_equal(requests_with(cloud_log, "DENIED-MARKER"), 0);
    assert_int_equal(requests_with(home_log, "DENIED-MARKER"), 0);

    cJSON *res = h_jsonl(out);
    const cJSON *s = h_find(res, "id", "sec-0");
    assert_non_null(s);
    assert_string_equal(h_str(s, "status"), "accepted");
    assert_string_equal(h_str(s, "model"), "big-home");
    assert_string_equal(h_str(s, "data_class"), "restricted");
    const cJSON *atts = cJSON_GetObjectItem(s, "attempts");
    assert_int_equal(cJSON_GetArraySize(atts), 3);
    /* Tier 0's model is the vendor's; both attempts were served by its home fallback. */
    for (int i = 0; i < 2; i++) {
        const cJSON *a = cJSON_GetArrayItem(atts, i);
        assert_string_equal(h_str(a, "model"), "small");
        assert_string_equal(h_str(a, "deployment"), "small-home");
    }
    assert_int_equal((int)num(cJSON_GetArrayItem(atts, 0), "retries") +
                         (int)num(cJSON_GetArrayItem(atts, 1), "retries"),
                     1);
    assert_int_equal((int)num(cJSON_GetArrayItem(atts, 2), "tier"), 2);
    assert_string_equal(h_str(h_find(res, "id", "open-0"), "status"), "accepted");
    assert_string_equal(h_str(h_find(res, "id", "open-1"), "model"), "big");
    assert_string_equal(h_str(h_find(res, "id", "int-0"), "model"), "small");
    const cJSON *u = h_find(res, "id", "unk-0");
    assert_string_equal(h_str(u, "status"), "policy_denied");
    assert_non_null(strstr(h_str(u, "reason"), "no entry in the data_policy"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(u, "attempts")), 0);
    const cJSON *d = h_find(res, "id", "deny-0");
    assert_string_equal(h_str(d, "status"), "policy_denied");
    assert_non_null(strstr(h_str(d, "reason"), "cloud: vendor"));
    cJSON_Delete(res);

    /* The vendor-only tier was passed over as a climb with reason data_policy. */
    cJSON *el = h_jsonl(esc);
    int policy_climbs = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, el)
    {
        if (strcmp(h_str(e, "id"), "sec-0") != 0)
            continue;
        if (strcmp(h_str(e, "reason"), "data_policy") == 0) {
            policy_climbs++;
            assert_int_equal((int)num(cJSON_GetObjectItem(e, "from"), "tier"), 1);
            assert_int_equal((int)num(cJSON_GetObjectItem(e, "to"), "tier"), 2);
        }
    }
    assert_int_equal(policy_climbs, 1);
    cJSON_Delete(el);
    free(cloud_log);
    free(home_log);
    free(out);
    free(esc);
    free(err);
    free(tasks);
    free(recs);
}

/*
 * The same request body at the same model id: an open task's answer from the
 * vendor is cached; a restricted task with the same prompt is not answered
 * from that entry, and asks the self-hosted deployment instead.
 */
static void test_cache_never_answers_from_a_disallowed_provider(void **state)
{
    (void)state;
    wk_buf r;
    wk_buf_init(&r, 1u << 20);
    rec_line(&r, "c-0", "small", 1, OK);
    char *recs = h_write("cache-recs.jsonl", r.buf);
    wk_buf_release(&r);
    wk_buf t;
    wk_buf_init(&t, 1u << 20);
    task_line(&t, "c-0", "main", NULL, "CACHED-PROMPT");
    char *open_tasks = h_write("cache-open.jsonl", t.buf);
    wk_buf_release(&t);
    wk_buf_init(&t, 1u << 20);
    task_line(&t, "c-0", "main", "restricted", "CACHED-PROMPT");
    char *sec_tasks = h_write("cache-sec.jsonl", t.buf);
    wk_buf_release(&t);
    char *cache = h_tmp("policy-cache.db"), *err = h_tmp("cache-err");
    unlink(cache);

    two_mocks m;
    mocks_start(&m, "cache", recs, NULL);
    char *out1 = h_tmp("cache-out1.jsonl"), *out2 = h_tmp("cache-out2.jsonl"),
         *out3 = h_tmp("cache-out3.jsonl"), *esc = h_tmp("cache-esc.jsonl");
    unlink(out1);
    unlink(out2);
    unlink(out3);
    assert_int_equal(run_cascade(open_tasks, out1, esc, cache, err), 0);
    assert_int_equal(run_cascade(sec_tasks, out2, esc, cache, err), 0);
    assert_int_equal(run_cascade(open_tasks, out3, esc, cache, err), 0);
    mocks_stop(&m);

    char *cloud_log = h_tmp("cache-cloud.log"), *home_log = h_tmp("cache-home.log");
    assert_int_equal(requests_with(cloud_log, "CACHED-PROMPT"), 1); /* the first run only */
    assert_int_equal(requests_with(home_log, "CACHED-PROMPT"), 1);  /* the restricted run */
    cJSON *r2 = h_jsonl(out2), *r3 = h_jsonl(out3);
    const cJSON *a2 =
        cJSON_GetArrayItem(cJSON_GetObjectItem(h_find(r2, "id", "c-0"), "attempts"), 0);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(a2, "cached")));
    assert_string_equal(h_str(a2, "deployment"), "small-home");
    /* An open task may take any entry: the third run is answered from the cache. */
    const cJSON *a3 =
        cJSON_GetArrayItem(cJSON_GetObjectItem(h_find(r3, "id", "c-0"), "attempts"), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a3, "cached")));
    cJSON_Delete(r2);
    cJSON_Delete(r3);
    free(cloud_log);
    free(home_log);
    free(out1);
    free(out2);
    free(out3);
    free(esc);
    free(cache);
    free(err);
    free(recs);
    free(open_tasks);
    free(sec_tasks);
}

/* A policy naming a label no provider declares stops the run before any task. */
static void test_unknown_label_refused_at_startup(void **state)
{
    (void)state;
    char *dir = h_tmp("typo-cascades");
    char *cmd = wk_xasprintf("mkdir -p %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    char *p = wk_xasprintf("%s/main.json", dir);
    write_file(p, "{\"name\":\"main\",\"validators\":[\"schema\"],\"tiers\":[{\"model\":\"big\"}],"
                  "\"data_policy\":{\"restricted\":[\"self-hosted\"]}}\n");
    free(p);
    char *tasks = h_write("typo-tasks.jsonl", "");
    char *out = h_tmp("typo-out.jsonl"), *err = h_tmp("typo-err");
    setenv("CLOUD_URL", "http://127.0.0.1:9", 1);
    setenv("HOME_URL", "http://127.0.0.1:9", 1);
    const char *argv[] = {h_cascade_bin(), "run",  tasks, "--cascades", dir,
                          "--models",      models, "-o",  out,          NULL};
    assert_int_equal(h_run((char *const *)argv, NULL, err, 60), 1);
    char *e = h_slurp(err);
    if (!strstr(e, "data_policy.restricted: unknown data label \"self-hosted\""))
        fail_msg("stderr does not name the unknown label: %s", e);
    free(e);

    /* The same typo in the models file's policy. */
    char *bad = wk_xasprintf("%.*s\"data_policy\":{\"internal\":[\"vendr\"]}}",
                             (int)(strstr(MODELS, "\"data_policy\"") - MODELS), MODELS);
    char *bad_models = h_write("typo-models.json", bad);
    const char *argv2[] = {h_cascade_bin(), "run",      tasks, "--cascades", cdir,
                           "--models",      bad_models, "-o",  out,          NULL};
    assert_int_equal(h_run((char *const *)argv2, NULL, err, 60), 1);
    e = h_slurp(err);
    if (!strstr(e, "unknown data label \"vendr\""))
        fail_msg("stderr does not name the unknown label: %s", e);
    free(e);
    free(bad);
    free(bad_models);
    free(dir);
    free(tasks);
    free(out);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_restricted_task_reaches_only_the_self_hosted_provider),
        cmocka_unit_test(test_cache_never_answers_from_a_disallowed_provider),
        cmocka_unit_test(test_unknown_label_refused_at_startup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
