/*
 * Test runners' output read test by test, the baseline of a patch task and
 * the judgement of a patched run against it (see testlog.h). Only the lines
 * whose shape is unambiguous are read: pytest's short summary ("PASSED
 * path::test", "FAILED path::test - message", "ERROR ..."), and TAP's "ok"
 * and "not ok" lines; anything else leaves the exit status to decide.
 */
#include "testlog.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bytes of one test name kept. */
#define NAME_MAX_BYTES 300

void val_testlog_release(val_testlog *log)
{
    for (int i = 0; i < log->n; i++)
        free(log->v[i].name);
    free(log->v);
    memset(log, 0, sizeof *log);
}

static int find(const val_testlog *log, const char *name)
{
    for (int i = 0; i < log->n; i++)
        if (strcmp(log->v[i].name, name) == 0)
            return i;
    return -1;
}

int val_testlog_outcome(const val_testlog *log, const char *name)
{
    int i = find(log, name);
    return i < 0 ? -1 : log->v[i].failed;
}

int val_testlog_failures(const val_testlog *log)
{
    int n = 0;
    for (int i = 0; i < log->n; i++)
        n += log->v[i].failed;
    return n;
}

static void add(val_testlog *log, const char *name, size_t len, int failed)
{
    while (len > 0 && isspace((unsigned char)name[len - 1]))
        len--;
    if (len == 0)
        return;
    if (len > NAME_MAX_BYTES)
        len = NAME_MAX_BYTES;
    char *n = wk_xstrndup(name, len);
    int i = find(log, n);
    if (i >= 0) {
        /* A name seen twice (a parametrised id, a nested TAP subtest) keeps the worse outcome. */
        log->v[i].failed |= failed;
        free(n);
        return;
    }
    if (log->n >= VAL_TESTLOG_MAX) {
        free(n);
        return;
    }
    log->v = wk_xrealloc(log->v, ((size_t)log->n + 1) * sizeof *log->v);
    log->v[log->n].name = n;
    log->v[log->n].failed = failed;
    log->n++;
    if (!failed)
        log->has_passes = 1;
}

/* "WORD name[ - message]" of pytest's summary; 1 when the line is one. */
static int pytest_line(val_testlog *log, const char *s, size_t n)
{
    static const struct {
        const char *word;
        int failed;
    } words[] = {{"PASSED ", 0}, {"FAILED ", 1}, {"ERROR ", 1}, {"XPASS ", 0}, {"XFAIL ", 0}};
    for (size_t w = 0; w < sizeof words / sizeof words[0]; w++) {
        size_t wl = strlen(words[w].word);
        if (n <= wl || memcmp(s, words[w].word, wl) != 0)
            continue;
        const char *name = s + wl;
        size_t len = n - wl;
        /* A name has no spaces ("path::test[param]"); " - message" follows it. */
        for (size_t i = 0; i < len; i++)
            if (name[i] == ' ') {
                len = i;
                break;
            }
        /* "ERROR test_x.py" (a collection error) names a file, still a failure. */
        if (len == 0 || !memchr(name, ':', len))
            if (!(len > 3 && memcmp(name + len - 3, ".py", 3) == 0))
                return 0;
        add(log, name, len, words[w].failed);
        return 1;
    }
    return 0;
}

/* "[indent]ok N[ - name][ # directive]" or "not ok ..."; 1 when the line is one. */
static int tap_line(val_testlog *log, const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] == ' ')
        i++;
    int failed = 0;
    if (n - i >= 7 && memcmp(s + i, "not ok ", 7) == 0) {
        failed = 1;
        i += 7;
    } else if (n - i >= 3 && memcmp(s + i, "ok ", 3) == 0) {
        i += 3;
    } else {
        return 0;
    }
    if (i >= n || !isdigit((unsigned char)s[i]))
        return 0;
    while (i < n && isdigit((unsigned char)s[i]))
        i++;
    while (i < n && (s[i] == ' ' || s[i] == '-'))
        i++;
    const char *name = s + i;
    size_t len = n - i;
    /* "# SKIP" and "# TODO" directives: a skipped or to-do test is no failure. */
    for (size_t k = 0; k + 2 < len; k++)
        if (name[k] == ' ' && name[k + 1] == '#' && name[k + 2] == ' ') {
            const char *d = name + k + 3;
            if (strncasecmp(d, "skip", 4) == 0 || strncasecmp(d, "todo", 4) == 0)
                failed = 0;
            len = k;
            break;
        }
    add(log, name, len, failed);
    return 1;
}

