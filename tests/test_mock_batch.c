/*
 * mock-llm's Anthropic Message Batches and Gemini batch mode over HTTP
 * (fixtures/mock-llm/batch_x.c, batch_anthropic.c, batch_gemini.c): each
 * request answered from the recordings as the sync route would answer it,
 * per-request faults (500, batch-expired) and batch-level ones
 * (batch-failed), cancel, list pages, the refusals the real APIs give, and
 * the request log's batch lines. The official clients' view of the same
 * endpoints is in tests/conformance/batch.test.mjs (make conformance).
 *
 * One mock serves the group (--batch-delay 50: a batch is in progress when
 * created); every poll loop is bounded and no test asserts a duration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "harness.h"
#include "lib/util.h"

#define POLLS 200 /* x 20 ms, far above --batch-delay */

static const char recordings[] =
    "{\"task\":\"t1\",\"model\":\"m-ok\",\"run\":1,\"answer\":\"one\","
    "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n"
    "{\"task\":\"t2\",\"model\":\"m-ok\",\"run\":1,\"answer\":\"two\",\"finish_reason\":\"length\"}"
    "\n"
    "{\"task\":\"t3\",\"model\":\"m-ok\",\"run\":1,\"answer\":\"three\"}\n";

static h_mock mock;
static char *log_path;

static int group_setup(void **state)
{
    (void)state;
    if (h_setup())
        return -1;
    char *recs = h_write("recordings.jsonl", recordings);
    log_path = h_tmp("mock.log");
    const char *extra[] = {"--batch-delay",
                           "50",
                           "--fault",
                           "batch-expired:1@m-exp",
                           "--fault",
                           "500:1@m-500",
                           "--fault",
                           "batch-failed:1@m-fail",
                           NULL};
    h_mock_start(&mock, recs, log_path, extra);
    free(recs);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    h_mock_stop(&mock);
    free(log_path);
    h_teardown();
    return 0;
}

/* ---- HTTP ------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    return wk_buf_append(ud, p, size * n) ? 0 : size * n;
}

/* METHOD path (body or NULL) to the mock; returns the status, the body in *out (caller frees). */
static long call(const char *method, const char *path, const char *body, char **out)
{
    CURL *c = curl_easy_init();
    wk_buf b;
    wk_buf_init(&b, (size_t)8 << 20);
    char *url = wk_xasprintf("%s%s", mock.url, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(url);
    size_t len;
    *out = b.len ? wk_buf_detach(&b, &len) : wk_xstrdup("");
    wk_buf_release(&b);
    return status;
}

/* A JSON answer with status `want`; caller deletes. */
static cJSON *json_call(const char *method, const char *path, const char *body, long want)
{
    char *text;
    long st = call(method, path, body, &text);
    if (st != want)
        fail_msg("%s %s: status %ld, want %ld: %s", method, path, st, want, text);
    cJSON *j = cJSON_Parse(text);
    if (!j)
        fail_msg("%s %s: not JSON: %s", method, path, text);
    free(text);
    return j;
}

static double num(const cJSON *o, const char *path)
{
    char *p = wk_xstrdup(path), *save = NULL;
    for (char *k = strtok_r(p, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
        o = cJSON_GetObjectItemCaseSensitive(o, k);
    free(p);
    if (!cJSON_IsNumber(o))
        fail_msg("%s is not a number", path);
    return o->valuedouble;
}

/* GETs path until field `key` differs from `running`; returns the last answer. */
static cJSON *poll_until(const char *path, const char *key, const char *running)
{
    for (int i = 0; i < POLLS; i++) {
        cJSON *j = json_call("GET", path, NULL, 200);
        const char *v = h_str(j, key);
        if (v && strcmp(v, running) != 0)
            return j;
        cJSON_Delete(j);
        h_sleep_ms(20);
    }
    fail_msg("%s: still %s after %d polls", path, running, POLLS);
    return NULL;
}

/* How many lines of the mock's log have "batch": event and "id": id. */
static int log_count(const char *event, const char *id)
{
    cJSON *lines = h_jsonl(log_path);
    int n = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, lines)
    {
        const char *b = h_str(l, "batch"), *i = h_str(l, "id");
        n += b && i && strcmp(b, event) == 0 && strcmp(i, id) == 0;
    }
    cJSON_Delete(lines);
    return n;
}

/* ---- Anthropic ------------------------------------------------------------- */

static char *anthropic_req(const char *custom_id, const char *model)
{
    return wk_xasprintf("{\"custom_id\":\"%s\",\"params\":{\"model\":\"%s\",\"max_tokens\":10,"
                        "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}}",
                        custom_id, model);
}

/* Creates a batch of the (custom_id, model) pairs; returns its id (caller frees). */
static char *anthropic_create(const char *const *pairs)
{
    wk_buf b;
    wk_buf_init(&b, 1 << 20);
    wk_buf_append(&b, "{\"requests\":[", 13);
    for (int i = 0; pairs[i]; i += 2) {
        char *r = anthropic_req(pairs[i], pairs[i + 1]);
        if (i)
            wk_buf_append(&b, ",", 1);
        wk_buf_append(&b, r, strlen(r));
        free(r);
    }
    wk_buf_append(&b, "]}", 3); /* with the NUL */
    cJSON *j = json_call("POST", "/v1/messages/batches", b.buf, 200);
    wk_buf_release(&b);
    assert_string_equal(h_str(j, "type"), "message_batch");
    assert_string_equal(h_str(j, "processing_status"), "in_progress");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "results_url")));
    char *id = wk_xstrdup(h_str(j, "id"));
    cJSON_Delete(j);
    return id;
}

