/*
 * The compile validator: runs the language's compiler (or checker) on the
 * answer inside the sandbox, with the task's context files beside it, and
 * fails with reason compile_error on a non-zero exit. The evidence is the
 * compiler's first lines with /box/ paths made relative: the first error is
 * the one that matters, the rest often follow from it.
 *
 * The command comes from the cascade's "compile" map (val_input's
 * compile_commands) or the defaults below. When the program is not installed
 * where the sandbox can see it (TypeScript, Go and Rust are not by default),
 * the verdict passes with a note saying that nothing was compiled: failing
 * would send every answer up the cascade for a fault of the machine, not of
 * the answer, and passing silently would claim a check that never ran.
 */
#include "val_int.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "validators/sandbox/sandbox.h"

/* Arguments a compile command may have. */
#define ARGV_MAX 64
/* The sandbox's PATH (sandbox.c sets the same). */
#define SANDBOX_PATH "/usr/local/bin:/usr/bin:/bin"

/*
 * Default commands; "{file}" is the answer's file name. Chosen to check, not
 * to build: nothing needs a main(), and outputs go to the sandbox's /tmp.
 */
static const struct {
    const char *lang;
    const char *package; /* the Debian package that provides argv[0] */
    const char *argv[12];
} defaults[] = {
    {"python", "python3", {"python3", "-m", "py_compile", "{file}"}},
    {"c", "gcc", {"gcc", "-fsyntax-only", "-fdiagnostics-color=never", "{file}"}},
    {"cpp", "g++", {"g++", "-fsyntax-only", "-fdiagnostics-color=never", "{file}"}},
    {"javascript", "nodejs", {"node", "--check", "{file}"}},
    {"typescript",
     "node-typescript",
     {"tsc", "--noEmit", "--pretty", "false", "--skipLibCheck", "{file}"}},
    {"tsx",
     "node-typescript",
     {"tsc", "--noEmit", "--pretty", "false", "--skipLibCheck", "--jsx", "preserve", "{file}"}},
    {"go", "golang-go", {"go", "vet", "{file}"}},
    {"rust",
     "rustc",
     {"rustc", "--edition", "2021", "--crate-type", "lib", "--emit=metadata", "-o",
      "/tmp/cascade-check.rmeta", "{file}"}},
    {"java", "default-jdk-headless", {"javac", "-d", "/tmp/cascade-classes", "{file}"}},
    {"bash", "bash", {"bash", "-n", "{file}"}},
};

#define N_DEFAULTS ((int)(sizeof defaults / sizeof defaults[0]))

typedef struct run {
    val_done_cb done;
    void *arg;
} run;

static int default_index(const char *canonical)
{
    for (int i = 0; canonical && i < N_DEFAULTS; i++)
        if (strcmp(defaults[i].lang, canonical) == 0)
            return i;
    return -1;
}

/*
 * The override for `language` in a compile map: a key naming the same
 * language (any alias), or for a language we do not know, the same name.
 */
static const cJSON *override_for(const cJSON *map, const char *language)
{
    if (!cJSON_IsObject(map) || !language)
        return NULL;
    const char *want = val_lang_canonical(language);
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        const char *key = val_lang_canonical(e->string);
        if ((want && key && strcmp(want, key) == 0) || strcasecmp(e->string, language) == 0)
            return e;
    }
    return NULL;
}

/*
 * The command for `language` into argv (NULL-terminated, borrowed strings),
 * with *pkg the package that provides it (NULL for an override). Returns the
 * count, 0 when the language has no compile step, or WK_EINVAL with a message
 * in err for a malformed override.
 */
static int command_for(const char *language, const cJSON *map, const char **argv, const char **pkg,
                       char *err, size_t errlen)
{
    const cJSON *o = override_for(map, language);
    int n = 0;
    *pkg = NULL;
    if (o) {
        if (!cJSON_IsArray(o) || cJSON_GetArraySize(o) < 1 || cJSON_GetArraySize(o) >= ARGV_MAX) {
            snprintf(err, errlen,
                     "the compile command for \"%.64s\" must be an array of 1 to %d strings",
                     o->string, ARGV_MAX - 1);
            return WK_EINVAL;
        }
        const cJSON *a;
        cJSON_ArrayForEach(a, o)
        {
            if (!cJSON_IsString(a) || !a->valuestring[0]) {
                snprintf(err, errlen,
                         "the compile command for \"%.64s\" must contain only non-empty strings",
                         o->string);
                return WK_EINVAL;
            }
            argv[n++] = a->valuestring;
        }
        argv[n] = NULL;
        return n;
    }
    int d = default_index(val_lang_canonical(language));
    if (d < 0)
        return 0;
    for (; defaults[d].argv[n]; n++)
        argv[n] = defaults[d].argv[n];
    argv[n] = NULL;
    *pkg = defaults[d].package;
    return n;
}

/* 1 when `path` resolves inside what the sandbox binds from the host (/usr, /etc). */
static int visible_in_sandbox(const char *path)
{
    char real[PATH_MAX];
    if (!realpath(path, real))
        return 0;
    return strncmp(real, "/usr/", 5) == 0 || strncmp(real, "/etc/", 5) == 0;
}

/*
 * Whether prog runs inside the sandbox: found on the sandbox's PATH (or at
 * its absolute path), executable, and inside the bound system directories.
 * The host's own PATH does not count: /root/.cargo/bin is invisible inside.
 */
