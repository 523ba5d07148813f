/*
 * `cascade fix`: the CI bot's entry point. It builds the one patch task a
 * failing test step asks for (the repository, its base, the test command,
 * an instruction), runs it through `cascade run`'s driver, and says where the
 * commit and the patch file are. Its state (the task, the results line and
 * the journal) lives in the repository's git directory, not in the working
 * tree, so the checkout is left as it was and a rerun on the same base
 * resumes instead of paying twice.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "lib/util.h"
#include "vcs/vcs.h"
#include "worker/run.h"

/* Words of a --test-cmd, and bytes of one. */
#define FIX_ARGV_MAX 256
#define FIX_CMD_MAX 8192

static const char usage_fix[] =
    "usage: cascade fix --repo DIR --test-cmd \"COMMAND\" [options]\n"
    "\n"
    "Asks the cascade for a patch that makes the repository's failing tests\n"
    "pass, proves it with the tests in the sandbox (climbing to a pricier model\n"
    "when a patch fails), and commits an accepted patch on a branch of its own,\n"
    "cascade/<id>, on top of --base. HEAD, the index and the working tree are\n"
    "not touched. Prints on stdout, one per line: status=, and for a fix\n"
    "branch=, commit=, patch= (the format-patch file), tier=, model=, cost_usd=\n"
    "(append them to $GITHUB_OUTPUT as they are); the rest goes to stderr.\n"
    "\n"
    "options:\n"
    "  --repo DIR           the git repository (not an enclosing one) [.]\n"
    "  --test-cmd \"CMD\"     the test command, run in the sandbox in the patched\n"
    "                       tree; split into words like a shell does (quotes and\n"
    "                       backslashes), or run with sh -c when it uses ; & | < > $ `\n"
    "  --instruction TEXT   what to fix; its first line is the commit's subject\n"
    "                       [the task's default: make the failing tests pass]\n"
    "  --base REV           the revision to fix (sha, branch, HEAD) [HEAD]\n"
    "  --language L         python, c, javascript, ... [guessed from the test\n"
    "                       command: pytest/python, node/npm, make/gcc/cc]\n"
    "  --cascades DIR       cascade files [cascades]\n"
    "  --models FILE        providers and models [DIR/models.json]\n"
    "  --cascade NAME       use this cascade [the first that matches kind patch\n"
    "                       and the language]\n"
    "  --id ID              the task id, so the branch is cascade/ID\n"
    "                       [fix-<first 12 hex of the base commit>]\n"
    "  --state-dir DIR      the task, result line and journal [GITDIR/cascade]\n"
    "  --patch-dir DIR      where ID.patch goes [the state directory]\n"
    "  --branch-prefix P    [cascade/]\n"
    "  --force-branch       move an existing branch instead of adding -2, -3\n"
    "  --author \"N <E>\"     author and committer [cascade <cascade@localhost>]\n"
    "  --budget USD         the most this fix may spend [none]\n"
    "  --test-timeout SEC   wall-clock limit of one test run [60]\n"
    "  --fresh              forget an earlier run of this id (result and journal)\n"
    "  -h, --help           this text\n"
    "\n"
    "A rerun with the same id resumes from the journal: an answer already paid\n"
    "for is not asked again, and a commit already made is reused, not repeated.\n"
    "\n"
    "exit status: 0 a fix was committed; 1 none was found (every tier failed,\n"
    "the tests already pass, the budget ran out) or the run could not start;\n"
    "2 usage error.\n";

/* ---- the test command ---------------------------------------------------------- */

/*
 * Splits cmd into words as sh would for a simple command (single and double
 * quotes, backslash escapes), into a new JSON array. A command that needs a
 * shell (; & | < > $ ` or a newline outside quotes) becomes ["sh", "-c",
 * cmd]. NULL for an empty command, an unclosed quote or one over the caps.
 */
