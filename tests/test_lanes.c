/*
 * Lanes (issue 14): a tier's "lane" in a cascade file, the batch and flex
 * prices it is charged at, and the flex lane against mock-llm (capacity
 * 429s move a call to sync after --flex-max-wait, and it is priced there).
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
#include <signal.h>
#include <sys/stat.h>

#include "harness.h"
#include "lib/util.h"
#include "worker/config.h"
#include "worker/cost.h"
#include "worker/net/lanes_int.h"

/* cheap has batch prices of its own; mid takes its provider's discounts (0.4 batch, 0.5 flex). */
static const char *MODELS =
    "{\"providers\":{\"mock\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\","
    "\"key_env\":null,\"batch_discount\":0.4},"
    "\"claude\":{\"api\":\"anthropic\",\"base_url\":\"${MOCK_URL}/v1\",\"key_env\":null}},"
    "\"models\":{"
    "\"cheap\":{\"provider\":\"mock\",\"input_usd_per_mtok\":1,\"output_usd_per_mtok\":2,"
    "\"batch_input_usd_per_mtok\":0.3,\"batch_output_usd_per_mtok\":0.7,\"max_tokens\":100},"
    "\"mid\":{\"provider\":\"mock\",\"input_usd_per_mtok\":10,\"output_usd_per_mtok\":20,"
    "\"max_tokens\":100},"
    "\"sonnet\":{\"provider\":\"claude\",\"input_usd_per_mtok\":3,\"output_usd_per_mtok\":15,"
    "\"max_tokens\":100}}}";

static char *cdir, *models;
/* MODELS with cheap and mid on an anthropic or a gemini provider; cur_models: the one in use. */
static char *models_anthropic, *models_gemini;
static const char *cur_models;

