/*
 * The validator interface. A validator looks at one model answer for one task
 * and returns a verdict: pass, or fail with a reason code, a one-line message
 * and an evidence excerpt that is sent back to the next model as feedback.
 *
 * Validators run in a chain (val_chain_start) in the cascade's order and the
 * chain stops at the first failure. CPU-only validators (syntax, schema) finish
 * inside start(); process validators (compile, tests) run in the sandbox and
 * finish from a libuv callback. Either way the done callback fires exactly
 * once, and it may fire before start() returns.
 */
#ifndef VAL_H
#define VAL_H

#include <cjson/cJSON.h>
#include <uv.h>

#include "lib/util.h"

/* Caps on what a verdict carries, so feedback prompts stay small. */
#define VAL_MESSAGE_MAX 300
#define VAL_EVIDENCE_MAX 2000
/* A reason, as long as a call failure's class (PROV_REASON_MAX) with its NUL. */
#define VAL_REASON_MAX 32
/* Bytes of a classification label, with its NUL. */
#define VAL_LABEL_MAX 128

/*
 * What a run of a repository's tests found, test by test where the runner's
 * output says (pytest -rA, node --test); all 0 when it gives no per-test
 * detail. The CI bot's commit trailer reads it ("passed N, flaky N,
 * pre-existing N").
 */
typedef struct val_test_counts {
    int passed;      /* tests that passed on the patched tree */
    int flaky;       /* tests whose outcome flipped between the two baseline runs */
    int preexisting; /* tests failing at base and still failing, not the ones to fix */
} val_test_counts;

typedef struct val_verdict {
    int pass;                    /* 1 pass, 0 fail */
    char validator[16];          /* "syntax", "tests", "schema", ... ; "" on pass */
    char reason[VAL_REASON_MAX]; /* as long as a call failure's class (PROV_REASON_MAX);
                         "syntax_error", "compile_error", "failed", "timeout",
                        "memory", "crashed", "output_limit", "tests_modified",
                        "sandbox_error", "invalid_json", "schema_mismatch",
                        "no_code", "unsupported" */
    char *message;               /* owned; one line, <= VAL_MESSAGE_MAX bytes; may be NULL */
    char *evidence;              /* owned; <= VAL_EVIDENCE_MAX bytes; may be NULL */
    /*
     * owned; one line, <= VAL_MESSAGE_MAX bytes; may be NULL. What the reader
     * of a verdict (pass or fail) should know that pass/reason hide: an
     * advisory C/C++ syntax error, a compile step skipped because no compiler
     * is installed. Kept on a pass, unlike message and evidence; the chain
     * joins the notes of every validator that ran.
     */
    char *note;
    /*
     * Filled by the validator that knows them, after val_verdict_pass/fail
     * (which reset them): the tests validator's counts; a classify
     * validator's label ("" when none was parsed) and its score in [0, 1]
     * (-1 when unknown: no logprobs, no agreement asked for).
     */
    val_test_counts tests;
    char label[VAL_LABEL_MAX];
    double score;
} val_verdict;

/* Frees message, evidence and note and resets tests, label and score; the struct itself belongs to
 * the caller. */
void val_verdict_clear(val_verdict *v);
/* Sets a failing verdict (message/evidence copied and capped; note cleared). */
void val_verdict_fail(val_verdict *v, const char *validator, const char *reason,
                      const char *message, const char *evidence);
/* Sets a passing verdict (note cleared). */
void val_verdict_pass(val_verdict *v);
/* Sets v's note to a capped, one-line copy of `note` (NULL clears it). */
void val_verdict_note(val_verdict *v, const char *note);
/* Makes dst a copy of src (dst is cleared first; its strings are duplicated). */
void val_verdict_copy(val_verdict *dst, const val_verdict *src);
/*
 * The verdict as a result line's attempt shows it: {"pass", "note" when there
 * is one, and on a fail "validator", "reason", "message"}. Caller frees.
 */
cJSON *val_verdict_json(const val_verdict *v);

