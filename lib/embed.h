/*
 * A deterministic text embedding: a hashed bag of words. Not a language
 * model: it puts prompts that share words near each other, which is what
 * mock-llm's /v1/embeddings serves for tests and what `replay` computes when
 * the recordings hold no embedding for a task (README "Similar tasks start
 * where they succeeded"). Shared by the mock and the worker, so both give the
 * same vector for the same text.
 */
#ifndef WK_EMBED_H
#define WK_EMBED_H

#include <stddef.h>

/* The mock's and replay's dimension when none is asked for. */
#define WK_EMBED_HASH_DIM 256

/*
 * Writes the embedding of the len bytes at text into out[0..dim-1], at unit
 * length (all zeros for a text without a word). A word is a run of ASCII
 * letters and digits, lowercased; each adds +1 or -1 (by its hash) at the
 * place its hash names, and so does each pair of neighbouring words, so word
 * order counts a little.
 */
void wk_embed_hash(const char *text, size_t len, float *out, int dim);

#endif
