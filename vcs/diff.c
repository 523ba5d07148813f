/*
 * Diff text, read the way `git apply` reads it, which libgit2 alone does not:
 * plain unified diffs ("--- a/x" / "+++ b/x" without "diff --git", as diff -u
 * and most models write them) get git headers; empty context lines that lost
 * their space count as context; a hunk whose line counts do not fit its body
 * is recounted. Every path on a header line is confined here, before libgit2
 * reads (and normalizes) it. Only text: nothing here calls libgit2.
 */
#include "vcs_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

/* The rules of vcs_confine that need no tree (see vcs_int.h). */
const char *vcs__path_problem(const char *path)
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

/* Parses a hunk header line (n bytes); 0 when the line is not one. Counts default to 1. */
static int hunk_parse(const char *l, size_t n, vcs__hunk_hdr *h)
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

static int hunk_write(wk_buf *out, const vcs__hunk_hdr *h)
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
        why = vcs__path_problem(path);
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
 * recounted. Returns as vcs_int.h says.
 */
int vcs__diff_normalize(const char *text, wk_buf *out, int *recounted, char *bad, size_t badlen)
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
        vcs__hunk_hdr h;
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

/*
 * Copies the normalized diff with each hunk header replaced by hdrs[k] in
 * order (see vcs_diff_place). The normalized text's counts fit its bodies, so bodies are skipped
 * by their counts and a "@@ " inside one is never taken for a header.
 */
int vcs__hunk_rewrite(const char *text, const vcs__hunk_hdr *hdrs, size_t n_hdrs, wk_buf *out)
{
    int rc = 0;
    size_t k = 0;
    for (const char *l = text; *l && rc == 0;) {
        size_t n = line_len(l);
        vcs__hunk_hdr h;
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

size_t vcs__hunk_headers(const char *text, vcs__hunk_hdr **out)
{
    size_t n_hdrs = 0, alloc = 0;
    vcs__hunk_hdr *hdrs = NULL;
    for (const char *l = text; *l;) {
        size_t n = line_len(l);
        vcs__hunk_hdr h;
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

int vcs_diff_binary(const char *text, char **name)
{
    *name = NULL;
    if (!has_line(text, "GIT binary patch") && !has_line(text, "Binary files "))
        return 0;
    *name = binary_file_name(text);
    return 1;
}