/* Resource limits for one sandboxed command. */
typedef struct val_limits {
    unsigned timeout_ms;       /* wall clock; the whole process group is killed */
    unsigned cpu_s;            /* RLIMIT_CPU */
    unsigned long mem_bytes;   /* RLIMIT_AS */
    unsigned nproc;            /* RLIMIT_NPROC */
    unsigned long fsize_bytes; /* RLIMIT_FSIZE */
    unsigned nofile;           /* RLIMIT_NOFILE */
    unsigned long tmpfs_bytes; /* size of the workdir and /tmp tmpfs */
    size_t output_cap;         /* bytes of stdout+stderr kept */
} val_limits;

/*
 * The host uids (and gids) of the sandboxes when the worker runs as root:
 * VAL_UID_BASE + slot, slot < max_sandboxes. Far above the ranges that
 * /etc/subuid hands out (100000 + 65536 * n), so no container shares them.
 */
#define VAL_UID_BASE 1900000000u

/* Sane defaults: 10 s wall, 5 s CPU, 1 GiB address space, 64 processes, ... */
void val_limits_default(val_limits *l);

/*
 * What a validator sees. Everything is borrowed from the caller and stays
 * valid until the done callback has fired.
 */
struct val_baseline; /* validators/testlog.h */

typedef struct val_input {
    const char *task_id;
    const char *kind;     /* "code", "classify", "json", "patch" */
    const char *language; /* "python", "c", "javascript", ...; may be NULL */
    const char *answer;   /* the model's raw text */
    const cJSON *task;    /* the whole task: files, tests, answer_file, schema */
    const cJSON *schema;  /* the schema to check against (task's or cascade's); may be NULL */
    /*
     * The cascade's "compile" map, may be NULL: an object whose keys are
     * languages (any alias val_lang_canonical knows) and whose values are argv
     * arrays of strings run in the sandbox's /box in place of the default
     * command; the element "{file}" is replaced by the answer's file name.
     * E.g. {"c": ["gcc", "-std=c99", "-fsyntax-only", "{file}"]}.
     */
    const cJSON *compile_commands;
    /*
     * 1: a C or C++ syntax error is advisory (the verdict passes with a note),
     * because a compiler that knows the real preprocessor decides later.
     * val_chain_start sets it on its own copy of the input when "compile"
     * follows "syntax" in the chain; callers may leave it 0.
     */
    int syntax_advisory;
    /*
     * Patch tasks. When workdir_out is not NULL, a passing patch validator
     * stores there a fresh temporary directory holding the repository's base
     * tree with the diff applied, owned by the caller from then on (removed
     * and freed with val_workdir_free); on failure it stores NULL. When it is
     * NULL, the patch validator removes its directory before calling done.
     * `workdir`, when set, is that directory for the validators after
     * "patch" in a chain (e.g. tests run there); may be NULL.
     */
    char **workdir_out;
    const char *workdir;
    /*
     * The label validator: where the label sits in the answer and its enum in
     * the schema (see val_label_set); NULL: the default.
     */
    const char *label_field;
    /*
     * Patch tasks, may be left 0/NULL. `baseline`: the tests at base (see
     * validators/testlog.h); with it, the tests validator fails a run only
     * for a target still failing or a regression, never for a flaky or
     * pre-existing failure. `max_patch_bytes`: the patch validator's cap on
     * the diff (0: VCS_DIFF_MAX). `touched_out`, like workdir_out: a passing
     * patch stores there the paths it leaves changed or added, one per line
     * (caller frees); `touched` is that list for the validators after it
     * (syntax checks each file by its extension).
     */
    const struct val_baseline *baseline;
    size_t max_patch_bytes;
    char **touched_out;
    const char *touched;
} val_input;

/* The environment validators share: the loop and sandbox settings. */
typedef struct val_env val_env;

/*
 * Creates the shared environment. `max_sandboxes` bounds concurrent sandboxed
 * processes (0 = number of CPUs); later requests wait in a FIFO. Running as
 * root, each running sandbox gets a host uid/gid of its own from a pool
 * (VAL_UID_BASE + slot), so RLIMIT_NPROC binds per sandbox and the sandbox
 * owns nothing on the host. Also removes task directories
 * ($TMPDIR/cascade-box-*) that a killed worker left behind over an hour ago.
 * Returns NULL and writes a message to `err` (size errlen) when the sandbox
 * tool (bwrap) cannot be found.
 */
