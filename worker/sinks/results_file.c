/*
 * The results file sink (see results_file.h).
 */
#include "results_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/util.h"
#include "worker/rkey.h"

struct wk_results_file {
    FILE *out;
    int own;
    wk_strset written; /* result keys already in the file (resume) */
};

/* Writes the kept lines to a file beside path and renames it over path. */
static int rewrite(const char *path, const wk_buf *kept, char *err, size_t errlen)
{
    char *tmp = wk_xasprintf("%s.rewrite.%ld", path, (long)getpid());
    int rc = WK_EIO;
    FILE *f = fopen(tmp, "w");
    if (!f || fwrite(kept->buf ? kept->buf : "", 1, kept->len, f) != kept->len || fflush(f) != 0 ||
        fsync(fileno(f)) != 0) {
        snprintf(err, errlen, "cannot rewrite the results file %s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        f = NULL;
        snprintf(err, errlen, "cannot rewrite the results file %s: %s", path, strerror(errno));
        goto cleanup;
    }
    f = NULL;
    rc = 0;
cleanup:
    if (f)
        fclose(f);
    if (rc)
        unlink(tmp);
    free(tmp);
    return rc;
}

/*
 * Trims a line cut by a crash and reads the keys of the whole lines. An
 * `error` result a rerun takes up again (rkey.h: the journal forgets it) is
 * taken out of the file, so the task's new result is its only line.
 */
static int load_written(wk_results_file *f, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = 0;
    if (wk_read_file(path, (size_t)1 << 34, &text, &len) != 0)
        return 0; /* no file yet */
    size_t keep = len;
    while (keep > 0 && text[keep - 1] != '\n')
        keep--;
    wk_buf kept;
    wk_buf_init(&kept, (size_t)1 << 34);
    long dropped = 0;
    size_t start = 0;
    while (start < keep) {
        char *nl = memchr(text + start, '\n', keep - start);
        size_t n = (size_t)(nl - (text + start));
        cJSON *j = cJSON_ParseWithLength(text + start, n);
        if (j && wk_result_retryable(j)) {
            dropped++;
        } else {
            char *key = wk_rkey_of_result(j);
            if (key)
                wk_strset_add(&f->written, key);
            free(key);
            wk_buf_append(&kept, text + start, n + 1);
        }
        cJSON_Delete(j);
        start += n + 1;
    }
    if (dropped) {
        rc = rewrite(path, &kept, err, errlen);
        if (rc == 0)
            fprintf(stderr,
                    "cascade: %ld tasks ended with error after transient call failures: "
                    "running them again\n",
                    dropped);
    } else if (keep < len && truncate(path, (off_t)keep) != 0) {
        snprintf(err, errlen, "cannot trim the cut last line of %s: %s", path, strerror(errno));
        rc = WK_EIO;
    }
    wk_buf_release(&kept);
    free(text);
    return rc;
}

int wk_results_file_open(const char *path, int resume, wk_results_file **out, char *err,
                         size_t errlen)
{
    wk_results_file *f = wk_xcalloc(1, sizeof *f);
    int rc = WK_EIO;
    int fd = -1;
    if (!path || strcmp(path, "-") == 0) {
        f->out = stdout;
    } else {
        if (resume && load_written(f, path, err, errlen) != 0)
            goto cleanup;
        /* Not O_TRUNC: the file is emptied only once we hold it. */
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            snprintf(err, errlen, "cannot open results file %s: %s", path, strerror(errno));
            goto cleanup;
        }
        struct stat sb;
        if (fstat(fd, &sb) != 0) {
            snprintf(err, errlen, "cannot stat results file %s: %s", path, strerror(errno));
            goto cleanup;
        }
        /*
         * Two runs appending to one file would both run every task and pay twice.
         * A device or pipe (replay's /dev/null for plans whose lines nobody keeps)
         * keeps nothing to resume from, so it is neither locked nor emptied: the
         * lock is on the inode, and every run on the machine shares /dev/null's.
         */
        if (S_ISREG(sb.st_mode) && flock(fd, LOCK_EX | LOCK_NB) != 0) {
            snprintf(err, errlen,
                     errno == EWOULDBLOCK
                         ? "results file %s is in use by another cascade run; wait for it "
                           "to finish or write elsewhere"
                         : "cannot lock results file %s: %s",
                     path, strerror(errno));
            goto cleanup;
        }
        if (!resume && S_ISREG(sb.st_mode) && ftruncate(fd, 0) != 0) {
            snprintf(err, errlen, "cannot empty results file %s: %s", path, strerror(errno));
            goto cleanup;
        }
        f->out = fdopen(fd, "a");
        if (!f->out) {
            snprintf(err, errlen, "cannot open results file %s: %s", path, strerror(errno));
            goto cleanup;
        }
        fd = -1; /* f->out owns it */
        f->own = 1;
    }
    *out = f;
    f = NULL;
    rc = 0;
cleanup:
    if (fd >= 0)
        close(fd);
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

void wk_results_cap_answer(cJSON *result)
{
    cJSON *ans = cJSON_GetObjectItemCaseSensitive(result, "answer");
    if (!cJSON_IsString(ans))
        return;
    size_t n = strlen(ans->valuestring);
    if (n <= WK_RESULT_ANSWER_CAP)
        return;
    size_t cut = WK_RESULT_ANSWER_CAP;
    while (cut > 0 && ((unsigned char)ans->valuestring[cut] & 0xC0) == 0x80)
        cut--;
    char *head = wk_xstrndup(ans->valuestring, cut);
    cJSON_ReplaceItemInObjectCaseSensitive(result, "answer", cJSON_CreateString(head));
    free(head);
    cJSON_AddBoolToObject(result, "answer_truncated", 1);
    cJSON_AddNumberToObject(result, "answer_bytes", (double)n);
}
