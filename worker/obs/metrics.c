/*
 * The metrics endpoint (--metrics-addr): a small HTTP/1.1 server on the run's
 * loop that answers GET /metrics with the Prometheus text format and closes
 * the connection. Requests are capped in size, connections in number and in
 * time, so a stuck or hostile scraper cannot hold the run's memory or file
 * descriptors.
 */
#include "monitor_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define REQ_MAX 8192
#define CONNS_MAX 16
#define CONN_TIMEOUT_MS 10000

typedef struct conn {
    wk_mon *ob;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    char req[REQ_MAX];
    size_t n;
    char *resp;
    int closing, open_handles;
    struct conn *next;
} conn;

static conn *conns; /* one run per process: the open connections, to close on stop */

static void unlink_conn(conn *c)
{
    for (conn **p = &conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            return;
        }
}

static void on_conn_closed(uv_handle_t *h)
{
    conn *c = h->data;
    if (--c->open_handles)
        return;
    free(c->resp);
    free(c);
}

static void conn_close(conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->ob->conns--;
    unlink_conn(c);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    (void)status;
    conn_close(w->data);
}

static void respond(conn *c, const char *status, const char *body)
{
    c->resp = wk_xasprintf("HTTP/1.1 %s\r\nContent-Type: text/plain; version=0.0.4; "
                           "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                           status, strlen(body), body);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)strlen(c->resp));
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    conn *c = h->data;
    *buf = uv_buf_init(c->req + c->n, (unsigned)(REQ_MAX - 1 - c->n));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    conn *c = s->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->n += (size_t)nread;
    c->req[c->n] = '\0';
    if (!strstr(c->req, "\r\n\r\n") && !strstr(c->req, "\n\n")) {
        if (c->n >= REQ_MAX - 1)
            respond(c, "431 Request Header Fields Too Large", "request too large\n");
        return;
    }
    if (strncmp(c->req, "GET ", 4) != 0 && strncmp(c->req, "HEAD ", 5) != 0) {
        respond(c, "405 Method Not Allowed", "GET /metrics\n");
        return;
    }
    const char *path = strchr(c->req, ' ') + 1;
    size_t plen = strcspn(path, " ?\r\n");
    if ((plen == 8 && strncmp(path, "/metrics", 8) == 0) || (plen == 1 && *path == '/')) {
        char *text = wk_mon_render(c->ob);
        respond(c, "200 OK", text);
        free(text);
    } else {
        respond(c, "404 Not Found", "GET /metrics\n");
    }
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *server, int status)
{
    wk_mon *ob = server->data;
    if (status < 0)
        return;
    conn *c = wk_xcalloc(1, sizeof *c);
    c->ob = ob;
    uv_tcp_init(ob->loop, &c->tcp);
    uv_timer_init(ob->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = conns;
    conns = c;
    ob->conns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || ob->conns > CONNS_MAX) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, CONN_TIMEOUT_MS, 0);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* HOST:PORT, or [V6]:PORT; 0 or -1. */
static int parse_addr(const char *s, struct sockaddr_storage *sa)
{
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s)
        return -1;
    long port;
    char *end;
    port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535)
        return -1;
    char host[64];
    size_t n = (size_t)(colon - s);
    if (s[0] == '[' && colon[-1] == ']') {
        s++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof host)
        return -1;
    memcpy(host, s, n);
    host[n] = '\0';
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) == 0)
        return 0;
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) == 0)
        return 0;
    return -1;
}

int wk__metrics_start(wk_mon *ob, char *err, size_t errlen)
{
    struct sockaddr_storage sa;
    memset(&sa, 0, sizeof sa);
    if (parse_addr(ob->o.metrics_addr, &sa))
        return wk_errf(-1, err, errlen,
                       "--metrics-addr %s: not HOST:PORT with a numeric IPv4 or [IPv6] host",
                       ob->o.metrics_addr);
    uv_tcp_init(ob->loop, &ob->server);
    ob->server.data = ob;
    ob->server_on = 1;
    int rc = uv_tcp_bind(&ob->server, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ob->server, 16, on_connection);
    /* Like the progress timer, the endpoint alone does not keep the loop alive. */
    uv_unref((uv_handle_t *)&ob->server);
    if (rc != 0) {
        wk__metrics_stop(ob);
        return wk_errf(-1, err, errlen, "--metrics-addr %s: %s", ob->o.metrics_addr,
                       uv_strerror(rc));
    }
    /* With port 0 the kernel picks one: say which, so a scraper (or a test) can find it. */
    struct sockaddr_storage got;
    int len = sizeof got;
    char host[64] = "?";
    int port = 0;
    if (uv_tcp_getsockname(&ob->server, (struct sockaddr *)&got, &len) == 0) {
        if (got.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&got, host, sizeof host);
            port = ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
        } else {
            uv_ip4_name((struct sockaddr_in *)&got, host, sizeof host);
            port = ntohs(((struct sockaddr_in *)&got)->sin_port);
        }
    }
    fprintf(stderr, "cascade: metrics on http://%s%s%s:%d/metrics\n",
            got.ss_family == AF_INET6 ? "[" : "", host, got.ss_family == AF_INET6 ? "]" : "", port);
    return 0;
}

void wk__metrics_stop(wk_mon *ob)
{
    while (conns)
        conn_close(conns);
    if (ob->server_on) {
        ob->server_on = 0;
        uv_close((uv_handle_t *)&ob->server, NULL);
    }
}
