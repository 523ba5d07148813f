/*
 * Anthropic Messages: POST {base_url}/messages with x-api-key and
 * anthropic-version; the system prompt is a top-level field, max_tokens is
 * required, and usage counts input tokens apart from cache reads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov.h"
#include "lib/util.h"

static int anthropic_build(const wk_model *m, const char *task_id, const cJSON *messages,
                           prov_request *out)
{
    memset(out, 0, sizeof *out);
    out->url = wk_xasprintf("%s/messages", m->provider->base_url);
    prov__base_headers(out, task_id);
    out->headers[out->nheaders++] = wk_xstrdup("anthropic-version: " PROV_ANTHROPIC_VERSION);
    if (m->provider->key)
        out->headers[out->nheaders++] = wk_xasprintf("x-api-key: %s", m->provider->key);

    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "model", m->id);
    cJSON_AddNumberToObject(body, "max_tokens", (double)m->max_tokens);
    char *sys = prov__system_text(messages);
    if (sys)
        cJSON_AddStringToObject(body, "system", sys);
    free(sys);
    cJSON *msgs = cJSON_AddArrayToObject(body, "messages");
    const cJSON *msg;
    cJSON_ArrayForEach(msg, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "system") == 0)
            continue;
        cJSON_AddItemToArray(msgs, cJSON_Duplicate(msg, 1));
    }
    prov__set_body(out, body);
    return 0;
}

static int anthropic_parse(long status, const char *body, size_t len, prov_response *out,
                           char reason[PROV_REASON_MAX], char *msg, size_t msglen)
{
    wk_buf text;
    wk_buf_init(&text, len + 1);
    cJSON *j = NULL;
    int rc = prov__parse_begin(status, body, len, out, &j, reason, msg, msglen);
    if (rc)
        goto cleanup;
    rc = WK_EPARSE;
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(j, "content");
    if (!cJSON_IsArray(content)) {
        prov__set_msg(msg, msglen,
                      j ? "response has no content array" : "response body is not valid JSON");
        goto cleanup;
    }
    const cJSON *block;
    cJSON_ArrayForEach(block, content)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(block, "type");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(block, "text");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "text") == 0 && cJSON_IsString(t))
            wk_buf_append(&text, t->valuestring, strlen(t->valuestring));
    }
    out->text = wk_buf_detach(&text, NULL);
    const cJSON *sr = cJSON_GetObjectItemCaseSensitive(j, "stop_reason");
    if (cJSON_IsString(sr))
        /* The router knows one word for a cut-off answer: "length". */
        out->finish_reason =
            wk_xstrdup(strcmp(sr->valuestring, "max_tokens") == 0 ? "length"
                       : strcmp(sr->valuestring, "end_turn") == 0 ? "stop"
                                                                  : sr->valuestring);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    long in = prov__count(usage, "input_tokens");
    long cache_read = prov__count(usage, "cache_read_input_tokens");
    long cache_write = prov__count(usage, "cache_creation_input_tokens");
    out->prompt_tokens =
        in < 0 ? -1 : in + (cache_read > 0 ? cache_read : 0) + (cache_write > 0 ? cache_write : 0);
    out->completion_tokens = prov__count(usage, "output_tokens");
    out->cached_tokens = cache_read > 0 ? cache_read : 0;
    rc = 0;
cleanup:
    wk_buf_release(&text);
    cJSON_Delete(j);
    return rc;
}

const prov_ops prov_anthropic = {
    .name = "anthropic",
    .build = anthropic_build,
    .parse = anthropic_parse,
};
