/*
 * `cascade tune`: its options, the plain-words report and the cascade file.
 * The search is in tune.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "lib/jsonl.h"
#include "lib/util.h"
#include "worker/eval/figures.h"
#include "worker/eval/tune.h"

#define FROM_MAX 4096

static const char usage_tune[] =
    "usage: cascade tune --from RESULTS.jsonl... --target PASS_RATE [options]\n"
    "\n"
    "Learns from our own validators' verdicts the plan that costs least while\n"
    "reaching the target pass rate: the tier order, the attempts per tier, and\n"
    "simple skip rules by task features (kind, language, prompt length, whether it\n"
    "has tests). It fits on one half of the tasks (split by a hash of the id),\n"
    "reports cost and pass rate on the other half, prints the plan in plain words\n"
    "and writes it as a cascade file.\n"
    "\n"
    "Give results where every model answered every task, in the order they were\n"
    "made: the best input is a replay of each model alone, one attempt, over K\n"
    "starting runs (replay --runs K --out-dir D writes D/<model>_x1.jsonl and\n"
    "D/<model>_x1.passNN.jsonl). Attempt i of (task, model) is simulated with the\n"
    "observation (start + i) mod R, as replay takes recorded runs.\n"
    "\n"
    "options:\n"
    "  --from FILE          a results file; repeat, or list several after it\n"
    "  --tasks FILE         the tasks, for their features [prompt length from the\n"
    "                       attempts' prompt_tokens; no kind, language or tests]\n"
    "  --target P           pass rate (or accuracy) to reach on the fit half (0..1)\n"
    "  --metric M           pass (an accepted answer counts) or accuracy (classify:\n"
    "                       the accepted label is the task's gold one; the plans also\n"
    "                       try agreement pairs and, when the attempts carry a\n"
    "                       confidence, thresholds) [pass]\n"
    "  --margin M           ... plus this margin, because the cheapest plan that just\n"
    "                       reaches P on one half falls short on the other about half\n"
    "                       the time [0.01]\n"
    "  --budget-per-task USD  mean cost per task the plan may not exceed\n"
    "  --max-attempts N     attempts per tier [observations per (task, model)]\n"
    "  --max-tiers N        tiers in a plan [3, or up to the number of models (6 at\n"
    "                       most) while the search is estimated under 5 seconds]\n"
    "  --max-rules N        skip rules in all, 0 for none [2]\n"
    "  --runs K             starting runs to average over [observations]\n"
    "  --base FILE          a cascade file whose match, validators and feedback the\n"
    "                       tuned cascade keeps [code; syntax, tests; no feedback]\n"
    "  --name NAME          the tuned cascade's name [tuned]\n"
    "  -o, --output FILE    the cascade JSON [stdout]\n"
    "  --summary FILE       the figures (fit, held-out, top model, oracle) as JSON\n"
    "  -h, --help           this text\n"
    "\n"
    "Skip rules are written as \"skip_when\" in the tier, which the router honours.\n"
    "Only results of one model with one attempt per task are observations: a file\n"
    "with two models, or a task with two attempts, is left out (and said so).\n"
    "\n"
    "exit status: 0 a plan reaches the target on the fit half; 1 none does (the\n"
    "plan with the best pass rate is written) or an input error; 2 usage error.\n";

/* A whole number given as any number ("3" or "3.0"). */
static int parse_int(const char *s, int lo, int hi, int *out)
{
    double v;
    if (wk_cli_double(s, lo, hi, &v) || v != (int)v)
        return -1;
    *out = (int)v;
    return 0;
}

static void print_sim(FILE *f, const char *what, const wk_sim *s, const wk_sim *top)
{
    char cost[32];
    snprintf(cost, sizeof cost, "$%.4f", s->cost_usd);
    fprintf(f, "  %-38s %3d  %.3f ± %.3f  %9s ± %.4f", what, s->tasks, s->pass_rate,
            s->pass_rate_sd, cost, s->cost_sd);
    if (top && top->cost_usd > 0)
        fprintf(f, "  %6.1f%%", wk_fig_percent_of(s->cost_usd, top->cost_usd));
    fprintf(f, "\n");
}

/* What one results file holds: the models of its attempts, and its most attempts on a line. */
typedef struct file_shape {
    char model[256]; /* the first attempt's model */
    char other[256]; /* a second model, "" when none */
    long max_attempts;
    long max_line;
} file_shape;

