/*
 * The recordings table (see recordings.h): the file is read once, sorted by
 * (task, model, run) and grouped, so a call finds its group with a binary
 * search and takes the group's runs in turn. Lines are checked strictly: a
 * typo in a fixture should fail loudly, with its line and column.
 */
#include "recordings.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "util.h"

/* 4,920 real answers take about 5 MiB; anything near this is a mistake. */
#define RECS_FILE_CAP ((size_t)1 << 30)

typedef struct group {
    size_t first; /* index into all */
    size_t count;
    size_t calls; /* calls served so far */
} group;

struct wk_recs {
    wk_rec *all; /* sorted by task, model, run */
    size_t n;
    group *groups; /* one per (task, model), in the same order */
    size_t ngroups;
};

static int cmp_pair(const char *task_a, const char *model_a, const char *task_b,
                    const char *model_b)
{
    int c = strcmp(task_a, task_b);
    return c ? c : strcmp(model_a, model_b);
}

static int cmp_rec(const void *pa, const void *pb)
{
    const wk_rec *a = pa, *b = pb;
    int c = cmp_pair(a->task, a->model, b->task, b->model);
    if (c)
        return c;
    return (a->run > b->run) - (a->run < b->run);
}

static void rec_clear(wk_rec *r)
{
    free(r->task);
    free(r->model);
    free(r->answer);
    free(r->finish_reason);
    free(r->logprobs);
    free(r->embedding);
    memset(r, 0, sizeof *r);
}

/* A JSON number that is a whole number in [min, 2^53], into *out. */
static int get_whole(const cJSON *item, long min, long *out)
{
    if (!cJSON_IsNumber(item))
        return WK_EINVAL;
    double d = item->valuedouble;
    if (d != floor(d) || d < (double)min || d > 9007199254740992.0)
        return WK_EINVAL;
    *out = (long)d;
    return 0;
}

