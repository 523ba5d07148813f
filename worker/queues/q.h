/*
 * Queue backends: where tasks come from. A JSONL file or stdin, or a Redis
 * Stream read through a consumer group. One table of operations each,
 * looked up by the scheme of the queue URL. A queue pulls, acks and nacks;
 * results are made durable by a sink (worker/sinks/) before the ack.
 *
 * The driver asks for items with pull(); they arrive through on_item, from
 * the loop. When a task is finished the driver writes its result to the sink
 * and then calls ack(), so a crash between the two at worst writes a result
 * twice, which readers drop by task id. Redis is the one exception: its ack
 * adds the result to STREAM:results and acknowledges the entry in one
 * script (see worker/sinks/results_file.h for why), so it takes the line.
 */
#ifndef Q_H
#define Q_H

#include <stddef.h>
#include <uv.h>

typedef struct q_queue q_queue;

typedef struct q_item {
    char *line; /* the task's JSON text; owned by the item */
    size_t len;
    long lineno;    /* file backends: 1-based line; 0 otherwise */
    char *receipt;  /* backend's handle for ack/nack (Redis entry id); may be NULL */
    int deliveries; /* times this item was handed out (1 the first time) */
    int too_big;    /* the line was over the cap and was cut: an invalid task */
    char *dup_of;   /* Redis: another entry of the stream has the task's id (it); owned */
} q_item;

void q_item_free(q_item *it);

typedef struct q_callbacks {
    /* An item: consumed (the callee frees it with q_item_free). */
    void (*on_item)(void *arg, q_item *it);
    /* No more items will come (end of file; Redis: only with drain). */
    void (*on_end)(void *arg);
    /* A non-fatal note for stderr (e.g. "redis: reconnecting in 2 s"). */
    void (*on_note)(void *arg, const char *msg);
    void *arg;
} q_callbacks;

typedef struct q_opts {
    const char *url;      /* "path.jsonl", "-", or "redis://HOST:PORT/STREAM" */
    const char *group;    /* Redis consumer group */
    const char *consumer; /* Redis consumer name */
    long lease_ms;        /* Redis: idle time after which others may claim an entry */
    int max_deliveries;   /* Redis: then the entry goes to STREAM:dead */
    int drain;            /* Redis: end when the stream has nothing for us */
    size_t line_cap;      /* the largest task line accepted */
} q_opts;

typedef struct q_ops {
    const char *name;
    /* 1 when this backend serves the URL. */
    int (*accepts)(const char *url);
    /* Opens the queue; errors name the URL. The queue calls cb from the loop. */
    int (*open)(uv_loop_t *loop, const q_opts *opts, const q_callbacks *cb, q_queue **out,
                char *err, size_t errlen);
    /* Asks for up to n more items (on top of any already asked for). */
    void (*pull)(q_queue *q, int n);
    /*
     * Acknowledges the item once its result is durable. `id` is the task id
     * (NULL for a line that had none). Files have nothing to acknowledge;
     * Redis writes the result line to STREAM:results in the same script.
     * Returns 0 or a negative wk_err (the run must stop).
     */
    int (*ack)(q_queue *q, const q_item *it, const char *id, const char *result, size_t len);
    /* Gives the item back (Redis: leaves it pending for a later claim). */
    void (*nack)(q_queue *q, const q_item *it, const char *why);
    /* Closes; closed(arg) fires once every handle is closed. */
    void (*close)(q_queue *q, void (*closed)(void *arg), void *arg);
} q_ops;

/* The backend for a URL: the first whose accepts() says yes. */
const q_ops *q_find(const char *url);

#endif
