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
    char *objects = git(repo, "count-objects -v");
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
    /* Not even an object: the refusal comes before anything is applied. */
    char *objects_after = git(repo, "count-objects -v");
    assert_string_equal(objects, objects_after);
    free(objects_after);
    free(objects);
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

/* ---- cascade run on the fixture tasks ------------------------------------------ */

/* The fixture's cascades and models, for a command line. */
static char *fx(const char *name)
{
    return wk_xasprintf("%s/fixtures/cibot/%s", h_src(), name);
}

/* Copies fixtures/cibot/tasks.jsonl into the scratch dir, keeping lines whose id starts with one of
 * `prefixes` (NULL-terminated; NULL: all). */
static char *tasks_file(const char *name, const char *const *prefixes)
{
    char *src = fx("tasks.jsonl");
    char *text = h_slurp(src);
    wk_buf b;
    wk_buf_init(&b, 1 << 20);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const char *id = wk_jstr(j, "id");
        int keep = !prefixes;
        for (int i = 0; prefixes && prefixes[i] && id; i++)
            keep |= strncmp(id, prefixes[i], strlen(prefixes[i])) == 0;
        if (keep)
            wk_buf_appendf(&b, "%s\n", line);
        cJSON_Delete(j);
    }
    char *path = h_write(name, b.buf ? b.buf : "");
    wk_buf_release(&b);
    free(text);
    free(src);
    return path;
}

/*
 * Runs `cascade run` on tasks with the fixture cascades, from the scratch
 * directory (where the tasks' relative repo paths point); its exit status.
 */
static int run_tasks(const char *tasks, const char *results, const char *esc,
                     const char *stderr_file)
{
    char *script =
        wk_xasprintf("exec '%s' run '%s' --cascades '%s/fixtures/cibot/cascades' "
                     "--models '%s/fixtures/cibot/models.json' -o '%s' "
                     "--escalations '%s' 2>'%s'",
                     h_cascade_bin(), tasks, h_src(), h_src(), results, esc, stderr_file);
    int st = sh(script, NULL);
    free(script);
    return st;
}

/* The reasons of a result's attempts, "validator:reason" joined by spaces ("pass" for a pass). */
static char *attempt_reasons(const cJSON *r)
{
    wk_buf b;
    wk_buf_init(&b, 4096);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(r, "attempts"))
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "verdict");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "pass")))
            wk_buf_appendf(&b, "%spass", b.len ? " " : "");
        else
            wk_buf_appendf(&b, "%s%s:%s", b.len ? " " : "", h_str(v, "validator"),
                           h_str(v, "reason"));
    }
    return wk_buf_detach(&b, NULL);
}

/* Checks an accepted result: its tier, its commit on cascade/<id> with the trailers, its file. */
static void check_committed(const cJSON *res, const char *repo, const char *id, int tier,
                            const char *model)
{
    const cJSON *r = h_find(res, "id", id);
    assert_non_null(r);
    if (strcmp(h_str(r, "status"), "accepted") != 0)
        fail_msg("%s: %s (%s)", id, h_str(r, "status"), h_str(r, "reason"));
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(r, "tier")->valueint, tier);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "patch");
    assert_non_null(p);
    char *want_branch = wk_xasprintf("cascade/%s", id);
    assert_string_equal(h_str(p, "branch"), want_branch);
    char *args = wk_xasprintf("rev-parse refs/heads/%s", want_branch);
    char *tip = git(repo, args);
    assert_string_equal(tip, h_str(p, "commit"));
    free(args);
    args = wk_xasprintf("log -1 --format=%%B %s", want_branch);
    char *msg = git(repo, args);
    char *want = wk_xasprintf("Cascade-Task: %s\nCascade-Model: %s\nCascade-Tier: %d\n"
                              "Cascade-Cost-USD: ",
                              id, model, tier);
    if (!strstr(msg, want))
        fail_msg("%s: message lacks the trailers:\n%s", id, msg);
    assert_non_null(strstr(msg, "Cascade-Tests: passed "));
    free(args);
    args = wk_xasprintf("rev-parse %s^", want_branch);
    char *parent = git(repo, args);
    assert_string_equal(parent, h_str(p, "base"));
    char *file = h_slurp(h_str(p, "file"));
    assert_non_null(strstr(file, "Subject: [PATCH] "));
    assert_non_null(strstr(file, h_str(p, "commit")));
    free(file);
    free(parent);
    free(want);
    free(msg);
    free(tip);
    free(args);
    free(want_branch);
}

