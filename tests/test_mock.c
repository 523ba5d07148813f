/*
 * Drives the real mock-llm binary ($MOCK_BIN) over HTTP: answers by
 * (task, model) with runs in turn, usage passed through, OpenAI-shaped
 * errors, keep-alive and pipelining, many requests in flight, the request
 * log, loopback-only listening, clear errors for bad recordings, and a clean
 * exit 0 on SIGTERM (under the sanitizer build that exit also proves no leaks).
 * Then the Anthropic and Gemini routes, and every --fault kind: status,
 * headers and shape per API, a reset that really resets, stalls that really
 * stall, a truncated body that is really cut, faults that leave the runs
 * alone, @MODEL scoping, --latency keeping pipelined answers in order, and
 * the same faults for the same seed.
 *
 * One mock serves the whole group, with faults scoped to models no other test
 * uses; tests that need other flags start an "extra" mock, which the test's
 * teardown stops. The group teardown always stops the main one, and every
 * wait in here is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "lib/util.h"

#define RESP_CAP ((size_t)1 << 20)
#define RAW_CAP ((size_t)8 << 20)
#define MANY_TRANSFERS 400
#define MANY_CONNECTIONS 100

static const char recordings_text[] =
    "{\"task\": \"t-cycle\", \"model\": \"m-small\", \"run\": 3, \"answer\": \"run three\"}\n"
    "{\"task\": \"t-cycle\", \"model\": \"m-small\", \"run\": 1, \"answer\": \"run one\"}\n"
    "\n"
    "{\"task\": \"t-cycle\", \"model\": \"m-small\", \"run\": 2, \"answer\": \"run two\"}\n"
    "{\"task\": \"t-cycle\", \"model\": \"m-large\", \"run\": 1, \"answer\": \"large\"}\n"
    "{\"task\": \"t-usage\", \"model\": \"m-big\", \"run\": 1, \"answer\": \"def f():\\n    "
    "return 1\\n\", \"usage\": {\"prompt_tokens\": 120, \"completion_tokens\": 45}, "
    "\"finish_reason\": \"length\", \"note\": \"unknown fields are ignored\"}\n"
    "{\"task\": \"t-keep\", \"model\": \"m\", \"run\": 1, \"answer\": \"kept\"}\n"
    "{\"task\": \"t-pipe\", \"model\": \"m\", \"run\": 1, \"answer\": \"pipe one\"}\n"
    "{\"task\": \"t-pipe\", \"model\": \"m\", \"run\": 2, \"answer\": \"pipe two\"}\n"
    "{\"task\": \"t-many\", \"model\": \"m\", \"run\": 1, \"answer\": \"many\"}\n"
    "{\"task\": \"t-log\", \"model\": \"m-small\", \"run\": 1, \"answer\": \"logged\"}\n"
    "{\"task\": \"t-anth\", \"model\": \"m-claude\", \"run\": 1, \"answer\": \"anth answer\", "
    "\"usage\": {\"prompt_tokens\": 11, \"completion_tokens\": 5}}\n"
    "{\"task\": \"t-anth\", \"model\": \"m-claude-len\", \"run\": 1, \"answer\": \"cut\", "
    "\"finish_reason\": \"length\"}\n"
    "{\"task\": \"t-gem\", \"model\": \"m-gem\", \"run\": 1, \"answer\": \"gem answer\", "
    "\"usage\": {\"prompt_tokens\": 7, \"completion_tokens\": 3}}\n"
    "{\"task\": \"t-gem\", \"model\": \"m-gem-len\", \"run\": 1, \"answer\": \"cut\", "
    "\"finish_reason\": \"length\"}\n"
    "{\"task\": \"t-fault\", \"model\": \"m-stallh\", \"run\": 1, \"answer\": \"stalled\"}\n"
    "{\"task\": \"t-fault\", \"model\": \"m-stallb\", \"run\": 1, \"answer\": \"stalled\"}\n"
    "{\"task\": \"t-fault\", \"model\": \"m-trunc\", \"run\": 1, \"answer\": \"truncated "
    "answer\"}\n"
    "{\"task\": \"t-fault\", \"model\": \"m-len\", \"run\": 1, \"answer\": \"len one\"}\n"
    "{\"task\": \"t-fault\", \"model\": \"m-len\", \"run\": 2, \"answer\": \"len two\"}\n"
    "{\"task\": \"t-fault\", \"model\": \"m-huge\", \"run\": 1, \"answer\": \"huge\"}\n"
    "{\"task\": \"t-fault\", \"model\": \"m-ok\", \"run\": 1, \"answer\": \"fine\"}\n"
    "{\"task\": \"t-every\", \"model\": \"m-every\", \"run\": 1, \"answer\": \"every one\"}\n"
    "{\"task\": \"t-every\", \"model\": \"m-every\", \"run\": 2, \"answer\": \"every two\"}\n"
    "{\"task\": \"t-every\", \"model\": \"m-every\", \"run\": 3, \"answer\": \"every three\"}\n"
    "{\"task\": \"t-a\", \"model\": \"m\", \"run\": 1, \"answer\": \"a\"}\n"
    "{\"task\": \"t-b\", \"model\": \"m\", \"run\": 1, \"answer\": \"b\"}\n";

/* Faults of the main mock, each scoped to a model that only its own test uses. */
static const char *const main_faults[] = {
    "429:1:2@m-429",
    "401:1@m-401",
    "500:1@m-500",
    "503:1@m-503",
    "529:1@m-529",
    "spend-limit:1@m-spend",
    "reset:1@m-reset",
    "stall-headers:1:300@m-stallh",
    "stall-body:1:300@m-stallb",
    "truncate:1@m-trunc",
    "length:1@m-len",
    "body-huge:1:2@m-huge",
    "500:every:2@m-every",
    NULL,
};

static struct {
    char dir[64];
    char *recordings, *log, *port_file;
    pid_t pid; /* 0 once reaped */
    int port;
    int requests; /* requests sent, each of which must leave one log line */

    /* a mock with other flags, for one test; its teardown stops it */
    char *extra_log, *extra_port_file;
    pid_t extra_pid;
    int extra_port;
} fx;

/* ---- helpers ---------------------------------------------------------- */

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits up to `ms` for pid to exit; returns 0 with *status set, or -1. */
static int wait_bounded(pid_t pid, long ms, int *status)
{
    for (long waited = 0; waited <= ms; waited += 20) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
        sleep_ms(20);
    }
    return -1;
}

/* Starts MOCK_BIN with argv[1..]; stdout and stderr go to `out_path` when given. */
static pid_t spawn_mock(char *const args[], const char *out_path)
{
    const char *bin = getenv("MOCK_BIN");
    pid_t pid = fork();
    if (pid == 0) {
        if (out_path) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        char *argv[64];
        int n = 0;
        argv[n++] = (char *)bin;
        for (int i = 0; args[i] && n < 63; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv(bin, argv);
        _exit(127);
    }
    return pid;
}

/* Runs the mock to completion (bounded); returns its wait status, output in out_path. */
static int run_mock(char *const args[], const char *out_path)
{
    int status = 0;
    pid_t pid = spawn_mock(args, out_path);
    assert_true(pid > 0);
    if (wait_bounded(pid, 10000, &status) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("mock-llm did not exit within 10 s");
    }
    return status;
}

static char *read_text(const char *path)
{
    char *text = NULL;
    size_t len;
    if (wk_read_file(path, 64u << 20, &text, &len) != 0)
        return NULL;
    return text;
}

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    return wk_buf_append(arg, data, size * n) == 0 ? size * n : 0;
}

