/*
 * `cascade validate`: runs a task's validators on one answer, without any
 * model, and prints the verdict as one JSON line. Usable in any CI: exit 0
 * when the answer passes, 1 when it fails, 2 on a usage or input error.
 * It has a libuv loop and a val_env of its own, as `run` does.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "validators/val.h"

enum { EXIT_PASS = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* Caps on what we read: a task with its files, and a model's answer. */
#define TASK_CAP (64u << 20)
#define ANSWER_CAP (16u << 20)
/* Validators one invocation may name. */
#define NAMES_MAX 16

static const char usage_validate[] =
    "usage: cascade validate --task TASK.json [options] ANSWER|-\n"
    "       cascade validate --lang LANGUAGE FILE|-\n"
    "\n"
    "The first form runs a task's validators on a model's answer (the code is\n"
    "taken from its first fenced block, else the whole text), in order, stopping\n"
    "at the first failure. The second runs the syntax validator alone on a source\n"
    "file, taken as it is. Either prints the verdict as one JSON line on stdout:\n"
    "  {\"pass\": false, \"validator\": \"tests\", \"reason\": \"failed\", \"message\": ...,\n"
    "   \"evidence\": ..., \"note\": ..., \"validators\": [...], \"skipped\": [...],\n"
    "   \"elapsed_ms\": ...}\n"
    "\n"
    "Which validators run: --validators, else the cascade's \"validators\"\n"
    "(--cascade), else the task's \"validators\" field, else by the task's kind:\n"
    "code runs syntax (when there is a grammar for the language), compile (when\n"
    "its compiler is installed) and tests (when the task has tests.command);\n"
    "classify and json run schema; patch runs patch. What is left out is listed\n"
    "under \"skipped\" with the reason.\n"
    "\n"
    "options:\n"
    "  --task FILE            the task, one JSON object (see README.md)\n"
    "  --validators a,b       the validators to run, in this order\n"
    "  --cascade FILE         take \"validators\" and the \"compile\" map (commands\n"
    "                         per language) from this cascade file\n"
    "  --lang LANGUAGE        syntax only, for this language (or alias: py, js,\n"
    "                         ts, c++, golang, sh, ...)\n"
    "  --timeout SEC          wall-clock limit of the test run [10]; a compile\n"
    "                         step gets at least 30 s\n"
    "  -h, --help             this text\n"
    "\n"
    "Sandboxed validators (compile, tests) need bubblewrap (/usr/bin/bwrap).\n"
    "\n"
    "exit status: 0 the answer passed; 1 it failed; 2 usage or input error.\n";

typedef struct vstate {
    int done;
    val_verdict v;
} vstate;

static void on_done(void *arg, const val_verdict *v)
{
    vstate *s = arg;
    s->done = 1;
    s->v.pass = v->pass;
    memcpy(s->v.validator, v->validator, sizeof s->v.validator);
    memcpy(s->v.reason, v->reason, sizeof s->v.reason);
    s->v.message = v->message ? wk_xstrdup(v->message) : NULL;
    s->v.evidence = v->evidence ? wk_xstrdup(v->evidence) : NULL;
    s->v.note = v->note ? wk_xstrdup(v->note) : NULL;
}

/* Reads a whole file, or stdin for "-", up to cap bytes. Returns 0 or a wk_err. */
static int read_input(const char *path, size_t cap, char **out)
{
    if (strcmp(path, "-") != 0) {
        size_t len;
        return wk_read_file(path, cap, out, &len);
    }
    wk_buf b;
    wk_buf_init(&b, cap);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
        if ((rc = wk_buf_append(&b, chunk, n)) != 0)
            break;
    if (!rc && ferror(stdin))
        rc = WK_EIO;
    if (!rc) {
        *out = wk_buf_detach(&b, NULL);
        if (!*out)
            *out = wk_xstrdup("");
    }
    wk_buf_release(&b);
    return rc;
}

static cJSON *read_json(const char *what, const char *path)
{
    char *text = NULL;
    int rc = read_input(path, TASK_CAP, &text);
    if (rc) {
        fprintf(stderr, "cascade validate: cannot read the %s %s: %s\n", what, path,
                rc == WK_ETOOBIG ? "larger than 64 MiB" : wk_strerror(rc));
        return NULL;
    }
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(j)) {
        fprintf(stderr, "cascade validate: the %s %s is not a JSON object\n", what, path);
        cJSON_Delete(j);
        return NULL;
    }
    return j;
}

/* Appends the names of a JSON array of strings; returns -1 on a bad element. */
static int names_from_json(const cJSON *arr, const char **names, int *n)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (!cJSON_IsString(e) || *n >= NAMES_MAX)
            return -1;
        names[(*n)++] = e->valuestring;
    }
    return 0;
}

/* Splits "a,b" in place into names. */
static int names_from_list(char *list, const char **names, int *n)
{
    char *save = NULL;
    for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n >= NAMES_MAX)
            return -1;
        names[(*n)++] = t;
    }
    return 0;
}

