/*
 * The batch lane (README "Lanes"): calls of a batch tier wait in their
 * model's open batch, which is sent when it holds --batch-max requests,
 * --batch-linger after its first one, or when nothing else can join it (the
 * driver's batch_idle: every task in flight waits on a batch). To the rest
 * of the dispatcher a batched call is a call whose answer comes late: each
 * request's outcome goes back through wk__call_batched.
 *
 * How each step is spelled is its provider's batch format (lanes_int.h):
 * OpenAI's Batch API (batch_openai.c: an uploaded JSONL file, then the
 * batch), Anthropic's Message Batches (batch_anthropic.c) and Gemini's
 * batch mode (batch_gemini.c), both one create with the requests inside.
 * Here is what they share: the journal, the poll with a backoff from
 * --batch-poll doubling to 10 min (Retry-After honoured), the results
 * (fetched, or inline in the batch), the cancel, and the lookup.
 *
 * Never paying twice (store/batchj.h): a batch is journaled with its custom
 * ids before the upload, and its ids once they come back. A rerun finds the
 * batches still out and polls them; a call of the rerun whose custom id is
 * in one of them joins it instead of a new batch. A batch journaled but
 * without a batch id (a crash during the submission) is looked for among
 * the provider's batches by its tag (OpenAI's metadata, Gemini's
 * displayName) or, Anthropic's having none, by its results' custom ids
 * once the batches that may be it have ended; never blindly sent again.
 * When the provider has none, its requests were never sent and go out
 * anew. A create that fails is looked for the same way before it is made
 * again, as the provider may have made the batch before the error. Once a
 * batch is (or may be) at the provider, no error of ours ends it: a poll,
 * a fetch or a lookup that fails is tried again, backing off to 10 min,
 * and only a final status the provider reports (failed, expired,
 * cancelled) fails its unanswered requests.
 */
#include "lanes_int.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "calls.h"
#include "lib/util.h"
#include "worker/store/batchj.h"

#define POLL_MAX_MS 600000L
#define TICK_MS 50
#define HTTP_TRIES 5 /* failed uploads in a row, or creates the provider has no trace of */
/*
 * Pages of 100 read when looking for a lost batch. The list is
 * newest first and the batch was made by this run or the one killed before
 * it, so 5,000 batches made on the account since then is far beyond any
 * real gap; the cap bounds a lookup to 50 GETs when the cursor never ends.
 */
#define LIST_PAGES_MAX 50
#define RESULTS_CAP ((size_t)1024 << 20) /* one output file */
#define CUSTOM_ID_MAX 512                /* a "TASK#SEQ" custom id (wk__bcustom_id) */

enum {
    B_OPEN,
    B_JOURNALING,
    B_UPLOADING,
    B_CREATING,
    B_LISTING,
    B_CHECKING,
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
    char local[96];    /* run id, "-", a number, "-t", the time it was made (local_tag) */
    const wk__bfmt *f; /* its provider's format */
    char *file_id, *batch_id;
    char *files[2];   /* the results to fetch (OpenAI: the output and the error file) */
    int fetch_step;   /* the next of files[] */
    int cancelling;   /* --deadline: cancel asked for */
    int cancel_tries; /* cancels that failed */
    long poll_ms;
    int tries;        /* failed uploads in a row */
    int create_fails; /* POST /batches that failed; the batch is looked for after each */
    int create_final; /* the last one was refused outright (a 4xx) */
    char *list_after; /* the lookup's cursor: the last id of the page read; NULL: first page */
    int list_pages;   /* pages of the lookup read */
    int waiting;      /* the lookup saw a batch that may be ours, not ended */
    char **cands;     /* the lookup's ended batches that may be ours */
    int ncands, cand; /* how many; the one being checked */
    int cand_lines, cand_ours; /* its results' lines; those with a custom id of ours */
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
static void create(batch *bt);
static void poll_now(batch *bt);
static void cancel(batch *bt);
static void on_tick(uv_timer_t *t);
static void fail_all(batch *bt, const char *reason, const char *msg);

/* ---- requests ----------------------------------------------------------------- */

/* Our tag of a batch: the run, a number, and the time ("-t" SECONDS), as a lookup may need it. */
static void local_tag(batch *bt)
{
    snprintf(bt->local, sizeof bt->local, "%s-%u-t%lld", bt->b->run_id, ++bt->b->seq,
             (long long)time(NULL));
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
    n += bt->f->auth(bt->m->provider, h + n);
    h[n++] = wk_xstrdup("Expect:");
    return n;
}

static void on_http(void *arg, const wk_http_result *res);
static void step_failed(batch *bt, const wk_http_result *res);

/* A request of the batch's protocol; its answer goes to step() through on_http. */
static void request(batch *bt, const char *path, const char *ctype, const char *body, size_t len,
                    int get)
{
    char *h[5];
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
    case B_CHECKING:
        return "reading the results of a batch that may be it";
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
    bt->waiting = 0;
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
    default: /* B_LISTING, B_CHECKING, B_POLLING, B_FETCHING: the same step again, later */
        wait = wait_ms(res, bt->poll_ms);
        bt->poll_ms = bt->poll_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : bt->poll_ms * 2;
        fprintf(stderr, "cascade: %s; again in %.1f s\n", msg, (double)wait / 1000);
        later(bt, wait);
        break;
    }
    free(msg);
}

