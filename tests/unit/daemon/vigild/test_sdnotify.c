/* Tests daemon/vigild/sdnotify.c against a real AF_UNIX datagram socket standing in for systemd:
 * path and abstract-namespace NOTIFY_SOCKET forms, the no-op without it, send errors, no leaked
 * sockets, and the WATCHDOG_USEC / WATCHDOG_PID rules. */
#include "sdnotify.h"
#include "test.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/vigil-test-sdnotify-XXXXXX";

/* Binds a datagram socket as systemd would: to a path, or with name starting '@', abstract. */
static int listener_bind(const char *name)
{
    struct sockaddr_un addr = {0};
    size_t n = strlen(name);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    CHECK(fd >= 0);
    CHECK(n <= sizeof(addr.sun_path));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, name, n);
    if (name[0] == '@')
        addr.sun_path[0] = '\0';
    CHECK(bind(fd, (struct sockaddr *)&addr,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) == 0);
    return fd;
}

/* The datagram sendto queued, or "" when none is waiting (never blocks). */
static const char *listener_recv(int fd)
{
    static char buf[512];
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

    if (n < 0)
        return "";
    buf[n] = '\0';
    return buf;
}

static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static void test_unset_is_noop(void)
{
    CHECK(unsetenv("NOTIFY_SOCKET") == 0);
    errno = 0;
    CHECK(sdnotify_send("READY=1") == 0);
    CHECK(setenv("NOTIFY_SOCKET", "", 1) == 0);
    CHECK(sdnotify_send("READY=1") == 0);
    CHECK(unsetenv("NOTIFY_SOCKET") == 0);
}

static void test_path_socket(void)
{
    char path[256];
    int fd;
    int fds_before;

    snprintf(path, sizeof(path), "%s/notify", tmpdir);
    fd = listener_bind(path);
    CHECK(setenv("NOTIFY_SOCKET", path, 1) == 0);

    CHECK(sdnotify_send("READY=1") == 0);
    CHECK_STR(listener_recv(fd), "READY=1");
    CHECK(sdnotify_send("STATUS=consumed=10 written=9") == 0);
    CHECK(sdnotify_send("WATCHDOG=1") == 0);
    CHECK(sdnotify_send("STOPPING=1") == 0);
    CHECK_STR(listener_recv(fd), "STATUS=consumed=10 written=9");
    CHECK_STR(listener_recv(fd), "WATCHDOG=1");
    CHECK_STR(listener_recv(fd), "STOPPING=1");
    CHECK_STR(listener_recv(fd), ""); /* exactly one datagram per call */

    /* Each call closes its socket. */
    fds_before = open_fds();
    for (int i = 0; i < 100; i++) {
        CHECK(sdnotify_send("WATCHDOG=1") == 0);
        CHECK_STR(listener_recv(fd), "WATCHDOG=1");
    }
    CHECK(open_fds() == fds_before);

    /* Once the listener is gone the send fails and says why. */
    close(fd);
    errno = 0;
    CHECK(sdnotify_send("READY=1") == -1);
    CHECK(errno == ECONNREFUSED);
    CHECK(unlink(path) == 0);
    errno = 0;
    CHECK(sdnotify_send("READY=1") == -1);
    CHECK(errno == ENOENT);
    CHECK(unsetenv("NOTIFY_SOCKET") == 0);
}

static void test_abstract_socket(void)
{
    char name[108];
    int fd;

    snprintf(name, sizeof(name), "@vigil-test-sdnotify-%ld-%s", (long)getpid(),
             tmpdir + strlen("/tmp/vigil-test-sdnotify-"));
    fd = listener_bind(name);
    CHECK(setenv("NOTIFY_SOCKET", name, 1) == 0);
    CHECK(sdnotify_send("READY=1") == 0);
    CHECK_STR(listener_recv(fd), "READY=1");
    close(fd);
    CHECK(unsetenv("NOTIFY_SOCKET") == 0);
}

static void test_bad_addresses(void)
{
    char long_path[200];

    CHECK(setenv("NOTIFY_SOCKET", "vsock:2:1234", 1) == 0);
    errno = 0;
    CHECK(sdnotify_send("READY=1") == -1);
    CHECK(errno == EAFNOSUPPORT);

    memset(long_path, 'x', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    CHECK(setenv("NOTIFY_SOCKET", long_path, 1) == 0);
    errno = 0;
    CHECK(sdnotify_send("READY=1") == -1);
    CHECK(errno == ENAMETOOLONG);
    CHECK(unsetenv("NOTIFY_SOCKET") == 0);
}

static void test_watchdog(void)
{
    char pid[32];

    CHECK(unsetenv("WATCHDOG_USEC") == 0);
    CHECK(unsetenv("WATCHDOG_PID") == 0);
    CHECK(sdnotify_watchdog_usec() == 0);

    CHECK(setenv("WATCHDOG_USEC", "3000000", 1) == 0);
    CHECK(sdnotify_watchdog_usec() == 3000000);

    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    CHECK(setenv("WATCHDOG_PID", pid, 1) == 0);
    CHECK(sdnotify_watchdog_usec() == 3000000);

    /* Meant for another process (e.g. our parent, whose environment we inherited). */
    snprintf(pid, sizeof(pid), "%ld", (long)getpid() + 1);
    CHECK(setenv("WATCHDOG_PID", pid, 1) == 0);
    CHECK(sdnotify_watchdog_usec() == 0);
    CHECK(setenv("WATCHDOG_PID", "not-a-pid", 1) == 0);
    CHECK(sdnotify_watchdog_usec() == 0);
    CHECK(unsetenv("WATCHDOG_PID") == 0);

    CHECK(setenv("WATCHDOG_USEC", "abc", 1) == 0);
    CHECK(sdnotify_watchdog_usec() == 0);
    CHECK(setenv("WATCHDOG_USEC", "", 1) == 0);
    CHECK(sdnotify_watchdog_usec() == 0);
    CHECK(setenv("WATCHDOG_USEC", "-5", 1) == 0);
    CHECK(sdnotify_watchdog_usec() == 0);
    CHECK(setenv("WATCHDOG_USEC", "100x", 1) == 0);
    CHECK(sdnotify_watchdog_usec() == 0);
    CHECK(unsetenv("WATCHDOG_USEC") == 0);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_unset_is_noop();
    test_path_socket();
    test_abstract_socket();
    test_bad_addresses();
    test_watchdog();
    rmdir(tmpdir);
    return TEST_DONE();
}
