/*
 * Task intake (see task.h): a task line parsed and checked before anything
 * is paid for (its id, prompt, kind, cascade, schema and what the cascade's
 * validators need from it), and the first conversation sent to tier 0. A
 * line that is not a usable task gets its invalid_task result line here.
 */
#include "task_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "policy.h"
#include "validators/testlog.h"
#include "validators/val.h"

const char *wk_task_id(const wk_task *t)
{
    return t->id;
}
const cJSON *wk_task_json(const wk_task *t)
{
    return t->json;
}
const wk_cascade *wk_task_cascade(const wk_task *t)
{
    return t->cascade;
}
const cJSON *wk_task_schema(const wk_task *t)
{
    return t->schema;
}
int wk_task_done(const wk_task *t)
{
    return t->state == WK__ST_DONE;
}
int wk_task_is_patch(const wk_task *t)
{
    return t->is_patch;
}
const struct val_baseline *wk_task_baseline(const wk_task *t)
{
    return t->baseline;
}

/* ---- task intake ----------------------------------------------------------- */

cJSON *wk_invalid_result(const char *id, long lineno, const char *reason)
{
    cJSON *r = cJSON_CreateObject();
    if (id)
        wk_json_add_str(r, "id", id);
    else
        cJSON_AddNullToObject(r, "id");
    wk_json_add_num(r, "line", (double)lineno);
    wk_json_add_str(r, "status", "invalid_task");
    cJSON_AddNullToObject(r, "cascade");
    cJSON_AddNullToObject(r, "tier");
    cJSON_AddNullToObject(r, "model");
    wk_json_add_num(r, "cost_usd", 0);
    cJSON_AddItemToObject(r, "attempts", cJSON_CreateArray());
    wk_json_add_str(r, "reason", reason);
    return r;
}

/*
 * Checks what the cascade's validators will need from the task (each
 * validator says, through its table entry) and the task's files.
 */
static int check_needs(const wk_cascade *c, const cJSON *task, const cJSON *schema, char *why,
                       size_t whylen)
{
    char *who = wk_xconcat("cascade ", c->name, (char *)NULL);
    int rc = val_check_task((const char *const *)c->validators, c->nvalidators, task, schema, who,
                            why, whylen);
    free(who);
    if (rc < 0)
        return rc;
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(task, "files");
    if (files && !cJSON_IsObject(files)) {
        snprintf(why, whylen, "files must be an object of path -> content");
        return WK_EINVAL;
    }
    return 0;
}

/*
 * A classify cascade (one that runs the label validator) needs labels in the
 * task's schema; a gold label, when the task has one, must be one of them.
 * The gold label is copied to `gold` in the enum's spelling ("" when none).
 */
static int check_labels(const wk_config *cfg, const wk_cascade *c, const cJSON *task,
                        const cJSON *schema, char gold[VAL_LABEL_MAX], char *why, size_t whylen)
{
    int reads = 0;
    for (int i = 0; i < c->nvalidators; i++)
        reads |= strcmp(c->validators[i], "label") == 0;
    if (!reads)
        return 0;
    const cJSON *labels;
    const char *path;
    char sub[256];
    int rc = val_label_set(schema, c->label_field, &labels, &path, sub, sizeof sub);
    if (rc < 0) {
        snprintf(why, whylen, "cascade %s labels answers but the task %s", c->name, sub);
        return rc;
    }
    const char *field = cfg->gold_field ? cfg->gold_field : "gold";
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(task, field);
    if (!g || cJSON_IsNull(g))
        return 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, labels)
    {
        if (cJSON_IsString(g) && strcmp(it->valuestring, g->valuestring) == 0) {
            snprintf(gold, VAL_LABEL_MAX, "%s", it->valuestring);
            return 0;
        }
    }
    char *gs = cJSON_PrintUnformatted(g);
    snprintf(why, whylen, "gold label %.80s (field %s) is not one of the schema's labels", gs,
             field);
    free(gs);
    return WK_EINVAL;
}

/*
 * The shape of a patch task (README "Patch tasks"), checked before anything
 * is paid for; the repository itself is opened later by the driver
 * (intake's check_repo fact), since this file does no I/O. Names the field.
 */
