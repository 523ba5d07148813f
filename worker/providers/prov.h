/*
 * Providers: one table of operations per wire format. build() turns (model,
 * task id, conversation) into a request; parse() turns a response into text,
 * usage and finish reason, or a classified error. Neither does I/O.
 */
#ifndef PROV_H
#define PROV_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "worker/config.h"

#define PROV_HEADERS_MAX 8
/* The anthropic-version the official SDK sends (checked by make conformance). */
#define PROV_ANTHROPIC_VERSION "2026-10-21"

typedef struct prov_request {
    char *url;                       /* owned */
    char *headers[PROV_HEADERS_MAX]; /* owned, "Name: value" */
    int nheaders;
    char *body; /* owned */
    size_t body_len;
} prov_request;

typedef struct prov_response {
    char *text;          /* owned; "" when the model said nothing */
    char *finish_reason; /* owned; NULL when absent */
    long prompt_tokens;  /* all input tokens, cached included; -1 when absent */
    long completion_tokens;
    long cached_tokens; /* input tokens read from the provider's cache; 0 when not said */
    cJSON *logprobs;    /* owned; the answer's tokens [{"token", "logprob"}]; NULL: none */
    /*
     * owned; the choices after the first when the request asked for n > 1,
     * as [{"text", "finish_reason", "logprobs"}]; NULL: none. The usage
     * counts them all.
     */
    cJSON *choices;
} prov_response;

/* Alternatives per token asked for with logprobs (the label's own token is what is read). */
#define PROV_TOP_LOGPROBS 5

/* Error classes parse() reports in `reason` when it returns non-zero. */
#define PROV_REASON_MAX 32

typedef struct prov_ops {
    const char *name; /* the "api" value in the models file */
    /* Builds the request. Returns 0; out is owned by the caller (prov_request_clear). */
    int (*build)(const wk_model *m, const char *task_id, const cJSON *messages, prov_request *out);
    /*
     * May be NULL. The same request from the conversation already printed as
     * JSON (wk_json_print of messages; borrowed), byte for byte what build()
     * makes, without a tree: for a wire format that sends the messages as
     * they are. Returns 0; out as build().
     */
    int (*build_json)(const wk_model *m, const char *task_id, const char *messages,
                      prov_request *out);
    /*
     * Parses a completed HTTP exchange. Returns 0 with out filled, or WK_EPARSE
     * / WK_EINVAL with reason (e.g. "http_404", "bad_response") and a one-line
     * message (escaped, capped) naming the provider's own error text.
     */
    int (*parse)(long status, const char *body, size_t len, prov_response *out,
                 char reason[PROV_REASON_MAX], char *msg, size_t msglen);
    /*
     * May be NULL: the API returns no logprobs (Anthropic). Asks a built
     * request for the answer's token logprobs (with PROV_TOP_LOGPROBS
     * alternatives); parse() then fills out->logprobs. Returns 0 or WK_EPARSE.
     */
    int (*ask_logprobs)(prov_request *req);
    /*
     * May be NULL: the API takes no "n". Asks a built request for n answers
     * in one call (parse() puts the others in out->choices). 0 or WK_EPARSE.
     */
    int (*ask_n)(prov_request *req, int n);
} prov_ops;

/* Shared by the wire formats (prov.c). */
/* Sets msg to text, control characters escaped, cut to msglen. */
void prov__set_msg(char *msg, size_t msglen, const char *text);
/* A usage count: the number when it is one >= 0, else -1. */
long prov__count(const cJSON *o, const char *name);
/* The same judgement of a number already read: v when a whole count, else -1. */
long prov__count_num(double v);
/*
 * openai_fast.c: a 2xx chat completion read without a tree. 1 with out filled
 * (as prov__openai_parse_tree fills it, and what it returns 0 for); 0 when it
 * declines, out untouched: the caller then parses with the tree.
 */
int prov__openai_fast(long status, const char *body, size_t len, prov_response *out);
/* openai.c's parse through a cJSON tree, every reply (the fast reader's reference). */
int prov__openai_parse_tree(long status, const char *body, size_t len, prov_response *out,
                            char reason[PROV_REASON_MAX], char *msg, size_t msglen);
/*
 * The start of every parse: clears out and parses the body into *j (NULL when
 * it is not JSON). A non-2xx reply is classified here, reason "http_NNN" and
 * msg "HTTP NNN: <error.message>" (where all three APIs put it), returning
 * WK_EINVAL; otherwise reason is preset to "bad_response" for what the caller
 * finds wrong next, and it returns 0. The caller deletes *j either way.
 */
int prov__parse_begin(long status, const char *body, size_t len, prov_response *out, cJSON **j,
                      char reason[PROV_REASON_MAX], char *msg, size_t msglen);
/* The request's body parsed, for ask_logprobs to add to; NULL when it is not JSON. */
cJSON *prov__body_json(const prov_request *req);
/* Serialises the request body into out and deletes it. */
void prov__set_body(prov_request *out, cJSON *body);
/* The common headers: content type, X-Cascade-Task (escaped), no Expect. */
void prov__base_headers(prov_request *out, const char *task_id);
/* The text of the system turns, joined; NULL when there are none. Caller frees. */
char *prov__system_text(const cJSON *messages);

const prov_ops *prov_find(const char *api);

/*
 * The OpenAI-compatible embeddings request (embeddings.c) for the len bytes
 * of text; dimensions > 0 asks for that many. out: prov_request_clear.
 */
void prov_embed_build(const wk_model *m, const char *task_id, const char *text, size_t len,
                      int dimensions, prov_request *out);
/*
 * Its reply: 0 with *vec (caller frees; *dim floats, at most dim_max) and
 * *prompt_tokens (-1: not said), or non-zero with reason and msg as parse().
 */
int prov_embed_parse(long status, const char *body, size_t len, int dim_max, float **vec, int *dim,
                     long *prompt_tokens, char reason[PROV_REASON_MAX], char *msg, size_t msglen);

void prov_request_clear(prov_request *r);
void prov_response_clear(prov_response *r);

#endif
