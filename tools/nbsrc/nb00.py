"""Lesson 00: its cells (tools/make_notebooks.py writes the notebook)."""

from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


def nb00():
    return [
        md("""
# 00 · Setup check: what works here, and why

*About 15 minutes. Before: nothing but this page, opened from the address `make lab` printed
(the lessons need root and a Linux kernel with BTF: this lesson checks both).*

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
## The four hooks

A frame is injected at the *src* end of a veth pair and arrives at the *dut* end, each end in
its own network namespace. The four hooks, by name:

- **kprobe** is a kernel-function hook in `__netif_receive_skb_core` on dut, where the kernel
  starts to receive a packet (the next table says how it gets in);
- **tc-egress** runs on src's veth, on the clsact qdisc, on the `sk_buff` of a packet leaving;
- **tc-ingress** runs on dut's veth, on the clsact qdisc, on the `sk_buff` the stack has
  prepared for the packet;
- **xdp** runs on dut's veth in *generic* mode, on the packet as it arrived, before the stack
  has looked at it.

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
**2.** See a lesson as a learner without the kprobe hook would: in a new cell, run `%env
PKTLAB_PRETEND_MISSING=kprobe`, then `pl.doctor(refresh=True)` and `pl.hooks_table()`. Which
hooks would `pl.open_lab("all")` attach then? Fill in the list and run the cell. Then run `%env
PKTLAB_PRETEND_MISSING=` and `pl.doctor(refresh=True)` to get the kprobe hook back. (If the
doctor showed a FAIL line above: apply its fix in a terminal first, then refresh.)
"""),
        code('answer = []   # hook names\n\npl.exercises.check_pretend(answer)'),
        md("""
## Summary

- The doctor proves each hook by using it: compile, load, attach in a throwaway lab, send a
  frame, read the record. What it could not prove comes with the reason and a fix.
- The kprobe hook gets in by the best mechanism this kernel allows, and says which.
- A lesson never attaches a hook the doctor did not prove: it shows the reason and runs on.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]
