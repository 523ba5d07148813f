/*
 * The JSONL queue: tasks from a file or stdin, one per line (results go to
 * the results file sink, worker/sinks/). Reading goes through uv_fs_read (the thread pool), so a
 * slow producer on stdin never stalls the calls in flight. Lines are handed
 * out only as the driver asks for them, so memory stays bounded by the
 * driver's concurrency, not the input's size.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "q.h"
#include "lib/util.h"

#define READ_CHUNK 65536

typedef struct line_node {
    q_item *it;
    struct line_node *next;
} line_node;

struct q_queue {
    uv_loop_t *loop;
    q_callbacks cb;
    size_t line_cap;
    uv_file fd;
    int own_fd;
    uv_fs_t req;
    char chunk[READ_CHUNK];
    int reading, eof, end_sent, closing;
    wk_buf partial; /* the line being assembled */
    int partial_too_big;
    long lineno;
    line_node *head, *tail;
    int requested;
    uv_idle_t deliver;
    void (*closed)(void *);
    void *closed_arg;
};

static int jsonl_accepts(const char *url)
{
    return strncmp(url, "redis://", 8) != 0;
}

static void push_line(q_queue *q, const char *s, size_t n, int too_big)
{
    q_item *it = wk_xcalloc(1, sizeof *it);
    it->line = wk_xstrndup(s, n);
    it->len = n;
    it->lineno = ++q->lineno;
    it->deliveries = 1;
    it->too_big = too_big;
    line_node *ln = wk_xcalloc(1, sizeof *ln);
    ln->it = it;
    if (q->tail)
        q->tail->next = ln;
    else
        q->head = ln;
    q->tail = ln;
}

/* Splits a chunk into lines; a line over the cap is kept cut and flagged. */
static void take_bytes(q_queue *q, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t k = nl ? (size_t)(nl - p) : n;
        if (!q->partial_too_big && wk_buf_append(&q->partial, p, k) != 0)
            q->partial_too_big = 1;
        if (!nl)
            return;
        push_line(q, q->partial.buf ? q->partial.buf : "", q->partial.len, q->partial_too_big);
        wk_buf_reset(&q->partial);
        q->partial_too_big = 0;
        p += k + 1;
        n -= k + 1;
    }
}

static void start_read(q_queue *q);
static void deliver_closed(uv_handle_t *h);

static void on_deliver(uv_idle_t *h)
{
    q_queue *q = h->data;
    while (q->requested > 0 && q->head && !q->closing) {
        line_node *ln = q->head;
        q->head = ln->next;
        if (!q->head)
            q->tail = NULL;
        q->requested--;
        q_item *it = ln->it;
        free(ln);
        q->cb.on_item(q->cb.arg, it);
    }
    if (q->closing) {
        uv_idle_stop(h);
        return;
    }
    if (q->requested > 0 && !q->head && !q->eof) {
        start_read(q);
        uv_idle_stop(h);
        return;
    }
    if (q->eof && !q->head && !q->end_sent) {
        q->end_sent = 1;
        q->cb.on_end(q->cb.arg);
    }
    uv_idle_stop(h);
}

static void on_read(uv_fs_t *req)
{
    q_queue *q = req->data;
    ssize_t n = req->result;
    uv_fs_req_cleanup(req);
    q->reading = 0;
    if (q->closing) {
        /* close() was waiting for this read to come back. */
        uv_close((uv_handle_t *)&q->deliver, deliver_closed);
        return;
    }
    if (n > 0) {
        take_bytes(q, q->chunk, (size_t)n);
    } else {
        if (n < 0 && q->cb.on_note) {
            char *m = wk_xasprintf("tasks input: read error: %s", uv_strerror((int)n));
            q->cb.on_note(q->cb.arg, m);
            free(m);
        }
        q->eof = 1;
        if (q->partial.len || q->partial_too_big)
            push_line(q, q->partial.buf ? q->partial.buf : "", q->partial.len, q->partial_too_big);
        wk_buf_reset(&q->partial);
    }
    uv_idle_start(&q->deliver, on_deliver);
}

static void start_read(q_queue *q)
{
    if (q->reading || q->eof)
        return;
    q->reading = 1;
    uv_buf_t b = uv_buf_init(q->chunk, sizeof q->chunk);
    q->req.data = q;
    if (uv_fs_read(q->loop, &q->req, q->fd, &b, 1, -1, on_read) != 0) {
        q->reading = 0;
        q->eof = 1;
        uv_idle_start(&q->deliver, on_deliver);
    }
}

static int jsonl_open(uv_loop_t *loop, const q_opts *o, const q_callbacks *cb, q_queue **out,
                      char *err, size_t errlen)
{
    q_queue *q = wk_xcalloc(1, sizeof *q);
    q->loop = loop;
    q->cb = *cb;
    q->line_cap = o->line_cap ? o->line_cap : (16u << 20);
    wk_buf_init(&q->partial, q->line_cap);
    if (strcmp(o->url, "-") == 0) {
        q->fd = 0;
    } else {
        q->fd = open(o->url, O_RDONLY | O_CLOEXEC);
        if (q->fd < 0) {
            snprintf(err, errlen, "cannot open tasks file %s: %s", o->url, strerror(errno));
            wk_buf_release(&q->partial);
            free(q);
            return WK_EIO;
        }
        q->own_fd = 1;
    }
    uv_idle_init(loop, &q->deliver);
    q->deliver.data = q;
    *out = q;
    return 0;
}

static void jsonl_pull(q_queue *q, int n)
{
    q->requested += n;
    uv_idle_start(&q->deliver, on_deliver);
}

/* A line read is a line taken: there is nothing to acknowledge in a file. */
static int jsonl_ack(q_queue *q, const q_item *it, const char *id, const char *result, size_t len)
{
    (void)q;
    (void)it;
    (void)id;
    (void)result;
    (void)len;
    return 0;
}

static void jsonl_nack(q_queue *q, const q_item *it, const char *why)
{
    (void)q;
    (void)it;
    (void)why; /* a file has no redelivery: the journal resumes the task */
}

static void deliver_closed(uv_handle_t *h)
{
    q_queue *q = h->data;
    while (q->head) {
        line_node *ln = q->head;
        q->head = ln->next;
        q_item_free(ln->it);
        free(ln);
    }
    wk_buf_release(&q->partial);
    if (q->own_fd)
        close(q->fd);
    void (*closed)(void *) = q->closed;
    void *arg = q->closed_arg;
    free(q);
    if (closed)
        closed(arg);
}

static void jsonl_close(q_queue *q, void (*closed)(void *), void *arg)
{
    q->closing = 1;
    q->closed = closed;
    q->closed_arg = arg;
    q->deliver.data = q;
    uv_idle_stop(&q->deliver);
    /* A read in the thread pool cannot be taken back: wait for it (on_read closes). */
    if (q->reading)
        uv_cancel((uv_req_t *)&q->req);
    else
        uv_close((uv_handle_t *)&q->deliver, deliver_closed);
}

const q_ops q_jsonl = {
    .name = "jsonl",
    .accepts = jsonl_accepts,
    .open = jsonl_open,
    .pull = jsonl_pull,
    .ack = jsonl_ack,
    .nack = jsonl_nack,
    .close = jsonl_close,
};
