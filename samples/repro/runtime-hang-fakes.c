/*
 * Stand-ins for the processes of incident 2 (seed 001: runc hangs talking to
 * systemd over D-Bus; kubelet reports PLEG is not healthy). One program,
 * several names (hard links): what it does depends on the name it was run
 * as, so each process has the comm, exe and argv of the real one.
 *
 *   dbus-daemon  listens on /run/dbus/system_bus_socket, accepts, reads what
 *                clients send and never answers (the seed: systemd's bus
 *                stopped answering once its message cookie overflowed).
 *   runc         connects to the system bus ($DBUS_SYSTEM_BUS_ADDRESS or
 *                /run/dbus/system_bus_socket), starts the D-Bus SASL
 *                handshake as a real client does and waits for the answer:
 *                blocked in read(2) for as long as it lives.
 *   containerd-shim-runc-v2 -namespace NS -id ID
 *                runs "runc" (through $PATH) with the arguments a docker
 *                20.10 shim gives it to create task ID, and waits for it.
 *   anything else (kubelet, dockerd, containerd): waits until killed.
 *
 * Every process dies with its parent (PR_SET_PDEATHSIG), so a repro killed
 * without its cleanup leaves nothing running.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define BUS "/run/dbus/system_bus_socket"

static int bus_address(struct sockaddr_un *sa)
{
    const char *addr = getenv("DBUS_SYSTEM_BUS_ADDRESS");
    const char *path = BUS;
    if (addr && strncmp(addr, "unix:path=", 10) == 0)
        path = addr + 10;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path)
        return -1;
    strcpy(sa->sun_path, path);
    return 0;
}

static int bus_daemon(void)
{
    struct sockaddr_un sa;
    bus_address(&sa);
    unlink(sa.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 64) != 0) {
        perror("dbus-daemon: listen");
        return 1;
    }
    printf("listening on %s\n", sa.sun_path);
    fflush(stdout);
    for (;;) {
        int c = accept(fd, NULL, NULL);
        if (c < 0)
            continue;
        /* Read the request, never answer; keep the connection open. */
        char buf[256];
        ssize_t n = read(c, buf, sizeof buf);
        printf("client fd %d sent %zd bytes, no answer\n", c, n);
        fflush(stdout);
    }
}

static int runc(void)
{
    struct sockaddr_un sa;
    if (bus_address(&sa) != 0)
        return 1;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("runc: connect to the system bus");
        return 1;
    }
    /* What godbus sends first: a NUL, then AUTH EXTERNAL with the uid in hex. */
    char auth[64];
    int len = snprintf(auth, sizeof auth, "%cAUTH EXTERNAL %x\r\n", 0, (unsigned)getuid());
    if (write(fd, auth, (size_t)len) != len) {
        perror("runc: write");
        return 1;
    }
    for (;;) {
        char reply[256];
        ssize_t n = read(fd, reply, sizeof reply);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        fprintf(stderr, "runc: the bus closed the connection\n");
        return 1;
    }
}

static int shim(int argc, char **argv)
{
    const char *ns = NULL, *id = NULL;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-namespace") == 0)
            ns = argv[i + 1];
        else if (strcmp(argv[i], "-id") == 0)
            id = argv[i + 1];
    }
    if (!ns || !id) {
        fprintf(stderr, "containerd-shim-runc-v2: -namespace and -id are required\n");
        return 2;
    }
    /* The runc command line of a docker 20.10 task with SystemdCgroup set;
     * go-runc runs exec.Command("runc", ...): found through $PATH. */
    char root[256], task[512], log[600], pidfile[600];
    snprintf(root, sizeof root, "/var/run/docker/runtime-runc/%s", ns);
    snprintf(task, sizeof task, "/run/containerd/io.containerd.runtime.v2.task/%s/%s", ns, id);
    snprintf(log, sizeof log, "%s/log.json", task);
    snprintf(pidfile, sizeof pidfile, "%s/init.pid", task);
    char *runc_argv[] = {"runc", "--root", root, "--log", log, "--log-format", "json",
                         "--systemd-cgroup", "create", "--bundle", task, "--pid-file",
                         pidfile, (char *)id, NULL};
    pid_t child = fork();
    if (child == 0) {
        execvp("runc", runc_argv);
        perror("containerd-shim-runc-v2: exec runc");
        _exit(127);
    }
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    return 0;
}

int main(int argc, char **argv)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    const char *name = basename(argv[0]);
    if (strcmp(name, "dbus-daemon") == 0)
        return bus_daemon();
    if (strcmp(name, "runc") == 0)
        return runc();
    if (strcmp(name, "containerd-shim-runc-v2") == 0)
        return shim(argc, argv);
    for (;;)
        pause();
}
