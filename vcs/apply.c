/*
 * libgit2's part of reading and applying a diff (see vcs.h): the parsed diff,
 * the repository opened at its base with an in-memory object store, the
 * paths checked against the base tree, hunks placed where their context is,
 * the apply in memory, and the patched tree written out. Every object here
 * holds a reference on libgit2 (git_libgit2_init) that its free drops.
 */
#include "vcs_int.h"

#include <git2.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libgit2's message for the last error, or `fallback`. */
static const char *git_msg(const char *fallback)
{
    const git_error *e = git_error_last();
    return e && e->message ? e->message : fallback;
}

/* ---- the diff ------------------------------------------------------------------ */

int vcs_diff_read(vcs_diff **out, const char *text, int *recounted, char *err, size_t errlen)
{
    vcs_diff *d = wk_xcalloc(1, sizeof *d);
    git_libgit2_init(); /* reference counted; dropped by vcs_diff_free */
    wk_buf_init(&d->text, VCS_DIFF_MAX + 64 * 1024);    /* room for the headers we add */
    wk_buf_init(&d->placed, VCS_DIFF_MAX + 128 * 1024); /* placed headers grow a few digits */
    *out = NULL;
    int rc = vcs__diff_normalize(text, &d->text, recounted, err, errlen);
    if (rc < 0)
        goto cleanup;
    if (git_diff_from_buffer(&d->diff, d->text.buf ? d->text.buf : "", d->text.len) < 0) {
        snprintf(err, errlen, "%s", git_msg("parse error"));
        rc = WK_EPARSE;
        goto cleanup;
    }
    *out = d;
    d = NULL; /* the caller's now */
cleanup:
    vcs_diff_free(d);
    return rc;
}

void vcs_diff_free(vcs_diff *d)
{
    if (!d)
        return;
    git_diff_free(d->diff);
    wk_buf_release(&d->text);
    wk_buf_release(&d->placed);
    free(d);
    git_libgit2_shutdown();
}

size_t vcs_diff_nfiles(const vcs_diff *d)
{
    return git_diff_num_deltas(d->diff);
}

const char *vcs_diff_empty_file(const vcs_diff *d)
{
    size_t n = git_diff_num_deltas(d->diff);
    for (size_t i = 0; i < n; i++) {
        const git_diff_delta *dd = git_diff_get_delta(d->diff, i);
        git_patch *p = NULL;
        size_t nh = git_patch_from_diff(&p, d->diff, i) == 0 ? git_patch_num_hunks(p) : 0;
        git_patch_free(p);
        if (dd->status == GIT_DELTA_MODIFIED && nh == 0 && dd->old_file.mode == dd->new_file.mode &&
            !(dd->flags & GIT_DIFF_FLAG_BINARY))
            return dd->new_file.path;
    }
    return NULL;
}

/* ---- the base ------------------------------------------------------------------ */

