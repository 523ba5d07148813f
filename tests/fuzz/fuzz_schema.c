/*
 * Fuzz target: the JSON Schema validator (validators/schema/), schema and
 * instance both hostile. The input is a schema, a NUL byte, and an answer.
 * The schema is parsed, checked as a cascade's would be at load time
 * (val_schema_supported), and then the "schema" validator runs on the
 * answer exactly as a chain runs it, whatever the load-time check said: a
 * task's own schema reaches the validator without it.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "validators/val.h"

struct seen {
    int calls;
    int pass;
};

static void on_done(void *arg, const val_verdict *v)
{
    struct seen *s = arg;
    s->calls++;
    s->pass = v->pass;
    /* A failing verdict always says why, within its caps. */
    if (!v->pass && (!v->reason[0] || (v->message && strlen(v->message) > VAL_MESSAGE_MAX) ||
                     (v->evidence && strlen(v->evidence) > VAL_EVIDENCE_MAX)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *schema_text, *answer;
    size_t slen, alen;
    char err[512];
    fuzz_split(data, size, &schema_text, &slen, &answer, &alen);
    cJSON *schema = cJSON_ParseWithLength(schema_text, slen);
    if (schema) {
        val_schema_supported(schema, err, sizeof err);
        const val_ops *ops = val_find("schema");
        val_input in;
        memset(&in, 0, sizeof in);
        in.task_id = "fuzz";
        in.kind = "json";
        in.answer = answer;
        in.schema = schema;
        struct seen s = {0, 0};
        /* The schema validator runs in-process: it needs no environment. */
        if (ops->start(NULL, &in, answer, on_done, &s) == 0 && s.calls != 1)
            abort();
        cJSON_Delete(schema);
    }
    free(schema_text);
    free(answer);
    return 0;
}
