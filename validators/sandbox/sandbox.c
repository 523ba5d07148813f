/*
 * The sandbox: every command that touches model output runs here.
 * bubblewrap builds a container with every namespace unshared (so no network
 * but its own loopback), nested user namespaces disabled, an empty
 * environment, a read-only system (/usr and /etc bound, the root remounted
 * read-only) and size-capped tmpfs at /box (the working directory), /tmp and
 * /dev/shm. The task's files go into /box through descriptors bwrap copies
 * from; test files are bound read-only and their SHA-256 checked after the
 * run. A small shell, the sandbox's first process, sets the rlimits (CPU soft
 * below hard, address space, processes, file size, open files, no core),
 * runs the command, kills whatever the command left running (a daemonised
 * grandchild), and reports the exit status and the test files' hashes.
 * libuv watches it from outside: a wall-clock timer and an output cap kill
 * the whole process group. At most max_sandboxes run at once, the rest wait
 * in a FIFO; as root each running sandbox has a host uid of its own.
 *
 * Host directories (what a run may copy into /box, the patch validator's
 * trees) are in hostdir.c.
 */
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "validators/val_int.h"

#define BWRAP_PATH "/usr/bin/bwrap"
/* After the command exits, how long we wait for the last output before giving up. */
#define DRAIN_GRACE_MS 2000
/* The host path a hostdir is bound at, read-only, before the copy into /box. */
#define IN_DIR "/in"
#define RUN_DIR VAL__RUN_DIR
/* The line the harness prints when the tests ran to their end, before the mark. */
#define DONE_MARK "\n@@cascade-tests-done "
/* The shell's report line for a module-shadowing file the run added to /box. */
#define PLANTED_MARK "@@cascade-planted "
/* The line the sandbox's shell prints after the command, before the hashes. */
#define END_MARK "\n@@cascade-sandbox-end "
/* After a kill, how long before the next, harder one if the run has not ended. */
#define KILL_RETRY_MS 1000
/* How long a run waits for descriptors (EMFILE) before it fails as a sandbox error. */
#define RETRY_MAX_MS (10u * 60 * 1000)
/* Descriptors the worker keeps for itself, and those one sandbox is counted for. */
#define FDS_RESERVED 128
#define FDS_PER_SANDBOX 40
/* Descriptors a spawn needs beyond the run's own, checked before it is tried. */
#define SPARE_FDS 6
/* How old a left-behind task directory must be before the sweep removes it. */
#define SWEEP_AGE_S 3600

struct val__job {
    val__job *next;
    val_env *env;
    /* What to run; all owned. */
    char *hostdir;
    char **argv; /* NULL-terminated */
    int argc;
    val__sbx_file *files; /* deep copies */
    int nfiles;
    char (*hashes)[65]; /* hashes[i] of files[i] when readonly */
    int nreadonly;
    val_limits limits;
    int node_asserts;
    int harness;                  /* VAL__H_* */
    char mark[VAL__MARK_LEN + 1]; /* "" when the run has none */
    char *pyrun;                  /* the python runner, when harness is VAL__H_PYTHON; owned */
    char *node_js;                /* the node preload, when node_asserts or VAL__H_NODE; owned */
    char *planted;                /* from the shell's report; owned */
    val__sbx_cb cb;
    void *arg;
    int slot;               /* uid pool slot while running, else -1 */
    int retries;            /* launches put off for want of descriptors */
    char *cg_mem, *cg_pids; /* the run's cgroups (cgroup.c), or NULL; owned */

    uv_process_t proc;
    uv_pipe_t out;
    uv_timer_t timer;
    int open_handles; /* closed one by one; the job is freed at zero */
    int finishing;

    int spawned;
    int exited;
    int eof;
    int timed_out;
    int output_capped;
    int kills; /* kills sent so far */
    int64_t exit_status;
    int term_signal;
    uint64_t t0;
    char *error;
    size_t report_room; /* bytes past output_cap kept for the sandbox's report */
    wk_buf output;
    char chunk[65536];
};

/* ---- environment ----------------------------------------------------------- */

static void root_arg(val_env *env, const char *s)
{
    if (env->n_root_args < VAL__ROOT_ARGS_MAX)
        env->root_args[env->n_root_args++] = wk_xstrdup(s);
}

/*
 * The sandbox's / is bwrap's own empty tmpfs (made read-only later) with only
 * /usr and /etc bound from the host, so /root, /home and the repository,
 * where keys may sit in files, are not even visible. Debian merges /bin and
 * /lib into /usr; we copy whichever form the host has.
 */
static void build_root_args(val_env *env)
{
    static const char *const binds[] = {"/usr", "/etc"};
    static const char *const tops[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};
    for (size_t i = 0; i < sizeof binds / sizeof binds[0]; i++) {
        root_arg(env, "--ro-bind");
        root_arg(env, binds[i]);
        root_arg(env, binds[i]);
    }
    for (size_t i = 0; i < sizeof tops / sizeof tops[0]; i++) {
        struct stat st;
        if (lstat(tops[i], &st) != 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlink(tops[i], target, sizeof target - 1);
            if (n <= 0)
                continue;
            target[n] = '\0';
            root_arg(env, "--symlink");
            root_arg(env, target);
            root_arg(env, tops[i]);
        } else if (S_ISDIR(st.st_mode)) {
            root_arg(env, "--ro-bind");
            root_arg(env, tops[i]);
            root_arg(env, tops[i]);
        }
    }
}

