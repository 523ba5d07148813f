/*
 * `cascade report`: its options and help text. The work is in report.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "worker/eval/drift.h"
#include "worker/eval/report.h"

static const char usage_report[] =
    "usage: cascade report RESULTS.jsonl... [options]\n"
    "\n"
    "Reads result lines (from `run` or `replay`) and prints, per cascade, tier and\n"
    "task kind: accepted, pass rate, cost, cost per solved task, the reasons\n"
    "attempts failed (top 10, from their verdicts) and the saving against sending\n"
    "every task to the cascade's top tier alone (priced as run's summary does).\n"
    "\n"
    "options:\n"
    "  --models FILE        models file: the top tier's real prices\n"
    "  --cascades DIR|FILE  cascade files: each cascade's real top tier\n"
    "                       (without both, the top tier is the highest tier in the\n"
    "                       results and its prices are inferred from its attempts'\n"
    "                       costs and tokens; the report says so)\n"
    "  --tasks FILE         tasks JSONL, for task kinds [the cascade's match.kind]\n"
    "  --table FILE         an eval table (replay --table) for the cost against pass\n"
    "                       rate chart: single models, cascades and the oracle\n"
    "  --html FILE          also write one self-contained HTML page with SVG charts\n"
    "                       (with the pass rate over time per model when the results\n"
    "                       span two windows; drifts ringed, as `cascade drift` finds)\n"
    "  --window SPEC        those windows: 30m, 12h, 1d, 2w, or N trials [1d]\n"
    "  -q, --quiet          no text report\n"
    "  -h, --help           this text\n";

int wk_cmd_report(int argc, char **argv)
{
    enum { O_MODELS = 256, O_CASCADES, O_TASKS, O_TABLE, O_HTML, O_WINDOW };
    static const struct option opts[] = {
        {"models", required_argument, NULL, O_MODELS},
        {"cascades", required_argument, NULL, O_CASCADES},
        {"tasks", required_argument, NULL, O_TASKS},
        {"table", required_argument, NULL, O_TABLE},
        {"html", required_argument, NULL, O_HTML},
        {"window", required_argument, NULL, O_WINDOW},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *models = NULL, *cascades = NULL, *tasks = NULL, *table = NULL, *html = NULL;
    int64_t window_ms = 86400000;
    long window_n = 0;
    int quiet = 0, c, code = WK_EXIT_FAIL;
    char err[512];
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
        switch (c) {
        case O_MODELS:
            models = optarg;
            break;
        case O_CASCADES:
            cascades = optarg;
            break;
        case O_TASKS:
            tasks = optarg;
            break;
        case O_TABLE:
            table = optarg;
            break;
        case O_HTML:
            html = optarg;
            break;
        case O_WINDOW:
            if (wk_drift_parse_window(optarg, &window_ms, &window_n)) {
                fprintf(stderr, "cascade report: --window: a time (30m, 12h, 1d, 2w) or a "
                                "whole number of trials\n");
                return WK_EXIT_USAGE;
            }
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            fputs(usage_report, stdout);
            return 0;
        default:
            fputs(usage_report, stderr);
            return WK_EXIT_USAGE;
        }
    }
    if (optind >= argc || (!models != !cascades)) {
        fprintf(stderr, "cascade report: %s\n\n%s",
                optind >= argc ? "give at least one results file"
                               : "--models and --cascades go together",
                usage_report);
        return WK_EXIT_USAGE;
    }
    wk_report *r = wk_report_new();
    wk_report_drift_window(r, window_ms, window_n);
    for (int i = optind; i < argc; i++)
        if (wk_report_add_results(r, argv[i], err, sizeof err) != 0)
            goto fail;
    if (models && wk_report_set_config(r, models, cascades, err, sizeof err) != 0)
        goto fail;
    if (tasks && wk_report_add_tasks(r, tasks, err, sizeof err) != 0)
        goto fail;
    if (table && wk_report_add_table(r, table, err, sizeof err) != 0)
        goto fail;
    if (!quiet)
        wk_report_text(r, stdout);
    if (html && wk_report_html(r, html, err, sizeof err) != 0)
        goto fail;
    code = WK_EXIT_OK;
    goto cleanup;
fail:
    fprintf(stderr, "cascade report: %s\n", err);
cleanup:
    wk_report_free(r);
    return code;
}
