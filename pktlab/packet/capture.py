"""Capture files in and out: a streaming pcap/pcapng reader, and small writers.

``read_frames(path)`` is a generator of ``Frame`` objects: it holds one frame at a time, so a
capture of millions of frames reads in flat memory. It understands

- pcap: both byte orders, microsecond (0xa1b2c3d4) and nanosecond (0xa1b23c4d) timestamps;
- pcapng: sections in either byte order, several interfaces each with its own link type and
  ``if_tsresol``/``if_tsoffset``, Enhanced, Simple and (obsolete) Packet blocks; every other
  block type is skipped by its length;
- link types Ethernet (1), Linux cooked SLL (113) and SLL2 (276), raw IP (101, 228, 229). The
  pktlab walker and the lab's veth both speak Ethernet, so for the others an Ethernet header is
  synthesized (the EtherType from the cooked header or the IP version nibble; MACs zero except
  the cooked header's own link-layer address as the source) and the Frame says so
  (``synthesized_eth``, ``original_linktype``). Other link types are refused by name.

Errors are ``CaptureError`` (a ``PktlabError`` and a ``ValueError``) naming the file, the frame
number and the byte offset. With ``on_error=callback`` the reader is lenient: it reports each
``Problem`` and goes on where it can (a bad pcapng block is skipped by its length, a frame of a
refused link type is skipped, a file cut off in its last frame ends cleanly).

``write_pcap`` and ``write_pcapng`` write what the corpus generator needs, byte for byte the
same every run (no clocks, no host names).
"""

from __future__ import annotations

import io
import os
import shlex
import stat
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Optional, Union

from ..errors import CaptureError

__all__ = [
    "Frame", "Problem", "read_frames", "count_frames", "write_pcap", "write_pcapng",
    "PcapngInterface", "PcapngPacket", "LINKTYPE_NAMES", "SUPPORTED_LINKTYPES", "linktype_name",
    "UnsupportedLinkType", "CaptureError", "frames_from_bytes", "read_all",
    "Survey", "survey", "check_path", "no_frames_message",
]

# --- link types ------------------------------------------------------------------------------

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

#: Names from the tcpdump.org link-type registry, for messages ("refused: IEEE802_11 (105)").
LINKTYPE_NAMES = {
    0: "NULL (BSD loopback)", 1: "ETHERNET", 3: "AX25", 6: "IEEE802_5 (token ring)",
    7: "ARCNET_BSD", 8: "SLIP", 9: "PPP", 10: "FDDI", 12: "RAW (BSD; OpenBSD LOOP)",
    14: "RAW (OpenBSD)", 50: "PPP_HDLC", 51: "PPP_ETHER", 100: "ATM_RFC1483", 101: "RAW",
    104: "C_HDLC", 105: "IEEE802_11", 107: "FRELAY", 108: "LOOP (OpenBSD loopback)",
    113: "LINUX_SLL", 114: "LTALK", 117: "PFLOG", 119: "IEEE802_11_PRISM", 122: "IP_OVER_FC",
    123: "SUNATM", 127: "IEEE802_11_RADIOTAP", 129: "ARCNET_LINUX", 138: "APPLE_IP_OVER_IEEE1394",
    139: "MTP2_WITH_PHDR", 140: "MTP2", 141: "MTP3", 142: "SCCP", 143: "DOCSIS",
    144: "LINUX_IRDA", 163: "IEEE802_11_AVS", 165: "BACNET_MS_TP", 166: "PPP_PPPD",
    169: "GPRS_LLC", 177: "LINUX_LAPD", 187: "BLUETOOTH_HCI_H4", 189: "USB_LINUX",
    192: "PPI", 195: "IEEE802_15_4_WITHFCS", 196: "SITA", 197: "ERF", 201: "BLUETOOTH_HCI_H4_WITH_PHDR",
    202: "AX25_KISS", 203: "LAPD", 204: "PPP_WITH_DIR", 209: "IPMB_LINUX", 215: "IEEE802_15_4_NONASK_PHY",
    220: "USB_LINUX_MMAPPED", 224: "FC_2", 226: "IPNET", 227: "CAN_SOCKETCAN", 228: "IPV4",
    229: "IPV6", 230: "IEEE802_15_4_NOFCS", 231: "DBUS", 235: "DVB_CI", 239: "NFLOG",
    240: "NETANALYZER", 241: "NETANALYZER_TRANSPARENT", 242: "IPOIB", 243: "MPEG_2_TS",
    244: "NG40", 245: "NFC_LLCP", 247: "INFINIBAND", 248: "SCTP", 249: "USBPCAP",
    250: "RTAC_SERIAL", 251: "BLUETOOTH_LE_LL", 253: "NETLINK", 254: "BLUETOOTH_LINUX_MONITOR",
    255: "BLUETOOTH_BREDR_BB", 256: "BLUETOOTH_LE_LL_WITH_PHDR", 257: "PROFIBUS_DL",
    258: "PKTAP", 259: "EPON", 260: "IPMI_HPM_2", 261: "ZWAVE_R1_R2", 262: "ZWAVE_R3",
    263: "WATTSTOPPER_DLM", 264: "ISO_14443", 265: "RDS", 266: "USB_DARWIN", 268: "SDLC",
    270: "LORATAP", 271: "VSOCK", 272: "NORDIC_BLE", 273: "DOCSIS31_XRA31", 274: "ETHERNET_MPACKET",
    275: "DISPLAYPORT_AUX", 276: "LINUX_SLL2", 278: "OPENVIZSLA", 279: "EBHSCR", 281: "WIRESHARK_UPPER_PDU",
    282: "FIRA_UCI", 283: "MCTP", 284: "USB_2_0",
}
for _i in range(16):
    LINKTYPE_NAMES.setdefault(147 + _i, f"USER{_i}")