/* text with its first `from` replaced by `to` (owned). */
static char *replaced(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    return wk_xasprintf("%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
}

static int group_setup(void **state)
{
    (void)state;
    if (h_config_setup(MODELS, &cdir, &models))
        return -1;
    static const char from[] = "\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\"";
    char *a = replaced(MODELS, from, "\"api\":\"anthropic\",\"base_url\":\"${MOCK_URL}/v1\"");
    char *g = replaced(MODELS, from, "\"api\":\"gemini\",\"base_url\":\"${MOCK_URL}/v1beta\"");
    models_anthropic = h_write("models-anthropic.json", a);
    models_gemini = h_write("models-gemini.json", g);
    free(a);
    free(g);
    cur_models = models;
    return 0;
}

/* The models file whose cheap and mid are on a provider of this api (NULL: openai). */
static const char *models_of(const char *api)
{
    return !api ? models : !strcmp(api, "anthropic") ? models_anthropic : models_gemini;
}

static int group_teardown(void **state)
{
    (void)state;
    h_config_teardown(cdir, models);
    free(models_anthropic);
    free(models_gemini);
    return 0;
}

static void write_cascade(const char *name, const char *lane0, const char *lane1)
{
    char *path = wk_xasprintf("cascades/%s.json", name);
    char *text = wk_xasprintf("{\"name\":\"%s\",\"validators\":[\"schema\"],\"tiers\":["
                              "{\"model\":\"cheap\",\"lane\":\"%s\"},"
                              "{\"model\":\"mid\",\"lane\":\"%s\"}]}",
                              name, lane0, lane1);
    free(h_write(path, text));
    free(path);
    free(text);
}

/* Prices per lane: a model's own, else the provider's discount, else 0.5. */
static void prices_per_lane(void **state)
{
    (void)state;
    write_cascade("main", "batch", "flex");
    wk_config cfg;
    char err[512];
    int rc = wk_config_load(&cfg, models, cdir, WK_CONFIG_OFFLINE, err, sizeof err);
    if (rc)
        fail_msg("%s", err);
    const wk_model *cheap = wk_config_model(&cfg, "cheap"), *mid = wk_config_model(&cfg, "mid");
    const wk_cascade *c = wk_config_cascade(&cfg, "main");
    assert_int_equal(c->tiers[0].lane, WK_LANE_BATCH);
    assert_int_equal(c->tiers[1].lane, WK_LANE_FLEX);
    /* 1M tokens in and 1M out */
    assert_true(fabs(wk_cost_at(cheap, WK_LANE_SYNC, 1000000, 1000000, 0) - 3.0) < 1e-9);
    assert_true(fabs(wk_cost_at(cheap, WK_LANE_BATCH, 1000000, 1000000, 0) - 1.0) < 1e-9);
    assert_true(fabs(wk_cost_at(cheap, WK_LANE_FLEX, 1000000, 1000000, 0) - 1.5) < 1e-9);
    assert_true(fabs(wk_cost_at(mid, WK_LANE_BATCH, 1000000, 1000000, 0) - 12.0) < 1e-9);
    assert_true(fabs(wk_cost_at(mid, WK_LANE_FLEX, 1000000, 1000000, 0) - 15.0) < 1e-9);
    /* flex moved to sync pays sync */
    assert_true(fabs(wk_cost_at(mid, WK_RAN_FLEX_SYNC, 1000000, 1000000, 0) - 30.0) < 1e-9);
    assert_true(fabs(wk_cost_worst_at(mid, WK_LANE_BATCH, 0) - 100 * 20 * 0.4 / 1e6) < 1e-12);
    wk_config_free(&cfg);
    char *p = h_tmp("cascades/main.json");
    remove(p);
    free(p);
}

static void bad_lane_is_refused(const char *tier_json, const char *want)
{
    char *text =
        wk_xasprintf("{\"name\":\"bad\",\"validators\":[\"schema\"],\"tiers\":[%s]}", tier_json);
    char *path = h_write("cascades/bad.json", text);
    wk_config cfg;
    char err[512];
    int rc = wk_config_load(&cfg, models, cdir, WK_CONFIG_OFFLINE, err, sizeof err);
    wk_config_free(&cfg);
    remove(path);
    free(path);
    free(text);
    assert_int_equal(rc, WK_ECONFIG);
    if (!strstr(err, want))
        fail_msg("error \"%s\" does not say \"%s\"", err, want);
}

static void bad_lanes_are_refused(void **state)
{
    (void)state;
    bad_lane_is_refused("{\"model\":\"cheap\",\"lane\":\"slow\"}", "tiers[0].lane must be");
    bad_lane_is_refused("{\"model\":\"cheap\"},{\"model\":\"sonnet\",\"lane\":\"flex\"}",
                        "tiers[1].lane: model sonnet is on an anthropic provider");
}

static int anthropic_id_ok(const char *s)
{
    size_t n = strlen(s);
    return n >= 1 && n <= 64 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

/*
 * Anthropic's custom ids: [a-zA-Z0-9_-]{1,64} whatever the task id; the
 * same in every run; distinct for distinct tasks and attempts (escaped, or
 * hashed when too long); "__ATTEMPT" last, which mock-llm cuts at.
 */
static void anthropic_custom_ids(void **state)
{
    (void)state;
    char lng[300];
    memset(lng, 'x', sizeof lng - 1);
    lng[sizeof lng - 1] = '\0';
    const char *tasks[] = {
        "py/fizzbuzz", "py-fizzbuzz",
        "py_fizzbuzz", "a__b",
        "a_",          "a b",
        "t\xc3\xa9",   "#1",
        lng,           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx1"};
    const size_t n = sizeof tasks / sizeof tasks[0];
    char *ids[2 * (sizeof tasks / sizeof tasks[0])];
    for (size_t i = 0; i < n; i++)
        for (int seq = 1; seq <= 2; seq++) {
            char *id = wk__bfmt_anthropic.custom_id(tasks[i], seq * 7);
            if (!anthropic_id_ok(id))
                fail_msg("task \"%s\": custom id \"%s\" is not [a-zA-Z0-9_-]{1,64}", tasks[i], id);
            char *again = wk__bfmt_anthropic.custom_id(tasks[i], seq * 7);
            assert_string_equal(id, again);
            free(again);
            char tail[8];
            snprintf(tail, sizeof tail, "__%d", seq * 7);
            assert_string_equal(id + strlen(id) - strlen(tail), tail);
            ids[2 * i + (size_t)seq - 1] = id;
        }
    for (size_t i = 0; i < 2 * n; i++)
        for (size_t k = i + 1; k < 2 * n; k++)
            if (!strcmp(ids[i], ids[k]))
                fail_msg("two requests share custom id %s", ids[i]);
    assert_string_equal(ids[0], "py-2ffizzbuzz__7");
    for (size_t i = 0; i < 2 * n; i++)
        free(ids[i]);
}

/* n classify tasks; cheap answers "b" (fails the enum), mid answers "a". */
static void make_batch(const char *tag, int n, char **tasks, char **recs)
{
    wk_buf t, r;
    wk_buf_init(&t, 1 << 24);
    wk_buf_init(&r, 1 << 24);
    for (int i = 0; i < n; i++) {
        wk_buf_appendf(&t,
                       "{\"id\":\"%s-%d\",\"kind\":\"classify\",\"cascade\":\"main\","
                       "\"prompt\":\"p%d\",\"schema\":{\"enum\":[\"a\"]}}\n",
                       tag, i, i);
        for (int m = 0; m < 2; m++)
            wk_buf_appendf(&r,
                           "{\"task\":\"%s-%d\",\"model\":\"%s\",\"run\":1,\"answer\":"
                           "\"\\\"%s\\\"\",\"usage\":{\"prompt_tokens\":1000,"
                           "\"completion_tokens\":100}}\n",
                           tag, i, m ? "mid" : "cheap", m ? "a" : "b");
    }
    char *tn = wk_xasprintf("%s-tasks.jsonl", tag), *rn = wk_xasprintf("%s-recs.jsonl", tag);
    *tasks = h_write(tn, t.buf);
    *recs = h_write(rn, r.buf);
    free(tn);
    free(rn);
    wk_buf_release(&t);
    wk_buf_release(&r);
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(f) ? f->valuedouble : -1;
}

/*
 * Both tiers on flex: without faults every attempt says "lane": "flex" and
 * costs half; with every flex request refused for capacity, mid's calls go
 * to sync (--flex-max-wait 0) and are priced there, and the summary shows
 * what the flex attempts would have cost on sync.
 */
static void flex_lane(void **state)
{
    (void)state;
    write_cascade("main", "flex", "flex");
    char *tasks, *recs;
    make_batch("flex", 4, &tasks, &recs);
    for (int faulted = 0; faulted < 2; faulted++) {
        char *out = h_tmp(faulted ? "flex-f.jsonl" : "flex.jsonl");
        char *errf = wk_xasprintf("%s.err", out), *log = wk_xasprintf("%s.log", out);
        const char *margs[] = {"--fault", "flex-429:1@mid", NULL};
        h_mock m;
        h_mock_start(&m, recs, log, faulted ? margs : NULL);
        const char *argv[] = {h_cascade_bin(), "run", tasks, "--cascades",      cdir, "--models",
                              models,          "-o",  out,   "--flex-max-wait", "0",  NULL};
        int rc = h_run((char *const *)argv, NULL, errf, 60);
        h_mock_stop(&m);
        char *err = h_slurp(errf);
        if (rc != 0)
            fail_msg("exit %d: %s", rc, err);
        cJSON *res = h_jsonl(out);
        assert_int_equal(cJSON_GetArraySize(res), 4);
        const cJSON *x;
        cJSON_ArrayForEach(x, res)
        {
            assert_string_equal(h_str(x, "status"), "accepted");
            const cJSON *att = cJSON_GetObjectItemCaseSensitive(x, "attempts");
            assert_int_equal(cJSON_GetArraySize(att), 2);
            const cJSON *a0 = cJSON_GetArrayItem(att, 0), *a1 = cJSON_GetArrayItem(att, 1);
            assert_string_equal(h_str(a0, "lane"), "flex");
            /* cheap at flex: (1000 x 1 + 100 x 2) / 1e6 x 0.5 */
            assert_true(fabs(num(a0, "cost_usd") - 0.0006) < 1e-9);
            assert_string_equal(h_str(a1, "lane"), faulted ? "flex→sync" : "flex");
            /* mid: (1000 x 10 + 100 x 20) / 1e6 = 0.012 on sync */
            assert_true(fabs(num(a1, "cost_usd") - (faulted ? 0.012 : 0.006)) < 1e-9);
        }
        if (!strstr(err, "on the sync lane $0.052800"))
            fail_msg("the summary does not give the sync-lane cost: %s", err);
        if (faulted && !strstr(err, "the flex tier has no capacity"))
            fail_msg("the move to sync is not said: %s", err);
        /* The mock refused the flex requests it was told to (and only then). */
        char *mlog = h_slurp(log);
        assert_int_equal(strstr(mlog, "flex-429") != NULL, faulted);
        free(mlog);
        cJSON_Delete(res);
        free(err);
        free(out);
        free(errf);
        free(log);
    }
    free(tasks);
    free(recs);
}

/* ---- the batch lane over the demo ------------------------------------------ */

static const char *const DEMO_CASCADES[] = {"c-code", "js-code", "python-code", "ticket-classify"};

/* The demo's models and cascades in dir/, each tier on lanes[tier]. Returns the dir. */
static char *demo_config(const char *dir, const char *const lanes[3], const char *api)
{
    char *abs = h_tmp(dir);
    mkdir(abs, 0755);
    free(abs);
    char *src = h_srcpath("fixtures/demo/models.json");
    char *text = h_slurp(src);
    if (api) { /* the demo's provider speaks api */
        cJSON *mj = cJSON_Parse(text);
        cJSON *pv = cJSON_GetObjectItem(cJSON_GetObjectItem(mj, "providers"), "mock");
        cJSON_ReplaceItemInObject(pv, "api", cJSON_CreateString(api));
        cJSON_ReplaceItemInObject(
            pv, "base_url",
            cJSON_CreateString(strcmp(api, "gemini") ? "${MOCK_URL}/v1" : "${MOCK_URL}/v1beta"));
        free(text);
        text = cJSON_Print(mj);
        cJSON_Delete(mj);
    }
    char *name = wk_xasprintf("%s/models.json", dir);
    free(h_write(name, text));
    free(name);
    free(text);
    free(src);
    for (size_t i = 0; i < sizeof DEMO_CASCADES / sizeof DEMO_CASCADES[0]; i++) {
        char *rel = wk_xasprintf("fixtures/demo/cascades/%s.json", DEMO_CASCADES[i]);
        char *path = h_srcpath(rel);
        char *body = h_slurp(path);
        cJSON *c = cJSON_Parse(body);
        cJSON *t;
        int k = 0;
        cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(c, "tiers"))
        {
            cJSON_AddStringToObject(t, "lane", lanes[k < 3 ? k : 2]);
            k++;
        }
        char *out = cJSON_PrintUnformatted(c);
        char *oname = wk_xasprintf("%s/%s.json", dir, DEMO_CASCADES[i]);
        free(h_write(oname, out));
        free(oname);
        free(out);
        cJSON_Delete(c);
        free(body);
        free(path);
        free(rel);
    }
    return h_tmp(dir);
}

/* Runs the demo tasks with the cascades in cdir; the mock's log in *log. */
static int run_demo(const char *tag, const char *dir, char **out, char **log, char **err)
{
    char *recs = h_srcpath("fixtures/demo/recordings.jsonl");
    char *tasks = h_srcpath("fixtures/demo/tasks.jsonl");
    *out = wk_xasprintf("%s/%s.jsonl", dir, tag);
    *log = wk_xasprintf("%s/%s.log", dir, tag);
    char *errf = wk_xasprintf("%s/%s.err", dir, tag);
    const char *margs[] = {"--batch-delay", "20", "--log-bodies", "0", NULL};
    h_mock m;
    h_mock_start(&m, recs, *log, margs);
    const char *argv[] = {h_cascade_bin(), "run",  tasks, "--cascades", dir, "-o", *out,
                          "--batch-poll",  "0.02", NULL};
    int rc = h_run((char *const *)argv, NULL, errf, 240);
    h_mock_stop(&m);
    *err = h_slurp(errf);
    free(errf);
    free(recs);
    free(tasks);
    return rc;
}

static const cJSON *by_id(const cJSON *arr, const char *id)
{
    return h_find(arr, "id", id);
}

static int same_json(const cJSON *a, const cJSON *b)
{
    return (!a && !b) || (a && b && cJSON_Compare(a, b, 1));
}

/*
 * Tiers on batch, batch, sync over the demo tasks: the same statuses, tiers
 * and answers as all on sync; each batch attempt at half its sync cost (the
 * demo models' default batch discount); the mock saw one batch per model
 * and round (tier 0, tier 0's retries, tier 1, tier 1's retries), never one
 * per task, and no request twice.
 */
static void matches_sync_on(const char *api)
{
    const char *const sync[3] = {"sync", "sync", "sync"};
    const char *const mixed[3] = {"batch", "batch", "sync"};
    char *sn = wk_xasprintf("demo-sync-%s", api ? api : "openai");
    char *bn = wk_xasprintf("demo-batch-%s", api ? api : "openai");
    char *sdir = demo_config(sn, sync, api), *bdir = demo_config(bn, mixed, api);
    free(sn);
    free(bn);
    char *sout, *slog, *serr, *bout, *blog, *berr;
    int rc = run_demo("run", sdir, &sout, &slog, &serr);
    if (rc != 0)
        fail_msg("sync run: exit %d: %s", rc, serr);
    rc = run_demo("run", bdir, &bout, &blog, &berr);
    if (rc != 0)
        fail_msg("batch run: exit %d: %s", rc, berr);
    cJSON *s = h_jsonl(sout), *b = h_jsonl(bout);
    assert_int_equal(cJSON_GetArraySize(s), cJSON_GetArraySize(b));
    int batch_attempts = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, s)
    {
        if (!h_str(x, "id"))
            continue; /* the demo's invalid tasks */
        const cJSON *y = by_id(b, h_str(x, "id"));
        assert_non_null(y);
        assert_string_equal(h_str(x, "status"), h_str(y, "status"));
        assert_true(same_json(cJSON_GetObjectItem(x, "tier"), cJSON_GetObjectItem(y, "tier")));
        assert_true(same_json(cJSON_GetObjectItem(x, "answer"), cJSON_GetObjectItem(y, "answer")));
        const cJSON *sa = cJSON_GetObjectItem(x, "attempts"),
                    *ba = cJSON_GetObjectItem(y, "attempts");
        assert_int_equal(cJSON_GetArraySize(sa), cJSON_GetArraySize(ba));
        for (int i = 0; i < cJSON_GetArraySize(ba); i++) {
            const cJSON *p = cJSON_GetArrayItem(sa, i), *q = cJSON_GetArrayItem(ba, i);
            double tier = num(q, "tier");
            if (tier < 2) {
                batch_attempts++;
                assert_string_equal(h_str(q, "lane"), "batch");
                assert_non_null(h_str(q, "batch_id"));
                assert_true(fabs(num(q, "cost_usd") - num(p, "cost_usd") / 2) < 2e-9);
            } else {
                assert_null(cJSON_GetObjectItem(q, "lane"));
                assert_true(fabs(num(q, "cost_usd") - num(p, "cost_usd")) < 1e-12);
            }
        }
    }
    assert_true(batch_attempts > 40);
    /* The mock's log: batches created, their requests, none twice. */
    cJSON *ml = h_jsonl(blog);
    int created = 0, requests = 0;
    cJSON *seen = cJSON_CreateObject();
    cJSON_ArrayForEach(x, ml)
    {
        if (strcmp(h_str(x, "batch") ? h_str(x, "batch") : "", "created") != 0)
            continue;
        created++;
        const cJSON *id;
        cJSON_ArrayForEach(id, cJSON_GetObjectItem(x, "custom_ids"))
        {
            requests++;
            if (cJSON_GetObjectItem(seen, id->valuestring))
                fail_msg("request %s was submitted twice", id->valuestring);
            cJSON_AddTrueToObject(seen, id->valuestring);
        }
    }
    assert_int_equal(requests, batch_attempts);
    /* The demo's rounds: swift-mini, its retries, forge-medium, its retries. */
    assert_int_equal(created, 4);
    if (!strstr(berr, "on the sync lane $"))
        fail_msg("no sync-lane cost in the summary: %s", berr);
    cJSON_Delete(seen);
    cJSON_Delete(ml);
    cJSON_Delete(s);
    cJSON_Delete(b);
    free(sdir);
    free(bdir);
    free(sout);
    free(slog);
    free(serr);
    free(bout);
    free(blog);
    free(berr);
}

static void batch_lane_matches_sync(void **state)
{
    (void)state;
    matches_sync_on(NULL);
}

/* The same over Anthropic's Message Batches and over Gemini's batch mode. */
static void anthropic_batch_matches_sync(void **state)
{
    (void)state;
    matches_sync_on("anthropic");
}

static void gemini_batch_matches_sync(void **state)
{
    (void)state;
    matches_sync_on("gemini");
}

/* ---- kill -9 while a batch is out ------------------------------------------ */

static double total_cost(const cJSON *res)
{
    double t = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        t += num(x, "cost_usd");
    }
    return t;
}

