/*
 * `cascade drift`: its options and help text, and reading the results files
 * into eval/drift.h, which does the counting and the test. The canary mode
 * runs a pinned task set on each model alone through `run` (run.h), keeps
 * each outcome in the store, and compares it with the one before.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "lib/jsonl.h"
#include "lib/util.h"
#include "worker/eval/drift.h"
#include "worker/run.h"

/* Models one canary run may name (--models a,b,...). */
#define CANARY_MODELS_MAX 32
#define CANARY_CASCADE_CAP (4u << 20)

static const char usage_drift[] =
    "usage: cascade drift RESULTS.jsonl... [options]\n"
    "\n"
    "Reads result lines (from `run`, over days or batches) and prints, per cascade\n"
    "as a whole and per tier and model, each window's pass rate, cost per accepted\n"
    "task and escalation rate, then tests whether the latest window's pass rate\n"
    "differs from the reference's beyond chance (a two-proportion z test; the\n"
    "counts it used are shown). A line's time is its \"ts\"; a line without one\n"
    "takes its file's modification time.\n"
    "\n"
    "options:\n"
    "  --window SPEC        windows of time (30m, 12h, 1d, 2w) or of N trials of\n"
    "                       each group, in the order read (a plain number) [1d]\n"
    "  --reference WHICH    pooled (every window before the latest), first, or\n"
    "                       previous [pooled]\n"
    "  --alpha A            the test's level [0.01]\n"
    "  -h, --help           this text\n"
    "\n"
    "canary: cascade drift --canary TASKS --models a,b --cascade FILE\n"
    "                      [--models-file models.json] [--store DIR] [--slack K]\n"
    "  runs the pinned TASKS on each model alone (a one-tier copy of the cascade\n"
    "  FILE: its validators, schema and compile commands), live or against the\n"
    "  mock as the models file says, stores the result lines in\n"
    "  DIR/MODEL/TIME.jsonl [canary] and compares each model's pass rate with its\n"
    "  last stored canary; a model that passed more than K [0] fewer tasks is\n"
    "  named on stderr.\n"
    "\n"
    "exit status: 0 no drift, 4 drift flagged in some group (or a canary dropped),\n"
    "1 an unreadable file or a failed run, 2 a bad command line.\n";

typedef struct load_ctx {
    wk_drift *d;
    int64_t mtime_ms;
    char *err;
    size_t errlen;
} load_ctx;

static int add_line(void *arg, const cJSON *obj, long lineno)
{
    load_ctx *c = arg;
    (void)lineno;
    return wk_drift_add(c->d, obj, c->mtime_ms, c->err, c->errlen);
}

/* ---- canary ------------------------------------------------------------------ */

typedef struct canary_opts {
    const char *tasks, *models, *cascade, *models_file, *store;
    long slack;
} canary_opts;

/* Tasks judged (accepted or exhausted) and accepted in one results file. */
typedef struct tally {
    long n, k;
} tally;

static int tally_line(void *arg, const cJSON *r, long lineno)
{
    tally *t = arg;
    (void)lineno;
    const char *st = wk_jstr(r, "status");
    int acc = st && strcmp(st, "accepted") == 0;
    t->n += acc || (st && strcmp(st, "exhausted") == 0);
    t->k += acc;
    return 0;
}

/* A model's name as a directory name: anything but [A-Za-z0-9._-] becomes '_'. */
static char *dir_name(const char *model)
{
    char *d = wk_xstrndup(model, strnlen(model, 120));
    for (char *p = d; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-'))
            *p = '_';
    if (d[0] == '.')
        d[0] = '_';
    return d;
}

/* The newest stored canary in dir (names sort by time); NULL when none. Caller frees. */
static char *last_stored(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char *best = NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 7 || strcmp(e->d_name + l - 6, ".jsonl") != 0 || e->d_name[0] == '.')
            continue;
        if (!best || strcmp(e->d_name, best) > 0) {
            free(best);
            best = wk_xstrdup(e->d_name);
        }
    }
    closedir(d);
    char *path = best ? wk_xasprintf("%s/%s", dir, best) : NULL;
    free(best);
    return path;
}

static int mkdir_p(const char *path)
{
    char *p = wk_xstrdup(path);
    int rc = 0;
    for (char *q = p + 1; *q && !rc; q++)
        if (*q == '/') {
            *q = '\0';
            rc = mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
            *q = '/';
        }
    if (!rc)
        rc = mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
    free(p);
    return rc;
}

/*
 * A copy of the cascade file with one tier, the model alone, written into
 * dir/canary.json; its name in *name (caller frees).
 */
