/*
 * "a*1>b*2>c" to a cascade file (see plan_words.h). The grammar is the plan
 * names of the eval tables and of `tune`: a model name may hold any byte but
 * '>' and control characters, and the attempts are the digits after the last
 * '*' of a tier, so "vendor/model*2" is model "vendor/model", 2 attempts.
 */
#include "plan_words.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

/* One tier "name[*N]" of n bytes at s; name is the caller's. */
static int parse_tier(const char *s, size_t n, char **name, int *attempts, char *err, size_t errlen)
{
    const char *star = NULL;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return wk_errf(WK_EINVAL, err, errlen, "a control character in a model name");
        if (s[i] == '*')
            star = s + i;
    }
    *attempts = 1;
    size_t nlen = n;
    if (star) {
        const char *d = star + 1, *end = s + n;
        long a = 0;
        if (d == end)
            return wk_errf(WK_EINVAL, err, errlen, "\"%.*s\": no number after '*'", (int)n, s);
        for (; d < end; d++) {
            if (!isdigit((unsigned char)*d) || a > 100)
                return wk_errf(WK_EINVAL, err, errlen,
                               "\"%.*s\": the attempts after '*' must be 1 to 100", (int)n, s);
            a = a * 10 + (*d - '0');
        }
        if (a < 1 || a > 100)
            return wk_errf(WK_EINVAL, err, errlen,
                           "\"%.*s\": the attempts after '*' must be 1 to 100", (int)n, s);
        *attempts = (int)a;
        nlen = (size_t)(star - s);
    }
    /* Spaces around a tier are the user's layout ("a*1 > b"), not part of the name. */
    while (nlen && isspace((unsigned char)s[0])) {
        s++;
        nlen--;
    }
    while (nlen && isspace((unsigned char)s[nlen - 1]))
        nlen--;
    if (nlen == 0)
        return wk_errf(WK_EINVAL, err, errlen, "a tier without a model name");
    *name = wk_xstrndup(s, nlen);
    return 0;
}

int wk_plan_words_cascade(const char *plan, const cJSON *base, cJSON **out, char *err,
                          size_t errlen)
{
    int rc = 0;
    cJSON *c = cJSON_CreateObject();
    *out = NULL;
    if (strlen(plan) > 4096) {
        rc = wk_errf(WK_EINVAL, err, errlen, "the plan is longer than 4096 bytes");
        goto cleanup;
    }
    cJSON_AddStringToObject(c, "name", plan);
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
    cJSON_AddBoolToObject(c, "feedback", cJSON_IsTrue(fb));
    cJSON *tiers = cJSON_AddArrayToObject(c, "tiers");
    int n = 0;
    for (const char *p = plan;; n++) {
        const char *gt = strchr(p, '>');
        size_t len = gt ? (size_t)(gt - p) : strlen(p);
        char *name = NULL;
        int attempts = 1;
        if (n == WK_PLAN_WORDS_TIERS_MAX) {
            rc = wk_errf(WK_EINVAL, err, errlen, "more than %d tiers", WK_PLAN_WORDS_TIERS_MAX);
            goto cleanup;
        }
        rc = parse_tier(p, len, &name, &attempts, err, errlen);
        if (rc)
            goto cleanup;
        cJSON *t = cJSON_CreateObject();
        cJSON_AddStringToObject(t, "model", name);
        cJSON_AddNumberToObject(t, "attempts", attempts);
        cJSON_AddItemToArray(tiers, t);
        free(name);
        if (!gt)
            break;
        p = gt + 1;
    }
    *out = c;
    c = NULL;
cleanup:
    cJSON_Delete(c);
    return rc;
}
