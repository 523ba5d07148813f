/*
 * The models file (providers and priced models) and the cascade files, loaded
 * and checked once at startup. Every error names the file and the field, so a
 * typo is found before any money is spent.
 */
#ifndef WK_CONFIG_H
#define WK_CONFIG_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "lanes.h"

typedef struct wk_provider {
    char *name;
    char *api;      /* "openai", "anthropic" or "gemini" */
    char *base_url; /* ${VAR} already expanded (offline: as written) */
    char *key_env;  /* NULL: no key is sent */
    char *key;      /* the key's value, read from key_env at startup (online only); never logged */
    int max_inflight;
    double rpm;               /* requests per minute; 0: no limit */
    double tpm;               /* tokens per minute (prompt estimate + max_tokens); 0: no limit */
    int breaker_failures;     /* consecutive failures that open the breaker [5] */
    long breaker_cooldown_ms; /* open this long, then one probe [30000] */
    double batch_discount;    /* lane prices: sync price times these, unless a model says [0.5] */
    double flex_discount;
    /*
     * Where data sent here goes: a free-form label ("self_hosted", "eu", "us",
     * "vendor") that data_policy names; NULL: undeclared, so no data class
     * reaches it (README "Data sovereignty").
     */
    char *data;
} wk_provider;

typedef struct wk_model {
    char *name; /* our name, used in cascades and results */
    wk_provider *provider;
    char *id; /* the provider's model id, sent on the wire */
    double input_usd_per_mtok;
    double output_usd_per_mtok;
    double cached_input_usd_per_mtok; /* price of cache-read input tokens; default: input price */
    long context;                     /* tokens; 0 = unknown */
    long max_tokens;                  /* completion cap sent with each request */
    struct wk_model **fallbacks;      /* the same model at other providers, in order; owned array */
    int nfallbacks;                   /* at most WK_DEPLOY_MAX - 1 */
    wk_prices lane[WK_LANES]; /* prices per lane (lanes.h); [WK_LANE_SYNC] is the three above */
} wk_model;

/* A model and its fallbacks: the deployments one call may walk. */
#define WK_DEPLOY_MAX 16

/*
 * The deployments one call may use, in order: the model where the task's
 * data class may reach it, then the fallbacks it may reach (policy.h). The
 * router hands them to the call; nothing else is sent to.
 */
typedef struct wk_deployments {
    const wk_model *v[WK_DEPLOY_MAX];
    int n;
    int bound; /* the task has a data class: the cache answers only from v[0]'s provider */
} wk_deployments;

/* One entry of a data_policy: a task's data class and the provider labels it may reach. */
typedef struct wk_data_class {
    char *name;
    char **labels;
    int nlabels;
} wk_data_class;

/* A data_policy (README "Data sovereignty"); zero: none. */
typedef struct wk_policy {
    wk_data_class *v;
    int n;
} wk_policy;

/*
 * A tier is skipped for a task when any of its rules holds; a rule holds
 * when all of its conditions do (unset conditions hold). Written by tune.
 */
typedef struct wk_skip_rule {
    long prompt_tokens_over; /* -1: unset; prompt tokens estimated as characters / 4 */
    long prompt_tokens_upto; /* -1: unset */
    char *kind;              /* NULL: unset */
    char *language;          /* NULL: unset */
    int has_tests;           /* -1: unset; else 0 or 1 */
} wk_skip_rule;

/* Where a classify tier's confidence in a label comes from. */
enum { WK_CONF_NONE = 0, WK_CONF_LOGPROBS, WK_CONF_SELF };

/* Models a classify tier may ask for one label (agree.models). */
#define WK_AGREE_MAX 8
/* Answers a classify tier may ask of one model (samples). */
#define WK_SAMPLES_MAX 16

typedef struct wk_tier {
    wk_model *model;
    int attempts;
    wk_skip_rule *skip; /* owned */
    int nskip;
    /*
     * Signals of doubt of a classify tier (README "Labelling tickets"): the
     * models asked for the label (agree.models, borrowed; n 0: the tier's
     * model alone), each asked `samples` times, and the votes a label needs
     * to be accepted (agree.min, or samples.min); a label below
     * min_confidence (-1: none) by `confidence` climbs.
     */
    wk_model *agree[WK_AGREE_MAX];
    int nagree;
    int samples;
    int vote_min;
    double min_confidence;
    int confidence; /* WK_CONF_* */
    int lane;       /* WK_LANE_*: how the tier's calls are sent (lanes.h) */
} wk_tier;

typedef struct wk_cascade {
    char *name;
    char *match_kind;     /* NULL: any */
    char *match_language; /* NULL: any */
    char **validators;
    int nvalidators;
    int feedback;
    wk_tier *tiers;
    int ntiers;
    cJSON *schema;      /* optional default schema for classify/json tasks */
    cJSON *compile;     /* optional: language -> argv of the compile validator ("{file}") */
    char *label_field;  /* the label validator's field (val_label_set); NULL: the default */
    int doubt_feedback; /* a disagreement or low_confidence climb carries feedback [0] */
    wk_policy policy;   /* its data_policy, with the models file's classes it does not name */
    /*
     * "start": {"by": "similar", "k": K, "min_history": N} (README "Similar
     * tasks start where they succeeded"): the task starts at the tier that
     * accepted most of its K nearest past tasks. 0: the first tier, as always.
     */
    int start_similar;
    int start_k;            /* [10] */
    long start_min_history; /* [50] */
} wk_cascade;

typedef struct wk_config {
    wk_provider *providers;
    int nproviders;
    wk_model *models;
    int nmodels;
    wk_cascade *cascades; /* in file-name order, so matching is deterministic */
    int ncascades;
    /* The task field holding a classify task's gold label (--gold FIELD); NULL: "gold". */
    char *gold_field;
    wk_policy policy; /* the models file's data_policy */
    /*
     * "embeddings": {"model": NAME, "dimensions": D}: the model (of `models`,
     * on an openai-api provider) whose /embeddings a similar-start cascade
     * asks; NULL: none. dimensions 0: the model's own (not sent).
     */
    wk_model *embed_model;
    int embed_dimensions;
} wk_config;

/* How wk_config_load treats what only a call needs. */
enum {
    /*
     * For the commands that call nothing (replay, report): no ${VAR} is
     * expanded (a provider's base_url is kept as written) and no key is read,
     * so a models file loads where the batch's variables and keys are not set.
     */
    WK_CONFIG_OFFLINE = 0,
    /* For `run`: base_url's ${VAR} expanded, each used provider's key read; unset ones fail. */
    WK_CONFIG_ONLINE = 1,
};

/*
 * Loads the models file and every *.json in `cascades_dir` (models.json there
 * is skipped), or just the one file when `cascades_dir` names a file. On error returns WK_ECONFIG
 * with a message in err naming the file and the field. `mode` is WK_CONFIG_ONLINE or
 * WK_CONFIG_OFFLINE. The config is owned by the caller: wk_config_free.
 */
int wk_config_load(wk_config *cfg, const char *models_path, const char *cascades_dir, int mode,
                   char *err, size_t errlen);
void wk_config_free(wk_config *cfg);

wk_model *wk_config_model(const wk_config *cfg, const char *name);
wk_cascade *wk_config_cascade(const wk_config *cfg, const char *name);
/* The first cascade whose match fits (kind, language); NULL when none. */
wk_cascade *wk_config_match(const wk_config *cfg, const char *kind, const char *language);

#endif
