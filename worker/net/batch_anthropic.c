/*
 * Anthropic's Message Batches as a batch format (lanes_int.h; README
 * "Lanes"): POST /messages/batches with requests[] of {custom_id, params},
 * params being the body POST /messages would get; GET /messages/batches/{id}
 * until processing_status is "ended"; then GET .../{id}/results, a JSONL of
 * {custom_id, result: {type: succeeded|errored|expired|canceled}}; POST
 * .../{id}/cancel; GET /messages/batches?limit=&after_id= (newest first).
 *
 * A custom id must match [a-zA-Z0-9_-]{1,64}, so it is "TASK__ATTEMPT" with
 * the task escaped: a byte outside [a-zA-Z0-9_] is "-" and two hex digits
 * ("py/x" is "py-2fx"), which mock-llm decodes to find the task's
 * recordings. A task too long for 64 is "-h" and 16 hex digits of its hash
 * ("-h" is no escape, so the two forms never meet). The ids are journaled
 * with their task and attempt, and the same in every run.
 *
 * A batch carries no metadata, so a batch lost between its create and the
 * journaling of its id is found by its requests: the batches created since
 * it was journaled (its local tag ends "-t" and the time) with as many
 * requests are candidates; one still running is waited for, an ended one's
 * results are read and it is ours when their custom ids are ours.
 *
 * Reference: https://docs.anthropic.com/en/api/creating-message-batches
 */
#include "lanes_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/util.h"

#define ID_MAX 64
/* Clock skew allowed between our journal's time and the provider's created_at. */
#define SKEW_S 300

