/*
 * Tests for the tests validator and the sandbox under it: real bubblewrap
 * runs of small Python, C and JavaScript tasks, each proving one property
 * (pass, fail with evidence, CPU limit, output cap, crashes, a failed
 * console.assert, test files that cannot be changed and are checked by hash,
 * the uid pool, bad paths, the FIFO of slots, the hostdir copy, the sweep of
 * old task directories) and that nothing of a run is left behind. The
 * attacks a model's answer might make are in test_containment.c.
 */
#include "sandbox_fixture.h"

#include "harness.h"

#include <dirent.h>
#include <git2.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <utime.h>

/* ---- python ------------------------------------------------------------------- */

static void python_passing_test_passes_and_keeps_prelude(void **state)
{
    (void)state;
    outcome o;
    /* The prelude imports math; the answer uses it without importing. */
    run_task(NULL, "python",
             PY_TASK("{\"solution.py\": \"import math\\n\"}",
                     "from solution import area\\nassert abs(area(1) - 3.14159) < 1e-3\\n"
                     "print('ok')\\n"),
             "```python\ndef area(r):\n    return math.pi * r * r\n```", &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);
}

static void python_failing_test_reports_assertion_in_evidence(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python",
             PY_TASK("{}", "from solution import add\\n"
                           "assert add(2, 3) == 5, 'add(2, 3) should be 5'\\n"),
             "def add(a, b):\n    return a - b\n", &o);
    assert_verdict(&o, "failed");
    assert_string_equal(o.v.validator, "tests");
    assert_contains(o.v.evidence, "AssertionError: add(2, 3) should be 5");
    assert_contains(o.v.message, "AssertionError: add(2, 3) should be 5");
    /* Paths are shown relative to the task directory, and the sandbox's report is not shown. */
    assert_contains(o.v.evidence, "\"test_solution.py\"");
    assert_null(strstr(o.v.evidence, "/box/"));
    assert_null(strstr(o.v.evidence, "@@cascade"));
    outcome_release(&o);
}

static void cpu_bound_loop_hits_cpu_limit_as_timeout(void **state)
{
    (void)state;
    val_limits l;
    val_limits_default(&l);
    l.cpu_s = 1;
    l.timeout_ms = 20000;
    outcome o;
    run_task(&l, "python", PY_TASK("{}", "import solution\\n"), "while True:\n    pass\n", &o);
    assert_verdict(&o, "timeout");
    assert_contains(o.v.message, "CPU");
    /* The soft limit (SIGXCPU) stopped it, well before the wall clock. */
    assert_true(o.took_ms < 10000);
    outcome_release(&o);
}

static void output_flood_is_stopped_at_cap(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python", PY_TASK("{}", "while True:\\n    print('x' * 100)\\n"), "x = 1\n", &o);
    assert_verdict(&o, "output_limit");
    assert_contains(o.v.evidence, "xxxxxxxx");
    outcome_release(&o);
}

static void output_just_over_cap_without_kill_is_still_output_limit(void **state)
{
    (void)state;
    val_limits l;
    val_limits_default(&l);
    l.output_cap = 1000;
    outcome o;
    /* 1010 bytes, then exit 0: within the report's slack, so not killed, yet over the cap. */
    run_task(&l, "python", PY_TASK("{}", "print('y' * 1009)\\n"), "x = 1\n", &o);
    assert_verdict(&o, "output_limit");
    outcome_release(&o);
}

static void segfault_is_reported_crashed(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python",
             PY_TASK("{}", "import os, signal\\nos.kill(os.getpid(), signal.SIGSEGV)\\n"),
             "x = 1\n", &o);
    assert_verdict(&o, "crashed");
    assert_contains(o.v.message, "SIGSEGV");
    outcome_release(&o);
}

/* ---- test files ------------------------------------------------------------------ */

