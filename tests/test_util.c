/*
 * The compact string set (ids seen, results written) and wk_json_print, the
 * faster cJSON_PrintUnformatted: both are speed work (issue 13), so these
 * tests hold them to the behaviour of what they replaced.
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

static void test_strset_many(void **state)
{
    (void)state;
    wk_strset s = {0};
    char id[32];
    for (int i = 0; i < 200000; i++) {
        snprintf(id, sizeof id, "task-%d", i);
        assert_int_equal(wk_strset_add(&s, id), 0);
    }
    for (int i = 0; i < 200000; i++) {
        snprintf(id, sizeof id, "task-%d", i);
        assert_true(wk_strset_has(&s, id));
        assert_int_equal(wk_strset_add(&s, id), 1);
    }
    assert_false(wk_strset_has(&s, "task-200000"));
    assert_false(wk_strset_has(&s, ""));
    assert_int_equal(wk_strset_add(&s, ""), 0);
    assert_true(wk_strset_has(&s, ""));
    assert_int_equal(s.len, 200001);
    wk_strset_release(&s);
    assert_false(wk_strset_has(&s, "task-1"));
}

/* Strings longer than a chunk get their own, and the set goes on after them. */
static void test_strset_long(void **state)
{
    (void)state;
    wk_strset s = {0};
    size_t n = WK_STRSET_CHUNK + 100;
    char *big = malloc(n + 1);
    assert_non_null(big);
    memset(big, 'x', n);
    big[n] = '\0';
    assert_int_equal(wk_strset_add(&s, "a"), 0);
    assert_int_equal(wk_strset_add(&s, big), 0);
    assert_int_equal(wk_strset_add(&s, "b"), 0);
    assert_true(wk_strset_has(&s, big));
    big[n - 1] = 'y';
    assert_false(wk_strset_has(&s, big));
    assert_true(wk_strset_has(&s, "a"));
    assert_true(wk_strset_has(&s, "b"));
    free(big);
    wk_strset_release(&s);
}

static void same_as_cjson(const char *json)
{
    cJSON *o = cJSON_Parse(json);
    assert_non_null(o);
    char *want = cJSON_PrintUnformatted(o);
    char *got = wk_json_print(o);
    assert_string_equal(got, want);
    /* The tree is as it was: printing it again gives the same text. */
    char *again = cJSON_PrintUnformatted(o);
    assert_string_equal(again, want);
    free(want);
    free(got);
    free(again);
    cJSON_Delete(o);
}

static void test_json_print(void **state)
{
    (void)state;
    same_as_cjson("{\"a\":1,\"b\":-2,\"c\":0,\"d\":-0.0,\"e\":1.5,\"f\":1e20,\"g\":999999999999999,"
                  "\"h\":1000000000000000,\"i\":-999999999999999,\"j\":0.1,\"k\":123456789}");
    same_as_cjson("[1,[2,[3,{\"x\":[4,5.25,\"6\",null,true]}]],-7]");
    same_as_cjson("42");
    same_as_cjson("-0.0");
    same_as_cjson("{\"q\\\"k\\n\":\"a\\\"b\\\\c\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\\u00e9\"}");
    same_as_cjson("[1e400,-1e400]");
    same_as_cjson("{\"s\":\"text\",\"n\":null,\"t\":true,\"o\":{},\"a\":[]}");
    /* A raw item of the caller's own stays raw. */
    cJSON *o = cJSON_CreateObject();
    cJSON_AddRawToObject(o, "raw", "[1,2]");
    cJSON_AddNumberToObject(o, "n", 3);
    char *got = wk_json_print(o);
    assert_string_equal(got, "{\"raw\":[1,2],\"n\":3}");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "n")));
    assert_true(cJSON_IsRaw(cJSON_GetObjectItem(o, "raw")));
    free(got);
    cJSON_Delete(o);
    assert_null(wk_json_print(NULL));
}

/* A small deterministic generator (xorshift), so a failure repeats. */
static uint64_t rnd_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static cJSON *random_tree(uint64_t *s, int depth)
{
    static const double nums[] = {
        0,     -0.0,    1,    -1,           0.1,        1.0 / 3,           1e15, 1e-7, 123.5,
        2e300, -5e-300, 1e16, 4294967296.0, 1e14 + 0.5, 9007199254740993.0};
    int kind = (int)(rnd_next(s) % (depth > 3 ? 5 : 7));
    switch (kind) {
    case 0:
        return cJSON_CreateNull();
    case 1:
        return cJSON_CreateBool(rnd_next(s) & 1);
    case 2: {
        uint64_t r = rnd_next(s);
        double d = r & 1 ? nums[r / 2 % (sizeof nums / sizeof nums[0])]
                         : (double)(int64_t)(r >> 8) / (double)(1 + (r & 0xfff));
        return cJSON_CreateNumber(d);
    }
    case 3:
    case 4: {
        char text[40];
        size_t n = rnd_next(s) % sizeof text;
        for (size_t i = 0; i < n; i++)
            text[i] = (char)(1 + rnd_next(s) % 255); /* every byte but NUL */
        text[n] = '\0';
        return cJSON_CreateString(text);
    }
    default: {
        int obj = kind == 6;
        cJSON *o = obj ? cJSON_CreateObject() : cJSON_CreateArray();
        int n = (int)(rnd_next(s) % 5);
        for (int i = 0; i < n; i++) {
            char key[8] = {(char)('a' + i), (char)(rnd_next(s) % 2 ? '"' : '\n'), 0};
            if (obj)
                cJSON_AddItemToObject(o, key, random_tree(s, depth + 1));
            else
                cJSON_AddItemToArray(o, random_tree(s, depth + 1));
        }
        return o;
    }
    }
}

