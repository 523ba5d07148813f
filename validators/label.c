/*
 * The label validator: a classify answer must name one of the task's labels,
 * the string enum of its schema (val_label_set). Models answer in many
 * shapes even when asked for JSON, so the answer is read leniently
 * (val_label_parse) and the verdict says what was read from what; the
 * label and the answer's own confidence go on the verdict for the router's
 * signals of doubt (agreement, confidence). An answer that names no label
 * fails no_label.
 */
#include "val_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* JSON objects tried inside free text before giving up (each a parse). */
#define LABEL_OBJECTS_MAX 16
/* Bytes of the answer quoted in a no_label verdict. */
#define LABEL_QUOTE_MAX 200

int val_label_set(const cJSON *schema, const char *field, const cJSON **labels, const char **path,
                  char *why, size_t whylen)
{
    const cJSON *node = schema;
    const cJSON *en = NULL;
    *labels = NULL;
    *path = "";
    if (!cJSON_IsObject(schema)) {
        snprintf(why, whylen, "has no JSON Schema with an enum of labels");
        return WK_ENOTFOUND;
    }
    if (!field || !*field) {
        en = cJSON_GetObjectItemCaseSensitive(schema, "enum");
        if (!en)
            field = "label";
    }
    if (!en) {
        /* Each dot-separated segment is one level of "properties". */
        const char *p = field;
        while (*p && node) {
            const char *dot = strchr(p, '.');
            size_t n = dot ? (size_t)(dot - p) : strlen(p);
            const cJSON *props = cJSON_GetObjectItemCaseSensitive(node, "properties");
            const cJSON *next = NULL, *it;
            cJSON_ArrayForEach(it, props)
            {
                if (it->string && strlen(it->string) == n && strncmp(it->string, p, n) == 0)
                    next = it;
            }
            node = next;
            p = dot ? dot + 1 : p + n;
        }
        en = node ? cJSON_GetObjectItemCaseSensitive(node, "enum") : NULL;
        *path = field;
    }
    if (!en) {
        if (**path)
            snprintf(why, whylen, "has no enum of labels at properties.%s of its schema", *path);
        else
            snprintf(why, whylen, "has no enum of labels in its schema");
        return WK_ENOTFOUND;
    }
    if (!cJSON_IsArray(en) || cJSON_GetArraySize(en) == 0) {
        snprintf(why, whylen, "has an empty enum of labels (field %s)",
                 **path ? *path : "(answer)");
        return WK_EINVAL;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, en)
    {
        if (!cJSON_IsString(it) || !it->valuestring[0] ||
            strlen(it->valuestring) >= VAL_LABEL_MAX) {
            snprintf(why, whylen,
                     "has a label that is not a non-empty string under %d bytes (field %s)",
                     VAL_LABEL_MAX, **path ? *path : "(answer)");
            return WK_EINVAL;
        }
    }
    *labels = en;
    return 0;
}

/* The enum's spelling of the n bytes at s, compared without case; NULL when none. */
static const char *match_exact(const char *s, size_t n, const cJSON *labels)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, labels)
    {
        if (strlen(it->valuestring) == n && strncasecmp(it->valuestring, s, n) == 0)
            return it->valuestring;
    }
    return NULL;
}

static int word_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '-';
}

/* The longest label that s starts with, followed by a non-word byte; NULL when none. */
static const char *match_prefix(const char *s, const cJSON *labels)
{
    const char *best = NULL;
    size_t bestn = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, labels)
    {
        size_t n = strlen(it->valuestring);
        if (n > bestn && strncasecmp(it->valuestring, s, n) == 0 && !word_char(s[n])) {
            best = it->valuestring;
            bestn = n;
        }
    }
    return best;
}

/* The value at `path` (dot segments; "" the document itself) when it is a string. */
static const char *string_at(const cJSON *doc, const char *path)
{
    const char *p = path;
    while (*p && doc) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        const cJSON *next = NULL, *it;
        if (!cJSON_IsObject(doc))
            return NULL;
        cJSON_ArrayForEach(it, doc)
        {
            if (it->string && strlen(it->string) == n && strncmp(it->string, p, n) == 0)
                next = it;
        }
        doc = next;
        p = dot ? dot + 1 : p + n;
    }
    return cJSON_IsString(doc) ? doc->valuestring : NULL;
}

/*
 * A parsed JSON document as an answer: its label (and confidence) when it
 * names one. `from` is where the document starts in the answer, so the
 * label's offset can be found for the logprob reader.
 */
static int from_doc(const cJSON *doc, const char *answer, size_t from, const cJSON *labels,
                    const char *path, const char *shape, val_label_parse_out *out)
{
    const char *v = string_at(doc, path);
    const char *l = v ? match_exact(v, strlen(v), labels) : NULL;
    if (!l)
        return 0;
    snprintf(out->label, sizeof out->label, "%s", l);
    out->shape = shape;
    const cJSON *conf =
        cJSON_IsObject(doc) ? cJSON_GetObjectItemCaseSensitive(doc, "confidence") : NULL;
    if (cJSON_IsNumber(conf) && conf->valuedouble >= 0 && conf->valuedouble <= 1)
        out->confidence = conf->valuedouble;
    const char *hit = strstr(answer + from, v);
    out->at = hit ? (size_t)(hit - answer) : from;
    return 1;
}

/* Tries the text at s (up to its NUL) as a whole JSON document. */
static int try_json(const char *s, const char *answer, const cJSON *labels, const char *path,
                    const char *shape, val_label_parse_out *out)
{
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithOpts(s, &end, 0);
    int ok = 0;
    if (doc) {
        while (end && isspace((unsigned char)*end))
            end++;
        if (end && *end == '\0')
            ok = from_doc(doc, answer, (size_t)(s - answer), labels, path, shape, out);
    }
    cJSON_Delete(doc);
    return ok;
}

