"""What sits at dut for the live ladder's points, each removed exactly as it was made: the UDP
socket point (a reader process in dut's namespace, started with `python -c READER_CODE`, that
imports _socket_reader_main from this module), the nftables drop table, and the thread that
drains the parse hooks' record rings while they run.
"""

import contextlib
import ctypes
import errno
import json
import mmap
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading

from .. import resources
from ..errors import EnvironmentProblem, LabError
from ..lab import netns, spawn
from ..owned import Owned
from .cleanup import _OUR_SESSIONS, _stop_process_group
from .spec import RCVBUF, UDP_PORT


READER_CODE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pktlab.bench.receivers import _socket_reader_main
_socket_reader_main(sys.argv[2:])
"""


def _socket_reader_main(argv):
    """The UDP socket point, in its own process: recvmmsg() batches, count, discard.

    argv: namespace, address, port, cpu, counter fd (an 8-byte memfd, mapped shared).
    """
    ns, addr, port, cpu, count_fd = argv[0], argv[1], int(argv[2]), int(argv[3]), int(argv[4])
    import socket
    # a handler, not SIG_DFL: as its PID namespace's init (spawn.py) the reader would ignore a
    # signal it has no handler for, and stop() would wait for its SIGKILL
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    os.sched_setaffinity(0, {cpu})
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(netns.path(ns), os.O_RDONLY)
    if libc.setns(fd, netns.CLONE_NEWNET) != 0:
        sys.exit(f"setns {ns}: {os.strerror(ctypes.get_errno())}")
    os.close(fd)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # a receive buffer that rides out the reader's scheduling gaps (the default 208 KiB holds
    # about 90 small packets, i.e. under 100 us at these rates): the figure is then what the
    # reader keeps up with on average, not how often it was preempted
    s.setsockopt(socket.SOL_SOCKET, 33, RCVBUF)      # SO_RCVBUFFORCE (root)
    s.bind((addr, port))

    class IoVec(ctypes.Structure):
        _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]

    class MsgHdr(ctypes.Structure):
        _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                    ("iov", ctypes.POINTER(IoVec)), ("iovlen", ctypes.c_size_t),
                    ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                    ("flags", ctypes.c_int)]

    class MMsgHdr(ctypes.Structure):
        _fields_ = [("hdr", MsgHdr), ("len", ctypes.c_uint)]

    n, size = 64, 2048
    bufs = ctypes.create_string_buffer(n * size)
    iovs = (IoVec * n)(*[IoVec(ctypes.addressof(bufs) + i * size, size) for i in range(n)])
    msgs = (MMsgHdr * n)()
    for i in range(n):
        msgs[i].hdr.iov = ctypes.pointer(iovs[i])
        msgs[i].hdr.iovlen = 1
    recvmmsg = libc.recvmmsg
    recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                         ctypes.c_void_p]
    MSG_WAITFORONE = 0x10000
    counter = mmap.mmap(count_fd, 8)
    os.close(count_fd)
    cell = ctypes.c_uint64.from_buffer(counter)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sfd, total, addr_msgs = s.fileno(), 0, ctypes.addressof(msgs)
    while True:
        got = recvmmsg(sfd, addr_msgs, n, MSG_WAITFORONE, None)
        if got > 0:
            total += got
            cell.value = total


class SocketReader(Owned):
    """A UDP socket bound in dut, read by a child process (pinned to the other CPU)."""

    def __init__(self, lab, cpu, port=UDP_PORT):
        self.lab, self.cpu, self.port = lab, cpu, port
        self.proc, self._map = None, None
        self._hold()
        # the shared counter: an anonymous memory file, handed to the child as an fd (nothing
        # on disk, nothing to leave behind even if both processes are killed)
        fd = os.memfd_create("pktlab-reader-count")
        try:
            os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8)
            self.proc = spawn.spawn(
                [sys.executable, "-c", READER_CODE, resources.PACKAGE_PARENT, lab.ns_dut, lab.dut_ip4, str(port),
                 str(cpu), str(fd)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, pass_fds=(fd,))
        except BaseException:
            os.close(fd)
            self.close()
            raise
        os.close(fd)
        try:
            _OUR_SESSIONS.add(self.proc.pid)
            line = self._readline(10.0)
            if line.strip() != "ready":
                err = self.proc.stderr.read() if self.proc.poll() is not None else ""
                raise LabError(errno.EIO, f"UDP socket reader in {lab.ns_dut} did not start: "
                                          f"{(line + err).strip()[-400:]}")
        except BaseException:
            self.close()
            raise

    def _readline(self, timeout):
        box = []
        t = threading.Thread(target=lambda: box.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(timeout)
        return box[0] if box else ""

    def count(self):
        return struct.unpack_from("<Q", self._map, 0)[0]

    def udp_counters(self):
        """Udp: InDatagrams, RcvbufErrors, NoPorts of dut's namespace (/proc/net/snmp)."""
        with netns.enter(self.lab.ns_dut):
            with open("/proc/thread-self/net/snmp") as f:
                lines = [ln.split() for ln in f if ln.startswith("Udp:")]
        return dict(zip(lines[0][1:], map(int, lines[1][1:])))

    def _release(self):
        if self.proc is not None:
            _stop_process_group(self.proc, signal.SIGTERM)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
        if self._map is not None:
            self._map.close()


class NftDrop(Owned):
    """A netdev-family nftables table in dut only: hook ingress on dut's veth, the earliest
    netfilter hook (it runs after TC ingress, before the IP stack), a named counter, drop."""

    TABLE = "pktlab_bench"

    def __init__(self, lab):
        if shutil.which("nft") is None:
            raise EnvironmentProblem("nft is not installed; apt-get install nftables")
        self.lab = lab
        rules = (f"table netdev {self.TABLE} {{\n"
                 f"  counter dropped {{ }}\n"
                 f"  chain ingress {{\n"
                 f"    type filter hook ingress device \"{lab.if_dut}\" priority -500; "
                 f"policy accept;\n"
                 f"    counter name \"dropped\" drop\n"
                 f"  }}\n}}\n")
        netns.run(lab.ns_dut, ["nft", "-f", "-"], input=rules)
        self._hold()

    def count(self):
        out = netns.run(self.lab.ns_dut, ["nft", "-j", "list", "counter", "netdev", self.TABLE,
                                          "dropped"]).stdout
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return item["counter"]["packets"]
        raise LabError(errno.ENOENT, f"nft counter {self.TABLE}/dropped not found in "
                                     f"{self.lab.ns_dut}")

    def _release(self):
        if netns.exists(self.lab.ns_dut):
            netns.run(self.lab.ns_dut, ["nft", "delete", "table", "netdev", self.TABLE],
                      check=False)


class _Drainer(Owned):
    """Empties the parse hooks' record rings every few ms, so records keep flowing (a full
    ring would turn the record path into the cheaper `lost` path)."""

    def __init__(self, hookset, cpus):
        self.hs, self.cpus = hookset, cpus
        self.records, self._stop = 0, threading.Event()
        self._t = threading.Thread(target=self._loop, name="pktlab-drain", daemon=True)
        self._t.start()
        self._hold()

    def _loop(self):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, set(self.cpus))
        while not self._stop.wait(0.003):
            self.records += sum(len(a) for a in self.hs.drain().values())

    def _release(self):
        self._stop.set()
        self._t.join(timeout=5)
        self.records += sum(len(a) for a in self.hs.drain().values())

