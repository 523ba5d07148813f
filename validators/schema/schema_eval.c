/*
 * The walk of the schema validator (schema.c): an instance checked against
 * an indexed schema (schema_index.c) with draft 2020-12 semantics, failures
 * collected with the JSON pointer of where they are.
 *
 * Validation runs on the cJSON tree with the index, collecting the
 * annotations that unevaluatedProperties and unevaluatedItems need (which
 * members or items an adjacent keyword already evaluated) only when one of
 * them is in play. Work and nesting are capped; hitting a cap aborts the walk
 * (the verdict too_complex), never a hang or a stack overflow. One file: the
 * keywords' checks and validate() call each other recursively.
 */
#include "schema_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How many failures the evidence lists; the message carries the first. */
#define MAX_ERRORS 8
/* Values quoted in messages are cut to this many bytes. */
#define VALUE_SHOW_MAX 80
/*
 * Nesting of validation calls (schema depth times instance depth). cJSON
 * refuses documents nested deeper than 1000, so this only stops pathological
 * schemas, and keeps the stack bounded.
 */
#define EVAL_DEPTH_MAX 1500
/* Work units (subschema applications, comparisons, regex steps) per answer. */
#define EVAL_BUDGET 20000000

/* ---- validation ---------------------------------------------------------- */

typedef struct check {
    const val__sch_index *ix;
    wk_buf path; /* JSON pointer of the instance being checked */
    wk_buf errs; /* one failure per line */
    int n_errs;
    char *first; /* the first failure; owned */
    int quiet;   /* > 0 inside anyOf, oneOf, not, if, contains: failures are not reported */
    char *hint;  /* the first failure seen while quiet; owned (explains an anyOf) */
    int depth;
    int64_t budget;
    int aborted;
    int *scope; /* the dynamic scope: resources entered, outermost first */
    int n_scope, alloc_scope;
} check;

/*
 * The members of an object or the items of an array (by position) that the
 * keywords of a schema evaluated, for unevaluatedProperties/unevaluatedItems.
 */
typedef struct evset {
    unsigned char *seen;
    int n;
} evset;

static void ev_init(evset *e, const cJSON *v)
{
    e->n = (cJSON_IsObject(v) || cJSON_IsArray(v)) ? cJSON_GetArraySize(v) : 0;
    e->seen = e->n ? wk_xcalloc((size_t)e->n, 1) : NULL;
}

static void ev_merge(evset *into, const evset *from)
{
    for (int i = 0; i < into->n && i < from->n; i++)
        into->seen[i] |= from->seen[i];
}

static void ev_mark(evset *e, int i)
{
    if (e && i < e->n)
        e->seen[i] = 1;
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
    if (c->quiet && c->hint)
        return;
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char *line = wk_xasprintf("%s: %s", c->path.len ? c->path.buf : "(root)", what);
    if (c->quiet) {
        c->hint = line;
        return;
    }
    if (!c->first)
        c->first = wk_xstrdup(line);
    if (c->n_errs < MAX_ERRORS)
        wk_buf_appendf(&c->errs, "%s\n", line);
    c->n_errs++;
    free(line);
}

/*
 * A quiet stretch: subschemas whose failure is not the answer's failure
 * (anyOf branches, not, if, contains). Their failures are not reported; the
 * first one is kept as the hint that quiet_end hands back (caller frees), so
 * anyOf can say why its first branch failed. Stretches nest.
 */
static char *quiet_begin(check *c)
{
    char *outer = c->hint;
    c->hint = NULL;
    c->quiet++;
    return outer;
}

static char *quiet_end(check *c, char *outer)
{
    char *hint = c->hint;
    c->hint = outer;
    c->quiet--;
    return hint;
}

