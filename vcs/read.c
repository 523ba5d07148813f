/*
 * Reading a repository at its base revision (see vcs.h): the checks a patch
 * task passes at intake, files and the file list for the prompt, and the
 * base tree exported into a directory for the baseline test run. Everything
 * comes from the object store at the base; the working tree, the index and
 * HEAD are never read or written, so a dirty checkout changes nothing.
 */
#include "vcs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Directory depth an export follows; git allows deeper, no real repository needs it. */
#define EXPORT_DEPTH_MAX 64

static const char *git_msg(const char *fallback)
{
    const git_error *e = git_error_last();
    return e && e->message ? e->message : fallback;
}

/* ---- intake checks --------------------------------------------------------------- */

typedef struct sizer {
    git_odb *odb;
    unsigned long long total, max;
    int over;
} sizer;

static int size_one(const char *root, const git_tree_entry *e, void *arg)
{
    (void)root;
    sizer *z = arg;
    if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
        return 0;
    size_t len = 0;
    git_object_t type;
    if (git_odb_read_header(&len, &type, z->odb, git_tree_entry_id(e)) == 0)
        z->total += len;
    if (z->max && z->total > z->max) {
        z->over = 1;
        return -1; /* stop the walk: the answer is known */
    }
    return 0;
}

int vcs_repo_check(const char *path, const char *rev, unsigned long long max_bytes, char *err,
                   size_t errlen)
{
    git_repository *repo = NULL;
    git_object *obj = NULL;
    git_tree *tree = NULL;
    git_odb *odb = NULL;
    int rc = 0;
    git_libgit2_init();
    if (git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
        rc = wk_errf(WK_ENOTFOUND, err, errlen, "is not a git repository (%s)",
                     git_msg("cannot open"));
        goto cleanup;
    }
    if (git_revparse_single(&obj, repo, rev) < 0 ||
        git_object_peel((git_object **)&tree, obj, GIT_OBJECT_TREE) < 0) {
        rc = wk_errf(WK_EINVAL, err, errlen, "does not resolve to a commit (%s)",
                     git_msg("unknown revision"));
        goto cleanup;
    }
    if (max_bytes) {
        if (git_repository_odb(&odb, repo) < 0) {
            rc = wk_errf(WK_EINVAL, err, errlen, "cannot read the objects (%s)", git_msg("?"));
            goto cleanup;
        }
        sizer z = {.odb = odb, .max = max_bytes};
        git_tree_walk(tree, GIT_TREEWALK_PRE, size_one, &z);
        if (z.over) {
            rc = wk_errf(WK_ETOOBIG, err, errlen, "holds more than %llu MiB of files at %s",
                         max_bytes >> 20, rev);
            goto cleanup;
        }
    }
cleanup:
    git_odb_free(odb);
    git_tree_free(tree);
    git_object_free(obj);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}

/* ---- files and the file list ------------------------------------------------------ */

int vcs_base_read(const vcs_base *b, const char *path, size_t cap, char **out, size_t *len,
                  size_t *full)
{
    git_tree_entry *e = NULL;
    git_blob *blob = NULL;
    int rc = WK_ENOTFOUND;
    *out = NULL;
    if (git_tree_entry_bypath(&e, b->tree, path) < 0 || git_tree_entry_type(e) != GIT_OBJECT_BLOB ||
        git_tree_entry_filemode(e) == GIT_FILEMODE_LINK ||
        git_blob_lookup(&blob, b->repo, git_tree_entry_id(e)) < 0)
        goto cleanup;
    size_t size = (size_t)git_blob_rawsize(blob);
    size_t take = size > cap ? cap : size;
    *out = wk_xstrndup(git_blob_rawcontent(blob), take);
    *len = take;
    *full = size;
    rc = 0;
cleanup:
    git_blob_free(blob);
    git_tree_entry_free(e);
    return rc;
}

typedef struct walker {
    long max, given;
    int (*cb)(void *arg, const char *path);
    void *arg;
    int stopped;
} walker;

static int walk_one(const char *root, const git_tree_entry *e, void *arg)
{
    walker *w = arg;
    if (git_tree_entry_type(e) != GIT_OBJECT_BLOB)
        return 0;
    if (w->given >= w->max)
        return -1;
    char *path = wk_xasprintf("%s%s", root, git_tree_entry_name(e));
    int stop = w->cb(w->arg, path);
    free(path);
    w->given++;
    return stop ? -1 : 0;
}

long vcs_base_walk(const vcs_base *b, long max, int (*cb)(void *arg, const char *path), void *arg)
{
    walker w = {.max = max, .cb = cb, .arg = arg};
    git_tree_walk(b->tree, GIT_TREEWALK_PRE, walk_one, &w);
    return w.given;
}

/* ---- export -------------------------------------------------------------------------- */

