"""pktlabd's ops for the socket end (lessons 08 and 09: the belt, conntrack, the verifier's
reference tracking, TIME_WAIT, the firewall checker): each op takes (session, Args, blob) and
returns (a JSON-able result, a blob), like pktlab.workshop.ops. Registered in ops.OPS.

    belt_open        a belt (pktlab.sockets.belt: a real server, every hook around it) in a
                     lab of the caller's, held by the connection like open_lab's labs
    belt_request     one real request through it: the BeltRun as data (BeltRun.from_dict)
    belt_set_hooks   another set of hooks around the same lab
    belt_late_insert the late sockmap insertion (pktlab.sockets.sockmap.late_insert) there
    insert_moment    lesson 08's exercise 3: the sk-skb program with the sock_ops callback
                     named (one of sockmap.SOCK_OPS), a request through it, in a throwaway lab
    conntrack        `pktlab conntrack`'s document, each policy in a throwaway lab of theirs
    timewait         the TIME_WAIT trap, each policy in a throwaway lab of theirs
    check_firewall   lesson 09's checker: the caller's C through the learner loader, tried at
                     TC ingress of a throwaway lab of theirs

Every namespace, cgroup and process these make lives in a lab tagged as the caller's and
counted in their quota (Session.new_lab / throwaway_lab): the connection ending, the client
dying mid-request (SIGTERM to the session) or the session dying removes it all.
"""

import contextlib

from . import protocol as P
from .labs import SessionLab

OPS = {}

# the longest each op may take, in seconds (Limits.wall; default 30)
WALL = {}

#: the largest conntrack map a learner may ask for (each policy's maps are preallocated)
CT_MAX_ENTRIES = 65536


def _op(name, wall=None):
    def register(fn):
        OPS[name] = fn
        if wall:
            WALL[name] = wall
        return fn
    return register


class SessionBelt(SessionLab):
    """A lab of the caller's with a Belt in it (lesson 08's LiveBelt, held by the daemon).
    Only the belt ops use it: a replay, a learner's program or pktlab's replay hooks there are
    refused (the belt's hooks are its own)."""

    def __init__(self, lab, traffic):
        super().__init__(lab, "generic", {})
        self.traffic, self.belt, self._closed = traffic, None, []

    def open_belt(self, hooks):
        from ..sockets.belt import Belt
        self.close_belt()
        self.belt = Belt(self.traffic, hooks, lab=self.lab).open()

    def close_belt(self):
        belt, self.belt = self.belt, None
        if belt is not None:
            self._closed.append(belt)
            belt.close()

    def live(self):
        if self.belt is None or self.belt.closed:
            raise P.Refused(f"lab {self.name}: its belt is not open (a failed set of hooks "
                            "closed it); open a belt again")
        return self.belt

    def attach(self, hooks):
        raise P.Refused(f"lab {self.name} holds a belt: its hooks are the belt's "
                        "(belt_set_hooks), not pktlab's replay hooks")

    def aside(self):
        raise P.Refused(f"lab {self.name} holds a belt: no replay or program of yours goes "
                        "there; open a lab for that")

    def close(self):
        from ..lab import leftovers
        try:
            self.close_belt()
        finally:
            self.lab.close()
        left = leftovers(self.lab.name)
        for belt in self._closed:
            left += belt.leftovers()
        return left

    def to_dict(self):
        d = super().to_dict()
        b = self.belt
        if b is None:
            return d
        d.update(hooks=list(b.attached), via=dict(b.via), unavailable=dict(b.unavailable),
                 traffic=b.traffic, offloads=b.offloads,
                 server={"pid": b.server.pid, "port": b.server.port},
                 cgroup=getattr(b.cgroup, "path", None),
                 where=dict(b.sockhooks.where) if b.sockhooks is not None else {})
        return d


def _belt_hooks(a):
    from ..sockets.belt import parse_belt_hooks
    return parse_belt_hooks(a.hooks())


