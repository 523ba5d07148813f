/*
 * Unit tests for the CPU-only parts of validators/: code extraction, verdict
 * capping and notes, language names, SHA-256, the chain, the syntax validator
 * (tree-sitter, every language, advisory C/C++ errors), the compile
 * validator's choices that need no process, the schema validator, and what
 * each validator needs of a task (val_check_task) and of the machine.
 * Nothing here spawns a process or opens a socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "validators/sandbox/sandbox.h"
#include "validators/val_int.h"

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
    s->v.note = v->note ? strdup(v->note) : NULL;
}

/* Runs a chain of CPU-only validators (no env needed) and returns its verdict. */
static void run_chain(const char *const *names, int n, const char *language, const char *answer,
                      const cJSON *schema, seen *s)
{
    val_input in = {
        .task_id = "t", .kind = "code", .language = language, .answer = answer, .schema = schema};
    memset(s, 0, sizeof *s);
    assert_int_equal(val_chain_start(NULL, names, n, &in, on_done, s), 0);
    /* These validators finish inside start(), so the verdict is already here. */
    assert_int_equal(s->calls, 1);
}

static void run_one(const char *name, const char *language, const char *answer, const cJSON *schema,
                    seen *s)
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

static void extract_takes_the_last_of_several_equal_blocks(void **state)
{
    (void)state;
    /* Neither defines anything: the later one is taken (a correction follows its draft). */
    char *c = val_extract_code("a\n```js\nfirst();\n```\nb\n```js\nsecond();\n```\n");
    assert_string_equal(c, "second();");
    free(c);
}

/* Each case: an answer as models write them, and the code that must come out. */
static const struct {
    const char *answer;
    const char *code;
} extract_cases[] = {
    /* CodeLlama's tags, with its [TESTS] block after. */
    {"[PYTHON]\ndef add(a, b):\n    return a + b\n[/PYTHON]\n[TESTS]\n# Test case 1:\n"
     "assert add(1, 2) == 3\n[/TESTS]\n",
     "def add(a, b):\n    return a + b"},
    {"  [PYTHON]\ndef f():\n    return 1\n[/PYTHON]", "def f():\n    return 1"},
    {"Sure!\n[JAVASCRIPT]\nfunction f(x) {\n  return x;\n}\n[/JAVASCRIPT]\nThat is all.",
     "function f(x) {\n  return x;\n}"},
    /* Tags cut off by the token limit: to the end. */
    {"[PYTHON]\ndef f(x):\n    return x *", "def f(x):\n    return x *"},
    /* A fence inside the tags is the code, not the tags around it. */
    {"[PYTHON]\n```python\ndef f():\n    pass\n```\n[/PYTHON]", "def f():\n    pass"},
    /* An uppercase index in a bare answer is no tag. */
    {"def f(a, C):\n    return a[C]\n", "def f(a, C):\n    return a[C]"},
    /* <code> blocks, alone, after <pre>, with a class; entities decoded. */
    {"<code>\ndef lt(a, b):\n    return a &lt; b\n</code>", "def lt(a, b):\n    return a < b"},
    {"Here:\n<pre><code class=\"language-python\">def f():\n    return \"&amp;\"</code></pre>",
     "def f():\n    return \"&\""},
    /* An inline <code> in prose or in a string of the code is not a block. */
    {"def f():\n    return '<code>' + x + '</code>'",
     "def f():\n    return '<code>' + x + '</code>'"},
    /* A fence with no closing line (cut off), alone or after a complete one that defines nothing.
     */
    {"Here it is:\n```python\ndef f(n):\n    return n +", "def f(n):\n    return n +"},
    {"Install:\n```bash\npip install numpy\n```\nThen:\n```python\ndef f(n):\n    return n",
     "def f(n):\n    return n"},
    /* Several blocks: the last complete one holds the function. */
    {"Usage:\n```python\nprint(f(3))\n```\nCode:\n```python\ndef f(n):\n    return n\n```\n",
     "def f(n):\n    return n"},
    {"Draft:\n```python\ndef f(n):\n    return 0\n```\nFixed:\n```python\ndef f(n):\n"
     "    return n\n```\nExplanation...",
     "def f(n):\n    return n"},
    {"```python\ndef f(n):\n    return n\n```\nAgain, longer:\n```python\ndef f(n):\n    return",
     "def f(n):\n    return n"},
    /* ...but a usage example or a test after the function does not win over it. */
    {"```python\ndef f(n):\n    return n\n```\nExample:\n```python\n>>> f(2)\n2\n```",
     "def f(n):\n    return n"},
    {"```python\ndef f(n):\n    return n\n```\nTests:\n```python\ndef test_f():\n"
     "    assert f(1) == 1\n```",
     "def f(n):\n    return n"},
    {"```c\nint add(int a, int b)\n{\n    return a + b;\n}\n```\nBuild:\n```\ngcc -c add.c\n```",
     "int add(int a, int b)\n{\n    return a + b;\n}"},
    {"```text\noutput: 3\n```\n```\nx = 3\n```", "x = 3"},
    /* Tildes fence too. */
    {"~~~python\ndef f():\n    return 2\n~~~\n", "def f():\n    return 2"},
};

