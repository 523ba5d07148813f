/*
 * The embeddings calls (embed.h): a request per task on its own curl multi
 * (http.h), the deployments walked in order, the reply parsed by
 * providers/embeddings.c and charged to the run.
 */
#include "embed.h"

#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "lib/util.h"
#include "worker/cost.h"
#include "worker/providers/prov.h"
#include "worker/similar.h"

typedef struct ereq ereq;

struct wk_embedder {
    wk_http *http;
    wk_calls *calls;
    wk_http_opts hopts;
    ereq *live; /* in flight, for shutdown */
};

struct ereq {
    wk_embedder *e;
    wk_deployments deps;
    int at; /* the deployment being tried */
    int dimensions;
    char *task_id;
    char *text;
    size_t len;
    wk_embed_cb cb;
    void *arg;
    ereq *prev, *next;
};

wk_embedder *wk_embedder_new(uv_loop_t *loop, wk_calls *calls, const wk_calls_opts *o)
{
    wk_http *h = wk_http_new(loop);
    if (!h)
        return NULL;
    wk_embedder *e = wk_xcalloc(1, sizeof *e);
    e->http = h;
    e->calls = calls;
    e->hopts = (wk_http_opts){.connect_timeout_ms = o->connect_timeout_ms,
                              .first_byte_timeout_ms = o->first_byte_timeout_ms,
                              .total_timeout_ms = o->total_timeout_ms,
                              .body_cap = o->body_cap};
    return e;
}

static void req_free(ereq *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        r->e->live = r->next;
    if (r->next)
        r->next->prev = r->prev;
    free(r->task_id);
    free(r->text);
    free(r);
}

void wk_embedder_free(wk_embedder *e)
{
    if (!e)
        return;
    wk_http_free(e->http); /* no callbacks from here on */
    while (e->live)
        req_free(e->live);
    free(e);
}

static int send_at(ereq *r);

static void on_http(void *arg, const wk_http_result *res)
{
    ereq *r = arg;
    const wk_model *m = r->deps.v[r->at];
    char reason[PROV_REASON_MAX] = "", msg[512] = "";
    float *vec = NULL;
    int dim = 0;
    long pt = -1;
    int rc = 0;
    if (res->rc) {
        snprintf(reason, sizeof reason, "%s",
                 res->rc == WK_ETOOBIG ? "body_too_big"
                 : res->timed_out      ? "timeout"
                                       : "transport");
        snprintf(msg, sizeof msg, "%s", res->error ? res->error : "transport error");
        rc = WK_EIO;
    } else {
        rc = prov_embed_parse(res->status, res->body, res->body_len, WK_SIMILAR_DIM_MAX, &vec, &dim,
                              &pt, reason, msg, sizeof msg);
    }
    if (rc && r->at + 1 < r->deps.n) {
        r->at++; /* the next deployment the task may reach */
        if (send_at(r) == 0)
            return;
    }
    wk_embed_outcome o = {.ok = rc == 0, .served = m, .reason = reason, .message = msg};
    if (rc == 0) {
        o.vec = vec;
        o.dim = dim;
        o.usage_estimated = pt < 0;
        o.prompt_tokens = pt < 0 ? (long)(r->len + 3) / 4 : pt;
        o.cost_usd = wk_cost(m, o.prompt_tokens, 0, 0);
        wk_calls_charge(r->e->calls, o.cost_usd);
    }
    wk_embed_cb cb = r->cb;
    void *cbarg = r->arg;
    req_free(r);
    cb(cbarg, &o);
    free(vec);
}

static int send_at(ereq *r)
{
    prov_request req;
    prov_embed_build(r->deps.v[r->at], r->task_id, r->text, r->len, r->dimensions, &req);
    int rc = wk_http_post(r->e->http, req.url, (const char *const *)req.headers, req.nheaders,
                          req.body, req.body_len, &r->e->hopts, on_http, r);
    prov_request_clear(&req);
    return rc;
}

int wk_embed(wk_embedder *e, const wk_deployments *deps, int dimensions, const char *task_id,
             const char *text, wk_embed_cb cb, void *arg)
{
    if (!e || !deps || deps->n < 1 || !text)
        return WK_EINVAL;
    size_t len = strlen(text);
    if (len > WK_EMBED_INPUT_MAX) {
        len = WK_EMBED_INPUT_MAX;
        while (len > 0 && ((unsigned char)text[len] & 0xC0) == 0x80)
            len--; /* not inside a UTF-8 sequence */
    }
    ereq *r = wk_xcalloc(1, sizeof *r);
    r->e = e;
    r->deps = *deps;
    r->dimensions = dimensions;
    r->task_id = wk_xstrdup(task_id);
    r->text = wk_xstrndup(text, len);
    r->len = len;
    r->cb = cb;
    r->arg = arg;
    r->next = e->live;
    if (e->live)
        e->live->prev = r;
    e->live = r;
    if (send_at(r)) {
        req_free(r);
        return WK_EIO;
    }
    return 0;
}
