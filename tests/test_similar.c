/*
 * The nearest-neighbour index of the semantic start tier (worker/similar.h)
 * and the hashed embedding (lib/embed.h): cosine similarity, the majority
 * rule over the k nearest, min_history, eviction of the oldest at the cap,
 * groups kept apart, and bad input refused. Then end to end against mock-llm:
 * history kept in the journal across runs, a task that starts at the tier
 * its neighbours were accepted at (the climb logged as similar_history), a
 * restricted task never sent to an embeddings provider its class may not
 * reach, and a failed embedding that starts the task at the first tier.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
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
    float a[WK_EMBED_HASH_DIM], b[WK_EMBED_HASH_DIM], c[WK_EMBED_HASH_DIM], a2[WK_EMBED_HASH_DIM];
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

static const char *MODELS_SIM =
    "{\"providers\":{"
    "\"mock\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\",\"key_env\":null,"
    "\"data\":\"self_hosted\"},"
    "\"embedder\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\",\"key_env\":null,"
    "\"data\":\"us\"}},"
    "\"models\":{"
    "\"cheap\":{\"provider\":\"mock\",\"input_usd_per_mtok\":0.5,\"output_usd_per_mtok\":1,"
    "\"max_tokens\":200},"
    "\"top\":{\"provider\":\"mock\",\"input_usd_per_mtok\":5,\"output_usd_per_mtok\":10,"
    "\"max_tokens\":200},"
    "\"emb\":{\"provider\":\"embedder\",\"id\":\"emb-small\",\"input_usd_per_mtok\":20,"
    "\"output_usd_per_mtok\":0}},"
    "\"embeddings\":{\"model\":\"emb\",\"dimensions\":64},"
    "\"data_policy\":{\"restricted\":[\"self_hosted\"]}}";

static const char *CASCADE_SIM =
    "{\"name\":\"sim\",\"match\":{\"kind\":\"json\"},\"validators\":[\"schema\"],"
    "\"schema\":{\"type\":\"object\",\"required\":[\"ok\"]},"
    "\"tiers\":[{\"model\":\"cheap\"},{\"model\":\"top\"}],"
    "\"start\":{\"by\":\"similar\",\"k\":3,\"min_history\":4}}";

/* The cheap model fails every task but the greetings; the top one passes all. */
static const char *RECS_SIM =
    "{\"task\":\"*\",\"model\":\"cheap\",\"run\":1,\"answer\":\"nope\"}\n"
    "{\"task\":\"*\",\"model\":\"top\",\"run\":1,\"answer\":\"{\\\"ok\\\": 1}\"}\n"
    "{\"task\":\"g1\",\"model\":\"cheap\",\"run\":1,\"answer\":\"{\\\"ok\\\": 1}\"}\n"
    "{\"task\":\"g2\",\"model\":\"cheap\",\"run\":1,\"answer\":\"{\\\"ok\\\": 1}\"}\n";

#define SUM_TASK(id, n, extra)                                                                     \
    "{\"id\":\"" id "\",\"kind\":\"json\",\"prompt\":\"Sum the prime numbers in the list and "     \
    "return the total as JSON, list " n "\"" extra "}\n"
#define GREET_TASK(id)                                                                             \
    "{\"id\":\"" id "\",\"kind\":\"json\",\"prompt\":\"Say hello to the new user politely, in "    \
    "one short friendly sentence\"}\n"

/* Runs the batch in tasks against the mock (one task at a time, so history grows in order). */
static void run_batch(const char *cdir, const char *models, const char *tasks, const char *out,
                      const char *esc)
{
    const char *argv[] = {
        h_cascade_bin(), "run", "--cascades",    cdir, "--models", models, tasks, "-o", out,
        "--escalations", esc,   "--concurrency", "1",  NULL};
    assert_int_equal(h_run((char *const *)argv, NULL, NULL, 60), 0);
}

static const cJSON *start_of(const cJSON *results, const char *id)
{
    const cJSON *r = h_find(results, "id", id);
    assert_non_null(r);
    const cJSON *st = cJSON_GetObjectItem(r, "start");
    assert_non_null(st);
    assert_string_equal(h_str(st, "by"), "similar");
    return st;
}

/* The embeddings requests the mock saw for a task. */
static int embeddings_of(const cJSON *log, const char *task)
{
    int n = 0;
    const cJSON *l;
    cJSON_ArrayForEach(l, log)
    {
        const char *t = h_str(l, "task"), *p = h_str(l, "path");
        n += t && p && strcmp(t, task) == 0 && strstr(p, "/embeddings") != NULL;
    }
    return n;
}

