"""Capture files in: a streaming pcap/pcapng reader.

``read_frames(path)`` is a generator of ``Frame`` objects (pktlab.packet.frames): it holds one
frame at a time, so a capture of millions of frames reads in flat memory. It understands

- pcap: both byte orders, microsecond (0xa1b2c3d4) and nanosecond (0xa1b23c4d) timestamps;
- pcapng (pktlab.packet.pcapng): sections in either byte order, several interfaces each with its
  own link type and ``if_tsresol``/``if_tsoffset``, Enhanced, Simple and (obsolete) Packet
  blocks; every other block type is skipped by its length;
- link types Ethernet (1), Linux cooked SLL (113) and SLL2 (276), raw IP (101, 228, 229), an
  Ethernet header synthesized for all but the first (pktlab.packet.frames says how). Other link
  types are refused by name.

Errors are ``CaptureError`` (a ``PktlabError`` and a ``ValueError``) naming the file, the frame
number and the byte offset. With ``on_error=callback`` the reader is lenient: it reports each
``Problem`` and goes on where it can (a bad pcapng block is skipped by its length, a frame of a
refused link type is skipped, a file cut off in its last frame ends cleanly).

``count_frames`` counts a file's frames from their headers. Writing captures:
pktlab.packet.write; checking one before a replay: pktlab.packet.survey.
"""

from __future__ import annotations

import io
import os
import shlex
import struct
from typing import Iterator, Optional, Union

from ..errors import CaptureError
from .frames import (LINKTYPE_ETHERNET, MAX_BLOCK, MAX_CAPLEN, PCAP_MAGIC_KUZNETZOV, PCAP_MAGIC_NS,
                     PCAP_MAGIC_US, Frame, OnError, _Ctx, _emit, _Stop)
from .pcapng import _count_pcapng, _read_pcapng

__all__ = ["read_frames", "count_frames", "read_all", "frames_from_bytes", "CaptureError"]

# --- the reader --------------------------------------------------------------------------------

def _open(source):
    """(file object, display name, close it?) for a path or an open binary file."""
    if hasattr(source, "read"):
        return source, str(getattr(source, "name", "<stream>")), False
    p = os.fspath(source)
    try:
        return open(p, "rb", buffering=1 << 16), p, True
    except OSError as e:
        raise CaptureError(f"capture {p}: cannot open it ({e.strerror or e}); check the path and "
                           "that you may read the file") from None


def read_frames(source, on_error: Optional[OnError] = None, data_only: bool = False
                ) -> Iterator[Union[Frame, bytes]]:
    """Yield every frame of a pcap or pcapng file (a path, or an open binary file).

    Frames always start with an Ethernet header (synthesized for cooked and raw-IP captures).
    Strict by default: the first problem raises CaptureError (file, frame number, byte offset,
    what to do). With ``on_error``, each problem is passed to it as a ``Problem`` and reading
    continues where the format allows; a fatal problem ends the generator cleanly.
    ``data_only``: yield each frame's bytes (``Frame.data``) instead of a Frame, with the same
    checks and reports (a replay needs only the bytes, and a million Frame objects cost).
    """
    f, name, close = _open(source)
    ctx = _Ctx(name, on_error)
    try:
        head = f.read(4)
        if len(head) < 4:
            ctx.problem(None, 0, f"the file has {len(head)} bytes: too short for a pcap or "
                        "pcapng header (empty or cut off)", True,
                        "point pktlab at a complete capture file")
        if head == b"\x0a\x0d\x0d\x0a":
            if data_only:
                yield from (fr.data for fr in _read_pcapng(f, ctx, head))
            else:
                yield from _read_pcapng(f, ctx, head)
        else:
            yield from _read_pcap(f, ctx, head, data_only)
    except _Stop:
        return
    finally:
        if close:
            f.close()


#: what a file that is not a capture most often is, by its first bytes: (magic, what, next step)
_NOT_CAPTURES = (
    (b"\x1f\x8b", "gzip-compressed", "gunzip it first (`gunzip -c {f} > capture.pcap`)"),
    (b"BZh", "bzip2-compressed", "bunzip2 it first (`bunzip2 -c {f} > capture.pcap`)"),
    (b"\xfd7zX", "xz-compressed", "unxz it first (`unxz -c {f} > capture.pcap`)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "unzstd it first (`zstd -dc {f} > capture.pcap`)"),
    (b"PK\x03\x04", "a zip archive", "unzip it first (`unzip {f}`) and name the capture inside"),
    (b"PK\x05\x06", "an empty zip archive", "name a .pcap or .pcapng file"),
    (b"\x7fELF", "a program (ELF)", "name a .pcap or .pcapng file"),
)


def _looks_like_text(head: bytes) -> bool:
    return bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)


def _bad_magic(ctx: _Ctx, head: bytes):
    hint = "point pktlab at a .pcap or .pcapng file (tcpdump -w, Wireshark's Save As)"
    for magic, what, fix in _NOT_CAPTURES:
        if head.startswith(magic):
            ctx.problem(None, 0, f"{what}, not a capture", True,
                        fix.format(f=shlex.quote(ctx.path)))
    if int.from_bytes(head, "little") == PCAP_MAGIC_KUZNETZOV or \
            int.from_bytes(head, "big") == PCAP_MAGIC_KUZNETZOV:
        reason = "a 'modified' (Kuznetzov) pcap, which pktlab does not read"
        hint = "convert it with `editcap -F pcap in out`"
    elif _looks_like_text(head):
        reason = (f"text, not a pcap or pcapng file (it starts with {head.decode('ascii')!r}; "
                  "a capture is binary)")
    else:
        reason = f"not a pcap or pcapng file (magic bytes {head.hex()})"
    ctx.problem(None, 0, reason, True, hint)


