"""Lesson 06: its cells (tools/make_notebooks.py writes the notebook)."""

from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


def nb06():
    return [
        md("""
# 06 · What each hook costs

*About 30 minutes. Before: lessons 02 and 03 (XDP and TC). Root, and the XDP and TC hooks; the
measurements take the machine's CPUs for a minute or so.*

**What you will learn**

- the cost of a program per packet, measured with `BPF_PROG_TEST_RUN` against an *empty*
  program of the same type, so what is left is the parse (and the record);
- the live ladder: packets per second dropped at XDP, at TC, in netfilter, at a socket, against
  what the generator alone can send;
- why the earliest hook is the cheapest place to drop, and what parsing adds.
"""),
        code(IMPORT),
        md("""
## The panel

Choose the points and frame sizes and press *Run*. The cell after it runs a small subset (XDP
and TC drop, 64-byte frames) so that the lesson runs quickly end to end; tick more for the
full ladder (about a minute). The panel shows each run's chart and its figures in words; the
full report is folded away under them. `results` always holds the panel's latest run, whether
the cell or the *Run* button started it.
"""),
        code('panel = pl.bench_panel(points=("xdp_drop", "tc_drop"), sizes=(64,), micro_on=True)\n'
             "panel"),
        code("results = pl.run_bench(panel)\nresults"),
        md("""
## Reading it

- *What each program costs*: the parse programs with a record per packet (`xdp`, `tc`) and
  without one (`*_no_record`), each against an empty program of its kind; how many times the
  empty one it costs is what the parse adds to running a BPF program at all.
- *Packets per second*: a sender in src sends small UDP packets as fast as it can; each point
  drops what it receives. The earlier the point, the less of the stack each packet costs, and
  the more packets per second it keeps up with.
"""),
        md("""
## Exercises

**1.** Which program costs least per packet in your results? Give its name as the panel's
table of program costs writes it (first column).
"""),
        code('answer = ""\n\npl.exercises.check_cheapest_hook(answer, results)'),
        md("""
**2.** Tick `XDP drop (native)` and `netfilter drop (nft netdev ingress)` in the panel and press
*Run*. Where does netfilter land? Then name the drop points that come right before and right
after netfilter's on a packet's way in (as the panel's checkboxes name them).
"""),
        code('before, after = "", ""\n\npl.exercises.check_netfilter_place(before, after)'),
        md("""
## Summary

- A program's cost is measured against an empty program of its kind: what is left is the
  parse, and the record it writes.
- The earlier a packet is dropped, the less it costs: XDP before TC, TC before netfilter,
  netfilter before the socket. On a veth pair all of it runs on the sender's CPU.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]
