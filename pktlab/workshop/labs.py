"""The labs pktlabd makes: tagged with the learner they belong to, and held by a session.

Every lab the daemon opens carries, in its state file (pktlab.lab.state, extra["pktlabd"]), the
uid and user it was opened for, the daemon's pid and the session's (its owner process). The
quota, `status`, `clean` and the daemon's reaping all read these tags; nothing is guessed from
a name.
"""

import contextlib

LAB_PREFIX = "pw"
TAG = "pktlabd"


def tag_of(state):
    t = (state.extra or {}).get(TAG)
    return t if isinstance(t, dict) else None


def daemon_labs(uid=None, daemon_pid=None, alive_only=True):
    """Lab states pktlabd made (uid: of that learner; daemon_pid: of that daemon)."""
    from ..lab import list_labs
    out = []
    for st in list_labs():
        t = tag_of(st)
        if t is None or (uid is not None and t.get("uid") != uid):
            continue
        if daemon_pid is not None and t.get("daemon") != daemon_pid:
            continue
        if alive_only and not st.owner_alive():
            continue
        out.append(st)
    return out


def describe(st):
    t = tag_of(st) or {}
    return {"name": st.name, "uid": t.get("uid"), "user": t.get("user"),
            "session": st.owner_pid, "alive": st.owner_alive()}


class SessionLab:
    """A lab this session holds, with pktlab's own hooks attached (a Replayer), as a
    notebook's LiveLab has them (pktlab.lessons.live)."""

    def __init__(self, lab, xdp_mode, unavailable):
        self.lab, self.xdp_mode, self.unavailable = lab, xdp_mode, dict(unavailable)
        self.rp, self.hooks = None, ()

    @property
    def name(self):
        return self.lab.name

    def attach(self, hooks):
        from ..replay.run import Replayer, ring_slots_for
        self.detach()
        if hooks:
            self.rp = Replayer(hooks, xdp_mode=self.xdp_mode, lab=self.lab, precise_ts=True,
                               slots=ring_slots_for()).open()
        self.hooks = tuple(hooks)

    def detach(self):
        rp, self.rp = self.rp, None
        if rp is not None:
            rp.close()

    @contextlib.contextmanager
    def aside(self):
        """Hooks detached for the block (a replay or a learner's program attaches its own),
        then attached again."""
        hooks = self.hooks
        self.detach()
        try:
            yield self.lab
        finally:
            if not self.lab.closed:
                self.attach(hooks)

    def close(self):
        from ..lab import leftovers
        try:
            self.detach()
        finally:
            self.lab.close()
        return leftovers(self.lab.name)

    def to_dict(self):
        lab = self.lab
        return {"lab": lab.name, "hooks": list(self.hooks),
                "via": dict(self.rp.via) if self.rp is not None else {},
                "unavailable": self.unavailable, "xdp_mode": self.xdp_mode, "mtu": lab.mtu,
                "ns_src": lab.ns_src, "ns_dut": lab.ns_dut, "if_src": lab.if_src,
                "if_dut": lab.if_dut, "src_ip4": lab.src_ip4, "dut_ip4": lab.dut_ip4,
                "src_ip6": lab.src_ip6, "dut_ip6": lab.dut_ip6}
