/*
 * `cascade report` (see report.h). Result lines are kept in a compact form
 * (per task: cascade, status, and each attempt's tier, model, tokens, cost
 * and verdict) and every figure is computed when the report is written, so
 * the order of --results, --tasks and the models file does not matter.
 *
 * The saving is computed as `cascade run`'s summary does: per task, the top
 * tier's own usage when it was called, else the first attempt's token counts
 * at the top tier's prices (counted as estimated).
 */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <sys/stat.h>

#include "lib/util.h"

/* Distinct names (task ids, models, cascades, reasons) one report holds. */
#define NAMES_CAP 4000000
#define TIERS_MAX 64
#define TOP_REASONS 10
#define TABLE_ROWS_MAX 256

/* ---- JSONL ------------------------------------------------------------------- */

int wk_jsonl_each(const char *path, int (*each)(void *arg, const cJSON *obj, long lineno),
                  void *arg, int skip_bad, char *err, size_t errlen)
{
    int rc = 0;
    char *line = NULL;
    size_t alloc = 0;
    long lineno = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return WK_EIO;
    }
    ssize_t n;
    while ((n = getline(&line, &alloc, f)) >= 0) {
        lineno++;
        if ((size_t)n > WK_JSONL_LINE_CAP) {
            snprintf(err, errlen, "%s:%ld: line longer than %u bytes", path, lineno,
                     WK_JSONL_LINE_CAP);
            rc = WK_ETOOBIG;
            goto cleanup;
        }
        size_t k = 0;
        while (k < (size_t)n && strchr(" \t\r\n", line[k]))
            k++;
        if (k == (size_t)n)
            continue;
        cJSON *j = cJSON_ParseWithLength(line, (size_t)n);
        if (!cJSON_IsObject(j) && skip_bad) {
            cJSON_Delete(j);
            continue;
        }
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            snprintf(err, errlen, "%s:%ld: not a JSON object", path, lineno);
            rc = WK_EPARSE;
            goto cleanup;
        }
        rc = each(arg, j, lineno);
        cJSON_Delete(j);
        if (rc)
            goto cleanup;
    }
    if (ferror(f)) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        rc = WK_EIO;
    }
cleanup:
    free(line);
    fclose(f);
    return rc;
}

/* ---- the stored results ------------------------------------------------------ */

typedef struct att {
    int tier;
    int model;   /* name index */
    long pt, ct; /* -1: unknown */
    double cost;
    int pass;
    int reason; /* name index of "validator: reason"; -1 on pass */
} att;

typedef struct row {
    int id;      /* name index (task ids are names too) */
    int cascade; /* name index */
    char status; /* 'a'ccepted, 'e'xhausted, 'o'ver_budget, 'x' error */
    int tier;    /* accepted tier, else -1 */
    double cost;
    att *atts;
    int natts;
} row;

typedef struct name_tab {
    char **s;
    int n, cap;
    int *slot; /* open addressing: index + 1 into s, 0 empty */
    size_t slot_cap;
} name_tab;

/* What the report needs of a cascade file: its top tier, priced, and its kind. */
typedef struct rcasc {
    char *name;
    char *kind; /* match.kind; NULL: any */
    char *top_model;
    int ntiers;
    double in, out; /* the top model's USD per token */
} rcasc;

typedef struct table_row {
    char *plan;
    double pass_rate, cost;
} table_row;

struct wk_report {
    name_tab names;
    row *rows;
    long nrows, rows_cap;
    long invalid;
    int files;
    rcasc *casc; /* from --models and --cascades */
    int ncasc;
    /* task id (name index) -> kind (name index), from a tasks file */
    int *kind_of;
    int kind_of_cap;
    table_row table[TABLE_ROWS_MAX];
    int ntable;
};

/* Interns s: models, cascades, kinds, reasons and task ids are all names. */
static int name_id(wk_report *r, const char *s)
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

static const char *name_of(const wk_report *r, int i)
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
    return wk_xcalloc(1, sizeof(wk_report));
}

void wk_report_free(wk_report *r)
{
    if (!r)
        return;
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
    if (strcmp(status, "invalid_task") == 0) {
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
    row *w = &r->rows[r->nrows++];
    memset(w, 0, sizeof *w);
    w->id = name_id(r, id);
    w->cascade = name_id(r, cascade);
    w->status = strcmp(status, "accepted") == 0      ? 'a'
                : strcmp(status, "exhausted") == 0   ? 'e'
                : strcmp(status, "over_budget") == 0 ? 'o'
                                                     : 'x';
    w->tier = w->status == 'a' ? (int)jlong(res, "tier") : -1;
    w->cost = jnum(res, "cost_usd");
    int n = cJSON_GetArraySize(attempts);
    w->atts = wk_xcalloc((size_t)n + 1, sizeof(att));
    const cJSON *a;
    cJSON_ArrayForEach(a, attempts)
    {
        att *x = &w->atts[w->natts++];
        long tier = jlong(a, "tier");
        x->tier = tier >= 0 && tier < TIERS_MAX ? (int)tier : TIERS_MAX - 1;
        const char *model = jstr(a, "model");
        x->model = name_id(r, model ? model : "?");
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
            x->reason = name_id(r, key);
            free(key);
        }
    }
    return 0;
}