SUPPORTED_LINKTYPES = frozenset({LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL,
                                 LINKTYPE_LINUX_SLL2, LINKTYPE_IPV4, LINKTYPE_IPV6})


def linktype_name(lt: int) -> str:
    return f"{LINKTYPE_NAMES.get(lt, 'UNKNOWN')} ({lt})"


class UnsupportedLinkType(CaptureError):
    """Frames of a link type pktlab does not parse (e.g. 802.11 radiotap, BSD loopback)."""

    def __init__(self, message, linktype=0):
        super().__init__(message)
        self.linktype = linktype


# --- frames and problems -----------------------------------------------------------------------

@dataclass
class Frame:
    """One captured frame, its bytes always starting with an Ethernet header.

    ``caplen``/``wirelen`` are as recorded in the file (for the original link layer); ``data``
    is what pktlab parses: the captured bytes, or, for cooked/raw-IP captures, the bytes with a
    synthesized 14-byte Ethernet header in place of the cooked one (``synthesized_eth``).
    """
    index: int              # frame number, 1-based, in file order (as Wireshark counts)
    ts_ns: int
    caplen: int
    wirelen: int
    data: bytes
    linktype: int           # the link type recorded in the file for this frame's interface
    interface: int          # pcapng interface id (0 for pcap)
    offset: int             # byte offset of the frame's record/block in the file
    synthesized_eth: bool = False

    @property
    def truncated(self) -> bool:
        """The capture kept fewer bytes than were on the wire (snaplen)."""
        return self.caplen < self.wirelen

    @property
    def original_linktype(self) -> int:
        return self.linktype

    @property
    def original_linktype_name(self) -> str:
        return linktype_name(self.linktype)

    def __len__(self) -> int:
        return len(self.data)


class Problem(NamedTuple):
    """Something wrong in a capture, as the lenient reader reports it."""
    path: str
    frame: Optional[int]
    offset: int
    reason: str
    fatal: bool = False     # True: reading stops here
    hint: str = ""          # what to do about it (the strict error's next step)

    def message(self) -> str:
        where = f"frame {self.frame} at byte {self.offset}" if self.frame else f"byte {self.offset}"
        return f"capture {self.path}: {where}: {self.reason}"


OnError = Callable[[Problem], Any]

MAX_CAPLEN = 262144                 # libpcap's MAXIMUM_SNAPLEN
MAX_BLOCK = 16 * 1024 * 1024        # libpcap's limit on a pcapng block

PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAP_MAGIC_KUZNETZOV = 0xA1B2CD34
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_BOM = 0x1A2B3C4D
BT_IDB, BT_PB, BT_SPB, BT_EPB = 1, 2, 3, 6

_FIX_CORRUPT = ("the file is damaged; re-capture or re-export it (e.g. with editcap), or read it "
                "leniently with read_frames(path, on_error=...) to skip the damage")


