/*
 * What the libFuzzer targets of tests/fuzz/ share: turning the fuzzer's
 * bytes into the shapes the code under test reads (a NUL-terminated string,
 * parts split at a NUL byte, a file path), and a scratch directory for the
 * targets that need files at start-up. Every helper here aborts on a failure
 * of its own (a full disk, no memfd), so a crash is never blamed on the code
 * under test by mistake: the message says it was the harness.
 */
#ifndef FUZZ_H
#define FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* The entry points libFuzzer calls (declared here, as clang does not). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A NUL-terminated copy of n bytes of data (which may hold NULs). Caller frees. */
char *fuzz_cstr(const uint8_t *data, size_t n);

/*
 * Splits data at its first NUL byte: *a is what comes before it, *b what comes
 * after (empty when there is no NUL). Both are NUL-terminated copies that the
 * caller frees. Targets with two inputs (a schema and an instance, a models
 * file and a cascade) take them this way, so a seed is two texts and a NUL.
 */
void fuzz_split(const uint8_t *data, size_t size, char **a, size_t *alen, char **b, size_t *blen);

/*
 * A file holding exactly these bytes, for loaders that take a path: an
 * anonymous memory file (memfd), so nothing touches the disk and nothing is
 * left behind. Writes its path ("/proc/self/fd/N") into path (size >= 32) and
 * returns the descriptor, which the caller closes.
 */
int fuzz_file(const void *data, size_t size, char path[32]);

/*
 * A fresh directory under $TMPDIR (else /dev/shm, else /tmp) that is removed with everything
 * in it when the process exits. Caller frees the string.
 */
char *fuzz_tmpdir(const char *tag);

/* Writes text to dir/name; aborts on failure. */
void fuzz_write(const char *dir, const char *name, const char *text);

#endif
