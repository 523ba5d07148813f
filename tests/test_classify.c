/*
 * Classification: labels read leniently from each answer shape, an answer
 * with no label, a gold label outside the enum, the startup errors of a
 * classify cascade, and (against the mock) the signals of doubt of a tier
 * (agreement, samples, logprob and self confidence) escalating and accepting,
 * and the accuracy figures of the report.
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

#include <sqlite3.h>
#include <sys/stat.h>
#include <uv.h>

#include "harness.h"
#include "lib/util.h"
#include "worker/store/journal.h"
#include "validators/val.h"
#include "worker/config.h"
#include "worker/task.h"

static const char *LABELS = "[\"bug\", \"feature\", \"question\", \"won't fix\"]";

/* One answer shape: the label expected ("" none) and the shape named in the verdict. */
typedef struct shape_case {
    const char *answer;
    const char *label;
    const char *shape;
} shape_case;

static void test_lenient_parsing_reads_each_answer_shape(void **state)
{
    (void)state;
    static const shape_case cases[] = {
        {"bug", "bug", "bare label"},
        {"  Feature.\n", "feature", "bare label"},
        {"**question**", "question", "bare label"},
        {"\"won't fix\"", "won't fix", "bare label"},
        {"{\"label\": \"feature\", \"confidence\": 0.25}", "feature", "JSON object"},
        {"\"question\"", "question", "bare label"},
        {"Here you go:\n```json\n{\"label\": \"bug\"}\n```\nHope it helps.", "bug",
         "fenced JSON block"},
        {"I think {\"label\": \"question\"} fits best.", "question", "JSON object in the text"},
        {"bug: the stack trace shows a null dereference", "bug",
         "label followed by an explanation"},
        {"Label: Feature - the user asks for dark mode", "feature",
         "label followed by an explanation"},
        {"question\n\nThe reporter asks how to configure it.", "question",
         "label followed by an explanation"},
        /* No label: a near miss, a label inside a word, a JSON object naming another one. */
        {"bugg", "", ""},
        {"debugging needed", "", ""},
        {"{\"label\": \"enhancement\"}", "", ""},
        {"", "", ""},
    };
    cJSON *labels = cJSON_Parse(LABELS);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        val_label_parse_out out;
        int rc = val_label_parse(cases[i].answer, labels, "label", &out);
        if (strcmp(out.label, cases[i].label) != 0 || strcmp(out.shape, cases[i].shape) != 0)
            fail_msg("answer %zu \"%s\": got \"%s\" (%s), want \"%s\" (%s)", i, cases[i].answer,
                     out.label, out.shape, cases[i].label, cases[i].shape);
        assert_int_equal(rc, cases[i].label[0] ? 0 : WK_ENOTFOUND);
    }
    /* The answer's own confidence is read from a JSON answer, and the label's offset. */
    val_label_parse_out out;
    const char *a = "{\"label\": \"feature\", \"confidence\": 0.25}";
    assert_int_equal(val_label_parse(a, labels, "label", &out), 0);
    assert_true(fabs(out.confidence - 0.25) < 1e-9);
    assert_int_equal(strncmp(a + out.at, "feature", 7), 0);
    /* A nested field. */
    assert_int_equal(val_label_parse("{\"r\": {\"c\": \"bug\"}}", labels, "r.c", &out), 0);
    assert_string_equal(out.label, "bug");
    cJSON_Delete(labels);
}

static void test_label_set_comes_from_the_schema_enum_at_the_field(void **state)
{
    (void)state;
    const cJSON *labels;
    const char *path;
    char why[256];
    cJSON *s1 = cJSON_Parse("{\"enum\": [\"A\", \"B\"]}");
    assert_int_equal(val_label_set(s1, NULL, &labels, &path, why, sizeof why), 0);
    assert_string_equal(path, "");
    assert_int_equal(cJSON_GetArraySize(labels), 2);
    cJSON *s2 = cJSON_Parse("{\"type\": \"object\", \"properties\": {\"label\": {\"enum\": "
                            "[\"x\"]}, \"r\": {\"properties\": {\"c\": {\"enum\": [\"y\"]}}}}}");
    assert_int_equal(val_label_set(s2, NULL, &labels, &path, why, sizeof why), 0);
    assert_string_equal(path, "label");
    assert_int_equal(val_label_set(s2, "r.c", &labels, &path, why, sizeof why), 0);
    assert_string_equal(cJSON_GetArrayItem(labels, 0)->valuestring, "y");
    assert_int_equal(val_label_set(s2, "nope", &labels, &path, why, sizeof why), WK_ENOTFOUND);
    assert_non_null(strstr(why, "properties.nope"));
    cJSON *s3 = cJSON_Parse("{\"properties\": {\"label\": {\"enum\": []}}}");
    assert_int_equal(val_label_set(s3, NULL, &labels, &path, why, sizeof why), WK_EINVAL);
    assert_non_null(strstr(why, "empty enum"));
    assert_int_equal(val_label_set(NULL, NULL, &labels, &path, why, sizeof why), WK_ENOTFOUND);
    cJSON_Delete(s1);
    cJSON_Delete(s2);
    cJSON_Delete(s3);
}

static val_verdict got;
static int ncalled;
static void on_done(void *arg, const val_verdict *v)
{
    (void)arg;
    ncalled++;
    val_verdict_copy(&got, v);
}

/* Runs the chain [schema?, label] on answer; the verdict lands in `got`. */
static void run_label(const char *schema_text, const char *answer, int with_schema)
{
    cJSON *schema = cJSON_Parse(schema_text);
    val_input in = {.task_id = "t", .kind = "classify", .answer = answer, .schema = schema};
    const char *names[] = {"schema", "label"};
    ncalled = 0;
    val_verdict_clear(&got);
    assert_int_equal(val_chain_start(NULL, with_schema ? names : names + 1, with_schema ? 2 : 1,
                                     &in, on_done, NULL),
                     0);
    assert_int_equal(ncalled, 1);
    cJSON_Delete(schema);
}

