/*
 * Many workers, one Redis Stream: the real binary, the real mock and a
 * redis-server the test starts on a free loopback port. Each task gets
 * exactly one result; a worker killed with SIGKILL leaves its tasks to be
 * claimed after the lease; a Redis restart loses nothing; a task that kills
 * every worker that takes it ends in STREAM:dead while the rest flow.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "lib/util.h"

static char *models, *cdir, *tasks, *recs, *rdir;
static pid_t redis_pid;
static int redis_port;
static char url[128];
static h_mock mock;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof a;
    bind(fd, (struct sockaddr *)&a, sizeof a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    close(fd);
    return ntohs(a.sin_port);
}

static redisContext *rc_connect(void)
{
    struct timeval tv = {1, 0};
    for (int i = 0; i < 100; i++) {
        redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            freeReplyObject(r);
            if (ok)
                return c;
        }
        if (c)
            redisFree(c);
        h_sleep_ms(50);
    }
    fail_msg("redis-server on port %d does not answer", redis_port);
    return NULL;
}

static void redis_start(int appendonly)
{
    char port[16];
    snprintf(port, sizeof port, "%d", redis_port);
    char *argv[] = {"/usr/bin/redis-server",
                    "--port",
                    port,
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    appendonly ? "yes" : "no",
                    "--dir",
                    rdir,
                    NULL};
    redis_pid = h_spawn(argv, NULL, NULL);
    redisFree(rc_connect());
}

static void redis_stop(void)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGTERM); /* appendonly: the AOF is flushed on SIGTERM */
        if (h_wait(redis_pid, 10000) < 0) {
            kill(redis_pid, SIGKILL);
            waitpid(redis_pid, NULL, 0);
        }
        redis_pid = 0;
    }
}

static long long rcount(const char *fmt, const char *arg)
{
    redisContext *c = rc_connect();
    redisReply *r = redisCommand(c, fmt, arg);
    long long n = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    redisFree(c);
    return n;
}

static int group_setup(void **state)
{
    (void)state;
    if (h_setup())
        return -1;
    rdir = h_tmp("redis");
    char *cmd = wk_xasprintf("mkdir -p '%s' '%s/cascades'", rdir, rdir);
    if (system(cmd) != 0)
        return -1;
    free(cmd);
    models = h_write("models.json",
                     "{\"providers\":{\"mock\":{\"api\":\"openai\",\"base_url\":"
                     "\"${MOCK_URL}/v1\",\"key_env\":null}},\"models\":{\"m\":{\"provider\":"
                     "\"mock\",\"input_usd_per_mtok\":1,\"output_usd_per_mtok\":2,"
                     "\"max_tokens\":100}}}");
    cdir = h_tmp("redis/cascades");
    free(h_write("redis/cascades/c.json", "{\"name\":\"c\",\"validators\":[\"schema\"],"
                                          "\"tiers\":[{\"model\":\"m\"}]}"));
    wk_buf t, r;
    wk_buf_init(&t, 16u << 20);
    wk_buf_init(&r, 16u << 20);
    for (int i = 0; i < 1000; i++) {
        wk_buf_appendf(&t,
                       "{\"id\":\"w-%d\",\"kind\":\"classify\",\"prompt\":\"t%d\",\"schema\":"
                       "{\"type\":\"object\",\"required\":[\"label\"]}}\n",
                       i, i);
        wk_buf_appendf(&r,
                       "{\"task\":\"w-%d\",\"model\":\"m\",\"run\":1,\"answer\":"
                       "\"{\\\"label\\\": \\\"bug\\\"}\",\"usage\":{\"prompt_tokens\":10,"
                       "\"completion_tokens\":3}}\n",
                       i);
    }
    tasks = h_write("w-tasks.jsonl", t.buf);
    recs = h_write("w-recs.jsonl", r.buf);
    wk_buf_release(&t);
    wk_buf_release(&r);
    const char *margs[] = {"--latency", "20", NULL};
    h_mock_start(&mock, recs, NULL, margs);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    redis_stop();
    h_mock_stop(&mock);
    h_teardown();
    free(models);
    free(cdir);
    free(tasks);
    free(recs);
    free(rdir);
    return 0;
}