static int shape_line(void *arg, const cJSON *line, long lineno)
{
    file_shape *fs = arg;
    const cJSON *atts = cJSON_GetObjectItemCaseSensitive(line, "attempts");
    long n = cJSON_GetArraySize(atts);
    if (n > fs->max_attempts) {
        fs->max_attempts = n;
        fs->max_line = lineno;
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, atts)
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(a, "model");
        if (!cJSON_IsString(m))
            continue;
        if (!fs->model[0])
            snprintf(fs->model, sizeof fs->model, "%s", m->valuestring);
        else if (!fs->other[0] && strcmp(fs->model, m->valuestring) != 0)
            snprintf(fs->other, sizeof fs->other, "%s", m->valuestring);
    }
    return 0;
}

/*
 * 1 when the results file is one model with one attempt per task (what tune
 * observes), 0 when not (why says how, for the terminal), negative when it
 * cannot be read. A plan's results would count its attempts at a model as
 * that model's repeated observations, and its climbs as a second model's.
 */
static int one_model_one_attempt(const char *path, char *why, size_t whylen)
{
    char err[512];
    file_shape fs = {0};
    int rc = wk_jsonl_each(path, shape_line, &fs, 1, err, sizeof err);
    if (rc) {
        fprintf(stderr, "cascade tune: %s\n", err);
        return rc;
    }
    char *a = wk_escape_ctl(fs.model, strlen(fs.model), 200);
    char *b = wk_escape_ctl(fs.other, strlen(fs.other), 200);
    if (fs.other[0])
        snprintf(why, whylen, "attempts of two models (%s and %s)", a, b);
    else if (fs.max_attempts > 1)
        snprintf(why, whylen, "line %ld has %ld attempts", fs.max_line, fs.max_attempts);
    free(a);
    free(b);
    return !fs.other[0] && fs.max_attempts <= 1;
}

typedef struct tune_paths {
    const char *tasks, *base, *name, *out, *summary;
    int grow_tiers; /* no --max-tiers: grow past 3 while the search stays short */
} tune_paths;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Ordered plans of up to k tiers of m models, a attempts each: sum of m!/(m-j)! a^j. */
static double plans_upto(int m, int k, int a)
{
    double total = 0, term = 1;
    for (int j = 1; j <= k && j <= m; j++) {
        term *= (double)(m - j + 1) * a;
        total += term;
    }
    return total;
}

#define GROW_BUDGET_S 5.0

/*
 * The default of --max-tiers: 3, grown towards the number of models while the
 * search, estimated from the time the 3-tier one took per plan, stays under
 * GROW_BUDGET_S. A longer plan can be far cheaper at the same pass rate, and
 * a few models search in well under a second.
 */
static int grow_tiers(const wk_obs *o, const wk_tune_opts *opts, double took, wk_tune_result *res,
                      FILE *rep, char *err, size_t errlen)
{
    wk_tune_opts t = *opts;
    int m = wk_obs_nmodels(o), cap = m < WK_PLAN_TIERS_MAX ? m : WK_PLAN_TIERS_MAX;
    int a = t.max_attempts > 0 ? t.max_attempts : wk_obs_max_runs(o);
    if (cap <= 3)
        return 0;
    double base = plans_upto(m, 3, a);
    int k = 3;
    double est = took;
    while (k < cap && took * plans_upto(m, k + 1, a) / base <= GROW_BUDGET_S) {
        k++;
        est = took * plans_upto(m, k, a) / base;
    }
    if (k == 3) {
        fprintf(rep,
                "tune: 3 tiers of %d models (the search at 3 took %.2f s; 4 would take about "
                "%.0f s: give --max-tiers to try it)\n",
                m, took, took * plans_upto(m, 4, a) / base);
        return 0;
    }
    t.max_tiers = k;
    if (wk_tune(o, &t, res, err, errlen) != 0)
        return WK_EINVAL;
    fprintf(rep,
            "tune: up to %d tiers of %d models (the search at 3 took %.2f s, at %d about %.1f s)\n",
            k, m, took, k, est);
    return 0;
}

