#!/usr/bin/env python3
"""Generate pktlab's bundled capture corpus and its MANIFEST.json, byte for byte reproducibly.

    python pcaps/generate.py            (re)write every capture and the manifest here
    python pcaps/generate.py --check    regenerate into a temporary directory and compare bytes
                                        with the committed files (exit 1 on any difference)

Packets are built with scapy (every address, port, id and timestamp given explicitly, so no
route lookups or clocks leak in; the few random-looking bytes come from seeded generators) and
written with pktlab's own small writers (pktlab.capture.write_pcap / write_pcapng), so the
special formats (cooked SLL/SLL2, raw IP, nanosecond, big-endian, multi-interface pcapng) do not
depend on scapy's writer.

Each frame is declared with the status and layer the walker (and the kernel parser) must report
for it: the manifest's expectations are the author's intent, checked by tests/test_walker.py,
never computed by the walker itself.

Addresses are documentation/private only: 192.0.2.0/24, 198.51.100.0/24, 10.0.0.0/8,
2001:db8::/32, fd00::/8, and MACs from 00:00:5e:00:53:00/24 (RFC 7042 documentation range).
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import json
import random
import struct
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple, Optional

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from pktlab.packet.capture import read_frames
from pktlab.packet.frames import LINKTYPE_ETHERNET, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_RAW
from pktlab.packet.write import PcapngInterface, PcapngPacket, write_pcap, write_pcapng

#: 2023-11-14T22:13:20Z: every capture's clock starts here (ns since the epoch).
BASE_TS = 1_700_000_000 * 1_000_000_000
MAX_FRAME = 1514

MAC_C, MAC_S, MAC_R = "00:00:5e:00:53:01", "00:00:5e:00:53:02", "00:00:5e:00:53:fe"
C4, S4, R4, DNS4 = "192.0.2.10", "198.51.100.20", "192.0.2.1", "198.51.100.53"
C6, S6, DNS6 = "2001:db8:1::10", "2001:db8:2::20", "2001:db8:2::53"
L10A, L10B = "10.0.0.1", "10.0.0.2"

LESSONS = ("01-casting-headers", "02-xdp", "03-tc", "04-kprobe", "05-conveyor-belt",
           "06-hook-throughput", "07-replay-your-pcap")


class F(NamedTuple):
    """One frame and what the walker must say about it."""
    data: bytes
    status: str = "OK"
    layer: str = "PAYLOAD"
    note: str = ""
    l7: str = "NONE"
    wirelen: Optional[int] = None      # > len(data): the capture cut it (snaplen)
    iface: int = 0                     # pcapng interface
    opts: Optional[dict] = None        # what the record must carry of the TCP options


class Capture(NamedTuple):
    name: str
    shows: str
    lessons: tuple
    frames: list
    linktype: int = LINKTYPE_ETHERNET
    fmt: str = "pcap"                  # pcap | pcapng
    nanosecond: bool = False
    byteorder: str = "little"
    interfaces: tuple = ()             # pcapng: PcapngInterface items
    step_ns: int = 1_000_000           # spacing of timestamps


def S():
    """scapy, imported on demand (the generator is the only pktlab code that builds packets)."""
    import scapy.all as scapy  # noqa: F401
    from scapy.layers.ipsec import AH  # noqa: F401
    return scapy


# --- helpers ---------------------------------------------------------------------------------

def eth(src=MAC_C, dst=MAC_S, **kw):
    return S().Ether(src=src, dst=dst, **kw)


def b(pkt) -> bytes:
    return bytes(pkt)


def raw_eth(ethertype: int, payload: bytes, src=MAC_C, dst=MAC_S) -> bytes:
    s = S()
    return s.mac2str(dst) + s.mac2str(src) + struct.pack(">H", ethertype) + payload


def pad60(frame: bytes) -> bytes:
    """Pad to the 60-byte Ethernet minimum (without FCS), as a NIC does on the wire."""
    return frame + bytes(max(0, 60 - len(frame)))


def set_byte(frame: bytes, off: int, value: int) -> bytes:
    return frame[:off] + bytes([value]) + frame[off + 1:]


def set_u16(frame: bytes, off: int, value: int) -> bytes:
    return frame[:off] + struct.pack(">H", value) + frame[off + 2:]


def tcp4(sport=49152, dport=80, flags="S", seq=1000, ack=0, payload=b"", options=(), src=C4,
         dst=S4, smac=MAC_C, dmac=MAC_S, ipid=1, ttl=64, **ipkw):
    s = S()
    p = eth(smac, dmac) / s.IP(src=src, dst=dst, id=ipid, ttl=ttl, flags="DF", **ipkw) / s.TCP(
        sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240,
        options=list(options))
    return b(p / s.Raw(payload)) if payload else b(p)


def tcp6(sport=49152, dport=80, flags="S", seq=1000, ack=0, payload=b"", options=(), src=C6,
         dst=S6, hlim=64):
    s = S()
    p = eth() / s.IPv6(src=src, dst=dst, hlim=hlim) / s.TCP(sport=sport, dport=dport,
                                                            flags=flags, seq=seq, ack=ack,
                                                            window=64800, options=list(options))
    return b(p / s.Raw(payload)) if payload else b(p)


def udp4(sport=53000, dport=9, payload=b"", src=C4, dst=S4, ipid=1, **ipkw):
    s = S()
    return b(eth() / s.IP(src=src, dst=dst, id=ipid, **ipkw) / s.UDP(sport=sport, dport=dport)
             / s.Raw(payload))


def dns_q(qname, qtype="A", qid=0x1234):
    s = S()
    return s.DNS(id=qid, rd=1, qd=s.DNSQR(qname=qname, qtype=qtype))


def dns_r(qname, qtype, rdata, qid=0x1234):
    s = S()
    return s.DNS(id=qid, qr=1, aa=0, rd=1, ra=1, qd=s.DNSQR(qname=qname, qtype=qtype),
                 an=s.DNSRR(rrname=qname, type=qtype, ttl=300, rdata=rdata))


SYN_OPTS = (("MSS", 1460), ("SAckOK", b""), ("Timestamp", (100000, 0)), ("NOP", None),
            ("WScale", 7))


# --- the captures ---------------------------------------------------------------------------------

def cap_tcp_http():
    req = (b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: pktlab/0.1\r\n"
           b"Accept: */*\r\n\r\n")
    body = b"<html><body><h1>It works</h1><p>pktlab corpus</p></body></html>\n"
    resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body)) + body
    c, s_ = 1000, 5000
    srv = dict(src=S4, dst=C4, smac=MAC_S, dmac=MAC_C, sport=80, dport=49152)
    fr = [
        F(tcp4(flags="S", seq=c, options=SYN_OPTS), layer="TCP", note="SYN, options MSS/SACK/TS/WS"),
        F(tcp4(flags="SA", seq=s_, ack=c + 1, options=SYN_OPTS, ipid=0x100, **srv), layer="TCP",
          note="SYN/ACK"),
        F(tcp4(flags="A", seq=c + 1, ack=s_ + 1, ipid=2), layer="TCP", note="ACK: handshake done"),
        F(tcp4(flags="PA", seq=c + 1, ack=s_ + 1, payload=req, ipid=3), l7="HTTP_REQUEST",
          note="HTTP GET"),
        F(tcp4(flags="A", seq=s_ + 1, ack=c + 1 + len(req), ipid=0x101, **srv), layer="TCP",
          note="server ACKs the request"),
        F(tcp4(flags="PA", seq=s_ + 1, ack=c + 1 + len(req), payload=resp, ipid=0x102, **srv),
          l7="HTTP_RESPONSE", note="HTTP 200 response"),
        F(tcp4(flags="A", seq=c + 1 + len(req), ack=s_ + 1 + len(resp), ipid=4), layer="TCP",
          note="client ACKs the response"),
        F(tcp4(flags="FA", seq=c + 1 + len(req), ack=s_ + 1 + len(resp), ipid=5), layer="TCP",
          note="client FIN"),
        F(tcp4(flags="FA", seq=s_ + 1 + len(resp), ack=c + 2 + len(req), ipid=0x103, **srv),
          layer="TCP", note="server FIN"),
        F(tcp4(flags="A", seq=c + 2 + len(req), ack=s_ + 2 + len(resp), ipid=6), layer="TCP",
          note="last ACK"),
    ]
    return Capture("tcp-http.pcap", "A complete HTTP/1.1 exchange over TCP: handshake, GET, "
                   "200 response, FIN teardown", ("01-casting-headers", "02-xdp", "03-tc",
                                                  "04-kprobe"), fr)


def cap_dns():
    s = S()
    fr = [
        F(b(eth() / s.IP(src=C4, dst=DNS4, id=10) / s.UDP(sport=53001, dport=53)
            / dns_q("www.example.com")), l7="DNS", note="A query"),
        F(b(eth(MAC_S, MAC_C) / s.IP(src=DNS4, dst=C4, id=11) / s.UDP(sport=53, dport=53001)
            / dns_r("www.example.com", "A", "192.0.2.80")), l7="DNS", note="A response"),
        F(b(eth() / s.IPv6(src=C6, dst=DNS6) / s.UDP(sport=53002, dport=53)
            / dns_q("www.example.com", "AAAA", 0x4321)), l7="DNS", note="AAAA query over IPv6"),
        F(b(eth(MAC_S, MAC_C) / s.IPv6(src=DNS6, dst=C6) / s.UDP(sport=53, dport=53002)
            / dns_r("www.example.com", "AAAA", "2001:db8:2::80", 0x4321)), l7="DNS",
          note="AAAA response over IPv6"),
        F(b(eth(MAC_C, "01:00:5e:00:00:fb") / s.IP(src=C4, dst="224.0.0.251", id=12, ttl=255)
            / s.UDP(sport=5353, dport=5353) / dns_q("printer.local", "A", 0)), l7="DNS",
          note="mDNS query (port 5353)"),
    ]
    return Capture("dns.pcap", "DNS over UDP: A and AAAA queries and responses (IPv4, IPv6), "
                   "and an mDNS query", ("01-casting-headers", "02-xdp"), fr)


def cap_icmp():
    s = S()
    data = bytes(range(0x10, 0x10 + 56))
    orig = b(s.IP(src=C4, dst=S4, id=77) / s.UDP(sport=40000, dport=33434))[:28]
    fr = [
        F(b(eth() / s.IP(src=C4, dst=S4, id=20) / s.ICMP(type=8, id=0x4D2, seq=1) / data),
          note="echo request (id 1234 seq 1 in sport/dport)"),
        F(b(eth(MAC_S, MAC_C) / s.IP(src=S4, dst=C4, id=21) / s.ICMP(type=0, id=0x4D2, seq=1)
            / data), note="echo reply"),
        F(b(eth() / s.IP(src=C4, dst=S4, id=22) / s.ICMP(type=8, id=0x4D2, seq=2)),
          layer="ICMP", note="echo request without data"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / s.ICMPv6EchoRequest(id=0x99, seq=1, data=data)),
          note="ICMPv6 echo request"),
        F(b(eth(MAC_S, MAC_C) / s.IPv6(src=S6, dst=C6) / s.ICMPv6EchoReply(id=0x99, seq=1,
                                                                           data=data)),
          note="ICMPv6 echo reply"),
        F(b(eth(MAC_S, MAC_C) / s.IP(src=S4, dst=C4, id=23) / s.ICMP(type=3, code=3) / orig),
          note="port unreachable quoting the original IP+UDP header (no id/seq)"),
        F(b(eth(MAC_C, "33:33:ff:00:00:20") / s.IPv6(src=C6, dst="ff02::1:ff00:20", hlim=255)
            / s.ICMPv6ND_NS(tgt=S6) / s.ICMPv6NDOptSrcLLAddr(lladdr=MAC_C)),
          note="neighbor solicitation"),
        F(b(eth(MAC_R, MAC_C) / s.IP(src=R4, dst=C4, id=24) / s.ICMP(type=11, code=0) / orig),
          note="time exceeded (traceroute)"),
    ]
    return Capture("icmp-echo.pcap", "ICMP and ICMPv6: echo request/reply (id/seq land in the "
                   "record's ports), errors quoting the original packet, neighbor solicitation",
                   ("01-casting-headers", "02-xdp", "04-kprobe"), fr)


def cap_ipv4_options():
    s = S()
    fr = [
        F(b(eth() / s.IP(src=C4, dst=S4, id=30, options=[s.IPOption_RR(routers=["192.0.2.1",
                                                                                "192.0.2.2",
                                                                                "0.0.0.0"])])
            / s.UDP(sport=40000, dport=9) / b"record route"),
          note="record route option (IHL 9)"),
        F(b(eth() / s.IP(src=C4, dst="224.0.0.22", id=31, ttl=1,
                         options=[s.IPOption_Router_Alert()], proto=2) / bytes.fromhex(
            "2200f9020000000104000000e1000116")), layer="IPV4",
          note="IGMPv3 report with router alert (IHL 6): IGMP is not parsed, the walk ends at IP"),
        F(b(eth() / s.IP(src=C4, dst=S4, id=32, options=[s.IPOption_NOP(), s.IPOption_NOP(),
                                                         s.IPOption_Timestamp(flg=0, length=8)])
            / s.ICMP(type=8, id=7, seq=1) / b"ts"), note="NOPs + timestamp option"),
        F(tcp4(flags="S", ipid=33), layer="TCP", note="no options, for comparison (IHL 5)"),
        F(b(eth() / s.IP(src=C4, dst=S4, id=34, options=[s.IPOption_LSRR(routers=["198.51.100.1"]),
                                                         s.IPOption_EOL()])
            / s.TCP(sport=49153, dport=22, flags="S", seq=7, window=1024)), layer="TCP",
          note="loose source route + EOL padding"),
        F(b(eth() / s.IP(src=C4, dst=S4, id=35, options=[s.IPOption_RR(
            routers=["0.0.0.0"] * 9)]) / s.UDP(sport=40001, dport=9) / b"max"),
          note="maximum header: IHL 15 (40 bytes of options)"),
        F(b(eth() / s.IP(src=C4, dst=S4, id=36, flags="DF", options=[s.IPOption_Router_Alert()])
            / s.TCP(sport=49154, dport=80, flags="S", seq=11, window=1024)), layer="TCP",
          note="TCP SYN to port 80 behind a router alert option (IHL 6): the TCP header is not "
               "20 bytes after the IPv4 header's start"),
    ]
    return Capture("ipv4-options.pcap", "IPv4 headers longer than 20 bytes: record route, "
                   "router alert, timestamp, source route; IHL from 5 to 15",
                   ("01-casting-headers",), fr)


def cap_vlan():
    s = S()
    fr = [
        F(b(eth() / s.Dot1Q(vlan=100) / s.IP(src=C4, dst=S4, id=40)
            / s.TCP(sport=49160, dport=80, flags="S", seq=1, window=1024)), layer="TCP",
          note="802.1Q VID 100"),
        F(b(eth() / s.Dot1Q(vlan=200, prio=5) / s.IP(src=C4, dst=DNS4, id=41)
            / s.UDP(sport=53010, dport=53) / dns_q("vlan.example.com")), l7="DNS",
          note="802.1Q VID 200, PCP 5"),
        F(b(eth(MAC_C, "ff:ff:ff:ff:ff:ff") / s.Dot1Q(vlan=100)
            / s.ARP(op=1, hwsrc=MAC_C, psrc=C4, pdst=R4)), layer="ARP",
          note="ARP request on VLAN 100"),
        F(b(eth() / s.Dot1Q(vlan=300, id=1) / s.IPv6(src=C6, dst=S6)
            / s.ICMPv6EchoRequest(id=1, seq=1, data=b"vlan6")), note="VID 300 with DEI set, IPv6"),
        F(b(eth() / s.Dot1Q(vlan=0, prio=3) / s.IP(src=C4, dst=S4, id=42)
            / s.UDP(sport=40002, dport=9) / b"priority tagged"),
          note="priority-tagged frame (VID 0, PCP 3)"),
    ]
    return Capture("vlan.pcap", "802.1Q single tags: VID, PCP, DEI, over TCP, DNS, ARP, IPv6, and "
                   "a priority tag (VID 0)", ("01-casting-headers", "03-tc"), fr)


def cap_qinq():
    s = S()
    fr = [
        F(b(eth() / s.Dot1AD(vlan=10) / s.Dot1Q(vlan=100) / s.IP(src=C4, dst=S4, id=50)
            / s.UDP(sport=40010, dport=9) / b"q-in-q"), note="802.1ad S-tag 10 + 802.1Q C-tag 100"),
        F(b(eth() / s.Dot1Q(vlan=20) / s.Dot1Q(vlan=200) / s.IP(src=C4, dst=S4, id=51)
            / s.TCP(sport=49170, dport=443, flags="S", seq=9, window=1024)), layer="TCP",
          note="two 802.1Q tags (0x8100 twice)"),
        F(b(eth() / s.Dot1AD(vlan=30, prio=2) / s.Dot1Q(vlan=300) / s.IPv6(src=C6, dst=S6)
            / s.TCP(sport=49171, dport=80, flags="S", seq=10, window=1024)), layer="TCP",
          note="802.1ad + 802.1Q over IPv6"),
        F(b(eth(MAC_C, "ff:ff:ff:ff:ff:ff") / s.Dot1AD(vlan=10) / s.Dot1Q(vlan=100)
            / s.ARP(op=1, hwsrc=MAC_C, psrc=C4, pdst=R4)), layer="ARP", note="ARP, double tagged"),
    ]
    return Capture("qinq.pcap", "Double tags (802.1ad + 802.1Q, and 802.1Q twice): the parser's "
                   "VLAN depth limit of 2 reached exactly", ("01-casting-headers", "03-tc"), fr)


def cap_ipv6_ext():
    s = S()
    ah = S().AH
    hbh = s.IPv6ExtHdrHopByHop(options=[s.RouterAlert(value=0), s.PadN(optdata=b"")])
    fr = [
        F(b(eth() / s.IPv6(src=C6, dst=S6) / hbh
            / s.TCP(sport=49180, dport=80, flags="S", seq=1, window=1024)), layer="TCP",
          note="hop-by-hop (router alert) then TCP"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / s.IPv6ExtHdrRouting(addresses=["2001:db8:3::1"],
                                                                 segleft=1)
            / s.TCP(sport=49181, dport=80, flags="S", seq=2, window=1024)), layer="TCP",
          note="routing header (type 0, one address)"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / s.IPv6ExtHdrDestOpt(options=[s.PadN(optdata=b"\0" * 4)])
            / s.TCP(sport=49182, dport=80, flags="PA", seq=3, ack=1, window=1024)
            / b"GET / HTTP/1.1\r\n\r\n"), l7="HTTP_REQUEST", note="destination options, HTTP GET"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / s.IPv6ExtHdrFragment(id=0xABCD, offset=0, m=0)
            / s.TCP(sport=49183, dport=80, flags="S", seq=4, window=1024)), layer="TCP",
          note="atomic fragment header (offset 0, M=0): still parsed to TCP"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / ah(nh=6, payloadlen=4, spi=0x100, seq=1,
                                                icv=bytes(range(12)))
            / s.TCP(sport=49184, dport=80, flags="S", seq=5, window=1024)), layer="TCP",
          note="AH (length in 4-byte units) then TCP"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / hbh / s.IPv6ExtHdrDestOpt()
            / s.IPv6ExtHdrRouting(addresses=["2001:db8:3::1"], segleft=1)
            / s.IPv6ExtHdrFragment(id=0x1111, offset=0, m=1)
            / ah(nh=60, payloadlen=4, spi=0x200, seq=2, icv=bytes(12)) / s.IPv6ExtHdrDestOpt()
            / s.TCP(sport=49185, dport=80, flags="S", seq=6, window=1024)), layer="TCP",
          note="six extension headers (HBH, DST, RH, FRAG, AH, DST): exactly the limit"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / hbh / s.UDP(sport=40020, dport=9) / b"hbh-udp"),
          note="hop-by-hop then UDP"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / s.IPv6ExtHdrDestOpt()
            / s.ICMPv6EchoRequest(id=2, seq=2, data=b"ext")), note="destination options then ICMPv6"),
    ]
    return Capture("ipv6-ext.pcap", "IPv6 extension header chains: hop-by-hop, routing, "
                   "destination options, fragment, AH, up to the limit of six",
                   ("01-casting-headers",), fr)


def cap_fragments():
    s = S()
    payload = bytes((i * 7) & 0xFF for i in range(2600))
    v4 = s.IP(src=C4, dst=S4, id=0x5151) / s.UDP(sport=40030, dport=9) / payload
    frags4 = s.fragment(v4, fragsize=1480)
    icmp4 = s.fragment(s.IP(src=C4, dst=S4, id=0x5252) / s.ICMP(type=8, id=3, seq=1)
                       / bytes(1600), fragsize=1480)
    v6 = (s.IPv6(src=C6, dst=S6) / s.IPv6ExtHdrFragment(id=0x6161) / s.UDP(sport=40031, dport=9)
          / payload)
    frags6 = s.fragment6(v6, 1280)
    fr = []
    for i, p in enumerate(frags4):
        first = i == 0
        fr.append(F(b(eth() / p), status="OK" if first else "FRAG_NONFIRST",
                    layer="PAYLOAD" if first else "IPV4",
                    note=("first IPv4 fragment (MF, offset 0): UDP header present"
                          if first else f"IPv4 fragment at offset {p.frag * 8}"
                          + (" (last, MF=0)" if i == len(frags4) - 1 else " (MF)"))))
    for i, p in enumerate(icmp4):
        first = i == 0
        fr.append(F(b(eth() / p), status="OK" if first else "FRAG_NONFIRST",
                    layer="PAYLOAD" if first else "IPV4",
                    note="first fragment of a big ping" if first else "rest of the big ping"))
    for i, p in enumerate(frags6):
        first = i == 0
        fr.append(F(b(eth() / p), status="OK" if first else "FRAG_NONFIRST",
                    layer="PAYLOAD" if first else "IPV6_EXT",
                    note="first IPv6 fragment" if first else "later IPv6 fragment"))
    fr.append(F(udp4(payload=b"not a fragment", ipid=0x5353, flags="DF"),
                note="DF set: not a fragment, for contrast"))
    return Capture("fragments.pcap", "IPv4 and IPv6 fragment series: the first fragment carries "
                   "the L4 header, later ones stop with FRAG_NONFIRST",
                   ("01-casting-headers", "05-conveyor-belt"), fr)


def cap_tcp_options():
    rng = random.Random(30)
    key_a, key_b = rng.randbytes(8), rng.randbytes(8)
    token, rand_a, rand_b = rng.randbytes(4), rng.randbytes(4), rng.randbytes(4)
    hmac8, hmac20 = rng.randbytes(8), rng.randbytes(20)
    mp_capable_syn = (30, bytes([0x01, 0x81]))                        # v1, flags A|H
    mp_capable_synack = (30, bytes([0x01, 0x81]) + key_b)
    mp_capable_ack = (30, bytes([0x01, 0x81]) + key_a + key_b)
    mp_join_syn = (30, bytes([0x10, 0x01]) + token + rand_a)         # B=0, addr id 1
    mp_join_synack = (30, bytes([0x10, 0x01]) + hmac8 + rand_b)
    mp_join_ack = (30, bytes([0x10, 0x00]) + hmac20)
    dss = (30, bytes([0x20, 0x05]) + struct.pack(">IIIH", 0x10203040, 0x50607080, 1, 8))
    ts = ("Timestamp", (200000, 100000))
    fr = [
        F(tcp4(flags="S", seq=1, options=SYN_OPTS), layer="TCP", note="MSS, SACK-permitted, "
          "timestamps, NOP, window scale"),
        F(tcp4(flags="A", seq=2, ack=9, options=(("NOP", None), ("NOP", None), ts)), layer="TCP",
          note="NOP NOP timestamps (the usual 12-byte block)"),
        F(tcp4(flags="A", seq=2, ack=9, options=(("NOP", None), ("NOP", None),
                                                 ("SAck", (1000, 2000)))), layer="TCP",
          note="one SACK block"),
        F(tcp4(flags="A", seq=2, ack=9, options=(("NOP", None), ("NOP", None),
                                                 ("SAck", (1000, 2000, 3000, 4000, 5000, 6000)))),
          layer="TCP", note="three SACK blocks"),
        F(tcp4(flags="S", sport=49200, seq=10, options=(("MSS", 1460), ("SAckOK", b""), ts,
                                                        ("NOP", None), ("WScale", 7),
                                                        mp_capable_syn)), layer="TCP",
          note="MPTCP MP_CAPABLE on SYN (v1, no key)"),
        F(tcp4(flags="SA", sport=80, dport=49200, src=S4, dst=C4, smac=MAC_S, dmac=MAC_C,
               seq=20, ack=11, options=(("MSS", 1460), ("NOP", None), ("WScale", 7),
                                        mp_capable_synack)), layer="TCP",
          note="MPTCP MP_CAPABLE on SYN/ACK (receiver key)"),
        F(tcp4(flags="A", sport=49200, seq=11, ack=21, options=(mp_capable_ack,)), layer="TCP",
          note="MPTCP MP_CAPABLE on the third ACK (both keys)"),
        F(tcp4(flags="S", sport=49201, seq=30, options=(("MSS", 1460), ("NOP", None),
                                                        ("WScale", 7), mp_join_syn)), layer="TCP",
          note="MPTCP MP_JOIN on SYN (token, random)"),
        F(tcp4(flags="SA", sport=80, dport=49201, src=S4, dst=C4, smac=MAC_S, dmac=MAC_C,
               seq=40, ack=31, options=(mp_join_synack,)), layer="TCP",
          note="MPTCP MP_JOIN on SYN/ACK (truncated HMAC)"),
        F(tcp4(flags="A", sport=49201, seq=31, ack=41, options=(mp_join_ack,)), layer="TCP",
          note="MPTCP MP_JOIN on ACK (full HMAC)"),
        F(tcp4(flags="PA", sport=49200, seq=11, ack=21, options=(dss,), payload=b"mptcp data"),
          note="MPTCP DSS: data ACK + mapping"),
        F(tcp4(flags="S", sport=49202, seq=50, options=(("MSS", 1400), (253, b"\x12\x34"),
                                                        ("NOP", None), ("EOL", None))),
          layer="TCP", note="experimental option kind 253 and EOL"),
        F(tcp6(flags="S", options=SYN_OPTS), layer="TCP", note="the same SYN options over IPv6"),
    ]
    return Capture("tcp-options.pcap", "TCP options: MSS, window scale, SACK-permitted, SACK "
                   "blocks, timestamps, MPTCP (MP_CAPABLE, MP_JOIN, DSS), unknown kinds, EOL",
                   ("01-casting-headers",), fr)


# --- TCP options byte by byte: MPTCP, and the edge cases ------------------------------------------

class Opts:
    """TCP options written byte by byte, and, as each is written, what the record must carry of
    them (the manifest's `tcp_options`: the author's intent, never computed by pktlab): `flags`
    (PL_TCPO_* names), `mss`, `wscale`, `sack_blocks`, `ts` [val, ecr], `mptcp` (every MPTCP
    option's subtype, in order) and `token` (an MP_JOIN SYN's). A later option of a kind wins,
    as in Linux; malformed lists say their own expectation (`expect`)."""

    MPTCP = ("MP_CAPABLE", "MP_JOIN", "DSS", "ADD_ADDR", "REMOVE_ADDR", "MP_PRIO", "MP_FAIL",
             "MP_FASTCLOSE", "MP_TCPRST")

    def __init__(self):
        self.data = b""
        self.want: dict = {"flags": []}

    def _flag(self, name):
        if name not in self.want["flags"]:
            self.want["flags"].append(name)
        return self

    def nop(self, n=1):
        self.data += b"\x01" * n
        return self

    def mss(self, v):
        self.data += struct.pack(">BBH", 2, 4, v)
        self.want["mss"] = v
        return self._flag("MSS")

    def ws(self, v):
        self.data += bytes([3, 3, v])
        self.want["wscale"] = v
        return self._flag("WSCALE")

    def sack_perm(self):
        self.data += bytes([4, 2])
        return self._flag("SACK_PERM")

    def sack(self, *edges):
        self.data += bytes([5, 2 + 4 * len(edges)]) + struct.pack(f">{len(edges)}I", *edges)
        self.want["sack_blocks"] = len(edges) // 2
        return self._flag("SACK")

    def ts(self, val, ecr):
        self.data += struct.pack(">BBII", 8, 10, val, ecr)
        self.want["ts"] = [val, ecr]
        return self._flag("TIMESTAMP")

    def linux_syn(self, val, ecr, wscale=7):
        """What Linux puts on a SYN: MSS, SACK_PERM, TS, NOP, WS."""
        return self.mss(1460).sack_perm().ts(val, ecr).nop().ws(wscale)

    def mptcp(self, subtype, low4, rest=b"", token=None):
        """Kind 30: length, subtype << 4 | its 4 flag bits (version, E, B...), the rest."""
        self.data += bytes([30, 3 + len(rest), self.MPTCP.index(subtype) << 4 | low4]) + rest
        self.want.setdefault("mptcp", []).append(subtype)
        if token is not None:
            self.want["token"] = int.from_bytes(token, "big")
        return self._flag("MPTCP")

    def raw(self, data, **expect):
        self.data += data
        return self.expect(**expect) if expect else self

    def expect(self, **want):
        self.want.update(want)
        return self

    def pad(self):
        """NOPs up to a multiple of 4 bytes (Linux pads a DSS so)."""
        return self.nop(-len(self.data) % 4)


def tcp_raw(opts: Opts, sport=49300, dport=80, flags="S", seq=1000, ack=0, payload=b"", src=C4,
            dst=S4, v6=False, smac=MAC_C, dmac=MAC_S, pre=()):
    """A TCP segment whose options are exactly opts.data: the fixed header with its data offset,
    then the option bytes as written (scapy would re-encode them) and the payload, every
    checksum right; `pre`: layers between Ethernet and IP (VLAN tags) or after IPv6 (ext)."""
    s = S()
    assert len(opts.data) % 4 == 0 and len(opts.data) <= 40, opts.data.hex()
    l2 = eth(smac, dmac)
    if v6:
        ip = s.IPv6(src=src, dst=dst, hlim=64)
        for layer in pre:
            ip = ip / layer
    else:
        for layer in pre:
            l2 = l2 / layer
        ip = s.IP(src=src, dst=dst, id=seq & 0xFFFF, ttl=64, flags="DF")
    t = s.TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240,
              dataofs=5 + len(opts.data) // 4)
    return b(l2 / ip / t / s.Raw(opts.data + payload))


def cap_mptcp():
    """One MPTCP connection (RFC 8684, version 1) over two paths, as Linux writes it (the layouts
    of a session captured on this kind of machine: /tmp research, issue 14), and the subtypes
    Linux did not send there (MP_FAIL, MP_CAPABLE with data, ADD_ADDR over IPv6 with a port),
    from the RFC's figures. Keys and nonces come from a seeded generator; the token is what
    RFC 8684 says: the top 32 bits of SHA-256 of the receiver's key."""
    rng = random.Random(84)
    key_c, key_s = rng.randbytes(8), rng.randbytes(8)
    token_s = hashlib.sha256(key_s).digest()[:4]
    nonce_c, nonce_s = rng.randbytes(4), rng.randbytes(4)
    hmac8, hmac20, hmac_add = rng.randbytes(8), rng.randbytes(20), rng.randbytes(8)
    C4b, S4b = "192.0.2.11", "198.51.100.21"           # the second path
    srv = dict(sport=80, dport=49300, src=S4, dst=C4, smac=MAC_S, dmac=MAC_C)
    srv2 = dict(sport=80, dport=49301, src=S4b, dst=C4b, smac=MAC_S, dmac=MAC_C)
    cli2 = dict(sport=49301, src=C4b, dst=S4b)
    tc, ts_ = 0xCF2BD8CF, 0xE4687C35                    # each side's TS clock
    isn_c, isn_s, dsn_c, dsn_s = 7000, 9000, 0x0370_6C7B_0359_727E, 0xCA71CC06
    req = b"GET /mptcp HTTP/1.1\r\nHost: www.example.com\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

    def dss(o, flags, ack=b"", dsn=b"", ssn=0, dlen=0):
        """DSS: flags F m M a A, data ACK (4/8), mapping: DSN (4/8), SSN, data-level length."""
        mapping = dsn + struct.pack(">IH", ssn, dlen) if dsn else b""
        return o.mptcp("DSS", 0, bytes([flags]) + ack + mapping)

    u32, u64 = (lambda x: struct.pack(">I", x)), (lambda x: struct.pack(">Q", x))
    o = Opts().linux_syn(tc, 0).mptcp("MP_CAPABLE", 1, b"\x01")
    fr = [F(tcp_raw(o, seq=isn_c), layer="TCP", opts=o.want, note="SYN: MSS, SACK_PERM, TS, NOP, "
            "WS, MP_CAPABLE v1 (4 bytes: flag H, HMAC-SHA256)")]
    o = Opts().linux_syn(ts_, tc).mptcp("MP_CAPABLE", 1, b"\x01" + key_s)
    fr.append(F(tcp_raw(o, flags="SA", seq=isn_s, ack=isn_c + 1, **srv), layer="TCP", opts=o.want,
                note="SYN/ACK: MP_CAPABLE with the server's key (12 bytes)"))
    o = Opts().nop(2).ts(tc, ts_).mptcp("MP_CAPABLE", 1, b"\x01" + key_c + key_s)
    fr.append(F(tcp_raw(o, flags="A", seq=isn_c + 1, ack=isn_s + 1), layer="TCP", opts=o.want,
                note="third ACK: MP_CAPABLE with both keys (20 bytes)"))
    o = Opts().nop(2).ts(tc + 1, ts_).mptcp("MP_CAPABLE", 1, b"\x01" + key_c + key_s
                                            + struct.pack(">H", len(req))).pad()
    fr.append(F(tcp_raw(o, flags="PA", seq=isn_c + 1, ack=isn_s + 1, payload=req), opts=o.want,
                l7="HTTP_REQUEST", note="first data: MP_CAPABLE with the data-level length "
                "(22 bytes), padded with NOPs"))
    o = Opts().nop(2).ts(ts_ + 1, tc + 1).mptcp("ADD_ADDR", 0, bytes([1]) + S().inet_aton(S4b)
                                                 + hmac_add)
    fr.append(F(tcp_raw(o, flags="A", seq=isn_s + 1, ack=isn_c + 1 + len(req), **srv),
                layer="TCP", opts=o.want, note="ADD_ADDR: address id 1, IPv4, truncated HMAC "
                "(16 bytes)"))
    o = Opts().nop(2).ts(tc + 2, ts_ + 1).mptcp("ADD_ADDR", 1, bytes([1]) + S().inet_aton(S4b))
    fr.append(F(tcp_raw(o, flags="A", seq=isn_c + 1 + len(req), ack=isn_s + 1), layer="TCP",
                opts=o.want, note="ADD_ADDR echo (E bit, no HMAC: 8 bytes)"))
    o = Opts().linux_syn(0x69AB7B72, 0).mptcp("MP_JOIN", 0, bytes([2]) + token_s + nonce_c,
                                              token=token_s)
    fr.append(F(tcp_raw(o, seq=20000, **cli2), layer="TCP", opts=o.want,
                note="second path: MP_JOIN SYN, address id 2, the server's token, a nonce"))
    o = Opts().linux_syn(0x5074EDEB, 0x69AB7B72).mptcp("MP_JOIN", 0, bytes([1]) + hmac8 + nonce_s)
    fr.append(F(tcp_raw(o, flags="SA", seq=30000, ack=20001, **srv2), layer="TCP", opts=o.want,
                note="MP_JOIN SYN/ACK: truncated HMAC and the server's nonce (16 bytes)"))
    o = Opts().nop(2).ts(0x69AB7B73, 0x5074EDEB).mptcp("MP_JOIN", 0, b"\x00" + hmac20)
    fr.append(F(tcp_raw(o, flags="A", seq=20001, ack=30001, **cli2), layer="TCP", opts=o.want,
                note="MP_JOIN third ACK: the full HMAC (24 bytes)"))
    o = dss(Opts().nop(2).ts(0x5074EDEC, 0x69AB7B73), 0x01, ack=u32(dsn_s))
    fr.append(F(tcp_raw(o, flags="A", seq=30001, ack=20001, **srv2), layer="TCP", opts=o.want,
                note="DSS: a 4-byte data ACK (8 bytes)"))
    o = dss(Opts().nop(2).ts(ts_ + 2, tc + 2), 0x0F, ack=u64(dsn_c + len(req)), dsn=u64(dsn_s),
            ssn=1, dlen=len(resp)).pad()
    fr.append(F(tcp_raw(o, flags="PA", seq=isn_s + 1, ack=isn_c + 1 + len(req), payload=resp,
                        **srv), opts=o.want, l7="HTTP_RESPONSE",
                note="DSS: 8-byte data ACK and mapping (26 bytes): 40 bytes of options"))
    o = dss(Opts().nop(2).ts(tc + 3, ts_ + 2), 0x03, ack=u64(dsn_s + len(resp)))
    fr.append(F(tcp_raw(o, flags="A", seq=isn_c + 1 + len(req), ack=isn_s + 1 + len(resp)),
                layer="TCP", opts=o.want, note="DSS: an 8-byte data ACK (12 bytes)"))
    o = dss(Opts().nop(2).ts(ts_ + 3, tc + 3), 0x03, ack=u64(dsn_c + len(req)))
    o.mptcp("MP_PRIO", 1).pad()
    fr.append(F(tcp_raw(o, flags="A", seq=isn_s + 1 + len(resp), ack=isn_c + 1 + len(req),
                        **srv), layer="TCP", opts=o.want,
                note="MP_PRIO, backup (3 bytes), after a DSS: the record keeps DSS first"))
    o = dss(Opts().nop(2).ts(ts_ + 4, tc + 3), 0x03, ack=u64(dsn_c + len(req)))
    o.mptcp("REMOVE_ADDR", 0, bytes([1]))
    fr.append(F(tcp_raw(o, flags="A", seq=isn_s + 1 + len(resp), ack=isn_c + 1 + len(req),
                        **srv), layer="TCP", opts=o.want, note="REMOVE_ADDR of address id 1"))
    o = Opts().linux_syn(0x69AB8000, 0).mptcp("MP_JOIN", 1, bytes([2]) + token_s + nonce_c[::-1],
                                              token=token_s)
    fr.append(F(tcp_raw(o, seq=21000, sport=49302, src=C4b, dst=S4b), layer="TCP", opts=o.want,
                note="MP_JOIN SYN with the backup bit (B)"))
    o = dss(Opts().nop(2).ts(tc + 4, ts_ + 4), 0x01, ack=u32(dsn_s & 0xFFFFFFFF))
    o.mptcp("MP_FAIL", 0, b"\x00" + u64(dsn_c + len(req)))
    fr.append(F(tcp_raw(o, flags="A", seq=isn_c + 1 + len(req), ack=isn_s + 1 + len(resp)),
                layer="TCP", opts=o.want, note="MP_FAIL (RFC 8684 3.7: the DSN of the failed "
                "mapping, 12 bytes; Linux sends it only with checksums on)"))
    o = dss(Opts().nop(2).ts(ts_ + 5, tc + 4), 0x15, ack=u32((dsn_c + len(req)) & 0xFFFFFFFF),
            dsn=u32((dsn_s + len(resp)) & 0xFFFFFFFF), ssn=0, dlen=1).pad()
    fr.append(F(tcp_raw(o, flags="FA", seq=isn_s + 1 + len(resp), ack=isn_c + 1 + len(req),
                        **srv), layer="TCP", opts=o.want,
                note="DSS with DATA_FIN (F), a 4-byte ACK and a 4-byte DSN (18 bytes), on a FIN"))
    o = Opts().nop(2).ts(ts_ + 6, tc + 4).mptcp("MP_FASTCLOSE", 0, b"\x00" + key_c)
    o.mptcp("MP_TCPRST", 0, b"\x00")
    fr.append(F(tcp_raw(o, flags="RA", seq=isn_s + 2 + len(resp), ack=isn_c + 1 + len(req),
                        **srv), layer="TCP", opts=o.want,
                note="RST: MP_FASTCLOSE (the receiver's key) and MP_TCPRST (flags, reason)"))
    o = Opts().linux_syn(0x0A0B0C0D, 0).mptcp("MP_CAPABLE", 1, b"\x01")
    fr.append(F(tcp_raw(o, seq=5000, sport=49310, src=C6, dst=S6, v6=True), layer="TCP",
                opts=o.want, note="IPv6: SYN with MP_CAPABLE"))
    o = Opts().mptcp("ADD_ADDR", 0, bytes([3]) + S().inet_pton(10, "2001:db8:2::21")
                     + struct.pack(">H", 8080) + hmac_add).pad()
    fr.append(F(tcp_raw(o, flags="A", seq=6000, ack=5001, sport=80, dport=49310, src=S6, dst=C6,
                        v6=True, smac=MAC_S, dmac=MAC_C), layer="TCP", opts=o.want,
                note="IPv6: ADD_ADDR of an IPv6 address with a port and HMAC (30 bytes)"))
    return Capture("mptcp.pcap", "Multipath TCP (RFC 8684) option by option: MP_CAPABLE (SYN, "
                   "SYN/ACK, third ACK, first data), ADD_ADDR and its echo, MP_JOIN (SYN with "
                   "the token, SYN/ACK, ACK; backup), DSS (data ACKs, mappings, DATA_FIN), "
                   "MP_PRIO, REMOVE_ADDR, MP_FAIL, MP_FASTCLOSE with MP_TCPRST; IPv4 and IPv6",
                   ("01-casting-headers",), fr)


