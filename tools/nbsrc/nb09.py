"""Lesson 09: its cells (tools/make_notebooks.py writes the notebook)."""

from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


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
