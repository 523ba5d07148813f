/*
 * The test harness: what makes a pass need positive evidence that the tests
 * ran to their end, not just an exit status 0 the answer can fake (an
 * atexit handler calling os._exit(0), sys.exit(0) at import, a patched
 * process.exit or node:assert, a C answer defining __assert_fail).
 *
 * - A Python test command (python3 FILE, python3 -m MOD such as pytest,
 *   python3 -c CODE, pytest) runs as `python3 -I RUNNER ...`: isolated (no
 *   PYTHON* variables, no user site, no script directory ahead of the standard library), with
 *   /box appended after the standard library so a unittest.py beside the
 *   test cannot shadow the real one. The runner prints the run's secret mark
 *   after the test code returned, or exited with status 0 from a frame of
 *   the test files (unittest.main), never after an exit from the answer.
 * - A node test command (node FILE) gets a preload that freezes the assert
 *   modules and process.exit, records an exit called from a frame outside
 *   the test files, and prints the mark on exit only when the main module
 *   finished loading, nothing failed and the answer did not exit.
 * - C and C++ answers are read before they run: defining what an assertion
 *   or exit reaches (__assert_fail, abort, exit, ...), redefining assert,
 *   constructors, exit(0) and raw system calls are refused.
 * - After any run, a module-shadowing file (conftest.py, sitecustomize.py,
 *   usercustomize.py, unittest.py, *.pth) in /box that the task did not put
 *   there means the answer planted it.
 *
 * The mark is in the harness file the sandbox can read: an answer that
 * reads it there (or from its process's memory) can print it. The README's
 * threat model says so.
 */
#include "sandbox.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "validators/val_int.h"

void val__harness_mark(char out[VAL__MARK_LEN + 1])
{
    unsigned char raw[VAL__MARK_LEN / 2];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n <= 0)
            abort(); /* the kernel's generator does not fail once booted */
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int is_python(const char *prog)
{
    const char *b = base_name(prog);
    if (strcmp(b, "python") == 0 || strcmp(b, "python3") == 0)
        return 1;
    /* python3.11 */
    if (strncmp(b, "python3.", 8) != 0 || !b[8])
        return 0;
    for (const char *p = b + 8; *p; p++)
        if (!isdigit((unsigned char)*p))
            return 0;
    return 1;
}

/* Python options taking no argument, and those taking one, that the runner keeps. */
static int py_flag(const char *a)
{
    static const char *const flags[] = {"-u", "-B", "-O", "-OO", "-b", "-bb", "-q",
                                        "-s", "-S", "-E", "-I",  "-P", "-d",  NULL};
    for (int i = 0; flags[i]; i++)
        if (strcmp(a, flags[i]) == 0)
            return 1;
    return 0;
}

