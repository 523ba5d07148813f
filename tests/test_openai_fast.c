/*
 * The tree-less OpenAI reply reader (worker/providers/openai_fast.c) against
 * the cJSON path it stands in for: on every reply it accepts, every field
 * must agree; on anything else it must decline. Replies are real-shaped seeds
 * and tens of thousands of mutations of them (a deterministic generator, so a
 * failure repeats; bounded loops).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "worker/providers/prov.h"

static const char *const seeds[] = {
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},"
    "\"logprobs\":null,\"finish_reason\":\"stop\"}],"
    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1,\"total_tokens\":6}}",
    "{ \"choices\" : [ { \"message\" : { \"content\" : \"line\\none \\\"q\\\" \\\\ \\/ "
    "\\t\\b\\f\\r "
    "\\u00e9\\u4e2d\\ud83d\\ude00 caf\xc3\xa9\" , \"role\" : \"assistant\" } , \"finish_reason\" : "
    "\"length\" } ] ,\n \"usage\" : { \"prompt_tokens\" : 12 , \"completion_tokens\" : 34 , "
    "\"prompt_tokens_details\" : { \"cached_tokens\" : 8 } } }\n",
    "{\"choices\":[{\"message\":{\"content\":null,\"tool_calls\":[{\"id\":\"c\",\"type\":"
    "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":"
    "\"tool_calls\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2.5,"
    "\"prompt_cache_hit_tokens\":2,\"extra\":[1,-2.5e3,true,false,null,{}]}}",
    "{\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":1e3},\"choices\":[{\"message\":{}}],"
    "\"system_fingerprint\":\"fp\",\"choices\":7}",
    "{\"choices\":[{\"finish_reason\":null,\"message\":{\"content\":\"\",\"content\":\"dup\"}}],"
    "\"usage\":null}",
    "{\"choices\":[{\"message\":{\"content\":\"x\"},\"finish_reason\":5}],\"usage\":{"
    "\"prompt_tokens\":\"5\",\"completion_tokens\":1000000000001,\"prompt_tokens_details\":"
    "{\"cached_tokens\":0},\"prompt_cache_hit_tokens\":4}}",
};

/* xorshift64: deterministic, so a failing mutation can be found again. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void same_string(const char *a, const char *b)
{
    if (!a || !b)
        assert_true(a == b);
    else
        assert_string_equal(a, b);
}

/* Returns 1 when the fast reader took the reply (after checking it agrees), else 0. */
static int check(const char *body, size_t len)
{
    prov_response fast, tree;
    char reason[PROV_REASON_MAX], msg[256];
    memset(&fast, 0x5a, sizeof fast); /* declining must leave it alone: no clear needed */
    int took = prov__openai_fast(200, body, len, &fast);
    int rc = prov__openai_parse_tree(200, body, len, &tree, reason, msg, sizeof msg);
    if (took) {
        assert_int_equal(rc, 0);
        same_string(fast.text, tree.text);
        same_string(fast.finish_reason, tree.finish_reason);
        assert_int_equal(fast.prompt_tokens, tree.prompt_tokens);
        assert_int_equal(fast.completion_tokens, tree.completion_tokens);
        assert_int_equal(fast.cached_tokens, tree.cached_tokens);
        assert_null(fast.logprobs);
        assert_null(tree.logprobs);
        assert_null(fast.choices);
        assert_null(tree.choices);
        prov_response_clear(&fast);
    }
    prov_response_clear(&tree);
    /* Through the provider table the answer is the same either way. */
    prov_response via;
    int rc2 = prov_find("openai")->parse(200, body, len, &via, reason, msg, sizeof msg);
    assert_int_equal(rc2, rc);
    prov_response_clear(&via);
    return took;
}

static void test_seeds_are_read_fast_and_agree(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
        assert_int_equal(check(seeds[i], strlen(seeds[i])), 1);
}

static void test_errors_and_unusual_replies_are_left_to_the_tree(void **state)
{
    (void)state;
    static const char *const declined[] = {
        "",
        "null",
        "[]",
        "{}",
        "{\"choices\":[]}",
        "{\"choices\":[{\"message\":\"x\"}]}",
        "{\"choices\":[{\"message\":{\"content\":1}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"a\"}},{\"message\":{\"content\":\"b\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"a\"},\"logprobs\":{\"content\":[]}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"a\\u0000b\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"\\ud800\"}}]}",
        "{\"choices\":[{\"message\":{\"con\\u0074ent\":\"a\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"a\"}}]} trailing",
        "\xef\xbb\xbf{\"choices\":[{\"message\":{\"content\":\"a\"}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"a\"}}],\"n\":01}",
    };
    for (size_t i = 0; i < sizeof declined / sizeof declined[0]; i++)
        assert_int_equal(check(declined[i], strlen(declined[i])), 0);
    /* Not 2xx: always the tree's classification. */
    prov_response out;
    assert_int_equal(prov__openai_fast(500, seeds[0], strlen(seeds[0]), &out), 0);
}

/* Bytes a mutation writes: JSON's own punctuation most of all, where it breaks things. */
static char pick(uint64_t *s)
{
    static const char set[] = "{}[]\",:\\ 0123456789.eE+-tfnulrsa\n\x01\x7f\xc3\xa9u";
    return set[rnd(s) % (sizeof set - 1)];
}

static void test_mutated_replies_agree_or_are_declined(void **state)
{
    (void)state;
    uint64_t s = 0x243f6a8885a308d3ull;
    char buf[1024];
    long took = 0, total = 0;
    for (int iter = 0; iter < 40000; iter++) {
        const char *seed = seeds[rnd(&s) % (sizeof seeds / sizeof seeds[0])];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)(rnd(&s) % 3);
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = rnd(&s) % (n ? n : 1);
            switch (rnd(&s) % 5) {
            case 0: /* replace */
                buf[at] = pick(&s);
                break;
            case 1: /* delete */
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            case 2: /* insert */
                if (n + 1 < sizeof buf) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = pick(&s);
                    n++;
                }
                break;
            case 3: /* cut the reply short */
                n = at;
                break;
            default: { /* repeat a span (duplicate keys, a second choice) */
                size_t span = 1 + rnd(&s) % 40;
                if (at + span <= n && n + span < sizeof buf) {
                    memmove(buf + at + span, buf + at, n - at);
                    n += span;
                }
                break;
            }
            }
        }
        /* Unterminated on purpose: the reader must stay inside len. */
        char *body = wk_xmalloc(n ? n : 1);
        memcpy(body, buf, n);
        took += check(body, n);
        total++;
        free(body);
    }
    /* Many mutations keep a readable reply (a changed text or number): both paths are tried. */
    assert_true(took > total / 20);
    assert_true(took < total);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds_are_read_fast_and_agree),
        cmocka_unit_test(test_errors_and_unusual_replies_are_left_to_the_tree),
        cmocka_unit_test(test_mutated_replies_agree_or_are_declined),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
