/*
 * `cascade report` on fixtures/eval/report (its README has the figures,
 * worked out by hand): the aggregates per cascade, tier and kind, the failure
 * reasons, the saving priced from the models file and, without one, from
 * prices inferred from the attempts; then the HTML page rendered in headless
 * Chromium, checked for its charts in the DOM and in the pixels.
 *
 * The pixel check compares the page with a control render of the same page
 * whose SVGs are hidden: the charts' own colours must appear in the real
 * render and (nearly) not in the control, so neither a blank page nor the
 * legend's colour swatches can pass for a chart. The PNG is decoded here
 * with zlib.
 *
 * Needs CASCADE_BIN and SRC_DIR (set by `make test`) and /usr/bin/chromium
 * (`make deps` installs it); without Chromium the HTML test fails and says so.
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
#include <unistd.h>
#include <zlib.h>

#include "harness.h"
#include "lib/util.h"
#include "worker/eval/report.h"

#define CHROMIUM "/usr/bin/chromium"
#define PNG_CAP (64u << 20)

static wk_report *load_fixture(int with_config)
{
    char err[512];
    char *res = h_srcpath("fixtures/eval/report/results.jsonl");
    char *tasks = h_srcpath("fixtures/eval/report/tasks.jsonl");
    char *models = h_srcpath("fixtures/eval/report/models.json");
    char *casc = h_srcpath("fixtures/eval/report/cascades");
    wk_report *r = wk_report_new();
    if (wk_report_add_results(r, res, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (wk_report_add_tasks(r, tasks, err, sizeof err) != 0)
        fail_msg("%s", err);
    if (with_config && wk_report_set_config(r, models, casc, err, sizeof err) != 0)
        fail_msg("%s", err);
    free(res);
    free(tasks);
    free(models);
    free(casc);
    return r;
}

static char *text_of(const wk_report *r)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    wk_report_text(r, f);
    fclose(f);
    return buf;
}

static void expect_line(const char *text, const char *needle)
{
    if (!strstr(text, needle))
        fail_msg("the report lacks \"%s\":\n%s", needle, text);
}

static void test_aggregates_per_cascade_tier_and_kind(void **state)
{
    (void)state;
    wk_report *r = load_fixture(1);
    wk_figures g;
    assert_int_equal(wk_report_figures_of(r, "two", &g), 0);
    assert_int_equal(g.tasks, 5);
    assert_int_equal(g.accepted, 3);
    assert_int_equal(g.exhausted, 1);
    assert_int_equal(g.error, 1);
    assert_true(fabs(g.cost_usd - 0.0063) < 1e-12);
    assert_true(fabs(g.top_cost_usd - 0.012) < 1e-12);
    assert_int_equal(g.top_estimated, 2);
    assert_true(g.top_from_config);
    assert_int_equal(wk_report_figures_of(r, "nope", &g), WK_ENOTFOUND);

    char *t = text_of(r);
    expect_line(t, "5 tasks from 1 results file (and 1 invalid_task lines, not counted)");
    expect_line(t, "pass rate 0.600   cost $0.006300   cost per solved task $0.002100");
    expect_line(t, "top tier alone (big): $0.012000, saving 47.5%; 2 tasks priced");
    /* tier, model, reached, calls, passed, accepted, pass rate, cost */
    expect_line(t, "0    small                               5      5      2        2     0.400"
                   "     0.001300");
    expect_line(t, "1    big                                 3      3      1        1     0.333"
                   "     0.005000");
    expect_line(t, "code              3        2     0.667     0.005800");
    expect_line(t, "json              2        1     0.500     0.000500");
    expect_line(t, "failed attempts: 5");
    expect_line(t, "     2  call: http_500");
    expect_line(t, "     2  tests: failed");
    expect_line(t, "     1  syntax: syntax_error");
    free(t);
    wk_report_free(r);
}

static void test_without_models_prices_are_inferred_and_said_so(void **state)
{
    (void)state;
    wk_report *r = load_fixture(0);
    wk_figures g;
    assert_int_equal(wk_report_figures_of(r, "two", &g), 0);
    assert_false(g.top_from_config);
    /* big's attempts pin its prices down: the same figure as with the models file. */
    assert_true(fabs(g.top_cost_usd - 0.012) < 1e-9);
    char *t = text_of(r);
    expect_line(t, "inferred from its attempts' costs and tokens");
    free(t);
    wk_report_free(r);
}

