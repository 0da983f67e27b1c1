"""Real applications in a lab: a server in dut (in the lab's cgroup), a client in src.

    with Server(lab, "http", 8080, cgroup=lab.cgroup()) as srv:   # a process in dut
        srv.pid, srv.fd                # the server process (as seen from here), its socket
        reply = request(lab, "http", 8080, nonce)                  # a process in src

Both are children started by pktlab.lab.spawn (their own PID namespace, PDEATHSIG): a
SIGKILLed pktlab leaves neither behind. What they run is pktlab/sockets/children.py (plain
Python servers and a plain client: see there).

What goes wrong is said in one line with the next step: the port is busy (EADDRINUSE), the
client cannot connect (ECONNREFUSED, a timeout); LabError, which the CLI turns into exit 2.
"""

import errno
import json
import os
import select
import signal
import subprocess
import sys

from ..errors import LabError
from ..lab import netns, spawn
from ..owned import Owned

KINDS = ("http", "tcp", "udp")
PORTS = {"http": 8080, "tcp": 7001, "udp": 7002}
START_TIMEOUT = 10.0
CLIENT_TIMEOUT = 3.0
CHILDREN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "children.py")


def check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"traffic {kind!r}: choose http, tcp or udp")
    return kind


def check_port(port):
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port {port!r}: a TCP/UDP port is 1..65535")
    return port


def _start(argv):
    return spawn.spawn([sys.executable, CHILDREN, *map(str, argv)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _line(proc, timeout):
    """The child's first line on stdout, or "" when it says nothing within `timeout`."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline() if ready else ""


def _program_pid(proc):
    """The pid (here) of the program itself: spawn runs it as the child of `unshare` when it
    gets a PID namespace of its own, and pidfd_getfd must reach the program, not unshare."""
    if os.path.basename((_cmd(proc.pid) or [""])[0]) != "unshare":
        return proc.pid
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == proc.pid:
                return int(entry)
    raise LabError(errno.ESRCH, f"process {proc.pid} (unshare) has no child: the server "
                                "ended at once")


def _cmd(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return None


class Server(Owned):
    """One of KINDS listening on `port` in the lab's dut, in `cgroup` when given (see the
    module docstring). close() stops it (SIGTERM to its process group, SIGKILL after 3 s)."""

    def __init__(self, lab, kind="http", port=None, cgroup=None):
        self.kind = check_kind(kind)
        self.port = check_port(PORTS[kind] if port is None else port)
        self.lab, self.cgroup = lab, cgroup
        self.where = f"{kind} server on port {self.port} in {lab.ns_dut}"
        self.proc, self.pid, self.fd = None, None, None
        self._hold()
        try:
            self.proc = _start(["server", kind, self.port, netns.path(lab.ns_dut),
                                cgroup.procs_file if cgroup is not None else "-"])
            line = _line(self.proc, START_TIMEOUT).strip()
            if not line.startswith("ready "):
                self._refused(line)
            self.fd = int(line.split()[1])
            self.pid = _program_pid(self.proc)
        except BaseException:
            self.close()
            raise

    def _refused(self, line):
        if line.startswith("error "):
            _, code, text = (line.split(" ", 2) + [""])[:3]
            if code == "EADDRINUSE":
                raise LabError(errno.EADDRINUSE, f"{self.where}: the port is busy (another "
                                                 "server listens there); pick another port")
            raise LabError(getattr(errno, code, errno.EIO), f"{self.where}: {text} ({code})")
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        rest = self.proc.stderr.read()[-400:]
        raise LabError(errno.EIO, f"{self.where} did not start within {START_TIMEOUT:.0f} s: "
                                  f"{(line + ' ' + rest).strip() or 'it said nothing'}")

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def pids(self):
        """The pids this server holds (unshare's and the program's)."""
        return sorted({p for p in (self.proc.pid if self.proc else None, self.pid) if p})

    def _release(self):
        if self.proc is not None:
            spawn.stop(self.proc, signal.SIGTERM)
            for stream in (self.proc.stdout, self.proc.stderr):
                stream.close()

    def __repr__(self):
        state = f"pid {self.pid}" if self.running() else "stopped"
        return f"<Server {self.where}, {state}>"


def request(lab, kind, port, nonce, timeout=CLIENT_TIMEOUT):
    """One request from a client process in src to dut's `port`; returns the client's JSON
    ({"ok", "reply", "sport"}). LabError (one line, the next step) when it cannot connect or
    gets no answer. The client is stopped on the way out, whatever happens."""
    check_kind(kind)
    check_port(port)
    proc = _start(["client", kind, lab.dut_ip4, port, netns.path(lab.ns_src), nonce, timeout])
    try:
        out, err = proc.communicate(timeout=timeout + 10)
    except subprocess.TimeoutExpired:
        raise LabError(errno.ETIMEDOUT, f"the {kind} client in {lab.ns_src} ran past its time "
                                        "limit; stopped it") from None
    finally:
        spawn.stop(proc, signal.SIGTERM)
        for stream in (proc.stdout, proc.stderr):
            stream.close()
    try:
        doc = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise LabError(errno.EIO, f"the {kind} client in {lab.ns_src} failed (exit "
                                  f"{proc.returncode}): {(err or out).strip()[-400:]}") from None
    if not doc["ok"]:
        where = f"{kind} client in {lab.ns_src} -> {lab.dut_ip4}:{port}"
        code = getattr(errno, doc.get("errno") or "", errno.EIO)
        if code == errno.ECONNREFUSED:
            raise LabError(code, f"{where}: connection refused (no server listens on port "
                                 f"{port} in dut); start the server there, or aim at its port")
        raise LabError(code, f"{where}: {doc['error']}; check that the server runs "
                             "(`pktlab lab status` lists the lab's processes)")
    return doc
