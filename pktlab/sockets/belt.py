"""The whole belt: one real request followed through every hook, from the wire to the app.

    with Belt("http") as belt:           # a lab, its cgroup, every hook, a real server in dut
        run = belt.request()             # a real client in src sends one request
        run.order, run.hooks["recv"], run.summary()
    doc = run_belt("http")               # the same, and what was left behind: `pktlab belt`

The order is the kernel's: tc-egress (src), the receive path's kprobe hook, XDP and TC ingress
(dut), then the socket end: cgroup-ingress, socket-filter, sk-skb, recv. Every hook stamps its
record with bpf_ktime_get_ns() (one clock), and the walker judges each record against what it
computes from the frame as captured leaving src (pktlab/sockets/expect.py).

The lab is set so that one request is one frame: TSO and GSO off on src, GRO off on dut (one
small request is not merged anyway; a bigger one would reach tc-egress as one skb of several
segments). UDP goes without sk-skb: a UDP socket in a sockmap hands recvfrom() no source
address, and an echo server cannot answer (said in the report, never left out silently).

Everything is Owned: close() stops the server, detaches every hook, removes the cgroup and (when
the belt made it) the lab, whatever happened; nothing is left behind (run_belt() checks it:
namespaces, cgroup, the sockhash, the server and client processes).
"""

import errno
import secrets
import shutil

from ..errors import LabError
from ..owned import Owned
from . import apps, expect

KERNEL_ORDER = ("tc-egress", "kprobe", "xdp", "tc-ingress", "cgroup-ingress",
                "socket-filter", "sk-skb", "recv")
PACKET_HOOKS = KERNEL_ORDER[:4]
NOT_ON_UDP = ("sk-skb is not used on UDP: a UDP socket in a sockmap hands recvfrom() no "
              "source address (the echo server gets None and cannot answer)")
LAB_PREFIX = "plbelt"


def parse_belt_hooks(spec):
    """'all' or a comma list -> hooks in KERNEL_ORDER; ValueError names the choices."""
    if spec is None or spec == "all":
        return KERNEL_ORDER
    names = [h.strip() for h in spec.split(",")] if isinstance(spec, str) else list(spec)
    bad = [h for h in names if h not in KERNEL_ORDER]
    if bad or not names:
        raise ValueError(f"hooks {spec!r}: choose from {', '.join(KERNEL_ORDER)} "
                         "(comma-separated)")
    return tuple(h for h in KERNEL_ORDER if h in names)


def check(traffic="http", hooks="all", port=None, to_port=None):
    """Every argument checked before anything is made; returns (traffic, hooks, port)."""
    apps.check_kind(traffic)
    hooks = parse_belt_hooks(hooks)
    port = apps.check_port(apps.PORTS[traffic] if port is None else port)
    if to_port is not None:
        apps.check_port(to_port)
    if {"cgroup-ingress", "sk-skb"} & set(hooks):
        from ..lab import require_cgroup2
        require_cgroup2()
    return traffic, hooks, port


def _offloads_off(lab):
    """TSO/GSO off on src, GRO off on dut: one request, one frame at every hook."""
    if shutil.which("ethtool") is None:
        return "unchanged (ethtool not found): a request larger than one segment would reach " \
               "tc-egress as one skb"
    from ..lab import netns
    netns.run(lab.ns_src, ["ethtool", "-K", lab.if_src, "tso", "off", "gso", "off"])
    netns.run(lab.ns_dut, ["ethtool", "-K", lab.if_dut, "gro", "off"])
    return "tso, gso off on src; gro off on dut"


