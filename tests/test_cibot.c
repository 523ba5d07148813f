/*
 * The CI bot, end to end. The repositories are real: fixtures/cibot/
 * make-repo.sh builds them in the scratch directory (Python with pytest, C
 * with `make test`, JavaScript with `node --test`, each with a real bug and
 * a failing test). The answers are the recordings in fixtures/cibot/, one
 * task per patch class, played by mock-llm.
 *
 * What is checked: vcs_commit on its own (branch series, reuse, force,
 * trailers, the format-patch file); `cascade run` on the fixture tasks
 * (each class its verdict and climb, the accepted patch a commit on
 * cascade/<id>, the user's HEAD, index and working tree byte for byte the
 * same with a dirty tree and staged changes, hostile patches refused with
 * nothing written); `cascade fix` from a shell in a fixture repository; and a
 * kill -9 between the commit and the result line, then a rerun: one commit,
 * one result line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "lib/util.h"
#include "vcs/vcs.h"
#include "worker/sinks/commit.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Runs a shell script (the scratch dir as cwd); its exit status. */
static int sh(const char *script, const char *out)
{
    char *dir = h_tmp(".");
    char *full = wk_xasprintf("cd '%s' && { %s\n}", dir, script);
    char *const argv[] = {"/bin/sh", "-c", full, NULL};
    int st = h_run(argv, out, NULL, 120);
    free(full);
    free(dir);
    return st;
}

/* Runs a shell script and returns its stdout (caller frees), trailing newline cut. */
static char *sh_out(const char *script)
{
    char *path = h_tmp("sh.out");
    int st = sh(script, path);
    char *s = h_slurp(path);
    free(path);
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    if (st != 0)
        print_message("script exited %d: %s\n", st, script);
    return s;
}

/* Builds fixture repository KIND at scratch/repos/NAME; returns its path (caller frees). */
static char *make_repo(const char *kind, const char *name)
{
    char *dir = h_tmp("repos");
    mkdir(dir, 0755);
    free(dir);
    char *rel = wk_xasprintf("repos/%s", name);
    char *path = h_tmp(rel);
    free(rel);
    char *script = wk_xasprintf("sh '%s/fixtures/cibot/make-repo.sh' %s '%s'", h_src(), kind, path);
    assert_int_equal(sh(script, NULL), 0);
    free(script);
    return path;
}

/*
 * A listing of what the user could see change: HEAD, the index file, every
 * file of the working tree outside .git (with its bytes' hash and mode) and
 * the refs other than cascade's own. Caller frees.
 */
static char *snapshot(const char *repo)
{
    char *script = wk_xasprintf(
        "cd '%s' && sha256sum .git/HEAD .git/index && "
        "find . -path ./.git -prune -o \\( -type f -o -type l \\) -print | LC_ALL=C sort | "
        "while read -r f; do if [ -L \"$f\" ]; then echo \"link $f $(readlink \"$f\")\"; else "
        "echo \"$(stat -c %%a \"$f\") $(sha256sum < \"$f\") $f\"; fi; done && "
        "git for-each-ref --format='%%(refname) %%(objectname)' | grep -v refs/heads/cascade/ "
        "|| true",
        repo);
    char *s = sh_out(script);
    free(script);
    /* A listing that lost its lines would compare equal to anything. */
    assert_non_null(strstr(s, ".git/index"));
    assert_non_null(strstr(s, "./calc/stats.py") ? s : strstr(s, "./src/"));
    return s;
}

/* Makes the working tree dirty and stages a change, as a developer's checkout is. */
static void dirty(const char *repo)
{
    char *script = wk_xasprintf("cd '%s' && printf '# local note\\n' >> calc/stats.py && "
                                "printf 'staged\\n' > STAGED.txt && git add STAGED.txt && "
                                "printf 'untracked\\n' > scratch.txt",
                                repo);
    assert_int_equal(sh(script, NULL), 0);
    free(script);
}

static char *git(const char *repo, const char *args)
{
    char *script = wk_xasprintf("git -C '%s' %s", repo, args);
    char *s = sh_out(script);
    free(script);
    return s;
}

/* ---- vcs_commit on its own ---------------------------------------------------- */

static const char good_diff[] = "--- a/calc/stats.py\n"
                                "+++ b/calc/stats.py\n"
                                "@@ -8,1 +8,1 @@\n"
                                "-    return sum(xs) / (len(xs) + 1)\n"
                                "+    return sum(xs) / len(xs)\n";

static const char other_diff[] = "--- a/calc/stats.py\n"
                                 "+++ b/calc/stats.py\n"
                                 "@@ -8,1 +8,1 @@\n"
                                 "-    return sum(xs) / (len(xs) + 1)\n"
                                 "+    return float(sum(xs)) / len(xs)\n";

