/*
 * The helpers of fuzz.h. Linked into every fuzz target.
 */
#include "fuzz.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define TMPDIRS_MAX 8

static char *tmpdirs[TMPDIRS_MAX];
static int ntmpdirs;

static void die(const char *what)
{
    perror(what);
    fprintf(stderr, "fuzz harness: %s failed (not a finding in the code under test)\n", what);
    abort();
}

char *fuzz_cstr(const uint8_t *data, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        die("malloc");
    if (n)
        memcpy(s, data, n);
    s[n] = '\0';
    return s;
}

void fuzz_split(const uint8_t *data, size_t size, char **a, size_t *alen, char **b, size_t *blen)
{
    const uint8_t *nul = size ? memchr(data, 0, size) : NULL;
    size_t n = nul ? (size_t)(nul - data) : size;
    *a = fuzz_cstr(data, n);
    *alen = n;
    if (nul) {
        *b = fuzz_cstr(nul + 1, size - n - 1);
        *blen = size - n - 1;
    } else {
        *b = fuzz_cstr(data, 0);
        *blen = 0;
    }
}

int fuzz_file(const void *data, size_t size, char path[32])
{
    int fd = memfd_create("fuzz-input", MFD_CLOEXEC);
    if (fd < 0)
        die("memfd_create");
    const char *p = data;
    size_t left = size;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w <= 0)
            die("write to memfd");
        p += w;
        left -= (size_t)w;
    }
    snprintf(path, 32, "/proc/self/fd/%d", fd);
    return fd;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tmpdirs(void)
{
    for (int i = 0; i < ntmpdirs; i++) {
        nftw(tmpdirs[i], rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(tmpdirs[i]);
    }
    ntmpdirs = 0;
}

char *fuzz_tmpdir(const char *tag)
{
    /* Memory rather than disk where there is some: targets may write per input. */
    const char *base = getenv("TMPDIR");
    if (!base || !*base)
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/cascade-fuzz-%s-XXXXXX", base, tag);
    if (!mkdtemp(tmpl))
        die("mkdtemp");
    if (ntmpdirs == TMPDIRS_MAX)
        die("too many scratch directories");
    if (ntmpdirs == 0)
        atexit(rm_tmpdirs);
    tmpdirs[ntmpdirs++] = strdup(tmpl);
    return strdup(tmpl);
}

void fuzz_write(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f)
        die(path);
    if (fputs(text, f) < 0 || fclose(f) != 0)
        die(path);
}
