/*
 * End to end: the real `cascade` binary against the real mock model server
 * on 127.0.0.1, on the demo fixtures. Asserts each task's status, accepting
 * tier and number of escalation lines against fixtures/demo/expected.jsonl,
 * that feedback reaches the next request, that a rerun gives the same
 * results, and that startup errors name what is wrong before any call.
 *
 * Needs CASCADE_BIN, MOCK_BIN and SRC_DIR (set by `make test`).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../worker/util.h"

static const char *cascade_bin, *mock_bin, *src;
static char dir[256];
static pid_t mock_pid = -1;
static char mock_url[64];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static char *path_in(const char *d, const char *name)
{
    return wk_xasprintf("%s/%s", d, name);
}

/* Runs argv with stdout/stderr to files; returns the exit status (bounded wait). */
static int run_cmd(char *const argv[], const char *out, const char *err, int timeout_s)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    for (int i = 0; i < timeout_s * 20; i++) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    fail_msg("%s timed out after %d s", argv[0], timeout_s);
    return -1;
}

static char *slurp(const char *path)
{
    char *s = NULL;
    size_t n;
    if (wk_read_file(path, 64u << 20, &s, &n) != 0)
        return wk_xstrdup("");
    return s;
}

/* Parses a JSONL file into an array. */
static cJSON *read_jsonl(const char *path)
{
    char *s = slurp(path);
    cJSON *arr = cJSON_CreateArray();
    char *save = NULL;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        if (!j)
            fail_msg("%s: a line is not JSON: %.200s", path, line);
        cJSON_AddItemToArray(arr, j);
    }
    free(s);
    return arr;
}

static void stop_mock(void)
{
    if (mock_pid > 0) {
        kill(mock_pid, SIGTERM);
        int status;
        for (int i = 0; i < 100 && waitpid(mock_pid, &status, WNOHANG) == 0; i++)
            sleep_ms(50);
        kill(mock_pid, SIGKILL);
        waitpid(mock_pid, &status, 0);
        mock_pid = -1;
    }
}

static void start_mock(const char *log)
{
    char *recs = path_in(src, "fixtures/demo/recordings.jsonl");
    char *portf = path_in(dir, "port");
    unlink(portf);
    mock_pid = fork();
    if (mock_pid == 0) {
        int fe = open("/dev/null", O_WRONLY);
        dup2(fe, 1);
        execl(mock_bin, mock_bin, "--port", "0", "--port-file", portf, "--recordings", recs,
              "--log", log, (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (int i = 0; i < 200 && !port; i++) {
        char *p = slurp(portf);
        port = atoi(p);
        free(p);
        if (!port)
            sleep_ms(50);
    }
    if (!port)
        fail_msg("mock-llm did not write its port file");
    snprintf(mock_url, sizeof mock_url, "http://127.0.0.1:%d", port);
    setenv("MOCK_URL", mock_url, 1);
    free(recs);
    free(portf);
}

static int group_setup(void **state)
{
    (void)state;
    cascade_bin = getenv("CASCADE_BIN");
    mock_bin = getenv("MOCK_BIN");
    src = getenv("SRC_DIR");
    if (!cascade_bin || !mock_bin || !src) {
        fprintf(stderr, "test_e2e: set CASCADE_BIN, MOCK_BIN and SRC_DIR (make test does)\n");
        return -1;
    }
    snprintf(dir, sizeof dir, "/tmp/cascade-e2e-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    stop_mock();
    char *cmd = wk_xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "test_e2e: could not remove %s\n", dir);
    free(cmd);
    return 0;
}

static int run_demo(const char *results, const char *escal, const char *errf)
{
    char *tasks = path_in(src, "fixtures/demo/tasks.jsonl");
    char *casc = path_in(src, "fixtures/demo/cascades");
    char *models = path_in(src, "fixtures/demo/models.json");
    char *out = path_in(dir, "stdout");
    char *argv[] = {(char *)cascade_bin, "run", tasks, "--cascades", casc, "--models", models,
                    "-o", (char *)results, "--escalations", (char *)escal, NULL};
    int rc = run_cmd(argv, out, errf, 240);
    free(tasks);
    free(casc);
    free(models);
    free(out);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const cJSON *find_by(const cJSON *arr, const char *key, const cJSON *val)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, key);
        if (f && cJSON_Compare(f, val, 1))
            return e;
    }
    return NULL;
}

static int count_escalations(const cJSON *escal, const char *id)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, escal)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "id");
        n += cJSON_IsString(f) && strcmp(f->valuestring, id) == 0;
    }
    return n;
}

/*
 * Each line printed without the fields that legitimately differ between two
 * runs (latency), sorted: tasks finish concurrently, so line order varies.
 */
static char **canonical_lines(cJSON *results, int *n)
{
    *n = cJSON_GetArraySize(results);
    char **lines = wk_xcalloc((size_t)*n, sizeof(char *));
    int i = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, results)
    {
        cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(r, "attempts"))
            cJSON_DeleteItemFromObjectCaseSensitive(a, "latency_ms");
        lines[i++] = cJSON_PrintUnformatted(r);
    }
    qsort(lines, (size_t)*n, sizeof(char *), cmp_str);
    return lines;
}