/* Random trees (every byte in strings and keys, awkward numbers) print as cJSON prints them. */
static void test_json_print_random(void **state)
{
    (void)state;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 3000; i++) {
        cJSON *o = random_tree(&seed, 0);
        char *want = cJSON_PrintUnformatted(o);
        char *got = wk_json_print(o);
        assert_non_null(want);
        assert_string_equal(got, want);
        free(want);
        free(got);
        cJSON_Delete(o);
    }
    /* Where cJSON fails, so does the printer: a raw item without text. */
    cJSON *o = cJSON_CreateArray();
    cJSON *raw = cJSON_CreateRaw("1");
    free(raw->valuestring);
    raw->valuestring = NULL;
    cJSON_AddItemToArray(o, raw);
    assert_null(cJSON_PrintUnformatted(o));
    assert_null(wk_json_print(o));
    cJSON_Delete(o);
}

/* Parts joined in order; an empty part adds nothing; the list ends at the first NULL. */
static void test_xconcat(void **state)
{
    (void)state;
    char *a = wk_xconcat("ab", "", "c", "def", (char *)NULL);
    assert_string_equal(a, "abcdef");
    char *b = wk_xconcat("", (char *)NULL);
    assert_string_equal(b, "");
    char *c = wk_xconcat("x", (const char *)NULL, "never", (char *)NULL);
    assert_string_equal(c, "x");
    free(a);
    free(b);
    free(c);
}

/* Model text in a report page: markup and quotes become entities, hidden controls show. */
static void test_buf_append_html(void **state)
{
    (void)state;
    wk_buf b;
    wk_buf_init(&b, 1024);
    assert_int_equal(wk_buf_append_html(&b, "<a href=\"x\">Tom's & co</a>\n\tend\x1b[2J"), 0);
    assert_string_equal(b.buf,
                        "&lt;a href=&quot;x&quot;&gt;Tom&#39;s &amp; co&lt;/a&gt;\n\tend\\x1b[2J");
    wk_buf_release(&b);
    /* Past the cap the error comes back and what fit stays. */
    wk_buf_init(&b, 6);
    assert_int_not_equal(wk_buf_append_html(&b, "ab<cd"), 0);
    assert_string_equal(b.buf, "ab&lt;");
    wk_buf_release(&b);
}

/*
 * Text for a terminal: C0 controls, C1 controls as UTF-8 (U+009B is CSI on
 * terminals that take 8-bit controls), bidi overrides and bytes of no
 * character are escaped; other UTF-8 passes whole, and the cut never leaves
 * half a character.
 */
static void test_escape_ctl(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82",
         "plain \xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x99\x82"},
        {"a\x1b[2Jb\n\t\r\x7f", "a\\x1b[2Jb\\n\\t\\r\\x7f"},
        {"csi \xc2\x9b"
         "31m",
         "csi \\u009b31m"},
        {"raw \x9b"
         "31m",
         "raw \\x9b31m"},
        {"if ok \xe2\x80\xae gnirts \xe2\x81\xa6", "if ok \\u202e gnirts \\u2066"},
        {"sep\xe2\x80\xa8x", "sep\\u2028x"},
        {"overlong \xc0\xaf \xe0\x80\xaf", "overlong \\xc0\\xaf \\xe0\\x80\\xaf"},
        {"surrogate \xed\xa0\x80", "surrogate \\xed\\xa0\\x80"},
        {"short \xe2\x82", "short \\xe2\\x82"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *got = wk_escape_ctl(cases[i].in, strlen(cases[i].in), 1000);
        assert_string_equal(got, cases[i].out);
        free(got);
    }
    /* A cut inside a character escapes its bytes; the ellipsis marks it. */
    char *got = wk_escape_ctl("ab\xe2\x82\xac", 5, 4);
    assert_string_equal(got, "ab\\xe2\\x82...");
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strset_many), cmocka_unit_test(test_strset_long),
        cmocka_unit_test(test_json_print),  cmocka_unit_test(test_json_print_random),
        cmocka_unit_test(test_xconcat),     cmocka_unit_test(test_buf_append_html),
        cmocka_unit_test(test_escape_ctl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