/* ---- the protocol ------------------------------------------------------------- */

/* The batch's requests whose calls are here, as its format builds the submission from them. */
static void submission(batch *bt, wk__bsub *s)
{
    const char **ids = wk_xcalloc((size_t)bt->n + 1, sizeof *ids);
    const prov_request **reqs = wk_xcalloc((size_t)bt->n + 1, sizeof *reqs);
    int n = 0;
    for (int i = 0; i < bt->n; i++) {
        if (!bt->v[i].k)
            continue;
        ids[n] = bt->v[i].custom_id;
        reqs[n++] = wk__call_req(bt->v[i].k);
    }
    *s = (wk__bsub){.m = bt->m,
                    .run_id = bt->b->run_id,
                    .local = bt->local,
                    .n = n,
                    .custom_ids = ids,
                    .reqs = (const prov_request *const *)reqs};
}

static void submission_free(wk__bsub *s)
{
    free((void *)s->custom_ids);
    free((void *)s->reqs);
}

/* The first step of the submission: the upload (OpenAI), or the create itself. */
static void upload(batch *bt)
{
    if (!bt->f->upload || bt->file_id) {
        create(bt);
        return;
    }
    wk__bsub s;
    submission(bt, &s);
    size_t len;
    const char *path;
    char ctype[96];
    char *body = bt->f->upload(&s, &len, &path, ctype, sizeof ctype);
    submission_free(&s);
    bt->state = B_UPLOADING;
    request(bt, path, ctype, body, len, 0);
    free(body);
}

static void create(batch *bt)
{
    wk__bsub s;
    submission(bt, &s);
    char *path;
    size_t len;
    char *body = bt->f->create(&s, bt->file_id, &path, &len);
    submission_free(&s);
    bt->state = B_CREATING;
    request(bt, path, "application/json", body, len, 0);
    free(body);
    free(path);
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
    char *path = wk_xasprintf("%s%s%s", bt->f->batch_path, bt->batch_id, bt->f->cancel_suffix);
    request(bt, path, "application/json", "{}", 2, 0);
    free(path);
}

static void poll_now(batch *bt)
{
    char *path = wk_xasprintf("%s%s", bt->f->batch_path, bt->batch_id);
    request(bt, path, NULL, NULL, 0, 1);
    free(path);
}

/* Every request with no outcome once all its results are read: that attempt's failure. */
static void results_read(batch *bt)
{
    bt->state = B_DONE;
    for (int i = 0; i < bt->n; i++)
        if (!bt->v[i].have)
            outcome(bt, bt->v[i].custom_id, 0, NULL, "batch_missing",
                    "the batch's results have no line for this request");
    maybe_done(bt);
}

static void fetch(batch *bt)
{
    while (bt->fetch_step < 2 && !bt->files[bt->fetch_step])
        bt->fetch_step++;
    if (bt->fetch_step >= 2) {
        results_read(bt);
        return;
    }
    bt->state = B_FETCHING;
    char *path = bt->f->fetch_path(bt->batch_id, bt->files[bt->fetch_step]);
    request(bt, path, NULL, NULL, 0, 1);
    free(path);
}

/* One line of results: the request's response or its error. */
static void result_line(batch *bt, const cJSON *line)
{
    wk__bout o;
    if (bt->f->line(line, &o) == 0)
        outcome(bt, o.custom_id, o.status, o.body, o.reason[0] ? o.reason : NULL, o.msg);
    wk__bout_clear(&o);
}

/* Calls fn on each JSON line of a JSONL body. */
static void each_line(const char *body, size_t len, void (*fn)(batch *, const cJSON *), batch *bt)
{
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        cJSON *line = cJSON_ParseWithLength(p, (size_t)(e - p));
        if (line)
            fn(bt, line);
        cJSON_Delete(line);
        p = e + 1;
    }
}