typedef struct exporter {
    git_repository *repo;
    unsigned long long total, max;
    char *err;
    size_t errlen;
} exporter;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/*
 * Writes tree t under the directory dfd. Names come from git trees, which
 * refuse "/", "." and ".."; every open is relative to dfd with O_NOFOLLOW, so
 * a symlink written earlier can never be followed by a later write.
 */
static int export_tree(exporter *x, git_tree *t, int dfd, const char *prefix, int depth)
{
    if (depth > EXPORT_DEPTH_MAX)
        return wk_errf(WK_ETOOBIG, x->err, x->errlen, "%s is nested too deeply", prefix);
    size_t n = git_tree_entrycount(t);
    for (size_t i = 0; i < n; i++) {
        const git_tree_entry *e = git_tree_entry_byindex(t, i);
        const char *name = git_tree_entry_name(e);
        git_filemode_t mode = git_tree_entry_filemode(e);
        int rc = 0;
        if (strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
            strcmp(name, ".git") == 0)
            continue; /* a crafted tree; nothing a test needs */
        if (mode == GIT_FILEMODE_TREE || mode == GIT_FILEMODE_COMMIT) {
            if (mkdirat(dfd, name, 0755) != 0 && errno != EEXIST)
                return wk_errf(WK_EIO, x->err, x->errlen, "mkdir %s%s: %s", prefix, name,
                               strerror(errno));
            if (mode == GIT_FILEMODE_COMMIT)
                continue; /* a submodule's commit is not in this repository */
            int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            git_tree *st = NULL;
            if (sub < 0 || git_tree_lookup(&st, x->repo, git_tree_entry_id(e)) < 0) {
                if (sub >= 0)
                    close(sub);
                return wk_errf(WK_EIO, x->err, x->errlen, "cannot export %s%s", prefix, name);
            }
            fchmod(sub, 0755); /* umask may have narrowed it; the sandbox's uid reads it */
            char *sp = wk_xasprintf("%s%s/", prefix, name);
            rc = export_tree(x, st, sub, sp, depth + 1);
            free(sp);
            git_tree_free(st);
            close(sub);
            if (rc < 0)
                return rc;
            continue;
        }
        git_blob *blob = NULL;
        if (git_blob_lookup(&blob, x->repo, git_tree_entry_id(e)) < 0)
            return wk_errf(WK_EIO, x->err, x->errlen, "cannot read %s%s: %s", prefix, name,
                           git_msg("?"));
        size_t size = (size_t)git_blob_rawsize(blob);
        x->total += size;
        if (x->max && x->total > x->max) {
            git_blob_free(blob);
            return wk_errf(WK_ETOOBIG, x->err, x->errlen, "the tree holds more than %llu bytes",
                           x->max);
        }
        if (mode == GIT_FILEMODE_LINK) {
            /* The link is written as a link; whatever it names is the sandbox's business. */
            char *target = wk_xstrndup(git_blob_rawcontent(blob), size);
            if (symlinkat(target, dfd, name) != 0)
                rc = wk_errf(WK_EIO, x->err, x->errlen, "symlink %s%s: %s", prefix, name,
                             strerror(errno));
            free(target);
        } else {
            mode_t m = mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644;
            int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, m);
            if (fd < 0 || fchmod(fd, m) != 0 || write_all(fd, git_blob_rawcontent(blob), size))
                rc = wk_errf(WK_EIO, x->err, x->errlen, "write %s%s: %s", prefix, name,
                             strerror(errno));
            if (fd >= 0)
                close(fd);
        }
        git_blob_free(blob);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int vcs_base_export(const vcs_base *b, const char *dir, unsigned long long max_bytes, char *err,
                    size_t errlen)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return wk_errf(WK_EIO, err, errlen, "open %s: %s", dir, strerror(errno));
    exporter x = {.repo = b->repo, .max = max_bytes, .err = err, .errlen = errlen};
    int rc = export_tree(&x, b->tree, dfd, "", 0);
    close(dfd);
    return rc;
}

/* ---- a patched tree against its base ------------------------------------------------- */

int vcs_tree_unchanged(const vcs_tree *t, const vcs_base *b)
{
    git_oid oid;
    /* The tree objects go to the in-memory store, like the patched blobs. */
    if (git_index_write_tree_to(&oid, t->index, b->repo) < 0)
        return 0;
    return git_oid_equal(&oid, git_tree_id(b->tree));
}

char *vcs_diff_touched(const vcs_diff *d)
{
    wk_buf out;
    wk_buf_init(&out, VCS_DIFF_MAX);
    size_t n = git_diff_num_deltas(d->diff);
    for (size_t i = 0; i < n; i++) {
        const git_diff_delta *dd = git_diff_get_delta(d->diff, i);
        if (dd->status != GIT_DELTA_DELETED && dd->new_file.path)
            wk_buf_appendf(&out, "%s\n", dd->new_file.path);
    }
    char *s = wk_buf_detach(&out, NULL);
    return s ? s : wk_xstrdup("");
}
