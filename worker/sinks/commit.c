/*
 * The commit sink (see commit.h): the message and trailers, the branch name,
 * the commit through vcs/, the format-patch file written atomically, and the
 * "patch" object of the result line.
 */
#include "commit.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"
#include "vcs/vcs.h"

/* Bytes of the .patch file: the diff (capped by the patch validator) and its headers. */
#define PATCH_FILE_MAX (VCS_DIFF_MAX * 2 + (64u << 10))
/* Bytes of the instruction kept in a commit message. */
#define MESSAGE_INSTRUCTION_MAX 8192

int wk_commit_parse_author(const char *s, char **name, char **email)
{
    const char *lt = strchr(s, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;
    *name = *email = NULL;
    if (!lt || !gt || gt[1] != '\0' || gt == lt + 1)
        return WK_EINVAL;
    const char *end = lt;
    while (end > s && end[-1] == ' ')
        end--;
    if (end == s)
        return WK_EINVAL;
    *name = wk_xstrndup(s, (size_t)(end - s));
    *email = wk_xstrndup(lt + 1, (size_t)(gt - lt - 1));
    return 0;
}

/* The counts the tests validator reported, from the result's "tests" object; 0 when absent. */
static int count(const cJSON *tests, const char *a, const char *b)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(tests, a);
    if (!cJSON_IsNumber(v) && b)
        v = cJSON_GetObjectItemCaseSensitive(tests, b);
    return cJSON_IsNumber(v) ? v->valueint : 0;
}

char *wk_commit_message(const cJSON *task, const cJSON *result)
{
    const char *prompt = wk_jstr(task, "prompt");
    if (!prompt || !*prompt)
        prompt = WK_COMMIT_DEFAULT_INSTRUCTION;
    /* The first line is the subject; the rest follows a blank line, its leading blank lines cut. */
    size_t plen = strnlen(prompt, MESSAGE_INSTRUCTION_MAX);
    const char *nl = memchr(prompt, '\n', plen);
    size_t subj = nl ? (size_t)(nl - prompt) : plen;
    while (subj > 0 && (prompt[subj - 1] == '\r' || prompt[subj - 1] == ' '))
        subj--;
    const char *rest = nl ? nl + 1 : prompt + plen;
    const char *rest_end = prompt + plen;
    while (rest < rest_end && (*rest == '\n' || *rest == '\r'))
        rest++;
    while (rest_end > rest && (rest_end[-1] == '\n' || rest_end[-1] == '\r' || rest_end[-1] == ' '))
        rest_end--;
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(result, "tests");
    const cJSON *tier = cJSON_GetObjectItemCaseSensitive(result, "tier");
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(result, "cost_usd");
    const char *model = wk_jstr(result, "model");
    wk_buf b;
    wk_buf_init(&b, MESSAGE_INSTRUCTION_MAX + 4096);
    wk_buf_appendf(&b, "%.*s\n\n", (int)subj, prompt);
    if (rest_end > rest)
        wk_buf_appendf(&b, "%.*s\n\n", (int)(rest_end - rest), rest);
    wk_buf_appendf(&b, "Cascade-Task: %s\n", wk_jstr(task, "id") ? wk_jstr(task, "id") : "?");
    wk_buf_appendf(&b, "Cascade-Model: %s\n", model ? model : "?");
    wk_buf_appendf(&b, "Cascade-Tier: %d\n", cJSON_IsNumber(tier) ? tier->valueint : -1);
    wk_buf_appendf(&b, "Cascade-Cost-USD: %.6f\n", cJSON_IsNumber(cost) ? cost->valuedouble : 0);
    wk_buf_appendf(&b, "Cascade-Tests: passed %d, flaky %d, pre-existing %d\n",
                   count(tests, "passed", NULL), count(tests, "flaky", NULL),
                   count(tests, "preexisting", "pre_existing"));
    return wk_buf_detach(&b, NULL);
}

/* A file name for the task id: anything but [A-Za-z0-9._-] becomes '_', no leading dot. */
static char *patch_name(const char *id)
{
    size_t n = strnlen(id, 200);
    char *s = wk_xmalloc(n + 8);
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.';
        s[i] = ok && !(i == 0 && c == '.') ? c : '_';
    }
    memcpy(s + n, ".patch", 7);
    return s;
}

