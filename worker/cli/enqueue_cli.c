/*
 * `cascade enqueue`: pushes task lines onto a Redis stream (XADD, field
 * `task`) for workers running `cascade run --queue`. Lines that are not valid
 * tasks are pushed as well, so each gets its invalid_task result from a
 * worker like any other line; they are counted here so a typo is seen at
 * once. A task whose id an entry of the stream has already is not added
 * (S:ids maps each id to its entry; the worker checks the same map at
 * intake), so enqueueing a file twice adds nothing the second time. A short
 * blocking client is right for a one-shot command; the worker's
 * side is asynchronous (worker/queues/redis.c).
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lib/jsonl.h"
#include "lib/util.h"
#include "worker/queues/redis.h"

/*
 * One byte over `run`'s cap, so a line cut here is still over the worker's
 * cap there: reported as too big, not as bad JSON.
 */
#define ENQ_LINE_CAP (WK_JSONL_LINE_CAP + 1)
#define ENQ_BATCH 256      /* XADDs in flight before their replies are read */
#define ENQ_SHOW_INVALID 5 /* invalid lines named on stderr */

static const char usage_enqueue[] =
    "usage: cascade enqueue TASKS.jsonl|- --queue redis://HOST[:PORT][/STREAM]\n"
    "\n"
    "Adds each task line to the stream (XADD STREAM * task LINE) for workers run\n"
    "with `cascade run --queue`. Blank lines are skipped. Lines that are not valid\n"
    "tasks (not JSON, no string id or prompt) are added too, and the workers give\n"
    "them invalid_task results; they are counted and the first few named here.\n"
    "A line longer than 16 MiB is cut, and so becomes an invalid task.\n"
    "A task whose id the stream has already (this file or an earlier enqueue) is\n"
    "not added, and is named here: two tasks with one id would both run and\n"
    "`cascade results` keeps one result per id. Workers check ids too.\n"
    "\n"
    "options:\n"
    "  --queue URL     the stream (STREAM defaults to " Q_REDIS_DEFAULT_STREAM ")\n"
    "  -q, --quiet     no summary on stderr\n"
    "  -h, --help      this text\n";

/*
 * XADD unless the id has an entry already (KEYS: S, S:ids; ARGV: line, id).
 * Returns the new entry id, or 0 for a duplicate.
 */
static const char enq_lua[] = "if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end\n"
                              "local e = redis.call('XADD', KEYS[1], '*', 'task', ARGV[1])\n"
                              "redis.call('HSET', KEYS[2], ARGV[2], e)\n"
                              "return e\n";

/* The task id of a line, or NULL (caller frees). */
static char *enq_id(const char *line, size_t len)
{
    cJSON *j = cJSON_ParseWithLength(line, len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    char *out = cJSON_IsString(id) && id->valuestring[0] ? wk_xstrdup(id->valuestring) : NULL;
    cJSON_Delete(j);
    return out;
}

/* Why the line is not a task, or NULL when it is one. The text is static. */
static const char *enq_invalid(const char *line, size_t len, int cut)
{
    if (cut)
        return "longer than 16 MiB";
    cJSON *j = cJSON_ParseWithLength(line, len);
    const char *why = NULL;
    if (!j)
        why = "not JSON";
    else if (!cJSON_IsObject(j))
        why = "not a JSON object";
    else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "id")) ||
             !cJSON_GetObjectItemCaseSensitive(j, "id")->valuestring[0])
        why = "no string id";
    else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "prompt")))
        why = "no string prompt";
    cJSON_Delete(j);
    return why;
}

/* What the per-line callback needs: the connection and the counts. */
typedef struct enq_ctx {
    redisContext *rc;
    const char *stream, *ids_key, *path;
    int quiet, inflight;
    long added, invalid, dups;
    int reply_failed; /* err holds Redis's message */
    char *err;
    size_t errlen;
    char *ids[ENQ_BATCH]; /* the in-flight lines' ids (NULL: plain XADD) */
    long linenos[ENQ_BATCH];
} enq_ctx;

/* Reads the replies of the pipelined commands. Returns 0, or WK_EIO with err set. */
static int enq_replies(enq_ctx *e, char *err, size_t errlen)
{
    int rc = 0;
    for (int i = 0; i < e->inflight; i++) {
        redisReply *r = NULL;
        if (rc == 0 && redisGetReply(e->rc, (void **)&r) != REDIS_OK) {
            snprintf(err, errlen, "%s", e->rc->errstr);
            rc = WK_EIO;
        }
        if (r && r->type == REDIS_REPLY_ERROR && rc == 0) {
            snprintf(err, errlen, "XADD: %s", r->str);
            rc = WK_EIO;
        } else if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            if (e->dups < ENQ_SHOW_INVALID && !e->quiet)
                fprintf(stderr,
                        "cascade enqueue: %s line %ld: duplicate id \"%s\": the stream has a "
                        "task with it already; not added\n",
                        e->path, e->linenos[i], e->ids[i] ? e->ids[i] : "");
            e->dups++;
            e->added--;
        }
        if (r)
            freeReplyObject(r);
        free(e->ids[i]);
        e->ids[i] = NULL;
    }
    return rc;
}

