/*
 * Providers: one table of operations per wire format. build() turns (model,
 * task id, conversation) into a request; parse() turns a response into text,
 * usage and finish reason, or a classified error. Neither does I/O.
 */
#ifndef PROV_H
#define PROV_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "../config.h"

#define PROV_HEADERS_MAX 8

typedef struct prov_request {
    char *url;                        /* owned */
    char *headers[PROV_HEADERS_MAX];  /* owned, "Name: value" */
    int nheaders;
    char *body;                       /* owned */
    size_t body_len;
} prov_request;

typedef struct prov_response {
    char *text;          /* owned; "" when the model said nothing */
    char *finish_reason; /* owned; NULL when absent */
    long prompt_tokens;  /* all input tokens, cached included; -1 when absent */
    long completion_tokens;
    long cached_tokens;  /* input tokens read from the provider's cache; 0 when not said */
} prov_response;

/* Error classes parse() reports in `reason` when it returns non-zero. */
#define PROV_REASON_MAX 32

typedef struct prov_ops {
    const char *name; /* the "api" value in the models file */
    /* Builds the request. Returns 0; out is owned by the caller (prov_request_clear). */
    int (*build)(const wk_model *m, const char *task_id, const cJSON *messages,
                 prov_request *out);
    /*
     * Parses a completed HTTP exchange. Returns 0 with out filled, or WK_EPARSE
     * / WK_EINVAL with reason (e.g. "http_404", "bad_response") and a one-line
     * message (escaped, capped) naming the provider's own error text.
     */
    int (*parse)(long status, const char *body, size_t len, prov_response *out,
                 char reason[PROV_REASON_MAX], char *msg, size_t msglen);
} prov_ops;

/* Shared by the wire formats (prov.c). */
/* Sets msg to text, control characters escaped, cut to msglen. */
void prov__set_msg(char *msg, size_t msglen, const char *text);
/* A usage count: the number when it is one >= 0, else -1. */
long prov__count(const cJSON *o, const char *name);
/* Classifies a non-2xx reply: reason "http_NNN", msg "HTTP NNN: <provider's message>". */
int prov__http_error(long status, const char *provider_msg, char reason[PROV_REASON_MAX],
                     char *msg, size_t msglen);
/* The common headers: content type, X-Cascade-Task (escaped), no Expect. */
void prov__base_headers(prov_request *out, const char *task_id);
/* The text of the system turns, joined; NULL when there are none. Caller frees. */
char *prov__system_text(const cJSON *messages);

extern const prov_ops *const prov_table[];
const prov_ops *prov_find(const char *api);

void prov_request_clear(prov_request *r);
void prov_response_clear(prov_response *r);

#endif
