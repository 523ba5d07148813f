/*
 * The Redis Streams queue: tasks are entries of a stream read through a
 * consumer group, results go to STREAM:results, and entries that used up
 * their deliveries go to STREAM:dead (key layout in redis.h). hiredis's async
 * API runs on the caller's libuv loop; nothing here blocks.
 *
 * Two connections. `rd` carries XREADGROUP, whose BLOCK ties its connection up
 * for up to a second; `wr` carries everything else (the result-and-ack
 * script, the janitor, dead letters), so an ack never waits behind a blocked
 * read. Each reconnects on its own, with backoff.
 *
 * The event glue is ours rather than hiredis 0.14's adapters/libuv.h: that
 * one drops a poll callback whose status is an error, and libuv reports a
 * refused connect exactly so (and stops the poll), so a reconnect to a Redis
 * that is still down would wait forever. Later hiredis releases hand such a
 * callback to hiredis as a read and write, which is what q__ev_poll does.
 *
 * An entry is "held" from the moment we read or claim it until its ack is
 * confirmed or the driver nacks it. Held entries are ours: the janitor resets
 * their idle time every lease/2 (XCLAIM ... JUSTID), so a slow task is not
 * taken over by another worker while we live, and an entry read twice (our
 * own pending list read again after a reconnect, a claim racing a read) is
 * handed to the driver only once.
 */
#include "redis.h"

#include <cjson/cJSON.h>
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/util.h"

#define Q__READ_MAX 100       /* entries per XREADGROUP or XAUTOCLAIM: bounds one reply */
#define Q__PIPE_MAX 128       /* result scripts in flight on `wr` at once */
#define Q__REFRESH_CHUNK 256  /* ids per lease-refresh XCLAIM */
#define Q__BLOCK_MS 1000      /* XREADGROUP BLOCK: short enough to notice a dead socket */
#define Q__DRAIN_BLOCK_MS 200 /* with drain, how long "nothing new" is waited for */
#define Q__BACKOFF_MIN_MS 100
#define Q__BACKOFF_MAX_MS 5000
#define Q__CONNECT_TIMEOUT_MS 5000 /* a connect that hangs (a dropped SYN) is given up */
#define Q__CLOSE_WAIT_MS 3000      /* close: how long unconfirmed results may take */
#define Q__RETRY_READ_MS 500       /* after an error reply to a read */
#define Q__WHY_CAP 512             /* a nack reason as stored in S:failures */
#define Q__ID_CAP 64               /* a stream entry id is "ms-seq": two 64-bit numbers */
#define Q__DEFAULT_LEASE_MS 60000
#define Q__DEFAULT_MAX_DELIVERIES 5
#define Q__DEFAULT_LINE_CAP (16u << 20)

/*
 * Result and ack in one script, so the XACK runs only when the XADD did (a
 * pipelined XACK would run after a failed XADD and lose the task). KEYS: S,
 * S:results, S:failures. ARGV: group, entry, task id, result.
 */
static const char q__ack_lua[] =
    "redis.call('XADD', KEYS[2], '*', 'id', ARGV[3], 'entry', ARGV[2], 'result', ARGV[4])\n"
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('HDEL', KEYS[3], ARGV[2], 'n:' .. ARGV[2])\n"
    "return 1\n";

/*
 * Dead letter: the task with why it was given up and the last failure any
 * worker recorded for it. KEYS: S, S:dead, S:failures. ARGV: group, entry,
 * task, deliveries, reason.
 */
static const char q__dead_lua[] =
    "local last = redis.call('HGET', KEYS[3], ARGV[2]) or ''\n"
    "redis.call('XADD', KEYS[2], '*', 'entry', ARGV[2], 'task', ARGV[3], 'deliveries', ARGV[4],"
    " 'reason', ARGV[5], 'last_failure', last)\n"
    "redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('HDEL', KEYS[3], ARGV[2], 'n:' .. ARGV[2])\n"
    "return 1\n";

/*
 * The owner of a task id: S:ids maps each id to the entry that has it
 * (`enqueue` sets it with the XADD). An entry whose id another entry owns is
 * a second task with the same id; the first to ask owns an id nobody set.
 * KEYS: S:ids. ARGV: task id, entry. Returns the owner.
 */
static const char q__owner_lua[] = "local o = redis.call('HGET', KEYS[1], ARGV[1])\n"
                                   "if o then return o end\n"
                                   "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
                                   "return ARGV[2]\n";

typedef struct q__conn {
    q_queue *q;
    redisAsyncContext *ac; /* NULL while down */
    int up;                /* the connect callback said yes */
    long backoff_ms;       /* the next retry's delay */
    uv_timer_t retry;
    void (*on_up)(q_queue *q);
} q__conn;

/* A result waiting for its script's reply. Kept in order; sent ones are a prefix. */
typedef struct q__ack_op {
    struct q__ack_op *next;
    char *entry;
    char *id;
    char *result;
    size_t len;
    int sent; /* on the current `wr` connection, reply not yet seen */
} q__ack_op;

/* Entries claimed by the janitor, waiting for their delivery counts. */
typedef struct q__claim {
    size_t n;
    char **entry;
    char **task; /* NULL: the entry has no task field */
    size_t *len;
} q__claim;

struct q_queue {
    uv_loop_t *loop;
    q_callbacks cb;
    char *host;
    int port;
    char *stream, *results_key, *dead_key, *failures_key, *ids_key;
    char *group, *consumer;
    long lease_ms;
    int max_deliveries;
    int drain;
    size_t line_cap;

    q__conn rd, wr;
    uv_timer_t kick;    /* deferred work: deliveries, reads, the teardown */
    uv_timer_t janitor; /* lease refresh and XAUTOCLAIM, every lease/2 */
    uv_timer_t close_wait;

    int want;    /* items asked for and not yet handed over */
    q_item **bl; /* read or claimed, waiting for `want` (FIFO) */
    size_t bl_len, bl_alloc;
    char *suspect; /* a redelivered entry now with the driver (see q__deliver) */
    char **held;   /* entry ids we own (backlog and driver) */
    size_t held_len, held_alloc;
    q__ack_op *acks, *acks_tail;
    int acks_inflight;

