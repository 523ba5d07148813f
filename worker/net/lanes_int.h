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
