/*
 * Unit tests for the patch validator. Each test builds a small repository
 * with libgit2 in a fresh temporary directory (also used as TMPDIR, so the
 * validator's own directories land there and can be counted), runs the
 * validator on a diff, checks the verdict, and checks that nothing outside
 * the validator's temporary directory was written: the user's repository
 * (worktree, index, objects) and a file beside it stay byte for byte the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <ftw.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "validators/val.h"

/* ---- fixture --------------------------------------------------------------- */

typedef struct fx {
    char root[256];    /* the temporary directory of the test */
    char tmp[300];     /* root/tmp, the validator's TMPDIR: empty whenever it is done */
    char repo[300];    /* root/repo */
    char outside[300]; /* root/outside.txt: a file a bad patch might reach */
    char base[41];     /* the commit the task names */
    char *snapshot;    /* listing of the repository and outside.txt before the validator ran */
} fx;

/* TMPDIR as the test runner had it; each test points TMPDIR into its own root. */
static char *orig_tmpdir;

static void write_file(const char *path, const char *content)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void check_git(int rc)
{
    if (rc < 0) {
        const git_error *e = git_error_last();
        fail_msg("libgit2: %s", e ? e->message : "?");
    }
}

/*
 * The base commit: a.txt (five lines), sub/b.txt, a symlink to a directory
 * (linkdir -> sub), a symlink out of the repository (escape -> ../outside.txt)
 * and, on top of the commit, an uncommitted change to a.txt in the worktree,
 * so a validator that used the worktree instead of the base would be caught.
 */
static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    if (!orig_tmpdir) {
        const char *t = getenv("TMPDIR");
        orig_tmpdir = strdup(t && *t ? t : "/tmp");
    }
    snprintf(f->root, sizeof f->root, "%s/cascade-test-patch-XXXXXX", orig_tmpdir);
    assert_non_null(mkdtemp(f->root));
    snprintf(f->tmp, sizeof f->tmp, "%s/tmp", f->root);
    assert_int_equal(mkdir(f->tmp, 0700), 0);
    setenv("TMPDIR", f->tmp, 1);
    snprintf(f->repo, sizeof f->repo, "%s/repo", f->root);
    snprintf(f->outside, sizeof f->outside, "%s/outside.txt", f->root);
    write_file(f->outside, "outside\n");

    git_libgit2_init();
    git_repository *r = NULL;
    check_git(git_repository_init(&r, f->repo, 0));
    char p[512];
    snprintf(p, sizeof p, "%s/a.txt", f->repo);
    write_file(p, "line1\nline2\nline3\nline4\nline5\n");
    snprintf(p, sizeof p, "%s/sub", f->repo);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/b.txt", f->repo);
    write_file(p, "hello\n");
    snprintf(p, sizeof p, "%s/blank.txt", f->repo);
    write_file(p, "one\n\ntwo\n");
    snprintf(p, sizeof p, "%s/linkdir", f->repo);
    assert_int_equal(symlink("sub", p), 0);
    snprintf(p, sizeof p, "%s/escape", f->repo);
    assert_int_equal(symlink("../outside.txt", p), 0);

    git_index *idx = NULL;
    check_git(git_repository_index(&idx, r));
    const char *paths[] = {"a.txt", "sub/b.txt", "blank.txt", "linkdir", "escape"};
    for (int i = 0; i < 5; i++)
        check_git(git_index_add_bypath(idx, paths[i]));
    check_git(git_index_write(idx));
    git_oid tree_id, commit_id;
    check_git(git_index_write_tree(&tree_id, idx));
    git_tree *tree = NULL;
    check_git(git_tree_lookup(&tree, r, &tree_id));
    git_signature *sig = NULL;
    check_git(git_signature_new(&sig, "test", "test@example.com", 1700000000, 0));
    check_git(git_commit_create_v(&commit_id, r, "HEAD", sig, sig, NULL, "base", tree, 0));
    git_oid_tostr(f->base, sizeof f->base, &commit_id);
    git_signature_free(sig);
    git_tree_free(tree);
    git_index_free(idx);
    git_repository_free(r);
    git_libgit2_shutdown();

    /* The user's work in progress: not part of the base. */
    snprintf(p, sizeof p, "%s/a.txt", f->repo);
    write_file(p, "line1\nline2\nWORK IN PROGRESS\nline4\nline5\n");
    *state = f;
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    nftw(f->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    setenv("TMPDIR", orig_tmpdir, 1);
    free(f->snapshot);
    free(f);
    return 0;
}

