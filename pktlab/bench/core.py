"""`pktlab bench`: what each hook costs, measured here, now.

Two measurements, both taken in the run itself (nothing here is a stored figure):

micro   BPF_PROG_TEST_RUN ns/packet of each parse program (XDP, TC; with and without a ring
        buffer record per packet) on the bundled frames, each against an empty program of the
        same type measured in the same rounds; several rounds, so the spread (min, median, max)
        is there to see.

live    A lab (veth pair between two namespaces), a generator in src sending one UDP frame to
        dut's IP and MAC as fast as this machine allows, and at dut one point at a time:
        XDP drop (native, generic), TC ingress drop, netfilter drop (nftables, netdev family,
        ingress hook, the earliest netfilter hook), a UDP socket that reads and discards, and
        each pktlab parse hook in parse-and-pass mode. Rates come from counters: the drop
        programs' per-CPU maps, the nft counter, the socket reader's count, the generator's
        own per-CPU map (or the src veth's tx counters for trafgen).

    results = bench.run(micro=True, live=True)          # the JSON-able dict
    print(bench.format_text(results))                    # figures + what they mean
    fig = bench.plot(results)                            # matplotlib Figure
    bench.BenchPanel()                                   # the notebook panel

Frame sizes are frame lengths on the wire without the 4-byte FCS (64 = 14 Ethernet + 20 IPv4 +
8 UDP + 22 bytes of payload).

Everything made here (lab, attachments, nft table, socket reader process, generator threads and
processes) is removed in `finally` blocks and context managers, also on Ctrl-C.
"""

import contextlib
import ctypes
import errno
import json
import math
import mmap
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

from .. import resources
from ..kernel import bpf
from ..lab import netns, spawn
from ..errors import BPFError, EnvironmentProblem, LabError, PktlabError


SIZES = (64, 512, 1500)
UDP_PORT = 5999
#: parse+pass hooks get 131,072 slots per CPU ring (20 MiB: 0.08 s at 1.7 Mpps), so a drain
#: thread that waits for its CPU a while still finds room (a full ring would make the record
#: path look cheaper: the slot is refused and only `lost` is counted)
PARSE_SLOTS = 1 << 17
RCVBUF = 8 << 20          # the socket point's receive buffer (bytes; the kernel doubles it)
FCS_NOTE = "frame length on the wire without the 4-byte FCS"

#: point -> (kind, label, hook where it sits). Order: the ladder, earliest first.
POINTS = {
    "xdp_native_drop": ("drop", "XDP drop (native)", "xdp"),
    "xdp_drop": ("drop", "XDP drop (generic)", "xdp"),
    "tc_drop": ("drop", "TC ingress drop", "tc-ingress"),
    "nft_drop": ("drop", "netfilter drop (nft netdev ingress)", "nft"),
    "socket_drop": ("drop", "UDP socket, read and discard", "socket"),
    "xdp_parse": ("parse", "XDP parse+pass (generic)", "xdp"),
    "tc_ingress_parse": ("parse", "TC ingress parse+pass", "tc-ingress"),
    "kprobe_parse": ("parse", "kprobe-hook parse+pass", "kprobe"),
    "tc_egress_parse": ("parse", "TC egress (src) parse+pass", "tc-egress"),
}
DROP_POINTS = tuple(p for p, v in POINTS.items() if v[0] == "drop")
PARSE_POINTS = tuple(p for p, v in POINTS.items() if v[0] == "parse")
#: the order the issue's anchors expect (Cloudflare's ladder, the XDP paper)
EXPECTED_ORDER = ("xdp_drop", "tc_drop", "nft_drop", "socket_drop")

#: micro programs: name -> (hook for bpf.load / snippet, no_record, baseline program type,
#: precise_ts). The *_ns_ts rows are the same record programs with bpf_ktime_get_ns()
#: timestamps (what lesson 05 and --step use): they show what one helper call costs here.
MICRO_PROGRAMS = {
    "xdp": ("xdp", False, "XDP", False),
    "xdp_no_record": ("xdp", True, "XDP", False),
    "xdp_ns_ts": ("xdp", False, "XDP", True),
    "tc": ("tc-ingress", False, "SCHED_CLS", False),
    "tc_no_record": ("tc-ingress", True, "SCHED_CLS", False),
    "tc_ns_ts": ("tc-ingress", False, "SCHED_CLS", True),
    "drop_xdp": ("drop_xdp", False, "XDP", False),
    "drop_tc": ("drop_tc", False, "SCHED_CLS", False),
}
#: what the issue requires of the parse programs under test run (ratio to the empty program)
MICRO_LIMITS = {"xdp": 3.0, "tc": 3.0, "xdp_no_record": 1.5, "tc_no_record": 1.5}

DEFAULTS = {
    # default: well under two minutes on a 2-core VM (measured: see tests/test_bench.py)
    "short": {"rounds": 5, "repeat": 1000, "duration": 1.2, "slices": 4, "warmup": 0.3,
              "compare": ("trafgen",)},
    "long": {"rounds": 15, "repeat": 5000, "duration": 4.0, "slices": 8, "warmup": 0.5,
             "compare": ("trafgen", "tcpreplay")},
}

# XDP live-frames test runs (BPF_F_TEST_XDP_LIVE_FRAMES, Linux 5.18+)
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
#: each live-frames test run ends with an RCU grace period (its page pool is torn down): calls
#: are sized to last about this long, and two threads take turns so the CPU never waits
GEN_CALL_S = 0.2
GEN_THREADS = 2


def _progress_noop(done, total, label=""):
    pass


def _preload():
    """Import now, before anything exists to clean up, what the teardown paths import lazily:
    a Ctrl-C that lands inside a module's first import leaves it half-initialized in
    sys.modules, and the cleanup that imports it next then fails (seen: asyncio, through the
    lab's netlink helper), which would leave the lab behind."""
    import importlib
    importlib.import_module("asyncio")
    for mod in ("pyroute2", "pyroute2.netlink.exceptions", "pktlab.lab.nl", "pktlab.lab.labs",
                "pktlab.kernel.attach", "pktlab.kernel.hooks", "pktlab.kernel.ringbuf", "pktlab.packet.record"):
        try:
            importlib.import_module(mod)
        except ImportError:
            pass


# --------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------
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


def bundled_frames(limit=None):
    """The frames the micro bench runs on: pcaps/mixed.pcap, else a small scapy-built set.

    Returns (frames, where they came from). Frames shorter than an Ethernet header are left out
    (the kernel refuses to test-run them), and so are frames larger than a test run takes.
    """
    frames, source = [], None
    try:
        from ..packet.capture import read_frames
        mixed = resources.bundled_pcap("mixed.pcap")
        frames = [bytes(f.data) for f in read_frames(mixed)]
        source = "pcaps/mixed.pcap"
    except (ImportError, PktlabError, OSError):
        frames = []
    if not frames:
        frames = _scapy_frames()
        source = "scapy-built frames (pcaps/mixed.pcap not found)"
    frames = [f for f in frames if bpf.MIN_TEST_RUN_FRAME <= len(f) <= 3000]
    if limit and len(frames) > limit:
        step = len(frames) / limit
        frames = [frames[int(i * step)] for i in range(limit)]
    return frames, source


def _scapy_frames():
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.packet import Raw
    e = Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")
    ip4 = IP(src="10.200.0.1", dst="10.200.0.2")
    return [bytes(p) for p in (
        e / ip4 / UDP(sport=4321, dport=53) / Raw(b"\x12\x34" + b"\x00" * 20),
        e / ip4 / TCP(sport=40000, dport=80, flags="PA") / Raw(b"GET / HTTP/1.1\r\n\r\n"),
        e / ip4 / ICMP() / Raw(b"x" * 32),
        e / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=1, dport=2) / Raw(b"y" * 100),
        e / Dot1Q(vlan=10) / ip4 / UDP(sport=1, dport=2) / Raw(b"z" * 1000),
        e / ARP(psrc="10.200.0.1", pdst="10.200.0.2"),
    )]


