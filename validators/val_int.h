/*
 * What the validators share among themselves and nobody else: the layout of
 * val_env, the per-env parser cache of the syntax validator, the table
 * entries, and small text and hashing helpers. The sandbox, the task files
 * put into it and the verdict made of a run have a header of their own,
 * validators/sandbox/sandbox.h, for the validators that run processes.
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
    int running;         /* sandboxes started and not yet finished */
    val__job *wait_head; /* FIFO of jobs waiting for a slot */
    val__job *wait_tail;
    char bwrap[64];
    /*
     * Running as root: each sandbox runs as host uid/gid VAL_UID_BASE + slot,
     * slot_busy[slot] marking the slots in use (max_sandboxes entries; owned).
     */
    int uid_pool;
    unsigned uid_base; /* VAL_UID_BASE; tests move it to a range of their own */
    unsigned char *slot_busy;
    /*
     * The read-only system the sandbox sees: /usr and /etc bound, and the
     * top-level lib/bin links reproduced. Strings are owned by the env.
     */
    char *root_args[VAL__ROOT_ARGS_MAX];
    int n_root_args;
    int warned_fds; /* the one-time warning of a descriptor shortage was printed */
    int live;       /* sandboxes spawned and not yet closed (they hold descriptors) */
    /* Where sandbox cgroups are made: 0 nowhere, 1 cgroup v1, 2 v2 (cgroup.c); owned paths. */
    int cg_mode;
    char *cg_mem;
    char *cg_pids;
    /* One TSParser per grammar, created on first use (see syntax.c). */
    void *parsers[VAL__GRAMMAR_SLOTS];
};

/* Frees the parsers cached in env (syntax.c). */
void val__syntax_env_release(val_env *env);

extern const val_ops val__patch_ops; /* patch.c: the patch validator, listed in val_table */

/* ---- text helpers (common.c) ------------------------------------------- */

/* Largest length <= n that does not cut a UTF-8 sequence of s. */
size_t val__utf8_floor(const char *s, size_t n);
/* Last `max_lines` lines of s, then at most the last max_bytes of those. Caller frees. */
char *val__tail_lines(const char *s, size_t n, int max_lines, size_t max_bytes);

/* SHA-256 of data (len bytes) as 64 lowercase hex digits and a NUL in hex. */
void val__sha256_hex(const void *data, size_t len, char hex[65]);

#endif
