/*
 * The bounded-memory set of task ids; see idset.h for the design.
 *
 * A run on disk is a sequence of records, sorted by the id's 64-bit hash
 * (equal hashes in any order): the hash (8 bytes), the id's length
 * (4 bytes), the id's bytes. The files are unnamed and private to the
 * process, so the numbers are in native byte order. The index of a run
 * keeps the hash and offset of the first record after every 4 KiB, so a
 * look-up starts at most one index gap before the records with its hash.
 */
#include "idset.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define IDSET_FENCE_BYTES 4096u           /* index gap: about one page read per look-up */
#define IDSET_ARENA_MAX ((size_t)1 << 20) /* id bytes in memory before a spill */
#define IDSET_WBUF (64u << 10)            /* write and merge buffers */
#define IDSET_BLOOM_LINES 65536u          /* 64-byte lines: 4 MiB */
#define IDSET_BLOOM_K 7                   /* bits set per id, all in one cache line */
#define IDSET_REC_HDR 12u                 /* hash + length */

typedef struct idset_ent {
    uint64_t h;
    uint64_t off; /* in the arena */
    uint32_t len;
} idset_ent;

typedef struct idset_run {
    int fd;
    uint64_t size;
    uint64_t *fence_h, *fence_off; /* owned; nfence entries, fence 0 at offset 0 */
    size_t nfence, afence;
} idset_run;

struct wk_idset {
    char *tmpdir; /* owned */
    size_t mem_ids;
    int max_runs;
    /* The ids not yet spilled: bytes end to end, entries, open addressing on entries. */
    char *arena;
    size_t used, aalloc;
    idset_ent *ents;
    size_t n, ealloc;
    uint32_t *slots; /* 0 empty, else entry index + 1 */
    size_t nslots;
    uint64_t *bloom; /* NULL until the first spill; covers every id on disk */
    idset_run *runs; /* oldest first */
    int nruns, aruns;
    char *page; /* IDSET_FENCE_BYTES of scratch for look-ups */
    wk_idset_stats st;
};

/* A buffered reader over one run: look-ups (a page) and merges (IDSET_WBUF). */
typedef struct idset_rd {
    int fd;
    uint64_t pos, end; /* next file offset to deliver; end of the run */
    char *buf;
    size_t cap, len, at; /* buf holds file bytes [pos - at, pos - at + len) */
} idset_rd;

typedef struct idset_wr {
    int fd;
    char *buf;
    size_t len;
    uint64_t off, next_fence; /* bytes written so far; where the next index entry may go */
    idset_run *run;
} idset_wr;

/* FNV-1a, then a finalizer: FNV's low bits are weak, and the Bloom filter and the table use them.
 */
static uint64_t idset_hash(const char *s, size_t *len)
{
    uint64_t h = WK_HASH_SEED;
    const unsigned char *p = (const unsigned char *)s;
    for (; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    *len = (size_t)(p - (const unsigned char *)s);
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static void idset_fatal(const char *what)
{
    fprintf(stderr, "cascade: the duplicate-id spill file: %s: %s\n", what, strerror(errno));
    abort();
}

/*
 * The spill's sort buffer and the merge's read buffers are mapped and
 * unmapped directly: through malloc, glibc raises its mmap threshold after
 * the first large free, later ones come from the heap, and the heap keeps
 * them, raising RSS a step at the first merge (600 KiB by VmRSS).
 */
static void *idset_map(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "cascade: out of memory (%zu bytes)\n", n);
        abort();
    }
    return p;
}

/* ---- the Bloom filter ---------------------------------------------------- */

/* One 512-bit line per id (one cache miss a look-up); bits from a second mix of the hash. */
static uint64_t idset_bloom_bits(uint64_t h, size_t *line)
{
    *line = (size_t)(h >> 48) & (IDSET_BLOOM_LINES - 1);
    uint64_t g = (h ^ 0x9e3779b97f4a7c15ull) * 0xff51afd7ed558ccdull;
    return g ^ (g >> 33);
}

static void idset_bloom_add(uint64_t *bloom, uint64_t h)
{
    size_t line;
    uint64_t g = idset_bloom_bits(h, &line);
    uint64_t *w = bloom + line * 8;
    for (int k = 0; k < IDSET_BLOOM_K; k++, g >>= 9)
        w[(g >> 6) & 7] |= 1ull << (g & 63);
}

