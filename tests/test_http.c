/*
 * worker/net/http.c against the real mock-llm: a request's body and header
 * lines are copied unless lent (the caller may scribble on its buffers at
 * once), lent ones are sent as they are, a kept easy handle carries nothing
 * of the last request into the next (a GET after a POST sends no body, a
 * POST after a GET is a POST again), and many requests in flight each get
 * their callback exactly once. Every loop run here is bounded by a timer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "harness.h"
#include "lib/util.h"
#include "worker/net/http.h"

#define MANY 200
/* No test here waits this long unless something is broken. */
#define LOOP_LIMIT_MS 20000

static const char recordings[] = "{\"task\": \"*\", \"model\": \"m\", \"run\": 1, \"answer\": "
                                 "\"hello\"}\n";

typedef struct got {
    int calls;
    int rc;
    long status;
    char body[4096];
} got;

static void on_done(void *arg, const wk_http_result *res)
{
    got *g = arg;
    g->calls++;
    g->rc = res->rc;
    g->status = res->status;
    snprintf(g->body, sizeof g->body, "%.*s", (int)res->body_len, res->body);
}

typedef struct env {
    uv_loop_t loop;
    uv_timer_t limit;
    wk_http *http;
    h_mock mock;
    char *log;
    char url[128];
    int expired;
} env;

static void on_limit(uv_timer_t *t)
{
    env *e = t->data;
    e->expired = 1;
    uv_stop(t->loop);
}

static void env_start(env *e)
{
    memset(e, 0, sizeof *e);
    assert_int_equal(h_setup(), 0);
    char *recs = h_write("recordings.jsonl", recordings);
    e->log = h_tmp("mock.log");
    h_mock_start(&e->mock, recs, e->log, NULL);
    free(recs);
    snprintf(e->url, sizeof e->url, "%s/v1/chat/completions", e->mock.url);
    assert_int_equal(uv_loop_init(&e->loop), 0);
    e->http = wk_http_new(&e->loop);
    assert_non_null(e->http);
    uv_timer_init(&e->loop, &e->limit);
    e->limit.data = e;
}

/* Runs the loop until no transfer is left, or fails the test at the limit. */
static void env_run(env *e)
{
    uv_timer_start(&e->limit, on_limit, LOOP_LIMIT_MS, 0);
    /* Unreferenced, the limit does not keep the loop alive: it ends with the transfers. */
    uv_unref((uv_handle_t *)&e->limit);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_timer_stop(&e->limit);
    assert_false(e->expired);
}

static void env_stop(env *e)
{
    wk_http_free(e->http);
    uv_close((uv_handle_t *)&e->limit, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    h_mock_stop(&e->mock);
    free(e->log);
    h_teardown();
}

static const wk_http_opts base_opts = {
    .connect_timeout_ms = 5000,
    .total_timeout_ms = 10000,
    .body_cap = 1 << 20,
};

static void post(env *e, const char *task, char *body, char *hdr, int borrow, got *g)
{
    char ctype[] = "Content-Type: application/json";
    const char *headers[] = {hdr, ctype};
    wk_http_opts o = base_opts;
    o.borrow = borrow;
    snprintf(hdr, 64, "x-cascade-task: %s", task);
    sprintf(body, "{\"model\": \"m\", \"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}");
    assert_int_equal(wk_http_post(e->http, e->url, headers, 2, body, strlen(body), &o, on_done, g),
                     0);
}

/* The mock's log lines for requests (not --log-writes events). */
static cJSON *log_lines(env *e)
{
    return h_jsonl(e->log);
}

/* The mock logged exactly one request, task's, for model "m". */
static void logged_once(env *e, const char *task)
{
    cJSON *lines = log_lines(e);
    assert_int_equal(cJSON_GetArraySize(lines), 1);
    assert_string_equal(h_str(cJSON_GetArrayItem(lines, 0), "task"), task);
    assert_string_equal(h_str(cJSON_GetArrayItem(lines, 0), "model"), "m");
    cJSON_Delete(lines);
}

static void copied_request_survives_the_callers_buffers(void **state)
{
    (void)state;
    env e;
    env_start(&e);
    char body[256], hdr[64];
    got g = {0};
    post(&e, "t-copied", body, hdr, 0, &g);
    /* Copied: what the caller does with its buffers now is no concern of the request. */
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    memset(hdr, 'y', sizeof hdr - 1);
    hdr[sizeof hdr - 1] = '\0';
    env_run(&e);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.status, 200);
    assert_non_null(strstr(g.body, "hello"));
    logged_once(&e, "t-copied");
    env_stop(&e);
}

