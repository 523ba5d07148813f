/*
 * Prices: usage times the models file's prices. Pure, shared by the router
 * (per-attempt cost) and the dispatcher (budget settlement), so both agree
 * to the nano-dollar.
 */
#ifndef WK_COST_H
#define WK_COST_H

#include "config.h"

/*
 * Cost in USD of one call: uncached input at the input price, cache reads at
 * the cached-input price, output at the output price. Negative counts are 0.
 */
double wk_cost(const wk_model *m, long prompt_tokens, long completion_tokens, long cached_tokens);

/*
 * What a call is charged from the usage its provider reported: the counts
 * when they are sane, else the worst case in their place (est_prompt_tokens
 * for the prompt, max_tokens for the output), with *estimated set
 * (WK_COST_EST_PROMPT and/or WK_COST_EST_COMPLETION: which were replaced). Not sane:
 * missing or unreadable (< 0; parsers give -1), a completion over twice
 * max_tokens, a prompt over twice the context window, or either over
 * WK_COST_TOKENS_MAX. An under-count would let budgets and totals drift.
 */
#define WK_COST_TOKENS_MAX 100000000L
enum { WK_COST_EST_PROMPT = 1, WK_COST_EST_COMPLETION = 2 };
double wk_cost_charged(const wk_model *m, long est_prompt_tokens, long prompt_tokens,
                       long completion_tokens, long cached_tokens, int *estimated);

/* The worst case of a call: the whole prompt uncached plus max_tokens of output. */
double wk_cost_worst(const wk_model *m, long est_prompt_tokens);

/*
 * The same three on a lane (lanes.h): `ran` is where the call ran
 * (WK_LANE_* or WK_RAN_FLEX_SYNC), priced at that lane's prices. The
 * functions above are these on WK_LANE_SYNC.
 */
double wk_cost_at(const wk_model *m, int ran, long prompt_tokens, long completion_tokens,
                  long cached_tokens);
double wk_cost_charged_at(const wk_model *m, int ran, long est_prompt_tokens, long prompt_tokens,
                          long completion_tokens, long cached_tokens, int *estimated);
double wk_cost_worst_at(const wk_model *m, int ran, long est_prompt_tokens);

#endif
