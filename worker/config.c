/*
 * Loading the models file and the cascade files. Validation is strict: an
 * unknown model, a missing field or a price that is not a number stops the
 * program at startup with the file and field named.
 */
#include "config.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/util.h"
#include "policy.h"
#include "similar.h"
#include "validators/val.h"

#define CONFIG_FILE_CAP (4u << 20)

/* Expands ${NAME} from the environment; an unset variable is an error naming it. Caller frees *out.
 */
static int expand_env(const char *in, char **out, char *err, size_t errlen)
{
    wk_buf b;
    int rc = 0;
    wk_buf_init(&b, 1u << 16);
    const char *p = in;
    while (*p) {
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (!end) {
                rc = wk_errf(WK_ECONFIG, err, errlen, "unterminated ${ in \"%s\"", in);
                goto cleanup;
            }
            char *name = wk_xstrndup(p + 2, (size_t)(end - p - 2));
            const char *val = getenv(name);
            if (!val) {
                rc = wk_errf(WK_ECONFIG, err, errlen, "environment variable %s is not set", name);
                free(name);
                goto cleanup;
            }
            free(name);
            if (wk_buf_append(&b, val, strlen(val))) {
                rc = wk_errf(WK_ECONFIG, err, errlen, "expanded value too long");
                goto cleanup;
            }
            p = end + 1;
        } else {
            if (wk_buf_append(&b, p, 1)) {
                rc = wk_errf(WK_ECONFIG, err, errlen, "expanded value too long");
                goto cleanup;
            }
            p++;
        }
    }
    *out = wk_buf_detach(&b, NULL);
cleanup:
    wk_buf_release(&b);
    return rc;
}

static int load_json(const char *path, cJSON **out, char *err, size_t errlen)
{
    char *text = NULL;
    size_t len = 0;
    int rc = wk_read_file(path, CONFIG_FILE_CAP, &text, &len);
    if (rc)
        return wk_errf(WK_ECONFIG, err, errlen, "%s: cannot read (%s)", path, wk_strerror(rc));
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        /* Report the line of the parse error: the position is all cJSON gives. */
        int line = 1;
        for (const char *q = text; end && q < end && *q; q++)
            line += *q == '\n';
        rc = wk_errf(WK_ECONFIG, err, errlen, "%s:%d: not valid JSON", path, line);
    } else if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        rc = wk_errf(WK_ECONFIG, err, errlen, "%s: top level must be an object", path);
    } else {
        *out = j;
    }
    free(text);
    return rc;
}

static const char *str_field(const cJSON *o, const char *name)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(f) ? f->valuestring : NULL;
}

static int num_field(const cJSON *o, const char *name, double *out)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(f))
        return -1;
    *out = f->valuedouble;
    return 0;
}

/*
 * A number of the config as a long: one no long can hold (1e300) is cut to
 * +-1e15, which every count here (tokens, limits) treats as unlimited;
 * converting it as it is would be undefined (fuzz finding).
 */
static long to_long(double v)
{
    return v > 1e15 ? (long)1e15 : v < -1e15 ? (long)-1e15 : (long)v;
}

