/*
 * A plan in words and as a cascade file (see tune.h): the plan's name as the
 * eval tables give it, the plain-words description `tune` prints, and the
 * cascade JSON it writes, skip rules as each tier's "skip_when".
 */
#include "tune.h"

#include <stdio.h>

#include "lib/util.h"

char *wk_plan_name(const wk_obs *o, const wk_plan *p)
{
    wk_buf b;
    wk_buf_init(&b, 1u << 16);
    for (int k = 0; k < p->ntiers; k++) {
        wk_buf_appendf(&b, "%s%s", k ? ">" : "", wk_obs_model(o, p->tiers[k].model));
        if (p->tiers[k].agree > 0) /* an agreement pair: "a=b" */
            wk_buf_appendf(&b, "=%s", wk_obs_model(o, p->tiers[k].agree - 1));
        if (p->tiers[k].agree3 > 0) /* a triple: "a=b=c/2" when two of three must agree */
            wk_buf_appendf(&b, "=%s/%d", wk_obs_model(o, p->tiers[k].agree3 - 1),
                           p->tiers[k].agree_min > 0 ? p->tiers[k].agree_min : 3);
        wk_buf_appendf(&b, "*%d", p->tiers[k].attempts);
        if (p->tiers[k].min_conf > 0)
            wk_buf_appendf(&b, "@%.2g", p->tiers[k].min_conf);
        if (p->tiers[k].nskips)
            wk_buf_appendf(&b, "(%d skip rule%s)", p->tiers[k].nskips,
                           p->tiers[k].nskips > 1 ? "s" : "");
    }
    return wk_buf_detach(&b, NULL);
}

static void describe_skip(wk_buf *b, const wk_skip *s)
{
    switch (s->kind) {
    case WK_SKIP_KIND:
        wk_buf_appendf(b, "tasks of kind %s", s->value);
        break;
    case WK_SKIP_LANGUAGE:
        wk_buf_appendf(b, "tasks in %s", s->value);
        break;
    case WK_SKIP_NO_TESTS:
        wk_buf_appendf(b, "tasks without tests");
        break;
    case WK_SKIP_PROMPT_OVER:
        wk_buf_appendf(b, "prompts longer than %ld tokens (characters / 4)", s->threshold);
        break;
    case WK_SKIP_PROMPT_UPTO:
        wk_buf_appendf(b, "prompts of %ld tokens or fewer (characters / 4)", s->threshold);
        break;
    }
}

char *wk_plan_describe(const wk_obs *o, const wk_plan *p)
{
    wk_buf b;
    wk_buf_init(&b, 1u << 16);
    for (int k = 0; k < p->ntiers; k++) {
        const wk_plan_tier *t = &p->tiers[k];
        wk_buf_appendf(&b, "%s ask %s", k ? "Then" : "First", wk_obs_model(o, t->model));
        if (t->agree3 > 0)
            wk_buf_appendf(&b, ", %s and %s together (%s of the three labels must agree)",
                           wk_obs_model(o, t->agree - 1), wk_obs_model(o, t->agree3 - 1),
                           t->agree_min == 2 ? "two" : "all");
        else if (t->agree > 0)
            wk_buf_appendf(&b, " and %s (their labels must agree)", wk_obs_model(o, t->agree - 1));
        if (t->min_conf > 0)
            wk_buf_appendf(&b, " with label confidence at least %.2g", t->min_conf);
        wk_buf_appendf(&b, ", up to %d time%s%s", t->attempts, t->attempts > 1 ? "s" : "",
                       k + 1 < p->ntiers ? ", until an answer passes" : "");
        for (int j = 0; j < t->nskips; j++) {
            wk_buf_appendf(&b, j ? ", or for " : "; skip this step for ");
            describe_skip(&b, &t->skips[j]);
        }
        wk_buf_appendf(&b, ".\n");
    }
    wk_buf_appendf(&b, "A task whose answers all fail ends exhausted.\n");
    return wk_buf_detach(&b, NULL);
}