static int plain(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static char *custom_id(const char *task, int seq)
{
    char tail[16];
    snprintf(tail, sizeof tail, "__%d", seq);
    size_t room = ID_MAX - strlen(tail);
    wk_buf b;
    wk_buf_init(&b, ID_MAX + 1);
    int fits = 1;
    for (const unsigned char *p = (const unsigned char *)task; *p && fits; p++) {
        if (plain(*p))
            fits = wk_buf_append(&b, (const char *)p, 1) == 0;
        else
            fits = wk_buf_appendf(&b, "-%02x", *p) == 0;
        fits = fits && b.len <= room;
    }
    if (!fits || b.len == 0) {
        /* FNV-1a, 64 bits: collisions need a task id chosen for it. */
        uint64_t h = 1469598103934665603ULL;
        for (const unsigned char *p = (const unsigned char *)task; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
        wk_buf_release(&b);
        return wk_xasprintf("-h%016llx%s", (unsigned long long)h, tail);
    }
    wk_buf_append(&b, tail, strlen(tail));
    size_t len;
    return wk_buf_detach(&b, &len);
}

static int auth(const wk_provider *pv, char **h)
{
    int n = 0;
    h[n++] = wk_xstrdup("anthropic-version: " PROV_ANTHROPIC_VERSION);
    if (pv->key)
        h[n++] = wk_xasprintf("x-api-key: %s", pv->key);
    return n;
}

static char *create(const wk__bsub *s, const char *file_id, char **path, size_t *len)
{
    (void)file_id;
    cJSON *o = cJSON_CreateObject();
    cJSON *reqs = cJSON_AddArrayToObject(o, "requests");
    for (int i = 0; i < s->n; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "custom_id", s->custom_ids[i]);
        cJSON_AddItemToObject(r, "params", wk__breq_body(s->reqs[i]));
        cJSON_AddItemToArray(reqs, r);
    }
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    *path = wk_xstrdup("/messages/batches");
    *len = strlen(body);
    return body;
}

/*
 * The results of the batch, from its id: results_url names the same place
 * on the same host, and our key goes to no URL an answer names.
 */
static char *fetch_path(const char *id, const char *file)
{
    (void)file;
    return wk_xasprintf("/messages/batches/%s/results", id);
}

static int object(const cJSON *o, wk__bobj *out)
{
    memset(out, 0, sizeof *out);
    const char *st = wk_jstr(o, "processing_status");
    snprintf(out->status, sizeof out->status, "%s", st ? st : "");
    if (st && !strcmp(st, "ended")) {
        out->phase = WK_BS_FETCH; /* canceled and expired requests say so on their lines */
        out->files[0] = wk_xstrdup("results");
    } else {
        out->phase = WK_BS_RUNNING; /* in_progress, canceling, or a cancel's answer */
    }
    return 0;
}

/* The HTTP status POST /messages answers with an error of this type. */
static long status_of(const char *type)
{
    static const struct {
        const char *type;
        long status;
    } map[] = {
        {"invalid_request_error", 400}, {"authentication_error", 401}, {"billing_error", 402},
        {"permission_error", 403},      {"not_found_error", 404},      {"request_too_large", 413},
        {"rate_limit_error", 429},      {"timeout_error", 504},        {"overloaded_error", 529}};
    for (size_t i = 0; type && i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(type, map[i].type))
            return map[i].status;
    return 500; /* api_error, and any type not known yet */
}

static int line(const cJSON *l, wk__bout *out)
{
    memset(out, 0, sizeof *out);
    out->custom_id = wk_jstr(l, "custom_id");
    if (!out->custom_id)
        return WK_EPARSE;
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(l, "result");
    const char *type = wk_jstr(res, "type");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(res, "message");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(res, "error");
    if (type && !strcmp(type, "succeeded") && cJSON_IsObject(msg)) {
        out->status = 200;
        out->body = cJSON_PrintUnformatted(msg);
    } else if (type && !strcmp(type, "errored") && cJSON_IsObject(err)) {
        /* An ErrorResponse, as POST /messages would have answered with its status. */
        out->status = status_of(wk_jstr(cJSON_GetObjectItemCaseSensitive(err, "error"), "type"));
        out->body = cJSON_PrintUnformatted(err);
    } else {
        snprintf(out->reason, sizeof out->reason, "batch_%s",
                 type && !strcmp(type, "expired")    ? "expired"
                 : type && !strcmp(type, "canceled") ? "cancelled"
                                                     : "bad_response");
        out->msg = wk_xstrdup(type && !strcmp(type, "expired") ? "the batch expired before this "
                                                                 "request ran"
                              : type && !strcmp(type, "canceled")
                                  ? "the batch was cancelled before this request ran"
                                  : "the batch's line has no result");
    }
    return 0;
}

static char *list_path(const char *cursor)
{
    return cursor ? wk_xasprintf("/messages/batches?limit=100&after_id=%s", cursor)
                  : wk_xstrdup("/messages/batches?limit=100");
}

/* RFC 3339 (fraction and zone Z; an offset is taken as Z) as seconds, or -1. */
static long long rfc3339(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (long long)timegm(&tm);
}

/* The time a local tag was journaled ("RUN-N-tSECONDS"), or -1 (a tag of an older journal). */
static long long tag_time(const char *local)
{
    const char *t = strrchr(local, '-');
    if (!t || t[1] != 't')
        return -1;
    char *end;
    long long v = strtoll(t + 2, &end, 10);
    return *end || v <= 0 ? -1 : v;
}

static int count(const cJSON *rc)
{
    static const char *const k[] = {"processing", "succeeded", "errored", "canceled", "expired"};
    double n = 0;
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(rc, k[i]);
        n += cJSON_IsNumber(f) ? f->valuedouble : 0;
    }
    return n >= 0 && n < 1e9 ? (int)n : -1;
}

static void list(const cJSON *page, const char *run_id, const char *local, int n, wk__blist *out)
{
    (void)run_id;
    memset(out, 0, sizeof *out);
    long long since = tag_time(local);
    const cJSON *o;
    const char *last = NULL;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(page, "data"))
    {
        const char *id = wk_jstr(o, "id");
        if (!id || !wk__bid_ok(id, 0))
            continue;
        last = id;
        long long at = rfc3339(wk_jstr(o, "created_at"));
        if (since > 0 && at >= 0 && at < since - SKEW_S)
            return; /* newest first: every batch from here on is older than ours */
        if (count(cJSON_GetObjectItemCaseSensitive(o, "request_counts")) != n)
            continue;
        const char *st = wk_jstr(o, "processing_status");
        if (st && !strcmp(st, "ended")) {
            out->cands = wk_xrealloc(out->cands, (size_t)(out->ncands + 1) * sizeof *out->cands);
            out->cands[out->ncands++] = wk_xstrdup(id);
        } else {
            out->waiting = 1;
        }
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(page, "has_more")) && last)
        out->next = wk_xstrdup(last);
}

const wk__bfmt wk__bfmt_anthropic = {
    .api = "anthropic",
    .custom_id = custom_id,
    .auth = auth,
    .upload = NULL,
    .create = create,
    .created_id = wk__bcreated_id,
    .batch_path = "/messages/batches/",
    .cancel_suffix = "/cancel",
    .fetch_path = fetch_path,
    .object = object,
    .line = line,
    .list_path = list_path,
    .list = list,
};