static const char *OBJ_SCHEMA = "{\"type\": \"object\", \"required\": [\"label\"], \"properties\": "
                                "{\"label\": {\"enum\": [\"bug\", \"feature\", \"question\"]}, "
                                "\"confidence\": {\"type\": \"number\"}}}";

static void test_answer_naming_no_label_fails_no_label_and_a_pass_carries_it(void **state)
{
    (void)state;
    run_label(OBJ_SCHEMA, "I cannot tell from this ticket.", 0);
    assert_false(got.pass);
    assert_string_equal(got.validator, "label");
    assert_string_equal(got.reason, "no_label");
    assert_non_null(strstr(got.message, "bug, feature, question"));
    assert_non_null(strstr(got.evidence, "I cannot tell"));
    assert_string_equal(got.label, "");

    /* A pass keeps its label, the answer's own confidence and what it was read from. */
    run_label(OBJ_SCHEMA, "```json\n{\"label\": \"feature\", \"confidence\": 0.8}\n```", 1);
    assert_true(got.pass);
    assert_string_equal(got.label, "feature");
    assert_true(fabs(got.score - 0.8) < 1e-9);
    assert_string_equal(got.evidence,
                        "label \"feature\" read from a fenced JSON block, field label");
    cJSON *j = val_verdict_json(&got);
    assert_string_equal(h_str(j, "label"), "feature");
    cJSON_Delete(j);

    /* The schema first, then the label: a bare label is not JSON, so schema fails it. */
    run_label(OBJ_SCHEMA, "feature", 1);
    assert_false(got.pass);
    assert_string_equal(got.reason, "invalid_json");
    run_label(OBJ_SCHEMA, "feature", 0);
    assert_true(got.pass);
    j = val_verdict_json(&got);
    assert_null(cJSON_GetObjectItem(j, "score")); /* no confidence in a bare label */
    cJSON_Delete(j);
    val_verdict_clear(&got);
}

/* A config with one classify cascade over one model, for task parsing. */
static wk_provider prov = {.name = "mock", .api = "openai", .base_url = "http://x/v1"};
static wk_model model = {.name = "m", .provider = &prov, .id = "m", .max_tokens = 10};
static char *label_vals[] = {"label", NULL};
static wk_tier one_tier = {.model = &model, .attempts = 1};

static void test_gold_outside_the_enum_is_invalid_task(void **state)
{
    (void)state;
    wk_cascade c = {.name = "tc",
                    .match_kind = "classify",
                    .validators = label_vals,
                    .nvalidators = 1,
                    .tiers = &one_tier,
                    .ntiers = 1};
    wk_config cfg = {.providers = &prov,
                     .nproviders = 1,
                     .models = &model,
                     .nmodels = 1,
                     .cascades = &c,
                     .ncascades = 1};
    char line[1024];
    wk_task *t = NULL;
    cJSON *inv = NULL;
    snprintf(line, sizeof line,
             "{\"id\":\"g1\",\"kind\":\"classify\",\"prompt\":\"p\",\"gold\":\"bugs\","
             "\"schema\":%s}",
             OBJ_SCHEMA);
    assert_int_equal(wk_task_parse(line, strlen(line), 1, &cfg, NULL, &t, &inv), WK_EINVAL);
    assert_string_equal(h_str(inv, "status"), "invalid_task");
    assert_non_null(strstr(h_str(inv, "reason"), "gold label \"bugs\""));
    cJSON_Delete(inv);
    inv = NULL;
    /* --gold names another field; a gold label in the enum is fine. */
    cfg.gold_field = "truth";
    snprintf(line, sizeof line,
             "{\"id\":\"g2\",\"kind\":\"classify\",\"prompt\":\"p\",\"truth\":\"bug\","
             "\"gold\":\"not looked at\",\"schema\":%s}",
             OBJ_SCHEMA);
    assert_int_equal(wk_task_parse(line, strlen(line), 2, &cfg, NULL, &t, &inv), 0);
    wk_task_free(t);
    /* A task whose schema has no labels cannot be labelled. */
    snprintf(line, sizeof line,
             "{\"id\":\"g3\",\"kind\":\"classify\",\"prompt\":\"p\",\"schema\":{\"type\":"
             "\"object\"}}");
    assert_int_equal(wk_task_parse(line, strlen(line), 3, &cfg, NULL, &t, &inv), WK_EINVAL);
    assert_non_null(strstr(h_str(inv, "reason"), "no enum of labels"));
    cJSON_Delete(inv);
}

static const char *MODELS =
    "{\"providers\": {\"o\": {\"api\": \"openai\", \"base_url\": \"http://127.0.0.1:9/v1\","
    " \"key_env\": null}, \"a\": {\"api\": \"anthropic\", \"base_url\": "
    "\"http://127.0.0.1:9/v1\", \"key_env\": null}},"
    " \"models\": {\"cheap\": {\"provider\": \"o\", \"input_usd_per_mtok\": 1,"
    " \"output_usd_per_mtok\": 2}, \"other\": {\"provider\": \"o\", \"input_usd_per_mtok\": 1,"
    " \"output_usd_per_mtok\": 2}, \"claude\": {\"provider\": \"a\", \"input_usd_per_mtok\": 1,"
    " \"output_usd_per_mtok\": 2}}}";

/* Loads MODELS with `cascade` as the one cascade file; the error text goes to err. */
static int load(const char *cascade, char *err, size_t errlen)
{
    char *m = h_write("models.json", MODELS);
    char *c = h_write("casc.json", cascade);
    wk_config cfg;
    int rc = wk_config_load(&cfg, m, c, WK_CONFIG_OFFLINE, err, errlen);
    if (rc == 0)
        wk_config_free(&cfg);
    free(m);
    free(c);
    return rc;
}

static void expect_config_error(const char *cascade, const char *want)
{
    char err[512] = "";
    assert_int_equal(load(cascade, err, sizeof err), WK_ECONFIG);
    if (!strstr(err, want))
        fail_msg("config error \"%s\" lacks \"%s\"", err, want);
}