# --------------------------------------------------------------------------------------------
# micro: BPF_PROG_TEST_RUN
# --------------------------------------------------------------------------------------------
_held = {}
_held_lock = threading.Lock()


def _held_program(key):
    """The bench's own small programs (the drop programs, the generator, the empty programs),
    leased once per process and kept: bpf.release() + a second lease would run Program.reset(),
    which expects the parse programs' maps (lost, seen) that these do not have. Their counters
    are only ever read as differences, so they need no reset."""
    with _held_lock:
        prog = _held.get(key)
        if prog is None or prog.closed:
            if key[0] == "empty":
                prog = bpf.empty_program(key[1])
            else:
                source, fn, ptype, cflags = key[1:]
                prog = bpf.compile_program(source, fn, ptype, cflags)
            _held[key] = prog
        return prog


DROP_XDP = ("snippet", "drop_xdp.bpf.c", "pktlab_drop_xdp", "XDP", ())
DROP_TC = ("snippet", "drop_tc.bpf.c", "pktlab_drop_tc", "SCHED_CLS", ())
GEN_XDP = ("snippet", "drop_xdp.bpf.c", "pktlab_drop_xdp", "XDP", ("-DPL_VERDICT=XDP_TX",))


def _load_micro(name):
    """(program, release it afterwards?)"""
    hook, no_record, _, precise_ts = MICRO_PROGRAMS[name]
    if hook == "drop_xdp":
        return _held_program(DROP_XDP), False
    if hook == "drop_tc":
        return _held_program(DROP_TC), False
    return bpf.load(hook, no_record=no_record, precise_ts=precise_ts), True


@contextlib.contextmanager
def _signals_deferred(signums=(signal.SIGINT, signal.SIGTERM)):
    """Hold Ctrl-C (and SIGTERM) back across a few statements, and deliver it right after.

    Lab.up() already holds signals while it builds; this covers what the live bench makes
    right after the lab and before its cleanup is registered on the ExitStack (the link
    counters), so that an interrupt in that window cannot leave them behind. Only in the main
    thread (where handlers live).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved, hits = {}, []
    for signum in signums:
        old = signal.getsignal(signum)
        if callable(old):
            saved[signum] = old
            signal.signal(signum, lambda s, f: hits.append(s))
    try:
        yield
    finally:
        for signum, old in saved.items():
            signal.signal(signum, old)
        if hits:
            saved[hits[0]](hits[0], None)      # e.g. default_int_handler: KeyboardInterrupt


@contextlib.contextmanager
def _xdp_dispatcher_pins(progs):
    """Keep XDP programs in the kernel's XDP dispatcher for the length of the block.

    A test run with repeat > 1 of an XDP program adds it to the XDP dispatcher and removes it
    afterwards (bpf_prog_change_xdp), each a code patch with an RCU wait: about 30 ms per call
    on this kind of VM, for a call whose runs take microseconds. A program already in the
    dispatcher (any XDP attachment puts it there) is only counted, not patched in. So each
    XDP program is attached, generic mode, to one end of a quiet throwaway lab while it is
    measured; the runs themselves are the same either way (a direct call via the dispatcher).
    """
    from ..kernel.attach import XdpAttachment
    from ..lab.labs import Lab
    with contextlib.ExitStack() as stack:
        ends = []
        for prog in progs:
            if not ends:
                lab = stack.enter_context(Lab(prefix="plhm"))   # Lab holds Ctrl-C itself
                ends = [(lab.ns_src, lab.if_src), (lab.ns_dut, lab.if_dut)]
            ns, ifname = ends.pop()
            stack.enter_context(XdpAttachment(ns, ifname, prog.fd, "generic"))
        yield


def _spread(values):
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def micro(programs=None, rounds=5, repeat=1000, frames=None, progress=None):
    """Test-run ns/packet of each program against the empty program of its type.

    Every round runs every frame through every program (the empty ones included) with
    `repeat` runs per call, in an order that rotates from round to round; a round's figure for
    a program is the mean over frames. The result per program: the median over rounds
    (`ns_per_pkt`), the same for its empty program (`baseline_ns_per_pkt`), their `ratio`, and
    min/median/max of both and of the per-round ratios.

    Records: the programs that write a record per packet are drained after every call and
    `repeat` stays far below the ring's capacity, so no reservation fails (`lost` says so).
    """
    _preload()
    progress = progress or _progress_noop
    programs = list(programs or MICRO_PROGRAMS)
    bad = [p for p in programs if p not in MICRO_PROGRAMS]
    if bad:
        raise ValueError(f"micro programs {bad}: choose from {', '.join(MICRO_PROGRAMS)}")
    ring_cap = bpf.SLOTS_DEFAULT        # one test run call stays on one CPU: one ring
    repeat = int(repeat)
    if not 1 <= repeat <= ring_cap:
        raise ValueError(f"micro repeat {repeat}: use 1..{ring_cap} (a call's records must "
                         "fit in the record ring, or refused records make it look cheaper)")
    if frames is None:
        frames, source = bundled_frames()
    else:
        frames, source = [bytes(f) for f in frames], "frames given by the caller"
    out = {}
    progs, errors, leased = {}, {}, []
    stack = contextlib.ExitStack()
    try:
        for ptype in sorted({MICRO_PROGRAMS[p][2] for p in programs}):
            progs["empty_" + ptype] = _held_program(("empty", ptype))
        for name in programs:
            try:
                progs[name], release = _load_micro(name)
            except BPFError as e:
                errors[name] = str(e)
                continue
            if release:
                leased.append(progs[name])
        names = list(progs)
        pins = _xdp_dispatcher_pins([p for n, p in progs.items() if p.prog_type_name == "XDP"])
        stack.enter_context(pins)
        per_round = {n: [] for n in names}
        counts = {n: 0 for n in names}
        records = {n: 0 for n in names}
        with_records = {n for n in names if n in MICRO_PROGRAMS and
                        MICRO_PROGRAMS[n][0] in ("xdp", "tc-ingress") and not MICRO_PROGRAMS[n][1]}
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            sums = {n: 0.0 for n in names}
            for frame in frames:
                for n in order:
                    prog = progs[n]
                    _, ns = bpf.test_run(prog, frame, repeat=repeat)
                    sums[n] += ns
                    counts[n] += repeat
                    if n in with_records:
                        # drained after every call: the next call's records all find room.
                        # A test run's packet arrives on the loopback device (ifindex 1); any
                        # other record is a frame the pinning lab saw, not counted as a run
                        recs = prog.ring().read()
                        records[n] += int((recs["ifindex"] == 1).sum())
            for n in names:
                per_round[n].append(sums[n] / len(frames))
            progress(r + 1, rounds, "micro")
        for name in programs:
            if name in errors:
                out[name] = {"error": errors[name], "ns_per_pkt": None, "baseline_ns_per_pkt": None}
                continue
            base = "empty_" + MICRO_PROGRAMS[name][2]
            ns, bs = per_round[name], per_round[base]
            ratios = [a / b for a, b in zip(ns, bs)]
            entry = {
                "ns_per_pkt": statistics.median(ns),
                "baseline_ns_per_pkt": statistics.median(bs),
                "baseline": f"empty {MICRO_PROGRAMS[name][2]} program",
                "spread": _spread(ns), "baseline_spread": _spread(bs),
                "ratio_spread": _spread(ratios),
                "rounds": rounds, "repeat": repeat, "frames": len(frames),
                "runs": counts[name],
            }
            entry["ratio"] = entry["ns_per_pkt"] / entry["baseline_ns_per_pkt"]
            entry["added_ns_per_pkt"] = entry["ns_per_pkt"] - entry["baseline_ns_per_pkt"]
            hook, no_record, _, precise_ts = MICRO_PROGRAMS[name]
            if hook in ("xdp", "tc-ingress"):
                entry["records"] = "none (statuses counted)" if no_record else "one per packet"
                if not no_record:
                    entry["timestamp"] = ("bpf_ktime_get_ns (ns)" if precise_ts else
                                          "jiffies (1/HZ)")
                if not no_record:
                    entry["records_read"] = records[name]
                    entry["lost"] = progs[name].lost()
            if name in MICRO_LIMITS:
                entry["limit_ratio"] = MICRO_LIMITS[name]
                entry["within_limit"] = entry["ratio"] <= MICRO_LIMITS[name]
            out[name] = entry
    finally:
        stack.close()
        for p in leased:
            bpf.release(p)
    out["_meta"] = {"frames": len(frames), "frames_source": source, "rounds": rounds,
                    "repeat": repeat,
                    "what": "BPF_PROG_TEST_RUN average ns per run (kernel-timed), mean over "
                            "frames per round; median over rounds"}
    return out


# --------------------------------------------------------------------------------------------
# live: resources, each a context manager that removes exactly what it made
# --------------------------------------------------------------------------------------------
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


def _percpu_count(prog, name="count"):
    return sum(sum(v) for _, v in prog.table(name).items())


def _cpus():
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[0], (cpus[1:] or cpus)


class XdpLiveGenerator:
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
        self.closed = False

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

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# Children (trafgen, tcpreplay, the socket reader) are started by spawn(): they die with this
# process even when it is SIGKILLed, trafgen's forked workers included (pktlab/spawn.py).


def _stop_process_group(proc, sig=signal.SIGINT, timeout=3.0):
    spawn.stop(proc, sig, timeout)


class LinkStats:
    """Interface counters of the lab's two ends (IFLA_STATS64 over one netlink socket each)."""

    def __init__(self, lab):
        from pyroute2 import IPRoute
        self.lab = lab
        self._ipr = {}
        try:
            for side in ("src", "dut"):
                self._ipr[side] = IPRoute(netns=lab.ns(side))
        except BaseException:
            self.close()
            raise
        self.index = {s: lab.ifindex(s) for s in ("src", "dut")}

    def get(self, side):
        link = self._ipr[side].get_links(self.index[side])[0]
        return dict(link.get_attr("IFLA_STATS64"))

    def close(self):
        while self._ipr:
            _, ipr = self._ipr.popitem()
            with contextlib.suppress(Exception):
                ipr.close()


