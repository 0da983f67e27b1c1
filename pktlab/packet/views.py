"""Seeing a walked frame: a hex dump coloured by layer, with every field in a table.

- ``PacketView(frame).html()`` (and ``_repr_html_``, so a notebook cell shows it): each layer
  its own colour; hovering a field's row highlights its bytes, hovering a byte highlights its
  field (and a layer's title row highlights the whole layer), like Wireshark. Plain inline CSS
  and JS, ids unique per render, nothing loaded from anywhere. The highlighting works through
  CSS ``:has()`` even where the notebook strips scripts (untrusted outputs); the script does
  the same for browsers without ``:has()``.
- ``PacketView(frame).text(color=True)``: the same for a terminal, in ANSI colours.
- ``SideBySide(frame)`` / ``PacketView.side_by_side()``: pktlab's layers next to scapy's own
  dissection of the same bytes (``Ether(data).show(dump=True)``), scapy imported only then.

When the Ethernet header was synthesized (cooked or raw-IP captures, see pktlab.packet.capture), the
view says so: those 14 bytes were not on the wire.
"""

from __future__ import annotations

import html
import itertools
import re
from typing import Optional

from .walker import Walk, walk

__all__ = ["PacketView", "SideBySide", "side_by_side", "LAYER_COLOURS", "scapy_dissection"]

#: background colour (HTML) and ANSI SGR code of each layer key
LAYER_COLOURS = {
    "eth": ("#cfe2ff", "34"),
    "vlan": ("#e2d9f3", "35"),
    "arp": ("#c9f0ee", "36"),
    "ipv4": ("#d1f2d1", "32"),
    "ipv6": ("#d1f2d1", "32"),
    "ipv6ext": ("#e6f5c4", "92"),
    "tcp": ("#ffe3c2", "33"),
    "udp": ("#fff3b0", "93"),
    "icmp": ("#f9d1e8", "95"),
    "icmpv6": ("#f9d1e8", "95"),
    "payload": ("#eeeeee", "37"),
    "padding": ("#f7f7f7", "2"),
    "unparsed": ("#ffd6d6", "31"),
}
_DEFAULT_COLOUR = ("#f0f0f0", "0")
_uid = itertools.count(1)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _frame_parts(frame, title, synthesized, linktype):
    """Accept bytes or a pktlab.packet.capture.Frame (which knows whether its Ethernet is synthetic)."""
    if hasattr(frame, "data") and hasattr(frame, "synthesized_eth"):
        if title is None:
            title = f"frame {frame.index}"
        synthesized = synthesized or frame.synthesized_eth
        if linktype is None and frame.synthesized_eth:
            linktype = frame.original_linktype_name
        frame = frame.data
    return bytes(frame), title, synthesized, linktype


