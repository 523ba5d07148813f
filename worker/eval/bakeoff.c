/*
 * `cascade bakeoff` after the calls (see bakeoff.h): recordings from the
 * journals (the results files carry the extracted code, the journal the
 * whole answer a replay must see), the table per model, the blind review
 * page and its unblinding.
 */
#include "bakeoff.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "lib/jsonl.h"
#include "lib/util.h"
#include "worker/eval/figures.h"
#include "worker/store/journal.h"

/* A page of answers a reviewer can still read; past it the page is refused. */
#define BLIND_ANSWERS_MAX 20000

static char *stem_of(const char *name)
{
    wk_buf b;
    wk_buf_init(&b, 4096);
    for (const char *p = name; *p && b.len < 200; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '.' || *p == '-' || *p == '_';
        wk_buf_append(&b, ok && !(p == name && *p == '.') ? p : "_", 1);
    }
    return wk_buf_detach(&b, NULL);
}

int wk_bake_init(wk_bake *b, const char *dir, const char *const *models, int nmodels, int runs,
                 char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    b->dir = dir;
    b->runs = runs;
    if (nmodels < 1 || nmodels > WK_BAKE_MODELS_MAX)
        return wk_errf(WK_EINVAL, err, errlen, "from 1 to %d models", WK_BAKE_MODELS_MAX);
    if (runs < 1 || runs > WK_BAKE_RUNS_MAX)
        return wk_errf(WK_EINVAL, err, errlen, "from 1 to %d runs", WK_BAKE_RUNS_MAX);
    for (int i = 0; i < nmodels; i++) {
        if (!models[i][0]) {
            wk_bake_release(b);
            return wk_errf(WK_EINVAL, err, errlen, "an empty model name");
        }
        b->models[i] = wk_xstrdup(models[i]);
        b->stems[i] = stem_of(models[i]);
        b->nmodels++;
        /* Two models whose file names would be the same would share files. */
        for (int j = 0; j < i; j++)
            if (strcmp(b->stems[i], b->stems[j]) == 0) {
                int rc = wk_errf(WK_EINVAL, err, errlen,
                                 "models \"%s\" and \"%s\" would share the file name %s", models[j],
                                 models[i], b->stems[i]);
                wk_bake_release(b);
                return rc;
            }
    }
    return 0;
}

void wk_bake_release(wk_bake *b)
{
    for (int i = 0; i < b->nmodels; i++) {
        free(b->models[i]);
        free(b->stems[i]);
    }
    b->nmodels = 0;
}

char *wk_bake_results_path(const wk_bake *b, int m, int r)
{
    return wk_xasprintf("%s/results/%s.run%02d.jsonl", b->dir, b->stems[m], r + 1);
}

char *wk_bake_journal_path(const wk_bake *b, int m, int r)
{
    return wk_xasprintf("%s/journal/%s.run%02d.db", b->dir, b->stems[m], r + 1);
}

/* ---- reading a run's results ------------------------------------------- */

typedef struct run_read {
    wk_figures fig;
    char **ids; /* tasks with a result, in file order */
    int nids, capids;
    double latency_ms; /* sum over answered calls */
    long answered;
} run_read;

static int read_line(void *arg, const cJSON *line, long lineno)
{
    run_read *rr = arg;
    (void)lineno;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(line, "status");
    wk_fig_status s = wk_fig_status_of(cJSON_IsString(st) ? st->valuestring : NULL);
    const cJSON *cost = cJSON_GetObjectItemCaseSensitive(line, "cost_usd");
    wk_figures_count(&rr->fig, s, s == WK_FIG_ACCEPTED ? 0 : -1,
                     cJSON_IsNumber(cost) ? cost->valuedouble : 0);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(line, "id");
    if (s == WK_FIG_INVALID || !cJSON_IsString(id))
        return 0;
    if (rr->nids == rr->capids) {
        rr->capids = rr->capids ? rr->capids * 2 : 64;
        rr->ids = wk_xrealloc(rr->ids, (size_t)rr->capids * sizeof(char *));
    }
    rr->ids[rr->nids++] = wk_xstrdup(id->valuestring);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(line, "attempts"))
    {
        const cJSON *lat = cJSON_GetObjectItemCaseSensitive(a, "latency_ms");
        const cJSON *pt = cJSON_GetObjectItemCaseSensitive(a, "prompt_tokens");
        if (cJSON_IsNumber(lat) && cJSON_IsNumber(pt)) {
            rr->latency_ms += lat->valuedouble;
            rr->answered++;
        }
    }
    return 0;
}

