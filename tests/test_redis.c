/*
 * The Redis Streams queue (worker/queues/redis.c) driven through its q_ops on
 * a libuv loop, against a real redis-server from Debian started by the test
 * on a free loopback port; and the `enqueue` and `results` commands through
 * the binary. Every wait is bounded; each test ends with uv_loop_close() == 0
 * so an unclosed handle fails it (and ASan reports anything not freed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "harness.h"
#include "lib/util.h"
#include "worker/queues/redis.h"

#define REDIS_BIN "/usr/bin/redis-server"

/* Every server a test started, so a failed test (cmocka jumps out) leaves none running. */
static pid_t servers[16];

/* ---- redis-server ------------------------------------------------------------ */

typedef struct srv {
    pid_t pid;
    int port;
    char dir[256];
    char url[128]; /* redis://127.0.0.1:PORT/STREAM */
} srv;

static int free_port(void)
{
    /* Bind to port 0 and give it back: a small race, acceptable on a test machine. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *sync_connect(int port)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c)
        redisSetTimeout(c, tv);
    return c;
}

/* Starts redis-server on s->port (picking one when 0) in s->dir; waits for PING. */
static void srv_start(srv *s, int aof)
{
    if (!s->port)
        s->port = free_port();
    if (!s->dir[0]) {
        char name[32];
        snprintf(name, sizeof name, "redis-%d", s->port);
        char *d = h_tmp(name);
        snprintf(s->dir, sizeof s->dir, "%s", d);
        free(d);
        assert_int_equal(mkdir(s->dir, 0700), 0);
    }
    char port[16];
    snprintf(port, sizeof port, "%d", s->port);
    char *log = wk_xasprintf("%s/redis.log", s->dir);
    char *argv[] = {REDIS_BIN,          "--port", port,   "--bind",
                    "127.0.0.1",        "--save", "",     "--appendonly",
                    aof ? "yes" : "no", "--dir",  s->dir, NULL};
    s->pid = h_spawn(argv, log, log);
    free(log);
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++)
        if (!servers[i]) {
            servers[i] = s->pid;
            break;
        }
    for (int i = 0; i < 250; i++) { /* up to 5 s */
        redisContext *c = sync_connect(s->port);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            redisFree(c);
            if (ok)
                return;
        }
        h_sleep_ms(20);
    }
    fail_msg("redis-server did not answer PING on port %d", s->port);
}

