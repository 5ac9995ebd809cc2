/* The systemd notification protocol spoken directly (no libsystemd): datagrams to the unix socket
 * named by $NOTIFY_SOCKET ('@' prefix = abstract namespace). Without NOTIFY_SOCKET every call is
 * a successful no-op, so the daemon runs the same under systemd and outside it. */
#ifndef VIGIL_SDNOTIFY_H
#define VIGIL_SDNOTIFY_H

#include <stdint.h>

/* Sends state, e.g. "READY=1", "STATUS=consumed=10 written=9", "WATCHDOG=1", "STOPPING=1".
 * Returns 0, or -1 with errno set when NOTIFY_SOCKET is set but the send failed. */
int sdnotify_send(const char *state);

/* The watchdog period from $WATCHDOG_USEC (honouring $WATCHDOG_PID when set) in microseconds, or
 * 0 when the watchdog is not enabled for this process. The daemon pings at half of it. */
uint64_t sdnotify_watchdog_usec(void);

#endif