static int spend(check *c, int64_t n)
{
    c->budget -= n;
    if (c->budget < 0 && !c->aborted)
        c->aborted = VAL__SCH_ABORT_BUDGET;
    return !c->aborted;
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

/* JSON equality as JSON Schema defines it: 1 and 1.0 are equal, key order is not. */
static int json_equal(check *c, const cJSON *a, const cJSON *b)
{
    if (!spend(c, 1))
        return 0;
    if (cJSON_IsNumber(a) && cJSON_IsNumber(b))
        return a->valuedouble == b->valuedouble;
    if ((a->type & 0xff) != (b->type & 0xff))
        return 0;
    if (cJSON_IsString(a))
        return strcmp(a->valuestring, b->valuestring) == 0;
    if (cJSON_IsArray(a)) {
        const cJSON *x = a->child, *y = b->child;
        for (; x && y; x = x->next, y = y->next)
            if (!json_equal(c, x, y))
                return 0;
        return !x && !y;
    }
    if (cJSON_IsObject(a)) {
        if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
            return 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, a)
        {
            const cJSON *y = cJSON_GetObjectItemCaseSensitive(b, x->string);
            if (!y || !json_equal(c, x, y))
                return 0;
        }
        return 1;
    }
    return 1; /* null, true, false: the type says it all */
}