def cap_tcp_options_edge():
    """TCP option lists at the edges of the option walk: lengths it cannot use (0, 1, past the
    options, the length byte missing), EOL in the middle, 40 bytes of options, known kinds with
    wrong lengths, repeats, unknown kinds, and options behind VLAN tags and IPv6 extension
    headers. Every frame is fine as a packet (status OK): a bad option list is a flag."""
    s = S()
    ts = (0x01020304, 0x05060708)

    def F_(o, note, payload=b"", **kw):
        return F(tcp_raw(o.pad(), payload=payload, **kw), layer="PAYLOAD" if payload else "TCP",
                 opts=o.want, note=note)

    fr = [
        F_(Opts().mss(1460).raw(b"\x08\x00\x00\x00", flags=["MSS", "BAD"]),
           "MSS, then a timestamps kind with length 0: the walk stops (BAD)"),
        F_(Opts().raw(b"\x03\x01\x00\x00", flags=["BAD"]), "window scale with length 1"),
        F_(Opts().raw(b"\x01\x01\x08\x0a\x00\x00\x00\x01", flags=["BAD"]),
           "NOP NOP, then timestamps whose 10 bytes run past the 8 option bytes"),
        F_(Opts().raw(b"\x01\x01\x01\x02", flags=["BAD"]),
           "NOP x3, then MSS in the last option byte: its length byte is missing"),
        F_(Opts().raw(b"\x01\x01\x01\x08", flags=["BAD"]),
           "the length byte is missing; the payload's first byte (0x0a) is not read as one",
           payload=b"\x0a" * 12, flags="PA"),
        F(pad60(tcp_raw(Opts().raw(b"\x01\x01\x01\x08", flags=["BAD"]), seq=1234)),
          layer="TCP", opts={"flags": ["BAD"]},
          note="the same with no payload: the padding after the IP packet is not read either"),
        F_(Opts().mss(1400).raw(b"\x00\x03\x03\x07"),
           "MSS, EOL, then a window scale after the EOL: not read"),
        F_(Opts().nop(40), "40 NOPs: the walk's bound (40 steps) reached exactly"),
        F_(Opts().nop(38).sack_perm(), "38 NOPs, then SACK_PERM: 39 steps"),
        F_(Opts().linux_syn(*ts).sack(100, 200, 300, 400).nop(2),
           "40 bytes: Linux's SYN options, two SACK blocks, NOP NOP"),
        F_(Opts().nop(2).sack(1, 2, 3, 4, 5, 6, 7, 8), "SACK with four blocks (34 bytes)",
           flags="A"),
        F_(Opts().raw(b"\x05\x0c" + bytes(10), flags=["OTHER"]),
           "SACK with length 12 (not 2 + 8n): skipped", flags="A"),
        F_(Opts().raw(b"\x02\x05\x05\xb4\x00" b"\x03\x04\x07\x00" b"\x08\x08" + bytes(6),
                      flags=["OTHER"]),
           "MSS with length 5, window scale with length 4, timestamps with length 8: skipped"),
        F_(Opts().mss(1460).mss(536).ws(2).ws(14), "MSS and window scale twice: the later ones"),
        F_(Opts().raw(b"\x1e\x02", flags=["OTHER"]).mptcp("DSS", 0, b"\x01" + bytes(4)),
           "kind 30 with length 2 (no subtype: skipped), then a DSS", flags="A"),
        F_(Opts().mss(1460).raw(b"\x22\x0a" + bytes(8) + b"\x13\x04\x00\x00\xfe\x04\xf9\x89",
                                flags=["MSS", "OTHER"]).nop(2),
           "TFO cookie (34), kind 19 with a short length, experimental 254: skipped"),
        F_(Opts().mss(1460).sack_perm().ts(*ts), "MSS, SACK_PERM, TS: Linux's SYN without window "
           "scaling (16 bytes)"),
        F_(Opts().mss(1460).nop().ws(7), "MSS, NOP, window scale (the MSS word, then the walk)"),
        F_(Opts().nop(2).ts(*ts), "NOP NOP TS with data: options and payload", flags="PA",
           payload=b"hello, options"),
        F_(Opts().mptcp("MP_JOIN", 0, bytes([1]) + bytes.fromhex("deadbeef") + b"\x00" * 5),
           "MP_JOIN with length 13: no MP_JOIN form, no token"),
        F_(Opts().mptcp("MP_CAPABLE", 1, b"\x01").mptcp("MP_JOIN", 0, bytes([1]) +
                                                          bytes.fromhex("0badc0de") + bytes(4),
                                                          token=bytes.fromhex("0badc0de")),
           "MP_CAPABLE then MP_JOIN SYN in one SYN: the first subtype is kept, both counted"),
        F(tcp_raw(o := Opts().linux_syn(*ts), pre=(s.Dot1Q(vlan=5),)), layer="TCP", opts=o.want,
          note="behind a VLAN tag"),
        F(tcp_raw(o := Opts().nop(2).ts(*ts).mptcp("DSS", 0, b"\x01" + bytes(4)), flags="A",
                  src=C6, dst=S6, v6=True, pre=(s.IPv6ExtHdrHopByHop(),)), layer="TCP",
          opts=o.want, note="behind an IPv6 hop-by-hop header"),
    ]
    return Capture("tcp-options-edge.pcap", "TCP option lists at the edges of the option walk: "
                   "lengths 0 and 1, options running past the header, a missing length byte, "
                   "EOL in the middle, 40 bytes of options, wrong lengths of known kinds, "
                   "repeats, unknown kinds, behind VLAN tags and IPv6 extension headers; every "
                   "packet is fine (OK), a bad list is a flag", ("01-casting-headers",), fr)