    int reading;      /* a read (or the drain check) is in flight on rd */
    int need_group;   /* send XGROUP CREATE before the next read */
    int history_done; /* our own pending list has been read to its end */
    char history_cursor[Q__ID_CAP];
    char **hp_id;  /* XPENDING for the history read in flight: ids ... */
    int *hp_count; /* ... and their delivery counts before the read */
    size_t hp_n;
    int claiming; /* an XAUTOCLAIM (or its XPENDING) is in flight on wr */
    char claim_cursor[Q__ID_CAP];

    int ever_up, outage, ended;
    int closing, torn_down, handles_left;
    void (*closed)(void *arg);
    void *closed_arg;
};

static void q__read_next(q_queue *q);
static void q__conn_start(q__conn *c);
static void q__maybe_closed(q_queue *q);
static void q__kick(q_queue *q, long delay_ms);

static void q__note(q_queue *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void q__note(q_queue *q, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (q->cb.on_note)
        q->cb.on_note(q->cb.arg, msg);
}

/* ---- the URL -------------------------------------------------------------- */

void q_redis_url_release(q_redis_url *u)
{
    free(u->host);
    free(u->stream);
    u->host = u->stream = NULL;
}

int q_redis_url_parse(const char *url, q_redis_url *u, char *err, size_t errlen)
{
    int rc = WK_EINVAL;
    const char *p, *slash, *colon;
    memset(u, 0, sizeof *u);
    if (strncmp(url, "redis://", 8) != 0) {
        snprintf(err, errlen, "%s: not a redis:// URL", url);
        goto cleanup;
    }
    p = url + 8;
    slash = strchr(p, '/');
    if (!slash)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    u->host = wk_xstrndup(p, (size_t)((colon ? colon : slash) - p));
    if (!u->host[0]) {
        snprintf(err, errlen, "%s: no host (redis://HOST[:PORT][/STREAM])", url);
        goto cleanup;
    }
    u->port = Q_REDIS_DEFAULT_PORT;
    if (colon) {
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (end != slash || port < 1 || port > 65535) {
            snprintf(err, errlen, "%s: the port is not a number from 1 to 65535", url);
            goto cleanup;
        }
        u->port = (int)port;
    }
    u->stream = wk_xstrdup(*slash && slash[1] ? slash + 1 : Q_REDIS_DEFAULT_STREAM);
    if (strchr(u->stream, '/')) {
        snprintf(err, errlen, "%s: the stream name may not contain '/'", url);
        goto cleanup;
    }
    rc = 0;
cleanup:
    return rc;
}

/* ---- small containers ----------------------------------------------------- */

static void q__item_free(q_item *it)
{
    q_item_free(it);
}

static ssize_t q__held_find(const q_queue *q, const char *entry)
{
    /* Linear: the held set is the driver's concurrency plus one read, a few hundred. */
    for (size_t i = 0; i < q->held_len; i++)
        if (strcmp(q->held[i], entry) == 0)
            return (ssize_t)i;
    return -1;
}

static void q__hold(q_queue *q, const char *entry)
{
    if (q->held_len == q->held_alloc) {
        q->held_alloc = q->held_alloc ? q->held_alloc * 2 : 64;
        q->held = wk_xrealloc(q->held, q->held_alloc * sizeof *q->held);
    }
    q->held[q->held_len++] = wk_xstrdup(entry);
}

static void q__unhold(q_queue *q, const char *entry)
{
    ssize_t i = q__held_find(q, entry);
    if (i < 0)
        return;
    free(q->held[i]);
    q->held[i] = q->held[--q->held_len];
}

static void q__backlog_push(q_queue *q, q_item *it)
{
    if (q->bl_len == q->bl_alloc) {
        q->bl_alloc = q->bl_alloc ? q->bl_alloc * 2 : 64;
        q->bl = wk_xrealloc(q->bl, q->bl_alloc * sizeof *q->bl);
    }
    q->bl[q->bl_len++] = it;
}

static void q__hp_clear(q_queue *q)
{
    for (size_t i = 0; i < q->hp_n; i++)
        free(q->hp_id[i]);
    free(q->hp_id);
    free(q->hp_count);
    q->hp_id = NULL;
    q->hp_count = NULL;
    q->hp_n = 0;
}

static void q__claim_free(q__claim *cl)
{
    for (size_t i = 0; i < cl->n; i++) {
        free(cl->entry[i]);
        free(cl->task[i]);
    }
    free(cl->entry);
    free(cl->task);
    free(cl->len);
    free(cl);
}

static int q__is_error(const redisReply *r, const char *code)
{
    return r && r->type == REDIS_REPLY_ERROR && r->str && strncmp(r->str, code, strlen(code)) == 0;
}

/* An entry id from a reply, or NULL when the element is not one. */
static const char *q__reply_id(const redisReply *r)
{
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) || !r->len ||
        r->len >= Q__ID_CAP)
        return NULL;
    return r->str;
}

/* The value of field `name` in a [f, v, f, v ...] array; NULL when absent. */
static const redisReply *q__field(const redisReply *fields, const char *name)
{
    if (!fields || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type == REDIS_REPLY_STRING && strcmp(f->str, name) == 0 &&
            v->type == REDIS_REPLY_STRING)
            return v;
    }
    return NULL;
}

/* ---- writes on `wr` --------------------------------------------------------- */

static void q__note_error_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    q__conn *c = ac->data;
    if (r && r->type == REDIS_REPLY_ERROR)
        q__note(c->q, "redis: %s: %s", (const char *)priv, r->str);
}

/* Sends a command whose reply only matters when it is an error; priv names it. */
static void q__fire(q__conn *c, const char *what, int argc, const char **argv, const size_t *lens)
{
    if (!c->up || !c->ac)
        return; /* the entry stays pending; a later claim or read redoes the work */
    redisAsyncCommandArgv(c->ac, q__note_error_cb, (void *)what, argc, argv, lens);
}

