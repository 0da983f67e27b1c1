"""The userspace walk: the Python twin of pl_parse() in bpf_snippets/pktlab_parse.h.

``walk_record(frame)`` returns the pl_record the kernel hooks would emit for the same bytes
(``hook`` = walker, ``ts_ns`` = ``ifindex`` = 0): same fields, same status and layer, same order
of checks, same limits. It reads each header by unpacking the layout declared in
``pktlab.packet.headers`` (the struct format is derived from the ctypes declaration), because one
``struct`` call per header is what makes it fast enough to be the reference for millions of
frames. ``walk(frame)`` runs the very same function, which also leaves a trail of the headers it
read; the layers and fields are then built by casting those bytes to the declared ctypes
structures, for display.

Three ways to the same records, fastest last, all checked byte for byte against pl_parse()
compiled from C (tests/test_walker.py):

- the general path of ``_make_parser``: pl_parse() line by line, for any bytes;
- its fast path: untagged IPv4/IPv6 + TCP/UDP frames that pass every check, in a few lines;
- ``walk_records_array`` / ``walk_records``: many frames at once, the common ones (up to two
  VLAN tags, IPv4 with any IHL, IPv6 without extensions, TCP/UDP/ICMP) column by column with
  numpy, the others through the per-frame parser.

Read pl_parse() next to ``_make_parser`` below: every ``break`` here is a ``goto fail`` or
``goto out`` there. Subtle points kept on purpose, because the kernel does them:

- after IP, headers are checked against ``ip_end`` (the IP total length), not the frame end, so
  Ethernet padding is never L4 header or payload;
- the fixed IPv4/IPv6 header's fields are filled even when a later IP check fails (version,
  IHL, total length), but not when the fixed header itself is truncated;
- TCP fields are filled even when the data offset is bad;
- ``frag_off`` is in bytes; ICMP echo id/seq go to sport/dport;
- an L4 protocol pktlab does not parse ends the walk at IP, with no payload fields.

The walk never raises, whatever the bytes.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from . import headers as H
from . import record as R
from ..errors import EnvironmentProblem

__all__ = ["walk", "walk_record", "walk_records", "walk_records_array", "Walk", "Layer", "Field",
           "parse_fields", "layer_to_dict"]

Layer = H.Layer
Field = H.Field

# The order of values the parser hands to RECORD_STRUCT.pack: pl_record's field order, with
# arrays spread. _make_parser() checks it against the header, so an edit to pktlab_record.h
# that the walker does not know about fails loudly instead of shifting every field.
_VALUE_ORDER = (
    "ts_ns", "fingerprint", "ifindex", "frame_len", "hook", "status", "layer", "flags",
    "eth_proto", "vlan_depth", "ip_version", "vlan_tpid*", "vlan_tci*", "dst_mac", "src_mac",
    "src_ip", "dst_ip", "ttl", "ip4_hdr_len", "ip4_opt_len", "l4_proto", "ip_tot_len",
    "frag_off", "frag_id", "sport", "dport", "tcp_seq", "tcp_ack", "tcp_flags", "tcp_doff",
    "icmp_type", "icmp_code", "payload_off", "payload_len", "arp_op", "ipv6_ext_count", "l7",
    "parse_end", "_reserved*", "payload",
)


def _check_layout():
    fields = R._parse_struct()
    names = tuple(n + ("*" if dim and ct != "__u8" else "") for n, ct, dim, _c in fields)
    if names != _VALUE_ORDER:
        raise EnvironmentProblem(
            "pktlab walker: bpf_snippets/pktlab_record.h declares the fields "
            f"{', '.join(names)}, but the walker fills {', '.join(_VALUE_ORDER)}; the header "
            "changed without the walker; update pktlab/walker.py (_VALUE_ORDER and the parser) "
            "to fill the new fields the way pl_parse() does")


def _packer(zero: frozenset, args: tuple):
    """A pack function for records whose ``zero`` fields are 0: those become pad bytes.

    Fewer arguments is most of what a fast path saves. ``args`` names the remaining fields in
    the order the caller passes them; it must be the record's order, which is checked here so
    a change to pktlab_record.h cannot shift values silently.
    """
    fmt, pos, names = "=", 0, []
    for name, off, size in R.field_layout():
        if off > pos:
            fmt += f"{off - pos}x"
        if name in zero:
            fmt += f"{size}x"
        else:
            ct, dim = next((ct, dim) for n, ct, dim, _c in R._parse_struct() if n == name)
            width = size // dim if dim else size
            if dim and width == 1:
                fmt += f"{dim}s"
            else:
                fmt += (str(dim) if dim else "") + {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
            names.append(name)
        pos = off + size
    if tuple(names) != tuple(args):
        raise EnvironmentProblem(
            f"pktlab walker: fast-path record fields {', '.join(names)} differ from what the "
            f"walker passes ({', '.join(args)}); pktlab_record.h changed; update pktlab/walker.py")
    st = struct.Struct(fmt)
    if st.size != R.RECORD_STRUCT.size:
        raise EnvironmentProblem("pktlab walker: fast-path record format has the wrong size; "
                                 "update pktlab/walker.py")
    return st.pack


_ZERO_ALWAYS = frozenset(("ts_ns", "ifindex", "hook", "status", "vlan_depth", "vlan_tpid",
                          "vlan_tci", "ip4_opt_len", "frag_off", "icmp_type", "icmp_code",
                          "arp_op", "ipv6_ext_count", "_reserved"))
_TCP_ARGS = ("tcp_seq", "tcp_ack", "tcp_flags", "tcp_doff")
_FAST_V4_TCP = ("fingerprint", "frame_len", "layer", "flags", "eth_proto", "ip_version",
                "dst_mac", "src_mac", "src_ip", "dst_ip", "ttl", "ip4_hdr_len", "l4_proto",
                "ip_tot_len", "frag_id", "sport", "dport", *_TCP_ARGS, "payload_off",
                "payload_len", "l7", "parse_end", "payload")
_FAST_V4_UDP = tuple(a for a in _FAST_V4_TCP if a not in _TCP_ARGS)
_FAST_V6_TCP = tuple(a for a in _FAST_V4_TCP if a not in ("flags", "ip4_hdr_len", "frag_id"))
_FAST_V6_UDP = tuple(a for a in _FAST_V6_TCP if a not in _TCP_ARGS)


@functools.lru_cache(maxsize=None)
def _make_parser(raw: bool = False):
    """Build the parser, closing over constants read once from the C headers.

    ``raw=True``: the parser returns the record's bytes instead of a Record (bulk arrays).
    """
    _check_layout()
    C = R.constants()
    Record = R.Record
    pack = R.RECORD_STRUCT.pack
    from_copy = bytes if raw else Record.from_buffer_copy
    fingerprint = R.fingerprint
    FNV_OFF, FNV_PRIME, M64 = C["PL_FNV_OFFSET"], C["PL_FNV_PRIME"], 0xFFFFFFFFFFFFFFFF
    HASH_MIN, HASH_MAX = C["PL_HASH_BYTES"], C["PL_HASH_MAX"]
    WORDS = [struct.Struct(f"<{k}Q").unpack_from for k in range(HASH_MAX // 8 + 1)]

    def fp(frame, n, pend):
        """pl_fingerprint(): the common case (whole words) here, the rest in R.fingerprint."""
        hb = HASH_MIN if pend <= HASH_MIN else (pend + 7) & ~7
        if hb > n or hb > HASH_MAX:
            return fingerprint(frame, None, pend)
        h = FNV_OFF
        # two steps per mask: xor with a word below 2**64 and the multiplication both commute
        # with mod 2**64, so masking every other step gives the same low 64 bits
        ws = WORDS[hb >> 3](frame)
        for i in range(0, len(ws) - 1, 2):
            h = ((h ^ ws[i]) * FNV_PRIME ^ ws[i + 1]) * FNV_PRIME & M64
        if len(ws) & 1:
            h = (h ^ ws[-1]) * FNV_PRIME & M64
        return (h ^ (n & 0xFFFFFFFF)) * FNV_PRIME & M64

    ST_TRUNC = C["PL_ST_TRUNCATED"]
    ST_IHL_LT5, ST_IHL_BEYOND = C["PL_ST_IHL_LT5"], C["PL_ST_IHL_BEYOND"]
    ST_TOTLEN, ST_DOFF_LT5 = C["PL_ST_TOTLEN"], C["PL_ST_DOFF_LT5"]
    ST_DOFF_BEYOND, ST_FRAG_NONFIRST = C["PL_ST_DOFF_BEYOND"], C["PL_ST_FRAG_NONFIRST"]
    ST_VLAN_TOO_MANY, ST_EXT_TOO_MANY = C["PL_ST_VLAN_TOO_MANY"], C["PL_ST_EXT_TOO_MANY"]
    ST_UNSUP, ST_BAD_VERSION = C["PL_ST_UNSUPPORTED_ETHERTYPE"], C["PL_ST_BAD_VERSION"]
    L_ETH, L_VLAN, L_ARP = C["PL_L_ETH"], C["PL_L_VLAN"], C["PL_L_ARP"]
    L_IPV4, L_IPV6, L_EXT = C["PL_L_IPV4"], C["PL_L_IPV6"], C["PL_L_IPV6_EXT"]
    L_TCP, L_UDP, L_ICMP = C["PL_L_TCP"], C["PL_L_UDP"], C["PL_L_ICMP"]
    L_ICMPV6, L_PAYLOAD = C["PL_L_ICMPV6"], C["PL_L_PAYLOAD"]
    F_MF, F_DF = C["PL_F_IP_MF"], C["PL_F_IP_DF"]
    F_V6FRAG, F_FRAG = C["PL_F_IPV6_FRAG"], C["PL_F_FRAGMENT"]
    L7_REQ, L7_RESP = C["PL_L7_HTTP_REQUEST"], C["PL_L7_HTTP_RESPONSE"]
    L7_TLS, L7_DNS = C["PL_L7_TLS_HANDSHAKE"], C["PL_L7_DNS"]
    VLAN_MAX, EXT_MAX, PEEK = C["PL_VLAN_MAX"], C["PL_IPV6_EXT_MAX"], C["PL_PAYLOAD_PEEK"]
    HOOK = C["PL_HOOK_WALKER"]

    # Protocol numbers: the parser's own (pktlab_parse.h), checked against the dispatch table.
    P_IP, P_ARP, P_Q, P_AD, P_IPV6 = (C["PL_ETH_P_IP"], C["PL_ETH_P_ARP"], C["PL_ETH_P_8021Q"],
                                      C["PL_ETH_P_8021AD"], C["PL_ETH_P_IPV6"])
    I_ICMP, I_TCP, I_UDP, I_FRAG, I_AH, I_ICMPV6 = (C["PL_IPPROTO_ICMP"], C["PL_IPPROTO_TCP"],
                                                    C["PL_IPPROTO_UDP"], C["PL_IPPROTO_FRAGMENT"],
                                                    C["PL_IPPROTO_AH"], C["PL_IPPROTO_ICMPV6"])
    EXT = frozenset((C["PL_IPPROTO_HOPOPTS"], C["PL_IPPROTO_ROUTING"], I_FRAG,
                     C["PL_IPPROTO_DSTOPTS"], I_AH))
    nh = H.NEXT_HEADER
    if (nh[("ethertype", P_IP)] is not H.IPv4 or nh[("ethertype", P_IPV6)] is not H.IPv6
            or nh[("ethertype", P_ARP)] is not H.ARP or nh[("ethertype", P_Q)] is not H.VLAN
            or nh[("ethertype", P_AD)] is not H.VLAN or nh[("ipproto", I_TCP)] is not H.TCP
            or nh[("ipproto", I_UDP)] is not H.UDP or nh[("ipproto", I_ICMP)] is not H.ICMP
            or nh[("ipproto", I_ICMPV6)] is not H.ICMPv6 or H.ipv6_ext_protocols() != EXT):
        raise EnvironmentProblem("pktlab walker: the protocol numbers in pktlab_parse.h and "
                                 "pktlab/headers.py NEXT_HEADER disagree; make them the same")

    # Header reads: struct formats derived from the ctypes declarations.
    ETH = H.Ethernet.unpacker()
    VLAN = H.VLAN.unpacker()
    ARP = H.ARP.unpacker()
    IP4 = H.IPv4.unpacker()
    IP6 = H.IPv6.unpacker()
    OPT = H.IPv6Opt.unpacker()
    FRAG = H.IPv6Frag.unpacker()
    TCP = H.TCP.unpacker()
    UDP = H.UDP.unpacker()
    ICMP = H.ICMP.unpacker()
    S_ETH, S_VLAN, S_ARP, S_IP4, S_IP6 = (H.Ethernet.size(), H.VLAN.size(), H.ARP.size(),
                                          H.IPv4.size(), H.IPv6.size())
    S_OPT, S_TCP, S_UDP, S_ICMP = H.IPv6Opt.size(), H.TCP.size(), H.UDP.size(), H.ICMP.size()

    HTTP_REQ = frozenset((b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN",
                          b"TRAC"))
    DNS_PORTS = (53, 5353)
    if VLAN_MAX != 2:
        raise EnvironmentProblem(
            f"pktlab walker: PL_VLAN_MAX is {VLAN_MAX} in pktlab_record.h; the walker keeps the "
            "tags in two locals for speed; extend the VLAN part of pktlab/walker.py")

    # The fast path reads Ethernet + IPv4 (or IPv6) in one call: the two declared layouts
    # back to back, for the common untagged frame.
    eth_fmt = H.Ethernet.struct_format()[1:]
    ETH_IP4 = struct.Struct(">" + eth_fmt + H.IPv4.struct_format()[1:]).unpack_from
    ETH_IP6 = struct.Struct(">" + eth_fmt + H.IPv6.struct_format()[1:]).unpack_from
    F_MF_FRAG = F_MF | F_FRAG
    E4 = S_ETH + S_IP4          # where L4 starts behind an untagged IHL-5 header
    E6 = S_ETH + S_IP6
    if HOOK != 0:
        raise EnvironmentProblem("pktlab walker: PL_HOOK_WALKER is not 0; the fast path "
                                 "leaves `hook` zero; update pktlab/walker.py")
    v4_fields = _ZERO_ALWAYS
    PACK_V4_TCP = _packer(v4_fields, _FAST_V4_TCP)
    PACK_V4_UDP = _packer(v4_fields | frozenset(_TCP_ARGS), _FAST_V4_UDP)
    v6_fields = _ZERO_ALWAYS | {"flags", "ip4_hdr_len", "frag_id"}
    PACK_V6_TCP = _packer(v6_fields, _FAST_V6_TCP)
    PACK_V6_UDP = _packer(v6_fields | frozenset(_TCP_ARGS), _FAST_V6_UDP)

    def parse(frame, trail=None):
        """pl_parse(); ``trail`` (a list) collects (key, header, offset, bound) for walk()."""
        if type(frame) is not bytes:
            frame = bytes(frame)
        n = len(frame)

        # Fast path: untagged IPv4 (IHL 5, not a later fragment) or IPv6 (no extension
        # header) carrying TCP or UDP, every check of pl_parse() passing. It returns exactly
        # what the general path below would (the differential tests run both against the C
        # parser); anything else falls through to the general path.
        if trail is None and n >= E4 + S_UDP:
            dmac, smac, proto, vihl, _tos, tot, fid, f, ttl, l4, _chk, sip, dip = ETH_IP4(frame, 0)
            if proto == P_IP:
                ip_end = S_ETH + tot
                if vihl == 0x45 and tot >= S_IP4 and ip_end <= n and not f & 0x1FFF:
                    flags = (F_DF if f & 0x4000 else 0) | (F_MF_FRAG if f & 0x2000 else 0)
                    if l4 == I_TCP and E4 + S_TCP <= ip_end:
                        sport, dport, seq, ack, dr, tflags, _w, _c, _u = TCP(frame, E4)
                        pos = E4 + (dr >> 4) * 4
                        if pos >= E4 + S_TCP and pos <= ip_end:
                            plen = ip_end - pos
                            layer, l7, peek = L_TCP, 0, b""
                            if plen:
                                layer = L_PAYLOAD
                                peek = frame[pos:pos + PEEK] if plen >= PEEK else frame[pos:ip_end]
                                if plen >= 4 and peek[:4] in HTTP_REQ:
                                    l7 = L7_REQ
                                elif plen >= 4 and peek[:4] == b"HTTP":
                                    l7 = L7_RESP
                                elif (plen >= 3 and peek[0] == 0x16 and peek[1] == 0x03
                                      and peek[2] <= 0x04):
                                    l7 = L7_TLS
                            pend = pos + len(peek) if plen else E4 + S_TCP
                            return from_copy(PACK_V4_TCP(
                                fp(frame, n, pend), n & 0xFFFFFFFF, layer, flags, P_IP, 4, dmac,
                                smac, sip, dip, ttl, S_IP4, I_TCP, tot, fid, sport, dport, seq,
                                ack, tflags, dr >> 4, pos, plen, l7, pend, peek))
                    elif l4 == I_UDP and E4 + S_UDP <= ip_end:
                        sport, dport, _l, _c = UDP(frame, E4)
                        pos = E4 + S_UDP
                        plen = ip_end - pos
                        layer, l7, peek = L_UDP, 0, b""
                        if plen:
                            layer = L_PAYLOAD
                            peek = frame[pos:pos + PEEK] if plen >= PEEK else frame[pos:ip_end]
                            if plen >= 12 and (sport in DNS_PORTS or dport in DNS_PORTS):
                                l7 = L7_DNS
                        pend = pos + len(peek)
                        return from_copy(PACK_V4_UDP(
                            fp(frame, n, pend), n & 0xFFFFFFFF, layer, flags, P_IP, 4, dmac,
                            smac, sip, dip, ttl, S_IP4, I_UDP, tot, fid, sport, dport, pos, plen,
                            l7, pend, peek))
            elif proto == P_IPV6 and n >= E6 + S_UDP:
                dmac, smac, proto, vtf, paylen, l4, ttl, sip, dip = ETH_IP6(frame, 0)
                ip_end = E6 + paylen
                if vtf >> 28 == 6 and ip_end <= n:
                    tot = (S_IP6 + paylen) & 0xFFFF
                    if l4 == I_TCP and E6 + S_TCP <= ip_end:
                        sport, dport, seq, ack, dr, tflags, _w, _c, _u = TCP(frame, E6)
                        pos = E6 + (dr >> 4) * 4
                        if pos >= E6 + S_TCP and pos <= ip_end:
                            plen = ip_end - pos
                            layer, l7, peek = L_TCP, 0, b""
                            if plen:
                                layer = L_PAYLOAD
                                peek = frame[pos:pos + PEEK] if plen >= PEEK else frame[pos:ip_end]
                                if plen >= 4 and peek[:4] in HTTP_REQ:
                                    l7 = L7_REQ
                                elif plen >= 4 and peek[:4] == b"HTTP":
                                    l7 = L7_RESP
                                elif (plen >= 3 and peek[0] == 0x16 and peek[1] == 0x03
                                      and peek[2] <= 0x04):
                                    l7 = L7_TLS
                            pend = pos + len(peek) if plen else E6 + S_TCP
                            return from_copy(PACK_V6_TCP(
                                fp(frame, n, pend), n & 0xFFFFFFFF, layer, P_IPV6, 6, dmac, smac,
                                sip, dip, ttl, I_TCP, tot, sport, dport, seq, ack, tflags,
                                dr >> 4, pos & 0xFFFF, plen & 0xFFFF, l7, pend, peek))
                    elif l4 == I_UDP and E6 + S_UDP <= ip_end:
                        sport, dport, _l, _c = UDP(frame, E6)
                        pos = E6 + S_UDP
                        plen = ip_end - pos
                        layer, l7, peek = L_UDP, 0, b""
                        if plen:
                            layer = L_PAYLOAD
                            peek = frame[pos:pos + PEEK] if plen >= PEEK else frame[pos:ip_end]
                            if plen >= 12 and (sport in DNS_PORTS or dport in DNS_PORTS):
                                l7 = L7_DNS
                        pend = pos + len(peek)
                        return from_copy(PACK_V6_UDP(
                            fp(frame, n, pend), n & 0xFFFFFFFF, layer, P_IPV6, 6, dmac, smac,
                            sip, dip, ttl, I_UDP, tot, sport, dport, pos & 0xFFFF,
                            plen & 0xFFFF, l7, pend, peek))

        # General path: pl_parse() line by line.
        status = 0
        layer = L_ETH
        flags = eth_proto = vdepth = ipver = 0
        tp0 = tp1 = tc0 = tc1 = 0
        dmac = smac = sip = dip = peek = b""
        ttl = hlen = olen = l4 = tot = foff = fid = 0
        sport = dport = seq = ack = tflags = doff = itype = icode = 0
        poff = plen = arp_op = next_ = l7 = 0
        pend = 0        # PL_SEEN: one past the last byte read
        ip_end = n
        while True:     # runs once; `break` is pl_parse's `goto fail` / `goto out`
            if trail is not None:
                trail.append(("eth", H.Ethernet, 0, n))
            if n < S_ETH:
                status = ST_TRUNC
                break
            dmac, smac, proto = ETH(frame, 0)
            pos = pend = S_ETH

            if proto == P_Q or proto == P_AD:
                tpid, tci = [0, 0], [0, 0]
                for _ in range(VLAN_MAX):
                    if proto != P_Q and proto != P_AD:
                        break
                    layer = L_VLAN
                    if trail is not None:
                        trail.append(("vlan", H.VLAN, pos, n))
                    if pos + S_VLAN > n:
                        status = ST_TRUNC
                        break
                    t, enc = VLAN(frame, pos)
                    pend = pos + S_VLAN
                    tpid[vdepth] = proto
                    tci[vdepth] = t
                    vdepth += 1
                    proto = enc
                    pos += S_VLAN
                tp0, tp1 = tpid
                tc0, tc1 = tci
                if status:
                    break
            eth_proto = proto
            if proto == P_Q or proto == P_AD:
                status = ST_VLAN_TOO_MANY
                break

            if proto == P_IP:
                layer = L_IPV4
                if trail is not None:
                    trail.append(("ipv4", H.IPv4, pos, n))
                if pos + S_IP4 > n:
                    status = ST_TRUNC
                    break
                vihl, _tos, tot, fid, f, ttl, l4, _chk, sip, dip = IP4(frame, pos)
                pend = pos + S_IP4
                ipver = vihl >> 4
                hlen = (vihl & 15) * 4
                if f & 0x4000:
                    flags |= F_DF
                if f & 0x2000:
                    flags |= F_MF
                foff = (f & 0x1FFF) * 8
                if f & 0x3FFF:
                    flags |= F_FRAG
                if ipver != 4:
                    status = ST_BAD_VERSION
                    break
                if hlen < S_IP4:
                    status = ST_IHL_LT5
                    break
                if pos + hlen > n:
                    status = ST_IHL_BEYOND
                    break
                if tot < hlen or pos + tot > n:
                    status = ST_TOTLEN
                    break
                ip_end = pos + tot
                pos += hlen
                olen = hlen - S_IP4
                if foff:
                    status = ST_FRAG_NONFIRST
                    break
                proto = l4
            elif proto == P_IPV6:
                layer = L_IPV6
                if trail is not None:
                    trail.append(("ipv6", H.IPv6, pos, n))
                if pos + S_IP6 > n:
                    status = ST_TRUNC
                    break
                vtf, paylen, l4, ttl, sip, dip = IP6(frame, pos)
                pend = pos + S_IP6
                ipver = vtf >> 28
                tot = (S_IP6 + paylen) & 0xFFFF
                if ipver != 6:
                    status = ST_BAD_VERSION
                    break
                if pos + S_IP6 + paylen > n:
                    status = ST_TOTLEN
                    break
                ip_end = pos + S_IP6 + paylen
                pos += S_IP6
                proto = l4
                if proto in EXT:
                    for _ in range(EXT_MAX):
                        if proto not in EXT:
                            break
                        layer = L_EXT
                        if trail is not None:
                            trail.append(("ipv6ext", proto, pos, ip_end))
                        if pos + S_OPT > ip_end:
                            status = ST_TRUNC
                            break
                        pend = pos + S_OPT
                        if proto == I_FRAG:
                            nx, _res, f, ident = FRAG(frame, pos)
                            flags |= F_V6FRAG | F_FRAG
                            if f & 1:
                                flags |= F_MF
                            foff = f & 0xFFF8
                            fid = ident
                            ln = 8
                        else:
                            nx, hl, _data = OPT(frame, pos)
                            ln = (hl + 2) * 4 if proto == I_AH else (hl + 1) * 8
                        if pos + ln > ip_end:
                            status = ST_TRUNC
                            break
                        pos += ln
                        next_ += 1
                        proto = l4 = nx
                        if foff:
                            status = ST_FRAG_NONFIRST
                            break
                    else:
                        if proto in EXT:
                            status = ST_EXT_TOO_MANY
                    if status:
                        break
            elif proto == P_ARP:
                layer = L_ARP
                if trail is not None:
                    trail.append(("arp", H.ARP, pos, n))
                if pos + S_ARP > n:
                    status = ST_TRUNC
                    break
                arp_op = ARP(frame, pos)[4]
                pend = pos + S_ARP
                break
            else:
                status = ST_UNSUP
                break
            l4 = proto

            if proto == I_TCP:
                layer = L_TCP
                if trail is not None:
                    trail.append(("tcp", H.TCP, pos, ip_end))
                if pos + S_TCP > ip_end:
                    status = ST_TRUNC
                    break
                sport, dport, seq, ack, dr, tflags, _w, _c, _u = TCP(frame, pos)
                pend = pos + S_TCP
                doff = dr >> 4
                ln = doff * 4
                if ln < S_TCP:
                    status = ST_DOFF_LT5
                    break
                if pos + ln > ip_end:
                    status = ST_DOFF_BEYOND
                    break
                pos += ln
            elif proto == I_UDP:
                layer = L_UDP
                if trail is not None:
                    trail.append(("udp", H.UDP, pos, ip_end))
                if pos + S_UDP > ip_end:
                    status = ST_TRUNC
                    break
                sport, dport, _l, _c = UDP(frame, pos)
                pos = pend = pos + S_UDP
            elif (proto == I_ICMP and ipver == 4) or (proto == I_ICMPV6 and ipver == 6):
                if proto == I_ICMP:
                    layer = L_ICMP
                    if trail is not None:
                        trail.append(("icmp", H.ICMP, pos, ip_end))
                else:
                    layer = L_ICMPV6
                    if trail is not None:
                        trail.append(("icmpv6", H.ICMPv6, pos, ip_end))
                if pos + S_ICMP > ip_end:
                    status = ST_TRUNC
                    break
                itype, icode, _c, iid, iseq = ICMP(frame, pos)
                echo = (itype == 0 or itype == 8) if proto == I_ICMP else (itype == 128 or itype == 129)
                if echo:
                    sport, dport = iid, iseq
                pos = pend = pos + S_ICMP
            else:
                break       # an L4 protocol pktlab does not parse: the walk ends at IP

            poff = pos & 0xFFFF
            plen = (ip_end - pos) & 0xFFFF
            if plen:
                layer = L_PAYLOAD
                if trail is not None:
                    trail.append(("payload", None, pos, ip_end))
                peek = frame[pos:pos + min(plen, PEEK)]
                pend = pos + len(peek)
                if proto == I_TCP:
                    if plen >= 4 and peek[:4] in HTTP_REQ:
                        l7 = L7_REQ
                    elif plen >= 4 and peek[:4] == b"HTTP":
                        l7 = L7_RESP
                    elif plen >= 3 and peek[0] == 0x16 and peek[1] == 0x03 and peek[2] <= 0x04:
                        l7 = L7_TLS
                elif proto == I_UDP and plen >= 12 and (sport in DNS_PORTS or dport in DNS_PORTS):
                    l7 = L7_DNS
            break
        if trail is not None:
            trail.append(("end", status, ip_end, n))
        return from_copy(pack(
            0, fp(frame, n, pend), 0, n & 0xFFFFFFFF, HOOK, status, layer, flags,
            eth_proto, vdepth, ipver, tp0, tp1, tc0, tc1, dmac, smac, sip, dip, ttl, hlen, olen, l4,
            tot, foff, fid, sport, dport, seq, ack, tflags, doff, itype, icode, poff, plen,
            arp_op, next_, l7, pend, 0, 0, 0, peek))

    return parse


def walk_record(frame) -> Any:
    """The pl_record for ``frame`` (bytes-like), exactly as pl_parse() fills it.

    ``hook`` is PL_HOOK_WALKER and ``ts_ns``/``ifindex`` are 0, as no hook saw the frame;
    ``frame_len`` is len(frame) and ``fingerprint`` is pl_fingerprint() of the bytes.
    """
    parse = _PARSE[0]
    if parse is None:
        parse = _PARSE[0] = _make_parser()
    return parse(frame)


_PARSE: list = [None]    # the built parser, once walk_record() first ran (saves a cache call)


def _bulk_chunk(frames: list):
    """Records of a list of bytes frames as a RECORD_DTYPE array, the common case vectorized.

    Frames with up to PL_VLAN_MAX VLAN tags, then IPv4 (any valid IHL, not a later fragment)
    or IPv6 (no extension header), then TCP, UDP or ICMP/ICMPv6, whose every pl_parse() check
    passes, are filled column by column with numpy; every other frame goes through the
    per-frame parser. Each row is bytes-for-bytes walk_record() of its frame (tests check it
    against the per-frame walker and against pl_parse() compiled from C).

    The header bytes come from one matrix holding each frame's first W bytes, taken as windows
    of the frames joined end to end; bytes past a frame's end are its neighbour's, which is
    harmless because every field used belongs to a frame whose length checks passed.
    """
    import numpy as np

    C = R.constants()
    n = len(frames)
    W = 176     # Ethernet + 2 tags + IPv4 with options (or IPv6) + a 60-byte TCP header + peek
    PEEK = C["PL_PAYLOAD_PEEK"]
    sliding = np.lib.stride_tricks.sliding_window_view
    lens = np.fromiter(map(len, frames), dtype=np.int64, count=n)
    parts = [f[:W] for f in frames]
    parts.append(bytes(W))
    flat = np.frombuffer(b"".join(parts), dtype=np.uint8)
    kept = np.minimum(lens, W)
    m = sliding(flat, W)[np.cumsum(kept) - kept]
    rows_all = np.arange(n)

    def u16(col):
        return (m[rows_all, col].astype(np.int64) << 8) | m[rows_all, col + 1]

    # Ethernet and VLAN tags (the loop of pl_parse, unrolled for PL_VLAN_MAX = 2)
    Q, AD = C["PL_ETH_P_8021Q"], C["PL_ETH_P_8021AD"]
    et0 = u16(np.full(n, 12))
    tag1 = (et0 == Q) | (et0 == AD)
    et1 = u16(np.full(n, 16))
    tag2 = tag1 & ((et1 == Q) | (et1 == AD))
    et2 = u16(np.full(n, 20))
    depth = tag1.astype(np.int64) + tag2
    eth_proto = np.where(tag2, et2, np.where(tag1, et1, et0))
    l3 = 14 + 4 * depth
    ok_l2 = (lens >= l3) & (eth_proto != Q) & (eth_proto != AD)
    ip = sliding(m, 40, axis=1)[rows_all, l3]           # each frame's IP header bytes
    ver = ip[:, 0] >> 4
    # IPv4: what parse_iphdr() accepts, not a later fragment
    hlen = (ip[:, 0] & 15).astype(np.int64) * 4
    tot4 = (ip[:, 2].astype(np.int64) << 8) | ip[:, 3]
    frag = (ip[:, 6].astype(np.int64) << 8) | ip[:, 7]
    v4 = ok_l2 & (eth_proto == C["PL_ETH_P_IP"]) & (l3 + 20 <= lens) & (ver == 4) \
        & (hlen >= 20) & (l3 + hlen <= lens) & (tot4 >= hlen) & (l3 + tot4 <= lens) \
        & ((frag & 0x1FFF) == 0)
    # IPv6: version 6, payload inside the frame, no extension header
    plen6 = (ip[:, 4].astype(np.int64) << 8) | ip[:, 5]
    v6 = ok_l2 & (eth_proto == C["PL_ETH_P_IPV6"]) & (l3 + 40 <= lens) & (ver == 6) \
        & (l3 + 40 + plen6 <= lens)
    proto = np.where(v4, ip[:, 9], ip[:, 6]).astype(np.int64)
    l4 = np.where(v4, l3 + hlen, l3 + 40)
    end = np.where(v4, l3 + tot4, l3 + 40 + plen6)
    hdr = sliding(m, 20, axis=1)[rows_all, np.minimum(l4, W - 20)]   # L4 header bytes
    isip = v4 | v6
    tcp = isip & (proto == C["PL_IPPROTO_TCP"]) & (l4 + 20 <= end)
    doff = (hdr[:, 12] >> 4).astype(np.int64)
    tcp &= (doff >= 5) & (l4 + doff * 4 <= end)
    udp = isip & (proto == C["PL_IPPROTO_UDP"]) & (l4 + 8 <= end)
    icmp4 = v4 & (proto == C["PL_IPPROTO_ICMP"]) & (l4 + 8 <= end)
    icmp6 = v6 & (proto == C["PL_IPPROTO_ICMPV6"]) & (l4 + 8 <= end)
    icmp = icmp4 | icmp6
    ok = tcp | udp | icmp
    size = R.RECORD_STRUCT.size
    out = np.zeros((n, size), dtype=np.uint8)
    rows = np.flatnonzero(ok)
    if len(rows):
        k = len(rows)
        buf = np.zeros((k, size), dtype=np.uint8)
        layout = _bulk_layout()

        def put(name, values):
            off, width, dt = layout[name]
            v = np.asarray(values)
            if v.ndim == 2:
                buf[:, off:off + width] = v
            else:
                buf[:, off:off + width] = v.astype(dt).view(np.uint8).reshape(k, width)

        ipr, hr = ip[rows], hdr[rows]
        v4r, tr, ur, i4r = v4[rows], tcp[rows], udp[rows], icmp4[rows]
        ir = icmp[rows]
        pos = l4[rows] + np.where(tr, doff[rows] * 4, 8)
        plen = (end[rows] - pos) & 0xFFFF
        l4layer = np.where(tr, C["PL_L_TCP"], np.where(ur, C["PL_L_UDP"],
                                                        np.where(i4r, C["PL_L_ICMP"],
                                                                 C["PL_L_ICMPV6"])))
        # PL_SEEN: the peek's end, else the L4 header's fixed part (TCP options are not read)
        pend = np.where(plen > 0, pos + np.minimum(plen, PEEK),
                        np.where(tr, l4[rows] + 20, pos))
        put("parse_end", pend)
        put("fingerprint", R.fingerprints_of_prefixes(m[rows], lens[rows], pend))
        put("frame_len", lens[rows])
        put("layer", np.where(plen > 0, C["PL_L_PAYLOAD"], l4layer))
        fr = frag[rows]
        put("flags", np.where(v4r, np.where(fr & 0x4000, C["PL_F_IP_DF"], 0)
                              | np.where(fr & 0x2000, C["PL_F_IP_MF"] | C["PL_F_FRAGMENT"], 0), 0))
        put("eth_proto", eth_proto[rows])
        d = depth[rows]
        put("vlan_depth", d)
        vt = np.zeros((k, 2), dtype=np.int64)
        vc = np.zeros((k, 2), dtype=np.int64)
        m_r = m[rows]
        vt[:, 0] = np.where(d >= 1, et0[rows], 0)
        vt[:, 1] = np.where(d >= 2, et1[rows], 0)
        vc[:, 0] = np.where(d >= 1, (m_r[:, 14].astype(np.int64) << 8) | m_r[:, 15], 0)
        vc[:, 1] = np.where(d >= 2, (m_r[:, 18].astype(np.int64) << 8) | m_r[:, 19], 0)
        put("vlan_tpid", vt.astype("=u2").view(np.uint8).reshape(k, 4))
        put("vlan_tci", vc.astype("=u2").view(np.uint8).reshape(k, 4))
        put("ip_version", np.where(v4r, 4, 6))
        put("dst_mac", m_r[:, 0:6])
        put("src_mac", m_r[:, 6:12])
        v4c = v4r[:, None]
        zeros12 = np.zeros((k, 12), dtype=np.uint8)
        put("src_ip", np.where(v4c, np.hstack([ipr[:, 12:16], zeros12]), ipr[:, 8:24]))
        put("dst_ip", np.where(v4c, np.hstack([ipr[:, 16:20], zeros12]), ipr[:, 24:40]))
        put("ttl", np.where(v4r, ipr[:, 8], ipr[:, 7]))
        hl = hlen[rows]
        put("ip4_hdr_len", np.where(v4r, hl, 0))
        put("ip4_opt_len", np.where(v4r, hl - 20, 0))
        put("l4_proto", proto[rows])
        put("ip_tot_len", np.where(v4r, tot4[rows], (40 + plen6[rows]) & 0xFFFF))
        put("frag_id", np.where(v4r, (ipr[:, 4].astype(np.int64) << 8) | ipr[:, 5], 0))

        def be(a, b):
            return (hr[:, a].astype(np.int64) << 8) | hr[:, b]
        p0, p1 = be(0, 1), be(2, 3)            # ports, or ICMP type/code and checksum
        echo_id, echo_seq = be(4, 5), be(6, 7)
        itype = hr[:, 0].astype(np.int64)
        echo = ir & np.where(i4r, (itype == 0) | (itype == 8), (itype == 128) | (itype == 129))
        sport = np.where(ir, np.where(echo, echo_id, 0), p0)
        dport = np.where(ir, np.where(echo, echo_seq, 0), p1)
        put("sport", sport)
        put("dport", dport)
        put("tcp_seq", np.where(tr, (be(4, 5) << 16) | be(6, 7), 0))
        put("tcp_ack", np.where(tr, (be(8, 9) << 16) | be(10, 11), 0))
        put("tcp_flags", np.where(tr, hr[:, 13], 0))
        put("tcp_doff", np.where(tr, doff[rows], 0))
        put("icmp_type", np.where(ir, itype, 0))
        put("icmp_code", np.where(ir, hr[:, 1], 0))
        put("payload_off", pos & 0xFFFF)
        put("payload_len", plen)
        peek = sliding(m_r, PEEK, axis=1)[np.arange(k), np.minimum(pos, W - PEEK)]
        peek = np.where(np.arange(PEEK) < np.minimum(plen, PEEK)[:, None], peek, 0)
        put("payload", peek.astype(np.uint8))
        # pl_guess_l7(), on the copied bytes as the C does
        w4 = (peek[:, 0].astype(np.int64) << 24) | (peek[:, 1].astype(np.int64) << 16) \
            | (peek[:, 2].astype(np.int64) << 8) | peek[:, 3]
        methods = [int.from_bytes(x, "big") for x in (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE",
                                                      b"OPTI", b"PATC", b"CONN", b"TRAC")]
        t4 = tr & (plen >= 4)
        l7 = np.where(t4 & np.isin(w4, methods), C["PL_L7_HTTP_REQUEST"], 0)
        l7 = np.where(t4 & (w4 == int.from_bytes(b"HTTP", "big")), C["PL_L7_HTTP_RESPONSE"], l7)
        tls = tr & (plen >= 3) & (peek[:, 0] == 0x16) & (peek[:, 1] == 0x03) & (peek[:, 2] <= 4)
        l7 = np.where((l7 == 0) & tls, C["PL_L7_TLS_HANDSHAKE"], l7)
        dns = ur & (plen >= 12) & (np.isin(sport, (53, 5353)) | np.isin(dport, (53, 5353)))
        put("l7", np.where(dns, C["PL_L7_DNS"], l7))
        out[rows] = buf
    rest = np.flatnonzero(~ok)
    if len(rest):
        parse = _make_parser(raw=True)
        out[rest] = np.frombuffer(b"".join([parse(frames[i]) for i in rest.tolist()]),
                                  dtype=np.uint8).reshape(len(rest), size)
    return out.view(R.RECORD_DTYPE).reshape(n)


@functools.lru_cache(maxsize=None)
def _bulk_layout():
    """name -> (offset, size, numpy dtype in host order) of every record field."""
    import numpy as np

    return {name: (off, size, np.dtype(f"=u{size}") if size in (1, 2, 4, 8) else None)
            for name, off, size in R.field_layout()}


def walk_records_array(frames, chunk: int = 8192):
    """The walker's records of a sequence of frames as one numpy array (RECORD_DTYPE).

    Row i is bytes-for-bytes walk_record(frames[i]); this is the form kernel records arrive
    in (pktlab.kernel.ringbuf), so the two compare column by column. The common frames are parsed
    vectorized, ``chunk`` at a time: this is the walker's fastest record path.
    """
    import numpy as np

    frames = [f if type(f) is bytes else bytes(f) for f in frames]
    parts = [_bulk_chunk(frames[i:i + chunk]) for i in range(0, len(frames), chunk)]
    if not parts:
        return np.zeros(0, dtype=R.RECORD_DTYPE)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def walk_records(frames, chunk: int = 4096):
    """walk_record() over an iterable of frames, as a generator of Records (flat memory).

    Frames are taken ``chunk`` at a time through the vectorized bulk path; the same records as
    walk_record(), several times faster for many frames.
    """
    from_copy = R.Record.from_buffer_copy
    size = R.RECORD_STRUCT.size
    it = iter(frames)
    while True:
        batch = [f if type(f) is bytes else bytes(f) for f in islice(it, chunk)]
        if not batch:
            return
        mv = memoryview(_bulk_chunk(batch).tobytes())
        for i in range(len(batch)):
            yield from_copy(mv[i * size:(i + 1) * size])


# --- the layered view -----------------------------------------------------------------------------

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
        from .views import PacketView

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
                        if isinstance(o, H.TcpOption) else _jsonable(tuple(o))
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
        opts = H.parse_ipv4_options(frame[off + size:o_end], off + size)
        details = opts
        fields += [H.make_field(f"option {o.name}", o.offset, o.length, o.value, o.display)
                   for o in opts]
    elif key == "tcp" and length > size:
        o_end = min(off + length, limit)
        opts = H.parse_tcp_options(frame[off + size:o_end], off + size)
        details = opts
        fields += [H.make_field(f"option {o.name}", o.offset, o.length, o.value, o.display)
                   for o in opts]
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