class TrafgenGenerator:
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
        self.closed = False

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

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class TcpreplayGenerator(TrafgenGenerator):
    """tcpreplay --topspeed --loop=0 (libpcap, one send per packet): compared, not used."""
    name = "tcpreplay"

    def __init__(self, lab, stats, cpu):
        if shutil.which("tcpreplay") is None:
            raise EnvironmentProblem("tcpreplay is not installed; apt-get install tcpreplay")
        self.lab, self.stats, self.cpu, self.qdisc = lab, stats, cpu, True
        self.proc, self.cfg, self.errors = None, None, []
        self.closed = False

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


READER_CODE = r"""
import sys
sys.path.insert(0, sys.argv[1])
from pktlab.bench.core import _socket_reader_main
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


class SocketReader:
    """A UDP socket bound in dut, read by a child process (pinned to the other CPU)."""

    def __init__(self, lab, cpu, port=UDP_PORT):
        self.lab, self.cpu, self.port = lab, cpu, port
        self.proc, self._map, self.closed = None, None, False
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

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.proc is not None:
            _stop_process_group(self.proc, signal.SIGTERM)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
        if self._map is not None:
            self._map.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class NftDrop:
    """A netdev-family nftables table in dut only: hook ingress on dut's veth, the earliest
    netfilter hook (it runs after TC ingress, before the IP stack), a named counter, drop."""

    TABLE = "pktlab_bench"

    def __init__(self, lab):
        if shutil.which("nft") is None:
            raise EnvironmentProblem("nft is not installed; apt-get install nftables")
        self.lab, self.attached = lab, False
        rules = (f"table netdev {self.TABLE} {{\n"
                 f"  counter dropped {{ }}\n"
                 f"  chain ingress {{\n"
                 f"    type filter hook ingress device \"{lab.if_dut}\" priority -500; "
                 f"policy accept;\n"
                 f"    counter name \"dropped\" drop\n"
                 f"  }}\n}}\n")
        netns.run(lab.ns_dut, ["nft", "-f", "-"], input=rules)
        self.attached = True

    def count(self):
        out = netns.run(self.lab.ns_dut, ["nft", "-j", "list", "counter", "netdev", self.TABLE,
                                          "dropped"]).stdout
        for item in json.loads(out)["nftables"]:
            if "counter" in item:
                return item["counter"]["packets"]
        raise LabError(errno.ENOENT, f"nft counter {self.TABLE}/dropped not found in "
                                     f"{self.lab.ns_dut}")

    def close(self):
        if not self.attached:
            return
        self.attached = False
        if netns.exists(self.lab.ns_dut):
            netns.run(self.lab.ns_dut, ["nft", "delete", "table", "netdev", self.TABLE],
                      check=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class _Drainer:
    """Empties the parse hooks' record rings every few ms, so records keep flowing (a full
    ring would turn the record path into the cheaper `lost` path)."""

    def __init__(self, hookset, cpus):
        self.hs, self.cpus = hookset, cpus
        self.records, self._stop = 0, threading.Event()
        self._t = threading.Thread(target=self._loop, name="pktlab-drain", daemon=True)
        self._t.start()

    def _loop(self):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, set(self.cpus))
        while not self._stop.wait(0.003):
            self.records += sum(len(a) for a in self.hs.drain().values())

    def close(self):
        self._stop.set()
        self._t.join(timeout=5)
        self.records += sum(len(a) for a in self.hs.drain().values())


def _set_gro(lab, on):
    netns.run(lab.ns_dut, ["ethtool", "-K", lab.if_dut, "gro", "on" if on else "off"])


_OUR_SESSIONS = set()      # sessions of the processes the bench started (reader, trafgen)
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def _others_ticks():
    """CPU ticks (user+system) of every user-space process that is not this bench: {pid: n}."""
    me, out = os.getpid(), {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == me:
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        if int(rest[6]) & 0x00200000 or int(rest[3]) in _OUR_SESSIONS:   # PF_KTHREAD
            continue
        out[int(d)] = int(rest[11]) + int(rest[12])
    return out


def _measure(read_point, read_tx, duration, warmup, slices=3, check=None):
    """Rates over `slices` back-to-back intervals; pps is their median, with the spread.

    Each snapshot reads tx before and after the point counter and takes the middle, so a slow
    point reader (nft, a subprocess) does not skew the ratio. The CPU time other processes
    used meanwhile is measured too: on a shared machine it is the first suspect for noise.
    """
    def snap():
        tx_a, t_a = read_tx(), time.monotonic()
        p = read_point()
        t_b, tx_b = time.monotonic(), read_tx()
        return (t_a + t_b) / 2, (tx_a + tx_b) / 2, p

    time.sleep(warmup)
    others0 = _others_ticks()
    snaps = [snap()]
    for _ in range(slices):
        time.sleep(duration / slices)
        snaps.append(snap())
    others1 = _others_ticks()
    if check:
        check()
    pps = [(b[2] - a[2]) / (b[0] - a[0]) for a, b in zip(snaps, snaps[1:])]
    tx_pps = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(snaps, snaps[1:])]
    dt = snaps[-1][0] - snaps[0][0]
    tx, point = snaps[-1][1] - snaps[0][1], snaps[-1][2] - snaps[0][2]
    others = sum(v - others0[p] for p, v in others1.items() if p in others0)
    # The figure is the slice in which the generator ran fastest, point and tx from that same
    # slice: anything else on the machine can only slow a point down, so the least disturbed
    # slice is the best estimate of what the point can do. All slices are kept (pps_spread).
    best = max(range(len(pps)), key=lambda i: tx_pps[i])
    return {"interval_s": dt, "tx": tx, "point": point,
            "pps": pps[best], "tx_pps": tx_pps[best],
            "pps_spread": _spread(pps), "slices": slices,
            "delivered": point / tx if tx > 0 else None,
            "other_load_cpus": others / _CLK_TCK / dt}


class _Live:
    """One lab for the whole live run; one point at a time."""

    def __init__(self, lab, stats, generator, gen_cpu, other_cpus, duration, warmup, slices):
        self.lab, self.stats, self.gen = lab, stats, generator
        self.gen_cpu, self.other = gen_cpu, other_cpus
        self.duration, self.warmup, self.slices = duration, warmup, slices
        self.drop_xdp = None
        self.drop_tc = None

    def programs(self):
        self.drop_xdp = _held_program(DROP_XDP)
        self.drop_tc = _held_program(DROP_TC)

    def close(self):
        self.drop_xdp = self.drop_tc = None

    def _run_gen(self, gen, frame, read_point, extra=None):
        gen.start(frame)
        try:
            m = _measure(read_point, gen.count, self.duration, self.warmup, self.slices,
                         check=getattr(gen, "check", None))
            if extra:
                m.update(extra())
        finally:
            gen.stop()
        if gen.errors:
            raise LabError(errno.EIO, "; ".join(gen.errors))
        if m["tx"] <= 0:
            raise LabError(errno.EIO, f"the generator ({gen.name}) sent nothing in "
                                      f"{m['interval_s']:.2f}s")
        return m

    def generator_alone(self, frame):
        """The generator with nobody to deliver to: dut has no NAPI (GRO off, no XDP), so
        veth refuses every frame at once; what is left is the cost of generating."""
        _set_gro(self.lab, False)
        try:
            m = self._run_gen(self.gen, frame, self.gen.count)
        finally:
            _set_gro(self.lab, True)
        m["pps"], m["pps_spread"], m["delivered"] = m["tx_pps"], None, 1.0
        return m

    def point(self, name, frame, gen=None):
        from ..kernel.attach import TcAttachment, XdpAttachment
        from ..kernel.hooks import HookSet
        lab, gen = self.lab, gen or self.gen
        self.programs()
        if name in ("xdp_drop", "xdp_native_drop"):
            mode = "native" if name == "xdp_native_drop" else "generic"
            with XdpAttachment(lab.ns_dut, lab.if_dut, self.drop_xdp.fd, mode):
                base = _percpu_count(self.drop_xdp)
                return self._run_gen(gen, frame, lambda: _percpu_count(self.drop_xdp) - base)
        if name == "tc_drop":
            with TcAttachment(lab.ns_dut, lab.if_dut, self.drop_tc.fd, "ingress",
                              name="pktlab_bench"):
                base = _percpu_count(self.drop_tc)
                return self._run_gen(gen, frame, lambda: _percpu_count(self.drop_tc) - base)
        if name == "nft_drop":
            with NftDrop(lab) as nft:
                return self._run_gen(gen, frame, nft.count)
        if name == "socket_drop":
            with SocketReader(lab, self.other[0]) as rd:
                u0 = rd.udp_counters()

                def extra():
                    u1 = rd.udp_counters()
                    return {"socket_buffer_drops": u1.get("RcvbufErrors", 0) -
                            u0.get("RcvbufErrors", 0)}
                m = self._run_gen(gen, frame, rd.count, extra)
                m["socket_buffer_drops_pps"] = m.pop("socket_buffer_drops") / m["interval_s"]
                return m
        if name in PARSE_POINTS:
            hook = POINTS[name][2]
            with SocketReader(lab, self.other[0]) as rd, \
                    HookSet(lab, [hook], slots=PARSE_SLOTS) as hs:
                drain = _Drainer(hs, self.other)
                try:
                    def parsed():
                        return sum(sum(s.values()) for s in hs.seen().values())
                    m = self._run_gen(gen, frame, parsed)
                finally:
                    drain.close()
                m["records_read"] = drain.records
                m["records_lost"] = sum(hs.lost().values())
                m["via"] = hs.via.get(hook)
                return m
        raise ValueError(f"live point {name!r}: choose from {', '.join(POINTS)}")


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


def plan(points=None, sizes=SIZES, micro_on=True, live_on=True, long=False):
    """How many steps a run has (for progress bars)."""
    cfg = DEFAULTS["long" if long else "short"]
    points = _check_points(points)
    n = cfg["rounds"] if micro_on else 0
    if live_on and points:
        n += len(sizes) * (1 + len(points) + (1 if "tc_egress_parse" in points else 0))
        n += len(cfg["compare"])
    return n


def _check_points(points):
    if points is None:
        return list(POINTS)
    pts = [p.strip().replace("-", "_") for p in
           (points.split(",") if isinstance(points, str) else points) if p.strip()]
    bad = [p for p in pts if p not in POINTS]
    if bad:
        raise ValueError(f"live points {bad}: choose from {', '.join(POINTS)}")
    return [p for p in POINTS if p in pts]


def live(points=None, sizes=SIZES, duration=1.2, warmup=0.3, slices=4, compare=("trafgen",),
         progress=None, prefix="plhb"):
    """The live ladder: packets/s at each point, for each frame size, in one lab."""
    _preload()
    from ..lab.labs import Lab
    progress = progress or _progress_noop
    points = _check_points(points)
    sizes = [int(s) for s in sizes]
    for s in sizes:
        if not 60 <= s <= 1514:
            raise ValueError(f"frame size {s}: use 60..1514 ({FCS_NOTE}; the lab's MTU is 1500)")
    if shutil.which("ethtool") is None:
        raise EnvironmentProblem("ethtool is not installed (the bench turns GRO on at dut so "
                                 "its veth runs NAPI); apt-get install ethtool")
    gen_cpu, other = _cpus()
    total = len(sizes) * (1 + len(points) + (1 if "tc_egress_parse" in points else 0)) + \
        len(compare)
    done = 0
    res = {"frame_sizes": sizes, "frame_size_means": FCS_NOTE, "duration_s": duration,
           "generator_cpu": gen_cpu, "other_cpus": other, "by_size": {}, "errors": {}}
    with contextlib.ExitStack() as stack:
        with _signals_deferred():
            lab = stack.enter_context(Lab(prefix=prefix))
            stats = LinkStats(lab)
            stack.callback(stats.close)
        _set_gro(lab, True)
        gen, why = _choose_generator(lab, stats, gen_cpu)
        stack.callback(gen.close)
        res.update(generator=gen.name, generator_why=why)
        runner = _Live(lab, stats, gen, gen_cpu, other, duration, warmup, slices)
        stack.callback(runner.close)

        def frame_for(size):
            return udp_frame(size, lab.mac("dut"), lab.mac("src"), lab.src_ip4, lab.dut_ip4)

        # which generator: the candidates against the same receiver (TC drop at dut, 64 B)
        if compare:
            cmp = {}
            f64 = frame_for(64)
            try:
                cmp[gen.name] = _rate(runner.point("tc_drop", f64))
            except PktlabError as e:
                cmp[gen.name] = {"error": str(e)}
            for other_name in compare:
                if other_name == gen.name:
                    continue
                try:
                    g = (TcpreplayGenerator(lab, stats, gen_cpu) if other_name == "tcpreplay"
                         else TrafgenGenerator(lab, stats, gen_cpu))
                    with g:
                        cmp[other_name] = _rate(runner.point("tc_drop", f64, gen=g))
                except PktlabError as e:
                    cmp[other_name] = {"error": str(e)}
                done += 1
                progress(done, total, f"generator {other_name}")
            res["generators_compared"] = {
                "receiver": "TC ingress drop at dut, 64-byte frames", "pps": cmp}
        for size in sizes:
            frame = frame_for(size)
            row = {}
            try:
                row["generator"] = _rate(runner.generator_alone(frame))
            except PktlabError as e:
                row["generator"] = {"error": str(e)}
                # a measurement asked for that did not happen: failures() (exit 1) must see it
                res["errors"][f"{size} B generator"] = str(e)
            done += 1
            progress(done, total, f"{size} B generator")
            for p in points:
                label = f"{size} B {p}"
                try:
                    if p == "tc_egress_parse":
                        # TC egress on src sees only frames that go through src's stack: this
                        # point (and its baseline) uses trafgen through the qdisc layer
                        with TrafgenGenerator(lab, stats, gen_cpu, qdisc=True) as tg:
                            base = _rate(runner.point("socket_drop", frame, gen=tg))
                            base["generator"] = tg.name + " (qdisc path)"
                            row["socket_drop_trafgen"] = base
                            done += 1
                            progress(done, total, f"{size} B socket (trafgen)")
                            m = _rate(runner.point(p, frame, gen=tg))
                            m["generator"] = tg.name + " (qdisc path)"
                    else:
                        m = _rate(runner.point(p, frame))
                        m["generator"] = gen.name
                    row[p] = m
                except PktlabError as e:
                    row[p] = {"error": str(e)}
                    res["errors"][label] = str(e)
                done += 1
                progress(done, total, label)
            res["by_size"][str(size)] = _derive(row)
    _summarize_live(res)
    return res


def _rate(m):
    keep = ("pps", "tx_pps", "pps_spread", "slices", "delivered", "interval_s",
            "other_load_cpus", "socket_buffer_drops_pps", "records_read", "records_lost", "via")
    return {k: m[k] for k in keep if k in m}


def _derive(row):
    """Ratios and per-packet costs, from this run's numbers only."""
    gen = row.get("generator", {}).get("pps")
    for name, m in row.items():
        if "pps" not in m or name == "generator":
            continue
        m["ratio"] = m["pps"] / gen if gen else None
        # on veth the receive work runs on the generator's CPU (see explain()): the time per
        # packet at this point's rate, less the generator's own time, is the receive path's
        if gen and m.get("generator", "").startswith("xdp-live") and m["pps"] > 0:
            m["receive_ns_per_pkt"] = 1e9 / m["tx_pps"] - 1e9 / gen
    # parse+pass sends every packet on to the socket point: against the socket point's run
    # with the same generator, the difference in time per generated packet is what the hook
    # adds (tx rates: the socket's own count is what its reader kept up with, a separate limit)
    for p in PARSE_POINTS:
        m = row.get(p, {})
        base = row.get("socket_drop_trafgen" if p == "tc_egress_parse" else "socket_drop", {})
        if m.get("tx_pps") and base.get("tx_pps"):
            m["added_ns_per_pkt_vs_socket"] = 1e9 / m["tx_pps"] - 1e9 / base["tx_pps"]
    return row


