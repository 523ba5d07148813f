/*
 * eval-validators: runs the syntax then tests validators, in the real
 * sandbox, on every case of a cases file (tools/validators/eval_prep.py makes
 * it from the recorded HumanEval answers and the canonical solutions) and
 * compares each verdict with the recorded outcome of the official tests.
 * Prints agreement, false accepts (we pass what the official tests failed),
 * false rejects (the reverse), the canonical solutions accepted, the reasons
 * of our failures, a few disagreeing cases and the wall time.
 *
 *   eval-validators CASES.jsonl [--jobs N] [--timeout SEC] [--cpu SEC]
 *                   [--show N] [--out RESULTS.jsonl]
 *
 * Exit status 0 when agreement is at least 99.5% and every canonical
 * solution passes; 1 otherwise; 2 on a usage or input error.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/jsonl.h"
#include "validators/val.h"

/* One line of the cases file, and what we made of it. */
typedef struct ecase {
    cJSON *json; /* owned: the whole line */
    const char *id, *model, *answer;
    int run;
    int recorded; /* the official outcome */
    val_input in;
    int done, pass;
    char reason[VAL_REASON_MAX];
    char *message; /* owned; failures only */
    uint64_t t0, ms;
} ecase;

typedef struct eval {
    uv_loop_t loop;
    val_env *env;
    ecase *cases;
    int n, next, running, finished, window;
    uint64_t t0;
} eval;

static void start_next(eval *e);

static void record(ecase *c, const val_verdict *v)
{
    c->done = 1;
    c->pass = v->pass;
    c->ms = wk_now_ms() - c->t0;
    snprintf(c->reason, sizeof c->reason, "%s", v->pass ? "" : v->reason);
    if (!v->pass && v->message)
        c->message = wk_xstrdup(v->message);
}

/* The chain's done callback, with the eval to continue from. */
typedef struct slot {
    eval *e;
    ecase *c;
} slot;

static void on_chain_done(void *arg, const val_verdict *v)
{
    slot *s = arg;
    eval *e = s->e;
    record(s->c, v);
    free(s);
    e->running--;
    e->finished++;
    if (e->finished % 500 == 0)
        fprintf(stderr, "eval-validators: %d/%d done, %.1f s\n", e->finished, e->n,
                (double)(wk_now_ms() - e->t0) / 1000);
    start_next(e);
}

static void start_next(eval *e)
{
    static const char *const names[] = {"syntax", "tests"};
    /* A window of chains in flight: enough to keep every sandbox slot busy. */
    while (e->running < e->window && e->next < e->n) {
        ecase *c = &e->cases[e->next++];
        slot *s = wk_xcalloc(1, sizeof *s);
        s->e = e;
        s->c = c;
        e->running++;
        c->t0 = wk_now_ms();
        if (val_chain_start(e->env, names, 2, &c->in, on_chain_done, s) != 0) {
            fprintf(stderr, "eval-validators: the chain did not start\n");
            exit(1);
        }
    }
}

typedef struct load_ctx {
    eval *e;
    int cap;
    const char *path;
} load_ctx;

static int load_case(void *arg, const char *line, size_t len, int cut, long lineno)
{
    load_ctx *l = arg;
    eval *e = l->e;
    if (cut) {
        fprintf(stderr, "eval-validators: %s:%ld: line longer than %u bytes\n", l->path, lineno,
                WK_JSONL_LINE_CAP);
        return -1;
    }
    if (wk_jsonl_blank(line, len))
        return 0;
    if (e->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        e->cases = wk_xrealloc(e->cases, (size_t)l->cap * sizeof *e->cases);
    }
    ecase *c = &e->cases[e->n];
    memset(c, 0, sizeof *c);
    c->json = cJSON_ParseWithLength(line, len);
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(c->json, "task");
    c->id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->json, "id"));
    c->model = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->json, "model"));
    c->answer = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c->json, "answer"));
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(c->json, "run");
    if (!c->id || !c->model || !c->answer || !cJSON_IsObject(task)) {
        fprintf(stderr, "eval-validators: %s:%ld: not a case\n", l->path, lineno);
        cJSON_Delete(c->json);
        return -1;
    }
    c->run = cJSON_IsNumber(run) ? run->valueint : 0;
    c->recorded = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c->json, "passed"));
    c->in.task_id = c->id;
    c->in.kind = "code";
    c->in.language = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(task, "language"));
    c->in.answer = c->answer;
    c->in.task = task;
    e->n++;
    return 0;
}

