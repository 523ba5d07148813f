/*
 * The batch lane (README "Lanes"): calls of a batch tier wait in their
 * model's open batch, which is sent when it holds --batch-max requests,
 * --batch-linger after its first one, or when nothing else can join it (the
 * driver's batch_idle: every task in flight waits on a batch). To the rest
 * of the dispatcher a batched call is a call whose answer comes late: each
 * request's outcome goes back through wk__call_batched.
 *
 * OpenAI's Batch API (https://platform.openai.com/docs/api-reference/batch):
 * POST /files (purpose=batch, a JSONL of /v1/chat/completions requests whose
 * custom_id is "TASK#ATTEMPT"), POST /batches (completion_window 24h,
 * metadata {"cascade_run": RUN, "cascade_batch": LOCAL}), GET /batches/{id}
 * with a backoff from --batch-poll doubling to 10 min (Retry-After
 * honoured), then GET /files/{id}/content for the output and error files.
 *
 * Never paying twice (store/batchj.h): a batch is journaled with its custom
 * ids before the upload, and its ids once they come back. A rerun finds the
 * batches still out and polls them; a call of the rerun whose custom id is
 * in one of them joins it instead of a new batch. A batch journaled but
 * without a batch id (a crash during the submission) is looked for among
 * the provider's batches by its metadata, never blindly sent again; when
 * the provider has none, its requests were never sent and go out anew. A
 * POST /batches that fails is looked for the same way before it is made
 * again, as the provider may have made the batch before the error. Once a
 * batch is (or may be) at the provider, no error of ours ends it: a poll,
 * a fetch or a lookup that fails is tried again, backing off to 10 min,
 * and only a final status the provider reports (failed, expired,
 * cancelled) fails its unanswered requests.
 */
#include "lanes_int.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calls.h"
#include "lib/util.h"
#include "worker/store/batchj.h"

#define POLL_MAX_MS 600000L
#define TICK_MS 50
#define HTTP_TRIES 5 /* failed uploads in a row, or creates the provider has no trace of */
/*
 * Pages of 100 read when looking for a batch by its metadata. The list is
 * newest first and the batch was made by this run or the one killed before
 * it, so 5,000 batches made on the account since then is far beyond any
 * real gap; the cap bounds a lookup to 50 GETs when the cursor never ends.
 */
#define LIST_PAGES_MAX 50
#define RESULTS_CAP ((size_t)1024 << 20) /* one output file */
#define CUSTOM_ID_MAX 512

enum {
    B_OPEN,
    B_JOURNALING,
    B_UPLOADING,
    B_CREATING,
    B_LISTING,
    B_POLLING,
    B_FETCHING,
    B_CANCELLING,
    B_DONE
};

typedef struct breq {
    wk_call *k; /* NULL: in a batch a rerun found, its call not come yet */
    char *custom_id;
    int answered;
    /* an outcome fetched before its call came (a resumed batch) */
    int have;
    long status;
    char *body, *reason, *msg;
} breq;

typedef struct batch {
    wk__batcher *b;
    const wk_model *m;
    int state;
    breq *v;
    int n, cap;
    char local[96]; /* run id, "-", a number */
    char *file_id, *batch_id, *out_file, *err_file;
    int fetch_step;   /* 0: the output file, 1: the error file */
    int cancelling;   /* --deadline: cancel asked for */
    int cancel_tries; /* cancels that failed */
    long poll_ms;
    int tries;        /* failed uploads in a row */
    int create_fails; /* POST /batches that failed; the batch is looked for after each */
    int create_final; /* the last one was refused outright (a 4xx) */
    char *list_after; /* the lookup's cursor: the last id of the page read; NULL: first page */
    int list_pages;   /* pages of the lookup read */
    int timer_on;
    uv_timer_t timer;
    struct batch *next;
} batch;

struct wk__batcher {
    uv_loop_t *loop;
    wk_http *http;
    const wk_calls_opts *o;
    const wk_config *cfg;
    batch *list;
    int ncalls;
    uv_timer_t tick;
    char run_id[64];
    unsigned seq;
    int resumed; /* the journal's open batches were read */
    int late;    /* --deadline: a quarter of it is left; batches go to sync */
    uv_timer_t deadline;
    int closed; /* handles closed at shutdown */
};

/*
 * Test hook: the worker killed (SIGKILL, as kill -9) at a point of a batch's
 * life, so the tests of "never pay twice" can rerun from there. Points:
 * before_submit (journaled, not uploaded), after_create (the provider has
 * the batch, its id is not journaled), polling, fetching.
 */
