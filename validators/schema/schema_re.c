/*
 * ECMA-262 regular expressions for JSON Schema patterns, matched with a Pike
 * VM (Thompson's construction simulated over code points). JSON Schema only
 * asks "does the pattern match somewhere", so there are no captures, and the
 * constructs that need backtracking (backreferences, lookaround) are refused
 * at compile time instead of being approximated. See schema_int.h for the
 * supported syntax.
 *
 * A pattern is parsed into a small tree, then emitted as a program of
 * instructions; counted repetition is expanded, under VAL__RE_PROG_MAX.
 */
#include "schema_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "schema_re_unicode.h"

/* Largest n in {n,m}; a bigger count could never fit in the program anyway. */
#define REPEAT_MAX 1000
/* Nesting of groups; the parser recurses once per level. */
#define NEST_MAX 100
#define CP_MAX 0x10FFFFu
/* What a byte that is not valid UTF-8 reads as. */
#define CP_INVALID 0xFFFDu

/* ---- character sets ------------------------------------------------------ */

typedef struct range {
    uint32_t lo, hi; /* inclusive */
} range;

typedef struct cset {
    range *r;
    size_t n, alloc;
} cset;

static void cset_add(cset *s, uint32_t lo, uint32_t hi)
{
    if (s->n == s->alloc) {
        s->alloc = s->alloc ? s->alloc * 2 : 8;
        s->r = wk_xrealloc(s->r, s->alloc * sizeof *s->r);
    }
    s->r[s->n].lo = lo;
    s->r[s->n].hi = hi;
    s->n++;
}

static int range_cmp(const void *a, const void *b)
{
    const range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorts and merges overlapping or adjacent ranges, so lookups can bisect. */
static void cset_normalize(cset *s)
{
    if (s->n == 0)
        return;
    qsort(s->r, s->n, sizeof *s->r, range_cmp);
    size_t w = 0;
    for (size_t i = 1; i < s->n; i++) {
        if (s->r[i].lo <= s->r[w].hi + 1) {
            if (s->r[i].hi > s->r[w].hi)
                s->r[w].hi = s->r[i].hi;
        } else {
            s->r[++w] = s->r[i];
        }
    }
    s->n = w + 1;
}

/* Replaces a normalized set by its complement in [0, CP_MAX]. */
static void cset_invert(cset *s)
{
    cset out = {0};
    uint32_t next = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->r[i].lo > next)
            cset_add(&out, next, s->r[i].lo - 1);
        next = s->r[i].hi + 1;
    }
    if (next <= CP_MAX)
        cset_add(&out, next, CP_MAX);
    free(s->r);
    *s = out;
}

/* Adds the ranges of table t (or of its complement when `negate`). */
static void cset_add_table(cset *s, const uint32_t (*t)[2], size_t n, int negate)
{
    cset tmp = {0};
    for (size_t i = 0; i < n; i++)
        cset_add(&tmp, t[i][0], t[i][1]);
    cset_normalize(&tmp);
    if (negate)
        cset_invert(&tmp);
    for (size_t i = 0; i < tmp.n; i++)
        cset_add(s, tmp.r[i].lo, tmp.r[i].hi);
    free(tmp.r);
}

static int cset_has(const range *r, size_t n, uint32_t c)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c < r[mid].lo)
            hi = mid;
        else if (c > r[mid].hi)
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* The class escapes of ECMA-262 (22.2.2.9): \d and \w are ASCII-only. */
static const uint32_t digit_tab[][2] = {{'0', '9'}};
static const uint32_t word_tab[][2] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
/* WhiteSpace and LineTerminator code points (ECMA-262 12.2, 12.3). */
static const uint32_t space_tab[][2] = {
    {0x09, 0x0D},     {0x20, 0x20},     {0xA0, 0xA0},     {0x1680, 0x1680}, {0x2000, 0x200A},
    {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000}, {0xFEFF, 0xFEFF},
};
/* "." matches everything but these line terminators. */
static const uint32_t newline_tab[][2] = {{0x0A, 0x0A}, {0x0D, 0x0D}, {0x2028, 0x2029}};

