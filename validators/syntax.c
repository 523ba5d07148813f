/*
 * The syntax validator: parses the code with tree-sitter and fails on the
 * first ERROR or MISSING node, naming where it is and quoting the line. The
 * grammar table below is the one place that knows which languages we parse.
 *
 * tree-sitter does not run the C preprocessor, so real, valid C and C++ trip
 * it (macros, `extern "C" {` split across #ifdef). For those two, when a
 * compile step follows (val_input.syntax_advisory), an error is advisory: the
 * verdict passes with a note naming it, and the compiler decides.
 *
 * The code is the model's, so it is hostile: Debian's libtree-sitter frees
 * an invalid pointer on `x = ` and 100,000 `(` (any grammar, from about
 * 65,000 levels), and a crash in the worker would come back on every resume
 * (the answer is journaled before it is validated). So the size and the
 * bracket depth are checked first, and the parse runs in a forked child
 * with a CPU limit and no core dumps; its crash is a verdict on the code
 * (validator_crash), not the worker's death. The loop waits for the child,
 * as it waited for the parse before: syntax still finishes inside start().
 */
#include "val_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <tree_sitter/api.h>
#include <unistd.h>

/* Grammar entry points from build/grammars/libgrammars.a. */
const TSLanguage *tree_sitter_python(void);
const TSLanguage *tree_sitter_c(void);
const TSLanguage *tree_sitter_cpp(void);
const TSLanguage *tree_sitter_javascript(void);
const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);
const TSLanguage *tree_sitter_go(void);
const TSLanguage *tree_sitter_rust(void);
const TSLanguage *tree_sitter_java(void);
const TSLanguage *tree_sitter_json(void);
const TSLanguage *tree_sitter_bash(void);

/*
 * Canonical language name (see val_lang_canonical, which maps the aliases)
 * -> grammar. Adding a language is one line here, one in the lock and one in
 * common.c's language table.
 */
static const struct {
    const char *name;
    const TSLanguage *(*lang)(void);
    int advisory; /* errors may be advisory: the preprocessor hides the real syntax */
} grammars[] = {
    {"python", tree_sitter_python, 0},
    {"c", tree_sitter_c, 1},
    {"cpp", tree_sitter_cpp, 1},
    {"javascript", tree_sitter_javascript, 0},
    {"typescript", tree_sitter_typescript, 0},
    {"tsx", tree_sitter_tsx, 0},
    {"go", tree_sitter_go, 0},
    {"rust", tree_sitter_rust, 0},
    {"java", tree_sitter_java, 0},
    {"json", tree_sitter_json, 0},
    {"bash", tree_sitter_bash, 0},
};

#define N_GRAMMARS ((int)(sizeof grammars / sizeof grammars[0]))
_Static_assert(sizeof grammars / sizeof grammars[0] <= VAL__GRAMMAR_SLOTS,
               "raise VAL__GRAMMAR_SLOTS in val_int.h");

/*
 * A parse that takes this much CPU time is pathological input; fail instead
 * of stalling the loop. CPU time, not the wall clock, so a loaded machine
 * does not fail good code; the wall clock bound (tree-sitter's own timeout)
 * is a backstop.
 */
#define PARSE_CPU_S 2
#define PARSE_TIMEOUT_US (10u * 1000 * 1000)
/* Code larger than this is not parsed (a model's file is far smaller). */
#define PARSE_MAX_BYTES (8u << 20)
/*
 * Brackets nested deeper than this are not parsed: no real program comes
 * near, and tree-sitter breaks (frees an invalid pointer) around 65,000.
 */
#define PARSE_MAX_DEPTH 2000
/* How long the parent waits for the child beyond the parser's own timeout. */
#define CHILD_GRACE_MS 3000

static int grammar_index(const char *language)
{
    const char *name = val_lang_canonical(language);
    if (!name)
        return -1;
    for (int i = 0; i < N_GRAMMARS; i++)
        if (strcmp(grammars[i].name, name) == 0)
            return i;
    return -1;
}

int val_lang_known(const char *language)
{
    return grammar_index(language) >= 0;
}

void val__syntax_env_release(val_env *env)
{
    for (int i = 0; i < VAL__GRAMMAR_SLOTS; i++) {
        if (env->parsers[i])
            ts_parser_delete(env->parsers[i]);
        env->parsers[i] = NULL;
    }
}

