#!/usr/bin/env python3
"""Benchmark: the pktlab walker against scapy's dissection, on the same frames, in one run.

    python tools/bench_walker.py [--pcap pcaps/mixed.pcap] [--frames 5000] [--json]

Frames come from the corpus's largest capture, repeated to --frames. Measured:

- walk_record: the record only, one call per frame (what the hooks' records are compared with);
- walk_records: the same records for a list of frames, fingerprints computed in bulk (numpy);
- walk:        the record plus every layer and field (what the views show);
- scapy:       Ether(frame), then the fields the record holds read back from the layers.

Every path sees the same frames in the same order; the ratio is what matters (timing is
reported, never asserted: see STYLE.md, Tests).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _scapy_touch(pkt, layers):
    """Read the fields a pl_record holds, the way a scapy user would."""
    Ether, Dot1Q, Dot1AD, IP, IPv6, TCP, UDP, ICMP, ARP = layers
    pkt.src, pkt.dst, pkt.type
    if Dot1Q in pkt:
        pkt[Dot1Q].vlan
    if IP in pkt:
        ip = pkt[IP]
        ip.src, ip.dst, ip.ttl, ip.ihl, ip.proto, ip.frag, ip.flags, ip.len, ip.id
    elif IPv6 in pkt:
        ip = pkt[IPv6]
        ip.src, ip.dst, ip.hlim, ip.nh, ip.plen
    if TCP in pkt:
        t = pkt[TCP]
        t.sport, t.dport, t.seq, t.ack, t.flags, t.dataofs
        bytes(t.payload)[:32]
    elif UDP in pkt:
        u = pkt[UDP]
        u.sport, u.dport
        bytes(u.payload)[:32]
    elif ICMP in pkt:
        i = pkt[ICMP]
        i.type, i.code
    elif ARP in pkt:
        pkt[ARP].op


def _rate(fn, frames, min_seconds):
    """Frames per second of fn over frames, repeated until min_seconds passed."""
    n, t0 = 0, time.perf_counter()
    while True:
        for f in frames:
            fn(f)
        n += len(frames)
        dt = time.perf_counter() - t0
        if dt >= min_seconds:
            return n / dt


def run(pcap: Path, nframes: int, min_seconds: float = 1.0) -> dict:
    from pktlab.capture import read_frames
    from pktlab.walker import walk, walk_record, walk_records

    base = [f.data for f in read_frames(pcap)]
    frames = (base * (nframes // max(1, len(base)) + 1))[:nframes]

    import logging
    logging.getLogger("scapy").setLevel(logging.ERROR)
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
    import scapy.all  # noqa: F401  (bind every layer, as a user's `from scapy.all import *`)
    layers = (Ether, Dot1Q, Dot1AD, IP, IPv6, TCP, UDP, ICMP, ARP)

    walk_record(frames[0])          # build the parser once, outside the timing
    rec_rate = _rate(walk_record, frames, min_seconds)
    t0, reps = time.perf_counter(), 0
    while time.perf_counter() - t0 < min_seconds:
        for _r in walk_records(frames):
            pass
        reps += 1
    bulk_rate = reps * len(frames) / (time.perf_counter() - t0)
    walk_rate = _rate(walk, frames, min_seconds)
    sc = frames[: max(200, min(len(frames), 1000))]   # scapy is slow: fewer frames, same mix
    scapy_rate = _rate(lambda f: _scapy_touch(Ether(f), layers), sc, min_seconds)
    return {
        "pcap": str(pcap), "frames": len(frames), "distinct_frames": len(base),
        "walk_record_fps": rec_rate, "walk_records_fps": bulk_rate, "walk_fps": walk_rate,
        "scapy_fps": scapy_rate, "walk_record_vs_scapy": rec_rate / scapy_rate,
        "walk_records_vs_scapy": bulk_rate / scapy_rate, "walk_vs_scapy": walk_rate / scapy_rate,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pcap", type=Path, default=ROOT / "pcaps" / "mixed.pcap")
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=1.0, help="minimum time per measurement")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = run(a.pcap, a.frames, a.seconds)
    if a.json:
        print(json.dumps(r, indent=1))
        return 0
    print(f"{r['frames']} frames ({r['distinct_frames']} distinct) from {r['pcap']}")
    print(f"  walk_record  {r['walk_record_fps']:>12,.0f} frames/s   "
          f"{r['walk_record_vs_scapy']:7.1f}x scapy")
    print(f"  walk_records {r['walk_records_fps']:>12,.0f} frames/s   "
          f"{r['walk_records_vs_scapy']:7.1f}x scapy   (bulk fingerprints)")
    print(f"  walk         {r['walk_fps']:>12,.0f} frames/s   {r['walk_vs_scapy']:7.1f}x scapy")
    print(f"  scapy        {r['scapy_fps']:>12,.0f} frames/s   (Ether(frame) + fields read)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
