/*
 * `cascade replay`: cascades run offline against recorded answers. Every
 * pass is a real `cascade run` (worker/run.c) with the recordings answering
 * the calls in-process, so the router, the validators and the output formats
 * are the production ones; only the HTTP is missing.
 *
 * With --runs K the batch is repeated from K starting runs (attempt i of a
 * (task, model) takes recorded run (start + i) mod R), and the figures are
 * given as mean and sample sd over the passes. One verdict cache is shared by
 * every pass of every cascade in the invocation: the validators are
 * deterministic for a task and an answer, so each distinct answer is
 * validated once, which is what makes a ten-run evaluation of a dozen plans
 * take minutes rather than an hour.
 *
 * Output files: pass 1 (start 0, the order in which mock-llm serves runs) is
 * written to -o; pass p > 1 beside it, with ".passNN" before the extension
 * (results.jsonl -> results.pass02.jsonl), so the pass files sort in pass
 * order and `tune` reads them as replay took them.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "cli.h"
#include "lib/jsonl.h"
#include "lib/util.h"
#include "worker/config.h"
#include "worker/eval/figures.h"
#include "worker/eval/plan_words.h"
#include "worker/eval/tune.h"
#include "worker/run.h"

#define SPECS_MAX 64
#define RUNS_MAX 1000

static const char usage_replay[] =
    "usage: cascade replay --tasks FILE --recordings FILE --cascade NAME|FILE... [options]\n"
    "       cascade replay --tasks FILE --recordings FILE --plan 'a*2>b'... [options]\n"
    "\n"
    "Runs the tasks through a cascade offline: each call is answered from the\n"
    "recordings (same JSONL as mock-llm's), with no HTTP and no API key; the router,\n"
    "the validators and the result and escalation formats are those of `run`.\n"
    "Attempt i of a (task, model) takes recorded run (start + i) mod R.\n"
    "\n"
    "options:\n"
    "  --tasks FILE         tasks JSONL\n"
    "  --recordings FILE    recorded answers JSONL\n"
    "  --cascade NAME|FILE  the cascade: a name in --cascades, or a cascade file;\n"
    "                       may be repeated to replay several (one shared verdict cache)\n"
    "  --plan PLAN          a plan in words, as the tables name plans: tiers\n"
    "                       separated by '>', each MODEL or MODEL*ATTEMPTS\n"
    "                       ('cheap*2>dear'); may be repeated and mixed with\n"
    "                       --cascade; the table names it as written\n"
    "  --base FILE          a cascade file whose match, validators and feedback the\n"
    "                       plans take [code; syntax, tests; no feedback]\n"
    "  --verdict-cache FILE verdicts kept across invocations: read at the start\n"
    "                       (none yet: empty), written back at the end; an entry\n"
    "                       is used only while its task's line in --tasks is the same\n"
    "  --cascades DIR       where names are looked up [cascades]\n"
    "  --gold FIELD         the task field holding a classify task's gold label [gold]\n"
    "  --models FILE        models file [DIR/models.json, or models.json beside FILE]\n"
    "  --runs K             repeat the batch from starting runs 0..K-1 and report mean\n"
    "                       and sd of pass rate and cost [1]\n"
    "  -o, --output FILE    results of pass 1 (start 0); pass p>1 goes to FILE with\n"
    "                       .passNN before the extension [stdout, pass 1 only]\n"
    "  --escalations FILE   escalation log, named per pass like -o [none]\n"
    "  --out-dir DIR        every cascade's results to DIR/<cascade>.jsonl (and\n"
    "                       .passNN.jsonl), escalations to DIR/<cascade>.esc.jsonl\n"
    "  --table FILE         the figures as JSON: a list of {plan, pass_rate,\n"
    "                       pass_rate_sd, cost_usd, cost_sd, vs_top, ...}\n"
    "  --oracle             add the oracle row (per task, the cheapest model whose\n"
    "                       answer passes), from the cascades that are one model with\n"
    "                       one attempt; needs --out-dir\n"
    "  --sandboxes N        sandboxed test runs at once [number of CPUs]\n"
    "  --concurrency N      tasks in flight at once [64]\n"
    "  --test-timeout SEC   wall-clock limit of one sandboxed test run [10]\n"
    "  --journal FILE       keep a journal, and so a similar-start cascade's history\n"
    "                       (one cascade, one run) [none]\n" WK_CLI_HISTORY_USAGE
    "  -q, --quiet          no progress lines\n"
    "  -h, --help           this text\n"
    "\n"
    "vs_top is the cost against the priciest single-model cascade replayed in the\n"
    "same invocation (always the top model); without one, against the cascade's top\n"
    "tier alone as run's summary prices it. Costs that rest on token counts the\n"
    "recordings mark \"usage_estimated\" are flagged.\n"
    "\n"
    "exit status: 0 done; 1 an input or output error; 2 usage error; 3 interrupted.\n";

typedef struct spec {
    const char *arg;
    int is_plan;     /* arg is a plan in words ("a*1>b*2"), not a cascade */
    char *plan_file; /* the plan written as a cascade file in the temporary directory */
    char *cascades;  /* a directory, or the cascade file itself */
    char *models;
    char *name;
    char *stem;          /* file-safe name for --out-dir */
    char *top_model;     /* the model of the cascade's top tier */
    int single;          /* one tier of one attempt: a single model, for the oracle */
    int estimated;       /* a tier's model has estimated token counts */
    char *results, *esc; /* pass-1 paths; NULL: not written */
    wk_figures *st;      /* [pass] */
} spec;

