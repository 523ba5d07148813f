/*
 * curl multi inside libuv (see http.h). The wiring follows curl's
 * multi-uv.c example with the gaps closed: finished transfers are read after
 * every socket_action (the timer path too, or a timed-out last transfer is
 * never reaped), the transfer's own result code is read, each easy handle
 * points back at its request through CURLOPT_PRIVATE, and shutdown goes in
 * order: easy handles out, multi cleanup, then the handles closed.
 */
#include "http.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "lib/util.h"

/*
 * Easy handles kept for reuse; more in flight than this are made afresh. A
 * kept handle keeps its options: those that never change are set once, when
 * the handle is made (handle_new), and wk_http_post sets every other one on
 * every request, so nothing of the last request's is read by the next.
 */
#define WK_HTTP_IDLE_MAX 64
/*
 * libcurl's receive buffer, one per transfer in flight (its default is 16 KiB;
 * 1 KiB is its least): a model's answer arrives in a few more reads, each a
 * system call of a microsecond or two, and a thousand transfers in flight
 * hold a thousand buffers (massif: 4 KiB of the 24 KiB a task in flight had
 * at 1,000 in flight with 4 KiB buffers).
 */
#define WK_HTTP_RECV_BUF 1024L

/*
 * Transfers in flight are spread over several curl multi handles, each filled
 * to WK_HTTP_PER_MULTI before the next is opened. libcurl 7.88 looks for a
 * reusable connection by walking every connection its multi holds to the
 * host, in use or not, once per new transfer: at 1,000 in flight on one multi
 * that walk was 23,600 instructions a task (callgrind, the difference of a
 * 3,000- and a 1,000-task run at concurrency 1,000 against a 100 ms mock),
 * 7,700 with 4 multis and 2,800 with 16; the run's whole cost a task went
 * from 311,800 to 282,800 and 274,400. A multi costs about 27 KB of RSS
 * (16 opened at once added 0.4 KiB a task at 1,000 in flight), so they are
 * opened only as the transfers in flight need them, and
 * one task at a time (concurrency 1, escalations) stays on the first multi
 * and its kept-alive connection. Tried on one multi instead, and not kept:
 * CURLMOPT_MAXCONNECTS 64, 298,200 (it closes idle connections that the next
 * transfers then open again); CURLMOPT_MAX_HOST_CONNECTIONS 1,000, 313,000.
 */
#define WK_HTTP_PER_MULTI 128
#define WK_HTTP_MULTI_MAX 64

/* One curl multi handle and its timer; a request runs on one of them. */
typedef struct wk__multi {
    struct wk_http *h;
    CURLM *multi;
    uv_timer_t timer;
    int inflight;
} wk__multi;

struct wk_http {
    uv_loop_t *loop;
    wk__multi m[WK_HTTP_MULTI_MAX];
    int nmulti;      /* opened so far, from m[0] */
    int open_timers; /* the client is freed when the last multi's timer has closed */
    int inflight;
    struct wk__req *reqs; /* doubly linked, so shutdown can find them */
    int closing;
    /*
     * Easy handles of finished transfers, kept for the next ones:
     * curl_easy_init and curl_easy_cleanup were a tenth of a call's own cost.
     */
    CURL *idle[WK_HTTP_IDLE_MAX];
    int nidle;
};

typedef struct wk__sock {
    uv_poll_t poll;
    curl_socket_t fd;
    wk__multi *m;
} wk__sock;

/*
 * A request in flight, in one allocation with its header list and, unless
 * the caller lends them (wk_http_opts.borrow), its copies of the header lines
 * and the body: one malloc a request, not one per header line, node and body.
 * The response buffer is the only other one, and only once bytes arrive.
 */
typedef struct wk__req {
    wk_http *h;
    wk__multi *m;
    CURL *easy;
    const char *body; /* the caller's (borrow) or the copy in tail */
    wk_buf resp;      /* grows as the body arrives, up to opts->body_cap */
    int too_big;
    long retry_after_ms;
    uint64_t started_ms;
    wk_http_cb cb;
    void *arg;
    uv_timer_t first_byte; /* aborts a transfer whose status line is late */
    int got_first_byte;
    int first_byte_expired;
    int should_retry;
    long rl_req, rl_tok, rl_reset_ms;
    char errbuf[CURL_ERROR_SIZE];
    struct wk__req *prev, *next;
    /*
     * The header list, built here rather than by curl_slist_append (a node and
     * a copy of the line each): curl only reads the list it is given, and
     * curl_slist_free_all is never called on it. Copied lines and the body
     * follow the nodes.
     */
    struct curl_slist hdr[];
} wk__req;