static void fault_point(const char *where)
{
    const char *f = getenv("CASCADE_FAULT_BATCH_KILL");
    if (f && strcmp(f, where) == 0) {
        fprintf(stderr, "cascade: CASCADE_FAULT_BATCH_KILL: killed %s\n", where);
        kill(getpid(), SIGKILL);
    }
}

static void step(batch *bt);
static void cancel(batch *bt);
static void on_tick(uv_timer_t *t);
static void fail_all(batch *bt, const char *reason, const char *msg);

/* ---- requests ----------------------------------------------------------------- */

static char *custom_id_of(const wk_call *k)
{
    char *id = wk_xasprintf("%s#%d", wk__call_task(k), wk__call_seq(k));
    if (strlen(id) > CUSTOM_ID_MAX)
        id[CUSTOM_ID_MAX] = '\0'; /* task ids are capped far below this at intake */
    return id;
}

static breq *add_req(batch *bt, wk_call *k, const char *custom_id)
{
    if (bt->n == bt->cap) {
        bt->cap = bt->cap ? bt->cap * 2 : 16;
        bt->v = wk_xrealloc(bt->v, (size_t)bt->cap * sizeof *bt->v);
    }
    breq *r = &bt->v[bt->n++];
    memset(r, 0, sizeof *r);
    r->k = k;
    r->custom_id = wk_xstrdup(custom_id);
    return r;
}

/* Hands one outcome back to its call; the request is done. */
static void answer(batch *bt, breq *r)
{
    wk_call *k = r->k;
    r->answered = 1;
    r->k = NULL;
    bt->b->ncalls--;
    if (bt->b->late && r->reason) /* unanswered, and no time for another batch */
        wk__call_to_sync(k);
    else
        wk__call_batched(k, bt->batch_id, r->status, r->body, r->body ? strlen(r->body) : 0,
                         r->reason, r->msg);
    /* Handed over: a long run keeps no answer of a batch in memory. */
    free(r->body);
    free(r->reason);
    free(r->msg);
    r->body = r->reason = r->msg = NULL;
}

/* Journals the end once every request's outcome went back (the answers' rows commit with it). */
static void maybe_done(batch *bt)
{
    if (bt->state != B_DONE)
        return;
    for (int i = 0; i < bt->n; i++)
        if (!bt->v[i].answered)
            return;
    (void)wk_journal_batch_state(bt->b->o->journal, bt->local, WK_JB_DONE);
}

static void outcome(batch *bt, const char *custom_id, long status, const char *body,
                    const char *reason, const char *msg)
{
    for (int i = 0; i < bt->n; i++) {
        breq *r = &bt->v[i];
        if (r->answered || r->have || strcmp(r->custom_id, custom_id) != 0)
            continue;
        r->have = 1;
        r->status = status;
        r->body = body ? wk_xstrdup(body) : NULL;
        r->reason = reason ? wk_xstrdup(reason) : NULL;
        r->msg = msg ? wk_xstrdup(msg) : NULL;
        if (r->k)
            answer(bt, r);
        return;
    }
}

/* ---- HTTP --------------------------------------------------------------------- */

static const char *base_url(const batch *bt)
{
    return bt->m->provider->base_url;
}

static int headers(const batch *bt, const char *ctype, char **h)
{
    int n = 0;
    if (ctype)
        h[n++] = wk_xasprintf("Content-Type: %s", ctype);
    if (bt->m->provider->key)
        h[n++] = wk_xasprintf("Authorization: Bearer %s", bt->m->provider->key);
    h[n++] = wk_xstrdup("Expect:");
    return n;
}

static void on_http(void *arg, const wk_http_result *res);
static void step_failed(batch *bt, const wk_http_result *res);

/* A request of the batch's protocol; its answer goes to step() through on_http. */
static void request(batch *bt, const char *path, const char *ctype, const char *body, size_t len,
                    int get)
{
    char *h[4];
    int nh = headers(bt, ctype, h);
    char *url = wk_xasprintf("%s%s", base_url(bt), path);
    wk_http_opts ho = {.connect_timeout_ms = 10000,
                       .first_byte_timeout_ms = 300000,
                       .total_timeout_ms = 1800000,
                       .body_cap = RESULTS_CAP,
                       .get = get};
    if (wk_http_post(bt->b->http, url, (const char *const *)h, nh, body ? body : "", len, &ho,
                     on_http, bt) != 0) {
        /* As a failed request: a batch that may be at the provider is not failed for it. */
        wk_http_result r = {.rc = WK_EIO,
                            .error = "could not start an HTTP request of the batch",
                            .retry_after_ms = -1};
        step_failed(bt, &r);
    }
    for (int i = 0; i < nh; i++)
        free(h[i]);
    free(url);
}