static void extract_handles_answers_as_models_write_them(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof extract_cases / sizeof extract_cases[0]; i++) {
        char *c = val_extract_code(extract_cases[i].answer);
        if (strcmp(c, extract_cases[i].code) != 0)
            fail_msg("case %zu: got\n%s\n--- wanted\n%s", i, c, extract_cases[i].code);
        free(c);
    }
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
    assert_string_equal(val_lang_ext("tsx"), "tsx");
    assert_string_equal(val_lang_ext("golang"), "go");
    assert_string_equal(val_lang_ext("C++"), "cpp");
}

static void lang_aliases_map_to_canonical_names(void **state)
{
    (void)state;
    static const char *const pairs[][2] = {
        {"py", "python"},       {"Python3", "python"}, {"c", "c"},           {"h", "c"},
        {"c++", "cpp"},         {"CXX", "cpp"},        {"cc", "cpp"},        {"js", "javascript"},
        {"node", "javascript"}, {"jsx", "javascript"}, {"ts", "typescript"}, {"tsx", "tsx"},
        {"golang", "go"},       {"rs", "rust"},        {"java", "java"},     {"json", "json"},
        {"sh", "bash"},         {"shell", "bash"},     {"bash", "bash"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        const char *c = val_lang_canonical(pairs[i][0]);
        if (!c || strcmp(c, pairs[i][1]) != 0)
            fail_msg("%s -> %s, expected %s", pairs[i][0], c ? c : "NULL", pairs[i][1]);
        assert_true(val_lang_known(pairs[i][0]));
    }
    assert_null(val_lang_canonical("cobol"));
    assert_null(val_lang_canonical(NULL));
    assert_null(val_lang_canonical(""));
}

static void sha256_matches_fips_vectors(void **state)
{
    (void)state;
    char hex[65];
    val__sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    val__sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    /* 56 bytes: the padding spills into a second block. */
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    val__sha256_hex(two, strlen(two), hex);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    /* A million 'a's: many full blocks. */
    char *mil = malloc(1000000);
    memset(mil, 'a', 1000000);
    val__sha256_hex(mil, 1000000, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    free(mil);
}

static void answer_name_follows_task_then_java_public_class(void **state)
{
    (void)state;
    cJSON *task = cJSON_Parse("{}");
    val_input in = {.language = "java", .task = task};
    char *n =
        val__answer_name(&in, "// public class Nope {}\nimport java.util.*;\n"
                              "/* public class Nor */ final class Helper {}\n"
                              "public final class Solution { String s = \"public class X\"; }");
    assert_string_equal(n, "Solution.java");
    free(n);
    n = val__answer_name(&in, "class NotPublic {}");
    assert_string_equal(n, "solution.java");
    free(n);
    in.language = "py";
    n = val__answer_name(&in, "def f(): pass");
    assert_string_equal(n, "solution.py");
    free(n);
    cJSON_AddStringToObject(task, "answer_file", "src/lib.rs");
    n = val__answer_name(&in, "");
    assert_string_equal(n, "src/lib.rs");
    free(n);
    cJSON_Delete(task);
}

static void task_files_put_context_then_prelude_answer_then_readonly_tests(void **state)
{
    (void)state;
    cJSON *task =
        cJSON_Parse("{\"files\": {\"solution.py\": \"import math\", \"util.py\": \"X = 1\\n\","
                    " \"test_a.py\": \"shadowed\"},"
                    " \"tests\": {\"files\": {\"test_a.py\": \"assert True\\n\"}}}");
    val_input in = {.language = "python", .task = task};
    val__files f;
    char err[256];
    assert_int_equal(val__task_files(&in, "y = math.pi", 1, &f, err, sizeof err), 0);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.answer_name, "solution.py");
    assert_string_equal(f.v[0].path, "util.py");
    assert_false(f.v[0].readonly);
    assert_string_equal(f.v[1].path, "solution.py");
    assert_string_equal(f.v[1].data, "import math\ny = math.pi\n");
    assert_string_equal(f.v[2].path, "test_a.py");
    assert_string_equal(f.v[2].data, "assert True\n");
    assert_true(f.v[2].readonly);
    val__files_release(&f);
    /* Without tests (the compile step) only context and answer go in. */
    assert_int_equal(val__task_files(&in, "y = 1", 0, &f, err, sizeof err), 0);
    assert_int_equal(f.n, 3); /* util.py, test_a.py as context, solution.py */
    val__files_release(&f);
    cJSON_Delete(task);

    static const char *const bad[] = {
        "{\"files\": {\"../x.py\": \"\"}}",
        "{\"files\": {\"a\\\\b\": \"\"}}",
        "{\"files\": {\"a\\nb\": \"\"}}",
        "{\"files\": [1]}",
        "{\"files\": {\"a\": 1}}",
        "{\"answer_file\": \"/etc/passwd\"}",
        "{\"tests\": {\"files\": {\"/abs\": \"x\"}}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        task = cJSON_Parse(bad[i]);
        if (!task)
            fail_msg("bad fixture %s", bad[i]);
        in.task = task;
        if (val__task_files(&in, "x", 1, &f, err, sizeof err) == 0)
            fail_msg("accepted %s", bad[i]);
        cJSON_Delete(task);
    }
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
    assert_null(strchr(v.evidence, 0xff));
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
    run_one("syntax", "c", "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n", NULL,
            &s);
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

/*
 * One valid and one broken program per language, with where the first error
 * is (line:col as editors count) and a fragment of the quoted line.
 */
static const struct {
    const char *lang;
    const char *good;
    const char *bad;
    const char *where;
    const char *quote;
} syntax_cases[] = {
    {"cpp",
     "#include <vector>\ntemplate <typename T> T sum(const std::vector<T>& v) {\n"
     "    T s{}; for (auto& x : v) s += x; return s;\n}\n",
     "int f() {\n    return 1 +;\n}\n", "line 2:", "return 1 +;"},
    {"typescript",
     "interface P { x: number }\nexport function f(p: P): number { return p.x as number; }\n",
     "function f(a: number {\n  return a;\n}\n", "line 1:", "function f(a: number {"},
    {"tsx", "export const A = (p: {n: string}) => <div className=\"a\">{p.n}</div>;\n",
     "const A = () => <div>;\n", "line 1:", "<div>"},
    {"go", "package main\n\nimport \"fmt\"\n\nfunc main() {\n\tfmt.Println(\"hi\")\n}\n",
     "package main\n\nfunc main() {\n\tx := \n}\n", "line 4:", "x :="},
    {"rust", "pub fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n",
     "pub fn add(a: i32, b: i32) -> i32 {\n    let x = ;\n    a + b\n}\n", "line 2:", "let x = ;"},
    {"java", "public class Solution {\n    static int add(int a, int b) { return a + b; }\n}\n",
     "public class Solution {\n    int add(int a, int b) { return a + }\n}\n",
     "line 2:", "return a +"},
    {"json", "{\"a\": [1, 2.5, true, null], \"b\": {\"c\": \"d\"}}\n", "{\"a\": [1, 2,, 3]}\n",
     "line 1:", "[1, 2,, 3]"},
    {"bash", "#!/bin/bash\nfor f in *.txt; do\n  echo \"$f\"\ndone\n",
     "if [ -f x ]; then\n  echo hi\n", "line 1:1", "if [ -f x ]; then"},
    {"python", "def f(x):\n    return x\n", "def f(x)\n    return x\n", "line 1:", "def f(x)"},
    {"c", "int f(void) { return 1; }\n", "int f(void) { return 1 }\n", "line 1:", "int f(void)"},
    {"javascript", "const f = (a) => a * 2;\n", "const f = (a) => a *;\n", "line 1:", "const f"},
};

static void syntax_every_language_passes_valid_and_locates_error(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof syntax_cases / sizeof syntax_cases[0]; i++) {
        seen s;
        run_one("syntax", syntax_cases[i].lang, syntax_cases[i].good, NULL, &s);
        if (!s.v.pass)
            fail_msg("%s: valid code failed: %s\n%s", syntax_cases[i].lang, s.v.message,
                     s.v.evidence);
        seen_clear(&s);
        run_one("syntax", syntax_cases[i].lang, syntax_cases[i].bad, NULL, &s);
        if (s.v.pass)
            fail_msg("%s: broken code passed", syntax_cases[i].lang);
        assert_string_equal(s.v.reason, "syntax_error");
        assert_contains(s.v.message, syntax_cases[i].where);
        assert_contains(s.v.evidence, "(span ");
        assert_contains(s.v.evidence, syntax_cases[i].quote);
        seen_clear(&s);
    }
}

static void syntax_aliases_reach_the_same_grammar(void **state)
{
    (void)state;
    static const char *const ok[][2] = {
        {"py", "x = 1\n"},       {"js", "let a = 1;\n"},    {"ts", "let a: number = 1;\n"},
        {"c++", "int x = 1;\n"}, {"golang", "package p\n"}, {"sh", "echo hi\n"},
        {"rs", "fn f() {}\n"},   {"JSON", "[1]\n"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        seen s;
        run_one("syntax", ok[i][0], ok[i][1], NULL, &s);
        if (!s.v.pass)
            fail_msg("%s: %s", ok[i][0], s.v.message);
        seen_clear(&s);
    }
    /* TypeScript syntax is not JavaScript: the alias picks the TypeScript grammar. */
    seen s;
    run_one("syntax", "js", "let a: number = 1;\n", NULL, &s);
    assert_false(s.v.pass);
    seen_clear(&s);
}

/* Valid C that tree-sitter cannot parse without the preprocessor. */
static const char *macro_c = "#define BEGIN {\n#define END }\nint f(void) BEGIN return 1; END\n";

static void syntax_c_error_is_advisory_only_when_compile_follows(void **state)
{
    (void)state;
    seen s;
    /* Alone, syntax fails it. */
    run_one("syntax", "c", macro_c, NULL, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "syntax_error");
    seen_clear(&s);

    /* Flagged advisory: the verdict passes and the note says what was found and why. */
    val_input in = {
        .task_id = "t", .kind = "code", .language = "cpp", .answer = macro_c, .syntax_advisory = 1};
    memset(&s, 0, sizeof s);
    const char *names[] = {"syntax"};
    assert_int_equal(val_chain_start(NULL, names, 1, &in, on_done, &s), 0);
    assert_true(s.v.pass);
    assert_contains(s.v.note, "advisory");
    assert_contains(s.v.note, "line 3:");
    assert_contains(s.v.note, "compile step that follows decides");
    seen_clear(&s);

    /* Advisory never applies to languages without a preprocessor. */
    in.language = "python";
    in.answer = "def (:\n";
    memset(&s, 0, sizeof s);
    assert_int_equal(val_chain_start(NULL, names, 1, &in, on_done, &s), 0);
    assert_false(s.v.pass);
    seen_clear(&s);

    /*
     * The chain flags it when compile follows. Without an env, compile cannot
     * start its sandbox, so the chain ends there, carrying syntax's note.
     */
    const char *chain[] = {"syntax", "compile"};
    val_input c = {.task_id = "t", .kind = "code", .language = "c", .answer = macro_c};
    memset(&s, 0, sizeof s);
    assert_int_equal(val_chain_start(NULL, chain, 2, &c, on_done, &s), 0);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.v.validator, "compile");
    assert_contains(s.v.note, "advisory");
    assert_int_equal(c.syntax_advisory, 0); /* the caller's input is left alone */
    seen_clear(&s);
}

static void syntax_parses_a_large_input_without_error(void **state)
{
    (void)state;
    /* About 1 MB of valid Python: the parser and the error walk scale. */
    size_t n = 20000;
    char *big = malloc(n * 48 + 1);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(big + len, "def f%06zu(x):\n    return x * %zu + 1\n\n", i, i);
    seen s;
    run_one("syntax", "python", big, NULL, &s);
    assert_true(s.v.pass);
    seen_clear(&s);
    strcpy(big + len, "def broken(:\n");
    run_one("syntax", "python", big, NULL, &s);
    assert_false(s.v.pass);
    assert_contains(s.v.message, "line 60001:");
    seen_clear(&s);
    free(big);
}

/* ---- syntax: hostile code gets a verdict, never the worker's death ---------------- */

static void syntax_gives_deeply_nested_code_a_verdict(void **state)
{
    (void)state;
    /* x = ((((... 100,000 deep: libtree-sitter frees an invalid pointer on it in-process. */
    static const char *const langs[] = {"python", "javascript", "c", "go", "bash"};
    static const char opens[] = "([{";
    for (size_t l = 0; l < sizeof langs / sizeof langs[0]; l++)
        for (int o = 0; o < 3; o++) {
            size_t n = 100000;
            char *code = malloc(n + 8);
            memcpy(code, "x = ", 4);
            memset(code + 4, opens[o], n);
            code[4 + n] = '\0';
            seen s;
            run_one("syntax", langs[l], code, NULL, &s);
            assert_false(s.v.pass);
            assert_string_equal(s.v.reason, "syntax_error");
            assert_contains(s.v.message, "nested 100000 deep");
            seen_clear(&s);
            free(code);
        }
    /* Deep but within the bound, and deep without brackets: parsed (in the child) and judged. */
    wk_buf b;
    wk_buf_init(&b, 1u << 20);
    wk_buf_appendf(&b, "x = ");
    for (int i = 0; i < 1500; i++)
        wk_buf_append(&b, "(", 1);
    wk_buf_append(&b, "1", 1);
    for (int i = 0; i < 1500; i++)
        wk_buf_append(&b, ")", 1);
    seen s;
    run_one("syntax", "python", b.buf, NULL, &s);
    assert_true(s.v.pass);
    seen_clear(&s);
    wk_buf_release(&b);
    wk_buf_init(&b, 1u << 20);
    wk_buf_appendf(&b, "x = ");
    for (int i = 0; i < 100000; i++)
        wk_buf_append(&b, "-", 1);
    wk_buf_append(&b, "1", 1);
    run_one("syntax", "python", b.buf, NULL, &s);
    assert_true(s.v.pass);
    seen_clear(&s);
    wk_buf_release(&b);
}

static void syntax_parser_crash_is_a_verdict_not_the_workers_death(void **state)
{
    (void)state;
    setenv("CASCADE_FAULT_PARSER_CRASH", "1", 1);
    seen s;
    run_one("syntax", "python", "def f():\n    return 1\n", NULL, &s);
    unsetenv("CASCADE_FAULT_PARSER_CRASH");
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "validator_crash");
    assert_contains(s.v.message, "crashed");
    seen_clear(&s);
    /* And the next parse, in a fresh child, is fine. */
    run_one("syntax", "python", "def f():\n    return 1\n", NULL, &s);
    assert_true(s.v.pass);
    seen_clear(&s);
}

