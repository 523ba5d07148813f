/*
 * The tests validator: writes the task's files, the answer and the test files
 * into a fresh directory, runs the task's test command in the sandbox and
 * turns what happened into a verdict. The evidence is the end of the output,
 * where tracebacks and assertion messages are.
 */
#include "val_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lines of output kept as evidence: enough for a traceback's last frames. */
#define EVIDENCE_LINES 20
/* Arguments a test command may have. */
#define ARGV_MAX 256

typedef struct run {
    val_env *env;
    char *hostdir;
    val_done_cb done;
    void *arg;
} run;

/* Fails v with reason sandbox_error for a malformed task. */
static void task_error(val_verdict *v, const char *msg)
{
    val_verdict_fail(v, "tests", "sandbox_error", msg, NULL);
}

/* Writes every entry of `files` (an object path -> content), skipping `skip`. */
static int write_files(const char *dir, const cJSON *files, const char *skip, char *err,
                       size_t errlen)
{
    if (!files)
        return 0;
    if (!cJSON_IsObject(files)) {
        snprintf(err, errlen, "task files must be an object of path -> content");
        return WK_EINVAL;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (skip && strcmp(f->string, skip) == 0)
            continue;
        if (!cJSON_IsString(f)) {
            snprintf(err, errlen, "task file \"%.200s\" must have a string content", f->string);
            return WK_EINVAL;
        }
        int rc = val__hostdir_write(dir, f->string, f->valuestring, strlen(f->valuestring), err,
                                    errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* Output with "/box/" dropped, so paths read as the model's relative names. Caller frees. */
static char *strip_box(const char *s, size_t n)
{
    wk_buf b;
    wk_buf_init(&b, n + 1);
    for (size_t i = 0; i < n;) {
        if (n - i >= 5 && memcmp(s + i, "/box/", 5) == 0) {
            i += 5;
            continue;
        }
        wk_buf_append(&b, s + i, 1);
        i++;
    }
    return wk_buf_detach(&b, NULL);
}

/*
 * The line that best sums up a failure, for the one-line message: the last
 * line naming an error (tracebacks and compilers end with notes and context),
 * else the last line with text. Caller frees.
 */
static char *summary_line(const char *s)
{
    static const char *const marks[] = {"Error", "error:", "FAIL", "Assertion", "assert", NULL};
    char *tail = val__tail_lines(s, strlen(s), EVIDENCE_LINES, VAL_EVIDENCE_MAX);
    char *best = NULL;
    for (char *line = tail; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        for (int i = 0; marks[i]; i++)
            if (strstr(line, marks[i]))
                best = line;
        line = nl ? nl + 1 : NULL;
    }
    char *out = best ? wk_xstrndup(best, strnlen(best, 200)) : NULL;
    free(tail);
    return out ? out : val__tail_lines(s, strlen(s), 1, 200);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV (segmentation fault)";
    case SIGABRT: return "SIGABRT (abort)";
    case SIGBUS: return "SIGBUS (bus error)";
    case SIGFPE: return "SIGFPE (arithmetic error)";
    case SIGILL: return "SIGILL (illegal instruction)";
    case SIGXFSZ: return "SIGXFSZ (file size limit)";
    case SIGPIPE: return "SIGPIPE (broken pipe)";
    case SIGTERM: return "SIGTERM";
    case SIGTRAP: return "SIGTRAP";
    case SIGSYS: return "SIGSYS (bad system call)";
    }
    return "a signal";
}

/* Out-of-memory as the common runtimes report it under RLIMIT_AS. */
static int looks_like_oom(const char *out)
{
    static const char *const marks[] = {
        "MemoryError", "std::bad_alloc", "JavaScript heap out of memory",
        "Cannot allocate memory", "out of memory", NULL,
    };
    for (int i = 0; marks[i]; i++)
        if (strstr(out, marks[i]))
            return 1;
    return 0;
}

/* Turns what the sandbox saw into a verdict. */
static void judge(val_env *env, const val__sbx_result *r, val_verdict *v)
{
    char *out = NULL;
    char *tail = NULL;
    char *msg = NULL;
    const val_limits *l = &env->limits;

    if (!r->spawned) {
        val_verdict_fail(v, "tests", "sandbox_error", r->error, NULL);
        return;
    }
    out = strip_box(r->output, r->output_len);
    tail = val__tail_lines(out, strlen(out), EVIDENCE_LINES, VAL_EVIDENCE_MAX);
    int64_t st = r->exit_status;
    /* The sandbox reports a signal that ended the command as 128 + signal. */
    int sig = r->term_signal ? r->term_signal : (st > 128 && st < 128 + 65 ? (int)st - 128 : 0);

    if (r->output_capped) {
        /* The start of a flood says what it is; its end is more of the same. */
        char *head = wk_head_lines(out, EVIDENCE_LINES, VAL_EVIDENCE_MAX);
        msg = wk_xasprintf("the command printed more than %zu bytes and was stopped",
                           l->output_cap);
        val_verdict_fail(v, "tests", "output_limit", msg, head);
        free(head);
    } else if (r->timed_out) {
        msg = wk_xasprintf("the command ran longer than %u ms (wall clock) and was killed",
                           l->timeout_ms);
        val_verdict_fail(v, "tests", "timeout", msg, tail);
    } else if (st == 0 && !r->term_signal) {
        val_verdict_pass(v);
    } else if (sig == SIGXCPU || sig == SIGKILL) {
        /* We did not kill it, so SIGKILL came from the hard CPU limit. */
        msg = wk_xasprintf("the command used more than %u s of CPU time and was killed", l->cpu_s);
        val_verdict_fail(v, "tests", "timeout", msg, tail);
    } else if (sig) {
        msg = wk_xasprintf("the command was killed by %s", signal_name(sig));
        val_verdict_fail(v, "tests", looks_like_oom(out) ? "memory" : "crashed", msg, tail);
    } else if (st == 125 && strstr(out, "cascade-sandbox:")) {
        val_verdict_fail(v, "tests", "sandbox_error", "could not copy the task files into the sandbox",
                         tail);
    } else if (st == 126 || st == 127) {
        msg = wk_xasprintf("the test command could not be run (exit status %d: %s)", (int)st,
                           st == 127 ? "not found" : "not executable");
        val_verdict_fail(v, "tests", "sandbox_error", msg, tail);
    } else if (st == 1 && (strncmp(out, "bwrap: ", 7) == 0 || strncmp(out, "prlimit: ", 9) == 0)) {
        /* The tools say why they failed before anything of the task ran. */
        char *first = wk_head_lines(out, 1, 200);
        msg = wk_xasprintf("the sandbox could not start: %s", first);
        free(first);
        val_verdict_fail(v, "tests", "sandbox_error", msg, tail);
    } else {
        char *last = summary_line(out);
        if (looks_like_oom(out))
            msg = wk_xasprintf("out of memory (limit %lu MiB): %s", l->mem_bytes >> 20, last);
        else
            msg = wk_xasprintf("tests failed (exit status %d): %s", (int)st, last);
        val_verdict_fail(v, "tests", looks_like_oom(out) ? "memory" : "failed", msg, tail);
        free(last);
    }
    free(msg);
    free(tail);
    free(out);
}

static void on_result(void *arg, const val__sbx_result *r)
{
    run *x = arg;
    val_verdict v = {0};
    judge(x->env, r, &v);
    val__hostdir_remove(x->hostdir);
    val_done_cb done = x->done;
    void *darg = x->arg;
    free(x->hostdir);
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
    char *dir = NULL;
    char *answer_name = NULL;
    char *content = NULL;
    const char *argv[ARGV_MAX];
    int argc = 0;

    const cJSON *task = in->task;
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(task, "tests");
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(tests, "command");
    if (!cJSON_IsArray(cmd) || cJSON_GetArraySize(cmd) == 0 ||
        cJSON_GetArraySize(cmd) > ARGV_MAX) {
        task_error(&v, "the task has no tests.command (a non-empty array of strings)");
        goto report;
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, cmd)
    {
        if (!cJSON_IsString(a)) {
            task_error(&v, "tests.command must contain only strings");
            goto report;
        }
        argv[argc++] = a->valuestring;
    }

    const cJSON *af = cJSON_GetObjectItemCaseSensitive(task, "answer_file");
    if (cJSON_IsString(af) && af->valuestring[0])
        answer_name = wk_xstrdup(af->valuestring);
    else
        answer_name = wk_xasprintf("solution.%s", val_lang_ext(in->language));

    if (val__hostdir_make(&dir, err, sizeof err) < 0) {
        task_error(&v, err);
        goto report;
    }
    /* Order matters: context files, then the answer, then the tests (which win). */
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(task, "files");
    if (write_files(dir, files, answer_name, err, sizeof err) < 0) {
        task_error(&v, err);
        goto report;
    }
    /* A file of the answer's name is a prelude (imports, a header) the code follows. */
    const cJSON *prelude = cJSON_IsObject(files)
                               ? cJSON_GetObjectItemCaseSensitive(files, answer_name)
                               : NULL;
    if (cJSON_IsString(prelude) && prelude->valuestring[0]) {
        size_t pl = strlen(prelude->valuestring);
        int nl = prelude->valuestring[pl - 1] != '\n';
        content = wk_xasprintf("%s%s%s\n", prelude->valuestring, nl ? "\n" : "", code);
    } else {
        content = wk_xasprintf("%s\n", code);
    }
    if (val__hostdir_write(dir, answer_name, content, strlen(content), err, sizeof err) < 0) {
        task_error(&v, err);
        goto report;
    }
    if (write_files(dir, cJSON_GetObjectItemCaseSensitive(tests, "files"), NULL, err,
                    sizeof err) < 0) {
        task_error(&v, err);
        goto report;
    }

    run *x = wk_xcalloc(1, sizeof *x);
    x->env = env;
    x->hostdir = dir;
    dir = NULL; /* the run owns it now and removes it when done */
    x->done = done;
    x->arg = arg;
    val__sandbox_run(env, x->hostdir, argv, argc, on_result, x);
    goto cleanup;

report:
    if (dir)
        val__hostdir_remove(dir);
    done(arg, &v);
    val_verdict_clear(&v);
cleanup:
    free(dir);
    free(answer_name);
    free(content);
    return 0;
}

const val_ops val__tests_ops = {"tests", tests_start};