static void borrowed_request_is_sent_as_lent(void **state)
{
    (void)state;
    env e;
    env_start(&e);
    char body[256], hdr[64];
    got g = {0};
    post(&e, "t-lent", body, hdr, 1, &g);
    env_run(&e);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 200);
    assert_non_null(strstr(g.body, "hello"));
    logged_once(&e, "t-lent");
    env_stop(&e);
}

/* One transfer at a time, so each request takes the handle the last one left. */
static void kept_handle_carries_nothing_into_the_next_request(void **state)
{
    (void)state;
    env e;
    env_start(&e);
    char body[256], hdr[64];
    got g1 = {0}, g2 = {0}, g3 = {0};
    post(&e, "t-first", body, hdr, 1, &g1);
    env_run(&e);
    assert_int_equal(g1.status, 200);

    /* A GET on the kept handle: no body goes (the mock names the method it got). */
    char url[160];
    snprintf(url, sizeof url, "%s/v1/no-such-thing", e.mock.url);
    wk_http_opts o = base_opts;
    o.get = 1;
    assert_int_equal(wk_http_post(e.http, url, NULL, 0, "", 0, &o, on_done, &g2), 0);
    env_run(&e);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g2.status, 404);
    assert_non_null(strstr(g2.body, "GET /v1/no-such-thing"));

    /* And a POST again: method, body and headers all this request's. */
    post(&e, "t-third", body, hdr, 0, &g3);
    env_run(&e);
    assert_int_equal(g3.calls, 1);
    assert_int_equal(g3.status, 200);
    assert_non_null(strstr(g3.body, "hello"));
    cJSON *lines = log_lines(&e);
    assert_int_equal(cJSON_GetArraySize(lines), 3);
    assert_string_equal(h_str(cJSON_GetArrayItem(lines, 0), "task"), "t-first");
    assert_string_equal(h_str(cJSON_GetArrayItem(lines, 2), "task"), "t-third");
    assert_string_equal(h_str(cJSON_GetArrayItem(lines, 2), "model"), "m");
    /* All three on one connection: the kept handle's connection was reused. */
    const cJSON *c0 = cJSON_GetObjectItem(cJSON_GetArrayItem(lines, 0), "conn");
    const cJSON *c2 = cJSON_GetObjectItem(cJSON_GetArrayItem(lines, 2), "conn");
    assert_int_equal(c0->valueint, c2->valueint);
    cJSON_Delete(lines);
    env_stop(&e);
}

/* More in flight than handles are kept: each answered once, each its own. */
static void many_in_flight_each_answered_once(void **state)
{
    (void)state;
    env e;
    env_start(&e);
    static char bodies[MANY][256], hdrs[MANY][64];
    static got gs[MANY];
    memset(gs, 0, sizeof gs);
    for (int i = 0; i < MANY; i++) {
        char task[32];
        snprintf(task, sizeof task, "t-%d", i);
        post(&e, task, bodies[i], hdrs[i], i % 2, &gs[i]);
    }
    env_run(&e);
    for (int i = 0; i < MANY; i++) {
        assert_int_equal(gs[i].calls, 1);
        assert_int_equal(gs[i].status, 200);
    }
    cJSON *lines = log_lines(&e);
    assert_int_equal(cJSON_GetArraySize(lines), MANY);
    for (int i = 0; i < MANY; i++) {
        char task[32];
        snprintf(task, sizeof task, "t-%d", i);
        assert_int_equal(h_count(lines, "task", task), 1);
    }
    cJSON_Delete(lines);
    env_stop(&e);
}

/* A client freed with requests in flight calls none of their callbacks. */
static void free_with_requests_in_flight_calls_back_nothing(void **state)
{
    (void)state;
    env e;
    env_start(&e);
    char body[4][256], hdr[4][64];
    got g[4] = {{0}};
    for (int i = 0; i < 4; i++)
        post(&e, "t-aborted", body[i], hdr[i], i % 2, &g[i]);
    env_stop(&e);
    for (int i = 0; i < 4; i++)
        assert_int_equal(g[i].calls, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(copied_request_survives_the_callers_buffers),
        cmocka_unit_test(borrowed_request_is_sent_as_lent),
        cmocka_unit_test(kept_handle_carries_nothing_into_the_next_request),
        cmocka_unit_test(many_in_flight_each_answered_once),
        cmocka_unit_test(free_with_requests_in_flight_calls_back_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