val_env *val_env_new(uv_loop_t *loop, const val_limits *limits, int max_sandboxes, char *err,
                     size_t errlen);
/* Frees the environment; no chain may be running. */
void val_env_free(val_env *env);

/* Called exactly once per chain; `v` is borrowed for the call only. */
typedef void (*val_done_cb)(void *arg, const val_verdict *v);

/* One validator, looked up by name in a NULL-terminated table. */
typedef struct val_ops {
    const char *name;
    /*
     * Starts validating `in`. `code` is the text extracted from the answer
     * (see val_extract_code). Calls done(arg, verdict) once, possibly before
     * returning. Returns 0, or a negative wk_err when it could not start (done
     * is then not called).
     */
    int (*start)(val_env *env, const val_input *in, const char *code, val_done_cb done, void *arg);
    /*
     * May be NULL (the validator needs nothing of a task). Checks, before any
     * model is called, that `task` has what this validator needs; `schema` is
     * the schema it would be given (the task's or the cascade's), may be
     * NULL. Returns 0; WK_ENOTFOUND when the task does not give it at all
     * (no tests.command array, no schema, no "repo"), WK_EINVAL when it gives
     * it unusable (an empty command, a repo without a string path); either
     * way with a clause in `why` (size whylen) that reads after the name of
     * whoever runs the validator: "runs tests but tests.command is missing or
     * not an array of strings".
     */
    int (*check_task)(const cJSON *task, const cJSON *schema, char *why, size_t whylen);
    /* 1: runs a process in the sandbox, so it needs a val_env (see val_env_new). */
    int sandboxed;
} val_ops;

/* The table of built-in validators; NULL-terminated. */
extern const val_ops *const val_table[];
/* Looks up a validator by name; NULL when unknown. */
const val_ops *val_find(const char *name);

/*
 * Runs the validators named in `names` (count n) in order, stopping at the
 * first failure; calls done once with the final verdict (a pass when all
 * passed). Returns 0, or WK_ENOTFOUND when a name is unknown (done is then
 * not called).
 */
int val_chain_start(val_env *env, const char *const *names, int n, const val_input *in,
                    val_done_cb done, void *arg);

/*
 * Checks that `task` has what each validator named in `names` (count n)
 * needs from it, in order, as the validators' own check_task entries say:
 * tests needs tests.command (a non-empty array of strings), schema a schema
 * (`schema`: the task's or the cascade's, may be NULL), patch a "repo" with
 * a string "path" (and a string "base" when given). Unknown names are left
 * to val_chain_start. Returns 0, or the check_task code (WK_ENOTFOUND: not
 * given; WK_EINVAL: given but unusable) with "<who> <clause>" in `why` (size
 * whylen) for the first validator whose need is not met, e.g. "cascade fast
 * runs tests but tests.command is missing or not an array of strings".
 * Borrowed arguments.
 */
int val_check_task(const char *const *names, int n, const cJSON *task, const cJSON *schema,
                   const char *who, char *why, size_t whylen);
/* 1 when one of the validators named in `names` (count n) runs in the sandbox. */
int val_needs_sandbox(const char *const *names, int n);

/*
 * A patch task's test command run once in the sandbox on the tree in `dir`
 * (a host directory copied into /box; the task's tests.files are added
 * read-only), with CASCADE_TEST_RUN=<run_no> in its environment so a test
 * can tell the runs apart (fixtures make a flaky test deterministic with it).
 * cb gets the verdict the tests validator would give, the whole output (up
 * to the sandbox's cap, /box/ paths as they are) and whether the command ran
 * and exited 0; all borrowed for the call. Returns 0 (cb is called once,
 * maybe before returning), or WK_EINVAL when the task has no usable command.
 */
typedef void (*val_run_cb)(void *arg, const val_verdict *v, const char *output, size_t len,
                           int exit_ok);
int val_tests_run(val_env *env, const cJSON *task, const char *dir, int run_no, val_run_cb cb,
                  void *arg);

