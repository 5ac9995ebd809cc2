/* The alert lifecycle work that is not part of a batch: a thread with a PostgreSQL connection of
 * its own that resolves alerts once they have been quiet for the rules' resolve_after
 * (vigil.alerts_resolve_quiet, each resolution NOTIFYing listeners in its own transaction).
 * Every instance of a consumer group runs one; two resolving at once resolve each alert once,
 * since the UPDATE re-checks the alert's status under its row lock. Delivery to the sinks after
 * the commit is delivery.h's. */
#ifndef VIGIL_ALERTER_H
#define VIGIL_ALERTER_H

#include <stddef.h>
#include <stdint.h>

typedef struct alerter alerter_t;

/* Starts the thread; resolve_after_ms > 0 (with 0, nothing resolves: do not start one).
 * conninfo and instance_id are copied. NULL with err. The connection is made by the thread, and
 * remade after a failure, so a database that is down at start is not an error here. */
alerter_t *alerter_new(const char *conninfo, const char *instance_id, int64_t resolve_after_ms,
                       char *err, size_t errlen);
/* Stops the thread after the statement in progress and disconnects. */
void alerter_free(alerter_t *a);

#endif
