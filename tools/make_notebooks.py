#!/usr/bin/env python3
"""Write the lesson notebooks (notebooks/NN-topic.ipynb) from this one source.

    .venv/bin/python tools/make_notebooks.py           # (re)write them
    .venv/bin/python tools/make_notebooks.py --check   # exit 1 if a committed one differs

The notebooks are committed as this script writes them: no outputs, execution_count null,
cell ids derived from the notebook and the cell's position, so a rerun changes nothing.
Exercise cells that hand the learner a C function take it from bpf_snippets/pktlab_parse.h
(minus the lines the exercise removes: pktlab/lessons/exercises/ex02.py), so they never drift
from the parser. Solutions live in notebooks/solutions/, never in a lesson.
"""

import os
import sys

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "notebooks")
sys.path.insert(0, REPO)

IMPORT = "from pktlab import lessons as pl"
CLOSE_MD = ("## Clean up\n\nThe last cell closes every lab and widget this notebook opened "
            "(namespaces, veth, attached programs) and says what is left: it must be nothing. "
            "If the kernel is shut down first, the lab goes anyway (a watcher process removes it).")
CLOSE = "pl.close_all()"


def md(text):
    return ("markdown", text.strip("\n"))


def code(text):
    return ("code", text.strip("\n"))


def c_exercise(var, name, checker):
    from pktlab.lessons.exercises import exercise_source
    src = exercise_source(name)
    if '"""' in src or "\\" in src:
        raise ValueError(f"{name}: the function text cannot go in a raw triple-quoted string")
    return code(f'{var} = r"""\n{src.rstrip()}\n"""\n\npl.exercises.{checker}({var})')


