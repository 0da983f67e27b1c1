#!/usr/bin/env python3
"""Replay benchmarks (issue 5), all measured in one run on this machine:

  topspeed  tcpreplay --topspeed (send only) on a 100,000-frame capture, then
            `pktlab replay --topspeed` of the same capture through all four hooks with the
            agreement check, on the same lab: both rates and their ratio (target >= 0.5),
            in --rounds pairs (default 3), the median ratio reported.
  pps       --pps 10000 for 10 s: the rate the hooks' own timestamps saw vs the requested one
            (target: within 5%).
  memory    a 1,000,000-frame capture, replayed through one hook: the process's peak RSS
            (target: under 300 MB).

Usage: sudo .venv/bin/python tools/bench_replay.py [topspeed,pps,memory] [--frames N]
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pktlab.packet import write_pcap  # noqa: E402
from pktlab.lab import Lab  # noqa: E402
from pktlab.replay.run import replay  # noqa: E402


def make_capture(path, n, small=False):
    """n distinct UDP frames (addresses and ports vary, sizes 60..260 or 60): deterministic."""
    import struct

    def frames():
        eth = bytes.fromhex("020000000002020000000001") + b"\x08\x00"
        for i in range(n):
            plen = 0 if small else i % 200
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + plen, i & 0xFFFF, 0, 64, 17, 0,
                             bytes([10, 1, (i >> 8) & 255, i & 255]), bytes([10, 200, 0, 2]))
            udp = struct.pack("!HHHH", 1024 + i % 60000, 53, 8 + plen, 0)
            yield eth + ip + udp + b"q" * plen
    write_pcap(path, frames())


def bench_topspeed(tmp, n, rounds=3):
    """`rounds` pairs on one lab, each tcpreplay then pktlab: this VM's speed drifts by tens of
    percent within a minute, so each ratio compares two runs made seconds apart, and the
    median ratio is the figure."""
    import statistics
    path = os.path.join(tmp, f"{n}.pcap")
    make_capture(path, n)
    pairs = []
    with Lab(prefix="plbr") as lab:
        for i in range(rounds):
            r = subprocess.run(["ip", "netns", "exec", lab.ns_src, "tcpreplay", "--topspeed",
                                "-i", lab.if_src, path], capture_output=True, text=True,
                               check=True)
            line = [ln for ln in r.stdout.splitlines() if "Rated:" in ln][0]
            tcpreplay_pps = float(line.split(",")[-1].split()[0])
            res = replay(path, lab=lab)
            doc = res.summary()
            pairs.append((tcpreplay_pps, res.pps, doc))
            print(f"round {i + 1}: tcpreplay --topspeed (send only) {tcpreplay_pps:10,.0f} "
                  f"packets/s; pktlab replay --topspeed (4 hooks + check) {res.pps:10,.0f} "
                  f"packets/s; ratio {res.pps / tcpreplay_pps:.3f}")
            for h, t in doc["hooks"].items():
                print(f"  {h:<11} agree {t['agree']:>7} explained {t['explained']:>5} disagree "
                      f"{t['disagree']:>3} lost {t['lost']:>3}")
    ratios = [p / t for t, p, _ in pairs]
    bad = sum(t["disagree"] + t["lost"] for _, _, d in pairs for t in d["hooks"].values())
    print(f"median ratio pktlab/tcpreplay over {rounds} rounds: {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target >= 0.5); "
          f"disagreements + lost records over all rounds: {bad}")
    return {"rounds": [{"tcpreplay_pps": t, "pktlab_pps": p} for t, p, _ in pairs],
            "ratio_median": statistics.median(ratios), "disagree_or_lost": bad}


def bench_pps(tmp, pps=10000, seconds=10):
    n = int(pps * seconds)
    path = os.path.join(tmp, f"pps{n}.pcap")
    make_capture(path, n, small=True)
    res = replay(path, hooks=["xdp", "tc-egress"], pps=pps)
    doc = res.summary()
    seen = doc["hooks"]["tc-egress"]["measured_pps"]
    err = abs(seen - pps) / pps
    print(f"requested {pps} packets/s for {seconds}s: hooks measured {seen:,.1f} packets/s "
          f"(tc-egress timestamps; xdp {doc['hooks']['xdp']['measured_pps']:,.1f}), "
          f"error {err * 100:.2f}% (target < 5%); sender {res.pps:,.1f}")
    return {"requested": pps, "measured": seen, "error": err}


def bench_memory(tmp, n=1_000_000):
    path = os.path.join(tmp, f"mem{n}.pcap")
    make_capture(path, n, small=True)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t = time.perf_counter()
    res = replay(path, hooks=["xdp"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    doc = res.summary()
    print(f"{n:,} frames through xdp in {time.perf_counter() - t:.1f}s: peak RSS {peak:.0f} MB "
          f"(before the replay {before:.0f} MB; target < 300 MB); agree "
          f"{doc['hooks']['xdp']['agree']:,}, lost {doc['hooks']['xdp']['lost']}")
    return {"frames": n, "peak_rss_mb": peak}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="topspeed,pps,memory")
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="pktlab-bench-") as tmp:
        for what in args.what.split(","):
            {"topspeed": lambda: bench_topspeed(tmp, args.frames, args.rounds),
             "pps": lambda: bench_pps(tmp),
             "memory": lambda: _memory_alone(tmp)}[what]()


def _memory_alone(tmp):
    """The memory figure is the process's peak RSS: measured in a fresh process, so that an
    earlier benchmark of this run cannot have set the peak."""
    if os.environ.get("PKTLAB_BENCH_CHILD"):
        return bench_memory(tmp)
    subprocess.run([sys.executable, os.path.abspath(__file__), "memory"], check=True,
                   env={**os.environ, "PKTLAB_BENCH_CHILD": "1"})


if __name__ == "__main__":
    main()
