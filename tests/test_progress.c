/*
 * Pleasant to run (issue 15): the metrics endpoint scraped with curl while a
 * run goes on, its counters checked against the results file; the plain
 * progress lines off a terminal; the redrawn line on a terminal (tmux), which
 * ends with the summary on a clean line. Each drives the real binary against
 * the mock; the tasks of the metrics test come through a FIFO, so the test
 * decides when the run has more to do and when it ends.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "lib/util.h"

static char *cdir, *models;

static int group_setup(void **state)
{
    (void)state;
    if (h_config_setup(h_models_cheap_mid, &cdir, &models))
        return -1;
    free(h_write("cascades/main.json", "{\"name\":\"main\",\"validators\":[\"schema\"],"
                                       "\"feedback\":false,"
                                       "\"tiers\":[{\"model\":\"cheap\"},{\"model\":\"mid\"}]}"));
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_config_teardown(cdir, models);
    return 0;
}

/* Tasks t<from>..t<to-1>; the cheap model fails every third (schema), mid passes. */
static void tasks(wk_buf *t, wk_buf *r, int from, int to)
{
    for (int i = from; i < to; i++) {
        wk_buf_appendf(t,
                       "{\"id\":\"t%d\",\"kind\":\"classify\",\"cascade\":\"main\",\"prompt\":"
                       "\"p%d\",\"schema\":{\"enum\":[\"a\"]}}\n",
                       i, i);
        if (!r)
            continue;
        wk_buf_appendf(r,
                       "{\"task\":\"t%d\",\"model\":\"cheap\",\"run\":1,\"answer\":\"\\\"%s\\\"\","
                       "\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":5}}\n",
                       i, i % 3 == 0 ? "b" : "a");
        wk_buf_appendf(r,
                       "{\"task\":\"t%d\",\"model\":\"mid\",\"run\":1,\"answer\":\"\\\"a\\\"\","
                       "\"usage\":{\"prompt_tokens\":120,\"completion_tokens\":5}}\n",
                       i);
    }
}

/* The sum of every sample of metric name (any labels) in text; -1 when absent. */
static double metric_sum(const char *text, const char *name)
{
    double sum = -1;
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, name, n) != 0 || (p[n] != '{' && p[n] != ' '))
            continue;
        const char *sp = p[n] == '{' ? strstr(p, "} ") + 1 : p + n;
        sum = (sum < 0 ? 0 : sum) + strtod(sp, NULL);
    }
    return sum;
}

/* One sample's value, by its exact name and labels; -1 when absent. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n, NULL);
    return -1;
}

static char *scrape(const char *url)
{
    char *out = h_tmp("scrape.txt");
    const char *argv[] = {"/usr/bin/curl", "-sf", "--max-time", "5", url, NULL};
    int rc = h_run((char *const *)argv, out, NULL, 10);
    char *text = rc == 0 ? h_slurp(out) : wk_xstrdup("");
    free(out);
    return text;
}

/* The metrics URL the run names on stderr, waited for (bounded). */
static char *metrics_url(const char *errf)
{
    for (int i = 0; i < 200; i++) {
        char *err = h_slurp(errf);
        char *p = strstr(err, "metrics on ");
        if (p) {
            p += strlen("metrics on ");
            char *url = wk_xstrndup(p, strcspn(p, "\n"));
            free(err);
            return url;
        }
        free(err);
        h_sleep_ms(50);
    }
    fail_msg("no metrics address on stderr");
    return NULL;
}

