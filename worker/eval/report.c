/*
 * `cascade report`: loading (see report.h). Result lines are kept in a
 * compact form (per task: cascade, status, and each attempt's tier, model,
 * tokens, cost and verdict) and every figure is computed when the report is
 * written (report_figs.c), so the order of --results, --tasks and the models
 * file does not matter.
 */
#include "report_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/jsonl.h"
#include "lib/util.h"
#include "worker/config.h"

/* Distinct names (task ids, models, cascades, reasons) one report holds. */
#define NAMES_CAP 4000000

/* Interns s: models, cascades, kinds, reasons and task ids are all names. */
int wk__report_name_id(wk_report *r, const char *s)
{
    name_tab *t = &r->names;
    if ((size_t)(t->n + 1) * 2 > t->slot_cap) {
        size_t ncap = t->slot_cap ? t->slot_cap * 2 : 1024;
        int *n = wk_xcalloc(ncap, sizeof(int));
        for (int i = 0; i < t->n; i++) {
            size_t k = wk_hash(WK_HASH_SEED, t->s[i]) & (ncap - 1);
            while (n[k])
                k = (k + 1) & (ncap - 1);
            n[k] = i + 1;
        }
        free(t->slot);
        t->slot = n;
        t->slot_cap = ncap;
    }
    size_t k = wk_hash(WK_HASH_SEED, s) & (t->slot_cap - 1);
    while (t->slot[k]) {
        if (strcmp(t->s[t->slot[k] - 1], s) == 0)
            return t->slot[k] - 1;
        k = (k + 1) & (t->slot_cap - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->s = wk_xrealloc(t->s, (size_t)t->cap * sizeof(char *));
    }
    t->s[t->n] = wk_xstrdup(s);
    t->slot[k] = t->n + 1;
    return t->n++;
}

const char *wk__report_name(const wk_report *r, int i)
{
    return i >= 0 && i < r->names.n ? r->names.s[i] : "?";
}

static void free_casc(wk_report *r)
{
    for (int i = 0; i < r->ncasc; i++) {
        free(r->casc[i].name);
        free(r->casc[i].kind);
        free(r->casc[i].top_model);
    }
    free(r->casc);
    r->casc = NULL;
    r->ncasc = 0;
}

wk_report *wk_report_new(void)
{
    wk_report *r = wk_xcalloc(1, sizeof(wk_report));
    wk_drift_opts o = {.window_ms = 86400000, .reference = WK_DRIFT_REF_POOLED, .alpha = 0.01};
    r->drift = wk_drift_new(&o);
    return r;
}

void wk_report_drift_window(wk_report *r, int64_t window_ms, long window_n)
{
    wk_drift_set_window(r->drift, window_ms, window_n);
}

void wk_report_free(wk_report *r)
{
    if (!r)
        return;
    wk_drift_free(r->drift);
    for (long i = 0; i < r->nrows; i++)
        free(r->rows[i].atts);
    free(r->rows);
    for (int i = 0; i < r->names.n; i++)
        free(r->names.s[i]);
    free(r->names.s);
    free(r->names.slot);
    free(r->kind_of);
    for (int i = 0; i < r->ntable; i++)
        free(r->table[i].plan);
    free_casc(r);
    free(r);
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

static long jlong(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(f) && f->valuedouble >= 0 ? (long)f->valuedouble : -1;
}

static double jnum(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(f) ? f->valuedouble : 0;
}

typedef struct load_ctx {
    wk_report *r;
    const char *path;
    char *err;
    size_t errlen;
    int64_t mtime_ms; /* results: the time of a line without "ts" */
} load_ctx;

static int add_result(void *arg, const cJSON *res, long lineno)
{
    load_ctx *c = arg;
    wk_report *r = c->r;
    const char *status = jstr(res, "status");
    const char *id = jstr(res, "id");
    if (!status) {
        snprintf(c->err, c->errlen, "%s:%ld: not a result line (no status)", c->path, lineno);
        return WK_EPARSE;
    }
    if (wk_fig_status_of(status) == WK_FIG_INVALID) {
        r->invalid++;
        return 0;
    }
    const char *cascade = jstr(res, "cascade");
    const cJSON *attempts = cJSON_GetObjectItemCaseSensitive(res, "attempts");
    if (!id || !cascade || !cJSON_IsArray(attempts)) {
        snprintf(c->err, c->errlen, "%s:%ld: not a result line (needs id, cascade, attempts)",
                 c->path, lineno);
        return WK_EPARSE;
    }
    if (r->names.n > NAMES_CAP) {
        snprintf(c->err, c->errlen, "%s:%ld: too many distinct names", c->path, lineno);
        return WK_ETOOBIG;
    }
    if (r->nrows == r->rows_cap) {
        r->rows_cap = r->rows_cap ? r->rows_cap * 2 : 256;
        r->rows = wk_xrealloc(r->rows, (size_t)r->rows_cap * sizeof(row));
    }
    /* Past the drift's caps the chart stops counting; the report itself goes on. */
    char derr[256];
    (void)wk_drift_add(r->drift, res, c->mtime_ms, derr, sizeof derr);
    row *w = &r->rows[r->nrows++];
    memset(w, 0, sizeof *w);
    w->id = wk__report_name_id(r, id);
    w->cascade = wk__report_name_id(r, cascade);
    w->status = wk_fig_status_of(status);
    w->tier = w->status == WK_FIG_ACCEPTED ? (int)jlong(res, "tier") : -1;
    w->cost = jnum(res, "cost_usd");
    const char *gold = jstr(res, "gold"), *label = jstr(res, "label");
    w->gold = gold ? wk__report_name_id(r, gold) : -1;
    w->label = label && w->status == WK_FIG_ACCEPTED ? wk__report_name_id(r, label) : -1;
    int n = cJSON_GetArraySize(attempts);
    w->atts = wk_xcalloc((size_t)n + 1, sizeof(att));
    const cJSON *a;
    cJSON_ArrayForEach(a, attempts)
    {
        att *x = &w->atts[w->natts++];
        long tier = jlong(a, "tier");
        x->tier = tier >= 0 && tier < TIERS_MAX ? (int)tier : TIERS_MAX - 1;
        const char *model = jstr(a, "model");
        x->model = wk__report_name_id(r, model ? model : "?");
        x->pt = jlong(a, "prompt_tokens");
        x->ct = jlong(a, "completion_tokens");
        x->cost = jnum(a, "cost_usd");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "verdict");
        x->pass = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "pass"));
        x->reason = -1;
        if (!x->pass) {
            const char *val = jstr(v, "validator");
            const char *why = jstr(v, "reason");
            char *key = wk_xasprintf("%s: %s", val && *val ? val : "?", why && *why ? why : "?");
            x->reason = wk__report_name_id(r, key);
            free(key);
        }
    }
    return 0;
}

