"""The bench in a notebook (lesson 06): pktlab.bench's panel with its Run button working from
JupyterLab, a run of its chosen subset shown once, in the panel, and the results of the
panel's latest run (BenchResults: what the exercises read), or the reason there are none.
"""

import os
from collections.abc import Mapping

from .here import hook_available, in_lab_thread, why_not
from .html import NotHere, Text, prose
from .live import register_widget


def bench_panel(**kwargs):
    """pktlab.bench.BenchPanel, with its Run button doing its work in_lab_thread(): clicked in
    JupyterLab, the handler runs in the kernel's main thread, where netlink cannot."""
    from ..bench import BenchPanel
    from .remote import through_daemon
    panel = BenchPanel(**kwargs)
    panel.button.on_click(panel._on_click, remove=True)
    if os.geteuid() != 0 and through_daemon():
        panel.run = lambda: _run_remote(panel)
    panel.button.on_click(lambda b: in_lab_thread(panel._on_click, b))
    register_widget(_Closer(panel))
    return panel


def _run_remote(panel):
    """What the panel's run() does through pktlabd: the daemon measures (micro, and the live
    ladder in a lab of yours), the results come back as data, the chart and the figures are
    drawn here. No progress bar (the daemon answers once, at the end): the panel says so."""
    from ..workshop.client import Client
    points, sizes = panel.selection()
    panel.summary.value = ("<p class='pll-note'>the bench runs in pktlabd (the workshop "
                           "daemon): its chart and figures come here when it is done</p>")
    panel.progress_box.children = ()
    panel.button.disabled = True
    try:
        with Client() as c:
            results = c.call("bench", {"points": points, "sizes": sizes,
                                       "micro": bool(panel.micro_box.value),
                                       "long": bool(panel.long_box.value)})[0]
        panel.results = results
        panel.runs += 1
        panel.redraw()
    finally:
        panel.button.disabled = False
    return panel.results


class _Closer:
    """close_all() support for a panel that owns nothing between runs (the bench closes its
    lab at the end of every run): closing only disables its button."""

    def __init__(self, panel):
        self.panel = panel

    def close(self):
        self.panel.button.disabled = True


class BenchResults(Mapping):
    """The results of a panel's latest run, whichever started it: run_bench() or the panel's
    Run button. A read-only dict of the bench's figures (``results["micro"]``...) that always
    reads the panel's latest run; in a notebook it shows one line, since the panel above
    shows the chart and the figures."""

    def __init__(self, panel):
        self.panel = panel

    def latest(self):
        return self.panel.results or {}

    def __getitem__(self, key):
        return self.latest()[key]

    def __iter__(self):
        return iter(self.latest())

    def __len__(self):
        return len(self.latest())

    def _line(self):
        if not self.panel.results:
            return "no bench run yet: press Run in the panel"
        return (f"the panel's run {self.panel.runs}: its chart and figures are in the panel "
                "above; `results` follows the panel (press Run there, and it holds the new run)")

    def _repr_html_(self):
        return f"<p class='pll-note'>{prose(self._line())}</p>"

    def __repr__(self):
        return self._line()


def run_bench(panel):
    """Run a BenchPanel's chosen subset (what its Run button does). The panel shows the chart
    and the figures; the return value is a BenchResults that follows the panel's latest run
    (or the reason it cannot run here)."""
    from ..errors import PktlabError
    from .remote import through_daemon
    if os.geteuid() != 0:
        if not through_daemon():
            from ..workshop.client import absent_message
            return NotHere("the bench", absent_message("the bench"))
        try:
            _run_remote(panel)
        except (PktlabError, ValueError) as e:      # the daemon's refusal, in one line
            return NotHere("the bench", f"the workshop daemon: {e}")
        return BenchResults(panel)
    if not hook_available("xdp"):
        return NotHere("the bench", why_not("xdp"))
    in_lab_thread(panel.run)
    return BenchResults(panel)


def bench_chart(results, ax=None):
    """The bench's chart (pktlab.bench.plot), or the reason there is none."""
    if not results:
        return results if isinstance(results, NotHere) else NotHere("bench chart", "no results")
    from ..bench import plot
    from .plots import show_figures_inline
    show_figures_inline()
    return plot(results, ax=ax)


def bench_text(results):
    """The bench's figures and what they mean, as text."""
    if not results:
        return results if isinstance(results, NotHere) else NotHere("bench text", "no results")
    from ..bench import format_text
    return Text(format_text(results))