def cap_arp():
    s = S()
    bc = "ff:ff:ff:ff:ff:ff"
    fr = [
        F(b(eth(MAC_C, bc) / s.ARP(op=1, hwsrc=MAC_C, psrc=C4, hwdst="00:00:00:00:00:00",
                                   pdst=R4)), layer="ARP", note="who-has 192.0.2.1"),
        F(b(eth(MAC_R, MAC_C) / s.ARP(op=2, hwsrc=MAC_R, psrc=R4, hwdst=MAC_C, pdst=C4)),
          layer="ARP", note="reply"),
        F(b(eth(MAC_C, bc) / s.ARP(op=1, hwsrc=MAC_C, psrc=C4, hwdst="00:00:00:00:00:00",
                                   pdst=C4)), layer="ARP", note="gratuitous ARP"),
        F(b(eth(MAC_C, bc) / s.ARP(op=1, hwsrc=MAC_C, psrc="0.0.0.0", hwdst="00:00:00:00:00:00",
                                   pdst=C4)), layer="ARP", note="ARP probe (sender 0.0.0.0)"),
        F(pad60(b(eth(MAC_R, MAC_C) / s.ARP(op=2, hwsrc=MAC_R, psrc=R4, hwdst=MAC_C, pdst=C4))),
          layer="ARP", note="reply padded to 60 bytes, as received from the wire"),
    ]
    return Capture("arp.pcap", "ARP request, reply, gratuitous ARP, probe, and a padded reply",
                   ("01-casting-headers", "02-xdp"), fr)


