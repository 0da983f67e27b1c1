"""The micro bench: BPF_PROG_TEST_RUN ns/packet of each parse program (XDP, TC; with and
without a ring buffer record per packet) on the bundled frames, each against an empty program of
the same type measured in the same rounds; several rounds, so the spread (min, median, max) is
there to see.
"""

import contextlib
import statistics

from .. import resources
from ..errors import BPFError, PktlabError
from ..kernel import bpf
from .cleanup import _preload
from .programs import DROP_TC, DROP_XDP, _held_program
from .spec import MICRO_LIMITS, MICRO_PROGRAMS, _progress_noop, _spread


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


def _load_micro(name):
    """(program, release it afterwards?)"""
    hook, no_record, _, precise_ts = MICRO_PROGRAMS[name]
    if hook == "drop_xdp":
        return _held_program(DROP_XDP), False
    if hook == "drop_tc":
        return _held_program(DROP_TC), False
    return bpf.load(hook, no_record=no_record, precise_ts=precise_ts), True


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
    from ..lab import Lab
    with contextlib.ExitStack() as stack:
        ends = []
        for prog in progs:
            if not ends:
                lab = stack.enter_context(Lab(prefix="plhm"))   # Lab holds Ctrl-C itself
                ends = [(lab.ns_src, lab.if_src), (lab.ns_dut, lab.if_dut)]
            ns, ifname = ends.pop()
            stack.enter_context(XdpAttachment(ns, ifname, prog.fd, "generic"))
        yield


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
        pins = _xdp_dispatcher_pins([p for n, p in progs.items() if p.prog_type_name == "XDP"])
        stack.enter_context(pins)
        per_round, counts, records = _rounds(progs, frames, rounds, repeat, progress)
        for name in programs:
            if name in errors:
                out[name] = {"error": errors[name], "ns_per_pkt": None, "baseline_ns_per_pkt": None}
                continue
            out[name] = _entry(name, progs[name], per_round, counts[name], records[name],
                               rounds, repeat, len(frames))
    finally:
        stack.close()
        for p in leased:
            bpf.release(p)
    out["_meta"] = {"frames": len(frames), "frames_source": source, "rounds": rounds,
                    "repeat": repeat,
                    "what": "BPF_PROG_TEST_RUN average ns per run (kernel-timed), mean over "
                            "frames per round; median over rounds"}
    return out


def _rounds(progs, frames, rounds, repeat, progress):
    """Every frame through every program, `rounds` times, the order rotating from round to
    round. Returns ({name: [a round's mean ns per run]}, {name: runs}, {name: records read})."""
    names = list(progs)
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
    return per_round, counts, records


def _entry(name, prog, per_round, runs, records, rounds, repeat, n_frames):
    """One program's figures against the empty program of its type, from the same rounds."""
    base = "empty_" + MICRO_PROGRAMS[name][2]
    ns, bs = per_round[name], per_round[base]
    ratios = [a / b for a, b in zip(ns, bs)]
    entry = {
        "ns_per_pkt": statistics.median(ns),
        "baseline_ns_per_pkt": statistics.median(bs),
        "baseline": f"empty {MICRO_PROGRAMS[name][2]} program",
        "spread": _spread(ns), "baseline_spread": _spread(bs),
        "ratio_spread": _spread(ratios),
        "rounds": rounds, "repeat": repeat, "frames": n_frames,
        "runs": runs,
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
            entry["records_read"] = records
            entry["lost"] = prog.lost()
    if name in MICRO_LIMITS:
        entry["limit_ratio"] = MICRO_LIMITS[name]
        entry["within_limit"] = entry["ratio"] <= MICRO_LIMITS[name]
    return entry
