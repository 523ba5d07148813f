/*
 * The flex lane on the wire (see lanes_int.h): the same request with
 * "service_tier": "flex" (OpenAI chat completions; Gemini generateContent),
 * and the capacity errors that tell a flex call to wait or go to sync.
 */
#include "lanes_int.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

int wk__flex_ask(prov_request *req, const char *api)
{
    if (strcmp(api, "openai") != 0 && strcmp(api, "gemini") != 0)
        return 0; /* config.c refuses flex tiers elsewhere */
    cJSON *body = prov__body_json(req);
    if (!body)
        return WK_EPARSE;
    cJSON_DeleteItemFromObjectCaseSensitive(body, "service_tier");
    cJSON_AddStringToObject(body, "service_tier", "flex");
    free(req->body);
    prov__set_body(req, body);
    return 0;
}

int wk__flex_capacity(const char *api, const wk_http_result *res)
{
    if (res->rc != 0)
        return 0;
    if (strcmp(api, "gemini") == 0)
        return res->status == 429 || res->status == 503;
    if (res->status != 429 || !res->body)
        return 0;
    /* https://platform.openai.com/docs/guides/flex-processing: 429 Resource Unavailable */
    cJSON *j = cJSON_ParseWithLength(res->body, res->body_len);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    const char *code = wk_jstr(e, "code");
    const char *type = wk_jstr(e, "type");
    int cap = (code && strcmp(code, "resource_unavailable") == 0) ||
              (type && strcmp(type, "resource_unavailable") == 0);
    cJSON_Delete(j);
    return cap;
}
