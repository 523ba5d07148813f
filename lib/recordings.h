/*
 * Recorded model answers, keyed by (task id, model name): what mock-llm
 * serves over HTTP and what `cascade replay` answers from in-process. One
 * JSONL line per answer:
 *
 *   {"task": ID, "model": NAME, "run": K, "answer": TEXT,
 *    "usage": {"prompt_tokens": N, "completion_tokens": M},
 *    "finish_reason": "stop"}
 *
 * usage and finish_reason are optional, unknown fields are ignored. Also
 * optional: "cost_usd", what the call really cost (replay uses it instead of
 * tokens x price, and says so); "logprobs", the answer's tokens as
 * [{"token": T, "logprob": L}, ...] (their tokens joined must be the
 * answer); "token_prob", a probability in (0, 1] that every word of the
 * answer gets (see wk_rec_logprobs). A line of an embeddings model may carry
 * "embedding": [numbers] instead of an answer: the vector its /embeddings
 * call gave for the task's prompt.
 */
#ifndef WK_RECORDINGS_H
#define WK_RECORDINGS_H

#include <cjson/cJSON.h>
#include <stddef.h>

typedef struct wk_recs wk_recs;

typedef struct wk_rec {
    char *task, *model;
    long run;
    char *answer;
    char *finish_reason; /* "stop" unless the line says otherwise */
    long prompt_tokens;  /* -1 when the line has no usage */
    long completion_tokens;
    int line;          /* 1-based line in the file, for messages */
    double cost_usd;   /* the recorded cost of the call; -1: none */
    char *logprobs;    /* the "logprobs" array as JSON text; NULL: none */
    double token_prob; /* -1: none */
    float *embedding;  /* "embedding": the vector of an embeddings model's call; NULL: none */
    int embedding_dim;
} wk_rec;

/* The longest "embedding" a recording may hold. */
#define WK_REC_DIM_MAX 8192

/*
 * The answer's tokens with their logprobs, as [{"token", "logprob"}, ...]:
 * the recording's own when it has them, else derived deterministically
 * (runs of letters and digits are a token each, every other byte is one;
 * a word token's logprob is log(token_prob), 0 without it, and other tokens
 * get 0). Caller frees.
 */
cJSON *wk_rec_logprobs(const wk_rec *r);

/*
 * Loads a recordings file. Errors name the file and line (and column for bad
 * JSON) in err, without a program prefix. Caller frees with wk_recs_free.
 */
int wk_recs_load(const char *path, wk_recs **out, char *err, size_t errlen);
void wk_recs_free(wk_recs *r);

/*
 * The recording for the next call of (task, model): call i (counted per pair
 * from 0) takes run (start + i) mod R in run order. NULL when the pair has no
 * recording. Borrowed from the table.
 */
const wk_rec *wk_recs_next(wk_recs *r, const char *task, const char *model, int start);
/* What wk_recs_next would return, without counting the call. */
const wk_rec *wk_recs_peek(wk_recs *r, const char *task, const char *model, int start);
/* Forgets the per-pair counters, for another pass over the batch. */
void wk_recs_rewind(wk_recs *r);

#endif
