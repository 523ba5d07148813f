/*
 * The patch validator: the answer is a unified diff that must apply cleanly,
 * with libgit2, to the task's repository ("repo": {"path", "base"}) at the
 * base commit. The user's repository is only read: the diff is applied to the
 * base tree in memory (new blobs go to an in-memory object store, never to
 * the repository's .git), and the resulting tree is checked out into a fresh
 * temporary directory that later validators (tests) can run in.
 *
 * Every path the diff touches is confined before anything is applied or
 * written: absolute paths, "." and ".." components, anything under .git/,
 * paths through or onto a symlink or a submodule of the base tree, new
 * symlinks, and control characters are refused (unsafe_path), and so are
 * binary patches (binary_patch). A hunk that does not apply is named in the
 * evidence with the lines it expected and the lines the file has there.
 *
 * The diff is read the way `git apply` reads it, which libgit2 alone does
 * not: plain unified diffs ("--- a/x" / "+++ b/x" without "diff --git", as
 * diff -u and most models write them) get git headers; empty context lines
 * that lost their space count as context; a hunk whose line counts do not fit
 * its body is recounted; a hunk whose line numbers are off is placed where its
 * context is in the base file, nearest first. The verdict's note says when a
 * diff needed recounting or placing. Context itself must match exactly.
 *
 * Verdict reasons: bad_diff, unsafe_path, binary_patch, does_not_apply,
 * too_big (diff or tree over the caps), no_repo (task without "repo"),
 * repo_error (the repository or base cannot be read, or the checkout failed).
 */
#include "val_int.h"

#include <git2.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Bytes of diff we parse: far above a real patch, far below trouble. */
#define PATCH_DIFF_MAX (1u << 20)
/* Files one diff may touch. */
#define PATCH_FILES_MAX 500
/* Entries of the patched tree we check out into the temporary directory. */
#define PATCH_TREE_ENTRIES_MAX 100000
/* Lines of a failing hunk (and of the file there) quoted in the evidence. */
#define SHOW_LINES 8
/* Bytes of one quoted line. */
#define SHOW_LINE_MAX 160

/* ---- diff text ------------------------------------------------------------- */

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Length of the line at s, without its newline. */
static size_t line_len(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl ? (size_t)(nl - s) : strlen(s);
}

