/*
 * What every validator uses: verdicts with capped, prompt-safe text, default
 * limits, pulling the code out of a model's answer, language names, aliases
 * and extensions, SHA-256 for the test-file check, and the table of
 * validators looked up by name.
 */
#include "val_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern const val_ops val__syntax_ops;
extern const val_ops val__compile_ops;
extern const val_ops val__tests_ops;
extern const val_ops val__schema_ops;
extern const val_ops val__label_ops;

const val_ops *const val_table[] = {
    &val__syntax_ops,
    &val__compile_ops,
    &val__tests_ops,
    &val__schema_ops,
    &val__patch_ops,
    &val__label_ops,
    NULL,
};

const val_ops *val_find(const char *name)
{
    if (!name)
        return NULL;
    for (int i = 0; val_table[i]; i++)
        if (strcmp(val_table[i]->name, name) == 0)
            return val_table[i];
    return NULL;
}

/* ---- text helpers -------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not text. */
    if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

/*
 * Copy of s made safe for a feedback prompt: invalid UTF-8 becomes '?',
 * control characters other than newline and tab become \xNN. Caller frees.
 * Static (nothing outside this file calls it); the name is kept so the
 * lines that call it stay as they were.
 */
static char *sanitize(const char *s, size_t n)
{
    wk_buf b;
    /* Worst case: every byte becomes a 4-byte \xNN escape. */
    wk_buf_init(&b, n * 4 + 1);
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t len = utf8_seq_len(u + i, n - i);
        if (len == 0) {
            wk_buf_append(&b, "?", 1);
            i++;
        } else if (len == 1 && (u[i] < 0x20 || u[i] == 0x7f) && u[i] != '\n' && u[i] != '\t') {
            wk_buf_appendf(&b, "\\x%02x", u[i]);
            i++;
        } else {
            wk_buf_append(&b, s + i, len);
            i += len;
        }
    }
    return wk_buf_detach(&b, NULL);
}

size_t val__utf8_floor(const char *s, size_t n)
{
    /* Step back over continuation bytes so the cut lands before a lead byte. */
    size_t cut = n;
    while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
        cut--;
    return cut;
}

char *val__tail_lines(const char *s, size_t n, int max_lines, size_t max_bytes)
{
    /* Ignore trailing newlines so "the last line" is the last one with text. */
    size_t end = n;
    while (end > 0 && (s[end - 1] == '\n' || s[end - 1] == '\r'))
        end--;
    size_t start = end;
    int lines = 0;
    while (start > 0) {
        if (s[start - 1] == '\n' && ++lines >= max_lines)
            break;
        start--;
    }
    if (end - start > max_bytes) {
        start = end - max_bytes;
        /* Move forward to the next character boundary. */
        while (start < end && ((unsigned char)s[start] & 0xc0) == 0x80)
            start++;
    }
    return wk_xstrndup(s + start, end - start);
}

/* ---- verdicts ---------------------------------------------------------- */

void val_verdict_clear(val_verdict *v)
{
    free(v->message);
    free(v->evidence);
    free(v->note);
    v->message = NULL;
    v->evidence = NULL;
    v->note = NULL;
    v->tests = (val_test_counts){0};
    v->label[0] = '\0';
    v->score = -1;
}

/* A one-line, prompt-safe copy of s capped at VAL_MESSAGE_MAX bytes; "..." marks a cut. */
static char *one_line(const char *s)
{
    char *esc = wk_escape_ctl(s, strlen(s), VAL_MESSAGE_MAX);
    char *clean = sanitize(esc, strlen(esc));
    free(esc);
    if (strlen(clean) > VAL_MESSAGE_MAX) {
        /* Keep room for the "..." that marks the cut. */
        size_t cut = val__utf8_floor(clean, VAL_MESSAGE_MAX - 3);
        memcpy(clean + cut, "...", 4);
    }
    return clean;
}

void val_verdict_note(val_verdict *v, const char *note)
{
    free(v->note);
    v->note = note ? one_line(note) : NULL;
}

static char *dup_or_null(const char *s)
{
    return s ? wk_xstrdup(s) : NULL;
}

