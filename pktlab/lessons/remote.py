"""A notebook's lab held by pktlab's workshop daemon (pktlabd), for a learner who is not root.

    lab = pl.open_lab(["xdp", "tc-ingress"])     # not root and a daemon present: a RemoteLab
    lab.replay("tcp-http.pcap"); lab.follow(frame); lab.compare("mixed.pcap", limit=16)
    stepper = pl.PacketStepper("qinq.pcap", lab=lab)
    pl.close_all()

RemoteLab is a LiveLab (pktlab.lessons.live) whose lab, hooks and replays live in the daemon,
on this kernel's own connection: what it shows is the same objects (ReplayView, StepResult,
Belt, BatchView), built from the data the daemon returns. The connection is the lab's owner:
closing the lab, pl.close_all(), or the kernel dying (the daemon sees its pidfd) removes it.

Covered: open (hooks the daemon can attach here, the others listed with its reason), replay,
run / step / follow / follow_each / gaps / compare, set_hooks, close. Not covered here:
attaching a learner's own program to the lab (lend / give_back, pl.program(...).attach) and the
exercise checkers that build labs of their own: those still need root.
"""

import os

from .live import LiveLab
from .live import open_lab as _open_lab


def through_daemon():
    """Not root, and a pktlabd listening: the lessons' labs go through it."""
    if os.geteuid() == 0:
        return False
    from ..workshop.client import daemon_present
    return daemon_present()


def open_lab(hooks="all", xdp_mode="generic", mtu=1500):
    """pl.open_lab: a LiveLab as root, a RemoteLab through the daemon otherwise (see
    pktlab.lessons.live.open_lab)."""
    return _open_lab(hooks, xdp_mode=xdp_mode, mtu=mtu,
                     factory=RemoteLab if through_daemon() else None)


class _LabView:
    """What a notebook reads of a lab (its names and addresses), from the daemon's answer."""

    def __init__(self, info):
        self.info = info
        self.name = info["lab"]
        self.mtu = info["mtu"]
        for k in ("ns_src", "ns_dut", "if_src", "if_dut", "src_ip4", "dut_ip4", "src_ip6",
                  "dut_ip6"):
            setattr(self, k, info[k])
        self.closed = False

    def ns(self, side):
        return {"src": self.ns_src, "dut": self.ns_dut}[side]

    def ifname(self, side):
        return {"src": self.if_src, "dut": self.if_dut}[side]


class _RemoteReplayer:
    """What LiveLab asks of its Replayer (via, run_batch), through the daemon."""

    def __init__(self, client, name, via):
        self.client, self.name, self.via = client, name, dict(via)

    def run_batch(self, frames):
        return self.client.frames(self.name, frames)

    def close(self):
        pass                     # the daemon's hooks stay until set_hooks or close_lab


class RemoteLab(LiveLab):
    """A LiveLab whose lab pktlabd holds for this learner (see the module docstring)."""

    client = None

    def _open(self):
        from ..errors import PktlabError
        from ..workshop.client import Client
        try:
            self.client = Client()
            report = self.client.hooks()
        except PktlabError as e:
            self.error = f"the workshop daemon could not be reached: {e}"
            return
        for h in self.requested:
            if not report.get(h, {}).get("available"):
                self.unavailable[h] = report.get(h, {}).get("why") or "not available here"
        self.hooks = tuple(h for h in self.requested if h not in self.unavailable)
        if not self.hooks:
            self.error = "none of the hooks asked for can run here"
            return
        try:
            info = self.client.open_lab(list(self.hooks), xdp_mode=self.xdp_mode, mtu=self.mtu)
        except (PktlabError, OSError, ValueError) as e:
            self.error = f"the lab could not be opened (workshop daemon): {e}"
            self.close()
            return
        self.lab = _LabView(info)
        self._took(info)

    def _took(self, info):
        self.hooks = tuple(info["hooks"])
        self.rp = (_RemoteReplayer(self.client, self.lab.name, info["via"]) if self.hooks
                   else None)

    def _attach(self, hooks):
        self._took(self.client.set_hooks(self.lab.name, list(hooks)))

    def _detach(self):
        self.rp = None

    def set_hooks(self, hooks):
        """Attach another set of pktlab's hooks (those the daemon cannot attach left out)."""
        from ..kernel.hooks import parse_hooks
        if not self:
            return
        want = [h for h in parse_hooks(hooks) if h not in self.unavailable]
        if tuple(want) != self.hooks:
            self._attach(want)

    def lend(self, guest):
        raise NotImplementedError("a learner's own program in a lab the workshop daemon holds "
                                  "is not supported yet; use `pktlab run FILE.c --hook H "
                                  "--pcap P` (it goes through the daemon)")

    def _release(self):
        from . import live
        try:
            if self.client is not None and self.lab is not None and not self.client.closed:
                self.client.close_lab(self.lab.name)
        finally:
            if self.lab is not None:
                self.lab.closed = True
            if self.client is not None:
                self.client.close()     # the daemon closes whatever else this connection held
            self.rp = None
            if self in live._open_labs:
                live._open_labs.remove(self)

    def run(self, frames_):
        """Send frames across the lab (through the daemon): a BatchResult, or None."""
        if not self:
            return None
        return self.rp.run_batch([bytes(f) for f in frames_])

    def replay(self, name, limit=None, progress=True, **kw):
        """Replay a capture through the attached hooks (its bytes sent to the daemon): the
        agreement table (ReplayView). No progress bar: the daemon answers once, at the end."""
        from .html import NotHere
        from .pcaps import capture_path
        from .results import ReplayView
        from ..workshop.client import read_capture
        if not self:
            return NotHere("replay", self.why())
        path = capture_path(name)
        kw.setdefault("precise_ts", True)
        doc = self.client.replay(read_capture(path), label=os.path.basename(str(path)),
                                 lab=self.lab.name, hooks=list(self.hooks), limit=limit, **kw)
        doc.pop("ok", None)
        return ReplayView(doc, self.unavailable)

    def __repr__(self):
        if self:
            return (f"<RemoteLab {self.name} (workshop daemon): "
                    + ", ".join(f"{h} ({v})" for h, v in self.via.items()) + ">")
        return f"<RemoteLab not live: {self.why()}>"
