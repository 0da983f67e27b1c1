"""Lesson 08: its cells (tools/make_notebooks.py writes the notebook)."""

from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


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
**4. (Optional, for discussion: no checker.)** `pktlab belt --hooks kprobe,xdp --traffic tcp`
(in a terminal, as root) says the kprobe hook read only the headers of the request, while here
it read all of it. What did tc-egress do to the packet on the way? (Your instructor has the
answer.)
"""),
        md("""
## Summary

- Past TC ingress a packet meets four more hooks, each at its own layer: the cgroup's program
  (from the IP header), the socket's filter (from the transport header), the sockmap's verdict
  (the payload) and the application's receive (the bytes it got).
- Each runs the one parser, entered at its layer, and is judged against the walker entered
  there: what a hook cannot see is explained, never a disagreement.
- A socket filter set on a listener is inherited by every accepted socket; a socket must be in
  the sockmap before its first read, or the reader hangs.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]
