"""Declarative packet headers: the byte layouts the walker casts frames to.

Each header is a ctypes ``BigEndianStructure`` (network byte order) whose ``_fields_`` are
generated from one ``fields_desc`` list, scapy style: name, width (the ctypes type), and how to
display the value (hex, dec, enum name, flags, MAC, IP). Sub-byte fields (IPv4 IHL, TCP data
offset, VLAN PCP/DEI/VID...) are declared as ``Bits`` of the integer that holds them, exactly
like the C structs in bpf_snippets/pktlab_parse.h, which read e.g. ``ver_ihl`` as one byte and
shift. Keeping the storage identical to the C structs is what lets the walker be the C parser's
twin; keeping the display next to it is what lets a lesson show every bit with its meaning.

One dispatch table (``NEXT_HEADER``) maps an EtherType or an IP protocol number to the header
that follows, like scapy's ``bind_layers``. The walker and the views both use it.

The option lists of TCP and IPv4, decoded for display: pktlab.packet.options.
"""

from __future__ import annotations

import ctypes
import functools
import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple, Optional, Sequence

__all__ = [
    "Bits", "FieldDesc", "Field", "Layer", "Header", "Ethernet", "VLAN", "ARP", "ARPEthIPv4",
    "IPv4", "IPv6", "IPv6Opt", "IPv6Frag", "AH", "TCP", "UDP", "ICMP", "ICMPv6",
    "NEXT_HEADER", "next_header", "ETHERTYPES", "IPPROTOS", "ICMP_TYPES", "ICMPV6_TYPES",
    "ARP_OPS", "TCP_FLAGS", "format_value", "IPV6_EXT_NAMES",
]

U8, U16, U32 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32


def BYTES(n: int):
    """n raw bytes (addresses, opaque data): endianness does not apply."""
    return ctypes.c_uint8 * n


# --- well-known numbers (IANA), for the dispatch table and for display ------------------------

ETH_P_IP, ETH_P_ARP, ETH_P_8021Q, ETH_P_8021AD, ETH_P_IPV6 = 0x0800, 0x0806, 0x8100, 0x88A8, 0x86DD

ETHERTYPES: Mapping[int, str] = {
    0x0800: "IPv4", 0x0806: "ARP", 0x8035: "RARP", 0x8100: "802.1Q", 0x88A8: "802.1ad",
    0x9100: "802.1Q-in-Q (old)", 0x86DD: "IPv6", 0x8847: "MPLS", 0x8848: "MPLS multicast",
    0x8863: "PPPoE discovery", 0x8864: "PPPoE session", 0x888E: "EAPOL", 0x88CC: "LLDP",
    0x88E5: "MACsec", 0x88F7: "PTP", 0x8809: "slow protocols (LACP)", 0x88B5: "local experimental 1",
    0x88B6: "local experimental 2", 0x0842: "Wake-on-LAN", 0x22F0: "AVTP", 0x8906: "FCoE",
}

IPPROTO_HOPOPTS, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 0, 1, 6, 17
IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_AH, IPPROTO_ICMPV6, IPPROTO_DSTOPTS = 43, 44, 51, 58, 60

IPPROTOS: Mapping[int, str] = {
    0: "HOPOPT", 1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 17: "UDP", 41: "IPv6", 43: "IPv6-Route",
    44: "IPv6-Frag", 47: "GRE", 50: "ESP", 51: "AH", 58: "ICMPv6", 59: "IPv6-NoNxt",
    60: "IPv6-Opts", 89: "OSPF", 103: "PIM", 112: "VRRP", 132: "SCTP", 135: "Mobility",
    136: "UDPLite", 137: "MPLS-in-IP", 143: "Ethernet", 253: "experimental", 254: "experimental",
}

IPV6_EXT_NAMES: Mapping[int, str] = {
    0: "IPv6 Hop-by-Hop", 43: "IPv6 Routing", 44: "IPv6 Fragment", 60: "IPv6 Dest Options",
    51: "AH",
}

ICMP_TYPES: Mapping[int, str] = {
    0: "echo-reply", 3: "dest-unreachable", 4: "source-quench", 5: "redirect", 8: "echo-request",
    9: "router-advertisement", 10: "router-solicitation", 11: "time-exceeded",
    12: "parameter-problem", 13: "timestamp", 14: "timestamp-reply",
}

