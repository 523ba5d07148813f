/*
 * Shared helpers; see util.h. Nothing here knows about tasks or models.
 */
#include "util.h"

#include <errno.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *wk_strerror(int err)
{
    switch (err) {
    case WK_OK:
        return "ok";
    case WK_EINVAL:
        return "invalid input";
    case WK_EIO:
        return "i/o error";
    case WK_ETOOBIG:
        return "size cap reached";
    case WK_EPARSE:
        return "parse error";
    case WK_ENOTFOUND:
        return "not found";
    case WK_ECONFIG:
        return "configuration error";
    case WK_EBUSY:
        return "busy";
    case WK_ECANCELED:
        return "canceled";
    }
    return "unknown error";
}

static void wk__oom(size_t n)
{
    fprintf(stderr, "cascade: out of memory allocating %zu bytes\n", n);
    abort();
}

void *wk_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        wk__oom(n);
    return p;
}

void *wk_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        wk__oom(n * size);
    return p;
}

void *wk_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        wk__oom(n);
    return q;
}

char *wk_xstrdup(const char *s)
{
    return wk_xstrndup(s, strlen(s));
}

char *wk_xstrndup(const char *s, size_t n)
{
    char *p = wk_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *wk_xasprintf(const char *fmt, ...)
{
    /* Most texts are short: one vsnprintf into the stack, then a copy. */
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort(); /* only on a bad format string: a programming error */
    char *p = wk_xmalloc((size_t)n + 1);
    if ((size_t)n < sizeof small) {
        memcpy(p, small, (size_t)n + 1);
        return p;
    }
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

char *wk_xconcat(const char *first, ...)
{
    size_t n = 0;
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *))
        n += strlen(s);
    va_end(ap);
    char *out = wk_xmalloc(n + 1), *p = out;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        size_t k = strlen(s);
        memcpy(p, s, k);
        p += k;
    }
    va_end(ap);
    *p = '\0';
    return out;
}

void wk_buf_init(wk_buf *b, size_t cap)
{
    b->buf = NULL;
    b->len = 0;
    b->alloc = 0;
    b->cap = cap;
}

/* Room for n more bytes and the NUL; WK_ETOOBIG past the cap. */
static int buf_reserve(wk_buf *b, size_t n)
{
    if (n > b->cap || b->len > b->cap - n)
        return WK_ETOOBIG;
    if (b->len + n + 1 > b->alloc) {
        size_t want = b->alloc ? b->alloc : 256;
        while (want < b->len + n + 1)
            want *= 2;
        b->buf = wk_xrealloc(b->buf, want);
        b->alloc = want;
    }
    return 0;
}

int wk_buf_append(wk_buf *b, const void *data, size_t n)
{
    /* The common case first: room already there (len <= cap always holds). */
    if (n < b->alloc - b->len && n <= b->cap - b->len) {
        memcpy(b->buf + b->len, data, n);
        b->len += n;
        b->buf[b->len] = '\0';
        return 0;
    }
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->buf + b->len, data, n);
    b->len += n;
    b->buf[b->len] = '\0';
    return 0;
}

int wk_buf_appendf(wk_buf *b, const char *fmt, ...)
{
    /* Printed straight into the spare room; a second pass only when it grew. */
    size_t room = b->alloc > b->len ? b->alloc - b->len : 0;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->buf + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n < 0)
        return WK_EINVAL;
    size_t len = b->len;
    if ((size_t)n < room) {
        if ((size_t)n > b->cap || len > b->cap - (size_t)n) {
            b->buf[len] = '\0';
            return WK_ETOOBIG;
        }
        b->len += (size_t)n;
        return 0;
    }
    /* Reserve room for n bytes (and the NUL) the way wk_buf_append grows. */
    int rc = buf_reserve(b, (size_t)n);
    if (rc) {
        if (b->buf)
            b->buf[len] = '\0';
        return rc;
    }
    va_start(ap, fmt);
    vsnprintf(b->buf + len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len = len + (size_t)n;
    return 0;
}

int wk_buf_append_html(wk_buf *b, const char *s)
{
    int rc = 0;
    for (; *s && rc == 0; s++) {
        unsigned char c = (unsigned char)*s;
        switch (c) {
        case '&':
            rc = wk_buf_appendf(b, "&amp;");
            break;
        case '<':
            rc = wk_buf_appendf(b, "&lt;");
            break;
        case '>':
            rc = wk_buf_appendf(b, "&gt;");
            break;
        case '"':
            rc = wk_buf_appendf(b, "&quot;");
            break;
        case '\'':
            rc = wk_buf_appendf(b, "&#39;");
            break;
        default:
            if (c < 0x20 && c != '\n' && c != '\t')
                rc = wk_buf_appendf(b, "\\x%02x", c);
            else
                rc = wk_buf_append(b, s, 1);
        }
    }
    return rc;
}