/* Every entry under dir (not following links) with its type, mode, size, mtime and content. */
static int snap_one(const char *path, const struct stat *st, int flag, struct FTW *ftw);
static FILE *snap_out;

static int snap_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)flag;
    (void)ftw;
    fprintf(snap_out, "%s %o %lld %lld.%09ld\n", path, (unsigned)st->st_mode,
            (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec);
    if (S_ISREG(st->st_mode)) {
        char *t = read_text(path);
        /* Contents matter for small files; git objects are compressed and compared by size+mtime.
         */
        fprintf(snap_out, "  %s\n", t ? t : "");
        free(t);
    } else if (S_ISLNK(st->st_mode)) {
        char target[512] = "";
        ssize_t n = readlink(path, target, sizeof target - 1);
        fprintf(snap_out, "  -> %.*s\n", (int)(n > 0 ? n : 0), target);
    }
    return 0;
}

/* The repository (worktree, index, objects) and the file beside it. */
static char *snapshot(const fx *f)
{
    char *buf = NULL;
    size_t len = 0;
    snap_out = open_memstream(&buf, &len);
    nftw(f->repo, snap_one, 16, FTW_PHYS);
    char *t = read_text(f->outside);
    fprintf(snap_out, "outside: %s\n", t ? t : "(gone)");
    free(t);
    fclose(snap_out);
    return buf;
}

/* Entries in dir other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* ---- running the validator --------------------------------------------------- */

typedef struct seen {
    int calls;
    val_verdict v;
} seen;

static void on_done(void *arg, const val_verdict *v)
{
    seen *s = arg;
    s->calls++;
    val_verdict_clear(&s->v);
    s->v.pass = v->pass;
    memcpy(s->v.validator, v->validator, sizeof s->v.validator);
    memcpy(s->v.reason, v->reason, sizeof s->v.reason);
    s->v.message = v->message ? strdup(v->message) : NULL;
    s->v.evidence = v->evidence ? strdup(v->evidence) : NULL;
    s->v.note = v->note ? strdup(v->note) : NULL;
}

/*
 * Runs the patch validator for the fixture's repository at its base, with the
 * answer `answer` (through the chain, so code extraction is exercised too).
 * `workdir` may be NULL. The listing of the test directory is taken first.
 */
static void run_patch(fx *f, const char *answer, char **workdir, seen *s)
{
    char task_text[1024];
    snprintf(task_text, sizeof task_text,
             "{\"id\": \"p\", \"kind\": \"patch\", \"repo\": {\"path\": \"%s\", \"base\": \"%s\"}}",
             f->repo, f->base);
    cJSON *task = cJSON_Parse(task_text);
    assert_non_null(task);
    val_input in = {
        .task_id = "p", .kind = "patch", .answer = answer, .task = task, .workdir_out = workdir};
    free(f->snapshot);
    f->snapshot = snapshot(f);
    memset(s, 0, sizeof *s);
    const char *names[] = {"patch"};
    assert_int_equal(val_chain_start(NULL, names, 1, &in, on_done, s), 0);
    assert_int_equal(s->calls, 1);
    cJSON_Delete(task);
}

