/*
 * The bounded-memory id set (lib/idset.c): exact answers across spills to
 * disk and merges of runs, for ids of any byte but NUL and of any length up
 * to the cap; an unwritable TMPDIR keeps it exact in memory with one
 * warning; and `cascade run` still rejects a duplicate id whose first copy
 * was spilled long before (more than WK_IDSET_MEM_IDS lines earlier).
 *
 * The unit tests spill after a few ids (opts.mem_ids) so many runs and
 * merges happen in a small, quick test. Spill files go to the scratch dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "lib/idset.h"
#include "lib/util.h"

static char *scratch, *cdir, *models;

static int group_setup(void **state)
{
    (void)state;
    if (h_config_setup(h_models_cheap_mid, &cdir, &models))
        return -1;
    scratch = h_tmp("spill");
    return mkdir(scratch, 0700) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    free(scratch);
    h_config_teardown(cdir, models);
    return 0;
}

static wk_idset *small_set(size_t mem_ids, int max_runs)
{
    wk_idset_opts o = {.tmpdir = scratch, .mem_ids = mem_ids, .max_runs = max_runs};
    return wk_idset_new(&o);
}

static void id_of(char *buf, size_t len, const char *tag, int i)
{
    snprintf(buf, len, "%s-%d", tag, i);
}

static void test_ids_added_before_spills_are_still_found(void **state)
{
    (void)state;
    wk_idset *s = small_set(64, 1000); /* no merge: ~78 runs */
    char id[64];
    for (int i = 0; i < 5000; i++) {
        id_of(id, sizeof id, "task", i);
        assert_int_equal(wk_idset_add(s, id), 0);
    }
    wk_idset_stats st;
    wk_idset_stats_get(s, &st);
    assert_true(st.spills >= 70);
    assert_int_equal(st.merges, 0);
    assert_int_equal(st.ids, 5000);
    for (int i = 0; i < 5000; i++) {
        id_of(id, sizeof id, "task", i);
        assert_int_equal(wk_idset_has(s, id), 1);
        id_of(id, sizeof id, "other", i);
        assert_int_equal(wk_idset_has(s, id), 0);
    }
    /* Prefixes and extensions of stored ids are other ids. */
    assert_int_equal(wk_idset_has(s, "task-"), 0);
    assert_int_equal(wk_idset_has(s, "task-49999"), 0);
    assert_int_equal(wk_idset_has(s, ""), 0);
    wk_idset_free(s);
}

static void test_many_runs_merge_and_stay_exact(void **state)
{
    (void)state;
    wk_idset *s = small_set(100, 3);
    char id[64];
    for (int i = 0; i < 20000; i++) {
        id_of(id, sizeof id, "m", i * 7);
        assert_int_equal(wk_idset_add(s, id), 0);
        if (i % 1000 == 999) { /* earlier ids, whatever run they are in now */
            id_of(id, sizeof id, "m", (i / 2) * 7);
            assert_int_equal(wk_idset_add(s, id), 1);
        }
    }
    wk_idset_stats st;
    wk_idset_stats_get(s, &st);
    assert_true(st.merges >= 40);
    assert_true(st.runs <= 3);
    assert_int_equal(st.ids, 20000);
    for (int i = 0; i < 20000 * 7; i++) {
        id_of(id, sizeof id, "m", i);
        assert_int_equal(wk_idset_has(s, id), i % 7 == 0);
    }
    wk_idset_free(s);
}

static void test_a_duplicate_is_found_across_a_spill(void **state)
{
    (void)state;
    wk_idset *s = small_set(64, 4);
    char id[64];
    assert_int_equal(wk_idset_add(s, "the-dup"), 0);
    for (int i = 0; i < 1000; i++) {
        id_of(id, sizeof id, "filler", i);
        assert_int_equal(wk_idset_add(s, id), 0);
    }
    wk_idset_stats st;
    wk_idset_stats_get(s, &st);
    assert_true(st.spills > 0 && st.merges > 0);
    assert_int_equal(wk_idset_add(s, "the-dup"), 1);
    assert_int_equal(wk_idset_add(s, "filler-0"), 1);
    assert_int_equal(wk_idset_add(s, "filler-999"), 1);
    assert_int_equal(wk_idset_add(s, "filler-1000"), 0);
    wk_idset_free(s);
}