/* SIGTERM: a clean shutdown that writes the append-only file out. */
static void srv_stop(srv *s)
{
    if (s->pid <= 0)
        return;
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++)
        if (servers[i] == s->pid)
            servers[i] = 0;
    kill(s->pid, SIGTERM);
    if (h_wait(s->pid, 5000) < 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

static void srv_url(srv *s, const char *stream)
{
    snprintf(s->url, sizeof s->url, "redis://127.0.0.1:%d/%s", s->port, stream);
}

static long long cmd_int(int port, const char *fmt, const char *a, const char *b)
{
    redisContext *c = sync_connect(port);
    assert_non_null(c);
    redisReply *r = redisCommand(c, fmt, a, b);
    assert_non_null(r);
    long long v = -1;
    if (r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r->type == REDIS_REPLY_ARRAY && r->elements &&
             r->element[0]->type == REDIS_REPLY_INTEGER)
        v = r->element[0]->integer; /* XPENDING's summary */
    freeReplyObject(r);
    redisFree(c);
    return v;
}

static long long xlen(int port, const char *key)
{
    return cmd_int(port, "XLEN %s", key, NULL);
}

static long long pending(int port, const char *stream)
{
    return cmd_int(port, "XPENDING %s %s", stream, "cascade");
}

static void enqueue(int port, const char *stream, int n)
{
    redisContext *c = sync_connect(port);
    assert_non_null(c);
    for (int i = 0; i < n; i++) {
        char task[128];
        snprintf(task, sizeof task, "{\"id\":\"t%d\",\"prompt\":\"p\"}", i);
        redisReply *r = redisCommand(c, "XADD %s * task %s", stream, task);
        assert_true(r && r->type == REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
    redisFree(c);
}

/* ---- a small driver ------------------------------------------------------------ */

typedef struct drv {
    uv_loop_t loop;
    uv_timer_t tick;
    const q_ops *ops;
    q_queue *q;
    q_item *items[256]; /* received and not yet acked or nacked */
    int n_items;
    int received, ended, closed;
    int auto_ack;         /* ack each item as it arrives */
    const char *nack_why; /* nack each item as it arrives */
    int max_deliveries_seen;
    char notes[4096];
} drv;

static void test_item_free(q_item *it)
{
    q_item_free(it);
}

static void task_id(const q_item *it, char *id, size_t n)
{
    const char *p = strstr(it->line, "\"id\":\"");
    id[0] = '\0';
    if (p)
        snprintf(id, n, "%.*s", (int)strcspn(p + 6, "\""), p + 6);
}

static void ack_item(drv *d, q_item *it)
{
    char id[64], result[128];
    task_id(it, id, sizeof id);
    snprintf(result, sizeof result, "{\"id\":\"%s\",\"status\":\"accepted\"}", id);
    assert_int_equal(d->ops->ack(d->q, it, id, result, strlen(result)), 0);
    test_item_free(it);
}

static void on_item(void *arg, q_item *it)
{
    drv *d = arg;
    d->received++;
    if (it->deliveries > d->max_deliveries_seen)
        d->max_deliveries_seen = it->deliveries;
    if (d->auto_ack) {
        ack_item(d, it);
        d->ops->pull(d->q, 1); /* as a driver does when a slot frees */
    } else if (d->nack_why) {
        d->ops->nack(d->q, it, d->nack_why);
        test_item_free(it);
    } else {
        assert_true(d->n_items < 256);
        d->items[d->n_items++] = it;
    }
}

static void on_end(void *arg)
{
    ((drv *)arg)->ended = 1;
}

static void on_note(void *arg, const char *msg)
{
    drv *d = arg;
    size_t len = strlen(d->notes);
    snprintf(d->notes + len, sizeof d->notes - len, "%s\n", msg);
}

static void on_closed(void *arg)
{
    ((drv *)arg)->closed = 1;
}

static void tick_cb(uv_timer_t *t)
{
    (void)t; /* only wakes the loop so run_until can look at its clock */
}

static void drv_open(drv *d, const char *url, const char *consumer, long lease_ms, int max_deliv,
                     int drain)
{
    memset(d, 0, sizeof *d);
    assert_int_equal(uv_loop_init(&d->loop), 0);
    uv_timer_init(&d->loop, &d->tick);
    d->ops = &q_redis;
    q_opts o = {.url = url,
                .group = "cascade",
                .consumer = consumer,
                .lease_ms = lease_ms,
                .max_deliveries = max_deliv,
                .drain = drain,
                .line_cap = 1 << 20};
    q_callbacks cb = {on_item, on_end, on_note, d};
    char err[256];
    assert_int_equal(q_redis.open(&d->loop, &o, &cb, &d->q, err, sizeof err), 0);
}

typedef int (*pred_fn)(drv *d, void *arg);

/* Runs the loop until pred is true or timeout_ms passes; returns pred's last value. */
static int run_until(drv *d, pred_fn pred, void *arg, long timeout_ms)
{
    uint64_t end = wk_now_ms() + (uint64_t)timeout_ms;
    uv_timer_start(&d->tick, tick_cb, 10, 10);
    int ok;
    while (!(ok = pred(d, arg)) && wk_now_ms() < end)
        uv_run(&d->loop, UV_RUN_ONCE);
    uv_timer_stop(&d->tick);
    return ok;
}

static int p_received(drv *d, void *arg)
{
    return d->received >= *(int *)arg;
}
static int p_ended(drv *d, void *arg)
{
    (void)arg;
    return d->ended;
}
static int p_closed(drv *d, void *arg)
{
    (void)arg;
    return d->closed;
}
static int p_never(drv *d, void *arg)
{
    (void)d;
    (void)arg;
    return 0;
}

typedef struct want_len {
    int port;
    const char *key;
    long long n;
} want_len;

static int p_xlen(drv *d, void *arg)
{
    (void)d;
    want_len *w = arg;
    return xlen(w->port, w->key) >= w->n;
}

/* Closes the queue, frees what the test still holds, and checks nothing is left open. */
static void drv_close(drv *d)
{
    for (int i = 0; i < d->n_items; i++)
        test_item_free(d->items[i]);
    d->n_items = 0;
    d->ops->close(d->q, on_closed, d);
    assert_true(run_until(d, p_closed, NULL, 6000));
    uv_close((uv_handle_t *)&d->tick, NULL);
    uv_run(&d->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&d->loop), 0);
}

/* ---- tests ------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    return h_setup();
}

static int kill_servers(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof servers / sizeof servers[0]; i++)
        if (servers[i] > 0) {
            kill(servers[i], SIGKILL);
            waitpid(servers[i], NULL, 0);
            servers[i] = 0;
        }
    return 0;
}

static int group_teardown(void **state)
{
    kill_servers(state);
    h_teardown();
    return 0;
}

static void test_url_forms_parse_and_bad_ones_name_the_url(void **state)
{
    (void)state;
    q_redis_url u;
    char err[256];
    assert_int_equal(q_redis_url_parse("redis://h:7000/jobs", &u, err, sizeof err), 0);
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 7000);
    assert_string_equal(u.stream, "jobs");
    q_redis_url_release(&u);
    assert_int_equal(q_redis_url_parse("redis://h", &u, err, sizeof err), 0);
    assert_int_equal(u.port, 6379);
    assert_string_equal(u.stream, Q_REDIS_DEFAULT_STREAM);
    q_redis_url_release(&u);
    const char *bad[] = {"http://h/s", "redis://:1/s", "redis://h:0/s", "redis://h:x/s",
                         "redis://h:1/a/b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(q_redis_url_parse(bad[i], &u, err, sizeof err), WK_EINVAL);
        assert_non_null(strstr(err, bad[i]));
        q_redis_url_release(&u);
    }
    assert_true(q_redis.accepts("redis://x/y"));
    assert_false(q_redis.accepts("tasks.jsonl"));
}

static void test_acked_tasks_reach_results_and_nothing_stays_pending(void **state)
{
    (void)state;
    srv s = {0};
    srv_start(&s, 0);
    srv_url(&s, "jobs");
    enqueue(s.port, "jobs", 150); /* before any worker: the group starts at 0, not $ */
    drv d;
    drv_open(&d, s.url, "w1", 5000, 5, 1);
    d.auto_ack = 1;
    d.ops->pull(d.q, 150);
    assert_true(run_until(&d, p_ended, NULL, 10000));
    assert_int_equal(d.received, 150);
    assert_int_equal(d.max_deliveries_seen, 1);
    drv_close(&d);
    assert_int_equal(xlen(s.port, "jobs:results"), 150);
    assert_int_equal(pending(s.port, "jobs"), 0);
    srv_stop(&s);
}

static void test_items_come_only_as_pulled(void **state)
{
    (void)state;
    srv s = {0};
    srv_start(&s, 0);
    srv_url(&s, "jobs");
    enqueue(s.port, "jobs", 10);
    drv d;
    drv_open(&d, s.url, "w1", 5000, 5, 0);
    d.ops->pull(d.q, 3);
    int three = 3;
    assert_true(run_until(&d, p_received, &three, 5000));
    run_until(&d, p_never, NULL, 300); /* nothing more may come in this time */
    assert_int_equal(d.received, 3);
    d.ops->pull(d.q, 7);
    int ten = 10;
    assert_true(run_until(&d, p_received, &ten, 5000));
    drv_close(&d);
    srv_stop(&s);
}

static void test_own_pending_entries_come_first_after_a_restart(void **state)
{
    (void)state;
    srv s = {0};
    srv_start(&s, 0);
    srv_url(&s, "jobs");
    enqueue(s.port, "jobs", 4);
    drv d;
    drv_open(&d, s.url, "w1", 60000, 5, 0);
    d.ops->pull(d.q, 4);
    int four = 4;
    assert_true(run_until(&d, p_received, &four, 5000));
    drv_close(&d); /* no acks: all four stay pending on w1 */
    assert_int_equal(pending(s.port, "jobs"), 4);

    drv_open(&d, s.url, "w1", 60000, 5, 1); /* the same consumer, e.g. a restarted worker */
    d.auto_ack = 1;
    d.ops->pull(d.q, 10);
    assert_true(run_until(&d, p_ended, NULL, 10000));
    assert_int_equal(d.received, 4);
    assert_int_equal(d.max_deliveries_seen, 2);
    drv_close(&d);
    assert_int_equal(xlen(s.port, "jobs:results"), 4);
    assert_int_equal(pending(s.port, "jobs"), 0);
    srv_stop(&s);
}

static void test_a_dead_consumers_tasks_are_claimed_after_the_lease(void **state)
{
    (void)state;
    srv s = {0};
    srv_start(&s, 0);
    srv_url(&s, "jobs");
    enqueue(s.port, "jobs", 5);
    drv a;
    drv_open(&a, s.url, "a", 400, 5, 0);
    a.ops->pull(a.q, 5);
    int five = 5;
    assert_true(run_until(&a, p_received, &five, 5000));
    drv_close(&a); /* a "dies" holding all five */

    drv b;
    drv_open(&b, s.url, "b", 400, 5, 1);
    b.auto_ack = 1;
    b.ops->pull(b.q, 10);
    uint64_t t0 = wk_now_ms();
    assert_true(run_until(&b, p_ended, NULL, 10000));
    uint64_t took = wk_now_ms() - t0;
    assert_int_equal(b.received, 5);
    assert_int_equal(b.max_deliveries_seen, 2);
    print_message("reclaim after a 400 ms lease took %llu ms\n", (unsigned long long)took);
    assert_true(took >= 300 && took < 5000);
    drv_close(&b);
    assert_int_equal(xlen(s.port, "jobs:results"), 5);
    assert_int_equal(pending(s.port, "jobs"), 0);
    srv_stop(&s);
}

static void test_a_held_task_is_not_taken_over_while_its_worker_lives(void **state)
{
    (void)state;
    srv s = {0};
    srv_start(&s, 0);
    srv_url(&s, "jobs");
    enqueue(s.port, "jobs", 1);
    drv a;
    drv_open(&a, s.url, "a", 300, 5, 0);
    a.ops->pull(a.q, 1);
    int one = 1;
    assert_true(run_until(&a, p_received, &one, 5000));
    /* a holds the task for 5 leases; the refresh keeps it idle less than one. */
    run_until(&a, p_never, NULL, 1500);
    redisContext *c = sync_connect(s.port);
    redisReply *r = redisCommand(c, "XAUTOCLAIM jobs cascade other 300 0-0 COUNT 10");
    assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements >= 2);
    assert_int_equal(r->element[1]->elements, 0);
    freeReplyObject(r);
    redisFree(c);
    ack_item(&a, a.items[0]);
    a.n_items = 0;
    want_len w = {s.port, "jobs:results", 1};
    assert_true(run_until(&a, p_xlen, &w, 5000));
    drv_close(&a);
    assert_int_equal(pending(s.port, "jobs"), 0);
    srv_stop(&s);
}

