/*
 * The schema validator: the answer must be JSON that matches a JSON Schema
 * (draft 2020-12 semantics for the keywords below). We implement a small,
 * explicit subset; val_schema_supported rejects any other keyword so a schema
 * is never half-checked in silence.
 */
#include "val_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keywords that only annotate; accepted and ignored. */
static const char *const annotation_kw[] = {
    "$schema", "$id", "title", "description", "$comment", "default", "examples", NULL,
};

/* Keywords we check. Anything else is refused by val_schema_supported. */
static const char *const checked_kw[] = {
    "type",      "enum",      "const",    "properties", "required",
    "additionalProperties",   "items",    "minItems",   "maxItems",
    "minLength", "maxLength", "minimum",  "maximum",    "exclusiveMinimum",
    "exclusiveMaximum",       NULL,
};

static const char *const type_names[] = {
    "null", "boolean", "object", "array", "number", "string", "integer", NULL,
};

/* How many failures the evidence lists; the message carries the first. */
#define MAX_ERRORS 8
/* Values quoted in messages are cut to this many bytes. */
#define VALUE_SHOW_MAX 80

static int in_list(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

/* ---- load-time check ------------------------------------------------------ */

static int is_count(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && floor(v->valuedouble) == v->valuedouble;
}

static int bad(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen)
        snprintf(err, errlen, fmt, a, b);
    return WK_EINVAL;
}

static int check_type_value(const cJSON *t)
{
    if (cJSON_IsString(t))
        return in_list(type_names, t->valuestring);
    if (!cJSON_IsArray(t) || cJSON_GetArraySize(t) == 0)
        return 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, t)
    {
        if (!cJSON_IsString(e) || !in_list(type_names, e->valuestring))
            return 0;
    }
    return 1;
}

static int supported_at(const cJSON *schema, wk_buf *path, char *err, size_t errlen)
{
    const char *at = path->len ? path->buf : "(root)";
    if (cJSON_IsBool(schema))
        return 0;
    if (!cJSON_IsObject(schema))
        return bad(err, errlen, "schema at %s must be an object or a boolean%s", at, "");
    const cJSON *kw;
    cJSON_ArrayForEach(kw, schema)
    {
        const char *k = kw->string;
        if (in_list(annotation_kw, k))
            continue;
        if (!in_list(checked_kw, k))
            return bad(err, errlen, "unsupported JSON Schema keyword \"%s\" at %s", k, at);
        int ok = 1;
        if (strcmp(k, "type") == 0)
            ok = check_type_value(kw);
        else if (strcmp(k, "enum") == 0)
            ok = cJSON_IsArray(kw);
        else if (strcmp(k, "required") == 0) {
            const cJSON *e;
            ok = cJSON_IsArray(kw);
            cJSON_ArrayForEach(e, kw) ok = ok && cJSON_IsString(e);
        } else if (strcmp(k, "properties") == 0)
            ok = cJSON_IsObject(kw);
        else if (strcmp(k, "items") == 0 || strcmp(k, "additionalProperties") == 0)
            ok = cJSON_IsObject(kw) || cJSON_IsBool(kw); /* not the draft-07 tuple form */
        else if (strncmp(k, "min", 3) == 0 || strncmp(k, "max", 3) == 0)
            ok = strstr(k, "imum") ? cJSON_IsNumber(kw) : is_count(kw);
        else if (strncmp(k, "exclusive", 9) == 0)
            ok = cJSON_IsNumber(kw); /* 2020-12: a number, not draft-04's boolean */
        if (!ok)
            return bad(err, errlen, "JSON Schema keyword \"%s\" at %s has a value we cannot use",
                       k, at);
    }

    /* Recurse into the subschemas, extending the keyword path as we go. */
    size_t mark = path->len;
    int rc = 0;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    const cJSON *p;
    cJSON_ArrayForEach(p, props)
    {
        wk_buf_appendf(path, "/properties/%s", p->string);
        rc = supported_at(p, path, err, errlen);
        path->len = mark;
        if (path->buf)
            path->buf[mark] = '\0';
        if (rc)
            return rc;
    }
    static const char *const sub[] = {"items", "additionalProperties"};
    for (int i = 0; i < 2; i++) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(schema, sub[i]);
        if (!s)
            continue;
        wk_buf_appendf(path, "/%s", sub[i]);
        rc = supported_at(s, path, err, errlen);
        path->len = mark;
        if (path->buf)
            path->buf[mark] = '\0';
        if (rc)
            return rc;
    }
    return 0;
}

int val_schema_supported(const cJSON *schema, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!schema)
        return bad(err, errlen, "no schema%s%s", "", "");
    wk_buf path;
    /* Pointers into a schema are short; a runaway one only truncates the message. */
    wk_buf_init(&path, 4096);
    int rc = supported_at(schema, &path, err, errlen);
    wk_buf_release(&path);
    return rc;
}