int wk_report_add_results(wk_report *r, const char *path, char *err, size_t errlen)
{
    load_ctx c = {r, path, err, errlen};
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
    int i = name_id(r, id);
    int k = name_id(r, kind ? kind : "code");
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
    load_ctx c = {r, path, err, errlen};
    return wk_jsonl_each(path, add_task, &c, 1, err, errlen);
}

static int read_json(const char *path, cJSON **out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = wk_read_file(path, 4u << 20, &text, &len);
    if (rc) {
        snprintf(err, errlen, "%s: cannot read (%s)", path, wk_strerror(rc));
        return rc;
    }
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        snprintf(err, errlen, "%s: not a JSON object", path);
        return WK_EPARSE;
    }
    return 0;
}

static int add_cascade_file(wk_report *r, const cJSON *models, const char *path, char *err,
                            size_t errlen)
{
    cJSON *c = NULL;
    int rc = read_json(path, &c, err, errlen);
    if (rc)
        return rc;
    const char *name = jstr(c, "name");
    const cJSON *tiers = cJSON_GetObjectItemCaseSensitive(c, "tiers");
    int n = cJSON_GetArraySize(tiers);
    const char *top = n > 0 ? jstr(cJSON_GetArrayItem(tiers, n - 1), "model") : NULL;
    const cJSON *m = top ? cJSON_GetObjectItemCaseSensitive(models, top) : NULL;
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(m, "input_usd_per_mtok");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(m, "output_usd_per_mtok");
    if (!name || !top) {
        snprintf(err, errlen, "%s: a cascade needs a name and tiers with models", path);
        rc = WK_EPARSE;
    } else if (!cJSON_IsNumber(in) || !cJSON_IsNumber(out)) {
        snprintf(err, errlen, "%s: the top tier's model \"%s\" has no prices in the models file",
                 path, top);
        rc = WK_ECONFIG;
    } else {
        r->casc = wk_xrealloc(r->casc, (size_t)(r->ncasc + 1) * sizeof(rcasc));
        rcasc *x = &r->casc[r->ncasc++];
        const char *kind = jstr(cJSON_GetObjectItemCaseSensitive(c, "match"), "kind");
        x->name = wk_xstrdup(name);
        x->kind = kind ? wk_xstrdup(kind) : NULL;
        x->top_model = wk_xstrdup(top);
        x->ntiers = n;
        x->in = in->valuedouble / 1e6;
        x->out = out->valuedouble / 1e6;
    }
    cJSON_Delete(c);
    return rc;
}

/*
 * Reads the files itself rather than through wk_config_load: a report needs
 * prices and tiers only, and must not fail on a provider's ${VAR} that is set
 * only where the batch ran.
 */
int wk_report_set_config(wk_report *r, const char *models_path, const char *cascades, char *err,
                         size_t errlen)
{
    cJSON *root = NULL;
    DIR *d = NULL;
    free_casc(r);
    int rc = read_json(models_path, &root, err, errlen);
    if (rc)
        goto cleanup;
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    struct stat sb;
    if (stat(cascades, &sb) == 0 && S_ISREG(sb.st_mode)) {
        rc = add_cascade_file(r, models, cascades, err, errlen);
        goto cleanup;
    }
    d = opendir(cascades);
    if (!d) {
        snprintf(err, errlen, "%s: cannot open cascades directory: %s", cascades, strerror(errno));
        rc = WK_EIO;
        goto cleanup;
    }
    struct dirent *e;
    while ((e = readdir(d)) && !rc) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0 || e->d_name[0] == '.' ||
            strcmp(e->d_name, "models.json") == 0)
            continue;
        char *path = wk_xasprintf("%s/%s", cascades, e->d_name);
        rc = add_cascade_file(r, models, path, err, errlen);
        free(path);
    }
cleanup:
    if (d)
        closedir(d);
    cJSON_Delete(root);
    if (rc)
        free_casc(r);
    return rc;
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
    }
cleanup:
    cJSON_Delete(j);
    free(text);
    return rc;
}

/* ---- figures ----------------------------------------------------------------- */

typedef struct tier_fig {
    int model;    /* the model seen at this tier (name index), -1 none */
    long reached; /* tasks with an attempt at this tier */
    long calls, passed, accepted;
    double cost;
} tier_fig;

typedef struct kind_fig {
    int kind;
    long tasks, accepted;
    double cost;
} kind_fig;

typedef struct reason_fig {
    int reason;
    long n;
} reason_fig;