/* Checks the scrape against the results file: tasks, calls, escalations and cost. */
static void consistent(const char *text, const char *out, int want)
{
    cJSON *res = h_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), want);
    int accepted0 = 0, accepted1 = 0, attempts = 0, climbs = 0;
    double cost = 0;
    const cJSON *x, *a;
    cJSON_ArrayForEach(x, res)
    {
        long tier = (long)cJSON_GetObjectItem(x, "tier")->valuedouble;
        accepted0 += strcmp(h_str(x, "status"), "accepted") == 0 && tier == 0;
        accepted1 += strcmp(h_str(x, "status"), "accepted") == 0 && tier == 1;
        cost += cJSON_GetObjectItem(x, "cost_usd")->valuedouble;
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(x, "attempts")) attempts++;
        climbs += cJSON_GetArraySize(cJSON_GetObjectItem(x, "attempts")) - 1;
    }
    assert_int_equal((int)metric_sum(text, "cascade_tasks_total"), want);
    assert_int_equal(
        (int)metric(text, "cascade_tasks_total{cascade=\"main\",status=\"accepted\",tier=\"0\"}"),
        accepted0);
    assert_int_equal(
        (int)metric(text, "cascade_tasks_total{cascade=\"main\",status=\"accepted\",tier=\"1\"}"),
        accepted1);
    assert_int_equal((int)metric(text, "cascade_calls_total{provider=\"mock\",model=\"cheap\","
                                       "status=\"ok\"}"),
                     want);
    assert_int_equal((int)metric_sum(text, "cascade_calls_total"), attempts);
    assert_int_equal((int)metric_sum(text, "cascade_call_duration_seconds_count"), attempts);
    assert_int_equal((int)metric_sum(text, "cascade_validation_duration_seconds_count"), attempts);
    assert_int_equal((int)metric(text, "cascade_escalations_total{cascade=\"main\","
                                       "validator=\"schema\",reason=\"schema_mismatch\"}"),
                     climbs);
    double mcost = metric_sum(text, "cascade_cost_usd_total");
    if (mcost < cost - 1e-9 || mcost > cost + 1e-9)
        fail_msg("metrics cost %.12f, results %.12f", mcost, cost);
    cJSON_Delete(res);
}

/* Scrapes until the tasks counter reaches want and the file has its lines; the last scrape. */
static char *wait_done(const char *url, const char *out, int want)
{
    for (int i = 0; i < 400; i++) {
        char *text = scrape(url);
        cJSON *res = h_jsonl(out);
        int lines = cJSON_GetArraySize(res);
        cJSON_Delete(res);
        if ((int)metric_sum(text, "cascade_tasks_total") == want && lines == want)
            return text;
        free(text);
        h_sleep_ms(50);
    }
    fail_msg("the run did not reach %d tasks", want);
    return NULL;
}

static void test_metrics_scraped_during_a_run_move_and_match_the_results_file(void **state)
{
    (void)state;
    wk_buf t1, t2, r;
    wk_buf_init(&t1, 1 << 20);
    wk_buf_init(&t2, 1 << 20);
    wk_buf_init(&r, 1 << 20);
    tasks(&t1, &r, 0, 6);
    tasks(&t2, &r, 6, 12);
    char *recs = h_write("m-recs.jsonl", r.buf);
    char *fifo = h_tmp("m-tasks.fifo"), *out = h_tmp("m-out.jsonl"), *errf = h_tmp("m-err");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    h_mock m;
    const char *extra[] = {"--latency", "20", NULL};
    h_mock_start(&m, recs, NULL, extra);
    const char *argv[] = {h_cascade_bin(),
                          "run",
                          fifo,
                          "--cascades",
                          cdir,
                          "--models",
                          models,
                          "-o",
                          out,
                          "--concurrency",
                          "3",
                          "--metrics-addr",
                          "127.0.0.1:0",
                          "--journal",
                          "none",
                          NULL};
    pid_t pid = h_spawn((char *const *)argv, NULL, errf);
    /* The writing end opens once the run has opened the reading one (bounded). */
    int fd = -1;
    for (int i = 0; i < 200 && fd < 0; i++) {
        fd = open(fifo, O_WRONLY | O_NONBLOCK);
        if (fd < 0)
            h_sleep_ms(50);
    }
    assert_true(fd >= 0);
    char *url = metrics_url(errf);
    char *first = scrape(url);
    assert_int_equal((int)metric_sum(first, "cascade_tasks_total"), -1); /* nothing yet */
    assert_int_equal((int)metric(first, "cascade_tasks_in_flight"), 0);
    assert_true(strstr(first, "# TYPE cascade_call_duration_seconds histogram") != NULL);

    assert_int_equal(write(fd, t1.buf, t1.len), (ssize_t)t1.len);
    char *mid = wait_done(url, out, 6);
    consistent(mid, out, 6);
    assert_int_equal((int)metric(mid, "cascade_tasks_in_flight"), 0);
    assert_int_equal((int)metric(mid, "cascade_calls_in_flight"), 0);

    /* More work: the counters move on from where they were. */
    assert_int_equal(write(fd, t2.buf, t2.len), (ssize_t)t2.len);
    char *end = wait_done(url, out, 12);
    consistent(end, out, 12);
    assert_true(metric_sum(end, "cascade_cost_usd_total") >
                metric_sum(mid, "cascade_cost_usd_total"));
    close(fd);
    int rc = h_wait(pid, 30000);
    if (rc != 0)
        fail_msg("cascade exited %d: %s", rc, h_slurp(errf));
    h_mock_stop(&m);
    free(first);
    free(mid);
    free(end);
    free(url);
    free(recs);
    free(fifo);
    free(out);
    free(errf);
    wk_buf_release(&t1);
    wk_buf_release(&t2);
    wk_buf_release(&r);
}