/* The results JSONL as an array of lines. */
static cJSON *anthropic_results(const char *id)
{
    char *path = wk_xasprintf("/v1/messages/batches/%s/results", id), *text;
    long st = call("GET", path, NULL, &text);
    if (st != 200)
        fail_msg("results: %ld %s", st, text);
    char *f = h_write("results.jsonl", text);
    cJSON *arr = h_jsonl(f);
    free(f);
    free(text);
    free(path);
    return arr;
}

static const cJSON *result_of(const cJSON *lines, const char *custom_id)
{
    const cJSON *l = h_find(lines, "custom_id", custom_id);
    if (!l)
        fail_msg("no result for %s", custom_id);
    return cJSON_GetObjectItem(l, "result");
}

static void anthropic_batch_answers_from_recordings_with_faults(void **state)
{
    (void)state;
    const char *pairs[] = {"t1__1", "m-ok",  "t2__1", "m-ok", "t3", "m-exp",
                           "t1__2", "m-500", "t9__1", "m-ok", NULL};
    char *id = anthropic_create(pairs);
    char *path = wk_xasprintf("/v1/messages/batches/%s", id);
    cJSON *b = poll_until(path, "processing_status", "in_progress");
    assert_string_equal(h_str(b, "processing_status"), "ended");
    assert_int_equal((int)num(b, "request_counts.processing"), 0);
    assert_int_equal((int)num(b, "request_counts.succeeded"), 2);
    assert_int_equal((int)num(b, "request_counts.errored"), 2);
    assert_int_equal((int)num(b, "request_counts.expired"), 1);
    char *want = wk_xasprintf("/v1/messages/batches/%s/results", id);
    const char *url = h_str(b, "results_url");
    assert_non_null(url);
    assert_non_null(strstr(url, want));
    assert_non_null(h_str(b, "ended_at"));

    cJSON *res = anthropic_results(id);
    assert_int_equal(cJSON_GetArraySize(res), 5);
    const cJSON *r = result_of(res, "t1__1");
    assert_string_equal(h_str(r, "type"), "succeeded");
    const cJSON *msg = cJSON_GetObjectItem(r, "message");
    assert_string_equal(h_str(cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "content"), 0), "text"),
                        "one");
    assert_string_equal(h_str(msg, "stop_reason"), "end_turn");
    assert_int_equal((int)num(msg, "usage.output_tokens"), 2);
    assert_string_equal(
        h_str(cJSON_GetObjectItem(result_of(res, "t2__1"), "message"), "stop_reason"),
        "max_tokens");
    assert_string_equal(h_str(result_of(res, "t3"), "type"), "expired");
    r = result_of(res, "t1__2");
    assert_string_equal(h_str(r, "type"), "errored");
    assert_string_equal(
        h_str(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "error"), "type"), "api_error");
    r = result_of(res, "t9__1"); /* no recording for t9 */
    assert_string_equal(
        h_str(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "error"), "error"), "type"),
        "not_found_error");

    assert_int_equal(log_count("created", id), 1);
    assert_true(log_count("polled", id) >= 1);
    assert_int_equal(log_count("fetched", id), 1);
    cJSON_Delete(res);
    cJSON_Delete(b);
    free(want);
    free(path);
    free(id);
}