static void test_files_cannot_be_written_renamed_or_removed(void **state)
{
    (void)state;
    outcome o;
    /* The answer tries every way at its test file at import; each must be refused. */
    run_task(NULL, "python",
             PY_TASK("{}", "import solution\\nassert solution.refused == 4, solution.refused\\n"
                           "print('ok')\\n"),
             "import os\nrefused = 0\n"
             "for act in (lambda: open('test_solution.py', 'a').write('x'),\n"
             "            lambda: os.rename('test_solution.py', 'moved.py'),\n"
             "            lambda: os.unlink('test_solution.py'),\n"
             "            lambda: os.chmod('test_solution.py', 0o777)):\n"
             "    try:\n        act()\n    except OSError:\n        refused += 1\n",
             &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);
}

static void test_file_replaced_through_its_directory_fails_tests_modified(void **state)
{
    (void)state;
    outcome o;
    /*
     * A read-only mount cannot be changed, but the directory holding it can be
     * renamed away and a forged test put in its place: the hash check catches it.
     */
    run_task(NULL, "python",
             "{\"tests\": {\"files\": {\"t/test_x.py\": \"import solution\\nassert False\\n\"},"
             " \"command\": [\"sh\", \"-c\", \"python3 -c 'import solution' && python3 "
             "t/test_x.py\"]}}",
             "import os\nif os.path.isdir('t') and not os.path.isdir('old'):\n"
             "    os.rename('t', 'old')\n    os.mkdir('t')\n"
             "    open('t/test_x.py', 'w').write('print(1)\\n')\n",
             &o);
    assert_verdict(&o, "tests_modified");
    assert_contains(o.v.message, "t/test_x.py");
    outcome_release(&o);
}

static void test_files_are_checked_after_a_passing_run(void **state)
{
    (void)state;
    outcome o;
    /* Several test files, one in a subdirectory, all unchanged: a clean pass. */
    run_task(NULL, "python",
             "{\"tests\": {\"files\": {\"test_a.py\": \"import solution\\n\","
             " \"sub/test_b.py\": \"assert 1\\n\", \"run.sh\": \"#!/bin/sh\\nexec python3 "
             "test_a.py\\n\"}, \"command\": [\"./run.sh\"]}}",
             "x = 1\n", &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);
}

/* ---- other languages ------------------------------------------------------------ */

static void c_task_compiles_and_runs_with_gcc_inside(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "c",
             "{\"tests\": {\"files\": {\"test_main.c\": \"#include <assert.h>\\n#include "
             "<stdio.h>\\n#include \\\"solution.c\\\"\\nint main(void) { assert(add(2, 3) == 5); "
             "puts(\\\"ok\\\"); return 0; }\\n\"},"
             " \"command\": [\"sh\", \"-c\", \"gcc -Wall -o /tmp/t test_main.c && /tmp/t\"]}}",
             "```c\nint add(int a, int b) { return a + b; }\n```", &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);

    /* A compile error is a failure whose evidence is gcc's message. */
    run_task(NULL, "c",
             "{\"tests\": {\"files\": {\"test_main.c\": \"#include \\\"solution.c\\\"\\n"
             "int main(void) { return add(2, 3) != 5; }\\n\"},"
             " \"command\": [\"sh\", \"-c\", \"gcc -o /tmp/t test_main.c && /tmp/t\"]}}",
             "int add(int a, int b) { return a + c; }", &o);
    assert_verdict(&o, "failed");
    assert_contains(o.v.evidence, "solution.c");
    assert_contains(o.v.evidence, "error");
    outcome_release(&o);
}

#define JS_TASK(test)                                                                              \
    "{\"tests\": {\"files\": {\"test.js\": \"" test "\"}, \"command\": [\"node\", \"test.js\"]}}"

static void javascript_task_runs_under_node_inside(void **state)
{
    (void)state;
    outcome o;
    run_task(
        NULL, "javascript",
        JS_TASK("const assert = require('assert');\\n"
                "const { add } = require('./solution.js');\\nassert.strictEqual(add(2, 3), 5);\\n"
                "console.assert(add(1, 1) === 2, 'one and one');\\nconsole.log('ok');\\n"),
        "```javascript\nfunction add(a, b) { return a + b; }\nmodule.exports = { add };\n```", &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);
}