static int load(eval *e, const char *path)
{
    char err[512];
    load_ctx l = {e, 0, path};
    int rc = wk_jsonl_lines(path, WK_JSONL_LINE_CAP, load_case, &l, err, sizeof err);
    if (rc == WK_EIO)
        fprintf(stderr, "eval-validators: %s\n", err);
    return rc ? -1 : 0;
}

typedef struct tally {
    const char *model;
    int n, agree, ours, recorded, fa, fr;
} tally;

static tally *tally_for(tally *t, int *nt, const char *model)
{
    for (int i = 0; i < *nt; i++)
        if (strcmp(t[i].model, model) == 0)
            return &t[i];
    t[*nt] = (tally){.model = model};
    return &t[(*nt)++];
}

int main(int argc, char **argv)
{
    static eval e;
    int jobs = 0, show = 12;
    long timeout_s = 30, cpu_s = 20;
    const char *out_path = NULL;
    static const struct option opts[] = {
        {"jobs", required_argument, NULL, 'j'}, {"timeout", required_argument, NULL, 't'},
        {"cpu", required_argument, NULL, 'c'},  {"show", required_argument, NULL, 's'},
        {"out", required_argument, NULL, 'o'},  {NULL, 0, NULL, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "j:t:c:s:o:", opts, NULL)) != -1) {
        switch (o) {
        case 'j':
            jobs = atoi(optarg);
            break;
        case 't':
            timeout_s = atol(optarg);
            break;
        case 'c':
            cpu_s = atol(optarg);
            break;
        case 's':
            show = atoi(optarg);
            break;
        case 'o':
            out_path = optarg;
            break;
        default:
            fprintf(stderr, "usage: eval-validators CASES.jsonl [--jobs N] [--timeout SEC] "
                            "[--cpu SEC] [--show N] [--out RESULTS.jsonl]\n");
            return 2;
        }
    }
    if (optind != argc - 1 || timeout_s < 1 || cpu_s < 1) {
        fprintf(stderr, "usage: eval-validators CASES.jsonl [--jobs N] [--timeout SEC] "
                        "[--cpu SEC] [--show N] [--out RESULTS.jsonl]\n");
        return 2;
    }
    if (load(&e, argv[optind]) < 0)
        return 2;
    if (jobs <= 0)
        jobs = 2 * (int)uv_available_parallelism();

    /*
     * Generous limits: the recorded outcomes come from an unloaded machine,
     * and a slow but correct answer must not fail here because every core is
     * busy with the other sandboxes.
     */
    val_limits lim;
    val_limits_default(&lim);
    lim.timeout_ms = (unsigned)(timeout_s * 1000);
    lim.cpu_s = (unsigned)cpu_s;
    char err[512];
    uv_loop_init(&e.loop);
    e.env = val_env_new(&e.loop, &lim, jobs, err, sizeof err);
    if (!e.env) {
        fprintf(stderr, "eval-validators: %s\n", err);
        return 2;
    }
    e.window = 2 * jobs;
    fprintf(stderr,
            "eval-validators: %d cases, %d sandboxes at once, limits %ld s wall, %ld s "
            "CPU\n",
            e.n, jobs, timeout_s, cpu_s);
    e.t0 = wk_now_ms();
    start_next(&e);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    double wall = (double)(wk_now_ms() - e.t0) / 1000;

    /* ---- figures ---- */
    tally t[16];
    memset(t, 0, sizeof t);
    int nt = 0;
    int total = 0, agree = 0, fa = 0, fr = 0, canon = 0, canon_ok = 0;
    struct {
        char reason[VAL_REASON_MAX];
        int n;
    } reasons[32];
    memset(reasons, 0, sizeof reasons);
    int nr = 0;
    for (int i = 0; i < e.n; i++) {
        ecase *c = &e.cases[i];
        if (!c->done) {
            fprintf(stderr, "eval-validators: case %d (%s) got no verdict\n", i, c->id);
            return 1;
        }
        if (!c->pass) {
            int k = 0;
            while (k < nr && strcmp(reasons[k].reason, c->reason) != 0)
                k++;
            if (k == nr && nr < 32) {
                snprintf(reasons[nr].reason, sizeof reasons[nr].reason, "%s", c->reason);
                reasons[nr++].n = 0;
            }
            if (k < nr)
                reasons[k].n++;
        }
        if (strcmp(c->model, "canonical") == 0) {
            canon++;
            canon_ok += c->pass;
            continue;
        }
        tally *m = nt < 15 ? tally_for(t, &nt, c->model) : NULL;
        total++;
        agree += c->pass == c->recorded;
        fa += c->pass && !c->recorded;
        fr += !c->pass && c->recorded;
        if (m) {
            m->n++;
            m->agree += c->pass == c->recorded;
            m->ours += c->pass;
            m->recorded += c->recorded;
            m->fa += c->pass && !c->recorded;
            m->fr += !c->pass && c->recorded;
        }
    }
    double pct = total ? 100.0 * agree / total : 0;
    printf("\neval-validators: syntax then tests on %d recorded HumanEval answers and %d "
           "canonical solutions\n\n",
           total, canon);
    printf("%-24s %6s %9s %9s %9s %8s %8s\n", "model", "runs", "recorded", "ours", "agree", "f.acc",
           "f.rej");
    for (int i = 0; i < nt; i++)
        printf("%-24s %6d %9d %9d %8.2f%% %8d %8d\n", t[i].model, t[i].n, t[i].recorded, t[i].ours,
               100.0 * t[i].agree / t[i].n, t[i].fa, t[i].fr);
    printf("%-24s %6d %9s %9s %8.2f%% %8d %8d\n", "all", total, "", "", pct, fa, fr);
    printf("\nagreement with the recorded outcome: %d/%d = %.2f%% (target 99.5%%)\n", agree, total,
           pct);
    printf("false accepts (we pass, official tests failed): %d\n", fa);
    printf("false rejects (we fail, official tests passed): %d\n", fr);
    printf("canonical solutions accepted: %d/%d\n", canon_ok, canon);
    printf("our failures by reason:");
    for (int k = 0; k < nr; k++)
        printf(" %s %d%s", reasons[k].reason, reasons[k].n, k + 1 < nr ? "," : "");
    printf("\n");
    int shown = 0;
    for (int i = 0; i < e.n && shown < show; i++) {
        ecase *c = &e.cases[i];
        int canonical = strcmp(c->model, "canonical") == 0;
        if (c->pass == c->recorded)
            continue;
        if (!shown++)
            printf("disagreements (first %d):\n", show);
        printf("  %-14s %-22s run %-2d recorded %-4s ours %-4s %s%s%.150s\n", c->id,
               canonical ? "canonical" : c->model, c->run, c->recorded ? "pass" : "fail",
               c->pass ? "pass" : "fail", c->reason, c->message ? ": " : "",
               c->message ? c->message : "");
    }
    printf("wall time: %.1f s for %d sandboxed runs (%.1f runs/s, %d at once)\n", wall, e.n,
           e.n / wall, jobs);

    if (out_path) {
        FILE *f = fopen(out_path, "w");
        for (int i = 0; f && i < e.n; i++) {
            ecase *c = &e.cases[i];
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "id", c->id);
            cJSON_AddStringToObject(r, "model", c->model);
            cJSON_AddNumberToObject(r, "run", c->run);
            cJSON_AddBoolToObject(r, "recorded", c->recorded);
            cJSON_AddBoolToObject(r, "ours", c->pass);
            cJSON_AddStringToObject(r, "reason", c->reason);
            if (c->message)
                cJSON_AddStringToObject(r, "message", c->message);
            cJSON_AddNumberToObject(r, "ms", (double)c->ms);
            char *s = cJSON_PrintUnformatted(r);
            fprintf(f, "%s\n", s);
            free(s);
            cJSON_Delete(r);
        }
        if (f)
            fclose(f);
    }

    int ok = pct >= 99.5 && canon_ok == canon;
    val_env_free(e.env);
    uv_loop_close(&e.loop);
    for (int i = 0; i < e.n; i++) {
        cJSON_Delete(e.cases[i].json);
        free(e.cases[i].message);
    }
    free(e.cases);
    return ok ? 0 : 1;
}