/* ---- validation ---------------------------------------------------------- */

typedef struct check {
    wk_buf path;   /* JSON pointer of the instance being checked */
    wk_buf errs;   /* one failure per line */
    int n_errs;
    char *first;   /* the first failure; owned */
} check;

/* Appends a JSON-pointer token, escaped as RFC 6901 says (~ is ~0, / is ~1). */
static void path_push(check *c, const char *token)
{
    wk_buf_append(&c->path, "/", 1);
    for (const char *s = token; *s; s++) {
        if (*s == '~')
            wk_buf_append(&c->path, "~0", 2);
        else if (*s == '/')
            wk_buf_append(&c->path, "~1", 2);
        else
            wk_buf_append(&c->path, s, 1);
    }
}

static void path_pop(check *c, size_t mark)
{
    c->path.len = mark;
    if (c->path.buf)
        c->path.buf[mark] = '\0';
}

/* A short JSON rendering of v for a message. Caller frees. */
static char *show(const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    if (!s)
        return wk_xstrdup("?");
    if (strlen(s) > VALUE_SHOW_MAX) {
        size_t cut = val__utf8_floor(s, VALUE_SHOW_MAX - 3);
        memcpy(s + cut, "...", 4);
    }
    char *out = wk_xstrdup(s);
    cJSON_free(s);
    return out;
}

static const char *type_of(const cJSON *v)
{
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsObject(v))
        return "object";
    if (cJSON_IsArray(v))
        return "array";
    if (cJSON_IsNumber(v))
        return "number";
    return "string";
}

static void fail(check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(check *c, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char *line = wk_xasprintf("%s: %s", c->path.len ? c->path.buf : "(root)", what);
    if (!c->first)
        c->first = wk_xstrdup(line);
    if (c->n_errs < MAX_ERRORS)
        wk_buf_appendf(&c->errs, "%s\n", line);
    c->n_errs++;
    free(line);
}

static int type_matches(const char *t, const cJSON *v)
{
    if (strcmp(t, "integer") == 0)
        return cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
               floor(v->valuedouble) == v->valuedouble;
    if (strcmp(t, "number") == 0)
        return cJSON_IsNumber(v);
    return strcmp(t, type_of(v)) == 0;
}

/* Code points in a UTF-8 string: every byte that is not a continuation byte. */
static size_t utf8_count(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static void validate(check *c, const cJSON *schema, const cJSON *v)
{
    if (cJSON_IsBool(schema)) {
        if (cJSON_IsFalse(schema))
            fail(c, "no value is allowed here (schema false)");
        return;
    }
    const cJSON *kw;

    kw = cJSON_GetObjectItemCaseSensitive(schema, "type");
    if (kw) {
        int ok = 0;
        if (cJSON_IsString(kw)) {
            ok = type_matches(kw->valuestring, v);
        } else {
            const cJSON *t;
            cJSON_ArrayForEach(t, kw) ok = ok || type_matches(t->valuestring, v);
        }
        if (!ok) {
            char *want = cJSON_IsString(kw) ? wk_xstrdup(kw->valuestring) : show(kw);
            char *got = show(v);
            fail(c, "expected %s, got %s %s", want, type_of(v), got);
            free(want);
            free(got);
            /* Other keywords would only restate the type mismatch. */
            return;
        }
    }

    kw = cJSON_GetObjectItemCaseSensitive(schema, "enum");
    if (kw) {
        int ok = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, kw) ok = ok || cJSON_Compare(e, v, 1);
        if (!ok) {
            char *got = show(v), *want = show(kw);
            fail(c, "%s is not one of %s", got, want);
            free(got);
            free(want);
        }
    }

    kw = cJSON_GetObjectItemCaseSensitive(schema, "const");
    if (kw && !cJSON_Compare(kw, v, 1)) {
        char *got = show(v), *want = show(kw);
        fail(c, "%s is not the required value %s", got, want);
        free(got);
        free(want);
    }

    if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        static const struct {
            const char *kw;
            int sign;       /* +1: x must be >= bound; -1: x <= bound */
            int exclusive;
            const char *say;
        } bounds[] = {
            {"minimum", 1, 0, "less than the minimum"},
            {"maximum", -1, 0, "greater than the maximum"},
            {"exclusiveMinimum", 1, 1, "not greater than the exclusive minimum"},
            {"exclusiveMaximum", -1, 1, "not less than the exclusive maximum"},
        };
        for (int i = 0; i < 4; i++) {
            kw = cJSON_GetObjectItemCaseSensitive(schema, bounds[i].kw);
            if (!kw)
                continue;
            double d = (x - kw->valuedouble) * bounds[i].sign;
            if (d < 0 || (bounds[i].exclusive && d == 0)) {
                char *got = show(v), *lim = show(kw);
                fail(c, "%s is %s %s", got, bounds[i].say, lim);
                free(got);
                free(lim);
            }
        }
    }

    if (cJSON_IsString(v)) {
        size_t n = utf8_count(v->valuestring);
        kw = cJSON_GetObjectItemCaseSensitive(schema, "minLength");
        if (kw && (double)n < kw->valuedouble)
            fail(c, "%zu characters, at least %.0f expected", n, kw->valuedouble);
        kw = cJSON_GetObjectItemCaseSensitive(schema, "maxLength");
        if (kw && (double)n > kw->valuedouble)
            fail(c, "%zu characters, at most %.0f expected", n, kw->valuedouble);
    }

    if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        kw = cJSON_GetObjectItemCaseSensitive(schema, "minItems");
        if (kw && (double)n < kw->valuedouble)
            fail(c, "%d items, at least %.0f expected", n, kw->valuedouble);
        kw = cJSON_GetObjectItemCaseSensitive(schema, "maxItems");
        if (kw && (double)n > kw->valuedouble)
            fail(c, "%d items, at most %.0f expected", n, kw->valuedouble);
        kw = cJSON_GetObjectItemCaseSensitive(schema, "items");
        if (kw) {
            size_t mark = c->path.len;
            int i = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, v)
            {
                char idx[24];
                snprintf(idx, sizeof idx, "%d", i++);
                path_push(c, idx);
                validate(c, kw, e);
                path_pop(c, mark);
            }
        }
    }

    if (cJSON_IsObject(v)) {
        size_t mark = c->path.len;
        kw = cJSON_GetObjectItemCaseSensitive(schema, "required");
        const cJSON *r;
        cJSON_ArrayForEach(r, kw)
        {
            if (!cJSON_GetObjectItemCaseSensitive(v, r->valuestring)) {
                char *name = show(r);
                fail(c, "missing required property %s", name);
                free(name);
            }
        }
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
        const cJSON *extra = cJSON_GetObjectItemCaseSensitive(schema, "additionalProperties");
        const cJSON *m;
        cJSON_ArrayForEach(m, v)
        {
            const cJSON *sub = props ? cJSON_GetObjectItemCaseSensitive(props, m->string) : NULL;
            path_push(c, m->string);
            if (sub)
                validate(c, sub, m);
            else if (cJSON_IsFalse(extra))
                fail(c, "property not allowed (additionalProperties is false)");
            else if (extra)
                validate(c, extra, m);
            path_pop(c, mark);
        }
    }
}

