/*
 * A memory and pids cgroup per sandbox. RLIMIT_AS binds each process
 * alone, and memfd or shared-memory pages, tmpfs files (empty ones too: their
 * inodes are kernel memory charged to the group) and many processes each
 * under the limit escape it; the group caps the sandbox as a whole. cgroup
 * v2 where the worker's own group delegates memory and pids, else the v1
 * memory and pids hierarchies (Debian's default on older setups, and these
 * machines'), else none, said once on stderr. The sandbox's first process
 * joins the groups before it starts bwrap; the groups are emptied (SIGKILL)
 * and removed when the run ends.
 */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "validators/val_int.h"

#define CG_ROOT "/sys/fs/cgroup"

/* The worker's own group in the hierarchy named `ctl` ("" for v2) from /proc/self/cgroup. */
static char *own_group(const char *ctl)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return NULL;
    char line[1024];
    char *out = NULL;
    while (!out && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        const char *ctls = c1 + 1;
        if (*ctl == '\0' ? strcmp(line, "0") == 0 && *ctls == '\0' : strcmp(ctls, ctl) == 0)
            out = wk_xstrdup(c2 + 1);
    }
    fclose(f);
    return out;
}

static int write_file(const char *dir, const char *name, const char *value)
{
    char *p = wk_xasprintf("%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_CLOEXEC);
    free(p);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, value, strlen(value));
    close(fd);
    return n == (ssize_t)strlen(value) ? 0 : -1;
}

static int has_word(const char *dir, const char *name, const char *word)
{
    char *p = wk_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "re");
    free(p);
    if (!f)
        return 0;
    char buf[512] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (char *t = strtok(buf, " \n"); t; t = strtok(NULL, " \n"))
        if (strcmp(t, word) == 0)
            return 1;
    return 0;
}

/* 1 when a group can be made (and removed) under base. */
static int can_make(const char *base)
{
    char *probe = wk_xasprintf("%s/cascade-probe-%d", base, (int)getpid());
    int ok = mkdir(probe, 0755) == 0;
    if (ok)
        rmdir(probe);
    free(probe);
    return ok;
}

void val__cg_setup(val_env *env)
{
    char *g = NULL;
    env->cg_mode = 0;
    /* v2: the unified hierarchy at the root, our group delegating memory and pids. */
    struct stat st;
    if (stat(CG_ROOT "/cgroup.controllers", &st) == 0 && (g = own_group(""))) {
        char *base = wk_xasprintf(CG_ROOT "%s", strcmp(g, "/") == 0 ? "" : g);
        if (has_word(base, "cgroup.subtree_control", "memory") &&
            has_word(base, "cgroup.subtree_control", "pids") && can_make(base)) {
            env->cg_mode = 2;
            env->cg_mem = base;
            env->cg_pids = wk_xstrdup(base);
        } else {
            free(base);
        }
        free(g);
        g = NULL;
    }
    if (!env->cg_mode) {
        char *m = own_group("memory"), *p = own_group("pids");
        if (m && p) {
            char *mb = wk_xasprintf(CG_ROOT "/memory%s", strcmp(m, "/") == 0 ? "" : m);
            char *pb = wk_xasprintf(CG_ROOT "/pids%s", strcmp(p, "/") == 0 ? "" : p);
            if (can_make(mb) && can_make(pb)) {
                env->cg_mode = 1;
                env->cg_mem = mb;
                env->cg_pids = pb;
            } else {
                free(mb);
                free(pb);
            }
        }
        free(m);
        free(p);
    }
    if (!env->cg_mode) {
        static int warned;
        if (!warned++)
            fprintf(stderr, "cascade: sandbox: no memory and pids cgroup can be made here (not "
                            "delegated, or not root): memory is limited per process only "
                            "(RLIMIT_AS), so memfd and shared memory, and many processes under "
                            "the limit each, are not capped as a whole\n");
    }
}

void val__cg_release(val_env *env)
{
    free(env->cg_mem);
    free(env->cg_pids);
    env->cg_mem = env->cg_pids = NULL;
}

