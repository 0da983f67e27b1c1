"""TCP and IPv4 options: the record's option walk, and every option decoded for display.

- ``record_option_walk()``: parse_tcp_options() of bpf_snippets/pktlab_parse.h line by line,
  the part of the walk that fills the record's option fields (MSS, window scale, SACK
  permitted, SACK blocks, timestamps, the MPTCP subtype and MP_JOIN token, PL_TCPO_* flags);
- ``parse_tcp_options()``: every TCP option as a layer's detail (the views): MSS, window scale,
  SACK, timestamps, MPTCP with every subtype of RFC 8684, NOP, EOL, unknown kinds;
- ``parse_ipv4_options()``: IPv4 options as type-length-value items (RFC 791), display only
  (the record keeps only their length).
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from typing import Any, Mapping, NamedTuple

from . import record as R

__all__ = ["TCP_OPTION_KINDS", "MPTCP_SUBTYPES", "TcpOption", "parse_tcp_options",
           "record_option_walk", "IPV4_OPTION_NAMES", "IPv4Option", "parse_ipv4_options"]


# --- the record's option walk -------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def record_option_walk():
    """parse_tcp_options() of pktlab_parse.h, as walk(frame, start, n): the n option bytes of
    ``frame`` at ``start`` (1..40; the caller checked they are inside the frame) give the
    record's option fields, in record order: (tcp_mss, tcp_wscale, tcp_opt_flags,
    tcp_sack_blocks, mptcp_subtype, tcp_ts_val, tcp_ts_ecr, mptcp_token, mptcp_subtypes).

    Built once, with the constants read from the C headers."""
    C = R.constants()
    EOL, NOP, MSS, WS = C["PL_TCPOPT_EOL"], C["PL_TCPOPT_NOP"], C["PL_TCPOPT_MSS"], \
        C["PL_TCPOPT_WSCALE"]
    SACK_PERM, SACK, TS, MPTCP = C["PL_TCPOPT_SACK_PERM"], C["PL_TCPOPT_SACK"], \
        C["PL_TCPOPT_TIMESTAMP"], C["PL_TCPOPT_MPTCP"]
    F_MSS, F_WS, F_SACK_PERM, F_SACK = C["PL_TCPO_MSS"], C["PL_TCPO_WSCALE"], \
        C["PL_TCPO_SACK_PERM"], C["PL_TCPO_SACK"]
    F_TS, F_MPTCP, F_OTHER, F_BAD = C["PL_TCPO_TIMESTAMP"], C["PL_TCPO_MPTCP"], \
        C["PL_TCPO_OTHER"], C["PL_TCPO_BAD"]
    MP_JOIN = C["PL_MPTCP_MP_JOIN"]
    U32, U32x2, U16 = (struct.Struct(">I").unpack_from, struct.Struct(">II").unpack_from,
                       struct.Struct(">H").unpack_from)

    def walk(frame, start, n):
        # parse_tcp_options() line by line: Linux's layouts as words first, then the walk
        mss = ws = flags = sack = sub = tsv = tse = tok = subs = off = 0
        w = U32(frame, start)[0]
        if w == 0x0101080A and n >= 12:                          # NOP NOP TS
            tsv, tse = U32x2(frame, start + 4)
            flags = F_TS
            off = 12
        elif w >> 16 == 0x0204:                                  # MSS
            mss = w & 0xFFFF
            flags = F_MSS
            off = 4
            if n >= 16 and U32(frame, start + 4)[0] == 0x0402080A:   # SACK_PERM TS
                tsv, tse = U32x2(frame, start + 8)
                flags |= F_SACK_PERM | F_TS
                off = 16
                if n >= 20:
                    w = U32(frame, start + 16)[0]
                    if w >> 8 == 0x010303:                       # NOP WS
                        ws = w & 0xFF
                        flags |= F_WS
                        off = 20
        while off < n:          # each option takes a byte at least: at most 40 rounds, as in C
            p = start + off
            kind = frame[p]
            if kind == EOL:
                break
            if kind == NOP:
                off += 1
                continue
            if off + 2 > n:
                flags |= F_BAD
                break
            olen = frame[p + 1]
            if olen < 2 or off + olen > n:
                flags |= F_BAD
                break
            if kind == TS and olen == 10:
                tsv, tse = U32x2(frame, p + 2)
                flags |= F_TS
            elif kind == MSS and olen == 4:
                mss = U16(frame, p + 2)[0]
                flags |= F_MSS
            elif kind == WS and olen == 3:
                ws = frame[p + 2]
                flags |= F_WS
            elif kind == SACK_PERM and olen == 2:
                flags |= F_SACK_PERM
            elif kind == SACK and olen >= 10 and olen & 7 == 2:
                sack = olen >> 3
                flags |= F_SACK
            elif kind == MPTCP and olen >= 3:
                st = frame[p + 2] >> 4
                if not subs:
                    sub = st
                subs |= 1 << st
                flags |= F_MPTCP
                if st == MP_JOIN and olen == 12:
                    tok = U32(frame, p + 4)[0]
            else:
                flags |= F_OTHER
            off += olen
        return mss, ws, flags, sack, sub, tsv, tse, tok, subs

    return walk


# --- TCP options --------------------------------------------------------------------------------

TCP_OPTION_KINDS: Mapping[int, str] = {
    0: "EOL", 1: "NOP", 2: "MSS", 3: "WScale", 4: "SAckOK", 5: "SAck", 8: "Timestamp",
    19: "MD5", 28: "UTO", 29: "AO", 30: "MPTCP", 34: "TFO",
}

MPTCP_SUBTYPES: Mapping[int, str] = {
    0: "MP_CAPABLE", 1: "MP_JOIN", 2: "DSS", 3: "ADD_ADDR", 4: "REMOVE_ADDR", 5: "MP_PRIO",
    6: "MP_FAIL", 7: "MP_FASTCLOSE", 8: "MP_TCPRST", 15: "MP_EXPERIMENTAL",
}


class TcpOption(NamedTuple):
    """One TCP option: kind, name, where (frame offset, bytes incl. kind/len), decoded value,
    and its raw body (the bytes after kind and length)."""
    kind: int
    name: str
    offset: int
    length: int
    value: Any
    display: str
    data: bytes = b""


def _mptcp(val: bytes) -> tuple[dict, str]:
    """Decode the MPTCP option body (RFC 8684 section 3): subtype first, then per subtype.
    ``val`` is the option after kind and length; val[0] >> 4 is the subtype."""
    if not val:
        return {"subtype": None}, "MPTCP (empty)"
    sub = val[0] >> 4
    name = MPTCP_SUBTYPES.get(sub, f"subtype {sub}")
    d: dict[str, Any] = {"subtype": name, "subtype_id": sub}
    try:
        text = name + _MPTCP_DECODERS.get(sub, _mp_other)(val, d)
    except IndexError:
        text = name + " (short)"
    return d, text


def _hexint(b: bytes) -> str:
    """A key or token as hex, and as the decimal tshark prints."""
    return f"0x{b.hex()} ({int.from_bytes(b, 'big')})"


def _mp_capable(val, d):                 # version, flags; keys; data-level length; checksum
    d["version"], d["flags"] = val[0] & 0xF, val[1]
    text = f" v{d['version']} flags=0x{val[1]:02x}"
    if len(val) >= 10:
        d["sender_key"] = val[2:10].hex()
        text += f" sender_key={d['sender_key']}"
    if len(val) >= 18:
        d["receiver_key"] = val[10:18].hex()
        text += f" receiver_key={d['receiver_key']}"
    if len(val) >= 20:
        d["data_level_len"] = int.from_bytes(val[18:20], "big")
        text += f" data_level_len={d['data_level_len']}"
    if len(val) >= 22:
        d["checksum"] = int.from_bytes(val[20:22], "big")
    return text


def _mp_join(val, d):                    # SYN 12, SYN/ACK 16, ACK 24 (told by length)
    d["backup"] = val[0] & 1
    if len(val) == 10:
        d["address_id"] = val[1]
        d["receiver_token"] = val[2:6].hex()
        d["sender_random"] = val[6:10].hex()
        return f" (SYN) addr_id={val[1]} backup={d['backup']} token={_hexint(val[2:6])}"
    if len(val) == 14:
        d["address_id"] = val[1]
        d["sender_hmac"] = val[2:10].hex()
        d["sender_random"] = val[10:14].hex()
        return f" (SYN/ACK) addr_id={val[1]} backup={d['backup']}"
    if len(val) == 22:
        d["sender_hmac"] = val[2:22].hex()
        return " (ACK)"
    return f" (length {len(val) + 2}: no MP_JOIN form)"


def _mp_dss(val, d):                     # flags F m M a A; data ACK; mapping; checksum
    fl = val[1]
    d["flags"] = fl
    p = 2
    if fl & 0x01:                        # A: data ACK present, a: 8 bytes
        n = 8 if fl & 0x02 else 4
        d["data_ack"] = int.from_bytes(val[p:p + n], "big")
        p += n
    if fl & 0x04:                        # M: mapping present, m: 8-byte DSN
        n = 8 if fl & 0x08 else 4
        d["dsn"] = int.from_bytes(val[p:p + n], "big")
        p += n
        d["ssn"] = int.from_bytes(val[p:p + 4], "big")
        d["data_level_len"] = int.from_bytes(val[p + 4:p + 6], "big")
        p += 6
        if len(val) >= p + 2:
            d["checksum"] = int.from_bytes(val[p:p + 2], "big")
    if fl & 0x10:
        d["data_fin"] = 1
    return " " + " ".join(f"{k}={v}" for k, v in d.items()
                          if k in ("data_ack", "dsn", "ssn", "data_level_len", "data_fin"))


def _mp_add_addr(val, d):                # E (echo); id; IPv4/IPv6; port; HMAC (not echoed)
    echo = val[0] & 1
    d.update(echo=echo, address_id=val[1])
    rest = len(val) - 2 - (0 if echo else 8)
    if rest in (4, 6):
        d["address"] = str(ipaddress.IPv4Address(val[2:6]))
    elif rest in (16, 18):
        d["address"] = str(ipaddress.IPv6Address(val[2:18]))
    if rest in (6, 18):
        d["port"] = int.from_bytes(val[2 + rest - 2:2 + rest], "big")
    if not echo:
        d["hmac"] = val[-8:].hex()
    where = d.get("address", "?") + (f" port {d['port']}" if "port" in d else "")
    return f"{' (echo)' if echo else ''} addr_id={val[1]} {where}"


def _mp_remove_addr(val, d):
    d["address_ids"] = list(val[1:])
    return " ids=" + ",".join(map(str, d["address_ids"]))


def _mp_prio(val, d):                    # B (backup); an address id in version 0 only
    d["backup"] = val[0] & 1
    return f" backup={d['backup']}"


def _mp_fail(val, d):                    # the data sequence number of the failed mapping
    d["dsn"] = int.from_bytes(val[2:10], "big")
    return f" dsn={d['dsn']}"


def _mp_fastclose(val, d):               # the receiver's key
    d["receiver_key"] = val[2:10].hex()
    return f" receiver_key={d['receiver_key']}"


def _mp_tcprst(val, d):                  # flags U V W T; reason
    d["flags"], d["reason"] = val[0] & 0xF, val[1]
    return f" flags=0x{d['flags']:x} reason={val[1]}"


def _mp_other(val, d):
    return f" {val[1:].hex()}" if len(val) > 1 else ""


_MPTCP_DECODERS = {0: _mp_capable, 1: _mp_join, 2: _mp_dss, 3: _mp_add_addr,
                   4: _mp_remove_addr, 5: _mp_prio, 6: _mp_fail, 7: _mp_fastclose,
                   8: _mp_tcprst}


def parse_tcp_options(data: bytes, base: int = 0) -> list[TcpOption]:
    """The options in ``data`` (the bytes after the fixed 20-byte TCP header).

    ``base`` is the frame offset of data[0], so each option knows where its bytes are. A
    malformed option (length byte missing, below 2, or past the end) is listed as such and ends
    the list, because nothing after it can be located.
    """
    out: list[TcpOption] = []
    n, i = len(data), 0
    while i < n:
        k = data[i]
        if k == 0:
            out.append(TcpOption(0, "EOL", base + i, 1, None, "EOL"))
            break
        if k == 1:
            out.append(TcpOption(1, "NOP", base + i, 1, None, "NOP"))
            i += 1
            continue
        name = TCP_OPTION_KINDS.get(k, f"kind {k}")
        if i + 1 >= n:
            out.append(TcpOption(k, name, base + i, n - i, None,
                                 f"{name}: malformed (length byte missing)"))
            break
        ln = data[i + 1]
        if ln < 2 or i + ln > n:
            out.append(TcpOption(k, name, base + i, n - i, bytes(data[i + 2:]),
                                 f"{name}: malformed (length {ln}, {n - i} bytes left)",
                                 bytes(data[i + 2:])))
            break
        val = bytes(data[i + 2:i + ln])
        value: Any = val
        disp = f"{name} {val.hex()}" if val else name
        if k == 2 and ln == 4:
            value = int.from_bytes(val, "big")
            disp = f"MSS {value}"
        elif k == 3 and ln == 3:
            value = val[0]
            disp = f"WScale {value} (x{1 << min(value, 14)})"
        elif k == 4 and ln == 2:
            value, disp = None, "SAckOK"
        elif k == 5 and (ln - 2) % 8 == 0:
            value = tuple(struct.unpack(f">{(ln - 2) // 8 * 2}I", val))
            value = tuple(zip(value[0::2], value[1::2]))
            disp = "SAck " + " ".join(f"{a}-{b}" for a, b in value)
        elif k == 8 and ln == 10:
            value = struct.unpack(">II", val)
            disp = f"Timestamp val={value[0]} ecr={value[1]}"
        elif k == 30:
            value, disp = _mptcp(val)
            disp = "MPTCP " + disp
        elif k in (2, 3, 4, 8):
            disp = f"{name}: malformed (length {ln})"
        out.append(TcpOption(k, name, base + i, ln, value, disp, val))
        i += ln
    return out


# --- IPv4 options (display only) ------------------------------------------------------------------

IPV4_OPTION_NAMES: Mapping[int, str] = {
    0: "EOL", 1: "NOP", 7: "RR", 68: "TS", 130: "SEC", 131: "LSRR", 137: "SSRR", 136: "SID",
    148: "RTRALT", 82: "TR", 25: "QS",
}


class IPv4Option(NamedTuple):
    type: int
    name: str
    offset: int
    length: int
    value: bytes
    display: str


def parse_ipv4_options(data: bytes, base: int = 0) -> list[IPv4Option]:
    """IPv4 options as type-length-value items (RFC 791), for display."""
    out: list[IPv4Option] = []
    n, i = len(data), 0
    while i < n:
        t = data[i]
        name = IPV4_OPTION_NAMES.get(t, f"type {t}")
        if t in (0, 1):
            out.append(IPv4Option(t, name, base + i, 1, b"", name))
            i += 1
            if t == 0:
                break
            continue
        ln = data[i + 1] if i + 1 < n else 0
        if ln < 2 or i + ln > n:
            out.append(IPv4Option(t, name, base + i, n - i, bytes(data[i:]),
                                  f"{name}: malformed (length {ln})"))
            break
        val = bytes(data[i + 2:i + ln])
        disp = f"{name} {val.hex()}" if val else name
        if t in (7, 131, 137) and ln >= 3:
            addrs = [str(ipaddress.IPv4Address(val[j:j + 4])) for j in range(1, len(val) - 3, 4)]
            disp = f"{name} ptr={val[0]} " + " ".join(addrs)
        elif t == 148 and ln == 4:
            disp = f"{name} value={int.from_bytes(val, 'big')}"
        out.append(IPv4Option(t, name, base + i, ln, val, disp))
        i += ln
    return out
