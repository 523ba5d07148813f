/*
 * `cascade bakeoff`: the seed workflow "take 20-30 representative tasks, run
 * them against 3-4 candidate models, compare". Each model becomes a one-tier
 * cascade of one attempt, and each of the K runs of it is a real `run`
 * (worker/run.c): rate limits, retries, the run budget and the journal are
 * run's own. What the runs answered becomes DIR/recordings.jsonl, so replay
 * and tune can work on the same answers offline afterwards at no cost.
 *
 * Files and figures: worker/eval/bakeoff.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "lib/util.h"
#include "worker/eval/bakeoff.h"
#include "worker/run.h"

static const char usage_bakeoff[] =
    "usage: cascade bakeoff --tasks FILE --models A,B,... -o DIR [options]\n"
    "       cascade bakeoff --scores FILE -o DIR\n"
    "\n"
    "Calls each model on each task K times, as `run` would (each model alone, one\n"
    "attempt, its own results file and journal per run), and writes in DIR:\n"
    "  recordings.jsonl  every answer, in mock-llm's format: `replay --recordings`\n"
    "                    and `tune` work on it offline afterwards\n"
    "  table.json        per model: pass rate (mean and sd over the runs), cost per\n"
    "                    run, cost per solved task, mean latency of a call\n"
    "  report.txt        the table as text (also printed)\n"
    "  results/, journal/, cascades/  each run's results, journal and cascade\n"
    "Started again into the same DIR, it resumes from the journals as `run` does:\n"
    "what was answered is not called again.\n"
    "With --target, `tune` learns the cheapest plan of these models that reaches it\n"
    "(DIR/tuned.json, DIR/tune.json).\n"
    "\n"
    "For answers no validator can judge, --blind PAGE writes a self-contained review\n"
    "page: each task's answers (run 1 of each model) shuffled, without model names,\n"
    "a 1-5 score each and an Export button. --scores FILE -o DIR puts the exported\n"
    "scores in DIR's table (DIR/blind-key.json says whose answer each was).\n"
    "\n"
    "options:\n"
    "  --tasks FILE          tasks JSONL\n"
    "  --models A,B,...      the models to compare (names in the models file)\n"
    "  --runs K              calls per (task, model) [1]\n"
    "  -o, --out-dir DIR     where everything goes (made if missing)\n"
    "  --models-file FILE    models file [models.json]\n"
    "  --base FILE           a cascade file whose match, validators and feedback each\n"
    "                        model's cascade takes [syntax, tests; no feedback]\n"
    "  --target P            tune for pass rate P (0..1) on the bake-off's results\n"
    "  --metric M            what tune's target is: pass or accuracy [pass]\n"
    "  --budget USD          stop the bake-off once it has spent this much [none]\n"
    "  --concurrency N       tasks in flight at once [run's default]\n"
    "  --sandboxes N         sandboxed test runs at once [number of CPUs]\n"
    "  --test-timeout SEC    wall-clock limit of one sandboxed test run [10]\n"
    "  --blind PAGE          write the blind review page to PAGE\n"
    "  --seed N              the review's shuffle [from the clock]\n"
    "  --scores FILE         unblind the review's exported scores into DIR's table\n"
    "  -q, --quiet           no progress lines\n"
    "  -h, --help            this text\n"
    "\n"
    "exit status: 0 done; 1 an input or output error, or tune found no plan that\n"
    "reaches the target; 2 usage error; 3 interrupted, or the budget ran out.\n";

typedef struct bakeoff {
    const char *tasks, *models_arg, *dir, *models_file, *base_path, *blind, *scores, *metric;
    double target, budget;
    int have_target, runs, quiet, have_seed;
    unsigned long long seed;
    wk_run_opts base;
} bakeoff;

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    fprintf(stderr, "cascade bakeoff: cannot make %s: %s\n", path, strerror(errno));
    return WK_EIO;
}

static int write_json(const char *path, const cJSON *j)
{
    char *text = cJSON_Print(j);
    int rc = 0;
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) == EOF || fputc('\n', f) == EOF || fflush(f) == EOF) {
        fprintf(stderr, "cascade bakeoff: cannot write %s: %s\n", path, strerror(errno));
        rc = WK_EIO;
    }
    if (f)
        fclose(f);
    free(text);
    return rc;
}

/* A one-tier cascade of one attempt at `model`, named after it, with base's validators. */
static cJSON *model_cascade(const char *model, const cJSON *base)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddStringToObject(c, "name", model);
    const cJSON *match = cJSON_GetObjectItemCaseSensitive(base, "match");
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(base, "validators");
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive(base, "feedback");
    if (match)
        cJSON_AddItemToObject(c, "match", cJSON_Duplicate(match, 1));
    if (cJSON_IsArray(vals)) {
        cJSON_AddItemToObject(c, "validators", cJSON_Duplicate(vals, 1));
    } else {
        cJSON *v = cJSON_AddArrayToObject(c, "validators");
        cJSON_AddItemToArray(v, cJSON_CreateString("syntax"));
        cJSON_AddItemToArray(v, cJSON_CreateString("tests"));
    }
    /*
     * Copied from the base: a classify base's schema and label settings, which its
     * validators read, and its data policy, which must narrow each model's runs as it
     * narrows the base's (a models-file policy alone may allow more).
     */
    static const char *const keep[] = {"schema", "label_field", "doubt_feedback", "data_policy",
                                       NULL};
    for (int i = 0; keep[i]; i++) {
        const cJSON *k = cJSON_GetObjectItemCaseSensitive(base, keep[i]);
        if (k)
            cJSON_AddItemToObject(c, keep[i], cJSON_Duplicate(k, 1));
    }
    cJSON_AddBoolToObject(c, "feedback", cJSON_IsTrue(fb));
    cJSON *tiers = cJSON_AddArrayToObject(c, "tiers");
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "model", model);
    cJSON_AddNumberToObject(t, "attempts", 1);
    cJSON_AddItemToArray(tiers, t);
    return c;
}