static int one_tier_cascade(const char *cascade, const char *model, const char *dir, char **name,
                            char *err, size_t errlen)
{
    char *text = NULL, *out = NULL, *path = NULL;
    size_t len = 0;
    cJSON *j = NULL;
    int rc = wk_read_file(cascade, CANARY_CASCADE_CAP, &text, &len);
    if (rc) {
        rc = wk_errf(WK_EIO, err, errlen, "%s: cannot read (%s)", cascade, wk_strerror(rc));
        goto cleanup;
    }
    j = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(j) || !wk_jstr(j, "name")) {
        rc = wk_errf(WK_EINVAL, err, errlen, "%s: not a cascade file (an object with a name)",
                     cascade);
        goto cleanup;
    }
    cJSON *tiers = cJSON_CreateArray(), *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "model", model);
    cJSON_AddItemToArray(tiers, t);
    if (cJSON_GetObjectItemCaseSensitive(j, "tiers"))
        cJSON_ReplaceItemInObjectCaseSensitive(j, "tiers", tiers);
    else
        cJSON_AddItemToObject(j, "tiers", tiers);
    out = cJSON_PrintUnformatted(j);
    path = wk_xasprintf("%s/canary.json", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(out, f) == EOF || fclose(f) != 0) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto cleanup;
    }
    *name = wk_xstrdup(wk_jstr(j, "name"));
cleanup:
    free(text);
    free(out);
    free(path);
    cJSON_Delete(j);
    return rc;
}

/* Runs the canary of one model; *dropped set when it passed fewer than the last one by > slack. */
static int canary_model(const canary_opts *c, const char *model, const char *stamp, int *dropped,
                        char *err, size_t errlen)
{
    char tmpl[] = "/tmp/cascade-canary-XXXXXX";
    char *tmp = mkdtemp(tmpl), *name = NULL, *cascade_file = NULL, *out = NULL, *prev = NULL;
    char *mdir = dir_name(model);
    char *dir = wk_xasprintf("%s/%s", c->store, mdir);
    int rc = 0;
    if (!tmp) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot make a temporary directory: %s", strerror(errno));
        goto cleanup;
    }
    rc = one_tier_cascade(c->cascade, model, tmp, &name, err, errlen);
    if (rc)
        goto cleanup;
    if (mkdir_p(dir)) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot make %s: %s", dir, strerror(errno));
        goto cleanup;
    }
    prev = last_stored(dir);
    out = wk_xasprintf("%s/%s.jsonl", dir, stamp);
    cascade_file = wk_xasprintf("%s/canary.json", tmp);
    wk_run_opts o;
    wk_run_opts_default(&o);
    o.tasks_path = c->tasks;
    o.cascades_dir = cascade_file;
    o.models_path = c->models_file;
    o.cascade_name = name;
    o.out_path = out;
    o.journal_path = "none";
    o.quiet = 1;
    int code = wk_run(&o);
    if (code != WK_EXIT_OK) {
        rc = wk_errf(WK_EIO, err, errlen, "the canary run of %s ended with exit status %d", model,
                     code);
        goto cleanup;
    }
    tally now = {0}, before = {0};
    rc = wk_jsonl_each(out, tally_line, &now, 0, err, errlen);
    if (!rc && prev)
        rc = wk_jsonl_each(prev, tally_line, &before, 0, err, errlen);
    if (rc)
        goto cleanup;
    if (!prev) {
        printf("canary %s: %ld of %ld passed (%.3f); the first stored canary, kept as %s\n", model,
               now.k, now.n, now.n ? (double)now.k / (double)now.n : 0.0, out);
        goto cleanup;
    }
    wk_drift_test t;
    wk_drift_ztest(before.n, before.k, now.n, now.k, 0.01, &t);
    *dropped = now.k + c->slack < before.k;
    printf("canary %s: %ld of %ld passed (%.3f), last time %ld of %ld (%.3f)%s\n", model, now.k,
           now.n, t.rate_last, before.k, before.n, t.rate_ref, *dropped ? ": DROPPED" : "");
    if (*dropped) {
        char *e = wk_escape_ctl(model, strlen(model), 200);
        fprintf(stderr,
                "cascade drift: canary: %s passed %ld of %ld, %ld of %ld last time (%s); "
                "z = %.2f, p = %.2g\n",
                e, now.k, now.n, before.k, before.n, prev, t.z, t.p_value);
        free(e);
    }
cleanup:
    if (cascade_file)
        unlink(cascade_file);
    if (tmp)
        rmdir(tmp);
    free(name);
    free(cascade_file);
    free(out);
    free(prev);
    free(mdir);
    free(dir);
    return rc;
}

