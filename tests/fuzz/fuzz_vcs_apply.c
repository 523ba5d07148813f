/*
 * Fuzz target: path confinement and applying (vcs/diff.c, vcs/apply.c), the
 * steps the patch validator takes after parsing: vcs_confine against a base
 * tree that holds a symlink, a submodule and nested files; then, for a diff
 * it lets through, placing the hunks and applying them in memory, and the
 * evidence readers when a hunk does not apply. The input is the patch text.
 *
 * The base repository is made once, at start, in a scratch directory.
 * Applying writes the patched blobs into the base's in-memory object store,
 * so the base is opened again every REOPEN_EVERY inputs to keep memory flat.
 *
 * Beyond "no crash", it checks the promise that matters: a tree that
 * applied is checked out into a scratch directory and must have written
 * nothing beside it, no .git and no symlink of its own.
 */
#include "fuzz.h"

#include <dirent.h>
#include <ftw.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vcs/vcs.h"

#define REOPEN_EVERY 256

static char *repo_dir;
static char *scratch; /* where an accepted tree is checked out, in "out" */
static vcs_base *base;
static unsigned long runs;

static void check_git(int rc, const char *what)
{
    if (rc < 0) {
        const git_error *e = git_error_last();
        fprintf(stderr, "fuzz_vcs_apply: %s: %s\n", what, e ? e->message : "?");
        abort();
    }
}

static void put_blob(git_repository *r, git_treebuilder *tb, const char *name, const char *text,
                     git_filemode_t mode)
{
    git_oid oid;
    check_git(git_blob_create_from_buffer(&oid, r, text, strlen(text)), name);
    check_git(git_treebuilder_insert(NULL, tb, name, &oid, mode), name);
}

/* A tree of files (name, text pairs; NULL-terminated), written to the repository. */
static git_oid make_tree(git_repository *r, const char *const *files)
{
    git_treebuilder *tb = NULL;
    git_oid oid;
    check_git(git_treebuilder_new(&tb, r, NULL), "treebuilder");
    for (int i = 0; files[i]; i += 2)
        put_blob(r, tb, files[i], files[i + 1], GIT_FILEMODE_BLOB);
    check_git(git_treebuilder_write(&oid, tb), "tree");
    git_treebuilder_free(tb);
    return oid;
}

/*
 * The base: README.md, src/main.c and src/util.py, docs/guide.txt (long, so
 * hunks can be placed away from their stated lines), a symlink "link" to
 * src, an executable script, and a submodule "sub".
 */
static void make_repo(const char *dir)
{
    static const char *const src[] = {
        "main.c",  "#include <stdio.h>\n\nint main(void)\n{\n    puts(\"hi\");\n    return 0;\n}\n",
        "util.py", "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n",
        NULL,
    };
    char guide[4096];
    size_t n = 0;
    for (int i = 1; i <= 60; i++)
        n += (size_t)snprintf(guide + n, sizeof guide - n, "line %d of the guide\n", i % 20);
    const char *const docs[] = {"guide.txt", guide, NULL};

    git_repository *r = NULL;
    check_git(git_repository_init(&r, dir, 0), "init");
    git_oid src_oid = make_tree(r, src);
    git_oid docs_oid = make_tree(r, docs);

    git_treebuilder *tb = NULL;
    check_git(git_treebuilder_new(&tb, r, NULL), "treebuilder");
    put_blob(r, tb, "README.md", "# base\n\nhello\n", GIT_FILEMODE_BLOB);
    put_blob(r, tb, "run.sh", "#!/bin/sh\necho run\n", GIT_FILEMODE_BLOB_EXECUTABLE);
    put_blob(r, tb, "link", "src", GIT_FILEMODE_LINK);
    check_git(git_treebuilder_insert(NULL, tb, "src", &src_oid, GIT_FILEMODE_TREE), "src");
    check_git(git_treebuilder_insert(NULL, tb, "docs", &docs_oid, GIT_FILEMODE_TREE), "docs");
    /* A submodule entry points at a commit of another repository: any id will do. */
    check_git(git_treebuilder_insert(NULL, tb, "sub", &src_oid, GIT_FILEMODE_COMMIT), "sub");
    git_oid tree_oid, commit_oid;
    check_git(git_treebuilder_write(&tree_oid, tb), "root tree");
    git_treebuilder_free(tb);

    git_tree *tree = NULL;
    git_signature *sig = NULL;
    check_git(git_tree_lookup(&tree, r, &tree_oid), "lookup");
    check_git(git_signature_new(&sig, "fuzz", "fuzz@example.com", 1700000000, 0), "signature");
    check_git(git_commit_create_v(&commit_oid, r, "HEAD", sig, sig, NULL, "base", tree, 0),
              "commit");
    git_signature_free(sig);
    git_tree_free(tree);
    git_repository_free(r);
}