/* Splits "a,b,c" into at most WK_BAKE_MODELS_MAX names (pointers into *buf, which it allocates). */
static int split_models(const char *arg, char **buf, const char **names, int *n)
{
    *buf = wk_xstrdup(arg);
    *n = 0;
    for (char *p = *buf, *comma;; p = comma + 1) {
        if (*n == WK_BAKE_MODELS_MAX)
            return -1;
        comma = strchr(p, ',');
        if (comma)
            *comma = '\0';
        names[(*n)++] = p;
        if (!comma)
            break;
    }
    return 0;
}

/* The manifest: what --scores needs to rebuild the table later. */
static int write_manifest(const bakeoff *B, const wk_bake *k)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *ms = cJSON_AddArrayToObject(j, "models");
    for (int m = 0; m < k->nmodels; m++)
        cJSON_AddItemToArray(ms, cJSON_CreateString(k->models[m]));
    cJSON_AddNumberToObject(j, "runs", k->runs);
    cJSON_AddStringToObject(j, "tasks", B->tasks);
    char *path = wk_xasprintf("%s/bakeoff.json", B->dir);
    int rc = write_json(path, j);
    free(path);
    cJSON_Delete(j);
    return rc;
}

/* table.json and report.txt from the results (and the scores, when given). */
static int write_table(const bakeoff *B, const wk_bake *k, const cJSON *scores)
{
    char err[512];
    cJSON *table = NULL;
    char *tpath = wk_xasprintf("%s/table.json", B->dir);
    char *rpath = wk_xasprintf("%s/report.txt", B->dir);
    int rc = wk_bake_table(k, scores, &table, err, sizeof err);
    if (rc) {
        fprintf(stderr, "cascade bakeoff: %s\n", err);
        goto cleanup;
    }
    rc = write_json(tpath, table);
    if (rc)
        goto cleanup;
    FILE *f = fopen(rpath, "w");
    if (!f) {
        fprintf(stderr, "cascade bakeoff: cannot write %s: %s\n", rpath, strerror(errno));
        rc = WK_EIO;
        goto cleanup;
    }
    fprintf(f, "bake-off: %d model%s x %d run%s (%s)\n", k->nmodels, k->nmodels == 1 ? "" : "s",
            k->runs, k->runs == 1 ? "" : "s", k->dir);
    wk_bake_table_print(table, f);
    if (fclose(f) != 0) {
        fprintf(stderr, "cascade bakeoff: cannot write %s: %s\n", rpath, strerror(errno));
        rc = WK_EIO;
        goto cleanup;
    }
    if (!B->quiet) {
        fprintf(stderr, "\nbake-off: %d model%s x %d run%s\n", k->nmodels,
                k->nmodels == 1 ? "" : "s", k->runs, k->runs == 1 ? "" : "s");
        wk_bake_table_print(table, stderr);
        fprintf(stderr, "  table: %s; report: %s\n", tpath, rpath);
    }
cleanup:
    cJSON_Delete(table);
    free(tpath);
    free(rpath);
    return rc;
}

