"""Progress for long work: a terminal bar on stderr, and an ipywidgets bar in Jupyter."""

import sys
import time


class TextBar:
    """A one-line bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, total, label="", stream=None, width=30):
        self.total = max(0, int(total or 0))
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.done = 0
        self.t0 = time.monotonic()
        self._last = 0.0

    def update(self, done):
        self.done = done
        now = time.monotonic()
        if now - self._last < 0.1 and done < self.total:
            return
        self._last = now
        rate = done / max(now - self.t0, 1e-9)
        if self.total:
            frac = min(done / self.total, 1.0)
            fill = int(frac * self.width)
            bar = "#" * fill + "-" * (self.width - fill)
            text = f"\r{self.label} [{bar}] {done}/{self.total} {rate:,.0f}/s"
        else:
            text = f"\r{self.label} {done} {rate:,.0f}/s"
        self.stream.write(text)
        self.stream.flush()

    def close(self):
        self.update(self.done)
        self.stream.write("\n")
        self.stream.flush()


class WidgetBar:
    """The same in a notebook (ipywidgets.IntProgress + a label)."""

    def __init__(self, total, label=""):
        import ipywidgets as w
        self.bar = w.IntProgress(min=0, max=max(1, int(total or 1)), description=label)
        self.text = w.Label()
        # what is being done now, in full: an HTML widget, not the bar's description, which
        # cuts anything longer than a word ("micro rou...")
        self.what = w.HTML(layout=w.Layout(margin="0 0 0 8px"))
        self.what.add_class("pl-progress-what")
        self.box = w.HBox([self.bar, self.text, self.what],
                          layout=w.Layout(flex_flow="row wrap", align_items="center"))
        self.t0 = time.monotonic()

    def describe(self, text):
        """Say what the work is doing now (a step's label), next to the bar, uncut."""
        import html
        self.what.value = html.escape(str(text))

    def update(self, done):
        self.bar.value = min(done, self.bar.max)
        rate = done / max(time.monotonic() - self.t0, 1e-9)
        self.text.value = f"{done}/{self.bar.max}  {rate:,.0f}/s"

    def close(self):
        self.bar.bar_style = "success"

    def _ipython_display_(self):
        from IPython.display import display
        display(self.box)