ICMPV6_TYPES: Mapping[int, str] = {
    1: "dest-unreachable", 2: "packet-too-big", 3: "time-exceeded", 4: "parameter-problem",
    128: "echo-request", 129: "echo-reply", 130: "mld-query", 131: "mld-report",
    132: "mld-done", 133: "router-solicitation", 134: "router-advertisement",
    135: "neighbor-solicitation", 136: "neighbor-advertisement", 137: "redirect",
    143: "mldv2-report",
}

ARP_OPS: Mapping[int, str] = {1: "request", 2: "reply", 3: "rarp-request", 4: "rarp-reply"}
ARP_HTYPES: Mapping[int, str] = {1: "Ethernet", 6: "IEEE 802", 32: "InfiniBand"}

#: bit -> name, lowest bit first (the order tcpdump prints them in)
TCP_FLAGS: Sequence[tuple[int, str]] = (
    (0x01, "FIN"), (0x02, "SYN"), (0x04, "RST"), (0x08, "PSH"), (0x10, "ACK"), (0x20, "URG"),
    (0x40, "ECE"), (0x80, "CWR"))
IP_FLAGS: Sequence[tuple[int, str]] = ((0x4, "reserved"), (0x2, "DF"), (0x1, "MF"))
IPV6_FRAG_M: Sequence[tuple[int, str]] = ((0x1, "M"),)


# --- declarations ------------------------------------------------------------------------------

class Bits(NamedTuple):
    """A sub-field of an integer field, most significant bits first (wire order)."""
    name: str
    width: int
    display: str = "dec"
    enum: Any = None          # Mapping for "enum", sequence of (bit, name) for "flags"
    unit: int = 0             # "dec" values that count units of `unit` bytes (IHL, doff, frag)


class FieldDesc(NamedTuple):
    """One member of a header: its C name, ctypes type (the width), and display."""
    name: str
    ctype: Any
    display: str = "dec"      # dec, hex, enum, flags, mac, ipv4, ipv6, bytes
    enum: Any = None
    bits: Sequence[Bits] = ()


class Field(NamedTuple):
    """A decoded field of one frame: where it sits, its value, and how it reads.

    ``offset``/``length`` are bytes from the start of the frame (the bytes that hold the
    field). Sub-byte fields also give ``bit_offset`` (0 = most significant bit of the byte at
    ``offset``) and ``bit_length``.
    """
    name: str
    offset: int
    length: int
    value: Any
    display: str
    bit_offset: Optional[int] = None
    bit_length: Optional[int] = None


@dataclass
class Layer:
    """One header (or pseudo-layer: payload, padding, unparsed bytes) of a walked frame."""
    name: str
    offset: int
    length: int
    fields: list = field(default_factory=list)
    key: str = ""             # colour/family key: eth, vlan, arp, ipv4, ipv6, ipv6ext, tcp, ...
    note: str = ""            # why the walk stopped here, truncation, synthesized header...
    details: list = field(default_factory=list)   # e.g. TCP options (options.TcpOption)

    @property
    def end(self) -> int:
        return self.offset + self.length


