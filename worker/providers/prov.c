/*
 * The provider table and the helpers every wire format shares.
 */
#include "prov.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

extern const prov_ops prov_openai;
extern const prov_ops prov_anthropic;
extern const prov_ops prov_gemini;

static const prov_ops *const prov_table[] = {&prov_openai, &prov_anthropic, &prov_gemini, NULL};

const prov_ops *prov_find(const char *api)
{
    for (int i = 0; prov_table[i]; i++)
        if (strcmp(prov_table[i]->name, api) == 0)
            return prov_table[i];
    return NULL;
}

void prov_request_clear(prov_request *r)
{
    free(r->url);
    for (int i = 0; i < r->nheaders; i++) {
        /* Header lines may hold the API key: wipe before freeing. */
        memset(r->headers[i], 0, strlen(r->headers[i]));
        free(r->headers[i]);
    }
    free(r->body);
    memset(r, 0, sizeof *r);
}

void prov_response_clear(prov_response *r)
{
    free(r->text);
    free(r->finish_reason);
    cJSON_Delete(r->logprobs);
    cJSON_Delete(r->choices);
    memset(r, 0, sizeof *r);
}

cJSON *prov__body_json(const prov_request *req)
{
    return req->body ? cJSON_ParseWithLength(req->body, req->body_len) : NULL;
}

void prov__set_msg(char *msg, size_t msglen, const char *text)
{
    char *e = wk_escape_ctl(text, strlen(text), msglen > 8 ? msglen - 8 : 0);
    snprintf(msg, msglen, "%s", e);
    free(e);
}

long prov__count_num(double v)
{
    /* A negative, a fraction or a count past any real request is no count. */
    if (!(v >= 0) || v > 1e12 || v != (double)(long)v)
        return -1;
    return (long)v;
}

long prov__count(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(f) ? prov__count_num(f->valuedouble) : -1; /* a string is no count */
}

int prov__parse_begin(long status, const char *body, size_t len, prov_response *out, cJSON **j,
                      char reason[PROV_REASON_MAX], char *msg, size_t msglen)
{
    memset(out, 0, sizeof *out);
    *j = cJSON_ParseWithLength(body, len);
    if (status >= 200 && status <= 299) {
        snprintf(reason, PROV_REASON_MAX, "bad_response");
        return 0;
    }
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(*j, "error");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
    char *text = wk_xasprintf("HTTP %ld: %s", status,
                              cJSON_IsString(m) ? m->valuestring : "(no error message)");
    snprintf(reason, PROV_REASON_MAX, "http_%ld", status);
    prov__set_msg(msg, msglen, text);
    free(text);
    return WK_EINVAL;
}

void prov__set_body(prov_request *out, cJSON *body)
{
    out->body = wk_json_print(body);
    out->body_len = strlen(out->body);
    cJSON_Delete(body);
}

void prov__base_headers(prov_request *out, const char *task_id)
{
    out->headers[out->nheaders++] = wk_xstrdup("Content-Type: application/json");
    /* Control characters in an id could split the header: escape them. */
    char *safe_id = wk_escape_ctl(task_id, strlen(task_id), 200);
    out->headers[out->nheaders++] = wk_xconcat("X-Cascade-Task: ", safe_id, (char *)NULL);
    free(safe_id);
    /* Without it curl sends "Expect: 100-continue" on large bodies and waits. */
    out->headers[out->nheaders++] = wk_xstrdup("Expect:");
}

char *prov__system_text(const cJSON *messages)
{
    wk_buf b;
    wk_buf_init(&b, SIZE_MAX / 2);
    const cJSON *m;
    cJSON_ArrayForEach(m, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(role) || strcmp(role->valuestring, "system") != 0 ||
            !cJSON_IsString(content))
            continue;
        if (b.len)
            wk_buf_append(&b, "\n\n", 2);
        wk_buf_append(&b, content->valuestring, strlen(content->valuestring));
    }
    if (!b.len) {
        wk_buf_release(&b);
        return NULL;
    }
    return wk_buf_detach(&b, NULL);
}