int vcs_base_open(vcs_base **out, const char *path, const char *rev, char *err, size_t errlen)
{
    vcs_base *b = wk_xcalloc(1, sizeof *b);
    git_odb_backend *mempack = NULL;
    int rc = 0;
    git_libgit2_init(); /* reference counted; dropped by vcs_base_free */
    *out = NULL;
    /* NO_SEARCH: the task names the repository; never walk up to an enclosing one. */
    if (git_repository_open_ext(&b->repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0 ||
        git_revparse_single(&b->base_obj, b->repo, rev) < 0 ||
        git_object_peel((git_object **)&b->tree, b->base_obj, GIT_OBJECT_TREE) < 0) {
        snprintf(err, errlen, "%s", git_msg("unknown error"));
        rc = WK_ENOTFOUND;
        goto cleanup;
    }
    /*
     * Objects the apply creates (the patched blobs) go to memory, so the
     * user's object store is never written. The backend must outrank the
     * loose and packed ones, which take writes otherwise.
     */
    if (git_repository_odb(&b->odb, b->repo) < 0 || git_mempack_new(&mempack) < 0 ||
        git_odb_add_backend(b->odb, mempack, 999) < 0) {
        if (mempack)
            mempack->free(mempack);
        snprintf(err, errlen, "%s", git_msg("?"));
        rc = WK_EIO;
        goto cleanup;
    }
    /* The object database owns the mempack now. */
    *out = b;
    b = NULL;
cleanup:
    vcs_base_free(b);
    return rc;
}

void vcs_base_free(vcs_base *b)
{
    if (!b)
        return;
    git_tree_free(b->tree);
    git_object_free(b->base_obj);
    git_odb_free(b->odb);
    git_repository_free(b->repo);
    free(b);
    git_libgit2_shutdown();
}

/* ---- path confinement -------------------------------------------------------- */

/*
 * Why writing `path` would leave the tree through the base tree: the path or
 * one of its parents is a symlink or a submodule there. NULL when it would
 * not. *at (size atlen) names the offending prefix.
 */
static const char *tree_problem(git_tree *tree, const char *path, char *at, size_t atlen)
{
    size_t len = strlen(path);
    char *prefix = wk_xstrdup(path);
    const char *why = NULL;
    for (size_t i = 1; i <= len && !why; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        prefix[i] = '\0';
        git_tree_entry *e = NULL;
        if (git_tree_entry_bypath(&e, tree, prefix) == 0) {
            git_filemode_t mode = git_tree_entry_filemode(e);
            if (mode == GIT_FILEMODE_LINK)
                why = i < len ? "writes through a symlink" : "modifies a symlink";
            else if (mode == GIT_FILEMODE_COMMIT)
                why = "writes into a submodule";
            if (why)
                snprintf(at, atlen, "%s", prefix);
            git_tree_entry_free(e);
        }
        if (i < len)
            prefix[i] = '/';
    }
    free(prefix);
    return why;
}

/* 1 when `path` names an entry (of any kind) in the tree. */
static int tree_has(git_tree *tree, const char *path)
{
    git_tree_entry *e = NULL;
    int found = git_tree_entry_bypath(&e, tree, path) == 0;
    git_tree_entry_free(e);
    return found;
}

int vcs_confine(const vcs_diff *d, const vcs_base *b, vcs_refusal *r)
{
    git_diff *diff = d->diff;
    git_tree *tree = b->tree;
    size_t n = git_diff_num_deltas(diff);
    memset(r, 0, sizeof *r);
    for (size_t i = 0; i < n; i++) {
        const git_diff_delta *dd = git_diff_get_delta(diff, i);
        const char *paths[2] = {dd->old_file.path, dd->new_file.path};
        /* An added file has no old side worth checking, a deleted one no new side. */
        int check[2] = {dd->status != GIT_DELTA_ADDED, dd->status != GIT_DELTA_DELETED};
        for (int k = 0; k < 2; k++) {
            if (!check[k])
                continue;
            r->why = vcs__path_problem(paths[k]);
            if (!r->why)
                r->why = tree_problem(tree, paths[k], r->at, sizeof r->at);
            if (r->why) {
                r->kind = VCS_UNSAFE_PATH;
                r->path = paths[k];
                return 1;
            }
        }
        if (dd->new_file.mode == GIT_FILEMODE_LINK || dd->new_file.mode == GIT_FILEMODE_COMMIT) {
            r->kind = dd->new_file.mode == GIT_FILEMODE_LINK ? VCS_MAKES_LINK : VCS_MAKES_MODULE;
            r->path = dd->new_file.path;
            return 1;
        }
        if (dd->flags & GIT_DIFF_FLAG_BINARY) {
            r->kind = VCS_BINARY;
            r->path = dd->new_file.path;
            return 1;
        }
    }
    /* Existence, which libgit2 checks loosely. */
    for (size_t i = 0; i < n; i++) {
        const git_diff_delta *dd = git_diff_get_delta(diff, i);
        if (dd->status == GIT_DELTA_ADDED && tree_has(tree, dd->new_file.path)) {
            /* libgit2 would prepend the "new" lines to the existing file. */
            r->kind = VCS_EXISTS;
            r->path = dd->new_file.path;
            return 1;
        }
        if (dd->status != GIT_DELTA_ADDED && !tree_has(tree, dd->old_file.path)) {
            r->kind = VCS_MISSING;
            r->path = dd->old_file.path;
            return 1;
        }
    }
    return 0;
}

/* ---- placing hunks ------------------------------------------------------------ */

/* Comparisons one diff may spend looking for moved hunks; past it, hunks stay where they say. */
#define PLACE_BUDGET 50000000L

typedef struct lines {
    const char **p;
    size_t *n; /* without the newline */
    long count;
} lines;

static void lines_split(lines *ls, const char *s, size_t size)
{
    ls->count = 0;
    for (size_t i = 0; i < size; i++)
        ls->count += s[i] == '\n';
    if (size && s[size - 1] != '\n')
        ls->count++;
    ls->p = wk_xcalloc((size_t)ls->count + 1, sizeof *ls->p);
    ls->n = wk_xcalloc((size_t)ls->count + 1, sizeof *ls->n);
    long k = 0;
    for (size_t i = 0; i < size;) {
        const char *nl = memchr(s + i, '\n', size - i);
        size_t len = nl ? (size_t)(nl - (s + i)) : size - i;
        ls->p[k] = s + i;
        ls->n[k++] = len;
        i += len + 1;
    }
}

static void lines_free(lines *ls)
{
    free(ls->p);
    free(ls->n);
}

/* 1 when the preimage (pre, np lines) is at 0-based line `at` of the file. */
static int pre_at(const lines *file, const lines *pre, long at, long *budget)
{
    if (at < 0 || at + pre->count > file->count)
        return 0;
    for (long i = 0; i < pre->count; i++) {
        if (--*budget < 0)
            return 0;
        if (file->n[at + i] != pre->n[i] || memcmp(file->p[at + i], pre->p[i], pre->n[i]) != 0)
            return 0;
    }
    return 1;
}

/*
 * Where each hunk really goes. git apply finds a hunk whose line numbers are
 * off by searching for its preimage (context and removed lines) in the file,
 * nearest first; libgit2 only looks at the stated line, and locates hunks by
 * their new-side start, which diffs without context (-U0) write differently.
 * So for every hunk of a changed file this finds the preimage in the base
 * file, nearest to the stated line (shifted by the previous hunks' offset)
 * and after the previous hunk, and sets old_start to it and new_start to what
 * libgit2 expects. A preimage that is not found leaves the hunk as written,
 * for libgit2 to reject and name. hdrs[k] is the k-th hunk of the diff in
 * order; `moved` counts the hunks placed away from their stated line.
 */
static void place_hunks(git_diff *diff, git_tree *tree, git_repository *repo, vcs__hunk_hdr *hdrs,
                        size_t n_hdrs, int *moved)
{
    long budget = PLACE_BUDGET;
    size_t k = 0;
    *moved = 0;
    for (size_t d = 0; d < git_diff_num_deltas(diff); d++) {
        const git_diff_delta *delta = git_diff_get_delta(diff, d);
        git_patch *patch = NULL;
        git_tree_entry *e = NULL;
        git_blob *blob = NULL;
        lines file = {0};
        if (git_patch_from_diff(&patch, diff, d) < 0)
            return;
        size_t nh = git_patch_num_hunks(patch);
        int have_file = delta->status != GIT_DELTA_ADDED &&
                        git_tree_entry_bypath(&e, tree, delta->old_file.path) == 0 &&
                        git_blob_lookup(&blob, repo, git_tree_entry_id(e)) == 0;
        if (have_file)
            lines_split(&file, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob));
        long offset = 0, cum = 0, min_at = 0;
        for (size_t h = 0; h < nh && k < n_hdrs; h++, k++) {
            const git_diff_hunk *gh = NULL;
            size_t n_lines = 0;
            if (git_patch_get_hunk(&gh, &n_lines, patch, h) < 0)
                break;
            vcs__hunk_hdr *hd = &hdrs[k];
            if (!have_file || gh->old_lines == 0) {
                if (have_file && hd->old_start > 0)
                    hd->old_start += offset;
                if (have_file && hd->new_n > 0)
                    hd->new_start = hd->old_start + 1 + cum;
                cum += gh->new_lines - gh->old_lines;
                continue;
            }
            lines pre = {0};
            pre.p = wk_xcalloc(n_lines + 1, sizeof *pre.p);
            pre.n = wk_xcalloc(n_lines + 1, sizeof *pre.n);
            for (size_t i = 0; i < n_lines; i++) {
                const git_diff_line *l = NULL;
                if (git_patch_get_line_in_hunk(&l, patch, h, i) < 0)
                    break;
                if (l->origin != GIT_DIFF_LINE_CONTEXT && l->origin != GIT_DIFF_LINE_DELETION)
                    continue;
                size_t len = l->content_len;
                if (len && l->content[len - 1] == '\n')
                    len--;
                pre.p[pre.count] = l->content;
                pre.n[pre.count++] = len;
            }
            long want = gh->old_start - 1 + offset; /* 0-based */
            long found = -1;
            long span = file.count + 1;
            for (long dist = 0; dist <= span && found < 0 && budget > 0; dist++) {
                if (want - dist >= min_at && pre_at(&file, &pre, want - dist, &budget))
                    found = want - dist;
                else if (dist && want + dist >= min_at && pre_at(&file, &pre, want + dist, &budget))
                    found = want + dist;
                if (want - dist < min_at && want + dist > file.count)
                    break;
            }
            if (found >= 0) {
                if (found + 1 != gh->old_start)
                    (*moved)++;
                offset = found + 1 - gh->old_start;
                min_at = found + pre.count;
                hd->old_start = found + 1;
                hd->new_start = found + 1 + cum;
            }
            cum += gh->new_lines - gh->old_lines;
            lines_free(&pre);
        }
        lines_free(&file);
        git_blob_free(blob);
        git_tree_entry_free(e);
        git_patch_free(patch);
    }
}

