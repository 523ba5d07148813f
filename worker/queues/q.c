/*
 * The queue backend table (see q.h).
 */
#include "q.h"

#include <stdlib.h>

#include "redis.h"

extern const q_ops q_jsonl;

/* Redis first: the JSONL backend takes any other string as a path. */
static const q_ops *const q_table[] = {&q_redis, &q_jsonl, NULL};

const q_ops *q_find(const char *url)
{
    for (int i = 0; q_table[i]; i++)
        if (q_table[i]->accepts(url))
            return q_table[i];
    return NULL;
}

void q_item_free(q_item *it)
{
    if (!it)
        return;
    free(it->line);
    free(it->receipt);
    free(it->dup_of);
    free(it);
}