static void test_a_task_past_the_delivery_limit_goes_to_dead_with_its_last_failure(void **state)
{
    (void)state;
    srv s = {0};
    srv_start(&s, 0);
    srv_url(&s, "jobs");
    enqueue(s.port, "jobs", 1);
    drv d;
    drv_open(&d, s.url, "w1", 200, 2, 1);
    d.nack_why = "tests: the validator process crashed (SIGSEGV)";
    d.ops->pull(d.q, 10);
    assert_true(run_until(&d, p_ended, NULL, 10000));
    assert_int_equal(d.received, 2); /* delivered twice, then given up */
    drv_close(&d);
    assert_int_equal(xlen(s.port, "jobs:dead"), 1);
    assert_int_equal(xlen(s.port, "jobs:results"), 0);
    assert_int_equal(pending(s.port, "jobs"), 0);
    assert_int_equal(cmd_int(s.port, "EXISTS %s", "jobs:failures", NULL), 0);
    redisContext *c = sync_connect(s.port);
    redisReply *r = redisCommand(c, "XRANGE jobs:dead - +");
    assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1);
    const redisReply *f = r->element[0]->element[1];
    char all[1024] = "";
    for (size_t i = 0; i < f->elements; i++) {
        strncat(all, f->element[i]->str, sizeof all - strlen(all) - 2);
        strcat(all, "|");
    }
    print_message("dead letter: %s\n", all);
    assert_non_null(strstr(all, "|reason|delivery limit: delivered 2 times (limit 2)|"));
    assert_non_null(strstr(all, "|last_failure|tests: the validator process crashed (SIGSEGV)|"));
    assert_non_null(strstr(all, "task|{\"id\":\"t0\""));
    freeReplyObject(r);
    redisFree(c);
    assert_non_null(strstr(d.notes, "goes to jobs:dead"));
    srv_stop(&s);
}

