/*
 * Unit tests for the CPU-only parts of validators/: code extraction, verdict
 * capping, the chain, the syntax validator (tree-sitter) and the schema
 * validator. Nothing here spawns a process or opens a socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../validators/val.h"

/* ---- helpers ------------------------------------------------------------- */

typedef struct seen {
    int calls;
    val_verdict v;
} seen;

static void on_done(void *arg, const val_verdict *v)
{
    seen *s = arg;
    s->calls++;
    val_verdict_clear(&s->v);
    s->v.pass = v->pass;
    memcpy(s->v.validator, v->validator, sizeof s->v.validator);
    memcpy(s->v.reason, v->reason, sizeof s->v.reason);
    s->v.message = v->message ? strdup(v->message) : NULL;
    s->v.evidence = v->evidence ? strdup(v->evidence) : NULL;
}

/* Runs a chain of CPU-only validators (no env needed) and returns its verdict. */
static void run_chain(const char *const *names, int n, const char *language, const char *answer,
                      const cJSON *schema, seen *s)
{
    val_input in = {.task_id = "t", .kind = "code", .language = language, .answer = answer,
                    .schema = schema};
    memset(s, 0, sizeof *s);
    assert_int_equal(val_chain_start(NULL, names, n, &in, on_done, s), 0);
    /* These validators finish inside start(), so the verdict is already here. */
    assert_int_equal(s->calls, 1);
}

static void run_one(const char *name, const char *language, const char *answer,
                    const cJSON *schema, seen *s)
{
    const char *names[] = {name};
    run_chain(names, 1, language, answer, schema, s);
}

static void seen_clear(seen *s)
{
    val_verdict_clear(&s->v);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay ? hay : "(null)");
}

/* ---- extract_code -------------------------------------------------------- */

static void extract_takes_fenced_block_with_language_tag(void **state)
{
    (void)state;
    char *c = val_extract_code("Here you go:\n```python\ndef f():\n    return 1\n```\nDone.");
    assert_string_equal(c, "def f():\n    return 1");
    free(c);
}

static void extract_takes_fenced_block_without_tag(void **state)
{
    (void)state;
    char *c = val_extract_code("```\nint x = 1;\n```");
    assert_string_equal(c, "int x = 1;");
    free(c);
}

static void extract_takes_first_of_several_blocks(void **state)
{
    (void)state;
    char *c = val_extract_code("a\n```js\nfirst();\n```\nb\n```js\nsecond();\n```\n");
    assert_string_equal(c, "first();");
    free(c);
}

static void extract_unclosed_fence_runs_to_end(void **state)
{
    (void)state;
    char *c = val_extract_code("```python\nx = 1\ny = 2\n");
    assert_string_equal(c, "x = 1\ny = 2");
    free(c);
}

static void extract_without_fence_trims_whole_answer(void **state)
{
    (void)state;
    char *c = val_extract_code("  \n  {\"label\": \"bug\"}  \n\n");
    assert_string_equal(c, "{\"label\": \"bug\"}");
    free(c);
}

static void extract_keeps_indent_of_first_line_and_inline_close(void **state)
{
    (void)state;
    char *c = val_extract_code("```\n    x = 1```");
    assert_string_equal(c, "    x = 1");
    free(c);
    c = val_extract_code(NULL);
    assert_string_equal(c, "");
    free(c);
}

static void lang_ext_maps_known_languages_and_defaults_to_txt(void **state)
{
    (void)state;
    assert_string_equal(val_lang_ext("python"), "py");
    assert_string_equal(val_lang_ext("c"), "c");
    assert_string_equal(val_lang_ext("javascript"), "js");
    assert_string_equal(val_lang_ext("cpp"), "cpp");
    assert_string_equal(val_lang_ext("typescript"), "ts");
    assert_string_equal(val_lang_ext("go"), "go");
    assert_string_equal(val_lang_ext("rust"), "rs");
    assert_string_equal(val_lang_ext("java"), "java");
    assert_string_equal(val_lang_ext("json"), "json");
    assert_string_equal(val_lang_ext("sh"), "sh");
    assert_string_equal(val_lang_ext("cobol"), "txt");
    assert_string_equal(val_lang_ext(NULL), "txt");
    assert_true(val_lang_known("python"));
    assert_true(val_lang_known("c"));
    assert_true(val_lang_known("javascript"));
    assert_false(val_lang_known("cobol"));
}