static int load_providers(wk_config *cfg, const cJSON *root, const char *path, int mode, char *err,
                          size_t errlen)
{
    const cJSON *provs = cJSON_GetObjectItemCaseSensitive(root, "providers");
    if (!cJSON_IsObject(provs))
        return wk_errf(WK_ECONFIG, err, errlen, "%s: \"providers\" must be an object", path);
    cfg->nproviders = cJSON_GetArraySize(provs);
    cfg->providers = wk_xcalloc((size_t)cfg->nproviders, sizeof(wk_provider));
    int i = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, provs)
    {
        wk_provider *pv = &cfg->providers[i++];
        pv->name = wk_xstrdup(p->string);
        const char *api = str_field(p, "api");
        const char *url = str_field(p, "base_url");
        if (!api || (strcmp(api, "openai") && strcmp(api, "anthropic") && strcmp(api, "gemini")))
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: providers.%s.api must be \"openai\", \"anthropic\" or \"gemini\"",
                           path, pv->name);
        if (!url)
            return wk_errf(WK_ECONFIG, err, errlen, "%s: providers.%s.base_url is missing", path,
                           pv->name);
        pv->api = wk_xstrdup(api);
        char sub[256];
        if (mode == WK_CONFIG_OFFLINE)
            pv->base_url = wk_xstrdup(url);
        else if (expand_env(url, &pv->base_url, sub, sizeof sub))
            return wk_errf(WK_ECONFIG, err, errlen, "%s: providers.%s.base_url: %s", path, pv->name,
                           sub);
        /* A trailing slash would double up with "/chat/completions". */
        size_t ul = strlen(pv->base_url);
        while (ul > 0 && pv->base_url[ul - 1] == '/')
            pv->base_url[--ul] = '\0';
        const cJSON *ke = cJSON_GetObjectItemCaseSensitive(p, "key_env");
        if (cJSON_IsString(ke))
            pv->key_env = wk_xstrdup(ke->valuestring);
        else if (ke && !cJSON_IsNull(ke))
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: providers.%s.key_env must be a string or null", path, pv->name);
        double mi = 64;
        if (cJSON_GetObjectItemCaseSensitive(p, "max_inflight") &&
            (num_field(p, "max_inflight", &mi) || mi < 1 || mi > 100000))
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: providers.%s.max_inflight must be a number >= 1", path, pv->name);
        pv->max_inflight = (int)mi;
        struct {
            const char *name;
            double dflt, lo, hi;
            double *out;
        } nums[] = {
            {"rpm", 0, 0, 1e9, &pv->rpm},
            {"tpm", 0, 0, 1e12, &pv->tpm},
        };
        for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
            *nums[k].out = nums[k].dflt;
            if (cJSON_GetObjectItemCaseSensitive(p, nums[k].name) &&
                (num_field(p, nums[k].name, nums[k].out) || *nums[k].out < nums[k].lo ||
                 *nums[k].out > nums[k].hi))
                return wk_errf(WK_ECONFIG, err, errlen, "%s: providers.%s.%s must be a number >= 0",
                               path, pv->name, nums[k].name);
        }
        double bf = 5, bc = 30;
        if (cJSON_GetObjectItemCaseSensitive(p, "breaker_failures") &&
            (num_field(p, "breaker_failures", &bf) || bf < 1 || bf > 1e6))
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: providers.%s.breaker_failures must be a number from 1 to 1000000",
                           path, pv->name);
        if (cJSON_GetObjectItemCaseSensitive(p, "breaker_cooldown_s") &&
            (num_field(p, "breaker_cooldown_s", &bc) || bc < 0 || bc > 86400))
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: providers.%s.breaker_cooldown_s must be a number from 0 to 86400",
                           path, pv->name);
        pv->breaker_failures = (int)bf;
        pv->breaker_cooldown_ms = (long)(bc * 1000);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(p, "data");
        if (data && (!cJSON_IsString(data) || !data->valuestring[0] ||
                     strlen(data->valuestring) > WK_POLICY_NAME_MAX))
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: providers.%s.data must be a data label (a string of 1 to %d "
                           "characters, e.g. \"self_hosted\")",
                           path, pv->name, WK_POLICY_NAME_MAX);
        pv->data = data ? wk_xstrdup(data->valuestring) : NULL;
        int lrc = wk__lanes_provider(pv, p, path, err, errlen);
        if (lrc)
            return lrc;
    }
    return 0;
}

static wk_provider *find_provider(wk_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->nproviders; i++)
        if (strcmp(cfg->providers[i].name, name) == 0)
            return &cfg->providers[i];
    return NULL;
}