class _Stop(Exception):
    """Internal: a fatal problem already reported in lenient mode."""


class _Ctx:
    """Shared error handling: strict mode raises, lenient mode reports and decides to go on."""

    __slots__ = ("path", "on_error")

    def __init__(self, path: str, on_error: Optional[OnError]):
        self.path = path
        self.on_error = on_error

    def problem(self, frame, offset, reason, fatal, hint=_FIX_CORRUPT, cls=CaptureError, **kw):
        p = Problem(self.path, frame, offset, reason, fatal, hint)
        if self.on_error is None:
            err = cls(f"{p.message()}; {hint}", **kw) if kw else cls(f"{p.message()}; {hint}")
            err.path, err.frame, err.offset, err.reason = self.path, frame, offset, reason
            raise err
        self.on_error(p)
        if fatal:
            raise _Stop()


# --- link-layer conversion ---------------------------------------------------------------------

_ZERO_MAC = bytes(6)
_SLL = struct.Struct(">HHH8sH")
_SLL2 = struct.Struct(">HHIHBB8s")
ARPHRD_ETHER = 1


def _ip_ethertype(data: bytes) -> int:
    v = data[0] >> 4 if data else 0
    return 0x0800 if v == 4 else 0x86DD if v == 6 else 0


def _to_ethernet(linktype: int, data: bytes) -> tuple[Optional[bytes], str]:
    """(Ethernet frame, '') or (None, why not) for a supported link type."""
    if linktype == LINKTYPE_ETHERNET:
        return data, ""
    if linktype == LINKTYPE_RAW:
        return _ZERO_MAC + _ZERO_MAC + _ip_ethertype(data).to_bytes(2, "big") + data, ""
    if linktype == LINKTYPE_IPV4:
        return _ZERO_MAC + _ZERO_MAC + b"\x08\x00" + data, ""
    if linktype == LINKTYPE_IPV6:
        return _ZERO_MAC + _ZERO_MAC + b"\x86\xdd" + data, ""
    if linktype == LINKTYPE_LINUX_SLL:
        if len(data) < _SLL.size:
            return None, f"{len(data)} bytes, shorter than the 16-byte Linux cooked (SLL) header"
        _ptype, hatype, halen, addr, proto = _SLL.unpack_from(data)
        src = addr[:6] if halen == 6 and hatype == ARPHRD_ETHER else _ZERO_MAC
        return _ZERO_MAC + src + proto.to_bytes(2, "big") + data[_SLL.size:], ""
    if linktype == LINKTYPE_LINUX_SLL2:
        if len(data) < _SLL2.size:
            return None, f"{len(data)} bytes, shorter than the 20-byte Linux cooked v2 (SLL2) header"
        proto, _res, _ifi, hatype, _ptype, halen, addr = _SLL2.unpack_from(data)
        src = addr[:6] if halen == 6 and hatype == ARPHRD_ETHER else _ZERO_MAC
        return _ZERO_MAC + src + proto.to_bytes(2, "big") + data[_SLL2.size:], ""
    return None, "unsupported"     # pragma: no cover - callers check SUPPORTED_LINKTYPES


def _refusal(linktype: int) -> str:
    return (f"link type {linktype_name(linktype)} is not one pktlab parses (it reads "
            "ETHERNET (1), LINUX_SLL (113), LINUX_SLL2 (276), RAW (101), IPV4 (228), IPV6 (229))")


_REFUSAL_HINT = ("capture on an Ethernet-like interface (or with `tcpdump -i any`, which writes "
                 "cooked SLL), or convert the file; frames of this link type are skipped only in "
                 "lenient mode (on_error=...)")