/* ---- verdicts and limits ----------------------------------------------------- */

static void verdict_caps_message_and_evidence_and_escapes_controls(void **state)
{
    (void)state;
    char big[5000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    val_verdict v = {0};
    val_verdict_fail(&v, "tests", "failed", big, big);
    assert_true(strlen(v.message) <= VAL_MESSAGE_MAX);
    assert_true(strlen(v.evidence) <= VAL_EVIDENCE_MAX);
    assert_false(v.pass);
    assert_string_equal(v.validator, "tests");
    assert_string_equal(v.reason, "failed");

    val_verdict_fail(&v, "tests", "failed", "line1\nline2\x1b[31m", "ok\n\x1b[0m\xff");
    assert_null(strchr(v.message, '\n'));
    assert_null(strchr(v.message, '\x1b'));
    assert_null(strchr(v.evidence, '\x1b'));
    assert_null(strchr(v.evidence, '\xff'));
    assert_contains(v.evidence, "ok\n");

    val_verdict_pass(&v);
    assert_true(v.pass);
    assert_null(v.message);
    assert_string_equal(v.validator, "");
    val_verdict_clear(&v);
}

static void limits_default_match_documented_values(void **state)
{
    (void)state;
    val_limits l;
    val_limits_default(&l);
    assert_int_equal(l.timeout_ms, 10000);
    assert_int_equal(l.cpu_s, 5);
    assert_int_equal(l.mem_bytes, 1024ul * 1024 * 1024);
    assert_int_equal(l.nproc, 64);
    assert_int_equal(l.fsize_bytes, 64ul << 20);
    assert_int_equal(l.nofile, 256);
    assert_int_equal(l.tmpfs_bytes, 64ul << 20);
    assert_int_equal(l.output_cap, 64 * 1024);
}

/* ---- chain --------------------------------------------------------------------- */

static void table_finds_each_validator_by_name(void **state)
{
    (void)state;
    int n = 0;
    for (; val_table[n]; n++)
        assert_ptr_equal(val_find(val_table[n]->name), val_table[n]);
    assert_true(n >= 3);
    assert_non_null(val_find("syntax"));
    assert_non_null(val_find("tests"));
    assert_non_null(val_find("schema"));
    assert_null(val_find("nope"));
}

static void chain_unknown_name_fails_without_calling_done(void **state)
{
    (void)state;
    const char *names[] = {"syntax", "nope"};
    val_input in = {.language = "python", .answer = "x = 1"};
    seen s = {0};
    assert_int_equal(val_chain_start(NULL, names, 2, &in, on_done, &s), WK_ENOTFOUND);
    assert_int_equal(s.calls, 0);
}

static void chain_stops_at_first_failure(void **state)
{
    (void)state;
    cJSON *schema = cJSON_Parse("{\"type\": \"object\"}");
    seen s;
    /* The answer is not Python, so syntax fails and schema (which would pass) never runs. */
    const char *names[] = {"syntax", "schema"};
    run_chain(names, 2, "python", "{\"a\": [1, 2", schema, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.validator, "syntax");
    seen_clear(&s);

    /* Reversed: schema fails on the bad JSON first. */
    const char *rev[] = {"schema", "syntax"};
    run_chain(rev, 2, "python", "{\"a\": [1, 2", schema, &s);
    assert_string_equal(s.v.validator, "schema");
    assert_string_equal(s.v.reason, "invalid_json");
    seen_clear(&s);
    cJSON_Delete(schema);
}

static void chain_of_synchronous_validators_passes_once(void **state)
{
    (void)state;
    cJSON *schema = cJSON_Parse("{\"type\": \"object\"}");
    const char *names[] = {"schema", "schema", "schema", "schema", "schema"};
    seen s;
    run_chain(names, 5, "json", "```json\n{\"a\": 1}\n```", schema, &s);
    assert_true(s.v.pass);
    assert_string_equal(s.v.validator, "");
    seen_clear(&s);

    /* No validators at all is a pass, still delivered once. */
    run_chain(names, 0, "json", "", schema, &s);
    assert_true(s.v.pass);
    seen_clear(&s);
    cJSON_Delete(schema);
}

static void chain_empty_answer_fails_no_code(void **state)
{
    (void)state;
    seen s;
    run_one("syntax", "python", "```python\n```", NULL, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "no_code");
    seen_clear(&s);
}

/* ---- syntax ------------------------------------------------------------------ */

static void syntax_python_passes_valid_code(void **state)
{
    (void)state;
    seen s;
    run_one("syntax", "python", "```python\ndef f(x):\n    return x + 1\n```", NULL, &s);
    assert_true(s.v.pass);
    seen_clear(&s);
}

static void syntax_python_error_names_line_col_and_source_line(void **state)
{
    (void)state;
    seen s;
    run_one("syntax", "python", "x = 1\ny = )\n", NULL, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.validator, "syntax");
    assert_string_equal(s.v.reason, "syntax_error");
    assert_contains(s.v.message, "line 2:1");
    assert_contains(s.v.evidence, "line 2:1 (span 2:1-2:6)");
    assert_contains(s.v.evidence, "y = )");
    seen_clear(&s);
}

static void syntax_c_passes_valid_code(void **state)
{
    (void)state;
    seen s;
    run_one("syntax", "c", "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n",
            NULL, &s);
    assert_true(s.v.pass);
    seen_clear(&s);
}

static void syntax_c_missing_semicolon_points_at_it(void **state)
{
    (void)state;
    seen s;
    run_one("syntax", "c", "int f(void) {\n    return 1\n}\n", NULL, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "syntax_error");
    assert_contains(s.v.message, "line 2:13");
    assert_contains(s.v.message, "missing \";\"");
    assert_contains(s.v.evidence, "line 2:13 (span 2:13-2:13)");
    assert_contains(s.v.evidence, "    return 1");
    seen_clear(&s);
}

static void syntax_javascript_passes_valid_code(void **state)
{
    (void)state;
    seen s;
    run_one("syntax", "javascript", "const twice = (a) => a * 2;\nmodule.exports = { twice };\n",
            NULL, &s);
    assert_true(s.v.pass);
    seen_clear(&s);
}

static void syntax_javascript_error_names_line_col(void **state)
{
    (void)state;
    seen s;
    run_one("syntax", "javascript", "function f(a) {\n  return a +;\n}\n", NULL, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "syntax_error");
    assert_contains(s.v.message, "line 2:13");
    assert_contains(s.v.evidence, "line 2:13");
    assert_contains(s.v.evidence, "return a +;");
    seen_clear(&s);
}

static void syntax_unknown_language_fails_unsupported(void **state)
{
    (void)state;
    seen s;
    run_one("syntax", "cobol", "DISPLAY 'HI'.", NULL, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "unsupported");
    assert_contains(s.v.message, "cobol");
    seen_clear(&s);
    run_one("syntax", NULL, "x", NULL, &s);
    assert_string_equal(s.v.reason, "unsupported");
    seen_clear(&s);
}

static void syntax_reuses_parser_cached_in_env(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    val_env *env = val_env_new(&loop, NULL, 1, err, sizeof err);
    assert_non_null(env);
    const char *names[] = {"syntax"};
    /* Alternate good and bad input through the same cached parser. */
    for (int i = 0; i < 6; i++) {
        val_input in = {.language = "python", .answer = (i % 2) ? "def (:" : "x = 1\n"};
        seen s = {0};
        assert_int_equal(val_chain_start(env, names, 1, &in, on_done, &s), 0);
        assert_int_equal(s.calls, 1);
        assert_int_equal(s.v.pass, !(i % 2));
        seen_clear(&s);
    }
    val_env_free(env);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- schema ------------------------------------------------------------------- */

static const char *label_schema =
    "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"title\": \"ticket\","
    " \"type\": \"object\", \"required\": [\"label\", \"confidence\"],"
    " \"additionalProperties\": false,"
    " \"properties\": {"
    "   \"label\": {\"enum\": [\"bug\", \"feature\", \"question\"], \"description\": \"kind\"},"
    "   \"confidence\": {\"type\": \"number\", \"minimum\": 0, \"maximum\": 1},"
    "   \"count\": {\"type\": \"integer\"},"
    "   \"tags\": {\"type\": \"array\", \"minItems\": 1, \"maxItems\": 3,"
    "            \"items\": {\"type\": \"string\", \"minLength\": 2, \"maxLength\": 5}}}}";

static void check_schema(const char *schema_text, const char *answer, seen *s)
{
    cJSON *schema = cJSON_Parse(schema_text);
    assert_non_null(schema);
    run_one("schema", "json", answer, schema, s);
    cJSON_Delete(schema);
}

static void schema_passes_matching_json(void **state)
{
    (void)state;
    seen s;
    check_schema(label_schema,
                 "```json\n{\"label\": \"bug\", \"confidence\": 0.9, \"count\": 3,"
                 " \"tags\": [\"ui\", \"héllo\"]}\n```",
                 &s);
    if (!s.v.pass)
        fail_msg("unexpected failure: %s", s.v.message);
    seen_clear(&s);
}

static void schema_invalid_json_fails_with_position(void **state)
{
    (void)state;
    seen s;
    check_schema(label_schema, "{\"label\": \"bug\",\n \"confidence\": }", &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "invalid_json");
    assert_contains(s.v.message, "line 2:");
    seen_clear(&s);
    /* Trailing text after the value is not JSON either. */
    check_schema(label_schema, "{\"label\": \"bug\", \"confidence\": 1} and more", &s);
    assert_string_equal(s.v.reason, "invalid_json");
    seen_clear(&s);
}

static void schema_wrong_enum_names_pointer_and_choices(void **state)
{
    (void)state;
    seen s;
    check_schema(label_schema, "{\"label\": \"bugg\", \"confidence\": 0.5}", &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.validator, "schema");
    assert_string_equal(s.v.reason, "schema_mismatch");
    assert_string_equal(s.v.message, "/label: \"bugg\" is not one of [\"bug\",\"feature\",\"question\"]");
    seen_clear(&s);
}

static void schema_missing_required_is_named(void **state)
{
    (void)state;
    seen s;
    check_schema(label_schema, "{\"label\": \"bug\"}", &s);
    assert_string_equal(s.v.reason, "schema_mismatch");
    assert_contains(s.v.message, "missing required property \"confidence\"");
    seen_clear(&s);
}

static void schema_wrong_type_and_integer_fraction_fail(void **state)
{
    (void)state;
    seen s;
    check_schema(label_schema, "{\"label\": \"bug\", \"confidence\": \"high\"}", &s);
    assert_string_equal(s.v.reason, "schema_mismatch");
    assert_contains(s.v.message, "/confidence: expected number, got string \"high\"");
    seen_clear(&s);
    check_schema(label_schema, "{\"label\": \"bug\", \"confidence\": 1, \"count\": 1.5}", &s);
    assert_contains(s.v.message, "/count: expected integer");
    seen_clear(&s);
    check_schema(label_schema, "{\"label\": \"bug\", \"confidence\": 1, \"count\": 2.0}", &s);
    assert_true(s.v.pass);
    seen_clear(&s);
    check_schema(label_schema, "[1]", &s);
    assert_contains(s.v.message, "(root): expected object, got array");
    seen_clear(&s);
}

static void schema_additional_property_false_rejects_extra(void **state)
{
    (void)state;
    seen s;
    check_schema(label_schema, "{\"label\": \"bug\", \"confidence\": 1, \"why\": \"x\"}", &s);
    assert_string_equal(s.v.reason, "schema_mismatch");
    assert_contains(s.v.message, "/why: property not allowed");
    seen_clear(&s);
    /* additionalProperties as a schema applies to the extra members. */
    check_schema("{\"additionalProperties\": {\"type\": \"integer\"}}", "{\"a\": 1, \"b\": \"x\"}",
                 &s);
    assert_contains(s.v.message, "/b: expected integer");
    seen_clear(&s);
}

static void schema_nested_items_report_index_path(void **state)
{
    (void)state;
    seen s;
    check_schema(label_schema, "{\"label\": \"bug\", \"confidence\": 1, \"tags\": [\"ok\", 7]}",
                 &s);
    assert_string_equal(s.v.reason, "schema_mismatch");
    assert_contains(s.v.message, "/tags/1: expected string, got number 7");
    seen_clear(&s);
    check_schema(label_schema, "{\"label\": \"bug\", \"confidence\": 1, \"tags\": []}", &s);
    assert_contains(s.v.message, "/tags: 0 items, at least 1 expected");
    seen_clear(&s);
}

static void schema_lengths_count_code_points_and_bounds_apply(void **state)
{
    (void)state;
    seen s;
    /* "héllo" is 6 bytes but 5 code points: within maxLength 5. */
    check_schema("{\"maxLength\": 5}", "\"héllo\"", &s);
    assert_true(s.v.pass);
    seen_clear(&s);
    check_schema("{\"maxLength\": 4}", "\"héllo\"", &s);
    assert_contains(s.v.message, "5 characters, at most 4 expected");
    seen_clear(&s);
    check_schema(label_schema, "{\"label\": \"bug\", \"confidence\": 1.5}", &s);
    assert_contains(s.v.message, "/confidence: 1.5 is greater than the maximum 1");
    seen_clear(&s);
    check_schema("{\"exclusiveMinimum\": 0}", "0", &s);
    assert_false(s.v.pass);
    seen_clear(&s);
    check_schema("{\"const\": {\"a\": [1, 2]}}", "{\"a\": [1, 2]}", &s);
    assert_true(s.v.pass);
    seen_clear(&s);
}

static void schema_boolean_schemas_accept_or_reject_all(void **state)
{
    (void)state;
    seen s;
    check_schema("true", "{\"anything\": [1]}", &s);
    assert_true(s.v.pass);
    seen_clear(&s);
    check_schema("false", "1", &s);
    assert_string_equal(s.v.reason, "schema_mismatch");
    seen_clear(&s);
    check_schema("{\"properties\": {\"a\": false}}", "{\"a\": 1}", &s);
    assert_contains(s.v.message, "/a: no value is allowed here");
    seen_clear(&s);
}

static void schema_absent_fails_no_schema(void **state)
{
    (void)state;
    seen s;
    run_one("schema", "json", "{}", NULL, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "no_schema");
    assert_non_null(s.v.message);
    seen_clear(&s);
}

static void schema_supported_accepts_our_keywords_and_annotations(void **state)
{
    (void)state;
    cJSON *schema = cJSON_Parse(label_schema);
    char err[256];
    assert_int_equal(val_schema_supported(schema, err, sizeof err), 0);
    cJSON_Delete(schema);
    schema = cJSON_Parse("{\"$id\": \"x\", \"$comment\": \"c\", \"default\": 1,"
                         " \"examples\": [1], \"type\": [\"integer\", \"null\"]}");
    assert_int_equal(val_schema_supported(schema, err, sizeof err), 0);
    cJSON_Delete(schema);
}

static void schema_supported_rejects_unknown_keywords_naming_them(void **state)
{
    (void)state;
    static const struct {
        const char *schema;
        const char *named;
    } cases[] = {
        {"{\"$dynamicRef\": \"#meta\"}", "\"$dynamicRef\""},
        {"{\"type\": \"string\", \"format\": \"email\"}", "\"format\""},
        {"{\"properties\": {\"a\": {\"pattern\": \"^x\"}}}", "\"pattern\" at /properties/a"},
        {"{\"items\": {\"anyOf\": []}}", "\"anyOf\" at /items"},
        {"{\"items\": [{\"type\": \"string\"}]}", "\"items\""},
        {"{\"type\": \"text\"}", "\"type\""},
        {"{\"required\": [1]}", "\"required\""},
        {"42", "must be an object or a boolean"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *schema = cJSON_Parse(cases[i].schema);
        assert_non_null(schema);
        char err[256];
        assert_int_equal(val_schema_supported(schema, err, sizeof err), WK_EINVAL);
        assert_contains(err, cases[i].named);
        cJSON_Delete(schema);
    }
    /* The validator refuses it too, instead of checking half a schema. */
    seen s;
    check_schema("{\"type\": \"string\", \"format\": \"email\"}", "\"a@b\"", &s);
    assert_string_equal(s.v.reason, "unsupported");
    assert_contains(s.v.message, "format");
    seen_clear(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(extract_takes_fenced_block_with_language_tag),
        cmocka_unit_test(extract_takes_fenced_block_without_tag),
        cmocka_unit_test(extract_takes_first_of_several_blocks),
        cmocka_unit_test(extract_unclosed_fence_runs_to_end),
        cmocka_unit_test(extract_without_fence_trims_whole_answer),
        cmocka_unit_test(extract_keeps_indent_of_first_line_and_inline_close),
        cmocka_unit_test(lang_ext_maps_known_languages_and_defaults_to_txt),
        cmocka_unit_test(verdict_caps_message_and_evidence_and_escapes_controls),
        cmocka_unit_test(limits_default_match_documented_values),
        cmocka_unit_test(table_finds_each_validator_by_name),
        cmocka_unit_test(chain_unknown_name_fails_without_calling_done),
        cmocka_unit_test(chain_stops_at_first_failure),
        cmocka_unit_test(chain_of_synchronous_validators_passes_once),
        cmocka_unit_test(chain_empty_answer_fails_no_code),
        cmocka_unit_test(syntax_python_passes_valid_code),
        cmocka_unit_test(syntax_python_error_names_line_col_and_source_line),
        cmocka_unit_test(syntax_c_passes_valid_code),
        cmocka_unit_test(syntax_c_missing_semicolon_points_at_it),
        cmocka_unit_test(syntax_javascript_passes_valid_code),
        cmocka_unit_test(syntax_javascript_error_names_line_col),
        cmocka_unit_test(syntax_unknown_language_fails_unsupported),
        cmocka_unit_test(syntax_reuses_parser_cached_in_env),
        cmocka_unit_test(schema_passes_matching_json),
        cmocka_unit_test(schema_invalid_json_fails_with_position),
        cmocka_unit_test(schema_wrong_enum_names_pointer_and_choices),
        cmocka_unit_test(schema_missing_required_is_named),
        cmocka_unit_test(schema_wrong_type_and_integer_fraction_fail),
        cmocka_unit_test(schema_additional_property_false_rejects_extra),
        cmocka_unit_test(schema_nested_items_report_index_path),
        cmocka_unit_test(schema_lengths_count_code_points_and_bounds_apply),
        cmocka_unit_test(schema_boolean_schemas_accept_or_reject_all),
        cmocka_unit_test(schema_absent_fails_no_schema),
        cmocka_unit_test(schema_supported_accepts_our_keywords_and_annotations),
        cmocka_unit_test(schema_supported_rejects_unknown_keywords_naming_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