#define TAB(t) (t), sizeof(t) / sizeof((t)[0])

static int is_word(long c)
{
    return c >= 0 && cset_has((const range *)word_tab, 4, (uint32_t)c);
}

/* ---- parse tree ------------------------------------------------------------ */

enum node_type {
    N_EMPTY,
    N_CHAR,
    N_CLASS,
    N_CAT,
    N_ALT,
    N_REPEAT,
    N_BOL,
    N_EOL,
    N_WORDB,
    N_NWORDB
};

typedef struct node {
    enum node_type type;
    uint32_t c;   /* N_CHAR */
    int cls;      /* N_CLASS: index into the class table */
    int min, max; /* N_REPEAT; max -1 is unbounded */
    struct node *a, *b;
} node;

enum op { I_CHAR, I_CLASS, I_SPLIT, I_JMP, I_MATCH, I_BOL, I_EOL, I_WORDB, I_NWORDB };

typedef struct inst {
    unsigned char op;
    uint32_t c; /* I_CHAR */
    int x, y;   /* I_CLASS: class in x; I_JMP: x; I_SPLIT: x and y */
} inst;

struct val__re {
    inst *prog;
    int n;
    cset *classes;
    int n_classes;
};

typedef struct parser {
    const char *p; /* next byte of the pattern */
    const char *end;
    node **nodes; /* every node allocated, freed together */
    size_t n_nodes, alloc_nodes;
    cset *classes;
    int n_classes, alloc_classes;
    int depth;
    char *err;
    size_t errlen;
    int failed;
    inst *prog;
    int n_prog, alloc_prog;
} parser;

static void perr(parser *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void perr(parser *ps, const char *fmt, ...)
{
    if (ps->failed)
        return; /* keep the first error: it is the cause */
    ps->failed = 1;
    if (ps->err && ps->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ps->err, ps->errlen, fmt, ap);
        va_end(ap);
    }
}

static node *mk(parser *ps, enum node_type t, node *a, node *b)
{
    if (ps->n_nodes == ps->alloc_nodes) {
        ps->alloc_nodes = ps->alloc_nodes ? ps->alloc_nodes * 2 : 32;
        ps->nodes = wk_xrealloc(ps->nodes, ps->alloc_nodes * sizeof *ps->nodes);
    }
    node *n = wk_xcalloc(1, sizeof *n);
    n->type = t;
    n->a = a;
    n->b = b;
    ps->nodes[ps->n_nodes++] = n;
    return n;
}

static int new_class(parser *ps)
{
    if (ps->n_classes == ps->alloc_classes) {
        ps->alloc_classes = ps->alloc_classes ? ps->alloc_classes * 2 : 4;
        ps->classes = wk_xrealloc(ps->classes, (size_t)ps->alloc_classes * sizeof *ps->classes);
    }
    memset(&ps->classes[ps->n_classes], 0, sizeof ps->classes[0]);
    return ps->n_classes++;
}

static node *class_node(parser *ps, int cls)
{
    node *n = mk(ps, N_CLASS, NULL, NULL);
    n->cls = cls;
    return n;
}

/* Decodes one UTF-8 sequence at s (n bytes left); invalid input reads as one byte. */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *used)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t cp, min;
    *used = 1;
    if (c < 0x80)
        return c;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, cp = c & 0x07, min = 0x10000;
    else
        return CP_INVALID;
    if (len > n)
        return CP_INVALID;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return CP_INVALID;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > CP_MAX)
        return CP_INVALID;
    *used = len;
    return cp;
}

static int at_end(parser *ps)
{
    return ps->p >= ps->end;
}

