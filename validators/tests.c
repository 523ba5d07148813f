/*
 * The tests validator: puts the task's files, the answer and the test files
 * into a fresh sandbox, runs the task's test command there and turns what
 * happened into a verdict. The evidence is the end of the output, where
 * tracebacks and assertion messages are.
 *
 * Also here, shared with the compile validator: the files of a run built from
 * a task, the answer's file name, and the verdict made of a sandboxed run.
 */
#include "val_int.h"

#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lines of output kept as evidence: enough for a traceback's last frames. */
#define EVIDENCE_LINES 20
/* Arguments a test command may have. */
#define ARGV_MAX 256

typedef struct run {
    val_done_cb done;
    void *arg;
} run;

/* ---- the files of a run ------------------------------------------------------ */

void val__files_release(val__files *f)
{
    for (int i = 0; i < f->n; i++) {
        free((char *)f->v[i].path);
        free((char *)f->v[i].data);
    }
    free(f->v);
    free(f->answer_name);
    memset(f, 0, sizeof *f);
}

static int add_file(val__files *f, const char *path, char *data, size_t len, int readonly,
                    char *err, size_t errlen)
{
    if (f->n >= VAL__FILES_MAX) {
        free(data);
        snprintf(err, errlen, "the task has more than %d files", VAL__FILES_MAX);
        return WK_ETOOBIG;
    }
    if (!val__path_ok(path)) {
        free(data);
        snprintf(err, errlen,
                 "bad file path \"%.255s\": it must be relative, without \"..\", "
                 "at most 255 bytes, without control characters or backslashes",
                 path);
        return WK_EINVAL;
    }
    f->v = wk_xrealloc(f->v, ((size_t)f->n + 1) * sizeof *f->v);
    f->v[f->n++] = (val__sbx_file){wk_xstrdup(path), data, len, readonly};
    return 0;
}

/* Checks that `files` is an object of path -> string content; NULL is an empty one. */
static int check_files(const cJSON *files, const char *what, char *err, size_t errlen)
{
    if (!files)
        return 0;
    if (!cJSON_IsObject(files)) {
        snprintf(err, errlen, "%s must be an object of path -> content", what);
        return WK_EINVAL;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (!cJSON_IsString(f)) {
            snprintf(err, errlen, "%s: \"%.200s\" must have a string content", what, f->string);
            return WK_EINVAL;
        }
    }
    return 0;
}

int val__task_files(const val_input *in, const char *code, int with_tests, val__files *out,
                    char *err, size_t errlen)
{
    int rc = 0;
    const cJSON *task = in->task;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(task, "files");
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(task, "tests");
    const cJSON *tfiles = with_tests ? cJSON_GetObjectItemCaseSensitive(tests, "files") : NULL;
    memset(out, 0, sizeof *out);
    if ((rc = check_files(files, "task files", err, errlen)) < 0 ||
        (rc = check_files(tfiles, "tests.files", err, errlen)) < 0)
        goto cleanup;
    out->answer_name = val__answer_name(in, code);
    if (in->workdir)
        goto tests; /* a patched tree is the code: it is copied in whole, the answer was a diff */

    /* Order matters: context files, then the answer, then the tests (which win). */
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (strcmp(f->string, out->answer_name) == 0 ||
            cJSON_GetObjectItemCaseSensitive(tfiles, f->string))
            continue;
        rc = add_file(out, f->string, wk_xstrdup(f->valuestring), strlen(f->valuestring), 0, err,
                      errlen);
        if (rc < 0)
            goto cleanup;
    }
    /* A file of the answer's name is a prelude (imports, a header) the code follows. */
    const cJSON *prelude = cJSON_GetObjectItemCaseSensitive(files, out->answer_name);
    char *content;
    if (cJSON_IsString(prelude) && prelude->valuestring[0]) {
        size_t pl = strlen(prelude->valuestring);
        int nl = prelude->valuestring[pl - 1] != '\n';
        content = wk_xasprintf("%s%s%s\n", prelude->valuestring, nl ? "\n" : "", code);
    } else {
        content = wk_xasprintf("%s\n", code);
    }
    rc = add_file(out, out->answer_name, content, strlen(content), 0, err, errlen);
    if (rc < 0)
        goto cleanup;