class Belt(Owned):
    """A lab with every hook of `hooks` attached around a real `traffic` server (see the
    module docstring). `lab`: use this open lab (its cgroup, which goes with it) instead of a
    fresh one. Hooks this machine cannot attach are left out, with why (`unavailable`)."""

    def __init__(self, traffic="http", hooks="all", lab=None, port=None, xdp_mode="generic",
                 texts=None):
        self.traffic, self.hooks, self.port = check(traffic, hooks, port)
        self.texts = texts          # {socket-end hook: a variant of its source} (lessons)
        self.xdp_mode = xdp_mode
        self.lab, self._own_lab = lab, lab is None
        self.unavailable = {}
        self.hookset = self.sockhooks = self.server = self.capture = self.cgroup = None
        self.offloads = ""
        self.via = {}
        self._map_ids, self._pids = [], []

    # setting up -------------------------------------------------------------------------------
    def open(self):
        if self._held:
            return self
        self._hold()
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self):
        from ..lab import Lab
        if self.lab is None:
            self.lab = Lab(prefix=LAB_PREFIX).up()
        self.offloads = _offloads_off(self.lab)
        if self.traffic == "udp" and "sk-skb" in self.hooks:
            self.unavailable["sk-skb"] = NOT_ON_UDP
        want = [h for h in self.hooks if h not in self.unavailable]
        self._attach_packet_hooks([h for h in want if h in PACKET_HOOKS])
        sock = [h for h in want if h not in PACKET_HOOKS]
        # the cgroup only for the hooks that attach there: socket-filter and recv need none
        cgroup = self.lab.cgroup() if {"cgroup-ingress", "sk-skb"} & set(sock) else None
        self.cgroup = cgroup
        if sock:
            from ..kernel.sockhooks import SocketHooks
            self.sockhooks = SocketHooks(self.lab, cgroup, sock, precise_ts=True,
                                         texts=self.texts).open()
            self.via.update(self.sockhooks.via)
            self._map_ids = self.sockhooks.map_ids()
        self.server = apps.Server(self.lab, self.traffic, self.port, cgroup=cgroup)
        self._pids = self.server.pids()
        if self.sockhooks is not None:
            self.sockhooks.attach_socket(self.server.pid, self.server.fd)
            self.via.update(self.sockhooks.via)
        from .capture import SrcCapture
        self.capture = SrcCapture(self.lab)

    def _attach_packet_hooks(self, hooks):
        if not hooks:
            return
        from ..kernel.hooks import HookSet, choose_kprobe_mechanism
        if "kprobe" in hooks:
            mech, why = choose_kprobe_mechanism()
            if mech is None:
                self.unavailable["kprobe"] = "; ".join(f"not {m}: {w}" for m, w in why.items())
                hooks = [h for h in hooks if h != "kprobe"]
        self.hookset = HookSet(self.lab, hooks, xdp_mode=self.xdp_mode, precise_ts=True).open()
        self.via.update(self.hookset.via)

    @property
    def attached(self):
        """The hooks attached, in KERNEL_ORDER."""
        return tuple(h for h in KERNEL_ORDER if h in self.via)

    # one request ------------------------------------------------------------------------------
    def _drain(self):
        got = {}
        for hs in (self.hookset, self.sockhooks):
            if hs is not None:
                got.update(hs.drain())
        return got

    def _lost(self):
        out = {}
        for hs in (self.hookset, self.sockhooks):
            if hs is not None:
                out.update(hs.lost())
        return out

    def request(self, nonce=None, to_port=None):
        """One request from a real client in src (at the server's port unless `to_port`),
        followed through every attached hook: a BeltRun."""
        if self.closed:
            raise LabError(errno.ESHUTDOWN, "belt: closed; open it first (`with Belt() as b`)")
        nonce = nonce or f"pktlab-{secrets.token_hex(6)}"
        self._drain()
        self.capture.read()
        lost0 = self._lost()
        reply = apps.request(self.lab, self.traffic, self.port if to_port is None else to_port,
                             nonce)
        records = self._drain()
        frames = [f for f in self.capture.read() if nonce.encode() in f]
        lost = {h: n - lost0.get(h, 0) for h, n in self._lost().items()}
        return BeltRun(self, nonce, reply, frames, records, lost)

    # closing ------------------------------------------------------------------------------------
    def _release(self):
        errors = []
        for name in ("capture", "server", "sockhooks", "hookset"):
            obj = getattr(self, name)
            if obj is not None:
                try:
                    obj.close()
                except Exception as e:      # keep going: the rest must still go
                    errors.append(e)
        if self._own_lab and self.lab is not None:
            try:
                self.lab.close()
            except Exception as e:
                errors.append(e)
        if errors:
            raise errors[0]

    def leftovers(self):
        """What of this belt still exists: [] after close() (the lab's namespaces, state and
        cgroup when it made the lab; the sockhash; the server's processes)."""
        from ..kernel.sockhooks import map_exists
        from ..lab import leftovers
        left = leftovers(self.lab.name) if self._own_lab and self.lab is not None else []
        left += [f"sockhash map id {m}" for m in self._map_ids if map_exists(m)]
        left += [f"process {p} (the {self.traffic} server)" for p in self._pids if _alive(p)]
        return left


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


