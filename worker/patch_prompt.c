/*
 * The prompt of a patch task (see patch_prompt.h): the instruction, the
 * failing test output (its tail, where tracebacks end), the files that
 * matter with line numbers, and a short list of the tree, in that order, with
 * the answer's form said last so it is fresh when the model starts writing.
 */
#include "patch_prompt.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* The whole prompt's cap: what the parts' caps add up to, with room for the frame. */
#define PROMPT_MAX (8u << 20)

/* The tail of the output, at most cap bytes, starting on a line; a cut is marked. */
static void add_output(wk_buf *b, const char *out, size_t len, size_t cap)
{
    if (len <= cap) {
        wk_buf_appendf(b, "%.*s", (int)len, out);
    } else {
        size_t from = len - cap;
        const char *nl = memchr(out + from, '\n', len - from);
        if (nl && (size_t)(nl - out) + 1 < len)
            from = (size_t)(nl - out) + 1;
        wk_buf_appendf(b, "[... %zu bytes of earlier output cut; the last %zu follow]\n", from,
                       len - from);
        wk_buf_appendf(b, "%.*s", (int)(len - from), out + from);
    }
    if (len && out[len - 1] != '\n')
        wk_buf_append(b, "\n", 1);
}

/* The file with its line numbers; a cut is marked after the last whole line. */
static void add_file(wk_buf *b, const wk_patch_file *f)
{
    size_t len = f->len;
    if (f->full_len > f->len) {
        /* Show whole lines only: a half line invites a wrong hunk. */
        while (len > 0 && f->text[len - 1] != '\n')
            len--;
    }
    wk_buf_appendf(b, "\nFile %s:\n```\n", f->path);
    int line = 1;
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(f->text + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (f->text + off)) : len - off;
        wk_buf_appendf(b, "%5d | %.*s\n", line++, (int)n, f->text + off);
        off += n + 1;
    }
    if (f->full_len > len)
        wk_buf_appendf(b, "[... file cut after line %d: %zu more bytes not shown]\n", line - 1,
                       f->full_len - len);
    wk_buf_appendf(b, "```\n");
}

static void add_names(wk_buf *b, const char *label, char *const *v, int n)
{
    if (n <= 0)
        return;
    wk_buf_appendf(b, "%s: ", label);
    for (int i = 0; i < n && i < 50; i++)
        wk_buf_appendf(b, "%s%s", i ? ", " : "", v[i]);
    if (n > 50)
        wk_buf_appendf(b, " [... and %d more]", n - 50);
    wk_buf_append(b, "\n", 1);
}

char *wk_patch_prompt(const wk_patch_prompt_in *in)
{
    wk_buf b;
    wk_buf_init(&b, PROMPT_MAX);
    wk_buf_appendf(&b, "Task: %s\n", in->instruction);
    const val_baseline *bl = in->baseline;
    wk_buf_appendf(&b, "\nThe tests (`%s`) fail at the current commit.\n", in->command);
    if (bl && bl->detail) {
        add_names(&b, "Failing tests", bl->targets, bl->ntargets);
        /* Pre-existing failures the instruction does not ask about. */
        int other = bl->nfailing - bl->ntargets;
        if (other > 0)
            wk_buf_appendf(&b, "Other tests fail too (%d); they are not part of this task.\n",
                           other);
        add_names(&b, "Flaky tests (they flip between runs; ignore them)", bl->flaky, bl->nflaky);
    }
    wk_buf_appendf(&b, "\nTest output:\n```\n");
    add_output(&b, in->output ? in->output : "", in->output ? in->output_len : 0,
               (size_t)in->caps->max_test_output_kb * 1024);
    wk_buf_appendf(&b, "```\n");
    for (int i = 0; i < in->nfiles; i++)
        add_file(&b, &in->files[i]);
    for (int i = 0; i < in->nmissing; i++)
        wk_buf_appendf(&b, "\n[context file %s is not a file of the repository at this commit]\n",
                       in->missing[i]);
    if (in->nlist > 0) {
        wk_buf_appendf(&b, "\nFiles in the repository:\n");
        for (int i = 0; i < in->nlist; i++)
            wk_buf_appendf(&b, "%s\n", in->list[i]);
        if (in->list_total > in->nlist)
            wk_buf_appendf(&b, "[... %ld more files not listed]\n", in->list_total - in->nlist);
    }
    wk_buf_appendf(&b, "\nAnswer with a unified diff against the files as shown (paths relative "
                       "to the repository root, \"--- a/PATH\" and \"+++ b/PATH\" headers, "
                       "\"@@ -l,n +l,n @@\" hunks with a few lines of context), in one ```diff "
                       "fenced block. Do not change the tests.\n");
    char *s = wk_buf_detach(&b, NULL);
    return s ? s : wk_xstrdup("");
}

/* ---- paths in an output ------------------------------------------------------------ */

static int path_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-' || c == '.' || c == '/' || c == '+';
}

static void add_path(char ***paths, int *n, int max, const char *s, size_t len)
{
    /* The sandbox runs in /box: its paths are the repository's. */
    if (len > 5 && memcmp(s, "/box/", 5) == 0)
        s += 5, len -= 5;
    while (len > 2 && s[0] == '.' && s[1] == '/')
        s += 2, len -= 2;
    if (len == 0 || len > 255 || s[0] == '/' || *n >= max)
        return;
    /* A path has a file extension; "foo:12" alone is not one. */
    const char *dot = memchr(s, '.', len);
    if (!dot || dot == s + len - 1)
        return;
    for (int i = 0; i < *n; i++)
        if (strlen((*paths)[i]) == len && memcmp((*paths)[i], s, len) == 0)
            return;
    *paths = wk_xrealloc(*paths, ((size_t)*n + 1) * sizeof **paths);
    (*paths)[(*n)++] = wk_xstrndup(s, len);
}

int wk_patch_output_paths(const char *out, size_t len, int max, char ***paths)
{
    int n = 0;
    *paths = NULL;
    for (size_t i = 0; i < len && n < max; i++) {
        /* Python: File "path", line N */
        if (len - i > 6 && memcmp(out + i, "File \"", 6) == 0) {
            size_t s = i + 6, e = s;
            while (e < len && out[e] != '"' && out[e] != '\n')
                e++;
            if (e < len && out[e] == '"')
                add_path(paths, &n, max, out + s, e - s);
            i = e;
            continue;
        }
        /* path:LINE (pytest, compilers, node's stack frames) */
        if (out[i] == ':' && i + 1 < len && isdigit((unsigned char)out[i + 1]) && i > 0 &&
            path_char(out[i - 1])) {
            size_t s = i;
            while (s > 0 && path_char(out[s - 1]))
                s--;
            add_path(paths, &n, max, out + s, i - s);
        }
    }
    return n;
}