static void run_read_release(run_read *rr)
{
    for (int i = 0; i < rr->nids; i++)
        free(rr->ids[i]);
    free(rr->ids);
    memset(rr, 0, sizeof *rr);
}

static int read_run(const wk_bake *b, int m, int r, run_read *rr, char *err, size_t errlen)
{
    memset(rr, 0, sizeof *rr);
    char *path = wk_bake_results_path(b, m, r);
    int rc = wk_jsonl_each(path, read_line, rr, 1, err, errlen);
    free(path);
    return rc;
}

/* ---- recordings ---------------------------------------------------------- */

static void on_close_noop(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Appends the answered attempts of one run's journal to f. */
static int record_run(const wk_bake *b, int m, int r, FILE *f, long *n, char *err, size_t errlen)
{
    run_read rr;
    uv_loop_t loop;
    wk_journal *j = NULL;
    char *jpath = wk_bake_journal_path(b, m, r);
    int rc = read_run(b, m, r, &rr, err, errlen);
    if (rc) {
        free(jpath);
        return rc;
    }
    if (uv_loop_init(&loop) != 0) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot start an event loop");
        goto cleanup_rr;
    }
    rc = wk_journal_open(&loop, jpath, &j, err, errlen);
    if (rc)
        goto cleanup;
    for (int i = 0; i < rr.nids && rc == 0; i++) {
        wk_jattempt *a = NULL;
        int na = 0;
        if (wk_journal_attempts(j, rr.ids[i], &a, &na) != 0) {
            rc = wk_errf(WK_EIO, err, errlen, "%s: cannot read the attempts of %s", jpath,
                         rr.ids[i]);
            break;
        }
        for (int k = 0; k < na; k++) {
            if (a[k].state < WK_J_RECEIVED || !a[k].text)
                continue;
            cJSON *l = cJSON_CreateObject();
            cJSON_AddStringToObject(l, "task", rr.ids[i]);
            cJSON_AddStringToObject(l, "model", b->models[m]);
            cJSON_AddNumberToObject(l, "run", r + 1);
            cJSON_AddStringToObject(l, "answer", a[k].text);
            if (a[k].pt >= 0) {
                cJSON *u = cJSON_AddObjectToObject(l, "usage");
                cJSON_AddNumberToObject(u, "prompt_tokens", (double)a[k].pt);
                cJSON_AddNumberToObject(u, "completion_tokens",
                                        (double)(a[k].ct > 0 ? a[k].ct : 0));
            }
            cJSON_AddStringToObject(l, "finish_reason", a[k].finish ? a[k].finish : "stop");
            char *text = cJSON_PrintUnformatted(l);
            if (fputs(text, f) == EOF || fputc('\n', f) == EOF)
                rc = wk_errf(WK_EIO, err, errlen, "cannot write the recordings: %s",
                             strerror(errno));
            free(text);
            cJSON_Delete(l);
            (*n)++;
        }
        wk_journal_attempts_free(a, na);
    }
    if (wk_journal_close(j) != 0 && rc == 0)
        rc = wk_errf(WK_EIO, err, errlen, "%s: cannot close the journal", jpath);
    j = NULL;
cleanup:
    /* The journal's close callbacks run on the loop; the loop must drain before it closes. */
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        uv_walk(&loop, on_close_noop, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
    }
cleanup_rr:
    run_read_release(&rr);
    free(jpath);
    return rc;
}

int wk_bake_recordings(const wk_bake *b, long *n, char *err, size_t errlen)
{
    char *path = wk_xasprintf("%s/recordings.jsonl", b->dir);
    int rc = 0;
    *n = 0;
    FILE *f = fopen(path, "w");
    if (!f) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot write %s: %s", path, strerror(errno));
        goto cleanup;
    }
    for (int m = 0; m < b->nmodels && rc == 0; m++)
        for (int r = 0; r < b->runs && rc == 0; r++)
            rc = record_run(b, m, r, f, n, err, errlen);
    if (fclose(f) != 0 && rc == 0)
        rc = wk_errf(WK_EIO, err, errlen, "cannot write %s: %s", path, strerror(errno));
cleanup:
    free(path);
    return rc;
}

