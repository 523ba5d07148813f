/*
 * Fuzz target: the task line parser, as intake runs it (worker/intake.c over
 * worker/task.c): every line of a tasks file is decided in order, against a
 * config with a cascade of each kind of validator. The input is the file;
 * lines longer than LINE_CAP are cut and marked too big, as the file queue
 * does. The driver's lookups are played by small sets: ids of earlier lines
 * are "seen", keys already written are "written" (plus any key starting with
 * 'w'), and a key starting with 'd' is "done" in the journal, with a stored
 * line, so every branch of the decision is reachable.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "worker/intake.h"

#define LINE_CAP 4096

static const char models_json[] =
    "{\"providers\": {\"mock\": {\"api\": \"openai\", \"base_url\": \"http://127.0.0.1:9/v1\","
    " \"key_env\": null}},"
    " \"models\": {\"small\": {\"provider\": \"mock\", \"id\": \"s\", \"input_usd_per_mtok\": 0.1,"
    " \"output_usd_per_mtok\": 0.2, \"context\": 8000, \"max_tokens\": 512},"
    " \"big\": {\"provider\": \"mock\", \"id\": \"b\", \"input_usd_per_mtok\": 1,"
    " \"output_usd_per_mtok\": 2, \"context\": 100000, \"max_tokens\": 4096}}}";

static const char *const cascades[][2] = {
    {"a-python.json", "{\"name\": \"python-code\", \"match\": {\"kind\": \"code\", \"language\":"
                      " \"python\"}, \"validators\": [\"syntax\", \"tests\"], \"feedback\": true,"
                      " \"tiers\": [{\"model\": \"small\"}, {\"model\": \"big\", \"attempts\": 2,"
                      " \"skip_when\": [{\"prompt_tokens_over\": 100, \"has_tests\": true}]}]}"},
    {"b-c.json", "{\"name\": \"c-code\", \"match\": {\"kind\": \"code\", \"language\": \"c\"},"
                 " \"validators\": [\"syntax\", \"compile\", \"tests\"],"
                 " \"tiers\": [{\"model\": \"small\"}]}"},
    {"c-classify.json", "{\"name\": \"classify\", \"match\": {\"kind\": \"classify\"},"
                        " \"validators\": [\"schema\"], \"schema\": {\"type\": \"object\","
                        " \"required\": [\"label\"], \"properties\": {\"label\": {\"enum\":"
                        " [\"bug\", \"feature\"]}}}, \"tiers\": [{\"model\": \"small\"}]}"},
    {"d-json.json", "{\"name\": \"json\", \"match\": {\"kind\": \"json\"},"
                    " \"validators\": [\"schema\"], \"tiers\": [{\"model\": \"big\"}]}"},
    {"e-patch.json", "{\"name\": \"patch\", \"match\": {\"kind\": \"patch\"},"
                     " \"validators\": [\"patch\", \"tests\"], \"tiers\": [{\"model\": \"big\"}]}"},
    {"f-any.json", "{\"name\": \"any\", \"validators\": [\"syntax\"],"
                   " \"tiers\": [{\"model\": \"small\"}]}"},
};

static wk_config cfg;

struct facts {
    wk_strset seen, written;
};

static int written(void *arg, const char *key)
{
    struct facts *f = arg;
    return key[0] == 'w' || wk_strset_has(&f->written, key);
}

static int done(void *arg, const char *key, char **result)
{
    (void)arg;
    if (key[0] != 'd')
        return 0;
    *result = wk_xstrdup("{\"id\": \"d\", \"status\": \"accepted\"}");
    return 1;
}

static int seen(void *arg, const char *id)
{
    struct facts *f = arg;
    return wk_strset_has(&f->seen, id);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[1024];
    char *dir = fuzz_tmpdir("intake");
    fuzz_write(dir, "models.json", models_json);
    for (size_t i = 0; i < sizeof cascades / sizeof cascades[0]; i++)
        fuzz_write(dir, cascades[i][0], cascades[i][1]);
    char *models = wk_xasprintf("%s/models.json", dir);
    if (wk_config_load(&cfg, models, dir, WK_CONFIG_OFFLINE, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_intake: the built-in config does not load: %s\n", err);
        abort();
    }
    free(models);
    free(dir);
    return 0;
}

/* What the driver may rely on in a decision. */
static void check(const wk_intake *d)
{
    switch (d->kind) {
    case WK_INTAKE_SKIP:
        break;
    case WK_INTAKE_ALREADY:
        break;
    case WK_INTAKE_RESUME:
        if (!d->key || !d->line || !d->task)
            abort();
        break;
    case WK_INTAKE_INVALID:
        if (!d->key || !d->line || !d->result)
            abort();
        if (strcmp(wk_jstr(d->result, "status") ? wk_jstr(d->result, "status") : "",
                   "invalid_task") != 0)
            abort();
        break;
    case WK_INTAKE_RUN:
        if (!d->task || !wk_task_id(d->task) || !wk_task_cascade(d->task))
            abort();
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct facts f;
    memset(&f, 0, sizeof f);
    wk_intake_facts facts = {
        .cfg = &cfg,
        .line_cap = LINE_CAP,
        .written = written,
        .done = done,
        .seen = seen,
        .arg = &f,
    };
    long lineno = 0;
    size_t pos = 0;
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t n = nl ? (size_t)(nl - (data + pos)) : size - pos;
        q_item it;
        memset(&it, 0, sizeof it);
        it.too_big = n > LINE_CAP;
        it.len = it.too_big ? LINE_CAP : n;
        it.line = fuzz_cstr(data + pos, it.len);
        it.lineno = ++lineno;
        it.deliveries = 1;

        wk_intake d;
        wk_intake_decide(&it, &facts, &d);
        check(&d);
        if (d.task)
            wk_strset_add(&f.seen, wk_task_id(d.task));
        if (d.kind == WK_INTAKE_INVALID)
            wk_strset_add(&f.written, d.key);
        wk_intake_release(&d);
        free(it.line);
        pos += n + 1;
    }
    wk_strset_release(&f.seen);
    wk_strset_release(&f.written);
    return 0;
}
