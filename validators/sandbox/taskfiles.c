/*
 * The files of a sandboxed run, built from a task: its context files, the
 * answer under its file name (a task file of that name is a prelude), and
 * the read-only test files. Also the answer's file name, which for Java
 * follows the first public type, as javac requires.
 */
#include "sandbox.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void val__files_release(val__files *f)
{
    for (int i = 0; i < f->n; i++) {
        free((char *)f->v[i].path);
        free((char *)f->v[i].data);
    }
    free(f->v);
    free(f->answer_name);
    memset(f, 0, sizeof *f);
}

static int add_file(val__files *f, const char *path, char *data, size_t len, int readonly,
                    char *err, size_t errlen)
{
    if (f->n >= VAL__FILES_MAX) {
        free(data);
        snprintf(err, errlen, "the task has more than %d files", VAL__FILES_MAX);
        return WK_ETOOBIG;
    }
    if (!val__path_ok(path)) {
        free(data);
        snprintf(err, errlen,
                 "bad file path \"%.255s\": it must be relative, without \"..\", "
                 "at most 255 bytes, without control characters or backslashes",
                 path);
        return WK_EINVAL;
    }
    f->v = wk_xrealloc(f->v, ((size_t)f->n + 1) * sizeof *f->v);
    f->v[f->n++] = (val__sbx_file){wk_xstrdup(path), data, len, readonly};
    return 0;
}

/* Checks that `files` is an object of path -> string content; NULL is an empty one. */
static int check_files(const cJSON *files, const char *what, char *err, size_t errlen)
{
    if (!files)
        return 0;
    if (!cJSON_IsObject(files)) {
        snprintf(err, errlen, "%s must be an object of path -> content", what);
        return WK_EINVAL;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (!cJSON_IsString(f)) {
            snprintf(err, errlen, "%s: \"%.200s\" must have a string content", what, f->string);
            return WK_EINVAL;
        }
    }
    return 0;
}

int val__task_files(const val_input *in, const char *code, int with_tests, val__files *out,
                    char *err, size_t errlen)
{
    int rc = 0;
    const cJSON *task = in->task;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(task, "files");
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(task, "tests");
    const cJSON *tfiles = with_tests ? cJSON_GetObjectItemCaseSensitive(tests, "files") : NULL;
    memset(out, 0, sizeof *out);
    if ((rc = check_files(files, "task files", err, errlen)) < 0 ||
        (rc = check_files(tfiles, "tests.files", err, errlen)) < 0)
        goto cleanup;
    out->answer_name = val__answer_name(in, code);
    if (in->workdir)
        goto tests; /* a patched tree is the code: it is copied in whole, the answer was a diff */

    /* Order matters: context files, then the answer, then the tests (which win). */
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (strcmp(f->string, out->answer_name) == 0 ||
            cJSON_GetObjectItemCaseSensitive(tfiles, f->string))
            continue;
        rc = add_file(out, f->string, wk_xstrdup(f->valuestring), strlen(f->valuestring), 0, err,
                      errlen);
        if (rc < 0)
            goto cleanup;
    }
    /* A file of the answer's name is a prelude (imports, a header) the code follows. */
    const cJSON *prelude = cJSON_GetObjectItemCaseSensitive(files, out->answer_name);
    char *content;
    if (cJSON_IsString(prelude) && prelude->valuestring[0]) {
        size_t pl = strlen(prelude->valuestring);
        int nl = prelude->valuestring[pl - 1] != '\n';
        content = wk_xasprintf("%s%s%s\n", prelude->valuestring, nl ? "\n" : "", code);
    } else {
        content = wk_xasprintf("%s\n", code);
    }
    rc = add_file(out, out->answer_name, content, strlen(content), 0, err, errlen);
    if (rc < 0)
        goto cleanup;
tests:
    cJSON_ArrayForEach(f, tfiles)
    {
        rc = add_file(out, f->string, wk_xstrdup(f->valuestring), strlen(f->valuestring), 1, err,
                      errlen);
        if (rc < 0)
            goto cleanup;
    }
cleanup:
    if (rc < 0)
        val__files_release(out);
    return rc;
}

/* ---- checked at intake ---------------------------------------------------------- */

#define PATH_RULE                                                                                  \
    "relative, without \"..\", at most 255 bytes, without control characters or backslashes"

/*
 * Checks one map of path -> content (NULL: none) for val_check_task_files;
 * counts its entries into *count.
 */
static int check_map(const cJSON *files, const char *what, int *count, char *why, size_t whylen)
{
    if (!files)
        return 0;
    if (!cJSON_IsObject(files)) {
        snprintf(why, whylen, "%s must be an object of path -> content", what);
        return WK_EINVAL;
    }
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (!val__path_ok(f->string)) {
            snprintf(why, whylen, "%s: \"%.200s\" is not a safe path (" PATH_RULE ")", what,
                     f->string);
            return WK_EINVAL;
        }
        if (!cJSON_IsString(f)) {
            snprintf(why, whylen, "%s: \"%.200s\" must have a string content", what, f->string);
            return WK_EINVAL;
        }
        (*count)++;
    }
    return 0;
}

/* 1 when path `dir` names a directory above `path` ("a" above "a/b"). */
static int is_parent(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    return strncmp(dir, path, n) == 0 && path[n] == '/';
}

/*
 * Fails when one path of the run is a directory of another ("a" and "a/b"):
 * the sandbox could not place both, and every answer would fail for it.
 */
