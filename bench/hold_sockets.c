/* Holds sockets for the collect benchmark: forks CHILDREN processes, each
 * connecting CONNS TCP sockets to a listener of its own namespace on
 * 127.0.0.1:PORT (the parent accepts and keeps them) plus one unix socket
 * pair, then sleeps until killed.
 *   hold_sockets PORT CHILDREN CONNS
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s PORT CHILDREN CONNS\n", argv[0]); return 2; }
    int port = atoi(argv[1]), children = atoi(argv[2]), conns = atoi(argv[3]);
    struct rlimit rl = {1 << 20, 1 << 20};
    setrlimit(RLIMIT_NOFILE, &rl);
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4096)) { perror("listen"); return 1; }
    for (int c = 0; c < children; c++) {
        if (fork() == 0) {
            /* Drop what the parent accepted before this fork (and the
             * listener): each child holds only its own sockets. */
            for (int fd = 3; fd < 3 + 1 + (c + 1) * conns + 8; fd++) close(fd);
            for (int i = 0; i < conns; i++) {
                int s = socket(AF_INET, SOCK_STREAM, 0);
                if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); break; }
            }
            int sv[2];
            socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
            pause();
            return 0;
        }
        for (int i = 0; i < conns; i++) accept(l, NULL, NULL);
    }
    printf("ready\n");
    fflush(stdout);
    pause();
    return 0;
}
