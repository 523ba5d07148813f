/*
 * OpenAI-compatible chat completions (OpenAI, OpenRouter, DeepSeek, vLLM,
 * llama.cpp server, Ollama's /v1): POST {base_url}/chat/completions with a
 * bearer key, usage read from the response.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util.h"
#include "prov.h"

static int openai_build(const wk_model *m, const char *task_id, const cJSON *messages,
                        prov_request *out)
{
    memset(out, 0, sizeof *out);
    out->url = wk_xasprintf("%s/chat/completions", m->provider->base_url);
    out->headers[out->nheaders++] = wk_xstrdup("Content-Type: application/json");
    /* Control characters in an id could split the header: escape them. */
    char *safe_id = wk_escape_ctl(task_id, strlen(task_id), 200);
    out->headers[out->nheaders++] = wk_xasprintf("X-Cascade-Task: %s", safe_id);
    free(safe_id);
    if (m->provider->key)
        out->headers[out->nheaders++] = wk_xasprintf("Authorization: Bearer %s",
                                                     m->provider->key);
    /* Without it curl sends "Expect: 100-continue" on large bodies and waits. */
    out->headers[out->nheaders++] = wk_xstrdup("Expect:");

    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "model", m->id);
    cJSON_AddItemToObject(body, "messages", cJSON_Duplicate(messages, 1));
    cJSON_AddNumberToObject(body, "max_tokens", (double)m->max_tokens);
    out->body = cJSON_PrintUnformatted(body);
    out->body_len = strlen(out->body);
    cJSON_Delete(body);
    return 0;
}

static void set_msg(char *msg, size_t msglen, const char *text)
{
    char *e = wk_escape_ctl(text, strlen(text), msglen > 8 ? msglen - 8 : 0);
    snprintf(msg, msglen, "%s", e);
    free(e);
}

static long usage_field(const cJSON *usage, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(usage, name);
    return cJSON_IsNumber(f) && f->valuedouble >= 0 ? (long)f->valuedouble : -1;
}

static int openai_parse(long status, const char *body, size_t len, prov_response *out,
                        char reason[PROV_REASON_MAX], char *msg, size_t msglen)
{
    int rc = WK_EPARSE;
    memset(out, 0, sizeof *out);
    cJSON *j = cJSON_ParseWithLength(body, len);
    if (status < 200 || status > 299) {
        const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
        char *text = wk_xasprintf("HTTP %ld: %s", status,
                                  cJSON_IsString(m) ? m->valuestring : "(no error message)");
        snprintf(reason, PROV_REASON_MAX, "http_%ld", status);
        set_msg(msg, msglen, text);
        free(text);
        rc = WK_EINVAL;
        goto cleanup;
    }
    snprintf(reason, PROV_REASON_MAX, "bad_response");
    if (!j) {
        set_msg(msg, msglen, "response body is not valid JSON");
        goto cleanup;
    }
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    const cJSON *c0 = cJSON_GetArrayItem(choices, 0);
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(c0, "message");
    if (!cJSON_IsObject(message)) {
        set_msg(msg, msglen, "response has no choices[0].message");
        goto cleanup;
    }
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(message, "content");
    if (content && !cJSON_IsString(content) && !cJSON_IsNull(content)) {
        set_msg(msg, msglen, "choices[0].message.content is not a string");
        goto cleanup;
    }
    out->text = wk_xstrdup(cJSON_IsString(content) ? content->valuestring : "");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    out->finish_reason = cJSON_IsString(fr) ? wk_xstrdup(fr->valuestring) : NULL;
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    out->prompt_tokens = usage_field(usage, "prompt_tokens");
    out->completion_tokens = usage_field(usage, "completion_tokens");
    rc = 0;
cleanup:
    cJSON_Delete(j);
    return rc;
}

const prov_ops prov_openai = {
    .name = "openai",
    .build = openai_build,
    .parse = openai_parse,
};