static void open_base(void)
{
    char err[512];
    if (base)
        vcs_base_free(base);
    base = NULL;
    if (vcs_base_open(&base, repo_dir, "HEAD", err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_vcs_apply: cannot open the base: %s\n", err);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Held for the process, so libgit2's state survives each base's open and free. */
    git_libgit2_init();
    repo_dir = fuzz_tmpdir("vcs");
    make_repo(repo_dir);
    scratch = fuzz_tmpdir("vcs-out");
    open_base();
    return 0;
}

static void on_line(void *arg, char origin, const char *s, size_t n)
{
    (void)origin;
    (void)s;
    *(size_t *)arg += n;
}

/*
 * After a checkout of an accepted diff: the scratch root holds only "out",
 * nothing in it is named .git, and its only symlink is the base's own
 * "link" -> "src". Removes "out" again. Aborts when the tree got out.
 */
static int bad_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)flag;
    const char *name = path + ftw->base;
    if (strcasecmp(name, ".git") == 0)
        return 1;
    if (S_ISLNK(sb->st_mode)) {
        char target[64];
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (ftw->level != 1 || strcmp(name, "link") != 0 || n != 3 || memcmp(target, "src", 3))
            return 1;
    }
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void check_checkout(const vcs_tree *t)
{
    char err[512];
    char out[4200];
    snprintf(out, sizeof out, "%s/out", scratch);
    if (mkdir(out, 0700) != 0)
        abort();
    if (vcs_tree_checkout(t, out, err, sizeof err) == 0 &&
        nftw(out, bad_entry, 16, FTW_PHYS) != 0) {
        fprintf(stderr, "fuzz_vcs_apply: the patched tree wrote a .git or a new symlink\n");
        abort();
    }
    nftw(out, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    DIR *dir = opendir(scratch);
    struct dirent *e;
    while (dir && (e = readdir(dir)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            fprintf(stderr, "fuzz_vcs_apply: \"%s\" was written beside the tree\n", e->d_name);
            abort();
        }
    if (dir)
        closedir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > VCS_DIFF_MAX)
        return 0;
    if (++runs % REOPEN_EVERY == 0)
        open_base();
    char *text = fuzz_cstr(data, size);
    char err[512];
    vcs_diff *d = NULL;
    vcs_tree *t = NULL;
    int recounted = 0, moved = 0;
    vcs_refusal r;
    vcs_apply_failure f;

    if (vcs_diff_read(&d, text, &recounted, err, sizeof err) != 0)
        goto cleanup;
    memset(&r, 0, sizeof r);
    if (vcs_confine(d, base, &r) != 0) {
        if (r.kind == VCS_OK || (r.kind == VCS_UNSAFE_PATH && !r.why))
            abort();
        goto cleanup;
    }
    if (vcs_diff_place(d, base, &moved, err, sizeof err) != 0)
        goto cleanup;
    memset(&f, 0, sizeof f);
    if (vcs_apply(&t, d, base, &f) == 0) {
        vcs_tree_entries(t);
        check_checkout(t);
    } else {
        if (!f.file)
            abort();
        size_t total = 0;
        if (f.hunk >= 0)
            vcs_hunk_lines(d, f.file_index, f.hunk, 20, on_line, &total);
        vcs_base_lines(base, f.file, f.old_start, 20, on_line, &total);
    }
cleanup:
    if (t)
        vcs_tree_free(t);
    if (d)
        vcs_diff_free(d);
    free(text);
    return 0;
}
