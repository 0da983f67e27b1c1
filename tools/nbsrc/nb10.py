"""Lesson 10: its cells (tools/make_notebooks.py writes the notebook)."""

from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


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
        code("rto.plot()"),
        code("rto.plot_bytes()"),
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
