"""sock_ops events as a per-connection timeline: MPTCP connections, their subflows, and each
subflow's callbacks in order, like `ss -M` and `ip mptcp monitor` group them, from pktlab's own
view (the sock-ops hook).

    conns, others = group(events)          # [Connection], [Subflow] (not MPTCP: listener...)
    conns[0].tokens                        # {"src": token, "dut": token}
    conns[0].subflows                      # [Subflow] by first event: side, cookie, ids, events
    text(events)                           # the timeline as text
    rto_series(events)                     # {cookie: [(t_s, retransmits, rto_jiffies)]}

Grouping: a subflow is one TCP socket (its socket cookie); its connection is its mptcp_sock,
known by the token read there. Each side of a connection has its own token; a subflow also
knows its peer's (peer_token, from the peer's key), so the two sides' subflows meet in one
connection: every socket whose tokens overlap belongs to it.
"""

from .sockops import OPS, STATES, byte_order

#: the callbacks that ask the program for a value (its return value in skops->reply)
ASKS = {"TIMEOUT_INIT": "for the SYN's retransmission timeout",
        "RWND_INIT": "for the initial receive window",
        "NEEDS_ECN": "whether to use ECN"}
#: callbacks that come once per packet or ACK: left out of the text timeline unless asked
CHATTY = ("RTT_CB", "PARSE_HDR_OPT_CB")


class Subflow:
    """One TCP socket's events (one MPTCP subflow, or a socket that is not MPTCP)."""

    def __init__(self, cookie):
        self.cookie = cookie
        self.events = []

    def _last(self, key, unknown=(None,)):
        """The last value the events gave `key` (the socket's latest view: a client subflow's
        address id is -1 at connect, 1 once the join is done), `unknown` values skipped."""
        for e in reversed(self.events):
            if e.get(key) not in unknown:
                return e[key]
        return None

    @property
    def side(self):
        return self.events[0]["side"]

    @property
    def local(self):
        return self._last("local", (None, "0.0.0.0:0"))

    @property
    def remote(self):
        return self._last("remote", (None, "0.0.0.0:0"))

    @property
    def subflow_id(self):
        return self._last("subflow_id")

    @property
    def token(self):
        return self._last("token", (None, 0))     # 0 once the connection is gone

    @property
    def peer_token(self):
        return self._last("peer_token", (None, 0))

    @property
    def established(self):
        return any(e["op"] in ("ACTIVE_ESTABLISHED_CB", "PASSIVE_ESTABLISHED_CB")
                   for e in self.events)

    @property
    def first_ns(self):
        return self.events[0]["t_ns"]

    def ops(self):
        return [e["op"] for e in self.events]

    def to_dict(self):
        return {"side": self.side, "cookie": self.cookie, "local": self.local,
                "remote": self.remote, "subflow_id": self.subflow_id,
                "local_id": self._last("local_id"), "remote_id": self._last("remote_id"),
                "established": self.established, "callbacks": len(self.events)}


class Connection:
    """An MPTCP connection: its tokens (one per side) and its subflows on both sides."""

    def __init__(self, subflows):
        self.subflows = sorted(subflows, key=lambda s: s.first_ns)
        self.tokens = {}
        for s in self.subflows:
            if s.token:
                self.tokens.setdefault(s.side, s.token)

    def on(self, side):
        return [s for s in self.subflows if s.side == side]

    def to_dict(self):
        return {"tokens": {k: f"{v:08x}" for k, v in self.tokens.items()},
                "subflows": [s.to_dict() for s in self.subflows]}


def group(events):
    """([Connection], [Subflow] of sockets that are not MPTCP) from sock_ops events."""
    by_cookie = {}
    for e in events:
        by_cookie.setdefault(e["cookie"], Subflow(e["cookie"])).events.append(e)
    parent = {}

    def find(t):
        while parent.setdefault(t, t) != t:
            t = parent[t]
        return t
    for sf in by_cookie.values():
        toks = {t for e in sf.events for t in (e.get("token"), e.get("peer_token")) if t}
        toks = sorted(toks)
        for t in toks[1:]:
            parent[find(t)] = find(toks[0])
        sf.key = find(toks[0]) if toks else None
    conns, others = {}, []
    for sf in by_cookie.values():
        if sf.key is None:
            others.append(sf)
        else:
            conns.setdefault(find(sf.key), []).append(sf)
    out = sorted((Connection(v) for v in conns.values()), key=lambda c: c.subflows[0].first_ns)
    return out, sorted(others, key=lambda s: s.first_ns)