static const char message[] = "Fix mean()\n\nIt divided by the wrong count.\n\n"
                              "Cascade-Task: t/1\nCascade-Model: swift-mini\n";

static void commit_req(vcs_commit_req *req, const char *repo, const char *diff)
{
    memset(req, 0, sizeof *req);
    req->repo_path = repo;
    req->base = "HEAD";
    req->diff = diff;
    req->branch = "cascade/t/1";
    req->task_id = "t/1";
    req->message = message;
}

/*
 * A commit on its branch, with the base as its parent and the message as
 * given; nothing the user sees moves; the same diff again reuses it; another
 * diff takes "-2"; force moves the first branch.
 */
static void test_vcs_commit_series(void **state)
{
    (void)state;
    char *repo = make_repo("python", "unit");
    dirty(repo);
    char *before = snapshot(repo);
    char *head = git(repo, "rev-parse HEAD");
    vcs_commit_req req;
    vcs_commit_info info;
    char err[512] = "";

    commit_req(&req, repo, good_diff);
    assert_int_equal(vcs_commit(&req, &info, err, sizeof err), 0);
    assert_string_equal(info.branch, "cascade/t/1");
    assert_string_equal(info.base, head);
    assert_int_equal(info.reused, 0);
    assert_int_equal(info.files_changed, 1);
    assert_int_equal(info.insertions, 1);
    assert_int_equal(info.deletions, 1);
    char *tip = git(repo, "rev-parse refs/heads/cascade/t/1");
    assert_string_equal(tip, info.commit);
    char *parent = git(repo, "rev-parse cascade/t/1^");
    assert_string_equal(parent, head);
    char *body = git(repo, "log -1 --format=%B%an%n%ae%n%cn cascade/t/1");
    assert_non_null(
        strstr(body, "Fix mean()\n\nIt divided by the wrong count.\n\nCascade-Task: t/1"));
    assert_non_null(strstr(body, "cascade\ncascade@localhost\ncascade"));
    char *blob = git(repo, "show cascade/t/1:calc/stats.py");
    assert_non_null(strstr(blob, "return sum(xs) / len(xs)"));
    assert_null(strstr(blob, "local note")); /* the base, not the dirty working tree */
    char trailer[64];
    assert_int_equal(
        vcs_commit_trailer(repo, "cascade/t/1", "Cascade-Model", trailer, sizeof trailer), 0);
    assert_string_equal(trailer, "swift-mini");
    char *after = snapshot(repo);
    assert_string_equal(before, after);

    /* The same task and diff again (a crash before the result): the same commit. */
    vcs_commit_info again;
    assert_int_equal(vcs_commit(&req, &again, err, sizeof err), 0);
    assert_int_equal(again.reused, 1);
    assert_string_equal(again.commit, info.commit);
    assert_string_equal(again.branch, "cascade/t/1");

    /* Another diff: the branch is not moved, the next name is taken. */
    vcs_commit_info other;
    commit_req(&req, repo, other_diff);
    assert_int_equal(vcs_commit(&req, &other, err, sizeof err), 0);
    assert_string_equal(other.branch, "cascade/t/1-2");
    char *tip2 = git(repo, "rev-parse refs/heads/cascade/t/1");
    assert_string_equal(tip2, info.commit);

    /* --force-branch: moved. */
    req.force = 1;
    req.task_id = "t/other"; /* so the "-2" commit is not taken as ours */
    vcs_commit_info forced;
    assert_int_equal(vcs_commit(&req, &forced, err, sizeof err), 0);
    assert_string_equal(forced.branch, "cascade/t/1");
    char *tip3 = git(repo, "rev-parse refs/heads/cascade/t/1");
    assert_string_equal(tip3, forced.commit);
    assert_string_not_equal(forced.commit, info.commit);

    /* A diff that does not apply, a base that does not resolve: errors, no branch. */
    commit_req(&req, repo,
               "--- a/calc/stats.py\n+++ b/calc/stats.py\n@@ -1,1 +1,1 @@\n-nope\n+x\n");
    req.branch = "cascade/bad";
    assert_int_equal(vcs_commit(&req, &info, err, sizeof err), WK_EINVAL);
    commit_req(&req, repo, good_diff);
    req.branch = "cascade/bad";
    req.base = "no-such-rev";
    assert_int_equal(vcs_commit(&req, &info, err, sizeof err), WK_ENOTFOUND);
    char *bad = git(repo, "branch --list 'cascade/bad*'");
    assert_string_equal(bad, "");
    char *after2 = snapshot(repo);
    assert_string_equal(before, after2);

    free(bad);
    free(after2);
    free(tip3);
    free(tip2);
    free(after);
    free(blob);
    free(body);
    free(parent);
    free(tip);
    free(head);
    free(before);
    free(repo);
}