char *wk_buf_detach(wk_buf *b, size_t *len)
{
    char *p = b->buf ? b->buf : wk_xstrdup("");
    if (len)
        *len = b->len;
    b->buf = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}

void wk_buf_reset(wk_buf *b)
{
    b->len = 0;
    if (b->buf)
        b->buf[0] = '\0';
}

void wk_buf_release(wk_buf *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = 0;
    b->alloc = 0;
}

/*
 * Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629: no
 * overlongs, no surrogates, nothing past U+10FFFF) with its code point, or 0.
 */
static size_t utf8_seq(const unsigned char *s, size_t n, unsigned *cp)
{
    size_t len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
    if (len == 0 || s[0] > 0xf4 || len > n)
        return 0;
    unsigned c = s[0] & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
        (len == 4 && (c < 0x10000 || c > 0x10ffff)))
        return 0;
    *cp = c;
    return len;
}

/*
 * Code points a terminal acts on or a reader is misled by: the C1 controls
 * (U+009B is CSI on terminals that honour 8-bit controls), the line and
 * paragraph separators, and the bidirectional overrides and isolates that
 * reorder what a reviewer sees ("Trojan Source", CVE-2021-42574).
 */
static int hidden_cp(unsigned c)
{
    return (c >= 0x80 && c <= 0x9f) || c == 0x2028 || c == 0x2029 || (c >= 0x202a && c <= 0x202e) ||
           (c >= 0x2066 && c <= 0x2069) || c == 0x200e || c == 0x200f || c == 0x061c;
}

char *wk_escape_ctl(const char *s, size_t n, size_t max)
{
    wk_buf b;
    size_t take = n < max ? n : max;
    /* Worst case 4 output bytes per input byte, plus the ellipsis. */
    wk_buf_init(&b, take * 4 + 8);
    for (size_t i = 0; i < take;) {
        const unsigned char *c = (const unsigned char *)s + i;
        unsigned cp = 0;
        size_t len = *c < 0x80 ? 1 : utf8_seq(c, take - i, &cp);
        if (*c == '\n')
            wk_buf_append(&b, "\\n", 2);
        else if (*c == '\t')
            wk_buf_append(&b, "\\t", 2);
        else if (*c == '\r')
            wk_buf_append(&b, "\\r", 2);
        else if (*c < 0x20 || *c == 0x7f || len == 0)
            wk_buf_appendf(&b, "\\x%02x", *c); /* a control, or a byte of no character */
        else if (len > 1 && hidden_cp(cp))
            wk_buf_appendf(&b, "\\u%04x", cp);
        else
            wk_buf_append(&b, (const char *)c, len);
        i += len ? len : 1;
    }
    if (take < n)
        wk_buf_append(&b, "...", 3);
    return wk_buf_detach(&b, NULL);
}

char *wk_head_lines(const char *s, int max_lines, size_t max_bytes)
{
    size_t i = 0;
    int lines = 0;
    while (i < max_bytes && s[i]) {
        if (s[i] == '\n' && ++lines >= max_lines)
            break;
        i++;
    }
    return wk_xstrndup(s, i);
}

int wk_read_file(const char *path, size_t cap, char **out, size_t *len)
{
    int rc = 0;
    wk_buf b;
    wk_buf_init(&b, cap);
    FILE *f = fopen(path, "rb");
    if (!f)
        return WK_EIO;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        rc = wk_buf_append(&b, chunk, n);
        if (rc)
            goto cleanup;
    }
    if (ferror(f)) {
        rc = WK_EIO;
        goto cleanup;
    }
    *out = wk_buf_detach(&b, len);
cleanup:
    fclose(f);
    wk_buf_release(&b);
    return rc;
}

