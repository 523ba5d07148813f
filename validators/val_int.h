/*
 * What the validators share among themselves and nobody else: the layout of
 * val_env, the sandbox runner used by process validators, the per-env parser
 * cache of the syntax validator, and small text helpers.
 */
#ifndef VAL_INT_H
#define VAL_INT_H

#include <stdint.h>

#include "val.h"

/* Room for this many grammars in the per-env parser cache (syntax.c asserts it). */
#define VAL__GRAMMAR_SLOTS 16
/* Room for the argv prefix that builds the sandbox's root file system. */
#define VAL__ROOT_ARGS_MAX 48

typedef struct val__job val__job;

struct val_env {
    uv_loop_t *loop;
    val_limits limits;
    int max_sandboxes;
    int running;          /* sandboxes started and not yet finished */
    val__job *wait_head;  /* FIFO of jobs waiting for a slot */
    val__job *wait_tail;
    char bwrap[64];
    char prlimit[64];
    int drop_to_nobody;   /* running as root: sandboxes run as host uid/gid 65534 */
    /*
     * The read-only system the sandbox sees: /usr and /etc bound, and the
     * top-level lib/bin links reproduced. Strings are owned by the env.
     */
    char *root_args[VAL__ROOT_ARGS_MAX];
    int n_root_args;
    /* One TSParser per grammar, created on first use (see syntax.c). */
    void *parsers[VAL__GRAMMAR_SLOTS];
};

/* Frees the parsers cached in env (syntax.c). */
void val__syntax_env_release(val_env *env);

/* ---- sandbox (sandbox.c) ------------------------------------------------- */

/* What one sandboxed command did. Borrowed by the callback for the call only. */
typedef struct val__sbx_result {
    int spawned;          /* 0: the sandbox could not be spawned at all */
    int64_t exit_status;  /* when exited normally */
    int term_signal;      /* signal that ended the outer process, 0 if none */
    int timed_out;        /* we killed it at the wall-clock limit */
    int output_capped;    /* we killed it because output passed the cap */
    const char *output;   /* stdout and stderr interleaved, NUL-terminated */
    size_t output_len;
    const char *error;    /* why it could not be spawned; NULL when spawned */
    uint64_t elapsed_ms;
} val__sbx_result;

typedef void (*val__sbx_cb)(void *arg, const val__sbx_result *r);

/*
 * Runs argv (argc entries) inside the sandbox with `hostdir` copied to the
 * working directory /box, once a slot is free (FIFO). Calls cb exactly once,
 * possibly before returning (when spawning fails at once). `hostdir` and argv
 * are copied.
 */
void val__sandbox_run(val_env *env, const char *hostdir, const char *const *argv, int argc,
                      val__sbx_cb cb, void *arg);

/* Makes a fresh host directory (mode 0755); *out is owned by the caller. */
int val__hostdir_make(char **out, char *err, size_t errlen);
/*
 * Writes `content` (len bytes) to the relative `path` inside dir, creating
 * subdirectories. Returns WK_EINVAL for a path that is absolute, empty, longer
 * than 255 bytes or has a ".." component; WK_EIO when writing fails.
 */
int val__hostdir_write(const char *dir, const char *path, const char *content, size_t len,
                       char *err, size_t errlen);
/* Removes dir and everything below it; errors are ignored (best effort). */
void val__hostdir_remove(const char *dir);

/* ---- text helpers (common.c) ------------------------------------------- */

/*
 * Copy of s made safe for a feedback prompt: invalid UTF-8 becomes '?',
 * control characters other than newline and tab become \xNN. Caller frees.
 */
char *val__sanitize(const char *s, size_t n);
/* Largest length <= n that does not cut a UTF-8 sequence of s. */
size_t val__utf8_floor(const char *s, size_t n);
/* Last `max_lines` lines of s, then at most the last max_bytes of those. Caller frees. */
char *val__tail_lines(const char *s, size_t n, int max_lines, size_t max_bytes);

#endif
