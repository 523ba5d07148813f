/*
 * The stream in front of stderr (see log.h): a glibc cookie stream that
 * gathers bytes into lines and writes each whole line to the real stderr in
 * the chosen format. A line longer than LINE_MAX_BYTES is written in pieces.
 */
#include "log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "lib/util.h"

#define LINE_MAX_BYTES 65536

static struct {
    int json, color, set_up;
    wk_log_level level;
    FILE *term; /* the real stderr */
    char line[LINE_MAX_BYTES];
    size_t n;
} lg;

static int has_word(const char *s, size_t n, const char *w)
{
    size_t wl = strlen(w);
    for (size_t i = 0; i + wl <= n; i++)
        if (strncasecmp(s + i, w, wl) == 0)
            return 1;
    return 0;
}

wk_log_level wk_log_level_of(const char *line)
{
    /* The words are looked for near the start: a quoted answer later on does not count. */
    size_t n = strnlen(line, 96);
    if (has_word(line, n, "warning"))
        return WK_LOG_WARN;
    if (has_word(line, n, "cannot") || has_word(line, n, "error:") || has_word(line, n, "failed") ||
        has_word(line, n, "unknown"))
        return WK_LOG_ERROR;
    return WK_LOG_INFO;
}

static const char *level_name(wk_log_level l)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    return names[l];
}

static void emit(const char *line, size_t n)
{
    char *text = wk_xstrndup(line, n);
    wk_log_level l = wk_log_level_of(text);
    if (l > lg.level) {
        free(text);
        return;
    }
    if (lg.json) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        struct tm tm;
        gmtime_r(&tv.tv_sec, &tm);
        char ts[64];
        size_t k = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ts + k, sizeof ts - k, ".%03dZ", (int)(tv.tv_usec / 1000));
        const char *msg = strncmp(text, "cascade: ", 9) == 0 ? text + 9 : text;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "ts", ts);
        cJSON_AddStringToObject(o, "level", level_name(l));
        cJSON_AddStringToObject(o, "msg", msg);
        char *j = cJSON_PrintUnformatted(o);
        if (j) /* cJSON escapes every control character */
            fprintf(lg.term, "%s\n", j);
        free(j);
        cJSON_Delete(o);
    } else {
        /* A terminal takes no control character from a line, whoever wrote it. */
        char *e = wk_escape_ctl(text, n, LINE_MAX_BYTES);
        const char *on = !lg.color           ? ""
                         : l == WK_LOG_ERROR ? "\033[31m"
                         : l == WK_LOG_WARN  ? "\033[33m"
                                             : "";
        fprintf(lg.term, "%s%s%s\n", on, e, *on ? "\033[0m" : "");
        free(e);
    }
    fflush(lg.term);
    free(text);
}

static ssize_t cookie_write(void *c, const char *buf, size_t size)
{
    (void)c;
    for (size_t i = 0; i < size; i++) {
        if (buf[i] == '\n') {
            emit(lg.line, lg.n);
            lg.n = 0;
            continue;
        }
        if (lg.n == sizeof lg.line) {
            emit(lg.line, lg.n);
            lg.n = 0;
        }
        lg.line[lg.n++] = buf[i];
    }
    return (ssize_t)size;
}

static int cookie_close(void *c)
{
    (void)c;
    if (lg.n)
        emit(lg.line, lg.n);
    lg.n = 0;
    return 0;
}

int wk_log_setup(const char *format, const char *level)
{
    static const char *levels[] = {"error", "warn", "info", "debug"};
    int json = 0;
    wk_log_level l = WK_LOG_INFO;
    if (format && strcmp(format, "json") == 0)
        json = 1;
    else if (format && strcmp(format, "text") != 0)
        return -1;
    if (level) {
        int found = 0;
        for (int i = 0; i < 4 && !found; i++)
            if (strcmp(level, levels[i]) == 0) {
                l = (wk_log_level)i;
                found = 1;
            }
        if (!found)
            return -1;
    }
    const char *nc = getenv("NO_COLOR");
    int color = !json && isatty(STDERR_FILENO) && !(nc && *nc);
    if (lg.set_up)
        return 0;
    lg.json = json;
    lg.color = color;
    lg.level = l;
    int fd = dup(STDERR_FILENO);
    FILE *term = fd >= 0 ? fdopen(fd, "w") : NULL;
    cookie_io_functions_t io = {.write = cookie_write, .close = cookie_close};
    FILE *f = term ? fopencookie(NULL, "w", io) : NULL;
    if (!f) {
        if (term)
            fclose(term);
        return 0; /* left as it was: plain lines are better than none */
    }
    setvbuf(f, NULL, _IOLBF, 0);
    lg.term = term;
    lg.set_up = 1;
    stderr = f;
    return 0;
}

int wk_log_json(void)
{
    return lg.json;
}

FILE *wk_log_term(void)
{
    return lg.set_up ? lg.term : stderr;
}
