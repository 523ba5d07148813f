/*
 * An exact set of task ids in bounded memory, for the duplicate-id check of
 * a run over a file of any length. Up to WK_IDSET_MEM_IDS ids are kept in a
 * hash table; when it fills, they are sorted by hash and written as a run to
 * an unnamed temporary file with a sparse in-memory index (one key per
 * 4 KiB), so a look-up reads about one page of each run. A 4 MiB Bloom
 * filter over everything on disk answers most misses without a read, and
 * runs are merged into one when there are more than a few, so a look-up
 * stays bounded. Memory stays near 6 MiB plus 16 bytes per 4 KiB on disk.
 *
 * When no spill file can be written (TMPDIR unwritable, disk full), one
 * warning goes to stderr and the set keeps every further id in memory:
 * it never forgets an id.
 */
#ifndef WK_IDSET_H
#define WK_IDSET_H

#include <stddef.h>

/*
 * Longest id accepted. An id is part of one input line, and `cascade run`
 * caps a line at 16 MiB (LINE_CAP in worker/run.c), so no task id is longer.
 */
#define WK_IDSET_ID_MAX ((size_t)16 << 20)
/* Ids kept in memory before they are spilled to a run on disk. */
#define WK_IDSET_MEM_IDS 32768
/* More runs than this are merged into one. */
#define WK_IDSET_MAX_RUNS 8

typedef struct wk_idset wk_idset;

typedef struct wk_idset_opts {
    const char *tmpdir; /* borrowed, copied; NULL: $TMPDIR, else /tmp */
    size_t mem_ids;     /* 0: WK_IDSET_MEM_IDS (tests spill sooner) */
    int max_runs;       /* 0: WK_IDSET_MAX_RUNS */
} wk_idset_opts;

/* What the set did so far, for tests and diagnostics. */
typedef struct wk_idset_stats {
    size_t ids;      /* distinct ids held */
    int runs;        /* runs on disk now */
    long spills;     /* runs written from memory */
    long merges;     /* times the runs were merged into one */
    int memory_only; /* 1 once spilling failed and every new id stays in memory */
} wk_idset_stats;

/* A new empty set (opts may be NULL); free it with wk_idset_free. Opens no file yet. */
wk_idset *wk_idset_new(const wk_idset_opts *opts);
/*
 * Adds id (a C string, copied): 0 when added, 1 when it was already there,
 * WK_ETOOBIG (set unchanged) when it is longer than WK_IDSET_ID_MAX.
 */
int wk_idset_add(wk_idset *set, const char *id);
/*
 * 1 when id is in the set, else 0. A read error on the set's own spill file
 * aborts, like a failed allocation: that file is the set's memory, and an
 * answer either way could be wrong.
 */
int wk_idset_has(wk_idset *set, const char *id);
void wk_idset_stats_get(const wk_idset *set, wk_idset_stats *st);
/* Frees the set and closes its files (their space goes with them). NULL is fine. */
void wk_idset_free(wk_idset *set);

#endif
