"""Views of results: a replay's agreement table (ReplayView), a batch frame by frame
(BatchView), one packet at every hook in time order (Belt), one real request through every
hook, the socket end included (RequestBelt, lesson 08), and a record in a few words.
"""

import os

from .here import BELT_ORDER, WIRE_ORDER
from .html import CSS, HTML, badge, esc, table


def record_summary(r):
    """A record in a few words: where the parse stopped, the ports, the L7 guess."""
    from ..packet import record as R
    s = f"{R.status_name(int(r['status']))}@{R.layer_name(int(r['layer']))}"
    if int(r["sport"]) or int(r["dport"]):
        s += f" {int(r['sport'])}→{int(r['dport'])}"
    if int(r["l7"]):
        s += f" {R.l7_name(int(r['l7']))}"
    return s


class ReplayView(HTML):
    """The agreement table of a replay: per hook, what it saw and how it compares."""

    COLS = ("seen", "agree", "explained", "disagree", "lost", "skipped", "foreign")

    def __init__(self, summary, unavailable=None):
        self.doc = summary
        self.unavailable = dict(unavailable or {})
        super().__init__(self._body())

    def summary(self):
        return self.doc

    @property
    def ok(self):
        """No disagreement and nothing lost; and something was sent to agree about."""
        return self.sent > 0 and all(t["disagree"] == 0 and t["lost"] == 0
                                     for t in self.doc["hooks"].values())

    @property
    def sent(self):
        return self.doc.get("sent", self.doc["packets"])

    def plot(self, ax=None):
        from .plots import agreement
        return agreement(self.doc, ax=ax)

    def _body(self):
        d = self.doc
        rows = []
        for h in WIRE_ORDER:
            if h in d["hooks"]:
                t = d["hooks"][h]
                cells = [(f"<b>{esc(h)}</b>", ""), (esc(t.get("via") or ""), "")]
                for c in self.COLS:
                    v = t.get(c, 0)
                    klass = "pll-num"
                    if v and c in ("disagree", "lost"):
                        klass += " pll-diff"
                    elif v and c == "explained":
                        klass += " pll-expl"
                    cells.append((esc(v), klass))
                reasons = "; ".join(f"{n}× {r}" for r, n in t.get("explained_reasons", {}).items())
                cells.append((esc(reasons), ""))
                rows.append(cells)
            elif h in self.unavailable:
                rows.append([(f"<b>{esc(h)}</b>", ""), ("not attached", "")] +
                            [("", "")] * len(self.COLS) + [(esc(self.unavailable[h]), "pll-expl")])
        name = os.path.basename(str(d.get("source", "")))
        head = (f"<p><b>{esc(name)}</b>: {d['packets']} frames, {d.get('sent', d['packets'])} sent, "
                f"{d['elapsed_s']:.2f} s ({d['pps']:,.0f} frames/s); leftovers: "
                f"{esc(d['leftovers'] or 'none')}</p>")
        body = head + table(["hook", "via", *self.COLS, "explained because"], rows, raw=True)
        if d.get("disagreements"):
            body += "<p><b>disagreements</b> (first few):</p>" + table(
                ["frame", "hook", "fields"],
                [[x["frame"], x["hook"], ", ".join(x["fields"])] for x in d["disagreements"]])
        if d.get("problems"):
            body += "<p><b>capture problems</b>:</p><ul>" + "".join(
                f"<li>{esc(p)}</li>" for p in d["problems"]) + "</ul>"
        skipped = d["packets"] - self.sent
        if skipped:
            why = d.get("skipped_reasons") or {}
            body += (f"<p><b>{skipped} of {d['packets']} frames not sent</b> (the hooks never "
                     "saw them; the walker still parses them):</p><ul>" + "".join(
                         f"<li>{n}× {esc(r)}</li>" for r, n in why.items()) + "</ul>")
        if self.sent == 0:
            verdict, klass = ("no frame was sent, so no hook saw anything: nothing to compare "
                              "(the reasons are above)"), "pll-no"
        elif self.ok:
            verdict, klass = ("every hook agrees with the walker (or differs for a reason the "
                              f"kernel gives) on the {self.sent} frames sent"), "pll-ok"
        else:
            verdict, klass = "DISAGREEMENTS or LOST records: a bug in one of the parsers", "pll-no"
        body += f'<p class="{klass}">{esc(verdict)}</p>'
        return body