int val__harness_argv(const char *const *argv, int argc, char ***out, int *outc)
{
    *out = NULL;
    *outc = 0;
    if (argc < 1)
        return VAL__H_NONE;
    const char *b = base_name(argv[0]);
    if (strcmp(b, "node") == 0 || strcmp(b, "nodejs") == 0)
        return argc >= 2 && argv[1][0] != '-' ? VAL__H_NODE : VAL__H_NONE;
    int pytest = strcmp(b, "pytest") == 0 || strcmp(b, "py.test") == 0;
    if (!pytest && !is_python(argv[0]))
        return VAL__H_NONE;
    char **v = wk_xcalloc((size_t)argc + 8, sizeof *v);
    int n = 0;
    int i = 1;
    v[n++] = wk_xstrdup(pytest ? "python3" : argv[0]);
    if (!pytest) {
        /* Flags first, as python reads them; -W and -X take the next argument. */
        for (; i < argc; i++) {
            if (py_flag(argv[i])) {
                if (strcmp(argv[i], "-I") && strcmp(argv[i], "-E") && strcmp(argv[i], "-s"))
                    v[n++] = wk_xstrdup(argv[i]);
            } else if ((strcmp(argv[i], "-W") == 0 || strcmp(argv[i], "-X") == 0) && i + 1 < argc) {
                v[n++] = wk_xstrdup(argv[i]);
                v[n++] = wk_xstrdup(argv[++i]);
            } else {
                break;
            }
        }
    }
    const char *mode;
    const char *target;
    if (pytest) {
        mode = "-m", target = "pytest";
    } else if (i + 1 < argc && strcmp(argv[i], "-m") == 0) {
        mode = argv[i], target = argv[i + 1];
        i += 2;
    } else if (i < argc && strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
        mode = argv[i], target = argv[i + 1];
        i += 2;
    } else if (i < argc && argv[i][0] != '-') {
        mode = "-f", target = argv[i++];
    } else {
        /* A form the runner does not know (stdin, -V...): run as given, judged by its status. */
        for (int k = 0; k < n; k++)
            free(v[k]);
        free(v);
        return VAL__H_NONE;
    }
    v[n++] = wk_xstrdup("-I");
    v[n++] = wk_xstrdup(VAL__RUN_DIR "/pyrun.py");
    v[n++] = wk_xstrdup(mode);
    v[n++] = wk_xstrdup(target);
    for (; i < argc; i++)
        v[n++] = wk_xstrdup(argv[i]);
    *out = v;
    *outc = n;
    return VAL__H_PYTHON;
}

/* Appends s as a Python or JavaScript string literal (both read \xNN and \\). */
static void lit(wk_buf *b, const char *s)
{
    wk_buf_append(b, "'", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == '\'' || *p == '\\' || *p >= 0x7f)
            wk_buf_appendf(b, "\\x%02x", *p);
        else
            wk_buf_append(b, (const char *)p, 1);
    }
    wk_buf_append(b, "'", 1);
}

char *val__harness_python(const char *mark, const char *const *tests, int ntests)
{
    wk_buf b;
    wk_buf_init(&b, 1u << 20);
    wk_buf_appendf(&b, "# Written by cascade's sandbox for one run (see validators/sandbox/"
                       "harness.c).\n"
                       "import os, sys\n"
                       "_MARK = ('\\n@@cascade-tests-done ' + ");
    lit(&b, mark);
    wk_buf_appendf(&b, " + '\\n').encode()\n_TESTS = {");
    for (int i = 0; i < ntests; i++) {
        char *abs = wk_xasprintf("/box/%s", tests[i]);
        lit(&b, abs);
        wk_buf_append(&b, ", ", 2);
        free(abs);
    }
    wk_buf_appendf(
        &b,
        "}\n"
        "_ME = os.path.abspath(__file__)\n"
        "\n"
        "def _innermost_box_frame(tb):\n"
        "    last = None\n"
        "    while tb is not None:\n"
        "        # Frozen modules (<frozen runpy>) are not files: abspath would put them in /box.\n"
        "        n = tb.tb_frame.f_code.co_filename\n"
        "        f = n if n.startswith('<') else os.path.abspath(n)\n"
        "        if f.startswith('/box/'):\n"
        "            last = f\n"
        "        tb = tb.tb_next\n"
        "    return last\n"
        "\n"
        "def _exit_from_tests(e):\n"
        "    # sys.exit(0) from a test file (unittest.main) or a library (pytest) ends a run;\n"
        "    # from any other file under /box (the answer) it cuts the run short.\n"
        "    f = _innermost_box_frame(e.__traceback__)\n"
        "    return f is None or f in _TESTS\n"
        "\n"
        "def _run():\n"
        "    mode, target, rest = sys.argv[1], sys.argv[2], sys.argv[3:]\n"
        "    import runpy\n"
        "    if mode == '-f':\n"
        "        # -I left the script's directory off sys.path: after the standard library,\n"
        "        # so a file there cannot shadow one of its modules.\n"
        "        sys.path.append(os.path.dirname(os.path.abspath(target)))\n"
        "        sys.argv = [target] + rest\n"
        "        runpy.run_path(target, run_name='__main__')\n"
        "    elif mode == '-m':\n"
        "        sys.path.append(os.getcwd())\n"
        "        sys.argv = [target] + rest\n"
        "        runpy.run_module(target, run_name='__main__', alter_sys=True)\n"
        "    else:\n"
        "        sys.path.append(os.getcwd())\n"
        "        sys.argv = ['-c'] + rest\n"
        "        exec(compile(target, '<string>', 'exec'), {'__name__': '__main__'})\n"
        "\n"
        "def _main():\n"
        "    try:\n"
        "        _run()\n"
        "    except SystemExit as e:\n"
        "        if e.code in (None, 0, False) and _exit_from_tests(e):\n"
        "            os.write(1, _MARK)\n"
        "        raise\n"
        "    except BaseException as e:\n"
        "        # The traceback without the runner's own frames, as python would print it.\n"
        "        import traceback\n"
        "        tb = e.__traceback__\n"
        "        while tb is not None and (os.path.abspath(tb.tb_frame.f_code.co_filename) == _ME\n"
        "                                  or "
        "'runpy' in tb.tb_frame.f_code.co_filename):\n"
        "            tb = tb.tb_next\n"
        "        traceback.print_exception(type(e), e, tb)\n"
        "        sys.stderr.flush()\n"
        "        os._exit(1)\n"
        "    sys.stdout.flush()\n"
        "    sys.stderr.flush()\n"
        "    os.write(1, _MARK)\n"
        "\n"
        "_main()\n");
    return wk_buf_detach(&b, NULL);
}