static int program_visible(const char *prog, char *why, size_t whylen)
{
    if (strchr(prog, '/')) {
        if (access(prog, X_OK) == 0 && visible_in_sandbox(prog))
            return 1;
        snprintf(why, whylen, "%s is not an executable under /usr or /etc", prog);
        return 0;
    }
    char path[] = SANDBOX_PATH;
    char *save = NULL;
    for (char *dir = strtok_r(path, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
        char full[PATH_MAX];
        snprintf(full, sizeof full, "%s/%s", dir, prog);
        if (access(full, X_OK) == 0 && visible_in_sandbox(full))
            return 1;
    }
    snprintf(why, whylen, "%s is not installed on the sandbox's PATH (%s)", prog, SANDBOX_PATH);
    return 0;
}

int val_compile_available(const char *language, const cJSON *compile_commands, char *why,
                          size_t whylen)
{
    const char *argv[ARGV_MAX + 1];
    const char *pkg = NULL;
    char err[256];
    int n = command_for(language, compile_commands, argv, &pkg, err, sizeof err);
    if (n < 0) {
        snprintf(why, whylen, "%s", err);
        return 0;
    }
    if (n == 0) {
        snprintf(why, whylen, "no compile command for language \"%s\"",
                 language ? language : "(none)");
        return 0;
    }
    if (!program_visible(argv[0], err, sizeof err)) {
        if (pkg)
            snprintf(why, whylen, "%s (Debian package %s)", err, pkg);
        else
            snprintf(why, whylen, "%s", err);
        return 0;
    }
    return 1;
}

/*
 * Compilers need more than a test run: javac's JVM and rustc's LLVM reserve
 * address space by the gigabyte, go spawns a process per package, and a cold
 * javac takes seconds. Never less than the env's limits.
 */
static void compile_limits(const val_limits *env, val_limits *l)
{
    *l = *env;
    if (l->timeout_ms && l->timeout_ms < 30000)
        l->timeout_ms = 30000;
    if (l->cpu_s && l->cpu_s < 20)
        l->cpu_s = 20;
    if (l->mem_bytes && l->mem_bytes < 4ul << 30)
        l->mem_bytes = 4ul << 30;
    if (l->nproc && l->nproc < 256)
        l->nproc = 256;
}

static void on_result(void *arg, const val__sbx_result *r)
{
    run *x = arg;
    val_verdict v = {0};
    val__judge("compile", "compile_error", 1, r, &v);
    val_done_cb done = x->done;
    void *darg = x->arg;
    free(x);
    done(darg, &v);
    val_verdict_clear(&v);
}

static int compile_start(val_env *env, const val_input *in, const char *code, val_done_cb done,
                         void *arg)
{
    val_verdict v = {0};
    char err[512] = "";
    char why[512] = "";
    val__files files = {0};
    const char *cmd[ARGV_MAX + 1];
    const char *argv[ARGV_MAX + 1];
    const char *pkg = NULL;
    char *note = NULL;
    const char *lang = in->language ? in->language : "(none)";

    int n = command_for(in->language, in->compile_commands, cmd, &pkg, err, sizeof err);
    if (n < 0) {
        val_verdict_fail(&v, "compile", "sandbox_error", err, NULL);
        goto report;
    }
    if (n == 0) {
        if (val_lang_canonical(in->language)) {
            /* A language we know with nothing to compile (JSON): checked by syntax alone. */
            val_verdict_pass(&v);
            note = wk_xasprintf("compile: nothing to compile for %s", lang);
            val_verdict_note(&v, note);
        } else {
            note = wk_xasprintf("no compile command for language \"%s\" (add one to the "
                                "cascade's \"compile\" map)",
                                lang);
            val_verdict_fail(&v, "compile", "unsupported", note, NULL);
        }
        goto report;
    }
    if (!program_visible(cmd[0], why, sizeof why)) {
        val_verdict_pass(&v);
        note = wk_xasprintf("compile skipped, not checked: %s%s%s%s", why,
                            pkg ? " (Debian package " : "", pkg ? pkg : "", pkg ? ")" : "");
        val_verdict_note(&v, note);
        goto report;
    }
    if (!env)
        return WK_EINVAL; /* the sandbox needs the loop and the slots */
    if (val__task_files(in, code, 0, &files, err, sizeof err) < 0) {
        val_verdict_fail(&v, "compile", "sandbox_error", err, NULL);
        goto report;
    }
    /* After "patch" the whole patched tree is compiled: "{file}" is its root. */
    for (int i = 0; i < n; i++)
        argv[i] = strcmp(cmd[i], "{file}") != 0 ? cmd[i] : in->workdir ? "." : files.answer_name;
    argv[n] = NULL;

    val_limits limits;
    compile_limits(&env->limits, &limits);
    run *x = wk_xcalloc(1, sizeof *x);
    x->done = done;
    x->arg = arg;
    val__sbx_spec spec = {
        .argv = argv,
        .argc = n,
        .files = files.v,
        .nfiles = files.n,
        .hostdir = in->workdir,
        .limits = &limits,
    };
    val__sandbox_start(env, &spec, on_result, x);
    goto cleanup;

report:
    done(arg, &v);
    val_verdict_clear(&v);
cleanup:
    val__files_release(&files);
    free(note);
    return 0;
}

const val_ops val__compile_ops = {
    .name = "compile",
    .start = compile_start,
    .sandboxed = 1,
};