static void anthropic_cancel_ends_with_every_request_canceled(void **state)
{
    (void)state;
    const char *pairs[] = {"t1__3", "m-ok", "t2__3", "m-ok", NULL};
    char *id = anthropic_create(pairs);
    char *path = wk_xasprintf("/v1/messages/batches/%s/cancel", id);
    cJSON *c = json_call("POST", path, "", 200);
    assert_string_equal(h_str(c, "processing_status"), "canceling");
    assert_non_null(h_str(c, "cancel_initiated_at"));
    free(path);
    path = wk_xasprintf("/v1/messages/batches/%s", id);
    cJSON *b = poll_until(path, "processing_status", "canceling");
    assert_string_equal(h_str(b, "processing_status"), "ended");
    assert_int_equal((int)num(b, "request_counts.canceled"), 2);
    assert_int_equal((int)num(b, "request_counts.succeeded"), 0);
    cJSON *res = anthropic_results(id);
    assert_string_equal(h_str(result_of(res, "t2__3"), "type"), "canceled");
    assert_int_equal(log_count("cancelled", id), 1);
    cJSON_Delete(res);
    cJSON_Delete(b);
    cJSON_Delete(c);
    free(path);
    free(id);
}

static void anthropic_batch_failed_errors_every_request(void **state)
{
    (void)state;
    const char *pairs[] = {"t1__4", "m-fail", "t2__4", "m-fail", NULL};
    char *id = anthropic_create(pairs);
    char *path = wk_xasprintf("/v1/messages/batches/%s", id);
    cJSON *b = poll_until(path, "processing_status", "in_progress");
    assert_int_equal((int)num(b, "request_counts.errored"), 2);
    cJSON *res = anthropic_results(id);
    assert_string_equal(h_str(result_of(res, "t2__4"), "type"), "errored");
    cJSON_Delete(res);
    cJSON_Delete(b);
    free(path);
    free(id);
}

static void anthropic_list_pages_newest_first(void **state)
{
    (void)state;
    char *ids[3];
    for (int i = 0; i < 3; i++) {
        char cid[16];
        snprintf(cid, sizeof cid, "l%d", i);
        const char *pairs[] = {cid, "m-ok", NULL};
        ids[i] = anthropic_create(pairs);
    }
    cJSON *p1 = json_call("GET", "/v1/messages/batches?limit=2", NULL, 200);
    const cJSON *data = cJSON_GetObjectItem(p1, "data");
    assert_int_equal(cJSON_GetArraySize(data), 2);
    assert_string_equal(h_str(cJSON_GetArrayItem(data, 0), "id"), ids[2]);
    assert_string_equal(h_str(cJSON_GetArrayItem(data, 1), "id"), ids[1]);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(p1, "has_more")));
    assert_string_equal(h_str(p1, "first_id"), ids[2]);
    assert_string_equal(h_str(p1, "last_id"), ids[1]);
    char *next = wk_xasprintf("/v1/messages/batches?limit=2&after_id=%s", ids[1]);
    cJSON *p2 = json_call("GET", next, NULL, 200);
    assert_string_equal(h_str(cJSON_GetArrayItem(cJSON_GetObjectItem(p2, "data"), 0), "id"),
                        ids[0]);
    char *prev = wk_xasprintf("/v1/messages/batches?limit=1&before_id=%s", ids[1]);
    cJSON *p0 = json_call("GET", prev, NULL, 200);
    assert_string_equal(h_str(cJSON_GetArrayItem(cJSON_GetObjectItem(p0, "data"), 0), "id"),
                        ids[2]);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(p0, "has_more")));
    cJSON_Delete(p0);
    cJSON_Delete(p1);
    cJSON_Delete(p2);
    free(prev);
    free(next);
    for (int i = 0; i < 3; i++)
        free(ids[i]);
}

static void anthropic_refuses_what_the_api_refuses(void **state)
{
    (void)state;
    char *bad = anthropic_req("task#1", "m-ok"), *dup = anthropic_req("d1", "m-ok");
    char *b1 = wk_xasprintf("{\"requests\":[%s]}", bad);
    char *b2 = wk_xasprintf("{\"requests\":[%s,%s]}", dup, dup);
    const char *bodies[] = {b1, b2, "{\"requests\":[]}",
                            "{\"requests\":[{\"custom_id\":\"x\",\"params\":{\"model\":\"m\"}}]}"};
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        cJSON *e = json_call("POST", "/v1/messages/batches", bodies[i], 400);
        assert_string_equal(h_str(e, "type"), "error");
        assert_string_equal(h_str(cJSON_GetObjectItem(e, "error"), "type"),
                            "invalid_request_error");
        cJSON_Delete(e);
    }
    cJSON *e = json_call("GET", "/v1/messages/batches/msgbatch_none", NULL, 404);
    cJSON_Delete(e);
    const char *pairs[] = {"t1__5", "m-ok", NULL};
    char *id = anthropic_create(pairs);
    char *path = wk_xasprintf("/v1/messages/batches/%s/results", id);
    e = json_call("GET", path, NULL, 404); /* not ended yet: created just now, 50 ms delay */
    cJSON_Delete(e);
    free(path);
    free(id);
    free(b1);
    free(b2);
    free(bad);
    free(dup);
}

