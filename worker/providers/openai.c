/*
 * OpenAI-compatible chat completions (OpenAI, OpenRouter, DeepSeek, vLLM,
 * llama.cpp server, Ollama's /v1): POST {base_url}/chat/completions with a
 * bearer key, usage read from the response.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov.h"
#include "lib/util.h"

/* The request's url and headers, the same for both ways of building its body. */
static void openai_head(const wk_model *m, const char *task_id, prov_request *out)
{
    memset(out, 0, sizeof *out);
    out->url = wk_xconcat(m->provider->base_url, "/chat/completions", (char *)NULL);
    prov__base_headers(out, task_id);
    if (m->provider->key)
        out->headers[out->nheaders++] =
            wk_xconcat("Authorization: Bearer ", m->provider->key, (char *)NULL);
}

static int openai_build(const wk_model *m, const char *task_id, const cJSON *messages,
                        prov_request *out)
{
    openai_head(m, task_id, out);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "model", m->id);
    cJSON_AddItemToObject(body, "messages", cJSON_Duplicate(messages, 1));
    cJSON_AddNumberToObject(body, "max_tokens", (double)m->max_tokens);
    prov__set_body(out, body);
    return 0;
}

/*
 * openai_build's body printed directly: {"model":..,"messages":..,"max_tokens":..},
 * the order cJSON keeps, so the text (and the cache key made from it) is the same.
 */
static int openai_build_json(const wk_model *m, const char *task_id, const char *messages,
                             prov_request *out)
{
    openai_head(m, task_id, out);
    wk_buf b;
    wk_buf_init(&b, SIZE_MAX / 2);
    wk_buf_append(&b, "{\"model\":", 9);
    wk_json_append_string(&b, m->id);
    wk_buf_append(&b, ",\"messages\":", 12);
    wk_buf_append(&b, messages, strlen(messages));
    wk_buf_append(&b, ",\"max_tokens\":", 14);
    wk_json_append_number(&b, (double)m->max_tokens);
    wk_buf_append(&b, "}", 1);
    out->body = wk_buf_detach(&b, &out->body_len);
    return 0;
}

/* A choice's logprobs.content as [{"token", "logprob"}]; NULL when it has none. */
static cJSON *choice_logprobs(const cJSON *choice)
{
    const cJSON *lc = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(choice, "logprobs"), "content");
    if (!cJSON_IsArray(lc))
        return NULL;
    cJSON *out = cJSON_CreateArray();
    const cJSON *tok;
    cJSON_ArrayForEach(tok, lc)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(tok, "token");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(tok, "logprob");
        if (!cJSON_IsString(t) || !cJSON_IsNumber(l))
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "token", t->valuestring);
        cJSON_AddNumberToObject(o, "logprob", l->valuedouble);
        cJSON_AddItemToArray(out, o);
    }
    return out;
}

int prov__openai_parse_tree(long status, const char *body, size_t len, prov_response *out,
                            char reason[PROV_REASON_MAX], char *msg, size_t msglen)
{
    cJSON *j = NULL;
    int rc = prov__parse_begin(status, body, len, out, &j, reason, msg, msglen);
    if (rc)
        goto cleanup;
    rc = WK_EPARSE;
    if (!j) {
        prov__set_msg(msg, msglen, "response body is not valid JSON");
        goto cleanup;
    }
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    const cJSON *message = cJSON_GetObjectItemCaseSensitive(c0, "message");
    if (!cJSON_IsObject(message)) {
        prov__set_msg(msg, msglen, "response has no choices[0].message");
        goto cleanup;
    }
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(message, "content");
    if (content && !cJSON_IsString(content) && !cJSON_IsNull(content)) {
        prov__set_msg(msg, msglen, "choices[0].message.content is not a string");
        goto cleanup;
    }
    out->text = wk_xstrdup(cJSON_IsString(content) ? content->valuestring : "");
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c0, "finish_reason");
    out->finish_reason = cJSON_IsString(fr) ? wk_xstrdup(fr->valuestring) : NULL;
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    out->prompt_tokens = prov__count(usage, "prompt_tokens");
    out->completion_tokens = prov__count(usage, "completion_tokens");
    /* OpenAI reports cache hits inside prompt_tokens; DeepSeek as prompt_cache_hit_tokens. */
    long cached = prov__count(cJSON_GetObjectItemCaseSensitive(usage, "prompt_tokens_details"),
                              "cached_tokens");
    if (cached < 0)
        cached = prov__count(usage, "prompt_cache_hit_tokens");
    out->cached_tokens = cached > 0 ? cached : 0;
    out->logprobs = choice_logprobs(c0);
    /* "n": the other choices, each with its text, finish reason and logprobs. */
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(j, "choices");
    for (int i = 1; i < cJSON_GetArraySize(choices); i++) {
        const cJSON *ci = cJSON_GetArrayItem(choices, i);
        const char *ti = wk_jstr(cJSON_GetObjectItemCaseSensitive(ci, "message"), "content");
        const char *fi = wk_jstr(ci, "finish_reason");
        if (!out->choices)
            out->choices = cJSON_CreateArray();
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "text", ti ? ti : "");
        if (fi)
            cJSON_AddStringToObject(o, "finish_reason", fi);
        cJSON *lp = choice_logprobs(ci);
        if (lp)
            cJSON_AddItemToObject(o, "logprobs", lp);
        cJSON_AddItemToArray(out->choices, o);
    }
    rc = 0;
cleanup:
    cJSON_Delete(j);
    return rc;
}

/* The common reply without a tree (openai_fast.c); the rest, and every error, with one. */
static int openai_parse(long status, const char *body, size_t len, prov_response *out,
                        char reason[PROV_REASON_MAX], char *msg, size_t msglen)
{
    if (prov__openai_fast(status, body, len, out))
        return 0;
    return prov__openai_parse_tree(status, body, len, out, reason, msg, msglen);
}

/* https://platform.openai.com/docs/api-reference/chat/create#chat-create-logprobs */
static int openai_ask_logprobs(prov_request *req)
{
    cJSON *body = prov__body_json(req);
    if (!body)
        return WK_EPARSE;
    cJSON_AddBoolToObject(body, "logprobs", 1);
    cJSON_AddNumberToObject(body, "top_logprobs", PROV_TOP_LOGPROBS);
    free(req->body);
    prov__set_body(req, body);
    return 0;
}

/* https://platform.openai.com/docs/api-reference/chat/create#chat-create-n */
static int openai_ask_n(prov_request *req, int n)
{
    cJSON *body = prov__body_json(req);
    if (!body)
        return WK_EPARSE;
    cJSON_AddNumberToObject(body, "n", n);
    free(req->body);
    prov__set_body(req, body);
    return 0;
}

const prov_ops prov_openai = {
    .name = "openai",
    .build = openai_build,
    .build_json = openai_build_json,
    .parse = openai_parse,
    .ask_logprobs = openai_ask_logprobs,
    .ask_n = openai_ask_n,
};