void val_testlog_parse(const char *out, size_t len, val_testlog *log)
{
    memset(log, 0, sizeof *log);
    val_testlog tap = {0};
    int pytest = 0, taps = 0;
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(out + off, '\n', len - off);
        size_t n = nl ? (size_t)(nl - (out + off)) : len - off;
        const char *s = out + off;
        if (n > 0 && s[n - 1] == '\r')
            n--;
        pytest += pytest_line(log, s, n);
        taps += tap_line(&tap, s, n);
        off += n + 1;
        if (nl && s + n < nl)
            off++; /* the \r */
    }
    /* pytest's summary wins: its output never has TAP lines unless a test prints them. */
    if (pytest) {
        log->format = VAL_TESTLOG_PYTEST;
        val_testlog_release(&tap);
    } else if (taps) {
        val_testlog_release(log);
        *log = tap;
        log->format = VAL_TESTLOG_TAP;
    } else {
        val_testlog_release(log);
        val_testlog_release(&tap);
    }
}

/* ---- the baseline ----------------------------------------------------------------- */

static void push(char ***v, int *n, const char *s)
{
    *v = wk_xrealloc(*v, ((size_t)*n + 1) * sizeof **v);
    (*v)[(*n)++] = wk_xstrdup(s);
}

static int has(char *const *v, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i], s) == 0)
            return 1;
    return 0;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static int word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* 1 when text holds s (n bytes) with no word character right before or after it. */
static int has_word(const char *text, const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (const char *p = text; (p = strstr(p, s)) != NULL; p++) {
        if (strncmp(p, s, n) != 0)
            continue;
        int left = p == text || !word_char(p[-1]) || !word_char(s[0]);
        int right = !word_char(p[n]) || !word_char(s[n - 1]);
        if (left && right)
            return 1;
    }
    return 0;
}

/*
 * 1 when the instruction names the test: its whole name, or its last "::"
 * part (without parameters), as a word, so "test_b" names neither "test_bb"
 * nor a test called "b".
 */
static int named(const char *instruction, const char *test)
{
    if (!instruction || !*instruction)
        return 0;
    if (has_word(instruction, test, strlen(test)))
        return 1;
    const char *last = test;
    for (const char *p = strstr(test, "::"); p; p = strstr(p + 2, "::"))
        last = p + 2;
    if (last == test)
        return 0;
    size_t ln = strcspn(last, "[");
    char *part = wk_xstrndup(last, ln);
    int hit = ln >= 3 && has_word(instruction, part, ln);
    free(part);
    return hit;
}

void val_baseline_make(val_baseline *b, const val_testlog *run1, int ok1, const val_testlog *run2,
                       int ok2, const char *instruction)
{
    memset(b, 0, sizeof *b);
    b->runs_failed = !ok1 + (run2 ? !ok2 : 0);
    b->detail = run1->format != VAL_TESTLOG_NONE && (!run2 || run2->format != VAL_TESTLOG_NONE);
    if (!b->detail)
        return;
    for (int i = 0; i < run1->n; i++) {
        const val_test_outcome *t = &run1->v[i];
        int o2 = run2 ? val_testlog_outcome(run2, t->name) : t->failed;
        if (o2 < 0)
            o2 = t->failed; /* absent from run 2: nothing says it flipped */
        if (t->failed && o2)
            push(&b->failing, &b->nfailing, t->name);
        else if (t->failed != o2)
            push(&b->flaky, &b->nflaky, t->name);
    }
    /* Failed only in run 2: flaky as well. */
    for (int i = 0; run2 && i < run2->n; i++)
        if (run2->v[i].failed && val_testlog_outcome(run1, run2->v[i].name) == 0 &&
            !has(b->flaky, b->nflaky, run2->v[i].name))
            push(&b->flaky, &b->nflaky, run2->v[i].name);
    for (int i = 0; i < b->nfailing; i++)
        if (named(instruction, b->failing[i]))
            push(&b->targets, &b->ntargets, b->failing[i]);
    if (b->ntargets == 0)
        for (int i = 0; i < b->nfailing; i++)
            push(&b->targets, &b->ntargets, b->failing[i]);
}