/* 1-based line and column of byte offset `off` in s. */
static void line_col(const char *s, size_t off, unsigned *line, unsigned *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && s[i]; i++) {
        if (s[i] == '\n')
            (*line)++, *col = 1;
        else
            (*col)++;
    }
}

static int schema_start(val_env *env, const val_input *in, const char *code, val_done_cb done,
                        void *arg)
{
    (void)env;
    val_verdict v = {0};
    cJSON *doc = NULL;
    char *msg = NULL;
    char *ev = NULL;
    check c = {0};
    wk_buf_init(&c.path, 4096);
    wk_buf_init(&c.errs, VAL_EVIDENCE_MAX * 2);
    char err[256];

    if (!in->schema) {
        val_verdict_fail(&v, "schema", "no_schema",
                         "the task has no JSON Schema to check the answer against", NULL);
        goto report;
    }
    if (val_schema_supported(in->schema, err, sizeof err) < 0) {
        /* Refuse rather than check part of the schema and call it a pass. */
        val_verdict_fail(&v, "schema", "unsupported", err, NULL);
        goto report;
    }

    const char *end = NULL;
    /* ParseWithOpts: the WithLength variant rejects a buffer that ends at the value. */
    doc = cJSON_ParseWithOpts(code, &end, 1);
    if (!doc) {
        unsigned line, col;
        size_t off = end && end >= code ? (size_t)(end - code) : 0;
        line_col(code, off, &line, &col);
        msg = wk_xasprintf("the answer is not valid JSON (error at line %u:%u)", line, col);
        char *near = wk_xstrndup(code + off, strnlen(code + off, 60));
        ev = wk_xasprintf("JSON parse error at line %u:%u near: %s", line, col, near);
        free(near);
        val_verdict_fail(&v, "schema", "invalid_json", msg, ev);
        goto report;
    }

    validate(&c, in->schema, doc);
    if (!c.first) {
        val_verdict_pass(&v);
        goto report;
    }
    if (c.n_errs > MAX_ERRORS)
        wk_buf_appendf(&c.errs, "... and %d more\n", c.n_errs - MAX_ERRORS);
    val_verdict_fail(&v, "schema", "schema_mismatch", c.first, c.errs.buf);

report:
    done(arg, &v);
    val_verdict_clear(&v);
    cJSON_Delete(doc);
    free(msg);
    free(ev);
    free(c.first);
    wk_buf_release(&c.path);
    wk_buf_release(&c.errs);
    return 0;
}

const val_ops val__schema_ops = {"schema", schema_start};