static uint32_t next_cp(parser *ps)
{
    size_t used;
    uint32_t c = utf8_next((const unsigned char *)ps->p, (size_t)(ps->end - ps->p), &used);
    ps->p += used;
    return c;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads exactly n hex digits; -1 when they are not there. */
static long read_hex(parser *ps, int n)
{
    long v = 0;
    for (int i = 0; i < n; i++) {
        if (at_end(ps) || hexval(*ps->p) < 0)
            return -1;
        v = v * 16 + hexval(*ps->p++);
    }
    return v;
}

/*
 * \p{...} and \P{...}: the general categories L and N by their short or long
 * names. Other properties would need tables we do not carry, so they are
 * refused by name rather than matched wrongly.
 */
static int parse_property(parser *ps, cset *s, int negate)
{
    const char *open = ps->p;
    if (at_end(ps) || *ps->p != '{') {
        perr(ps, "\\p must be followed by {name}");
        return -1;
    }
    const char *close = memchr(open, '}', (size_t)(ps->end - open));
    if (!close) {
        perr(ps, "unterminated \\p{...}");
        return -1;
    }
    size_t len = (size_t)(close - open - 1);
    const char *name = open + 1;
    ps->p = close + 1;
#define IS(lit) (len == sizeof(lit) - 1 && memcmp(name, lit, len) == 0)
    if (IS("L") || IS("Letter") || IS("gc=L") || IS("General_Category=Letter"))
        cset_add_table(s, TAB(val__uni_letter), negate);
    else if (IS("N") || IS("Number") || IS("gc=N") || IS("General_Category=Number"))
        cset_add_table(s, TAB(val__uni_number), negate);
    else {
        perr(ps, "unsupported Unicode property escape \\%c{%.*s} (only L/Letter and N/Number)",
             negate ? 'P' : 'p', (int)(len > 40 ? 40 : len), name);
        return -1;
    }
#undef IS
    return 0;
}

/*
 * After a backslash: adds a class escape (\d \D \w \W \s \S \p \P) to s and
 * returns 1, or reads a character escape into *cp and returns 0; -1 on error.
 * `in_class` makes \b a backspace, as in ECMA-262.
 */
static int parse_escape(parser *ps, cset *s, uint32_t *cp, int in_class)
{
    if (at_end(ps)) {
        perr(ps, "pattern ends with a backslash");
        return -1;
    }
    char e = *ps->p++;
    switch (e) {
    case 'd':
        cset_add_table(s, TAB(digit_tab), 0);
        return 1;
    case 'D':
        cset_add_table(s, TAB(digit_tab), 1);
        return 1;
    case 'w':
        cset_add_table(s, TAB(word_tab), 0);
        return 1;
    case 'W':
        cset_add_table(s, TAB(word_tab), 1);
        return 1;
    case 's':
        cset_add_table(s, TAB(space_tab), 0);
        return 1;
    case 'S':
        cset_add_table(s, TAB(space_tab), 1);
        return 1;
    case 'p':
    case 'P':
        return parse_property(ps, s, e == 'P') < 0 ? -1 : 1;
    case 't':
        *cp = '\t';
        return 0;
    case 'n':
        *cp = '\n';
        return 0;
    case 'v':
        *cp = '\v';
        return 0;
    case 'f':
        *cp = '\f';
        return 0;
    case 'r':
        *cp = '\r';
        return 0;
    case 'b':
        if (in_class) {
            *cp = 0x08;
            return 0;
        }
        break; /* an assertion outside classes; the caller handles it */
    case 'c':
        if (!at_end(ps) && ((*ps->p >= 'a' && *ps->p <= 'z') || (*ps->p >= 'A' && *ps->p <= 'Z'))) {
            *cp = (uint32_t)(*ps->p++ % 32);
            return 0;
        }
        perr(ps, "\\c must be followed by a letter");
        return -1;
    case '0':
        if (!at_end(ps) && *ps->p >= '0' && *ps->p <= '9') {
            perr(ps, "legacy octal escapes (\\0%c) are not supported", *ps->p);
            return -1;
        }
        *cp = 0;
        return 0;
    case 'x': {
        long v = read_hex(ps, 2);
        if (v < 0) {
            perr(ps, "\\x must be followed by two hex digits");
            return -1;
        }
        *cp = (uint32_t)v;
        return 0;
    }
    case 'u': {
        if (!at_end(ps) && *ps->p == '{') {
            ps->p++;
            long v = 0;
            int digits = 0;
            while (!at_end(ps) && hexval(*ps->p) >= 0 && v <= (long)CP_MAX)
                v = v * 16 + hexval(*ps->p++), digits++;
            if (!digits || at_end(ps) || *ps->p != '}' || v > (long)CP_MAX) {
                perr(ps, "bad \\u{...} escape");
                return -1;
            }
            ps->p++;
            *cp = (uint32_t)v;
            return 0;
        }
        long v = read_hex(ps, 4);
        if (v < 0) {
            perr(ps, "\\u must be followed by four hex digits");
            return -1;
        }
        /* A surrogate pair written as two escapes is one code point. */
        if (v >= 0xD800 && v <= 0xDBFF && ps->end - ps->p >= 6 && ps->p[0] == '\\' &&
            ps->p[1] == 'u') {
            const char *save = ps->p;
            ps->p += 2;
            long lo = read_hex(ps, 4);
            if (lo >= 0xDC00 && lo <= 0xDFFF)
                v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
            else
                ps->p = save;
        }
        *cp = (uint32_t)v;
        return 0;
    }
    default:
        break;
    }
    if (e >= '1' && e <= '9') {
        perr(ps, "backreferences (\\%c) are not supported", e);
        return -1;
    }
    if (e == 'k') {
        perr(ps, "named backreferences (\\k<...>) are not supported");
        return -1;
    }
    if (e == 'b' || e == 'B') {
        perr(ps, "internal: \\%c reached parse_escape", e);
        return -1;
    }
    if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || (e >= '0' && e <= '9')) {
        /*
         * ECMA-262 with the u flag rejects these; without it they are the
         * letter itself. Either way a PCRE user meant something else (\A, \z,
         * \h), so refuse rather than match a literal letter.
         */
        perr(ps, "unknown escape \\%c", e);
        return -1;
    }
    ps->p--;
    *cp = next_cp(ps); /* an escaped punctuation or other character is itself */
    return 0;
}