# --------------------------------------------------------------------------------------------
def nb00():
    return [
        md("""
# 00 · Setup check: what works here, and why

**What you will learn**

- what pktlab needs from a machine: root, bcc, kernel headers for bcc, BTF, tracefs;
- how `pktlab doctor` *proves* each hook: it compiles the real program, attaches it in a
  throwaway lab, sends it one frame, and waits for the record;
- which of the four hooks work on this machine, how each one attaches, and why a missing one is
  missing;
- what the other lessons do when a hook is missing here: they say why, and carry on.
"""),
        code(IMPORT),
        md("""
## The doctor

Every check has a *fix*: when one fails, the fix says what to run. The hook probes take a few
seconds, because each program is compiled by bcc (clang) and checked by the kernel's verifier;
the lessons keep the compiled programs, so later cells start at once.
"""),
        code("pl.doctor_table()"),
        md("""
## The four hooks, in the order a packet meets them

A frame is injected at the *src* end of a veth pair and arrives at the *dut* end, each end in
its own network namespace:

- **tc-egress** runs on src as the packet leaves (an `sk_buff`, on the clsact qdisc);
- **kprobe** is a kernel-function hook at the start of `__netif_receive_skb_core` on dut;
- **xdp** runs on dut's veth in *generic* mode, inside the same function, before the stack
  touches the packet;
- **tc-ingress** runs on dut after XDP, on the `sk_buff` the stack has built.

All four run the same C parser (`bpf_snippets/pktlab_parse.h`) and write the same record.
"""),
        code("pl.hooks_table()"),
        md("""
## How the kprobe hook attaches here

"kprobe" is the lesson's name for a hook in a kernel function. There are three ways in, and
pktlab takes the first one the running kernel allows: a real **kprobe** (needs
`CONFIG_KPROBES`), an **fentry** trampoline (needs BPF trampolines, and a kernel that lets
this program load), or the **raw tracepoint** `netif_receive_skb`, which fires at the same
place and is always there. The table says which one it is here, and why the others are not.
"""),
        code("pl.mechanism_table()"),
        md("""
## When a hook is missing

Every lesson asks the doctor before it attaches anything, with these two helpers. A lesson
whose hook is missing shows the reason where the live output would be, and runs to the end.
(An instructor can preview that: start JupyterLab with `PKTLAB_PRETEND_MISSING=kprobe`.)
"""),
        code('pl.hook_available("kprobe"), pl.why_not("kprobe")'),
        code('pl.hook_available("xdp"), pl.why_not("xdp")'),
        md("""
## The captures the lessons use

`pcaps/` holds a small corpus made by `pcaps/generate.py`: ordinary traffic and deliberately
broken frames (truncated headers, IHL below 5, too many VLAN tags...). Every frame's expected
parse is in `pcaps/MANIFEST.json`.
"""),
        code("pl.captures()"),
        code('pl.capture_info("mixed.pcap")'),
        md("""
## Exercises

**1.** In which order does a packet sent from src to dut meet the four hooks, with XDP in
generic mode as the lab attaches it? Fill in the list (hook names as in the table above) and
run the cell. Lesson 05 draws the answer on a timeline.
"""),
        code('answer = []   # e.g. ["xdp", "tc-ingress", "kprobe", "tc-egress"]\n\n'
             "pl.exercises.check_wire_order(answer)"),
        md("""
**2.** See a lesson as a learner without the kprobe hook would: run `%env
PKTLAB_PRETEND_MISSING=kprobe`, then `pl.doctor(refresh=True)` and `pl.hooks_table()`. What does
the table say instead of "via raw_tracepoint"? Run `%env PKTLAB_PRETEND_MISSING=` and refresh
again to get it back. (If the doctor showed a FAIL line above: apply its fix in a terminal
first, then refresh.)
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


def nb01():
    return [
        md("""
# 01 · Casting headers: from bytes to a record

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
offset is 3? And one whose data offset is 15 in a 60-byte frame? Write down your guesses, then
look at `pl.layers_table(...)` of the frames in `malformed-doff-lt5.pcap` and
`malformed-doff-beyond.pcap`.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


def nb02():
    return [
        md("""
# 02 · The same parse at XDP

**What you will learn**

- what an XDP program is handed (`struct xdp_md`: `data`, `data_end`) and where it runs;
- why every header read in the C parser is preceded by a comparison with `data_end`: the
  verifier refuses a program that could read past the packet;
- the parse live on a lab: a bundled capture replayed across a veth pair, and the kernel's
  record of each frame next to the walker's;
- `BPF_PROG_TEST_RUN`: running the program on bytes, with no network at all.
"""),
        code(IMPORT),
        md("""
## The program

One page: take the next free slot of this CPU's record ring, fill in what only the hook knows
(time, interface, length), run the shared parser, publish the slot. `XDP_PASS` lets every frame
go on. (Why a ring of plain array slots and not a BPF ring buffer: `pl.show_source(
"pktlab_common.h")` explains, and `pktlab bench` measures it.)
"""),
        code('pl.show_source("xdp.bpf.c")'),
        md("""
## The parser it runs

The same cursor style at every layer: take the header at the cursor, check that it ends before
`data_end`, only then read it, advance. Compare with the casts of lesson 01.
"""),
        code('pl.show_source("pktlab_parse.h", "parse_ethhdr")'),
        code('pl.show_source("pktlab_parse.h", "parse_iphdr")'),
        md("""
## A lab

Two network namespaces, *src* and *dut*, joined by a veth pair; the XDP program attached to
dut's end in generic mode. If XDP cannot run here, the next cell says why, and the live cells
after it print that reason instead of their results.
"""),
        code('lab = pl.open_lab(["xdp"])\nlab'),
        md("""
## Replay a capture

Every frame of `tcp-http.pcap` goes out of src; the XDP program records each one at dut; pktlab
matches records to frames (by a fingerprint of the bytes) and compares each record with the
walker's, field by field.
"""),
        code('lab.replay("tcp-http.pcap")'),
        md("## Kernel records next to the walker's, frame by frame"),
        code('lab.compare("mixed.pcap", limit=16)'),
        md("""
## The stepper, live

Each frame you choose is sent across the lab; the table shows the walker's record and the XDP
record of that very frame, differences highlighted.
"""),
        code('stepper = pl.PacketStepper("mixed.pcap", lab=lab)\nstepper'),
        code("stepper.show(3)\nprint(stepper.text())"),
        md("""
## Test runs: the program without a network

`BPF_PROG_TEST_RUN` hands the loaded program a buffer and runs it once, as if a frame had
arrived. Here it runs on frames cut short inside the IPv4 header:
"""),
        code('pl.test_run_table("malformed-truncated-ipv4.pcap")'),
        md("""
## Exercises

**1. The missing bounds check.** Here is `parse_ethhdr` with its bounds check taken out. Run
the cell as it is: the checker compiles the program, and the verifier refuses it: read its
last lines, they name the access it could not prove safe. Then put the check back (two lines)
and run the cell again: the checker loads it, test-runs it on every frame of the corpus, and
compares every record with the walker's.
"""),
        c_exercise("my_parse_ethhdr", "eth-bounds", "check_eth_bounds"),
        md("""
**2. A check the verifier does not need.** This `parse_iphdr` uses the IHL as a length without
first checking that it is at least 5. The verifier accepts it: every read is still inside the
packet. Run it and see what the corpus says; then fix it so it agrees with the walker on every
frame.
"""),
        c_exercise("my_parse_iphdr", "ihl-minimum", "check_ihl_minimum"),
        md("""
**3.** Replay a few of the `malformed-*.pcap` captures with `lab.replay(...)` and step through
them. Which ones never reach the XDP hook at all, and why? (The stepper's table says "not sent"
with the reason.)
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


def nb03():
    return [
        md("""
# 03 · TC: ingress, egress, and what the skb knows

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
`vlan_tci`) and says so in the record's flags.
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
Tick it again. Then step to a Q-in-Q frame: how many tags does TC ingress report, and where did
each one come from?

**3.** What TTL would TC ingress report if the rewriting XDP program ran on a frame sent with
TTL 1? Read the program's condition in `pl.exercises.ttl_rewrite_text()`.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


def nb04():
    return [
        md("""
# 04 · Parsing from an sk_buff in a kernel function

**What you will learn**

- a hook in a kernel function (`__netif_receive_skb_core`) gets a pointer to an `sk_buff`,
  not to packet bytes: every field is read with `bpf_probe_read_kernel()`, and the frame is
  copied out before the same parser runs on the copy;
- how pktlab chooses the mechanism here: kprobe, else fentry, else raw tracepoint;
- why the `sk_buff` field offsets come from the running kernel's BTF, not from headers;
- how a global hook records only the lab's packets (interface and network namespace filter).
"""),
        code(IMPORT),
        md("""
## The program

`pl_skb()` reads `skb->dev`, then the device's ifindex and network namespace, and returns at
once for any packet that is not the lab's. Then `head`, `data`, `len` and `mac_header` give
where the frame starts; its first bytes are copied into a per-CPU buffer and parsed there.
"""),
        code('pl.show_source("kprobe.bpf.c", "pl_skb")'),
        md("""
## How the mechanism is chosen here

Each mechanism is tried in order, really loaded and attached; the first that works is used,
and the reasons the others failed are kept (and shown by the doctor).
"""),
        code("pl.mechanism_table()"),
        md("""
## Offsets from BTF

Where `len` or `dev` sit inside `struct sk_buff` depends on the kernel version and its
configuration. The headers bcc compiles with may come from another kernel (on the CI machine:
Debian 6.1 headers for a 6.18 kernel), so pktlab reads every offset from
`/sys/kernel/btf/vmlinux` and passes it to the compiler as a `-D` constant.
"""),
        code("pl.btf_offsets_table()"),
        code('pl.btf_offset("sk_buff.len")'),
        md("""
## Live

The kprobe hook and XDP on the same lab: the kprobe hook sees the packet first here (the
tracepoint fires at the top of `__netif_receive_skb_core`, generic XDP a few lines later).
If the kprobe hook cannot run here, the tables below say why and show XDP alone.
"""),
        code('lab = pl.open_lab(["kprobe", "xdp"])\nlab'),
        code('lab.replay("icmp-echo.pcap")'),
        code('lab.compare("tcp-http.pcap")'),
        md("""
## Only the lab's own packets

The hook fires for every packet the machine receives, in every namespace. The program's
`config` map holds the lab's dut ifindex and namespace inode; anything else returns before a
record is reserved. The replay table's *foreign* column counts records that matched no frame
that was sent: it stays 0 even while the host is busy.
"""),
        md("""
## Exercises

**1.** The stack stores the packet's EtherType in the skb. Find the member's path (as
`"struct.member"`) and its byte offset in *this* kernel with `pl.btf_offset(...)`, and fill
them in.
"""),
        code('path, offset = "", None\n\npl.exercises.check_btf_field(path, offset)'),
        md("""
**2.** Frames longer than 2048 bytes are parsed from their first 2048 bytes only (see `PL_KCOPY`
in the program). What status would the kprobe hook report for such a frame, and why does pktlab
count it as *explained*? (Hint: `pl.compare.REASONS`.)
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


def nb05():
    return [
        md("""
# 05 · The conveyor belt: one packet through every hook

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
**2.** Follow 20 packets and compare the gap between tc-egress and xdp with the gap between xdp
and tc-ingress. Which part of the path costs more, and why?
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


def nb06():
    return [
        md("""
# 06 · What each hook costs

**What you will learn**

- the cost of a program per packet, measured with `BPF_PROG_TEST_RUN` against an *empty*
  program of the same type, so what is left is the parse (and the record);
- the live ladder: packets per second dropped at XDP, at TC, in netfilter, at a socket, against
  what the generator alone can send;
- why the earliest hook is the cheapest place to drop, and what parsing adds.
"""),
        code(IMPORT),
        md("""
## The panel

Choose the points and frame sizes and press *Run*. The cell after it runs a small subset (XDP
and TC drop, 64-byte frames) so that the lesson runs quickly end to end; tick more for the
full ladder (about a minute).
"""),
        code('panel = pl.bench_panel(points=("xdp_drop", "tc_drop"), sizes=(64,), micro_on=True)\n'
             "panel"),
        code("results = pl.run_bench(panel)"),
        code("pl.bench_chart(results)"),
        code("pl.bench_text(results)"),
        md("""
## Reading it

- *micro*: the parse programs with a record per packet (`xdp`, `tc`) and without one
  (`*_no_record`), each against the empty program of its type; the ratio is what the parse
  costs beyond entering a BPF program at all.
- *live*: the generator sends one UDP flow as fast as it can; each point drops (or parses and
  passes) what it receives. The earlier the point, the less of the stack each packet costs.
"""),
        md("""
## Exercises

**1.** Which program costs least per packet in your results? Give its name as in the *micro*
table.
"""),
        code('answer = ""\n\npl.exercises.check_cheapest_hook(answer, results)'),
        md("""
**2.** Tick `XDP drop (native)` and `netfilter drop` in the panel and press *Run*. Where does
netfilter land on the ladder, and why there?
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


def nb07():
    return [
        md("""
# 07 · Replay your own capture

**What you will learn**

- what pktlab makes of a capture from elsewhere: pcap or pcapng, Ethernet, Linux cooked
  (SLL/SLL2) or raw IP (an Ethernet header is synthesized, and the views say so);
- replaying it through every hook and reading the agreement table;
- stepping through it frame by frame, and reading a disagreement when there is one.
"""),
        code(IMPORT),
        md("""
## Your capture

Put your capture's path in the next cell, or start JupyterLab with `PKTLAB_CAPTURE=/path/to/
file.pcap`. Without either, the lesson uses the bundled `mixed.pcap`. Frames larger than the
lab's MTU are skipped (and counted), as are frames shorter than an Ethernet header.
"""),
        code('capture = pl.instructor_capture("mixed.pcap")\ncapture'),
        code("pl.capture_info(capture)"),
        md("## Every hook"),
        code('lab = pl.open_lab("all")\nlab'),
        code("result = lab.replay(capture)\nresult"),
        code("result.plot()"),
        md("""
## Step through it

The agreement table counts; the stepper shows each frame. Red cells are disagreements (a bug in
one of the parsers: please report it with the frame), amber ones are explained differences.
"""),
        code("stepper = pl.PacketStepper(capture, lab=lab)\nstepper"),
        code('result.summary()["disagreements"]'),
        md("""
## Exercises

**1.** Replay `vlan.pcap` with `lab.replay(...)`. Which frame numbers did TC ingress record as
*explained* differences? List them; the checker sends the capture across your lab to check.
"""),
        code('answer = []   # frame numbers, 1-based\n\n'
             'pl.exercises.check_explained(answer, lab, "vlan.pcap")'),
        md("""
**2.** Choose `cooked-sll.pcap` in the stepper. What does the hex view say about bytes 0-13, and
why do the hooks still agree with the walker on them?
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


def nb08():
    return [
        md("""
# 08 · The end of the belt: the socket-level hooks

*About 40 minutes. Before: lesson 05 (the conveyor belt). Root; cgroup v2 for two of the hooks
(the first cell says what works here, and why not the rest).*

**What you will learn**

- the four hooks at the application end, where each sits and what each sees of the same
  request: `cgroup-ingress` (the server's cgroup: from the IP header), `socket-filter` (the
  server's socket: from the TCP header), `sk-skb` (a sockmap: the payload only) and `recv` (the
  application's receive: the bytes it got);
- that each still runs the one parser, entered at its own layer, and agrees with the walker
  entered there; what it cannot see is explained, never a disagreement;
- the L7 peek: at XDP every header must be parsed, and bounds-checked, before the first payload
  byte; at sk-skb the payload is handed over;
- socket filters are inherited: one on a listening socket runs on every socket accept() makes;
- a socket must be in the sockmap before its first read: a reader already blocked in `recv()`
  hangs, while the bytes wait in its receive queue.
"""),
        code(IMPORT),
        code("pl.hooks_table()"),
        md("""
## A real server, a real client

Packets replayed from a capture never reach these hooks: they need a handshake and a socket to
be delivered to. So the lesson's lab runs a real HTTP server (Python's `http.server`) in dut,
inside a cgroup v2 of the lab's own (the server joins it *before* it makes its socket: a socket
belongs to the cgroup its maker was in), and a real client in src. Every hook the doctor proved
here is attached around them.
"""),
        code('belt = pl.open_belt("http")\nbelt'),
        md("## One request, every hook"),
        code("run = belt.request()\nrun"),
        code("run.plot()"),
        md("""
The first four hooks are lesson 05's: the frame on src's wire, then dut's receive path. Then
the packet finds its socket, and the socket end begins: the cgroup's program, the socket's own
filter (both from `sk_filter_trim_cap()`, right after the socket lookup), the sockmap's verdict
when the data reaches the socket, and last the application's `recvfrom()` returning. The gap
before `sk-skb` and `recv` is the socket: a wakeup, a scheduler, a process.
"""),
        md("## What each hook sees of the same request"),
        code("run.views()"),
        md("""
Each hook parses what it sees with the same parser (`pl_parse_at()` in
`bpf_snippets/pktlab_parse.h`), entered where its view starts: the walker, entered at the same
place over the frame that left src, computes the record it must make (the *explained* column
says what it cannot see). The cgroup program, from the IP header:
"""),
        code('pl.show_source("cgroup_ingress.bpf.c", "pktlab_cgroup_ingress")'),
        md("""
## The L7 peek: XDP against sk-skb

To guess the application protocol, XDP has to walk Ethernet, IP and TCP first, each header
bounds-checked before it is read, and only then reach the payload at byte 66. The sk-skb
program starts there: the kernel has already taken every header off and handed the payload over,
in order, once per chunk TCP delivers.
"""),
        code("belt.l7_peek(run)"),
        md("""
## Socket filters are inherited

The socket filter was attached once, with `SO_ATTACH_BPF`, to the server's listening socket
(reached from outside with `pidfd_getfd(2)`: the server is an ordinary, unmodified program).
"""),
        code("belt.filter_inheritance(run)"),
        md("""
## Into the sockmap before the first read

The sk-skb hook's sockhash is filled by a `sock_ops` program on the lab's cgroup, at the end of
the handshake, before `accept()` returns: the server's first read already goes through the
sockmap's path. Here the other order: a TCP echo server accepts, blocks in `recv()`, and only
then is its socket put into the sockhash by hand. About a second:
"""),
        code("belt.late_insert()"),
        md("""
## Choose the hooks

Tick hooks off and on: the belt attaches the ticked ones around the same server and follows a
new request through them. (Untick `tc-egress` and watch what the kprobe hook reads of the
request: exercise 4.)
"""),
        code("belt.chooser()"),
        md("""
## Exercises

**1.** Give the eight hooks in the order one request meets them.
"""),
        code('order = []   # e.g. ["xdp", ...]\n\npl.exercises.check_belt_order(order)'),
        md("""
**2.** Name a field of the record that `cgroup-ingress` fills for the request and
`socket-filter` cannot (compare their rows in `run`, or `run.run.record("socket-filter")`).
"""),
        code('field = ""\n\npl.exercises.check_only_above(field)'),
        md("""
**3.** The `sock_ops` program in `bpf_snippets/sk_skb.bpf.c` puts each accepted socket in the
sockhash at one callback. Which callback must it be, so that no reader ever hangs? The checker
compiles the sk-skb program with your callback and sends a real request through a lab of its
own; try a few wrong ones first (`BPF_SOCK_OPS_TCP_LISTEN_CB`,
`BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB`) and say why each fails.
"""),
        code('op = "BPF_SOCK_OPS_TCP_CONNECT_CB"\n\npl.exercises.check_insert_moment(op)'),
        md("""
**4.** `pktlab belt --hooks kprobe,xdp --traffic tcp` (in a terminal, as root) says the kprobe
hook read only the headers of the request, while here it read all of it. What did tc-egress do
to the packet on the way?
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


def nb09():
    from pktlab.lessons.exercises import variant_source

    def broken(var, name):
        src = variant_source(name)
        if '"""' in src or "\\" in src:
            raise ValueError(f"{name}: the text cannot go in a raw triple-quoted string")
        return code(f'{var} = r"""\n{src.rstrip()}\n"""\n\npl.exercises.check_lookup({var})')

    return [
        md("""
# 09 · The socket table as a connection tracker

*About 45 minutes. Before: lesson 03 (TC). Root and a kernel with TC and socket lookup (the
first cell's checks say if this machine has them).*

**What you will learn**

- why a firewall that keeps its own connection-tracking map fills up (a `HASH` map refuses new
  flows, an `LRU_HASH` map forgets live ones), measured on 1,000 real flows;
- how a firewall can ask the kernel's socket table instead (`bpf_sk_lookup_tcp`), which never
  fills and never forgets;
- how the verifier tracks the socket *reference* that lookup takes: every path must give it
  back, once, after checking it is not NULL, and never use it afterwards;
- the TIME_WAIT trap: a lookup that misses time-wait sockets drops the last packets of a close.
"""),
        code(IMPORT),
        code('pl.hooks_table()'),
        md("""
## A firewall with a memory of its own

The classic stateful firewall remembers every flow it let in: a map keyed by the 5-tuple, filled
by the client's SYN, looked up for every later packet. Linux's own conntrack works so, and when
its table is full the kernel logs *"nf_conntrack: table full, dropping packet"*.

The next cell runs four firewalls at TC ingress of a lab's server, each on a fresh lab, against
1,000 concurrent TCP flows from a real client (connect, send, read the echo): no firewall; a
`HASH` map of 256 entries; an `LRU_HASH` map of 256 entries; and a firewall that keeps no map at
all but asks the socket table. About 15 seconds.
"""),
        code("ct = pl.conntrack(flows=1000, max_entries=256)\nct"),
        code("ct.plot()"),
        md("""
Read the bars: `connected` is a handshake done, `echoed` the echo read back. The `HASH` map
stops letting SYNs in once it is full (`insert_failed` counts the refusals, errno `E2BIG`); the
`LRU_HASH` map lets every flow connect but evicts older flows to make room, and an evicted
flow's next packets are dropped (`evicted`): its echo never comes.
"""),
        md("""
## Ask the socket table instead

Every connection this host has is already in the kernel's socket table, and so is every
listener. `bpf_sk_lookup_tcp()` asks it, from TC, which socket the stack would deliver this
packet to. No map to fill: the socket table *is* the state. Here is the lesson's firewall, which
drops a TCP packet no socket would take:
"""),
        code('pl.show_source("sk_lookup_fw.bpf.c")'),
        code("pl.verify(pl.exercises.firewall_source())"),
        md("""
## The verifier tracks the reference

`bpf_sk_lookup_tcp()` returns the socket with a *reference* held on it (or NULL). The verifier
follows that reference through every path of the program and refuses it unless the reference
is released with `bpf_sk_release()` on every path, exactly once, after a NULL check, and the
socket is not read after its release. Each cell below verifies the firewall with one rule
broken, on purpose: read what the verifier says, at which line, and what it means.
"""),
        md("**Forgot the release** (the `bpf_sk_release(sk)` line is gone):"),
        code('pl.verify(pl.exercises.variant_source("forgot_release"))'),
        md("**Released on one branch only** (only when the socket is a listener):"),
        code('pl.verify(pl.exercises.variant_source("release_one_branch"))'),
        md("**Used after release** (the release moved above the read of `sk->state`):"),
        code('pl.verify(pl.exercises.variant_source("use_after_release"))'),
        md("**Released twice**:"),
        code('pl.verify(pl.exercises.variant_source("double_release"))'),
        md("**Read before the NULL check** (`sk->state` read right after the lookup):"),
        code('pl.verify(pl.exercises.variant_source("read_before_null_check"))'),
        md("**Released (and read) without a NULL check** (the `if (!sk)` block is gone):"),
        code('pl.verify(pl.exercises.variant_source("release_without_null_check"))'),
        md("""
## The TIME_WAIT trap

When the server closes first, its socket becomes a small *time-wait* socket until the close is
done. `bpf_sk_lookup_tcp()` looks up full sockets only: the client's last FIN finds no socket,
the firewall drops it, and the close never completes (the client retransmits its FIN).
`bpf_skc_lookup_tcp()` finds any socket, time-wait ones included (for those,
`bpf_sk_fullsock()` is NULL: there is no full socket to read).
"""),
        code("pl.timewait()"),
        md("""
## Exercises

**1.** This firewall forgets to give the socket back. Fix it in the cell (the verifier tells
you where), then run the cell: the checker verifies it and tries it on a real lab (a connection
to a listening port must work; a SYN to a closed port must be dropped).
"""),
        broken("fw1", "forgot_release"),
        md("""
**2.** This one reads the socket after giving it back. Fix it.
"""),
        broken("fw2", "use_after_release"),
        md("""
**3.** In the run above, how many of the 1,000 flows did the `HASH` firewall let connect? Give
the number, then say to yourself why it is exactly that many.
"""),
        code("answer = None   # a whole number\n\npl.exercises.check_hash_connected(answer, ct)"),
        md("""
**4.** Which helper would the firewall need so that a close through it completes?
"""),
        code('answer = ""   # the helper\'s name\n\npl.exercises.check_timewait_lookup(answer)'),
        md("""
## Summary

- A firewall's own connection-tracking map has a size: full, it refuses new flows (`HASH`) or
  forgets live ones (`LRU_HASH`). The socket table has no such limit: ask it.
- A lookup takes a reference; the verifier proves every path gives it back once, after a NULL
  check, and never uses it after. Its refusal names the line and the path.
- Full sockets and time-wait sockets are not the same lookup: `bpf_skc_lookup_tcp` sees both.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


def nb10():
    return [
        md("""
# 10 · MPTCP subflows under an eBPF path policy, seen by sock_ops

*About 50 minutes. Before: lesson 03 (TC) and lesson 09 (sockets in the kernel). Root, a kernel
with MPTCP and cgroup v2 (the next cell says whether this machine has them).*

**What you will learn**

- what a Multipath TCP connection is on the wire and in the kernel: one connection, one TCP
  *subflow* per path, two *tokens* (one per side), and *joins* that add subflows;
- TCP-BPF `sock_ops`: a program on a cgroup that the kernel calls at every step of every TCP
  socket there (connect, established, state changes, RTT samples, retransmits, timeouts), with
  the callback's arguments; it turns the optional callbacks on itself;
- how to read what `bpf_sock_ops` does not give you: the MPTCP connection behind a subflow
  (`bpf_skc_to_mptcp_sock()`) and its token and subflow id, at offsets taken from the running
  kernel's BTF, so that subflows group by connection as `ss -M` does;
- two traps: `remote_port` is in network order in the high half of a `u32`; `local_port` is not;
- the retransmission timeout and its back-off, made visible by black-holing a path;
- a path policy as an eBPF program configured from a map: refuse joins (MP_JOIN SYNs) at TC,
  and what that does to the subflows, measured.
"""),
        code(IMPORT),
        code('pl.hook_available("sock-ops"), pl.why_not("sock-ops")'),
        md("""
## A lab with two paths

The lab of every lesson has one veth pair between `src` and `dut` (path 1, 10.200.0.1 ↔
10.200.0.2). Here a second pair joins the same namespaces (path 2, 10.201.0.1 ↔ 10.201.0.2;
a third, 10.202.0.x, when asked). MPTCP is set through netlink (the `mptcp_pm` generic netlink
family, as `ip mptcp` does): both sides may have one more subflow per extra path, and dut
announces each extra address (a `signal` endpoint, an `ADD_ADDR` option to the client). The
client then *joins* the announced address from its own address on that path.

The next cell makes that lab, attaches the sock-ops program to the lab's cgroup and the path
policy (none yet) at TC ingress of each dut interface, starts an MPTCP server in dut and a
client in src (both in the cgroup from before their sockets exist: a socket belongs to the
cgroup it was made in), sends paced data for three seconds, and removes everything. About 5 s.
"""),
        code("run = pl.mptcp_run(paths=2)\nrun"),
        md("""
Two subflows, one per path. The client paces its sending (64 KiB every 20 ms): the default
scheduler sends on the subflow with the lowest RTT that has room, so nearly everything takes
path 1 while nothing is lost. Path 2 stands ready.

## One connection, two subflows, two tokens

Each subflow is a TCP socket of its own, and sock_ops is called for each. What ties them
together is the MPTCP connection (`struct mptcp_sock`) behind them, which `bpf_sock_ops` does
not show: the program gets it with `bpf_skc_to_mptcp_sock(skops->sk)` and reads its `token`
with `bpf_probe_read_kernel()` at the offset this kernel's BTF gives; the subflow's id comes the
same way, from the subflow context (`icsk_ulp_data`). Each side has its own token; each subflow
also knows its peer's key, whose SHA-256 gives the peer's token: that is how both sides' sockets
land in one connection below.
"""),
        code("pl.sockops_offsets()"),
        code("run.connections()"),
        md("""
Compare the tokens with what the two programs' own sockets say (`getsockopt(SOL_MPTCP,
MPTCP_INFO)`, in `run["tokens"]`): the same numbers, found from the kernel side.
"""),
        code('run["tokens"]'),
        md("""
## The timeline

Every callback of every subflow, in order (RTT samples are counted, not listed). Read the
client's first subflow: `TCP_CONNECT_CB` (the program sets its callback flags there:
`cb_flags 0x0 -> set 0`), `STATE_CB SYN_SENT -> ESTABLISHED`, `ACTIVE_ESTABLISHED_CB` with the
MP_CAPABLE option of the packet that completed the handshake. On the server side the child of
the listener starts with no flags: the program sets them at `PASSIVE_ESTABLISHED_CB`. The
request-socket callbacks (`TIMEOUT_INIT`, `RWND_INIT`, `NEEDS_ECN`) come before any of that:
the kernel asks the program for values while the handshake is still a request.
"""),
        code("run.timeline()"),
        md("""
## The byte-order trap

`bpf_sock_ops` gives ports two ways. `local_port` is a plain number (host order).
`remote_port` is the port as it is on the wire (big endian) *in the high half of a 32-bit
field*: on a little-endian machine `bpf_ntohs(skops->remote_port)` converts the low half, which
is 0. Shift first (`bpf_ntohs(skops->remote_port >> 16)`) or swap all 32 bits.
"""),
        code("run.byte_order()"),
        md("""
## The retransmission timeout, and its back-off

A TC program on the dut interfaces (`mptcp_pathdrop.bpf.c`) drops path 1's TCP packets while a
bit is set in its map. The next cell sends for six seconds and sets the bit from 1 s to 4 s.
The client's subflow on path 1 waits for an ACK that never comes: its retransmission timer
fires (`RTO_CB`, args: how many times so far, the timeout in jiffies), and every time the
timeout doubles. Meanwhile MPTCP sends the data on path 2. About 9 s.
"""),
        code("rto = pl.mptcp_run(paths=2, seconds=6, drop=(1, 1.0, 3.0))\nrto.rto()"),
        code("rto.plot();"),
        code("rto.plot_bytes();"),
        md("""
## A path policy, from a map

The in-kernel path manager decides which subflows to open from its endpoints and limits. A
policy that the endpoints cannot say (*no subflow on path 3*, *at most one join per
connection*, *joins only from this network*) can still be enforced from outside: the program
below sits at TC ingress of every dut interface and drops MP_JOIN SYNs the policy refuses.
A join is known by the token it asks for and its 4-tuple; its first verdict is remembered, so
its retransmitted SYNs get the same answer and a limit counts joins, not SYNs. The policy is a
map entry that Python writes (and refuses when it makes no sense: `no-path=1`, say, since
path 1 carries the connection's first subflow, which is not a join).
"""),
        code('pl.show_source("mptcp_policy.bpf.c", "first_verdict")'),
        md("""
Choose a policy: a real transfer runs under it over three paths, and the table follows. Each
run takes about 5 s. The cells after it do from code what the menu does.
"""),
        code("sw = pl.policy_switcher(paths=3)\nsw"),
        code('sw.choose("no-path=3");\nsw.choose("max-joins=1");\nsw.history()'),
        md("""
A refused join does not go away at once: the client retries its SYN, about a second apart (the
SYN's first timeout, then linear timeouts), until the connection closes. Each retry is the
same join:
"""),
        code("sw.last().joins()"),
        md("""
## What upstream offers, and what the proposals would change

- **Path managers.** The *in-kernel* path manager (what this lab uses: `ip mptcp endpoint` and
  `limits`, the `mptcp_pm` netlink family) and the *userspace* one (`net.mptcp.path_manager =
  userspace`, driven by a daemon such as mptcpd through netlink: announce, create and destroy
  subflows, with events from `ip mptcp monitor`). This kernel lists both in
  `net.mptcp.available_path_managers`, and one scheduler, `default`.
- **BPF.** `mptcp_pm_ops` and `mptcp_sched_ops` exist in this kernel's BTF, but not as BPF
  struct_ops (there is no `bpf_struct_ops_mptcp_pm_ops`, unlike `tcp_congestion_ops`): a BPF
  program cannot be a path manager or a scheduler here. What BPF can do today is what this
  lesson did: see every subflow as a TCP socket (sock_ops), find its connection
  (`bpf_skc_to_mptcp_sock`), and refuse packets (TC).
- **The proposals, against today:** *new sock_ops callbacks* for MPTCP events (a subflow
  added or closed, an address announced): today each subflow's TCP callbacks fire, and the
  connection-level events reach userspace through netlink (`ip mptcp monitor`); *extended
  `bpf_sock_ops` fields* (token, subflow id, MPTCP state in the context): today
  `bpf_skc_to_mptcp_sock()` plus kernel reads at BTF offsets, which needs CAP_PERFMON (a
  learner's program could not do it); *`mptcp_open_subflow()`*, a way for BPF to open a
  subflow: today only the path managers open subflows, the userspace one on a daemon's
  request, and a BPF program can only prevent one, as the policy above does.
"""),
        md("""
## Exercises

**1.** Read the RTO demo's table above: give the timeouts (`args[1]`, in jiffies) of the
client's path-1 subflow, in order.
"""),
        code("answer = []   # e.g. [10, 20]\n\npl.exercises.check_rto_reading(answer, rto)"),
        md("""
**2.** The path policy's record of each MP_JOIN SYN holds the option's bytes; here are the
first one's. Write `join_token(opt)` that returns the token the join asks for, as an integer:
the checker runs it on every join record of the first run and compares with the server's own
token (its socket's `MPTCP_INFO`).
"""),
        code("run.join_option(0)"),
        code('def join_token(opt):\n    """opt: the MP_JOIN option (bytes): kind, length, subtype|flags, address id, '
             'token, nonce."""\n    return None\n\n\npl.exercises.check_join_token(join_token, run)'),
        md("""
**3.** Write a policy that lets joins in only from path 1's addresses (10.200.0.0/24), in the
policy language (`pl.mptcp_run` takes it as `policy=`). The checker runs it on a three-path
transfer: which subflows stand?
"""),
        code('policy = ""\n\npl.exercises.check_only_path1_policy(policy)'),
        md("""
## Summary

- An MPTCP connection is TCP subflows plus a connection-level socket; each side has a token,
  and a join asks for the peer's token. sock_ops sees each subflow as a TCP socket, and
  `bpf_skc_to_mptcp_sock()` plus BTF offsets give its connection.
- A sock_ops program asks for the optional callbacks itself; their arguments carry the story
  (state pairs, RTT samples, the RTO and its back-off). `remote_port` hides its port in the
  high half.
- The in-kernel path manager opens subflows from endpoints; an eBPF program at TC, configured
  from a map, can refuse joins per path, per connection, per source: the subflows follow, the
  connection goes on over the paths it kept.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]


NOTEBOOKS = {
    "00-setup-check": nb00,
    "01-casting-headers": nb01,
    "02-xdp": nb02,
    "03-tc": nb03,
    "04-kprobe": nb04,
    "05-conveyor-belt": nb05,
    "06-hook-throughput": nb06,
    "07-replay-your-pcap": nb07,
    "08-socket-end": nb08,
    "09-socket-table": nb09,
    "10-mptcp-sockops": nb10,
}


def build(stem, cells):
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                       "language": "python"},
        "language_info": {"name": "python"},
    }
    for i, (kind, text) in enumerate(cells):
        cid = f"{stem[:2]}-{i:02d}"
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(text, id=cid)
        else:
            cell = nbformat.v4.new_code_cell(text, id=cid)
            cell.execution_count = None
            cell.outputs = []
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv):
    check = "--check" in argv
    bad = []
    os.makedirs(OUT, exist_ok=True)
    for stem, fn in NOTEBOOKS.items():
        text = build(stem, fn())
        path = os.path.join(OUT, stem + ".ipynb")
        if check:
            try:
                with open(path) as f:
                    if f.read() != text:
                        bad.append(path)
            except FileNotFoundError:
                bad.append(path)
        else:
            with open(path, "w") as f:
                f.write(text)
    if check and bad:
        print("not as tools/make_notebooks.py writes them (run it): " + ", ".join(bad),
              file=sys.stderr)
        return 1
    if not check:
        print(f"wrote {len(NOTEBOOKS)} notebooks to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
