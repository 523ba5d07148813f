/*
 * What every validator uses: verdicts with capped, prompt-safe text, default
 * limits, pulling the code out of a model's answer, language extensions, and
 * the table of validators looked up by name.
 */
#include "val_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern const val_ops val__syntax_ops;
extern const val_ops val__tests_ops;
extern const val_ops val__schema_ops;

const val_ops *const val_table[] = {
    &val__syntax_ops,
    &val__tests_ops,
    &val__schema_ops,
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

char *val__sanitize(const char *s, size_t n)
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
    v->message = NULL;
    v->evidence = NULL;
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
    if (message) {
        /* One line: newlines and other control characters become escapes. */
        char *esc = wk_escape_ctl(message, strlen(message), VAL_MESSAGE_MAX);
        char *clean = val__sanitize(esc, strlen(esc));
        free(esc);
        size_t len = strlen(clean);
        if (len > VAL_MESSAGE_MAX) {
            /* Keep room for the "..." that marks the cut. */
            size_t cut = val__utf8_floor(clean, VAL_MESSAGE_MAX - 3);
            memcpy(clean + cut, "...", 4);
        }
        v->message = clean;
    }
    if (evidence) {
        char *clean = val__sanitize(evidence, strlen(evidence));
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

/* Counts the backticks at s (a fence needs three or more). */
static size_t count_ticks(const char *s)
{
    size_t n = 0;
    while (s[n] == '`')
        n++;
    return n;
}

/*
 * Finds the first line that opens a fence (up to three spaces of indent, then
 * three or more backticks, as CommonMark has it). Returns its start or NULL.
 */
static const char *find_fence(const char *s, size_t *ticks)
{
    const char *line = s;
    while (line && *line) {
        const char *p = line;
        int indent = 0;
        while (*p == ' ' && indent < 3)
            p++, indent++;
        size_t n = count_ticks(p);
        if (n >= 3) {
            *ticks = n;
            return p;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return NULL;
}

char *val_extract_code(const char *answer)
{
    if (!answer)
        return wk_xstrdup("");
    size_t ticks = 0;
    const char *open = find_fence(answer, &ticks);
    if (!open) {
        /* No fence: the whole answer is the code, trimmed. */
        const char *a = answer;
        while (*a && isspace((unsigned char)*a))
            a++;
        size_t len = strlen(a);
        while (len > 0 && isspace((unsigned char)a[len - 1]))
            len--;
        return wk_xstrndup(a, len);
    }
    /* The rest of the opening line is the language tag, which we skip. */
    const char *body = strchr(open + ticks, '\n');
    if (!body)
        return wk_xstrdup(""); /* a fence line and nothing after it */
    body++;

    /*
     * The block ends at the first line that starts with as many backticks; a
     * model that forgets the newline ("code```") still closes it. An unclosed
     * fence (a truncated answer) runs to the end of the text.
     */
    const char *end = NULL;
    for (const char *line = body; line && *line;) {
        const char *p = line;
        while (*p == ' ')
            p++;
        if (count_ticks(p) >= ticks) {
            end = line;
            break;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    if (!end) {
        const char *inl = strstr(body, "```");
        end = inl ? inl : body + strlen(body);
    }
    /* Drop the blank lines at either end but keep the first line's indent. */
    while (body < end && (*body == '\n' || *body == '\r'))
        body++;
    while (end > body && isspace((unsigned char)end[-1]))
        end--;
    return wk_xstrndup(body, (size_t)(end - body));
}

/* ---- languages --------------------------------------------------------- */

static const struct {
    const char *name;
    const char *ext;
} lang_exts[] = {
    {"python", "py"},     {"c", "c"},         {"javascript", "js"}, {"js", "js"},
    {"cpp", "cpp"},       {"c++", "cpp"},     {"typescript", "ts"}, {"ts", "ts"},
    {"go", "go"},         {"rust", "rs"},     {"java", "java"},     {"json", "json"},
    {"sh", "sh"},         {"bash", "sh"},     {"shell", "sh"},
};

const char *val_lang_ext(const char *language)
{
    if (!language)
        return "txt";
    for (size_t i = 0; i < sizeof lang_exts / sizeof lang_exts[0]; i++)
        if (strcasecmp(lang_exts[i].name, language) == 0)
            return lang_exts[i].ext;
    return "txt";
}
