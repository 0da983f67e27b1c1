"""Lesson 03: its cells (tools/make_notebooks.py writes the notebook)."""

from .assignments import assignments
from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


def nb03():
    return [
        md("""
# 03 · TC: ingress, egress, and what the skb knows

*About 35 minutes. Before: lesson 02 (the parse at XDP, a lab, the stepper). Root, and the XDP
and TC hooks.*

**What you will learn**

- TC programs on the clsact qdisc, ingress and egress, in direct-action mode;
- the context a TC program gets (`struct __sk_buff`) against XDP's `xdp_md`;
- what TC ingress sees that XDP did not: the VLAN tag the stack moved into skb metadata, and a
  field an XDP program rewrote;
- how pktlab tells an *explained* difference (the kernel did it) from a disagreement (a bug).
"""),
        code(IMPORT),
        md("""
## The TC program

The same parser, one more thing before it: an outer VLAN tag may have been taken out of the
bytes by the stack, so the program reads it from the skb's metadata (`vlan_present`,
`vlan_tci`), and notes in the record that it did.
"""),
        code('pl.show_source("tc.bpf.c")'),
        md("""
## `xdp_md` against `__sk_buff`

XDP sees the frame before the kernel has built anything around it; TC gets an `sk_buff`, with
everything the stack already knows about the packet. Both structures, as this kernel declares
them:
"""),
        code("pl.ctx_table()"),
        md("## A lab with XDP and both TC hooks"),
        code('lab = pl.open_lab(["xdp", "tc-ingress", "tc-egress"])\nlab'),
        md("""
## The VLAN tag that moved

Replay VLAN-tagged frames. XDP and TC egress see the tag in the bytes, like the walker. By the
time TC ingress runs, `__netif_receive_skb_core` has called `skb_vlan_untag()`: the tag is gone
from the bytes (the frame is 4 bytes shorter) and sits in the skb. pktlab counts this as
*explained*, and names the reason.
"""),
        code('lab.replay("vlan.pcap")'),
        code('lab.follow(pl.frames("vlan.pcap")[0])'),
        code('stepper = pl.PacketStepper("qinq.pcap", lab=lab)\nstepper'),
        md("""
## A field XDP rewrote

An XDP program may change the packet: a router decrements the TTL. This variant of the XDP
program records the frame as it arrived, *then* decrements the TTL (fixing the IPv4 checksum).
TC ingress runs later, on the rewritten bytes. It runs in a lab of its own (one XDP program per
interface).
"""),
        code('pl.xdp_rewrite_demo(pl.frames("tcp-http.pcap")[3])'),
        md("""
## Egress

TC egress on src sees each packet as it leaves, before it crosses the veth: for ordinary frames
all three hooks agree with the walker.
"""),
        code('lab.compare("tcp-http.pcap")'),
        md("""
## Exercises

**1.** Which field of the record tells you that TC ingress took the VLAN tag from skb metadata
rather than from the bytes? Look at the stepper's table for a tagged frame.
"""),
        code('answer = ""   # a field name\n\npl.exercises.check_vlan_flag(answer)'),
        md("""
**2.** In the stepper above, untick `tc-ingress` in the hook chooser and step: its column goes.
Tick it again. Then look at the first Q-in-Q frame of `qinq.pcap` (the stepper shows each tag
on a row of its own): how many tags does TC ingress report, and where did each one come from,
the frame's bytes or the skb's metadata?
"""),
        code('tags = None      # how many\nouter = ""       # "bytes" or "metadata"\n'
             'inner = ""\n\npl.exercises.check_qinq_tags(tags, outer, inner, lab)'),
        md("""
**3.** What TTL would TC ingress report if the rewriting XDP program got a frame sent with
TTL 1? Read the program's condition in `print(pl.exercises.ttl_rewrite_text())`, predict, and
run the cell: the checker sends such a frame through the program.
"""),
        code("answer = None   # a TTL\n\npl.exercises.check_ttl_one(answer)"),
        *assignments(2, 5),
        md("""
## Summary

- TC programs run on the clsact qdisc, on an `sk_buff`: ingress after the stack has prepared
  the packet, egress as it leaves. Their context (`__sk_buff`) knows far more than XDP's.
- What the kernel did between two hooks (a VLAN tag moved to metadata, bytes an XDP program
  rewrote) shows up as a difference; pktlab calls it *explained* and names the reason. Any
  other difference is a bug in one of the parsers.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]