char *val__harness_node(const char *mark, const char *const *tests, int ntests)
{
    wk_buf b;
    wk_buf_init(&b, 1u << 20);
    wk_buf_appendf(&b, "'use strict';\n"
                       "// Written by cascade's sandbox for one run (see validators/sandbox/"
                       "harness.c).\n"
                       "const MARK = '\\n@@cascade-tests-done ' + ");
    lit(&b, mark ? mark : "");
    wk_buf_appendf(&b, " + '\\n';\nconst TESTS = [");
    for (int i = 0; i < ntests; i++) {
        char *abs = wk_xasprintf("/box/%s", tests[i]);
        lit(&b, abs);
        wk_buf_append(&b, ", ", 2);
        free(abs);
    }
    wk_buf_appendf(
        &b,
        "];\n"
        "const fs = require('fs');\n"
        /* Only the test command itself prints the mark, not node processes it starts. */
        "const top = process.env.CASCADE_HARNESS_TOP === '1' && MARK.length > 25;\n"
        "delete process.env.CASCADE_HARNESS_TOP;\n"
        "// node prints a failed console.assert and carries on to exit 0: make it fail.\n"
        "let failed = 0;\n"
        "const origAssert = console.assert;\n"
        "console.assert = function assert(cond, ...args) {\n"
        "  if (!cond) { failed++; process.exitCode = 1; }\n"
        "  return origAssert.call(console, cond, ...args);\n"
        "};\n"
        "// The assertion modules cannot be patched (assert.strictEqual = () => {}).\n"
        "for (const m of ['assert', 'assert/strict']) {\n"
        "  try { const a = require(m); Object.freeze(a); if (a.strict) Object.freeze(a.strict); }\n"
        "  catch (e) { /* an older node without the module */ }\n"
        "}\n"
        "// An exit called from a file under /box that is not a test is the answer's.\n"
        "function fromAnswer(fn) {\n"
        "  const saved = Error.prepareStackTrace;\n"
        "  let frames;\n"
        "  try {\n"
        "    Error.prepareStackTrace = (e, f) => f;\n"
        "    const o = {};\n"
        "    Error.captureStackTrace(o, fn);\n"
        "    frames = o.stack;\n"
        "  } finally { Error.prepareStackTrace = saved; }\n"
        "  if (!Array.isArray(frames)) return true;\n"
        "  for (const f of frames) {\n"
        "    const n = f.getFileName();\n"
        "    if (n && n.startsWith('/box/')) return !TESTS.includes(n);\n"
        "  }\n"
        "  return false;\n"
        "}\n"
        "let answerExit = false, testExit = false;\n"
        "const realExit = process.exit;\n"
        "function exit(code) {\n"
        "  if (fromAnswer(exit)) answerExit = true; else testExit = true;\n"
        "  return realExit.call(process, code);\n"
        "}\n"
        "Object.defineProperty(process, 'exit', {value: exit, writable: false, configurable: "
        "false});\n"
        "process.on('exit', (code) => {\n"
        "  if (failed && !code) {\n"
        "    process.stderr.write(`cascade: ${failed} console.assert failure(s)\\n`);\n"
        "    process.exitCode = 1;\n"
        "    return;\n"
        "  }\n"
        "  // The main module as it is now (require.main was fixed before it existed).\n"
        "  const main = process.mainModule;\n"
        "  if (top && !answerExit && !code && !process.exitCode && (!main || main.loaded || "
        "testExit))\n"
        "    fs.writeSync(1, MARK);\n"
        "});\n");
    return wk_buf_detach(&b, NULL);
}