typedef struct replay {
    const char *tasks, *recordings, *cascades_dir, *models, *out, *esc, *out_dir, *table;
    const char *base_path, *vcache_path;
    cJSON *plan_base; /* --base: what plans take match, validators and feedback from */
    char *tmpdir;     /* where plans are written as cascade files; NULL until one is */
    int runs, oracle, quiet;
    wk_run_opts base;
    spec specs[SPECS_MAX];
    int nspecs;
    char *estimated_models[64];
    int nestimated;
} replay;

static double now_s(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* "a*1>b*2" -> "a_x1--b_x2": names in the eval are plans; anything else odd becomes _. */
static char *file_stem(const char *name)
{
    wk_buf b;
    wk_buf_init(&b, 4096);
    for (const char *p = name; *p; p++) {
        if (*p == '*')
            wk_buf_appendf(&b, "_x");
        else if (*p == '>')
            wk_buf_appendf(&b, "--");
        else if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '.' || *p == '-' || *p == '_')
            wk_buf_append(&b, p, 1);
        else
            wk_buf_append(&b, "_", 1);
    }
    return wk_buf_detach(&b, NULL);
}

/* The path of pass p (0-based) of base: base itself for pass 0. Caller frees. */
static char *pass_path(const char *base, int p, int runs)
{
    if (p == 0)
        return wk_xstrdup(base);
    int width = 2;
    for (int r = runs; r >= 100; r /= 10)
        width++;
    const char *slash = strrchr(base, '/');
    const char *dot = strrchr(base, '.');
    if (!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : base))
        return wk_xasprintf("%s.pass%0*d", base, width, p + 1);
    return wk_xasprintf("%.*s.pass%0*d%s", (int)(dot - base), base, width, p + 1, dot);
}

static int is_file(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int collect_estimated(void *arg, const cJSON *rec, long lineno)
{
    replay *R = arg;
    (void)lineno;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rec, "usage_estimated")))
        return 0;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(rec, "model");
    if (!cJSON_IsString(m))
        return 0;
    for (int i = 0; i < R->nestimated; i++)
        if (strcmp(R->estimated_models[i], m->valuestring) == 0)
            return 0;
    if (R->nestimated < 64)
        R->estimated_models[R->nestimated++] = wk_xstrdup(m->valuestring);
    return 0;
}

/* Writes the plan s->arg as a cascade file in R's temporary directory; errors on stderr. */
static int write_plan(replay *R, spec *s)
{
    char err[512];
    cJSON *c = NULL;
    char *text = NULL;
    int rc = wk_plan_words_cascade(s->arg, R->plan_base, &c, err, sizeof err);
    if (rc) {
        fprintf(stderr, "cascade replay: --plan \"%s\": %s\n", s->arg, err);
        goto cleanup;
    }
    if (!R->tmpdir) {
        const char *tmp = getenv("TMPDIR");
        char *templ = wk_xasprintf("%s/cascade-replay-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(templ)) {
            fprintf(stderr, "cascade replay: cannot make a temporary directory: %s\n",
                    strerror(errno));
            free(templ);
            rc = WK_EIO;
            goto cleanup;
        }
        R->tmpdir = templ;
    }
    s->plan_file = wk_xasprintf("%s/plan%02d.json", R->tmpdir, (int)(s - R->specs));
    text = cJSON_Print(c);
    FILE *f = fopen(s->plan_file, "w");
    if (!f || fputs(text, f) == EOF || fflush(f) == EOF) {
        fprintf(stderr, "cascade replay: cannot write %s: %s\n", s->plan_file, strerror(errno));
        rc = WK_EIO;
    }
    if (f)
        fclose(f);
cleanup:
    free(text);
    cJSON_Delete(c);
    return rc;
}

