/*
 * `cascade drift`: its options and help text, and reading the results files
 * into eval/drift.h, which does the counting and the test.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "lib/jsonl.h"
#include "lib/util.h"
#include "worker/eval/drift.h"

static const char usage_drift[] =
    "usage: cascade drift RESULTS.jsonl... [options]\n"
    "\n"
    "Reads result lines (from `run`, over days or batches) and prints, per cascade\n"
    "as a whole and per tier and model, each window's pass rate, cost per accepted\n"
    "task and escalation rate, then tests whether the latest window's pass rate\n"
    "differs from the reference's beyond chance (a two-proportion z test; the\n"
    "counts it used are shown). A line's time is its \"ts\"; a line without one\n"
    "takes its file's modification time.\n"
    "\n"
    "options:\n"
    "  --window SPEC        windows of time (30m, 12h, 1d, 2w) or of N trials of\n"
    "                       each group, in the order read (a plain number) [1d]\n"
    "  --reference WHICH    pooled (every window before the latest), first, or\n"
    "                       previous [pooled]\n"
    "  --alpha A            the test's level [0.01]\n"
    "  -h, --help           this text\n"
    "\n"
    "exit status: 0 no drift, 4 drift flagged in some group, 1 an unreadable file,\n"
    "2 a bad command line.\n";

typedef struct load_ctx {
    wk_drift *d;
    int64_t mtime_ms;
    char *err;
    size_t errlen;
} load_ctx;

static int add_line(void *arg, const cJSON *obj, long lineno)
{
    load_ctx *c = arg;
    (void)lineno;
    return wk_drift_add(c->d, obj, c->mtime_ms, c->err, c->errlen);
}

int wk_cmd_drift(int argc, char **argv)
{
    enum { O_WINDOW = 256, O_REFERENCE, O_ALPHA };
    static const struct option opts[] = {
        {"window", required_argument, NULL, O_WINDOW},
        {"reference", required_argument, NULL, O_REFERENCE},
        {"alpha", required_argument, NULL, O_ALPHA},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    wk_drift_opts o = {.window_ms = 86400000, .reference = WK_DRIFT_REF_POOLED, .alpha = 0.01};
    int c, code = WK_EXIT_FAIL;
    char err[512] = "";
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_WINDOW:
            if (wk_drift_parse_window(optarg, &o.window_ms, &o.window_n)) {
                fprintf(stderr,
                        "cascade drift: --window: a time (30m, 12h, 1d, 2w; at least 1m) or a "
                        "whole number of trials\n");
                return WK_EXIT_USAGE;
            }
            break;
        case O_REFERENCE:
            if (strcmp(optarg, "pooled") == 0)
                o.reference = WK_DRIFT_REF_POOLED;
            else if (strcmp(optarg, "first") == 0)
                o.reference = WK_DRIFT_REF_FIRST;
            else if (strcmp(optarg, "previous") == 0)
                o.reference = WK_DRIFT_REF_PREVIOUS;
            else {
                fprintf(stderr, "cascade drift: --reference: pooled, first or previous\n");
                return WK_EXIT_USAGE;
            }
            break;
        case O_ALPHA:
            if (wk_cli_double(optarg, 1e-12, 0.5, &o.alpha)) {
                fprintf(stderr, "cascade drift: --alpha: a number above 0 and at most 0.5\n");
                return WK_EXIT_USAGE;
            }
            break;
        case 'h':
            fputs(usage_drift, stdout);
            return 0;
        default:
            fputs(usage_drift, stderr);
            return WK_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "cascade drift: give at least one results file\n\n%s", usage_drift);
        return WK_EXIT_USAGE;
    }
    wk_drift *d = wk_drift_new(&o);
    for (int i = optind; i < argc; i++) {
        struct stat sb;
        load_ctx lc = {d, (int64_t)wk_now_ms(), err, sizeof err};
        if (strcmp(argv[i], "-") != 0 && stat(argv[i], &sb) == 0)
            lc.mtime_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
        if (wk_jsonl_each(argv[i], add_line, &lc, 0, err, sizeof err) != 0)
            goto fail;
    }
    if (wk_drift_finish(d, err, sizeof err) != 0)
        goto fail;
    wk_drift_print(d, stdout);
    code = wk_drift_flagged(d) ? WK_EXIT_DRIFT : WK_EXIT_OK;
    goto cleanup;
fail:
    fprintf(stderr, "cascade drift: %s\n", err);
cleanup:
    wk_drift_free(d);
    return code;
}