static void fresh_redis(const char *stream, int appendonly)
{
    redis_stop();
    char *cmd = wk_xasprintf("rm -rf '%s'/appendonlydir '%s'/*.rdb", rdir, rdir);
    if (system(cmd) != 0)
        fail_msg("cannot clean %s", rdir);
    free(cmd);
    redis_port = free_port();
    redis_start(appendonly);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/%s", redis_port, stream);
    char *argv[] = {(char *)h_cascade_bin(), "enqueue", tasks, "--queue", url, NULL};
    char *err = h_tmp("enqueue.err");
    int rc = h_run(argv, NULL, err, 60);
    if (rc != 0)
        fail_msg("cascade enqueue exited %d: %s", rc, h_slurp(err));
    free(err);
}

static pid_t worker(const char *name, const char *lease, const char *errname)
{
    char *err = h_tmp(errname);
    char *argv[] = {(char *)h_cascade_bin(),
                    "run",
                    "--queue",
                    url,
                    "--group",
                    "g",
                    "--consumer",
                    (char *)name,
                    "--cascades",
                    cdir,
                    "--models",
                    models,
                    "--lease",
                    (char *)lease,
                    "--max-deliveries",
                    "3",
                    "--drain",
                    "--concurrency",
                    "16",
                    "-q",
                    NULL};
    pid_t p = h_spawn(argv, NULL, err);
    free(err);
    return p;
}

/* Results by distinct task id (duplicates are dropped by readers, by design). */
static int distinct_results(const char *stream)
{
    char *out = h_tmp("results.jsonl");
    char *argv[] = {(char *)h_cascade_bin(), "results", "--queue", url, "-o", out, NULL};
    assert_int_equal(h_run(argv, NULL, NULL, 60), 0);
    cJSON *res = h_jsonl(out);
    int n = cJSON_GetArraySize(res);
    wk_strset ids = {0};
    const cJSON *r;
    cJSON_ArrayForEach(r, res)
    {
        if (wk_strset_add(&ids, h_str(r, "id")))
            fail_msg("%s: two results for %s", stream, h_str(r, "id"));
    }
    wk_strset_release(&ids);
    cJSON_Delete(res);
    free(out);
    return n;
}

/*
 * A worker's exit status; one that has not ended within 120 s is killed and the
 * test fails with the end of its stderr, so a hang says where it hung.
 */
static void worker_ends(pid_t p, const char *errname)
{
    int st = h_wait(p, 120000);
    if (st == 0)
        return;
    if (st < 0) {
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
    }
    char *path = h_tmp(errname);
    char *err = h_slurp(path);
    size_t n = err ? strlen(err) : 0;
    fail_msg("worker (%s) %s %d; the end of its stderr:\n%s", errname,
             st < 0 ? "still running after 120 s" : "exited", st,
             err ? err + (n > 4000 ? n - 4000 : 0) : "(none)");
    free(err);
    free(path);
}

static void test_two_workers_share_1000_tasks_each_exactly_once(void **state)
{
    (void)state;
    fresh_redis("s1", 0);
    pid_t a = worker("a", "30", "a.err"), b = worker("b", "30", "b.err");
    worker_ends(a, "a.err");
    worker_ends(b, "b.err");
    assert_int_equal(distinct_results("s1"), 1000);
    /* Exactly once: no duplicate entries either, and nothing left pending. */
    assert_int_equal(rcount("XLEN %s", "s1:results"), 1000);
}

