/* sd_notify without libsystemd: one datagram per state change to $NOTIFY_SOCKET, which is a path
 * or, with a leading '@', a name in the abstract namespace. A fresh socket per call keeps this
 * stateless and safe from any thread; notifications are rare (startup, status period, watchdog). */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int sdnotify_send(const char *state)
{
    const char *name = getenv("NOTIFY_SOCKET");
    struct sockaddr_un addr;
    size_t name_len;
    socklen_t addr_len;
    size_t state_len = state ? strlen(state) : 0;
    ssize_t sent;
    int fd = -1;
    int saved_errno;

    if (!name || name[0] == '\0')
        return 0; /* not started by systemd (or Type=simple): nothing to tell */
    if (!state) {
        errno = EINVAL;
        return -1;
    }
    name_len = strlen(name);
    if (name[0] != '/' && name[0] != '@') {
        errno = EAFNOSUPPORT; /* e.g. "vsock:..." sockets, which vigild does not speak */
        return -1;
    }
    if (name_len > sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, name, name_len);
    if (name[0] == '@')
        addr.sun_path[0] = '\0'; /* abstract: the name is the bytes after a leading NUL */
    /* The exact length matters for abstract names, whose trailing bytes would be significant. */
    addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + name_len);

    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    do {
        sent = sendto(fd, state, state_len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addr_len);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0)
        goto err;
    if ((size_t)sent != state_len) {
        errno = EMSGSIZE;
        goto err;
    }
    close(fd);
    return 0;
err:
    saved_errno = errno;
    close(fd);
    errno = saved_errno;
    return -1;
}

/* Parses a whole decimal string as an unsigned 64-bit number; -1 on anything else. */
static int sdnotify_parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    unsigned long long v;

    if (!s || s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = (uint64_t)v;
    return 0;
}

uint64_t sdnotify_watchdog_usec(void)
{
    uint64_t usec = 0;
    uint64_t pid = 0;
    const char *pid_str = getenv("WATCHDOG_PID");

    if (sdnotify_parse_u64(getenv("WATCHDOG_USEC"), &usec) != 0)
        return 0;
    /* systemd sets WATCHDOG_PID so that a child inheriting the environment does not ping. */
    if (pid_str && pid_str[0] != '\0') {
        if (sdnotify_parse_u64(pid_str, &pid) != 0 || pid != (uint64_t)getpid())
            return 0;
    }
    return usec;
}
