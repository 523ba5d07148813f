/*
 * OpenAI's Batch API as a batch format (lanes_int.h; README "Lanes"):
 * POST /files (purpose=batch, a JSONL of /v1/chat/completions requests
 * whose custom_id is "TASK#ATTEMPT"), POST /batches (completion_window 24h,
 * metadata {"cascade_run": RUN, "cascade_batch": LOCAL}, which is how a
 * lost batch is found again), GET /batches/{id}, then GET
 * /files/{id}/content for the output and the error file.
 *
 * Reference: https://platform.openai.com/docs/api-reference/batch
 */
#include "lanes_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

static int auth(const wk_provider *pv, char **h)
{
    if (!pv->key)
        return 0;
    h[0] = wk_xasprintf("Authorization: Bearer %s", pv->key);
    return 1;
}

static char *upload(const wk__bsub *s, size_t *len, const char **path, char *ctype, size_t ctcap)
{
    static const char bound[] = "cascade-batch-5f1d0c9a";
    wk_buf b;
    wk_buf_init(&b, SIZE_MAX / 2);
    wk_buf_appendf(&b,
                   "--%s\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                   "--%s\r\nContent-Disposition: form-data; name=\"file\"; "
                   "filename=\"%s.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n",
                   bound, bound, s->local);
    for (int i = 0; i < s->n; i++) {
        cJSON *line = cJSON_CreateObject();
        cJSON_AddStringToObject(line, "custom_id", s->custom_ids[i]);
        cJSON_AddStringToObject(line, "method", "POST");
        cJSON_AddStringToObject(line, "url", "/v1/chat/completions");
        cJSON_AddItemToObject(line, "body", wk__breq_body(s->reqs[i]));
        char *t = cJSON_PrintUnformatted(line);
        wk_buf_append(&b, t, strlen(t));
        wk_buf_append(&b, "\n", 1);
        free(t);
        cJSON_Delete(line);
    }
    wk_buf_appendf(&b, "\r\n--%s--\r\n", bound);
    snprintf(ctype, ctcap, "multipart/form-data; boundary=%s", bound);
    *path = "/files";
    return wk_buf_detach(&b, len);
}

static char *create(const wk__bsub *s, const char *file_id, char **path, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "input_file_id", file_id);
    cJSON_AddStringToObject(o, "endpoint", "/v1/chat/completions");
    cJSON_AddStringToObject(o, "completion_window", "24h");
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    cJSON_AddStringToObject(md, "cascade_run", s->run_id);
    cJSON_AddStringToObject(md, "cascade_batch", s->local);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    *path = wk_xstrdup("/batches");
    *len = strlen(body);
    return body;
}

static char *fetch_path(const char *id, const char *file)
{
    (void)id;
    return wk_xasprintf("/files/%s/content", file);
}

static int object(const cJSON *o, wk__bobj *out)
{
    memset(out, 0, sizeof *out);
    const char *status = wk_jstr(o, "status");
    snprintf(out->status, sizeof out->status, "%s", status ? status : "");
    const char *f[2] = {wk_jstr(o, "output_file_id"), wk_jstr(o, "error_file_id")};
    for (int i = 0; i < 2; i++)
        if (f[i] && wk__bid_ok(f[i], 0))
            out->files[i] = wk_xstrdup(f[i]);
    if (!status || !strcmp(status, "validating") || !strcmp(status, "in_progress") ||
        !strcmp(status, "finalizing") || !strcmp(status, "cancelling"))
        out->phase = WK_BS_RUNNING;
    else if (strcmp(status, "completed") != 0 && !out->files[0] && !out->files[1])
        out->phase = WK_BS_FAILED; /* failed, expired or cancelled with nothing done */
    else
        out->phase = WK_BS_FETCH;
    return 0;
}

static int line(const cJSON *l, wk__bout *out)
{
    memset(out, 0, sizeof *out);
    out->custom_id = wk_jstr(l, "custom_id");
    if (!out->custom_id)
        return WK_EPARSE;
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(l, "response");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(l, "error");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(resp, "status_code");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(resp, "body");
    if (cJSON_IsNumber(sc) && body) {
        /* Checked before the cast: a huge or non-finite double as a long is undefined. */
        double d = sc->valuedouble;
        if (!isfinite(d) || d < 100 || d > 599 || d != floor(d)) {
            snprintf(out->reason, sizeof out->reason, "batch_bad_response");
            out->msg = wk_xstrdup("the batch's line has no HTTP status from 100 to 599");
            return 0;
        }
        out->status = (long)d;
        out->body = cJSON_PrintUnformatted(body);
        return 0;
    }
    const char *code = wk_jstr(err, "code");
    const char *msg = wk_jstr(err, "message");
    /* OpenAI's codes for these already say batch_ (batch_expired, batch_cancelled). */
    snprintf(out->reason, sizeof out->reason, "%s%s",
             code && !strncmp(code, "batch_", 6) ? "" : "batch_", code ? code : "error");
    out->msg = wk_escape_ctl(msg ? msg : "no response", strlen(msg ? msg : "no response"), 300);
    return 0;
}

static char *list_path(const char *cursor)
{
    return cursor ? wk_xasprintf("/batches?limit=100&after=%s", cursor)
                  : wk_xstrdup("/batches?limit=100");
}

/* Newest first; ours carries both tags in its metadata. */
static void list(const cJSON *page, const char *run_id, const char *local, int n, wk__blist *out)
{
    (void)n;
    memset(out, 0, sizeof *out);
    const cJSON *o;
    const char *last = NULL;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(page, "data"))
    {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        const char *run = wk_jstr(md, "cascade_run"), *loc = wk_jstr(md, "cascade_batch");
        const char *id = wk_jstr(o, "id");
        if (id && run && loc && !strcmp(run, run_id) && !strcmp(loc, local) && wk__bid_ok(id, 0)) {
            out->found = wk_xstrdup(id);
            return;
        }
        if (id)
            last = id;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(page, "has_more")) && last &&
        wk__bid_ok(last, 0))
        out->next = wk_xstrdup(last);
}

const wk__bfmt wk__bfmt_openai = {
    .api = "openai",
    .custom_id = wk__bcustom_id,
    .auth = auth,
    .upload = upload,
    .create = create,
    .created_id = wk__bcreated_id,
    .batch_path = "/batches/",
    .cancel_suffix = "/cancel",
    .fetch_path = fetch_path,
    .object = object,
    .line = line,
    .list_path = list_path,
    .list = list,
};
