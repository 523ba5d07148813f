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

/* The worst case of a call: the whole prompt uncached plus max_tokens of output. */
double wk_cost_worst(const wk_model *m, long est_prompt_tokens);

#endif