static void test_demo_batch_matches_expected_outcomes(void **state)
{
    (void)state;
    char *log = path_in(dir, "mock.log");
    char *results = path_in(dir, "results.jsonl");
    char *escal = path_in(dir, "escalations.jsonl");
    char *errf = path_in(dir, "stderr");
    start_mock(log);
    int rc = run_demo(results, escal, errf);
    char *err = slurp(errf);
    if (rc != 0)
        fail_msg("cascade run exited %d:\n%s", rc, err);
    assert_non_null(strstr(err, "pass rate"));
    assert_non_null(strstr(err, "top tier only"));

    char *expf = path_in(src, "fixtures/demo/expected.jsonl");
    cJSON *expected = read_jsonl(expf);
    cJSON *got = read_jsonl(results);
    cJSON *esc = read_jsonl(escal);
    assert_int_equal(cJSON_GetArraySize(got), cJSON_GetArraySize(expected));
    int total_climbs = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, expected)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(x, "id");
        const cJSON *r = id ? find_by(got, "id", id)
                            : find_by(got, "line", cJSON_GetObjectItemCaseSensitive(x, "line"));
        if (!r)
            fail_msg("no result line for %s", cJSON_PrintUnformatted(x));
        const char *want = cJSON_GetObjectItemCaseSensitive(x, "status")->valuestring;
        const char *have = cJSON_GetObjectItemCaseSensitive(r, "status")->valuestring;
        const char *name = id && cJSON_IsString(id) ? id->valuestring : "(line)";
        if (strcmp(want, have) != 0)
            fail_msg("%s: status %s, expected %s: %s", name, have, want,
                     cJSON_PrintUnformatted(r));
        const cJSON *wt = cJSON_GetObjectItemCaseSensitive(x, "tier");
        const cJSON *ht = cJSON_GetObjectItemCaseSensitive(r, "tier");
        if (wt && !cJSON_Compare(wt, ht, 1))
            fail_msg("%s: accepted at tier %s, expected %s", name, cJSON_PrintUnformatted(ht),
                     cJSON_PrintUnformatted(wt));
        const cJSON *we = cJSON_GetObjectItemCaseSensitive(x, "escalations");
        if (cJSON_IsNumber(we) && cJSON_IsString(id)) {
            int n = count_escalations(esc, id->valuestring);
            if (n != we->valueint)
                fail_msg("%s: %d escalation lines, expected %d", name, n, we->valueint);
            total_climbs += n;
        }
        if (strcmp(have, "invalid_task") != 0)
            assert_non_null(cJSON_GetObjectItemCaseSensitive(r, "attempts"));
    }
    assert_int_equal(cJSON_GetArraySize(esc), total_climbs);
    assert_true(total_climbs > 0);

    /* Feedback: after a climb, the request to the next tier carries the failure. */
    cJSON *reqs = read_jsonl(log);
    const cJSON *e = cJSON_GetArrayItem(esc, 0);
    const char *eid = cJSON_GetObjectItemCaseSensitive(e, "id")->valuestring;
    const char *to = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(e, "to"),
                                                      "model")->valuestring;
    int found = 0;
    const cJSON *q;
    cJSON_ArrayForEach(q, reqs)
    {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(q, "task");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(q, "model");
        if (!cJSON_IsString(t) || strcmp(t->valuestring, eid) || !cJSON_IsString(m))
            continue;
        char *body = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(q, "body"));
        if (strstr(body, "Your answer failed the"))
            found = 1;
        free(body);
    }
    if (!found)
        fail_msg("no request for %s to %s carried the feedback turn", eid, to);

    /* A second run gives the same result lines, timings aside. */
    char *results2 = path_in(dir, "results2.jsonl");
    char *escal2 = path_in(dir, "escalations2.jsonl");
    stop_mock(); /* a fresh mock restarts each (task, model) at run 1 */
    start_mock(log);
    assert_int_equal(run_demo(results2, escal2, errf), 0);
    cJSON *got2 = read_jsonl(results2);
    int n1, n2;
    char **l1 = canonical_lines(got, &n1);
    char **l2 = canonical_lines(got2, &n2);
    assert_int_equal(n1, n2);
    for (int i = 0; i < n1; i++)
        if (strcmp(l1[i], l2[i]) != 0)
            fail_msg("the second run differs:\n%s\n%s", l1[i], l2[i]);
    for (int i = 0; i < n1; i++) {
        free(l1[i]);
        free(l2[i]);
    }
    free(l1);
    free(l2);
    stop_mock();

    cJSON_Delete(got2);
    cJSON_Delete(reqs);
    cJSON_Delete(expected);
    cJSON_Delete(got);
    cJSON_Delete(esc);
    free(results2);
    free(escal2);
    free(expf);
    free(err);
    free(log);
    free(results);
    free(escal);
    free(errf);
}