/* Code points in a UTF-8 string: every byte that is not a continuation byte. */
static size_t utf8_count(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/*
 * x is a multiple of m when x / m is an integer. The division is rounded, so
 * 0.0075 / 0.0001 comes out as 74.99999999999999: accept a quotient within a
 * few ulps of an integer. A quotient that overflows is not a multiple we can
 * vouch for.
 */
static int is_multiple(double x, double m)
{
    double q = x / m;
    if (!isfinite(q))
        return 0;
    double r = nearbyint(q);
    return fabs(q - r) <= 8 * 2.220446049250313e-16 * fabs(q);
}

/* 1 when the pattern matches s; 0 when not or when the budget ran out. */
static int pattern_matches(check *c, const val__re *re, const char *s)
{
    int r = val__re_search(re, s, strlen(s), &c->budget);
    if (r < 0) {
        c->aborted = VAL__SCH_ABORT_BUDGET;
        return 0;
    }
    return r;
}

static const cJSON *get(const cJSON *s, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(s, k);
}

static int validate(check *c, const cJSON *schema, const cJSON *v, evset *ev);

/*
 * Applies sub to the same instance; its annotations join `ev` when it passes
 * (a failed subschema contributes none).
 */
static int apply_inplace(check *c, const cJSON *sub, const cJSON *v, evset *ev)
{
    if (!ev)
        return validate(c, sub, v, NULL);
    evset tmp;
    ev_init(&tmp, v);
    int ok = validate(c, sub, v, &tmp);
    if (ok)
        ev_merge(ev, &tmp);
    free(tmp.seen);
    return ok;
}

/* Applies sub to a child of the instance at `token` (a member name or an index). */
static int apply_child(check *c, const cJSON *sub, const cJSON *child, const char *token)
{
    size_t mark = c->path.len;
    val__schema_pointer_push(&c->path, token);
    int ok = validate(c, sub, child, NULL);
    val__schema_pointer_pop(&c->path, mark);
    return ok;
}

static int apply_item(check *c, const cJSON *sub, const cJSON *item, int i)
{
    char idx[24];
    snprintf(idx, sizeof idx, "%d", i);
    return apply_child(c, sub, item, idx);
}

static int check_number(check *c, const cJSON *s, const cJSON *v)
{
    int ok = 1;
    double x = v->valuedouble;
    static const struct {
        const char *kw;
        int sign; /* +1: x must be >= bound; -1: x <= bound */
        int exclusive;
        const char *say;
    } bounds[] = {
        {"minimum", 1, 0, "less than the minimum"},
        {"maximum", -1, 0, "greater than the maximum"},
        {"exclusiveMinimum", 1, 1, "not greater than the exclusive minimum"},
        {"exclusiveMaximum", -1, 1, "not less than the exclusive maximum"},
    };
    for (int i = 0; i < 4; i++) {
        const cJSON *kw = get(s, bounds[i].kw);
        if (!kw)
            continue;
        /* Compare, do not subtract: x - bound can overflow to infinity. */
        int below = bounds[i].sign > 0 ? x < kw->valuedouble : x > kw->valuedouble;
        if (below || (bounds[i].exclusive && x == kw->valuedouble)) {
            char *got = show(v), *lim = show(kw);
            fail(c, "%s is %s %s", got, bounds[i].say, lim);
            free(got);
            free(lim);
            ok = 0;
        }
    }
    const cJSON *kw = get(s, "multipleOf");
    if (kw && !is_multiple(x, kw->valuedouble)) {
        char *got = show(v), *m = show(kw);
        fail(c, "%s is not a multiple of %s", got, m);
        free(got);
        free(m);
        ok = 0;
    }
    return ok;
}

static int check_string(check *c, const cJSON *s, const val__sch_info *in, const cJSON *v)
{
    int ok = 1;
    size_t n = utf8_count(v->valuestring);
    const cJSON *kw = get(s, "minLength");
    if (kw && (double)n < kw->valuedouble) {
        fail(c, "%zu characters, at least %.0f expected", n, kw->valuedouble);
        ok = 0;
    }
    kw = get(s, "maxLength");
    if (kw && (double)n > kw->valuedouble) {
        fail(c, "%zu characters, at most %.0f expected", n, kw->valuedouble);
        ok = 0;
    }
    if (in->pattern && !pattern_matches(c, in->pattern, v->valuestring)) {
        char *got = show(v);
        char *pat = wk_escape_ctl(get(s, "pattern")->valuestring,
                                  strlen(get(s, "pattern")->valuestring), VALUE_SHOW_MAX);
        fail(c, "%s does not match the pattern \"%s\"", got, pat);
        free(got);
        free(pat);
        ok = 0;
    }
    return ok;
}

static int check_array(check *c, const cJSON *s, const cJSON *v, evset *ev)
{
    int ok = 1;
    int n = cJSON_GetArraySize(v);
    const cJSON *kw = get(s, "minItems");
    if (kw && (double)n < kw->valuedouble) {
        fail(c, "%d items, at least %.0f expected", n, kw->valuedouble);
        ok = 0;
    }
    kw = get(s, "maxItems");
    if (kw && (double)n > kw->valuedouble) {
        fail(c, "%d items, at most %.0f expected", n, kw->valuedouble);
        ok = 0;
    }
    if (!ok && c->quiet)
        return 0;

    /* prefixItems covers the first items, items the rest. */
    const cJSON *prefix = get(s, "prefixItems");
    const cJSON *items = get(s, "items");
    const cJSON *p = prefix ? prefix->child : NULL;
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, v)
    {
        const cJSON *sub = p ? p : items;
        if (p)
            p = p->next;
        if (sub) {
            if (!apply_item(c, sub, e, i))
                ok = 0;
            ev_mark(ev, i);
        }
        i++;
        if ((!ok && c->quiet) || c->aborted)
            return 0;
    }

    kw = get(s, "contains");
    if (kw) {
        const cJSON *mn = get(s, "minContains"), *mx = get(s, "maxContains");
        double min = mn ? mn->valuedouble : 1;
        int matched = 0;
        i = 0;
        char *outer = quiet_begin(c);
        cJSON_ArrayForEach(e, v)
        {
            /* Every item is tried: unevaluatedItems needs each one that matched. */
            if (apply_item(c, kw, e, i)) {
                matched++;
                ev_mark(ev, i);
            }
            i++;
            if (c->aborted)
                break;
        }
        free(quiet_end(c, outer));
        if ((double)matched < min) {
            if (min == 1)
                fail(c, "no item matches the \"contains\" schema");
            else
                fail(c, "%d items match the \"contains\" schema, at least %.0f expected", matched,
                     min);
            ok = 0;
        } else if (mx && (double)matched > mx->valuedouble) {
            fail(c, "%d items match the \"contains\" schema, at most %.0f expected", matched,
                 mx->valuedouble);
            ok = 0;
        }
    }

    kw = get(s, "uniqueItems");
    if (cJSON_IsTrue(kw)) {
        /* Pairwise: equality is structural (1 == 1.0, key order ignored); spend() caps it. */
        int a = 0;
        for (const cJSON *x = v->child; x; x = x->next, a++) {
            int b = a + 1;
            for (const cJSON *y = x->next; y; y = y->next, b++) {
                if (json_equal(c, x, y)) {
                    fail(c, "items %d and %d are equal; uniqueItems requires distinct items", a, b);
                    ok = 0;
                    goto unique_done;
                }
                if (c->aborted)
                    return 0;
            }
        }
    unique_done:;
    }
    return ok;
}

