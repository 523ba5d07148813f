/*
 * The recordings table (see recordings.h): an open-addressing hash of
 * (task, model) pairs, each holding its runs sorted by run number.
 */
#include "recordings.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define RECS_LINE_CAP (16u << 20)
#define RECS_FILE_CAP (1u << 30)

typedef struct pair {
    char *key; /* task "\x1f" model */
    wk_rec *recs;
    int n;
    int calls;
} pair;

struct wk_recs {
    pair *slots;
    size_t cap, len;
};

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static pair *lookup(wk_recs *r, const char *key, int create)
{
    if (create && (r->len + 1) * 2 > r->cap) {
        size_t ncap = r->cap ? r->cap * 2 : 256;
        pair *n = wk_xcalloc(ncap, sizeof(pair));
        for (size_t i = 0; i < r->cap; i++) {
            if (!r->slots[i].key)
                continue;
            size_t k = hash_key(r->slots[i].key) & (ncap - 1);
            while (n[k].key)
                k = (k + 1) & (ncap - 1);
            n[k] = r->slots[i];
        }
        free(r->slots);
        r->slots = n;
        r->cap = ncap;
    }
    if (!r->cap)
        return NULL;
    size_t k = hash_key(key) & (r->cap - 1);
    while (r->slots[k].key) {
        if (strcmp(r->slots[k].key, key) == 0)
            return &r->slots[k];
        k = (k + 1) & (r->cap - 1);
    }
    if (!create)
        return NULL;
    r->slots[k].key = wk_xstrdup(key);
    r->len++;
    return &r->slots[k];
}

static int cmp_run(const void *a, const void *b)
{
    const wk_rec *x = a, *y = b;
    return (x->run > y->run) - (x->run < y->run);
}

static long usage_num(const cJSON *usage, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(usage, name);
    return cJSON_IsNumber(f) && f->valuedouble >= 0 ? (long)f->valuedouble : -1;
}

static char *task_key(const cJSON *t)
{
    if (cJSON_IsString(t))
        return wk_xstrdup(t->valuestring);
    if (cJSON_IsNumber(t))
        return wk_xasprintf("%.17g", t->valuedouble);
    return NULL;
}

int wk_recs_load(const char *path, wk_recs **out, char *err, size_t errlen)
{
    int rc = 0;
    char *text = NULL;
    size_t len = 0;
    wk_recs *r = wk_xcalloc(1, sizeof *r);
    rc = wk_read_file(path, RECS_FILE_CAP, &text, &len);
    if (rc) {
        snprintf(err, errlen, "%s: cannot read (%s)", path, wk_strerror(rc));
        goto cleanup;
    }
    long lineno = 0;
    for (char *p = text; p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(text + len - p);
        lineno++;
        char *line = p;
        p += n + 1;
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r'))
            k++;
        if (k == n)
            continue;
        cJSON *j = cJSON_ParseWithLength(line, n);
        const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
        const cJSON *answer = cJSON_GetObjectItemCaseSensitive(j, "answer");
        const cJSON *run = cJSON_GetObjectItemCaseSensitive(j, "run");
        char *task = task_key(cJSON_GetObjectItemCaseSensitive(j, "task"));
        if (!j || !task || !cJSON_IsString(model) || !cJSON_IsString(answer) ||
            (run && !cJSON_IsNumber(run))) {
            snprintf(err, errlen,
                     "%s:%ld: not a recording (needs task, model, answer strings and a "
                     "numeric run)",
                     path, lineno);
            free(task);
            cJSON_Delete(j);
            rc = WK_EPARSE;
            goto cleanup;
        }
        char *key = wk_xasprintf("%s\x1f%s", task, model->valuestring);
        pair *pr = lookup(r, key, 1);
        free(key);
        free(task);
        pr->recs = wk_xrealloc(pr->recs, (size_t)(pr->n + 1) * sizeof(wk_rec));
        wk_rec *rec = &pr->recs[pr->n++];
        rec->run = run ? (int)run->valuedouble : pr->n;
        rec->answer = wk_xstrdup(answer->valuestring);
        const cJSON *fr = cJSON_GetObjectItemCaseSensitive(j, "finish_reason");
        rec->finish_reason = cJSON_IsString(fr) ? wk_xstrdup(fr->valuestring) : NULL;
        const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
        rec->prompt_tokens = usage_num(usage, "prompt_tokens");
        rec->completion_tokens = usage_num(usage, "completion_tokens");
        cJSON_Delete(j);
    }
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i].key)
            qsort(r->slots[i].recs, (size_t)r->slots[i].n, sizeof(wk_rec), cmp_run);
    *out = r;
    r = NULL;
cleanup:
    free(text);
    wk_recs_free(r);
    return rc;
}

void wk_recs_free(wk_recs *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->cap; i++) {
        pair *p = &r->slots[i];
        if (!p->key)
            continue;
        for (int k = 0; k < p->n; k++) {
            free(p->recs[k].answer);
            free(p->recs[k].finish_reason);
        }
        free(p->recs);
        free(p->key);
    }
    free(r->slots);
    free(r);
}

const wk_rec *wk_recs_next(wk_recs *r, const char *task, const char *model, int start)
{
    char *key = wk_xasprintf("%s\x1f%s", task, model);
    pair *p = lookup(r, key, 0);
    free(key);
    if (!p || p->n == 0)
        return NULL;
    int i = p->calls++;
    long idx = ((long)start + i) % p->n;
    if (idx < 0)
        idx += p->n;
    return &p->recs[idx];
}

void wk_recs_rewind(wk_recs *r)
{
    for (size_t i = 0; i < r->cap; i++)
        r->slots[i].calls = 0;
}