/* A hostile diff makes no commit, no branch and no object it names. */
static void test_vcs_commit_refuses(void **state)
{
    (void)state;
    char *repo = make_repo("python", "refuse");
    char *before = snapshot(repo);
    vcs_commit_req req;
    vcs_commit_info info;
    char err[512];
    const char *hostile[] = {
        "--- /dev/null\n+++ b/../escape.py\n@@ -0,0 +1 @@\n+x = 1\n",
        "--- /dev/null\n+++ b/.git/hooks/post-commit\n@@ -0,0 +1 @@\n+touch /tmp/x\n",
        "--- /dev/null\n+++ b/docs/outside/evil.py\n@@ -0,0 +1 @@\n+x = 1\n",
    };
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        commit_req(&req, repo, hostile[i]);
        assert_int_equal(vcs_commit(&req, &info, err, sizeof err), WK_EINVAL);
    }
    char *branches = git(repo, "branch --list 'cascade/*'");
    assert_string_equal(branches, "");
    char *after = snapshot(repo);
    assert_string_equal(before, after);
    char *escape = wk_xasprintf("%s/../escape.py", repo);
    assert_int_not_equal(access(escape, F_OK), 0);
    free(escape);
    free(after);
    free(branches);
    free(before);
    free(repo);
}

/* The .patch file is what git format-patch writes, and git am takes it back. */
static void test_format_patch(void **state)
{
    (void)state;
    char *repo = make_repo("python", "fp");
    vcs_commit_req req;
    vcs_commit_info info;
    char err[512];
    commit_req(&req, repo, good_diff);
    assert_int_equal(vcs_commit(&req, &info, err, sizeof err), 0);
    wk_buf b;
    wk_buf_init(&b, 1 << 20);
    assert_int_equal(vcs_format_patch(repo, info.commit, &b, err, sizeof err), 0);
    assert_non_null(b.buf);
    char *want_from = wk_xasprintf("From %s Mon Sep 17 00:00:00 2001\n", info.commit);
    assert_true(strncmp(b.buf, want_from, strlen(want_from)) == 0);
    assert_non_null(strstr(b.buf, "\nSubject: [PATCH] Fix mean()\n"));
    assert_non_null(strstr(b.buf, "Cascade-Task: t/1\n"));
    assert_non_null(strstr(b.buf, " calc/stats.py | 2 +-\n"));
    assert_non_null(strstr(b.buf, "+    return sum(xs) / len(xs)\n"));
    char *file = h_write("fp.patch", b.buf);
    /* git am in a second clone of the base takes it and makes the same tree. */
    char *script = wk_xasprintf(
        "set -e; rm -rf clone; git clone -q '%s' clone; cd clone; git checkout -q %s; "
        "GIT_COMMITTER_NAME=x GIT_COMMITTER_EMAIL=x@x git am -q '%s'; git rev-parse HEAD^{tree}",
        repo, info.base, file);
    char *tree = sh_out(script);
    char *want_tree = git(repo, "rev-parse cascade/t/1^{tree}");
    assert_string_equal(tree, want_tree);
    /* Too small a buffer is a distinct error. */
    wk_buf small;
    wk_buf_init(&small, 64);
    assert_int_equal(vcs_format_patch(repo, info.commit, &small, err, sizeof err), WK_ETOOBIG);
    wk_buf_release(&small);
    free(want_tree);
    free(tree);
    free(script);
    free(file);
    free(want_from);
    wk_buf_release(&b);
    free(repo);
}

static void test_branch_names(void **state)
{
    (void)state;
    char out[VCS_BRANCH_MAX];
    vcs_branch_name("cascade/", "py/fizzbuzz", out, sizeof out);
    assert_string_equal(out, "cascade/py/fizzbuzz");
    vcs_branch_name("cascade/", "a b:c~d^e?f*g[h\\i", out, sizeof out);
    assert_string_equal(out, "cascade/a-b-c-d-e-f-g-h-i");
    vcs_branch_name("cascade/", "../x/.hidden//y..z.lock", out, sizeof out);
    assert_string_equal(out, "cascade/_./x/_hidden/y._z_lock");
    vcs_branch_name("cascade/", "", out, sizeof out);
    assert_true(strncmp(out, "cascade/task-", 13) == 0);
    vcs_branch_name("bot/", "@", out, sizeof out);
    assert_true(strncmp(out, "bot/", 4) == 0);
}

/*
 * The sink: an accepted patch task's result gains "patch", the .patch file
 * exists, the message has the instruction and every trailer; other results
 * are left alone; a commit that cannot be made turns the result into an error.
 */
