/*
 * The nearest-neighbour index of the semantic start tier (worker/similar.h)
 * and the hashed embedding (lib/embed.h): cosine similarity, the majority
 * rule over the k nearest, min_history, eviction of the oldest at the cap,
 * groups kept apart, and bad input refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>

#include "lib/embed.h"
#include "lib/util.h"
#include "worker/similar.h"

/* A unit vector along axis a, tilted a little toward axis b by t. */
static void axis(float *v, int dim, int a, int b, float t)
{
    memset(v, 0, (size_t)dim * sizeof *v);
    v[a] = 1;
    v[b] += t;
}

static void test_pick_is_the_lowest_tier_with_half_of_the_k_nearest(void **state)
{
    (void)state;
    wk_similar *s = wk_similar_new(100, 2);
    float v[4];
    /* Near axis 0: three accepted at tier 1, two at tier 0. Near axis 1: all at tier 0. */
    for (int i = 0; i < 3; i++) {
        axis(v, 4, 0, 2, 0.01f * (float)i);
        assert_int_equal(wk_similar_add(s, 0, v, 4, 1), 0);
    }
    for (int i = 0; i < 2; i++) {
        axis(v, 4, 0, 3, 0.02f * (float)(i + 1));
        assert_int_equal(wk_similar_add(s, 0, v, 4, 0), 0);
    }
    for (int i = 0; i < 5; i++) {
        axis(v, 4, 1, 2, 0.01f * (float)i);
        assert_int_equal(wk_similar_add(s, 0, v, 4, 0), 0);
    }
    assert_int_equal(wk_similar_count(s, 0), 10);
    wk_similar_pick p;
    axis(v, 4, 0, 2, 0.005f);
    /* k 5: the five near axis 0; tier 0 has 2 of 5, tier 1 has 3: start at 1. */
    assert_int_equal(wk_similar_pick_tier(s, 0, v, 4, 5, 0, 3, &p), 0);
    assert_int_equal(p.tier, 1);
    assert_int_equal(p.votes, 3);
    assert_int_equal(p.neighbours, 5);
    assert_true(p.nearest > 0.99 && p.furthest < p.nearest);
    /* k 4: the three tier-1 ones and the nearer tier-0 one. */
    assert_int_equal(wk_similar_pick_tier(s, 0, v, 4, 4, 0, 3, &p), 0);
    assert_int_equal(p.tier, 1);
    assert_int_equal(p.votes, 3);
    /* Half is enough, and the lowest such tier wins: k 6 is 3 at tier 1, 3 at tier 0. */
    assert_int_equal(wk_similar_pick_tier(s, 0, v, 4, 6, 0, 3, &p), 0);
    assert_int_equal(p.tier, 0);
    /* k 10 reaches the axis-1 group: tier 0 has 7 of 10. */
    assert_int_equal(wk_similar_pick_tier(s, 0, v, 4, 10, 0, 3, &p), 0);
    assert_int_equal(p.tier, 0);
    assert_int_equal(p.votes, 7);
    /* Scale does not matter: cosine, not distance. */
    v[0] *= 100;
    v[2] *= 100;
    assert_int_equal(wk_similar_pick_tier(s, 0, v, 4, 5, 0, 3, &p), 0);
    assert_int_equal(p.tier, 1);
    /* A cascade with one tier now: tier 1's entries count for no tier, and none has half. */
    assert_int_equal(wk_similar_pick_tier(s, 0, v, 4, 5, 0, 1, &p), 0);
    assert_int_equal(p.tier, -1);
    wk_similar_free(s);
}

static void test_min_history_groups_and_exhausted_neighbours(void **state)
{
    (void)state;
    wk_similar *s = wk_similar_new(100, 2);
    float v[3] = {1, 0, 0};
    for (int i = 0; i < 4; i++)
        assert_int_equal(wk_similar_add(s, 1, v, 3, 2), 0);
    wk_similar_pick p;
    /* Group 0 has no history; group 1 has 4, under min_history 5. */
    assert_int_equal(wk_similar_pick_tier(s, 0, v, 3, 3, 0, 3, &p), 0);
    assert_int_equal(p.tier, -1);
    assert_int_equal(wk_similar_pick_tier(s, 1, v, 3, 3, 5, 3, &p), 0);
    assert_int_equal(p.tier, -1);
    assert_int_equal(p.history, 4);
    assert_int_equal(wk_similar_add(s, 1, v, 3, 2), 0);
    assert_int_equal(wk_similar_pick_tier(s, 1, v, 3, 3, 5, 3, &p), 0);
    assert_int_equal(p.tier, 2);
    /* Neighbours no tier accepted count toward k but for no tier. */
    for (int i = 0; i < 6; i++)
        assert_int_equal(wk_similar_add(s, 1, v, 3, WK_SIMILAR_NONE), 0);
    assert_int_equal(wk_similar_pick_tier(s, 1, v, 3, 5, 5, 3, &p), 0);
    assert_int_equal(p.tier, -1); /* the five newest (ties go to the newer) are all NONE */
    assert_int_equal(p.neighbours, 5);
    wk_similar_free(s);
}