static int check_patch_shape(const cJSON *task, char *why, size_t whylen)
{
    const cJSON *repo = cJSON_GetObjectItemCaseSensitive(task, "repo");
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(repo, "path");
    const cJSON *base = cJSON_GetObjectItemCaseSensitive(repo, "base");
    if (!cJSON_IsObject(repo))
        return wk_errf(WK_EINVAL, why, whylen,
                       "repo must be an object {\"path\": ..., \"base\": ...}");
    if (!cJSON_IsString(path) || !path->valuestring[0])
        return wk_errf(WK_EINVAL, why, whylen, "repo.path must be a non-empty string");
    if (base && (!cJSON_IsString(base) || !base->valuestring[0]))
        return wk_errf(WK_EINVAL, why, whylen, "repo.base must be a non-empty string (a revision)");
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(task, "tests");
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(tests, "command");
    int ok = cJSON_IsArray(cmd) && cJSON_GetArraySize(cmd) > 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, cmd) ok = ok && cJSON_IsString(a) && a->valuestring[0];
    if (!ok)
        return wk_errf(WK_EINVAL, why, whylen,
                       "tests.command must be a non-empty array of non-empty strings");
    const cJSON *tfiles = cJSON_GetObjectItemCaseSensitive(tests, "files");
    if (tfiles && !cJSON_IsObject(tfiles))
        return wk_errf(WK_EINVAL, why, whylen, "tests.files must be an object of path -> content");
    const cJSON *ctx = cJSON_GetObjectItemCaseSensitive(task, "context_files");
    if (ctx) {
        ok = cJSON_IsArray(ctx);
        cJSON_ArrayForEach(a, ctx) ok = ok && cJSON_IsString(a) && a->valuestring[0];
        if (!ok)
            return wk_errf(WK_EINVAL, why, whylen,
                           "context_files must be an array of path strings");
    }
    return 0;
}

void wk_task_resolve_repo(wk_task *t, const char *dir)
{
    cJSON *repo = cJSON_GetObjectItemCaseSensitive(t->json, "repo");
    const char *path = wk_jstr(repo, "path");
    if (!path || path[0] == '/' || !dir || !dir[0])
        return;
    char *abs = wk_xasprintf("%s/%s", dir, path);
    cJSON_ReplaceItemInObjectCaseSensitive(repo, "path", cJSON_CreateString(abs));
    free(abs);
}

static cJSON *first_messages(const cJSON *task, const char *kind, const char *language)
{
    cJSON *msgs = cJSON_CreateArray();
    char *sys;
    if (strcmp(kind, "code") == 0) {
        const char *file = wk_jstr(task, "answer_file");
        char *dflt = NULL;
        if (!file)
            file = dflt = wk_xconcat("solution.", val_lang_ext(language), (char *)NULL);
        sys = wk_xconcat("You are an expert ", language ? language : "",
                         " programmer. Reply with the complete contents of ", file,
                         " in one fenced code block.", (char *)NULL);
        free(dflt);
    } else if (strcmp(kind, "classify") == 0 || strcmp(kind, "json") == 0) {
        sys = wk_xstrdup("Reply with one JSON object only, in a ```json fenced block, that "
                         "matches the schema given.");
    } else if (strcmp(kind, "patch") == 0) {
        /* The user turn is rebuilt from the repository once the baseline ran (patch_prompt.c). */
        sys = wk_xstrdup(WK_PATCH_SYSTEM_PROMPT);
    } else {
        sys = wk_xstrdup("Reply with the answer only.");
    }
    cJSON *m = cJSON_CreateObject();
    wk_json_add_str(m, "role", "system");
    wk_json_add_str(m, "content", sys);
    cJSON_AddItemToArray(msgs, m);
    free(sys);

    /* The user turn: the prompt, then the context files and the schema. */
    wk_buf b;
    wk_buf_init(&b, SIZE_MAX / 2);
    const char *prompt = wk_jstr(task, "prompt");
    wk_buf_appendf(&b, "%s", prompt ? prompt : "");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(task, "files");
    const cJSON *f;
    cJSON_ArrayForEach(f, files)
    {
        if (cJSON_IsString(f))
            wk_buf_appendf(&b, "\n\nFile %s:\n```\n%s\n```", f->string, f->valuestring);
    }
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(task, "schema");
    if (schema) {
        char *s = cJSON_PrintUnformatted(schema);
        wk_buf_appendf(&b, "\n\nJSON Schema of the answer:\n%s", s);
        free(s);
    }
    m = cJSON_CreateObject();
    wk_json_add_str(m, "role", "user");
    wk_json_add_str(m, "content", b.buf);
    cJSON_AddItemToArray(msgs, m);
    wk_buf_release(&b);
    return msgs;
}