static void javascript_failed_console_assert_fails_the_test(void **state)
{
    (void)state;
    outcome o;
    /* node prints "Assertion failed" and exits 0; the sandbox's preload makes it fail. */
    run_task(NULL, "javascript",
             JS_TASK("const { add } = require('./solution.js');\\n"
                     "console.assert(add(2, 3) === 5, 'add(2, 3) should be 5');\\n"
                     "console.log('done');\\n"),
             "function add(a, b) { return a - b; }\nmodule.exports = { add };\n", &o);
    assert_verdict(&o, "failed");
    assert_contains(o.v.evidence, "Assertion failed: add(2, 3) should be 5");
    outcome_release(&o);

    /* Even when the test then exits 0 on purpose. */
    run_task(NULL, "javascript", JS_TASK("console.assert(1 === 2, 'nope');\\nprocess.exit(0);\\n"),
             "x = 1;\n", &o);
    assert_verdict(&o, "failed");
    outcome_release(&o);
}

static void java_task_compiles_and_runs_under_the_memory_limit(void **state)
{
    (void)state;
    char why[256];
    if (!val_compile_available("java", NULL, why, sizeof why))
        skip(); /* the JDK is optional: make deps does not install it */
    outcome o;
    /*
     * The JVM reserves more address space than RLIMIT_AS allows unless told
     * otherwise; the sandbox's JAVA_TOOL_OPTIONS does, and its notice is not
     * in the evidence.
     */
    const char *task =
        "{\"tests\": {\"files\": {\"Main.java\": \"public class Main { public static void "
        "main(String[] a) { if (Adder.add(2, 3) != 5) throw new AssertionError(\\\"add(2, 3) = "
        "\\\" "
        "+ Adder.add(2, 3)); System.out.println(\\\"ok\\\"); } }\\n\"},"
        " \"command\": [\"sh\", \"-c\", \"javac -d /tmp/c Main.java Adder.java && java -cp /tmp/c "
        "Main\"]}}";
    run_task(NULL, "java", task,
             "```java\npublic class Adder { static int add(int a, int b) { return a + b; } }\n```",
             &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);
    run_task(NULL, "java", task,
             "public class Adder { static int add(int a, int b) { return a * b; } }\n", &o);
    assert_verdict(&o, "failed");
    assert_contains(o.v.message, "AssertionError: add(2, 3) = 6");
    assert_null(strstr(o.v.evidence, "Picked up"));
    outcome_release(&o);
}

static void bash_task_runs_and_fails_on_its_exit_status(void **state)
{
    (void)state;
    outcome o;
    const char *task =
        "{\"tests\": {\"files\": {\"test.sh\": \". ./solution.sh\\n"
        "[ \\\"$(greet Ada)\\\" = 'Hello, Ada!' ] || { echo \\\"got: $(greet Ada)\\\"; "
        "exit 1; }\\n\"}, \"command\": [\"bash\", \"test.sh\"]}}";
    run_task(NULL, "bash", task, "greet() { echo \"Hello, $1!\"; }\n", &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);
    run_task(NULL, "bash", task, "greet() { echo \"Hi $1\"; }\n", &o);
    assert_verdict(&o, "failed");
    assert_contains(o.v.evidence, "got: Hi Ada");
    outcome_release(&o);
}

/* ---- after patch ------------------------------------------------------------------ */

static void check_git(int rc)
{
    if (rc < 0)
        fail_msg("libgit2: %s", git_error_last() ? git_error_last()->message : "?");
}

/* A repository holding calc.py (add is wrong) in one commit; its id goes into base. */
static void make_repo(const char *dir, char base[GIT_OID_HEXSZ + 1])
{
    git_libgit2_init();
    git_repository *r = NULL;
    check_git(git_repository_init(&r, dir, 0));
    char *path = wk_xasprintf("%s/calc.py", dir);
    FILE *f = fopen(path, "w");
    fputs("def add(a, b):\n    return a - b\n", f);
    fclose(f);
    free(path);
    git_index *idx = NULL;
    check_git(git_repository_index(&idx, r));
    check_git(git_index_add_bypath(idx, "calc.py"));
    check_git(git_index_write(idx));
    git_oid tree_id, commit_id;
    check_git(git_index_write_tree(&tree_id, idx));
    git_tree *tree = NULL;
    check_git(git_tree_lookup(&tree, r, &tree_id));
    git_signature *sig = NULL;
    check_git(git_signature_new(&sig, "test", "test@example.com", 1700000000, 0));
    check_git(git_commit_create_v(&commit_id, r, "HEAD", sig, sig, NULL, "base", tree, 0));
    git_oid_tostr(base, GIT_OID_HEXSZ + 1, &commit_id);
    git_signature_free(sig);
    git_tree_free(tree);
    git_index_free(idx);
    git_repository_free(r);
    git_libgit2_shutdown();
}