/* ---- C and C++ answers, read before they run ---------------------------------------- */

/* The code without comments and string literals (kept as spaces), for the scans. Caller frees. */
static char *strip_c(const char *s)
{
    size_t n = strlen(s);
    char *o = wk_xmalloc(n + 1);
    size_t i = 0;
    while (i < n) {
        if (s[i] == '/' && s[i + 1] == '/') {
            while (i < n && s[i] != '\n')
                o[i++] = ' ';
        } else if (s[i] == '/' && s[i + 1] == '*') {
            o[i] = o[i + 1] = ' ';
            i += 2;
            while (i < n && !(s[i] == '*' && s[i + 1] == '/'))
                o[i] = s[i] == '\n' ? '\n' : ' ', i++;
            if (i < n)
                o[i] = o[i + 1] = ' ', i += 2;
        } else if (s[i] == '"' || s[i] == '\'') {
            char q = s[i];
            o[i] = s[i];
            i++;
            while (i < n && s[i] != q && s[i] != '\n') {
                if (s[i] == '\\' && i + 1 < n)
                    o[i] = ' ', i++;
                o[i] = ' ', i++;
            }
            if (i < n)
                o[i] = s[i], i++;
        } else {
            o[i] = s[i];
            i++;
        }
    }
    o[n] = '\0';
    return o;
}

static int ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

/* The next occurrence of word `w` as a whole identifier in s at or after p; NULL when none. */
static const char *find_word(const char *s, const char *p, const char *w)
{
    size_t n = strlen(w);
    for (const char *q = strstr(p, w); q; q = strstr(q + 1, w))
        if ((q == s || !ident_char(q[-1])) && !ident_char(q[n]))
            return q;
    return NULL;
}