static int load_models(wk_config *cfg, const cJSON *root, const char *path, char *err,
                       size_t errlen)
{
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!cJSON_IsObject(models))
        return wk_errf(WK_ECONFIG, err, errlen, "%s: \"models\" must be an object", path);
    cfg->nmodels = cJSON_GetArraySize(models);
    cfg->models = wk_xcalloc((size_t)cfg->nmodels, sizeof(wk_model));
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, models)
    {
        wk_model *md = &cfg->models[i++];
        md->name = wk_xstrdup(m->string);
        const char *prov = str_field(m, "provider");
        if (!prov)
            return wk_errf(WK_ECONFIG, err, errlen, "%s: models.%s.provider is missing", path,
                           md->name);
        md->provider = find_provider(cfg, prov);
        if (!md->provider)
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: models.%s.provider: unknown provider \"%s\"", path, md->name, prov);
        const char *id = str_field(m, "id");
        md->id = wk_xstrdup(id ? id : md->name);
        if (num_field(m, "input_usd_per_mtok", &md->input_usd_per_mtok) ||
            md->input_usd_per_mtok < 0)
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: models.%s.input_usd_per_mtok must be a number >= 0", path,
                           md->name);
        if (num_field(m, "output_usd_per_mtok", &md->output_usd_per_mtok) ||
            md->output_usd_per_mtok < 0)
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: models.%s.output_usd_per_mtok must be a number >= 0", path,
                           md->name);
        md->cached_input_usd_per_mtok = md->input_usd_per_mtok;
        if (cJSON_GetObjectItemCaseSensitive(m, "cached_input_usd_per_mtok") &&
            (num_field(m, "cached_input_usd_per_mtok", &md->cached_input_usd_per_mtok) ||
             md->cached_input_usd_per_mtok < 0))
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: models.%s.cached_input_usd_per_mtok must be a number >= 0", path,
                           md->name);
        double v = 0;
        if (!num_field(m, "context", &v))
            md->context = to_long(v);
        v = 4096;
        if (cJSON_GetObjectItemCaseSensitive(m, "max_tokens") &&
            (num_field(m, "max_tokens", &v) || v < 1))
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: models.%s.max_tokens must be a number >= 1", path, md->name);
        md->max_tokens = to_long(v);
        int lrc = wk__lanes_model(md, m, path, err, errlen);
        if (lrc)
            return lrc;
    }
    /* Fallbacks name other models, so they are resolved once all are known. */
    i = 0;
    cJSON_ArrayForEach(m, models)
    {
        wk_model *md = &cfg->models[i++];
        const cJSON *fb = cJSON_GetObjectItemCaseSensitive(m, "fallbacks");
        if (!fb)
            continue;
        if (!cJSON_IsArray(fb))
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: models.%s.fallbacks must be an array of model names", path,
                           md->name);
        if (cJSON_GetArraySize(fb) > WK_DEPLOY_MAX - 1)
            return wk_errf(WK_ECONFIG, err, errlen, "%s: models.%s.fallbacks: at most %d", path,
                           md->name, WK_DEPLOY_MAX - 1);
        md->fallbacks = wk_xcalloc((size_t)cJSON_GetArraySize(fb) + 1, sizeof(wk_model *));
        const cJSON *f;
        cJSON_ArrayForEach(f, fb)
        {
            wk_model *alt = cJSON_IsString(f) ? wk_config_model(cfg, f->valuestring) : NULL;
            if (!alt || alt == md)
                return wk_errf(WK_ECONFIG, err, errlen,
                               "%s: models.%s.fallbacks: unknown model \"%s\"", path, md->name,
                               cJSON_IsString(f) ? f->valuestring : "?");
            md->fallbacks[md->nfallbacks++] = alt;
        }
    }
    return 0;
}

static int load_skip_rules(wk_tier *tier, const cJSON *t, const char *path, int i, char *err,
                           size_t errlen)
{
    const cJSON *rules = cJSON_GetObjectItemCaseSensitive(t, "skip_when");
    if (!rules)
        return 0;
    if (!cJSON_IsArray(rules))
        return wk_errf(WK_ECONFIG, err, errlen, "%s: tiers[%d].skip_when must be an array of rules",
                       path, i);
    tier->skip = wk_xcalloc((size_t)cJSON_GetArraySize(rules) + 1, sizeof(wk_skip_rule));
    const cJSON *r;
    cJSON_ArrayForEach(r, rules)
    {
        wk_skip_rule *k = &tier->skip[tier->nskip++];
        k->prompt_tokens_over = k->prompt_tokens_upto = -1;
        k->has_tests = -1;
        const cJSON *f;
        cJSON_ArrayForEach(f, r)
        {
            const char *n = f->string;
            if (strcmp(n, "prompt_tokens_over") == 0 && cJSON_IsNumber(f))
                k->prompt_tokens_over = to_long(f->valuedouble);
            else if (strcmp(n, "prompt_tokens_upto") == 0 && cJSON_IsNumber(f))
                k->prompt_tokens_upto = to_long(f->valuedouble);
            else if (strcmp(n, "kind") == 0 && cJSON_IsString(f))
                k->kind = wk_xstrdup(f->valuestring);
            else if (strcmp(n, "language") == 0 && cJSON_IsString(f))
                k->language = wk_xstrdup(f->valuestring);
            else if (strcmp(n, "has_tests") == 0 && cJSON_IsBool(f))
                k->has_tests = cJSON_IsTrue(f);
            else
                return wk_errf(WK_ECONFIG, err, errlen,
                               "%s: tiers[%d].skip_when: unknown or mistyped condition \"%s\"",
                               path, i, n);
        }
    }
    return 0;
}

