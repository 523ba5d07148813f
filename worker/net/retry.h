/*
 * The retry policy for one call, as a pure function: given what came back
 * and how many retries were made, decide to retry (and when), to take the
 * deployment out of service for a while, to disable the provider, or to
 * give up. Retries stay on the same model; what happens after giving up
 * (a fallback deployment, then a climb) is the caller's business.
 */
#ifndef WK_RETRY_H
#define WK_RETRY_H

#include "http.h"

typedef enum wk_retry_kind {
    WK_RETRY_NO,          /* not retryable: give up (fallback or climb) */
    WK_RETRY_AFTER,       /* retry the same deployment after delay_ms */
    WK_RETRY_UNAVAILABLE, /* the server asks for a wait longer than the cap:
                             the deployment is out for delay_ms */
    WK_RETRY_SPEND_LIMIT, /* the provider's spend limit is reached: disable it for the run */
} wk_retry_kind;

typedef struct wk_retry_policy {
    int max_retries;     /* retries per deployment */
    long base_ms;        /* first backoff: 500 */
    long max_backoff_ms; /* backoff cap: 8000 */
    long max_wait_ms;    /* longest server-requested wait a task may hold: 60000 */
} wk_retry_policy;

void wk_retry_policy_default(wk_retry_policy *p);

/*
 * `retries` is the number of retries already made on this deployment;
 * `jitter` in [0, 1) takes up to 25% off the backoff. `body` is the error
 * body (for spend-limit detection). Sets *delay_ms for RETRY_AFTER and
 * RETRY_UNAVAILABLE.
 */
wk_retry_kind wk_retry_decide(const wk_retry_policy *p, const wk_http_result *res, const char *body,
                              int retries, double jitter, long *delay_ms);

#endif
