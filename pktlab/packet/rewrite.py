"""Make a capture from another network acceptable to the lab's stack: new destination MAC and
IP addresses, with the checksums fixed. Never silent: every replay that rewrites says what and
how many frames.

The hooks see frames whatever their addresses; the rewrite matters for what comes after them
(the dut's stack only takes frames addressed to it, sockets only see their own address).

Checksums: the IPv4 header checksum is recomputed; TCP/UDP/ICMPv6 checksums (whose pseudo-header
holds the addresses) are updated incrementally (RFC 1624), so a frame whose checksum was wrong
before stays exactly as wrong after.
"""

import ipaddress
import struct
from dataclasses import dataclass, field

from . import record as rec


def _mac_bytes(text):
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"MAC address {text!r}: use six hex bytes, e.g. 02:00:00:00:00:02")
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        raise ValueError(f"MAC address {text!r}: not hex") from None


def _csum_fold(s):
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def ip_checksum(b):
    if len(b) % 2:
        b += b"\0"
    return ~_csum_fold(sum(struct.unpack(f"!{len(b) // 2}H", b))) & 0xFFFF


def _csum_update(csum, old, new):
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') over the 16-bit words that changed."""
    s = ~csum & 0xFFFF
    for (o,), (n,) in zip(struct.iter_unpack("!H", old), struct.iter_unpack("!H", new)):
        s += (~o & 0xFFFF) + n
    return ~_csum_fold(s) & 0xFFFF


@dataclass
class Rewriter:
    """dst_mac / dst_ip4 / dst_ip6: the new values (None: leave alone)."""
    dst_mac: str = None
    dst_ip4: str = None
    dst_ip6: str = None
    counts: dict = field(default_factory=lambda: {"dst_mac": 0, "dst_ip4": 0, "dst_ip6": 0,
                                                   "l4_checksums": 0})

    def __post_init__(self):
        self._mac = _mac_bytes(self.dst_mac) if self.dst_mac else None
        self._ip4 = ipaddress.IPv4Address(self.dst_ip4).packed if self.dst_ip4 else None
        self._ip6 = ipaddress.IPv6Address(self.dst_ip6).packed if self.dst_ip6 else None

    @property
    def active(self):
        return bool(self._mac or self._ip4 or self._ip6)

    def describe(self):
        parts = []
        if self._mac:
            parts.append(f"destination MAC -> {self.dst_mac} ({self.counts['dst_mac']} frames)")
        if self._ip4:
            parts.append(f"destination IPv4 -> {self.dst_ip4} ({self.counts['dst_ip4']} frames)")
        if self._ip6:
            parts.append(f"destination IPv6 -> {self.dst_ip6} ({self.counts['dst_ip6']} frames)")
        if self._ip4 or self._ip6:
            parts.append(f"IP header and {self.counts['l4_checksums']} TCP/UDP/ICMPv6 checksums "
                         "updated to match")
        return "; ".join(parts)

    def summary(self):
        return {"dst_mac": self.dst_mac, "dst_ip4": self.dst_ip4, "dst_ip6": self.dst_ip6,
                "frames_changed": dict(self.counts), "description": self.describe()}

    def __call__(self, frame):
        if not self.active or len(frame) < 14:
            return frame
        from .walker import walk_record
        b = bytearray(frame)
        if self._mac and b[0:6] != self._mac:
            b[0:6] = self._mac
            self.counts["dst_mac"] += 1
        r = walk_record(frame)
        l3 = 14 + 4 * r.vlan_depth
        ok_l3 = r.ip_version in (4, 6) and not (r.status == rec.constants()["PL_ST_TRUNCATED"]
                                                and r.layer in (rec.constants()["PL_L_IPV4"],
                                                                rec.constants()["PL_L_IPV6"]))
        if not ok_l3:
            return bytes(b)
        if r.ip_version == 4 and self._ip4 and r.eth_proto == 0x0800:
            old = bytes(b[l3 + 16:l3 + 20])
            if old != self._ip4:
                b[l3 + 16:l3 + 20] = self._ip4
                hl = (b[l3] & 0x0F) * 4
                if hl >= 20 and l3 + hl <= len(b):
                    b[l3 + 10:l3 + 12] = b"\0\0"
                    b[l3 + 10:l3 + 12] = struct.pack("!H", ip_checksum(bytes(b[l3:l3 + hl])))
                self._fix_l4(b, r, old, self._ip4)
                self.counts["dst_ip4"] += 1
        elif r.ip_version == 6 and self._ip6 and r.eth_proto == 0x86DD:
            old = bytes(b[l3 + 24:l3 + 40])
            if old != self._ip6:
                b[l3 + 24:l3 + 40] = self._ip6
                self._fix_l4(b, r, old, self._ip6)
                self.counts["dst_ip6"] += 1
        return bytes(b)

    def _fix_l4(self, b, r, old, new):
        c = rec.constants()
        layer_hdr = {c["PL_L_TCP"]: (20, 16), c["PL_L_UDP"]: (8, 6), c["PL_L_ICMPV6"]: (8, 2)}
        # the L4 header must have parsed: the status is OK (or only the payload is short)
        if r.status != c["PL_ST_OK"]:
            return
        last = r.layer if r.layer != c["PL_L_PAYLOAD"] else {
            6: c["PL_L_TCP"], 17: c["PL_L_UDP"], 58: c["PL_L_ICMPV6"]}.get(r.l4_proto)
        if last not in layer_hdr or (r.flags & c["PL_F_FRAGMENT"] and r.frag_off):
            return
        hdr_len = r.tcp_doff * 4 if last == c["PL_L_TCP"] else layer_hdr[last][0]
        l4 = r.payload_off - hdr_len
        off = l4 + layer_hdr[last][1]
        if l4 < 0 or off + 2 > len(b):
            return
        (csum,) = struct.unpack("!H", b[off:off + 2])
        if last == c["PL_L_UDP"] and csum == 0 and r.ip_version == 4:
            return       # IPv4 UDP without a checksum stays without
        new_csum = _csum_update(csum, old, new)
        if last == c["PL_L_UDP"] and new_csum == 0:
            new_csum = 0xFFFF
        b[off:off + 2] = struct.pack("!H", new_csum)
        self.counts["l4_checksums"] += 1


def for_lab(lab, dst_mac="auto", dst_ip4="auto", dst_ip6="auto"):
    """A Rewriter aimed at a lab's dut ('auto' = the dut's own MAC/addresses, None = keep)."""
    return Rewriter(dst_mac=lab.mac("dut") if dst_mac == "auto" else dst_mac,
                    dst_ip4=lab.dut_ip4 if dst_ip4 == "auto" else dst_ip4,
                    dst_ip6=lab.dut_ip6 if dst_ip6 == "auto" else dst_ip6)
