/*
 * The verdict made of a sandboxed run, for the compile and tests validators:
 * how the command ended (exit status, signal, the wall clock, the output cap,
 * a changed test file, the sandbox's own errors) read into a reason, a
 * one-line message and the output as evidence, /box/ paths made relative.
 */
#include "sandbox.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validators/val_int.h"

/* Lines of output kept as evidence: enough for a traceback's last frames. */
#define EVIDENCE_LINES 20

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
    char *out = wk_buf_detach(&b, NULL);
    return out ? out : wk_xstrdup("");
}

static const char *const error_marks[] = {"Error",     "error:", "error[", "FAIL",
                                          "Assertion", "assert", NULL};

static int has_error_mark(const char *line)
{
    for (int i = 0; error_marks[i]; i++)
        if (strstr(line, error_marks[i]))
            return 1;
    return 0;
}

/*
 * The line that best sums up a failure, for the one-line message. After a
 * run of tests: the last line naming an error (tracebacks end with it). After
 * a compiler: the first (later errors often follow from it). Else the last
 * or first line with text. Caller frees.
 */
static char *summary_line(const char *s, int first)
{
    char *text = first ? wk_head_lines(s, EVIDENCE_LINES, VAL_EVIDENCE_MAX)
                       : val__tail_lines(s, strlen(s), EVIDENCE_LINES, VAL_EVIDENCE_MAX);
    char *best = NULL;
    char *any = NULL;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (line[strspn(line, " \t\r")] && (!first || !any))
            any = line;
        if (has_error_mark(line) && (!first || !best))
            best = line;
        line = nl ? nl + 1 : NULL;
    }
    char *pick = best ? best : any;
    char *out = wk_xstrndup(pick ? pick : "", pick ? strnlen(pick, 200) : 0);
    free(text);
    return out;
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV (segmentation fault)";
    case SIGABRT:
        return "SIGABRT (abort)";
    case SIGBUS:
        return "SIGBUS (bus error)";
    case SIGFPE:
        return "SIGFPE (arithmetic error)";
    case SIGILL:
        return "SIGILL (illegal instruction)";
    case SIGXFSZ:
        return "SIGXFSZ (file size limit)";
    case SIGPIPE:
        return "SIGPIPE (broken pipe)";
    case SIGTERM:
        return "SIGTERM";
    case SIGTRAP:
        return "SIGTRAP";
    case SIGSYS:
        return "SIGSYS (bad system call)";
    }
    return "a signal";
}

static int contains_any(const char *out, const char *const *marks)
{
    for (int i = 0; marks[i]; i++)
        if (strstr(out, marks[i]))
            return 1;
    return 0;
}

/* Out-of-memory as the common runtimes report it under RLIMIT_AS. */
static int looks_like_oom(const char *out)
{
    static const char *const marks[] = {
        "MemoryError",
        "std::bad_alloc",
        "JavaScript heap out of memory",
        "Cannot allocate memory",
        "out of memory",
        "OutOfMemoryError",
        NULL,
    };
    return contains_any(out, marks);
}

/* A write refused by the file-size limit or a full tmpfs, as the runtimes report it. */
static int looks_like_disk_full(const char *out)
{
    static const char *const marks[] = {
        "File too large",
        "No space left on device",
        "Disk quota exceeded",
        NULL,
    };
    return contains_any(out, marks);
}

