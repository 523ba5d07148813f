/*
 * Fuzz target: the recordings loader (lib/recordings.c), which mock-llm and
 * `cascade replay` read. The input is the file; it is loaded, and on success
 * looked up the way a replay does (next, peek, rewind), with the task and
 * model names the seeds use and with names no seed has.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/recordings.h"

static const char *const names[][2] = {
    {"t", "m"}, {"py/fizzbuzz", "swift-mini"}, {"", ""}, {"t", "other"}, {"x", "m"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[32];
    char err[512];
    wk_recs *r = NULL;
    int fd = fuzz_file(data, size, path);
    err[0] = '\0';
    int rc = wk_recs_load(path, &r, err, sizeof err);
    close(fd);
    if (rc != 0) {
        /* A refusal always says why. */
        if (r || !err[0])
            abort();
        return 0;
    }
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
            for (int k = 0; k < 3; k++) {
                const wk_rec *peek = wk_recs_peek(r, names[i][0], names[i][1], k);
                const wk_rec *next = wk_recs_next(r, names[i][0], names[i][1], k);
                /* peek says what next returns, and a recording answers for its own pair. */
                if (peek != next)
                    abort();
                if (next && (strcmp(next->task, names[i][0]) || strcmp(next->model, names[i][1]) ||
                             !next->answer || !next->finish_reason))
                    abort();
            }
        wk_recs_rewind(r);
    }
    wk_recs_free(r);
    return 0;
}
