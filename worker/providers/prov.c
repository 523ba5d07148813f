/*
 * The provider table and the helpers every wire format shares.
 */
#include "prov.h"

#include <stdlib.h>
#include <string.h>

extern const prov_ops prov_openai;

const prov_ops *const prov_table[] = {&prov_openai, NULL};

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
    memset(r, 0, sizeof *r);
}