static void q__xack(q_queue *q, const char *entry)
{
    const char *argv[] = {"XACK", q->stream, q->group, entry};
    q__fire(&q->wr, "XACK", 4, argv, NULL);
}

static void q__dead_letter(q_queue *q, const char *entry, const char *task, size_t len,
                           int deliveries, const char *reason)
{
    char deliv[16];
    snprintf(deliv, sizeof deliv, "%d", deliveries);
    const char *argv[] = {"EVAL",   q__dead_lua, "3",  q->stream, q->dead_key, q->failures_key,
                          q->group, entry,       task, deliv,     reason};
    size_t lens[11];
    for (int i = 0; i < 11; i++)
        lens[i] = strlen(argv[i]);
    lens[8] = len;
    q__note(q, "redis: entry %s goes to %s: %s", entry, q->dead_key, reason);
    q__fire(&q->wr, "dead letter", 11, argv, lens);
}

static void q__ack_flush(q_queue *q, int all);

static void q__ack_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    q__ack_op *op = priv;
    q_queue *q = ((q__conn *)ac->data)->q;
    q->acks_inflight--;
    op->sent = 0;
    if (!r)
        return; /* the connection went: sent again after the reconnect */
    if (r->type == REDIS_REPLY_ERROR)
        q__note(q, "redis: result of entry %s not written (%s); it stays pending for a retry",
                op->entry, r->str);
    /* Replies come in order, so this is the head; search anyway rather than assume. */
    q__ack_op **pp = &q->acks, *prev = NULL;
    while (*pp && *pp != op) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = op->next;
        if (q->acks_tail == op)
            q->acks_tail = prev;
    }
    q__unhold(q, op->entry);
    free(op->entry);
    free(op->id);
    free(op->result);
    free(op);
    q__ack_flush(q, 0);
}

/* Sends unsent results in order, up to the pipeline cap (all: no cap, for close). */
static void q__ack_flush(q_queue *q, int all)
{
    if (!q->wr.up || !q->wr.ac)
        return;
    for (q__ack_op *op = q->acks; op; op = op->next) {
        if (op->sent)
            continue;
        if (!all && q->acks_inflight >= Q__PIPE_MAX)
            break;
        const char *argv[] = {"EVAL",          q__ack_lua, "3",       q->stream, q->results_key,
                              q->failures_key, q->group,   op->entry, op->id,    op->result};
        size_t lens[10];
        for (int i = 0; i < 9; i++)
            lens[i] = strlen(argv[i]);
        lens[9] = op->len;
        if (redisAsyncCommandArgv(q->wr.ac, q__ack_cb, op, 10, argv, lens) != REDIS_OK)
            break;
        op->sent = 1;
        q->acks_inflight++;
    }
}

/* ---- taking entries --------------------------------------------------------- */

/*
 * One entry read or claimed: to the backlog, to S:dead, or dropped because we
 * hold it already. `task` NULL means the entry has no task field; `gone`
 * means the stream no longer has the entry (trimmed or deleted while pending).
 */
static void q__take(q_queue *q, const char *entry, const char *task, size_t len, int gone,
                    int deliveries)
{
    if (gone) {
        q__xack(q, entry); /* nothing left to run; only its pending record remains */
        return;
    }
    if (q__held_find(q, entry) >= 0)
        return;
    if (!task) {
        q__dead_letter(q, entry, "", 0, deliveries, "the entry has no task field");
        return;
    }
    /*
     * Redis counts a delivery at every claim, also of entries that wait in a
     * backlog and never run; the limit is judged on our own count of hand-outs
     * instead (q__deliver), so a poison task's neighbours are not dead-lettered
     * with it. This check only catches what nothing else would.
     */
    if (deliveries > 10 * q->max_deliveries + 10) {
        char why[96];
        snprintf(why, sizeof why, "delivery limit: claimed %d times", deliveries);
        q__dead_letter(q, entry, task, len, deliveries, why);
        return;
    }
    q_item *it = wk_xcalloc(1, sizeof *it);
    if (len > q->line_cap) {
        len = q->line_cap; /* an invalid task for the driver, reported as too big */
        it->too_big = 1;
    }
    it->line = wk_xstrndup(task, len);
    it->len = len;
    it->receipt = wk_xstrdup(entry);
    it->deliveries = deliveries;
    q__hold(q, entry);
    q__backlog_push(q, it);
}

static void q__suspect_done(q_queue *q, const char *entry);

/* The owner of the item's id came back: another entry's id makes it a duplicate. */
static void q__owner_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    q_item *it = priv;
    q_queue *q = ((q__conn *)ac->data)->q;
    if (r && r->type == REDIS_REPLY_STRING && strcmp(r->str, it->receipt) != 0)
        it->dup_of = wk_xstrndup(r->str, r->len);
    if (q->closing) {
        /* Left pending for a claim, as an unanswered hand-out count is. */
        q__unhold(q, it->receipt);
        q__suspect_done(q, it->receipt);
        q__item_free(it);
        return;
    }
    q->cb.on_item(q->cb.arg, it);
}

/*
 * Hands the item to the driver once its id's owner is known (q__owner_lua):
 * two entries with one id are two tasks, and `cascade results` keeps one
 * result per id, so the second is answered invalid_task instead of run.
 * Without a connection, or without an id to read, it goes as it is.
 */
