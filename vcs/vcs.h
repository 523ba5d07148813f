/*
 * vcs/: libgit2 in one place. A diff is read the way `git apply` reads it,
 * its paths are confined to the repository, and it is applied to a base tree
 * in memory, so the user's repository is only ever read; the patched tree can
 * then be written out into a directory of the caller's.
 *
 * Nothing here words a verdict: the functions say what they found (a code,
 * a path, libgit2's message) and the caller (validators/patch.c) decides what
 * to tell a model. Everything that can fail returns 0 or a negative wk_err,
 * except vcs_confine, whose 1 is a refusal it describes.
 *
 * The steps, in the order a caller takes them:
 *   vcs_diff_read      text -> a parsed diff (headers added, hunks recounted)
 *   vcs_base_open      repository + revision -> the base tree
 *   vcs_confine        every path of the diff checked against rules and tree
 *   vcs_diff_place     hunks moved to where their context really is
 *   vcs_apply          the diff applied to the base tree, in memory
 *   vcs_tree_checkout  the patched tree written into a directory
 *
 * For the CI bot, commit.c writes an accepted diff as a commit on a branch
 * of its own (vcs_commit, at the end of this header).
 */
#ifndef VCS_H
#define VCS_H

#include <stddef.h>

#include "lib/util.h"

/* Bytes of diff text vcs_diff_read accepts; the caller refuses longer ones first. */
#define VCS_DIFF_MAX (1u << 20)

/* ---- a diff (diff.c, apply.c) --------------------------------------------------- */

/* A diff parsed by libgit2, with the text it was parsed from. */
typedef struct vcs_diff vcs_diff;

/*
 * Reads `text` (at most VCS_DIFF_MAX bytes) as git apply does: plain unified
 * diffs get git headers, empty context lines count as context, hunks whose
 * counts do not fit their bodies are recounted (*recounted set to 1), and
 * every path on a header line is checked before libgit2 sees it (libgit2
 * turns "a//etc/passwd" into "etc/passwd"). Returns 0 with *out (free with
 * vcs_diff_free); WK_EINVAL when a header names an unsafe path, with
 * "<why>: \"<path>\"" in err; WK_ETOOBIG when the text is too large once
 * normalized; WK_EPARSE when libgit2 cannot parse it, with its message in
 * err. err has errlen bytes.
 */
int vcs_diff_read(vcs_diff **out, const char *text, int *recounted, char *err, size_t errlen);
void vcs_diff_free(vcs_diff *d);

/* Files the diff touches. */
size_t vcs_diff_nfiles(const vcs_diff *d);

/*
 * The first file the diff names as changed without any hunk, mode change or
 * binary patch ("--- a/x" and "+++ b/x" and nothing after): borrowed from d;
 * NULL when there is none.
 */
const char *vcs_diff_empty_file(const vcs_diff *d);

/*
 * 1 when `text` has a binary patch ("GIT binary patch" or "Binary files"
 * lines), with *name the file of the first one (escaped, caller frees) or
 * NULL when no "diff --git" line names it; 0 otherwise (*name NULL).
 */
int vcs_diff_binary(const char *text, char **name);

/* ---- the repository at its base (apply.c) ------------------------------------------ */

/* A repository opened at a base revision, with an in-memory object store for writes. */
typedef struct vcs_base vcs_base;

/*
 * Opens the repository at `path` (never an enclosing one) and the tree of
 * `rev`. Objects that applying creates go to memory, never to the
 * repository's .git. Returns 0 with *out (free with vcs_base_free);
 * WK_ENOTFOUND when the repository or revision cannot be read, WK_EIO when
 * the in-memory store cannot be set up; libgit2's message in err either way.
 */
int vcs_base_open(vcs_base **out, const char *path, const char *rev, char *err, size_t errlen);
void vcs_base_free(vcs_base *b);

/* What vcs_confine refuses. */
typedef enum vcs_refusal_kind {
    VCS_OK = 0,
    VCS_UNSAFE_PATH,  /* `path` breaks a path rule or reaches through `at` */
    VCS_MAKES_LINK,   /* the diff makes `path` a symlink */
    VCS_MAKES_MODULE, /* the diff makes `path` a submodule */
    VCS_BINARY,       /* `path` has a binary patch */
    VCS_EXISTS,       /* `path` is created but the base tree has it */
    VCS_MISSING,      /* `path` is changed but the base tree lacks it */
} vcs_refusal_kind;

typedef struct vcs_refusal {
    vcs_refusal_kind kind;
    /*
     * VCS_UNSAFE_PATH: why, a static phrase: "an absolute path", "a path
     * inside .git", ... when `at` is empty; "writes through a symlink",
     * "modifies a symlink", "writes into a submodule" when it is not.
     */
    const char *why;
    const char *path; /* borrowed from the diff; may be NULL */
    char at[512];     /* the symlink or submodule of the base tree on the way; "" if none */
} vcs_refusal;