static int check_clash(const char *const *paths, int n, char *why, size_t whylen)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++)
            if (i != k && is_parent(paths[i], paths[k])) {
                snprintf(why, whylen,
                         "files: \"%.200s\" is both a file and the directory of \"%.200s\"",
                         paths[i], paths[k]);
                return WK_EINVAL;
            }
    return 0;
}

int val_check_task_files(const cJSON *task, char *why, size_t whylen)
{
    int rc = 0;
    int count = 0;
    const char **paths = NULL;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(task, "files");
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(task, "tests");
    const cJSON *tfiles = cJSON_GetObjectItemCaseSensitive(tests, "files");
    const cJSON *af = cJSON_GetObjectItemCaseSensitive(task, "answer_file");
    if (tests && !cJSON_IsObject(tests)) {
        snprintf(why, whylen, "tests must be an object with \"command\" and \"files\"");
        return WK_EINVAL;
    }
    if ((rc = check_map(files, "files", &count, why, whylen)) < 0 ||
        (rc = check_map(tfiles, "tests.files", &count, why, whylen)) < 0)
        return rc;
    if (af && !cJSON_IsString(af)) {
        snprintf(why, whylen, "answer_file must be a string (a path)");
        return WK_EINVAL;
    }
    if (af && !val__path_ok(af->valuestring)) {
        snprintf(why, whylen, "answer_file \"%.200s\" is not a safe path (" PATH_RULE ")",
                 af->valuestring);
        return WK_EINVAL;
    }
    if (af && cJSON_GetObjectItemCaseSensitive(tfiles, af->valuestring)) {
        snprintf(why, whylen,
                 "answer_file \"%.200s\" is also in tests.files, which would replace the answer",
                 af->valuestring);
        return WK_EINVAL;
    }
    /* The answer is one more file of the run. */
    if (count + 1 > VAL__FILES_MAX) {
        snprintf(why, whylen, "files and tests.files hold %d files; at most %d fit in one run",
                 count, VAL__FILES_MAX - 1);
        return WK_EINVAL;
    }
    paths = wk_xcalloc((size_t)count + 1, sizeof *paths);
    int n = 0;
    const cJSON *f;
    cJSON_ArrayForEach(f, files) paths[n++] = f->string;
    cJSON_ArrayForEach(f, tfiles) paths[n++] = f->string;
    if (af)
        paths[n++] = af->valuestring;
    rc = check_clash(paths, n, why, whylen);
    free(paths);
    return rc;
}

/* Skips whitespace and comments (// and / * * /) from p; returns where code resumes. */
static const char *skip_space(const char *p)
{
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (p[0] == '/' && p[1] == '/') {
            p = strchrnul(p, '\n');
        } else if (p[0] == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*"
                                          "/");
            p = e ? e + 2 : p + strlen(p);
        } else {
            return p;
        }
    }
}

/* Copies the identifier at p into out (size n); returns its length (0 if none). */
static size_t ident(const char *p, char *out, size_t n)
{
    size_t len = 0;
    while ((isalnum((unsigned char)p[len]) || p[len] == '_' || p[len] == '$' || p[len] == '-') &&
           len + 1 < n) {
        out[len] = p[len];
        len++;
    }
    out[len] = '\0';
    return len;
}

/* The first public top-level type of Java source, or NULL. Caller frees. */
static char *java_public_type(const char *code)
{
    static const char *const mods[] = {"final",  "abstract", "sealed", "non-sealed",
                                       "static", "strictfp", NULL};
    static const char *const kinds[] = {"class", "interface", "enum", "record", NULL};
    char word[128];
    /* A scan of words; only a "public" that starts a declaration is looked at closely. */
    for (const char *p = skip_space(code); *p; p = skip_space(p)) {
        size_t n = ident(p, word, sizeof word);
        if (n == 0) {
            if (*p == '"') { /* a string literal: skip it whole */
                for (p++; *p && *p != '"'; p++)
                    if (*p == '\\' && p[1])
                        p++;
                if (*p)
                    p++;
            } else {
                p++;
            }
            continue;
        }
        p += n;
        if (strcmp(word, "public") != 0)
            continue;
        const char *q = skip_space(p);
        for (;;) {
            size_t m = ident(q, word, sizeof word);
            int is_mod = 0;
            for (int i = 0; mods[i]; i++)
                is_mod |= m && strcmp(word, mods[i]) == 0;
            if (!is_mod)
                break;
            q = skip_space(q + m);
        }
        size_t m = ident(q, word, sizeof word);
        int is_kind = 0;
        for (int i = 0; kinds[i]; i++)
            is_kind |= m && strcmp(word, kinds[i]) == 0;
        if (!is_kind)
            continue;
        q = skip_space(q + m);
        if (ident(q, word, sizeof word) > 0 && !strchr(word, '-'))
            return wk_xstrdup(word);
    }
    return NULL;
}

char *val__answer_name(const val_input *in, const char *code)
{
    const cJSON *af = cJSON_GetObjectItemCaseSensitive(in->task, "answer_file");
    if (cJSON_IsString(af) && af->valuestring[0])
        return wk_xstrdup(af->valuestring);
    const char *lang = val_lang_canonical(in->language);
    if (lang && strcmp(lang, "java") == 0 && code) {
        /* javac insists that a public class Foo lives in Foo.java. */
        char *type = java_public_type(code);
        if (type) {
            char *name = wk_xasprintf("%s.java", type);
            free(type);
            return name;
        }
    }
    return wk_xasprintf("solution.%s", val_lang_ext(in->language));
}
