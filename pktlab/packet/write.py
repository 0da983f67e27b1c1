"""Capture files out: small writers of pcap and pcapng.

``write_pcap`` and ``write_pcapng`` write what the corpus generator (pcaps/generate.py) and the
tests need, byte for byte the same every run (no clocks, no host names).
"""

from __future__ import annotations

import os
import struct
from typing import Iterable, NamedTuple, Optional

from .frames import (BT_EPB, BT_IDB, BT_SPB, LINKTYPE_ETHERNET, MAX_CAPLEN, PCAP_MAGIC_NS,
                     PCAP_MAGIC_US, PCAPNG_BOM, PCAPNG_SHB, Frame)

__all__ = ["write_pcap", "write_pcapng", "PcapngInterface", "PcapngPacket"]


def _frame_parts(item, default_ts):
    """(ts_ns, data, wirelen) from bytes, a Frame, or a (ts_ns, data[, wirelen]) tuple."""
    if isinstance(item, (bytes, bytearray, memoryview)):
        d = bytes(item)
        return default_ts, d, len(d)
    if isinstance(item, Frame):
        return item.ts_ns, item.data, max(item.wirelen, len(item.data))
    ts, d = item[0], bytes(item[1])
    wl = item[2] if len(item) > 2 and item[2] is not None else len(d)
    return ts, d, wl


def write_pcap(path, frames: Iterable, linktype: int = LINKTYPE_ETHERNET, nanosecond: bool = False,
               snaplen: int = MAX_CAPLEN, byteorder: str = "little") -> int:
    """Write a classic pcap; returns the number of frames.

    ``frames``: bytes (timestamps 1 s apart from 0), or (ts_ns, data) / (ts_ns, data, wirelen)
    tuples, or Frame objects. A wirelen above len(data) records a snaplen-truncated frame.
    """
    bo = "<" if byteorder == "little" else ">"
    n = 0
    with open(os.fspath(path), "wb") as f:
        f.write(struct.pack(bo + "IHHiIII", PCAP_MAGIC_NS if nanosecond else PCAP_MAGIC_US,
                            2, 4, 0, 0, snaplen, linktype))
        for item in frames:
            ts, d, wl = _frame_parts(item, n * 1_000_000_000)
            sec, rem = divmod(ts, 1_000_000_000)
            frac = rem if nanosecond else rem // 1000
            f.write(struct.pack(bo + "IIII", sec, frac, len(d), wl))
            f.write(d)
            n += 1
    return n


class PcapngInterface(NamedTuple):
    linktype: int = LINKTYPE_ETHERNET
    snaplen: int = 0
    tsresol: int = 6            # if_tsresol byte: 6 = microseconds, 9 = nanoseconds
    name: Optional[str] = None


class PcapngPacket(NamedTuple):
    interface: int
    ts_ns: int
    data: bytes
    wirelen: Optional[int] = None


def _pad4(b: bytes) -> bytes:
    return b + bytes(-len(b) % 4)


def _opt(bo, code, val: bytes) -> bytes:
    return struct.pack(bo + "HH", code, len(val)) + _pad4(val)


def _block(bo, btype, body: bytes) -> bytes:
    body = _pad4(body)
    total = 12 + len(body)
    return struct.pack(bo + "II", btype, total) + body + struct.pack(bo + "I", total)


def write_pcapng(path, interfaces: Iterable, packets: Iterable, byteorder: str = "little",
                 simple: bool = False, comment: Optional[str] = None) -> int:
    """Write a one-section pcapng; returns the number of packets.

    ``interfaces``: PcapngInterface items (link type, snaplen, if_tsresol exponent, name);
    ``packets``: PcapngPacket items (interface id, ts_ns, data, wirelen). ``simple=True`` writes
    Simple Packet Blocks (interface 0 only, no timestamps) instead of Enhanced ones.
    """
    bo = "<" if byteorder == "little" else ">"
    ifs = [PcapngInterface(*i) if not isinstance(i, PcapngInterface) else i for i in interfaces]
    n = 0
    with open(os.fspath(path), "wb") as f:
        opts = b""
        if comment:
            opts += _opt(bo, 1, comment.encode())
        opts += _opt(bo, 4, b"pktlab") + (_opt(bo, 0, b"") if opts else b"")
        f.write(_block(bo, PCAPNG_SHB, struct.pack(bo + "IHHq", PCAPNG_BOM, 1, 0, -1) + opts))
        for itf in ifs:
            o = _opt(bo, 9, bytes([itf.tsresol]))
            if itf.name:
                o = _opt(bo, 2, itf.name.encode()) + o
            o += _opt(bo, 0, b"")
            f.write(_block(bo, BT_IDB, struct.pack(bo + "HHI", itf.linktype, 0, itf.snaplen) + o))
        for pk in packets:
            pk = pk if isinstance(pk, PcapngPacket) else PcapngPacket(*pk)
            d = bytes(pk.data)
            wl = pk.wirelen if pk.wirelen is not None else len(d)
            if simple:
                f.write(_block(bo, BT_SPB, struct.pack(bo + "I", wl) + d))
            else:
                r = ifs[pk.interface].tsresol
                units = pk.ts_ns // (10 ** (9 - r)) if r <= 9 else pk.ts_ns
                f.write(_block(bo, BT_EPB, struct.pack(bo + "IIIII", pk.interface, units >> 32,
                                                       units & 0xFFFFFFFF, len(d), wl) + d))
            n += 1
    return n
