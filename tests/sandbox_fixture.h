/*
 * What the sandbox tests share (test_sandbox.c, test_containment.c,
 * test_compile.c): a loop with a guard timer that bounds every run, starting
 * validator chains on small tasks, and the checks that nothing of a run
 * survives it: no process whose command line carries the run's marker, none
 * running under the sandbox uid pool, and no child left unreaped.
 *
 * Header-only (static inline) so each test binary takes what it uses.
 */
#ifndef TEST_SANDBOX_FIXTURE_H
#define TEST_SANDBOX_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "validators/sandbox/sandbox.h"
#include "validators/val_int.h"

/* No single test may keep the loop longer than this. */
#define GUARD_MS 30000

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t guard;
    int guard_fired;
    int pending;     /* chains not yet done */
    int max_running; /* most sandboxes seen running at once */
    int finished;    /* chains done so far, for their order */
    uv_prepare_t watch;
    val_env *env;
} fixture;

typedef struct outcome {
    fixture *fx;
    int calls;
    int order; /* position in which this chain finished */
    uint64_t t0, took_ms;
    val_verdict v;
    char marker[64]; /* appears in the command line of every process of this run */
    val_input in;    /* borrowed by the chain until done */
    cJSON *task;
    cJSON *compile; /* optional compile map, owned */
} outcome;

static inline void fx_on_guard(uv_timer_t *t)
{
    fixture *fx = t->data;
    fx->guard_fired = 1;
    uv_stop(&fx->loop);
}

static inline void fx_on_watch(uv_prepare_t *p)
{
    fixture *fx = p->data;
    if (fx->env && fx->env->running > fx->max_running)
        fx->max_running = fx->env->running;
}

/* Room per test process in the uid space above VAL_UID_BASE. */
#define FX_UID_SPAN 256u

static inline unsigned fx_uid_base(void)
{
    return VAL_UID_BASE + 65536u + ((unsigned)getpid() % 4096u) * FX_UID_SPAN;
}

static inline fixture *fixture_new(const val_limits *limits, int max_sandboxes)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_int_equal(uv_loop_init(&fx->loop), 0);
    char err[256];
    fx->env = val_env_new(&fx->loop, limits, max_sandboxes, err, sizeof err);
    if (!fx->env)
        fail_msg("val_env_new: %s", err);
    /* A uid range of this test process alone, so the leak check sees only its sandboxes. */
    fx->env->uid_base = fx_uid_base();
    uv_timer_init(&fx->loop, &fx->guard);
    fx->guard.data = fx;
    uv_prepare_init(&fx->loop, &fx->watch);
    fx->watch.data = fx;
    return fx;
}

static inline void fixture_free(fixture *fx)
{
    uv_close((uv_handle_t *)&fx->guard, NULL);
    uv_close((uv_handle_t *)&fx->watch, NULL);
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    val_env_free(fx->env);
    assert_int_equal(uv_loop_close(&fx->loop), 0);
    free(fx);
}

static inline void fx_on_done(void *arg, const val_verdict *v)
{
    outcome *o = arg;
    o->calls++;
    o->order = ++o->fx->finished;
    o->took_ms = wk_now_ms() - o->t0;
    val_verdict_clear(&o->v);
    o->v.pass = v->pass;
    memcpy(o->v.validator, v->validator, sizeof o->v.validator);
    memcpy(o->v.reason, v->reason, sizeof o->v.reason);
    o->v.message = v->message ? strdup(v->message) : NULL;
    o->v.evidence = v->evidence ? strdup(v->evidence) : NULL;
    o->v.note = v->note ? strdup(v->note) : NULL;
    if (--o->fx->pending == 0) {
        /* Nothing else keeps the loop alive, so uv_run returns. */
        uv_timer_stop(&o->fx->guard);
        uv_prepare_stop(&o->fx->watch);
    }
}

/* Reads /proc/PID/FILE into buf (NUL-terminated, NULs of cmdline become spaces); -1 if gone. */
static inline ssize_t fx_proc_read(const char *pid, const char *file, char *buf, size_t size)
{
    char path[300];
    snprintf(path, sizeof path, "/proc/%s/%s", pid, file);
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t len = read(fd, buf, size - 1);
    close(fd);
    if (len < 0)
        return -1;
    for (ssize_t i = 0; i < len; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
    buf[len] = '\0';
    return len;
}

/*
 * Counts live processes whose command line contains `marker` (when not NULL)
 * or whose real uid is in this test process's sandbox uid range (when NULL).
 */
static inline int procs_with(const char *marker)
{
    int n = 0;
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char buf[8192];
        if (marker) {
            if (fx_proc_read(e->d_name, "cmdline", buf, sizeof buf) > 0 && strstr(buf, marker))
                n++;
            continue;
        }
        if (fx_proc_read(e->d_name, "status", buf, sizeof buf) <= 0)
            continue;
        const char *u = strstr(buf, "\nUid:");
        unsigned long uid = u ? strtoul(u + 5, NULL, 10) : 0;
        if (uid >= fx_uid_base() && uid < fx_uid_base() + FX_UID_SPAN)
            n++;
    }
    closedir(d);
    return n;
}

