/*
 * `cascade check`: configuration and tasks validated without calling
 * anything. Each cascade file is loaded on its own with the models file (so
 * one bad file does not hide the next one's errors), then the whole set (for
 * what spans files, such as a name used twice), then each task line is parsed
 * as `run` would. Every error and warning names its file, line and field;
 * the line comes from a small scan of the file that maps each JSON path
 * (tiers[1].model) to the line it starts on, as cJSON keeps no positions.
 */
#include <dirent.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "lib/jsonl.h"
#include "lib/util.h"
#include "worker/config.h"
#include "worker/policy.h"
#include "worker/task.h"

#define FILE_CAP (4u << 20)       /* as config.c reads a config file */
#define TASK_LINE_CAP (16u << 20) /* as run reads a task line */
#define PATH_MAX_LEN 512
#define DEPTH_MAX 64
#define SPOTS_MAX 200000

/* ---- JSON path -> line ------------------------------------------------------- */

typedef struct spot {
    char *path;
    int line;
} spot;

typedef struct spots {
    spot *v;
    int n, cap;
} spots;

typedef struct scan {
    const char *p, *end;
    int line;
    spots *out;
} scan;

static void spots_add(spots *s, const char *path, int line)
{
    if (s->n >= SPOTS_MAX)
        return;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = wk_xrealloc(s->v, (size_t)s->cap * sizeof *s->v);
    }
    s->v[s->n].path = wk_xstrdup(path);
    s->v[s->n++].line = line;
}

static void spots_release(spots *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i].path);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static void skip_ws(scan *sc)
{
    while (sc->p < sc->end && strchr(" \t\r\n", *sc->p)) {
        sc->line += *sc->p == '\n';
        sc->p++;
    }
}

/* A string at p (after its quote is checked); its raw inside into buf (cut to cap). */
static int scan_string(scan *sc, char *buf, size_t cap)
{
    size_t n = 0;
    sc->p++;
    while (sc->p < sc->end && *sc->p != '"') {
        if (*sc->p == '\\' && sc->p + 1 < sc->end)
            sc->p++;
        if (*sc->p == '\n')
            sc->line++;
        if (buf && n + 1 < cap)
            buf[n++] = *sc->p;
        sc->p++;
    }
    if (buf)
        buf[n] = '\0';
    if (sc->p >= sc->end)
        return -1;
    sc->p++;
    return 0;
}

static int scan_value(scan *sc, char *path, size_t plen, int depth)
{
    skip_ws(sc);
    if (sc->p >= sc->end || depth > DEPTH_MAX)
        return -1;
    if (*sc->p == '"')
        return scan_string(sc, NULL, 0);
    if (*sc->p != '{' && *sc->p != '[') {
        while (sc->p < sc->end && !strchr(",]} \t\r\n", *sc->p))
            sc->p++;
        return 0;
    }
    int obj = *sc->p == '{';
    char close = obj ? '}' : ']';
    sc->p++;
    for (int i = 0;; i++) {
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == close) {
            sc->p++;
            return 0;
        }
        int line = sc->line;
        if (obj) {
            char key[128];
            if (sc->p >= sc->end || *sc->p != '"' || scan_string(sc, key, sizeof key))
                return -1;
            snprintf(path + plen, PATH_MAX_LEN - plen, "%s%s", plen ? "." : "", key);
            skip_ws(sc);
            if (sc->p >= sc->end || *sc->p != ':')
                return -1;
            sc->p++;
        } else {
            snprintf(path + plen, PATH_MAX_LEN - plen, "[%d]", i);
        }
        spots_add(sc->out, path, line);
        size_t nlen = strlen(path);
        if (scan_value(sc, path, nlen, depth + 1))
            return -1;
        path[plen] = '\0';
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == ',') {
            sc->p++;
            continue;
        }
        if (sc->p < sc->end && *sc->p == close) {
            sc->p++;
            return 0;
        }
        return -1;
    }
}

