/*
 * What the files of vcs/ share and nobody else: the path rules, the diff
 * text rewrites of diff.c that apply.c drives, and hunk headers.
 */
#ifndef VCS_INT_H
#define VCS_INT_H

#include <git2.h>

#include "vcs.h"

/* A parsed diff (apply.c). */
struct vcs_diff {
    git_diff *diff; /* NULL after a failed vcs_diff_place */
    wk_buf text;    /* the diff as libgit2 reads it (vcs__diff_normalize) */
    wk_buf placed;  /* the same with its hunks placed (vcs_diff_place) */
};

/* A patched tree in memory (apply.c). */
struct vcs_tree {
    git_index *index;
    git_repository *repo; /* the base's, borrowed */
};

/* The repository at its base (apply.c opens it; read.c reads from it). */
struct vcs_base {
    git_repository *repo;
    git_odb *odb; /* with the in-memory backend first */
    git_object *base_obj;
    git_tree *tree;
};

/* A hunk header "@@ -a[,b] +c[,d] @@rest". */
typedef struct vcs__hunk_hdr {
    long old_start, old_n, new_start, new_n;
    const char *rest; /* after the closing "@@" (the section heading); not NUL-terminated */
    size_t rest_n;
} vcs__hunk_hdr;

/* Why a diff may not write `path` (a static phrase), or NULL when it may. */
const char *vcs__path_problem(const char *path);

/*
 * Rewrites a diff into the form libgit2 parses, changing nothing it means
 * (see diff.c). *recounted is set when a hunk was recounted. Returns 0;
 * WK_ETOOBIG when `out` hits its cap; WK_EINVAL when a header names an
 * unsafe path, with the reason and the path in bad (size badlen).
 */
int vcs__diff_normalize(const char *text, wk_buf *out, int *recounted, char *bad, size_t badlen);

/*
 * The hunk headers of a normalized text, in order; *out is owned by the
 * caller (free). Returns how many.
 */
size_t vcs__hunk_headers(const char *text, vcs__hunk_hdr **out);

/*
 * Copies a normalized text to out with its k-th hunk header replaced by
 * hdrs[k], in order. Returns 0, or WK_ETOOBIG when out hits its cap.
 */
int vcs__hunk_rewrite(const char *text, const vcs__hunk_hdr *hdrs, size_t n_hdrs, wk_buf *out);

/*
 * The patched tree's index and the repository whose object store (with the
 * in-memory backend first) holds its new blobs (apply.c), for commit.c,
 * which copies those blobs to the repository's own store. Borrowed from t.
 */
struct git_index *vcs__tree_index(const vcs_tree *t);
struct git_repository *vcs__tree_repo(const vcs_tree *t);

#endif