/* Pushes one line (a cut one too: a worker reports it as too big). */
static int enq_line(void *arg, const char *text, size_t len, int cut, long lineno)
{
    enq_ctx *e = arg;
    if (wk_jsonl_blank(text, len))
        return 0;
    const char *why = enq_invalid(text, len, cut);
    if (why) {
        if (e->invalid < ENQ_SHOW_INVALID && !e->quiet)
            fprintf(stderr, "cascade enqueue: %s line %ld: %s (added; a worker reports it)\n",
                    e->path, lineno, why);
        e->invalid++;
    }
    char *id = why ? NULL : enq_id(text, len);
    if (id) {
        const char *xargv[] = {"EVAL", enq_lua, "2", e->stream, e->ids_key, text, id};
        size_t xlens[] = {4,   strlen(enq_lua), 1, strlen(e->stream), strlen(e->ids_key),
                          len, strlen(id)};
        redisAppendCommandArgv(e->rc, 7, xargv, xlens);
    } else {
        const char *xargv[] = {"XADD", e->stream, "*", "task", text};
        size_t xlens[] = {4, strlen(e->stream), 1, 4, len};
        redisAppendCommandArgv(e->rc, 5, xargv, xlens);
    }
    e->ids[e->inflight] = id;
    e->linenos[e->inflight] = lineno;
    e->added++;
    if (++e->inflight == ENQ_BATCH) {
        if (enq_replies(e, e->err, e->errlen) != 0) {
            e->reply_failed = 1;
            return WK_EIO;
        }
        e->inflight = 0;
    }
    return 0;
}

int wk_cmd_enqueue(int argc, char **argv)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'Q'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *path;
    int quiet = 0, c, code = WK_EXIT_FAIL;
    char err[512] = "";
    q_redis_url u = {0};
    redisContext *rc = NULL;
    FILE *in = NULL;
    enq_ctx e = {.err = err, .errlen = sizeof err};
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case 'Q':
            url = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(usage_enqueue, stdout);
            code = 0;
            goto cleanup;
        default:
            fputs(usage_enqueue, stderr);
            code = WK_EXIT_USAGE;
            goto cleanup;
        }
    }
    if (optind != argc - 1 || !url) {
        fprintf(stderr, "cascade enqueue: %s\n\n%s",
                !url ? "--queue is required" : "give one tasks file (or - for stdin)",
                usage_enqueue);
        code = WK_EXIT_USAGE;
        goto cleanup;
    }
    path = argv[optind];
    e.path = path;
    e.quiet = quiet;
    if (q_redis_url_parse(url, &u, err, sizeof err) != 0) {
        fprintf(stderr, "cascade enqueue: %s\n", err);
        code = WK_EXIT_USAGE;
        goto cleanup;
    }
    in = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!in) {
        fprintf(stderr, "cascade enqueue: %s: %m\n", path);
        goto cleanup;
    }
    struct timeval tv = {5, 0};
    rc = redisConnectWithTimeout(u.host, u.port, tv);
    if (!rc || rc->err) {
        fprintf(stderr, "cascade enqueue: %s: %s\n", url, rc ? rc->errstr : "out of memory");
        goto cleanup;
    }
    tv.tv_sec = 30; /* a reply this late means Redis is stuck: fail rather than hang */
    redisSetTimeout(rc, tv);
    e.rc = rc;
    e.stream = u.stream;
    char *ids_key = wk_xasprintf("%s:ids", u.stream);
    e.ids_key = ids_key;
    if (wk_jsonl_read(in, ENQ_LINE_CAP, enq_line, &e) != 0) {
        if (e.reply_failed)
            goto fail;
        fprintf(stderr, "cascade enqueue: %s: read error\n", path);
        goto cleanup;
    }
    if (e.inflight && enq_replies(&e, err, sizeof err) != 0)
        goto fail;
    if (!quiet)
        fprintf(stderr,
                "cascade enqueue: added %ld tasks to %s on %s:%d (%ld invalid, %ld duplicate ids "
                "not added)\n",
                e.added, u.stream, u.host, u.port, e.invalid, e.dups);
    code = 0;
    goto cleanup;
fail:
    fprintf(stderr, "cascade enqueue: %s: %s (about %ld lines were added)\n", url, err,
            e.added - e.inflight);
cleanup:
    for (int i = 0; i < ENQ_BATCH; i++)
        free(e.ids[i]);
    free((char *)e.ids_key);
    if (in && in != stdin)
        fclose(in);
    if (rc)
        redisFree(rc);
    q_redis_url_release(&u);
    return code;
}