/* Finds the cascade behind s->arg and fills in the spec; errors on stderr. */
static int resolve(replay *R, spec *s)
{
    char err[512];
    wk_config cfg;
    int rc;
    if (s->is_plan) {
        rc = write_plan(R, s);
        if (rc)
            return rc;
        s->cascades = wk_xstrdup(s->plan_file);
        s->models =
            R->models ? wk_xstrdup(R->models) : wk_xasprintf("%s/models.json", R->cascades_dir);
    } else if (is_file(s->arg)) {
        s->cascades = wk_xstrdup(s->arg);
        if (R->models) {
            s->models = wk_xstrdup(R->models);
        } else {
            const char *slash = strrchr(s->arg, '/');
            s->models = slash ? wk_xasprintf("%.*s/models.json", (int)(slash - s->arg), s->arg)
                              : wk_xstrdup("models.json");
        }
    } else {
        s->cascades = wk_xstrdup(R->cascades_dir);
        s->models =
            R->models ? wk_xstrdup(R->models) : wk_xasprintf("%s/models.json", R->cascades_dir);
    }
    rc = wk_config_load(&cfg, s->models, s->cascades, WK_CONFIG_OFFLINE, err, sizeof err);
    if (rc) {
        fprintf(stderr, "cascade replay: %s\n", err);
        return rc;
    }
    const wk_cascade *c =
        s->is_plan || is_file(s->arg) ? &cfg.cascades[0] : wk_config_cascade(&cfg, s->arg);
    if (!c) {
        fprintf(stderr, "cascade replay: no cascade named \"%s\" in %s (and no such file)\n",
                s->arg, s->cascades);
        wk_config_free(&cfg);
        return WK_ENOTFOUND;
    }
    s->name = wk_xstrdup(c->name);
    s->stem = file_stem(c->name);
    s->single = c->ntiers == 1 && c->tiers[0].attempts == 1;
    s->top_model = wk_xstrdup(c->tiers[c->ntiers - 1].model->name);
    for (int t = 0; t < c->ntiers; t++)
        for (int i = 0; i < R->nestimated; i++)
            s->estimated |= strcmp(c->tiers[t].model->name, R->estimated_models[i]) == 0;
    wk_config_free(&cfg);
    return 0;
}

typedef struct figs {
    double rate, rate_sd, cost, cost_sd, top, vs_top;
    long top_estimated; /* tasks whose top-tier-alone price came from lower tiers' tokens */
    long tasks;
    long gold;               /* classify tasks with a gold label (pass 1) */
    double acc, acc_sd, cpc; /* accuracy and cost per correct label, mean over passes */
    int cost_recorded;       /* some cost came from the recordings' cost_usd */
} figs;

static void spec_figs(const replay *R, const spec *s, figs *f)
{
    double rate[RUNS_MAX], cost[RUNS_MAX], top[RUNS_MAX], sd;
    for (int p = 0; p < R->runs; p++) {
        rate[p] = wk_figures_pass_rate(&s->st[p]);
        cost[p] = s->st[p].cost_usd;
        top[p] = s->st[p].top_cost_usd;
    }
    wk_fig_mean_sd(rate, R->runs, &f->rate, &f->rate_sd);
    wk_fig_mean_sd(cost, R->runs, &f->cost, &f->cost_sd);
    wk_fig_mean_sd(top, R->runs, &f->top, &sd);
    f->vs_top = wk_fig_ratio(f->cost, f->top);
    f->tasks = wk_figures_valid(&s->st[0]);
    double acc[RUNS_MAX], cpc[RUNS_MAX];
    for (int p = 0; p < R->runs; p++) {
        acc[p] = wk_figures_accuracy(&s->st[p]);
        cpc[p] = wk_figures_cost_per_correct(&s->st[p]);
    }
    wk_fig_mean_sd(acc, R->runs, &f->acc, &f->acc_sd);
    wk_fig_mean_sd(cpc, R->runs, &f->cpc, &sd);
    f->gold = s->st[0].gold;
    f->top_estimated = s->st[0].top_estimated;
    f->cost_recorded = s->st[0].cost_recorded > 0;
}

