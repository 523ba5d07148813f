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
    /* From the tagged fence on, the first fence is that one: the usual extraction does the rest. */
    char *d = val_extract_code(open ? open : answer);
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