def format_value(display: str, value: Any, enum: Any = None, unit: int = 0, width: int = 0) -> str:
    """Text for a value the way a packet tool shows it (enum names, flag lists, addresses)."""
    try:
        if display == "dec":
            return f"{value} ({value * unit} bytes)" if unit else str(value)
        if display == "hex":
            digits = max(1, (width + 3) // 4) if width else 1
            return f"0x{value:0{digits}x}"
        if display == "enum":
            name = enum.get(value) if enum else None
            hexv = f"0x{value:04x}" if width >= 16 else str(value)
            return f"{name} ({hexv})" if name else f"{hexv} (unknown)"
        if display == "flags":
            names = [n for bit, n in enum if value & bit]
            return f"0x{value:02x} [{' '.join(names)}]" if names else f"0x{value:02x}"
        if display == "mac":
            return ":".join(f"{b:02x}" for b in value)
        if display == "ipv4":
            return str(ipaddress.IPv4Address(bytes(value)))
        if display == "ipv6":
            return str(ipaddress.IPv6Address(bytes(value)))
        if display == "bytes":
            b = bytes(value)
            return b.hex(" ") if len(b) <= 16 else b[:16].hex(" ") + f" ... ({len(b)} bytes)"
    except (TypeError, ValueError, AttributeError):
        pass
    return repr(value)


class Header(ctypes.BigEndianStructure):
    """Base of every header: a big-endian ctypes structure plus display metadata.

    Subclasses set ``fields_desc`` and are finished by ``@header``, which derives ``_fields_``
    from it, so the byte layout and the display are declared in one place.
    """
    name = "header"
    key = ""
    c_struct = ""
    fields_desc: Sequence[FieldDesc] = ()

    @classmethod
    def size(cls) -> int:
        return ctypes.sizeof(cls)

    @classmethod
    def struct_format(cls) -> str:
        """The ``struct`` format with this exact layout, derived from ``_fields_``."""
        return _struct_of(cls).format

    @classmethod
    def unpack_from(cls, buf, offset: int = 0) -> tuple:
        """All members at once, as ``struct`` would: the walker's fast read of the same layout."""
        return _struct_of(cls).unpack_from(buf, offset)

    @classmethod
    def unpacker(cls):
        """The bound ``struct.Struct.unpack_from`` of this layout (hot loops keep it local)."""
        return _struct_of(cls).unpack_from

    @classmethod
    def cast(cls, buf, offset: int = 0) -> "Header":
        """The header at buf[offset:], as a structure (zero-filled past the end of buf)."""
        size = ctypes.sizeof(cls)
        mv = memoryview(buf)[offset: offset + size]
        if len(mv) == size:
            return cls.from_buffer_copy(mv)
        return cls.from_buffer_copy(bytes(mv) + bytes(size - len(mv)))

    @classmethod
    def fields(cls, buf, offset: int, end: int | None = None) -> list[Field]:
        """The decoded fields of the header at ``offset``, those that lie wholly before ``end``."""
        limit = len(buf) if end is None else min(end, len(buf))
        avail = limit - offset
        h = cls.cast(buf, offset)
        out: list[Field] = []
        for fd in cls.fields_desc:
            cf = getattr(cls, fd.name)
            if cf.offset + cf.size > avail:
                break
            v = getattr(h, fd.name)
            if isinstance(v, ctypes.Array):
                v = bytes(v)
            at = offset + cf.offset
            if fd.bits:
                total, pos = cf.size * 8, 0
                for b in fd.bits:
                    bv = (v >> (total - pos - b.width)) & ((1 << b.width) - 1)
                    out.append(Field(b.name, at + pos // 8, (pos % 8 + b.width + 7) // 8, bv,
                                     format_value(b.display, bv, b.enum, b.unit, b.width),
                                     pos % 8, b.width))
                    pos += b.width
            else:
                out.append(Field(fd.name, at, cf.size, v,
                                 format_value(fd.display, v, fd.enum, 0, cf.size * 8)))
        return out


_STRUCT_CHAR = {1: "B", 2: "H", 4: "I", 8: "Q"}


@functools.lru_cache(maxsize=None)
def _struct_of(cls) -> struct.Struct:
    fmt, pos = ">", 0
    for name, ctype in cls._fields_:
        cf = getattr(cls, name)
        if cf.offset > pos:
            fmt += f"{cf.offset - pos}x"
        if issubclass(ctype, ctypes.Array):
            fmt += f"{ctypes.sizeof(ctype)}s"
        else:
            fmt += _STRUCT_CHAR[ctypes.sizeof(ctype)]
        pos = cf.offset + cf.size
    if ctypes.sizeof(cls) > pos:
        fmt += f"{ctypes.sizeof(cls) - pos}x"
    st = struct.Struct(fmt)
    if st.size != ctypes.sizeof(cls):   # pragma: no cover - a declaration error
        raise TypeError(f"{cls.__name__}: struct format {fmt} is {st.size} bytes, ctypes says "
                        f"{ctypes.sizeof(cls)}; fix the fields_desc")
    return st


def header(name: str, key: str, c_struct: str = ""):
    """Class decorator: finish a Header by deriving ``_fields_`` from ``fields_desc``."""
    def wrap(cls):
        cls.name, cls.key, cls.c_struct = name, key, c_struct
        cls._fields_ = [(fd.name, fd.ctype) for fd in cls.fields_desc]
        return cls
    return wrap


# --- the headers -------------------------------------------------------------------------------

@header("Ethernet", "eth", "pl_ethhdr")
class Ethernet(Header):
    fields_desc = (
        FieldDesc("dst", BYTES(6), "mac"),
        FieldDesc("src", BYTES(6), "mac"),
        FieldDesc("proto", U16, "enum", ETHERTYPES),
    )


@header("802.1Q VLAN", "vlan", "pl_vlanhdr")
class VLAN(Header):
    """The 4 bytes after a 0x8100/0x88a8 TPID (the TPID itself ends the previous header)."""
    fields_desc = (
        FieldDesc("tci", U16, bits=(Bits("pcp", 3), Bits("dei", 1), Bits("vid", 12))),
        FieldDesc("encap_proto", U16, "enum", ETHERTYPES),
    )


@header("ARP", "arp", "pl_arphdr")
class ARP(Header):
    fields_desc = (
        FieldDesc("htype", U16, "enum", ARP_HTYPES),
        FieldDesc("ptype", U16, "enum", ETHERTYPES),
        FieldDesc("hlen", U8),
        FieldDesc("plen", U8),
        FieldDesc("op", U16, "enum", ARP_OPS),
    )


@header("ARP addresses", "arp")
class ARPEthIPv4(Header):
    """The address part of an Ethernet/IPv4 ARP packet (hlen 6, plen 4); display only."""
    fields_desc = (
        FieldDesc("sha", BYTES(6), "mac"),
        FieldDesc("spa", BYTES(4), "ipv4"),
        FieldDesc("tha", BYTES(6), "mac"),
        FieldDesc("tpa", BYTES(4), "ipv4"),
    )


@header("IPv4", "ipv4", "pl_iphdr")
class IPv4(Header):
    fields_desc = (
        FieldDesc("ver_ihl", U8, bits=(Bits("version", 4), Bits("ihl", 4, unit=4))),
        FieldDesc("tos", U8, bits=(Bits("dscp", 6), Bits("ecn", 2))),
        FieldDesc("tot_len", U16),
        FieldDesc("id", U16, "hex"),
        FieldDesc("frag", U16, bits=(Bits("flags", 3, "flags", IP_FLAGS),
                                     Bits("frag_offset", 13, unit=8))),
        FieldDesc("ttl", U8),
        FieldDesc("protocol", U8, "enum", IPPROTOS),
        FieldDesc("check", U16, "hex"),
        FieldDesc("saddr", BYTES(4), "ipv4"),
        FieldDesc("daddr", BYTES(4), "ipv4"),
    )


@header("IPv6", "ipv6", "pl_ipv6hdr")
class IPv6(Header):
    fields_desc = (
        FieldDesc("ver_tc_flow", U32, bits=(Bits("version", 4), Bits("traffic_class", 8, "hex"),
                                            Bits("flow_label", 20, "hex"))),
        FieldDesc("payload_len", U16),
        FieldDesc("nexthdr", U8, "enum", IPPROTOS),
        FieldDesc("hop_limit", U8),
        FieldDesc("saddr", BYTES(16), "ipv6"),
        FieldDesc("daddr", BYTES(16), "ipv6"),
    )


@header("IPv6 extension", "ipv6ext", "pl_ipv6_opt")
class IPv6Opt(Header):
    """The common 8-byte start of hop-by-hop, routing and destination options headers."""
    fields_desc = (
        FieldDesc("nexthdr", U8, "enum", IPPROTOS),
        FieldDesc("hdrlen", U8),
        FieldDesc("data", BYTES(6), "bytes"),
    )


@header("IPv6 Fragment", "ipv6ext", "pl_ipv6_frag")
class IPv6Frag(Header):
    fields_desc = (
        FieldDesc("nexthdr", U8, "enum", IPPROTOS),
        FieldDesc("reserved", U8, "hex"),
        FieldDesc("frag", U16, bits=(Bits("frag_offset", 13, unit=8), Bits("res", 2),
                                     Bits("m", 1, "flags", IPV6_FRAG_M))),
        FieldDesc("ident", U32, "hex"),
    )


@header("AH", "ipv6ext")
class AH(Header):
    """IPsec AH: its length counts 4-byte words minus 2 (RFC 4302), unlike other extensions."""
    fields_desc = (
        FieldDesc("nexthdr", U8, "enum", IPPROTOS),
        FieldDesc("hdrlen", U8),
        FieldDesc("reserved", U16, "hex"),
        FieldDesc("spi", U32, "hex"),
        FieldDesc("seq", U32),
    )


@header("TCP", "tcp", "pl_tcphdr")
class TCP(Header):
    fields_desc = (
        FieldDesc("source", U16),
        FieldDesc("dest", U16),
        FieldDesc("seq", U32),
        FieldDesc("ack_seq", U32),
        FieldDesc("doff_res", U8, bits=(Bits("doff", 4, unit=4), Bits("reserved", 4))),
        FieldDesc("flags", U8, "flags", TCP_FLAGS),
        FieldDesc("window", U16),
        FieldDesc("check", U16, "hex"),
        FieldDesc("urg_ptr", U16),
    )


@header("UDP", "udp", "pl_udphdr")
class UDP(Header):
    fields_desc = (
        FieldDesc("source", U16),
        FieldDesc("dest", U16),
        FieldDesc("len", U16),
        FieldDesc("check", U16, "hex"),
    )


@header("ICMP", "icmp", "pl_icmphdr")
class ICMP(Header):
    """ICMP's first 8 bytes; id/seq mean something for echo request/reply only."""
    fields_desc = (
        FieldDesc("type", U8, "enum", ICMP_TYPES),
        FieldDesc("code", U8),
        FieldDesc("check", U16, "hex"),
        FieldDesc("id", U16),
        FieldDesc("seq", U16),
    )


@header("ICMPv6", "icmpv6", "pl_icmphdr")
class ICMPv6(Header):
    fields_desc = (
        FieldDesc("type", U8, "enum", ICMPV6_TYPES),
        FieldDesc("code", U8),
        FieldDesc("check", U16, "hex"),
        FieldDesc("id", U16),
        FieldDesc("seq", U16),
    )


# --- the dispatch table (scapy's bind_layers, in one place) -------------------------------------

#: (namespace, number) -> the header that follows. "ethertype" after Ethernet/VLAN,
#: "ipproto" after IPv4/IPv6/extension headers.
NEXT_HEADER: Mapping[tuple[str, int], type] = {
    ("ethertype", ETH_P_IP): IPv4,
    ("ethertype", ETH_P_IPV6): IPv6,
    ("ethertype", ETH_P_ARP): ARP,
    ("ethertype", ETH_P_8021Q): VLAN,
    ("ethertype", ETH_P_8021AD): VLAN,
    ("ipproto", IPPROTO_TCP): TCP,
    ("ipproto", IPPROTO_UDP): UDP,
    ("ipproto", IPPROTO_ICMP): ICMP,
    ("ipproto", IPPROTO_ICMPV6): ICMPv6,
    ("ipproto", IPPROTO_HOPOPTS): IPv6Opt,
    ("ipproto", IPPROTO_ROUTING): IPv6Opt,
    ("ipproto", IPPROTO_DSTOPTS): IPv6Opt,
    ("ipproto", IPPROTO_FRAGMENT): IPv6Frag,
    ("ipproto", IPPROTO_AH): AH,
}


def next_header(namespace: str, number: int):
    """The Header class that follows (``"ethertype"`` or ``"ipproto"``, number), or None."""
    return NEXT_HEADER.get((namespace, number))


def ipv6_ext_protocols() -> frozenset:
    """IP protocol numbers that are IPv6 extension headers (the walker walks these)."""
    return frozenset(n for (ns, n), cls in NEXT_HEADER.items()
                     if ns == "ipproto" and cls in (IPv6Opt, IPv6Frag, AH))


def make_field(name: str, offset: int, length: int, value: Any, display: str) -> Field:
    """A Field that is not a struct member (options, payload, notes)."""
    return Field(name, offset, length, value, display)