/* 1 when the cascade reads labels (its validators list "label"): a classify cascade. */
static int reads_labels(const wk_cascade *c)
{
    for (int i = 0; i < c->nvalidators; i++)
        if (strcmp(c->validators[i], "label") == 0)
            return 1;
    return 0;
}

/*
 * A classify tier's signals of doubt: "agree", "samples", "min_confidence"
 * and "confidence". Each model asked for logprobs must be able to give them.
 */
static int load_doubt(wk_config *cfg, const wk_cascade *c, wk_tier *tier, const cJSON *t,
                      const char *path, int i, char *err, size_t errlen)
{
    const cJSON *agree = cJSON_GetObjectItemCaseSensitive(t, "agree");
    const cJSON *samples = cJSON_GetObjectItemCaseSensitive(t, "samples");
    const cJSON *minc = cJSON_GetObjectItemCaseSensitive(t, "min_confidence");
    const cJSON *conf = cJSON_GetObjectItemCaseSensitive(t, "confidence");
    tier->samples = 1;
    tier->min_confidence = -1;
    tier->vote_min = 1;
    if (!agree && !samples && !minc && !conf)
        return 0;
    if (!reads_labels(c))
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: tiers[%d]: agree, samples and confidence need the \"label\" "
                       "validator in \"validators\"",
                       path, i);
    if (agree) {
        const cJSON *models = cJSON_GetObjectItemCaseSensitive(agree, "models");
        int n = cJSON_GetArraySize(models);
        if (!cJSON_IsObject(agree) || !cJSON_IsArray(models) || n < 1 || n > WK_AGREE_MAX)
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: tiers[%d].agree.models must be an array of 1 to %d model names",
                           path, i, WK_AGREE_MAX);
        int has_own = 0;
        for (int k = 0; k < n; k++) {
            const cJSON *m = cJSON_GetArrayItem(models, k);
            wk_model *wm = cJSON_IsString(m) ? wk_config_model(cfg, m->valuestring) : NULL;
            if (!wm)
                return wk_errf(WK_ECONFIG, err, errlen,
                               "%s: tiers[%d].agree.models[%d]: unknown model \"%s\"", path, i, k,
                               cJSON_IsString(m) ? m->valuestring : "?");
            has_own |= wm == tier->model;
            tier->agree[tier->nagree++] = wm;
        }
        if (!has_own)
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: tiers[%d]: the tier's model %s must be one of agree.models", path,
                           i, tier->model->name);
    }
    int votes_per = 1, min_given = 0;
    double v;
    if (samples) {
        const cJSON *sn =
            cJSON_IsObject(samples) ? cJSON_GetObjectItemCaseSensitive(samples, "n") : samples;
        if (!cJSON_IsNumber(sn) || sn->valuedouble < 1 || sn->valuedouble > WK_SAMPLES_MAX ||
            sn->valuedouble != (int)sn->valuedouble)
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: tiers[%d].samples must be a whole number from 1 to %d (or "
                           "{\"n\": N, \"min\": K})",
                           path, i, WK_SAMPLES_MAX);
        votes_per = tier->samples = (int)sn->valuedouble;
        if (cJSON_IsObject(samples) && cJSON_GetObjectItemCaseSensitive(samples, "min")) {
            if (num_field(samples, "min", &v))
                return wk_errf(WK_ECONFIG, err, errlen, "%s: tiers[%d].samples.min: a number", path,
                               i);
            /* Out of range is refused below; casting it as it is would be undefined (fuzz). */
            tier->vote_min = v > -1e6 && v < 1e6 ? (int)v : 0;
            min_given = 1;
        }
    }
    int votes = (tier->nagree ? tier->nagree : 1) * votes_per;
    if (agree && cJSON_GetObjectItemCaseSensitive(agree, "min")) {
        if (num_field(agree, "min", &v))
            return wk_errf(WK_ECONFIG, err, errlen, "%s: tiers[%d].agree.min: a number", path, i);
        tier->vote_min = v > -1e6 && v < 1e6 ? (int)v : 0;
        min_given = 1;
    }
    if (!min_given) /* all the models must agree; samples of one model need a majority */
        tier->vote_min = tier->nagree ? votes : votes / 2 + 1;
    if (tier->vote_min < 1 || tier->vote_min > votes)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: tiers[%d]: the votes a label needs (min) must be from 1 to %d", path, i,
                       votes);
    if (conf) {
        const char *cs = cJSON_IsString(conf) ? conf->valuestring : "";
        if (strcmp(cs, "logprobs") == 0)
            tier->confidence = WK_CONF_LOGPROBS;
        else if (strcmp(cs, "self") == 0)
            tier->confidence = WK_CONF_SELF;
        else
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: tiers[%d].confidence must be \"logprobs\" or \"self\"", path, i);
    }
    if (minc) {
        if (!cJSON_IsNumber(minc) || minc->valuedouble < 0 || minc->valuedouble > 1)
            return wk_errf(WK_ECONFIG, err, errlen,
                           "%s: tiers[%d].min_confidence must be a number from 0 to 1", path, i);
        tier->min_confidence = minc->valuedouble;
        if (!tier->confidence)
            tier->confidence = WK_CONF_LOGPROBS;
    }
    if (tier->confidence == WK_CONF_LOGPROBS) {
        int n = tier->nagree ? tier->nagree : 1;
        for (int k = 0; k < n; k++) {
            const wk_model *m = tier->nagree ? tier->agree[k] : tier->model;
            if (strcmp(m->provider->api, "anthropic") == 0)
                return wk_errf(WK_ECONFIG, err, errlen,
                               "%s: tiers[%d] (%s): confidence \"logprobs\" needs a provider that "
                               "returns logprobs; %s (provider %s, api anthropic) has none",
                               path, i, tier->model->name, m->name, m->provider->name);
        }
    }
    return 0;
}

