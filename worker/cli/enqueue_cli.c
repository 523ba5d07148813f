/*
 * `cascade enqueue`: pushes task lines onto a Redis stream (XADD, field
 * `task`) for workers running `cascade run --queue`. Lines that are not valid
 * tasks are pushed as well, so each gets its invalid_task result from a
 * worker like any other line; they are counted here so a typo is seen at
 * once. A short blocking client is right for a one-shot command; the worker's
 * side is asynchronous (worker/queues/redis.c).
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lib/util.h"
#include "worker/queues/redis.h"

#define ENQ_LINE_CAP (16u << 20) /* as `run`: a longer line is cut and becomes invalid_task */
#define ENQ_BATCH 256            /* XADDs in flight before their replies are read */
#define ENQ_SHOW_INVALID 5       /* invalid lines named on stderr */

static const char usage_enqueue[] =
    "usage: cascade enqueue TASKS.jsonl|- --queue redis://HOST[:PORT][/STREAM]\n"
    "\n"
    "Adds each task line to the stream (XADD STREAM * task LINE) for workers run\n"
    "with `cascade run --queue`. Blank lines are skipped. Lines that are not valid\n"
    "tasks (not JSON, no string id or prompt) are added too, and the workers give\n"
    "them invalid_task results; they are counted and the first few named here.\n"
    "A line longer than 16 MiB is cut, and so becomes an invalid task.\n"
    "\n"
    "options:\n"
    "  --queue URL     the stream (STREAM defaults to " Q_REDIS_DEFAULT_STREAM ")\n"
    "  -q, --quiet     no summary on stderr\n"
    "  -h, --help      this text\n";

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

/*
 * Reads one line (without its newline) into b, keeping at most cap bytes and
 * skipping the rest of a longer one. Returns 1 for a line, 0 at end of input.
 */
static int enq_read_line(FILE *f, wk_buf *b, int *cut)
{
    char chunk[65536];
    int any = 0;
    wk_buf_reset(b);
    *cut = 0;
    while (fgets(chunk, sizeof chunk, f)) {
        size_t n = strlen(chunk);
        int eol = n && chunk[n - 1] == '\n';
        any = 1;
        if (eol)
            n--;
        if (!*cut && wk_buf_append(b, chunk, n) != 0) {
            /* Keep what fits up to the cap, so the worker still sees an over-long line. */
            size_t room = b->cap - b->len;
            wk_buf_append(b, chunk, room);
            *cut = 1;
        }
        if (eol)
            break;
    }
    return any;
}

static int enq_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/* Reads the replies of `n` pipelined XADDs. Returns 0, or WK_EIO with err set. */
static int enq_replies(redisContext *c, int n, char *err, size_t errlen)
{
    int rc = 0;
    for (int i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK) {
            snprintf(err, errlen, "%s", c->errstr);
            return WK_EIO;
        }
        if (r->type == REDIS_REPLY_ERROR && rc == 0) {
            snprintf(err, errlen, "XADD: %s", r->str);
            rc = WK_EIO;
        }
        freeReplyObject(r);
    }
    return rc;
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
    int quiet = 0, c, code = WK_EXIT_FAIL, inflight = 0, cut;
    long lineno = 0, added = 0, invalid = 0;
    char err[512] = "";
    q_redis_url u = {0};
    redisContext *rc = NULL;
    FILE *in = NULL;
    wk_buf line;
    /* One byte over the cap, so a cut line is still over the worker's cap: too big, not bad JSON.
     */
    wk_buf_init(&line, ENQ_LINE_CAP + 1);
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
    while (enq_read_line(in, &line, &cut)) {
        lineno++;
        const char *text = line.buf ? line.buf : "";
        if (enq_blank(text, line.len))
            continue;
        const char *why = enq_invalid(text, line.len, cut);
        if (why) {
            if (invalid < ENQ_SHOW_INVALID && !quiet)
                fprintf(stderr, "cascade enqueue: %s line %ld: %s (added; a worker reports it)\n",
                        path, lineno, why);
            invalid++;
        }
        const char *xargv[] = {"XADD", u.stream, "*", "task", text};
        size_t xlens[] = {4, strlen(u.stream), 1, 4, line.len};
        redisAppendCommandArgv(rc, 5, xargv, xlens);
        added++;
        if (++inflight == ENQ_BATCH) {
            if (enq_replies(rc, inflight, err, sizeof err) != 0)
                goto fail;
            inflight = 0;
        }
    }
    if (ferror(in)) {
        fprintf(stderr, "cascade enqueue: %s: read error\n", path);
        goto cleanup;
    }
    if (inflight && enq_replies(rc, inflight, err, sizeof err) != 0)
        goto fail;
    if (!quiet)
        fprintf(stderr, "cascade enqueue: added %ld tasks to %s on %s:%d (%ld invalid)\n", added,
                u.stream, u.host, u.port, invalid);
    code = 0;
    goto cleanup;
fail:
    fprintf(stderr, "cascade enqueue: %s: %s (about %ld lines were added)\n", url, err,
            added - inflight);
cleanup:
    if (in && in != stdin)
        fclose(in);
    if (rc)
        redisFree(rc);
    q_redis_url_release(&u);
    wk_buf_release(&line);
    return code;
}