/* ---- Gemini ---------------------------------------------------------------- */

static char *gemini_create(const char *model, const char *const *pairs, long want)
{
    wk_buf b;
    wk_buf_init(&b, 1 << 20);
    const char *head = "{\"batch\":{\"displayName\":\"t\",\"inputConfig\":{\"requests\":"
                       "{\"requests\":[";
    wk_buf_append(&b, head, strlen(head));
    for (int i = 0; pairs[i]; i += 2) {
        char *model_field = pairs[i + 1][0] ? wk_xasprintf(",\"model\":\"models/%s\"", pairs[i + 1])
                                            : wk_xstrdup("");
        char *r = wk_xasprintf("%s{\"request\":{\"contents\":[{\"role\":\"user\",\"parts\":"
                               "[{\"text\":\"hi\"}]}]%s},\"metadata\":{\"key\":\"%s\"}}",
                               i ? "," : "", model_field, pairs[i]);
        wk_buf_append(&b, r, strlen(r));
        free(r);
        free(model_field);
    }
    wk_buf_append(&b, "]}}}}", 6);
    char *path = wk_xasprintf("/v1beta/models/%s:batchGenerateContent", model);
    cJSON *j = json_call("POST", path, b.buf, want);
    wk_buf_release(&b);
    free(path);
    if (want != 200) {
        cJSON_Delete(j);
        return NULL;
    }
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "done")));
    const cJSON *md = cJSON_GetObjectItem(j, "metadata");
    assert_string_equal(h_str(md, "state"), "BATCH_STATE_RUNNING");
    char *want_model = wk_xasprintf("models/%s", model);
    assert_string_equal(h_str(md, "model"), want_model);
    free(want_model);
    const char *name = h_str(j, "name");
    assert_memory_equal(name, "batches/", 8);
    char *out = wk_xstrdup(name);
    cJSON_Delete(j);
    return out;
}

/* Polls a Gemini batch until done; returns the operation. */
static cJSON *gemini_wait(const char *name)
{
    char *path = wk_xasprintf("/v1beta/%s", name);
    for (int i = 0; i < POLLS; i++) {
        cJSON *j = json_call("GET", path, NULL, 200);
        if (cJSON_IsTrue(cJSON_GetObjectItem(j, "done"))) {
            free(path);
            return j;
        }
        cJSON_Delete(j);
        h_sleep_ms(20);
    }
    fail_msg("%s never done", name);
    return NULL;
}

static void gemini_batch_inlines_responses_in_order(void **state)
{
    (void)state;
    const char *pairs[] = {"t1#1", "", "t2#1", "", "t3#1", "m-500", "t9#1", "", NULL};
    char *name = gemini_create("m-ok", pairs, 200);
    cJSON *op = gemini_wait(name);
    const cJSON *md = cJSON_GetObjectItem(op, "metadata");
    assert_string_equal(h_str(md, "state"), "BATCH_STATE_SUCCEEDED");
    assert_non_null(h_str(md, "endTime"));
    const cJSON *st = cJSON_GetObjectItem(md, "batchStats");
    assert_string_equal(h_str(st, "requestCount"), "4");
    assert_string_equal(h_str(st, "successfulRequestCount"), "2");
    assert_string_equal(h_str(st, "failedRequestCount"), "2");
    const cJSON *rs = cJSON_GetObjectItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(op, "response"), "inlinedResponses"),
        "inlinedResponses");
    assert_int_equal(cJSON_GetArraySize(rs), 4);
    const cJSON *r0 = cJSON_GetArrayItem(rs, 0);
    const cJSON *cand = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(r0, "response"), "candidates"), 0);
    assert_string_equal(
        h_str(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(cand, "content"), "parts"),
                                 0),
              "text"),
        "one");
    assert_string_equal(h_str(cJSON_GetObjectItem(r0, "metadata"), "key"), "t1#1");
    const cJSON *c1 = cJSON_GetArrayItem(
        cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(rs, 1), "response"),
                            "candidates"),
        0);
    assert_string_equal(h_str(c1, "finishReason"), "MAX_TOKENS");
    const cJSON *e2 = cJSON_GetObjectItem(cJSON_GetArrayItem(rs, 2), "error");
    assert_int_equal((int)num(e2, "code"), 500);
    assert_null(cJSON_GetObjectItem(e2, "status")); /* a google.rpc.Status has none */
    assert_int_equal((int)num(cJSON_GetObjectItem(cJSON_GetArrayItem(rs, 3), "error"), "code"),
                     404);
    /* The same responses under metadata.output, where @google/genai reads them. */
    const cJSON *out = cJSON_GetObjectItem(cJSON_GetObjectItem(md, "output"), "inlinedResponses");
    assert_true(cJSON_Compare(cJSON_GetObjectItem(out, "inlinedResponses"), rs, 1));
    const char *id = name + 8;
    assert_int_equal(log_count("created", id), 1);
    assert_true(log_count("fetched", id) >= 1);
    cJSON_Delete(op);
    free(name);
}