/* A parser set to grammar g; NULL when the grammar's ABI is not ours. */
static TSParser *parser_new(int g)
{
    TSParser *p = ts_parser_new();
    /* Fails when the grammar was generated for an ABI this library lacks. */
    if (!ts_parser_set_language(p, grammars[g].lang())) {
        ts_parser_delete(p);
        return NULL;
    }
    ts_parser_set_timeout_micros(p, PARSE_TIMEOUT_US);
    return p;
}

/*
 * First ERROR or MISSING node in document order: a pre-order walk that skips
 * subtrees without errors, so the first hit is also the earliest.
 */
static int find_error(TSNode root, TSNode *out)
{
    if (!ts_node_has_error(root))
        return 0;
    TSTreeCursor cur = ts_tree_cursor_new(root);
    int found = 0;
    for (;;) {
        TSNode n = ts_tree_cursor_current_node(&cur);
        if (ts_node_is_missing(n) || strcmp(ts_node_type(n), "ERROR") == 0) {
            *out = n;
            found = 1;
            break;
        }
        if (ts_node_has_error(n) && ts_tree_cursor_goto_first_child(&cur))
            continue;
        /* Next sibling, or climb until one exists. */
        while (!ts_tree_cursor_goto_next_sibling(&cur)) {
            if (!ts_tree_cursor_goto_parent(&cur))
                goto done;
        }
    }
done:
    ts_tree_cursor_delete(&cur);
    return found;
}

/* The text of line `row` (0-based) of code. */
static char *source_line(const char *code, uint32_t row)
{
    const char *p = code;
    for (uint32_t r = 0; r < row && p; r++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p)
        return wk_xstrdup("");
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len > 200)
        len = 200; /* a minified line would swamp the feedback */
    return wk_xstrndup(p, len);
}

/*
 * The deepest nesting of (, [ and { in code, strings and comments not told
 * apart: a bound, checked before the parser sees the code, not a verdict on
 * balance.
 */
static size_t bracket_depth(const char *code, size_t len)
{
    size_t depth = 0, max = 0;
    for (size_t i = 0; i < len; i++) {
        char c = code[i];
        if (c == '(' || c == '[' || c == '{') {
            if (++depth > max)
                max = depth;
        } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return max;
}

enum { PO_OK, PO_ERROR, PO_TIMEOUT };

/* What the child reports: fixed size, so one write and one read carry it. */
typedef struct parse_out {
    int status; /* PO_* */
    uint32_t srow, scol, erow, ecol;
    int missing;
    char type[64]; /* the missing node's type */
} parse_out;

/*
 * Parses code with p and fills out; the part that runs in the child. A
 * child (in_child) leaves its tree to the kernel: it exits right after, and
 * freeing a large tree node by node costs about a tenth of the parse.
 */
static void parse_here(TSParser *p, const char *code, uint32_t len, parse_out *out, int in_child)
{
    memset(out, 0, sizeof *out);
    TSTree *tree = ts_parser_parse_string(p, NULL, code, len);
    if (!tree) {
        ts_parser_reset(p); /* timed out; the cached parser starts clean next time */
        out->status = PO_TIMEOUT;
        return;
    }
    TSNode bad;
    if (find_error(ts_tree_root_node(tree), &bad)) {
        TSPoint s = ts_node_start_point(bad);
        TSPoint e = ts_node_end_point(bad);
        out->status = PO_ERROR;
        out->srow = s.row, out->scol = s.column, out->erow = e.row, out->ecol = e.column;
        out->missing = ts_node_is_missing(bad);
        snprintf(out->type, sizeof out->type, "%s", ts_node_type(bad));
    }
    if (!in_child)
        ts_tree_delete(tree);
}

/*
 * In the parse child, before the parse: the parent never parses (its
 * parser's memory is grown in children), so the child's heap is fresh and
 * the parse took a page fault for each 4 KiB it touched, about 40 bytes of
 * heap per byte of code, a fifth of the child's time. The heap is grown
 * once by about that much (capped) and the new pages made present in one
 * call, which costs a fraction of the faults. Best effort: without
 * MADV_POPULATE_WRITE (Linux 5.14) the pages fault in as before.
 */
#define HEAP_PER_BYTE 40u
#define HEAP_PREFAULT_MAX (256u << 20)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static void heap_for_parse(uint32_t len)
{
    size_t want = (size_t)len * HEAP_PER_BYTE;
    if (want > HEAP_PREFAULT_MAX)
        want = HEAP_PREFAULT_MAX;
    if (want < (1u << 20))
        return;
    /* The next growth of the heap takes `want` more, and a free keeps it. */
    mallopt(M_TRIM_THRESHOLD, (int)(HEAP_PREFAULT_MAX * 2u));
    mallopt(M_TOP_PAD, (int)want);
    /* Grow it now: more than its top has left, below the mmap threshold (32 MiB at most). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    struct mallinfo2 mi = mallinfo2();
    if (mi.keepcost >= (16u << 20))
        return; /* room enough already */
    char *lo = sbrk(0);
    void *grow = malloc(mi.keepcost + 4096);
    char *hi = sbrk(0);
    free(grow);
    uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t start = ((uintptr_t)lo + pg - 1) & ~(pg - 1);
    if (grow && lo != (char *)-1 && hi != (char *)-1 && (uintptr_t)hi > start)
        madvise((void *)start, (uintptr_t)hi - start, MADV_POPULATE_WRITE);
}

/*
 * Reads len bytes from fd within timeout_ms; returns the bytes read, and in
 * *eof whether the writer closed its end (rather than the time ran out).
 */
static size_t read_within(int fd, void *buf, size_t len, int timeout_ms, int *eof)
{
    size_t got = 0;
    uint64_t deadline = wk_now_ms() + (uint64_t)timeout_ms;
    *eof = 0;
    while (got < len) {
        uint64_t now = wk_now_ms();
        if (now >= deadline)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *eof = 1;
            break;
        }
        got += (size_t)n;
    }
    return got;
}

