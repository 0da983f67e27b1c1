"""Lesson 05: its cells (tools/make_notebooks.py writes the notebook)."""

from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


def nb05():
    return [
        md("""
# 05 · The conveyor belt: one packet through every hook

*About 25 minutes. Before: lessons 03 and 04 (the TC and kprobe hooks). Root; the lesson uses
every hook this machine has.*

**What you will learn**

- the order in which one packet meets the four hooks, read from each hook's own timestamp
  (`bpf_ktime_get_ns()`, the same clock everywhere);
- how long the trip from src's TC egress to dut's TC ingress takes on a veth;
- what each hook sees of the same packet (length, interface, VLAN tag in bytes or metadata).
"""),
        code(IMPORT),
        code('lab = pl.open_lab("all")\nlab'),
        md("## One packet"),
        code('belt = lab.follow(pl.frames("tcp-http.pcap")[3])\nbelt'),
        code("belt.plot()"),
        md("""
## What each hook sees

The same VLAN-tagged packet: XDP and the kprobe hook see the tag in the bytes; by TC ingress
the frame is 4 bytes shorter and the tag comes from metadata (shaded cells differ from the
walker's record of the bytes that were sent).
"""),
        code('tagged = lab.follow(pl.frames("vlan.pcap")[0])\ntagged'),
        code('pl.conveyor_belt([belt, tagged], labels=["HTTP GET", "VLAN-tagged TCP"])'),
        md("""
## Several packets

Each DNS frame followed on its own: the order never changes, the gaps do (caches, interrupts,
the other CPU).
"""),
        code('belts = lab.follow_each("dns.pcap")\npl.conveyor_belt(belts)'),
        md("""
The belt goes on past TC ingress: once a packet has found its socket, four more hooks see it,
up to the application's `recv()`. Injected frames never get there (no handshake, no socket);
lesson 08 follows a real request from a real client to a real server through all eight, and
`pl.conveyor_belt` draws them the same way.
"""),
        md("""
## Exercises

**1.** In *native* mode the veth driver runs XDP itself, in its NAPI poll, before it hands an skb
to the stack. Where does XDP move on the belt? Open a lab with
`pl.open_lab("all", xdp_mode="native")`, follow a packet, and give the order of the dut-side
hooks (without tc-egress). The checker measures it in a lab of its own.
"""),
        code('answer = []   # e.g. ["kprobe", "xdp", "tc-ingress"]\n\n'
             "pl.exercises.check_native_xdp_order(answer)"),
        md("""
**2.** Follow 20 packets: in a new cell, run `lab.gaps()` (it follows 20 copies of the HTTP
GET, one at a time, and gives the time between the hooks, leg by leg). Which leg takes longer:
from tc-egress to xdp, or from xdp to tc-ingress? The checker measures it on your lab. Then
think about why: what happens to the packet on each leg?
"""),
        code('answer = ""   # "tc-egress -> xdp" or "xdp -> tc-ingress"\n\n'
             "pl.exercises.check_longer_leg(answer, lab)"),
        md("""
## Summary

- Every hook stamps its record with the same clock, so one packet's records put the hooks in
  order: src's TC egress, then dut's receive path, then TC ingress.
- The gaps vary from packet to packet (caches, interrupts, the other CPU); the order does
  not, until the mode changes: native XDP moves into the driver.
- Each hook sees the packet as it is at its place: the tag in the bytes, or in metadata.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]