int val__cg_make(val_env *env, const val_limits *l, unsigned uid, int own_uid, char **mem,
                 char **pids)
{
    static unsigned serial;
    *mem = *pids = NULL;
    if (!env->cg_mode)
        return -1;
    serial++;
    char val[64];
    char *m = wk_xasprintf("%s/cascade-%d-%u", env->cg_mem, (int)getpid(), serial);
    char *p = env->cg_mode == 2
                  ? wk_xstrdup(m)
                  : wk_xasprintf("%s/cascade-%d-%u", env->cg_pids, (int)getpid(), serial);
    if (mkdir(m, 0755) != 0 || (env->cg_mode == 1 && mkdir(p, 0755) != 0)) {
        rmdir(m);
        free(m);
        free(p);
        return -1;
    }
    /* The processes' memory and the three tmpfs mounts they may fill. */
    unsigned long long cap = (unsigned long long)l->mem_bytes + 3ull * l->tmpfs_bytes;
    snprintf(val, sizeof val, "%llu", cap);
    if (env->cg_mode == 2) {
        write_file(m, "memory.max", val);
        write_file(m, "memory.swap.max", "0");
    } else {
        write_file(m, "memory.limit_in_bytes", val);
        write_file(m, "memory.memsw.limit_in_bytes",
                   val); /* no escape to swap, where there is one */
    }
    /* The command's processes, and bwrap's and our shell's own few. */
    snprintf(val, sizeof val, "%u", l->nproc ? l->nproc + 8 : 4096);
    write_file(p, "pids.max", val);
    if (own_uid) {
        /* The sandbox's first process, running as the slot's uid, joins the groups itself. */
        char *f = wk_xasprintf("%s/cgroup.procs", m);
        if (chown(f, uid, uid) != 0) { /* best effort: the join is checked by its effect */
        }
        free(f);
        f = wk_xasprintf("%s/cgroup.procs", p);
        if (chown(f, uid, uid) != 0) {
        }
        free(f);
    }
    *mem = m;
    *pids = p;
    return 0;
}

/* Kills every process listed in dir/cgroup.procs; returns how many were listed. */
static int kill_all(const char *dir)
{
    char *f = wk_xasprintf("%s/cgroup.procs", dir);
    FILE *in = fopen(f, "re");
    free(f);
    if (!in)
        return 0;
    int n = 0;
    long pid;
    while (fscanf(in, "%ld", &pid) == 1) {
        if (pid > 1)
            kill((pid_t)pid, SIGKILL);
        n++;
    }
    fclose(in);
    return n;
}

/* Reads "key N" from dir/name; 0 when absent. */
static long read_key(const char *dir, const char *name, const char *key)
{
    char *f = wk_xasprintf("%s/%s", dir, name);
    FILE *in = fopen(f, "re");
    free(f);
    if (!in)
        return 0;
    char k[64];
    long v, out = 0;
    while (fscanf(in, "%63s %ld", k, &v) == 2)
        if (strcmp(k, key) == 0)
            out = v;
    fclose(in);
    return out;
}

void val__cg_end(val_env *env, char *mem, char *pids, int *oom, int *pids_max)
{
    *oom = *pids_max = 0;
    if (!mem)
        return;
    if (env->cg_mode == 2) {
        *oom = read_key(mem, "memory.events", "oom_kill") > 0;
        *pids_max = read_key(pids, "pids.events", "max") > 0;
    } else {
        *oom = read_key(mem, "memory.oom_control", "oom_kill") > 0;
        *pids_max = read_key(pids, "pids.events", "max") > 0;
    }
    /* Whatever is left (nothing, normally: the pid namespace died with its init). */
    for (int round = 0; round < 50; round++) {
        int left = kill_all(mem) + (strcmp(mem, pids) ? kill_all(pids) : 0);
        int gone = rmdir(mem) == 0 || errno == ENOENT;
        if (strcmp(mem, pids))
            gone = (rmdir(pids) == 0 || errno == ENOENT) && gone;
        if (gone || (!left && round > 10))
            break;
        struct timespec ts = {0, 2 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    free(mem);
    if (pids != mem)
        free(pids);
}