/* The repository and outside.txt are as before, and the validator left nothing in TMPDIR. */
static void assert_untouched(fx *f)
{
    char *now = snapshot(f);
    int same = strcmp(now, f->snapshot) == 0;
    if (!same)
        fprintf(stderr, "before:\n%s\nafter:\n%s\n", f->snapshot, now);
    free(now);
    if (!same)
        fail_msg("the repository or the file beside it changed");
    assert_int_equal(count_entries(f->tmp), 0);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay ? hay : "(null)");
}

static void expect_fail(fx *f, const char *answer, const char *reason, const char *in_message)
{
    seen s;
    char *wd = (char *)"sentinel";
    run_patch(f, answer, &wd, &s);
    if (s.v.pass)
        fail_msg("expected %s, got a pass for:\n%s", reason, answer);
    assert_string_equal(s.v.validator, "patch");
    if (strcmp(s.v.reason, reason) != 0)
        fail_msg("expected reason %s, got %s (%s)", reason, s.v.reason,
                 s.v.message ? s.v.message : "");
    if (in_message)
        assert_contains(s.v.message, in_message);
    assert_null(wd); /* a failure hands over no directory */
    assert_untouched(f);
    val_verdict_clear(&s.v);
}

/* ---- tests ---------------------------------------------------------------- */

static const char *fix_line3 = "diff --git a/a.txt b/a.txt\n"
                               "--- a/a.txt\n"
                               "+++ b/a.txt\n"
                               "@@ -2,3 +2,3 @@\n"
                               " line2\n"
                               "-line3\n"
                               "+LINE3\n"
                               " line4\n";

static void clean_apply_passes_and_hands_over_the_patched_tree(void **state)
{
    fx *f = *state;
    seen s;
    char *wd = NULL;
    char *answer = malloc(strlen(fix_line3) + 64);
    sprintf(answer, "Here is the fix:\n```diff\n%s```\n", fix_line3);
    run_patch(f, answer, &wd, &s);
    free(answer);
    if (!s.v.pass)
        fail_msg("unexpected %s: %s\n%s", s.v.reason, s.v.message, s.v.evidence);
    assert_non_null(wd);
    /* Inside TMPDIR, not the user's repository. */
    assert_true(strncmp(wd, f->tmp, strlen(f->tmp)) == 0);
    assert_int_equal(count_entries(f->tmp), 1);
    char p[600];
    snprintf(p, sizeof p, "%s/a.txt", wd);
    char *t = read_text(p);
    /* The base version patched, not the user's work in progress. */
    assert_string_equal(t, "line1\nline2\nLINE3\nline4\nline5\n");
    free(t);
    snprintf(p, sizeof p, "%s/sub/b.txt", wd);
    t = read_text(p);
    assert_string_equal(t, "hello\n");
    free(t);
    /* The repository itself (worktree, index, objects) as it was; the tree goes with free. */
    val_workdir_free(wd);
    assert_untouched(f);
    val_verdict_clear(&s.v);
}

static void pass_without_workdir_out_leaves_nothing_behind(void **state)
{
    fx *f = *state;
    seen s;
    run_patch(f, fix_line3, NULL, &s);
    assert_true(s.v.pass);
    assert_untouched(f);
    val_verdict_clear(&s.v);
}

static void plain_unified_diff_without_git_headers_applies(void **state)
{
    fx *f = *state;
    /* diff -u style: timestamps after a tab, a new file from /dev/null, a deletion. */
    const char *plain = "--- a/a.txt\t2024-01-01 00:00:00.000000000 +0000\n"
                        "+++ b/a.txt\t2024-01-02 00:00:00.000000000 +0000\n"
                        "@@ -1,2 +1,2 @@\n"
                        "-line1\n"
                        "+LINE1\n"
                        " line2\n"
                        "--- /dev/null\n"
                        "+++ b/new/c.txt\n"
                        "@@ -0,0 +1,2 @@\n"
                        "+fresh\n"
                        "+file\n"
                        "--- a/sub/b.txt\n"
                        "+++ /dev/null\n"
                        "@@ -1 +0,0 @@\n"
                        "-hello\n";
    seen s;
    char *wd = NULL;
    run_patch(f, plain, &wd, &s);
    if (!s.v.pass)
        fail_msg("unexpected %s: %s\n%s", s.v.reason, s.v.message, s.v.evidence);
    char p[600];
    snprintf(p, sizeof p, "%s/a.txt", wd);
    char *t = read_text(p);
    assert_string_equal(t, "LINE1\nline2\nline3\nline4\nline5\n");
    free(t);
    snprintf(p, sizeof p, "%s/new/c.txt", wd);
    t = read_text(p);
    assert_string_equal(t, "fresh\nfile\n");
    free(t);
    snprintf(p, sizeof p, "%s/sub/b.txt", wd);
    assert_int_equal(access(p, F_OK), -1);
    val_workdir_free(wd);
    val_verdict_clear(&s.v);
}

