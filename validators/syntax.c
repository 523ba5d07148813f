/*
 * The syntax validator: parses the code with tree-sitter and fails on the
 * first ERROR or MISSING node, naming where it is and quoting the line. The
 * grammar table below is the one place that knows which languages we parse.
 *
 * tree-sitter does not run the C preprocessor, so real, valid C and C++ trip
 * it (macros, `extern "C" {` split across #ifdef). For those two, when a
 * compile step follows (val_input.syntax_advisory), an error is advisory: the
 * verdict passes with a note naming it, and the compiler decides.
 */
#include "val_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <tree_sitter/api.h>

/* Grammar entry points from build/grammars/libgrammars.a. */
const TSLanguage *tree_sitter_python(void);
const TSLanguage *tree_sitter_c(void);
const TSLanguage *tree_sitter_cpp(void);
const TSLanguage *tree_sitter_javascript(void);
const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);
const TSLanguage *tree_sitter_go(void);
const TSLanguage *tree_sitter_rust(void);
const TSLanguage *tree_sitter_java(void);
const TSLanguage *tree_sitter_json(void);
const TSLanguage *tree_sitter_bash(void);

/*
 * Canonical language name (see val_lang_canonical, which maps the aliases)
 * -> grammar. Adding a language is one line here, one in the lock and one in
 * common.c's language table.
 */
static const struct {
    const char *name;
    const TSLanguage *(*lang)(void);
    int advisory; /* errors may be advisory: the preprocessor hides the real syntax */
} grammars[] = {
    {"python", tree_sitter_python, 0},
    {"c", tree_sitter_c, 1},
    {"cpp", tree_sitter_cpp, 1},
    {"javascript", tree_sitter_javascript, 0},
    {"typescript", tree_sitter_typescript, 0},
    {"tsx", tree_sitter_tsx, 0},
    {"go", tree_sitter_go, 0},
    {"rust", tree_sitter_rust, 0},
    {"java", tree_sitter_java, 0},
    {"json", tree_sitter_json, 0},
    {"bash", tree_sitter_bash, 0},
};

#define N_GRAMMARS ((int)(sizeof grammars / sizeof grammars[0]))
_Static_assert(sizeof grammars / sizeof grammars[0] <= VAL__GRAMMAR_SLOTS,
               "raise VAL__GRAMMAR_SLOTS in val_int.h");

/* A parse that takes this long is pathological input; fail instead of stalling the loop. */
#define PARSE_TIMEOUT_US (2u * 1000 * 1000)

static int grammar_index(const char *language)
{
    const char *name = val_lang_canonical(language);
    if (!name)
        return -1;
    for (int i = 0; i < N_GRAMMARS; i++)
        if (strcmp(grammars[i].name, name) == 0)
            return i;
    return -1;
}

int val_lang_known(const char *language)
{
    return grammar_index(language) >= 0;
}

void val__syntax_env_release(val_env *env)
{
    for (int i = 0; i < VAL__GRAMMAR_SLOTS; i++) {
        if (env->parsers[i])
            ts_parser_delete(env->parsers[i]);
        env->parsers[i] = NULL;
    }
}

/* A parser set to grammar g; NULL when the grammar's ABI is not ours. */
static TSParser *parser_new(int g)
{
    TSParser *p = ts_parser_new();
    /* Fails when the grammar was generated for an ABI this library lacks. */
    if (!ts_parser_set_language(p, grammars[g].lang())) {
        ts_parser_delete(p);
        return NULL;
    }
    ts_parser_set_timeout_micros(p, PARSE_TIMEOUT_US);
    return p;
}

/*
 * First ERROR or MISSING node in document order: a pre-order walk that skips
 * subtrees without errors, so the first hit is also the earliest.
 */
static int find_error(TSNode root, TSNode *out)
{
    if (!ts_node_has_error(root))
        return 0;
    TSTreeCursor cur = ts_tree_cursor_new(root);
    int found = 0;
    for (;;) {
        TSNode n = ts_tree_cursor_current_node(&cur);
        if (ts_node_is_missing(n) || strcmp(ts_node_type(n), "ERROR") == 0) {
            *out = n;
            found = 1;
            break;
        }
        if (ts_node_has_error(n) && ts_tree_cursor_goto_first_child(&cur))
            continue;
        /* Next sibling, or climb until one exists. */
        while (!ts_tree_cursor_goto_next_sibling(&cur)) {
            if (!ts_tree_cursor_goto_parent(&cur))
                goto done;
        }
    }
done:
    ts_tree_cursor_delete(&cur);
    return found;
}

/* The text of line `row` (0-based) of code. */
static char *source_line(const char *code, uint32_t row)
{
    const char *p = code;
    for (uint32_t r = 0; r < row && p; r++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p)
        return wk_xstrdup("");
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > 200)
        len = 200; /* a minified line would swamp the feedback */
    return wk_xstrndup(p, len);
}