/* A patch task whose tests pass at base is its own status, not an error. */
static void test_nothing_to_fix_is_counted_apart(void **state)
{
    (void)state;
    char err[512];
    char *res =
        h_write("ntf.jsonl", "{\"id\":\"p1\",\"status\":\"nothing_to_fix\",\"cascade\":\"fix\","
                             "\"cost_usd\":0,\"attempts\":[]}\n"
                             "{\"id\":\"p2\",\"status\":\"error\",\"cascade\":\"fix\","
                             "\"cost_usd\":0,\"attempts\":[]}\n");
    wk_report *r = wk_report_new();
    if (wk_report_add_results(r, res, err, sizeof err) != 0)
        fail_msg("%s", err);
    wk_figures g;
    assert_int_equal(wk_report_figures_of(r, "fix", &g), 0);
    assert_int_equal(g.tasks, 2);
    assert_int_equal(g.nothing, 1);
    assert_int_equal(g.error, 1);
    char *t = text_of(r);
    expect_line(t, "1 error, 1 nothing_to_fix");
    free(t);
    wk_report_free(r);
    free(res);
}

/* ---- the HTML page in Chromium ------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/*
 * Decodes an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) to
 * RGB rows. Fails the test on anything else. Caller frees *rgb.
 */
static void png_decode(const char *path, unsigned char **rgb, int *w, int *h)
{
    char *data = NULL;
    size_t len = 0;
    if (wk_read_file(path, PNG_CAP, &data, &len) != 0)
        fail_msg("cannot read %s", path);
    const unsigned char *p = (const unsigned char *)data;
    if (len < 8 || memcmp(p, "\x89PNG\r\n\x1a\n", 8) != 0)
        fail_msg("%s is not a PNG", path);
    wk_buf idat;
    wk_buf_init(&idat, PNG_CAP);
    int bpp = 0;
    *w = *h = 0;
    for (size_t off = 8; off + 12 <= len;) {
        uint32_t n = be32(p + off);
        const unsigned char *type = p + off + 4, *body = p + off + 8;
        if (n > len - off - 12)
            fail_msg("%s: a chunk runs past the end", path);
        if (memcmp(type, "IHDR", 4) == 0) {
            *w = (int)be32(body);
            *h = (int)be32(body + 4);
            if (body[8] != 8 || (body[9] != 2 && body[9] != 6) || body[12] != 0)
                fail_msg("%s: only 8-bit RGB/RGBA non-interlaced PNGs are read here", path);
            bpp = body[9] == 6 ? 4 : 3;
        } else if (memcmp(type, "IDAT", 4) == 0) {
            assert_int_equal(wk_buf_append(&idat, body, n), 0);
        } else if (memcmp(type, "IEND", 4) == 0) {
            break;
        }
        off += 12 + n;
    }
    if (!bpp || *w <= 0 || *h <= 0 || *w > 10000 || *h > 10000)
        fail_msg("%s: no usable IHDR", path);
    size_t stride = (size_t)*w * (size_t)bpp;
    uLongf raw_len = (uLongf)((stride + 1) * (size_t)*h);
    unsigned char *raw = wk_xmalloc(raw_len);
    if (uncompress(raw, &raw_len, (const Bytef *)idat.buf, (uLong)idat.len) != Z_OK ||
        raw_len != (stride + 1) * (size_t)*h)
        fail_msg("%s: the image data does not inflate to %d rows", path, *h);
    unsigned char *img = wk_xcalloc(stride * (size_t)*h, 1);
    for (int y = 0; y < *h; y++) {
        const unsigned char *in = raw + (stride + 1) * (size_t)y + 1;
        unsigned char *out = img + stride * (size_t)y;
        const unsigned char *up = y ? out - stride : NULL;
        int filter = raw[(stride + 1) * (size_t)y];
        for (size_t x = 0; x < stride; x++) {
            int a = x >= (size_t)bpp ? out[x - (size_t)bpp] : 0;
            int b = up ? up[x] : 0;
            int c = up && x >= (size_t)bpp ? up[x - (size_t)bpp] : 0;
            int v = in[x];
            switch (filter) {
            case 0:
                break;
            case 1:
                v += a;
                break;
            case 2:
                v += b;
                break;
            case 3:
                v += (a + b) / 2;
                break;
            case 4:
                v += paeth(a, b, c);
                break;
            default:
                fail_msg("%s: unknown PNG filter %d", path, filter);
            }
            out[x] = (unsigned char)v;
        }
    }
    *rgb = wk_xmalloc((size_t)*w * (size_t)*h * 3);
    for (size_t i = 0; i < (size_t)*w * (size_t)*h; i++)
        memcpy(*rgb + i * 3, img + i * (size_t)bpp, 3);
    free(img);
    free(raw);
    wk_buf_release(&idat);
    free(data);
}

