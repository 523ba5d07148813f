/*
 * The Redis Streams queue backend, and what the `enqueue` and `results`
 * commands share with it: the URL form redis://HOST[:PORT][/STREAM] and the
 * names of the keys beside the task stream.
 *
 * Keys, for a task stream S:
 *   S            tasks, one entry each, field `task` (the JSON line)
 *   S:results    one entry per finished task: fields `id` (task id, "" when the
 *                task had none), `entry` (the task's entry id in S), `result`
 *   S:dead       tasks that used up their deliveries: `entry`, `task`,
 *                `deliveries`, `reason`, `last_failure`
 *   S:failures   a hash, entry id -> the last nack reason (read for S:dead)
 *   S:ids        a hash, task id -> the entry that has it (set by `enqueue` with
 *                the XADD, or by the first worker to take the id): a second
 *                entry with an owned id is a duplicate, refused or invalid_task
 */
#ifndef Q_REDIS_H
#define Q_REDIS_H

#include <stddef.h>

#include "q.h"

/* The backend; its name is "redis" and it accepts URLs that start redis://. */
extern const q_ops q_redis;

#define Q_REDIS_DEFAULT_PORT 6379
#define Q_REDIS_DEFAULT_STREAM "cascade"

typedef struct q_redis_url {
    char *host; /* owned */
    int port;
    char *stream; /* owned; Q_REDIS_DEFAULT_STREAM when the URL names none */
} q_redis_url;

/*
 * Parses redis://HOST[:PORT][/STREAM] into *u (release it with
 * q_redis_url_release, also after a failure). Returns 0, or WK_EINVAL with a
 * message naming the URL in err.
 */
int q_redis_url_parse(const char *url, q_redis_url *u, char *err, size_t errlen);
void q_redis_url_release(q_redis_url *u);

#endif
