"""Real TCP flows through a lab: an echo server in dut and a client in src that opens many
connections at once.

    with EchoServer(lab) as server:                 # a process in dut, dies with its owner
        result = run_client(lab, flows=1000)        # a process in src; returns its counts

The client opens every connection first (non-blocking connect(), one process, epoll through
selectors), then, as each handshake completes, sends one line and reads its echo; a flow is
*connected* once its handshake is done and *echoed* once the whole line came back. Every
connection stays open until every flow has connected, echoed or run out of time; then all
are closed. Time limits keep refused flows from hanging the run: a SYN is sent once and
retried once (TCP_SYNCNT, plus `connect_timeout`), and an echo has `echo_timeout`.

Both run as children started by pktlab.lab.spawn (their own PID namespace, PDEATHSIG): a
SIGKILLed pktlab leaves neither behind. Their code is in this module (_server_main,
_client_main), run with `python -c`.
"""

import errno
import json
import os
import select
import signal
import subprocess
import sys
import time

from .. import resources
from ..errors import LabError
from ..lab import netns, spawn
from ..owned import Owned

PORT = 7007
#: SYN retries per connect (TCP_SYNCNT): the SYN and one retransmit, 1 s later
SYN_RETRIES = 1
CONNECT_TIMEOUT = 2.0
ECHO_TIMEOUT = 1.0
#: file descriptors a process needs besides its flows (stdio, epoll, the listener...)
FD_SLACK = 64
_START_TIMEOUT = 10.0

_CHILD_CODE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pktlab.sockets import flows
getattr(flows, sys.argv[2])(sys.argv[3:])
"""


def fd_limit():
    """The most file descriptors a process here may open (RLIMIT_NOFILE's hard limit)."""
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def check_flows(flows):
    """Refuse a flow count this machine cannot hold open at once (ValueError, before a lab)."""
    if flows + FD_SLACK > fd_limit():
        raise ValueError(f"{flows} flows: a process here may open {fd_limit()} files "
                         f"(ulimit -Hn) and each flow holds one on each side; use at most "
                         f"{fd_limit() - FD_SLACK} flows, or raise the limit")


def _errname(code):
    return errno.errorcode.get(code, str(code))


# the children ------------------------------------------------------------------------------
def _child_setup(ns):
    """In the child: end quietly on SIGTERM/SIGINT (as its PID namespace's init it would ignore
    a signal it has no handler for), as many files as allowed, into the lab's namespace."""
    import ctypes
    import resource
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: os._exit(0))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    fd = os.open(netns.path(ns), os.O_RDONLY | os.O_CLOEXEC)
    if ctypes.CDLL(None, use_errno=True).setns(fd, netns.CLONE_NEWNET) != 0:
        sys.exit(f"setns {ns}: {os.strerror(ctypes.get_errno())}")
    os.close(fd)


def _server_main(argv):
    """The echo server: argv = namespace, address, port. Says `ready` or `error ERRNO text`."""
    import selectors
    import socket
    ns, addr, port = argv[0], argv[1], int(argv[2])
    _child_setup(ns)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        ls.bind((addr, port))
        ls.listen(4096)
    except OSError as e:
        print(f"error {_errname(e.errno)} {e.strerror}", flush=True)
        sys.exit(2)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                _accept_all(ls, sel)
            else:
                _echo(key.fileobj, sel)


def _accept_all(ls, sel):
    import selectors
    while True:
        try:
            conn, _ = ls.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:          # EMFILE, ECONNABORTED: that flow is lost, the server goes on
            return
        conn.setblocking(False)
        sel.register(conn, selectors.EVENT_READ, True)


def _echo(conn, sel):
    try:
        data = conn.recv(65536)
    except (BlockingIOError, InterruptedError):
        return
    except OSError:
        data = b""
    if data:
        try:
            # a few bytes into an empty send buffer: a short send would be a broken flow
            conn.send(data)
            return
        except OSError:
            pass
    sel.unregister(conn)
    conn.close()


class _Flow:
    __slots__ = ("sock", "msg", "got", "sent_at")

    def __init__(self, sock, msg):
        self.sock, self.msg, self.got, self.sent_at = sock, msg, b"", 0.0


def _client_main(argv):
    """The client: argv = namespace, address, port, flows, connect timeout, echo timeout.
    Prints one JSON line: connected, echoed, failed {reason: n}, timings."""
    ns, addr, port, n = argv[0], argv[1], int(argv[2]), int(argv[3])
    connect_timeout, echo_timeout = float(argv[4]), float(argv[5])
    _child_setup(ns)
    out = _many_flows(addr, port, n, connect_timeout, echo_timeout)
    print(json.dumps(out), flush=True)


def _open_all(sel, addr, port, n, failed):
    """Every connect() first: all the SYNs go out before any flow sends data."""
    import selectors
    import socket
    for i in range(n):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as e:
            failed[_errname(e.errno)] += 1
            continue
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, SYN_RETRIES)
        err = s.connect_ex((addr, port))
        if err not in (0, errno.EINPROGRESS):
            failed[_errname(err)] += 1
            s.close()
            continue
        sel.register(s, selectors.EVENT_WRITE, _Flow(s, f"pktlab flow {i:05d}\n".encode()))


