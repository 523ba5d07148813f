/*
 * Tests for the tests validator and the sandbox under it: real bubblewrap
 * runs of small Python, C and JavaScript tasks, each proving one property
 * (pass, fail with evidence, wall and CPU timeouts, no network, no inherited
 * environment, read-only system, output cap, bad paths, the FIFO of slots)
 * and that no process is left behind. Every loop run is bounded by a guard
 * timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../validators/val_int.h"

/* No single test may keep the loop longer than this. */
#define GUARD_MS 30000

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t guard;
    int guard_fired;
    int pending;      /* chains not yet done */
    int max_running;  /* most sandboxes seen running at once */
    uv_prepare_t watch;
    val_env *env;
} fixture;

typedef struct outcome {
    fixture *fx;
    int calls;
    int order;        /* position in which this chain finished */
    val_verdict v;
    char marker[64];  /* appears in the command line of every process of this run */
    val_input in;     /* borrowed by the chain until done */
    cJSON *task;
} outcome;

static int finished_count;

static void on_guard(uv_timer_t *t)
{
    fixture *fx = t->data;
    fx->guard_fired = 1;
    uv_stop(&fx->loop);
}

static void on_watch(uv_prepare_t *p)
{
    fixture *fx = p->data;
    if (fx->env && fx->env->running > fx->max_running)
        fx->max_running = fx->env->running;
}

static fixture *fixture_new(const val_limits *limits, int max_sandboxes)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    char err[256];
    fx->env = val_env_new(&fx->loop, limits, max_sandboxes, err, sizeof err);
    if (!fx->env)
        fail_msg("val_env_new: %s", err);
    uv_timer_init(&fx->loop, &fx->guard);
    fx->guard.data = fx;
    uv_prepare_init(&fx->loop, &fx->watch);
    fx->watch.data = fx;
    return fx;
}

static void fixture_free(fixture *fx)
{
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_close((uv_handle_t *)&fx->watch, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    val_env_free(fx->env);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
}

static void on_done(void *arg, const val_verdict *v)
{
    outcome *o = arg;
    o->calls++;
    o->order = ++finished_count;
    val_verdict_clear(&o->v);
    o->v.pass = v->pass;
    memcpy(o->v.validator, v->validator, sizeof o->v.validator);
    memcpy(o->v.reason, v->reason, sizeof o->v.reason);
    o->v.message = v->message ? strdup(v->message) : NULL;
    o->v.evidence = v->evidence ? strdup(v->evidence) : NULL;
    if (--o->fx->pending == 0) {
        /* Nothing else keeps the loop alive, so uv_run returns. */
        uv_timer_stop(&o->fx->guard);
        uv_prepare_stop(&o->fx->watch);
    }
}

/* Counts live processes whose command line contains `marker`. */
static int procs_with(const char *marker)
{
    int n = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[8192];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t len = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (len <= 0)
            continue;
        for (ssize_t i = 0; i < len; i++)
            if (buf[i] == '\0')
                buf[i] = ' ';
        buf[len] = '\0';
        if (strstr(buf, marker))
            n++;
    }
    closedir(d);
    return n;
}

