/*
 * Fuzz target: the gemini provider's response parser
 * (worker/providers/gemini.c). The input format is in prov.h.
 */
#define FUZZ_API "gemini"
#include "prov.h"