void val_verdict_copy(val_verdict *dst, const val_verdict *src)
{
    val_verdict_clear(dst);
    dst->pass = src->pass;
    memcpy(dst->validator, src->validator, sizeof dst->validator);
    memcpy(dst->reason, src->reason, sizeof dst->reason);
    dst->message = dup_or_null(src->message);
    dst->evidence = dup_or_null(src->evidence);
    dst->note = dup_or_null(src->note);
    dst->tests = src->tests;
    memcpy(dst->label, src->label, sizeof dst->label);
    dst->score = src->score;
}

cJSON *val_verdict_json(const val_verdict *v)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "pass", v->pass);
    if (v->note && *v->note)
        cJSON_AddStringToObject(o, "note", v->note);
    if (!v->pass) {
        cJSON_AddStringToObject(o, "validator", v->validator);
        cJSON_AddStringToObject(o, "reason", v->reason);
        cJSON_AddStringToObject(o, "message", v->message ? v->message : "");
    }
    /* A classify verdict: the label read, what it was read from, the answer's own doubt. */
    if (v->label[0]) {
        cJSON_AddStringToObject(o, "label", v->label);
        if (v->score >= 0)
            cJSON_AddNumberToObject(o, "score", v->score);
        if (v->pass && v->evidence)
            cJSON_AddStringToObject(o, "evidence", v->evidence);
    }
    return o;
}

void val_verdict_pass(val_verdict *v)
{
    val_verdict_clear(v);
    v->pass = 1;
    v->validator[0] = '\0';
    v->reason[0] = '\0';
}

void val_verdict_fail(val_verdict *v, const char *validator, const char *reason,
                      const char *message, const char *evidence)
{
    val_verdict_clear(v);
    v->pass = 0;
    snprintf(v->validator, sizeof v->validator, "%s", validator ? validator : "");
    snprintf(v->reason, sizeof v->reason, "%s", reason ? reason : "");
    /* One line: newlines and other control characters become escapes. */
    if (message)
        v->message = one_line(message);
    if (evidence) {
        char *clean = sanitize(evidence, strlen(evidence));
        size_t len = strlen(clean);
        if (len > VAL_EVIDENCE_MAX)
            clean[val__utf8_floor(clean, VAL_EVIDENCE_MAX)] = '\0';
        v->evidence = clean;
    }
}

/* ---- limits ------------------------------------------------------------ */

void val_limits_default(val_limits *l)
{
    l->timeout_ms = 10000;
    l->cpu_s = 5; /* soft limit; the hard limit (SIGKILL) is one second later */
    l->mem_bytes = 1024ul * 1024 * 1024;
    l->nproc = 64;
    l->fsize_bytes = 64ul * 1024 * 1024;
    l->nofile = 256;
    l->tmpfs_bytes = 64ul * 1024 * 1024;
    l->output_cap = 64 * 1024;
}

/* ---- code extraction ----------------------------------------------------- */

/*
 * Models wrap code in several ways: Markdown fences (``` or ~~~, closed or
 * cut off), CodeLlama's [PYTHON]...[/PYTHON] tags (most of its real answers),
 * HTML <code> blocks. An answer may hold several blocks: a usage example
 * after the function, a shell command before it, a draft and its correction.
 * Every block is a candidate; the one that defines something (a function, a
 * class, not a test) wins over one that does not, a block tagged with a
 * programming language (or untagged) over one tagged otherwise ("text",
 * "output"), a closed block over a cut one, and among equals the last: the
 * corrected version comes after the draft. No block: the whole answer.
 */

/* Candidate blocks looked at in one answer; more are ignored. */
#define BLOCKS_MAX 64

typedef struct block {
    const char *start; /* where the opening marker starts, for containment */
    const char *body;  /* the code */
    const char *end;   /* one past the code */
    const char *stop;  /* one past the closing marker (or the text's end) */
    int complete;      /* closed by its marker */
    int code_tag;      /* untagged, or tagged with a language we know */
    int kind;          /* FENCE, TAG or HTML (<code>: entities are decoded) */
} block;

enum { FENCE, TAG, HTML };