static char *url_for(const char *path)
{
    return wk_xasprintf("http://127.0.0.1:%d%s", fx.port, path);
}

/* Polls for the port file a mock writes once it listens; 0 when none came in 10 s. */
static int await_port(pid_t pid, const char *port_file)
{
    for (int i = 0; i < 200; i++) {
        int status, port;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "test_mock: mock-llm exited early (status 0x%x)\n", status);
            return -1;
        }
        char *text = read_text(port_file);
        if (text) {
            port = atoi(text);
            free(text);
            return port;
        }
        sleep_ms(50);
    }
    return 0;
}

/* SIGTERM, then SIGKILL after 5 s; returns the wait status. */
static int stop_pid(pid_t pid)
{
    int status = 0;
    kill(pid, SIGTERM);
    if (wait_bounded(pid, 5000, &status) != 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
    }
    return status;
}

/* Sets up `h` for a POST of `body` (NULL: a GET) to `path` with the task header. */
static struct curl_slist *prepare(CURL *h, const char *path, const char *task, const char *body,
                                  wk_buf *resp, char **url)
{
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (task) {
        char *line = wk_xasprintf("X-Cascade-Task: %s", task);
        hdrs = curl_slist_append(hdrs, line);
        free(line);
    }
    *url = url_for(path);
    curl_easy_setopt(h, CURLOPT_URL, *url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* a proxy in the environment must not interfere */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    return hdrs;
}

/* One request on handle `h` (NULL: a fresh one). Returns the status; body in *json. */
static long request_on(CURL *h, const char *path, const char *task, const char *body, cJSON **json,
                       long *new_connects)
{
    CURL *own = h ? NULL : curl_easy_init();
    CURL *e = h ? h : own;
    wk_buf resp;
    char *url = NULL;
    long status = 0;
    wk_buf_init(&resp, RESP_CAP);
    struct curl_slist *hdrs = prepare(e, path, task, body, &resp, &url);
    fx.requests++;
    CURLcode res = curl_easy_perform(e);
    if (res != CURLE_OK)
        fail_msg("curl: %s %s: %s", body ? "POST" : "GET", path, curl_easy_strerror(res));
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (new_connects)
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, new_connects);
    char *ctype = NULL;
    curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ctype);
    assert_non_null(ctype);
    assert_string_equal(ctype, "application/json");
    if (json) {
        *json = cJSON_Parse(resp.buf ? resp.buf : "");
        if (!*json)
            fail_msg("response to %s is not JSON: %s", path, resp.buf ? resp.buf : "");
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    free(url);
    wk_buf_release(&resp);
    if (own)
        curl_easy_cleanup(own);
    return status;
}

static long request(const char *path, const char *task, const char *body, cJSON **json)
{
    return request_on(NULL, path, task, body, json, NULL);
}

static const char *answer_of(const cJSON *resp)
{
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItem(choice, "message");
    const cJSON *content = cJSON_GetObjectItem(msg, "content");
    return cJSON_IsString(content) ? content->valuestring : NULL;
}

static const char *str_at(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_at(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

/* Asserts OpenAI's {"error": {message, type, param, code}} shape and the code. */
static void assert_openai_error(const cJSON *resp, const char *code)
{
    const cJSON *err = cJSON_GetObjectItem(resp, "error");
    assert_true(cJSON_IsObject(err));
    assert_non_null(str_at(err, "message"));
    assert_string_equal(str_at(err, "type"), "invalid_request_error");
    assert_true(cJSON_HasObjectItem(err, "param"));
    const cJSON *c = cJSON_GetObjectItem(err, "code");
    if (code)
        assert_string_equal(cJSON_IsString(c) ? c->valuestring : "(not a string)", code);
    else
        assert_true(cJSON_IsNull(c));
}

/* ---- group setup and teardown ----------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    const char *bin = getenv("MOCK_BIN");
    if (!bin || !*bin) {
        fprintf(stderr, "test_mock: MOCK_BIN is not set; run through `make test` or set it to "
                        "the mock-llm binary\n");
        return -1;
    }
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "test_mock: MOCK_BIN=%s is not executable: %s\n", bin, strerror(errno));
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    strcpy(fx.dir, "/tmp/test_mock.XXXXXX");
    if (!mkdtemp(fx.dir)) {
        fprintf(stderr, "test_mock: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    fx.recordings = wk_xasprintf("%s/recordings.jsonl", fx.dir);
    fx.log = wk_xasprintf("%s/requests.jsonl", fx.dir);
    fx.port_file = wk_xasprintf("%s/port", fx.dir);
    FILE *f = fopen(fx.recordings, "w");
    if (!f || fputs(recordings_text, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "test_mock: cannot write %s\n", fx.recordings);
        return -1;
    }

    fx.extra_log = wk_xasprintf("%s/extra.jsonl", fx.dir);
    fx.extra_port_file = wk_xasprintf("%s/extra-port", fx.dir);

    char *args[64] = {"--port",      "0",     "--port-file", fx.port_file,   "--recordings",
                      fx.recordings, "--log", fx.log,        "--log-headers"};
    int n = 9;
    for (int i = 0; main_faults[i]; i++) {
        args[n++] = "--fault";
        args[n++] = (char *)main_faults[i];
    }
    args[n] = NULL;
    fx.pid = spawn_mock(args, NULL);
    if (fx.pid < 0) {
        fx.pid = 0;
        return -1;
    }
    /* The port file appears, complete, only once the mock listens: poll for it. */
    fx.port = await_port(fx.pid, fx.port_file);
    if (fx.port < 0)
        fx.pid = 0;
    if (fx.port <= 0) {
        fprintf(stderr, "test_mock: no port file from mock-llm within 10 s\n");
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (fx.pid > 0)
        stop_pid(fx.pid);
    fx.pid = 0;
    if (fx.extra_pid > 0)
        stop_pid(fx.extra_pid);
    fx.extra_pid = 0;
    const char *names[] = {"recordings.jsonl", "requests.jsonl", "port",
                           "bad.jsonl",        "dup.jsonl",      "out.txt",
                           "extra.jsonl",      "extra-port",     NULL};
    for (int i = 0; fx.dir[0] && names[i]; i++) {
        char *p = wk_xasprintf("%s/%s", fx.dir, names[i]);
        unlink(p);
        free(p);
    }
    if (fx.dir[0])
        rmdir(fx.dir);
    free(fx.recordings);
    free(fx.log);
    free(fx.port_file);
    free(fx.extra_log);
    free(fx.extra_port_file);
    curl_global_cleanup();
    return 0;
}

/* ---- tests -------------------------------------------------------------- */

static void runs_are_served_in_order_and_cycle(void **state)
{
    (void)state;
    /* The file lists run 3 first; the mock must sort by run. */
    const char *want[] = {"run one", "run two", "run three", "run one", "run two"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cJSON *resp = NULL;
        long st = request("/v1/chat/completions", "t-cycle",
                          "{\"model\": \"m-small\", "
                          "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}",
                          &resp);
        assert_int_equal(st, 200);
        assert_string_equal(answer_of(resp), want[i]);
        cJSON_Delete(resp);
    }
    /* The same task for another model is a separate pair with its own runs. */
    cJSON *resp = NULL;
    assert_int_equal(request("/v1/chat/completions", "t-cycle", "{\"model\": \"m-large\"}", &resp),
                     200);
    assert_string_equal(answer_of(resp), "large");
    cJSON_Delete(resp);
}

static void response_is_openai_shaped_with_usage(void **state)
{
    (void)state;
    cJSON *resp = NULL;
    /* Any prefix before /chat/completions is served, and headers are case-insensitive. */
    long st = request("/some/prefix/chat/completions", "t-usage", "{\"model\": \"m-big\"}", &resp);
    assert_int_equal(st, 200);
    assert_non_null(str_at(resp, "id"));
    assert_memory_equal(str_at(resp, "id"), "chatcmpl-mock-", 14);
    assert_string_equal(str_at(resp, "object"), "chat.completion");
    assert_true(num_at(resp, "created") > 1.6e9);
    assert_string_equal(str_at(resp, "model"), "m-big");
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "choices"), 0);
    assert_int_equal((int)num_at(choice, "index"), 0);
    assert_string_equal(str_at(cJSON_GetObjectItem(choice, "message"), "role"), "assistant");
    assert_string_equal(answer_of(resp), "def f():\n    return 1\n");
    assert_string_equal(str_at(choice, "finish_reason"), "length");
    const cJSON *usage = cJSON_GetObjectItem(resp, "usage");
    assert_int_equal((int)num_at(usage, "prompt_tokens"), 120);
    assert_int_equal((int)num_at(usage, "completion_tokens"), 45);
    assert_int_equal((int)num_at(usage, "total_tokens"), 165);
    cJSON_Delete(resp);

    /* finish_reason defaults to "stop"; usage to zero. */
    assert_int_equal(request("/v1/chat/completions", "t-keep", "{\"model\": \"m\"}", &resp), 200);
    choice = cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "choices"), 0);
    assert_string_equal(str_at(choice, "finish_reason"), "stop");
    assert_int_equal((int)num_at(cJSON_GetObjectItem(resp, "usage"), "total_tokens"), 0);
    cJSON_Delete(resp);
}

