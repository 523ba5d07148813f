/*
 * bench-direct: the "direct client" of `make bench` (issue 13). It sends the
 * same OpenAI chat request N times to one URL with C requests in flight, each
 * slot a libcurl easy handle kept alive across its requests (the multi
 * interface drives them all from one thread), and prints one JSON line:
 *
 *   {"requests", "ok", "errors", "concurrency", "wall_s", "per_request_us",
 *    "p50_us", "p99_us", "rps", "connects"}
 *
 * per_request_us is wall time over requests (at concurrency 1 that is the
 * time a request costs a client that does nothing else); p50/p99 are of each
 * request's own time from hand-off to completion; connects counts the new
 * connections libcurl opened (keep-alive: one per slot). This is the floor
 * `cascade run` is measured against, and the client that drives Portkey.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define DIRECT_MAX_HEADERS 16
#define DIRECT_MAX_CONC 100000
#define DIRECT_MAX_REQUESTS 100000000L

static const char default_body[] =
    "{\"model\":\"m0\",\"messages\":[{\"role\":\"user\",\"content\":\"say ok\"}],"
    "\"max_tokens\":64}";

struct slot {
    CURL *h;
    double start_us; /* when the current request was handed to the multi handle */
};

struct run {
    CURLM *multi;
    struct curl_slist *headers;
    const char *url, *body;
    long total, sent, done, ok, errors, connects;
    double *lat_us; /* one per completed request; sized total */
};

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* The response body is only counted, never kept. */
static size_t on_body(char *ptr, size_t size, size_t n, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Hands the slot's next request to the multi handle. Returns 0 or -1. */
static int slot_send(struct run *r, struct slot *s)
{
    s->start_us = now_us();
    r->sent++;
    return curl_multi_add_handle(r->multi, s->h) == CURLM_OK ? 0 : -1;
}

static int slot_init(struct run *r, struct slot *s)
{
    s->h = curl_easy_init();
    if (!s->h)
        return -1;
    curl_easy_setopt(s->h, CURLOPT_URL, r->url);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(s->h, CURLOPT_PRIVATE, s);
    curl_easy_setopt(s->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(s->h, CURLOPT_TIMEOUT, 120L);
    return 0;
}

/* Takes every finished request, records it, and sends the slot's next. */
static int reap(struct run *r)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(r->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct slot *s;
        long status = 0, conns = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(m->easy_handle, CURLINFO_NUM_CONNECTS, &conns);
        r->lat_us[r->done++] = now_us() - s->start_us;
        r->connects += conns;
        if (m->data.result == CURLE_OK && status == 200)
            r->ok++;
        else if (r->errors++ < 3)
            fprintf(stderr, "bench-direct: request failed: %s, status %ld\n",
                    curl_easy_strerror(m->data.result), status);
        curl_multi_remove_handle(r->multi, s->h);
        if (r->sent < r->total && slot_send(r, s))
            return -1;
    }
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench-direct --url URL --requests N [--concurrency C]\n"
                    "                    [--header 'Name: value']... [--body JSON]\n");
}

int main(int argc, char **argv)
{
    struct run r;
    struct slot *slots = NULL;
    long conc = 1;
    int rc = 1, nh = 0;
    const char *hdrs[DIRECT_MAX_HEADERS];

    memset(&r, 0, sizeof r);
    r.body = default_body;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage();
            return 2;
        }
        if (!strcmp(a, "--url"))
            r.url = v;
        else if (!strcmp(a, "--requests"))
            r.total = strtol(v, NULL, 10);
        else if (!strcmp(a, "--concurrency"))
            conc = strtol(v, NULL, 10);
        else if (!strcmp(a, "--body"))
            r.body = v;
        else if (!strcmp(a, "--header") && nh < DIRECT_MAX_HEADERS)
            hdrs[nh++] = v;
        else {
            usage();
            return 2;
        }
        i++;
    }
    if (!r.url || r.total < 1 || r.total > DIRECT_MAX_REQUESTS || conc < 1 ||
        conc > DIRECT_MAX_CONC) {
        usage();
        return 2;
    }
    if (conc > r.total)
        conc = r.total;

    /* A thousand connections need more descriptors than the usual soft limit. */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    curl_global_init(CURL_GLOBAL_DEFAULT);
    r.headers = curl_slist_append(NULL, "Content-Type: application/json");
    r.headers = curl_slist_append(r.headers, "X-Cascade-Task: bench");
    for (int i = 0; i < nh; i++)
        r.headers = curl_slist_append(r.headers, hdrs[i]);
    r.multi = curl_multi_init();
    r.lat_us = calloc((size_t)r.total, sizeof *r.lat_us);
    slots = calloc((size_t)conc, sizeof *slots);
    if (!r.headers || !r.multi || !r.lat_us || !slots)
        goto cleanup;
    curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, conc);

    double t0 = now_us();
    for (long i = 0; i < conc; i++)
        if (slot_init(&r, &slots[i]) || slot_send(&r, &slots[i]))
            goto cleanup;
    while (r.done < r.total) {
        int running = 0;
        if (curl_multi_perform(r.multi, &running) != CURLM_OK)
            goto cleanup;
        if (reap(&r))
            goto cleanup;
        if (r.done < r.total && curl_multi_poll(r.multi, NULL, 0, 1000, NULL) != CURLM_OK)
            goto cleanup;
    }
    double wall = (now_us() - t0) / 1e6;

    qsort(r.lat_us, (size_t)r.done, sizeof *r.lat_us, cmp_double);
    printf("{\"requests\": %ld, \"ok\": %ld, \"errors\": %ld, \"concurrency\": %ld, "
           "\"wall_s\": %.6f, \"per_request_us\": %.3f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"rps\": %.1f, \"connects\": %ld}\n",
           r.total, r.ok, r.errors, conc, wall, wall * 1e6 / (double)r.total, r.lat_us[r.done / 2],
           r.lat_us[(r.done * 99) / 100], (double)r.total / wall, r.connects);
    rc = r.errors ? 1 : 0;
cleanup:
    if (slots)
        for (long i = 0; i < conc; i++)
            if (slots[i].h) {
                curl_multi_remove_handle(r.multi, slots[i].h);
                curl_easy_cleanup(slots[i].h);
            }
    if (r.multi)
        curl_multi_cleanup(r.multi);
    curl_slist_free_all(r.headers);
    free(slots);
    free(r.lat_us);
    curl_global_cleanup();
    return rc;
}