static cJSON *skip_json(const wk_skip *s)
{
    cJSON *j = cJSON_CreateObject();
    switch (s->kind) {
    case WK_SKIP_KIND:
        cJSON_AddStringToObject(j, "kind", s->value);
        break;
    case WK_SKIP_LANGUAGE:
        cJSON_AddStringToObject(j, "language", s->value);
        break;
    case WK_SKIP_NO_TESTS:
        cJSON_AddBoolToObject(j, "has_tests", 0);
        break;
    case WK_SKIP_PROMPT_OVER:
        cJSON_AddNumberToObject(j, "prompt_tokens_over", (double)s->threshold);
        break;
    case WK_SKIP_PROMPT_UPTO:
        cJSON_AddNumberToObject(j, "prompt_tokens_upto", (double)s->threshold);
        break;
    }
    return j;
}

cJSON *wk_plan_cascade(const wk_obs *o, const wk_plan *p, const char *name, const cJSON *base)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", name);
    const cJSON *match = cJSON_GetObjectItemCaseSensitive(base, "match");
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(base, "validators");
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(base, "feedback");
    if (match) {
        cJSON_AddItemToObject(c, "match", cJSON_Duplicate(match, 1));
    } else {
        cJSON *m = cJSON_AddObjectToObject(c, "match");
        cJSON_AddStringToObject(m, "kind", "code");
    }
    if (cJSON_IsArray(vals)) {
        cJSON_AddItemToObject(c, "validators", cJSON_Duplicate(vals, 1));
    } else {
        cJSON *v = cJSON_AddArrayToObject(c, "validators");
        cJSON_AddItemToArray(v, cJSON_CreateString("syntax"));
        cJSON_AddItemToArray(v, cJSON_CreateString("tests"));
    }
    cJSON_AddBoolToObject(c, "feedback", cJSON_IsBool(fb) ? cJSON_IsTrue(fb) : 0);
    /* The base's data policy narrows what the tuned tiers may reach, as it did the base's. */
    const cJSON *dp = cJSON_GetObjectItemCaseSensitive(base, "data_policy");
    if (dp)
        cJSON_AddItemToObject(c, "data_policy", cJSON_Duplicate(dp, 1));
    cJSON *tiers = cJSON_AddArrayToObject(c, "tiers");
    for (int k = 0; k < p->ntiers; k++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "model", wk_obs_model(o, p->tiers[k].model));
        cJSON_AddNumberToObject(t, "attempts", p->tiers[k].attempts);
        if (p->tiers[k].agree > 0) {
            cJSON *ag = cJSON_AddObjectToObject(t, "agree");
            cJSON *ms = cJSON_AddArrayToObject(ag, "models");
            cJSON_AddItemToArray(ms, cJSON_CreateString(wk_obs_model(o, p->tiers[k].model)));
            cJSON_AddItemToArray(ms, cJSON_CreateString(wk_obs_model(o, p->tiers[k].agree - 1)));
            if (p->tiers[k].agree3 > 0)
                cJSON_AddItemToArray(ms,
                                     cJSON_CreateString(wk_obs_model(o, p->tiers[k].agree3 - 1)));
            int min = p->tiers[k].agree3 > 0 && p->tiers[k].agree_min > 0 ? p->tiers[k].agree_min
                      : p->tiers[k].agree3 > 0                            ? 3
                                                                          : 2;
            cJSON_AddNumberToObject(ag, "min", min);
        }
        if (p->tiers[k].min_conf > 0)
            cJSON_AddNumberToObject(t, "min_confidence", p->tiers[k].min_conf);
        if (p->tiers[k].nskips) {
            cJSON *s = cJSON_AddArrayToObject(t, "skip_when");
            for (int j = 0; j < p->tiers[k].nskips; j++)
                cJSON_AddItemToArray(s, skip_json(&p->tiers[k].skips[j]));
        }
        cJSON_AddItemToArray(tiers, t);
    }
    return c;
}
