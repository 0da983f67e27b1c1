#!/usr/bin/env python3
"""Replay stress: N concurrent `pktlab replay` runs (N = 1..8 by default) of the same captures,
each a real CLI process with its own lab, all four hooks, all at top speed at once.

    sudo .venv/bin/python tools/bench_stress.py [--n 1,2,4,8] [--loops 20] [--large 200000]

For each N and each capture (mixed.pcap, flows.pcap, a colliding capture made to defeat
prefix matching, and a large generated one) it prints, summed over the N runs and the four
hooks: disagreements, lost frames, unmatched and foreign records, what the runs left behind
(each run's own JSON `leftovers`, and its lab's namespaces and state file still present after
all N ended), and each run's packets/s with their sum against the single run.

The bar: 0 disagreements / 0 lost / 0 unmatched / no leftovers, at every N. Exit 1 if any run
misses it, so the script can gate a change.
"""

import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from pktlab.packet import write_pcap  # noqa: E402

PKTLAB = [sys.executable, "-m", "pktlab.cli"]


def colliding_capture(path, copies=20):
    """IPv6 TCP ACKs equal in their first 64 bytes, the same behind a 72-byte destination
    options header (equal in their first 128 bytes), an ARP frame and VLAN-tagged twins of it
    that TC ingress sees without their tag, interleaved."""
    def v6(ack, seq=1000, dstopts=0, payload=b""):
        tcp = struct.pack("!HHIIBBHHH", 40000, 80, seq, ack, 5 << 4, 0x10, 512, 0, 0) + payload
        nxt, ext = 6, b""
        if dstopts:
            ext = bytes([6, dstopts // 8 - 1, 1, dstopts - 4]) + bytes(dstopts - 4)
            nxt = 60
        ip6 = struct.pack("!IHBB", 6 << 28, len(ext) + len(tcp), nxt, 64) + \
            bytes(15) + b"\x01" + bytes(15) + b"\x99"
        return bytes.fromhex("02aabbccddee020000000001") + b"\x86\xdd" + ip6 + ext + tcp
    arp = bytes.fromhex("ffffffffffff020000000001" "0806" "0001080006040001" "020000000001"
                        "c0000201" "000000000000" "c0000202")
    base = [v6(0x10000 + i) for i in range(12)]
    base += [v6(7 + i, seq=5 + 3 * i, dstopts=72, payload=b"x" * (i % 3)) for i in range(12)]
    base += [arp] + [arp[:12] + tpid + vid + arp[12:] for tpid, vid in
                     ((b"\x81\x00", b"\x00\x05"), (b"\x81\x00", b"\x00\x06"),
                      (b"\x88\xa8", b"\x00\x05"))]
    write_pcap(path, [base[(i * 11) % len(base)] for i in range(len(base) * copies)])


def large_capture(path, n):
    """n UDP and TCP frames of many flows, sizes 60..1514: deterministic."""
    def frames():
        for i in range(n):
            plen = (i * 37) % 1400
            if i % 3:
                l4 = struct.pack("!HHHH", 1024 + i % 50000, 53, 8 + plen, 0)
                proto = 17
            else:
                l4 = struct.pack("!HHIIBBHHH", 1024 + i % 50000, 80, i, i // 2, 5 << 4, 0x18,
                                 512, 0, 0)
                proto = 6
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4) + plen, i & 0xFFFF, 0, 64,
                             proto, 0, bytes([10, 1, (i >> 8) & 255, i & 255]),
                             bytes([10, 200, 0, 2]))
            yield bytes.fromhex("020000000002020000000001") + b"\x08\x00" + ip + l4 + \
                bytes([i & 255]) * plen
    write_pcap(path, frames())


def leftovers_of(docs):
    """What the runs' own labs left on the host after all of them ended: namespaces, state
    files, processes inside them (other labs on this machine are not counted)."""
    from pktlab import lab as L
    left = []
    for d in docs:
        name = d.get("lab")
        left += [f"{name}: {x}" for x in d["leftovers"]]
        if name:
            left += [f"{name}: {x}" for x in L.leftovers(name) if x not in d["leftovers"]]
    return left


def run_many(path, n, loops):
    procs = [subprocess.Popen(PKTLAB + ["replay", path, "--json", "--loop", str(loops)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=REPO) for _ in range(n)]
    docs, errors = [], []
    for p in procs:
        out, err = p.communicate(timeout=3600)
        if p.returncode not in (0, 1):
            errors.append(f"exit {p.returncode}: {err.strip()[-300:]}")
            continue
        docs.append(json.loads(out))
    return docs, errors


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="1,2,4,8", help="concurrent runs, comma list")
    ap.add_argument("--loops", type=int, default=20, help="--loop for the corpus captures")
    ap.add_argument("--large", type=int, default=200_000, help="frames in the large capture")
    ap.add_argument("--only", default=None, help="captures: mixed,flows,colliding,large")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("bench_stress: needs root (pktlab replay makes labs)")
    ns = [int(x) for x in args.n.split(",")]
    tmp = tempfile.mkdtemp(prefix="pktlab-stress-")
    coll, large = os.path.join(tmp, "colliding.pcap"), os.path.join(tmp, "large.pcap")
    colliding_capture(coll)
    large_capture(large, args.large)
    captures = {"mixed": (os.path.join(REPO, "pcaps", "mixed.pcap"), args.loops),
                "flows": (os.path.join(REPO, "pcaps", "flows.pcap"), args.loops),
                "colliding": (coll, args.loops), "large": (large, 1)}
    if args.only:
        captures = {k: v for k, v in captures.items() if k in args.only.split(",")}
    failed = False
    print(f"{'capture':<10} {'N':>2} {'frames/run':>10} {'disagree':>8} {'lost':>5} "
          f"{'unmatch':>7} {'foreign':>7} {'left':>5}  packets/s per run (sum; vs N=1)")
    single = {}
    for name, (path, loops) in captures.items():
        for n in ns:
            t0 = time.monotonic()
            docs, errors = run_many(path, n, loops)
            wall = time.monotonic() - t0
            left = leftovers_of(docs)
            tot = {k: sum(t[k] for d in docs for t in d["hooks"].values())
                   for k in ("disagree", "lost", "unmatched", "foreign")}
            pps = [d["pps"] for d in docs]
            if n == 1 and pps:
                single[name] = pps[0]
            rel = f"; x{sum(pps) / single[name]:.2f} of N=1" if single.get(name) else ""
            frames = docs[0]["packets"] if docs else 0
            print(f"{name:<10} {n:>2} {frames:>10} {tot['disagree']:>8} {tot['lost']:>5} "
                  f"{tot['unmatched']:>7} {tot['foreign']:>7} {len(left):>5}  "
                  f"{', '.join(f'{p:,.0f}' for p in pps)} (sum {sum(pps):,.0f}{rel}; "
                  f"wall {wall:.1f}s)")
            for e in errors:
                print(f"    run failed: {e}")
            for x in left:
                print(f"    left behind: {x}")
            for d in docs:
                for dis in d["disagreements"][:3]:
                    print(f"    disagreement: {dis}")
            if errors or left or tot["disagree"] or tot["lost"] or tot["unmatched"]:
                failed = True
    print("bar: 0 disagree / 0 lost / 0 unmatched / nothing left:",
          "MISSED" if failed else "met at every N")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