static node *parse_class(parser *ps)
{
    /* The caller consumed '['. */
    int cls = new_class(ps);
    cset s = {0};
    int negate = 0;
    if (!at_end(ps) && *ps->p == '^') {
        negate = 1;
        ps->p++;
    }
    for (;;) {
        if (at_end(ps)) {
            perr(ps, "unterminated character class");
            break;
        }
        if (*ps->p == ']') {
            ps->p++;
            break;
        }
        uint32_t lo;
        int lo_set = 0;
        if (*ps->p == '\\') {
            ps->p++;
            lo_set = parse_escape(ps, &s, &lo, 1);
            if (lo_set < 0)
                break;
        } else {
            lo = next_cp(ps);
        }
        /* A '-' between two single characters makes a range; elsewhere it is itself. */
        if (ps->end - ps->p >= 2 && ps->p[0] == '-' && ps->p[1] != ']') {
            const char *save = ps->p;
            ps->p++;
            uint32_t hi;
            int hi_set = 0;
            cset tmp = {0};
            if (*ps->p == '\\') {
                ps->p++;
                hi_set = parse_escape(ps, &tmp, &hi, 1);
                if (hi_set < 0) {
                    free(tmp.r);
                    break;
                }
            } else {
                hi = next_cp(ps);
            }
            if (!lo_set && !hi_set) {
                if (lo > hi) {
                    perr(ps, "character class range out of order");
                    free(tmp.r);
                    break;
                }
                cset_add(&s, lo, hi);
                free(tmp.r);
                continue;
            }
            /* Annex B: with a class escape at either end the '-' is literal. */
            free(tmp.r);
            ps->p = save;
        }
        if (!lo_set)
            cset_add(&s, lo, lo);
    }
    cset_normalize(&s);
    if (negate)
        cset_invert(&s);
    ps->classes[cls] = s;
    return ps->failed ? NULL : class_node(ps, cls);
}

/* Reads a decimal number for a quantifier; -1 when there is none. */
static long read_dec(parser *ps)
{
    long v = -1;
    while (!at_end(ps) && *ps->p >= '0' && *ps->p <= '9') {
        v = (v < 0 ? 0 : v) * 10 + (*ps->p++ - '0');
        if (v > 1000000)
            v = 1000000; /* saturate; the caller caps it with a clear message */
    }
    return v;
}