def _summarize_live(res):
    """Top-level keys (the JSON contract): generator_pps and <point>_pps for 64-byte frames
    (the smallest size measured), the classic packets-per-second ladder."""
    if not res["by_size"]:
        return
    size = str(min(int(s) for s in res["by_size"]))
    row = res["by_size"][size]
    res["summary_frame_size"] = int(size)
    res["generator_pps"] = row.get("generator", {}).get("pps")
    for p in POINTS:
        if p in row:
            res[f"{p}_pps"] = row[p].get("pps")
            res[f"{p}_ratio"] = row[p].get("ratio")
    res["order"] = {}
    for s, r in res["by_size"].items():
        measured = [p for p in EXPECTED_ORDER if r.get(p, {}).get("pps")]
        res["order"][s] = sorted(measured, key=lambda p: -r[p]["pps"])
    res["expected_order"] = list(EXPECTED_ORDER)
    loads = [m["other_load_cpus"] for r in res["by_size"].values() for m in r.values()
             if isinstance(m, dict) and m.get("other_load_cpus") is not None]
    if loads:
        res["other_load_cpus"] = {"mean": statistics.mean(loads), "max": max(loads)}
    res["order_as_expected"] = {s: o == [p for p in EXPECTED_ORDER if p in o]
                                for s, o in res["order"].items()}


