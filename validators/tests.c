/*
 * The tests validator: puts the task's files, the answer and the test files
 * into a fresh sandbox, runs the task's test command there and turns what
 * happened into a verdict (sandbox/judge.c). The evidence is the end of the
 * output, where tracebacks and assertion messages are.
 */
#include "val_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlog.h"
#include "validators/sandbox/sandbox.h"

/* Arguments a test command may have. */
#define ARGV_MAX 256

typedef struct run {
    val_done_cb done;
    void *arg;
    const val_baseline *baseline; /* patch tasks: borrowed from the input; may be NULL */
    val_run_cb run_cb;            /* val_tests_run: the raw run's callback instead of done */
} run;

/*
 * A patch task's run on its patched tree, judged against the baseline: a
 * failed command passes when every failure is flaky or pre-existing, and the
 * verdict carries the counts either way.
 */
static void judge_against_baseline(const val_baseline *b, const val__sbx_result *r, val_verdict *v)
{
    int ran = r->spawned && !r->timed_out && !r->output_capped && !r->tests_modified;
    if (!ran || (!v->pass && strcmp(v->reason, "failed") != 0))
        return; /* a timeout or a crash is not a test outcome */
    val_testlog log;
    val_testlog_parse(r->output, r->output_len, &log);
    val_test_counts c;
    char *why = NULL, *note = NULL;
    int pass = val_baseline_judge(b, &log, v->pass, &c, &why, &note);
    if (pass && !v->pass)
        val_verdict_pass(v);
    else if (!pass && v->pass)
        val_verdict_fail(v, "tests", "failed", why, NULL);
    else if (!pass && why) {
        /* The runner's own summary line is less precise than the test that failed. */
        char *ev = v->evidence ? wk_xstrdup(v->evidence) : NULL;
        val_verdict_fail(v, "tests", "failed", why, ev);
        free(ev);
    }
    v->tests = c;
    if (note)
        val_verdict_note(v, note);
    free(why);
    free(note);
    val_testlog_release(&log);
}

static void on_result(void *arg, const val__sbx_result *r)
{
    run *x = arg;
    val_verdict v = {0};
    val__judge("tests", "failed", 0, r, &v);
    if (x->run_cb) {
        int ok = r->spawned && !r->timed_out && !r->output_capped && r->exit_status == 0 &&
                 !r->term_signal && v.pass;
        x->run_cb(x->arg, &v, r->output ? r->output : "", r->output ? r->output_len : 0, ok);
        free(x);
        val_verdict_clear(&v);
        return;
    }
    if (x->baseline)
        judge_against_baseline(x->baseline, r, &v);
    val_done_cb done = x->done;
    void *darg = x->arg;
    free(x);
    done(darg, &v);
    val_verdict_clear(&v);
}

static int tests_start(val_env *env, const val_input *in, const char *code, val_done_cb done,
                       void *arg)
{
    if (!env)
        return WK_EINVAL; /* the sandbox needs the loop and the slots */
    val_verdict v = {0};
    char err[512] = "";
    val__files files = {0};
    const char *argv[ARGV_MAX];
    int argc = 0;

    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(in->task, "tests");
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(tests, "command");
    if (!cJSON_IsArray(cmd) || cJSON_GetArraySize(cmd) == 0 || cJSON_GetArraySize(cmd) > ARGV_MAX) {
        val_verdict_fail(&v, "tests", "sandbox_error",
                         "the task has no tests.command (a non-empty array of strings)", NULL);
        goto report;
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, cmd)
    {
        if (!cJSON_IsString(a)) {
            val_verdict_fail(&v, "tests", "sandbox_error",
                             "tests.command must contain only strings", NULL);
            goto report;
        }
        argv[argc++] = a->valuestring;
    }
    if (val__task_files(in, code, 1, &files, err, sizeof err) < 0) {
        val_verdict_fail(&v, "tests", "sandbox_error", err, NULL);
        goto report;
    }

    run *x = wk_xcalloc(1, sizeof *x);
    x->done = done;
    x->arg = arg;
    x->baseline = in->baseline;
    val__sbx_spec spec = {
        .argv = argv,
        .argc = argc,
        .files = files.v,
        .nfiles = files.n,
        .hostdir = in->workdir, /* after "patch": the patched tree */
        .node_asserts = 1,
    };
    val__sandbox_start(env, &spec, on_result, x);
    goto cleanup;

report:
    done(arg, &v);
    val_verdict_clear(&v);
cleanup:
    val__files_release(&files);
    return 0;
}

int val_tests_run(val_env *env, const cJSON *task, const char *dir, int run_no, val_run_cb cb,
                  void *arg)
{
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(task, "tests"), "command");
    int n = cJSON_IsArray(cmd) ? cJSON_GetArraySize(cmd) : 0;
    if (!env || n == 0 || n > ARGV_MAX - 2)
        return WK_EINVAL;
    const char *argv[ARGV_MAX];
    char runvar[40];
    int argc = 0;
    /* env(1) puts the run number into the otherwise empty environment of the command. */
    snprintf(runvar, sizeof runvar, "CASCADE_TEST_RUN=%d", run_no);
    argv[argc++] = "/usr/bin/env";
    argv[argc++] = runvar;
    const cJSON *a;
    cJSON_ArrayForEach(a, cmd)
    {
        if (!cJSON_IsString(a))
            return WK_EINVAL;
        argv[argc++] = a->valuestring;
    }
    val_input in = {.task = task, .workdir = dir};
    val__files files = {0};
    char err[512] = "";
    if (val__task_files(&in, "", 1, &files, err, sizeof err) < 0)
        return WK_EINVAL;
    run *x = wk_xcalloc(1, sizeof *x);
    x->run_cb = cb;
    x->arg = arg;
    val__sbx_spec spec = {
        .argv = argv,
        .argc = argc,
        .files = files.v,
        .nfiles = files.n,
        .hostdir = dir,
        .node_asserts = 1,
    };
    val__sandbox_start(env, &spec, on_result, x);
    val__files_release(&files);
    return 0;
}

/*
 * What a task run through tests must have: tests.command, a non-empty array
 * of strings. Checked at intake, so a task without it costs no model call.
 */
static int tests_check_task(const cJSON *task, const cJSON *schema, char *why, size_t whylen)
{
    (void)schema;
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(task, "tests");
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(tests, "command");
    int ok = cJSON_IsArray(cmd) && cJSON_GetArraySize(cmd) > 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, cmd) ok = ok && cJSON_IsString(a);
    if (ok)
        return 0;
    snprintf(why, whylen, "runs tests but tests.command is missing or not an array of strings");
    /* An array that is empty or holds a non-string is given, but unusable. */
    return cJSON_IsArray(cmd) ? WK_EINVAL : WK_ENOTFOUND;
}

const val_ops val__tests_ops = {
    .name = "tests",
    .start = tests_start,
    .check_task = tests_check_task,
    .sandboxed = 1,
};