class BeltRun:
    """One request at every hook: `hooks` {hook: judged (expect.judge)}, `order`, `gaps`."""

    def __init__(self, belt, nonce, reply, frames, records, lost):
        self.traffic, self.nonce, self.reply = belt.traffic, nonce, reply
        self.via = dict(belt.via)
        self.unavailable = dict(belt.unavailable)
        self.offloads = belt.offloads
        self.frames = frames
        self.lost = lost
        self.problems = []
        if not frames:
            raise LabError(errno.EIO, f"belt: the request ({nonce}) got its reply, but no "
                                      "frame carrying it left src; is another capture "
                                      "filtering src's veth?")
        if len(frames) > 1:
            self.problems.append(f"the request left src in {len(frames)} frames "
                                 "(a retransmission?); the first one is followed")
        self.frame = frames[0]
        self.hooks = {}
        for h in KERNEL_ORDER:
            if h in records:
                self.hooks[h] = expect.judge(h, records[h], self.frame, nonce)
        seen = [h for h in self.hooks if self.hooks[h]["first_ts_ns"] is not None]
        rank = {h: i for i, h in enumerate(KERNEL_ORDER)}
        # a tie (the same ns) is broken by the kernel's rank: never one measured here
        self.order = sorted(seen, key=lambda h: (self.hooks[h]["first_ts_ns"], rank[h]))
        t = [self.hooks[h]["first_ts_ns"] for h in self.order]
        self.gaps = [{"from": a, "to": b, "ns": tb - ta}
                     for a, b, ta, tb in zip(self.order, self.order[1:], t, t[1:])]
        self.ties = sum(1 for g in self.gaps if g["ns"] == 0)

    @property
    def times(self):
        """{hook: first_ts_ns} of the hooks that saw the request (plots.conveyor_belt)."""
        return {h: self.hooks[h]["first_ts_ns"] for h in self.order}

    @property
    def kernel_order(self):
        return self.order == [h for h in KERNEL_ORDER if h in self.order]

    @property
    def ok(self):
        """Every attached hook saw the request and agreed, in the kernel's order, none lost."""
        return (all(v["seen"] and v["agree"] for v in self.hooks.values()) and
                self.kernel_order and not any(self.lost.values()))

    def to_dict(self):
        """Everything of this run as data (JSON-able: frames and records as hex), so that
        from_dict() rebuilds it elsewhere (pktlabd sends a learner's belt runs so)."""
        hooks = {}
        for h, v in self.hooks.items():
            d = {k: x for k, x in v.items() if not k.startswith("_")}
            rec = v.get("_record")
            d["_record"] = rec.to_bytes().hex() if rec is not None else None
            d["_expected"] = v["_expected"].to_bytes().hex()
            hooks[h] = d
        return {"traffic": self.traffic, "nonce": self.nonce, "reply": self.reply,
                "via": self.via, "unavailable": self.unavailable, "offloads": self.offloads,
                "frames": [bytes(f).hex() for f in self.frames], "lost": self.lost,
                "problems": self.problems, "hooks": hooks, "order": self.order,
                "gaps": self.gaps, "ties": self.ties}

    @classmethod
    def from_dict(cls, doc):
        """The BeltRun to_dict() described (its records Records again)."""
        from ..packet.record import record_from_bytes
        run = cls.__new__(cls)
        for k in ("traffic", "nonce", "reply", "via", "unavailable", "offloads", "lost",
                  "problems", "order", "gaps", "ties"):
            setattr(run, k, doc[k])
        run.frames = [bytes.fromhex(f) for f in doc["frames"]]
        run.frame = run.frames[0]
        run.hooks = {}
        for h, v in doc["hooks"].items():
            d = {k: x for k, x in v.items() if not k.startswith("_")}
            d["_record"] = (record_from_bytes(bytes.fromhex(v["_record"]))
                            if v["_record"] is not None else None)
            d["_expected"] = record_from_bytes(bytes.fromhex(v["_expected"]))
            run.hooks[h] = d
        return run

    def record(self, hook):
        """The request's record at `hook` (a pktlab.packet.record.Record), or None."""
        return self.hooks.get(hook, {}).get("_record")

    def expected(self, hook):
        return self.hooks.get(hook, {}).get("_expected")

    def summary(self):
        """The JSON document of `pktlab belt --json` (DESIGN.md: belt)."""
        t0 = self.hooks[self.order[0]]["first_ts_ns"] if self.order else 0
        hooks = {}
        for h in KERNEL_ORDER:
            if h in self.hooks:
                v = {k: x for k, x in self.hooks[h].items() if not k.startswith("_")}
                v.update(view=expect.VIEW[h], via=self.via.get(h, ""), lost=self.lost.get(h, 0),
                         after_ns=(v["first_ts_ns"] - t0) if v["first_ts_ns"] else None)
                hooks[h] = v
            elif h in self.unavailable:
                hooks[h] = {"seen": 0, "view": expect.VIEW[h], "first_ts_ns": None,
                            "agree": None, "attached": False, "why": self.unavailable[h]}
        return {"traffic": self.traffic, "hooks": hooks, "order": list(self.order),
                "kernel_order": self.kernel_order, "gaps_ns": self.gaps, "ties": self.ties,
                "request": {"nonce": self.nonce, "frame_len": len(self.frame),
                            "reply": self.reply.get("reply", "")[:200]},
                "offloads": self.offloads, "problems": self.problems, "ok": self.ok,
                "leftovers": []}