/* ---- compile: the choices that need no process ----------------------------------- */

static void compile_availability_follows_installed_programs_and_overrides(void **state)
{
    (void)state;
    char why[512];
    /* python3 and gcc are part of the sandbox's system (make deps installs them). */
    assert_true(val_compile_available("python", NULL, why, sizeof why));
    assert_true(val_compile_available("c", NULL, why, sizeof why));
    assert_true(val_compile_available("sh", NULL, why, sizeof why));
    assert_false(val_compile_available("json", NULL, why, sizeof why));
    assert_contains(why, "no compile command");
    assert_false(val_compile_available("cobol", NULL, why, sizeof why));

    cJSON *map = cJSON_Parse("{\"C\": [\"no-such-compiler-xyz\", \"{file}\"],"
                             " \"cobol\": [\"/usr/bin/true\"], \"c++\": [],"
                             " \"rust\": [\"/root/.cargo/bin/rustc\"]}");
    assert_false(val_compile_available("c", map, why, sizeof why));
    assert_contains(why, "no-such-compiler-xyz");
    /* A language we have no grammar for can still be compiled by an override. */
    assert_true(val_compile_available("cobol", map, why, sizeof why));
    assert_false(val_compile_available("cpp", map, why, sizeof why));
    assert_contains(why, "array of 1 to");
    /* Outside /usr and /etc the sandbox cannot see it. */
    assert_false(val_compile_available("rs", map, why, sizeof why));
    cJSON_Delete(map);
}

