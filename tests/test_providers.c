/*
 * The wire formats and the retry policy, without a network: each provider
 * builds the request it should and classifies every kind of reply; the
 * policy retries what is transient, never sooner than the server asks, and
 * never what cannot succeed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "worker/cost.h"
#include "worker/net/retry.h"
#include "worker/providers/prov.h"

static wk_provider prov = {.name = "p",
                           .base_url = "http://h/v1",
                           .key = "fake-test-key",
                           .key_env = "P_KEY",
                           .max_inflight = 1};
static wk_model model = {.name = "m",
                         .provider = &prov,
                         .id = "m-id",
                         .input_usd_per_mtok = 2,
                         .output_usd_per_mtok = 8,
                         .cached_input_usd_per_mtok = 0.5,
                         .max_tokens = 100};

static cJSON *conversation(void)
{
    return cJSON_Parse("[{\"role\":\"system\",\"content\":\"be brief\"},"
                       "{\"role\":\"user\",\"content\":\"hi\"},"
                       "{\"role\":\"assistant\",\"content\":\"bad\"},"
                       "{\"role\":\"user\",\"content\":\"fix it\"}]");
}

static int has_header(const prov_request *r, const char *line)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i], line) == 0)
            return 1;
    return 0;
}

static void test_openai_request_has_bearer_task_header_and_messages(void **state)
{
    (void)state;
    prov.api = "openai";
    cJSON *msgs = conversation();
    prov_request r;
    assert_int_equal(prov_find("openai")->build(&model, "t\n1", msgs, &r), 0);
    assert_string_equal(r.url, "http://h/v1/chat/completions");
    assert_true(has_header(&r, "Authorization: Bearer fake-test-key"));
    assert_true(has_header(&r, "X-Cascade-Task: t\\n1")); /* a newline cannot split headers */
    cJSON *b = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(b, "model")->valuestring, "m-id");
    assert_int_equal(cJSON_GetObjectItem(b, "max_tokens")->valueint, 100);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(b, "messages")), 4);
    cJSON_Delete(b);
    cJSON_Delete(msgs);
    prov_request_clear(&r);
}

/* The tree-less build gives the very request the tree build gives (the cache keys on it). */
static void test_openai_request_from_printed_messages_is_the_same(void **state)
{
    (void)state;
    prov.api = "openai";
    static const char *const convs[] = {
        "[{\"role\":\"system\",\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"}]",
        "[{\"role\":\"user\",\"content\":\"q\\\"uote \\\\ tab\\t nl\\n \\u0001 \\u00e9 "
        "\\ud83d\\ude00\"}]",
        "[]",
    };
    char id0[] = "m-id", id1[] = "odd \"id\"\n";
    char *const ids[] = {id0, id1};
    const long caps[] = {100, 0, 999999999999999, 1000000000000000};
    for (size_t c = 0; c < sizeof convs / sizeof convs[0]; c++)
        for (size_t i = 0; i < 2; i++)
            for (size_t t = 0; t < sizeof caps / sizeof caps[0]; t++) {
                wk_model m = model;
                m.id = ids[i];
                m.max_tokens = caps[t];
                cJSON *msgs = cJSON_Parse(convs[c]);
                assert_non_null(msgs);
                char *text = wk_json_print(msgs);
                prov_request a, b;
                assert_int_equal(prov_find("openai")->build(&m, "t1", msgs, &a), 0);
                assert_int_equal(prov_find("openai")->build_json(&m, "t1", text, &b), 0);
                assert_string_equal(a.body, b.body);
                assert_int_equal(a.body_len, b.body_len);
                assert_string_equal(a.url, b.url);
                assert_int_equal(a.nheaders, b.nheaders);
                for (int h = 0; h < a.nheaders; h++)
                    assert_string_equal(a.headers[h], b.headers[h]);
                prov_request_clear(&a);
                prov_request_clear(&b);
                free(text);
                cJSON_Delete(msgs);
            }
}

static void test_anthropic_request_moves_system_out_and_sends_version(void **state)
{
    (void)state;
    cJSON *msgs = conversation();
    prov_request r;
    assert_int_equal(prov_find("anthropic")->build(&model, "t1", msgs, &r), 0);
    assert_string_equal(r.url, "http://h/v1/messages");
    assert_true(has_header(&r, "x-api-key: fake-test-key"));
    assert_true(has_header(&r, "anthropic-version: 2026-10-21"));
    cJSON *b = cJSON_Parse(r.body);
    assert_string_equal(cJSON_GetObjectItem(b, "system")->valuestring, "be brief");
    cJSON *m = cJSON_GetObjectItem(b, "messages");
    assert_int_equal(cJSON_GetArraySize(m), 3);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(m, 0), "role")->valuestring, "user");
    cJSON_Delete(b);
    cJSON_Delete(msgs);
    prov_request_clear(&r);
}

