"""The socket table as a connection tracker, side by side (`pktlab conntrack`, lesson 09).

    doc = run(flows=1000, max_entries=256)     # the JSON contract (DESIGN.md)
    print(format_text(doc))

One policy at a time, each on a fresh lab (nothing one policy did, a half-open flow still
retransmitting, a socket in TIME_WAIT, can reach the next): the firewall on both sides, an echo
server in dut, `flows` concurrent connections from src, then the counts:

    connected      handshakes the client completed
    echoed         flows whose line came back whole
    insert_failed  SYNs whose 5-tuple the map refused (hash: E2BIG once it is full)
    evicted        flows whose entry vanished while they were alive (lru_hash)

What must hold (tests/test_conntrack.py): none and sk_lookup carry every flow; hash connects
at most max_entries flows (a flow's SYN passes only with an entry, and entries are never
removed) and refuses the rest; lru_hash connects more than it echoes. Exact counts vary with
the LRU's per-CPU free lists; the inequalities do not.
"""

import errno
import time

from ..errors import LabError
from ..lab import DUT_IP4, Lab
from . import leftovers as _left
from .conntrack import ConntrackFirewall, check_policy
from .flows import CONNECT_TIMEOUT, ECHO_TIMEOUT, PORT, EchoServer, check_flows, run_client

#: the policies `pktlab conntrack` compares, in the order it runs them (the control first)
VARIANTS = ("none", "hash", "lru_hash", "sk_lookup")
FLOWS_DEFAULT, MAX_ENTRIES_DEFAULT = 1000, 256
#: the largest runs pktlab takes: the flows must fit the ephemeral ports and a few seconds;
#: a preallocated map of more entries is memory for nothing
FLOWS_MAX, MAX_ENTRIES_MAX = 10_000, 1_000_000
LAB_PREFIX = "plct"


def check(flows, max_entries):
    """Refuse sizes before any lab (ValueError, said in one line)."""
    if not 1 <= flows <= FLOWS_MAX:
        raise ValueError(f"{flows} flows: use 1..{FLOWS_MAX:,}")
    if not 1 <= max_entries <= MAX_ENTRIES_MAX:
        raise ValueError(f"max entries {max_entries}: use 1..{MAX_ENTRIES_MAX:,}")
    check_flows(flows)


def run_variant(policy, flows=FLOWS_DEFAULT, max_entries=MAX_ENTRIES_DEFAULT, port=PORT,
                connect_timeout=CONNECT_TIMEOUT, echo_timeout=ECHO_TIMEOUT, make_lab=None):
    """One policy on a fresh lab: its counts, with "leftovers" (what the run left behind).
    make_lab: a context manager factory yielding the fresh lab (pktlabd: one of the caller's,
    in their quota); default a Lab of pktlab's own."""
    t0 = time.monotonic()
    server = None
    with (make_lab() if make_lab else Lab(prefix=LAB_PREFIX)) as lab:
        name = lab.name
        with ConntrackFirewall(lab, policy, max_entries) as fw, \
                EchoServer(lab, port) as server:
            client = run_client(lab, flows, port, connect_timeout, echo_timeout)
            counts, errors, states = fw.counters(), fw.insert_errors(), fw.states()
            entries = fw.entries()
        left = _left.inside(lab, procs=[server.proc])
    left += _left.after(name)
    srv, cli = counts["server"], counts["client"]
    return {
        "connected": client["connected"], "echoed": client["echoed"],
        "insert_failed": srv["insert_failed"] + cli["insert_failed"],
        "evicted": srv["evicted"] + cli["evicted"],
        "failed": client["failed"], "insert_errors": errors,
        "dropped": {"server": srv["dropped"], "client": cli["dropped"]},
        "map_entries": entries if policy in ("hash", "lru_hash") else None,
        "counters": counts, "states": states,
        "client_s": client["elapsed_s"], "elapsed_s": round(time.monotonic() - t0, 3),
        "leftovers": left,
    }