static void req_closed(uv_handle_t *h)
{
    wk__req *r = h->data;
    wk_buf_release(&r->resp);
    free(r);
}

/* The request is freed once its timer handle is closed. */
static void req_free(wk__req *r)
{
    uv_timer_stop(&r->first_byte);
    uv_close((uv_handle_t *)&r->first_byte, req_closed);
}

static void req_unlink(wk__req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        r->h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

/*
 * Keeps a handle whose transfer is over for the next request, or frees it. It
 * is not reset: its constant options stay, and wk_http_post sets the others.
 */
static void easy_put(wk_http *h, CURL *easy)
{
    if (h->nidle < WK_HTTP_IDLE_MAX && !h->closing)
        h->idle[h->nidle++] = easy;
    else
        curl_easy_cleanup(easy);
}

static void finish_transfer(wk_http *h, CURL *easy, CURLcode code)
{
    wk__req *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    curl_multi_remove_handle(r->m->multi, easy);
    req_unlink(r);
    h->inflight--;
    r->m->inflight--;

    wk_http_result res = {0};
    res.retry_after_ms = r->retry_after_ms;
    res.should_retry = r->should_retry;
    res.rl_remaining_requests = r->rl_req;
    res.rl_remaining_tokens = r->rl_tok;
    res.rl_reset_ms = r->rl_reset_ms;
    res.latency_ms = (long)(wk_now_ms() - r->started_ms);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &res.status);
    if (r->too_big) {
        res.rc = WK_ETOOBIG;
        res.error = "response body over the cap";
    } else if (r->first_byte_expired) {
        res.rc = WK_EIO;
        res.timed_out = 2;
        res.error = "no response within the first-byte timeout";
    } else if (code != CURLE_OK) {
        res.rc = WK_EIO;
        res.timed_out = code == CURLE_OPERATION_TIMEDOUT;
        res.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
    }
    res.body = r->resp.buf ? r->resp.buf : "";
    res.body_len = r->resp.len;
    easy_put(h, easy);
    r->easy = NULL;
    r->cb(r->arg, &res);
    req_free(r);
}

/* Reaps every finished transfer; called after each socket_action. */
static void check_done(wk__multi *m)
{
    wk_http *h = m->h;
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left))) {
        if (msg->msg == CURLMSG_DONE)
            finish_transfer(h, msg->easy_handle, msg->data.result);
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    wk__sock *s = p->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    wk__multi *m = s->m; /* s may be closed inside socket_action */
    curl_multi_socket_action(m->multi, s->fd, flags, &running);
    check_done(m);
}

static void on_timer(uv_timer_t *t)
{
    wk__multi *m = t->data;
    int running;
    curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(m);
}

