/*
 * Parsing option values, shared by every subcommand, so "--timeout 1.5x" is
 * refused the same way everywhere.
 */
#include "cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "lib/util.h"
#include "worker/run.h"
#include "worker/similar.h"
#include "worker/sinks/commit.h"

int wk_cli_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int wk_cli_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

int wk_cli_secs(const char *s, double lo, double hi, long *ms)
{
    double v;
    if (wk_cli_double(s, lo, hi, &v))
        return -1;
    *ms = (long)(v * 1000 + 0.5);
    return 0;
}

int wk_cli_json_object(const char *cmd, const char *path, cJSON **out)
{
    char *text = NULL;
    size_t len = 0;
    *out = NULL;
    int rc = wk_read_file(path, 4u << 20, &text, &len);
    if (rc) {
        fprintf(stderr, "cascade %s: cannot read %s (%s)\n", cmd, path, wk_strerror(rc));
        return rc;
    }
    *out = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(*out)) {
        fprintf(stderr, "cascade %s: %s is not a JSON object\n", cmd, path);
        cJSON_Delete(*out);
        *out = NULL;
        return WK_EPARSE;
    }
    return 0;
}

int wk_cli_run_opt(int c, const char *arg, struct wk_run_opts *o, char **author_name,
                   char **author_email)
{
    long v;
    switch (c) {
    case WK_OPT_CASCADES:
        o->cascades_dir = arg;
        return 1;
    case WK_OPT_MODELS:
        o->models_path = arg;
        return 1;
    case WK_OPT_CASCADE:
        o->cascade_name = arg;
        return 1;
    case WK_OPT_PATCHDIR:
        o->commit.patch_dir = arg;
        return 1;
    case WK_OPT_BRANCHPFX:
        o->commit.branch_prefix = arg;
        return 1;
    case WK_OPT_FORCEBRANCH:
        o->commit.force_branch = 1;
        return 1;
    case WK_OPT_AUTHOR:
        free(*author_name);
        free(*author_email);
        *author_name = *author_email = NULL;
        o->commit.name = o->commit.email = NULL;
        if (wk_commit_parse_author(arg, author_name, author_email))
            return -1;
        o->commit.name = *author_name;
        o->commit.email = *author_email;
        return 1;
    case WK_OPT_BUDGET:
        return wk_cli_double(arg, 1e-12, 1e12, &o->budget_usd) ? -1 : 1;
    case WK_OPT_TTIMEOUT:
        if (wk_cli_secs(arg, 0.001, 3600, &v))
            return -1;
        o->test_timeout_ms = (unsigned)v;
        return 1;
    }
    return 0;
}

int wk_cli_history_opt(int c, const char *arg, struct wk_run_opts *o)
{
    long v;
    switch (c) {
    case WK_OPT_HISTORY_MAX:
        if (wk_cli_long(arg, 1, WK_SIMILAR_CAP_MAX, &v))
            return -1;
        o->history_max = v;
        return 1;
    case WK_OPT_HISTORY_FROM:
        o->history_from = arg;
        return 1;
    }
    return 0;
}
