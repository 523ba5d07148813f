/*
 * Sinks make a result durable. The driver journals a task's DONE row, calls
 * the sink once the row is committed, and then acknowledges the queue item.
 *
 * The results file (this one): JSONL, one result line per task, appended
 * and flushed line by line. A resumed run appends to the file it wrote
 * before: a line cut by a crash is removed first, and the keys already there
 * (worker/rkey.h: task ids, "#line:N" for a line that is not a task,
 * "#dup:N" for a duplicate id)
 * are not written again.
 *
 * The results stream (Redis STREAM:results) is not here: queues/redis.c adds
 * the result and acknowledges the entry in one Lua script, so an XACK never
 * runs without its XADD. Split into a sink, the two would be separate
 * commands and a crash between them could lose a task, so for Redis the
 * queue's ack is the sink. A commit made by the CI bot will be a sink here.
 */
#ifndef WK_RESULTS_FILE_H
#define WK_RESULTS_FILE_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct wk_results_file wk_results_file;

/*
 * Opens the results file: path NULL or "-" is stdout. resume 0 starts the
 * file afresh; 1 keeps what it holds (see above). Returns 0, or WK_EIO with
 * a message in err that names the path. Free with wk_results_file_close.
 */
int wk_results_file_open(const char *path, int resume, wk_results_file **out, char *err,
                         size_t errlen);
void wk_results_file_close(wk_results_file *f);

/* 1 when the resumed file already holds a line for the key. */
int wk_results_file_has(const wk_results_file *f, const char *key);

/*
 * What a result line carries of the answer: at most this many bytes. An
 * answer of control bytes grows six times when written (\u0001), and one
 * result line must stay far under the readers' line cap. The whole answer
 * stays in the journal (the attempt's RECEIVED row, `sqlite3 FILE.journal
 * "SELECT text FROM attempts WHERE task = 'ID'"`).
 */
#define WK_RESULT_ANSWER_CAP (256u << 10)

/*
 * Cuts the result's "answer" to WK_RESULT_ANSWER_CAP bytes (on a UTF-8
 * boundary) and marks it "answer_truncated": true with "answer_bytes", the
 * whole length. A result without a long answer is left as it is.
 */
void wk_results_cap_answer(cJSON *result);

/* Appends the line and a newline, flushed. 0, or WK_EIO (errno says why). */
int wk_results_file_write(wk_results_file *f, const char *line, size_t len);

#endif