typedef struct casc_fig {
    int name;
    wk_report_figures f;
    int ntiers;
    tier_fig tiers[TIERS_MAX];
    kind_fig *kinds;
    int nkinds;
    reason_fig *reasons;
    int nreasons;
    long failed_attempts;
    /* the top tier and its prices */
    int top_tier;
    const char *top_model;
    double top_in, top_out; /* USD per token */
    int prices_known;
} casc_fig;

static const rcasc *config_cascade(const wk_report *r, const char *name)
{
    for (int i = 0; i < r->ncasc; i++)
        if (strcmp(r->casc[i].name, name) == 0)
            return &r->casc[i];
    return NULL;
}

/*
 * Prices of a model from its attempts: cost = pt * in + ct * out, solved by
 * least squares over every attempt with both counts. Returns 0 when the
 * attempts do not pin both prices down (one attempt, or all in one ratio).
 */
static int infer_prices(const wk_report *r, int model, double *in, double *out)
{
    double spp = 0, scc = 0, spc = 0, sp = 0, sc = 0;
    for (long i = 0; i < r->nrows; i++)
        for (int k = 0; k < r->rows[i].natts; k++) {
            const att *a = &r->rows[i].atts[k];
            if (a->model != model || a->pt < 0 || a->ct < 0)
                continue;
            double p = (double)a->pt, c = (double)a->ct;
            spp += p * p;
            scc += c * c;
            spc += p * c;
            sp += p * a->cost;
            sc += c * a->cost;
        }
    double det = spp * scc - spc * spc;
    if (det <= 1e-9 * (spp * scc + 1))
        return 0;
    *in = (sp * scc - sc * spc) / det;
    *out = (sc * spp - sp * spc) / det;
    if (*in < 0)
        *in = 0;
    if (*out < 0)
        *out = 0;
    return 1;
}

static int cmp_reason(const void *a, const void *b)
{
    const reason_fig *x = a, *y = b;
    return (x->n < y->n) - (x->n > y->n);
}

static int row_kind(const wk_report *r, const row *w)
{
    if (w->id < r->kind_of_cap && r->kind_of && r->kind_of[w->id] >= 0)
        return r->kind_of[w->id];
    return -1;
}

/* Computes the figures of every cascade; caller frees with free_figs. */
static casc_fig *compute(wk_report *r, int *nout)
{
    casc_fig *cf = NULL;
    int n = 0;
    for (long i = 0; i < r->nrows; i++) {
        const row *w = &r->rows[i];
        int k = 0;
        while (k < n && cf[k].name != w->cascade)
            k++;
        if (k == n) {
            cf = wk_xrealloc(cf, (size_t)(n + 1) * sizeof(casc_fig));
            memset(&cf[n], 0, sizeof cf[n]);
            cf[n].name = w->cascade;
            for (int t = 0; t < TIERS_MAX; t++)
                cf[n].tiers[t].model = -1;
            n++;
        }
        casc_fig *c = &cf[k];
        c->f.tasks++;
        c->f.accepted += w->status == 'a';
        c->f.exhausted += w->status == 'e';
        c->f.over_budget += w->status == 'o';
        c->f.error += w->status == 'x';
        c->f.cost_usd += w->cost;
        int seen[TIERS_MAX] = {0};
        for (int a = 0; a < w->natts; a++) {
            const att *x = &w->atts[a];
            tier_fig *t = &c->tiers[x->tier];
            if (x->tier + 1 > c->ntiers)
                c->ntiers = x->tier + 1;
            if (t->model < 0)
                t->model = x->model;
            if (!seen[x->tier]++)
                t->reached++;
            t->calls++;
            t->passed += x->pass;
            t->cost += x->cost;
            if (!x->pass) {
                c->failed_attempts++;
                int j = 0;
                while (j < c->nreasons && c->reasons[j].reason != x->reason)
                    j++;
                if (j == c->nreasons) {
                    c->reasons = wk_xrealloc(c->reasons, (size_t)(j + 1) * sizeof(reason_fig));
                    c->reasons[j] = (reason_fig){x->reason, 0};
                    c->nreasons++;
                }
                c->reasons[j].n++;
            }
        }
        if (w->status == 'a' && w->tier >= 0 && w->tier < TIERS_MAX)
            c->tiers[w->tier].accepted++;
        /* The kind: the tasks file, else the cascade's match, else unknown. */
        int kind = row_kind(r, w);
        if (kind < 0) {
            const rcasc *cc = config_cascade(r, name_of(r, w->cascade));
            kind = name_id(r, cc && cc->kind ? cc->kind : "unknown");
        }
        int j = 0;
        while (j < c->nkinds && c->kinds[j].kind != kind)
            j++;
        if (j == c->nkinds) {
            c->kinds = wk_xrealloc(c->kinds, (size_t)(j + 1) * sizeof(kind_fig));
            c->kinds[j] = (kind_fig){.kind = kind};
            c->nkinds++;
        }
        c->kinds[j].tasks++;
        c->kinds[j].accepted += w->status == 'a';
        c->kinds[j].cost += w->cost;
    }
    for (int k = 0; k < n; k++) {
        casc_fig *c = &cf[k];
        qsort(c->reasons, (size_t)c->nreasons, sizeof(reason_fig), cmp_reason);
        const rcasc *cc = config_cascade(r, name_of(r, c->name));
        if (cc) {
            c->top_tier = cc->ntiers - 1;
            c->top_model = cc->top_model;
            c->top_in = cc->in;
            c->top_out = cc->out;
            c->prices_known = 1;
            c->f.top_from_config = 1;
            if (cc->ntiers > c->ntiers)
                c->ntiers = cc->ntiers;
        } else {
            c->top_tier = c->ntiers - 1;
            int model = c->top_tier >= 0 ? c->tiers[c->top_tier].model : -1;
            c->top_model = model >= 0 ? name_of(r, model) : "?";
            c->prices_known = model >= 0 && infer_prices(r, model, &c->top_in, &c->top_out);
        }
        if (c->ntiers > TIERS_MAX)
            c->ntiers = TIERS_MAX;
    }
    /* The top tier's cost per task, as run's summary prices it. */
    for (long i = 0; i < r->nrows; i++) {
        const row *w = &r->rows[i];
        casc_fig *c = cf;
        while (c->name != w->cascade)
            c++;
        const att *first = NULL, *top = NULL;
        for (int a = 0; a < w->natts; a++) {
            if (w->atts[a].pt < 0)
                continue;
            if (!first)
                first = &w->atts[a];
            if (w->atts[a].tier == c->top_tier && !top)
                top = &w->atts[a];
        }
        if (top) {
            c->f.top_cost_usd += top->cost;
        } else if (first && c->prices_known) {
            c->f.top_cost_usd += (double)first->pt * c->top_in +
                                 (double)(first->ct > 0 ? first->ct : 0) * c->top_out;
            c->f.top_estimated++;
        }
    }
    *nout = n;
    return cf;
}