static void tests_after_patch_run_in_the_patched_tree(void **state)
{
    (void)state;
    char root[] = "/tmp/cascade-test-chain-XXXXXX";
    assert_non_null(mkdtemp(root));
    char base[GIT_OID_HEXSZ + 1];
    make_repo(root, base);
    char *task = wk_xasprintf(
        "{\"kind\": \"patch\", \"repo\": {\"path\": \"%s\", \"base\": \"%s\"},"
        " \"tests\": {\"files\": {\"test_calc.py\": \"from calc import add\\n"
        "assert add(2, 3) == 5, add(2, 3)\\n\"}, \"command\": [\"python3\", \"test_calc.py\"]}}",
        root, base);
    static const char *const names[] = {"patch", "tests"};
    const char *fix = "```diff\n--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n"
                      "-    return a - b\n+    return a + b\n```\n";
    const char *wrong = "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def add(a, b):\n"
                        "-    return a - b\n+    return a * b\n";
    outcome o;
    run_chain_task(NULL, names, 2, NULL, task, fix, NULL, &o);
    assert_verdict(&o, NULL);
    outcome_release(&o);
    run_chain_task(NULL, names, 2, NULL, task, wrong, NULL, &o);
    assert_verdict(&o, "failed");
    assert_string_equal(o.v.validator, "tests");
    assert_contains(o.v.message, "AssertionError: 6");
    outcome_release(&o);
    /* The chain removed the patched trees it asked for: nothing of ours is left in /tmp. */
    free(task);
    val__hostdir_remove(root);
}

/* ---- sandbox mechanics ------------------------------------------------------------ */

typedef struct uid_probe {
    const char *marker;
    unsigned long uids[8];
    int n;
} uid_probe;

/* Records the host uid of every process of the run (found by its marker). */
static void on_uid_probe(uv_timer_t *t)
{
    uid_probe *p = t->data;
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && p->n < 8) {
        char buf[8192];
        if (e->d_name[0] < '0' || e->d_name[0] > '9' ||
            fx_proc_read(e->d_name, "cmdline", buf, sizeof buf) <= 0 || !strstr(buf, p->marker))
            continue;
        if (fx_proc_read(e->d_name, "status", buf, sizeof buf) <= 0)
            continue;
        const char *u = strstr(buf, "\nUid:");
        if (u)
            p->uids[p->n++] = strtoul(u + 5, NULL, 10);
    }
    if (d)
        closedir(d);
    uv_close((uv_handle_t *)t, NULL);
}

static void sandbox_runs_as_a_pool_uid_mapped_to_nobody(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip(); /* the pool needs root to hand out uids */
    fixture *fx = fixture_new(NULL, 2);
    outcome o[2];
    uid_probe probe[2];
    uv_timer_t timer[2];
    /* Two at once: each has its own host uid, and inside both are nobody. */
    for (int i = 0; i < 2; i++) {
        start_task(fx, &o[i], "python",
                   PY_TASK("{}", "import os, time\\nassert os.getuid() == 65534\\n"
                                 "time.sleep(0.8)\\n"),
                   "x = 1\n");
        probe[i] = (uid_probe){.marker = o[i].marker};
        uv_timer_init(&fx->loop, &timer[i]);
        timer[i].data = &probe[i];
        uv_timer_start(&timer[i], on_uid_probe, 400, 0);
    }
    run_loop(fx);
    for (int i = 0; i < 2; i++) {
        assert_verdict(&o[i], NULL);
        assert_true(probe[i].n >= 1);
        for (int k = 0; k < probe[i].n; k++) {
            assert_true(probe[i].uids[k] >= fx_uid_base());
            assert_true(probe[i].uids[k] < fx_uid_base() + 2);
            assert_int_equal(probe[i].uids[k], probe[i].uids[0]);
        }
        assert_nothing_left(&o[i]);
        outcome_release(&o[i]);
    }
    assert_true(probe[0].uids[0] != probe[1].uids[0]);
    fixture_free(fx);
}