/* 1 when p starts a line of s, after nothing but spaces and tabs (or after "<pre...>"). */
static int at_line_start(const char *s, const char *p)
{
    while (p > s && (p[-1] == ' ' || p[-1] == '\t'))
        p--;
    return p == s || p[-1] == '\n';
}

/* Counts the characters c at s (a fence needs three or more). */
static size_t count_run(const char *s, char c)
{
    size_t n = 0;
    while (s[n] == c)
        n++;
    return n;
}

static const char *next_line(const char *line)
{
    const char *nl = strchr(line, '\n');
    return nl ? nl + 1 : NULL;
}

/* 1 when the tag (len bytes) names a language we know, or is empty. */
static int is_code_tag(const char *tag, size_t len)
{
    while (len > 0 && isspace((unsigned char)*tag))
        tag++, len--;
    size_t n = 0;
    while (n < len && !isspace((unsigned char)tag[n]) && tag[n] != '{' && tag[n] != ',')
        n++;
    if (n == 0)
        return 1;
    char word[32];
    if (n >= sizeof word)
        return 0;
    memcpy(word, tag, n);
    word[n] = '\0';
    return val_lang_canonical(word) != NULL;
}

/*
 * The fenced blocks: a line opening with up to three spaces, then three or
 * more backticks or tildes; closed by a line starting with as many of the
 * same (a model that forgets the newline, "code```", still closes it when no
 * closing line follows). An unclosed fence runs to the end of the text.
 */
static int find_fences(const char *s, block *out, int n, int max)
{
    const char *line = s;
    while (line && *line && n < max) {
        const char *p = line;
        int indent = 0;
        while (*p == ' ' && indent < 3)
            p++, indent++;
        char c = *p;
        size_t ticks = (c == '`' || c == '~') ? count_run(p, c) : 0;
        if (ticks < 3) {
            line = next_line(line);
            continue;
        }
        const char *tag = p + ticks;
        const char *body = next_line(tag);
        block b = {.start = p, .body = body ? body : tag + strlen(tag), .kind = FENCE};
        b.code_tag = is_code_tag(tag, (size_t)(strchrnul(tag, '\n') - tag));
        b.end = NULL;
        for (const char *l = body; l && *l; l = next_line(l)) {
            const char *q = l;
            while (*q == ' ')
                q++;
            if (count_run(q, c) >= ticks) {
                b.end = l;
                b.complete = 1;
                b.stop = next_line(l);
                break;
            }
        }
        if (!b.end && body && c == '`') {
            const char *inl = strstr(body, "```");
            if (inl) {
                b.end = inl;
                b.complete = 1;
                b.stop = next_line(inl);
            }
        }
        if (!b.end)
            b.end = b.body + strlen(b.body);
        out[n++] = b;
        line = b.complete ? b.stop : NULL;
    }
    return n;
}

/* [PYTHON]...[/PYTHON] and the like for every language we know; [TESTS] is not code. */
static int find_tags(const char *s, block *out, int n, int max)
{
    for (const char *p = strchr(s, '['); p && n < max; p = strchr(p + 1, '[')) {
        const char *close = strchr(p + 1, ']');
        if (!close || close - p - 1 < 1 || close - p - 1 > 20 || p[1] == '/')
            continue;
        char tag[24];
        size_t len = (size_t)(close - p - 1);
        memcpy(tag, p + 1, len);
        tag[len] = '\0';
        int upper = 1;
        for (size_t i = 0; i < len; i++)
            upper &=
                isupper((unsigned char)tag[i]) || tag[i] == '+' || isdigit((unsigned char)tag[i]);
        /* On a line of its own, as CodeLlama writes it: a[C] in code is no tag. */
        if (!upper || !val_lang_canonical(tag) || !at_line_start(s, p))
            continue;
        char end_tag[32];
        snprintf(end_tag, sizeof end_tag, "[/%s]", tag);
        block b = {.start = p, .body = close + 1, .code_tag = 1, .kind = TAG};
        if (*b.body == '\n')
            b.body++;
        const char *e = strstr(b.body, end_tag);
        b.complete = e != NULL;
        b.end = e ? e : b.body + strlen(b.body);
        b.stop = e ? e + strlen(end_tag) : b.end;
        out[n++] = b;
        p = b.stop - 1;
        if (!*b.stop)
            break;
    }
    return n;
}

