"""A walked frame, layer by layer, and how it is seen.

- ``walk(frame)``: the record (as walker.walk_record) plus every layer the parse read, each with
  its fields cast from the declared headers (``Walk``, ``Layer``, ``Field``); bytes the parse
  did not read are pseudo-layers (payload, padding, unparsed). ``layer_to_dict`` is the JSON
  form `pktlab cast --json` prints.
- ``PacketView(frame).html()`` (and ``_repr_html_``, so a notebook cell shows it, as it shows a
  ``Walk``): each layer its own colour; hovering a field's row highlights its bytes, hovering a
  byte highlights its field (and a layer's title row highlights the whole layer), like
  Wireshark. Plain inline CSS and JS, ids unique per render, nothing loaded from anywhere. The
  highlighting works through CSS ``:has()`` even where the notebook strips scripts (untrusted
  outputs); the script does the same for browsers without ``:has()``.
- ``PacketView(frame).text(color=True)``: the same for a terminal, in ANSI colours.
- ``SideBySide(frame)`` / ``PacketView.side_by_side()``: pktlab's layers next to scapy's own
  dissection of the same bytes (``Ether(data).show(dump=True)``), scapy imported only then;
  below them the TCP options, pktlab's decode and scapy's option by option (scapy has no MPTCP
  dissection: its kind 30 is raw bytes, and the row says so: pktlab.packet.scapyopts).

A TCP layer with options says what the record carries of them (MSS, window scale, SACK,
timestamps, the MPTCP subtypes and the MP_JOIN token), next to every option decoded.

When the Ethernet header was synthesized (cooked or raw-IP captures, see pktlab.packet.frames),
the view says so: those 14 bytes were not on the wire.
"""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from . import headers as H
from . import record as R
from .options import TcpOption, parse_ipv4_options, parse_tcp_options
from .scapyopts import option_rows, scapy_tcp_options
from .walker import _make_parser

__all__ = ["walk", "Walk", "Layer", "Field", "parse_fields", "layer_to_dict", "PacketView",
           "SideBySide", "side_by_side", "LAYER_COLOURS", "scapy_dissection"]

Layer = H.Layer
Field = H.Field


# --- the layered walk ------------------------------------------------------------------------

@dataclass
class Walk:
    """A walked frame: the record, and every layer with its fields (for views and lessons)."""
    frame: bytes
    record: Any
    layers: list = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.record.status_name

    @property
    def layer(self) -> str:
        return self.record.layer_name

    def layer_named(self, key: str):
        """The first layer whose key (eth, vlan, ipv4, tcp, payload, padding...) is ``key``."""
        for ly in self.layers:
            if ly.key == key:
                return ly
        return None

    def summary(self) -> str:
        """One line: status@layer and the layer names."""
        return f"{self.status}@{self.layer}: " + " / ".join(ly.name for ly in self.layers)

    def to_dict(self) -> dict:
        """JSON-ready: the layers with their fields, and the record."""
        return {
            "status": self.status, "layer": self.layer,
            "layers": [layer_to_dict(ly) for ly in self.layers],
            "record": self.record.to_dict(),
        }

    def _repr_html_(self) -> str:
        return PacketView(self.frame)._repr_html_()

    def __repr__(self) -> str:
        return f"Walk({self.summary()}, {len(self.frame)} bytes)"


def _jsonable(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).hex()
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    return v


def layer_to_dict(ly) -> dict:
    d = {"name": ly.name, "key": ly.key, "offset": ly.offset, "length": ly.length,
         "fields": [{"name": f.name, "offset": f.offset, "length": f.length,
                     "value": _jsonable(f.value), "display": f.display,
                     **({"bit_offset": f.bit_offset, "bit_length": f.bit_length}
                        if f.bit_length is not None else {})} for f in ly.fields]}
    if ly.note:
        d["note"] = ly.note
    if ly.details:
        d["details"] = [{"kind": o.kind, "name": o.name, "offset": o.offset,
                         "length": o.length, "value": _jsonable(o.value), "display": o.display,
                         "data": o.data.hex()}
                        if isinstance(o, TcpOption) else _jsonable(tuple(o))
                        for o in ly.details]
    return d


def _status_note(status: int) -> str:
    name = R.status_name(status)
    why = R.describe(f"PL_ST_{name}")
    return f"stops here: {name}" + (f" ({why})" if why else "")


def parse_fields(cls, frame: bytes, offset: int, end: int) -> list:
    """Fields of header ``cls`` at ``offset`` that fit before ``end`` (cast, then decoded)."""
    return cls.fields(frame, offset, end)


