/*
 * The CI bot's commit (see vcs.h): an accepted diff applied to the base tree
 * the way the patch validator applied it, its new blobs copied from the
 * in-memory store to the repository's own, the tree and a commit on top of
 * the base written, and one new ref made under refs/heads/. Nothing else of
 * the repository is written: no HEAD, no index file, no checkout, so the
 * user's working tree and staged changes stay as they were.
 *
 * A run that crashed after making its commit and before writing its result
 * comes back here with the same diff: the branch it made is found by its
 * Cascade-Task trailer, parent and tree, and reused, so a task never leaves
 * two commits.
 */
#include "vcs_int.h"

#include <git2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names of the series "B", "B-2", ... tried before giving up. */
#define SERIES_MAX 100
/* Files one committed diff may touch; the patch validator allows as many. */
#define COMMIT_FILES_MAX 500

static const char *git_msg(const char *fallback)
{
    const git_error *e = git_error_last();
    return e && e->message ? e->message : fallback;
}

/* ---- branch names --------------------------------------------------------------- */

static int ref_valid(const char *branch)
{
    char ref[VCS_BRANCH_MAX + 16];
    int valid = 0;
    snprintf(ref, sizeof ref, "refs/heads/%s", branch);
    return git_reference_name_is_valid(&valid, ref) == 0 && valid;
}

void vcs_branch_name(const char *prefix, const char *id, char *out, size_t n)
{
    wk_buf b;
    wk_buf_init(&b, n > 1 ? n - 1 : 1);
    git_libgit2_init();
    int start = 1; /* at the start of a path component */
    int cut = wk_buf_append(&b, prefix, strlen(prefix)) != 0;
    for (const char *p = id; *p && !cut; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.' || c == '/';
        if (!ok)
            c = '-';
        /* No empty component, none that starts with '.', no "..". */
        if (c == '/' && start)
            continue;
        if (c == '.' && (start || (b.len && b.buf[b.len - 1] == '.')))
            c = '_';
        start = c == '/';
        cut = wk_buf_append(&b, &c, 1) != 0;
    }
    /* Nor may it end with '/', '.' or ".lock". */
    while (b.len && (b.buf[b.len - 1] == '/' || b.buf[b.len - 1] == '.'))
        b.len--;
    if (b.len >= 5 && memcmp(b.buf + b.len - 5, ".lock", 5) == 0)
        b.buf[b.len - 5] = '_';
    snprintf(out, n, "%.*s", (int)b.len, b.buf ? b.buf : "");
    if (!ref_valid(out) || !*id)
        snprintf(out, n, "%stask-%016llx", prefix, (unsigned long long)wk_hash(WK_HASH_SEED, id));
    wk_buf_release(&b);
    git_libgit2_shutdown();
}

/* ---- the commit ---------------------------------------------------------------- */

/* Copies the blobs of the patched index that the repository's store lacks. */
static int copy_new_blobs(git_index *index, git_repository *from, git_odb *to, char *err,
                          size_t errlen)
{
    git_odb *src = NULL;
    int rc = 0;
    if (git_repository_odb(&src, from) < 0)
        return wk_errf(WK_EIO, err, errlen, "object store: %s", git_msg("?"));
    size_t n = git_index_entrycount(index);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const git_index_entry *e = git_index_get_byindex(index, i);
        if (git_odb_exists(to, &e->id))
            continue;
        git_odb_object *obj = NULL;
        git_oid written;
        if (git_odb_read(&obj, src, &e->id) < 0 ||
            git_odb_write(&written, to, git_odb_object_data(obj), git_odb_object_size(obj),
                          git_odb_object_type(obj)) < 0)
            rc = wk_errf(WK_EIO, err, errlen, "writing %s: %s", e->path, git_msg("?"));
        git_odb_object_free(obj);
    }
    git_odb_free(src);
    return rc;
}

/*
 * The tree of `diff` applied to the base, written to the repository's store
 * (only objects). On a refusal or failed apply, WK_EINVAL with why.
 */