static cJSON *split_command(const char *cmd)
{
    if (strlen(cmd) > FIX_CMD_MAX)
        return NULL;
    for (const char *p = cmd; *p; p++) {
        if (strchr(";&|<>$`\n(){}*?~", *p)) {
            cJSON *a = cJSON_CreateArray();
            cJSON_AddItemToArray(a, cJSON_CreateString("sh"));
            cJSON_AddItemToArray(a, cJSON_CreateString("-c"));
            cJSON_AddItemToArray(a, cJSON_CreateString(cmd));
            return a;
        }
    }
    cJSON *a = cJSON_CreateArray();
    char *word = wk_xmalloc(strlen(cmd) + 1);
    size_t n = 0;
    int in_word = 0, words = 0;
    char quote = 0;
    for (const char *p = cmd;; p++) {
        char c = *p;
        if (c == '\0') {
            if (quote)
                goto bad;
            break;
        }
        if (quote) {
            if (c == quote)
                quote = 0;
            else if (c == '\\' && quote == '"' && (p[1] == '"' || p[1] == '\\'))
                word[n++] = *++p;
            else
                word[n++] = c;
            continue;
        }
        if (c == ' ' || c == '\t') {
            if (in_word) {
                word[n] = '\0';
                cJSON_AddItemToArray(a, cJSON_CreateString(word));
                words++;
                n = 0;
                in_word = 0;
            }
            continue;
        }
        in_word = 1;
        if (c == '\'' || c == '"')
            quote = c;
        else if (c == '\\' && p[1])
            word[n++] = *++p;
        else
            word[n++] = c;
    }
    if (in_word) {
        word[n] = '\0';
        cJSON_AddItemToArray(a, cJSON_CreateString(word));
        words++;
    }
    if (words == 0 || words > FIX_ARGV_MAX)
        goto bad;
    free(word);
    return a;
bad:
    free(word);
    cJSON_Delete(a);
    return NULL;
}

/* The language a test command suggests; NULL when it says nothing clear. */
static const char *guess_language(const cJSON *argv)
{
    static const struct {
        const char *word, *lang;
    } hints[] = {
        {"pytest", "python"},
        {"python", "python"},
        {"python3", "python"},
        {"tox", "python"},
        {"node", "javascript"},
        {"npm", "javascript"},
        {"npx", "javascript"},
        {"yarn", "javascript"},
        {"make", "c"},
        {"gcc", "c"},
        {"cc", "c"},
        {"ctest", "c"},
        {"cargo", "rust"},
        {"go", "go"},
        {"mvn", "java"},
        {"gradle", "java"},
    };
    const cJSON *w;
    cJSON_ArrayForEach(w, argv)
    {
        /* Each word, and each word of an sh -c command, by its last path component. */
        char *copy = wk_xstrdup(w->valuestring);
        const char *found = NULL;
        for (char *tok = strtok(copy, " \t;&|()"); tok && !found; tok = strtok(NULL, " \t;&|()")) {
            const char *base = strrchr(tok, '/') ? strrchr(tok, '/') + 1 : tok;
            for (size_t i = 0; i < sizeof hints / sizeof hints[0] && !found; i++)
                if (strcmp(base, hints[i].word) == 0)
                    found = hints[i].lang;
        }
        free(copy);
        if (found)
            return found;
    }
    return NULL;
}

/* ---- the run ------------------------------------------------------------------- */

static int mkdir_p(const char *path)
{
    char *p = wk_xstrdup(path);
    int rc = 0;
    for (char *s = p + 1; *s && rc == 0; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            rc = -1;
        *s = '/';
    }
    if (rc == 0 && mkdir(p, 0755) != 0 && errno != EEXIST)
        rc = -1;
    free(p);
    return rc;
}

/* A file name for an id (anything but [A-Za-z0-9._-] becomes '_'). */
static char *safe_name(const char *id)
{
    char *s = wk_xstrdup(id);
    for (char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || (*p == '.' && p != s)))
            *p = '_';
    return s;
}

/* The result line for id in the results file; NULL when there is none. */
static cJSON *find_result(const char *path, const char *id)
{
    char *text = NULL;
    size_t len = 0;
    cJSON *found = NULL;
    if (wk_read_file(path, (size_t)64 << 20, &text, &len) != 0)
        return NULL;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const char *jid = wk_jstr(j, "id");
        if (jid && strcmp(jid, id) == 0) {
            cJSON_Delete(found);
            found = j; /* the last one wins */
        } else {
            cJSON_Delete(j);
        }
    }
    free(text);
    return found;
}