@_op("belt_open", wall=240)
def op_belt_open(s, a, blob):
    from ..sockets.apps import KINDS
    traffic = a.str("traffic", "http", tuple(KINDS))
    hooks = _belt_hooks(a)
    a.finish()
    lab = s.new_lab()
    sl = SessionBelt(lab, traffic)
    s.labs[lab.name] = sl
    try:
        sl.open_belt(hooks)
    except BaseException:
        s.labs.pop(lab.name, None)
        sl.close()
        raise
    return sl.to_dict(), b""


def _belt(s, a):
    sl = s.mine(a.str("lab", required=True))
    if not isinstance(sl, SessionBelt):
        raise P.Refused(f"lab {sl.name} holds no belt; open one with belt_open")
    return sl


@_op("belt_request", wall=60)
def op_belt_request(s, a, blob):
    sl = _belt(s, a)
    a.finish()
    return sl.live().request().to_dict(), b""


@_op("belt_set_hooks", wall=240)
def op_belt_set_hooks(s, a, blob):
    sl = _belt(s, a)
    hooks = _belt_hooks(a)
    a.finish()
    if sl.belt is None or tuple(hooks) != tuple(sl.belt.hooks):
        sl.open_belt(hooks)
    return sl.to_dict(), b""


@_op("belt_late_insert", wall=60)
def op_belt_late_insert(s, a, blob):
    from ..sockets.sockmap import late_insert
    sl = _belt(s, a)
    wait = a.num("wait", 0.1, 5.0) or 1.0
    a.finish()
    if "sk-skb" not in sl.live().attached:
        raise P.Refused(f"lab {sl.name}: the late insertion needs the belt's sk-skb hook")
    return late_insert(sl.lab, wait=wait), b""


@contextlib.contextmanager
def _lab_of(s):
    """A throwaway lab of the caller's (counted in their quota, gone after), as the
    experiments' make_lab wants it."""
    with s.throwaway_lab() as made:
        yield made[0]


@_op("insert_moment", wall=180)
def op_insert_moment(s, a, blob):
    from ..sockets.sockmap import SOCK_OPS, insert_moment
    op = a.str("op", required=True, choices=SOCK_OPS, max_len=40)
    a.finish()
    with s.compile_slot(), _lab_of(s) as lab:
        return insert_moment(op, lab=lab), b""


@_op("conntrack", wall=300)
def op_conntrack(s, a, blob):
    from ..sockets.experiment import FLOWS_MAX, run
    flows = a.int("flows", 1000, 1, FLOWS_MAX)
    max_entries = a.int("max_entries", 256, 1, CT_MAX_ENTRIES)
    a.finish()
    with s.compile_slot():
        return run(flows=flows, max_entries=max_entries, make_lab=lambda: _lab_of(s)), b""


@_op("timewait", wall=90)
def op_timewait(s, a, blob):
    from ..sockets.timewait import timewait_trap
    wait = a.num("wait", 0.1, 5.0) or 1.0
    a.finish()
    with s.compile_slot():
        return timewait_trap(wait=wait, make_lab=lambda: _lab_of(s)), b""


@_op("check_firewall", wall=180)
def op_check_firewall(s, a, blob):
    """Lesson 09's checker: the caller's C (the blob) through the learner loader, judged as
    pktlab verify judges it; when it loads, tried at TC ingress of a throwaway lab of theirs
    (pktlab.sockets.conntrack.try_firewall). No fd or program leaves the daemon."""
    from ..kernel.verifier import MAX_SOURCE_BYTES
    from ..sockets.conntrack import load_learner_firewall, try_firewall
    a.finish()
    if len(blob) > MAX_SOURCE_BYTES:
        raise P.Refused(f"check_firewall: {len(blob):,} bytes of C; at most {MAX_SOURCE_BYTES:,}")
    try:
        source = blob.decode()
    except UnicodeDecodeError:
        raise ValueError("check_firewall: the C source is not UTF-8 text") from None
    out = {"report": None, "ok": None, "what": ""}
    with s.compile_slot():
        report, prog = load_learner_firewall(source, name="lesson09.c")
        out["report"] = report.to_dict()
        if prog is None or not report.ok:
            if prog is not None:
                prog.close()
            return out, b""
        with prog, _lab_of(s) as lab:
            out["ok"], out["what"] = try_firewall(lab, prog.fd)
    return out, b""
