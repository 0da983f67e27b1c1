"""Notebook widgets: the packet stepper and the hook chooser.

    stepper = PacketStepper("mixed.pcap", lab=lab)   # lab: a lessons.LiveLab, or None
    stepper                                          # show it
    stepper.step(); stepper.show(5); stepper.close()

The stepper shows, for one frame of a capture: the layered hex view (pktlab/packet/views.py),
scapy's dissection of the same bytes, and a table with the walker's record next to every hook's
record of that frame, cells that differ highlighted (red: a disagreement; amber: an explained
difference, with the reason), and a verdict badge per hook. Choosing a frame (slider, step,
back) sends it across the lab, so the hook records are live. Without a lab, or after close(),
it still shows the walker and scapy.

Each widget has ``close()`` (and a close button); ``lessons.close_all()``, the last cell of every
notebook, closes them all.
"""

import os

from .here import BELT_ORDER, HOOKS, WIRE_ORDER, doctor, why_not
from .html import CSS, badge, esc
from .live import open_lab, register_widget
from .pcaps import capture_path, captures, pcaps_dir, read

__all__ = ["PacketStepper", "HookChooser", "record_table"]


class HookChooser:
    """A checkbox per hook; hooks the doctor says are unavailable are disabled, and hovering
    one says why. ``.value`` is the tuple of checked hooks; ``observe(fn)`` calls fn(value)."""

    def __init__(self, hooks=HOOKS, value=None):
        import ipywidgets as w
        rep = doctor()
        value = tuple(hooks if value is None else value)
        self.boxes = {}
        for h in BELT_ORDER:
            if h not in hooks or h not in rep["hooks"]:
                continue
            info = rep["hooks"][h]
            ok = bool(info["available"])
            tip = f"{h}: via {info['via']}" if ok else f"{h} is not available here: {why_not(h)}"
            self.boxes[h] = w.Checkbox(value=ok and h in value, description=h, disabled=not ok,
                                       indent=False, tooltip=tip,
                                       layout=w.Layout(width="auto"))
        unavailable = [h for h in self.boxes if self.boxes[h].disabled]
        note = ("" if not unavailable else
                "<span class='pll-note' style='color:#8a4b00'>not available here (hover for "
                "why): " + ", ".join(unavailable) + "</span>")
        self.note = w.HTML(note)
        self.widget = w.HBox([w.HTML("<b>hooks:</b>&nbsp;"), *self.boxes.values(), self.note])
        self.widget.add_class("pl-hook-chooser")
        self._callbacks = []
        for b in self.boxes.values():
            b.observe(self._changed, names="value")

    @property
    def value(self):
        return tuple(h for h in BELT_ORDER if h in self.boxes and self.boxes[h].value)

    def observe(self, fn):
        self._callbacks.append(fn)

    def _changed(self, _change):
        for fn in self._callbacks:
            fn(self.value)

    def close(self):
        for b in self.boxes.values():
            b.disabled = True

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)


#: inside the stepper the view's field list is shown whole (no scroll box of its own: a learner
#: reads every field of every header without scrolling inside it); hex and fields side by side
_COMPACT = ("<style>.pl-stepper-hex table.pl-tab{line-height:1.35}"
            ".pl-stepper-hex .pl-wrap{flex-wrap:nowrap}</style>")


def _walker_row(data):
    from ..replay import compare
    from ..replay.stepper import _fields
    return _fields(compare.walker_records([data])[0])


