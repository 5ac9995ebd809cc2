/* Entity state checkpoints written off the batch path: a thread with a PostgreSQL connection of
 * its own takes the partition snapshots the worker hands over once their batch has committed, and
 * stores each in a transaction of its own (sink_pg_checkpoint_save). A snapshot is as large as its
 * partition's state (megabytes); written inside a batch's transaction it held that batch, and the
 * latency of every event in it, for as long as PostgreSQL took to store it.
 *
 * A checkpoint at offset X only needs the events before X committed, which they are when it is
 * handed over; a later checkpoint of the partition is never overwritten (by this instance or the
 * partition's next owner). A checkpoint that is dropped (queue full, write failed, stopping) is
 * simply not there: the older one stays usable and the next comes an interval later. */
#ifndef VIGIL_CHECKPOINTER_H
#define VIGIL_CHECKPOINTER_H

#include <stddef.h>

#include "sink_pg.h"

typedef struct checkpointer checkpointer_t;

/* Connects and starts the thread. group and instance_id are copied. NULL on failure (err says
 * why). */
checkpointer_t *checkpointer_new(const char *conninfo, const char *group, const char *instance_id,
                                 char *err, size_t errlen);

/* How many snapshots checkpointer_offer would take now (so the caller takes no more). */
size_t checkpointer_room(checkpointer_t *c);

/* Queues the checkpoint for writing. Returns 0 when taken: ownership of cp->state (malloc'ed)
 * passes to the checkpointer, the strings are copied. Returns -1 when the queue is full or memory
 * ran out: the caller keeps cp->state. @locality: any one thread (the worker). */
int checkpointer_offer(checkpointer_t *c, const sink_checkpoint_t *cp);

/* Stops the thread after the write in progress, drops what is still queued, disconnects. */
void checkpointer_free(checkpointer_t *c);

#endif