val_env *val_env_new(uv_loop_t *loop, const val_limits *limits, int max_sandboxes, char *err,
                     size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (access(BWRAP_PATH, X_OK) != 0) {
        if (err && errlen)
            snprintf(err, errlen,
                     "the sandbox needs bubblewrap at %s (Debian: apt-get install bubblewrap)",
                     BWRAP_PATH);
        return NULL;
    }
    val_env *env = wk_xcalloc(1, sizeof *env);
    env->loop = loop;
    if (limits)
        env->limits = *limits;
    else
        val_limits_default(&env->limits);
    if (max_sandboxes <= 0)
        max_sandboxes = (int)uv_available_parallelism();
    env->max_sandboxes = max_sandboxes > 0 ? max_sandboxes : 1;
    /*
     * Each starting sandbox holds a descriptor per task file for a moment,
     * and the worker needs its own (calls, the journal): size the sandboxes
     * to the open-file limit so they do not starve each other (a shortage
     * that happens anyway is waited out; see job_wait_for_fds).
     */
    struct rlimit nf;
    if (getrlimit(RLIMIT_NOFILE, &nf) == 0 && nf.rlim_cur != RLIM_INFINITY) {
        long fit = ((long)nf.rlim_cur - FDS_RESERVED) / FDS_PER_SANDBOX;
        if (fit < 1)
            fit = 1;
        if (env->max_sandboxes > fit) {
            fprintf(stderr,
                    "cascade: sandbox: %d sandboxes at once, not %d: the open-file limit is %ld "
                    "(ulimit -n)\n",
                    (int)fit, env->max_sandboxes, (long)nf.rlim_cur);
            env->max_sandboxes = (int)fit;
        }
    }
    snprintf(env->bwrap, sizeof env->bwrap, "%s", BWRAP_PATH);
    /*
     * As root, the sandbox's uid would map to host uid 0, which owns
     * /etc/shadow and friends, and RLIMIT_NPROC would not bind at all (root
     * has CAP_SYS_RESOURCE). Each sandbox runs instead as a uid of its own
     * that owns nothing, so its process limit counts its processes alone.
     */
    env->uid_pool = geteuid() == 0;
    env->uid_base = VAL_UID_BASE;
    env->slot_busy = wk_xcalloc((size_t)env->max_sandboxes, 1);
    build_root_args(env);
    val__cg_setup(env);
    val__hostdir_sweep(NULL, SWEEP_AGE_S);
    return env;
}

void val_env_free(val_env *env)
{
    if (!env)
        return;
    val__syntax_env_release(env);
    val__cg_release(env);
    for (int i = 0; i < env->n_root_args; i++)
        free(env->root_args[i]);
    free(env->slot_busy);
    free(env);
}

/* ---- the report the sandbox's shell leaves at the end of the output -------- */

/* 1 when "/box/PATH" (len bytes) is one of the task's files, put there before the command. */
static int task_file(const val__job *j, const char *name, size_t len)
{
    if (len < 5 || memcmp(name, "/box/", 5) != 0)
        return 0;
    for (int i = 0; i < j->nfiles; i++)
        if (strlen(j->files[i].path) == len - 5 && memcmp(j->files[i].path, name + 5, len - 5) == 0)
            return 1;
    return 0;
}

/* Index of the readonly file named `name` (len bytes), or -1. */
static int readonly_index(const val__job *j, const char *name, size_t len)
{
    for (int i = 0; i < j->nfiles; i++)
        if (j->files[i].readonly && strlen(j->files[i].path) == len &&
            memcmp(j->files[i].path, name, len) == 0)
            return i;
    return -1;
}

/*
 * Finds the report ("@@cascade-sandbox-end RC" then one sha256sum line per
 * read-only file) after the last marker, checks it against the exit status
 * and the hashes taken before the run, and cuts it off the output. Only the
 * last marker counts: after the command, the shell kills every other process
 * in the sandbox before it prints, so nothing the answer printed comes after.
 */
static void read_report(val__job *j, val__sbx_result *r)
{
    char *buf = j->output.buf;
    size_t len = j->output.len;
    if (!buf)
        return;
    char *mark = NULL;
    for (char *p = buf; (p = memmem(p, len - (size_t)(p - buf), END_MARK, strlen(END_MARK))); p++)
        mark = p;
    if (!mark)
        return;
    char *p = mark + strlen(END_MARK);
    char *end;
    long rc = strtol(p, &end, 10);
    if (end == p || *end != '\n' || r->term_signal || rc != r->exit_status)
        return; /* not the shell's report: the shell did not end the run */
    p = end + 1;

    /* One "HASH  NAME" line per readonly file; sha256sum's errors name none of them. */
    unsigned char *seen = wk_xcalloc((size_t)j->nfiles + 1, 1);
    while (*p) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > strlen(PLANTED_MARK) && strncmp(p, PLANTED_MARK, strlen(PLANTED_MARK)) == 0 &&
            !j->planted && !task_file(j, p + strlen(PLANTED_MARK), n - strlen(PLANTED_MARK)))
            j->planted = wk_xstrndup(p + strlen(PLANTED_MARK), n - strlen(PLANTED_MARK));
        if (n > 66 && strspn(p, "0123456789abcdef") == 64 && p[64] == ' ' &&
            (p[65] == ' ' || p[65] == '*')) {
            int i = readonly_index(j, p + 66, n - 66);
            if (i >= 0 && memcmp(p, j->hashes[i], 64) == 0)
                seen[i] = 1;
        }
        p = nl ? nl + 1 : p + n;
    }
    r->reported = 1;
    for (int i = 0; i < j->nfiles; i++) {
        if (j->files[i].readonly && !seen[i]) {
            r->tests_modified = 1;
            r->modified = j->files[i].path;
            break;
        }
    }
    free(seen);
    /* Drop the report and the newline the shell put before its marker. */
    *mark = '\0';
    j->output.len = (size_t)(mark - buf);
    r->planted = j->planted;

    /* The harness's line: the tests ran to their end. Cut from what the answer sees. */
    if (j->harness != VAL__H_NONE && j->mark[0]) {
        char *line = wk_xasprintf(DONE_MARK "%s\n", j->mark);
        size_t ll = strlen(line);
        char *hit = memmem(buf, j->output.len, line, ll);
        if (hit) {
            r->finished = 1;
            memmove(hit, hit + ll - 1, j->output.len - (size_t)(hit - buf) - (ll - 1) + 1);
            j->output.len -= ll - 1;
        }
        free(line);
    }
}