int vcs_diff_place(vcs_diff *d, const vcs_base *b, int *moved, char *err, size_t errlen)
{
    size_t n_hunks = 0;
    for (size_t i = 0; i < git_diff_num_deltas(d->diff); i++) {
        git_patch *p = NULL;
        if (git_patch_from_diff(&p, d->diff, i) == 0)
            n_hunks += git_patch_num_hunks(p);
        git_patch_free(p);
    }
    vcs__hunk_hdr *hdrs = NULL;
    /* An empty diff has no text buffer at all (fuzz finding). */
    size_t n_hdrs = vcs__hunk_headers(d->text.buf ? d->text.buf : "", &hdrs);
    int rc = 0;
    *moved = 0;
    /* The headers map onto libgit2's hunks one to one, or we leave the diff alone. */
    if (n_hdrs == n_hunks && n_hdrs > 0) {
        place_hunks(d->diff, b->tree, b->repo, hdrs, n_hdrs, moved);
        if (vcs__hunk_rewrite(d->text.buf, hdrs, n_hdrs, &d->placed) < 0) {
            rc = WK_ETOOBIG;
        } else {
            git_diff_free(d->diff);
            d->diff = NULL;
            if (git_diff_from_buffer(&d->diff, d->placed.buf, d->placed.len) < 0) {
                snprintf(err, errlen, "%s", git_msg("parse error"));
                rc = WK_EPARSE;
            }
        }
    }
    free(hdrs);
    return rc;
}

