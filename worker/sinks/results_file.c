/*
 * The results file sink (see results_file.h).
 */
#include "results_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

struct wk_results_file {
    FILE *out;
    int own;
    wk_strset written; /* result keys already in the file (resume) */
};

/* The key a result line was written under; NULL for a line that has none. */
static char *line_key(const char *text, size_t n)
{
    cJSON *j = cJSON_ParseWithLength(text, n);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(j, "line");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(j, "reason");
    char *key = NULL;
    if (cJSON_IsString(reason) && strncmp(reason->valuestring, "duplicate id", 12) == 0 &&
        cJSON_IsNumber(line))
        key = wk_xasprintf("dup:%d", line->valueint);
    else if (cJSON_IsString(id))
        key = wk_xstrdup(id->valuestring);
    else if (cJSON_IsNumber(line) && cJSON_IsString(st))
        key = wk_xasprintf("line:%d", line->valueint);
    cJSON_Delete(j);
    return key;
}

/* Trims a line cut by a crash and reads the keys of the whole lines. */
static int load_written(wk_results_file *f, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    if (wk_read_file(path, (size_t)1 << 34, &text, &len) != 0)
        return 0; /* no file yet */
    size_t keep = len;
    while (keep > 0 && text[keep - 1] != '\n')
        keep--;
    if (keep < len && truncate(path, (off_t)keep) != 0) {
        snprintf(err, errlen, "cannot trim the cut last line of %s: %s", path, strerror(errno));
        free(text);
        return WK_EIO;
    }
    size_t start = 0;
    while (start < keep) {
        char *nl = memchr(text + start, '\n', keep - start);
        size_t n = (size_t)(nl - (text + start));
        char *key = line_key(text + start, n);
        if (key)
            wk_strset_add(&f->written, key);
        free(key);
        start += n + 1;
    }
    free(text);
    return 0;
}

int wk_results_file_open(const char *path, int resume, wk_results_file **out, char *err,
                         size_t errlen)
{
    wk_results_file *f = wk_xcalloc(1, sizeof *f);
    int rc = WK_EIO;
    if (!path || strcmp(path, "-") == 0) {
        f->out = stdout;
    } else {
        if (resume && load_written(f, path, err, errlen) != 0)
            goto cleanup;
        f->out = fopen(path, resume ? "a" : "w");
        if (!f->out) {
            snprintf(err, errlen, "cannot open results file %s: %s", path, strerror(errno));
            goto cleanup;
        }
        f->own = 1;
    }
    *out = f;
    f = NULL;
    rc = 0;
cleanup:
    wk_results_file_close(f);
    return rc;
}

void wk_results_file_close(wk_results_file *f)
{
    if (!f)
        return;
    if (f->own)
        fclose(f->out);
    wk_strset_release(&f->written);
    free(f);
}

int wk_results_file_has(const wk_results_file *f, const char *key)
{
    return f && wk_strset_has(&f->written, key);
}

int wk_results_file_write(wk_results_file *f, const char *line, size_t len)
{
    if (fwrite(line, 1, len, f->out) != len || fputc('\n', f->out) == EOF || fflush(f->out) == EOF)
        return WK_EIO;
    return 0;
}