/* Writes a file in the test dir; returns its path (caller frees). */
static char *write_file(const char *name, const char *text)
{
    char *p = path_in(dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

/* Runs cascade on a one-task batch with the given models/cascade files. */
static int run_small(const char *models_text, const char *cascade_text, char **err)
{
    char *cdir = path_in(dir, "casc");
    mkdir(cdir, 0755);
    char *cf = path_in(cdir, "one.json");
    FILE *f = fopen(cf, "w");
    fputs(cascade_text, f);
    fclose(f);
    char *models = write_file("models-small.json", models_text);
    char *tasks = write_file("tasks-small.jsonl",
                             "{\"id\":\"a\",\"kind\":\"classify\",\"prompt\":\"p\","
                             "\"schema\":{\"type\":\"object\"}}\n");
    char *out = path_in(dir, "small-out.jsonl");
    char *errf = path_in(dir, "small-err");
    char *argv[] = {(char *)cascade_bin, "run", tasks, "--cascades", cdir, "--models", models,
                    "-o", out, NULL};
    int rc = run_cmd(argv, out, errf, 60);
    *err = slurp(errf);
    free(cdir);
    free(cf);
    free(models);
    free(tasks);
    free(out);
    free(errf);
    return rc;
}

static const char *GOOD_CASCADE =
    "{\"name\":\"c\",\"match\":{\"kind\":\"classify\"},\"validators\":[\"schema\"],"
    "\"tiers\":[{\"model\":\"m\"}]}";

static void test_startup_errors_name_file_field_and_variable(void **state)
{
    (void)state;
    char *err;
    /* A models file that does not parse names the file and line. */
    assert_int_equal(run_small("{\"providers\": {,}\n", GOOD_CASCADE, &err), 1);
    assert_non_null(strstr(err, "models-small.json"));
    assert_non_null(strstr(err, "not valid JSON"));
    free(err);
    /* An unknown model in a cascade names the cascade file and the field. */
    const char *models =
        "{\"providers\":{\"p\":{\"api\":\"openai\",\"base_url\":\"http://127.0.0.1:9/v1\","
        "\"key_env\":\"CASCADE_TEST_UNSET_KEY\"}},\"models\":{\"m\":{\"provider\":\"p\","
        "\"input_usd_per_mtok\":1,\"output_usd_per_mtok\":2}}}";
    assert_int_equal(run_small(models,
                               "{\"name\":\"c\",\"validators\":[\"schema\"],"
                               "\"tiers\":[{\"model\":\"nope\"}]}",
                               &err),
                     1);
    assert_non_null(strstr(err, "one.json"));
    assert_non_null(strstr(err, "tiers[0].model"));
    assert_non_null(strstr(err, "nope"));
    free(err);
    /* A missing key variable is named before any call. */
    unsetenv("CASCADE_TEST_UNSET_KEY");
    assert_int_equal(run_small(models, GOOD_CASCADE, &err), 1);
    assert_non_null(strstr(err, "CASCADE_TEST_UNSET_KEY"));
    free(err);
    /* An unset ${VAR} in a base_url is named too. */
    unsetenv("CASCADE_TEST_UNSET_URL");
    assert_int_equal(run_small("{\"providers\":{\"p\":{\"api\":\"openai\",\"base_url\":"
                               "\"${CASCADE_TEST_UNSET_URL}/v1\",\"key_env\":null}},"
                               "\"models\":{\"m\":{\"provider\":\"p\",\"input_usd_per_mtok\":1,"
                               "\"output_usd_per_mtok\":2}}}",
                               GOOD_CASCADE, &err),
                     1);
    assert_non_null(strstr(err, "CASCADE_TEST_UNSET_URL"));
    free(err);
}

static void test_usage_errors_exit_2_and_help_exits_0(void **state)
{
    (void)state;
    char *out = path_in(dir, "help-out");
    char *errf = path_in(dir, "help-err");
    char *a1[] = {(char *)cascade_bin, "run", "--help", NULL};
    assert_int_equal(run_cmd(a1, out, errf, 10), 0);
    char *h = slurp(out);
    assert_non_null(strstr(h, "--escalations"));
    assert_non_null(strstr(h, "--concurrency"));
    free(h);
    char *a2[] = {(char *)cascade_bin, "run", NULL};
    assert_int_equal(run_cmd(a2, out, errf, 10), 2);
    char *a3[] = {(char *)cascade_bin, "frobnicate", NULL};
    assert_int_equal(run_cmd(a3, out, errf, 10), 2);
    char *a4[] = {(char *)cascade_bin, "run", "x", "--concurrency", "0", NULL};
    assert_int_equal(run_cmd(a4, out, errf, 10), 2);
    free(out);
    free(errf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_demo_batch_matches_expected_outcomes),
        cmocka_unit_test(test_startup_errors_name_file_field_and_variable),
        cmocka_unit_test(test_usage_errors_exit_2_and_help_exits_0),
    };
    return cmocka_run_group_tests_name("e2e", tests, group_setup, group_teardown);
}