/* Asserts that no process of the run survives (waiting briefly for the kernel's reaping). */
static void assert_nothing_left(const outcome *o)
{
    int left = 0;
    for (int i = 0; i < 40; i++) {
        left = procs_with(o->marker);
        if (left == 0)
            break;
        usleep(50 * 1000);
    }
    assert_int_equal(left, 0);
    /* And libuv reaped every child we spawned. */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/*
 * Starts the tests validator on `task_json` (a JSON object with tests.command
 * and files) and `answer`. The marker is appended to the command as one more
 * argument so the processes can be found afterwards.
 */
static void start_task(fixture *fx, outcome *o, const char *language, const char *task_json,
                       const char *answer)
{
    static int serial;
    memset(o, 0, sizeof *o);
    o->fx = fx;
    snprintf(o->marker, sizeof o->marker, "cascade-test-marker-%d-%d", (int)getpid(), ++serial);
    o->task = cJSON_Parse(task_json);
    if (!o->task)
        fail_msg("bad task json: %s", task_json);
    cJSON *cmd = cJSON_GetObjectItem(cJSON_GetObjectItem(o->task, "tests"), "command");
    if (cJSON_IsArray(cmd))
        cJSON_AddItemToArray(cmd, cJSON_CreateString(o->marker));
    o->in.task_id = o->marker;
    o->in.kind = "code";
    o->in.language = language;
    o->in.answer = answer;
    o->in.task = o->task;
    const char *names[] = {"tests"};
    fx->pending++;
    assert_int_equal(val_chain_start(fx->env, names, 1, &o->in, on_done, o), 0);
}

static void run_loop(fixture *fx)
{
    if (fx->pending > 0) {
        uv_timer_start(&fx->guard, on_guard, GUARD_MS, 0);
        uv_prepare_start(&fx->watch, on_watch);
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_false(fx->guard_fired);
    assert_int_equal(fx->pending, 0);
}

/* One task, start to finish, on a fresh fixture; the outcome is left in *o. */
static void run_task(const val_limits *limits, const char *language, const char *task_json,
                     const char *answer, outcome *o)
{
    fixture *fx = fixture_new(limits, 0);
    start_task(fx, o, language, task_json, answer);
    run_loop(fx);
    assert_int_equal(o->calls, 1);
    assert_nothing_left(o);
    cJSON_Delete(o->task);
    fixture_free(fx);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay ? hay : "(null)");
}

static void show_failure(const outcome *o)
{
    if (!o->v.pass)
        print_message("verdict: %s/%s: %s\n%s\n", o->v.validator, o->v.reason,
                      o->v.message ? o->v.message : "", o->v.evidence ? o->v.evidence : "");
}

#define PY_TASK(files, test)                                                                    \
    "{\"files\": " files ", \"tests\": {\"files\": {\"test_solution.py\": \"" test "\"},"       \
    " \"command\": [\"python3\", \"test_solution.py\"]}}"

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
    show_failure(&o);
    assert_true(o.v.pass);
    val_verdict_clear(&o.v);
}

static void python_failing_test_reports_assertion_in_evidence(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python",
             PY_TASK("{}", "from solution import add\\n"
                           "assert add(2, 3) == 5, 'add(2, 3) should be 5'\\n"),
             "def add(a, b):\n    return a - b\n", &o);
    assert_false(o.v.pass);
    assert_string_equal(o.v.validator, "tests");
    assert_string_equal(o.v.reason, "failed");
    assert_contains(o.v.evidence, "AssertionError: add(2, 3) should be 5");
    assert_contains(o.v.message, "AssertionError: add(2, 3) should be 5");
    /* Paths are shown relative to the task directory. */
    assert_contains(o.v.evidence, "\"test_solution.py\"");
    assert_null(strstr(o.v.evidence, "/box/"));
    val_verdict_clear(&o.v);
}

static void infinite_loop_is_killed_at_wall_clock_timeout(void **state)
{
    (void)state;
    val_limits l;
    val_limits_default(&l);
    l.timeout_ms = 1500;
    l.cpu_s = 30; /* the wall clock must be what stops it */
    outcome o;
    uint64_t t0 = wk_now_ms();
    run_task(&l, "python", PY_TASK("{}", "import solution\\n"), "while True:\n    pass\n", &o);
    uint64_t took = wk_now_ms() - t0;
    assert_false(o.v.pass);
    assert_string_equal(o.v.reason, "timeout");
    assert_contains(o.v.message, "wall clock");
    assert_true(took < 6000);
    val_verdict_clear(&o.v);
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
    assert_false(o.v.pass);
    assert_string_equal(o.v.reason, "timeout");
    assert_contains(o.v.message, "CPU");
    val_verdict_clear(&o.v);
}

