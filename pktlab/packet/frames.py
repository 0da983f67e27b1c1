"""What reading a capture yields, whatever the format: frames, problems, link types.

- ``Frame``: one captured frame, its bytes always starting with an Ethernet header; ``Problem``:
  something wrong in a capture, as the lenient reader reports it.
- Link types: names from the tcpdump.org registry (for messages), the ones pktlab reads, and
  the conversion of cooked (SLL, SLL2) and raw-IP frames to Ethernet: the pktlab walker and the
  lab's veth both speak Ethernet, so for those an Ethernet header is synthesized (the EtherType
  from the cooked header or the IP version nibble; MACs zero except the cooked header's own
  link-layer address as the source) and the Frame says so (``synthesized_eth``,
  ``original_linktype``). Other link types are refused by name (``UnsupportedLinkType``).
- What the pcap and pcapng readers share: the format's limits and magic numbers, the
  strict-or-lenient error handling (``_Ctx``), and ``_emit``, which turns a record's bytes into a
  Frame.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional

from ..errors import CaptureError

__all__ = ["Frame", "Problem", "OnError", "LINKTYPE_NAMES", "SUPPORTED_LINKTYPES",
           "linktype_name", "UnsupportedLinkType"]

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
