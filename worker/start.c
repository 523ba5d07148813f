/*
 * The semantic start tier's driver part (start.h): where a task's embedding
 * comes from, the advice read from the index, the "start" note of the
 * result, and the history kept as tasks finish.
 */
#include "start.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cost.h"
#include "lib/embed.h"
#include "lib/util.h"
#include "policy.h"
#include "similar.h"
#include "worker/net/embed.h"
#include "worker/store/history.h"

struct wk_starter {
    wk_starter_opts o;
    wk_similar *index;
    wk_embedder *emb; /* NULL in replay */
};

/* The cascade's place in the config (the index's group); -1: none. */
static int group_of(const wk_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->ncascades; i++)
        if (strcmp(cfg->cascades[i].name, name) == 0)
            return i;
    return -1;
}

static int load_row(void *arg, const char *cascade, const float *vec, int dim, int tier)
{
    wk_starter *s = arg;
    int g = group_of(s->o.cfg, cascade);
    /* Another cascade's rows, or another length than the index's first: not comparable. */
    if (g >= 0 && s->o.cfg->cascades[g].start_similar)
        (void)wk_similar_add(s->index, g, vec, dim, tier);
    return 0;
}

int wk_starter_new(const wk_starter_opts *o, wk_starter **out, char *err, size_t errlen)
{
    *out = NULL;
    int any = 0;
    for (int i = 0; i < o->cfg->ncascades; i++)
        any |= o->cfg->cascades[i].start_similar;
    if (!any || !o->cfg->embed_model)
        return 0;
    long cap = o->history_max > 0 ? o->history_max : WK_SIMILAR_CAP_DEFAULT;
    if (cap > WK_SIMILAR_CAP_MAX)
        return wk_errf(WK_EINVAL, err, errlen, "--history-max: at most %ld", WK_SIMILAR_CAP_MAX);
    wk_starter *s = wk_xcalloc(1, sizeof *s);
    s->o = *o;
    s->index = wk_similar_new(cap, o->cfg->ncascades);
    const char *model = o->cfg->embed_model->name;
    int rc = 0;
    /* The other run's rows are older than this journal's: loaded first, evicted first. */
    if (o->history_from)
        rc = wk_history_load_file(o->history_from, model, cap, load_row, s, err, errlen);
    if (!rc && wk_history_load(o->journal, model, cap, load_row, s))
        rc = wk_errf(WK_EIO, err, errlen, "cannot read the similar-start history of the journal");
    if (!rc && !o->recs) {
        s->emb = wk_embedder_new(o->loop, o->calls, o->co);
        if (!s->emb)
            rc = wk_errf(WK_EIO, err, errlen, "cannot set up libcurl for the embeddings calls");
    }
    if (rc) {
        wk_starter_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void wk_starter_free(wk_starter *s)
{
    if (!s)
        return;
    wk_embedder_free(s->emb);
    wk_similar_free(s->index);
    free(s);
}

long wk_starter_history(const wk_starter *s)
{
    return s ? wk_similar_count(s->index, -1) : 0;
}

void wk_start_release(wk_start *ts)
{
    free(ts->vec);
    memset(ts, 0, sizeof *ts);
}

/* ts's embedding becomes a copy of the dim floats of v. */
static void set_vec(wk_start *ts, const float *v, int dim)
{
    free(ts->vec);
    ts->vec = wk_xmalloc((size_t)dim * sizeof *ts->vec);
    memcpy(ts->vec, v, (size_t)dim * sizeof *ts->vec);
    ts->dim = dim;
}

/* The advice for the task's embedding (ts->vec), as the result's "start" note; *tier: -1 none. */
static cJSON *advise(wk_starter *s, const wk_start *ts, const wk_cascade *c, double cost, int *tier)
{
    cJSON *n = cJSON_CreateObject();
    cJSON_AddStringToObject(n, "by", "similar");
    wk_similar_pick p;
    int g = group_of(s->o.cfg, c->name);
    int rc = wk_similar_pick_tier(s->index, g, ts->vec, ts->dim, c->start_k, c->start_min_history,
                                  c->ntiers, &p);
    *tier = p.tier;
    if (p.tier >= 0)
        cJSON_AddNumberToObject(n, "tier", p.tier);
    else
        cJSON_AddNullToObject(n, "tier");
    cJSON_AddNumberToObject(n, "history", (double)p.history);
    cJSON_AddNumberToObject(n, "neighbours", p.neighbours);
    if (p.tier >= 0)
        cJSON_AddNumberToObject(n, "votes", p.votes);
    if (p.neighbours > 0)
        cJSON_AddNumberToObject(n, "nearest", (double)(int)(p.nearest * 1000 + 0.5) / 1000);
    if (cost > 0)
        cJSON_AddNumberToObject(n, "cost_usd", cost);
    char *why = NULL;
    if (rc)
        why = wk_xasprintf("the embedding has %d numbers where the history's have %d", ts->dim,
                           wk_similar_dim(s->index));
    else if (p.history < c->start_min_history || p.history == 0)
        why = wk_xasprintf("history of %ld tasks is under min_history %ld", p.history,
                           c->start_min_history);
    else if (p.tier < 0)
        why = wk_xasprintf("no tier accepted half of the %d nearest", p.neighbours);
    if (why)
        cJSON_AddStringToObject(n, "reason", why);
    free(why);
    return n;
}

/* Feeds ready the START with the note (consumed). */
static void go(wk_start_fn ready, void *arg, cJSON *note, int tier, double cost)
{
    wk_event ev = {.kind = WK_EV_START,
                   .now_ms = (int64_t)wk_now_ms(),
                   .start_tier = tier > 0 ? tier : 0,
                   .start_note = note,
                   .start_cost_usd = cost};
    ready(arg, &ev);
    cJSON_Delete(note);
}

/* Advice for the embedding now in ts; the start row journaled before the first call. */
static void advise_and_go(wk_starter *s, wk_start *ts, const wk_task *t, double cost,
                          wk_start_fn ready, void *arg)
{
    int tier;
    cJSON *note = advise(s, ts, wk_task_cascade(t), cost, &tier);
    char *text = cJSON_PrintUnformatted(note);
    /* A failed write is the journal's failure; the first call's SENT row hears of it. */
    (void)wk_history_start_put(s->o.journal, wk_task_id(t), text, ts->vec, ts->dim);
    free(text);
    go(ready, arg, note, tier, cost);
}

/* A start without advice, the note saying why. */
static void plain(wk_starter *s, const wk_task *t, const char *why, double cost, wk_start_fn ready,
                  void *arg)
{
    cJSON *note = cJSON_CreateObject();
    cJSON_AddStringToObject(note, "by", "similar");
    cJSON_AddNullToObject(note, "tier");
    cJSON_AddStringToObject(note, "reason", why);
    if (cost > 0)
        cJSON_AddNumberToObject(note, "cost_usd", cost);
    char *text = cJSON_PrintUnformatted(note);
    (void)wk_history_start_put(s->o.journal, wk_task_id(t), text, NULL, 0);
    free(text);
    go(ready, arg, note, 0, cost);
}

static void on_embedding(void *arg, const wk_embed_outcome *o)
{
    wk_start *ts = arg;
    ts->busy = 0;
    if (!o->ok) {
        char *why = wk_xasprintf("the embeddings call to %s failed (%s: %s): the task starts at "
                                 "the cascade's first tier",
                                 o->served ? o->served->name : "?", o->reason, o->message);
        plain(ts->s, ts->t, why, 0, ts->ready, ts->arg);
        free(why);
        return;
    }
    set_vec(ts, o->vec, o->dim);
    advise_and_go(ts->s, ts, ts->t, o->cost_usd, ts->ready, ts->arg);
}

/* Replay: the recording's vector for (task, embeddings model), else the hashed one. */
static void replay_embedding(wk_starter *s, wk_start *ts, const wk_task *t, const char *prompt,
                             double *cost)
{
    const wk_model *m = s->o.cfg->embed_model;
    const wk_rec *r = wk_recs_next(s->o.recs, wk_task_id(t), m->name, 0);
    size_t len = strlen(prompt);
    if (r && r->embedding) {
        set_vec(ts, r->embedding, r->embedding_dim);
    } else {
        free(ts->vec);
        ts->dim = s->o.cfg->embed_dimensions > 0 ? s->o.cfg->embed_dimensions : WK_EMBED_HASH_DIM;
        ts->vec = wk_xmalloc((size_t)ts->dim * sizeof *ts->vec);
        wk_embed_hash(prompt, len, ts->vec, ts->dim);
    }
    /* Priced like the call would be: the recorded usage, else bytes / 4 tokens. */
    long pt = r && r->embedding && r->prompt_tokens >= 0 ? r->prompt_tokens : (long)(len + 3) / 4;
    *cost = r && r->embedding && r->cost_usd >= 0 ? r->cost_usd : wk_cost(m, pt, 0, 0);
}

void wk_start_begin(wk_starter *s, wk_start *ts, const wk_task *t, int resumed, wk_start_fn ready,
                    void *arg)
{
    const wk_cascade *c = wk_task_cascade(t);
    if (!s || !c->start_similar) {
        wk_event ev = {.kind = WK_EV_START, .now_ms = (int64_t)wk_now_ms()};
        ready(arg, &ev);
        return;
    }
    if (resumed) {
        /* The tier it started at before, so the journal's attempts line up; no second call. */
        char *text = NULL;
        float *vec = NULL;
        int dim = 0;
        cJSON *note = NULL;
        if (wk_history_start_get(s->o.journal, wk_task_id(t), &text, &vec, &dim))
            note = cJSON_Parse(text);
        free(text);
        free(ts->vec);
        ts->vec = vec;
        ts->dim = dim;
        const cJSON *tier = cJSON_GetObjectItemCaseSensitive(note, "tier");
        const cJSON *cost = cJSON_GetObjectItemCaseSensitive(note, "cost_usd");
        wk_event ev = {.kind = WK_EV_START,
                       .now_ms = (int64_t)wk_now_ms(),
                       .start_tier = cJSON_IsNumber(tier) ? tier->valueint : 0,
                       .start_note = note,
                       .start_cost_usd = cJSON_IsNumber(cost) ? cost->valuedouble : 0};
        ready(arg, &ev);
        cJSON_Delete(note);
        return;
    }
    const char *prompt = wk_jstr(wk_task_json(t), "prompt");
    if (!prompt || !*prompt) {
        plain(s, t, "the task has no prompt to embed", 0, ready, arg);
        return;
    }
    /* The embeddings provider is a provider: the task's data class must reach it. */
    wk_deployments deps;
    wk_policy_deployments(&c->policy, wk_jstr(wk_task_json(t), "data_class"), s->o.cfg->embed_model,
                          &deps);
    if (deps.n == 0) {
        char *why =
            wk_xasprintf("data class \"%s\" may reach no deployment of the embeddings "
                         "model %s: the task starts at the cascade's first tier",
                         wk_jstr(wk_task_json(t), "data_class"), s->o.cfg->embed_model->name);
        plain(s, t, why, 0, ready, arg);
        free(why);
        return;
    }
    /* The task's budget holds the embedding too: budget_usd 0 calls only free models. */
    const cJSON *budget = cJSON_GetObjectItemCaseSensitive(wk_task_json(t), "budget_usd");
    size_t len = strlen(prompt);
    double worst =
        wk_cost(s->o.cfg->embed_model,
                (long)((len < WK_EMBED_INPUT_MAX ? len : WK_EMBED_INPUT_MAX) + 3) / 4, 0, 0);
    if (cJSON_IsNumber(budget) && worst > budget->valuedouble) {
        char *why = wk_xasprintf("task budget $%.6g cannot hold the embedding (up to $%.6g): the "
                                 "task starts at the cascade's first tier",
                                 budget->valuedouble, worst);
        plain(s, t, why, 0, ready, arg);
        free(why);
        return;
    }
    if (s->o.recs) {
        double cost = 0;
        replay_embedding(s, ts, t, prompt, &cost);
        advise_and_go(s, ts, t, cost, ready, arg);
        return;
    }
    ts->s = s;
    ts->t = t;
    ts->ready = ready;
    ts->arg = arg;
    ts->busy = 1;
    if (wk_embed(s->emb, &deps, s->o.cfg->embed_dimensions, wk_task_id(t), prompt, on_embedding,
                 ts)) {
        ts->busy = 0;
        plain(s, t,
              "the embeddings call could not be sent: the task starts at the cascade's "
              "first tier",
              0, ready, arg);
    }
}

int wk_start_finish(wk_starter *s, wk_start *ts, const wk_task *t, const cJSON *result)
{
    const wk_cascade *c = wk_task_cascade(t);
    if (!s || !c->start_similar || !ts->vec || !s->o.journal)
        return 0;
    const char *status = wk_jstr(result, "status");
    if (!status || (strcmp(status, "accepted") != 0 && strcmp(status, "exhausted") != 0))
        return 0; /* an error or a budget says nothing about which tier would have passed */
    const cJSON *tier = cJSON_GetObjectItemCaseSensitive(result, "tier");
    int tr =
        strcmp(status, "accepted") == 0 && cJSON_IsNumber(tier) ? tier->valueint : WK_SIMILAR_NONE;
    int rc = wk_history_add(s->o.journal, wk_task_id(t), c->name, s->o.cfg->embed_model->name,
                            ts->vec, ts->dim, tr);
    if (!rc)
        (void)wk_similar_add(s->index, group_of(s->o.cfg, c->name), ts->vec, ts->dim, tr);
    return rc;
}
