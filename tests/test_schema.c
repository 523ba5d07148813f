/*
 * Unit tests for the JSON Schema validator beyond the basics in
 * test_validators.c: the 2020-12 applicators and references, the load-time
 * refusals (each names the keyword), the guards against cycles and runaway
 * work, and the ECMA-262 pattern engine. The official suite runs separately
 * (make conformance-schema); these tests need no data outside the project.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "validators/schema/schema_int.h"
#include "validators/val.h"

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
    memcpy(s->v.reason, v->reason, sizeof s->v.reason);
    s->v.message = v->message ? strdup(v->message) : NULL;
    s->v.evidence = v->evidence ? strdup(v->evidence) : NULL;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay ? hay : "(null)");
}

/* Runs the schema validator on `answer`; the verdict is left in s (clear it). */
static void check(const char *schema_text, const char *answer, seen *s)
{
    cJSON *schema = cJSON_Parse(schema_text);
    if (!schema)
        fail_msg("test schema does not parse: %s", schema_text);
    val_input in = {.task_id = "t", .kind = "json", .answer = answer, .schema = schema};
    memset(s, 0, sizeof *s);
    const char *names[] = {"schema"};
    assert_int_equal(val_chain_start(NULL, names, 1, &in, on_done, s), 0);
    assert_int_equal(s->calls, 1);
    cJSON_Delete(schema);
}

/* Expects `answer` to pass (want 1) or fail with schema_mismatch (want 0). */
static void expect(const char *schema_text, const char *answer, int want)
{
    seen s;
    check(schema_text, answer, &s);
    if (s.v.pass != want || (!want && strcmp(s.v.reason, "schema_mismatch") != 0))
        fail_msg("schema %s, answer %s: want %s, got %s %s %s", schema_text, answer,
                 want ? "pass" : "schema_mismatch", s.v.pass ? "pass" : "fail", s.v.reason,
                 s.v.message ? s.v.message : "");
    val_verdict_clear(&s.v);
}

/* Expects val_schema_supported to refuse the schema with `named` in the message. */
static void expect_refused(const char *schema_text, const char *named)
{
    cJSON *schema = cJSON_Parse(schema_text);
    assert_non_null(schema);
    char err[512];
    if (val_schema_supported(schema, err, sizeof err) != WK_EINVAL)
        fail_msg("accepted: %s", schema_text);
    assert_contains(err, named);
    cJSON_Delete(schema);
    /* The validator refuses it the same way, never checking half of it. */
    seen s;
    check(schema_text, "{}", &s);
    assert_string_equal(s.v.reason, "unsupported");
    assert_contains(s.v.message, named);
    val_verdict_clear(&s.v);
}

/* ---- keywords ------------------------------------------------------------ */

static void combinators_apply_as_2020_12_says(void **state)
{
    (void)state;
    expect("{\"anyOf\": [{\"type\": \"string\"}, {\"minimum\": 3}]}", "5", 1);
    expect("{\"anyOf\": [{\"type\": \"string\"}, {\"minimum\": 3}]}", "1", 0);
    expect("{\"oneOf\": [{\"type\": \"integer\"}, {\"minimum\": 3}]}", "5", 0);
    expect("{\"oneOf\": [{\"type\": \"integer\"}, {\"minimum\": 3}]}", "1", 1);
    expect("{\"allOf\": [{\"type\": \"integer\"}, {\"minimum\": 3}]}", "2", 0);
    expect("{\"not\": {\"type\": \"null\"}}", "null", 0);
    expect("{\"if\": {\"minimum\": 10}, \"then\": {\"multipleOf\": 5}, \"else\": {\"maximum\": 3}}",
           "15", 1);
    expect("{\"if\": {\"minimum\": 10}, \"then\": {\"multipleOf\": 5}, \"else\": {\"maximum\": 3}}",
           "12", 0);
    expect("{\"if\": {\"minimum\": 10}, \"then\": {\"multipleOf\": 5}, \"else\": {\"maximum\": 3}}",
           "4", 0);
    expect("{\"dependentRequired\": {\"card\": [\"billing\"]}}", "{\"card\": 1}", 0);
    expect("{\"dependentSchemas\": {\"card\": {\"required\": [\"billing\"]}}}", "{\"x\": 1}", 1);
    expect("{\"propertyNames\": {\"pattern\": \"^[a-z]+$\"}}", "{\"ok\": 1, \"Bad\": 2}", 0);
    expect("{\"minProperties\": 2, \"maxProperties\": 2}", "{\"a\": 1}", 0);
}