/* 1 when a line of the text starts with `prefix`. */
static int has_line(const char *text, const char *prefix)
{
    for (const char *l = text; l && *l;) {
        if (starts(l, prefix))
            return 1;
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    return 0;
}

/*
 * The path of a "--- " or "+++ " line (after the marker): up to a tab (diff -u
 * puts the timestamp after one), trailing blanks and CR dropped. Caller frees.
 */
static char *marker_path(const char *s, size_t n)
{
    size_t end = 0;
    while (end < n && s[end] != '\t')
        end++;
    while (end > 0 && (s[end - 1] == ' ' || s[end - 1] == '\r'))
        end--;
    return wk_xstrndup(s, end);
}

/* ".git" as Git itself compares it: case-insensitive, trailing dots and spaces ignored. */
static int is_dotgit(const char *c, size_t n)
{
    while (n > 0 && (c[n - 1] == '.' || c[n - 1] == ' '))
        n--;
    /* git~1 is the 8.3 short name of .git on file systems that make one. */
    return (n == 4 && strncasecmp(c, ".git", 4) == 0) ||
           (n == 5 && strncasecmp(c, "git~1", 5) == 0);
}

/* Why the diff may not write `path`, or NULL when it may. */
static const char *path_problem(const char *path)
{
    if (!path || !*path)
        return "an empty path";
    if (path[0] == '/')
        return "an absolute path";
    if (strlen(path) > 4096)
        return "a path longer than 4096 bytes";
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return "a control character in a path";
    for (const char *p = path;;) {
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if (n == 0)
            return "an empty path component";
        if (n == 1 && p[0] == '.')
            return "a \".\" path component";
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return "a \"..\" path component";
        if (is_dotgit(p, n))
            return "a path inside .git";
        if (*e == '\0')
            return NULL;
        p = e + 1;
    }
}

/* A hunk header "@@ -a[,b] +c[,d] @@rest". */
typedef struct hunk_hdr {
    long old_start, old_n, new_start, new_n;
    const char *rest; /* after the closing "@@" (the section heading); not NUL-terminated */
    size_t rest_n;
} hunk_hdr;

/* Parses a hunk header line (n bytes); 0 when the line is not one. Counts default to 1. */
static int hunk_parse(const char *l, size_t n, hunk_hdr *h)
{
    char *e;
    if (!starts(l, "@@ -"))
        return 0;
    h->old_start = strtol(l + 4, &e, 10);
    h->old_n = 1;
    if (*e == ',')
        h->old_n = strtol(e + 1, &e, 10);
    if (strncmp(e, " +", 2) != 0)
        return 0;
    h->new_start = strtol(e + 2, &e, 10);
    h->new_n = 1;
    if (*e == ',')
        h->new_n = strtol(e + 1, &e, 10);
    if (!starts(e, " @@") || h->old_n < 0 || h->new_n < 0 || h->old_start < 0 || h->new_start < 0 ||
        (size_t)(e + 3 - l) > n)
        return 0;
    h->rest = e + 3;
    h->rest_n = n - (size_t)(h->rest - l);
    return 1;
}

static int hunk_write(wk_buf *out, const hunk_hdr *h)
{
    return wk_buf_appendf(out, "@@ -%ld,%ld +%ld,%ld @@%.*s\n", h->old_start, h->old_n,
                          h->new_start, h->new_n, (int)h->rest_n, h->rest);
}

static const char *next_line(const char *l)
{
    size_t n = line_len(l);
    return l[n] ? l + n + 1 : l + n;
}

/* A "--- x" line followed by "+++ y": the start of a file, never a removed "-- x" line. */
static int file_header_at(const char *l)
{
    return starts(l, "--- ") && starts(next_line(l), "+++ ");
}

/*
 * Reads a hunk body from l by its declared counts. Returns the line after it
 * (a trailing "\ No newline" included), or NULL when a line on the way is not
 * a hunk line or the text ends first.
 */
static const char *body_by_counts(const char *l, long old_n, long new_n)
{
    while (old_n > 0 || new_n > 0) {
        if (!*l || starts(l, "@@ ") || starts(l, "diff --git ") || file_header_at(l))
            return NULL;
        size_t n = line_len(l);
        char c = n ? l[0] : ' '; /* an empty line is an empty context line */
        if (c == ' ')
            old_n--, new_n--;
        else if (c == '-')
            old_n--;
        else if (c == '+')
            new_n--;
        else if (c != '\\')
            return NULL;
        if (old_n < 0 || new_n < 0)
            return NULL;
        l = next_line(l);
    }
    while (*l == '\\')
        l = next_line(l);
    return l;
}

/*
 * Reads a hunk body from l by its look: lines that start with ' ', '-', '+'
 * or '\\' (or are empty), up to the next hunk or file header. Trailing empty
 * lines are left out (they separate the diff from what follows). Returns the
 * end of the body and its real counts.
 */
static const char *body_by_look(const char *l, long *old_n, long *new_n)
{
    const char *end = l;
    long o = 0, nn = 0, blank_o = 0;
    *old_n = *new_n = 0;
    while (*l && !starts(l, "@@ ") && !starts(l, "diff --git ") && !file_header_at(l)) {
        size_t n = line_len(l);
        if (n == 0) {
            blank_o++; /* counted only if more hunk lines follow */
            l = next_line(l);
            continue;
        }
        char c = l[0];
        if (c != ' ' && c != '-' && c != '+' && c != '\\')
            break;
        o += blank_o;
        nn += blank_o;
        blank_o = 0;
        if (c == ' ')
            o++, nn++;
        else if (c == '-')
            o++;
        else if (c == '+')
            nn++;
        l = next_line(l);
        end = l;
    }
    *old_n = o;
    *new_n = nn;
    return end;
}

/* A line that would continue a hunk body: the sign of an under-counted hunk. */
static int hunk_line_at(const char *l)
{
    return (l[0] == ' ' || l[0] == '-' || l[0] == '+') && !file_header_at(l);
}

/* Appends the git header for a plain "--- x" / "+++ y" pair. */
static int git_header(wk_buf *out, const char *l, size_t n, const char *next, size_t n2)
{
    char *old = marker_path(l + 4, n - 4);
    char *new = marker_path(next + 4, n2 - 4);
    int old_null = strcmp(old, "/dev/null") == 0;
    int new_null = strcmp(new, "/dev/null") == 0;
    int prefixed = (old_null || starts(old, "a/")) && (new_null || starts(new, "b/"));
    const char *op = old_null ? new : old;
    const char *np = new_null ? old : new;
    if (prefixed) {
        /* Either side's "a/" or "b/" (taken from the other side for /dev/null). */
        op += 2;
        np += 2;
    }
    int rc = wk_buf_appendf(out, "diff --git a/%s b/%s\n", op, np);
    if (rc == 0 && old_null)
        rc = wk_buf_appendf(out, "new file mode 100644\n");
    if (rc == 0 && new_null)
        rc = wk_buf_appendf(out, "deleted file mode 100644\n");
    if (rc == 0)
        rc = old_null ? wk_buf_appendf(out, "--- /dev/null\n")
                      : wk_buf_appendf(out, "--- a/%s\n", op);
    if (rc == 0)
        rc = new_null ? wk_buf_appendf(out, "+++ /dev/null\n")
                      : wk_buf_appendf(out, "+++ b/%s\n", np);
    free(old);
    free(new);
    return rc;
}

/*
 * Checks a path as written on a header line, before libgit2 reads it: libgit2
 * turns "a//etc/passwd" into "etc/passwd", so an absolute path is only
 * visible here. `prefix` ("a/" or "b/") is dropped when present. Returns why
 * the path is unsafe (and copies it to bad), or NULL.
 */
static const char *header_path_problem(const char *s, size_t n, const char *prefix, char *bad,
                                       size_t badlen)
{
    char *p = marker_path(s, n);
    /* Quoted names ("a/x\ty") are checked with the quotes dropped: stricter, never looser. */
    size_t w = 0;
    for (size_t r = 0; p[r]; r++)
        if (p[r] != '"')
            p[w++] = p[r];
    p[w] = '\0';
    const char *why = NULL;
    if (strcmp(p, "/dev/null") != 0) {
        const char *path = prefix && starts(p, prefix) ? p + strlen(prefix) : p;
        why = path_problem(path);
        if (why)
            snprintf(bad, badlen, "%s", path);
    }
    free(p);
    return why;
}

/* The header lines that carry paths; NULL prefix: the path is written bare. */
static const struct {
    const char *marker;
    const char *prefix;
} path_lines[] = {
    {"--- ", "a/"},       {"+++ ", "b/"},       {"rename from ", NULL},
    {"rename to ", NULL}, {"copy from ", NULL}, {"copy to ", NULL},
};

/* Checks the paths of a header line (see header_path_problem). */
static const char *header_line_problem(const char *l, size_t n, char *bad, size_t badlen)
{
    const char *why = NULL;
    if (starts(l, "diff --git ")) {
        /* "diff --git a/X b/Y": split at the first " b/" (spaces in X make it ambiguous). */
        const char *rest = l + 11;
        size_t rn = n - 11;
        const char *mid = NULL;
        for (size_t i = 0; i + 3 <= rn && !mid; i++)
            if (memcmp(rest + i, " b/", 3) == 0 || memcmp(rest + i, " \"b/", 4) == 0)
                mid = rest + i;
        if (!mid)
            return header_path_problem(rest, rn, "a/", bad, badlen);
        why = header_path_problem(rest, (size_t)(mid - rest), "a/", bad, badlen);
        if (!why)
            why = header_path_problem(mid + 1, rn - (size_t)(mid + 1 - rest), "b/", bad, badlen);
        return why;
    }
    for (size_t i = 0; i < sizeof path_lines / sizeof path_lines[0]; i++) {
        size_t m = strlen(path_lines[i].marker);
        if (starts(l, path_lines[i].marker))
            return header_path_problem(l + m, n - m, path_lines[i].prefix, bad, badlen);
    }
    return NULL;
}

/*
 * Rewrites a diff into the form libgit2 parses, changing nothing it means:
 *  - each "--- x" / "+++ y" pair of a plain unified diff (diff -u, most
 *    models) gets the git header libgit2 requires ("diff --git a/x b/y", and
 *    "new file mode" or "deleted file mode" for /dev/null). Paths written
 *    with a/ and b/ keep them; paths without get them, as `patch -p0` reads;
 *  - inside a hunk, an empty line is an empty context line (" "), as git
 *    apply reads it: editors and models drop the lone space;
 *  - a hunk whose declared line counts do not fit its body (models miscount;
 *    answer extraction trims trailing blank context) is recounted from the
 *    body, as `git apply --recount` does. Without this, libgit2 would stop
 *    reading an under-counted hunk early and silently drop its last lines;
 *  - the text ends with a newline.
 * A hunk that fits its counts is read by them, so a removed line that reads
 * "-- x" is never taken for a header. *recounted is set when a hunk was
 * recounted. Returns 0; WK_ETOOBIG when `out` hits its cap; WK_EINVAL when a
 * header names an unsafe path, with the reason and the path in bad.
 */
static int normalize_diff(const char *text, wk_buf *out, int *recounted, char *bad, size_t badlen)
{
    int git_style = has_line(text, "diff --git ");
    int rc = 0;
    *recounted = 0;
    for (const char *l = text; *l && rc == 0;) {
        size_t n = line_len(l);
        const char *next = next_line(l);
        char path[256];
        const char *why = header_line_problem(l, n, path, sizeof path);
        if (why) {
            snprintf(bad, badlen, "%s: \"%s\"", why, path);
            return WK_EINVAL;
        }
        hunk_hdr h;
        if (hunk_parse(l, n, &h)) {
            const char *end = body_by_counts(next, h.old_n, h.new_n);
            if (!end || hunk_line_at(end)) {
                long o, nn;
                end = body_by_look(next, &o, &nn);
                if (o != h.old_n || nn != h.new_n)
                    *recounted = 1;
                h.old_n = o;
                h.new_n = nn;
            }
            rc = hunk_write(out, &h);
            for (const char *b = next; b < end && rc == 0; b = next_line(b)) {
                size_t bn = line_len(b);
                rc = bn ? wk_buf_append(out, b, bn) : wk_buf_append(out, " ", 1);
                if (rc == 0)
                    rc = wk_buf_append(out, "\n", 1);
            }
            l = end;
            continue;
        }
        if (!git_style && file_header_at(l)) {
            size_t n2 = line_len(next);
            why = header_line_problem(next, n2, path, sizeof path);
            if (why) {
                snprintf(bad, badlen, "%s: \"%s\"", why, path);
                return WK_EINVAL;
            }
            rc = git_header(out, l, n, next, n2);
            l = next_line(next);
            continue;
        }
        rc = wk_buf_append(out, l, n);
        if (rc == 0)
            rc = wk_buf_append(out, "\n", 1);
        l = next;
    }
    return rc;
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
static void place_hunks(git_diff *diff, git_tree *tree, git_repository *repo, hunk_hdr *hdrs,
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
            hunk_hdr *hd = &hdrs[k];
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

/*
 * Copies the normalized diff with each hunk header replaced by hdrs[k] in
 * order. The normalized text's counts fit its bodies, so bodies are skipped
 * by their counts and a "@@ " inside one is never taken for a header.
 */
static int rewrite_headers(const char *text, const hunk_hdr *hdrs, size_t n_hdrs, wk_buf *out)
{
    int rc = 0;
    size_t k = 0;
    for (const char *l = text; *l && rc == 0;) {
        size_t n = line_len(l);
        hunk_hdr h;
        if (k < n_hdrs && hunk_parse(l, n, &h)) {
            const char *end = body_by_counts(next_line(l), h.old_n, h.new_n);
            if (!end)
                end = next_line(l);
            rc = hunk_write(out, &hdrs[k++]);
            if (rc == 0)
                rc = wk_buf_append(out, next_line(l), (size_t)(end - next_line(l)));
            l = end;
            continue;
        }
        rc = wk_buf_append(out, l, (size_t)(next_line(l) - l));
        l = next_line(l);
    }
    return rc;
}

/* The hunk headers of the normalized text, in order. Caller frees *out. */
static size_t collect_headers(const char *text, hunk_hdr **out)
{
    size_t n_hdrs = 0, alloc = 0;
    hunk_hdr *hdrs = NULL;
    for (const char *l = text; *l;) {
        size_t n = line_len(l);
        hunk_hdr h;
        if (hunk_parse(l, n, &h)) {
            if (n_hdrs == alloc) {
                alloc = alloc ? alloc * 2 : 16;
                hdrs = wk_xrealloc(hdrs, alloc * sizeof *hdrs);
            }
            hdrs[n_hdrs++] = h;
            const char *end = body_by_counts(next_line(l), h.old_n, h.new_n);
            l = end ? end : next_line(l);
            continue;
        }
        l = next_line(l);
    }
    *out = hdrs;
    return n_hdrs;
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

static void show_line(wk_buf *b, char origin, const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    size_t take = n > SHOW_LINE_MAX ? val__utf8_floor(s, SHOW_LINE_MAX) : n;
    wk_buf_appendf(b, "%c%.*s%s\n", origin, (int)take, s, take < n ? "..." : "");
}

/*
 * Evidence for a hunk that did not apply: the file, the hunk header, the
 * lines the hunk expected (context and removals) and the lines the base file
 * has at that place, so the next model can see the mismatch.
 */
static void hunk_evidence(wk_buf *b, git_diff *diff, git_tree *tree, git_repository *repo,
                          const progress *p)
{
    const git_diff_delta *d = git_diff_get_delta(diff, p->delta);
    git_patch *patch = NULL;
    git_tree_entry *e = NULL;
    git_blob *blob = NULL;
    if (git_patch_from_diff(&patch, diff, p->delta) < 0)
        goto cleanup;
    size_t hlen = p->last.header_len;
    while (hlen > 0 && (p->last.header[hlen - 1] == '\n' || p->last.header[hlen - 1] == '\r'))
        hlen--;
    wk_buf_appendf(b, "file: %s\nhunk: %.*s\nthe hunk expects at line %d:\n", d->old_file.path,
                   (int)hlen, p->last.header, p->last.old_start);
    int lines = git_patch_num_lines_in_hunk(patch, (size_t)p->hunk);
    int shown = 0;
    for (int i = 0; i < lines && shown < SHOW_LINES; i++) {
        const git_diff_line *l = NULL;
        if (git_patch_get_line_in_hunk(&l, patch, (size_t)p->hunk, (size_t)i) < 0)
            break;
        if (l->origin != GIT_DIFF_LINE_CONTEXT && l->origin != GIT_DIFF_LINE_DELETION)
            continue;
        show_line(b, l->origin == GIT_DIFF_LINE_CONTEXT ? ' ' : '-', l->content, l->content_len);
        shown++;
    }
    /* What the base file really has from that line on. */
    if (git_tree_entry_bypath(&e, tree, d->old_file.path) < 0 ||
        git_blob_lookup(&blob, repo, git_tree_entry_id(e)) < 0)
        goto cleanup;
    const char *s = git_blob_rawcontent(blob);
    size_t size = (size_t)git_blob_rawsize(blob);
    size_t off = 0;
    for (int line = 1; line < p->last.old_start && off < size; line++) {
        const char *nl = memchr(s + off, '\n', size - off);
        off = nl ? (size_t)(nl - s) + 1 : size;
    }
    if (off >= size) {
        wk_buf_appendf(b, "the file has %s lines\n", p->last.old_start > 1 ? "fewer" : "no");
        goto cleanup;
    }
    wk_buf_appendf(b, "the file has at line %d:\n", p->last.old_start);
    for (int i = 0; i < SHOW_LINES && off < size; i++) {
        const char *nl = memchr(s + off, '\n', size - off);
        size_t n = nl ? (size_t)(nl - (s + off)) : size - off;
        show_line(b, ' ', s + off, n);
        off += n + (nl ? 1 : 0);
    }
cleanup:
    git_blob_free(blob);
    git_tree_entry_free(e);
    git_patch_free(patch);
}

/*
 * The file of the first binary patch in text: the "diff --git a/X b/X" line
 * before its "GIT binary patch" or "Binary files" line. Caller frees; NULL
 * when there is none.
 */
static char *binary_file_name(const char *text)
{
    const char *header = NULL;
    for (const char *l = text; l && *l;) {
        if (starts(l, "diff --git "))
            header = l;
        else if ((starts(l, "GIT binary patch") || starts(l, "Binary files ")) && header) {
            size_t n = line_len(header) - 11;
            const char *mid = memmem(header + 11, n, " b/", 3);
            const char *a = header + 11;
            if (starts(a, "a/"))
                a += 2;
            return wk_escape_ctl(a, mid ? (size_t)(mid - a) : (size_t)(header + 11 + n - a), 200);
        }
        l = strchr(l, '\n');
        if (l)
            l++;
    }
    return NULL;
}

/* The evidence of every unsafe_path verdict: what a patch may do. */
static const char unsafe_hint[] =
    "A patch may only change regular files inside the repository, by relative paths without "
    "\".\" or \"..\", outside .git/, and not through or into symlinks.";

/* libgit2's message for the last error, or `fallback`. */
static const char *git_msg(const char *fallback)
{
    const git_error *e = git_error_last();
    return e && e->message ? e->message : fallback;
}

/*
 * Checks the diff against the rules and the base tree before anything is
 * applied. Returns 0, or fills v and returns 1.
 */
static int confine(git_diff *diff, git_tree *tree, val_verdict *v)
{
    size_t n = git_diff_num_deltas(diff);
    for (size_t i = 0; i < n; i++) {
        const git_diff_delta *d = git_diff_get_delta(diff, i);
        const char *paths[2] = {d->old_file.path, d->new_file.path};
        /* An added file has no old side worth checking, a deleted one no new side. */
        int check[2] = {d->status != GIT_DELTA_ADDED, d->status != GIT_DELTA_DELETED};
        for (int k = 0; k < 2; k++) {
            if (!check[k])
                continue;
            const char *why = path_problem(paths[k]);
            char at[512] = "";
            if (!why)
                why = tree_problem(tree, paths[k], at, sizeof at);
            if (why) {
                char *shown =
                    wk_escape_ctl(paths[k] ? paths[k] : "", paths[k] ? strlen(paths[k]) : 0, 200);
                char *msg = at[0] ? wk_xasprintf("the diff %s (%s) at \"%s\"", why, at, shown)
                                  : wk_xasprintf("the diff names %s: \"%s\"", why, shown);
                val_verdict_fail(v, "patch", "unsafe_path", msg, unsafe_hint);
                free(msg);
                free(shown);
                return 1;
            }
        }
        if (d->new_file.mode == GIT_FILEMODE_LINK || d->new_file.mode == GIT_FILEMODE_COMMIT) {
            char *msg =
                wk_xasprintf("the diff makes \"%s\" a %s", d->new_file.path,
                             d->new_file.mode == GIT_FILEMODE_LINK ? "symlink" : "submodule");
            val_verdict_fail(v, "patch", "unsafe_path", msg, NULL);
            free(msg);
            return 1;
        }
        if (d->flags & GIT_DIFF_FLAG_BINARY) {
            char *msg = wk_xasprintf("the diff has a binary patch for \"%s\"", d->new_file.path);
            val_verdict_fail(v, "patch", "binary_patch", msg,
                             "Binary patches are not accepted; change text files only.");
            free(msg);
            return 1;
        }
    }
    /* Existence, which libgit2 checks loosely. */
    for (size_t i = 0; i < n; i++) {
        const git_diff_delta *d = git_diff_get_delta(diff, i);
        const char *path = NULL;
        const char *what = NULL;
        if (d->status == GIT_DELTA_ADDED && tree_has(tree, d->new_file.path)) {
            path = d->new_file.path;
            what = "creates";
            /* libgit2 would prepend the "new" lines to the existing file. */
        } else if (d->status != GIT_DELTA_ADDED && !tree_has(tree, d->old_file.path)) {
            path = d->old_file.path;
            what = "changes";
        }
        if (path) {
            char *m = wk_xasprintf("the diff %s \"%s\", which %s", what, path,
                                   what[0] == 'c' && what[1] == 'r' ? "already exists"
                                                                    : "does not exist");
            char *ev = wk_xasprintf("file: %s\n", path);
            val_verdict_fail(v, "patch", "does_not_apply", m, ev);
            free(m);
            free(ev);
            return 1;
        }
    }
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
    wk_buf text;   /* the diff as libgit2 reads it (normalize_diff) */
    wk_buf placed; /* the same with its hunks placed (place_hunks) */
    wk_buf ev;     /* evidence being built */
    char *msg;
    git_diff *diff;
    git_repository *repo;
    git_odb *odb;
    git_object *base_obj;
    git_tree *tree;
    git_index *result;
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

static const char bad_diff_hint[] =
    "Expected a unified diff: \"--- a/FILE\" and \"+++ b/FILE\" lines, then hunks "
    "\"@@ -l,n +l,n @@\" of context (space), removed (-) and added (+) lines.";

/* Normalizes and parses the diff. Returns 0, or 1 with the verdict set. */
static int read_diff(job *j, const char *code)
{
    if (strlen(code) > PATCH_DIFF_MAX)
        return job_fail(j, "too_big", NULL, "the diff is larger than %u bytes", PATCH_DIFF_MAX);
    char bad[400];
    int rc = normalize_diff(code, &j->text, &j->recounted, bad, sizeof bad);
    if (rc == WK_EINVAL) {
        char *shown = wk_escape_ctl(bad, strlen(bad), 300);
        job_fail(j, "unsafe_path", unsafe_hint, "the diff names %s", shown);
        free(shown);
        return 1;
    }
    if (rc < 0)
        return job_fail(j, "too_big", NULL, "the diff is too large once normalized");
    if (git_diff_from_buffer(&j->diff, j->text.buf ? j->text.buf : "", j->text.len) < 0) {
        /* A binary patch libgit2 cannot parse is still a binary patch. */
        if (has_line(code, "GIT binary patch") || has_line(code, "Binary files ")) {
            char *name = binary_file_name(code);
            job_fail(j, "binary_patch", "Binary patches are not accepted; change text files only.",
                     "the diff has a binary patch%s%s%s", name ? " for \"" : "", name ? name : "",
                     name ? "\"" : "");
            free(name);
            return 1;
        }
        return job_fail(j, "bad_diff", bad_diff_hint,
                        "the answer is not a unified diff that parses: %s", git_msg("parse error"));
    }
    size_t n = git_diff_num_deltas(j->diff);
    if (n == 0)
        return job_fail(j, "bad_diff", bad_diff_hint, "the diff changes no file");
    if (n > PATCH_FILES_MAX)
        return job_fail(j, "too_big", NULL, "the diff touches %zu files, more than %d", n,
                        PATCH_FILES_MAX);
    for (size_t i = 0; i < n; i++) {
        const git_diff_delta *d = git_diff_get_delta(j->diff, i);
        git_patch *p = NULL;
        size_t nh = git_patch_from_diff(&p, j->diff, i) == 0 ? git_patch_num_hunks(p) : 0;
        git_patch_free(p);
        /* "--- a/x" and "+++ b/x" with nothing after them: a diff that forgot its change. */
        if (d->status == GIT_DELTA_MODIFIED && nh == 0 && d->old_file.mode == d->new_file.mode &&
            !(d->flags & GIT_DIFF_FLAG_BINARY))
            return job_fail(j, "bad_diff", bad_diff_hint,
                            "the diff names \"%s\" but has no hunk for it", d->new_file.path);
    }
    return 0;
}

/* Opens the repository read-only in effect and finds the base tree. Returns 0 or 1. */
static int open_base(job *j)
{
    const cJSON *repo_j = cJSON_GetObjectItemCaseSensitive(j->in->task, "repo");
    const char *path = cJSON_GetObjectItemCaseSensitive(repo_j, "path")->valuestring;
    const cJSON *base_j = cJSON_GetObjectItemCaseSensitive(repo_j, "base");
    const char *base = base_j ? base_j->valuestring : "HEAD";
    /* NO_SEARCH: the task names the repository; never walk up to an enclosing one. */
    if (git_repository_open_ext(&j->repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0 ||
        git_revparse_single(&j->base_obj, j->repo, base) < 0 ||
        git_object_peel((git_object **)&j->tree, j->base_obj, GIT_OBJECT_TREE) < 0)
        return job_fail(j, "repo_error", NULL, "cannot read %.200s at %.100s: %s", path, base,
                        git_msg("unknown error"));
    /*
     * Objects the apply creates (the patched blobs) go to memory, so the
     * user's object store is never written. The backend must outrank the
     * loose and packed ones, which take writes otherwise.
     */
    git_odb_backend *mempack = NULL;
    if (git_repository_odb(&j->odb, j->repo) < 0 || git_mempack_new(&mempack) < 0 ||
        git_odb_add_backend(j->odb, mempack, 999) < 0) {
        if (mempack)
            mempack->free(mempack);
        return job_fail(j, "repo_error", NULL, "cannot set up an in-memory object store: %s",
                        git_msg("?"));
    }
    return 0; /* the object database owns the mempack now */
}

/* Places the hunks where their context is (place_hunks) and parses the result. */
static int place(job *j)
{
    size_t n_hunks = 0;
    for (size_t i = 0; i < git_diff_num_deltas(j->diff); i++) {
        git_patch *p = NULL;
        if (git_patch_from_diff(&p, j->diff, i) == 0)
            n_hunks += git_patch_num_hunks(p);
        git_patch_free(p);
    }
    hunk_hdr *hdrs = NULL;
    size_t n_hdrs = collect_headers(j->text.buf, &hdrs);
    int rc = 0;
    /* The headers map onto libgit2's hunks one to one, or we leave the diff alone. */
    if (n_hdrs == n_hunks && n_hdrs > 0) {
        place_hunks(j->diff, j->tree, j->repo, hdrs, n_hdrs, &j->moved);
        if (rewrite_headers(j->text.buf, hdrs, n_hdrs, &j->placed) < 0) {
            rc = job_fail(j, "too_big", NULL, "the diff is too large once normalized");
        } else {
            git_diff_free(j->diff);
            j->diff = NULL;
            if (git_diff_from_buffer(&j->diff, j->placed.buf, j->placed.len) < 0)
                rc = job_fail(j, "bad_diff", bad_diff_hint,
                              "the diff does not parse once its hunks are placed: %s",
                              git_msg("parse error"));
        }
    }
    free(hdrs);
    return rc;
}

/* Applies the diff to the base tree in memory. Returns 0, or 1 naming what did not apply. */
static int apply(job *j)
{
    progress prog = {.hunk = -1};
    git_apply_options opts;
    git_apply_options_init(&opts, GIT_APPLY_OPTIONS_VERSION);
    opts.delta_cb = on_delta;
    opts.hunk_cb = on_hunk;
    opts.payload = &prog;
    if (git_apply_to_tree(&j->result, j->repo, j->tree, j->diff, &opts) == 0) {
        if (git_index_entrycount(j->result) > PATCH_TREE_ENTRIES_MAX)
            return job_fail(j, "too_big", NULL, "the patched tree has more than %d files",
                            PATCH_TREE_ENTRIES_MAX);
        return 0;
    }
    const char *why = git_msg("it does not apply");
    const git_diff_delta *d = git_diff_get_delta(j->diff, prog.delta);
    const char *file = d ? d->old_file.path : "?";
    if (prog.hunk < 0) {
        wk_buf_appendf(&j->ev, "file: %s\n", file);
        return job_fail(j, "does_not_apply", j->ev.buf, "\"%s\" does not apply: %s", file, why);
    }
    size_t hlen = prog.last.header_len;
    while (hlen > 0 && (prog.last.header[hlen - 1] == '\n' || prog.last.header[hlen - 1] == '\r'))
        hlen--;
    hunk_evidence(&j->ev, j->diff, j->tree, j->repo, &prog);
    return job_fail(j, "does_not_apply", j->ev.buf, "hunk %d of \"%s\" (%.*s) does not apply: %s",
                    prog.hunk + 1, file, (int)hlen, prog.last.header, why);
}

/* Checks the patched tree out into a fresh directory of ours. Returns 0 or 1. */
static int check_out(job *j)
{
    char err[256];
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
    git_checkout_options co;
    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
    /*
     * FORCE writes every file into the empty directory; DONT_UPDATE_INDEX keeps
     * the repository's index untouched; no filters, so files are the blobs as
     * committed (no crlf or ident conversion from the user's config).
     */
    co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
    co.disable_filters = 1;
    co.target_directory = j->dir;
    if (git_checkout_index(j->repo, j->result, &co) < 0)
        return job_fail(j, "repo_error", NULL, "cannot check out the patched tree: %s",
                        git_msg("?"));
    return 0;
}

static int patch_start(val_env *env, const val_input *in, const char *code, val_done_cb done,
                       void *arg)
{
    (void)env;
    val_verdict v = {0};
    job j = {.in = in, .v = &v};
    wk_buf_init(&j.text, PATCH_DIFF_MAX + 64 * 1024);    /* room for the headers we add */
    wk_buf_init(&j.placed, PATCH_DIFF_MAX + 128 * 1024); /* placed headers grow a few digits */
    wk_buf_init(&j.ev, VAL_EVIDENCE_MAX * 2);
    git_libgit2_init(); /* reference counted; balanced below */

    const cJSON *repo_j = in->task ? cJSON_GetObjectItemCaseSensitive(in->task, "repo") : NULL;
    const cJSON *path_j = cJSON_GetObjectItemCaseSensitive(repo_j, "path");
    const cJSON *base_j = cJSON_GetObjectItemCaseSensitive(repo_j, "base");
    if (!cJSON_IsString(path_j) || (base_j && !cJSON_IsString(base_j))) {
        job_fail(&j, "no_repo", NULL,
                 "the task has no \"repo\": {\"path\": ..., \"base\": ...} to apply the diff to");
        goto cleanup;
    }
    /* Every check on the diff and its paths comes before anything is applied or written. */
    if (read_diff(&j, code) || open_base(&j) || confine(j.diff, j.tree, &v) || place(&j) ||
        apply(&j) || check_out(&j))
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

cleanup:
    if (!v.pass && in->workdir_out)
        *in->workdir_out = NULL;
    /* Nothing of ours outlives a failure or an unclaimed pass. */
    val_workdir_free(j.dir);
    git_index_free(j.result);
    git_tree_free(j.tree);
    git_object_free(j.base_obj);
    git_odb_free(j.odb);
    git_repository_free(j.repo);
    git_diff_free(j.diff);
    git_libgit2_shutdown();
    done(arg, &v);
    val_verdict_clear(&v);
    free(j.msg);
    wk_buf_release(&j.text);
    wk_buf_release(&j.placed);
    wk_buf_release(&j.ev);
    return 0;
}

const val_ops val__patch_ops = {"patch", patch_start};