static int check_object(check *c, const cJSON *s, const cJSON *v, evset *ev)
{
    int ok = 1;
    const cJSON *kw = get(s, "required"), *r, *m;
    cJSON_ArrayForEach(r, kw)
    {
        if (!get(v, r->valuestring)) {
            char *name = show(r);
            fail(c, "missing required property %s", name);
            free(name);
            ok = 0;
        }
    }
    kw = get(s, "dependentRequired");
    const cJSON *dep;
    cJSON_ArrayForEach(dep, kw)
    {
        if (!get(v, dep->string))
            continue;
        cJSON_ArrayForEach(r, dep)
        {
            if (!get(v, r->valuestring)) {
                char *name = show(r);
                fail(c, "missing property %s, required when \"%s\" is present", name, dep->string);
                free(name);
                ok = 0;
            }
        }
    }
    int n = cJSON_GetArraySize(v);
    kw = get(s, "minProperties");
    if (kw && (double)n < kw->valuedouble) {
        fail(c, "%d properties, at least %.0f expected", n, kw->valuedouble);
        ok = 0;
    }
    kw = get(s, "maxProperties");
    if (kw && (double)n > kw->valuedouble) {
        fail(c, "%d properties, at most %.0f expected", n, kw->valuedouble);
        ok = 0;
    }
    if (!ok && c->quiet)
        return 0;

    kw = get(s, "propertyNames");
    if (kw) {
        cJSON_ArrayForEach(m, v)
        {
            /* The name as a JSON string instance; nothing frees it, it lives on the stack. */
            cJSON name = {0};
            name.type = cJSON_String;
            name.valuestring = m->string;
            size_t mark = c->path.len;
            val__schema_pointer_push(&c->path, m->string);
            wk_buf_append(&c->path, " (property name)", 16);
            int good = validate(c, kw, &name, NULL);
            val__schema_pointer_pop(&c->path, mark);
            if (!good) {
                ok = 0;
                if (c->quiet || c->aborted)
                    return 0;
            }
        }
    }

    const cJSON *props = get(s, "properties");
    const cJSON *pats = get(s, "patternProperties");
    const cJSON *extra = get(s, "additionalProperties");
    int i = 0;
    cJSON_ArrayForEach(m, v)
    {
        int covered = 0;
        const cJSON *sub = props ? get(props, m->string) : NULL;
        if (sub) {
            covered = 1;
            if (!apply_child(c, sub, m, m->string))
                ok = 0;
        }
        const cJSON *pp;
        cJSON_ArrayForEach(pp, pats)
        {
            const val__sch_info *pin = val__schema_info_of(c->ix, pp);
            if (pattern_matches(c, pin->key_re, m->string)) {
                covered = 1;
                if (!apply_child(c, pp, m, m->string))
                    ok = 0;
            }
        }
        if (!covered && extra) {
            covered = 1;
            if (cJSON_IsFalse(extra)) {
                size_t mark = c->path.len;
                val__schema_pointer_push(&c->path, m->string);
                fail(c, "property not allowed (additionalProperties is false)");
                val__schema_pointer_pop(&c->path, mark);
                ok = 0;
            } else if (!apply_child(c, extra, m, m->string)) {
                ok = 0;
            }
        }
        if (covered)
            ev_mark(ev, i);
        i++;
        if ((!ok && c->quiet) || c->aborted)
            return 0;
    }

    kw = get(s, "dependentSchemas");
    cJSON_ArrayForEach(dep, kw)
    {
        if (get(v, dep->string) && !apply_inplace(c, dep, v, ev))
            ok = 0;
    }
    return ok;
}

