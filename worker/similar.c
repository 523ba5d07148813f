/*
 * Nearest neighbours for the semantic start tier (similar.h). A ring of
 * `cap` slots over one contiguous array of unit vectors: adding to a full
 * ring overwrites the oldest slot, and a search is one pass of dot products
 * keeping the k best in a small sorted array. At 100,000 vectors of a few
 * hundred floats that pass is a few milliseconds (`make bench`), less than
 * the embedding call that precedes it.
 */
#include "similar.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

struct wk_similar {
    long cap;
    int ngroups;
    int dim;        /* 0 until the first vector */
    float *vec;     /* cap * dim floats, allocated with the first vector */
    int *group;     /* per slot */
    int *tier;      /* per slot */
    uint64_t *seq;  /* per slot: insertion order, for ties and eviction */
    long n;         /* slots in use: min(added, cap) */
    uint64_t added; /* adds so far; the next add writes slot added % cap (the oldest once full) */
    long *count;    /* entries per group */
};

wk_similar *wk_similar_new(long cap, int ngroups)
{
    if (cap < 1 || cap > WK_SIMILAR_CAP_MAX || ngroups < 1)
        return NULL;
    wk_similar *s = wk_xcalloc(1, sizeof *s);
    s->cap = cap;
    s->ngroups = ngroups;
    s->count = wk_xcalloc((size_t)ngroups, sizeof *s->count);
    return s;
}

void wk_similar_free(wk_similar *s)
{
    if (!s)
        return;
    free(s->vec);
    free(s->group);
    free(s->tier);
    free(s->seq);
    free(s->count);
    free(s);
}

int wk_similar_dim(const wk_similar *s)
{
    return s->dim;
}

long wk_similar_count(const wk_similar *s, int group)
{
    if (group < 0)
        return s->n;
    return group < s->ngroups ? s->count[group] : 0;
}

/* The squared length of v; -1 when an element is not finite. */
static double norm2(const float *v, int dim)
{
    double sum = 0;
    for (int i = 0; i < dim; i++) {
        if (!isfinite(v[i]))
            return -1;
        sum += (double)v[i] * v[i];
    }
    return sum;
}

int wk_similar_add(wk_similar *s, int group, const float *v, int dim, int tier)
{
    if (group < 0 || group >= s->ngroups || dim < 1 || dim > WK_SIMILAR_DIM_MAX ||
        (s->dim && dim != s->dim))
        return WK_EINVAL;
    double n2 = norm2(v, dim);
    if (!(n2 > 0))
        return WK_EINVAL;
    if (!s->dim) {
        /* The arrays are made at the first vector, when the dimension is known. */
        s->dim = dim;
        s->vec = wk_xmalloc((size_t)s->cap * (size_t)dim * sizeof *s->vec);
        s->group = wk_xmalloc((size_t)s->cap * sizeof *s->group);
        s->tier = wk_xmalloc((size_t)s->cap * sizeof *s->tier);
        s->seq = wk_xmalloc((size_t)s->cap * sizeof *s->seq);
    }
    long at = (long)(s->added % (uint64_t)s->cap);
    if (s->n == s->cap)
        s->count[s->group[at]]--; /* the oldest goes */
    else
        s->n++;
    float inv = (float)(1.0 / sqrt(n2));
    float *dst = s->vec + (size_t)at * (size_t)dim;
    for (int i = 0; i < dim; i++)
        dst[i] = v[i] * inv;
    s->group[at] = group;
    s->tier[at] = tier < 0 ? WK_SIMILAR_NONE : tier;
    s->seq[at] = ++s->added;
    s->count[group]++;
    return 0;
}

/*
 * The dot product in eight independent sums: the compiler may not reorder a
 * single float sum (it would change the rounding), but it turns eight lanes
 * into vector instructions, which is most of the search's speed.
 */
static float dot_product(const float *a, const float *b, int dim)
{
    float acc[8] = {0};
    int d = 0;
    for (; d + 8 <= dim; d += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[d + j] * b[d + j];
    float sum = 0;
    for (int j = 0; j < 8; j++)
        sum += acc[j];
    for (; d < dim; d++)
        sum += a[d] * b[d];
    return sum;
}

/* One of the best so far. */
typedef struct best {
    float sim;
    uint64_t seq;
    int tier;
} best;

/* a ranks before b: more similar, then newer. */
static int before(float sim, uint64_t seq, const best *b)
{
    return sim > b->sim || (sim == b->sim && seq > b->seq);
}

int wk_similar_pick_tier(const wk_similar *s, int group, const float *q, int dim, int k,
                         long min_history, int ntiers, wk_similar_pick *out)
{
    memset(out, 0, sizeof *out);
    out->tier = -1;
    if (group < 0 || group >= s->ngroups || k < 1 || k > WK_SIMILAR_K_MAX || ntiers < 1)
        return WK_EINVAL;
    out->history = s->count[group];
    if (out->history < min_history || out->history == 0)
        return 0;
    if (dim != s->dim)
        return WK_EINVAL;
    double n2 = norm2(q, dim);
    if (!(n2 > 0))
        return WK_EINVAL;
    float inv = (float)(1.0 / sqrt(n2));
    best top[WK_SIMILAR_K_MAX];
    int nt = 0;
    for (long i = 0; i < s->n; i++) {
        if (s->group[i] != group)
            continue;
        float dot = dot_product(s->vec + (size_t)i * (size_t)dim, q, dim) * inv;
        if (nt == k && !before(dot, s->seq[i], &top[nt - 1]))
            continue;
        /* Insertion into the sorted few: k is small next to the history. */
        int at = nt < k ? nt++ : nt - 1;
        while (at > 0 && before(dot, s->seq[i], &top[at - 1])) {
            top[at] = top[at - 1];
            at--;
        }
        top[at] = (best){.sim = dot, .seq = s->seq[i], .tier = s->tier[i]};
    }
    out->neighbours = nt;
    if (nt == 0)
        return 0;
    out->nearest = top[0].sim;
    out->furthest = top[nt - 1].sim;
    /* The lowest tier with at least half of the neighbours. */
    for (int t = 0; t < ntiers; t++) {
        int votes = 0;
        for (int i = 0; i < nt; i++)
            votes += top[i].tier == t;
        if (2 * votes >= nt) {
            out->tier = t;
            out->votes = votes;
            break;
        }
    }
    return 0;
}