# --------------------------------------------------------------------------------------------
# the whole bench
# --------------------------------------------------------------------------------------------
def run(micro_on=True, live_on=True, points=None, sizes=SIZES, long=False, progress=None):
    """Micro and live benches; returns one JSON-able dict (see DESIGN.md for the keys)."""
    cfg = DEFAULTS["long" if long else "short"]
    points = _check_points(points)
    total = plan(points, sizes, micro_on, live_on, long)
    progress = progress or _progress_noop
    state = {"done": 0}

    def step(label):
        state["done"] += 1
        progress(state["done"], total, label)

    t0 = time.monotonic()
    out = {"machine": _machine(), "mode": "long" if long else "default"}
    if micro_on:
        out["micro"] = micro(rounds=cfg["rounds"], repeat=cfg["repeat"],
                             progress=lambda d, t, lbl: step(f"micro round {d}/{t}"))
    if live_on and points:
        out["live"] = live(points, sizes, duration=cfg["duration"], warmup=cfg["warmup"],
                           slices=cfg["slices"], compare=cfg["compare"],
                           progress=lambda d, t, lbl: step(lbl))
    out["elapsed_s"] = time.monotonic() - t0
    out["explanation"] = explain(out)
    return out


def _machine():
    import platform
    return {"kernel": platform.release(), "cpus": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0))}


def failures(results):
    """Measurements that were asked for and did not happen (e.g. a program the kernel refused)."""
    out = []
    for name, m in results.get("micro", {}).items():
        if name != "_meta" and m.get("error"):
            out.append(f"micro {name}: {m['error']}")
        if m.get("lost"):
            out.append(f"micro {name}: {m['lost']} records lost")
    for label, err in results.get("live", {}).get("errors", {}).items():
        out.append(f"live {label}: {err}")
    return out


# --------------------------------------------------------------------------------------------
# words: what the figures mean (built from the figures, never from stored numbers)
# --------------------------------------------------------------------------------------------
def _f(x, unit=""):
    if x is None:
        return "n/a"
    if unit == "pps":
        return f"{x / 1e6:.2f} Mpps" if x >= 1e6 else f"{x / 1e3:.0f} kpps"
    return f"{x:.1f}{unit}"


def _return_mitigation():
    """The CPU mitigation that makes every kernel return dear, when this machine runs one."""
    base = "/sys/devices/system/cpu/vulnerabilities/"
    for name in ("spec_rstack_overflow", "retbleed"):
        try:
            with open(base + name) as f:
                text = f.read().strip()
        except OSError:
            continue
        if any(k in text for k in ("Safe RET", "untrained return thunk", "stuffing")):
            return f"{name}: {text}"
    return None