/* ---- applying ---------------------------------------------------------------- */

/* Which file and hunk libgit2 is applying, so a failure can be named. */
typedef struct progress {
    size_t delta;       /* index of the delta being applied */
    int started;        /* a delta has started */
    int hunk;           /* index of the hunk being applied in that delta; -1 none yet */
    git_diff_hunk last; /* its header fields (header text included) */
} progress;

static int on_delta(const git_diff_delta *d, void *payload)
{
    (void)d;
    progress *p = payload;
    if (p->started)
        p->delta++;
    p->started = 1;
    p->hunk = -1;
    return 0;
}

static int on_hunk(const git_diff_hunk *h, void *payload)
{
    progress *p = payload;
    p->hunk++;
    p->last = *h;
    return 0;
}

int vcs_apply(vcs_tree **out, const vcs_diff *d, const vcs_base *b, vcs_apply_failure *f)
{
    progress prog = {.hunk = -1};
    git_apply_options opts;
    git_apply_options_init(&opts, GIT_APPLY_OPTIONS_VERSION);
    opts.delta_cb = on_delta;
    opts.hunk_cb = on_hunk;
    opts.payload = &prog;
    git_index *index = NULL;
    *out = NULL;
    if (git_apply_to_tree(&index, b->repo, b->tree, d->diff, &opts) == 0) {
        vcs_tree *t = wk_xcalloc(1, sizeof *t);
        git_libgit2_init(); /* reference counted; dropped by vcs_tree_free */
        t->index = index;
        t->repo = b->repo;
        *out = t;
        return 0;
    }
    git_index_free(index);
    memset(f, 0, sizeof *f);
    snprintf(f->why, sizeof f->why, "%s", git_msg("it does not apply"));
    const git_diff_delta *dd = git_diff_get_delta(d->diff, prog.delta);
    /* libgit2 may leave a new file's old path NULL (fuzz finding): name it by its new one. */
    f->file = dd && dd->old_file.path   ? dd->old_file.path
              : dd && dd->new_file.path ? dd->new_file.path
                                        : "?";
    f->file_index = prog.delta;
    f->hunk = prog.hunk;
    if (prog.hunk >= 0) {
        size_t hlen = prog.last.header_len;
        if (hlen >= sizeof f->header)
            hlen = sizeof f->header - 1;
        while (hlen > 0 &&
               (prog.last.header[hlen - 1] == '\n' || prog.last.header[hlen - 1] == '\r'))
            hlen--;
        memcpy(f->header, prog.last.header, hlen);
        f->header[hlen] = '\0';
        f->old_start = prog.last.old_start;
    }
    return WK_EINVAL;
}