static void empty_context_lines_without_their_space_still_apply(void **state)
{
    fx *f = *state;
    /*
     * The empty context line in the middle lost its space (editors do that),
     * and the one at the end was trimmed away with the fence by extraction.
     */
    const char *answer = "```diff\n"
                         "--- a/blank.txt\n"
                         "+++ b/blank.txt\n"
                         "@@ -1,3 +1,3 @@\n"
                         " one\n"
                         "\n"
                         "-two\n"
                         "+TWO\n"
                         "```\n";
    seen s;
    char *wd = NULL;
    run_patch(f, answer, &wd, &s);
    if (!s.v.pass)
        fail_msg("unexpected %s: %s\n%s", s.v.reason, s.v.message, s.v.evidence);
    char p[600];
    snprintf(p, sizeof p, "%s/blank.txt", wd);
    char *t = read_text(p);
    assert_string_equal(t, "one\n\nTWO\n");
    free(t);
    val_workdir_free(wd);
    val_verdict_clear(&s.v);

    const char *trailing = "--- a/blank.txt\n"
                           "+++ b/blank.txt\n"
                           "@@ -1,2 +1,2 @@\n"
                           "-one\n"
                           "+ONE\n"
                           " \n";
    /* Extraction trims the final " \n"; the hunk still has its context line. */
    char *fenced = malloc(strlen(trailing) + 16);
    sprintf(fenced, "```\n%s```", trailing);
    run_patch(f, fenced, NULL, &s);
    free(fenced);
    if (!s.v.pass)
        fail_msg("unexpected %s: %s\n%s", s.v.reason, s.v.message, s.v.evidence);
    assert_untouched(f);
    val_verdict_clear(&s.v);
}

/* Runs `diff`, expects a pass, and compares a.txt of the patched tree with `want`. */
static void expect_a_txt(fx *f, const char *diff, const char *want, const char *note)
{
    seen s;
    char *wd = NULL;
    run_patch(f, diff, &wd, &s);
    if (!s.v.pass)
        fail_msg("unexpected %s: %s\n%s\nfor:\n%s", s.v.reason, s.v.message, s.v.evidence, diff);
    char p[600];
    snprintf(p, sizeof p, "%s/a.txt", wd);
    char *t = read_text(p);
    assert_string_equal(t, want);
    free(t);
    if (note)
        assert_contains(s.v.note, note);
    else
        assert_null(s.v.note);
    val_workdir_free(wd);
    val_verdict_clear(&s.v);
}

