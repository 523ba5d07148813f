/*
 * The verdict cache (see vcache.h): open addressing on a 64-bit FNV-1a hash
 * of the task id and the answer; the key text is kept, so a hash collision
 * is never taken for a hit.
 */
#include "vcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

typedef struct ent {
    uint64_t h;
    char *task, *answer;
    val_verdict v;
} ent;

struct wk_vcache {
    ent *slots;
    size_t cap, len;
    long hits;
};

/* The task id, a 0xff byte that no UTF-8 text holds, then the answer. */
static uint64_t key_hash(const char *task, const char *answer)
{
    return wk_hash(wk_hash(wk_hash(WK_HASH_SEED, task), "\xff"), answer);
}

wk_vcache *wk_vcache_new(void)
{
    return wk_xcalloc(1, sizeof(wk_vcache));
}

void wk_vcache_free(wk_vcache *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->cap; i++) {
        ent *e = &c->slots[i];
        if (!e->task)
            continue;
        free(e->task);
        free(e->answer);
        val_verdict_clear(&e->v);
    }
    free(c->slots);
    free(c);
}

static ent *find(wk_vcache *c, uint64_t h, const char *task, const char *answer)
{
    size_t k = h & (c->cap - 1);
    while (c->slots[k].task) {
        ent *e = &c->slots[k];
        if (e->h == h && strcmp(e->task, task) == 0 && strcmp(e->answer, answer) == 0)
            return e;
        k = (k + 1) & (c->cap - 1);
    }
    return &c->slots[k];
}

const val_verdict *wk_vcache_get(wk_vcache *c, const char *task_id, const char *answer)
{
    if (!c->cap)
        return NULL;
    ent *e = find(c, key_hash(task_id, answer), task_id, answer);
    if (!e->task)
        return NULL;
    c->hits++;
    return &e->v;
}

void wk_vcache_put(wk_vcache *c, const char *task_id, const char *answer, const val_verdict *v)
{
    if ((c->len + 1) * 2 > c->cap) {
        size_t ncap = c->cap ? c->cap * 2 : 1024;
        ent *old = c->slots;
        size_t ocap = c->cap;
        c->slots = wk_xcalloc(ncap, sizeof(ent));
        c->cap = ncap;
        for (size_t i = 0; i < ocap; i++)
            if (old[i].task)
                *find(c, old[i].h, old[i].task, old[i].answer) = old[i];
        free(old);
    }
    uint64_t h = key_hash(task_id, answer);
    ent *e = find(c, h, task_id, answer);
    if (e->task)
        return;
    e->h = h;
    e->task = wk_xstrdup(task_id);
    e->answer = wk_xstrdup(answer);
    val_verdict_copy(&e->v, v);
    c->len++;
}

long wk_vcache_hits(const wk_vcache *c)
{
    return c->hits;
}

long wk_vcache_len(const wk_vcache *c)
{
    return (long)c->len;
}

int wk_vcache_each(const wk_vcache *c,
                   int (*fn)(void *arg, const char *task_id, const char *answer,
                             const val_verdict *v),
                   void *arg)
{
    for (size_t i = 0; i < c->cap; i++) {
        const ent *e = &c->slots[i];
        if (!e->task)
            continue;
        int rc = fn(arg, e->task, e->answer, &e->v);
        if (rc)
            return rc;
    }
    return 0;
}
