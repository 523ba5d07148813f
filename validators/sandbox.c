/*
 * The sandbox: every command that touches model output runs here. prlimit
 * sets the rlimits, bubblewrap builds an empty-environment, no-network
 * container whose system is read-only and whose working directory /box is a
 * size-capped tmpfs, and libuv watches it: a wall-clock timer and an output
 * cap kill the whole process group. At most max_sandboxes run at once; the
 * rest wait in a FIFO.
 *
 * Also here: the host directory the task files are written to before the run.
 */
#include "val_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BWRAP_PATH "/usr/bin/bwrap"
#define PRLIMIT_PATH "/usr/bin/prlimit"
/* The overflow uid: owns nothing on the host, so the sandbox can read nothing private. */
#define NOBODY 65534
/* After the command exits, how long we wait for the last output before giving up. */
#define DRAIN_GRACE_MS 2000
/* The host path the task files are bound at, read-only, before the copy into /box. */
#define IN_DIR "/in"

/*
 * Runs inside the sandbox: copy the task files into the writable tmpfs, then
 * become the command. Exit 125 marks "the copy failed" (a sandbox fault, not
 * a test failure); a missing command makes sh exit 127.
 */
static const char wrapper[] =
    "cp -R " IN_DIR "/. /box/ || { echo 'cascade-sandbox: could not copy the task files' >&2; "
    "exit 125; }; exec \"$@\"";

struct val__job {
    val__job *next;
    val_env *env;
    char *hostdir;
    char **argv; /* the command, NULL-terminated; owned */
    int argc;
    val__sbx_cb cb;
    void *arg;

    uv_process_t proc;
    uv_pipe_t out;
    uv_timer_t timer;
    int open_handles;  /* closed one by one; the job is freed at zero */
    int finishing;

    int spawned;
    int exited;
    int eof;
    int timed_out;
    int output_capped;
    int64_t exit_status;
    int term_signal;
    uint64_t t0;
    char *error;
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
    if (access(PRLIMIT_PATH, X_OK) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "the sandbox needs prlimit at %s (Debian: util-linux)",
                     PRLIMIT_PATH);
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
    snprintf(env->bwrap, sizeof env->bwrap, "%s", BWRAP_PATH);
    snprintf(env->prlimit, sizeof env->prlimit, "%s", PRLIMIT_PATH);
    /*
     * As root, the sandbox's uid would map to host uid 0, which owns /etc/shadow
     * and friends, and RLIMIT_NPROC would count every root process. Running
     * bwrap as nobody avoids both.
     */
    env->drop_to_nobody = geteuid() == 0;
    build_root_args(env);
    return env;
}

void val_env_free(val_env *env)
{
    if (!env)
        return;
    val__syntax_env_release(env);
    for (int i = 0; i < env->n_root_args; i++)
        free(env->root_args[i]);
    free(env);
}

/* ---- one run ----------------------------------------------------------- */

static void pump(val_env *env);

