"""One frame at a time: send it, then show its walk and what every hook recorded.

Used by `pktlab replay --step` (pktlab/cli/step.py: Enter for the next frame, q to stop) and by
the notebook stepper widget (pktlab/lessons/widgets.py), which calls Stepper.step() from a
button.
"""

from . import compare
from ..packet import record as rec

#: record fields worth a column when comparing hooks side by side
SHOWN_FIELDS = ("frame_len", "status", "layer", "flags", "vlan_depth", "eth_proto", "ip_version",
                "ttl", "l4_proto", "sport", "dport", "tcp_flags", "payload_off", "payload_len",
                "l7")


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
        return self.batch.hooks[hook].diffs.get(0, [])

    def reason(self, hook):
        code = int(self.batch.hooks[hook].reason[0])
        return compare.REASONS[code] if code else ""

    def text(self, color=False):
        from ..packet import walk
        w = walk(self.frame)
        lines = [f"frame {self.index}: {len(self.frame)} bytes, {w.summary()}"]
        for ly in w.layers:
            lines.append(f"  {ly.name} @{ly.offset} ({ly.length} bytes)")
        if not self.sent:
            lines.append(f"  not sent: {self.batch.skip_reasons.get(0, '')}")
        rows = self.rows()
        head = "  " + f"{'':<11}" + "".join(f"{c[:10]:>11}" for c in SHOWN_FIELDS)
        lines.append(head)
        for src, vals in rows.items():
            if vals is None:
                lines.append(f"  {src:<11}  (no record: {self.verdicts().get(src)})")
                continue
            diff = set(self.differing(src)) if src in self.batch.hooks else set()
            cells = []
            for c in SHOWN_FIELDS:
                v = str(vals[c])[:10]
                cell = f"{v:>11}"
                if c in diff:
                    cell = f"\x1b[31m{cell}\x1b[0m" if color else cell[:-1] + "!"
                cells.append(cell)
            verdict = "" if src == "walker" else f"  {self.verdicts()[src]}"
            lines.append(f"  {src:<11}" + "".join(cells) + verdict)
        for h in self.batch.hooks:
            if self.reason(h):
                lines.append(f"  {h}: {self.reason(h)}")
        return "\n".join(lines)


def _fields(r):
    d = {}
    for name in SHOWN_FIELDS:
        v = int(r[name])
        if name == "status":
            v = rec.status_name(v)
        elif name == "layer":
            v = rec.layer_name(v)
        elif name == "l7":
            v = rec.l7_name(v)
        elif name == "eth_proto":
            v = f"{v:#06x}"
        d[name] = v
    return d