/*
 * The diff in a patch task's answer: the first fenced block tagged diff or
 * patch, else the first fenced block, else the whole answer trimmed. Caller
 * frees.
 */
char *val_extract_diff(const char *answer);

/*
 * A fresh temporary directory the sandbox can copy into /box (the base tree
 * of a patch task's baseline). *out is the caller's, removed and freed with
 * val_workdir_free. Returns 0, or WK_EIO with a message in err.
 */
int val_workdir_make(char **out, char *err, size_t errlen);

/* Removes a patched tree from val_input.workdir_out and frees the string; NULL is a no-op. */
void val_workdir_free(char *dir);

/*
 * The code in an answer: the body of the first fenced block (``` with an
 * optional language tag), else the whole answer trimmed. Caller frees.
 */
char *val_extract_code(const char *answer);

/* File extension for a language or alias ("py" for python); "txt" when unknown. */
const char *val_lang_ext(const char *language);
/*
 * The canonical name of a language given by name or alias, case-insensitive
 * ("py", "python3" -> "python"; "c++", "cxx" -> "cpp"; "js" -> "javascript";
 * "ts" -> "typescript"; "golang" -> "go"; "rs" -> "rust"; "sh", "shell" ->
 * "bash"); NULL when unknown. The result is static.
 */
const char *val_lang_canonical(const char *language);
/* 1 when the syntax validator has a grammar for `language` (or an alias of it). */
int val_lang_known(const char *language);

/*
 * Whether the compile validator can really compile `language`: 1 when the
 * language has a compile command (from `compile_commands`, a cascade's
 * "compile" map as in val_input, or the default) whose program is installed
 * where the sandbox sees it; 0 otherwise, with the reason in `why` (size
 * whylen). The compile validator passes with a note, instead of failing,
 * when it cannot compile, so a worker may call this at startup to warn.
 * Borrowed arguments.
 */
int val_compile_available(const char *language, const cJSON *compile_commands, char *why,
                          size_t whylen);

/*
 * Checks at load time that `schema` uses only the JSON Schema keywords the
 * schema validator implements (with values of the right shape), so none is
 * ever silently ignored. Returns 0, or WK_EINVAL with a message in `err`
 * (size errlen) naming the first unsupported keyword and where it is.
 * `schema` is borrowed.
 */
int val_schema_supported(const cJSON *schema, char *err, size_t errlen);

/* ---- labels (label.c) --------------------------------------------------- */

/*
 * The labels of a classify task: the string `enum` of its schema at
 * `field`, a dot path of object properties ("label", "result.class").
 * field NULL or "": the schema's own enum when it has one (the answer is the
 * label itself), else properties.label's. On success *labels points into
 * `schema` (a non-empty array of strings) and *path says which field was
 * used ("" for the answer itself; static or borrowed from `field`).
 * Returns WK_ENOTFOUND (no schema or no enum there) or WK_EINVAL (an empty
 * enum, or a member that is not a string) with a clause in `why`.
 */
int val_label_set(const cJSON *schema, const char *field, const cJSON **labels, const char **path,
                  char *why, size_t whylen);

/* How a label was read from an answer; see val_label_parse. */
typedef struct val_label_parse_out {
    char label[VAL_LABEL_MAX]; /* the enum's spelling; "" when none was found */
    const char *shape;         /* "bare label", "JSON object", ...; static */
    double confidence;         /* the answer's own "confidence" field in [0, 1]; -1: none */
    size_t at;                 /* byte offset in the answer where the label was read */
} val_label_parse_out;

/*
 * Reads a label from `answer` leniently, in this order: a bare label (quotes,
 * markdown emphasis and a final period allowed), a JSON object (or string) as
 * the whole answer, a fenced JSON block, the first JSON object in the text,
 * a label followed by an explanation ("bug: the stack trace shows ..."),
 * optionally after "label:" or "answer:". Case-insensitive. `labels` and
 * `path` as val_label_set gives them. Returns 0 with out filled, or
 * WK_ENOTFOUND (out->label "") when the answer names no known label.
 */
int val_label_parse(const char *answer, const cJSON *labels, const char *path,
                    val_label_parse_out *out);

#endif
