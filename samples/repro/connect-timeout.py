#!/usr/bin/env python3
"""Programs of the connect-timeout lab (samples/repro/connect-timeout.sh).
The script installs this file under the role's name (sidecar, app,
upstream), so that the process name (comm) in the bundle says which is
which.

  upstream ADDR PORT
      The upstream service: reads a request, answers it and closes first
      (FIN), as a server ending a connection does.
  sidecar PORT MARK
      An Envoy-like transparent proxy on 0.0.0.0:PORT, the target of the
      pod's REDIRECT rule. For each connection it reads the original
      destination (SO_ORIGINAL_DST) and connects there with SO_MARK=MARK,
      which the pod's iptables exclude from the redirect (Istio excludes
      its proxy by uid 1337; a mark does the same without a second user).
      When the upstream closes, it half-closes the app's side
      (shutdown(SHUT_WR), as Envoy's TCP proxy does) and keeps that socket
      open until the app's FIN arrives: FIN_WAIT2 without a timer.
  app LOCAL_PORT ADDR PORT CLOSE_FILE
      The application's earlier connection: from LOCAL_PORT to ADDR:PORT
      (redirected to the sidecar), one request, reads the answer to EOF,
      prints "ready" (its socket is now in CLOSE_WAIT), closes once
      CLOSE_FILE exists, prints "closed" and exits.
  connect LOCAL_PORT ADDR PORT TIMEOUT
      The failing connect: from LOCAL_PORT (as `nc -p` in the seed) to
      ADDR:PORT, giving up after TIMEOUT seconds, then close(). Prints one
      JSON line: result "timeout" or "connected", elapsed seconds.

Every program dies with its parent.
"""

import ctypes
import json
import os
import signal
import socket
import struct
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
SO_ORIGINAL_DST = 80


def die_with_parent():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def upstream(addr, port):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, int(port)))
    srv.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = srv.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            data = conn.recv(4096)
            if not data:
                break
            request += data
        body = b'{"stock": 42}\n'
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body))
        conn.close()


def sidecar(port, mark):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(port)))
    srv.listen(128)
    print("ready", flush=True)
    held = []

    def pump(src, dst, from_upstream):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            dst.sendall(data)
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if from_upstream:
            src.close()
            print("upstream closed: half-closed", dst.getsockname(), "->", dst.getpeername(), flush=True)

    while True:
        down, peer = srv.accept()
        dport, daddr = struct.unpack("!2xH4s8x", down.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16))
        up = socket.socket()
        up.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, int(mark))
        try:
            up.connect((socket.inet_ntoa(daddr), dport))
        except OSError as e:
            print("upstream", socket.inet_ntoa(daddr), dport, "failed:", e, flush=True)
            down.close()
            continue
        held.append(down)  # never closed: the app's FIN would end it
        print("proxying", peer, "->", socket.inet_ntoa(daddr), dport, flush=True)
        threading.Thread(target=pump, args=(down, up, False), daemon=True).start()
        threading.Thread(target=pump, args=(up, down, True), daemon=True).start()


def app(local_port, addr, port, close_file):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(local_port)))
    s.connect((addr, int(port)))
    s.sendall(b"GET /stock HTTP/1.1\r\nhost: inventory\r\n\r\n")
    answer = b""
    while True:
        data = s.recv(4096)
        if not data:
            break
        answer += data
    print("ready", answer.split(b"\r\n")[0].decode(), flush=True)
    while not os.path.exists(close_file):
        time.sleep(0.05)
    s.close()
    print("closed", flush=True)


def connect(local_port, addr, port, timeout):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(local_port)))
    s.settimeout(float(timeout))
    started = time.monotonic()
    try:
        s.connect((addr, int(port)))
        result = "connected"
    except socket.timeout:
        result = "timeout"
    except OSError as e:
        result = f"error: {e}"
    elapsed = time.monotonic() - started
    s.close()
    print(json.dumps({"result": result, "elapsed": round(elapsed, 3),
                      "local_port": int(local_port), "remote": f"{addr}:{port}"}), flush=True)


def main():
    die_with_parent()
    roles = {"upstream": upstream, "sidecar": sidecar, "app": app, "connect": connect}
    if len(sys.argv) < 2 or sys.argv[1] not in roles:
        sys.exit(__doc__)
    roles[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