/* A classify cascade's label field, feedback on doubt, and the labels of its own schema. */
static int load_labels(wk_cascade *c, const cJSON *root, const char *path, char *err, size_t errlen)
{
    const cJSON *lf = cJSON_GetObjectItemCaseSensitive(root, "label_field");
    if (lf && !cJSON_IsString(lf))
        return wk_errf(WK_ECONFIG, err, errlen, "%s: \"label_field\" must be a string", path);
    c->label_field = lf ? wk_xstrdup(lf->valuestring) : NULL;
    c->doubt_feedback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "doubt_feedback"));
    if (!reads_labels(c) || !c->schema)
        return 0; /* tasks bring their schemas: task.c checks each one's labels */
    const cJSON *labels;
    const char *lp;
    char why[256];
    if (val_label_set(c->schema, c->label_field, &labels, &lp, why, sizeof why) < 0)
        return wk_errf(WK_ECONFIG, err, errlen, "%s: classify cascade %s: its schema %s", path,
                       c->name, why);
    return 0;
}

/*
 * A cascade's "start" (README "Similar tasks start where they succeeded"):
 * {"by": "similar", "k": K, "min_history": N}; it needs the models file's
 * "embeddings".
 */
static int load_start(const wk_config *cfg, wk_cascade *c, const cJSON *root, const char *path,
                      char *err, size_t errlen)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "start");
    if (!st)
        return 0;
    const char *by = str_field(st, "by");
    if (!cJSON_IsObject(st) || !by || strcmp(by, "similar") != 0)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: start: must be {\"by\": \"similar\", \"k\": K, \"min_history\": N}",
                       path);
    double k = 10, mh = 50;
    if (cJSON_GetObjectItemCaseSensitive(st, "k") &&
        (num_field(st, "k", &k) || k < 1 || k > 100 || k != (int)k))
        return wk_errf(WK_ECONFIG, err, errlen, "%s: start.k must be a whole number from 1 to 100",
                       path);
    if (cJSON_GetObjectItemCaseSensitive(st, "min_history") &&
        (num_field(st, "min_history", &mh) || mh < 0 || mh > 1e7 || mh != (long)mh))
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: start.min_history must be a whole number from 0 to 10000000", path);
    if (!cfg->embed_model)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: start: \"by\": \"similar\" needs \"embeddings\": {\"model\": ...} "
                       "in the models file",
                       path);
    c->start_similar = 1;
    c->start_k = (int)k;
    c->start_min_history = (long)mh;
    return 0;
}

/* The models file's "embeddings": {"model": NAME, "dimensions": D}. */
static int load_embeddings(wk_config *cfg, const cJSON *root, const char *path, char *err,
                           size_t errlen)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "embeddings");
    if (!e)
        return 0;
    const char *name = str_field(e, "model");
    if (!cJSON_IsObject(e) || !name)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: embeddings: must be {\"model\": NAME} naming a model", path);
    cfg->embed_model = wk_config_model(cfg, name);
    if (!cfg->embed_model)
        return wk_errf(WK_ECONFIG, err, errlen, "%s: embeddings.model: unknown model \"%s\"", path,
                       name);
    if (strcmp(cfg->embed_model->provider->api, "openai") != 0)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: embeddings.model: %s is on provider %s, whose api is %s: only an "
                       "openai-api provider serves /embeddings here",
                       path, name, cfg->embed_model->provider->name,
                       cfg->embed_model->provider->api);
    double d = 0;
    if (cJSON_GetObjectItemCaseSensitive(e, "dimensions") &&
        (num_field(e, "dimensions", &d) || d < 1 || d > WK_SIMILAR_DIM_MAX || d != (int)d))
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: embeddings.dimensions must be a whole number from 1 to %d", path,
                       WK_SIMILAR_DIM_MAX);
    cfg->embed_dimensions = (int)d;
    return 0;
}