static cJSON *sim_json(const wk_sim *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tasks", s->tasks);
    cJSON_AddNumberToObject(o, "runs", s->starts);
    cJSON_AddNumberToObject(o, "pass_rate", s->pass_rate);
    cJSON_AddNumberToObject(o, "pass_rate_sd", s->pass_rate_sd);
    cJSON_AddNumberToObject(o, "cost_usd", s->cost_usd);
    cJSON_AddNumberToObject(o, "cost_sd", s->cost_sd);
    return o;
}

/* The figures as JSON, for scripts (make eval checks the held-out half with it). */
static int write_summary(const char *path, const wk_obs *o, const wk_tune_opts *t,
                         const wk_tune_result *res, const char *pname, const char *words)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "target", t->target);
    cJSON_AddStringToObject(j, "metric", t->metric == WK_METRIC_ACCURACY ? "accuracy" : "pass");
    cJSON_AddNumberToObject(j, "margin", t->margin);
    cJSON_AddBoolToObject(j, "met", res->met);
    cJSON_AddStringToObject(j, "plan", pname);
    cJSON_AddStringToObject(j, "description", words);
    cJSON_AddStringToObject(j, "top_model", wk_obs_model(o, wk_obs_top_model(o)));
    cJSON_AddItemToObject(j, "fit", sim_json(&res->fit));
    cJSON_AddItemToObject(j, "held", sim_json(&res->held));
    cJSON_AddItemToObject(j, "base_fit", sim_json(&res->base_fit));
    cJSON_AddItemToObject(j, "base_held", sim_json(&res->base_held));
    cJSON_AddItemToObject(j, "top_fit", sim_json(&res->top_fit));
    cJSON_AddItemToObject(j, "top_held", sim_json(&res->top_held));
    cJSON_AddItemToObject(j, "oracle_held", sim_json(&res->oracle_held));
    char *text = cJSON_Print(j);
    int rc = 0;
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) == EOF || fputc('\n', f) == EOF || fflush(f) == EOF) {
        fprintf(stderr, "cascade tune: cannot write %s: %s\n", path, strerror(errno));
        rc = WK_EIO;
    }
    if (f)
        fclose(f);
    free(text);
    cJSON_Delete(j);
    return rc;
}