def walk(frame) -> Walk:
    """Walk ``frame``: the record (as walk_record) plus every layer, field by field.

    Layers follow the headers pl_parse() read, in order; bytes it did not read are shown as
    pseudo-layers: ``payload`` (with the L7 guess), ``padding`` (after the IP packet's end),
    ``unparsed`` (bytes of a protocol pktlab does not parse, or after the point where the walk
    stopped). Never raises.
    """
    if type(frame) is not bytes:
        frame = bytes(frame)
    trail: list = []
    rec = _make_parser()(frame, trail)
    layers: list = []
    n = len(frame)
    C = R.constants()
    _k, status, ip_end, _n = trail.pop()
    last_header = None
    for key, hdr, off, bound in trail:
        if key == "payload":
            layers.append(_payload_layer(frame, rec, off, bound))
            continue
        if key == "ipv6ext":
            proto = hdr
            hdr = H.next_header("ipproto", proto)
            name = H.IPV6_EXT_NAMES.get(proto, f"IPv6 ext {proto}")
        else:
            name = hdr.name
            if key == "vlan":
                tpid_at = off - 2
                name = "802.1ad S-tag" if frame[tpid_at:off] == b"\x88\xa8" else "802.1Q tag"
        ly = _header_layer(frame, rec, key, hdr, name, off, bound)
        layers.append(ly)
        last_header = ly
    # Where the walk stopped: say why on the layer it stopped at.
    if status and last_header is not None:
        sep = "; " if last_header.note else ""
        last_header.note = last_header.note + sep + _status_note(status)
    covered = max((ly.end for ly in layers), default=0)
    covered = min(covered, n)
    stop = min(ip_end, n)
    if covered < stop:
        layers.append(Layer("unparsed", covered, stop - covered,
                            [H.make_field("data", covered, stop - covered, frame[covered:stop],
                                          H.format_value("bytes", frame[covered:stop]))],
                            key="unparsed",
                            note="bytes pktlab does not parse (the walk stopped before them)"))
        covered = stop
    if covered < n:
        rest = frame[covered:n]
        if ip_end < n or rec.layer == C["PL_L_ARP"]:
            name, note = "padding", ("bytes after the end of the IP packet (Ethernet padding or a "
                                     "trailer): not part of the packet" if ip_end < n else
                                     "bytes after the ARP packet (padding to the 60-byte minimum)")
        else:
            name, note = "unparsed", "bytes the walk did not reach"
        layers.append(Layer(name, covered, n - covered,
                            [H.make_field("data", covered, n - covered, rest,
                                          H.format_value("bytes", rest))],
                            key=name, note=note))
    return Walk(frame, rec, layers)


def _header_layer(frame, rec, key, hdr, name, off, bound):
    n = len(frame)
    size = hdr.size()
    length = size
    note = ""
    details: list = []
    # The real length of variable-length headers, when the fixed part could be read.
    if key == "ipv4" and off + size <= n:
        ihl = (frame[off] & 15) * 4
        if ihl > size:
            length = ihl
    elif key == "tcp" and off + size <= bound:
        d = (frame[off + 12] >> 4) * 4
        if d > size:
            length = d
    elif key == "ipv6ext" and off + 8 <= bound:
        length = 8 if hdr is H.IPv6Frag else ((frame[off + 1] + 2) * 4 if hdr is H.AH
                                              else (frame[off + 1] + 1) * 8)
    elif key == "arp" and off + size <= n and frame[off + 4] == 6 and frame[off + 5] == 4:
        length = size + H.ARPEthIPv4.size()
    limit = min(bound, n)
    avail = max(0, min(off + length, limit) - off)
    if avail < size:
        note = f"truncated: {avail} of {size} bytes of the fixed header are inside the " + (
            "IP packet" if limit < n else "frame")
    fields = hdr.fields(frame, off, limit)
    if key == "ipv6ext":
        rest_at = off + size
        rest_end = min(off + length, limit)
        if rest_end > rest_at:
            fields.append(H.make_field("data" if hdr is not H.AH else "icv", rest_at,
                                       rest_end - rest_at, frame[rest_at:rest_end],
                                       H.format_value("bytes", frame[rest_at:rest_end])))
    elif key == "arp" and length > size:
        fields += H.ARPEthIPv4.fields(frame, off + size, limit)
    elif key == "ipv4" and length > size:
        o_end = min(off + length, limit)
        opts = parse_ipv4_options(frame[off + size:o_end], off + size)
        details = opts
        fields += [H.make_field(f"option {o.name}", o.offset, o.length, o.value, o.display)
                   for o in opts]
    elif key == "tcp" and length > size:
        o_end = min(off + length, limit)
        opts = parse_tcp_options(frame[off + size:o_end], off + size)
        details = opts
        fields += [H.make_field(f"option {o.name}", o.offset, o.length, o.value, o.display)
                   for o in opts]
        note = _record_options(rec)
    elif key in ("icmp", "icmpv6") and fields:
        t = fields[0].value
        echo = t in (0, 8) if key == "icmp" else t in (128, 129)
        if not echo:
            fields = [f if f.name not in ("id", "seq") else
                      f._replace(name="rest_of_header" if f.name == "id" else "rest_of_header+2")
                      for f in fields]
    if avail >= size and off + length > limit:
        note = (note + "; " if note else "") + (
            f"header says {length} bytes, only {limit - off} are inside the "
            + ("IP packet" if limit < n else "frame"))
    return Layer(name, off, avail, fields, key=key, note=note, details=details)