static void test_a_bad_metrics_address_stops_the_run_before_any_call(void **state)
{
    (void)state;
    wk_buf t;
    wk_buf_init(&t, 1 << 20);
    tasks(&t, NULL, 0, 1);
    char *tf = h_write("bad-tasks.jsonl", t.buf), *out = h_tmp("bad-out.jsonl"),
         *errf = h_tmp("bad-err");
    const char *bad[] = {"localhost", "127.0.0.1", "127.0.0.1:99999", "example.org:80"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[] = {h_cascade_bin(), "run", tf,  "--cascades",     cdir,   "--models",
                              models,          "-o",  out, "--metrics-addr", bad[i], NULL};
        assert_int_equal(h_run((char *const *)argv, NULL, errf, 30), 1);
        char *err = h_slurp(errf);
        assert_non_null(strstr(err, "--metrics-addr"));
        free(err);
    }
    free(tf);
    free(out);
    free(errf);
    wk_buf_release(&t);
}

static int count(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(s, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_off_a_terminal_plain_progress_lines_come_at_the_interval(void **state)
{
    (void)state;
    wk_buf t, r;
    wk_buf_init(&t, 1 << 20);
    wk_buf_init(&r, 1 << 20);
    tasks(&t, &r, 0, 8);
    char *tf = h_write("p-tasks.jsonl", t.buf), *recs = h_write("p-recs.jsonl", r.buf);
    char *out = h_tmp("p-out.jsonl"), *errf = h_tmp("p-err");
    h_mock m;
    const char *extra[] = {"--latency", "150", NULL};
    h_mock_start(&m, recs, NULL, extra);
    const char *argv[] = {h_cascade_bin(),
                          "run",
                          tf,
                          "--cascades",
                          cdir,
                          "--models",
                          models,
                          "-o",
                          out,
                          "--concurrency",
                          "1",
                          "--journal",
                          "none",
                          "--progress-interval",
                          "0.2",
                          NULL};
    assert_int_equal(h_run((char *const *)argv, NULL, errf, 60), 0);
    char *err = h_slurp(errf);
    /* 11 calls of 150 ms one at a time: several lines, each a whole plain line. */
    assert_true(count(err, "/8 done, ") >= 3);
    assert_null(strchr(err, '\r'));
    assert_null(strchr(err, '\033'));
    assert_non_null(strstr(err, "\ncascade: 8 tasks: 8 accepted"));
    free(err);
    /* --quiet: neither the lines nor the summary. */
    const char *qargv[] = {h_cascade_bin(),
                           "run",
                           tf,
                           "--cascades",
                           cdir,
                           "--models",
                           models,
                           "-o",
                           out,
                           "--concurrency",
                           "4",
                           "--journal",
                           "none",
                           "--progress-interval",
                           "0.05",
                           "-q",
                           NULL};
    assert_int_equal(h_run((char *const *)qargv, NULL, errf, 60), 0);
    err = h_slurp(errf);
    assert_string_equal(err, "");
    free(err);
    h_mock_stop(&m);
    free(tf);
    free(recs);
    free(out);
    free(errf);
    wk_buf_release(&t);
    wk_buf_release(&r);
}

/* ---- on a terminal (tmux) ----------------------------------------------------- */

static int tmux(const char *sock, const char *a1, const char *a2, const char *a3, const char *out)
{
    const char *argv[] = {"/usr/bin/tmux", "-S", sock, a1, a2, a3, NULL};
    return h_run((char *const *)argv, out, NULL, 10);
}

static void test_on_a_terminal_the_line_is_redrawn_in_place_and_ends_with_the_summary(void **state)
{
    (void)state;
    wk_buf t, r, sh;
    wk_buf_init(&t, 1 << 20);
    wk_buf_init(&r, 1 << 20);
    wk_buf_init(&sh, 1 << 16);
    tasks(&t, &r, 0, 10);
    char *tf = h_write("tty-tasks.jsonl", t.buf), *recs = h_write("tty-recs.jsonl", r.buf);
    char *out = h_tmp("tty-out.jsonl"), *sock = h_tmp("tmux.sock"), *pane = h_tmp("pane.txt");
    h_mock m;
    const char *extra[] = {"--latency", "200", NULL};
    h_mock_start(&m, recs, NULL, extra);
    /* The shell prints a marker when cascade is done, then waits to be killed. */
    wk_buf_appendf(&sh,
                   "MOCK_URL=%s %s run %s --cascades %s --models %s -o %s --concurrency 1 "
                   "--journal none; echo EXITED=$?; sleep 60\n",
                   m.url, h_cascade_bin(), tf, cdir, models, out);
    char *script = h_write("tty.sh", sh.buf);
    const char *argv[] = {"/usr/bin/tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-x",
                          "150",           "-y", "40", "sh", script,      NULL};
    assert_int_equal(h_run((char *const *)argv, NULL, NULL, 10), 0);
    char seen[8][256];
    int nseen = 0, done = 0;
    char *text = NULL;
    for (int i = 0; i < 600 && !done; i++) {
        h_sleep_ms(50);
        if (tmux(sock, "capture-pane", "-p", "-J", pane) != 0)
            continue;
        free(text);
        text = h_slurp(pane);
        done = strstr(text, "EXITED=") != NULL;
        /* Never more than one progress line on the screen: it is redrawn, not repeated. */
        assert_true(count(text, " in flight, ") <= 1);
        char *p = strstr(text, "cascade: ");
        if (!done && p && strstr(p, " in flight, ") && nseen < 8) {
            size_t n = strcspn(p, "\n");
            /* The line starts the pane's first row: the cursor went back, nothing scrolled. */
            assert_ptr_equal(p, text);
            if (n < sizeof seen[0] &&
                (!nseen || strncmp(seen[nseen - 1], p, n) != 0 || seen[nseen - 1][n] != '\0')) {
                memcpy(seen[nseen], p, n);
                seen[nseen++][n] = '\0';
            }
        }
    }
    assert_true(done);
    assert_true(nseen >= 2); /* the line changed in place as tasks finished */
    assert_non_null(strstr(seen[nseen - 1], "/10 done, "));
    /* The end: the summary at the first row, no progress text left over. */
    assert_ptr_equal(strstr(text, "cascade: 10 tasks: 10 accepted"), text);
    assert_null(strstr(text, " in flight, "));
    assert_non_null(strstr(text, "EXITED=0"));
    tmux(sock, "kill-server", NULL, NULL, NULL);
    h_mock_stop(&m);
    free(text);
    free(script);
    free(tf);
    free(recs);
    free(out);
    free(sock);
    free(pane);
    wk_buf_release(&t);
    wk_buf_release(&r);
    wk_buf_release(&sh);
}

/* ---- logs ----------------------------------------------------------------------- */

static void test_log_format_json_makes_every_stderr_line_a_json_object(void **state)
{
    (void)state;
    wk_buf t, r;
    wk_buf_init(&t, 1 << 20);
    wk_buf_init(&r, 1 << 20);
    tasks(&t, &r, 0, 4);
    char *tf = h_write("j-tasks.jsonl", t.buf), *recs = h_write("j-recs.jsonl", r.buf);
    char *out = h_tmp("j-out.jsonl"), *errf = h_tmp("j-err");
    h_mock m;
    const char *extra[] = {"--latency", "100", NULL};
    h_mock_start(&m, recs, NULL, extra);
    const char *argv[] = {h_cascade_bin(),
                          "run",
                          tf,
                          "--cascades",
                          cdir,
                          "--models",
                          models,
                          "-o",
                          out,
                          "--concurrency",
                          "1",
                          "--journal",
                          "none",
                          "--progress-interval",
                          "0.1",
                          "--log-format",
                          "json",
                          "--metrics-addr",
                          "127.0.0.1:0",
                          NULL};
    assert_int_equal(h_run((char *const *)argv, NULL, errf, 60), 0);
    cJSON *lines = h_jsonl(errf);
    char *err = h_slurp(errf);
    int nl = count(err, "\n"), summary = 0, progress = 0;
    assert_int_equal(cJSON_GetArraySize(lines), nl); /* each line is one JSON object */
    const cJSON *x;
    cJSON_ArrayForEach(x, lines)
    {
        const char *ts = h_str(x, "ts"), *level = h_str(x, "level"), *msg = h_str(x, "msg");
        assert_non_null(ts);
        assert_int_equal(ts[strlen(ts) - 1], 'Z');
        assert_string_equal(level, "info");
        summary += strncmp(msg, "4 tasks: 4 accepted", 19) == 0;
        progress += strstr(msg, "/4 done, ") != NULL;
    }
    assert_int_equal(summary, 1);
    assert_true(progress >= 1);
    cJSON_Delete(lines);
    free(err);
    /* A startup error is logged at level error. */
    char *missing = h_tmp("j-missing.jsonl");
    argv[2] = missing;
    assert_int_equal(h_run((char *const *)argv, NULL, errf, 60), 1);
    lines = h_jsonl(errf);
    assert_int_equal(cJSON_GetArraySize(lines), 1);
    assert_string_equal(h_str(cJSON_GetArrayItem(lines, 0), "level"), "error");
    assert_non_null(strstr(h_str(cJSON_GetArrayItem(lines, 0), "msg"), "cannot open tasks file"));
    cJSON_Delete(lines);
    /* --log-level error keeps it and drops the info lines of a good run. */
    argv[2] = tf;
    const char *argv2[24];
    int n = 0;
    for (; argv[n]; n++)
        argv2[n] = argv[n];
    argv2[n++] = "--log-level";
    argv2[n++] = "error";
    argv2[n] = NULL;
    assert_int_equal(h_run((char *const *)argv2, NULL, errf, 60), 0);
    err = h_slurp(errf);
    assert_string_equal(err, "");
    free(err);
    h_mock_stop(&m);
    free(missing);
    free(tf);
    free(recs);
    free(out);
    free(errf);
    wk_buf_release(&t);
    wk_buf_release(&r);
}

/* Runs line in a fresh tmux pane; returns the pane with its colours (-e) once it printed EXITED. */
static char *in_tmux(const char *line)
{
    char *sock = h_tmp("tmux-c.sock"), *pane = h_tmp("pane-c.txt");
    char *sh = wk_xasprintf("%s; echo EXITED=$?; sleep 60\n", line);
    char *script = h_write("tty-c.sh", sh);
    const char *argv[] = {"/usr/bin/tmux", "-S", sock, "-f", "/dev/null", "new-session", "-d", "-x",
                          "150",           "-y", "20", "sh", script,      NULL};
    assert_int_equal(h_run((char *const *)argv, NULL, NULL, 10), 0);
    char *text = NULL;
    for (int i = 0; i < 200; i++) {
        h_sleep_ms(50);
        const char *cap[] = {"/usr/bin/tmux", "-S", sock, "capture-pane", "-p", "-e", NULL};
        if (h_run((char *const *)cap, pane, NULL, 10) != 0)
            continue;
        free(text);
        text = h_slurp(pane);
        if (strstr(text, "EXITED="))
            break;
    }
    tmux(sock, "kill-server", NULL, NULL, NULL);
    assert_non_null(strstr(text, "EXITED="));
    free(sh);
    free(script);
    free(sock);
    free(pane);
    return text;
}

static void test_colour_only_on_a_terminal_and_never_with_no_color(void **state)
{
    (void)state;
    char *missing = h_tmp("c-missing.jsonl");
    char *cmd =
        wk_xasprintf("%s run %s --cascades %s --models %s", h_cascade_bin(), missing, cdir, models);
    char *text = in_tmux(cmd);
    assert_non_null(strstr(text, "cannot open tasks file"));
    assert_non_null(strstr(text, "\033[31m")); /* red on a terminal */
    free(text);
    char *nc = wk_xasprintf("NO_COLOR=1 %s", cmd);
    text = in_tmux(nc);
    assert_non_null(strstr(text, "cannot open tasks file"));
    assert_null(strchr(text, '\033'));
    free(text);
    /* Off a terminal: no colour either. */
    char *errf = h_tmp("c-err");
    const char *argv[] = {h_cascade_bin(), "run",  missing, "--cascades", cdir,
                          "--models",      models, NULL};
    assert_int_equal(h_run((char *const *)argv, NULL, errf, 30), 1);
    char *err = h_slurp(errf);
    assert_non_null(strstr(err, "cannot open tasks file"));
    assert_null(strchr(err, '\033'));
    free(err);
    free(errf);
    free(nc);
    free(cmd);
    free(missing);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics_scraped_during_a_run_move_and_match_the_results_file),
        cmocka_unit_test(test_a_bad_metrics_address_stops_the_run_before_any_call),
        cmocka_unit_test(test_off_a_terminal_plain_progress_lines_come_at_the_interval),
        cmocka_unit_test(test_on_a_terminal_the_line_is_redrawn_in_place_and_ends_with_the_summary),
        cmocka_unit_test(test_log_format_json_makes_every_stderr_line_a_json_object),
        cmocka_unit_test(test_colour_only_on_a_terminal_and_never_with_no_color),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