/* Removes every line that starts with `prefix` (the JVM's notice of JAVA_TOOL_OPTIONS). */
static void drop_lines(wk_buf *b, const char *prefix)
{
    if (!b->buf)
        return;
    size_t plen = strlen(prefix);
    char *w = b->buf;
    for (char *line = b->buf; line < b->buf + b->len;) {
        char *nl = memchr(line, '\n', (size_t)(b->buf + b->len - line));
        char *next = nl ? nl + 1 : b->buf + b->len;
        size_t n = (size_t)(next - line);
        if (!(n >= plen && memcmp(line, prefix, plen) == 0)) {
            memmove(w, line, n);
            w += n;
        }
        line = next;
    }
    b->len = (size_t)(w - b->buf);
    b->buf[b->len] = '\0';
}

/* ---- one run ----------------------------------------------------------- */

static void pump(val_env *env);

static void job_free(val__job *j)
{
    for (int i = 0; i < j->argc; i++)
        free(j->argv[i]);
    free(j->argv);
    for (int i = 0; i < j->nfiles; i++) {
        free((char *)j->files[i].path);
        free((char *)j->files[i].data);
    }
    free(j->files);
    free(j->hashes);
    free(j->hostdir);
    free(j->pyrun);
    free(j->node_js);
    free(j->planted);
    free(j->error);
    wk_buf_release(&j->output);
    free(j);
}

static void on_close(uv_handle_t *h)
{
    val__job *j = h->data;
    if (--j->open_handles > 0)
        return;
    val_env *env = j->env;
    env->running--;
    if (j->spawned)
        env->live--;
    if (j->slot >= 0)
        env->slot_busy[j->slot] = 0;
    /* Hand the slot on before the callback, which may free the env. */
    pump(env);
    int cg_oom = 0, cg_pids_max = 0;
    val__cg_end(env, j->cg_mem, j->cg_pids, &cg_oom, &cg_pids_max);
    j->cg_mem = j->cg_pids = NULL;
    val__sbx_result r = {
        .spawned = j->spawned,
        .exit_status = j->exit_status,
        .term_signal = j->term_signal,
        .timed_out = j->timed_out,
        .output_capped = j->output_capped,
        .error = j->error,
        .elapsed_ms = wk_now_ms() - j->t0,
        .limits = &j->limits,
        .harnessed = j->harness != VAL__H_NONE,
        .cg_oom = cg_oom,
        .cg_pids_max = cg_pids_max,
    };
    if (j->spawned && !j->output_capped) {
        read_report(j, &r);
        /* The command printed more than the cap, if not by enough to be stopped. */
        if (j->output.len > j->limits.output_cap)
            r.output_capped = 1;
    }
    /* An exit 0 without the report: something ended the shell before it could check. */
    if (j->spawned && !r.reported && j->nreadonly && !j->timed_out && !r.output_capped &&
        !j->term_signal && j->exit_status == 0) {
        r.tests_modified = 1;
        r.modified = "(the check after the run did not happen)";
    }
    drop_lines(&j->output, "Picked up JAVA_TOOL_OPTIONS:");
    r.output = j->output.buf ? j->output.buf : "";
    r.output_len = j->output.len;
    j->cb(j->arg, &r);
    job_free(j);
}

static void job_finish(val__job *j)
{
    if (j->finishing)
        return;
    j->finishing = 1;
    uv_close((uv_handle_t *)&j->timer, on_close);
    uv_close((uv_handle_t *)&j->proc, on_close);
    if (j->open_handles == 3)
        uv_close((uv_handle_t *)&j->out, on_close);
}

/*
 * Kills the sandbox. Its init (our shell, pid 1 inside) is the only child of
 * bwrap's outer process; killing it makes the kernel kill everything else in
 * the pid namespace, and bwrap then reaps it and exits. Killing bwrap itself
 * would also work (--die-with-parent), but would leave the init to be reaped
 * by the host's init, which may never do it. Before bwrap has forked, there
 * is only bwrap: its process group (UV_PROCESS_DETACHED) is killed instead,
 * as it is when `hard` (a first kill did not end the run).
 */
