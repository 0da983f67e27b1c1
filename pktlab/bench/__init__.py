"""bench: what each hook costs, measured here, now (`pktlab bench`, lesson 06).

Two measurements, both taken in the run itself (nothing here is a stored figure): micro, the
BPF_PROG_TEST_RUN ns/packet of each parse program against an empty program of its type; and
live, a ladder of drop and parse points at dut in a veth lab, each against a generator in src.

    spec        what is measured: the points, frame sizes, micro programs, run lengths
    micro       the test-run micro bench
    live        the live ladder, one point at a time in one lab
    generators  XDP live frames, trafgen, tcpreplay (and the UDP frame they send)
    receivers   what sits at dut: the socket reader process, the nft drop table, the drain
    measure     link counters, GRO, rates in slices with the other processes' load
    programs    the bench's own small programs, held once per process
    cleanup     child processes, imports before anything is made, Ctrl-C held in a window
    suite       the whole run (micro and live) and its step count
    report      the figures in words and tables; what did not happen
    chart       the matplotlib chart
    panel       the notebook panel
    command     `pktlab bench`'s work and exit status

    results = bench.run(micro_on=True, live_on=True)    # the JSON-able dict
    print(bench.format_text(results))                    # figures + what they mean
    fig = bench.plot(results)                            # matplotlib Figure
    bench.BenchPanel()                                   # the notebook panel

May import: kernel, lab, packet and the base modules.
"""

from .chart import plot
from .command import cli, parse_only
from .live import live
from .micro import micro
from .panel import BenchPanel
from .report import explain, failures, format_text
from .spec import POINTS, SIZES
from .suite import plan, run

__all__ = ["BenchPanel", "POINTS", "SIZES", "cli", "explain", "failures", "format_text", "live",
           "micro", "parse_only", "plan", "plot", "run"]
