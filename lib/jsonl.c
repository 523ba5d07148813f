/*
 * The one line reader (see jsonl.h).
 */
#include "jsonl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes read from a file at a time; lines are assembled across reads. */
#define READ_CHUNK 65536

void wk_lines_init(wk_lines *l, size_t cap)
{
    memset(l, 0, sizeof *l);
    wk_buf_init(&l->line, cap ? cap : WK_JSONL_LINE_CAP);
}

void wk_lines_release(wk_lines *l)
{
    wk_buf_release(&l->line);
}

/* Keeps what fits under the cap; the rest of an over-long line is dropped. */
static void take(wk_lines *l, const char *p, size_t n)
{
    if (l->cut)
        return;
    size_t room = l->line.cap - l->line.len;
    if (n > room) {
        wk_buf_append(&l->line, p, room);
        l->cut = 1;
    } else {
        wk_buf_append(&l->line, p, n);
    }
}

static int emit(wk_lines *l, wk_line_fn each, void *arg)
{
    l->lineno++;
    int rc = each(arg, l->line.buf ? l->line.buf : "", l->line.len, l->cut, l->lineno);
    wk_buf_reset(&l->line);
    l->cut = 0;
    return rc;
}

int wk_lines_feed(wk_lines *l, const char *p, size_t n, wk_line_fn each, void *arg)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        take(l, p, k);
        if (!nl)
            return 0;
        int rc = emit(l, each, arg);
        if (rc)
            return rc;
        p = nl + 1;
        n -= k + 1;
    }
    return 0;
}

int wk_lines_finish(wk_lines *l, wk_line_fn each, void *arg)
{
    if (l->line.len == 0 && !l->cut)
        return 0;
    return emit(l, each, arg);
}

int wk_jsonl_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", s[i]) || s[i] == '\0')
            return 0;
    return 1;
}

int wk_jsonl_read(FILE *f, size_t cap, wk_line_fn each, void *arg)
{
    int rc = 0;
    wk_lines l;
    wk_lines_init(&l, cap);
    char *chunk = wk_xmalloc(READ_CHUNK);
    size_t n;
    while ((n = fread(chunk, 1, READ_CHUNK, f)) > 0) {
        rc = wk_lines_feed(&l, chunk, n, each, arg);
        if (rc)
            goto cleanup;
    }
    rc = ferror(f) ? WK_EIO : wk_lines_finish(&l, each, arg);
cleanup:
    free(chunk);
    wk_lines_release(&l);
    return rc;
}

int wk_jsonl_lines(const char *path, size_t cap, wk_line_fn each, void *arg, char *err,
                   size_t errlen)
{
    int std = strcmp(path, "-") == 0;
    FILE *f = std ? stdin : fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return WK_EIO;
    }
    int rc = wk_jsonl_read(f, cap, each, arg);
    /* A read error, not one of each's own: each's WK_EIO comes with its message. */
    if (rc == WK_EIO && ferror(f))
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    if (!std)
        fclose(f);
    return rc;
}

/* Lines skipped and said on stderr per file; past it, one count at the end. */
#define SKIPS_SAID 10

typedef struct each_ctx {
    int (*each)(void *arg, const cJSON *obj, long lineno);
    void *arg;
    int skip_bad;
    const char *path;
    char *err;
    size_t errlen;
    long skipped;
} each_ctx;

/*
 * A line that cannot be read is skipped and said, never the end of the file:
 * one oversize or garbled result must not hide the other ten thousand.
 */
static void skip(each_ctx *c, long lineno, const char *why)
{
    if (c->skipped == 0)
        snprintf(c->err, c->errlen, "%s:%ld: %s (skipped)", c->path, lineno, why);
    if (c->skipped++ < SKIPS_SAID)
        fprintf(stderr, "cascade: %s:%ld: %s; line skipped\n", c->path, lineno, why);
}

static int each_object(void *arg, const char *line, size_t len, int cut, long lineno)
{
    each_ctx *c = arg;
    if (cut) {
        char why[64];
        snprintf(why, sizeof why, "line longer than %u bytes", WK_JSONL_LINE_CAP);
        skip(c, lineno, why);
        return 0;
    }
    if (wk_jsonl_blank(line, len))
        return 0;
    cJSON *j = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        if (!c->skip_bad)
            skip(c, lineno, "not a JSON object");
        return 0;
    }
    int rc = c->each(c->arg, j, lineno);
    cJSON_Delete(j);
    return rc;
}

int wk_jsonl_each(const char *path, int (*each)(void *arg, const cJSON *obj, long lineno),
                  void *arg, int skip_bad, char *err, size_t errlen)
{
    each_ctx c = {each, arg, skip_bad, path, err, errlen, 0};
    if (errlen)
        err[0] = '\0';
    int rc = wk_jsonl_lines(path, WK_JSONL_LINE_CAP, each_object, &c, err, errlen);
    if (c.skipped > SKIPS_SAID)
        fprintf(stderr, "cascade: %s: %ld lines skipped in all\n", path, c.skipped);
    return rc;
}
