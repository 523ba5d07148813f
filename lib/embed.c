/*
 * The hashed bag of words of embed.h: FNV-1a of each lowercased word and of
 * each pair of neighbouring words, folded into dim places with a sign.
 */
#include "embed.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#define FNV_OFFSET 1469598103934665603ULL
#define FNV_PRIME 1099511628211ULL

static uint64_t fnv(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        h = (h ^ (unsigned char)c) * FNV_PRIME;
    }
    return h;
}

static void bump(float *out, int dim, uint64_t h)
{
    /* The low bits pick the place, a high bit the sign (a feature hashing trick). */
    out[h % (uint64_t)dim] += (h >> 63) ? -1.0f : 1.0f;
}

static int is_word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

void wk_embed_hash(const char *text, size_t len, float *out, int dim)
{
    if (dim < 1)
        return;
    memset(out, 0, (size_t)dim * sizeof *out);
    uint64_t prev = 0;
    int have_prev = 0;
    size_t i = 0;
    while (i < len) {
        while (i < len && !is_word(text[i]))
            i++;
        size_t start = i;
        while (i < len && is_word(text[i]))
            i++;
        if (i == start)
            break;
        uint64_t h = fnv(FNV_OFFSET, text + start, i - start);
        bump(out, dim, h);
        if (have_prev)
            bump(out, dim, (prev * 31 + h) ^ 0x9e3779b97f4a7c15ULL);
        prev = h;
        have_prev = 1;
    }
    double n2 = 0;
    for (int d = 0; d < dim; d++)
        n2 += (double)out[d] * out[d];
    if (n2 > 0) {
        float inv = (float)(1.0 / sqrt(n2));
        for (int d = 0; d < dim; d++)
            out[d] *= inv;
    }
}