def run(flows=FLOWS_DEFAULT, max_entries=MAX_ENTRIES_DEFAULT, variants=VARIANTS, port=PORT,
        progress=None, make_lab=None):
    """Every policy side by side: the `pktlab conntrack` document (DESIGN.md's contract plus
    "ok", "problems", "elapsed_s"). progress(policy, result) is called after each one;
    make_lab as run_variant's."""
    check(flows, max_entries)
    for policy in variants:
        check_policy(policy)
    t0 = time.monotonic()
    doc = {"flows": flows, "max_entries": max_entries, "port": port, "variants": {},
           "leftovers": []}
    for policy in variants:
        got = run_variant(policy, flows, max_entries, port, make_lab=make_lab)
        doc["leftovers"] += got.pop("leftovers")
        doc["variants"][policy] = got
        if policy == "none" and got["connected"] == 0:
            why = ", ".join(f"{k} x{v}" for k, v in got["failed"].items()) or "no reason given"
            raise LabError(errno.ECONNREFUSED,
                           f"the client in the lab could not connect to the echo server at "
                           f"{DUT_IP4}:{port} even without a firewall ({why}); see `pktlab "
                           f"doctor`")
        if progress:
            progress(policy, got)
    doc["problems"] = problems(doc)
    doc["ok"] = not doc["problems"] and not doc["leftovers"]
    doc["elapsed_s"] = round(time.monotonic() - t0, 3)
    return doc


def problems(doc):
    """What says the comparison is broken: a control policy that did not carry every flow."""
    out = []
    for policy in ("none", "sk_lookup"):
        v = doc["variants"].get(policy)
        if v and (v["connected"] < doc["flows"] or v["echoed"] < doc["flows"]):
            out.append(f"{policy}: {v['connected']} connected, {v['echoed']} echoed of "
                       f"{doc['flows']} flows (every flow should pass: {v['failed']})")
    return out


def explain(doc):
    """What each policy's numbers mean, one line each."""
    n, m, v = doc["flows"], doc["max_entries"], doc["variants"]
    out = []
    if "hash" in v:
        h = v["hash"]
        errs = ", ".join(f"{k} x{c}" for k, c in h["insert_errors"].items()) or "none"
        out.append(f"hash: the map holds {m} flows and keeps them: {h['connected']} connected; "
                   f"every later SYN's insert failed ({errs}: SYNs and their retransmits), so "
                   f"{n - h['connected']} new flows were refused")
    if "lru_hash" in v:
        lr = v["lru_hash"]
        out.append(f"lru_hash: every SYN found room by evicting the least recently used entry: "
                   f"{lr['connected']} connected, but {lr['evicted']} live flows lost their "
                   f"entry and broke (their packets were dropped): {lr['echoed']} echoed")
    if "sk_lookup" in v:
        s = v["sk_lookup"]
        out.append(f"sk_lookup: the kernel's socket table is the connection table: no size to "
                   f"pick, nothing to evict: {s['connected']} connected, {s['echoed']} echoed")
    return out


def format_text(doc):
    """The table and what it means."""
    lines = [f"pktlab conntrack: {doc['flows']} concurrent flows from src to an echo server in "
             f"dut, conntrack maps of {doc['max_entries']} entries, a fresh lab per policy", ""]
    head = (f"  {'policy':<10} {'connected':>9} {'echoed':>7} {'insert_failed':>13} "
            f"{'evicted':>7} {'dropped srv/cli':>15} {'map':>6} {'time':>6}")
    lines += [head, "  " + "-" * (len(head) - 2)]
    for policy, v in doc["variants"].items():
        dropped = f"{v['dropped']['server']}/{v['dropped']['client']}"
        entries = "-" if v["map_entries"] is None else str(v["map_entries"])
        lines.append(f"  {policy:<10} {v['connected']:>9} {v['echoed']:>7} "
                     f"{v['insert_failed']:>13} {v['evicted']:>7} {dropped:>15} {entries:>6} "
                     f"{v['elapsed_s']:>5.1f}s")
    lines.append("")
    lines += [f"  {line}" for line in explain(doc)]
    lines += [f"  PROBLEM {p}" for p in doc.get("problems", [])]
    lines.append(f"  leftovers: {doc['leftovers'] or 'none'}")
    return "\n".join(lines)