/* The batch object of a poll or a cancel: running, or its results where they are. */
static void batch_object(batch *bt, const cJSON *o)
{
    wk__bobj ob;
    if (bt->f->object(o, &ob) != 0)
        ob.phase = WK_BS_RUNNING; /* no batch object: polled again */
    for (int i = 0; i < 2; i++)
        if (ob.files[i] && !bt->files[i]) {
            bt->files[i] = ob.files[i];
            ob.files[i] = NULL;
        }
    switch (ob.phase) {
    case WK_BS_RUNNING:
        bt->state = B_POLLING;
        if (bt->b->late && !bt->cancelling && bt->cancel_tries < HTTP_TRIES) {
            cancel(bt);
            break;
        }
        if (bt->b->late && bt->poll_ms > 1000)
            bt->poll_ms = 1000; /* what it answered before the cancel is still to be fetched */
        later(bt, bt->poll_ms);
        bt->poll_ms = bt->poll_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : bt->poll_ms * 2;
        break;
    case WK_BS_FAILED: {
        /* failed, expired or cancelled with nothing done: each request fails alike. */
        char *msg = wk_xasprintf("batch %s ended %s", bt->batch_id, ob.status);
        char reason[PROV_REASON_MAX];
        snprintf(reason, sizeof reason, "batch_%s", ob.status);
        fail_all(bt, reason, msg);
        free(msg);
        break;
    }
    case WK_BS_INLINE: {
        fault_point("fetching");
        const cJSON *line;
        cJSON_ArrayForEach(line, ob.inline_results)
        {
            result_line(bt, line);
        }
        results_read(bt);
        break;
    }
    default:
        bt->fetch_step = 0;
        fetch(bt);
        break;
    }
    wk__bobj_clear(&ob);
}

static void found(batch *bt, const char *id)
{
    bt->batch_id = wk_xstrdup(id);
    (void)wk_journal_batch_ids(bt->b->o->journal, bt->local, NULL, id);
    fprintf(stderr, "cascade: batch %s: found at the provider after %s; polling it\n", id,
            bt->create_fails ? "a failed create" : "a restart");
    bt->poll_ms = bt->b->o->batch_poll_ms;
    bt->state = B_POLLING;
    poll_now(bt);
}

static void cands_clear(batch *bt)
{
    for (int i = 0; i < bt->ncands; i++)
        free(bt->cands[i]);
    free(bt->cands);
    bt->cands = NULL;
    bt->ncands = bt->cand = 0;
}