static void test_acks_complete_after_redis_restarts_and_nothing_is_lost(void **state)
{
    (void)state;
    srv s = {0};
    srv_start(&s, 1);
    srv_url(&s, "jobs");
    enqueue(s.port, "jobs", 40);
    drv d;
    drv_open(&d, s.url, "w1", 60000, 5, 0);
    d.ops->pull(d.q, 40);
    int forty = 40;
    assert_true(run_until(&d, p_received, &forty, 5000));
    for (int i = 0; i < 20; i++)
        ack_item(&d, d.items[i]);
    want_len w = {s.port, "jobs:results", 20};
    assert_true(run_until(&d, p_xlen, &w, 5000));

    /* Ten acks go into hiredis's buffer, then Redis stops before they get a reply. */
    for (int i = 20; i < 30; i++)
        ack_item(&d, d.items[i]);
    srv_stop(&s); /* SIGTERM: the append-only file keeps the group and its pending list */
    run_until(&d, p_never, NULL, 300);
    for (int i = 30; i < 40; i++)
        ack_item(&d, d.items[i]); /* queued while Redis is away */
    d.n_items = 0;
    run_until(&d, p_never, NULL, 300);
    srv_start(&s, 1);
    w.n = 40;
    int ok = run_until(&d, p_xlen, &w, 10000);
    print_message("notes:\n%s", d.notes);
    assert_true(ok);
    for (int i = 0; i < 100 && pending(s.port, "jobs") != 0; i++)
        run_until(&d, p_never, NULL, 50);
    assert_int_equal(pending(s.port, "jobs"), 0);
    /* Reading our pending list again after the reconnect hands nothing out twice. */
    run_until(&d, p_never, NULL, 300);
    assert_int_equal(d.received, 40);
    drv_close(&d);
    const char *lost = strstr(d.notes, "connection lost; reconnecting");
    assert_non_null(lost);
    assert_null(strstr(lost + 1, "connection lost; reconnecting")); /* once per outage */
    assert_non_null(strstr(d.notes, "reconnected"));
    assert_int_equal(xlen(s.port, "jobs:results"), 40);
    srv_stop(&s);
}