static void unknown_pair_gets_404_model_not_found(void **state)
{
    (void)state;
    cJSON *resp = NULL;
    long st = request("/v1/chat/completions", "t-cycle", "{\"model\": \"m-unknown\"}", &resp);
    assert_int_equal(st, 404);
    assert_openai_error(resp, "model_not_found");
    cJSON_Delete(resp);
    st = request("/v1/chat/completions", "t-nowhere", "{\"model\": \"m-small\"}", &resp);
    assert_int_equal(st, 404);
    assert_openai_error(resp, "model_not_found");
    cJSON_Delete(resp);
}

static void bad_json_gets_400(void **state)
{
    (void)state;
    cJSON *resp = NULL;
    long st = request("/v1/chat/completions", "t-cycle", "{\"model\": \"m-small\",", &resp);
    assert_int_equal(st, 400);
    assert_openai_error(resp, NULL);
    cJSON_Delete(resp);
}

/* /v1/embeddings: the hashed bag of words at the asked dimensions, the same every time. */
static void embeddings_are_served(void **state)
{
    (void)state;
    cJSON *a = NULL, *b = NULL;
    const char *body = "{\"model\": \"emb\", \"input\": \"sum the list\", \"dimensions\": 16}";
    assert_int_equal(request("/v1/embeddings", "t-emb", body, &a), 200);
    assert_int_equal(request("/v1/embeddings", "t-emb", body, &b), 200);
    const cJSON *ea =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(a, "data"), 0), "embedding");
    const cJSON *eb =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "data"), 0), "embedding");
    assert_int_equal(cJSON_GetArraySize(ea), 16);
    assert_true(cJSON_Compare(ea, eb, 1));
    assert_int_equal(
        cJSON_GetObjectItem(cJSON_GetObjectItem(a, "usage"), "prompt_tokens")->valueint, 3);
    cJSON_Delete(a);
    cJSON_Delete(b);
    assert_int_equal(request("/v1/embeddings", "t-emb", "{\"model\": \"emb\"}", &a), 400);
    assert_openai_error(a, NULL);
    cJSON_Delete(a);
}

static void other_paths_get_404(void **state)
{
    (void)state;
    cJSON *resp = NULL;
    assert_int_equal(request("/v1/moderations", "t-cycle", "{\"model\": \"m-small\"}", &resp), 404);
    assert_openai_error(resp, NULL);
    cJSON_Delete(resp);
    assert_int_equal(request("/", NULL, NULL, &resp), 404);
    assert_openai_error(resp, NULL);
    cJSON_Delete(resp);
}

static void body_over_16_mib_gets_413(void **state)
{
    (void)state;
    size_t n = (16u << 20) + 1;
    char *body = wk_xmalloc(n + 1);
    memset(body, ' ', n);
    body[n] = '\0';
    cJSON *resp = NULL;
    long st = request("/v1/chat/completions", "t-cycle", body, &resp);
    assert_int_equal(st, 413);
    assert_openai_error(resp, "request_too_large");
    cJSON_Delete(resp);
    free(body);
}

static void keep_alive_reuses_one_connection(void **state)
{
    (void)state;
    CURL *h = curl_easy_init();
    for (int i = 0; i < 3; i++) {
        cJSON *resp = NULL;
        long connects = -1;
        long st =
            request_on(h, "/v1/chat/completions", "t-keep", "{\"model\": \"m\"}", &resp, &connects);
        assert_int_equal(st, 200);
        assert_string_equal(answer_of(resp), "kept");
        /* Only the first request may open a connection. */
        assert_int_equal(connects, i == 0 ? 1 : 0);
        cJSON_Delete(resp);
    }
    curl_easy_cleanup(h);
}

/* Reads from fd until `want` complete responses have arrived (bounded: 5 s). */
static int read_responses(int fd, wk_buf *in, int want)
{
    for (int spins = 0; spins < 500; spins++) {
        int complete = 0;
        const char *p = in->buf;
        const char *end = in->buf ? in->buf + in->len : NULL;
        while (p && p < end) {
            const char *hdr_end = strstr(p, "\r\n\r\n");
            const char *cl = strcasestr(p, "content-length:");
            if (!hdr_end || !cl || cl > hdr_end)
                break;
            size_t body = strtoul(cl + 15, NULL, 10);
            if ((size_t)(end - (hdr_end + 4)) < body)
                break;
            complete++;
            p = hdr_end + 4 + body;
        }
        if (complete >= want)
            return complete;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 10) > 0) {
            char chunk[4096];
            ssize_t n = read(fd, chunk, sizeof chunk);
            if (n <= 0)
                return complete;
            if (wk_buf_append(in, chunk, (size_t)n) != 0)
                return complete;
        }
    }
    return -1;
}

