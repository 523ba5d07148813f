/*
 * Runs the official JSON-Schema-Test-Suite (draft2020-12) against the schema
 * validator, through the same entry points the worker uses: a schema that
 * val_schema_supported refuses is counted as skipped with the reason, every
 * other case goes through the "schema" validator's start() with the case's
 * data printed as the answer, and its verdict is compared with `valid`.
 *
 * Prints passed/failed/skipped per file and the totals, then the skipped
 * groups and the failures. Exits 1 when a case fails in a file of a keyword
 * we claim (or such a file is missing), 2 on a usage or I/O error, else 0.
 *
 *   build/tools/schema-conformance DIR [-v]
 *
 * DIR is .../json-schema-test-suite/draft2020-12; -v lists every skipped group.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validators/val.h"

/* A suite file is tens of kilobytes; anything far bigger is not one. */
#define FILE_CAP (8u << 20)
/* Failures printed in full; the counts are always complete. */
#define SHOW_FAILURES 40

/*
 * The files of the keywords we claim (every case must pass or be skipped for
 * an unsupported schema feature named in the output). refRemote and
 * vocabulary need remote schemas and custom meta-schemas, which we refuse.
 */
static const char *const claimed[] = {
    "additionalProperties.json",
    "allOf.json",
    "anchor.json",
    "anyOf.json",
    "boolean_schema.json",
    "const.json",
    "contains.json",
    "content.json",
    "default.json",
    "defs.json",
    "dependentRequired.json",
    "dependentSchemas.json",
    "dynamicRef.json",
    "enum.json",
    "exclusiveMaximum.json",
    "exclusiveMinimum.json",
    "format.json",
    "if-then-else.json",
    "infinite-loop-detection.json",
    "items.json",
    "maxContains.json",
    "maxItems.json",
    "maxLength.json",
    "maxProperties.json",
    "maximum.json",
    "minContains.json",
    "minItems.json",
    "minLength.json",
    "minProperties.json",
    "minimum.json",
    "multipleOf.json",
    "not.json",
    "oneOf.json",
    "pattern.json",
    "patternProperties.json",
    "prefixItems.json",
    "properties.json",
    "propertyNames.json",
    "ref.json",
    "required.json",
    "type.json",
    "unevaluatedItems.json",
    "unevaluatedProperties.json",
    "uniqueItems.json",
    NULL,
};

static int is_claimed(const char *name)
{
    for (int i = 0; claimed[i]; i++)
        if (strcmp(claimed[i], name) == 0)
            return 1;
    return 0;
}

typedef struct outcome {
    int calls;
    int pass;
    char reason[VAL_REASON_MAX];
    char message[VAL_MESSAGE_MAX + 1];
} outcome;

static void on_done(void *arg, const val_verdict *v)
{
    outcome *o = arg;
    o->calls++;
    o->pass = v->pass;
    snprintf(o->reason, sizeof o->reason, "%s", v->reason);
    snprintf(o->message, sizeof o->message, "%s", v->message ? v->message : "");
}

/*
 * Prints v as JSON text for the validator to parse. Not cJSON_Print: it
 * writes 2^53 as 9.00719925474099e+15 (it accepts a round trip that is only
 * close), which would change the case. Numbers get all 17 digits here.
 */
static void print_json(FILE *f, const cJSON *v)
{
    if (cJSON_IsNumber(v)) {
        fprintf(f, "%.17g", v->valuedouble);
    } else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        int obj = cJSON_IsObject(v);
        fputc(obj ? '{' : '[', f);
        for (const cJSON *e = v->child; e; e = e->next) {
            if (obj) {
                cJSON *key = cJSON_CreateString(e->string);
                char *k = cJSON_PrintUnformatted(key);
                fprintf(f, "%s:", k);
                cJSON_free(k);
                cJSON_Delete(key);
            }
            print_json(f, e);
            if (e->next)
                fputc(',', f);
        }
        fputc(obj ? '}' : ']', f);
    } else {
        char *s = cJSON_PrintUnformatted(v);
        fputs(s, f);
        cJSON_free(s);
    }
}

static char *json_text(const cJSON *v)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    print_json(f, v);
    fclose(f);
    return out;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

typedef struct totals {
    int passed, failed, skipped;
} totals;