/* The spots of a JSON file; an unreadable or broken file leaves what was found. */
static void map_file(const char *file, spots *out)
{
    char *text = NULL;
    size_t len = 0;
    if (wk_read_file(file, FILE_CAP, &text, &len))
        return;
    char path[PATH_MAX_LEN] = "";
    scan sc = {.p = text, .end = text + len, .line = 1, .out = out};
    scan_value(&sc, path, 0, 0);
    free(text);
}

/*
 * The line of the longest prefix of field that the file has; a field missing
 * from the top level is at the top object's line (1); 0 for an empty map.
 */
static int line_of(const spots *s, const char *field)
{
    char want[PATH_MAX_LEN];
    snprintf(want, sizeof want, "%s", field);
    for (;;) {
        for (int i = 0; i < s->n; i++)
            if (strcmp(s->v[i].path, want) == 0)
                return s->v[i].line;
        char *cut = strrchr(want, '.');
        char *br = strrchr(want, '[');
        if (br && (!cut || br > cut))
            cut = br;
        if (!cut)
            return s->n ? 1 : 0;
        *cut = '\0';
    }
}

/* ---- reporting --------------------------------------------------------------- */

typedef struct report {
    int errors, warnings;
} report;

static void say(report *r, int error, const char *file, int line, const char *field,
                const char *msg)
{
    char *e = wk_escape_ctl(msg, strlen(msg), 1000);
    if (line > 0)
        printf("%s:%d: %s: ", file, line, error ? "error" : "warning");
    else
        printf("%s: %s: ", file, error ? "error" : "warning");
    if (field && *field)
        printf("%s: ", field);
    printf("%s\n", e);
    free(e);
    if (error)
        r->errors++;
    else
        r->warnings++;
}

/*
 * A config error ("FILE: FIELD ...", "FILE:LINE: ...") reported at its field's
 * line. The field is the message's first word when it looks like a JSON path
 * ("tiers[1].model", "\"validators\"").
 */
static void config_error(report *r, const char *file, const char *msg)
{
    size_t fl = strlen(file);
    const char *rest = msg;
    int line = 0;
    if (strncmp(msg, file, fl) == 0 && msg[fl] == ':') {
        rest = msg + fl + 1;
        if (*rest >= '0' && *rest <= '9') {
            line = atoi(rest);
            rest += strspn(rest, "0123456789");
            rest += *rest == ':';
        }
        rest += *rest == ' ';
    }
    char field[PATH_MAX_LEN] = "";
    const char *w = rest + (*rest == '"');
    size_t n = strcspn(w, " :\"");
    int pathlike = n > 0 && n < sizeof field && (w[n] == ':' || w[n] == ' ' || w[n] == '"');
    for (size_t i = 0; pathlike && i < n; i++)
        pathlike = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.[]-",
                          w[i]) != NULL;
    if (pathlike) {
        memcpy(field, w, n);
        field[n] = '\0';
    }
    if (!line && field[0]) {
        spots s = {0};
        map_file(file, &s);
        line = line_of(&s, field);
        spots_release(&s);
    }
    say(r, 1, file, line, "", rest);
}