/* anyOf, oneOf, not, if/then/else, allOf. */
static int check_combinators(check *c, const cJSON *s, const cJSON *v, evset *ev)
{
    int ok = 1;
    const cJSON *kw = get(s, "allOf"), *sub;
    cJSON_ArrayForEach(sub, kw)
    {
        if (!apply_inplace(c, sub, v, ev)) {
            ok = 0;
            if (c->quiet)
                return 0;
        }
    }

    kw = get(s, "anyOf");
    if (kw) {
        int any = 0;
        char *outer = quiet_begin(c);
        cJSON_ArrayForEach(sub, kw)
        {
            if (apply_inplace(c, sub, v, ev)) {
                any = 1;
                /* Without annotations to collect, the first match settles it. */
                if (!ev)
                    break;
            }
            if (c->aborted)
                break;
        }
        char *hint = quiet_end(c, outer);
        if (!any) {
            fail(c, "matches none of the %d \"anyOf\" alternatives%s%s%s", cJSON_GetArraySize(kw),
                 hint ? " (first: " : "", hint ? hint : "", hint ? ")" : "");
            ok = 0;
        }
        free(hint);
    }

    kw = get(s, "oneOf");
    if (kw) {
        int matched = 0, first = -1, second = -1, i = 0;
        char *outer = quiet_begin(c);
        cJSON_ArrayForEach(sub, kw)
        {
            if (apply_inplace(c, sub, v, ev)) {
                if (matched++ == 0)
                    first = i;
                else
                    second = i;
            }
            i++;
            if (matched > 1 || c->aborted)
                break;
        }
        char *hint = quiet_end(c, outer);
        if (matched == 0) {
            fail(c, "matches none of the %d \"oneOf\" alternatives%s%s%s", cJSON_GetArraySize(kw),
                 hint ? " (first: " : "", hint ? hint : "", hint ? ")" : "");
            ok = 0;
        } else if (matched > 1) {
            fail(c, "matches \"oneOf\" alternatives %d and %d; exactly one must match", first,
                 second);
            ok = 0;
        }
        free(hint);
    }

    kw = get(s, "not");
    if (kw) {
        char *outer = quiet_begin(c);
        int matched = validate(c, kw, v, NULL); /* "not" contributes no annotations */
        free(quiet_end(c, outer));
        if (matched) {
            fail(c, "matches the schema under \"not\"");
            ok = 0;
        }
    }

    kw = get(s, "if");
    if (kw) {
        char *outer = quiet_begin(c);
        int cond = apply_inplace(c, kw, v, ev);
        free(quiet_end(c, outer));
        const cJSON *branch = get(s, cond ? "then" : "else");
        if (branch && !apply_inplace(c, branch, v, ev))
            ok = 0;
    }
    return ok;
}

/* unevaluatedItems and unevaluatedProperties: run last, on what the rest left over. */
static int check_unevaluated(check *c, const cJSON *s, const cJSON *v, evset *ev)
{
    int ok = 1;
    const cJSON *kw = get(s, cJSON_IsArray(v) ? "unevaluatedItems" : "unevaluatedProperties");
    if (!kw || !(cJSON_IsArray(v) || cJSON_IsObject(v)))
        return 1;
    const cJSON *e;
    int i = 0;
    cJSON_ArrayForEach(e, v)
    {
        if (!ev->seen[i]) {
            if (cJSON_IsFalse(kw)) {
                size_t mark = c->path.len;
                if (cJSON_IsArray(v)) {
                    char idx[24];
                    snprintf(idx, sizeof idx, "%d", i);
                    val__schema_pointer_push(&c->path, idx);
                    fail(c, "item not allowed (unevaluatedItems is false)");
                } else {
                    val__schema_pointer_push(&c->path, e->string);
                    fail(c, "property not allowed (unevaluatedProperties is false)");
                }
                val__schema_pointer_pop(&c->path, mark);
                ok = 0;
            } else if (!(cJSON_IsArray(v) ? apply_item(c, kw, e, i)
                                          : apply_child(c, kw, e, e->string))) {
                ok = 0;
            }
            ev->seen[i] = 1;
        }
        i++;
        if ((!ok && c->quiet) || c->aborted)
            return 0;
    }
    return ok;
}

