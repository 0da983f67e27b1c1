"""The bulk walker: the records of many frames at once, the common frames column by column.

``walk_records_array(frames)`` gives one numpy array (RECORD_DTYPE), the form kernel records
arrive in (pktlab.kernel.ringbuf), so the two compare column by column: this is the replay's
hot path. ``walk_records(frames)`` yields the same records as Record objects, in flat memory.

Row i is bytes-for-bytes walk_record(frames[i]) (pktlab.packet.walker): frames with up to
PL_VLAN_MAX VLAN tags, then IPv4 (any valid IHL, not a later fragment) or IPv6 (no extension
header), then TCP, UDP or ICMP/ICMPv6, whose every pl_parse() check passes, are filled with
numpy; every other frame goes through the per-frame parser. Tests check every row against the
per-frame walker and against pl_parse() compiled from C (tests/test_walker.py).

numpy is imported on first use, not with this module.
"""

from __future__ import annotations

import functools
from itertools import islice
from typing import Any, NamedTuple

from . import record as R
from .walker import L7_DNS_PORTS, L7_HTTP_METHODS, _make_parser

__all__ = ["walk_records", "walk_records_array"]

#: bytes of each frame the vectorized path reads: Ethernet + 2 tags + IPv4 with options (or
#: IPv6) + a 60-byte TCP header + the payload peek
W = 176


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


def _bulk_chunk(frames: list):
    """Records of a list of bytes frames as a RECORD_DTYPE array: the frames every pl_parse()
    check passes on the common path filled column by column, the others parsed one by one."""
    import numpy as np

    n = len(frames)
    size = R.RECORD_STRUCT.size
    chunk = _Chunk(frames)
    out = np.zeros((n, size), dtype=np.uint8)
    rows = np.flatnonzero(chunk.ok)
    if len(rows):
        out[rows] = chunk.records(rows)
    rest = np.flatnonzero(~chunk.ok)
    if len(rest):
        parse = _make_parser(raw=True)
        out[rest] = np.frombuffer(b"".join([parse(frames[i]) for i in rest.tolist()]),
                                  dtype=np.uint8).reshape(len(rest), size)
    return out.view(R.RECORD_DTYPE).reshape(n)


class _Columns(NamedTuple):
    """What the fill reads of each frame, one array per item, a row per frame."""
    m: Any          # the frame's first W bytes
    lens: Any       # its length
    et0: Any        # the EtherType at byte 12, and behind a first tag (byte 16)
    et1: Any
    depth: Any      # VLAN tags
    eth_proto: Any  # the EtherType behind the tags
    ip: Any         # the IP header's first 40 bytes
    v4: Any         # an IPv4 frame (else IPv6)
    hlen: Any       # IPv4 header length, total length, fragment field
    tot4: Any
    frag: Any
    plen6: Any      # IPv6 payload length
    proto: Any      # the IP protocol
    l4: Any         # where L4 starts, and where the IP packet ends
    end: Any
    hdr: Any        # the L4 header's first 20 bytes
    tcp: Any        # which L4 header it is
    udp: Any
    icmp4: Any
    icmp: Any
    doff: Any       # TCP data offset (words)