int main(int argc, char **argv)
{
    int rc = 2;
    int verbose = argc > 2 && strcmp(argv[2], "-v") == 0;
    char **names = NULL;
    int n_names = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [-v]   (DIR: json-schema-test-suite/draft2020-12)\n",
                argv[0]);
        return 2;
    }
    DIR *d = opendir(argv[1]);
    if (!d) {
        fprintf(stderr,
                "conformance-schema: %s is absent; point DATA at the shared data folder "
                "(see ../shared/data/README.md)\n",
                argv[1]);
        return 2;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len > 5 && strcmp(de->d_name + len - 5, ".json") == 0) {
            names = wk_xrealloc(names, (size_t)(n_names + 1) * sizeof *names);
            names[n_names++] = wk_xstrdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, (size_t)n_names, sizeof *names, cmp_str);

    const val_ops *ops = val_find("schema");
    totals all = {0}, mine = {0};
    int shown = 0, claimed_failed = 0;
    char *skips = NULL;
    size_t skips_len = 0;
    FILE *skipf = open_memstream(&skips, &skips_len);
    char *fails = NULL;
    size_t fails_len = 0;
    FILE *failf = open_memstream(&fails, &fails_len);

    printf("%-30s %-7s %6s %6s %7s\n", "file", "claimed", "passed", "failed", "skipped");
    for (int f = 0; f < n_names; f++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], names[f]);
        char *text = NULL;
        size_t len = 0;
        if (wk_read_file(path, FILE_CAP, &text, &len) < 0) {
            fprintf(stderr, "conformance-schema: cannot read %s\n", path);
            goto cleanup;
        }
        cJSON *groups = cJSON_Parse(text);
        free(text);
        if (!cJSON_IsArray(groups)) {
            fprintf(stderr, "conformance-schema: %s is not a JSON array\n", path);
            cJSON_Delete(groups);
            goto cleanup;
        }
        totals t = {0};
        const cJSON *g;
        cJSON_ArrayForEach(g, groups)
        {
            const cJSON *schema = cJSON_GetObjectItemCaseSensitive(g, "schema");
            const cJSON *tests = cJSON_GetObjectItemCaseSensitive(g, "tests");
            const cJSON *gdesc = cJSON_GetObjectItemCaseSensitive(g, "description");
            char err[512];
            if (val_schema_supported(schema, err, sizeof err) < 0) {
                int n = cJSON_GetArraySize(tests);
                t.skipped += n;
                fprintf(skipf, "  %s: \"%s\" (%d cases): %s\n", names[f],
                        cJSON_IsString(gdesc) ? gdesc->valuestring : "?", n, err);
                continue;
            }
            const cJSON *tc;
            cJSON_ArrayForEach(tc, tests)
            {
                const cJSON *data = cJSON_GetObjectItemCaseSensitive(tc, "data");
                int want = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(tc, "valid"));
                const cJSON *tdesc = cJSON_GetObjectItemCaseSensitive(tc, "description");
                char *answer = json_text(data);
                val_input in = {.task_id = "conformance",
                                .kind = "json",
                                .language = "json",
                                .answer = answer,
                                .schema = schema};
                outcome o = {0};
                int started = ops->start(NULL, &in, answer, on_done, &o);
                int ok = started == 0 && o.calls == 1 && o.pass == want &&
                         (o.pass || strcmp(o.reason, "schema_mismatch") == 0);
                if (ok) {
                    t.passed++;
                } else {
                    t.failed++;
                    if (shown++ < SHOW_FAILURES)
                        fprintf(failf,
                                "  %s: \"%s\" / \"%s\": want %s, got %s %s %s\n    data: %.200s\n",
                                names[f], cJSON_IsString(gdesc) ? gdesc->valuestring : "?",
                                cJSON_IsString(tdesc) ? tdesc->valuestring : "?",
                                want ? "valid" : "invalid", o.pass ? "valid" : "invalid", o.reason,
                                o.message, answer);
                }
                free(answer);
            }
        }
        cJSON_Delete(groups);
        int mine_file = is_claimed(names[f]);
        printf("%-30s %-7s %6d %6d %7d\n", names[f], mine_file ? "yes" : "no", t.passed, t.failed,
               t.skipped);
        all.passed += t.passed;
        all.failed += t.failed;
        all.skipped += t.skipped;
        if (mine_file) {
            mine.passed += t.passed;
            mine.failed += t.failed;
            mine.skipped += t.skipped;
            if (t.failed)
                claimed_failed = 1;
        }
    }
    printf("%-30s %-7s %6d %6d %7d\n", "total", "", all.passed, all.failed, all.skipped);
    printf("%-30s %-7s %6d %6d %7d\n", "total (claimed files)", "", mine.passed, mine.failed,
           mine.skipped);

    /* A claimed file that is not there is a failure too: the suite must be complete. */
    for (int i = 0; claimed[i]; i++) {
        const char *c = claimed[i];
        if (!bsearch(&c, names, (size_t)n_names, sizeof *names, cmp_str)) {
            printf("missing claimed file: %s\n", c);
            claimed_failed = 1;
        }
    }
    fclose(skipf);
    fclose(failf);
    skipf = failf = NULL;
    if (skips_len) {
        if (verbose) {
            printf("\nskipped groups (schema refused by val_schema_supported):\n%s", skips);
        } else {
            /* Without -v, only the skips inside claimed files (the ones that need explaining). */
            printf("\nskipped groups in claimed files (run with -v for all):\n");
            char *line = skips;
            while (line && *line) {
                char *nl = strchr(line, '\n');
                char file[128];
                if (sscanf(line, "  %127[^:]", file) == 1 && is_claimed(file))
                    printf("%.*s\n", (int)(nl ? nl - line : (long)strlen(line)), line);
                line = nl ? nl + 1 : NULL;
            }
        }
    }
    if (fails_len)
        printf("\nfailures (first %d):\n%s", SHOW_FAILURES, fails);
    printf("\nconformance-schema: %s\n",
           claimed_failed ? "FAILED (a claimed keyword file has failures)"
                          : "every case in the claimed keyword files passed or was skipped "
                            "for a named unsupported feature");
    rc = claimed_failed ? 1 : 0;
cleanup:
    if (skipf)
        fclose(skipf);
    if (failf)
        fclose(failf);
    free(skips);
    free(fails);
    for (int i = 0; i < n_names; i++)
        free(names[i]);
    free(names);
    return rc;
}