static void pipelined_requests_split_across_reads(void **state)
{
    (void)state;
    const char *body = "{\"model\": \"m\", \"messages\": []}";
    char *one = wk_xasprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                             "X-Cascade-Task: t-pipe\r\nContent-Type: application/json\r\n"
                             "Content-Length: %zu\r\n\r\n%s",
                             strlen(body), body);
    /* Odd header case, and the header name itself cut in two by the split below. */
    char *two = wk_xasprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                             "x-CASCADE-task: t-pipe\r\nContent-Length: %zu\r\n\r\n%s",
                             strlen(body), body);
    char *both = wk_xasprintf("%s%s", one, two);
    size_t cut = strlen(one) + (size_t)(strstr(two, "CASCADE") - two);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    fx.requests += 2;
    assert_int_equal(write(fd, both, cut), (ssize_t)cut);
    sleep_ms(50); /* lets the server parse the first part on its own */
    size_t rest = strlen(both) - cut;
    assert_int_equal(write(fd, both + cut, rest), (ssize_t)rest);

    wk_buf in;
    wk_buf_init(&in, RESP_CAP);
    assert_int_equal(read_responses(fd, &in, 2), 2);
    const char *second = strstr(in.buf + 1, "HTTP/1.1 200");
    assert_memory_equal(in.buf, "HTTP/1.1 200", 12);
    assert_non_null(second);
    /* Answers arrive in request order: run 1 then run 2. */
    const char *a1 = strstr(in.buf, "pipe one");
    const char *a2 = strstr(in.buf, "pipe two");
    assert_non_null(a1);
    assert_non_null(a2);
    assert_true(a1 < second && second < a2);
    wk_buf_release(&in);
    close(fd);
    free(one);
    free(two);
    free(both);
}

static void many_concurrent_requests_all_answered(void **state)
{
    (void)state;
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, (long)MANY_CONNECTIONS);
    CURL *easy[MANY_TRANSFERS];
    wk_buf resp[MANY_TRANSFERS];
    struct curl_slist *hdrs[MANY_TRANSFERS];
    char *urls[MANY_TRANSFERS];
    for (int i = 0; i < MANY_TRANSFERS; i++) {
        easy[i] = curl_easy_init();
        wk_buf_init(&resp[i], RESP_CAP);
        hdrs[i] = prepare(easy[i], "/v1/chat/completions", "t-many", "{\"model\": \"m\"}", &resp[i],
                          &urls[i]);
        curl_easy_setopt(easy[i], CURLOPT_PRIVATE, &resp[i]);
        curl_multi_add_handle(m, easy[i]);
        fx.requests++;
    }
    int running = 1, done = 0, ok = 0;
    uint64_t deadline = wk_now_ms() + 30000;
    while ((running || done < MANY_TRANSFERS) && wk_now_ms() < deadline) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            long st = 0;
            wk_buf *b = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &st);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&b);
            if (msg->data.result == CURLE_OK && st == 200 && b->buf && strstr(b->buf, "many"))
                ok++;
            done++;
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (int i = 0; i < MANY_TRANSFERS; i++) {
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
        curl_slist_free_all(hdrs[i]);
        free(urls[i]);
        wk_buf_release(&resp[i]);
    }
    curl_multi_cleanup(m);
    assert_int_equal(done, MANY_TRANSFERS);
    assert_int_equal(ok, MANY_TRANSFERS);
}

static void listens_only_on_loopback(void **state)
{
    (void)state;
    /* /proc/net/tcp lists local addresses as hex: 127.0.0.1 is 0100007F; 0A is LISTEN. */
    char *tcp = read_text("/proc/net/tcp");
    assert_non_null(tcp);
    char want[32], any[32];
    snprintf(want, sizeof want, "0100007F:%04X", fx.port);
    snprintf(any, sizeof any, ":%04X 00000000:0000 0A", fx.port);
    int listeners = 0, on_loopback = 0;
    for (char *line = strtok(tcp, "\n"); line; line = strtok(NULL, "\n")) {
        char *at = strstr(line, any);
        if (!at)
            continue;
        listeners++;
        if (strstr(line, want) && strstr(line, want) + 8 == at)
            on_loopback++;
    }
    free(tcp);
    assert_int_equal(listeners, 1);
    assert_int_equal(on_loopback, 1);
    /* And nothing on IPv6 (which would include the wildcard [::]). */
    char any6[64];
    snprintf(any6, sizeof any6, ":%04X 00000000000000000000000000000000:0000 0A", fx.port);
    char *tcp6 = read_text("/proc/net/tcp6");
    if (tcp6) {
        assert_null(strstr(tcp6, any6));
        free(tcp6);
    }
}

/* ---- extra mocks ---------------------------------------------------------- */

/* Starts a mock with the group's recordings, a fresh log and `flags` (NULL-ended). */
static void start_extra(const char *const flags[])
{
    char *args[64] = {"--port",       "0",           "--port-file", fx.extra_port_file,
                      "--recordings", fx.recordings, "--log",       fx.extra_log};
    int n = 8;
    for (int i = 0; flags[i] && n < 62; i++)
        args[n++] = (char *)flags[i];
    args[n] = NULL;
    unlink(fx.extra_port_file);
    unlink(fx.extra_log);
    fx.extra_pid = spawn_mock(args, NULL);
    assert_true(fx.extra_pid > 0);
    fx.extra_port = await_port(fx.extra_pid, fx.extra_port_file);
    if (fx.extra_port < 0)
        fx.extra_pid = 0;
    assert_true(fx.extra_port > 0);
}

