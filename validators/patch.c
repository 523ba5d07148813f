/*
 * The patch validator: the answer is a unified diff that must apply cleanly
 * to the task's repository ("repo": {"path", "base"}) at the base commit.
 * The diff handling and libgit2 live in vcs/ (read as git apply reads it,
 * paths confined, applied to the base tree in memory, the patched tree
 * written into a fresh temporary directory that later validators, tests,
 * can run in); this file turns what vcs/ finds into a verdict a model can
 * act on. The user's repository is only read.
 *
 * Every path the diff touches is confined before anything is applied or
 * written: absolute paths, "." and ".." components, anything under .git/,
 * paths through or onto a symlink or a submodule of the base tree, new
 * symlinks, and control characters are refused (unsafe_path), and so are
 * binary patches (binary_patch). A hunk that does not apply is named in the
 * evidence with the lines it expected and the lines the file has there. The
 * verdict's note says when a diff needed recounting or placing (vcs.h).
 *
 * Verdict reasons: bad_diff, unsafe_path, binary_patch, does_not_apply,
 * empty_patch (no diff, a file without hunks, or a diff that changes nothing
 * once applied), too_big (diff over val_input.max_patch_bytes or
 * VCS_DIFF_MAX, tree over its cap), no_repo (task without "repo"),
 * repo_error (the repository or base cannot be read, or the checkout failed).
 */
#include "val_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validators/sandbox/sandbox.h"
#include "vcs/vcs.h"

/* Files one diff may touch. */
#define PATCH_FILES_MAX 500
/* Entries of the patched tree we check out into the temporary directory. */
#define PATCH_TREE_ENTRIES_MAX 100000
/* Lines of a failing hunk (and of the file there) quoted in the evidence. */
#define SHOW_LINES 8
/* Bytes of one quoted line. */
#define SHOW_LINE_MAX 160

/* The evidence of every unsafe_path verdict: what a patch may do. */
static const char unsafe_hint[] =
    "A patch may only change regular files inside the repository, by relative paths without "
    "\".\" or \"..\", outside .git/, and not through or into symlinks.";

static const char bad_diff_hint[] =
    "Expected a unified diff: \"--- a/FILE\" and \"+++ b/FILE\" lines, then hunks "
    "\"@@ -l,n +l,n @@\" of context (space), removed (-) and added (+) lines.";

static const char binary_hint[] = "Binary patches are not accepted; change text files only.";

int val_workdir_make(char **out, char *err, size_t errlen)
{
    char *dir = NULL;
    int rc = val__hostdir_make(&dir, err, errlen);
    if (rc < 0)
        return rc;
    if (dir[0] != '/') {
        char *abs = realpath(dir, NULL);
        if (!abs) {
            val__hostdir_remove(dir);
            free(dir);
            return wk_errf(WK_EIO, err, errlen, "cannot resolve the temporary directory");
        }
        free(dir);
        dir = abs;
    }
    *out = dir;
    return 0;
}

void val_workdir_free(char *dir)
{
    if (!dir)
        return;
    val__hostdir_remove(dir);
    free(dir);
}

/* One validation: what it holds, released in patch_start's cleanup. */
typedef struct job {
    const val_input *in;
    val_verdict *v;
    wk_buf ev; /* evidence being built */
    char *msg;
    vcs_diff *diff;
    vcs_base *base;
    vcs_tree *result;
    char *dir; /* the patched tree, once checked out */
    int recounted, moved;
} job;