static void test_run_starts_similar_tasks_where_they_succeeded(void **state)
{
    (void)state;
    char *cdir = NULL, *models = NULL;
    assert_int_equal(h_config_setup(MODELS_SIM, &cdir, &models), 0);
    free(h_write("cascades/sim.json", CASCADE_SIM));
    char *recs = h_write("recs.jsonl", RECS_SIM), *log = h_tmp("mock.log");
    char *out = h_tmp("results.jsonl"), *esc = h_tmp("esc.jsonl");
    h_mock m;
    h_mock_start(&m, recs, log, NULL);
    /* Run 1: four tasks of history (two sums climb to top, two greetings pass cheap), then s3. */
    char *t1 = h_write("t1.jsonl", SUM_TASK("s1", "one", "") SUM_TASK("s2", "two", "") GREET_TASK(
                                       "g1") GREET_TASK("g2") SUM_TASK("s3", "three", ""));
    run_batch(cdir, models, t1, out, esc);
    cJSON *res = h_jsonl(out);
    const cJSON *st = start_of(res, "s1");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(st, "tier")));
    assert_non_null(strstr(h_str(st, "reason"), "history of 0 tasks is under min_history 4"));
    /* s3's nearest three: s1 and s2 (top) and a greeting (cheap): it starts at top. */
    st = start_of(res, "s3");
    assert_int_equal(cJSON_GetObjectItem(st, "tier")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(st, "votes")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(st, "history")->valueint, 4);
    const cJSON *s3 = h_find(res, "id", "s3");
    assert_string_equal(h_str(s3, "status"), "accepted");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(s3, "attempts")), 1);
    assert_string_equal(h_str(cJSON_GetArrayItem(cJSON_GetObjectItem(s3, "attempts"), 0), "model"),
                        "top");
    /* Its cost carries the embedding's: more than the top call's alone. */
    const cJSON *a0 = cJSON_GetArrayItem(cJSON_GetObjectItem(s3, "attempts"), 0);
    assert_true(cJSON_GetObjectItem(s3, "cost_usd")->valuedouble >
                cJSON_GetObjectItem(a0, "cost_usd")->valuedouble);
    cJSON *escs = h_jsonl(esc);
    int similar = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, escs)
    {
        if (strcmp(h_str(e, "id"), "s3") != 0)
            continue;
        assert_string_equal(h_str(e, "reason"), "similar_history");
        similar++;
    }
    assert_int_equal(similar, 1);
    cJSON_Delete(escs);
    cJSON_Delete(res);

    /* Run 2, same journal: the history is read back; a restricted task is not embedded. */
    char *t2 = h_write("t2.jsonl", SUM_TASK("s5", "five", "")
                                       SUM_TASK("s6", "six", ",\"data_class\":\"restricted\"")
                                           SUM_TASK("s8", "eight", ",\"budget_usd\":0"));
    run_batch(cdir, models, t2, out, esc);
    res = h_jsonl(out);
    st = start_of(res, "s5");
    assert_int_equal(cJSON_GetObjectItem(st, "tier")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(st, "history")->valueint, 5);
    st = start_of(res, "s6");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(st, "tier")));
    assert_non_null(strstr(h_str(st, "reason"), "may reach no deployment of the embeddings"));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h_find(res, "id", "s6"), "attempts")),
                     2);
    /* A budget of nothing calls only free models: the priced embedding is not made either. */
    st = start_of(res, "s8");
    assert_non_null(strstr(h_str(st, "reason"), "task budget $0 cannot hold the embedding"));
    cJSON_Delete(res);
    h_mock_stop(&m);
    cJSON *lines = h_jsonl(log);
    assert_int_equal(embeddings_of(lines, "s5"), 1);
    assert_int_equal(embeddings_of(lines, "s6"), 0);
    assert_int_equal(embeddings_of(lines, "s8"), 0);
    cJSON_Delete(lines);

    /* Run 3: the embeddings call fails; the task starts at the first tier, and says why. */
    const char *fault[] = {"--fault", "500:1@emb-small", NULL};
    h_mock_start(&m, recs, log, fault);
    char *t3 = h_write("t3.jsonl", SUM_TASK("s7", "seven", ""));
    run_batch(cdir, models, t3, out, esc);
    h_mock_stop(&m);
    res = h_jsonl(out);
    st = start_of(res, "s7");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(st, "tier")));
    assert_non_null(strstr(h_str(st, "reason"), "embeddings call to emb failed (http_500"));
    const cJSON *s7 = h_find(res, "id", "s7");
    assert_string_equal(h_str(s7, "status"), "accepted");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(s7, "attempts")), 2);
    cJSON_Delete(res);
    free(t1);
    free(t2);
    free(t3);
    free(recs);
    free(log);
    free(out);
    free(esc);
    h_config_teardown(cdir, models);
}