/* Stops the extra mock and asserts the clean exit (under ASan: no leaks either). */
static void stop_extra(void)
{
    pid_t pid = fx.extra_pid;
    fx.extra_pid = 0;
    int status = stop_pid(pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int extra_teardown(void **state)
{
    (void)state;
    if (fx.extra_pid > 0)
        stop_pid(fx.extra_pid);
    fx.extra_pid = 0;
    return 0;
}

/* ---- raw HTTP, for responses curl would hide ---------------------------- */

struct raw {
    wk_buf in;       /* everything received */
    int reset;       /* a read failed with ECONNRESET */
    int status;      /* 0 until a status line came */
    size_t head_len; /* bytes up to and including the blank line; 0 until then */
    size_t content_length;
    long first_ms;  /* from the write to the first byte; -1 when none */
    long done_ms;   /* from the write to the complete response or the end */
    long first_len; /* bytes in the first read */
};

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

static char *post_text(const char *path, const char *task, const char *body)
{
    return wk_xasprintf("POST %s HTTP/1.1\r\nHost: x\r\nX-Cascade-Task: %s\r\n"
                        "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                        path, task, strlen(body), body);
}

/* Sends one POST and reads its response, until complete, EOF, a reset or 5 s. */
static void raw_post(int port, const char *path, const char *task, const char *body, struct raw *r)
{
    memset(r, 0, sizeof *r);
    wk_buf_init(&r->in, RAW_CAP);
    r->first_ms = -1;
    if (port == fx.port)
        fx.requests++;
    int fd = connect_to(port);
    char *req = post_text(path, task, body);
    uint64_t t0 = wk_now_ms();
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    free(req);
    while (wk_now_ms() - t0 < 5000) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        char chunk[65536];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == ECONNRESET)
            r->reset = 1;
        if (n <= 0)
            break;
        if (r->first_ms < 0) {
            r->first_ms = (long)(wk_now_ms() - t0);
            r->first_len = n;
        }
        assert_int_equal(wk_buf_append(&r->in, chunk, (size_t)n), 0);
        if (!r->head_len) {
            const char *end = strstr(r->in.buf, "\r\n\r\n");
            if (!end)
                continue;
            r->head_len = (size_t)(end + 4 - r->in.buf);
            r->status = atoi(r->in.buf + 9);
            const char *cl = strcasestr(r->in.buf, "\r\ncontent-length:");
            assert_non_null(cl);
            r->content_length = strtoul(cl + 17, NULL, 10);
        }
        if (r->in.len >= r->head_len + r->content_length)
            break;
    }
    r->done_ms = (long)(wk_now_ms() - t0);
    close(fd);
}

/* The value of a response header (up to the line end), or NULL; caller frees. */
static char *raw_header(const struct raw *r, const char *name)
{
    char *want = wk_xasprintf("\r\n%s:", name);
    char *head = wk_xstrndup(r->in.buf ? r->in.buf : "", r->head_len);
    char *at = strcasestr(head, want);
    char *value = NULL;
    if (at) {
        at += strlen(want);
        while (*at == ' ')
            at++;
        value = wk_xstrndup(at, strcspn(at, "\r\n"));
    }
    free(head);
    free(want);
    return value;
}

static cJSON *raw_json(const struct raw *r)
{
    return cJSON_ParseWithLength(r->in.buf + r->head_len, r->in.len - r->head_len);
}

/* The JSON reply of a curl POST to the main mock; the status is returned. */
static long post(const char *path, const char *task, const char *body, cJSON **json)
{
    return request(path, task, body, json);
}

static const char *anthropic_error_type(const cJSON *resp)
{
    assert_string_equal(str_at(resp, "type"), "error");
    const cJSON *err = cJSON_GetObjectItem(resp, "error");
    assert_non_null(str_at(err, "message"));
    return str_at(err, "type");
}

static const char *gemini_error_status(const cJSON *resp, int code)
{
    const cJSON *err = cJSON_GetObjectItem(resp, "error");
    assert_int_equal((int)num_at(err, "code"), code);
    assert_non_null(str_at(err, "message"));
    return str_at(err, "status");
}

#define ANTH_BODY(model)                                                                           \
    "{\"model\": \"" model "\", \"max_tokens\": 64, \"system\": \"be brief\", "                    \
    "\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"
#define GEM_BODY                                                                                   \
    "{\"contents\": [{\"role\": \"user\", \"parts\": [{\"text\": \"hi\"}]}], "                     \
    "\"systemInstruction\": {\"parts\": [{\"text\": \"be brief\"}]}, "                             \
    "\"generationConfig\": {\"maxOutputTokens\": 64}}"
#define OAI_BODY(model)                                                                            \
    "{\"model\": \"" model "\", \"messages\": [{\"role\": \"user\", "                              \
    "\"content\": \"hi\"}]}"

/* ---- Anthropic and Gemini routes ---------------------------------------- */

static void anthropic_messages_are_answered_in_its_shape(void **state)
{
    (void)state;
    cJSON *resp = NULL;
    assert_int_equal(post("/v1/messages", "t-anth", ANTH_BODY("m-claude"), &resp), 200);
    assert_memory_equal(str_at(resp, "id"), "msg_mock_", 9);
    assert_string_equal(str_at(resp, "type"), "message");
    assert_string_equal(str_at(resp, "role"), "assistant");
    assert_string_equal(str_at(resp, "model"), "m-claude");
    const cJSON *block = cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "content"), 0);
    assert_string_equal(str_at(block, "type"), "text");
    assert_string_equal(str_at(block, "text"), "anth answer");
    assert_string_equal(str_at(resp, "stop_reason"), "end_turn");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(resp, "stop_sequence")));
    const cJSON *usage = cJSON_GetObjectItem(resp, "usage");
    assert_int_equal((int)num_at(usage, "input_tokens"), 11);
    assert_int_equal((int)num_at(usage, "output_tokens"), 5);
    cJSON_Delete(resp);

    /* A recorded "length" is Anthropic's max_tokens. */
    assert_int_equal(post("/anthropic/v1/messages", "t-anth", ANTH_BODY("m-claude-len"), &resp),
                     200);
    assert_string_equal(str_at(resp, "stop_reason"), "max_tokens");
    cJSON_Delete(resp);

    assert_int_equal(post("/v1/messages", "t-anth", ANTH_BODY("m-nope"), &resp), 404);
    assert_string_equal(anthropic_error_type(resp), "not_found_error");
    cJSON_Delete(resp);
    /* max_tokens is required by the real API, so by the mock too. */
    assert_int_equal(
        post("/v1/messages", "t-anth", "{\"model\": \"m-claude\", \"messages\": []}", &resp), 400);
    assert_string_equal(anthropic_error_type(resp), "invalid_request_error");
    cJSON_Delete(resp);
    assert_int_equal(request("/v1/messages", "t-anth", NULL, &resp), 405);
    assert_string_equal(anthropic_error_type(resp), "invalid_request_error");
    cJSON_Delete(resp);
}

static void gemini_generate_content_is_answered_in_its_shape(void **state)
{
    (void)state;
    cJSON *resp = NULL;
    assert_int_equal(post("/v1beta/models/m-gem:generateContent", "t-gem", GEM_BODY, &resp), 200);
    const cJSON *cand = cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "candidates"), 0);
    const cJSON *content = cJSON_GetObjectItem(cand, "content");
    assert_string_equal(str_at(content, "role"), "model");
    assert_string_equal(
        str_at(cJSON_GetArrayItem(cJSON_GetObjectItem(content, "parts"), 0), "text"), "gem answer");
    assert_string_equal(str_at(cand, "finishReason"), "STOP");
    assert_int_equal((int)num_at(cand, "index"), 0);
    const cJSON *usage = cJSON_GetObjectItem(resp, "usageMetadata");
    assert_int_equal((int)num_at(usage, "promptTokenCount"), 7);
    assert_int_equal((int)num_at(usage, "candidatesTokenCount"), 3);
    assert_int_equal((int)num_at(usage, "totalTokenCount"), 10);
    assert_string_equal(str_at(resp, "modelVersion"), "m-gem");
    cJSON_Delete(resp);

    assert_int_equal(post("/v1beta/models/m-gem-len:generateContent", "t-gem", GEM_BODY, &resp),
                     200);
    cand = cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "candidates"), 0);
    assert_string_equal(str_at(cand, "finishReason"), "MAX_TOKENS");
    cJSON_Delete(resp);

    assert_int_equal(post("/v1beta/models/m-nope:generateContent", "t-gem", GEM_BODY, &resp), 404);
    assert_string_equal(gemini_error_status(resp, 404), "NOT_FOUND");
    cJSON_Delete(resp);
    assert_int_equal(post("/v1beta/models/m-gem:generateContent", "t-gem", "{\"x\": 1}", &resp),
                     400);
    assert_string_equal(gemini_error_status(resp, 400), "INVALID_ARGUMENT");
    cJSON_Delete(resp);
}

/* ---- faults ------------------------------------------------------------------ */

static void fault_429_sends_retry_after_in_every_shape(void **state)
{
    (void)state;
    const char *paths[] = {"/v1/chat/completions", "/v1/messages",
                           "/v1beta/models/m-429:generateContent"};
    const char *bodies[] = {OAI_BODY("m-429"), ANTH_BODY("m-429"), GEM_BODY};
    for (int i = 0; i < 3; i++) {
        struct raw r;
        raw_post(fx.port, paths[i], "t-fault", bodies[i], &r);
        assert_int_equal(r.status, 429);
        char *ra = raw_header(&r, "Retry-After");
        char *ms = raw_header(&r, "retry-after-ms");
        assert_non_null(ra);
        assert_non_null(ms);
        assert_string_equal(ra, "2");
        assert_string_equal(ms, "2000");
        free(ra);
        free(ms);
        cJSON *j = raw_json(&r);
        assert_non_null(j);
        if (i == 0)
            assert_string_equal(str_at(cJSON_GetObjectItem(j, "error"), "type"),
                                "rate_limit_error");
        else if (i == 1)
            assert_string_equal(anthropic_error_type(j), "rate_limit_error");
        else
            assert_string_equal(gemini_error_status(j, 429), "RESOURCE_EXHAUSTED");
        cJSON_Delete(j);
        wk_buf_release(&r.in);
    }
}