static int load_cascade(wk_config *cfg, wk_cascade *c, const char *path, char *err, size_t errlen)
{
    cJSON *root = NULL;
    int rc = load_json(path, &root, err, errlen);
    if (rc)
        return rc;
    const char *name = str_field(root, "name");
    if (!name) {
        rc = wk_errf(WK_ECONFIG, err, errlen, "%s: \"name\" is missing", path);
        goto cleanup;
    }
    c->name = wk_xstrdup(name);
    const cJSON *match = cJSON_GetObjectItemCaseSensitive(root, "match");
    if (match) {
        const char *k = str_field(match, "kind");
        const char *l = str_field(match, "language");
        c->match_kind = k ? wk_xstrdup(k) : NULL;
        c->match_language = l ? wk_xstrdup(l) : NULL;
    }
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(root, "validators");
    if (!cJSON_IsArray(vals)) {
        rc = wk_errf(WK_ECONFIG, err, errlen, "%s: \"validators\" must be an array of names", path);
        goto cleanup;
    }
    c->nvalidators = cJSON_GetArraySize(vals);
    c->validators = wk_xcalloc((size_t)c->nvalidators + 1, sizeof(char *));
    for (int i = 0; i < c->nvalidators; i++) {
        const cJSON *v = cJSON_GetArrayItem(vals, i);
        if (!cJSON_IsString(v) || !val_find(v->valuestring)) {
            rc = wk_errf(WK_ECONFIG, err, errlen, "%s: validators[%d]: unknown validator \"%s\"",
                         path, i, cJSON_IsString(v) ? v->valuestring : "?");
            goto cleanup;
        }
        c->validators[i] = wk_xstrdup(v->valuestring);
    }
    c->feedback = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "feedback"));
    const cJSON *tiers = cJSON_GetObjectItemCaseSensitive(root, "tiers");
    if (!cJSON_IsArray(tiers) || cJSON_GetArraySize(tiers) == 0) {
        rc = wk_errf(WK_ECONFIG, err, errlen, "%s: \"tiers\" must be a non-empty array", path);
        goto cleanup;
    }
    c->ntiers = cJSON_GetArraySize(tiers);
    c->tiers = wk_xcalloc((size_t)c->ntiers, sizeof(wk_tier));
    for (int i = 0; i < c->ntiers; i++) {
        const cJSON *t = cJSON_GetArrayItem(tiers, i);
        const char *mname = str_field(t, "model");
        if (!mname) {
            rc = wk_errf(WK_ECONFIG, err, errlen, "%s: tiers[%d].model is missing", path, i);
            goto cleanup;
        }
        c->tiers[i].model = wk_config_model(cfg, mname);
        if (!c->tiers[i].model) {
            rc = wk_errf(WK_ECONFIG, err, errlen, "%s: tiers[%d].model: unknown model \"%s\"", path,
                         i, mname);
            goto cleanup;
        }
        double a = 1;
        if (cJSON_GetObjectItemCaseSensitive(t, "attempts") &&
            (num_field(t, "attempts", &a) || a < 1 || a > 100)) {
            rc = wk_errf(WK_ECONFIG, err, errlen,
                         "%s: tiers[%d].attempts must be a number from 1 to 100", path, i);
            goto cleanup;
        }
        c->tiers[i].attempts = (int)a;
        rc = load_skip_rules(&c->tiers[i], t, path, i, err, errlen);
        if (rc)
            goto cleanup;
        rc = load_doubt(cfg, c, &c->tiers[i], t, path, i, err, errlen);
        if (rc)
            goto cleanup;
        rc = wk__lanes_tier(&c->tiers[i], t, path, i, err, errlen);
        if (rc)
            goto cleanup;
    }
    const cJSON *compile = cJSON_GetObjectItemCaseSensitive(root, "compile");
    if (compile) {
        int ok = cJSON_IsObject(compile);
        const cJSON *lang;
        cJSON_ArrayForEach(lang, compile)
        {
            ok = ok && cJSON_IsArray(lang) && cJSON_GetArraySize(lang) > 0;
            const cJSON *a;
            cJSON_ArrayForEach(a, lang) ok = ok && cJSON_IsString(a);
        }
        if (!ok) {
            rc = wk_errf(WK_ECONFIG, err, errlen,
                         "%s: \"compile\" must map a language to a command (an array of strings)",
                         path);
            goto cleanup;
        }
        c->compile = cJSON_Duplicate(compile, 1);
    }
    const cJSON *schema = cJSON_GetObjectItemCaseSensitive(root, "schema");
    if (schema) {
        char sub[256];
        if (val_schema_supported(schema, sub, sizeof sub)) {
            rc = wk_errf(WK_ECONFIG, err, errlen, "%s: schema: %s", path, sub);
            goto cleanup;
        }
        c->schema = cJSON_Duplicate(schema, 1);
    }
    rc = load_labels(c, root, path, err, errlen);
    if (rc)
        goto cleanup;
    /* The cascade's own data_policy, then the models file's classes it does not name. */
    const cJSON *dp = cJSON_GetObjectItemCaseSensitive(root, "data_policy");
    if (dp) {
        rc = wk_policy_parse(&c->policy, dp, path, err, errlen);
        if (!rc)
            rc = wk_policy_check_labels(&c->policy, cfg, path, err, errlen);
        if (rc)
            goto cleanup;
    }
    wk_policy_merge(&c->policy, &cfg->policy);
    rc = load_start(cfg, c, root, path, err, errlen);
