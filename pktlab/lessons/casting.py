"""Casting, one header at a time: a header laid over a frame's bytes, field by field, after the
bounds check the C parser makes first; and the walker's layers of a frame.
"""

from .html import HTML, esc, table


def _header_cls(header):
    from ..packet import headers as H
    if isinstance(header, str):
        cls = getattr(H, header, None)
        if cls is None:
            raise ValueError(f"header {header!r}: one of Ethernet, VLAN, ARP, IPv4, IPv6, TCP, "
                             "UDP, ICMP, ICMPv6, IPv6Opt, IPv6Frag")
        return cls
    return header


def cast_table(header, frame, offset):
    """Cast ``frame[offset:]`` to ``header`` (a name or a pktlab.packet.headers class) and show it.

    Every field with its offset, length, raw bytes and meaning. The bounds check comes first,
    as in the C parser: a header that does not fit is not read (the table says which fields
    would lie past the end)."""
    cls = _header_cls(header)
    size = cls.size()
    fits = offset + size <= len(frame)
    check = (f"bounds check: offset {offset} + sizeof({cls.c_struct or cls.__name__}) = "
             f"{offset + size} {'<=' if fits else '>'} {len(frame)} bytes in the frame: "
             + ("the header fits, cast it" if fits else "TRUNCATED: the parser stops here"))
    rows = []
    for f in cls.fields(frame, offset, len(frame)):
        raw = bytes(frame[f.offset:f.offset + f.length]).hex(" ")
        bits = f" (bits {f.bit_offset}..{f.bit_offset + f.bit_length - 1})" if f.bit_length else ""
        rows.append([f.name, f"{f.offset}", f"{f.length}{bits}", raw, f.display])
    body = (f'<div class="{"pll-pass" if fits else "pll-fail"}">{esc(check)}</div>' +
            table(["field", "offset", "bytes", "raw", "value"], rows))
    if not fits:
        body += '<p class="pll-note">fields shown are the ones that lie wholly inside the frame</p>'
    return HTML(body, check)


def layers_table(frame):
    """The walker's layers of a frame: name, offset, length, and why the walk stopped."""
    from ..packet import walk
    w = walk(frame)
    rows = [[ly.name, ly.offset, ly.length, ly.end, ly.note] for ly in w.layers]
    head = f"<p><b>{esc(w.summary())}</b> ({len(w.frame)} bytes)</p>"
    return HTML(head + table(["layer", "offset", "length", "ends at", "note"], rows),
                w.summary())