static void fault_statuses_use_each_api_shape(void **state)
{
    (void)state;
    static const struct {
        const char *model;
        int status;
        const char *openai_type, *anthropic_type, *gemini_status;
    } cases[] = {
        {"m-401", 401, "authentication_error", "authentication_error", "UNAUTHENTICATED"},
        {"m-500", 500, "server_error", "api_error", "INTERNAL"},
        {"m-503", 503, "server_error", "api_error", "UNAVAILABLE"},
        {"m-529", 529, "server_error", "overloaded_error", "UNAVAILABLE"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cJSON *resp = NULL;
        char *body = wk_xasprintf("{\"model\": \"%s\", \"max_tokens\": 9, \"messages\": []}",
                                  cases[i].model);
        assert_int_equal(post("/v1/chat/completions", "t-fault", body, &resp), cases[i].status);
        assert_string_equal(str_at(cJSON_GetObjectItem(resp, "error"), "type"),
                            cases[i].openai_type);
        cJSON_Delete(resp);
        assert_int_equal(post("/v1/messages", "t-fault", body, &resp), cases[i].status);
        assert_string_equal(anthropic_error_type(resp), cases[i].anthropic_type);
        cJSON_Delete(resp);
        char *path = wk_xasprintf("/v1beta/models/%s:generateContent", cases[i].model);
        assert_int_equal(post(path, "t-fault", GEM_BODY, &resp), cases[i].status);
        assert_string_equal(gemini_error_status(resp, cases[i].status), cases[i].gemini_status);
        cJSON_Delete(resp);
        free(path);
        free(body);
    }
}

static void fault_spend_limit_says_quota_and_spend_limit(void **state)
{
    (void)state;
    cJSON *resp = NULL;
    assert_int_equal(post("/v1/chat/completions", "t-fault", OAI_BODY("m-spend"), &resp), 429);
    const cJSON *err = cJSON_GetObjectItem(resp, "error");
    assert_string_equal(str_at(err, "type"), "insufficient_quota");
    assert_string_equal(str_at(err, "code"), "insufficient_quota");
    assert_non_null(strstr(str_at(err, "message"), "You exceeded your current quota"));
    cJSON_Delete(resp);
    assert_int_equal(post("/v1/messages", "t-fault", ANTH_BODY("m-spend"), &resp), 429);
    assert_string_equal(anthropic_error_type(resp), "rate_limit_error");
    assert_non_null(strstr(str_at(cJSON_GetObjectItem(resp, "error"), "message"), "spend limit"));
    cJSON_Delete(resp);
}

static void fault_reset_resets_the_connection(void **state)
{
    (void)state;
    struct raw r;
    raw_post(fx.port, "/v1/chat/completions", "t-fault", OAI_BODY("m-reset"), &r);
    assert_int_equal(r.reset, 1);
    assert_int_equal(r.in.len, 0);
    wk_buf_release(&r.in);
}

static void fault_stall_headers_sends_nothing_for_arg_ms(void **state)
{
    (void)state;
    struct raw r;
    raw_post(fx.port, "/v1/chat/completions", "t-fault", OAI_BODY("m-stallh"), &r);
    assert_int_equal(r.status, 200);
    assert_true(r.first_ms >= 300);
    cJSON *j = raw_json(&r);
    assert_string_equal(answer_of(j), "stalled");
    cJSON_Delete(j);
    wk_buf_release(&r.in);
}

static void fault_stall_body_pauses_mid_body(void **state)
{
    (void)state;
    struct raw r;
    raw_post(fx.port, "/v1/chat/completions", "t-fault", OAI_BODY("m-stallb"), &r);
    assert_int_equal(r.status, 200);
    /* The head and part of the body came first, and the rest only after the pause. */
    assert_true(r.first_ms < 300);
    assert_true((size_t)r.first_len > r.head_len);
    assert_true((size_t)r.first_len < r.head_len + r.content_length);
    assert_true(r.done_ms >= 300);
    assert_int_equal(r.in.len, r.head_len + r.content_length);
    cJSON *j = raw_json(&r);
    assert_string_equal(answer_of(j), "stalled");
    cJSON_Delete(j);
    wk_buf_release(&r.in);
}

static void fault_truncate_cuts_the_json_in_half(void **state)
{
    (void)state;
    struct raw r;
    raw_post(fx.port, "/v1/chat/completions", "t-fault", OAI_BODY("m-trunc"), &r);
    assert_int_equal(r.status, 200);
    /* Content-Length matches what was sent: the body is complete, and broken. */
    assert_int_equal(r.in.len, r.head_len + r.content_length);
    assert_true(r.content_length > 20);
    const char *body = r.in.buf + r.head_len;
    assert_memory_equal(body, "{\"id\":\"chatcmpl-mock-", 20);
    assert_null(raw_json(&r));
    assert_null(memmem(body, r.content_length, "truncated answer", 16));
    wk_buf_release(&r.in);
}

static void fault_length_sets_each_apis_finish_reason(void **state)
{
    (void)state;
    cJSON *resp = NULL;
    assert_int_equal(post("/v1/chat/completions", "t-fault", OAI_BODY("m-len"), &resp), 200);
    const cJSON *choice = cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "choices"), 0);
    assert_string_equal(str_at(choice, "finish_reason"), "length");
    /* The fault shows run 1 without taking it, so the next request sees run 1 again. */
    assert_string_equal(answer_of(resp), "len one");
    cJSON_Delete(resp);
    assert_int_equal(post("/v1/messages", "t-fault", ANTH_BODY("m-len"), &resp), 200);
    assert_string_equal(str_at(resp, "stop_reason"), "max_tokens");
    assert_string_equal(str_at(cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "content"), 0), "text"),
                        "len one");
    cJSON_Delete(resp);
    assert_int_equal(post("/v1beta/models/m-len:generateContent", "t-fault", GEM_BODY, &resp), 200);
    assert_string_equal(
        str_at(cJSON_GetArrayItem(cJSON_GetObjectItem(resp, "candidates"), 0), "finishReason"),
        "MAX_TOKENS");
    cJSON_Delete(resp);
}

static void fault_body_huge_sends_arg_mib_of_valid_json(void **state)
{
    (void)state;
    struct raw r;
    raw_post(fx.port, "/v1/chat/completions", "t-fault", OAI_BODY("m-huge"), &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.content_length, (size_t)2 << 20);
    assert_int_equal(r.in.len, r.head_len + r.content_length);
    cJSON *j = raw_json(&r);
    assert_non_null(j);
    assert_string_equal(answer_of(j), "huge");
    cJSON_Delete(j);
    wk_buf_release(&r.in);
}

static void faulted_requests_do_not_take_a_run(void **state)
{
    (void)state;
    /* 500:every:2@m-every: requests 2 and 4 fail; runs go 1, 2, 3 regardless. */
    const char *want[] = {"every one", NULL, "every two", NULL, "every three"};
    for (int i = 0; i < 5; i++) {
        cJSON *resp = NULL;
        long st = post("/v1/chat/completions", "t-every", OAI_BODY("m-every"), &resp);
        if (want[i]) {
            assert_int_equal(st, 200);
            assert_string_equal(answer_of(resp), want[i]);
        } else {
            assert_int_equal(st, 500);
        }
        cJSON_Delete(resp);
    }
}