/* Sets a failing verdict with a formatted message (kept in j->msg until cleanup). */
static int job_fail(job *j, const char *reason, const char *evidence, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int job_fail(job *j, const char *reason, const char *evidence, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    free(j->msg);
    j->msg = wk_xmalloc((size_t)(n > 0 ? n : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(j->msg, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    val_verdict_fail(j->v, "patch", reason, j->msg, evidence);
    return 1;
}

/* The task's repository: 1 with path and base (HEAD when not given), 0 when it has none. */
static int task_repo(const cJSON *task, const char **path, const char **base)
{
    const cJSON *repo_j = task ? cJSON_GetObjectItemCaseSensitive(task, "repo") : NULL;
    const cJSON *path_j = cJSON_GetObjectItemCaseSensitive(repo_j, "path");
    const cJSON *base_j = cJSON_GetObjectItemCaseSensitive(repo_j, "base");
    if (!cJSON_IsString(path_j) || (base_j && !cJSON_IsString(base_j)))
        return 0;
    *path = path_j->valuestring;
    *base = base_j ? base_j->valuestring : "HEAD";
    return 1;
}

/* Reads and parses the diff. Returns 0, or 1 with the verdict set. */
static int read_diff(job *j, const char *code)
{
    size_t cap = j->in->max_patch_bytes && j->in->max_patch_bytes < VCS_DIFF_MAX
                     ? j->in->max_patch_bytes
                     : VCS_DIFF_MAX;
    if (code[strspn(code, " \t\r\n")] == '\0')
        return job_fail(j, "empty_patch", NULL, "the answer holds no diff");
    if (strlen(code) > cap)
        return job_fail(j, "too_big", NULL, "the diff is %zu bytes, more than the %zu allowed",
                        strlen(code), cap);
    char err[400];
    int rc = vcs_diff_read(&j->diff, code, &j->recounted, err, sizeof err);
    if (rc == WK_EINVAL) {
        char *shown = wk_escape_ctl(err, strlen(err), 300);
        job_fail(j, "unsafe_path", unsafe_hint, "the diff names %s", shown);
        free(shown);
        return 1;
    }
    if (rc == WK_ETOOBIG)
        return job_fail(j, "too_big", NULL, "the diff is too large once normalized");
    if (rc < 0) {
        /* A binary patch libgit2 cannot parse is still a binary patch. */
        char *name = NULL;
        if (vcs_diff_binary(code, &name)) {
            job_fail(j, "binary_patch", binary_hint, "the diff has a binary patch%s%s%s",
                     name ? " for \"" : "", name ? name : "", name ? "\"" : "");
            free(name);
            return 1;
        }
        return job_fail(j, "bad_diff", bad_diff_hint,
                        "the answer is not a unified diff that parses: %s", err);
    }
    size_t n = vcs_diff_nfiles(j->diff);
    if (n == 0)
        return job_fail(j, "bad_diff", bad_diff_hint, "the diff changes no file");
    if (n > PATCH_FILES_MAX)
        return job_fail(j, "too_big", NULL, "the diff touches %zu files, more than %d", n,
                        PATCH_FILES_MAX);
    /* "--- a/x" and "+++ b/x" with nothing after them: a diff that forgot its change. */
    const char *empty = vcs_diff_empty_file(j->diff);
    if (empty)
        return job_fail(j, "empty_patch", bad_diff_hint,
                        "the diff names \"%s\" but has no hunk for it", empty);
    return 0;
}

/* Opens the repository at the base tree. Returns 0 or 1. */
static int open_base(job *j)
{
    const char *path, *base;
    char err[512];
    task_repo(j->in->task, &path, &base); /* checked in patch_start */
    int rc = vcs_base_open(&j->base, path, base, err, sizeof err);
    if (rc == WK_ENOTFOUND)
        return job_fail(j, "repo_error", NULL, "cannot read %.200s at %.100s: %s", path, base, err);
    if (rc < 0)
        return job_fail(j, "repo_error", NULL, "cannot set up an in-memory object store: %s", err);
    return 0;
}

/* Checks the diff's paths against the rules and the base tree. Returns 0 or 1. */
static int confine(job *j)
{
    vcs_refusal r;
    if (!vcs_confine(j->diff, j->base, &r))
        return 0;
    const char *path = r.path ? r.path : "";
    char *shown = NULL;
    switch (r.kind) {
    case VCS_UNSAFE_PATH:
        shown = wk_escape_ctl(path, strlen(path), 200);
        if (r.at[0])
            job_fail(j, "unsafe_path", unsafe_hint, "the diff %s (%s) at \"%s\"", r.why, r.at,
                     shown);
        else
            job_fail(j, "unsafe_path", unsafe_hint, "the diff names %s: \"%s\"", r.why, shown);
        break;
    case VCS_MAKES_LINK:
    case VCS_MAKES_MODULE:
        job_fail(j, "unsafe_path", NULL, "the diff makes \"%s\" a %s", path,
                 r.kind == VCS_MAKES_LINK ? "symlink" : "submodule");
        break;
    case VCS_BINARY:
        job_fail(j, "binary_patch", binary_hint, "the diff has a binary patch for \"%s\"", path);
        break;
    case VCS_EXISTS:
    case VCS_MISSING:
        wk_buf_appendf(&j->ev, "file: %s\n", path);
        job_fail(j, "does_not_apply", j->ev.buf, "the diff %s \"%s\", which %s",
                 r.kind == VCS_EXISTS ? "creates" : "changes", path,
                 r.kind == VCS_EXISTS ? "already exists" : "does not exist");
        break;
    default:
        job_fail(j, "repo_error", NULL, "the diff was refused");
        break;
    }
    free(shown);
    return 1;
}

/* Places the hunks where their context is. Returns 0 or 1. */
static int place(job *j)
{
    char err[512];
    int rc = vcs_diff_place(j->diff, j->base, &j->moved, err, sizeof err);
    if (rc == WK_ETOOBIG)
        return job_fail(j, "too_big", NULL, "the diff is too large once normalized");
    if (rc < 0)
        return job_fail(j, "bad_diff", bad_diff_hint,
                        "the diff does not parse once its hunks are placed: %s", err);
    return 0;
}

/* Appends one quoted line (capped, newline dropped) to the evidence in arg. */
static void show_line(void *arg, char origin, const char *s, size_t n)
{
    wk_buf *b = arg;
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    size_t take = n > SHOW_LINE_MAX ? val__utf8_floor(s, SHOW_LINE_MAX) : n;
    wk_buf_appendf(b, "%c%.*s%s\n", origin, (int)take, s, take < n ? "..." : "");
}

/* The base file's lines, under a heading written before the first of them. */
typedef struct file_lines {
    wk_buf *b;
    int line;
    int started;
} file_lines;

static void show_file_line(void *arg, char origin, const char *s, size_t n)
{
    file_lines *fl = arg;
    if (!fl->started)
        wk_buf_appendf(fl->b, "the file has at line %d:\n", fl->line);
    fl->started = 1;
    show_line(fl->b, origin, s, n);
}

/*
 * Evidence for a hunk that did not apply: the file, the hunk header, the
 * lines the hunk expected (context and removals) and the lines the base file
 * has at that place, so the next model can see the mismatch.
 */
static void hunk_evidence(job *j, const vcs_apply_failure *f)
{
    wk_buf *b = &j->ev;
    size_t mark = b->len;
    wk_buf_appendf(b, "file: %s\nhunk: %s\nthe hunk expects at line %d:\n", f->file, f->header,
                   f->old_start);
    if (vcs_hunk_lines(j->diff, f->file_index, f->hunk, SHOW_LINES, show_line, b) < 0) {
        /* Without the hunk's lines there is no evidence to give. */
        b->len = mark;
        if (b->buf)
            b->buf[mark] = '\0';
        return;
    }
    file_lines fl = {b, f->old_start, 0};
    int shown = vcs_base_lines(j->base, f->file, f->old_start, SHOW_LINES, show_file_line, &fl);
    if (shown == 0)
        wk_buf_appendf(b, "the file has %s lines\n", f->old_start > 1 ? "fewer" : "no");
}

/* Applies the diff to the base tree in memory. Returns 0, or 1 naming what did not apply. */
static int apply(job *j)
{
    vcs_apply_failure f;
    if (vcs_apply(&j->result, j->diff, j->base, &f) == 0) {
        if (vcs_tree_entries(j->result) > PATCH_TREE_ENTRIES_MAX)
            return job_fail(j, "too_big", NULL, "the patched tree has more than %d files",
                            PATCH_TREE_ENTRIES_MAX);
        /* A diff that applies and changes nothing (a hunk that removes and re-adds a line). */
        if (vcs_tree_unchanged(j->result, j->base))
            return job_fail(j, "empty_patch", NULL,
                            "the diff applies but leaves every file as it was");
        return 0;
    }
    if (f.hunk < 0) {
        wk_buf_appendf(&j->ev, "file: %s\n", f.file);
        return job_fail(j, "does_not_apply", j->ev.buf, "\"%s\" does not apply: %s", f.file, f.why);
    }
    hunk_evidence(j, &f);
    return job_fail(j, "does_not_apply", j->ev.buf, "hunk %d of \"%s\" (%s) does not apply: %s",
                    f.hunk + 1, f.file, f.header, f.why);
}

/* Checks the patched tree out into a fresh directory of ours. Returns 0 or 1. */
static int check_out(job *j)
{
    char err[512];
    if (val__hostdir_make(&j->dir, err, sizeof err) < 0)
        return job_fail(j, "repo_error", NULL, "%s", err);
    if (j->dir[0] != '/') {
        /* libgit2 resolves a relative target against the repository, not our cwd. */
        char *abs = realpath(j->dir, NULL);
        if (!abs)
            return job_fail(j, "repo_error", NULL, "cannot resolve %s", j->dir);
        free(j->dir);
        j->dir = abs;
    }
    if (vcs_tree_checkout(j->result, j->dir, err, sizeof err) < 0)
        return job_fail(j, "repo_error", NULL, "cannot check out the patched tree: %s", err);
    return 0;
}

static int patch_start(val_env *env, const val_input *in, const char *code, val_done_cb done,
                       void *arg)
{
    (void)env;
    val_verdict v = {0};
    job j = {.in = in, .v = &v};
    const char *path, *base;
    wk_buf_init(&j.ev, VAL_EVIDENCE_MAX * 2);

    if (!task_repo(in->task, &path, &base)) {
        job_fail(&j, "no_repo", NULL,
                 "the task has no \"repo\": {\"path\": ..., \"base\": ...} to apply the diff to");
        goto cleanup;
    }
    /* Every check on the diff and its paths comes before anything is applied or written. */
    if (read_diff(&j, code) || open_base(&j) || confine(&j) || place(&j) || apply(&j) ||
        check_out(&j))
        goto cleanup;

    val_verdict_pass(&v);
    if (j.recounted || j.moved) {
        /* Said on the pass, so a reader knows the diff was read as git apply would. */
        char *note =
            wk_xasprintf("%s%s%s", j.recounted ? "hunk line counts were recounted" : "",
                         j.recounted && j.moved ? "; " : "",
                         j.moved ? "hunks applied at an offset from their stated lines" : "");
        val_verdict_note(&v, note);
        free(note);
    }
    if (in->workdir_out) {
        *in->workdir_out = j.dir;
        j.dir = NULL; /* the caller owns the patched tree now */
    }
    if (in->touched_out)
        *in->touched_out = vcs_diff_touched(j.diff);

cleanup:
    if (!v.pass && in->workdir_out)
        *in->workdir_out = NULL;
    if (!v.pass && in->touched_out)
        *in->touched_out = NULL;
    /* Nothing of ours outlives a failure or an unclaimed pass. */
    val_workdir_free(j.dir);
    vcs_tree_free(j.result);
    vcs_base_free(j.base);
    vcs_diff_free(j.diff);
    done(arg, &v);
    val_verdict_clear(&v);
    free(j.msg);
    wk_buf_release(&j.ev);
    return 0;
}

/* What a patch task must have: a repository to apply the diff to. */
static int patch_check_task(const cJSON *task, const cJSON *schema, char *why, size_t whylen)
{
    (void)schema;
    const char *path, *base;
    if (task_repo(task, &path, &base))
        return 0;
    snprintf(why, whylen,
             "applies patches but the task has no \"repo\": {\"path\": ..., \"base\": ...} "
             "(base, when given, a string)");
    return cJSON_GetObjectItemCaseSensitive(task, "repo") ? WK_EINVAL : WK_ENOTFOUND;
}

const val_ops val__patch_ops = {
    .name = "patch",
    .start = patch_start,
    .check_task = patch_check_task,
};
