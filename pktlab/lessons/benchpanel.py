"""The bench in a notebook (lesson 06): pktlab.bench's panel with its Run button working from
JupyterLab, a run of its chosen subset, and its chart and text (or the reason there are none).
"""

import os

from .here import hook_available, in_lab_thread, why_not
from .html import NotHere, Text
from .live import register_widget


def bench_panel(**kwargs):
    """pktlab.bench.BenchPanel, with its Run button doing its work in_lab_thread(): clicked in
    JupyterLab, the handler runs in the kernel's main thread, where netlink cannot."""
    from ..bench import BenchPanel
    panel = BenchPanel(**kwargs)
    panel.button.on_click(panel._on_click, remove=True)
    panel.button.on_click(lambda b: in_lab_thread(panel._on_click, b))
    register_widget(_Closer(panel))
    return panel


class _Closer:
    """close_all() support for a panel that owns nothing between runs (the bench closes its
    lab at the end of every run): closing only disables its button."""

    def __init__(self, panel):
        self.panel = panel

    def close(self):
        self.panel.button.disabled = True


def run_bench(panel):
    """Run a BenchPanel's chosen subset (what its Run button does): the results dict, or the
    reason it cannot run here."""
    if os.geteuid() != 0:
        return NotHere("the bench", why_not("xdp") or "needs root")
    if not hook_available("xdp"):
        return NotHere("the bench", why_not("xdp"))
    return in_lab_thread(panel.run)


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