def explain(results):
    """The results in words: what was measured, what it means here, and why."""
    lines = []
    mi = results.get("micro")
    if mi:
        lines.append("Test run (BPF_PROG_TEST_RUN): the program alone, in the kernel, on the "
                     "same bytes again and again; the empty program of the same type is the "
                     "floor (the cost of calling a program at all).")
        for name in ("xdp", "xdp_no_record", "tc", "tc_no_record"):
            m = mi.get(name)
            if not m:
                continue
            if m.get("error"):
                lines.append(f"  {name}: not measured: {m['error'].splitlines()[0]}")
                continue
            verdict = ("within" if m["within_limit"] else "ABOVE") + \
                f" the {m['limit_ratio']:g}x limit"
            lines.append(f"  {name}: {m['ns_per_pkt']:.1f} ns vs {m['baseline_ns_per_pkt']:.1f} ns "
                         f"empty = {m['ratio']:.2f}x ({verdict}); the parse adds "
                         f"{m['added_ns_per_pkt']:.1f} ns per packet")
        mitigation = _return_mitigation()
        for hook in ("xdp", "tc"):
            rec, norec = mi.get(hook, {}), mi.get(hook + "_no_record", {})
            ns = mi.get(hook + "_ns_ts", {})
            if rec.get("ns_per_pkt") and norec.get("ns_per_pkt"):
                lines.append(
                    f"  {hook}: a record per packet (a slot in this CPU's record ring, zeroed and "
                    f"filled, a jiffies timestamp, the fingerprint) costs "
                    f"{rec['ns_per_pkt'] - norec['ns_per_pkt']:.1f} ns on top of the parse.")
            if rec.get("ns_per_pkt") and ns.get("ns_per_pkt"):
                lines.append(
                    f"  {hook}_ns_ts: the same with a bpf_ktime_get_ns() timestamp: "
                    f"{ns['ns_per_pkt']:.1f} ns ({ns['ratio']:.2f}x empty), "
                    f"{ns['ns_per_pkt'] - rec['ns_per_pkt']:+.1f} ns for one helper call"
                    + (f" ({mitigation}: every kernel `ret` takes a detour)" if mitigation else "")
                    + ". That is why records carry jiffies unless a lesson needs to order one "
                    "packet's hooks in time.")
    lv = results.get("live")
    if lv and lv.get("by_size"):
        lines.append("")
        lines.append(f"Live: generator = {lv['generator']} on CPU {lv['generator_cpu']}: "
                     f"{lv['generator_why']}.")
        cmp = lv.get("generators_compared", {}).get("pps", {})
        if cmp:
            lines.append("  Generators against the same receiver (TC drop, 64 B): " + ", ".join(
                f"{k} {_f(v.get('tx_pps'), 'pps')}" if "tx_pps" in v else f"{k}: {v['error']}"
                for k, v in cmp.items()) + ".")
        lines.append(
            "  Why a veth is not a NIC: there is no wire, no second machine and no receive "
            "CPU of its own. veth hands each frame to its peer inside the sender's call, and "
            "the peer's receive work (NAPI poll, skb, the stack) runs as a softirq on the CPU "
            "that sent it, right after it was sent. So the generator can only go as fast as "
            "sending plus receiving up to the drop point: the generator's rate is measured in "
            "every run, and the ladder shows up in the absolute rates, not in frames lost on "
            "a wire.")
        lines.append(
            "  The ratios: `ratio` = packets/s at the point / the generator alone (the same "
            "generator with nobody to deliver to), i.e. how much of the generator's speed "
            "survives the receive work; `delivered` = packets counted at the point / frames "
            "sent in the same interval (1.00 = nothing lost on the way; below 1: frames "
            "dropped before the point, e.g. a full socket buffer). receive ns/pkt = 1e9/rate "
            "- 1e9/generator-alone: the receive path's time per packet, on the generator's CPU. Each "
            "point is measured in several back-to-back slices; its figure is the slice in which "
            "the generator ran fastest (other work can only slow a point down), and "
            "pps_spread keeps them all.")
        lines.append(
            "  Generic vs native XDP on veth: native XDP runs inside veth's own NAPI poll on "
            "the frame as it came (an xdp_frame from the generator here), before any skb "
            "exists; XDP_DROP just recycles the page. Generic XDP runs in "
            "__netif_receive_skb_core, after veth built an skb and GRO looked at it, so it "
            "pays for the skb it then frees. (When frames come from a socket instead, e.g. "
            "trafgen, native XDP on veth must first copy each skb into a page with XDP "
            "headroom, and loses most of its advantage.)")
        for size, row in lv["by_size"].items():
            gen = row.get("generator", {})
            parts = []
            for p in DROP_POINTS:
                m = row.get(p)
                if not m:
                    continue
                if "error" in m:
                    parts.append(f"{p}: not measured ({m['error'][:160]})")
                    continue
                s = f"{p} {_f(m['pps'], 'pps')}"
                if m.get("ratio") is not None:
                    s += f" ({m['ratio']:.2f} of the generator"
                    if m.get("receive_ns_per_pkt") is not None:
                        s += f", receive {m['receive_ns_per_pkt']:.0f} ns/pkt"
                    s += ")"
                if m.get("delivered") is not None and m["delivered"] < 0.97:
                    s += f" [{m['delivered']:.0%} of what was sent reached it]"
                parts.append(s)
            lines.append(f"  {size} B drop points: generator alone {_f(gen.get('pps'), 'pps')}; "
                         + "; ".join(parts))
            parts = []
            for p in PARSE_POINTS:
                m = row.get(p)
                if not m:
                    continue
                if "error" in m:
                    parts.append(f"{p}: not measured ({m['error'][:160]})")
                    continue
                s = f"{p} {_f(m['pps'], 'pps')} parsed"
                added = m.get("added_ns_per_pkt_vs_socket")
                if added is not None:
                    s += f" ({added:+.0f} ns/pkt vs no hook" + \
                        (": below zero, the path ran faster with the hook than without" +
                         (" (a likely cause, not measured here: the TC program pulls the "
                          "headers of trafgen's paged TX-ring skbs into the linear part once, "
                          "at src, instead of the stack pulling them piecemeal at dut)"
                          if p == "tc_egress_parse" else
                          ": noise") + ")" if added < 0 else ")")
                if m.get("records_lost"):
                    s += f" [{m['records_lost']} records lost]"
                parts.append(s)
            if parts:
                lines.append(f"  {size} B parse+pass (every packet parsed, recorded, passed on to "
                             "the socket): " + "; ".join(parts))
        order = lv.get("order", {})
        for size, o in order.items():
            if lv["order_as_expected"][size]:
                lines.append(f"  {size} B: the expected order appeared: " + " > ".join(o) + ".")
            else:
                row = lv["by_size"][size]
                lines.append(f"  {size} B: measured order " + " > ".join(o) + " (expected " +
                             " > ".join(p for p in EXPECTED_ORDER if p in o) + "). " +
                             _why_order(row, o))
        load = lv.get("other_load_cpus")
        if load and load["max"] > 0.1:
            worst = sorted(((m.get("other_load_cpus") or 0, f"{s} B {p}")
                            for s, r in lv["by_size"].items() for p, m in r.items()
                            if isinstance(m, dict)), reverse=True)[:3]
            lines.append(f"  Other processes on this machine used {load['mean']:.2f} CPUs on "
                         f"average (up to {load['max']:.2f}) while points were measured: they "
                         "compete with the generator's and the reader's CPUs, so these figures "
                         "are noisier than on a quiet machine (most disturbed: " +
                         ", ".join(f"{n} {c:.2f} CPUs" for c, n in worst) + "; see each "
                         "point's pps_spread and other_load_cpus; rerun on a quiet machine" +
                         (")." if results.get("mode") == "long" else ", or use --long)."))
        soc = lv["by_size"].get(str(lv.get("summary_frame_size")), {}).get("socket_drop", {})
        if soc.get("pps"):
            lines.append(
                f"  The socket point is a reader process on CPU {lv['other_cpus'][0]} "
                f"(recvmmsg(), 64 per call, {RCVBUF >> 20} MiB receive buffer): its rate is what "
                "the reader took out of the socket. The kernel's side shows in the generator's "
                f"rate in that run ({_f(soc['tx_pps'], 'pps')}); "
                + (f"{_f(soc['socket_buffer_drops_pps'], 'pps')} found the buffer full (the "
                   "reader is slower than the kernel's delivery)."
                   if soc.get("socket_buffer_drops_pps") else "the reader kept up."))
        lines.append(
            "  Parse+pass: the hook parses every packet and writes its record (a drain thread "
            "empties the record rings every 3 ms), then the packet goes on to the socket point. "
            "`+ns/pkt vs no hook` compares the generator's rate with the socket point's run "
            "(same traffic, same socket, no hook); compare it with the test-run figures above.")
    fails = failures(results)
    if fails:
        lines.append("")
        lines.append("Not measured / problems:")
        lines += [f"  {f}" for f in fails]
    return "\n".join(lines)