/*
 * Parses code in a forked child, so a parser that crashes takes only the
 * child. Returns 0 with *out filled; the signal number (> 0) that ended a
 * crashed child; -1 when it ran out of time (its CPU limit, or the wall
 * clock here).
 * When no child can be made (no processes or descriptors left: the
 * machine's condition, not the answer's), parses here, after the checks
 * the caller made.
 */
static int parse_isolated(TSParser *p, const char *code, uint32_t len, parse_out *out)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        parse_here(p, code, len, out, 0);
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        parse_here(p, code, len, out, 0);
        return 0;
    }
    if (pid == 0) {
        /* The child: no core file, and its CPU time bounded (SIGXCPU, then SIGKILL). */
        struct rlimit core = {0, 0};
        setrlimit(RLIMIT_CORE, &core);
        struct rlimit lim = {PARSE_CPU_S, PARSE_CPU_S + 1};
        setrlimit(RLIMIT_CPU, &lim);
        close(fds[0]);
        /*
         * A crash must end the child: handlers it inherited (a sanitizer's,
         * a test framework's) would carry on in the parent's shoes.
         */
        static const int crash_sigs[] = {SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGTRAP};
        for (size_t i = 0; i < sizeof crash_sigs / sizeof crash_sigs[0]; i++)
            signal(crash_sigs[i], SIG_DFL);
        /* Test hook: a parser that crashes, as libtree-sitter does on deep nesting. */
        if (getenv("CASCADE_FAULT_PARSER_CRASH"))
            raise(SIGSEGV);
        heap_for_parse(len);
        parse_out po;
        parse_here(p, code, len, &po, 1);
        ssize_t w = write(fds[1], &po, sizeof po);
        _exit(w == (ssize_t)sizeof po ? 0 : 1);
    }
    close(fds[1]);
    int eof = 0;
    size_t got = read_within(fds[0], out, sizeof *out,
                             (int)(PARSE_TIMEOUT_US / 1000) + CHILD_GRACE_MS, &eof);
    close(fds[0]);
    int timed_out = got != sizeof *out && !eof;
    if (timed_out)
        kill(pid, SIGKILL); /* still running with no answer in time: stop it */
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out)
        return -1;
    if (got == sizeof *out)
        return 0;
    /* Out of CPU time is "did not finish"; any other signal is a crash. */
    if (WIFSIGNALED(status) && WTERMSIG(status) != SIGXCPU && WTERMSIG(status) != SIGKILL)
        return WTERMSIG(status);
    return -1;
}

