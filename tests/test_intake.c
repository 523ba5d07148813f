/*
 * Intake's decisions, with no network, no journal and no results file: the
 * facts are a fake answered from three string sets, so each rule is shown
 * on its own and in the order the driver relies on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"
#include "worker/intake.h"
#include "worker/rkey.h"

static wk_provider prov = {.name = "mock", .api = "openai", .base_url = "http://x/v1"};
static wk_model model = {
    .name = "cheap", .provider = &prov, .id = "cheap", .context = 100000, .max_tokens = 1000};
static char *vals[] = {"schema", NULL};
static wk_tier tier = {.model = &model, .attempts = 1};
static wk_cascade casc = {.name = "main",
                          .match_kind = "classify",
                          .validators = vals,
                          .nvalidators = 1,
                          .tiers = &tier,
                          .ntiers = 1};
static wk_config cfg = {.providers = &prov,
                        .nproviders = 1,
                        .models = &model,
                        .nmodels = 1,
                        .cascades = &casc,
                        .ncascades = 1};

/* What earlier work left: keys in the results file, journal DONE rows, ids seen. */
typedef struct world {
    wk_strset written, done, seen;
    int lookups_done;
} world;

static int w_written(void *arg, const char *key)
{
    return wk_strset_has(&((world *)arg)->written, key);
}

static int w_done(void *arg, const char *key, char **result)
{
    world *w = arg;
    w->lookups_done++;
    if (!wk_strset_has(&w->done, key))
        return 0;
    *result = wk_xasprintf("{\"id\":\"%s\",\"status\":\"accepted\"}", key);
    return 1;
}

static int w_seen(void *arg, const char *id)
{
    return wk_strset_has(&((world *)arg)->seen, id);
}

static const char *TASK =
    "{\"id\":\"t1\",\"kind\":\"classify\",\"prompt\":\"ticket\",\"schema\":{\"type\":\"object\"}}";

static void decide(world *w, const char *line, long lineno, int too_big, wk_intake *d)
{
    q_item it = {.line = (char *)line, .len = strlen(line), .lineno = lineno, .too_big = too_big};
    wk_intake_facts f = {.cfg = &cfg,
                         .line_cap = 100,
                         .written = w_written,
                         .done = w_done,
                         .seen = w_seen,
                         .arg = w};
    wk_intake_decide(&it, &f, d);
}

static void world_release(world *w)
{
    wk_strset_release(&w->written);
    wk_strset_release(&w->done);
    wk_strset_release(&w->seen);
}

static void test_a_new_task_runs(void **state)
{
    (void)state;
    world w = {0};
    wk_intake d;
    decide(&w, TASK, 1, 0, &d);
    assert_int_equal(d.kind, WK_INTAKE_RUN);
    assert_non_null(d.task);
    assert_string_equal(wk_task_id(d.task), "t1");
    assert_null(d.line);
    wk_intake_release(&d);
    world_release(&w);
}

static void test_a_blank_line_is_skipped_without_a_result(void **state)
{
    (void)state;
    world w = {0};
    wk_intake d;
    decide(&w, " \t\r", 3, 0, &d);
    assert_int_equal(d.kind, WK_INTAKE_SKIP);
    assert_null(d.line);
    assert_null(d.task);
    assert_int_equal(w.lookups_done, 0);
    wk_intake_release(&d);
    world_release(&w);
}

static void test_a_line_over_the_cap_is_invalid_under_its_line_number(void **state)
{
    (void)state;
    world w = {0};
    wk_intake d;
    decide(&w, "{\"id\":\"cut", 4, 1, &d);
    assert_int_equal(d.kind, WK_INTAKE_INVALID);
    assert_string_equal(d.key, "#line:4");
    assert_non_null(strstr(d.line, "invalid_task"));
    assert_non_null(strstr(d.line, "longer than 100 bytes"));
    assert_non_null(d.result);
    wk_intake_release(&d);
    world_release(&w);
}

static void test_a_malformed_line_is_invalid_under_its_line_even_with_an_id(void **state)
{
    (void)state;
    world w = {0};
    wk_intake d;
    decide(&w, "not json", 5, 0, &d);
    assert_int_equal(d.kind, WK_INTAKE_INVALID);
    assert_string_equal(d.key, "#line:5");
    assert_non_null(strstr(d.line, "invalid_task"));
    wk_intake_release(&d);
    decide(&w, "{\"id\":\"x1\",\"kind\":\"classify\"}", 6, 0, &d); /* no prompt */
    assert_int_equal(d.kind, WK_INTAKE_INVALID);
    assert_string_equal(d.key, "#line:6");
    wk_intake_release(&d);
    world_release(&w);
}

/* Invalid lines' keys and task ids never meet, whatever the id (issue 12, item 2). */
static void test_a_task_whose_id_is_an_invalid_lines_key_still_runs(void **state)
{
    (void)state;
    const char *ids[] = {"line:3", "#line:3", "#dup:3", "x1", "#id:x1", "#entry:1-0"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        world w = {0};
        /* Line 3 was invalid (it had id x1) and is journaled and written. */
        wk_strset_add(&w.written, "#line:3");
        wk_strset_add(&w.done, "#line:3");
        wk_strset_add(&w.written, "#dup:3");
        char *line = wk_xasprintf("{\"id\":\"%s\",\"kind\":\"classify\",\"prompt\":\"p\","
                                  "\"schema\":{\"enum\":[\"a\"]}}",
                                  ids[i]);
        wk_intake d;
        decide(&w, line, 7, 0, &d);
        if (d.kind != WK_INTAKE_RUN)
            fail_msg("task %s: kind %d, not RUN", ids[i], d.kind);
        char *key = wk_rkey_task(ids[i]);
        assert_string_not_equal(key, "#line:3");
        assert_string_not_equal(key, "#dup:3");
        assert_string_equal(wk_rkey_id(key), ids[i]);
        free(key);
        wk_intake_release(&d);
        free(line);
        world_release(&w);
    }
}