def run_belt(traffic="http", hooks="all", port=None, to_port=None, lab=None):
    """`pktlab belt`: a Belt, one request, closed; the summary with what was left behind."""
    belt = Belt(traffic, hooks, lab=lab, port=port)
    with belt:
        run = belt.request(to_port=to_port)
    doc = run.summary()
    doc["leftovers"] = belt.leftovers()
    return doc


def format_belt(doc):
    """The text report of `pktlab belt`."""
    lines = [f"one {doc['traffic']} request ({doc['request']['nonce']}, "
             f"{doc['request']['frame_len']} bytes on the wire) through every hook", ""]
    head = f"  {'hook':<15} {'view':<8} {'µs after first':>14} {'seen':>5}  verdict"
    lines += [head, "  " + "-" * (len(head) + 10)]
    for h in doc["order"] + [h for h in doc["hooks"] if h not in doc["order"]]:
        v = doc["hooks"][h]
        after = "" if v.get("after_ns") is None else f"{v['after_ns'] / 1000:.1f}"
        verdict = ("not attached: " + v["why"] if v.get("attached") is False else
                   "did not see it" if not v["seen"] else
                   "agrees" if v["agree"] else "DISAGREES: " + ", ".join(v["disagree"]))
        lines.append(f"  {h:<15} {v['view']:<8} {after:>14} {v['seen']:>5}  {verdict}")
    for h, v in doc["hooks"].items():
        if v.get("explained"):
            lines.append(f"  explained at {h}: {v['explained']}")
    whose = "the kernel's" if doc["kernel_order"] else "NOT the kernel's"
    lines += ["", f"  order: {' > '.join(doc['order'])} ({whose})"]
    if doc["gaps_ns"]:
        lines.append("  gaps: " + ", ".join(f"{g['from']}->{g['to']} {g['ns']} ns"
                                            for g in doc["gaps_ns"]))
    lines.append(f"  offloads: {doc['offloads']}")
    lines += [f"  note: {p}" for p in doc["problems"]]
    lines.append(f"  leftovers: {', '.join(doc['leftovers']) or 'none'}")
    return "\n".join(lines)