static void on_timer(uv_timer_t *t)
{
    batch *bt = t->data;
    bt->timer_on = 0;
    if (bt->state == B_OPEN) {
        /* --batch-linger is over */
        bt->state = B_JOURNALING;
    }
    step(bt);
}

static void later(batch *bt, long ms)
{
    bt->timer_on = 1;
    uv_timer_start(&bt->timer, on_timer, (uint64_t)(ms > 0 ? ms : 0), 0);
}

static const char *doing(int state)
{
    switch (state) {
    case B_UPLOADING:
        return "uploading";
    case B_CREATING:
        return "creating";
    case B_LISTING:
        return "looking for it among the provider's batches";
    case B_POLLING:
        return "polling";
    case B_FETCHING:
        return "fetching results";
    case B_CANCELLING:
        return "cancelling";
    default:
        return "";
    }
}

static void list_from_start(batch *bt)
{
    free(bt->list_after);
    bt->list_after = NULL;
    bt->list_pages = 0;
    bt->state = B_LISTING;
}

/* A wait after a failed step: the provider's Retry-After, else what it brings; 10 min at most. */
static long wait_ms(const wk_http_result *res, long backoff)
{
    /* A Retry-After of days would park the batch and the run: no wait beyond the poll cap. */
    long wait = res->retry_after_ms > 0 ? res->retry_after_ms : backoff;
    return wait < POLL_MAX_MS ? wait : POLL_MAX_MS;
}

/*
 * A failed protocol step. An upload is tried HTTP_TRIES times, then every
 * request fails (nothing was submitted). A failed create is looked for
 * before it is made again. A poll, fetch, lookup or cancel that fails never
 * fails the batch, which may be running at the provider: sending its
 * requests again would pay for them twice.
 */
static void step_failed(batch *bt, const wk_http_result *res)
{
    char *e = res->rc ? wk_escape_ctl(res->error ? res->error : "",
                                      strlen(res->error ? res->error : ""), 200)
                      : wk_escape_ctl(res->body ? res->body : "", res->body_len, 200);
    char *msg = wk_xasprintf("batch %s: %s: %s%ld %s", bt->batch_id ? bt->batch_id : bt->local,
                             doing(bt->state), res->rc ? "transport " : "HTTP ", res->status, e);
    free(e);
    int final = res->rc == 0 && (res->status == 400 || res->status == 401 || res->status == 403 ||
                                 res->status == 404 || res->status == 422);
    long wait;
    switch (bt->state) {
    case B_UPLOADING:
        if (++bt->tries >= HTTP_TRIES || final) {
            fprintf(stderr, "cascade: %s; its requests fail\n", msg);
            fail_all(bt, "batch_failed", msg);
            break;
        }
        later(bt, wait_ms(res, 1000L << bt->tries));
        break;
    case B_CREATING:
        /* The provider may have made the batch before the error (a 500, a reset). */
        bt->create_fails++;
        bt->create_final = final;
        fprintf(stderr,
                "cascade: %s; looking for it among the provider's batches before creating it "
                "again\n",
                msg);
        list_from_start(bt);
        later(bt, wait_ms(res, bt->poll_ms));
        break;
    case B_CANCELLING:
        /* Refused (it may have completed) or lost: what the batch returns is used. */
        bt->cancelling = 0;
        bt->cancel_tries++;
        bt->state = B_POLLING;
        fprintf(stderr, "cascade: %s; polling it, its answers are used as they come\n", msg);
        later(bt, wait_ms(res, bt->poll_ms < 1000 ? bt->poll_ms : 1000));
        break;
    default: /* B_LISTING, B_POLLING, B_FETCHING: the same step again, later */
        wait = wait_ms(res, bt->poll_ms);
        bt->poll_ms = bt->poll_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : bt->poll_ms * 2;
        fprintf(stderr, "cascade: %s; again in %.1f s\n", msg, (double)wait / 1000);
        later(bt, wait);
        break;
    }
    free(msg);
}

/* ---- the protocol ------------------------------------------------------------- */