static void miscounted_and_misplaced_hunks_apply_as_git_apply_would(void **state)
{
    fx *f = *state;
    /* Counted right and placed right: no note. */
    expect_a_txt(f, fix_line3, "line1\nline2\nLINE3\nline4\nline5\n", NULL);
    /* Under-counted: read by its counts, libgit2 would drop "+EXTRA" and still pass. */
    expect_a_txt(f,
                 "--- a/a.txt\n+++ b/a.txt\n@@ -2,2 +2,2 @@\n line2\n-line3\n+LINE3\n+EXTRA\n"
                 " line4\n",
                 "line1\nline2\nLINE3\nEXTRA\nline4\nline5\n", "recounted");
    /* Over-counted, running into the next file's header. */
    expect_a_txt(f,
                 "--- a/a.txt\n+++ b/a.txt\n@@ -1,4 +1,4 @@\n-line1\n+LINE1\n line2\n"
                 "--- a/sub/b.txt\n+++ b/sub/b.txt\n@@ -1 +1 @@\n-hello\n+bye\n",
                 "LINE1\nline2\nline3\nline4\nline5\n", "recounted");
    /* Stated at line 1, its context is at line 3: applied there, as git apply does. */
    expect_a_txt(f, "--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n line3\n-line4\n+LINE4\n line5\n",
                 "line1\nline2\nline3\nLINE4\nline5\n", "offset");
    /* Two hunks both two lines off; the second is placed after the first. */
    expect_a_txt(f,
                 "--- a/a.txt\n+++ b/a.txt\n@@ -3,1 +3,1 @@\n-line1\n+L1\n"
                 "@@ -5,1 +5,1 @@\n-line3\n+L3\n",
                 "L1\nline2\nL3\nline4\nline5\n", "offset");
    /* Without context (diff -U0): libgit2 alone rejects the "+2,0" of a pure deletion. */
    expect_a_txt(f, "--- a/a.txt\n+++ b/a.txt\n@@ -3,2 +2,0 @@\n-line3\n-line4\n",
                 "line1\nline2\nline5\n", NULL);
    expect_a_txt(f, "--- a/a.txt\n+++ b/a.txt\n@@ -2,0 +3,2 @@\n+new1\n+new2\n",
                 "line1\nline2\nnew1\nnew2\nline3\nline4\nline5\n", NULL);
    /* Context found nowhere: still does not apply, and is named. */
    expect_fail(f, "--- a/a.txt\n+++ b/a.txt\n@@ -1,2 +1,2 @@\n lineX\n-line2\n+L2\n",
                "does_not_apply", "hunk 1");
}

static void hunk_that_does_not_apply_is_named_with_both_sides(void **state)
{
    fx *f = *state;
    const char *stale = "--- a/a.txt\n"
                        "+++ b/a.txt\n"
                        "@@ -2,3 +2,3 @@\n"
                        " line2\n"
                        "-line three\n"
                        "+LINE3\n"
                        " line4\n";
    seen s;
    run_patch(f, stale, NULL, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "does_not_apply");
    assert_contains(s.v.message, "a.txt");
    assert_contains(s.v.message, "@@ -2,3 +2,3 @@");
    assert_contains(s.v.evidence, "file: a.txt");
    assert_contains(s.v.evidence, "hunk: @@ -2,3 +2,3 @@");
    assert_contains(s.v.evidence, "-line three"); /* what the hunk expected */
    assert_contains(s.v.evidence, "the file has at line 2:\n line2\n line3\n");
    assert_untouched(f);
    val_verdict_clear(&s.v);
}

/*
 * The message ends with libgit2's own reason. It is read before the evidence
 * is gathered: the evidence calls libgit2 again, which clears its last error,
 * and a pointer kept into it read as an empty reason ("does not apply: ").
 */
static void hunk_that_does_not_apply_keeps_libgit2s_reason(void **state)
{
    fx *f = *state;
    seen s;
    run_patch(f, "--- a/a.txt\n+++ b/a.txt\n@@ -2,3 +2,3 @@\n line2\n-line three\n+X\n line4\n",
              NULL, &s);
    assert_false(s.v.pass);
    assert_string_equal(s.v.reason, "does_not_apply");
    const char *tail = strstr(s.v.message, "does not apply: ");
    assert_non_null(tail);
    assert_true(strlen(tail + strlen("does not apply: ")) > 0);
    assert_untouched(f);
    val_verdict_clear(&s.v);
}

