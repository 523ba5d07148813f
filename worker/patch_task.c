/*
 * Patch tasks, the I/O around the router (see patch_task.h): the repository
 * check at intake and the preparation before the first call. The base tree
 * is exported from the object store (never the working tree) into a fresh
 * directory, the tests run there in the sandbox; a second run follows a
 * failing first one, so a flaky test is known before any answer is judged.
 * The directory is removed before the callback: each validation of an
 * answer gets a tree of its own from the patch validator.
 */
#include "patch_task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "patch_prompt.h"
#include "vcs/vcs.h"

/* Paths taken from a failing output before the ones not in the tree are dropped. */
#define OUTPUT_PATHS_MAX 64

static const char default_instruction[] = "Make the failing tests pass.";

void wk_patch_opts_default(wk_patch_opts *o)
{
    o->max_repo_mb = 100;
    o->max_patch_kb = 256;
    o->max_test_output_kb = 16;
    o->max_file_kb = 32;
    o->max_files = 8;
    o->max_list = 200;
}

const char *wk_patch_instruction(const cJSON *task)
{
    const char *p = wk_jstr(task, "prompt");
    return p && p[strspn(p, " \t\r\n")] ? p : default_instruction;
}

static const char *repo_path(const cJSON *task)
{
    return wk_jstr(cJSON_GetObjectItemCaseSensitive(task, "repo"), "path");
}

static const char *repo_base(const cJSON *task)
{
    const char *b = wk_jstr(cJSON_GetObjectItemCaseSensitive(task, "repo"), "base");
    return b ? b : "HEAD";
}

int wk_patch_check_repo(const cJSON *task, const wk_patch_opts *o, char *why, size_t whylen)
{
    const char *path = repo_path(task), *base = repo_base(task);
    char err[400];
    if (!path)
        return wk_errf(WK_EINVAL, why, whylen, "repo.path must be a non-empty string");
    int rc = vcs_repo_check(path, base, (unsigned long long)o->max_repo_mb << 20, err, sizeof err);
    if (rc == WK_ENOTFOUND)
        return wk_errf(rc, why, whylen, "repo.path \"%.200s\" %s", path, err);
    if (rc == WK_EINVAL)
        return wk_errf(rc, why, whylen, "repo.base \"%.100s\" %s", base, err);
    if (rc == WK_ETOOBIG)
        return wk_errf(rc, why, whylen, "repo.path \"%.200s\" %s (--max-repo-mb %lu)", path, err,
                       o->max_repo_mb);
    return rc;
}

/* ---- the preparation ------------------------------------------------------------- */

typedef struct prep {
    val_env *env;
    const cJSON *task;
    const wk_patch_opts *o;
    wk_prep_cb cb;
    void *arg;
    uint64_t t0;
    vcs_base *base;
    char *dir;
    char *out1; /* the first run's output */
    size_t out1_len;
    int ok1;
    val_testlog log1;
} prep;

static void prep_finish(prep *p, wk_prep *r)
{
    r->elapsed_ms = (long)(wk_now_ms() - p->t0);
    val_workdir_free(p->dir);
    p->dir = NULL;
    p->cb(p->arg, r);
    vcs_base_free(p->base);
    free(p->out1);
    val_testlog_release(&p->log1);
    free(p);
}

static void prep_error(prep *p, const char *why)
{
    wk_prep r = {.status = WK_PREP_ERROR, .reason = why, .runs = p->out1 ? 1 : 0};
    prep_finish(p, &r);
}

/* The test command as one line, for the prompt. Caller frees. */
static char *command_line(const cJSON *task)
{
    wk_buf b;
    wk_buf_init(&b, 4096);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(
                              cJSON_GetObjectItemCaseSensitive(task, "tests"), "command"))
    {
        if (cJSON_IsString(a))
            wk_buf_appendf(&b, "%s%s", b.len ? " " : "", a->valuestring);
    }
    char *s = wk_buf_detach(&b, NULL);
    return s ? s : wk_xstrdup("");
}

typedef struct lister {
    char **v;
    int n, max;
    long total;
} lister;

static int list_one(void *arg, const char *path)
{
    lister *l = arg;
    l->total++;
    if (l->n < l->max) {
        l->v = wk_xrealloc(l->v, ((size_t)l->n + 1) * sizeof *l->v);
        l->v[l->n++] = wk_xstrdup(path);
    }
    return 0;
}

/*
 * Adds the file at path of the base tree to files (once), within the caps.
 * Returns 0 when it is there (or the caps leave no room), WK_ENOTFOUND when
 * the tree has no text file at path.
 */
static int want_file(prep *p, wk_patch_file *files, int *n, char **texts, const char *path)
{
    if (*n >= p->o->max_files)
        return 0;
    for (int i = 0; i < *n; i++)
        if (strcmp(files[i].path, path) == 0)
            return 0;
    char *text = NULL;
    size_t len = 0, full = 0;
    size_t cap = (size_t)p->o->max_file_kb * 1024;
    if (vcs_base_read(p->base, path, cap, &text, &len, &full) < 0 || memchr(text, '\0', len)) {
        free(text);
        return WK_ENOTFOUND;
    }
    texts[*n] = text;
    /* The path is copied: the caller's may not outlive the loop that found it. */
    files[*n] =
        (wk_patch_file){.path = wk_xstrdup(path), .text = text, .len = len, .full_len = full};
    (*n)++;
    return 0;
}