/*
 * Every recorded class in the three languages: each gets its verdict and
 * climbs once; every accepted patch is a commit; the Python checkout, dirty
 * and with staged changes, is byte for byte the same afterwards; the hostile
 * patches wrote nothing anywhere.
 */
static void test_run_classes(void **state)
{
    (void)state;
    char *py = make_repo("python", "python");
    char *c = make_repo("c", "c");
    char *js = make_repo("javascript", "javascript");
    dirty(py);
    char *before = snapshot(py);
    char *c_before = snapshot(c);
    const char *const prefixes[] = {"py/", "c/", "js/", NULL};
    char *tasks = tasks_file("classes.jsonl", prefixes);
    char *results = h_tmp("classes.results.jsonl");
    char *esc = h_tmp("classes.esc.jsonl");
    char *err = h_tmp("classes.err");
    char *recs = fx("recordings.jsonl");
    char *log = h_tmp("classes.mock.log");
    h_mock m;
    h_mock_start(&m, recs, log, NULL);
    int st = run_tasks(tasks, results, esc, err);
    h_mock_stop(&m);
    if (st != 0) {
        char *e = h_slurp(err);
        fail_msg("cascade run exited %d: %s", st, e);
    }
    cJSON *res = h_jsonl(results);
    assert_int_equal(cJSON_GetArraySize(res), 11);

    static const struct {
        const char *id, *reasons;
    } want[] = {
        {"py/passes", "pass"},
        {"py/does-not-apply", "patch:does_not_apply pass"},
        {"py/breaks-syntax", "syntax:syntax_error pass"},
        {"py/fails-tests", "tests:failed pass"},
        {"py/empty", "patch:empty_patch pass"},
        {"py/hostile-dotdot", "patch:unsafe_path pass"},
        {"py/hostile-git", "patch:unsafe_path pass"},
        {"py/hostile-abs", "patch:unsafe_path pass"},
        {"py/hostile-symlink", "patch:unsafe_path pass"},
        {"c/fails-tests", "tests:failed pass"},
        {"js/breaks-syntax", "syntax:syntax_error pass"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const cJSON *r = h_find(res, "id", want[i].id);
        assert_non_null(r);
        char *got = attempt_reasons(r);
        if (strcmp(got, want[i].reasons) != 0)
            fail_msg("%s: attempts %s, want %s", want[i].id, got, want[i].reasons);
        free(got);
        const char *repo = want[i].id[0] == 'c' ? c : want[i].id[0] == 'j' ? js : py;
        int tier = strcmp(want[i].reasons, "pass") == 0 ? 0 : 1;
        check_committed(res, repo, want[i].id, tier, tier ? "forge-medium" : "swift-mini");
    }
    /* One escalation line per climb: every task but py/passes climbed once (py-pre not run). */
    cJSON *escs = h_jsonl(esc);
    assert_int_equal(cJSON_GetArraySize(escs), 10);
    cJSON_Delete(escs);

    /* The user's checkouts: nothing moved. */
    char *after = snapshot(py);
    assert_string_equal(before, after);
    char *c_after = snapshot(c);
    assert_string_equal(c_before, c_after);
    char *status = git(py, "status --porcelain");
    assert_string_equal(status, "A  STAGED.txt\n M calc/stats.py\n?? scratch.txt");

    /* The hostile patches wrote nowhere: not beside the repo, in .git, at / or through the link. */
    char *escape = h_tmp("repos/escape.py");
    char *outside = h_tmp("repos/outside-the-repo");
    char *hook = wk_xasprintf("%s/.git/hooks/post-commit", py);
    assert_int_not_equal(access(escape, F_OK), 0);
    assert_int_not_equal(access(outside, F_OK), 0);
    assert_int_not_equal(access(hook, F_OK), 0);
    assert_int_not_equal(access("/tmp/cascade-absolute-evil.py", F_OK), 0);
    assert_int_not_equal(access("/tmp/cascade-hook-ran", F_OK), 0);
    /* ... and their commits hold the fix alone. */
    char *files = git(py, "diff --name-only cascade/py/hostile-git^ cascade/py/hostile-git");
    assert_string_equal(files, "calc/stats.py");

    free(files);
    free(hook);
    free(outside);
    free(escape);
    free(status);
    free(c_after);
    free(after);
    cJSON_Delete(res);
    free(log);
    free(recs);
    free(err);
    free(esc);
    free(results);
    free(tasks);
    free(c_before);
    free(before);
    free(js);
    free(c);
    free(py);
}

/* The flaky and pre-existing fixtures: the fix is accepted, and the trailer counts them. */
static void test_run_flaky_preexisting(void **state)
{
    (void)state;
    char *flaky = make_repo("python-flaky", "python-flaky");
    char *pre = make_repo("python-preexisting", "python-preexisting");
    const char *const prefixes[] = {"py-flaky/", "py-pre/", NULL};
    char *tasks = tasks_file("fp.jsonl", prefixes);
    char *results = h_tmp("fp.results.jsonl");
    char *esc = h_tmp("fp.esc.jsonl");
    char *err = h_tmp("fp.err");
    char *recs = fx("recordings.jsonl");
    h_mock m;
    h_mock_start(&m, recs, NULL, NULL);
    int st = run_tasks(tasks, results, esc, err);
    h_mock_stop(&m);
    assert_int_equal(st, 0);
    cJSON *res = h_jsonl(results);
    check_committed(res, pre, "py-pre/fix", 0, "swift-mini");
    char *msg = git(pre, "log -1 --format=%B cascade/py-pre/fix");
    assert_non_null(strstr(msg, "Cascade-Tests: passed 5, flaky 0, pre-existing 1"));
    check_committed(res, flaky, "py-flaky/fix", 0, "swift-mini");
    char *msg2 = git(flaky, "log -1 --format=%B cascade/py-flaky/fix");
    assert_non_null(strstr(msg2, ", flaky 1, pre-existing 0"));
    free(msg2);
    free(msg);
    cJSON_Delete(res);
    free(recs);
    free(err);
    free(esc);
    free(results);
    free(tasks);
    free(pre);
    free(flaky);
}

/* Lines of a file. */
static int count_lines(const char *path)
{
    char *s = h_slurp(path);
    int n = 0;
    for (char *p = s; *p; p++)
        n += *p == '\n';
    free(s);
    return n;
}

/*
 * kill -9 after the commit is made and before the result line: the rerun
 * finds the branch by its trailer and reuses it; one commit, one result
 * line, and no second call to the model.
 */
static void test_crash_after_commit(void **state)
{
    (void)state;
    char *py = make_repo("python", "crash");
    char *tpl = fx("tasks.jsonl");
    char *all = h_slurp(tpl);
    char *line = strtok(all, "\n"); /* py/passes, the first task */
    assert_non_null(strstr(line, "\"py/passes\""));
    /* The same task against this test's own repository. */
    cJSON *t = cJSON_Parse(line);
    cJSON_ReplaceItemInObjectCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "repo"), "path",
                                           cJSON_CreateString("repos/crash"));
    char *tl = cJSON_PrintUnformatted(t);
    char *withnl = wk_xasprintf("%s\n", tl);
    char *tasks = h_write("crash.jsonl", withnl);
    char *results = h_tmp("crash.results.jsonl");
    char *esc = h_tmp("crash.esc.jsonl");
    char *err = h_tmp("crash.err");
    char *recs = fx("recordings.jsonl");
    char *log = h_tmp("crash.mock.log");
    h_mock m;
    h_mock_start(&m, recs, log, NULL);

    setenv("CASCADE_TEST_CRASH_AFTER_COMMIT", "1", 1);
    int st = run_tasks(tasks, results, esc, err);
    unsetenv("CASCADE_TEST_CRASH_AFTER_COMMIT");
    if (st != 128 + 9) { /* SIGKILL */
        char *e = h_slurp(err), *o = h_slurp(results);
        fail_msg("exit %d, want a SIGKILL: %s\n%s", st, e, o);
    }
    char *branch = git(py, "rev-parse refs/heads/cascade/py/passes");
    assert_int_equal(strlen(branch), 40);
    assert_int_equal(count_lines(results), 0);
    int calls = count_lines(log);
    assert_int_equal(calls, 1);

    st = run_tasks(tasks, results, esc, err);
    h_mock_stop(&m);
    assert_int_equal(st, 0);
    assert_int_equal(count_lines(results), 1);
    assert_int_equal(count_lines(log), calls); /* the answer came from the journal */
    cJSON *res = h_jsonl(results);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(h_find(res, "id", "py/passes"), "patch");
    assert_non_null(p);
    assert_string_equal(h_str(p, "branch"), "cascade/py/passes");
    assert_string_equal(h_str(p, "commit"), branch);
    char *branches = git(py, "branch --list 'cascade/*'");
    assert_string_equal(branches, "  cascade/py/passes");
    char *n = git(py, "log --all --format=%H --grep='^Cascade-Task: py/passes$'");
    assert_string_equal(n, branch);

    free(n);
    free(branches);
    cJSON_Delete(res);
    free(branch);
    free(log);
    free(recs);
    free(err);
    free(esc);
    free(results);
    free(tasks);
    free(withnl);
    free(tl);
    cJSON_Delete(t);
    free(all);
    free(tpl);
    free(py);
}

