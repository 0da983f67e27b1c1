"""HTML for the lessons: the stylesheet, escaping, verdict badges, tables, and the small
displayable objects every lesson helper returns (HTML, NotHere, Text).

Imports nothing of pktlab: every other module of the lessons builds on it.
"""

import html
import re

CSS = """<style>
.pll-t{border-collapse:collapse;font-size:12.5px;margin:4px 0;line-height:1.35}
table.pll-t th,table.pll-t td{border:1px solid #d0d7de;padding:2px 7px;text-align:left !important;
 vertical-align:top}
table.pll-t th{background:#f3f5f7}
table.pll-t td.pll-num{text-align:right !important;font-variant-numeric:tabular-nums}
.pll-t td.pll-mono,.pll-mono{font-family:var(--jp-code-font-family,monospace)}
.pll-ok{color:#1a7f37;font-weight:600}.pll-no{color:#cf222e;font-weight:600}
.pll-diff{background:#ffd7d5 !important;font-weight:600}
.pll-expl{background:#fff1c2 !important}
.pll-badge{display:inline-block;border-radius:9px;padding:0 7px;margin:1px 2px;font-size:11.5px;
 color:#fff;font-weight:600}
.pll-b-agree{background:#1a7f37}.pll-b-explained{background:#bf8700}.pll-b-disagree{background:#cf222e}
.pll-b-lost{background:#8250df}.pll-b-skipped{background:#6e7781}.pll-b-off{background:#afb8c1}
.pll-note{color:#57606a;font-size:12px;margin:2px 0}
.pll-why{border-left:4px solid #bf8700;background:#fff8e1;padding:4px 8px;margin:4px 0;font-size:13px}
.pll-pass{border-left:4px solid #1a7f37;background:#e8f5e9;padding:4px 8px;margin:4px 0}
.pll-fail{border-left:4px solid #cf222e;background:#ffebe9;padding:4px 8px;margin:4px 0}
.pll-log{font-family:var(--jp-code-font-family,monospace);font-size:11.5px;white-space:pre-wrap;
 background:#f6f8fa;border:1px solid #d0d7de;padding:4px;max-height:22em;overflow:auto}
.pll-log .pll-hit{background:#ffd7d5;font-weight:600}
</style>"""


def esc(v):
    return html.escape(str(v))


def prose(text):
    """Words written for a terminal (the doctor's, a reason) as HTML: escaped, their `code` in
    code type instead of raw backticks."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


def badge(verdict, text=None):
    v = verdict if verdict in ("agree", "explained", "disagree", "lost", "skipped") else "off"
    return f'<span class="pll-badge pll-b-{v}">{esc(text or verdict)}</span>'


def table(headers, rows, cls="pll-t", raw=False):
    """An HTML table; cells are escaped unless ``raw`` (then each cell is (html, td-class))."""
    out = [f'<table class="{cls}"><tr>' + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"]
    for row in rows:
        cells = []
        for c in row:
            if raw:
                text, klass = c if isinstance(c, tuple) else (esc(c), "")
                cells.append(f'<td class="{klass}">{text}</td>' if klass else f"<td>{text}</td>")
            else:
                cells.append(f"<td>{esc(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


class HTML:
    """A displayable piece of HTML (what lesson helpers return)."""

    def __init__(self, body, text=""):
        self.body = body
        self.text = text or re.sub(r"<[^>]+>", " ", body)

    def _repr_html_(self):
        return CSS + self.body

    def __repr__(self):
        return re.sub(r"[ \t]+", " ", self.text).strip()


class NotHere(HTML):
    """What a live helper returns when it cannot run here: the reason, shown, and falsy."""

    def __init__(self, what, why):
        self.what, self.why = what, why
        super().__init__(f'<div class="pll-why"><b>{esc(what)}: not run here.</b> {prose(why)}</div>',
                         f"{what}: not run here. {why}")

    def __bool__(self):
        return False

    def __getattr__(self, name):
        # whatever a cell does next with the result (.plot(), .summary()...) shows the reason
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *a, **k: self

    def __getitem__(self, key):
        return self


class Text:
    """Plain text that shows as such in a notebook (no quotes, no escapes)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text
