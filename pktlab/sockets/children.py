"""The programs the belt runs inside a lab: a real server in dut, a real client in src.

    python children.py server KIND PORT NETNS_PATH CGROUP_PROCS|-
    python children.py client KIND ADDR PORT NETNS_PATH NONCE TIMEOUT

Run as scripts by pktlab.sockets.apps (through pktlab.lab.spawn: their own PID namespace, they
die with their owner), so they import nothing but the standard library: a child starts in a
few tens of milliseconds instead of paying for pktlab's imports.

The server joins the cgroup first (writing 0 to cgroup.procs moves the writer), then enters
the namespace, then makes its socket: a socket belongs to the cgroup its creator was in at
socket(), which is what cgroup_skb and sock_ops programs on the lab's cgroup match. It says
`ready FD` (the listening or bound socket's fd: the socket filter is attached to it from
outside, with pidfd_getfd) or `error ERRNAME text` on stdout.

Servers (each an ordinary Python server, receiving with recvfrom(2), which glibc's recv uses):
    http   http.server.HTTPServer, one GET: 200 with the path as the body
    tcp    an echo: recv() then sendall() until the client closes
    udp    an echo: recvfrom() then sendto()
The client sends one request carrying NONCE and prints one JSON line: {"ok", "reply",
"error", "errno", "sport"}; it always exits 0 (the parent reads the verdict from the JSON).
"""

import ctypes
import errno as _errno
import json
import os
import signal
import socket
import sys

CLONE_NEWNET = 0x40000000


def _quiet_exit(*_):
    os._exit(0)


def _enter(netns_path):
    # as its PID namespace's init, the child ignores signals it has no handler for
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _quiet_exit)
    fd = os.open(netns_path, os.O_RDONLY | os.O_CLOEXEC)
    if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        print(f"error {_errno.errorcode.get(e, e)} setns {netns_path}: {os.strerror(e)}",
              flush=True)
        sys.exit(2)
    os.close(fd)


def _error(e):
    name = _errno.errorcode.get(e.errno, str(e.errno)) if e.errno else "EIO"
    print(f"error {name} {e.strerror or e}", flush=True)
    sys.exit(2)


def _http_server(port):
    import http.server

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = self.path.encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args):
            pass

    srv = http.server.HTTPServer(("", port), Handler)
    return srv.socket, srv.serve_forever


def _tcp_server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("", port))
    s.listen(16)

    def serve():
        while True:
            c, _ = s.accept()
            with c:
                try:
                    while (d := c.recv(4096)):
                        c.sendall(d)
                except OSError:         # a client that left with its echo unread
                    pass
    return s, serve


def _udp_server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", port))

    def serve():
        while True:
            d, a = s.recvfrom(4096)
            if a is not None:
                s.sendto(d, a)
    return s, serve


def server(argv):
    kind, port, netns_path, procs = argv[0], int(argv[1]), argv[2], argv[3]
    if procs != "-":
        try:
            with open(procs, "w") as f:
                f.write("0")
        except OSError as e:
            _error(e)
    _enter(netns_path)
    make = {"http": _http_server, "tcp": _tcp_server, "udp": _udp_server}[kind]
    try:
        sock, serve = make(port)
    except OSError as e:
        _error(e)
    print(f"ready {sock.fileno()}", flush=True)
    serve()


def _request(kind, addr, port, nonce, timeout):
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(timeout)
        s.connect((addr, port))
        s.send(nonce.encode() + b"\n")
        return s, s.recv(4096)
    s = socket.create_connection((addr, port), timeout=timeout)
    data = (f"GET /{nonce} HTTP/1.0\r\nHost: dut\r\n\r\n" if kind == "http"
            else nonce + "\n").encode()
    s.sendall(data)
    reply = b""
    while True:
        chunk = s.recv(4096)
        reply += chunk
        if not chunk or (kind == "tcp" and reply.endswith(b"\n")):
            break
    return s, reply


def client(argv):
    kind, addr, port, netns_path, nonce, timeout = (argv[0], argv[1], int(argv[2]), argv[3],
                                                    argv[4], float(argv[5]))
    _enter(netns_path)
    out = {"ok": False, "reply": "", "error": "", "errno": "", "sport": 0}
    try:
        s, reply = _request(kind, addr, port, nonce, timeout)
        out["sport"] = s.getsockname()[1]
        s.close()
        out["reply"] = reply.decode(errors="replace")
        out["ok"] = nonce in out["reply"]
        if not out["ok"]:
            out["error"] = "the reply does not carry the request's nonce"
    except socket.timeout:
        out.update(error=f"no reply within {timeout} s", errno="ETIMEDOUT")
    except OSError as e:
        out.update(error=e.strerror or str(e), errno=_errno.errorcode.get(e.errno, ""))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    {"server": server, "client": client}[sys.argv[1]](sys.argv[2:])
