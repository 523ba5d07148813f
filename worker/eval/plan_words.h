/*
 * A plan written as the eval tables write it, "a*1>b*2>c", turned into a
 * cascade file, so `replay --plan` takes the plans a user reads in a table
 * without writing a cascade file for each (`tune` writes plans the other way
 * round, in plan.c).
 */
#ifndef WK_PLAN_WORDS_H
#define WK_PLAN_WORDS_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Tiers a written plan may have (a cascade file may have more). */
#define WK_PLAN_WORDS_TIERS_MAX 16

/*
 * Parses `plan`: tiers separated by '>', each a model name and, optionally,
 * '*' and the attempts (1 to 100; 1 when left out). The cascade is named
 * `plan` as written. `base` (borrowed; may be NULL) gives match, validators
 * and feedback, else code with syntax and tests and no feedback. Model names
 * are not checked here (the models file is, when the cascade is loaded).
 * *out is the caller's; on an error (WK_EINVAL) err says what is wrong.
 */
int wk_plan_words_cascade(const char *plan, const cJSON *base, cJSON **out, char *err,
                          size_t errlen);

#endif