int wk_report_add_results(wk_report *r, const char *path, char *err, size_t errlen)
{
    load_ctx c = {r, path, err, errlen, (int64_t)wk_now_ms()};
    struct stat sb;
    if (strcmp(path, "-") != 0 && stat(path, &sb) == 0)
        c.mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    int rc = wk_jsonl_each(path, add_result, &c, 0, err, errlen);
    if (!rc)
        r->files++;
    return rc;
}

static int add_task(void *arg, const cJSON *task, long lineno)
{
    load_ctx *c = arg;
    wk_report *r = c->r;
    (void)lineno;
    const char *id = jstr(task, "id");
    if (!id)
        return 0;
    const char *kind = jstr(task, "kind");
    int i = wk__report_name_id(r, id);
    int k = wk__report_name_id(r, kind ? kind : "code");
    if (r->kind_of_cap < r->names.n) {
        int ncap = r->names.n * 2;
        r->kind_of = wk_xrealloc(r->kind_of, (size_t)ncap * sizeof(int));
        for (int j = r->kind_of_cap; j < ncap; j++)
            r->kind_of[j] = -1;
        r->kind_of_cap = ncap;
    }
    r->kind_of[i] = k;
    return 0;
}

int wk_report_add_tasks(wk_report *r, const char *path, char *err, size_t errlen)
{
    load_ctx c = {r, path, err, errlen, 0};
    return wk_jsonl_each(path, add_task, &c, 1, err, errlen);
}

/*
 * The models file and the cascades loaded offline (no ${VAR} expanded, no
 * key read): a report needs prices and tiers only, and must not fail on a
 * provider's ${VAR} that is set only where the batch ran.
 */
int wk_report_set_config(wk_report *r, const char *models_path, const char *cascades, char *err,
                         size_t errlen)
{
    wk_config cfg;
    free_casc(r);
    int rc = wk_config_load(&cfg, models_path, cascades, WK_CONFIG_OFFLINE, err, errlen);
    if (rc)
        return rc;
    r->casc = wk_xcalloc((size_t)cfg.ncascades + 1, sizeof(rcasc));
    for (int i = 0; i < cfg.ncascades; i++) {
        const wk_cascade *c = &cfg.cascades[i];
        const wk_model *top = c->tiers[c->ntiers - 1].model;
        rcasc *x = &r->casc[r->ncasc++];
        x->name = wk_xstrdup(c->name);
        x->kind = c->match_kind ? wk_xstrdup(c->match_kind) : NULL;
        x->top_model = wk_xstrdup(top->name);
        x->ntiers = c->ntiers;
        x->in = top->input_usd_per_mtok / 1e6;
        x->out = top->output_usd_per_mtok / 1e6;
    }
    wk_config_free(&cfg);
    return 0;
}

int wk_report_add_table(wk_report *r, const char *path, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    cJSON *j = NULL;
    int rc = wk_read_file(path, 16u << 20, &text, &len);
    if (rc) {
        snprintf(err, errlen, "%s: cannot read (%s)", path, wk_strerror(rc));
        goto cleanup;
    }
    j = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsArray(j)) {
        snprintf(err, errlen, "%s: not a JSON list of plans", path);
        rc = WK_EPARSE;
        goto cleanup;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, j)
    {
        const char *plan = jstr(e, "plan");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(e, "pass_rate");
        const cJSON *cost = cJSON_GetObjectItemCaseSensitive(e, "cost_usd");
        if (!plan || !cJSON_IsNumber(pr) || !cJSON_IsNumber(cost)) {
            snprintf(err, errlen, "%s: an entry lacks plan, pass_rate or cost_usd", path);
            rc = WK_EPARSE;
            goto cleanup;
        }
        if (r->ntable == TABLE_ROWS_MAX) {
            snprintf(err, errlen, "%s: more than %d plans", path, TABLE_ROWS_MAX);
            rc = WK_ETOOBIG;
            goto cleanup;
        }
        table_row *t = &r->table[r->ntable++];
        t->plan = wk_xstrdup(plan);
        t->pass_rate = pr->valuedouble;
        t->cost = cost->valuedouble;
        const cJSON *acc = cJSON_GetObjectItemCaseSensitive(e, "accuracy");
        t->accuracy = cJSON_IsNumber(acc) ? acc->valuedouble : -1;
    }
cleanup:
    cJSON_Delete(j);
    free(text);
    return rc;
}