static void test_classify_cascade_startup_errors(void **state)
{
    (void)state;
    char err[512];
    /* A good one: agreement of two models, logprob confidence on OpenAI-compatible models. */
    assert_int_equal(load("{\"name\": \"c\", \"validators\": [\"label\"], \"schema\": "
                          "{\"enum\": [\"A\", \"B\"]}, \"tiers\": [{\"model\": \"cheap\", "
                          "\"agree\": {\"models\": [\"cheap\", \"other\"], \"min\": 2}, "
                          "\"min_confidence\": 0.5}, {\"model\": \"claude\"}]}",
                          err, sizeof err),
                     0);
    expect_config_error("{\"name\": \"c\", \"validators\": [\"label\"], \"schema\": {\"type\": "
                        "\"object\"}, \"tiers\": [{\"model\": \"cheap\"}]}",
                        "no enum of labels");
    expect_config_error("{\"name\": \"c\", \"validators\": [\"label\"], \"schema\": {\"enum\": "
                        "[]}, \"tiers\": [{\"model\": \"cheap\"}]}",
                        "empty enum");
    /* Anthropic has no logprobs: the tier is named. */
    expect_config_error("{\"name\": \"c\", \"validators\": [\"label\"], \"tiers\": [{\"model\": "
                        "\"cheap\"}, {\"model\": \"claude\", \"confidence\": \"logprobs\", "
                        "\"min_confidence\": 0.9}]}",
                        "tiers[1] (claude): confidence \"logprobs\" needs a provider");
    expect_config_error("{\"name\": \"c\", \"validators\": [\"label\"], \"tiers\": [{\"model\": "
                        "\"cheap\", \"agree\": {\"models\": [\"other\"]}}]}",
                        "the tier's model cheap must be one of agree.models");
    expect_config_error("{\"name\": \"c\", \"validators\": [\"label\"], \"tiers\": [{\"model\": "
                        "\"cheap\", \"agree\": {\"models\": [\"cheap\", \"other\"], \"min\": 3}}]}",
                        "min) must be from 1 to 2");
    expect_config_error("{\"name\": \"c\", \"validators\": [\"schema\"], \"tiers\": [{\"model\": "
                        "\"cheap\", \"samples\": 3}]}",
                        "need the \"label\" validator");
    expect_config_error("{\"name\": \"c\", \"validators\": [\"label\"], \"tiers\": [{\"model\": "
                        "\"cheap\", \"samples\": 99}]}",
                        "samples must be a whole number from 1 to 16");
}

/* ---- against the mock: each signal of doubt escalates and accepts ----------- */

static const char *MOCK_MODELS =
    "{\"providers\": {\"mock\": {\"api\": \"openai\", \"base_url\": \"${MOCK_URL}/v1\", "
    "\"key_env\": null}},\n \"models\": {"
    "\"a\": {\"provider\": \"mock\", \"id\": \"a\", \"input_usd_per_mtok\": 1, "
    "\"output_usd_per_mtok\": 2, \"max_tokens\": 100},"
    "\"b\": {\"provider\": \"mock\", \"id\": \"b\", \"input_usd_per_mtok\": 1, "
    "\"output_usd_per_mtok\": 2, \"max_tokens\": 100},"
    "\"top\": {\"provider\": \"mock\", \"id\": \"top\", \"input_usd_per_mtok\": 10, "
    "\"output_usd_per_mtok\": 20, \"max_tokens\": 100}}}";

/* One cascade per signal; every one climbs to "top" on doubt. */
static const char *const CASCADES[][2] = {
    {"agree.json", "{\"name\": \"agree\", \"validators\": [\"label\"], \"tiers\": [{\"model\": "
                   "\"a\", \"agree\": {\"models\": [\"a\", \"b\"], \"min\": 2}}, "
                   "{\"model\": \"top\"}]}"},
    {"samples.json", "{\"name\": \"samples\", \"validators\": [\"label\"], \"tiers\": "
                     "[{\"model\": \"a\", \"samples\": 3}, {\"model\": \"top\"}]}"},
    {"logprobs.json", "{\"name\": \"logprobs\", \"validators\": [\"label\"], \"tiers\": "
                      "[{\"model\": \"a\", \"confidence\": \"logprobs\", \"min_confidence\": "
                      "0.5}, {\"model\": \"top\"}]}"},
    {"self.json", "{\"name\": \"self\", \"validators\": [\"label\"], \"tiers\": [{\"model\": "
                  "\"a\", \"confidence\": \"self\", \"min_confidence\": 0.7}, "
                  "{\"model\": \"top\"}]}"},
};

#define SCHEMA_LABELS                                                                              \
    "\"schema\": {\"type\": \"object\", \"properties\": {\"label\": {\"enum\": [\"bug\", "         \
    "\"feature\", \"question\", \"won't fix\"]}}}"

/* Tasks: cascade, gold; the recordings below say what each model answers. */
static const char *TASKS_JSONL =
    "{\"id\": \"ag-same\", \"cascade\": \"agree\", \"gold\": \"bug\", " SCHEMA_LABELS ", "
    "\"kind\": \"classify\", \"prompt\": \"app crashes on start\"}\n"
    "{\"id\": \"ag-differ\", \"cascade\": \"agree\", \"gold\": \"feature\", " SCHEMA_LABELS ", "
    "\"kind\": \"classify\", \"prompt\": \"add dark mode\"}\n"
    "{\"id\": \"sa-most\", \"cascade\": \"samples\", \"gold\": \"bug\", " SCHEMA_LABELS ", "
    "\"kind\": \"classify\", \"prompt\": \"segfault\"}\n"
    "{\"id\": \"sa-split\", \"cascade\": \"samples\", \"gold\": \"question\", " SCHEMA_LABELS ", "
    "\"kind\": \"classify\", \"prompt\": \"how do I\"}\n"
    "{\"id\": \"lp-sure\", \"cascade\": \"logprobs\", \"gold\": \"won't fix\", " SCHEMA_LABELS
    ", \"kind\": \"classify\", \"prompt\": \"by design\"}\n"
    "{\"id\": \"lp-unsure\", \"cascade\": \"logprobs\", \"gold\": \"question\", " SCHEMA_LABELS
    ", \"kind\": \"classify\", \"prompt\": \"maybe?\"}\n"
    "{\"id\": \"se-sure\", \"cascade\": \"self\", \"gold\": \"feature\", " SCHEMA_LABELS ", "
    "\"kind\": \"classify\", \"prompt\": \"please add\"}\n"
    "{\"id\": \"se-unsure\", \"cascade\": \"self\", \"gold\": \"bug\", " SCHEMA_LABELS ", "
    "\"kind\": \"classify\", \"prompt\": \"odd\"}\n";

