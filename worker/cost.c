/*
 * Prices (see cost.h).
 */
#include "cost.h"

double wk_cost_at(const wk_model *m, int ran, long prompt_tokens, long completion_tokens,
                  long cached_tokens)
{
    /* The sync lane reads the model's own fields: models built in code have no lane[] filled. */
    int l = wk_lane_priced(ran);
    wk_prices sync = {m->input_usd_per_mtok, m->output_usd_per_mtok, m->cached_input_usd_per_mtok};
    const wk_prices *p = l == WK_LANE_SYNC ? &sync : &m->lane[l];
    double pt = prompt_tokens > 0 ? (double)prompt_tokens : 0;
    double ct = completion_tokens > 0 ? (double)completion_tokens : 0;
    double cached = cached_tokens > 0 ? (double)cached_tokens : 0;
    if (cached > pt)
        cached = pt;
    return ((pt - cached) * p->input + cached * p->cached_input + ct * p->output) / 1e6;
}

double wk_cost(const wk_model *m, long prompt_tokens, long completion_tokens, long cached_tokens)
{
    return wk_cost_at(m, WK_LANE_SYNC, prompt_tokens, completion_tokens, cached_tokens);
}

double wk_cost_worst_at(const wk_model *m, int ran, long est_prompt_tokens)
{
    return wk_cost_at(m, ran, est_prompt_tokens, m->max_tokens, 0);
}

double wk_cost_worst(const wk_model *m, long est_prompt_tokens)
{
    return wk_cost_worst_at(m, WK_LANE_SYNC, est_prompt_tokens);
}

double wk_cost_charged_at(const wk_model *m, int ran, long est_prompt_tokens, long prompt_tokens,
                          long completion_tokens, long cached_tokens, int *estimated)
{
    int bad_pt = prompt_tokens < 0 || prompt_tokens > WK_COST_TOKENS_MAX ||
                 (m->context > 0 && prompt_tokens > 2 * m->context);
    int bad_ct = completion_tokens < 0 || completion_tokens > WK_COST_TOKENS_MAX ||
                 (m->max_tokens > 0 && completion_tokens > 2 * m->max_tokens);
    *estimated = (bad_pt ? WK_COST_EST_PROMPT : 0) | (bad_ct ? WK_COST_EST_COMPLETION : 0);
    if (bad_pt) {
        prompt_tokens = est_prompt_tokens;
        cached_tokens = 0;
    }
    if (bad_ct)
        completion_tokens = m->max_tokens;
    return wk_cost_at(m, ran, prompt_tokens, completion_tokens, cached_tokens);
}

double wk_cost_charged(const wk_model *m, long est_prompt_tokens, long prompt_tokens,
                       long completion_tokens, long cached_tokens, int *estimated)
{
    return wk_cost_charged_at(m, WK_LANE_SYNC, est_prompt_tokens, prompt_tokens, completion_tokens,
                              cached_tokens, estimated);
}