static int validate_object(check *c, const cJSON *s, const val__sch_info *in, const cJSON *v,
                           evset *ev)
{
    int ok = 1;
    evset local = {0};
    /* Annotations are collected only when an unevaluated* keyword here or above needs them. */
    if (!ev && in->has_uneval) {
        ev_init(&local, v);
        ev = &local;
    }

    if (in->ref && !apply_inplace(c, in->ref, v, ev)) {
        ok = 0;
        if (c->quiet)
            goto done;
    }
    if (in->dref) {
        const cJSON *target = in->dref;
        if (in->dyn_name) {
            /* The outermost resource in the dynamic scope that has this dynamic anchor wins. */
            for (int i = 0; i < c->n_scope; i++) {
                const val__sch_anchor *a =
                    val__schema_find_anchor(c->ix, c->scope[i], in->dyn_name, 1);
                if (a) {
                    target = a->node;
                    break;
                }
            }
        }
        if (!apply_inplace(c, target, v, ev)) {
            ok = 0;
            if (c->quiet)
                goto done;
        }
    }

    const cJSON *kw = get(s, "type");
    if (kw) {
        int match = 0;
        if (cJSON_IsString(kw)) {
            match = type_matches(kw->valuestring, v);
        } else {
            const cJSON *t;
            cJSON_ArrayForEach(t, kw) match = match || type_matches(t->valuestring, v);
        }
        if (!match) {
            char *want = cJSON_IsString(kw) ? wk_xstrdup(kw->valuestring) : show(kw);
            char *got = show(v);
            fail(c, "expected %s, got %s %s", want, type_of(v), got);
            free(want);
            free(got);
            /* Other keywords would only restate the type mismatch. */
            ok = 0;
            goto done;
        }
    }

    kw = get(s, "enum");
    if (kw) {
        int match = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, kw) match = match || json_equal(c, e, v);
        if (!match) {
            char *got = show(v), *want = show(kw);
            fail(c, "%s is not one of %s", got, want);
            free(got);
            free(want);
            ok = 0;
        }
    }
    kw = get(s, "const");
    if (kw && !json_equal(c, kw, v)) {
        char *got = show(v), *want = show(kw);
        fail(c, "%s is not the required value %s", got, want);
        free(got);
        free(want);
        ok = 0;
    }
    if (!ok && c->quiet)
        goto done;

    int part = 1;
    if (cJSON_IsNumber(v))
        part = check_number(c, s, v);
    else if (cJSON_IsString(v))
        part = check_string(c, s, in, v);
    else if (cJSON_IsArray(v))
        part = check_array(c, s, v, ev);
    else if (cJSON_IsObject(v))
        part = check_object(c, s, v, ev);
    ok = ok && part;
    if ((!ok && c->quiet) || c->aborted)
        goto done;

    if (!check_combinators(c, s, v, ev))
        ok = 0;
    if ((!ok && c->quiet) || c->aborted)
        goto done;
    if (in->has_uneval && !check_unevaluated(c, s, v, ev))
        ok = 0;
done:
    free(local.seen);
    return ok && !c->aborted;
}

static int validate(check *c, const cJSON *schema, const cJSON *v, evset *ev)
{
    if (!spend(c, 1))
        return 0;
    if (cJSON_IsBool(schema)) {
        if (cJSON_IsFalse(schema)) {
            fail(c, "no value is allowed here (schema false)");
            return 0;
        }
        return 1; /* a boolean schema produces no annotations */
    }
    if (c->depth >= EVAL_DEPTH_MAX) {
        c->aborted = VAL__SCH_ABORT_DEPTH;
        return 0;
    }
    const val__sch_info *in = val__schema_info_of(c->ix, schema);
    /* Entering a schema of another resource (by $ref or nesting) extends the dynamic scope. */
    int pushed = 0;
    if (c->n_scope == 0 || c->scope[c->n_scope - 1] != in->res) {
        if (c->n_scope == c->alloc_scope) {
            c->alloc_scope = c->alloc_scope ? c->alloc_scope * 2 : 8;
            c->scope = wk_xrealloc(c->scope, (size_t)c->alloc_scope * sizeof *c->scope);
        }
        c->scope[c->n_scope++] = in->res;
        pushed = 1;
    }
    c->depth++;
    int ok = validate_object(c, schema, in, v, ev);
    c->depth--;
    if (pushed)
        c->n_scope--;
    return ok;
}

void val__schema_eval(const val__sch_index *ix, const cJSON *schema, const cJSON *doc,
                      val__sch_eval *out)
{
    check c = {0};
    wk_buf_init(&c.path, 4096);
    wk_buf_init(&c.errs, VAL_EVIDENCE_MAX * 2);
    c.ix = ix;
    c.budget = EVAL_BUDGET;
    memset(out, 0, sizeof *out);
    out->ok = validate(&c, schema, doc, NULL);
    out->aborted = c.aborted;
    if (c.n_errs > MAX_ERRORS)
        wk_buf_appendf(&c.errs, "... and %d more\n", c.n_errs - MAX_ERRORS);
    out->first = c.first;
    out->errs = wk_buf_detach(&c.errs, NULL);
    free(c.hint);
    free(c.scope);
    wk_buf_release(&c.path);
    wk_buf_release(&c.errs);
}

void val__schema_eval_release(val__sch_eval *e)
{
    free(e->first);
    free(e->errs);
    memset(e, 0, sizeof *e);
}