/*
 * Parses {n}, {n,} or {n,m} at ps->p. Returns 1 with min/max set, or 0 (and
 * leaves ps->p alone) when the brace does not start a quantifier, in which
 * case Annex B reads it as a literal '{'.
 */
static int parse_braces(parser *ps, int *min, int *max)
{
    const char *save = ps->p;
    ps->p++; /* '{' */
    long lo = read_dec(ps);
    long hi = lo;
    if (lo < 0)
        goto literal;
    if (!at_end(ps) && *ps->p == ',') {
        ps->p++;
        hi = read_dec(ps); /* -1: unbounded */
    }
    if (at_end(ps) || *ps->p != '}')
        goto literal;
    ps->p++;
    if (lo > REPEAT_MAX || hi > REPEAT_MAX) {
        perr(ps, "repetition count above %d", REPEAT_MAX);
        return 1;
    }
    if (hi >= 0 && hi < lo) {
        perr(ps, "numbers out of order in {%ld,%ld}", lo, hi);
        return 1;
    }
    *min = (int)lo;
    *max = (int)hi;
    return 1;
literal:
    ps->p = save;
    return 0;
}

static node *parse_alt(parser *ps);

static node *parse_atom(parser *ps)
{
    char c = *ps->p;
    if (c == '(') {
        ps->p++;
        if (ps->end - ps->p >= 1 && *ps->p == '?') {
            if (ps->end - ps->p >= 2 && ps->p[1] == ':') {
                ps->p += 2;
            } else if (ps->end - ps->p >= 2 && (ps->p[1] == '=' || ps->p[1] == '!')) {
                perr(ps, "lookahead (?%c...) is not supported", ps->p[1]);
                return NULL;
            } else if (ps->end - ps->p >= 3 && ps->p[1] == '<' &&
                       (ps->p[2] == '=' || ps->p[2] == '!')) {
                perr(ps, "lookbehind (?<%c...) is not supported", ps->p[2]);
                return NULL;
            } else if (ps->end - ps->p >= 2 && ps->p[1] == '<') {
                /* A named group: the name only matters to backreferences, which we refuse. */
                const char *gt = memchr(ps->p, '>', (size_t)(ps->end - ps->p));
                if (!gt || gt == ps->p + 2) {
                    perr(ps, "bad group name");
                    return NULL;
                }
                ps->p = gt + 1;
            } else {
                perr(ps, "unsupported group syntax (?%c", ps->end - ps->p >= 2 ? ps->p[1] : ' ');
                return NULL;
            }
        }
        if (++ps->depth > NEST_MAX) {
            perr(ps, "groups nested deeper than %d", NEST_MAX);
            return NULL;
        }
        node *inner = parse_alt(ps);
        ps->depth--;
        if (ps->failed)
            return NULL;
        if (at_end(ps) || *ps->p != ')') {
            perr(ps, "missing )");
            return NULL;
        }
        ps->p++;
        return inner;
    }
    if (c == '.') {
        ps->p++;
        int cls = new_class(ps);
        cset s = {0};
        cset_add_table(&s, TAB(newline_tab), 1);
        cset_normalize(&s);
        ps->classes[cls] = s;
        return class_node(ps, cls);
    }
    if (c == '[') {
        ps->p++;
        return parse_class(ps);
    }
    if (c == '\\') {
        ps->p++;
        cset s = {0};
        uint32_t cp;
        int r = parse_escape(ps, &s, &cp, 0);
        if (r < 0) {
            free(s.r);
            return NULL;
        }
        if (r == 1) {
            int cls = new_class(ps);
            cset_normalize(&s);
            ps->classes[cls] = s;
            return class_node(ps, cls);
        }
        free(s.r);
        node *n = mk(ps, N_CHAR, NULL, NULL);
        n->c = cp;
        return n;
    }
    node *n = mk(ps, N_CHAR, NULL, NULL);
    n->c = next_cp(ps);
    return n;
}

