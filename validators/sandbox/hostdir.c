/*
 * Host directories: a fresh directory under $TMPDIR (cascade-box-*) that a
 * sandboxed run may copy into /box whole (a patched tree, the older
 * hostdir-copy path), files written into it without leaving it, its removal,
 * and the sweep of those a killed worker left behind. Also the rule for a
 * path a task may name (val__path_ok), which the sandbox applies too.
 */
#include "sandbox.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

int val__path_ok(const char *path)
{
    if (!path)
        return 0;
    size_t len = strlen(path);
    if (len == 0 || len > 255 || path[0] == '/')
        return 0;
    /*
     * Control characters and backslashes would be escaped in sha256sum's
     * report and in evidence; no real file name needs them.
     */
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
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
    if (!val__path_ok(path)) {
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
                snprintf(err, errlen, "cannot use directory for \"%s\": %s", path, strerror(errno));
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

int val__hostdir_sweep(const char *base, unsigned max_age_s)
{
    if (!base) {
        base = getenv("TMPDIR");
        if (!base || !*base)
            base = "/tmp";
    }
    DIR *d = opendir(base);
    if (!d)
        return 0;
    int removed = 0;
    time_t now = time(NULL);
    uid_t me = geteuid();
    struct dirent *e;
    /* A directory holds finitely many entries; each is looked at once. */
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "cascade-box-", 12) != 0 || strlen(e->d_name) != 18)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            continue;
        /* Only ours, and only old enough that no live run can still use it. */
        if (st.st_uid != me || now - st.st_mtime < (time_t)max_age_s)
            continue;
        char *path = wk_xasprintf("%s/%s", base, e->d_name);
        val__hostdir_remove(path);
        free(path);
        removed++;
    }
    closedir(d);
    return removed;
}