/* One run of the "main" cascade (both tiers on batch) over tasks, with env NAME=VALUE. */
static int run_batch_main(const char *tasks, const char *out, const char *errf, const char *env,
                          const char *val)
{
    if (env)
        setenv(env, val, 1);
    const char *argv[] = {h_cascade_bin(), "run",      tasks, "--cascades", cdir,
                          "--models",      cur_models, "-o",  out,          "--batch-poll",
                          "0.02",          "-q",       NULL};
    int rc = h_run((char *const *)argv, NULL, errf, 60);
    if (env)
        unsetenv(env);
    return rc;
}

/*
 * The worker killed (SIGKILL) before a batch is submitted, after it is
 * submitted but before its id is journaled, while polling, while fetching
 * its results, and while validating an answer; a rerun of the same command
 * finishes: every task has exactly one result, as uninterrupted; the mock
 * saw no request submitted twice; the run costs what the uninterrupted one
 * did.
 */
static void kill9_points_on(const char *api)
{
    cur_models = models_of(api);
    write_cascade("main", "batch", "batch");
    char *tasks, *recs;
    make_batch("k9", 6, &tasks, &recs);
    static const struct {
        const char *env, *val;
    } points[] = {
        {NULL, NULL}, /* the uninterrupted run */
        {"CASCADE_FAULT_BATCH_KILL", "before_submit"},
        {"CASCADE_FAULT_BATCH_KILL", "after_create"},
        {"CASCADE_FAULT_BATCH_KILL", "polling"},
        {"CASCADE_FAULT_BATCH_KILL", "fetching"},
        {"CASCADE_FAULT_ABORT_IN_VALIDATE", "k9-3"},
    };
    double want_cost = -1;
    for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
        char *tag = wk_xasprintf("k9-%s-%zu", api ? api : "openai", p);
        char *out = h_tmp(tag), *errf = wk_xasprintf("%s.err", out);
        char *log = wk_xasprintf("%s.log", out);
        const char *margs[] = {"--batch-delay", "30", "--log-bodies", "0", NULL};
        h_mock m;
        h_mock_start(&m, recs, log, margs);
        int rc = run_batch_main(tasks, out, errf, points[p].env, points[p].val);
        if (points[p].env) {
            if (rc == 0)
                fail_msg("%s=%s: the run was not killed", points[p].env, points[p].val);
            rc = run_batch_main(tasks, out, errf, NULL, NULL);
        }
        h_mock_stop(&m);
        char *err = h_slurp(errf);
        if (rc != 0)
            fail_msg("%s: exit %d: %s", points[p].val ? points[p].val : "uninterrupted", rc, err);
        /* The rerun says what it found of the batch that was out. */
        const char *said = !points[p].val                           ? ""
                           : !strcmp(points[p].val, "after_create") ? "found at the provider"
                           : !strcmp(points[p].val, "polling") || !strcmp(points[p].val, "fetching")
                               ? "still out from the last run"
                               : "";
        if (!strstr(err, said))
            fail_msg("%s: the rerun does not say \"%s\": %s", points[p].val, said, err);
        cJSON *res = h_jsonl(out);
        assert_int_equal(cJSON_GetArraySize(res), 6);
        for (int i = 0; i < 6; i++) {
            char id[32];
            snprintf(id, sizeof id, "k9-%d", i);
            assert_int_equal(h_count(res, "id", id), 1);
            const cJSON *x = h_find(res, "id", id);
            assert_string_equal(h_str(x, "status"), "accepted");
            assert_int_equal((int)num(x, "tier"), 1);
            /* Resumed or not, each attempt says which batch carried it. */
            const cJSON *a;
            cJSON_ArrayForEach(a, cJSON_GetObjectItem(x, "attempts"))
            {
                assert_string_equal(h_str(a, "lane"), "batch");
                if (!h_str(a, "batch_id"))
                    fail_msg("%s: %s has an attempt without its batch_id", points[p].val, id);
            }
        }
        double cost = total_cost(res);
        if (want_cost < 0)
            want_cost = cost;
        else if (fabs(cost - want_cost) > 1e-9)
            fail_msg("%s: the run cost $%.9f, uninterrupted $%.9f", points[p].val, cost, want_cost);
        cJSON *ml = h_jsonl(log);
        cJSON *seen = cJSON_CreateObject();
        const cJSON *x;
        int created = 0;
        cJSON_ArrayForEach(x, ml)
        {
            if (!h_str(x, "batch") || strcmp(h_str(x, "batch"), "created") != 0)
                continue;
            created++;
            const cJSON *cid;
            cJSON_ArrayForEach(cid, cJSON_GetObjectItem(x, "custom_ids"))
            {
                if (cJSON_GetObjectItem(seen, cid->valuestring))
                    fail_msg("%s: request %s submitted twice", points[p].val, cid->valuestring);
                cJSON_AddTrueToObject(seen, cid->valuestring);
            }
        }
        assert_int_equal(created, 2); /* cheap's batch, then mid's */
        cJSON_Delete(seen);
        cJSON_Delete(ml);
        cJSON_Delete(res);
        free(err);
        free(tag);
        free(out);
        free(errf);
        free(log);
    }
    free(tasks);
    free(recs);
    cur_models = models;
}