static int syntax_start(val_env *env, const val_input *in, const char *code, val_done_cb done,
                        void *arg)
{
    val_verdict v = {0};
    TSParser *own = NULL;
    char *msg = NULL;
    char *ev = NULL;
    char *line = NULL;

    int g = grammar_index(in->language);
    if (g < 0) {
        msg =
            wk_xasprintf("no grammar for language \"%s\"", in->language ? in->language : "(none)");
        val_verdict_fail(&v, "syntax", "unsupported", msg, NULL);
        goto report;
    }

    /* One parser per grammar per env; without an env, a parser for this call. */
    TSParser *p = env ? env->parsers[g] : NULL;
    if (!p) {
        p = parser_new(g);
        if (!p) {
            msg = wk_xasprintf("the %s grammar does not match tree-sitter ABI %d", grammars[g].name,
                               TREE_SITTER_LANGUAGE_VERSION);
            val_verdict_fail(&v, "syntax", "unsupported", msg, NULL);
            goto report;
        }
        if (env)
            env->parsers[g] = p;
        else
            own = p;
    }

    size_t len = strlen(code);
    size_t depth = bracket_depth(code, len);
    if (len > PARSE_MAX_BYTES) {
        msg = wk_xasprintf("the code is too large to parse (%zu bytes, at most %u)", len,
                           PARSE_MAX_BYTES);
        val_verdict_fail(&v, "syntax", "syntax_error", msg, NULL);
        goto report;
    }
    if (depth > PARSE_MAX_DEPTH) {
        msg = wk_xasprintf("brackets nested %zu deep (at most %d are parsed)", depth,
                           PARSE_MAX_DEPTH);
        val_verdict_fail(&v, "syntax", "syntax_error", msg, NULL);
        goto report;
    }
    parse_out po;
    int crash = parse_isolated(p, code, (uint32_t)len, &po);
    if (crash > 0) {
        msg = wk_xasprintf("the parser (tree-sitter) crashed on this code (%s)", strsignal(crash));
        val_verdict_fail(&v, "syntax", "validator_crash", msg, NULL);
        goto report;
    }
    if (crash < 0 || po.status == PO_TIMEOUT) {
        msg = wk_xasprintf("parsing took too long (more than %d s of CPU time)", PARSE_CPU_S);
        val_verdict_fail(&v, "syntax", "syntax_error", msg, NULL);
        goto report;
    }
    if (po.status == PO_OK) {
        val_verdict_pass(&v);
        goto report;
    }
    TSPoint s = {po.srow, po.scol};
    TSPoint e = {po.erow, po.ecol};
    if (in->syntax_advisory && grammars[g].advisory) {
        /* The compiler that follows knows the preprocessor; it has the last word. */
        val_verdict_pass(&v);
        msg = wk_xasprintf("syntax: advisory only, not failed: tree-sitter reports a %s syntax "
                           "error at line %u:%u%s%s%s, but the compile step that follows decides",
                           grammars[g].name, s.row + 1, s.column + 1,
                           po.missing ? " (missing \"" : "", po.missing ? po.type : "",
                           po.missing ? "\")" : "");
        val_verdict_note(&v, msg);
        goto report;
    }
    /* tree-sitter rows and columns are 0-based; editors and models count from 1. */
    if (po.missing)
        msg = wk_xasprintf("%s syntax error at line %u:%u: missing \"%s\"", grammars[g].name,
                           s.row + 1, s.column + 1, po.type);
    else
        msg = wk_xasprintf("%s syntax error at line %u:%u", grammars[g].name, s.row + 1,
                           s.column + 1);
    line = source_line(code, s.row);
    ev = wk_xasprintf("line %u:%u (span %u:%u-%u:%u)\n%5u | %s\n      | %*s^", s.row + 1,
                      s.column + 1, s.row + 1, s.column + 1, e.row + 1, e.column + 1, s.row + 1,
                      line, (int)(s.column < 200 ? s.column : 200), "");
    val_verdict_fail(&v, "syntax", "syntax_error", msg, ev);

report:
    done(arg, &v);
    val_verdict_clear(&v);
    if (own)
        ts_parser_delete(own);
    free(msg);
    free(ev);
    free(line);
    return 0;
}

