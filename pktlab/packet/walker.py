"""The userspace walk: the Python twin of pl_parse() in bpf_snippets/pktlab_parse.h.

``walk_record(frame)`` returns the pl_record the kernel hooks would emit for the same bytes
(``hook`` = walker, ``ts_ns`` = ``ifindex`` = 0): same fields, same status and layer, same order
of checks, same limits. It reads each header by unpacking the layout declared in
``pktlab.packet.headers`` (the struct format is derived from the ctypes declaration), because one
``struct`` call per header is what makes it fast enough to be the reference for millions of
frames. ``pktlab.packet.views.walk(frame)`` runs the very same parser, which also leaves a trail
of the headers it read; the layers and fields are then built by casting those bytes to the
declared ctypes structures, for display.

Three ways to the same records, fastest last, all checked byte for byte against pl_parse()
compiled from C (tests/test_walker.py):

- ``general()`` (built by ``_general_path``): pl_parse() line by line, for any bytes;
- the fast path in front of it (``_fast_path``): untagged IPv4/IPv6 + TCP/UDP frames that pass
  every check, in a few lines (TCP options through the same option walk as general());
- pktlab.packet.bulk's ``walk_records_array`` / ``walk_records``: many frames at once, the
  common ones (up to two VLAN tags, IPv4 with any IHL, IPv6 without extensions, TCP/UDP/ICMP)
  column by column with numpy, the others through this module's parser.

Read pl_parse() next to ``general()`` below: every ``break`` here is a ``goto fail`` or
``goto out`` there. Subtle points kept on purpose, because the kernel does them:

- after IP, headers are checked against ``ip_end`` (the IP total length), not the frame end, so
  Ethernet padding is never L4 header or payload;
- the fixed IPv4/IPv6 header's fields are filled even when a later IP check fails (version,
  IHL, total length), but not when the fixed header itself is truncated;
- TCP fields are filled even when the data offset is bad;
- ``frag_off`` is in bytes; ICMP echo id/seq go to sport/dport;
- an L4 protocol pktlab does not parse ends the walk at IP, with no payload fields;
- TCP options are walked last, from where the record says they are (parse_tcp_options, whose
  twin is pktlab.packet.options.record_option_walk), and counted read (parse_end) in the TCP
  header; a bad option list is a flag (PL_TCPO_BAD), never a status.

The walk never raises, whatever the bytes.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from . import headers as H
from . import record as R
from .options import record_option_walk
from .packing import OPT_FIELDS, check_layout, fast_packers
from ..errors import EnvironmentProblem

__all__ = ["walk_record"]

#: pl_guess_l7()'s HTTP request methods (the first 4 payload bytes) and DNS ports
L7_HTTP_METHODS = (b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN",
                   b"TRAC")
L7_DNS_PORTS = (53, 5353)


def _check_assumptions(C):
    """What the parser takes for granted about the C headers, checked once it is built."""
    P_IP, P_ARP, P_Q, P_AD, P_IPV6 = (C["PL_ETH_P_IP"], C["PL_ETH_P_ARP"], C["PL_ETH_P_8021Q"],
                                      C["PL_ETH_P_8021AD"], C["PL_ETH_P_IPV6"])
    I_ICMP, I_TCP, I_UDP, I_ICMPV6 = (C["PL_IPPROTO_ICMP"], C["PL_IPPROTO_TCP"],
                                      C["PL_IPPROTO_UDP"], C["PL_IPPROTO_ICMPV6"])
    # Protocol numbers: the parser's own (pktlab_parse.h), checked against the dispatch table.
    nh = H.NEXT_HEADER
    if (nh[("ethertype", P_IP)] is not H.IPv4 or nh[("ethertype", P_IPV6)] is not H.IPv6
            or nh[("ethertype", P_ARP)] is not H.ARP or nh[("ethertype", P_Q)] is not H.VLAN
            or nh[("ethertype", P_AD)] is not H.VLAN or nh[("ipproto", I_TCP)] is not H.TCP
            or nh[("ipproto", I_UDP)] is not H.UDP or nh[("ipproto", I_ICMP)] is not H.ICMP
            or nh[("ipproto", I_ICMPV6)] is not H.ICMPv6
            or H.ipv6_ext_protocols() != _ipv6_ext(C)):
        raise EnvironmentProblem("pktlab walker: the protocol numbers in pktlab_parse.h and "
                                 "pktlab/packet/headers.py NEXT_HEADER disagree; make them the "
                                 "same")
    if C["PL_VLAN_MAX"] != 2:
        raise EnvironmentProblem(
            f"pktlab walker: PL_VLAN_MAX is {C['PL_VLAN_MAX']} in pktlab_record.h; the walker "
            "keeps the tags in two locals for speed; extend the VLAN part of "
            "pktlab/packet/walker.py")
    if C["PL_HOOK_WALKER"] != 0:
        raise EnvironmentProblem("pktlab walker: PL_HOOK_WALKER is not 0; the fast path "
                                 "leaves `hook` zero; update pktlab/packet/walker.py")


def _ipv6_ext(C) -> frozenset:
    """pl_is_ipv6_ext(): the IPv6 extension headers the parser walks."""
    return frozenset((C["PL_IPPROTO_HOPOPTS"], C["PL_IPPROTO_ROUTING"], C["PL_IPPROTO_FRAGMENT"],
                      C["PL_IPPROTO_DSTOPTS"], C["PL_IPPROTO_AH"]))


def _general_path(from_copy, fp):
    # one function on purpose: it holds general() below, which is pl_parse() line by line
    # (see there); the constants are read here once so that general() finds them as closure
    # variables, the cheapest names Python has after its own locals.
    """pl_parse() for any bytes, as general(frame, n, trail): ``frame`` is bytes of length
    ``n``; ``trail`` (a list, or None) collects (key, header, offset, bound) for views.walk()."""
    C = R.constants()
    pack = R.RECORD_STRUCT.pack
    E_ETH, E_NET, E_L4 = C["PL_ENTRY_ETH"], C["PL_ENTRY_NET"], C["PL_ENTRY_L4"]
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
    P_IP, P_ARP, P_Q, P_AD, P_IPV6 = (C["PL_ETH_P_IP"], C["PL_ETH_P_ARP"], C["PL_ETH_P_8021Q"],
                                      C["PL_ETH_P_8021AD"], C["PL_ETH_P_IPV6"])
    I_ICMP, I_TCP, I_UDP, I_FRAG, I_AH, I_ICMPV6 = (C["PL_IPPROTO_ICMP"], C["PL_IPPROTO_TCP"],
                                                    C["PL_IPPROTO_UDP"], C["PL_IPPROTO_FRAGMENT"],
                                                    C["PL_IPPROTO_AH"], C["PL_IPPROTO_ICMPV6"])
    EXT = _ipv6_ext(C)
    # Header reads: struct formats derived from the ctypes declarations.
    ETH, VLAN, ARP = H.Ethernet.unpacker(), H.VLAN.unpacker(), H.ARP.unpacker()
    IP4, IP6 = H.IPv4.unpacker(), H.IPv6.unpacker()
    OPT, FRAG = H.IPv6Opt.unpacker(), H.IPv6Frag.unpacker()
    TCP, UDP, ICMP = H.TCP.unpacker(), H.UDP.unpacker(), H.ICMP.unpacker()
    S_ETH, S_VLAN, S_ARP, S_IP4, S_IP6 = (H.Ethernet.size(), H.VLAN.size(), H.ARP.size(),
                                          H.IPv4.size(), H.IPv6.size())
    S_OPT, S_TCP, S_UDP, S_ICMP = H.IPv6Opt.size(), H.TCP.size(), H.UDP.size(), H.ICMP.size()
    HTTP_REQ, DNS_PORTS = frozenset(L7_HTTP_METHODS), L7_DNS_PORTS
    OPTS, NO_OPTS = record_option_walk(), (0,) * len(OPT_FIELDS)
    PEEK_OFF_MAX = C["PL_PEEK_OFF_MAX"]

    def general(frame, n, trail, entry=E_ETH, eproto=0):
        # one function on purpose: pl_parse_at() in bpf_snippets/pktlab_parse.h line by line,
        # in its order of checks, every `break` a `goto fail` or `goto out` there, so that the
        # two read side by side; cut into a function per header it would no longer compare
        # line for line (and would pay a Python call per header on the reference path).
        # entry/eproto: where the hook enters the walk and what it knows of that header
        # (PL_ENTRY_*; the EtherType at NET, the IP protocol at L4 and PAYLOAD).
        status = 0
        layer = L_ETH if entry == E_ETH else 0
        flags = eth_proto = vdepth = ipver = 0
        tp0 = tp1 = tc0 = tc1 = 0
        dmac = smac = sip = dip = peek = b""
        ttl = hlen = olen = l4 = tot = foff = fid = 0
        sport = dport = seq = ack = tflags = doff = itype = icode = 0
        poff = plen = arp_op = next_ = l7 = 0
        opts = NO_OPTS  # the record's TCP option fields
        pend = 0        # PL_SEEN: one past the last byte read
        ip_end = n
        pos, proto = 0, eproto
        while True:     # runs once; `break` is pl_parse's `goto fail` / `goto out`
            if entry == E_ETH:
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
            elif entry == E_NET:
                eth_proto = proto

            if entry <= E_NET:
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
            l4 = proto & 0xFF   # r->l4_proto: a u8, as C stores it

            if entry <= E_L4:
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
                    pos = pend = pos + ln     # the options are read too (at the end)
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
                    echo = ((itype == 0 or itype == 8) if proto == I_ICMP
                            else (itype == 128 or itype == 129))
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
                if l4 == I_TCP:     # pl_guess_l7 reads r->l4_proto
                    if plen >= 4 and peek[:4] in HTTP_REQ:
                        l7 = L7_REQ
                    elif plen >= 4 and peek[:4] == b"HTTP":
                        l7 = L7_RESP
                    elif plen >= 3 and peek[0] == 0x16 and peek[1] == 0x03 and peek[2] <= 0x04:
                        l7 = L7_TLS
                elif l4 == I_UDP and plen >= 12 and (sport in DNS_PORTS or dport in DNS_PORTS):
                    l7 = L7_DNS
            if entry <= E_L4 and doff > 5:      # parse_tcp_options(), from the record's fields
                ln = doff * 4 - S_TCP
                st = poff - ln
                if 0 <= st <= PEEK_OFF_MAX:
                    opts = OPTS(frame, st, ln)
            break
        if trail is not None:
            trail.append(("end", status, ip_end, n))
        return from_copy(pack(
            0, fp(frame, n, pend), 0, n & 0xFFFFFFFF, HOOK, status, layer, flags,
            eth_proto & 0xFFFF, vdepth, ipver, tp0, tp1, tc0, tc1, dmac, smac, sip, dip, ttl, hlen,
            olen, l4 & 0xFF,  # the record's widths: an entry's given protocol is stored as C does
            tot, foff, fid, sport, dport, seq, ack, tflags, doff, itype, icode, poff, plen,
            arp_op, next_, l7, pend, *opts, 0, peek))

    return general


def _fast_path(from_copy, fp, general):
    # one function on purpose: parse() below is the hot path of every walk; each call it made
    # per frame (a helper per IP version, per L4) would cost much of what it saves
    """The parser, parse(frame, trail=None): its fast path, then general() for the rest.

    Fast: untagged IPv4 (IHL 5, not a later fragment) or IPv6 (no extension header) carrying
    TCP or UDP, every check of pl_parse() passing, in a few lines; TCP options through the same
    option walk as general(), packed by their own pack function (a frame without options packs
    as fast as before). It returns exactly what general() would (the differential tests run
    both against the C parser)."""
    C = R.constants()
    P_IP, P_IPV6, I_TCP, I_UDP = (C["PL_ETH_P_IP"], C["PL_ETH_P_IPV6"], C["PL_IPPROTO_TCP"],
                                  C["PL_IPPROTO_UDP"])
    L_TCP, L_UDP, L_PAYLOAD = C["PL_L_TCP"], C["PL_L_UDP"], C["PL_L_PAYLOAD"]
    F_DF, F_MF_FRAG = C["PL_F_IP_DF"], C["PL_F_IP_MF"] | C["PL_F_FRAGMENT"]
    L7_REQ, L7_RESP = C["PL_L7_HTTP_REQUEST"], C["PL_L7_HTTP_RESPONSE"]
    L7_TLS, L7_DNS, PEEK = C["PL_L7_TLS_HANDSHAKE"], C["PL_L7_DNS"], C["PL_PAYLOAD_PEEK"]
    TCP, UDP = H.TCP.unpacker(), H.UDP.unpacker()
    S_ETH, S_IP4, S_IP6 = H.Ethernet.size(), H.IPv4.size(), H.IPv6.size()
    S_TCP, S_UDP = H.TCP.size(), H.UDP.size()
    E4, E6 = S_ETH + S_IP4, S_ETH + S_IP6     # where L4 starts behind an untagged IHL-5 header
    # Ethernet + IPv4 (or IPv6) in one call: the two declared layouts back to back.
    eth_fmt = H.Ethernet.struct_format()[1:]
    ETH_IP4 = struct.Struct(">" + eth_fmt + H.IPv4.struct_format()[1:]).unpack_from
    ETH_IP6 = struct.Struct(">" + eth_fmt + H.IPv6.struct_format()[1:]).unpack_from
    PACK_V4_TCP, PACK_V4_UDP, PACK_V6_TCP, PACK_V6_UDP, PACK_V4_TCPO, PACK_V6_TCPO = \
        fast_packers()
    HTTP_REQ, DNS_PORTS = frozenset(L7_HTTP_METHODS), L7_DNS_PORTS
    OPTS, O4, O6 = record_option_walk(), E4 + S_TCP, E6 + S_TCP     # where options start

    def parse(frame, trail=None):
        if type(frame) is not bytes:
            frame = bytes(frame)
        n = len(frame)
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
                            pend = pos + len(peek)
                            if dr < 0x60:
                                return from_copy(PACK_V4_TCP(
                                    fp(frame, n, pend), n & 0xFFFFFFFF, layer, flags, P_IP, 4,
                                    dmac, smac, sip, dip, ttl, S_IP4, I_TCP, tot, fid, sport,
                                    dport, seq, ack, tflags, dr >> 4, pos, plen, l7, pend, peek))
                            return from_copy(PACK_V4_TCPO(
                                fp(frame, n, pend), n & 0xFFFFFFFF, layer, flags, P_IP, 4, dmac,
                                smac, sip, dip, ttl, S_IP4, I_TCP, tot, fid, sport, dport, seq,
                                ack, tflags, dr >> 4, pos, plen, l7, pend,
                                *OPTS(frame, O4, pos - O4), peek))
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
                            pend = pos + len(peek)
                            if dr < 0x60:
                                return from_copy(PACK_V6_TCP(
                                    fp(frame, n, pend), n & 0xFFFFFFFF, layer, P_IPV6, 6, dmac,
                                    smac, sip, dip, ttl, I_TCP, tot, sport, dport, seq, ack,
                                    tflags, dr >> 4, pos & 0xFFFF, plen & 0xFFFF, l7, pend, peek))
                            return from_copy(PACK_V6_TCPO(
                                fp(frame, n, pend), n & 0xFFFFFFFF, layer, P_IPV6, 6, dmac, smac,
                                sip, dip, ttl, I_TCP, tot, sport, dport, seq, ack, tflags,
                                dr >> 4, pos & 0xFFFF, plen & 0xFFFF, l7, pend,
                                *OPTS(frame, O6, pos - O6), peek))
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
        return general(frame, n, trail)

    return parse


@functools.lru_cache(maxsize=None)
def _make_parser(raw: bool = False):
    """Build the parser, parse(frame, trail=None), closing over constants read once from the
    C headers.

    ``raw=True``: the parser returns the record's bytes instead of a Record (bulk arrays).
    """
    check_layout()
    C = R.constants()
    _check_assumptions(C)
    from_copy = bytes if raw else R.Record.from_buffer_copy
    fp = R._fingerprinter()
    return _fast_path(from_copy, fp, _general_path(from_copy, fp))


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


#: where a hook enters the walk, by name (pktlab_record.h PL_ENTRY_*)
ENTRIES = ("eth", "net", "l4", "payload")


@functools.lru_cache(maxsize=None)
def _general(raw: bool = False):
    check_layout()
    C = R.constants()
    _check_assumptions(C)
    return _general_path(bytes if raw else R.Record.from_buffer_copy, R._fingerprinter())


def walk_record_at(data, entry: str, proto: int = 0) -> Any:
    """The pl_record a hook that enters the walk at ``entry`` makes of ``data``, exactly as
    pl_parse_at() fills it: "net" starts at the network header (``proto``: its EtherType, as a
    cgroup_skb program knows it from the skb), "l4" at the transport header (``proto``: the IP
    protocol, as a socket filter knows it from its socket), "payload" at the payload (``proto``:
    the IP protocol). What lies before the entry stays zero; offsets count from the entry;
    ``fingerprint`` is over the bytes given. "eth" is walk_record().
    """
    if entry not in ENTRIES:
        raise ValueError(f"entry {entry!r}: choose one of {', '.join(ENTRIES)}")
    if not 0 <= int(proto) <= 0xFFFF:
        raise ValueError(f"proto {proto}: an EtherType or IP protocol number, 0..0xffff")
    if type(data) is not bytes:
        data = bytes(data)
    if entry == "eth":
        return walk_record(data)
    return _general()(data, len(data), None, ENTRIES.index(entry), int(proto))