static void missing_and_already_existing_files_do_not_apply(void **state)
{
    fx *f = *state;
    expect_fail(f, "--- a/nope.txt\n+++ b/nope.txt\n@@ -1 +1 @@\n-x\n+y\n", "does_not_apply",
                "nope.txt");
    /* Creating a file that exists would silently prepend to it in libgit2. */
    expect_fail(f, "--- /dev/null\n+++ b/sub/b.txt\n@@ -0,0 +1 @@\n+again\n", "does_not_apply",
                "already exists");
}

static void patches_that_plant_test_harness_modules_are_refused(void **state)
{
    fx *f = *state;
    /* New files that change how the tests run, beside the code or anywhere in the tree. */
    static const char *const planted[] = {"conftest.py",      "sub/conftest.py", "sitecustomize.py",
                                          "usercustomize.py", "unittest.py",     "sub/evil.pth"};
    for (size_t i = 0; i < sizeof planted / sizeof planted[0]; i++) {
        char *diff = wk_xasprintf("diff --git a/%s b/%s\nnew file mode 100644\n--- /dev/null\n"
                                  "+++ b/%s\n@@ -0,0 +1 @@\n+import os; os._exit(0)\n",
                                  planted[i], planted[i], planted[i]);
        expect_fail(f, diff, "harness_tampered", planted[i]);
        free(diff);
    }
    /* Renamed into place. */
    expect_fail(f,
                "diff --git a/sub/b.txt b/conftest.py\nsimilarity index 100%\n"
                "rename from sub/b.txt\nrename to conftest.py\n",
                "harness_tampered", "conftest.py");
}

