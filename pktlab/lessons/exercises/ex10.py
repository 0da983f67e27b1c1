"""Lesson 10: MPTCP subflows under an eBPF path policy, seen by sock_ops.

Checkers:
- check_rto_reading(answer, run): read the RTO demo's timeline: the timeouts (args[1] of
  RTO_CB, in jiffies) of the subflow on the dark path, in order; checked against the run the
  lesson made (the feedback never states them).
- check_join_token(fn, run): a function that takes the MP_JOIN option's bytes (as the path
  policy's record holds them) and returns the token it carries; checked on every join record
  of the run against the server's token (its own socket's MPTCP_INFO).
- check_only_path1_policy(policy): a policy that lets joins in only from path 1's addresses,
  written in the policy language, then run on a real 3-path transfer: only the first subflow
  may stand, every join refused for its source, the transfer complete.
"""

import ipaddress

from .common import CheckResult


def _dark_path_rtos(run):
    doc = run.doc if hasattr(run, "doc") else run
    return [r["rto_jiffies"] for r in doc["rto"] if r["side"] == "src" and r["path"] == 1]


def check_rto_reading(answer, run):
    """The RTO_CB timeouts of the client's path-1 subflow while the path was dark, in order."""
    if not run:                 # the demo did not run here: its reason, shown again
        return run
    want = _dark_path_rtos(run)
    try:
        got = [int(x) for x in answer]
    except (TypeError, ValueError):
        return CheckResult(False, "answer with a list of whole numbers: the rto argument "
                                  "(args[1]) of each RTO_CB, in jiffies, in order")
    if got == want:
        return CheckResult(True, "right: each timeout is twice the one before (the back-off), "
                                 "until the path answers again")
    if len(got) != len(want):
        more = "more" if len(want) > len(got) else "fewer"
        return CheckResult(False, f"the subflow on path 1 met its timeout {more} times than "
                                  "that; count the RTO_CB lines of path 1 in the table")
    from ...kernel.bpf import kernel_hz
    hz = kernel_hz() or 250
    if got == [round(j * 1000 / hz) for j in want]:
        return CheckResult(False, "those look like milliseconds; the callback's args[1] is in "
                                  "jiffies")
    return CheckResult(False, "not what the run's callbacks carried: read args[1] of each "
                              "RTO_CB of the path-1 subflow")


def check_join_token(fn, run):
    """fn(option bytes) -> the token, on every join record of the run."""
    if not run:
        return run
    records = run.join_records() if hasattr(run, "join_records") else list(run.joins)
    want = int(run.doc["tokens"]["dut"], 16)
    if not records:
        return CheckResult(False, "the run saw no join: run it with 2 or 3 paths")
    for j in records:
        opt = bytes.fromhex(j["option"])
        try:
            got = fn(opt)
        except Exception as e:          # the learner's code: shown, never raised
            return CheckResult(False, f"your function raised {type(e).__name__}: {e}")
        if got == want:
            continue
        if isinstance(got, int) and got == int.from_bytes(opt[4:8], "little"):
            return CheckResult(False, "those are the right four bytes, read in the wrong order: "
                                      "TCP options carry numbers in network order (big endian)")
        return CheckResult(False, f"for the option {opt.hex()} your function gave {got!r}, "
                                  "which is not the token the server's socket reports; the "
                                  "layout is kind, length, subtype|flags, address id, token, "
                                  "nonce")
    return CheckResult(True, f"right on all {len(records)} MP_JOIN SYN(s): the join asks for "
                             "the server's token, and every retransmitted SYN carries it again")


def check_only_path1_policy(policy, paths=3):
    """A policy admitting joins only from path 1's addresses: written, then run for real."""
    from ...mptcp import parse_policy
    from ..mptcpviews import mptcp_run
    if policy is None or not str(policy).strip():
        return CheckResult(False, "write the policy as text, e.g. \"max-joins=1\"")
    try:
        pol = parse_policy(policy, paths)
    except ValueError as e:
        return CheckResult(False, f"the policy is refused before it reaches the map: {e}")
    net = pol["only_from"]
    if net is None:
        return CheckResult(False, "that policy does not look at where a join comes from; "
                                  "one rule of the language does")
    nw = ipaddress.IPv4Network(net)
    if ipaddress.IPv4Address("10.200.0.1") not in nw:
        return CheckResult(False, f"{net} does not hold path 1's client address (10.200.0.1)")
    others = [a for a in ("10.201.0.1", "10.202.0.1") if ipaddress.IPv4Address(a) in nw]
    if others:
        return CheckResult(False, f"{net} also holds {', '.join(others)}: joins from those "
                                  "paths would pass")
    view = mptcp_run(paths, policy)
    if not view:
        return view
    d = view.doc
    why = {j["why"] for j in d["joins"] if j["verdict"] == "drop"}
    ok = (d["subflows"]["established"] == 1 and d["subflows"]["refused"] == paths - 1
          and why == {"only-from"} and d["transfer"]["complete"])
    if ok:
        return CheckResult(True, f"right: {paths - 1} joins refused for their source, the "
                                 "connection ran on its first subflow alone, and completed",
                           view._repr_html_())
    return CheckResult(False, f"the run: {d['subflows']}, refused because {sorted(why)}, "
                              f"complete {d['transfer']['complete']}", view._repr_html_())