def _read_pcap(f, ctx: _Ctx, head: bytes, data_only: bool = False) -> Iterator[Frame]:
    m_le = int.from_bytes(head, "little")
    m_be = int.from_bytes(head, "big")
    if m_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        bo, magic = "<", m_le
    elif m_be in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        bo, magic = ">", m_be
    else:
        _bad_magic(ctx, head)
        return
    ns = magic == PCAP_MAGIC_NS
    rest = f.read(20)
    if len(rest) < 20:
        ctx.problem(None, 0, f"cut off in the 24-byte pcap file header ({4 + len(rest)} bytes)",
                    True)
    major, minor, _zone, _sigfigs, snaplen, network = struct.unpack(bo + "HHiIII", rest)
    if major != 2:
        ctx.problem(None, 4, f"pcap version {major}.{minor}; pktlab reads version 2.x", True,
                    "re-export the capture as a standard pcap (editcap -F pcap)")
    linktype = network & 0xFFFF
    limit = min(max(MAX_CAPLEN, snaplen), MAX_BLOCK)
    rec = struct.Struct(bo + "IIII")
    mult = 1 if ns else 1000
    refused: set = set()
    offset, index = 24, 0
    # Read in large chunks and slice: two read() calls per frame cost more than the parse.
    read = f.read
    chunk = 1 << 20
    buf, pos = b"", 0
    unpack_from = rec.unpack_from
    # Ethernet frames asked for as bytes: nothing to convert, no Frame to build
    bare = data_only and linktype == LINKTYPE_ETHERNET
    while True:
        if len(buf) - pos < 16:
            buf, pos = buf[pos:] + read(chunk), 0
            if not buf:
                return
        index += 1
        if len(buf) - pos < 16:
            ctx.problem(index, offset, f"the file ends inside this frame's 16-byte record header "
                        f"({len(buf) - pos} bytes present): the capture was cut off", True)
        sec, frac, incl, orig = unpack_from(buf, pos)
        if incl > limit:
            ctx.problem(index, offset, f"captured length {incl} exceeds the maximum {limit}; "
                        "the record header is garbage", True)
        end = pos + 16 + incl
        if end > len(buf):
            buf, pos = buf[pos:] + read(max(chunk, 16 + incl)), 0
            end = 16 + incl
            if end > len(buf):
                ctx.problem(index, offset, f"the record says {incl} captured bytes but only "
                            f"{len(buf) - 16} remain: the capture was cut off in its last frame",
                            True)
        data = buf[pos + 16:end]
        pos = end
        if bare:
            offset += 16 + incl
            yield data
            continue
        fr = _emit(ctx, refused, index, sec * 1_000_000_000 + frac * mult, incl, orig, data,
                   linktype, 0, offset)
        offset += 16 + incl
        if fr is not None:
            yield fr.data if data_only else fr



def count_frames(source) -> int:
    """Number of frames (packet records/blocks) in the file, reading headers only.

    Strict: a damaged file raises CaptureError. Frames of refused link types are counted too
    (they are in the file); read_frames() would refuse them.
    """
    f, name, close = _open(source)
    ctx = _Ctx(name, None)
    try:
        start = f.tell()
        size = f.seek(0, 2) - start
        f.seek(start)

        def at(off, n):
            f.seek(start + off)
            return f.read(n)

        head = at(0, 4)
        if len(head) < 4:
            ctx.problem(None, 0, f"the file has {len(head)} bytes: too short for a pcap or "
                        "pcapng header", True, "point pktlab at a complete capture file")
        if head == b"\x0a\x0d\x0d\x0a":
            return _count_pcapng(at, size, ctx)
        return _count_pcap(at, size, ctx, head)
    finally:
        if close:
            f.close()


def _count_pcap(at, size: int, ctx: _Ctx, head: bytes) -> int:
    """count_frames() of a classic pcap file (``at(offset, n)`` reads n bytes at offset)."""
    m_le, m_be = int.from_bytes(head, "little"), int.from_bytes(head, "big")
    if m_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        bo = "<"
    elif m_be in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
        bo = ">"
    else:
        _bad_magic(ctx, head)
    if size < 24:
        ctx.problem(None, 0, "cut off in the 24-byte pcap file header", True)
    n, off = 0, 24
    rec = struct.Struct(bo + "8xI")
    while off < size:
        hdr = at(off, 12)
        if len(hdr) < 12:
            ctx.problem(n + 1, off, "the file ends inside a record header", True)
        incl = rec.unpack(hdr)[0]
        if incl > MAX_BLOCK or off + 16 + incl > size:
            ctx.problem(n + 1, off, f"record of {incl} bytes does not fit the file", True)
        n += 1
        off += 16 + incl
    return n


def read_all(path, on_error: Optional[OnError] = None) -> list[Frame]:
    """Every frame in a list (small files, tests); read_frames() streams."""
    return list(read_frames(path, on_error))


def frames_from_bytes(data: bytes, name: str = "<bytes>", on_error: Optional[OnError] = None):
    """Every frame of an in-memory capture (uploaded files, fuzzing), as a list."""
    buf = io.BytesIO(bytes(data))
    buf.name = name
    return list(read_frames(buf, on_error))
