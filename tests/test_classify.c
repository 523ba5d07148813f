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

#include "harness.h"
#include "lib/util.h"
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenient_parsing_reads_each_answer_shape),
        cmocka_unit_test(test_label_set_comes_from_the_schema_enum_at_the_field),
        cmocka_unit_test(test_answer_naming_no_label_fails_no_label_and_a_pass_carries_it),
        cmocka_unit_test(test_gold_outside_the_enum_is_invalid_task),
        cmocka_unit_test(test_classify_cascade_startup_errors),
    };
    return cmocka_run_group_tests_name("classify", tests, h_group_setup, h_group_teardown);
}