tests:
    cJSON_ArrayForEach(f, tfiles)
    {
        rc = add_file(out, f->string, wk_xstrdup(f->valuestring), strlen(f->valuestring), 1, err,
                      errlen);
        if (rc < 0)
            goto cleanup;
    }
cleanup:
    if (rc < 0)
        val__files_release(out);
    return rc;
}

/* Skips whitespace and comments (// and / * * /) from p; returns where code resumes. */
static const char *skip_space(const char *p)
{
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (p[0] == '/' && p[1] == '/') {
            p = strchrnul(p, '\n');
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*"
                                          "/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            return p;
        }
    }
}

/* Copies the identifier at p into out (size n); returns its length (0 if none). */
static size_t ident(const char *p, char *out, size_t n)
{
    size_t len = 0;
    while ((isalnum((unsigned char)p[len]) || p[len] == '_' || p[len] == '$' || p[len] == '-') &&
           len + 1 < n) {
        out[len] = p[len];
        len++;
    }
    out[len] = '\0';
    return len;
}

/* The first public top-level type of Java source, or NULL. Caller frees. */
static char *java_public_type(const char *code)
{
    static const char *const mods[] = {"final",  "abstract", "sealed", "non-sealed",
                                       "static", "strictfp", NULL};
    static const char *const kinds[] = {"class", "interface", "enum", "record", NULL};
    char word[128];
    /* A scan of words; only a "public" that starts a declaration is looked at closely. */
    for (const char *p = skip_space(code); *p; p = skip_space(p)) {
        size_t n = ident(p, word, sizeof word);
        if (n == 0) {
            if (*p == '"') { /* a string literal: skip it whole */
                for (p++; *p && *p != '"'; p++)
                    if (*p == '\\' && p[1])
                        p++;
                if (*p)
                    p++;
            } else {
                p++;
            }
            continue;
        }
        p += n;
        if (strcmp(word, "public") != 0)
            continue;
        const char *q = skip_space(p);
        for (;;) {
            size_t m = ident(q, word, sizeof word);
            int is_mod = 0;
            for (int i = 0; mods[i]; i++)
                is_mod |= m && strcmp(word, mods[i]) == 0;
            if (!is_mod)
                break;
            q = skip_space(q + m);
        }
        size_t m = ident(q, word, sizeof word);
        int is_kind = 0;
        for (int i = 0; kinds[i]; i++)
            is_kind |= m && strcmp(word, kinds[i]) == 0;
        if (!is_kind)
            continue;
        q = skip_space(q + m);
        if (ident(q, word, sizeof word) > 0 && !strchr(word, '-'))
            return wk_xstrdup(word);
    }
    return NULL;
}

char *val__answer_name(const val_input *in, const char *code)
{
    const cJSON *af = cJSON_GetObjectItemCaseSensitive(in->task, "answer_file");
    if (cJSON_IsString(af) && af->valuestring[0])
        return wk_xstrdup(af->valuestring);
    const char *lang = val_lang_canonical(in->language);
    if (lang && strcmp(lang, "java") == 0 && code) {
        /* javac insists that a public class Foo lives in Foo.java. */
        char *type = java_public_type(code);
        if (type) {
            char *name = wk_xasprintf("%s.java", type);
            free(type);
            return name;
        }
    }
    return wk_xasprintf("solution.%s", val_lang_ext(in->language));
}

/* ---- the verdict of a sandboxed run ---------------------------------------------- */

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

/* ---- the validator ------------------------------------------------------------ */

static void on_result(void *arg, const val__sbx_result *r)
{
    run *x = arg;
    val_verdict v = {0};
    val__judge("tests", "failed", 0, r, &v);
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

const val_ops val__tests_ops = {"tests", tests_start};
