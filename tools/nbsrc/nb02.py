"""Lesson 02: its cells (tools/make_notebooks.py writes the notebook)."""

from .assignments import assignments
from .cells import CLOSE, CLOSE_MD, IMPORT, c_exercise, code, md

#: the lesson's %%bpf demo (tests/test_program.py loads it through the learner loader)
BPF_DEMO = r"""
%%bpf xdp count_dest
#include <uapi/linux/bpf.h>
#include <uapi/linux/if_ether.h>

BPF_ARRAY(by_dest, u64, 3);     // 0: unicast, 1: multicast, 2: broadcast -> frames

int count_dest(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    int verdict = XDP_PASS;
    u32 kind = 0;
    if ((void *)(eth + 1) > data_end)   // nothing is read before this check
        goto out;
    if (eth->h_dest[0] & 1) {           // the group bit: multicast, or broadcast
        kind = 1;
        if ((eth->h_dest[0] & eth->h_dest[1] & eth->h_dest[2] & eth->h_dest[3] &
             eth->h_dest[4] & eth->h_dest[5]) == 0xff)
            kind = 2;
    }
    u64 *n = by_dest.lookup(&kind);
    if (n)                              // the verifier wants the check, even for an array
        __sync_fetch_and_add(n, 1);     // atomic: two CPUs may count at once
    if (kind == 2)
        verdict = XDP_DROP;
out:
    return verdict;
}
"""


def nb02():
    return [
        md("""
# 02 · The same parse at XDP

*About 40 minutes. Before: lesson 01 (casting, bounds checks, the record). Root, and the XDP
hook (lesson 00 says whether this machine has it); reading a little C.*

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
## Your own program

A cell that starts with `%%bpf xdp` holds C, not Python: pktlab compiles it and loads it the
way it loads every learner's program (a restricted loader: the verifier gets no more privilege
than a learner's program should have), shows the verifier's verdict, and names the program
after its function. If the verifier refuses it, the verdict shows what it said, at the line of
this cell where it stopped. This one looks only at the Ethernet header: it counts frames by
their destination (unicast, multicast, broadcast) in an array map, and drops broadcasts.
"""),
        code(BPF_DEMO),
        md("""
Its map as a live table: it is read again every half second, so keep it in view while the
cells below run it.
"""),
        code("count_dest.maps"),
        md("""
`BPF_PROG_TEST_RUN` on each frame of a capture: what your function returned for each, by name
(no lab, no network: the program runs on the bytes).
"""),
        code('count_dest.test_run("mixed.pcap")'),
        md("""
The same capture sent across the lab, through your program attached at XDP on dut (the lab's
own XDP program steps aside meanwhile): the live table above counts on from the test run's
numbers as the frames arrive, and the verdicts are counted as they happen (by a counter pktlab
wraps around your function), not test-run.
"""),
        code('count_dest.replay("mixed.pcap", lab=lab)'),
        md("""
## Exercises

**1. The missing bounds check.** Here is `parse_ethhdr` with its bounds check taken out. Run
the cell as it is: the checker compiles the program, and the verifier refuses it. Read what it
says (shown first, with the line of your function where it stopped): it names the access it
could not prove safe. Then put the check back (two lines) and run the cell again: the checker
loads it, test-runs it on every frame of the corpus, and compares every record with the
walker's.
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
them. Which of them have frames that never reach the XDP hook at all? List the capture names
and run the cell: the checker hands every malformed capture to your lab. Why are they not
sent? (The replay's table and the stepper say.)
"""),
        code('answer = []   # capture names\n\npl.exercises.check_never_sent(answer, lab)'),
        *assignments(1, 4),
        md("""
## Summary

- An XDP program gets the frame's bytes between `data` and `data_end`, before the kernel has
  built anything around them; the same C parser runs there and writes the same record.
- The verifier refuses any read it cannot prove to be inside the packet: every header is
  compared with `data_end` before it is read. What it cannot catch (a length that lies but
  stays inside) the corpus, compared with the walker, does.
- A lab replays a capture across a veth pair, matches each record to its frame, and says for
  each frame and hook: agree, explained, disagree, lost or not sent (and why).
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]
