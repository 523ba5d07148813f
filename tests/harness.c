/*
 * The end-to-end test harness (see harness.h).
 */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/util.h"

static const char *cascade_bin, *mock_bin, *src;
static char dir[256];
static pid_t mocks[16];

int h_setup(void)
{
    cascade_bin = getenv("CASCADE_BIN");
    mock_bin = getenv("MOCK_BIN");
    src = getenv("SRC_DIR");
    if (!cascade_bin || !mock_bin || !src) {
        fprintf(stderr, "set CASCADE_BIN, MOCK_BIN and SRC_DIR (make test does)\n");
        return -1;
    }
    snprintf(dir, sizeof dir, "/tmp/cascade-test-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

void h_teardown(void)
{
    for (size_t i = 0; i < sizeof mocks / sizeof mocks[0]; i++)
        if (mocks[i] > 0) {
            kill(mocks[i], SIGKILL);
            waitpid(mocks[i], NULL, 0);
            mocks[i] = 0;
        }
    if (dir[0]) {
        char *cmd = wk_xasprintf("rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
        free(cmd);
    }
}

int h_group_setup(void **state)
{
    (void)state;
    return h_setup();
}

int h_group_teardown(void **state)
{
    (void)state;
    h_teardown();
    return 0;
}

const char *h_cascade_bin(void)
{
    return cascade_bin;
}
const char *h_src(void)
{
    return src;
}

char *h_tmp(const char *name)
{
    return wk_xasprintf("%s/%s", dir, name);
}

char *h_srcpath(const char *name)
{
    return wk_xasprintf("%s/%s", src, name);
}

void h_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

pid_t h_spawn(char *const argv[], const char *out, const char *err)
{
    pid_t pid = fork();
    if (pid == 0) {
        int fo = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fo, 1);
        dup2(fe, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

int h_wait(pid_t pid, long timeout_ms)
{
    int status;
    for (long i = 0; i <= timeout_ms / 20; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        h_sleep_ms(20);
    }
    return -1;
}

int h_run(char *const argv[], const char *out, const char *err, int timeout_s)
{
    pid_t pid = h_spawn(argv, out, err);
    int st = h_wait(pid, timeout_s * 1000L);
    if (st < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        fail_msg("%s timed out after %d s", argv[0], timeout_s);
    }
    return st;
}

void h_mock_start(h_mock *m, const char *recordings, const char *log, const char *const *extra)
{
    char *portf = h_tmp("mock.port");
    unlink(portf);
    const char *argv[40] = {mock_bin, "--port",       "0",       "--port-file",
                            portf,    "--recordings", recordings};
    int n = 7;
    if (log) {
        argv[n++] = "--log";
        argv[n++] = log;
    }
    for (int i = 0; extra && extra[i] && n < 38; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    char *err = h_tmp("mock.err");
    m->pid = h_spawn((char *const *)argv, NULL, err);
    for (size_t i = 0; i < sizeof mocks / sizeof mocks[0]; i++)
        if (mocks[i] <= 0) {
            mocks[i] = m->pid;
            break;
        }
    m->port = 0;
    for (int i = 0; i < 200 && !m->port; i++) {
        char *p = h_slurp(portf);
        m->port = atoi(p);
        free(p);
        if (!m->port)
            h_sleep_ms(25);
    }
    if (!m->port) {
        char *e = h_slurp(err);
        fail_msg("mock-llm did not start: %s", e);
    }
    snprintf(m->url, sizeof m->url, "http://127.0.0.1:%d", m->port);
    setenv("MOCK_URL", m->url, 1);
    free(portf);
    free(err);
}

void h_mock_stop(h_mock *m)
{
    if (m->pid <= 0)
        return;
    kill(m->pid, SIGTERM);
    if (h_wait(m->pid, 5000) < 0) {
        kill(m->pid, SIGKILL);
        waitpid(m->pid, NULL, 0);
    }
    for (size_t i = 0; i < sizeof mocks / sizeof mocks[0]; i++)
        if (mocks[i] == m->pid)
            mocks[i] = 0;
    m->pid = 0;
}

char *h_slurp(const char *path)
{
    char *s = NULL;
    size_t n;
    if (wk_read_file(path, 256u << 20, &s, &n) != 0)
        return wk_xstrdup("");
    return s;
}

char *h_write(const char *name, const char *text)
{
    char *p = h_tmp(name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

cJSON *h_jsonl(const char *path)
{
    char *s = h_slurp(path);
    cJSON *arr = cJSON_CreateArray();
    char *save = NULL;
    for (char *line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        if (!j)
            fail_msg("%s: a line is not JSON: %.200s", path, line);
        cJSON_AddItemToArray(arr, j);
    }
    free(s);
    return arr;
}

const cJSON *h_find(const cJSON *arr, const char *key, const char *val)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, key);
        if (cJSON_IsString(f) && strcmp(f->valuestring, val) == 0)
            return e;
    }
    return NULL;
}

const char *h_str(const cJSON *o, const char *key)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

int h_count(const cJSON *arr, const char *key, const char *val)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *v = h_str(e, key);
        n += v && strcmp(v, val) == 0;
    }
    return n;
}

const char *const h_models_cheap_mid =
    "{\"providers\":{\"mock\":{\"api\":\"openai\",\"base_url\":\"${MOCK_URL}/v1\","
    "\"key_env\":null}},\"models\":{"
    "\"cheap\":{\"provider\":\"mock\",\"input_usd_per_mtok\":0.5,\"output_usd_per_mtok\":1,"
    "\"max_tokens\":200},"
    "\"mid\":{\"provider\":\"mock\",\"input_usd_per_mtok\":5,\"output_usd_per_mtok\":10,"
    "\"max_tokens\":200}}}";

int h_config_setup(const char *models_json, char **cdir, char **models)
{
    if (h_setup())
        return -1;
    *cdir = h_tmp("cascades");
    mkdir(*cdir, 0755);
    *models = h_write("models.json", models_json);
    return 0;
}

void h_config_teardown(char *cdir, char *models)
{
    h_teardown();
    free(cdir);
    free(models);
}
