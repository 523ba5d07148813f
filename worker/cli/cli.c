/*
 * Parsing option values, shared by every subcommand, so "--timeout 1.5x" is
 * refused the same way everywhere.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>

int wk_cli_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int wk_cli_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= lo && v <= hi))
        return -1;
    *out = v;
    return 0;
}

int wk_cli_secs(const char *s, double lo, double hi, long *ms)
{
    double v;
    if (wk_cli_double(s, lo, hi, &v))
        return -1;
    *ms = (long)(v * 1000 + 0.5);
    return 0;
}