/* Pixels within 8 of the colour 0xRRGGBB on each channel. */
static long count_color(const unsigned char *rgb, int w, int h, unsigned color)
{
    int r = (int)(color >> 16), g = (int)(color >> 8 & 0xff), b = (int)(color & 0xff);
    long n = 0;
    for (long i = 0; i < (long)w * h; i++) {
        const unsigned char *p = rgb + i * 3;
        n += abs(p[0] - r) <= 8 && abs(p[1] - g) <= 8 && abs(p[2] - b) <= 8;
    }
    return n;
}

static long count_not_white(const unsigned char *rgb, int w, int h)
{
    long n = 0;
    for (long i = 0; i < (long)w * h; i++)
        n += rgb[i * 3] < 250 || rgb[i * 3 + 1] < 250 || rgb[i * 3 + 2] < 250;
    return n;
}

static int chromium(const char *mode_arg, const char *html, const char *out, const char *err)
{
    char *profile = h_tmp("chromium-profile");
    char *udd = wk_xasprintf("--user-data-dir=%s", profile);
    char *url = wk_xasprintf("file://%s", html);
    char *argv[] = {CHROMIUM,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    udd,
                    "--window-size=1200,1600",
                    "--hide-scrollbars",
                    (char *)mode_arg,
                    url,
                    NULL};
    int rc = h_run(argv, out, err, 90);
    free(profile);
    free(udd);
    free(url);
    return rc;
}

/* The attribute `name` of the tag starting at p, as a number; -1 when absent. */
static double attr_num(const char *p, const char *name)
{
    const char *end = strchr(p, '>');
    char *key = wk_xasprintf(" %s=\"", name);
    const char *a = strstr(p, key);
    double v = -1;
    if (a && (!end || a < end))
        v = strtod(a + strlen(key), NULL);
    free(key);
    return v;
}