static void q__hand_over(q_queue *q, q_item *it)
{
    cJSON *j = it->too_big ? NULL : cJSON_ParseWithLength(it->line, it->len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (cJSON_IsString(id) && id->valuestring[0] && q->wr.up) {
        const char *argv[] = {"EVAL", q__owner_lua, "1", q->ids_key, id->valuestring, it->receipt};
        if (redisAsyncCommandArgv(q->wr.ac, q__owner_cb, it, 6, argv, NULL) == REDIS_OK) {
            cJSON_Delete(j);
            return;
        }
    }
    cJSON_Delete(j);
    q->cb.on_item(q->cb.arg, it);
}

/* The hand-out count of a redelivered entry: over the limit, a dead letter; else it runs. */
static void q__handout_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    q_item *it = priv;
    q_queue *q = ((q__conn *)ac->data)->q;
    if (!r || r->type != REDIS_REPLY_INTEGER || q->closing) {
        /* Unknown: leave it pending; a claim brings it back. */
        q__unhold(q, it->receipt);
        q__suspect_done(q, it->receipt);
        q__item_free(it);
        return;
    }
    int n = (int)r->integer;
    if (n >= q->max_deliveries) {
        char why[96];
        /* n counts this hand-out too; the first, fresh one is not in it. */
        snprintf(why, sizeof why, "delivery limit: delivered %d times (limit %d)", n,
                 q->max_deliveries);
        q__dead_letter(q, it->receipt, it->line, it->len, n, why);
        q__unhold(q, it->receipt);
        q__suspect_done(q, it->receipt);
        q__item_free(it);
        return;
    }
    it->deliveries = n + 1;
    q__hand_over(q, it);
}

/*
 * An entry delivered before may be what killed its last worker. At most one
 * such entry is with the driver at a time: if it kills this worker too, the
 * others in flight were fresh, so only the culprit's delivery count climbs
 * towards the dead letter, not its neighbours'.
 */
static void q__deliver(q_queue *q)
{
    /* on_item may call pull, ack, nack or close; none of them delivers in turn. */
    while (!q->closing && q->want > 0 && q->bl_len > 0) {
        size_t k = 0;
        while (k < q->bl_len && q->suspect && q->bl[k]->deliveries > 1)
            k++;
        if (k == q->bl_len)
            return; /* only suspects left: wait for the one out to finish */
        q_item *it = q->bl[k];
        if (it->deliveries > 1 && !q->wr.up)
            return; /* the hand-out count needs the connection: wait for it */
        memmove(q->bl + k, q->bl + k + 1, (q->bl_len - k - 1) * sizeof *q->bl);
        q->bl_len--;
        q->want--;
        if (it->deliveries > 1) {
            /* Counted before it runs: a crash while it runs cannot lose the count. */
            q->suspect = wk_xstrdup(it->receipt);
            char *field = wk_xasprintf("n:%s", it->receipt);
            const char *argv[] = {"HINCRBY", q->failures_key, field, "1"};
            if (redisAsyncCommandArgv(q->wr.ac, q__handout_cb, it, 4, argv, NULL) != REDIS_OK) {
                q->want++;
                q__backlog_push(q, it);
                free(q->suspect);
                q->suspect = NULL;
                free(field);
                return;
            }
            free(field);
            continue;
        }
        q__hand_over(q, it);
    }
}

/* The suspect came back (result or failure): the next one may go. */
static void q__suspect_done(q_queue *q, const char *entry)
{
    if (q->suspect && strcmp(q->suspect, entry) == 0) {
        free(q->suspect);
        q->suspect = NULL;
        q__kick(q, 0);
    }
}

/* ---- reading on `rd` -------------------------------------------------------- */

static void q__group_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    (void)priv;
    if (r && r->type == REDIS_REPLY_ERROR && !q__is_error(r, "BUSYGROUP"))
        q__note(((q__conn *)ac->data)->q, "redis: XGROUP CREATE: %s", r->str);
}

static void q__hist_pending_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    q_queue *q = ((q__conn *)ac->data)->q;
    (void)priv;
    q__hp_clear(q);
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return;
    q->hp_id = wk_xcalloc(r->elements + 1, sizeof *q->hp_id);
    q->hp_count = wk_xcalloc(r->elements + 1, sizeof *q->hp_count);
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 4 || !q__reply_id(e->element[0]) ||
            e->element[3]->type != REDIS_REPLY_INTEGER)
            continue;
        q->hp_id[q->hp_n] = wk_xstrdup(e->element[0]->str);
        q->hp_count[q->hp_n] = (int)e->element[3]->integer;
        q->hp_n++;
    }
}

static void q__drain_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    q_queue *q = ((q__conn *)ac->data)->q;
    (void)priv;
    q->reading = 0;
    if (!r)
        return;
    /* XPENDING's summary: [count, first, last, consumers]. */
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer == 0 &&
        q->bl_len == 0 && !q->ended && !q->closing) {
        q->ended = 1;
        if (q->cb.on_end)
            q->cb.on_end(q->cb.arg);
        return;
    }
    q__read_next(q);
}

static void q__read_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    q_queue *q = ((q__conn *)ac->data)->q;
    int history = priv != NULL;
    size_t got = 0;
    q->reading = 0;
    if (!r) {
        q__hp_clear(q);
        return; /* the connection went; the reconnect starts reading again */
    }
    if (r->type == REDIS_REPLY_ERROR) {
        q__note(q, "redis: XREADGROUP: %s", r->str);
        if (q__is_error(r, "NOGROUP"))
            q->need_group = 1; /* the group went away (a restarted Redis without persistence) */
        q__hp_clear(q);
        q__kick(q, Q__RETRY_READ_MS);
        return;
    }
    /* [[stream, [[id, [f, v, ...]], ...]]], or nil when BLOCK timed out. */
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements >= 2 &&
        r->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = r->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++) {
            const redisReply *e = entries->element[i];
            const char *id;
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
                !(id = q__reply_id(e->element[0])))
                continue;
            got++;
            int deliveries = 1;
            if (history) {
                /* The history read counts as a delivery, on top of XPENDING's figure. */
                for (size_t j = 0; j < q->hp_n; j++)
                    if (strcmp(q->hp_id[j], id) == 0)
                        deliveries = q->hp_count[j] + 1;
                snprintf(q->history_cursor, sizeof q->history_cursor, "%s", id);
            }
            const redisReply *fields = e->element[1];
            const redisReply *task = q__field(fields, "task");
            q__take(q, id, task ? task->str : NULL, task ? task->len : 0,
                    fields->type != REDIS_REPLY_ARRAY, deliveries);
        }
    }
    q__hp_clear(q);
    if (history && got == 0)
        q->history_done = 1;
    if (!history && got == 0 && q->drain && q->bl_len == 0 && !q->closing && q->rd.up) {
        /* Nothing new: the batch is over once no entry of the group is pending anywhere. */
        const char *argv[] = {"XPENDING", q->stream, q->group};
        if (redisAsyncCommandArgv(q->rd.ac, q__drain_cb, NULL, 3, argv, NULL) == REDIS_OK) {
            q->reading = 1;
            q__deliver(q);
            return;
        }
    }
    q__deliver(q);
    q__read_next(q);
}

