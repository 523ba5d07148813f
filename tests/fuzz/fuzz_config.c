/*
 * Fuzz target: the models and cascade loaders (worker/config.c). The input is
 * a models file, a NUL byte, and one cascade file; both are loaded as files
 * (memfds), the cascade the way `replay --cascade FILE` names one. The last
 * byte picks the mode: odd loads online (${VAR} expanded, keys read from the
 * environment this target sets up), even offline. On success every cascade is
 * looked up by name and by match, as the driver does.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* What the seeds' ${VAR} and key_env name; FUZZ_UNSET stays unset. */
    setenv("MOCK_URL", "http://127.0.0.1:9", 1);
    setenv("FUZZ_KEY", "fake-fuzz-key", 1);
    setenv("DEEPSEEK_API_KEY", "fake-fuzz-key", 1);
    setenv("ANTHROPIC_API_KEY", "fake-fuzz-key", 1);
    unsetenv("FUZZ_UNSET");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *models, *cascade;
    size_t mlen, clen;
    char mpath[32], cpath[32];
    char err[1024];
    wk_config cfg;
    int mode = size && (data[size - 1] & 1) ? WK_CONFIG_ONLINE : WK_CONFIG_OFFLINE;

    fuzz_split(data, size, &models, &mlen, &cascade, &clen);
    int mfd = fuzz_file(models, mlen, mpath);
    int cfd = fuzz_file(cascade, clen, cpath);
    err[0] = '\0';
    int rc = wk_config_load(&cfg, mpath, cpath, mode, err, sizeof err);
    if (rc != 0) {
        /* Every refusal names the file (the message starts with a path). */
        if (strncmp(err, "/proc/self/fd/", 14) != 0)
            abort();
    } else {
        for (int i = 0; i < cfg.ncascades; i++) {
            const wk_cascade *c = &cfg.cascades[i];
            if (wk_config_cascade(&cfg, c->name) == NULL)
                abort();
            wk_config_match(&cfg, c->match_kind ? c->match_kind : "code", c->match_language);
            for (int t = 0; t < c->ntiers; t++)
                if (wk_config_model(&cfg, c->tiers[t].model->name) != c->tiers[t].model)
                    abort();
        }
        wk_config_free(&cfg);
    }
    close(mfd);
    close(cfd);
    free(models);
    free(cascade);
    return 0;
}
