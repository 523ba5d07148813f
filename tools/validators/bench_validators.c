/*
 * bench-validators: the two rows of issue 3's benchmark, printed as a table.
 *
 *  1. The syntax validator (val_chain_start with "syntax", parser cached in
 *     the env, code extraction included) against a bare ts_parser_parse_string
 *     loop, on the same ~1 MB of Python. Median of the runs, in MB/s.
 *  2. A sandboxed `true` (the whole sandbox path: bwrap, namespaces, the
 *     limits, the end-of-run report, libuv's watch) against a bare fork/exec
 *     of `true` with waitpid. Median of the runs, in ms. An extra row shows
 *     bare bubblewrap with the same namespaces, to say where the time goes.
 *  3. Sandboxes per second: many sandboxed `true` queued at once, run as
 *     many at a time as there are CPUs (the worker's default).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <tree_sitter/api.h>

#include "validators/sandbox/sandbox.h"
#include "validators/val_int.h"

const TSLanguage *tree_sitter_python(void);

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* About `target` bytes of valid, varied Python. Caller frees. */
static char *python_source(size_t target, size_t *len)
{
    wk_buf b;
    wk_buf_init(&b, target + 4096);
    for (int i = 0; b.len < target; i++)
        wk_buf_appendf(&b,
                       "def func_%d(items, threshold=%d):\n"
                       "    \"\"\"Filter and sum, number %d.\"\"\"\n"
                       "    total = 0\n"
                       "    for i, x in enumerate(items):\n"
                       "        if x > threshold and i %% 3 != 0:\n"
                       "            total += x * %d\n"
                       "        elif isinstance(x, str):\n"
                       "            total += len(x.strip())\n"
                       "    return {'n': total, 'ok': [y for y in items if y]}\n\n\n",
                       i, i % 17, i, i % 7 + 1);
    return wk_buf_detach(&b, len);
}

typedef struct seen {
    int calls, pass;
} seen;

static void on_verdict(void *arg, const val_verdict *v)
{
    seen *s = arg;
    s->calls++;
    s->pass = v->pass;
}

static void on_sbx(void *arg, const val__sbx_result *r)
{
    int *status = arg;
    *status = r->spawned ? (int)r->exit_status : -1;
    if (*status != 0)
        fprintf(stderr,
                "bench-validators: sandboxed true: status %d, signal %d, timed out %d, %llu ms, "
                "output: %.300s\n",
                *status, r->term_signal, r->timed_out, (unsigned long long)r->elapsed_ms,
                r->output);
}

/* fork/exec of argv, waited for; returns ms, or -1 when it did not exit 0. */
static double spawn_ms(char *const argv[])
{
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    if (pid < 0)
        return -1;
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    return now_ms() - t0;
}

#define RUNS 41
#define PAR_RUNS 60

