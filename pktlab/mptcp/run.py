"""One real MPTCP transfer under a path policy, seen by the sock-ops hook: `pktlab mptcp`.

    check(paths=2, policy="no-path=2")          # bad input: ValueError, before any lab
    res = run_mptcp(paths=2, policy="no-path=2", seconds=4)
    res.doc                                     # the JSON document (below)
    res.events, res.joins, res.client, res.server

What runs: a lab with `paths` paths (paths.py), its cgroup, the sock-ops hook on the cgroup,
the path policy at dut ingress of every path, an MPTCP server in dut and a client in src (both
in the cgroup from before their sockets exist). The client sends paced data (64 KiB every
20 ms, `seconds` long) so that the connection has data in flight all along. Optionally a path
goes dark for a while (drop=(path, at_s, for_s): the TC switch, pathdrop.py; the RTO demo) or
down for good (down=(path, at_s): its dut link is set down) in the middle of the transfer.

The document: {"policy", "subflows": {"established", "refused"}, "paths": {"<n>": {"subflows",
"bytes", "payload"}}, "sockops": {"<callback>": n}, "leftovers", "transfer": {"sent",
"received", "seconds", "complete"}, "joins": [...], "tokens", "connections", "byte_order",
"rto", "events_lost", "elapsed_s"}. subflows.established: the client's subflows that reached
ESTABLISHED (sock_ops ACTIVE_ESTABLISHED_CB); refused: distinct joins (token + 4-tuple) whose
first SYN the policy dropped, each with its retransmitted SYNs' times; paths.<n>.bytes: what
arrived at dut on that path (the policy program's counter, frames with their Ethernet header);
payload: what the client's subflows on that path had acknowledged (tcp_info bytes_acked).
"""

import errno
import time

from ..errors import LabError
from ..lab import Lab, lab_processes, leftovers as lab_leftovers
from . import pm
from .paths import PORT, Paths, check_paths
from .pathdrop import PathSwitch
from .peers import Client, Server
from .policy import PathPolicy, parse, refused_joins, text_of
from .sockops import SockOps
from .timeline import group, rto_series, trap

CHUNK, GAP = 1 << 16, 0.02
SECONDS_MIN, SECONDS_MAX = 0.5, 60.0
#: a client that makes no progress for this long gives up (its socket's timeout)
CLIENT_STALL_S = 6.0
POLL_S = 0.05
#: a client that failed this way is a finding (the transfer did not complete), not an error
TRANSFER_FAILED = (errno.ETIMEDOUT, errno.ECONNRESET, errno.EPIPE, errno.ENETUNREACH,
                   errno.EHOSTUNREACH, errno.ECONNABORTED)
#: after the client's last byte: the closing callbacks (FIN, TIME_WAIT) still come
SETTLE_S = 0.3


def check(paths=2, policy="none", seconds=4.0, drop=None, down=None):
    """Everything about a run's input, before any lab: (policy, drop, down) checked and
    normalized, or ValueError saying what to write."""
    n = check_paths(paths)
    pol = parse(policy, n)
    if not SECONDS_MIN <= float(seconds) <= SECONDS_MAX:
        raise ValueError(f"seconds {seconds}: a transfer here lasts {SECONDS_MIN:g}.."
                         f"{SECONDS_MAX:g} s")
    out = []
    for what, spec, size in (("drop", drop, 3), ("down", down, 2)):
        if spec is None:
            out.append(None)
            continue
        if len(spec) != size:
            raise ValueError(f"{what} {spec!r}: give (path, " +
                             ("at seconds, for seconds)" if size == 3 else "at seconds)"))
        p, times = spec[0], [float(v) for v in spec[1:]]
        if p != int(p) or int(p) not in range(1, n + 1):
            raise ValueError(f"{what}: path {p} is not one of this lab's paths 1..{n}")
        if any(v < 0 for v in times) or (what == "drop" and times[1] <= 0):
            raise ValueError(f"{what} {tuple(spec)}: times are seconds from the start of the "
                             "transfer, and a drop lasts a positive time")
        out.append((int(p), *times))
    return pol, out[0], out[1]