static int idset_bloom_has(const uint64_t *bloom, uint64_t h)
{
    size_t line;
    uint64_t g = idset_bloom_bits(h, &line);
    const uint64_t *w = bloom + line * 8;
    for (int k = 0; k < IDSET_BLOOM_K; k++, g >>= 9)
        if (!(w[(g >> 6) & 7] & (1ull << (g & 63))))
            return 0;
    return 1;
}

/* ---- the in-memory table --------------------------------------------------- */

static size_t idset_mem_find(const wk_idset *s, uint64_t h, const char *id, size_t len)
{
    size_t mask = s->nslots - 1;
    for (size_t k = (size_t)h & mask;; k = (k + 1) & mask) {
        uint32_t e = s->slots[k];
        if (!e)
            return k;
        const idset_ent *x = &s->ents[e - 1];
        if (x->h == h && x->len == len && memcmp(s->arena + x->off, id, len) == 0)
            return k;
    }
}

/* Doubles the slots while the table is more than half full (only past mem_ids in memory mode). */
static void idset_mem_grow(wk_idset *s)
{
    if ((s->n + 1) * 2 <= s->nslots)
        return;
    size_t ncap = s->nslots * 2;
    uint32_t *n = wk_xcalloc(ncap, sizeof *n);
    for (size_t i = 0; i < s->n; i++) {
        size_t k = (size_t)s->ents[i].h & (ncap - 1);
        while (n[k])
            k = (k + 1) & (ncap - 1);
        n[k] = (uint32_t)(i + 1);
    }
    free(s->slots);
    s->slots = n;
    s->nslots = ncap;
}

static void idset_mem_insert(wk_idset *s, size_t slot, uint64_t h, const char *id, size_t len)
{
    if (s->used + len > s->aalloc) {
        size_t na = s->aalloc ? s->aalloc : 4096;
        while (na < s->used + len)
            na *= 2;
        s->arena = wk_xrealloc(s->arena, na);
        s->aalloc = na;
    }
    if (s->n == s->ealloc) {
        s->ealloc = s->ealloc ? s->ealloc * 2 : 1024;
        s->ents = wk_xrealloc(s->ents, s->ealloc * sizeof *s->ents);
    }
    memcpy(s->arena + s->used, id, len);
    s->ents[s->n] = (idset_ent){.h = h, .off = s->used, .len = (uint32_t)len};
    s->used += len;
    s->n++;
    s->slots[slot] = (uint32_t)s->n;
}

static void idset_mem_clear(wk_idset *s)
{
    s->n = 0;
    s->used = 0;
    memset(s->slots, 0, s->nslots * sizeof *s->slots);
    /* A long id may have grown the arena; give that back. */
    if (s->aalloc > IDSET_ARENA_MAX) {
        free(s->arena);
        s->arena = NULL;
        s->aalloc = 0;
    }
}

/* ---- runs on disk ----------------------------------------------------------- */

/* An unnamed file in the set's directory: O_TMPFILE, or mkstemp and unlink where unsupported. */
static int idset_tmpfile(const wk_idset *s)
{
    int fd = open(s->tmpdir, O_TMPFILE | O_RDWR | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0)
        return fd;
    char *path = wk_xasprintf("%s/cascade-ids.XXXXXX", s->tmpdir);
    fd = mkostemp(path, O_CLOEXEC);
    int e = errno; /* for the warning, past free() */
    if (fd >= 0)
        unlink(path);
    free(path);
    errno = e;
    return fd;
}

static void idset_run_release(idset_run *r)
{
    if (r->fd >= 0)
        close(r->fd);
    free(r->fence_h);
    free(r->fence_off);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

static int idset_wr_flush(idset_wr *w)
{
    size_t done = 0;
    while (done < w->len) {
        ssize_t k = write(w->fd, w->buf + done, w->len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k == 0)
                errno = ENOSPC;
            return WK_EIO;
        }
        done += (size_t)k;
    }
    w->len = 0;
    return 0;
}

static int idset_wr_put(idset_wr *w, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        if (w->len == IDSET_WBUF && idset_wr_flush(w))
            return WK_EIO;
        size_t k = IDSET_WBUF - w->len < n ? IDSET_WBUF - w->len : n;
        memcpy(w->buf + w->len, c, k);
        w->len += k;
        w->off += k;
        c += k;
        n -= k;
    }
    return 0;
}

