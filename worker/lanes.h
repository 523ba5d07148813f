/*
 * Lanes: how a tier's calls are sent, and what they cost. "sync" is the
 * plain call; "batch" waits in a provider batch (net/batch.c) and "flex"
 * goes to the provider's flex tier (OpenAI service_tier "flex", Gemini's
 * flex setting). Both bill about half the sync price, so every price a call
 * is charged at (cost.h) is the price of the lane it ran on.
 */
#ifndef WK_LANES_H
#define WK_LANES_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* A tier's lane; WK_RAN_* is where a call ends up when it leaves its lane for sync. */
enum {
    WK_LANE_SYNC = 0,
    WK_LANE_BATCH = 1,
    WK_LANE_FLEX = 2,
    WK_LANES = 3,
    WK_RAN_FLEX_SYNC = 3,  /* flex had no capacity for --flex-max-wait */
    WK_RAN_BATCH_SYNC = 4, /* its batch was too late for --deadline */
};

/* USD per million tokens on one lane. */
typedef struct wk_prices {
    double input, output, cached_input;
} wk_prices;

/* "sync", "batch", "flex", "flex→sync", "batch→sync"; static strings. */
const char *wk_lane_name(int lane);
/* The lane a name spells, or -1. */
int wk_lane_parse(const char *name);
/* The lane whose prices apply to a call that ran on `ran` (flex→sync is priced sync). */
int wk_lane_priced(int ran);

struct wk_provider;
struct wk_model;
struct wk_tier;

/*
 * For config.c: a provider's batch_discount and flex_discount (fractions of
 * the sync price, default 0.5); a model's batch_* and flex_* prices (else the
 * sync prices times its provider's discount); a tier's lane. Each returns 0,
 * or WK_ECONFIG with err naming the file and the field.
 */
int wk__lanes_provider(struct wk_provider *pv, const cJSON *p, const char *path, char *err,
                       size_t errlen);
int wk__lanes_model(struct wk_model *md, const cJSON *m, const char *path, char *err,
                    size_t errlen);
int wk__lanes_tier(struct wk_tier *tr, const cJSON *t, const char *path, int i, char *err,
                   size_t errlen);

#endif