class _Chunk:
    """A chunk of frames read column by column: each frame's first W bytes as a row of one
    matrix (``m``), and every field pl_parse() checks read from it for all frames at once, an
    array per attribute (the names of _Columns, and the steps between them); ``ok``: the frames
    that pass every check on the path the vectorized fill covers.

    The matrix rows are windows of the frames joined end to end; bytes past a frame's end are
    its neighbour's, which is harmless because every field used belongs to a frame whose length
    checks passed.

    A chunk keeps every array it made, the joined frames included, until it is done, as the
    one-function version did: measured with tools/bench_walker.py, variants that freed them
    part-way made glibc give the top of the heap back to the kernel after each chunk and fault
    it in again for the next (about 5,000 more page faults a run, a fifth of the bulk rates).
    The effect is the allocator's and can move with any change here: re-measure, page faults
    included, after one.
    """

    def __init__(self, frames: list):
        import numpy as np

        n = len(frames)
        self.lens = lens = np.fromiter(map(len, frames), dtype=np.int64, count=n)
        self.parts = parts = [f[:W] for f in frames]
        parts.append(bytes(W))
        self.flat = flat = np.frombuffer(b"".join(parts), dtype=np.uint8)
        self.kept = kept = np.minimum(lens, W)
        self.m = np.lib.stride_tricks.sliding_window_view(flat, W)[np.cumsum(kept) - kept]
        self._classify()

    def _classify(self):
        """Ethernet and VLAN tags (the loop of pl_parse, unrolled for PL_VLAN_MAX = 2); IPv4 as
        parse_iphdr() accepts it and not a later fragment, or IPv6 with its payload inside the
        frame; then TCP (data offset checked), UDP, ICMP after IPv4 and ICMPv6 after IPv6, each
        with its fixed header inside the IP packet."""
        import numpy as np

        C = R.constants()
        m, lens = self.m, self.lens
        n = len(lens)
        sliding = np.lib.stride_tricks.sliding_window_view
        rows_all = np.arange(n)

        def u16(col):
            return (m[rows_all, col].astype(np.int64) << 8) | m[rows_all, col + 1]

        Q, AD = C["PL_ETH_P_8021Q"], C["PL_ETH_P_8021AD"]
        self.et0 = et0 = u16(np.full(n, 12))
        self.tag1 = tag1 = (et0 == Q) | (et0 == AD)
        self.et1 = et1 = u16(np.full(n, 16))
        self.tag2 = tag2 = tag1 & ((et1 == Q) | (et1 == AD))
        self.et2 = et2 = u16(np.full(n, 20))
        self.depth = depth = tag1.astype(np.int64) + tag2
        self.eth_proto = eth_proto = np.where(tag2, et2, np.where(tag1, et1, et0))
        self.l3 = l3 = 14 + 4 * depth
        self.ok_l2 = ok_l2 = (lens >= l3) & (eth_proto != Q) & (eth_proto != AD)
        self.ip = ip = sliding(m, 40, axis=1)[rows_all, l3]     # each frame's IP header bytes
        self.ver = ver = ip[:, 0] >> 4
        self.hlen = hlen = (ip[:, 0] & 15).astype(np.int64) * 4
        self.tot4 = tot4 = (ip[:, 2].astype(np.int64) << 8) | ip[:, 3]
        self.frag = frag = (ip[:, 6].astype(np.int64) << 8) | ip[:, 7]
        self.v4 = v4 = ok_l2 & (eth_proto == C["PL_ETH_P_IP"]) & (l3 + 20 <= lens) & (ver == 4) \
            & (hlen >= 20) & (l3 + hlen <= lens) & (tot4 >= hlen) & (l3 + tot4 <= lens) \
            & ((frag & 0x1FFF) == 0)
        self.plen6 = plen6 = (ip[:, 4].astype(np.int64) << 8) | ip[:, 5]
        self.v6 = v6 = ok_l2 & (eth_proto == C["PL_ETH_P_IPV6"]) & (l3 + 40 <= lens) \
            & (ver == 6) & (l3 + 40 + plen6 <= lens)
        self.proto = proto = np.where(v4, ip[:, 9], ip[:, 6]).astype(np.int64)
        self.l4 = l4 = np.where(v4, l3 + hlen, l3 + 40)
        self.end = end = np.where(v4, l3 + tot4, l3 + 40 + plen6)
        self.hdr = hdr = sliding(m, 20, axis=1)[rows_all, np.minimum(l4, W - 20)]  # L4 header
        self.isip = isip = v4 | v6
        tcp = isip & (proto == C["PL_IPPROTO_TCP"]) & (l4 + 20 <= end)
        self.doff = doff = (hdr[:, 12] >> 4).astype(np.int64)
        tcp &= (doff >= 5) & (l4 + doff * 4 <= end)
        self.tcp = tcp
        self.udp = udp = isip & (proto == C["PL_IPPROTO_UDP"]) & (l4 + 8 <= end)
        self.icmp4 = icmp4 = v4 & (proto == C["PL_IPPROTO_ICMP"]) & (l4 + 8 <= end)
        self.icmp6 = icmp6 = v6 & (proto == C["PL_IPPROTO_ICMPV6"]) & (l4 + 8 <= end)
        self.icmp = icmp = icmp4 | icmp6
        self.ok = tcp | udp | icmp

    def records(self, rows):
        """The records of the frames ``rows`` (every check passed), as a (len(rows), size)
        uint8 matrix."""
        self.taken = _Columns._make(getattr(self, name)[rows] for name in _Columns._fields)
        return _fill(self.taken)


