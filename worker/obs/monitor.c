/*
 * The run's counters (see obs.h): fed by run.c's hooks, read by the
 * progress line and the metrics endpoint. Costs and task counts come from
 * the result lines themselves, so the endpoint agrees with the results file.
 */
#include "monitor_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/util.h"

/* Call latency: from a cheap model's fraction of a second to a long generation. */
static const double call_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
/* A validator chain: a schema check in microseconds, a test run in seconds. */
static const double val_bounds[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void family(wk_mon *ob, int i, const char *name, const char *help, const double *bounds,
                   int nbounds)
{
    ob->f[i].name = name;
    ob->f[i].help = help;
    ob->f[i].bounds = bounds;
    ob->f[i].nbounds = nbounds;
}

/*
 * Task lines in a regular file: lines with something besides white space, as
 * intake skips blank ones (the last may lack its newline); -1 for anything
 * else (stdin, a FIFO), whose total is not known in advance.
 */
static long count_lines(const char *path)
{
    struct stat st;
    if (!path || strcmp(path, "-") == 0 || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return -1;
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char buf[65536];
    long n = 0;
    size_t got;
    int content = 0;
    while ((got = fread(buf, 1, sizeof buf, f)) > 0)
        for (size_t i = 0; i < got; i++) {
            if (buf[i] == '\n') {
                n += content;
                content = 0;
            } else if (!strchr(" \t\r", buf[i])) {
                content = 1;
            }
        }
    fclose(f);
    return n + content;
}

int wk_mon_new(uv_loop_t *loop, const wk_config *cfg, const wk_mon_opts *o, const int *active,
               const long *skipped, wk_mon **out, char *err, size_t errlen)
{
    wk_mon *ob = wk_xcalloc(1, sizeof *ob);
    ob->loop = loop;
    ob->cfg = cfg;
    ob->o = *o;
    ob->active = active;
    ob->skipped = skipped;
    ob->t0 = uv_hrtime();
    ob->labelled = o->metrics_addr != NULL;
    ob->total = count_lines(o->tasks_path);
    family(ob, WK__F_CALLS, "cascade_calls_total",
           "Model calls by provider, model and status (ok, cached or the failure's class).", NULL,
           0);
    family(ob, WK__F_RETRIES, "cascade_call_retries_total",
           "Transport retries inside calls, by provider and model.", NULL, 0);
    family(ob, WK__F_FALLBACKS, "cascade_call_fallbacks_total",
           "Moves to a fallback deployment inside calls, by model.", NULL, 0);
    family(ob, WK__F_ESCALATIONS, "cascade_escalations_total",
           "Climbs to the next tier, by cascade, validator and reason.", NULL, 0);
    family(ob, WK__F_TASKS, "cascade_tasks_total",
           "Tasks finished, by cascade, final status and tier (none unless accepted).", NULL, 0);
    family(ob, WK__F_COST, "cascade_cost_usd_total",
           "Spend in US dollars of finished tasks' attempts, by model.", NULL, 0);
    family(ob, WK__F_CALL_SECONDS, "cascade_call_duration_seconds",
           "Latency of model calls, by model.", call_bounds, NB(call_bounds));
    family(ob, WK__F_VALIDATION_SECONDS, "cascade_validation_duration_seconds",
           "Time of validator chains on one answer.", val_bounds, NB(val_bounds));
    *out = ob;
    if (o->metrics_addr && wk__metrics_start(ob, err, errlen))
        return -1;
    wk__progress_start(ob);
    return 0;
}

void wk_mon_stop(wk_mon *ob)
{
    if (!ob || ob->stopped)
        return;
    ob->stopped = 1;
    wk__progress_stop(ob);
    wk__metrics_stop(ob);
}

void wk_mon_free(wk_mon *ob)
{
    if (!ob)
        return;
    for (int i = 0; i < WK__F_COUNT; i++) {
        for (int k = 0; k < ob->f[i].n; k++) {
            free(ob->f[i].v[k].labels);
            free(ob->f[i].v[k].buckets);
        }
        free(ob->f[i].v);
    }
    free(ob);
}

/* ---- series ------------------------------------------------------------------ */

static wk__mon_series *series(wk__mon_family *f, const char *labels)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->v[i].labels, labels) == 0)
            return &f->v[i];
    if (f->n >= WK__MON_SERIES_MAX)
        return NULL;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 8;
        f->v = wk_xrealloc(f->v, (size_t)f->cap * sizeof *f->v);
    }
    wk__mon_series *s = &f->v[f->n++];
    memset(s, 0, sizeof *s);
    s->labels = wk_xstrdup(labels);
    if (f->bounds)
        s->buckets = wk_xcalloc((size_t)f->nbounds, sizeof(long));
    return s;
}