static void kill9_points(void **state)
{
    (void)state;
    kill9_points_on(NULL);
}

/*
 * The same on Anthropic's Message Batches and Gemini's batch mode. After a
 * kill between the create and the journaling of its id, the rerun finds
 * the batch: Gemini's by its displayName, Anthropic's (which has no tag)
 * by the custom ids of its results once it has ended.
 */
static void kill9_points_anthropic(void **state)
{
    (void)state;
    kill9_points_on("anthropic");
}

static void kill9_points_gemini(void **state)
{
    (void)state;
    kill9_points_on("gemini");
}

/*
 * A request that errs inside a batch (the mock's 500 for cheap, every time)
 * is retried in cheap's next batch within --retries, then the task climbs;
 * the attempt says why and how often it was retried.
 */
static void request_errors_on(const char *api)
{
    write_cascade("main", "batch", "batch");
    char *tasks, *recs;
    make_batch("be", 3, &tasks, &recs);
    char *out = h_tmp("be.jsonl"), *errf = wk_xasprintf("%s.err", out);
    char *log = wk_xasprintf("%s.log", out);
    const char *margs[] = {"--fault", "500:1@cheap", "--log-bodies", "0", NULL};
    h_mock m;
    h_mock_start(&m, recs, log, margs);
    const char *argv[] = {h_cascade_bin(), "run",          tasks, "--cascades", cdir,
                          "--models",      models_of(api), "-o",  out,          "--batch-poll",
                          "0.02",          "--retries",    "1",   "-q",         NULL};
    int rc = h_run((char *const *)argv, NULL, errf, 60);
    h_mock_stop(&m);
    char *err = h_slurp(errf);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    cJSON *res = h_jsonl(out);
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        assert_string_equal(h_str(x, "status"), "accepted");
        assert_int_equal((int)num(x, "tier"), 1);
        const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(x, "attempts"), 0);
        assert_int_equal((int)num(a0, "retries"), 1);
        const cJSON *v = cJSON_GetObjectItem(a0, "verdict");
        assert_string_equal(h_str(v, "reason"), "http_500");
        assert_true(num(a0, "cost_usd") == 0);
    }
    /* cheap's batch, its retry batch, mid's batch */
    cJSON *ml = h_jsonl(log);
    assert_int_equal(h_count(ml, "batch", "created"), 3);
    cJSON_Delete(ml);
    cJSON_Delete(res);
    free(err);
    free(out);
    free(errf);
    free(log);
    free(tasks);
    free(recs);
}

