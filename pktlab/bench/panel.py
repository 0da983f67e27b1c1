"""The notebook panel: pick points and sizes, press Run; a progress bar while it runs, then
the chart and the figures in plain words, once, in the panel; the full report (what `pktlab
bench` prints) folded away below them.

    bench.BenchPanel()                                   # the notebook panel
"""

from ..errors import PktlabError
from .chart import plot
from .report import format_text, plain_summary
from .spec import POINTS, SIZES
from .suite import plan, run


def _table(headers, rows):
    import html
    esc = html.escape
    head = "".join(f"<th style='text-align:left;padding:1px 8px'>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='padding:1px 8px'>{esc(str(c))}</td>"
                                    for c in r) + "</tr>" for r in rows)
    return f"<table style='border-collapse:collapse;font-size:13px'><tr>{head}</tr>{body}</table>"


class BenchPanel:
    """Pick points and sizes, press Run: a progress bar while it runs, then the chart and the
    figures in plain words (``runs`` counts the runs; ``results`` is the latest)."""

    def __init__(self, points=("xdp_native_drop", "xdp_drop", "tc_drop", "nft_drop",
                               "socket_drop"), sizes=SIZES, micro_on=True, long=False):
        import ipywidgets as w
        self.w = w
        self.point_boxes = {p: w.Checkbox(value=p in points, description=POINTS[p][1],
                                          indent=False) for p in POINTS}
        self.size_boxes = {s: w.Checkbox(value=s in sizes, description=f"{s} B", indent=False)
                           for s in SIZES}
        self.micro_box = w.Checkbox(value=micro_on, description="program costs (test runs)",
                                    indent=False)
        self.long_box = w.Checkbox(value=long, description="long (tighter figures)",
                                   indent=False)
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.button.on_click(self._on_click)
        self.progress_box = w.VBox()
        self.out = w.Output()
        self.summary = w.HTML()
        self.details = w.HTML()
        self.summary.add_class("pl-bench-summary")
        self.details.add_class("pl-bench-details")
        self.runs = 0
        self.results = None
        self.figure = None
        self.widget = w.VBox([
            w.HBox([w.VBox([w.HTML("<b>live points</b>"), *self.point_boxes.values()]),
                    w.VBox([w.HTML("<b>frame sizes</b>"), *self.size_boxes.values(),
                            w.HTML("<b>also</b>"), self.micro_box, self.long_box])]),
            self.button, self.progress_box, self.out, self.summary, self.details])
        self.widget.add_class("pl-bench-panel")

    def selection(self):
        return ([p for p, b in self.point_boxes.items() if b.value],
                [s for s, b in self.size_boxes.items() if b.value])

    def run(self):
        """Run the chosen subset and redraw (what the button does)."""
        from ..progress import WidgetBar
        points, sizes = self.selection()
        live_on = bool(points and sizes)
        total = plan(points, sizes or SIZES, self.micro_box.value, live_on, self.long_box.value)
        bar = WidgetBar(total, "bench")
        self.progress_box.children = [bar.box]
        self.button.disabled = True
        try:
            self.results = run(micro_on=self.micro_box.value, live_on=live_on,
                               points=points or None, sizes=sizes or SIZES,
                               long=self.long_box.value,
                               progress=lambda d, t, lbl: (bar.update(d), bar.describe(lbl)))
            self.runs += 1
            bar.describe(f"run {self.runs} done in {self.results.get('elapsed_s', 0):.0f} s")
            bar.close()
            self.redraw()
        finally:
            self.button.disabled = False
        return self.results

    def redraw(self):
        """The chart (as a PNG) in its Output widget, the summary and the report in theirs.
        Written with append_display_data rather than `with out:`, so that it also works when
        run() is called from a worker thread (the lessons run labs off Jupyter's event loop)."""
        import html
        import io

        from IPython.display import Image
        self.out.outputs = ()
        self.summary.value = self.details.value = ""
        if self.results is None:
            return
        self.figure = plot(self.results)
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100)
        self.out.append_display_data(Image(data=buf.getvalue(), format="png"))
        micro, live, notes = plain_summary(self.results)
        parts = [f"<p><b>run {self.runs}</b>: the figures of this run, in words</p>"]
        if micro:
            parts.append("<p><b>what each program costs per packet</b> (ns: nanoseconds)</p>" +
                         _table(["program", "what it does", "ns per packet", "empty program",
                                 "times the empty one"], micro))
        if live:
            parts.append("<p><b>packets per second at each point</b></p>" +
                         _table(["point", "frame size", "packets per second",
                                 "share of the generator alone"], live))
        parts += [f"<p style='font-size:12.5px;color:#57606a'>{html.escape(n)}</p>"
                  for n in notes]
        self.summary.value = "".join(parts)
        self.details.value = ("<details><summary>the full report (what <code>pktlab bench</code>"
                              " prints: every figure, its spread, the tools used)</summary>"
                              "<pre style='font-size:11.5px;white-space:pre-wrap'>" +
                              html.escape(format_text(self.results)) + "</pre></details>")

    def _on_click(self, _):
        try:
            self.run()
        except PktlabError as e:
            import html
            self.summary.value = f"<p><b>bench failed:</b> {html.escape(str(e))}</p>"

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)