int main(void)
{
    int rc = 1;
    size_t len = 0;
    char *src = python_source(1u << 20, &len);
    /* The answer as a model sends it: prose and a fenced block to extract. */
    char *answer = wk_xasprintf("Here it is:\n```python\n%s```\n", src);
    uv_loop_t loop;
    uv_loop_init(&loop);
    char err[256];
    val_env *env = val_env_new(&loop, NULL, 1, err, sizeof err);
    if (!env) {
        fprintf(stderr, "bench-validators: %s\n", err);
        return 1;
    }

    /* ---- 1. syntax ---- */
    double ours[RUNS], bare[RUNS];
    TSParser *p = ts_parser_new();
    ts_parser_set_language(p, tree_sitter_python());
    const char *names[] = {"syntax"};
    val_input in = {.task_id = "bench", .kind = "code", .language = "python", .answer = answer};
    for (int i = -2; i < RUNS; i++) { /* two warm-up rounds of each */
        /* A loop that parses again and again frees each tree, as the validator does. */
        double t0 = now_ms();
        TSTree *t = ts_parser_parse_string(p, NULL, src, (uint32_t)len);
        int bad = !t || ts_node_has_error(ts_tree_root_node(t));
        if (t)
            ts_tree_delete(t);
        double t1 = now_ms();
        if (bad) {
            fprintf(stderr, "bench-validators: the bench input does not parse\n");
            goto cleanup;
        }
        seen s = {0};
        double t2 = now_ms();
        val_chain_start(env, names, 1, &in, on_verdict, &s);
        double t3 = now_ms();
        if (s.calls != 1 || !s.pass) {
            fprintf(stderr, "bench-validators: the syntax validator failed the bench input\n");
            goto cleanup;
        }
        if (i >= 0) {
            bare[i] = t1 - t0;
            ours[i] = t3 - t2;
        }
    }
    ts_parser_delete(p);
    p = NULL;
    double mb = (double)len / (1 << 20);
    double ours_mbs = mb / (median(ours, RUNS) / 1e3);
    double bare_mbs = mb / (median(bare, RUNS) / 1e3);

    /* ---- 2. sandboxed true ---- */
    double sbx[RUNS], fork_true[RUNS], bwrap_true[RUNS];
    char *true_argv[] = {"/bin/true", NULL};
    char *bwrap_argv[] = {"/usr/bin/bwrap", "--unshare-all",
                          "--unshare-user", "--die-with-parent",
                          "--as-pid-1",     "--ro-bind",
                          "/usr",           "/usr",
                          "--symlink",      "usr/lib",
                          "/lib",           "--symlink",
                          "usr/lib64",      "/lib64",
                          "--symlink",      "usr/bin",
                          "/bin",           "--proc",
                          "/proc",          "--dev",
                          "/dev",           "--",
                          "/bin/true",      NULL};
    const char *argv[] = {"true"};
    val__sbx_spec spec = {.argv = argv, .argc = 1};
    for (int i = -2; i < RUNS; i++) {
        double f = spawn_ms(true_argv);
        double b = spawn_ms(bwrap_argv);
        int status = -2;
        double t0 = now_ms();
        val__sandbox_start(env, &spec, on_sbx, &status);
        uv_run(&loop, UV_RUN_DEFAULT);
        double s = now_ms() - t0;
        if (f < 0 || b < 0 || status != 0) {
            fprintf(stderr,
                    "bench-validators: a run of true failed (fork %g, bwrap %g, sandbox "
                    "status %d)\n",
                    f, b, status);
            goto cleanup;
        }
        if (i >= 0) {
            fork_true[i] = f;
            bwrap_true[i] = b;
            sbx[i] = s;
        }
    }
    double sbx_ms = median(sbx, RUNS), fork_ms = median(fork_true, RUNS);
    double bwrap_ms = median(bwrap_true, RUNS);

    /*
     * ---- 3. sandboxes per second: PAR_RUNS sandboxed `true` started at once
     * on an env that runs as many at a time as there are CPUs (the worker's
     * default); the rest wait in its FIFO, as a batch's validations do.
     */
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    val_env *penv = val_env_new(&loop, NULL, 0, err, sizeof err);
    if (!penv) {
        fprintf(stderr, "bench-validators: %s\n", err);
        goto cleanup;
    }
    int pstatus[PAR_RUNS];
    double pt0 = now_ms();
    for (int i = 0; i < PAR_RUNS; i++) {
        pstatus[i] = -2;
        val__sandbox_start(penv, &spec, on_sbx, &pstatus[i]);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    double par_s = (now_ms() - pt0) / 1e3;
    val_env_free(penv);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < PAR_RUNS; i++)
        if (pstatus[i] != 0) {
            fprintf(stderr, "bench-validators: a parallel sandboxed true failed (status %d)\n",
                    pstatus[i]);
            goto cleanup;
        }

    printf("\nbench-validators (median of %d runs)\n\n", RUNS);
    printf("%-44s %12s %12s %12s %10s\n", "row", "ours", "baseline", "ratio/added", "target");
    printf("%-44s %7.1f MB/s %7.1f MB/s %11.2fx %10s\n",
           "syntax validator vs ts_parser_parse_string", ours_mbs, bare_mbs, ours_mbs / bare_mbs,
           ">= 0.90x");
    printf("%-44s %9.2f ms %9.2f ms %+9.2f ms %10s\n", "sandboxed true vs fork/exec true", sbx_ms,
           fork_ms, sbx_ms - fork_ms, "<= +5 ms");
    printf("%-44s %9.2f ms %9.2f ms %+9.2f ms %10s\n",
           "  (bare bwrap --unshare-all true, for scale)", bwrap_ms, fork_ms, bwrap_ms - fork_ms,
           "");
    printf("%-44s %9.1f /s  %3ld cores %12s %10s\n", "sandboxes per second (sandboxed true)",
           PAR_RUNS / par_s, ncpu, "", "");
    printf("\ninput: %.2f MB of Python (%zu bytes) in a fenced answer; sandbox: the full recipe "
           "(limits, read-only system, tmpfs, report)\n",
           mb, len);
    rc = 0;
cleanup:
    if (p)
        ts_parser_delete(p);
    val_env_free(env);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(src);
    free(answer);
    return rc;
}