static node *parse_term(parser *ps)
{
    char c = *ps->p;
    if (c == '^' || c == '$') {
        ps->p++;
        return mk(ps, c == '^' ? N_BOL : N_EOL, NULL, NULL);
    }
    if (c == '\\' && ps->end - ps->p >= 2 && (ps->p[1] == 'b' || ps->p[1] == 'B')) {
        ps->p += 2;
        return mk(ps, ps->p[-1] == 'b' ? N_WORDB : N_NWORDB, NULL, NULL);
    }
    int dummy_min, dummy_max;
    if (c == '*' || c == '+' || c == '?' ||
        (c == '{' && parse_braces(ps, &dummy_min, &dummy_max))) {
        if (!ps->failed)
            perr(ps, "nothing to repeat before '%c'", c);
        return NULL;
    }
    if (c == ')') {
        perr(ps, "unmatched )");
        return NULL;
    }
    node *atom = parse_atom(ps);
    if (!atom)
        return NULL;
    /* Syntactic, not by node type: a group's body may itself be a repeat, "(a*)*". */
    int quantified = 0;
    for (;;) {
        if (at_end(ps))
            return atom;
        int min, max;
        c = *ps->p;
        if (c == '*')
            min = 0, max = -1, ps->p++;
        else if (c == '+')
            min = 1, max = -1, ps->p++;
        else if (c == '?')
            min = 0, max = 1, ps->p++;
        else if (c == '{' && parse_braces(ps, &min, &max)) {
            if (ps->failed)
                return NULL;
        } else
            return atom;
        if (!at_end(ps) && *ps->p == '?')
            ps->p++; /* lazy: the same language, so the same yes/no answer */
        if (quantified++) {
            perr(ps, "nothing to repeat (a quantifier follows a quantifier)");
            return NULL;
        }
        node *r = mk(ps, N_REPEAT, atom, NULL);
        r->min = min;
        r->max = max;
        atom = r;
    }
}

static node *parse_cat(parser *ps)
{
    node *seq = mk(ps, N_EMPTY, NULL, NULL);
    while (!at_end(ps) && *ps->p != '|' && *ps->p != ')') {
        node *t = parse_term(ps);
        if (!t)
            return NULL;
        seq = seq->type == N_EMPTY ? t : mk(ps, N_CAT, seq, t);
    }
    return seq;
}

static node *parse_alt(parser *ps)
{
    node *left = parse_cat(ps);
    while (left && !at_end(ps) && *ps->p == '|') {
        ps->p++;
        node *right = parse_cat(ps);
        if (!right)
            return NULL;
        left = mk(ps, N_ALT, left, right);
    }
    return left;
}

/* ---- code generation ------------------------------------------------------ */

static int emit(parser *ps, unsigned char op)
{
    if (ps->n_prog >= VAL__RE_PROG_MAX) {
        perr(ps, "pattern expands past %d instructions", VAL__RE_PROG_MAX);
        return -1;
    }
    if (ps->n_prog == ps->alloc_prog) {
        ps->alloc_prog = ps->alloc_prog ? ps->alloc_prog * 2 : 32;
        ps->prog = wk_xrealloc(ps->prog, (size_t)ps->alloc_prog * sizeof *ps->prog);
    }
    inst *i = &ps->prog[ps->n_prog];
    memset(i, 0, sizeof *i);
    i->op = op;
    return ps->n_prog++;
}

