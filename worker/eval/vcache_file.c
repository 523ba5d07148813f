/*
 * The verdict cache on disk (see vcache.h). A line:
 *
 *   {"task": ID, "task_hash": "16 hex digits", "answer": TEXT,
 *    "verdict": {"pass", "validator", "reason", "message", "evidence",
 *                "note", "tests": [passed, flaky, preexisting], "label", "score"}}
 *
 * The task hash is FNV-1a of the task's line as cJSON prints it unformatted,
 * so reformatting the tasks file keeps the cache and editing a task drops it.
 */
#include "vcache.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/jsonl.h"
#include "lib/util.h"

/* Task ids with the hashes of their lines, sorted by id for bsearch. */
typedef struct task_hash {
    char *id;
    uint64_t h;
} task_hash;

typedef struct hashes {
    task_hash *v;
    size_t n, cap;
} hashes;

static int add_task(void *arg, const cJSON *task, long lineno)
{
    hashes *hs = arg;
    (void)lineno;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(task, "id");
    if (!cJSON_IsString(id))
        return 0; /* run answers it with invalid_task: no verdict to keep */
    char *text = cJSON_PrintUnformatted(task);
    if (hs->n == hs->cap) {
        hs->cap = hs->cap ? hs->cap * 2 : 256;
        hs->v = wk_xrealloc(hs->v, hs->cap * sizeof *hs->v);
    }
    hs->v[hs->n].id = wk_xstrdup(id->valuestring);
    hs->v[hs->n].h = wk_hash(WK_HASH_SEED, text ? text : "");
    hs->n++;
    free(text);
    return 0;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(((const task_hash *)a)->id, ((const task_hash *)b)->id);
}

static void hashes_release(hashes *hs)
{
    for (size_t i = 0; i < hs->n; i++)
        free(hs->v[i].id);
    free(hs->v);
}

static int hashes_load(hashes *hs, const char *tasks_path, char *err, size_t errlen)
{
    memset(hs, 0, sizeof *hs);
    int rc = wk_jsonl_each(tasks_path, add_task, hs, 1, err, errlen);
    if (rc == 0 && hs->n)
        qsort(hs->v, hs->n, sizeof *hs->v, by_id);
    return rc;
}

/* The hash of the task's line; 0 (no task hashes so) when the id is not in the tasks. */
static int task_hash_of(const hashes *hs, const char *id, uint64_t *h)
{
    task_hash key = {(char *)id, 0};
    const task_hash *t = hs->n ? bsearch(&key, hs->v, hs->n, sizeof *hs->v, by_id) : NULL;
    if (!t)
        return -1;
    *h = t->h;
    return 0;
}

typedef struct load_ctx {
    wk_vcache *c;
    const hashes *hs;
    long loaded, stale;
} load_ctx;

static const char *str_or_null(const cJSON *o, const char *k)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static int load_line(void *arg, const cJSON *line, long lineno)
{
    load_ctx *L = arg;
    (void)lineno;
    const char *task = str_or_null(line, "task"), *answer = str_or_null(line, "answer");
    const char *hex = str_or_null(line, "task_hash");
    const cJSON *vj = cJSON_GetObjectItemCaseSensitive(line, "verdict");
    uint64_t want;
    if (!task || !answer || !hex || !cJSON_IsObject(vj) || task_hash_of(L->hs, task, &want) != 0 ||
        strtoull(hex, NULL, 16) != want) {
        L->stale++;
        return 0;
    }
    val_verdict v;
    memset(&v, 0, sizeof v);
    v.score = -1;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(vj, "pass")))
        val_verdict_pass(&v);
    else
        val_verdict_fail(&v, str_or_null(vj, "validator"), str_or_null(vj, "reason"),
                         str_or_null(vj, "message"), str_or_null(vj, "evidence"));
    if (v.pass && str_or_null(vj, "evidence"))
        v.evidence = wk_xstrdup(str_or_null(vj, "evidence"));
    val_verdict_note(&v, str_or_null(vj, "note"));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(vj, "tests");
    if (cJSON_GetArraySize(t) == 3) {
        v.tests.passed = cJSON_GetArrayItem(t, 0)->valueint;
        v.tests.flaky = cJSON_GetArrayItem(t, 1)->valueint;
        v.tests.preexisting = cJSON_GetArrayItem(t, 2)->valueint;
    }
    const char *label = str_or_null(vj, "label");
    if (label)
        snprintf(v.label, sizeof v.label, "%s", label);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(vj, "score");
    v.score = cJSON_IsNumber(sc) ? sc->valuedouble : -1;
    wk_vcache_put(L->c, task, answer, &v);
    val_verdict_clear(&v);
    L->loaded++;
    return 0;
}