static void test_every_byte_but_nul_is_part_of_an_id(void **state)
{
    (void)state;
    wk_idset *s = small_set(16, 3);
    char id[4];
    /* "b", "bb" and "xbx" for each byte b: 765 ids, of three lengths so none repeats. */
    for (int pass = 0; pass < 2; pass++)
        for (int b = 1; b < 256; b++) {
            const char forms[3][4] = {{(char)b, 0}, {(char)b, (char)b, 0}, {'x', (char)b, 'x', 0}};
            for (int f = 0; f < 3; f++) {
                memcpy(id, forms[f], 4);
                assert_int_equal(wk_idset_add(s, id), pass);
            }
        }
    wk_idset_stats st;
    wk_idset_stats_get(s, &st);
    assert_int_equal(st.ids, 765);
    assert_true(st.merges > 0);
    for (int b = 1; b < 256; b++) {
        char miss[5] = {'y', (char)b, 'y', 'y', 0}; /* no id of four bytes was added */
        assert_int_equal(wk_idset_has(s, miss), 0);
    }
    wk_idset_free(s);
}

/* An id of len bytes of c, its last byte `last`; caller frees. */
static char *long_id(size_t len, char c, char last)
{
    char *s = wk_xmalloc(len + 1);
    memset(s, c, len);
    s[len - 1] = last;
    s[len] = 0;
    return s;
}

static void test_ids_at_the_cap_spill_and_compare_to_the_last_byte(void **state)
{
    (void)state;
    wk_idset *s = small_set(4, 2);
    char *a = long_id(WK_IDSET_ID_MAX, 'a', 'a');
    char *b = long_id(WK_IDSET_ID_MAX, 'a', 'b');
    char *c = long_id(WK_IDSET_ID_MAX, 'a', 'c');
    char *mid = long_id(100000, 'q', 'q');
    char *over = long_id(WK_IDSET_ID_MAX + 1, 'a', 'a');
    assert_int_equal(wk_idset_add(s, a), 0);
    assert_int_equal(wk_idset_add(s, mid), 0);
    assert_int_equal(wk_idset_add(s, b), 0); /* a does not fit beside it: a spill */
    assert_int_equal(wk_idset_add(s, "short"), 0);
    assert_int_equal(wk_idset_add(s, over), WK_ETOOBIG);
    assert_int_equal(wk_idset_has(s, over), 0);
    wk_idset_stats st;
    wk_idset_stats_get(s, &st);
    assert_true(st.spills >= 1);
    assert_int_equal(st.ids, 4);
    assert_int_equal(wk_idset_has(s, a), 1);
    assert_int_equal(wk_idset_has(s, b), 1);
    assert_int_equal(wk_idset_has(s, c), 0); /* differs from a and b in the last byte only */
    assert_int_equal(wk_idset_add(s, c), 0); /* spills b; three runs merge into one */
    assert_int_equal(wk_idset_add(s, a), 1);
    assert_int_equal(wk_idset_add(s, mid), 1);
    assert_int_equal(wk_idset_has(s, "short"), 1);
    wk_idset_stats_get(s, &st);
    assert_true(st.merges >= 1);
    free(a);
    free(b);
    free(c);
    free(mid);
    free(over);
    wk_idset_free(s);
}

static void test_an_unwritable_tmpdir_warns_once_and_stays_exact(void **state)
{
    (void)state;
    char *errf = h_tmp("idset.err");
    /* A path under a regular file: no directory there for anyone, root included. */
    char *file = h_write("not-a-dir", "x");
    char *dir = wk_xasprintf("%s/spill", file);
    fflush(stderr);
    int saved = dup(2);
    int fd = open(errf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);

    wk_idset_opts o = {.tmpdir = dir, .mem_ids = 32, .max_runs = 2};
    wk_idset *s = wk_idset_new(&o);
    char id[64];
    for (int i = 0; i < 3000; i++) {
        id_of(id, sizeof id, "mem", i);
        assert_int_equal(wk_idset_add(s, id), 0);
    }
    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    wk_idset_stats st;
    wk_idset_stats_get(s, &st);
    assert_int_equal(st.memory_only, 1);
    assert_int_equal(st.runs, 0);
    assert_int_equal(st.ids, 3000);
    for (int i = 0; i < 3000; i++) {
        id_of(id, sizeof id, "mem", i);
        assert_int_equal(wk_idset_add(s, id), 1);
        id_of(id, sizeof id, "nope", i);
        assert_int_equal(wk_idset_has(s, id), 0);
    }
    char *err = h_slurp(errf);
    int lines = 0;
    for (const char *p = err; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1);
    assert_non_null(strstr(err, "warning: cannot write the duplicate-id spill file"));
    assert_non_null(strstr(err, "/not-a-dir/spill"));
    free(err);
    wk_idset_free(s);
    free(dir);
    free(file);
    free(errf);
}

