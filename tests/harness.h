/*
 * What the end-to-end tests share: a scratch directory, running a command
 * with a time limit, starting and stopping the mock model server, and
 * reading JSONL. Every wait is bounded.
 */
#ifndef TEST_HARNESS_H
#define TEST_HARNESS_H

#include <cjson/cJSON.h>
#include <sys/types.h>

typedef struct h_mock {
    pid_t pid;
    int port;
    char url[64];
} h_mock;

/* Reads CASCADE_BIN, MOCK_BIN and SRC_DIR; makes the scratch dir. 0 or -1. */
int h_setup(void);
/* Stops any mock still running and removes the scratch dir. */
void h_teardown(void);
/* The two as cmocka group setup and teardown, for tests that need nothing more. */
int h_group_setup(void **state);
int h_group_teardown(void **state);

const char *h_cascade_bin(void);
const char *h_src(void);
/* A path in the scratch dir, or in the source tree; caller frees. */
char *h_tmp(const char *name);
char *h_srcpath(const char *name);

void h_sleep_ms(long ms);
/* Runs argv, stdout and stderr to files (NULL: /dev/null); returns the exit status. */
int h_run(char *const argv[], const char *out, const char *err, int timeout_s);
/* Starts argv in the background; returns its pid. */
pid_t h_spawn(char *const argv[], const char *out, const char *err);
/* Waits up to timeout_ms for pid; returns the exit status, or -1 if still running. */
int h_wait(pid_t pid, long timeout_ms);

/*
 * Starts build/mock-llm on a free port with the recordings, the log and any
 * extra arguments (NULL-terminated); sets MOCK_URL. Fails the test on error.
 */
void h_mock_start(h_mock *m, const char *recordings, const char *log, const char *const *extra);
void h_mock_stop(h_mock *m);

char *h_slurp(const char *path);                   /* "" when missing; caller frees */
char *h_write(const char *name, const char *text); /* in the scratch dir; returns the path */
cJSON *h_jsonl(const char *path);                  /* an array of the lines' objects */
/* The element of arr whose field key is the string val; NULL when none. */
const cJSON *h_find(const cJSON *arr, const char *key, const char *val);
const char *h_str(const cJSON *o, const char *key);
/* How many elements of arr have the string val in field key. */
int h_count(const cJSON *arr, const char *key, const char *val);

/* ---- config setup shared by the run tests ---------------------------------- */
/* Providers "mock" (MOCK_URL, no key); models cheap (0.5/1, 200 tok) and mid (5/10). */
extern const char *const h_models_cheap_mid;
/*
 * h_setup, then makes the scratch "cascades" dir and writes models_json to
 * models.json. *cdir and *models are the two paths; the caller frees them
 * (h_config_teardown does). 0 or -1.
 */
int h_config_setup(const char *models_json, char **cdir, char **models);
/* h_teardown, then frees cdir and models (either may be NULL). */
void h_config_teardown(char *cdir, char *models);

#endif