static void test_the_oldest_are_evicted_at_the_cap(void **state)
{
    (void)state;
    wk_similar *s = wk_similar_new(3, 2);
    float v[2] = {1, 0};
    assert_int_equal(wk_similar_add(s, 0, v, 2, 0), 0);
    assert_int_equal(wk_similar_add(s, 0, v, 2, 0), 0);
    assert_int_equal(wk_similar_add(s, 1, v, 2, 0), 0);
    /* Full: these two take the places of the two oldest, both of group 0. */
    assert_int_equal(wk_similar_add(s, 1, v, 2, 1), 0);
    assert_int_equal(wk_similar_add(s, 1, v, 2, 1), 0);
    assert_int_equal(wk_similar_count(s, -1), 3);
    assert_int_equal(wk_similar_count(s, 0), 0);
    assert_int_equal(wk_similar_count(s, 1), 3);
    wk_similar_pick p;
    assert_int_equal(wk_similar_pick_tier(s, 1, v, 2, 3, 0, 2, &p), 0);
    assert_int_equal(p.tier, 1); /* two of three at tier 1 */
    assert_int_equal(p.votes, 2);
    wk_similar_free(s);
}

static void test_bad_input_is_refused(void **state)
{
    (void)state;
    assert_null(wk_similar_new(0, 1));
    assert_null(wk_similar_new(WK_SIMILAR_CAP_MAX + 1, 1));
    wk_similar *s = wk_similar_new(10, 1);
    float v[3] = {1, 0, 0}, zero[3] = {0, 0, 0}, nan3[3] = {NAN, 0, 0};
    assert_int_equal(wk_similar_add(s, 0, zero, 3, 0), WK_EINVAL);
    assert_int_equal(wk_similar_add(s, 0, nan3, 3, 0), WK_EINVAL);
    assert_int_equal(wk_similar_add(s, 1, v, 3, 0), WK_EINVAL);
    assert_int_equal(wk_similar_add(s, 0, v, 3, 0), 0);
    assert_int_equal(wk_similar_dim(s), 3);
    /* Another embedding model's length: refused, not compared. */
    assert_int_equal(wk_similar_add(s, 0, v, 2, 0), WK_EINVAL);
    wk_similar_pick p;
    assert_int_equal(wk_similar_pick_tier(s, 0, v, 2, 3, 0, 2, &p), WK_EINVAL);
    assert_int_equal(p.tier, -1);
    assert_int_equal(wk_similar_pick_tier(s, 0, v, 3, 0, 0, 2, &p), WK_EINVAL);
    assert_int_equal(wk_similar_pick_tier(s, 0, v, 3, WK_SIMILAR_K_MAX + 1, 0, 2, &p), WK_EINVAL);
    wk_similar_free(s);
}

static double dot(const float *a, const float *b, int dim)
{
    double sum = 0;
    for (int i = 0; i < dim; i++)
        sum += (double)a[i] * b[i];
    return sum;
}

static void test_hashed_embedding_puts_similar_prompts_near(void **state)
{
    (void)state;
    float a[WK_EMBED_HASH_DIM], b[WK_EMBED_HASH_DIM], c[WK_EMBED_HASH_DIM],
        a2[WK_EMBED_HASH_DIM];
    const char *pa = "Write a function that returns the sum of a list of integers.";
    const char *pb = "Write a function that returns the product of a list of integers.";
    const char *pc = "Translate this sentence into French, please: good morning.";
    wk_embed_hash(pa, strlen(pa), a, WK_EMBED_HASH_DIM);
    wk_embed_hash(pb, strlen(pb), b, WK_EMBED_HASH_DIM);
    wk_embed_hash(pc, strlen(pc), c, WK_EMBED_HASH_DIM);
    wk_embed_hash("WRITE a function...", 19, a2, WK_EMBED_HASH_DIM);
    assert_true(fabs(dot(a, a, WK_EMBED_HASH_DIM) - 1) < 1e-5);
    assert_true(dot(a, b, WK_EMBED_HASH_DIM) > 0.6);
    assert_true(dot(a, c, WK_EMBED_HASH_DIM) < 0.3);
    /* Deterministic and case-blind. */
    float a3[WK_EMBED_HASH_DIM];
    wk_embed_hash("write A FUNCTION", 16, a3, WK_EMBED_HASH_DIM);
    assert_true(fabs(dot(a2, a3, WK_EMBED_HASH_DIM) - 1) < 1e-5);
    /* No word: all zeros, which the index refuses. */
    wk_embed_hash("... !!", 6, c, WK_EMBED_HASH_DIM);
    assert_true(dot(c, c, WK_EMBED_HASH_DIM) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_is_the_lowest_tier_with_half_of_the_k_nearest),
        cmocka_unit_test(test_min_history_groups_and_exhausted_neighbours),
        cmocka_unit_test(test_the_oldest_are_evicted_at_the_cap),
        cmocka_unit_test(test_bad_input_is_refused),
        cmocka_unit_test(test_hashed_embedding_puts_similar_prompts_near),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