/* The prompt from the first run's output and the tree at base. Caller frees. */
static char *build_prompt(prep *p, const val_baseline *bl)
{
    int max = p->o->max_files > 0 ? p->o->max_files : 0;
    wk_patch_file *files = wk_xcalloc((size_t)max + 1, sizeof *files);
    char **texts = wk_xcalloc((size_t)max + 1, sizeof *texts);
    int nfiles = 0;
    const cJSON *c;
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(p->task, "context_files");
    const char **missing = wk_xcalloc((size_t)cJSON_GetArraySize(ctx) + 1, sizeof *missing);
    int nmissing = 0;
    cJSON_ArrayForEach(c, ctx)
    {
        /* A context file the tree lacks is said in the prompt, not silently dropped. */
        if (cJSON_IsString(c) && want_file(p, files, &nfiles, texts, c->valuestring) < 0)
            missing[nmissing++] = c->valuestring;
    }
    char **named = NULL;
    int nnamed = wk_patch_output_paths(p->out1, p->out1_len, OUTPUT_PATHS_MAX, &named);
    for (int i = 0; i < nnamed; i++) {
        want_file(p, files, &nfiles, texts, named[i]);
        free(named[i]);
    }
    free(named);
    lister l = {.max = p->o->max_list};
    vcs_base_walk(p->base, 1000000, list_one, &l);
    char *cmd = command_line(p->task);
    wk_patch_prompt_in in = {
        .instruction = wk_patch_instruction(p->task),
        .command = cmd,
        .output = p->out1,
        .output_len = p->out1_len,
        .baseline = bl,
        .files = files,
        .nfiles = nfiles,
        .missing = missing,
        .nmissing = nmissing,
        .list = (const char *const *)l.v,
        .nlist = l.n,
        .list_total = l.total,
        .caps = p->o,
    };
    char *prompt = wk_patch_prompt(&in);
    free(cmd);
    for (int i = 0; i < l.n; i++)
        free(l.v[i]);
    free(l.v);
    for (int i = 0; i < nfiles; i++) {
        free((char *)files[i].path);
        free(texts[i]);
    }
    free(files);
    free(texts);
    free(missing);
    return prompt;
}

/* The runs at base could not say anything about the tests: the command did not run. */
static int not_a_test_outcome(const val_verdict *v)
{
    return !v->pass && strcmp(v->reason, "sandbox_error") == 0;
}

static void on_run2(void *arg, const val_verdict *v, const char *out, size_t len, int ok)
{
    prep *p = arg;
    if (not_a_test_outcome(v)) {
        char *why = wk_xasprintf("the tests could not run at base: %s",
                                 v->message ? v->message : v->reason);
        prep_error(p, why);
        free(why);
        return;
    }
    val_testlog log2;
    val_testlog_parse(out, len, &log2);
    val_baseline bl;
    val_baseline_make(&bl, &p->log1, p->ok1, &log2, ok, wk_patch_instruction(p->task));
    val_testlog_release(&log2);
    wk_prep r = {.baseline = &bl, .runs = 2};
    char *why = NULL, *prompt = NULL;
    if (bl.detail && bl.nfailing == 0 && !(p->ok1 == 0 && ok == 0 && bl.nflaky == 0)) {
        /* Every failure flipped between the runs: nothing stable to fix. */
        why = wk_xasprintf("the tests fail at base only through %d flaky test%s", bl.nflaky,
                           bl.nflaky == 1 ? "" : "s");
        r.status = WK_PREP_NOTHING;
    } else if (!bl.detail && ok) {
        why = wk_xstrdup("the tests failed once and passed once at base (flaky, no per-test "
                         "detail): nothing stable to fix");
        r.status = WK_PREP_NOTHING;
    } else {
        prompt = build_prompt(p, &bl);
        r.status = WK_PREP_READY;
        r.prompt = prompt;
    }
    r.reason = why;
    prep_finish(p, &r);
    free(why);
    free(prompt);
    val_baseline_release(&bl);
}

static void on_run1(void *arg, const val_verdict *v, const char *out, size_t len, int ok)
{
    prep *p = arg;
    if (ok) {
        wk_prep r = {.status = WK_PREP_NOTHING, .reason = "the tests pass at base", .runs = 1};
        prep_finish(p, &r);
        return;
    }
    if (not_a_test_outcome(v)) {
        char *why = wk_xasprintf("the tests could not run at base: %s",
                                 v->message ? v->message : v->reason);
        prep_error(p, why);
        free(why);
        return;
    }
    p->out1 = wk_xstrndup(out, len);
    p->out1_len = len;
    p->ok1 = 0;
    val_testlog_parse(out, len, &p->log1);
    if (val_tests_run(p->env, p->task, p->dir, 2, on_run2, p) < 0)
        prep_error(p, "the tests could not run a second time at base");
}

int wk_patch_prepare(val_env *env, const cJSON *task, const wk_patch_opts *o, wk_prep_cb cb,
                     void *arg)
{
    prep *p = wk_xcalloc(1, sizeof *p);
    char err[512];
    p->env = env;
    p->task = task;
    p->o = o;
    p->cb = cb;
    p->arg = arg;
    p->t0 = wk_now_ms();
    const char *path = repo_path(task), *base = repo_base(task);
    if (!path || vcs_base_open(&p->base, path, base, err, sizeof err) < 0) {
        char *why = wk_xasprintf("cannot read repo.path %s at %s: %s", path ? path : "(none)", base,
                                 path ? err : "no path");
        prep_error(p, why);
        free(why);
        return 0;
    }
    if (val_workdir_make(&p->dir, err, sizeof err) < 0 ||
        vcs_base_export(p->base, p->dir, (unsigned long long)o->max_repo_mb << 20, err,
                        sizeof err) < 0) {
        char *why = wk_xasprintf("cannot export the tree at %s: %s", base, err);
        prep_error(p, why);
        free(why);
        return 0;
    }
    if (val_tests_run(env, task, p->dir, 1, on_run1, p) < 0)
        prep_error(p, "tests.command cannot be run");
    return 0;
}
