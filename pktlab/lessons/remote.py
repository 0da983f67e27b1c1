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
run / step / follow / follow_each / gaps / compare, set_hooks, close, and a learner's own
program in the lab (lend / give_back: pl.program(...).attach / .replay).

A learner's program (RemoteProgram, from load_program) lives in the daemon too, loaded there by
the learner loader, on the same connection as the notebook's labs (shared_client(): one
connection per process), so that it can be attached in them; its test runs, maps and replays
come back as data. The exercise checkers use the same (pktlab.lessons.exercises.assignments).
"""

import os

from ..owned import Owned
from .live import LiveLab
from .live import open_lab as _open_lab


def through_daemon():
    """Not root, and a pktlabd listening: the lessons' labs go through it."""
    if os.geteuid() == 0:
        return False
    from ..workshop.client import daemon_present
    return daemon_present()


_shared = None


def shared_client():
    """This process's connection to pktlabd (made on first use, again after it dropped): the
    notebook's labs and programs live on it, so a program can be attached in a lab."""
    global _shared
    from ..workshop.client import Client
    if _shared is None or _shared.closed:
        _shared = Client()
    return _shared


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
        try:
            self.client = shared_client()
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

    def _release(self):
        from . import live
        try:
            for guest in list(self.guests):
                guest.close()           # a learner's program attached here goes first
            self.guests = []
            if self.client is not None and self.lab is not None and not self.client.closed:
                self.client.close_lab(self.lab.name)
        finally:
            if self.lab is not None:
                self.lab.closed = True
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


# a learner's program in the daemon ------------------------------------------------------------
HOOK_OF = {"XDP": "xdp", "SCHED_CLS": "tc-ingress"}


class RemoteMap:
    """One of a RemoteProgram's maps, as a LearnerMap shows it (name, info, type_name)."""

    def __init__(self, prog, name, d):
        from types import SimpleNamespace
        self.prog, self.name, self.type_name = prog, name, d["type"]
        self.info = SimpleNamespace(key_size=d["key_size"], value_size=d["value_size"],
                                    max_entries=d["max_entries"])

    def dump_map(self):
        """({key text: value}, info), as pktlab.kernel.mapdump.dump_map gives it."""
        maps, info = self.prog.dump()
        return maps.get(self.name, {}), info.get(self.name, {})

    def __repr__(self):
        return f"<map {self.name}: {self.type_name}, {self.info.max_entries} entries (daemon)>"


def load_program(text, name, prog_type, func=None, hook=None, ring=False, keep=True,
                 frames=(), watch=None, dump=False):
    """C `text` (bytes) loaded by the learner loader in pktlabd, and `frames` test-run there:
    (the loader's Attempt, a RemoteProgram or None, the daemon's document, the records blob).
    keep=False: the daemon closes it once the frames are run (a checker's one look)."""
    from ..kernel.progload import Attempt
    from ..workshop.opsprogram import pack
    text = bytes(text)
    client = shared_client()
    rest = pack(frames)
    doc, blob = client.call("program", {
        "source_len": len(text), "hook": hook or HOOK_OF[prog_type], "func": func,
        "name": str(name), "ring": bool(ring), "keep": bool(keep), "frames_len": len(rest),
        "watch": watch, "maps": bool(dump)}, text + rest)
    a = Attempt.from_dict(doc["attempt"])
    prog = RemoteProgram(client, doc, hook or HOOK_OF[prog_type], name) \
        if doc.get("id") else None
    return a, prog, doc, blob


class RemoteProgram(Owned):
    """A learner's program pktlabd holds on this process's connection: what the lessons ask of
    a LearnerProgram (prog_type, func, maps, test_run, close), plus test_runs (many frames in
    one request), dump (every map) and lab (attach, detach, replay, bounce in a lab)."""

    def __init__(self, client, doc, hook, path):
        from ..kernel.progload import Attempt
        self.client, self.id, self.hook, self.path = client, doc["id"], hook, path
        self.prog_type, self.func = doc["prog_type"], doc["func"]
        self.attempt = Attempt.from_dict(doc["attempt"])
        self.maps = {n: RemoteMap(self, n, d) for n, d in doc["maps_info"].items()}
        self._hold()

    def _call(self, op, args, blob=b"", on_progress=None):
        from ..errors import BPFError
        if self.closed:
            raise BPFError(f"program {self.func}: closed")
        return self.client.call(op, dict(args, id=self.id), blob, on_progress=on_progress)

    def test_runs(self, frames, watch=None):
        """The daemon's document for `frames` test-run once each ("runs": [rc, ns] or
        [None, why]; "watch": the map `watch` before and its changes frame by frame)."""
        from ..workshop.opsprogram import pack
        rest = pack(frames)
        return self._call("program", {"frames_len": len(rest), "watch": watch}, rest)[0]

    def test_run(self, frame, repeat=1):
        """BPF_PROG_TEST_RUN on one frame, in the daemon: (retval, ns)."""
        from ..errors import BPFError
        rc, ns = self.test_runs([frame])["runs"][0]
        if rc is None:
            raise BPFError(ns)
        return rc, ns

    def dump(self, skip=()):
        """Every map now (but those in skip): (maps, info), pktlab.kernel.mapdump's form."""
        doc = self._call("program", {"maps": True, "frames_len": 0})[0]
        return ({k: v for k, v in doc["maps"].items() if k not in skip},
                {k: v for k, v in doc["info"].items() if k not in skip})

    def lab(self, do, lab=None, blob=b"", label=None, on_progress=None):
        """program_lab: `do` in `lab`. on_progress(doc): a replay's maps as it goes."""
        args = {"do": do, "lab": lab}
        if label is not None:
            args["label"] = label
        if on_progress is not None:
            args["progress"] = True
        return self._call("program_lab", args, blob, on_progress)

    def bounce(self, frames, lab=None):
        """Frames sent from src with the program attached at XDP on dut (in `lab`, or a
        throwaway lab of the caller's): for each, the frames that came back to src."""
        from ..workshop.opsprogram import pack
        doc, blob = self.lab("bounce", lab, pack(frames))
        out, at = [], 0
        for lens in doc["back"]:
            got = []
            for n in lens:
                got.append(blob[at:at + n])
                at += n
            out.append(got)
        return out

    def _release(self):
        from ..errors import PktlabError
        if not self.client.closed:
            try:
                self.client.call("program", {"id": self.id, "close": True, "frames_len": 0})
            except (PktlabError, OSError):
                pass                  # gone with its connection already

    def __repr__(self):
        return f"<learner program {self.func} ({self.prog_type}) in pktlabd, {self.id}>"


def parse_in_kernel(frames, hook="xdp"):
    """pktlab.kernel.bpf.parse_in_kernel (pktlab's own program of `hook` test-run on each
    frame: records, {index: why not run}), through the daemon when this is not root."""
    import numpy as np

    from ..kernel import bpf
    from ..packet.record import RECORD_DTYPE
    from ..workshop.opsprogram import pack
    from .here import in_lab_thread
    if not through_daemon():
        return in_lab_thread(bpf.parse_in_kernel, frames, hook)
    doc, blob = shared_client().call("program", {"own": hook}, pack(frames))
    recs = np.frombuffer(blob, dtype=RECORD_DTYPE, count=doc["n"]).copy()
    return recs, {int(k): v for k, v in doc["refused"].items()}
