/*
 * `make bench`'s nearest-neighbour row (README "Similar tasks start where
 * they succeeded"): worker/similar.c filled to N vectors of D random numbers
 * (one cascade), then Q searches for the k nearest, timed. Prints one JSON
 * line: {"n", "dim", "k", "queries", "fill_ms", "per_query_us", "bytes"}.
 *
 *   bench-similar [N] [D] [Q] [K]     defaults 100000 256 200 10
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "worker/similar.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* xorshift64: spread, not secrecy; the same vectors every run. */
static float rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 9007199254740992.0 - 0.5);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000;
    int dim = argc > 2 ? atoi(argv[2]) : 256;
    int q = argc > 3 ? atoi(argv[3]) : 200;
    int k = argc > 4 ? atoi(argv[4]) : 10;
    if (n < 1 || n > WK_SIMILAR_CAP_MAX || dim < 1 || dim > WK_SIMILAR_DIM_MAX || q < 1 || k < 1 ||
        k > WK_SIMILAR_K_MAX) {
        fprintf(stderr, "usage: bench-similar [N] [D] [Q] [K]\n");
        return 2;
    }
    float *v = malloc((size_t)dim * sizeof *v);
    if (!v)
        return 1;
    uint64_t seed = 88172645463325252ULL;
    wk_similar *s = wk_similar_new(n, 1);
    double t0 = now_ms();
    for (long i = 0; i < n; i++) {
        for (int d = 0; d < dim; d++)
            v[d] = rnd(&seed);
        if (wk_similar_add(s, 0, v, dim, (int)(i % 3)) != 0)
            return 1;
    }
    double fill = now_ms() - t0;
    long found = 0;
    t0 = now_ms();
    for (int i = 0; i < q; i++) {
        for (int d = 0; d < dim; d++)
            v[d] = rnd(&seed);
        wk_similar_pick p;
        if (wk_similar_pick_tier(s, 0, v, dim, k, 0, 3, &p) != 0)
            return 1;
        found += p.neighbours;
    }
    double search = now_ms() - t0;
    printf("{\"n\": %ld, \"dim\": %d, \"k\": %d, \"queries\": %d, \"fill_ms\": %.1f, "
           "\"per_query_us\": %.1f, \"bytes\": %zu, \"found\": %ld}\n",
           n, dim, k, q, fill, search * 1000.0 / q, (size_t)n * (size_t)dim * sizeof(float), found);
    wk_similar_free(s);
    free(v);
    return 0;
}
