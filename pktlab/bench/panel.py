"""The notebook panel: pick points and sizes, press Run; a progress bar while it runs, then
the chart and the text.

    bench.BenchPanel()                                   # the notebook panel
"""

from ..errors import PktlabError
from .chart import plot
from .report import format_text
from .spec import POINTS, SIZES
from .suite import plan, run


class BenchPanel:
    """Pick points and sizes, press Run: a progress bar while it runs, then the chart."""

    def __init__(self, points=("xdp_native_drop", "xdp_drop", "tc_drop", "nft_drop",
                               "socket_drop"), sizes=SIZES, micro_on=True, long=False):
        import ipywidgets as w
        self.w = w
        self.point_boxes = {p: w.Checkbox(value=p in points, description=POINTS[p][1],
                                          indent=False) for p in POINTS}
        self.size_boxes = {s: w.Checkbox(value=s in sizes, description=f"{s} B", indent=False)
                           for s in SIZES}
        self.micro_box = w.Checkbox(value=micro_on, description="test-run costs (micro)",
                                    indent=False)
        self.long_box = w.Checkbox(value=long, description="long (tighter figures)",
                                   indent=False)
        self.button = w.Button(description="Run", button_style="primary", icon="play")
        self.button.on_click(self._on_click)
        self.progress_box = w.VBox()
        self.out = w.Output()
        self.text = w.Output()
        self.results = None
        self.figure = None
        self.widget = w.VBox([
            w.HBox([w.VBox([w.HTML("<b>live points</b>"), *self.point_boxes.values()]),
                    w.VBox([w.HTML("<b>frame sizes</b>"), *self.size_boxes.values(),
                            w.HTML("<b>also</b>"), self.micro_box, self.long_box])]),
            self.button, self.progress_box, self.out, self.text])

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
                               progress=lambda d, t, lbl: (bar.update(d),
                                                           setattr(bar.bar, "description",
                                                                   lbl[:20])))
            bar.close()
            self.redraw()
        finally:
            self.button.disabled = False
        return self.results

    def redraw(self):
        """Put the chart (as a PNG) and the text in their Output widgets. Written with
        append_display_data/append_stdout rather than `with out:`, so that it also works when
        run() is called from a worker thread (the lessons run labs off Jupyter's event loop)."""
        import io

        from IPython.display import Image
        self.out.outputs = ()
        self.text.outputs = ()
        if self.results is None:
            return
        self.figure = plot(self.results)
        buf = io.BytesIO()
        self.figure.savefig(buf, format="png", dpi=100)
        self.out.append_display_data(Image(data=buf.getvalue(), format="png"))
        self.text.append_stdout(format_text(self.results) + "\n")

    def _on_click(self, _):
        try:
            self.run()
        except PktlabError as e:
            self.text.append_stdout(f"bench failed: {e}\n")

    def _ipython_display_(self):
        from IPython.display import display
        display(self.widget)