static void batch_request_errors_retry_then_climb(void **state)
{
    (void)state;
    request_errors_on(NULL);
}

/* The same on Anthropic (an errored result, api_error) and Gemini (an inlined error). */
static void batch_request_errors_anthropic(void **state)
{
    (void)state;
    request_errors_on("anthropic");
}

static void batch_request_errors_gemini(void **state)
{
    (void)state;
    request_errors_on("gemini");
}

/*
 * --deadline: a batch that will not finish in time (the mock holds it for
 * ten minutes) is cancelled with a quarter of the deadline left; its
 * requests, and the next tier's calls, go to the sync lane and are priced
 * there ("lane": "batch→sync").
 */
static void deadline_on(const char *api)
{
    write_cascade("main", "batch", "batch");
    char *tasks, *recs;
    const char *tag = !api ? "dl" : !strcmp(api, "anthropic") ? "dla" : "dlg";
    make_batch(tag, 3, &tasks, &recs);
    char *name = wk_xasprintf("%s.jsonl", tag);
    char *out = h_tmp(name), *errf = wk_xasprintf("%s.err", out);
    free(name);
    char *log = wk_xasprintf("%s.log", out);
    const char *margs[] = {"--batch-delay", "600000", "--log-bodies", "0", NULL};
    h_mock m;
    h_mock_start(&m, recs, log, margs);
    const char *argv[] = {h_cascade_bin(), "run",          tasks, "--cascades", cdir,
                          "--models",      models_of(api), "-o",  out,          "--batch-poll",
                          "0.05",          "--deadline",   "2s",  NULL};
    int rc = h_run((char *const *)argv, NULL, errf, 60);
    h_mock_stop(&m);
    char *err = h_slurp(errf);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    cJSON *res = h_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), 3);
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        assert_string_equal(h_str(x, "status"), "accepted");
        const cJSON *att = cJSON_GetObjectItem(x, "attempts");
        assert_int_equal(cJSON_GetArraySize(att), 2);
        const cJSON *a0 = cJSON_GetArrayItem(att, 0), *a1 = cJSON_GetArrayItem(att, 1);
        assert_string_equal(h_str(a0, "lane"), "batch→sync");
        assert_string_equal(h_str(a1, "lane"), "batch→sync");
        assert_true(fabs(num(a0, "cost_usd") - 0.0012) < 1e-9); /* cheap at sync */
        assert_true(fabs(num(a1, "cost_usd") - 0.012) < 1e-9);  /* mid at sync */
    }
    if (!strstr(err, "--deadline: cancelling batch"))
        fail_msg("the cancel is not said: %s", err);
    cJSON *ml = h_jsonl(log);
    assert_int_equal(h_count(ml, "batch", "created"), 1);
    assert_int_equal(h_count(ml, "batch", "cancelled"), 1);
    cJSON_Delete(ml);
    cJSON_Delete(res);
    free(err);
    free(out);
    free(errf);
    free(log);
    free(tasks);
    free(recs);
}