void val_baseline_release(val_baseline *b)
{
    free_list(b->failing, b->nfailing);
    free_list(b->flaky, b->nflaky);
    free_list(b->targets, b->ntargets);
    memset(b, 0, sizeof *b);
}

void val_baseline_copy(val_baseline *dst, const val_baseline *src)
{
    memset(dst, 0, sizeof *dst);
    dst->detail = src->detail;
    dst->runs_failed = src->runs_failed;
    for (int i = 0; i < src->nfailing; i++)
        push(&dst->failing, &dst->nfailing, src->failing[i]);
    for (int i = 0; i < src->nflaky; i++)
        push(&dst->flaky, &dst->nflaky, src->flaky[i]);
    for (int i = 0; i < src->ntargets; i++)
        push(&dst->targets, &dst->ntargets, src->targets[i]);
}

/* Appends "label: a, b, c" (names capped) to the note buffer. */
static void list_names(wk_buf *nb, const char *label, char *const *v, int n)
{
    if (n == 0)
        return;
    wk_buf_appendf(nb, "%s%s: ", nb->len ? "; " : "", label);
    for (int i = 0; i < n; i++)
        if (wk_buf_appendf(nb, "%s%s", i ? ", " : "", v[i]) < 0)
            break;
}

int val_baseline_judge(const val_baseline *b, const val_testlog *after, int exit_ok,
                       val_test_counts *counts, char **why, char **note)
{
    memset(counts, 0, sizeof *counts);
    *why = NULL;
    *note = NULL;
    for (int i = 0; i < after->n; i++)
        counts->passed += !after->v[i].failed;
    counts->flaky = b ? b->nflaky : 0;
    if (!b || !b->detail || after->format == VAL_TESTLOG_NONE) {
        if (!exit_ok)
            *why = wk_xstrdup("the tests failed (exit status; no per-test detail to tell "
                              "pre-existing failures apart)");
        if (b) {
            wk_buf nb;
            wk_buf_init(&nb, VAL_MESSAGE_MAX);
            wk_buf_appendf(&nb, "tests: passed %d, flaky %d, pre-existing 0", counts->passed,
                           counts->flaky);
            list_names(&nb, "flaky at base", b->flaky, b->nflaky);
            *note = wk_buf_detach(&nb, NULL);
        }
        return exit_ok;
    }
    char **pre = NULL;
    int npre = 0;
    int pass = 1;
    for (int i = 0; i < after->n && pass; i++) {
        const val_test_outcome *t = &after->v[i];
        if (!t->failed || has(b->flaky, b->nflaky, t->name))
            continue;
        if (has(b->targets, b->ntargets, t->name)) {
            *why = wk_xasprintf("%s still fails", t->name);
            pass = 0;
        } else if (has(b->failing, b->nfailing, t->name)) {
            push(&pre, &npre, t->name);
        } else {
            *why = wk_xasprintf("%s passed at base and fails after the patch", t->name);
            pass = 0;
        }
    }
    /* A target the runner no longer reports was removed or skipped, not fixed. */
    for (int i = 0; i < b->ntargets && pass && after->has_passes; i++)
        if (val_testlog_outcome(after, b->targets[i]) < 0) {
            *why = wk_xasprintf("%s did not run after the patch", b->targets[i]);
            pass = 0;
        }
    if (pass && !exit_ok && val_testlog_failures(after) == 0) {
        /* The command failed, but not through a test: a collection or setup error. */
        *why = wk_xstrdup("the test command failed although no test failed");
        pass = 0;
    }
    counts->preexisting = npre;
    wk_buf nb;
    wk_buf_init(&nb, VAL_MESSAGE_MAX);
    /* The counts lead: a note survives the journal, the verdict's counts do not. */
    wk_buf_appendf(&nb, "tests: passed %d, flaky %d, pre-existing %d", counts->passed,
                   counts->flaky, counts->preexisting);
    list_names(&nb, "pre-existing failures", pre, npre);
    list_names(&nb, "flaky at base", b->flaky, b->nflaky);
    *note = nb.len ? wk_buf_detach(&nb, NULL) : NULL;
    wk_buf_release(&nb);
    free_list(pre, npre);
    return pass;
}