#define REC(task, model, run, answer, extra)                                                       \
    "{\"task\": \"" task "\", \"model\": \"" model "\", \"run\": " #run ", \"answer\": " answer    \
    ", \"usage\": {\"prompt_tokens\": 100, \"completion_tokens\": 10}" extra "}\n"

static const char *RECS_JSONL =
    /* agreement: the same label from a and b (two shapes); then two labels */
    REC("ag-same", "a", 1, "\"{\\\"label\\\": \\\"bug\\\"}\"", "")
        REC("ag-same", "b", 1, "\"bug: a crash on start\"", "")
            REC("ag-differ", "a", 1, "\"bug\"", "") REC("ag-differ", "b", 1, "\"feature\"", "")
                REC("ag-differ", "top", 1, "\"feature\"", "")
    /* samples: three runs of a, two of three agree; then three labels */
    REC("sa-most", "a", 1, "\"bug\"", "") REC("sa-most", "a", 2, "\"**bug**\"", "")
        REC("sa-most", "a", 3, "\"feature\"", "") REC("sa-split", "a", 1, "\"bug\"", "")
            REC("sa-split", "a", 2, "\"feature\"", "") REC("sa-split", "a", 3, "\"question\"", "")
                REC("sa-split", "top", 1, "\"question\"", "")
    /* logprobs: a three-token label at exp(-0.6) = 0.549; then a word at 0.3 */
    REC("lp-sure", "a", 1, "\"won't fix\"",
        ", \"logprobs\": [{\"token\": \"won\", \"logprob\": -0.1}, {\"token\": \"'t\", "
        "\"logprob\": -0.2}, {\"token\": \" fix\", \"logprob\": -0.3}]")
        REC("lp-unsure", "a", 1, "\"```json\\n{\\\"label\\\": \\\"question\\\"}\\n```\"",
            ", \"token_prob\": 0.3") REC("lp-unsure", "top", 1, "\"question\"", "")
    /* self: the answer's own confidence field */
    REC("se-sure", "a", 1, "\"{\\\"label\\\": \\\"feature\\\", \\\"confidence\\\": 0.9}\"", "")
        REC("se-unsure", "a", 1, "\"{\\\"label\\\": \\\"bug\\\", \\\"confidence\\\": 0.2}\"", "")
            REC("se-unsure", "top", 1, "\"{\\\"label\\\": \\\"feature\\\"}\"", "");

static cJSON *results;  /* the batch's result lines */
static char *report;    /* `cascade report` of them */
static char *html;      /* and its --html page */
static cJSON *requests; /* the mock's log of requests, bodies included */
static cJSON *mock_log; /* the whole log: requests, and writes (--log-writes) in order */

static int batch_setup(void **state)
{
    if (h_group_setup(state))
        return -1;
    char *dir = h_tmp("cascades");
    char *cmd = wk_xasprintf("mkdir -p %s", dir);
    if (system(cmd) != 0)
        return -1;
    free(cmd);
    for (size_t i = 0; i < sizeof CASCADES / sizeof CASCADES[0]; i++) {
        char *name = wk_xasprintf("cascades/%s", CASCADES[i][0]);
        free(h_write(name, CASCADES[i][1]));
        free(name);
    }
    char *models = h_write("cascades/models.json", MOCK_MODELS);
    char *tasks = h_write("tasks.jsonl", TASKS_JSONL);
    char *recs = h_write("recs.jsonl", RECS_JSONL);
    char *out = h_tmp("results.jsonl"), *errf = h_tmp("stderr"), *log = h_tmp("mock.log");
    char *rep = h_tmp("report.txt");
    /*
     * --log-writes: the log shows each answer leaving too, so the order of
     * the lines shows which calls were in flight together; --latency holds
     * each answer back long enough for a call sent with it to arrive.
     */
    const char *extra[] = {"--log-bodies", "1", "--log-writes", "--latency", "200", NULL};
    h_mock m;
    h_mock_start(&m, recs, log, extra);
    char *argv[] = {(char *)h_cascade_bin(), "run", tasks, "--cascades", dir, "-o", out, NULL};
    int rc = h_run(argv, NULL, errf, 60);
    h_mock_stop(&m);
    if (rc != 0) {
        char *err = h_slurp(errf);
        fprintf(stderr, "cascade run exited %d:\n%s\n", rc, err);
        free(err);
        return -1;
    }
    char *rargv[] = {(char *)h_cascade_bin(), "report", out, NULL};
    if (h_run(rargv, rep, errf, 30) != 0)
        return -1;
    char *page = h_tmp("report.html");
    char *hargv[] = {(char *)h_cascade_bin(), "report", out, "--html", page, NULL};
    if (h_run(hargv, NULL, errf, 30) != 0)
        return -1;
    html = h_slurp(page);
    free(page);
    results = h_jsonl(out);
    mock_log = h_jsonl(log);
    requests = cJSON_CreateArray();
    const cJSON *l;
    cJSON_ArrayForEach(l, mock_log)
    {
        if (!cJSON_GetObjectItem(l, "event"))
            cJSON_AddItemToArray(requests, cJSON_Duplicate(l, 1));
    }
    report = h_slurp(rep);
    free(dir);
    free(models);
    free(tasks);
    free(recs);
    free(out);
    free(errf);
    free(log);
    free(rep);
    return 0;
}

