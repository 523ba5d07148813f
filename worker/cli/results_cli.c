/*
 * `cascade results`: reads STREAM:results from its start and writes the
 * result lines as JSONL, one per task. A worker that lost the reply to its
 * result-and-ack (Redis went away at that moment) writes the result again
 * after reconnecting, and a task taken over from a worker presumed dead can
 * be finished twice; so the first result per task id is kept and later ones
 * dropped. Results of lines without an id are told apart by the stream entry
 * of their task instead.
 */
#include <getopt.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "lib/util.h"
#include "worker/queues/redis.h"

#define RES_BATCH "500"         /* entries per XREAD: bounds one reply's size */
#define RES_FOLLOW_BLOCK "2000" /* --follow: XREAD BLOCK, ms */
#define RES_KEY_CAP 4096        /* a task id longer than this is compared by its first bytes */

static const char usage_results[] =
    "usage: cascade results --queue redis://HOST[:PORT][/STREAM] [-o FILE] [--follow]\n"
    "\n"
    "Writes the results that workers (`cascade run --queue`) put on STREAM:results,\n"
    "one JSON line per task, in the order they were finished. A task whose result\n"
    "was written twice (a retry after a lost connection, or a task taken over\n"
    "from a worker presumed dead) appears once: the first result is kept.\n"
    "\n"
    "options:\n"
    "  --queue URL     the task stream (STREAM defaults to " Q_REDIS_DEFAULT_STREAM ")\n"
    "  -o, --output F  write here instead of stdout\n"
    "  -f, --follow    keep waiting for new results (until interrupted)\n"
    "  -q, --quiet     no summary on stderr\n"
    "  -h, --help      this text\n";

static const redisReply *res_field(const redisReply *fields, const char *name)
{
    if (!fields || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    return NULL;
}

int wk_cmd_results(int argc, char **argv)
{
    static const struct option opts[] = {
        {"queue", required_argument, NULL, 'Q'}, {"output", required_argument, NULL, 'o'},
        {"follow", no_argument, NULL, 'f'},      {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *url = NULL, *outpath = NULL;
    int follow = 0, quiet = 0, c, code = WK_EXIT_FAIL;
    long written = 0, dropped = 0, malformed = 0;
    char err[512], cursor[64] = "0";
    q_redis_url u = {0};
    wk_strset seen = {0};
    redisContext *rc = NULL;
    redisReply *r = NULL;
    FILE *out = stdout;
    char *key = NULL;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:fqh", opts, NULL)) != -1) {
        switch (c) {
        case 'Q':
            url = optarg;
            break;
        case 'o':
            outpath = optarg;
            break;
        case 'f':
            follow = 1;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(usage_results, stdout);
            code = 0;
            goto cleanup;
        default:
            fputs(usage_results, stderr);
            code = WK_EXIT_USAGE;
            goto cleanup;
        }
    }
    if (optind != argc || !url) {
        fprintf(stderr, "cascade results: %s\n\n%s",
                !url ? "--queue is required" : "unexpected argument", usage_results);
        code = WK_EXIT_USAGE;
        goto cleanup;
    }
    if (q_redis_url_parse(url, &u, err, sizeof err) != 0) {
        fprintf(stderr, "cascade results: %s\n", err);
        code = WK_EXIT_USAGE;
        goto cleanup;
    }
    if (outpath && strcmp(outpath, "-") != 0 && !(out = fopen(outpath, "w"))) {
        fprintf(stderr, "cascade results: %s: %m\n", outpath);
        out = stdout;
        goto cleanup;
    }
    struct timeval tv = {5, 0};
    rc = redisConnectWithTimeout(u.host, u.port, tv);
    if (!rc || rc->err) {
        fprintf(stderr, "cascade results: %s: %s\n", url, rc ? rc->errstr : "out of memory");
        goto cleanup;
    }
    tv.tv_sec = 30; /* longer than the follow BLOCK: a late reply means Redis is stuck */
    redisSetTimeout(rc, tv);
    key = wk_xasprintf("%s:results", u.stream);
    for (;;) {
        const char *xargv[] = {"XREAD",          "COUNT",   RES_BATCH, "BLOCK",
                               RES_FOLLOW_BLOCK, "STREAMS", key,       cursor};
        /* Without --follow, no BLOCK: a nil reply is the end of the stream. */
        if (follow)
            r = redisCommandArgv(rc, 8, xargv, NULL);
        else {
            const char *plain[] = {"XREAD", "COUNT", RES_BATCH, "STREAMS", key, cursor};
            r = redisCommandArgv(rc, 6, plain, NULL);
        }
        if (!r) {
            fprintf(stderr, "cascade results: %s: %s\n", url, rc->errstr);
            goto cleanup;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "cascade results: %s: XREAD: %s\n", url, r->str);
            goto cleanup;
        }
        /* [[key, [[id, [f, v ...]] ...]]], or nil when there is nothing after the cursor. */
        size_t got = 0;
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
            r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 2 &&
            r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
            const redisReply *entries = r->element[0]->element[1];
            for (size_t i = 0; i < entries->elements; i++) {
                const redisReply *e = entries->element[i];
                if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
                    e->element[0]->type != REDIS_REPLY_STRING ||
                    e->element[0]->len >= sizeof cursor)
                    continue;
                got++;
                snprintf(cursor, sizeof cursor, "%s", e->element[0]->str);
                const redisReply *id = res_field(e->element[1], "id");
                const redisReply *entry = res_field(e->element[1], "entry");
                const redisReply *result = res_field(e->element[1], "result");
                if (!result) {
                    malformed++;
                    continue;
                }
                /* "i:" task id, or "e:" the task's entry when the line had no id. */
                char kbuf[RES_KEY_CAP + 3];
                if (id && id->len)
                    snprintf(kbuf, sizeof kbuf, "i:%s", id->str);
                else
                    snprintf(kbuf, sizeof kbuf, "e:%s", entry ? entry->str : e->element[0]->str);
                if (wk_strset_add(&seen, kbuf)) {
                    dropped++;
                    continue;
                }
                fwrite(result->str, 1, result->len, out);
                if (!result->len || result->str[result->len - 1] != '\n')
                    fputc('\n', out);
                written++;
            }
        }
        freeReplyObject(r);
        r = NULL;
        if (fflush(out) != 0 || ferror(out)) {
            fprintf(stderr, "cascade results: %s: write error\n", outpath ? outpath : "stdout");
            goto cleanup;
        }
        if (got == 0 && !follow)
            break;
    }
    if (!quiet)
        fprintf(stderr, "cascade results: %ld results from %s:results (%ld duplicates dropped%s)\n",
                written, u.stream, dropped, malformed ? ", some entries had no result" : "");
    code = 0;
cleanup:
    if (r)
        freeReplyObject(r);
    if (rc)
        redisFree(rc);
    if (out != stdout && fclose(out) != 0 && code == 0) {
        fprintf(stderr, "cascade results: %s: write error\n", outpath);
        code = WK_EXIT_FAIL;
    }
    free(key);
    wk_strset_release(&seen);
    q_redis_url_release(&u);
    return code;
}