/*
 * The baseline of vs_top: the priciest single-model cascade replayed here
 * ("always the top model", what the reference compares with), else
 * each cascade's own top tier as run's summary prices it. NULL: the latter.
 */
static const spec *baseline(const replay *R, double *cost)
{
    const spec *best = NULL;
    *cost = 0;
    for (int i = 0; i < R->nspecs; i++) {
        figs f;
        if (!R->specs[i].single)
            continue;
        spec_figs(R, &R->specs[i], &f);
        if (f.cost > *cost) {
            *cost = f.cost;
            best = &R->specs[i];
        }
    }
    return best;
}

static void rebase(const replay *R, figs *f)
{
    double base;
    if (baseline(R, &base) && base > 0)
        f->vs_top = wk_fig_ratio(f->cost, base);
}

static cJSON *table_row(const char *plan, const figs *f, int runs, int estimated)
{
    cJSON *o = cJSON_CreateObject();
    /* The price of the top tier alone, and how many tasks it took from lower tiers' tokens. */
    cJSON *top = cJSON_CreateObject();
    cJSON_AddNumberToObject(top, "cost_usd", round(f->top * 1e6) / 1e6);
    cJSON_AddNumberToObject(top, "tasks_from_lower_tiers", (double)f->top_estimated);
    cJSON_AddStringToObject(o, "plan", plan);
    cJSON_AddNumberToObject(o, "pass_rate", round(f->rate * 1e6) / 1e6);
    cJSON_AddNumberToObject(o, "pass_rate_sd", round(f->rate_sd * 1e6) / 1e6);
    cJSON_AddNumberToObject(o, "cost_usd", round(f->cost * 1e6) / 1e6);
    cJSON_AddNumberToObject(o, "cost_sd", round(f->cost_sd * 1e6) / 1e6);
    cJSON_AddNumberToObject(o, "vs_top", round(f->vs_top * 1e4) / 1e4);
    cJSON_AddNumberToObject(o, "runs", runs);
    cJSON_AddNumberToObject(o, "tasks", (double)f->tasks);
    cJSON_AddBoolToObject(o, "tokens_estimated", estimated);
    /* Classify tasks with gold labels: how many labels were right, and at what price. */
    if (f->gold > 0) {
        cJSON_AddNumberToObject(o, "accuracy", round(f->acc * 1e6) / 1e6);
        cJSON_AddNumberToObject(o, "accuracy_sd", round(f->acc_sd * 1e6) / 1e6);
        cJSON_AddNumberToObject(o, "cost_per_correct_usd", round(f->cpc * 1e9) / 1e9);
        cJSON_AddNumberToObject(o, "gold_tasks", (double)f->gold);
    }
    if (f->cost_recorded)
        cJSON_AddBoolToObject(o, "cost_recorded", 1);
    cJSON_AddItemToObject(o, "top_tier_alone", top);
    return o;
}

static void print_row(const char *plan, const figs *f, int estimated)
{
    fprintf(stderr, "  %-52s %.3f ± %.3f  %9.4f ± %.4f  %6.3f%s", plan, f->rate, f->rate_sd,
            f->cost, f->cost_sd, f->vs_top, estimated ? " *" : "");
    if (f->gold > 0)
        fprintf(stderr, "  accuracy %.3f", f->acc);
    if (f->cost_recorded)
        fprintf(stderr, " (recorded cost)");
    fprintf(stderr, "\n");
}

