/*
 * The parts of `cascade bakeoff` that read and write files after the calls
 * (the calls are `run`'s, driven from worker/cli/bakeoff_cli.c): the table
 * per model, the recordings taken from the runs' journals, the blind review
 * page and the unblinding of its scores.
 *
 * A bake-off directory holds, per model m and run r (1-based):
 *   results/<stem>.runNN.jsonl  the run's result lines (a one-tier cascade)
 *   journal/<stem>.runNN.db     the run's journal, whose answers are whole
 * and, written here: recordings.jsonl (mock-llm's format, run = r), table.json,
 * report.txt, blind-key.json beside a review page, and the scores once given.
 */
#ifndef WK_BAKEOFF_H
#define WK_BAKEOFF_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

/* Models and runs a bake-off takes (a bound on the files it opens). */
#define WK_BAKE_MODELS_MAX 16
#define WK_BAKE_RUNS_MAX 100

typedef struct wk_bake {
    const char *dir; /* borrowed */
    int nmodels, runs;
    char *models[WK_BAKE_MODELS_MAX]; /* owned */
    char *stems[WK_BAKE_MODELS_MAX];  /* owned: file-safe model names */
} wk_bake;

/* Fills b from the model names (copied); WK_EINVAL on too many or an empty name. */
int wk_bake_init(wk_bake *b, const char *dir, const char *const *models, int nmodels, int runs,
                 char *err, size_t errlen);
void wk_bake_release(wk_bake *b);

/* The results and journal paths of model m, run r (0-based). Caller frees. */
char *wk_bake_results_path(const wk_bake *b, int m, int r);
char *wk_bake_journal_path(const wk_bake *b, int m, int r);

/*
 * Writes DIR/recordings.jsonl from the journals: every answered attempt of
 * every task in each run's results, as {"task", "model", "run": r + 1,
 * "answer", "usage", "finish_reason"}, so mock-llm and `replay` serve run r
 * where the bake-off got it. *n: lines written.
 */
int wk_bake_recordings(const wk_bake *b, long *n, char *err, size_t errlen);

/*
 * The table per model from the results files: tasks, pass rate (mean and sd
 * over the runs), cost per run (mean, sd), mean latency of an answered call,
 * cost per solved task (all runs' cost over all runs' accepted tasks).
 * `scores` (borrowed; may be NULL) is the unblinded review: per model its
 * mean score and how many answers were scored. Caller frees.
 */
int wk_bake_table(const wk_bake *b, const cJSON *scores, cJSON **out, char *err, size_t errlen);

/* The table as text, one line per model (the report). */
void wk_bake_table_print(const cJSON *table, FILE *f);

/*
 * The blind review page at html_path: per task its prompt and the answer of
 * run 1 of each model, in an order shuffled with `seed`, under opaque ids; a
 * 1-5 score per answer and an Export button that puts the scores as JSON
 * ({"scores": {ID: N, ...}}) in the page and offers them as a download. One
 * self-contained file: an inline script and style, nothing fetched. The ids'
 * owners go to key_path (never into the page). *n: answers on the page.
 */
int wk_bake_blind(const wk_bake *b, const char *tasks_path, const char *html_path,
                  const char *key_path, unsigned long long seed, long *n, char *err, size_t errlen);

/*
 * The reviewer's exported scores (scores_path) joined with the key: per model
 * {"model": {"score_mean": X, "scored": N}}. Ids not in the key and scores
 * outside 1-5 are refused (WK_EINVAL). Caller frees *out.
 */
int wk_bake_unblind(const char *key_path, const char *scores_path, cJSON **out, char *err,
                    size_t errlen);

#endif
