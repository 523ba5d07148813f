/*
 * Intake: what the driver does with one queue item, decided without doing
 * it. Like the router, it is pure: the facts it needs about earlier work
 * (the results file, the journal, the lines before it) come in as lookups,
 * it opens nothing, reads no clock, and the driver carries the decision out.
 *
 *   blank line                         SKIP
 *   over the line cap, or not a task   INVALID with its result line, or
 *                                      ALREADY when that result exists
 *   an id an earlier line had          INVALID ("duplicate id"), or SKIP when
 *                                      that result is in the results file
 *   (Redis) an id another entry owns   INVALID ("duplicate id"), keyed by entry
 *   its result in the results file     ALREADY
 *   done in the journal                RESUME: write the stored result line
 *   a patch task whose repository      INVALID, naming repo.path, repo.base or
 *   fails the check_repo fact          the size cap
 *   otherwise                          RUN
 */
#ifndef WK_INTAKE_H
#define WK_INTAKE_H

#include <cjson/cJSON.h>

#include "router.h"
#include "worker/queues/q.h"

typedef enum wk_intake_kind {
    WK_INTAKE_SKIP,    /* nothing to do, nothing to count */
    WK_INTAKE_ALREADY, /* finished in an earlier run: counted as skipped */
    WK_INTAKE_RESUME,  /* finished in the journal, never written: write `line` as it is */
    WK_INTAKE_INVALID, /* not a task: journal and write `line` under `key` */
    WK_INTAKE_RUN,     /* run `task` */
} wk_intake_kind;

/* The facts about earlier work; each lookup is answered by the driver. */
typedef struct wk_intake_facts {
    const wk_config *cfg;     /* borrowed, for wk_task_parse */
    const char *cascade_name; /* NULL: per task */
    size_t line_cap;          /* the cap the queue cut long lines at, for the message */
    /* 1 when the results file holds a line for key. */
    int (*written)(void *arg, const char *key);
    /* 1 when the journal holds the key as done, with its result line (caller frees). */
    int (*done)(void *arg, const char *key, char **result);
    /* 1 when an earlier line of this input had the task id. */
    int (*seen)(void *arg, const char *id);
    /*
     * Patch tasks: the task file's directory, against which a relative
     * repo.path is read (NULL: the working directory); and the check of the
     * repository the task names (NULL: none), 0 or negative with a clause
     * naming the field in why (whylen bytes). A failed check is INVALID.
     */
    const char *task_dir;
    int (*check_repo)(void *arg, const cJSON *task, char *why, size_t whylen);
    void *arg;
} wk_intake_facts;

/* A decision; every pointer is owned by it until taken (set to NULL). */
typedef struct wk_intake {
    wk_intake_kind kind;
    char *key;     /* RESUME, INVALID: the result's key (rkey.h) */
    char *line;    /* RESUME, INVALID: the result line */
    cJSON *result; /* INVALID: the result as JSON, for the summary */
    wk_task *task; /* RUN; ALREADY and RESUME too, for the id of a file's line */
} wk_intake;

/* Decides what to do with the item (borrowed). Release d with wk_intake_release. */
void wk_intake_decide(const q_item *it, const wk_intake_facts *f, wk_intake *d);
void wk_intake_release(wk_intake *d);

#endif
