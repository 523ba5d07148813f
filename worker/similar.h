/*
 * The semantic start tier (README "Similar tasks start where they
 * succeeded"): the embeddings of past tasks, each with its cascade and the
 * tier that finally accepted it, and the k nearest of them to a new task's
 * embedding. Pure and in memory: brute force over one contiguous float array
 * (unit vectors, so cosine similarity is a dot product), at most `cap`
 * vectors, the oldest evicted first. The journal keeps the rows
 * (store/history.h); the driver loads them here and asks before a task's
 * first call.
 */
#ifndef WK_SIMILAR_H
#define WK_SIMILAR_H

#include <stddef.h>

/* Caps on what comes from outside: an embedding's length, k, and --history-max. */
#define WK_SIMILAR_DIM_MAX 8192
#define WK_SIMILAR_K_MAX 100
#define WK_SIMILAR_CAP_MAX 10000000L
#define WK_SIMILAR_CAP_DEFAULT 100000L

/* A history entry whose task no tier accepted (exhausted): a neighbour no tier counts. */
#define WK_SIMILAR_NONE (-1)

typedef struct wk_similar wk_similar;

/*
 * An empty index of at most cap vectors (1..WK_SIMILAR_CAP_MAX) over groups
 * 0..ngroups-1 (the config's cascades). The dimension is the first added
 * vector's. Free with wk_similar_free.
 */
wk_similar *wk_similar_new(long cap, int ngroups);
void wk_similar_free(wk_similar *s);

/*
 * Adds v (dim floats, copied and scaled to unit length) for `group` with the
 * tier that accepted it (WK_SIMILAR_NONE: none). When full, the oldest entry
 * goes. WK_EINVAL: a group out of range, a dimension other than the index's
 * (another embedding model), over WK_SIMILAR_DIM_MAX, or a zero or non-finite
 * vector.
 */
int wk_similar_add(wk_similar *s, int group, const float *v, int dim, int tier);

/* Entries held for group (all groups: -1). */
long wk_similar_count(const wk_similar *s, int group);
/* The index's dimension; 0 before the first vector. */
int wk_similar_dim(const wk_similar *s);

/* What a pick found, for the log and the result line. */
typedef struct wk_similar_pick {
    int tier;        /* the tier to start at; -1: no advice (too little history, no majority) */
    long history;    /* entries of the group */
    int neighbours;  /* neighbours found (at most k) */
    int votes;       /* of them, accepted at `tier` */
    double nearest;  /* cosine similarity of the nearest; 0 when none */
    double furthest; /* of the k-th nearest */
} wk_similar_pick;

/*
 * The start tier for a task of `group` whose embedding is q: the lowest
 * tier that accepted at least half of the k nearest entries of the group
 * (ties in similarity go to the newer entry), counting only tiers below
 * ntiers. No advice (tier -1) with fewer than min_history entries of the
 * group, or when no tier has half. WK_EINVAL for a bad argument (q of
 * another dimension, k out of 1..WK_SIMILAR_K_MAX), with out->tier -1.
 */
int wk_similar_pick_tier(const wk_similar *s, int group, const float *q, int dim, int k,
                         long min_history, int ntiers, wk_similar_pick *out);

#endif
