#!/usr/bin/env python3
"""secagent: the host security agent of incident 1 (seed 000), cut down.

The real agent (Alibaba Cloud's aegisSvrFinder) periodically looked for
web servers to report their versions: it ran every binary whose process name
contains "nginx" with "-V", inside the namespaces of the process it found.
nginx prints its version and exits; nginx-custom-metrics has no such flag and
starts a second copy of itself, which unlinks and re-binds the listener's
socket path. The agent gives up on a probe after a timeout and kills it.

Here one scan runs per SIGUSR1 (standing in for the agent's timer), so that
the repro decides when it happens. For safety the scan only looks at
processes whose executable lies under --only-under (the repro's directory):
it never runs a binary the repro did not build. Each probe is logged as one
line "probe pid=N target=PID exe=PATH" to stdout.

Run it under its own name (a file called "secagent"): that is its comm, the
"pcomm" of the exec events of its probes.
"""

import argparse
import ctypes
import os
import signal
import sys
import time

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
PROBE_TIMEOUT_S = 1.0

libc = ctypes.CDLL(None, use_errno=True)
scans = 0


def on_usr1(_sig, _frame):
    global scans
    scans += 1


def targets(only_under):
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/comm") as f:
                comm = f.read().strip()
            exe = os.readlink(f"/proc/{name}/exe")
        except OSError:
            continue
        if "nginx" in comm and exe.startswith(only_under):
            yield int(name), exe


def probe(pid, exe):
    """Runs `exe -V` in the mount and network namespaces of `pid`."""
    child = os.fork()
    if child == 0:
        try:
            for ns, flag in (("net", CLONE_NEWNET), ("mnt", CLONE_NEWNS)):
                fd = os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY)
                if libc.setns(fd, flag) != 0:
                    os._exit(126)
                os.close(fd)
            null = os.open("/dev/null", os.O_RDWR)
            for std in (0, 1, 2):
                os.dup2(null, std)
            os.execv(exe, [exe, "-V"])
        finally:
            os._exit(127)
    print(f"probe pid={child} target={pid} exe={exe}", flush=True)
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while time.monotonic() < deadline:
        done, _ = os.waitpid(child, os.WNOHANG)
        if done:
            return
        time.sleep(0.02)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    print(f"killed pid={child} after {PROBE_TIMEOUT_S} s", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only-under", required=True)
    args = ap.parse_args()
    signal.signal(signal.SIGUSR1, on_usr1)
    print(f"secagent pid={os.getpid()} ready", flush=True)
    done = 0
    while True:
        if done < scans:
            done += 1
            for pid, exe in list(targets(args.only_under)):
                probe(pid, exe)
            print(f"scan {done} done", flush=True)
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
