/*
 * Fuzz target: the pattern engine of the schema validator
 * (validators/schema/schema_re.c), which compiles a schema's "pattern" and
 * "patternProperties" and runs them on answers. The input is a pattern, a
 * NUL byte, and a subject. The engine promises linear time: the search runs
 * under a step budget and must stop within it.
 */
#include "fuzz.h"

#include <stdlib.h>

#include "validators/schema/schema_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *pattern, *subject;
    size_t plen, slen;
    char err[256];
    val__re *re = NULL;
    fuzz_split(data, size, &pattern, &plen, &subject, &slen);
    if (val__re_compile(pattern, &re, err, sizeof err) == 0) {
        int64_t budget = 1000000;
        int rc = val__re_search(re, subject, slen, &budget);
        if (rc != 0 && rc != 1 && rc != WK_ETOOBIG)
            abort();
        if (budget < 0)
            abort();
        val__re_free(re);
    } else if (re) {
        abort();
    }
    free(pattern);
    free(subject);
    return 0;
}