static void compile_without_compiler_passes_with_note_and_json_has_nothing_to_do(void **state)
{
    (void)state;
    char why[512];
    cJSON *map = cJSON_Parse("{\"typescript\": [\"no-such-tsc-xyz\", \"{file}\"]}");
    val_input in = {.task_id = "t",
                    .kind = "code",
                    .language = "ts",
                    .answer = "let a: number = 1;",
                    .compile_commands = map};
    assert_false(val_compile_available("ts", map, why, sizeof why));
    const char *names[] = {"syntax", "compile"};
    seen s = {0};
    assert_int_equal(val_chain_start(NULL, names, 2, &in, on_done, &s), 0);
    assert_int_equal(s.calls, 1);
    assert_true(s.v.pass);
    assert_contains(s.v.note, "compile skipped, not checked");
    assert_contains(s.v.note, "no-such-tsc-xyz");
    seen_clear(&s);
    cJSON_Delete(map);

    in.language = "json";
    in.compile_commands = NULL;
    in.answer = "{\"a\": 1}";
    memset(&s, 0, sizeof s);
    assert_int_equal(val_chain_start(NULL, names, 2, &in, on_done, &s), 0);
    assert_true(s.v.pass);
    assert_contains(s.v.note, "nothing to compile for json");
    seen_clear(&s);

    in.language = "cobol";
    memset(&s, 0, sizeof s);
    const char *just[] = {"compile"};
    assert_int_equal(val_chain_start(NULL, just, 1, &in, on_done, &s), 0);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "unsupported");
    seen_clear(&s);
}