static void network_is_unreachable_from_sandbox(void **state)
{
    (void)state;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(ls >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ls, 4), 0);
    socklen_t alen = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &alen);
    char task[1024];
    snprintf(task, sizeof task,
             PY_TASK("{}", "import socket\\n"
                           "s = socket.create_connection(('127.0.0.1', %d), timeout=3)\\n"
                           "print('connected')\\n"),
             ntohs(a.sin_port));
    outcome o;
    run_task(NULL, "python", task, "x = 1\n", &o);
    assert_false(o.v.pass);
    assert_string_equal(o.v.reason, "failed");
    assert_null(strstr(o.v.evidence, "connected\n"));
    /* The listener never saw a connection. */
    int c = accept(ls, NULL, NULL);
    assert_int_equal(c, -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    close(ls);
    val_verdict_clear(&o.v);
}

static void environment_of_worker_is_not_visible(void **state)
{
    (void)state;
    setenv("FAKE_API_KEY", "sk-secret", 1);
    outcome o;
    /* The test prints its whole environment and fails so the output becomes evidence. */
    run_task(NULL, "python",
             PY_TASK("{}", "import os, sys\\nfor k, v in sorted(os.environ.items()): "
                           "print(k + '=' + v)\\nsys.exit(3)\\n"),
             "x = 1\n", &o);
    unsetenv("FAKE_API_KEY");
    assert_string_equal(o.v.reason, "failed");
    assert_contains(o.v.message, "exit status 3");
    assert_contains(o.v.evidence, "PATH=/usr/local/bin:/usr/bin:/bin");
    assert_contains(o.v.evidence, "HOME=/box");
    assert_null(strstr(o.v.evidence, "sk-secret"));
    assert_null(strstr(o.v.evidence, "FAKE_API_KEY"));
    val_verdict_clear(&o.v);
}

static void writes_outside_box_fail_and_inside_succeed(void **state)
{
    (void)state;
    outcome o;
    /* Passes only when every write outside /box fails and the one inside works. */
    run_task(NULL, "python",
             PY_TASK("{}", "import os\\nblocked = 0\\n"
                           "for p in ['/usr/cascade-evil', '/etc/cascade-evil', '/cascade-evil',"
                           " '/in/cascade-evil', '/proc/sys/kernel/hostname']:\\n"
                           "    try:\\n        open(p, 'w').write('x')\\n"
                           "        print('WROTE', p)\\n"
                           "    except OSError as e:\\n        blocked += 1\\n"
                           "open('inside.txt', 'w').write('ok')\\n"
                           "assert blocked == 5, blocked\\n"),
             "x = 1\n", &o);
    show_failure(&o);
    assert_true(o.v.pass);
    struct stat st;
    assert_int_not_equal(stat("/usr/cascade-evil", &st), 0);
    assert_int_not_equal(stat("/etc/cascade-evil", &st), 0);
    val_verdict_clear(&o.v);
}

static void host_private_files_are_not_visible(void **state)
{
    (void)state;
    outcome o;
    /* /root, /home and /work are not bound; /etc/shadow is unreadable for the sandbox uid. */
    run_task(NULL, "python",
             PY_TASK("{}", "import os\\nassert not os.path.exists('/root')\\n"
                           "assert not os.path.exists('/work')\\n"
                           "try:\\n    open('/etc/shadow').read()\\n    raise SystemExit('read')\\n"
                           "except PermissionError:\\n    pass\\n"
                           "assert os.getuid() == 65534\\n"),
             "x = 1\n", &o);
    show_failure(&o);
    assert_true(o.v.pass);
    val_verdict_clear(&o.v);
}

static void output_flood_is_stopped_at_cap(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python", PY_TASK("{}", "while True:\\n    print('x' * 100)\\n"), "x = 1\n",
             &o);
    assert_false(o.v.pass);
    assert_string_equal(o.v.reason, "output_limit");
    assert_contains(o.v.evidence, "xxxxxxxx");
    val_verdict_clear(&o.v);
}

static void segfault_is_reported_crashed(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python", PY_TASK("{}", "import os, signal\\nos.kill(os.getpid(), signal.SIGSEGV)\\n"),
             "x = 1\n", &o);
    assert_string_equal(o.v.reason, "crashed");
    assert_contains(o.v.message, "SIGSEGV");
    val_verdict_clear(&o.v);
}

