/*
 * Gemini generateContent: POST {base_url}/models/{id}:generateContent with
 * the key in x-goog-api-key; turns are "user" and "model", the system
 * prompt is systemInstruction, the cap is generationConfig.maxOutputTokens.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov.h"
#include "lib/util.h"

static cJSON *text_parts(const char *text)
{
    cJSON *parts = cJSON_CreateArray();
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "text", text);
    cJSON_AddItemToArray(parts, p);
    return parts;
}

static int gemini_build(const wk_model *m, const char *task_id, const cJSON *messages,
                        prov_request *out)
{
    memset(out, 0, sizeof *out);
    out->url = wk_xasprintf("%s/models/%s:generateContent", m->provider->base_url, m->id);
    prov__base_headers(out, task_id);
    if (m->provider->key)
        out->headers[out->nheaders++] = wk_xasprintf("x-goog-api-key: %s", m->provider->key);

    cJSON *body = cJSON_CreateObject();
    cJSON *contents = cJSON_AddArrayToObject(body, "contents");
    const cJSON *msg;
    cJSON_ArrayForEach(msg, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
        if (!cJSON_IsString(role) || !cJSON_IsString(content) ||
            strcmp(role->valuestring, "system") == 0)
            continue;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "role",
                                strcmp(role->valuestring, "assistant") == 0 ? "model" : "user");
        cJSON_AddItemToObject(c, "parts", text_parts(content->valuestring));
        cJSON_AddItemToArray(contents, c);
    }
    char *sys = prov__system_text(messages);
    if (sys) {
        cJSON *si = cJSON_AddObjectToObject(body, "systemInstruction");
        cJSON_AddItemToObject(si, "parts", text_parts(sys));
        free(sys);
    }
    cJSON *gc = cJSON_AddObjectToObject(body, "generationConfig");
    cJSON_AddNumberToObject(gc, "maxOutputTokens", (double)m->max_tokens);
    prov__set_body(out, body);
    return 0;
}

static int gemini_parse(long status, const char *body, size_t len, prov_response *out,
                        char reason[PROV_REASON_MAX], char *msg, size_t msglen)
{
    wk_buf text;
    wk_buf_init(&text, len + 1);
    cJSON *j = NULL;
    int rc = prov__parse_begin(status, body, len, out, &j, reason, msg, msglen);
    if (rc)
        goto cleanup;
    rc = WK_EPARSE;
    const cJSON *cand = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "candidates"), 0);
    if (!cJSON_IsObject(cand)) {
        prov__set_msg(msg, msglen,
                      j ? "response has no candidates[0]" : "response body is not valid JSON");
        goto cleanup;
    }
    const cJSON *parts = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cand, "content"), "parts");
    const cJSON *part;
    cJSON_ArrayForEach(part, parts)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(part, "text");
        const cJSON *thought = cJSON_GetObjectItemCaseSensitive(part, "thought");
        /* Thought summaries are not the answer. */
        if (cJSON_IsString(t) && !cJSON_IsTrue(thought))
            wk_buf_append(&text, t->valuestring, strlen(t->valuestring));
    }
    out->text = wk_buf_detach(&text, NULL);
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(cand, "finishReason");
    if (cJSON_IsString(fr))
        out->finish_reason = wk_xstrdup(strcmp(fr->valuestring, "MAX_TOKENS") == 0 ? "length"
                                        : strcmp(fr->valuestring, "STOP") == 0     ? "stop"
                                                                               : fr->valuestring);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "usageMetadata");
    out->prompt_tokens = prov__count(u, "promptTokenCount");
    long cand_tok = prov__count(u, "candidatesTokenCount");
    long thoughts = prov__count(u, "thoughtsTokenCount");
    /* Thinking tokens are billed as output. */
    out->completion_tokens = cand_tok < 0 ? -1 : cand_tok + (thoughts > 0 ? thoughts : 0);
    long cached = prov__count(u, "cachedContentTokenCount");
    out->cached_tokens = cached > 0 ? cached : 0;
    /* logprobsResult.chosenCandidates: the sampled token at each step. */
    const cJSON *chosen = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(cand, "logprobsResult"), "chosenCandidates");
    if (cJSON_IsArray(chosen)) {
        out->logprobs = cJSON_CreateArray();
        const cJSON *tok;
        cJSON_ArrayForEach(tok, chosen)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(tok, "token");
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(tok, "logProbability");
            if (!cJSON_IsString(t) || !cJSON_IsNumber(l))
                continue;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "token", t->valuestring);
            cJSON_AddNumberToObject(o, "logprob", l->valuedouble);
            cJSON_AddItemToArray(out->logprobs, o);
        }
    }
    rc = 0;
cleanup:
    wk_buf_release(&text);
    cJSON_Delete(j);
    return rc;
}

/* generationConfig.responseLogprobs and logprobs (the alternatives per step). */
static int gemini_ask_logprobs(prov_request *req)
{
    cJSON *body = prov__body_json(req);
    cJSON *gc = cJSON_GetObjectItemCaseSensitive(body, "generationConfig");
    if (!cJSON_IsObject(gc)) {
        cJSON_Delete(body);
        return WK_EPARSE;
    }
    cJSON_AddBoolToObject(gc, "responseLogprobs", 1);
    cJSON_AddNumberToObject(gc, "logprobs", PROV_TOP_LOGPROBS);
    free(req->body);
    prov__set_body(req, body);
    return 0;
}

const prov_ops prov_gemini = {
    .name = "gemini",
    .build = gemini_build,
    .parse = gemini_parse,
    .ask_logprobs = gemini_ask_logprobs,
};