/* The lookup is over and found nothing of ours: made again, or taken as never sent. */
static void not_found(batch *bt)
{
    cands_clear(bt);
    if (bt->waiting) {
        /* A batch that may be ours is running: looked at again once it may have ended. */
        fprintf(stderr,
                "cascade: batch %s: a batch at the provider may be this one; waiting for it to "
                "end to compare its requests\n",
                bt->local);
        list_from_start(bt);
        later(bt, bt->poll_ms);
        bt->poll_ms = bt->poll_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS : bt->poll_ms * 2;
        return;
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
    local_tag(bt);
    free(bt->file_id);
    bt->file_id = NULL;
    for (int i = 0; i < bt->n; i++)
        if (!bt->v[i].k) { /* its call has not come: it joins when it does */
            free(bt->v[i].custom_id);
            bt->v[i] = bt->v[--bt->n];
            i--;
        }
    later(bt, bt->b->o->batch_linger_ms);
    uv_timer_start(&bt->b->tick, on_tick, TICK_MS, TICK_MS); /* and sent when nothing can join */
}

/* The next candidate's results are read (Anthropic: a batch is known by its requests). */
static void check_next(batch *bt)
{
    if (bt->cand >= bt->ncands) {
        not_found(bt);
        return;
    }
    bt->state = B_CHECKING;
    bt->cand_lines = bt->cand_ours = 0;
    char *path = bt->f->fetch_path(bt->cands[bt->cand], NULL);
    request(bt, path, NULL, NULL, 0, 1);
    free(path);
}

static void check_line(batch *bt, const cJSON *line)
{
    wk__bout o;
    if (bt->f->line(line, &o) == 0) {
        bt->cand_lines++;
        for (int i = 0; i < bt->n; i++)
            if (!strcmp(bt->v[i].custom_id, o.custom_id)) {
                bt->cand_ours++;
                break;
            }
    }
    wk__bout_clear(&o);
}

/* A candidate's results: ours when they hold exactly this batch's custom ids. */
static void checked(batch *bt, const char *body, size_t len)
{
    each_line(body, len, check_line, bt);
    if (bt->cand_lines == bt->n && bt->cand_ours == bt->n) {
        char *id = wk_xstrdup(bt->cands[bt->cand]);
        cands_clear(bt);
        found(bt, id);
        free(id);
        return;
    }
    bt->cand++;
    check_next(bt);
}

/*
 * A page of the provider's batches (newest first): the one its format
 * knows as ours is polled; else the next page is read, up to
 * LIST_PAGES_MAX; then the candidates' results are compared; else the batch
 * never reached the provider.
 */
static void listed(batch *bt, const cJSON *page)
{
    wk__blist l;
    bt->f->list(page, bt->b->run_id, bt->local, bt->n, &l);
    if (l.found) {
        cands_clear(bt);
        found(bt, l.found);
        wk__blist_clear(&l);
        return;
    }
    bt->waiting |= l.waiting;
    for (int i = 0; i < l.ncands; i++) {
        bt->cands = wk_xrealloc(bt->cands, (size_t)(bt->ncands + 1) * sizeof *bt->cands);
        bt->cands[bt->ncands++] = l.cands[i];
        l.cands[i] = NULL;
    }
    if (l.next) {
        if (++bt->list_pages < LIST_PAGES_MAX) {
            free(bt->list_after);
            bt->list_after = l.next;
            l.next = NULL;
            wk__blist_clear(&l);
            step(bt); /* the next page */
            return;
        }
        fprintf(stderr,
                "cascade: batch %s: not among the provider's %d most recent batches; taken as "
                "never sent\n",
                bt->local, bt->list_pages * 100);
    }
    wk__blist_clear(&l);
    bt->cand = 0;
    check_next(bt);
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
        each_line(res->body, res->body_len, result_line, bt);
        bt->fetch_step++;
        if (bt->fetch_step > 1)
            for (int i = 0; i < 2; i++) {
                free(bt->files[i]);
                bt->files[i] = NULL;
            }
        fetch(bt);
        return;
    }
    if (bt->state == B_CHECKING) {
        checked(bt, res->body, res->body_len);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(res->body, res->body_len);
    char *id = NULL;
    switch (bt->state) {
    case B_UPLOADING:
        if (!(id = bt->f->created_id(j))) {
            step_failed(bt, res); /* a 2xx without a file id */
            break;
        }
        bt->file_id = id;
        id = NULL;
        (void)wk_journal_batch_ids(bt->b->o->journal, bt->local, bt->file_id, NULL);
        create(bt);
        break;
    case B_CREATING:
        if (!(id = bt->f->created_id(j))) {
            step_failed(bt, res); /* a 2xx without a batch id: looked for */
            break;
        }
        fault_point("after_create");
        bt->batch_id = id;
        id = NULL;
        /* The id, journaled: a rerun polls this batch instead of sending its requests again. */
        (void)wk_journal_batch_ids(bt->b->o->journal, bt->local, NULL, bt->batch_id);
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
    free(id);
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
        char *path = bt->f->list_path(bt->list_after);
        request(bt, path, NULL, NULL, 0, 1);
        free(path);
        break;
    }
    case B_CHECKING:
        check_next(bt); /* the same candidate again */
        break;
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
    bt->f = wk__bfmt_of(m->provider->api);
    local_tag(bt);
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
    const wk_model *m = wk__call_dep(k);
    char *cid = wk__bfmt_of(m->provider->api)->custom_id(wk__call_task(k), wk__call_seq(k));
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
    free(bt->files[0]);
    free(bt->files[1]);
    free(bt->list_after);
    for (int i = 0; i < bt->ncands; i++)
        free(bt->cands[i]);
    free(bt->cands);
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

/* ---- what the formats share --------------------------------------------------- */

const wk__bfmt *wk__bfmt_of(const char *api)
{
    if (!strcmp(api, "anthropic"))
        return &wk__bfmt_anthropic;
    if (!strcmp(api, "gemini"))
        return &wk__bfmt_gemini;
    return &wk__bfmt_openai; /* the openai api: OpenAI and what speaks its Batch API */
}

void wk__bobj_clear(wk__bobj *o)
{
    free(o->files[0]);
    free(o->files[1]);
    o->files[0] = o->files[1] = NULL;
}

void wk__bout_clear(wk__bout *o)
{
    free(o->body);
    free(o->msg);
    o->body = o->msg = NULL;
}

void wk__blist_clear(wk__blist *l)
{
    free(l->found);
    for (int i = 0; i < l->ncands; i++)
        free(l->cands[i]);
    free(l->cands);
    free(l->next);
    memset(l, 0, sizeof *l);
}

char *wk__bcustom_id(const char *task, int seq)
{
    char *id = wk_xasprintf("%s#%d", task, seq);
    if (strlen(id) > CUSTOM_ID_MAX)
        id[CUSTOM_ID_MAX] = '\0';
    return id;
}

char *wk__bcreated_id(const cJSON *o)
{
    const char *id = wk_jstr(o, "id");
    return id && wk__bid_ok(id, 0) ? wk_xstrdup(id) : NULL;
}

int wk__bid_ok(const char *id, int slash)
{
    size_t n = strlen(id);
    if (n == 0 || n >= WK_BATCH_ID_MAX || id[0] == '/' || id[n - 1] == '/' || strstr(id, "//"))
        return 0;
    return strspn(id, slash ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-/"
                            : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
           n;
}

cJSON *wk__breq_body(const prov_request *q)
{
    cJSON *body = cJSON_ParseWithLength(q->body, q->body_len);
    return body ? body : cJSON_CreateObject();
}