static int batch_teardown(void **state)
{
    cJSON_Delete(results);
    cJSON_Delete(requests);
    cJSON_Delete(mock_log);
    free(report);
    free(html);
    return h_group_teardown(state);
}

/* The result of task id: accepted at `tier` with `label`, after `calls` calls. */
static const cJSON *expect(const char *id, int tier, const char *label, int calls)
{
    const cJSON *r = h_find(results, "id", id);
    if (!r)
        fail_msg("no result for %s", id);
    assert_string_equal(h_str(r, "status"), "accepted");
    if ((int)cJSON_GetObjectItem(r, "tier")->valuedouble != tier ||
        strcmp(h_str(r, "label"), label) != 0 ||
        cJSON_GetArraySize(cJSON_GetObjectItem(r, "attempts")) != calls) {
        char *s = cJSON_PrintUnformatted(r);
        fail_msg("%s: want tier %d, label %s, %d calls; got %s", id, tier, label, calls, s);
    }
    return r;
}

/* The verdict of attempt i of result r. */
static const cJSON *verdict_of(const cJSON *r, int i)
{
    return cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "attempts"), i),
                               "verdict");
}

static void test_agreement_accepts_two_same_labels_and_climbs_on_two(void **state)
{
    (void)state;
    const cJSON *r = expect("ag-same", 0, "bug", 2);
    const cJSON *atts = cJSON_GetObjectItem(r, "attempts");
    assert_string_equal(h_str(cJSON_GetArrayItem(atts, 0), "model"), "a");
    assert_string_equal(h_str(cJSON_GetArrayItem(atts, 1), "model"), "b");
    assert_string_equal(h_str(r, "model"), "a"); /* the tier's model names the tier */
    /*
     * a and b were asked in parallel: both requests reached the mock before
     * either answer left it (in the log's order, not by the clock).
     */
    int at = 0, last_request = -1, first_write = -1, nreq = 0, nwrite = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, mock_log)
    {
        if (!strcmp(h_str(l, "task"), "ag-same")) {
            int write = cJSON_GetObjectItem(l, "event") != NULL;
            nreq += !write;
            nwrite += write;
            if (!write)
                last_request = at;
            if (write && first_write < 0)
                first_write = at;
        }
        at++;
    }
    assert_int_equal(nreq, 2);
    assert_int_equal(nwrite, 2);
    assert_true(last_request < first_write);
    r = expect("ag-differ", 1, "feature", 3);
    const cJSON *v = verdict_of(r, 1);
    assert_string_equal(h_str(v, "reason"), "disagreement");
    assert_non_null(strstr(h_str(v, "message"), "1 of 2 for \"bug\""));
    /* The climb's feedback is off by default: the top model sees the original prompt only. */
    const cJSON *q;
    cJSON_ArrayForEach(q, requests)
    {
        if (strcmp(h_str(q, "task"), "ag-differ") || strcmp(h_str(q, "model"), "top"))
            continue;
        assert_int_equal(
            cJSON_GetArraySize(cJSON_GetObjectItem(cJSON_GetObjectItem(q, "body"), "messages")), 2);
    }
}

static void test_samples_accept_a_majority_and_climb_on_a_split(void **state)
{
    (void)state;
    const cJSON *r = expect("sa-most", 0, "bug", 3);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(r, "attempts"), 2),
                                         "votes_for_label")
                         ->valuedouble,
                     2);
    r = expect("sa-split", 1, "question", 4);
    assert_string_equal(h_str(verdict_of(r, 2), "reason"), "disagreement");
    /* The mock's API takes "n": one call of n = 3 per task, its answers attempts at no cost. */
    const cJSON *q;
    int calls = 0;
    cJSON_ArrayForEach(q, requests)
    {
        if (strncmp(h_str(q, "task"), "sa-", 3) || strcmp(h_str(q, "model"), "a"))
            continue;
        calls++;
        assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(q, "body"), "n")->valueint, 3);
    }
    assert_int_equal(calls, 2);
    const cJSON *atts = cJSON_GetObjectItem(expect("sa-most", 0, "bug", 3), "attempts");
    assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(atts, 0), "cost_usd")->valuedouble > 0);
    for (int i = 1; i < 3; i++) {
        const cJSON *a = cJSON_GetArrayItem(atts, i);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "same_call")));
        assert_true(cJSON_GetObjectItem(a, "cost_usd")->valuedouble == 0);
    }
}

static void test_logprob_confidence_accepts_a_sure_label_and_climbs_below(void **state)
{
    (void)state;
    /* A three-token label: exp(-0.1 - 0.2 - 0.3) = 0.5488, above 0.5. */
    const cJSON *r = expect("lp-sure", 0, "won't fix", 1);
    const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "attempts"), 0);
    assert_true(fabs(cJSON_GetObjectItem(a0, "confidence")->valuedouble - exp(-0.6)) < 1e-6);
    r = expect("lp-unsure", 1, "question", 2);
    const cJSON *v = verdict_of(r, 0);
    assert_string_equal(h_str(v, "reason"), "low_confidence");
    assert_non_null(strstr(h_str(v, "message"), "confidence 0.300 (logprobs), below 0.5"));
    /* The requests to the logprob tier asked for them; the top tier's did not. */
    const cJSON *q;
    int asked = 0;
    cJSON_ArrayForEach(q, requests)
    {
        const cJSON *body = cJSON_GetObjectItem(q, "body");
        int lp = cJSON_IsTrue(cJSON_GetObjectItem(body, "logprobs"));
        if (strncmp(h_str(q, "task"), "lp-", 3) == 0 && strcmp(h_str(q, "model"), "a") == 0)
            asked += lp && cJSON_GetObjectItem(body, "top_logprobs");
        else
            assert_false(lp);
    }
    assert_int_equal(asked, 2);
}

static void test_self_confidence_accepts_a_sure_label_and_climbs_below(void **state)
{
    (void)state;
    const cJSON *r = expect("se-sure", 0, "feature", 1);
    r = expect("se-unsure", 1, "feature", 2);
    assert_string_equal(h_str(verdict_of(r, 0), "reason"), "low_confidence");
    assert_string_equal(h_str(r, "gold"), "bug");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(r, "correct")));
}