static char *jsonl_of(batch *bt, size_t *len)
{
    wk_buf b;
    wk_buf_init(&b, SIZE_MAX / 2);
    for (int i = 0; i < bt->n; i++) {
        breq *r = &bt->v[i];
        if (!r->k)
            continue;
        cJSON *line = cJSON_CreateObject();
        cJSON_AddStringToObject(line, "custom_id", r->custom_id);
        cJSON_AddStringToObject(line, "method", "POST");
        cJSON_AddStringToObject(line, "url", "/v1/chat/completions");
        const prov_request *q = wk__call_req(r->k);
        cJSON *body = cJSON_ParseWithLength(q->body, q->body_len);
        cJSON_AddItemToObject(line, "body", body ? body : cJSON_CreateObject());
        char *s = cJSON_PrintUnformatted(line);
        wk_buf_append(&b, s, strlen(s));
        wk_buf_append(&b, "\n", 1);
        free(s);
        cJSON_Delete(line);
    }
    return wk_buf_detach(&b, len);
}

static void upload(batch *bt)
{
    size_t n;
    char *jsonl = jsonl_of(bt, &n);
    static const char bound[] = "cascade-batch-5f1d0c9a";
    wk_buf b;
    wk_buf_init(&b, SIZE_MAX / 2);
    wk_buf_appendf(&b,
                   "--%s\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n"
                   "--%s\r\nContent-Disposition: form-data; name=\"file\"; "
                   "filename=\"%s.jsonl\"\r\nContent-Type: application/jsonl\r\n\r\n",
                   bound, bound, bt->local);
    wk_buf_append(&b, jsonl, n);
    wk_buf_appendf(&b, "\r\n--%s--\r\n", bound);
    free(jsonl);
    size_t len;
    char *body = wk_buf_detach(&b, &len);
    char ctype[96];
    snprintf(ctype, sizeof ctype, "multipart/form-data; boundary=%s", bound);
    bt->state = B_UPLOADING;
    request(bt, "/files", ctype, body, len, 0);
    free(body);
}

static void create(batch *bt)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "input_file_id", bt->file_id);
    cJSON_AddStringToObject(o, "endpoint", "/v1/chat/completions");
    cJSON_AddStringToObject(o, "completion_window", "24h");
    cJSON *md = cJSON_AddObjectToObject(o, "metadata");
    cJSON_AddStringToObject(md, "cascade_run", bt->b->run_id);
    cJSON_AddStringToObject(md, "cascade_batch", bt->local);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    bt->state = B_CREATING;
    request(bt, "/batches", "application/json", s, strlen(s), 0);
    free(s);
}

/*
 * --deadline: the provider stops the batch; what it answered is fetched,
 * the rest goes sync. A cancel that fails leaves the batch polled (asked
 * again at the next poll that finds it running, HTTP_TRIES times at most).
 */
static void cancel(batch *bt)
{
    bt->cancelling = 1;
    bt->state = B_CANCELLING;
    if (!bt->cancel_tries)
        fprintf(stderr,
                "cascade: --deadline: cancelling batch %s; its unanswered requests go to "
                "the sync lane\n",
                bt->batch_id);
    char *path = wk_xasprintf("/batches/%s/cancel", bt->batch_id);
    request(bt, path, "application/json", "{}", 2, 0);
    free(path);
}

static void poll_now(batch *bt)
{
    char *path = wk_xasprintf("/batches/%s", bt->batch_id);
    request(bt, path, NULL, NULL, 0, 1);
    free(path);
}

static void fetch(batch *bt)
{
    const char *id = bt->fetch_step == 0 ? bt->out_file : bt->err_file;
    while (!id && bt->fetch_step < 1) {
        bt->fetch_step++;
        id = bt->err_file;
    }
    if (!id) {
        /* Every file read: a request with no line in either is that attempt's failure. */
        bt->state = B_DONE;
        for (int i = 0; i < bt->n; i++)
            if (!bt->v[i].have)
                outcome(bt, bt->v[i].custom_id, 0, NULL, "batch_missing",
                        "the batch's results have no line for this request");
        maybe_done(bt);
        return;
    }
    bt->state = B_FETCHING;
    char *path = wk_xasprintf("/files/%s/content", id);
    request(bt, path, NULL, NULL, 0, 1);
    free(path);
}

