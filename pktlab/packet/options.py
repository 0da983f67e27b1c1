"""TCP and IPv4 options, decoded for display as details of their layer.

The TCP option parser knows MSS, window scale, SACK, timestamps, MPTCP with its subtype (RFC
8684), NOP, EOL and unknown kinds; the IPv4 one lists type-length-value items (RFC 791). Neither
is part of the record: pl_parse() skips options by the header's length, as the walker does.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any, Mapping, NamedTuple

__all__ = ["TCP_OPTION_KINDS", "MPTCP_SUBTYPES", "TcpOption", "parse_tcp_options",
           "IPV4_OPTION_NAMES", "IPv4Option", "parse_ipv4_options"]


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
    """Decode the MPTCP option body (RFC 8684 section 3): subtype first, then per subtype."""
    if not val:
        return {"subtype": None}, "MPTCP (empty)"
    sub = val[0] >> 4
    name = MPTCP_SUBTYPES.get(sub, f"subtype {sub}")
    d: dict[str, Any] = {"subtype": name, "subtype_id": sub}
    text = name
    try:
        if sub == 0:                                   # MP_CAPABLE
            d["version"] = val[0] & 0xF
            d["flags"] = val[1]
            text += f" v{d['version']} flags=0x{val[1]:02x}"
            if len(val) >= 10:
                d["sender_key"] = val[2:10].hex()
                text += f" sender_key={d['sender_key']}"
            if len(val) >= 18:
                d["receiver_key"] = val[10:18].hex()
                text += f" receiver_key={d['receiver_key']}"
        elif sub == 1:                                 # MP_JOIN (SYN 12, SYN/ACK 16, ACK 24)
            d["backup"] = val[0] & 1
            if len(val) == 10:
                d["address_id"] = val[1]
                d["receiver_token"] = val[2:6].hex()
                d["sender_random"] = val[6:10].hex()
                text += f" (SYN) addr_id={val[1]} token={d['receiver_token']}"
            elif len(val) == 14:
                d["address_id"] = val[1]
                d["sender_hmac"] = val[2:10].hex()
                d["sender_random"] = val[10:14].hex()
                text += f" (SYN/ACK) addr_id={val[1]}"
            elif len(val) == 22:
                d["sender_hmac"] = val[2:22].hex()
                text += " (ACK)"
        elif sub == 2:                                 # DSS
            fl = val[1]
            d["flags"] = fl
            p = 2
            if fl & 0x01:                              # A: data ACK present, a: 8 bytes
                n = 8 if fl & 0x02 else 4
                d["data_ack"] = int.from_bytes(val[p:p + n], "big")
                p += n
            if fl & 0x04:                              # M: mapping present, m: 8-byte DSN
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
            text += " " + " ".join(f"{k}={v}" for k, v in d.items()
                                   if k in ("data_ack", "dsn", "ssn", "data_level_len", "data_fin"))
    except IndexError:
        text += " (short)"
    return d, text


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