/* `cascade fix` from a shell in a fixture repository. */
static void test_fix_cli(void **state)
{
    (void)state;
    char *py = make_repo("python", "fixrepo");
    dirty(py);
    char *before = snapshot(py);
    char *recs = fx("recordings.jsonl");
    h_mock m;
    h_mock_start(&m, recs, NULL, NULL);
    char *script = wk_xasprintf(
        "cd '%s' && '%s' fix --repo . --test-cmd 'python3 -m pytest -q -rA' --id fix/python "
        "--cascades '%s/fixtures/cibot/cascades' --models '%s/fixtures/cibot/models.json' "
        "--author 'CI Bot <ci@example.com>' 2>fix.err.log >fix.out; echo \"exit $?\"; cat fix.out; "
        "rm -f fix.out fix.err.log",
        py, h_cascade_bin(), h_src(), h_src());
    char *out = sh_out(script);
    if (!strstr(out, "exit 0\nstatus=accepted\nbranch=cascade/fix/python\ncommit="))
        fail_msg("cascade fix printed:\n%s", out);
    char *commit = git(py, "rev-parse cascade/fix/python");
    char *want = wk_xasprintf("commit=%s\n", commit);
    assert_non_null(strstr(out, want));
    char *pfile = wk_xasprintf("patch=%s/.git/cascade/fix_python.patch\ntier=1\n", py);
    assert_non_null(strstr(out, pfile));
    char *author = git(py, "log -1 --format='%an <%ae>' cascade/fix/python");
    assert_string_equal(author, "CI Bot <ci@example.com>");
    char *after = snapshot(py);
    assert_string_equal(before, after);

    /* Again: the result is there; the same commit, no second branch. */
    char *out2 = sh_out(script);
    assert_non_null(strstr(out2, want));
    char *branches = git(py, "branch --list 'cascade/*'");
    assert_string_equal(branches, "  cascade/fix/python");

    /* No answer for this id (the mock has none): no fix, exit 1. */
    char *none = wk_xasprintf(
        "cd '%s' && '%s' fix --test-cmd 'python3 -m pytest -q' --id fix/unknown "
        "--cascades '%s/fixtures/cibot/cascades' --models '%s/fixtures/cibot/models.json' "
        "2>/dev/null; echo \"exit $?\"",
        py, h_cascade_bin(), h_src(), h_src());
    char *out3 = sh_out(none);
    assert_non_null(strstr(out3, "status=error\nexit 1"));
    /* At the fixed commit the tests pass: nothing to fix, exit 1, no call, no branch (default id).
     */
    char *fixed = wk_xasprintf(
        "cd '%s' && '%s' fix --test-cmd 'python3 -m pytest -q -rA' --base cascade/fix/python "
        "--cascades '%s/fixtures/cibot/cascades' --models '%s/fixtures/cibot/models.json' "
        "2>/dev/null; echo \"exit $?\"",
        py, h_cascade_bin(), h_src(), h_src());
    char *out4 = sh_out(fixed);
    assert_string_equal(out4, "status=nothing_to_fix\nexit 1");
    char *branches2 = git(py, "branch --list 'cascade/*'");
    assert_string_equal(branches2, "  cascade/fix/python");
    char *state_file = wk_xasprintf("%s/.git/cascade/fix-%.12s.results.jsonl", py, commit);
    assert_int_equal(access(state_file, F_OK), 0);
    free(state_file);
    free(branches2);
    free(out4);
    free(fixed);
    h_mock_stop(&m);

    /* Usage errors: exit 2, before anything runs. */
    static const char *const bad[] = {
        "fix",                                   /* no --test-cmd */
        "fix --test-cmd ''",                     /* empty */
        "fix --test-cmd \"pytest 'unclosed\"",   /* unclosed quote */
        "fix --test-cmd ./run-tests",            /* no language */
        "fix --test-cmd pytest --budget nope",   /* bad value */
        "fix --test-cmd pytest --author nomail", /* bad author */
        "fix --test-cmd pytest extra",           /* stray argument */
        "fix --no-such-option",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *cmd =
            wk_xasprintf("cd '%s' && '%s' %s 2>/dev/null; echo $?", py, h_cascade_bin(), bad[i]);
        char *code = sh_out(cmd);
        if (strcmp(code, "2") != 0)
            fail_msg("cascade %s exited %s, want 2", bad[i], code);
        free(code);
        free(cmd);
    }
    /* Not a repository: exit 1. */
    char *norepo = wk_xasprintf(
        "cd /tmp && '%s' fix --repo / --test-cmd pytest 2>/dev/null; echo $?", h_cascade_bin());
    char *code = sh_out(norepo);
    assert_string_equal(code, "1");
    /* --help tells the truth about what it prints. */
    char *help = wk_xasprintf("'%s' fix --help", h_cascade_bin());
    char *htext = sh_out(help);
    assert_non_null(strstr(htext, "exit status: 0 a fix was committed; 1 none was found"));
    assert_non_null(strstr(htext, "--test-cmd"));

    free(htext);
    free(help);
    free(code);
    free(norepo);
    free(out3);
    free(none);
    free(branches);
    free(out2);
    free(after);
    free(author);
    free(pfile);
    free(want);
    free(commit);
    free(out);
    free(script);
    free(recs);
    free(before);
    free(py);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_branch_names),
        cmocka_unit_test(test_vcs_commit_series),
        cmocka_unit_test(test_vcs_commit_refuses),
        cmocka_unit_test(test_format_patch),
        cmocka_unit_test(test_commit_sink),
        cmocka_unit_test(test_run_classes),
        cmocka_unit_test(test_run_flaky_preexisting),
        cmocka_unit_test(test_crash_after_commit),
        cmocka_unit_test(test_fix_cli),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