/*
 * Checks every path of `d` before anything is applied: no absolute path, "."
 * or ".." component, .git, control character, path through or onto a
 * symlink or submodule of the base tree, new symlink or submodule, binary
 * patch; then that added files are new and changed ones exist. Returns 0
 * when all is well, 1 with *r filled at the first refusal.
 */
int vcs_confine(const vcs_diff *d, const vcs_base *b, vcs_refusal *r);

/*
 * Moves each hunk to where its context is in the base file, nearest to its
 * stated line first, as git apply does (libgit2 looks only at the stated
 * line), and parses the result again; *moved counts the hunks placed away
 * from their stated lines. Returns 0; WK_ETOOBIG when the placed text passes
 * its cap; WK_EPARSE when it no longer parses (libgit2's message in err).
 */
int vcs_diff_place(vcs_diff *d, const vcs_base *b, int *moved, char *err, size_t errlen);

/* ---- applying (apply.c) ----------------------------------------------------------- */

/* A patched tree, in memory. */
typedef struct vcs_tree vcs_tree;

/* Where an apply stopped. */
typedef struct vcs_apply_failure {
    const char *file; /* the file's old path, borrowed from the diff; "?" when unknown */
    size_t file_index;
    int hunk;         /* the 0-based hunk being applied; -1 when none had started */
    char header[128]; /* that hunk's header, without its newline */
    int old_start;    /* its first line in the base file */
    /*
     * libgit2's message, copied at once: the calls that gather evidence
     * afterwards clear libgit2's last error.
     */
    char why[512];
} vcs_apply_failure;

/*
 * Applies d to the base tree in memory. Returns 0 with *out (free with
 * vcs_tree_free; b must outlive it), or WK_EINVAL with *f saying which file
 * and hunk did not apply.
 */
int vcs_apply(vcs_tree **out, const vcs_diff *d, const vcs_base *b, vcs_apply_failure *f);
/* Entries (files) of the patched tree. */
size_t vcs_tree_entries(const vcs_tree *t);
/*
 * Writes the patched tree into `dir` (an existing, empty, absolute path): the
 * blobs as committed, no filters, the repository's index untouched. Returns
 * 0, or WK_EIO with libgit2's message in err.
 */
int vcs_tree_checkout(const vcs_tree *t, const char *dir, char *err, size_t errlen);
void vcs_tree_free(vcs_tree *t);

/*
 * Called with one line of a file or hunk (n bytes, which may end with its
 * newline) and its origin: ' ' context, '-' removed.
 */
typedef void (*vcs_line_cb)(void *arg, char origin, const char *s, size_t n);

/*
 * The lines hunk `hunk` of file `file` expects in the base file (context and
 * removed), at most max, in order. Returns 0, or WK_ENOTFOUND.
 */
int vcs_hunk_lines(const vcs_diff *d, size_t file, int hunk, int max, vcs_line_cb cb, void *arg);
/*
 * The base file `path` from its line `from` (1-based) on, at most max lines.
 * Returns how many were given (0 when the file has no line `from`), or
 * WK_ENOTFOUND when the file cannot be read.
 */
int vcs_base_lines(const vcs_base *b, const char *path, int from, int max, vcs_line_cb cb,
                   void *arg);

/* ---- reading the base (read.c) ---------------------------------------------------- */

/*
 * Everything the CI bot reads of a repository comes from the objects at the
 * base revision, never from the working tree: a checkout may be dirty, and
 * what a patch applies to is the base.
 */

/*
 * Checks, before anything is paid for, that `path` is a git repository (never
 * an enclosing one), that `rev` resolves there to a commit or tree, and that
 * the tree at rev holds at most max_bytes of blobs (0: no cap). Returns 0;
 * WK_ENOTFOUND when path is not a repository, WK_EINVAL when rev does not
 * resolve, WK_ETOOBIG when the tree is larger; a clause in err either way.
 */
int vcs_repo_check(const char *path, const char *rev, unsigned long long max_bytes, char *err,
                   size_t errlen);

/*
 * The blob at `path` in the base tree, up to cap bytes: 0 with *out (NUL-
 * terminated, caller frees), *len bytes of it, and *full the blob's whole
 * size (> *len when it was cut at cap); WK_ENOTFOUND when the tree has no
 * regular file there.
 */
int vcs_base_read(const vcs_base *b, const char *path, size_t cap, char **out, size_t *len,
                  size_t *full);

/*
 * Calls cb with every blob path of the base tree, in tree order, until cb
 * returns non-zero or `max` paths were given. Returns how many were given.
 */
long vcs_base_walk(const vcs_base *b, long max, int (*cb)(void *arg, const char *path), void *arg);