/* The oracle over the single-model cascades' pass files. */
static int oracle_figs(const replay *R, figs *f, int *estimated)
{
    char err[512];
    int rc = 0, n = 0;
    double top = 0;
    wk_obs *o = wk_obs_new();
    *estimated = 0;
    for (int i = 0; i < R->nspecs; i++) {
        const spec *s = &R->specs[i];
        if (!s->single)
            continue;
        n++;
        *estimated |= s->estimated;
        figs sf;
        spec_figs(R, s, &sf);
        if (sf.cost > top)
            top = sf.cost;
        for (int p = 0; p < R->runs && !rc; p++) {
            char *path = pass_path(s->results, p, R->runs);
            rc = wk_obs_add_results(o, path, err, sizeof err);
            free(path);
        }
        if (rc) {
            fprintf(stderr, "cascade replay: oracle: %s\n", err);
            goto cleanup;
        }
    }
    if (n == 0) {
        fprintf(stderr, "cascade replay: --oracle needs cascades of one model with one "
                        "attempt among those replayed\n");
        rc = WK_EINVAL;
        goto cleanup;
    }
    wk_sim sim;
    wk_obs_oracle(o, WK_SET_ALL, R->runs, &sim);
    f->rate = sim.pass_rate;
    f->rate_sd = sim.pass_rate_sd;
    f->cost = sim.cost_usd;
    f->cost_sd = sim.cost_sd;
    f->top = top;
    f->vs_top = wk_fig_ratio(sim.cost_usd, top); /* the priciest single model, as rebase() */
    f->tasks = sim.tasks;
cleanup:
    wk_obs_free(o);
    return rc;
}

static int write_table(const replay *R, const figs *oracle, int oracle_est)
{
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; i < R->nspecs; i++) {
        figs f;
        spec_figs(R, &R->specs[i], &f);
        rebase(R, &f);
        cJSON_AddItemToArray(list, table_row(R->specs[i].name, &f, R->runs, R->specs[i].estimated));
    }
    if (oracle)
        cJSON_AddItemToArray(list, table_row("oracle", oracle, R->runs, oracle_est));
    char *text = cJSON_Print(list);
    int rc = 0;
    FILE *f = fopen(R->table, "w");
    if (!f || fputs(text, f) == EOF || fputc('\n', f) == EOF || fflush(f) == EOF) {
        fprintf(stderr, "cascade replay: cannot write %s: %s\n", R->table, strerror(errno));
        rc = WK_EIO;
    }
    if (f)
        fclose(f);
    free(text);
    cJSON_Delete(list);
    return rc;
}

/* The single-model spec of `model` replayed here, one attempt; NULL when none. */
static const spec *single_of(const replay *R, const char *model)
{
    for (int i = 0; i < R->nspecs; i++)
        if (R->specs[i].single && strcmp(R->specs[i].top_model, model) == 0)
            return &R->specs[i];
    return NULL;
}

/*
 * "Top tier alone" is priced per task from the top tier's own attempt, else
 * from a lower tier's token counts at the top tier's prices. Say how many
 * tasks were priced the second way, and, when the top model was also
 * replayed alone here, how far that price is from what it really cost.
 */
#define TOP_NOTES_MAX 16

static void top_only_notes(const replay *R)
{
    int plans = 0, unpriced = 0;
    long from_lower = 0;
    for (int i = 0; i < R->nspecs; i++)
        plans += !R->specs[i].single;
    for (int i = 0; i < R->nspecs; i++) {
        const spec *s = &R->specs[i];
        figs f;
        if (s->single)
            continue;
        spec_figs(R, s, &f);
        from_lower += f.top_estimated;
        /* Recordings with a cost but no token counts leave nothing to price the top tier by. */
        if (f.top <= 0) {
            unpriced++;
            continue;
        }
        if (plans > TOP_NOTES_MAX)
            continue; /* one line for them all, below: a line per plan would bury the table */
        fprintf(stderr,
                "  %s: top tier alone (%s) priced at $%.4f, %ld of %ld tasks from lower "
                "tiers' token counts (pass 1)",
                s->name, s->top_model, f.top, f.top_estimated, f.tasks);
        const spec *alone = single_of(R, s->top_model);
        if (alone) {
            figs a;
            spec_figs(R, alone, &a);
            double off = wk_fig_percent_of(f.top - a.cost, a.cost);
            fprintf(stderr, "; %s alone cost $%.4f here, so that price is %.1f%% %s", alone->name,
                    a.cost, off < 0 ? -off : off, off < 0 ? "under" : "over");
        }
        fprintf(stderr, "\n");
    }
    if (plans > TOP_NOTES_MAX && plans > unpriced)
        fprintf(stderr,
                "  top tier alone: %ld tasks over %d plans priced from lower tiers' token counts "
                "(pass 1); per plan in --table's top_tier_alone\n",
                from_lower, plans - unpriced);
    if (unpriced)
        fprintf(stderr,
                "  top tier alone: %d plan%s not priced (the attempts carry no token counts)\n",
                unpriced, unpriced == 1 ? "" : "s");
}

