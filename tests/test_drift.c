/*
 * `cascade drift` (README "cascade drift"): results files built here, five
 * days of a two-tier cascade. A planted drop in the cheap model's pass rate
 * on the last day is flagged (exit 4, the counts shown) and the tiers and
 * days without one are not; the same batch with noise only flags nothing.
 * The z test itself is checked against a value worked by hand.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "harness.h"
#include "lib/util.h"
#include "worker/eval/drift.h"

static uint64_t rng = 88172645463325252ull;

/* xorshift64: the same draws on every run, so the noise is the same noise. */
static double draw(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/*
 * Days 20..24 of November, `per_day` tasks each: tier 0 (cheap) passes with
 * p_cheap[day], tier 1 (big) with 0.9. with_ts 0 leaves "ts" out of the lines.
 */
static char *write_days(const char *name, const double p_cheap[5], int per_day, int with_ts)
{
    wk_buf b;
    wk_buf_init(&b, 64u << 20);
    rng = 88172645463325252ull;
    for (int d = 0; d < 5; d++)
        for (int i = 0; i < per_day; i++) {
            int cheap_ok = draw() < p_cheap[d];
            int big_ok = draw() < 0.9;
            wk_buf_appendf(&b, "{\"id\":\"t-%d-%d\",", d, i);
            if (with_ts)
                wk_buf_appendf(&b, "\"ts\":\"2026-11-%02dT10:%02d:00.000Z\",", 20 + d, i % 60);
            const char *v = "{\"pass\":%s,\"validator\":\"tests\",\"reason\":\"%s\"}";
            char *v0 = wk_xasprintf(v, cheap_ok ? "true" : "false", cheap_ok ? "" : "failed");
            char *v1 = wk_xasprintf(v, big_ok ? "true" : "false", big_ok ? "" : "failed");
            if (cheap_ok)
                wk_buf_appendf(&b,
                               "\"status\":\"accepted\",\"cascade\":\"main\",\"tier\":0,"
                               "\"model\":\"cheap\",\"cost_usd\":0.001,\"attempts\":["
                               "{\"tier\":0,\"model\":\"cheap\",\"cost_usd\":0.001,"
                               "\"verdict\":%s}]}\n",
                               v0);
            else
                wk_buf_appendf(&b,
                               "\"status\":\"%s\",\"cascade\":\"main\",\"tier\":%s,"
                               "\"model\":%s,\"cost_usd\":0.011,\"attempts\":["
                               "{\"tier\":0,\"model\":\"cheap\",\"cost_usd\":0.001,"
                               "\"verdict\":%s},{\"tier\":1,\"model\":\"big\",\"cost_usd\":0.01,"
                               "\"verdict\":%s}]}\n",
                               big_ok ? "accepted" : "exhausted", big_ok ? "1" : "null",
                               big_ok ? "\"big\"" : "null", v0, v1);
            free(v0);
            free(v1);
        }
    char *p = h_write(name, b.buf);
    wk_buf_release(&b);
    return p;
}

static int drift(const char *const *args, const char *out)
{
    const char *argv[20] = {h_cascade_bin(), "drift"};
    int n = 2;
    for (int i = 0; args[i] && n < 19; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char *err = h_tmp("drift.err");
    int rc = h_run((char *const *)argv, out, err, 60);
    free(err);
    return rc;
}

/* The block of the output for one group, up to the next blank line; caller frees. */
static char *block(const char *text, const char *head)
{
    const char *p = strstr(text, head);
    if (!p)
        return NULL;
    const char *e = strstr(p, "\n\n");
    return wk_xstrndup(p, e ? (size_t)(e - p) : strlen(p));
}

static void test_planted_drop_is_flagged(void **state)
{
    (void)state;
    const double p[5] = {0.75, 0.75, 0.75, 0.75, 0.45};
    char *res = write_days("planted.jsonl", p, 200, 1);
    char *out = h_tmp("planted.out");
    const char *args[] = {res, NULL};
    assert_int_equal(drift(args, out), 4);
    char *text = h_slurp(out);
    fputs(text, stdout); /* the README's example is this output */
    char *cheap = block(text, "main, tier 0, cheap");
    char *big = block(text, "main, tier 1, big");
    if (!cheap || !big)
        fail_msg("no cheap or big block in:\n%s", text);
    /* Five daily windows, the last one marked, the counts of the test shown. */
    assert_non_null(strstr(cheap, "2026-11-20 "));
    assert_non_null(strstr(cheap, "2026-11-24 "));
    assert_non_null(strstr(cheap, "<- drift"));
    assert_non_null(strstr(cheap, "DRIFT (pass rate dropped)"));
    assert_non_null(strstr(cheap, "/200) vs reference"));
    assert_non_null(strstr(cheap, "/800): z = -"));
    assert_null(strstr(big, "DRIFT"));
    assert_non_null(strstr(big, "no drift"));
    /* Per 200 trials of each group instead of per day: the last 200 are the drop. */
    const char *args_n[] = {res, "--window", "200", NULL};
    assert_int_equal(drift(args_n, out), 4);
    free(text);
    text = h_slurp(out);
    free(cheap);
    cheap = block(text, "main, tier 0, cheap");
    assert_non_null(strstr(cheap, "trials 801-1000"));
    assert_non_null(strstr(cheap, "DRIFT (pass rate dropped)"));
    free(cheap);
    free(big);
    free(text);
    free(out);
    free(res);
}

static void test_noise_only_is_not_flagged(void **state)
{
    (void)state;
    const double p[5] = {0.75, 0.75, 0.75, 0.75, 0.75};
    char *res = write_days("noise.jsonl", p, 200, 1);
    char *out = h_tmp("noise.out");
    const char *args[] = {res, NULL};
    assert_int_equal(drift(args, out), 0);
    char *text = h_slurp(out);
    assert_null(strstr(text, "DRIFT"));
    assert_non_null(strstr(text, "drift flagged in 0 of 3 groups"));
    /* Against the previous day alone too, and at a looser alpha. */
    const char *args2[] = {res, "--reference", "previous", "--alpha", "0.001", NULL};
    assert_int_equal(drift(args2, out), 0);
    free(text);
    free(out);
    free(res);
}

/* Lines without "ts" take their file's modification time: one file per day. */
static void test_files_without_ts_are_windowed_by_mtime(void **state)
{
    (void)state;
    const double same[5] = {0.75, 0.75, 0.75, 0.75, 0.75};
    const double drop[5] = {0.2, 0.2, 0.2, 0.2, 0.2};
    char *a = write_days("old.jsonl", same, 40, 0);
    char *b = write_days("new.jsonl", drop, 40, 0);
    struct timeval tv[2] = {{.tv_sec = 1795000000}, {.tv_sec = 1795000000}};
    assert_int_equal(utimes(a, tv), 0);
    tv[0].tv_sec = tv[1].tv_sec = 1795000000 + 86400;
    assert_int_equal(utimes(b, tv), 0);
    char *out = h_tmp("mtime.out");
    const char *args[] = {a, b, NULL};
    assert_int_equal(drift(args, out), 4);
    char *text = h_slurp(out);
    char *cheap = block(text, "main, tier 0, cheap");
    assert_non_null(cheap);
    assert_non_null(strstr(cheap, "/200) vs reference"));
    assert_non_null(strstr(cheap, "/200): z = -"));
    assert_non_null(strstr(cheap, "DRIFT (pass rate dropped)"));
    free(cheap);
    free(text);
    free(out);
    free(a);
    free(b);
}

/* 0.7 of 400 against 0.5 of 200: pooled 0.6333, se 0.04173, z -4.79 (by hand). */
static void test_ztest_matches_hand_worked_value(void **state)
{
    (void)state;
    wk_drift_test t;
    wk_drift_ztest(400, 280, 200, 100, 0.01, &t);
    assert_true(t.tested);
    assert_true(fabs(t.z - -4.792) < 0.01);
    assert_true(t.p_value < 2e-6 && t.p_value > 1e-6);
    assert_true(t.flagged);
    wk_drift_ztest(400, 400, 200, 200, 0.01, &t); /* no variation: nothing to test */
    assert_false(t.tested);
    assert_false(t.flagged);
    int64_t ms;
    long n;
    assert_int_equal(wk_drift_parse_window("1d", &ms, &n), 0);
    assert_true(ms == 86400000 && n == 0);
    assert_int_equal(wk_drift_parse_window("250", &ms, &n), 0);
    assert_true(ms == 0 && n == 250);
    assert_int_equal(wk_drift_parse_window("1s", &ms, &n), -1);
    assert_int_equal(wk_drift_parse_window("0", &ms, &n), -1);
    assert_int_equal(wk_drift_parse_window("1.5", &ms, &n), -1);
}

/* report --html: a chart of the pass rate over time per model, the drifted window ringed. */
static void test_report_html_charts_pass_rate_over_time(void **state)
{
    (void)state;
    const double drop[5] = {0.75, 0.75, 0.75, 0.75, 0.45};
    const double same[5] = {0.75, 0.75, 0.75, 0.75, 0.75};
    char *planted = write_days("html-planted.jsonl", drop, 200, 1);
    char *noise = write_days("html-noise.jsonl", same, 200, 1);
    char *page = h_tmp("drift.html");
    const char *argv[] = {h_cascade_bin(), "report", planted, "--html", page, "-q", NULL};
    assert_int_equal(h_run((char *const *)argv, NULL, NULL, 60), 0);
    char *html = h_slurp(page);
    assert_non_null(strstr(html, "<h2>Pass rate over time</h2>"));
    assert_non_null(strstr(html, "class=\"chart drift\""));
    /* Two lines (cheap, big), five points each, and one ring on cheap's last day. */
    int lines = 0, rings = 0;
    for (const char *p = html; (p = strstr(p, "<polyline class=\"series\"")); p++)
        lines++;
    for (const char *p = html; (p = strstr(p, "<circle class=\"flagged\"")); p++)
        rings++;
    assert_int_equal(lines, 2);
    assert_int_equal(rings, 1);
    assert_non_null(strstr(html, "cheap 2026-11-24: 99 of 200 passed (drift)"));
    assert_non_null(strstr(html, "<td class=\"l\">dropped</td>"));
    free(html);
    const char *argv2[] = {h_cascade_bin(), "report", noise, "--html", page, "-q", NULL};
    assert_int_equal(h_run((char *const *)argv2, NULL, NULL, 60), 0);
    html = h_slurp(page);
    assert_non_null(strstr(html, "class=\"chart drift\""));
    assert_null(strstr(html, "<circle class=\"flagged\""));
    free(html);
    free(page);
    free(planted);
    free(noise);
}

static void test_usage_errors_exit_2(void **state)
{
    (void)state;
    const char *a1[] = {NULL};
    assert_int_equal(drift(a1, NULL), 2);
    const char *a2[] = {"x.jsonl", "--window", "3q", NULL};
    assert_int_equal(drift(a2, NULL), 2);
    const char *a3[] = {"x.jsonl", "--alpha", "2", NULL};
    assert_int_equal(drift(a3, NULL), 2);
    const char *a4[] = {"/nonexistent/results.jsonl", NULL};
    assert_int_equal(drift(a4, NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_planted_drop_is_flagged),
        cmocka_unit_test(test_noise_only_is_not_flagged),
        cmocka_unit_test(test_files_without_ts_are_windowed_by_mtime),
        cmocka_unit_test(test_ztest_matches_hand_worked_value),
        cmocka_unit_test(test_report_html_charts_pass_rate_over_time),
        cmocka_unit_test(test_usage_errors_exit_2),
    };
    return cmocka_run_group_tests(tests, h_group_setup, h_group_teardown);
}