/* One line of an output or error file: the request's response or its error. */
static void result_line(batch *bt, const cJSON *line)
{
    const char *cid = wk_jstr(line, "custom_id");
    if (!cid)
        return;
    const cJSON *resp = cJSON_GetObjectItemCaseSensitive(line, "response");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(line, "error");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(resp, "status_code");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(resp, "body");
    if (cJSON_IsNumber(sc) && body) {
        /* Checked before the cast: a huge or non-finite double as a long is undefined. */
        double d = sc->valuedouble;
        if (!isfinite(d) || d < 100 || d > 599 || d != floor(d)) {
            outcome(bt, cid, 0, NULL, "batch_bad_response",
                    "the batch's line has no HTTP status from 100 to 599");
            return;
        }
        char *b = cJSON_PrintUnformatted(body);
        outcome(bt, cid, (long)d, b, NULL, NULL);
        free(b);
        return;
    }
    const char *code = wk_jstr(err, "code");
    const char *msg = wk_jstr(err, "message");
    char reason[PROV_REASON_MAX];
    /* OpenAI's codes for these already say batch_ (batch_expired, batch_cancelled). */
    snprintf(reason, sizeof reason, "%s%s", code && !strncmp(code, "batch_", 6) ? "" : "batch_",
             code ? code : "error");
    char *m = wk_escape_ctl(msg ? msg : "no response", strlen(msg ? msg : "no response"), 300);
    outcome(bt, cid, 0, NULL, reason, m);
    free(m);
}

static void results(batch *bt, const char *body, size_t len)
{
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        cJSON *line = cJSON_ParseWithLength(p, (size_t)(e - p));
        if (line)
            result_line(bt, line);
        cJSON_Delete(line);
        p = e + 1;
    }
}

/* The batch object of a GET or POST /batches: its status and files. */
static void batch_object(batch *bt, const cJSON *o)
{
    const char *status = wk_jstr(o, "status");
    const char *out = wk_jstr(o, "output_file_id"), *err = wk_jstr(o, "error_file_id");
    if (out && !bt->out_file)
        bt->out_file = wk_xstrdup(out);
    if (err && !bt->err_file)
        bt->err_file = wk_xstrdup(err);
    if (!status || !strcmp(status, "validating") || !strcmp(status, "in_progress") ||
        !strcmp(status, "finalizing") || !strcmp(status, "cancelling")) {
        bt->state = B_POLLING;
        if (bt->b->late && !bt->cancelling && bt->cancel_tries < HTTP_TRIES) {
            cancel(bt);
            return;
        }
        if (bt->b->late && bt->poll_ms > 1000)
            bt->poll_ms = 1000; /* what it answered before the cancel is still to be fetched */
        later(bt, bt->poll_ms);
        bt->poll_ms = bt->poll_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : bt->poll_ms * 2;
        return;
    }
    if (strcmp(status, "completed") != 0 && !out && !err) {
        /* failed, expired or cancelled with nothing done: each request fails alike. */
        char *msg = wk_xasprintf("batch %s ended %s", bt->batch_id, status);
        char reason[PROV_REASON_MAX];
        snprintf(reason, sizeof reason, "batch_%s", status);
        fail_all(bt, reason, msg);
        free(msg);
        return;
    }
    bt->fetch_step = 0;
    fetch(bt);
}

/* A list cursor goes into the query as it is: a batch id of the provider's usual characters. */
static int cursor_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= WK_BATCH_ID_MAX)
        return 0;
    return strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == n;
}

/*
 * A page of the provider's batches (newest first): the one tagged with this
 * batch's local id is polled; else the next page is read, up to
 * LIST_PAGES_MAX; else the batch never reached the provider.
 */