static void test_report_gives_accuracy_per_cascade_and_tier_and_climbs_by_reason(void **state)
{
    (void)state;
    /* 8 tasks, 7 right (se-unsure's top tier says feature, gold bug). */
    const char *want[] = {
        "accuracy 1.000 (2 of 2 tasks with a gold label)",
        "accuracy 0.500 (1 of 2 tasks with a gold label)", /* self */
        "agree: disagreement",
        "confidence: low_confidence",
        "confusion (rows gold, columns accepted label)",
        "climbs: 1 (0.500 per task); by reason:",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!strstr(report, want[i]))
            fail_msg("the report lacks \"%s\":\n%s", want[i], report);
    /* Every cascade here has gold labels: the HTML chart plots accuracy, not pass rate. */
    assert_non_null(strstr(html, "<h2>Cost against accuracy</h2>"));
    assert_non_null(strstr(html, "<th>accuracy</th><th>cost</th>"));
    assert_null(strstr(html, "against pass rate"));
}

/* ---- tune --metric accuracy ---------------------------------------------------- */

/*
 * Three single-model results files over 200 four-way questions: cheap and mid
 * are each right 70% of the time and never wrong alike, top 95%; every answer
 * has a label, so a format-only chain stops at the first tier with its
 * accuracy. Only agreement (or top alone) reaches 0.9.
 */
static void test_tune_accuracy_finds_an_agreement_pair(void **state)
{
    (void)state;
    static const char *const L[] = {"A", "B", "C", "D"};
    static const char *const M[] = {"cheap", "mid", "top"};
    static const double cost[] = {0.0001, 0.0002, 0.003};
    char *paths[3];
    for (int m = 0; m < 3; m++) {
        wk_buf b;
        wk_buf_init(&b, 1u << 22);
        for (int i = 0; i < 200; i++) {
            int g = i % 4, d = i % 10;
            int wrong = m == 0 ? d <= 2 : m == 1 ? d >= 2 && d <= 4 : i % 20 == 5;
            const char *ans = L[wrong ? (g + 1 + m) % 4 : g];
            wk_buf_appendf(&b,
                           "{\"id\":\"q%d\",\"status\":\"accepted\",\"cascade\":\"%s\",\"tier\":0,"
                           "\"model\":\"%s\",\"cost_usd\":%g,\"attempts\":[{\"tier\":0,"
                           "\"model\":\"%s\",\"cost_usd\":%g,\"verdict\":{\"pass\":true,"
                           "\"label\":\"%s\"}}],\"label\":\"%s\",\"gold\":\"%s\"}\n",
                           i, M[m], M[m], cost[m], M[m], cost[m], ans, ans, L[g]);
        }
        char *name = wk_xasprintf("single-%s.jsonl", M[m]);
        paths[m] = h_write(name, b.buf);
        free(name);
        wk_buf_release(&b);
    }
    char *out = h_tmp("tuned.json"), *rep = h_tmp("tune.txt");
    char *argv[] = {(char *)h_cascade_bin(),
                    "tune",
                    "--from",
                    paths[0],
                    "--from",
                    paths[1],
                    "--from",
                    paths[2],
                    "--target",
                    "0.9",
                    "--metric",
                    "accuracy",
                    "-o",
                    out,
                    NULL};
    assert_int_equal(h_run(argv, rep, NULL, 60), 0);
    char *text = h_slurp(rep);
    if (!strstr(text, "chosen plan: cheap=mid*1>top*1") || !strstr(text, "held-out: accuracy"))
        fail_msg("tune did not pick the agreement pair:\n%s", text);
    /* The plan is a classify cascade the config loads as it is written. */
    char *tuned = h_slurp(out);
    cJSON *c = cJSON_Parse(tuned);
    const cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(c, "tiers"), 0);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(t0, "agree"), "min")->valueint, 2);
    char err[512];
    char *models = h_write("tune-models.json",
                           "{\"providers\": {\"o\": {\"api\": \"openai\", \"base_url\": \"x\", "
                           "\"key_env\": null}}, \"models\": {"
                           "\"cheap\": {\"provider\": \"o\", \"input_usd_per_mtok\": 1, "
                           "\"output_usd_per_mtok\": 1}, \"mid\": {\"provider\": \"o\", "
                           "\"input_usd_per_mtok\": 1, \"output_usd_per_mtok\": 1}, "
                           "\"top\": {\"provider\": \"o\", \"input_usd_per_mtok\": 1, "
                           "\"output_usd_per_mtok\": 1}}}");
    wk_config cfg;
    if (wk_config_load(&cfg, models, out, WK_CONFIG_OFFLINE, err, sizeof err) != 0)
        fail_msg("the tuned cascade does not load: %s", err);
    assert_int_equal(cfg.cascades[0].tiers[0].nagree, 2);
    wk_config_free(&cfg);
    cJSON_Delete(c);
    free(tuned);
    free(text);
    free(models);
    free(out);
    free(rep);
    for (int m = 0; m < 3; m++)
        free(paths[m]);
}

/*
 * A run that dies while validating a classify task, after its answers were
 * journaled, then a rerun on the same journal: the tier's votes come back
 * from the journal with what its doubt reads (the logprobs, the other
 * choices of an n = 3 call), so nothing is asked of the mock again and the
 * task is accepted at tier 0 as it would have been.
 */