static void free_figs(casc_fig *cf, int n)
{
    for (int k = 0; k < n; k++) {
        free(cf[k].kinds);
        free(cf[k].reasons);
    }
    free(cf);
}

int wk_report_figures_of(const wk_report *r, const char *cascade, wk_report_figures *out)
{
    int n = 0, rc = WK_ENOTFOUND;
    casc_fig *cf = compute((wk_report *)r, &n);
    for (int k = 0; k < n; k++)
        if (strcmp(name_of(r, cf[k].name), cascade) == 0) {
            *out = cf[k].f;
            rc = 0;
        }
    free_figs(cf, n);
    return rc;
}

/* ---- text -------------------------------------------------------------------- */

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

void wk_report_text(const wk_report *r, FILE *f)
{
    int n = 0;
    casc_fig *cf = compute((wk_report *)r, &n);
    long total = 0;
    for (int k = 0; k < n; k++)
        total += cf[k].f.tasks;
    fprintf(f, "cascade report: %ld tasks from %d results file%s", total, r->files,
            r->files == 1 ? "" : "s");
    if (r->invalid)
        fprintf(f, " (and %ld invalid_task lines, not counted)", r->invalid);
    fprintf(f, "\n");
    for (int k = 0; k < n; k++) {
        const casc_fig *c = &cf[k];
        const wk_report_figures *g = &c->f;
        fprintf(f, "\n== cascade %s\n", name_of(r, c->name));
        fprintf(f, "  tasks %ld: %ld accepted, %ld exhausted, %ld over_budget, %ld error\n",
                g->tasks, g->accepted, g->exhausted, g->over_budget, g->error);
        fprintf(f, "  pass rate %.3f   cost $%.6f   cost per solved task $%.6f\n",
                ratio((double)g->accepted, (double)g->tasks), g->cost_usd,
                ratio(g->cost_usd, (double)g->accepted));
        if (g->top_cost_usd > 0) {
            fprintf(f, "  top tier alone (%s): $%.6f, saving %.1f%%", c->top_model, g->top_cost_usd,
                    100.0 * (1.0 - g->cost_usd / g->top_cost_usd));
            if (g->top_estimated)
                fprintf(f, "; %ld tasks priced from lower tiers' token counts", g->top_estimated);
            fprintf(f, "\n");
        } else {
            fprintf(f, "  top tier alone (%s): no figure\n", c->top_model);
        }
        if (!g->top_from_config)
            fprintf(f,
                    "  (no models file for this cascade: the top tier is the highest tier "
                    "in the results and its prices are %s)\n",
                    c->prices_known ? "inferred from its attempts' costs and tokens"
                                    : "unknown, so only its own calls are counted");
        fprintf(f, "  %-4s %-28s %8s %6s %6s %8s %9s %12s\n", "tier", "model", "reached", "calls",
                "passed", "accepted", "pass rate", "cost");
        for (int t = 0; t < c->ntiers; t++) {
            const tier_fig *x = &c->tiers[t];
            fprintf(f, "  %-4d %-28s %8ld %6ld %6ld %8ld %9.3f %12.6f\n", t,
                    x->model >= 0 ? name_of(r, x->model) : "-", x->reached, x->calls, x->passed,
                    x->accepted, ratio((double)x->passed, (double)x->calls), x->cost);
        }
        fprintf(f, "  %-12s %6s %8s %9s %12s\n", "kind", "tasks", "accepted", "pass rate", "cost");
        for (int j = 0; j < c->nkinds; j++)
            fprintf(f, "  %-12s %6ld %8ld %9.3f %12.6f\n", name_of(r, c->kinds[j].kind),
                    c->kinds[j].tasks, c->kinds[j].accepted,
                    ratio((double)c->kinds[j].accepted, (double)c->kinds[j].tasks),
                    c->kinds[j].cost);
        fprintf(f, "  failed attempts: %ld; by validator and reason (top %d):\n",
                c->failed_attempts, TOP_REASONS);
        for (int j = 0; j < c->nreasons && j < TOP_REASONS; j++)
            fprintf(f, "    %6ld  %s\n", c->reasons[j].n, name_of(r, c->reasons[j].reason));
    }
    free_figs(cf, n);
}