static int gen(parser *ps, const node *n, int depth)
{
    /* The tree is as deep as the pattern is long; deep CAT chains recurse on the left. */
    if (depth > 4 * NEST_MAX + VAL__RE_PATTERN_MAX) {
        perr(ps, "pattern too deeply nested");
        return -1;
    }
    int pc;
    switch (n->type) {
    case N_EMPTY:
        return 0;
    case N_CHAR:
        if ((pc = emit(ps, I_CHAR)) < 0)
            return -1;
        ps->prog[pc].c = n->c;
        return 0;
    case N_CLASS:
        if ((pc = emit(ps, I_CLASS)) < 0)
            return -1;
        ps->prog[pc].x = n->cls;
        return 0;
    case N_BOL:
        return emit(ps, I_BOL) < 0 ? -1 : 0;
    case N_EOL:
        return emit(ps, I_EOL) < 0 ? -1 : 0;
    case N_WORDB:
        return emit(ps, I_WORDB) < 0 ? -1 : 0;
    case N_NWORDB:
        return emit(ps, I_NWORDB) < 0 ? -1 : 0;
    case N_CAT:
        if (gen(ps, n->a, depth + 1) < 0)
            return -1;
        return gen(ps, n->b, depth + 1);
    case N_ALT: {
        /* SPLIT L1, L2; L1: a; JMP end; L2: b; end: */
        int split = emit(ps, I_SPLIT);
        if (split < 0)
            return -1;
        ps->prog[split].x = split + 1;
        if (gen(ps, n->a, depth + 1) < 0)
            return -1;
        int jmp = emit(ps, I_JMP);
        if (jmp < 0)
            return -1;
        ps->prog[split].y = ps->n_prog;
        if (gen(ps, n->b, depth + 1) < 0)
            return -1;
        ps->prog[jmp].x = ps->n_prog;
        return 0;
    }
    case N_REPEAT: {
        for (int i = 0; i < n->min; i++)
            if (gen(ps, n->a, depth + 1) < 0)
                return -1;
        if (n->max < 0) {
            /* L: SPLIT body, end; body: a; JMP L; end: */
            int split = emit(ps, I_SPLIT);
            if (split < 0)
                return -1;
            ps->prog[split].x = split + 1;
            if (gen(ps, n->a, depth + 1) < 0)
                return -1;
            int jmp = emit(ps, I_JMP);
            if (jmp < 0)
                return -1;
            ps->prog[jmp].x = split;
            ps->prog[split].y = ps->n_prog;
            return 0;
        }
        /* Each optional copy: SPLIT body, end; body: a; ... all exits to the common end. */
        int first = ps->n_prog;
        for (int i = n->min; i < n->max; i++) {
            int split = emit(ps, I_SPLIT);
            if (split < 0)
                return -1;
            ps->prog[split].x = split + 1;
            ps->prog[split].y = -1; /* patched below */
            if (gen(ps, n->a, depth + 1) < 0)
                return -1;
        }
        for (int pc2 = first; pc2 < ps->n_prog; pc2++)
            if (ps->prog[pc2].op == I_SPLIT && ps->prog[pc2].y == -1)
                ps->prog[pc2].y = ps->n_prog;
        return 0;
    }
    }
    return 0;
}

int val__re_compile(const char *pattern, val__re **out, char *err, size_t errlen)
{
    int rc = WK_EINVAL;
    parser ps = {0};
    ps.err = err;
    ps.errlen = errlen;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    size_t len = strlen(pattern);
    if (len > VAL__RE_PATTERN_MAX) {
        perr(&ps, "pattern longer than %d bytes", VAL__RE_PATTERN_MAX);
        goto cleanup;
    }
    ps.p = pattern;
    ps.end = pattern + len;
    node *root = parse_alt(&ps);
    if (!root || ps.failed)
        goto cleanup;
    if (!at_end(&ps)) {
        perr(&ps, "unmatched )");
        goto cleanup;
    }
    if (gen(&ps, root, 0) < 0 || emit(&ps, I_MATCH) < 0)
        goto cleanup;

    val__re *re = wk_xcalloc(1, sizeof *re);
    re->prog = ps.prog;
    re->n = ps.n_prog;
    re->classes = ps.classes;
    re->n_classes = ps.n_classes;
    ps.prog = NULL; /* the compiled pattern owns them now */
    ps.classes = NULL;
    ps.n_classes = 0;
    *out = re;
    rc = 0;
cleanup:
    for (size_t i = 0; i < ps.n_nodes; i++)
        free(ps.nodes[i]);
    free(ps.nodes);
    for (int i = 0; i < ps.n_classes; i++)
        free(ps.classes[i].r);
    free(ps.classes);
    free(ps.prog);
    return rc;
}

void val__re_free(val__re *re)
{
    if (!re)
        return;
    for (int i = 0; i < re->n_classes; i++)
        free(re->classes[i].r);
    free(re->classes);
    free(re->prog);
    free(re);
}

/* ---- matching ---------------------------------------------------------------- */

