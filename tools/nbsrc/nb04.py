"""Lesson 04: its cells (tools/make_notebooks.py writes the notebook)."""

from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


def nb04():
    return [
        md("""
# 04 · Parsing from an sk_buff in a kernel function

*About 30 minutes. Before: lesson 02 (lesson 03 helps: the `sk_buff`). Root, and the kprobe
hook by any mechanism (lesson 00 says which one this machine allows).*

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
`"struct.member"`) and its byte offset in *this* kernel, and fill them in.
`pl.btf_members("sk_buff")` lists every member this kernel's BTF declares, with its type (an
EtherType is a 16-bit number in network order: `__be16`); `pl.btf_offset(...)` gives one
member's offset.
"""),
        code('path, offset = "", None\n\npl.exercises.check_btf_field(path, offset)'),
        md("""
**2.** Frames longer than 2048 bytes are parsed from their first 2048 bytes only (see `PL_KCOPY`
in the program). What status will the kprobe hook report for a frame of 3,000 bytes? Predict
it from the parser's checks, then run the cell: the checker sends such a frame through a lab
of its own (with a large MTU) and says why pktlab counts it as *explained*.
"""),
        code('answer = ""   # a status name\n\npl.exercises.check_kcopy_status(answer)'),
        md("""
## Summary

- A hook in a kernel function gets a pointer to an `sk_buff`, not packet bytes: it reads the
  fields it needs with `bpf_probe_read_kernel()` and copies the frame out before parsing it.
- Where those fields sit depends on the kernel: pktlab reads every offset from the running
  kernel's BTF, never from headers that may belong to another kernel.
- A global hook filters by interface and network namespace first: only the lab's packets are
  recorded, whatever else the machine receives.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]
