"""The live ladder's generators, in the lab's src namespace, and the frame they send.

XDP live frames (the one used when the kernel runs it: frames made in the kernel), trafgen
(AF_PACKET TX ring; the fallback, and the qdisc-path sender the TC egress point needs) and
tcpreplay (compared, not used). Each holds what it started (threads, a process) and stops it
on close().
"""

import contextlib
import ctypes
import errno
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time

from ..errors import BPFError, EnvironmentProblem
from ..kernel import bpf
from ..lab import netns, spawn
from ..owned import Owned
from .cleanup import _OUR_SESSIONS, _stop_process_group
from .programs import GEN_XDP, _held_program, _percpu_count
from .spec import UDP_PORT


def udp_frame(size, dst_mac, src_mac, src_ip, dst_ip, dport=UDP_PORT, sport=4321):
    """An Ethernet/IPv4/UDP frame of exactly `size` bytes (without FCS), checksums filled in."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw
    hdr = Ether(dst=dst_mac, src=src_mac) / IP(src=src_ip, dst=dst_ip, ttl=64) / \
        UDP(sport=sport, dport=dport)
    pad = size - len(hdr)
    if pad < 0:
        raise ValueError(f"frame size {size}: at least {len(hdr)} bytes (Ethernet+IPv4+UDP)")
    return bytes(hdr / Raw(b"\x00" * pad))


# XDP live-frames test runs (BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18+)
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
#: each live-frames test run ends with an RCU grace period (its page pool is torn down): calls
#: are sized to last about this long, and two threads take turns so the CPU never waits
GEN_CALL_S = 0.2
GEN_THREADS = 2


class _XdpMd(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint32) for n in ("data", "data_end", "data_meta", "ingress_ifindex",
                                               "rx_queue_index", "egress_ifindex")]


_test_run_raw = None


def _raw_test_run():
    global _test_run_raw
    if _test_run_raw is None:
        fn = bpf.bcc().libbcc.lib.bpf_prog_test_run_opts
        fn.argtypes = [ctypes.c_int, ctypes.POINTER(bpf._TestRunOpts)]
        fn.restype = ctypes.c_int
        _test_run_raw = fn
    return _test_run_raw


class XdpLiveGenerator(Owned):
    """The generator: XDP live-frames test runs in the src namespace (in-kernel, like pktgen).

    drop_xdp.bpf.c built with -DPL_VERDICT=XDP_TX, test-run with BPF_F_TEST_XDP_LIVE_FRAMES and
    ctx.ingress_ifindex = src veth: the kernel turns XDP_TX into a redirect out of src, so each
    run sends a real frame to dut (veth's ndo_xdp_xmit into dut's NAPI ring). count[0] is the
    number of frames generated. Two threads pinned to one CPU take turns, because every test
    run ends with an RCU grace period (~20 ms here) while its page pool is torn down.
    """
    name = "xdp-live-frames"

    def __init__(self, lab, cpu):
        self.lab, self.cpu = lab, cpu
        self.prog = _held_program(GEN_XDP)
        self.ifindex = lab.ifindex("src")
        self._threads, self._stop, self.errors = [], threading.Event(), []
        self._hold()

    def count(self):
        return _percpu_count(self.prog)

    def start(self, frame):
        self.stop()
        self._stop = threading.Event()
        self.errors = []
        self._frame = bytes(frame)
        self._threads = [threading.Thread(target=self._loop, name=f"pktlab-gen{i}", daemon=True)
                         for i in range(GEN_THREADS)]
        for t in self._threads:
            t.start()

    def _loop(self):
        fn = _raw_test_run()
        frame = self._frame
        buf = ctypes.create_string_buffer(frame, len(frame))
        md = _XdpMd(0, len(frame), 0, self.ifindex, 0, 0)
        repeat = 1 << 16
        try:
            os.sched_setaffinity(0, {self.cpu})     # pid 0: this thread only
            with netns.enter(self.lab.ns_src):
                while not self._stop.is_set():
                    opts = bpf._TestRunOpts(sz=ctypes.sizeof(bpf._TestRunOpts),
                                            data_in=ctypes.addressof(buf), data_size_in=len(frame),
                                            ctx_in=ctypes.addressof(md),
                                            ctx_size_in=ctypes.sizeof(md), repeat=repeat,
                                            flags=BPF_F_TEST_XDP_LIVE_FRAMES)
                    t0 = time.monotonic()
                    rc = fn(self.prog.fd, ctypes.byref(opts))
                    dt = time.monotonic() - t0
                    if rc != 0:
                        err = -rc if rc < 0 else ctypes.get_errno()
                        if err == errno.EINTR:
                            continue
                        self.errors.append(f"XDP live-frames test run: {os.strerror(err)}")
                        return
                    # size the next call to last about GEN_CALL_S (the grace period amortized)
                    rate = repeat / max(dt, 1e-6)
                    repeat = int(min(max(rate * GEN_CALL_S, 1 << 12), 1 << 24))
        except Exception as e:   # reported by the measurement, never silent
            self.errors.append(f"generator thread: {e}")

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []

    def _release(self):
        self.stop()


class TrafgenGenerator(Owned):
    """trafgen (netsniff-ng) in src: AF_PACKET with a TX ring, one worker pinned to one CPU.

    qdisc=True sends through the qdisc layer (so src's TC egress sees every frame); else it
    bypasses it (PACKET_QDISC_BYPASS, trafgen's default and its fastest mode). Rate: src's
    tx_packets + tx_dropped over the interval.
    """
    name = "trafgen"

    def __init__(self, lab, stats, cpu, qdisc=False):
        if shutil.which("trafgen") is None:
            raise EnvironmentProblem("trafgen is not installed (netsniff-ng); "
                                     "apt-get install netsniff-ng")
        self.lab, self.stats, self.cpu, self.qdisc = lab, stats, cpu, qdisc
        self.proc, self.cfg, self.errors = None, None, []
        self._hold()

    def count(self):
        s = self.stats.get("src")
        return s["tx_packets"] + s["tx_dropped"]

    def start(self, frame):
        self.stop()
        # the packet as trafgen's byte list, on its stdin (no file to leave behind)
        cfg = "{ " + ", ".join(f"0x{b:02x}" for b in frame) + " }\n"
        argv = ["ip", "netns", "exec", self.lab.ns_src, "taskset", "-c", str(self.cpu),
                "trafgen", "-o", self.lab.if_src, "-i", "-", "-P", "1",
                "--no-sock-mem", "-Q", "-C"] + (["-q"] if self.qdisc else [])
        self.errors = []
        self._log = tempfile.TemporaryFile(mode="w+")
        self.proc = spawn.spawn(argv, stdin=subprocess.PIPE, stdout=self._log,
                                stderr=subprocess.STDOUT, text=True)
        _OUR_SESSIONS.add(self.proc.pid)
        try:
            self.proc.stdin.write(cfg)
            self.proc.stdin.close()
        except BrokenPipeError:
            self.check()

    def check(self):
        if self.proc is not None and self.proc.poll() is not None:
            self._log.seek(0)
            tail = " ".join(self._log.read().split()[-25:])
            self.errors.append(f"trafgen exited ({self.proc.returncode}): {tail}")

    def stop(self):
        if self.proc is not None:
            self.check()
            _stop_process_group(self.proc)
            self.proc = None
            self._log.close()
        if self.cfg:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.cfg)
            self.cfg = None

    def _release(self):
        self.stop()


class TcpreplayGenerator(TrafgenGenerator):
    """tcpreplay --topspeed --loop=0 (libpcap, one send per packet): compared, not used."""
    name = "tcpreplay"

    def __init__(self, lab, stats, cpu):
        if shutil.which("tcpreplay") is None:
            raise EnvironmentProblem("tcpreplay is not installed; apt-get install tcpreplay")
        self.lab, self.stats, self.cpu, self.qdisc = lab, stats, cpu, True
        self.proc, self.cfg, self.errors = None, None, []
        self._hold()

    def start(self, frame):
        self.stop()
        fd, self.cfg = tempfile.mkstemp(prefix="pktlab-tcpreplay-", suffix=".pcap")
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
            for _ in range(1000):
                f.write(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame)
        argv = ["ip", "netns", "exec", self.lab.ns_src, "taskset", "-c", str(self.cpu),
                "tcpreplay", "-q", "-i", self.lab.if_src, "--topspeed", "--loop=0", self.cfg]
        self._log = tempfile.TemporaryFile(mode="w+")
        self.proc = spawn.spawn(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                stderr=subprocess.STDOUT)
        _OUR_SESSIONS.add(self.proc.pid)


def _choose_generator(lab, stats, gen_cpu):
    """XDP live frames when this kernel runs them, else trafgen. Returns (generator, why)."""
    try:
        gen = XdpLiveGenerator(lab, gen_cpu)
    except BPFError as e:
        gen = None
        why_not = f"XDP live frames: {e}"
    else:
        # a probe: one frame through a live-frames run (Linux 5.18+)
        fn = _raw_test_run()
        frame = b"\x00" * 60
        buf = ctypes.create_string_buffer(frame, len(frame))
        md = _XdpMd(0, len(frame), 0, gen.ifindex, 0, 0)
        opts = bpf._TestRunOpts(sz=ctypes.sizeof(bpf._TestRunOpts), data_in=ctypes.addressof(buf),
                                data_size_in=len(frame), ctx_in=ctypes.addressof(md),
                                ctx_size_in=ctypes.sizeof(md), repeat=1,
                                flags=BPF_F_TEST_XDP_LIVE_FRAMES)
        with netns.enter(lab.ns_src):
            rc = fn(gen.prog.fd, ctypes.byref(opts))
        if rc == 0:
            return gen, ("XDP live-frames test runs: frames are made in the kernel and handed to "
                         "the veth in batches, with no system call and no skb per frame")
        why_not = f"XDP live frames refused here ({os.strerror(-rc if rc < 0 else errno.EINVAL)})"
        gen.close()
    return TrafgenGenerator(lab, stats, gen_cpu), f"trafgen (AF_PACKET TX ring); {why_not}"