/* Bytes of one changed file that are parsed; a larger one is left to the tests. */
#define TOUCHED_FILE_MAX (4u << 20)

static void keep_verdict(void *arg, const val_verdict *v)
{
    val_verdict_copy(arg, v);
}

/*
 * After "patch": every file the diff changed or added, in the patched tree,
 * parsed with the grammar its extension names; files of other kinds are
 * skipped. The first error fails the verdict, naming the file.
 */
static int touched_start(val_env *env, const val_input *in, val_done_cb done, void *arg)
{
    val_verdict v = {0};
    wk_buf notes;
    wk_buf_init(&notes, VAL_MESSAGE_MAX);
    val_verdict_pass(&v);
    char *list = wk_xstrdup(in->touched);
    for (char *line = list, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = '\0';
        const char *dot = strrchr(line, '.');
        const char *slash = strrchr(line, '/');
        if (!dot || (slash && dot < slash) || grammar_index(dot + 1) < 0)
            continue;
        char *path = wk_xasprintf("%s/%s", in->workdir, line);
        char *code = NULL;
        size_t len = 0;
        int rc = wk_read_file(path, TOUCHED_FILE_MAX, &code, &len);
        free(path);
        if (rc < 0 || memchr(code, '\0', len)) {
            free(code);
            continue; /* too large or binary: the tests have the last word */
        }
        val_input one = *in;
        one.language = dot + 1;
        one.touched = NULL;
        val_verdict fv = {0};
        syntax_start(env, &one, code, keep_verdict, &fv);
        free(code);
        if (fv.note && fv.note[0])
            wk_buf_appendf(&notes, "%s%s: %s", notes.len ? "; " : "", line, fv.note);
        if (!fv.pass) {
            char *msg = wk_xasprintf("%s: %s", line, fv.message ? fv.message : "syntax error");
            char *ev = wk_xasprintf("file: %s\n%s", line, fv.evidence ? fv.evidence : "");
            val_verdict_fail(&v, "syntax", fv.reason, msg, ev);
            free(msg);
            free(ev);
            val_verdict_clear(&fv);
            break;
        }
        val_verdict_clear(&fv);
    }
    if (notes.len)
        val_verdict_note(&v, notes.buf);
    done(arg, &v);
    val_verdict_clear(&v);
    wk_buf_release(&notes);
    free(list);
    return 0;
}

static int syntax_or_touched(val_env *env, const val_input *in, const char *code, val_done_cb done,
                             void *arg)
{
    if (in->touched && in->workdir)
        return touched_start(env, in, done, arg);
    return syntax_start(env, in, code, done, arg);
}

/*
 * What a task run through syntax must have: a language with a grammar.
 * Checked at intake, so a task in a language we cannot parse costs no call
 * (every answer would fail "unsupported").
 */
static int syntax_check_task(const cJSON *task, const cJSON *schema, char *why, size_t whylen)
{
    (void)schema;
    const cJSON *lang = cJSON_GetObjectItemCaseSensitive(task, "language");
    if (cJSON_IsString(lang) && grammar_index(lang->valuestring) >= 0)
        return 0;
    /* After "patch", the changed files are parsed by their extensions, not the task's language. */
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(task, "kind"));
    if (kind && strcmp(kind, "patch") == 0)
        return 0;
    wk_buf names;
    wk_buf_init(&names, 256);
    for (int i = 0; i < N_GRAMMARS; i++)
        wk_buf_appendf(&names, "%s%s", i ? ", " : "", grammars[i].name);
    if (!lang)
        snprintf(why, whylen, "checks syntax but the task has no \"language\" (one of %s)",
                 names.buf);
    else if (!cJSON_IsString(lang))
        snprintf(why, whylen, "checks syntax but \"language\" is not a string (one of %s)",
                 names.buf);
    else
        snprintf(why, whylen,
                 "checks syntax but language \"%.40s\" has no grammar (one of %s, or an alias)",
                 lang->valuestring, names.buf);
    wk_buf_release(&names);
    return lang ? WK_EINVAL : WK_ENOTFOUND;
}

const val_ops val__syntax_ops = {
    .name = "syntax",
    .start = syntax_or_touched,
    .check_task = syntax_check_task,
};