/* `tune` on the bake-off's results, in-process, with its own report on stdout. */
static int run_tune(const bakeoff *B, const wk_bake *k)
{
    char target[32];
    snprintf(target, sizeof target, "%.6g", B->target);
    int cap = 24 + k->nmodels * k->runs, n = 0;
    char **argv = wk_xcalloc((size_t)cap, sizeof(char *));
    char *out = wk_xasprintf("%s/tuned.json", B->dir);
    char *sum = wk_xasprintf("%s/tune.json", B->dir);
    argv[n++] = "tune";
    argv[n++] = "--target";
    argv[n++] = target;
    argv[n++] = "--tasks";
    argv[n++] = (char *)B->tasks;
    argv[n++] = "-o";
    argv[n++] = out;
    argv[n++] = "--summary";
    argv[n++] = sum;
    argv[n++] = "--name";
    argv[n++] = "bakeoff-tuned";
    if (B->base_path) {
        argv[n++] = "--base";
        argv[n++] = (char *)B->base_path;
    }
    if (B->metric) {
        argv[n++] = "--metric";
        argv[n++] = (char *)B->metric;
    }
    argv[n++] = "--from";
    int first = n;
    /* Run order per model, as tune reads observations: attempt i takes run i. */
    for (int m = 0; m < k->nmodels; m++)
        for (int r = 0; r < k->runs; r++)
            argv[n++] = wk_bake_results_path(k, m, r);
    argv[n] = NULL;
    if (!B->quiet)
        fprintf(stderr, "\nbake-off: tune --target %s on %d results files\n", target, n - first);
    fflush(stderr);
    int rc = wk_cmd_tune(n, argv);
    fflush(stdout);
    for (int i = first; i < n; i++)
        free(argv[i]);
    free(argv);
    free(out);
    free(sum);
    return rc;
}