static void arrays_prefix_items_contains_and_uniqueness(void **state)
{
    (void)state;
    const char *tuple = "{\"prefixItems\": [{\"type\": \"string\"}, {\"type\": \"integer\"}],"
                        " \"items\": false}";
    expect(tuple, "[\"a\", 1]", 1);
    expect(tuple, "[\"a\", 1, 2]", 0);
    expect(tuple, "[1]", 0);
    expect("{\"contains\": {\"const\": 2}, \"minContains\": 2, \"maxContains\": 3}", "[2, 1, 2]",
           1);
    expect("{\"contains\": {\"const\": 2}, \"minContains\": 2}", "[2, 1]", 0);
    expect("{\"contains\": {\"const\": 2}, \"maxContains\": 1}", "[2, 2]", 0);
    /* Equality is JSON's: 1 and 1.0 are one number; key order does not matter. */
    expect("{\"uniqueItems\": true}", "[1, 1.0]", 0);
    expect("{\"uniqueItems\": true}", "[{\"a\": 1, \"b\": 2}, {\"b\": 2, \"a\": 1}]", 0);
    expect("{\"uniqueItems\": true}", "[[1], [true], 1, true, \"1\"]", 1);
    expect("{\"const\": {\"a\": [1, {\"b\": null}]}}", "{\"a\": [1.0, {\"b\": null}]}", 1);
    expect("{\"enum\": [false]}", "0", 0);
}

static void numbers_multiple_of_tolerates_rounding_but_not_error(void **state)
{
    (void)state;
    /* 0.0075 / 0.0001 is 74.99999999999999 in binary floating point. */
    expect("{\"multipleOf\": 0.0001}", "0.0075", 1);
    expect("{\"multipleOf\": 0.01}", "19.99", 1);
    expect("{\"multipleOf\": 0.0001}", "0.00751", 0);
    expect("{\"multipleOf\": 1}", "1.0000000001", 0);
    /* A quotient that overflows is not a multiple we can vouch for. */
    expect("{\"multipleOf\": 0.123456789}", "1e308", 0);
    expect("{\"exclusiveMaximum\": 1e308}", "1.7e308", 0);
    expect("{\"minimum\": -1e308}", "-1.7e308", 0);
}

static void unevaluated_properties_see_what_applicators_evaluated(void **state)
{
    (void)state;
    const char *s =
        "{\"properties\": {\"a\": true},"
        " \"anyOf\": [{\"properties\": {\"b\": true}}, {\"properties\": {\"c\": true}}],"
        " \"unevaluatedProperties\": false}";
    expect(s, "{\"a\": 1, \"b\": 2, \"c\": 3}", 1);
    expect(s, "{\"a\": 1, \"d\": 4}", 0);
    seen v;
    check(s, "{\"a\": 1, \"d\": 4}", &v);
    assert_contains(v.v.message, "/d: property not allowed (unevaluatedProperties is false)");
    val_verdict_clear(&v.v);
    /* A failed branch evaluates nothing; "not" never does. */
    expect("{\"anyOf\": [{\"properties\": {\"b\": {\"type\": \"string\"}}}, true],"
           " \"unevaluatedProperties\": false}",
           "{\"b\": 1}", 0);
    expect(
        "{\"not\": {\"not\": {\"properties\": {\"b\": true}}}, \"unevaluatedProperties\": false}",
        "{\"b\": 1}", 0);
    expect("{\"prefixItems\": [true], \"allOf\": [{\"contains\": {\"const\": 5}}],"
           " \"unevaluatedItems\": false}",
           "[1, 5, 5]", 1);
    expect("{\"prefixItems\": [true], \"unevaluatedItems\": {\"type\": \"string\"}}",
           "[1, \"x\", 2]", 0);
}