/* Skips blanks and the wrappings models put around a label: quotes, emphasis, brackets. */
static const char *skip_wrap(const char *p)
{
    while (*p && (isspace((unsigned char)*p) || strchr("\"'`*_([#>", *p)))
        p++;
    return p;
}

int val_label_parse(const char *answer, const cJSON *labels, const char *path,
                    val_label_parse_out *out)
{
    memset(out, 0, sizeof *out);
    out->confidence = -1;
    out->shape = "";
    if (!answer || !labels)
        return WK_ENOTFOUND;

    /* 1. A bare label: the whole answer once its wrapping and final period are gone. */
    const char *b = skip_wrap(answer);
    size_t n = strlen(b);
    while (n && (isspace((unsigned char)b[n - 1]) || strchr("\"'`*_).]!", b[n - 1])))
        n--;
    const char *l = match_exact(b, n, labels);
    if (l) {
        snprintf(out->label, sizeof out->label, "%s", l);
        out->shape = "bare label";
        out->at = (size_t)(b - answer);
        return 0;
    }

    /* 2. The answer is a JSON document (an object, or a JSON string). */
    const char *t = answer;
    while (isspace((unsigned char)*t))
        t++;
    if ((*t == '{' || *t == '"') && try_json(t, answer, labels, path, "JSON object", out))
        return 0;

    /* 3. A fenced block holding JSON. */
    const char *fence = strstr(answer, "```");
    if (fence) {
        const char *body = strchr(fence, '\n');
        const char *close = body ? strstr(body + 1, "```") : NULL;
        if (body && close) {
            char *code = wk_xstrndup(body + 1, (size_t)(close - body - 1));
            cJSON *doc = cJSON_Parse(code);
            int ok = doc && from_doc(doc, answer, (size_t)(body + 1 - answer), labels, path,
                                     "fenced JSON block", out);
            cJSON_Delete(doc);
            free(code);
            if (ok)
                return 0;
        }
    }

    /* 4. The first JSON object in free text that names a label. */
    const char *p = answer;
    for (int k = 0; k < LABEL_OBJECTS_MAX && (p = strchr(p, '{')) != NULL; k++, p++) {
        cJSON *doc = cJSON_ParseWithOpts(p, NULL, 0);
        int ok = doc && from_doc(doc, answer, (size_t)(p - answer), labels, path,
                                 "JSON object in the text", out);
        cJSON_Delete(doc);
        if (ok)
            return 0;
    }

    /* 5. A label followed by an explanation, maybe after "label:" or "answer:". */
    p = skip_wrap(answer);
    static const char *const lead[] = {"label", "answer",        "category",
                                       "class", "the answer is", NULL};
    for (int i = 0; lead[i]; i++) {
        size_t ln = strlen(lead[i]);
        if (strncasecmp(p, lead[i], ln) == 0 && !word_char(p[ln])) {
            const char *q = p + ln;
            while (*q && (isspace((unsigned char)*q) || *q == ':' || *q == '*'))
                q++;
            p = skip_wrap(q);
            break;
        }
    }
    l = match_prefix(p, labels);
    if (l) {
        snprintf(out->label, sizeof out->label, "%s", l);
        out->shape = "label followed by an explanation";
        out->at = (size_t)(p - answer);
        return 0;
    }
    return WK_ENOTFOUND;
}

/* "bug, feature, question" (capped), for a no_label message. */
static void list_labels(const cJSON *labels, char *buf, size_t len)
{
    size_t used = 0;
    const cJSON *it;
    buf[0] = '\0';
    cJSON_ArrayForEach(it, labels)
    {
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", it->valuestring);
        if (w < 0 || (size_t)w >= len - used) {
            buf[used] = '\0';
            break;
        }
        used += (size_t)w;
    }
}

static int label_start(val_env *env, const val_input *in, const char *code, val_done_cb done,
                       void *arg)
{
    (void)env;
    (void)code; /* the raw answer is read: the label may sit outside any fenced block */
    val_verdict v = {0};
    const cJSON *labels;
    const char *path;
    char why[256];
    val_label_parse_out p;

    if (val_label_set(in->schema, in->label_field, &labels, &path, why, sizeof why) < 0) {
        char *msg = wk_xasprintf("the task %s", why);
        val_verdict_fail(&v, "label", "no_labels", msg, NULL);
        free(msg);
    } else if (val_label_parse(in->answer, labels, path, &p) < 0) {
        char names[VAL_MESSAGE_MAX - 64];
        list_labels(labels, names, sizeof names);
        char *msg = wk_xasprintf("the answer names none of the labels (%s)", names);
        char *quote = wk_escape_ctl(in->answer, strlen(in->answer), LABEL_QUOTE_MAX);
        char *ev = wk_xasprintf("no label read from the answer: %s", quote);
        val_verdict_fail(&v, "label", "no_label", msg, ev);
        free(ev);
        free(quote);
        free(msg);
    } else {
        val_verdict_pass(&v);
        snprintf(v.label, sizeof v.label, "%s", p.label);
        v.score = p.confidence;
        int json = strstr(p.shape, "JSON") != NULL;
        v.evidence = wk_xasprintf("label \"%s\" read from a %s%s%s", p.label, p.shape,
                                  json && *path ? ", field " : "", json ? path : "");
    }
    done(arg, &v);
    val_verdict_clear(&v);
    return 0;
}

const val_ops val__label_ops = {
    .name = "label",
    .start = label_start,
    .check_task = NULL, /* the label field is the cascade's: task.c checks the labels */
    .sandboxed = 0,
};