void wk__mon_add(wk__mon_family *f, const char *labels, double v)
{
    wk__mon_series *s = series(f, labels);
    if (s)
        s->v += v;
}

void wk__mon_observe(wk__mon_family *f, const char *labels, double x)
{
    wk__mon_series *s = series(f, labels);
    if (!s)
        return;
    s->v += x;
    s->count++;
    for (int i = 0; i < f->nbounds; i++)
        if (x <= f->bounds[i]) {
            s->buckets[i]++;
            break;
        }
}

/* Appends name="value" with the text format's escapes; values are capped at 128 bytes. */
static void label(wk_buf *b, const char *name, const char *value)
{
    if (b->len)
        wk_buf_append(b, ",", 1);
    wk_buf_append(b, name, strlen(name));
    wk_buf_append(b, "=\"", 2);
    size_t n = 0;
    for (const char *p = value ? value : ""; *p && n < 128; p++, n++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '\\' || ch == '"')
            wk_buf_append(b, (const char[]){'\\', (char)ch}, 2);
        else if (ch == '\n')
            wk_buf_append(b, "\\n", 2);
        else if (ch < 0x20 || ch == 0x7f)
            wk_buf_append(b, "_", 1);
        else
            wk_buf_append(b, p, 1);
    }
    wk_buf_append(b, "\"", 1);
}

/* ---- hooks ------------------------------------------------------------------- */

static const char *model_name(const wk_model *m)
{
    return m && m->name ? m->name : "unknown";
}

static const char *provider_name(const wk_model *m)
{
    return m && m->provider && m->provider->name ? m->provider->name : "unknown";
}

void wk_mon_action(wk_mon *ob, wk_mon_slot *s, const wk_cascade *c, const wk_action *a)
{
    if (!ob)
        return;
    wk_buf b;
    switch (a->kind) {
    case WK_ACT_CALL:
        if (!s->in_call)
            ob->calls_in_flight++;
        s->in_call = 1;
        s->model = a->model;
        s->call_t0 = uv_hrtime();
        break;
    case WK_ACT_VALIDATE:
        s->in_val = 1;
        s->val_t0 = uv_hrtime();
        break;
    case WK_ACT_LOG:
        if (!ob->labelled)
            break;
        wk_buf_init(&b, 4096);
        label(&b, "cascade", c ? c->name : "");
        label(&b, "validator", wk_jstr(a->line, "validator"));
        label(&b, "reason", wk_jstr(a->line, "reason"));
        wk__mon_add(&ob->f[WK__F_ESCALATIONS], b.buf ? b.buf : "", 1);
        wk_buf_release(&b);
        break;
    case WK_ACT_FINISH:
        wk_mon_result(ob, a->line);
        break;
    case WK_ACT_PREPARE:
        break;
    }
}