def _client_hello(rng: random.Random, sni: bytes) -> bytes:
    def u16(x):
        return struct.pack(">H", x)

    def ext(t, data):
        return u16(t) + u16(len(data)) + data
    suites = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8]
    exts = (
        ext(0x0000, u16(len(sni) + 3) + b"\x00" + u16(len(sni)) + sni)
        + ext(0x000A, u16(4) + u16(0x001D) + u16(0x0017))
        + ext(0x000B, b"\x01\x00")
        + ext(0x000D, u16(8) + u16(0x0403) + u16(0x0804) + u16(0x0401) + u16(0x0201))
        + ext(0x0010, u16(12) + b"\x02h2" + b"\x08http/1.1")
        + ext(0x002B, b"\x04\x03\x04\x03\x03")
        + ext(0x0033, u16(36) + u16(0x001D) + u16(32) + rng.randbytes(32))
    )
    body = (b"\x03\x03" + rng.randbytes(32) + b"\x20" + rng.randbytes(32)
            + u16(2 * len(suites)) + b"".join(u16(x) for x in suites) + b"\x01\x00"
            + u16(len(exts)) + exts)
    hs = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + u16(len(hs)) + hs


def _server_hello(rng: random.Random) -> bytes:
    def u16(x):
        return struct.pack(">H", x)
    exts = (u16(0x002B) + u16(2) + b"\x03\x04"
            + u16(0x0033) + u16(36) + u16(0x001D) + u16(32) + rng.randbytes(32))
    body = (b"\x03\x03" + rng.randbytes(32) + b"\x20" + rng.randbytes(32) + u16(0x1301) + b"\x00"
            + u16(len(exts)) + exts)
    hs = b"\x02" + len(body).to_bytes(3, "big") + body
    ccs = b"\x14\x03\x03\x00\x01\x01"
    return b"\x16\x03\x03" + u16(len(hs)) + hs + ccs


