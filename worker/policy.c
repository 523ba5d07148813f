/*
 * The data policy (see policy.h). Small tables, walked in full: a policy
 * names a few classes and a model has a few deployments.
 */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

void wk_policy_release(wk_policy *p)
{
    for (int i = 0; i < p->n; i++) {
        for (int k = 0; k < p->v[i].nlabels; k++)
            free(p->v[i].labels[k]);
        free(p->v[i].labels);
        free(p->v[i].name);
    }
    free(p->v);
    p->v = NULL;
    p->n = 0;
}

/* A name or label: non-empty, capped, and printable (it is shown in results and errors). */
static int name_ok(const cJSON *s)
{
    if (!cJSON_IsString(s) || !s->valuestring[0] || strlen(s->valuestring) > WK_POLICY_NAME_MAX)
        return 0;
    for (const unsigned char *c = (const unsigned char *)s->valuestring; *c; c++)
        if (*c < 0x20 || *c == 0x7f)
            return 0;
    return 1;
}

int wk_policy_parse(wk_policy *p, const cJSON *j, const char *where, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    if (!cJSON_IsObject(j))
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: \"data_policy\" must be an object mapping a data class to an array "
                       "of provider data labels",
                       where);
    int n = cJSON_GetArraySize(j);
    if (n > WK_POLICY_CLASSES_MAX)
        return wk_errf(WK_ECONFIG, err, errlen, "%s: data_policy: more than %d classes", where,
                       WK_POLICY_CLASSES_MAX);
    p->v = wk_xcalloc((size_t)n + 1, sizeof *p->v);
    const cJSON *c;
    cJSON_ArrayForEach(c, j)
    {
        const char *name = c->string;
        if (!name || !*name || strlen(name) > WK_POLICY_NAME_MAX)
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: data_policy: a class name must be 1 to %d characters", where,
                           WK_POLICY_NAME_MAX);
        int nl = cJSON_GetArraySize(c);
        if (!cJSON_IsArray(c) || nl > WK_POLICY_LABELS_MAX)
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: data_policy.%.64s must be an array of at most %d data labels",
                           where, name, WK_POLICY_LABELS_MAX);
        wk_data_class *dc = &p->v[p->n++];
        dc->name = wk_xstrdup(name);
        dc->labels = wk_xcalloc((size_t)nl + 1, sizeof *dc->labels);
        const cJSON *l;
        cJSON_ArrayForEach(l, c)
        {
            if (!name_ok(l))
                return wk_errf(WK_ECONFIG, err, errlen,
                               "%s: data_policy.%.64s: a label must be a printable string of 1 "
                               "to %d characters",
                               where, name, WK_POLICY_NAME_MAX);
            dc->labels[dc->nlabels++] = wk_xstrdup(l->valuestring);
        }
    }
    return 0;
}

const wk_data_class *wk_policy_class(const wk_policy *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->v[i].name, name) == 0)
            return &p->v[i];
    return NULL;
}

void wk_policy_merge(wk_policy *into, const wk_policy *base)
{
    for (int i = 0; i < base->n; i++) {
        const wk_data_class *b = &base->v[i];
        if (wk_policy_class(into, b->name))
            continue; /* the cascade's own entry for the class wins */
        into->v = wk_xrealloc(into->v, (size_t)(into->n + 1) * sizeof *into->v);
        wk_data_class *dc = &into->v[into->n++];
        dc->name = wk_xstrdup(b->name);
        dc->nlabels = b->nlabels;
        dc->labels = wk_xcalloc((size_t)b->nlabels + 1, sizeof *dc->labels);
        for (int k = 0; k < b->nlabels; k++)
            dc->labels[k] = wk_xstrdup(b->labels[k]);
    }
}

int wk_policy_check_labels(const wk_policy *p, const wk_config *cfg, const char *where, char *err,
                           size_t errlen)
{
    for (int i = 0; i < p->n; i++)
        for (int k = 0; k < p->v[i].nlabels; k++) {
            const char *l = p->v[i].labels[k];
            int known = 0;
            for (int q = 0; q < cfg->nproviders && !known; q++)
                known = cfg->providers[q].data && strcmp(cfg->providers[q].data, l) == 0;
            if (!known)
                return wk_errf(WK_ECONFIG, err, errlen,
                               "%s: data_policy.%s: unknown data label \"%s\" (no provider in "
                               "the models file declares \"data\": \"%s\")",
                               where, p->v[i].name, l, l);
        }
    return 0;
}

int wk_data_class_reaches(const wk_data_class *c, const wk_provider *prov)
{
    if (!c || !prov->data)
        return 0;
    for (int k = 0; k < c->nlabels; k++)
        if (strcmp(c->labels[k], prov->data) == 0)
            return 1;
    return 0;
}

void wk_policy_deployments(const wk_policy *p, const char *data_class, const wk_model *m,
                           wk_deployments *out)
{
    memset(out, 0, sizeof *out);
    const wk_data_class *c = data_class ? wk_policy_class(p, data_class) : NULL;
    out->bound = data_class != NULL;
    for (int f = -1; f < m->nfallbacks && out->n < WK_DEPLOY_MAX; f++) {
        const wk_model *d = f < 0 ? m : m->fallbacks[f];
        if (!data_class || wk_data_class_reaches(c, d->provider))
            out->v[out->n++] = d;
    }
}