def _why_order(row, order):
    """The measured reason an out-of-order pair swapped, from this run's per-packet costs."""
    reasons = []
    for a, b in zip(order, order[1:]):
        if EXPECTED_ORDER.index(a) > EXPECTED_ORDER.index(b):
            ma, mb = row[a], row[b]
            ca, cb = ma.get("receive_ns_per_pkt"), mb.get("receive_ns_per_pkt")
            diff = abs(ma["pps"] - mb["pps"]) / max(ma["pps"], mb["pps"])
            if diff < 0.05:
                reasons.append(f"{a} and {b} are within {diff:.0%} of each other: on this "
                               "path they cost about the same, and the difference is inside "
                               "the run-to-run spread (run --long to tighten it)")
            elif ca is not None and cb is not None:
                reasons.append(f"{a} cost {ca:.0f} ns/pkt of receive work and {b} {cb:.0f}: "
                               f"on veth, {b} pays for work {a} skips or shares (see above)")
            else:
                reasons.append(f"{a} {ma['pps']:.0f} pps > {b} {mb['pps']:.0f} pps")
    return "; ".join(reasons)


def format_text(results):
    """The figures as tables, then the explanation."""
    lines = [f"pktlab bench ({results.get('mode')}) — kernel {results['machine']['kernel']}, "
             f"{results['machine']['cpus_usable']} CPUs, {results.get('elapsed_s', 0):.0f}s", ""]
    mi = results.get("micro")
    if mi:
        meta = mi["_meta"]
        lines.append(f"micro: BPF_PROG_TEST_RUN on {meta['frames']} frames from "
                     f"{meta['frames_source']}, {meta['rounds']} rounds x {meta['repeat']} runs")
        lines.append(f"  {'program':<15} {'ns/pkt':>8} {'min':>7} {'max':>7}  {'empty':>7} "
                     f"{'min':>6} {'max':>6}  {'ratio':>6} {'min':>6} {'max':>6}  limit")
        for name, m in mi.items():
            if name == "_meta":
                continue
            if m.get("error"):
                lines.append(f"  {name:<15} not measured: {m['error'].splitlines()[0][:90]}")
                continue
            sp, bs, rs = m["spread"], m["baseline_spread"], m["ratio_spread"]
            lim = (f"{m['limit_ratio']:g}x {'ok' if m['within_limit'] else 'EXCEEDED'}"
                   if "limit_ratio" in m else "")
            lines.append(f"  {name:<15} {m['ns_per_pkt']:8.1f} {sp['min']:7.1f} {sp['max']:7.1f}"
                         f"  {m['baseline_ns_per_pkt']:7.1f} {bs['min']:6.1f} {bs['max']:6.1f}"
                         f"  {m['ratio']:6.2f} {rs['min']:6.2f} {rs['max']:6.2f}  {lim}")
        lines.append("")
    lv = results.get("live")
    if lv and lv.get("by_size"):
        lines.append(f"live: {lv['generator']} on CPU {lv['generator_cpu']}, "
                     f"{lv['duration_s']:g}s per point, sizes = {lv['frame_size_means']}")
        sizes = list(lv["by_size"])
        head = f"  {'point':<22}" + "".join(f" {s + ' B pps':>13} {'ratio':>6} {'deliv':>6}"
                                             for s in sizes)
        lines.append(head)
        for p in ("generator", *POINTS, "socket_drop_trafgen"):
            if not any(p in lv["by_size"][s] for s in sizes):
                continue
            cells = ""
            for s in sizes:
                m = lv["by_size"][s].get(p)
                if not m or "error" in m:
                    cells += f" {'error' if m else '-':>13} {'':>6} {'':>6}"
                    continue
                r = "" if m.get("ratio") is None else f"{m['ratio']:.2f}"
                d = "" if m.get("delivered") is None else f"{m['delivered']:.2f}"
                cells += f" {m['pps']:13,.0f} {r:>6} {d:>6}"
            lines.append(f"  {p:<22}" + cells)
        lines.append("")
    lines.append(results.get("explanation") or explain(results))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# the chart
# --------------------------------------------------------------------------------------------
_COLORS = {
    "xdp_native_drop": "#08519c", "xdp_drop": "#3182bd", "tc_drop": "#31a354",
    "nft_drop": "#e6550d", "socket_drop": "#756bb1", "xdp_parse": "#9ecae1",
    "tc_ingress_parse": "#a1d99b", "kprobe_parse": "#bcbddc", "tc_egress_parse": "#fdae6b",
}


def plot(results, ax=None):
    """Bars per point, grouped by frame size, with the generator's rate as a line; with
    micro results and no `ax`, a second panel with the test-run costs. Returns the Figure."""
    from matplotlib.figure import Figure
    lv = results.get("live") if "live" in results or "micro" in results else results
    mi = results.get("micro")
    has_live = bool(lv and lv.get("by_size"))
    if ax is None:
        n = int(has_live) + int(bool(mi))
        fig = Figure(figsize=(7 * max(n, 1) + (3 if has_live else 0), 5.6),
                     layout="constrained")
        axes = fig.subplots(1, max(n, 1), squeeze=False,
                            width_ratios=([1] * (n - 1) + [1.6]) if n == 2 else None)[0]
        if mi:
            _plot_micro(mi, axes[0])
        if has_live:
            _plot_live(lv, axes[-1])
        if not mi and not has_live:
            axes[0].text(0.5, 0.5, "nothing measured", ha="center", va="center")
        return fig
    if has_live:
        _plot_live(lv, ax)
    elif mi:
        _plot_micro(mi, ax)
    return ax.figure