class MptcpRun:
    """What one run found: the document (doc) and the raw material behind it."""

    def __init__(self):
        self.events, self.joins, self.marks = [], [], []
        self.client = self.server = None
        self.counts, self.lost, self.policy_stats = {}, 0, {}
        self.start_ns = time.monotonic_ns()     # the client's start, once there is one
        self.paths_n, self.policy, self.doc = 0, None, {}
        self.addr_path = {}
        self.client_error = None

    def connections(self):
        return group(self.events)[0]

    def summary(self):
        return self.doc

    def to_dict(self):
        """Everything a run found, as JSON-able data (pktlabd sends it; from_dict rebuilds)."""
        return {"doc": self.doc, "events": self.events, "joins": self.joins,
                "marks": [[t, w] for t, w in self.marks], "client": self.client,
                "server": self.server, "counts": self.counts, "lost": self.lost,
                "policy_stats": {str(k): v for k, v in self.policy_stats.items()},
                "start_ns": self.start_ns, "paths_n": self.paths_n,
                "policy": text_of(self.policy) if self.policy is not None else None,
                "addr_path": self.addr_path, "client_error": self.client_error}

    @classmethod
    def from_dict(cls, d):
        """The run to_dict() wrote (its policy parsed again: nonsense is refused)."""
        run = cls()
        run.doc, run.events, run.joins = d["doc"], list(d["events"]), list(d["joins"])
        run.marks = [(int(t), w) for t, w in d["marks"]]
        run.client, run.server = d["client"], d["server"]
        run.counts, run.lost = dict(d["counts"]), int(d["lost"])
        run.policy_stats = {int(k): v for k, v in d["policy_stats"].items()}
        run.start_ns, run.paths_n = int(d["start_ns"]), int(d["paths_n"])
        run.policy = parse(d["policy"], run.paths_n) if d["policy"] is not None else None
        run.addr_path = {str(k): int(v) for k, v in d["addr_path"].items()}
        run.client_error = d["client_error"]
        return run


def _drive(run, lab, paths, so, pol, sw, seconds, drop, down):
    """Start the ends, move the switch / the link at their times, read the rings; returns
    when the client ended."""
    cg = lab.cgroup()
    nbytes = int(seconds / GAP) * CHUNK
    with Server(lab, cg, PORT) as srv:
        cli = Client(lab, cg, PORT, nbytes, CHUNK, GAP, timeout=CLIENT_STALL_S)
        run.start_ns = time.monotonic_ns()
        try:
            t0, dark_on, dark_off, is_down = time.monotonic(), False, False, False
            deadline = t0 + seconds * 3 + 30
            while cli.running():
                t = time.monotonic() - t0
                if drop and not dark_on and t >= drop[1]:
                    sw.dark(drop[0])
                    dark_on = True
                if drop and dark_on and not dark_off and t >= drop[1] + drop[2]:
                    sw.dark()
                    dark_off = True
                if down and not is_down and t >= down[1]:
                    paths.set_up(down[0], False)
                    run.marks.append((time.monotonic_ns(), f"path {down[0]} down"))
                    is_down = True
                if time.monotonic() > deadline:
                    break
                so.poll()
                pol.poll()
                time.sleep(POLL_S)
            if sw is not None and not dark_off:
                sw.dark()
            run.client = cli.result(timeout=15)
            try:
                cli.check(run.client, lab.ns_src)
            except LabError as e:
                if e.errno not in TRANSFER_FAILED:
                    raise
                run.client_error = str(e)     # the run worked: the transfer did not
                srv.close()
            else:
                run.server = srv.result(timeout=15)
        finally:
            cli.close()
    time.sleep(SETTLE_S)
    so.poll()
    pol.poll()


def _inside_leftovers(lab, paths):
    """What is still there in the lab once the run closed its parts (the lab still up)."""
    from ..lab.nl import IPRoute
    out = [f"process {p['pid']} in {p['ns']} ({p['cmd'][:80]})" for p in lab_processes(lab.state)]
    for p in paths.numbers():
        ns, ifn = lab.ns_dut, paths.ifname(p, "dut")
        with IPRoute(netns=ns) as ipr:
            idx = ipr.link_lookup(ifname=ifn)
            if not idx:
                continue
            if any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index=idx[0])):
                out.append(f"clsact qdisc on {ns}/{ifn}")
    return out


def _extra_left(lab, names):
    from ..lab.nl import IPRoute
    out = []
    with IPRoute(netns=lab.ns_src) as ipr:
        for n in names:
            if ipr.link_lookup(ifname=n):
                out.append(f"interface {n} in {lab.ns_src}")
    return out


