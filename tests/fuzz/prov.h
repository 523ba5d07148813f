/*
 * The body of the three provider targets (fuzz_prov_openai.c and its
 * siblings): a response, as the HTTP layer hands it over, goes through the
 * provider's parse(). Each target includes this file after defining
 * FUZZ_API, so the three differ only in the wire format they fuzz.
 *
 * Input: two bytes of HTTP status (big-endian, taken modulo 600, so the
 * 2xx, 4xx and 5xx branches are all reachable), then the body. The body is
 * passed NUL-terminated, as worker/net/http.c gives it (http.h says so).
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "worker/providers/prov.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    long status = (long)(((unsigned)data[0] << 8 | data[1]) % 600);
    char *body = fuzz_cstr(data + 2, size - 2);
    const prov_ops *ops = prov_find(FUZZ_API);
    prov_response out;
    char reason[PROV_REASON_MAX];
    char msg[256];
    memset(&out, 0, sizeof out);
    reason[0] = msg[0] = '\0';

    int rc = ops->parse(status, body, size - 2, &out, reason, msg, sizeof msg);
    /* What callers rely on: a reason on failure, text on success, both strings bounded. */
    if (rc != 0 && (!reason[0] || memchr(reason, 0, sizeof reason) == NULL))
        abort();
    if (rc == 0 && !out.text)
        abort();
    if (memchr(msg, 0, sizeof msg) == NULL)
        abort();
    prov_response_clear(&out);
    free(body);
    return 0;
}