static int syntax_start(val_env *env, const val_input *in, const char *code, val_done_cb done,
                        void *arg)
{
    val_verdict v = {0};
    TSParser *own = NULL;
    TSTree *tree = NULL;
    char *msg = NULL;
    char *ev = NULL;
    char *line = NULL;

    int g = grammar_index(in->language);
    if (g < 0) {
        msg =
            wk_xasprintf("no grammar for language \"%s\"", in->language ? in->language : "(none)");
        val_verdict_fail(&v, "syntax", "unsupported", msg, NULL);
        goto report;
    }

    /* One parser per grammar per env; without an env, a parser for this call. */
    TSParser *p = env ? env->parsers[g] : NULL;
    if (!p) {
        p = parser_new(g);
        if (!p) {
            msg = wk_xasprintf("the %s grammar does not match tree-sitter ABI %d", grammars[g].name,
                               TREE_SITTER_LANGUAGE_VERSION);
            val_verdict_fail(&v, "syntax", "unsupported", msg, NULL);
            goto report;
        }
        if (env)
            env->parsers[g] = p;
        else
            own = p;
    }

    size_t len = strlen(code);
    if (len > UINT32_MAX) {
        val_verdict_fail(&v, "syntax", "syntax_error", "the code is too large to parse", NULL);
        goto report;
    }
    tree = ts_parser_parse_string(p, NULL, code, (uint32_t)len);
    if (!tree) {
        /* Timed out; reset so the cached parser starts clean next time. */
        ts_parser_reset(p);
        val_verdict_fail(&v, "syntax", "syntax_error", "parsing took too long", NULL);
        goto report;
    }

    TSNode bad;
    if (!find_error(ts_tree_root_node(tree), &bad)) {
        val_verdict_pass(&v);
        goto report;
    }
    TSPoint s = ts_node_start_point(bad);
    TSPoint e = ts_node_end_point(bad);
    if (in->syntax_advisory && grammars[g].advisory) {
        /* The compiler that follows knows the preprocessor; it has the last word. */
        val_verdict_pass(&v);
        msg = wk_xasprintf("syntax: advisory only, not failed: tree-sitter reports a %s syntax "
                           "error at line %u:%u%s%s%s, but the compile step that follows decides",
                           grammars[g].name, s.row + 1, s.column + 1,
                           ts_node_is_missing(bad) ? " (missing \"" : "",
                           ts_node_is_missing(bad) ? ts_node_type(bad) : "",
                           ts_node_is_missing(bad) ? "\")" : "");
        val_verdict_note(&v, msg);
        goto report;
    }
    /* tree-sitter rows and columns are 0-based; editors and models count from 1. */
    if (ts_node_is_missing(bad))
        msg = wk_xasprintf("%s syntax error at line %u:%u: missing \"%s\"", grammars[g].name,
                           s.row + 1, s.column + 1, ts_node_type(bad));
    else
        msg = wk_xasprintf("%s syntax error at line %u:%u", grammars[g].name, s.row + 1,
                           s.column + 1);
    line = source_line(code, s.row);
    ev = wk_xasprintf("line %u:%u (span %u:%u-%u:%u)\n%5u | %s\n      | %*s^", s.row + 1,
                      s.column + 1, s.row + 1, s.column + 1, e.row + 1, e.column + 1, s.row + 1,
                      line, (int)(s.column < 200 ? s.column : 200), "");
    val_verdict_fail(&v, "syntax", "syntax_error", msg, ev);

report:
    done(arg, &v);
    val_verdict_clear(&v);
    if (tree)
        ts_tree_delete(tree);
    if (own)
        ts_parser_delete(own);
    free(msg);
    free(ev);
    free(line);
    return 0;
}

/* Bytes of one changed file that are parsed; a larger one is left to the tests. */
#define TOUCHED_FILE_MAX (4u << 20)

static void keep_verdict(void *arg, const val_verdict *v)
{
    val_verdict_copy(arg, v);
}

/*
 * After "patch": every file the diff changed or added, in the patched tree,
 * parsed with the grammar its extension names; files of other kinds are
 * skipped. The first error fails the verdict, naming the file.
 */
static int touched_start(val_env *env, const val_input *in, val_done_cb done, void *arg)
{
    val_verdict v = {0};
    wk_buf notes;
    wk_buf_init(&notes, VAL_MESSAGE_MAX);
    val_verdict_pass(&v);
    char *list = wk_xstrdup(in->touched);
    for (char *line = list, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = '\0';
        const char *dot = strrchr(line, '.');
        const char *slash = strrchr(line, '/');
        if (!dot || (slash && dot < slash) || grammar_index(dot + 1) < 0)
            continue;
        char *path = wk_xasprintf("%s/%s", in->workdir, line);
        char *code = NULL;
        size_t len = 0;
        int rc = wk_read_file(path, TOUCHED_FILE_MAX, &code, &len);
        free(path);
        if (rc < 0 || memchr(code, '\0', len)) {
            free(code);
            continue; /* too large or binary: the tests have the last word */
        }
        val_input one = *in;
        one.language = dot + 1;
        one.touched = NULL;
        val_verdict fv = {0};
        syntax_start(env, &one, code, keep_verdict, &fv);
        free(code);
        if (fv.note && fv.note[0])
            wk_buf_appendf(&notes, "%s%s: %s", notes.len ? "; " : "", line, fv.note);
        if (!fv.pass) {
            char *msg = wk_xasprintf("%s: %s", line, fv.message ? fv.message : "syntax error");
            char *ev = wk_xasprintf("file: %s\n%s", line, fv.evidence ? fv.evidence : "");
            val_verdict_fail(&v, "syntax", fv.reason, msg, ev);
            free(msg);
            free(ev);
            val_verdict_clear(&fv);
            break;
        }
        val_verdict_clear(&fv);
    }
    if (notes.len)
        val_verdict_note(&v, notes.buf);
    done(arg, &v);
    val_verdict_clear(&v);
    wk_buf_release(&notes);
    free(list);
    return 0;
}

static int syntax_or_touched(val_env *env, const val_input *in, const char *code, val_done_cb done,
                             void *arg)
{
    if (in->touched && in->workdir)
        return touched_start(env, in, done, arg);
    return syntax_start(env, in, code, done, arg);
}

const val_ops val__syntax_ops = {
    .name = "syntax",
    .start = syntax_or_touched,
};