static void job_kill(val__job *j, int hard)
{
    if (!j->spawned || j->exited)
        return;
    char path[64];
    char buf[256];
    int killed = 0;
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", j->proc.pid, j->proc.pid);
    int fd = hard ? -1 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        for (char *p = buf, *end; *p; p = end) {
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            if (pid > 1 && kill((pid_t)pid, SIGKILL) == 0)
                killed++;
        }
    }
    if (!killed)
        uv_kill(-j->proc.pid, SIGKILL);
}

static void on_timer(uv_timer_t *t);

/* Kills the run, then every second until bwrap is seen to exit, the last ones hard. */
static void job_stop(val__job *j)
{
    job_kill(j, j->kills++ > 0);
    uv_timer_stop(&j->timer);
    uv_update_time(j->env->loop);
    uv_timer_start(&j->timer, on_timer, KILL_RETRY_MS, 0);
}

static void on_timer(uv_timer_t *t)
{
    val__job *j = t->data;
    if (!j->exited) {
        /* The wall clock ran out, or an earlier kill has not ended the run yet. */
        if (!j->output_capped)
            j->timed_out = 1;
        job_stop(j);
        return;
    }
    /* The drain grace ran out: something still holds the pipe; stop waiting. */
    job_finish(j);
}

static void on_exit_cb(uv_process_t *p, int64_t status, int sig)
{
    val__job *j = p->data;
    j->exited = 1;
    j->exit_status = status;
    j->term_signal = sig;
    if (j->eof) {
        job_finish(j);
        return;
    }
    uv_timer_stop(&j->timer);
    uv_update_time(j->env->loop);
    uv_timer_start(&j->timer, on_timer, DRAIN_GRACE_MS, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    val__job *j = h->data;
    *buf = uv_buf_init(j->chunk, sizeof j->chunk);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    val__job *j = s->data;
    if (n > 0) {
        if (j->output_capped)
            return; /* already killed; drain and drop */
        if (wk_buf_append(&j->output, buf->base, (size_t)n) != 0) {
            /* Keep what fits, then stop the flood at its source. */
            wk_buf_append(&j->output, buf->base, j->output.cap - j->output.len);
            j->output_capped = 1;
            job_stop(j);
        }
        return;
    }
    if (n < 0) {
        /* EOF or a read error: either way there is nothing more to read. */
        uv_read_stop(s);
        j->eof = 1;
        if (j->exited)
            job_finish(j);
    }
}

/*
 * The sandbox's first process. Its arguments: the number N of read-only
 * files, their paths, then the command. It sets the limits (soft CPU below
 * hard, so running out of CPU time is a SIGXCPU we can name), copies a
 * hostdir when there is one (exit 125 marks a sandbox fault, not a test
 * failure), runs the command in a subshell, kills everything the command left
 * behind and waits until it is gone, then prints the end marker with the
 * command's status and the read-only files' hashes.
 */
/*
 * The value for `ulimit FLAG` (units of `unit` bytes, as dash counts them):
 * want, or the worker's own hard limit when that is lower. A limit above the
 * hard one cannot be set (ulimit -n 256 under a hard limit of 64): the
 * sandbox gets the lower one instead of failing every answer with a sandbox
 * error. The hard limit is read here, not by the sandbox's shell: bwrap and
 * the shell inherit this process's limits unchanged, and each `$(ulimit -H)`
 * there would cost a fork per limit on every run.
 */
static unsigned long long clamp_hard(int resource, unsigned long long want, unsigned long unit)
{
    struct rlimit rl;
    if (getrlimit(resource, &rl) != 0 || rl.rlim_max == RLIM_INFINITY)
        return want;
    unsigned long long hard = (unsigned long long)rl.rlim_max / unit;
    return hard < want ? hard : want;
}

static char *shell_script(const val__job *j)
{
    const val_limits *l = &j->limits;
    wk_buf b;
    wk_buf_init(&b, 4096);
    wk_buf_appendf(&b, "{ ");
    if (l->cpu_s)
        wk_buf_appendf(&b, "ulimit -S -t %u && ulimit -H -t %u && ", l->cpu_s, l->cpu_s + 1);
    if (l->mem_bytes)
        wk_buf_appendf(&b, "ulimit -v %llu && ", clamp_hard(RLIMIT_AS, l->mem_bytes / 1024, 1024));
    if (l->nproc)
        wk_buf_appendf(&b, "ulimit -p %llu && ", clamp_hard(RLIMIT_NPROC, l->nproc, 1));
    if (l->fsize_bytes) /* dash counts file sizes in 512-byte blocks */
        wk_buf_appendf(&b, "ulimit -f %llu && ",
                       clamp_hard(RLIMIT_FSIZE, (l->fsize_bytes + 511) / 512, 512));
    if (l->nofile)
        wk_buf_appendf(&b, "ulimit -n %llu && ", clamp_hard(RLIMIT_NOFILE, l->nofile, 1));
    wk_buf_appendf(&b, "ulimit -c 0; } || { echo 'cascade-sandbox: could not set the limits' >&2; "
                       "exit 125; }\n");
    /* -n: the files bwrap put in /box first (read-only tests) are the task's; keep them. */
    if (j->hostdir)
        wk_buf_appendf(&b, "cp -R -n " IN_DIR "/. /box/ || { echo 'cascade-sandbox: could not "
                           "copy the task files' >&2; exit 125; }\n");
    /*
     * Module-shadowing files before and after a test run (one with a mark):
     * new ones were planted. Membership, not order, is compared: no sort.
     * Without a mark there is nothing to look for, and both lists are empty
     * as written: no `$(...)`, whose fork every run would pay for.
     */
    if (j->mark[0])
        wk_buf_appendf(&b, "shadows() { find /box -xdev \\( -name conftest.py -o -name "
                           "sitecustomize.py -o -name usercustomize.py -o -name unittest.py -o "
                           "-name pytest.py -o -name '*.pth' \\) -print 2>/dev/null; }\n");
    /* Without a copied tree, what was there before is the task's files, known here. */
    wk_buf_appendf(&b, j->hostdir && j->mark[0] ? "before=$(shadows)\n" : "before=\n");
    wk_buf_appendf(&b,
                   "n=$1; shift\n"
                   "( shift \"$n\"; exec \"$@\" )\n"
                   "rc=$?\n"
                   /* Everything but us and init; new forks fail once SIGKILL is pending. */
                   "kill -9 -1 2>/dev/null\n"
                   "i=0; while kill -0 -1 2>/dev/null && [ $i -lt 100000 ]; do i=$((i+1)); done\n"
                   /* Keep only the first n arguments: the read-only files. */
                   "t=$#; i=0; for a; do [ $i -lt \"$n\" ] || break; set -- \"$@\" \"$a\"; "
                   "i=$((i+1)); done; shift \"$t\"\n"
                   "%s"
                   "printf '"
                   "\\n@@cascade-sandbox-end %%d\\n' \"$rc\"\n"
                   "[ \"$after\" = \"$before\" ] || printf '%%s\\n' \"$after\" | "
                   "while IFS= read -r f; do case \"\n$before\n\" in *\"\n$f\n\"*) ;; "
                   "*) printf '" PLANTED_MARK "%%s\\n' \"$f\" ;; esac; done\n"
                   "[ \"$n\" -eq 0 ] || /usr/bin/sha256sum -- \"$@\" 2>&1\n"
                   "exit \"$rc\"\n",
                   j->mark[0] ? "after=$(shadows)\n" : "after=\n");
    return wk_buf_detach(&b, NULL);
}

/* Builds bwrap's argv: NULL-terminated, for the caller to free. fd_base is the first file's fd. */
static char **build_argv(val__job *j, int fd_base, int *count)
{
    val_env *env = j->env;
    const val_limits *l = &j->limits;
    int cap = 136 + env->n_root_args + 5 * (j->nfiles + 1) + 2 * j->nfiles + j->argc;
    char **a = wk_xcalloc((size_t)cap + 1, sizeof *a);
    int n = 0;
    int fd = fd_base;
#define ARG(s) (a[n++] = wk_xstrdup(s))
#define ARGF(...) (a[n++] = wk_xasprintf(__VA_ARGS__))
    if (j->cg_mem) {
        /*
         * The first process joins the run's cgroups, then becomes bwrap: all
         * that bwrap starts is in them from its first instruction.
         */
        ARG("/bin/sh");
        ARG("-c");
        ARG("echo $$ > \"$1\" 2>/dev/null; [ \"$2\" = \"$1\" ] || echo $$ > \"$2\" 2>/dev/null; "
            "shift 2; exec \"$@\"");
        ARG("sh");
        ARGF("%s/cgroup.procs", j->cg_mem);
        ARGF("%s/cgroup.procs", j->cg_pids);
    }
    ARG(env->bwrap);
    /* Every namespace, network included: the sandbox has only a loopback of its own. */
    ARG("--unshare-all");
    /* Explicit, as --disable-userns needs it: no user namespaces inside to regain capabilities. */
    ARG("--unshare-user");
    ARG("--disable-userns");
    ARG("--new-session"); /* no TIOCSTI into a terminal we might have */
    ARG("--die-with-parent");
    /*
     * Our shell is the namespace's init: signals from inside cannot kill it,
     * it reaps orphans while it waits, and when it exits the kernel kills
     * what is left. With bwrap's own init instead, bwrap's outer process
     * exits without reaping it, and it lingers as a zombie of the host's init.
     */
    ARG("--as-pid-1");
    for (int i = 0; i < env->n_root_args; i++)
        ARG(env->root_args[i]);
    ARG("--dev");
    ARG("/dev");
    /* /dev/shm, /tmp and /box are separate tmpfs mounts, each capped. */
    const char *tmpfs[] = {"/dev/shm", "/tmp", "/box"};
    for (int i = 0; i < 3; i++) {
        if (l->tmpfs_bytes) {
            ARG("--size");
            ARGF("%lu", l->tmpfs_bytes);
        }
        ARG("--tmpfs");
        ARG(tmpfs[i]);
        if (i == 0) {
            /* bwrap's /dev is a tmpfs of its own with no size cap: read-only, like / below. */
            ARG("--remount-ro");
            ARG("/dev");
        }
    }
    ARG("--proc");
    ARG("/proc");
    if (j->hostdir) {
        ARG("--ro-bind");
        ARG(j->hostdir);
        ARG(IN_DIR);
    }
    /*
     * The files arrive through descriptors: no host directory to write, clean
     * up or make readable for the sandbox's uid. Test files are read-only
     * mounts: writes fail, and so do rename and unlink of a mount point.
     */
    for (int i = 0; i < j->nfiles; i++) {
        const val__sbx_file *f = &j->files[i];
        ARG("--perms");
        ARG(f->len >= 2 && memcmp(f->data, "#!", 2) == 0 ? "0755" : "0644");
        ARG(f->readonly ? "--ro-bind-data" : "--file");
        ARGF("%d", fd++);
        ARGF("/box/%s", f->path);
    }
    /*
     * Our helpers, and HOME: an empty directory the root's read-only remount
     * covers, so no user site (Python) or ~/.node_modules can be planted.
     */
    ARG("--perms");
    ARG("0755");
    ARG("--dir");
    ARG(RUN_DIR);
    ARG("--perms");
    ARG("0755");
    ARG("--dir");
    ARG(RUN_DIR "/home");
    if (j->node_js) {
        ARG("--perms");
        ARG("0644");
        ARG("--ro-bind-data");
        ARGF("%d", fd++);
        ARG(RUN_DIR "/node-harness.js");
    }
    if (j->pyrun) {
        ARG("--perms");
        ARG("0644");
        ARG("--ro-bind-data");
        ARGF("%d", fd++);
        ARG(RUN_DIR "/pyrun.py");
    }
    /* bwrap's root tmpfs would otherwise be writable and uncapped. */
    ARG("--remount-ro");
    ARG("/");
    ARG("--chdir");
    ARG("/box");
    /* Nothing of ours is inherited: no API keys, no proxies, no tokens. */
    ARG("--clearenv");
    ARG("--setenv");
    ARG("PATH");
    ARG("/usr/local/bin:/usr/bin:/bin");
    ARG("--setenv");
    ARG("HOME");
    ARG(RUN_DIR "/home");
    /* No user site for any python process, nor bytecode files left in /box. */
    ARG("--setenv");
    ARG("PYTHONNOUSERSITE");
    ARG("1");
    ARG("--setenv");
    ARG("PYTHONDONTWRITEBYTECODE");
    ARG("1");
    /* Caches that tools keep under HOME go to /tmp instead (go vet's build cache). */
    ARG("--setenv");
    ARG("XDG_CACHE_HOME");
    ARG("/tmp/.cache");
    ARG("--setenv");
    ARG("GOCACHE");
    ARG("/tmp/.cache/go-build");
    if (j->harness == VAL__H_NODE) {
        ARG("--setenv");
        ARG("CASCADE_HARNESS_TOP");
        ARG("1");
    }
    ARG("--setenv");
    ARG("TMPDIR");
    ARG("/tmp");
    ARG("--setenv");
    ARG("LANG");
    ARG("C.UTF-8");
    if (j->node_js) {
        ARG("--setenv");
        ARG("NODE_OPTIONS");
        ARG("--require " RUN_DIR "/node-harness.js");
    }
    if (l->mem_bytes) {
        /*
         * The JVM reserves a quarter of the host's memory for its heap and 1 GiB
         * for classes up front, which RLIMIT_AS refuses; size both to the limit.
         */
        unsigned long heap_mb = l->mem_bytes / 4 >> 20;
        ARG("--setenv");
        ARG("JAVA_TOOL_OPTIONS");
        ARGF("-Xmx%lum -XX:CompressedClassSpaceSize=64m -XX:ReservedCodeCacheSize=64m "
             "-XX:+UseSerialGC -XX:TieredStopAtLevel=1",
             heap_mb < 64 ? 64 : heap_mb);
    }
    ARG("--uid");
    ARG("65534");
    ARG("--gid");
    ARG("65534");
    ARG("--");
    ARG("/bin/sh");
    ARG("-c");
    a[n++] = shell_script(j);
    ARG("sh");
    ARGF("%d", j->nreadonly);
    for (int i = 0; i < j->nfiles; i++)
        if (j->files[i].readonly)
            ARG(j->files[i].path);
    for (int i = 0; i < j->argc; i++)
        ARG(j->argv[i]);
#undef ARG
#undef ARGF
    a[n] = NULL;
    *count = n;
    return a;
}

/* A sealed in-memory file holding data, positioned at 0; -1 with errno on failure. */
static int data_fd(const char *name, const char *data, size_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            errno = e ? e : EIO;
            return -1;
        }
        off += (size_t)w;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static void job_launch(val__job *j);

/* A shortage of descriptors waited out: try again. */
static void on_retry(uv_timer_t *t)
{
    job_launch(t->data);
}

/* 1 for an error that says this machine is short of something, not that the answer is wrong. */
static int local_shortage(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOMEM || err == EAGAIN;
}

/*
 * Out of descriptors (or memory) while preparing a run: a condition of this
 * machine, never a verdict on the answer. The job keeps its slot and tries
 * again later, with a growing pause; other runs and calls give descriptors
 * back as they end. Only after RETRY_MAX_MS of trying does it fail, as a
 * sandbox error that says why. Returns 1 when it will retry.
 */
static int job_wait_for_fds(val__job *j, int err)
{
    val_env *env = j->env;
    if (!local_shortage(err) || wk_now_ms() - j->t0 > RETRY_MAX_MS)
        return 0;
    /*
     * With no sandbox running, after a few tries, nothing of ours will give
     * descriptors back: the limit is too low for this run's files, and
     * waiting would hang.
     */
    if (env->live == 0 && j->retries >= 5)
        return 0;
    if (!env->warned_fds) {
        env->warned_fds = 1;
        fprintf(stderr,
                "cascade: sandbox: %s while starting a sandbox; runs wait for descriptors to be "
                "given back (raise `ulimit -n`, or lower --sandboxes / --concurrency)\n",
                strerror(err));
    }
    unsigned delay = 50u << (j->retries < 5 ? j->retries : 5); /* 50 ms .. 1.6 s */
    j->retries++;
    uv_update_time(env->loop);
    uv_timer_start(&j->timer, on_retry, delay, 0);
    return 1;
}

static void job_start(val__job *j)
{
    val_env *env = j->env;
    j->t0 = wk_now_ms();
    uv_timer_init(env->loop, &j->timer);
    j->timer.data = j;
    j->open_handles = 2; /* timer and process; the pipe joins once opened */

    for (j->slot = 0; j->slot < env->max_sandboxes && env->slot_busy[j->slot]; j->slot++)
        ;
    if (j->slot >= env->max_sandboxes)
        abort(); /* running < max_sandboxes, so a slot is free: a bookkeeping bug */
    env->slot_busy[j->slot] = 1;
    val__cg_make(env, &j->limits, env->uid_base + (unsigned)j->slot, env->uid_pool, &j->cg_mem,
                 &j->cg_pids);
    job_launch(j);
}

static void job_launch(val__job *j)
{
    val_env *env = j->env;
    uv_file fds[2] = {-1, -1};
    int nfd = j->nfiles + (j->node_js ? 1 : 0) + (j->pyrun ? 1 : 0);
    int *dfd = wk_xcalloc((size_t)nfd + 1, sizeof *dfd);
    uv_stdio_container_t *stdio = wk_xcalloc((size_t)nfd + 3, sizeof *stdio);
    int argc = 0;
    char **argv = NULL;
    int made = 0;
    int rc;
    /* bwrap and its shell get no keys either. */
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};

    for (; made < nfd; made++) {
        /* In build_argv's order: the task's files, the node preload, the python runner. */
        const char *extra = made == j->nfiles && j->node_js ? j->node_js : j->pyrun;
        int fd = made < j->nfiles ? data_fd("cascade-file", j->files[made].data, j->files[made].len)
                                  : data_fd("cascade-harness", extra, strlen(extra));
        if (fd < 0) {
            if (job_wait_for_fds(j, errno))
                goto cleanup;
            j->error =
                wk_xasprintf("could not hand a task file to the sandbox: %s", strerror(errno));
            goto early_fail;
        }
        dfd[made] = fd;
    }
    rc = uv_pipe(fds, 0, 0);
    if (rc != 0) {
        if (job_wait_for_fds(j, -rc))
            goto cleanup;
        j->error = wk_xasprintf("could not make the output pipe: %s", uv_strerror(rc));
        goto early_fail;
    }
    /* The cgroup wrapper would hide a missing bwrap behind the shell's exit status 127. */
    if (access(env->bwrap, X_OK) != 0) {
        j->error =
            wk_xasprintf("could not start the sandbox (%s): %s", env->bwrap, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        goto early_fail;
    }
    /*
     * uv_spawn needs a few descriptors of its own (its error pipe, the
     * child's copies); a spawn that fails for want of them cannot be
     * retried on the same handle, so make sure they are there first.
     */
    int spare[SPARE_FDS];
    int nspare = 0;
    int e = 0;
    for (; nspare < SPARE_FDS; nspare++) {
        spare[nspare] = fcntl(fds[0], F_DUPFD_CLOEXEC, 0);
        if (spare[nspare] < 0) {
            e = errno;
            break;
        }
    }
    for (int i = 0; i < nspare; i++)
        close(spare[i]);
    if (nspare < SPARE_FDS) {
        close(fds[0]);
        close(fds[1]);
        if (job_wait_for_fds(j, e))
            goto cleanup;
        j->error = wk_xasprintf("could not make the output pipe: %s", strerror(e));
        goto early_fail;
    }
    j->t0 = wk_now_ms();
    stdio[0].flags = UV_IGNORE;
    /* One pipe for both streams keeps stdout and stderr in their real order. */
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fds[1];
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = fds[1];
    for (int i = 0; i < nfd; i++) {
        stdio[3 + i].flags = UV_INHERIT_FD;
        stdio[3 + i].data.fd = dfd[i];
    }
    argv = build_argv(j, 3, &argc);
    uv_process_options_t o = {0};
    o.exit_cb = on_exit_cb;
    o.file = argv[0];
    o.args = argv;
    o.env = envp;
    o.stdio = stdio;
    o.stdio_count = nfd + 3;
    /* Its own process group, so one kill(-pid) reaches everything. */
    o.flags = UV_PROCESS_DETACHED;
    if (env->uid_pool) {
        o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        o.uid = (uv_uid_t)(env->uid_base + (unsigned)j->slot);
        o.gid = (uv_gid_t)(env->uid_base + (unsigned)j->slot);
    }
    rc = uv_spawn(env->loop, &j->proc, &o);
    j->proc.data = j; /* uv_spawn initialised the handle, even if it failed */
    close(fds[1]);    /* the child has its copy; EOF comes when the last holder exits */
    if (rc != 0) {
        j->error = wk_xasprintf("could not start the sandbox (%s): %s", argv[0], uv_strerror(rc));
        close(fds[0]);
        j->exited = j->eof = 1;
        job_finish(j);
        goto cleanup;
    }
    j->spawned = 1;
    env->live++;
    uv_pipe_init(env->loop, &j->out, 0);
    j->out.data = j;
    j->open_handles = 3;
    uv_pipe_open(&j->out, fds[0]);
    uv_read_start((uv_stream_t *)&j->out, on_alloc, on_read);
    /*
     * Timers count from the loop's cached time, which is as old as the start
     * of this loop iteration; work done since (parsing, other validators, a
     * caller that ran no loop for a while) would make the wall clock of this
     * run short by that much, and kill it early.
     */
    uv_update_time(env->loop);
    if (j->limits.timeout_ms)
        uv_timer_start(&j->timer, on_timer, j->limits.timeout_ms, 0);
    goto cleanup;

early_fail:
    /* Only the timer exists yet; closing it completes the job. */
    j->open_handles = 1;
    j->finishing = 1;
    uv_close((uv_handle_t *)&j->timer, on_close);
cleanup:
    /* bwrap has its own copies of the file descriptors and reads them as it starts. */
    for (int i = 0; i < made; i++)
        close(dfd[i]);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    free(dfd);
    free(stdio);
}

static void pump(val_env *env)
{
    while (env->running < env->max_sandboxes && env->wait_head) {
        val__job *j = env->wait_head;
        env->wait_head = j->next;
        if (!env->wait_head)
            env->wait_tail = NULL;
        j->next = NULL;
        env->running++;
        job_start(j);
    }
}

/* Fails a job before it was queued: the callback still comes once, from the loop's next turn. */
static void job_reject(val__job *j, char *error)
{
    j->error = error;
    j->slot = -1;
    j->t0 = wk_now_ms();
    uv_timer_init(j->env->loop, &j->timer);
    j->timer.data = j;
    j->open_handles = 1;
    j->finishing = 1;
    /* on_close gives the slot back, so take one in the count first. */
    j->env->running++;
    uv_close((uv_handle_t *)&j->timer, on_close);
}

void val__sandbox_start(val_env *env, const val__sbx_spec *spec, val__sbx_cb cb, void *arg)
{
    val__job *j = wk_xcalloc(1, sizeof *j);
    j->env = env;
    j->slot = -1;
    j->cb = cb;
    j->arg = arg;
    j->limits = spec->limits ? *spec->limits : env->limits;
    j->node_asserts = spec->node_asserts;
    j->hostdir = spec->hostdir ? wk_xstrdup(spec->hostdir) : NULL;
    j->argv = wk_xcalloc((size_t)spec->argc + 1, sizeof *j->argv);
    for (int i = 0; i < spec->argc; i++)
        j->argv[i] = wk_xstrdup(spec->argv[i]);
    j->argc = spec->argc;
    int nfiles = spec->nfiles > 0 ? spec->nfiles : 0;
    j->files = wk_xcalloc((size_t)nfiles + 1, sizeof *j->files);
    j->hashes = wk_xcalloc((size_t)nfiles + 1, sizeof *j->hashes);
    char *bad = NULL;
    if (spec->argc < 1)
        bad = wk_xstrdup("no command to run");
    if (nfiles > VAL__FILES_MAX)
        bad = wk_xasprintf("%d files, at most %d fit in one sandboxed run", nfiles, VAL__FILES_MAX);
    for (int i = 0; !bad && i < nfiles; i++) {
        const val__sbx_file *f = &spec->files[i];
        if (!val__path_ok(f->path)) {
            bad = wk_xasprintf("bad file path \"%.255s\": it must be relative, without \"..\", "
                               "at most 255 bytes",
                               f->path);
            break;
        }
        j->files[i].path = wk_xstrdup(f->path);
        j->files[i].data = wk_xstrndup(f->data ? f->data : "", f->len);
        j->files[i].len = f->len;
        j->files[i].readonly = f->readonly;
        j->nfiles = i + 1;
        if (f->readonly) {
            val__sha256_hex(f->data ? f->data : "", f->len, j->hashes[i]);
            j->nreadonly++;
            /* Room for its line in the report: hash, two spaces, the path, a newline. */
            j->report_room += 68 + strlen(f->path);
        }
    }
    j->report_room += 64 + 2 * (VAL__MARK_LEN + 32) + 300;
    wk_buf_init(&j->output, j->limits.output_cap + j->report_room);
    if (!bad && spec->mark && strlen(spec->mark) == VAL__MARK_LEN) {
        const char **tests = wk_xcalloc((size_t)j->nfiles + 1, sizeof *tests);
        int nt = 0;
        for (int i = 0; i < j->nfiles; i++)
            if (j->files[i].readonly)
                tests[nt++] = j->files[i].path;
        char **wrapped = NULL;
        int wc = 0;
        j->harness = val__harness_argv((const char *const *)j->argv, j->argc, &wrapped, &wc);
        memcpy(j->mark, spec->mark, VAL__MARK_LEN + 1);
        if (j->harness == VAL__H_PYTHON) {
            for (int i = 0; i < j->argc; i++)
                free(j->argv[i]);
            free(j->argv);
            j->argv = wrapped;
            j->argc = wc;
            j->pyrun = val__harness_python(j->mark, tests, nt);
        } else if (j->harness == VAL__H_NODE) {
            j->node_js = val__harness_node(j->mark, tests, nt);
        }
        free(tests);
    }
    if (!j->node_js && j->node_asserts)
        j->node_js = val__harness_node(NULL, NULL, 0);
    if (bad) {
        job_reject(j, bad);
        return;
    }
    if (env->wait_tail)
        env->wait_tail->next = j;
    else
        env->wait_head = j;
    env->wait_tail = j;
    pump(env);
}
