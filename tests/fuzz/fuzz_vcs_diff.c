/*
 * Fuzz target: the diff parser (vcs_diff_read in vcs/diff.c), which turns a
 * model's patch into libgit2's diff after adding git headers, recounting
 * hunks and checking every header path. The input is the patch text; the
 * readers the patch validator uses on a parsed diff run on it too.
 */
#include "fuzz.h"

#include <git2.h>
#include <stdlib.h>
#include <string.h>

#include "vcs/vcs.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /*
     * Held for the process: each diff takes and drops a reference, and the
     * last drop tears libgit2's global state down, to be set up again (most
     * of the time of a run) by the next.
     */
    git_libgit2_init();
    return 0;
}

static void on_line(void *arg, char origin, const char *s, size_t n)
{
    size_t *total = arg;
    if (origin != ' ' && origin != '-')
        abort();
    if (n && !s)
        abort();
    *total += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > VCS_DIFF_MAX)
        return 0;
    char *text = fuzz_cstr(data, size);
    char *name = NULL;
    char err[512];
    vcs_diff *d = NULL;
    int recounted = 0;

    if (vcs_diff_binary(text, &name) == 0 && name)
        abort();
    free(name);

    err[0] = '\0';
    int rc = vcs_diff_read(&d, text, &recounted, err, sizeof err);
    if (rc == 0) {
        size_t n = vcs_diff_nfiles(d);
        vcs_diff_empty_file(d);
        size_t total = 0;
        for (size_t f = 0; f < n && f < 8; f++)
            for (int h = 0; h < 4; h++)
                vcs_hunk_lines(d, f, h, 50, on_line, &total);
        vcs_diff_free(d);
    } else if (d || (rc != WK_EINVAL && rc != WK_ETOOBIG && rc != WK_EPARSE)) {
        abort();
    }
    free(text);
    return 0;
}