static void bad_file_path_fails_sandbox_error_naming_it(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python", PY_TASK("{\"../evil.py\": \"x\"}", "pass\\n"), "x = 1\n", &o);
    assert_verdict(&o, "sandbox_error");
    assert_contains(o.v.message, "../evil.py");
    outcome_release(&o);

    run_task(NULL, "python",
             "{\"answer_file\": \"/etc/passwd\", \"tests\": {\"command\": [\"true\"]}}", "x = 1\n",
             &o);
    assert_verdict(&o, "sandbox_error");
    assert_contains(o.v.message, "/etc/passwd");
    outcome_release(&o);
}

static void hostdir_write_rejects_unsafe_paths_and_makes_subdirs(void **state)
{
    (void)state;
    char *dir = NULL;
    char err[512];
    assert_int_equal(val__hostdir_make(&dir, err, sizeof err), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0755);
    static const char *const bad[] = {"",   "/abs", "..",  "../x", "a/../../x", "a/..",
                                      "a/", ".",    "a/.", "a\\b", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(val__hostdir_write(dir, bad[i], "x", 1, err, sizeof err), WK_EINVAL);
    char longp[300];
    memset(longp, 'a', 256);
    longp[256] = '\0';
    assert_int_equal(val__hostdir_write(dir, longp, "x", 1, err, sizeof err), WK_EINVAL);
    assert_int_equal(val__hostdir_write(dir, "pkg/sub/mod.py", "y = 2\n", 6, err, sizeof err), 0);
    assert_int_equal(val__hostdir_write(dir, "./top..name", "z", 1, err, sizeof err), 0);
    char *path = wk_xasprintf("%s/pkg/sub/mod.py", dir);
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(wk_read_file(path, 100, &text, &len), 0);
    assert_string_equal(text, "y = 2\n");
    free(text);
    free(path);
    val__hostdir_remove(dir);
    assert_int_not_equal(stat(dir, &st), 0);
    free(dir);
}

typedef struct raw {
    int calls;
    int64_t status;
    char *output;
} raw;

static void on_raw(void *arg, const val__sbx_result *r)
{
    raw *x = arg;
    x->calls++;
    x->status = r->exit_status;
    x->output = strdup(r->output);
}

static void hostdir_is_copied_into_box_without_overwriting_readonly_files(void **state)
{
    (void)state;
    char *dir = NULL;
    char err[512];
    assert_int_equal(val__hostdir_make(&dir, err, sizeof err), 0);
    assert_int_equal(val__hostdir_write(dir, "src/a.txt", "from-dir\n", 9, err, sizeof err), 0);
    assert_int_equal(val__hostdir_write(dir, "t.txt", "dir-version\n", 12, err, sizeof err), 0);
    fixture *fx = fixture_new(NULL, 0);
    val__sbx_file f = {"t.txt", "task-version\n", 13, 1};
    const char *argv[] = {"sh", "-c", "cat src/a.txt t.txt; echo new > src/b.txt && echo wrote"};
    val__sbx_spec spec = {.argv = argv, .argc = 3, .files = &f, .nfiles = 1, .hostdir = dir};
    raw x = {0};
    val__sandbox_start(fx->env, &spec, on_raw, &x);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.status, 0);
    assert_string_equal(x.output, "from-dir\ntask-version\nwrote\n");
    free(x.output);
    /* The host directory itself is untouched: /box was a copy. */
    struct stat st;
    char *b = wk_xasprintf("%s/src/b.txt", dir);
    assert_int_not_equal(stat(b, &st), 0);
    free(b);
    val__hostdir_remove(dir);
    free(dir);
    fixture_free(fx);
}