/* Parses one non-blank line into *rec; on failure says FILE:LINE: why. */
static int parse_line(const char *path, int lineno, const char *line, size_t len, wk_rec *rec,
                      char *err, size_t errlen)
{
    int rc = WK_EPARSE;
    const char *why = NULL;
    const char *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    rec->prompt_tokens = rec->completion_tokens = -1;
    rec->cost_usd = rec->token_prob = -1;
    if (!obj) {
        /* cJSON reports where it stopped; a column helps find the typo. */
        const char *at = cJSON_GetErrorPtr();
        long col = (at && at >= line && at <= line + len) ? (long)(at - line) + 1 : 1;
        wk_errf(WK_EPARSE, err, errlen, "%s:%d:%ld: not valid JSON", path, lineno, col);
        goto cleanup;
    }
    for (const char *p = end; p < line + len; p++)
        if (*p != ' ' && *p != '\t' && *p != '\r') {
            wk_errf(WK_EPARSE, err, errlen, "%s:%d:%ld: text after the JSON object", path, lineno,
                    (long)(p - line) + 1);
            goto cleanup;
        }
    if (!cJSON_IsObject(obj)) {
        why = "a line must be a JSON object";
        goto cleanup;
    }
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(obj, "task");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(obj, "model");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(obj, "run");
    const cJSON *answer = cJSON_GetObjectItemCaseSensitive(obj, "answer");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(obj, "usage");
    const cJSON *finish = cJSON_GetObjectItemCaseSensitive(obj, "finish_reason");
    /* Task ids are strings in the task files; a bare integer is accepted too. */
    long task_num;
    if (cJSON_IsString(task))
        rec->task = wk_xstrdup(task->valuestring);
    else if (get_whole(task, LONG_MIN, &task_num) == 0)
        rec->task = wk_xasprintf("%ld", task_num);
    else {
        why = "\"task\" must be a string (or an integer)";
        goto cleanup;
    }
    if (!cJSON_IsString(model) || !model->valuestring[0]) {
        why = "\"model\" must be a non-empty string";
        goto cleanup;
    }
    rec->model = wk_xstrdup(model->valuestring);
    if (get_whole(run, 1, &rec->run)) {
        why = "\"run\" must be an integer >= 1";
        goto cleanup;
    }
    /* An embedding's recording (README "Similar tasks ...") carries a vector, not an answer. */
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(obj, "embedding");
    if (emb) {
        int n = cJSON_GetArraySize(emb), ok = cJSON_IsArray(emb) && n > 0 && n <= WK_REC_DIM_MAX;
        for (const cJSON *x = ok ? emb->child : NULL; x; x = x->next)
            ok = ok && cJSON_IsNumber(x);
        if (!ok) {
            why = "\"embedding\" must be an array of 1 to 8192 numbers";
            goto cleanup;
        }
        rec->embedding = wk_xmalloc((size_t)n * sizeof *rec->embedding);
        int k = 0;
        for (const cJSON *x = emb->child; x && k < n; x = x->next)
            rec->embedding[k++] = (float)x->valuedouble;
        rec->embedding_dim = k;
    }
    if (!cJSON_IsString(answer) && !(emb && !answer)) {
        why = "\"answer\" must be a string";
        goto cleanup;
    }
    rec->answer = wk_xstrdup(cJSON_IsString(answer) ? answer->valuestring : "");
    if (usage) {
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens");
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
        if (!cJSON_IsObject(usage) || (pt && get_whole(pt, 0, &rec->prompt_tokens)) ||
            (ct && get_whole(ct, 0, &rec->completion_tokens))) {
            why = "\"usage\" must be an object whose prompt_tokens and completion_tokens are "
                  "whole numbers >= 0";
            goto cleanup;
        }
    }
    if (finish && !cJSON_IsString(finish)) {
        why = "\"finish_reason\" must be a string";
        goto cleanup;
    }
    rec->finish_reason = wk_xstrdup(finish ? finish->valuestring : "stop");
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(obj, "cost_usd");
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(obj, "logprobs");
    const cJSON *tp = cJSON_GetObjectItemCaseSensitive(obj, "token_prob");
    if (cost && (!cJSON_IsNumber(cost) || cost->valuedouble < 0)) {
        why = "\"cost_usd\" must be a number >= 0";
        goto cleanup;
    }
    rec->cost_usd = cost ? cost->valuedouble : -1;
    if (tp && (!cJSON_IsNumber(tp) || tp->valuedouble <= 0 || tp->valuedouble > 1)) {
        why = "\"token_prob\" must be a number in (0, 1]";
        goto cleanup;
    }
    rec->token_prob = tp ? tp->valuedouble : -1;
    if (lp) {
        int ok = cJSON_IsArray(lp);
        const cJSON *t;
        cJSON_ArrayForEach(t, lp)
        {
            ok = ok && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(t, "token")) &&
                 cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(t, "logprob"));
        }
        if (!ok) {
            why = "\"logprobs\" must be an array of {\"token\": string, \"logprob\": number}";
            goto cleanup;
        }
        rec->logprobs = cJSON_PrintUnformatted(lp);
    }
    rec->line = lineno;
    rc = 0;
cleanup:
    if (why)
        wk_errf(WK_EPARSE, err, errlen, "%s:%d: %s", path, lineno, why);
    if (rc)
        rec_clear(rec);
    cJSON_Delete(obj);
    return rc;
}

typedef struct load_ctx {
    wk_recs *recs;
    size_t alloc;
    size_t bytes; /* read so far, against RECS_FILE_CAP */
    const char *path;
    char *err;
    size_t errlen;
} load_ctx;

static int load_line(void *arg, const char *line, size_t n, int cut, long lineno)
{
    load_ctx *c = arg;
    wk_recs *recs = c->recs;
    c->bytes += n + 1;
    if (c->bytes > RECS_FILE_CAP) {
        wk_errf(WK_EPARSE, c->err, c->errlen, "%s: larger than %zu MiB", c->path,
                RECS_FILE_CAP >> 20);
        return WK_ETOOBIG;
    }
    if (cut)
        return wk_errf(WK_EPARSE, c->err, c->errlen, "%s:%ld: line longer than %u bytes", c->path,
                       lineno, WK_JSONL_LINE_CAP);
    if (wk_jsonl_blank(line, n))
        return 0; /* blank lines separate groups of runs for readability */
    if (recs->n == c->alloc) {
        c->alloc = c->alloc ? c->alloc * 2 : 64;
        recs->all = wk_xrealloc(recs->all, c->alloc * sizeof *recs->all);
    }
    memset(&recs->all[recs->n], 0, sizeof recs->all[0]);
    int rc = parse_line(c->path, (int)lineno, line, n, &recs->all[recs->n], c->err, c->errlen);
    if (rc)
        return rc;
    recs->n++;
    return 0;
}