typedef struct vm {
    const val__re *re;
    int *stack;     /* pcs waiting in the epsilon closure; each pc at most once */
    unsigned *mark; /* mark[pc] == gen: pc already in this step's list */
    unsigned gen;
    int64_t *budget;
    int matched;
} vm;

/*
 * Adds pc and everything reachable from it without consuming input to list,
 * given the code points before (prev) and at (cur) the position; -1 stands
 * for the start or end of the subject. Returns -1 when the budget ran out.
 */
static int add_thread(vm *m, int *list, int *n, int pc, long prev, long cur, size_t pos, size_t len)
{
    int sp = 0;
    if (m->mark[pc] == m->gen)
        return 0;
    m->mark[pc] = m->gen;
    m->stack[sp++] = pc;
    while (sp > 0) {
        if (--*m->budget < 0)
            return -1;
        const inst *i = &m->re->prog[m->stack[--sp]];
        int next[2], k = 0;
        switch (i->op) {
        case I_CHAR:
        case I_CLASS:
            list[(*n)++] = (int)(i - m->re->prog);
            break;
        case I_MATCH:
            m->matched = 1;
            return 0;
        case I_JMP:
            next[k++] = i->x;
            break;
        case I_SPLIT:
            next[k++] = i->y; /* pushed first, popped last: x has priority (it does not matter) */
            next[k++] = i->x;
            break;
        case I_BOL:
            if (pos == 0)
                next[k++] = (int)(i - m->re->prog) + 1;
            break;
        case I_EOL:
            if (pos == len)
                next[k++] = (int)(i - m->re->prog) + 1;
            break;
        case I_WORDB:
        case I_NWORDB:
            if ((is_word(prev) != is_word(cur)) == (i->op == I_WORDB))
                next[k++] = (int)(i - m->re->prog) + 1;
            break;
        }
        for (int j = 0; j < k; j++) {
            if (m->mark[next[j]] != m->gen) {
                m->mark[next[j]] = m->gen;
                m->stack[sp++] = next[j];
            }
        }
    }
    return 0;
}

int val__re_search(const val__re *re, const char *s, size_t len, int64_t *budget)
{
    int rc = 0;
    vm m = {.re = re, .budget = budget};
    int *clist = wk_xmalloc((size_t)re->n * sizeof *clist);
    int *nlist = wk_xmalloc((size_t)re->n * sizeof *nlist);
    m.stack = wk_xmalloc((size_t)re->n * sizeof *m.stack);
    m.mark = wk_xcalloc((size_t)re->n, sizeof *m.mark);
    int nc = 0, nn = 0;
    const unsigned char *u = (const unsigned char *)s;
    long prev = -1;
    size_t pos = 0, used = 0;
    long cur = len ? (long)utf8_next(u, len, &used) : -1;

    m.gen = 1;
    for (;;) {
        /* A new attempt starts at every position: the search is unanchored. */
        if (add_thread(&m, clist, &nc, 0, prev, cur, pos, len) < 0) {
            rc = WK_ETOOBIG;
            goto cleanup;
        }
        if (m.matched) {
            rc = 1;
            goto cleanup;
        }
        if (pos >= len)
            break;
        size_t npos = pos + used;
        size_t nused = 0;
        long ncur = npos < len ? (long)utf8_next(u + npos, len - npos, &nused) : -1;
        m.gen++;
        nn = 0;
        for (int k = 0; k < nc; k++) {
            const inst *i = &re->prog[clist[k]];
            int ok = i->op == I_CHAR
                         ? (long)i->c == cur
                         : cset_has(re->classes[i->x].r, re->classes[i->x].n, (uint32_t)cur);
            if (ok && add_thread(&m, nlist, &nn, clist[k] + 1, cur, ncur, npos, len) < 0) {
                rc = WK_ETOOBIG;
                goto cleanup;
            }
            if (m.matched) {
                rc = 1;
                goto cleanup;
            }
        }
        int *t = clist;
        clist = nlist;
        nlist = t;
        nc = nn;
        prev = cur;
        cur = ncur;
        pos = npos;
        used = nused;
    }
cleanup:
    free(clist);
    free(nlist);
    free(m.stack);
    free(m.mark);
    return rc;
}
