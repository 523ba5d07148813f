/*
 * The retry policy (see retry.h). Backoff is min(base * 2^n, cap) less up
 * to 25% jitter, and never shorter than what the server asked for with
 * retry-after-ms or Retry-After: gateways that shorten the server's wait
 * (BerriAI/litellm#20722) get 429s in a loop and burn the rate limit.
 */
#include "retry.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

void wk_retry_policy_default(wk_retry_policy *p)
{
    p->max_retries = 3;
    p->base_ms = 500;
    p->max_backoff_ms = 8000;
    p->max_wait_ms = 60000;
}

/* 1 when s is one of the error type or code values that name a spend limit. */
static int spend_word(const cJSON *s)
{
    static const char *const words[] = {"insufficient_quota",
                                        "billing_error",
                                        "billing_hard_limit_reached",
                                        "billing_not_active",
                                        "credit_balance_too_low",
                                        "quota_exceeded_billing",
                                        NULL};
    if (!cJSON_IsString(s))
        return 0;
    for (int i = 0; words[i]; i++)
        if (strcasecmp(s->valuestring, words[i]) == 0)
            return 1;
    return 0;
}

/*
 * A spend limit is told by the provider's machine-readable fields, never by
 * words in the message: OpenAI's ordinary rate-limit 429 for accounts without
 * a payment method mentions "billing", and must stay a rate limit. Looked at:
 * error.type and error.code (OpenAI, Anthropic, OpenRouter), a top-level type
 * or code, and 402 Payment Required itself.
 */
static int wk_is_spend_limit(long status, const char *body)
{
    if (status == 402)
        return 1;
    if ((status != 429 && status != 403 && status != 400) || !body)
        return 0;
    cJSON *j = cJSON_Parse(body);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(j, "error");
    int hit = spend_word(cJSON_GetObjectItemCaseSensitive(err, "type")) ||
              spend_word(cJSON_GetObjectItemCaseSensitive(err, "code")) ||
              spend_word(cJSON_GetObjectItemCaseSensitive(j, "type")) ||
              spend_word(cJSON_GetObjectItemCaseSensitive(j, "code"));
    cJSON_Delete(j);
    return hit;
}

/* Statuses that mean the request itself is wrong: retrying cannot help. */
static int never_retried(long st)
{
    return st == 400 || st == 401 || st == 403 || st == 404 || st == 413 || st == 422;
}

static int transient(const wk_http_result *res)
{
    if (res->rc == WK_EIO)
        return 1; /* connect error, reset, timeout */
    long st = res->status;
    return st == 408 || st == 409 || st == 429 || (st >= 500 && st <= 599);
}

wk_retry_kind wk_retry_decide(const wk_retry_policy *p, const wk_http_result *res, const char *body,
                              int retries, double jitter, long *delay_ms)
{
    *delay_ms = 0;
    if (res->rc == WK_ETOOBIG)
        return WK_RETRY_NO;
    if (res->rc == 0 && wk_is_spend_limit(res->status, body))
        return WK_RETRY_SPEND_LIMIT;
    if (res->rc == 0 && res->status >= 200 && res->status <= 299)
        return WK_RETRY_NO;
    /* The server's own word wins over our table, both ways (the OpenAI SDKs honour it too). */
    int retry = transient(res);
    if (res->rc == 0 && never_retried(res->status))
        retry = 0;
    if (res->should_retry == 1)
        retry = 1;
    else if (res->should_retry == 0)
        retry = 0;
    if (!retry || retries >= p->max_retries)
        return WK_RETRY_NO;

    double backoff = fmin((double)p->base_ms * pow(2.0, retries), (double)p->max_backoff_ms);
    if (jitter < 0)
        jitter = 0;
    if (jitter >= 1)
        jitter = 0.999999;
    double delay = backoff * (1.0 - 0.25 * jitter);
    if (res->retry_after_ms >= 0) {
        if (res->retry_after_ms > p->max_wait_ms) {
            *delay_ms = res->retry_after_ms;
            return WK_RETRY_UNAVAILABLE;
        }
        if ((double)res->retry_after_ms > delay)
            delay = (double)res->retry_after_ms;
    }
    *delay_ms = (long)ceil(delay);
    return WK_RETRY_AFTER;
}