static void verdict_note_is_one_capped_line_and_cleared_by_pass_and_fail(void **state)
{
    (void)state;
    val_verdict v = {0};
    char big[1000];
    memset(big, 'n', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    val_verdict_note(&v, big);
    assert_true(strlen(v.note) <= VAL_MESSAGE_MAX);
    val_verdict_note(&v, "a\nb\x1b");
    assert_null(strchr(v.note, '\n'));
    assert_null(strchr(v.note, '\x1b'));
    val_verdict_pass(&v);
    assert_null(v.note);
    val_verdict_note(&v, "x");
    val_verdict_fail(&v, "tests", "failed", "m", NULL);
    assert_null(v.note);
    val_verdict_note(&v, NULL);
    assert_null(v.note);
    val_verdict_clear(&v);
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
    assert_string_equal(s.v.message,
                        "/label: \"bugg\" is not one of [\"bug\",\"feature\",\"question\"]");
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
        {"{\"type\": \"object\", \"dependencies\": {}}", "\"dependencies\""},
        {"{\"properties\": {\"a\": {\"pattern\": \"(?=x)\"}}}", "\"pattern\" at /properties/a"},
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
    check_schema("{\"type\": \"object\", \"dependencies\": {}}", "{}", &s);
    assert_string_equal(s.v.reason, "unsupported");
    assert_contains(s.v.message, "dependencies");
    seen_clear(&s);
}

/* Each validator's table entry says what it needs; the message names who runs it. */
static void check_task_asks_each_validator_in_order(void **state)
{
    (void)state;
    char why[512];
    const char *const tests[] = {"syntax", "compile", "tests"};
    /* Not given at all (WK_ENOTFOUND), or given but unusable (WK_EINVAL). */
    const struct {
        const char *task;
        int rc;
    } bad_commands[] = {
        {"{\"language\": \"python\"}", WK_ENOTFOUND},
        {"{\"language\": \"python\", \"tests\": {}}", WK_ENOTFOUND},
        {"{\"language\": \"python\", \"tests\": {\"command\": \"pytest\"}}", WK_ENOTFOUND},
        {"{\"language\": \"python\", \"tests\": {\"command\": []}}", WK_EINVAL},
        {"{\"language\": \"python\", \"tests\": {\"command\": [\"pytest\", 1]}}", WK_EINVAL},
        {"{\"language\": \"python\", \"tests\": {\"command\": [\"\", \"x\"]}}", WK_EINVAL},
    };
    for (size_t i = 0; i < sizeof bad_commands / sizeof bad_commands[0]; i++) {
        cJSON *t = cJSON_Parse(bad_commands[i].task);
        why[0] = '\0';
        assert_int_equal(val_check_task(tests, 3, t, NULL, "cascade fast", why, sizeof why),
                         bad_commands[i].rc);
        assert_string_equal(why, "cascade fast runs tests but tests.command is missing or not an "
                                 "array of strings (at most 256, the first a program name)");
        cJSON_Delete(t);
    }
    cJSON *ok =
        cJSON_Parse("{\"language\": \"py\", \"tests\": {\"command\": [\"pytest\", \"-q\"]}}");
    assert_int_equal(val_check_task(tests, 3, ok, NULL, "cascade fast", why, sizeof why), 0);
    /* syntax: a language with a grammar. */
    cJSON *cobol = cJSON_Parse("{\"language\": \"cobol\", \"tests\": {\"command\": [\"x\"]}}");
    assert_int_equal(val_check_task(tests, 3, cobol, NULL, "cascade fast", why, sizeof why),
                     WK_EINVAL);
    assert_non_null(
        strstr(why, "cascade fast checks syntax but language \"cobol\" has no grammar"));
    cJSON_Delete(cobol);

    /* schema: the task's or the cascade's, whichever the caller passes. */
    const char *const schema[] = {"schema"};
    assert_int_equal(val_check_task(schema, 1, ok, NULL, "cascade json", why, sizeof why),
                     WK_ENOTFOUND);
    assert_string_equal(why, "cascade json checks a schema but neither the task nor the cascade "
                             "has one");
    cJSON *s = cJSON_Parse("{\"type\": \"object\"}");
    assert_int_equal(val_check_task(schema, 1, ok, s, "cascade json", why, sizeof why), 0);

    /* patch: a repo.path, and a string base when one is given. */
    const char *const patch[] = {"patch", "tests"};
    const struct {
        const char *task;
        int rc;
    } bad_repos[] = {
        {"{\"tests\": {\"command\": [\"t\"]}}", WK_ENOTFOUND},
        {"{\"repo\": \"/r\", \"tests\": {\"command\": [\"t\"]}}", WK_EINVAL},
        {"{\"repo\": {\"base\": \"HEAD\"}, \"tests\": {\"command\": [\"t\"]}}", WK_EINVAL},
        {"{\"repo\": {\"path\": \"/r\", \"base\": 1}, \"tests\": {\"command\": [\"t\"]}}",
         WK_EINVAL},
    };
    for (size_t i = 0; i < sizeof bad_repos / sizeof bad_repos[0]; i++) {
        cJSON *t = cJSON_Parse(bad_repos[i].task);
        assert_int_equal(val_check_task(patch, 2, t, NULL, "cascade p", why, sizeof why),
                         bad_repos[i].rc);
        assert_non_null(strstr(why, "cascade p applies patches but the task has no \"repo\""));
        cJSON_Delete(t);
    }
    cJSON *r = cJSON_Parse("{\"repo\": {\"path\": \"/r\"}, \"tests\": {\"command\": [\"t\"]}}");
    assert_int_equal(val_check_task(patch, 2, r, NULL, "cascade p", why, sizeof why), 0);
    /* The first unmet need is the one named: patch's before tests' here. */
    cJSON *none = cJSON_Parse("{}");
    assert_int_equal(val_check_task(patch, 2, none, NULL, "cascade p", why, sizeof why),
                     WK_ENOTFOUND);
    assert_non_null(strstr(why, "applies patches"));
    /* Validators that need nothing, and unknown names, pass the check. */
    const char *const plain[] = {"compile", "no-such-validator"};
    assert_int_equal(val_check_task(plain, 2, none, NULL, "cascade x", why, sizeof why), 0);
    cJSON_Delete(none);
    cJSON_Delete(r);
    cJSON_Delete(s);
    cJSON_Delete(ok);
}

static void needs_sandbox_only_for_validators_that_run_processes(void **state)
{
    (void)state;
    const char *const cpu[] = {"syntax", "schema", "patch", "unknown"};
    assert_int_equal(val_needs_sandbox(cpu, 4), 0);
    const char *const compile[] = {"syntax", "compile"};
    assert_int_equal(val_needs_sandbox(compile, 2), 1);
    const char *const tests[] = {"patch", "tests"};
    assert_int_equal(val_needs_sandbox(tests, 2), 1);
    assert_int_equal(val_needs_sandbox(tests, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(extract_takes_fenced_block_with_language_tag),
        cmocka_unit_test(extract_takes_fenced_block_without_tag),
        cmocka_unit_test(extract_takes_the_last_of_several_equal_blocks),
        cmocka_unit_test(extract_handles_answers_as_models_write_them),
        cmocka_unit_test(extract_unclosed_fence_runs_to_end),
        cmocka_unit_test(extract_without_fence_trims_whole_answer),
        cmocka_unit_test(extract_keeps_indent_of_first_line_and_inline_close),
        cmocka_unit_test(lang_ext_maps_known_languages_and_defaults_to_txt),
        cmocka_unit_test(lang_aliases_map_to_canonical_names),
        cmocka_unit_test(sha256_matches_fips_vectors),
        cmocka_unit_test(answer_name_follows_task_then_java_public_class),
        cmocka_unit_test(task_files_put_context_then_prelude_answer_then_readonly_tests),
        cmocka_unit_test(verdict_note_is_one_capped_line_and_cleared_by_pass_and_fail),
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
        cmocka_unit_test(syntax_every_language_passes_valid_and_locates_error),
        cmocka_unit_test(syntax_aliases_reach_the_same_grammar),
        cmocka_unit_test(syntax_c_error_is_advisory_only_when_compile_follows),
        cmocka_unit_test(syntax_parses_a_large_input_without_error),
        cmocka_unit_test(syntax_gives_deeply_nested_code_a_verdict),
        cmocka_unit_test(syntax_parser_crash_is_a_verdict_not_the_workers_death),
        cmocka_unit_test(compile_availability_follows_installed_programs_and_overrides),
        cmocka_unit_test(compile_without_compiler_passes_with_note_and_json_has_nothing_to_do),
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
        cmocka_unit_test(check_task_asks_each_validator_in_order),
        cmocka_unit_test(needs_sandbox_only_for_validators_that_run_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