def describe(e):
    """A callback's arguments in words."""
    op, a = e["op"], e["args"]
    if op == "STATE_CB":
        return f"{_state(a[0])} -> {_state(a[1])}"
    if op == "RTO_CB":
        return f"retransmits={a[0]} rto={a[1]} jiffies expired={a[2]}"
    if op == "RETRANS_CB":
        return f"seq={a[0]:#x} segs={a[1]} err={a[2]}"
    if op == "RTT_CB":
        return f"mrtt={a[0]}us srtt={e['srtt_us']}us"
    if op in ("TCP_CONNECT_CB", "ACTIVE_ESTABLISHED_CB", "PASSIVE_ESTABLISHED_CB"):
        opt = e.get("mptcp_option")
        return (f"cb_flags {e['cb_flags']:#x} -> set {e['set_ret']}" +
                (f"; {opt['subtype']} ({opt['len']} bytes)" if opt else ""))
    if op in ASKS:
        where = "" if e["fullsock"] else " (of the request socket, before the handshake is done)"
        return f"asks the program {ASKS[op]}{where}; no answer: the default"
    return ""


def _state(n):
    return STATES[n] if n < len(STATES) else str(n)


def _sub_line(s):
    ids = (f" subflow_id={s.subflow_id} address ids {s._last('local_id')}/"
           f"{s._last('remote_id')}" if s.subflow_id is not None else "")
    return f"  {s.side} socket {s.cookie}: {s.local} -> {s.remote}{ids}"


def text(events, chatty=False, limit=None):
    """The timeline as text: per connection (tokens), per subflow, each callback at its time
    (ms from the first event). RTT_CB and PARSE_HDR_OPT_CB are counted, not listed, unless
    `chatty`."""
    if not events:
        return "no sock_ops events"
    t0 = min(e["t_ns"] for e in events)
    conns, others = group(events)
    lines = []
    for c in conns:
        toks = ", ".join(f"{side} {tok:08x}" for side, tok in sorted(c.tokens.items()))
        lines.append(f"MPTCP connection, tokens {toks}")
        for s in c.subflows:
            lines.append(_sub_line(s))
            lines += _event_lines(s, t0, chatty, limit)
    for s in others:
        lines.append(f"not MPTCP (a listener, a request socket, plain TCP): {s.side} socket "
                     f"{s.cookie} {s.local} -> {s.remote}")
        lines += _event_lines(s, t0, chatty, limit)
    return "\n".join(lines)


def _event_lines(s, t0, chatty, limit):
    out, skipped = [], {}
    for e in s.events:
        if e["op"] in CHATTY and not chatty:
            skipped[e["op"]] = skipped.get(e["op"], 0) + 1
            continue
        out.append(f"    {(e['t_ns'] - t0) / 1e6:10.3f} ms  {e['op']:<23} {e['state']:<12} "
                   f"{describe(e)}")
    if limit and len(out) > limit:
        out = out[:limit] + [f"    ... {len(out) - limit} more"]
    if skipped:
        out.append("    (" + ", ".join(f"{n} x {op}" for op, n in skipped.items()) + ")")
    return out


def trap(events):
    """The byte-order trap on a real event: the client's first callback that knows the
    server's port (byte_order(), plus where it came from)."""
    for e in events:
        if e["side"] == "src" and e["remote_port_raw"]:
            return {"op": e["op"], "local": e["local"], **byte_order(e["remote_port_raw"],
                                                                     e["local_port"])}
    return None


def rto_series(events):
    """{cookie: [(t_ns, retransmits, rto_jiffies)]}: every RTO_CB, per socket."""
    out = {}
    for e in events:
        if e["op"] == "RTO_CB":
            out.setdefault(e["cookie"], []).append((e["t_ns"], e["args"][0], e["args"][1]))
    return out


def op_number(name):
    return OPS.index(name)