def _run_in(lab, run, n, pol_, seconds, drop, down):
    left = []
    with Paths(lab, n) as paths:
        run.addr_path = {a: p for p in paths.numbers() for a in paths.addrs(p)}
        extra = [paths.ifname(p, "src") for p in paths.numbers() if p > 1]
        with SockOps(lab, lab.cgroup()) as so, PathPolicy(lab, paths, pol_) as pol:
            sw = PathSwitch(lab, paths) if drop else None
            try:
                _drive(run, lab, paths, so, pol, sw, seconds, drop, down)
            finally:
                if sw is not None:
                    sw.close()
                    run.marks += sw.marks
        run.events, run.joins = so.events, pol.joins
        run.counts, run.lost = so.counts(), so.lost()
        run.policy_stats = pol.final_stats
        if down:
            paths.set_up(down[0], True)
        left += _inside_leftovers(lab, paths)
    return left + _extra_left(lab, extra)


def run_mptcp(paths=2, policy="none", seconds=4.0, drop=None, down=None, lab=None):
    """One transfer (see the module docstring); returns an MptcpRun. A lab given by the caller
    is used and left up (what the run added to it is removed); else one is made and removed."""
    pol_, drop, down = check(paths, policy, seconds, drop, down)
    run = MptcpRun()
    run.paths_n, run.policy = paths, pol_
    t0 = time.monotonic()
    if lab is not None:
        left = _run_in(lab, run, paths, pol_, seconds, drop, down)
    else:
        with Lab(prefix="plmp") as own:
            left = _run_in(own, run, paths, pol_, seconds, drop, down)
            name = own.name
        left += lab_leftovers(name)
    run.doc = summarize(run, time.monotonic() - t0, left)
    return run


def summarize(run, elapsed, left):
    """The JSON document of a run (the module docstring says what each key holds)."""
    conns = run.connections()
    est = [s for c in conns for s in c.on("src") if s.established]
    per_path = {p: 0 for p in range(1, run.paths_n + 1)}
    for s in est:
        p = run.addr_path.get((s.local or "").rsplit(":", 1)[0])
        if p:
            per_path[p] += 1
    payload = {p: 0 for p in per_path}
    for sf in (run.client or {}).get("subflows", []):
        p = run.addr_path.get((sf.get("local") or [None])[0])
        if p:
            payload[p] += sf["bytes_acked"]
    refused = refused_joins(run.joins)
    c, s = run.client or {}, run.server or {}
    rto = _rto(run)
    return {
        "policy": text_of(run.policy),
        "subflows": {"established": len(est), "refused": len(refused)},
        "paths": {str(p): {"subflows": per_path[p],
                           "bytes": run.policy_stats.get(p, {}).get("bytes", 0),
                           "payload": payload[p]} for p in per_path},
        "sockops": run.counts,
        "leftovers": left,
        "transfer": {"sent": c.get("sent", 0), "received": s.get("received", 0),
                     "seconds": c.get("seconds"),
                     "complete": bool(c.get("ok")) and c.get("server_got") == c.get("sent"),
                     "error": run.client_error},
        "joins": [_join_doc(v, run) for v in _by_join(run.joins).values()],
        "tokens": {"src": f"{c['info']['token']:08x}" if c.get("info") else None,
                   "dut": f"{s['info']['token']:08x}" if s.get("info") else None},
        "connections": [x.to_dict() for x in conns],
        "byte_order": trap(run.events),
        "rto": rto,
        "marks": [{"t_s": round((t - run.start_ns) / 1e9, 3), "what": w if isinstance(w, str)
                   else f"dark mask {w:#x}"} for t, w in run.marks],
        "events_lost": run.lost,
        "elapsed_s": round(elapsed, 2),
    }


def _by_join(joins):
    out = {}
    for j in joins:
        out.setdefault((j["token"], j["saddr"], j["sport"], j["daddr"], j["dport"]), []).append(j)
    return out


def _join_doc(syns, run):
    first = syns[0]
    return {"token": f"{first['token']:08x}", "path": first["path"],
            "from": f"{first['saddr']}:{first['sport']}",
            "to": f"{first['daddr']}:{first['dport']}",
            "verdict": first["verdict"], "why": first["why"],
            "syn_times_s": [round((j["t_ns"] - first["t_ns"]) / 1e9, 3) for j in syns]}


