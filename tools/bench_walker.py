#!/usr/bin/env python3
"""Benchmark: the pktlab walker against scapy's dissection, on the same frames, in one run.

    python tools/bench_walker.py [--pcap pcaps/mixed.pcap] [--frames 5000] [--json]

Frames come from the corpus's largest capture, repeated to --frames. Measured:

- walk_record: the record only, one call per frame (what the hooks' records are compared with);
- walk_records: the same records for a list of frames, the common frames parsed vectorized
  (numpy), yielded as Record objects;
- walk_records_array: the same, as one numpy array (the form kernel records arrive in);
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


def _once(fn, frames):
    t0 = time.perf_counter()
    for f in frames:
        fn(f)
    return len(frames) / (time.perf_counter() - t0)


def _bulk_once(fn, frames):
    t0 = time.perf_counter()
    for _r in fn(frames):
        pass
    return len(frames) / (time.perf_counter() - t0)


def run(pcap: Path, nframes: int, rounds: int = 5) -> dict:
    """Best rate of each path over ``rounds`` interleaved rounds.

    Interleaving and keeping each path's best round is what makes the ratio stable on a busy
    machine: a burst of load elsewhere slows one round, not one side of the comparison.
    """
    from pktlab.packet.capture import read_frames
    from pktlab.packet import walk, walk_record, walk_records, walk_records_array

    base = [f.data for f in read_frames(pcap)]
    reps = max(1, nframes // max(1, len(base)))
    frames = base * reps                  # whole repetitions: every path sees the same mix

    import logging
    logging.getLogger("scapy").setLevel(logging.ERROR)
    import scapy.all  # noqa: F401  (bind every layer, as a user's `from scapy.all import *`)
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
    layers = (Ether, Dot1Q, Dot1AD, IP, IPv6, TCP, UDP, ICMP, ARP)

    def scapy_one(f):
        _scapy_touch(Ether(f), layers)

    walk_record(frames[0])          # build the parser once, outside the timing
    best = {"walk_record": 0.0, "walk_records": 0.0, "walk_records_array": 0.0, "walk": 0.0,
            "scapy": 0.0}
    for _ in range(rounds):
        best["walk_record"] = max(best["walk_record"], _once(walk_record, frames))
        best["walk_records"] = max(best["walk_records"], _bulk_once(walk_records, frames))
        t0 = time.perf_counter()
        walk_records_array(frames)
        best["walk_records_array"] = max(best["walk_records_array"],
                                         len(frames) / (time.perf_counter() - t0))
        best["walk"] = max(best["walk"], _once(walk, base))
        best["scapy"] = max(best["scapy"], _once(scapy_one, base))
    sc = best["scapy"]
    return {
        "pcap": str(pcap), "frames": len(frames), "distinct_frames": len(base), "rounds": rounds,
        "walk_record_fps": best["walk_record"], "walk_records_fps": best["walk_records"],
        "walk_records_array_fps": best["walk_records_array"],
        "walk_records_array_vs_scapy": best["walk_records_array"] / sc,
        "walk_fps": best["walk"], "scapy_fps": sc,
        "walk_record_vs_scapy": best["walk_record"] / sc,
        "walk_records_vs_scapy": best["walk_records"] / sc, "walk_vs_scapy": best["walk"] / sc,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pcap", type=Path, default=ROOT / "pcaps" / "mixed.pcap")
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (best kept)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    r = run(a.pcap, a.frames, a.rounds)
    if a.json:
        print(json.dumps(r, indent=1))
        return 0
    print(f"{r['frames']} frames ({r['distinct_frames']} distinct) from {r['pcap']}, "
          f"best of {r['rounds']} interleaved rounds")
    print(f"  walk_record  {r['walk_record_fps']:>12,.0f} frames/s   "
          f"{r['walk_record_vs_scapy']:7.1f}x scapy")
    print(f"  walk_records {r['walk_records_fps']:>12,.0f} frames/s   "
          f"{r['walk_records_vs_scapy']:7.1f}x scapy   (bulk, Record objects)")
    print(f"  ..._array    {r['walk_records_array_fps']:>12,.0f} frames/s   "
          f"{r['walk_records_array_vs_scapy']:7.1f}x scapy   (bulk, one numpy array)")
    print(f"  walk         {r['walk_fps']:>12,.0f} frames/s   {r['walk_vs_scapy']:7.1f}x scapy")
    print(f"  scapy        {r['scapy_fps']:>12,.0f} frames/s   (Ether(frame) + fields read)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