static int tune_main(const char **from, int nfrom, const tune_paths *pp, const wk_tune_opts *t)
{
    const char *tasks = pp->tasks, *base_path = pp->base, *name = pp->name;
    const char *out_path = pp->out;
    char err[512];
    int code = WK_EXIT_FAIL;
    cJSON *base = NULL, *cascade = NULL;
    char *json = NULL, *words = NULL, *pname = NULL;
    FILE *of = NULL;
    FILE *rep = out_path && strcmp(out_path, "-") ? stdout : stderr;
    wk_obs *o = wk_obs_new();
    wk_tune_result res;

    int used = 0;
    for (int i = 0; i < nfrom; i++) {
        char why[600];
        int ok = one_model_one_attempt(from[i], why, sizeof why);
        if (ok < 0)
            goto cleanup;
        if (!ok) {
            char *p = wk_escape_ctl(from[i], strlen(from[i]), 300);
            fprintf(stderr,
                    "tune: leaving out %s: %s; tune observes one model with one attempt per "
                    "task (replay --plan MODEL --runs K writes such files)\n",
                    p, why);
            free(p);
            continue;
        }
        if (wk_obs_add_results(o, from[i], err, sizeof err) != 0)
            goto fail;
        used++;
    }
    if (used == 0) {
        fprintf(stderr, "cascade tune: none of the results files is one model with one "
                        "attempt per task\n");
        goto cleanup;
    }
    nfrom = used;
    if (tasks && wk_obs_add_tasks(o, tasks, err, sizeof err) != 0)
        goto fail;
    if (base_path && wk_cli_json_object("tune", base_path, &base) != 0)
        goto cleanup;
    wk_obs_set_metric(o, t->metric);
    const char *mname = t->metric == WK_METRIC_ACCURACY ? "accuracy" : "pass rate";
    if (t->metric == WK_METRIC_ACCURACY && !base) /* a classify cascade by default */
        base = cJSON_Parse("{\"match\": {\"kind\": \"classify\"}, \"validators\": "
                           "[\"label\"], \"feedback\": false}");
    double t0 = now_s();
    if (wk_tune(o, t, &res, err, sizeof err) != 0)
        goto fail;
    if (pp->grow_tiers && grow_tiers(o, t, now_s() - t0, &res, rep, err, sizeof err) != 0)
        goto fail;

    int top = wk_obs_top_model(o);
    fprintf(rep,
            "tune: %d tasks from %d results file%s: %d to fit, %d held out (split by a "
            "hash of the id); %d models; %d observations per (task, model) at most\n",
            wk_obs_ntasks(o, WK_SET_ALL), nfrom, nfrom == 1 ? "" : "s",
            wk_obs_ntasks(o, WK_SET_FIT), wk_obs_ntasks(o, WK_SET_HELD), wk_obs_nmodels(o),
            wk_obs_max_runs(o));
    if (!tasks)
        fprintf(rep, "tune: no --tasks: prompt length comes from the attempts' prompt_tokens; "
                     "kind, language and tests are unknown\n");
    fprintf(rep,
            "tune: %ld plans tried for %s >= %.3f (target %.3f + margin %.3f) on the "
            "fit half",
            res.plans_tried, mname, t->target + t->margin, t->target, t->margin);
    if (t->metric == WK_METRIC_ACCURACY)
        fprintf(rep,
                " (%d of the %d fit tasks have a gold label; \"pass rate\" below is "
                "accuracy)",
                wk_obs_ngold(o, WK_SET_FIT), wk_obs_ntasks(o, WK_SET_FIT));
    if (t->budget_per_task > 0)
        fprintf(rep, " at most $%g per task", t->budget_per_task);
    fprintf(rep, "\n\n");
    pname = wk_plan_name(o, &res.plan);
    words = wk_plan_describe(o, &res.plan);
    if (res.met)
        fprintf(rep, "chosen plan: %s\n", pname);
    else
        fprintf(rep, "NO plan reaches %.3f on the fit half; the best %s is: %s\n", t->target, mname,
                pname);
    for (char *line = words, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        fprintf(rep, "  %.*s\n", nl ? (int)(nl - line) : (int)strlen(line), line);
    }
    char topname[160];
    snprintf(topname, sizeof topname, "always %s, one attempt", wk_obs_model(o, top));
    fprintf(rep, "\n  %-38s %3s  %-13s  %-19s  %s\n", "", "n", "pass rate", "cost (USD)", "of top");
    print_sim(rep, "fit half: chosen plan", &res.fit, &res.top_fit);
    print_sim(rep, "held-out half: chosen plan", &res.held, &res.top_held);
    print_sim(rep, "held-out half: oracle", &res.oracle_held, &res.top_held);
    char what[200];
    snprintf(what, sizeof what, "held-out half: always %.24s", wk_obs_model(o, top));
    print_sim(rep, what, &res.top_held, &res.top_held);
    const wk_plan_tier *last = &res.plan.tiers[res.plan.ntiers - 1];
    if (last->nskips)
        fprintf(rep,
                "  note: the last tier (%s) has a skip rule: a task it matches that fails "
                "below ends exhausted without it (the router logs the skip)\n",
                wk_obs_model(o, last->model));
    fprintf(rep, "\nheld-out: %s %.3f %s the target %.3f, at %.1f%% of the cost of %s\n", mname,
            res.held.pass_rate, res.held.pass_rate + 1e-9 >= t->target ? "meets" : "is BELOW",
            t->target, wk_fig_percent_of(res.held.cost_usd, res.top_held.cost_usd), topname);

    cascade = wk_plan_cascade(o, &res.plan, name, base);
    json = cJSON_Print(cascade);
    if (!out_path || strcmp(out_path, "-") == 0) {
        of = stdout;
    } else if (!(of = fopen(out_path, "w"))) {
        fprintf(stderr, "cascade tune: cannot write %s: %s\n", out_path, strerror(errno));
        goto cleanup;
    }
    if (fputs(json, of) == EOF || fputc('\n', of) == EOF || fflush(of) == EOF) {
        fprintf(stderr, "cascade tune: cannot write %s: %s\n", out_path ? out_path : "stdout",
                strerror(errno));
        goto cleanup;
    }
    if (pp->summary && write_summary(pp->summary, o, t, &res, pname, words) != 0)
        goto cleanup;
    code = res.met ? WK_EXIT_OK : WK_EXIT_FAIL;
    goto cleanup;
fail:
    fprintf(stderr, "cascade tune: %s\n", err);
cleanup:
    if (of && of != stdout)
        fclose(of);
    free(json);
    free(words);
    free(pname);
    cJSON_Delete(cascade);
    cJSON_Delete(base);
    wk_obs_free(o);
    return code;
}