/* ---- the table ------------------------------------------------------------ */

static double round_to(double v, double unit)
{
    return round(v / unit) * unit;
}

int wk_bake_table(const wk_bake *b, const cJSON *scores, cJSON **out, char *err, size_t errlen)
{
    int rc = 0;
    cJSON *t = cJSON_CreateArray();
    for (int m = 0; m < b->nmodels; m++) {
        double rate[WK_BAKE_RUNS_MAX], cost[WK_BAKE_RUNS_MAX];
        double cost_all = 0, lat = 0;
        long solved = 0, answered = 0, tasks = 0;
        for (int r = 0; r < b->runs; r++) {
            run_read rr;
            rc = read_run(b, m, r, &rr, err, errlen);
            if (rc) {
                run_read_release(&rr);
                goto cleanup;
            }
            rate[r] = wk_figures_pass_rate(&rr.fig);
            cost[r] = rr.fig.cost_usd;
            cost_all += rr.fig.cost_usd;
            solved += rr.fig.accepted;
            lat += rr.latency_ms;
            answered += rr.answered;
            if (r == 0)
                tasks = wk_figures_valid(&rr.fig);
            run_read_release(&rr);
        }
        double rm, rsd, cm, csd;
        wk_fig_mean_sd(rate, b->runs, &rm, &rsd);
        wk_fig_mean_sd(cost, b->runs, &cm, &csd);
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "model", b->models[m]);
        cJSON_AddNumberToObject(row, "runs", b->runs);
        cJSON_AddNumberToObject(row, "tasks", (double)tasks);
        cJSON_AddNumberToObject(row, "pass_rate", round_to(rm, 1e-6));
        cJSON_AddNumberToObject(row, "pass_rate_sd", round_to(rsd, 1e-6));
        cJSON_AddNumberToObject(row, "cost_usd", round_to(cm, 1e-9));
        cJSON_AddNumberToObject(row, "cost_sd", round_to(csd, 1e-9));
        cJSON_AddNumberToObject(row, "solved", (double)solved);
        /* Unsolved: no price per solved task, rather than a division by zero. */
        if (solved > 0)
            cJSON_AddNumberToObject(row, "cost_per_solved_usd", round_to(cost_all / solved, 1e-9));
        else
            cJSON_AddNullToObject(row, "cost_per_solved_usd");
        if (answered > 0)
            cJSON_AddNumberToObject(row, "latency_ms_mean", round_to(lat / answered, 0.1));
        else
            cJSON_AddNullToObject(row, "latency_ms_mean");
        const cJSON *sc = cJSON_GetObjectItemCaseSensitive(scores, b->models[m]);
        if (sc) {
            cJSON_AddItemToObject(
                row, "score_mean",
                cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(sc, "score_mean"), 1));
            cJSON_AddItemToObject(
                row, "scored", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(sc, "scored"), 1));
        }
        cJSON_AddItemToArray(t, row);
    }
    *out = t;
    t = NULL;
cleanup:
    cJSON_Delete(t);
    return rc;
}