class BatchView(HTML):
    """Frames of one batch: the walker's record and every hook's verdict, frame by frame."""

    def __init__(self, batch, hooks):
        from ..replay import compare
        self.batch = batch
        rows = []
        for i, f in enumerate(batch.frames):
            cells = [(esc(i + 1), "pll-num"), (esc(len(f)), "pll-num"),
                     (esc(record_summary(batch.walked[i])), "pll-mono")]
            for h in hooks:
                r = batch.hooks[h]
                v = compare.VERDICT_NAMES[int(r.verdict[i])]
                note = ""
                if v == "disagree":
                    note = " " + esc(", ".join(r.diffs.get(i, [])))
                elif v == "explained" and int(r.reason[i]):
                    note = f' <span title="{esc(compare.REASONS[int(r.reason[i])])}">(why?)</span>'
                elif v == "skipped":
                    note = " " + esc(batch.skip_reasons.get(i, ""))
                kernel = (esc(record_summary(r.matched[i])) if v in ("agree", "explained", "disagree")
                          and int(r.matched[i]["hook"]) else "")
                cells.append((badge(v) + " " + kernel + note, "pll-mono"))
            rows.append(cells)
        super().__init__(table(["#", "bytes", "walker", *hooks], rows, raw=True))


class Belt(HTML):
    """One packet at every hook: when each saw it (ts_ns) and what it saw."""

    FIELDS = ("frame_len", "ifindex", "vlan_depth", "flags", "eth_proto", "status", "layer",
              "ttl", "payload_off")

    def __init__(self, step, via):
        from ..replay import compare
        from ..packet import record as R
        self.step = step
        self.via = via
        self.times = {}
        self.records = {}
        for h in BELT_ORDER:
            r = step.batch.hooks.get(h)
            if r is None or int(r.verdict[0]) > compare.DISAGREE:
                continue
            self.records[h] = r.matched[0]
            self.times[h] = int(r.matched[0]["ts_ns"])
        t0 = min(self.times.values()) if self.times else 0
        order = sorted(self.times, key=self.times.get)
        rows = []
        for h in order:
            rec = self.records[h]
            cells = [(f"<b>{esc(h)}</b>", ""), (esc(via.get(h, "")), ""),
                     (f"{(self.times[h] - t0) / 1000:.1f}", "pll-num"),
                     (badge(step.verdicts()[h]), "")]
            walked = step.batch.walked[0]
            for fld in self.FIELDS:
                v = int(rec[fld])
                text = (R.status_name(v) if fld == "status" else R.layer_name(v) if fld == "layer"
                        else "|".join(R.flag_names(v)) or "0" if fld == "flags"
                        else f"{v:#06x}" if fld == "eth_proto" else str(v))
                differs = fld not in ("ifindex",) and v != int(walked[fld])
                cells.append((esc(text), "pll-num pll-expl" if differs else "pll-num"))
            rows.append(cells)
        missing = [h for h in step.batch.hooks if h not in self.times]
        body = table(["hook", "via", "µs after the first", "verdict", *self.FIELDS], rows, raw=True)
        if missing:
            body += "<p class='pll-note'>no record at: " + ", ".join(
                f"{esc(h)} ({esc(step.verdicts()[h])})" for h in missing) + "</p>"
        body += ("<p class='pll-note'>shaded: differs from the walker's record of the bytes that "
                 "were sent (ifindex is each hook's own interface)</p>")
        super().__init__(body)

    def order(self):
        """Hooks in the order they saw the packet."""
        return sorted(self.times, key=self.times.get)

    def plot(self, ax=None):
        from .plots import conveyor_belt
        return conveyor_belt(self, ax=ax)