static void faults_apply_only_to_their_model(void **state)
{
    (void)state;
    /* Same task, same route: m-ok has no fault, m-500 always has one. */
    for (int i = 0; i < 3; i++) {
        cJSON *resp = NULL;
        assert_int_equal(post("/v1/chat/completions", "t-fault", OAI_BODY("m-ok"), &resp), 200);
        assert_string_equal(answer_of(resp), "fine");
        cJSON_Delete(resp);
        assert_int_equal(post("/v1/chat/completions", "t-fault", OAI_BODY("m-500"), &resp), 500);
        cJSON_Delete(resp);
    }
}

static void stalled_answer_holds_back_pipelined_ones(void **state)
{
    (void)state;
    /* The first request stalls 300 ms; the second, unfaulted, must still come after it. */
    char *one = post_text("/v1/chat/completions", "t-fault", OAI_BODY("m-stallh"));
    char *two = post_text("/v1/chat/completions", "t-fault", OAI_BODY("m-ok"));
    char *both = wk_xasprintf("%s%s", one, two);
    int fd = connect_to(fx.port);
    fx.requests += 2;
    uint64_t t0 = wk_now_ms();
    assert_int_equal(write(fd, both, strlen(both)), (ssize_t)strlen(both));
    wk_buf in;
    wk_buf_init(&in, RESP_CAP);
    assert_int_equal(read_responses(fd, &in, 2), 2);
    assert_true(wk_now_ms() - t0 >= 300);
    const char *a1 = strstr(in.buf, "stalled");
    const char *a2 = strstr(in.buf, "fine");
    assert_non_null(a1);
    assert_non_null(a2);
    assert_true(a1 < a2);
    wk_buf_release(&in);
    close(fd);
    free(one);
    free(two);
    free(both);
}

static void log_records_faults_and_redacts_keys(void **state)
{
    (void)state;
    CURL *h = curl_easy_init();
    wk_buf resp;
    char *url = NULL;
    wk_buf_init(&resp, RESP_CAP);
    struct curl_slist *hdrs =
        prepare(h, "/v1/messages", "t-anth", ANTH_BODY("m-claude"), &resp, &url);
    hdrs = curl_slist_append(hdrs, "x-api-key: fake-SECRET1");
    hdrs = curl_slist_append(hdrs, "Authorization: Bearer fake-SECRET2");
    hdrs = curl_slist_append(hdrs, "x-goog-api-key: SECRET3");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    fx.requests++;
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(url);
    wk_buf_release(&resp);

    char *text = read_text(fx.log);
    assert_non_null(text);
    assert_null(strstr(text, "SECRET"));
    int resets = 0, redacted = 0, faults = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        assert_true(cJSON_HasObjectItem(j, "fault"));
        const char *fault = str_at(j, "fault");
        faults += fault != NULL;
        if (fault && strcmp(fault, "reset") == 0) {
            resets++;
            assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "status")));
            assert_string_equal(str_at(j, "model"), "m-reset");
        }
        const cJSON *hd = cJSON_GetObjectItem(j, "headers");
        assert_true(cJSON_IsObject(hd));
        if (str_at(hd, "x-api-key")) {
            redacted++;
            assert_string_equal(str_at(hd, "x-api-key"), "<redacted>");
            assert_string_equal(str_at(hd, "authorization"), "Bearer <redacted>");
            assert_string_equal(str_at(hd, "x-goog-api-key"), "<redacted>");
            assert_string_equal(str_at(hd, "x-cascade-task"), "t-anth");
        }
        cJSON_Delete(j);
    }
    free(text);
    assert_int_equal(resets, 1);
    assert_int_equal(redacted, 1);
    assert_true(faults >= 20);
}

/* ---- tests with their own mock ---------------------------------------------- */

static void latency_delays_answers_and_keeps_pipelined_order(void **state)
{
    (void)state;
    const char *flags[] = {"--latency", "200", "--log-bodies", "0", NULL};
    start_extra(flags);
    struct raw r;
    raw_post(fx.extra_port, "/v1/chat/completions", "t-pipe", OAI_BODY("m"), &r);
    assert_int_equal(r.status, 200);
    assert_true(r.first_ms >= 200);
    wk_buf_release(&r.in);

    /* Runs 2 and 1 (the pair wraps) pipelined: both late, in request order. */
    char *req = post_text("/v1/chat/completions", "t-pipe", OAI_BODY("m"));
    char *both = wk_xasprintf("%s%s", req, req);
    int fd = connect_to(fx.extra_port);
    uint64_t t0 = wk_now_ms();
    assert_int_equal(write(fd, both, strlen(both)), (ssize_t)strlen(both));
    wk_buf in;
    wk_buf_init(&in, RESP_CAP);
    assert_int_equal(read_responses(fd, &in, 2), 2);
    assert_true(wk_now_ms() - t0 >= 200);
    const char *a2 = strstr(in.buf, "pipe two");
    const char *a1 = strstr(in.buf, "pipe one");
    assert_non_null(a1);
    assert_non_null(a2);
    assert_true(a2 < a1);
    wk_buf_release(&in);
    close(fd);
    free(req);
    free(both);
    stop_extra();

    /* --log-bodies 0 leaves the body out. */
    char *text = read_text(fx.extra_log);
    assert_non_null(text);
    assert_null(strstr(text, "\"body\""));
    assert_non_null(strstr(text, "\"fault\":null"));
    free(text);
}

/* Runs 40 requests for two pairs against a fresh mock; statuses as '.' (200) or 'x' (500). */
static void fault_pattern(const char *seed, int b_first, char pattern_a[21], char pattern_b[21])
{
    const char *flags[] = {"--fault", "500:0.5", "--seed", seed, NULL};
    start_extra(flags);
    for (int pass = 0; pass < 2; pass++) {
        int is_b = pass == 0 ? b_first : !b_first;
        char *pattern = is_b ? pattern_b : pattern_a;
        for (int i = 0; i < 20; i++) {
            struct raw r;
            raw_post(fx.extra_port, "/v1/chat/completions", is_b ? "t-b" : "t-a", OAI_BODY("m"),
                     &r);
            assert_true(r.status == 200 || r.status == 500);
            pattern[i] = r.status == 200 ? '.' : 'x';
            wk_buf_release(&r.in);
        }
        pattern[20] = '\0';
    }
    stop_extra();
}

static void same_seed_gives_same_faults_whatever_the_order(void **state)
{
    (void)state;
    char a1[21], b1[21], a2[21], b2[21], a3[21], b3[21];
    fault_pattern("7", 0, a1, b1);
    fault_pattern("7", 1, a2, b2); /* the other pair first: the draws are per pair */
    fault_pattern("8", 0, a3, b3);
    assert_string_equal(a1, a2);
    assert_string_equal(b1, b2);
    /* A rate of 0.5 gives both outcomes, different pairs differ, another seed differs. */
    assert_non_null(strchr(a1, 'x'));
    assert_non_null(strchr(a1, '.'));
    assert_string_not_equal(a1, b1);
    assert_string_not_equal(a1, a3);
}