def _plot_micro(mi, ax):
    names = [n for n in mi if n != "_meta" and mi[n].get("ns_per_pkt") is not None]
    xs = range(len(names))
    vals = [mi[n]["ns_per_pkt"] for n in names]
    base = [mi[n]["baseline_ns_per_pkt"] for n in names]
    err = [[mi[n]["ns_per_pkt"] - mi[n]["spread"]["min"] for n in names],
           [mi[n]["spread"]["max"] - mi[n]["ns_per_pkt"] for n in names]]
    ax.bar([x - 0.2 for x in xs], vals, 0.4, yerr=err, capsize=3, label="program", color="#3182bd")
    ax.bar([x + 0.2 for x in xs], base, 0.4, label="empty program (same type)", color="#bdbdbd")
    lim = [(x, mi[n]["limit_ratio"] * mi[n]["baseline_ns_per_pkt"]) for x, n in zip(xs, names)
           if "limit_ratio" in mi[n]]
    if lim:
        ax.hlines([y for _, y in lim], [x - 0.45 for x, _ in lim], [x + 0.05 for x, _ in lim],
                  colors="#d62728", linestyles=":", label="limit (x empty)")
    for x, n in zip(xs, names):
        ax.annotate(f"{mi[n]['ratio']:.1f}x", (x - 0.2, mi[n]["spread"]["max"]),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("ns per packet (BPF_PROG_TEST_RUN)")
    ax.set_title("Per-program cost (median, min-max over rounds)")
    ax.legend(fontsize=8)


def _plot_live(lv, ax):
    sizes = list(lv["by_size"])
    shown = [p for p in POINTS if any("pps" in lv["by_size"][s].get(p, {}) for s in sizes)]
    width = min(0.8 / max(len(shown), 1), 0.2)
    for i, p in enumerate(shown):
        xs, ys = [], []
        for j, s in enumerate(sizes):
            m = lv["by_size"][s].get(p, {})
            if "pps" in m:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(m["pps"] / 1e6)
        bars = ax.bar(xs, ys, width, label=POINTS[p][1], color=_COLORS.get(p),
                      hatch="//" if POINTS[p][0] == "parse" else None, edgecolor="white")
        for b, y in zip(bars, ys):
            ax.annotate(f"{y:.2f}", (b.get_x() + b.get_width() / 2, y), ha="center",
                        va="bottom", fontsize=6, rotation=90, xytext=(0, 2),
                        textcoords="offset points")
    first = True
    for j, s in enumerate(sizes):
        g = lv["by_size"][s].get("generator", {}).get("pps")
        if g:
            ax.hlines(g / 1e6, j - 0.45, j + 0.45, colors="black", linestyles="--",
                      label=f"generator alone ({lv['generator']})" if first else None)
            first = False
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([f"{s} B" for s in sizes])
    ax.set_ylabel("Mpps at the point")
    ax.set_title(f"Live ladder on a veth lab ({FCS_NOTE})", fontsize=10)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3,
              frameon=False)


# --------------------------------------------------------------------------------------------
# the notebook panel
# --------------------------------------------------------------------------------------------
class BenchPanel:
    """Pick points and sizes, press Run: a progress bar while it runs, then the chart."""

    def __init__(self, points=("xdp_native_drop", "xdp_drop", "tc_drop", "nft_drop",
                               "socket_drop"), sizes=SIZES, micro_on=True, long=False):
        import ipywidgets as w
        self.w = w
        self.point_boxes = {p: w.Checkbox(value=p in points, description=POINTS[p][1],
                                          indent=False) for p in POINTS}
        self.size_boxes = {s: w.Checkbox(value=s in sizes, description=f"{s} B", indent=False)
                           for s in SIZES}
        self.micro_box = w.Checkbox(value=micro_on, description="test-run costs (micro)",
                                    indent=False)
        self.long_box = w.Checkbox(value=long, description="long (tighter figures)",
                                   indent=False)
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.button.on_click(self._on_click)
        self.progress_box = w.VBox()
        self.out = w.Output()
        self.text = w.Output()
        self.results = None
        self.figure = None
        self.widget = w.VBox([
            w.HBox([w.VBox([w.HTML("<b>live points</b>"), *self.point_boxes.values()]),
                    w.VBox([w.HTML("<b>frame sizes</b>"), *self.size_boxes.values(),
                            w.HTML("<b>also</b>"), self.micro_box, self.long_box])]),
            self.button, self.progress_box, self.out, self.text])

    def selection(self):
        return ([p for p, b in self.point_boxes.items() if b.value],
                [s for s, b in self.size_boxes.items() if b.value])

    def run(self):
        """Run the chosen subset and redraw (what the button does)."""
        from ..progress import WidgetBar
        points, sizes = self.selection()
        live_on = bool(points and sizes)
        total = plan(points, sizes or SIZES, self.micro_box.value, live_on, self.long_box.value)
        bar = WidgetBar(total, "bench")
        self.progress_box.children = [bar.box]
        self.button.disabled = True
        try:
            self.results = run(micro_on=self.micro_box.value, live_on=live_on,
                               points=points or None, sizes=sizes or SIZES,
                               long=self.long_box.value,
                               progress=lambda d, t, lbl: (bar.update(d),
                                                           setattr(bar.bar, "description",
                                                                   lbl[:20])))
            bar.close()
            self.redraw()
        finally:
            self.button.disabled = False
        return self.results

    def redraw(self):
        """Put the chart (as a PNG) and the text in their Output widgets. Written with
        append_display_data/append_stdout rather than `with out:`, so that it also works when
        run() is called from a worker thread (the lessons run labs off Jupyter's event loop)."""
        import io

        from IPython.display import Image
        self.out.outputs = ()
        self.text.outputs = ()
        if self.results is None:
            return
        self.figure = plot(self.results)
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100)
        self.out.append_display_data(Image(data=buf.getvalue(), format="png"))
        self.text.append_stdout(format_text(self.results) + "\n")

    def _on_click(self, _):
        try:
            self.run()
        except PktlabError as e:
            self.text.append_stdout(f"bench failed: {e}\n")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------
def parse_only(only):
    """--only: 'micro', 'live', or a comma list of live points (may include 'micro')."""
    if not only:
        return True, True, None
    items = [i.strip().replace("-", "_") for i in only.split(",") if i.strip()]
    micro_on = "micro" in items
    live_all = "live" in items
    pts = [i for i in items if i not in ("micro", "live")]
    bad = [p for p in pts if p not in POINTS]
    if bad:
        raise ValueError(f"--only {only}: {', '.join(bad)} is not a part of the bench; use "
                         f"micro, live, or live points: {', '.join(POINTS)}")
    return micro_on, bool(live_all or pts), (pts or None)


def cli(args):
    """`pktlab bench [--json] [--plot FILE] [--long] [--only ...]`; returns the exit status."""
    micro_on, live_on, points = parse_only(getattr(args, "only", None))
    if args.plot:
        d = os.path.dirname(os.path.abspath(args.plot))
        if not os.path.isdir(d):
            raise FileNotFoundError(f"--plot {args.plot}: directory {d} does not exist")
    bar = None
    if sys.stderr.isatty():
        from ..progress import TextBar
        bar = TextBar(plan(points, SIZES, micro_on, live_on, args.long), label="bench")

    def progress(done, total, label):
        if bar is not None:
            bar.label = f"bench {label[:24]:<24}"
            bar.update(done)
    try:
        results = run(micro_on=micro_on, live_on=live_on, points=points, long=args.long,
                      progress=progress)
    finally:
        if bar:
            bar.close()
    if args.plot:
        fig = plot(results)
        fig.savefig(args.plot, dpi=110)
        results["plot"] = args.plot
    if args.json:
        print(json.dumps(results, indent=2, default=_json_default))
    else:
        print(format_text(results))
        if args.plot:
            print(f"\nchart written to {args.plot}")
    fails = failures(results)
    if fails:
        for f in fails:
            print(f"pktlab: bench: {f}", file=sys.stderr)
        return 1
    return 0


def _json_default(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, float) and math.isnan(o):
        return None
    raise TypeError(f"not JSON-serializable: {type(o).__name__}")