/* The most calls a task of cascade c has in flight at once: its widest agree round, else one. */
static int widest_round(const wk_cascade *c)
{
    int n = 1;
    for (int i = 0; i < c->ntiers; i++)
        if (c->tiers[i].nagree > n)
            n = c->tiers[i].nagree;
    return n > WK_AGREE_MAX ? WK_AGREE_MAX : n; /* the config holds it to that already */
}

int wk_task_parse(const char *line, size_t len, long lineno, const wk_config *cfg,
                  const char *cascade_name, wk_task **out, cJSON **invalid)
{
    char why[512];
    char *id = NULL;
    wk_task *t = NULL;
    int rc = WK_EINVAL;
    cJSON *j = cJSON_ParseWithLength(line, len);
    if (!j) {
        snprintf(why, sizeof why, "line %ld is not valid JSON", lineno);
        goto cleanup;
    }
    if (!cJSON_IsObject(j)) {
        snprintf(why, sizeof why, "line %ld is not a JSON object", lineno);
        goto cleanup;
    }
    const cJSON *jid = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (cJSON_IsString(jid) && jid->valuestring[0])
        id = wk_xstrdup(jid->valuestring);
    else if (cJSON_IsNumber(jid))
        id = wk_xasprintf("%.17g", jid->valuedouble);
    if (!id) {
        snprintf(why, sizeof why, "task has no \"id\" (a non-empty string)");
        goto cleanup;
    }
    const cJSON *jkind = cJSON_GetObjectItemCaseSensitive(j, "kind");
    const char *kind = wk_jstr(j, "kind");
    if (jkind && !kind) {
        snprintf(why, sizeof why, "\"kind\" must be a string");
        goto cleanup;
    }
    if (!kind)
        kind = "code";
    if (strcmp(kind, "code") && strcmp(kind, "classify") && strcmp(kind, "json") &&
        strcmp(kind, "patch")) {
        snprintf(why, sizeof why, "unknown kind \"%.40s\" (code, patch, classify or json)", kind);
        goto cleanup;
    }
    const char *prompt = wk_jstr(j, "prompt");
    int is_patch = strcmp(kind, "patch") == 0;
    /* A patch task's instruction is optional: "make the failing tests pass". */
    if (is_patch ? cJSON_GetObjectItemCaseSensitive(j, "prompt") && !prompt : !prompt || !*prompt) {
        snprintf(why, sizeof why, "task has no \"prompt\" (a non-empty string)");
        goto cleanup;
    }
    if (is_patch && check_patch_shape(j, why, sizeof why))
        goto cleanup;
    const char *language = wk_jstr(j, "language");
    const char *want = cascade_name ? cascade_name : wk_jstr(j, "cascade");
    const wk_cascade *c =
        want ? wk_config_cascade(cfg, want) : wk_config_match(cfg, kind, language);
    if (!c) {
        if (want)
            snprintf(why, sizeof why, "unknown cascade \"%.80s\"", want);
        else
            snprintf(why, sizeof why, "no cascade matches kind %.40s, language %.40s", kind,
                     language ? language : "(none)");
        goto cleanup;
    }
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(j, "schema");
    if (schema) {
        char sub[256];
        if (val_schema_supported(schema, sub, sizeof sub)) {
            snprintf(why, sizeof why, "schema: %s", sub);
            goto cleanup;
        }
    } else {
        schema = c->schema;
    }
    if (check_needs(c, j, schema, why, sizeof why))
        goto cleanup;
    char gold[VAL_LABEL_MAX] = "";
    if (check_labels(cfg, c, j, schema, gold, why, sizeof why))
        goto cleanup;
    /* The other validators of a patch task run on the tree the patch validator leaves. */
    if (is_patch && (c->nvalidators == 0 || strcmp(c->validators[0], "patch") != 0)) {
        snprintf(why, sizeof why,
                 "cascade %.80s runs a patch task but does not list \"patch\" as its first "
                 "validator",
                 c->name);
        goto cleanup;
    }
    const cJSON *jb = cJSON_GetObjectItemCaseSensitive(j, "budget_usd");
    if (jb && (!cJSON_IsNumber(jb) || jb->valuedouble < 0)) {
        snprintf(why, sizeof why, "budget_usd must be a number >= 0");
        goto cleanup;
    }
    /* Which deployments the task may reach is the data policy's (policy.h), asked per call. */
    const cJSON *jdc = cJSON_GetObjectItemCaseSensitive(j, "data_class");
    if (jdc && (!cJSON_IsString(jdc) || !jdc->valuestring[0] ||
                strlen(jdc->valuestring) > WK_POLICY_NAME_MAX)) {
        snprintf(why, sizeof why, "data_class must be a string of 1 to %d characters",
                 WK_POLICY_NAME_MAX);
        goto cleanup;
    }

    int ncalls = widest_round(c);
    t = wk_xcalloc(1, sizeof *t + (size_t)ncalls * sizeof t->call[0]);
    t->ncalls = ncalls;
    t->id = id;
    id = NULL;
    t->json = j;
    j = NULL;
    t->cascade = c;
    t->schema = schema;
    t->budget_usd = jb ? jb->valuedouble : -1;     /* 0 is a budget of nothing */
    t->data_class = jdc ? jdc->valuestring : NULL; /* lives in t->json */
    t->gold = gold[0] ? wk_xstrdup(gold) : NULL;
    t->messages = first_messages(t->json, kind, language);
    t->attempts = cJSON_CreateArray();
    t->best_rank = -1;
    t->is_patch = is_patch;
    *out = t;
    t = NULL;
    rc = 0;
cleanup:
    if (rc)
        *invalid = wk_invalid_result(id, lineno, why);
    free(id);
    cJSON_Delete(j);
    wk_task_free(t);
    return rc;
}

