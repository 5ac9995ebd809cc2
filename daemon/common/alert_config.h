/* The fraud alert rules a configuration names (alerts.rules), compiled against the columns of
 * the feature spec in use, for vigild and `vigil check-config` alike. */
#ifndef VIGIL_ALERT_CONFIG_H
#define VIGIL_ALERT_CONFIG_H

#include <stddef.h>

#include "alert_rules.h"
#include "featurize.h"

/* setting: alerts.rules ("" the built-in rules, "off" none, else a file). *out gets the rules,
 * or NULL when there are none: off, or no features (fz NULL) to alert on. Returns 0, or -1 with
 * err naming the file and line and what is wrong. */
int alert_config_rules(const featurize_t *fz, const char *setting, alert_rules_t **out, char *err,
                       size_t errlen);

#endif
