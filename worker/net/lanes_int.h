/*
 * What calls.c shares with the lane files of net/ (flex.c, batch.c) and
 * nothing else calls.
 */
#ifndef WK_NET_LANES_INT_H
#define WK_NET_LANES_INT_H

#include "http.h"
#include "worker/providers/prov.h"

/* A provider's batch id, as kept on a call and in its attempt. */
#define WK_BATCH_ID_MAX 128

/* Asks a built request for the flex tier ("service_tier": "flex"). 0 or WK_EPARSE. */
int wk__flex_ask(prov_request *req, const char *api);
/*
 * 1 when res is the flex tier saying it has no capacity now: OpenAI's 429
 * resource_unavailable, Gemini's 429 or 503. A different answer (a 401, a
 * 500) is handled as on the sync lane.
 */
int wk__flex_capacity(const char *api, const wk_http_result *res);

/* ---- the batch lane (batch.c) ---- */

typedef struct wk__batcher wk__batcher;
struct wk_calls_opts;
struct wk_call;

/* The batcher of a dispatcher; http and opts are borrowed. NULL: none (no batch lane). */
wk__batcher *wk__batcher_new(uv_loop_t *loop, wk_http *http, const struct wk_calls_opts *opts,
                             const wk_config *cfg);
/* Stops timers and drops every batch (the calls are the dispatcher's); close handles. */
void wk__batcher_free(wk__batcher *b);
/*
 * The call joins its deployment's open batch (or the batch a rerun found
 * it in); its outcome comes back through wk__call_batched, from the loop.
 */
void wk__batcher_add(wk__batcher *b, struct wk_call *k);
/* Calls in batches. */
int wk__batcher_calls(const wk__batcher *b);

/*
 * ---- a batch format (batch_openai.c, batch_anthropic.c, batch_gemini.c) ----
 *
 * batch.c runs the life of a batch (journal, submit, poll, fetch, cancel,
 * look for a lost one) the same for every provider; a format says how each
 * step is spelled on its API. Paths are relative to the provider's base_url.
 */

/* The requests of one batch, as a format builds its submission from them. */
typedef struct wk__bsub {
    const wk_model *m;
    const char *run_id, *local; /* our tags of the batch */
    int n;
    const char *const *custom_ids;
    const prov_request *const *reqs; /* each as the sync lane would send it */
} wk__bsub;

enum {
    WK_BS_RUNNING, /* not ended: polled again */
    WK_BS_FETCH,   /* ended: its results are at files[0] and files[1] (either may be NULL) */
    WK_BS_INLINE,  /* ended with its results in the object (`inline_results`) */
    WK_BS_FAILED,  /* ended with no result: each request fails as batch_<status> */
};

/* A batch object (a poll's answer) in common words; files owned, inline_results borrowed. */
typedef struct wk__bobj {
    int phase;
    char status[24]; /* the provider's word for it, for messages and reasons (batch_WORD) */
    char *files[2];
    const cJSON *inline_results; /* an array of result lines for `line` */
} wk__bobj;

/* One request's outcome from a results line; body and msg owned, custom_id borrowed. */
typedef struct wk__bout {
    const char *custom_id;
    long status; /* an HTTP status with body; 0: no response, see reason */
    char *body;
    char reason[PROV_REASON_MAX];
    char *msg;
} wk__bout;

/* One page of the provider's batches, read when looking for a lost batch; all owned. */
typedef struct wk__blist {
    char *found;  /* the batch tagged as ours */
    char **cands; /* ended batches that may be ours: their results' custom ids tell */
    int ncands;
    int waiting; /* a batch that may be ours has not ended: the lookup waits for it */
    char *next;  /* the next page's cursor; NULL: no page after this one */
} wk__blist;

typedef struct wk__bfmt {
    const char *api;
    /* The custom id of attempt seq of task (owned); the same in every run. */
    char *(*custom_id)(const char *task, int seq);
    /* The auth headers (owned) into h, at most 2; their count. */
    int (*auth)(const wk_provider *pv, char **h);
    /* NULL: the requests go in the create. Else the upload's body (owned), path and type. */
    char *(*upload)(const wk__bsub *s, size_t *len, const char **path, char *ctype, size_t ctcap);
    /* The create's body (owned) and path (owned); file_id is the upload's, or NULL. */
    char *(*create)(const wk__bsub *s, const char *file_id, char **path, size_t *len);
    /* The batch id in a create's answer (owned), NULL when there is none fit for a path. */
    char *(*created_id)(const cJSON *o);
    /* A poll's path is batch_path and the id; a cancel's, that and cancel_suffix. */
    const char *batch_path, *cancel_suffix;
    /* A results file's path (owned; file NULL: the batch's results). */
    char *(*fetch_path)(const char *id, const char *file);
    /* A poll's (or a cancel's) answer. 0, or WK_EPARSE when it is no batch object. */
    int (*object)(const cJSON *o, wk__bobj *out);
    /* One results line; 0 when it names a custom id, else WK_EPARSE (skipped). */
    int (*line)(const cJSON *line, wk__bout *out);
    /* The list's path (owned) from a cursor (NULL: the first page). */
    char *(*list_path)(const char *cursor);
    /* A list page, looking for batch `local` of run_id with n requests. */
    void (*list)(const cJSON *page, const char *run_id, const char *local, int n, wk__blist *out);
} wk__bfmt;

extern const wk__bfmt wk__bfmt_openai, wk__bfmt_anthropic, wk__bfmt_gemini;
/* The format of an api ("openai", "anthropic", "gemini"), or NULL. */
const wk__bfmt *wk__bfmt_of(const char *api);
/* Helpers the formats share (batch.c). */
void wk__bobj_clear(wk__bobj *o);
void wk__bout_clear(wk__bout *o);
void wk__blist_clear(wk__blist *l);
/* A custom id "TASK#SEQ" (owned), capped at 512 bytes (task ids are capped far below at intake). */
char *wk__bcustom_id(const char *task, int seq);
/* The batch id in a create's answer's "id" (owned), or NULL when it is not fit for a path. */
char *wk__bcreated_id(const cJSON *o);
/* 1 when id is fit for a URL path or query: [A-Za-z0-9_-] and '/' inside, under WK_BATCH_ID_MAX. */
int wk__bid_ok(const char *id, int slash);
/* The body of a built request as JSON (owned; an empty object when it does not parse). */
cJSON *wk__breq_body(const prov_request *q);

/* calls.c, for batch.c: what a call sends, and its outcome. */
const wk_model *wk__call_dep(const struct wk_call *k);
const prov_request *wk__call_req(const struct wk_call *k);
const char *wk__call_task(const struct wk_call *k);
int wk__call_seq(const struct wk_call *k);
/*
 * The call's request came back from batch batch_id: an HTTP status and body
 * as the provider gave them, or reason/message when there was no response
 * (errored, expired, cancelled, the batch failed). A failure is retried in
 * the model's next batch within --retries, then goes to fallbacks or fails.
 */
/* --deadline: the call leaves the batch lane for sync, at the sync price. */
void wk__call_to_sync(struct wk_call *k);
void wk__call_batched(struct wk_call *k, const char *batch_id, long status, const char *body,
                      size_t len, const char *reason, const char *message);

#endif