static void test_gemini_request_uses_model_path_key_header_and_roles(void **state)
{
    (void)state;
    cJSON *msgs = conversation();
    prov_request r;
    assert_int_equal(prov_find("gemini")->build(&model, "t1", msgs, &r), 0);
    assert_string_equal(r.url, "http://h/v1/models/m-id:generateContent");
    assert_true(has_header(&r, "x-goog-api-key: fake-test-key"));
    cJSON *b = cJSON_Parse(r.body);
    cJSON *c = cJSON_GetObjectItem(b, "contents");
    assert_int_equal(cJSON_GetArraySize(c), 3);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(c, 1), "role")->valuestring,
                        "model");
    assert_non_null(cJSON_GetObjectItem(b, "systemInstruction"));
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(b, "generationConfig"), "maxOutputTokens")
            ->valueint,
        100);
    cJSON_Delete(b);
    cJSON_Delete(msgs);
    prov_request_clear(&r);
}

typedef struct reply_case {
    const char *api;
    long status;
    const char *body;
    int rc;           /* 0 or non-zero */
    const char *text; /* when rc == 0 */
    const char *finish;
    long pt, ct, cached;
    const char *reason; /* when rc != 0 */
} reply_case;

static const reply_case replies[] = {
    {"openai", 200,
     "{\"choices\":[{\"message\":{\"content\":\"hello\"},\"finish_reason\":\"stop\"}],"
     "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":3,"
     "\"prompt_tokens_details\":{\"cached_tokens\":4}}}",
     0, "hello", "stop", 10, 3, 4, NULL},
    {"openai", 200, "{\"choices\":[{\"message\":{\"content\":\"hel", 1, NULL, NULL, 0, 0, 0,
     "bad_response"},
    {"openai", 200, "{\"choices\":[]}", 1, NULL, NULL, 0, 0, 0, "bad_response"},
    {"openai", 401, "{\"error\":{\"message\":\"bad key\"}}", 1, NULL, NULL, 0, 0, 0, "http_401"},
    {"anthropic", 200,
     "{\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"text\",\"text\":\"b\"}],"
     "\"stop_reason\":\"max_tokens\",\"usage\":{\"input_tokens\":7,\"output_tokens\":100,"
     "\"cache_read_input_tokens\":5}}",
     0, "ab", "length", 12, 100, 5, NULL},
    {"anthropic", 529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}}", 1, NULL,
     NULL, 0, 0, 0, "http_529"},
    {"gemini", 200,
     "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":\"STOP\"}],"
     "\"usageMetadata\":{\"promptTokenCount\":9,\"candidatesTokenCount\":2}}",
     0, "x", "stop", 9, 2, 0, NULL},
    {"gemini", 200,
     "{\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":"
     "\"MAX_TOKENS\"}]}",
     0, "x", "length", -1, -1, 0, NULL},
    {"gemini", 404, "{\"error\":{\"code\":404,\"message\":\"no model\"}}", 1, NULL, NULL, 0, 0, 0,
     "http_404"},
};

static void test_replies_of_each_api_are_parsed_or_classified(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof replies / sizeof replies[0]; i++) {
        const reply_case *c = &replies[i];
        prov_response pr;
        char reason[PROV_REASON_MAX] = "", msg[256] = "";
        int rc = prov_find(c->api)->parse(c->status, c->body, strlen(c->body), &pr, reason, msg,
                                          sizeof msg);
        if ((rc == 0) != (c->rc == 0))
            fail_msg("case %zu (%s %ld): rc %d", i, c->api, c->status, rc);
        if (rc == 0) {
            assert_string_equal(pr.text, c->text);
            assert_string_equal(pr.finish_reason, c->finish);
            assert_int_equal(pr.prompt_tokens, c->pt);
            assert_int_equal(pr.completion_tokens, c->ct);
            assert_int_equal(pr.cached_tokens, c->cached);
            prov_response_clear(&pr);
        } else {
            assert_string_equal(reason, c->reason);
            assert_true(msg[0] != '\0');
        }
    }
}

static void test_cached_tokens_are_priced_at_the_cached_rate(void **state)
{
    (void)state;
    /* 6 uncached x $2 + 4 cached x $0.5 + 3 out x $8, per million */
    assert_float_equal(wk_cost(&model, 10, 3, 4), (12 + 2 + 24) / 1e6, 1e-15);
    assert_float_equal(wk_cost_worst(&model, 50), (100 + 800) / 1e6, 1e-15);
}

static wk_http_result http(int rc, long status, long retry_after_ms)
{
    wk_http_result r = {
        .rc = rc, .status = status, .retry_after_ms = retry_after_ms, .should_retry = -1};
    return r;
}

