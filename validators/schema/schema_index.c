/*
 * The first half of the schema validator: reading a schema. One walk checks
 * every keyword's value (refusing by name what we do not implement),
 * registers the schema resources ($id) and anchors, compiles the patterns;
 * then every $ref and $dynamicRef is resolved to a node of the same document
 * (RFC 3986 resolution against the base URI in effect) and reference cycles
 * that would never consume input are refused. schema.c validates with the
 * result; val_schema_supported is this walk alone.
 *
 * Not supported, refused by name: remote references (any $ref to a URI that no
 * $id in the document defines), "$schema" other than 2020-12, "$vocabulary",
 * the draft-07/2019-09 keywords (definitions, dependencies, $recursiveRef,
 * $recursiveAnchor, items as an array) and any unknown keyword. "format" and
 * the content* keywords are annotations in 2020-12 and are not asserted.
 */
#include "schema_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Schema objects one document may hold; a bigger schema is refused at load. */
#define SCHEMA_NODES_MAX 50000
/* Nesting of schema objects inside one another, checked by the recursive walk. */
#define SCHEMA_DEPTH_MAX 200
/* The base URI of a document without a root $id. */
#define DEFAULT_BASE "cascade:schema"

/* ---- keywords ---------------------------------------------------------- */

enum kw_kind {
    K_ANNOT,       /* accepted and not asserted */
    K_SCHEMA_URI,  /* "$schema": must name draft 2020-12 */
    K_ID,          /* "$id" */
    K_ANCHOR,      /* "$anchor", "$dynamicAnchor" */
    K_REF,         /* "$ref", "$dynamicRef" */
    K_SCHEMA,      /* one subschema */
    K_SCHEMA_MAP,  /* an object whose values are subschemas */
    K_PATTERN_MAP, /* patternProperties: keys are patterns, values subschemas */
    K_SCHEMA_LIST, /* a non-empty array of subschemas */
    K_TYPE,
    K_ENUM,
    K_ANY,     /* const */
    K_STRINGS, /* required */
    K_DEPREQ,  /* dependentRequired */
    K_COUNT,   /* a non-negative integer */
    K_NUMBER,
    K_POSNUM, /* multipleOf */
    K_BOOL,   /* uniqueItems */
    K_PATTERN,
};

static const struct {
    const char *name;
    enum kw_kind kind;
} keywords[] = {
    {"$schema", K_SCHEMA_URI},
    {"$id", K_ID},
    {"$comment", K_ANNOT},
    {"title", K_ANNOT},
    {"description", K_ANNOT},
    {"default", K_ANNOT},
    {"examples", K_ANNOT},
    {"deprecated", K_ANNOT},
    {"readOnly", K_ANNOT},
    {"writeOnly", K_ANNOT},
    {"format", K_ANNOT}, /* 2020-12: an annotation unless format-assertion is in use */
    {"contentEncoding", K_ANNOT},
    {"contentMediaType", K_ANNOT},
    {"contentSchema", K_ANNOT},
    {"$anchor", K_ANCHOR},
    {"$dynamicAnchor", K_ANCHOR},
    {"$ref", K_REF},
    {"$dynamicRef", K_REF},
    {"$defs", K_SCHEMA_MAP},
    {"type", K_TYPE},
    {"enum", K_ENUM},
    {"const", K_ANY},
    {"properties", K_SCHEMA_MAP},
    {"patternProperties", K_PATTERN_MAP},
    {"additionalProperties", K_SCHEMA},
    {"unevaluatedProperties", K_SCHEMA},
    {"propertyNames", K_SCHEMA},
    {"required", K_STRINGS},
    {"dependentRequired", K_DEPREQ},
    {"dependentSchemas", K_SCHEMA_MAP},
    {"minProperties", K_COUNT},
    {"maxProperties", K_COUNT},
    {"prefixItems", K_SCHEMA_LIST},
    {"items", K_SCHEMA},
    {"unevaluatedItems", K_SCHEMA},
    {"contains", K_SCHEMA},
    {"minContains", K_COUNT},
    {"maxContains", K_COUNT},
    {"minItems", K_COUNT},
    {"maxItems", K_COUNT},
    {"uniqueItems", K_BOOL},
    {"minLength", K_COUNT},
    {"maxLength", K_COUNT},
    {"pattern", K_PATTERN},
    {"minimum", K_NUMBER},
    {"maximum", K_NUMBER},
    {"exclusiveMinimum", K_NUMBER},
    {"exclusiveMaximum", K_NUMBER},
    {"multipleOf", K_POSNUM},
    {"allOf", K_SCHEMA_LIST},
    {"anyOf", K_SCHEMA_LIST},
    {"oneOf", K_SCHEMA_LIST},
    {"not", K_SCHEMA},
    {"if", K_SCHEMA},
    {"then", K_SCHEMA},
    {"else", K_SCHEMA},
};