static void sock_closed(uv_handle_t *hd)
{
    free(hd->data);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    wk__multi *m = userp;
    wk__sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, sock_closed);
            curl_multi_assign(m->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = wk_xcalloc(1, sizeof *s);
        s->fd = fd;
        s->m = m;
        if (uv_poll_init_socket(m->h->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->poll.data = s;
        curl_multi_assign(m->multi, fd, s);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, on_poll);
    return 0;
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    wk__multi *m = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&m->timer);
    else
        uv_timer_start(&m->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

static size_t on_write(char *data, size_t size, size_t n, void *userp)
{
    wk__req *r = userp;
    if (wk_buf_append(&r->resp, data, size * n) != 0) {
        r->too_big = 1;
        return 0; /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return size * n;
}

/* Retry-After is seconds or an HTTP date; retry-after-ms is milliseconds. */
static long parse_retry_after(const char *v, int is_ms)
{
    while (*v == ' ')
        v++;
    char *end;
    double d = strtod(v, &end);
    if (end != v && d >= 0 && d < 1e9)
        return is_ms ? (long)d : (long)(d * 1000);
    if (is_ms)
        return -1;
    time_t when = curl_getdate(v, NULL);
    if (when < 0)
        return -1;
    time_t now = time(NULL);
    return when > now ? (long)(when - now) * 1000 : 0;
}

/* Reset durations come as "1s", "6m0s", "20ms" (OpenAI) or an RFC 3339 time (Anthropic). */
static long parse_duration_ms(const char *v)
{
    while (*v == ' ')
        v++;
    double total = 0;
    int any = 0;
    while (*v) {
        char *end;
        double d = strtod(v, &end);
        if (end == v)
            break;
        v = end;
        if (strncmp(v, "ms", 2) == 0) {
            total += d;
            v += 2;
        } else if (*v == 'h') {
            total += d * 3600000;
            v++;
        } else if (*v == 'm') {
            total += d * 60000;
            v++;
        } else if (*v == 's') {
            total += d * 1000;
            v++;
        } else {
            total += d * 1000; /* a bare number: seconds */
        }
        any = 1;
    }
    /* A far or garbled reset must not overflow: the caller caps waits by --max-wait. */
    if (any)
        return total > 1e12 ? (long)1e12 : total < 0 ? -1 : (long)total;
    time_t when = curl_getdate(v, NULL);
    time_t now = time(NULL);
    return when > now ? (long)(when - now) * 1000 : (when >= 0 ? 0 : -1);
}

static int header_is(const char *line, const char *name, const char **value)
{
    size_t n = strlen(name);
    if (strncasecmp(line, name, n) != 0 || line[n] != ':')
        return 0;
    *value = line + n + 1;
    return 1;
}

static void note_reset(wk__req *r, long ms)
{
    if (ms >= 0 && (r->rl_reset_ms < 0 || ms > r->rl_reset_ms))
        r->rl_reset_ms = ms;
}

static size_t on_header(char *data, size_t size, size_t n, void *userp)
{
    wk__req *r = userp;
    size_t len = size * n;
    char line[256];
    if (!r->got_first_byte) {
        r->got_first_byte = 1;
        uv_timer_stop(&r->first_byte);
    }
    if (len >= sizeof line)
        return len;
    memcpy(line, data, len);
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    /* retry-after-ms is more precise; it wins over Retry-After when both come. */
    if (strncasecmp(line, "retry-after-ms:", 15) == 0) {
        long v = parse_retry_after(line + 15, 1);
        if (v >= 0)
            r->retry_after_ms = v;
    } else if (strncasecmp(line, "retry-after:", 12) == 0 && r->retry_after_ms < 0) {
        r->retry_after_ms = parse_retry_after(line + 12, 0);
    }
    const char *v;
    if (header_is(line, "x-should-retry", &v)) {
        while (*v == ' ')
            v++;
        r->should_retry = strncasecmp(v, "true", 4) == 0    ? 1
                          : strncasecmp(v, "false", 5) == 0 ? 0
                                                            : -1;
    } else if (header_is(line, "x-ratelimit-remaining-requests", &v) ||
               header_is(line, "anthropic-ratelimit-requests-remaining", &v)) {
        r->rl_req = strtol(v, NULL, 10);
    } else if (header_is(line, "x-ratelimit-remaining-tokens", &v) ||
               header_is(line, "anthropic-ratelimit-tokens-remaining", &v)) {
        r->rl_tok = strtol(v, NULL, 10);
    } else if (header_is(line, "x-ratelimit-reset-requests", &v) ||
               header_is(line, "x-ratelimit-reset-tokens", &v) ||
               header_is(line, "anthropic-ratelimit-requests-reset", &v) ||
               header_is(line, "anthropic-ratelimit-tokens-reset", &v)) {
        note_reset(r, parse_duration_ms(v));
    }
    return len;
}

/*
 * curl has no first-byte timeout of its own for HTTP, and its low-speed
 * check works in whole seconds; our own timer is exact.
 */
static void on_first_byte_timeout(uv_timer_t *t)
{
    wk__req *r = t->data;
    if (r->got_first_byte || !r->easy)
        return;
    r->first_byte_expired = 1;
    finish_transfer(r->h, r->easy, CURLE_OPERATION_TIMEDOUT);
}

/* Opens m; 0, or WK_EIO when curl cannot make a multi handle. */
static int multi_open(wk_http *h, wk__multi *m)
{
    m->multi = curl_multi_init();
    if (!m->multi)
        return WK_EIO;
    m->h = h;
    uv_timer_init(h->loop, &m->timer);
    m->timer.data = m;
    h->open_timers++;
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, m);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, m);
    return 0;
}

/*
 * The multi for a new transfer: the first with room, else a new one, else
 * (all WK_HTTP_MULTI_MAX full) the least loaded.
 */
static wk__multi *multi_pick(wk_http *h)
{
    wk__multi *least = &h->m[0];
    for (int i = 0; i < h->nmulti; i++) {
        if (h->m[i].inflight < WK_HTTP_PER_MULTI)
            return &h->m[i];
        if (h->m[i].inflight < least->inflight)
            least = &h->m[i];
    }
    if (h->nmulti < WK_HTTP_MULTI_MAX && multi_open(h, &h->m[h->nmulti]) == 0)
        return &h->m[h->nmulti++];
    return least;
}

wk_http *wk_http_new(uv_loop_t *loop)
{
    static int global_done;
    if (!global_done) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return NULL;
        global_done = 1;
    }
    wk_http *h = wk_xcalloc(1, sizeof *h);
    h->loop = loop;
    if (multi_open(h, &h->m[0]) != 0) {
        free(h);
        return NULL;
    }
    h->nmulti = 1;
    return h;
}

