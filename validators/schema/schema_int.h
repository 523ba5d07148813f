/*
 * What schema.c, schema_index.c and schema_re.c share, and the unit tests
 * may call: the pattern engine and the index of a schema. Internal to
 * validators/.
 *
 * Patterns ("pattern", "patternProperties") are ECMA-262 regular expressions,
 * matched on Unicode code points with a Pike VM, so matching time is linear
 * in the subject times the program size and no pattern can backtrack forever.
 * Supported: literals and escapes (\t \n \v \f \r \0 \cX \xHH \uHHHH, surrogate
 * pairs, \u{H...}, escaped syntax characters), ".", classes [...] and [^...]
 * with ranges, \d \D \w \W \s \S (also inside classes), \p{L} / \p{Letter}
 * and \p{N} / \p{Number} (and \P), anchors ^ $ \b \B, groups (...) (?:...)
 * (?<name>...), alternation, and the quantifiers * + ? {n} {n,} {n,m} with
 * their lazy forms (laziness does not change whether a pattern matches).
 * Refused at compile time, with a message naming the construct: backreferences
 * (\1, \k<name>), lookahead and lookbehind, other \p{...} properties, and
 * programs larger than VAL__RE_PROG_MAX (a big {n,m} expands).
 */
#ifndef VAL_SCHEMA_INT_H
#define VAL_SCHEMA_INT_H

#include "validators/val_int.h"

#include <stddef.h>
#include <stdint.h>

/* ---- patterns (schema_re.c) ----------------------------------------------- */

/* Instructions a compiled pattern may hold; caps what {n,m} can expand to. */
#define VAL__RE_PROG_MAX 20000
/* Bytes of pattern we compile; longer ones are refused. */
#define VAL__RE_PATTERN_MAX 4096

typedef struct val__re val__re;

/*
 * Compiles `pattern` (NUL-terminated UTF-8). Returns 0 and *out (freed with
 * val__re_free), or WK_EINVAL with a message in err (size errlen) naming what
 * cannot be compiled.
 */
int val__re_compile(const char *pattern, val__re **out, char *err, size_t errlen);

/*
 * Searches s (len bytes of UTF-8; invalid bytes count as one code point each)
 * for a match anywhere, as ECMA-262 RegExp.prototype.test does without flags.
 * `budget` is decremented by the work done (instruction steps); when it would
 * go below zero the search stops. Returns 1 match, 0 no match, WK_ETOOBIG when
 * the budget ran out.
 */
int val__re_search(const val__re *re, const char *s, size_t len, int64_t *budget);

void val__re_free(val__re *re);

/* ---- the index of a schema (schema_index.c) --------------------------------- */

/* A schema resource: the root, or a subschema with "$id". */
typedef struct val__sch_res {
    char *uri; /* absolute, without fragment; owned */
    const cJSON *node;
} val__sch_res;

typedef struct val__sch_anchor {
    int res;
    const char *name; /* borrowed from the schema */
    const cJSON *node;
    int dynamic; /* from "$dynamicAnchor" */
} val__sch_anchor;

/* What the index knows about one schema (object or boolean) of the document. */
typedef struct val__sch_info {
    const cJSON *node;
    int res;              /* the resource whose URI is this schema's base */
    const cJSON *ref;     /* "$ref" target */
    const cJSON *dref;    /* "$dynamicRef" initial target */
    const char *dyn_name; /* $dynamicRef names a $dynamicAnchor: search the dynamic scope */
    val__re *pattern;     /* "pattern", compiled */
    val__re *key_re;      /* this schema is a patternProperties value: its key, compiled */
    int has_uneval;       /* unevaluatedProperties or unevaluatedItems is here */
} val__sch_info;

typedef struct val__sch_index {
    const cJSON *root;
    val__sch_info *infos;
    size_t n_infos, alloc_infos;
    size_t *slots; /* open addressing on node pointers: info index + 1; 0 is empty */
    size_t n_slots;
    val__sch_res *res;
    int n_res, alloc_res;
    val__sch_anchor *anchors;
    int n_anchors, alloc_anchors;
    wk_buf path; /* keyword path of the walk, for messages */
    char *err;
    size_t errlen;
} val__sch_index;

/*
 * Builds the index of `schema` (borrowed; it must outlive the index): checks
 * every keyword, resolves every reference, refuses cycles. Returns 0, or
 * WK_EINVAL with a message in err (size errlen) naming the keyword and where
 * it is. Release the index with val__schema_index_release either way.
 */
int val__schema_index_build(val__sch_index *ix, const cJSON *schema, char *err, size_t errlen);
void val__schema_index_release(val__sch_index *ix);
/* The index's record of a schema node of the document; NULL for one it never walked. */
val__sch_info *val__schema_info_of(const val__sch_index *ix, const cJSON *node);
/* The anchor `name` of resource `res` (only a $dynamicAnchor when `dynamic`); NULL if none. */
val__sch_anchor *val__schema_find_anchor(const val__sch_index *ix, int res, const char *name,
                                         int dynamic);
/* Appends "/token" to a JSON pointer, escaped as RFC 6901 says (~ is ~0, / is ~1). */
void val__schema_pointer_push(wk_buf *b, const char *token);
/* Cuts a JSON pointer back to `mark` bytes. */
void val__schema_pointer_pop(wk_buf *b, size_t mark);

/* ---- the walk (schema_eval.c) ----------------------------------------------- */

/* Why a walk stopped early. */
enum { VAL__SCH_ABORT_NONE, VAL__SCH_ABORT_BUDGET, VAL__SCH_ABORT_DEPTH };

/* What checking an instance against a schema found. */
typedef struct val__sch_eval {
    int ok;      /* 1: the instance matches */
    int aborted; /* VAL__SCH_ABORT_*: a cap on work or nesting stopped the walk; ok is 0 */
    char *first; /* owned: the first failure, "<pointer>: <what>"; may be NULL */
    char *errs;  /* owned: the first failures, one a line, then "... and N more"; may be NULL */
} val__sch_eval;

/*
 * Checks `doc` against `schema`, whose index is ix (built from that schema).
 * Fills *out; release it with val__schema_eval_release. Borrowed arguments.
 */
void val__schema_eval(const val__sch_index *ix, const cJSON *schema, const cJSON *doc,
                      val__sch_eval *out);
void val__schema_eval_release(val__sch_eval *e);

#endif