@functools.lru_cache(maxsize=None)
def _bulk_layout():
    """name -> (offset, size, numpy dtype in host order) of every record field."""
    import numpy as np

    return {name: (off, size, np.dtype(f"=u{size}") if size in (1, 2, 4, 8) else None)
            for name, off, size in R.field_layout()}


def _fill(s: _Columns):
    """The records of the frames in ``s`` (every pl_parse() check passed), as a (k, size) uint8
    matrix: Ethernet to IP, then L4 and the payload."""
    import numpy as np

    k = len(s.lens)
    buf = np.zeros((k, R.RECORD_STRUCT.size), dtype=np.uint8)
    layout = _bulk_layout()

    def put(name, values):
        off, width, dt = layout[name]
        v = np.asarray(values)
        if v.ndim == 2:
            buf[:, off:off + width] = v
        else:
            buf[:, off:off + width] = v.astype(dt).view(np.uint8).reshape(k, width)

    _fill_l2_l3(put, s)
    _fill_l4_payload(put, s)
    return buf


def _fill_l2_l3(put, s: _Columns):
    """Ethernet, VLAN tags and the IP header's fields."""
    import numpy as np

    C = R.constants()
    k = len(s.lens)
    m_r, ipr, v4r, d, fr, hl = s.m, s.ip, s.v4, s.depth, s.frag, s.hlen
    put("frame_len", s.lens)
    put("flags", np.where(v4r, np.where(fr & 0x4000, C["PL_F_IP_DF"], 0)
                          | np.where(fr & 0x2000, C["PL_F_IP_MF"] | C["PL_F_FRAGMENT"], 0), 0))
    put("eth_proto", s.eth_proto)
    put("vlan_depth", d)
    vt = np.zeros((k, 2), dtype=np.int64)
    vc = np.zeros((k, 2), dtype=np.int64)
    vt[:, 0] = np.where(d >= 1, s.et0, 0)
    vt[:, 1] = np.where(d >= 2, s.et1, 0)
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
    put("ip4_hdr_len", np.where(v4r, hl, 0))
    put("ip4_opt_len", np.where(v4r, hl - 20, 0))
    put("l4_proto", s.proto)
    put("ip_tot_len", np.where(v4r, s.tot4, (40 + s.plen6) & 0xFFFF))
    put("frag_id", np.where(v4r, (ipr[:, 4].astype(np.int64) << 8) | ipr[:, 5], 0))