static void test_an_invalid_line_already_written_or_journaled_is_not_written_again(void **state)
{
    (void)state;
    world w = {0};
    wk_strset_add(&w.written, "#line:5");
    wk_strset_add(&w.done, "#line:6");
    wk_intake d;
    decide(&w, "not json", 5, 0, &d);
    assert_int_equal(d.kind, WK_INTAKE_ALREADY);
    assert_null(d.line);
    wk_intake_release(&d);
    decide(&w, "not json", 6, 0, &d);
    assert_int_equal(d.kind, WK_INTAKE_ALREADY);
    assert_null(d.line);
    wk_intake_release(&d);
    world_release(&w);
}

static void test_a_task_in_the_results_file_is_already_done(void **state)
{
    (void)state;
    world w = {0};
    wk_strset_add(&w.written, "t1");
    wk_strset_add(&w.done, "t1");
    wk_intake d;
    decide(&w, TASK, 1, 0, &d);
    assert_int_equal(d.kind, WK_INTAKE_ALREADY);
    assert_null(d.line);
    /* The task is kept so the driver can remember its id for the duplicate rule. */
    assert_string_equal(wk_task_id(d.task), "t1");
    wk_intake_release(&d);
    world_release(&w);
}

static void test_a_task_done_in_the_journal_resumes_with_its_stored_line(void **state)
{
    (void)state;
    world w = {0};
    wk_strset_add(&w.done, "t1");
    wk_intake d;
    decide(&w, TASK, 1, 0, &d);
    assert_int_equal(d.kind, WK_INTAKE_RESUME);
    assert_string_equal(d.key, "t1");
    assert_string_equal(d.line, "{\"id\":\"t1\",\"status\":\"accepted\"}");
    assert_null(d.result);
    wk_intake_release(&d);
    world_release(&w);
}

static void test_a_second_line_with_an_id_is_a_duplicate_written_once(void **state)
{
    (void)state;
    world w = {0};
    wk_strset_add(&w.seen, "t1");
    wk_strset_add(&w.done, "t1"); /* the duplicate rule comes before the journal */
    wk_intake d;
    decide(&w, TASK, 9, 0, &d);
    assert_int_equal(d.kind, WK_INTAKE_INVALID);
    assert_string_equal(d.key, "#dup:9");
    assert_non_null(strstr(d.line, "duplicate id \\\"t1\\\""));
    assert_null(d.task);
    wk_intake_release(&d);
    wk_strset_add(&w.written, "#dup:9");
    decide(&w, TASK, 9, 0, &d);
    assert_int_equal(d.kind, WK_INTAKE_SKIP);
    assert_null(d.line);
    wk_intake_release(&d);
    world_release(&w);
}

static void test_a_redelivered_queue_item_is_not_a_duplicate(void **state)
{
    (void)state;
    world w = {0};
    wk_strset_add(&w.seen, "t1");
    wk_intake d;
    decide(&w, TASK, 0, 0, &d); /* lineno 0: a queue entry, not a file line */
    assert_int_equal(d.kind, WK_INTAKE_RUN);
    wk_intake_release(&d);
    world_release(&w);
}

/* Redis: an entry whose id another entry owns is invalid under its own entry's key. */
static void test_a_queue_item_whose_id_another_entry_owns_is_invalid(void **state)
{
    (void)state;
    world w = {0};
    q_item it = {.line = (char *)TASK, .len = strlen(TASK), .receipt = "5-0", .dup_of = "3-0"};
    wk_intake_facts f = {.cfg = &cfg,
                         .line_cap = 100,
                         .written = w_written,
                         .done = w_done,
                         .seen = w_seen,
                         .arg = &w};
    wk_intake d;
    wk_intake_decide(&it, &f, &d);
    assert_int_equal(d.kind, WK_INTAKE_INVALID);
    assert_string_equal(d.key, "#entry:5-0");
    assert_null(wk_rkey_id(d.key)); /* acked with no id: `cascade results` keeps both */
    assert_non_null(strstr(d.line, "duplicate id"));
    assert_non_null(strstr(d.line, "3-0"));
    wk_intake_release(&d);
    world_release(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_new_task_runs),
        cmocka_unit_test(test_a_blank_line_is_skipped_without_a_result),
        cmocka_unit_test(test_a_line_over_the_cap_is_invalid_under_its_line_number),
        cmocka_unit_test(test_a_malformed_line_is_invalid_under_its_line_even_with_an_id),
        cmocka_unit_test(test_a_task_whose_id_is_an_invalid_lines_key_still_runs),
        cmocka_unit_test(test_a_queue_item_whose_id_another_entry_owns_is_invalid),
        cmocka_unit_test(test_an_invalid_line_already_written_or_journaled_is_not_written_again),
        cmocka_unit_test(test_a_task_in_the_results_file_is_already_done),
        cmocka_unit_test(test_a_task_done_in_the_journal_resumes_with_its_stored_line),
        cmocka_unit_test(test_a_second_line_with_an_id_is_a_duplicate_written_once),
        cmocka_unit_test(test_a_redelivered_queue_item_is_not_a_duplicate),
    };
    return cmocka_run_group_tests_name("intake", tests, NULL, NULL);
}