void wk_task_free(wk_task *t)
{
    if (!t)
        return;
    free(t->id);
    cJSON_Delete(t->json);
    cJSON_Delete(t->messages);
    cJSON_Delete(t->attempts);
    free(t->answer);
    free(t->best);
    free(t->gold);
    cJSON_Delete(t->votes);
    cJSON_Delete(t->pending);
    for (int i = 0; i < t->ncalls; i++)
        wk__held_clear(&t->call[i].held);
    free(t->logprobs_text);
    free(t->logprobs);
    if (t->baseline)
        val_baseline_release(t->baseline);
    free(t->baseline);
    free(t->tests_note);
    cJSON_Delete(t->start_note);
    free(t);
}

void wk_task_features_of(const cJSON *task, wk_task_features *out)
{
    const char *prompt = wk_jstr(task, "prompt");
    out->kind = wk_jstr(task, "kind") ? wk_jstr(task, "kind") : "code";
    out->language = wk_jstr(task, "language");
    out->prompt_tokens = (long)(strlen(prompt ? prompt : "") / 4);
    /* What the tests validator would run: an empty command is no tests. */
    const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(task, "tests"), "command");
    int has = cJSON_IsArray(cmd) && cJSON_GetArraySize(cmd) > 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, cmd) has = has && cJSON_IsString(a);
    out->has_tests = has;
}

int wk_skip_rule_holds(const wk_skip_rule *k, const wk_task_features *f)
{
    long tokens = f->prompt_tokens;
    if (k->prompt_tokens_over >= 0 && !(tokens >= 0 && tokens > k->prompt_tokens_over))
        return 0;
    if (k->prompt_tokens_upto >= 0 && !(tokens >= 0 && tokens <= k->prompt_tokens_upto))
        return 0;
    if (k->kind && (!f->kind || strcmp(k->kind, f->kind) != 0))
        return 0;
    if (k->language && (!f->language || strcmp(k->language, f->language) != 0))
        return 0;
    if (k->has_tests >= 0 && k->has_tests != f->has_tests)
        return 0;
    return 1;
}