static void timer_closed(uv_handle_t *hd)
{
    wk__multi *m = hd->data;
    wk_http *h = m->h;
    if (--h->open_timers == 0)
        free(h);
}

void wk_http_free(wk_http *h)
{
    if (!h)
        return;
    h->closing = 1;
    while (h->reqs) {
        wk__req *r = h->reqs;
        req_unlink(r);
        curl_multi_remove_handle(r->m->multi, r->easy);
        curl_easy_cleanup(r->easy);
        req_free(r);
    }
    while (h->nidle > 0)
        curl_easy_cleanup(h->idle[--h->nidle]);
    /* Removing the handles made curl send CURL_POLL_REMOVE for their sockets. */
    for (int i = 0; i < h->nmulti; i++) {
        curl_multi_cleanup(h->m[i].multi);
        uv_timer_stop(&h->m[i].timer);
        uv_close((uv_handle_t *)&h->m[i].timer, timer_closed);
    }
}

/*
 * A new easy handle with the options that are the same for every request;
 * NULL when curl cannot make one.
 */
static CURL *handle_new(void)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, WK_HTTP_RECV_BUF);
    return e;
}

/* The request with its header list and, unless borrowed, its copies; one allocation. */
static wk__req *req_new(const char *const *headers, int nheaders, const char *body, size_t len,
                        int borrow)
{
    size_t extra = (size_t)nheaders * sizeof(struct curl_slist);
    if (!borrow) {
        for (int i = 0; i < nheaders; i++)
            extra += strlen(headers[i]) + 1;
        extra += len + 1;
    }
    wk__req *r = wk_xcalloc(1, sizeof *r + extra);
    char *tail = (char *)&r->hdr[nheaders];
    for (int i = 0; i < nheaders; i++) {
        const char *line = headers[i];
        if (!borrow) {
            size_t n = strlen(line) + 1;
            memcpy(tail, line, n);
            line = tail;
            tail += n;
        }
        r->hdr[i].data = (char *)line; /* curl reads the lines, never writes them */
        r->hdr[i].next = i + 1 < nheaders ? &r->hdr[i + 1] : NULL;
    }
    r->body = body;
    if (!borrow) {
        if (len)
            memcpy(tail, body, len);
        tail[len] = '\0';
        r->body = tail;
    }
    return r;
}

int wk_http_post(wk_http *h, const char *url, const char *const *headers, int nheaders,
                 const char *body, size_t len, const wk_http_opts *opts, wk_http_cb cb, void *arg)
{
    int rc = WK_EIO;
    if (nheaders < 0)
        return WK_EIO;
    wk__req *r = req_new(headers, nheaders, body, len, opts->borrow);
    r->h = h;
    r->cb = cb;
    r->arg = arg;
    r->retry_after_ms = -1;
    r->should_retry = -1;
    r->rl_req = r->rl_tok = r->rl_reset_ms = -1;
    uv_timer_init(h->loop, &r->first_byte);
    r->first_byte.data = r;
    wk_buf_init(&r->resp, opts->body_cap);
    r->easy = h->nidle > 0 ? h->idle[--h->nidle] : handle_new();
    if (!r->easy)
        goto cleanup;
    /* Every option a request sets, on every request: the handle keeps the last one's. */
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, url); /* curl copies it */
    if (opts->get) {
        /*
         * A batch's status or results (net/batch.c). Setting POSTFIELDS makes
         * a handle a POST, so the last request's is cleared first, then GET.
         */
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)-1);
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, nheaders > 0 ? r->hdr : NULL);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, opts->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opts->total_timeout_ms);
    r->started_ms = wk_now_ms();
    r->m = multi_pick(h);
    if (curl_multi_add_handle(r->m->multi, e) != CURLM_OK)
        goto cleanup;
    r->m->inflight++;
    if (opts->first_byte_timeout_ms > 0)
        uv_timer_start(&r->first_byte, on_first_byte_timeout, (uint64_t)opts->first_byte_timeout_ms,
                       0);
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    h->inflight++;
    r = NULL;
    rc = 0;
cleanup:
    if (r) {
        if (r->easy)
            curl_easy_cleanup(r->easy);
        req_free(r);
    }
    return rc;
}