/* ---- end to end -------------------------------------------------------------- */

#define E2E_TASKS (WK_IDSET_MEM_IDS + 8000)

static void test_run_rejects_a_duplicate_spilled_long_before(void **state)
{
    (void)state;
    char *c = h_write("cascades/one.json", "{\"name\":\"one\",\"match\":{\"kind\":\"code\"},"
                                           "\"validators\":[],\"tiers\":[{\"model\":\"cheap\"}]}");
    char *recs = h_write("recordings.jsonl",
                         "{\"task\":\"*\",\"model\":\"cheap\",\"run\":1,\"answer\":\"ok\"}\n");
    /* Line 1 has id "dup"; so does the last line, E2E_TASKS + 1 lines later. */
    wk_buf t;
    wk_buf_init(&t, 16u << 20);
    wk_buf_appendf(&t, "{\"id\":\"dup\",\"prompt\":\"say ok\"}\n");
    for (int i = 0; i < E2E_TASKS; i++)
        wk_buf_appendf(&t, "{\"id\":\"t%d\",\"prompt\":\"say ok\"}\n", i);
    wk_buf_appendf(&t, "{\"id\":\"dup\",\"prompt\":\"say ok again\"}\n");
    char *tasks = h_write("tasks.jsonl", t.buf);
    wk_buf_release(&t);
    char *out = h_tmp("results.jsonl"), *errf = h_tmp("run.err");
    char *spill = h_tmp("run-spill");
    assert_int_equal(mkdir(spill, 0700), 0);
    setenv("TMPDIR", spill, 1);

    h_mock m;
    h_mock_start(&m, recs, NULL, NULL);
    const char *argv[] = {h_cascade_bin(), "run",           tasks, "--cascades", cdir,
                          "--models",      models,          "-o",  out,          "--journal",
                          "none",          "--concurrency", "32",  "-q",         NULL};
    int st = h_run((char *const *)argv, NULL, errf, 300);
    h_mock_stop(&m);
    unsetenv("TMPDIR");
    char *err = h_slurp(errf);
    if (st != 0 && st != 1)
        fail_msg("cascade run exited %d: %s", st, err);
    assert_null(strstr(err, "warning: cannot write the duplicate-id"));

    cJSON *res = h_jsonl(out);
    assert_int_equal(cJSON_GetArraySize(res), E2E_TASKS + 2);
    assert_int_equal(h_count(res, "id", "dup"), 2);
    int ok = 0, dup = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, res)
    {
        const char *id = h_str(r, "id");
        if (!id || strcmp(id, "dup") != 0)
            continue;
        /* The first line runs; the last is refused, and its result names its line. */
        if (strcmp(h_str(r, "status"), "invalid_task") != 0) {
            ok++;
        } else {
            const cJSON *line = cJSON_GetObjectItemCaseSensitive(r, "line");
            if (!cJSON_IsNumber(line) || line->valueint != E2E_TASKS + 2)
                fail_msg("the refused \"dup\" is not the last line");
            assert_non_null(strstr(h_str(r, "reason"), "duplicate id \"dup\""));
            dup++;
        }
    }
    assert_int_equal(ok + dup, 2);
    assert_int_equal(dup, 1);
    assert_int_equal(h_count(res, "status", "invalid_task"), 1);
    cJSON_Delete(res);
    free(err);
    free(spill);
    free(errf);
    free(out);
    free(tasks);
    free(recs);
    free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids_added_before_spills_are_still_found),
        cmocka_unit_test(test_many_runs_merge_and_stay_exact),
        cmocka_unit_test(test_a_duplicate_is_found_across_a_spill),
        cmocka_unit_test(test_every_byte_but_nul_is_part_of_an_id),
        cmocka_unit_test(test_ids_at_the_cap_spill_and_compare_to_the_last_byte),
        cmocka_unit_test(test_an_unwritable_tmpdir_warns_once_and_stays_exact),
        cmocka_unit_test(test_run_rejects_a_duplicate_spilled_long_before),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