/* Two consumers of one group on one loop, as two workers would be. */
typedef struct pool_member {
    struct pool *pool;
    q_queue *q;
    int got, ended;
} pool_member;

typedef struct pool {
    pool_member m[2];
    int seen[300]; /* results per task */
    int closed;
} pool;

static void pool_item(void *arg, q_item *it)
{
    pool_member *m = arg;
    char id[64], result[96];
    task_id(it, id, sizeof id);
    int n = atoi(id + 1);
    if (n < 0 || n >= 300)
        fail_msg("task id %s out of range", id);
    else
        m->pool->seen[n]++;
    m->got++;
    snprintf(result, sizeof result, "{\"id\":\"%s\"}", id);
    assert_int_equal(q_redis.ack(m->q, it, id, result, strlen(result)), 0);
    test_item_free(it);
    q_redis.pull(m->q, 1);
}

static void pool_end(void *arg)
{
    ((pool_member *)arg)->ended = 1;
}

static void pool_closed(void *arg)
{
    ((pool *)arg)->closed++;
}

static void test_two_consumers_share_a_stream_each_task_once(void **state)
{
    (void)state;
    srv s = {0};
    srv_start(&s, 0);
    srv_url(&s, "jobs");
    enqueue(s.port, "jobs", 300);
    uv_loop_t loop;
    uv_timer_t tick;
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_cb, 10, 10);
    pool p = {0};
    const char *names[] = {"w1", "w2"};
    for (int i = 0; i < 2; i++) {
        p.m[i].pool = &p;
        q_opts o = {.url = s.url,
                    .group = "cascade",
                    .consumer = names[i],
                    .lease_ms = 2000,
                    .max_deliveries = 5,
                    .drain = 1,
                    .line_cap = 4096};
        q_callbacks cb = {pool_item, pool_end, NULL, &p.m[i]};
        char err[256];
        assert_int_equal(q_redis.open(&loop, &o, &cb, &p.m[i].q, err, sizeof err), 0);
        q_redis.pull(p.m[i].q, 16);
    }
    uint64_t end = wk_now_ms() + 15000;
    while (!(p.m[0].ended && p.m[1].ended) && wk_now_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(p.m[0].ended && p.m[1].ended);
    print_message("w1 took %d tasks, w2 %d\n", p.m[0].got, p.m[1].got);
    assert_int_equal(p.m[0].got + p.m[1].got, 300);
    assert_true(p.m[0].got > 0 && p.m[1].got > 0);
    for (int i = 0; i < 300; i++)
        assert_int_equal(p.seen[i], 1);
    for (int i = 0; i < 2; i++)
        q_redis.close(p.m[i].q, pool_closed, &p);
    end = wk_now_ms() + 6000;
    while (p.closed < 2 && wk_now_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(p.closed, 2);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(xlen(s.port, "jobs:results"), 300);
    assert_int_equal(pending(s.port, "jobs"), 0);
    srv_stop(&s);
}

static void test_close_while_redis_is_unreachable_leaves_nothing_open(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/jobs", free_port());
    drv d;
    drv_open(&d, url, "w1", 1000, 5, 0);
    d.ops->pull(d.q, 5);
    run_until(&d, p_never, NULL, 500); /* a few connect attempts with backoff */
    assert_non_null(strstr(d.notes, "cannot reach"));
    drv_close(&d);
}

static char *run_cascade(char *const *args, const char *name, int *status)
{
    char *out = h_tmp(name);
    char *errf = wk_xasprintf("%s.err", out);
    *status = h_run(args, out, errf, 20);
    char *text = h_slurp(out);
    char *err = h_slurp(errf);
    print_message("%s stderr: %s", name, err);
    free(err);
    free(out);
    free(errf);
    return text;
}

static void test_enqueue_and_results_commands_count_invalid_lines_and_drop_duplicates(void **state)
{
    (void)state;
    srv s = {0};
    srv_start(&s, 0);
    srv_url(&s, "cli");
    char *tasks = h_write("cli-tasks.jsonl", "{\"id\":\"a\",\"prompt\":\"x\"}\n"
                                             "not json\n"
                                             "\n"
                                             "{\"id\":\"b\",\"prompt\":\"y\"}\n");
    int st;
    char *enq[] = {(char *)h_cascade_bin(), "enqueue", tasks, "--queue", s.url, NULL};
    free(run_cascade(enq, "enqueue.out", &st));
    assert_int_equal(st, 0);
    char *errtext = h_tmp("enqueue.out.err");
    char *err = h_slurp(errtext);
    assert_non_null(strstr(err, "line 2: not JSON"));
    assert_non_null(strstr(err, "added 3 tasks to cli"));
    assert_non_null(strstr(err, "(1 invalid, 0 duplicate ids"));
    free(err);
    free(errtext);
    assert_int_equal(xlen(s.port, "cli"), 3);

    /* Results as workers write them: "a" twice (a retry), two id-less lines by entry. */
    redisContext *c = sync_connect(s.port);
    const char *adds[][3] = {
        {"a", "1-1", "{\"id\":\"a\",\"n\":1}"},  {"", "1-2", "{\"id\":null,\"line\":2}"},
        {"a", "1-1", "{\"id\":\"a\",\"n\":2}"},  {"b", "1-3", "{\"id\":\"b\"}"},
        {"", "1-4", "{\"id\":null,\"line\":9}"}, {"", "1-2", "{\"id\":null,\"line\":2}"}};
    for (size_t i = 0; i < 6; i++) {
        redisReply *r = redisCommand(c, "XADD cli:results * id %s entry %s result %s", adds[i][0],
                                     adds[i][1], adds[i][2]);
        freeReplyObject(r);
    }
    redisFree(c);
    char *outf = h_tmp("results.jsonl");
    char *res[] = {(char *)h_cascade_bin(), "results", "--queue", s.url, "-o", outf, NULL};
    free(run_cascade(res, "results.out", &st));
    assert_int_equal(st, 0);
    char *text = h_slurp(outf);
    assert_string_equal(text, "{\"id\":\"a\",\"n\":1}\n{\"id\":null,\"line\":2}\n{\"id\":\"b\"}\n"
                              "{\"id\":null,\"line\":9}\n");
    free(text);
    char *bad[] = {(char *)h_cascade_bin(), "results", NULL};
    free(run_cascade(bad, "results-usage.out", &st));
    assert_int_equal(st, 2);
    free(outf);
    free(tasks);
    srv_stop(&s);
}

/* Issue 12, item 2: two tasks with one id in a stream are refused at enqueue, flagged at intake. */
static void test_duplicate_ids_are_refused_at_enqueue_and_flagged_at_intake(void **state)
{
    (void)state;
    srv s = {0};
    srv_start(&s, 0);
    srv_url(&s, "dups");
    char *tasks = h_write("dup-tasks.jsonl", "{\"id\":\"a\",\"prompt\":\"x\"}\n"
                                             "{\"id\":\"b\",\"prompt\":\"y\"}\n"
                                             "{\"id\":\"a\",\"prompt\":\"another task\"}\n"
                                             "{\"id\":\"c\",\"prompt\":\"z\"}\n");
    int st;
    char *enq[] = {(char *)h_cascade_bin(), "enqueue", tasks, "--queue", s.url, NULL};
    free(run_cascade(enq, "dup-enqueue.out", &st));
    assert_int_equal(st, 0);
    char *errtext = h_tmp("dup-enqueue.out.err");
    char *err = h_slurp(errtext);
    assert_non_null(strstr(err, "line 3: duplicate id \"a\""));
    assert_non_null(strstr(err, "added 3 tasks"));
    assert_non_null(strstr(err, "1 duplicate ids not added"));
    free(err);
    assert_int_equal(xlen(s.port, "dups"), 3);
    /* The same file again (an enqueue retried after a crash) adds nothing. */
    free(run_cascade(enq, "dup-enqueue.out", &st));
    assert_int_equal(st, 0);
    err = h_slurp(errtext);
    assert_non_null(strstr(err, "added 0 tasks"));
    assert_non_null(strstr(err, "4 duplicate ids not added"));
    free(err);
    free(errtext);
    assert_int_equal(xlen(s.port, "dups"), 3);

    /* Entries added around enqueue: the second "d" and the second "a" are flagged at intake. */
    redisContext *c = sync_connect(s.port);
    const char *more[] = {"{\"id\":\"d\",\"prompt\":\"1\"}", "{\"id\":\"d\",\"prompt\":\"2\"}",
                          "{\"id\":\"a\",\"prompt\":\"3\"}"};
    for (int i = 0; i < 3; i++) {
        redisReply *r = redisCommand(c, "XADD dups * task %s", more[i]);
        freeReplyObject(r);
    }
    redisFree(c);
    drv d;
    drv_open(&d, s.url, "w1", 5000, 5, 1);
    d.ops->pull(d.q, 10);
    int want = 6;
    assert_true(run_until(&d, p_received, &want, 10000));
    int flagged = 0;
    for (int i = 0; i < d.n_items; i++) {
        char id[64];
        task_id(d.items[i], id, sizeof id);
        if (d.items[i]->dup_of) {
            flagged++;
            assert_true(strcmp(id, "a") == 0 || strcmp(id, "d") == 0);
            assert_string_not_equal(d.items[i]->dup_of, d.items[i]->receipt);
        }
    }
    assert_int_equal(flagged, 2);
    /* A redelivery of an entry is the same task, not a duplicate: nack all, take them again. */
    for (int i = 0; i < d.n_items; i++) {
        d.ops->nack(d.q, d.items[i], "test");
        test_item_free(d.items[i]);
    }
    d.n_items = 0;
    drv_close(&d);
    drv d2;
    drv_open(&d2, s.url, "w1", 5000, 5, 1);
    d2.ops->pull(d2.q, 10);
    flagged = 0;
    /* Redelivered entries come one at a time (each may be what killed a worker). */
    for (int round = 0; round < 6; round++) {
        int next = d2.received + 1;
        assert_true(run_until(&d2, p_received, &next, 10000));
        for (int i = 0; i < d2.n_items; i++) {
            flagged += d2.items[i]->dup_of != NULL;
            ack_item(&d2, d2.items[i]);
        }
        d2.n_items = 0;
    }
    assert_int_equal(d2.received, 6);
    assert_int_equal(flagged, 2);
    drv_close(&d2);
    free(tasks);
    srv_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_url_forms_parse_and_bad_ones_name_the_url, kill_servers),
        cmocka_unit_test_teardown(test_acked_tasks_reach_results_and_nothing_stays_pending,
                                  kill_servers),
        cmocka_unit_test_teardown(test_items_come_only_as_pulled, kill_servers),
        cmocka_unit_test_teardown(test_own_pending_entries_come_first_after_a_restart,
                                  kill_servers),
        cmocka_unit_test_teardown(test_a_dead_consumers_tasks_are_claimed_after_the_lease,
                                  kill_servers),
        cmocka_unit_test_teardown(test_a_held_task_is_not_taken_over_while_its_worker_lives,
                                  kill_servers),
        cmocka_unit_test_teardown(
            test_a_task_past_the_delivery_limit_goes_to_dead_with_its_last_failure, kill_servers),
        cmocka_unit_test_teardown(test_acks_complete_after_redis_restarts_and_nothing_is_lost,
                                  kill_servers),
        cmocka_unit_test_teardown(test_two_consumers_share_a_stream_each_task_once, kill_servers),
        cmocka_unit_test_teardown(test_close_while_redis_is_unreachable_leaves_nothing_open,
                                  kill_servers),
        cmocka_unit_test_teardown(
            test_enqueue_and_results_commands_count_invalid_lines_and_drop_duplicates,
            kill_servers),
        cmocka_unit_test_teardown(test_duplicate_ids_are_refused_at_enqueue_and_flagged_at_intake,
                                  kill_servers),
    };
    return cmocka_run_group_tests_name("redis", tests, group_setup, group_teardown);
}