uint64_t wk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t wk_hash(uint64_t h, const char *s)
{
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static uint64_t strset_hash(const char *s)
{
    return wk_hash(WK_HASH_SEED, s);
}

static const char *strset_str(const wk_strset *set, uint32_t slot)
{
    uint32_t v = slot - 1;
    return set->chunks[v >> 20] + (v & (WK_STRSET_CHUNK - 1));
}

int wk_strset_has(const wk_strset *set, const char *s)
{
    if (!set->cap)
        return 0;
    size_t k = strset_hash(s) & (set->cap - 1);
    while (set->slots[k]) {
        if (strcmp(strset_str(set, set->slots[k]), s) == 0)
            return 1;
        k = (k + 1) & (set->cap - 1);
    }
    return 0;
}

/* Copies s into the chunks; returns its slot value. */
static uint32_t strset_store(wk_strset *set, const char *s)
{
    size_t n = strlen(s) + 1;
    /* A string that does not fit the rest of the chunk starts a new one, as
     * big as it needs (a long id gets a chunk of its own). */
    if (!set->nchunks || set->used + n > WK_STRSET_CHUNK) {
        if (set->nchunks >= WK_STRSET_MAX_CHUNKS) {
            fprintf(stderr, "cascade: more than %u MiB of distinct ids\n", WK_STRSET_MAX_CHUNKS);
            abort();
        }
        set->chunks = wk_xrealloc(set->chunks, (set->nchunks + 1) * sizeof *set->chunks);
        set->chunks[set->nchunks++] = wk_xmalloc(n > WK_STRSET_CHUNK ? n : WK_STRSET_CHUNK);
        set->used = 0;
    }
    uint32_t at = (uint32_t)(set->nchunks - 1) << 20 | (uint32_t)set->used;
    memcpy(set->chunks[set->nchunks - 1] + set->used, s, n);
    set->used = n > WK_STRSET_CHUNK ? WK_STRSET_CHUNK : set->used + n;
    return at + 1;
}

int wk_strset_add(wk_strset *set, const char *s)
{
    if (wk_strset_has(set, s))
        return 1;
    /* Linear probing stays short up to three quarters full. */
    if ((set->len + 1) * 4 > set->cap * 3) {
        size_t ncap = set->cap ? set->cap * 2 : 1024;
        uint32_t *n = wk_xcalloc(ncap, sizeof *n);
        for (size_t i = 0; i < set->cap; i++) {
            if (!set->slots[i])
                continue;
            size_t k = strset_hash(strset_str(set, set->slots[i])) & (ncap - 1);
            while (n[k])
                k = (k + 1) & (ncap - 1);
            n[k] = set->slots[i];
        }
        free(set->slots);
        set->slots = n;
        set->cap = ncap;
    }
    size_t k = strset_hash(s) & (set->cap - 1);
    while (set->slots[k])
        k = (k + 1) & (set->cap - 1);
    set->slots[k] = strset_store(set, s);
    set->len++;
    return 0;
}

void wk_strset_release(wk_strset *set)
{
    for (size_t i = 0; i < set->nchunks; i++)
        free(set->chunks[i]);
    free(set->chunks);
    free(set->slots);
    memset(set, 0, sizeof *set);
}

/* Whole numbers whose "%1.15g" text is their "%lld" text. */
static int json_whole(double d)
{
    return d > -1e15 && d < 1e15 && d == floor(d) && !(d == 0 && signbit(d));
}

/* "%lld" of v appended to b, without printf's machinery. */
static void json_itoa(wk_buf *b, long long v)
{
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[n++] = '-';
    char out[24];
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    wk_buf_append(b, out, (size_t)n);
}

/* cJSON's print_number: "%1.15g" when it reads back equal, else "%1.17g"; NaN and
 * infinities as null; the locale's decimal point as '.'. */
void wk_json_append_number(wk_buf *b, double d)
{
    if (isnan(d) || isinf(d)) {
        wk_buf_append(b, "null", 4);
        return;
    }
    if (json_whole(d)) {
        json_itoa(b, (long long)d);
        return;
    }
    char num[32];
    int len = snprintf(num, sizeof num, "%1.15g", d);
    double test = strtod(num, NULL);
    double most = fabs(test) > fabs(d) ? fabs(test) : fabs(d);
    if (!(fabs(test - d) <= most * DBL_EPSILON))
        len = snprintf(num, sizeof num, "%1.17g", d);
    if (len < 0 || (size_t)len >= sizeof num)
        len = 0;
    char point = *localeconv()->decimal_point;
    for (int i = 0; i < len; i++)
        if (num[i] == point)
            num[i] = '.';
    wk_buf_append(b, num, (size_t)len);
}

/* Whether a byte of c needs an escape: below 0x20, a quote or a backslash. */
static int json_special(unsigned char c)
{
    return c < 32 || c == '"' || c == '\\';
}

/* The first byte at or after i in s (n bytes) that needs an escape, or n. Eight
 * bytes at a time (hasless/haszero bit tricks): strings are most of a line. */
static size_t json_plain_end(const char *s, size_t n, size_t i)
{
    const uint64_t L = 0x0101010101010101ull, H = 0x8080808080808080ull;
    const uint64_t Q = L * '"', B = L * '\\';
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, s + i, 8);
        uint64_t q = x ^ Q, k = x ^ B;
        if ((((x - L * 32) & ~x) | ((q - L) & ~q) | ((k - L) & ~k)) & H)
            break;
    }
    while (i < n && !json_special((unsigned char)s[i]))
        i++;
    return i;
}