void wk_mon_event(wk_mon *ob, wk_mon_slot *s, const wk_event *ev)
{
    if (!ob)
        return;
    uint64_t now = uv_hrtime();
    wk_buf b;
    if ((ev->kind == WK_EV_RESPONSE || ev->kind == WK_EV_CALL_FAILED) && s->in_call) {
        s->in_call = 0;
        ob->calls_in_flight--;
        if (!ob->labelled)
            return;
        const wk_model *m = ev->served ? ev->served : s->model;
        const char *status = ev->kind == WK_EV_RESPONSE ? (ev->from_cache ? "cached" : "ok")
                             : ev->error_reason         ? ev->error_reason
                                                        : "error";
        wk_buf_init(&b, 4096);
        label(&b, "provider", provider_name(m));
        label(&b, "model", model_name(m));
        wk__mon_add(&ob->f[WK__F_RETRIES], b.buf, ev->retries);
        label(&b, "status", status);
        wk__mon_add(&ob->f[WK__F_CALLS], b.buf, 1);
        b.len = 0;
        label(&b, "model", model_name(m));
        wk__mon_add(&ob->f[WK__F_FALLBACKS], b.buf, ev->fallbacks);
        double secs = ev->kind == WK_EV_RESPONSE && ev->latency_ms > 0
                          ? (double)ev->latency_ms / 1000
                          : (double)(now - s->call_t0) / 1e9;
        wk__mon_observe(&ob->f[WK__F_CALL_SECONDS], b.buf, secs);
        wk_buf_release(&b);
    } else if (ev->kind == WK_EV_VERDICT && s->in_val) {
        s->in_val = 0;
        if (ob->labelled)
            wk__mon_observe(&ob->f[WK__F_VALIDATION_SECONDS], "", (double)(now - s->val_t0) / 1e9);
    }
}

static double jnum(const cJSON *o, const char *name, double dflt)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(f) ? f->valuedouble : dflt;
}

/* The tasks and cost families' share of a result line (labelled only). */
static void result_families(wk_mon *ob, const cJSON *res, const char *status, long tier)
{
    char tbuf[24];
    snprintf(tbuf, sizeof tbuf, "%ld", tier);
    wk_buf b;
    wk_buf_init(&b, 4096);
    label(&b, "cascade", wk_jstr(res, "cascade"));
    label(&b, "status", status);
    label(&b, "tier", tier >= 0 ? tbuf : "none");
    wk__mon_add(&ob->f[WK__F_TASKS], b.buf, 1);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(res, "attempts"))
    {
        /* Priced as the deployment that answered (a fallback is the same model elsewhere). */
        const char *m = wk_jstr(a, "deployment");
        b.len = 0;
        label(&b, "model", m ? m : wk_jstr(a, "model"));
        wk__mon_add(&ob->f[WK__F_COST], b.buf, jnum(a, "cost_usd", 0));
    }
    wk_buf_release(&b);
}

void wk_mon_result(wk_mon *ob, const cJSON *res)
{
    if (!ob || !res)
        return;
    const char *status = wk_jstr(res, "status");
    status = status ? status : "unknown";
    long tier = (long)jnum(res, "tier", -1);
    if (ob->labelled)
        result_families(ob, res, status, tier);
    ob->done++;
    ob->spent_usd += jnum(res, "cost_usd", 0);
    if (strcmp(status, "accepted") == 0 && tier >= 0)
        ob->accepted_at[tier < WK_MON_TIERS ? tier : WK_MON_TIERS - 1]++;
    else if (strcmp(status, "exhausted") == 0)
        ob->exhausted++;
    else if (strcmp(status, "accepted") != 0)
        ob->failed++;
}

/* ---- the text format --------------------------------------------------------- */

static void sample(wk_buf *b, const char *name, const char *suffix, const char *labels,
                   const char *extra, double v)
{
    int any = (labels && *labels) || extra;
    wk_buf_appendf(b, "%s%s%s%s%s%s%s %.12g\n", name, suffix, any ? "{" : "", labels ? labels : "",
                   labels && *labels && extra ? "," : "", extra ? extra : "", any ? "}" : "", v);
}

