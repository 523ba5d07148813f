/*
 * Fuzz target: the openai provider's response parser
 * (worker/providers/openai.c). The input format is in prov.h.
 */
#define FUZZ_API "openai"
#include "prov.h"