static void unsafe_paths_are_refused_before_anything_is_written(void **state)
{
    fx *f = *state;
    static const struct {
        const char *diff;
        const char *why;
    } cases[] = {
        /* Absolute, in both the plain and the git form. */
        {"--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-root\n+evil\n", "absolute"},
        {"diff --git a//tmp/x b//tmp/x\nnew file mode 100644\n--- /dev/null\n+++ b//tmp/x\n"
         "@@ -0,0 +1 @@\n+x\n",
         "absolute"},
        /* Out of the tree with "..". */
        {"--- /dev/null\n+++ b/../outside.txt\n@@ -0,0 +1 @@\n+pwned\n", "\"..\""},
        {"--- a/sub/../../outside.txt\n+++ b/sub/../../outside.txt\n@@ -1 +1 @@\n-outside\n"
         "+pwned\n",
         "\"..\""},
        /* Into .git, however spelled. */
        {"--- /dev/null\n+++ b/.git/hooks/post-checkout\n@@ -0,0 +1 @@\n+rm -rf /\n", ".git"},
        {"--- a/.GIT/config\n+++ b/.GIT/config\n@@ -1 +1 @@\n-a\n+b\n", ".git"},
        {"--- /dev/null\n+++ b/sub/.git./x\n@@ -0,0 +1 @@\n+x\n", ".git"},
        /* Through a symlink of the base tree, onto one, and making one. */
        {"--- a/linkdir/b.txt\n+++ b/linkdir/b.txt\n@@ -1 +1 @@\n-hello\n+bye\n",
         "through a symlink"},
        {"--- a/escape\n+++ b/escape\n@@ -1 +1 @@\n-../outside.txt\n+/etc/shadow\n",
         "modifies a symlink"},
        {"diff --git a/ln b/ln\nnew file mode 120000\n--- /dev/null\n+++ b/ln\n@@ -0,0 +1 @@\n"
         "+/etc\n\\ No newline at end of file\n",
         "symlink"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_fail(f, cases[i].diff, "unsafe_path", cases[i].why);
    char *t = read_text(f->outside);
    assert_string_equal(t, "outside\n");
    free(t);
}

static void binary_patches_are_refused(void **state)
{
    fx *f = *state;
    expect_fail(f,
                "diff --git a/bin.dat b/bin.dat\n"
                "new file mode 100644\n"
                "index 0000000000000000000000000000000000000000.."
                "677273046bce3115f56c248238f3b83f77cfc239\n"
                "GIT binary patch\n"
                "literal 6\n"
                "NcmZQzWJ=1+0{{Yf0X+Z!\n"
                "\n"
                "literal 0\n"
                "HcmV?d00001\n"
                "\n",
                "binary_patch", "bin.dat");
    expect_fail(f,
                "diff --git a/b2 b/b2\n"
                "new file mode 100644\n"
                "index 0000000..d5d0b8b\n"
                "Binary files /dev/null and b/b2 differ\n",
                "binary_patch", NULL);
}

static void text_that_is_not_a_diff_is_a_bad_diff(void **state)
{
    fx *f = *state;
    expect_fail(f, "I changed line 3 to upper case.", "bad_diff", NULL);
    /* A file header with no hunk: nothing would change. */
    expect_fail(f, "--- a/a.txt\n+++ b/a.txt\n", "bad_diff", "no hunk");
    /* A hunk outside any file header. */
    expect_fail(f, "@@ -1 +1 @@\n-line1\n+x\n", "bad_diff", NULL);
}

static void task_without_repo_or_with_a_bad_base_fails_clearly(void **state)
{
    fx *f = *state;
    seen s;
    cJSON *task = cJSON_Parse("{\"id\": \"p\", \"kind\": \"patch\"}");
    val_input in = {.task_id = "p", .kind = "patch", .answer = fix_line3, .task = task};
    const char *names[] = {"patch"};
    memset(&s, 0, sizeof s);
    assert_int_equal(val_chain_start(NULL, names, 1, &in, on_done, &s), 0);
    assert_int_equal(s.calls, 1);
    assert_string_equal(s.v.reason, "no_repo");
    val_verdict_clear(&s.v);
    cJSON_Delete(task);

    char text[600];
    snprintf(text, sizeof text, "{\"repo\": {\"path\": \"%s\", \"base\": \"no-such-ref\"}}",
             f->repo);
    task = cJSON_Parse(text);
    in.task = task;
    memset(&s, 0, sizeof s);
    assert_int_equal(val_chain_start(NULL, names, 1, &in, on_done, &s), 0);
    assert_string_equal(s.v.reason, "repo_error");
    assert_contains(s.v.message, "no-such-ref");
    val_verdict_clear(&s.v);
    cJSON_Delete(task);

    /* A directory that is not a repository is not searched upwards. */
    snprintf(text, sizeof text, "{\"repo\": {\"path\": \"%s/repo/sub\"}}", f->root);
    task = cJSON_Parse(text);
    in.task = task;
    memset(&s, 0, sizeof s);
    assert_int_equal(val_chain_start(NULL, names, 1, &in, on_done, &s), 0);
    assert_string_equal(s.v.reason, "repo_error");
    val_verdict_clear(&s.v);
    cJSON_Delete(task);
}

static void oversized_diff_is_refused_as_too_big(void **state)
{
    fx *f = *state;
    size_t n = (1u << 20) + 100;
    char *big = malloc(n + 1);
    memset(big, '+', n);
    memcpy(big, "--- a/a.txt\n+++ b/a.txt\n", 24);
    big[n] = '\0';
    expect_fail(f, big, "too_big", NULL);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(clean_apply_passes_and_hands_over_the_patched_tree, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(pass_without_workdir_out_leaves_nothing_behind, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(plain_unified_diff_without_git_headers_applies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(empty_context_lines_without_their_space_still_apply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(miscounted_and_misplaced_hunks_apply_as_git_apply_would,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(hunk_that_does_not_apply_is_named_with_both_sides, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hunk_that_does_not_apply_keeps_libgit2s_reason, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(missing_and_already_existing_files_do_not_apply, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(patches_that_plant_test_harness_modules_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(unsafe_paths_are_refused_before_anything_is_written, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(binary_patches_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(text_that_is_not_a_diff_is_a_bad_diff, setup, teardown),
        cmocka_unit_test_setup_teardown(task_without_repo_or_with_a_bad_base_fails_clearly, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(oversized_diff_is_refused_as_too_big, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