static void q__read_next(q_queue *q)
{
    if (q->closing || q->ended || q->reading || !q->rd.up || !q->rd.ac)
        return;
    long room = (long)q->want - (long)q->bl_len;
    if (room <= 0)
        return;
    char count[16], block[16];
    snprintf(count, sizeof count, "%ld", room < Q__READ_MAX ? room : Q__READ_MAX);
    snprintf(block, sizeof block, "%d", q->drain ? Q__DRAIN_BLOCK_MS : Q__BLOCK_MS);
    redisAsyncContext *ac = q->rd.ac;
    if (q->need_group) {
        /* From 0, not $: tasks enqueued before the first worker started are ours too. */
        const char *argv[] = {"XGROUP", "CREATE", q->stream, q->group, "0", "MKSTREAM"};
        if (redisAsyncCommandArgv(ac, q__group_cb, NULL, 6, argv, NULL) != REDIS_OK)
            return;
        q->need_group = 0;
    }
    if (!q->history_done) {
        char start[Q__ID_CAP + 1];
        if (strcmp(q->history_cursor, "0") == 0)
            snprintf(start, sizeof start, "-");
        else
            snprintf(start, sizeof start, "(%s", q->history_cursor);
        const char *pend[] = {"XPENDING", q->stream, q->group, start, "+", count, q->consumer};
        const char *rd[] = {"XREADGROUP", "GROUP",   q->group,  q->consumer,      "COUNT",
                            count,        "STREAMS", q->stream, q->history_cursor};
        if (redisAsyncCommandArgv(ac, q__hist_pending_cb, NULL, 7, pend, NULL) != REDIS_OK ||
            redisAsyncCommandArgv(ac, q__read_cb, q, 9, rd, NULL) != REDIS_OK)
            return;
    } else {
        const char *rd[] = {"XREADGROUP", "GROUP", q->group,  q->consumer, "COUNT", count,
                            "BLOCK",      block,   "STREAMS", q->stream,   ">"};
        if (redisAsyncCommandArgv(ac, q__read_cb, NULL, 11, rd, NULL) != REDIS_OK)
            return;
    }
    q->reading = 1;
}

/* ---- the janitor, on `wr` ---------------------------------------------------- */

static void q__claim_pending_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    q__claim *cl = priv;
    q_queue *q = ((q__conn *)ac->data)->q;
    q->claiming = 0;
    if (r && r->type == REDIS_REPLY_ARRAY && !q->closing) {
        for (size_t i = 0; i < cl->n; i++) {
            /* XAUTOCLAIM counted this delivery already; 1 if XPENDING lost it. */
            int deliveries = 1;
            for (size_t j = 0; j < r->elements; j++) {
                const redisReply *e = r->element[j];
                if (e->type == REDIS_REPLY_ARRAY && e->elements >= 4 &&
                    q__reply_id(e->element[0]) && strcmp(e->element[0]->str, cl->entry[i]) == 0 &&
                    e->element[3]->type == REDIS_REPLY_INTEGER)
                    deliveries = (int)e->element[3]->integer;
            }
            q__take(q, cl->entry[i], cl->task[i], cl->len[i], 0, deliveries);
        }
        q__deliver(q);
        q__read_next(q);
    } else if (r && r->type == REDIS_REPLY_ERROR) {
        q__note(q, "redis: XPENDING: %s", r->str);
    }
    /* Without a reply the claimed entries stay pending on us; the next claim takes them. */
    q__claim_free(cl);
}

static void q__claim_cb(redisAsyncContext *ac, void *reply, void *priv)
{
    const redisReply *r = reply;
    q_queue *q = ((q__conn *)ac->data)->q;
    q__claim *cl = NULL;
    (void)priv;
    q->claiming = 0;
    if (!r || q->closing)
        goto cleanup;
    if (r->type == REDIS_REPLY_ERROR) {
        if (!q__is_error(r, "NOGROUP")) /* the reader creates the group */
            q__note(q, "redis: XAUTOCLAIM: %s", r->str);
        goto cleanup;
    }
    /* [next cursor, [[id, [f, v ...]] ...], [deleted ids]] (Redis 7; 6.2 has no third). */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !q__reply_id(r->element[0]) ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
        goto cleanup;
    snprintf(q->claim_cursor, sizeof q->claim_cursor, "%s", r->element[0]->str);
    const redisReply *entries = r->element[1];
    cl = wk_xcalloc(1, sizeof *cl);
    cl->entry = wk_xcalloc(entries->elements + 1, sizeof *cl->entry);
    cl->task = wk_xcalloc(entries->elements + 1, sizeof *cl->task);
    cl->len = wk_xcalloc(entries->elements + 1, sizeof *cl->len);
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        const char *id;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || !(id = q__reply_id(e->element[0])))
            continue;
        if (e->element[1]->type != REDIS_REPLY_ARRAY) {
            q__xack(q, id); /* deleted from the stream while pending (Redis 6.2) */
            continue;
        }
        const redisReply *task = q__field(e->element[1], "task");
        cl->entry[cl->n] = wk_xstrdup(id);
        if (task) {
            /* Cut here already: the copy waits a round trip, and line_cap bounds it. */
            cl->len[cl->n] = task->len > q->line_cap + 1 ? q->line_cap + 1 : task->len;
            cl->task[cl->n] = wk_xstrndup(task->str, cl->len[cl->n]);
        }
        cl->n++;
    }
    if (cl->n == 0 || !q->wr.up)
        goto cleanup;
    /* The delivery counts of what we just claimed (XAUTOCLAIM does not return them). */
    char count[24];
    snprintf(count, sizeof count, "%zu", cl->n + q->held_len);
    const char *argv[] = {"XPENDING",           q->stream, q->group,   cl->entry[0],
                          cl->entry[cl->n - 1], count,     q->consumer};
    if (redisAsyncCommandArgv(q->wr.ac, q__claim_pending_cb, cl, 7, argv, NULL) != REDIS_OK)
        goto cleanup;
    cl = NULL;
    q->claiming = 1;