def _fill_l4_payload(put, s: _Columns):
    """The L4 header's fields, the payload's place and first bytes, the L7 guess, the layer the
    walk ended at, and the fingerprint of the bytes it read."""
    import numpy as np

    C = R.constants()
    PEEK = C["PL_PAYLOAD_PEEK"]
    k = len(s.lens)
    hr, tr, ur, i4r, ir = s.hdr, s.tcp, s.udp, s.icmp4, s.icmp
    pos = s.l4 + np.where(tr, s.doff * 4, 8)
    plen = (s.end - pos) & 0xFFFF
    l4layer = np.where(tr, C["PL_L_TCP"], np.where(ur, C["PL_L_UDP"],
                                                    np.where(i4r, C["PL_L_ICMP"],
                                                             C["PL_L_ICMPV6"])))
    # PL_SEEN: the peek's end, else the L4 header's end (TCP options included: they are read)
    pend = pos + np.minimum(plen, PEEK)
    put("parse_end", pend)
    put("fingerprint", R.fingerprints_of_prefixes(s.m, s.lens, pend))
    put("layer", np.where(plen > 0, C["PL_L_PAYLOAD"], l4layer))

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
    put("tcp_doff", np.where(tr, s.doff, 0))
    put("icmp_type", np.where(ir, itype, 0))
    put("icmp_code", np.where(ir, hr[:, 1], 0))
    put("payload_off", pos & 0xFFFF)
    put("payload_len", plen)
    peek = np.lib.stride_tricks.sliding_window_view(s.m, PEEK, axis=1)[
        np.arange(k), np.minimum(pos, W - PEEK)]
    peek = np.where(np.arange(PEEK) < np.minimum(plen, PEEK)[:, None], peek, 0)
    put("payload", peek.astype(np.uint8))
    # pl_guess_l7(), on the copied bytes as the C does
    w4 = (peek[:, 0].astype(np.int64) << 24) | (peek[:, 1].astype(np.int64) << 16) \
        | (peek[:, 2].astype(np.int64) << 8) | peek[:, 3]
    methods = [int.from_bytes(x, "big") for x in L7_HTTP_METHODS]
    t4 = tr & (plen >= 4)
    l7 = np.where(t4 & np.isin(w4, methods), C["PL_L7_HTTP_REQUEST"], 0)
    l7 = np.where(t4 & (w4 == int.from_bytes(b"HTTP", "big")), C["PL_L7_HTTP_RESPONSE"], l7)
    tls = tr & (plen >= 3) & (peek[:, 0] == 0x16) & (peek[:, 1] == 0x03) & (peek[:, 2] <= 4)
    l7 = np.where((l7 == 0) & tls, C["PL_L7_TLS_HANDSHAKE"], l7)
    dns = ur & (plen >= 12) & (np.isin(sport, L7_DNS_PORTS) | np.isin(dport, L7_DNS_PORTS))
    put("l7", np.where(dns, C["PL_L7_DNS"], l7))
    for name, values in _tcp_options(s).items():
        put(name, values)


