/*
 * The response cache (--cache FILE, SQLite): an answer already paid for is
 * not paid for again. The key is the provider's model id, a hash of the
 * exact request body (the same conversation to the same model) and the
 * attempt: a retry of the same request after its answer failed (a tier with
 * attempts > 1 and no feedback) is a new key, so it reaches the model instead
 * of getting the failed answer back. A hit costs nothing and its attempt is
 * marked cached. Each entry keeps the provider that made it; caches made
 * before that have none, and a task with a data class takes nothing from
 * them. cascade sends no sampling
 * temperature, so a request names one answer; a models file that asks for
 * sampling should not share a cache across runs that want fresh samples.
 */
#ifndef WK_CACHE_H
#define WK_CACHE_H

#include <stddef.h>

typedef struct wk_cache wk_cache;

typedef struct wk_cached {
    char *text, *finish; /* owned */
    long pt, ct;
} wk_cached;

int wk_cache_open(const char *path, wk_cache **out, char *err, size_t errlen);
void wk_cache_close(wk_cache *c);
/*
 * 1 with *hit filled (free with wk_cached_clear) when the request was answered
 * before. attempt: the task's attempt number (1-based) the request is for.
 * provider: NULL takes an entry whoever made it; a name takes only an entry
 * that provider made (a task with a data class: policy.h), so an answer from
 * a provider the class may not reach is never handed to it.
 */
int wk_cache_get(wk_cache *c, const char *model_id, const char *provider, const char *body,
                 size_t len, int attempt, wk_cached *hit);
/* provider: the provider that answered, kept with the entry. */
void wk_cache_put(wk_cache *c, const char *model_id, const char *provider, const char *body,
                  size_t len, int attempt, const char *text, const char *finish, long pt, long ct);
void wk_cached_clear(wk_cached *h);
long wk_cache_hits(const wk_cache *c);

#endif
