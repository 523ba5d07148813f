/*
 * A tree-less reader for the common OpenAI reply: a 2xx chat completion with
 * one choice and no logprobs. It takes the answer's text, finish reason and
 * usage counts in one pass over the body, where cJSON builds (and then frees)
 * a node per value: the parse and its tree were a tenth of a task's own cost.
 *
 * It reads strict JSON only, and declines (returns 0) on anything else or
 * anything it does not expect: a second choice, logprobs, an escaped key, a
 * number past 63 characters, a \u0000, trailing bytes, deep nesting. The cJSON
 * path then reads the body as before, so what it accepts it must read exactly
 * as that path does (tests/test_openai_fast.c holds it to that).
 */
#include <stdlib.h>
#include <string.h>

#include "prov.h"
#include "lib/util.h"

/* Nesting deeper than this is left to cJSON (its own limit is 1000). */
#define FAST_DEPTH_MAX 32
/* cJSON reads a number from at most 63 characters; longer ones are left to it. */
#define FAST_NUMBER_MAX 63

typedef struct fast {
    const char *p, *end;
    int depth;
} fast;

/* A number as prov__count judges one: kind 0 absent, 1 a number (v), 2 anything else. */
typedef struct fast_count {
    int kind;
    double v;
} fast_count;

static void ws(fast *f)
{
    while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r'))
        f->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/*
 * A string at f->p (the opening quote): checks it and leaves f->p past it.
 * *s and *n: the raw bytes between the quotes; *esc: whether it has escapes.
 * -1 on anything not strict JSON (a raw control byte, a bad escape, a lone
 * surrogate) or on \u0000, which cJSON would cut the text at.
 */
static int str_span(fast *f, const char **s, size_t *n, int *esc)
{
    const char *p = f->p + 1;
    *esc = 0;
    *s = p;
    while (p < f->end && *p != '"') {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            p++;
            continue;
        }
        *esc = 1;
        if (p + 1 >= f->end)
            return -1;
        char e = p[1];
        if (e == 'u') {
            unsigned u;
            if (f->end - p < 6 || hex4(p + 2, &u) || u == 0 || (u >= 0xDC00 && u <= 0xDFFF))
                return -1;
            p += 6;
            if (u >= 0xD800 && u <= 0xDBFF) {
                unsigned lo;
                if (f->end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return -1;
                p += 6;
            }
        } else if (strchr("\"\\/bfnrt", e) && e) {
            p += 2;
        } else {
            return -1;
        }
    }
    if (p >= f->end)
        return -1;
    *n = (size_t)(p - *s);
    f->p = p + 1;
    return 0;
}

/* The text of a checked string span, escapes decoded; caller frees. */
static char *str_text(const char *s, size_t n, int esc)
{
    if (!esc)
        return wk_xstrndup(s, n);
    char *out = wk_xmalloc(n + 1); /* decoding never lengthens: \uXXXX is 6 bytes for <= 4 */
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            out[k++] = s[i++];
            continue;
        }
        char e = s[i + 1];
        if (e != 'u') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            out[k++] = to[strchr(from, e) - from];
            i += 2;
            continue;
        }
        unsigned u, lo;
        hex4(s + i + 2, &u);
        i += 6;
        if (u >= 0xD800 && u <= 0xDBFF) {
            hex4(s + i + 2, &lo);
            i += 6;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (u < 0x80) {
            out[k++] = (char)u;
        } else if (u < 0x800) {
            out[k++] = (char)(0xC0 | (u >> 6));
            out[k++] = (char)(0x80 | (u & 0x3F));
        } else if (u < 0x10000) {
            out[k++] = (char)(0xE0 | (u >> 12));
            out[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[k++] = (char)(0x80 | (u & 0x3F));
        } else {
            out[k++] = (char)(0xF0 | (u >> 18));
            out[k++] = (char)(0x80 | ((u >> 12) & 0x3F));
            out[k++] = (char)(0x80 | ((u >> 6) & 0x3F));
            out[k++] = (char)(0x80 | (u & 0x3F));
        }
    }
    out[k] = '\0';
    return out;
}