def _many_flows(addr, port, n, connect_timeout, echo_timeout):
    import collections
    import selectors
    import socket
    sel = selectors.DefaultSelector()
    failed = collections.Counter()
    t0 = time.monotonic()
    _open_all(sel, addr, port, n, failed)
    opened = time.monotonic()
    connecting = {key.data for key in sel.get_map().values()}
    flows = list(connecting)
    waiting = collections.deque()      # sent, echo not back yet: in send order
    connected = echoed = 0
    last_connect = t0
    connect_deadline = t0 + connect_timeout
    while connecting or waiting:
        now = time.monotonic()
        deadline = min(([connect_deadline] if connecting else []) +
                       ([waiting[0].sent_at + echo_timeout] if waiting else []))
        for key, _ in sel.select(max(0.0, deadline - now)):
            f = key.data
            if f in connecting:
                connecting.discard(f)
                err = f.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    failed[_errname(err)] += 1
                    sel.unregister(f.sock)
                    continue
                connected += 1
                last_connect = f.sent_at = time.monotonic()
                try:
                    f.sock.send(f.msg)
                except OSError as e:
                    failed[_errname(e.errno)] += 1
                    sel.unregister(f.sock)
                    continue
                sel.modify(f.sock, selectors.EVENT_READ, f)
                waiting.append(f)
                continue
            try:
                data = f.sock.recv(256)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as e:
                data, reason = b"", _errname(e.errno)
            else:
                reason = "closed by the server"
            f.got += data
            if data and f.got != f.msg[:len(f.got)]:
                reason, data = "echo differs", b""
            if not data or f.got == f.msg:
                if f.got == f.msg:
                    echoed += 1
                else:
                    failed[reason] += 1
                sel.unregister(f.sock)
                waiting.remove(f)
        now = time.monotonic()
        if connecting and now >= connect_deadline:
            failed["connect timeout"] += len(connecting)
            for f in connecting:
                sel.unregister(f.sock)
            connecting.clear()
        while waiting and now >= waiting[0].sent_at + echo_timeout:
            f = waiting.popleft()
            failed["no echo"] += 1
            sel.unregister(f.sock)
    done = time.monotonic()
    for f in flows:                    # held open until every flow is settled: now close
        f.sock.close()
    sel.close()
    return {"flows": n, "connected": connected, "echoed": echoed, "failed": dict(failed),
            "open_s": round(opened - t0, 3), "last_connect_s": round(last_connect - t0, 3),
            "elapsed_s": round(done - t0, 3)}


# the parent's side -------------------------------------------------------------------------
def _start(name, argv, **kw):
    return spawn.spawn([sys.executable, "-c", _CHILD_CODE, resources.PACKAGE_PARENT, name,
                        *map(str, argv)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, **kw)


def _line(proc, timeout):
    """The child's first line on stdout, or "" when it says nothing within `timeout`."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


class EchoServer(Owned):
    """A TCP echo server listening in one side of a lab (dut unless told), in its own
    process. close() stops it (SIGTERM to its process group, SIGKILL after 3 s)."""

    def __init__(self, lab, port=PORT, side="dut"):
        self.lab, self.port, self.side = lab, port, side
        self.ns = lab.ns(side)
        self.address = lab.dut_ip4 if side == "dut" else lab.src_ip4
        self.proc = None
        self._hold()
        try:
            self.proc = _start("_server_main", [self.ns, self.address, port])
            line = _line(self.proc, _START_TIMEOUT).strip()
            if line != "ready":
                self._refused(line)
        except BaseException:
            self.close()
            raise

    def _refused(self, line):
        where = f"echo server on {self.address}:{self.port} in {self.ns}"
        if line.startswith("error "):
            _, code, text = line.split(" ", 2)
            if code == "EADDRINUSE":
                raise LabError(errno.EADDRINUSE, f"{where}: port {self.port} is busy (another "
                                                 "server listens there); pick another port")
            raise LabError(getattr(errno, code, errno.EIO), f"{where}: {text} ({code})")
        spawn.stop(self.proc, signal.SIGKILL)      # silent past its time: no second chance
        rest = self.proc.stderr.read()[-400:]
        raise LabError(errno.EIO, f"{where} did not start within {_START_TIMEOUT:.0f} s: "
                                  f"{(line + ' ' + rest).strip() or 'it said nothing'}")

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _release(self):
        if self.proc is not None:
            spawn.stop(self.proc, signal.SIGTERM)
            for stream in (self.proc.stdout, self.proc.stderr):
                stream.close()


def run_client(lab, flows, port=PORT, connect_timeout=CONNECT_TIMEOUT,
               echo_timeout=ECHO_TIMEOUT, side="src"):
    """Open `flows` connections from one side of the lab (src unless told) to the other's
    echo server; returns the client's counts (see the module docstring). Stops the client
    on the way out, whatever happens."""
    peer = lab.dut_ip4 if side == "src" else lab.src_ip4
    proc = _start("_client_main", [lab.ns(side), peer, port, flows, connect_timeout,
                                   echo_timeout])
    try:
        out, err = proc.communicate(timeout=connect_timeout + echo_timeout + 30)
    except subprocess.TimeoutExpired:
        raise LabError(errno.ETIMEDOUT, f"the client in {lab.ns(side)} ran past its time "
                                        "limits; stopped it") from None
    finally:
        spawn.stop(proc, signal.SIGTERM)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
    if proc.returncode != 0 or not out.strip():
        raise LabError(errno.EIO, f"the client in {lab.ns(side)} failed (exit "
                                  f"{proc.returncode}): {err.strip()[-400:]}")
    return json.loads(out.strip().splitlines()[-1])