cleanup:
    cJSON_Delete(root);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int load_cascades(wk_config *cfg, const char *dir, char *err, size_t errlen)
{
    int rc = 0;
    char **names = NULL;
    size_t n = 0;
    /* A single cascade file is accepted too (replay --cascade FILE, tune's output). */
    struct stat sb;
    if (stat(dir, &sb) == 0 && S_ISREG(sb.st_mode)) {
        cfg->cascades = wk_xcalloc(1, sizeof(wk_cascade));
        cfg->ncascades = 1;
        return load_cascade(cfg, &cfg->cascades[0], dir, err, errlen);
    }
    DIR *d = opendir(dir);
    if (!d)
        return wk_errf(WK_ECONFIG, err, errlen, "%s: cannot open cascades directory", dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0 || e->d_name[0] == '.')
            continue;
        if (strcmp(e->d_name, "models.json") == 0)
            continue;
        names = wk_xrealloc(names, (n + 1) * sizeof(char *));
        names[n++] = wk_xstrdup(e->d_name);
    }
    closedir(d);
    if (n == 0) {
        rc = wk_errf(WK_ECONFIG, err, errlen, "%s: no cascade files (*.json)", dir);
        goto cleanup;
    }
    qsort(names, n, sizeof(char *), cmp_str);
    cfg->cascades = wk_xcalloc(n, sizeof(wk_cascade));
    for (size_t i = 0; i < n; i++) {
        char *path = wk_xasprintf("%s/%s", dir, names[i]);
        rc = load_cascade(cfg, &cfg->cascades[cfg->ncascades++], path, err, errlen);
        free(path);
        if (rc)
            goto cleanup;
        for (int j = 0; j + 1 < cfg->ncascades; j++)
            if (strcmp(cfg->cascades[j].name, cfg->cascades[cfg->ncascades - 1].name) == 0) {
                rc = wk_errf(WK_ECONFIG, err, errlen, "%s/%s: cascade name \"%s\" is used twice",
                             dir, names[i], cfg->cascades[j].name);
                goto cleanup;
            }
    }
cleanup:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* Only providers some cascade uses need a key: an unused one may stay unset. */
/* The key of provider p from its $key_env, once; `what` names the use in the error. */
static int read_key(wk_provider *p, const char *what, const char *path, char *err, size_t errlen)
{
    if (!p->key_env || p->key)
        return 0;
    const char *v = getenv(p->key_env);
    if (!v || !*v)
        return wk_errf(WK_ECONFIG, err, errlen,
                       "%s: provider \"%s\"%s needs the API key in $%s, which is not set", path,
                       p->name, what, p->key_env);
    p->key = wk_xstrdup(v);
    return 0;
}