void val__judge(const char *validator, const char *fail_reason, int head_evidence,
                const val__sbx_result *r, val_verdict *v)
{
    char *out = NULL;
    char *ev = NULL;
    char *msg = NULL;
    const val_limits *l = r->limits;

    if (!r->spawned) {
        val_verdict_fail(v, validator, "sandbox_error", r->error, NULL);
        return;
    }
    out = strip_box(r->output, r->output_len);
    ev = head_evidence ? wk_head_lines(out, EVIDENCE_LINES, VAL_EVIDENCE_MAX)
                       : val__tail_lines(out, strlen(out), EVIDENCE_LINES, VAL_EVIDENCE_MAX);
    int64_t st = r->exit_status;
    /* The sandbox reports a signal that ended the command as 128 + signal. */
    int sig = r->term_signal ? r->term_signal : (st > 128 && st < 128 + 65 ? (int)st - 128 : 0);

    if (r->output_capped) {
        /* The start of a flood says what it is; its end is more of the same. */
        char *head = wk_head_lines(out, EVIDENCE_LINES, VAL_EVIDENCE_MAX);
        msg =
            wk_xasprintf("the command printed more than %zu bytes and was stopped", l->output_cap);
        val_verdict_fail(v, validator, "output_limit", msg, head);
        free(head);
    } else if (r->timed_out) {
        msg = wk_xasprintf("the command ran longer than %u ms (wall clock) and was killed",
                           l->timeout_ms);
        val_verdict_fail(v, validator, "timeout", msg, ev);
    } else if (r->tests_modified) {
        msg = wk_xasprintf("the test file %s was changed, replaced or removed during the run; "
                           "the answer must not touch the tests",
                           r->modified ? r->modified : "?");
        val_verdict_fail(v, validator, "tests_modified", msg, ev);
    } else if (r->planted) {
        msg = wk_xasprintf("the run added %s, a file that shadows the test harness; the answer "
                           "must not plant modules the tests load",
                           r->planted);
        val_verdict_fail(v, validator, "harness_tampered", msg, ev);
    } else if (r->cg_oom && (st != 0 || r->term_signal)) {
        msg = wk_xasprintf("the sandbox used more than its %lu MiB of memory (processes, "
                           "shared memory and files together) and was killed",
                           (l->mem_bytes + 3 * l->tmpfs_bytes) >> 20);
        val_verdict_fail(v, validator, "memory", msg, ev);
    } else if (st == 0 && !r->term_signal && r->harnessed && !r->finished) {
        /* Status 0 is not evidence: the harness saw the tests reach their end, or they did not. */
        val_verdict_fail(v, validator, "unfinished",
                         "the test command exited 0 but the tests did not run to their end (no "
                         "completion from cascade's harness): the answer ended the process early "
                         "or tampered with the test run",
                         ev);
    } else if (st == 0 && !r->term_signal) {
        val_verdict_pass(v);
    } else if (st == 125 && strstr(out, "cascade-sandbox:")) {
        char *first = wk_head_lines(strstr(out, "cascade-sandbox:"), 1, 200);
        val_verdict_fail(v, validator, "sandbox_error", first, ev);
        free(first);
    } else if (sig == SIGXCPU || sig == SIGKILL) {
        /* We did not kill it, so SIGKILL came from the hard CPU limit. */
        msg = wk_xasprintf("the command used more than %u s of CPU time and was killed", l->cpu_s);
        val_verdict_fail(v, validator, "timeout", msg, ev);
    } else if (sig == SIGXFSZ) {
        msg = wk_xasprintf("the command wrote a file past the %lu MiB file-size limit",
                           l->fsize_bytes >> 20);
        val_verdict_fail(v, validator, "output_limit", msg, ev);
    } else if (sig) {
        msg = wk_xasprintf("the command was killed by %s", signal_name(sig));
        val_verdict_fail(v, validator, looks_like_oom(out) ? "memory" : "crashed", msg, ev);
    } else if (st == 126 || st == 127) {
        msg = wk_xasprintf("the command could not be run (exit status %d: %s)", (int)st,
                           st == 127 ? "not found" : "not executable");
        val_verdict_fail(v, validator, "sandbox_error", msg, ev);
    } else if (st == 1 && strncmp(out, "bwrap: ", 7) == 0) {
        /* bwrap says why it failed before anything of the task ran. */
        char *first = wk_head_lines(out, 1, 200);
        msg = wk_xasprintf("the sandbox could not start: %s", first);
        free(first);
        val_verdict_fail(v, validator, "sandbox_error", msg, ev);
    } else if (looks_like_oom(out)) {
        char *line = summary_line(out, head_evidence);
        msg = wk_xasprintf("out of memory (limit %lu MiB): %s", l->mem_bytes >> 20, line);
        val_verdict_fail(v, validator, "memory", msg, ev);
        free(line);
    } else if (looks_like_disk_full(out)) {
        char *line = summary_line(out, head_evidence);
        msg = wk_xasprintf("the command filled the sandbox's disk (%lu MiB) or passed the "
                           "file-size limit (%lu MiB): %s",
                           l->tmpfs_bytes >> 20, l->fsize_bytes >> 20, line);
        val_verdict_fail(v, validator, "output_limit", msg, ev);
        free(line);
    } else {
        char *line = summary_line(out, head_evidence);
        msg = wk_xasprintf("%s (exit status %d): %s",
                           strcmp(fail_reason, "compile_error") == 0 ? "compile failed"
                                                                     : "tests failed",
                           (int)st, line);
        val_verdict_fail(v, validator, fail_reason, msg, ev);
        free(line);
    }
    free(msg);
    free(ev);
    free(out);
}