/* ---- HTML -------------------------------------------------------------------- */

/* Chart colours; the HTML test looks for them in the rendered page. */
#define COLOR_COST "#d9822b"
#define COLOR_RATE "#2b7bb9"
#define COLOR_SINGLE "#7b3fa0"
#define COLOR_PLAN "#3a9b3a"
#define COLOR_ORACLE "#d62728"
#define COLOR_HERE "#222222"

static void esc(wk_buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            wk_buf_appendf(b, "&amp;");
            break;
        case '<':
            wk_buf_appendf(b, "&lt;");
            break;
        case '>':
            wk_buf_appendf(b, "&gt;");
            break;
        case '"':
            wk_buf_appendf(b, "&quot;");
            break;
        case '\'':
            wk_buf_appendf(b, "&#39;");
            break;
        default:
            wk_buf_append(b, s, 1);
        }
    }
}

/* A "nice" axis maximum: 1, 2 or 5 times a power of ten at or above v. */
static double nice_max(double v)
{
    if (v <= 0)
        return 1;
    double p = pow(10, floor(log10(v)));
    for (int i = 0; i < 3; i++) {
        static const double m[] = {1, 2, 5};
        if (m[i] * p >= v)
            return m[i] * p;
    }
    return 10 * p;
}

/*
 * A vertical bar chart: one bar per tier, labelled with the model and the
 * value. `fmt` formats a value for the label; `maxv` fixes the axis (0: from
 * the data).
 */
static void bar_chart(wk_buf *b, const char *title, const char *cls, const char *color,
                      const char **labels, const double *vals, int n, double maxv, const char *fmt)
{
    const int W = 520, H = 260, L = 60, R = 20, T = 30, B = 60;
    double top = maxv;
    if (top <= 0) {
        for (int i = 0; i < n; i++)
            if (vals[i] > top)
                top = vals[i];
        top = nice_max(top);
    }
    wk_buf_appendf(b,
                   "<svg class=\"chart %s\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" "
                   "height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n",
                   cls, W, H, W, H);
    wk_buf_appendf(b, "<title>");
    esc(b, title);
    wk_buf_appendf(b, "</title>\n<text x=\"%d\" y=\"18\" class=\"ct\">", L);
    esc(b, title);
    wk_buf_appendf(b, "</text>\n");
    int ph = H - T - B, pw = W - L - R;
    for (int g = 0; g <= 4; g++) {
        double v = top * g / 4;
        int y = T + ph - (int)lround(ph * (double)g / 4);
        char lab[32];
        snprintf(lab, sizeof lab, fmt, v);
        wk_buf_appendf(b,
                       "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\"/>"
                       "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"end\">%s</text>\n",
                       L, y, L + pw, y, L - 6, y + 4, lab);
    }
    int slot = n ? pw / n : pw;
    int bw = slot * 3 / 5;
    for (int i = 0; i < n; i++) {
        int h = top > 0 ? (int)lround(ph * (vals[i] / top)) : 0;
        if (h < 1 && vals[i] > 0)
            h = 1;
        int x = L + slot * i + (slot - bw) / 2;
        char lab[32];
        snprintf(lab, sizeof lab, fmt, vals[i]);
        wk_buf_appendf(b,
                       "<rect class=\"bar\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
                       "fill=\"%s\"/><text x=\"%d\" y=\"%d\" class=\"val\" "
                       "text-anchor=\"middle\">%s</text>\n",
                       x, T + ph - h, bw, h, color, x + bw / 2, T + ph - h - 4, lab);
        wk_buf_appendf(b, "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">",
                       x + bw / 2, T + ph + 16);
        wk_buf_appendf(b,
                       "tier %d</text><text x=\"%d\" y=\"%d\" class=\"ax\" "
                       "text-anchor=\"middle\">",
                       i, x + bw / 2, T + ph + 32);
        esc(b, labels[i]);
        wk_buf_appendf(b, "</text>\n");
    }
    wk_buf_appendf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"axis\"/>\n", L, T + ph,
                   L + pw, T + ph);
    wk_buf_appendf(b, "</svg>\n");
}

