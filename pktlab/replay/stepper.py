"""One frame at a time: send it, then show its walk and what every hook recorded.

Used by `pktlab replay --step` (pktlab/cli/step.py: Enter for the next frame, q to stop) and by
the notebook stepper widget (pktlab/lessons/widgets.py), which calls Stepper.step() from a
button.
"""

from . import compare
from ..packet import record as rec

#: record fields worth a row when comparing hooks side by side ("tag 1", "tag 2": each VLAN
#: tag's TPID and VID, outer first, from vlan_tpid/vlan_tci)
SHOWN_FIELDS = ("frame_len", "status", "layer", "flags", "vlan_depth", "tag 1", "tag 2",
                "eth_proto", "ip_version", "ttl", "l4_proto", "sport", "dport", "tcp_flags",
                "payload_off", "payload_len", "l7")
#: a record field that differs -> the shown rows it is on
_ROWS_OF = {"vlan_tpid": ("tag 1", "tag 2"), "vlan_tci": ("tag 1", "tag 2")}
#: the text table: a column per source, at least _COL and at most _COL_MAX wide
_COL, _COL_MAX = 12, 18


class Stepper:
    """Walk through a capture frame by frame on an open Replayer."""

    def __init__(self, replayer, frames):
        self.rp = replayer
        self.frames = iter(frames)
        self.index = 0
        self.last = None

    def step(self):
        """Send the next frame; returns a StepResult, or None at the end of the capture."""
        try:
            frame = next(self.frames)
        except StopIteration:
            return None
        self.index += 1
        br = self.rp.run_batch([frame])
        self.last = StepResult(self.index, br)
        return self.last


class StepResult:
    def __init__(self, index, batch):
        self.index = index
        self.batch = batch
        self.frame = batch.frames[0]

    @property
    def sent(self):
        return bool(self.batch.sendable[0])

    def verdicts(self):
        return {h: compare.VERDICT_NAMES[int(r.verdict[0])] for h, r in self.batch.hooks.items()}

    def rows(self):
        """{column: value} per source: the walker, then each hook's record."""
        out = {"walker": _fields(self.batch.walked[0])}
        for h, r in self.batch.hooks.items():
            out[h] = _fields(r.matched[0]) if r.verdict[0] <= compare.DISAGREE else None
        return out

    def differing(self, hook):
        """The shown rows on which ``hook``'s record disagrees with the walker's."""
        out = []
        for name in self.batch.hooks[hook].diffs.get(0, []):
            out += _ROWS_OF.get(name, (name,))
        return out

    def reason(self, hook):
        code = int(self.batch.hooks[hook].reason[0])
        return compare.REASONS[code] if code else ""

    def text(self, color=False):
        """The frame, its layers, then a row per field and a column per source (the walker,
        then each hook), narrow enough for a notebook or an 80-column terminal."""
        from ..packet import walk
        w = walk(self.frame)
        lines = _wrap(f"frame {self.index}: {len(self.frame)} bytes, {w.summary()}", "")
        lines += _wrap(", ".join(f"{ly.name} @{ly.offset} ({ly.length} bytes)"
                                 for ly in w.layers))
        if not self.sent:
            lines += _wrap(f"not sent: {self.batch.skip_reasons.get(0, '')}")
        rows = self.rows()
        verdicts = self.verdicts()
        cols = list(rows)

        # as wide as the longest value (VLAN_FROM_META|IP_DF...), at most _COL_MAX
        width = min(_COL_MAX, max([_COL] + [len(str(v)) + 2 for r in rows.values() if r
                                            for v in r.values()]))

        def cell(text):
            text = str(text)
            return (text if len(text) < width else text[:width - 2] + "~").ljust(width)
        lines.append("  " + cell("") + "".join(cell(c) for c in cols))
        lines.append("  " + cell("verdict") + "".join(cell(verdicts.get(c, "")) for c in cols))
        diff = {c: set(self.differing(c)) for c in cols if c in self.batch.hooks}
        for f in SHOWN_FIELDS:
            cells = []
            for c in cols:
                vals = rows[c]
                if vals is None:
                    cells.append(cell("-"))
                    continue
                text = cell(vals[f])
                if f in diff.get(c, ()):
                    text = (f"\x1b[31m{text}\x1b[0m" if color else
                            cell(str(vals[f])[:width - 3] + "!"))
                cells.append(text)
            lines.append("  " + cell(f) + "".join(cells).rstrip())
        for h in self.batch.hooks:
            if self.reason(h):
                lines += _wrap(f"{h}: {self.reason(h)}")
        if any(rows[c] is None for c in cols):
            lines.append("  -: no record (see the verdict)")
        return "\n".join(lines)


#: the widest line text() writes outside the table (a notebook's output area, a terminal)
_LINE_MAX = 96


def _wrap(text, indent="  "):
    """``text`` as lines of at most _LINE_MAX characters, the first indented by ``indent``,
    the rest two spaces more."""
    import textwrap
    return textwrap.wrap(text, _LINE_MAX, initial_indent=indent,
                         subsequent_indent=indent + "  ", break_on_hyphens=False) or [indent]


def _tag(r, i):
    """A VLAN tag of the record as 'TPID vid N', or '-' when it has fewer tags."""
    if int(r["vlan_depth"]) <= i:
        return "-"
    return f"{int(r['vlan_tpid'][i]):#06x} vid {int(r['vlan_tci'][i]) & 0xfff}"


def _fields(r):
    d = {}
    for name in SHOWN_FIELDS:
        if name.startswith("tag "):
            d[name] = _tag(r, int(name[4:]) - 1)
            continue
        v = int(r[name])
        if name == "flags":
            v = "|".join(rec.flag_names(v)) or "0"
        elif name == "status":
            v = rec.status_name(v)
        elif name == "layer":
            v = rec.layer_name(v)
        elif name == "l7":
            v = rec.l7_name(v)
        elif name == "eth_proto":
            v = f"{v:#06x}"
        d[name] = v
    return d
