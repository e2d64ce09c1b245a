/*
 * nginx-custom-metrics: the metrics daemon of incident 1 (seed 000), cut to
 * what the incident needs. Like the original (a Go program), it removes a
 * stale socket file, binds and listens on the unix socket path, and serves
 * whatever the nginx Lua code sends. Like the original, it does not know
 * "-V": started with any arguments, it simply starts a second copy of the
 * service, which unlinks the path and binds a new socket file there.
 *
 * Path: $METRICS_SOCKET, default /tmp/prometheus-nginx.socket.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int main(void)
{
    const char *path = getenv("METRICS_SOCKET");
    if (!path)
        path = "/tmp/prometheus-nginx.socket";
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        fprintf(stderr, "socket path too long: %s\n", path);
        return 2;
    }
    strcpy(sa.sun_path, path);
    signal(SIGPIPE, SIG_IGN);
    /* os.Remove(socket) before net.Listen("unix", socket), as the original. */
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 128) != 0) {
        perror("listen");
        return 1;
    }
    chmod(path, 0777);
    printf("listening on %s\n", path);
    fflush(stdout);
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[4096];
        ssize_t n;
        while ((n = read(c, buf, sizeof buf)) > 0)
            printf("Metrics message: %.*s\n", (int)n, buf);
        fflush(stdout);
        close(c);
    }
}
