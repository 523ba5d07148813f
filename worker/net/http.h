/*
 * HTTP POST through curl's multi interface driven by the libuv loop: a
 * uv_poll per socket that curl asks about and a uv_timer for curl's timeouts
 * per multi handle (a few when many transfers are in flight). Thousands of
 * requests can be in flight on one thread.
 */
#ifndef WK_HTTP_H
#define WK_HTTP_H

#include <stddef.h>
#include <uv.h>

typedef struct wk_http wk_http;

typedef struct wk_http_result {
    int rc;           /* 0; WK_ETOOBIG (body over the cap); WK_EIO (transport) */
    long status;      /* HTTP status; 0 when no response came */
    const char *body; /* borrowed for the callback only; NUL-terminated */
    size_t body_len;
    const char *error;   /* transport error text; NULL when rc == 0 */
    int timed_out;       /* the transport error was a timeout (1 total, 2 first byte) */
    long retry_after_ms; /* from retry-after-ms / Retry-After; -1 when absent */
    int should_retry;    /* x-should-retry: 1 true, 0 false, -1 absent */
    /* Rate-limit headers (x-ratelimit-*, anthropic-ratelimit-*); -1 when absent. */
    long rl_remaining_requests;
    long rl_remaining_tokens;
    long rl_reset_ms; /* time until the limit with the least left resets */
    long latency_ms;
} wk_http_result;

typedef void (*wk_http_cb)(void *arg, const wk_http_result *res);

typedef struct wk_http_opts {
    long connect_timeout_ms;
    long first_byte_timeout_ms; /* until the status line arrives; 0: none */
    long total_timeout_ms;
    size_t body_cap;
    int get; /* 1: a GET; the body is not sent */
    /*
     * 1: the body and the header lines are lent, not copied: the caller keeps
     * them unchanged until cb has been called or wk_http_free has returned.
     * Saves a copy of each per request (the body is most of a request).
     */
    int borrow;
} wk_http_opts;

/* Creates the client on `loop`; NULL when curl cannot be set up. */
wk_http *wk_http_new(uv_loop_t *loop);
/*
 * Aborts requests still in flight (their callbacks are not called), closes
 * the handles and frees the client once they are closed: run the loop
 * afterwards so the close callbacks drain.
 */
void wk_http_free(wk_http *h);

/*
 * Starts a POST of body to url with the given header lines ("Name: value").
 * url is copied; body and headers are copied too unless opts->borrow lends
 * them. cb fires exactly once, from the loop, never from inside this call.
 * Returns 0 or WK_EIO.
 */
int wk_http_post(wk_http *h, const char *url, const char *const *headers, int nheaders,
                 const char *body, size_t len, const wk_http_opts *opts, wk_http_cb cb, void *arg);

#endif