static int patched_tree(const vcs_commit_req *req, git_repository *repo, git_oid *tree_id,
                        char *err, size_t errlen)
{
    vcs_diff *d = NULL;
    vcs_base *b = NULL;
    vcs_tree *t = NULL;
    git_odb *odb = NULL;
    int recounted = 0, moved = 0;
    char why[512] = "";
    int rc = vcs_base_open(&b, req->repo_path, req->base, why, sizeof why);
    if (rc < 0) {
        rc = wk_errf(rc, err, errlen, "cannot read %s at %s: %s", req->repo_path, req->base, why);
        goto cleanup;
    }
    rc = vcs_diff_read(&d, req->diff, &recounted, why, sizeof why);
    if (rc == 0 && vcs_diff_nfiles(d) > COMMIT_FILES_MAX)
        rc = wk_errf(WK_EINVAL, why, sizeof why, "more than %d files", COMMIT_FILES_MAX);
    if (rc < 0) {
        rc = wk_errf(WK_EINVAL, err, errlen, "the diff: %s", why);
        goto cleanup;
    }
    /* The validator confined these paths already; a commit checks again on its own. */
    vcs_refusal r;
    if (vcs_confine(d, b, &r)) {
        rc = wk_errf(WK_EINVAL, err, errlen, "the diff is refused at %s%s%s", r.path ? r.path : "?",
                     r.why ? ": " : "", r.why ? r.why : "");
        goto cleanup;
    }
    if (vcs_diff_place(d, b, &moved, why, sizeof why) < 0) {
        rc = wk_errf(WK_EINVAL, err, errlen, "the diff: %s", why);
        goto cleanup;
    }
    vcs_apply_failure f;
    if (vcs_apply(&t, d, b, &f) < 0) {
        rc = wk_errf(WK_EINVAL, err, errlen, "the diff does not apply to %s: %s", f.file, f.why);
        goto cleanup;
    }
    if (git_repository_odb(&odb, repo) < 0) {
        rc = wk_errf(WK_EIO, err, errlen, "object store: %s", git_msg("?"));
        goto cleanup;
    }
    rc = copy_new_blobs(vcs__tree_index(t), vcs__tree_repo(t), odb, err, errlen);
    if (rc == 0 && git_index_write_tree_to(tree_id, vcs__tree_index(t), repo) < 0)
        rc = wk_errf(WK_EIO, err, errlen, "writing the tree: %s", git_msg("?"));
cleanup:
    git_odb_free(odb);
    vcs_tree_free(t);
    vcs_base_free(b);
    vcs_diff_free(d);
    return rc;
}

/* The value of trailer `key` of a message, copied to out; 0 or WK_ENOTFOUND. */
static int message_trailer(const char *message, const char *key, char *out, size_t n)
{
    git_message_trailer_array arr = {0};
    int rc = WK_ENOTFOUND;
    if (git_message_trailers(&arr, message) < 0)
        return rc;
    for (size_t i = 0; i < arr.count; i++)
        if (strcmp(arr.trailers[i].key, key) == 0) {
            snprintf(out, n, "%s", arr.trailers[i].value);
            rc = 0;
        }
    git_message_trailer_array_free(&arr);
    return rc;
}

/* 1 when the commit is ours: the task's trailer, the base as its one parent, the tree. */
static int is_ours(git_commit *c, const vcs_commit_req *req, const git_oid *base,
                   const git_oid *tree)
{
    char task[512];
    return git_commit_parentcount(c) == 1 && git_oid_equal(git_commit_parent_id(c, 0), base) &&
           git_oid_equal(git_commit_tree_id(c), tree) &&
           message_trailer(git_commit_message(c), "Cascade-Task", task, sizeof task) == 0 &&
           strcmp(task, req->task_id) == 0;
}

/* The k-th name of the series (k >= 1): "B", "B-2", ... */
static void series_name(const char *branch, int k, char *out, size_t n)
{
    if (k == 1)
        snprintf(out, n, "%s", branch);
    else
        snprintf(out, n, "%s-%d", branch, k);
}