static int bake(bakeoff *B)
{
    char err[512];
    int code = WK_EXIT_FAIL;
    const char *names[WK_BAKE_MODELS_MAX];
    char *namebuf = NULL;
    int nnames = 0;
    cJSON *base = NULL;
    wk_bake k;
    memset(&k, 0, sizeof k);
    if (split_models(B->models_arg, &namebuf, names, &nnames) != 0) {
        fprintf(stderr, "cascade bakeoff: at most %d models\n", WK_BAKE_MODELS_MAX);
        code = WK_EXIT_USAGE;
        goto cleanup;
    }
    if (wk_bake_init(&k, B->dir, names, nnames, B->runs, err, sizeof err) != 0) {
        fprintf(stderr, "cascade bakeoff: %s\n", err);
        code = WK_EXIT_USAGE;
        goto cleanup;
    }
    if (B->base_path && wk_cli_json_object("bakeoff", B->base_path, &base) != 0)
        goto cleanup;
    char *sub[3] = {wk_xasprintf("%s/results", B->dir), wk_xasprintf("%s/journal", B->dir),
                    wk_xasprintf("%s/cascades", B->dir)};
    int bad = make_dir(B->dir);
    for (int i = 0; i < 3; i++) {
        bad = bad || make_dir(sub[i]);
        free(sub[i]);
    }
    if (bad || write_manifest(B, &k) != 0)
        goto cleanup;
    char **casc = wk_xcalloc((size_t)k.nmodels, sizeof(char *));
    for (int m = 0; m < k.nmodels && !bad; m++) {
        casc[m] = wk_xasprintf("%s/cascades/%s.json", B->dir, k.stems[m]);
        cJSON *c = model_cascade(k.models[m], base);
        bad = write_json(casc[m], c) != 0;
        cJSON_Delete(c);
    }

    /* Run-major: a bake-off the budget stops early still has every model's first runs. */
    double spent = 0;
    int stopped = 0;
    for (int r = 0; r < k.runs && !bad && !stopped; r++) {
        for (int m = 0; m < k.nmodels && !bad && !stopped; m++) {
            wk_run_stats st;
            memset(&st, 0, sizeof st);
            char *out = wk_bake_results_path(&k, m, r);
            char *journal = wk_bake_journal_path(&k, m, r);
            /*
             * An existing journal is run's resume: a bake-off stopped (a signal, the
             * budget) and started again into DIR calls only what it had not.
             */
            wk_run_opts o = B->base;
            o.tasks_path = B->tasks;
            o.cascades_dir = casc[m];
            o.models_path = B->models_file;
            o.cascade_name = k.models[m];
            o.out_path = out;
            o.journal_path = journal;
            o.stats = &st;
            o.quiet = 1;
            if (B->budget > 0)
                o.budget_usd = B->budget - spent;
            int rc = wk_run(&o);
            free(out);
            free(journal);
            spent += st.cost_usd;
            if (rc == WK_EXIT_INTERRUPTED) {
                fprintf(stderr,
                        "bake-off: stopped in run %d of %s (interrupted or the budget "
                        "ran out); $%.4f spent\n",
                        r + 1, k.models[m], spent);
                stopped = 1;
            } else if (rc != WK_EXIT_OK) {
                bad = 1;
            } else if (!B->quiet) {
                fprintf(stderr, "bake-off: %s run %d/%d: %ld of %ld accepted, $%.4f\n", k.models[m],
                        r + 1, k.runs, st.accepted, wk_figures_valid(&st), st.cost_usd);
            }
            if (!stopped && B->budget > 0 && spent >= B->budget &&
                (r + 1 < k.runs || m + 1 < k.nmodels)) {
                fprintf(stderr, "bake-off: the budget of $%.4f is spent after run %d of %s\n",
                        B->budget, r + 1, k.models[m]);
                stopped = 1;
            }
        }
    }
    for (int m = 0; m < k.nmodels; m++)
        free(casc[m]);
    free(casc);
    if (bad)
        goto cleanup;
    if (stopped) {
        code = WK_EXIT_INTERRUPTED;
        goto cleanup;
    }

    long nrec = 0;
    if (wk_bake_recordings(&k, &nrec, err, sizeof err) != 0) {
        fprintf(stderr, "cascade bakeoff: %s\n", err);
        goto cleanup;
    }
    if (!B->quiet)
        fprintf(stderr, "bake-off: %ld answers in %s/recordings.jsonl\n", nrec, B->dir);
    if (write_table(B, &k, NULL) != 0)
        goto cleanup;
    if (B->blind) {
        long n = 0;
        char *key = wk_xasprintf("%s/blind-key.json", B->dir);
        unsigned long long seed =
            B->have_seed ? B->seed
                         : (unsigned long long)time(NULL) ^ ((unsigned long long)getpid() << 32);
        int rc = wk_bake_blind(&k, B->tasks, B->blind, key, seed, &n, err, sizeof err);
        if (rc)
            fprintf(stderr, "cascade bakeoff: --blind: %s\n", err);
        else if (!B->quiet)
            fprintf(stderr, "bake-off: blind review of %ld answers in %s (the key: %s)\n", n,
                    B->blind, key);
        free(key);
        if (rc)
            goto cleanup;
    }
    code = WK_EXIT_OK;
    if (B->have_target && run_tune(B, &k) != WK_EXIT_OK)
        code = WK_EXIT_FAIL;
cleanup:
    cJSON_Delete(base);
    wk_bake_release(&k);
    free(namebuf);
    return code;
}

/* --scores: the manifest says which models and runs; the key says whose each answer was. */
static int unblind(const bakeoff *B)
{
    char err[512];
    int code = WK_EXIT_FAIL;
    cJSON *man = NULL, *scores = NULL;
    wk_bake k;
    memset(&k, 0, sizeof k);
    char *mpath = wk_xasprintf("%s/bakeoff.json", B->dir);
    char *key = wk_xasprintf("%s/blind-key.json", B->dir);
    const char *names[WK_BAKE_MODELS_MAX];
    int n = 0;
    if (wk_cli_json_object("bakeoff", mpath, &man) != 0)
        goto cleanup;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(man, "models"))
    {
        if (cJSON_IsString(m) && n < WK_BAKE_MODELS_MAX)
            names[n++] = m->valuestring;
    }
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(man, "runs");
    if (wk_bake_init(&k, B->dir, names, n, cJSON_IsNumber(runs) ? runs->valueint : 0, err,
                     sizeof err) != 0 ||
        wk_bake_unblind(key, B->scores, &scores, err, sizeof err) != 0) {
        fprintf(stderr, "cascade bakeoff: %s\n", err);
        goto cleanup;
    }
    if (write_table(B, &k, scores) != 0)
        goto cleanup;
    code = WK_EXIT_OK;
cleanup:
    cJSON_Delete(man);
    cJSON_Delete(scores);
    wk_bake_release(&k);
    free(mpath);
    free(key);
    return code;
}

