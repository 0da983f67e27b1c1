"""The MPTCP server (in dut) and client (in src) of a transfer, as child processes.

    with Server(lab, cgroup, port) as srv:          # listening when this returns
        cli = Client(lab, cgroup, port, nbytes=..., chunk=..., gap=...)
        ... cli.running() ...
        c, s = cli.result(), srv.result()           # each end's JSON (ends.py)

Both run pktlab/mptcp/ends.py through pktlab.lab.spawn (their own PID namespace; they die with
their owner, even a SIGKILLed one) and join the lab's cgroup before they make a socket. What
goes wrong is said in one line with the next step: MPTCP off in the namespace (ENOPROTOOPT),
a busy port, a client that cannot connect or makes no progress.
"""

import errno
import json
import os
import select
import signal
import subprocess
import sys
import time

from ..errors import EnvironmentProblem, LabError
from ..lab import netns, spawn
from ..owned import Owned

ENDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ends.py")
START_TIMEOUT = 10.0


def _start(argv):
    return spawn.spawn([sys.executable, ENDS, *map(str, argv)], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _refusal(where, name, text, ns):
    if name == "ENOPROTOOPT":
        return EnvironmentProblem(f"{where}: socket(IPPROTO_MPTCP) refused: {text} "
                                  f"(net.mptcp.enabled is 0 there); turn it on with `ip netns "
                                  f"exec {ns} sysctl -w net.mptcp.enabled=1`")
    if name == "EADDRINUSE":
        return LabError(errno.EADDRINUSE, f"{where}: the port is busy; pick another port")
    return LabError(getattr(errno, name, errno.EIO), f"{where}: {text} ({name})")


class _End(Owned):
    proc = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def result(self, timeout=60.0):
        """The end's JSON line ({"ok": ..., ...}), waiting up to `timeout` s for it to end."""
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise LabError(errno.ETIMEDOUT, f"{self.where} did not finish within {timeout:.0f} s;"
                                            " stopped it") from None
        lines = [ln for ln in (self._early + out).splitlines() if ln.startswith("{")]
        if not lines:
            raise LabError(errno.EIO, f"{self.where} ended (exit {self.proc.returncode}) "
                                      f"without a result: {(err or out).strip()[-300:]}")
        return json.loads(lines[-1])

    _early = ""

    def _release(self):
        if self.proc is not None:
            spawn.stop(self.proc, signal.SIGTERM)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream and not stream.closed:
                    stream.close()


class Server(_End):
    """ends.py server on `port` in dut, in `cgroup` (None: no cgroup)."""

    def __init__(self, lab, cgroup, port, proto="mptcp"):
        self.where = f"{proto} server on port {port} in {lab.ns_dut}"
        self._hold()
        try:
            self.proc = _start(["server", port, netns.path(lab.ns_dut),
                                cgroup.procs_file if cgroup is not None else "-", proto])
            ready, _, _ = select.select([self.proc.stdout], [], [], START_TIMEOUT)
            line = self.proc.stdout.readline().strip() if ready else ""
            if line.startswith("error "):
                _, name, text = (line.split(" ", 2) + [""])[:3]
                raise _refusal(self.where, name, text, lab.ns_dut)
            if not line.startswith("ready "):
                raise LabError(errno.EIO, f"{self.where} did not start within "
                                          f"{START_TIMEOUT:.0f} s: {line or 'it said nothing'}")
        except BaseException:
            self.close()
            raise


class Client(_End):
    """ends.py client in src, to `addr`:`port`, sending `nbytes` (paced: `chunk` bytes every
    `gap` seconds)."""

    def __init__(self, lab, cgroup, port, nbytes, chunk=1 << 16, gap=0.0, addr=None,
                 proto="mptcp", timeout=30.0):
        addr = addr or lab.dut_ip4
        self.where = f"{proto} client in {lab.ns_src} -> {addr}:{port}"
        self.t0 = time.monotonic()
        self._hold()
        try:
            self.proc = _start(["client", addr, port, netns.path(lab.ns_src),
                                cgroup.procs_file if cgroup is not None else "-", proto,
                                nbytes, chunk, gap, timeout])
        except BaseException:
            self.close()
            raise

    def check(self, doc, ns):
        """The client's JSON, or the one-line error it stands for."""
        if doc.get("ok"):
            return doc
        name, text = doc.get("errno", "EIO"), doc.get("error", "")
        if name == "ECONNREFUSED":
            raise LabError(errno.ECONNREFUSED, f"{self.where}: connection refused (no server "
                                               "listens there)")
        raise _refusal(self.where, name, f"{text} after {doc.get('sent', 0)} bytes", ns)
