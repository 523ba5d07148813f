/*
 * Result keys and retryable results (see rkey.h).
 */
#include "rkey.h"

#include <string.h>

#include "lib/util.h"

char *wk_rkey_task(const char *id)
{
    return id[0] == '#' ? wk_xasprintf("#id:%s", id) : wk_xstrdup(id);
}

char *wk_rkey_line(long lineno, const char *receipt)
{
    if (lineno > 0 || !receipt)
        return wk_xasprintf("#line:%ld", lineno);
    return wk_xasprintf("#entry:%s", receipt);
}

char *wk_rkey_dup(long lineno)
{
    return wk_xasprintf("#dup:%ld", lineno);
}

const char *wk_rkey_id(const char *key)
{
    if (key[0] != '#')
        return key;
    return strncmp(key, "#id:", 4) == 0 ? key + 4 : NULL;
}

char *wk_rkey_of_result(const cJSON *res)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(res, "id");
    const cJSON *line = cJSON_GetObjectItemCaseSensitive(res, "line");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(res, "status");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(res, "reason");
    /* Only intake writes `line`: an invalid line, keyed by its number whatever its id. */
    if (cJSON_IsString(st) && strcmp(st->valuestring, "invalid_task") == 0 &&
        cJSON_IsNumber(line) && line->valuedouble > 0) {
        if (cJSON_IsString(reason) && strncmp(reason->valuestring, "duplicate id", 12) == 0)
            return wk_rkey_dup((long)line->valuedouble);
        return wk_rkey_line((long)line->valuedouble, NULL);
    }
    return cJSON_IsString(id) ? wk_rkey_task(id->valuestring) : NULL;
}

/* Call failures that another try later may not meet (net/calls.c's reasons). */
static int transient_reason(const char *r)
{
    static const char *const names[] = {
        "timeout",  "transport", "unavailable",  "spend_limit",  "http_408", "http_409",
        "http_429", "http_529",  "bad_response", "body_too_big", NULL};
    for (int i = 0; names[i]; i++)
        if (strcmp(r, names[i]) == 0)
            return 1;
    return strncmp(r, "http_5", 6) == 0 && strlen(r) == 8;
}

int wk_result_retryable(const cJSON *res)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(res, "status");
    const cJSON *atts = cJSON_GetObjectItemCaseSensitive(res, "attempts");
    if (!cJSON_IsString(st) || strcmp(st->valuestring, "error") != 0 ||
        cJSON_GetArraySize(atts) == 0)
        return 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, atts)
    {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "verdict");
        const cJSON *val = cJSON_GetObjectItemCaseSensitive(v, "validator");
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(v, "reason");
        if (!cJSON_IsString(val) || strcmp(val->valuestring, "call") != 0 || !cJSON_IsString(why) ||
            !transient_reason(why->valuestring))
            return 0;
    }
    return 1;
}
