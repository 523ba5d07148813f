/*
 * Intake (see intake.h): the rules the driver used to apply inline in its
 * item callback, in the same order, as one function over the facts.
 */
#include "intake.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "rkey.h"
#include "validators/val.h"

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return 0;
    return 1;
}

/*
 * A line that is not a task: its result is written once, like any other.
 * One that an earlier run wrote, or journaled as done, is not written again.
 * Consumes res.
 */
static void invalid(const q_item *it, const wk_intake_facts *f, cJSON *res, wk_intake *d)
{
    /* Keyed by its place, never by an id it may carry: a valid task may have that id. */
    char *key = wk_rkey_line(it->lineno, it->receipt);
    char *stored = NULL;
    if (f->written(f->arg, key) || f->done(f->arg, key, &stored)) {
        d->kind = WK_INTAKE_ALREADY;
        free(stored);
        free(key);
        cJSON_Delete(res);
        return;
    }
    d->kind = WK_INTAKE_INVALID;
    d->key = key;
    d->line = cJSON_PrintUnformatted(res);
    d->result = res;
}

/*
 * A patch task's repository, read against the task file's directory and
 * checked by the driver before anything is paid for. 1 with d set INVALID
 * (taking key, the result's key) when it fails; 0 leaves key to the caller.
 */
static int repo_invalid(const q_item *it, const wk_intake_facts *f, wk_task *t, char *key,
                        wk_intake *d)
{
    const char *kind = wk_jstr(wk_task_json(t), "kind");
    if (!kind || strcmp(kind, "patch") != 0)
        return 0;
    wk_task_resolve_repo(t, f->task_dir);
    char why[600];
    if (!f->check_repo || f->check_repo(f->arg, wk_task_json(t), why, sizeof why) == 0)
        return 0;
    d->kind = WK_INTAKE_INVALID;
    d->key = key; /* consumed on this path only */
    d->result = wk_invalid_result(wk_task_id(t), it->lineno, why);
    d->line = cJSON_PrintUnformatted(d->result);
    return 1;
}

void wk_intake_decide(const q_item *it, const wk_intake_facts *f, wk_intake *d)
{
    memset(d, 0, sizeof *d);
    if (it->too_big) {
        char *why = wk_xasprintf("line %ld is longer than %zu bytes", it->lineno, f->line_cap);
        invalid(it, f, wk_invalid_result(NULL, it->lineno, why), d);
        free(why);
        return;
    }
    if (blank(it->line, it->len)) {
        d->kind = WK_INTAKE_SKIP;
        return;
    }
    wk_task *t = NULL;
    cJSON *res = NULL;
    if (wk_task_parse(it->line, it->len, it->lineno, f->cfg, f->cascade_name, &t, &res) != 0) {
        invalid(it, f, res, d);
        return;
    }
    const char *id = wk_task_id(t);
    if (it->dup_of) {
        /* Redis: another entry of the stream owns the id; results are kept one per id. */
        char *why = wk_xasprintf("duplicate id \"%s\": stream entry %s has it", id, it->dup_of);
        d->kind = WK_INTAKE_INVALID;
        d->key = wk_rkey_line(0, it->receipt);
        d->result = wk_invalid_result(id, it->lineno, why);
        d->line = cJSON_PrintUnformatted(d->result);
        free(why);
        wk_task_free(t);
        return;
    }
    /*
     * Two lines of one file with the same id are an input error. A queue that
     * delivers a task again (Redis lost an ack) is not: the task is run again
     * and readers drop the second result by id.
     */
    if (it->lineno > 0 && f->seen(f->arg, id)) {
        char *key = wk_rkey_dup(it->lineno);
        if (f->written(f->arg, key)) {
            d->kind = WK_INTAKE_SKIP;
            free(key);
        } else {
            char *why = wk_xasprintf("duplicate id \"%s\": an earlier line has it", id);
            d->kind = WK_INTAKE_INVALID;
            d->key = key;
            d->result = wk_invalid_result(id, it->lineno, why);
            d->line = cJSON_PrintUnformatted(d->result);
            free(why);
        }
        wk_task_free(t);
        return;
    }
    /*
     * Files the sandbox could not place (an unsafe path, a content that is
     * not a string) would fail every answer with sandbox_error after each
     * tier was paid; refuse them before any call. The task stays with the
     * decision, so the driver counts its id as seen and a later line with
     * the same id is a duplicate, not a second result under this key.
     */
    char why[512];
    if (val_check_task_files(wk_task_json(t), why, sizeof why) < 0) {
        invalid(it, f, wk_invalid_result(id, it->lineno, why), d);
        d->task = t;
        return;
    }
    /* Finished in an earlier run: skip it, or write the result it never got. */
    d->task = t;
    char *key = wk_rkey_task(id);
    if (f->written(f->arg, key)) {
        d->kind = WK_INTAKE_ALREADY;
    } else if (f->done(f->arg, key, &d->line)) {
        d->kind = WK_INTAKE_RESUME;
        d->key = key;
        key = NULL;
    } else if (repo_invalid(it, f, t, key, d)) {
        /*
         * The INVALID decision's key now. The task stays, as above: a later
         * line with its id is a duplicate, not a second result under the key.
         */
        key = NULL;
    } else {
        d->kind = WK_INTAKE_RUN;
    }
    free(key);
}

void wk_intake_release(wk_intake *d)
{
    free(d->key);
    free(d->line);
    cJSON_Delete(d->result);
    wk_task_free(d->task);
    memset(d, 0, sizeof *d);
}
