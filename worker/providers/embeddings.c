/*
 * The OpenAI-compatible embeddings wire format (prov.h): POST
 * {base_url}/embeddings with {"model", "input", "dimensions"} and a bearer
 * key; the reply's data[0].embedding and usage.prompt_tokens. Used by the
 * semantic start tier (net/embed.c); OpenAI, vLLM, llama.cpp server and
 * Ollama's /v1 serve it.
 *
 * Reference: https://platform.openai.com/docs/api-reference/embeddings/create
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "prov.h"

void prov_embed_build(const wk_model *m, const char *task_id, const char *text, size_t len,
                      int dimensions, prov_request *out)
{
    memset(out, 0, sizeof *out);
    out->url = wk_xasprintf("%s/embeddings", m->provider->base_url);
    prov__base_headers(out, task_id);
    if (m->provider->key)
        out->headers[out->nheaders++] = wk_xasprintf("Authorization: Bearer %s", m->provider->key);
    cJSON *body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "model", m->id);
    char *input = wk_xstrndup(text, len);
    cJSON_AddStringToObject(body, "input", input);
    free(input);
    if (dimensions > 0)
        cJSON_AddNumberToObject(body, "dimensions", dimensions);
    prov__set_body(out, body);
}

int prov_embed_parse(long status, const char *body, size_t len, int dim_max, float **vec, int *dim,
                     long *prompt_tokens, char reason[PROV_REASON_MAX], char *msg, size_t msglen)
{
    prov_response r;
    cJSON *j = NULL;
    *vec = NULL;
    *dim = 0;
    *prompt_tokens = -1;
    int rc = prov__parse_begin(status, body, len, &r, &j, reason, msg, msglen);
    if (rc)
        goto cleanup;
    rc = WK_EPARSE;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "data"), 0), "embedding");
    int n = cJSON_GetArraySize(e);
    if (!cJSON_IsArray(e) || n < 1 || n > dim_max) {
        char *t = wk_xasprintf("no data[0].embedding of 1 to %d numbers in the reply", dim_max);
        prov__set_msg(msg, msglen, t);
        free(t);
        goto cleanup;
    }
    float *v = wk_xmalloc((size_t)n * sizeof *v);
    int k = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, e)
    {
        if (!cJSON_IsNumber(x)) {
            free(v);
            prov__set_msg(msg, msglen, "data[0].embedding holds something other than numbers");
            goto cleanup;
        }
        v[k++] = (float)x->valuedouble;
    }
    *vec = v;
    *dim = n;
    *prompt_tokens = prov__count(cJSON_GetObjectItemCaseSensitive(j, "usage"), "prompt_tokens");
    rc = 0;
cleanup:
    prov_response_clear(&r);
    cJSON_Delete(j);
    return rc;
}