class RequestBelt(HTML):
    """One real request at every hook, from src's wire to dut's application (a BeltRun of
    pktlab.sockets.belt): when each saw it, what it saw, and its verdict against the walker
    entered at its layer. ``times``/``order()``/``plot()`` as Belt's, so lesson 05's plots take
    it; ``views()`` is the picture of what each hook sees of the frame."""

    FIELDS = ("frame_len", "status", "layer", "payload_off", "sport", "dport", "l7")

    def __init__(self, run, unavailable=None):
        from ..packet import record as R
        self.run = run
        self.times = dict(run.times)
        self.unavailable = {**dict(run.unavailable), **dict(unavailable or {})}
        t0 = min(self.times.values()) if self.times else 0
        rows = []
        for h in run.order:
            v, rec = run.hooks[h], run.record(h)
            verdict = ("agree" if v["agree"] and not v["explained"] else
                       "explained" if v["agree"] else "disagree")
            cells = [(f"<b>{esc(h)}</b>", ""), (esc(_VIEW_WORDS.get(h, "")), ""),
                     (f"{(self.times[h] - t0) / 1000:.1f}", "pll-num"), (badge(verdict), "")]
            for fld in self.FIELDS:
                x = int(getattr(rec, fld))
                text = (R.status_name(x) if fld == "status" else R.layer_name(x)
                        if fld == "layer" else R.l7_name(x) if fld == "l7" else str(x))
                cells.append((esc(text), "pll-num"))
            cells.append((esc(v["explained"] or ", ".join(v["disagree"])), "pll-expl"
                          if v["explained"] else ""))
            rows.append(cells)
        for h in BELT_ORDER:
            if h not in run.order and (h in self.unavailable or h in run.hooks):
                why = self.unavailable.get(h) or "attached, but it did not see the request"
                rows.append([(f"<b>{esc(h)}</b>", ""), (esc(_VIEW_WORDS.get(h, "")), ""),
                             ("", ""), (badge("off", "not here"), "")] +
                            [("", "")] * len(self.FIELDS) + [(esc(why), "pll-expl")])
        head = (f"<p>one {esc(run.traffic)} request (<code>{esc(run.nonce)}</code>, "
                f"{len(run.frame)} bytes on the wire), in the order the hooks saw it</p>")
        body = head + table(["hook", "sees", "µs after the first", "verdict", *self.FIELDS,
                             "explained / differs"], rows, raw=True)
        whose = "the kernel's order" if run.kernel_order else "NOT the kernel's order"
        body += (f"<p class='pll-note'>{esc(' → '.join(run.order))}: {esc(whose)}; each "
                 "record is judged against the walker entered at that hook's layer over the "
                 "frame captured leaving src</p>")
        super().__init__(body)

    def order(self):
        return list(self.run.order)

    def plot(self, ax=None):
        from .plots import conveyor_belt
        return conveyor_belt(self, ax=ax)

    def views(self, ax=None):
        from .plots import belt_views
        return belt_views(self.run, ax=ax)


_VIEW_WORDS = {"tc-egress": "the frame", "kprobe": "the frame", "xdp": "the frame",
               "tc-ingress": "the frame", "cgroup-ingress": "from the IP header",
               "socket-filter": "from the TCP/UDP header", "sk-skb": "the payload",
               "recv": "the app's bytes"}


#: the two legs lesson 05 compares: src's wire to dut's XDP, and XDP to TC ingress
LEGS = (("tc-egress", "xdp"), ("xdp", "tc-ingress"))


class Gaps:
    """Gaps between hooks over several packets (LiveLab.gaps): per leg, the median, smallest and
    largest time in µs. ``median(a, b)`` for one leg."""

    def __init__(self, belts):
        import statistics
        self.belts = [b for b in belts if getattr(b, "times", None)]
        self.legs = {}
        for b in self.belts:
            order = b.order()
            for a, c in zip(order, order[1:]):
                self.legs.setdefault((a, c), []).append((b.times[c] - b.times[a]) / 1000)
            for a, c in LEGS:
                if a in b.times and c in b.times and (a, c) not in zip(order, order[1:]):
                    self.legs.setdefault((a, c), []).append((b.times[c] - b.times[a]) / 1000)
        self.stats = {k: (statistics.median(v), min(v), max(v), len(v))
                      for k, v in self.legs.items()}

    def median(self, a, b):
        return self.stats[(a, b)][0] if (a, b) in self.stats else None

    def _repr_html_(self):
        rows = [[f"{a} → {b}", f"{m:.1f}", f"{lo:.1f}", f"{hi:.1f}", n]
                for (a, b), (m, lo, hi, n) in self.stats.items()]
        return (CSS + f"<p>{len(self.belts)} packets, each followed on its own; µs between "
                "the hooks (legs that skip a hook are listed too when exercise 2 asks for "
                "them)</p>" + table(["leg", "median µs", "min", "max", "packets"], rows))

    def __repr__(self):
        return "\n".join(f"{a} → {b}: median {m:.1f} µs (min {lo:.1f}, max {hi:.1f}, {n} packets)"
                         for (a, b), (m, lo, hi, n) in self.stats.items())
