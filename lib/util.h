/*
 * Small shared helpers: the one error enum, the xmalloc family (out of memory
 * aborts, so callers never branch on it), a growable byte buffer with a hard
 * cap, and escaping for text that may reach a terminal.
 *
 * Used by worker/, validators/ and fixtures/mock-llm alike.
 */
#ifndef WK_UTIL_H
#define WK_UTIL_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* Every fallible function returns 0 or one of these. */
enum wk_err {
    WK_OK = 0,
    WK_EINVAL = -1,  /* bad argument or malformed input */
    WK_EIO = -2,     /* a system call failed; errno-derived message logged */
    WK_ETOOBIG = -3, /* a capped buffer hit its cap */
    WK_EPARSE = -4,  /* JSON or protocol parse failure */
    WK_ENOTFOUND = -5,
    WK_ECONFIG = -6,   /* configuration error (startup) */
    WK_EBUSY = -7,     /* no free slot right now; try later */
    WK_ECANCELED = -8, /* closed before it could happen */
};

const char *wk_strerror(int err);

/* Allocation that never returns NULL: out of memory aborts with a message. */
void *wk_xmalloc(size_t n);
void *wk_xcalloc(size_t n, size_t size);
void *wk_xrealloc(void *p, size_t n);
char *wk_xstrdup(const char *s);
char *wk_xstrndup(const char *s, size_t n);
/* printf into a fresh string; caller frees. */
char *wk_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/*
 * The strings given, up to a (char *)NULL (a bare NULL may be an int in a
 * variadic call), joined in one allocation. For texts built from parts on every task: a tenth of
 * the cost of wk_xasprintf's printf machinery. Caller frees.
 */
char *wk_xconcat(const char *first, ...) __attribute__((sentinel));

/*
 * A byte buffer that refuses to grow past `cap`. Always NUL-terminated after
 * a successful append, so `buf` can be read as a C string when the data is text.
 */
typedef struct wk_buf {
    char *buf; /* owned; NULL until first append */
    size_t len;
    size_t alloc;
    size_t cap; /* hard limit on len */
} wk_buf;

void wk_buf_init(wk_buf *b, size_t cap);
/* Returns 0, or WK_ETOOBIG (the buffer is unchanged) when len + n > cap. */
int wk_buf_append(wk_buf *b, const void *data, size_t n);
int wk_buf_appendf(wk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Appends `s` for HTML element content or a quoted attribute: & < > " ' as
 * entities, control characters other than newline and tab as \xNN so they show.
 * Returns 0 or WK_ETOOBIG (what fit stays appended).
 */
int wk_buf_append_html(wk_buf *b, const char *s);
/* Hands the data to the caller (who frees it) and resets the buffer. */
char *wk_buf_detach(wk_buf *b, size_t *len);
void wk_buf_reset(wk_buf *b);   /* len = 0, keeps memory */
void wk_buf_release(wk_buf *b); /* frees memory */

/*
 * Copy of `s` (length n) safe for a terminal or a one-line log: control
 * characters and DEL become \n, \t, \xNN, bytes that are not well-formed
 * UTF-8 \xNN, and the C1 controls, line separators and bidi overrides
 * \uNNNN; other UTF-8 passes as it is. At most `max` input bytes are taken
 * (a character cut there is escaped byte by byte) and "..." marks the cut.
 * Caller frees.
 */
char *wk_escape_ctl(const char *s, size_t n, size_t max);

/* First `max_lines` lines of s, at most `max_bytes` bytes; caller frees. */
char *wk_head_lines(const char *s, int max_lines, size_t max_bytes);

/* Reads a whole file up to `cap` bytes into *out (caller frees). */
int wk_read_file(const char *path, size_t cap, char **out, size_t *len);

/* FNV-1a of s, continuing from h: WK_HASH_SEED to start, the result to chain. */
#define WK_HASH_SEED 1469598103934665603ull
uint64_t wk_hash(uint64_t h, const char *s);

/*
 * A set of strings (open addressing); used for ids seen and results written,
 * so it holds every id of a batch: compact, at about 20 bytes per short id.
 * The strings are packed end to end in 1 MiB chunks (no allocation each);
 * a slot is 4 bytes, 0 when empty, else 1 + (chunk << 20 | offset). At most
 * WK_STRSET_MAX_CHUNKS chunks (about 4 GiB of strings); past that, adding
 * aborts like a failed allocation.
 */
#define WK_STRSET_CHUNK (1u << 20)
#define WK_STRSET_MAX_CHUNKS 4095u
typedef struct wk_strset {
    uint32_t *slots;
    size_t cap, len;
    char **chunks; /* owned; the last one is being filled */
    size_t nchunks, used;
} wk_strset;

/* Adds s (copied); returns 1 when it was already there. */
int wk_strset_add(wk_strset *set, const char *s);
int wk_strset_has(const wk_strset *set, const char *s);
void wk_strset_release(wk_strset *set);

/*
 * cJSON_PrintUnformatted(o), byte for byte, faster: printed in one pass into
 * one growing buffer (cJSON prints, then copies to an exact-size block), and
 * whole numbers below 10^15 with integer code rather than "%1.15g" and an
 * sscanf to check it (about 4,000 instructions a number). o is not changed.
 * Caller frees; NULL where cJSON fails too (an invalid type, a raw item
 * without text).
 */
char *wk_json_print(const cJSON *o);
/* One JSON string (quoted; NULL as "") or number appended to b as wk_json_print prints it. */
void wk_json_append_string(wk_buf *b, const char *s);
void wk_json_append_number(wk_buf *b, double d);

/*
 * cJSON_AddStringToObject / cJSON_AddNumberToObject without copying the key
 * (a third of their cost): key must outlive o and every copy of it, as a
 * string literal does. A NULL v adds nothing, as with cJSON.
 */
void wk_json_add_str(cJSON *o, const char *key, const char *v);
void wk_json_add_num(cJSON *o, const char *key, double v);

/* The string member `name` of the JSON object o, or NULL (absent, not a string). */
const char *wk_jstr(const cJSON *o, const char *name);

/* Writes the printf-style message into err (errlen bytes) and returns code. */
int wk_errf(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Monotonic milliseconds. */
uint64_t wk_now_ms(void);

#endif