/* Asserts that nothing of the run survives (waiting briefly for the kernel's reaping). */
static inline void assert_nothing_left(const outcome *o)
{
    int left = 0, pooled = 0;
    for (int i = 0; i < 40; i++) {
        left = procs_with(o->marker);
        pooled = procs_with(NULL);
        if (left == 0 && pooled == 0)
            break;
        usleep(50 * 1000);
    }
    assert_int_equal(left, 0);
    assert_int_equal(pooled, 0);
    /* And libuv reaped every child we spawned. */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

/*
 * Starts the chain `names` (count n) on `task_json` (a JSON object with
 * tests.command and files) and `answer`. The marker is appended to the test
 * command as one more argument so the processes can be found afterwards.
 */
static inline void start_chain(fixture *fx, outcome *o, const char *const *names, int n,
                               const char *language, const char *task_json, const char *answer,
                               const char *compile_json)
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
    if (compile_json) {
        o->compile = cJSON_Parse(compile_json);
        if (!o->compile)
            fail_msg("bad compile json: %s", compile_json);
    }
    o->in.task_id = o->marker;
    o->in.kind = "code";
    o->in.language = language;
    o->in.answer = answer;
    o->in.task = o->task;
    o->in.compile_commands = o->compile;
    fx->pending++;
    o->t0 = wk_now_ms();
    assert_int_equal(val_chain_start(fx->env, names, n, &o->in, fx_on_done, o), 0);
}

static inline void start_task(fixture *fx, outcome *o, const char *language, const char *task_json,
                              const char *answer)
{
    static const char *const names[] = {"tests"};
    start_chain(fx, o, names, 1, language, task_json, answer, NULL);
}

static inline void run_loop(fixture *fx)
{
    if (fx->pending > 0) {
        uv_update_time(&fx->loop); /* the guard counts from now, not from the last loop run */
        uv_timer_start(&fx->guard, fx_on_guard, GUARD_MS, 0);
        uv_prepare_start(&fx->watch, fx_on_watch);
    }
    uv_run(&fx->loop, UV_RUN_DEFAULT);
    assert_false(fx->guard_fired);
    assert_int_equal(fx->pending, 0);
}

static inline void outcome_release(outcome *o)
{
    val_verdict_clear(&o->v);
    cJSON_Delete(o->task);
    cJSON_Delete(o->compile);
    o->task = o->compile = NULL;
}

/* One chain, start to finish, on a fresh fixture; the verdict is left in *o. */
static inline void run_chain_task(const val_limits *limits, const char *const *names, int n,
                                  const char *language, const char *task_json, const char *answer,
                                  const char *compile_json, outcome *o)
{
    fixture *fx = fixture_new(limits, 0);
    start_chain(fx, o, names, n, language, task_json, answer, compile_json);
    run_loop(fx);
    assert_int_equal(o->calls, 1);
    assert_nothing_left(o);
    cJSON_Delete(o->task);
    cJSON_Delete(o->compile);
    o->task = o->compile = NULL;
    fixture_free(fx);
}

/* The tests validator alone, start to finish. */
static inline void run_task(const val_limits *limits, const char *language, const char *task_json,
                            const char *answer, outcome *o)
{
    static const char *const names[] = {"tests"};
    run_chain_task(limits, names, 1, language, task_json, answer, NULL, o);
}

static inline void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay ? hay : "(null)");
}

static inline void show_failure(const outcome *o)
{
    if (!o->v.pass)
        print_message("verdict: %s/%s: %s\n%s\n", o->v.validator, o->v.reason,
                      o->v.message ? o->v.message : "", o->v.evidence ? o->v.evidence : "");
}

static inline void assert_verdict(const outcome *o, const char *reason)
{
    if (reason == NULL) {
        if (!o->v.pass) {
            show_failure(o);
            fail_msg("expected a pass");
        }
        return;
    }
    if (o->v.pass || strcmp(o->v.reason, reason) != 0) {
        show_failure(o);
        fail_msg("expected reason %s, got %s", reason, o->v.pass ? "a pass" : o->v.reason);
    }
}

/* A Python task: files (a JSON object), the test file's text (JSON-escaped), run with python3. */
#define PY_TASK(files, test)                                                                       \
    "{\"files\": " files ", \"tests\": {\"files\": {\"test_solution.py\": \"" test "\"},"          \
    " \"command\": [\"python3\", \"test_solution.py\"]}}"

/* Skips the rest of the binary's tests cleanly when the sandbox cannot run here. */
static inline int fx_require_bwrap(const char *name)
{
    if (access("/usr/bin/bwrap", X_OK) != 0) {
        fprintf(stderr, "%s: /usr/bin/bwrap missing; run `make deps`\n", name);
        return 1;
    }
    return 0;
}

#endif