/* A strict JSON number at f->p; its value by strtod, as cJSON reads it. */
static int number(fast *f, double *v)
{
    const char *p = f->p, *start = p;
    if (p < f->end && *p == '-')
        p++;
    if (p >= f->end || *p < '0' || *p > '9')
        return -1;
    if (*p == '0')
        p++;
    else
        while (p < f->end && *p >= '0' && *p <= '9')
            p++;
    if (p < f->end && *p == '.') {
        p++;
        if (p >= f->end || *p < '0' || *p > '9')
            return -1;
        while (p < f->end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < f->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < f->end && (*p == '+' || *p == '-'))
            p++;
        if (p >= f->end || *p < '0' || *p > '9')
            return -1;
        while (p < f->end && *p >= '0' && *p <= '9')
            p++;
    }
    size_t n = (size_t)(p - start);
    if (n > FAST_NUMBER_MAX)
        return -1;
    char tmp[FAST_NUMBER_MAX + 1];
    memcpy(tmp, start, n);
    tmp[n] = '\0';
    *v = strtod(tmp, NULL);
    f->p = p;
    return 0;
}

static int literal(fast *f, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
        return -1;
    f->p += n;
    return 0;
}

static int skip_value(fast *f);

/*
 * Walks the object or array at f->p ('{' or '['). For an object, each first
 * occurrence of a key is handed to on_key (arg) with f->p at its value, which
 * on_key reads past (or returns 1 to have it skipped); later duplicates are
 * skipped, as cJSON's lookups find the first. An escaped key declines.
 */
typedef int (*fast_key_fn)(fast *f, void *arg, const char *key, size_t n, unsigned *seen);

static int container(fast *f, fast_key_fn on_key, void *arg)
{
    int obj = *f->p == '{';
    if (++f->depth > FAST_DEPTH_MAX)
        return -1;
    f->p++;
    ws(f);
    unsigned seen = 0;
    if (f->p < f->end && *f->p == (obj ? '}' : ']')) {
        f->p++;
        f->depth--;
        return 0;
    }
    for (;;) {
        if (obj) {
            const char *k;
            size_t kn;
            int esc;
            if (f->p >= f->end || *f->p != '"' || str_span(f, &k, &kn, &esc) || esc)
                return -1;
            ws(f);
            if (f->p >= f->end || *f->p != ':')
                return -1;
            f->p++;
            ws(f);
            int rc = on_key ? on_key(f, arg, k, kn, &seen) : 1;
            if (rc < 0 || (rc == 1 && skip_value(f)))
                return -1;
        } else if (skip_value(f)) {
            return -1;
        }
        ws(f);
        if (f->p >= f->end)
            return -1;
        if (*f->p == ',') {
            f->p++;
            ws(f);
            continue;
        }
        if (*f->p != (obj ? '}' : ']'))
            return -1;
        f->p++;
        f->depth--;
        return 0;
    }
}

static int skip_value(fast *f)
{
    if (f->p >= f->end)
        return -1;
    const char *s;
    size_t n;
    int esc;
    double v;
    switch (*f->p) {
    case '{':
    case '[':
        return container(f, NULL, NULL);
    case '"':
        return str_span(f, &s, &n, &esc);
    case 't':
        return literal(f, "true");
    case 'f':
        return literal(f, "false");
    case 'n':
        return literal(f, "null");
    default:
        return number(f, &v);
    }
}

/* 1 when key (n bytes) is name, and marks bit so later duplicates are skipped. */
static int first_key(const char *key, size_t n, const char *name, unsigned *seen, unsigned bit)
{
    if (n != strlen(name) || memcmp(key, name, n) != 0 || (*seen & bit))
        return 0;
    *seen |= bit;
    return 1;
}

/* What the reader collects. */
typedef struct fast_reply {
    int has_choice, has_message;
    char *text; /* NULL: content absent or null */
    char *finish_reason;
    fast_count prompt, completion, cached, cache_hit;
} fast_reply;

static int count_value(fast *f, fast_count *c)
{
    if (f->p < f->end && (*f->p == '-' || (*f->p >= '0' && *f->p <= '9'))) {
        c->kind = 1;
        return number(f, &c->v);
    }
    c->kind = 2;
    return skip_value(f);
}

static int on_details(fast *f, void *arg, const char *key, size_t n, unsigned *seen)
{
    fast_reply *r = arg;
    if (first_key(key, n, "cached_tokens", seen, 1))
        return count_value(f, &r->cached);
    return 1;
}