/* Keywords of other drafts, refused with a hint at what 2020-12 calls them. */
static const struct {
    const char *name;
    const char *hint;
} old_keywords[] = {
    {"definitions", "draft-07; 2020-12 uses \"$defs\""},
    {"dependencies", "draft-07; 2020-12 uses \"dependentRequired\"/\"dependentSchemas\""},
    {"additionalItems", "draft-07; 2020-12 uses \"items\" after \"prefixItems\""},
    {"$recursiveRef", "draft 2019-09; 2020-12 uses \"$dynamicRef\""},
    {"$recursiveAnchor", "draft 2019-09; 2020-12 uses \"$dynamicAnchor\""},
    {"$vocabulary", "only meaningful in a meta-schema"},
};

static const char *const type_names[] = {
    "null", "boolean", "object", "array", "number", "string", "integer", NULL,
};

static int in_list(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

static int kw_kind_of(const char *k)
{
    for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
        if (strcmp(keywords[i].name, k) == 0)
            return (int)keywords[i].kind;
    return -1;
}

/* ---- URIs (RFC 3986) ---------------------------------------------------- */

/* The parts of a URI reference; each a slice of the parsed string. */
typedef struct uri_parts {
    const char *scheme, *auth, *path, *query, *frag;
    size_t scheme_n, auth_n, path_n, query_n, frag_n;
    int has_scheme, has_auth, has_query, has_frag;
} uri_parts;

static void uri_parse(const char *s, uri_parts *u)
{
    memset(u, 0, sizeof *u);
    const char *p = s;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" */
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')) {
        const char *q = p;
        while ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z') || (*q >= '0' && *q <= '9') ||
               *q == '+' || *q == '-' || *q == '.')
            q++;
        if (*q == ':') {
            u->has_scheme = 1;
            u->scheme = p;
            u->scheme_n = (size_t)(q - p);
            p = q + 1;
        }
    }
    if (p[0] == '/' && p[1] == '/') {
        u->has_auth = 1;
        u->auth = p + 2;
        u->auth_n = strcspn(u->auth, "/?#");
        p = u->auth + u->auth_n;
    }
    u->path = p;
    u->path_n = strcspn(p, "?#");
    p += u->path_n;
    if (*p == '?') {
        u->has_query = 1;
        u->query = p + 1;
        u->query_n = strcspn(u->query, "#");
        p = u->query + u->query_n;
    }
    if (*p == '#') {
        u->has_frag = 1;
        u->frag = p + 1;
        u->frag_n = strlen(u->frag);
    }
}

/* RFC 3986 5.2.4: removes "." and ".." segments from path (n bytes) into out. */
static void remove_dots(const char *path, size_t n, wk_buf *out)
{
    char *in = wk_xstrndup(path, n);
    char *p = in;
    wk_buf_reset(out);
    while (*p) {
        if (strncmp(p, "../", 3) == 0)
            p += 3;
        else if (strncmp(p, "./", 2) == 0)
            p += 2;
        else if (strncmp(p, "/./", 3) == 0)
            p += 2;
        else if (strcmp(p, "/.") == 0)
            p[1] = '\0';
        else if (strncmp(p, "/../", 4) == 0 || strcmp(p, "/..") == 0) {
            if (p[3] == '\0')
                p[2] = '/', p += 2; /* "/.." becomes "/" */
            else
                p += 3;
            /* Drop the last segment already written, with its leading slash. */
            while (out->len > 0 && out->buf[out->len - 1] != '/')
                out->len--;
            if (out->len > 0)
                out->len--;
            if (out->buf)
                out->buf[out->len] = '\0';
        } else if (strcmp(p, ".") == 0 || strcmp(p, "..") == 0)
            p += strlen(p);
        else {
            size_t seg = 1 + strcspn(p + 1, "/");
            wk_buf_append(out, p, seg);
            p += seg;
        }
    }
    if (!out->buf)
        wk_buf_append(out, "", 0);
    free(in);
}