def cap_tls():
    rng = random.Random(443)
    ch = _client_hello(rng, b"www.example.com")
    sh = _server_hello(rng)
    srv = dict(src=S4, dst=C4, smac=MAC_S, dmac=MAC_C, sport=443, dport=49300)
    c, s_ = 7000, 9000
    fr = [
        F(tcp4(sport=49300, dport=443, flags="S", seq=c, options=SYN_OPTS), layer="TCP",
          note="SYN to 443"),
        F(tcp4(flags="SA", seq=s_, ack=c + 1, options=SYN_OPTS, **srv), layer="TCP", note="SYN/ACK"),
        F(tcp4(sport=49300, dport=443, flags="A", seq=c + 1, ack=s_ + 1), layer="TCP", note="ACK"),
        F(tcp4(sport=49300, dport=443, flags="PA", seq=c + 1, ack=s_ + 1, payload=ch),
          l7="TLS_HANDSHAKE", note="TLS ClientHello (SNI www.example.com, TLS 1.3 offered)"),
        F(tcp4(flags="A", seq=s_ + 1, ack=c + 1 + len(ch), **srv), layer="TCP", note="ACK"),
        F(tcp4(flags="PA", seq=s_ + 1, ack=c + 1 + len(ch), payload=sh, **srv),
          l7="TLS_HANDSHAKE", note="TLS ServerHello + ChangeCipherSpec"),
    ]
    return Capture("tls-hello.pcap", "A TLS 1.3 handshake start: TCP handshake, ClientHello with "
                   "SNI, ServerHello", ("01-casting-headers",), fr)


VXLAN_PORT = 4789
IN_C, IN_S = "00:00:5e:00:53:11", "00:00:5e:00:53:12"


def _vxlan(vni, inner, sport=49152, dport=VXLAN_PORT, src=C4, dst=S4, ipid=90, options=()):
    """An outer Ethernet/IPv4/UDP frame carrying the VXLAN header (I flag, `vni`) and `inner`
    (bytes: the inner frame, or what is left of it)."""
    s = S()
    outer = eth() / s.IP(src=src, dst=dst, id=ipid, flags="DF", options=list(options))
    return b(outer / s.UDP(sport=sport, dport=dport) / s.VXLAN(flags=0x08, vni=vni)
             / s.Raw(inner))


def cap_tunnels():
    """VXLAN and GRE: frames inside frames, a header the parser does not know (assignment 3)."""
    s = S()
    ping = b(s.Ether(src=IN_C, dst=IN_S) / s.IP(src=L10A, dst=L10B, id=1)
             / s.ICMP(type=8, id=5, seq=1) / b"tunnelled")
    pong = b(s.Ether(src=IN_S, dst=IN_C) / s.IP(src=L10B, dst=L10A, id=2)
             / s.ICMP(type=0, id=5, seq=1) / b"tunnelled")
    arp = b(s.Ether(src=IN_C, dst="ff:ff:ff:ff:ff:ff") / s.ARP(
        op=1, hwsrc=IN_C, psrc=L10A, pdst=L10B))
    syn = b(s.Ether(src=IN_C, dst=IN_S) / s.IP(src="10.0.1.1", dst="10.0.1.2", id=3)
            / s.TCP(sport=40100, dport=80, flags="S", seq=1, window=1024))
    six = b(s.Ether(src=IN_C, dst=IN_S) / s.IPv6(src="fd00::1", dst="fd00::2")
            / s.ICMPv6EchoRequest(id=6, seq=1))
    udp = b(s.Ether(src=IN_C, dst=IN_S) / s.IP(src=L10A, dst=L10B, id=4)
            / s.UDP(sport=40200, dport=9) / b"inner udp")
    fr = [
        F(_vxlan(42, ping, ipid=90), note="VXLAN: an Ethernet frame inside, IPv4 ICMP echo "
                                          "request"),
        F(_vxlan(42, pong, sport=50123, src=S4, dst=C4, ipid=91),
          note="VXLAN, the other way: inner IPv4 ICMP echo reply"),
        F(_vxlan(42, arp, ipid=92), note="VXLAN: inner ARP request"),
        F(_vxlan(0x012345, syn, sport=49153, ipid=93),
          note="VXLAN, another network: inner IPv4 TCP SYN to port 80 (the outer packet is UDP)"),
        F(_vxlan(0x012345, six, sport=49153, ipid=94), note="VXLAN: inner IPv6 (ICMPv6 echo)"),
        F(_vxlan(7, udp, sport=49154, ipid=95, options=[s.IPOption_Router_Alert()]),
          note="VXLAN behind an outer IPv4 option (IHL 6): inner IPv4 UDP"),
        F(_vxlan(0x000100, udp, sport=49155, ipid=96), note="VXLAN: inner IPv4 UDP"),
        F(udp4(sport=49156, dport=VXLAN_PORT, payload=bytes.fromhex("080000000000"), ipid=97),
          note="UDP to port 4789 with 6 bytes: a VXLAN header cut short (it has 8)"),
        F(_vxlan(42, ping[:10], sport=49157, ipid=98),
          note="VXLAN with an inner Ethernet header cut short (10 of 14 bytes)"),
        F(_vxlan(42, ping, sport=49158, dport=8472, ipid=99),
          note="VXLAN's layout on UDP port 8472 (Linux's early default), not 4789"),
        F(b(eth() / s.IP(src=C4, dst=S4, id=100, proto=47) / s.GRE(proto=0x0800)
            / s.IP(src=L10A, dst=L10B, id=5) / s.ICMP(type=8, id=7, seq=1)), layer="IPV4",
          note="GRE (protocol 47) carrying IPv4: the walk ends at the outer IPv4"),
        F(b(eth() / s.IP(src=C4, dst=S4, id=101) / s.GRE(key_present=1, key=1000,
                                                        proto=0x6558) / s.Raw(ping)),
          layer="IPV4", note="GRE with a key, carrying an Ethernet frame (0x6558)"),
    ]
    return Capture("tunnels.pcap", "Tunnels: VXLAN (UDP 4789) frames carrying inner Ethernet "
                   "frames (IPv4, ARP, IPv6; several networks; behind an outer IPv4 option; "
                   "a VXLAN header and an inner header cut short; VXLAN's layout on another "
                   "port) and GRE (IPv4 inside; Ethernet inside, with a key): headers pktlab's "
                   "parser does not know", ("07-replay-your-pcap",), fr)


