"""Lesson 01: its cells (tools/make_notebooks.py writes the notebook)."""

from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


def nb01():
    return [
        md("""
# 01 · Casting headers: from bytes to a record

*About 40 minutes. Before: lesson 00, and what Ethernet, IP and TCP are (a header each, one
after the other). No root needed: no kernel in this lesson.*

**What you will learn**

- that a frame is only bytes, and a header is a *structure laid over them* (a cast): the C
  parser does `struct pl_ethhdr *eth = data;`, pktlab's Python walker does the same with
  ctypes big-endian structures declared once in `pktlab/packet/headers.py`;
- the bounds check that must come before every cast;
- why IPv4's IHL and TCP's data offset are *lengths*, and what happens when they lie;
- VLAN tags, IPv6 and its extension headers, and the L7 peek at the first payload bytes;
- how the walker's view compares with scapy's dissection of the same bytes.

No kernel in this lesson: everything here runs anywhere.
"""),
        code(IMPORT),
        md("""
## A frame is just bytes

Frame 4 of `tcp-http.pcap` is an HTTP GET. Ethernet, IPv4 and TCP headers, then the request:
"""),
        code('frame = pl.frames("tcp-http.pcap")[3]\nlen(frame), frame[:34].hex(" ")'),
        md("""
## Casting: Ethernet

Before reading a header, the parser checks that the whole header lies inside the frame
(`offset + sizeof(header) <= length`). Then it *casts*: the 14 bytes at offset 0 become a
structure with three fields. The table shows each field, where its bytes are, and what they
mean. The EtherType says which header comes next.
"""),
        code('pl.cast_table("Ethernet", frame, 0)'),
        md("""
`cast_table` checks the bounds first, as the C parser does. `.cast()` itself does not: it
lays the structure over whatever bytes there are, and where the buffer is shorter than the
header it fills the rest **with zeros**. A cast never fails, so a zero it read may be a byte
the frame does not have: check the bounds before you trust a cast (exercise 1 needs it).
"""),
        code("eth = pl.headers.Ethernet.cast(frame, 0)\nhex(eth.proto)"),
        md("""
## IPv4: the IHL is a length

EtherType 0x0800 means IPv4 at offset 14. Its first byte holds two 4-bit fields: the version
and the **IHL**, the header length in 32-bit words. The TCP header starts `IHL * 4` bytes after
the start of IPv4, not always 20: options make the header longer.
"""),
        code('pl.cast_table("IPv4", frame, 14)'),
        code('options = pl.frames("ipv4-options.pcap")[0]\npl.cast_table("IPv4", options, 14)'),
        code("pl.layers_table(options)"),
        md("""
A length read from the packet is only trusted after it is checked. An IHL below 5 would make
the "header" shorter than its own fixed fields, and the next header would start *inside* it.
The walker (and the C parser) stop with `IHL_LT5`:
"""),
        code('pl.layers_table(pl.frames("malformed-ihl-lt5.pcap")[0])'),
        md("""
## TCP: the data offset is a length too

`doff` counts 32-bit words as well; the payload starts `doff * 4` bytes after the TCP header's
start. Options (MSS, window scale, SACK, timestamps) live in between.
"""),
        code('pl.cast_table("TCP", frame, 34)'),
        code('pl.layers_table(pl.frames("tcp-options.pcap")[0])'),
        md("""
## A frame cut short

Cut the GET after 30 bytes: the IPv4 header would need bytes 14..33. The bounds check fails,
nothing is read, and the record says where and why the parse stopped.
"""),
        code('pl.cast_table("IPv4", frame[:30], 14)'),
        code("pl.layers_table(frame[:30])"),
        code("ip = pl.headers.IPv4.cast(frame[:30], 14)   # no bounds check: a cast never fails\n"
             "bytes(ip.saddr).hex(\" \"), bytes(ip.daddr).hex(\" \")   # daddr is past the end: zeros"),
        md("""
## VLAN tags

An EtherType of 0x8100 (802.1Q) or 0x88a8 (802.1ad) means a 4-byte tag follows, then the real
EtherType. pktlab parses up to two tags (Q-in-Q) and stops with `VLAN_TOO_MANY` at a third.
Hover over a field in the table to see its bytes, or over a byte to see its field.
"""),
        code('pl.PacketView(pl.frames("vlan.pcap")[0])'),
        code('pl.PacketView(pl.frames("qinq.pcap")[0])'),
        md("""
## IPv6 and its extension headers

IPv6's fixed header is 40 bytes; *next header* may name an extension header (hop-by-hop,
routing, fragment, destination options, AH), each with its own length field, before TCP or UDP.
pktlab walks at most six of them.
"""),
        code('pl.PacketView(pl.frames("ipv6-ext.pcap")[0])'),
        md("""
## The L7 peek

Past the L4 header, the parser copies the first payload bytes into the record and guesses the
application protocol from them: an HTTP method or `HTTP`, a TLS handshake record, DNS by port.
"""),
        code("rec = pl.walk_record(frame)\nrec.l7_name, rec.payload_bytes"),
        code('pl.walk_record(pl.frames("tls-hello.pcap")[3]).l7_name   # a TLS ClientHello'),
        md("""
## The walker and scapy, side by side

scapy dissects the same bytes its own way (`Ether(data).show()`); the tests use it as the
independent oracle for the walker.
"""),
        code("pl.side_by_side(frame)"),
        md("""
## The record

What the walk produces is one `pl_record`, the same structure (declared once, in
`bpf_snippets/pktlab_record.h`) that every kernel hook will emit in the next lessons:
"""),
        code("pl.walk_record(frame)"),
        md("""
## Step through a capture

The stepper: choose a capture, move the slider or press *step*. Without a lab it shows the
walker and scapy; lesson 02 adds the kernel's records.
"""),
        code('stepper = pl.PacketStepper("mixed.pcap")\nstepper'),
        code("stepper.show(4)\nprint(stepper.text())"),
        md("""
## Exercises

**1. Add a field to the parse.** Write `dscp(frame)`: the DSCP of the frame's IPv4 header (the
top 6 bits of the TOS byte), or `None` when the frame has no complete IPv4 header. Like the
parser, follow at most two VLAN tags. Cast with `pl.headers` rather than slicing bytes. The
version below has several bugs; the checker runs it on every frame of the corpus and compares
with scapy.
"""),
        code('''def dscp(frame):
    """The IPv4 DSCP (TOS >> 2), or None without a complete IPv4 header."""
    ip = pl.headers.IPv4.cast(frame, 14)
    return ip.tos


pl.exercises.check_dscp(dscp)'''),
        md("""
**2. Predict, then check.** What status and layer will the walker give a TCP segment whose data
offset is 3, in a 54-byte frame (Ethernet, IPv4, TCP, no payload)? And one whose data offset is
15, in a frame of the same 54 bytes? Write each guess as (status, layer), with the names the
tables above use, and run the cell: the checker makes both frames and walks them.
"""),
        code('doff_3 = ("", "")    # (status, layer)\ndoff_15 = ("", "")\n\n'
             "pl.exercises.check_doff(doff_3, doff_15)"),
        md("""
## Summary

- A header is a structure cast over bytes; a bounds check comes before every cast, because a
  cast itself reads zeros past the end of the bytes instead of failing.
- IHL and TCP's data offset are lengths read from the packet: checked against their minimum
  and against the bytes there are before they are used; the record says where and why a
  parse stopped.
- VLAN tags and IPv6 extension headers are walked to a fixed limit; the L7 peek looks at the
  first payload bytes; scapy, dissecting the same bytes its own way, is the oracle.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]
