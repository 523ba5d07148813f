/*
 * The validator chain: the cascade's validators in order on the code taken
 * from the answer, stopping at the first failure, with one done call at the
 * end. Validators may finish inside start() (syntax, schema) or later from the
 * loop (tests); the chain handles both without recursing through start().
 * The notes of the validators that ran are joined onto the final verdict,
 * and the tree a passing "patch" leaves is where the validators after it run.
 * Also what a chain needs before it runs: of the task (each validator's
 * check_task entry) and of the machine (a sandbox).
 */
#include "val_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Chains are short (a cascade lists a handful of validators). */
#define CHAIN_MAX 16

typedef struct chain {
    val_env *env;
    val_input in; /* the caller's input, with syntax_advisory worked out */
    const val_ops *ops[CHAIN_MAX];
    int n;
    int idx;       /* the validator running now */
    char *code;    /* extracted from in->answer; owned */
    int in_start;  /* inside ops[idx]->start() */
    int completed; /* ops[idx] has called back */
    val_verdict verdict;
    char label[VAL_LABEL_MAX]; /* the label a passing validator read; "" when none */
    double score;
    char *label_ev;    /* what the label was read from; owned */
    wk_buf notes;      /* "; "-joined notes of the validators so far */
    char *own_workdir; /* patch's tree when the caller did not ask for it; owned */
    char *own_touched; /* the files patch changed, likewise */
    val_done_cb done;
    void *arg;
} chain;

static void chain_finish(chain *c)
{
    if (c->verdict.pass) {
        /* A label validator's reading survives the pass: the router and the result need it. */
        val_verdict_pass(&c->verdict);
        memcpy(c->verdict.label, c->label, sizeof c->label);
        c->verdict.score = c->score;
        c->verdict.evidence = c->label_ev;
        c->label_ev = NULL;
    }
    if (c->notes.len)
        val_verdict_note(&c->verdict, c->notes.buf);
    c->done(c->arg, &c->verdict);
    val_verdict_clear(&c->verdict);
    wk_buf_release(&c->notes);
    val_workdir_free(c->own_workdir);
    free(c->label_ev);
    free(c->own_touched);
    free(c->code);
    free(c);
}

static void chain_step(chain *c);

/* Moves past a validator that passed; the tree a patch left is the next ones' code. */
static void chain_advance(chain *c)
{
    if (c->in.workdir_out && *c->in.workdir_out && !c->in.workdir)
        c->in.workdir = *c->in.workdir_out;
    if (c->in.touched_out && *c->in.touched_out && !c->in.touched)
        c->in.touched = *c->in.touched_out;
    c->idx++;
}

static void chain_on_done(void *arg, const val_verdict *v)
{
    chain *c = arg;
    /* The verdict is borrowed for this call only, so keep a copy. */
    val_verdict_clear(&c->verdict);
    c->verdict.pass = v->pass;
    memcpy(c->verdict.validator, v->validator, sizeof c->verdict.validator);
    memcpy(c->verdict.reason, v->reason, sizeof c->verdict.reason);
    c->verdict.message = v->message ? wk_xstrdup(v->message) : NULL;
    c->verdict.evidence = v->evidence ? wk_xstrdup(v->evidence) : NULL;
    memcpy(c->verdict.label, v->label, sizeof c->verdict.label);
    c->verdict.score = v->score;
    if (v->pass && v->label[0]) {
        memcpy(c->label, v->label, sizeof c->label);
        c->score = v->score;
        free(c->label_ev);
        c->label_ev = v->evidence ? wk_xstrdup(v->evidence) : NULL;
    }
    if (v->note && v->note[0]) {
        /* Capped: past the cap a note is dropped, as the verdict keeps one line anyway. */
        if (c->notes.len)
            wk_buf_append(&c->notes, "; ", 2);
        wk_buf_append(&c->notes, v->note, strlen(v->note));
    }
    c->completed = 1;
    if (c->in_start)
        return; /* chain_step sees `completed` once start() returns */
    if (!c->verdict.pass) {
        chain_finish(c);
        return;
    }
    chain_advance(c);
    chain_step(c);
}

