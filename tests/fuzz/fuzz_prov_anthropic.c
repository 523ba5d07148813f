/*
 * Fuzz target: the anthropic provider's response parser
 * (worker/providers/anthropic.c). The input format is in prov.h.
 */
#define FUZZ_API "anthropic"
#include "prov.h"