/* ---- the checks -------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The cascade files of dir, as config.c finds them; a file names itself. */
static char **cascade_files(const char *dir, int *n)
{
    struct stat sb;
    char **v = NULL;
    *n = 0;
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode)) {
        v = wk_xcalloc(1, sizeof *v);
        v[(*n)++] = wk_xstrdup(dir);
        return v;
    }
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0 || e->d_name[0] == '.' ||
            strcmp(e->d_name, "models.json") == 0)
            continue;
        v = wk_xrealloc(v, (size_t)(*n + 1) * sizeof *v);
        v[(*n)++] = wk_xasprintf("%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (*n)
        qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

/* Warnings on a loaded config: a model with no price, a used provider whose key is unset. */
static void config_warnings(report *r, const wk_config *cfg, const char *models)
{
    spots s = {0};
    map_file(models, &s);
    char field[PATH_MAX_LEN];
    for (int i = 0; i < cfg->nmodels; i++) {
        const wk_model *m = &cfg->models[i];
        if (m->input_usd_per_mtok > 0 || m->output_usd_per_mtok > 0)
            continue;
        snprintf(field, sizeof field, "models.%s", m->name);
        say(r, 0, models, line_of(&s, field), field,
            "no price (input_usd_per_mtok and output_usd_per_mtok are 0): its calls count as "
            "free against budgets");
    }
    for (int p = 0; p < cfg->nproviders; p++) {
        const wk_provider *pv = &cfg->providers[p];
        int used = 0;
        for (int i = 0; i < cfg->ncascades && !used; i++)
            for (int t = 0; t < cfg->cascades[i].ntiers && !used; t++) {
                const wk_model *m = cfg->cascades[i].tiers[t].model;
                used = m->provider == pv;
                for (int f = 0; f < m->nfallbacks && !used; f++)
                    used = m->fallbacks[f]->provider == pv;
            }
        const char *v = pv->key_env ? getenv(pv->key_env) : NULL;
        if (!used || !pv->key_env || (v && *v))
            continue;
        snprintf(field, sizeof field, "providers.%s.key_env", pv->name);
        char *msg =
            wk_xasprintf("$%s is not set: `cascade run` stops before any call", pv->key_env);
        say(r, 0, models, line_of(&s, field), field, msg);
        free(msg);
    }
    spots_release(&s);
}

/* What check_line needs between lines. */
typedef struct task_check {
    report *r;
    const wk_config *cfg;
    const char *path;
    wk_strset ids;
} task_check;

/*
 * One task line parsed as `run` parses it; a prompt over a tier's context
 * window warns, a data_class the cascade's policy does not name is an error.
 */
static int check_line(void *arg, const char *line, size_t n, int cut, long lineno)
{
    task_check *tc = arg;
    report *r = tc->r;
    const char *path = tc->path;
    if (cut) {
        /* The reader kept no more than the cap: a longer line never grows a buffer. */
        say(r, 1, path, (int)lineno, "", "line over 16 MiB: run takes it as invalid_task");
        return 0;
    }
    while (n > 0 && line[n - 1] == '\r')
        n--;
    if (n == 0 || wk_jsonl_blank(line, n))
        return 0;
    wk_task *t = NULL;
    cJSON *inv = NULL;
    if (wk_task_parse(line, n, lineno, tc->cfg, NULL, &t, &inv)) {
        const char *why = wk_jstr(inv, "reason"), *id = wk_jstr(inv, "id");
        char *msg = wk_xasprintf("%s%s%s%s", id ? "task " : "", id ? id : "", id ? ": " : "",
                                 why ? why : "not a task");
        say(r, 1, path, (int)lineno, NULL, msg);
        free(msg);
        cJSON_Delete(inv);
        return 0;
    }
    const char *id = wk_task_id(t);
    if (wk_strset_has(&tc->ids, id)) {
        char *msg = wk_xasprintf("task %s: this id was used by an earlier line: run takes "
                                 "the line as invalid_task",
                                 id);
        say(r, 1, path, (int)lineno, NULL, msg);
        free(msg);
    } else
        wk_strset_add(&tc->ids, id);
    const wk_cascade *c = wk_task_cascade(t);
    /* A class the policy does not name reaches nothing: run would end the task policy_denied. */
    const char *dc = wk_jstr(wk_task_json(t), "data_class");
    if (c && dc && !wk_policy_class(&c->policy, dc)) {
        char *msg = wk_xasprintf("task %s: unknown data class \"%s\" (the data_policy of "
                                 "cascade %s names no such class): run ends the task "
                                 "policy_denied",
                                 id, dc, c->name);
        say(r, 1, path, (int)lineno, "data_class", msg);
        free(msg);
    }
    wk_task_features feat;
    wk_task_features_of(wk_task_json(t), &feat);
    for (int k = 0; c && k < c->ntiers; k++) {
        const wk_model *m = c->tiers[k].model;
        if (m->context <= 0 || feat.prompt_tokens <= m->context)
            continue;
        char *msg = wk_xasprintf("prompt of about %ld tokens is over the %ld-token context "
                                 "of cascade %s tier %d (%s)",
                                 feat.prompt_tokens, m->context, c->name, k, m->name);
        say(r, 0, path, (int)lineno, "prompt", msg);
        free(msg);
    }
    wk_task_free(t);
    return 0;
}

/* Each task line of the file (\"-\": standard input), read with run's line cap. */
static int check_tasks(report *r, const wk_config *cfg, const char *path)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        say(r, 1, path, 0, "", "cannot open the tasks file");
        return -1;
    }
    task_check tc = {.r = r, .cfg = cfg, .path = path};
    int rc = wk_jsonl_read(f, TASK_LINE_CAP, check_line, &tc);
    if (rc == WK_EIO)
        say(r, 1, path, 0, "", "cannot read the tasks file");
    wk_strset_release(&tc.ids);
    if (f != stdin)
        fclose(f);
    return rc ? -1 : 0;
}