/* cJSON's print_string_ptr: quotes, backslash and \b\f\n\r\t escaped by name,
 * other controls as \u00XX, every other byte as it is; NULL prints "". Written
 * straight into the buffer: plain runs are copied whole. */
void wk_json_append_string(wk_buf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (buf_reserve(b, n + 2))
        return;
    size_t at = b->len;
    b->buf[at++] = '"';
    for (size_t i = 0; i < n;) {
        size_t end = json_plain_end(s, n, i);
        memcpy(b->buf + at, s + i, end - i);
        at += end - i;
        if (end == n)
            break;
        /* An escape is up to 6 bytes for 1: room for it and the rest, as capped. */
        b->len = at;
        if (buf_reserve(b, 6 + (n - end - 1) + 1)) {
            b->buf[at] = '\0';
            return;
        }
        unsigned char c = (unsigned char)s[end];
        static const char named[] = "\"\\\b\f\n\r\t", as[] = "\"\\bfnrt";
        const char *k = c ? strchr(named, c) : NULL;
        b->buf[at++] = '\\';
        if (k) {
            b->buf[at++] = as[k - named];
        } else {
            static const char hex[] = "0123456789abcdef";
            memcpy(b->buf + at, "u00", 3);
            b->buf[at + 3] = hex[c >> 4];
            b->buf[at + 4] = hex[c & 15];
            at += 5;
        }
        i = end + 1;
    }
    b->buf[at++] = '"';
    b->buf[at] = '\0';
    b->len = at;
}

/* Prints o into b as cJSON's print_value does; 0, or -1 where cJSON fails (an
 * invalid type, a raw item without text). */
static int json_value(wk_buf *b, const cJSON *o)
{
    switch (o->type & 0xFF) {
    case cJSON_NULL:
        return wk_buf_append(b, "null", 4), 0;
    case cJSON_False:
        return wk_buf_append(b, "false", 5), 0;
    case cJSON_True:
        return wk_buf_append(b, "true", 4), 0;
    case cJSON_Number:
        wk_json_append_number(b, o->valuedouble);
        return 0;
    case cJSON_Raw:
        if (!o->valuestring)
            return -1;
        return wk_buf_append(b, o->valuestring, strlen(o->valuestring)), 0;
    case cJSON_String:
        wk_json_append_string(b, o->valuestring);
        return 0;
    case cJSON_Array:
    case cJSON_Object: {
        int obj = (o->type & 0xFF) == cJSON_Object;
        wk_buf_append(b, obj ? "{" : "[", 1);
        for (const cJSON *c = o->child; c; c = c->next) {
            if (obj) {
                wk_json_append_string(b, c->string);
                wk_buf_append(b, ":", 1);
            }
            if (json_value(b, c))
                return -1;
            if (c->next)
                wk_buf_append(b, ",", 1);
        }
        wk_buf_append(b, obj ? "}" : "]", 1);
        return 0;
    }
    default:
        return -1;
    }
}

char *wk_json_print(const cJSON *o)
{
    if (!o)
        return NULL;
    wk_buf b;
    wk_buf_init(&b, SIZE_MAX / 2);
    buf_reserve(&b, 511); /* one 512-byte block holds most lines: no regrowth */
    if (json_value(&b, o)) {
        wk_buf_release(&b);
        return NULL;
    }
    return wk_buf_detach(&b, NULL);
}

void wk_json_add_str(cJSON *o, const char *key, const char *v)
{
    cJSON *item = v ? cJSON_CreateString(v) : NULL;
    if (item && !cJSON_AddItemToObjectCS(o, key, item))
        cJSON_Delete(item);
}

void wk_json_add_num(cJSON *o, const char *key, double v)
{
    cJSON *item = cJSON_CreateNumber(v);
    if (item && !cJSON_AddItemToObjectCS(o, key, item))
        cJSON_Delete(item);
}

const char *wk_jstr(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

int wk_errf(int code, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}