static void test_html_renders_with_charts_in_chromium(void **state)
{
    (void)state;
    if (access(CHROMIUM, X_OK) != 0)
        fail_msg("%s is missing: `make deps` installs Debian's chromium, which this test needs "
                 "to render the HTML report",
                 CHROMIUM);
    char err[512];
    wk_report *r = load_fixture(1);
    char *table = h_srcpath("fixtures/eval/report/table.json");
    if (wk_report_add_table(r, table, err, sizeof err) != 0)
        fail_msg("%s", err);
    char *html = h_tmp("report.html");
    if (wk_report_html(r, html, err, sizeof err) != 0)
        fail_msg("%s", err);
    wk_report_free(r);

    /* Self-contained: nothing to fetch, nothing to run. */
    char *page = h_slurp(html);
    assert_null(strstr(page, "<script"));
    assert_null(strstr(page, " src="));
    assert_null(strstr(page, " href="));
    assert_null(strstr(page, "url("));
    assert_null(strstr(page, "@import"));

    /* The DOM as Chromium parsed it: three charts with a size, bars with a height. */
    char *dom = h_tmp("dom.html"), *cerr = h_tmp("chromium.err");
    int rc = chromium("--dump-dom", html, dom, cerr);
    if (rc != 0) {
        char *e = h_slurp(cerr);
        fail_msg("chromium --dump-dom exited %d:\n%s", rc, e);
    }
    char *d = h_slurp(dom);
    int charts = 0, bars = 0, points = 0;
    for (const char *p = d; (p = strstr(p, "<svg class=\"chart")); p++) {
        assert_true(attr_num(p, "width") > 100);
        assert_true(attr_num(p, "height") > 100);
        charts++;
    }
    for (const char *p = d; (p = strstr(p, "<rect class=\"bar\"")); p++) {
        assert_true(attr_num(p, "width") > 0);
        bars += attr_num(p, "height") > 0;
    }
    for (const char *p = d; (p = strstr(p, "class=\"pt\"")); p++)
        points++;
    assert_int_equal(charts, 3); /* cost per tier, pass rate per tier, cost against pass rate */
    assert_int_equal(bars, 4);   /* two tiers in each bar chart, all non-zero */
    assert_int_equal(points, 5); /* four table rows and the cascade of these results */

    /* The pixels: the page, and a control with every SVG hidden. */
    char *shot = h_tmp("report.png"), *shot_arg = wk_xasprintf("--screenshot=%s", shot);
    rc = chromium(shot_arg, html, NULL, cerr);
    if (rc != 0) {
        char *e = h_slurp(cerr);
        fail_msg("chromium --screenshot exited %d:\n%s", rc, e);
    }
    wk_buf ctl;
    wk_buf_init(&ctl, 64u << 20);
    for (const char *p = page; *p;) {
        const char *s = strstr(p, "<svg ");
        size_t n = s ? (size_t)(s - p) : strlen(p);
        wk_buf_append(&ctl, p, n);
        if (!s)
            break;
        wk_buf_appendf(&ctl, "<svg style=\"display:none\" ");
        p = s + 5;
    }
    char *control = h_write("control.html", ctl.buf);
    char *cshot = h_tmp("control.png"), *cshot_arg = wk_xasprintf("--screenshot=%s", cshot);
    assert_int_equal(chromium(cshot_arg, control, NULL, cerr), 0);

    unsigned char *img, *cimg;
    int w, h, cw, ch;
    png_decode(shot, &img, &w, &h);
    png_decode(cshot, &cimg, &cw, &ch);
    assert_int_equal(w, 1200);
    assert_int_equal(h, 1600);
    /* Not blank, and the charts add ink the control does not have. */
    long ink = count_not_white(img, w, h), cink = count_not_white(cimg, cw, ch);
    assert_true(ink > 20000);
    assert_true(ink > cink + 20000);
    static const struct {
        const char *what;
        unsigned color;
        long min;
    } marks[] = {
        {"cost bars", 0xd9822b, 3000},          {"pass-rate bars", 0x2b7bb9, 3000},
        {"single-model points", 0x7b3fa0, 150}, {"cascade points", 0x3a9b3a, 80},
        {"oracle point", 0xd62728, 80},
    };
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++) {
        long n = count_color(img, w, h, marks[i].color);
        long c = count_color(cimg, cw, ch, marks[i].color);
        if (n - c < marks[i].min)
            fail_msg("%s: %ld pixels of #%06x in the page, %ld in the control (want %ld more)",
                     marks[i].what, n, marks[i].color, c, marks[i].min);
    }
    free(img);
    free(cimg);
    wk_buf_release(&ctl);
    free(control);
    free(cshot);
    free(cshot_arg);
    free(shot);
    free(shot_arg);
    free(d);
    free(dom);
    free(cerr);
    free(page);
    free(html);
    free(table);
}

static void test_cli_usage_and_missing_file(void **state)
{
    (void)state;
    char *errf = h_tmp("cli.err");
    char *none[] = {(char *)h_cascade_bin(), "report", NULL};
    assert_int_equal(h_run(none, NULL, errf, 30), 2);
    char *missing = h_tmp("no-such.jsonl");
    char *miss[] = {(char *)h_cascade_bin(), "report", missing, NULL};
    assert_int_equal(h_run(miss, NULL, errf, 30), 1);
    char *e = h_slurp(errf);
    assert_non_null(strstr(e, "no-such.jsonl"));
    /* Models without cascades is a usage error: the two go together. */
    char *res = h_srcpath("fixtures/eval/report/results.jsonl");
    char *models = h_srcpath("fixtures/eval/report/models.json");
    char *half[] = {(char *)h_cascade_bin(), "report", res, "--models", models, NULL};
    assert_int_equal(h_run(half, NULL, errf, 30), 2);
    free(e);
    free(res);
    free(models);
    free(missing);
    free(errf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aggregates_per_cascade_tier_and_kind),
        cmocka_unit_test(test_without_models_prices_are_inferred_and_said_so),
        cmocka_unit_test(test_nothing_to_fix_is_counted_apart),
        cmocka_unit_test(test_html_renders_with_charts_in_chromium),
        cmocka_unit_test(test_cli_usage_and_missing_file),
    };
    return cmocka_run_group_tests_name("report", tests, h_group_setup, h_group_teardown);
}
