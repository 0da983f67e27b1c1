"""Lesson 06: its cells (tools/make_notebooks.py writes the notebook)."""

from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


def nb06():
    return [
        md("""
# 06 · What each hook costs

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
full ladder (about a minute).
"""),
        code('panel = pl.bench_panel(points=("xdp_drop", "tc_drop"), sizes=(64,), micro_on=True)\n'
             "panel"),
        code("results = pl.run_bench(panel)"),
        code("pl.bench_chart(results)"),
        code("pl.bench_text(results)"),
        md("""
## Reading it

- *micro*: the parse programs with a record per packet (`xdp`, `tc`) and without one
  (`*_no_record`), each against the empty program of its type; the ratio is what the parse
  costs beyond entering a BPF program at all.
- *live*: the generator sends one UDP flow as fast as it can; each point drops (or parses and
  passes) what it receives. The earlier the point, the less of the stack each packet costs.
"""),
        md("""
## Exercises

**1.** Which program costs least per packet in your results? Give its name as in the *micro*
table.
"""),
        code('answer = ""\n\npl.exercises.check_cheapest_hook(answer, results)'),
        md("""
**2.** Tick `XDP drop (native)` and `netfilter drop` in the panel and press *Run*. Where does
netfilter land on the ladder, and why there?
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]