static int run_all(replay *R)
{
    int code = WK_EXIT_OK;
    char err[512];
    wk_recs *recs = NULL;
    wk_vcache *vc = wk_vcache_new();
    double t0 = now_s();

    if (wk_recs_load(R->recordings, &recs, err, sizeof err) != 0 ||
        wk_jsonl_each(R->recordings, collect_estimated, R, 0, err, sizeof err) != 0) {
        fprintf(stderr, "cascade replay: %s\n", err);
        code = WK_EXIT_FAIL;
        goto cleanup;
    }
    if (R->vcache_path) {
        long loaded, stale;
        if (wk_vcache_load(vc, R->vcache_path, R->tasks, &loaded, &stale, err, sizeof err) != 0) {
            fprintf(stderr, "cascade replay: --verdict-cache: %s\n", err);
            code = WK_EXIT_FAIL;
            goto cleanup;
        }
        if (!R->quiet)
            fprintf(stderr, "replay: %ld verdicts from %s%s", loaded, R->vcache_path,
                    stale ? "" : "\n");
        if (!R->quiet && stale)
            fprintf(stderr, " (%ld dropped: their task is not in --tasks or its line changed)\n",
                    stale);
    }
    for (int i = 0; i < R->nspecs; i++) {
        spec *s = &R->specs[i];
        if (resolve(R, s) != 0) {
            code = WK_EXIT_FAIL;
            goto cleanup;
        }
        s->st = wk_xcalloc((size_t)R->runs, sizeof(wk_figures));
        if (R->out_dir) {
            s->results = wk_xasprintf("%s/%s.jsonl", R->out_dir, s->stem);
            s->esc = wk_xasprintf("%s/%s.esc.jsonl", R->out_dir, s->stem);
        } else {
            s->results = R->out ? wk_xstrdup(R->out) : NULL;
            s->esc = R->esc ? wk_xstrdup(R->esc) : NULL;
        }
    }
    if (R->out_dir && mkdir(R->out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "cascade replay: cannot make %s: %s\n", R->out_dir, strerror(errno));
        code = WK_EXIT_FAIL;
        goto cleanup;
    }

    int total = R->nspecs * R->runs, done = 0;
    for (int i = 0; i < R->nspecs; i++) {
        spec *s = &R->specs[i];
        for (int p = 0; p < R->runs; p++) {
            double t1 = now_s();
            long hits0 = wk_vcache_hits(vc);
            char *out = s->results ? pass_path(s->results, p, R->runs)
                                   : wk_xstrdup(p == 0 && R->nspecs == 1 ? "-" : "/dev/null");
            char *esc = s->esc ? pass_path(s->esc, p, R->runs) : NULL;
            wk_run_opts o = R->base;
            o.tasks_path = R->tasks;
            o.cascades_dir = s->cascades;
            o.models_path = s->models;
            o.cascade_name = s->name;
            o.out_path = out;
            o.esc_path = esc;
            o.recs = recs;
            o.replay_start = p;
            o.vcache = vc;
            o.stats = &s->st[p];
            /* One pass alone keeps run's own summary; several get one line each. */
            o.quiet = !(total == 1 && !R->quiet);
            wk_recs_rewind(recs);
            int rc = wk_run(&o);
            free(out);
            free(esc);
            if (rc != WK_EXIT_OK) {
                code = rc;
                goto cleanup;
            }
            done++;
            if (!R->quiet && total > 1) {
                fprintf(stderr,
                        "replay: [%d/%d] %s pass %d/%d: pass rate %.3f, $%.4f; %ld verdicts "
                        "from the cache; %.1f s\n",
                        done, total, s->name, p + 1, R->runs, wk_figures_pass_rate(&s->st[p]),
                        s->st[p].cost_usd, wk_vcache_hits(vc) - hits0, now_s() - t1);
            }
        }
    }

    figs oracle = {0};
    int oracle_est = 0;
    if (R->oracle && oracle_figs(R, &oracle, &oracle_est) != 0) {
        code = WK_EXIT_FAIL;
        goto cleanup;
    }
    if (!R->quiet && (total > 1 || R->table)) {
        int any_est = 0;
        fprintf(stderr, "\nreplay: %d run%s from start 0..%d, %.0f s, %ld verdicts reused\n",
                R->runs, R->runs == 1 ? "" : "s", R->runs - 1, now_s() - t0, wk_vcache_hits(vc));
        double base;
        const spec *b = baseline(R, &base);
        fprintf(stderr, "  %-52s %-13s  %-18s  %s\n", "plan", "pass rate", "cost (USD)", "vs top");
        for (int i = 0; i < R->nspecs; i++) {
            figs f;
            spec_figs(R, &R->specs[i], &f);
            rebase(R, &f);
            print_row(R->specs[i].name, &f, R->specs[i].estimated);
            any_est |= R->specs[i].estimated;
        }
        if (R->oracle)
            print_row("oracle", &oracle, oracle_est);
        if (b)
            fprintf(stderr, "  vs top: the cost against %s, the priciest single model here\n",
                    b->name);
        else
            fprintf(stderr, "  vs top: the cost against each cascade's top tier alone, "
                            "priced as run's summary does\n");
        top_only_notes(R);
        if (any_est) {
            fprintf(stderr, "  * token counts of");
            for (int i = 0; i < R->nestimated; i++)
                fprintf(stderr, "%s %s", i ? "," : "", R->estimated_models[i]);
            fprintf(stderr, " are estimated (the recordings say usage_estimated)\n");
        }
    }
    if (R->table && write_table(R, R->oracle ? &oracle : NULL, oracle_est) != 0)
        code = WK_EXIT_FAIL;
    if (R->vcache_path) {
        long saved;
        if (wk_vcache_save(vc, R->vcache_path, R->tasks, &saved, err, sizeof err) != 0) {
            fprintf(stderr, "cascade replay: --verdict-cache: %s\n", err);
            code = WK_EXIT_FAIL;
        } else if (!R->quiet) {
            fprintf(stderr, "replay: %ld verdicts kept in %s\n", saved, R->vcache_path);
        }
    }
cleanup:
    for (int i = 0; i < R->nspecs; i++) {
        spec *s = &R->specs[i];
        free(s->cascades);
        free(s->models);
        free(s->name);
        free(s->stem);
        free(s->top_model);
        free(s->results);
        free(s->esc);
        free(s->st);
        if (s->plan_file)
            unlink(s->plan_file);
        free(s->plan_file);
    }
    if (R->tmpdir)
        rmdir(R->tmpdir);
    free(R->tmpdir);
    cJSON_Delete(R->plan_base);
    for (int i = 0; i < R->nestimated; i++)
        free(R->estimated_models[i]);
    wk_vcache_free(vc);
    wk_recs_free(recs);
    return code;
}

