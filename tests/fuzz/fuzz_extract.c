/*
 * Fuzz target: code extraction (val_extract_code in validators/common.c),
 * which takes the code out of a model's answer: fenced blocks, tags, cut-off
 * answers. The input is the answer; an answer with a NUL byte ends there, as
 * it would once it is a C string.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "validators/val.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *answer = fuzz_cstr(data, size);
    char *code = val_extract_code(answer);
    /* The code is taken from the answer (a closing newline at most is added). */
    if (!code || strlen(code) > strlen(answer) + 1)
        abort();
    free(code);
    free(answer);
    return 0;
}