static void gemini_expired_and_failed_batches(void **state)
{
    (void)state;
    const char *pairs[] = {"t1#2", "", "t2#2", "m-exp", NULL};
    char *name = gemini_create("m-ok", pairs, 200);
    cJSON *op = gemini_wait(name);
    assert_string_equal(h_str(cJSON_GetObjectItem(op, "metadata"), "state"), "BATCH_STATE_EXPIRED");
    assert_null(cJSON_GetObjectItem(op, "response"));
    cJSON_Delete(op);
    free(name);

    const char *pf[] = {"t1#3", "", NULL};
    name = gemini_create("m-fail", pf, 200);
    op = gemini_wait(name);
    assert_string_equal(h_str(cJSON_GetObjectItem(op, "metadata"), "state"), "BATCH_STATE_FAILED");
    assert_int_equal((int)num(op, "error.code"), 13);
    cJSON_Delete(op);
    free(name);
}

static void gemini_cancel_and_list(void **state)
{
    (void)state;
    const char *pairs[] = {"t1#4", "", NULL};
    char *first = gemini_create("m-ok", pairs, 200);
    char *name = gemini_create("m-ok", pairs, 200);
    char *path = wk_xasprintf("/v1beta/%s:cancel", name);
    cJSON *c = json_call("POST", path, "{}", 200);
    assert_int_equal(cJSON_GetArraySize(c), 0); /* google.protobuf.Empty */
    cJSON *op = gemini_wait(name);
    assert_string_equal(h_str(cJSON_GetObjectItem(op, "metadata"), "state"),
                        "BATCH_STATE_CANCELLED");
    assert_int_equal((int)num(op, "error.code"), 1);
    const char *id = name + 8;
    assert_int_equal(log_count("cancelled", id), 1);

    cJSON *p1 = json_call("GET", "/v1beta/batches?pageSize=1", NULL, 200);
    assert_string_equal(h_str(cJSON_GetArrayItem(cJSON_GetObjectItem(p1, "operations"), 0), "name"),
                        name);
    const char *tok = h_str(p1, "nextPageToken");
    assert_non_null(tok);
    char *next = wk_xasprintf("/v1beta/batches?pageSize=1&pageToken=%s", tok);
    cJSON *p2 = json_call("GET", next, NULL, 200);
    assert_string_equal(h_str(cJSON_GetArrayItem(cJSON_GetObjectItem(p2, "operations"), 0), "name"),
                        first);
    cJSON_Delete(p2);
    cJSON_Delete(p1);
    cJSON_Delete(op);
    cJSON_Delete(c);
    free(next);
    free(path);
    free(name);
    free(first);
}

static void gemini_refuses_files_and_unknown_batches(void **state)
{
    (void)state;
    cJSON *e = json_call("POST", "/v1beta/models/m-ok:batchGenerateContent",
                         "{\"batch\":{\"inputConfig\":{\"fileName\":\"files/x\"}}}", 400);
    assert_string_equal(h_str(cJSON_GetObjectItem(e, "error"), "status"), "INVALID_ARGUMENT");
    cJSON_Delete(e);
    const char *none[] = {NULL};
    gemini_create("m-ok", none, 400);
    e = json_call("GET", "/v1beta/batches/nope", NULL, 404);
    cJSON_Delete(e);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(anthropic_batch_answers_from_recordings_with_faults),
        cmocka_unit_test(anthropic_cancel_ends_with_every_request_canceled),
        cmocka_unit_test(anthropic_batch_failed_errors_every_request),
        cmocka_unit_test(anthropic_list_pages_newest_first),
        cmocka_unit_test(anthropic_refuses_what_the_api_refuses),
        cmocka_unit_test(gemini_batch_inlines_responses_in_order),
        cmocka_unit_test(gemini_expired_and_failed_batches),
        cmocka_unit_test(gemini_cancel_and_list),
        cmocka_unit_test(gemini_refuses_files_and_unknown_batches),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
