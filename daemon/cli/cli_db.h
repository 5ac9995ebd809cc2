/* What the commands that work on the database share (`vigil dlq`, `vigil alerts`): the
 * configuration loaded as vigild loads it, and its database connected and migrated. */
#ifndef VIGIL_CLI_DB_H
#define VIGIL_CLI_DB_H

#include <stddef.h>

#include "config.h"
#include "sink_pg.h"

/* Loads the configuration (config_path, VIGIL_* environment, n_flags --set flags) into *cfg and
 * connects to its database, applying migrations. Returns the connection; or NULL after printing
 * "vigil CMD: ..." on stderr, with *rc the exit status to return (2: the configuration, 1: the
 * database) and nothing left to free. On success the caller frees the connection and *cfg. */
sink_pg_t *cli_db_open(const char *cmd, const char *config_path, const char *const *flags,
                       size_t n_flags, daemon_config_t *cfg, int *rc);

#endif