cleanup:
    if (cl)
        q__claim_free(cl);
}

static void q__janitor_cb(uv_timer_t *t)
{
    q_queue *q = t->data;
    if (q->closing || !q->wr.up || !q->wr.ac)
        return;
    /* Keep what we hold ours: reset its idle time so no one else's janitor takes it. */
    for (size_t i = 0; i < q->held_len; i += Q__REFRESH_CHUNK) {
        size_t n = q->held_len - i < Q__REFRESH_CHUNK ? q->held_len - i : Q__REFRESH_CHUNK;
        const char **argv = wk_xcalloc(n + 6, sizeof *argv);
        argv[0] = "XCLAIM";
        argv[1] = q->stream;
        argv[2] = q->group;
        argv[3] = q->consumer;
        argv[4] = "0";
        for (size_t j = 0; j < n; j++)
            argv[5 + j] = q->held[i + j];
        argv[5 + n] = "JUSTID"; /* JUSTID: the delivery count is left alone */
        redisAsyncCommandArgv(q->wr.ac, q__note_error_cb, "XCLAIM (lease refresh)", (int)n + 6,
                              argv, NULL);
        free(argv);
    }
    long room = (long)q->want - (long)q->bl_len;
    if (q->ended || q->claiming || room <= 0)
        return;
    char lease[24], count[16];
    snprintf(lease, sizeof lease, "%ld", q->lease_ms);
    snprintf(count, sizeof count, "%ld", room < Q__READ_MAX ? room : Q__READ_MAX);
    const char *argv[] = {"XAUTOCLAIM", q->stream,       q->group, q->consumer,
                          lease,        q->claim_cursor, "COUNT",  count};
    if (redisAsyncCommandArgv(q->wr.ac, q__claim_cb, NULL, 8, argv, NULL) == REDIS_OK)
        q->claiming = 1;
}

/* ---- the event glue between hiredis and libuv -------------------------------- */

typedef struct q__ev {
    redisAsyncContext *ac; /* NULL once hiredis let go of it */
    uv_poll_t poll;
    int events;
} q__ev;

static void q__ev_poll(uv_poll_t *h, int status, int events)
{
    q__ev *e = h->data;
    /* On an error libuv reports no events: a read and a write let hiredis find the error. */
    int ev = status < 0 ? e->events : events;
    if (e->ac && (ev & UV_READABLE))
        redisAsyncHandleRead(e->ac);
    if (e->ac && (ev & UV_WRITABLE))
        redisAsyncHandleWrite(e->ac);
}

static void q__ev_update(q__ev *e, int add, int del)
{
    e->events = (e->events | add) & ~del;
    if (e->events)
        uv_poll_start(&e->poll, e->events, q__ev_poll);
    else
        uv_poll_stop(&e->poll);
}

static void q__ev_add_read(void *p)
{
    q__ev_update(p, UV_READABLE, 0);
}
static void q__ev_del_read(void *p)
{
    q__ev_update(p, 0, UV_READABLE);
}
static void q__ev_add_write(void *p)
{
    q__ev_update(p, UV_WRITABLE, 0);
}
static void q__ev_del_write(void *p)
{
    q__ev_update(p, 0, UV_WRITABLE);
}

static void q__ev_closed(uv_handle_t *h)
{
    free(h->data);
}

static void q__ev_cleanup(void *p)
{
    q__ev *e = p;
    e->ac = NULL; /* hiredis frees the context right after this */
    uv_close((uv_handle_t *)&e->poll, q__ev_closed);
}

static int q__ev_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    q__ev *e = wk_xcalloc(1, sizeof *e);
    if (uv_poll_init_socket(loop, &e->poll, ac->c.fd) != 0) {
        free(e);
        return REDIS_ERR;
    }
    e->ac = ac;
    e->poll.data = e;
    ac->ev.data = e;
    ac->ev.addRead = q__ev_add_read;
    ac->ev.delRead = q__ev_del_read;
    ac->ev.addWrite = q__ev_add_write;
    ac->ev.delWrite = q__ev_del_write;
    ac->ev.cleanup = q__ev_cleanup;
    return REDIS_OK;
}

/* ---- connections ------------------------------------------------------------- */

static void q__lost(q_queue *q, const char *why)
{
    if (q->outage)
        return; /* one note per outage */
    q->outage = 1;
    if (q->ever_up)
        q__note(q, "redis: connection lost; reconnecting (%s)", why);
    else
        q__note(q, "redis: cannot reach %s:%d (%s); retrying", q->host, q->port, why);
}

static void q__retry_cb(uv_timer_t *t)
{
    q__conn *c = t->data;
    if (!c->q->closing)
        q__conn_start(c);
}

static void q__conn_retry(q__conn *c)
{
    uv_timer_start(&c->retry, q__retry_cb, (uint64_t)c->backoff_ms, 0);
    c->backoff_ms = c->backoff_ms * 2 > Q__BACKOFF_MAX_MS ? Q__BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void q__connect_timeout_cb(uv_timer_t *t)
{
    q__conn *c = t->data;
    q_queue *q = c->q;
    if (!c->ac || c->up || q->closing)
        return;
    redisAsyncFree(c->ac); /* never connected: no callbacks run */
    c->ac = NULL;
    q__lost(q, "connect timed out");
    q__conn_retry(c);
}

static void q__on_connect(const redisAsyncContext *ac, int status)
{
    q__conn *c = ac->data;
    q_queue *q = c->q;
    uv_timer_stop(&c->retry); /* the connect timeout */
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees the context when this returns */
        if (q->closing) {
            q__maybe_closed(q);
            return;
        }
        q__lost(q, ac->errstr[0] ? ac->errstr : "connect failed");
        q__conn_retry(c);
        return;
    }
    c->up = 1;
    c->backoff_ms = Q__BACKOFF_MIN_MS;
    if (q->closing)
        return; /* the teardown, already scheduled, frees it */
    c->on_up(q);
    if (q->rd.up && q->wr.up) {
        if (q->outage)
            q__note(q, "redis: %s to %s:%d", q->ever_up ? "reconnected" : "connected", q->host,
                    q->port);
        q->outage = 0;
        q->ever_up = 1;
    }
}

