/*
 * One embeddings call per task for the semantic start tier (README "Similar
 * tasks start where they succeeded"): the task's prompt to the models file's
 * embeddings model, at the deployments the task's data class may reach (the
 * router's policy hands them over), walked in order on a failure; no
 * retries, as a failure costs only the advice (the task then starts at its
 * cascade's first tier). Its cost is charged to the run budget (calls.h).
 */
#ifndef WK_EMBED_H_NET
#define WK_EMBED_H_NET

#include <uv.h>

#include "calls.h"
#include "worker/config.h"

/* The prompt's first bytes sent (about 8,000 tokens, within common embedding models' limit). */
#define WK_EMBED_INPUT_MAX 32000

typedef struct wk_embedder wk_embedder;

typedef struct wk_embed_outcome {
    int ok;
    const float *vec; /* ok: dim floats, borrowed for the callback */
    int dim;
    long prompt_tokens;     /* as the provider said, else estimated (bytes / 4) */
    int usage_estimated;    /* the provider gave no usage */
    double cost_usd;        /* charged */
    const wk_model *served; /* the deployment that answered, or the last one tried */
    const char *reason;     /* !ok: "http_500", "timeout", "bad_response", ... */
    const char *message;    /* !ok: one line */
} wk_embed_outcome;

typedef void (*wk_embed_cb)(void *arg, const wk_embed_outcome *o);

/* calls (borrowed) is charged; o gives the timeouts and the body cap. NULL: curl failed. */
wk_embedder *wk_embedder_new(uv_loop_t *loop, wk_calls *calls, const wk_calls_opts *o);
/* Aborts calls in flight (no callbacks); run the loop afterwards. NULL is a no-op. */
void wk_embedder_free(wk_embedder *e);

/*
 * Embeds text (cut to WK_EMBED_INPUT_MAX bytes on a UTF-8 boundary) at the
 * deployments deps (copied; n > 0), asking for `dimensions` (0: the
 * model's). 0: cb fires once, from the loop. Non-zero: nothing was sent and
 * cb never fires.
 */
int wk_embed(wk_embedder *e, const wk_deployments *deps, int dimensions, const char *task_id,
             const char *text, wk_embed_cb cb, void *arg);

#endif