/*
 * <code>...</code>, <code class="language-x">...</code>, at the start of a
 * line or right after <pre>: an inline <code> in prose, or in a string of
 * the code itself, is not a block.
 */
static int find_html(const char *s, block *out, int n, int max)
{
    for (const char *p = strstr(s, "<code"); p && n < max; p = strstr(p + 1, "<code")) {
        if (p[5] != '>' && p[5] != ' ')
            continue;
        const char *lt = p;
        if (p - s >= 5 && p[-1] == '>') {
            /* "<pre>" or "<pre class=...>" just before */
            lt = p - 1;
            while (lt > s && *lt != '<')
                lt--;
            if (strncmp(lt, "<pre", 4) != 0)
                lt = p;
        }
        if (!at_line_start(s, lt))
            continue;
        const char *gt = strchr(p, '>');
        if (!gt)
            break;
        block b = {.start = p, .body = gt + 1, .code_tag = 1, .kind = HTML};
        if (*b.body == '\n')
            b.body++;
        const char *e = strstr(b.body, "</code>");
        b.complete = e != NULL;
        b.end = e ? e : b.body + strlen(b.body);
        b.stop = e ? e + 7 : b.end;
        out[n++] = b;
        p = b.stop - 1;
        if (!*b.stop)
            break;
    }
    return n;
}

/* 1 when the identifier at p names a test ("test_x", "TestX"), which is not the answer. */
static int test_name(const char *p)
{
    while (*p == ' ' || *p == '*')
        p++;
    return strncasecmp(p, "test", 4) == 0;
}

/* 1 when the line (trimmed start) opens a definition other than a test. */
static int defines(const char *l, const char *eol)
{
    static const char *const kw[] = {
        "def ",
        "async def ",
        "class ",
        "function ",
        "async function ",
        "fn ",
        "pub fn ",
        "func ",
        "struct ",
        "interface ",
        "export function ",
        "export default function ",
        "export class ",
        "pub struct ",
        "impl ",
        NULL,
    };
    for (int i = 0; kw[i]; i++) {
        size_t n = strlen(kw[i]);
        if ((size_t)(eol - l) > n && strncmp(l, kw[i], n) == 0)
            return !test_name(l + n);
    }
    /* const f = (..) => / const f = function: a JavaScript definition. */
    if (strncmp(l, "const ", 6) == 0 || strncmp(l, "let ", 4) == 0 ||
        strncmp(l, "export const ", 13) == 0) {
        const char *arrow = memmem(l, (size_t)(eol - l), "=>", 2);
        const char *fun = memmem(l, (size_t)(eol - l), "function", 8);
        return arrow || fun;
    }
    /* C-like: "type name(args) {" or "... )" with the brace on the next line. */
    const char *paren = memchr(l, '(', (size_t)(eol - l));
    if (!paren || paren == l || l[0] == '#' || l[0] == '/' || l[0] == '*')
        return 0;
    static const char *const stmt[] = {"if",     "for",   "while", "switch", "else", "do",
                                       "return", "catch", "elif",  "with",   NULL};
    for (int i = 0; stmt[i]; i++) {
        size_t n = strlen(stmt[i]);
        if (strncmp(l, stmt[i], n) == 0 && !isalnum((unsigned char)l[n]) && l[n] != '_')
            return 0;
    }
    const char *last = eol;
    while (last > l && isspace((unsigned char)last[-1]))
        last--;
    if (last == l || (last[-1] != '{' && last[-1] != ')'))
        return 0;
    /* Two words before the paren (a type and a name): not a call statement. */
    const char *q = paren;
    while (q > l && isspace((unsigned char)q[-1]))
        q--;
    const char *name = q;
    while (name > l && (isalnum((unsigned char)name[-1]) || name[-1] == '_'))
        name--;
    if (name == q || name == l)
        return 0;
    /* The word before the name ends a type ("int", "char *", "Foo &"), not ">>>" or "=". */
    const char *t = name;
    while (t > l && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '*' || t[-1] == '&'))
        t--;
    if (t == l || !(isalnum((unsigned char)t[-1]) || t[-1] == '_'))
        return 0;
    return !test_name(name);
}