static void job_free(val__job *j)
{
    for (int i = 0; i < j->argc; i++)
        free(j->argv[i]);
    free(j->argv);
    free(j->hostdir);
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
    /* Hand the slot on before the callback, which may free the env. */
    pump(env);
    val__sbx_result r = {
        .spawned = j->spawned,
        .exit_status = j->exit_status,
        .term_signal = j->term_signal,
        .timed_out = j->timed_out,
        .output_capped = j->output_capped,
        .output = j->output.buf ? j->output.buf : "",
        .output_len = j->output.len,
        .error = j->error,
        .elapsed_ms = wk_now_ms() - j->t0,
    };
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
 * Kills the process group: bwrap's monitor leads it (UV_PROCESS_DETACHED), and
 * its death takes the sandbox's pid namespace down with it (--die-with-parent
 * kills the namespace's init, which kills every process in it).
 */
static void job_kill(val__job *j)
{
    if (j->spawned && !j->exited)
        uv_kill(-j->proc.pid, SIGKILL);
}

static void on_timer(uv_timer_t *t)
{
    val__job *j = t->data;
    if (!j->exited) {
        j->timed_out = 1;
        job_kill(j);
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
            job_kill(j);
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

static char *u_fmt(unsigned long v)
{
    return wk_xasprintf("%lu", v);
}

/* Builds prlimit + bwrap + wrapper + command. Returns a NULL-terminated array the caller frees. */
static char **build_argv(val__job *j, int *count)
{
    val_env *env = j->env;
    const val_limits *l = &env->limits;
    int cap = 64 + env->n_root_args + j->argc;
    char **a = wk_xcalloc((size_t)cap + 1, sizeof *a);
    int n = 0;
#define ARG(s) (a[n++] = wk_xstrdup(s))
#define ARGF(...) (a[n++] = wk_xasprintf(__VA_ARGS__))
    ARG(env->prlimit);
    /* Soft CPU limit sends SIGXCPU; the hard one a second later is SIGKILL. */
    ARGF("--cpu=%u:%u", l->cpu_s, l->cpu_s + 1);
    ARGF("--as=%lu", l->mem_bytes);
    ARGF("--nproc=%u", l->nproc);
    ARGF("--fsize=%lu", l->fsize_bytes);
    ARGF("--nofile=%u", l->nofile);
    ARG("--core=0");
    ARG("--");
    ARG(env->bwrap);
    /* Every namespace, network included: the sandbox has only a loopback of its own. */
    ARG("--unshare-all");
    ARG("--new-session"); /* no TIOCSTI into a terminal we might have */
    ARG("--die-with-parent");
    for (int i = 0; i < env->n_root_args; i++)
        ARG(env->root_args[i]);
    ARG("--dev");
    ARG("/dev");
    char *size = u_fmt(l->tmpfs_bytes);
    /* /dev/shm, /tmp and /box are separate tmpfs mounts, each capped. */
    const char *tmpfs[] = {"/dev/shm", "/tmp", "/box"};
    for (int i = 0; i < 3; i++) {
        ARG("--size");
        ARG(size);
        ARG("--tmpfs");
        ARG(tmpfs[i]);
    }
    free(size);
    ARG("--proc");
    ARG("/proc");
    ARG("--ro-bind");
    ARG(j->hostdir);
    ARG(IN_DIR);
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
    ARG("/box");
    ARG("--setenv");
    ARG("TMPDIR");
    ARG("/tmp");
    ARG("--setenv");
    ARG("LANG");
    ARG("C.UTF-8");
    ARG("--uid");
    ARGF("%d", NOBODY);
    ARG("--gid");
    ARGF("%d", NOBODY);
    ARG("--");
    ARG("/bin/sh");
    ARG("-c");
    ARG(wrapper);
    ARG("sh");
    for (int i = 0; i < j->argc; i++)
        ARG(j->argv[i]);
#undef ARG
#undef ARGF
    a[n] = NULL;
    *count = n;
    return a;
}

static void job_start(val__job *j)
{
    val_env *env = j->env;
    uv_file fds[2];
    int argc = 0;
    char **argv = build_argv(j, &argc);
    /* prlimit and bwrap themselves get no keys either. */
    char *envp[] = {"PATH=/usr/bin:/bin", NULL};

    j->t0 = wk_now_ms();
    uv_timer_init(env->loop, &j->timer);
    j->timer.data = j;
    j->open_handles = 2; /* timer and process; the pipe joins once opened */

    int rc = uv_pipe(fds, 0, 0);
    if (rc != 0) {
        /* Only the timer exists yet; closing it completes the job. */
        j->error = wk_xasprintf("could not make the output pipe: %s", uv_strerror(rc));
        j->open_handles = 1;
        j->finishing = 1;
        uv_close((uv_handle_t *)&j->timer, on_close);
        goto cleanup;
    }
    uv_stdio_container_t stdio[3];
    stdio[0].flags = UV_IGNORE;
    /* One pipe for both streams keeps stdout and stderr in their real order. */
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fds[1];
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = fds[1];
    uv_process_options_t o = {0};
    o.exit_cb = on_exit_cb;
    o.file = argv[0];
    o.args = argv;
    o.env = envp;
    o.stdio = stdio;
    o.stdio_count = 3;
    /* Its own process group, so one kill(-pid) reaches everything. */
    o.flags = UV_PROCESS_DETACHED;
    if (env->drop_to_nobody) {
        o.flags |= UV_PROCESS_SETUID | UV_PROCESS_SETGID;
        o.uid = NOBODY;
        o.gid = NOBODY;
    }
    rc = uv_spawn(env->loop, &j->proc, &o);
    j->proc.data = j; /* uv_spawn initialised the handle, even if it failed */
    close(fds[1]); /* the child has its copy; EOF comes when the last holder exits */
    if (rc != 0) {
        j->error = wk_xasprintf("could not start the sandbox (%s): %s", argv[0], uv_strerror(rc));
        close(fds[0]);
        j->exited = j->eof = 1;
        job_finish(j);
        goto cleanup;
    }
    j->spawned = 1;
    uv_pipe_init(env->loop, &j->out, 0);
    j->out.data = j;
    j->open_handles = 3;
    uv_pipe_open(&j->out, fds[0]);
    uv_read_start((uv_stream_t *)&j->out, on_alloc, on_read);
    if (env->limits.timeout_ms)
        uv_timer_start(&j->timer, on_timer, env->limits.timeout_ms, 0);
cleanup:
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
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

void val__sandbox_run(val_env *env, const char *hostdir, const char *const *argv, int argc,
                      val__sbx_cb cb, void *arg)
{
    val__job *j = wk_xcalloc(1, sizeof *j);
    j->env = env;
    j->hostdir = wk_xstrdup(hostdir);
    j->argv = wk_xcalloc((size_t)argc + 1, sizeof *j->argv);
    for (int i = 0; i < argc; i++)
        j->argv[i] = wk_xstrdup(argv[i]);
    j->argc = argc;
    j->cb = cb;
    j->arg = arg;
    wk_buf_init(&j->output, env->limits.output_cap);
    if (env->wait_tail)
        env->wait_tail->next = j;
    else
        env->wait_head = j;
    env->wait_tail = j;
    pump(env);
}

/* ---- host directory ------------------------------------------------------ */

int val__hostdir_make(char **out, char *err, size_t errlen)
{
    int rc = 0;
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/tmp";
    char *dir = wk_xasprintf("%s/cascade-box-XXXXXX", base);
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "could not make a directory under %s: %s", base, strerror(errno));
        rc = WK_EIO;
        goto cleanup;
    }
    /* mkdtemp makes it 0700; the sandbox may run as another uid and must read it. */
    if (chmod(dir, 0755) != 0) {
        snprintf(err, errlen, "chmod %s: %s", dir, strerror(errno));
        rmdir(dir);
        rc = WK_EIO;
        goto cleanup;
    }
    *out = dir;
    dir = NULL; /* the caller owns it now */
cleanup:
    free(dir);
    return rc;
}

/* A path a task may name: relative, no "..", not empty, at most 255 bytes, naming a file. */
static int path_ok(const char *path)
{
    size_t len = strlen(path);
    if (len == 0 || len > 255 || path[0] == '/')
        return 0;
    for (const char *p = path;;) {
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        if (*e == '\0')
            return n > 0 && !(n == 1 && p[0] == '.'); /* "dir/" and "." name no file */
        p = e + 1;
    }
}

int val__hostdir_write(const char *dir, const char *path, const char *content, size_t len,
                       char *err, size_t errlen)
{
    int rc = 0;
    int dfd = -1;
    int fd = -1;
    char *copy = NULL;
    if (!path_ok(path)) {
        snprintf(err, errlen,
                 "bad file path \"%.255s\": it must be relative, without \"..\", "
                 "at most 255 bytes",
                 path);
        rc = WK_EINVAL;
        goto cleanup;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        snprintf(err, errlen, "open %s: %s", dir, strerror(errno));
        rc = WK_EIO;
        goto cleanup;
    }
    copy = wk_xstrdup(path);
    /* Walk down with openat and O_NOFOLLOW so nothing escapes the directory. */
    char *comp = copy;
    char *slash;
    while ((slash = strchr(comp, '/')) != NULL) {
        *slash = '\0';
        if (*comp && strcmp(comp, ".") != 0) {
            if (mkdirat(dfd, comp, 0755) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot make directory for \"%s\": %s", path,
                         strerror(errno));
                rc = WK_EIO;
                goto cleanup;
            }
            int sub = openat(dfd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                snprintf(err, errlen, "cannot use directory for \"%s\": %s", path,
                         strerror(errno));
                rc = WK_EIO;
                goto cleanup;
            }
            fchmod(sub, 0755); /* umask may have narrowed it */
            close(dfd);
            dfd = sub;
        }
        comp = slash + 1;
    }
    fd = openat(dfd, comp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "cannot write \"%s\": %s", path, strerror(errno));
        rc = WK_EIO;
        goto cleanup;
    }
    fchmod(fd, 0644);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, content + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(err, errlen, "cannot write \"%s\": %s", path, strerror(errno));
            rc = WK_EIO;
            goto cleanup;
        }
        off += (size_t)n;
    }
cleanup:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    free(copy);
    return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void val__hostdir_remove(const char *dir)
{
    if (!dir)
        return;
    /* Depth first, never following links: only what we wrote is removed. */
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