static double num_or(const cJSON *o, const char *k, double dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

void wk_bake_table_print(const cJSON *table, FILE *f)
{
    int any_score = 0;
    const cJSON *row;
    cJSON_ArrayForEach(row, table) any_score |= cJSON_HasObjectItem(row, "score_mean");
    fprintf(f, "  %-28s %5s  %-15s  %-21s  %-14s  %s\n", "model", "tasks", "pass rate",
            "cost per run (USD)", "per solved",
            any_score ? "latency      review score" : "latency");
    cJSON_ArrayForEach(row, table)
    {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(row, "model");
        char *name = wk_escape_ctl(cJSON_IsString(m) ? m->valuestring : "?",
                                   cJSON_IsString(m) ? strlen(m->valuestring) : 1, 28);
        char per[32], lat[32];
        double cps = num_or(row, "cost_per_solved_usd", -1), l = num_or(row, "latency_ms_mean", -1);
        if (cps < 0)
            snprintf(per, sizeof per, "none solved");
        else
            snprintf(per, sizeof per, "$%.6f", cps);
        if (l < 0)
            snprintf(lat, sizeof lat, "-");
        else
            snprintf(lat, sizeof lat, "%.0f ms", l);
        fprintf(f,
                any_score ? "  %-28s %5.0f  %.3f ± %.3f  $%.6f ± %.6f  %-14s  %-11s"
                          : "  %-28s %5.0f  %.3f ± %.3f  $%.6f ± %.6f  %-14s  %s",
                name, num_or(row, "tasks", 0), num_or(row, "pass_rate", 0),
                num_or(row, "pass_rate_sd", 0), num_or(row, "cost_usd", 0),
                num_or(row, "cost_sd", 0), per, lat);
        if (cJSON_HasObjectItem(row, "score_mean"))
            fprintf(f, "  %.2f (%.0f answers)", num_or(row, "score_mean", 0),
                    num_or(row, "scored", 0));
        fprintf(f, "\n");
        free(name);
    }
}

/* ---- the blind review page -------------------------------------------------- */

typedef struct answer {
    char *task, *model, *text;
} answer;

typedef struct blind_ctx {
    answer *v;
    long n, cap;
    char **task_ids, **prompts; /* tasks in file order */
    long ntasks, captasks;
} blind_ctx;

static int take_answer(void *arg, const cJSON *line, long lineno)
{
    blind_ctx *B = arg;
    (void)lineno;
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(line, "run");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(line, "task");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(line, "model");
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(line, "answer");
    if (!cJSON_IsNumber(run) || run->valuedouble != 1 || !cJSON_IsString(t) || !cJSON_IsString(m) ||
        !cJSON_IsString(a))
        return 0;
    if (B->n == BLIND_ANSWERS_MAX)
        return WK_ETOOBIG;
    if (B->n == B->cap) {
        B->cap = B->cap ? B->cap * 2 : 64;
        B->v = wk_xrealloc(B->v, (size_t)B->cap * sizeof *B->v);
    }
    B->v[B->n].task = wk_xstrdup(t->valuestring);
    B->v[B->n].model = wk_xstrdup(m->valuestring);
    B->v[B->n].text = wk_xstrdup(a->valuestring);
    B->n++;
    return 0;
}

static int take_task(void *arg, const cJSON *task, long lineno)
{
    blind_ctx *B = arg;
    (void)lineno;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(task, "id");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(task, "prompt");
    if (!cJSON_IsString(id))
        return 0;
    if (B->ntasks == B->captasks) {
        B->captasks = B->captasks ? B->captasks * 2 : 64;
        B->task_ids = wk_xrealloc(B->task_ids, (size_t)B->captasks * sizeof(char *));
        B->prompts = wk_xrealloc(B->prompts, (size_t)B->captasks * sizeof(char *));
    }
    B->task_ids[B->ntasks] = wk_xstrdup(id->valuestring);
    B->prompts[B->ntasks] = wk_xstrdup(cJSON_IsString(p) ? p->valuestring : "");
    B->ntasks++;
    return 0;
}

static void blind_release(blind_ctx *B)
{
    for (long i = 0; i < B->n; i++) {
        free(B->v[i].task);
        free(B->v[i].model);
        free(B->v[i].text);
    }
    for (long i = 0; i < B->ntasks; i++) {
        free(B->task_ids[i]);
        free(B->prompts[i]);
    }
    free(B->v);
    free(B->task_ids);
    free(B->prompts);
}

/* splitmix64: a seeded, portable shuffle (rand() differs between libcs). */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
    "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n"
    "<title>cascade bake-off: blind review</title>\n<style>\n"
    "body{font-family:sans-serif;max-width:60em;margin:1em auto;padding:0 1em}\n"
    "pre{white-space:pre-wrap;background:#f4f4f4;padding:.5em;border:1px solid #ddd}\n"
    ".answer{border-left:4px solid #89a;padding-left:.8em;margin:1em 0}\n"
    "fieldset{border:none;padding:0}\n"
    "</style></head><body>\n<h1>Blind review</h1>\n"
    "<p>Each task's answers are shown in a shuffled order, without the models' names. "
    "Score each from 1 (useless) to 5 (excellent), then press Export and save the "
    "scores; <code>cascade bakeoff --scores FILE -o DIR</code> puts them in the table.</p>\n";

static const char page_tail[] =
    "<p><button type=\"button\" id=\"export-btn\">Export</button> <span id=\"count\"></span> "
    "<a id=\"download\" hidden>download scores.json</a></p>\n"
    "<textarea id=\"export\" rows=\"8\" cols=\"60\" readonly></textarea>\n"
    "<script>\n"
    "(function () {\n"
    "  function exportScores() {\n"
    "    var s = {};\n"
    "    var checked = document.querySelectorAll('input[type=radio]:checked');\n"
    "    for (var i = 0; i < checked.length; i++)\n"
    "      s[checked[i].name] = parseInt(checked[i].value, 10);\n"
    "    var j = JSON.stringify({scores: s});\n"
    "    var t = document.getElementById('export');\n"
    "    t.value = j;\n"
    "    t.textContent = j;\n"
    "    var a = document.getElementById('download');\n"
    "    a.href = 'data:application/json;charset=utf-8,' + encodeURIComponent(j);\n"
    "    a.download = 'scores.json';\n"
    "    a.hidden = false;\n"
    "    var total = document.querySelectorAll('.answer').length;\n"
    "    document.getElementById('count').textContent =\n"
    "      Object.keys(s).length + ' of ' + total + ' answers scored';\n"
    "  }\n"
    "  document.getElementById('export-btn').addEventListener('click', exportScores);\n"
    "})();\n"
    "</script>\n</body></html>\n";

int wk_bake_blind(const wk_bake *b, const char *tasks_path, const char *html_path,
                  const char *key_path, unsigned long long seed, long *n, char *err, size_t errlen)
{
    blind_ctx B = {0};
    wk_buf page;
    cJSON *key = cJSON_CreateObject(), *owners = cJSON_AddObjectToObject(key, "answers");
    char *recs = wk_xasprintf("%s/recordings.jsonl", b->dir);
    char *text = NULL;
    FILE *f = NULL;
    int rc;
    wk_buf_init(&page, (size_t)1 << 30);
    *n = 0;
    rc = wk_jsonl_each(tasks_path, take_task, &B, 1, err, errlen);
    if (rc == 0)
        rc = wk_jsonl_each(recs, take_answer, &B, 0, err, errlen);
    if (rc == WK_ETOOBIG)
        rc = wk_errf(rc, err, errlen, "more than %d answers for one page", BLIND_ANSWERS_MAX);
    if (rc)
        goto cleanup;
    wk_buf_appendf(&page, "%s", page_head);
    uint64_t state = seed;
    long next_id = 1;
    answer **mine = wk_xcalloc((size_t)(B.n ? B.n : 1), sizeof(answer *));
    for (long t = 0; t < B.ntasks; t++) {
        int k = 0;
        for (long i = 0; i < B.n; i++)
            if (strcmp(B.v[i].task, B.task_ids[t]) == 0)
                mine[k++] = &B.v[i];
        if (k == 0)
            continue;
        for (int i = k - 1; i > 0; i--) { /* Fisher-Yates */
            int j = (int)(mix(&state) % (uint64_t)(i + 1));
            answer *tmp = mine[i];
            mine[i] = mine[j];
            mine[j] = tmp;
        }
        wk_buf_appendf(&page, "<section class=\"task\" data-task=\"");
        wk_buf_append_html(&page, B.task_ids[t]);
        wk_buf_appendf(&page, "\">\n<h2>Task ");
        wk_buf_append_html(&page, B.task_ids[t]);
        /* The newline after <pre> is the one the HTML parser drops, so the text keeps its own. */
        wk_buf_appendf(&page, "</h2>\n<pre class=\"prompt\">\n");
        wk_buf_append_html(&page, B.prompts[t]);
        wk_buf_appendf(&page, "</pre>\n");
        for (int i = 0; i < k; i++) {
            char id[32];
            snprintf(id, sizeof id, "a%ld", next_id++);
            cJSON *o = cJSON_AddObjectToObject(owners, id);
            cJSON_AddStringToObject(o, "task", mine[i]->task);
            cJSON_AddStringToObject(o, "model", mine[i]->model);
            wk_buf_appendf(&page,
                           "<div class=\"answer\" data-id=\"%s\"><h3>Answer %d</h3>\n"
                           "<pre class=\"text\">\n",
                           id, i + 1);
            wk_buf_append_html(&page, mine[i]->text);
            wk_buf_appendf(&page, "</pre>\n<fieldset><legend>Score</legend>");
            for (int s = 1; s <= 5; s++)
                wk_buf_appendf(&page,
                               "<label><input type=\"radio\" name=\"%s\" value=\"%d\"> %d</label> ",
                               id, s, s);
            wk_buf_appendf(&page, "</fieldset></div>\n");
            (*n)++;
        }
        wk_buf_appendf(&page, "</section>\n");
    }
    free(mine);
    if (wk_buf_appendf(&page, "%s", page_tail) != 0) {
        rc = wk_errf(WK_ETOOBIG, err, errlen, "the review page is over 1 GiB");
        goto cleanup;
    }
    f = fopen(html_path, "w");
    if (!f || fwrite(page.buf, 1, page.len, f) != page.len || fflush(f) == EOF) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot write %s: %s", html_path, strerror(errno));
        goto cleanup;
    }
    fclose(f);
    f = NULL;
    text = cJSON_Print(key);
    f = fopen(key_path, "w");
    if (!f || fputs(text, f) == EOF || fputc('\n', f) == EOF || fflush(f) == EOF)
        rc = wk_errf(WK_EIO, err, errlen, "cannot write %s: %s", key_path, strerror(errno));
cleanup:
    if (f)
        fclose(f);
    free(text);
    free(recs);
    cJSON_Delete(key);
    wk_buf_release(&page);
    blind_release(&B);
    return rc;
}

