"""Reading pcapng: blocks, sections, interfaces, packets.

Sections may be in either byte order; each has its interfaces, each with its own link type
and ``if_tsresol``/``if_tsoffset``. Enhanced, Simple and (obsolete) Packet blocks are frames;
every other block type is skipped by its length. A block whose trailing length differs from its
leading one is skipped (lenient mode); a block that does not fit the file ends the reading.

pktlab.packet.capture.read_frames() is the way in; errors and problems are those of
pktlab.packet.frames.
"""

from __future__ import annotations

import struct
from typing import Iterator, Optional

from .frames import (BT_EPB, BT_IDB, BT_PB, BT_SPB, LINKTYPE_ETHERNET, MAX_BLOCK, PCAPNG_SHB, Frame,
                     _Ctx, _emit)

_PACKET_BLOCKS = (BT_EPB, BT_SPB, BT_PB)
_SHB_MAGIC = b"\x0a\x0d\x0d\x0a"


class _Iface:
    __slots__ = ("linktype", "snaplen", "num", "den", "offset_s")

    def __init__(self, linktype, snaplen):
        self.linktype, self.snaplen = linktype, snaplen
        self.num, self.den = 1000, 1      # default resolution: microseconds
        self.offset_s = 0

    def ts_ns(self, ts: int) -> int:
        return self.offset_s * 1_000_000_000 + ts * self.num // self.den


def _options(body: bytes, start: int, bo: str) -> Iterator[tuple[int, bytes]]:
    """(code, value) of a pcapng option list; raises ValueError when it is malformed."""
    i, n = start, len(body)
    while i + 4 <= n:
        code, ln = struct.unpack_from(bo + "HH", body, i)
        i += 4
        if code == 0:
            return
        if i + ln > n:
            raise ValueError(f"option {code} of {ln} bytes runs past the block")
        yield code, body[i:i + ln]
        i += (ln + 3) & ~3


def _read_pcapng(f, ctx: _Ctx, head: bytes) -> Iterator[Frame]:
    """The frames of a pcapng file whose first 4 bytes (``head``) were read already."""
    ifaces: list[_Iface] = []
    refused: set = set()
    for btype, body, bo, here, index in _blocks(f, ctx, head):
        if index is not None:
            fr = _packet(ctx, refused, btype, body, bo, here, index, ifaces)
            if fr is not None:
                yield fr
        elif btype == PCAPNG_SHB:
            _check_section(ctx, body, bo, here)
            ifaces = []
        elif btype == BT_IDB:
            ifaces.append(_interface(ctx, body, bo, here, len(ifaces)))


def _blocks(f, ctx: _Ctx, head: bytes):
    """(type, body, byte order, offset, frame number) of every block that is whole and whose
    trailing length matches; the frame number of a packet block counts the packet blocks so
    far, the skipped one included (None for other blocks). The body of a section header
    starts with its byte-order magic."""
    bo = "<"
    offset, index = 0, 0
    read, unpack, packets = f.read, struct.unpack, _PACKET_BLOCKS
    hdr = head + read(4)
    while hdr:
        if len(hdr) < 8:
            ctx.problem(index + 1, offset, f"the file ends inside a block header ({len(hdr)} of "
                        "8 bytes): the capture was cut off", True)
        pre = b""
        if hdr[:4] == _SHB_MAGIC:        # a section starts: its own byte order
            bo, pre = _section_byte_order(read, ctx, offset)
        btype, blen = unpack(bo + "II", hdr)
        is_packet = btype in packets
        frame_no = index + 1 if is_packet else None
        if blen < 12 or blen % 4 or blen > MAX_BLOCK:
            ctx.problem(frame_no, offset, f"block type 0x{btype:08x} claims a total length of "
                        f"{blen} bytes (must be a multiple of 4 between 12 and {MAX_BLOCK}); "
                        "the blocks after it cannot be found", True)
        if pre and blen < 28:
            ctx.problem(None, offset, f"section header block of {blen} bytes, shorter than its "
                        "28-byte minimum", True)
        body = pre + read(blen - 12 - len(pre))
        trail = read(4)
        if is_packet:
            index += 1
        if len(body) < blen - 12 or len(trail) < 4:
            ctx.problem(frame_no, offset, f"block type 0x{btype:08x} of {blen} bytes is cut off "
                        f"({8 + len(body) - len(pre) + len(trail)} bytes present): the capture "
                        "ends here", True)
        here, offset = offset, offset + blen
        if unpack(bo + "I", trail)[0] != blen:
            ctx.problem(frame_no, here, f"block type 0x{btype:08x}: trailing length "
                        f"{struct.unpack(bo + 'I', trail)[0]} differs from the leading {blen}; "
                        "the block is skipped by its leading length", False)
        else:
            yield btype, body, bo, here, frame_no
        hdr = read(8)