/* A record's header; the first record at or past each 4 KiB step goes in the index. */
static int idset_wr_head(idset_wr *w, uint64_t h, uint32_t len)
{
    idset_run *r = w->run;
    if (w->off >= w->next_fence) {
        if (r->nfence == r->afence) {
            r->afence = r->afence ? r->afence * 2 : 64;
            r->fence_h = wk_xrealloc(r->fence_h, r->afence * sizeof *r->fence_h);
            r->fence_off = wk_xrealloc(r->fence_off, r->afence * sizeof *r->fence_off);
        }
        r->fence_h[r->nfence] = h;
        r->fence_off[r->nfence++] = w->off;
        w->next_fence = w->off + IDSET_FENCE_BYTES;
    }
    char hdr[IDSET_REC_HDR];
    memcpy(hdr, &h, 8);
    memcpy(hdr + 8, &len, 4);
    return idset_wr_put(w, hdr, sizeof hdr);
}

/* Starts a run in a new file; 0 or WK_EIO (nothing to release then). */
static int idset_wr_open(const wk_idset *s, idset_wr *w, idset_run *r)
{
    memset(r, 0, sizeof *r);
    r->fd = idset_tmpfile(s);
    if (r->fd < 0)
        return WK_EIO;
    memset(w, 0, sizeof *w);
    w->fd = r->fd;
    w->buf = wk_xmalloc(IDSET_WBUF);
    w->run = r;
    return 0;
}

/* Ends the write; on failure the run is released. */
static int idset_wr_close(idset_wr *w, int rc)
{
    if (rc == 0)
        rc = idset_wr_flush(w);
    w->run->size = w->off;
    free(w->buf);
    w->buf = NULL;
    if (rc) {
        int e = errno; /* for the warning, past close() */
        idset_run_release(w->run);
        errno = e;
    }
    return rc;
}

static void idset_rd_init(idset_rd *r, const idset_run *run, uint64_t from, char *buf, size_t cap)
{
    *r = (idset_rd){.fd = run->fd, .pos = from, .end = run->size, .buf = buf, .cap = cap};
}

/* Makes at least one unread byte available (the run must have one left). */
static void idset_rd_fill(idset_rd *r)
{
    if (r->at < r->len)
        return;
    uint64_t left = r->end - r->pos;
    size_t want = left < r->cap ? (size_t)left : r->cap;
    ssize_t k;
    do
        k = pread(r->fd, r->buf, want, (off_t)r->pos);
    while (k < 0 && errno == EINTR);
    if (k <= 0) {
        if (k == 0)
            errno = EIO;
        idset_fatal("read");
    }
    r->len = (size_t)k;
    r->at = 0;
}

/* Copies n bytes to dst, or to w when dst is NULL and w is not, or skips them. */
static int idset_rd_take(idset_rd *r, void *dst, size_t n, idset_wr *w)
{
    char *d = dst;
    /* A skip past the buffer needs no read. */
    if (!dst && !w && n > r->len - r->at) {
        r->pos += n;
        r->at = r->len = 0;
        return 0;
    }
    while (n) {
        idset_rd_fill(r);
        size_t k = r->len - r->at < n ? r->len - r->at : n;
        if (d) {
            memcpy(d, r->buf + r->at, k);
            d += k;
        } else if (w && idset_wr_put(w, r->buf + r->at, k)) {
            return WK_EIO;
        }
        r->at += k;
        r->pos += k;
        n -= k;
    }
    return 0;
}

/* Reads the next record's header; 0 at the end of the run. */
static int idset_rd_head(idset_rd *r, uint64_t *h, uint32_t *len)
{
    if (r->pos >= r->end)
        return 0;
    char hdr[IDSET_REC_HDR];
    idset_rd_take(r, hdr, sizeof hdr, NULL);
    memcpy(h, hdr, 8);
    memcpy(len, hdr + 8, 4);
    return 1;
}

/* 1 when the next len bytes equal id; consumes them either way. */
static int idset_rd_equal(idset_rd *r, const char *id, size_t len)
{
    int eq = 1;
    while (len) {
        idset_rd_fill(r);
        size_t k = r->len - r->at < len ? r->len - r->at : len;
        if (eq && memcmp(r->buf + r->at, id, k) != 0)
            eq = 0;
        r->at += k;
        r->pos += k;
        id += k;
        len -= k;
    }
    return eq;
}