typedef struct point {
    const char *label;
    double cost, rate;
    const char *color;
    int shape;        /* 0 circle, 1 square, 2 diamond */
    const char *what; /* for the legend */
} point;

/* Cost (log scale) against pass rate, numbered points; the legend is an HTML table. */
static void scatter(wk_buf *b, const point *p, int n)
{
    const int W = 760, H = 420, L = 70, R = 30, T = 30, B = 50;
    double cmin = 0, cmax = 0, rmin = 1;
    for (int i = 0; i < n; i++) {
        if (p[i].cost > 0 && (cmin == 0 || p[i].cost < cmin))
            cmin = p[i].cost;
        if (p[i].cost > cmax)
            cmax = p[i].cost;
        if (p[i].rate < rmin)
            rmin = p[i].rate;
    }
    if (cmin <= 0)
        cmin = cmax > 0 ? cmax / 10 : 0.001;
    if (cmax <= cmin)
        cmax = cmin * 10;
    double lo = floor(log10(cmin)), hi = ceil(log10(cmax));
    if (hi <= lo)
        hi = lo + 1;
    double ylo = floor(rmin * 10) / 10;
    if (ylo > 0.9)
        ylo = 0.9;
    if (ylo < 0)
        ylo = 0;
    int pw = W - L - R, ph = H - T - B;
    wk_buf_appendf(b,
                   "<svg class=\"chart scatter\" xmlns=\"http://www.w3.org/2000/svg\" "
                   "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\">\n"
                   "<title>Cost against pass rate</title>\n"
                   "<text x=\"%d\" y=\"18\" class=\"ct\">Cost (USD, log scale) against pass "
                   "rate</text>\n",
                   W, H, W, H, L);
    for (double e = lo; e <= hi + 1e-9; e++) {
        int x = L + (int)lround(pw * (e - lo) / (hi - lo));
        wk_buf_appendf(b,
                       "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\"/>"
                       "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">$%g</text>\n",
                       x, T, x, T + ph, x, T + ph + 18, pow(10, e));
    }
    double step = 1 - ylo >= 0.3 ? 0.1 : 0.05;
    int nticks = (int)lround((1 - ylo) / step);
    for (int g = 0; g <= nticks; g++) {
        double v = ylo + step * g;
        int y = T + ph - (int)lround(ph * (v - ylo) / (1 - ylo));
        wk_buf_appendf(b,
                       "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"grid\"/>"
                       "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"end\">%.2f</text>\n",
                       L, y, L + pw, y, L - 6, y + 4, v);
    }
    wk_buf_appendf(b,
                   "<text x=\"%d\" y=\"%d\" class=\"ax\" text-anchor=\"middle\">cost</text>"
                   "<text x=\"14\" y=\"%d\" class=\"ax\" transform=\"rotate(-90 14 %d)\" "
                   "text-anchor=\"middle\">pass rate</text>\n",
                   L + pw / 2, H - 8, T + ph / 2, T + ph / 2);
    int *labx = wk_xcalloc((size_t)n + 1, sizeof(int));
    int *laby = wk_xcalloc((size_t)n + 1, sizeof(int));
    int nlab = 0;
    for (int i = 0; i < n; i++) {
        double c = p[i].cost > 0 ? p[i].cost : cmin;
        int x = L + (int)lround(pw * (log10(c) - lo) / (hi - lo));
        int y = T + ph - (int)lround(ph * (p[i].rate - ylo) / (1 - ylo));
        if (p[i].shape == 1)
            wk_buf_appendf(b,
                           "<rect class=\"pt\" x=\"%d\" y=\"%d\" width=\"14\" height=\"14\" "
                           "fill=\"%s\"/>",
                           x - 7, y - 7, p[i].color);
        else if (p[i].shape == 2)
            wk_buf_appendf(b,
                           "<polygon class=\"pt\" points=\"%d,%d %d,%d %d,%d %d,%d\" "
                           "fill=\"%s\"/>",
                           x, y - 10, x + 10, y, x, y + 10, x - 10, y, p[i].color);
        else
            wk_buf_appendf(b, "<circle class=\"pt\" cx=\"%d\" cy=\"%d\" r=\"8\" fill=\"%s\"/>", x,
                           y, p[i].color);
        /* Numbers of points close together are stacked rather than printed over each other. */
        int lx = x + 11, ly = y - 7;
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < nlab; j++)
                if (abs(labx[j] - lx) < 22 && abs(laby[j] - ly) < 12) {
                    ly += 13;
                    moved = 1;
                }
        }
        labx[nlab] = lx;
        laby[nlab++] = ly;
    }
    /* The numbers after every point, so no point hides one. */
    for (int i = 0; i < nlab; i++)
        wk_buf_appendf(b, "<text x=\"%d\" y=\"%d\" class=\"num\">%d</text>\n", labx[i], laby[i],
                       i + 1);
    free(labx);
    free(laby);
    wk_buf_appendf(b, "</svg>\n");
}