def cap_edge():
    s = S()
    fr = [
        F(tcp4(flags="A", seq=5, ack=6), layer="TCP", note="TCP ACK, zero payload"),
        F(udp4(payload=b""), layer="UDP", note="UDP, zero payload"),
        F(b(eth() / s.IP(src=C4, dst=S4, id=60) / s.ICMP(type=8, id=9, seq=9)), layer="ICMP",
          note="echo request, zero data"),
        F(tcp4(flags="PA", seq=100, ack=1, payload=bytes((i * 13) & 0xFF for i in range(1460)),
               ipid=61), note="1514-byte frame: TCP with 1460 bytes (full MTU)"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / s.UDP(sport=40040, dport=9) / bytes(1452)),
          note="1514-byte frame: IPv6 UDP with 1452 bytes"),
        F(udp4(payload=bytes(range(256)) * 5 + bytes(192), ipid=62),
          note="1514-byte frame: IPv4 UDP with 1472 bytes"),
        F(pad60(tcp4(flags="A", seq=7, ack=8, ipid=63)), layer="TCP",
          note="54-byte ACK padded to 60: the 6 padding bytes are not payload (payload_len 0)"),
        F(pad60(udp4(payload=b"hi", ipid=64)),
          note="2-byte UDP payload, then Ethernet padding: payload_len 2"),
        F(pad60(b(eth() / s.IP(src=C4, dst=S4, id=65) / s.ICMP(type=8, id=1, seq=1))),
          layer="ICMP", note="ICMP echo padded to 60"),
        F(b(eth() / s.IP(src=C4, dst=S4, id=66, proto=47) / bytes.fromhex("00000800")
            / s.IP(src=L10A, dst=L10B) / s.ICMP()), layer="IPV4",
          note="GRE (protocol 47): not parsed, the walk ends at IPv4"),
        F(b(eth() / s.IPv6(src=C6, dst=S6, nh=132) / bytes(16)), layer="IPV6",
          note="SCTP over IPv6: not parsed, ends at IPv6"),
        F(b(eth() / s.IPv6(src=C6, dst=S6, nh=59)), layer="IPV6",
          note="IPv6 'no next header' (59), empty"),
        F(b(eth() / s.IPv6(src=C6, dst=S6, nh=1) / bytes(8)), layer="IPV6",
          note="protocol 1 (ICMPv4) inside IPv6: not ICMP there, ends at IPv6"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / s.UDP(sport=40041, dport=9) / b"trailer!")
          + b"\xde\xad\xbe\xef", note="IPv6 packet followed by 4 trailer bytes (not payload)"),
        F(tcp4(flags="PA", seq=9, ack=9, payload=bytes(range(32)), ipid=67),
          note="payload exactly PL_PAYLOAD_PEEK (32) bytes"),
        F(tcp4(flags="PA", seq=9, ack=9, payload=bytes(range(33)), ipid=68),
          note="payload 33 bytes: the record keeps 32"),
        F(udp4(sport=40042, dport=9, payload=b"GET / HTTP/1.1\r\n\r\n", ipid=69),
          note="'GET ' over UDP: the HTTP guess is for TCP only"),
        F(udp4(sport=40043, dport=53, payload=b"short", ipid=70),
          note="port 53 but under 12 bytes: not guessed DNS"),
        F(tcp4(flags="PA", sport=49400, dport=8080, payload=b"HTTP/1.0 404 Not Found\r\n\r\n",
               ipid=71), l7="HTTP_RESPONSE", note="HTTP response on a non-standard port"),
    ]
    return Capture("edge.pcap", "Edge cases: zero-length payloads, 1514-byte frames, Ethernet "
                   "padding and trailers after short IP packets, unparsed L4 protocols, the "
                   "32-byte payload peek boundary, L7 guesses that must not fire",
                   ("01-casting-headers", "02-xdp", "05-conveyor-belt", "06-hook-throughput"), fr)


# --- malformed: one capture per way the parser stops -------------------------------------------------

def _ip4(payload: bytes, proto=6, ihl=5, tot=None, ver=4, frag=0x4000, ipid=0x77,
         options=b"") -> bytes:
    """A hand-made IPv4 header (valid checksum) around payload: for deliberately bad values."""
    s = S()
    tot = 20 + len(options) + len(payload) if tot is None else tot
    hdr = struct.pack(">BBHHHBBH4s4s", ver << 4 | ihl, 0, tot, ipid, frag, 64, proto, 0,
                      s.inet_aton(C4), s.inet_aton(S4)) + options
    ck = s.checksum(hdr)
    return hdr[:10] + struct.pack(">H", ck) + hdr[12:] + payload


def _ip6(payload: bytes, nh=6, plen=None, ver=6) -> bytes:
    s = S()
    plen = len(payload) if plen is None else plen
    return (struct.pack(">IHBB", ver << 28, plen, nh, 64) + s.inet_pton(10, C6)
            + s.inet_pton(10, S6) + payload)


def _tcp_raw(doff=5, flags=0x02, sport=49500, dport=80, extra=b"") -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 0x01020304, 0, doff << 4, flags, 1024, 0,
                       0) + extra


def malformed():
    s = S()
    E4, E6, EQ, EAD, EARP = 0x0800, 0x86DD, 0x8100, 0x88A8, 0x0806
    syn = b(s.TCP(sport=49500, dport=80, flags="S", seq=1, window=1024))
    full_tcp4 = tcp4(flags="S", seq=1)
    full_tcp6 = tcp6(flags="S", seq=1)
    caps = []

    def add(name, shows, frames, lessons=("01-casting-headers", "02-xdp")):
        caps.append(Capture(f"malformed-{name}.pcap", shows, lessons, frames))

    T = "TRUNCATED"
    add("truncated-eth", "Frames shorter than an Ethernet header (0, 1, 6, 13 bytes): too short "
        "for any kernel hook to see, so only the walker parses them", [
            F(b"", T, "ETH", "empty frame"),
            F(b"\x00", T, "ETH", "1 byte"),
            F(s.mac2str(MAC_S), T, "ETH", "6 bytes: only the destination MAC"),
            F(full_tcp4[:13], T, "ETH", "13 bytes: one short of the header", wirelen=len(full_tcp4)),
        ])
    add("truncated-vlan", "A VLAN tag cut off", [
        F(raw_eth(EQ, b"\x00\x64"), T, "VLAN", "802.1Q TPID, then only 2 of the 4 tag bytes"),
        F(raw_eth(EAD, b"\x00\x0a\x81\x00\x00"), T, "VLAN",
          "outer 802.1ad tag complete, inner 802.1Q tag cut after 1 byte"),
        F(b(eth() / s.Dot1Q(vlan=5) / s.IP(src=C4, dst=S4) / s.UDP())[:16], T, "VLAN",
          "cut by the snapshot length (16 bytes kept)", wirelen=46),
    ])
    add("truncated-ipv4", "IPv4 fixed header cut off (frame or snapshot length)", [
        F(raw_eth(E4, b""), T, "IPV4", "EtherType IPv4 and nothing else (14 bytes)"),
        F(raw_eth(E4, _ip4(syn)[:10]), T, "IPV4", "10 of 20 header bytes"),
        F(full_tcp4[:30], T, "IPV4", "snapshot length 30", wirelen=len(full_tcp4)),
        F(b(eth() / s.Dot1Q(vlan=7) / s.IP(src=C4, dst=S4) / s.UDP())[:37], T, "IPV4",
          "behind a VLAN tag, 19 of 20 bytes", wirelen=46),
    ])
    add("truncated-ipv6", "IPv6 fixed header cut off", [
        F(raw_eth(E6, _ip6(syn)[:39]), T, "IPV6", "39 of 40 header bytes"),
        F(full_tcp6[:53], T, "IPV6", "snapshot length 53 (one byte short)",
          wirelen=len(full_tcp6)),
    ])
    add("truncated-ipv6-ext", "IPv6 extension headers that do not fit the IPv6 payload", [
        F(raw_eth(E6, _ip6(b"\x06\x00\x00\x00", nh=0)), T, "IPV6_EXT",
          "hop-by-hop header with 4 of its 8 bytes inside the IPv6 payload"),
        F(raw_eth(E6, _ip6(b"\x06\x02" + bytes(14), nh=60)), T, "IPV6_EXT",
          "destination options claims 24 bytes (hdrlen 2), payload has 16"),
        F(raw_eth(E6, _ip6(b"\x06\x00" + bytes(4), nh=44)), T, "IPV6_EXT",
          "fragment header of 6 bytes"),
        F(raw_eth(E6, _ip6(b"\x06\x00\x00\x00", nh=0) + bytes(8)), T, "IPV6_EXT",
          "the frame has the bytes, but they are padding after the IPv6 payload: ip_end rules"),
    ])
    add("truncated-tcp", "TCP header cut off inside the IP packet", [
        F(raw_eth(E4, _ip4(syn[:12])), T, "TCP", "12 of 20 TCP header bytes (IP total length 32)"),
        F(pad60(raw_eth(E4, _ip4(syn[:10]))), T, "TCP",
          "IP total length leaves 10 TCP bytes; the frame's padding would complete the header "
          "but it is not part of the packet"),
        F(raw_eth(E6, _ip6(syn[:10])), T, "TCP", "IPv6 with 10 TCP bytes"),
    ])
    add("truncated-udp", "UDP header cut off", [
        F(pad60(raw_eth(E4, _ip4(b"\x9c\x40\x00\x35", proto=17))), T, "UDP", "4 of 8 UDP bytes"),
        F(raw_eth(E6, _ip6(b"\x9c\x40\x00\x35\x00\x08", nh=17)), T, "UDP", "IPv6, 6 UDP bytes"),
    ])
    add("truncated-icmp", "ICMP / ICMPv6 header cut off", [
        F(pad60(raw_eth(E4, _ip4(b"\x08\x00\xf7\xff", proto=1))), T, "ICMP", "4 of 8 ICMP bytes"),
        F(raw_eth(E6, _ip6(b"\x80\x00\x00\x00\x00", nh=58)), T, "ICMPV6", "5 ICMPv6 bytes"),
    ])
    add("truncated-arp", "ARP header cut off", [
        F(raw_eth(EARP, b"\x00\x01\x08\x00\x06\x04"), T, "ARP", "6 of the 8 fixed ARP bytes"),
    ])
    add("ihl-lt5", "IPv4 IHL below 5: not a usable length (the fixed header is still read)", [
        F(raw_eth(E4, _ip4(syn, ihl=4)), "IHL_LT5", "IPV4", "IHL 4"),
        F(raw_eth(E4, _ip4(syn, ihl=0)), "IHL_LT5", "IPV4", "IHL 0"),
        F(pad60(raw_eth(E4, _ip4(b"", ihl=1, proto=17))), "IHL_LT5", "IPV4", "IHL 1, padded frame"),
    ])
    add("ihl-beyond", "IPv4 IHL that runs past the end of the frame", [
        F(raw_eth(E4, _ip4(syn[:20], ihl=15)), "IHL_BEYOND", "IPV4",
          "IHL 15 (60 bytes), 40 bytes of IP in the frame"),
        F(raw_eth(E4, _ip4(b"", ihl=6, proto=17)), "IHL_BEYOND", "IPV4",
          "IHL 6 with no room for the option word"),
    ])
    add("totlen", "IP total length / payload length disagreeing with the header or frame", [
        F(raw_eth(E4, _ip4(syn, tot=1000)), "TOTLEN", "IPV4", "total length 1000, frame has 40"),
        F(raw_eth(E4, _ip4(syn, tot=10)), "TOTLEN", "IPV4", "total length 10, less than IHL*4"),
        F(raw_eth(E4, _ip4(b"", ihl=6, tot=20, proto=17, options=b"\x01\x01\x01\x00") + bytes(8)),
          "TOTLEN", "IPV4", "total length 20 with a 24-byte header"),
        F(raw_eth(E6, _ip6(syn, plen=500)), "TOTLEN", "IPV6", "IPv6 payload length 500, 20 present"),
        F(full_tcp4[:50], "TOTLEN", "IPV4", "snapshot length cut inside TCP: IP says more than "
          "the frame has", wirelen=len(full_tcp4)),
    ])
    add("doff-lt5", "TCP data offset below 5 (the fixed header's fields are still read)", [
        F(raw_eth(E4, _ip4(_tcp_raw(doff=4))), "DOFF_LT5", "TCP", "doff 4"),
        F(raw_eth(E4, _ip4(_tcp_raw(doff=0, flags=0x12))), "DOFF_LT5", "TCP", "doff 0, SYN/ACK"),
        F(raw_eth(E6, _ip6(_tcp_raw(doff=2))), "DOFF_LT5", "TCP", "IPv6, doff 2"),
    ])
    add("doff-beyond", "TCP data offset that runs past the IP packet", [
        F(raw_eth(E4, _ip4(_tcp_raw(doff=15))), "DOFF_BEYOND", "TCP",
          "doff 15 (60 bytes), 20 TCP bytes in the packet"),
        F(pad60(raw_eth(E4, _ip4(_tcp_raw(doff=6)))) , "DOFF_BEYOND", "TCP",
          "doff 6: the option word would be padding, outside the IP packet"),
        F(raw_eth(E6, _ip6(_tcp_raw(doff=8, extra=b"\x01\x01\x01\x01"))), "DOFF_BEYOND", "TCP",
          "IPv6, doff 8 with 4 option bytes"),
    ])
    add("frag-nonfirst", "Non-first fragments: no L4 header to parse", [
        F(raw_eth(E4, _ip4(bytes(64), proto=17, frag=0x2000 | 185)), "FRAG_NONFIRST", "IPV4",
          "IPv4 offset 1480, MF"),
        F(raw_eth(E4, _ip4(syn, proto=6, frag=370)), "FRAG_NONFIRST", "IPV4",
          "IPv4 offset 2960, last: the bytes look like a TCP header but are not one"),
        F(raw_eth(E6, _ip6(struct.pack(">BBHI", 17, 0, (185 << 3) | 1, 0x7777) + bytes(32),
                           nh=44)), "FRAG_NONFIRST", "IPV6_EXT", "IPv6 fragment at 1480, M"),
    ])
    add("vlan-too-many", "More VLAN tags than the parser walks (limit 2)", [
        F(b(eth() / s.Dot1AD(vlan=1) / s.Dot1Q(vlan=2) / s.Dot1Q(vlan=3)
            / s.IP(src=C4, dst=S4) / s.UDP(sport=40050, dport=9) / b"3 tags"),
          "VLAN_TOO_MANY", "VLAN", "triple tag: 802.1ad + 802.1Q + 802.1Q"),
        F(b(eth() / s.Dot1Q(vlan=1) / s.Dot1Q(vlan=2) / s.Dot1AD(vlan=3)
            / s.IP(src=C4, dst=S4) / s.UDP(sport=40051, dport=9) / b"3 tags"),
          "VLAN_TOO_MANY", "VLAN", "triple tag, 802.1ad innermost"),
    ])
    dst = s.IPv6ExtHdrDestOpt
    add("ext-too-many", "IPv6 extension chains longer than the parser walks (limit 6)", [
        F(b(eth() / s.IPv6(src=C6, dst=S6) / s.IPv6ExtHdrHopByHop() / dst() / dst() / dst() / dst()
            / dst() / dst() / s.TCP(sport=49501, dport=80, flags="S")), "EXT_TOO_MANY",
          "IPV6_EXT", "hop-by-hop + 6 destination options headers (7 in all)"),
        F(b(eth() / s.IPv6(src=C6, dst=S6) / s.IPv6ExtHdrHopByHop() / dst()
            / s.IPv6ExtHdrRouting(addresses=["2001:db8:3::1"], segleft=1)
            / s.IPv6ExtHdrFragment(id=1, offset=0, m=1)
            / S().AH(nh=60, payloadlen=4, spi=1, seq=1, icv=bytes(12)) / dst() / dst()
            / s.UDP(sport=40052, dport=9)), "EXT_TOO_MANY", "IPV6_EXT",
          "seven different extension headers"),
    ])
    add("unsupported-ethertype", "EtherTypes pktlab does not parse", [
        F(b(s.Ether(src=MAC_C, dst="01:80:c2:00:00:0e", type=0x88CC) / bytes.fromhex(
            "0207040000" "5e005301" "040703" "0000005e005301" "06020078" "0000")),
          "UNSUPPORTED_ETHERTYPE", "ETH", "LLDP"),
        F(raw_eth(0x8847, bytes.fromhex("00064140") + _ip4(syn)), "UNSUPPORTED_ETHERTYPE",
          "ETH", "MPLS label stack carrying IPv4"),
        F(pad60(raw_eth(0x0026, bytes.fromhex("424203") + bytes(35), dst="01:80:c2:00:00:00")),
          "UNSUPPORTED_ETHERTYPE", "ETH", "802.3 length field + LLC (spanning tree BPDU)"),
        F(raw_eth(0x88B5, b""), "UNSUPPORTED_ETHERTYPE", "ETH",
          "local experimental EtherType, nothing after the 14-byte header"),
        F(raw_eth(0x8100, b"\x00\x0a" + b"\x88\x47" + bytes.fromhex("00064140") + _ip4(syn)),
          "UNSUPPORTED_ETHERTYPE", "VLAN", "MPLS inside a VLAN tag"),
        F(raw_eth(0x9100, b"\x00\x0a\x08\x00" + _ip4(syn)), "UNSUPPORTED_ETHERTYPE", "ETH",
          "old pre-802.1ad Q-in-Q TPID 0x9100"),
    ])
    add("bad-version", "The IP version nibble disagrees with the EtherType", [
        F(raw_eth(E4, _ip6(syn)), "BAD_VERSION", "IPV4", "an IPv6 packet sent with EtherType IPv4"),
        F(raw_eth(E6, _ip4(syn) + bytes(20)), "BAD_VERSION", "IPV6",
          "an IPv4 packet sent with EtherType IPv6"),
        F(raw_eth(E4, _ip4(syn, ver=0)), "BAD_VERSION", "IPV4", "version 0"),
        F(raw_eth(E4, _ip4(syn, ver=15, ihl=2)), "BAD_VERSION", "IPV4",
          "version 15 and IHL 2: the version is checked first"),
    ])
    return caps