static void test_commit_sink(void **state)
{
    (void)state;
    char *repo = make_repo("python", "sink");
    char *pdir = h_tmp("patches");
    mkdir(pdir, 0755);
    wk_commit_opts o = {.enabled = 1, .patch_dir = pdir, .name = "Bot", .email = "bot@ci"};
    cJSON *task = cJSON_CreateObject();
    cJSON_AddStringToObject(task, "id", "py/mean fix");
    cJSON_AddStringToObject(task, "kind", "patch");
    cJSON_AddStringToObject(task, "prompt", "Fix mean()\n\n\nIt divides by len + 1.\n");
    cJSON *r = cJSON_AddObjectToObject(task, "repo");
    cJSON_AddStringToObject(r, "path", repo);
    cJSON_AddStringToObject(r, "base", "HEAD");
    cJSON *res = cJSON_Parse("{\"id\": \"py/mean fix\", \"status\": \"accepted\", \"tier\": 1, "
                             "\"model\": \"forge-medium\", \"cost_usd\": 0.00123, "
                             "\"tests\": {\"passed\": 5, \"flaky\": 1, \"preexisting\": 2}}");
    cJSON_AddStringToObject(res, "answer", good_diff);
    char err[512] = "";
    assert_int_equal(wk_commit_sink(&o, task, res, err, sizeof err), 0);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(res, "patch");
    assert_non_null(p);
    assert_string_equal(h_str(p, "branch"), "cascade/py/mean-fix");
    char *file = wk_xasprintf("%s/py_mean_fix.patch", pdir);
    assert_string_equal(h_str(p, "file"), file);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(p, "files_changed")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(p, "insertions")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(p, "deletions")->valueint, 1);
    char *text = h_slurp(file);
    assert_non_null(strstr(text, "Subject: [PATCH] Fix mean()\n"));
    assert_non_null(strstr(text, "From: Bot <bot@ci>\n"));
    char *msg = git(repo, "log -1 --format=%B cascade/py/mean-fix");
    assert_string_equal(msg, "Fix mean()\n\nIt divides by len + 1.\n\n"
                             "Cascade-Task: py/mean fix\n"
                             "Cascade-Model: forge-medium\n"
                             "Cascade-Tier: 1\n"
                             "Cascade-Cost-USD: 0.001230\n"
                             "Cascade-Tests: passed 5, flaky 1, pre-existing 2");
    char *commit = git(repo, "rev-parse cascade/py/mean-fix");
    assert_string_equal(h_str(p, "commit"), commit);

    /* Not accepted, or not a patch task, or disabled: untouched. */
    cJSON *ex = cJSON_Parse("{\"id\": \"x\", \"status\": \"exhausted\", \"answer\": \"junk\"}");
    assert_int_equal(wk_commit_sink(&o, task, ex, err, sizeof err), 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(ex, "patch"));
    o.enabled = 0;
    cJSON_ReplaceItemInObjectCaseSensitive(ex, "status", cJSON_CreateString("accepted"));
    assert_int_equal(wk_commit_sink(&o, task, ex, err, sizeof err), 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(ex, "patch"));
    assert_string_equal(h_str(ex, "status"), "accepted");

    /* An answer that cannot be committed: the result says so. */
    o.enabled = 1;
    assert_true(wk_commit_sink(&o, task, ex, err, sizeof err) < 0);
    assert_string_equal(h_str(ex, "status"), "error");
    assert_true(strncmp(h_str(ex, "reason"), "commit_failed: ", 15) == 0);
    assert_null(cJSON_GetObjectItemCaseSensitive(ex, "patch"));

    /* The default instruction and absent counts. */
    cJSON_DeleteItemFromObjectCaseSensitive(task, "prompt");
    cJSON_DeleteItemFromObjectCaseSensitive(res, "tests");
    char *m2 = wk_commit_message(task, res);
    assert_true(strncmp(m2, WK_COMMIT_DEFAULT_INSTRUCTION "\n\nCascade-Task: ", 40) == 0);
    assert_non_null(strstr(m2, "Cascade-Tests: passed 0, flaky 0, pre-existing 0\n"));

    char *name, *email;
    assert_int_equal(wk_commit_parse_author("CI Bot <ci@example.com>", &name, &email), 0);
    assert_string_equal(name, "CI Bot");
    assert_string_equal(email, "ci@example.com");
    free(name);
    free(email);
    assert_int_equal(wk_commit_parse_author("no mail", &name, &email), WK_EINVAL);
    assert_int_equal(wk_commit_parse_author("<only@mail>", &name, &email), WK_EINVAL);
    assert_int_equal(wk_commit_parse_author("X <a@b> trailing", &name, &email), WK_EINVAL);

    free(m2);
    cJSON_Delete(ex);
    free(commit);
    free(msg);
    free(text);
    free(file);
    cJSON_Delete(res);
    cJSON_Delete(task);
    free(pdir);
    free(repo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_branch_names),       cmocka_unit_test(test_vcs_commit_series),
        cmocka_unit_test(test_vcs_commit_refuses), cmocka_unit_test(test_format_patch),
        cmocka_unit_test(test_commit_sink),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