static void references_resolve_pointers_anchors_and_ids(void **state)
{
    (void)state;
    /* ~0 is ~, ~1 is /, and the fragment is percent-decoded first. */
    const char *esc =
        "{\"$defs\": {\"a/b\": {\"type\": \"integer\"}, \"c~d\": {\"type\": \"string\"},"
        " \"e%f\": {\"type\": \"null\"}},"
        " \"properties\": {\"x\": {\"$ref\": \"#/$defs/a~1b\"},"
        " \"y\": {\"$ref\": \"#/$defs/c~0d\"}, \"z\": {\"$ref\": \"#/$defs/e%25f\"}}}";
    expect(esc, "{\"x\": 1, \"y\": \"s\", \"z\": null}", 1);
    expect(esc, "{\"x\": \"1\"}", 0);
    expect(esc, "{\"z\": 0}", 0);
    /* A recursive schema through "#": a tree of any depth. */
    const char *tree = "{\"type\": \"object\", \"properties\": {\"kids\": {\"type\": \"array\","
                       " \"items\": {\"$ref\": \"#\"}}}, \"additionalProperties\": false}";
    expect(tree, "{\"kids\": [{\"kids\": []}, {\"kids\": [{}]}]}", 1);
    expect(tree, "{\"kids\": [{\"kids\": [{\"name\": 1}]}]}", 0);
    /* $anchor, and $id changing the base that a relative $ref resolves against. */
    expect("{\"$ref\": \"#num\", \"$defs\": {\"n\": {\"$anchor\": \"num\", \"type\": \"number\"}}}",
           "\"x\"", 0);
    expect("{\"$id\": \"https://example.com/root.json\", \"$ref\": \"item.json\","
           " \"$defs\": {\"i\": {\"$id\": \"item.json\", \"type\": \"string\"}}}",
           "\"s\"", 1);
    expect("{\"$id\": \"https://example.com/root.json\", \"$ref\": \"item.json\","
           " \"$defs\": {\"i\": {\"$id\": \"item.json\", \"type\": \"string\"}}}",
           "3", 0);
    /* $dynamicRef picks the outermost $dynamicAnchor in the dynamic scope. */
    const char *dyn = "{\"$id\": \"https://example.com/strings\", \"$ref\": \"list\","
                      " \"$defs\": {\"s\": {\"$dynamicAnchor\": \"item\", \"type\": \"string\"},"
                      "  \"list\": {\"$id\": \"list\", \"type\": \"array\", \"items\": "
                      "{\"$dynamicRef\": \"#item\"},"
                      "   \"$defs\": {\"any\": {\"$dynamicAnchor\": \"item\"}}}}}";
    expect(dyn, "[\"a\", \"b\"]", 1);
    expect(dyn, "[\"a\", 1]", 0);
}

static void annotations_are_accepted_and_not_asserted(void **state)
{
    (void)state;
    /* 2020-12: format is an annotation unless a format-assertion vocabulary is in use. */
    expect("{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"$id\": \"urn:x\","
           " \"title\": \"t\", \"description\": \"d\", \"$comment\": \"c\", \"default\": 1,"
           " \"examples\": [1], \"deprecated\": true, \"readOnly\": true, \"writeOnly\": false,"
           " \"format\": \"email\", \"contentMediaType\": \"application/json\","
           " \"contentEncoding\": \"base64\", \"type\": \"string\"}",
           "\"not an email\"", 1);
}

static void messages_name_the_instance_and_the_reason(void **state)
{
    (void)state;
    seen s;
    check("{\"properties\": {\"v\": {\"anyOf\": [{\"type\": \"string\"}, {\"minimum\": 3}]}}}",
          "{\"v\": 1}", &s);
    assert_contains(s.v.message, "/v: matches none of the 2 \"anyOf\" alternatives");
    assert_contains(s.v.message, "(first: /v: expected string");
    val_verdict_clear(&s.v);
    check("{\"oneOf\": [{\"type\": \"integer\"}, {\"minimum\": 3}]}", "5", &s);
    assert_contains(s.v.message, "\"oneOf\" alternatives 0 and 1");
    val_verdict_clear(&s.v);
    check("{\"patternProperties\": {\"^n_\": {\"type\": \"number\"}}}", "{\"n_a\": \"x\"}", &s);
    assert_contains(s.v.message, "/n_a: expected number");
    val_verdict_clear(&s.v);
    check("{\"properties\": {\"a~b/c\": {\"type\": \"number\"}}}", "{\"a~b/c\": \"x\"}", &s);
    assert_contains(s.v.message, "/a~0b~1c: expected number");
    val_verdict_clear(&s.v);
    check("{\"pattern\": \"^\\\\d{3}$\"}", "\"12a\"", &s);
    assert_contains(s.v.message, "does not match the pattern");
    val_verdict_clear(&s.v);
}

/* ---- refusals at load time ------------------------------------------------- */