static int idset_run_has(wk_idset *s, const idset_run *run, uint64_t h, const char *id, size_t len)
{
    /* The last index entry with a smaller hash: every record with hash h comes after it. */
    size_t lo = 0, hi = run->nfence;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (run->fence_h[mid] < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t from = lo ? run->fence_off[lo - 1] : 0;
    idset_rd r;
    idset_rd_init(&r, run, from, s->page, IDSET_FENCE_BYTES);
    uint64_t rh;
    uint32_t rlen;
    while (idset_rd_head(&r, &rh, &rlen) && rh <= h) {
        if (rh == h && rlen == len) {
            if (idset_rd_equal(&r, id, len))
                return 1;
        } else {
            idset_rd_take(&r, NULL, rlen, NULL);
        }
    }
    return 0;
}

/*
 * Sorts the entries by hash: a radix sort, a byte a pass. qsort's calls to a
 * comparator and its copies through memcpy were half the set's instructions.
 */
static void idset_sort(wk_idset *s)
{
    idset_ent *tmp = idset_map(s->n * sizeof *tmp), *from = s->ents, *to = tmp;
    for (int shift = 0; shift < 64; shift += 8) {
        size_t count[257] = {0};
        for (size_t i = 0; i < s->n; i++)
            count[((from[i].h >> shift) & 0xff) + 1]++;
        for (int b = 0; b < 256; b++)
            count[b + 1] += count[b];
        for (size_t i = 0; i < s->n; i++)
            to[count[(from[i].h >> shift) & 0xff]++] = from[i];
        idset_ent *t = from;
        from = to;
        to = t;
    }
    munmap(tmp, s->n * sizeof *tmp); /* eight passes: the sorted entries are back in s->ents */
}

/* Once: from now on every id stays in memory. */
static void idset_memory_only(wk_idset *s, const char *why)
{
    char *dir = wk_escape_ctl(s->tmpdir, strlen(s->tmpdir), 200);
    fprintf(stderr,
            "cascade: warning: cannot write the duplicate-id spill file in %s (%s); "
            "keeping every task id in memory from here\n",
            dir, why);
    free(dir);
    s->st.memory_only = 1;
}

/* Merges every run into one; on failure the runs stay as they were. */
static int idset_merge(wk_idset *s)
{
    int k = s->nruns, rc = 0;
    idset_rd *rd = wk_xcalloc((size_t)k, sizeof *rd);
    uint64_t *hh = wk_xcalloc((size_t)k, sizeof *hh);
    uint32_t *ll = wk_xcalloc((size_t)k, sizeof *ll);
    int *live = wk_xcalloc((size_t)k, sizeof *live);
    char *bufs = NULL; /* the read buffers, one mapping */
    idset_run out;
    idset_wr w;
    rc = idset_wr_open(s, &w, &out);
    if (rc)
        goto cleanup;
    bufs = idset_map((size_t)k * IDSET_WBUF);
    for (int i = 0; i < k; i++) {
        idset_rd_init(&rd[i], &s->runs[i], 0, bufs + (size_t)i * IDSET_WBUF, IDSET_WBUF);
        live[i] = idset_rd_head(&rd[i], &hh[i], &ll[i]);
    }
    /* At most WK_IDSET_MAX_RUNS + 1 inputs: a linear pick of the smallest is enough. */
    for (;;) {
        int m = -1;
        for (int i = 0; i < k; i++)
            if (live[i] && (m < 0 || hh[i] < hh[m]))
                m = i;
        if (m < 0)
            break;
        rc = idset_wr_head(&w, hh[m], ll[m]);
        if (rc == 0)
            rc = idset_rd_take(&rd[m], NULL, ll[m], &w);
        if (rc)
            break;
        live[m] = idset_rd_head(&rd[m], &hh[m], &ll[m]);
    }
    rc = idset_wr_close(&w, rc);
    if (rc)
        goto cleanup;
    for (int i = 0; i < k; i++)
        idset_run_release(&s->runs[i]);
    s->runs[0] = out;
    s->nruns = 1;
    s->st.merges++;
cleanup:
    if (bufs)
        munmap(bufs, (size_t)k * IDSET_WBUF);
    free(rd);
    free(hh);
    free(ll);
    free(live);
    return rc;
}

/* Writes the in-memory ids as a new run and empties the table; on failure nothing changes. */
static int idset_spill(wk_idset *s)
{
    idset_run run;
    idset_wr w;
    int rc = idset_wr_open(s, &w, &run);
    if (rc)
        return rc;
    idset_sort(s);
    for (size_t i = 0; i < s->n && rc == 0; i++) {
        rc = idset_wr_head(&w, s->ents[i].h, s->ents[i].len);
        if (rc == 0)
            rc = idset_wr_put(&w, s->arena + s->ents[i].off, s->ents[i].len);
    }
    rc = idset_wr_close(&w, rc);
    if (rc) {
        /* The sort moved the entries: point the slots at their new places. */
        memset(s->slots, 0, s->nslots * sizeof *s->slots);
        for (size_t i = 0; i < s->n; i++) {
            size_t k = (size_t)s->ents[i].h & (s->nslots - 1);
            while (s->slots[k])
                k = (k + 1) & (s->nslots - 1);
            s->slots[k] = (uint32_t)(i + 1);
        }
        return rc;
    }
    if (!s->bloom)
        s->bloom = wk_xcalloc(IDSET_BLOOM_LINES * 8, sizeof *s->bloom);
    for (size_t i = 0; i < s->n; i++)
        idset_bloom_add(s->bloom, s->ents[i].h);
    if (s->nruns == s->aruns) {
        s->aruns = s->aruns ? s->aruns * 2 : 16;
        s->runs = wk_xrealloc(s->runs, (size_t)s->aruns * sizeof *s->runs);
    }
    s->runs[s->nruns++] = run;
    s->st.spills++;
    idset_mem_clear(s);
    if (s->nruns > s->max_runs && idset_merge(s))
        idset_memory_only(s, "merging the runs failed");
    return 0;
}

/* ---- the set ------------------------------------------------------------------ */

wk_idset *wk_idset_new(const wk_idset_opts *opts)
{
    wk_idset *s = wk_xcalloc(1, sizeof *s);
    const char *dir = opts && opts->tmpdir ? opts->tmpdir : getenv("TMPDIR");
    s->tmpdir = wk_xstrdup(dir && *dir ? dir : "/tmp");
    s->mem_ids = opts && opts->mem_ids ? opts->mem_ids : WK_IDSET_MEM_IDS;
    s->max_runs = opts && opts->max_runs > 0 ? opts->max_runs : WK_IDSET_MAX_RUNS;
    s->nslots = 64;
    while (s->nslots < s->mem_ids * 2)
        s->nslots *= 2;
    s->slots = wk_xcalloc(s->nslots, sizeof *s->slots);
    s->page = wk_xmalloc(IDSET_FENCE_BYTES);
    return s;
}

static int idset_has(wk_idset *s, uint64_t h, const char *id, size_t len, size_t *slot)
{
    *slot = idset_mem_find(s, h, id, len);
    if (s->slots[*slot])
        return 1;
    if (!s->nruns || !idset_bloom_has(s->bloom, h))
        return 0;
    /* Newest first: a recent id is the likelier repeat. */
    for (int i = s->nruns - 1; i >= 0; i--)
        if (idset_run_has(s, &s->runs[i], h, id, len))
            return 1;
    return 0;
}

int wk_idset_has(wk_idset *s, const char *id)
{
    size_t len, slot;
    uint64_t h = idset_hash(id, &len);
    return len <= WK_IDSET_ID_MAX && idset_has(s, h, id, len, &slot);
}

int wk_idset_add(wk_idset *s, const char *id)
{
    size_t len, slot;
    uint64_t h = idset_hash(id, &len);
    if (len > WK_IDSET_ID_MAX)
        return WK_ETOOBIG;
    if (idset_has(s, h, id, len, &slot))
        return 1;
    int full = s->n >= s->mem_ids || (s->n && s->used + len > IDSET_ARENA_MAX);
    if (full && !s->st.memory_only) {
        if (idset_spill(s) == 0)
            slot = idset_mem_find(s, h, id, len);
        else
            idset_memory_only(s, strerror(errno));
    }
    if (s->st.memory_only && (s->n + 1) * 2 > s->nslots) {
        idset_mem_grow(s);
        slot = idset_mem_find(s, h, id, len);
    }
    idset_mem_insert(s, slot, h, id, len);
    s->st.ids++;
    return 0;
}

void wk_idset_stats_get(const wk_idset *s, wk_idset_stats *st)
{
    *st = s->st;
    st->runs = s->nruns;
}

void wk_idset_free(wk_idset *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nruns; i++)
        idset_run_release(&s->runs[i]);
    free(s->runs);
    free(s->bloom);
    free(s->arena);
    free(s->ents);
    free(s->slots);
    free(s->page);
    free(s->tmpdir);
    free(s);
}