char *wk_mon_render(const wk_mon *ob)
{
    wk_buf b;
    wk_buf_init(&b, 64u << 20);
    for (int i = 0; i < WK__F_COUNT; i++) {
        const wk__mon_family *f = &ob->f[i];
        wk_buf_appendf(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                       f->bounds ? "histogram" : "counter");
        for (int k = 0; k < f->n; k++) {
            const wk__mon_series *s = &f->v[k];
            if (!f->bounds) {
                sample(&b, f->name, "", s->labels, NULL, s->v);
                continue;
            }
            long cum = 0;
            char le[48];
            for (int j = 0; j < f->nbounds; j++) {
                cum += s->buckets[j];
                snprintf(le, sizeof le, "le=\"%g\"", f->bounds[j]);
                sample(&b, f->name, "_bucket", s->labels, le, (double)cum);
            }
            sample(&b, f->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
            sample(&b, f->name, "_sum", s->labels, NULL, s->v);
            sample(&b, f->name, "_count", s->labels, NULL, (double)s->count);
        }
    }
    wk_buf_appendf(&b,
                   "# HELP cascade_tasks_in_flight Tasks being worked on.\n"
                   "# TYPE cascade_tasks_in_flight gauge\ncascade_tasks_in_flight %d\n"
                   "# HELP cascade_calls_in_flight Model calls sent and not yet answered.\n"
                   "# TYPE cascade_calls_in_flight gauge\ncascade_calls_in_flight %ld\n",
                   ob->active ? *ob->active : 0, ob->calls_in_flight);
    if (ob->total >= 0)
        wk_buf_appendf(&b,
                       "# HELP cascade_tasks_input Task lines in the tasks file.\n"
                       "# TYPE cascade_tasks_input gauge\ncascade_tasks_input %ld\n",
                       ob->total);
    if (ob->o.budget_usd > 0)
        wk_buf_appendf(&b,
                       "# HELP cascade_budget_left_usd The run budget less the spend of "
                       "finished tasks.\n"
                       "# TYPE cascade_budget_left_usd gauge\ncascade_budget_left_usd %.12g\n",
                       ob->o.budget_usd - ob->spent_usd);
    return wk_buf_detach(&b, NULL);
}

/* ---- the progress line ------------------------------------------------------- */

static void duration(wk_buf *b, double secs)
{
    long s = (long)(secs + 0.5);
    if (s >= 3600)
        wk_buf_appendf(b, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else if (s >= 60)
        wk_buf_appendf(b, "%ldm%02lds", s / 60, s % 60);
    else
        wk_buf_appendf(b, "%lds", s);
}

char *wk_mon_progress_line(const wk_mon *ob)
{
    wk_buf b;
    wk_buf_init(&b, 4096);
    long done = ob->done + (ob->skipped ? *ob->skipped : 0);
    double secs = (double)(uv_hrtime() - ob->t0) / 1e9;
    wk_buf_appendf(&b, "cascade: ");
    if (ob->total >= 0)
        wk_buf_appendf(&b, "%ld/%ld done", done, ob->total);
    else
        wk_buf_appendf(&b, "%ld done", done);
    wk_buf_appendf(&b, ", %d in flight, accepted", ob->active ? *ob->active : 0);
    int tiers = 1;
    for (int i = 0; i < ob->cfg->ncascades; i++)
        if (ob->cfg->cascades[i].ntiers > tiers)
            tiers = ob->cfg->cascades[i].ntiers;
    if (tiers > WK_MON_TIERS)
        tiers = WK_MON_TIERS;
    for (int i = 0; i < tiers; i++)
        wk_buf_appendf(&b, " t%d:%ld", i, ob->accepted_at[i]);
    wk_buf_appendf(&b, ", %ld exhausted, %ld error/invalid, $%.4f", ob->exhausted, ob->failed,
                   ob->spent_usd);
    if (ob->o.budget_usd > 0)
        wk_buf_appendf(&b, " of $%.2f", ob->o.budget_usd);
    double rate = secs > 0 ? (double)ob->done / secs : 0;
    wk_buf_appendf(&b, ", %.1f/s, ", rate);
    duration(&b, secs);
    if (ob->total >= 0 && rate > 0 && done < ob->total) {
        wk_buf_appendf(&b, ", ETA ");
        duration(&b, (double)(ob->total - done) / rate);
    }
    return wk_buf_detach(&b, NULL);
}
