#!/usr/bin/env python3
"""Benchmark: what each hook costs, measured here and now; the same as `pktlab bench`.

    sudo .venv/bin/python tools/bench_hooks.py [--json] [--plot FILE] [--long]
                                               [--only micro,live,xdp_drop,...]

micro: BPF_PROG_TEST_RUN ns/packet of each parse program (XDP, TC; with and without a record
per packet) on the bundled frames, each against an empty program of the same type, with the
spread over rounds. live: a veth lab, a generator in src (XDP live-frames test runs), and at dut
one point at a time (XDP drop native/generic, TC drop, nftables drop, a UDP socket, each parse
hook in parse-and-pass mode), for 64, 512 and 1500-byte frames. Everything is in
pktlab/bench/; this script only runs it (timing is reported, never asserted).
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pktlab.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