static void sweep_removes_only_old_task_directories_of_ours(void **state)
{
    (void)state;
    char base[] = "/tmp/cascade-sweep-test-XXXXXX";
    assert_non_null(mkdtemp(base));
    static const char *const names[] = {"cascade-box-aaaaaa", "cascade-box-bbbbbb",
                                        "cascade-box-cc", "other-aaaaaa"};
    for (int i = 0; i < 4; i++) {
        char *p = wk_xasprintf("%s/%s", base, names[i]);
        assert_int_equal(mkdir(p, 0755), 0);
        char *f = wk_xasprintf("%s/file", p);
        fclose(fopen(f, "w"));
        free(f);
        if (i != 1) {
            /* Two hours old, except the second, which a live run might still use. */
            struct utimbuf t = {time(NULL) - 7200, time(NULL) - 7200};
            assert_int_equal(utime(p, &t), 0);
        }
        free(p);
    }
    assert_int_equal(val__hostdir_sweep(base, 3600), 1);
    struct stat st;
    for (int i = 0; i < 4; i++) {
        char *p = wk_xasprintf("%s/%s", base, names[i]);
        assert_int_equal(stat(p, &st) == 0, i != 0);
        free(p);
    }
    val__hostdir_remove(base);
}

/*
 * A limit above the worker's own hard limit cannot be set inside: the
 * sandbox gets the hard one instead (not a sandbox error on every answer).
 * Run in a child, whose lowered hard limit cannot be raised again.
 */
static void limits_above_the_workers_hard_limit_are_lowered_to_it(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Below the default of 256 open files. */
        struct rlimit rl = {200, 200};
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            _exit(3);
        outcome o;
        run_task(NULL, "python",
                 "{\"tests\": {\"command\": [\"sh\", \"-c\", \"[ $(ulimit -n) -eq 200 ] && "
                 "[ $(ulimit -H -n) -eq 200 ]\"]}}",
                 "x = 1\n", &o);
        _exit(o.calls == 1 && o.v.pass ? 0 : 1);
    }
    assert_int_equal(h_wait(pid, 120000), 0);
}

static void missing_command_fails_sandbox_error(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python", "{\"tests\": {\"files\": {}}}", "x = 1\n", &o);
    assert_verdict(&o, "sandbox_error");
    assert_contains(o.v.message, "tests.command");
    outcome_release(&o);

    /* A command that does not exist inside the sandbox is a sandbox error too. */
    run_task(NULL, "python", "{\"tests\": {\"command\": [\"no-such-tool-xyz\"]}}", "x = 1\n", &o);
    assert_verdict(&o, "sandbox_error");
    outcome_release(&o);
}

static void spawn_failure_is_reported_sandbox_error(void **state)
{
    (void)state;
    fixture *fx = fixture_new(NULL, 0);
    /* As if bubblewrap vanished after start-up: the sandbox cannot be spawned. */
    snprintf(fx->env->bwrap, sizeof fx->env->bwrap, "/nonexistent/bwrap");
    outcome o;
    start_task(fx, &o, "python", "{\"tests\": {\"command\": [\"true\"]}}", "x = 1\n");
    run_loop(fx);
    assert_int_equal(o.calls, 1);
    assert_verdict(&o, "sandbox_error");
    assert_contains(o.v.message, "could not start the sandbox");
    outcome_release(&o);
    assert_int_equal(fx->env->running, 0);
    fixture_free(fx);
}

static void too_many_files_fail_before_any_spawn(void **state)
{
    (void)state;
    fixture *fx = fixture_new(NULL, 0);
    val__sbx_file *f = calloc(VAL__FILES_MAX + 1, sizeof *f);
    char(*names)[16] = calloc(VAL__FILES_MAX + 1, sizeof *names);
    for (int i = 0; i <= VAL__FILES_MAX; i++) {
        snprintf(names[i], sizeof names[i], "f%d", i);
        f[i] = (val__sbx_file){names[i], "x", 1, 0};
    }
    const char *argv[] = {"true"};
    val__sbx_spec spec = {.argv = argv, .argc = 1, .files = f, .nfiles = VAL__FILES_MAX + 1};
    raw x = {0};
    val__sandbox_start(fx->env, &spec, on_raw, &x);
    assert_int_equal(x.calls, 0); /* never before start returns */
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_int_equal(x.calls, 1);
    assert_int_equal(fx->env->running, 0);
    free(x.output);
    free(f);
    free(names);
    fixture_free(fx);
}

