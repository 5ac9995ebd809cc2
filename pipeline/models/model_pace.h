/* Pacing for model work that should only have the CPU time nothing else on the machine wants
 * (model.news_priority=idle on a CPU backend).
 *
 * SCHED_IDLE alone does not give that. Linux first shares the CPUs between scheduling groups (the
 * autogroup of each session, or each service's cgroup under systemd) and only then, inside a
 * group, between its threads by their policy. PostgreSQL on the same machine is in another group
 * than vigild, so an encoder thread at SCHED_IDLE still takes vigild's group's whole share while
 * a PostgreSQL backend that the fraud lane waits on stands runnable (docs/benchmarks.md has the
 * measurement). Worse, the scheduler counts a CPU that runs only a SCHED_IDLE thread as idle when
 * it places a thread that wakes, so that backend lands behind the encoder. A pace adds what the
 * policy cannot: between two short steps of its work, the thread looks at how many threads the
 * whole machine has runnable (/proc/loadavg) and sleeps while, with it, every CPU would be busy:
 * one CPU stays free for whichever thread wakes next.
 *
 * A pace is used by one thread (@locality: the thread whose work it paces). */
#ifndef VIGIL_MODEL_PACE_H
#define VIGIL_MODEL_PACE_H

#include <stddef.h>

typedef struct model_pace model_pace_t;

/* A pace that waits at most max_wait_ms at one step, so that work which is paced still moves on a
 * machine that never has a CPU to spare. NULL with err when /proc/loadavg cannot be read. */
model_pace_t *model_pace_new(int max_wait_ms, char *err, size_t errlen);
void model_pace_free(model_pace_t *p);

/* 1 while the machine's runnable threads, the caller among them, fill every CPU online (on a
 * one-CPU machine: while any other thread is runnable), 0 when not, -1 when /proc/loadavg could
 * not be read or understood. */
int model_pace_contended(model_pace_t *p);

/* Sleeps in short naps while model_pace_contended is 1, at most the pace's max_wait_ms in all.
 * Takes a model_pace_t as void *, to be a model's yield hook (model_bert_set_yield). */
void model_pace_step(void *pace);

/* Seconds spent in model_pace_step's naps since the last call, and restarts the count. */
double model_pace_take_waited(model_pace_t *p);

#endif
