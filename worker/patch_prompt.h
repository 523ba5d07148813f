/*
 * The user turn of a patch task, built from what the preparation read of the
 * repository at base (patch_task.c). Pure: strings in, a string out, every
 * cut marked in the text so the model knows what it does not see.
 */
#ifndef WK_PATCH_PROMPT_H
#define WK_PATCH_PROMPT_H

#include <stddef.h>

#include "patch_task.h"

/* A file of the base tree shown in the prompt. */
typedef struct wk_patch_file {
    const char *path;
    const char *text; /* the first `len` bytes of the file */
    size_t len;
    size_t full_len; /* the file's whole size; > len when cut */
} wk_patch_file;

typedef struct wk_patch_prompt_in {
    const char *instruction;
    const char *command; /* the test command, as one line */
    const char *output;  /* the failing run's output at base */
    size_t output_len;
    const val_baseline *baseline; /* may be NULL */
    const wk_patch_file *files;   /* context files, then files named in the output */
    int nfiles;
    const char *const *missing; /* context_files that are not regular files at base */
    int nmissing;
    const char *const *list; /* paths of the tree, at most caps->max_list */
    int nlist;
    long list_total; /* paths in the tree (more than nlist when the list is cut) */
    const wk_patch_opts *caps;
} wk_patch_prompt_in;

/* The user turn. Caller frees. */
char *wk_patch_prompt(const wk_patch_prompt_in *in);

/*
 * The repository paths named in a test or compiler output (Python tracebacks'
 * File "x", "x.py:12:" of pytest and compilers, node's "(/box/x.js:1:2)"),
 * /box/ and ./ prefixes dropped, in order of appearance, without repeats, at
 * most max. *paths and its strings are the caller's (free each, then it).
 * Returns how many.
 */
int wk_patch_output_paths(const char *out, size_t len, int max, char ***paths);

#endif