static const char css[] =
    "body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}"
    "h1{font-size:22px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}"
    "table{border-collapse:collapse;margin:8px 0 16px}"
    "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}"
    "td:first-child,th:first-child,td.l,th.l{text-align:left}"
    ".charts{display:flex;flex-wrap:wrap;gap:16px}"
    "svg.chart{background:#fff;border:1px solid #e3e3e3}"
    ".ct{font-size:14px;font-weight:600;fill:#222}.ax{font-size:11px;fill:#555}"
    ".val{font-size:11px;fill:#222}.num{font-size:12px;font-weight:600;fill:#222}"
    ".grid{stroke:#eee}.axis{stroke:#888}.note{color:#666}"
    ".sw{display:inline-block;width:12px;height:12px;margin-right:6px}";

int wk_report_html(const wk_report *r, const char *path, char *err, size_t errlen)
{
    int rc = 0, n = 0;
    FILE *f = NULL;
    wk_buf b;
    wk_buf_init(&b, 256u << 20);
    casc_fig *cf = compute((wk_report *)r, &n);
    point *pts = wk_xcalloc((size_t)(r->ntable + n) + 1, sizeof(point));
    int npts = 0;

    wk_buf_appendf(&b,
                   "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                   "<title>cascade report</title><style>%s</style></head><body>\n"
                   "<h1>cascade report</h1>\n",
                   css);
    long total = 0;
    for (int k = 0; k < n; k++)
        total += cf[k].f.tasks;
    wk_buf_appendf(&b, "<p>%ld tasks from %d results file%s%s.</p>\n", total, r->files,
                   r->files == 1 ? "" : "s",
                   r->invalid ? " (invalid_task lines are not counted)" : "");

    /* Cost against pass rate: the eval table's plans, then this report's cascades. */
    for (int i = 0; i < r->ntable; i++) {
        const table_row *t = &r->table[i];
        int oracle = strcmp(t->plan, "oracle") == 0;
        int single = !strchr(t->plan, '>') && !oracle;
        pts[npts++] = (point){t->plan,
                              t->cost,
                              t->pass_rate,
                              oracle   ? COLOR_ORACLE
                              : single ? COLOR_SINGLE
                                       : COLOR_PLAN,
                              oracle   ? 2
                              : single ? 0
                                       : 1,
                              oracle   ? "oracle (per task, the cheapest model that passes)"
                              : single ? "one model (eval table)"
                                       : "cascade (eval table)"};
    }
    for (int k = 0; k < n; k++)
        pts[npts++] = (point){name_of(r, cf[k].name),
                              cf[k].f.cost_usd,
                              ratio((double)cf[k].f.accepted, (double)cf[k].f.tasks),
                              COLOR_HERE,
                              1,
                              "cascade in these results"};
    wk_buf_appendf(&b, "<h2>Cost against pass rate</h2>\n<div class=\"charts\">\n");
    scatter(&b, pts, npts);
    wk_buf_appendf(&b, "</div>\n<table><tr><th>#</th><th class=\"l\">plan</th><th>pass rate</th>"
                       "<th>cost</th><th class=\"l\">what</th></tr>\n");
    for (int i = 0; i < npts; i++) {
        wk_buf_appendf(&b, "<tr><td>%d</td><td class=\"l\">", i + 1);
        esc(&b, pts[i].label);
        wk_buf_appendf(&b,
                       "</td><td>%.3f</td><td>$%.4f</td><td class=\"l\"><span class=\"sw\" "
                       "style=\"background:%s\"></span>%s</td></tr>\n",
                       pts[i].rate, pts[i].cost, pts[i].color, pts[i].what);
    }
    wk_buf_appendf(&b, "</table>\n");
    if (!r->ntable)
        wk_buf_appendf(&b, "<p class=\"note\">No eval table was given (--table), so single "
                           "models and the oracle are not shown.</p>\n");

    for (int k = 0; k < n; k++) {
        const casc_fig *c = &cf[k];
        const wk_report_figures *g = &c->f;
        wk_buf_appendf(&b, "<h2>Cascade ");
        esc(&b, name_of(r, c->name));
        wk_buf_appendf(&b, "</h2>\n<table><tr><th>tasks</th><th>accepted</th><th>exhausted"
                           "</th><th>over_budget</th><th>error</th><th>pass rate</th><th>cost"
                           "</th><th>per solved task</th><th>top tier alone</th><th>saving"
                           "</th></tr>\n");
        wk_buf_appendf(&b,
                       "<tr><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td>"
                       "<td>%.3f</td><td>$%.6f</td><td>$%.6f</td><td>$%.6f</td><td>%.1f%%"
                       "</td></tr></table>\n",
                       g->tasks, g->accepted, g->exhausted, g->over_budget, g->error,
                       ratio((double)g->accepted, (double)g->tasks), g->cost_usd,
                       ratio(g->cost_usd, (double)g->accepted), g->top_cost_usd,
                       g->top_cost_usd > 0 ? 100.0 * (1 - g->cost_usd / g->top_cost_usd) : 0);
        wk_buf_appendf(&b, "<p class=\"note\">Top tier: ");
        esc(&b, c->top_model);
        if (g->top_estimated)
            wk_buf_appendf(&b, "; %ld tasks priced from lower tiers' token counts",
                           g->top_estimated);
        if (!g->top_from_config)
            wk_buf_appendf(&b, "; no models file: prices %s",
                           c->prices_known ? "inferred from its attempts" : "unknown");
        wk_buf_appendf(&b, ".</p>\n");

        const char *labels[TIERS_MAX];
        double costs[TIERS_MAX], rates[TIERS_MAX];
        for (int t = 0; t < c->ntiers; t++) {
            labels[t] = c->tiers[t].model >= 0 ? name_of(r, c->tiers[t].model) : "-";
            costs[t] = c->tiers[t].cost;
            rates[t] = ratio((double)c->tiers[t].passed, (double)c->tiers[t].calls);
        }
        wk_buf_appendf(&b, "<div class=\"charts\">\n");
        bar_chart(&b, "Cost per tier (USD)", "cost", COLOR_COST, labels, costs, c->ntiers, 0,
                  "$%.4g");
        bar_chart(&b, "Pass rate of the attempts at each tier", "rate", COLOR_RATE, labels, rates,
                  c->ntiers, 1.0, "%.2f");
        wk_buf_appendf(&b, "</div>\n<table><tr><th>tier</th><th>model</th><th>reached</th>"
                           "<th>calls</th><th>passed</th><th>accepted</th><th>pass rate</th>"
                           "<th>cost</th></tr>\n");
        for (int t = 0; t < c->ntiers; t++) {
            const tier_fig *x = &c->tiers[t];
            wk_buf_appendf(&b, "<tr><td>%d</td><td class=\"l\">", t);
            esc(&b, labels[t]);
            wk_buf_appendf(&b,
                           "</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%ld</td><td>%.3f"
                           "</td><td>$%.6f</td></tr>\n",
                           x->reached, x->calls, x->passed, x->accepted, rates[t], x->cost);
        }
        wk_buf_appendf(&b, "</table>\n<table><tr><th>kind</th><th>tasks</th><th>accepted</th>"
                           "<th>pass rate</th><th>cost</th></tr>\n");
        for (int j = 0; j < c->nkinds; j++) {
            wk_buf_appendf(&b, "<tr><td>");
            esc(&b, name_of(r, c->kinds[j].kind));
            wk_buf_appendf(&b, "</td><td>%ld</td><td>%ld</td><td>%.3f</td><td>$%.6f</td></tr>\n",
                           c->kinds[j].tasks, c->kinds[j].accepted,
                           ratio((double)c->kinds[j].accepted, (double)c->kinds[j].tasks),
                           c->kinds[j].cost);
        }
        wk_buf_appendf(&b,
                       "</table>\n<table><tr><th>failed attempts by validator: reason "
                       "(top %d)</th><th>count</th></tr>\n",
                       TOP_REASONS);
        for (int j = 0; j < c->nreasons && j < TOP_REASONS; j++) {
            wk_buf_appendf(&b, "<tr><td>");
            esc(&b, name_of(r, c->reasons[j].reason));
            wk_buf_appendf(&b, "</td><td>%ld</td></tr>\n", c->reasons[j].n);
        }
        wk_buf_appendf(&b, "</table>\n");
    }
    if (wk_buf_appendf(&b, "</body></html>\n") != 0) {
        snprintf(err, errlen, "%s: the report is over its size cap", path);
        rc = WK_ETOOBIG;
        goto cleanup;
    }
    f = fopen(path, "w");
    if (!f || fwrite(b.buf, 1, b.len, f) != b.len || fflush(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = WK_EIO;
    }
cleanup:
    if (f)
        fclose(f);
    free(pts);
    free_figs(cf, n);
    wk_buf_release(&b);
    return rc;
}
