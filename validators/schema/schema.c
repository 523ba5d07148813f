/*
 * The schema validator: the answer must be JSON that matches a JSON Schema,
 * with draft 2020-12 semantics. The schema is read and checked first
 * (schema_index.c), so a keyword we do not implement is refused by name and a
 * schema is never half-checked in silence; the answer is parsed here and
 * walked against the schema in schema_eval.c. This file makes the verdict:
 * no_schema, unsupported, invalid_json, too_complex, schema_mismatch.
 */
#include "schema_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 1-based line and column of byte offset `off` in s. */
static void line_col(const char *s, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && s[i]; i++) {
        if (s[i] == '\n')
            (*line)++, *col = 1;
        else
            (*col)++;
    }
}

static int schema_start(val_env *env, const val_input *in, const char *code, val_done_cb done,
                        void *arg)
{
    (void)env;
    val_verdict v = {0};
    cJSON *doc = NULL;
    char *msg = NULL;
    char *ev = NULL;
    val__sch_index ix;
    memset(&ix, 0, sizeof ix);
    val__sch_eval e = {0};
    char err[512];

    if (!in->schema) {
        val_verdict_fail(&v, "schema", "no_schema",
                         "the task has no JSON Schema to check the answer against", NULL);
        goto report;
    }
    if (val__schema_index_build(&ix, in->schema, err, sizeof err) < 0) {
        /* Refuse rather than check part of the schema and call it a pass. */
        val_verdict_fail(&v, "schema", "unsupported", err, NULL);
        goto report;
    }

    const char *end = NULL;
    /* ParseWithOpts: the WithLength variant rejects a buffer that ends at the value. */
    doc = cJSON_ParseWithOpts(code, &end, 1);
    if (!doc) {
        unsigned line, col;
        size_t off = end && end >= code ? (size_t)(end - code) : 0;
        line_col(code, off, &line, &col);
        msg = wk_xasprintf("the answer is not valid JSON (error at line %u:%u)", line, col);
        char *near = wk_xstrndup(code + off, strnlen(code + off, 60));
        ev = wk_xasprintf("JSON parse error at line %u:%u near: %s", line, col, near);
        free(near);
        val_verdict_fail(&v, "schema", "invalid_json", msg, ev);
        goto report;
    }

    val__schema_eval(&ix, in->schema, doc, &e);
    if (e.aborted) {
        /* Neither a pass nor the answer's fault: say which limit stopped the check. */
        val_verdict_fail(&v, "schema", "too_complex",
                         e.aborted == VAL__SCH_ABORT_DEPTH
                             ? "checking the answer against the schema nested too deeply"
                             : "checking the answer against the schema took too many steps",
                         NULL);
        goto report;
    }
    if (e.ok) {
        val_verdict_pass(&v);
        goto report;
    }
    if (!e.first) /* cannot happen: every failing path reports; keep the verdict honest anyway */
        e.first = wk_xstrdup("(root): the answer does not match the schema");
    val_verdict_fail(&v, "schema", "schema_mismatch", e.first, e.errs ? e.errs : e.first);

report:
    done(arg, &v);
    val_verdict_clear(&v);
    cJSON_Delete(doc);
    val__schema_index_release(&ix);
    free(msg);
    free(ev);
    val__schema_eval_release(&e);
    return 0;
}

/* What a task checked against a schema must have: a schema, its own or its cascade's. */
static int schema_check_task(const cJSON *task, const cJSON *schema, char *why, size_t whylen)
{
    (void)task;
    if (schema)
        return 0;
    snprintf(why, whylen, "checks a schema but neither the task nor the cascade has one");
    return WK_ENOTFOUND;
}

const val_ops val__schema_ops = {
    .name = "schema",
    .start = schema_start,
    .check_task = schema_check_task,
};