static void unsupported_features_are_refused_by_name(void **state)
{
    (void)state;
    expect_refused("{\"$ref\": \"https://example.com/other.json\"}", "\"$ref\"");
    expect_refused("{\"$ref\": \"other.json#/$defs/x\"}", "remote references are not fetched");
    expect_refused("{\"$ref\": \"#/$defs/missing\"}", "does not point at a schema");
    expect_refused("{\"$ref\": \"#nowhere\"}", "no anchor \"nowhere\"");
    expect_refused("{\"$schema\": \"http://json-schema.org/draft-07/schema#\"}", "\"$schema\"");
    expect_refused("{\"definitions\": {}}", "\"$defs\"");
    expect_refused("{\"dependencies\": {}}", "dependentRequired");
    expect_refused("{\"$recursiveRef\": \"#\"}", "\"$dynamicRef\"");
    expect_refused("{\"$vocabulary\": {}}", "\"$vocabulary\"");
    expect_refused("{\"items\": [true]}", "\"items\"");
    expect_refused("{\"prefixItems\": []}", "\"prefixItems\"");
    expect_refused("{\"multipleOf\": 0}", "\"multipleOf\"");
    expect_refused("{\"minLength\": -1}", "\"minLength\"");
    expect_refused("{\"$anchor\": \"1bad\"}", "\"$anchor\"");
    expect_refused("{\"$id\": \"https://e.com/x#frag\"}", "\"$id\"");
    expect_refused("{\"allOf\": [{\"$anchor\": \"a\"}, {\"$anchor\": \"a\"}]}", "defined twice");
    expect_refused("{\"properties\": {\"a\": {\"not\": {\"maxLength\": \"3\"}}}}",
                   "\"maxLength\" at /properties/a/not");
    expect_refused("{\"patternProperties\": {\"(a)\\\\1\": true}}", "backreferences");
    expect_refused("{\"pattern\": \"(?<=a)b\"}", "lookbehind");
    expect_refused("{\"unknownKeyword\": 1}", "\"unknownKeyword\"");
}

static void reference_cycles_are_refused_instead_of_looping(void **state)
{
    (void)state;
    expect_refused("{\"$ref\": \"#\"}", "would never terminate");
    expect_refused("{\"allOf\": [{\"$ref\": \"#/$defs/a\"}], \"$defs\": {\"a\": {\"anyOf\":"
                   " [{\"$ref\": \"#/$defs/b\"}]}, \"b\": {\"not\": {\"$ref\": \"#\"}}}}",
                   "would never terminate");
    expect_refused("{\"$defs\": {\"a\": {\"$ref\": \"#/$defs/a\"}}}", "would never terminate");
    /* Recursion that consumes input is fine (see the tree above); so is reuse. */
    expect("{\"$defs\": {\"i\": {\"type\": \"integer\"}}, \"allOf\": [{\"$ref\": \"#/$defs/i\"},"
           " {\"$ref\": \"#/$defs/i\"}]}",
           "1", 1);
}

static void runaway_work_ends_in_too_complex_not_a_hang(void **state)
{
    (void)state;
    /* uniqueItems over 8000 distinct items is 32 million comparisons: over the budget. */
    size_t n = 8000;
    char *arr = malloc(n * 8 + 8);
    char *p = arr;
    *p++ = '[';
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s%zu", i ? "," : "", i);
    *p++ = ']';
    *p = '\0';
    seen s;
    time_t t0 = time(NULL);
    check("{\"uniqueItems\": true}", arr, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "too_complex");
    assert_true(time(NULL) - t0 < 30);
    val_verdict_clear(&s.v);
    free(arr);

    /* Deep nesting with a recursive schema: bounded, whichever limit answers. */
    char deep[4200];
    memset(deep, '[', 990);
    memset(deep + 990, ']', 990);
    deep[1980] = '\0';
    check("{\"items\": {\"$ref\": \"#\"}}", deep, &s);
    assert_true(s.v.pass || strcmp(s.v.reason, "too_complex") == 0);
    val_verdict_clear(&s.v);
}

/* ---- the pattern engine ------------------------------------------------------ */