static const char *skip_ws(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* 1 when the ( at p closes and a { follows: a function definition, not a call or prototype. */
static int defines_here(const char *p)
{
    if (*p != '(')
        return 0;
    int depth = 0;
    for (; *p; p++) {
        if (*p == '(')
            depth++;
        else if (*p == ')' && --depth == 0)
            break;
    }
    if (!*p)
        return 0;
    p = skip_ws(p + 1);
    /* noexcept, throw(), __attribute__ and the like may sit between ) and {. */
    for (int k = 0; k < 8 && (isalpha((unsigned char)*p) || *p == '_'); k++) {
        while (ident_char(*p))
            p++;
        p = skip_ws(p);
        if (*p == '(') {
            int d = 0;
            for (; *p; p++) {
                if (*p == '(')
                    d++;
                else if (*p == ')' && --d == 0)
                    break;
            }
            if (*p)
                p = skip_ws(p + 1);
        }
    }
    return *p == '{';
}

int val__harness_c_games(const char *code, char *why, size_t whylen)
{
    /* What an assertion, an abort or an exit reaches: an answer defining one can fake a pass. */
    static const char *const reserved[] = {
        "__assert_fail",  "__assert_perror_fail",
        "__assert",       "abort",
        "exit",           "_exit",
        "_Exit",          "quick_exit",
        "atexit",         "at_quick_exit",
        "__cxa_atexit",   "__stack_chk_fail",
        "raise",          "signal",
        "sigaction",      "__libc_start_main",
        "__cxa_finalize", "_fini",
        "_init",          NULL,
    };
    static const char *const banned_words[] = {"syscall", "asm", "__asm__", "__asm", NULL};
    int rc = 0;
    char *s = strip_c(code);
    for (int i = 0; reserved[i] && !rc; i++)
        for (const char *p = find_word(s, s, reserved[i]); p && !rc;
             p = find_word(s, p + 1, reserved[i]))
            if (defines_here(skip_ws(p + strlen(reserved[i])))) {
                snprintf(why, whylen,
                         "the answer defines %s(), which the tests' assertions or exit reach; "
                         "it must not replace the C runtime",
                         reserved[i]);
                rc = 1;
            }
    /* #define or #undef of assert, NDEBUG, abort, exit. */
    for (const char *p = strchr(s, '#'); p && !rc; p = strchr(p + 1, '#')) {
        const char *q = skip_ws(p + 1);
        int def = strncmp(q, "define", 6) == 0, undef = strncmp(q, "undef", 5) == 0;
        if (!def && !undef)
            continue;
        q = skip_ws(q + (def ? 6 : 5));
        static const char *const macros[] = {"assert", "NDEBUG",        "abort",
                                             "exit",   "static_assert", NULL};
        for (int i = 0; macros[i]; i++) {
            size_t n = strlen(macros[i]);
            if (strncmp(q, macros[i], n) == 0 && !ident_char(q[n])) {
                snprintf(why, whylen, "the answer %s %s, which the tests rely on",
                         def ? "#defines" : "#undefs", macros[i]);
                rc = 1;
                break;
            }
        }
    }
    if (!rc && (strstr(s, "constructor") || strstr(s, "destructor")) &&
        strstr(s, "__attribute__")) {
        snprintf(why, whylen,
                 "the answer has a constructor or destructor function, which runs "
                 "outside the tests");
        rc = 1;
    }
    for (int i = 0; banned_words[i] && !rc; i++)
        if (find_word(s, s, banned_words[i])) {
            snprintf(why, whylen,
                     "the answer uses %s, which may end the process behind the "
                     "tests' back",
                     banned_words[i]);
            rc = 1;
        }
    /* exit(0), _exit(EXIT_SUCCESS), std::quick_exit(0): ending the tests early with success. */
    static const char *const exits[] = {"exit", "_exit", "_Exit", "quick_exit", NULL};
    for (int i = 0; exits[i] && !rc; i++)
        for (const char *p = find_word(s, s, exits[i]); p && !rc;
             p = find_word(s, p + 1, exits[i])) {
            const char *q = skip_ws(p + strlen(exits[i]));
            if (*q != '(')
                continue;
            q = skip_ws(q + 1);
            if ((q[0] == '0' && skip_ws(q + 1)[0] == ')') || strncmp(q, "EXIT_SUCCESS", 12) == 0) {
                snprintf(why, whylen,
                         "the answer calls %s with a success status, ending the tests early",
                         exits[i]);
                rc = 1;
            }
        }
    free(s);
    return rc;
}

int val__harness_shadow_name(const char *path)
{
    const char *b = base_name(path);
    static const char *const names[] = {
        "conftest.py", "sitecustomize.py", "usercustomize.py", "unittest.py",
        "pytest.py",   "_pytest",          "unittest",         NULL};
    for (int i = 0; names[i]; i++)
        if (strcmp(b, names[i]) == 0)
            return 1;
    size_t n = strlen(b);
    return n > 4 && strcmp(b + n - 4, ".pth") == 0;
}