/* RFC 3986 5.2.2: resolves `ref` against the absolute URI `base`. Caller frees. */
static char *uri_resolve(const char *base, const char *ref)
{
    uri_parts b, r;
    uri_parse(base, &b);
    uri_parse(ref, &r);
    /* URIs in a schema are short; the cap only guards against a hostile one. */
    wk_buf out, path;
    wk_buf_init(&out, 1 << 16);
    wk_buf_init(&path, 1 << 16);
    const uri_parts *auth_from, *query_from;
    const uri_parts *scheme_from = r.has_scheme ? &r : &b;
    if (r.has_scheme) {
        remove_dots(r.path, r.path_n, &path);
        auth_from = &r;
        query_from = &r;
    } else {
        if (r.has_auth) {
            remove_dots(r.path, r.path_n, &path);
            auth_from = &r;
            query_from = &r;
        } else {
            auth_from = &b;
            if (r.path_n == 0) {
                wk_buf_append(&path, b.path, b.path_n);
                if (!path.buf)
                    wk_buf_append(&path, "", 0);
                query_from = r.has_query ? &r : &b;
            } else {
                query_from = &r;
                if (r.path[0] == '/') {
                    remove_dots(r.path, r.path_n, &path);
                } else {
                    /* 5.2.3 merge: the base path up to its last slash, then the reference. */
                    wk_buf merged;
                    wk_buf_init(&merged, 1 << 16);
                    if (b.has_auth && b.path_n == 0) {
                        wk_buf_append(&merged, "/", 1);
                    } else {
                        size_t keep = b.path_n;
                        while (keep > 0 && b.path[keep - 1] != '/')
                            keep--;
                        wk_buf_append(&merged, b.path, keep);
                    }
                    wk_buf_append(&merged, r.path, r.path_n);
                    remove_dots(merged.buf, merged.len, &path);
                    wk_buf_release(&merged);
                }
            }
        }
    }
    if (scheme_from->has_scheme) {
        wk_buf_append(&out, scheme_from->scheme, scheme_from->scheme_n);
        wk_buf_append(&out, ":", 1);
    }
    if (auth_from->has_auth) {
        wk_buf_append(&out, "//", 2);
        wk_buf_append(&out, auth_from->auth, auth_from->auth_n);
    }
    wk_buf_append(&out, path.buf, path.len);
    if (query_from->has_query) {
        wk_buf_append(&out, "?", 1);
        wk_buf_append(&out, query_from->query, query_from->query_n);
    }
    if (r.has_frag) {
        wk_buf_append(&out, "#", 1);
        wk_buf_append(&out, r.frag, r.frag_n);
    }
    wk_buf_release(&path);
    return wk_buf_detach(&out, NULL);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes %XX escapes in place (a JSON pointer in a URI fragment is percent-encoded). */
static void percent_decode(char *s)
{
    char *w = s;
    for (char *r = s; *r; r++) {
        int hi = r[0] == '%' ? hexval(r[1]) : -1;
        int lo = hi >= 0 ? hexval(r[2]) : -1;
        if (lo >= 0) {
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
}

/* ---- the index ------------------------------------------------------------- */

static int index_err(val__sch_index *ix, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int index_err(val__sch_index *ix, const char *fmt, ...)
{
    if (ix->err && ix->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ix->err, ix->errlen, fmt, ap);
        va_end(ap);
    }
    return WK_EINVAL;
}

static const char *walk_at(const val__sch_index *ix)
{
    return ix->path.len ? ix->path.buf : "(root)";
}

/* Appends a JSON-pointer token, escaped as RFC 6901 says (~ is ~0, / is ~1). */
void val__schema_pointer_push(wk_buf *b, const char *token)
{
    wk_buf_append(b, "/", 1);
    for (const char *s = token; *s; s++) {
        if (*s == '~')
            wk_buf_append(b, "~0", 2);
        else if (*s == '/')
            wk_buf_append(b, "~1", 2);
        else
            wk_buf_append(b, s, 1);
    }
}

void val__schema_pointer_pop(wk_buf *b, size_t mark)
{
    b->len = mark;
    if (b->buf)
        b->buf[mark] = '\0';
}

static size_t hash_ptr(const void *p, size_t n_slots)
{
    uintptr_t x = (uintptr_t)p;
    x ^= x >> 17;
    x *= 0x9E3779B97F4A7C15ull;
    return (size_t)(x >> 7) & (n_slots - 1);
}

val__sch_info *val__schema_info_of(const val__sch_index *ix, const cJSON *node)
{
    if (!ix->n_slots)
        return NULL;
    for (size_t h = hash_ptr(node, ix->n_slots);; h = (h + 1) & (ix->n_slots - 1)) {
        size_t s = ix->slots[h];
        if (s == 0)
            return NULL;
        if (ix->infos[s - 1].node == node)
            return &ix->infos[s - 1];
    }
}

static void index_hash(val__sch_index *ix)
{
    ix->n_slots = 16;
    while (ix->n_slots < ix->n_infos * 2)
        ix->n_slots *= 2;
    ix->slots = wk_xcalloc(ix->n_slots, sizeof *ix->slots);
    for (size_t i = 0; i < ix->n_infos; i++) {
        size_t h = hash_ptr(ix->infos[i].node, ix->n_slots);
        while (ix->slots[h])
            h = (h + 1) & (ix->n_slots - 1);
        ix->slots[h] = i + 1;
    }
}

static int add_res(val__sch_index *ix, char *uri, const cJSON *node)
{
    for (int i = 0; i < ix->n_res; i++) {
        if (strcmp(ix->res[i].uri, uri) == 0) {
            index_err(ix, "\"$id\" at %s repeats the URI %s of another schema resource",
                      walk_at(ix), uri);
            free(uri);
            return WK_EINVAL;
        }
    }
    if (ix->n_res == ix->alloc_res) {
        ix->alloc_res = ix->alloc_res ? ix->alloc_res * 2 : 4;
        ix->res = wk_xrealloc(ix->res, (size_t)ix->alloc_res * sizeof *ix->res);
    }
    ix->res[ix->n_res].uri = uri;
    ix->res[ix->n_res].node = node;
    return ix->n_res++;
}

static int anchor_name_ok(const char *s)
{
    /* 2020-12: ^[A-Za-z_][-A-Za-z0-9._]*$ */
    if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return 0;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '.' || *s == '_'))
            return 0;
    return 1;
}

val__sch_anchor *val__schema_find_anchor(const val__sch_index *ix, int res, const char *name,
                                         int dynamic)
{
    for (int i = 0; i < ix->n_anchors; i++) {
        val__sch_anchor *a = &ix->anchors[i];
        if (a->res == res && strcmp(a->name, name) == 0 && (!dynamic || a->dynamic))
            return a;
    }
    return NULL;
}

static int is_count(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble <= 1e15 &&
           floor(v->valuedouble) == v->valuedouble;
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

static int is_schema(const cJSON *v)
{
    return cJSON_IsObject(v) || cJSON_IsBool(v);
}

/* Checks the shape of one keyword's value (not its subschemas). */
static int value_ok(enum kw_kind kind, const cJSON *kw)
{
    const cJSON *e;
    switch (kind) {
    case K_SCHEMA:
        return is_schema(kw);
    case K_SCHEMA_MAP:
    case K_PATTERN_MAP:
        if (!cJSON_IsObject(kw))
            return 0;
        cJSON_ArrayForEach(e, kw) if (!is_schema(e)) return 0;
        return 1;
    case K_SCHEMA_LIST:
        if (!cJSON_IsArray(kw) || cJSON_GetArraySize(kw) == 0)
            return 0;
        cJSON_ArrayForEach(e, kw) if (!is_schema(e)) return 0;
        return 1;
    case K_TYPE:
        return check_type_value(kw);
    case K_ENUM:
        return cJSON_IsArray(kw);
    case K_STRINGS:
        if (!cJSON_IsArray(kw))
            return 0;
        cJSON_ArrayForEach(e, kw) if (!cJSON_IsString(e)) return 0;
        return 1;
    case K_DEPREQ:
        if (!cJSON_IsObject(kw))
            return 0;
        cJSON_ArrayForEach(e, kw) if (!value_ok(K_STRINGS, e)) return 0;
        return 1;
    case K_COUNT:
        return is_count(kw);
    case K_NUMBER:
        return cJSON_IsNumber(kw) && isfinite(kw->valuedouble);
    case K_POSNUM:
        return cJSON_IsNumber(kw) && isfinite(kw->valuedouble) && kw->valuedouble > 0;
    case K_BOOL:
        return cJSON_IsBool(kw);
    case K_PATTERN:
    case K_ID:
    case K_ANCHOR:
    case K_REF:
        return cJSON_IsString(kw);
    case K_SCHEMA_URI:
        return cJSON_IsString(kw);
    case K_ANNOT:
    case K_ANY:
        return 1;
    }
    return 0;
}

static int walk(val__sch_index *ix, const cJSON *s, int res, int depth);

static int walk_child(val__sch_index *ix, const char *kw, const char *key, const cJSON *sub,
                      int res, int depth)
{
    size_t mark = ix->path.len;
    val__schema_pointer_push(&ix->path, kw);
    if (key)
        val__schema_pointer_push(&ix->path, key);
    int rc = walk(ix, sub, res, depth + 1);
    if (rc == 0)
        val__schema_pointer_pop(&ix->path, mark); /* on error the path stays for the message */
    return rc;
}

static int compile_pattern(val__sch_index *ix, const char *kw, const char *pattern, val__re **out)
{
    char why[200];
    if (val__re_compile(pattern, out, why, sizeof why) < 0) {
        char *shown = wk_escape_ctl(pattern, strlen(pattern), 60);
        index_err(ix, "unsupported regular expression in \"%s\" at %s: %s (pattern \"%s\")", kw,
                  walk_at(ix), why, shown);
        free(shown);
        return WK_EINVAL;
    }
    return 0;
}

static int walk(val__sch_index *ix, const cJSON *s, int res, int depth)
{
    if (depth > SCHEMA_DEPTH_MAX)
        return index_err(ix, "schema nested deeper than %d levels at %s", SCHEMA_DEPTH_MAX,
                         walk_at(ix));
    if (ix->n_infos >= SCHEMA_NODES_MAX)
        return index_err(ix, "schema has more than %d subschemas", SCHEMA_NODES_MAX);
    if (!is_schema(s))
        return index_err(ix, "schema at %s must be an object or a boolean", walk_at(ix));

    /* The info lives in a growing array, so it is addressed by index, not pointer. */
    if (ix->n_infos == ix->alloc_infos) {
        ix->alloc_infos = ix->alloc_infos ? ix->alloc_infos * 2 : 64;
        ix->infos = wk_xrealloc(ix->infos, ix->alloc_infos * sizeof *ix->infos);
    }
    size_t me = ix->n_infos++;
    memset(&ix->infos[me], 0, sizeof ix->infos[me]);
    ix->infos[me].node = s;
    ix->infos[me].res = res;
    if (cJSON_IsBool(s))
        return 0;

    /* "$id" first: it sets the base URI that this schema's own $ref resolves against. */
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(s, "$id");
    if (id && s != ix->root) {
        if (!cJSON_IsString(id))
            return index_err(ix, "JSON Schema keyword \"$id\" at %s has a value we cannot use",
                             walk_at(ix));
        char *uri = uri_resolve(ix->res[res].uri, id->valuestring);
        char *hash = strchr(uri, '#');
        if (hash && hash[1]) {
            free(uri);
            return index_err(ix, "\"$id\" at %s has a fragment; 2020-12 uses \"$anchor\" for that",
                             walk_at(ix));
        }
        if (hash)
            *hash = '\0';
        int r = add_res(ix, uri, s);
        if (r < 0)
            return r;
        res = r;
        ix->infos[me].res = r;
    }

    const cJSON *kw;
    cJSON_ArrayForEach(kw, s)
    {
        const char *k = kw->string;
        int kind = kw_kind_of(k);
        if (kind < 0) {
            for (size_t i = 0; i < sizeof old_keywords / sizeof old_keywords[0]; i++)
                if (strcmp(old_keywords[i].name, k) == 0)
                    return index_err(ix, "unsupported JSON Schema keyword \"%s\" at %s (%s)", k,
                                     walk_at(ix), old_keywords[i].hint);
            return index_err(ix, "unsupported JSON Schema keyword \"%s\" at %s", k, walk_at(ix));
        }
        if (!value_ok((enum kw_kind)kind, kw))
            return index_err(ix, "JSON Schema keyword \"%s\" at %s has a value we cannot use", k,
                             walk_at(ix));
        if (kind == K_SCHEMA_URI) {
            const char *v = kw->valuestring;
            if (strcmp(v, "https://json-schema.org/draft/2020-12/schema") != 0 &&
                strcmp(v, "https://json-schema.org/draft/2020-12/schema#") != 0)
                return index_err(ix,
                                 "unsupported \"$schema\" \"%.100s\" at %s: only draft 2020-12 "
                                 "(https://json-schema.org/draft/2020-12/schema) is implemented",
                                 v, walk_at(ix));
        } else if (kind == K_ANCHOR) {
            if (!anchor_name_ok(kw->valuestring))
                return index_err(ix, "\"%s\" at %s is not a valid anchor name", k, walk_at(ix));
            int dynamic = strcmp(k, "$dynamicAnchor") == 0;
            val__sch_anchor *dup = val__schema_find_anchor(ix, res, kw->valuestring, 0);
            /* Both keywords define the plain anchor, so one name may appear once per resource. */
            if (dup && dup->node != s)
                return index_err(ix, "anchor \"%s\" at %s is defined twice in one resource",
                                 kw->valuestring, walk_at(ix));
            if (dup) {
                dup->dynamic |= dynamic;
                continue;
            }
            if (ix->n_anchors == ix->alloc_anchors) {
                ix->alloc_anchors = ix->alloc_anchors ? ix->alloc_anchors * 2 : 4;
                ix->anchors =
                    wk_xrealloc(ix->anchors, (size_t)ix->alloc_anchors * sizeof *ix->anchors);
            }
            ix->anchors[ix->n_anchors++] = (val__sch_anchor){
                .res = res, .name = kw->valuestring, .node = s, .dynamic = dynamic};
        } else if (kind == K_PATTERN && !ix->infos[me].pattern) {
            /*
             * "pattern" twice in one object: the first is the one, as cJSON's
             * lookups find it; compiling the second leaked the first (fuzz finding).
             */
            int rc = compile_pattern(ix, k, kw->valuestring, &ix->infos[me].pattern);
            if (rc)
                return rc;
        } else if (strncmp(k, "unevaluated", 11) == 0) {
            ix->infos[me].has_uneval = 1;
        }
    }

    /* The subschemas, with the keyword path extended for messages. */
    cJSON_ArrayForEach(kw, s)
    {
        int kind = kw_kind_of(kw->string);
        const cJSON *sub;
        int rc = 0;
        if (kind == K_SCHEMA) {
            rc = walk_child(ix, kw->string, NULL, kw, res, depth);
        } else if (kind == K_SCHEMA_MAP || kind == K_PATTERN_MAP) {
            cJSON_ArrayForEach(sub, kw)
            {
                size_t child = ix->n_infos;
                rc = walk_child(ix, kw->string, sub->string, sub, res, depth);
                if (rc)
                    break;
                if (kind == K_PATTERN_MAP) {
                    rc = compile_pattern(ix, kw->string, sub->string, &ix->infos[child].key_re);
                    if (rc)
                        break;
                }
            }
        } else if (kind == K_SCHEMA_LIST) {
            int i = 0;
            cJSON_ArrayForEach(sub, kw)
            {
                char idx[24];
                snprintf(idx, sizeof idx, "%d", i++);
                rc = walk_child(ix, kw->string, idx, sub, res, depth);
                if (rc)
                    break;
            }
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* Follows a JSON pointer (already percent-decoded) from node; NULL when it leads nowhere. */
static const cJSON *follow_pointer(const cJSON *node, const char *ptr)
{
    if (*ptr == '\0')
        return node;
    if (*ptr != '/')
        return NULL;
    char *tok = wk_xmalloc(strlen(ptr) + 1);
    const char *p = ptr;
    while (node && *p == '/') {
        p++;
        size_t n = 0;
        while (*p && *p != '/') {
            if (p[0] == '~' && p[1] == '0')
                tok[n++] = '~', p += 2;
            else if (p[0] == '~' && p[1] == '1')
                tok[n++] = '/', p += 2;
            else
                tok[n++] = *p++;
        }
        tok[n] = '\0';
        if (cJSON_IsObject(node)) {
            node = cJSON_GetObjectItemCaseSensitive(node, tok);
        } else if (cJSON_IsArray(node)) {
            char *end;
            long i = strtol(tok, &end, 10);
            int ok = n > 0 && *end == '\0' && tok[0] != '-' && (tok[0] != '0' || n == 1);
            node = ok ? cJSON_GetArrayItem(node, (int)i) : NULL;
        } else {
            node = NULL;
        }
    }
    free(tok);
    return node;
}

/*
 * Resolves the $ref or $dynamicRef `ref` found in the schema `at` to a schema
 * of this document. *dyn_name is set (borrowed from the schema) when the
 * reference names an anchor defined by "$dynamicAnchor", for $dynamicRef.
 */
static int resolve_ref(val__sch_index *ix, const val__sch_info *at, const char *kw, const char *ref,
                       const cJSON **target, const char **dyn_name)
{
    int rc = WK_EINVAL;
    char *uri = uri_resolve(ix->res[at->res].uri, ref);
    char *frag = strchr(uri, '#');
    if (frag)
        *frag++ = '\0';
    int res = -1;
    for (int i = 0; i < ix->n_res; i++)
        if (strcmp(ix->res[i].uri, uri) == 0)
            res = i;
    if (res < 0) {
        index_err(ix,
                  "unsupported \"%s\" \"%.200s\": it names no schema in this document (remote "
                  "references are not fetched)",
                  kw, ref);
        goto cleanup;
    }
    const cJSON *node = ix->res[res].node;
    *dyn_name = NULL;
    if (frag && *frag && *frag != '/') {
        const val__sch_anchor *a = val__schema_find_anchor(ix, res, frag, 0);
        if (!a) {
            index_err(ix, "\"%s\" \"%.200s\": no anchor \"%.100s\" in %.200s", kw, ref, frag,
                      ix->res[res].uri);
            goto cleanup;
        }
        node = a->node;
        if (a->dynamic)
            *dyn_name = a->name;
    } else if (frag) {
        percent_decode(frag);
        node = follow_pointer(node, frag);
    }
    if (!node || !val__schema_info_of(ix, node)) {
        index_err(ix, "\"%s\" \"%.200s\" does not point at a schema in this document", kw, ref);
        goto cleanup;
    }
    *target = node;
    rc = 0;
cleanup:
    free(uri);
    return rc;
}

/*
 * The subschemas a schema applies to the same instance location. A cycle
 * among these never consumes input, so it would recurse forever.
 */
static int inplace_edges(const val__sch_index *ix, const val__sch_info *in, const cJSON **out,
                         int max)
{
    int n = 0;
    if (!cJSON_IsObject(in->node))
        return 0;
    if (in->ref && n < max)
        out[n++] = in->ref;
    if (in->dref && n < max)
        out[n++] = in->dref;
    if (in->dyn_name) {
        /* Any dynamic anchor of that name may be chosen at run time. */
        for (int i = 0; i < ix->n_anchors && n < max; i++)
            if (ix->anchors[i].dynamic && strcmp(ix->anchors[i].name, in->dyn_name) == 0)
                out[n++] = ix->anchors[i].node;
    }
    static const char *const single[] = {"not", "if", "then", "else"};
    for (int i = 0; i < 4 && n < max; i++) {
        const cJSON *sub = cJSON_GetObjectItemCaseSensitive(in->node, single[i]);
        if (sub)
            out[n++] = sub;
    }
    static const char *const lists[] = {"allOf", "anyOf", "oneOf", "dependentSchemas"};
    for (int i = 0; i < 4; i++) {
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(in->node, lists[i]), *sub;
        cJSON_ArrayForEach(sub, l) if (n < max) out[n++] = sub;
    }
    return n;
}

static int count_inplace(const val__sch_index *ix, const val__sch_info *in)
{
    int n = 3 + 4; /* ref, dref, not/if/then/else */
    if (in->dyn_name)
        n += ix->n_anchors;
    static const char *const lists[] = {"allOf", "anyOf", "oneOf", "dependentSchemas"};
    for (int i = 0; i < 4; i++)
        n += cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(in->node, lists[i]));
    return n;
}

/* Iterative depth-first search for a cycle of in-place applications. */
static int find_cycles(val__sch_index *ix)
{
    int rc = 0;
    size_t n = ix->n_infos;
    unsigned char *color = wk_xcalloc(n, 1); /* 0 new, 1 on the stack, 2 done */
    size_t *stack = wk_xmalloc(n * sizeof *stack);
    int *next = wk_xcalloc(n, sizeof *next);
    const cJSON **edges = NULL;
    int edges_alloc = 0;
    for (size_t start = 0; start < n && rc == 0; start++) {
        if (color[start])
            continue;
        size_t sp = 0;
        stack[sp++] = start;
        color[start] = 1;
        while (sp > 0 && rc == 0) {
            size_t cur = stack[sp - 1];
            const val__sch_info *in = &ix->infos[cur];
            int want = cJSON_IsObject(in->node) ? count_inplace(ix, in) : 0;
            if (want > edges_alloc) {
                edges_alloc = want;
                edges = wk_xrealloc(edges, (size_t)edges_alloc * sizeof *edges);
            }
            int ne = inplace_edges(ix, in, edges, want);
            if (next[cur] >= ne) {
                color[cur] = 2;
                sp--;
                continue;
            }
            const val__sch_info *to = val__schema_info_of(ix, edges[next[cur]++]);
            size_t t = (size_t)(to - ix->infos);
            if (color[t] == 1) {
                rc = index_err(ix, "the schema refers to itself without consuming input (a $ref "
                                   "cycle through in-place keywords); it would never terminate");
            } else if (color[t] == 0) {
                color[t] = 1;
                stack[sp++] = t;
            }
        }
    }
    free(color);
    free(stack);
    free(next);
    free(edges);
    return rc;
}

void val__schema_index_release(val__sch_index *ix)
{
    for (size_t i = 0; i < ix->n_infos; i++) {
        val__re_free(ix->infos[i].pattern);
        val__re_free(ix->infos[i].key_re);
    }
    free(ix->infos);
    free(ix->slots);
    for (int i = 0; i < ix->n_res; i++)
        free(ix->res[i].uri);
    free(ix->res);
    free(ix->anchors);
    wk_buf_release(&ix->path);
    memset(ix, 0, sizeof *ix);
}

/*
 * Builds the index of `schema` (borrowed; it must outlive the index). Returns
 * 0, or WK_EINVAL with a message in err naming the keyword and where it is.
 * The index is released with index_release either way.
 */
int val__schema_index_build(val__sch_index *ix, const cJSON *schema, char *err, size_t errlen)
{
    memset(ix, 0, sizeof *ix);
    ix->root = schema;
    ix->err = err;
    ix->errlen = errlen;
    /* Pointers into a schema are short; a runaway one only truncates the message. */
    wk_buf_init(&ix->path, 4096);
    if (err && errlen)
        err[0] = '\0';
    if (!schema)
        return index_err(ix, "no schema");

    const cJSON *id =
        cJSON_IsObject(schema) ? cJSON_GetObjectItemCaseSensitive(schema, "$id") : NULL;
    char *base;
    if (id && cJSON_IsString(id)) {
        base = uri_resolve(DEFAULT_BASE, id->valuestring);
        char *hash = strchr(base, '#');
        if (hash && hash[1]) {
            free(base);
            return index_err(ix, "\"$id\" at (root) has a fragment; 2020-12 uses \"$anchor\"");
        }
        if (hash)
            *hash = '\0';
    } else if (id) {
        return index_err(ix, "JSON Schema keyword \"$id\" at (root) has a value we cannot use");
    } else {
        base = wk_xstrdup(DEFAULT_BASE);
    }
    int rc = add_res(ix, base, schema);
    if (rc < 0)
        return rc;
    rc = walk(ix, schema, 0, 0);
    if (rc)
        return rc;
    index_hash(ix);

    /* Every reference is resolved now, so validation never meets a dangling one. */
    for (size_t i = 0; i < ix->n_infos; i++) {
        val__sch_info *in = &ix->infos[i];
        if (!cJSON_IsObject(in->node))
            continue;
        const cJSON *ref = cJSON_GetObjectItemCaseSensitive(in->node, "$ref");
        const char *ignored;
        if (ref && (rc = resolve_ref(ix, in, "$ref", ref->valuestring, &in->ref, &ignored)))
            return rc;
        ref = cJSON_GetObjectItemCaseSensitive(in->node, "$dynamicRef");
        if (ref &&
            (rc = resolve_ref(ix, in, "$dynamicRef", ref->valuestring, &in->dref, &in->dyn_name)))
            return rc;
    }
    return find_cycles(ix);
}

int val_schema_supported(const cJSON *schema, char *err, size_t errlen)
{
    val__sch_index ix;
    int rc = val__schema_index_build(&ix, schema, err, errlen);
    val__schema_index_release(&ix);
    return rc;
}