/* Prints what became of the task; returns the exit status. */
static int report(const cJSON *r, const char *results_path)
{
    const char *status = wk_jstr(r, "status");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "patch");
    printf("status=%s\n", status ? status : "?");
    if (status && strcmp(status, "accepted") == 0 && cJSON_IsObject(p)) {
        const cJSON *cost = cJSON_GetObjectItemCaseSensitive(r, "cost_usd");
        const cJSON *tier = cJSON_GetObjectItemCaseSensitive(r, "tier");
        printf("branch=%s\ncommit=%s\npatch=%s\ntier=%d\nmodel=%s\ncost_usd=%.6f\n",
               wk_jstr(p, "branch"), wk_jstr(p, "commit"),
               wk_jstr(p, "file") ? wk_jstr(p, "file") : "", tier ? tier->valueint : -1,
               wk_jstr(r, "model") ? wk_jstr(r, "model") : "?", cost ? cost->valuedouble : 0);
        fprintf(stderr,
                "cascade fix: committed %.12s on branch %s (tier %d, %s, $%.6f)\n"
                "  review:  git show %s\n  patch:   %s\n",
                wk_jstr(p, "commit"), wk_jstr(p, "branch"), tier ? tier->valueint : -1,
                wk_jstr(r, "model") ? wk_jstr(r, "model") : "?", cost ? cost->valuedouble : 0,
                wk_jstr(p, "branch"), wk_jstr(p, "file") ? wk_jstr(p, "file") : "(none)");
        return WK_EXIT_OK;
    }
    const char *reason = wk_jstr(r, "reason");
    fprintf(stderr, "cascade fix: no fix committed: %s%s%s (the result line is in %s)\n",
            status ? status : "?", reason ? ": " : "", reason ? reason : "", results_path);
    return WK_EXIT_FAIL;
}