class PacketView:
    """A walked frame, ready to show (Jupyter HTML or terminal text)."""

    def __init__(self, frame, title: Optional[str] = None, synthesized: bool = False,
                 linktype: Optional[str] = None):
        data, title, synthesized, linktype = _frame_parts(frame, title, synthesized, linktype)
        self.frame: bytes = data
        self.title = title
        self.synthesized = bool(synthesized)
        self.linktype = linktype
        self.walk: Walk = walk(data)

    # --- shared ---------------------------------------------------------------------------
    def _headline(self) -> str:
        r = self.walk.record
        t = f"{self.title}: " if self.title else ""
        s = f"{t}{len(self.frame)} bytes, {r.status_name} at {r.layer_name}"
        if r.l7:
            s += f", L7 guess {r.l7_name}"
        return s

    def _synth_note(self) -> str:
        if not self.synthesized:
            return ""
        src = f" from a {self.linktype} capture" if self.linktype else ""
        return (f"the Ethernet header (bytes 0-13) was synthesized by pktlab{src}: it was not "
                "on the wire")

    def _byte_owners(self):
        """For each byte: (layer index, [field ids]) — field ids are (layer, field) pairs."""
        n = len(self.frame)
        layer_of = [None] * n
        fields_of: list[list] = [[] for _ in range(n)]
        for li, ly in enumerate(self.walk.layers):
            for b in range(max(0, ly.offset), min(n, ly.offset + ly.length)):
                if layer_of[b] is None:
                    layer_of[b] = li
            for fi, f in enumerate(ly.fields):
                if f.name == "l7_guess":
                    continue
                for b in range(max(0, f.offset), min(n, f.offset + max(f.length, 0))):
                    fields_of[b].append((li, fi))
        return layer_of, fields_of

    @staticmethod
    def _field_size(f) -> str:
        if f.bit_length is not None:
            return f"{f.bit_length} bit" + ("s" if f.bit_length != 1 else "")
        return f"{f.length}"

    @staticmethod
    def _field_where(f) -> str:
        if f.bit_length is not None:
            return f"{f.offset}.{f.bit_offset}"
        return f"{f.offset}"

    # --- HTML -----------------------------------------------------------------------------
    def html(self) -> str:
        """A self-contained HTML fragment (inline style and script, unique ids)."""
        uid = f"plv{next(_uid)}x{id(self) & 0xFFFF:x}"
        esc = html.escape
        layers = self.walk.layers
        layer_of, fields_of = self._byte_owners()
        fid = {}
        for li, ly in enumerate(layers):
            for fi, _f in enumerate(ly.fields):
                fid[(li, fi)] = f"f{li}_{fi}"

        css = [
            f"#{uid}{{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;"
            "color:#111;background:#fff;padding:6px;border:1px solid #ddd;border-radius:4px;}",
            f"#{uid} .pl-title{{font-weight:bold;margin-bottom:4px;}}",
            f"#{uid} .pl-note{{color:#8a4b00;margin-bottom:4px;}}",
            f"#{uid} .pl-wrap{{display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap;}}",
            f"#{uid} pre.pl-hex{{margin:0;line-height:1.45;}}",
            f"#{uid} .pl-off{{color:#888;}}",
            f"#{uid} table.pl-tab{{border-collapse:collapse;font-size:12px;}}",
            f"#{uid} table.pl-tab td,#{uid} table.pl-tab th{{padding:1px 6px;text-align:left;"
            "vertical-align:top;border-bottom:1px solid #eee;}}",
            f"#{uid} tr.pl-lh th{{font-weight:bold;}}",
            f"#{uid} .pl-hl{{outline:2px solid #d7263d;background:#ffe066 !important;}}",
            f"#{uid} [data-f],#{uid} [data-l]{{cursor:default;}}",
        ]
        for key, (bg, _a) in LAYER_COLOURS.items():
            css.append(f"#{uid} .pl-k-{key}{{background:{bg};}}")
        # The no-script highlight: hovering anything carrying a field id lights up every
        # element with that id (CSS :has); the same for a layer's title row.
        for (li, fi), name in fid.items():
            css.append(f"#{uid}:has([data-f~=\"{name}\"]:hover) [data-f~=\"{name}\"]"
                       "{outline:2px solid #d7263d;background:#ffe066;}")
        for li in range(len(layers)):
            css.append(f"#{uid}:has(tr[data-l=\"l{li}\"]:hover) [data-l~=\"l{li}\"]"
                       "{outline:1px solid #d7263d;background:#ffe066;}")

        # hex dump
        rows = []
        n = len(self.frame)
        for start in range(0, max(n, 1), 16):
            hexs, asc = [], []
            for b in range(start, start + 16):
                if b >= n:
                    hexs.append("    " if b % 16 == 7 else "   ")
                    continue
                li = layer_of[b]
                key = layers[li].key if li is not None else "unparsed"
                fl = " ".join(fid[x] for x in fields_of[b])
                attrs = f' class="pl-k-{key}" data-l="l{li}"' if li is not None else \
                    f' class="pl-k-{key}"'
                if fl:
                    attrs += f' data-f="{fl}"'
                title = ""
                if fields_of[b]:
                    ly_i, f_i = fields_of[b][0]
                    title = esc(f"{layers[ly_i].name}.{layers[ly_i].fields[f_i].name}")
                elif li is not None:
                    title = esc(layers[li].name)
                sep = " " if b % 16 != 7 else "  "
                hexs.append(f'<span{attrs} title="{title}">{self.frame[b]:02x}</span>{sep}')
                c = self.frame[b]
                ch = esc(chr(c)) if 32 <= c < 127 else "."
                asc.append(f"<span{attrs}>{ch}</span>")
            if n == 0:
                rows.append('<span class="pl-off">(empty frame: 0 bytes)</span>')
                break
            rows.append(f'<span class="pl-off">{start:04x}</span>  ' + "".join(hexs) + " "
                        + "".join(asc))
        hexdump = '<pre class="pl-hex">' + "\n".join(rows) + "</pre>"

        # field table
        tr = ['<table class="pl-tab"><tr><th>field</th><th>offset</th><th>size</th>'
              "<th>value</th></tr>"]
        for li, ly in enumerate(layers):
            note = f' <span class="pl-note">({esc(ly.note)})</span>' if ly.note else ""
            tr.append(f'<tr class="pl-lh pl-k-{ly.key}" data-l="l{li}"><th colspan="4">'
                      f"{esc(ly.name)} @{ly.offset} ({ly.length} bytes){note}</th></tr>")
            for fi, f in enumerate(ly.fields):
                tr.append(f'<tr data-f="{fid[(li, fi)]}"><td>{esc(f.name)}</td>'
                          f"<td>{esc(self._field_where(f))}</td><td>{esc(self._field_size(f))}"
                          f"</td><td>{esc(str(f.display))}</td></tr>")
        tr.append("</table>")

        note = self._synth_note()
        script = (
            "<script>(function(){var r=document.getElementById('" + uid + "');if(!r)return;"
            "function ids(e){while(e&&e!==r){if(e.getAttribute){var f=e.getAttribute('data-f');"
            "if(f)return f.split(' ');if(e.tagName==='TR'&&e.getAttribute('data-l'))"
            "return ['L'+e.getAttribute('data-l')];}e=e.parentNode;}return [];}"
            "function mark(e,on){ids(e).forEach(function(t){var q=t.charAt(0)==='L'?"
            "'[data-l~=\"'+t.slice(1)+'\"]':'[data-f~=\"'+t+'\"]';"
            "r.querySelectorAll(q).forEach(function(x){x.classList.toggle('pl-hl',on);});});}"
            "r.addEventListener('mouseover',function(ev){mark(ev.target,true);});"
            "r.addEventListener('mouseout',function(ev){mark(ev.target,false);});})();</script>")
        return (f'<div id="{uid}" class="pl-view"><style>{"".join(css)}</style>'
                f'<div class="pl-title">{esc(self._headline())}</div>'
                + (f'<div class="pl-note">{esc(note)}</div>' if note else "")
                + f'<div class="pl-wrap">{hexdump}{"".join(tr)}</div>{script}</div>')

    def _repr_html_(self) -> str:
        return self.html()

    # --- terminal ---------------------------------------------------------------------------
    def text(self, color: bool = True) -> str:
        """The hex dump coloured by layer (ANSI) and the layer/field table below it."""
        layers = self.walk.layers
        layer_of, _f = self._byte_owners()

        def paint(s, key):
            if not color:
                return s
            code = LAYER_COLOURS.get(key, _DEFAULT_COLOUR)[1]
            return f"\x1b[{code}m{s}\x1b[0m"

        out = [self._headline()]
        note = self._synth_note()
        if note:
            out.append(f"note: {note}")
        n = len(self.frame)
        if n == 0:
            out.append("(empty frame: 0 bytes)")
        for start in range(0, n, 16):
            hx, asc = [], []
            for b in range(start, min(n, start + 16)):
                li = layer_of[b]
                key = layers[li].key if li is not None else "unparsed"
                c = self.frame[b]
                hx.append(paint(f"{c:02x}", key) + ("  " if b % 16 == 7 else " "))
                asc.append(paint(chr(c) if 32 <= c < 127 else ".", key))
            pad = "   " * (16 - len(hx)) + (" " if len(hx) <= 8 else "")
            out.append(f"{start:04x}  " + "".join(hx) + pad + " " + "".join(asc))
        legend = " ".join(paint(ly.name, ly.key) for ly in layers)
        out.append(f"layers: {legend}")
        for ly in layers:
            head = paint(f"{ly.name} @{ly.offset} ({ly.length} bytes)", ly.key)
            out.append(head + (f"  [{ly.note}]" if ly.note else ""))
            for f in ly.fields:
                out.append(f"  {f.name:<18} {self._field_where(f):>6} {self._field_size(f):>7}  "
                           f"{f.display}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.text(color=False)

    def __repr__(self) -> str:
        return f"PacketView({self._headline()})"

    def side_by_side(self) -> "SideBySide":
        return SideBySide(self)


def scapy_dissection(frame: bytes) -> str:
    """scapy's own ``show(dump=True)`` of the bytes as Ethernet (scapy imported here only)."""
    import logging

    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    try:
        import scapy.all  # noqa: F401  (bind every layer scapy knows, as a user would)
        from scapy.layers.l2 import Ether
    except Exception as e:      # scapy missing or broken: say so in the view, do not fail it
        return f"(scapy is not available here: {e}; pip install scapy)"
    try:
        return Ether(bytes(frame)).show(dump=True) or ""
    except Exception as e:      # scapy's dissectors can throw on hostile bytes
        return f"(scapy could not dissect these {len(frame)} bytes: {type(e).__name__}: {e})"


class SideBySide:
    """pktlab's walk and scapy's dissection of the same bytes, next to each other."""

    def __init__(self, frame, title: Optional[str] = None, synthesized: bool = False,
                 linktype: Optional[str] = None):
        self.view = frame if isinstance(frame, PacketView) else PacketView(
            frame, title, synthesized, linktype)
        self._scapy: Optional[str] = None

    @property
    def scapy_text(self) -> str:
        if self._scapy is None:
            self._scapy = scapy_dissection(self.view.frame)
        return self._scapy

    def html(self) -> str:
        esc = html.escape
        return ('<div style="display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap">'
                f'<div><div style="font-weight:bold;font-family:sans-serif">pktlab walker</div>'
                f"{self.view.html()}</div>"
                '<div><div style="font-weight:bold;font-family:sans-serif">scapy: '
                "Ether(data).show()</div>"
                '<pre style="font-size:12px;border:1px solid #ddd;padding:6px;margin:0">'
                f"{esc(self.scapy_text)}</pre></div></div>")

    def _repr_html_(self) -> str:
        return self.html()

    def text(self, color: bool = True, width: int = 74) -> str:
        left = ["pktlab walker", ""] + self.view.text(color=color).split("\n")
        right = ["scapy: Ether(data).show()", ""] + self.scapy_text.rstrip("\n").split("\n")
        rows = []
        for a, b in itertools.zip_longest(left, right, fillvalue=""):
            vis = len(_ANSI.sub("", a))
            if vis > width:
                a, vis = _ANSI.sub("", a)[: width - 1] + "~", width
            rows.append(a + " " * (width - vis) + " | " + b)
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.text(color=False)


def side_by_side(frame, title: Optional[str] = None, synthesized: bool = False) -> SideBySide:
    """pktlab's layers and scapy's dissection of ``frame`` side by side."""
    return SideBySide(frame, title, synthesized)
