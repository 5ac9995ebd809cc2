/* The configuration and the migrated database of a `vigil` command (see cli_db.h). */
#include "cli_db.h"

#include <stdio.h>

extern char **environ;

sink_pg_t *cli_db_open(const char *cmd, const char *config_path, const char *const *flags,
                       size_t n_flags, daemon_config_t *cfg, int *rc)
{
    char err[1024];

    if (daemon_config_load(cfg, config_path, environ, flags, n_flags, err, sizeof err)) {
        fprintf(stderr, "vigil %s: configuration error: %s\n", cmd, err);
        *rc = 2;
        return NULL;
    }
    sink_pg_t *pg = sink_pg_new(cfg->postgres_conninfo, err, sizeof err);
    if (!pg || sink_pg_migrate(pg, err, sizeof err) != SINK_PG_OK) {
        fprintf(stderr, "vigil %s: %s\n", cmd, err);
        sink_pg_free(pg);
        daemon_config_free(cfg);
        *rc = 1;
        return NULL;
    }
    return pg;
}
