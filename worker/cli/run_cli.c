/*
 * `cascade run`: its options and help text. The work is in run.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "lib/util.h"
#include "worker/obs/log.h"
#include "worker/run.h"

static const char usage_run[] =
    "usage: cascade run TASKS.jsonl|- [options]\n"
    "       cascade run --queue redis://HOST:PORT/STREAM --group G --consumer C [options]\n"
    "\n"
    "Reads one task per line (JSON; see README.md), routes each to its cascade\n"
    "(the task's \"cascade\" field, else the first cascade whose \"match\" fits its\n"
    "kind and language), calls the tiers in order and validates every answer.\n"
    "Writes exactly one result line per task line and one escalation line per\n"
    "climb; prints a summary on stderr at the end.\n"
    "\n"
    "options:\n"
    "  --cascades DIR       cascade files (*.json) [cascades]\n"
    "  --models FILE        providers and models [DIR/models.json]\n"
    "  --cascade NAME       use this cascade for every task\n"
    "  --gold FIELD         the task field holding a classify task's gold label [gold]\n"
    "  -o, --output FILE    results JSONL, - for stdout [-]; locked while the run\n"
    "                       lasts, never the tasks file, emptied (without a\n"
    "                       journal) only once the tasks file is open\n"
    "  --escalations FILE   escalation log JSONL [none]\n"
    "  --concurrency N      tasks in flight at once [64]\n"
    "  --sandboxes N        sandboxed test runs at once [number of CPUs]\n"
    "  --budget USD         run budget: each call reserves its worst case first;\n"
    "                       when one cannot, the run takes no more tasks [none]\n"
    "  --retries N          retries of a call on one deployment after a connect\n"
    "                       error, timeout, 408, 409, 429, 5xx or 529: backoff\n"
    "                       0.5 s doubling to 8 s less up to 25% jitter, never\n"
    "                       sooner than Retry-After; then the model's fallbacks [3]\n"
    "  --max-wait SEC       the longest a call is held for a provider that is out\n"
    "                       (circuit breaker open) or paused (rate-limit headers,\n"
    "                       Retry-After); then its fallbacks, else the task ends\n"
    "                       error and a rerun runs it again. Pauses and resets\n"
    "                       asked for are capped by it [60]\n"
    "  --timeout SEC        whole-request timeout of one call [300]\n"
    "  --first-byte-timeout SEC  until the response starts [120]\n"
    "  --connect-timeout SEC  connect timeout [10]\n"
    "  --response-cap MIB   largest response body accepted [8]\n"
    "  --test-timeout SEC   wall-clock limit of one sandboxed test run [10]\n"
    "  --max-repo-mb N      patch tasks: largest tree at base [100]\n"
    "  --max-patch-kb N     patch tasks: largest diff accepted (too_big) [256]\n"
    "  --max-test-output-kb N  test output in the prompt, tail kept [16]\n"
    "  --max-file-kb N      each file shown in the prompt [32]\n"
    "  --max-prompt-files N files shown in the prompt [8]\n"
    "  --max-file-list N    paths in the prompt's file list [200]\n" WK_CLI_LANE_USAGE
        WK_CLI_HISTORY_USAGE
    "  --journal FILE|none  SQLite journal of every attempt, for resuming after a\n"
    "                       crash or a stop; one run at a time holds it (a second\n"
    "                       exits 1) [RESULTS.journal when -o names a file]\n"
    "  --cache FILE         response cache (SQLite): a request sent before, at the\n"
    "                       same attempt of its task, is answered from it at no\n"
    "                       cost (a retry after a failed answer is not) [none]\n"
    "  --grace SEC          after SIGINT/SIGTERM, time for tasks in flight [30]\n"
    "  --queue URL          read tasks from a Redis Stream (redis://HOST:PORT/STREAM)\n"
    "                       through a consumer group; results go to STREAM:results\n"
    "  --group G, --consumer C  the consumer group and this worker's name\n"
    "  --lease SEC          entries idle this long are claimed from dead workers [60]\n"
    "  --max-deliveries N   then an entry goes to STREAM:dead [5]\n"
    "  --drain              stop when the stream has nothing left for us\n"
    "  --progress-interval SEC  off a terminal, a progress line this often; 0:\n"
    "                       none (on a terminal one line is redrawn in place) [60]\n"
    "  --metrics-addr HOST:PORT  serve Prometheus metrics at /metrics while the\n"
    "                       run lasts (port 0: any free port, named on stderr)\n"
    "  --log-format text|json  stderr as text (colour on a terminal unless NO_COLOR\n"
    "                       is set) or one JSON object a line: ts, level, msg [text]\n"
    "  --log-level L        error, warn, info or debug: lines below L are dropped [info]\n"
    "  -q, --quiet          no progress line, no summary\n"
    "  -h, --help           this text\n"
    "\n"
    "patch tasks (an accepted patch becomes a commit; README \"The CI bot\"):\n"
    "  --patch-dir DIR      where <task id>.patch goes [the results file's directory;\n"
    "                       none when results go to stdout]\n"
    "  --branch-prefix P    the commit's branch is P<task id> [cascade/]\n"
    "  --force-branch       move a branch that exists instead of adding -2, -3\n"
    "  --author \"N <E>\"    author and committer [cascade <cascade@localhost>]\n"
    "\n"
    "API keys are read from the variables the models file names (key_env);\n"
    "an unset one stops the run before any call. Models files may use ${VAR}.\n"
    "\n"
    "A rerun with the same results file (and so the same journal) resumes: tasks\n"
    "with a result line are skipped, answers already received are not paid for\n"
    "again, and the results file is appended to. Tasks that ended error because\n"
    "every call failed on a transient condition (outage, timeout, 429, 5xx,\n"
    "spend limit) are run again, their old line taken out.\n"
    "\n"
    "exit status: 0 all tasks have results; 1 startup or output error;\n"
    "2 usage error; 3 stopped (signal, grace period or run budget) before the\n"
    "input was done; 128+N a second signal N.\n";

/* 1 when a and b name one existing file (or the same path). */
static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    if (!a || !b || strcmp(a, "-") == 0 || strcmp(b, "-") == 0)
        return 0;
    if (strcmp(a, b) == 0)
        return 1;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/*
 * Output paths that would overwrite an input or each other are refused
 * before anything is opened: `-o tasks.jsonl` would empty the tasks.
 */