static void q__on_disconnect(const redisAsyncContext *ac, int status)
{
    q__conn *c = ac->data;
    q_queue *q = c->q;
    (void)status;
    c->ac = NULL; /* hiredis frees the context when this returns */
    c->up = 0;
    if (q->closing) {
        q__maybe_closed(q);
        return;
    }
    q__lost(q, ac->errstr[0] ? ac->errstr : "the server closed the connection");
    q__conn_retry(c);
}

static void q__conn_start(q__conn *c)
{
    q_queue *q = c->q;
    redisAsyncContext *ac = redisAsyncConnect(q->host, q->port);
    if (!ac)
        abort(); /* hiredis returns NULL only when out of memory */
    if (ac->err) {
        q__lost(q, ac->errstr);
        redisAsyncFree(ac);
        q__conn_retry(c);
        return;
    }
    ac->data = c;
    /* Attach before setting the connect callback: hiredis then asks for a write event. */
    if (q__ev_attach(ac, q->loop) != REDIS_OK) {
        q__lost(q, "cannot attach to the event loop");
        redisAsyncFree(ac);
        q__conn_retry(c);
        return;
    }
    redisAsyncSetConnectCallback(ac, q__on_connect);
    redisAsyncSetDisconnectCallback(ac, q__on_disconnect);
    c->ac = ac;
    uv_timer_start(&c->retry, q__connect_timeout_cb, Q__CONNECT_TIMEOUT_MS, 0);
}

static void q__rd_up(q_queue *q)
{
    /* A new connection starts over: the group may be new, and our pending list is read again. */
    q->need_group = 1;
    q->history_done = 0;
    snprintf(q->history_cursor, sizeof q->history_cursor, "0");
    q->reading = 0;
    q__read_next(q);
}

static void q__wr_up(q_queue *q)
{
    q->claiming = 0;
    q__ack_flush(q, 0); /* results whose replies were lost with the old connection */
}

/* ---- closing ------------------------------------------------------------------- */

static void q__free(q_queue *q)
{
    size_t unconfirmed = 0;
    while (q->acks) {
        q__ack_op *op = q->acks;
        q->acks = op->next;
        unconfirmed++;
        free(op->entry);
        free(op->id);
        free(op->result);
        free(op);
    }
    if (unconfirmed)
        q__note(q,
                "redis: %zu results not confirmed at close; their entries stay pending and "
                "will be delivered again",
                unconfirmed);
    for (size_t i = 0; i < q->bl_len; i++)
        q__item_free(q->bl[i]); /* still pending in Redis: our next start or a claim takes them */
    free(q->bl);
    for (size_t i = 0; i < q->held_len; i++)
        free(q->held[i]);
    free(q->held);
    free(q->suspect);
    q__hp_clear(q);
    free(q->host);
    free(q->stream);
    free(q->results_key);
    free(q->dead_key);
    free(q->ids_key);
    free(q->failures_key);
    free(q->group);
    free(q->consumer);
    free(q);
}

static void q__handle_closed(uv_handle_t *h)
{
    q_queue *q = h->data;
    if (--q->handles_left > 0)
        return;
    void (*closed)(void *) = q->closed;
    void *arg = q->closed_arg;
    q__free(q);
    if (closed)
        closed(arg);
}

static void q__maybe_closed(q_queue *q)
{
    if (!q->torn_down || q->rd.ac || q->wr.ac || q->handles_left)
        return;
    uv_handle_t *hs[] = {(uv_handle_t *)&q->kick, (uv_handle_t *)&q->janitor,
                         (uv_handle_t *)&q->close_wait, (uv_handle_t *)&q->rd.retry,
                         (uv_handle_t *)&q->wr.retry};
    q->handles_left = 5;
    for (int i = 0; i < 5; i++) {
        hs[i]->data = q; /* the retry timers pointed at their connection */
        uv_close(hs[i], q__handle_closed);
    }
}

static void q__close_wait_cb(uv_timer_t *t)
{
    q_queue *q = t->data;
    if (q->wr.ac) {
        redisAsyncContext *ac = q->wr.ac;
        redisAsyncFree(ac); /* pending callbacks run with NULL: those results stay pending */
        q->wr.ac = NULL;
        q->wr.up = 0;
    }
    q__maybe_closed(q);
}

/* Runs from the loop (the kick timer), never inside a hiredis callback, so frees are immediate. */
static void q__teardown(q_queue *q)
{
    q->torn_down = 1;
    if (q->rd.ac) {
        /* A blocked read is abandoned: what it would return stays pending on us. */
        redisAsyncContext *ac = q->rd.ac;
        redisAsyncFree(ac);
        q->rd.ac = NULL;
        q->rd.up = 0;
    }
    if (q->wr.ac && q->wr.up) {
        /* Send every result not yet sent, then let hiredis wait for the replies. */
        q__ack_flush(q, 1);
        uv_timer_start(&q->close_wait, q__close_wait_cb, Q__CLOSE_WAIT_MS, 0);
        redisAsyncDisconnect(q->wr.ac); /* may call q__on_disconnect right away */
    } else if (q->wr.ac) {
        redisAsyncContext *ac = q->wr.ac;
        redisAsyncFree(ac);
        q->wr.ac = NULL;
    }
    q__maybe_closed(q);
}

static void q__kick_cb(uv_timer_t *t)
{
    q_queue *q = t->data;
    if (q->closing) {
        if (!q->torn_down)
            q__teardown(q);
        return;
    }
    q__deliver(q);
    q__read_next(q);
}