int wk_cmd_fix(int argc, char **argv)
{
    wk_run_opts o;
    wk_run_opts_default(&o);
    o.test_timeout_ms = 60000;
    o.concurrency = 1;
    o.commit.enabled = 1;
    const char *repo = ".", *test_cmd = NULL, *instruction = NULL, *base = "HEAD";
    const char *language = NULL, *id_opt = NULL, *state_opt = NULL;
    char *author_name = NULL, *author_email = NULL;
    char *repo_abs = NULL, *id = NULL, *state = NULL, *task_path = NULL, *results = NULL;
    char *line = NULL, *name = NULL;
    cJSON *task = NULL, *argvj = NULL, *res = NULL;
    int fresh = 0, code = WK_EXIT_USAGE;
    enum { O_REPO = 256, O_TESTCMD, O_INSTR, O_BASE, O_LANG, O_ID, O_STATE, O_FRESH };
    static const struct option opts[] = {
        {"repo", required_argument, NULL, O_REPO},
        {"test-cmd", required_argument, NULL, O_TESTCMD},
        {"instruction", required_argument, NULL, O_INSTR},
        {"base", required_argument, NULL, O_BASE},
        {"language", required_argument, NULL, O_LANG},
        {"cascades", required_argument, NULL, WK_OPT_CASCADES},
        {"models", required_argument, NULL, WK_OPT_MODELS},
        {"cascade", required_argument, NULL, WK_OPT_CASCADE},
        {"id", required_argument, NULL, O_ID},
        {"state-dir", required_argument, NULL, O_STATE},
        {"patch-dir", required_argument, NULL, WK_OPT_PATCHDIR},
        {"branch-prefix", required_argument, NULL, WK_OPT_BRANCHPFX},
        {"force-branch", no_argument, NULL, WK_OPT_FORCEBRANCH},
        {"author", required_argument, NULL, WK_OPT_AUTHOR},
        {"budget", required_argument, NULL, WK_OPT_BUDGET},
        {"test-timeout", required_argument, NULL, WK_OPT_TTIMEOUT},
        {"fresh", no_argument, NULL, O_FRESH},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int shared = wk_cli_run_opt(c, optarg, &o, &author_name, &author_email);
        if (shared < 0)
            goto bad;
        if (shared)
            continue;
        switch (c) {
        case O_REPO:
            repo = optarg;
            break;
        case O_TESTCMD:
            test_cmd = optarg;
            break;
        case O_INSTR:
            instruction = optarg;
            break;
        case O_BASE:
            base = optarg;
            break;
        case O_LANG:
            language = optarg;
            break;
        case O_ID:
            id_opt = optarg;
            break;
        case O_STATE:
            state_opt = optarg;
            break;
        case O_FRESH:
            fresh = 1;
            break;
        case 'h':
            fputs(usage_fix, stdout);
            code = WK_EXIT_OK;
            goto done;
        default:
            fputs(usage_fix, stderr);
            goto done;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "cascade fix: unexpected argument \"%s\"\n\n%s", argv[optind], usage_fix);
        goto done;
    }
    if (!test_cmd) {
        fprintf(stderr, "cascade fix: --test-cmd is required\n\n%s", usage_fix);
        goto done;
    }
    argvj = split_command(test_cmd);
    if (!argvj) {
        fprintf(stderr,
                "cascade fix: --test-cmd \"%s\" is empty, has an unclosed quote or is "
                "too long\n",
                test_cmd);
        goto done;
    }
    if (!language)
        language = guess_language(argvj);
    if (!language) {
        fprintf(stderr, "cascade fix: cannot tell the language from --test-cmd; give "
                        "--language\n");
        goto done;
    }

    /* From here on a failure is the run's, not the command line's. */
    code = WK_EXIT_FAIL;
    char sha[41], gitdir[4096], err[512];
    repo_abs = realpath(repo, NULL);
    if (!repo_abs) {
        fprintf(stderr, "cascade fix: --repo %s: %s\n", repo, strerror(errno));
        goto done;
    }
    if (vcs_resolve(repo_abs, base, sha, gitdir, sizeof gitdir, err, sizeof err) < 0) {
        fprintf(stderr, "cascade fix: not a git repository or no such revision: %s\n", err);
        goto done;
    }
    id = id_opt ? wk_xstrdup(id_opt) : wk_xasprintf("fix-%.12s", sha);
    name = safe_name(id);
    state = state_opt ? wk_xstrdup(state_opt) : wk_xasprintf("%scascade", gitdir);
    if (mkdir_p(state) != 0) {
        fprintf(stderr, "cascade fix: cannot make %s: %s\n", state, strerror(errno));
        goto done;
    }
    if (!o.commit.patch_dir)
        o.commit.patch_dir = state;
    task_path = wk_xasprintf("%s/%s.task.jsonl", state, name);
    results = wk_xasprintf("%s/%s.results.jsonl", state, name);
    if (fresh) {
        const char *sfx[] = {"", ".journal", ".journal-wal", ".journal-shm"};
        for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
            char *f = wk_xasprintf("%s%s", results, sfx[i]);
            remove(f);
            free(f);
        }
    }

    /* The task: the base pinned to its commit, so a rerun fixes the same tree. */
    task = cJSON_CreateObject();
    cJSON_AddStringToObject(task, "id", id);
    cJSON_AddStringToObject(task, "kind", "patch");
    cJSON_AddStringToObject(task, "language", language);
    cJSON *r = cJSON_AddObjectToObject(task, "repo");
    cJSON_AddStringToObject(r, "path", repo_abs);
    cJSON_AddStringToObject(r, "base", sha);
    if (instruction)
        cJSON_AddStringToObject(task, "prompt", instruction);
    cJSON *t = cJSON_AddObjectToObject(task, "tests");
    cJSON_AddItemToObject(t, "command", argvj);
    argvj = NULL;
    line = cJSON_PrintUnformatted(task);
    FILE *f = fopen(task_path, "w");
    if (!f || fprintf(f, "%s\n", line) < 0 || fclose(f) != 0) {
        fprintf(stderr, "cascade fix: cannot write %s: %s\n", task_path, strerror(errno));
        goto done;
    }
    fprintf(stderr, "cascade fix: task %s on %s at %.12s (%s); state in %s\n", id, repo_abs, sha,
            language, state);
    o.tasks_path = task_path;
    o.out_path = results;
    int rc = wk_run(&o);
    res = find_result(results, id);
    if (!res) {
        fprintf(stderr, "cascade fix: the run ended (status %d) without a result for %s\n", rc, id);
        goto done;
    }
    code = report(res, results);
    goto done;
bad:
    for (const struct option *p = opts; p->name; p++)
        if (p->val == c)
            fprintf(stderr, "cascade fix: bad value \"%s\" for --%s\n", optarg, p->name);
    code = WK_EXIT_USAGE;
done:
    cJSON_Delete(res);
    cJSON_Delete(task);
    cJSON_Delete(argvj);
    free(line);
    free(name);
    free(results);
    free(task_path);
    free(state);
    free(id);
    free(repo_abs);
    free(author_name);
    free(author_email);
    return code;
}