static void add_skip(cJSON *skipped, const char *name, const char *why)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "validator", name);
    cJSON_AddStringToObject(s, "why", why);
    cJSON_AddItemToArray(skipped, s);
}

/* The validators a task gets when nobody named them, by its kind. */
static void names_by_kind(const val_input *in, const char **names, int *n, cJSON *skipped)
{
    const char *kind = in->kind ? in->kind : "code";
    if (strcmp(kind, "classify") == 0 || strcmp(kind, "json") == 0) {
        names[(*n)++] = "schema";
        return;
    }
    if (strcmp(kind, "patch") == 0) {
        names[(*n)++] = "patch";
        return;
    }
    char why[512];
    if (val_lang_known(in->language))
        names[(*n)++] = "syntax";
    else {
        snprintf(why, sizeof why, "no grammar for language \"%s\"",
                 in->language ? in->language : "(none)");
        add_skip(skipped, "syntax", why);
    }
    if (val_compile_available(in->language, in->compile_commands, why, sizeof why))
        names[(*n)++] = "compile";
    else
        add_skip(skipped, "compile", why);
    /*
     * Tests run when the task gives what the tests validator needs; one that
     * gives it unusable still runs them, so the verdict says what is wrong.
     */
    static const char *const tests[] = {"tests"};
    if (val_check_task(tests, 1, in->task, in->schema, "the task", why, sizeof why) != WK_ENOTFOUND)
        names[(*n)++] = "tests";
    else
        add_skip(skipped, "tests", "the task has no tests.command");
}

static void print_verdict(const val_verdict *v, const char *const *names, int n, cJSON *skipped,
                          uint64_t elapsed_ms)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "pass", v->pass);
    if (!v->pass) {
        cJSON_AddStringToObject(o, "validator", v->validator);
        cJSON_AddStringToObject(o, "reason", v->reason);
        if (v->message)
            cJSON_AddStringToObject(o, "message", v->message);
        if (v->evidence)
            cJSON_AddStringToObject(o, "evidence", v->evidence);
    }
    if (v->note)
        cJSON_AddStringToObject(o, "note", v->note);
    cJSON *arr = cJSON_AddArrayToObject(o, "validators");
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(names[i]));
    if (skipped && cJSON_GetArraySize(skipped) > 0)
        cJSON_AddItemReferenceToObject(o, "skipped", skipped);
    cJSON_AddNumberToObject(o, "elapsed_ms", (double)elapsed_ms);
    char *s = cJSON_PrintUnformatted(o);
    puts(s);
    fflush(stdout);
    free(s);
    cJSON_Delete(o);
}

