/*
 * The progress line (see obs.h). On a terminal, one line on stderr redrawn in
 * place at most 10 times a second, cut to the terminal's width so it never
 * wraps (a wrapped line cannot be redrawn with a carriage return); off a
 * terminal, a plain line every progress_ms, for a log file or journald.
 */
#include "monitor_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "lib/util.h"
#include "log.h"

#define REDRAW_MS 100

static int columns(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

static void on_tick(uv_timer_t *t)
{
    wk_mon *ob = t->data;
    char *line = wk_mon_progress_line(ob);
    if (ob->o.progress_tty) {
        /* The last column stays empty: some terminals wrap on writing it. */
        size_t w = (size_t)columns() - 1;
        if (strlen(line) > w)
            line[w] = '\0';
        fprintf(wk_log_term(), "\r%s\033[K", line);
        fflush(wk_log_term());
        ob->line_shown = 1;
    } else {
        fprintf(stderr, "%s\n", line);
        fflush(stderr);
    }
    free(line);
}

void wk__progress_start(wk_mon *ob)
{
    long every = ob->o.progress_tty ? REDRAW_MS : ob->o.progress_ms;
    if (every <= 0)
        return;
    uv_timer_init(ob->loop, &ob->timer);
    ob->timer.data = ob;
    ob->timer_on = 1;
    uv_timer_start(&ob->timer, on_tick, (uint64_t)every, (uint64_t)every);
    /* The timer alone must not keep a finished run's loop alive. */
    uv_unref((uv_handle_t *)&ob->timer);
}

void wk__progress_stop(wk_mon *ob)
{
    if (!ob->timer_on)
        return;
    ob->timer_on = 0;
    uv_close((uv_handle_t *)&ob->timer, NULL);
    wk_mon_clear_line(ob);
}

void wk_mon_clear_line(wk_mon *ob)
{
    if (!ob || !ob->line_shown)
        return;
    fputs("\r\033[K", wk_log_term());
    fflush(wk_log_term());
    ob->line_shown = 0;
}