def _emit(ctx: _Ctx, refused: set, index, ts_ns, caplen, wirelen, data, linktype, iface, offset):
    """A Frame, or None when its link type is refused or its cooked header is short."""
    if linktype not in SUPPORTED_LINKTYPES:
        if (iface, linktype) not in refused:
            refused.add((iface, linktype))
            ctx.problem(index, offset, _refusal(linktype) + "; further frames of this interface "
                        "are skipped without another report", False, _REFUSAL_HINT,
                        cls=UnsupportedLinkType, linktype=linktype)
        return None
    eth, why = _to_ethernet(linktype, data)
    if eth is None:
        ctx.problem(index, offset, f"{linktype_name(linktype)} frame of {why}; the frame is "
                    "skipped", False, "the capture is malformed here; skip the frame (lenient "
                    "mode) or re-capture")
        return None
    return Frame(index, ts_ns, caplen, wirelen, eth, linktype, iface, offset,
                 linktype != LINKTYPE_ETHERNET)


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
    bo = "<"
    ifaces: list[_Iface] = []
    refused: set = set()
    offset, index = 0, 0
    first = True
    read = f.read
    while True:
        if first:
            hdr, first = head + read(4), False
        else:
            hdr = read(8)
        if not hdr:
            return
        if len(hdr) < 8:
            ctx.problem(index + 1, offset, f"the file ends inside a block header ({len(hdr)} of "
                        "8 bytes): the capture was cut off", True)
        if hdr[:4] == b"\x0a\x0d\x0d\x0a":        # a section starts: its own byte order
            bom = read(4)
            if len(bom) < 4:
                ctx.problem(None, offset, "the file ends inside a section header block", True)
            if bom == b"\x4d\x3c\x2b\x1a":
                bo = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                bo = ">"
            else:
                ctx.problem(None, offset, f"section header with a bad byte-order magic "
                            f"({bom.hex()}): not pcapng, or damaged", True)
            btype, blen = struct.unpack(bo + "II", hdr)
            pre = bom
        else:
            btype, blen = struct.unpack(bo + "II", hdr)
            pre = b""
        is_packet = btype in (BT_EPB, BT_SPB, BT_PB)
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
        if len(body) < blen - 12 or len(trail) < 4:
            if is_packet:
                index += 1
            ctx.problem(frame_no, offset, f"block type 0x{btype:08x} of {blen} bytes is cut off "
                        f"({8 + len(body) - len(pre) + len(trail)} bytes present): the capture "
                        "ends here", True)
        here, offset = offset, offset + blen
        if struct.unpack(bo + "I", trail)[0] != blen:
            if is_packet:
                index += 1
            ctx.problem(frame_no, here, f"block type 0x{btype:08x}: trailing length "
                        f"{struct.unpack(bo + 'I', trail)[0]} differs from the leading {blen}; "
                        "the block is skipped by its leading length", False)
            continue
        if btype == PCAPNG_SHB:
            if len(body) < 16:
                ctx.problem(None, here, "section header block too short", True)
            major = struct.unpack_from(bo + "H", body, 4)[0]
            if major != 1:
                ctx.problem(None, here, f"pcapng section version {major}; pktlab reads 1.x", True,
                            "re-export the capture with a current tool")
            ifaces = []
            continue
        if btype == BT_IDB:
            if len(body) < 8:
                ctx.problem(None, here, "interface description block shorter than 8 bytes; "
                            "the interface is taken as Ethernet", False)
                ifaces.append(_Iface(LINKTYPE_ETHERNET, 0))
                continue
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
                ctx.problem(None, here, f"interface {len(ifaces)}: malformed options ({e}); "
                            "defaults used", False)
            ifaces.append(itf)
            continue
        if not is_packet:
            continue                                          # NRB, ISB, DSB, custom...: skip
        index += 1
        if btype == BT_EPB or btype == BT_PB:
            if len(body) < 20:
                ctx.problem(index, here, f"packet block body of {len(body)} bytes, shorter than "
                            "its 20-byte fixed part; skipped", False)
                continue
            if btype == BT_EPB:
                iid, hi, lo, cap, orig = struct.unpack_from(bo + "IIIII", body)
            else:
                iid, _drops, hi, lo, cap, orig = struct.unpack_from(bo + "HHIIII", body)
            if cap > len(body) - 20:
                ctx.problem(index, here, f"captured length {cap} runs past the block "
                            f"({len(body) - 20} bytes of data); skipped", False)
                continue
            data = body[20:20 + cap]
            ts = (hi << 32) | lo
        else:
            if len(body) < 4:
                ctx.problem(index, here, "simple packet block without its length; skipped", False)
                continue
            iid, hi = 0, None
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
            continue
        itf = ifaces[iid]
        ts_ns = itf.ts_ns(ts) if ts is not None else 0
        fr = _emit(ctx, refused, index, ts_ns, cap, orig, data, itf.linktype, iid, here)
        if fr is not None:
            yield fr


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
        n = 0
        if head == b"\x0a\x0d\x0d\x0a":
            off, bo = 0, "<"
            while off < size:
                hdr = at(off, 12)
                if len(hdr) < 12:
                    ctx.problem(n + 1, off, "the file ends inside a block header", True)
                if hdr[:4] == b"\x0a\x0d\x0d\x0a":
                    bo = "<" if hdr[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
                btype, blen = struct.unpack_from(bo + "II", hdr)
                if blen < 12 or blen % 4 or blen > MAX_BLOCK or off + blen > size:
                    ctx.problem(n + 1, off, f"block type 0x{btype:08x} of claimed length {blen} "
                                "does not fit the file", True)
                if btype in (BT_EPB, BT_SPB, BT_PB):
                    n += 1
                off += blen
            return n
        m_le, m_be = int.from_bytes(head, "little"), int.from_bytes(head, "big")
        if m_le in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            bo = "<"
        elif m_be in (PCAP_MAGIC_US, PCAP_MAGIC_NS):
            bo = ">"
        else:
            _bad_magic(ctx, head)
        if size < 24:
            ctx.problem(None, 0, "cut off in the 24-byte pcap file header", True)
        off = 24
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
    finally:
        if close:
            f.close()


# --- checking a capture before anything is built on it ------------------------------------------

ETH_HLEN = 14
_VLAN_TPIDS = (b"\x81\x00", b"\x88\xa8")
#: problems a Survey keeps word for word (the others are only counted)
SURVEY_PROBLEMS = 20
_FIX_CORRUPT_CLI = "re-capture the traffic, or repair the file (editcap, Wireshark's Export)"


def check_path(path) -> os.stat_result:
    """The capture's stat, or CaptureError when the path cannot hold a capture to replay:
    missing, a directory, or not a regular file (a FIFO or a device would block or never end,
    and a replay reads its capture twice: once to check it, once to send it)."""
    p = os.fspath(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise CaptureError(f"no such capture: {p}; check the path (the bundled corpus is in "
                           "pcaps/, listed in pcaps/MANIFEST.json)") from None
    except OSError as e:
        raise CaptureError(f"capture {p}: cannot look at it ({e.strerror or e}); check the path "
                           "and that you may read it") from None
    if stat.S_ISDIR(st.st_mode):
        raise CaptureError(f"capture {p}: is a directory; name one .pcap or .pcapng file in it")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode) else
                "a character device" if stat.S_ISCHR(st.st_mode) else
                "a block device" if stat.S_ISBLK(st.st_mode) else
                "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
        raise CaptureError(f"capture {p}: is {kind}, not a regular file; a replay reads its "
                           "capture twice (a check before the lab is built, then the sends): "
                           "save the capture to a file first")
    return st


def _next_step(p: Problem) -> str:
    """The problem's next step in a user's words (the reader's own hints speak to callers of
    read_frames)."""
    if not p.hint or p.hint == _FIX_CORRUPT:
        return _FIX_CORRUPT_CLI
    if p.hint == _REFUSAL_HINT:
        return ("capture on an Ethernet-like interface (or with `tcpdump -i any`, which writes "
                "cooked SLL), or convert the file")
    return p.hint


def no_frames_message(path, problems) -> str:
    """One line saying why a capture gave no frame at all: the file, the cause, the next step.

    ``problems``: what the lenient reader reported, in order; the first one is the cause (a
    file that is not a capture, a link type pktlab refuses, a pcapng without an interface...)."""
    if not problems:
        return (f"capture {path}: holds no frames, only a file header; capture some traffic "
                "into it (tcpdump -w), or pick a capture from pcaps/")
    p = problems[0]
    if p.fatal and p.frame is None:
        return f"{p.message()}; {_next_step(p)}"
    if p.fatal:
        return f"{p.message()}; no frame before it is readable; {_next_step(p)}"
    return f"{p.message()}; no frame in the file is readable; {_next_step(p)}"


@dataclass
class Survey:
    """What a capture holds for a replay, read once, leniently (``survey()``).

    ``frames``: readable frames (at most ``limit``); ``sendable``: of those, the frames a lab of
    MTU ``mtu`` can put on its wire (an Ethernet header at least, MTU + 14 bytes at most, 4 more
    with a VLAN tag: the injector's own rule); ``damage``: the fatal problem reading stopped at
    (None: the file was read to its end, or to ``limit``)."""
    path: str
    limit: Optional[int] = None
    mtu: Optional[int] = None
    frames: int = 0
    sendable: int = 0
    too_short: int = 0
    too_long: int = 0
    problems: list = field(default_factory=list)     # the first SURVEY_PROBLEMS of them
    nproblems: int = 0
    damage: Optional[Problem] = None

    @property
    def complete(self) -> bool:
        return self.damage is None

    def refusal(self, need_sendable: bool = True) -> Optional[str]:
        """One line (the file, the cause, the next step) when a replay of this capture would
        mean nothing; None when it can go ahead."""
        if self.frames == 0:
            return no_frames_message(self.path, self.problems)
        if need_sendable and self.mtu is not None and self.sendable == 0:
            parts = []
            if self.too_short:
                parts.append(f"{self.too_short} shorter than an Ethernet header (14 bytes), "
                             "which the kernel refuses to send")
            if self.too_long:
                parts.append(f"{self.too_long} longer than a lab with MTU {self.mtu} carries")
            which = (f"the first {self.frames}" if self.limit is not None and
                     self.frames >= self.limit else f"its {self.frames}")
            fix = ("raise the lab's MTU (--mtu, up to 9000)" if self.too_long else
                   f"`pktlab cast {shlex.quote(self.path)}` shows how pktlab parses them")
            return (f"capture {self.path}: none of {which} frame(s) can be sent on a lab: "
                    f"{'; '.join(parts)}; {fix}")
        return None

    def note(self) -> Optional[str]:
        """One line for a capture damaged part-way: what is replayed and what is not."""
        if self.damage is None or self.frames == 0:
            return None
        return (f"{self.damage.message()}; the {self.frames} frame(s) before it are replayed, "
                f"the rest of the file is not ({_FIX_CORRUPT_CLI} to replay all of it)")

    def to_dict(self) -> dict:
        return {"frames": self.frames, "sendable": self.sendable, "complete": self.complete,
                "damage": self.damage.message() if self.damage else None,
                "problems": self.nproblems}


_last_survey: dict = {}


def survey(path, limit: Optional[int] = None, mtu: Optional[int] = None) -> Survey:
    """Read a capture file once, leniently, and say what a replay of it would have.

    Cheap (the data-only reader, ~1.3 us a frame) and never raises for damage, only for a path
    that cannot be a capture (check_path) or cannot be opened. The last answer is kept for an
    unchanged file (same inode, size and mtime), so the CLI's check and replay()'s own cost one
    read between them."""
    p = os.fspath(path)
    st = check_path(p)
    key = (p, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, limit, mtu)
    if _last_survey.get("key") == key:
        return _last_survey["survey"]
    s = Survey(p, limit, mtu)

    def on_error(pr: Problem):
        s.nproblems += 1
        if len(s.problems) < SURVEY_PROBLEMS:
            s.problems.append(pr)
        if pr.fatal:
            s.damage = pr
    max_frame = mtu + ETH_HLEN if mtu else None
    frames = short = long_ = 0
    it = read_frames(p, on_error=on_error, data_only=True)
    try:
        for d in it:
            frames += 1
            n = len(d)
            if n < ETH_HLEN:
                short += 1
            elif max_frame is not None and n > max_frame and not (
                    n <= max_frame + 4 and d[12:14] in _VLAN_TPIDS):
                long_ += 1
            if limit is not None and frames >= limit:
                break
    finally:
        it.close()
    s.frames, s.too_short, s.too_long = frames, short, long_
    s.sendable = frames - short - long_
    _last_survey.clear()
    _last_survey.update(key=key, survey=s)
    return s


# --- writers -----------------------------------------------------------------------------------

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


def read_all(path, on_error: Optional[OnError] = None) -> list[Frame]:
    """Every frame in a list (small files, tests); read_frames() streams."""
    return list(read_frames(path, on_error))


def frames_from_bytes(data: bytes, name: str = "<bytes>", on_error: Optional[OnError] = None):
    """Every frame of an in-memory capture (uploaded files, fuzzing), as a list."""
    buf = io.BytesIO(bytes(data))
    buf.name = name
    return list(read_frames(buf, on_error))
