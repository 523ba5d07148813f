/*
 * Data sovereignty (README "Data sovereignty"): which deployments a task's
 * data class may reach. A provider says where data sent to it goes (its
 * "data" label); a data_policy maps each class to the labels it may reach.
 * Pure: the router asks it before every call, so a deployment the class may
 * not reach is never handed to a call, a fallback or the cache.
 */
#ifndef WK_POLICY_H
#define WK_POLICY_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "config.h"

/* Caps on what a data_policy may hold (it comes from a file). */
#define WK_POLICY_CLASSES_MAX 64
#define WK_POLICY_LABELS_MAX 32
#define WK_POLICY_NAME_MAX 64

/*
 * Parses a "data_policy" object ({"restricted": ["self_hosted"], ...}) into
 * p (zeroed first; release with wk_policy_release, also on error). `where`
 * names the file in the error.
 */
int wk_policy_parse(wk_policy *p, const cJSON *j, const char *where, char *err, size_t errlen);
void wk_policy_release(wk_policy *p);

/* Adds to `into` a copy of each class of `base` that `into` does not name. */
void wk_policy_merge(wk_policy *into, const wk_policy *base);

/*
 * WK_ECONFIG, naming `where` and the label, when p names a label no provider
 * of cfg declares as its "data": a typo would otherwise deny every task.
 */
int wk_policy_check_labels(const wk_policy *p, const wk_config *cfg, const char *where, char *err,
                           size_t errlen);

/* The class named `name`; NULL when p has none. */
const wk_data_class *wk_policy_class(const wk_policy *p, const char *name);

/* 1 when the class may reach the provider (its data label is one of the class's). */
int wk_data_class_reaches(const wk_data_class *c, const wk_provider *prov);

/*
 * The deployments of m (itself, then its fallbacks) a task of `data_class`
 * may use, into out. data_class NULL: all of them, unbound. A class p does
 * not name reaches none (fail closed).
 */
void wk_policy_deployments(const wk_policy *p, const char *data_class, const wk_model *m,
                           wk_deployments *out);

#endif