static void wall_clock_counts_from_the_start_not_from_a_stale_loop_time(void **state)
{
    (void)state;
    val_limits l;
    val_limits_default(&l);
    /* Long enough for python3 to start on a loaded machine. */
    l.timeout_ms = 3000;
    fixture *fx = fixture_new(&l, 0);
    /* The loop has not run for longer than the limit, so its cached time is stale. */
    uint64_t t0 = wk_now_ms();
    while (wk_now_ms() - t0 < 3300)
        usleep(10 * 1000);
    outcome o;
    start_task(fx, &o, "python", PY_TASK("{}", "import time\ntime.sleep(0.3)\n"), "x = 1\n");
    run_loop(fx);
    assert_verdict(&o, NULL);
    assert_true(o.took_ms >= 300);
    assert_nothing_left(&o);
    outcome_release(&o);
    fixture_free(fx);
}

/* ---- concurrency ------------------------------------------------------------------ */

static void sandboxes_beyond_limit_wait_in_fifo_order(void **state)
{
    (void)state;
    fixture *fx = fixture_new(NULL, 1);
    enum { N = 3 };
    outcome o[N];
    for (int i = 0; i < N; i++)
        start_task(fx, &o[i], "python", PY_TASK("{}", "import time\\ntime.sleep(0.2)\\n"),
                   "x = 1\n");
    /* Only one runs; the others wait for its slot. */
    assert_int_equal(fx->env->running, 1);
    run_loop(fx);
    assert_int_equal(fx->max_running, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].order, i + 1);
        assert_verdict(&o[i], NULL);
        assert_nothing_left(&o[i]);
        outcome_release(&o[i]);
    }
    assert_int_equal(fx->env->running, 0);
    fixture_free(fx);
}

int main(void)
{
    if (fx_require_bwrap("test_sandbox"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(python_passing_test_passes_and_keeps_prelude),
        cmocka_unit_test(python_failing_test_reports_assertion_in_evidence),
        cmocka_unit_test(cpu_bound_loop_hits_cpu_limit_as_timeout),
        cmocka_unit_test(output_flood_is_stopped_at_cap),
        cmocka_unit_test(output_just_over_cap_without_kill_is_still_output_limit),
        cmocka_unit_test(segfault_is_reported_crashed),
        cmocka_unit_test(test_files_cannot_be_written_renamed_or_removed),
        cmocka_unit_test(test_file_replaced_through_its_directory_fails_tests_modified),
        cmocka_unit_test(test_files_are_checked_after_a_passing_run),
        cmocka_unit_test(c_task_compiles_and_runs_with_gcc_inside),
        cmocka_unit_test(javascript_task_runs_under_node_inside),
        cmocka_unit_test(javascript_failed_console_assert_fails_the_test),
        cmocka_unit_test(java_task_compiles_and_runs_under_the_memory_limit),
        cmocka_unit_test(bash_task_runs_and_fails_on_its_exit_status),
        cmocka_unit_test(tests_after_patch_run_in_the_patched_tree),
        cmocka_unit_test(sandbox_runs_as_a_pool_uid_mapped_to_nobody),
        cmocka_unit_test(bad_file_path_fails_sandbox_error_naming_it),
        cmocka_unit_test(hostdir_write_rejects_unsafe_paths_and_makes_subdirs),
        cmocka_unit_test(hostdir_is_copied_into_box_without_overwriting_readonly_files),
        cmocka_unit_test(sweep_removes_only_old_task_directories_of_ours),
        cmocka_unit_test(missing_command_fails_sandbox_error),
        cmocka_unit_test(spawn_failure_is_reported_sandbox_error),
        cmocka_unit_test(too_many_files_fail_before_any_spawn),
        cmocka_unit_test(wall_clock_counts_from_the_start_not_from_a_stale_loop_time),
        cmocka_unit_test(sandboxes_beyond_limit_wait_in_fifo_order),
        cmocka_unit_test(limits_above_the_workers_hard_limit_are_lowered_to_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