static int on_usage(fast *f, void *arg, const char *key, size_t n, unsigned *seen)
{
    fast_reply *r = arg;
    if (first_key(key, n, "prompt_tokens", seen, 1))
        return count_value(f, &r->prompt);
    if (first_key(key, n, "completion_tokens", seen, 2))
        return count_value(f, &r->completion);
    if (first_key(key, n, "prompt_cache_hit_tokens", seen, 4))
        return count_value(f, &r->cache_hit);
    if (first_key(key, n, "prompt_tokens_details", seen, 8)) {
        if (f->p < f->end && *f->p == '{')
            return container(f, on_details, r);
        return -1; /* a details that is not an object: left to cJSON */
    }
    return 1;
}

static int on_message(fast *f, void *arg, const char *key, size_t n, unsigned *seen)
{
    fast_reply *r = arg;
    if (!first_key(key, n, "content", seen, 1))
        return 1;
    if (f->p < f->end && *f->p == 'n')
        return literal(f, "null");
    const char *s;
    size_t sn;
    int esc;
    if (f->p >= f->end || *f->p != '"' || str_span(f, &s, &sn, &esc))
        return -1; /* content neither a string nor null: cJSON says why */
    r->text = str_text(s, sn, esc);
    return 0;
}

static int on_choice(fast *f, void *arg, const char *key, size_t n, unsigned *seen)
{
    fast_reply *r = arg;
    if (first_key(key, n, "message", seen, 1)) {
        if (f->p >= f->end || *f->p != '{')
            return -1;
        r->has_message = 1;
        return container(f, on_message, r);
    }
    if (first_key(key, n, "finish_reason", seen, 2)) {
        const char *s;
        size_t sn;
        int esc;
        if (f->p < f->end && *f->p == '"') {
            if (str_span(f, &s, &sn, &esc))
                return -1;
            r->finish_reason = str_text(s, sn, esc);
            return 0;
        }
        return 1;
    }
    if (first_key(key, n, "logprobs", seen, 4)) /* null is fine; anything else is cJSON's */
        return f->p < f->end && *f->p == 'n' ? literal(f, "null") : -1;
    return 1;
}

static int on_top(fast *f, void *arg, const char *key, size_t n, unsigned *seen)
{
    fast_reply *r = arg;
    if (first_key(key, n, "choices", seen, 1)) {
        /* Exactly one choice, an object: "[" ws "{" ... "}" ws "]". */
        if (f->p >= f->end || *f->p != '[')
            return -1;
        f->p++;
        ws(f);
        if (f->p >= f->end || *f->p != '{')
            return -1;
        if (container(f, on_choice, r))
            return -1;
        r->has_choice = 1;
        ws(f);
        if (f->p >= f->end || *f->p != ']')
            return -1;
        f->p++;
        return 0;
    }
    if (first_key(key, n, "usage", seen, 2)) {
        if (f->p < f->end && *f->p == '{')
            return container(f, on_usage, r);
        return f->p < f->end && *f->p == 'n' ? literal(f, "null") : -1;
    }
    return 1;
}

/* prov__count's judgement of a number read here. */
static long fast_count_of(const fast_count *c)
{
    return c->kind == 1 ? prov__count_num(c->v) : -1;
}

int prov__openai_fast(long status, const char *body, size_t len, prov_response *out)
{
    if (status < 200 || status > 299 || !body)
        return 0;
    fast f = {.p = body, .end = body + len, .depth = 0};
    fast_reply r;
    memset(&r, 0, sizeof r);
    ws(&f);
    if (f.p >= f.end || *f.p != '{' || container(&f, on_top, &r))
        goto decline;
    ws(&f);
    if (f.p != f.end || !r.has_choice || !r.has_message)
        goto decline;
    memset(out, 0, sizeof *out);
    out->text = r.text ? r.text : wk_xstrdup("");
    out->finish_reason = r.finish_reason;
    out->prompt_tokens = fast_count_of(&r.prompt);
    out->completion_tokens = fast_count_of(&r.completion);
    long cached = fast_count_of(&r.cached);
    if (cached < 0)
        cached = fast_count_of(&r.cache_hit);
    out->cached_tokens = cached > 0 ? cached : 0;
    return 1;
decline:
    free(r.text);
    free(r.finish_reason);
    return 0;
}
