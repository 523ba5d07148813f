/*
 * The response cache (see cache.h). The body hash is two independent 64-bit
 * FNV-1a variants (128 bits) plus the body length: a collision between two
 * different prompts is not a practical concern, and the key stays small.
 */
#include "cache.h"

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

struct wk_cache {
    sqlite3 *db;
    sqlite3_stmt *get, *get_by, *put;
    long hits;
};

/* A cache made before entries kept their provider gains the column (NULL in old rows). */
static int add_provider_column(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    int has = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA table_info(responses)", -1, &st, NULL) != SQLITE_OK)
        return -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 1);
        has |= name && strcmp((const char *)name, "provider") == 0;
    }
    sqlite3_finalize(st);
    if (has)
        return 0;
    return sqlite3_exec(db, "ALTER TABLE responses ADD COLUMN provider TEXT", NULL, NULL, NULL) ==
                   SQLITE_OK
               ? 0
               : -1;
}

static void body_key(const char *model_id, const char *body, size_t len, int attempt, char out[96])
{
    uint64_t a = 1469598103934665603ull, b = 0x84222325cbf29ce4ull;
    for (size_t i = 0; i < len; i++) {
        a = (a ^ (unsigned char)body[i]) * 1099511628211ull;
        b = (b ^ (unsigned char)body[i]) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull;
    }
    (void)model_id;
    /* The first attempt keeps the key caches had before attempts were counted. */
    if (attempt <= 1)
        snprintf(out, 96, "%016llx%016llx-%zu", (unsigned long long)a, (unsigned long long)b, len);
    else
        snprintf(out, 96, "%016llx%016llx-%zu#%d", (unsigned long long)a, (unsigned long long)b,
                 len, attempt);
}

int wk_cache_open(const char *path, wk_cache **out, char *err, size_t errlen)
{
    wk_cache *c = wk_xcalloc(1, sizeof *c);
    char *msg = NULL;
    if (sqlite3_open(path, &c->db) != SQLITE_OK ||
        sqlite3_exec(c->db,
                     "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE IF NOT EXISTS responses(model TEXT, key TEXT, text TEXT, "
                     "finish TEXT, pt INTEGER, ct INTEGER, PRIMARY KEY(model, key));",
                     NULL, NULL, &msg) != SQLITE_OK ||
        add_provider_column(c->db) != 0 ||
        sqlite3_prepare_v2(c->db,
                           "SELECT text, finish, pt, ct FROM responses WHERE model = ?1 AND "
                           "key = ?2",
                           -1, &c->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "SELECT text, finish, pt, ct FROM responses WHERE model = ?1 AND "
                           "key = ?2 AND provider = ?3",
                           -1, &c->get_by, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db,
                           "INSERT OR REPLACE INTO responses(model, key, text, finish, pt, ct, "
                           "provider) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                           -1, &c->put, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot open cache %s: %s", path, msg ? msg : sqlite3_errmsg(c->db));
        sqlite3_free(msg);
        wk_cache_close(c);
        return WK_EIO;
    }
    sqlite3_busy_timeout(c->db, 5000);
    *out = c;
    return 0;
}

void wk_cache_close(wk_cache *c)
{
    if (!c)
        return;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->get_by);
    sqlite3_finalize(c->put);
    sqlite3_close(c->db);
    free(c);
}

int wk_cache_get(wk_cache *c, const char *model_id, const char *provider, const char *body,
                 size_t len, int attempt, wk_cached *hit)
{
    char key[96];
    body_key(model_id, body, len, attempt, key);
    sqlite3_stmt *st = provider ? c->get_by : c->get;
    sqlite3_bind_text(st, 1, model_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    if (provider)
        sqlite3_bind_text(st, 3, provider, -1, SQLITE_TRANSIENT);
    int found = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        const unsigned char *f = sqlite3_column_text(st, 1);
        hit->text = wk_xstrdup(t ? (const char *)t : "");
        hit->finish = f ? wk_xstrdup((const char *)f) : NULL;
        hit->pt = (long)sqlite3_column_int64(st, 2);
        hit->ct = (long)sqlite3_column_int64(st, 3);
        found = 1;
        c->hits++;
    }
    sqlite3_reset(st);
    return found;
}

void wk_cache_put(wk_cache *c, const char *model_id, const char *provider, const char *body,
                  size_t len, int attempt, const char *text, const char *finish, long pt, long ct)
{
    char key[96];
    body_key(model_id, body, len, attempt, key);
    sqlite3_bind_text(c->put, 7, provider, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(c->put, 1, model_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(c->put, 2, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(c->put, 3, text, -1, SQLITE_TRANSIENT);
    if (finish)
        sqlite3_bind_text(c->put, 4, finish, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(c->put, 4);
    sqlite3_bind_int64(c->put, 5, pt);
    sqlite3_bind_int64(c->put, 6, ct);
    if (sqlite3_step(c->put) != SQLITE_DONE)
        fprintf(stderr, "cascade: cache: %s\n", sqlite3_errmsg(c->db));
    sqlite3_reset(c->put);
}

void wk_cached_clear(wk_cached *h)
{
    free(h->text);
    free(h->finish);
    h->text = h->finish = NULL;
}

long wk_cache_hits(const wk_cache *c)
{
    return c ? c->hits : 0;
}
