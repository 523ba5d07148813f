/*
 * lib/jsonl, the one line reader: lines come out the same however the bytes
 * are fed (whole, or one byte at a time); the last line needs no newline;
 * a line over the cap is cut to the cap, flagged, and the next line is
 * whole again; wk_jsonl_each skips blank lines, names the file and line of a
 * bad one, refuses an over-long one, and stops when its callback says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lib/jsonl.h"
#include "lib/util.h"

/* Every line seen, as "LINENO[cut]:TEXT|". */
static int collect(void *arg, const char *line, size_t len, int cut, long lineno)
{
    wk_buf *b = arg;
    assert_int_equal(strlen(line), len); /* NUL-terminated at len */
    wk_buf_appendf(b, "%ld%s:%s|", lineno, cut ? "cut" : "", line);
    return 0;
}

static char *split(const char *text, size_t cap, size_t step)
{
    wk_lines l;
    wk_buf out;
    wk_buf_init(&out, 1u << 16);
    wk_lines_init(&l, cap);
    size_t n = strlen(text);
    for (size_t i = 0; i < n; i += step)
        assert_int_equal(wk_lines_feed(&l, text + i, n - i < step ? n - i : step, collect, &out),
                         0);
    assert_int_equal(wk_lines_finish(&l, collect, &out), 0);
    wk_lines_release(&l);
    return wk_buf_detach(&out, NULL);
}

static void test_lines_the_same_however_fed_and_cut_at_the_cap(void **state)
{
    (void)state;
    const char *text = "ab\n\n  \nabcdefgh\nxy\nlast";
    const char *want = "1:ab|2:|3:  |4cut:abcde|5:xy|6:last|";
    for (size_t step = 1; step <= strlen(text); step++) {
        char *got = split(text, 5, step);
        if (strcmp(got, want) != 0)
            fail_msg("fed %zu bytes at a time: %s", step, got);
        free(got);
    }
    /* A final newline ends the last line; it does not start an empty one. */
    char *got = split("a\nb\n", 0, 3);
    assert_string_equal(got, "1:a|2:b|");
    free(got);
}

typedef struct seen {
    int n;
    long last;
    int stop_at;
} seen;

static int count_objects(void *arg, const cJSON *obj, long lineno)
{
    seen *s = arg;
    assert_true(cJSON_IsObject(obj));
    s->n++;
    s->last = lineno;
    return s->n == s->stop_at ? WK_ENOTFOUND : 0;
}

static void test_each_skips_blanks_names_bad_lines_and_stops(void **state)
{
    (void)state;
    char err[256];
    char *path = h_write("each.jsonl", "{\"a\":1}\n\n   \n{\"b\":2}\nnot json\n{\"c\":3}");
    seen s = {0};
    /* A bad line is named and skipped: the lines after it are still read. */
    assert_int_equal(wk_jsonl_each(path, count_objects, &s, 0, err, sizeof err), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.last, 6);
    assert_non_null(strstr(err, "each.jsonl:5: not a JSON object"));
    /* skip_bad, as for tasks files: the bad line is passed over, the last line still read. */
    s = (seen){0};
    assert_int_equal(wk_jsonl_each(path, count_objects, &s, 1, err, sizeof err), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.last, 6);
    /* The callback's own error stops the reading and comes back. */
    s = (seen){.stop_at = 2};
    assert_int_equal(wk_jsonl_each(path, count_objects, &s, 1, err, sizeof err), WK_ENOTFOUND);
    assert_int_equal(s.last, 4);
    /* A missing file names itself. */
    char *missing = h_tmp("no-such.jsonl");
    assert_int_equal(wk_jsonl_each(missing, count_objects, &s, 0, err, sizeof err), WK_EIO);
    assert_non_null(strstr(err, "no-such.jsonl"));
    free(missing);
    free(path);
}

static void test_each_skips_a_line_over_the_cap_and_reads_on(void **state)
{
    (void)state;
    char err[256];
    size_t n = WK_JSONL_LINE_CAP + 16;
    char *big = wk_xmalloc(n + 32);
    memcpy(big, "{\"a\":1}\n{\"s\":\"", 14);
    memset(big + 14, 'x', n);
    memcpy(big + 14 + n, "\"}\n", 4);
    char *text = wk_xasprintf("%s{\"b\":2}\nnot json\n{\"c\":3}\n", big);
    char *path = h_write("big.jsonl", text);
    free(big);
    free(text);
    seen s = {0};
    assert_int_equal(wk_jsonl_each(path, count_objects, &s, 1, err, sizeof err), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.last, 5);
    assert_non_null(strstr(err, "big.jsonl:2: line longer than"));
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_the_same_however_fed_and_cut_at_the_cap),
        cmocka_unit_test(test_each_skips_blanks_names_bad_lines_and_stops),
        cmocka_unit_test(test_each_skips_a_line_over_the_cap_and_reads_on),
    };
    return cmocka_run_group_tests_name("jsonl", tests, h_group_setup, h_group_teardown);
}