size_t vcs_tree_entries(const vcs_tree *t)
{
    return git_index_entrycount(t->index);
}

int vcs_tree_checkout(const vcs_tree *t, const char *dir, char *err, size_t errlen)
{
    git_checkout_options co;
    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
    /*
     * FORCE writes every file into the empty directory; DONT_UPDATE_INDEX keeps
     * the repository's index untouched; no filters, so files are the blobs as
     * committed (no crlf or ident conversion from the user's config).
     */
    co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
    co.disable_filters = 1;
    co.target_directory = dir;
    if (git_checkout_index(t->repo, t->index, &co) < 0) {
        snprintf(err, errlen, "%s", git_msg("?"));
        return WK_EIO;
    }
    return 0;
}

git_index *vcs__tree_index(const vcs_tree *t)
{
    return t->index;
}

git_repository *vcs__tree_repo(const vcs_tree *t)
{
    return t->repo;
}

void vcs_tree_free(vcs_tree *t)
{
    if (!t)
        return;
    git_index_free(t->index);
    free(t);
    git_libgit2_shutdown();
}

/* ---- lines for evidence ---------------------------------------------------------- */

int vcs_hunk_lines(const vcs_diff *d, size_t file, int hunk, int max, vcs_line_cb cb, void *arg)
{
    git_patch *patch = NULL;
    if (git_patch_from_diff(&patch, d->diff, file) < 0)
        return WK_ENOTFOUND;
    int lines = git_patch_num_lines_in_hunk(patch, (size_t)hunk);
    int shown = 0;
    for (int i = 0; i < lines && shown < max; i++) {
        const git_diff_line *l = NULL;
        if (git_patch_get_line_in_hunk(&l, patch, (size_t)hunk, (size_t)i) < 0)
            break;
        if (l->origin != GIT_DIFF_LINE_CONTEXT && l->origin != GIT_DIFF_LINE_DELETION)
            continue;
        cb(arg, l->origin == GIT_DIFF_LINE_CONTEXT ? ' ' : '-', l->content, l->content_len);
        shown++;
    }
    git_patch_free(patch);
    return 0;
}

int vcs_base_lines(const vcs_base *b, const char *path, int from, int max, vcs_line_cb cb,
                   void *arg)
{
    git_tree_entry *e = NULL;
    git_blob *blob = NULL;
    int rc = WK_ENOTFOUND;
    if (git_tree_entry_bypath(&e, b->tree, path) < 0 ||
        git_blob_lookup(&blob, b->repo, git_tree_entry_id(e)) < 0)
        goto cleanup;
    const char *s = git_blob_rawcontent(blob);
    size_t size = (size_t)git_blob_rawsize(blob);
    size_t off = 0;
    for (int line = 1; line < from && off < size; line++) {
        const char *nl = memchr(s + off, '\n', size - off);
        off = nl ? (size_t)(nl - s) + 1 : size;
    }
    rc = 0;
    for (int i = 0; i < max && off < size; i++) {
        const char *nl = memchr(s + off, '\n', size - off);
        size_t n = nl ? (size_t)(nl - (s + off)) : size - off;
        cb(arg, ' ', s + off, n);
        off += n + (nl ? 1 : 0);
        rc++;
    }
cleanup:
    git_blob_free(blob);
    git_tree_entry_free(e);
    return rc;
}
