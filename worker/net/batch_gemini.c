/*
 * Gemini's batch mode as a batch format (lanes_int.h; README "Lanes"):
 * POST /models/{model}:batchGenerateContent with the requests inline
 * (batch.inputConfig.requests.requests[] of {request, metadata: {key}}, the
 * key being "TASK#ATTEMPT") and our local tag as batch.displayName, which
 * is how a lost batch is found again; the answer is an operation named
 * batches/{id}, polled by GET /batches/{id} until its metadata.state ends;
 * the responses come inlined in it (response.inlinedResponses), each with
 * its request's metadata. POST /batches/{id}:cancel; GET
 * /batches?pageSize=&pageToken= lists them newest first.
 *
 * Reference: https://ai.google.dev/gemini-api/docs/batch-mode
 */
#include "lanes_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define TOKEN_MAX 1024 /* a page token longer than this ends the lookup */

static int auth(const wk_provider *pv, char **h)
{
    if (!pv->key)
        return 0;
    h[0] = wk_xasprintf("x-goog-api-key: %s", pv->key);
    return 1;
}

static char *create(const wk__bsub *s, const char *file_id, char **path, size_t *len)
{
    (void)file_id;
    cJSON *o = cJSON_CreateObject();
    cJSON *batch = cJSON_AddObjectToObject(o, "batch");
    cJSON_AddStringToObject(batch, "displayName", s->local);
    cJSON *in = cJSON_AddObjectToObject(cJSON_AddObjectToObject(batch, "inputConfig"), "requests");
    cJSON *reqs = cJSON_AddArrayToObject(in, "requests");
    for (int i = 0; i < s->n; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddItemToObject(r, "request", wk__breq_body(s->reqs[i]));
        cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "metadata"), "key", s->custom_ids[i]);
        cJSON_AddItemToArray(reqs, r);
    }
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    *path = wk_xasprintf("/models/%s:batchGenerateContent", s->m->id);
    *len = strlen(body);
    return body;
}

/* The operation's name, "batches/{id}", is the batch id: the paths below take it whole. */
static char *created_id(const cJSON *o)
{
    const char *id = wk_jstr(o, "name");
    return id && !strncmp(id, "batches/", 8) && wk__bid_ok(id, 1) ? wk_xstrdup(id) : NULL;
}

static char *fetch_path(const char *id, const char *file)
{
    (void)file;
    return wk_xasprintf("/%s", id); /* unused: the results come inline */
}

static int object(const cJSON *o, wk__bobj *out)
{
    memset(out, 0, sizeof *out);
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    const char *st = wk_jstr(md, "state");
    const char *word = st && !strncmp(st, "BATCH_STATE_", 12) ? st + 12 : st ? st : "";
    /* The reason's word: "cancelled", "failed", "expired", lower case. */
    size_t i = 0;
    for (; word[i] && i + 1 < sizeof out->status; i++)
        out->status[i] = (char)(word[i] >= 'A' && word[i] <= 'Z' ? word[i] + 32 : word[i]);
    out->status[i] = '\0';
    if (!st || !strcmp(st, "BATCH_STATE_PENDING") || !strcmp(st, "BATCH_STATE_RUNNING") ||
        !strcmp(st, "BATCH_STATE_UNSPECIFIED")) {
        out->phase = WK_BS_RUNNING; /* also a cancel's answer, {} */
        return 0;
    }
    if (strcmp(st, "BATCH_STATE_SUCCEEDED") != 0) {
        out->phase = WK_BS_FAILED;
        return 0;
    }
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(o, "response");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(resp, "inlinedResponses");
    if (!w) /* the batch itself carries them too */
        w = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(md, "output"),
                                             "inlinedResponses");
    out->inline_results = cJSON_GetObjectItemCaseSensitive(w, "inlinedResponses");
    out->phase = WK_BS_INLINE;
    return 0;
}

/* The HTTP status of a google.rpc.Status code (https://google.aip.dev/193). */
static long http_of(double code)
{
    if (!isfinite(code) || code != floor(code))
        return 500;
    if (code >= 100 && code <= 599)
        return (long)code; /* some answers carry the HTTP status itself */
    static const long map[17] = {200, 499, 500, 400, 504, 404, 409, 403, 429,
                                 400, 409, 400, 501, 500, 503, 500, 401};
    return code >= 0 && code <= 16 ? map[(int)code] : 500;
}

static int line(const cJSON *l, wk__bout *out)
{
    memset(out, 0, sizeof *out);
    out->custom_id = wk_jstr(cJSON_GetObjectItemCaseSensitive(l, "metadata"), "key");
    if (!out->custom_id)
        return WK_EPARSE;
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(l, "response");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(l, "error");
    if (cJSON_IsObject(resp)) {
        out->status = 200;
        out->body = cJSON_PrintUnformatted(resp);
    } else if (cJSON_IsObject(err)) {
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(err, "code");
        out->status = http_of(cJSON_IsNumber(code) ? code->valuedouble : 13);
        /* As :generateContent answers an error: {"error": {code, message}}. */
        cJSON *wrap = cJSON_CreateObject();
        cJSON_AddItemToObject(wrap, "error", cJSON_Duplicate(err, 1));
        out->body = cJSON_PrintUnformatted(wrap);
        cJSON_Delete(wrap);
    } else {
        snprintf(out->reason, sizeof out->reason, "batch_bad_response");
        out->msg = wk_xstrdup("the batch's response has neither a response nor an error");
    }
    return 0;
}

/* A page token goes into the query percent-encoded: it is the provider's opaque text. */
static char *list_path(const char *cursor)
{
    if (!cursor)
        return wk_xstrdup("/batches?pageSize=100");
    wk_buf b;
    wk_buf_init(&b, 4 * TOKEN_MAX + 64);
    wk_buf_appendf(&b, "/batches?pageSize=100&pageToken=");
    for (const unsigned char *p = (const unsigned char *)cursor; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~')
            wk_buf_append(&b, (const char *)p, 1);
        else
            wk_buf_appendf(&b, "%%%02X", *p);
    }
    size_t len;
    return wk_buf_detach(&b, &len);
}

static void list(const cJSON *page, const char *run_id, const char *local, int n, wk__blist *out)
{
    (void)run_id; /* the local tag starts with it */
    (void)n;
    memset(out, 0, sizeof *out);
    const cJSON *o;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(page, "operations"))
    {
        const char *dn = wk_jstr(cJSON_GetObjectItemCaseSensitive(o, "metadata"), "displayName");
        if (dn && !strcmp(dn, local)) {
            char *id = created_id(o);
            if (id) {
                out->found = id;
                return;
            }
        }
    }
    const char *next = wk_jstr(page, "nextPageToken");
    if (next && *next && strlen(next) <= TOKEN_MAX)
        out->next = wk_xstrdup(next);
}

const wk__bfmt wk__bfmt_gemini = {
    .api = "gemini",
    .custom_id = wk__bcustom_id,
    .auth = auth,
    .upload = NULL,
    .create = create,
    .created_id = created_id,
    .batch_path = "/", /* the id is "batches/{id}" */
    .cancel_suffix = ":cancel",
    .fetch_path = fetch_path,
    .object = object,
    .line = line,
    .list_path = list_path,
    .list = list,
};
