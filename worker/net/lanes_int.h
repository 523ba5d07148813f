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

#endif