static void allocation_past_memory_limit_is_reported_memory(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python", PY_TASK("{}", "b = bytearray(3 * 1024 ** 3)\\n"), "x = 1\n", &o);
    assert_string_equal(o.v.reason, "memory");
    assert_contains(o.v.evidence, "MemoryError");
    val_verdict_clear(&o.v);
}

static void fork_bomb_is_stopped_by_process_limit(void **state)
{
    (void)state;
    outcome o;
    /* Children sleep so they all count at once; the sandbox's end must kill them all. */
    run_task(NULL, "python",
             PY_TASK("{}", "import os, sys, time\\nn = 0\\ntry:\\n    for i in range(1000):\\n"
                           "        if os.fork() == 0:\\n            time.sleep(60)\\n"
                           "            os._exit(0)\\n        n += 1\\n"
                           "except OSError:\\n    print('fork refused after', n)\\n    sys.exit(7)\\n"),
             "x = 1\n", &o);
    assert_string_equal(o.v.reason, "failed");
    assert_contains(o.v.evidence, "fork refused after");
    val_verdict_clear(&o.v);
}

/* ---- other languages ------------------------------------------------------------ */

static void c_task_compiles_and_runs_with_gcc_inside(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "c",
             "{\"tests\": {\"files\": {\"test_main.c\": \"#include <assert.h>\\n#include <stdio.h>\\n"
             "#include \\\"solution.c\\\"\\nint main(void) { assert(add(2, 3) == 5); "
             "puts(\\\"ok\\\"); return 0; }\\n\"},"
             " \"command\": [\"sh\", \"-c\", \"gcc -Wall -o t test_main.c && ./t\"]}}",
             "```c\nint add(int a, int b) { return a + b; }\n```", &o);
    show_failure(&o);
    assert_true(o.v.pass);
    val_verdict_clear(&o.v);

    /* A compile error is a failure whose evidence is gcc's message. */
    run_task(NULL, "c",
             "{\"tests\": {\"files\": {\"test_main.c\": \"#include \\\"solution.c\\\"\\n"
             "int main(void) { return add(2, 3) != 5; }\\n\"},"
             " \"command\": [\"sh\", \"-c\", \"gcc -o t test_main.c && ./t\"]}}",
             "int add(int a, int b) { return a + c; }", &o);
    assert_string_equal(o.v.reason, "failed");
    assert_contains(o.v.evidence, "solution.c");
    assert_contains(o.v.evidence, "error");
    val_verdict_clear(&o.v);
}

static void javascript_task_runs_under_node_inside(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "javascript",
             "{\"tests\": {\"files\": {\"test.js\": \"const assert = require('assert');\\n"
             "const { add } = require('./solution.js');\\nassert.strictEqual(add(2, 3), 5);\\n"
             "console.log('ok');\\n\"}, \"command\": [\"node\", \"test.js\"]}}",
             "```javascript\nfunction add(a, b) { return a + b; }\nmodule.exports = { add };\n```",
             &o);
    show_failure(&o);
    assert_true(o.v.pass);
    val_verdict_clear(&o.v);
}

/* ---- task shape and paths ------------------------------------------------------ */

static void bad_file_path_fails_sandbox_error_naming_it(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python", PY_TASK("{\"../evil.py\": \"x\"}", "pass\\n"), "x = 1\n", &o);
    assert_string_equal(o.v.reason, "sandbox_error");
    assert_contains(o.v.message, "../evil.py");
    val_verdict_clear(&o.v);

    run_task(NULL, "python",
             "{\"answer_file\": \"/etc/passwd\", \"tests\": {\"command\": [\"true\"]}}", "x = 1\n",
             &o);
    assert_string_equal(o.v.reason, "sandbox_error");
    assert_contains(o.v.message, "/etc/passwd");
    val_verdict_clear(&o.v);
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
    static const char *const bad[] = {"", "/abs", "..", "../x", "a/../../x", "a/..", "a/",
                                      ".", "a/."};
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