static int read_keys(wk_config *cfg, const char *path, char *err, size_t errlen)
{
    for (int i = 0; i < cfg->ncascades; i++) {
        const wk_cascade *c = &cfg->cascades[i];
        for (int t = 0; t < c->ntiers; t++) {
            const wk_model *m = c->tiers[t].model;
            for (int f = -1; f < m->nfallbacks; f++)
                if (read_key(f < 0 ? m->provider : m->fallbacks[f]->provider, "", path, err,
                             errlen))
                    return WK_ECONFIG;
        }
        /* The embeddings model's provider, when the cascade starts by similarity. */
        if (c->start_similar &&
            read_key(cfg->embed_model->provider, " (embeddings)", path, err, errlen))
            return WK_ECONFIG;
    }
    return 0;
}

int wk_config_load(wk_config *cfg, const char *models_path, const char *cascades_dir, int mode,
                   char *err, size_t errlen)
{
    cJSON *root = NULL;
    memset(cfg, 0, sizeof *cfg);
    int rc = load_json(models_path, &root, err, errlen);
    if (rc)
        goto cleanup;
    rc = load_providers(cfg, root, models_path, mode, err, errlen);
    if (rc)
        goto cleanup;
    rc = load_models(cfg, root, models_path, err, errlen);
    if (rc)
        goto cleanup;
    rc = load_embeddings(cfg, root, models_path, err, errlen);
    if (rc)
        goto cleanup;
    /* Before the cascades: each one takes the classes it does not name from here. */
    const cJSON *dp = cJSON_GetObjectItemCaseSensitive(root, "data_policy");
    if (dp) {
        rc = wk_policy_parse(&cfg->policy, dp, models_path, err, errlen);
        if (!rc)
            rc = wk_policy_check_labels(&cfg->policy, cfg, models_path, err, errlen);
        if (rc)
            goto cleanup;
    }
    rc = load_cascades(cfg, cascades_dir, err, errlen);
    if (rc)
        goto cleanup;
    if (mode == WK_CONFIG_ONLINE)
        rc = read_keys(cfg, models_path, err, errlen);
cleanup:
    cJSON_Delete(root);
    if (rc)
        wk_config_free(cfg);
    return rc;
}

void wk_config_free(wk_config *cfg)
{
    for (int i = 0; i < cfg->nproviders; i++) {
        wk_provider *p = &cfg->providers[i];
        free(p->name);
        free(p->api);
        free(p->base_url);
        free(p->key_env);
        free(p->data);
        if (p->key) {
            /* The key leaves memory as soon as it is no longer needed. */
            memset(p->key, 0, strlen(p->key));
            free(p->key);
        }
    }
    free(cfg->providers);
    for (int i = 0; i < cfg->nmodels; i++) {
        free(cfg->models[i].name);
        free(cfg->models[i].id);
        free(cfg->models[i].fallbacks);
    }
    free(cfg->models);
    for (int i = 0; i < cfg->ncascades; i++) {
        wk_cascade *c = &cfg->cascades[i];
        free(c->name);
        free(c->match_kind);
        free(c->match_language);
        for (int v = 0; v < c->nvalidators && c->validators; v++)
            free(c->validators[v]);
        free(c->validators);
        for (int t = 0; t < c->ntiers && c->tiers; t++) {
            for (int k = 0; k < c->tiers[t].nskip; k++) {
                free(c->tiers[t].skip[k].kind);
                free(c->tiers[t].skip[k].language);
            }
            free(c->tiers[t].skip);
        }
        free(c->tiers);
        cJSON_Delete(c->schema);
        cJSON_Delete(c->compile);
        free(c->label_field);
        wk_policy_release(&c->policy);
    }
    free(cfg->cascades);
    wk_policy_release(&cfg->policy);
    free(cfg->gold_field);
    memset(cfg, 0, sizeof *cfg);
}

wk_model *wk_config_model(const wk_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->nmodels; i++)
        if (strcmp(cfg->models[i].name, name) == 0)
            return &cfg->models[i];
    return NULL;
}

wk_cascade *wk_config_cascade(const wk_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->ncascades; i++)
        if (strcmp(cfg->cascades[i].name, name) == 0)
            return &cfg->cascades[i];
    return NULL;
}

wk_cascade *wk_config_match(const wk_config *cfg, const char *kind, const char *language)
{
    for (int i = 0; i < cfg->ncascades; i++) {
        wk_cascade *c = &cfg->cascades[i];
        if (c->match_kind && (!kind || strcmp(c->match_kind, kind) != 0))
            continue;
        if (c->match_language && (!language || strcmp(c->match_language, language) != 0))
            continue;
        return c;
    }
    return NULL;
}
