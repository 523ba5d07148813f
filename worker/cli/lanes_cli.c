/*
 * The lane options of `cascade run` (see cli.h): flex timeouts and the
 * batch lane's size, linger and polling.
 */
#include "cli.h"
#include "worker/run.h"

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
    case WK_OPT_BATCH_POLL:
        return wk_cli_secs(arg, 0.001, 86400, &o->batch_poll_ms) ? -1 : 1;
    default:
        return 0;
    }
}
