#!/usr/bin/env python3
"""A/B: what a change to the hook programs costs, measured against another git revision in the
same run (test runs, BPF_PROG_TEST_RUN; no lab).

    sudo .venv/bin/python tools/ab_programs.py [REV] [--hooks xdp,tc-ingress] [--rounds 7]

Compiles each hook's program twice, from bpf_snippets/ as it is in REV (default HEAD) and as it
is in the working tree, plus the empty program of its type, then runs the bundled corpus frames
through all three, round after round in rotating order. Prints, per hook, the median ns per
packet of each and the ratios A/empty, B/empty and B/A (the figure that matters: the change's
cost, immune to the machine's drift because every round measures both).
"""

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pktlab import resources  # noqa: E402
from pktlab.kernel import bpf  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _snippets_at(rev, dest):
    """bpf_snippets/ as it is in `rev`, written under `dest`."""
    names = subprocess.run(["git", "-C", REPO, "ls-tree", "--name-only", f"{rev}:bpf_snippets"],
                           check=True, capture_output=True, text=True).stdout.split()
    for n in names:
        data = subprocess.run(["git", "-C", REPO, "show", f"{rev}:bpf_snippets/{n}"],
                              check=True, capture_output=True).stdout
        with open(os.path.join(dest, n), "wb") as f:
            f.write(data)
    return dest


def _compile(snippets, hook):
    """The hook's program compiled from another snippets directory (not cached: a fresh load)."""
    source, fn, ptype, flags = bpf.HOOK_PROGRAMS[hook]
    old = os.environ.get(resources.SNIPPETS_ENV)
    os.environ[resources.SNIPPETS_ENV] = snippets
    try:
        return bpf.Program(os.path.join(snippets, source), fn, ptype,
                           [*flags, *bpf.transport_cflags()])
    finally:
        if old is None:
            del os.environ[resources.SNIPPETS_ENV]
        else:
            os.environ[resources.SNIPPETS_ENV] = old


def _empty_ring(prog):
    """Zero every CPU's ring control block, so the next call's records all find a slot."""
    if not prog._has_map("ctl"):
        return
    t = prog.table("ctl")
    zero = t.Leaf()
    for cpu in range(bpf.possible_cpus()):
        t[ctypes.c_uint(cpu)] = zero


def _round(prog, frames, repeat):
    ns = []
    for f in frames:
        _ret, d = bpf.test_run(prog, f, repeat=repeat)
        _empty_ring(prog)
        ns.append(d)
    return statistics.fmean(ns)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rev", nargs="?", default="HEAD")
    ap.add_argument("--hooks", default="xdp,tc-ingress")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=500)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("ab_programs: needs root (it loads programs)")
    from pktlab.bench.micro import bundled_frames
    frames = [f for f in bundled_frames()[0] if len(f) >= bpf.MIN_TEST_RUN_FRAME]
    tmp = tempfile.mkdtemp(prefix="pktlab-ab-")
    try:
        os.mkdir(os.path.join(tmp, "a"))
        old_dir = _snippets_at(args.rev, os.path.join(tmp, "a"))
        for hook in args.hooks.split(","):
            ptype = bpf.HOOK_PROGRAMS[hook][2]
            a, b = _compile(old_dir, hook), _compile(resources.snippets_dir(), hook)
            empty = bpf.empty_program(ptype)
            runs = {"empty": [], "A": [], "B": []}
            progs = [("empty", empty), ("A", a), ("B", b)]
            for r in range(args.rounds):
                for name, p in progs[r % 3:] + progs[:r % 3]:
                    runs[name].append(_round(p, frames, args.repeat))
            med = {k: statistics.median(v) for k, v in runs.items()}
            per_round = sorted(b_ / a_ for a_, b_ in zip(runs["A"], runs["B"]))
            print(f"{hook}: {len(frames)} frames x {args.rounds} rounds x {args.repeat} runs")
            print(f"  empty {med['empty']:7.1f} ns/pkt")
            print(f"  A ({args.rev:>8}) {med['A']:7.1f} ns/pkt  {med['A'] / med['empty']:.2f}x empty")
            print(f"  B (worktree) {med['B']:7.1f} ns/pkt  {med['B'] / med['empty']:.2f}x empty")
            print(f"  B/A per round: median {statistics.median(per_round):.3f} "
                  f"(min {per_round[0]:.3f}, max {per_round[-1]:.3f})")
            for p in (a, b):
                p.close()
            bpf.release(empty)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
