/*
 * JSONL: the one line reader and the one line cap. Every reader of a JSONL
 * file (results, tasks, recordings, eval cases, the tasks `enqueue` pushes)
 * splits its bytes here, so a line means the same everywhere: the bytes up to
 * a newline (the last line may lack one), and a line longer than the cap is
 * kept cut to the cap and flagged, never allowed to grow a buffer without
 * bound.
 *
 * Three levels: wk_lines splits bytes fed to it (a reader that gets its
 * bytes elsewhere, such as from an event loop, can use it); wk_jsonl_read
 * and wk_jsonl_lines read a stream or a file through it; wk_jsonl_each
 * parses each line as a JSON object.
 */
#ifndef WK_JSONL_H
#define WK_JSONL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

#include "util.h"

/* One line of a JSONL file bigger than this is cut (or, to wk_jsonl_each, an error). */
#define WK_JSONL_LINE_CAP (16u << 20)

/*
 * Called once per line: the line's bytes without the newline (NUL-terminated,
 * borrowed for the call), its length, whether it was cut at the cap, and its
 * 1-based number. A non-zero return stops the reading and is returned.
 */
typedef int (*wk_line_fn)(void *arg, const char *line, size_t len, int cut, long lineno);

typedef struct wk_lines {
    wk_buf line; /* the line being assembled; its cap is the line cap */
    int cut;     /* the line being assembled is over the cap */
    long lineno; /* lines handed out so far */
} wk_lines;

/* cap: the line cap in bytes; 0 for WK_JSONL_LINE_CAP. */
void wk_lines_init(wk_lines *l, size_t cap);
/* Feeds n bytes; each complete line goes to each(arg, ...). Returns 0 or each's first non-zero. */
int wk_lines_feed(wk_lines *l, const char *p, size_t n, wk_line_fn each, void *arg);
/* At the end of the input: a last line without a newline goes to each. */
int wk_lines_finish(wk_lines *l, wk_line_fn each, void *arg);
void wk_lines_release(wk_lines *l);

/* 1 when the n bytes at s are only spaces, tabs, carriage returns and newlines. */
int wk_jsonl_blank(const char *s, size_t n);

/*
 * Reads f to its end line by line, lines capped at cap bytes (0:
 * WK_JSONL_LINE_CAP), and calls each for every line, blank ones included.
 * Returns 0, each's first non-zero return, or WK_EIO on a read error (errno
 * set). The caller opens and closes f.
 */
int wk_jsonl_read(FILE *f, size_t cap, wk_line_fn each, void *arg);

/*
 * The same for the file at path ("-": standard input), which it opens and
 * closes; WK_EIO also when it cannot be opened. A failure to open or read
 * puts a message naming the file in err.
 */
int wk_jsonl_lines(const char *path, size_t cap, wk_line_fn each, void *arg, char *err,
                   size_t errlen);

/*
 * Calls each(arg, obj, lineno) for every non-blank line of the JSONL file at
 * path; obj is borrowed for the call. A line that is not a JSON object, or
 * is longer than WK_JSONL_LINE_CAP, is skipped and the reading goes on: the
 * first ten are said on stderr naming file and line (then a count), and the
 * first is left in err while the return is still 0. With skip_bad (tasks
 * files, whose bad lines `run` answers with invalid_task) lines that are not
 * objects are skipped silently. A failure to open or read returns WK_EIO; a
 * non-zero return of each stops the reading and is returned (each writes err
 * itself).
 */
int wk_jsonl_each(const char *path, int (*each)(void *arg, const cJSON *obj, long lineno),
                  void *arg, int skip_bad, char *err, size_t errlen);

#endif