static void bad_fault_specs_are_usage_errors(void **state)
{
    (void)state;
    char *out = wk_xasprintf("%s/out.txt", fx.dir);
    const char *bad[] = {"bogus:1",          "500",    "500:1.5",         "500:1:5",
                         "429:every:0",      "500:1@", "stall-body:1:-3", "429:nan",
                         "body-huge:1:9999", NULL};
    for (int i = 0; bad[i]; i++) {
        char *args[] = {"--port",       "0", "--recordings", fx.recordings, "--fault",
                        (char *)bad[i], NULL};
        int st = run_mock(args, out);
        assert_true(WIFEXITED(st));
        if (WEXITSTATUS(st) != 2)
            fail_msg("--fault %s: exit %d, want 2", bad[i], WEXITSTATUS(st));
        char *msg = read_text(out);
        assert_non_null(strstr(msg, bad[i]));
        free(msg);
    }
    char *a2[] = {"--port", "0", "--recordings", fx.recordings, "--latency", "-1", NULL};
    int st = run_mock(a2, out);
    assert_int_equal(WEXITSTATUS(st), 2);
    free(out);
}

static void log_has_one_line_per_request(void **state)
{
    (void)state;
    uint64_t before = (uint64_t)time(NULL) * 1000u - 1000u;
    const char *body = "{\"model\": \"m-small\", \"messages\": ["
                       "{\"role\": \"user\", \"content\": \"write f\"},"
                       "{\"role\": \"assistant\", \"content\": \"def f(): pass\"},"
                       "{\"role\": \"user\", \"content\": \"FEEDBACK: tests failed\"}]}";
    assert_int_equal(request("/v1/chat/completions", "t-log", body, NULL), 200);
    assert_int_equal(request("/v1/chat/completions", "t-log", "not json", NULL), 400);

    char *text = read_text(fx.log);
    assert_non_null(text);
    int lines = 0, seen_ok = 0, seen_bad = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        if (!j)
            fail_msg("log line %d is not JSON: %.200s", lines + 1, line);
        lines++;
        assert_true(num_at(j, "ts_ms") > 1.6e12);
        assert_true(cJSON_HasObjectItem(j, "status"));
        const char *task = str_at(j, "task");
        if (task && strcmp(task, "t-log") == 0 && num_at(j, "status") == 200) {
            seen_ok++;
            assert_true(num_at(j, "ts_ms") >= (double)before);
            assert_string_equal(str_at(j, "model"), "m-small");
            assert_int_equal((int)num_at(j, "run"), 1);
            const cJSON *msgs = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "body"), "messages");
            assert_int_equal(cJSON_GetArraySize(msgs), 3);
            assert_string_equal(str_at(cJSON_GetArrayItem(msgs, 2), "content"),
                                "FEEDBACK: tests failed");
        } else if (task && strcmp(task, "t-log") == 0) {
            seen_bad++;
            assert_int_equal((int)num_at(j, "status"), 400);
            assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "body")));
            assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "run")));
        }
        cJSON_Delete(j);
    }
    free(text);
    assert_int_equal(seen_ok, 1);
    assert_int_equal(seen_bad, 1);
    assert_int_equal(lines, fx.requests);
}

static void bad_recordings_are_named_by_file_and_line(void **state)
{
    (void)state;
    char *bad = wk_xasprintf("%s/bad.jsonl", fx.dir);
    char *dup = wk_xasprintf("%s/dup.jsonl", fx.dir);
    char *out = wk_xasprintf("%s/out.txt", fx.dir);
    char *missing = wk_xasprintf("%s/missing.jsonl", fx.dir);

    write_text(bad, "{\"task\": \"a\", \"model\": \"m\", \"run\": 1, \"answer\": \"x\"}\n"
                    "{\"task\": \"a\", \"model\": \"m\", \"run\": 2, \"answer\": }\n");
    char *a1[] = {"--port", "0", "--recordings", bad, NULL};
    int st = run_mock(a1, out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    char *msg = read_text(out);
    char *where = wk_xasprintf("%s:2", bad);
    assert_non_null(strstr(msg, where));
    free(where);
    free(msg);

    write_text(dup, "{\"task\": \"a\", \"model\": \"m\", \"run\": 1, \"answer\": \"x\"}\n"
                    "{\"task\": \"a\", \"model\": \"m\", \"run\": 1, \"answer\": \"y\"}\n");
    char *a2[] = {"--port", "0", "--recordings", dup, NULL};
    st = run_mock(a2, out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    msg = read_text(out);
    assert_non_null(strstr(msg, dup));
    assert_non_null(strstr(msg, "line 1"));
    free(msg);

    char *a3[] = {"--port", "0", "--recordings", missing, NULL};
    st = run_mock(a3, out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    msg = read_text(out);
    assert_non_null(strstr(msg, missing));
    free(msg);

    char *a4[] = {"--help", NULL};
    st = run_mock(a4, out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    msg = read_text(out);
    assert_non_null(strstr(msg, "--recordings"));
    free(msg);

    char *a5[] = {"--port", "http", "--recordings", bad, NULL};
    st = run_mock(a5, out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);

    free(bad);
    free(dup);
    free(out);
    free(missing);
}

static void sigterm_exits_zero(void **state)
{
    (void)state;
    assert_true(fx.pid > 0);
    /* An idle kept-alive connection must not hold up the shutdown. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    sleep_ms(50);

    int status = 0;
    assert_int_equal(kill(fx.pid, SIGTERM), 0);
    int r = wait_bounded(fx.pid, 10000, &status);
    close(fd);
    if (r != 0)
        fail_msg("mock-llm did not exit within 10 s of SIGTERM"); /* teardown kills it */
    fx.pid = 0;
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(runs_are_served_in_order_and_cycle),
        cmocka_unit_test(response_is_openai_shaped_with_usage),
        cmocka_unit_test(unknown_pair_gets_404_model_not_found),
        cmocka_unit_test(bad_json_gets_400),
        cmocka_unit_test(embeddings_are_served),
        cmocka_unit_test(other_paths_get_404),
        cmocka_unit_test(body_over_16_mib_gets_413),
        cmocka_unit_test(keep_alive_reuses_one_connection),
        cmocka_unit_test(pipelined_requests_split_across_reads),
        cmocka_unit_test(many_concurrent_requests_all_answered),
        cmocka_unit_test(listens_only_on_loopback),
        cmocka_unit_test(anthropic_messages_are_answered_in_its_shape),
        cmocka_unit_test(gemini_generate_content_is_answered_in_its_shape),
        cmocka_unit_test(fault_429_sends_retry_after_in_every_shape),
        cmocka_unit_test(fault_statuses_use_each_api_shape),
        cmocka_unit_test(fault_spend_limit_says_quota_and_spend_limit),
        cmocka_unit_test(fault_reset_resets_the_connection),
        cmocka_unit_test(fault_stall_headers_sends_nothing_for_arg_ms),
        cmocka_unit_test(fault_stall_body_pauses_mid_body),
        cmocka_unit_test(fault_truncate_cuts_the_json_in_half),
        cmocka_unit_test(fault_length_sets_each_apis_finish_reason),
        cmocka_unit_test(fault_body_huge_sends_arg_mib_of_valid_json),
        cmocka_unit_test(faulted_requests_do_not_take_a_run),
        cmocka_unit_test(faults_apply_only_to_their_model),
        cmocka_unit_test(stalled_answer_holds_back_pipelined_ones),
        cmocka_unit_test(log_records_faults_and_redacts_keys),
        cmocka_unit_test(log_has_one_line_per_request),
        cmocka_unit_test_teardown(latency_delays_answers_and_keeps_pipelined_order, extra_teardown),
        cmocka_unit_test_teardown(same_seed_gives_same_faults_whatever_the_order, extra_teardown),
        cmocka_unit_test(bad_fault_specs_are_usage_errors),
        cmocka_unit_test(bad_recordings_are_named_by_file_and_line),
        cmocka_unit_test(sigterm_exits_zero),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
