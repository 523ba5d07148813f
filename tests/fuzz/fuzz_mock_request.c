/*
 * Fuzz target: mock-llm's request parser (fixtures/mock-llm/server.c and
 * its routes): HTTP bytes as a client sends them on one connection, through
 * http_parser and the server's callbacks (URL, headers, X-Cascade-Task,
 * Expect: 100-continue, body caps), the route's JSON parsing, the faults and
 * the recordings, to the queued responses. The input is what the client
 * writes, possibly several pipelined requests, then the client half-closes.
 *
 * The callbacks are file-local, so server.c is compiled into this file; the
 * connection is set up as on_connection() does, over one end of a socket
 * pair instead of an accepted socket, and the other end is read and dropped.
 * The recordings and faults below give every route an answer to serve and
 * every fault kind that answers at once (no stalls: a stall would only
 * wait) a model of its own.
 */
#include "fixtures/mock-llm/server.c"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

static const char recordings[] =
    "{\"task\": \"t\", \"model\": \"m\", \"run\": 1, \"answer\": \"```python\\nx = 1\\n```\","
    " \"usage\": {\"prompt_tokens\": 10, \"completion_tokens\": 5}}\n"
    "{\"task\": \"t\", \"model\": \"m\", \"run\": 2, \"answer\": \"\", \"finish_reason\": "
    "\"length\"}\n"
    "{\"task\": \"t\", \"model\": \"gemini-pro\", \"run\": 1, \"answer\": \"caf\\u00e9 \\u0001\"}\n"
    "{\"task\": \"t\", \"model\": \"claude\", \"run\": 1, \"answer\": \"{\\\"label\\\": "
    "\\\"bug\\\"}\"}\n"
    "{\"task\": \"t\", \"model\": \"m429\", \"run\": 1, \"answer\": \"a\"}\n"
    "{\"task\": \"t\", \"model\": \"mtrunc\", \"run\": 1, \"answer\": \"truncated answer\"}\n"
    "{\"task\": \"t\", \"model\": \"mlen\", \"run\": 1, \"answer\": \"long\"}\n"
    "{\"task\": \"t\", \"model\": \"mreset\", \"run\": 1, \"answer\": \"r\"}\n"
    "{\"task\": \"t\", \"model\": \"mspend\", \"run\": 1, \"answer\": \"s\"}\n"
    "{\"task\": \"t\", \"model\": \"mhalf\", \"run\": 1, \"answer\": \"h\"}\n";

static const char *const fault_specs[] = {
    "429:1:2@m429",         "truncate:1@mtrunc", "length:1@mlen",     "reset:1@mreset",
    "spend-limit:1@mspend", "500:0.5@mhalf",     "503:every:2@mhalf", "401:every:3@claude",
};

static uv_loop_t loop;
static struct mock_server srv;
static struct mock_faults faults;
static wk_recs *recs;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char path[32];
    char err[512];
    /* As main() does: out of memory aborts, and a closed peer costs an EPIPE. */
    cJSON_Hooks hooks = {.malloc_fn = wk_xmalloc, .free_fn = free};
    cJSON_InitHooks(&hooks);
    signal(SIGPIPE, SIG_IGN);
    int fd = fuzz_file(recordings, sizeof recordings - 1, path);
    if (wk_recs_load(path, &recs, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_mock_request: the built-in recordings do not load: %s\n", err);
        abort();
    }
    close(fd);
    if (uv_loop_init(&loop) != 0)
        abort();
    mock__faults_init(&faults, 1);
    memset(&srv, 0, sizeof srv);
    srv.loop = &loop;
    srv.cfg.recs = recs;
    srv.cfg.faults = &faults;
    /* Both logging paths run (header redaction, body references), into nothing. */
    srv.cfg.log_headers = 1;
    srv.cfg.log_bodies = 1;
    srv.ctx.recs = recs;
    srv.ctx.faults = &faults;
    srv.log = fopen("/dev/null", "w");
    return 0;
}

/* Reads and drops what the server wrote so far. */
static void drain(int fd)
{
    char buf[65536];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

/* A connection as on_connection() sets one up, over fd. */
static struct mock_conn *conn_open(int fd)
{
    struct mock_conn *c = wk_xcalloc(1, sizeof *c);
    c->srv = &srv;
    wk_buf_init(&c->url, URL_CAP);
    wk_buf_init(&c->field, HEADER_CAP);
    wk_buf_init(&c->value, HEADER_CAP);
    wk_buf_init(&c->body, MOCK_BODY_CAP);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    if (uv_tcp_init(&loop, &c->tcp) != 0 || uv_tcp_open(&c->tcp, fd) != 0)
        abort();
    c->tcp.data = c;
    uv_timer_init(&loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    c->queue_tail = &c->queue;
    c->next = srv.conns;
    if (srv.conns)
        srv.conns->prev = c;
    srv.conns = c;
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    /* The same faults and recordings for every input, so a run is repeatable. */
    wk_recs_rewind(recs);
    mock__faults_release(&faults);
    mock__faults_init(&faults, 1);
    for (size_t i = 0; i < sizeof fault_specs / sizeof fault_specs[0]; i++)
        if (mock__faults_add(&faults, fault_specs[i]) != 0)
            abort();
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        abort();
    struct mock_conn *c = conn_open(sv[0]);

    /* The request bytes, as one read (on_read frees the buffer). */
    uv_buf_t b = uv_buf_init(wk_xmalloc(size + 1), (unsigned int)size);
    if (size)
        memcpy(b.base, data, size);
    on_read((uv_stream_t *)&c->tcp, (ssize_t)size, &b);
    uv_run(&loop, UV_RUN_NOWAIT);
    drain(sv[1]);

    /* The client's EOF, if the connection is still reading; then it ends. */
    if (srv.conns && !uv_is_closing((uv_handle_t *)&c->tcp)) {
        uv_buf_t eof = uv_buf_init(wk_xmalloc(1), 1);
        on_read((uv_stream_t *)&c->tcp, UV_EOF, &eof);
        uv_run(&loop, UV_RUN_NOWAIT);
        drain(sv[1]);
    }
    for (struct mock_conn *k = srv.conns; k; k = k->next)
        conn_close(k);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (srv.conns)
        abort(); /* a connection outlived its handles */
    close(sv[1]);
    return 0;
}