int wk_cmd_validate(int argc, char **argv)
{
    int code = EXIT_USAGE;
    const char *task_path = NULL;
    const char *cascade_path = NULL;
    const char *lang = NULL;
    char *list = NULL;
    long timeout_s = 0;
    cJSON *task = NULL;
    cJSON *cascade = NULL;
    cJSON *skipped = cJSON_CreateArray();
    char *answer = NULL;
    val_env *env = NULL;
    uv_loop_t loop;
    int loop_ok = 0;
    vstate st = {0};
    const char *names[NAMES_MAX];
    int n = 0;

    enum { O_TASK = 256, O_VALIDATORS, O_CASCADE, O_LANG, O_TIMEOUT };
    static const struct option opts[] = {
        {"task", required_argument, NULL, O_TASK},
        {"validators", required_argument, NULL, O_VALIDATORS},
        {"cascade", required_argument, NULL, O_CASCADE},
        {"lang", required_argument, NULL, O_LANG},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_TASK:
            task_path = optarg;
            break;
        case O_VALIDATORS:
            free(list);
            list = wk_xstrdup(optarg);
            break;
        case O_CASCADE:
            cascade_path = optarg;
            break;
        case O_LANG:
            lang = optarg;
            break;
        case O_TIMEOUT:
            if (wk_cli_long(optarg, 1, 3600, &timeout_s)) {
                fprintf(stderr, "cascade validate: bad value \"%s\" for --timeout\n", optarg);
                goto cleanup;
            }
            break;
        case 'h':
            fputs(usage_validate, stdout);
            code = EXIT_PASS;
            goto cleanup;
        default:
            fputs(usage_validate, stderr);
            goto cleanup;
        }
    }
    if (optind != argc - 1 || (!task_path == !lang)) {
        fprintf(stderr,
                "cascade validate: give --task TASK.json or --lang LANGUAGE, and one "
                "answer file (or - for stdin)\n\n%s",
                usage_validate);
        goto cleanup;
    }
    if (lang && (list || cascade_path)) {
        fprintf(stderr, "cascade validate: --lang runs syntax alone; --validators and "
                        "--cascade go with --task\n");
        goto cleanup;
    }
    int rc = read_input(argv[optind], ANSWER_CAP, &answer);
    if (rc) {
        fprintf(stderr, "cascade validate: cannot read the answer %s: %s\n", argv[optind],
                rc == WK_ETOOBIG ? "larger than 16 MiB" : wk_strerror(rc));
        goto cleanup;
    }

    val_input in = {0};
    if (lang) {
        if (!val_lang_known(lang)) {
            fprintf(stderr, "cascade validate: no grammar for language \"%s\"\n", lang);
            goto cleanup;
        }
        in.language = lang;
        in.kind = "code";
        in.task_id = argv[optind];
        in.answer = answer;
        names[n++] = "syntax";
        /* A source file is parsed as it is: no fenced block is looked for. */
        uint64_t t0 = wk_now_ms();
        val_find("syntax")->start(NULL, &in, answer, on_done, &st);
        print_verdict(&st.v, names, n, NULL, wk_now_ms() - t0);
        code = st.v.pass ? EXIT_PASS : EXIT_FAILED;
        goto cleanup;
    }

    if (!(task = read_json("task", task_path)))
        goto cleanup;
    if (cascade_path && !(cascade = read_json("cascade", cascade_path)))
        goto cleanup;
    const cJSON *f;
    in.task = task;
    in.answer = answer;
    in.task_id = cJSON_IsString(f = cJSON_GetObjectItemCaseSensitive(task, "id")) ? f->valuestring
                                                                                  : task_path;
    in.kind = cJSON_IsString(f = cJSON_GetObjectItemCaseSensitive(task, "kind")) ? f->valuestring
                                                                                 : "code";
    in.language = cJSON_IsString(f = cJSON_GetObjectItemCaseSensitive(task, "language"))
                      ? f->valuestring
                      : NULL;
    in.schema = cJSON_GetObjectItemCaseSensitive(task, "schema");
    in.compile_commands = cJSON_GetObjectItemCaseSensitive(cascade, "compile");

    const cJSON *from = NULL;
    if (list) {
        if (names_from_list(list, names, &n) < 0) {
            fprintf(stderr, "cascade validate: at most %d validators\n", NAMES_MAX);
            goto cleanup;
        }
    } else if (cJSON_IsArray(from = cJSON_GetObjectItemCaseSensitive(cascade, "validators")) ||
               cJSON_IsArray(from = cJSON_GetObjectItemCaseSensitive(task, "validators"))) {
        if (names_from_json(from, names, &n) < 0) {
            fprintf(stderr,
                    "cascade validate: \"validators\" must be an array of at most %d "
                    "names\n",
                    NAMES_MAX);
            goto cleanup;
        }
    } else {
        names_by_kind(&in, names, &n, skipped);
    }
    for (int i = 0; i < n; i++) {
        if (!val_find(names[i])) {
            fprintf(stderr, "cascade validate: unknown validator \"%s\"; known:", names[i]);
            for (int k = 0; val_table[k]; k++)
                fprintf(stderr, " %s", val_table[k]->name);
            fputc('\n', stderr);
            goto cleanup;
        }
    }

    uint64_t t0 = wk_now_ms();
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "cascade validate: cannot start the event loop\n");
        code = EXIT_FAILED;
        goto cleanup;
    }
    loop_ok = 1;
    val_limits limits;
    val_limits_default(&limits);
    if (timeout_s)
        limits.timeout_ms = (unsigned)(timeout_s * 1000);
    char err[512];
    env = val_env_new(&loop, &limits, 1, err, sizeof err);
    if (!env && val_needs_sandbox(names, n)) {
        /* Say so as a verdict too, so a CI log shows why nothing ran. */
        val_verdict_fail(&st.v, "tests", "sandbox_error", err, NULL);
        print_verdict(&st.v, names, n, skipped, 0);
        fprintf(stderr, "cascade validate: %s\n", err);
        code = EXIT_FAILED;
        goto cleanup;
    }
    if (val_chain_start(env, names, n, &in, on_done, &st) != 0) {
        fprintf(stderr, "cascade validate: the validators could not start\n");
        code = EXIT_FAILED;
        goto cleanup;
    }
    /* The chain keeps the loop alive with its sandbox until its verdict is in. */
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!st.done) {
        fprintf(stderr, "cascade validate: the validators stopped without a verdict\n");
        code = EXIT_FAILED;
        goto cleanup;
    }
    print_verdict(&st.v, names, n, skipped, wk_now_ms() - t0);
    code = st.v.pass ? EXIT_PASS : EXIT_FAILED;

cleanup:
    if (env)
        val_env_free(env);
    if (loop_ok) {
        uv_run(&loop, UV_RUN_DEFAULT); /* close callbacks still pending, if any */
        uv_loop_close(&loop);
    }
    val_verdict_clear(&st.v);
    cJSON_Delete(task);
    cJSON_Delete(cascade);
    cJSON_Delete(skipped);
    free(answer);
    free(list);
    return code;
}
