/*
 * `cascade tune`: its options, the plain-words report and the cascade file.
 * The search is in tune.c.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
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
    "  --max-tiers N        tiers in a plan [3]\n"
    "  --max-rules N        skip rules in all, 0 for none [2]\n"
    "  --runs K             starting runs to average over [observations]\n"
    "  --base FILE          a cascade file whose match, validators and feedback the\n"
    "                       tuned cascade keeps [code; syntax, tests; no feedback]\n"
    "  --name NAME          the tuned cascade's name [tuned]\n"
    "  -o, --output FILE    the cascade JSON [stdout]\n"
    "  --summary FILE       the figures (fit, held-out, top model, oracle) as JSON\n"
    "  -h, --help           this text\n"
    "\n"
    "Skip rules are written as \"skip_when\" in the tier; a router that does not\n"
    "know them runs the plan without them, so the figures of that plan are printed\n"
    "too.\n"
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

static int load_base(const char *path, cJSON **out)
{
    char *text = NULL;
    size_t len = 0;
    int rc = wk_read_file(path, 4u << 20, &text, &len);
    if (rc) {
        fprintf(stderr, "cascade tune: cannot read %s (%s)\n", path, wk_strerror(rc));
        return rc;
    }
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(*out)) {
        fprintf(stderr, "cascade tune: %s is not a cascade (a JSON object)\n", path);
        cJSON_Delete(*out);
        *out = NULL;
        return WK_EPARSE;
    }
    return 0;
}

typedef struct tune_paths {
    const char *tasks, *base, *name, *out, *summary;
} tune_paths;

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
    char *json = NULL, *words = NULL, *pname = NULL, *bname = NULL;
    FILE *of = NULL;
    FILE *rep = out_path && strcmp(out_path, "-") ? stdout : stderr;
    wk_obs *o = wk_obs_new();
    wk_tune_result res;

    for (int i = 0; i < nfrom; i++)
        if (wk_obs_add_results(o, from[i], err, sizeof err) != 0)
            goto fail;
    if (tasks && wk_obs_add_tasks(o, tasks, err, sizeof err) != 0)
        goto fail;
    if (base_path && load_base(base_path, &base) != 0)
        goto cleanup;
    wk_obs_set_metric(o, t->metric);
    const char *mname = t->metric == WK_METRIC_ACCURACY ? "accuracy" : "pass rate";
    if (t->metric == WK_METRIC_ACCURACY && !base) /* a classify cascade by default */
        base = cJSON_Parse("{\"match\": {\"kind\": \"classify\"}, \"validators\": "
                           "[\"label\"], \"feedback\": false}");
    if (wk_tune(o, t, &res, err, sizeof err) != 0)
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
    int rules = 0;
    for (int k = 0; k < res.plan.ntiers; k++)
        rules += res.plan.tiers[k].nskips;
    if (rules) {
        bname = wk_plan_name(o, &res.base);
        fprintf(rep,
                "  without its skip rules (%s), as a router that ignores skip_when runs "
                "it:\n",
                bname);
        print_sim(rep, "fit half: without rules", &res.base_fit, &res.top_fit);
        print_sim(rep, "held-out half: without rules", &res.base_held, &res.top_held);
    }
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
    free(bname);
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
    int nfrom = 0, c, code = WK_EXIT_USAGE, have_target = 0;
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
    tune_paths paths = {tasks, base, name, out, summary};
    code = tune_main(from, nfrom, &paths, &t);
cleanup:
    free(from);
    return code;
}