static void patterns_match_ecma_262_semantics(void **state)
{
    (void)state;
    static const struct {
        const char *re, *s;
        int want;
    } cases[] = {
        {"a+", "xaay", 1}, /* unanchored search */
        {"^a*$", "aaa", 1},
        {"^a*$", "aab", 0},
        {"^a*$", "", 1},
        {"^\\d{3}-\\d{4}$", "555-1234", 1},
        {"^\\d{3}-\\d{4}$", "555-12345", 0},
        {"^[A-Z][a-z]+$", "Hello", 1},
        {"^[^0-9]+$", "abc", 1},
        {"^[^0-9]+$", "ab1", 0},
        {"^(cat|dog)s?$", "dogs", 1},
        {"^(?:ab){2,3}$", "ababab", 1},
        {"^(?:ab){2,3}$", "abababab", 0},
        {"^a{2}$", "aa", 1},
        {"^a{2,}$", "a", 0},
        {"^.$", "\n", 0},             /* . excludes line terminators */
        {"^.$", "\xc3\xa9", 1},       /* é is one code point */
        {"^\\w+$", "h\xc3\xa9", 0},   /* \w is ASCII */
        {"^\\s$", "\xe2\x80\xa8", 1}, /* U+2028 is white space to ECMA */
        {"^\\p{L}+$", "\xc3\xa9t\xc3\xa9", 1},
        {"^\\P{L}+$", "12", 1},
        {"^\\p{Letter}+$", "a1", 0},
        {"\\bfoo\\b", "a foo b", 1},
        {"\\bfoo\\b", "afoob", 0},
        {"^\\u00e9$", "\xc3\xa9", 1},
        {"^\\ud83d\\ude00$", "\xf0\x9f\x98\x80", 1}, /* a surrogate pair is one code point */
        {"^[\\d-]+$", "1-2", 1},                     /* '-' next to a class escape is literal */
        {"a{,3}", "a{,3}", 1}, /* not a quantifier: literal braces (Annex B) */
        {"^$", "\n", 0},       /* $ is the end of input only */
        {"^(a|)+$", "aaa", 1}, /* an empty loop body terminates */
        {"x*", "", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        val__re *re = NULL;
        char err[200];
        if (val__re_compile(cases[i].re, &re, err, sizeof err) < 0)
            fail_msg("/%s/ refused: %s", cases[i].re, err);
        int64_t budget = 1000000;
        int got = val__re_search(re, cases[i].s, strlen(cases[i].s), &budget);
        if (got != cases[i].want)
            fail_msg("/%s/ on \"%s\": want %d, got %d", cases[i].re, cases[i].s, cases[i].want,
                     got);
        val__re_free(re);
    }
}

static void patterns_we_cannot_match_exactly_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *re, *named;
    } cases[] = {
        {"(a)\\1", "backreferences"}, {"(?<n>a)\\k<n>", "named backreferences"},
        {"a(?=b)", "lookahead"},      {"(?<!a)b", "lookbehind"},
        {"\\p{Lu}", "\\p{Lu}"},       {"\\z", "\\z"},
        {"a**", "nothing to repeat"}, {"*a", "nothing to repeat"},
        {"(a", "missing )"},          {"a)", "unmatched )"},
        {"[b-a]", "out of order"},    {"[a", "unterminated"},
        {"a{3,2}", "out of order"},   {"(?:(?:a{1000}){1000})", "instructions"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        val__re *re = NULL;
        char err[200];
        if (val__re_compile(cases[i].re, &re, err, sizeof err) == 0) {
            val__re_free(re);
            fail_msg("/%s/ was accepted", cases[i].re);
        }
        assert_null(re);
        assert_contains(err, cases[i].named);
    }
}

static void pattern_matching_is_linear_on_catastrophic_patterns(void **state)
{
    (void)state;
    /* (a*)*b on "aaaa...a" takes exponential time with backtracking; a Pike VM does not care. */
    val__re *re = NULL;
    char err[200];
    assert_int_equal(val__re_compile("^(a*)*b$", &re, err, sizeof err), 0);
    char s[20001];
    memset(s, 'a', 20000);
    s[20000] = '\0';
    int64_t budget = 100000000;
    time_t t0 = time(NULL);
    assert_int_equal(val__re_search(re, s, 20000, &budget), 0);
    assert_true(time(NULL) - t0 < 10);
    /* And the budget stops it when it is too small, with a distinct result. */
    budget = 1000;
    assert_int_equal(val__re_search(re, s, 20000, &budget), WK_ETOOBIG);
    val__re_free(re);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(combinators_apply_as_2020_12_says),
        cmocka_unit_test(arrays_prefix_items_contains_and_uniqueness),
        cmocka_unit_test(numbers_multiple_of_tolerates_rounding_but_not_error),
        cmocka_unit_test(unevaluated_properties_see_what_applicators_evaluated),
        cmocka_unit_test(references_resolve_pointers_anchors_and_ids),
        cmocka_unit_test(annotations_are_accepted_and_not_asserted),
        cmocka_unit_test(messages_name_the_instance_and_the_reason),
        cmocka_unit_test(unsupported_features_are_refused_by_name),
        cmocka_unit_test(reference_cycles_are_refused_instead_of_looping),
        cmocka_unit_test(runaway_work_ends_in_too_complex_not_a_hang),
        cmocka_unit_test(patterns_match_ecma_262_semantics),
        cmocka_unit_test(patterns_we_cannot_match_exactly_are_refused),
        cmocka_unit_test(pattern_matching_is_linear_on_catastrophic_patterns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