def _tcp_options(s: _Columns) -> dict:
    """parse_tcp_options() for every frame at once: the record's option fields by name. Linux's
    layouts as words first, as the C does; then one option per step for every frame whose walk
    goes on, until none does (a step per option of the longest list, not 40)."""
    import numpy as np

    C = R.constants()
    k = len(s.lens)
    out = {name: np.zeros(k, dtype=np.int64) for name in (
        "tcp_mss", "tcp_wscale", "tcp_opt_flags", "tcp_sack_blocks", "mptcp_subtype",
        "tcp_ts_val", "tcp_ts_ecr", "mptcp_token", "mptcp_subtypes")}
    rows = np.flatnonzero(s.tcp & (s.doff > 5))
    if not len(rows):
        return out
    m, start, n = s.m[rows], (s.l4 + 20)[rows], s.doff[rows] * 4 - 20
    ar = np.arange(len(rows))

    def u32(at, sel=slice(None)):
        b = m[ar[sel, None], at[:, None] + np.arange(4)].astype(np.int64)
        return (b[:, 0] << 24) | (b[:, 1] << 16) | (b[:, 2] << 8) | b[:, 3]

    mss, ws, flags, sack, sub, tsv, tse, tok, subs = (np.zeros(len(rows), dtype=np.int64)
                                                      for _ in range(9))
    off = np.zeros(len(rows), dtype=np.int64)
    F = {x: C[f"PL_TCPO_{x}"] for x in ("MSS", "WSCALE", "SACK_PERM", "SACK", "TIMESTAMP",
                                         "MPTCP", "OTHER", "BAD")}
    # the words: NOP NOP TS; MSS, SACK_PERM TS, NOP WS
    w0, w1, w2, w3, w4 = (u32(start + 4 * i) for i in range(5))
    nnts = (w0 == 0x0101080A) & (n >= 12)
    tsv = np.where(nnts, w1, tsv)
    tse = np.where(nnts, w2, tse)
    flags = np.where(nnts, F["TIMESTAMP"], flags)
    off = np.where(nnts, 12, off)
    syn = ~nnts & (w0 >> 16 == 0x0204)
    mss = np.where(syn, w0 & 0xFFFF, mss)
    flags = np.where(syn, F["MSS"], flags)
    off = np.where(syn, 4, off)
    spts = syn & (n >= 16) & (w1 == 0x0402080A)
    tsv = np.where(spts, w2, tsv)
    tse = np.where(spts, w3, tse)
    flags |= np.where(spts, F["SACK_PERM"] | F["TIMESTAMP"], 0)
    off = np.where(spts, 16, off)
    nws = spts & (n >= 20) & (w4 >> 8 == 0x010303)
    ws = np.where(nws, w4 & 0xFF, ws)
    flags |= np.where(nws, F["WSCALE"], 0)
    off = np.where(nws, 20, off)
    # the walk: a step moves every frame still walking by one option
    going = np.flatnonzero(off < n)
    while len(going):
        o, nn, at = off[going], n[going], start[going] + off[going]
        kind = m[going, at].astype(np.int64)
        olen = m[going, at + 1].astype(np.int64)    # used only where it is an option byte
        nop = kind == C["PL_TCPOPT_NOP"]
        tlv = (kind != C["PL_TCPOPT_EOL"]) & ~nop
        bad = tlv & ((o + 2 > nn) | (olen < 2) | (o + olen > nn))
        flags[going] |= np.where(bad, F["BAD"], 0)
        ok = tlv & ~bad

        def where(kind_name, cond):
            return ok & (kind == C[f"PL_TCPOPT_{kind_name}"]) & cond
        t = where("TIMESTAMP", olen == 10)
        if t.any():
            g = going[t]
            tsv[g], tse[g] = u32(at[t] + 2, g), u32(at[t] + 6, g)
        mm = where("MSS", olen == 4)
        if mm.any():
            g = going[mm]
            mss[g] = (m[g, at[mm] + 2].astype(np.int64) << 8) | m[g, at[mm] + 3]
        wsc = where("WSCALE", olen == 3)
        ws[going[wsc]] = m[going[wsc], at[wsc] + 2]
        sk = where("SACK", (olen >= 10) & (olen & 7 == 2))
        sack[going[sk]] = olen[sk] >> 3
        mp = where("MPTCP", olen >= 3)
        if mp.any():
            g = going[mp]
            st = m[g, at[mp] + 2].astype(np.int64) >> 4
            sub[g] = np.where(subs[g] == 0, st, sub[g])
            subs[g] |= 1 << st
            join = (st == C["PL_MPTCP_MP_JOIN"]) & (olen[mp] == 12)
            if join.any():
                tok[g[join]] = u32(at[mp][join] + 4, g[join])
        sp = where("SACK_PERM", olen == 2)
        known = t | mm | wsc | sk | mp | sp
        flags[going] |= (np.where(t, F["TIMESTAMP"], 0) | np.where(mm, F["MSS"], 0)
                         | np.where(wsc, F["WSCALE"], 0) | np.where(sp, F["SACK_PERM"], 0)
                         | np.where(sk, F["SACK"], 0) | np.where(mp, F["MPTCP"], 0)
                         | np.where(ok & ~known, F["OTHER"], 0))
        off[going] = np.where(nop, o + 1, o + olen)
        going = going[(nop | ok) & (off[going] < nn)]
    for name, v in zip(out, (mss, ws, flags, sack, sub, tsv, tse, tok, subs)):
        out[name][rows] = v
    return out