int wk_cmd_bakeoff(int argc, char **argv)
{
    bakeoff B;
    memset(&B, 0, sizeof B);
    wk_run_opts_default(&B.base);
    B.runs = 1;
    B.models_file = "models.json";
    enum {
        O_TASKS = 256,
        O_MODELS,
        O_RUNS,
        O_MFILE,
        O_BASE,
        O_TARGET,
        O_METRIC,
        O_BUDGET,
        O_CONC,
        O_SANDBOXES,
        O_TTIMEOUT,
        O_BLIND,
        O_SEED,
        O_SCORES
    };
    static const struct option opts[] = {
        {"tasks", required_argument, NULL, O_TASKS},
        {"models", required_argument, NULL, O_MODELS},
        {"runs", required_argument, NULL, O_RUNS},
        {"out-dir", required_argument, NULL, 'o'},
        {"models-file", required_argument, NULL, O_MFILE},
        {"base", required_argument, NULL, O_BASE},
        {"target", required_argument, NULL, O_TARGET},
        {"metric", required_argument, NULL, O_METRIC},
        {"budget", required_argument, NULL, O_BUDGET},
        {"concurrency", required_argument, NULL, O_CONC},
        {"sandboxes", required_argument, NULL, O_SANDBOXES},
        {"test-timeout", required_argument, NULL, O_TTIMEOUT},
        {"blind", required_argument, NULL, O_BLIND},
        {"seed", required_argument, NULL, O_SEED},
        {"scores", required_argument, NULL, O_SCORES},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_TASKS:
            B.tasks = optarg;
            break;
        case O_MODELS:
            B.models_arg = optarg;
            break;
        case O_RUNS:
            bad = wk_cli_long(optarg, 1, WK_BAKE_RUNS_MAX, &v);
            B.runs = (int)v;
            break;
        case 'o':
            B.dir = optarg;
            break;
        case O_MFILE:
            B.models_file = optarg;
            break;
        case O_BASE:
            B.base_path = optarg;
            break;
        case O_TARGET:
            bad = wk_cli_double(optarg, 0, 1, &B.target);
            B.have_target = 1;
            break;
        case O_METRIC:
            bad = strcmp(optarg, "pass") != 0 && strcmp(optarg, "accuracy") != 0;
            B.metric = optarg;
            break;
        case O_BUDGET:
            bad = wk_cli_double(optarg, 0, 1e9, &B.budget);
            break;
        case O_CONC:
            bad = wk_cli_long(optarg, 1, 100000, &v);
            B.base.concurrency = (int)v;
            break;
        case O_SANDBOXES:
            bad = wk_cli_long(optarg, 1, 1024, &v);
            B.base.max_sandboxes = (int)v;
            break;
        case O_TTIMEOUT:
            bad = wk_cli_long(optarg, 1, 3600, &v);
            B.base.test_timeout_ms = (unsigned)(v * 1000);
            break;
        case O_BLIND:
            B.blind = optarg;
            break;
        case O_SEED:
            bad = wk_cli_long(optarg, 0, 0x7fffffffffffffffL, &v);
            B.seed = (unsigned long long)v;
            B.have_seed = 1;
            break;
        case O_SCORES:
            B.scores = optarg;
            break;
        case 'q':
            B.quiet = 1;
            break;
        case 'h':
            fputs(usage_bakeoff, stdout);
            return 0;
        default:
            fputs(usage_bakeoff, stderr);
            return WK_EXIT_USAGE;
        }
        if (bad) {
            for (const struct option *p = opts; p->name; p++)
                if (p->val == c)
                    fprintf(stderr, "cascade bakeoff: bad value \"%s\" for --%s\n", optarg,
                            p->name);
            return WK_EXIT_USAGE;
        }
    }
    const char *why = NULL;
    if (optind != argc)
        why = "unexpected argument";
    else if (!B.dir)
        why = "-o DIR is required";
    else if (B.scores && (B.tasks || B.models_arg || B.blind || B.have_target))
        why = "--scores takes only -o DIR (the bake-off's directory)";
    else if (!B.scores && (!B.tasks || !B.models_arg))
        why = "--tasks and --models are required";
    if (why) {
        fprintf(stderr, "cascade bakeoff: %s\n\n%s", why, usage_bakeoff);
        return WK_EXIT_USAGE;
    }
    return B.scores ? unblind(&B) : bake(&B);
}
