/* alerts.rules compiled against the feature spec's columns (see alert_config.h). */
#include "alert_config.h"

#include <stdlib.h>
#include <string.h>

#include "errbuf.h"

int alert_config_rules(const featurize_t *fz, const char *setting, alert_rules_t **out, char *err,
                       size_t errlen)
{
    *out = NULL;
    if (!fz || strcmp(setting, "off") == 0)
        return 0;
    const features_spec_t *spec = featurize_spec(fz);
    size_t n = features_spec_width(spec);
    const char **columns = malloc((n ? n : 1) * sizeof *columns);
    if (!columns) {
        errbuf_printf(err, errlen, "out of memory compiling the alert rules");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        columns[i] = features_spec_column(spec, i);
    *out = setting[0]
               ? alert_rules_load(setting, columns, n, err, errlen)
               : alert_rules_new(alert_rules_default, "built-in rules", columns, n, err, errlen);
    free(columns);
    return *out ? 0 : -1;
}