static const char usage_check[] =
    "usage: cascade check [--cascades DIR] [--models FILE] [TASKS.jsonl|-]\n"
    "\n"
    "Validates the cascades, the models file and (given) a tasks file without\n"
    "calling anything, and prints every error and warning as\n"
    "FILE:LINE: error|warning: FIELD: message. Warnings: a model with no price,\n"
    "a used provider whose key variable is unset, a task whose prompt is over a\n"
    "tier's context window.\n"
    "\n"
    "options:\n"
    "  --cascades DIR       cascade files (*.json), or one file [cascades]\n"
    "  --models FILE        providers and models [DIR/models.json]\n"
    "  -h, --help           this text\n"
    "\n"
    "exit status: 0 no errors (warnings allowed); 1 errors; 2 usage error.\n";

int wk_cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {
        {"cascades", required_argument, NULL, WK_OPT_CASCADES},
        {"models", required_argument, NULL, WK_OPT_MODELS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = "cascades", *models = NULL, *tasks = NULL;
    char *models_dflt = NULL, **files = NULL;
    int nfiles = 0, c, code = WK_EXIT_USAGE;
    report r = {0};
    char err[1024];
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case WK_OPT_CASCADES:
            dir = optarg;
            break;
        case WK_OPT_MODELS:
            models = optarg;
            break;
        case 'h':
            fputs(usage_check, stdout);
            code = WK_EXIT_OK;
            goto cleanup;
        default:
            fputs(usage_check, stderr);
            goto cleanup;
        }
    }
    if (optind < argc - 1) {
        fputs(usage_check, stderr);
        goto cleanup;
    }
    tasks = optind < argc ? argv[optind] : NULL;
    if (!models)
        models = models_dflt = wk_xasprintf("%s/models.json", dir);
    files = cascade_files(dir, &nfiles);
    if (!nfiles) {
        say(&r, 1, dir, 0, "", "no cascade files (*.json)");
        goto report;
    }
    /* Each cascade file with the models file: a models error shows once and stops here. */
    int models_bad = 0;
    for (int i = 0; i < nfiles && !models_bad; i++) {
        wk_config cfg;
        if (wk_config_load(&cfg, models, files[i], WK_CONFIG_OFFLINE, err, sizeof err) == 0) {
            wk_config_free(&cfg);
            continue;
        }
        models_bad = strncmp(err, files[i], strlen(files[i])) != 0;
        config_error(&r, models_bad ? models : files[i], err);
    }
    if (r.errors)
        goto report;
    /* The set as run loads it: what spans files (a cascade name used twice). */
    wk_config cfg;
    if (wk_config_load(&cfg, models, dir, WK_CONFIG_OFFLINE, err, sizeof err)) {
        const char *file = dir;
        for (int i = 0; i < nfiles; i++)
            if (strncmp(err, files[i], strlen(files[i])) == 0)
                file = files[i];
        config_error(&r, file, err);
        goto report;
    }
    config_warnings(&r, &cfg, models);
    if (tasks)
        check_tasks(&r, &cfg, tasks);
    wk_config_free(&cfg);
report:
    printf("cascade check: %d error%s, %d warning%s\n", r.errors, r.errors == 1 ? "" : "s",
           r.warnings, r.warnings == 1 ? "" : "s");
    code = r.errors ? WK_EXIT_FAIL : WK_EXIT_OK;
cleanup:
    for (int i = 0; i < nfiles; i++)
        free(files[i]);
    free(files);
    free(models_dflt);
    return code;
}