static void missing_command_fails_sandbox_error(void **state)
{
    (void)state;
    outcome o;
    run_task(NULL, "python", "{\"tests\": {\"files\": {}}}", "x = 1\n", &o);
    assert_string_equal(o.v.reason, "sandbox_error");
    assert_contains(o.v.message, "tests.command");
    val_verdict_clear(&o.v);

    /* A command that does not exist inside the sandbox is a sandbox error too. */
    run_task(NULL, "python", "{\"tests\": {\"command\": [\"no-such-tool-xyz\"]}}", "x = 1\n", &o);
    assert_string_equal(o.v.reason, "sandbox_error");
    val_verdict_clear(&o.v);
}

static void spawn_failure_is_reported_sandbox_error(void **state)
{
    (void)state;
    fixture *fx = fixture_new(NULL, 0);
    /* As if util-linux were missing: the first program of the sandbox cannot be run. */
    snprintf(fx->env->prlimit, sizeof fx->env->prlimit, "/nonexistent/prlimit");
    outcome o;
    start_task(fx, &o, "python", "{\"tests\": {\"command\": [\"true\"]}}", "x = 1\n");
    run_loop(fx);
    assert_int_equal(o.calls, 1);
    assert_string_equal(o.v.reason, "sandbox_error");
    assert_contains(o.v.message, "could not start the sandbox");
    val_verdict_clear(&o.v);
    cJSON_Delete(o.task);
    fixture_free(fx);
}

/* ---- concurrency ------------------------------------------------------------------ */

static void sandboxes_beyond_limit_wait_in_fifo_order(void **state)
{
    (void)state;
    fixture *fx = fixture_new(NULL, 1);
    enum { N = 3 };
    outcome o[N];
    finished_count = 0;
    for (int i = 0; i < N; i++)
        start_task(fx, &o[i], "python",
                   PY_TASK("{}", "import time\\ntime.sleep(0.2)\\n"), "x = 1\n");
    /* Only one runs; the others wait for its slot. */
    assert_int_equal(fx->env->running, 1);
    run_loop(fx);
    assert_int_equal(fx->max_running, 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].calls, 1);
        assert_int_equal(o[i].order, i + 1);
        show_failure(&o[i]);
        assert_true(o[i].v.pass);
        assert_nothing_left(&o[i]);
        val_verdict_clear(&o[i].v);
        cJSON_Delete(o[i].task);
    }
    assert_int_equal(fx->env->running, 0);
    fixture_free(fx);
}

int main(void)
{
    /* The sandbox needs bubblewrap; without it these tests cannot mean anything. */
    if (access("/usr/bin/bwrap", X_OK) != 0) {
        fprintf(stderr, "test_sandbox: /usr/bin/bwrap missing\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(python_passing_test_passes_and_keeps_prelude),
        cmocka_unit_test(python_failing_test_reports_assertion_in_evidence),
        cmocka_unit_test(infinite_loop_is_killed_at_wall_clock_timeout),
        cmocka_unit_test(cpu_bound_loop_hits_cpu_limit_as_timeout),
        cmocka_unit_test(network_is_unreachable_from_sandbox),
        cmocka_unit_test(environment_of_worker_is_not_visible),
        cmocka_unit_test(writes_outside_box_fail_and_inside_succeed),
        cmocka_unit_test(host_private_files_are_not_visible),
        cmocka_unit_test(output_flood_is_stopped_at_cap),
        cmocka_unit_test(segfault_is_reported_crashed),
        cmocka_unit_test(allocation_past_memory_limit_is_reported_memory),
        cmocka_unit_test(fork_bomb_is_stopped_by_process_limit),
        cmocka_unit_test(c_task_compiles_and_runs_with_gcc_inside),
        cmocka_unit_test(javascript_task_runs_under_node_inside),
        cmocka_unit_test(bad_file_path_fails_sandbox_error_naming_it),
        cmocka_unit_test(hostdir_write_rejects_unsafe_paths_and_makes_subdirs),
        cmocka_unit_test(missing_command_fails_sandbox_error),
        cmocka_unit_test(spawn_failure_is_reported_sandbox_error),
        cmocka_unit_test(sandboxes_beyond_limit_wait_in_fifo_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