def record_table(walker, hooks=None, verdicts=None, differing=None, reasons=None):
    """Fields down, sources across: the walker, then each hook. ``hooks``: {hook: row or None}."""
    from ..replay.stepper import SHOWN_FIELDS
    hooks = hooks or {}
    verdicts = verdicts or {}
    differing = differing or {}
    reasons = reasons or {}
    head = ["<th>field</th><th>walker</th>"]
    for h in hooks:
        v = verdicts.get(h, "off")
        head.append(f"<th>{esc(h)}<br>{badge(v)}</th>")
    rows = ["<tr>" + "".join(head) + "</tr>"]
    for f in SHOWN_FIELDS:
        cells = [f"<td><b>{esc(f)}</b></td>", f"<td class='pll-mono'>{esc(walker[f])}</td>"]
        for h, row in hooks.items():
            if row is None:
                cells.append("<td class='pll-note'>—</td>")
                continue
            klass = "pll-mono"
            if f in differing.get(h, ()):
                klass += " pll-diff"
            elif row[f] != walker[f]:
                klass += " pll-expl"
            cells.append(f"<td class='{klass}'>{esc(row[f])}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    out = "<table class='pll-t pl-records'>" + "".join(rows) + "</table>"
    notes = [f"<b>{esc(h)}</b>: {esc(r)}" for h, r in reasons.items() if r]
    if notes:
        out += "<div class='pll-note'>" + "<br>".join(notes) + "</div>"
    return out


def _step_state(st, lab_name):
    """The stepper's status line for a frame it tried to send: not sent (and why), or what
    the hooks made of it. Green only when the frame went across and every hook agrees."""
    verdicts = st.verdicts()
    if not st.sent:
        why = st.batch.skip_reasons.get(0, "")
        return ("<span class='pll-no'>not sent</span> across lab "
                f"{esc(lab_name)}: {esc(why)}; the hooks saw nothing, only the walker and "
                "scapy parse it")
    bad = [h for h, v in verdicts.items() if v in ("disagree", "lost")]
    if bad:
        state = f"<span class='pll-no'>{esc(', '.join(bad))}: disagree or lost</span>"
    elif not verdicts:
        state = "no hook attached (tick one in the chooser)"
    else:
        state = ("<span class='pll-ok'>every hook agrees with the walker"
                 + (" (or differs for a reason the kernel gives)"
                    if "explained" in verdicts.values() else "") + "</span>")
    return f"sent across lab {esc(lab_name)}: " + state


class PacketStepper:
    """Step through a capture: hex view, scapy, and every hook's record of each frame.

    capture: a file name in the capture directory, or a path. lab: a lessons.LiveLab (the
    stepper uses it, the notebook closes it), None (walker and scapy only), or "own" to open
    a lab of its own with ``hooks`` (closed by close()). The hook chooser attaches and detaches
    hooks on the lab.
    """

    def __init__(self, capture="mixed.pcap", lab=None, hooks="all", directory=None,
                 chooser=True):
        import ipywidgets as w
        self.directory = directory or pcaps_dir()
        self._own_lab = lab == "own"
        self.lab = open_lab(hooks) if self._own_lab else lab
        self.closed = False
        self.frames = []
        self.problems = []
        self.current = None           # StepResult of the frame shown (None without a lab)
        self.index = 0
        self._muted = False
        names = captures(self.directory)
        path = capture_path(capture) if not os.path.exists(os.path.join(self.directory,
                                                                           str(capture))) \
            else os.path.join(self.directory, capture)
        base = os.path.basename(path)
        self._paths = {n: os.path.join(self.directory, n) for n in names}
        if base not in self._paths:
            self._paths[base] = path
            names = [base, *names]
        # wide enough for the longest name (malformed-unsupported-ethertype.pcap): a name cut
        # short in the dropdown cannot be told from its neighbours
        longest = max(len(n) for n in names)
        self.capture = w.Dropdown(options=names, value=base, description="capture",
                                  style={"description_width": "initial"},
                                  layout=w.Layout(width=f"{min(longest, 60) * 8 + 110}px"))
        self.back_button = w.Button(description="back", icon="step-backward",
                                    layout=w.Layout(width="80px"), tooltip="previous frame")
        self.step_button = w.Button(description="step", icon="step-forward",
                                    button_style="primary", layout=w.Layout(width="80px"),
                                    tooltip="next frame")
        self.slider = w.IntSlider(value=1, min=1, max=1, description="frame",
                                  continuous_update=False, layout=w.Layout(width="340px"))
        self.close_button = w.Button(description="close", icon="times",
                                     layout=w.Layout(width="80px"),
                                     tooltip="detach this stepper (and its own lab, if any)")
        self.status = w.HTML()
        self.hex = w.HTML(layout=w.Layout(flex="0 1 auto"))
        self.scapy = w.HTML(layout=w.Layout(flex="1 1 340px", min_width="300px",
                                            max_width="560px"))
        self.records = w.HTML(layout=w.Layout(flex="0 0 auto"))
        self.hex.add_class("pl-stepper-hex")
        self.scapy.add_class("pl-stepper-scapy")
        self.records.add_class("pl-stepper-records")
        self.status.add_class("pl-stepper-status")
        self.chooser = None
        parts = [w.HBox([self.capture, self.back_button, self.step_button, self.slider,
                         self.close_button], layout=w.Layout(flex_flow="row wrap"))]
        if chooser and self.lab is not None and (self.lab or self.lab.unavailable):
            self.chooser = HookChooser(value=self.lab.hooks if self.lab else ())
            self.chooser.observe(self._hooks_changed)
            parts.append(self.chooser.widget)
        # hex view, records, scapy: side by side where the notebook is wide enough, wrapping
        # (in that order) where it is not
        parts += [self.status, w.Box([self.hex, self.records, self.scapy],
                                     layout=w.Layout(display="flex", flex_flow="row wrap",
                                                     align_items="flex-start",
                                                     grid_gap="10px"))]
        self.widget = w.VBox(parts)
        self.widget.add_class("pl-stepper")
        self.capture.observe(lambda ch: self.set_capture(ch["new"]), names="value")
        self.slider.observe(self._on_slider, names="value")
        self.step_button.on_click(lambda _b: self.step())
        self.back_button.on_click(lambda _b: self.back())
        self.close_button.on_click(lambda _b: self.close())
        register_widget(self)
        self.set_capture(base)

    # --- driving it (the buttons call these; so can a cell) ----------------------------------
    def set_capture(self, name):
        """Load another capture and show its first frame."""
        if self.capture.value != name and name in self.capture.options:
            self.capture.value = name     # the dropdown's observer calls back here
            return
        self.problems = []
        self.frames = read(self._paths.get(name, name), problems=self.problems)
        self._muted = True                # move the slider without rendering twice
        try:
            self.slider.max = max(1, len(self.frames))
            self.slider.value = 1
        finally:
            self._muted = False
        self._render(1)

    def show(self, index):
        """Show frame ``index`` (1-based)."""
        index = max(1, min(int(index), max(1, len(self.frames))))
        if self.slider.value != index:
            self.slider.value = index      # the observer renders
        else:
            self._render(index)

    def step(self):
        """The next frame (wraps to the first after the last)."""
        nxt = self.index + 1 if self.index < len(self.frames) else 1
        self.show(nxt)

    def back(self):
        self.show(self.index - 1 if self.index > 1 else len(self.frames))

    def _on_slider(self, change):
        if not self._muted:
            self._render(change["new"])

    def _hooks_changed(self, hooks):
        if self.lab is None or self.closed:
            return
        try:
            self.lab.set_hooks(hooks)
        except Exception as e:            # attach failed: show it, keep the widget alive
            self.status.value = f"<div class='pll-why'>could not attach {esc(hooks)}: {esc(e)}</div>"
            return
        self._render(self.index or 1)

    # --- rendering -----------------------------------------------------------------------------
    def _render(self, index):
        from ..packet.views import PacketView, scapy_dissection
        try:
            self.index = index
            if not self.frames:
                self.hex.value = "<i>this capture has no frames pktlab can read</i>"
                self.records.value = "<br>".join(esc(p) for p in self.problems)
                return
            fr = self.frames[index - 1]
            data = fr.data
            title = f"frame {index} of {len(self.frames)}"
            self.hex.value = _COMPACT + PacketView(fr, title=title).html()
            self.scapy.value = ("<div style='font-weight:bold;font-family:sans-serif'>scapy: "
                                "Ether(data).show()</div><pre class='pl-scapy' style='font-size:11.5px;"
                                "border:1px solid #ddd;padding:6px;margin:0;max-height:26em;"
                                "overflow:auto'>" + esc(scapy_dissection(data)) + "</pre>")
            walker = _walker_row(data)
            live = bool(self.lab) and not self.closed
            self.current = self.lab.step(data, index) if live else None
            if self.current is not None:
                st = self.current
                rows = st.rows()
                hooks = {h: rows[h] for h in WIRE_ORDER if h in st.batch.hooks}
                verdicts = st.verdicts()
                differing = {h: st.differing(h) for h in hooks}
                reasons = {h: st.reason(h) for h in hooks}
                if not st.sent:
                    reasons["not sent"] = st.batch.skip_reasons.get(0, "")
                self.records.value = CSS + record_table(walker, hooks, verdicts, differing,
                                                          reasons)
                self.status.value = (f"{esc(os.path.basename(self._path()))}, {title}: "
                                     + _step_state(st, self.lab.name))
            else:
                why = ("this stepper is closed" if self.closed else
                       self.lab.why() if self.lab is not None else
                       "no lab given: pass lab=pl.open_lab(...) for the hooks' records")
                self.records.value = CSS + record_table(walker)
                self.status.value = (f"{esc(os.path.basename(self._path()))}, {title}: walker "
                                     f"and scapy only <span class='pll-note'>({esc(why)})</span>")
        except Exception as e:          # a callback's exception would vanish into the log
            self.status.value = (f"<div class='pll-fail'>could not show frame {index}: "
                                 f"{esc(type(e).__name__)}: {esc(e)}</div>")

    def _path(self):
        return self._paths.get(self.capture.value, self.capture.value)

    def text(self):
        """What the stepper shows, as text (for scripts and tests)."""
        if self.current is not None:
            return self.current.text()
        if not self.frames:
            return "no frames"
        from ..packet.views import PacketView
        return PacketView(self.frames[self.index - 1].data).text(color=False)

    # --- lifecycle ---------------------------------------------------------------------------------
    def close(self):
        """Stop sending frames; close the stepper's own lab if it opened one. Safe twice."""
        if self.closed:
            return
        self.closed = True
        try:
            if self._own_lab and self.lab is not None:
                self.lab.close()
        finally:
            self.close_button.disabled = True
            if self.chooser is not None:
                self.chooser.close()
            self.status.value += " <span class='pll-note'>[stepper closed: walker and scapy only]</span>"

    def _repr_mimebundle_(self, **kw):
        return self.widget._repr_mimebundle_(**kw)