static void q__kick(q_queue *q, long delay_ms)
{
    if (q->torn_down)
        return;
    uv_timer_start(&q->kick, q__kick_cb, (uint64_t)delay_ms, 0);
}

/* ---- the operations -------------------------------------------------------------- */

static int q__accepts(const char *url)
{
    return url && strncmp(url, "redis://", 8) == 0;
}

static int q__open(uv_loop_t *loop, const q_opts *o, const q_callbacks *cb, q_queue **out,
                   char *err, size_t errlen)
{
    int rc;
    q_redis_url u;
    q_queue *q = NULL;
    *out = NULL;
    if ((rc = q_redis_url_parse(o->url, &u, err, errlen)) != 0)
        goto cleanup;
    if ((o->group && !o->group[0]) || (o->consumer && !o->consumer[0])) {
        snprintf(err, errlen, "%s: the group and consumer names may not be empty", o->url);
        rc = WK_EINVAL;
        goto cleanup;
    }
    q = wk_xcalloc(1, sizeof *q);
    q->loop = loop;
    q->cb = *cb;
    q->host = u.host;
    q->port = u.port;
    q->stream = u.stream;
    u.host = u.stream = NULL; /* the queue owns them now */
    q->results_key = wk_xasprintf("%s:results", q->stream);
    q->dead_key = wk_xasprintf("%s:dead", q->stream);
    q->failures_key = wk_xasprintf("%s:failures", q->stream);
    q->ids_key = wk_xasprintf("%s:ids", q->stream);
    q->group = wk_xstrdup(o->group ? o->group : "cascade");
    if (o->consumer) {
        q->consumer = wk_xstrdup(o->consumer);
    } else {
        /* host-pid: unique per live worker; a restarted one takes over nothing of its past. */
        char host[128] = "worker";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        q->consumer = wk_xasprintf("%s-%ld", host, (long)getpid());
    }
    q->lease_ms = o->lease_ms > 0 ? o->lease_ms : Q__DEFAULT_LEASE_MS;
    q->max_deliveries = o->max_deliveries > 0 ? o->max_deliveries : Q__DEFAULT_MAX_DELIVERIES;
    q->drain = o->drain;
    q->line_cap = o->line_cap ? o->line_cap : Q__DEFAULT_LINE_CAP;
    snprintf(q->claim_cursor, sizeof q->claim_cursor, "0-0");
    snprintf(q->history_cursor, sizeof q->history_cursor, "0");
    uv_timer_t *ts[] = {&q->kick, &q->janitor, &q->close_wait};
    for (int i = 0; i < 3; i++) {
        uv_timer_init(loop, ts[i]);
        ts[i]->data = q;
    }
    q__conn *cs[] = {&q->rd, &q->wr};
    for (int i = 0; i < 2; i++) {
        cs[i]->q = q;
        cs[i]->backoff_ms = Q__BACKOFF_MIN_MS;
        uv_timer_init(loop, &cs[i]->retry);
        cs[i]->retry.data = cs[i];
    }
    q->rd.on_up = q__rd_up;
    q->wr.on_up = q__wr_up;
    /* Connect from the loop, so no callback fires before open returns. */
    uv_timer_start(&q->rd.retry, q__retry_cb, 0, 0);
    uv_timer_start(&q->wr.retry, q__retry_cb, 0, 0);
    uint64_t every = (uint64_t)(q->lease_ms / 2 > 50 ? q->lease_ms / 2 : 50);
    uv_timer_start(&q->janitor, q__janitor_cb, every, every);
    *out = q;
    rc = 0;
cleanup:
    q_redis_url_release(&u);
    return rc;
}

static void q__pull(q_queue *q, int n)
{
    if (q->closing || n <= 0)
        return;
    q->want += n;
    q__kick(q, 0); /* items arrive from the loop, never inside pull */
}

static int q__ack(q_queue *q, const q_item *it, const char *id, const char *result, size_t len)
{
    if (!it || !it->receipt || q->closing)
        return WK_EINVAL;
    q__ack_op *op = wk_xcalloc(1, sizeof *op);
    op->entry = wk_xstrdup(it->receipt);
    op->id = wk_xstrdup(id ? id : "");
    op->result = wk_xstrndup(result, len);
    op->len = len;
    if (q->acks_tail)
        q->acks_tail->next = op;
    else
        q->acks = op;
    q->acks_tail = op;
    /* Failures after this point are notes: the entry stays pending and is delivered again. */
    q__ack_flush(q, 0);
    q__suspect_done(q, it->receipt);
    return 0;
}

static void q__nack(q_queue *q, const q_item *it, const char *why)
{
    if (!it || !it->receipt)
        return;
    /* No longer refreshed: once idle past the lease, a janitor (maybe ours) claims it. */
    q__unhold(q, it->receipt);
    q__suspect_done(q, it->receipt);
    if (why && why[0]) {
        size_t n = strlen(why);
        const char *argv[] = {"HSET", q->failures_key, it->receipt, why};
        size_t lens[] = {4, strlen(q->failures_key), strlen(it->receipt),
                         n > Q__WHY_CAP ? Q__WHY_CAP : n};
        q__fire(&q->wr, "HSET (failure reason)", 4, argv, lens);
    }
}

static void q__close(q_queue *q, void (*closed)(void *arg), void *arg)
{
    if (q->closing)
        return;
    q->closing = 1;
    q->closed = closed;
    q->closed_arg = arg;
    uv_timer_stop(&q->janitor);
    uv_timer_stop(&q->rd.retry);
    uv_timer_stop(&q->wr.retry);
    /* The teardown runs from the loop: close may be called inside one of our callbacks. */
    uv_timer_start(&q->kick, q__kick_cb, 0, 0);
}

const q_ops q_redis = {
    .name = "redis",
    .accepts = q__accepts,
    .open = q__open,
    .pull = q__pull,
    .ack = q__ack,
    .nack = q__nack,
    .close = q__close,
};