static int has_definition(const block *b)
{
    for (const char *l = b->body; l < b->end;) {
        const char *eol = memchr(l, '\n', (size_t)(b->end - l));
        if (!eol)
            eol = b->end;
        const char *t = l;
        while (t < eol && (*t == ' ' || *t == '\t'))
            t++;
        if (t < eol && defines(t, eol))
            return 1;
        l = eol + 1;
    }
    return 0;
}

/* The body with the HTML entities a <code> block carries decoded. Caller frees. */
static char *html_decode(const char *s, size_t n)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&lt;", '<'},   {"&gt;", '>'},    {"&quot;", '"'},
                {"&#39;", '\''}, {"&#x27;", '\''}, {"&amp;", '&'}};
    char *out = wk_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        int hit = 0;
        for (size_t k = 0; k < sizeof ents / sizeof ents[0] && s[i] == '&'; k++) {
            size_t el = strlen(ents[k].ent);
            if (n - i >= el && memcmp(s + i, ents[k].ent, el) == 0) {
                out[o++] = ents[k].c;
                i += el;
                hit = 1;
                break;
            }
        }
        if (!hit)
            out[o++] = s[i++];
    }
    out[o] = '\0';
    return out;
}

char *val_extract_code(const char *answer)
{
    if (!answer)
        return wk_xstrdup("");
    /* On the stack (3 KiB): a calloc of it cost more than the search itself. */
    block bl[BLOCKS_MAX];
    int n = find_fences(answer, bl, 0, BLOCKS_MAX);
    n = find_tags(answer, bl, n, BLOCKS_MAX);
    n = find_html(answer, bl, n, BLOCKS_MAX);
    /*
     * A marker inside another block ("<code>" in a string of fenced code) is
     * that block's text; but tags wrap code, so a fence inside [PYTHON] tags
     * is the code and the tags around it are not.
     */
    unsigned char skip[BLOCKS_MAX] = {0};
    for (int i = 0; i < n; i++)
        for (int k = 0; k < n; k++)
            if (k != i && bl[k].start < bl[i].start && bl[i].start < bl[k].end) {
                if (bl[k].kind == TAG && bl[i].kind == FENCE)
                    skip[k] = 1;
                else
                    skip[i] = 1;
            }
    const block *best = NULL;
    int best_score = -1;
    for (int i = 0; i < n; i++) {
        if (skip[i])
            continue;
        int score = 4 * has_definition(&bl[i]) + 2 * bl[i].code_tag + bl[i].complete;
        /* Equal scores: the later block (the corrected version comes last). */
        if (score > best_score || (score == best_score && bl[i].start > best->start)) {
            best = &bl[i];
            best_score = score;
        }
    }
    const char *body = answer;
    const char *end = answer + strlen(answer);
    int html = 0;
    if (best) {
        body = best->body;
        end = best->end;
        html = best->kind == HTML;
    } else {
        while (*body && isspace((unsigned char)*body))
            body++;
    }
    /* Drop the blank lines at either end but keep the first line's indent. */
    while (body < end && (*body == '\n' || *body == '\r'))
        body++;
    while (end > body && isspace((unsigned char)end[-1]))
        end--;
    return html ? html_decode(body, (size_t)(end - body)) : wk_xstrndup(body, (size_t)(end - body));
}

/*
 * Finds the first line that opens a backtick fence (up to three spaces of
 * indent, then three or more backticks, as CommonMark has it). Returns its
 * start or NULL.
 */
static const char *find_fence(const char *s, size_t *ticks)
{
    for (const char *line = s; line && *line; line = next_line(line)) {
        const char *p = line;
        int indent = 0;
        while (*p == ' ' && indent < 3)
            p++, indent++;
        size_t n = count_run(p, '`');
        if (n >= 3) {
            *ticks = n;
            return p;
        }
    }
    return NULL;
}