def _rto(run):
    """Every RTO_CB of the client's subflows: path, time from the first dark mark, count and
    timeout (jiffies, and ms at this kernel's HZ)."""
    from ..kernel.bpf import kernel_hz
    series = rto_series(run.events)
    if not series:
        return []
    hz = kernel_hz()
    side = {e["cookie"]: (e["side"], e["local"]) for e in run.events}
    # from the moment a path went dark (the RTO demo), else from the client's start
    t_ref = next((t for t, w in run.marks if not isinstance(w, str) and w), run.start_ns)
    out = []
    for cookie, rows in series.items():
        who, local = side[cookie]
        for t, n, jiffies in rows:
            out.append({"side": who, "path": run.addr_path.get(local.rsplit(":", 1)[0]),
                        "socket": cookie, "t_s": round((t - t_ref) / 1e9, 3),
                        "retransmits": n, "rto_jiffies": jiffies,
                        "rto_ms": round(jiffies * 1000 / hz, 1) if hz else None})
    return sorted(out, key=lambda r: r["t_s"])


def format_text(doc):
    """The document as text."""
    t = doc["transfer"]
    lines = [f"policy {doc['policy']}: {doc['subflows']['established']} subflow(s) established, "
             f"{doc['subflows']['refused']} join(s) refused; transfer {t['sent']:,} bytes sent, "
             f"{t['received']:,} received in {t['seconds']} s "
             f"({'complete' if t['complete'] else 'INCOMPLETE: ' + str(t['error'])})",
             f"tokens: client {doc['tokens']['src']}, server {doc['tokens']['dut']}", "",
             "  path  subflows  bytes into dut  payload acked"]
    for p, v in doc["paths"].items():
        lines.append(f"  {p:>4}  {v['subflows']:>8}  {v['bytes']:>14,}  {v['payload']:>13,}")
    lines.append("")
    for j in doc["joins"]:
        lines.append(f"  join {j['from']} -> {j['to']} token {j['token']} on path {j['path']}: "
                     f"{j['verdict']} ({j['why']}); SYNs at {j['syn_times_s']} s")
    for m in doc["marks"]:
        lines.append(f"  at {m['t_s']:.3f} s into the transfer: {m['what']}")
    for r in doc["rto"]:
        lines.append(f"  RTO_CB {r['side']} path {r['path']} at {r['t_s']:+.3f} s: "
                     f"retransmits {r['retransmits']}, rto {r['rto_jiffies']} jiffies "
                     f"({r['rto_ms']} ms)")
    if doc["byte_order"]:
        b = doc["byte_order"]
        lines.append(f"  byte order: remote_port raw {b['remote_port_raw']}: ntohs(raw) = "
                     f"{b['ntohs(raw)']}, bswap32(raw) = {b['bswap32(raw)']}; local_port "
                     f"{b['local_port']} (host order)")
    lines.append("  sock_ops callbacks: " +
                 ", ".join(f"{k} {v}" for k, v in doc["sockops"].items()))
    lines.append(f"  leftovers: {doc['leftovers'] or 'none'}")
    return "\n".join(lines)


def ok(doc):
    """Did the run work and find what it should: the transfer complete, no event lost,
    nothing left behind."""
    return doc["transfer"]["complete"] and not doc["events_lost"] and not doc["leftovers"]



def prove_sockops(lab):
    """The doctor's proof of the sock-ops hook: the program on `lab`'s cgroup, one real
    connection (MPTCP where the namespace allows it, else TCP) from a client in src to a
    server in dut, both in the cgroup. Returns (ok, via, why)."""
    proto = "mptcp" if pm.why_not(lab) is None else "tcp"
    cg = lab.cgroup()
    with SockOps(lab, cg) as so:
        with Server(lab, cg, PORT, proto) as srv:
            cli = Client(lab, cg, PORT, 1000, proto=proto, timeout=5.0)
            try:
                cli.check(cli.result(timeout=15), lab.ns_src)
                srv.result(timeout=15)
            finally:
                cli.close()
        time.sleep(0.05)
        so.poll()
        events = so.events
    via = "SOCK_OPS on the lab's cgroup v2 (the program sets its own callback flags)"
    ops = {(e["side"], e["op"]) for e in events}
    want = {("src", "TCP_CONNECT_CB"), ("src", "ACTIVE_ESTABLISHED_CB"),
            ("dut", "PASSIVE_ESTABLISHED_CB"), ("src", "STATE_CB")}
    if not want <= ops:
        return False, via, (f"attached, but a real {proto} connection gave only "
                            f"{sorted(op for _s, op in ops) or 'no callbacks'}")
    tokens = {e.get("token") for e in events if e.get("token")}
    if proto == "mptcp" and not tokens:
        return False, via, "attached and saw a real MPTCP connection, but read no token"
    return True, via, (f"attached and followed a real {proto} connection from src to dut: "
                       "connect, established on both sides, state changes" +
                       ("; its MPTCP tokens read at BTF offsets" if tokens else ""))
