/*
 * `cascade run`: its options and help text. The work is in run.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "run.h"

static const char usage_run[] =
    "usage: cascade run TASKS.jsonl|- [options]\n"
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
    "  -o, --output FILE    results JSONL, - for stdout [-]\n"
    "  --escalations FILE   escalation log JSONL [none]\n"
    "  --concurrency N      tasks in flight at once [64]\n"
    "  --sandboxes N        sandboxed test runs at once [number of CPUs]\n"
    "  --budget USD         run budget: each call reserves its worst case first;\n"
    "                       when one cannot, the run takes no more tasks [none]\n"
    "  --retries N          retries of a call on one deployment after a connect\n"
    "                       error, timeout, 408, 409, 429, 5xx or 529: backoff\n"
    "                       0.5 s doubling to 8 s less up to 25% jitter, never\n"
    "                       sooner than Retry-After; then the model's fallbacks [3]\n"
    "  --max-wait SEC       a longer Retry-After takes the deployment out of\n"
    "                       service for that long instead of holding tasks [60]\n"
    "  --timeout SEC        whole-request timeout of one call [300]\n"
    "  --first-byte-timeout SEC  until the response starts [120]\n"
    "  --connect-timeout SEC  connect timeout [10]\n"
    "  --response-cap MIB   largest response body accepted [8]\n"
    "  --test-timeout SEC   wall-clock limit of one sandboxed test run [10]\n"
    "  -q, --quiet          no summary\n"
    "  -h, --help           this text\n"
    "\n"
    "API keys are read from the variables the models file names (key_env);\n"
    "an unset one stops the run before any call. Models files may use ${VAR}.\n"
    "\n"
    "exit status: 0 all tasks have results; 1 startup or output error;\n"
    "2 usage error; 3 stopped by a signal before the input was done.\n";

/* Seconds, fractions allowed, to milliseconds. */
static int parse_secs(const char *s, double lo, double hi, long *ms)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi))
        return -1;
    *ms = (long)(v * 1000 + 0.5);
    return 0;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int wk_cmd_run(int argc, char **argv)
{
    wk_run_opts o;
    wk_run_opts_default(&o);
    enum { O_CASCADES = 256, O_MODELS, O_CASCADE, O_ESC, O_CONC, O_SANDBOXES, O_RETRIES,
           O_TIMEOUT, O_CTIMEOUT, O_TTIMEOUT, O_FBTIMEOUT, O_BUDGET, O_MAXWAIT, O_RESPCAP };
    static const struct option opts[] = {
        {"cascades", required_argument, NULL, O_CASCADES},
        {"models", required_argument, NULL, O_MODELS},
        {"cascade", required_argument, NULL, O_CASCADE},
        {"output", required_argument, NULL, 'o'},
        {"escalations", required_argument, NULL, O_ESC},
        {"concurrency", required_argument, NULL, O_CONC},
        {"sandboxes", required_argument, NULL, O_SANDBOXES},
        {"retries", required_argument, NULL, O_RETRIES},
        {"timeout", required_argument, NULL, O_TIMEOUT},
        {"connect-timeout", required_argument, NULL, O_CTIMEOUT},
        {"test-timeout", required_argument, NULL, O_TTIMEOUT},
        {"first-byte-timeout", required_argument, NULL, O_FBTIMEOUT},
        {"budget", required_argument, NULL, O_BUDGET},
        {"max-wait", required_argument, NULL, O_MAXWAIT},
        {"response-cap", required_argument, NULL, O_RESPCAP},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    long v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:qh", opts, NULL)) != -1) {
        switch (c) {
        case O_CASCADES: o.cascades_dir = optarg; break;
        case O_MODELS: o.models_path = optarg; break;
        case O_CASCADE: o.cascade_name = optarg; break;
        case 'o': o.out_path = optarg; break;
        case O_ESC: o.esc_path = optarg; break;
        case O_CONC:
            if (parse_int(optarg, 1, 100000, &v))
                goto bad;
            o.concurrency = (int)v;
            break;
        case O_SANDBOXES:
            if (parse_int(optarg, 1, 1024, &v))
                goto bad;
            o.max_sandboxes = (int)v;
            break;
        case O_RETRIES:
            if (parse_int(optarg, 0, 100, &v))
                goto bad;
            o.max_retries = (int)v;
            break;
        case O_TIMEOUT:
            if (parse_secs(optarg, 0.001, 86400, &o.timeout_ms))
                goto bad;
            break;
        case O_CTIMEOUT:
            if (parse_secs(optarg, 0.001, 3600, &o.connect_timeout_ms))
                goto bad;
            break;
        case O_FBTIMEOUT:
            if (parse_secs(optarg, 0.001, 86400, &o.first_byte_timeout_ms))
                goto bad;
            break;
        case O_RESPCAP:
            if (parse_int(optarg, 1, 4096, &v))
                goto bad;
            o.body_cap = (unsigned long)v << 20;
            break;
        case O_MAXWAIT:
            if (parse_secs(optarg, 0, 86400, &o.max_wait_ms))
                goto bad;
            break;
        case O_TTIMEOUT:
            if (parse_secs(optarg, 0.001, 3600, &v))
                goto bad;
            o.test_timeout_ms = (unsigned)v;
            break;
        case O_BUDGET: {
            char *end;
            o.budget_usd = strtod(optarg, &end);
            if (!*optarg || *end || !(o.budget_usd > 0))
                goto bad;
            break;
        }
        case 'q': o.quiet = 1; break;
        case 'h': fputs(usage_run, stdout); return 0;
        default: fputs(usage_run, stderr); return WK_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "cascade run: give exactly one tasks file (or - for stdin)\n\n%s",
                usage_run);
        return WK_EXIT_USAGE;
    }
    o.tasks_path = argv[optind];
    return wk_run(&o);
bad:
    for (const struct option *p = opts; p->name; p++)
        if (p->val == c)
            fprintf(stderr, "cascade run: bad value \"%s\" for --%s\n", optarg, p->name);
    return WK_EXIT_USAGE;
}