static void deadline_moves_late_batches_to_sync(void **state)
{
    (void)state;
    deadline_on(NULL);
}

/* The same on Anthropic (cancelled: canceled results) and Gemini (a cancelled operation). */
static void deadline_anthropic(void **state)
{
    (void)state;
    deadline_on("anthropic");
}

static void deadline_gemini(void **state)
{
    (void)state;
    deadline_on("gemini");
}

/*
 * SIGTERM while a batch is out: the worker says the batch keeps running and
 * how to collect it, exits after --grace, and the same command again polls
 * the batch instead of sending its requests again.
 */
static void sigterm_leaves_batches_running(void **state)
{
    (void)state;
    write_cascade("main", "batch", "batch");
    char *tasks, *recs;
    make_batch("st", 3, &tasks, &recs);
    char *out = h_tmp("st.jsonl"), *errf = wk_xasprintf("%s.err", out);
    char *log = wk_xasprintf("%s.log", out);
    const char *margs[] = {"--batch-delay", "1500", "--log-bodies", "0", NULL};
    h_mock m;
    h_mock_start(&m, recs, log, margs);
    const char *argv[] = {h_cascade_bin(), "run",     tasks, "--cascades", cdir,
                          "--models",      models,    "-o",  out,          "--batch-poll",
                          "0.05",          "--grace", "0.2", "-q",         NULL};
    pid_t pid = h_spawn((char *const *)argv, NULL, errf);
    int up = 0;
    for (int i = 0; i < 200 && !up; i++) { /* until the batch is created: 10 s at most */
        h_sleep_ms(50);
        char *l = h_slurp(log);
        up = strstr(l, "\"created\"") != NULL;
        free(l);
    }
    assert_true(up);
    kill(pid, SIGTERM);
    int rc = h_wait(pid, 20000);
    assert_true(rc != 0 && rc != -1);
    char *err = h_slurp(errf);
    if (!strstr(err, "wait in provider batches, which keep running"))
        fail_msg("SIGTERM does not say the batch keeps running: %s", err);
    free(err);
    rc = run_batch_main(tasks, out, errf, NULL, NULL);
    h_mock_stop(&m);
    err = h_slurp(errf);
    if (rc != 0)
        fail_msg("rerun: exit %d: %s", rc, err);
    cJSON *res = h_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), 3);
    assert_int_equal(h_count(res, "status", "accepted"), 3);
    cJSON *ml = h_jsonl(log);
    assert_int_equal(h_count(ml, "batch", "created"), 2); /* cheap's, once; then mid's */
    cJSON_Delete(ml);
    cJSON_Delete(res);
    free(err);
    free(out);
    free(errf);
    free(log);
    free(tasks);
    free(recs);
}

/*
 * Faults of the Batch API itself: a request that expires inside its batch
 * is retried in the next batch (within --retries) and then answers; a batch
 * that fails whole is tried once more, then its requests climb.
 */