int wk_recs_load(const char *path, wk_recs **out, char *err, size_t errlen)
{
    wk_recs *recs = wk_xcalloc(1, sizeof *recs);
    load_ctx c = {recs, 0, 0, path, err, errlen};
    char sub[256];
    int rc = wk_jsonl_lines(path, WK_JSONL_LINE_CAP, load_line, &c, sub, sizeof sub);
    if (rc == WK_EIO) {
        wk_errf(WK_EPARSE, err, errlen, "%s: cannot read it", path);
        goto cleanup;
    }
    if (rc)
        goto cleanup;
    if (recs->n == 0) {
        rc = wk_errf(WK_EPARSE, err, errlen, "%s: no recordings in the file", path);
        goto cleanup;
    }
    qsort(recs->all, recs->n, sizeof *recs->all, cmp_rec);
    recs->groups = wk_xcalloc(recs->n, sizeof *recs->groups);
    for (size_t i = 0; i < recs->n; i++) {
        const wk_rec *r = &recs->all[i];
        group *g = recs->ngroups ? &recs->groups[recs->ngroups - 1] : NULL;
        const wk_rec *first = g ? &recs->all[g->first] : NULL;
        if (g && cmp_pair(first->task, first->model, r->task, r->model) == 0) {
            /* Two lines with the same run would make the order ambiguous. */
            if (recs->all[i - 1].run == r->run) {
                rc = wk_errf(WK_EPARSE, err, errlen,
                             "%s:%d: run %ld of task \"%s\", model \"%s\" is also on line %d", path,
                             r->line, r->run, r->task, r->model, recs->all[i - 1].line);
                goto cleanup;
            }
            g->count++;
            continue;
        }
        recs->groups[recs->ngroups].first = i;
        recs->groups[recs->ngroups].count = 1;
        recs->ngroups++;
    }
    *out = recs;
    recs = NULL;
cleanup:
    wk_recs_free(recs);
    return rc;
}

void wk_recs_free(wk_recs *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        rec_clear(&r->all[i]);
    free(r->all);
    free(r->groups);
    free(r);
}

/* The group of (task, model), by binary search; NULL when there is none. */
static group *find_group(wk_recs *r, const char *task, const char *model)
{
    size_t lo = 0, hi = r->ngroups;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        group *g = &r->groups[mid];
        const wk_rec *first = &r->all[g->first];
        int c = cmp_pair(task, model, first->task, first->model);
        if (c == 0)
            return g;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const wk_rec *wk_recs_peek(wk_recs *r, const char *task, const char *model, int start)
{
    group *g = find_group(r, task, model);
    if (!g)
        return NULL;
    long idx = ((long)start + (long)(g->calls % g->count)) % (long)g->count;
    if (idx < 0)
        idx += (long)g->count;
    return &r->all[g->first + (size_t)idx];
}

const wk_rec *wk_recs_next(wk_recs *r, const char *task, const char *model, int start)
{
    const wk_rec *pick = wk_recs_peek(r, task, model, start);
    if (pick)
        find_group(r, task, model)->calls++;
    return pick;
}

void wk_recs_rewind(wk_recs *r)
{
    for (size_t i = 0; i < r->ngroups; i++)
        r->groups[i].calls = 0;
}

cJSON *wk_rec_logprobs(const wk_rec *r)
{
    if (r->logprobs) {
        cJSON *lp = cJSON_Parse(r->logprobs);
        if (lp)
            return lp;
    }
    cJSON *out = cJSON_CreateArray();
    double word_lp = r->token_prob > 0 ? log(r->token_prob) : 0;
    const char *s = r->answer ? r->answer : "";
    while (*s) {
        size_t n = 1;
        int word = isalnum((unsigned char)*s) != 0;
        if (word)
            while (isalnum((unsigned char)s[n]))
                n++;
        else /* keep a UTF-8 sequence whole: a token is text */
            while ((unsigned char)*s >= 0x80 && ((unsigned char)s[n] & 0xc0) == 0x80)
                n++;
        char *tok = wk_xstrndup(s, n);
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "token", tok);
        cJSON_AddNumberToObject(t, "logprob", word ? word_lp : 0);
        cJSON_AddItemToArray(out, t);
        free(tok);
        s += n;
    }
    return out;
}