int wk_cmd_tune(int argc, char **argv)
{
    enum {
        O_FROM = 256,
        O_TASKS,
        O_TARGET,
        O_METRIC,
        O_MARGIN,
        O_BUDGET,
        O_MAXATT,
        O_MAXTIERS,
        O_MAXRULES,
        O_RUNS,
        O_BASE,
        O_NAME,
        O_SUMMARY
    };
    static const struct option opts[] = {
        {"from", required_argument, NULL, O_FROM},
        {"tasks", required_argument, NULL, O_TASKS},
        {"target", required_argument, NULL, O_TARGET},
        {"metric", required_argument, NULL, O_METRIC},
        {"margin", required_argument, NULL, O_MARGIN},
        {"budget-per-task", required_argument, NULL, O_BUDGET},
        {"max-attempts", required_argument, NULL, O_MAXATT},
        {"max-tiers", required_argument, NULL, O_MAXTIERS},
        {"max-rules", required_argument, NULL, O_MAXRULES},
        {"runs", required_argument, NULL, O_RUNS},
        {"base", required_argument, NULL, O_BASE},
        {"name", required_argument, NULL, O_NAME},
        {"summary", required_argument, NULL, O_SUMMARY},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char **from = wk_xcalloc(FROM_MAX, sizeof(char *));
    int nfrom = 0, c, code = WK_EXIT_USAGE, have_target = 0, tiers_given = 0;
    const char *tasks = NULL, *base = NULL, *name = "tuned", *out = NULL, *summary = NULL;
    wk_tune_opts t;
    wk_tune_opts_default(&t);
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_FROM:
            if (nfrom == FROM_MAX) {
                fprintf(stderr, "cascade tune: at most %d results files\n", FROM_MAX);
                goto cleanup;
            }
            from[nfrom++] = optarg;
            break;
        case O_TASKS:
            tasks = optarg;
            break;
        case O_METRIC:
            if (strcmp(optarg, "pass") == 0)
                t.metric = WK_METRIC_PASS;
            else if (strcmp(optarg, "accuracy") == 0)
                t.metric = WK_METRIC_ACCURACY;
            else
                bad = 1;
            break;
        case O_TARGET:
            bad = wk_cli_double(optarg, 0, 1, &t.target);
            have_target = 1;
            break;
        case O_MARGIN:
            bad = wk_cli_double(optarg, 0, 1, &t.margin);
            break;
        case O_BUDGET:
            bad = wk_cli_double(optarg, 0, 1e6, &t.budget_per_task);
            break;
        case O_MAXATT:
            bad = parse_int(optarg, 1, 100, &t.max_attempts);
            break;
        case O_MAXTIERS:
            bad = parse_int(optarg, 1, WK_PLAN_TIERS_MAX, &t.max_tiers);
            tiers_given = 1;
            break;
        case O_MAXRULES:
            bad = parse_int(optarg, 0, WK_PLAN_SKIPS_MAX, &t.max_skips);
            break;
        case O_RUNS:
            bad = parse_int(optarg, 1, 1000, &t.starts);
            break;
        case O_BASE:
            base = optarg;
            break;
        case O_NAME:
            name = optarg;
            break;
        case O_SUMMARY:
            summary = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'h':
            fputs(usage_tune, stdout);
            code = 0;
            goto cleanup;
        default:
            fputs(usage_tune, stderr);
            goto cleanup;
        }
        if (bad) {
            for (const struct option *p = opts; p->name; p++)
                if (p->val == c)
                    fprintf(stderr, "cascade tune: bad value \"%s\" for --%s\n", optarg, p->name);
            goto cleanup;
        }
    }
    /* Files after the options are more --from files (so a shell glob works). */
    for (; optind < argc && nfrom < FROM_MAX; optind++)
        from[nfrom++] = argv[optind];
    if (nfrom == 0 || !have_target) {
        fprintf(stderr, "cascade tune: --from and --target are required\n\n%s", usage_tune);
        goto cleanup;
    }
    tune_paths paths = {tasks, base, name, out, summary, !tiers_given};
    code = tune_main(from, nfrom, &paths, &t);
cleanup:
    free(from);
    return code;
}