static void listed(batch *bt, const cJSON *list)
{
    const cJSON *o;
    const char *last = NULL;
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(list, "data"))
    {
        const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
        const char *run = wk_jstr(md, "cascade_run"), *local = wk_jstr(md, "cascade_batch");
        const char *id = wk_jstr(o, "id");
        if (id && run && local && !strcmp(run, bt->b->run_id) && !strcmp(local, bt->local)) {
            bt->batch_id = wk_xstrdup(id);
            (void)wk_journal_batch_ids(bt->b->o->journal, bt->local, NULL, id);
            fprintf(stderr, "cascade: batch %s: found at the provider after %s; polling it\n", id,
                    bt->create_fails ? "a failed create" : "a restart");
            bt->poll_ms = bt->b->o->batch_poll_ms;
            bt->state = B_POLLING;
            poll_now(bt);
            return;
        }
        if (id)
            last = id;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(list, "has_more"))) {
        if (++bt->list_pages < LIST_PAGES_MAX && last && cursor_ok(last)) {
            free(bt->list_after);
            bt->list_after = wk_xstrdup(last);
            step(bt); /* the next page */
            return;
        }
        fprintf(stderr,
                "cascade: batch %s: not among the provider's %d most recent batches; taken as "
                "never sent\n",
                bt->local, bt->list_pages * 100);
    }
    if (bt->create_fails) {
        /* This run's create failed and the provider has no such batch. */
        if (bt->create_final || bt->create_fails >= HTTP_TRIES) {
            char *msg = wk_xasprintf("batch %s: the provider did not create it", bt->local);
            fail_all(bt, "batch_failed", msg);
            free(msg);
        } else {
            create(bt);
        }
        return;
    }
    /* Never reached the provider: its requests go out again in a new batch. */
    (void)wk_journal_batch_state(bt->b->o->journal, bt->local, WK_JB_NOT_SENT);
    bt->state = B_OPEN;
    snprintf(bt->local, sizeof bt->local, "%s-%u", bt->b->run_id, ++bt->b->seq);
    for (int i = 0; i < bt->n; i++)
        if (!bt->v[i].k) { /* its call has not come: it joins when it does */
            free(bt->v[i].custom_id);
            bt->v[i] = bt->v[--bt->n];
            i--;
        }
    later(bt, bt->b->o->batch_linger_ms);
    uv_timer_start(&bt->b->tick, on_tick, TICK_MS, TICK_MS); /* and sent when nothing can join */
}

