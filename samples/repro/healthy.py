#!/usr/bin/env python3
"""Programs of the healthy lab (samples/repro/healthy.sh). The script
installs this file under the role's name (web, shop), so that the process
name (comm) in the bundle says which is which.

  web ADDR PORT
      An HTTP/1.1 server (one request per connection, then it closes):
      GET /small (2 KiB) and GET /large (256 KiB); POST /orders reads the
      body and answers 201.
  shop URL COUNT INTERVAL
      A client doing COUNT rounds of GET /small, GET /large and POST
      /orders, INTERVAL seconds apart, each read to the end and closed.
      Prints one line per request, then "done N ok".
  crowd URL COUNT SECONDS THREADS
      COUNT short connections (GET /small, one each) spread over SECONDS by
      THREADS threads (the busy healthy lab). Prints "done N ok".
  bulk URL BYTES
      One GET /bulk/BYTES read to the end (the busy lab's bulk transfer).
      Prints "done BYTES bytes".

The server handles each connection in its own thread.

Both print "ready" when set up and die with their parent.
"""

import ctypes
import http.server
import signal
import sys
import threading
import time
import urllib.request

PR_SET_PDEATHSIG = 1


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    bodies = {"/small": b"s" * 2048, "/large": b"l" * 262144}

    def do_GET(self):
        if self.path.startswith("/bulk/"):
            self.bulk(int(self.path[len("/bulk/"):]))
            return
        body = self.bodies.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def bulk(self, size):
        self.send_response(200)
        self.send_header("content-length", str(size))
        self.send_header("connection", "close")
        self.end_headers()
        chunk = b"b" * (1 << 20)
        while size > 0:
            n = min(size, len(chunk))
            self.wfile.write(chunk[:n])
            size -= n

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(201)
        self.send_header("content-length", "0")
        self.send_header("connection", "close")
        self.end_headers()

    def log_message(self, *args):
        pass


def web(addr, port):
    server = http.server.ThreadingHTTPServer((addr, int(port)), Handler)
    server.request_queue_size = 512
    print("ready", flush=True)
    server.serve_forever()


def shop(url, count, interval):
    print("ready", flush=True)
    ok = 0
    for _ in range(int(count)):
        for path, data in (("/small", None), ("/large", None), ("/orders", b'{"item": 7}')):
            with urllib.request.urlopen(url + path, data=data, timeout=5) as r:
                body = r.read()
                print(r.status, path, len(body), flush=True)
                ok += r.status in (200, 201)
        time.sleep(float(interval))
    print("done", ok, "ok", flush=True)


def crowd(url, count, seconds, threads):
    count, threads = int(count), int(threads)
    gap = float(seconds) * threads / count
    ok = [0] * threads

    def worker(i):
        for _ in range(i, count, threads):
            start = time.monotonic()
            with urllib.request.urlopen(url + "/small", timeout=10) as r:
                r.read()
                ok[i] += r.status == 200
            time.sleep(max(0.0, gap - (time.monotonic() - start)))

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    print("ready", flush=True)
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print("done", sum(ok), "ok", flush=True)


def bulk(url, size):
    print("ready", flush=True)
    got = 0
    with urllib.request.urlopen(url + "/bulk/" + size, timeout=60) as r:
        while True:
            data = r.read(1 << 20)
            if not data:
                break
            got += len(data)
    print("done", got, "bytes", flush=True)


def main():
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    roles = {"web": web, "shop": shop, "crowd": crowd, "bulk": bulk}
    if len(sys.argv) < 2 or sys.argv[1] not in roles:
        sys.exit(__doc__)
    roles[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