static int load_json_file(const char *path, cJSON **out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = wk_read_file(path, 64u << 20, &text, &len);
    if (rc)
        return wk_errf(rc, err, errlen, "cannot read %s (%s)", path, wk_strerror(rc));
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return wk_errf(WK_EPARSE, err, errlen, "%s is not a JSON object", path);
    }
    return 0;
}

int wk_bake_unblind(const char *key_path, const char *scores_path, cJSON **out, char *err,
                    size_t errlen)
{
    cJSON *key = NULL, *sc = NULL, *res = cJSON_CreateObject();
    int rc = load_json_file(key_path, &key, err, errlen);
    if (rc == 0)
        rc = load_json_file(scores_path, &sc, err, errlen);
    if (rc)
        goto cleanup;
    const cJSON *owners = cJSON_GetObjectItemCaseSensitive(key, "answers");
    const cJSON *scores = cJSON_GetObjectItemCaseSensitive(sc, "scores");
    if (!cJSON_IsObject(scores)) {
        rc = wk_errf(WK_EPARSE, err, errlen,
                     "%s has no \"scores\" object (the review page's "
                     "export)",
                     scores_path);
        goto cleanup;
    }
    const cJSON *s;
    cJSON_ArrayForEach(s, scores)
    {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(owners, s->string);
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "model");
        if (!cJSON_IsString(m)) {
            char *id = wk_escape_ctl(s->string, strlen(s->string), 40);
            rc = wk_errf(WK_EINVAL, err, errlen,
                         "%s: answer \"%s\" is not in %s (scores of "
                         "another review?)",
                         scores_path, id, key_path);
            free(id);
            goto cleanup;
        }
        if (!cJSON_IsNumber(s) || s->valuedouble < 1 || s->valuedouble > 5 ||
            s->valuedouble != (int)s->valuedouble) {
            rc = wk_errf(WK_EINVAL, err, errlen, "%s: the score of %s must be 1 to 5", scores_path,
                         s->string);
            goto cleanup;
        }
        cJSON *row = cJSON_GetObjectItemCaseSensitive(res, m->valuestring);
        if (!row) {
            row = cJSON_AddObjectToObject(res, m->valuestring);
            cJSON_AddNumberToObject(row, "sum", 0);
            cJSON_AddNumberToObject(row, "scored", 0);
        }
        cJSON *sum = cJSON_GetObjectItemCaseSensitive(row, "sum");
        cJSON *cnt = cJSON_GetObjectItemCaseSensitive(row, "scored");
        cJSON_SetNumberValue(sum, sum->valuedouble + s->valuedouble);
        cJSON_SetNumberValue(cnt, cnt->valuedouble + 1);
    }
    cJSON *row;
    cJSON_ArrayForEach(row, res)
    {
        double sum = cJSON_GetObjectItemCaseSensitive(row, "sum")->valuedouble;
        double cnt = cJSON_GetObjectItemCaseSensitive(row, "scored")->valuedouble;
        cJSON_DeleteItemFromObjectCaseSensitive(row, "sum");
        cJSON_AddNumberToObject(row, "score_mean", round_to(sum / cnt, 1e-4));
    }
    *out = res;
    res = NULL;
cleanup:
    cJSON_Delete(key);
    cJSON_Delete(sc);
    cJSON_Delete(res);
    return rc;
}
