"""Lesson 00: its cells (tools/make_notebooks.py writes the notebook)."""

from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


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
