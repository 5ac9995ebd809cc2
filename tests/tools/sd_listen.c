/* sd_listen: a stand-in for systemd's notification socket, for tests. Binds a unix datagram
 * socket at PATH and prints every datagram it receives as one line on stdout (newlines inside a
 * datagram become spaces), until it sees STOPPING=1 or LIMIT seconds pass (exit 1 then).
 *
 *   sd_listen PATH LIMIT_SECONDS */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char buf[4096];
    int fd, limit;
    time_t deadline;

    if (argc != 3 || strlen(argv[1]) >= sizeof(addr.sun_path)) {
        fprintf(stderr, "usage: sd_listen PATH LIMIT_SECONDS\n");
        return 2;
    }
    limit = atoi(argv[2]);
    strcpy(addr.sun_path, argv[1]);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        fprintf(stderr, "sd_listen: cannot bind %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    deadline = time(NULL) + limit;
    while (time(NULL) < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, 200);
        ssize_t n;
        if (r < 0 && errno != EINTR) {
            fprintf(stderr, "sd_listen: poll: %s\n", strerror(errno));
            return 1;
        }
        if (r <= 0)
            continue;
        n = recv(fd, buf, sizeof(buf) - 1, 0);
        if (n < 0) {
            fprintf(stderr, "sd_listen: recv: %s\n", strerror(errno));
            return 1;
        }
        buf[n] = '\0';
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] == '\n')
                buf[i] = ' ';
        printf("%s\n", buf);
        fflush(stdout);
        if (strstr(buf, "STOPPING=1"))
            return 0;
    }
    fprintf(stderr, "sd_listen: no STOPPING=1 within %d s\n", limit);
    return 1;
}
