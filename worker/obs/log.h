/*
 * How `cascade run` writes to stderr (--log-format, --log-level, NO_COLOR).
 * Every message in the code base is a plain "cascade: ..." line written to
 * stderr; rather than change each call, wk_log_setup puts a stream in front
 * of stderr that takes each line as it ends and writes it out as the chosen
 * format asks: as it is, coloured by level on a terminal, or as a JSON line
 * {"ts", "level", "msg"}. A line's level is read from its words ("warning",
 * "cannot", "error", "failed"), as the messages were written for people.
 */
#ifndef WK_LOG_H
#define WK_LOG_H

#include <stdio.h>

typedef enum wk_log_level {
    WK_LOG_ERROR = 0,
    WK_LOG_WARN,
    WK_LOG_INFO,
    WK_LOG_DEBUG,
} wk_log_level;

/*
 * format: "text" or "json" (NULL: text); level: "error", "warn", "info" or
 * "debug" (NULL: info). Colour is used in text on a terminal unless NO_COLOR
 * is set and not empty; in text, control characters in a line are escaped
 * (a task id or an answer quoted in a message cannot drive the terminal).
 * Returns 0, or -1 for a name it does not know. Once per process.
 */
int wk_log_setup(const char *format, const char *level);

/* 1 when lines go out as JSON (the progress line is then never redrawn). */
int wk_log_json(void);

/*
 * The terminal behind stderr, for what is drawn rather than logged (the
 * progress line's carriage returns): stderr itself when nothing was set up.
 */
FILE *wk_log_term(void);

/* The level a line is logged at (exposed for the tests). */
wk_log_level wk_log_level_of(const char *line);

#endif