/*
 * replay: embeddings from the recordings. The history (replayed into a
 * journal) and the new task share a recorded vector though their prompts
 * share no word, so only the recordings can make them neighbours.
 */
static void test_replay_takes_embeddings_from_the_recordings(void **state)
{
    (void)state;
    char *cdir = NULL, *models = NULL;
    assert_int_equal(h_config_setup(MODELS_SIM, &cdir, &models), 0);
    char *casc = h_write("sim.json", "{\"name\":\"sim\",\"match\":{\"kind\":\"json\"},"
                                     "\"validators\":[\"schema\"],\"schema\":{\"type\":\"object\","
                                     "\"required\":[\"ok\"]},\"tiers\":[{\"model\":\"cheap\"},"
                                     "{\"model\":\"top\"}],\"start\":{\"by\":\"similar\","
                                     "\"k\":2,\"min_history\":2}}");
    /* replay has no "*" recordings: each task's own. */
    char *recs =
        h_write("rrecs.jsonl",
                "{\"task\":\"a1\",\"model\":\"cheap\",\"run\":1,\"answer\":\"nope\"}\n"
                "{\"task\":\"a1\",\"model\":\"top\",\"run\":1,\"answer\":\"{\\\"ok\\\": 1}\"}\n"
                "{\"task\":\"a2\",\"model\":\"cheap\",\"run\":1,\"answer\":\"nope\"}\n"
                "{\"task\":\"a2\",\"model\":\"top\",\"run\":1,\"answer\":\"{\\\"ok\\\": 1}\"}\n"
                "{\"task\":\"q\",\"model\":\"cheap\",\"run\":1,\"answer\":\"nope\"}\n"
                "{\"task\":\"q\",\"model\":\"top\",\"run\":1,\"answer\":\"{\\\"ok\\\": 1}\"}\n"
                "{\"task\":\"a1\",\"model\":\"emb\",\"run\":1,\"embedding\":[1,0,0,0]}\n"
                "{\"task\":\"a2\",\"model\":\"emb\",\"run\":1,\"embedding\":[1,0.1,0,0]}\n"
                "{\"task\":\"q\",\"model\":\"emb\",\"run\":1,\"embedding\":[1,0,0.1,0]}\n");
    char *hist =
        h_write("rhist.jsonl", "{\"id\":\"a1\",\"kind\":\"json\",\"prompt\":\"alpha beta gamma\"}\n"
                               "{\"id\":\"a2\",\"kind\":\"json\",\"prompt\":\"delta epsilon\"}\n");
    char *q =
        h_write("rq.jsonl", "{\"id\":\"q\",\"kind\":\"json\",\"prompt\":\"zeta eta theta\"}\n");
    char *journal = h_tmp("rhist.journal"), *out1 = h_tmp("rout1.jsonl"),
         *out2 = h_tmp("rout2.jsonl");
    const char *a1[] = {h_cascade_bin(), "replay", "--tasks",  hist,   "--recordings", recs,
                        "--cascade",     casc,     "--models", models, "-o",           out1,
                        "--journal",     journal,  "-q",       NULL};
    assert_int_equal(h_run((char *const *)a1, NULL, NULL, 60), 0);
    const char *a2[] = {h_cascade_bin(),  "replay", "--tasks",  q,      "--recordings", recs,
                        "--cascade",      casc,     "--models", models, "-o",           out2,
                        "--history-from", journal,  "-q",       NULL};
    assert_int_equal(h_run((char *const *)a2, NULL, NULL, 60), 0);
    cJSON *res = h_jsonl(out2);
    const cJSON *st = start_of(res, "q");
    assert_int_equal(cJSON_GetObjectItem(st, "tier")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(st, "neighbours")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(st, "history")->valueint, 2);
    cJSON_Delete(res);
    free(casc);
    free(recs);
    free(hist);
    free(q);
    free(journal);
    free(out1);
    free(out2);
    h_config_teardown(cdir, models);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_is_the_lowest_tier_with_half_of_the_k_nearest),
        cmocka_unit_test(test_min_history_groups_and_exhausted_neighbours),
        cmocka_unit_test(test_the_oldest_are_evicted_at_the_cap),
        cmocka_unit_test(test_bad_input_is_refused),
        cmocka_unit_test(test_hashed_embedding_puts_similar_prompts_near),
        cmocka_unit_test(test_run_starts_similar_tasks_where_they_succeeded),
        cmocka_unit_test(test_replay_takes_embeddings_from_the_recordings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
