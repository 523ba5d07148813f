/*
 * The lane options of `cascade run` (see cli.h): flex timeouts and the
 * batch lane's size, linger and polling.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "worker/run.h"

/* "90", "90s", "30m", "2h" as ms; 0 or -1. */
static int duration(const char *s, long *ms)
{
    char *end;
    double v = strtod(s, &end);
    double unit = !*end || !strcmp(end, "s") ? 1
                  : !strcmp(end, "m")        ? 60
                  : !strcmp(end, "h")        ? 3600
                                             : -1;
    if (end == s || unit < 0 || !(v > 0) || v * unit > 30 * 86400)
        return -1;
    *ms = (long)(v * unit * 1000);
    return 0;
}

int wk_cli_lane_opt(int c, const char *arg, struct wk_run_opts *o)
{
    long v;
    switch (c) {
    case WK_OPT_FLEX_TIMEOUT:
        return wk_cli_secs(arg, 0.001, 86400, &o->flex_timeout_ms) ? -1 : 1;
    case WK_OPT_FLEX_MAX_WAIT:
        return wk_cli_secs(arg, 0, 86400, &o->flex_max_wait_ms) ? -1 : 1;
    case WK_OPT_BATCH_MAX:
        if (wk_cli_long(arg, 1, 1000000, &v))
            return -1;
        o->batch_max = v;
        return 1;
    case WK_OPT_BATCH_LINGER:
        return wk_cli_secs(arg, 0, 86400, &o->batch_linger_ms) ? -1 : 1;
    case WK_OPT_DEADLINE:
        return duration(arg, &o->deadline_ms) ? -1 : 1;
    case WK_OPT_BATCH_POLL:
        return wk_cli_secs(arg, 0.001, 86400, &o->batch_poll_ms) ? -1 : 1;
    default:
        return 0;
    }
}