static void test_resume_votes_on_the_journaled_answers_without_paying_again(void **state)
{
    (void)state;
    char *dir = h_tmp("cascades"), *recs = h_tmp("recs.jsonl");
    /* task, the requests its tier makes, its label */
    const char *cases[][3] = {
        {"lp-sure", "1", "won't fix"}, {"ag-same", "2", "bug"}, {"sa-most", "1", "bug"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *id = cases[i][0];
        const char *line = strstr(TASKS_JSONL, id) - strlen("{\"id\": \"");
        char *one = wk_xstrndup(line, (size_t)(strchr(line, '\n') - line + 1));
        char *name = wk_xasprintf("resume-%s.jsonl", id);
        char *tasks = h_write(name, one);
        char *out = h_tmp("resume-out.jsonl"), *journal = h_tmp("resume-out.jsonl.journal");
        char *log = h_tmp("resume-mock.log"), *errf = h_tmp("resume-err");
        unlink(out);
        unlink(journal);
        unlink(log);
        h_mock m;
        h_mock_start(&m, recs, log, NULL);
        char *argv[] = {
            (char *)h_cascade_bin(), "run", tasks, "--cascades", dir, "-o", out, "-q", NULL};
        setenv("CASCADE_FAULT_ABORT_IN_VALIDATE", id, 1);
        int rc = h_run(argv, NULL, errf, 60);
        unsetenv("CASCADE_FAULT_ABORT_IN_VALIDATE");
        if (rc == 0)
            fail_msg("%s: the run did not die in the validation", id);
        cJSON *first = h_jsonl(log);
        int asked = cJSON_GetArraySize(first);
        cJSON_Delete(first);
        assert_int_equal(asked, atoi(cases[i][1]));
        rc = h_run(argv, NULL, errf, 60);
        h_mock_stop(&m);
        if (rc != 0)
            fail_msg("%s: the rerun exited %d: %s", id, rc, h_slurp(errf));
        cJSON *log_lines = h_jsonl(log), *res = h_jsonl(out);
        assert_int_equal(cJSON_GetArraySize(log_lines), asked); /* not one request more */
        const cJSON *r = h_find(res, "id", id);
        assert_non_null(r);
        assert_string_equal(h_str(r, "status"), "accepted");
        assert_int_equal(cJSON_GetObjectItem(r, "tier")->valueint, 0);
        assert_string_equal(h_str(r, "label"), cases[i][2]);
        if (!strcmp(id, "lp-sure")) {
            const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "attempts"), 0);
            assert_true(fabs(cJSON_GetObjectItem(a0, "confidence")->valuedouble - exp(-0.6)) <
                        1e-6);
        }
        cJSON_Delete(log_lines);
        cJSON_Delete(res);
        free(one);
        free(name);
        free(tasks);
        free(out);
        free(journal);
        free(log);
        free(errf);
    }
    free(dir);
    free(recs);
}

/*
 * Four single-model results files over 400 four-way questions, built so that
 * only a unanimous triple is worth its cost: a, b and c are each right on
 * 60%, and every two of them agree on the same wrong letter on a fifth of
 * the questions (a and b on one fifth, a and c on another, b and c on a
 * third), so any pair lets a fifth of wrong labels through and two of three
 * are as often wrong as right there; all three agree only where they are all
 * right. top is right on 95% at 20 times the cost.
 */
static void test_tune_accuracy_finds_a_unanimous_triple(void **state)
{
    (void)state;
    const char *L[] = {"A", "B", "C", "D"};
    const char *M[] = {"a", "b", "c", "top"};
    double cost[] = {0.001, 0.001, 0.001, 0.02};
    char *paths[4];
    for (int m = 0; m < 4; m++) {
        wk_buf b;
        wk_buf_init(&b, 1u << 22);
        for (int i = 0; i < 400; i++) {
            int g = i % 4, d = i % 10;
            /* d 4-5: a and b wrong alike; 6-7: a and c; 8-9: b and c */
            int wrong = m == 0   ? d >= 4 && d <= 7
                        : m == 1 ? (d >= 4 && d <= 5) || d >= 8
                        : m == 2 ? d >= 6
                                 : i % 20 == 5;
            const char *ans = L[wrong ? (g + 1) % 4 : g];
            wk_buf_appendf(&b,
                           "{\"id\":\"t%d\",\"status\":\"accepted\",\"cascade\":\"%s\","
                           "\"tier\":0,\"model\":\"%s\",\"cost_usd\":%g,\"attempts\":[{"
                           "\"tier\":0,\"model\":\"%s\",\"cost_usd\":%g,\"verdict\":{"
                           "\"pass\":true,\"label\":\"%s\"}}],\"label\":\"%s\",\"gold\":"
                           "\"%s\"}\n",
                           i, M[m], M[m], cost[m], M[m], cost[m], ans, ans, L[g]);
        }
        char *name = wk_xasprintf("triple-%s.jsonl", M[m]);
        paths[m] = h_write(name, b.buf);
        free(name);
        wk_buf_release(&b);
    }
    char *out = h_tmp("tuned3.json"), *rep = h_tmp("tune3.txt");
    char *argv[] = {(char *)h_cascade_bin(),
                    "tune",
                    "--from",
                    paths[0],
                    "--from",
                    paths[1],
                    "--from",
                    paths[2],
                    "--from",
                    paths[3],
                    "--target",
                    "0.9",
                    "--metric",
                    "accuracy",
                    "-o",
                    out,
                    NULL};
    assert_int_equal(h_run(argv, rep, NULL, 60), 0);
    char *text = h_slurp(rep);
    if (!strstr(text, "chosen plan: a=b=c/3*1>top*1"))
        fail_msg("tune did not pick the unanimous triple:\n%s", text);
    char *tuned = h_slurp(out);
    cJSON *c = cJSON_Parse(tuned);
    const cJSON *ag =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(c, "tiers"), 0), "agree");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(ag, "models")), 3);
    assert_int_equal(cJSON_GetObjectItem(ag, "min")->valueint, 3);
    cJSON_Delete(c);
    free(tuned);
    free(text);
    free(out);
    free(rep);
    for (int m = 0; m < 4; m++)
        free(paths[m]);
}

/*
 * A crash left both calls of an agree round sent and unanswered. On the
 * rerun the task budget holds a second send of the first (a) but not of the
 * second (b); a's resend fails, the task climbs, and the next tier's round
 * asks c and d. d's call is a new one: it must take a journal row of its own
 * (seq 4), not be taken for b's refused resend and slip into b's row under
 * b's name (the slot's stale "lost" flag, answers.c).
 */