static int run_canary(const canary_opts *c)
{
    char err[512] = "";
    char stamp[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    snprintf(stamp + n, sizeof stamp - n, ".%03ldZ", ts.tv_nsec / 1000000);
    char *list = wk_xstrdup(c->models), *save = NULL;
    int models = 0, dropped = 0, code = WK_EXIT_OK;
    for (char *m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        if (!*m)
            continue;
        if (++models > CANARY_MODELS_MAX) {
            fprintf(stderr, "cascade drift: --models: at most %d\n", CANARY_MODELS_MAX);
            code = WK_EXIT_USAGE;
            break;
        }
        int d = 0;
        if (canary_model(c, m, stamp, &d, err, sizeof err) != 0) {
            fprintf(stderr, "cascade drift: canary: %s\n", err);
            code = WK_EXIT_FAIL;
            break;
        }
        dropped += d;
    }
    free(list);
    if (code == WK_EXIT_OK && dropped)
        code = WK_EXIT_DRIFT;
    return code;
}

int wk_cmd_drift(int argc, char **argv)
{
    enum {
        O_WINDOW = 256,
        O_REFERENCE,
        O_ALPHA,
        O_CANARY,
        O_MODELS,
        O_CASCADE,
        O_MODELS_FILE,
        O_STORE,
        O_SLACK
    };
    static const struct option opts[] = {
        {"window", required_argument, NULL, O_WINDOW},
        {"reference", required_argument, NULL, O_REFERENCE},
        {"alpha", required_argument, NULL, O_ALPHA},
        {"canary", required_argument, NULL, O_CANARY},
        {"models", required_argument, NULL, O_MODELS},
        {"cascade", required_argument, NULL, O_CASCADE},
        {"models-file", required_argument, NULL, O_MODELS_FILE},
        {"store", required_argument, NULL, O_STORE},
        {"slack", required_argument, NULL, O_SLACK},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    wk_drift_opts o = {.window_ms = 86400000, .reference = WK_DRIFT_REF_POOLED, .alpha = 0.01};
    canary_opts co = {.models_file = "cascades/models.json", .store = "canary"};
    int c, code = WK_EXIT_FAIL;
    char err[512] = "";
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_WINDOW:
            if (wk_drift_parse_window(optarg, &o.window_ms, &o.window_n)) {
                fprintf(stderr,
                        "cascade drift: --window: a time (30m, 12h, 1d, 2w; at least 1m) or a "
                        "whole number of trials\n");
                return WK_EXIT_USAGE;
            }
            break;
        case O_REFERENCE:
            if (strcmp(optarg, "pooled") == 0)
                o.reference = WK_DRIFT_REF_POOLED;
            else if (strcmp(optarg, "first") == 0)
                o.reference = WK_DRIFT_REF_FIRST;
            else if (strcmp(optarg, "previous") == 0)
                o.reference = WK_DRIFT_REF_PREVIOUS;
            else {
                fprintf(stderr, "cascade drift: --reference: pooled, first or previous\n");
                return WK_EXIT_USAGE;
            }
            break;
        case O_ALPHA:
            if (wk_cli_double(optarg, 1e-12, 0.5, &o.alpha)) {
                fprintf(stderr, "cascade drift: --alpha: a number above 0 and at most 0.5\n");
                return WK_EXIT_USAGE;
            }
            break;
        case O_CANARY:
            co.tasks = optarg;
            break;
        case O_MODELS:
            co.models = optarg;
            break;
        case O_CASCADE:
            co.cascade = optarg;
            break;
        case O_MODELS_FILE:
            co.models_file = optarg;
            break;
        case O_STORE:
            co.store = optarg;
            break;
        case O_SLACK:
            if (wk_cli_long(optarg, 0, 1000000, &co.slack)) {
                fprintf(stderr, "cascade drift: --slack: a whole number >= 0\n");
                return WK_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(usage_drift, stdout);
            return 0;
        default:
            fputs(usage_drift, stderr);
            return WK_EXIT_USAGE;
        }
    }
    if (co.tasks) {
        if (!co.models || !co.cascade || optind < argc) {
            fprintf(stderr,
                    "cascade drift: --canary needs --models and --cascade, and no "
                    "results files\n\n%s",
                    usage_drift);
            return WK_EXIT_USAGE;
        }
        return run_canary(&co);
    }
    if (optind >= argc) {
        fprintf(stderr, "cascade drift: give at least one results file\n\n%s", usage_drift);
        return WK_EXIT_USAGE;
    }
    wk_drift *d = wk_drift_new(&o);
    for (int i = optind; i < argc; i++) {
        struct stat sb;
        load_ctx lc = {d, (int64_t)wk_now_ms(), err, sizeof err};
        if (strcmp(argv[i], "-") != 0 && stat(argv[i], &sb) == 0)
            lc.mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
        if (wk_jsonl_each(argv[i], add_line, &lc, 0, err, sizeof err) != 0)
            goto fail;
    }
    if (wk_drift_finish(d, err, sizeof err) != 0)
        goto fail;
    wk_drift_print(d, stdout);
    code = wk_drift_flagged(d) ? WK_EXIT_DRIFT : WK_EXIT_OK;
    goto cleanup;
fail:
    fprintf(stderr, "cascade drift: %s\n", err);
cleanup:
    wk_drift_free(d);
    return code;
}