static void batch_expiry_and_failure(void **state)
{
    (void)state;
    write_cascade("main", "batch", "batch");
    char *tasks, *recs;
    make_batch("bx", 3, &tasks, &recs);
    for (int kind = 0; kind < 2; kind++) {
        char *out = h_tmp(kind ? "bx-failed.jsonl" : "bx-expired.jsonl");
        char *errf = wk_xasprintf("%s.err", out), *log = wk_xasprintf("%s.log", out);
        /* expired: mid's first request of each task; failed: every batch of cheap */
        const char *margs[] = {"--fault",
                               kind ? "batch-failed:1@cheap" : "batch-expired:every:1@mid",
                               "--log-bodies", "0", NULL};
        h_mock m;
        h_mock_start(&m, recs, log, margs);
        const char *argv[] = {h_cascade_bin(), "run",  tasks, "--cascades", cdir,
                              "--models",      models, "-o",  out,          "--batch-poll",
                              "0.02",          "-q",   NULL};
        int rc = h_run((char *const *)argv, NULL, errf, 60);
        h_mock_stop(&m);
        char *err = h_slurp(errf);
        if (rc != 0)
            fail_msg("exit %d: %s", rc, err);
        cJSON *res = h_jsonl(out);
        const cJSON *x;
        cJSON_ArrayForEach(x, res)
        {
            const cJSON *att = cJSON_GetObjectItem(x, "attempts");
            if (kind) { /* cheap failed twice as a batch, then mid answered */
                assert_string_equal(h_str(x, "status"), "accepted");
                const cJSON *a0 = cJSON_GetArrayItem(att, 0);
                assert_string_equal(h_str(cJSON_GetObjectItem(a0, "verdict"), "reason"),
                                    "batch_failed");
                assert_int_equal((int)num(a0, "retries"), 1);
            } else { /* every mid request expires: retried --retries (3) times, then exhausted */
                assert_string_equal(h_str(x, "status"), "exhausted");
                const cJSON *a1 = cJSON_GetArrayItem(att, 1);
                assert_string_equal(h_str(cJSON_GetObjectItem(a1, "verdict"), "reason"),
                                    "batch_expired");
                assert_int_equal((int)num(a1, "retries"), 3);
            }
        }
        cJSON *ml = h_jsonl(log);
        /* failed: cheap, cheap again, mid; expired: cheap, then mid four times */
        assert_int_equal(h_count(ml, "batch", "created"), kind ? 3 : 5);
        cJSON_Delete(ml);
        cJSON_Delete(res);
        free(err);
        free(out);
        free(errf);
        free(log);
    }
    free(tasks);
    free(recs);
}

/* ---- the Batch API's own faults: never paying twice ------------------------ */

/* No custom id in two batches the mock created; returns how many batches it created. */
static int created_once_each(const cJSON *ml)
{
    cJSON *seen = cJSON_CreateObject();
    const cJSON *x;
    int created = 0;
    cJSON_ArrayForEach(x, ml)
    {
        if (!h_str(x, "batch") || strcmp(h_str(x, "batch"), "created") != 0)
            continue;
        created++;
        const cJSON *cid;
        cJSON_ArrayForEach(cid, cJSON_GetObjectItem(x, "custom_ids"))
        {
            if (cJSON_GetObjectItem(seen, cid->valuestring))
                fail_msg("request %s submitted twice", cid->valuestring);
            cJSON_AddTrueToObject(seen, cid->valuestring);
        }
    }
    cJSON_Delete(seen);
    return created;
}

/*
 * The "main" cascade (both tiers on batch) over n tasks, against a mock with
 * the Batch API fault `fault`, extra the run's further arguments; with kill
 * set, the first run is killed there (CASCADE_FAULT_BATCH_KILL) and the same
 * command runs again. The results, the mock's log and stderr come back.
 */
static void run_batch_fault(const char *tag, const char *fault, const char *delay,
                            const char *const *extra, const char *kill_at, cJSON **res, cJSON **ml,
                            char **err)
{
    write_cascade("main", "batch", "batch");
    char *tasks, *recs;
    make_batch(tag, 3, &tasks, &recs);
    char *name = wk_xasprintf("%s.jsonl", tag);
    char *out = h_tmp(name), *errf = wk_xasprintf("%s.err", out);
    free(name);
    char *log = wk_xasprintf("%s.log", out);
    const char *margs[] = {"--fault", fault, "--batch-delay", delay, "--log-bodies", "0", NULL};
    const char *argv[24] = {h_cascade_bin(), "run", tasks, "--cascades",   cdir,   "--models",
                            models,          "-o",  out,   "--batch-poll", "0.02", "-q"};
    int n = 12;
    for (int i = 0; extra && extra[i] && n < 23; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    h_mock m;
    h_mock_start(&m, recs, log, margs);
    if (kill_at) {
        setenv("CASCADE_FAULT_BATCH_KILL", kill_at, 1);
        pid_t pid = h_spawn((char *const *)argv, NULL, errf);
        unsetenv("CASCADE_FAULT_BATCH_KILL"); /* the child has it; the later runs must not */
        int rc = h_wait(pid, 60000);
        if (rc != 128 + SIGKILL) {
            if (rc < 0)
                kill(pid, SIGKILL);
            char *e = h_slurp(errf);
            fail_msg("%s: the run was not killed at %s (%d): %s", tag, kill_at, rc, e);
        }
    }
    int rc = h_run((char *const *)argv, NULL, errf, 90);
    h_mock_stop(&m);
    *err = h_slurp(errf);
    if (rc != 0)
        fail_msg("%s: exit %d: %s", tag, rc, *err);
    *res = h_jsonl(out);
    *ml = h_jsonl(log);
    assert_int_equal(cJSON_GetArraySize(*res), 3);
    free(out);
    free(errf);
    free(log);
    free(tasks);
    free(recs);
}

/* Every task accepted by mid, its cheap attempt answered by cheap's first batch. */
static void answered_by_first_batches(const cJSON *res)
{
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        assert_string_equal(h_str(x, "status"), "accepted");
        assert_int_equal((int)num(x, "tier"), 1);
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(x, "attempts"))
        {
            assert_string_equal(h_str(a, "lane"), "batch");
            assert_int_equal((int)num(a, "retries"), 0);
        }
    }
}

/*
 * POST /batches answers 500 after the provider made the batch: the batch is
 * found among the provider's batches by its metadata and polled, never
 * created a second time.
 */
