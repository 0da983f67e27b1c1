"""What the bench measures: the live ladder's points, the frame sizes, the micro programs and
their limits, and how long a run takes (default and --long); with the small helpers the parts
share (a progress callback that does nothing, a min/median/max spread, the check of a list of
live points).

Frame sizes are frame lengths on the wire without the 4-byte FCS (64 = 14 Ethernet + 20 IPv4 +
8 UDP + 22 bytes of payload).
"""

import statistics


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


def _progress_noop(done, total, label=""):
    pass


def _spread(values):
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def _check_points(points):
    if points is None:
        return list(POINTS)
    pts = [p.strip().replace("-", "_") for p in
           (points.split(",") if isinstance(points, str) else points) if p.strip()]
    bad = [p for p in pts if p not in POINTS]
    if bad:
        raise ValueError(f"live points {bad}: choose from {', '.join(POINTS)}")
    return [p for p in POINTS if p in pts]