/*
 * Writes the base tree into `dir` (an existing empty directory): regular and
 * executable files with their modes, symlinks as links (their targets are
 * not followed), submodules as empty directories. Export, not checkout: the
 * repository's index, HEAD and working tree are untouched, and no filter
 * runs. Stops with WK_ETOOBIG past max_bytes of blobs (0: no cap); WK_EIO
 * when a write fails; err says which file.
 */
int vcs_base_export(const vcs_base *b, const char *dir, unsigned long long max_bytes, char *err,
                    size_t errlen);

/*
 * 1 when the patched tree is the base tree (a diff that changes nothing once
 * applied), 0 when it differs or cannot be compared.
 */
int vcs_tree_unchanged(const vcs_tree *t, const vcs_base *b);

/*
 * The paths the diff leaves in the tree changed or added (not deleted), one
 * per line, each line ending in a newline. Caller frees.
 */
char *vcs_diff_touched(const vcs_diff *d);

/* ---- committing (commit.c) ------------------------------------------------------- */

/* Bytes of a branch name vcs_commit makes, with its NUL. */
#define VCS_BRANCH_MAX 256

/*
 * A branch name for a task: `prefix` (e.g. "cascade/") and the task id with
 * anything a ref may not hold replaced ("py/fix me.." -> "py/fix-me._"), so
 * every id gives a valid name; an id that cannot be made one gives
 * "<prefix>task-<hash>". Written into out (size n).
 */
void vcs_branch_name(const char *prefix, const char *id, char *out, size_t n);

/* What to commit; everything borrowed. */
typedef struct vcs_commit_req {
    const char *repo_path; /* the repository itself (never an enclosing one) */
    const char *base;      /* the revision the diff applies to; the commit's parent */
    const char *diff;      /* the diff text, as vcs_diff_read takes it */
    const char *branch;    /* wanted name under refs/heads/ (see vcs_branch_name) */
    /* 1: a branch of that name is moved to the new commit; 0: "-2", "-3", ... are tried */
    int force;
    /*
     * The task: a branch of the series whose commit has this Cascade-Task
     * trailer, the same parent and the same tree is our own earlier commit
     * (a run that crashed before writing its result) and is reused as it is.
     */
    const char *task_id;
    const char *name, *email; /* author and committer; NULL: "cascade", "cascade@localhost" */
    const char *message;      /* the whole commit message, trailers included */
} vcs_commit_req;

typedef struct vcs_commit_info {
    char branch[VCS_BRANCH_MAX]; /* the branch made or reused, without "refs/heads/" */
    char commit[41];             /* its commit, hex */
    char base[41];               /* the base commit, hex */
    int reused;                  /* 1: an earlier commit for the task was kept */
    size_t files_changed, insertions, deletions;
} vcs_commit_info;

/*
 * Applies `diff` to the base tree (read, confined and placed as the patch
 * validator does) and writes the result as a commit whose only parent is the
 * base, on a new branch. Only objects and that one ref are written to the
 * repository: HEAD, the index and the working tree are never touched. A
 * branch that exists is never moved unless req->force; the first free name
 * of "B", "B-2", "B-3", ... (up to B-100) is taken, and a branch of that
 * series holding our own earlier commit (see task_id) is reused instead.
 * Returns 0 with *out filled; WK_ENOTFOUND when the repository or base cannot
 * be read; WK_EINVAL when the diff does not parse, is refused or does not
 * apply; WK_EBUSY when every name of the series is taken; WK_EIO when a
 * write fails; a message in err (size errlen) each time.
 */
int vcs_commit(const vcs_commit_req *req, vcs_commit_info *out, char *err, size_t errlen);

/*
 * The commit `commit` (hex) of the repository as `git format-patch` writes
 * it: the "From <sha>" line, From, Date, "Subject: [PATCH] <first line>",
 * the rest of the message, the diffstat and the diff. Appended to out (the
 * caller's, with its cap). Returns 0; WK_ENOTFOUND when the commit cannot be
 * read; WK_ETOOBIG when out is full; a message in err.
 */
int vcs_format_patch(const char *repo_path, const char *commit, wk_buf *out, char *err,
                     size_t errlen);

/*
 * Resolves `rev` in the repository at `path` (never an enclosing one) to its
 * commit, in hex (sha, 41 bytes), and gives the repository's git directory
 * (gitdir, size n, with a trailing '/'). Returns 0, or WK_ENOTFOUND with
 * libgit2's message in err.
 */
int vcs_resolve(const char *path, const char *rev, char sha[41], char *gitdir, size_t n, char *err,
                size_t errlen);

/*
 * The value of trailer `key` in the message of the commit at `rev` (a
 * branch, a sha), into out (size n). Returns 0; WK_ENOTFOUND when the
 * commit or the trailer is missing.
 */
int vcs_commit_trailer(const char *repo_path, const char *rev, const char *key, char *out,
                       size_t n);

#endif