def _record_options(rec) -> str:
    """What the record carries of the TCP options (its tcp_*/mptcp_* fields), in words."""
    if not rec.tcp_opt_flags:
        return ""
    has = set(rec.tcp_opt_names)
    parts = []
    if "MSS" in has:
        parts.append(f"MSS {rec.tcp_mss}")
    if "WSCALE" in has:
        parts.append(f"window scale {rec.tcp_wscale}")
    if "SACK_PERM" in has:
        parts.append("SACK permitted")
    if "SACK" in has:
        parts.append(f"SACK {rec.tcp_sack_blocks} block" + "s" * (rec.tcp_sack_blocks != 1))
    if "TIMESTAMP" in has:
        parts.append(f"timestamps {rec.tcp_ts_val}/{rec.tcp_ts_ecr}")
    if "MPTCP" in has:
        mp = "MPTCP " + "+".join(rec.mptcp_subtype_names)
        if rec.mptcp_token:
            mp += f" token 0x{rec.mptcp_token:08x} ({rec.mptcp_token})"
        parts.append(mp)
    if "OTHER" in has:
        parts.append("others skipped")
    if "BAD" in has:
        parts.append("the walk stopped at a bad length")
    return "the record: " + ", ".join(parts)


def _payload_layer(frame, rec, off, end):
    data = frame[off:end]
    l7 = rec.l7_name
    fields = [H.make_field("data", off, len(data), data, H.format_value("bytes", data))]
    disp = l7
    if rec.l7 in (R.constants()["PL_L7_HTTP_REQUEST"], R.constants()["PL_L7_HTTP_RESPONSE"]):
        line = data.split(b"\r\n", 1)[0][:80]
        disp = f"{l7}: {line.decode('latin-1')!r}"
    fields.append(H.make_field("l7_guess", off, min(len(data), R.constants()["PL_PAYLOAD_PEEK"]),
                               rec.l7, disp))
    return Layer("Payload", off, len(data), fields, key="payload",
                 note=f"{len(data)} bytes; L7 guess: {l7}")


# --- seeing it -------------------------------------------------------------------------------

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
    """Accept bytes or a pktlab.packet.frames.Frame (which knows whether its Ethernet is
    synthetic)."""
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

    def option_rows(self) -> list:
        """(where, pktlab, scapy, remark) per TCP option; [] without options."""
        tcp = self.view.walk.layer_named("tcp")
        if tcp is None or not tcp.details:
            return []
        return option_rows(tcp.details, scapy_tcp_options(self.view.frame))

    def html(self) -> str:
        esc = html.escape
        return ('<div style="display:flex;gap:16px;align-items:flex-start;flex-wrap:wrap">'
                f'<div><div style="font-weight:bold;font-family:sans-serif">pktlab walker</div>'
                f"{self.view.html()}</div>"
                '<div><div style="font-weight:bold;font-family:sans-serif">scapy: '
                "Ether(data).show()</div>"
                '<pre style="font-size:12px;border:1px solid #ddd;padding:6px;margin:0">'
                f"{esc(self.scapy_text)}</pre></div></div>" + self._options_html())

    def _options_html(self) -> str:
        rows = self.option_rows()
        if not rows:
            return ""
        esc = html.escape
        cell = '<td style="padding:1px 8px;border-top:1px solid #eee">'
        body = "".join(f"<tr>{cell}{esc(w)}</td>{cell}{esc(a)}</td>{cell}<code>{esc(b)}</code>"
                       f'</td>{cell}<i>{esc(r)}</i></td></tr>' for w, a, b, r in rows)
        return ('<table style="font-family:monospace;font-size:12px;margin-top:8px">'
                '<tr><th colspan="4" style="text-align:left;font-family:sans-serif">TCP options'
                "</th></tr><tr><th>where</th><th>pktlab</th><th>scapy</th><th></th></tr>"
                f"{body}</table>")

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
        opts = self.option_rows()
        if opts:
            rows += ["", "TCP options: pktlab | scapy"]
            rows += [f"  {w:>5}  {a:<{width - 9}} | {b}" + (f"   ({r})" if r else "")
                     for w, a, b, r in opts]
        return "\n".join(rows)

    def __str__(self) -> str:
        return self.text(color=False)


def side_by_side(frame, title: Optional[str] = None, synthesized: bool = False) -> SideBySide:
    """pktlab's layers and scapy's dissection of ``frame`` side by side."""
    return SideBySide(frame, title, synthesized)