/* Diff statistics of the commit against its base. */
static int diff_stats(git_repository *repo, git_tree *base, git_tree *tree, vcs_commit_info *out)
{
    git_diff *diff = NULL;
    git_diff_stats *st = NULL;
    int rc = 0;
    if (git_diff_tree_to_tree(&diff, repo, base, tree, NULL) < 0 ||
        git_diff_get_stats(&st, diff) < 0) {
        rc = WK_EIO;
    } else {
        out->files_changed = git_diff_stats_files_changed(st);
        out->insertions = git_diff_stats_insertions(st);
        out->deletions = git_diff_stats_deletions(st);
    }
    git_diff_stats_free(st);
    git_diff_free(diff);
    return rc;
}

int vcs_commit(const vcs_commit_req *req, vcs_commit_info *out, char *err, size_t errlen)
{
    git_repository *repo = NULL;
    git_object *base_obj = NULL;
    git_commit *base = NULL;
    git_tree *base_tree = NULL, *tree = NULL;
    git_signature *sig = NULL;
    git_oid tree_id, commit_id;
    int rc = 0, made = 0;
    char name[VCS_BRANCH_MAX], ref[VCS_BRANCH_MAX + 16];
    git_libgit2_init(); /* reference counted; dropped at the end */
    memset(out, 0, sizeof *out);
    /* Room for the longest suffix, "-100". */
    if (strlen(req->branch) + 5 > sizeof name) {
        rc = wk_errf(WK_EINVAL, err, errlen, "branch name over %d bytes", VCS_BRANCH_MAX - 6);
        goto cleanup;
    }
    if (git_repository_open_ext(&repo, req->repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0 ||
        git_revparse_single(&base_obj, repo, req->base) < 0 ||
        git_object_peel((git_object **)&base, base_obj, GIT_OBJECT_COMMIT) < 0 ||
        git_commit_tree(&base_tree, base) < 0) {
        rc = wk_errf(WK_ENOTFOUND, err, errlen, "cannot read %s at %s: %s", req->repo_path,
                     req->base, git_msg("?"));
        goto cleanup;
    }
    git_oid_tostr(out->base, sizeof out->base, git_commit_id(base));
    rc = patched_tree(req, repo, &tree_id, err, errlen);
    if (rc < 0)
        goto cleanup;
    if (git_tree_lookup(&tree, repo, &tree_id) < 0) {
        rc = wk_errf(WK_EIO, err, errlen, "reading the new tree: %s", git_msg("?"));
        goto cleanup;
    }
    if (diff_stats(repo, base_tree, tree, out) < 0) {
        rc = wk_errf(WK_EIO, err, errlen, "diffing the new tree: %s", git_msg("?"));
        goto cleanup;
    }

    /* Our own commit from an earlier run, on any name of the series, is kept. */
    int first_free = 0;
    for (int k = 1; k <= SERIES_MAX; k++) {
        git_oid at;
        git_commit *c = NULL;
        series_name(req->branch, k, name, sizeof name);
        snprintf(ref, sizeof ref, "refs/heads/%s", name);
        if (git_reference_name_to_id(&at, repo, ref) < 0) {
            if (!first_free)
                first_free = k;
            /* A series has no gaps unless someone deleted one; look a little further. */
            if (k > first_free + 2)
                break;
            continue;
        }
        int ours =
            git_commit_lookup(&c, repo, &at) == 0 && is_ours(c, req, git_commit_id(base), &tree_id);
        git_commit_free(c);
        if (ours) {
            memcpy(out->branch, name, sizeof name);
            git_oid_tostr(out->commit, sizeof out->commit, &at);
            out->reused = 1;
            goto cleanup;
        }
    }

    const char *who = req->name ? req->name : "cascade";
    const char *mail = req->email ? req->email : "cascade@localhost";
    const git_commit *parents[1] = {base};
    if (git_signature_now(&sig, who, mail) < 0 ||
        git_commit_create(&commit_id, repo, NULL, sig, sig, NULL, req->message, tree, 1, parents) <
            0) {
        rc = wk_errf(WK_EIO, err, errlen, "writing the commit: %s", git_msg("?"));
        goto cleanup;
    }
    git_oid_tostr(out->commit, sizeof out->commit, &commit_id);
    /* force=0 makes the ref only if the name is free, so a branch is never moved. */
    for (int k = 1; k <= SERIES_MAX && !made; k++) {
        git_reference *r = NULL;
        series_name(req->branch, k, name, sizeof name);
        snprintf(ref, sizeof ref, "refs/heads/%s", name);
        int force = req->force && k == 1;
        int grc = git_reference_create(&r, repo, ref, &commit_id, force, "cascade: commit");
        git_reference_free(r);
        if (grc == 0) {
            made = 1;
        } else if (grc != GIT_EEXISTS) {
            rc = wk_errf(WK_EIO, err, errlen, "making %s: %s", ref, git_msg("?"));
            goto cleanup;
        }
    }
    if (!made) {
        rc = wk_errf(WK_EBUSY, err, errlen, "branches %s to %s-%d all exist", req->branch,
                     req->branch, SERIES_MAX);
        goto cleanup;
    }
    memcpy(out->branch, name, sizeof name);
cleanup:
    git_signature_free(sig);
    git_tree_free(tree);
    git_tree_free(base_tree);
    git_commit_free(base);
    git_object_free(base_obj);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}

/* ---- reading a commit back ----------------------------------------------------- */

/* Opens the repository and the commit at rev. */
static int open_commit(const char *repo_path, const char *rev, git_repository **repo,
                       git_commit **c)
{
    git_object *obj = NULL;
    int rc = 0;
    if (git_repository_open_ext(repo, repo_path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0 ||
        git_revparse_single(&obj, *repo, rev) < 0 ||
        git_object_peel((git_object **)c, obj, GIT_OBJECT_COMMIT) < 0)
        rc = WK_ENOTFOUND;
    git_object_free(obj);
    return rc;
}

int vcs_format_patch(const char *repo_path, const char *commit, wk_buf *out, char *err,
                     size_t errlen)
{
    git_repository *repo = NULL;
    git_commit *c = NULL;
    git_buf mail = {0};
    int rc = 0;
    git_libgit2_init();
    /* GIT_EMAIL_CREATE_OPTIONS_INIT, spelled out: the macro leaves fields to zero-fill. */
    git_email_create_options opts;
    memset(&opts, 0, sizeof opts);
    opts.version = GIT_EMAIL_CREATE_OPTIONS_VERSION;
    opts.flags = GIT_EMAIL_CREATE_DEFAULT;
    git_diff_options_init(&opts.diff_opts, GIT_DIFF_OPTIONS_VERSION);
    opts.diff_opts.flags = GIT_DIFF_SHOW_BINARY;
    git_diff_find_options_init(&opts.diff_find_opts, GIT_DIFF_FIND_OPTIONS_VERSION);
    if (open_commit(repo_path, commit, &repo, &c) < 0) {
        rc = wk_errf(WK_ENOTFOUND, err, errlen, "cannot read commit %s: %s", commit, git_msg("?"));
        goto cleanup;
    }
    if (git_email_create_from_commit(&mail, c, &opts) < 0) {
        rc = wk_errf(WK_EIO, err, errlen, "formatting %s: %s", commit, git_msg("?"));
        goto cleanup;
    }
    if (wk_buf_append(out, mail.ptr, mail.size) < 0)
        rc =
            wk_errf(WK_ETOOBIG, err, errlen, "the patch of %s is over %zu bytes", commit, out->cap);
cleanup:
    git_buf_dispose(&mail);
    git_commit_free(c);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}

int vcs_commit_trailer(const char *repo_path, const char *rev, const char *key, char *out, size_t n)
{
    git_repository *repo = NULL;
    git_commit *c = NULL;
    git_libgit2_init();
    int rc = open_commit(repo_path, rev, &repo, &c);
    if (rc == 0)
        rc = message_trailer(git_commit_message(c), key, out, n);
    git_commit_free(c);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}

int vcs_resolve(const char *path, const char *rev, char sha[41], char *gitdir, size_t n, char *err,
                size_t errlen)
{
    git_repository *repo = NULL;
    git_commit *c = NULL;
    git_libgit2_init();
    int rc = open_commit(path, rev, &repo, &c);
    if (rc < 0) {
        wk_errf(rc, err, errlen, "%s at %s: %s", path, rev, git_msg("not found"));
    } else {
        git_oid_tostr(sha, 41, git_commit_id(c));
        snprintf(gitdir, n, "%s", git_repository_path(repo));
    }
    git_commit_free(c);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}
