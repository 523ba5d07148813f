/*
 * Lanes and their prices (see lanes.h). Kept out of config.c so the lane
 * fields are read in one place; config.c calls these once per provider,
 * model and tier.
 */
#include "lanes.h"

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "lib/util.h"

static const char *const NAMES[] = {"sync", "batch", "flex", "flex→sync", "batch→sync"};

const char *wk_lane_name(int lane)
{
    return lane >= 0 && lane <= WK_RAN_BATCH_SYNC ? NAMES[lane] : "sync";
}

int wk_lane_parse(const char *name)
{
    for (int i = 0; name && i < WK_LANES; i++)
        if (strcmp(name, NAMES[i]) == 0)
            return i;
    return -1;
}

int wk_lane_priced(int ran)
{
    return ran < 0 || ran >= WK_LANES ? WK_LANE_SYNC : ran;
}

/* 1 when o has the field; then *out is its value, or the call fails on a non-number. */
static int opt_num(const cJSON *o, const char *name, double *out, int *bad)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!f)
        return 0;
    if (!cJSON_IsNumber(f) || f->valuedouble < 0) {
        *bad = 1;
        return 0;
    }
    *out = f->valuedouble;
    return 1;
}

int wk__lanes_provider(wk_provider *pv, const cJSON *p, const char *path, char *err, size_t errlen)
{
    /* About half the sync price on all three APIs (their batch and flex price lists). */
    pv->batch_discount = 0.5;
    pv->flex_discount = 0.5;
    int bad = 0;
    opt_num(p, "batch_discount", &pv->batch_discount, &bad);
    if (bad || pv->batch_discount > 1)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: providers.%s.batch_discount must be a number from 0 to 1", path,
                       pv->name);
    opt_num(p, "flex_discount", &pv->flex_discount, &bad);
    if (bad || pv->flex_discount > 1)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: providers.%s.flex_discount must be a number from 0 to 1", path,
                       pv->name);
    return 0;
}

int wk__lanes_model(wk_model *md, const cJSON *m, const char *path, char *err, size_t errlen)
{
    static const char *const PREFIX[WK_LANES] = {NULL, "batch", "flex"};
    md->lane[WK_LANE_SYNC] = (wk_prices){.input = md->input_usd_per_mtok,
                                         .output = md->output_usd_per_mtok,
                                         .cached_input = md->cached_input_usd_per_mtok};
    for (int l = WK_LANE_BATCH; l < WK_LANES; l++) {
        double d = l == WK_LANE_BATCH ? md->provider->batch_discount : md->provider->flex_discount;
        wk_prices *p = &md->lane[l];
        p->input = md->input_usd_per_mtok * d;
        p->output = md->output_usd_per_mtok * d;
        p->cached_input = md->cached_input_usd_per_mtok * d;
        struct {
            const char *what;
            double *out;
        } f[] = {{"input", &p->input}, {"output", &p->output}, {"cached_input", &p->cached_input}};
        int have_input = 0;
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
            char name[64];
            snprintf(name, sizeof name, "%s_%s_usd_per_mtok", PREFIX[l], f[k].what);
            int bad = 0;
            int have = opt_num(m, name, f[k].out, &bad);
            if (bad)
                return wk_errf(WK_ECONFIG, err, errlen, "%s: models.%s.%s must be a number >= 0",
                               path, md->name, name);
            if (k == 0)
                have_input = have;
            /* A lane's own input price is its cache-read price unless that is given too. */
            if (k == 2 && !have && have_input)
                p->cached_input = p->input;
        }
    }
    return 0;
}

int wk__lanes_tier(wk_tier *tr, const cJSON *t, const char *path, int i, char *err, size_t errlen)
{
    tr->lane = WK_LANE_SYNC;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(t, "lane");
    if (!f)
        return 0;
    int lane = cJSON_IsString(f) ? wk_lane_parse(f->valuestring) : -1;
    if (lane < 0)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: tiers[%d].lane must be \"sync\", \"batch\" or \"flex\"", path, i);
    /* Anthropic has batches but no flex tier. */
    if (lane == WK_LANE_FLEX && strcmp(tr->model->provider->api, "anthropic") == 0)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: tiers[%d].lane: model %s is on an anthropic provider, which has no "
                       "flex tier (use \"batch\" or \"sync\")",
                       path, i, tr->model->name);
    /* Batches are built per model; a vote across models needs each answer at once. */
    if (lane == WK_LANE_BATCH && tr->nagree > 0)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: tiers[%d].lane: \"batch\" is not supported with agree.models", path, i);
    tr->lane = lane;
    return 0;
}