static void failed_create_is_looked_for(void **state)
{
    (void)state;
    cJSON *res, *ml;
    char *err;
    run_batch_fault("bc", "batch-create-500:1", "30", NULL, NULL, &res, &ml, &err);
    answered_by_first_batches(res);
    assert_int_equal(created_once_each(ml), 2); /* cheap's, mid's */
    assert_int_equal(h_count(ml, "batch", "create-500"), 2);
    if (!strstr(err, "found at the provider after a failed create"))
        fail_msg("the lookup is not said: %s", err);
    cJSON_Delete(res);
    cJSON_Delete(ml);
    free(err);
}

/*
 * Polls and fetches that fail (503) six times per batch, more than the five
 * a step of the protocol is tried: the batches are polled on, never failed
 * and sent again; every answer comes from the first batch of its tier.
 */
static void failed_polls_never_fail_a_batch(void **state)
{
    (void)state;
    cJSON *res, *ml;
    char *err;
    run_batch_fault("bg", "batch-get-503:1:6", "30", NULL, NULL, &res, &ml, &err);
    answered_by_first_batches(res);
    assert_int_equal(created_once_each(ml), 2);
    assert_int_equal(h_count(ml, "batch", "get-refused"), 12);
    cJSON_Delete(res);
    cJSON_Delete(ml);
    free(err);
}

/*
 * --deadline cancels cheap's batch, and the provider refuses: the batch has
 * completed. Its answers are used at the batch price; only what comes
 * after the deadline (mid's calls) goes to the sync lane.
 */
static void refused_cancel_uses_the_batch(void **state)
{
    (void)state;
    cJSON *res, *ml;
    char *err;
    const char *const extra[] = {"--deadline", "2s", NULL};
    run_batch_fault("bk", "batch-cancel-refused:1@cheap", "600000", extra, NULL, &res, &ml, &err);
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        assert_string_equal(h_str(x, "status"), "accepted");
        const cJSON *att = cJSON_GetObjectItem(x, "attempts");
        assert_int_equal(cJSON_GetArraySize(att), 2);
        const cJSON *a0 = cJSON_GetArrayItem(att, 0), *a1 = cJSON_GetArrayItem(att, 1);
        assert_string_equal(h_str(a0, "lane"), "batch");
        assert_true(fabs(num(a0, "cost_usd") - 0.00037) < 1e-9); /* cheap's batch prices */
        assert_string_equal(h_str(a1, "lane"), "batch→sync");
        assert_true(fabs(num(a1, "cost_usd") - 0.012) < 1e-9); /* mid at sync */
    }
    if (!strstr(err, "--deadline: cancelling batch"))
        fail_msg("the cancel is not said: %s", err);
    assert_int_equal(created_once_each(ml), 1);
    assert_int_equal(h_count(ml, "batch", "cancel-refused"), 1);
    cJSON_Delete(res);
    cJSON_Delete(ml);
    free(err);
}

/*
 * Killed after the create, before the batch id is journaled, while 250
 * newer batches of another run crowd the provider's list: the rerun pages
 * through the list (100 a page) to find it, and sends nothing twice.
 */
static void lost_batch_found_past_first_page(void **state)
{
    (void)state;
    cJSON *res, *ml;
    char *err;
    run_batch_fault("bl", "batch-crowd:1:250", "30", NULL, "after_create", &res, &ml, &err);
    answered_by_first_batches(res);
    if (!strstr(err, "found at the provider after a restart"))
        fail_msg("the rerun does not find the batch: %s", err);
    assert_int_equal(created_once_each(ml), 2);
    cJSON_Delete(res);
    cJSON_Delete(ml);
    free(err);
}

/* A batch line whose status_code is no HTTP status (1e300) is that request's failure. */
static void absurd_status_code_is_a_failure(void **state)
{
    (void)state;
    cJSON *res, *ml;
    char *err;
    const char *const extra[] = {"--retries", "1", NULL};
    run_batch_fault("bs", "batch-bad-status:1@cheap", "30", extra, NULL, &res, &ml, &err);
    const cJSON *x;
    cJSON_ArrayForEach(x, res)
    {
        assert_string_equal(h_str(x, "status"), "accepted");
        assert_int_equal((int)num(x, "tier"), 1);
        const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(x, "attempts"), 0);
        assert_string_equal(h_str(cJSON_GetObjectItem(a0, "verdict"), "reason"),
                            "batch_bad_response");
        assert_int_equal((int)num(a0, "retries"), 1);
    }
    assert_int_equal(h_count(ml, "batch", "created"), 3); /* cheap's, its retry, mid's */
    cJSON_Delete(res);
    cJSON_Delete(ml);
    free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(prices_per_lane),
        cmocka_unit_test(bad_lanes_are_refused),
        cmocka_unit_test(anthropic_custom_ids),
        cmocka_unit_test(flex_lane),
        cmocka_unit_test(kill9_points),
        cmocka_unit_test(batch_request_errors_retry_then_climb),
        cmocka_unit_test(sigterm_leaves_batches_running),
        cmocka_unit_test(batch_expiry_and_failure),
        cmocka_unit_test(deadline_moves_late_batches_to_sync),
        cmocka_unit_test(batch_lane_matches_sync),
        cmocka_unit_test(failed_create_is_looked_for),
        cmocka_unit_test(failed_polls_never_fail_a_batch),
        cmocka_unit_test(refused_cancel_uses_the_batch),
        cmocka_unit_test(lost_batch_found_past_first_page),
        cmocka_unit_test(absurd_status_code_is_a_failure),
        cmocka_unit_test(anthropic_batch_matches_sync),
        cmocka_unit_test(gemini_batch_matches_sync),
        cmocka_unit_test(batch_request_errors_anthropic),
        cmocka_unit_test(batch_request_errors_gemini),
        cmocka_unit_test(kill9_points_anthropic),
        cmocka_unit_test(kill9_points_gemini),
        cmocka_unit_test(deadline_anthropic),
        cmocka_unit_test(deadline_gemini),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