/*
 * Runs validators until one goes asynchronous (its callback resumes us) or
 * the chain ends. A synchronous finish is handled by this loop rather than
 * from the callback, so the stack does not grow with the chain.
 */
static void chain_step(chain *c)
{
    while (c->idx < c->n) {
        c->completed = 0;
        c->in_start = 1;
        int rc = c->ops[c->idx]->start(c->env, &c->in, c->code, chain_on_done, c);
        c->in_start = 0;
        if (rc < 0) {
            /* Once the chain has begun, every outcome goes through done. */
            char *msg = wk_xasprintf("validator %s could not start: %s", c->ops[c->idx]->name,
                                     wk_strerror(rc));
            val_verdict_fail(&c->verdict, c->ops[c->idx]->name, "sandbox_error", msg, NULL);
            free(msg);
            chain_finish(c);
            return;
        }
        if (!c->completed)
            return;
        if (!c->verdict.pass) {
            chain_finish(c);
            return;
        }
        chain_advance(c);
    }
    c->verdict.pass = 1;
    chain_finish(c);
}

int val_chain_start(val_env *env, const char *const *names, int n, const val_input *in,
                    val_done_cb done, void *arg)
{
    if (n < 0 || n > CHAIN_MAX || !in || !done)
        return WK_EINVAL;
    /* Resolve every name first so an unknown one fails before any work. */
    const val_ops *ops[CHAIN_MAX];
    for (int i = 0; i < n; i++) {
        ops[i] = val_find(names[i]);
        if (!ops[i])
            return WK_ENOTFOUND;
    }
    chain *c = wk_xcalloc(1, sizeof *c);
    c->env = env;
    c->in = *in;
    wk_buf_init(&c->notes, VAL_MESSAGE_MAX);
    /* tree-sitter errs on valid C (macros); a compiler later in the chain has the last word. */
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n; k++)
            if (strcmp(ops[i]->name, "syntax") == 0 && strcmp(ops[k]->name, "compile") == 0)
                c->in.syntax_advisory = 1;
    /*
     * Validators after "patch" need its tree; when the caller keeps no handle
     * on it, the chain does, and removes it at the end.
     */
    for (int i = 0; i + 1 < n && !c->in.workdir_out; i++)
        if (strcmp(ops[i]->name, "patch") == 0)
            c->in.workdir_out = &c->own_workdir;
    for (int i = 0; i + 1 < n && !c->in.touched_out; i++)
        if (strcmp(ops[i]->name, "patch") == 0)
            c->in.touched_out = &c->own_touched;
    for (int i = 0; i < n; i++)
        c->ops[i] = ops[i];
    c->n = n;
    c->done = done;
    c->arg = arg;
    int patch = in->kind && strcmp(in->kind, "patch") == 0;
    c->code = patch ? val_extract_diff(in->answer) : val_extract_code(in->answer);
    c->verdict.pass = 1;
    c->score = -1;

    /* Nothing to check: say so once instead of letting each validator guess. */
    if (n > 0 && patch && c->code[strspn(c->code, " \t\r\n")] == '\0') {
        val_verdict_fail(&c->verdict, "patch", "empty_patch", "the answer holds no diff", NULL);
        chain_finish(c);
        return 0;
    }
    if (n > 0 && c->code[0] == '\0') {
        val_verdict_fail(&c->verdict, ops[0]->name, "no_code", "the answer contains no code", NULL);
        chain_finish(c);
        return 0;
    }
    chain_step(c);
    return 0;
}

int val_check_task(const char *const *names, int n, const cJSON *task, const cJSON *schema,
                   const char *who, char *why, size_t whylen)
{
    for (int i = 0; i < n; i++) {
        const val_ops *ops = val_find(names[i]);
        char clause[400];
        int rc = ops && ops->check_task ? ops->check_task(task, schema, clause, sizeof clause) : 0;
        if (rc == 0)
            continue;
        snprintf(why, whylen, "%s %s", who, clause);
        return rc;
    }
    return 0;
}

int val_needs_sandbox(const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        const val_ops *ops = val_find(names[i]);
        if (ops && ops->sandboxed)
            return 1;
    }
    return 0;
}