# --- other link types and formats -------------------------------------------------------------------

def _l3(frame: bytes) -> bytes:
    return frame[14:]


def _sll(pkttype: int, proto: int, payload: bytes, mac=MAC_C) -> bytes:
    s = S()
    return struct.pack(">HHH8sH", pkttype, 1, 6, s.mac2str(mac) + b"\0\0", proto) + payload


def _sll2(pkttype: int, proto: int, payload: bytes, mac=MAC_C, ifindex=2) -> bytes:
    s = S()
    return struct.pack(">HHIHBB8s", proto, 0, ifindex, 1, pkttype, 6, s.mac2str(mac) + b"\0\0") \
        + payload


def _linklayer_samples():
    s = S()
    syn = tcp4(flags="S", seq=1, options=SYN_OPTS)
    synack = tcp4(flags="SA", seq=2, ack=2, src=S4, dst=C4, smac=MAC_S, dmac=MAC_C, sport=80,
                  dport=49152)
    get = tcp4(flags="PA", seq=2, ack=3, payload=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    dns6 = b(eth() / s.IPv6(src=C6, dst=DNS6) / s.UDP(sport=53003, dport=53)
             / dns_q("example.com", "AAAA", 7))
    ping = b(eth() / s.IP(src=C4, dst=S4, id=90) / s.ICMP(type=8, id=5, seq=1) / b"pktlab")
    arp = b(eth(MAC_C, "ff:ff:ff:ff:ff:ff") / s.ARP(op=1, hwsrc=MAC_C, psrc=C4, pdst=R4))
    vlan_in = b(eth() / s.Dot1Q(vlan=42) / s.IP(src=C4, dst=S4, id=91) / s.UDP(sport=40060,
                                                                                 dport=9) / b"v")
    return syn, synack, get, dns6, ping, arp, vlan_in


def cap_cooked():
    syn, synack, get, dns6, ping, arp, vlan_in = _linklayer_samples()
    sll = [
        F(_sll(4, 0x0800, _l3(syn)), layer="TCP", note="outgoing SYN (packet type 4)"),
        F(_sll(0, 0x0800, _l3(synack), mac=MAC_S), layer="TCP", note="incoming SYN/ACK (type 0)"),
        F(_sll(4, 0x0800, _l3(get)), l7="HTTP_REQUEST", note="HTTP GET"),
        F(_sll(4, 0x86DD, _l3(dns6)), l7="DNS", note="DNS over IPv6"),
        F(_sll(4, 0x0806, _l3(arp)), layer="ARP", note="ARP"),
        F(_sll(4, 0x8100, _l3(vlan_in)), note="VLAN tag kept by libpcap after the cooked header"),
    ]
    sll2 = [
        F(_sll2(4, 0x0800, _l3(syn)), layer="TCP", note="outgoing SYN"),
        F(_sll2(0, 0x0800, _l3(synack), mac=MAC_S), layer="TCP", note="incoming SYN/ACK"),
        F(_sll2(4, 0x0800, _l3(ping)), note="ping"),
        F(_sll2(4, 0x86DD, _l3(dns6)), l7="DNS", note="DNS over IPv6"),
        F(_sll2(4, 0x0806, _l3(arp)), layer="ARP", note="ARP"),
    ]
    lessons = ("07-replay-your-pcap",)
    return [
        Capture("cooked-sll.pcap", "Linux cooked capture v1 (tcpdump -i any): pktlab "
                "synthesizes an Ethernet header from the cooked one", lessons, sll,
                linktype=LINKTYPE_LINUX_SLL),
        Capture("cooked-sll2.pcap", "Linux cooked capture v2 (SLL2)", lessons, sll2,
                linktype=LINKTYPE_LINUX_SLL2),
    ]


def cap_raw():
    syn, synack, get, dns6, ping, _arp, _v = _linklayer_samples()
    lessons = ("07-replay-your-pcap",)
    return [
        Capture("raw-ip.pcap", "Raw IP (link type 101): the EtherType is taken from the IP "
                "version nibble", lessons, [
                    F(_l3(syn), layer="TCP", note="IPv4 SYN"),
                    F(_l3(get), l7="HTTP_REQUEST", note="IPv4 HTTP GET"),
                    F(_l3(dns6), l7="DNS", note="IPv6 DNS query"),
                    F(_l3(ping), note="IPv4 ping"),
                ], linktype=LINKTYPE_RAW),
        Capture("raw-ipv4.pcap", "Raw IPv4 (link type 228)", lessons, [
            F(_l3(syn), layer="TCP", note="SYN"), F(_l3(synack), layer="TCP", note="SYN/ACK"),
            F(_l3(ping), note="ping")], linktype=LINKTYPE_IPV4),
        Capture("raw-ipv6.pcap", "Raw IPv6 (link type 229)", lessons, [
            F(_l3(dns6), l7="DNS", note="DNS query"),
            F(_l3(tcp6(flags="S", options=SYN_OPTS)), layer="TCP", note="SYN")],
            linktype=LINKTYPE_IPV6),
    ]


def cap_formats():
    syn, synack, get, dns6, ping, arp, _v = _linklayer_samples()
    lessons = ("07-replay-your-pcap",)
    eth_frames = [F(syn, layer="TCP", note="SYN"), F(synack, layer="TCP", note="SYN/ACK"),
                  F(get, l7="HTTP_REQUEST", note="GET"), F(ping, note="ping"),
                  F(arp, layer="ARP", note="ARP")]
    two = [
        F(syn, layer="TCP", note="interface 0 (Ethernet): SYN", iface=0),
        F(_l3(synack), layer="TCP", note="interface 1 (raw IP): SYN/ACK", iface=1),
        F(get, l7="HTTP_REQUEST", note="interface 0: GET", iface=0),
        F(_l3(dns6), l7="DNS", note="interface 1: IPv6 DNS", iface=1),
        F(arp, layer="ARP", note="interface 0: ARP", iface=0),
        F(_l3(ping), note="interface 1: ping", iface=1),
    ]
    return [
        Capture("nanosecond.pcap", "pcap with nanosecond timestamps (magic 0xa1b23c4d), frames "
                "7 ns apart", lessons, eth_frames, nanosecond=True, step_ns=7),
        Capture("bigendian.pcap", "pcap written big-endian (as on a big-endian host)", lessons,
                eth_frames, byteorder="big"),
        Capture("two-interfaces.pcapng", "pcapng with two interfaces of different link types "
                "(0: Ethernet, nanosecond clock; 1: raw IP, microsecond clock)", lessons, two,
                fmt="pcapng", interfaces=(PcapngInterface(LINKTYPE_ETHERNET, 0, 9, "eth0"),
                                          PcapngInterface(LINKTYPE_RAW, 0, 6, "tun0"))),
    ]


def cap_flows():
    """A few hundred frames of ordinary traffic: the conveyor belt and the throughput lessons."""
    s = S()
    rng = random.Random(2024)
    fr = []
    for conn in range(6):
        sport = 50000 + conn
        six = conn % 3 == 2
        mk = tcp6 if six else tcp4
        c, sv = rng.randrange(1 << 31), rng.randrange(1 << 31)
        kw_s = {} if six else dict(src=S4, dst=C4, smac=MAC_S, dmac=MAC_C)
        kw_s6 = dict(src=S6, dst=C6) if six else {}
        fr.append(F(mk(sport=sport, flags="S", seq=c, options=SYN_OPTS), layer="TCP",
                    note=f"flow {conn}: SYN"))
        fr.append(F(mk(sport=80, dport=sport, flags="SA", seq=sv, ack=c + 1, options=SYN_OPTS,
                       **kw_s, **kw_s6), layer="TCP", note=f"flow {conn}: SYN/ACK"))
        c += 1
        sv += 1
        req = b"GET /file%d HTTP/1.1\r\nHost: www.example.com\r\n\r\n" % conn
        fr.append(F(mk(sport=sport, flags="PA", seq=c, ack=sv, payload=req), l7="HTTP_REQUEST",
                    note=f"flow {conn}: GET"))
        c += len(req)
        for i in range(rng.randrange(18, 26)):
            size = rng.choice([1460 if not six else 1440, 1460 if not six else 1440, 512, 97])
            data = (b"HTTP/1.1 200 OK\r\n\r\n" if i == 0 else b"") + rng.randbytes(size)
            data = data[:size]
            fr.append(F(mk(sport=80, dport=sport, flags="PA" if i == 0 else "A", seq=sv, ack=c,
                           payload=data, **kw_s, **kw_s6),
                        l7="HTTP_RESPONSE" if i == 0 else "NONE", note=f"flow {conn}: data"))
            sv += len(data)
            if i % 2:
                fr.append(F(mk(sport=sport, flags="A", seq=c, ack=sv), layer="TCP",
                            note=f"flow {conn}: ACK"))
        fr.append(F(mk(sport=sport, flags="FA", seq=c, ack=sv), layer="TCP",
                    note=f"flow {conn}: FIN"))
        fr.append(F(mk(sport=80, dport=sport, flags="FA", seq=sv, ack=c + 1, **kw_s, **kw_s6),
                    layer="TCP", note=f"flow {conn}: FIN"))
    for q in range(12):
        name = f"host{q}.example.com"
        qid = rng.randrange(65536)
        fr.append(F(b(eth() / s.IP(src=C4, dst=DNS4, id=200 + q) / s.UDP(sport=52000 + q, dport=53)
                      / dns_q(name, "A", qid)), l7="DNS", note="DNS query"))
        fr.append(F(b(eth(MAC_S, MAC_C) / s.IP(src=DNS4, dst=C4, id=300 + q)
                      / s.UDP(sport=53, dport=52000 + q)
                      / dns_r(name, "A", f"192.0.2.{100 + q}", qid)), l7="DNS", note="DNS answer"))
    for q in range(10):
        fr.append(F(b(eth() / s.IP(src=C4, dst=S4, id=400 + q) / s.ICMP(type=8, id=77, seq=q)
                      / bytes(rng.randrange(0, 1400))), note="ping"))
    # zero-data pings are ICMP-layer: fix the expectation where the random size was 0
    fr = [f._replace(layer="ICMP") if f.note == "ping" and len(f.data) == 42 else f for f in fr]
    return Capture("flows.pcap", "Ordinary traffic in volume: six HTTP flows (IPv4 and IPv6) "
                   "with data and ACKs, DNS lookups, pings", ("05-conveyor-belt",
                                                             "06-hook-throughput"), fr)


def all_captures():
    caps = [cap_tcp_http(), cap_dns(), cap_icmp(), cap_ipv4_options(), cap_vlan(), cap_qinq(),
            cap_ipv6_ext(), cap_fragments(), cap_tcp_options(), cap_arp(), cap_tls(), cap_edge(),
            cap_mptcp(), cap_tcp_options_edge(), cap_tunnels()]
    caps += malformed()
    caps += cap_cooked() + cap_raw() + cap_formats()
    caps.append(cap_flows())
    return caps


# --- writing ------------------------------------------------------------------------------------------

def write_capture(cap: Capture, outdir: Path) -> Path:
    path = outdir / cap.name
    for i, f in enumerate(cap.frames):
        if len(f.data) > MAX_FRAME and cap.linktype == LINKTYPE_ETHERNET:
            raise SystemExit(f"generate: {cap.name} frame {i + 1} is {len(f.data)} bytes, over "
                             f"the {MAX_FRAME}-byte limit of the lab's veth; shrink it")
    if cap.fmt == "pcapng":
        write_pcapng(path, cap.interfaces,
                     [PcapngPacket(f.iface, BASE_TS + i * cap.step_ns, f.data, f.wirelen)
                      for i, f in enumerate(cap.frames)], byteorder=cap.byteorder)
    else:
        write_pcap(path, [(BASE_TS + i * cap.step_ns, f.data, f.wirelen)
                          for i, f in enumerate(cap.frames)],
                   linktype=cap.linktype, nanosecond=cap.nanosecond, byteorder=cap.byteorder)
    return path


def _expect(f: F) -> dict:
    d = {"status": f.status, "layer": f.layer}
    if f.l7 != "NONE":
        d["l7"] = f.l7
    if f.opts is not None:
        d["tcp_options"] = f.opts
    if f.wirelen is not None and f.wirelen > len(f.data):
        d["truncated"] = True
    if f.note:
        d["note"] = f.note
    return d


def build_mixed(caps, outdir: Path) -> Capture:
    """Every frame with status OK from every other capture, as Ethernet, in one file."""
    frames = []
    for cap in caps:
        for fr, f in zip(read_frames(outdir / cap.name), cap.frames):
            if f.status == "OK" and 14 <= len(fr.data) <= MAX_FRAME and not fr.truncated:
                note = f"from {cap.name} frame {fr.index}" + (f": {f.note}" if f.note else "")
                frames.append(F(fr.data, f.status, f.layer, note, f.l7))
    return Capture("mixed.pcap", "Everything valid in one capture: every frame with status OK "
                   "from the other files (cooked and raw-IP ones with their synthesized Ethernet "
                   "header); the largest bundled capture", ("05-conveyor-belt",
                                                           "06-hook-throughput",
                                                           "07-replay-your-pcap"), frames)


def generate(outdir: Path) -> dict:
    outdir.mkdir(parents=True, exist_ok=True)
    caps = all_captures()
    for cap in caps:
        write_capture(cap, outdir)
    mixed = build_mixed(caps, outdir)
    write_capture(mixed, outdir)
    caps.append(mixed)
    files = []
    for cap in caps:
        data = (outdir / cap.name).read_bytes()
        lts = sorted({i.linktype for i in cap.interfaces}) if cap.fmt == "pcapng" else [cap.linktype]
        files.append({
            "file": cap.name,
            "format": cap.fmt,
            "linktypes": lts,
            "nanosecond": cap.nanosecond or (cap.fmt == "pcapng"),
            "byteorder": cap.byteorder,
            "shows": cap.shows,
            "lessons": list(cap.lessons),
            "frames": len(cap.frames),
            "sha256": hashlib.sha256(data).hexdigest(),
            "expected": [_expect(f) for f in cap.frames],
        })
    manifest = {
        "about": "pktlab's bundled capture corpus; regenerate with `python pcaps/generate.py`, "
                 "check with `python pcaps/generate.py --check`. `expected` gives, per frame, "
                 "the status and layer the walker and every kernel hook must report (the "
                 "generator author's intent, checked by tests/test_walker.py).",
        "lessons": list(LESSONS),
        "base_ts_ns": BASE_TS,
        "files": files,
    }
    (outdir / "MANIFEST.json").write_text(_dump(manifest))
    (outdir / "README.md").write_text(_readme(manifest))
    return manifest


def _readme(manifest: dict) -> str:
    """pcaps/README.md, written from the manifest so the two never disagree."""
    lines = [
        "# pktlab capture corpus",
        "",
        "Generated by `python pcaps/generate.py` (deterministic: fixed timestamps, fixed seeds; "
        "`python pcaps/generate.py --check` regenerates into a temporary directory and compares "
        "bytes). Do not edit the captures by hand: change the generator and rerun it.",
        "",
        "`MANIFEST.json` lists every file with what it shows, the lessons that use it, its frame "
        "count, and for every frame the parse status and layer that the walker and every kernel "
        "hook must report (`expected`), plus the L7 guess and whether the capture cut the frame "
        "(snaplen). tests/test_walker.py checks the walker against it and against scapy.",
        "",
        "Addresses are documentation/private ranges only (192.0.2.0/24, 198.51.100.0/24, "
        "10.0.0.0/8, 2001:db8::/32, fd00::/8; MACs 00:00:5e:00:53:xx). Every frame fits the "
        "lab's 1500-byte MTU (at most 1514 bytes with Ethernet); only "
        "`malformed-truncated-eth.pcap` has frames under 14 bytes, which no kernel hook can "
        "receive.",
        "",
        "| file | frames | link type | lessons | shows |",
        "| --- | ---: | --- | --- | --- |",
    ]
    for f in manifest["files"]:
        lt = ", ".join(str(x) for x in f["linktypes"])
        lessons = ", ".join(x.split("-")[0] for x in f["lessons"])
        lines.append(f"| {f['file']} | {f['frames']} | {lt} | {lessons} | {f['shows']} |")
    lines += ["", "Lessons: " + ", ".join(manifest["lessons"]) + ".", ""]
    return "\n".join(lines)


def _dump(manifest: dict) -> str:
    """JSON with one line per expected frame: readable, and diffs stay small."""
    d = json.dumps
    lines = ["{"]
    for k, v in manifest.items():
        if k != "files":
            lines.append(f" {d(k)}: {d(v)},")
    lines.append(' "files": [')
    files = manifest["files"]
    for i, f in enumerate(files):
        lines.append("  {")
        for k, v in f.items():
            if k != "expected":
                lines.append(f"   {d(k)}: {d(v)},")
        lines.append('   "expected": [')
        exp = f["expected"]
        lines += [f"    {d(e)}" + ("," if j < len(exp) - 1 else "") for j, e in enumerate(exp)]
        lines.append("   ]")
        lines.append("  }" + ("," if i < len(files) - 1 else ""))
    lines += [" ]", "}"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary directory and compare with pcaps/")
    ap.add_argument("--out", type=Path, default=HERE, help="output directory (default: pcaps/)")
    args = ap.parse_args(argv)
    if not args.check:
        m = generate(args.out)
        print(f"wrote {len(m['files'])} captures, MANIFEST.json and README.md to {args.out}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        m = generate(Path(tmp))
        names = [f["file"] for f in m["files"]] + ["MANIFEST.json", "README.md"]
        bad = [n for n in names if not (HERE / n).is_file()
               or not filecmp.cmp(Path(tmp) / n, HERE / n, shallow=False)]
        if bad:
            print("generate --check: these differ from a fresh generation: " + ", ".join(bad)
                  + "; run `python pcaps/generate.py` and commit the result", file=sys.stderr)
            return 1
        print(f"generate --check: {len(names)} files identical to a fresh generation")
        return 0


if __name__ == "__main__":
    sys.exit(main())