int wk_cmd_replay(int argc, char **argv)
{
    replay *R = wk_xcalloc(1, sizeof *R);
    int code = WK_EXIT_USAGE;
    wk_run_opts_default(&R->base);
    R->cascades_dir = "cascades";
    R->runs = 1;
    enum {
        O_TASKS = 256,
        O_RECS,
        O_CASCADE,
        O_PLAN,
        O_BASE,
        O_VCACHE,
        O_GOLD,
        O_CASCADES,
        O_MODELS,
        O_RUNS,
        O_ESC,
        O_OUTDIR,
        O_TABLE,
        O_ORACLE,
        O_SANDBOXES,
        O_CONC,
        O_TTIMEOUT,
        O_JOURNAL
    };
    static const struct option opts[] = {
        {"tasks", required_argument, NULL, O_TASKS},
        {"recordings", required_argument, NULL, O_RECS},
        {"cascade", required_argument, NULL, O_CASCADE},
        {"plan", required_argument, NULL, O_PLAN},
        {"base", required_argument, NULL, O_BASE},
        {"verdict-cache", required_argument, NULL, O_VCACHE},
        {"gold", required_argument, NULL, O_GOLD},
        {"cascades", required_argument, NULL, O_CASCADES},
        {"models", required_argument, NULL, O_MODELS},
        {"runs", required_argument, NULL, O_RUNS},
        {"output", required_argument, NULL, 'o'},
        {"escalations", required_argument, NULL, O_ESC},
        {"out-dir", required_argument, NULL, O_OUTDIR},
        {"table", required_argument, NULL, O_TABLE},
        {"oracle", no_argument, NULL, O_ORACLE},
        {"sandboxes", required_argument, NULL, O_SANDBOXES},
        {"concurrency", required_argument, NULL, O_CONC},
        {"test-timeout", required_argument, NULL, O_TTIMEOUT},
        {"journal", required_argument, NULL, O_JOURNAL},
        WK_CLI_HISTORY_OPTIONS,
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        int hist = wk_cli_history_opt(c, optarg, &R->base);
        if (hist < 0)
            goto bad;
        if (hist)
            continue;
        switch (c) {
        case O_TASKS:
            R->tasks = optarg;
            break;
        case O_RECS:
            R->recordings = optarg;
            break;
        case O_CASCADE:
        case O_PLAN:
            if (R->nspecs == SPECS_MAX) {
                fprintf(stderr, "cascade replay: at most %d cascades and plans\n", SPECS_MAX);
                goto cleanup;
            }
            R->specs[R->nspecs].is_plan = c == O_PLAN;
            R->specs[R->nspecs++].arg = optarg;
            break;
        case O_BASE:
            R->base_path = optarg;
            break;
        case O_VCACHE:
            R->vcache_path = optarg;
            break;
        case O_CASCADES:
            R->cascades_dir = optarg;
            break;
        case O_GOLD:
            R->base.gold_field = optarg;
            break;
        case O_MODELS:
            R->models = optarg;
            break;
        case O_RUNS:
            if (wk_cli_long(optarg, 1, RUNS_MAX, &v))
                goto bad;
            R->runs = (int)v;
            break;
        case 'o':
            R->out = optarg;
            break;
        case O_ESC:
            R->esc = optarg;
            break;
        case O_OUTDIR:
            R->out_dir = optarg;
            break;
        case O_TABLE:
            R->table = optarg;
            break;
        case O_ORACLE:
            R->oracle = 1;
            break;
        case O_SANDBOXES:
            if (wk_cli_long(optarg, 1, 1024, &v))
                goto bad;
            R->base.max_sandboxes = (int)v;
            break;
        case O_CONC:
            if (wk_cli_long(optarg, 1, 100000, &v))
                goto bad;
            R->base.concurrency = (int)v;
            break;
        case O_TTIMEOUT:
            if (wk_cli_long(optarg, 1, 3600, &v))
                goto bad;
            R->base.test_timeout_ms = (unsigned)(v * 1000);
            break;
        case O_JOURNAL:
            R->base.journal_path = optarg;
            break;
        case 'q':
            R->quiet = 1;
            break;
        case 'h':
            fputs(usage_replay, stdout);
            code = 0;
            goto cleanup;
        default:
            fputs(usage_replay, stderr);
            goto cleanup;
        }
    }
    const char *why = NULL;
    if (optind != argc)
        why = "unexpected argument";
    else if (!R->tasks || !R->recordings || R->nspecs == 0)
        why = "--tasks, --recordings and a --cascade or --plan are required";
    else if ((R->out || R->esc) && R->nspecs > 1)
        why = "-o and --escalations take one cascade; use --out-dir for several";
    else if ((R->out || R->esc) && R->out_dir)
        why = "give -o/--escalations or --out-dir, not both";
    else if (R->base.journal_path && (R->nspecs > 1 || R->runs > 1))
        why = "--journal takes one cascade and one run (a second pass would resume from it)";
    else if (R->oracle && !R->out_dir)
        why = "--oracle reads the single models' results back: it needs --out-dir";
    if (why) {
        fprintf(stderr, "cascade replay: %s\n\n%s", why, usage_replay);
        goto cleanup;
    }
    if (R->base_path && wk_cli_json_object("replay", R->base_path, &R->plan_base) != 0) {
        code = WK_EXIT_FAIL;
        goto cleanup;
    }
    code = run_all(R);
    goto cleanup;
bad:
    for (const struct option *p = opts; p->name; p++)
        if (p->val == c)
            fprintf(stderr, "cascade replay: bad value \"%s\" for --%s\n", optarg, p->name);
cleanup:
    free(R);
    return code;
}