static void test_killed_worker_tasks_are_reclaimed_after_the_lease(void **state)
{
    (void)state;
    fresh_redis("s2", 0);
    pid_t a = worker("a", "1", "a2.err"), b = worker("b", "1", "b2.err");
    h_sleep_ms(400);
    kill(a, SIGKILL);
    uint64_t t0 = wk_now_ms();
    waitpid(a, NULL, 0);
    worker_ends(b, "b2.err");
    uint64_t took = wk_now_ms() - t0;
    assert_int_equal(distinct_results("s2"), 1000);
    assert_true(rcount("XLEN %s", "s2:results") >= 1000);
    fprintf(stderr,
            "  worker a killed mid-run; b finished all 1000 (a's included) %llu ms "
            "after the kill, lease 1 s\n",
            (unsigned long long)took);
}

/*
 * Waits (at most 60 s) until both workers have read from the group and some
 * results are in, so a restart after it falls mid-run: a fixed sleep was too
 * short on a loaded machine (a worker still starting never saw the outage).
 */
static void both_workers_reading(const char *stream)
{
    for (int i = 0; i < 3000; i++) {
        redisContext *c = rc_connect();
        redisReply *r = redisCommand(c, "XINFO CONSUMERS %s g", stream);
        int consumers = r && r->type == REDIS_REPLY_ARRAY ? (int)r->elements : 0;
        freeReplyObject(r);
        redisFree(c);
        char *res = wk_xasprintf("%s:results", stream);
        long long done = rcount("XLEN %s", res);
        free(res);
        if (consumers >= 2 && done >= 20)
            return;
        h_sleep_ms(20);
    }
    fail_msg("%s: the two workers were not both reading within 60 s", stream);
}

static void test_redis_restart_mid_run_loses_nothing(void **state)
{
    (void)state;
    fresh_redis("s3", 1);
    pid_t a = worker("a", "5", "a3.err"), b = worker("b", "5", "b3.err");
    both_workers_reading("s3");
    redis_stop();
    h_sleep_ms(500);
    redis_start(1);
    worker_ends(a, "a3.err");
    worker_ends(b, "b3.err");
    assert_int_equal(distinct_results("s3"), 1000);
    char *ea = h_tmp("a3.err");
    char *err = h_slurp(ea);
    assert_non_null(strstr(err, "reconnect"));
    free(err);
    free(ea);
}

static void test_poison_task_goes_to_dead_while_the_rest_flow(void **state)
{
    (void)state;
    fresh_redis("s4", 0);
    setenv("CASCADE_FAULT_ABORT_ON_TASK", "w-500", 1);
    /* A supervisor in miniature: restart whichever worker dies, a bounded number of times. */
    pid_t w[2] = {worker("a", "1", "a4.err"), worker("b", "1", "b4.err")};
    int restarts = 0, done = 0;
    for (int round = 0; round < 600 && done < 2; round++) {
        for (int i = 0; i < 2; i++) {
            if (w[i] <= 0)
                continue;
            int st = h_wait(w[i], 0);
            if (st < 0)
                continue;
            if (st == 0) {
                w[i] = 0;
                done++;
            } else if (restarts < 10) {
                restarts++;
                w[i] = worker(i ? "b" : "a", "1", i ? "b4.err" : "a4.err");
            } else {
                fail_msg("worker exited %d after %d restarts", st, restarts);
            }
        }
        h_sleep_ms(100);
    }
    unsetenv("CASCADE_FAULT_ABORT_ON_TASK");
    assert_int_equal(done, 2);
    assert_int_equal(distinct_results("s4"), 999);
    assert_int_equal(rcount("XLEN %s", "s4:dead"), 1);
    fprintf(stderr, "  poison task: %d worker crashes, then STREAM:dead; 999 others done\n",
            restarts);
    assert_true(restarts >= 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_workers_share_1000_tasks_each_exactly_once),
        cmocka_unit_test(test_killed_worker_tasks_are_reclaimed_after_the_lease),
        cmocka_unit_test(test_redis_restart_mid_run_loses_nothing),
        cmocka_unit_test(test_poison_task_goes_to_dead_while_the_rest_flow),
    };
    return cmocka_run_group_tests_name("workers", tests, group_setup, group_teardown);
}