static void test_a_refused_resend_leaves_no_stale_lost_call(void **state)
{
    (void)state;
    const char *models =
        "{\"providers\":{\"mock\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\","
        "\"key_env\":null}},\"models\":{"
        "\"a\":{\"provider\":\"mock\",\"input_usd_per_mtok\":0,\"output_usd_per_mtok\":100000,"
        "\"max_tokens\":10},"
        "\"b\":{\"provider\":\"mock\",\"input_usd_per_mtok\":0,\"output_usd_per_mtok\":400000,"
        "\"max_tokens\":10},"
        "\"c\":{\"provider\":\"mock\",\"input_usd_per_mtok\":0,\"output_usd_per_mtok\":0,"
        "\"max_tokens\":10},"
        "\"d\":{\"provider\":\"mock\",\"input_usd_per_mtok\":0,\"output_usd_per_mtok\":0,"
        "\"max_tokens\":10}}}";
    char *dir = h_tmp("lost-cascades");
    mkdir(dir, 0700);
    char *mpath = h_write("lost-cascades/models.json", models);
    free(
        h_write("lost-cascades/c.json",
                "{\"name\":\"c\",\"validators\":[\"label\"],\"schema\":{\"enum\":[\"yes\",\"no\"]},"
                "\"tiers\":[{\"model\":\"a\",\"agree\":{\"models\":[\"a\",\"b\"],\"min\":2}},"
                "{\"model\":\"c\",\"agree\":{\"models\":[\"c\",\"d\"],\"min\":2}}]}"));
    /* a has no recording: its resend fails (404) and the task climbs. */
    char *recs = h_write("lost-recs.jsonl",
                         "{\"task\":\"x\",\"model\":\"b\",\"run\":1,\"answer\":\"yes\"}\n"
                         "{\"task\":\"x\",\"model\":\"c\",\"run\":1,\"answer\":\"yes\"}\n"
                         "{\"task\":\"x\",\"model\":\"d\",\"run\":1,\"answer\":\"yes\"}\n");
    /* Worst cases a $1, b $4: the round fits $6, a resent after both losses ($5 + $1) too, b not.
     */
    char *tasks = h_write("lost-tasks.jsonl", "{\"id\":\"x\",\"kind\":\"classify\",\"prompt\":"
                                              "\"p\",\"budget_usd\":6}\n");
    char *out = h_tmp("lost-out.jsonl"), *jpath = h_tmp("lost-out.jsonl.journal");
    char *errf = h_tmp("lost-err"), *log = h_tmp("lost-mock.log");

    /* The journal a crash left: both calls of tier 0's round SENT, neither answered. */
    uv_loop_t loop;
    uv_loop_init(&loop);
    wk_journal *j = NULL;
    char err[256];
    assert_int_equal(wk_journal_open(&loop, jpath, &j, err, sizeof err), 0);
    assert_int_equal(wk_journal_sent(j, "x", 1, "a"), 0);
    assert_int_equal(wk_journal_sent(j, "x", 2, "b"), 0);
    assert_int_equal(wk_journal_close(j), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);

    h_mock m;
    h_mock_start(&m, recs, log, NULL);
    char *argv[] = {(char *)h_cascade_bin(),
                    "run",
                    tasks,
                    "--cascades",
                    dir,
                    "--models",
                    mpath,
                    "-o",
                    out,
                    "-q",
                    NULL};
    int rc = h_run(argv, NULL, errf, 60);
    h_mock_stop(&m);
    if (rc != 0)
        fail_msg("the rerun exited %d: %s", rc, h_slurp(errf));
    cJSON *res = h_jsonl(out);
    const cJSON *r = h_find(res, "id", "x");
    assert_non_null(r);
    assert_string_equal(h_str(r, "status"), "accepted");
    assert_int_equal(cJSON_GetObjectItem(r, "tier")->valueint, 1);
    cJSON_Delete(res);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(jpath, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT seq, model FROM attempts WHERE task = 'x' "
                                        "ORDER BY seq",
                                        -1, &st, NULL),
                     SQLITE_OK);
    wk_buf rows;
    wk_buf_init(&rows, 4096);
    while (sqlite3_step(st) == SQLITE_ROW)
        wk_buf_appendf(&rows, "%d:%s ", sqlite3_column_int(st, 0),
                       (const char *)sqlite3_column_text(st, 1));
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_string_equal(rows.buf, "1:a 2:b 3:c 4:d ");
    wk_buf_release(&rows);
    free(dir);
    free(mpath);
    free(recs);
    free(tasks);
    free(out);
    free(jpath);
    free(errf);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenient_parsing_reads_each_answer_shape),
        cmocka_unit_test(test_label_set_comes_from_the_schema_enum_at_the_field),
        cmocka_unit_test(test_answer_naming_no_label_fails_no_label_and_a_pass_carries_it),
        cmocka_unit_test(test_gold_outside_the_enum_is_invalid_task),
        cmocka_unit_test(test_classify_cascade_startup_errors),
        cmocka_unit_test(test_tune_accuracy_finds_an_agreement_pair),
        cmocka_unit_test(test_tune_accuracy_finds_a_unanimous_triple),
        cmocka_unit_test(test_a_refused_resend_leaves_no_stale_lost_call),
    };
    const struct CMUnitTest mock_tests[] = {
        cmocka_unit_test(test_agreement_accepts_two_same_labels_and_climbs_on_two),
        cmocka_unit_test(test_samples_accept_a_majority_and_climb_on_a_split),
        cmocka_unit_test(test_logprob_confidence_accepts_a_sure_label_and_climbs_below),
        cmocka_unit_test(test_self_confidence_accepts_a_sure_label_and_climbs_below),
        cmocka_unit_test(test_report_gives_accuracy_per_cascade_and_tier_and_climbs_by_reason),
        cmocka_unit_test(test_resume_votes_on_the_journaled_answers_without_paying_again),
    };
    int failed = cmocka_run_group_tests_name("classify", tests, h_group_setup, h_group_teardown);
    return failed | cmocka_run_group_tests_name("classify against the mock", mock_tests,
                                                batch_setup, batch_teardown);
}