static int check_paths(const wk_run_opts *o)
{
    const char *outs[] = {o->out_path, o->esc_path, o->journal_path, o->cache_path};
    const char *names[] = {"-o", "--escalations", "--journal", "--cache"};
    for (int i = 0; i < 4; i++) {
        if (!outs[i] || (i == 2 && strcmp(outs[i], "none") == 0))
            continue;
        if (!o->queue_url && same_file(outs[i], o->tasks_path)) {
            fprintf(stderr, "cascade run: %s %s names the tasks file; refusing to overwrite it\n",
                    names[i], outs[i]);
            return WK_EXIT_USAGE;
        }
        for (int k = 0; k < i; k++)
            if (outs[k] && same_file(outs[i], outs[k])) {
                fprintf(stderr, "cascade run: %s and %s name the same file %s\n", names[k],
                        names[i], outs[i]);
                return WK_EXIT_USAGE;
            }
    }
    return 0;
}

int wk_cmd_run(int argc, char **argv)
{
    wk_run_opts o;
    wk_run_opts_default(&o);
    enum {
        O_GOLD = 256,
        O_ESC,
        O_CONC,
        O_SANDBOXES,
        O_RETRIES,
        O_TIMEOUT,
        O_CTIMEOUT,
        O_FBTIMEOUT,
        O_MAXWAIT,
        O_RESPCAP,
        O_JOURNAL,
        O_CACHE,
        O_GRACE,
        O_QUEUE,
        O_GROUP,
        O_CONSUMER,
        O_LEASE,
        O_MAXDEL,
        O_DRAIN,
        O_MAXREPO,
        O_MAXPATCH,
        O_MAXTOUT,
        O_MAXFILE,
        O_MAXPFILES,
        O_MAXLIST,
        O_PROGRESS,
        O_METRICS,
        O_LOGFMT,
        O_LOGLEVEL
    };
    static const struct option opts[] = {
        {"cascades", required_argument, NULL, WK_OPT_CASCADES},
        {"models", required_argument, NULL, WK_OPT_MODELS},
        {"cascade", required_argument, NULL, WK_OPT_CASCADE},
        {"gold", required_argument, NULL, O_GOLD},
        {"output", required_argument, NULL, 'o'},
        {"escalations", required_argument, NULL, O_ESC},
        {"concurrency", required_argument, NULL, O_CONC},
        {"sandboxes", required_argument, NULL, O_SANDBOXES},
        {"retries", required_argument, NULL, O_RETRIES},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
        {"test-timeout", required_argument, NULL, WK_OPT_TTIMEOUT},
        {"first-byte-timeout", required_argument, NULL, O_FBTIMEOUT},
        {"budget", required_argument, NULL, WK_OPT_BUDGET},
        {"max-wait", required_argument, NULL, O_MAXWAIT},
        {"response-cap", required_argument, NULL, O_RESPCAP},
        {"journal", required_argument, NULL, O_JOURNAL},
        {"cache", required_argument, NULL, O_CACHE},
        {"grace", required_argument, NULL, O_GRACE},
        {"queue", required_argument, NULL, O_QUEUE},
        {"group", required_argument, NULL, O_GROUP},
        {"consumer", required_argument, NULL, O_CONSUMER},
        {"lease", required_argument, NULL, O_LEASE},
        {"max-deliveries", required_argument, NULL, O_MAXDEL},
        {"drain", no_argument, NULL, O_DRAIN},
        {"max-repo-mb", required_argument, NULL, O_MAXREPO},
        {"max-patch-kb", required_argument, NULL, O_MAXPATCH},
        {"max-test-output-kb", required_argument, NULL, O_MAXTOUT},
        {"max-file-kb", required_argument, NULL, O_MAXFILE},
        {"max-prompt-files", required_argument, NULL, O_MAXPFILES},
        {"max-file-list", required_argument, NULL, O_MAXLIST},
        {"patch-dir", required_argument, NULL, WK_OPT_PATCHDIR},
        {"branch-prefix", required_argument, NULL, WK_OPT_BRANCHPFX},
        {"force-branch", no_argument, NULL, WK_OPT_FORCEBRANCH},
        {"author", required_argument, NULL, WK_OPT_AUTHOR},
        {"progress-interval", required_argument, NULL, O_PROGRESS},
        {"metrics-addr", required_argument, NULL, O_METRICS},
        {"log-format", required_argument, NULL, O_LOGFMT},
        {"log-level", required_argument, NULL, O_LOGLEVEL},
        WK_CLI_LANE_OPTIONS,
        WK_CLI_HISTORY_OPTIONS,
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    long v;
    char *author_name = NULL, *author_email = NULL, *out_dir = NULL;
    const char *log_format = NULL, *log_level = NULL;
    int code;
    o.commit.enabled = 1;
    o.progress_ms = 60000;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        int shared = wk_cli_run_opt(c, optarg, &o, &author_name, &author_email);
        if (shared < 0)
            goto bad;
        if (shared)
            continue;
        int lane = wk_cli_lane_opt(c, optarg, &o);
        if (lane < 0)
            goto bad;
        if (lane)
            continue;
        int hist = wk_cli_history_opt(c, optarg, &o);
        if (hist < 0)
            goto bad;
        if (hist)
            continue;
        switch (c) {
        case O_GOLD:
            o.gold_field = optarg;
            break;
        case 'o':
            o.out_path = optarg;
            break;
        case O_ESC:
            o.esc_path = optarg;
            break;
        case O_CONC:
            if (wk_cli_long(optarg, 1, 100000, &v))
                goto bad;
            o.concurrency = (int)v;
            break;
        case O_SANDBOXES:
            if (wk_cli_long(optarg, 1, 1024, &v))
                goto bad;
            o.max_sandboxes = (int)v;
            break;
        case O_RETRIES:
            if (wk_cli_long(optarg, 0, 100, &v))
                goto bad;
            o.max_retries = (int)v;
            break;
        case O_TIMEOUT:
            if (wk_cli_secs(optarg, 0.001, 86400, &o.timeout_ms))
                goto bad;
            break;
        case O_CTIMEOUT:
            if (wk_cli_secs(optarg, 0.001, 3600, &o.connect_timeout_ms))
                goto bad;
            break;
        case O_FBTIMEOUT:
            if (wk_cli_secs(optarg, 0.001, 86400, &o.first_byte_timeout_ms))
                goto bad;
            break;
        case O_JOURNAL:
            o.journal_path = optarg;
            break;
        case O_CACHE:
            o.cache_path = optarg;
            break;
        case O_QUEUE:
            o.queue_url = optarg;
            break;
        case O_GROUP:
            o.group = optarg;
            break;
        case O_CONSUMER:
            o.consumer = optarg;
            break;
        case O_DRAIN:
            o.drain = 1;
            break;
        /* Patch tasks' caps (README "Patch tasks"). */
        case O_MAXREPO:
            if (wk_cli_long(optarg, 1, 1 << 20, &v))
                goto bad;
            o.patch.max_repo_mb = (unsigned long)v;
            break;
        case O_MAXPATCH:
            if (wk_cli_long(optarg, 1, 1024, &v))
                goto bad;
            o.patch.max_patch_kb = (unsigned long)v;
            break;
        case O_MAXTOUT:
            if (wk_cli_long(optarg, 1, 4096, &v))
                goto bad;
            o.patch.max_test_output_kb = (unsigned long)v;
            break;
        case O_MAXFILE:
            if (wk_cli_long(optarg, 1, 4096, &v))
                goto bad;
            o.patch.max_file_kb = (unsigned long)v;
            break;
        case O_MAXPFILES:
            if (wk_cli_long(optarg, 0, 1000, &v))
                goto bad;
            o.patch.max_files = (int)v;
            break;
        case O_MAXLIST:
            if (wk_cli_long(optarg, 0, 100000, &v))
                goto bad;
            o.patch.max_list = (int)v;
            break;
        case O_GRACE:
            if (wk_cli_secs(optarg, 0, 86400, &o.grace_ms))
                goto bad;
            break;
        case O_LEASE:
            if (wk_cli_secs(optarg, 0.001, 86400, &o.lease_ms))
                goto bad;
            break;
        case O_MAXDEL:
            if (wk_cli_long(optarg, 1, 1000, &v))
                goto bad;
            o.max_deliveries = (int)v;
            break;
        case O_RESPCAP:
            if (wk_cli_long(optarg, 1, 4096, &v))
                goto bad;
            o.body_cap = (unsigned long)v << 20;
            break;
        case O_MAXWAIT:
            if (wk_cli_secs(optarg, 0, 86400, &o.max_wait_ms))
                goto bad;
            break;
        case O_PROGRESS:
            if (wk_cli_secs(optarg, 0, 86400, &o.progress_ms))
                goto bad;
            break;
        case O_METRICS:
            o.metrics_addr = optarg;
            break;
        case O_LOGFMT:
            if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0)
                goto bad;
            log_format = optarg;
            break;
        case O_LOGLEVEL:
            if (strcmp(optarg, "error") != 0 && strcmp(optarg, "warn") != 0 &&
                strcmp(optarg, "info") != 0 && strcmp(optarg, "debug") != 0)
                goto bad;
            log_level = optarg;
            break;
        case 'q':
            o.quiet = 1;
            break;
        case 'h':
            fputs(usage_run, stdout);
            code = 0;
            goto done;
        default:
            fputs(usage_run, stderr);
            code = WK_EXIT_USAGE;
            goto done;
        }
    }
    if (o.queue_url) {
        if (optind != argc || !o.group || !o.consumer) {
            fprintf(stderr, "cascade run: with --queue, give --group and --consumer and no "
                            "tasks file\n");
            code = WK_EXIT_USAGE;
            goto done;
        }
        o.tasks_path = o.queue_url;
    } else if (optind != argc - 1) {
        fprintf(stderr, "cascade run: give exactly one tasks file (or - for stdin)\n\n%s",
                usage_run);
        code = WK_EXIT_USAGE;
        goto done;
    } else {
        o.tasks_path = argv[optind];
    }
    code = check_paths(&o);
    if (code)
        goto done;
    wk_log_setup(log_format, log_level);
    /* On a terminal the line is redrawn in place (not in JSON); --quiet silences both kinds. */
    o.progress_tty = !o.quiet && !wk_log_json() && isatty(STDERR_FILENO);
    if (o.quiet)
        o.progress_ms = 0;
    /* The patch files go beside the results file unless told otherwise. */
    if (!o.commit.patch_dir && o.out_path && strcmp(o.out_path, "-") != 0) {
        const char *slash = strrchr(o.out_path, '/');
        out_dir =
            slash ? wk_xstrndup(o.out_path, (size_t)(slash - o.out_path) + (slash == o.out_path))
                  : wk_xstrdup(".");
        o.commit.patch_dir = out_dir;
    }
    code = wk_run(&o);
    goto done;
bad:
    for (const struct option *p = opts; p->name; p++)
        if (p->val == c)
            fprintf(stderr, "cascade run: bad value \"%s\" for --%s\n", optarg, p->name);
    code = WK_EXIT_USAGE;
done:
    free(author_name);
    free(author_email);
    free(out_dir);
    return code;
}