/* Writes text to path through a temporary file and a rename, so a crash leaves no half file. */
static int write_atomic(const char *path, const char *text, size_t len, char *err, size_t errlen)
{
    char *tmp = wk_xasprintf("%s.tmp.%ld", path, (long)getpid());
    int rc = 0;
    FILE *f = fopen(tmp, "wb");
    if (!f || fwrite(text, 1, len, f) != len || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        if (f)
            fclose(f);
        unlink(tmp);
        goto cleanup;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
cleanup:
    free(tmp);
    return rc;
}

/* The result turned into an error that says why the commit was not made. */
static void fail_result(cJSON *result, const char *why)
{
    char *reason = wk_xasprintf("commit_failed: %s", why);
    cJSON_ReplaceItemInObjectCaseSensitive(result, "status", cJSON_CreateString("error"));
    cJSON_DeleteItemFromObjectCaseSensitive(result, "reason");
    cJSON_AddStringToObject(result, "reason", reason);
    free(reason);
}

int wk_commit_sink(const wk_commit_opts *o, const cJSON *task, cJSON *result, char *err,
                   size_t errlen)
{
    const char *kind = wk_jstr(task, "kind");
    const char *status = wk_jstr(result, "status");
    if (!o->enabled || !kind || strcmp(kind, "patch") != 0 || !status ||
        strcmp(status, "accepted") != 0)
        return 0;
    const cJSON *repo = cJSON_GetObjectItemCaseSensitive(task, "repo");
    const char *path = wk_jstr(repo, "path");
    const char *base = wk_jstr(repo, "base");
    const char *id = wk_jstr(task, "id");
    const char *diff = wk_jstr(result, "answer");
    char *message = NULL, *file = NULL;
    wk_buf patch;
    wk_buf_init(&patch, PATCH_FILE_MAX);
    int rc = 0;
    if (!path || !id || !diff) {
        rc = wk_errf(WK_EINVAL, err, errlen, "the task has no repo.path or the result no answer");
        goto cleanup;
    }
    char branch[VCS_BRANCH_MAX - 8];
    vcs_branch_name(o->branch_prefix ? o->branch_prefix : "cascade/", id, branch, sizeof branch);
    message = wk_commit_message(task, result);
    vcs_commit_req req = {.repo_path = path,
                          .base = base ? base : "HEAD",
                          .diff = diff,
                          .branch = branch,
                          .force = o->force_branch,
                          .task_id = id,
                          .name = o->name,
                          .email = o->email,
                          .message = message};
    vcs_commit_info info;
    rc = vcs_commit(&req, &info, err, errlen);
    if (rc < 0)
        goto cleanup;
    if (o->patch_dir) {
        char *name = patch_name(id);
        file = wk_xasprintf("%s/%s", o->patch_dir, name);
        free(name);
        rc = vcs_format_patch(path, info.commit, &patch, err, errlen);
        if (rc == 0)
            rc = write_atomic(file, patch.buf, patch.len, err, errlen);
        if (rc < 0)
            goto cleanup;
    }
    if (getenv("CASCADE_TEST_CRASH_AFTER_COMMIT")) {
        /* The crash the resume promise is about: commit made, nothing journaled. */
        fprintf(stderr, "cascade: CASCADE_TEST_CRASH_AFTER_COMMIT: killed after %s\n", info.branch);
        fflush(stderr);
        raise(SIGKILL);
    }
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "branch", info.branch);
    cJSON_AddStringToObject(p, "commit", info.commit);
    cJSON_AddStringToObject(p, "base", info.base);
    if (file)
        cJSON_AddStringToObject(p, "file", file);
    else
        cJSON_AddNullToObject(p, "file");
    cJSON_AddNumberToObject(p, "files_changed", (double)info.files_changed);
    cJSON_AddNumberToObject(p, "insertions", (double)info.insertions);
    cJSON_AddNumberToObject(p, "deletions", (double)info.deletions);
    cJSON_DeleteItemFromObjectCaseSensitive(result, "patch");
    cJSON_AddItemToObject(result, "patch", p);
cleanup:
    if (rc < 0)
        fail_result(result, err);
    wk_buf_release(&patch);
    free(file);
    free(message);
    return rc;
}