static void on_http(void *arg, const wk_http_result *res)
{
    batch *bt = arg;
    int ok = res->rc == 0 && res->status >= 200 && res->status <= 299;
    if (!ok) {
        step_failed(bt, res);
        return;
    }
    bt->tries = 0;
    if (bt->state == B_FETCHING) {
        fault_point("fetching");
        results(bt, res->body, res->body_len);
        bt->fetch_step++;
        if (bt->fetch_step == 1 && !bt->err_file)
            bt->fetch_step++;
        if (bt->fetch_step > 1) {
            free(bt->out_file);
            free(bt->err_file);
            bt->out_file = bt->err_file = NULL;
        }
        fetch(bt);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(res->body, res->body_len);
    const char *id = wk_jstr(j, "id");
    switch (bt->state) {
    case B_UPLOADING:
        if (!id) {
            step_failed(bt, res); /* a 2xx without a file id */
            break;
        }
        bt->file_id = wk_xstrdup(id);
        (void)wk_journal_batch_ids(bt->b->o->journal, bt->local, id, NULL);
        create(bt);
        break;
    case B_CREATING:
        if (!id) {
            step_failed(bt, res); /* a 2xx without a batch id: looked for */
            break;
        }
        fault_point("after_create");
        bt->batch_id = wk_xstrdup(id);
        /* The id, journaled: a rerun polls this batch instead of sending its requests again. */
        (void)wk_journal_batch_ids(bt->b->o->journal, bt->local, NULL, id);
        bt->poll_ms = bt->b->o->batch_poll_ms;
        bt->state = B_POLLING;
        later(bt, bt->poll_ms);
        break;
    case B_LISTING:
        listed(bt, j);
        break;
    case B_POLLING:
        fault_point("polling");
        batch_object(bt, j);
        break;
    case B_CANCELLING:
        /* The batch as the cancel left it: cancelling, cancelled, or completed already. */
        bt->state = B_POLLING;
        batch_object(bt, j);
        break;
    default:
        break;
    }
    cJSON_Delete(j);
}

/* Runs once the batch's rows are committed: the upload may start. */
static void journaled(void *arg, int status)
{
    batch *bt = arg;
    if (status != 0) {
        fail_all(bt, "journal", "the batch could not be journaled");
        return;
    }
    fault_point("before_submit");
    upload(bt);
}

static void step(batch *bt)
{
    switch (bt->state) {
    case B_JOURNALING: {
        if (bt->n == 0) {
            bt->state = B_DONE;
            return;
        }
        const char **ids = wk_xcalloc((size_t)bt->n, sizeof *ids);
        const char **tasks = wk_xcalloc((size_t)bt->n, sizeof *tasks);
        int *seqs = wk_xcalloc((size_t)bt->n, sizeof *seqs);
        for (int i = 0; i < bt->n; i++) {
            ids[i] = bt->v[i].custom_id;
            tasks[i] = wk__call_task(bt->v[i].k);
            seqs[i] = wk__call_seq(bt->v[i].k);
        }
        (void)wk_journal_batch_new(bt->b->o->journal, bt->local, bt->m->name, ids, tasks, seqs,
                                   bt->n);
        free(ids);
        free(tasks);
        free(seqs);
        wk_journal_then(bt->b->o->journal, journaled, bt);
        break;
    }
    case B_UPLOADING:
        upload(bt);
        break;
    case B_CREATING:
        create(bt);
        break;
    case B_LISTING: {
        char *path = bt->list_after ? wk_xasprintf("/batches?limit=100&after=%s", bt->list_after)
                                    : wk_xstrdup("/batches?limit=100");
        request(bt, path, NULL, NULL, 0, 1);
        free(path);
        break;
    }
    case B_POLLING:
        poll_now(bt);
        break;
    case B_FETCHING:
        fetch(bt);
        break;
    default:
        break;
    }
}

/* Every request not answered yet fails alike (it may be retried in a later batch). */
static void fail_all(batch *bt, const char *reason, const char *msg)
{
    bt->state = B_DONE;
    for (int i = 0; i < bt->n; i++)
        if (!bt->v[i].have)
            outcome(bt, bt->v[i].custom_id, 0, NULL, reason, msg);
    maybe_done(bt);
}

/* ---- open batches and sending ------------------------------------------------- */

static void send_batch(batch *bt)
{
    if (bt->state != B_OPEN)
        return;
    if (bt->timer_on) {
        uv_timer_stop(&bt->timer);
        bt->timer_on = 0;
    }
    bt->state = B_JOURNALING;
    step(bt);
}

static batch *new_batch(wk__batcher *b, const wk_model *m)
{
    batch *bt = wk_xcalloc(1, sizeof *bt);
    bt->b = b;
    bt->m = m;
    bt->state = B_OPEN;
    bt->poll_ms = b->o->batch_poll_ms;
    snprintf(bt->local, sizeof bt->local, "%s-%u", b->run_id, ++b->seq);
    uv_timer_init(b->loop, &bt->timer);
    bt->timer.data = bt;
    bt->next = b->list;
    b->list = bt;
    return bt;
}

static void on_tick(uv_timer_t *t)
{
    wk__batcher *b = t->data;
    int open = 0;
    for (batch *bt = b->list; bt; bt = bt->next)
        open += bt->state == B_OPEN && bt->n > 0;
    if (!open) {
        uv_timer_stop(t);
        return;
    }
    if (!b->o->batch_idle || !b->o->batch_idle(b->o->batch_idle_arg))
        return;
    for (batch *bt = b->list; bt; bt = bt->next)
        if (bt->state == B_OPEN && bt->n > 0)
            send_batch(bt);
    uv_timer_stop(t);
}

/* The journal's batches still out, read once: polled, or looked for at the provider. */
static void resume(wk__batcher *b)
{
    b->resumed = 1;
    wk_jbatch *jb;
    int n;
    if (wk_journal_batches_open(b->o->journal, &jb, &n))
        return;
    for (int i = 0; i < n; i++) {
        const wk_model *m = wk_config_model(b->cfg, jb[i].model);
        if (!m)
            continue;
        batch *bt = new_batch(b, m);
        snprintf(bt->local, sizeof bt->local, "%s", jb[i].local);
        for (int k = 0; k < jb[i].n; k++)
            add_req(bt, NULL, jb[i].custom_ids[k]);
        if (jb[i].batch_id) {
            bt->batch_id = wk_xstrdup(jb[i].batch_id);
            bt->state = B_POLLING;
            fprintf(stderr,
                    "cascade: batch %s (%d requests) is still out from the last run; "
                    "polling it\n",
                    bt->batch_id, bt->n);
        } else {
            bt->state = B_LISTING;
        }
        later(bt, 0);
    }
    wk_jbatches_free(jb, n);
}

void wk__batcher_add(wk__batcher *b, wk_call *k)
{
    if (!b->resumed)
        resume(b);
    if (b->late) { /* --deadline: no time left for a batch */
        wk__call_to_sync(k);
        return;
    }
    b->ncalls++;
    char *cid = custom_id_of(k);
    const wk_model *m = wk__call_dep(k);
    /* A request a rerun found in a batch already out joins it (its outcome may be in). */
    for (batch *bt = b->list; bt; bt = bt->next) {
        if (bt->state == B_OPEN || bt->state == B_JOURNALING)
            continue;
        for (int i = 0; i < bt->n; i++) {
            breq *r = &bt->v[i];
            if (r->k || r->answered || strcmp(r->custom_id, cid) != 0)
                continue;
            r->k = k;
            free(cid);
            if (r->have) {
                answer(bt, r);
                maybe_done(bt);
            }
            return;
        }
    }
    batch *open = NULL;
    for (batch *bt = b->list; bt && !open; bt = bt->next)
        if (bt->state == B_OPEN && bt->m == m)
            open = bt;
    if (!open)
        open = new_batch(b, m);
    add_req(open, k, cid);
    free(cid);
    if (open->n == 1)
        later(open, b->o->batch_linger_ms);
    if (open->n >= b->o->batch_max)
        send_batch(open);
    else
        uv_timer_start(&b->tick, on_tick, TICK_MS, TICK_MS);
}

/* A quarter of --deadline is left: open batches go sync, batches out are cancelled. */
static void on_deadline(uv_timer_t *t)
{
    wk__batcher *b = t->data;
    b->late = 1;
    fprintf(stderr,
            "cascade: --deadline: %.0f s left; batch tiers' calls go to the sync lane from now "
            "on\n",
            (double)b->o->deadline_ms / 4000);
    for (batch *bt = b->list; bt; bt = bt->next) {
        if (bt->state == B_OPEN) {
            if (bt->timer_on)
                uv_timer_stop(&bt->timer);
            bt->timer_on = 0;
            bt->state = B_DONE;
            for (int i = 0; i < bt->n; i++) {
                breq *r = &bt->v[i];
                if (!r->k)
                    continue;
                wk_call *k = r->k;
                r->k = NULL;
                r->answered = 1;
                b->ncalls--;
                wk__call_to_sync(k);
            }
        } else if (bt->state == B_POLLING && bt->timer_on && bt->batch_id) {
            uv_timer_stop(&bt->timer);
            bt->timer_on = 0;
            cancel(bt);
        }
    }
}

int wk__batcher_calls(const wk__batcher *b)
{
    return b->ncalls;
}

/* ---- lifecycle ---------------------------------------------------------------- */

wk__batcher *wk__batcher_new(uv_loop_t *loop, wk_http *http, const wk_calls_opts *opts,
                             const wk_config *cfg)
{
    wk__batcher *b = wk_xcalloc(1, sizeof *b);
    b->loop = loop;
    b->http = http;
    b->o = opts;
    b->cfg = cfg;
    if (wk_journal_run_id(opts->journal, b->run_id, sizeof b->run_id))
        snprintf(b->run_id, sizeof b->run_id, "run-%llx", (unsigned long long)wk_now_ms());
    uv_timer_init(loop, &b->tick);
    b->tick.data = b;
    uv_timer_init(loop, &b->deadline);
    b->deadline.data = b;
    if (opts->deadline_at) {
        uint64_t at = opts->deadline_at - (uint64_t)opts->deadline_ms / 4, now = wk_now_ms();
        uv_timer_start(&b->deadline, on_deadline, at > now ? at - now : 0, 0);
    }
    return b;
}

static void batch_closed(uv_handle_t *h)
{
    batch *bt = h->data;
    for (int i = 0; i < bt->n; i++) {
        free(bt->v[i].custom_id);
        free(bt->v[i].body);
        free(bt->v[i].reason);
        free(bt->v[i].msg);
    }
    free(bt->v);
    free(bt->file_id);
    free(bt->batch_id);
    free(bt->out_file);
    free(bt->err_file);
    free(bt->list_after);
    free(bt);
}

static void batcher_closed(uv_handle_t *h)
{
    wk__batcher *b = h->data;
    if (++b->closed == 2) /* the tick and the deadline timers */
        free(b);
}

void wk__batcher_free(wk__batcher *b)
{
    if (!b)
        return;
    batch *bt = b->list;
    while (bt) {
        batch *next = bt->next;
        uv_timer_stop(&bt->timer);
        uv_close((uv_handle_t *)&bt->timer, batch_closed);
        bt = next;
    }
    uv_timer_stop(&b->tick);
    uv_timer_stop(&b->deadline);
    uv_close((uv_handle_t *)&b->tick, batcher_closed);
    uv_close((uv_handle_t *)&b->deadline, batcher_closed);
}