static void test_retry_backoff_doubles_to_cap_with_at_most_quarter_jitter(void **state)
{
    (void)state;
    wk_retry_policy p;
    wk_retry_policy_default(&p);
    p.max_retries = 10;
    wk_http_result r = http(0, 500, -1);
    long expect[] = {500, 1000, 2000, 4000, 8000, 8000};
    for (int n = 0; n < 6; n++) {
        long d;
        assert_int_equal(wk_retry_decide(&p, &r, "", n, 0.0, &d), WK_RETRY_AFTER);
        assert_int_equal(d, expect[n]);
        assert_int_equal(wk_retry_decide(&p, &r, "", n, 0.999, &d), WK_RETRY_AFTER);
        assert_true(d >= expect[n] * 3 / 4 && d <= expect[n]);
    }
}

static void test_retry_never_sooner_than_retry_after_and_unavailable_past_cap(void **state)
{
    (void)state;
    wk_retry_policy p;
    wk_retry_policy_default(&p);
    long d;
    wk_http_result r = http(0, 429, 2000);
    assert_int_equal(wk_retry_decide(&p, &r, "{}", 0, 0.5, &d), WK_RETRY_AFTER);
    assert_int_equal(d, 2000);
    r = http(0, 429, 120000);
    assert_int_equal(wk_retry_decide(&p, &r, "{}", 0, 0.5, &d), WK_RETRY_UNAVAILABLE);
    assert_int_equal(d, 120000);
}

static void test_retry_classes_and_server_override(void **state)
{
    (void)state;
    wk_retry_policy p;
    wk_retry_policy_default(&p);
    long d;
    long never[] = {400, 401, 403, 404, 413, 422};
    for (size_t i = 0; i < 6; i++) {
        wk_http_result r = http(0, never[i], -1);
        assert_int_equal(wk_retry_decide(&p, &r, "", 0, 0, &d), WK_RETRY_NO);
    }
    long always[] = {408, 409, 429, 500, 502, 503, 529};
    for (size_t i = 0; i < 7; i++) {
        wk_http_result r = http(0, always[i], -1);
        assert_int_equal(wk_retry_decide(&p, &r, "", 0, 0, &d), WK_RETRY_AFTER);
    }
    wk_http_result t = http(WK_EIO, 0, -1);
    assert_int_equal(wk_retry_decide(&p, &t, "", 0, 0, &d), WK_RETRY_AFTER);
    assert_int_equal(wk_retry_decide(&p, &t, "", 3, 0, &d), WK_RETRY_NO); /* retries used up */
    wk_http_result big = http(WK_ETOOBIG, 200, -1);
    assert_int_equal(wk_retry_decide(&p, &big, "", 0, 0, &d), WK_RETRY_NO);
    wk_http_result s = http(0, 503, -1);
    s.should_retry = 0;
    assert_int_equal(wk_retry_decide(&p, &s, "", 0, 0, &d), WK_RETRY_NO);
    s = http(0, 400, -1);
    s.should_retry = 1;
    assert_int_equal(wk_retry_decide(&p, &s, "", 0, 0, &d), WK_RETRY_AFTER);
}

static void test_spend_limit_429_disables_instead_of_retrying(void **state)
{
    (void)state;
    wk_retry_policy p;
    wk_retry_policy_default(&p);
    long d;
    wk_http_result r = http(0, 429, 1000);
    const char *quota = "{\"error\":{\"code\":\"insufficient_quota\",\"message\":\"You exceeded "
                        "your current quota\"}}";
    assert_int_equal(wk_retry_decide(&p, &r, quota, 0, 0, &d), WK_RETRY_SPEND_LIMIT);
    assert_int_equal(wk_retry_decide(&p, &r, "{\"error\":{\"message\":\"slow down\"}}", 0, 0, &d),
                     WK_RETRY_AFTER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_request_has_bearer_task_header_and_messages),
        cmocka_unit_test(test_openai_request_from_printed_messages_is_the_same),
        cmocka_unit_test(test_anthropic_request_moves_system_out_and_sends_version),
        cmocka_unit_test(test_gemini_request_uses_model_path_key_header_and_roles),
        cmocka_unit_test(test_replies_of_each_api_are_parsed_or_classified),
        cmocka_unit_test(test_cached_tokens_are_priced_at_the_cached_rate),
        cmocka_unit_test(test_retry_backoff_doubles_to_cap_with_at_most_quarter_jitter),
        cmocka_unit_test(test_retry_never_sooner_than_retry_after_and_unavailable_past_cap),
        cmocka_unit_test(test_retry_classes_and_server_override),
        cmocka_unit_test(test_spend_limit_429_disables_instead_of_retrying),
    };
    return cmocka_run_group_tests_name("providers", tests, NULL, NULL);
}
