/*
 * Tests for the compile validator in the sandbox: per language, a program
 * that compiles passes and one that does not fails with compile_error, the
 * compiler's first error as the message and its first lines, paths relative,
 * as evidence; a cascade's override replaces the default command; languages
 * whose compiler is not installed pass with a note instead; and a C syntax
 * error that tree-sitter reports but gcc accepts is advisory in a chain.
 */
#include "sandbox_fixture.h"

static const char *const compile_only[] = {"compile"};

/* A code task with no tests: compile needs only the answer (and any context files). */
#define CODE_TASK "{\"tests\": {}}"

static const struct {
    const char *lang;
    const char *good;
    const char *bad;
    const char *message;  /* in the one-line message of the failure */
    const char *evidence; /* in the evidence */
} cases[] = {
    {"python", "def f(x):\n    return x + 1\n", "def f(x):\n    return (x + 1\n", "SyntaxError",
     "solution.py\", line"},
    {"c", "#include <stdio.h>\nint f(int x) { return x + 1; }\n",
     "int f(int x) { return y + 1; }\n", "undeclared (first use", "solution.c:1:"},
    {"cpp", "#include <vector>\nint f(std::vector<int> v) { return v.size(); }\n",
     "#include <vector>\nint f(std::vector<int> v) { return v.length(); }\n", "has no member named",
     "solution.cpp:2:"},
    {"javascript", "function f(a) { return a + 1; }\nmodule.exports = { f };\n",
     "function f(a) { return a +; }\n", "SyntaxError", "solution.js:1"},
    {"java", "public class Adder {\n    static int add(int a, int b) { return a + b; }\n}\n",
     "public class Adder {\n    static int add(int a, int b) { return a + c; }\n}\n",
     "error: cannot find symbol", "Adder.java:2:"},
    {"bash", "for f in a b; do\n  echo \"$f\"\ndone\n", "for f in a b; do\n  echo \"$f\"\n",
     "syntax error", "solution.sh: line"},
};

static void compile_passes_good_and_fails_bad_code_per_language(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char why[256];
        if (!val_compile_available(cases[i].lang, NULL, why, sizeof why)) {
            /* make deps installs all but the JDK, which is optional. */
            if (strcmp(cases[i].lang, "java") == 0) {
                print_message("java skipped: %s\n", why);
                continue;
            }
            fail_msg("%s: %s (make deps installs it)", cases[i].lang, why);
        }
        outcome o;
        run_chain_task(NULL, compile_only, 1, cases[i].lang, CODE_TASK, cases[i].good, NULL, &o);
        if (!o.v.pass)
            fail_msg("%s: good code failed: %s\n%s", cases[i].lang, o.v.message, o.v.evidence);
        assert_null(o.v.note);
        outcome_release(&o);

        run_chain_task(NULL, compile_only, 1, cases[i].lang, CODE_TASK, cases[i].bad, NULL, &o);
        assert_verdict(&o, "compile_error");
        assert_string_equal(o.v.validator, "compile");
        assert_contains(o.v.message, cases[i].message);
        assert_contains(o.v.evidence, cases[i].evidence);
        assert_null(strstr(o.v.evidence, "/box/"));
        outcome_release(&o);
    }
}

static void compile_sees_the_task_context_files(void **state)
{
    (void)state;
    outcome o;
    /* The header comes with the task; the answer includes it. */
    run_chain_task(NULL, compile_only, 1, "c",
                   "{\"files\": {\"point.h\": \"struct point { int x, y; };\\n\"}}",
                   "#include \"point.h\"\nint sum(struct point p) { return p.x + p.y; }\n", NULL,
                   &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);
}

static void compile_override_replaces_the_default_command(void **state)
{
    (void)state;
    outcome o;
    /* Valid C99, but C89 with -pedantic-errors refuses // comments. */
    const char *answer = "int f(void) { return 1; } // fine in C99\n";
    run_chain_task(NULL, compile_only, 1, "c", CODE_TASK, answer, NULL, &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);
    run_chain_task(NULL, compile_only, 1, "c", CODE_TASK, answer,
                   "{\"c\": [\"gcc\", \"-std=c89\", \"-pedantic-errors\", \"-fsyntax-only\","
                   " \"{file}\"]}",
                   &o);
    assert_verdict(&o, "compile_error");
    assert_contains(o.v.evidence, "C++ style comments");
    outcome_release(&o);
    /* A missing program in an override is a skip with a note, like a missing default. */
    run_chain_task(NULL, compile_only, 1, "c", CODE_TASK, answer,
                   "{\"c\": [\"no-such-cc-xyz\", \"{file}\"]}", &o);
    assert_verdict(&o, NULL);
    assert_contains(o.v.note, "no-such-cc-xyz");
    outcome_release(&o);
}

static void languages_without_their_compiler_pass_with_a_note(void **state)
{
    (void)state;
    static const char *const langs[][2] = {
        {"typescript", "let a: number = 1;\n"},
        {"go", "package main\nfunc main() {}\n"},
        {"rust", "pub fn f() -> i32 { 1 }\n"},
    };
    for (size_t i = 0; i < sizeof langs / sizeof langs[0]; i++) {
        char why[256];
        outcome o;
        run_chain_task(NULL, compile_only, 1, langs[i][0], CODE_TASK, langs[i][1], NULL, &o);
        assert_verdict(&o, NULL);
        if (val_compile_available(langs[i][0], NULL, why, sizeof why)) {
            /* Installed here: it really compiled. */
            assert_null(o.v.note);
        } else {
            assert_contains(o.v.note, "compile skipped, not checked");
            assert_contains(o.v.note, "Debian package");
        }
        outcome_release(&o);
    }
}

static void c_syntax_error_is_advisory_when_gcc_accepts_it(void **state)
{
    (void)state;
    /* tree-sitter does not expand macros; gcc does, and this is valid C. */
    const char *answer = "#define BEGIN {\n#define END }\nint f(void) BEGIN return 1; END\n";
    static const char *const chain[] = {"syntax", "compile"};
    outcome o;
    run_chain_task(NULL, chain, 2, "c", CODE_TASK, answer, NULL, &o);
    assert_verdict(&o, NULL);
    assert_contains(o.v.note, "advisory");
    outcome_release(&o);
    /* A real error still fails, at the compiler, with the advisory note alongside. */
    run_chain_task(NULL, chain, 2, "c", CODE_TASK, "int f(void) { return 1 }\n", NULL, &o);
    assert_verdict(&o, "compile_error");
    assert_contains(o.v.message, "solution.c:1:23: error: expected");
    assert_contains(o.v.note, "advisory");
    outcome_release(&o);
    /* Python has no preprocessor: its syntax errors stay errors even before compile. */
    run_chain_task(NULL, chain, 2, "python", CODE_TASK, "def f(:\n", NULL, &o);
    assert_verdict(&o, "syntax_error");
    outcome_release(&o);
}

int main(void)
{
    if (fx_require_bwrap("test_compile"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(compile_passes_good_and_fails_bad_code_per_language),
        cmocka_unit_test(compile_sees_the_task_context_files),
        cmocka_unit_test(compile_override_replaces_the_default_command),
        cmocka_unit_test(languages_without_their_compiler_pass_with_a_note),
        cmocka_unit_test(c_syntax_error_is_advisory_when_gcc_accepts_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