/* The first fence whose tag is "diff" or "patch"; NULL when none is. */
static const char *find_diff_fence(const char *answer)
{
    for (const char *s = answer; s;) {
        size_t ticks = 0;
        const char *open = find_fence(s, &ticks);
        if (!open)
            return NULL;
        const char *tag = open + ticks;
        while (*tag == ' ')
            tag++;
        size_t n = strcspn(tag, " \t\r\n{");
        if ((n == 4 && strncasecmp(tag, "diff", 4) == 0) ||
            (n == 5 && strncasecmp(tag, "patch", 5) == 0))
            return open;
        s = strchr(open, '\n');
        if (s)
            s++;
    }
    return NULL;
}

char *val_extract_diff(const char *answer)
{
    if (!answer)
        return wk_xstrdup("");
    const char *open = find_diff_fence(answer);
    char *d;
    block b;
    if (open && find_fences(open, &b, 0, 1) == 1) {
        /* That fence's body: a diff defines nothing, so the scoring of code blocks is not for it.
         */
        const char *body = b.body, *end = b.end;
        while (body < end && (*body == '\n' || *body == '\r'))
            body++;
        while (end > body && isspace((unsigned char)end[-1]))
            end--;
        d = wk_xstrndup(body, (size_t)(end - body));
    } else {
        d = val_extract_code(answer);
    }
    /* A diff's last line needs its newline. */
    if (d[0] && d[strlen(d) - 1] != '\n') {
        char *nl = wk_xasprintf("%s\n", d);
        free(d);
        d = nl;
    }
    return d;
}

/* ---- languages --------------------------------------------------------- */

/* Canonical languages, their file extension, and the names models and users also use. */
static const struct {
    const char *name;
    const char *ext;
    const char *aliases[6];
} langs[] = {
    {"python", "py", {"py", "python3", "py3"}},
    {"c", "c", {"h"}},
    {"cpp", "cpp", {"c++", "cxx", "cc", "hpp", "hxx"}},
    {"javascript", "js", {"js", "node", "nodejs", "jsx", "mjs", "cjs"}},
    {"typescript", "ts", {"ts", "mts", "cts"}},
    {"tsx", "tsx", {0}},
    {"go", "go", {"golang"}},
    {"rust", "rs", {"rs"}},
    {"java", "java", {0}},
    {"json", "json", {0}},
    {"bash", "sh", {"sh", "shell", "shellscript"}},
};

static int lang_index(const char *language)
{
    if (!language)
        return -1;
    for (int i = 0; i < (int)(sizeof langs / sizeof langs[0]); i++) {
        if (strcasecmp(langs[i].name, language) == 0)
            return i;
        for (int a = 0; a < 6 && langs[i].aliases[a]; a++)
            if (strcasecmp(langs[i].aliases[a], language) == 0)
                return i;
    }
    return -1;
}

const char *val_lang_canonical(const char *language)
{
    int i = lang_index(language);
    return i < 0 ? NULL : langs[i].name;
}

const char *val_lang_ext(const char *language)
{
    int i = lang_index(language);
    return i < 0 ? "txt" : langs[i].ext;
}

/* ---- SHA-256 (FIPS 180-4) ------------------------------------------------ */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t ror(uint32_t x, int n)
{
    return (x >> n) | (x << (32 - n));
}

static void sha_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 =
            k + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) + ((e & f) ^ (~e & g)) + sha_k[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

void val__sha256_hex(const void *data, size_t len, char hex[65])
{
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char *p = data;
    size_t left = len;
    for (; left >= 64; p += 64, left -= 64)
        sha_block(h, p);
    /* The tail, a 0x80 byte, zeros, and the length in bits (big-endian) fill one or two blocks. */
    unsigned char tail[128] = {0};
    memcpy(tail, p, left);
    tail[left] = 0x80;
    size_t tlen = left < 56 ? 64 : 128;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++)
        tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
    sha_block(h, tail);
    if (tlen == 128)
        sha_block(h, tail + 64);
    for (int i = 0; i < 8; i++)
        snprintf(hex + 8 * i, 9, "%08x", h[i]);
}