def _section_byte_order(read, ctx: _Ctx, offset: int) -> tuple[str, bytes]:
    """The byte order of the section starting at ``offset`` ("<" or ">"), from the magic after
    its block header (returned too: it is the start of the block's body)."""
    bom = read(4)
    if len(bom) < 4:
        ctx.problem(None, offset, "the file ends inside a section header block", True)
    if bom == b"\x4d\x3c\x2b\x1a":
        return "<", bom
    if bom == b"\x1a\x2b\x3c\x4d":
        return ">", bom
    ctx.problem(None, offset, f"section header with a bad byte-order magic ({bom.hex()}): not "
                "pcapng, or damaged", True)


def _check_section(ctx: _Ctx, body: bytes, bo: str, here: int):
    if len(body) < 16:
        ctx.problem(None, here, "section header block too short", True)
    major = struct.unpack_from(bo + "H", body, 4)[0]
    if major != 1:
        ctx.problem(None, here, f"pcapng section version {major}; pktlab reads 1.x", True,
                    "re-export the capture with a current tool")


def _interface(ctx: _Ctx, body: bytes, bo: str, here: int, number: int) -> _Iface:
    """Interface ``number`` of the section, from its Interface Description Block: link type,
    snaplen, and the if_tsresol/if_tsoffset options (defaults when they are malformed)."""
    if len(body) < 8:
        ctx.problem(None, here, "interface description block shorter than 8 bytes; "
                    "the interface is taken as Ethernet", False)
        return _Iface(LINKTYPE_ETHERNET, 0)
    lt, _res, snap = struct.unpack_from(bo + "HHI", body)
    itf = _Iface(lt, snap)
    try:
        for code, val in _options(body, 8, bo):
            if code == 9 and len(val) >= 1:          # if_tsresol
                r = val[0]
                if r & 0x80:
                    itf.num, itf.den = 1_000_000_000, 1 << (r & 0x7F)
                else:
                    e = r & 0x7F
                    if e <= 9:
                        itf.num, itf.den = 10 ** (9 - e), 1
                    else:
                        itf.num, itf.den = 1, 10 ** (e - 9)
            elif code == 14 and len(val) >= 8:       # if_tsoffset (seconds)
                itf.offset_s = struct.unpack_from(bo + "q", val)[0]
    except ValueError as e:
        ctx.problem(None, here, f"interface {number}: malformed options ({e}); defaults used",
                    False)
    return itf


def _packet(ctx: _Ctx, refused: set, btype: int, body: bytes, bo: str, here: int, index: int,
            ifaces: list) -> Optional[Frame]:
    """The Frame of packet block number ``index``, or None when it is skipped (the problem
    reported)."""
    if btype == BT_EPB or btype == BT_PB:
        if len(body) < 20:
            ctx.problem(index, here, f"packet block body of {len(body)} bytes, shorter than "
                        "its 20-byte fixed part; skipped", False)
            return None
        if btype == BT_EPB:
            iid, hi, lo, cap, orig = struct.unpack_from(bo + "IIIII", body)
        else:
            iid, _drops, hi, lo, cap, orig = struct.unpack_from(bo + "HHIIII", body)
        if cap > len(body) - 20:
            ctx.problem(index, here, f"captured length {cap} runs past the block "
                        f"({len(body) - 20} bytes of data); skipped", False)
            return None
        data = body[20:20 + cap]
        ts = (hi << 32) | lo
    else:
        if len(body) < 4:
            ctx.problem(index, here, "simple packet block without its length; skipped", False)
            return None
        iid = 0
        orig = struct.unpack_from(bo + "I", body)[0]
        cap = min(orig, len(body) - 4)
        if ifaces and ifaces[0].snaplen:
            cap = min(cap, ifaces[0].snaplen)
        data = body[4:4 + cap]
        ts = None
    if iid >= len(ifaces):
        ctx.problem(index, here, f"packet of interface {iid}, but the section declares "
                    f"{len(ifaces)} interface(s) (no Interface Description Block for it); "
                    "skipped", False, "the pcapng file is malformed; re-export it with "
                    "Wireshark or `editcap -F pcapng`")
        return None
    itf = ifaces[iid]
    ts_ns = itf.ts_ns(ts) if ts is not None else 0
    return _emit(ctx, refused, index, ts_ns, cap, orig, data, itf.linktype, iid, here)


def _count_pcapng(at, size: int, ctx: _Ctx) -> int:
    """count_frames() of a pcapng file: its packet blocks, read by their headers only
    (``at(offset, n)`` reads n bytes at offset)."""
    n, off, bo = 0, 0, "<"
    while off < size:
        hdr = at(off, 12)
        if len(hdr) < 12:
            ctx.problem(n + 1, off, "the file ends inside a block header", True)
        if hdr[:4] == _SHB_MAGIC:
            bo = "<" if hdr[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        btype, blen = struct.unpack_from(bo + "II", hdr)
        if blen < 12 or blen % 4 or blen > MAX_BLOCK or off + blen > size:
            ctx.problem(n + 1, off, f"block type 0x{btype:08x} of claimed length {blen} "
                        "does not fit the file", True)
        if btype in _PACKET_BLOCKS:
            n += 1
        off += blen
    return n