int wk_vcache_load(wk_vcache *c, const char *path, const char *tasks_path, long *loaded,
                   long *stale, char *err, size_t errlen)
{
    hashes hs;
    load_ctx L = {c, &hs, 0, 0};
    *loaded = *stale = 0;
    FILE *probe = fopen(path, "r");
    if (!probe)
        return errno == ENOENT
                   ? 0
                   : wk_errf(WK_EIO, err, errlen, "cannot read %s: %s", path, strerror(errno));
    fclose(probe);
    int rc = hashes_load(&hs, tasks_path, err, errlen);
    if (rc == 0)
        rc = wk_jsonl_each(path, load_line, &L, 0, err, errlen);
    hashes_release(&hs);
    *loaded = L.loaded;
    *stale = L.stale;
    return rc;
}

typedef struct save_ctx {
    FILE *f;
    const hashes *hs;
    long saved;
} save_ctx;

static int save_one(void *arg, const char *task_id, const char *answer, const val_verdict *v)
{
    save_ctx *S = arg;
    uint64_t h;
    /* The machine's load, not the answer, decides these: validate them again next time. */
    if (!v->pass && (strcmp(v->reason, "timeout") == 0 || strcmp(v->reason, "sandbox_error") == 0))
        return 0;
    if (task_hash_of(S->hs, task_id, &h) != 0)
        return 0;
    cJSON *line = cJSON_CreateObject(), *vj = cJSON_CreateObject();
    char hex[17];
    snprintf(hex, sizeof hex, "%016" PRIx64, h);
    cJSON_AddStringToObject(line, "task", task_id);
    cJSON_AddStringToObject(line, "task_hash", hex);
    cJSON_AddStringToObject(line, "answer", answer);
    cJSON_AddBoolToObject(vj, "pass", v->pass);
    cJSON_AddStringToObject(vj, "validator", v->validator);
    cJSON_AddStringToObject(vj, "reason", v->reason);
    if (v->message)
        cJSON_AddStringToObject(vj, "message", v->message);
    if (v->evidence)
        cJSON_AddStringToObject(vj, "evidence", v->evidence);
    if (v->note)
        cJSON_AddStringToObject(vj, "note", v->note);
    cJSON *t = cJSON_AddArrayToObject(vj, "tests");
    cJSON_AddItemToArray(t, cJSON_CreateNumber(v->tests.passed));
    cJSON_AddItemToArray(t, cJSON_CreateNumber(v->tests.flaky));
    cJSON_AddItemToArray(t, cJSON_CreateNumber(v->tests.preexisting));
    if (v->label[0])
        cJSON_AddStringToObject(vj, "label", v->label);
    cJSON_AddNumberToObject(vj, "score", v->score);
    cJSON_AddItemToObject(line, "verdict", vj);
    char *text = cJSON_PrintUnformatted(line);
    int rc = fputs(text, S->f) == EOF || fputc('\n', S->f) == EOF ? WK_EIO : 0;
    free(text);
    cJSON_Delete(line);
    S->saved += rc == 0;
    return rc;
}

int wk_vcache_save(const wk_vcache *c, const char *path, const char *tasks_path, long *saved,
                   char *err, size_t errlen)
{
    hashes hs;
    char *tmp = wk_xasprintf("%s.tmp", path);
    save_ctx S = {NULL, &hs, 0};
    *saved = 0;
    int rc = hashes_load(&hs, tasks_path, err, errlen);
    if (rc)
        goto cleanup;
    S.f = fopen(tmp, "w");
    if (!S.f) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    rc = wk_vcache_each(c, save_one, &S);
    if (fflush(S.f) == EOF)
        rc = WK_EIO;
    if (fclose(S.f) == EOF)
        rc = WK_EIO;
    S.f = NULL;
    if (rc) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot write %s: %s", tmp, strerror(errno));
        goto cleanup;
    }
    if (rename(tmp, path) != 0) {
        rc = wk_errf(WK_EIO, err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        goto cleanup;
    }
    *saved = S.saved;
cleanup:
    if (rc)
        remove(tmp);
    free(tmp);
    hashes_release(&hs);
    return rc;
}
